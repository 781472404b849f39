//! iptables-save / iptables-restore text → `Table`s, for the supported matches and targets
//! (tcp, udp, icmp, conntrack/state, multiport, mark, comment, limit; standard verdicts, jumps,
//! gotos, REJECT, LOG, MARK, CONNMARK, CT/NOTRACK, DNAT, SNAT, MASQUERADE, REDIRECT). The
//! payloads are filled exactly as iptables 1.8.9's extensions fill them (through `ext`, which the
//! compiler's iptables lowering calls too), so that `encode(parse_save(text))` equals what
//! `iptables-legacy-restore` sends to the kernel.
#![forbid(unsafe_code)]

use crate::ext::*;
use crate::layout::*;
use crate::model::*;
use crate::save::{CHAIN_PROTOS, REJECT_NAMES, TCP_FLAG_NAMES};
use std::fmt;

/// A parse failure with its 1-based line (0 when parsing a lone rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}
impl std::error::Error for ParseError {}

type R<T> = Result<T, String>;

/// Split a restore line into words: whitespace separates, `"` quotes (and is dropped), `\`
/// escapes the next character.
pub fn tokenize(line: &str) -> R<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    have = true;
                }
            }
            '"' => {
                quoted = !quoted;
                have = true;
            }
            c if c.is_whitespace() && !quoted => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                cur.push(c);
                have = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

/// Parse a whole iptables-save/restore text (one or more `*table ... COMMIT` blocks); the first
/// error stops it (see [`parse_save_all`] for every error at once).
pub fn parse_save(text: &str) -> Result<Vec<Table>, ParseError> {
    let (tables, mut errors) = parse_save_all(text);
    if errors.is_empty() {
        Ok(tables)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// Parse a whole iptables-save/restore text, going on past bad lines (each is skipped): the tables
/// and every error, in line order.
pub fn parse_save_all(text: &str) -> (Vec<Table>, Vec<ParseError>) {
    let mut tables = Vec::new();
    let mut errors = Vec::new();
    let mut cur: Option<Table> = None;
    // Inside the block of an unknown table: its lines are not reported again.
    let mut unknown = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut e = |m: String| errors.push(ParseError { line, message: m });
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(name) = l.strip_prefix('*') {
            if let Some(t) = cur.take() {
                e("table started before COMMIT".into());
                tables.push(t);
            }
            cur = Table::new(name.trim());
            unknown = cur.is_none();
            if unknown {
                e(format!("unknown table `{name}`"));
            }
            continue;
        }
        let Some(t) = cur.as_mut() else {
            if unknown {
                unknown = l != "COMMIT";
            } else {
                e("line outside a *table block".into());
            }
            continue;
        };
        if l == "COMMIT" {
            if let Some(t) = cur.take() {
                tables.push(t);
            }
            continue;
        }
        if let Some(decl) = l.strip_prefix(':') {
            if let Err(m) = declare_chain(t, decl) {
                e(m);
            }
            continue;
        }
        let r = tokenize(l).and_then(|mut words| {
            let mut counters = None;
            if let Some(first) = words.first().filter(|w| w.starts_with('[')) {
                counters = Some(parse_counters(first)?);
                words.remove(0);
            }
            command(t, &words, counters)
        });
        if let Err(m) = r {
            e(m);
        }
    }
    if let Some(t) = cur {
        errors.push(ParseError {
            line: text.lines().count(),
            message: "missing COMMIT".into(),
        });
        tables.push(t);
    }
    (tables, errors)
}

fn parse_counters(s: &str) -> R<Counters> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or("bad counters")?;
    let (p, b) = inner.split_once(':').ok_or("bad counters")?;
    Ok(Counters {
        pcnt: p.parse().map_err(|_| "bad counters")?,
        bcnt: b.parse().map_err(|_| "bad counters")?,
    })
}

fn declare_chain(t: &mut Table, decl: &str) -> R<()> {
    let mut it = decl.split_whitespace();
    let name = it.next().ok_or("empty chain declaration")?;
    let policy = it.next().unwrap_or("-");
    let counters = match it.next() {
        Some(c) => parse_counters(c)?,
        None => Counters::default(),
    };
    if let Some(c) = chain_name_hook(name).and_then(|h| t.builtins.iter_mut().find(|c| c.hook == h))
    {
        c.policy = match policy {
            "ACCEPT" => Policy::Accept,
            "DROP" => Policy::Drop,
            p => return Err(format!("bad policy `{p}`")),
        };
        c.policy_counters = counters;
        return Ok(());
    }
    if name.len() >= XT_FUNCTION_MAXNAMELEN {
        return Err(format!("chain name `{name}` too long"));
    }
    if t.user_chains.iter().any(|c| c.name == name) {
        return Err(format!("chain `{name}` already exists"));
    }
    t.user_chains.push(UserChain {
        name: name.to_string(),
        rules: Vec::new(),
    });
    Ok(())
}

fn command(t: &mut Table, words: &[String], counters: Option<Counters>) -> R<()> {
    let cmd = words.first().map(String::as_str).ok_or("empty line")?;
    match cmd {
        "-A" | "--append" | "-I" | "--insert" => {
            let chain = words.get(1).ok_or("missing chain")?.clone();
            let mut rest = &words[2..];
            let mut pos = None;
            if cmd.starts_with("-I") || cmd == "--insert" {
                if let Some(n) = rest.first().and_then(|w| w.parse::<usize>().ok()) {
                    pos = Some(n.saturating_sub(1));
                    rest = &rest[1..];
                } else {
                    pos = Some(0);
                }
            }
            let known: Vec<String> = t.user_chains.iter().map(|c| c.name.clone()).collect();
            let mut rule = parse_rule_with(rest, &|n| {
                known.iter().any(|k| k == n) || chain_name_hook(n).is_some()
            })?;
            if let Some(c) = counters {
                rule.counters = c;
            }
            check_chain_ifaces(&chain, &rule)?;
            let rules = t
                .rules_mut(&chain)
                .ok_or_else(|| format!("no chain `{chain}`"))?;
            match pos {
                Some(p) if p <= rules.len() => rules.insert(p, rule),
                Some(_) => return Err("rule index too big".into()),
                None => rules.push(rule),
            }
            Ok(())
        }
        "-N" | "--new-chain" => declare_chain(t, words.get(1).ok_or("missing chain")?),
        "-P" | "--policy" => {
            let c = words.get(1).ok_or("missing chain")?;
            let p = words.get(2).ok_or("missing policy")?;
            if chain_name_hook(c).is_none() {
                return Err(format!("`{c}` is not a built-in chain"));
            }
            declare_chain(t, &format!("{c} {p}"))
        }
        other => Err(format!("unsupported command `{other}`")),
    }
}

