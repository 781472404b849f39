//! Raisings: executable forms read back as `.nfr` text. [`ipt`] prints iptables tables (decoded
//! blobs, iptables-save text) as the ruleset that lowers to them.

pub mod ipt;
