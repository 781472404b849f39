//! Rules: statements and verdicts in order, with their dependencies (see `deps`), the
//! "statement after verdict" check, and statement placement against the hooks and chain
//! types of every base chain that reaches the rule's chain.

use nfr_grammar::ast::{self, ExprKind as A};

use super::Ctx;
use super::deps::{DepState, NFPROTO_IPV4, NFPROTO_IPV6, Need, needs};
use super::resolve::Defines;
use crate::diag::{Diagnostic, Span};
use crate::hir::{
    AnonSet, ChainId, ChainKind, ChainType, Dep, Element, ElementsRef, Expr, ExprKind, Family, Hir,
    Hook, Item, KeyPart, MapData, Match, NatKind, NatStmt, ObjKind, ObjTarget, Op, Operand,
    RateUnit, RejectKind, Rhs, Rule, SetId, Stmt, StmtKind, Type, Value, Verdict, VerdictKind,
    VmapRef,
};

/// Why a log prefix's `$name` cannot be expanded: the name, and where its define is.
pub(crate) enum PrefixError<'p> {
    Undefined(&'p str),
    NotAWord(&'p str, Span),
}

/// A log prefix with its `$name`s replaced by their values, as nft's parser and `stmt_evaluate_log_prefix`
/// do: a name is letters, digits and `_` after a `$`, and its define (the one in force before `seq`) must
/// hold a word or a string, which goes in without its quotes.
pub(crate) fn expand_log_prefix<'p>(
    defines: &Defines,
    seq: usize,
    prefix: &'p str,
) -> Result<String, PrefixError<'p>> {
    if !prefix.contains('$') {
        return Ok(prefix.to_string());
    }
    let mut out = String::new();
    let mut rest = prefix;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        let def = defines.get(name, seq).ok_or(PrefixError::Undefined(name))?;
        match &def.value.kind {
            A::Symbol(t) | A::String(t) => out.push_str(t),
            _ => return Err(PrefixError::NotAWord(name, def.span)),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Ctx {
    /// A log prefix with its `$name`s replaced by their values ([`expand_log_prefix`]); an undefined name is
    /// E0010, a define that is not a word or a string E0211.
    fn log_prefix(&mut self, p: &ast::Str) -> Option<String> {
        let err = match expand_log_prefix(&self.defines, self.seq, &p.value) {
            Ok(s) => return Some(s),
            Err(e) => e,
        };
        let d = match err {
            PrefixError::Undefined(name) => Diagnostic::error(
                "E0010",
                self.sp(p.span),
                format!("undefined variable `${name}` in a log prefix"),
            )
            .with_primary_label("the log prefix uses it")
            .with_help(format!("define it first: `define {name} = \"...\"`")),
            PrefixError::NotAWord(name, def) => Diagnostic::error(
                "E0211",
                self.sp(p.span),
                format!("`${name}` in a log prefix is not a word or a string"),
            )
            .with_primary_label("the log prefix uses it")
            .with_label(def, "defined here"),
        };
        self.diags.push(d);
        None
    }

    pub(crate) fn rule(&mut self, r: &ast::Rule) -> Option<Rule> {
        let mut items: Vec<Item> = Vec::new();
        let mut verdict: Option<Verdict> = None;
        let mut terminal: Option<(Span, &'static str)> = None;
        let mut st = DepState::default();
        let mut ok = true;
        // diagnostics are only appended while a rule is checked: look at this rule's own
        let diags_before = self.diags.len();
        for s in &r.stmts {
            let span = self.sp(s.span);
            if let Some((tspan, what)) = terminal {
                self.diags.push(
                    Diagnostic::error("E0406", span, "statement after verdict")
                        .with_primary_label("this is never reached")
                        .with_label(tspan, format!("{what} ends the rule here"))
                        .with_help("move the statement before the verdict, or into its own rule"),
                );
                ok = false;
                break;
            }
            match &s.kind {
                ast::StmtKind::Match { left, op, right } => {
                    let Some(m) = self.a_match(left, *op, right, span) else {
                        ok = false;
                        continue;
                    };
                    let mut ns = Vec::new();
                    needs(&m.left, self.family, &mut ns);
                    if !self.apply_needs(&mut st, &ns, &mut items) {
                        ok = false;
                    }
                    self.note_fixed(&mut st, &m);
                    items.push(Item::Match(m));
                }
                ast::StmtKind::Verdict(v) => {
                    let Some(v) = self.verdict(v, span) else {
                        ok = false;
                        continue;
                    };
                    terminal = Some((span, "this verdict"));
                    verdict = Some(v);
                }
                ast::StmtKind::Vmap { key, map } => {
                    let Some(k) = self.selector(key) else {
                        ok = false;
                        continue;
                    };
                    let mut ns = Vec::new();
                    needs(&k, self.family, &mut ns);
                    if !self.apply_needs(&mut st, &ns, &mut items) {
                        ok = false;
                    }
                    let parts = super::types::key_types(&k);
                    let m = self.with_var(map, &mut |cx, e| match &e.kind {
                        A::Set(elems) => {
                            let set =
                                cx.anon_set(elems, &parts, Some(&[Type::Verdict]), cx.sp(e.span))?;
                            if set.interval {
                                cx.check_overlaps((&set.elements).into(), "this verdict map");
                            }
                            Some(VmapRef::Anon(set))
                        }
                        A::SetRef(id) => {
                            let sid = cx.lookup_set(id, &parts, true)?;
                            if cx.sets[sid.0 as usize].data.as_deref() != Some(&[Type::Verdict]) {
                                cx.diags.push(
                                    Diagnostic::error(
                                        "E0106",
                                        cx.sp(id.span),
                                        format!("`@{}` is not a verdict map", id.name),
                                    )
                                    .with_label(cx.sets[sid.0 as usize].span, "declared here")
                                    .with_help("declare it with `type KEY : verdict`"),
                                );
                                return None;
                            }
                            Some(VmapRef::Named(sid))
                        }
                        _ => {
                            cx.diags.push(Diagnostic::error(
                                "E0204",
                                cx.sp(e.span),
                                "expected `{ key : verdict, ... }` or `@map` after vmap",
                            ));
                            None
                        }
                    });
                    let Some(m) = m else {
                        ok = false;
                        continue;
                    };
                    items.push(Item::Vmap(Verdict {
                        kind: VerdictKind::Vmap {
                            key: Box::new(k),
                            map: Box::new(m),
                        },
                        span,
                    }));
                }
                ast::StmtKind::Queue { num, flags } => {
                    let Some(v) = self.queue(num.as_ref(), flags, span) else {
                        ok = false;
                        continue;
                    };
                    terminal = Some((span, "queue"));
                    verdict = Some(v);
                }
                ast::StmtKind::Reject(with) => {
                    let Some(kind) = self.reject(with.as_ref(), span, &mut st, &mut items) else {
                        ok = false;
                        continue;
                    };
                    items.push(Item::Stmt(Stmt {
                        kind: StmtKind::Reject(kind),
                        span,
                    }));
                    terminal = Some((span, "reject"));
                }
                other => match self.stmt(other, span, &mut st, &mut items) {
                    Some(s) => {
                        let is_nat = matches!(s.kind, StmtKind::Nat(_));
                        items.push(Item::Stmt(s));
                        if is_nat {
                            terminal = Some((span, "nat"));
                        }
                    }
                    None => ok = false,
                },
            }
        }
        let new_errors = self.diags[diags_before..].iter().any(Diagnostic::is_error);
        if !ok || new_errors {
            return None;
        }
        Some(Rule {
            span: self.sp(r.span),
            items,
            deps: [None; 2],
            verdict,
            comment: r.comment.as_ref().map(|c| c.value.as_str().into()),
        })
    }

    /// A rule made by [`Ctx::rule`] (its syntax tree dropped first, so that this can take its place) in its
    /// final form: the first two implicit matches kept compact (`deps`), the items in a block of their
    /// length (a ruleset holds many rules: no spare capacity in each, and no hole beside each as a shrink
    /// in place would leave; the grown block freed here is reused by the next rule's).
    pub(crate) fn settle(rule: &mut Rule) {
        let items = std::mem::take(&mut rule.items);
        let mut deps = [None; 2];
        let mut at = [usize::MAX; 2];
        let mut n = 0;
        for (i, it) in items.iter().enumerate() {
            if let (Some(slot), Item::Match(m)) = (deps.get_mut(n), it)
                && let Some(d) = Dep::of(m, i - n)
            {
                *slot = Some(d);
                at[n] = i;
                n += 1;
            }
        }
        rule.items = Vec::with_capacity(items.len() - n);
        rule.items.extend(
            items
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !at.contains(i))
                .map(|(_, it)| it),
        );
        rule.deps = deps;
    }

    fn a_match(
        &mut self,
        left: &ast::Expr,
        op: ast::RelOp,
        right: &ast::Expr,
        span: Span,
    ) -> Option<Match> {
        let l = self.selector(left)?;
        let r = self.rhs(right, &l)?;
        let bitmask = l.ty.is_bitmask() && !matches!(l.kind, ExprKind::Bitwise { .. });
        let op = match op {
            ast::RelOp::Implicit => match &r {
                Rhs::Value(_) if bitmask => Op::Bitmask,
                _ => Op::Eq,
            },
            ast::RelOp::Eq => Op::Eq,
            ast::RelOp::Ne => Op::Neq,
            ast::RelOp::Lt => Op::Lt,
            ast::RelOp::Gt => Op::Gt,
            ast::RelOp::Le => Op::Lte,
            ast::RelOp::Ge => Op::Gte,
            ast::RelOp::Neg => {
                if !l.ty.is_bitmask() || matches!(l.kind, ExprKind::Bitwise { .. }) {
                    self.diags.push(
                        Diagnostic::error(
                            "E0209",
                            span,
                            format!("`!` is a flag test, but {} is not a flag type", l.ty.name()),
                        )
                        .with_help("use `!=`"),
                    );
                    return None;
                }
                Op::NotBitmask
            }
        };
        if matches!(op, Op::Lt | Op::Gt | Op::Lte | Op::Gte) {
            let bad = match &r {
                Rhs::Value(_) => matches!(l.ty, Type::Ifname | Type::String { .. }),
                _ => true,
            };
            if bad {
                self.diags.push(
                    Diagnostic::error(
                        "E0209",
                        span,
                        "`<`, `>`, `<=` and `>=` need a single value on the right",
                    )
                    .with_help("use a range `a-b` or a set `{ ... }` with `==`/`!=`"),
                );
                return None;
            }
        }
        Some(Match {
            left: l,
            op,
            right: r,
            implicit: false,
            span,
        })
    }

    pub(crate) fn verdict(&mut self, v: &ast::Verdict, span: Span) -> Option<Verdict> {
        let kind = match v {
            ast::Verdict::Accept => VerdictKind::Accept,
            ast::Verdict::Drop => VerdictKind::Drop,
            ast::Verdict::Continue => VerdictKind::Continue,
            ast::Verdict::Return => VerdictKind::Return,
            ast::Verdict::Jump(id) | ast::Verdict::Goto(id) => {
                let Some(ci) = self.find_chain(self.table, &id.name) else {
                    self.undefined_chain(self.table, id, self.file);
                    return None;
                };
                let target = &self.chains[ci];
                if target.hook.is_some() {
                    let word = if matches!(v, ast::Verdict::Jump(_)) {
                        "jump"
                    } else {
                        "goto"
                    };
                    self.diags.push(
                        Diagnostic::error(
                            "E0105",
                            self.sp(id.span),
                            format!("cannot {word} to base chain `{}`", id.name),
                        )
                        .with_label(target.span, "this is a base chain (it has a hook)")
                        .with_help(
                            "move the shared rules into a user chain and jump there from both",
                        ),
                    );
                    return None;
                }
                let c = ChainId(ci as u32);
                if matches!(v, ast::Verdict::Jump(_)) {
                    VerdictKind::Jump(c)
                } else {
                    VerdictKind::Goto(c)
                }
            }
        };
        Some(Verdict { kind, span })
    }

    fn queue(
        &mut self,
        num: Option<&ast::Expr>,
        flags: &[ast::Ident],
        span: Span,
    ) -> Option<Verdict> {
        let mut bypass = false;
        let mut fanout = false;
        for f in flags {
            match f.name.as_str() {
                "bypass" => bypass = true,
                "fanout" => fanout = true,
                o => {
                    self.diags.push(Diagnostic::error(
                        "E0211",
                        self.sp(f.span),
                        format!("unknown queue flag `{o}`"),
                    ));
                    return None;
                }
            }
        }
        let (n, hi) = match num {
            None => (0u16, None),
            Some(e) => match self.key_part(e, Type::Integer { bits: 16 })? {
                crate::hir::KeyPart::Value(v) => (v.as_u128() as u16, None),
                crate::hir::KeyPart::Range { lo, hi } => {
                    (lo.as_u128() as u16, Some(hi.as_u128() as u16))
                }
                crate::hir::KeyPart::Prefix { .. } => {
                    self.diags.push(Diagnostic::error(
                        "E0211",
                        span,
                        "queue number cannot be a prefix",
                    ));
                    return None;
                }
            },
        };
        Some(Verdict {
            kind: VerdictKind::Queue {
                num: n,
                num_hi: hi,
                bypass,
                fanout,
            },
            span,
        })
    }

    fn reject(
        &mut self,
        with: Option<&ast::RejectWith>,
        span: Span,
        st: &mut DepState,
        items: &mut Vec<Item>,
    ) -> Option<RejectKind> {
        match with {
            None => Some(RejectKind::Default),
            Some(ast::RejectWith::TcpReset) => {
                if !self.apply_needs(st, &[(Need::L4(6), span)], items) {
                    return None;
                }
                Some(RejectKind::TcpReset)
            }
            Some(ast::RejectWith::Icmp { proto, code }) => {
                let (ty, need) = match proto.as_str() {
                    "icmp" => (Type::IcmpCode, Some(NFPROTO_IPV4)),
                    "icmpv6" => (Type::Icmpv6Code, Some(NFPROTO_IPV6)),
                    _ => (Type::IcmpxCode, None),
                };
                let wrong = match (proto.as_str(), self.family) {
                    ("icmp", Family::Ip6) => Some("ip6"),
                    ("icmpv6", Family::Ip) => Some("ip"),
                    _ => None,
                };
                if let Some(f) = wrong {
                    self.diags.push(
                        Diagnostic::error(
                            "E0203",
                            span,
                            format!("`reject with {proto}` in an {f} table"),
                        )
                        .with_help(if f == "ip" {
                            "use `reject with icmp`"
                        } else {
                            "use `reject with icmpv6`"
                        }),
                    );
                    return None;
                }
                if let Some(n) = need
                    && !self.apply_needs(st, &[(Need::Nfproto { v: n, soft: false }, span)], items)
                {
                    return None;
                }
                let v = self.value(code, ty)?;
                let c = v.bytes.first().copied().unwrap_or(0);
                Some(match proto.as_str() {
                    "icmp" => RejectKind::Icmp(c),
                    "icmpv6" => RejectKind::Icmpv6(c),
                    _ => RejectKind::Icmpx(c),
                })
            }
        }
    }

    pub(crate) fn operand(&mut self, e: &ast::Expr, ty: Type) -> Option<Operand> {
        fn leftmost_is_selector(e: &ast::Expr) -> bool {
            match &e.kind {
                A::Payload(_)
                | A::Meta { .. }
                | A::Ct { .. }
                | A::RawPayload { .. }
                | A::Numgen { .. }
                | A::Fib { .. } => true,
                A::Binary { left, .. } => leftmost_is_selector(left),
                A::Paren(x) => leftmost_is_selector(x),
                _ => false,
            }
        }
        self.with_var(e, &mut |cx, e| match &e.kind {
            A::Map { key, map } => {
                let k = cx.selector(key)?;
                cx.ct_addr_needs_family(&k)?;
                let m = cx.lookup_map(map, &k, &[ty])?;
                Some(Operand::Map {
                    key: Box::new(k),
                    map: m,
                })
            }
            _ if leftmost_is_selector(e) => {
                let saved = cx.widen;
                cx.widen = Some(ty.bits());
                let mut r = cx.selector(e);
                cx.widen = saved;
                // A number takes the type of what it is assigned to, as nft's integer-typed
                // `numgen` does (converted to network order for an address).
                if let Some(x) = &mut r
                    && matches!(x.kind, ExprKind::Numgen { .. })
                    && ty.bits() == 32
                {
                    x.ty = ty;
                }
                r.map(Operand::Expr)
            }
            _ => cx.value(e, ty).map(Operand::Value),
        })
    }

    /// Dependencies of the selectors a statement value reads (`meta mark set ip dscp` in an
    /// inet table needs `meta nfproto ipv4`, as in nft's bytecode).
    fn operand_needs(
        &mut self,
        v: &Operand,
        st: &mut DepState,
        items: &mut Vec<Item>,
    ) -> Option<()> {
        let mut ns = Vec::new();
        match v {
            Operand::Expr(e) => needs(e, self.family, &mut ns),
            Operand::Map { key, .. } => needs(key, self.family, &mut ns),
            Operand::Value(_) => {}
        }
        self.apply_needs(st, &ns, items).then_some(())
    }

    /// The map of a `KEY map { ... }` / `KEY map @m` lookup, with data types `data`.
    pub(crate) fn lookup_map(
        &mut self,
        map: &ast::Expr,
        key: &Expr,
        data: &[Type],
    ) -> Option<VmapRef> {
        let parts = super::types::key_types(key);
        self.with_var(map, &mut |cx, e| match &e.kind {
            A::Set(elems) => cx
                .anon_set(elems, &parts, Some(data), cx.sp(e.span))
                .map(VmapRef::Anon),
            A::SetRef(id) => {
                let sid = cx.lookup_set(id, &parts, true)?;
                if let Some(k) = cx.sets[sid.0 as usize].obj {
                    let d = Diagnostic::error(
                        "E0106",
                        cx.sp(id.span),
                        format!(
                            "`@{}` is a map of {} objects, not of values",
                            id.name,
                            k.name()
                        ),
                    )
                    .with_label(cx.sets[sid.0 as usize].span, "declared here");
                    cx.diags.push(d);
                    return None;
                }
                Some(VmapRef::Named(sid))
            }
            _ => {
                cx.diags.push(Diagnostic::error(
                    "E0204",
                    cx.sp(e.span),
                    "expected `{ key : value, ... }` or `@map`",
                ));
                None
            }
        })
    }

    /// E0108: a rule names an object (`kind`) its table does not declare; `decl` is the
    /// declaration to suggest.
    fn undefined_object(&mut self, kind: &str, name: &str, at: Span, decl: &str) {
        let table = self
            .tables
            .get(self.table)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        self.diags.push(
            Diagnostic::error(
                "E0108",
                at,
                format!("no {kind} object `{name}` in table `{table}`"),
            )
            .with_help(format!("declare it in the table: `{decl}`")),
        );
    }

    /// `ct helper set "NAME"` (nft's objref): NAME must be a `ct helper` object of the rule's
    /// table. The operand becomes the object's helper type, NUL-padded to 16 bytes — what the
    /// bytecode hands to the runtime and iptables' `CT --helper` names.
    fn ct_helper_ref(&mut self, v: Operand, span: Span) -> Option<Operand> {
        let Operand::Value(val) = v else {
            self.diags.push(
                Diagnostic::error(
                    "E0211",
                    span,
                    "`ct helper set` takes the name of a ct helper object",
                )
                .with_help(
                    "write `ct helper set \"NAME\"` with a `ct helper NAME { ... }` in the table",
                ),
            );
            return None;
        };
        let end = val
            .bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(val.bytes.len());
        let name = String::from_utf8_lossy(val.bytes.get(..end).unwrap_or(&[])).into_owned();
        let Some(h) = self
            .tables
            .get(self.table)
            .and_then(|t| t.ct_helpers.iter().find(|h| h.name == name))
        else {
            let decl = format!("ct helper {name} {{ type \"ftp\" protocol tcp; }}");
            self.undefined_object("ct helper", &name, val.span, &decl);
            return None;
        };
        let mut bytes = h.helper.as_bytes().to_vec();
        bytes.resize(16, 0);
        Some(Operand::Value(Value {
            bytes: bytes.into(),
            text: Some(format!("\"{}\"", h.helper).into()),
            ..val
        }))
    }

    /// `counter name KEY map { ... }` / `ct helper set KEY map { ... }` (nft's objref map): the
    /// key's selector (with its protocol dependencies) and the map, whose elements must name
    /// objects of `kind` in the rule's table (E0108 otherwise, as nft's ENOENT), with keys of
    /// the key's type and no key twice (E0205, nft's EEXIST).
    fn objref_map(
        &mut self,
        map: &ast::Expr,
        span: Span,
        kind: ObjKind,
        st: &mut DepState,
        items: &mut Vec<Item>,
    ) -> Option<StmtKind> {
        let A::Map { key, map } = &map.kind else {
            self.diags.push(Diagnostic::error(
                "E0204",
                span,
                format!(
                    "expected `KEY map {{ key : \"NAME\", ... }}` naming {} objects",
                    kind.name()
                ),
            ));
            return None;
        };
        let k = self.selector(key)?;
        self.ct_addr_needs_family(&k)?;
        let mut ns = Vec::new();
        needs(&k, self.family, &mut ns);
        if !self.apply_needs(st, &ns, items) {
            return None;
        }
        let parts = super::types::key_types(&k);
        let m = self.with_var(map, &mut |cx, e| match &e.kind {
            A::Set(elems) => {
                let out = cx.flatten_set(elems, &mut |cx, el| cx.objref_elems(el, &parts, kind))?;
                let before = cx.diags.len();
                cx.check_overlaps((&out).into(), &format!("this {} map", kind.name()));
                cx.one_catchall((&out).into());
                if cx.diags.len() > before {
                    return None;
                }
                let interval = out
                    .iter()
                    .any(|x| x.key.iter().any(|k| !matches!(k, KeyPart::Value(_))));
                Some(VmapRef::Anon(AnonSet {
                    elements: out,
                    interval,
                    span: cx.sp(e.span),
                }))
            }
            A::SetRef(id) => {
                let sid = cx.lookup_set(id, &parts, true)?;
                let decl = &cx.sets[sid.0 as usize];
                if decl.obj != Some(kind) {
                    let d = Diagnostic::error(
                        "E0106",
                        cx.sp(id.span),
                        format!("`@{}` is not a map of {} objects", id.name, kind.name()),
                    )
                    .with_label(decl.span, "declared here")
                    .with_help(format!("declare it with `type KEY : {}`", kind.name()));
                    cx.diags.push(d);
                    return None;
                }
                Some(VmapRef::Named(sid))
            }
            _ => {
                cx.diags.push(Diagnostic::error(
                    "E0204",
                    cx.sp(e.span),
                    "expected `{ key : \"NAME\", ... }` or `@map` after map",
                ));
                None
            }
        })?;
        Some(StmtKind::ObjrefMap {
            kind,
            key: Box::new(k),
            map: m,
        })
    }

    /// `add|update|delete @set { KEY [timeout T] [: DATA] }` (nft's `stmt_evaluate_set` and
    /// `stmt_evaluate_map`, and the checks of the kernel's `nft_dynset_init`): the set exists
    /// (E0104), a set's elements have no data (E0106), a map's need data of its (single) data
    /// type and it is no verdict map (E0212, E0210 for concatenated data), the
    /// key is a selector of the set's key type (E0206, E0205), the set takes updates from the
    /// packet path (not `constant` nor `interval`), a timeout needs `flags timeout` and so does
    /// `update` (E0212); per-element statements are not modelled (E0210). Like nft, the set
    /// becomes `dynamic` (NFT_SET_EVAL).
    fn set_update(
        &mut self,
        u: &ast::SetUpdate,
        st: &mut DepState,
        items: &mut Vec<Item>,
    ) -> Option<StmtKind> {
        let Some(si) = self.find_set(self.table, &u.set.name) else {
            self.undefined_set(self.table, &u.set, self.file);
            return None;
        };
        let set_span = self.sp(u.set.span);
        let decl = self.sets[si].span;
        let what = format!("`{} @{}`", u.op.as_str(), u.set.name);
        if self.sets[si].obj.is_some() {
            self.diags.push(
                Diagnostic::error(
                    "E0106",
                    set_span,
                    format!(
                        "`@{}` is a map of objects: the packet path cannot add to it",
                        u.set.name
                    ),
                )
                .with_label(decl, "declared here"),
            );
            return None;
        }
        let data_ty = match (self.sets[si].data.clone(), &u.data) {
            (None, None) => None,
            (None, Some(d)) => {
                self.diags.push(
                    Diagnostic::error(
                        "E0106",
                        self.sp(d.span),
                        format!("`@{}` is a set: its elements have no data", u.set.name),
                    )
                    .with_label(decl, "declared here"),
                );
                return None;
            }
            (Some(dt), _) if dt.as_slice() == [Type::Verdict] => {
                self.diags.push(
                    Diagnostic::error(
                        "E0212",
                        set_span,
                        format!("{what}: a verdict map takes no elements from the packet path"),
                    )
                    .with_label(decl, "declared here"),
                );
                return None;
            }
            (Some(dt), _) if dt.len() != 1 => {
                self.diags.push(
                    Diagnostic::error(
                        "E0210",
                        set_span,
                        format!(
                            "{what}: concatenated map data from the packet path is not supported by nfc"
                        ),
                    )
                    .with_label(decl, "declared here"),
                );
                return None;
            }
            (Some(_), None) => {
                self.diags.push(
                    Diagnostic::error(
                        "E0212",
                        self.sp(u.braces),
                        format!("{what}: `@{}` is a map: its elements need data", u.set.name),
                    )
                    .with_label(decl, "declared here")
                    .with_help("write `{ KEY : DATA }`"),
                );
                return None;
            }
            (Some(dt), Some(_)) => dt.first().copied(),
        };
        if let Some((text, at)) = &u.stmts {
            self.diags.push(
                Diagnostic::error(
                    "E0210",
                    self.sp(*at),
                    format!(
                        "`{text}`: statements on the elements of a set are not supported by nfc"
                    ),
                )
                .with_note("a set statement's braces hold the key and an optional `timeout`"),
            );
            return None;
        }
        let k = self.selector(&u.key)?;
        self.ct_addr_needs_family(&k)?;
        let parts = super::types::key_types(&k);
        let s = &self.sets[si];
        if s.typed
            && (s.key.len() != parts.len()
                || s.key
                    .iter()
                    .zip(&parts)
                    .any(|(a, b)| !super::types::same_type(*a, *b)))
        {
            let have: Vec<&str> = s.key.iter().map(|t| t.name()).collect();
            let want: Vec<&str> = parts.iter().map(|t| t.name()).collect();
            self.diags.push(
                Diagnostic::error(
                    "E0205",
                    self.sp(u.key.span),
                    format!(
                        "`@{}` holds {} but this key is {}",
                        u.set.name,
                        have.join(" . "),
                        want.join(" . ")
                    ),
                )
                .with_label(decl, "declared here"),
            );
            return None;
        }
        let flags = &s.flags;
        let refuse = |why: String, help: &str| {
            Diagnostic::error("E0212", set_span, format!("{what}: {why}"))
                .with_label(decl, "declared here")
                .with_help(help.to_string())
        };
        let mut errs = Vec::new();
        if flags.constant {
            errs.push(refuse(
                format!("`@{}` is `constant`", u.set.name),
                "remove `flags constant` from the set",
            ));
        }
        if flags.interval {
            errs.push(refuse(
                format!(
                    "`@{}` has `flags interval`, and interval sets take no elements from the packet path",
                    u.set.name
                ),
                "use a set without `flags interval`",
            ));
        }
        if let Some(t) = &u.timeout
            && !flags.timeout
        {
            errs.push(
                Diagnostic::error(
                    "E0212",
                    self.sp(t.span),
                    format!("{what}: an element timeout needs a set with `flags timeout`"),
                )
                .with_label(decl, "declared here")
                .with_help("add `flags timeout;` (or a default `timeout 1h;`) to the set"),
            );
        } else if u.op == ast::SetOp::Update && !flags.timeout {
            errs.push(refuse(
                format!(
                    "`update` restarts an element's timeout, and `@{}` has no `flags timeout`",
                    u.set.name
                ),
                "add `flags timeout;` (or a default `timeout 1h;`) to the set, or use `add`",
            ));
        }
        if !errs.is_empty() {
            self.diags.extend(errs);
            return None;
        }
        let mut ns = Vec::new();
        needs(&k, self.family, &mut ns);
        if !self.apply_needs(st, &ns, items) {
            return None;
        }
        let data = match (data_ty, &u.data) {
            (Some(ty), Some(d)) => {
                let v = self.operand(d, ty)?;
                self.operand_needs(&v, st, items)?;
                Some(v)
            }
            _ => None,
        };
        // stmt_evaluate_set: "Make sure EVAL flag is set on set definition".
        self.sets[si].flags.dynamic = true;
        Some(StmtKind::SetUpdate {
            op: u.op,
            set: SetId(si as u32),
            key: Box::new(k),
            data,
            timeout: u.timeout.as_ref().map(|t| t.ms),
        })
    }

    /// At most one catch-all (`* : ...`) element (E0205, nft's EEXIST).
    pub(crate) fn one_catchall(&mut self, elements: ElementsRef<'_>) {
        if let Some(second) = elements.iter().filter(|e| e.key.is_empty()).nth(1) {
            self.diags.push(
                Diagnostic::error("E0205", second.span, "a second catch-all element `*`")
                    .with_help("a map has at most one `*` element"),
            );
        }
    }

    /// The elements of an object map literal (nested sets flattened): `KEY : "NAME"`, or the
    /// catch-all `* : "NAME"` (an element without key).
    pub(crate) fn objref_elems(
        &mut self,
        e: &ast::Expr,
        key: &[Type],
        kind: ObjKind,
    ) -> Option<Vec<Element>> {
        self.with_var(e, &mut |cx, e| match &e.kind {
            A::Set(inner) => cx.flatten_set(inner, &mut |cx, i| cx.objref_elems(i, key, kind)),
            A::Elem { value, .. } => cx.objref_elems(value, key, kind),
            A::MapElem { key: k, value } => {
                let mut el = if matches!(&k.kind, A::Symbol(s) if s == "*") {
                    // The catch-all element (NFT_SET_ELEM_CATCHALL): no key.
                    Element {
                        key: Vec::new(),
                        data: None,
                        span: cx.sp(k.span),
                    }
                } else {
                    cx.element(k, key, None)?
                };
                let target = cx.objref_target(value, kind)?;
                el.data = Some(Box::new(MapData::Object(target)));
                el.span = cx.sp(e.span);
                Some(vec![el])
            }
            _ => {
                cx.diags.push(
                    Diagnostic::error(
                        "E0204",
                        cx.sp(e.span),
                        format!("expected `key : \"NAME\"` naming a {} object", kind.name()),
                    )
                    .with_primary_label("no object name"),
                );
                None
            }
        })
    }

    /// The object an object-map element names (`"NAME"` or `NAME`): a `kind` object of the
    /// rule's table (E0108 otherwise).
    pub(crate) fn objref_target(&mut self, v: &ast::Expr, kind: ObjKind) -> Option<ObjTarget> {
        self.with_var(v, &mut |cx, v| {
            let name = match &v.kind {
                A::String(s) | A::Symbol(s) => s.clone(),
                _ => {
                    cx.diags.push(Diagnostic::error(
                        "E0204",
                        cx.sp(v.span),
                        format!("expected the name of a {} object", kind.name()),
                    ));
                    return None;
                }
            };
            let at = cx.sp(v.span);
            match kind {
                ObjKind::Counter => match cx.find_counter(cx.table, &name) {
                    Some(i) => Some(ObjTarget::Counter(i as u32)),
                    None => {
                        let decl = format!("counter {name} {{ }}");
                        cx.undefined_object("counter", &name, at, &decl);
                        None
                    }
                },
                ObjKind::CtHelper => {
                    let found = cx
                        .tables
                        .get(cx.table)
                        .and_then(|t| t.ct_helpers.iter().find(|h| h.name == name))
                        .map(|h| h.helper.clone());
                    match found {
                        Some(helper) => Some(ObjTarget::CtHelper { name, helper }),
                        None => {
                            let decl = format!("ct helper {name} {{ type \"ftp\" protocol tcp; }}");
                            cx.undefined_object("ct helper", &name, at, &decl);
                            None
                        }
                    }
                }
            }
        })
    }

    fn stmt(
        &mut self,
        s: &ast::StmtKind,
        span: Span,
        st: &mut DepState,
        items: &mut Vec<Item>,
    ) -> Option<Stmt> {
        let kind = match s {
            ast::StmtKind::Counter {
                packets,
                bytes,
                name,
            } => {
                if let Some(n) = name {
                    let Some(obj) = self.find_counter(self.table, &n.name) else {
                        let decl = format!("counter {} {{ }}", n.name);
                        self.undefined_object("counter", &n.name, self.sp(n.span), &decl);
                        return None;
                    };
                    return Some(Stmt {
                        kind: StmtKind::NamedCounter { obj: obj as u32 },
                        span,
                    });
                }
                StmtKind::Counter {
                    packets: packets.unwrap_or(0),
                    bytes: bytes.unwrap_or(0),
                }
            }
            ast::StmtKind::CounterMap { map } => {
                self.objref_map(map, span, ObjKind::Counter, st, items)?
            }
            ast::StmtKind::Log(l) => {
                if let Some(lv) = &l.level {
                    let levels: Vec<&str> = nfr_proto::catalog::LOG_LEVEL
                        .iter()
                        .map(|&(n, _)| n)
                        .collect();
                    if !levels.contains(&lv.name.as_str()) {
                        let mut d = Diagnostic::error(
                            "E0211",
                            self.sp(lv.span),
                            format!("unknown log level `{}`", lv.name),
                        )
                        .with_note(format!("levels: {}", levels.join(", ")));
                        if let Some(m) = super::resolve::did_you_mean(&lv.name, levels) {
                            d = d.with_help(format!("did you mean `{m}`?"));
                        }
                        self.diags.push(d);
                        return None;
                    }
                }
                let prefix = match &l.prefix {
                    Some(p) => Some(self.log_prefix(p)?),
                    None => None,
                };
                if let (Some(p), Some(text)) = (&l.prefix, &prefix)
                    && text.len() > 127
                {
                    self.diags.push(Diagnostic::error(
                        "E0211",
                        self.sp(p.span),
                        "log prefix longer than 127 bytes",
                    ));
                    return None;
                }
                let group = match l.group {
                    None => None,
                    Some(g) => match u16::try_from(g) {
                        Ok(g) => Some(g),
                        Err(_) => {
                            self.diags.push(Diagnostic::error(
                                "E0200",
                                span,
                                format!("log group {g} exceeds 65535"),
                            ));
                            return None;
                        }
                    },
                };
                StmtKind::Log {
                    prefix,
                    level: l.level.as_ref().map(|p| p.name.clone()),
                    group,
                }
            }
            ast::StmtKind::Limit(l) => {
                let unit = match l.per.as_str() {
                    "second" => RateUnit::Second,
                    "minute" => RateUnit::Minute,
                    "hour" => RateUnit::Hour,
                    "day" => RateUnit::Day,
                    "week" => RateUnit::Week,
                    o => {
                        self.diags.push(Diagnostic::error(
                            "E0211",
                            span,
                            format!("unknown rate unit `{o}`"),
                        ));
                        return None;
                    }
                };
                let mult: u64 = match l.rate_unit.as_deref() {
                    None => 1,
                    Some("bytes") => 1,
                    Some("kbytes") => 1024,
                    Some("mbytes") => 1024 * 1024,
                    Some(o) => {
                        self.diags.push(Diagnostic::error(
                            "E0211",
                            span,
                            format!("unknown rate unit `{o}`"),
                        ));
                        return None;
                    }
                };
                if l.rate == 0 {
                    self.diags.push(Diagnostic::error(
                        "E0200",
                        span,
                        "limit rate must be greater than 0",
                    ));
                    return None;
                }
                let burst =
                    u32::try_from(l.burst.unwrap_or(if l.rate_unit.is_some() { 0 } else { 5 }))
                        .ok();
                let Some(burst) = burst else {
                    self.diags
                        .push(Diagnostic::error("E0200", span, "burst out of range"));
                    return None;
                };
                // nft_limit_init: rate + burst, and for byte limits the unit in ns times that, must fit
                // in 64 bits; otherwise the kernel refuses the rule with EOVERFLOW.
                let nsecs = unit.seconds() * 1_000_000_000;
                let fits = l
                    .rate
                    .checked_mul(mult)
                    .and_then(|r| r.checked_add(u64::from(burst)))
                    .and_then(|r| {
                        if l.rate_unit.is_some() {
                            nsecs.checked_mul(r)
                        } else {
                            Some(r)
                        }
                    });
                if fits.is_none() {
                    self.diags.push(
                        Diagnostic::error("E0200", span, "limit rate too large")
                            .with_primary_label("rate and burst overflow 64 bits")
                            .with_note(
                                "the kernel refuses it: Value too large for defined data type (EOVERFLOW)",
                            ),
                    );
                    return None;
                }
                StmtKind::Limit {
                    rate: l.rate.saturating_mul(mult),
                    unit,
                    over: l.over,
                    burst,
                    bytes: l.rate_unit.is_some(),
                }
            }
            ast::StmtKind::Set { key, value } => {
                let k = self.selector(key)?;
                match &k.kind {
                    ExprKind::Meta { key: mk } => {
                        let v = self.operand(value, k.ty)?;
                        self.operand_needs(&v, st, items)?;
                        StmtKind::MetaSet { key: mk, value: v }
                    }
                    ExprKind::Ct { key: ck, .. } => {
                        if !matches!(
                            ck.name,
                            "mark"
                                | "helper"
                                | "zone"
                                | "label"
                                | "event"
                                | "secmark"
                                | "expiration"
                        ) {
                            self.diags.push(Diagnostic::error(
                                "E0211",
                                span,
                                format!("`ct {}` cannot be set", ck.name),
                            ));
                            return None;
                        }
                        if ck.name == "helper" && matches!(value.kind, A::Map { .. }) {
                            return Some(Stmt {
                                kind: self.objref_map(value, span, ObjKind::CtHelper, st, items)?,
                                span,
                            });
                        }
                        let mut v = self.operand(value, k.ty)?;
                        self.operand_needs(&v, st, items)?;
                        if ck.name == "helper" {
                            v = self.ct_helper_ref(v, span)?;
                        }
                        StmtKind::CtSet { key: ck, value: v }
                    }
                    ExprKind::Payload { .. } => {
                        let mut ns = Vec::new();
                        needs(&k, self.family, &mut ns);
                        if !self.apply_needs(st, &ns, items) {
                            return None;
                        }
                        let v = self.operand(value, k.ty)?;
                        self.operand_needs(&v, st, items)?;
                        StmtKind::PayloadSet { field: k, value: v }
                    }
                    _ => {
                        self.diags.push(Diagnostic::error(
                            "E0211",
                            span,
                            "this expression cannot be set",
                        ));
                        return None;
                    }
                }
            }
            ast::StmtKind::Notrack => StmtKind::Notrack,
            ast::StmtKind::Nat(n) => StmtKind::Nat(Box::new(self.nat(n, span, st, items)?)),
            ast::StmtKind::SetUpdate(u) => self.set_update(u, st, items)?,
            ast::StmtKind::Other { keyword, .. } => {
                self.diags.push(
                    Diagnostic::error("E0210", span, format!("`{keyword}` is not supported by nfc"))
                        .with_note("nfc supports counter, log, limit, meta/ct set, notrack, reject, queue, nat and verdicts"),
                );
                return None;
            }
            ast::StmtKind::Match { .. }
            | ast::StmtKind::Verdict(_)
            | ast::StmtKind::Vmap { .. }
            | ast::StmtKind::Queue { .. }
            | ast::StmtKind::Reject(_) => return None,
        };
        Some(Stmt { kind, span })
    }

    fn nat(
        &mut self,
        n: &ast::Nat,
        span: Span,
        st: &mut DepState,
        items: &mut Vec<Item>,
    ) -> Option<NatStmt> {
        let kind = match n.kind {
            ast::NatKind::Snat => NatKind::Snat,
            ast::NatKind::Dnat => NatKind::Dnat,
            ast::NatKind::Masquerade => NatKind::Masquerade,
            ast::NatKind::Redirect => NatKind::Redirect,
        };
        let family = match n.family {
            None => None,
            Some(f) => match super::resolve::family(Some(f)) {
                Ok(Family::Inet) | Err(_) => {
                    self.diags.push(Diagnostic::error(
                        "E0211",
                        span,
                        "nat family must be ip or ip6",
                    ));
                    return None;
                }
                Ok(f) => {
                    if self.family != Family::Inet && f != self.family {
                        self.diags.push(Diagnostic::error(
                            "E0203",
                            span,
                            format!(
                                "`{} {}` in an {} table",
                                n_kw(kind),
                                f.name(),
                                self.family.name()
                            ),
                        ));
                        return None;
                    }
                    Some(f)
                }
            },
        };
        // The address family: the table's, or in inet the one written or fixed by the rule.
        let fam = match (self.family, family) {
            (Family::Ip, _) => Some(Family::Ip),
            (Family::Ip6, _) => Some(Family::Ip6),
            (_, Some(f)) => {
                if let Some((have, at)) = st.nfproto {
                    let want = if f == Family::Ip {
                        NFPROTO_IPV4
                    } else {
                        NFPROTO_IPV6
                    };
                    if have != want {
                        self.diags.push(
                            Diagnostic::error(
                                "E0300",
                                span,
                                format!(
                                    "`{} {}` in a rule that only matches the other family",
                                    n_kw(kind),
                                    f.name()
                                ),
                            )
                            .with_label(at, "this fixes the family"),
                        );
                        return None;
                    }
                }
                Some(f)
            }
            (_, None) => st.nfproto.map(|(v, _)| {
                if v == NFPROTO_IPV6 {
                    Family::Ip6
                } else {
                    Family::Ip
                }
            }),
        };
        let mut out = NatStmt {
            kind,
            family,
            addr: None,
            addr_hi: None,
            port: None,
            port_hi: None,
            port_map: None,
            flags: vec![],
        };
        if let Some(a) = &n.addr {
            if matches!(kind, NatKind::Masquerade | NatKind::Redirect) {
                self.diags.push(Diagnostic::error(
                    "E0211",
                    self.sp(a.span),
                    format!("{} takes no address", n_kw(kind)),
                ));
                return None;
            }
            let Some(fam) = fam else {
                self.diags.push(
                    Diagnostic::error(
                        "E0211",
                        span,
                        format!("`{}` in an inet table needs the address family", n_kw(kind)),
                    )
                    .with_help(format!(
                        "write `{0} ip to ...` or `{0} ip6 to ...`",
                        n_kw(kind)
                    )),
                );
                return None;
            };
            let addr_ty = if fam == Family::Ip6 {
                Type::Ipv6Addr
            } else {
                Type::Ipv4Addr
            };
            let a_span = self.sp(a.span);
            let mut map_gives_port = false;
            let res = self.with_var(a, &mut |cx, e| match &e.kind {
                A::Map { key, map } => {
                    let k = cx.selector(key)?;
                    let mut ns = Vec::new();
                    needs(&k, cx.family, &mut ns);
                    if !cx.apply_needs(st, &ns, items) {
                        return None;
                    }
                    // `addr . port` data when the map's values are concatenations
                    let concat_data = match &map.kind {
                        A::Set(els) => els.iter().any(|el| {
                            matches!(&el.kind, A::MapElem { value, .. } if matches!(value.kind, A::Concat(_)))
                        }),
                        _ => false,
                    };
                    let data: Vec<Type> =
                        if concat_data { vec![addr_ty, Type::InetService] } else { vec![addr_ty] };
                    if concat_data && st.l4.is_none() && st.l4_set.is_none() {
                        cx.diags.push(
                            Diagnostic::error("E0211", cx.sp(e.span), "a nat port needs a transport protocol match first")
                                .with_help("match the protocol before, e.g. `meta l4proto tcp`"),
                        );
                        return None;
                    }
                    map_gives_port = concat_data;
                    let m = cx.lookup_map(map, &k, &data)?;
                    Some(Operand::Map { key: Box::new(k), map: m })
                }
                // `dnat to numgen inc mod 2 offset 167772161`: the number is the address.
                A::Numgen { .. } if addr_ty == Type::Ipv4Addr => cx.operand(e, addr_ty),
                _ => match cx.key_part(e, addr_ty)? {
                    crate::hir::KeyPart::Value(v) => Some(Operand::Value(v)),
                    crate::hir::KeyPart::Range { lo, hi } => {
                        cx.pending_hi = Some(*hi);
                        Some(Operand::Value(*lo))
                    }
                    crate::hir::KeyPart::Prefix { value, len } => {
                        let mut hi = value.clone();
                        let mut keep = len;
                        for b in hi.bytes.iter_mut() {
                            let k = keep.min(8);
                            *b |= if k >= 8 { 0 } else { 0xffu8 >> k };
                            keep -= k;
                        }
                        cx.pending_hi = Some(hi);
                        Some(Operand::Value(value))
                    }
                },
            });
            let op = res?;
            out.addr = Some(op);
            if map_gives_port && let Some(p) = &n.port {
                self.diags.push(
                    Diagnostic::error("E0211", self.sp(p.span), "port given twice")
                        .with_label(a_span, "this map already yields `address . port`"),
                );
                return None;
            }
            out.addr_hi = self.pending_hi.take();
        } else if matches!(kind, NatKind::Snat | NatKind::Dnat) && n.port.is_none() {
            self.diags.push(
                Diagnostic::error("E0211", span, format!("{} needs an address", n_kw(kind)))
                    .with_help(format!("write `{} to 192.0.2.1`", n_kw(kind))),
            );
            return None;
        }
        if let Some(p) = &n.port {
            let res = self.with_var(p, &mut |cx, e| match &e.kind {
                A::Map { key, map } => {
                    let k = cx.selector(key)?;
                    let mut ns = Vec::new();
                    needs(&k, cx.family, &mut ns);
                    if !cx.apply_needs(st, &ns, items) {
                        return None;
                    }
                    let m = cx.lookup_map(map, &k, &[Type::InetService])?;
                    Some((Some(Operand::Map { key: Box::new(k), map: m }), None, None))
                }
                _ => {
                    if st.l4.is_none() && st.l4_set.is_none() {
                        cx.diags.push(
                            Diagnostic::error("E0211", cx.sp(e.span), "a nat port needs a transport protocol match first")
                                .with_help("match the protocol before, e.g. `meta l4proto tcp` or `tcp dport 80`"),
                        );
                        return None;
                    }
                    match cx.key_part(e, Type::InetService)? {
                        crate::hir::KeyPart::Value(v) => Some((None, Some(v), None)),
                        crate::hir::KeyPart::Range { lo, hi } => Some((None, Some(*lo), Some(*hi))),
                        crate::hir::KeyPart::Prefix { .. } => {
                            cx.diags.push(Diagnostic::error("E0211", cx.sp(e.span), "a port cannot be a prefix"));
                            None
                        }
                    }
                }
            });
            let (map, lo, hi) = res?;
            if let Some(m) = map {
                out.port_map = Some(m);
            }
            out.port = lo;
            out.port_hi = hi;
        }
        for f in &n.flags {
            match f.name.as_str() {
                "random" | "fully-random" | "persistent" | "netmap" | "prefix" => {
                    out.flags.push(f.name.clone())
                }
                o => {
                    self.diags.push(Diagnostic::error(
                        "E0211",
                        self.sp(f.span),
                        format!("unknown nat flag `{o}`"),
                    ));
                    return None;
                }
            }
        }
        Some(out)
    }
}

fn n_kw(k: NatKind) -> &'static str {
    match k {
        NatKind::Snat => "snat",
        NatKind::Dnat => "dnat",
        NatKind::Masquerade => "masquerade",
        NatKind::Redirect => "redirect",
    }
}

