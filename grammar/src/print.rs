//! The canonical printer behind `nfc fmt`: prints an [`crate::ast::File`] the way `nft list ruleset`
//! does — tabs, `table ip t {`, `\tchain c {`, `\t\ttype filter hook input priority filter;
//! policy accept;`, standard priority names (`filter + 5`), ports numerically, protocol names
//! symbolically (or numerically with [`Options::numeric_proto`], as `nft -nn` and nft's own
//! tests/py do), anonymous set elements sorted by value, marks as `0x%08x`, `!=` forms,
//! bitmask matches in nft's forms (`tcp flags syn,ack`, `tcp flags ! syn`,
//! `tcp flags & (fin | syn) == fin | syn`), redundant protocol dependencies removed
//! (`ip protocol tcp tcp dport 22` → `tcp dport 22`).
//!
//! Printing only needs the Ast: values are interpreted with the datatype of the selector they
//! are compared with ([`crate::catalog`]).

use crate::ast::*;
use crate::catalog::{self, Datatype};
use nfr_proto::desc;
use std::fmt::Write;

/// Printer options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Print IP protocols (`ip protocol`, `meta l4proto`) as numbers (`nft -nn`).
    pub numeric_proto: bool,
}

/// Canonical form of a whole file (`nft list ruleset` style).
pub fn format(file: &File) -> String {
    format_with(file, Options::default())
}

/// [`format()`] with options.
pub fn format_with(file: &File, opts: Options) -> String {
    let mut p = Printer::new(opts, Family::Ip);
    p.comments = file.comments.iter().map(|c| (c.clone(), false)).collect();
    // nft lists tables back to back, without blank lines between them.
    for c in &file.commands {
        p.emit_comments(0, c.span.start, "");
        p.command(c);
    }
    p.emit_comments(0, u32::MAX, "");
    p.out
}

/// Canonical form of one rule, as it appears in a chain of a table of `family`.
pub fn format_rule(rule: &Rule, family: Family, opts: Options) -> String {
    let mut p = Printer::new(opts, family);
    p.rule(rule);
    p.out
}

/// Canonical form of one expression with no datatype context.
pub fn format_expr(e: &Expr) -> String {
    let mut p = Printer::new(Options::default(), Family::Ip);
    p.expr(e, &Ctx::None);
    p.out
}

struct Printer {
    out: String,
    /// Source comments (sorted by position) and whether each was printed already.
    comments: Vec<(Comment, bool)>,
    /// Every comment before this index is printed.
    first_pending: usize,
    opts: Options,
    family: Family,
    /// Printing a `reject with` code (always symbolic).
    in_reject: bool,
    /// Printing a nat address (ranges that are prefixes print as prefixes).
    in_nat: bool,
    /// Printing map data: `/32` and `/128` prefixes are kept.
    keep_full_prefix: bool,
    /// Family of the address a ct saddr/daddr is compared with (to print `ct original ip6 saddr`).
    ct_addr_hint: Option<Family>,
}

impl Printer {
    fn new(opts: Options, family: Family) -> Printer {
        Printer {
            out: String::new(),
            comments: Vec::new(),
            first_pending: 0,
            opts,
            family,
            in_reject: false,
            in_nat: false,
            keep_full_prefix: false,
            ct_addr_hint: None,
        }
    }

    /// A printer for a nested block that shares this one's comment state.
    fn sub(&mut self) -> Printer {
        let mut p = Printer::new(self.opts, self.family);
        p.comments = std::mem::take(&mut self.comments);
        p.first_pending = self.first_pending;
        p
    }

    /// Take back the comment state of a sub-printer; returns its output.
    fn absorb(&mut self, p: Printer) -> String {
        self.comments = p.comments;
        self.first_pending = p.first_pending;
        p.out
    }

    /// Print the not yet printed comments that start in `lo..hi`: own-line comments on their
    /// own line at `indent`, trailing comments at the end of the previous line.
    fn emit_comments(&mut self, lo: u32, hi: u32, indent: &str) {
        self.emit_comments_if(lo, hi, indent, false)
    }

    /// The first trailing comment in `lo..hi`, if it comes before any own-line comment there
    /// (`table ip t { # comment`).
    fn emit_opening_comment(&mut self, lo: u32, hi: u32) {
        let first = self
            .comments
            .iter()
            .find(|(c, done)| !*done && c.span.start >= lo && c.span.start < hi);
        if let Some((c, _)) = first
            && !c.own_line
        {
            let at = c.span.start;
            self.emit_comments_if(at, at + 1, "", true);
        }
    }

    fn emit_comments_if(&mut self, lo: u32, hi: u32, indent: &str, trailing_only: bool) {
        // Comments are sorted by position: skip the printed prefix, stop at `hi`.
        while self
            .comments
            .get(self.first_pending)
            .is_some_and(|(_, done)| *done)
        {
            self.first_pending += 1;
        }
        let from = self.first_pending;
        for (c, done) in self.comments.iter_mut().skip(from) {
            if c.span.start >= hi {
                break;
            }
            if *done || c.span.start < lo || (trailing_only && c.own_line) {
                continue;
            }
            *done = true;
            if !c.own_line && self.out.ends_with('\n') {
                self.out.pop();
                let _ = writeln!(self.out, " #{}", c.text);
            } else {
                let _ = writeln!(self.out, "{indent}#{}", c.text);
            }
        }
    }
}

/// Datatype context for printing a value.
#[derive(Clone, Debug)]
enum Ctx {
    None,
    Type(Datatype),
    /// An integer that nft prints in hex (`ip frag-off`, `comp flags`, raw payloads).
    Hex,
    Concat(Vec<Option<Datatype>>),
}

impl Ctx {
    fn dt(&self) -> Option<Datatype> {
        match self {
            Ctx::Type(d) => Some(*d),
            _ => None,
        }
    }
}

/// Datatype of a selector expression (for printing the value it is compared with).
pub fn expr_dtype(e: &Expr) -> Option<Datatype> {
    match &e.kind {
        ExprKind::Payload(f) => Some(f.dtype),
        ExprKind::Meta { key, .. } => Some(key.dtype),
        ExprKind::Ct { key, family, .. } => {
            if matches!(key.name, "saddr" | "daddr") && *family == Some(Family::Ip6) {
                Some(Datatype::Ipv6Addr)
            } else {
                Some(key.dtype)
            }
        }
        ExprKind::Numgen { .. } => Some(Datatype::Integer { bits: 32 }),
        ExprKind::Fib { result: "type", .. } => Some(Datatype::FibAddrtype),
        ExprKind::RawPayload { len, .. } => Some(Datatype::Integer {
            bits: (*len).min(128) as u16,
        }),
        ExprKind::Binary { left, op, .. } => match op {
            BinOp::Shl | BinOp::Shr => expr_dtype(left).map(|d| match d {
                Datatype::Integer { .. } | Datatype::Mark => d,
                _ => Datatype::Integer { bits: 32 },
            }),
            _ => expr_dtype(left),
        },
        ExprKind::Paren(e) => expr_dtype(e),
        ExprKind::Var(_) => None,
        _ => None,
    }
}

/// Integer fields nft prints in hex.
fn prints_hex(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Payload(f) => {
            matches!((f.proto, f.field), ("ip", "frag-off") | ("comp", "flags"))
        }
        ExprKind::RawPayload { .. } => true,
        ExprKind::Binary { left, .. } => prints_hex(left),
        _ => false,
    }
}

fn ctx_of(e: &Expr) -> Ctx {
    if prints_hex(e) {
        return Ctx::Hex;
    }
    match &e.kind {
        ExprKind::Concat(parts) if parts.iter().any(prints_hex) => Ctx::Concat(
            parts
                .iter()
                .map(|p| {
                    if prints_hex(p) {
                        Some(Datatype::Integer { bits: 0 })
                    } else {
                        expr_dtype(p)
                    }
                })
                .collect(),
        ),
        ExprKind::Concat(parts) => Ctx::Concat(parts.iter().map(expr_dtype).collect()),
        _ => expr_dtype(e).map(Ctx::Type).unwrap_or(Ctx::None),
    }
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// nft's time format: `1d2h3m4s5ms`, `0s` for zero.
pub fn format_time(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut s = String::new();
    let mut rest = ms;
    for (unit, len) in [
        ("d", 86_400_000u64),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        let n = rest / len;
        rest %= len;
        if n > 0 {
            let _ = write!(s, "{n}{unit}");
        }
    }
    s
}

fn prec(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::Xor => 2,
        BinOp::And => 3,
        BinOp::Shl | BinOp::Shr => 4,
    }
}