/// iptables refuses `-o` in PREROUTING/INPUT and `-i` in POSTROUTING/OUTPUT.
pub fn check_chain_ifaces(chain: &str, r: &Rule) -> Result<(), String> {
    let ip = &r.ip.ip;
    if matches!(chain, "PREROUTING" | "INPUT") && ip.outiface[0] != 0 {
        return Err(format!("Can't use -o with {chain}"));
    }
    if matches!(chain, "POSTROUTING" | "OUTPUT") && ip.iniface[0] != 0 {
        return Err(format!("Can't use -i with {chain}"));
    }
    Ok(())
}

/// Parse the words of one rule (everything after `-A CHAIN`); `-j NAME` for a non-extension
/// target is taken as a jump to chain NAME.
pub fn parse_rule(words: &[&str]) -> Result<Rule, ParseError> {
    let w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
    parse_rule_with(&w, &|_| true).map_err(|m| ParseError {
        line: 0,
        message: m,
    })
}

/// Parse a rule given as one string (tokenized like iptables-restore).
pub fn parse_rule_str(s: &str) -> Result<Rule, ParseError> {
    let w = tokenize(s).map_err(|m| ParseError {
        line: 0,
        message: m,
    })?;
    parse_rule_with(&w, &|_| true).map_err(|m| ParseError {
        line: 0,
        message: m,
    })
}

struct Words<'a> {
    w: &'a [String],
    i: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let r = self.w.get(self.i).map(String::as_str);
        self.i += 1;
        r
    }
    fn arg(&mut self, opt: &str) -> R<&'a str> {
        self.next()
            .ok_or_else(|| format!("option `{opt}` requires an argument"))
    }
}

/// getopt forms: `--opt=value` and `-Xvalue` (for the generic options taking an argument).
fn split_getopt(words: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    for w in words {
        if let Some((o, v)) = w.strip_prefix("--").and_then(|r| r.split_once('=')) {
            out.push(format!("--{o}"));
            out.push(v.to_string());
        } else if w.len() > 2
            && w.starts_with('-')
            && !w.starts_with("--")
            && w.as_bytes().get(1).is_some_and(|c| b"sdiopjgm".contains(c))
            && !w[1..].starts_with(|c: char| c.is_ascii_digit())
        {
            out.push(w[..2].to_string());
            out.push(w[2..].to_string());
        } else {
            out.push(w.clone());
        }
    }
    out
}

fn parse_rule_with(words: &[String], is_chain: &dyn Fn(&str) -> bool) -> R<Rule> {
    let words = split_getopt(words);
    let mut rule = Rule::new(Target::Fallthrough);
    let mut w = Words { w: &words, i: 0 };
    let mut invert = false;
    let mut target_name: Option<String> = None;
    let mut have_target = false;
    // Options already given, per owner (generic, match #n, target): repeats are errors.
    let mut seen: Vec<(usize, String)> = Vec::new();
    let mut once = |owner: usize, opt: &str| -> R<()> {
        let canon = canonical_opt(opt);
        if seen.iter().any(|(o, s)| *o == owner && *s == canon) {
            return Err(format!("multiple {opt} flags not allowed"));
        }
        seen.push((owner, canon));
        Ok(())
    };
    const GENERIC: usize = usize::MAX;
    const TARGET: usize = usize::MAX - 1;
    while let Some(opt) = w.next() {
        if opt == "!" {
            if invert {
                return Err("multiple `!`".into());
            }
            invert = true;
            continue;
        }
        let inv = std::mem::take(&mut invert);
        if matches!(
            opt,
            "-s" | "--source"
                | "--src"
                | "-d"
                | "--destination"
                | "--dst"
                | "-i"
                | "--in-interface"
                | "-o"
                | "--out-interface"
                | "-p"
                | "--protocol"
                | "-f"
                | "--fragment"
        ) {
            once(GENERIC, opt)?;
        }
        match opt {
            "-s" | "--source" | "--src" => {
                let (a, m) = parse_addr(w.arg(opt)?)?;
                rule.ip.set_src(a, m, inv);
            }
            "-d" | "--destination" | "--dst" => {
                let (a, m) = parse_addr(w.arg(opt)?)?;
                rule.ip.set_dst(a, m, inv);
            }
            "-i" | "--in-interface" => {
                let n = w.arg(opt)?;
                check_iface(n)?;
                rule.ip.set_iniface(n, inv);
            }
            "-o" | "--out-interface" => {
                let n = w.arg(opt)?;
                check_iface(n)?;
                rule.ip.set_outiface(n, inv);
            }
            "-p" | "--protocol" => {
                let p = parse_proto(w.arg(opt)?)?;
                check_proto(p, inv)?;
                rule.ip.set_proto(p, inv);
            }
            "-f" | "--fragment" => rule.ip.set_frag(inv),
            "-m" | "--match" => {
                let n = w.arg(opt)?;
                if inv {
                    return Err("unexpected `!` before -m".into());
                }
                rule.matches.push(new_match(n)?);
            }
            "-c" | "--set-counters" => {
                let p = w.arg(opt)?.parse().map_err(|_| "bad counter")?;
                let b = w.arg(opt)?.parse().map_err(|_| "bad counter")?;
                rule.counters = Counters { pcnt: p, bcnt: b };
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                if have_target {
                    return Err("multiple targets".into());
                }
                have_target = true;
                let n = w.arg(opt)?;
                if opt == "-g" || opt == "--goto" {
                    rule.target = Target::Goto(n.to_string());
                    continue;
                }
                rule.target = new_target(n, is_chain)?;
                target_name = Some(n.to_string());
            }
            o if o.starts_with("--") => {
                // Extension option: the target's first (if it has options), then the most recent
                // match that knows it, then an implicit protocol match.
                if target_name.is_some() && target_knows(&rule.target, o) {
                    once(TARGET, o)?;
                    target_option(&mut rule.target, o, &mut w, inv, &rule.ip)?;
                    continue;
                }
                let mut done = false;
                for (k, m) in rule.matches.iter_mut().enumerate().rev() {
                    if match_knows(m, o) {
                        once(k, o)?;
                        match_option(m, o, &mut w, inv)?;
                        done = true;
                        break;
                    }
                }
                if done {
                    continue;
                }
                let implicit = match rule.ip.exact_proto() {
                    Some(6) => "tcp",
                    Some(17) => "udp",
                    Some(1) => "icmp",
                    _ => return Err(format!("unknown option `{o}`")),
                };
                if rule.matches.iter().any(|m| m.name() == implicit) {
                    return Err(format!("unknown option `{o}`"));
                }
                let mut m = new_match(implicit)?;
                if !match_knows(&m, o) {
                    return Err(format!("unknown option `{o}`"));
                }
                once(rule.matches.len(), o)?;
                match_option(&mut m, o, &mut w, inv)?;
                rule.matches.push(m);
            }
            o => return Err(format!("unexpected argument `{o}`")),
        }
    }
    if invert {
        return Err("trailing `!`".into());
    }
    let given = |owner: usize| seen.iter().any(|(o, _)| *o == owner);
    for (k, m) in rule.matches.iter().enumerate() {
        let required = match m {
            Match::Mark(_) => Some("mark match: --mark is required"),
            Match::Comment(_) => Some("comment match: --comment is required"),
            Match::Length(_) => Some("length match: --length is required"),
            Match::Iprange(_) => Some("iprange match: --src-range or --dst-range is required"),
            Match::Ttl(_) => Some("ttl match: --ttl-eq/--ttl-lt/--ttl-gt is required"),
            Match::Pkttype(_) => Some("pkttype match: --pkt-type is required"),
            Match::Connmark(_) => Some("connmark match: --mark is required"),
            Match::Dscp(_) => Some("dscp match: --dscp or --dscp-class is required"),
            Match::Mac(_) => Some("mac match: --mac-source is required"),
            Match::Addrtype(at) if at.source == 0 && at.dest == 0 => {
                Some("addrtype: you must specify --src-type or --dst-type")
            }
            Match::Addrtype(at)
                if at.flags & XT_ADDRTYPE_LIMIT_IFACE_IN != 0
                    && at.flags & XT_ADDRTYPE_LIMIT_IFACE_OUT != 0 =>
            {
                Some("addrtype: you can't specify both --limit-iface-in and --limit-iface-out")
            }
            Match::Statistic(_) if !seen.iter().any(|(o, n)| *o == k && n == "--mode") => {
                Some("statistic match: --mode is required")
            }
            // libxt_statistic's option table: `--every` `.also = F_PACKET`.
            Match::Statistic(_)
                if seen.iter().any(|(o, n)| *o == k && n == "--every")
                    && !seen.iter().any(|(o, n)| *o == k && n == "--packet") =>
            {
                Some("statistic: option \"--every\" also requires \"--packet\"")
            }
            Match::Owner(o) if o.match_flags == 0 || o.match_flags == XT_OWNER_SUPPL_GROUPS => {
                Some("owner match: --uid-owner, --gid-owner or --socket-exists is required")
            }
            Match::Conntrack(c) if c.match_flags & XT_CONNTRACK_STATE_ALIAS != 0 => {
                Some("state match: --state is required")
            }
            _ => None,
        };
        if let Some(msg) = required.filter(|_| !given(k)) {
            return Err(msg.into());
        }
    }
    if matches!(rule.target, Target::Mark(_)) && !given(TARGET) {
        return Err("MARK target: one of --set-xmark/--set-mark/--and-mark/--or-mark/--xor-mark is required".into());
    }
    check_rule(&rule)?;
    Ok(rule)
}