/// Where a statement may run: (needs a nat chain, allowed hooks).
fn allowed(kind: &StmtKind) -> Option<(bool, &'static [Hook], &'static str)> {
    match kind {
        StmtKind::Nat(n) => Some(match n.kind {
            NatKind::Snat => (true, &[Hook::Postrouting, Hook::Input], "snat"),
            NatKind::Dnat => (true, &[Hook::Prerouting, Hook::Output], "dnat"),
            NatKind::Masquerade => (true, &[Hook::Postrouting], "masquerade"),
            NatKind::Redirect => (true, &[Hook::Prerouting, Hook::Output], "redirect"),
        }),
        StmtKind::Reject(_) => Some((false, &[Hook::Input, Hook::Forward, Hook::Output], "reject")),
        _ => None,
    }
}

/// Check statement placement for every chain against every base chain that reaches it.
pub fn placement(hir: &Hir) -> Vec<Diagnostic> {
    let g = super::loops::graph_from_hir(hir);
    let adj = g.adjacency();
    let mut diags = Vec::new();
    // one diagnostic per statement, however many base chains reach it
    let mut said: hashbrown::HashSet<(&'static str, Span)> = hashbrown::HashSet::new();
    for base in &hir.chains {
        let ChainKind::Base(b) = &base.kind else {
            continue;
        };
        // chains reachable from this base chain (including itself)
        let mut seen = vec![false; hir.chains.len()];
        let mut work = vec![base.id.0 as usize];
        if let Some(s) = seen.get_mut(base.id.0 as usize) {
            *s = true;
        }
        while let Some(x) = work.pop() {
            for e in adj.get(x).map_or(&[][..], Vec::as_slice) {
                if let Some(s) = seen.get_mut(e.to.0 as usize)
                    && !*s
                {
                    *s = true;
                    work.push(e.to.0 as usize);
                }
            }
        }
        for (ci, c) in hir.chains.iter().enumerate() {
            if !seen[ci] {
                continue;
            }
            for r in &c.rules {
                for s in r.stmts() {
                    if matches!(s.kind, StmtKind::Notrack)
                        && (!matches!(b.hook, Hook::Prerouting | Hook::Output)
                            || b.priority >= super::hooks::NF_IP_PRI_CONNTRACK)
                        && said.insert(("W0601", s.span))
                    {
                        diags.push(
                            Diagnostic::warning(
                                "W0601",
                                s.span,
                                "`notrack` has no effect here: conntrack has already seen the packet",
                            )
                            .with_label(
                                b.span,
                                format!(
                                    "base chain `{}` runs on {} at priority {}",
                                    base.name,
                                    b.hook.name(),
                                    b.priority
                                ),
                            )
                            .with_help(format!(
                                "use a chain on prerouting or output with `priority raw` ({})",
                                nfr_proto::hook::priority::RAW
                            )),
                        );
                    }
                    let Some((need_nat, hooks, name)) = allowed(&s.kind) else {
                        continue;
                    };
                    let bad_type = need_nat && b.ty != ChainType::Nat;
                    let bad_hook = !hooks.contains(&b.hook);
                    if !(bad_type || bad_hook) {
                        continue;
                    }
                    let hooks_s: Vec<&str> = hooks.iter().map(|h| h.name()).collect();
                    let mut d = Diagnostic::error(
                        "E0405",
                        s.span,
                        if bad_type {
                            format!("`{name}` is only valid in nat chains")
                        } else {
                            format!("`{name}` is not valid on the {} hook", b.hook.name())
                        },
                    )
                    .with_note(format!(
                        "`{name}` is valid {}on the {} hooks",
                        if need_nat { "in nat chains " } else { "" },
                        hooks_s.join(", ")
                    ));
                    if c.id == base.id {
                        d = d.with_label(
                            b.span,
                            format!(
                                "chain `{}` is type {} hook {}",
                                c.name,
                                b.ty.name(),
                                b.hook.name()
                            ),
                        );
                    } else {
                        d = d.with_label(
                            b.span,
                            format!(
                                "`{}` is reached from base chain `{}` (type {} hook {})",
                                c.name,
                                base.name,
                                b.ty.name(),
                                b.hook.name()
                            ),
                        );
                    }
                    if said.insert(("E0405", d.primary)) {
                        diags.push(d);
                    }
                }
            }
        }
    }
    diags
}
