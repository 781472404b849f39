//! nfr-ipt: the iptables blob. The x86_64 `ipt_replace`/`ipt_entry` layout and extension payloads
//! (`layout`), a structured `Table` (`model`), byte-identical libiptc encoding and decoding
//! (`blob`), iptables-save printing and parsing (`save`, `parse`), a port of the kernel's
//! `translate_table` checks (`verify`), an `ipt_do_table` executor (`exec`) and, behind the
//! `kernel` feature, the socket calls that load and read tables (`kernel`).
//!
//! Everything except `kernel` is `#![forbid(unsafe_code)]` (per module; the crate denies unsafe
//! through the workspace lints).

pub mod blob;
pub mod layout;
pub mod model;

pub use blob::{DecodeError, EncodeError, decode, decode_entries, encode, encode_parts};
pub use model::*;
pub mod parse;
pub mod save;

pub use parse::{ParseError, parse_rule, parse_rule_str, parse_save};
pub use save::{rule_line, save, save_all};
pub mod verify;

pub use verify::{Errno, VerifiedTable, VerifyError, VerifyOptions, verify, verify_with};
pub mod exec;
#[cfg(feature = "kernel")]
pub mod kernel;

pub use exec::{Effect, ExecError, ExecTable, Outcome};