/// Parse `a.b.c.d[/len|/mask]`.
pub fn parse_addr(s: &str) -> R<([u8; 4], [u8; 4])> {
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr = parse_ip4(a)?;
    let mask = match m {
        None => [255; 4],
        Some(m) if m.contains('.') => parse_ip4(m)?,
        Some(m) => {
            let l: u32 = m.parse().map_err(|_| format!("invalid mask `{m}`"))?;
            if l > 32 {
                return Err(format!("invalid mask `{m}`"));
            }
            prefix_mask(l as u8)
        }
    };
    Ok((addr, mask))
}

fn parse_ip4(s: &str) -> R<[u8; 4]> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err(format!("host/network `{s}` not found"));
    }
    let mut a = [0u8; 4];
    for (d, p) in a.iter_mut().zip(parts) {
        *d = p
            .parse()
            .map_err(|_| format!("host/network `{s}` not found"))?;
    }
    Ok(a)
}

/// Protocol name or number (`xtables_parse_protocol` with the built-in name table).
pub fn parse_proto(s: &str) -> R<u16> {
    if let Ok(n) = s.parse::<u16>() {
        if n > 255 {
            return Err(format!("invalid protocol `{s}`"));
        }
        return Ok(n);
    }
    let l = s.to_ascii_lowercase();
    if let Some((_, n)) = CHAIN_PROTOS.iter().find(|(name, _)| *name == l) {
        return Ok(*n);
    }
    nfr_proto::ipproto::number(&l)
        .map(u16::from)
        .ok_or_else(|| format!("unknown protocol `{s}` specified"))
}

const SERVICES: [(&str, u16); 16] = [
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("http", 80),
    ("www", 80),
    ("ntp", 123),
    ("snmp", 161),
    ("https", 443),
    ("imaps", 993),
    ("pop3s", 995),
];

fn parse_port(s: &str) -> R<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return Ok(n);
    }
    SERVICES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("invalid port/service `{s}` specified"))
}

/// `a`, `a:b`, `:b`, `a:` → [lo, hi].
fn parse_port_range(s: &str) -> R<[u16; 2]> {
    match s.split_once(':') {
        None => {
            let p = parse_port(s)?;
            Ok([p, p])
        }
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { parse_port(a)? };
            let hi = if b.is_empty() { 0xFFFF } else { parse_port(b)? };
            if lo > hi {
                return Err(format!("invalid portrange `{s}` (min > max)"));
            }
            Ok([lo, hi])
        }
    }
}

fn parse_u32(s: &str) -> R<u32> {
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8)
    } else {
        s.parse()
    };
    r.map_err(|_| format!("bad value `{s}`"))
}

/// `value[/mask]`, mask defaulting to 0xffffffff.
fn parse_mark(s: &str) -> R<(u32, u32)> {
    match s.split_once('/') {
        Some((v, m)) => Ok((parse_u32(v)?, parse_u32(m)?)),
        None => Ok((parse_u32(s)?, u32::MAX)),
    }
}

fn new_match(name: &str) -> R<Match> {
    Match::default_of(name).ok_or_else(|| format!("unsupported match `{name}`"))
}

fn parse_tcp_flags(s: &str) -> R<u8> {
    let mut v = 0;
    for f in s.split(',') {
        let u = f.to_ascii_uppercase();
        let (_, b) = TCP_FLAG_NAMES
            .iter()
            .find(|(n, _)| *n == u)
            .ok_or_else(|| format!("unknown TCP flag `{f}`"))?;
        v |= b;
    }
    Ok(v)
}

/// iptables' ICMP type names: (name, type, code min, code max).
pub const ICMP_CODES: [(&str, u8, u8, u8); 40] = [
    ("any", 0xFF, 0, 0xFF),
    ("echo-reply", 0, 0, 0xFF),
    ("pong", 0, 0, 0xFF),
    ("destination-unreachable", 3, 0, 0xFF),
    ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1),
    ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3),
    ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5),
    ("network-unknown", 3, 6, 6),
    ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9),
    ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11),
    ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13),
    ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15),
    ("source-quench", 4, 0, 0xFF),
    ("redirect", 5, 0, 0xFF),
    ("network-redirect", 5, 0, 0),
    ("host-redirect", 5, 1, 1),
    ("TOS-network-redirect", 5, 2, 2),
    ("TOS-host-redirect", 5, 3, 3),
    ("echo-request", 8, 0, 0xFF),
    ("ping", 8, 0, 0xFF),
    ("router-advertisement", 9, 0, 0xFF),
    ("router-solicitation", 10, 0, 0xFF),
    ("time-exceeded", 11, 0, 0xFF),
    ("ttl-exceeded", 11, 0, 0xFF),
    ("ttl-zero-during-transit", 11, 0, 0),
    ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 0xFF),
    ("ip-header-bad", 12, 0, 0),
    ("required-option-missing", 12, 1, 1),
    ("timestamp-request", 13, 0, 0xFF),
    ("timestamp-reply", 14, 0, 0xFF),
    ("address-mask-request", 17, 0, 0xFF),
    ("address-mask-reply", 18, 0, 0xFF),
];

