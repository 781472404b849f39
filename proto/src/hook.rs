//! Netfilter hooks and priorities: the hooks (`enum nf_inet_hooks`), the priorities of the kernel's own
//! entries and of the iptables tables (`NF_IP_PRI_*`, `iptable_*.c`), nft's standard priority names
//! (`std_prios`, `bridge_std_prios` in nftables' src/rule.c) and the hooks a packet passes on each path
//! (`NF_HOOK` calls of ip_rcv, ip_forward, ip_output).

/// `enum nf_inet_hooks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Hook {
    /// `NF_INET_PRE_ROUTING` = 0
    Prerouting = 0,
    /// `NF_INET_LOCAL_IN` = 1
    Input = 1,
    /// `NF_INET_FORWARD` = 2
    Forward = 2,
    /// `NF_INET_LOCAL_OUT` = 3
    Output = 3,
    /// `NF_INET_POST_ROUTING` = 4
    Postrouting = 4,
}

impl Hook {
    /// All five hooks in NF_INET_* order.
    pub const ALL: [Hook; 5] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];

    /// The nft keyword (`prerouting`, `input`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }

    /// From an NF_INET_* number.
    pub fn from_u32(n: u32) -> Option<Hook> {
        Hook::ALL.get(n as usize).copied()
    }

    /// From the nft keyword.
    pub fn from_name(s: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name() == s)
    }
}

/// The hooks a packet passes, in order, on each `NF_HOOK` path.
pub mod path {
    use super::Hook;
    /// Delivered to the host (`ip_rcv` → `ip_local_deliver`).
    pub const LOCAL_IN: &[Hook] = &[Hook::Prerouting, Hook::Input];
    /// Routed through (`ip_rcv` → `ip_forward` → `ip_output`).
    pub const FORWARD: &[Hook] = &[Hook::Prerouting, Hook::Forward, Hook::Postrouting];
    /// No route: dropped after PREROUTING.
    pub const BLACKHOLE: &[Hook] = &[Hook::Prerouting];
    /// Sent by the host (`__ip_local_out` → `ip_output`).
    pub const LOCAL_OUT: &[Hook] = &[Hook::Output, Hook::Postrouting];
}

/// `NF_IP_PRI_*` / `NF_IP6_PRI_*` values.
pub mod priority {
    pub const FIRST: i32 = i32::MIN;
    pub const RAW_BEFORE_DEFRAG: i32 = -450;
    pub const CONNTRACK_DEFRAG: i32 = -400;
    pub const RAW: i32 = -300;
    pub const SELINUX_FIRST: i32 = -225;
    pub const CONNTRACK: i32 = -200;
    pub const MANGLE: i32 = -150;
    pub const NAT_DST: i32 = -100;
    pub const FILTER: i32 = 0;
    pub const SECURITY: i32 = 50;
    pub const NAT_SRC: i32 = 100;
    pub const SELINUX_LAST: i32 = 225;
    pub const CONNTRACK_HELPER: i32 = 300;
    pub const CONNTRACK_CONFIRM: i32 = i32::MAX;
    pub const LAST: i32 = i32::MAX;
}

/// One of nft's standard priority names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdPrio {
    pub name: &'static str,
    pub value: i32,
    /// The one hook where nft accepts (and prints) the name; `None`: every hook.
    pub only: Option<Hook>,
}

const fn sp(name: &'static str, value: i32, only: Option<Hook>) -> StdPrio {
    StdPrio { name, value, only }
}

/// `std_prios` (ip, ip6, inet, arp, netdev).
pub const STD_PRIOS: &[StdPrio] = &[
    sp("raw", priority::RAW, None),
    sp("mangle", priority::MANGLE, None),
    sp("dstnat", priority::NAT_DST, Some(Hook::Prerouting)),
    sp("filter", priority::FILTER, None),
    sp("security", priority::SECURITY, None),
    sp("srcnat", priority::NAT_SRC, Some(Hook::Postrouting)),
];

