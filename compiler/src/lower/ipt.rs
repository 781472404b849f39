//! Lowering of a checked ruleset ([`Hir`]) to iptables tables ([`nfr_ipt::Table`]), the form
//! `nfr_ipt::encode` turns into the byte-exact blob iptables-legacy-restore would send.
//!
//! # What maps
//! A table maps when [`table_mapping`] says `Maps` with family `ip`: its base chains
//! become the built-in chains of that iptables table (policy kept; a hook without a base chain
//! gets an empty ACCEPT chain, as iptables creates it), user chains keep their names.
//!
//! Every rule becomes one or more entries. The lowering writes each entry as the iptables
//! argument list a user would type (`-s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT`) and
//! builds it with `nfr_ipt::parse_rule_str`, so the encoding is exactly iptables' own (implicit
//! defaults, revisions, masks). Matches:
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
//! payload writes, a `counter` or `limit` before a match iptables would evaluate first, and any
//! other expression without an iptables match. Codes: E0700 (table), E0701 (rule), E0702 (the
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
pub use crate::raise::ipt::{rule_to_nfr, table_to_nfr, tables_to_nfr};

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

fn table_valid_hooks_text(t: &str) -> Option<&'static str> {
    Some(match t {
        "filter" => {
            "valid hooks for the filter table are input, forward, output (priority filter, 0)"
        }
        "nat" => {
            "valid hooks for the nat table are prerouting, output (priority dstnat, -100), input, postrouting (priority srcnat, 100), type nat"
        }
        "mangle" => {
            "valid hooks for the mangle table are prerouting, input, forward, output, postrouting (priority mangle, -150)"
        }
        "raw" => "valid hooks for the raw table are prerouting, output (priority raw, -300)",
        "security" => {
            "valid hooks for the security table are input, forward, output (priority security, 50)"
        }
        _ => return None,
    })
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

