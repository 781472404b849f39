//! Hook, chain-type and priority checks (nft's `chain_type`s, `std_prios` from
//! `nfr_proto::hook`).

use crate::hir::{ChainType, Family, Hook, Policy};
use nfr_proto::hook::STD_PRIOS;

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
}