fn parse_icmp_type(s: &str) -> R<(u8, [u8; 2])> {
    if let Some((_, t, lo, hi)) = ICMP_CODES.iter().find(|(n, ..)| n.eq_ignore_ascii_case(s)) {
        return Ok((*t, [*lo, *hi]));
    }
    let (t, c) = match s.split_once('/') {
        Some((t, c)) => (t, Some(c)),
        None => (s, None),
    };
    let t: u8 = t.parse().map_err(|_| format!("invalid ICMP type `{s}`"))?;
    match c {
        Some(c) => {
            let num = |x: &str| {
                x.parse::<u8>()
                    .map_err(|_| format!("invalid ICMP code `{s}`"))
            };
            match c.split_once(':') {
                Some((a, b)) => Ok((t, [num(a)?, num(b)?])),
                None => {
                    let c = num(c)?;
                    Ok((t, [c, c]))
                }
            }
        }
        None => Ok((t, [0, 0xFF])),
    }
}

fn parse_ct_states(s: &str) -> R<u16> {
    let mut v = 0;
    for p in s.split(',') {
        // libxt_conntrack compares with strncasecmp.
        v |= match p.to_ascii_uppercase().as_str() {
            "INVALID" => XT_CONNTRACK_STATE_INVALID,
            "NEW" => XT_CONNTRACK_STATE_NEW,
            "ESTABLISHED" => XT_CONNTRACK_STATE_ESTABLISHED,
            "RELATED" => XT_CONNTRACK_STATE_RELATED,
            "UNTRACKED" => XT_CONNTRACK_STATE_UNTRACKED,
            "SNAT" => XT_CONNTRACK_STATE_SNAT,
            "DNAT" => XT_CONNTRACK_STATE_DNAT,
            _ => return Err(format!("bad ctstate `{p}`")),
        };
    }
    Ok(v)
}

fn parse_ct_status(s: &str) -> R<u16> {
    let mut v = 0;
    for p in s.split(',') {
        v |= match p.to_ascii_uppercase().as_str() {
            "NONE" => 0,
            "EXPECTED" => IPS_EXPECTED,
            "SEEN_REPLY" => IPS_SEEN_REPLY,
            "ASSURED" => IPS_ASSURED,
            "CONFIRMED" => IPS_CONFIRMED,
            _ => return Err(format!("bad ctstatus `{p}`")),
        };
    }
    Ok(v)
}

fn addr16(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&a);
    o
}