fn strip_paren(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Paren(inner) => strip_paren(inner),
        _ => e,
    }
}

/// Numeric value of a constant expression in the context of datatype `dt` (for sorting and
/// normalising). `None` if not a constant or unknown symbol.
pub fn const_value(e: &Expr, dt: Option<Datatype>) -> Option<u128> {
    match &strip_paren(e).kind {
        ExprKind::Number { value, .. } => Some(*value),
        ExprKind::Ipv4(a) => Some(u128::from(u32::from(*a))),
        ExprKind::Ipv6(a) => Some(u128::from(*a)),
        ExprKind::Mac(m) => Some(m.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))),
        ExprKind::Symbol(s) => dt.and_then(|d| d.symbol_value(s)).map(u128::from),
        ExprKind::Time(ms) => Some(u128::from(*ms)),
        ExprKind::Binary { op, left, right } => {
            let l = const_value(left, dt)?;
            let r = const_value(right, dt)?;
            Some(match op {
                BinOp::And => l & r,
                BinOp::Or => l | r,
                BinOp::Xor => l ^ r,
                BinOp::Shl => l.checked_shl(u32::try_from(r).ok()?)?,
                BinOp::Shr => l.checked_shr(u32::try_from(r).ok()?)?,
            })
        }
        ExprKind::List(v) => {
            let mut acc = 0u128;
            for x in v {
                acc |= const_value(x, dt)?;
            }
            Some(acc)
        }
        _ => None,
    }
}

/// Sort key of a set element: (low value of each concat part).
fn elem_key(e: &Expr, ctx: &Ctx) -> Vec<u128> {
    let e = strip_paren(e);
    match &e.kind {
        ExprKind::MapElem { key, .. } => elem_key(key, ctx),
        ExprKind::Elem { value, .. } => elem_key(value, ctx),
        ExprKind::Concat(parts) => {
            let dts: Vec<Option<Datatype>> = match ctx {
                Ctx::Concat(v) => v.clone(),
                _ => vec![None; parts.len()],
            };
            parts
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    elem_key(
                        p,
                        &dts.get(i)
                            .copied()
                            .flatten()
                            .map(Ctx::Type)
                            .unwrap_or(Ctx::None),
                    )
                })
                .collect()
        }
        ExprKind::Range { low, .. } => elem_key(low, ctx),
        ExprKind::Prefix { addr, .. } => elem_key(addr, ctx),
        _ => vec![const_value(e, ctx.dt()).unwrap_or(u128::MAX)],
    }
}

impl Printer {
    fn command(&mut self, c: &Command) {
        match &c.kind {
            CommandKind::FlushRuleset { family } => {
                self.out.push_str("flush ruleset");
                if let Some(f) = family {
                    let _ = write!(self.out, " {}", f.as_str());
                }
                self.out.push('\n');
            }
            CommandKind::Define(d) => {
                let _ = write!(
                    self.out,
                    "{}define {} = ",
                    if d.redefine { "re" } else { "" },
                    d.name.name
                );
                self.expr(&d.value, &Ctx::None);
                self.out.push('\n');
            }
            CommandKind::Undefine(n) => {
                let _ = writeln!(self.out, "undefine {}", n.name);
            }
            CommandKind::Include(s) => {
                let _ = writeln!(self.out, "include {}", quote(&s.value));
            }
            CommandKind::Table(t) => self.table(t),
            CommandKind::AddChain { table, chain } => {
                self.family = table.family.unwrap_or(Family::Ip);
                let _ = write!(
                    self.out,
                    "add chain {} {} {}",
                    self.family.as_str(),
                    table.table.name,
                    chain.name.name
                );
                if chain.has_body {
                    self.out.push_str(" { ");
                    if let Some(h) = &chain.hook {
                        self.hook_line(h, chain.policy.as_ref());
                        self.out.push(' ');
                    } else if let Some(pol) = &chain.policy {
                        self.policy(pol);
                        self.out.push(' ');
                    }
                    self.out.push('}');
                }
                self.out.push('\n');
                for r in &chain.rules {
                    let _ = write!(
                        self.out,
                        "add rule {} {} {} ",
                        self.family.as_str(),
                        table.table.name,
                        chain.name.name
                    );
                    self.rule(r);
                    self.out.push('\n');
                }
            }
            CommandKind::AddRule {
                target,
                insert,
                position,
                rule,
            } => {
                self.family = target.family.unwrap_or(Family::Ip);
                let _ = write!(
                    self.out,
                    "{} rule {} {} {} ",
                    if *insert { "insert" } else { "add" },
                    self.family.as_str(),
                    target.table.name,
                    target.name.as_ref().map(|n| n.name.as_str()).unwrap_or("")
                );
                if let Some((k, n)) = position {
                    let _ = write!(self.out, "{} {n} ", k.name);
                }
                self.rule(rule);
                self.out.push('\n');
            }
            CommandKind::AddSet { table, set } => {
                self.family = table.family.unwrap_or(Family::Ip);
                let _ = write!(
                    self.out,
                    "add {} {} {} {} {{ ",
                    if set.is_map { "map" } else { "set" },
                    self.family.as_str(),
                    table.table.name,
                    set.name.name
                );
                let mut lines = Vec::new();
                self.set_lines(set, &mut lines);
                self.out.push_str(&lines.join("; "));
                self.out
                    .push_str(if lines.is_empty() { "}\n" } else { "; }\n" });
            }
            CommandKind::Element {
                delete,
                target,
                elements,
            } => {
                self.family = target.family.unwrap_or(Family::Ip);
                let _ = write!(
                    self.out,
                    "{} element {} {} {} ",
                    if *delete { "delete" } else { "add" },
                    self.family.as_str(),
                    target.table.name,
                    target.name.as_ref().map(|n| n.name.as_str()).unwrap_or("")
                );
                self.set_literal(&elements.to_vec(), &Ctx::None, false);
                self.out.push('\n');
            }
            CommandKind::Object {
                verb,
                object,
                target,
            } => {
                let _ = write!(
                    self.out,
                    "{} {} {} {}",
                    verb.name,
                    object.name,
                    target.family.unwrap_or(Family::Ip).as_str(),
                    target.table.name
                );
                if let Some(n) = &target.name {
                    let _ = write!(self.out, " {}", n.name);
                }
                self.out.push('\n');
            }
        }
    }

