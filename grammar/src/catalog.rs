//! The nftables vocabulary as the front end sees it: everything of `nfr_proto::catalog` (datatypes,
//! payload fields, meta and ct keys, symbol tables), plus the family-dependent reading of nft's
//! standard priority names (`nfr_proto::hook::STD_PRIOS`, `BRIDGE_PRIOS`) for the parser and printer.

pub use nfr_proto::catalog::*;
use nfr_proto::hook::{BRIDGE_PRIOS, STD_PRIOS, StdPrio};

fn prios(family: crate::ast::Family) -> &'static [StdPrio] {
    if family == crate::ast::Family::Bridge {
        BRIDGE_PRIOS
    } else {
        STD_PRIOS
    }
}

/// Value of a standard priority name for a family (`bridge` has its own table).
pub fn std_priority(name: &str, family: crate::ast::Family) -> Option<i64> {
    prios(family)
        .iter()
        .find(|p| p.name == name)
        .map(|p| i64::from(p.value))
}

/// The name (and offset) nft prints for a numeric priority: the standard name within ±10 of the
/// value if one applies to this family and hook, else `None` (print the number).
/// `dstnat` applies to prerouting only, `srcnat` to postrouting only (bridge: `out` to output);
/// arp and netdev print only `filter`.
pub fn priority_name(
    value: i64,
    family: crate::ast::Family,
    hook: &str,
) -> Option<(&'static str, i64)> {
    use crate::ast::Family;
    for p in prios(family) {
        let applies = match (family, p.only) {
            (_, Some(h)) => h.name() == hook,
            (Family::Arp | Family::Netdev, None) => p.name == "filter",
            _ => true,
        };
        let base = i64::from(p.value);
        if applies && (value - base).abs() <= 10 {
            return Some((p.name, value - base));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Family;

    #[test]
    fn priorities() {
        assert_eq!(std_priority("mangle", Family::Ip), Some(-150));
        assert_eq!(std_priority("filter", Family::Bridge), Some(-200));
        assert_eq!(priority_name(0, Family::Inet, "input"), Some(("filter", 0)));
        assert_eq!(priority_name(5, Family::Inet, "input"), Some(("filter", 5)));
        assert_eq!(
            priority_name(-155, Family::Ip, "output"),
            Some(("mangle", -5))
        );
        assert_eq!(
            priority_name(-100, Family::Ip, "prerouting"),
            Some(("dstnat", 0))
        );
        assert_eq!(priority_name(-100, Family::Ip, "input"), None);
        assert_eq!(
            priority_name(100, Family::Ip, "postrouting"),
            Some(("srcnat", 0))
        );
        assert_eq!(priority_name(20, Family::Ip, "input"), None);
        assert_eq!(
            priority_name(-300, Family::Bridge, "prerouting"),
            Some(("dstnat", 0))
        );
    }
}
