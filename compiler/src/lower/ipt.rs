//! Lowering of a checked ruleset ([`Hir`]) to iptables tables ([`nfr_ipt::Table`]), the form
//! `nfr_ipt::encode` turns into the byte-exact blob iptables-legacy-restore would send.
//!
//! # What maps
//! A table maps when [`table_mapping`] says `Maps` with family `ip`: its base chains
//! become the built-in chains of that iptables table (policy kept; a hook without a base chain
//! gets an empty ACCEPT chain, as iptables creates it), user chains keep their names.
//!
//! Every rule becomes one or more entries, built as `nfr_ipt` values (`IpMatch`, `Match`,
//! `Target`) directly. Each match and target starts from what iptables' `-m NAME`/`-j NAME`
//! starts from and takes its options through the functions the iptables-restore parser calls
//! (`nfr_ipt::ext`: defaults, revisions, flag bits, masks), and the finished entry goes through
//! the extensions' final checks (`nfr_ipt::check_rule`), so an entry is the one
//! iptables-legacy-restore builds from its iptables-save line (`nfr_ipt::rule_spec`, which is
//! also the text diagnostics show). Matches (as iptables options):
//! - `ip saddr/daddr` value/prefix (`!=` too) → `-s/-d`; ranges → `-m iprange`;
//! - `iifname/oifname` (`"eth*"` → `eth+`, `!=`) → `-i/-o` (not on hooks without that device);
//! - `ip protocol` / `meta l4proto` (the implicit dependency of `tcp dport` too) → `-p`;
//! - `tcp/udp sport/dport` value, range, `<`/`>`, `!=` → `-m tcp/udp`; port sets → `-m multiport`
//!   (15 slots, a range takes 2); `tcp flags` → `--tcp-flags` (single-flag tests, masked compares
//!   within FIN..URG);
//! - `icmp type [code]` → `-m icmp`; `ct state/status/direction` → `-m conntrack` (`ct status
//!   snat/dnat` → `--ctstate SNAT/DNAT`, the others → `--ctstatus`); `meta mark [& m]` → `-m mark`;
//!   `ct mark` → `-m connmark`; `ip dscp` → `-m dscp`; the rule comment → `-m comment` (on every
//!   entry of the rule); `limit rate N/unit [burst B]` → `-m limit`.
//!
//! Statements and verdicts: accept/drop/return/continue/jump/goto/queue → ACCEPT, DROP, RETURN,
//! no target, `-j chain`, `-g chain`, NFQUEUE; reject → REJECT; log → LOG; `meta mark set` →
//! MARK; `ct mark set` → CONNMARK (`meta mark set ct mark` = `--restore-mark`, `ct mark set meta
//! mark` = `--save-mark`); notrack → `CT --notrack`; `ct helper set` has no rule-for-rule form
//! (nft attaches after conntrack, iptables' `CT --helper` through a raw-table template before it);
//! snat/dnat/masquerade/redirect → SNAT/DNAT/MASQUERADE/REDIRECT. `counter` adds nothing (every
//! iptables entry counts).
//!
//! # When one rule becomes several entries
//! - **Several actions** (`log prefix "x" drop`, `meta mark set 1 accept`): one entry per action,
//!   each with the matches written before that action. Allowed unless an earlier action changes
//!   something a repeated match reads (`meta mark 1 meta mark set 2 accept`), or a `limit` would
//!   be repeated (each entry would spend its own tokens).
//! - **Sets** (`icmp type { 3, 11 }`, `ip saddr { a, b }`, more than 15 ports): one entry per
//!   element (per chunk of 15 ports), action by action. Allowed when the rule ends in a terminal
//!   verdict (accept, drop, return, goto, queue, reject, nat: first match decides, so a packet
//!   hits exactly one entry and is counted once); for non-terminal rules the elements must be
//!   disjoint and must not be a mark (which a jump or an action could change between entries),
//!   and the rule must not hold a `limit`.
//!
//! # What does not map (diagnostic at the offending span)
//! inet and ip6 tables, named sets/maps, vmaps, maps in statements, concatenations, `!=` with an
//! address/interface/type set, `iif`/`oif` (ifindex), `log group`, `limit ... over`, byte rates,
//! payload writes, a `counter` or `limit` before a match iptables would evaluate first, values
//! iptables' extensions refuse (`persistent` with masquerade/redirect, a limit burst over 10000 or
//! a rate over 10000/second, `ip protocol != 0`, `queue num N-N`, a NAT port 0), and any other
//! expression without an iptables match. Codes: E0700 (table), E0701 (rule), E0702 (the
//! built table fails the translate_table check).
#![forbid(unsafe_code)]

use crate::diag::{Diagnostic, Span};
use crate::hir::{
    BitOp, ChainId, ChainKind, CtKey, Expr, ExprKind, Family, Hir, Hook, Item, KeyPart, Match,
    MetaKey, NatKind, Op, Operand, RateUnit, RejectKind, Rhs, StmtKind, TableId, Value,
    VerdictKind,
};
pub use crate::lower::ipt_mapping::{IptMapping, IptReason, IptTable, table_mapping};
/// The way back (`nfc decompile`, `nfc import`) lives in [`crate::raise::ipt`].
pub use crate::raise::ipt::{
    rule_to_nfr, shared_recent_lists, table_to_nfr, table_to_nfr_among, tables_to_nfr,
};

/// Code: the table does not map onto an iptables table.
pub const E_TABLE: &str = "E0700";
/// Code: a rule (or part of it) has no iptables form.
pub const E_RULE: &str = "E0701";
/// Code: the built table fails the kernel's translate_table checks.
pub const E_VERIFY: &str = "E0702";

/// The iptables name of a mapped table.
pub fn ipt_table_name(t: IptTable) -> &'static str {
    t.name()
}