    fn table(&mut self, t: &Table) {
        self.family = t.family.unwrap_or(Family::Ip);
        let _ = write!(self.out, "table {} {}", self.family.as_str(), t.name.name);
        if !t.has_body {
            self.out.push('\n');
            return;
        }
        self.out.push_str(" {\n");
        self.emit_opening_comment(t.span.start, t.span.end);
        // nft order: flags, comment, then objects, sets/maps, chains (blank line between).
        let mut blocks: Vec<String> = Vec::new();
        let mut head = String::new();
        for it in &t.items {
            match it {
                TableItem::Define(d) => {
                    let mut p = Printer::new(self.opts, self.family);
                    let _ = write!(
                        p.out,
                        "\t{}define {} = ",
                        if d.redefine { "re" } else { "" },
                        d.name.name
                    );
                    p.expr(&d.value, &Ctx::None);
                    head.push_str(&p.out);
                    head.push('\n');
                }
                TableItem::Flags(f) => {
                    let _ = writeln!(
                        head,
                        "\tflags {}",
                        f.iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                }
                TableItem::Comment(c) => {
                    let _ = writeln!(head, "\tcomment {}", quote(&c.value));
                }
                _ => {}
            }
        }
        self.out.push_str(&head);
        // Comments before a declaration go with it, even though nft's order moves it.
        let spans: Vec<Span> = t.items.iter().filter_map(item_span).collect();
        let lo_of = |start: u32| {
            spans
                .iter()
                .filter(|s| s.end <= start)
                .map(|s| s.end)
                .max()
                .unwrap_or(t.span.start)
        };
        for it in &t.items {
            if let TableItem::Object {
                kind,
                name,
                span,
                body,
            } = it
            {
                let mut p = self.sub();
                p.emit_comments(lo_of(span.start), span.start, "\t");
                let _ = writeln!(p.out, "\t{} {} {{", kind.name, name.name);
                for line in body {
                    let _ = writeln!(p.out, "\t\t{line}");
                }
                p.emit_comments(span.start, span.end, "\t\t");
                p.out.push_str("\t}\n");
                blocks.push(self.absorb(p));
            }
        }
        for it in &t.items {
            if let TableItem::Set(s) = it {
                let mut lines = Vec::new();
                self.set_lines(s, &mut lines);
                let mut p = self.sub();
                p.emit_comments(lo_of(s.span.start), s.span.start, "\t");
                let _ = writeln!(
                    p.out,
                    "\t{} {} {{",
                    if s.is_map { "map" } else { "set" },
                    s.name.name
                );
                for l in lines {
                    let _ = writeln!(p.out, "\t\t{l}");
                }
                p.emit_comments(s.span.start, s.span.end, "\t\t");
                p.out.push_str("\t}\n");
                blocks.push(self.absorb(p));
            }
        }
        for it in &t.items {
            if let TableItem::Chain(c) = it {
                let mut p = self.sub();
                p.emit_comments(lo_of(c.span.start), c.span.start, "\t");
                p.chain(c);
                blocks.push(self.absorb(p));
            }
        }
        self.out.push_str(&blocks.join("\n"));
        self.emit_comments(t.span.start, t.span.end, "\t");
        self.out.push_str("}\n");
    }

    fn hook_line(&mut self, h: &ChainHook, policy: Option<&Policy>) {
        let _ = write!(self.out, "type {} hook {}", h.chain_type.name, h.hook.name);
        if h.devices.len() == 1 {
            let _ = write!(self.out, " device {}", quote(&h.devices[0].value));
        } else if h.devices.len() > 1 {
            let mut ds: Vec<String> = h.devices.iter().map(|d| quote(&d.value)).collect();
            ds.sort();
            let _ = write!(self.out, " devices = {{ {} }}", ds.join(", "));
        }
        self.out.push_str(" priority ");
        self.priority(&h.priority, &h.hook.name);
        self.out.push_str("; ");
        match policy {
            Some(p) => self.policy(p),
            None => self.out.push_str("policy accept;"),
        }
    }

    fn policy(&mut self, p: &Policy) {
        match &p.kind {
            PolicyKind::Accept => self.out.push_str("policy accept;"),
            PolicyKind::Drop => self.out.push_str("policy drop;"),
            PolicyKind::Var(v) => {
                let _ = write!(self.out, "policy ${v};");
            }
        }
    }

    fn priority(&mut self, p: &Priority, hook: &str) {
        let value = match &p.kind {
            PriorityKind::Number(n) => Some(*n),
            PriorityKind::Named { name, offset } => {
                catalog::std_priority(name, self.family).map(|b| b.saturating_add(*offset))
            }
            PriorityKind::Var(v) => {
                let _ = write!(self.out, "${v}");
                return;
            }
        };
        let Some(value) = value else {
            // Unknown name: print as written.
            if let PriorityKind::Named { name, offset } = &p.kind {
                self.out.push_str(name);
                if *offset != 0 {
                    let _ = write!(
                        self.out,
                        " {} {}",
                        if *offset < 0 { '-' } else { '+' },
                        offset.unsigned_abs()
                    );
                }
            }
            return;
        };
        match catalog::priority_name(value, self.family, hook) {
            Some((name, 0)) => self.out.push_str(name),
            Some((name, off)) => {
                let _ = write!(
                    self.out,
                    "{name} {} {}",
                    if off < 0 { '-' } else { '+' },
                    off.unsigned_abs()
                );
            }
            None => {
                let _ = write!(self.out, "{value}");
            }
        }
    }

    fn chain(&mut self, c: &Chain) {
        let _ = writeln!(self.out, "\tchain {} {{", c.name.name);
        self.emit_opening_comment(c.span.start, c.span.end);
        if let Some(cm) = &c.comment {
            let _ = writeln!(self.out, "\t\tcomment {}", quote(&cm.value));
        }
        if let Some(h) = &c.hook {
            self.out.push_str("\t\t");
            self.hook_line(h, c.policy.as_ref());
            self.out.push('\n');
        } else if let Some(p) = &c.policy {
            self.out.push_str("\t\t");
            self.policy(p);
            self.out.push('\n');
        }
        if !c.flags.is_empty() {
            let _ = writeln!(
                self.out,
                "\t\tflags {}",
                c.flags
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        for r in &c.rules {
            self.emit_comments(c.span.start, r.span.start, "\t\t");
            self.out.push_str("\t\t");
            self.rule(r);
            self.out.push('\n');
        }
        self.emit_comments(c.span.start, c.span.end, "\t\t");
        self.out.push_str("\t}\n");
    }

    fn set_lines(&mut self, s: &Set, lines: &mut Vec<String>) {
        let mut key_ctx = Ctx::None;
        let mut data_ctx = Ctx::None;
        if let Some(k) = &s.key {
            let mut l = String::new();
            match k {
                SetKey::Type(ids) => {
                    l.push_str("type ");
                    l.push_str(
                        &ids.iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(" . "),
                    );
                    let dts: Vec<Option<Datatype>> =
                        ids.iter().map(|i| Datatype::from_name(&i.name)).collect();
                    key_ctx = if dts.len() == 1 {
                        dts[0].map(Ctx::Type).unwrap_or(Ctx::None)
                    } else {
                        Ctx::Concat(dts)
                    };
                }
                SetKey::Typeof(es) => {
                    l.push_str("typeof ");
                    let mut p = Printer::new(self.opts, self.family);
                    for (i, e) in es.iter().enumerate() {
                        if i > 0 {
                            p.out.push_str(" . ");
                        }
                        p.expr(e, &Ctx::None);
                    }
                    l.push_str(&p.out);
                    let dts: Vec<Option<Datatype>> = es.iter().map(expr_dtype).collect();
                    key_ctx = if dts.len() == 1 {
                        dts[0].map(Ctx::Type).unwrap_or(Ctx::None)
                    } else {
                        Ctx::Concat(dts)
                    };
                }
            }
            if let Some(d) = &s.data {
                l.push_str(" : ");
                if s.data_interval {
                    l.push_str("interval ");
                }
                match d {
                    SetKey::Type(ids) => {
                        l.push_str(
                            &ids.iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(" . "),
                        );
                        let dts: Vec<Option<Datatype>> =
                            ids.iter().map(|i| Datatype::from_name(&i.name)).collect();
                        data_ctx = if dts.len() == 1 {
                            dts[0].map(Ctx::Type).unwrap_or(Ctx::None)
                        } else {
                            Ctx::Concat(dts)
                        };
                    }
                    SetKey::Typeof(es) => {
                        let mut p = Printer::new(self.opts, self.family);
                        for (i, e) in es.iter().enumerate() {
                            if i > 0 {
                                p.out.push_str(" . ");
                            }
                            p.expr(e, &Ctx::None);
                        }
                        l.push_str(&p.out);
                        let dts: Vec<Option<Datatype>> = es.iter().map(expr_dtype).collect();
                        data_ctx = if dts.len() == 1 {
                            dts[0].map(Ctx::Type).unwrap_or(Ctx::None)
                        } else {
                            Ctx::Concat(dts)
                        };
                    }
                }
            }
            lines.push(l);
        }
        if let Some(p) = &s.policy
            && p.name != "performance"
        {
            lines.push(format!("policy {}", p.name));
        }
        if let Some(n) = s.size {
            lines.push(format!("size {n}"));
        }
        // nft prints the flags line only when a flag other than `timeout` is set.
        if s.flags.iter().any(|f| f.name != "timeout") {
            // nft prints flags in a fixed order.
            let order = ["constant", "interval", "timeout", "dynamic", "eval"];
            let mut fl: Vec<&str> = s.flags.iter().map(|f| f.name.as_str()).collect();
            fl.sort_by_key(|f| order.iter().position(|o| o == f).unwrap_or(order.len()));
            fl.dedup();
            lines.push(format!("flags {}", fl.join(",")));
        }
        if let Some(t) = &s.timeout {
            lines.push(format!("timeout {}", format_time(t.ms)));
        }
        if let Some(t) = &s.gc_interval {
            lines.push(format!("gc-interval {}", format_time(t.ms)));
        }
        if s.auto_merge {
            lines.push("auto-merge".into());
        }
        if s.counter {
            lines.push("counter".into());
        }
        if let Some(c) = &s.comment {
            lines.push(format!("comment {}", quote(&c.value)));
        }
        if !s.elements.is_empty() {
            let mut p = Printer::new(self.opts, self.family);
            p.out.push_str("elements = ");
            p.set_literal_ctx(&s.elements.to_vec(), &key_ctx, &data_ctx, true);
            lines.push(p.out);
        }
    }

    fn rule(&mut self, r: &Rule) {
        let stmts = kill_dependencies(&r.stmts, self.family);
        let mut first = true;
        let mut icmp_type_seen = [false, false];
        let mut l3: Option<Family> = None;
        for s in &r.stmts {
            if let StmtKind::Match { left, right, .. } = &s.kind {
                match &first_selector(left).kind {
                    ExprKind::Payload(f) if matches!(f.proto, "ip" | "icmp") => {
                        l3 = l3.or(Some(Family::Ip))
                    }
                    ExprKind::Payload(f) if matches!(f.proto, "ip6" | "icmpv6") => {
                        l3 = l3.or(Some(Family::Ip6))
                    }
                    ExprKind::Meta { key, .. } if key.name == "nfproto" => {
                        match const_value(right, Some(Datatype::Nfproto)) {
                            Some(2) => l3 = l3.or(Some(Family::Ip)),
                            Some(10) => l3 = l3.or(Some(Family::Ip6)),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        for s in stmts {
            if !first {
                self.out.push(' ');
            }
            first = false;
            // nft makes (and lists) `icmp type { echo-reply, echo-request }` before a match on
            // the echo fields id/sequence.
            if let StmtKind::Match { left, .. } = &s.kind
                && let ExprKind::Payload(f) = &left.kind
            {
                let i = usize::from(f.proto == "icmpv6");
                if matches!(f.proto, "icmp" | "icmpv6") && f.field == "type" {
                    icmp_type_seen[i] = true;
                }
                if matches!(f.proto, "icmp" | "icmpv6")
                    && matches!(f.field, "id" | "sequence")
                    && !icmp_type_seen[i]
                {
                    icmp_type_seen[i] = true;
                    self.out.push_str(if i == 0 {
                        "icmp type { echo-reply, echo-request } "
                    } else {
                        "icmpv6 type { echo-request, echo-reply } "
                    });
                }
            }
            if let (StmtKind::Reject(None), Family::Inet, Some(f)) = (&s.kind, self.family, l3) {
                self.out.push_str(if f == Family::Ip {
                    "reject with icmp port-unreachable"
                } else {
                    "reject with icmpv6 port-unreachable"
                });
                continue;
            }
            self.stmt(s);
        }
        if let Some(c) = &r.comment {
            if !first {
                self.out.push(' ');
            }
            let _ = write!(self.out, "comment {}", quote(&c.value));
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Match { left, op, right } => self.match_stmt(left, *op, right),
            StmtKind::Verdict(v) => self.verdict(v),
            StmtKind::Vmap { key, map } => {
                self.expr(key, &Ctx::None);
                self.out.push_str(" vmap ");
                let kctx = ctx_of(key);
                self.map_expr(map, &kctx, &Ctx::None);
            }
            StmtKind::CounterMap { map } => {
                self.out.push_str("counter name ");
                self.value_expr(map, &Ctx::Type(Datatype::String { bits: 128 }));
            }
            StmtKind::Counter {
                packets,
                bytes,
                name,
            } => {
                self.out.push_str("counter");
                if let Some(n) = name {
                    let _ = write!(self.out, " name \"{}\"", n.name);
                } else if packets.is_some() || bytes.is_some() {
                    let _ = write!(
                        self.out,
                        " packets {} bytes {}",
                        packets.unwrap_or(0),
                        bytes.unwrap_or(0)
                    );
                }
            }
            StmtKind::Log(l) => {
                self.out.push_str("log");
                if let Some(p) = &l.prefix {
                    let _ = write!(self.out, " prefix {}", quote(&p.value));
                }
                if let Some(g) = l.group {
                    let _ = write!(self.out, " group {g}");
                }
                if let Some(s) = l.snaplen {
                    let _ = write!(self.out, " snaplen {s}");
                }
                if let Some(q) = l.queue_threshold {
                    let _ = write!(self.out, " queue-threshold {q}");
                }
                if let Some(lv) = &l.level
                    && lv.name != "warn"
                {
                    let _ = write!(self.out, " level {}", lv.name);
                }
                if !l.flags.is_empty() {
                    let fl: Vec<&str> = l.flags.iter().map(|f| f.name.as_str()).collect();
                    let _ = write!(self.out, " flags {}", fl.join(" "));
                }
            }
            StmtKind::Limit(l) => {
                self.out.push_str("limit rate ");
                if l.over {
                    self.out.push_str("over ");
                }
                match &l.rate_unit {
                    None => {
                        let _ = write!(self.out, "{}/{}", l.rate, l.per);
                    }
                    Some(u) => {
                        let _ = write!(self.out, "{} {}/{}", l.rate, u, l.per);
                    }
                }
                if let Some(b) = l.burst {
                    let is_packets = l.rate_unit.is_none();
                    // nft omits the default burst (5 packets; 0 bytes).
                    let default = if is_packets { 5 } else { 0 };
                    if b != default {
                        let unit = l.burst_unit.clone().unwrap_or_else(|| {
                            if is_packets {
                                "packets".into()
                            } else {
                                "bytes".into()
                            }
                        });
                        let _ = write!(self.out, " burst {b} {unit}");
                    }
                }
            }
            StmtKind::Set { key, value } => {
                self.expr(key, &Ctx::None);
                self.out.push_str(" set ");
                let ctx = ctx_of(key);
                self.value_expr(value, &ctx);
            }
            StmtKind::Notrack => self.out.push_str("notrack"),
            StmtKind::Reject(w) => {
                self.out.push_str("reject");
                match w {
                    None => {}
                    Some(RejectWith::TcpReset) => self.out.push_str(" with tcp reset"),
                    Some(RejectWith::Icmp { proto, code }) => {
                        let dt = match proto.as_str() {
                            "icmp" => Datatype::IcmpCode,
                            "icmpv6" => Datatype::Icmpv6Code,
                            _ => Datatype::IcmpxCode,
                        };
                        // `reject with icmp port-unreachable` is the default for ip.
                        let v = const_value(code, Some(dt));
                        let default = match (proto.as_str(), self.family) {
                            ("icmp", Family::Ip) => v == Some(3),
                            ("icmpv6", Family::Ip6) => v == Some(4),
                            ("icmpx", Family::Inet) => v == Some(1),
                            _ => false,
                        };
                        if !default {
                            let _ = write!(self.out, " with {proto} ");
                            self.in_reject = true;
                            self.expr(code, &Ctx::Type(dt));
                            self.in_reject = false;
                        }
                    }
                }
            }
            StmtKind::Queue { num, flags } => {
                // nft 1.0.x form: `queue num N bypass,fanout`.
                self.out.push_str("queue");
                if let Some(n) = num {
                    self.out.push_str(" num ");
                    self.expr(n, &Ctx::Type(Datatype::Integer { bits: 16 }));
                }
                if !flags.is_empty() {
                    let mut fl: Vec<&str> = flags.iter().map(|f| f.name.as_str()).collect();
                    fl.sort_by_key(|f| if *f == "bypass" { 0 } else { 1 });
                    let _ = write!(self.out, " {}", fl.join(","));
                }
            }
            StmtKind::Nat(n) => self.nat(n),
            StmtKind::SetUpdate(u) => {
                let _ = write!(self.out, "{} @{} {{ ", u.op.as_str(), u.set.name);
                self.expr(&u.key, &Ctx::None);
                if let Some(t) = &u.timeout {
                    let _ = write!(self.out, " timeout {}", format_time(t.ms));
                }
                if let Some(d) = &u.data {
                    self.out.push_str(" : ");
                    self.value_expr(d, &Ctx::None);
                }
                if let Some((text, _)) = &u.stmts {
                    let _ = write!(self.out, " {text}");
                }
                self.out.push_str(" }");
            }
            StmtKind::Other { text, .. } => self.out.push_str(text),
        }
    }

    fn nat(&mut self, n: &Nat) {
        self.out.push_str(match n.kind {
            NatKind::Snat => "snat",
            NatKind::Dnat => "dnat",
            NatKind::Masquerade => "masquerade",
            NatKind::Redirect => "redirect",
        });
        let fam = n.family.or_else(|| {
            // In inet tables nft prints the family of a literal address.
            if self.family != Family::Inet {
                return None;
            }
            fn lit_family(e: &Expr) -> Option<Family> {
                match &e.kind {
                    ExprKind::Ipv4(_) => Some(Family::Ip),
                    ExprKind::Ipv6(_) => Some(Family::Ip6),
                    ExprKind::Range { low, .. } => lit_family(low),
                    ExprKind::Prefix { addr, .. } => lit_family(addr),
                    _ => None,
                }
            }
            n.addr.as_ref().and_then(lit_family)
        });
        if let Some(f) = fam {
            let _ = write!(self.out, " {}", f.as_str());
        }
        self.in_nat = true;
        if n.addr.is_some() || n.port.is_some() {
            self.out.push_str(" to ");
        }
        let v6 = n.family == Some(Family::Ip6) || self.family == Family::Ip6;
        if let Some(a) = &n.addr {
            let actx = Ctx::Type(if v6 {
                Datatype::Ipv6Addr
            } else {
                Datatype::Ipv4Addr
            });
            let bracket = v6 && n.port.is_some() && !matches!(a.kind, ExprKind::Map { .. });
            if bracket {
                self.out.push('[');
            }
            self.value_expr(a, &actx);
            if bracket {
                self.out.push(']');
            }
        }
        if let Some(p) = &n.port {
            self.out.push(':');
            self.value_expr(p, &Ctx::Type(Datatype::InetService));
        }
        self.in_nat = false;
        if !n.flags.is_empty() {
            let order = ["random", "fully-random", "persistent"];
            let mut fl: Vec<&str> = n.flags.iter().map(|f| f.name.as_str()).collect();
            fl.sort_by_key(|f| order.iter().position(|o| o == f).unwrap_or(order.len()));
            let _ = write!(self.out, " {}", fl.join(","));
        }
    }

    fn verdict(&mut self, v: &Verdict) {
        match v {
            Verdict::Accept => self.out.push_str("accept"),
            Verdict::Drop => self.out.push_str("drop"),
            Verdict::Continue => self.out.push_str("continue"),
            Verdict::Return => self.out.push_str("return"),
            Verdict::Jump(t) => {
                let _ = write!(self.out, "jump {}", t.name);
            }
            Verdict::Goto(t) => {
                let _ = write!(self.out, "goto {}", t.name);
            }
        }
    }

    fn match_stmt(&mut self, left: &Expr, op: RelOp, right: &Expr) {
        // `ct original saddr ::1` lists as `ct original ip6 saddr ::1`.
        self.ct_addr_hint = first_addr_family(right);
        self.match_inner(left, op, right);
        self.ct_addr_hint = None;
    }

    fn match_inner(&mut self, left: &Expr, op: RelOp, right: &Expr) {
        let dt = expr_dtype(left);
        let bitmask = dt.is_some_and(|d| d.is_bitmask());
        let right = strip_paren(right);
        // `X & M != 0` → `X M` ; `X & M == 0` → `X ! M` (bitmask types).
        if bitmask
            && let ExprKind::Binary {
                op: BinOp::And,
                left: sel,
                right: mask,
            } = &left.kind
            && matches!(right.kind, ExprKind::Number { value: 0, .. })
            && matches!(op, RelOp::Ne | RelOp::Eq)
            && expr_dtype(sel).is_some_and(|d| d.is_bitmask())
            && !matches!(sel.kind, ExprKind::Binary { .. })
        {
            self.expr(sel, &Ctx::None);
            self.out.push_str(if op == RelOp::Eq { " ! " } else { " " });
            self.flag_list(strip_paren(mask), dt);
            return;
        }
        // `X & M == V` with M covering every bit of the type → `X == V`.
        if let (
            Some(d),
            ExprKind::Binary {
                op: BinOp::And,
                left: sel,
                right: mask,
            },
        ) = (dt, &left.kind)
            && bitmask
            && const_value(mask, Some(d))
                .is_some_and(|m| d.bits() < 128 && m == (1u128 << d.bits()) - 1)
        {
            self.expr(sel, &Ctx::None);
            let _ = write!(
                self.out,
                " {} ",
                if op == RelOp::Implicit {
                    "=="
                } else {
                    op.as_str()
                }
            );
            let v = const_value(right, Some(d));
            match v {
                Some(v) if matches!(right.kind, ExprKind::Binary { .. } | ExprKind::List(_)) => {
                    let _ = write!(self.out, "0x{v:02x}");
                }
                _ => self.value_expr(right, &Ctx::Type(d)),
            }
            return;
        }
        // `ip saddr & 255.255.0.0 == 255.255.0.0` → `ip saddr 255.255.0.0/16`.
        if let ExprKind::Binary {
            op: BinOp::And,
            left: sel,
            right: mask,
        } = &left.kind
            && matches!(op, RelOp::Implicit | RelOp::Eq)
            && let Some(d @ (Datatype::Ipv4Addr | Datatype::Ipv6Addr)) = expr_dtype(sel)
            && !matches!(sel.kind, ExprKind::Binary { .. })
            && let (Some(m), Some(v)) = (const_value(mask, Some(d)), const_value(right, Some(d)))
        {
            let bits = d.bits();
            let ones = m.count_ones();
            let full = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            let prefix_mask = if ones == 0 {
                0
            } else {
                (full >> (bits - ones)) << (bits - ones)
            };
            if m == prefix_mask && v & !m == 0 {
                self.expr(sel, &Ctx::None);
                self.out.push(' ');
                if d == Datatype::Ipv4Addr {
                    let _ = write!(self.out, "{}/{ones}", std::net::Ipv4Addr::from(v as u32));
                } else {
                    let _ = write!(self.out, "{}/{ones}", std::net::Ipv6Addr::from(v));
                }
                return;
            }
        }
        self.expr(left, &Ctx::None);
        let ctx = ctx_of(left);
        let is_const_single = !matches!(
            right.kind,
            ExprKind::Set(_)
                | ExprKind::SetRef(_)
                | ExprKind::Range { .. }
                | ExprKind::Prefix { .. }
                | ExprKind::List(_)
        );
        let op_str = match op {
            RelOp::Implicit if matches!(left.kind, ExprKind::Binary { .. }) => "==",
            RelOp::Implicit => "",
            RelOp::Eq
                if bitmask && is_const_single && !matches!(left.kind, ExprKind::Binary { .. }) =>
            {
                "=="
            }
            RelOp::Eq => {
                if matches!(left.kind, ExprKind::Binary { .. }) {
                    "=="
                } else {
                    ""
                }
            }
            o => o.as_str(),
        };
        if op_str.is_empty() {
            self.out.push(' ');
        } else {
            let _ = write!(self.out, " {op_str} ");
        }
        if bitmask
            && matches!(right.kind, ExprKind::List(_) | ExprKind::Symbol(_))
            && !matches!(left.kind, ExprKind::Binary { .. })
        {
            self.flag_list(right, dt);
            return;
        }
        self.value_expr(right, &ctx);
    }

    /// `syn,ack` / `established,new`: sorted by bit value, comma-joined.
    fn flag_list(&mut self, e: &Expr, dt: Option<Datatype>) {
        let mut parts: Vec<&Expr> = Vec::new();
        fn collect<'e>(e: &'e Expr, v: &mut Vec<&'e Expr>) {
            match &e.kind {
                ExprKind::List(xs) => xs.iter().for_each(|x| collect(x, v)),
                ExprKind::Binary {
                    op: BinOp::Or,
                    left,
                    right,
                } => {
                    collect(left, v);
                    collect(right, v);
                }
                ExprKind::Paren(i) => collect(i, v),
                _ => v.push(e),
            }
        }
        collect(e, &mut parts);
        parts.sort_by_key(|p| const_value(p, dt).unwrap_or(u128::MAX));
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.expr(p, &dt.map(Ctx::Type).unwrap_or(Ctx::None));
        }
    }

    /// A value (right side, set value) with datatype context, maps allowed.
    fn value_expr(&mut self, e: &Expr, ctx: &Ctx) {
        self.expr(e, ctx)
    }

    fn map_expr(&mut self, m: &Expr, kctx: &Ctx, vctx: &Ctx) {
        match &m.kind {
            ExprKind::Set(elems) => self.set_literal_ctx(elems, kctx, vctx, false),
            _ => self.expr(m, kctx),
        }
    }

    fn set_literal(&mut self, elems: &[Expr], ctx: &Ctx, named: bool) {
        self.set_literal_ctx(elems, ctx, &Ctx::None, named)
    }

    fn set_literal_ctx(&mut self, elems: &[Expr], kctx: &Ctx, vctx: &Ctx, named: bool) {
        // Nested anonymous sets are merged into their parent, as nft does.
        fn flatten<'e>(es: &'e [Expr], out: &mut Vec<&'e Expr>) {
            for e in es {
                match &e.kind {
                    ExprKind::Set(inner) => flatten(inner, out),
                    _ => out.push(e),
                }
            }
        }
        let mut sorted: Vec<&Expr> = Vec::new();
        flatten(elems, &mut sorted);
        sorted.sort_by_key(|e| elem_key(e, kctx));
        // nft's `calculate_delim`: named sets put 16 integer-like or 2 address-like elements on
        // a line, other types one per line; anonymous sets stay on one line.
        let per_line = match kctx {
            _ if !named => usize::MAX,
            Ctx::Type(
                Datatype::Integer { .. }
                | Datatype::Nfproto
                | Datatype::InetProto
                | Datatype::InetService
                | Datatype::TcpFlag
                | Datatype::Mark
                | Datatype::Ifindex
                | Datatype::Uid
                | Datatype::Gid
                | Datatype::CtDir,
            )
            | Ctx::Hex => 16,
            Ctx::Type(
                Datatype::Ipv4Addr | Datatype::CtState | Datatype::CtStatus | Datatype::Pkttype,
            ) => 2,
            _ => 1,
        };
        self.out.push_str("{ ");
        let mut count = 0;
        for (i, e) in sorted.iter().enumerate() {
            if i > 0 {
                if count < per_line {
                    self.out.push_str(", ");
                } else {
                    count = 0;
                    self.out.push_str(",\n\t\t\t     ");
                }
            }
            self.elem(e, kctx, vctx);
            count += 1;
        }
        self.out.push_str(" }");
    }

    fn elem(&mut self, e: &Expr, kctx: &Ctx, vctx: &Ctx) {
        match &e.kind {
            ExprKind::MapElem { key, value } => {
                self.elem(key, kctx, vctx);
                self.out.push_str(" : ");
                // Map data keeps full-length prefixes (`1.2.3.4/32`), as nft prints them.
                let keep = std::mem::replace(&mut self.keep_full_prefix, true);
                self.expr(value, vctx);
                self.keep_full_prefix = keep;
            }
            ExprKind::Elem {
                value,
                timeout,
                expires,
                comment,
            } => {
                self.expr(value, kctx);
                if let Some(t) = timeout {
                    let _ = write!(self.out, " timeout {}", format_time(*t));
                }
                if let Some(t) = expires {
                    let _ = write!(self.out, " expires {}", format_time(*t));
                }
                if let Some(c) = comment {
                    let _ = write!(self.out, " comment {}", quote(c));
                }
            }
            _ => self.expr(e, kctx),
        }
    }

    fn binary(&mut self, op: BinOp, l: &Expr, r: &Expr, ctx: &Ctx) {
        let my = prec(op);
        let l = strip_paren(l);
        let r = strip_paren(r);
        // Constant shifts are folded (`1 << 20` → `0x100000`), as nft's evaluation does.
        if matches!(op, BinOp::Shl | BinOp::Shr)
            && is_number_tree(l)
            && is_number_tree(r)
            && let Some(v) = const_value(
                &Expr::new(
                    ExprKind::Binary {
                        op,
                        left: Box::new(l.clone()),
                        right: Box::new(r.clone()),
                    },
                    Span::default(),
                ),
                None,
            )
        {
            match u64::try_from(v)
                .ok()
                .and_then(|v| ctx.dt().and_then(|d| d.symbol_name(v)))
            {
                Some(n) => self.out.push_str(n),
                None => {
                    let _ = write!(self.out, "0x{v:x}");
                }
            }
            return;
        }
        let lctx = ctx_of(l);
        let lp = matches!(&l.kind, ExprKind::Binary { op: o, .. } if prec(*o) < my);
        if lp {
            self.out.push('(');
        }
        self.expr(l, &lctx);
        if lp {
            self.out.push(')');
        }
        let _ = write!(self.out, " {} ", op.as_str());
        let r_is_fold = matches!(&r.kind, ExprKind::Binary { op: BinOp::Shl | BinOp::Shr, left, right } if is_number_tree(left) && is_number_tree(right));
        let rp = !r_is_fold && matches!(&r.kind, ExprKind::Binary { op: o, .. } if prec(*o) <= my);
        if rp {
            self.out.push('(');
        }
        match (&r.kind, lctx.dt()) {
            (_, _) if matches!(op, BinOp::Shl | BinOp::Shr) => {
                self.expr(r, &Ctx::Type(Datatype::Integer { bits: 32 }))
            }
            (ExprKind::Number { value, .. }, Some(Datatype::Mark)) => {
                let _ = write!(self.out, "0x{value:08x}");
            }
            (ExprKind::Number { value, .. }, Some(Datatype::Ipv4Addr)) => {
                let _ = write!(self.out, "{}", std::net::Ipv4Addr::from(*value as u32));
            }
            (ExprKind::Number { value, .. }, _) if matches!(lctx, Ctx::Hex) => {
                let _ = write!(self.out, "0x{value:x}");
            }
            (ExprKind::Number { value, hex: true }, _) => {
                let _ = write!(self.out, "0x{value:02x}");
            }
            (ExprKind::Number { value, hex: false }, _) => {
                let _ = write!(self.out, "{value}");
            }
            _ => self.expr(r, &lctx),
        }
        if rp {
            self.out.push(')');
        }
        let _ = ctx;
    }

    fn expr(&mut self, e: &Expr, ctx: &Ctx) {
        match &e.kind {
            ExprKind::Payload(f) => {
                let _ = write!(self.out, "{} {}", f.proto, f.field);
            }
            ExprKind::RawPayload { base, offset, len } => {
                let b = match base {
                    RawBase::Ll => "ll",
                    RawBase::Nh => "nh",
                    RawBase::Th => "th",
                    RawBase::Ih => "ih",
                };
                let _ = write!(self.out, "@{b},{offset},{len}");
            }
            ExprKind::Fib { flags, result } => {
                let _ = write!(self.out, "fib {} {result}", flags.join(" . "));
            }
            ExprKind::Numgen {
                random,
                modulus,
                offset,
            } => {
                let ty = if *random { "random" } else { "inc" };
                let _ = write!(self.out, "numgen {ty} mod {modulus}");
                if *offset != 0 {
                    let _ = write!(self.out, " offset {offset}");
                }
            }
            ExprKind::Meta { key, .. } => {
                if key.unqualified {
                    self.out.push_str(key.name);
                } else {
                    let _ = write!(self.out, "meta {}", key.name);
                }
            }
            ExprKind::Ct { dir, family, key } => {
                self.out.push_str("ct ");
                if let Some(d) = dir.filter(|_| !matches!(key.name, "protocol" | "l3proto")) {
                    let _ = write!(self.out, "{} ", d.as_str());
                }
                let fam = family.or_else(|| {
                    (dir.is_some() && matches!(key.name, "saddr" | "daddr")).then_some(
                        match (self.ct_addr_hint, self.family) {
                            (Some(f), _) => f,
                            (None, Family::Ip6) => Family::Ip6,
                            _ => Family::Ip,
                        },
                    )
                });
                if let Some(f) = fam
                    && matches!(key.name, "saddr" | "daddr")
                {
                    let _ = write!(self.out, "{} ", f.as_str());
                }
                self.out.push_str(key.name);
            }
            ExprKind::Number { value, .. } if matches!(ctx, Ctx::Hex) => {
                let _ = write!(self.out, "0x{value:x}");
            }
            ExprKind::Number { value, .. }
                if matches!(ctx, Ctx::Type(Datatype::Integer { bits: 0 })) =>
            {
                let _ = write!(self.out, "0x{value:x}");
            }
            ExprKind::Number { value, hex } => self.number(*value, *hex, ctx.dt()),
            ExprKind::Symbol(s) => self.symbol(s, ctx.dt()),
            ExprKind::String(s) => self.out.push_str(&quote(s)),
            ExprKind::Ipv4(a) => {
                let _ = write!(self.out, "{a}");
            }
            ExprKind::Ipv6(a) => {
                let _ = write!(self.out, "{a}");
            }
            ExprKind::Mac(m) => {
                let s: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
                self.out.push_str(&s.join(":"));
            }
            ExprKind::Time(ms) => self.out.push_str(&format_time(*ms)),
            ExprKind::Prefix { addr, len } => self.prefix(addr, *len, ctx),
            ExprKind::Range { low, high } => {
                // A range that is exactly a prefix prints as the prefix.
                if let (true, ExprKind::Ipv4(a), ExprKind::Ipv4(b)) =
                    (self.in_nat, &low.kind, &high.kind)
                {
                    let (a, b) = (u32::from(*a), u32::from(*b));
                    let span = b.wrapping_sub(a).wrapping_add(1);
                    if b > a && span.is_power_of_two() && a & (span - 1) == 0 {
                        let _ = write!(
                            self.out,
                            "{}/{}",
                            std::net::Ipv4Addr::from(a),
                            32 - span.trailing_zeros()
                        );
                        return;
                    }
                }
                self.expr(low, ctx);
                self.out.push('-');
                self.expr(high, ctx);
            }
            ExprKind::Set(elems) => self.set_literal(elems, ctx, false),
            ExprKind::SetRef(n) => {
                let _ = write!(self.out, "@{}", n.name);
            }
            ExprKind::Var(n) => {
                let _ = write!(self.out, "${}", n.name);
            }
            ExprKind::Concat(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(" . ");
                    }
                    let pctx = match ctx {
                        Ctx::Concat(v) => v
                            .get(i)
                            .copied()
                            .flatten()
                            .map(Ctx::Type)
                            .unwrap_or(Ctx::None),
                        _ => Ctx::None,
                    };
                    self.expr(p, &pctx);
                }
            }
            ExprKind::Binary { op, left, right } => self.binary(*op, left, right, ctx),
            ExprKind::List(v) => {
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.expr(x, ctx);
                }
            }
            ExprKind::MapElem { key, value } => {
                self.expr(key, ctx);
                self.out.push_str(" : ");
                self.expr(value, &Ctx::None);
            }
            ExprKind::Elem { .. } => self.elem(e, ctx, &Ctx::None),
            ExprKind::Map { key, map } => {
                self.expr(key, &Ctx::None);
                self.out.push_str(" map ");
                let kctx = ctx_of(key);
                self.map_expr(map, &kctx, ctx);
            }
            ExprKind::Verdict(v) => self.verdict(v),
            ExprKind::Paren(inner) => {
                self.out.push('(');
                self.expr(inner, ctx);
                self.out.push(')');
            }
            ExprKind::Error => self.out.push_str("<error>"),
        }
    }

    fn prefix(&mut self, addr: &Expr, len: u32, ctx: &Ctx) {
        match &addr.kind {
            ExprKind::Ipv4(a) if len <= 32 => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let net = std::net::Ipv4Addr::from(u32::from(*a) & mask);
                if len == 32 && !self.keep_full_prefix {
                    let _ = write!(self.out, "{net}");
                } else {
                    let _ = write!(self.out, "{net}/{len}");
                }
            }
            ExprKind::Ipv6(a) if len <= 128 => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let net = std::net::Ipv6Addr::from(u128::from(*a) & mask);
                if len == 128 && !self.keep_full_prefix {
                    let _ = write!(self.out, "{net}");
                } else {
                    let _ = write!(self.out, "{net}/{len}");
                }
            }
            _ => {
                self.expr(addr, ctx);
                let _ = write!(self.out, "/{len}");
            }
        }
    }