/// Apply an option to a match; `Ok(false)` if the match does not know the option.
fn match_option(m: &mut Match, o: &str, w: &mut Words, inv: bool) -> R<bool> {
    match m {
        Match::Tcp(t) => match o {
            "--sport" | "--source-port" => t.set_sport(parse_port_range(w.arg(o)?)?, inv),
            "--dport" | "--destination-port" => t.set_dport(parse_port_range(w.arg(o)?)?, inv),
            "--tcp-flags" => {
                let mask = parse_tcp_flags(w.arg(o)?)?;
                t.set_flags(mask, parse_tcp_flags(w.arg(o)?)?, inv);
            }
            "--syn" => t.set_flags(TCP_SYN.0, TCP_SYN.1, inv),
            "--tcp-option" => {
                t.set_option(w.arg(o)?.parse().map_err(|_| "bad --tcp-option")?, inv);
            }
            _ => return Ok(false),
        },
        Match::Udp(u) => match o {
            "--sport" | "--source-port" => u.set_sport(parse_port_range(w.arg(o)?)?, inv),
            "--dport" | "--destination-port" => u.set_dport(parse_port_range(w.arg(o)?)?, inv),
            _ => return Ok(false),
        },
        Match::Icmp(i) => match o {
            "--icmp-type" => {
                let (t, c) = parse_icmp_type(w.arg(o)?)?;
                i.set_type(t, Some(c), inv);
            }
            _ => return Ok(false),
        },
        Match::Conntrack(c) => {
            let alias = c.match_flags & XT_CONNTRACK_STATE_ALIAS != 0;
            match o {
                "--state" if alias => c.set_state(parse_ct_states(w.arg(o)?)?, inv),
                _ if alias => return Ok(false),
                "--ctstate" => c.set_state(parse_ct_states(w.arg(o)?)?, inv),
                "--ctproto" => {
                    c.l4proto = parse_proto(w.arg(o)?)?;
                    if c.l4proto == 0 {
                        return Err("conntrack: --ctproto 0 would never match".into());
                    }
                    c.set_option(XT_CONNTRACK_PROTO, inv);
                }
                "--ctorigsrc" | "--ctorigdst" | "--ctreplsrc" | "--ctrepldst" => {
                    let arg = w.arg(o)?;
                    let has_mask = arg.contains('/');
                    let (a, m) = parse_addr(arg)?;
                    let a = [a[0] & m[0], a[1] & m[1], a[2] & m[2], a[3] & m[3]];
                    let (bit, addr, mask) = match o {
                        "--ctorigsrc" => (
                            XT_CONNTRACK_ORIGSRC,
                            &mut c.origsrc_addr,
                            &mut c.origsrc_mask,
                        ),
                        "--ctorigdst" => (
                            XT_CONNTRACK_ORIGDST,
                            &mut c.origdst_addr,
                            &mut c.origdst_mask,
                        ),
                        "--ctreplsrc" => (
                            XT_CONNTRACK_REPLSRC,
                            &mut c.replsrc_addr,
                            &mut c.replsrc_mask,
                        ),
                        _ => (
                            XT_CONNTRACK_REPLDST,
                            &mut c.repldst_addr,
                            &mut c.repldst_mask,
                        ),
                    };
                    *addr = addr16(a);
                    // xtables' host/mask option: without "/mask" the whole nf_inet_addr mask is
                    // 0xff; with one, only the IPv4 part is set.
                    *mask = if has_mask { addr16(m) } else { [0xff; 16] };
                    c.set_option(bit, inv);
                }
                "--ctorigsrcport" | "--ctorigdstport" | "--ctreplsrcport" | "--ctrepldstport" => {
                    let r = parse_port_range(w.arg(o)?)?;
                    let (bit, lo, hi) = match o {
                        "--ctorigsrcport" => (
                            XT_CONNTRACK_ORIGSRC_PORT,
                            &mut c.origsrc_port,
                            &mut c.origsrc_port_high,
                        ),
                        "--ctorigdstport" => (
                            XT_CONNTRACK_ORIGDST_PORT,
                            &mut c.origdst_port,
                            &mut c.origdst_port_high,
                        ),
                        "--ctreplsrcport" => (
                            XT_CONNTRACK_REPLSRC_PORT,
                            &mut c.replsrc_port,
                            &mut c.replsrc_port_high,
                        ),
                        _ => (
                            XT_CONNTRACK_REPLDST_PORT,
                            &mut c.repldst_port,
                            &mut c.repldst_port_high,
                        ),
                    };
                    *lo = r[0];
                    *hi = r[1];
                    c.set_option(bit, inv);
                }
                "--ctstatus" => c.set_status(parse_ct_status(w.arg(o)?)?, inv),
                "--ctexpire" => {
                    let a = w.arg(o)?;
                    let (lo, hi) = match a.split_once(':') {
                        Some((l, h)) => (parse_u32(l)?, parse_u32(h)?),
                        None => {
                            let v = parse_u32(a)?;
                            (v, v)
                        }
                    };
                    if lo > hi {
                        return Err(format!("conntrack: bad --ctexpire range `{a}`"));
                    }
                    c.expires_min = lo;
                    c.expires_max = hi;
                    c.set_option(XT_CONNTRACK_EXPIRES, inv);
                }
                "--ctdir" => {
                    let d = w.arg(o)?;
                    match d.to_ascii_uppercase().as_str() {
                        "ORIGINAL" => c.set_direction(false),
                        "REPLY" => c.set_direction(true),
                        _ => return Err(format!("bad ctdir `{d}`")),
                    }
                }
                _ => return Ok(false),
            }
        }
        Match::Multiport(mp) => {
            let flags = match o {
                "--sports" | "--source-ports" => XT_MULTIPORT_SOURCE,
                "--dports" | "--destination-ports" => XT_MULTIPORT_DESTINATION,
                "--ports" => XT_MULTIPORT_EITHER,
                _ => return Ok(false),
            };
            let mut ports = Vec::new();
            for part in w.arg(o)?.split(',') {
                let r = parse_port_range(part)?;
                ports.push((r[0], part.contains(':').then_some(r[1])));
            }
            mp.set_ports(flags, &ports, inv)?;
        }
        Match::Mark(mk) => match o {
            "--mark" => {
                let (v, m) = parse_mark(w.arg(o)?)?;
                mk.mark = v;
                mk.mask = m;
                mk.invert = inv as u8;
            }
            _ => return Ok(false),
        },
        Match::Comment(c) => match o {
            "--comment" => {
                let s = w.arg(o)?;
                if s.len() > COMMENT_MAX {
                    return Err("comment too long".into());
                }
                *c = s.as_bytes().to_vec();
            }
            _ => return Ok(false),
        },
        Match::Limit(r) => match o {
            "--limit" => r.avg = parse_rate(w.arg(o)?)?,
            "--limit-burst" => {
                let b: u32 = w.arg(o)?.parse().map_err(|_| "bad --limit-burst")?;
                if b > XT_LIMIT_BURST_MAX {
                    return Err("bad --limit-burst".into());
                }
                r.burst = b;
            }
            _ => return Ok(false),
        },
        Match::Length(l) => match o {
            "--length" => {
                let a = w.arg(o)?;
                let num = |x: &str, d: u16| -> R<u16> {
                    if x.is_empty() {
                        Ok(d)
                    } else {
                        x.parse().map_err(|_| format!("bad --length `{a}`"))
                    }
                };
                let (lo, hi) = match a.split_once(':') {
                    Some((x, y)) => (num(x, 0)?, num(y, 0xFFFF)?),
                    None => {
                        let v = num(a, 0)?;
                        (v, v)
                    }
                };
                if lo > hi {
                    return Err(format!("bad --length `{a}`"));
                }
                l.min = lo;
                l.max = hi;
                l.invert = inv as u8;
            }
            _ => return Ok(false),
        },
        Match::Iprange(r) => {
            let src = match o {
                "--src-range" => true,
                "--dst-range" => false,
                _ => return Ok(false),
            };
            let a = w.arg(o)?;
            let (lo, hi) = match a.split_once('-') {
                Some((x, y)) => (parse_ip4(x)?, parse_ip4(y)?),
                None => {
                    let v = parse_ip4(a)?;
                    (v, v)
                }
            };
            if src {
                r.set_src(lo, hi, inv);
            } else {
                r.set_dst(lo, hi, inv);
            }
        }
        Match::Addrtype(at) => {
            let (mask, inv_bit) = match o {
                "--src-type" => (&mut at.source, XT_ADDRTYPE_INVERT_SOURCE),
                "--dst-type" => (&mut at.dest, XT_ADDRTYPE_INVERT_DEST),
                "--limit-iface-in" | "--limit-iface-out" if inv => {
                    return Err(format!("unexpected `!` with {o}"));
                }
                "--limit-iface-in" => {
                    at.flags |= XT_ADDRTYPE_LIMIT_IFACE_IN;
                    return Ok(true);
                }
                "--limit-iface-out" => {
                    at.flags |= XT_ADDRTYPE_LIMIT_IFACE_OUT;
                    return Ok(true);
                }
                _ => return Ok(false),
            };
            // libxt_addrtype's parse_types: names separated by `,`, any case.
            for t in w.arg(o)?.split(',') {
                let i = ADDRTYPE_NAMES
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(t))
                    .ok_or_else(|| format!("addrtype: bad type \"{t}\""))?;
                *mask |= 1 << i;
            }
            if inv {
                at.flags |= inv_bit;
            }
        }
        Match::Statistic(st) => {
            match o {
                "--mode" if inv => return Err(format!("unexpected `!` with {o}")),
                "--mode" => {
                    st.mode = match w.arg(o)? {
                        "random" => XT_STATISTIC_MODE_RANDOM,
                        "nth" => XT_STATISTIC_MODE_NTH,
                        m => return Err(format!("Bad mode \"{m}\"")),
                    }
                }
                "--probability" => {
                    let a = w.arg(o)?;
                    let p: f64 = a
                        .parse()
                        .ok()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or_else(|| format!("bad --probability `{a}` (0 to 1)"))?;
                    // libxt_statistic: lround(0x80000000 * p)
                    st.every = (p * 2_147_483_648.0).round() as u32;
                }
                "--every" => {
                    let a = w.arg(o)?;
                    let n: u32 = a
                        .parse()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| format!("bad --every `{a}` (at least 1)"))?;
                    st.every = n - 1;
                }
                "--packet" if inv => return Err(format!("unexpected `!` with {o}")),
                "--packet" => {
                    let a = w.arg(o)?;
                    st.packet = a.parse().map_err(|_| format!("bad --packet `{a}`"))?;
                }
                _ => return Ok(false),
            }
            if inv {
                st.flags |= XT_STATISTIC_INVERT;
            }
            // statistic_check: count = every - packet, in both modes (the union).
            st.count = st.every.wrapping_sub(st.packet);
        }
        Match::Recent(r) => {
            let no_inv = |o: &str| -> R<()> {
                if inv {
                    Err(format!("unexpected `!` with {o}"))
                } else {
                    Ok(())
                }
            };
            match o {
                "--set" => r.set_op(XT_RECENT_SET, inv)?,
                "--rcheck" => r.set_op(XT_RECENT_CHECK, inv)?,
                "--update" => r.set_op(XT_RECENT_UPDATE, inv)?,
                "--remove" => r.set_op(XT_RECENT_REMOVE, inv)?,
                "--seconds" | "--hitcount" => {
                    no_inv(o)?;
                    let a = w.arg(o)?;
                    let n: u32 = a.parse().map_err(|_| format!("bad {o} `{a}`"))?;
                    if o == "--seconds" {
                        r.set_seconds(n)?;
                    } else {
                        r.hit_count = n;
                    }
                }
                "--reap" => {
                    no_inv(o)?;
                    r.check_set |= XT_RECENT_REAP;
                }
                "--rttl" => {
                    no_inv(o)?;
                    r.set_rttl()?;
                }
                "--name" => {
                    no_inv(o)?;
                    r.set_name(w.arg(o)?.as_bytes());
                }
                "--rsource" | "--rdest" => {
                    no_inv(o)?;
                    r.set_side(o == "--rdest");
                }
                "--mask" => {
                    no_inv(o)?;
                    r.set_mask4(parse_ip4(w.arg(o)?)?);
                }
                _ => return Ok(false),
            }
        }
        Match::Ttl(t) => {
            let mode = match o {
                "--ttl-eq" => {
                    if inv {
                        IPT_TTL_NE
                    } else {
                        IPT_TTL_EQ
                    }
                }
                "--ttl-lt" | "--ttl-gt" if inv => return Err(format!("unexpected `!` with {o}")),
                "--ttl-lt" => IPT_TTL_LT,
                "--ttl-gt" => IPT_TTL_GT,
                _ => return Ok(false),
            };
            t.ttl = w.arg(o)?.parse().map_err(|_| format!("bad {o} value"))?;
            t.mode = mode;
        }
        Match::Pkttype(p) => match o {
            "--pkt-type" => {
                let a = w.arg(o)?;
                let (_, v) = crate::save::PKTTYPES
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(a))
                    .ok_or_else(|| format!("bad --pkt-type `{a}`"))?;
                p.pkttype = *v;
                p.invert = inv as u32;
            }
            _ => return Ok(false),
        },
        Match::Connmark(mk) => match o {
            "--mark" => {
                let (v, m) = parse_mark(w.arg(o)?)?;
                mk.mark = v;
                mk.mask = m;
                mk.invert = inv as u8;
            }
            _ => return Ok(false),
        },
        Match::Dscp(d) => {
            let v = match o {
                "--dscp" => {
                    let a = w.arg(o)?;
                    let v = parse_u32(a)?;
                    if v > u32::from(XT_DSCP_MAX) {
                        return Err(format!("DSCP `{a}` out of range"));
                    }
                    v as u8
                }
                "--dscp-class" => {
                    let a = w.arg(o)?;
                    DSCP_CLASSES
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(a))
                        .map(|(_, v)| *v)
                        .ok_or_else(|| format!("invalid DSCP class `{a}`"))?
                }
                _ => return Ok(false),
            };
            d.dscp = v;
            d.invert = inv as u8;
        }
        Match::Mac(m) => match o {
            "--mac-source" => {
                let a = w.arg(o)?;
                let parts: Vec<&str> = a.split(':').collect();
                if parts.len() != 6 {
                    return Err(format!("bad mac address `{a}`"));
                }
                for (d, p) in m.srcaddr.iter_mut().zip(parts) {
                    if p.is_empty() || p.len() > 2 {
                        return Err(format!("bad mac address `{a}`"));
                    }
                    *d = u8::from_str_radix(p, 16).map_err(|_| format!("bad mac address `{a}`"))?;
                }
                m.invert = inv as u32;
            }
            _ => return Ok(false),
        },
        Match::Owner(ow) => {
            let flag = match o {
                "--uid-owner" => XT_OWNER_UID,
                "--gid-owner" => XT_OWNER_GID,
                "--socket-exists" => XT_OWNER_SOCKET,
                "--suppl-groups" => XT_OWNER_SUPPL_GROUPS,
                _ => return Ok(false),
            };
            match flag {
                XT_OWNER_UID | XT_OWNER_GID => {
                    let a = w.arg(o)?;
                    let id = |x: &str| -> R<u32> {
                        if x == "root" {
                            return Ok(0);
                        }
                        let v: u32 = x.parse().map_err(|_| format!("bad {o} `{a}`"))?;
                        if v == u32::MAX {
                            return Err(format!("bad {o} `{a}`"));
                        }
                        Ok(v)
                    };
                    let (lo, hi) = match a.split_once('-') {
                        Some((x, y)) => (id(x)?, id(y)?),
                        None => {
                            let v = id(a)?;
                            (v, v)
                        }
                    };
                    if lo > hi {
                        return Err(format!("bad {o} range `{a}`"));
                    }
                    if flag == XT_OWNER_UID {
                        (ow.uid_min, ow.uid_max) = (lo, hi);
                    } else {
                        (ow.gid_min, ow.gid_max) = (lo, hi);
                    }
                }
                XT_OWNER_SUPPL_GROUPS => {
                    if inv {
                        return Err("--suppl-groups cannot be inverted".into());
                    }
                    if ow.match_flags & XT_OWNER_GID == 0 {
                        return Err("--suppl-groups requires --gid-owner before it".into());
                    }
                }
                _ => {}
            }
            ow.match_flags |= flag;
            if inv {
                ow.invert |= flag;
            }
        }
        Match::Other { .. } => return Ok(false),
    }
    Ok(true)
}

