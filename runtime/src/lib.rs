//! nfr-runtime: everything that happens to a packet outside the rule engines — reading captures (`pcap`),
//! zero-copy header views and frame parsing (`wire`), netfilter hook traversal (`hook`) and connection
//! tracking modelled on the kernel's nf_conntrack (`ct`), and the table engines as hook entries (`engine`).
#![deny(unsafe_code)] // audited exceptions: `memhint` (madvise, prefetch)

pub mod ct;
pub mod defrag;
pub mod engine;
pub mod forward;
pub mod hook;
mod memhint;
pub mod pcap;
pub mod replay;
pub mod reply;
pub mod sysctl;
pub mod wire;