    fn number(&mut self, value: u128, hex: bool, dt: Option<Datatype>) {
        use Datatype as D;
        match dt {
            Some(D::Mark) => {
                let _ = write!(self.out, "0x{value:08x}");
            }
            Some(D::CtState | D::CtStatus | D::TcpFlag | D::CtEvent) => {
                if let Some(n) = u64::try_from(value)
                    .ok()
                    .and_then(|v| dt.and_then(|d| d.symbol_name(v)))
                {
                    self.out.push_str(n);
                } else {
                    let _ = write!(self.out, "0x{value:02x}");
                }
            }
            Some(D::Ipv4Addr) => {
                let _ = write!(self.out, "{}", std::net::Ipv4Addr::from(value as u32));
            }
            Some(D::Ipv6Addr) => {
                let _ = write!(self.out, "{}", std::net::Ipv6Addr::from(value));
            }
            Some(D::InetProto | D::IcmpCode | D::Icmpv6Code)
                if self.opts.numeric_proto && !self.in_reject =>
            {
                let _ = write!(self.out, "{value}");
            }
            Some(
                d @ (D::InetProto
                | D::IcmpType
                | D::IcmpCode
                | D::Icmpv6Type
                | D::Icmpv6Code
                | D::IcmpxCode
                | D::Pkttype
                | D::Nfproto
                | D::CtDir),
            ) => match u64::try_from(value).ok().and_then(|v| d.symbol_name(v)) {
                Some(n) => self.out.push_str(n),
                None => {
                    let _ = write!(self.out, "{value}");
                }
            },
            Some(d @ (D::Dscp | D::Ecn)) => {
                match u64::try_from(value).ok().and_then(|v| d.symbol_name(v)) {
                    Some(n) => self.out.push_str(n),
                    // dscp_type/ecn_type basefmt: "0x%.2Zx" / "0x%.1Zx".
                    None if d == D::Dscp => {
                        let _ = write!(self.out, "0x{value:02x}");
                    }
                    None => {
                        let _ = write!(self.out, "0x{value:x}");
                    }
                }
            }
            Some(D::EtherType) => match u64::try_from(value)
                .ok()
                .and_then(|v| D::EtherType.symbol_name(v))
            {
                Some(n) => self.out.push_str(n),
                None => {
                    let _ = write!(self.out, "0x{value:04x}");
                }
            },
            Some(D::Integer { .. } | D::InetService | D::Uid | D::Gid | D::Ifindex) => {
                let _ = write!(self.out, "{value}");
            }
            _ => {
                if hex {
                    let _ = write!(self.out, "0x{value:x}");
                } else {
                    let _ = write!(self.out, "{value}");
                }
            }
        }
    }