/// Whether a match instance accepts an option (without consuming anything).
fn match_knows(m: &Match, o: &str) -> bool {
    let mut probe = m.clone();
    let dummy: [String; 4] = ["1".into(), "1".into(), "1".into(), "1".into()];
    let mut w = Words { w: &dummy, i: 0 };
    matches!(
        match_option(&mut probe, o, &mut w, false),
        Ok(true) | Err(_)
    )
}

/// `ds_classes` of libxt_dscp: (class, DSCP value).
const DSCP_CLASSES: [(&str, u8); 22] = [
    ("CS0", 0x00),
    ("CS1", 0x08),
    ("CS2", 0x10),
    ("CS3", 0x18),
    ("CS4", 0x20),
    ("CS5", 0x28),
    ("CS6", 0x30),
    ("CS7", 0x38),
    ("BE", 0x00),
    ("AF11", 0x0a),
    ("AF12", 0x0c),
    ("AF13", 0x0e),
    ("AF21", 0x12),
    ("AF22", 0x14),
    ("AF23", 0x16),
    ("AF31", 0x1a),
    ("AF32", 0x1c),
    ("AF33", 0x1e),
    ("AF41", 0x22),
    ("AF42", 0x24),
    ("AF43", 0x26),
    ("EF", 0x2e),
];