/// `bridge_std_prios` (`NF_BR_PRI_*`).
pub const BRIDGE_PRIOS: &[StdPrio] = &[
    sp("dstnat", -300, Some(Hook::Prerouting)),
    sp("filter", -200, None),
    sp("out", 100, Some(Hook::Output)),
    sp("srcnat", 300, Some(Hook::Postrouting)),
];

/// The standard priority `name` of a table (`bridge` or not).
pub fn std_prio(name: &str, bridge: bool) -> Option<&'static StdPrio> {
    let table = if bridge { BRIDGE_PRIOS } else { STD_PRIOS };
    table.iter().find(|p| p.name == name)
}

/// One iptables table (`net/ipv4/netfilter/iptable_*.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IptTable {
    pub name: &'static str,
    /// `valid_hooks`: bit `1 << NF_INET_*` per hook the table registers on.
    pub valid_hooks: u32,
}

/// The five iptables tables, in `iptables-save` order of the kernel's `/proc/net/ip_tables_names`
/// registration.
pub const IPT_TABLES: [IptTable; 5] = [
    IptTable {
        name: "filter",
        valid_hooks: 0x0e,
    },
    IptTable {
        name: "mangle",
        valid_hooks: 0x1f,
    },
    IptTable {
        name: "raw",
        valid_hooks: 0x09,
    },
    IptTable {
        name: "nat",
        valid_hooks: 0x1b,
    },
    IptTable {
        name: "security",
        valid_hooks: 0x0e,
    },
];

impl IptTable {
    /// The table named `name`.
    pub fn by_name(name: &str) -> Option<&'static IptTable> {
        IPT_TABLES.iter().find(|t| t.name == name)
    }

    /// Whether the table registers on `hook`.
    pub fn hooks(&self, hook: Hook) -> bool {
        self.valid_hooks & (1 << hook as u32) != 0
    }

    /// The hooks the table registers on, in NF_INET_* order.
    pub fn valid(&self) -> impl Iterator<Item = Hook> + '_ {
        Hook::ALL.into_iter().filter(|h| self.hooks(*h))
    }

    /// The priority of the table's entry on `hook` (`NF_IP_PRI_*`; nat: dstnat on
    /// PREROUTING/OUTPUT, srcnat on INPUT/POSTROUTING).
    pub fn priority(&self, hook: Hook) -> i32 {
        match self.name {
            "raw" => priority::RAW,
            "mangle" => priority::MANGLE,
            "nat" if matches!(hook, Hook::Prerouting | Hook::Output) => priority::NAT_DST,
            "nat" => priority::NAT_SRC,
            "security" => priority::SECURITY,
            _ => priority::FILTER,
        }
    }

    /// The nft chain type that behaves like the table on `hook` (mangle reroutes on output when
    /// the mark changed: nft's `route`).
    pub fn chain_type(&self, hook: Hook) -> &'static str {
        match self.name {
            "nat" => "nat",
            "mangle" if hook == Hook::Output => "route",
            _ => "filter",
        }
    }

    /// The table's (hook, priority) entries.
    pub fn entries(&self) -> impl Iterator<Item = (Hook, i32)> + '_ {
        self.valid().map(|h| (h, self.priority(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_and_tables() {
        for h in Hook::ALL {
            assert_eq!(Hook::from_u32(h as u32), Some(h));
            assert_eq!(Hook::from_name(h.name()), Some(h));
        }
        let nat = IptTable::by_name("nat").unwrap();
        assert_eq!(
            nat.entries().collect::<Vec<_>>(),
            [
                (Hook::Prerouting, -100),
                (Hook::Input, 100),
                (Hook::Output, -100),
                (Hook::Postrouting, 100)
            ]
        );
        assert_eq!(IptTable::by_name("raw").unwrap().valid().count(), 2);
        assert_eq!(
            IptTable::by_name("mangle")
                .unwrap()
                .chain_type(Hook::Output),
            "route"
        );
        assert!(IptTable::by_name("broute").is_none());
        assert_eq!(std_prio("dstnat", false).unwrap().value, -100);
        assert_eq!(std_prio("filter", true).unwrap().value, -200);
        assert!(std_prio("out", false).is_none());
    }
}