    fn symbol(&mut self, s: &str, dt: Option<Datatype>) {
        use Datatype as D;
        match dt {
            Some(D::InetService) => match catalog::service_port(s) {
                Some(p) => {
                    let _ = write!(self.out, "{p}");
                }
                None => self.out.push_str(s),
            },
            Some(D::InetProto) => match D::InetProto.symbol_value(s) {
                Some(v) if self.opts.numeric_proto => {
                    let _ = write!(self.out, "{v}");
                }
                Some(v) => self.out.push_str(D::InetProto.symbol_name(v).unwrap_or(s)),
                None => self.out.push_str(s),
            },
            Some(d @ (D::IcmpCode | D::Icmpv6Code))
                if self.opts.numeric_proto && !self.in_reject =>
            {
                match d.symbol_value(s) {
                    Some(v) => {
                        let _ = write!(self.out, "{v}");
                    }
                    None => self.out.push_str(s),
                }
            }
            Some(
                d @ (D::IcmpType | D::Icmpv6Type | D::IcmpCode | D::Icmpv6Code | D::IcmpxCode),
            ) => match d.symbol_value(s) {
                Some(v) => self.out.push_str(d.symbol_name(v).unwrap_or(s)),
                None => self.out.push_str(s),
            },
            Some(D::Ifname | D::String { .. }) => self.out.push_str(&quote(s)),
            _ => self.out.push_str(s),
        }
    }
}