/// A piece of one iptables rule, in source order.
#[derive(Clone, Debug)]
enum Piece {
    /// `ipt_ip` words: `key` is the option (`-s`), words include a leading `!`.
    Ip {
        key: &'static str,
        words: Vec<String>,
        span: Span,
    },
    /// Options of a match module; `key` is the option, for merging (`merge: false` = own match).
    Opt {
        module: &'static str,
        key: &'static str,
        words: Vec<String>,
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
    Limit { words: Vec<String>, span: Span },
    /// `counter` (no entry of its own).
    Counter { span: Span },
    /// An action: the target words (`-j X ...`, or empty for none).
    Action {
        words: Vec<String>,
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

fn q(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

fn w(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn neg(inv: bool, mut words: Vec<String>) -> Vec<String> {
    if inv {
        words.insert(0, "!".into());
    }
    words
}

fn be_u32(v: &Value) -> u32 {
    v.bytes
        .iter()
        .rev()
        .take(4)
        .rev()
        .fold(0u32, |a, b| (a << 8) | u32::from(*b))
}

fn ipv4(v: &Value) -> Option<String> {
    match v.bytes.as_slice() {
        [a, b, c, d] => Some(format!("{a}.{b}.{c}.{d}")),
        _ => None,
    }
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

const CT_STATES: [(u32, &str); 5] = [
    (1, "INVALID"),
    (2, "ESTABLISHED"),
    (4, "RELATED"),
    (8, "NEW"),
    (0x40, "UNTRACKED"),
];

fn ct_state_names(bits: u32) -> Option<String> {
    let mut names = Vec::new();
    let mut rest = bits;
    for (b, n) in CT_STATES {
        if bits & b != 0 {
            names.push(n);
            rest &= !b;
        }
    }
    (rest == 0 && !names.is_empty()).then(|| names.join(","))
}

pub(crate) const TCP_FLAGS: [(u8, &str); 6] = [
    (0x01, "FIN"),
    (0x02, "SYN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x10, "ACK"),
    (0x20, "URG"),
];

fn tcp_flag_names(bits: u8) -> String {
    if bits == 0 {
        return "NONE".into();
    }
    let v: Vec<&str> = TCP_FLAGS
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

fn is_ip_key(k: &str) -> bool {
    matches!(k, "-s" | "-d" | "-i" | "-o" | "-p" | "-f")
}

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
        for it in &r.items {
            match it {
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
                words: Vec::new(),
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
                module: "icmp",
                key: "icmp-code",
                words,
                span,
                ..
            } = &pieces[i]
            {
                let (code, span) = (words.clone(), *span);
                let ty = pieces[..i].iter_mut().rev().find_map(|p| match p {
                    Piece::Opt {
                        module: "icmp",
                        key: "icmp-type",
                        words,
                        ..
                    } => Some(words),
                    _ => None,
                });
                match ty {
                    Some(tw)
                        if !tw.iter().any(|x| x == "!") && !tw.iter().any(|x| x.contains('/')) =>
                    {
                        if let (Some(last), Some(c)) = (tw.last_mut(), code.last()) {
                            *last = format!("{last}/{c}");
                        }
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
            let Piece::Action {
                words: target,
                span,
                ..
            } = &pieces[*ai]
            else {
                continue;
            };
            for combo in combos(prefix) {
                let spec = build_spec(&combo, target, r.comment.as_deref());
                let spec = match spec {
                    Ok(s) => s,
                    Err((at, m)) => {
                        self.err(at.unwrap_or(*span), m);
                        continue;
                    }
                };
                match nfr_ipt::parse_rule_str(&spec) {
                    Ok(rule) => out.push(rule),
                    Err(e) => self.diags.push(
                        Diagnostic::error(
                            E_RULE,
                            r.span,
                            format!("iptables refuses the rule `{spec}`: {}", e.message),
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
                let (inv, v) = self.eq_value(m)?;
                let words = [
                    vec!["--mode".into(), "nth".into()],
                    neg(inv, vec!["--every".into(), modulus.to_string()]),
                    vec!["--packet".into(), be_u32(v).to_string()],
                ];
                Some(Piece::Opt {
                    module: "statistic",
                    key: "statistic",
                    words: words.concat(),
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
                let name = nfr_ipt::layout::ADDRTYPE_NAMES
                    .get(be_u32(v) as usize)
                    .copied()
                    .unwrap_or("UNSPEC");
                let opt = if *daddr { "--dst-type" } else { "--src-type" };
                Some(Piece::Opt {
                    module: "addrtype",
                    key: if *daddr { "dst-type" } else { "src-type" },
                    words: neg(inv, vec![opt.into(), name.into()]),
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
                let (key, rkey) = if field == "saddr" {
                    ("-s", "--src-range")
                } else {
                    ("-d", "--dst-range")
                };
                let one = |k: &KeyPart, inv: bool| -> Option<Piece> {
                    Some(match k {
                        KeyPart::Value(v) => Piece::Ip {
                            key,
                            words: neg(inv, vec![key.into(), format!("{}/32", ipv4(v)?)]),
                            span,
                        },
                        KeyPart::Prefix { value, len } => Piece::Ip {
                            key,
                            words: neg(inv, vec![key.into(), format!("{}/{len}", ipv4(value)?)]),
                            span,
                        },
                        KeyPart::Range { lo, hi } => Piece::Opt {
                            module: "iprange",
                            key: rkey,
                            words: neg(
                                inv,
                                vec![rkey.into(), format!("{}-{}", ipv4(lo)?, ipv4(hi)?)],
                            ),
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
                let one = |v: &Value, inv: bool| Piece::Opt {
                    module: "dscp",
                    key: "dscp",
                    words: neg(inv, vec!["--dscp".into(), format!("0x{:02x}", be_u32(v))]),
                    merge: false,
                    reads: None,
                    span,
                };
                if let Rhs::Set(_) = m.right {
                    return self.set_alts(m, None, &mut |s, k| match k {
                        KeyPart::Value(v) => Some(vec![one(v, false)]),
                        _ => {
                            s.err(span, "a dscp range");
                            None
                        }
                    });
                }
                let (inv, v) = self.eq_value(m)?;
                Some(one(v, inv))
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
                let key = if field == "type" {
                    "icmp-type"
                } else {
                    "icmp-code"
                };
                let one = |v: &Value, inv: bool| Piece::Opt {
                    module: "icmp",
                    key,
                    words: neg(inv, vec!["--icmp-type".into(), be_u32(v).to_string()]),
                    merge: false,
                    reads: None,
                    span,
                };
                if let Rhs::Set(_) = m.right {
                    if field == "code" {
                        self.err(span, "a set of icmp codes");
                        return None;
                    }
                    return self.set_alts(m, None, &mut |s, k| match k {
                        KeyPart::Value(v) => Some(vec![one(v, false)]),
                        _ => {
                            s.err(span, "an icmp type range");
                            None
                        }
                    });
                }
                let (inv, v) = self.eq_value(m)?;
                if field == "code" && inv {
                    self.err(span, "a negated icmp code");
                    return None;
                }
                Some(one(v, inv))
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
        let one = |v: &Value, inv: bool| {
            let n = be_u32(v);
            let name = match n {
                1 => "icmp".to_string(),
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                n => n.to_string(),
            };
            Piece::Ip {
                key: "-p",
                words: neg(inv, vec!["-p".into(), name]),
                span,
            }
        };
        if let Rhs::Set(_) = m.right {
            return self.set_alts(m, None, &mut |s, k| match k {
                KeyPart::Value(v) => Some(vec![one(v, false)]),
                _ => {
                    s.err(span, "a protocol range");
                    None
                }
            });
        }
        let (inv, v) = self.eq_value(m)?;
        Some(one(v, inv))
    }

    fn ports(&mut self, m: &Match, proto: &'static str, field: &str) -> Option<Piece> {
        let span = m.span;
        let (key, opt, mkey) = if field == "sport" {
            ("sport", "--sport", "--sports")
        } else {
            ("dport", "--dport", "--dports")
        };
        let port = |v: &Value| be_u32(v) as u16;
        let single = |inv: bool, lo: u16, hi: u16| Piece::Opt {
            module: proto,
            key,
            words: neg(
                inv,
                vec![
                    opt.into(),
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}:{hi}")
                    },
                ],
            ),
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
                let mut chunks: Vec<Vec<String>> = Vec::new();
                let mut cur: Vec<String> = Vec::new();
                let mut used = 0;
                let mut bnds = Vec::new();
                let mut chunk_bounds: Vec<Vec<([u8; 16], [u8; 16])>> = Vec::new();
                let mut cb = Vec::new();
                for e in &s.elements {
                    let (txt, slots) = match e.key.first() {
                        Some(KeyPart::Value(v)) if e.key.len() == 1 => (port(v).to_string(), 1),
                        Some(KeyPart::Range { lo, hi }) if e.key.len() == 1 => {
                            (format!("{}:{}", port(lo), port(hi)), 2)
                        }
                        _ => {
                            self.err(e.span, "this port set element");
                            return None;
                        }
                    };
                    if used + slots > 15 {
                        chunks.push(std::mem::take(&mut cur));
                        chunk_bounds.push(std::mem::take(&mut cb));
                        used = 0;
                    }
                    cur.push(txt);
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
                let mk = |c: &[String]| Piece::Opt {
                    module: "multiport",
                    key: "ports",
                    words: neg(inv, vec![mkey.into(), c.join(",")]),
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
                let one = |v: &Value, inv: bool| Piece::Ip {
                    key: opt,
                    words: neg(inv, vec![opt.into(), q(&ifname(v))]),
                    span,
                };
                if let Rhs::Set(_) = m.right {
                    return self.set_alts(m, None, &mut |s, k| match k {
                        KeyPart::Value(v) => Some(vec![one(v, false)]),
                        _ => {
                            s.err(span, "an interface name range");
                            None
                        }
                    });
                }
                let (inv, v) = self.eq_value(m)?;
                Some(one(v, inv))
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
        let one = |v: &Value, inv: bool| {
            let txt = match mask {
                Some(mk) => format!("0x{:x}/0x{mk:x}", be_u32(v)),
                None => format!("0x{:x}", be_u32(v)),
            };
            Piece::Opt {
                module,
                key: "mark",
                words: neg(inv, vec!["--mark".into(), txt]),
                merge: false,
                reads: Some(field),
                span,
            }
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
                let p = f64::from(be_u32(v)) / 2_147_483_648.0;
                Some(Piece::Opt {
                    module: "statistic",
                    key: "statistic",
                    words: [
                        vec!["--mode".into(), "random".into()],
                        neg(inv, vec!["--probability".into(), format!("{p:.11}")]),
                    ]
                    .concat(),
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
        let conntrack = |key: &'static str, inv: bool, opt: &str, arg: String, reads| Piece::Opt {
            module: "conntrack",
            key,
            words: neg(inv, vec![opt.into(), arg]),
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
                let Some(names) = ct_state_names(bits) else {
                    self.err(span, "this ct state value");
                    return None;
                };
                Some(conntrack(
                    "ctstate",
                    inv,
                    "--ctstate",
                    names,
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
                    let mut v = Vec::new();
                    if bits & 0x10 != 0 {
                        v.push("SNAT");
                    }
                    if bits & 0x20 != 0 {
                        v.push("DNAT");
                    }
                    return Some(conntrack("ctstate", inv, "--ctstate", v.join(","), None));
                }
                let names = [
                    (1, "EXPECTED"),
                    (2, "SEEN_REPLY"),
                    (4, "ASSURED"),
                    (8, "CONFIRMED"),
                ];
                if bits & !0xf != 0 || bits == 0 {
                    self.err(span, "this ct status value");
                    return None;
                }
                let v: Vec<&str> = names
                    .iter()
                    .filter(|(b, _)| bits & b != 0)
                    .map(|(_, n)| *n)
                    .collect();
                Some(conntrack("ctstatus", inv, "--ctstatus", v.join(","), None))
            }
            Some(K::Direction) => {
                let (inv, v) = self.eq_value(m)?;
                let reply = (be_u32(v) == 1) ^ inv;
                Some(conntrack(
                    "ctdir",
                    false,
                    "--ctdir",
                    if reply { "REPLY" } else { "ORIGINAL" }.into(),
                    None,
                ))
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
        words: Vec<String>,
        terminal: bool,
        modifies: Vec<Field>,
        span: Span,
    ) -> Piece {
        Piece::Action {
            words,
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
                let mut words = w(&["-j", "LOG"]);
                if let Some(p) = prefix {
                    if p.len() > 29 {
                        self.err(span, "a log prefix longer than 29 bytes (LOG's limit)");
                        return None;
                    }
                    words.push("--log-prefix".into());
                    words.push(q(p));
                }
                if let Some(l) = level {
                    let n = match l.as_str() {
                        "emerg" => 0,
                        "alert" => 1,
                        "crit" => 2,
                        "err" => 3,
                        "warn" => 4,
                        "notice" => 5,
                        "info" => 6,
                        "debug" => 7,
                        _ => {
                            self.err(span, format!("log level `{l}`"));
                            return None;
                        }
                    };
                    words.push("--log-level".into());
                    words.push(n.to_string());
                }
                Some(self.action(words, false, Vec::new(), span))
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
                let u = match unit {
                    RateUnit::Second => "second",
                    RateUnit::Minute => "minute",
                    RateUnit::Hour => "hour",
                    RateUnit::Day => "day",
                    RateUnit::Week => {
                        self.err(span, "a rate per week (iptables' limit knows second..day)");
                        return None;
                    }
                };
                let mut words = vec!["--limit".to_string(), format!("{rate}/{u}")];
                if *burst != 5 {
                    words.push("--limit-burst".into());
                    words.push(burst.to_string());
                }
                Some(Piece::Limit { words, span })
            }
            StmtKind::MetaSet { key, value } if key.name == "mark" => {
                let words = match value {
                    Operand::Value(v) => {
                        vec![
                            "-j".into(),
                            "MARK".into(),
                            "--set-xmark".into(),
                            format!("0x{:x}/0xffffffff", be_u32(v)),
                        ]
                    }
                    Operand::Expr(e) => match &e.kind {
                        ExprKind::Ct { key, dir: None, .. } if key.name == "mark" => {
                            return Some(self.action(
                                w(&["-j", "CONNMARK", "--restore-mark"]),
                                false,
                                vec![Field::Mark],
                                span,
                            ));
                        }
                        ExprKind::Bitwise { expr, op, value } if matches!(&expr.kind, ExprKind::Meta { key } if key.name == "mark") =>
                        {
                            vec![
                                "-j".into(),
                                "MARK".into(),
                                "--set-xmark".into(),
                                xmark(*op, be_u32(value))?,
                            ]
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
                Some(self.action(words, false, vec![Field::Mark], span))
            }
            StmtKind::CtSet { key, value } if key.name == "mark" => {
                let words = match value {
                    Operand::Value(v) => vec![
                        "-j".into(),
                        "CONNMARK".into(),
                        "--set-xmark".into(),
                        format!("0x{:x}/0xffffffff", be_u32(v)),
                    ],
                    Operand::Expr(e) => match &e.kind {
                        ExprKind::Meta { key } if key.name == "mark" => {
                            w(&["-j", "CONNMARK", "--save-mark"])
                        }
                        ExprKind::Bitwise { expr, op, value } if matches!(&expr.kind, ExprKind::Ct { key, dir: None, .. } if key.name == "mark") =>
                        {
                            vec![
                                "-j".into(),
                                "CONNMARK".into(),
                                "--set-xmark".into(),
                                xmark(*op, be_u32(value))?,
                            ]
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
                Some(self.action(words, false, vec![Field::CtMark], span))
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
                Some(self.action(
                    vec![
                        "-j".into(),
                        "CT".into(),
                        "--zone".into(),
                        be_u32(v).to_string(),
                    ],
                    false,
                    Vec::new(),
                    span,
                ))
            }
            StmtKind::Notrack => Some(self.action(
                w(&["-j", "CT", "--notrack"]),
                false,
                vec![Field::CtState],
                span,
            )),
            StmtKind::Reject(k) => {
                let with = match k {
                    RejectKind::Default => None,
                    RejectKind::TcpReset => Some("tcp-reset"),
                    RejectKind::Icmp(c) => Some(match c {
                        0 => "icmp-net-unreachable",
                        1 => "icmp-host-unreachable",
                        2 => "icmp-proto-unreachable",
                        3 => "icmp-port-unreachable",
                        9 => "icmp-net-prohibited",
                        10 => "icmp-host-prohibited",
                        13 => "icmp-admin-prohibited",
                        _ => {
                            self.err(span, format!("reject with icmp code {c} (REJECT knows net/host/proto/port unreachable, net/host/admin prohibited)"));
                            return None;
                        }
                    }),
                    RejectKind::Icmpx(c) => Some(match c {
                        0 => "icmp-net-unreachable",
                        1 => "icmp-port-unreachable",
                        2 => "icmp-host-unreachable",
                        3 => "icmp-admin-prohibited",
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
                let mut words = w(&["-j", "REJECT"]);
                if let Some(x) = with {
                    words.push("--reject-with".into());
                    words.push(x.into());
                }
                Some(self.action(words, true, Vec::new(), span))
            }
            StmtKind::Nat(n) => {
                if n.port_map.is_some()
                    || matches!(n.addr, Some(Operand::Map { .. }) | Some(Operand::Expr(_)))
                {
                    self.err(span, "nat with a map or an expression");
                    return None;
                }
                let addr = match &n.addr {
                    Some(Operand::Value(v)) => {
                        let Some(a) = ipv4(v) else {
                            self.err(span, "a non-IPv4 nat address");
                            return None;
                        };
                        let mut s = a;
                        if let Some(h) = &n.addr_hi {
                            s = format!("{s}-{}", ipv4(h).unwrap_or_default());
                        }
                        Some(s)
                    }
                    _ => None,
                };
                let ports = n.port.as_ref().map(|p| {
                    let lo = be_u32(p);
                    match &n.port_hi {
                        Some(h) => format!("{lo}-{}", be_u32(h)),
                        None => lo.to_string(),
                    }
                });
                let mut words = Vec::new();
                match n.kind {
                    NatKind::Snat | NatKind::Dnat => {
                        let (t, o) = if n.kind == NatKind::Snat {
                            ("SNAT", "--to-source")
                        } else {
                            ("DNAT", "--to-destination")
                        };
                        words.extend(w(&["-j", t, o]));
                        let mut to = addr.unwrap_or_default();
                        if let Some(p) = ports {
                            to = format!("{to}:{p}");
                        }
                        words.push(to);
                    }
                    NatKind::Masquerade | NatKind::Redirect => {
                        if addr.is_some() {
                            self.err(span, "an address with masquerade/redirect");
                            return None;
                        }
                        words.extend(w(&[
                            "-j",
                            if n.kind == NatKind::Masquerade {
                                "MASQUERADE"
                            } else {
                                "REDIRECT"
                            },
                        ]));
                        if let Some(p) = ports {
                            words.push("--to-ports".into());
                            words.push(p);
                        }
                    }
                }
                for f in &n.flags {
                    match f.as_str() {
                        "random" => words.push("--random".into()),
                        "fully-random" => words.push("--random-fully".into()),
                        "persistent" => words.push("--persistent".into()),
                        o => {
                            self.err(span, format!("nat flag `{o}`"));
                            return None;
                        }
                    }
                }
                Some(self.action(words, true, Vec::new(), span))
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
        let (words, terminal) = match &v.kind {
            VerdictKind::Accept => (w(&["-j", "ACCEPT"]), true),
            VerdictKind::Drop => (w(&["-j", "DROP"]), true),
            VerdictKind::Return => (w(&["-j", "RETURN"]), true),
            VerdictKind::Continue => (Vec::new(), false),
            VerdictKind::Jump(c) => (vec!["-j".into(), chain(c)], false),
            VerdictKind::Goto(c) => (vec!["-g".into(), chain(c)], true),
            VerdictKind::Queue {
                num,
                num_hi,
                bypass,
                fanout,
            } => {
                let mut words = w(&["-j", "NFQUEUE"]);
                match num_hi {
                    Some(h) => {
                        words.push("--queue-balance".into());
                        words.push(format!("{num}:{h}"));
                    }
                    None => {
                        words.push("--queue-num".into());
                        words.push(num.to_string());
                    }
                }
                if *bypass {
                    words.push("--queue-bypass".into());
                }
                if *fanout {
                    words.push("--queue-cpu-fanout".into());
                }
                (words, true)
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
            words,
            terminal,
            vec![Field::Mark, Field::CtMark, Field::CtState],
            span,
        ))
    }
}

fn xmark(op: BitOp, v: u32) -> Option<String> {
    // mark = (mark & ~mask) ^ value
    Some(match op {
        BitOp::And => format!("0x0/0x{:x}", !v),
        BitOp::Or => format!("0x{v:x}/0x{v:x}"),
        BitOp::Xor => format!("0x{v:x}/0x0"),
        _ => return None,
    })
}

fn tcp_flags_piece(mask: u8, cmp: u8, inv: bool, span: Span) -> Piece {
    Piece::Opt {
        module: "tcp",
        key: "tcp-flags",
        words: neg(
            inv,
            vec![
                "--tcp-flags".into(),
                tcp_flag_names(mask),
                tcp_flag_names(cmp),
            ],
        ),
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

/// The iptables argument list of one entry: ipt_ip options, then the matches (same-module
/// options merged into one match unless the option repeats), the comment, the target.
fn build_spec(
    pieces: &[Piece],
    target: &[String],
    comment: Option<&str>,
) -> Result<String, (Option<Span>, String)> {
    let mut ip: Vec<(&str, Vec<String>)> = Vec::new();
    // (module, keys, words, mergeable)
    let mut ms: Vec<(&str, Vec<&str>, Vec<String>, bool)> = Vec::new();
    for p in pieces {
        match p {
            Piece::Ip { key, words, span } => {
                if let Some((_, prev)) = ip.iter().find(|(k, _)| k == key) {
                    if prev != words {
                        return Err((
                            Some(*span),
                            format!(
                                "two different `{key}` matches in one rule (iptables has one per rule)"
                            ),
                        ));
                    }
                    continue;
                }
                debug_assert!(is_ip_key(key));
                ip.push((key, words.clone()));
            }
            Piece::Opt {
                module,
                key,
                words,
                merge,
                ..
            } => {
                if *merge
                    && let Some(last) = ms.iter_mut().rev().find(|m| m.0 == *module)
                    && last.3
                    && !last.1.contains(key)
                {
                    last.1.push(key);
                    last.2.extend(words.iter().cloned());
                    continue;
                }
                ms.push((module, vec![key], words.clone(), *merge));
            }
            Piece::Limit { words, .. } => ms.push(("limit", vec!["limit"], words.clone(), false)),
            _ => {}
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (_, words) in ip {
        out.extend(words);
    }
    for (module, _, words, _) in ms {
        out.push("-m".into());
        out.push(module.into());
        out.extend(words);
    }
    if let Some(c) = comment {
        if c.len() > 255 {
            return Err((None, "a comment longer than 255 bytes".into()));
        }
        out.push("-m".into());
        out.push("comment".into());
        out.push("--comment".into());
        out.push(q(c));
    }
    out.extend(target.iter().cloned());
    Ok(out.join(" "))
}
