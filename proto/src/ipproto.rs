//! IP protocol numbers and their names as `/etc/protocols` gives them (Debian netbase 6.4), the
//! one table behind both names nfc prints: nft's (`meta l4proto`, `ip protocol`, `ip6 nexthdr`,
//! through [`crate::catalog::INET_PROTO`], which adds nft's input-only aliases) and
//! iptables-save's (`-p`, through `nfr_ipt::save`; `nfr_ipt::parse` also reads the aliases of
//! `xtables_chain_protos`). Both tools ask `getprotobynumber`, so they print the same name for a
//! number; numbers without an entry print as digits. The `IPPROTO_*` constants name the numbers the
//! protocol links ([`crate::desc`]) and the engines use.

/// `/etc/protocols` in file order: one official name per number (aliases column left out).
///
/// Checked against the real tools in a private netns: for every number 1..=255, `iptables-legacy
/// -A INPUT -p N` then `iptables-legacy-save` prints exactly these names, and so does `nft list
/// ruleset` after `meta l4proto N` / `ip protocol N` (nft 1.0.6 prints `ip` for 0, the line
/// before `hopopt` in the file; nfc prints `hopopt`).
pub const IP_PROTOCOLS: [(&str, u8); 55] = [
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ipencap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("igp", 9),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("dccp", 33),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("idrp", 45),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("skip", 57),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("rspf", 73),
    ("vmtp", 81),
    ("eigrp", 88),
    ("ospf", 89),
    ("ax.25", 93),
    ("ipip", 94),
    ("etherip", 97),
    ("encap", 98),
    ("pim", 103),
    ("ipcomp", 108),
    ("vrrp", 112),
    ("l2tp", 115),
    ("isis", 124),
    ("sctp", 132),
    ("fc", 133),
    ("mobility-header", 135),
    ("udplite", 136),
    ("mpls-in-ip", 137),
    ("manet", 138),
    ("hip", 139),
    ("shim6", 140),
    ("wesp", 141),
    ("rohc", 142),
    ("ethernet", 143),
];

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IGMP: u8 = 2;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_DCCP: u8 = 33;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_NONE: u8 = 59;
pub const IPPROTO_DSTOPTS: u8 = 60;
pub const IPPROTO_COMP: u8 = 108;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_UDPLITE: u8 = 136;

/// `getprotobynumber(p)->p_name`: the name of protocol number `p`, if `/etc/protocols` has one.
pub fn name(p: u8) -> Option<&'static str> {
    IP_PROTOCOLS.iter().find(|(_, n)| *n == p).map(|(s, _)| *s)
}

/// `getprotobyname(s)->p_proto` for the official names (exact, lower case).
pub fn number(s: &str) -> Option<u8> {
    IP_PROTOCOLS.iter().find(|(n, _)| *n == s).map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_one_to_one() {
        for (i, (n, p)) in IP_PROTOCOLS.iter().enumerate() {
            assert_eq!(name(*p), Some(*n));
            assert_eq!(number(n), Some(*p));
            // file order is number order, no number twice
            if let Some((_, q)) = i.checked_sub(1).and_then(|j| IP_PROTOCOLS.get(j)) {
                assert!(q < p, "{n}");
            }
        }
        assert_eq!(name(6), Some("tcp"));
        assert_eq!(name(143), Some("ethernet"));
        assert_eq!(name(7), None);
        assert_eq!(name(255), None);
        assert_eq!(number("sctp"), Some(132));
        assert_eq!(number("SCTP"), None);
        assert_eq!(
            number("icmpv6"),
            None,
            "aliases belong to the tools, not here"
        );
    }
}