fn is_number_tree(e: &Expr) -> bool {
    match &strip_paren(e).kind {
        ExprKind::Number { .. } => true,
        ExprKind::Binary { left, right, .. } => is_number_tree(left) && is_number_tree(right),
        _ => false,
    }
}

/// Family of the first address literal in a value (`1.2.3.4`, `{ ::1 }`, `10.0.0.0/8`).
fn first_addr_family(e: &Expr) -> Option<Family> {
    match &e.kind {
        ExprKind::Ipv4(_) => Some(Family::Ip),
        ExprKind::Ipv6(_) => Some(Family::Ip6),
        ExprKind::Prefix { addr, .. } => first_addr_family(addr),
        ExprKind::Range { low, .. } => first_addr_family(low),
        ExprKind::Set(v) | ExprKind::List(v) => v.first().and_then(first_addr_family),
        ExprKind::Paren(i) => first_addr_family(i),
        _ => None,
    }
}

/// Source span of a table item (for placing comments).
fn item_span(it: &TableItem) -> Option<Span> {
    match it {
        TableItem::Chain(c) => Some(c.span),
        TableItem::Set(s) => Some(s.span),
        TableItem::Define(d) => Some(d.span),
        TableItem::Object { span, .. } => Some(*span),
        TableItem::Comment(c) => Some(c.span),
        TableItem::Flags(f) => f.first().map(|i| i.span),
    }
}

