//! Whether a checked table maps onto an iptables table (iptables for `ip`, ip6tables for `ip6`):
//! its base chains' hooks, types and priorities against the iptables tables'
//! (`nfr_proto::hook::IPT_TABLES`: valid hooks, `NF_IP_PRI_*`, the chain type each behaves like).
//! The iptables lowering's question, asked of the Hir; whether each rule is expressible is
//! decided rule by rule in [`super::ipt`].

use crate::hir::{Chain, ChainId, ChainKind, ChainType, Family, Hir, Hook, Set, TableId};
use nfr_proto::hook::IPT_TABLES;

/// The five iptables tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IptTable {
    Filter,
    Nat,
    Mangle,
    Raw,
    Security,
}

impl IptTable {
    pub const ALL: [IptTable; 5] = [
        IptTable::Filter,
        IptTable::Nat,
        IptTable::Mangle,
        IptTable::Raw,
        IptTable::Security,
    ];

    /// The iptables name (`nfr_proto::hook::IPT_TABLES`).
    pub fn name(self) -> &'static str {
        match self {
            IptTable::Filter => "filter",
            IptTable::Nat => "nat",
            IptTable::Mangle => "mangle",
            IptTable::Raw => "raw",
            IptTable::Security => "security",
        }
    }
}

/// Whether a table can be expressed as an iptables (IPv4) / ip6tables (IPv6) table.
/// Computed per table by [`table_mapping`]; not an error either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IptMapping {
    Maps {
        table: IptTable,
        /// `Ip` = iptables, `Ip6` = ip6tables.
        family: Family,
        /// The base chain on each hook (built-in chains missing here are empty, policy ACCEPT).
        builtin: Vec<(Hook, ChainId)>,
    },
    No(Vec<IptReason>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IptReason {
    /// inet tables have no iptables equivalent.
    Family(Family),
    NoBaseChains,
    /// Two base chains on one hook.
    SharedHook {
        hook: Hook,
        chains: Vec<ChainId>,
    },
    /// The base chains' (type, priority, hook) fit no single iptables table.
    NoMatchingTable {
        chain: ChainId,
        detail: String,
    },
    /// Base chains would need different iptables tables.
    MixedTables(Vec<(ChainId, IptTable)>),
    /// A named set or map (iptables has no sets without ipset).
    NamedSets,
    Ingress(ChainId),
}

/// The mapping of table `id` of `hir`.
pub fn table_mapping(hir: &Hir, id: TableId) -> IptMapping {
    let Some(t) = hir.table(id) else {
        return IptMapping::No(vec![IptReason::NoBaseChains]);
    };
    let chains: Vec<&Chain> = t.chains.iter().filter_map(|c| hir.chain(*c)).collect();
    let sets: Vec<&Set> = t.sets.iter().filter_map(|s| hir.set(*s)).collect();
    ipt_mapping(t.family, &chains, &sets)
}

/// The iptables table a base chain (type, hook, priority) would belong to, if any
/// (`nfr_proto::hook::IPT_TABLES`: valid hooks, priorities, the chain type each behaves like).
fn ipt_table_for(ty: ChainType, hook: Hook, prio: i32) -> Result<IptTable, String> {
    let mut why = Vec::new();
    let nf_hook = hook.nf_hook();
    for info in &IPT_TABLES {
        let Some(h) = nf_hook.filter(|h| info.hooks(*h)) else {
            continue;
        };
        if info.priority(h) != prio {
            continue;
        }
        // A filter-type chain is fine where iptables uses route (mangle output): the route
        // type only adds a reroute after a mark change, which a filter chain never makes.
        let want = ChainType::from_name(info.chain_type(h)).unwrap_or(ChainType::Filter);
        if want == ty || (want == ChainType::Route && ty == ChainType::Filter) {
            if let Some(t) = IptTable::ALL.into_iter().find(|t| t.name() == info.name) {
                return Ok(t);
            }
            continue;
        }
        why.push(format!(
            "iptables {} uses type {} here, not {}",
            info.name,
            want.name(),
            ty.name()
        ));
    }
    if why.is_empty() {
        // Each table's priorities, from the table of tables: `filter 0, ..., nat -100/100, ...`.
        let tables: Vec<String> = IPT_TABLES
            .iter()
            .map(|t| {
                let mut prios: Vec<i32> = Vec::new();
                for p in t.valid().map(|h| t.priority(h)) {
                    if !prios.contains(&p) {
                        prios.push(p);
                    }
                }
                let prios: Vec<String> = prios.iter().map(i32::to_string).collect();
                format!("{} {}", t.name, prios.join("/"))
            })
            .collect();
        why.push(format!(
            "no iptables table hooks {} at priority {prio} ({})",
            hook.name(),
            tables.join(", ")
        ));
    }
    Err(why.join("; "))
}

/// Decide whether one table's chains map onto an iptables table (iptables for `ip`,
/// ip6tables for `ip6`). `chains` are the table's chains (any order); `sets` its named
/// sets/maps. Whether each rule is expressible is the ipt lowering's question.
pub fn ipt_mapping(family: Family, chains: &[&Chain], sets: &[&Set]) -> IptMapping {
    let mut reasons = Vec::new();
    if family == Family::Inet {
        reasons.push(IptReason::Family(family));
    }
    if !sets.is_empty() {
        reasons.push(IptReason::NamedSets);
    }
    let mut hooks: Vec<(Hook, ChainId)> = Vec::new();
    let mut picks: Vec<(ChainId, IptTable)> = Vec::new();
    for c in chains {
        let ChainKind::Base(b) = &c.kind else {
            continue;
        };
        if b.hook == Hook::Ingress {
            reasons.push(IptReason::Ingress(c.id));
            continue;
        }
        if let Some(prev) = hooks.iter().find(|(h, _)| *h == b.hook) {
            let prev = prev.1;
            if let Some(IptReason::SharedHook { chains, .. }) = reasons
                .iter_mut()
                .find(|r| matches!(r, IptReason::SharedHook { hook, .. } if *hook == b.hook))
            {
                chains.push(c.id);
            } else {
                reasons.push(IptReason::SharedHook {
                    hook: b.hook,
                    chains: vec![prev, c.id],
                });
            }
            continue;
        }
        hooks.push((b.hook, c.id));
        match ipt_table_for(b.ty, b.hook, b.priority) {
            Ok(t) => picks.push((c.id, t)),
            Err(detail) => reasons.push(IptReason::NoMatchingTable {
                chain: c.id,
                detail,
            }),
        }
    }
    if hooks.is_empty() && !reasons.iter().any(|r| matches!(r, IptReason::Ingress(_))) {
        reasons.push(IptReason::NoBaseChains);
    }
    // nat prerouting -100 / output -100 are also mangle-free; a chain could fit several
    // tables only through the (hook, priority) pair, which is unique per table, so `picks`
    // disagree only when the user mixed tables.
    let first = picks.first().map(|p| p.1);
    if let Some(t0) = first
        && picks.iter().any(|p| p.1 != t0)
    {
        reasons.push(IptReason::MixedTables(picks.clone()));
    }
    // The table is chosen by structure (hooks, types, priorities), never by its nft name.
    if reasons.is_empty()
        && let Some(table) = first
    {
        hooks.sort();
        return IptMapping::Maps {
            table,
            family,
            builtin: hooks,
        };
    }
    IptMapping::No(reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;
    use crate::hir::{BaseChain, Policy};

    fn base(id: u32, ty: ChainType, hook: Hook, priority: i32) -> Chain {
        Chain {
            id: ChainId(id),
            table: TableId(0),
            name: format!("c{id}"),
            span: Span::default(),
            kind: ChainKind::Base(BaseChain {
                ty,
                hook,
                priority,
                policy: Policy::Accept,
                device: None,
                span: Span::default(),
            }),
            rules: vec![],
        }
    }

    #[test]
    fn ipt_filter_maps() {
        let a = base(0, ChainType::Filter, Hook::Input, 0);
        let b = base(1, ChainType::Filter, Hook::Forward, 0);
        let m = ipt_mapping(Family::Ip, &[&a, &b], &[]);
        assert_eq!(
            m,
            IptMapping::Maps {
                table: IptTable::Filter,
                family: Family::Ip,
                builtin: vec![(Hook::Input, ChainId(0)), (Hook::Forward, ChainId(1))]
            }
        );
    }

    #[test]
    fn ipt_nat_and_mangle() {
        let a = base(0, ChainType::Nat, Hook::Prerouting, -100);
        let b = base(1, ChainType::Nat, Hook::Postrouting, 100);
        assert!(matches!(
            ipt_mapping(Family::Ip, &[&a, &b], &[]),
            IptMapping::Maps {
                table: IptTable::Nat,
                ..
            }
        ));
        let c = base(2, ChainType::Route, Hook::Output, -150);
        let d = base(3, ChainType::Filter, Hook::Prerouting, -150);
        assert!(matches!(
            ipt_mapping(Family::Ip6, &[&c, &d], &[]),
            IptMapping::Maps {
                table: IptTable::Mangle,
                family: Family::Ip6,
                ..
            }
        ));
    }

    #[test]
    fn ipt_reasons() {
        let a = base(0, ChainType::Filter, Hook::Input, 0);
        let b = base(1, ChainType::Filter, Hook::Input, 10);
        let IptMapping::No(r) = ipt_mapping(Family::Inet, &[&a, &b], &[]) else {
            panic!()
        };
        assert!(r.contains(&IptReason::Family(Family::Inet)));
        assert!(r.contains(&IptReason::SharedHook {
            hook: Hook::Input,
            chains: vec![ChainId(0), ChainId(1)]
        }));
        let c = base(2, ChainType::Filter, Hook::Input, 5);
        let IptMapping::No(r) = ipt_mapping(Family::Ip, &[&c], &[]) else {
            panic!()
        };
        assert!(matches!(
            r[0],
            IptReason::NoMatchingTable {
                chain: ChainId(2),
                ..
            }
        ));
        let d = base(3, ChainType::Filter, Hook::Prerouting, -300);
        let e = base(4, ChainType::Filter, Hook::Input, 0);
        let IptMapping::No(r) = ipt_mapping(Family::Ip, &[&d, &e], &[]) else {
            panic!()
        };
        assert!(matches!(r[0], IptReason::MixedTables(_)));
        let IptMapping::No(r) = ipt_mapping(Family::Ip, &[], &[]) else {
            panic!()
        };
        assert_eq!(r, vec![IptReason::NoBaseChains]);
    }
}
