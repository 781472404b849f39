//! The conntrack sysctls (`net.netfilter.nf_conntrack_*`) by their kernel names: what a user changes with
//! `sysctl -w` on a real host, applied to a [`Settings`] (`nfc run pcap --sysctl NAME=VALUE`), and listed with
//! their values (`sysctl -a` style). Names, units (seconds, booleans as 0/1) and ranges follow
//! `nf_conntrack_standalone.c`; every other setting keeps the kernel's default from [`Settings::default`].

use crate::ct::Settings;
use crate::ct::tcp::state as tcp;
use std::fmt;

/// Why a `NAME=VALUE` could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlError {
    /// Not `NAME=VALUE`.
    Syntax(String),
    /// No such conntrack sysctl.
    UnknownName(String),
    /// The value is not a number in the sysctl's range.
    BadValue {
        name: String,
        value: String,
        why: &'static str,
    },
}

impl fmt::Display for SysctlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysctlError::Syntax(s) => write!(f, "`{s}`: expected NAME=VALUE"),
            SysctlError::UnknownName(n) => {
                write!(
                    f,
                    "`{n}` is not a conntrack sysctl (known: {})",
                    names().join(", ")
                )
            }
            SysctlError::BadValue { name, value, why } => write!(f, "{name}={value}: {why}"),
        }
    }
}

impl std::error::Error for SysctlError {}

/// Where a sysctl lives in [`Settings`].
enum Slot<'a> {
    U32(&'a mut u32),
    U8(&'a mut u8),
    Bool(&'a mut bool),
}

/// A sysctl's place in [`Settings`].
type Access = for<'a> fn(&'a mut Settings) -> Slot<'a>;

/// Every sysctl, by its name under `net.netfilter.`, with its place in [`Settings`].
const SYSCTLS: &[(&str, Access)] = &[
    ("nf_conntrack_max", |s| Slot::U32(&mut s.max)),
    ("nf_conntrack_buckets", |s| Slot::U32(&mut s.buckets)),
    ("nf_conntrack_tcp_loose", |s| Slot::Bool(&mut s.tcp_loose)),
    ("nf_conntrack_tcp_be_liberal", |s| {
        Slot::Bool(&mut s.tcp_be_liberal)
    }),
    ("nf_conntrack_tcp_ignore_invalid_rst", |s| {
        Slot::Bool(&mut s.tcp_ignore_invalid_rst)
    }),
    ("nf_conntrack_tcp_max_retrans", |s| {
        Slot::U8(&mut s.tcp_max_retrans)
    }),
    ("nf_conntrack_checksum", |s| Slot::Bool(&mut s.checksum)),
    ("nf_conntrack_acct", |s| Slot::Bool(&mut s.acct)),
    ("nf_conntrack_events", |s| Slot::Bool(&mut s.events)),
    ("nf_conntrack_expect_max", |s| Slot::U32(&mut s.expect_max)),
    ("nf_conntrack_tcp_timeout_syn_sent", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::SYN_SENT as usize])
    }),
    ("nf_conntrack_tcp_timeout_syn_recv", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::SYN_RECV as usize])
    }),
    ("nf_conntrack_tcp_timeout_established", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::ESTABLISHED as usize])
    }),
    ("nf_conntrack_tcp_timeout_fin_wait", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::FIN_WAIT as usize])
    }),
    ("nf_conntrack_tcp_timeout_close_wait", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::CLOSE_WAIT as usize])
    }),
    ("nf_conntrack_tcp_timeout_last_ack", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::LAST_ACK as usize])
    }),
    ("nf_conntrack_tcp_timeout_time_wait", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::TIME_WAIT as usize])
    }),
    ("nf_conntrack_tcp_timeout_close", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::CLOSE as usize])
    }),
    ("nf_conntrack_tcp_timeout_max_retrans", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::RETRANS as usize])
    }),
    ("nf_conntrack_tcp_timeout_unacknowledged", |s| {
        Slot::U32(&mut s.tcp_timeouts[tcp::UNACK as usize])
    }),
    ("nf_conntrack_udp_timeout", |s| {
        Slot::U32(&mut s.udp_timeout)
    }),
    ("nf_conntrack_udp_timeout_stream", |s| {
        Slot::U32(&mut s.udp_timeout_stream)
    }),
    ("nf_conntrack_icmp_timeout", |s| {
        Slot::U32(&mut s.icmp_timeout)
    }),
    ("nf_conntrack_icmpv6_timeout", |s| {
        Slot::U32(&mut s.icmpv6_timeout)
    }),
    ("nf_conntrack_generic_timeout", |s| {
        Slot::U32(&mut s.generic_timeout)
    }),
    ("nf_conntrack_gre_timeout", |s| {
        Slot::U32(&mut s.gre_timeout)
    }),
    ("nf_conntrack_gre_timeout_stream", |s| {
        Slot::U32(&mut s.gre_timeout_stream)
    }),
];

/// The names `apply` knows, without the `net.netfilter.` prefix.
pub fn names() -> Vec<&'static str> {
    SYSCTLS.iter().map(|(n, _)| *n).collect()
}

