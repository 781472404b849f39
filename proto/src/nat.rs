//! NAT range flags (`NF_NAT_RANGE_*`, uapi `linux/netfilter/nf_nat.h`): what nft's `snat ... random` and
//! iptables' `--random` write into a range and what the runtime's tuple choice reads.

pub const NF_NAT_RANGE_MAP_IPS: u32 = 1 << 0;
pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;
pub const NF_NAT_RANGE_PROTO_RANDOM: u32 = 1 << 2;
pub const NF_NAT_RANGE_PERSISTENT: u32 = 1 << 3;
pub const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 1 << 4;
pub const NF_NAT_RANGE_PROTO_OFFSET: u32 = 1 << 5;
pub const NF_NAT_RANGE_NETMAP: u32 = 1 << 6;
/// `NF_NAT_RANGE_PROTO_RANDOM_ALL`.
pub const NF_NAT_RANGE_PROTO_RANDOM_ALL: u32 =
    NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PROTO_RANDOM_FULLY;
