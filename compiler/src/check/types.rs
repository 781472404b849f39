//! Selectors and values: Ast expressions → typed Hir expressions and byte values, with range
//! checks (ports ≤ 65535, prefix lengths, field widths), address family checks and symbol
//! lookup ("did you mean").

use nfr_grammar::ast::{self, ExprKind as A};
use nfr_grammar::catalog;

use super::Ctx;
use super::resolve::did_you_mean;
use crate::diag::{Diagnostic, Span};
use crate::hir::{
    AnonSet, BitOp, Element, ElementsRef, Expr, ExprKind, Family, KeyPart, MapData, PayloadBase,
    Rhs, Type, Value,
};

/// How deep `$var` substitution may go (defines referring to defines). A define can only name defines made
/// before it, so nesting is never recursion; this bounds the stack.
pub(crate) const MAX_VAR_DEPTH: u32 = 16;

/// How many `$var` substitutions (each value or set member reached through a define counts one) the whole
/// ruleset may make: `define a1 = { $a0, $a0 }` ... doubles at every level, so a few hundred bytes of defines
/// could otherwise ask for gigabytes.
pub(crate) const MAX_VAR_WORK: u64 = 1 << 20;

fn max_for_bits(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn be_bytes(v: u128, nbytes: u32) -> Vec<u8> {
    let all = v.to_be_bytes();
    let n = (nbytes as usize).min(16);
    all[16 - n..].to_vec()
}

/// An interface name: 16 bytes, NUL padded; a trailing `*` (nft's wildcard, `"eth*"`) keeps
/// only the prefix bytes, without padding, so the comparison covers just the prefix.
fn ifname_bytes(s: &str) -> Vec<u8> {
    if let Some(prefix) = s.strip_suffix('*')
        && !prefix.ends_with('\\')
    {
        return prefix.as_bytes().to_vec();
    }
    let mut b: Vec<u8> = s.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

impl Ctx {
    /// Counts `n` values reached through defines against `MAX_VAR_WORK`; false (reported once, at `at`) when the
    /// ruleset's budget is spent.
    pub(crate) fn var_charge(&mut self, n: u64, at: Span, def: Option<Span>) -> bool {
        self.var_work = self.var_work.saturating_add(n);
        if self.var_work <= MAX_VAR_WORK {
            return true;
        }
        if !self.var_abort {
            self.var_abort = true;
            let mut d = Diagnostic::error(
                "E0012",
                at,
                format!("define expansion too large: the ruleset's defines expand to more than {MAX_VAR_WORK} values"),
            )
            .with_primary_label("the limit is reached here")
            .with_note("defines that list other defines several times grow exponentially with the nesting");
            if let Some(def) = def {
                d = d.with_label(def, "definition");
            }
            if self.var_use != at {
                d = d.with_label(self.var_use, "expanded from this use");
            }
            self.diags.push(d);
        }
        false
    }

    /// Run `f` on the expression behind `$var` (with spans in the define's file), or on `e`.
    pub(crate) fn with_var<T>(
        &mut self,
        e: &ast::Expr,
        f: &mut dyn FnMut(&mut Ctx, &ast::Expr) -> Option<T>,
    ) -> Option<T> {
        match &e.kind {
            A::Var(id) => {
                let Some(def) = self.defines.get(&id.name, self.seq).cloned() else {
                    let cands = self.defines.names_at(self.seq);
                    let mut d = Diagnostic::error(
                        "E0010",
                        self.sp(id.span),
                        format!("undefined variable `${}`", id.name),
                    )
                    .with_primary_label("not defined before this use");
                    if let Some(later) = self.defines.later(&id.name, self.seq) {
                        d = d
                            .with_label(later.span, "defined only here, after its use")
                            .with_help("move the `define` above its first use");
                    } else if let Some(s) = did_you_mean(&id.name, cands.iter().map(String::as_str))
                    {
                        d = d.with_help(format!("did you mean `${s}`?"));
                    } else {
                        d = d.with_help(format!("define it first: `define {} = ...`", id.name));
                    }
                    self.diags.push(d);
                    return None;
                };
                // a failed expansion (too deep, too large) is reported once, where it failed: the rest of
                // this use is dropped without further diagnostics
                if self.var_abort {
                    return None;
                }
                if self.var_depth == 0 {
                    self.var_use = self.sp(id.span);
                }
                if self.var_depth >= MAX_VAR_DEPTH {
                    self.var_abort = true;
                    self.diags.push(
                        Diagnostic::error(
                            "E0012",
                            self.sp(id.span),
                            format!(
                                "`${}` nests defines deeper than {MAX_VAR_DEPTH} levels",
                                id.name
                            ),
                        )
                        .with_primary_label(format!("level {}", self.var_depth + 1))
                        .with_label(def.span, "definition")
                        .with_label(self.var_use, "expanded from this use"),
                    );
                    return None;
                }
                if !self.var_charge(1, self.sp(id.span), Some(def.span)) {
                    return None;
                }
                let (saved, saved_seq) = (self.file, self.seq);
                self.file = def.file;
                self.seq = def.seq;
                self.var_depth += 1;
                let r = self.with_var(&def.value, f);
                self.var_depth -= 1;
                self.file = saved;
                self.seq = saved_seq;
                if self.var_depth == 0 && self.var_abort {
                    // the next use starts afresh unless the whole ruleset's budget is spent
                    self.var_abort = self.var_work > MAX_VAR_WORK;
                }
                r
            }
            A::Paren(inner) => self.with_var(inner, f),
            _ => f(self, e),
        }
    }

    // -----------------------------------------------------------------------------------
    // Selectors

    /// Convert a left-hand side (selector, concatenation, `selector & mask`).
    pub(crate) fn selector(&mut self, e: &ast::Expr) -> Option<Expr> {
        self.with_var(e, &mut |cx, e| cx.selector_inner(e))
    }

    fn selector_inner(&mut self, e: &ast::Expr) -> Option<Expr> {
        let span = self.sp(e.span);
        match &e.kind {
            A::Payload(f) => {
                if let Some(d) = self.family_of_proto(f.proto, span) {
                    self.diags.push(d);
                    return None;
                }
                if matches!(f.proto, "ether" | "vlan" | "arp") {
                    self.diags.push(
                        Diagnostic::error(
                            "E0206",
                            span,
                            format!(
                                "`{} {}`: link-layer and arp headers are not supported by nfc",
                                f.proto, f.field
                            ),
                        )
                        .with_note("nfc matches network and transport headers, meta and ct keys"),
                    );
                    return None;
                }
                Some(Expr {
                    kind: ExprKind::Payload {
                        field: Some(f),
                        base: f.base,
                        offset_bits: f.offset_bits,
                        len_bits: f.len_bits,
                    },
                    ty: f.dtype,
                    span,
                })
            }
            A::RawPayload { base, offset, len } => {
                let b = match base {
                    ast::RawBase::Ll => PayloadBase::Link,
                    ast::RawBase::Nh => PayloadBase::Network,
                    ast::RawBase::Th => PayloadBase::Transport,
                    ast::RawBase::Ih => {
                        self.diags.push(Diagnostic::error(
                            "E0206",
                            span,
                            "inner header payload (`@ih`) is not supported",
                        ));
                        return None;
                    }
                };
                if *len == 0 || *len > 128 {
                    self.diags.push(Diagnostic::error(
                        "E0200",
                        span,
                        format!("raw payload length {len} out of range 1-128 bits"),
                    ));
                    return None;
                }
                if offset.checked_add(*len).is_none() {
                    self.diags.push(
                        Diagnostic::error(
                            "E0200",
                            span,
                            format!("raw payload offset {offset} out of range"),
                        )
                        .with_primary_label(format!(
                            "offset {offset} + length {len} bits does not fit in 32 bits"
                        )),
                    );
                    return None;
                }
                let bits = u16::try_from(*len).unwrap_or(128);
                Some(Expr {
                    kind: ExprKind::Payload {
                        field: None,
                        base: b,
                        offset_bits: *offset,
                        len_bits: *len,
                    },
                    ty: Type::Integer { bits },
                    span,
                })
            }
            A::Fib { flags, result } => {
                let daddr = match (flags.as_slice(), *result) {
                    (["saddr"], "type") => false,
                    (["daddr"], "type") => true,
                    _ => {
                        self.diags.push(
                            Diagnostic::error(
                                "E0206",
                                span,
                                "this `fib` lookup is not supported by nfc",
                            )
                            .with_note(
                                "nfc answers `fib saddr type` and `fib daddr type` from the host's \
                                 addresses (`nfc run pcap --local`, `--iface`), without routes",
                            ),
                        );
                        return None;
                    }
                };
                Some(Expr {
                    kind: ExprKind::FibType { daddr },
                    ty: Type::FibAddrtype,
                    span,
                })
            }
            A::Numgen {
                random,
                modulus,
                offset,
            } => {
                // nft_ng_inc_init / nft_ng_random_init: ERANGE, EOVERFLOW.
                if *modulus == 0 || offset.checked_add(modulus - 1).is_none() {
                    self.diags.push(Diagnostic::error(
                        "E0206",
                        span,
                        "numgen needs a modulus above 0 whose values plus the offset fit in 32 bits",
                    ));
                    return None;
                }
                Some(Expr {
                    kind: ExprKind::Numgen {
                        random: *random,
                        modulus: *modulus,
                        offset: *offset,
                    },
                    ty: Type::Integer { bits: 32 },
                    span,
                })
            }
            A::Meta { key, .. } => {
                if matches!(key.name, "ibrname" | "obrname" | "ibrpvid" | "ibrvproto") {
                    self.diags.push(Diagnostic::error(
                        "E0206",
                        span,
                        format!("`meta {}` exists only in bridge tables", key.name),
                    ));
                    return None;
                }
                Some(Expr {
                    kind: ExprKind::Meta { key },
                    ty: key.dtype,
                    span,
                })
            }
            A::Ct { dir, family, key } => {
                match (key.dir, dir) {
                    (catalog::CtDirUse::Required, None) => {
                        self.diags.push(
                            Diagnostic::error(
                                "E0206",
                                span,
                                format!("`ct {}` needs a direction", key.name),
                            )
                            .with_help(format!(
                                "write `ct original {0}` or `ct reply {0}`",
                                key.name
                            )),
                        );
                        return None;
                    }
                    (catalog::CtDirUse::No, Some(_)) => {
                        self.diags.push(Diagnostic::error(
                            "E0206",
                            span,
                            format!("`ct {}` does not take a direction", key.name),
                        ));
                        return None;
                    }
                    _ => {}
                }
                let fam = match family {
                    None => None,
                    Some(f) => match super::resolve::family(Some(*f)) {
                        Ok(f) => Some(f),
                        Err(_) => {
                            self.diags.push(Diagnostic::error(
                                "E0206",
                                span,
                                "ct address family must be ip or ip6",
                            ));
                            return None;
                        }
                    },
                };
                let mut ty = key.dtype;
                if matches!(key.name, "saddr" | "daddr") {
                    let f = fam.unwrap_or(self.family);
                    if let (Some(ff), Family::Ip | Family::Ip6) = (fam, self.family)
                        && ff != self.family
                    {
                        self.diags.push(Diagnostic::error(
                            "E0203",
                            span,
                            format!(
                                "`ct {} {}` can never match in an {} table",
                                ff.name(),
                                key.name,
                                self.family.name()
                            ),
                        ));
                        return None;
                    }
                    if f == Family::Ip6 {
                        ty = Type::Ipv6Addr;
                    }
                }
                if crate::lower::bytecode::ct_key(key, fam, ty).is_none() {
                    // nft accepts them, but nfc's engines have no such load: refuse here rather than fail later.
                    self.diags.push(
                        Diagnostic::error(
                            "E0206",
                            span,
                            format!("`ct {}` is not supported by nfc", key.name),
                        )
                        .with_note(
                            "nfc's engines read the entry's state, status, mark, direction, tuple, \
                             zone, id, helper and expiration, not its accounting, label or secmark",
                        ),
                    );
                    return None;
                }
                Some(Expr {
                    kind: ExprKind::Ct {
                        key,
                        dir: *dir,
                        family: fam,
                    },
                    ty,
                    span,
                })
            }
            A::Concat(parts) => {
                let mut out = Vec::new();
                let mut bits = 0u32;
                for p in parts {
                    let x = self.selector(p)?;
                    self.ct_addr_needs_family(&x)?;
                    bits += x.ty.byte_len().div_ceil(4) * 32;
                    out.push(x);
                }
                // NFT_REG32_COUNT: 16 registers of 4 bytes
                if bits > 16 * 32 {
                    self.diags.push(Diagnostic::error(
                        "E0200",
                        span,
                        format!(
                            "concatenation of {} bytes exceeds the 64 bytes of nf_tables registers",
                            bits / 8
                        ),
                    ));
                    return None;
                }
                let bits = u16::try_from(bits).unwrap_or(u16::MAX);
                Some(Expr {
                    kind: ExprKind::Concat(out),
                    ty: Type::Integer { bits },
                    span,
                })
            }
            A::Binary { op, left, right } => {
                let l = self.selector(left)?;
                let bop = match op {
                    ast::BinOp::And => BitOp::And,
                    ast::BinOp::Or => BitOp::Or,
                    ast::BinOp::Xor => BitOp::Xor,
                    ast::BinOp::Shl => BitOp::Shl,
                    ast::BinOp::Shr => BitOp::Shr,
                };
                let shift = matches!(bop, BitOp::Shl | BitOp::Shr);
                if shift && self.widen.is_none() {
                    self.diags.push(Diagnostic::error(
                        "E0206",
                        span,
                        "shifts are only supported in statement values (`meta mark set ip dscp << 2`)",
                    ));
                    return None;
                }
                let symbolic = !l.ty.symbols().is_empty();
                // in statement values, numbers may be as wide as the target; symbols keep
                // the selector's type (`ct mark set ip dscp & af33`)
                let right_is_symbol = matches!(right.kind, A::Symbol(_));
                let vty = if shift {
                    Type::Integer { bits: 32 }
                } else if let (Some(target), false) = (self.widen, right_is_symbol) {
                    Type::Integer {
                        bits: u16::try_from(l.ty.bits().max(target)).unwrap_or(32),
                    }
                } else {
                    l.ty
                };
                let v = self.value(right, vty)?;
                let ty = if shift || (self.widen.is_some() && !(symbolic && right_is_symbol)) {
                    vty
                } else {
                    l.ty
                };
                Some(Expr {
                    kind: ExprKind::Bitwise {
                        expr: Box::new(l),
                        op: bop,
                        value: Box::new(v),
                    },
                    ty,
                    span,
                })
            }
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        "E0206",
                        span,
                        "expected a selector such as `tcp dport` or `meta mark`",
                    )
                    .with_primary_label("this is not something a packet can be matched on"),
                );
                None
            }
        }
    }

    /// An error when a header's family cannot occur in the current table.
    pub(crate) fn family_of_proto(&self, proto: &str, span: Span) -> Option<Diagnostic> {
        // nft accepts icmp/icmpv6 in any table (they are transport headers); only the network
        // header itself is checked against the table family.
        let (need, other) = match proto {
            "ip" => (Family::Ip, Family::Ip6),
            "ip6" => (Family::Ip6, Family::Ip),
            _ => return None,
        };
        if self.family == other {
            return Some(
                Diagnostic::error(
                    "E0203",
                    span,
                    format!(
                        "`{proto}` matches {} packets, which never reach an {} table",
                        need.name(),
                        other.name()
                    ),
                )
                .with_help("use an inet table to match both IPv4 and IPv6"),
            );
        }
        None
    }

    // -----------------------------------------------------------------------------------
    // Values

    /// Convert a constant of type `ty`.
    pub(crate) fn value(&mut self, e: &ast::Expr, ty: Type) -> Option<Value> {
        self.with_var(e, &mut |cx, e| cx.value_inner(e, ty))
    }

    fn mk(&self, ty: Type, bytes: Vec<u8>, span: Span) -> Value {
        Value {
            ty,
            bytes: bytes.into(),
            text: None,
            span,
        }
    }

    fn number(&mut self, v: u128, ty: Type, span: Span) -> Option<Value> {
        let bits = match ty {
            Type::Ifname | Type::String { .. } | Type::Verdict => {
                self.diags.push(Diagnostic::error(
                    "E0204",
                    span,
                    format!("a number is not a valid {} value", ty.name()),
                ));
                return None;
            }
            _ => ty.bits(),
        };
        if v > max_for_bits(bits) {
            let what = match ty {
                Type::InetService => "port".to_string(),
                _ => format!("{} ({} bits)", ty.name(), bits),
            };
            self.diags.push(
                Diagnostic::error(
                    "E0200",
                    span,
                    format!("value {v} is out of range for {what}"),
                )
                .with_primary_label(format!("valid range is 0-{}", max_for_bits(bits))),
            );
            return None;
        }
        Some(self.mk(ty, be_bytes(v, ty.byte_len()), span))
    }

    fn value_inner(&mut self, e: &ast::Expr, ty: Type) -> Option<Value> {
        let span = self.sp(e.span);
        match (&e.kind, ty) {
            (A::Number { value, .. }, Type::Time) => {
                Some(self.mk(ty, be_bytes(value.saturating_mul(1000), 8), span))
            }
            (A::Number { value, .. }, _) => self.number(*value, ty, span),
            (A::Ipv4(a), Type::Ipv4Addr) => Some(self.mk(ty, a.octets().to_vec(), span)),
            (A::Ipv6(a), Type::Ipv6Addr) => Some(self.mk(ty, a.octets().to_vec(), span)),
            (A::Ipv6(_), Type::Ipv4Addr) | (A::Ipv4(_), Type::Ipv6Addr) => {
                let (got, want) = if ty == Type::Ipv4Addr {
                    ("IPv6", "IPv4")
                } else {
                    ("IPv4", "IPv6")
                };
                self.diags.push(
                    Diagnostic::error(
                        "E0203",
                        span,
                        format!("{got} address where an {want} address is expected"),
                    )
                    .with_primary_label(format!("this is an {got} address")),
                );
                None
            }
            (A::Mac(m), Type::EtherAddr) => Some(self.mk(ty, m.to_vec(), span)),
            (A::Time(ms), Type::Time) => Some(self.mk(ty, be_bytes(u128::from(*ms), 8), span)),
            (A::String(s), Type::Ifname) | (A::Symbol(s), Type::Ifname) => {
                if s.len() > 15 {
                    self.diags.push(Diagnostic::error(
                        "E0200",
                        span,
                        format!("interface name `{s}` is longer than 15 bytes (IFNAMSIZ - 1)"),
                    ));
                    return None;
                }
                Some(self.mk(ty, ifname_bytes(s), span))
            }
            (A::String(s), Type::String { bits }) | (A::Symbol(s), Type::String { bits }) => {
                let n = usize::from(bits / 8);
                if s.len() >= n {
                    self.diags.push(Diagnostic::error(
                        "E0200",
                        span,
                        format!("string `{s}` is too long"),
                    ));
                    return None;
                }
                let mut b = s.as_bytes().to_vec();
                b.resize(n, 0);
                Some(self.mk(ty, b, span))
            }
            (A::Symbol(s), Type::Ifindex) | (A::String(s), Type::Ifindex) => {
                if s == "lo" {
                    return Some(self.mk(ty, be_bytes(1, 4), span));
                }
                self.diags.push(
                    Diagnostic::error(
                        "E0201",
                        span,
                        format!("the interface index of `{s}` is not known when compiling"),
                    )
                    .with_help(format!(
                        "match the name instead: `iifname \"{s}\"` / `oifname \"{s}\"`"
                    )),
                );
                None
            }
            (A::String(s), _) | (A::Symbol(s), _) => self.symbol(s, ty, span),
            (A::List(items), t) if t.is_bitmask() => {
                let mut acc = 0u128;
                for it in items {
                    let v = self.value(it, ty)?;
                    acc |= v.as_u128();
                }
                Some(self.mk(ty, be_bytes(acc, ty.byte_len()), span))
            }
            (A::Binary { op, left, right }, _) => {
                // constant folding: `syn | ack`, `0x0f << 2`, `1 << 20`
                let l = self.value(left, ty)?;
                let shift = matches!(op, ast::BinOp::Shl | ast::BinOp::Shr);
                let r = if shift {
                    self.value(right, Type::Integer { bits: 8 })?
                } else {
                    self.value(right, ty)?
                };
                let (a, b) = (l.as_u128(), r.as_u128());
                let v = match op {
                    ast::BinOp::Or => a | b,
                    ast::BinOp::And => a & b,
                    ast::BinOp::Xor => a ^ b,
                    ast::BinOp::Shl => a
                        .checked_shl(u32::try_from(b).unwrap_or(u32::MAX))
                        .unwrap_or(0),
                    ast::BinOp::Shr => a
                        .checked_shr(u32::try_from(b).unwrap_or(u32::MAX))
                        .unwrap_or(0),
                };
                if v > max_for_bits(ty.bits()) {
                    self.diags.push(Diagnostic::error(
                        "E0200",
                        span,
                        format!(
                            "value {v} is out of range for {} ({} bits)",
                            ty.name(),
                            ty.bits()
                        ),
                    ));
                    return None;
                }
                Some(self.mk(ty, be_bytes(v, ty.byte_len()), span))
            }
            (A::Error, _) => None,
            (_, _) => {
                self.diags.push(
                    Diagnostic::error(
                        "E0204",
                        span,
                        format!("expected a value of type {}", ty.name()),
                    )
                    .with_primary_label(format!("this is not of type {}", ty.name())),
                );
                None
            }
        }
    }

    fn symbol(&mut self, s: &str, ty: Type, span: Span) -> Option<Value> {
        if let Some(v) = ty.symbol_value(s) {
            return Some(self.mk(ty, be_bytes(u128::from(v), ty.byte_len()), span));
        }
        // Hostnames are never resolved at compile time.
        let kind = match ty {
            Type::Ipv4Addr | Type::Ipv6Addr => {
                self.diags.push(
                    Diagnostic::error("E0201", span, format!("`{s}` is not an address"))
                        .with_note("nfc does not resolve host names; write the address"),
                );
                return None;
            }
            Type::InetService => "service name",
            _ if ty.symbols().is_empty() => {
                self.diags.push(
                    Diagnostic::error(
                        "E0204",
                        span,
                        format!("`{s}` is not a value of type {}", ty.name()),
                    )
                    .with_primary_label(format!("expected {}", ty.name())),
                );
                return None;
            }
            _ => ty.name(),
        };
        let mut d = Diagnostic::error("E0201", span, format!("unknown {kind} `{s}`"))
            .with_primary_label(format!("expected {}", ty.name()));
        let cands: Vec<&str> = if ty == Type::InetService {
            catalog::SERVICES.iter().map(|(n, _)| *n).collect()
        } else {
            ty.symbols().iter().map(|(n, _)| *n).collect()
        };
        if let Some(m) = did_you_mean(s, cands.iter().copied()) {
            d = d.with_help(format!("did you mean `{m}`?"));
        } else if !cands.is_empty() && cands.len() <= 20 {
            d = d.with_note(format!("known values: {}", cands.join(", ")));
        }
        self.diags.push(d);
        None
    }

    // -----------------------------------------------------------------------------------
    // Right-hand sides

    /// Convert a right-hand side against the left's type (`parts` for concatenations).
    pub(crate) fn rhs(&mut self, e: &ast::Expr, left: &Expr) -> Option<Rhs> {
        self.with_var(e, &mut |cx, e| cx.rhs_inner(e, left))
    }

    fn rhs_inner(&mut self, e: &ast::Expr, left: &Expr) -> Option<Rhs> {
        let span = self.sp(e.span);
        let parts = key_types(left);
        match &e.kind {
            A::Set(elems) => {
                let set = self.anon_set(elems, &parts, None, span)?;
                Some(Rhs::Set(set))
            }
            A::SetRef(id) => {
                let sid = self.lookup_set(id, &parts, false)?;
                Some(Rhs::SetRef(sid))
            }
            _ if parts.len() > 1 => {
                let ast_parts: Vec<&ast::Expr> = match &e.kind {
                    A::Concat(p) => p.iter().collect(),
                    _ => vec![e],
                };
                if ast_parts.len() != parts.len() {
                    self.diags.push(Diagnostic::error(
                        "E0204",
                        span,
                        format!(
                            "expected {} concatenated values, found {}",
                            parts.len(),
                            ast_parts.len()
                        ),
                    ));
                    return None;
                }
                let mut vals = Vec::new();
                for (p, t) in ast_parts.iter().zip(parts.iter()) {
                    vals.push(self.value(p, *t)?);
                }
                Some(Rhs::Concat(vals))
            }
            _ => match self.key_part(e, left.ty)? {
                KeyPart::Value(v) => Some(Rhs::Value(v)),
                KeyPart::Prefix { value, len } => Some(Rhs::Prefix { value, len }),
                KeyPart::Range { lo, hi } => Some(Rhs::Range { lo, hi }),
            },
        }
    }

    /// One element part: value, prefix or range.
    pub(crate) fn key_part(&mut self, e: &ast::Expr, ty: Type) -> Option<KeyPart> {
        self.with_var(e, &mut |cx, e| cx.key_part_inner(e, ty))
    }

    fn key_part_inner(&mut self, e: &ast::Expr, ty: Type) -> Option<KeyPart> {
        let span = self.sp(e.span);
        match &e.kind {
            A::Prefix { addr, len } => {
                let v = self.value(addr, ty)?;
                let bits = ty.bits();
                if matches!(
                    ty,
                    Type::Ifname | Type::String { .. } | Type::Verdict | Type::Boolean
                ) || ty.is_bitmask()
                {
                    self.diags.push(Diagnostic::error(
                        "E0204",
                        span,
                        format!("a prefix is not valid for {} values", ty.name()),
                    ));
                    return None;
                }
                if *len > bits {
                    self.diags.push(
                        Diagnostic::error(
                            "E0202",
                            span,
                            format!("prefix length {len} is out of range"),
                        )
                        .with_primary_label(format!("{} prefixes are at most /{bits}", ty.name())),
                    );
                    return None;
                }
                let mut value = v;
                let mut left = *len;
                for b in value.bytes.iter_mut() {
                    let keep = left.min(8);
                    let mask: u8 = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
                    *b &= mask;
                    left -= keep;
                }
                Some(KeyPart::Prefix { value, len: *len })
            }
            A::Range { low, high } => {
                let lo = self.value(low, ty)?;
                let hi = self.value(high, ty)?;
                if lo.bytes > hi.bytes {
                    self.diags.push(
                        Diagnostic::error(
                            "E0207",
                            span,
                            "range is empty: the low end is above the high end",
                        )
                        .with_help(format!(
                            "write `{}-{}`",
                            hi.text(&self.sources),
                            lo.text(&self.sources)
                        )),
                    );
                    return None;
                }
                Some(KeyPart::Range {
                    lo: Box::new(lo),
                    hi: Box::new(hi),
                })
            }
            _ => Some(KeyPart::Value(self.value(e, ty)?)),
        }
    }

    /// An anonymous set or map literal; `data` is the map's value types (None for sets,
    /// `Some([Verdict])` for verdict maps).
    pub(crate) fn anon_set(
        &mut self,
        elems: &[ast::Expr],
        key: &[Type],
        data: Option<&[Type]>,
        span: Span,
    ) -> Option<AnonSet> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut interval = false;
        for el in elems {
            match self.elements_flat(el, key, data) {
                Some(xs) => {
                    for x in xs {
                        interval |= x.key.iter().any(|k| !matches!(k, KeyPart::Value(_)));
                        out.push(x);
                    }
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(AnonSet {
            elements: out,
            interval,
            span,
        })
    }

    /// One element, or all elements of a nested set / `$var` holding a set (nft flattens them).
    pub(crate) fn elements_flat(
        &mut self,
        e: &ast::Expr,
        key: &[Type],
        data: Option<&[Type]>,
    ) -> Option<Vec<Element>> {
        self.with_var(e, &mut |cx, e| match &e.kind {
            A::Set(inner) => cx.flatten_set(inner, &mut |cx, i| cx.elements_flat(i, key, data)),
            _ => cx.element(e, key, data).map(|x| vec![x]),
        })
    }

    /// The elements of a nested set's members, each read by `each`, in one list (nft flattens nested sets);
    /// `None` when any member failed, after checking them all (so every error is reported).
    pub(crate) fn flatten_set(
        &mut self,
        inner: &[ast::Expr],
        each: &mut dyn FnMut(&mut Ctx, &ast::Expr) -> Option<Vec<Element>>,
    ) -> Option<Vec<Element>> {
        if self.var_depth > 0
            && let Some(first) = inner.first()
            && !self.var_charge(inner.len() as u64, self.sp(first.span), None)
        {
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for i in inner {
            match each(self, i) {
                Some(x) => out.extend(x),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// One element (`k`, `k : v`, `a . b`, with options).
    pub(crate) fn element(
        &mut self,
        e: &ast::Expr,
        key: &[Type],
        data: Option<&[Type]>,
    ) -> Option<Element> {
        self.with_var(e, &mut |cx, e| cx.element_inner(e, key, data))
    }

    fn element_inner(
        &mut self,
        e: &ast::Expr,
        key: &[Type],
        data: Option<&[Type]>,
    ) -> Option<Element> {
        let span = self.sp(e.span);
        match &e.kind {
            A::Elem { value, .. } => self.element(value, key, data),
            A::MapElem { key: k, value } => {
                let Some(dt) = data else {
                    self.diags.push(
                        Diagnostic::error("E0106", span, "`key : value` element in a set")
                            .with_help("only maps and verdict maps have values"),
                    );
                    return None;
                };
                let mut el = self.element(k, key, None)?;
                el.data = Some(Box::new(self.map_data(value, dt)?));
                el.span = span;
                Some(el)
            }
            A::Set(inner) => {
                // nested anonymous set inside a set: flatten its single element
                if let [one] = inner.as_slice() {
                    return self.element(one, key, data);
                }
                self.diags.push(Diagnostic::error(
                    "E0205",
                    span,
                    "nested set with several elements",
                ));
                None
            }
            _ => {
                if data.is_some() {
                    self.diags.push(
                        Diagnostic::error("E0106", span, "map element without a value")
                            .with_help("write `key : value`"),
                    );
                    return None;
                }
                let parts: Vec<&ast::Expr> = match &e.kind {
                    A::Concat(p) => p.iter().collect(),
                    _ => vec![e],
                };
                if parts.len() != key.len() {
                    self.diags.push(Diagnostic::error(
                        "E0205",
                        span,
                        format!(
                            "element has {} parts but the key has {}",
                            parts.len(),
                            key.len()
                        ),
                    ));
                    return None;
                }
                let mut out = Vec::with_capacity(parts.len());
                for (p, t) in parts.iter().zip(key.iter()) {
                    out.push(self.key_part(p, *t)?);
                }
                Some(Element {
                    key: out,
                    data: None,
                    span,
                })
            }
        }
    }

    pub(crate) fn map_data(&mut self, e: &ast::Expr, dt: &[Type]) -> Option<MapData> {
        if dt == [Type::Verdict] {
            return self.with_var(e, &mut |cx, e| match &e.kind {
                A::Verdict(v) => cx.verdict(v, cx.sp(e.span)).map(MapData::Verdict),
                _ => {
                    cx.diags.push(
                        Diagnostic::error(
                            "E0204",
                            cx.sp(e.span),
                            "expected a verdict (accept, drop, jump CHAIN, ...)",
                        )
                        .with_primary_label("not a verdict"),
                    );
                    None
                }
            });
        }
        let parts: Vec<ast::Expr> = match &e.kind {
            A::Concat(p) => p.clone(),
            _ => vec![e.clone()],
        };
        if parts.len() != dt.len() {
            self.diags.push(Diagnostic::error(
                "E0205",
                self.sp(e.span),
                format!(
                    "map value has {} parts but the map's data has {}",
                    parts.len(),
                    dt.len()
                ),
            ));
            return None;
        }
        let mut vals = Vec::new();
        for (p, t) in parts.iter().zip(dt.iter()) {
            let k = self.key_part(p, *t)?;
            if matches!(k, KeyPart::Prefix { .. }) && !matches!(t, Type::Ipv4Addr | Type::Ipv6Addr)
            {
                self.diags.push(Diagnostic::error(
                    "E0204",
                    self.sp(p.span),
                    format!("a prefix is not a valid {} map value", t.name()),
                ));
                return None;
            }
            vals.push(k);
        }
        Some(MapData::Value(vals))
    }
}

/// The key types of a left-hand side (one per concatenated part).
pub(crate) fn key_types(e: &Expr) -> Vec<Type> {
    match &e.kind {
        ExprKind::Concat(parts) => parts.iter().map(|p| p.ty).collect(),
        _ => vec![e.ty],
    }
}

/// Types compatible as set keys (integer widths aside, names must agree).
pub(crate) fn same_type(a: Type, b: Type) -> bool {
    match (a, b) {
        (Type::Integer { .. }, Type::Integer { .. }) => true,
        (Type::Mark, Type::Integer { bits: 32 }) | (Type::Integer { bits: 32 }, Type::Mark) => true,
        _ => a == b,
    }
}

/// The spans of the elements numbered `nums` (sorted), in that order.
fn spans_of(elements: ElementsRef<'_>, nums: &[u32]) -> Vec<Span> {
    let mut out = Vec::with_capacity(nums.len());
    for (i, e) in elements.iter().enumerate() {
        if out.len() == nums.len() {
            break;
        }
        if nums.get(out.len()) == Some(&(i as u32)) {
            out.push(e.span);
        }
    }
    out
}

/// Inclusive byte bounds of a single-part element key.
fn bounds(k: &KeyPart) -> (Vec<u8>, Vec<u8>) {
    match k {
        KeyPart::Value(v) => (v.bytes.to_vec(), v.bytes.to_vec()),
        KeyPart::Range { lo, hi } => (lo.bytes.to_vec(), hi.bytes.to_vec()),
        KeyPart::Prefix { value, len } => {
            let mut hi = value.bytes.to_vec();
            let mut keep = *len;
            for b in hi.iter_mut() {
                let k = keep.min(8);
                *b |= if k >= 8 { 0 } else { 0xffu8 >> k };
                keep -= k;
            }
            (value.bytes.to_vec(), hi)
        }
    }
}

impl Ctx {
    /// Overlapping intervals are an error where nft does not merge them (maps, and named
    /// sets without auto-merge). Only single-part keys are checked.
    pub(crate) fn check_overlaps(&mut self, elements: ElementsRef<'_>, what: &str) {
        // one row an element: its low and high bytes (the low only when every element is a single value)
        // and its number, sorted as (low, high, span) would be: ties are ordered by their spans, read
        // again for those only (a million elements need no vector and no span each)
        let (mut width, mut plain) = (None, true);
        for e in elements.iter() {
            let [k] = e.key.as_slice() else { continue };
            let (lo, hi) = bounds(k);
            if *width.get_or_insert(lo.len()) != lo.len() || hi.len() != lo.len() {
                return self.check_overlaps_uneven(elements, what);
            }
            plain &= matches!(k, KeyPart::Value(_));
        }
        let Some(w) = width else { return };
        let kw = if plain { w } else { 2 * w };
        let mut rows = Vec::new();
        for (i, e) in elements.iter().enumerate() {
            let [k] = e.key.as_slice() else { continue };
            let (lo, hi) = bounds(k);
            rows.extend_from_slice(&lo);
            if !plain {
                rows.extend_from_slice(&hi);
            }
            rows.extend_from_slice(&(i as u32).to_be_bytes());
        }
        let n = kw + 4;
        let row = |r: usize| rows.get(r * n..(r + 1) * n).unwrap_or(&[]);
        let key = |r: usize| row(r).get(..kw).unwrap_or(&[]);
        let lo = |r: usize| row(r).get(..w).unwrap_or(&[]);
        let hi = |r: usize| row(r).get(kw - w..kw).unwrap_or(&[]);
        let num = |r: usize| {
            let b = row(r).get(kw..).unwrap_or(&[0; 4]);
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        };
        let mut order: Vec<u32> = (0..(rows.len() / n) as u32).collect();
        order.sort_unstable_by(|a, b| row(*a as usize).cmp(row(*b as usize)));
        let mut tied: Vec<u32> = order
            .windows(2)
            .filter(|p| key(p[0] as usize) == key(p[1] as usize))
            .flat_map(|p| [num(p[0] as usize), num(p[1] as usize)])
            .collect();
        if !tied.is_empty() {
            tied.sort_unstable();
            tied.dedup();
            let spans = spans_of(elements, &tied);
            let span = |r: &u32| tied.binary_search(&num(*r as usize)).map(|i| spans[i]).ok();
            for run in order.chunk_by_mut(|a, b| key(*a as usize) == key(*b as usize)) {
                run.sort_by_key(span);
            }
        }
        let found: Vec<(u32, u32)> = order
            .windows(2)
            .filter(|p| lo(p[1] as usize) <= hi(p[0] as usize))
            .take(3)
            .map(|p| (num(p[0] as usize), num(p[1] as usize)))
            .collect();
        let mut need: Vec<u32> = found.iter().flat_map(|p| [p.0, p.1]).collect();
        need.sort_unstable();
        need.dedup();
        let spans = spans_of(elements, &need);
        let span = |i: u32| need.binary_search(&i).map(|j| spans[j]).unwrap_or_default();
        for (a, b) in found {
            self.overlap(span(a), span(b), what);
        }
    }

    /// [`Ctx::check_overlaps`] for keys of several lengths.
    fn check_overlaps_uneven(&mut self, elements: ElementsRef<'_>, what: &str) {
        let mut iv: Vec<(Vec<u8>, Vec<u8>, Span)> = elements
            .iter()
            .filter_map(|e| match e.key.as_slice() {
                [k] => {
                    let (lo, hi) = bounds(k);
                    Some((lo, hi, e.span))
                }
                _ => None,
            })
            .collect();
        iv.sort();
        let found: Vec<(Span, Span)> = iv
            .windows(2)
            .filter(|w| w[1].0 <= w[0].1)
            .take(3)
            .map(|w| (w[0].2, w[1].2))
            .collect();
        for (a, b) in found {
            self.overlap(a, b, what);
        }
    }

    fn overlap(&mut self, a: Span, b: Span, what: &str) {
        self.diags.push(
            Diagnostic::error("E0205", b, format!("overlapping elements in {what}"))
                .with_primary_label("this element")
                .with_label(a, "overlaps this one")
                .with_help("make the ranges disjoint"),
        );
    }
}

impl Ctx {
    /// `ct original saddr` without `ip`/`ip6` has no fixed length inside a concatenation or a
    /// map key (nft refuses it there).
    pub(crate) fn ct_addr_needs_family(&mut self, x: &Expr) -> Option<()> {
        if let ExprKind::Ct {
            key, family: None, ..
        } = &x.kind
            && matches!(key.name, "saddr" | "daddr")
        {
            self.diags.push(
                Diagnostic::error(
                    "E0206",
                    x.span,
                    format!("`ct {}` needs `ip` or `ip6` here", key.name),
                )
                .with_help(format!("write e.g. `ct original ip {}`", key.name)),
            );
            return None;
        }
        Some(())
    }
}