/// Aliases of one option map to one name (for the "given twice" check).
fn canonical_opt(o: &str) -> String {
    match o {
        "--source" | "--src" => "-s",
        "--destination" | "--dst" => "-d",
        "--in-interface" => "-i",
        "--out-interface" => "-o",
        "--protocol" => "-p",
        "--fragment" => "-f",
        "--source-port" => "--sport",
        "--destination-port" => "--dport",
        "--source-ports" => "--sports",
        "--destination-ports" => "--dports",
        "--syn" => "--tcp-flags",
        "--dscp-class" => "--dscp",
        "--set-mark" | "--and-mark" | "--or-mark" | "--xor-mark" | "--save-mark"
        | "--restore-mark" => "--set-xmark",
        o => o,
    }
    .to_string()
}

/// `parse_rate` of libxt_limit: `N[/second|minute|hour|day]` (unit prefixes allowed).
fn parse_rate(s: &str) -> R<u32> {
    let (num, unit) = match s.split_once('/') {
        Some((n, u)) => (n, Some(u)),
        None => (s, None),
    };
    let mult: u64 = match unit {
        None => 1,
        Some("") => return Err(format!("bad rate `{s}`")),
        Some(u) => {
            let l = u.to_ascii_lowercase();
            if "second".starts_with(&l) {
                1
            } else if "minute".starts_with(&l) {
                60
            } else if "hour".starts_with(&l) {
                3600
            } else if "day".starts_with(&l) {
                86400
            } else {
                return Err(format!("bad rate `{s}`"));
            }
        }
    };
    let r: u64 = num.parse().map_err(|_| format!("bad rate `{s}`"))?;
    limit_avg(r, mult).map_err(|e| format!("{e} `{s}`"))
}

fn new_target(name: &str, is_chain: &dyn Fn(&str) -> bool) -> R<Target> {
    match Target::default_of(name) {
        Some(t) => Ok(t),
        None if is_chain(name) => Ok(Target::Jump(name.to_string())),
        None => Err(format!("unknown target or chain `{name}`")),
    }
}

/// `ADDR[-ADDR][:PORT[-PORT][/BASE]]` of SNAT/DNAT, into `r` (`/BASE` only with `allow_base`).
fn parse_nat_range(r: &mut NatRange, s: &str, allow_base: bool) -> R<()> {
    let (ips, ports) = match s.split_once(':') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addrs = if ips.is_empty() {
        None
    } else {
        Some(match ips.split_once('-') {
            Some((a, b)) => (parse_ip4(a)?, parse_ip4(b)?),
            None => {
                let a = parse_ip4(ips)?;
                (a, a)
            }
        })
    };
    let mut base = None;
    let mut range = None;
    if let Some(p) = ports {
        let p = match p.split_once('/') {
            Some((p, b)) if allow_base => {
                let b = parse_port(b)?;
                if b == 0 {
                    return Err(format!("bad port offset in `{s}`"));
                }
                base = Some(b);
                p
            }
            Some(_) => return Err(format!("bad port range `{s}`")),
            None => p,
        };
        range = Some(parse_dash_range(p)?);
    }
    r.set_to(addrs, range).map_err(|e| format!("{e} `{s}`"))?;
    if let Some(b) = base {
        r.flags |= NF_NAT_RANGE_PROTO_OFFSET;
        r.base_proto = b;
    }
    Ok(())
}

/// `ct_event_tbl` of libxt_CT: (name, bit).
pub const CT_EVENTS: [(&str, u32); 10] = [
    ("new", 0),
    ("related", 1),
    ("destroy", 2),
    ("reply", 3),
    ("assured", 4),
    ("protoinfo", 5),
    ("helper", 6),
    ("mark", 7),
    ("natseqinfo", 8),
    ("secmark", 9),
];
/// `exp_event_tbl` of libxt_CT.
pub const EXP_EVENTS: [(&str, u32); 1] = [("new", 0)];

fn parse_events(s: &str, tbl: &[(&str, u32)]) -> R<u32> {
    let mut v = 0;
    for p in s.split(',') {
        let (_, b) = tbl
            .iter()
            .find(|(n, _)| *n == p)
            .ok_or_else(|| format!("unknown event `{p}`"))?;
        v |= 1 << b;
    }
    Ok(v)
}

/// `port` (number or service name, e.g. `ftp-data`) or `lo-hi` (numbers only).
fn parse_dash_range(p: &str) -> R<(u16, u16)> {
    if let Ok(v) = parse_port(p) {
        return Ok((v, v));
    }
    let (a, b) = p
        .split_once('-')
        .ok_or_else(|| format!("invalid port `{p}`"))?;
    let num = |x: &str| {
        x.parse::<u16>()
            .map_err(|_| format!("invalid port range `{p}`"))
    };
    Ok((num(a)?, num(b)?))
}