/// Lower every table of the ruleset. Any table that does not map is an error.
pub fn lower_ipt(hir: &Hir) -> Result<Vec<(TableId, nfr_ipt::Table)>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for t in &hir.tables {
        match lower_ipt_table(hir, t.id) {
            Ok(x) => out.push((t.id, x)),
            Err(d) => diags.extend(d),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Lower one table.
pub fn lower_ipt_table(hir: &Hir, id: TableId) -> Result<nfr_ipt::Table, Vec<Diagnostic>> {
    lower_ipt_table_mapped(hir, id).map(|(t, _)| t)
}

/// Where the entries of one nft rule went: its chain's iptables name, its rule index, the
/// index of its first entry in that chain, how many entries it became, and how many of those
/// carry its last action (the entries whose counters count what the rule's end sees).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleEntries {
    pub chain: ChainId,
    pub ipt_chain: String,
    pub rule: usize,
    pub first: usize,
    pub count: usize,
    pub last_action: usize,
}

/// Lower one table and tell where each rule's entries are.
pub fn lower_ipt_table_mapped(
    hir: &Hir,
    id: TableId,
) -> Result<(nfr_ipt::Table, Vec<RuleEntries>), Vec<Diagnostic>> {
    let mut map = Vec::new();
    let Some(t) = hir.table(id) else {
        return Err(vec![Diagnostic::error(
            E_TABLE,
            Span::default(),
            "no such table",
        )]);
    };
    let (table, builtin) = match &table_mapping(hir, id) {
        IptMapping::Maps {
            table,
            family,
            builtin,
        } => {
            if *family != Family::Ip {
                return Err(vec![
                    Diagnostic::error(
                        E_TABLE,
                        t.span,
                        format!(
                            "table {} {} would be an ip6tables table; nfc emits iptables (IPv4) blobs only",
                            t.family.name(),
                            t.name
                        ),
                    )
                    .with_help("use `table ip ...` for an iptables table"),
                ]);
            }
            (*table, builtin.clone())
        }
        IptMapping::No(reasons) => return Err(mapping_diags(hir, id, reasons)),
    };
    let name = ipt_table_name(table);
    let Some(mut out) = nfr_ipt::Table::new(name) else {
        return Err(vec![Diagnostic::error(
            E_TABLE,
            t.span,
            "unknown iptables table",
        )]);
    };
    let mut diags = Vec::new();
    let mut lw = Lowerer {
        hir,
        diags: &mut diags,
        last_group: 0,
    };
    // user chains first, so jumps resolve when rules are parsed
    for cid in &t.chains {
        let Some(c) = hir.chain(*cid) else { continue };
        if matches!(c.kind, ChainKind::User) {
            if let Some(why) = bad_chain_name(&c.name) {
                lw.diags.push(
                    Diagnostic::error(
                        E_RULE,
                        c.span,
                        format!("`{}` cannot be an iptables chain name: {why}", c.name),
                    )
                    .with_help("rename the chain"),
                );
            }
            out.add_user_chain(&c.name);
        }
    }
    for cid in &t.chains {
        let Some(c) = hir.chain(*cid) else { continue };
        let (chain_name, hook) = match &c.kind {
            ChainKind::Base(b) => {
                let Some(h) = vm_hook(b.hook) else { continue };
                if !builtin.iter().any(|(_, id)| id == cid) {
                    continue;
                }
                let policy = match b.policy {
                    crate::hir::Policy::Accept => nfr_ipt::Policy::Accept,
                    crate::hir::Policy::Drop => nfr_ipt::Policy::Drop,
                };
                out.set_policy(h, policy);
                (nfr_ipt::hook_chain_name(h).to_string(), Some(b.hook))
            }
            ChainKind::User => (c.name.clone(), None),
        };
        let mut first = 0;
        for (ri, r) in c.rules.iter().enumerate() {
            lw.last_group = 0;
            let rules = lw.rule(r, hook);
            map.push(RuleEntries {
                chain: *cid,
                ipt_chain: chain_name.clone(),
                rule: ri,
                first,
                count: rules.len(),
                last_action: lw.last_group,
            });
            first += rules.len();
            for rule in rules {
                out.append(&chain_name, rule);
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    match nfr_ipt::encode(&out) {
        Ok(blob) => {
            if let Err(e) = nfr_ipt::verify(&blob) {
                return Err(vec![
                    Diagnostic::error(
                        E_VERIFY,
                        t.span,
                        format!("the iptables table built from this table fails the kernel's checks: {e}"),
                    )
                    .with_note("this is the check translate_table does on IPT_SO_SET_REPLACE"),
                ]);
            }
        }
        Err(e) => {
            return Err(vec![Diagnostic::error(
                E_VERIFY,
                t.span,
                format!("the iptables table cannot be encoded: {e}"),
            )]);
        }
    }
    Ok((out, map))
}

fn vm_hook(h: Hook) -> Option<nfr_ipt::Hook> {
    h.nf_hook()
}

const RESERVED: &[&str] = &[
    "ACCEPT",
    "DROP",
    "QUEUE",
    "RETURN",
    "PREROUTING",
    "INPUT",
    "FORWARD",
    "OUTPUT",
    "POSTROUTING",
    "REJECT",
    "LOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "NFQUEUE",
    "SNAT",
    "DNAT",
    "MASQUERADE",
    "REDIRECT",
    "ERROR",
];

fn bad_chain_name(n: &str) -> Option<&'static str> {
    if n.len() > 28 {
        return Some("longer than 28 bytes");
    }
    if RESERVED.contains(&n) {
        return Some("it is a built-in chain or target name");
    }
    if n.starts_with('-') || n.starts_with('!') || n.chars().any(|c| c.is_whitespace()) {
        return Some("iptables refuses names starting with - or ! or holding spaces");
    }
    None
}

fn table_valid_hooks_text(t: &str) -> Option<String> {
    use nfr_proto::hook::{IptTable, STD_PRIOS};
    let table = IptTable::by_name(t)?;
    // The table's hooks grouped by priority, each group with nft's name for that priority.
    let mut groups: Vec<(i32, Vec<&str>)> = Vec::new();
    for h in table.valid() {
        let p = table.priority(h);
        match groups.iter_mut().find(|(q, _)| *q == p) {
            Some((_, hooks)) => hooks.push(h.name()),
            None => groups.push((p, vec![h.name()])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(p, hooks)| {
            let name = STD_PRIOS
                .iter()
                .find(|s| s.value == *p)
                .map_or(String::new(), |s| format!("{}, ", s.name));
            format!("{} (priority {name}{p})", hooks.join(", "))
        })
        .collect();
    let ty = table.chain_type(nfr_proto::hook::Hook::Prerouting);
    let ty = if ty == "nat" { ", type nat" } else { "" };
    Some(format!(
        "valid hooks for the {t} table are {}{ty}",
        parts.join(", ")
    ))
}

fn mapping_diags(hir: &Hir, id: TableId, reasons: &[IptReason]) -> Vec<Diagnostic> {
    let Some(t) = hir.table(id) else {
        return Vec::new();
    };
    let chain_span = |c: ChainId| {
        hir.chain(c).map_or(t.span, |c| match &c.kind {
            ChainKind::Base(b) => b.span,
            ChainKind::User => c.span,
        })
    };
    let chain_name = |c: ChainId| hir.chain(c).map_or("?", |c| c.name.as_str());
    let mut out = Vec::new();
    for r in reasons {
        let d = match r {
            IptReason::Family(f) => Diagnostic::error(
                E_TABLE,
                t.span,
                format!("{} tables have no iptables equivalent", f.name()),
            )
            .with_primary_label("iptables tables are per family")
            .with_help("write `table ip ...` (IPv4) to lower to iptables"),
            IptReason::NoBaseChains => Diagnostic::error(
                E_TABLE,
                t.span,
                "a table without base chains has no iptables equivalent",
            ),
            IptReason::SharedHook { hook, chains } => {
                let mut d = Diagnostic::error(
                    E_TABLE,
                    chain_span(*chains.last().unwrap_or(&ChainId(0))),
                    format!(
                        "several base chains on the {} hook; an iptables table has one built-in chain per hook",
                        hook.name()
                    ),
                );
                for c in chains.iter().take(chains.len().saturating_sub(1)) {
                    d = d.with_label(
                        chain_span(*c),
                        format!("`{}` is on that hook too", chain_name(*c)),
                    );
                }
                d
            }
            IptReason::NoMatchingTable { chain, detail } => {
                let mut d = Diagnostic::error(
                    E_TABLE,
                    chain_span(*chain),
                    format!("base chain `{}` fits no iptables table", chain_name(*chain)),
                )
                .with_primary_label(detail.clone());
                if let Some(v) = table_valid_hooks_text(&t.name) {
                    d = d.with_note(v);
                }
                d
            }
            IptReason::MixedTables(picks) => {
                let mut d = Diagnostic::error(
                    E_TABLE,
                    t.span,
                    "the base chains of this table belong to different iptables tables",
                );
                for (c, it) in picks {
                    d = d.with_label(
                        chain_span(*c),
                        format!("this is iptables' {} table", ipt_table_name(*it)),
                    );
                }
                d.with_help("split the table: one nft table per iptables table")
            }
            IptReason::NamedSets => {
                let mut d = Diagnostic::error(
                    E_TABLE,
                    t.span,
                    "named sets and maps have no iptables equivalent (ipset is not supported)",
                )
                .with_primary_label("in this table");
                for s in t.sets.iter().filter_map(|s| hir.set(*s)) {
                    d = d.with_label(s.span, format!("`{}`", s.name));
                }
                d
            }
            IptReason::Ingress(c) => Diagnostic::error(
                E_TABLE,
                chain_span(*c),
                "the ingress hook has no iptables equivalent",
            ),
        };
        out.push(d);
    }
    if out.is_empty() {
        out.push(Diagnostic::error(
            E_TABLE,
            t.span,
            "this table does not map to an iptables table",
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rules

/// Something a match reads that an action may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Mark,
    CtMark,
    CtState,
}

/// An `ipt_ip` option of an entry (`-s`, `-d`, `-i`, `-o`, `-p`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum IpOpt {
    Src([u8; 4], [u8; 4], bool),
    Dst([u8; 4], [u8; 4], bool),
    In(String, bool),
    Out(String, bool),
    Proto(u16, bool),
}

impl IpOpt {
    /// iptables' option, for the "one per rule" diagnostic.
    fn key(&self) -> &'static str {
        match self {
            IpOpt::Src(..) => "-s",
            IpOpt::Dst(..) => "-d",
            IpOpt::In(..) => "-i",
            IpOpt::Out(..) => "-o",
            IpOpt::Proto(..) => "-p",
        }
    }

    fn apply(&self, ip: &mut nfr_ipt::IpMatch) {
        match self {
            IpOpt::Src(a, m, inv) => ip.set_src(*a, *m, *inv),
            IpOpt::Dst(a, m, inv) => ip.set_dst(*a, *m, *inv),
            IpOpt::In(n, inv) => ip.set_iniface(n, *inv),
            IpOpt::Out(n, inv) => ip.set_outiface(n, *inv),
            IpOpt::Proto(p, inv) => ip.set_proto(*p, *inv),
        }
    }
}

/// An option of a match extension; the match is the piece's `module`.
#[derive(Clone, Debug)]
enum MatchOpt {
    /// tcp/udp `[!] --sport|--dport lo[:hi]`.
    Port {
        src: bool,
        range: [u16; 2],
        inv: bool,
    },
    /// `[!] --tcp-flags mask cmp`.
    TcpFlags { mask: u8, cmp: u8, inv: bool },
    /// `[!] --icmp-type type[/code]`.
    IcmpType { ty: u8, code: Option<u8>, inv: bool },
    /// `icmp code`: joins the `icmp type` before it.
    IcmpCode(u8),
    /// `[!] --sports|--dports p,lo:hi,...`.
    Multiport {
        src: bool,
        ports: Vec<(u16, Option<u16>)>,
        inv: bool,
    },
    /// `[!] --src-range|--dst-range lo-hi`.
    Range {
        src: bool,
        lo: [u8; 4],
        hi: [u8; 4],
        inv: bool,
    },
    /// `[!] --dscp v`.
    Dscp { dscp: u8, inv: bool },
    /// mark/connmark `[!] --mark v/m`.
    Mark { mark: u32, mask: u32, inv: bool },
    /// `[!] --ctstate` (`XT_CONNTRACK_STATE_*` bits).
    CtState { mask: u16, inv: bool },
    /// `[!] --ctstatus` (`IPS_*` bits).
    CtStatus { mask: u16, inv: bool },
    /// `--ctdir ORIGINAL|REPLY`.
    CtDir { reply: bool },
    /// statistic's whole payload (`--mode random|nth ...`).
    Statistic(nfr_ipt::layout::StatisticInfo),
    /// addrtype `[!] --src-type|--dst-type T` (`1 << RTN_*`).
    Addrtype { daddr: bool, mask: u16, inv: bool },
}

impl MatchOpt {
    /// Set the option in its match (as the extension's option parser does).
    fn apply(&self, m: &mut nfr_ipt::Match) -> Result<(), &'static str> {
        use nfr_ipt::Match as M;
        match (m, self) {
            (M::Tcp(t), MatchOpt::Port { src, range, inv }) => {
                if *src {
                    t.set_sport(*range, *inv)
                } else {
                    t.set_dport(*range, *inv)
                }
            }
            (M::Udp(u), MatchOpt::Port { src, range, inv }) => {
                if *src {
                    u.set_sport(*range, *inv)
                } else {
                    u.set_dport(*range, *inv)
                }
            }
            (M::Tcp(t), MatchOpt::TcpFlags { mask, cmp, inv }) => t.set_flags(*mask, *cmp, *inv),
            (M::Icmp(i), MatchOpt::IcmpType { ty, code, inv }) => {
                i.set_type(*ty, code.map(|c| [c, c]), *inv)
            }
            (M::Multiport(mp), MatchOpt::Multiport { src, ports, inv }) => {
                let flags = if *src {
                    nfr_ipt::layout::XT_MULTIPORT_SOURCE
                } else {
                    nfr_ipt::layout::XT_MULTIPORT_DESTINATION
                };
                mp.set_ports(flags, ports, *inv)?
            }
            (M::Iprange(r), MatchOpt::Range { src, lo, hi, inv }) => {
                if *src {
                    r.set_src(*lo, *hi, *inv)
                } else {
                    r.set_dst(*lo, *hi, *inv)
                }
            }
            (M::Dscp(d), MatchOpt::Dscp { dscp, inv }) => {
                d.dscp = *dscp;
                d.invert = u8::from(*inv);
            }
            (M::Mark(mk) | M::Connmark(mk), MatchOpt::Mark { mark, mask, inv }) => {
                mk.mark = *mark;
                mk.mask = *mask;
                mk.invert = u8::from(*inv);
            }
            (M::Conntrack(c), MatchOpt::CtState { mask, inv }) => c.set_state(*mask, *inv),
            (M::Conntrack(c), MatchOpt::CtStatus { mask, inv }) => c.set_status(*mask, *inv),
            (M::Conntrack(c), MatchOpt::CtDir { reply }) => c.set_direction(*reply),
            (M::Statistic(st), MatchOpt::Statistic(v)) => *st = *v,
            (M::Addrtype(at), MatchOpt::Addrtype { daddr, mask, inv }) => {
                use nfr_ipt::layout::{XT_ADDRTYPE_INVERT_DEST, XT_ADDRTYPE_INVERT_SOURCE};
                let (m, bit) = if *daddr {
                    (&mut at.dest, XT_ADDRTYPE_INVERT_DEST)
                } else {
                    (&mut at.source, XT_ADDRTYPE_INVERT_SOURCE)
                };
                *m |= *mask;
                if *inv {
                    at.flags |= bit;
                }
            }
            _ => return Err("an option of another match"),
        }
        Ok(())
    }
}

/// A piece of one iptables rule, in source order.
#[derive(Clone, Debug)]
enum Piece {
    /// An `ipt_ip` option.
    Ip { opt: IpOpt, span: Span },
    /// An option of a match module; `key` is the option, for merging (`merge: false` = own match).
    Opt {
        module: &'static str,
        key: &'static str,
        opt: MatchOpt,
        merge: bool,
        reads: Option<Field>,
        span: Span,
    },
    /// One of several alternatives (a set): each a list of pieces.
    Alts {
        alts: Vec<Vec<Piece>>,
        /// (lo, hi) byte bounds per alternative, for the disjointness check.
        bounds: Vec<([u8; 16], [u8; 16])>,
        reads: Option<Field>,
        span: Span,
    },
    /// `limit` (stateful: must appear in exactly one entry).
    Limit {
        info: nfr_ipt::layout::RateInfo,
        span: Span,
    },
    /// `counter` (no entry of its own).
    Counter { span: Span },
    /// An action: the target (`Fallthrough` for none).
    Action {
        target: nfr_ipt::Target,
        terminal: bool,
        modifies: Vec<Field>,
        span: Span,
    },
}

struct Lowerer<'a> {
    hir: &'a Hir,
    diags: &'a mut Vec<Diagnostic>,
    /// Entries of the last action group of the rule just lowered.
    last_group: usize,
}

fn be_u32(v: &Value) -> u32 {
    v.bytes
        .iter()
        .rev()
        .take(4)
        .rev()
        .fold(0u32, |a, b| (a << 8) | u32::from(*b))
}

fn ipv4(v: &Value) -> Option<[u8; 4]> {
    v.bytes.as_slice().try_into().ok()
}

fn ifname(v: &Value) -> String {
    let end = v
        .bytes
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(v.bytes.len());
    let name = String::from_utf8_lossy(&v.bytes[..end]).into_owned();
    if v.bytes.len() < 16 && !v.bytes.contains(&0) {
        format!("{name}+")
    } else {
        name
    }
}

fn pad16(b: &[u8], fill: u8) -> [u8; 16] {
    let mut o = [fill; 16];
    for (i, x) in b.iter().take(16).enumerate() {
        o[i] = *x;
    }
    o
}

fn bounds(k: &KeyPart) -> ([u8; 16], [u8; 16]) {
    match k {
        KeyPart::Value(v) => {
            if v.ty == crate::hir::Type::Ifname && v.bytes.len() < 16 {
                (pad16(&v.bytes, 0), pad16(&v.bytes, 0xff))
            } else {
                (pad16(&v.bytes, 0), pad16(&v.bytes, 0))
            }
        }
        KeyPart::Prefix { value, len } => {
            let lo = pad16(&value.bytes, 0);
            let mut hi = lo;
            let n = value.bytes.len().min(16);
            for bit in (*len as usize)..(n * 8) {
                hi[bit / 8] |= 0x80 >> (bit % 8);
            }
            (lo, hi)
        }
        KeyPart::Range { lo, hi } => (pad16(&lo.bytes, 0), pad16(&hi.bytes, 0)),
    }
}

/// nft's ct state bits and xt_conntrack's.
const CT_STATES: [(u32, u16); 5] = [
    (1, nfr_ipt::layout::XT_CONNTRACK_STATE_INVALID),
    (2, nfr_ipt::layout::XT_CONNTRACK_STATE_ESTABLISHED),
    (4, nfr_ipt::layout::XT_CONNTRACK_STATE_RELATED),
    (8, nfr_ipt::layout::XT_CONNTRACK_STATE_NEW),
    (0x40, nfr_ipt::layout::XT_CONNTRACK_STATE_UNTRACKED),
];

/// The `XT_CONNTRACK_STATE_*` mask of nft ct state bits (`None`: empty or an unknown bit).
fn ct_state_mask(bits: u32) -> Option<u16> {
    let mut mask = 0;
    let mut rest = bits;
    for (b, x) in CT_STATES {
        if bits & b != 0 {
            mask |= x;
            rest &= !b;
        }
    }
    (rest == 0 && mask != 0).then_some(mask)
}

pub(crate) const TCP_FLAGS: [(u8, &str); 6] = [
    (0x01, "FIN"),
    (0x02, "SYN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x10, "ACK"),
    (0x20, "URG"),
];

impl Lowerer<'_> {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(E_RULE, span, msg).with_note("iptables cannot express this"));
    }

    fn err_help(&mut self, span: Span, msg: impl Into<String>, help: &str) {
        self.diags.push(
            Diagnostic::error(E_RULE, span, msg)
                .with_note("iptables cannot express this")
                .with_help(help),
        );
    }

    /// Lower one rule to entries (empty on error; diagnostics pushed).
    fn rule(&mut self, r: &crate::hir::Rule, hook: Option<Hook>) -> Vec<nfr_ipt::Rule> {
        let before = self.diags.len();
        let mut pieces: Vec<Piece> = Vec::new();
        for it in &r.items_with_deps() {
            match &**it {
                Item::Match(m) => {
                    if let Some(p) = self.matched(m, hook) {
                        pieces.push(p);
                    }
                }
                Item::Stmt(s) => {
                    if let Some(p) = self.stmt(s) {
                        pieces.push(p);
                    }
                }
                Item::Vmap(v) => self.err_help(
                    v.span,
                    "verdict maps have no iptables equivalent",
                    "write one rule per map element",
                ),
            }
        }
        let last = match &r.verdict {
            Some(v) => self.verdict(v),
            None => None,
        };
        if self.diags.len() > before {
            return Vec::new();
        }
        if let Some(a) = last {
            pieces.push(a);
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Action { .. })) {
            pieces.push(Piece::Action {
                target: nfr_ipt::Target::Fallthrough,
                terminal: false,
                modifies: Vec::new(),
                span: r.span,
            });
        }
        self.fuse_icmp(&mut pieces);
        if self.diags.len() > before {
            return Vec::new();
        }
        self.expand(r, &pieces, before)
    }

    /// `icmp type X` followed by `icmp code Y` → one `--icmp-type X/Y`.
    fn fuse_icmp(&mut self, pieces: &mut Vec<Piece>) {
        let mut i = 0;
        while i < pieces.len() {
            if let Piece::Opt {
                opt: MatchOpt::IcmpCode(c),
                span,
                ..
            } = &pieces[i]
            {
                let (c, span) = (*c, *span);
                let ty = pieces[..i].iter_mut().rev().find_map(|p| match p {
                    Piece::Opt {
                        opt: MatchOpt::IcmpType { code, inv, .. },
                        ..
                    } => Some((code, *inv)),
                    _ => None,
                });
                match ty {
                    Some((code @ None, false)) => {
                        *code = Some(c);
                        pieces.remove(i);
                        continue;
                    }
                    _ => self.err_help(
                        span,
                        "`icmp code` without a single, positive `icmp type` before it",
                        "iptables matches a code only as `--icmp-type TYPE/CODE`",
                    ),
                }
            }
            i += 1;
        }
    }

    fn expand(
        &mut self,
        r: &crate::hir::Rule,
        pieces: &[Piece],
        before: usize,
    ) -> Vec<nfr_ipt::Rule> {
        let actions: Vec<usize> = pieces
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p, Piece::Action { .. }))
            .map(|(i, _)| i)
            .collect();
        let last_action = *actions.last().unwrap_or(&0);
        let terminal_rule = actions.len() == 1
            && matches!(
                pieces.get(last_action),
                Some(Piece::Action { terminal: true, .. })
            );
        // counter/limit before a match that iptables evaluates first (or at all, for counters)
        for (i, p) in pieces.iter().enumerate() {
            match p {
                Piece::Counter { span }
                    if pieces[i..].iter().any(|q| {
                        matches!(
                            q,
                            Piece::Ip { .. }
                                | Piece::Opt { .. }
                                | Piece::Alts { .. }
                                | Piece::Limit { .. }
                        )
                    }) =>
                {
                    self.err_help(
                        *span,
                        "`counter` before a match: an iptables entry counts only packets that match all of it",
                        "move `counter` after the matches",
                    );
                }
                Piece::Limit { span, .. } => {
                    let later_ip = pieces[i..].iter().any(|q| match q {
                        Piece::Ip { .. } => true,
                        Piece::Alts { alts, .. } => {
                            alts.iter().flatten().any(|a| matches!(a, Piece::Ip { .. }))
                        }
                        _ => false,
                    });
                    if later_ip {
                        self.err_help(
                            *span,
                            "`limit` before an address, interface or protocol match: iptables tests those first, so the limit would see fewer packets",
                            "move `limit` after the matches",
                        );
                    }
                    let users = actions.iter().filter(|a| **a > i).count();
                    if users > 1 {
                        self.err_help(
                            *span,
                            "`limit` in a rule with several actions: each iptables entry would spend its own tokens",
                            "keep one action after `limit`, or jump to a chain holding the actions",
                        );
                    }
                }
                _ => {}
            }
        }
        // an action that changes what an earlier (repeated) match reads
        for (n, ai) in actions.iter().enumerate() {
            if n + 1 == actions.len() {
                break;
            }
            let Piece::Action { modifies, span, .. } = &pieces[*ai] else {
                continue;
            };
            let reads = |p: &Piece| match p {
                Piece::Opt { reads, .. } | Piece::Alts { reads, .. } => *reads,
                _ => None,
            };
            if pieces[..*ai]
                .iter()
                .any(|p| reads(p).is_some_and(|f| modifies.contains(&f)))
            {
                self.err_help(
                    *span,
                    "this action changes a field the rule matched on before it; iptables would test the match again, after the change, for the next action",
                    "split the rule: one rule per action",
                );
            }
        }
        // sets expanded into several entries
        let alts: Vec<&Piece> = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Alts { .. }))
            .collect();
        if !alts.is_empty() && !terminal_rule {
            for a in &alts {
                let Piece::Alts {
                    bounds,
                    reads,
                    span,
                    ..
                } = a
                else {
                    continue;
                };
                if reads.is_some() {
                    self.err_help(
                        *span,
                        "a set of marks in a rule without a terminal verdict: the entries iptables needs (one per element) could each match after an action changed the mark",
                        "end the rule with accept/drop/return/goto, or write one rule per element",
                    );
                }
                let mut b = bounds.clone();
                b.sort();
                if b.windows(2).any(|x| x[1].0 <= x[0].1) {
                    self.err_help(
                        *span,
                        "overlapping set elements in a rule without a terminal verdict: a packet would match several of the iptables entries",
                        "make the elements disjoint",
                    );
                }
            }
            if pieces.iter().any(|p| matches!(p, Piece::Limit { .. })) {
                self.err_help(
                    r.span,
                    "`limit` in a rule whose set expands into several iptables entries: each would have its own token bucket",
                    "split the rule",
                );
            }
        }
        if self.diags.len() > before {
            return Vec::new();
        }
        let mut out = Vec::new();
        for ai in &actions {
            self.last_group = out.len();
            let prefix = &pieces[..*ai];
            let Piece::Action { target, span, .. } = &pieces[*ai] else {
                continue;
            };
            for combo in combos(prefix) {
                let rule = match build_rule(&combo, target, r.comment.as_deref()) {
                    Ok(rule) => rule,
                    Err((at, m)) => {
                        self.err(at.unwrap_or(*span), m);
                        continue;
                    }
                };
                match nfr_ipt::check_rule(&rule) {
                    Ok(()) => out.push(rule),
                    Err(e) => self.diags.push(
                        Diagnostic::error(
                            E_RULE,
                            r.span,
                            format!(
                                "iptables refuses the rule `{}`: {e}",
                                nfr_ipt::rule_spec(&rule).trim()
                            ),
                        )
                        .with_note("this is the iptables rule nfc would emit for it"),
                    ),
                }
            }
        }
        if self.diags.len() > before {
            return Vec::new();
        }
        self.last_group = out.len() - self.last_group;
        out
    }

    // -------------------------------------------------------------------------------------
    // matches

    fn matched(&mut self, m: &Match, hook: Option<Hook>) -> Option<Piece> {
        let span = m.span;
        match &m.left.kind {
            ExprKind::Payload { field: Some(f), .. } => self.payload(m, f.proto, f.field),
            ExprKind::Payload {
                field: None, base, ..
            } => self.payload(m, crate::hir::raw_base_name(*base), ""),
            ExprKind::Meta { key } => self.meta(m, key, hook),
            ExprKind::Ct { key, dir, .. } => {
                if dir.is_some() {
                    self.err(span, format!("`ct {}` with a direction", key.name));
                    return None;
                }
                self.ct(m, key)
            }
            ExprKind::Bitwise { expr, op, value } => self.bitwise(m, expr, *op, value),
            // `numgen inc mod N [!=] P`: libxt_statistic's nth mode (its xlate, reversed).
            ExprKind::Numgen {
                random: false,
                modulus,
                offset: 0,
            } => {
                use nfr_ipt::layout::{StatisticInfo, XT_STATISTIC_INVERT, XT_STATISTIC_MODE_NTH};
                let (inv, v) = self.eq_value(m)?;
                let (every, packet) = (modulus - 1, be_u32(v));
                if packet > every {
                    self.err(span, "a `numgen` value at or above its modulus");
                    return None;
                }
                Some(Piece::Opt {
                    module: "statistic",
                    key: "statistic",
                    opt: MatchOpt::Statistic(StatisticInfo {
                        mode: XT_STATISTIC_MODE_NTH,
                        flags: if inv { XT_STATISTIC_INVERT } else { 0 },
                        every,
                        packet,
                        count: every - packet,
                    }),
                    merge: false,
                    reads: None,
                    span,
                })
            }
            ExprKind::Numgen { .. } => {
                self.err(
                    span,
                    "this `numgen` (iptables has `numgen inc mod N == P` only)",
                );
                None
            }
            // `fib daddr type local`: `-m addrtype --dst-type LOCAL` (libxt_addrtype's xlate, reversed).
            ExprKind::FibType { daddr } => {
                let (inv, v) = self.eq_value(m)?;
                let Some(mask) = 1u16.checked_shl(be_u32(v)).filter(|&b| b < 1 << 12) else {
                    self.err(span, "a route type iptables' addrtype does not know");
                    return None;
                };
                Some(Piece::Opt {
                    module: "addrtype",
                    key: if *daddr { "dst-type" } else { "src-type" },
                    opt: MatchOpt::Addrtype {
                        daddr: *daddr,
                        mask,
                        inv,
                    },
                    merge: true,
                    reads: None,
                    span,
                })
            }
            ExprKind::Concat(_) => {
                self.err_help(
                    span,
                    "concatenations have no iptables equivalent",
                    "write one match per field (one rule per element)",
                );
                None
            }
        }
    }

    /// Values of the right side for simple matches: Eq/Neq with a value.
    fn eq_value<'v>(&mut self, m: &'v Match) -> Option<(bool, &'v Value)> {
        match (&m.op, &m.right) {
            (Op::Eq, Rhs::Value(v)) => Some((false, v)),
            (Op::Neq, Rhs::Value(v)) => Some((true, v)),
            _ => {
                self.err(m.span, "this comparison");
                None
            }
        }
    }

    /// A set on the right side: alternatives, each built by `f` from one element.
    fn set_alts(
        &mut self,
        m: &Match,
        reads: Option<Field>,
        f: &mut dyn FnMut(&mut Self, &KeyPart) -> Option<Vec<Piece>>,
    ) -> Option<Piece> {
        let Rhs::Set(s) = &m.right else {
            return None;
        };
        if m.op != Op::Eq {
            self.err_help(
                m.span,
                "`!=` with a set: iptables ANDs one negated match per rule",
                "write one rule per element with `return` in a user chain",
            );
            return None;
        }
        let mut alts = Vec::new();
        let mut bnds = Vec::new();
        for e in &s.elements {
            if e.data.is_some() || e.key.len() != 1 {
                self.err(e.span, "map or concatenated element");
                return None;
            }
            let k = &e.key[0];
            alts.push(f(self, k)?);
            bnds.push(bounds(k));
        }
        if alts.len() == 1 {
            // a one-element set is just a match
            return alts.pop().and_then(|mut v| {
                if v.len() == 1 {
                    v.pop()
                } else {
                    Some(Piece::Alts {
                        alts: vec![v],
                        bounds: bnds,
                        reads,
                        span: m.span,
                    })
                }
            });
        }
        Some(Piece::Alts {
            alts,
            bounds: bnds,
            reads,
            span: m.span,
        })
    }

    fn payload(&mut self, m: &Match, proto: &'static str, field: &'static str) -> Option<Piece> {
        let span = m.span;
        match (proto, field) {
            ("ip", "saddr" | "daddr") => {
                let src = field == "saddr";
                let ip = |a: [u8; 4], mask: [u8; 4], inv: bool| {
                    if src {
                        IpOpt::Src(a, mask, inv)
                    } else {
                        IpOpt::Dst(a, mask, inv)
                    }
                };
                let one = |k: &KeyPart, inv: bool| -> Option<Piece> {
                    Some(match k {
                        KeyPart::Value(v) => Piece::Ip {
                            opt: ip(ipv4(v)?, [0xff; 4], inv),
                            span,
                        },
                        KeyPart::Prefix { value, len } => Piece::Ip {
                            opt: ip(
                                ipv4(value)?,
                                nfr_ipt::ext::prefix_mask(
                                    u8::try_from(*len).ok().filter(|l| *l <= 32)?,
                                ),
                                inv,
                            ),
                            span,
                        },
                        KeyPart::Range { lo, hi } => Piece::Opt {
                            module: "iprange",
                            key: if src { "--src-range" } else { "--dst-range" },
                            opt: MatchOpt::Range {
                                src,
                                lo: ipv4(lo)?,
                                hi: ipv4(hi)?,
                                inv,
                            },
                            merge: true,
                            reads: None,
                            span,
                        },
                    })
                };
                let r = match (&m.op, &m.right) {
                    (Op::Eq | Op::Neq, Rhs::Value(v)) => {
                        one(&KeyPart::Value(v.clone()), m.op == Op::Neq)
                    }
                    (Op::Eq | Op::Neq, Rhs::Prefix { value, len }) => one(
                        &KeyPart::Prefix {
                            value: value.clone(),
                            len: *len,
                        },
                        m.op == Op::Neq,
                    ),
                    (Op::Eq | Op::Neq, Rhs::Range { lo, hi }) => one(
                        &KeyPart::Range {
                            lo: lo.clone(),
                            hi: hi.clone(),
                        },
                        m.op == Op::Neq,
                    ),
                    (_, Rhs::Set(_)) => {
                        return self.set_alts(m, None, &mut |_, k| one(k, false).map(|p| vec![p]));
                    }
                    _ => None,
                };
                if r.is_none() {
                    self.err(span, "this address comparison");
                }
                r
            }
            ("ip", "protocol") => self.proto(m),
            ("ip", "dscp") => {
                let one = |s: &mut Self, v: &Value, inv: bool| {
                    let Some(dscp) = u8::try_from(be_u32(v))
                        .ok()
                        .filter(|d| *d <= nfr_ipt::layout::XT_DSCP_MAX)
                    else {
                        s.err(span, "a dscp value over 63");
                        return None;
                    };
                    Some(Piece::Opt {
                        module: "dscp",
                        key: "dscp",
                        opt: MatchOpt::Dscp { dscp, inv },
                        merge: false,
                        reads: None,
                        span,
                    })
                };
                if let Rhs::Set(_) = m.right {
                    return self.set_alts(m, None, &mut |s, k| match k {
                        KeyPart::Value(v) => Some(vec![one(s, v, false)?]),
                        _ => {
                            s.err(span, "a dscp range");
                            None
                        }
                    });
                }
                let (inv, v) = self.eq_value(m)?;
                one(self, v, inv)
            }
            ("tcp" | "udp", "sport" | "dport") => self.ports(m, proto, field),
            ("tcp", "flags") => {
                // implicit flag test / `! flag`
                let Rhs::Value(v) = &m.right else {
                    self.err(span, "this tcp flags comparison");
                    return None;
                };
                let bits = be_u32(v) as u8;
                match m.op {
                    Op::Bitmask if bits.count_ones() == 1 && bits & 0xc0 == 0 => {
                        Some(tcp_flags_piece(bits, bits, false, span))
                    }
                    Op::NotBitmask if bits & 0xc0 == 0 => {
                        Some(tcp_flags_piece(bits, 0, false, span))
                    }
                    _ => {
                        self.err_help(
                            span,
                            "this tcp flags test (iptables compares `flags & mask == value` over FIN..URG)",
                            "write `tcp flags & (syn | ack) == syn`",
                        );
                        None
                    }
                }
            }
            ("icmp", "type" | "code") => {
                let is_type = field == "type";
                let one = |s: &mut Self, v: &Value, inv: bool| {
                    let Ok(n) = u8::try_from(be_u32(v)) else {
                        s.err(span, format!("an icmp {field} over 255"));
                        return None;
                    };
                    Some(Piece::Opt {
                        module: "icmp",
                        key: if is_type { "icmp-type" } else { "icmp-code" },
                        opt: if is_type {
                            MatchOpt::IcmpType {
                                ty: n,
                                code: None,
                                inv,
                            }
                        } else {
                            MatchOpt::IcmpCode(n)
                        },
                        merge: false,
                        reads: None,
                        span,
                    })
                };
                if let Rhs::Set(_) = m.right {
                    if !is_type {
                        self.err(span, "a set of icmp codes");
                        return None;
                    }
                    return self.set_alts(m, None, &mut |s, k| match k {
                        KeyPart::Value(v) => Some(vec![one(s, v, false)?]),
                        _ => {
                            s.err(span, "an icmp type range");
                            None
                        }
                    });
                }
                let (inv, v) = self.eq_value(m)?;
                if !is_type && inv {
                    self.err(span, "a negated icmp code");
                    return None;
                }
                one(self, v, inv)
            }
            _ => {
                self.err(
                    span,
                    format!("`{proto} {field}` has no iptables match nfc emits"),
                );
                None
            }
        }
    }

    fn proto(&mut self, m: &Match) -> Option<Piece> {
        let span = m.span;
        let one = |s: &mut Self, v: &Value, inv: bool| {
            let Some(p) = u16::try_from(be_u32(v)).ok().filter(|p| *p <= 255) else {
                s.err(span, "a protocol number over 255");
                return None;
            };
            if let Err(e) = nfr_ipt::check_proto(p, inv) {
                s.err(span, format!("iptables refuses `! -p {p}`: {e}"));
                return None;
            }
            Some(Piece::Ip {
                opt: IpOpt::Proto(p, inv),
                span,
            })
        };
        if let Rhs::Set(_) = m.right {
            return self.set_alts(m, None, &mut |s, k| match k {
                KeyPart::Value(v) => Some(vec![one(s, v, false)?]),
                _ => {
                    s.err(span, "a protocol range");
                    None
                }
            });
        }
        let (inv, v) = self.eq_value(m)?;
        one(self, v, inv)
    }

    fn ports(&mut self, m: &Match, proto: &'static str, field: &str) -> Option<Piece> {
        let span = m.span;
        let src = field == "sport";
        let key = if src { "sport" } else { "dport" };
        let port = |v: &Value| be_u32(v) as u16;
        let single = |inv: bool, lo: u16, hi: u16| Piece::Opt {
            module: proto,
            key,
            opt: MatchOpt::Port {
                src,
                range: [lo, hi],
                inv,
            },
            merge: true,
            reads: None,
            span,
        };
        match (&m.op, &m.right) {
            (Op::Eq | Op::Neq, Rhs::Value(v)) => Some(single(m.op == Op::Neq, port(v), port(v))),
            (Op::Eq | Op::Neq, Rhs::Range { lo, hi }) => {
                Some(single(m.op == Op::Neq, port(lo), port(hi)))
            }
            (Op::Lt, Rhs::Value(v)) if port(v) > 0 => Some(single(false, 0, port(v) - 1)),
            (Op::Lte, Rhs::Value(v)) => Some(single(false, 0, port(v))),
            (Op::Gt, Rhs::Value(v)) if port(v) < 65535 => Some(single(false, port(v) + 1, 65535)),
            (Op::Gte, Rhs::Value(v)) => Some(single(false, port(v), 65535)),
            (Op::Eq | Op::Neq, Rhs::Set(s)) => {
                let inv = m.op == Op::Neq;
                // chunks of at most 15 slots (a range takes 2)
                let mut chunks: Vec<Vec<(u16, Option<u16>)>> = Vec::new();
                let mut cur: Vec<(u16, Option<u16>)> = Vec::new();
                let mut used = 0;
                let mut bnds = Vec::new();
                let mut chunk_bounds: Vec<Vec<([u8; 16], [u8; 16])>> = Vec::new();
                let mut cb = Vec::new();
                for e in &s.elements {
                    let (item, slots) = match e.key.first() {
                        Some(KeyPart::Value(v)) if e.key.len() == 1 => ((port(v), None), 1),
                        Some(KeyPart::Range { lo, hi }) if e.key.len() == 1 => {
                            ((port(lo), Some(port(hi))), 2)
                        }
                        _ => {
                            self.err(e.span, "this port set element");
                            return None;
                        }
                    };
                    if used + slots > nfr_ipt::layout::XT_MULTI_PORTS {
                        chunks.push(std::mem::take(&mut cur));
                        chunk_bounds.push(std::mem::take(&mut cb));
                        used = 0;
                    }
                    cur.push(item);
                    used += slots;
                    if let Some(k) = e.key.first() {
                        cb.push(bounds(k));
                        bnds.push(bounds(k));
                    }
                }
                if !cur.is_empty() {
                    chunks.push(cur);
                    chunk_bounds.push(cb);
                }
                let mk = |c: &[(u16, Option<u16>)]| Piece::Opt {
                    module: "multiport",
                    key: "ports",
                    opt: MatchOpt::Multiport {
                        src,
                        ports: c.to_vec(),
                        inv,
                    },
                    merge: false,
                    reads: None,
                    span,
                };
                if s.elements.len() == 1 {
                    return match s.elements[0].key.first() {
                        Some(KeyPart::Value(v)) => Some(single(inv, port(v), port(v))),
                        Some(KeyPart::Range { lo, hi }) => Some(single(inv, port(lo), port(hi))),
                        _ => None,
                    };
                }
                if chunks.len() == 1 {
                    return Some(mk(&chunks[0]));
                }
                if inv {
                    // several negated multiport matches, ANDed: all in one entry
                    return Some(Piece::Alts {
                        alts: vec![chunks.iter().map(|c| mk(c)).collect()],
                        bounds: vec![([0; 16], [0; 16])],
                        reads: None,
                        span,
                    });
                }
                // alternatives: chunk bounds are disjoint iff elements are
                let mut all = bnds.clone();
                all.sort();
                let overlap = all.windows(2).any(|x| x[1].0 <= x[0].1);
                let bounds_out: Vec<([u8; 16], [u8; 16])> = chunk_bounds
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        if overlap {
                            ([0; 16], [0xff; 16])
                        } else {
                            ([i as u8; 16], [i as u8; 16])
                        }
                    })
                    .collect();
                Some(Piece::Alts {
                    alts: chunks.iter().map(|c| vec![mk(c)]).collect(),
                    bounds: bounds_out,
                    reads: None,
                    span,
                })
            }
            _ => {
                self.err(span, "this port comparison");
                None
            }
        }
    }

    fn meta(&mut self, m: &Match, meta: &'static MetaKey, hook: Option<Hook>) -> Option<Piece> {
        use nfr_vm::insn::MetaKey as K;
        let span = m.span;
        let key = meta.name;
        match meta.load {
            Some(K::Iifname | K::Oifname) => {
                let iif = meta.load == Some(K::Iifname);
                let opt: &'static str = if iif { "-i" } else { "-o" };
                let bad_hook = matches!(
                    (iif, hook),
                    (true, Some(Hook::Output | Hook::Postrouting))
                        | (false, Some(Hook::Prerouting | Hook::Input))
                );
                if bad_hook {
                    self.err(
                        span,
                        format!(
                            "`{key}` on the {} hook: iptables refuses {opt} in that built-in chain",
                            hook.map_or("?", |h| h.name())
                        ),
                    );
                    return None;
                }
                let one = |s: &mut Self, v: &Value, inv: bool| {
                    let name = ifname(v);
                    if let Err(e) = nfr_ipt::check_iface(&name) {
                        s.err(span, e);
                        return None;
                    }
                    Some(Piece::Ip {
                        opt: if iif {
                            IpOpt::In(name, inv)
                        } else {
                            IpOpt::Out(name, inv)
                        },
                        span,
                    })
                };
                if let Rhs::Set(_) = m.right {
                    return self.set_alts(m, None, &mut |s, k| match k {
                        KeyPart::Value(v) => Some(vec![one(s, v, false)?]),
                        _ => {
                            s.err(span, "an interface name range");
                            None
                        }
                    });
                }
                let (inv, v) = self.eq_value(m)?;
                one(self, v, inv)
            }
            Some(K::L4proto) => self.proto(m),
            Some(K::Mark) => self.mark_match(m, None, "mark", Field::Mark),
            Some(K::Iif | K::Oif) => {
                self.err_help(
                    span,
                    format!("`{key}` (interface index) has no iptables equivalent"),
                    &format!("use `{key}name`, which iptables' -i/-o compare"),
                );
                None
            }
            _ => {
                self.err(
                    span,
                    format!("`meta {key}` has no iptables match nfc emits"),
                );
                None
            }
        }
    }

    fn mark_match(
        &mut self,
        m: &Match,
        mask: Option<u32>,
        module: &'static str,
        field: Field,
    ) -> Option<Piece> {
        let span = m.span;
        let one = |v: &Value, inv: bool| Piece::Opt {
            module,
            key: "mark",
            opt: MatchOpt::Mark {
                mark: be_u32(v),
                mask: mask.unwrap_or(u32::MAX),
                inv,
            },
            merge: false,
            reads: Some(field),
            span,
        };
        if let Rhs::Set(_) = m.right {
            return self.set_alts(m, Some(field), &mut |s, k| match k {
                KeyPart::Value(v) => Some(vec![one(v, false)]),
                _ => {
                    s.err(span, "a mark range");
                    None
                }
            });
        }
        let (inv, v) = self.eq_value(m)?;
        Some(one(v, inv))
    }

    fn bitwise(&mut self, m: &Match, expr: &Expr, op: BitOp, mask: &Value) -> Option<Piece> {
        let span = m.span;
        if op != BitOp::And {
            self.err(span, "a match on `|`/`^` of a field");
            return None;
        }
        match &expr.kind {
            ExprKind::Meta { key } if key.name == "mark" => {
                self.mark_match(m, Some(be_u32(mask)), "mark", Field::Mark)
            }
            ExprKind::Ct { key, dir: None, .. } if key.name == "mark" => {
                self.mark_match(m, Some(be_u32(mask)), "connmark", Field::CtMark)
            }
            // `meta random & 2147483647 < P`: libxt_statistic's random mode (its xlate, reversed).
            ExprKind::Meta { key } if key.name == "random" && be_u32(mask) == 0x7fff_ffff => {
                let (inv, v) = match (&m.op, &m.right) {
                    (Op::Lt, Rhs::Value(v)) => (false, v),
                    (Op::Gte, Rhs::Value(v)) => (true, v),
                    _ => {
                        self.err(
                            span,
                            "this `meta random` comparison (iptables has `<` and `>=`)",
                        );
                        return None;
                    }
                };
                use nfr_ipt::layout::{
                    StatisticInfo, XT_STATISTIC_INVERT, XT_STATISTIC_MODE_RANDOM,
                };
                let p = be_u32(v);
                if p > 0x8000_0000 {
                    self.err(
                        span,
                        "a `meta random` bound above 2^31 (a probability above 1)",
                    );
                    return None;
                }
                // libxt_statistic's final check sets the union's `count` (every - packet) in random mode too.
                Some(Piece::Opt {
                    module: "statistic",
                    key: "statistic",
                    opt: MatchOpt::Statistic(StatisticInfo {
                        mode: XT_STATISTIC_MODE_RANDOM,
                        flags: if inv { XT_STATISTIC_INVERT } else { 0 },
                        every: p,
                        packet: 0,
                        count: p,
                    }),
                    merge: false,
                    reads: None,
                    span,
                })
            }
            ExprKind::Payload { .. } if expr.ty == crate::hir::Type::TcpFlag => {
                let mk = be_u32(mask) as u8;
                let (inv, v) = match (&m.op, &m.right) {
                    (Op::Eq, Rhs::Value(v)) => (false, v),
                    (Op::Neq, Rhs::Value(v)) => (true, v),
                    _ => {
                        self.err(span, "this tcp flags comparison");
                        return None;
                    }
                };
                let cmp = be_u32(v) as u8;
                if mk & 0xc0 != 0 || cmp & !mk != 0 {
                    self.err(
                        span,
                        "tcp flags ECE/CWR (iptables' --tcp-flags covers FIN, SYN, RST, PSH, ACK, URG)",
                    );
                    return None;
                }
                Some(tcp_flags_piece(mk, cmp, inv, span))
            }
            _ => {
                self.err(span, "a masked comparison of this field");
                None
            }
        }
    }

    fn ct(&mut self, m: &Match, ct: &'static CtKey) -> Option<Piece> {
        use nfr_vm::insn::CtKey as K;
        let span = m.span;
        let key = ct.name;
        let conntrack = |key: &'static str, opt: MatchOpt, reads| Piece::Opt {
            module: "conntrack",
            key,
            opt,
            merge: true,
            reads,
            span,
        };
        match ct.load {
            Some(K::State) => {
                let (inv, bits) = match (&m.op, &m.right) {
                    (Op::Bitmask, Rhs::Value(v)) => (false, be_u32(v)),
                    (Op::NotBitmask, Rhs::Value(v)) => (true, be_u32(v)),
                    (Op::Eq | Op::Neq, Rhs::Value(v)) if be_u32(v).count_ones() == 1 => {
                        (m.op == Op::Neq, be_u32(v))
                    }
                    (Op::Eq, Rhs::Set(s)) => {
                        let mut bits = 0;
                        for e in &s.elements {
                            match e.key.first() {
                                Some(KeyPart::Value(v)) if be_u32(v).count_ones() == 1 => {
                                    bits |= be_u32(v)
                                }
                                _ => {
                                    self.err(e.span, "this ct state element");
                                    return None;
                                }
                            }
                        }
                        (false, bits)
                    }
                    (Op::Eq | Op::Neq, Rhs::Value(_)) => {
                        // A packet has one state: `ct state != a,b` (`cmp neq` 0x6) is always true.
                        self.err_help(
                            span,
                            "`ct state ==`/`!=` with several states compares one state with their sum",
                            "write `ct state { a, b }` or `ct state & (a | b) == 0`",
                        );
                        return None;
                    }
                    _ => {
                        self.err(span, "this ct state comparison");
                        return None;
                    }
                };
                let Some(mask) = ct_state_mask(bits) else {
                    self.err(span, "this ct state value");
                    return None;
                };
                Some(conntrack(
                    "ctstate",
                    MatchOpt::CtState { mask, inv },
                    Some(Field::CtState),
                ))
            }
            Some(K::Status) => {
                let (inv, bits) = match (&m.op, &m.right) {
                    (Op::Bitmask, Rhs::Value(v)) => (false, be_u32(v)),
                    (Op::NotBitmask, Rhs::Value(v)) => (true, be_u32(v)),
                    // `==` / `!=` compare the whole status word (`cmp eq/neq`), while --ctstatus tests
                    // whether any of the bits is set: no exact translation (an entry's status has several
                    // bits; a packet's ct state has exactly one, so `ct state ==/!=` above is exact).
                    (Op::Eq | Op::Neq, Rhs::Value(_)) => {
                        self.err_help(
                            span,
                            "`ct status ==`/`!=` compares the whole status word; --ctstatus tests single bits",
                            "write `ct status X` to test whether bit X is set",
                        );
                        return None;
                    }
                    _ => {
                        self.err(span, "this ct status comparison");
                        return None;
                    }
                };
                // IPS_SRC_NAT 0x10 / IPS_DST_NAT 0x20 are xt_conntrack's virtual SNAT/DNAT states
                if bits & 0x30 != 0 {
                    if bits & !0x30 != 0 {
                        self.err(span, "snat/dnat mixed with other ct status bits");
                        return None;
                    }
                    let mut mask = 0;
                    if bits & 0x10 != 0 {
                        mask |= nfr_ipt::layout::XT_CONNTRACK_STATE_SNAT;
                    }
                    if bits & 0x20 != 0 {
                        mask |= nfr_ipt::layout::XT_CONNTRACK_STATE_DNAT;
                    }
                    return Some(conntrack("ctstate", MatchOpt::CtState { mask, inv }, None));
                }
                // IPS_EXPECTED, IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED: the kernel's bits
                if bits & !0xf != 0 || bits == 0 {
                    self.err(span, "this ct status value");
                    return None;
                }
                Some(conntrack(
                    "ctstatus",
                    MatchOpt::CtStatus {
                        mask: bits as u16,
                        inv,
                    },
                    None,
                ))
            }
            Some(K::Direction) => {
                let (inv, v) = self.eq_value(m)?;
                let reply = (be_u32(v) == 1) ^ inv;
                Some(conntrack("ctdir", MatchOpt::CtDir { reply }, None))
            }
            Some(K::Mark) => self.mark_match(m, None, "connmark", Field::CtMark),
            _ => {
                self.err(span, format!("`ct {key}` has no iptables match nfc emits"));
                None
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // statements and verdicts

    fn action(
        &self,
        target: nfr_ipt::Target,
        terminal: bool,
        modifies: Vec<Field>,
        span: Span,
    ) -> Piece {
        Piece::Action {
            target,
            terminal,
            modifies,
            span,
        }
    }

    fn stmt(&mut self, s: &crate::hir::Stmt) -> Option<Piece> {
        let span = s.span;
        match &s.kind {
            StmtKind::Counter { .. } => Some(Piece::Counter { span }),
            StmtKind::NamedCounter { .. } => {
                self.err_help(
                    span,
                    "named counters (iptables counts per entry only)",
                    "use an anonymous `counter`",
                );
                None
            }
            StmtKind::ObjrefMap { kind, .. } => {
                self.err_help(
                    span,
                    format!(
                        "a {} chosen by a map lookup (nft's objref map; iptables has no \
                         named objects)",
                        kind.name()
                    ),
                    match kind {
                        crate::hir::ObjKind::Counter => {
                            "write one rule per key, each with an anonymous `counter`"
                        }
                        crate::hir::ObjKind::CtHelper => {
                            "write the iptables rules by hand: `-t raw -A PREROUTING ... -j CT \
                             --helper ftp` per key"
                        }
                    },
                );
                None
            }
            StmtKind::Log {
                prefix,
                level,
                group,
            } => {
                if group.is_some() {
                    self.err(span, "`log group` (NFLOG is not emitted by nfc)");
                    return None;
                }
                let mut target = default_target("LOG");
                let nfr_ipt::Target::Log(info) = &mut target else {
                    return None;
                };
                if let Some(p) = prefix {
                    if p.len() > nfr_ipt::ext::LOG_PREFIX_MAX {
                        self.err(span, "a log prefix longer than 29 bytes (LOG's limit)");
                        return None;
                    }
                    info.prefix = p.as_bytes().to_vec();
                }
                if let Some(l) = level {
                    // nft's level names are iptables' (nft's `audit` is not a syslog level)
                    match nfr_ipt::ext::LOG_LEVELS.iter().find(|(n, _)| n == l) {
                        Some((_, n)) => info.level = *n,
                        None => {
                            self.err(span, format!("log level `{l}`"));
                            return None;
                        }
                    }
                }
                Some(self.action(target, false, Vec::new(), span))
            }
            StmtKind::Limit {
                rate,
                unit,
                over,
                burst,
                bytes,
            } => {
                if *over || *bytes {
                    self.err(
                        span,
                        "`limit ... over` and byte rates (xt_limit counts packets under a rate)",
                    );
                    return None;
                }
                let (u, secs) = match unit {
                    RateUnit::Second => ("second", 1),
                    RateUnit::Minute => ("minute", 60),
                    RateUnit::Hour => ("hour", 3600),
                    RateUnit::Day => ("day", 86400),
                    RateUnit::Week => {
                        self.err(span, "a rate per week (iptables' limit knows second..day)");
                        return None;
                    }
                };
                let avg = match nfr_ipt::ext::limit_avg(*rate, secs) {
                    Ok(a) => a,
                    Err(e) => {
                        self.err(
                            span,
                            format!(
                                "iptables refuses `--limit {rate}/{u}`: {e} (xt_limit counts in 1/{} s)",
                                nfr_ipt::layout::XT_LIMIT_SCALE
                            ),
                        );
                        return None;
                    }
                };
                let max = nfr_ipt::ext::XT_LIMIT_BURST_MAX;
                if *burst > max {
                    self.err(
                        span,
                        format!("a limit burst over {max} packets (iptables' --limit-burst)"),
                    );
                    return None;
                }
                let info = nfr_ipt::layout::RateInfo { avg, burst: *burst };
                Some(Piece::Limit { info, span })
            }
            StmtKind::MetaSet { key, value } if key.name == "mark" => {
                let x = match value {
                    Operand::Value(v) => nfr_ipt::layout::MarkTgInfo2::xset(be_u32(v), u32::MAX),
                    Operand::Expr(e) => match &e.kind {
                        ExprKind::Ct { key, dir: None, .. } if key.name == "mark" => {
                            return Some(self.action(
                                connmark(|c| c.copy_mark(false)),
                                false,
                                vec![Field::Mark],
                                span,
                            ));
                        }
                        ExprKind::Bitwise { expr, op, value } if matches!(&expr.kind, ExprKind::Meta { key } if key.name == "mark") => {
                            xmark(*op, be_u32(value))?
                        }
                        _ => {
                            self.err(span, "this mark expression");
                            return None;
                        }
                    },
                    Operand::Map { .. } => {
                        self.err(span, "a mark from a map");
                        return None;
                    }
                };
                Some(self.action(nfr_ipt::Target::Mark(x), false, vec![Field::Mark], span))
            }
            StmtKind::CtSet { key, value } if key.name == "mark" => {
                let target = match value {
                    Operand::Value(v) => {
                        let x = nfr_ipt::layout::MarkTgInfo2::xset(be_u32(v), u32::MAX);
                        connmark(|c| c.set_xmark(x))
                    }
                    Operand::Expr(e) => match &e.kind {
                        ExprKind::Meta { key } if key.name == "mark" => {
                            connmark(|c| c.copy_mark(true))
                        }
                        ExprKind::Bitwise { expr, op, value } if matches!(&expr.kind, ExprKind::Ct { key, dir: None, .. } if key.name == "mark") =>
                        {
                            let x = xmark(*op, be_u32(value))?;
                            connmark(|c| c.set_xmark(x))
                        }
                        _ => {
                            self.err(span, "this ct mark expression");
                            return None;
                        }
                    },
                    Operand::Map { .. } => {
                        self.err(span, "a ct mark from a map");
                        return None;
                    }
                };
                Some(self.action(target, false, vec![Field::CtMark], span))
            }
            StmtKind::CtSet { key, .. } if key.name == "helper" => {
                // nft attaches the helper to the entry conntrack made (nft_ct_helper_obj_eval,
                // after conntrack); iptables' `CT --helper` builds a template in the raw table,
                // before conntrack. Neither can stand for the other rule for rule.
                self.err_help(
                    span,
                    "`ct helper set` attaches after conntrack; iptables' `CT --helper` attaches \
                     through a raw-table template, before it",
                    "write the iptables rule by hand: `-t raw -A PREROUTING ... -j CT --helper ftp`",
                );
                None
            }
            StmtKind::CtSet { key, value } if key.name == "zone" => {
                let Operand::Value(v) = value else {
                    self.err(span, "this ct zone");
                    return None;
                };
                let Ok(zone) = u16::try_from(be_u32(v)) else {
                    self.err(span, "a ct zone over 65535");
                    return None;
                };
                Some(self.action(ct(|c| c.zone = zone), false, Vec::new(), span))
            }
            StmtKind::Notrack => {
                Some(self.action(ct(|c| c.set_notrack()), false, vec![Field::CtState], span))
            }
            StmtKind::Reject(k) => {
                use nfr_ipt::layout::{
                    IPT_ICMP_ADMIN_PROHIBITED as ADMIN, IPT_ICMP_HOST_PROHIBITED,
                    IPT_ICMP_HOST_UNREACHABLE as HOST, IPT_ICMP_NET_PROHIBITED,
                    IPT_ICMP_NET_UNREACHABLE as NET, IPT_ICMP_PORT_UNREACHABLE as PORT,
                    IPT_ICMP_PROT_UNREACHABLE, IPT_TCP_RESET,
                };
                let with = match k {
                    RejectKind::Default => None,
                    RejectKind::TcpReset => Some(IPT_TCP_RESET),
                    RejectKind::Icmp(c) => Some(match c {
                        0 => NET,
                        1 => HOST,
                        2 => IPT_ICMP_PROT_UNREACHABLE,
                        3 => PORT,
                        9 => IPT_ICMP_NET_PROHIBITED,
                        10 => IPT_ICMP_HOST_PROHIBITED,
                        13 => ADMIN,
                        _ => {
                            self.err(span, format!("reject with icmp code {c} (REJECT knows net/host/proto/port unreachable, net/host/admin prohibited)"));
                            return None;
                        }
                    }),
                    RejectKind::Icmpx(c) => Some(match c {
                        0 => NET,
                        1 => PORT,
                        2 => HOST,
                        3 => ADMIN,
                        _ => {
                            self.err(span, "this icmpx reject code");
                            return None;
                        }
                    }),
                    RejectKind::Icmpv6(_) => {
                        self.err(span, "reject with icmpv6 in an iptables (IPv4) table");
                        return None;
                    }
                };
                let mut target = default_target("REJECT");
                if let (nfr_ipt::Target::Reject(w), Some(x)) = (&mut target, with) {
                    *w = x;
                }
                Some(self.action(target, true, Vec::new(), span))
            }
            StmtKind::Nat(n) => {
                if n.port_map.is_some()
                    || matches!(n.addr, Some(Operand::Map { .. }) | Some(Operand::Expr(_)))
                {
                    self.err(span, "nat with a map or an expression");
                    return None;
                }
                let addrs = match &n.addr {
                    Some(Operand::Value(v)) => {
                        let hi = n.addr_hi.as_ref().unwrap_or(v);
                        let (Some(lo), Some(hi)) = (ipv4(v), ipv4(hi)) else {
                            self.err(span, "a non-IPv4 nat address");
                            return None;
                        };
                        Some((lo, hi))
                    }
                    _ => None,
                };
                let ports = n.port.as_ref().map(|p| {
                    let lo = be_u32(p) as u16;
                    (lo, n.port_hi.as_ref().map_or(lo, |h| be_u32(h) as u16))
                });
                let (name, kind) = match n.kind {
                    NatKind::Snat => ("SNAT", nfr_ipt::NatKind::Snat),
                    NatKind::Dnat => ("DNAT", nfr_ipt::NatKind::Dnat),
                    NatKind::Masquerade => ("MASQUERADE", nfr_ipt::NatKind::Masquerade),
                    NatKind::Redirect => ("REDIRECT", nfr_ipt::NatKind::Redirect),
                };
                let mut target = default_target(name);
                let nfr_ipt::Target::Nat { range, .. } = &mut target else {
                    return None;
                };
                let set = match n.kind {
                    NatKind::Snat | NatKind::Dnat => range.set_to(addrs, ports),
                    NatKind::Masquerade | NatKind::Redirect => {
                        if addrs.is_some() {
                            self.err(span, "an address with masquerade/redirect");
                            return None;
                        }
                        match ports {
                            Some((lo, hi)) => range.set_to_ports(lo, hi),
                            None => Ok(()),
                        }
                    }
                };
                if let (Err(e), Some((lo, hi))) = (set, ports) {
                    self.err(
                        span,
                        format!(
                            "iptables' {name} refuses the port{} {}: {e}",
                            if lo == hi { "" } else { "s" },
                            if lo == hi {
                                lo.to_string()
                            } else {
                                format!("{lo}-{hi}")
                            }
                        ),
                    );
                    return None;
                }
                for f in &n.flags {
                    range.flags |= match f.as_str() {
                        "random" => nfr_ipt::layout::NF_NAT_RANGE_PROTO_RANDOM,
                        "fully-random" => nfr_ipt::layout::NF_NAT_RANGE_PROTO_RANDOM_FULLY,
                        "persistent" if kind.takes_persistent() => {
                            nfr_ipt::layout::NF_NAT_RANGE_PERSISTENT
                        }
                        "persistent" => {
                            self.err(
                                span,
                                format!(
                                    "`persistent` with {}: iptables' {name} has no --persistent",
                                    name.to_ascii_lowercase()
                                ),
                            );
                            return None;
                        }
                        o => {
                            self.err(span, format!("nat flag `{o}`"));
                            return None;
                        }
                    };
                }
                Some(self.action(target, true, Vec::new(), span))
            }
            StmtKind::MetaSet { key, .. } => {
                self.err(span, format!("`meta {} set`", key.name));
                None
            }
            StmtKind::CtSet { key, .. } => {
                self.err(span, format!("`ct {} set`", key.name));
                None
            }
            StmtKind::PayloadSet { .. } => {
                self.err(span, "payload writes (nfc emits no DSCP/TOS/TTL targets)");
                None
            }
            StmtKind::SetUpdate { op, .. } => {
                self.err(
                    span,
                    format!(
                        "`{}` of a set element (iptables has no sets without ipset)",
                        op.as_str()
                    ),
                );
                None
            }
            StmtKind::Other(k) => {
                self.err(span, format!("`{k}`"));
                None
            }
        }
    }

    fn verdict(&mut self, v: &crate::hir::Verdict) -> Option<Piece> {
        let span = v.span;
        let chain = |id: &ChainId| {
            self.hir
                .chain(*id)
                .map_or(String::new(), |c| c.name.clone())
        };
        use nfr_ipt::Target as T;
        let (target, terminal) = match &v.kind {
            VerdictKind::Accept => (T::Accept, true),
            VerdictKind::Drop => (T::Drop, true),
            VerdictKind::Return => (T::Return, true),
            VerdictKind::Continue => (T::Fallthrough, false),
            VerdictKind::Jump(c) => (T::Jump(chain(c)), false),
            VerdictKind::Goto(c) => (T::Goto(chain(c)), true),
            VerdictKind::Queue {
                num,
                num_hi,
                bypass,
                fanout,
            } => {
                let mut target = default_target("NFQUEUE");
                let T::Nfqueue(q) = &mut target else {
                    return None;
                };
                match num_hi {
                    Some(h) => {
                        if !q.set_balance(*num, *h) {
                            self.err(
                                span,
                                format!("queue num {num}-{h}: iptables' --queue-balance needs the first queue below the last"),
                            );
                            return None;
                        }
                    }
                    None => q.set_num(*num),
                }
                if *bypass {
                    q.flags |= nfr_ipt::layout::NFQ_FLAG_BYPASS;
                }
                if *fanout {
                    q.flags |= nfr_ipt::layout::NFQ_FLAG_CPU_FANOUT;
                }
                (target, true)
            }
            VerdictKind::Vmap { .. } => {
                self.err_help(
                    span,
                    "verdict maps have no iptables equivalent",
                    "write one rule per map element",
                );
                return None;
            }
        };
        Some(self.action(
            target,
            terminal,
            vec![Field::Mark, Field::CtMark, Field::CtState],
            span,
        ))
    }
}

/// What `-j NAME` starts from (a target `nfr_ipt::Target::default_of` knows).
fn default_target(name: &str) -> nfr_ipt::Target {
    nfr_ipt::Target::default_of(name).unwrap_or(nfr_ipt::Target::Fallthrough)
}

/// `-j CONNMARK` with one option applied.
fn connmark(f: impl FnOnce(&mut nfr_ipt::layout::ConnmarkTgInfo)) -> nfr_ipt::Target {
    let mut t = default_target("CONNMARK");
    if let nfr_ipt::Target::Connmark { info, .. } = &mut t {
        f(info);
    }
    t
}

/// `-j CT` with one option applied.
fn ct(f: impl FnOnce(&mut nfr_ipt::layout::CtTargetInfo)) -> nfr_ipt::Target {
    let mut t = default_target("CT");
    if let nfr_ipt::Target::Ct { info, .. } = &mut t {
        f(info);
    }
    t
}

/// `mark set mark & v | v | ^ v` as `--set-xmark` (mark = (mark & ~mask) ^ value).
fn xmark(op: BitOp, v: u32) -> Option<nfr_ipt::layout::MarkTgInfo2> {
    Some(match op {
        BitOp::And => nfr_ipt::layout::MarkTgInfo2::and(v),
        BitOp::Or => nfr_ipt::layout::MarkTgInfo2::or(v),
        BitOp::Xor => nfr_ipt::layout::MarkTgInfo2::xor(v),
        _ => return None,
    })
}

fn tcp_flags_piece(mask: u8, cmp: u8, inv: bool, span: Span) -> Piece {
    Piece::Opt {
        module: "tcp",
        key: "tcp-flags",
        opt: MatchOpt::TcpFlags { mask, cmp, inv },
        merge: true,
        reads: None,
        span,
    }
}

/// Every combination of the alternatives among `pieces` (flattened to Ip/Opt/Limit pieces).
fn combos(pieces: &[Piece]) -> Vec<Vec<Piece>> {
    let mut out: Vec<Vec<Piece>> = vec![Vec::new()];
    for p in pieces {
        match p {
            Piece::Alts { alts, .. } => {
                let mut next = Vec::new();
                for o in &out {
                    for a in alts {
                        let mut x = o.clone();
                        x.extend(a.iter().cloned());
                        next.push(x);
                    }
                }
                out = next;
            }
            Piece::Ip { .. } | Piece::Opt { .. } | Piece::Limit { .. } => {
                for o in &mut out {
                    o.push(p.clone());
                }
            }
            Piece::Counter { .. } | Piece::Action { .. } => {}
        }
    }
    out
}

/// One entry: the ipt_ip options, then the matches (same-module options merged into one match
/// unless the option repeats), the comment, the target.
fn build_rule(
    pieces: &[Piece],
    target: &nfr_ipt::Target,
    comment: Option<&str>,
) -> Result<nfr_ipt::Rule, (Option<Span>, String)> {
    let mut rule = nfr_ipt::Rule::new(target.clone());
    let mut ip: Vec<&IpOpt> = Vec::new();
    // (module, keys, options, mergeable)
    let mut ms: Vec<(&str, Vec<&str>, Vec<&MatchOpt>, bool)> = Vec::new();
    let mut limits = Vec::new();
    for p in pieces {
        match p {
            Piece::Ip { opt, span } => {
                if let Some(prev) = ip.iter().find(|o| o.key() == opt.key()) {
                    if *prev != opt {
                        return Err((
                            Some(*span),
                            format!(
                                "two different `{}` matches in one rule (iptables has one per rule)",
                                opt.key()
                            ),
                        ));
                    }
                    continue;
                }
                ip.push(opt);
            }
            Piece::Opt {
                module,
                key,
                opt,
                merge,
                ..
            } => {
                if *merge
                    && let Some(last) = ms.iter_mut().rev().find(|m| m.0 == *module)
                    && last.3
                    && !last.1.contains(key)
                {
                    last.1.push(key);
                    last.2.push(opt);
                    continue;
                }
                ms.push((module, vec![key], vec![opt], *merge));
            }
            Piece::Limit { info, .. } => {
                ms.push(("limit", vec!["limit"], Vec::new(), false));
                limits.push(*info);
            }
            _ => {}
        }
    }
    for o in ip {
        o.apply(&mut rule.ip);
    }
    let mut limits = limits.into_iter();
    for (module, _, opts, _) in ms {
        let m = if module == "limit" {
            limits.next().map(nfr_ipt::Match::Limit)
        } else {
            nfr_ipt::Match::default_of(module)
        };
        let Some(mut m) = m else {
            return Err((None, format!("no iptables match `{module}`")));
        };
        for o in opts {
            o.apply(&mut m).map_err(|e| (None, e.to_string()))?;
        }
        rule.matches.push(m);
    }
    if let Some(c) = comment {
        if c.len() > nfr_ipt::ext::COMMENT_MAX {
            return Err((None, "a comment longer than 255 bytes".into()));
        }
        rule.matches.push(nfr_ipt::Match::comment(c));
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    #[test]
    fn valid_hooks_notes_come_from_the_table_of_tables() {
        let t = |n: &str| super::table_valid_hooks_text(n).unwrap();
        assert_eq!(
            t("nat"),
            "valid hooks for the nat table are prerouting, output (priority dstnat, -100), input, postrouting (priority srcnat, 100), type nat"
        );
        assert_eq!(
            t("mangle"),
            "valid hooks for the mangle table are prerouting, input, forward, output, postrouting (priority mangle, -150)"
        );
        assert_eq!(
            t("raw"),
            "valid hooks for the raw table are prerouting, output (priority raw, -300)"
        );
        assert_eq!(
            t("security"),
            "valid hooks for the security table are input, forward, output (priority security, 50)"
        );
        assert!(super::table_valid_hooks_text("broute").is_none());
    }
}
