//! nfr-ipt: the iptables blob. The x86_64 `ipt_replace`/`ipt_entry` layout and extension payloads
//! (`layout`), a structured `Table` (`model`), byte-identical libiptc encoding and decoding
//! (`blob`), iptables-save printing and parsing (`save`, `parse`), the extensions' defaults,
//! option encodings and checks that the parser and the compiler's lowering share (`ext`), a port
//! of the kernel's `translate_table` checks (`verify`), an `ipt_do_table` executor (`exec`) and,
//! behind the `kernel` feature (on by default), the socket calls that load and read tables
//! (`kernel`).
//!
//! Supported extensions, at the revisions iptables-legacy 1.8.9 sends (checked against the
//! kernel): matches tcp/udp/icmp 0, conntrack 3 (also for `-m state`, with
//! XT_CONNTRACK_STATE_ALIAS), multiport 1, mark 1, comment 0, limit 0, length 0, iprange 1, ttl 0,
//! pkttype 0, connmark 1, dscp 0, mac 0, owner 1, statistic 0, addrtype 1, recent 1 (its lists:
//! `recent`); targets REJECT 0, LOG 0, MARK 2, CONNMARK 2,
//! CT 2 (also for NOTRACK), NFQUEUE 3, DNAT 2 (`nf_nat_range2`), SNAT 0, MASQUERADE 0 and
//! REDIRECT 0 (`nf_nat_ipv4_multi_range_compat`). Anything else decodes as `Match::Other` /
//! `Target::Other` (raw bytes) and is refused by the executor.
//!
//! ```
//! use nfr_ipt::*;
//! let text = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
//!             -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
//! let table = parse_save(text).unwrap().remove(0);
//! let blob = encode(&table).unwrap(); // ipt_replace header + entries, as libiptc builds it
//! assert_eq!(blob.len(), 96 + 200 + 3 * 152 + 176);
//! assert_eq!(decode(&blob).unwrap(), table);
//! assert_eq!(save(&table, false), text);
//! let mut ex = ExecTable::from_blob(&blob).unwrap(); // verify() + executor
//! let syn = [
//!     0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 10, 0, 0, 1, // IPv4
//!     0x04, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0, // TCP SYN → 22
//! ];
//! let out = ex.do_table(Hook::Input, &syn, &nfr_vm::PktState::default()).unwrap();
//! assert_eq!(out.verdict, nfr_vm::Verdict::Accept);
//! ```
//!
//! Everything except `kernel` is `#![forbid(unsafe_code)]` (per module; the crate denies unsafe
//! through the workspace lints).

pub mod blob;
pub mod exec;
pub mod ext;
#[cfg(feature = "kernel")]
pub mod kernel;
pub mod layout;
pub mod model;
pub mod parse;
pub mod recent;
pub mod save;
pub mod verify;

pub use blob::{
    DecodeError, EncodeError, EntryLabel, EntryRole, decode, decode_entries, encode, encode_parts,
    entry_map,
};
pub use exec::{Effect, ExecError, ExecTable, Outcome};
pub use ext::{check_iface, check_port_proto, check_proto, check_rule};
pub use model::*;
pub use parse::{ParseError, parse_rule, parse_rule_str, parse_save, parse_save_all};
pub use save::{rule_line, rule_spec, save, save_all};
pub use verify::{Errno, VerifiedTable, VerifyError, VerifyOptions, verify, verify_with};