fn target_option(t: &mut Target, o: &str, w: &mut Words, inv: bool, ip: &IpMatch) -> R<bool> {
    if inv {
        return Err(format!("unexpected `!` before `{o}`"));
    }
    match t {
        Target::Reject(with) => match o {
            "--reject-with" => {
                let a = w.arg(o)?;
                let r = REJECT_NAMES
                    .iter()
                    .find(|r| r.0 == a || r.1 == a)
                    .ok_or_else(|| format!("unknown reject type `{a}`"))?;
                *with = r.2;
            }
            _ => return Ok(false),
        },
        Target::Log(l) => match o {
            "--log-prefix" => {
                let p = w.arg(o)?;
                if p.len() > LOG_PREFIX_MAX {
                    return Err(format!(
                        "Maximum prefix length {LOG_PREFIX_MAX} for --log-prefix"
                    ));
                }
                l.prefix = p.as_bytes().to_vec();
            }
            "--log-level" => {
                let a = w.arg(o)?;
                l.level = match a.parse::<u8>() {
                    Ok(n) if n <= 7 => n,
                    Ok(_) => return Err(format!("log level `{a}` out of range")),
                    Err(_) => LOG_LEVELS
                        .iter()
                        .find(|(n, _)| *n == a)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| format!("bad log level `{a}`"))?,
                };
            }
            "--log-tcp-sequence" => l.logflags |= IPT_LOG_TCPSEQ,
            "--log-tcp-options" => l.logflags |= IPT_LOG_TCPOPT,
            "--log-ip-options" => l.logflags |= IPT_LOG_IPOPT,
            "--log-uid" => l.logflags |= IPT_LOG_UID,
            "--log-macdecode" => l.logflags |= IPT_LOG_MACDECODE,
            _ => return Ok(false),
        },
        Target::Mark(m) => match o {
            "--set-xmark" => {
                let (v, k) = parse_mark(w.arg(o)?)?;
                *m = MarkTgInfo2::xset(v, k);
            }
            "--set-mark" => {
                let (v, k) = parse_mark(w.arg(o)?)?;
                *m = MarkTgInfo2::set(v, k);
            }
            "--and-mark" => *m = MarkTgInfo2::and(parse_u32(w.arg(o)?)?),
            "--or-mark" => *m = MarkTgInfo2::or(parse_u32(w.arg(o)?)?),
            "--xor-mark" => *m = MarkTgInfo2::xor(parse_u32(w.arg(o)?)?),
            _ => return Ok(false),
        },
        Target::Connmark { info, .. } => match o {
            "--set-xmark" => {
                let (v, k) = parse_mark(w.arg(o)?)?;
                info.set_xmark(MarkTgInfo2::xset(v, k));
            }
            "--set-mark" => {
                let (v, k) = parse_mark(w.arg(o)?)?;
                info.set_xmark(MarkTgInfo2::set(v, k));
            }
            "--save-mark" | "--restore-mark" => info.copy_mark(o == "--save-mark"),
            "--nfmask" => info.nfmask = parse_u32(w.arg(o)?)?,
            "--ctmask" => info.ctmask = parse_u32(w.arg(o)?)?,
            "--mask" => {
                let v = parse_u32(w.arg(o)?)?;
                info.nfmask = v;
                info.ctmask = v;
            }
            _ => return Ok(false),
        },
        Target::Nfqueue(q) => match o {
            "--queue-num" => q.set_num(w.arg(o)?.parse().map_err(|_| "bad --queue-num")?),
            "--queue-balance" => {
                let a = w.arg(o)?;
                let (x, y) = a
                    .split_once(':')
                    .ok_or_else(|| format!("bad --queue-balance `{a}`"))?;
                let num = |v: &str, d: u16| -> R<u16> {
                    if v.is_empty() {
                        Ok(d)
                    } else {
                        v.parse().map_err(|_| format!("bad --queue-balance `{a}`"))
                    }
                };
                let (lo, hi) = (num(x, 0)?, num(y, 65535)?);
                if !q.set_balance(lo, hi) {
                    return Err(format!(
                        "bad --queue-balance `{a}`: {lo} should be less than {hi}"
                    ));
                }
            }
            "--queue-bypass" => q.flags |= NFQ_FLAG_BYPASS,
            "--queue-cpu-fanout" => q.flags |= NFQ_FLAG_CPU_FANOUT,
            _ => return Ok(false),
        },
        Target::Ct { info, .. } => match o {
            "--notrack" => info.set_notrack(),
            "--helper" => {
                let h = w.arg(o)?;
                if h.len() >= 16 {
                    return Err("CT: helper name too long".into());
                }
                info.helper = h.as_bytes().to_vec();
            }
            "--timeout" => {
                let h = w.arg(o)?;
                if h.len() >= 32 {
                    return Err("CT: timeout name too long".into());
                }
                info.timeout = h.as_bytes().to_vec();
            }
            "--zone" => info.zone = w.arg(o)?.parse().map_err(|_| "bad --zone")?,
            "--ctevents" => info.ct_events = parse_events(w.arg(o)?, &CT_EVENTS)?,
            "--expevents" => info.exp_events = parse_events(w.arg(o)?, &EXP_EVENTS)?,
            _ => return Ok(false),
        },
        Target::Nat { kind, range, .. } => {
            let snat_dnat = matches!(kind, NatKind::Snat | NatKind::Dnat);
            match o {
                "--to-destination" if *kind == NatKind::Dnat => {
                    parse_nat_range(range, w.arg(o)?, true)?
                }
                "--to-source" if *kind == NatKind::Snat => {
                    parse_nat_range(range, w.arg(o)?, false)?
                }
                "--to-ports" if !snat_dnat => {
                    let p = w.arg(o)?;
                    check_port_proto(ip)?;
                    let (lo, hi) = parse_dash_range(p)?;
                    range
                        .set_to_ports(lo, hi)
                        .map_err(|e| format!("{e} `{p}`"))?;
                }
                "--random" => range.flags |= NF_NAT_RANGE_PROTO_RANDOM,
                "--random-fully" => range.flags |= NF_NAT_RANGE_PROTO_RANDOM_FULLY,
                "--persistent" if kind.takes_persistent() => range.flags |= NF_NAT_RANGE_PERSISTENT,
                _ => return Ok(false),
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn target_knows(t: &Target, o: &str) -> bool {
    if t.is_standard() {
        return false;
    }
    let mut probe = t.clone();
    let dummy: [String; 4] = ["1".into(), "1".into(), "1".into(), "1".into()];
    let mut w = Words { w: &dummy, i: 0 };
    let ip = IpMatch {
        ip: IptIp {
            proto: 6,
            ..Default::default()
        },
    };
    matches!(
        target_option(&mut probe, o, &mut w, false, &ip),
        Ok(true) | Err(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_quotes() {
        assert_eq!(
            tokenize(r#"-m comment --comment "hi there" -j X"#).unwrap(),
            vec!["-m", "comment", "--comment", "hi there", "-j", "X"]
        );
        assert_eq!(
            tokenize(r#"--log-prefix "a\"b""#).unwrap(),
            vec!["--log-prefix", "a\"b"]
        );
        assert!(tokenize("\"abc").is_err());
    }

    #[test]
    fn implicit_tcp_and_syn() {
        let r = parse_rule_str("-p tcp --syn --dport 22 -j ACCEPT").unwrap();
        assert_eq!(r.matches.len(), 1);
        let Match::Tcp(t) = r.matches[0] else {
            panic!()
        };
        assert_eq!((t.flg_mask, t.flg_cmp, t.dpts), (0x17, 0x02, [22, 22]));
        assert_eq!(r.target, Target::Accept);
    }

    #[test]
    fn addresses_are_masked() {
        let r = parse_rule_str("! -s 10.1.2.3/8 -d 1.2.3.4").unwrap();
        assert_eq!(r.ip.ip.src, [10, 0, 0, 0]);
        assert_eq!(r.ip.ip.smsk, [255, 0, 0, 0]);
        assert_eq!(r.ip.ip.dmsk, [255; 4]);
        assert_eq!(r.ip.ip.invflags, IPT_INV_SRCIP);
    }

    #[test]
    fn errors() {
        assert!(parse_rule_str("-m multiport --dports 1,2").is_err());
        assert!(parse_rule_str("-j MASQUERADE --to-ports 5").is_err());
        assert!(parse_rule_str("-m nosuch").is_err());
        assert!(parse_save("*nosuch\nCOMMIT\n").is_err());
        assert!(parse_save("*filter\n-A INPUT -j ACCEPT\n").is_err());
    }
}