/// Drop explicit protocol matches that nft treats as (and removes like) implicit dependencies:
/// `ip protocol tcp tcp dport 22` → `tcp dport 22`, `meta l4proto icmp icmp type x`,
/// `meta nfproto ipv4 ip saddr x`, `meta protocol ip udp dport 67`.
fn kill_dependencies(stmts: &[Stmt], family: Family) -> Vec<&Stmt> {
    let mut out: Vec<&Stmt> = Vec::new();
    for (i, s) in stmts.iter().enumerate() {
        // `iiftype ether` is the link-layer dependency of a later `ether` match.
        if let StmtKind::Match { left, op: RelOp::Implicit | RelOp::Eq, right } = &s.kind
            && let ExprKind::Meta { key, .. } = &left.kind
            && key.name == "iiftype"
            && const_value(right, Some(Datatype::Arphrd)) == Some(1)
            && stmts.get(i + 1..).unwrap_or(&[]).iter().any(|n| {
                matches!(dep_target(n).map(|t| &first_selector(t).kind), Some(ExprKind::Payload(f)) if f.proto == "ether")
            })
        {
            continue;
        }
        if let Some(next) = stmts.get(i + 1)
            && is_dependency_of(s, next, family)
        {
            continue;
        }
        out.push(s);
    }
    out
}