/// Applies one `NAME=VALUE` (`net.netfilter.` prefix optional; `sysctl` also allows `/` for `.`).
pub fn apply(settings: &mut Settings, assignment: &str) -> Result<(), SysctlError> {
    let (name, value) = assignment
        .split_once('=')
        .ok_or_else(|| SysctlError::Syntax(assignment.to_string()))?;
    let (name, value) = (name.trim(), value.trim());
    let short = name.replace('/', ".");
    let short = short.strip_prefix("net.netfilter.").unwrap_or(&short);
    let (short, access) = SYSCTLS
        .iter()
        .find(|(n, _)| *n == short)
        .copied()
        .ok_or_else(|| SysctlError::UnknownName(name.to_string()))?;
    let bad = |why| SysctlError::BadValue {
        name: short.to_string(),
        value: value.to_string(),
        why,
    };
    let n: u64 = value
        .parse()
        .map_err(|_| bad("not a non-negative integer"))?;
    // nf_conntrack_hash_sysctl wants at least one bucket and caps it at 2^30; nfc caps it at 2^26
    // (the heads are allocated up front). The expectation table needs room for one.
    match short {
        "nf_conntrack_buckets" if !(1..=1 << 26).contains(&n) => {
            return Err(bad("buckets must be between 1 and 67108864"));
        }
        "nf_conntrack_expect_max" if n == 0 => {
            return Err(bad("nf_conntrack_expect_max must be at least 1"));
        }
        _ => {}
    }
    match access(settings) {
        Slot::U32(x) => *x = u32::try_from(n).map_err(|_| bad("larger than 2^32-1"))?,
        Slot::U8(x) => *x = u8::try_from(n).map_err(|_| bad("at most 255"))?,
        Slot::Bool(x) => {
            *x = match n {
                0 => false,
                1 => true,
                _ => return Err(bad("a boolean sysctl takes 0 or 1")),
            }
        }
    }
    Ok(())
}

/// Every sysctl with its value in `settings`, as `sysctl -a` prints them (`net.netfilter.NAME = VALUE`).
pub fn list(settings: &Settings) -> Vec<(String, u64)> {
    let mut s = settings.clone();
    SYSCTLS
        .iter()
        .map(|(n, access)| {
            let v = match access(&mut s) {
                Slot::U32(x) => u64::from(*x),
                Slot::U8(x) => u64::from(*x),
                Slot::Bool(x) => u64::from(*x),
            };
            (format!("net.netfilter.{n}"), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_defaults_are_listed() {
        let l = list(&Settings::default());
        let get = |n: &str| {
            l.iter()
                .find(|(k, _)| k == &format!("net.netfilter.{n}"))
                .map(|(_, v)| *v)
        };
        assert_eq!(get("nf_conntrack_tcp_timeout_established"), Some(432_000));
        assert_eq!(get("nf_conntrack_tcp_timeout_syn_sent"), Some(120));
        assert_eq!(get("nf_conntrack_tcp_timeout_time_wait"), Some(120));
        assert_eq!(get("nf_conntrack_tcp_timeout_max_retrans"), Some(300));
        assert_eq!(get("nf_conntrack_udp_timeout_stream"), Some(120));
        assert_eq!(get("nf_conntrack_tcp_loose"), Some(1));
        assert_eq!(get("nf_conntrack_tcp_be_liberal"), Some(0));
        assert_eq!(get("nf_conntrack_generic_timeout"), Some(600));
        assert_eq!(l.len(), SYSCTLS.len());
    }

    #[test]
    fn apply_sets_the_named_field() {
        let mut s = Settings::default();
        apply(&mut s, "net.netfilter.nf_conntrack_max=65536").unwrap();
        apply(&mut s, "nf_conntrack_tcp_be_liberal=1").unwrap();
        apply(&mut s, "net/netfilter/nf_conntrack_tcp_loose = 0").unwrap();
        apply(&mut s, "nf_conntrack_tcp_timeout_established=3600").unwrap();
        apply(&mut s, "nf_conntrack_udp_timeout=10").unwrap();
        assert_eq!(s.max, 65536);
        assert!(s.tcp_be_liberal);
        assert!(!s.tcp_loose);
        assert_eq!(s.tcp_timeouts[tcp::ESTABLISHED as usize], 3600);
        assert_eq!(s.udp_timeout, 10);
        // Everything else untouched.
        let d = Settings::default();
        assert_eq!(
            s.tcp_timeouts[tcp::SYN_SENT as usize],
            d.tcp_timeouts[tcp::SYN_SENT as usize]
        );
        assert_eq!(s.icmp_timeout, d.icmp_timeout);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut s = Settings::default();
        assert!(matches!(
            apply(&mut s, "nf_conntrack_max"),
            Err(SysctlError::Syntax(_))
        ));
        assert!(matches!(
            apply(&mut s, "nf_conntrack_maxx=1"),
            Err(SysctlError::UnknownName(_))
        ));
        for bad in [
            "nf_conntrack_max=-1",
            "nf_conntrack_max=99999999999",
            "nf_conntrack_tcp_loose=2",
            "nf_conntrack_buckets=0",
            "nf_conntrack_tcp_max_retrans=256",
            "nf_conntrack_udp_timeout=abc",
            "nf_conntrack_expect_max=0",
        ] {
            assert!(
                matches!(apply(&mut s, bad), Err(SysctlError::BadValue { .. })),
                "{bad}"
            );
        }
        assert_eq!(s, Settings::default());
    }
}
