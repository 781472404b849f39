//! nfr-proto: the protocol facts every other crate reads, in one place, as nftables keeps them in
//! src/proto.c: the selector catalog (`catalog`: datatypes, payload fields, meta and ct keys), the IP
//! protocol numbers and names (`ipproto`), the protocol descriptors and their links (`desc`: protocol
//! keys, upper layers, each family's starting protocol, link-layer types), the hooks, priorities and
//! iptables tables (`hook`) and the NAT range flags (`nat`). A leaf: it depends on nothing.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod desc;
pub mod hook;
pub mod ipproto;
pub mod nat;

pub use hook::Hook;