fn dep_target(s: &Stmt) -> Option<&Expr> {
    match &s.kind {
        StmtKind::Match { left, .. } => Some(left),
        StmtKind::Vmap { key, .. } => Some(key),
        _ => None,
    }
}

fn first_selector(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Concat(v) => v.first().map(first_selector).unwrap_or(e),
        ExprKind::Binary { left, .. } => first_selector(left),
        _ => e,
    }
}

fn is_dependency_of(dep: &Stmt, next: &Stmt, family: Family) -> bool {
    let StmtKind::Match {
        left,
        op: RelOp::Implicit | RelOp::Eq,
        right,
    } = &dep.kind
    else {
        return false;
    };
    // In inet tables `meta nfproto` before a `reject` is the reject's dependency.
    if let (StmtKind::Reject(w), ExprKind::Meta { key, .. }, Family::Inet) =
        (&next.kind, &left.kind, family)
    {
        let icmpx = matches!(w, Some(RejectWith::Icmp { proto, .. }) if proto == "icmpx");
        return key.name == "nfproto" && !icmpx;
    }
    let Some(target) = dep_target(next) else {
        return false;
    };
    let target = first_selector(target);
    // The protocol key of the table family's network header, or `meta l4proto`, naming the
    // target's protocol (`desc::ProtoDesc::upper`).
    let names = |d: &desc::ProtoDesc, t: &str| {
        const_value(right, Some(Datatype::InetProto))
            .and_then(|n| u16::try_from(n).ok())
            .and_then(|n| d.upper(n))
            == Some(t)
    };
    match (&left.kind, &target.kind) {
        (ExprKind::Payload(pf), ExprKind::Payload(t))
            if (pf.proto == "ip" && family == Family::Ip)
                || (pf.proto == "ip6" && family == Family::Ip6) =>
        {
            desc::desc(pf.proto).is_some_and(|d| {
                d.protocol_key == desc::ProtoKey::Field(pf.field) && names(d, t.proto)
            })
        }
        (ExprKind::Meta { key, .. }, ExprKind::Payload(t)) if key.name == "l4proto" => {
            names(desc::inet_service(), t.proto)
        }
        (ExprKind::Meta { key, .. }, _) if key.name == "nfproto" || key.name == "protocol" => {
            // `meta nfproto` is inet's protocol key, `meta protocol` netdev's: both name a
            // network protocol
            let nfproto = key.name == "nfproto";
            let (d, dt) = if nfproto {
                (Some(desc::inet()), Datatype::Nfproto)
            } else {
                (desc::desc("netdev"), Datatype::EtherType)
            };
            let net = d.and_then(|d| {
                const_value(right, Some(dt))
                    .and_then(|v| u16::try_from(v).ok())
                    .and_then(|v| d.upper(v))
            });
            match &target.kind {
                ExprKind::Payload(t) if nfproto => {
                    net.is_some()
                        && desc::implied_nfproto(t.proto)
                            .and_then(|(f, _)| desc::inet().upper(u16::from(f)))
                            == net
                }
                ExprKind::Payload(_) => {
                    (net == Some("ip") && family == Family::Ip)
                        || (net == Some("ip6") && family == Family::Ip6)
                }
                ExprKind::Ct {
                    family, key: ck, ..
                } if nfproto => {
                    matches!(ck.name, "saddr" | "daddr")
                        && ((net == Some("ip") && *family != Some(Family::Ip6))
                            || (net == Some("ip6") && *family != Some(Family::Ip)))
                }
                _ => false,
            }
        }
        _ => false,
    }
}
