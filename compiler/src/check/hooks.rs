//! Hook, chain-type and priority tables (nft's `chain_type`s, `std_prios`) and the
//! iptables-table mapping (`valid_hooks`, canonical priorities of iptable_filter & co).

use crate::hir::{Chain, Policy};
use crate::hir::{
    ChainId, ChainKind, ChainType, Family, Hook, IptMapping, IptReason, IptTable, Set,
};

use nfr_proto::hook::{IPT_TABLES, STD_PRIOS};

/// NF_IP_PRI_CONNTRACK: nat chains must have a priority above this.
pub const NF_IP_PRI_CONNTRACK: i32 = nfr_proto::hook::priority::CONNTRACK;

/// Why a (type, hook) pair is not valid, if it is not.
pub fn chain_type_hook_error(family: Family, ty: ChainType, hook: Hook) -> Option<String> {
    match (ty, hook) {
        (_, Hook::Ingress) if family != Family::Inet => Some(format!(
            "the ingress hook exists only in inet (and netdev) tables, not in {}",
            family.name()
        )),
        (ChainType::Filter, Hook::Ingress) => None,
        (_, Hook::Ingress) => Some(format!("{} chains cannot use the ingress hook", ty.name())),
        (ChainType::Filter, _) => None,
        (ChainType::Nat, Hook::Forward) => {
            Some("nat chains hook only prerouting, input, output or postrouting".into())
        }
        (ChainType::Nat, _) => None,
        (ChainType::Route, Hook::Output) => None,
        (ChainType::Route, _) => Some("route chains hook only output".into()),
    }
}

/// Resolve a priority name (`filter`, `dstnat`, ...) for a hook. `Err` gives the reason.
pub fn std_prio(name: &str, hook: Option<Hook>) -> Result<i32, String> {
    let Some(p) = STD_PRIOS.iter().find(|p| p.name == name) else {
        let names: Vec<&str> = STD_PRIOS.iter().map(|p| p.name).collect();
        return Err(format!(
            "unknown priority name `{name}` (known: {})",
            names.join(", ")
        ));
    };
    if let (Some(only), Some(h)) = (p.only, hook)
        && only.name() != h.name()
    {
        return Err(format!(
            "priority `{name}` is only valid on the {} hook",
            only.name()
        ));
    }
    Ok(p.value)
}

/// The iptables table a base chain (type, hook, priority) would belong to, if any
/// (`nfr_proto::hook::IPT_TABLES`: valid hooks, priorities, the chain type each behaves like).
fn ipt_table_for(ty: ChainType, hook: Hook, prio: i32) -> Result<IptTable, String> {
    let mut why = Vec::new();
    let nf_hook = nfr_proto::Hook::from_name(hook.name());
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
        why.push(format!(
            "no iptables table hooks {} at priority {prio} (filter 0, nat -100/100, mangle -150, raw -300, security 50)",
            hook.name()
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

/// Policy keyword text.
pub fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Accept => "accept",
        Policy::Drop => "drop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;
    use crate::hir::{BaseChain, TableId};

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
    fn type_hook_table() {
        assert!(chain_type_hook_error(Family::Ip, ChainType::Filter, Hook::Forward).is_none());
        assert!(chain_type_hook_error(Family::Ip, ChainType::Nat, Hook::Forward).is_some());
        assert!(chain_type_hook_error(Family::Ip, ChainType::Nat, Hook::Input).is_none());
        assert!(chain_type_hook_error(Family::Ip6, ChainType::Route, Hook::Output).is_none());
        assert!(chain_type_hook_error(Family::Ip6, ChainType::Route, Hook::Input).is_some());
        assert!(chain_type_hook_error(Family::Ip, ChainType::Filter, Hook::Ingress).is_some());
        assert!(chain_type_hook_error(Family::Inet, ChainType::Filter, Hook::Ingress).is_none());
    }

    #[test]
    fn prio_names() {
        assert_eq!(std_prio("mangle", Some(Hook::Input)), Ok(-150));
        assert_eq!(std_prio("dstnat", Some(Hook::Prerouting)), Ok(-100));
        assert!(std_prio("dstnat", Some(Hook::Postrouting)).is_err());
        assert!(std_prio("fliter", None).is_err());
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
