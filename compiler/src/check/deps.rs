//! Implicit protocol dependencies, as nft inserts them (checked against the `.t.payload`
//! files of nftables' tests):
//! - transport fields (`tcp`, `udp`, `icmp`, ...; not `th`) need `meta l4proto P` unless
//!   the rule already fixed the transport protocol (`meta l4proto`, `ip protocol`,
//!   `ip6 nexthdr` with `==`);
//! - in inet tables, `ip ...` fields need `meta nfproto ipv4` and `ip6 ...` fields
//!   `meta nfproto ipv6`; `icmp`/`icmpv6` add that too, but only when the rule has not
//!   fixed the family yet (nft accepts `meta nfproto ipv4 icmpv6 type ...`);
//! - `reject with tcp reset` needs l4proto tcp; `reject with icmp`/`icmpv6` the family.
//!
//! A requirement that contradicts what the rule already fixed is an error naming both places.

use nfr_proto::desc;

use super::Ctx;
use crate::diag::{Diagnostic, Span};
use crate::hir::{DepKey, Expr, ExprKind, Family, Match, Op, Rhs};

pub use nfr_proto::desc::{NFPROTO_IPV4, NFPROTO_IPV6};

/// What one rule has fixed so far.
#[derive(Clone, Debug, Default)]
pub struct DepState {
    /// (nfproto, where it was fixed)
    pub nfproto: Option<(u8, Span)>,
    /// (l4 protocol number, where it was fixed)
    pub l4: Option<(u8, Span)>,
    /// The transport protocol is one of a set (`meta l4proto { tcp, udp }`): enough for a
    /// nat port, not for a `tcp` field (nft then still inserts `meta l4proto tcp`).
    pub l4_set: Option<Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// nfproto; `soft` = only if unknown, never a conflict
    Nfproto {
        v: u8,
        soft: bool,
    },
    L4(u8),
}

fn proto_name(n: u8) -> String {
    DepKey::L4proto.value_name(n)
}

fn nfproto_name(n: u8) -> String {
    DepKey::Nfproto.value_name(n)
}

/// Requirements of a selector, in order.
pub fn needs(e: &Expr, family: Family, out: &mut Vec<(Need, Span)>) {
    match &e.kind {
        ExprKind::Payload { field, .. } => {
            let span = e.span;
            let proto = field.map_or("", |f| f.proto);
            if family == Family::Inet
                && let Some((v, soft)) = desc::implied_nfproto(proto)
            {
                out.push((Need::Nfproto { v, soft }, span));
            }
            if let Some(n) = desc::l4_number(proto) {
                out.push((Need::L4(n), span));
            }
        }
        ExprKind::Concat(parts) => parts.iter().for_each(|p| needs(p, family, out)),
        ExprKind::Bitwise { expr, .. } => needs(expr, family, out),
        ExprKind::Meta { .. }
        | ExprKind::Ct { .. }
        | ExprKind::Numgen { .. }
        | ExprKind::FibType { .. } => {}
    }
}

fn what_fixed(e: &Expr, op: Op, right: &Rhs) -> Option<Need> {
    if !matches!(op, Op::Eq) {
        return None;
    }
    let Rhs::Value(v) = right else { return None };
    let b = *v.bytes.first()?;
    match &e.kind {
        ExprKind::Meta { key } if key.name == "nfproto" => {
            Some(Need::Nfproto { v: b, soft: false })
        }
        ExprKind::Meta { key } if key.name == "l4proto" => Some(Need::L4(b)),
        ExprKind::Payload { .. } if e.is_l4_protocol_key() => Some(Need::L4(b)),
        _ => None,
    }
}

impl Ctx {
    /// Satisfy `needs` before an item at `span`: push implicit matches into `items`, or
    /// report a conflict.
    pub(crate) fn apply_needs(
        &mut self,
        st: &mut DepState,
        needs: &[(Need, Span)],
        items: &mut Vec<crate::hir::Item>,
    ) -> bool {
        let mut ok = true;
        for (need, at) in needs {
            match *need {
                Need::Nfproto { v, soft } => match st.nfproto {
                    Some((have, _)) if have == v => {}
                    Some(_) if soft => {}
                    Some((have, where_)) => {
                        ok = false;
                        self.diags.push(
                            Diagnostic::error(
                                "E0300",
                                *at,
                                format!(
                                    "conflicting protocols: this needs {} but the rule already matches {}",
                                    nfproto_name(v),
                                    nfproto_name(have)
                                ),
                            )
                            .with_primary_label(format!("needs meta nfproto {}", nfproto_name(v)))
                            .with_label(where_, format!("this fixes meta nfproto {}", nfproto_name(have)))
                            .with_note("the rule can never match; split it into two rules"),
                        );
                    }
                    None => {
                        if self.family == Family::Inet {
                            items.push(crate::hir::Item::Match(DepKey::Nfproto.implicit(v, *at)));
                        }
                        st.nfproto = Some((v, *at));
                    }
                },
                Need::L4(p) => match st.l4 {
                    Some((have, _)) if have == p => {}
                    Some((have, where_)) => {
                        ok = false;
                        self.diags.push(
                            Diagnostic::error(
                                "E0300",
                                *at,
                                format!(
                                    "conflicting protocols: this needs {} but the rule already matches {}",
                                    proto_name(p),
                                    proto_name(have)
                                ),
                            )
                            .with_primary_label(format!("needs transport protocol {}", proto_name(p)))
                            .with_label(where_, format!("this fixes the transport protocol to {}", proto_name(have)))
                            .with_note("the rule can never match; split it into two rules, or use `th` for a port match on any protocol"),
                        );
                    }
                    None => {
                        items.push(crate::hir::Item::Match(DepKey::L4proto.implicit(p, *at)));
                        st.l4 = Some((p, *at));
                    }
                },
            }
        }
        ok
    }

    /// Record what a user match fixes; conflicts with earlier fixes are errors too
    /// (`ip protocol udp meta l4proto tcp`).
    pub(crate) fn note_fixed(&mut self, st: &mut DepState, m: &Match) {
        if m.op == Op::Eq
            && matches!(m.right, Rhs::Set(_))
            && matches!(&m.left.kind,
                ExprKind::Meta { key } if key.name == "l4proto")
                | m.left.is_l4_protocol_key()
        {
            st.l4_set = Some(m.span);
        }
        let Some(n) = what_fixed(&m.left, m.op, &m.right) else {
            return;
        };
        let mut dummy = Vec::new();
        match n {
            Need::Nfproto { v, .. } => {
                if st.nfproto.is_some() {
                    self.apply_needs(st, &[(n, m.span)], &mut dummy);
                } else {
                    st.nfproto = Some((v, m.span));
                }
            }
            Need::L4(p) => {
                if st.l4.is_some() {
                    self.apply_needs(st, &[(n, m.span)], &mut dummy);
                } else {
                    st.l4 = Some((p, m.span));
                }
            }
        }
    }
}
