//! Conntrack tuples (`struct nf_conntrack_tuple`): addresses, the per-protocol "ports" (TCP/UDP ports, ICMP id and
//! type/code, nothing for the generic tracker), l3 and l4 protocol numbers; plus `nf_ct_get_tuple` for a packet and
//! `nf_ct_invert_tuple` with the ICMP / ICMPv6 inverse-type maps.

use crate::wire::{be16, proto};
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One direction of a connection. For ICMP/ICMPv6 `sport` is the echo id and `dport` is `type << 8 | code`
/// (the layout of `vm::CtTuple`). IPv4 addresses occupy the first 4 bytes of `src`/`dst`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    /// `NFPROTO_IPV4` / `NFPROTO_IPV6`.
    pub l3: u8,
    /// `IPPROTO_*`.
    pub l4: u8,
}

/// ICMP types that have an inverse (`invmap` in nf_conntrack_proto_icmp.c).
pub fn icmp_inverse(t: u8) -> Option<u8> {
    match t {
        8 => Some(0),
        0 => Some(8),
        13 => Some(14),
        14 => Some(13),
        15 => Some(16),
        16 => Some(15),
        17 => Some(18),
        18 => Some(17),
        _ => None,
    }
}

/// ICMPv6 types that have an inverse (echo and node information).
pub fn icmpv6_inverse(t: u8) -> Option<u8> {
    match t {
        128 => Some(129),
        129 => Some(128),
        139 => Some(140),
        140 => Some(139),
        _ => None,
    }
}

/// Protocols with a port-based tuple (`nf_ct_get_tuple_ports`).
pub fn has_ports(l4: u8) -> bool {
    matches!(
        l4,
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP | 33
    )
}

impl Tuple {
    pub fn icmp_type(&self) -> u8 {
        (self.dport >> 8) as u8
    }

    pub fn icmp_code(&self) -> u8 {
        self.dport as u8
    }

    /// `nf_ct_invert_tuple`: `None` for an ICMP type without an inverse.
    #[inline]
    pub fn invert(&self) -> Option<Tuple> {
        let mut t = Tuple {
            src: self.dst,
            dst: self.src,
            l3: self.l3,
            l4: self.l4,
            sport: 0,
            dport: 0,
        };
        match self.l4 {
            proto::ICMP if self.l3 == NFPROTO_IPV4 => {
                t.sport = self.sport;
                t.dport =
                    u16::from(icmp_inverse(self.icmp_type())?) << 8 | u16::from(self.icmp_code());
            }
            proto::ICMPV6 if self.l3 == NFPROTO_IPV6 => {
                t.sport = self.sport;
                t.dport =
                    u16::from(icmpv6_inverse(self.icmp_type())?) << 8 | u16::from(self.icmp_code());
            }
            l4 if has_ports(l4) || l4 == proto::GRE => {
                t.sport = self.dport;
                t.dport = self.sport;
            }
            _ => {}
        }
        Some(t)
    }

    /// Builds the tuple of an IP datagram `l3` whose transport header is at `thoff` with protocol `l4`
    /// (`nf_ct_get_tuple`). `None` if the transport header is too short for the tuple.
    pub fn from_packet(l3: &[u8], nfproto: u8, l4: u8, thoff: usize) -> Option<Tuple> {
        let mut t = Tuple {
            l3: nfproto,
            l4,
            ..Default::default()
        };
        if nfproto == NFPROTO_IPV4 {
            t.src[..4].copy_from_slice(l3.get(12..16)?);
            t.dst[..4].copy_from_slice(l3.get(16..20)?);
        } else {
            t.src.copy_from_slice(l3.get(8..24)?);
            t.dst.copy_from_slice(l3.get(24..40)?);
        }
        let th = l3.get(thoff..).unwrap_or(&[]);
        match l4 {
            proto::ICMP | proto::ICMPV6 => {
                let h = th.get(..8)?;
                t.dport = be16(h, 0);
                t.sport = be16(h, 4);
            }
            l4 if has_ports(l4) => {
                let h = th.get(..4)?;
                t.sport = be16(h, 0);
                t.dport = be16(h, 2);
            }
            // gre_pkt_to_tuple: GREv1 (PPTP) keys on the call id; anything else behaves like generic.
            proto::GRE if th.len() >= 8 && th.get(1).is_some_and(|f| f & 7 == 1) => {
                if be16(th, 2) != 0x880b {
                    return None;
                }
                t.dport = be16(th, 6);
            }
            _ => {}
        }
        Some(t)
    }

    /// Protocol name as conntrack-tools prints it.
    pub fn proto_name(&self) -> &'static str {
        match self.l4 {
            proto::TCP => "tcp",
            proto::UDP => "udp",
            proto::ICMP => "icmp",
            proto::ICMPV6 => "icmpv6",
            proto::UDPLITE => "udplite",
            proto::SCTP => "sctp",
            proto::GRE => "gre",
            33 => "dccp",
            _ => "unknown",
        }
    }

    pub fn fmt_addr(&self, a: &[u8; 16]) -> String {
        if self.l3 == NFPROTO_IPV4 {
            Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        } else {
            Ipv6Addr::from(*a).to_string()
        }
    }

    /// `src=.. dst=.. sport=.. dport=..` (or `type= code= id=`), as in `conntrack -L`.
    pub fn fmt_conntrack(&self) -> String {
        let mut s = format!(
            "src={} dst={}",
            self.fmt_addr(&self.src),
            self.fmt_addr(&self.dst)
        );
        match self.l4 {
            proto::ICMP | proto::ICMPV6 => {
                s.push_str(&format!(
                    " type={} code={} id={}",
                    self.icmp_type(),
                    self.icmp_code(),
                    self.sport
                ));
            }
            l4 if has_ports(l4) => {
                s.push_str(&format!(" sport={} dport={}", self.sport, self.dport))
            }
            proto::GRE => s.push_str(&format!(
                " srckey=0x{:x} dstkey=0x{:x}",
                self.sport, self.dport
            )),
            _ => {}
        }
        s
    }

    /// Copy into the engines' `CtTuple`.
    pub fn to_vm(&self) -> nfr_vm::CtTuple {
        nfr_vm::CtTuple {
            src: self.src,
            dst: self.dst,
            src_port: self.sport,
            dst_port: self.dport,
        }
    }

    /// `nf_ct_invert_tuple(self) == Some(*t)`, without building the inverse (the reply-direction test of a
    /// lookup).
    #[inline]
    pub fn is_inverse_of(&self, t: &Tuple) -> bool {
        if self.l3 != t.l3 || self.l4 != t.l4 || self.src != t.dst || self.dst != t.src {
            return false;
        }
        match self.l4 {
            proto::ICMP if self.l3 == NFPROTO_IPV4 => {
                self.sport == t.sport
                    && self.icmp_code() == t.icmp_code()
                    && icmp_inverse(self.icmp_type()) == Some(t.icmp_type())
            }
            proto::ICMPV6 if self.l3 == NFPROTO_IPV6 => {
                self.sport == t.sport
                    && self.icmp_code() == t.icmp_code()
                    && icmpv6_inverse(self.icmp_type()) == Some(t.icmp_type())
            }
            l4 if has_ports(l4) || l4 == proto::GRE => {
                self.sport == t.dport && self.dport == t.sport
            }
            _ => t.sport == 0 && t.dport == 0,
        }
    }

    /// `self == t`, as a few word compares (the derived `==` compares the address arrays bytewise).
    #[inline(always)]
    pub fn key_eq(&self, t: &Tuple) -> bool {
        let (a, b) = (words(&self.src), words(&t.src));
        let (c, d) = (words(&self.dst), words(&t.dst));
        let m = |t: &Tuple| {
            u64::from(t.sport)
                | u64::from(t.dport) << 16
                | u64::from(t.l3) << 32
                | u64::from(t.l4) << 40
        };
        ((a.0 ^ b.0) | (a.1 ^ b.1) | (c.0 ^ d.0) | (c.1 ^ d.1) | (m(self) ^ m(t))) == 0
    }

    /// Whether an entry whose original tuple is `self` is reached by `t` in direction `dir` (0: `t` is the
    /// original tuple, 1: its inverse), with word compares where the inverse is a plain swap.
    #[inline(always)]
    pub fn matches_dir(&self, dir: usize, t: &Tuple) -> bool {
        if dir == 0 {
            self.key_eq(t)
        } else if has_ports(t.l4) || t.l4 == proto::GRE {
            self.key_eq_swapped(t)
        } else {
            self.is_inverse_of(t)
        }
    }

    /// `self.is_inverse_of(t)` when `t` is a port protocol's tuple (TCP, UDP, ...): addresses and ports swapped,
    /// the same protocols. (A `self` of another protocol then differs in `l4`.)
    #[inline(always)]
    pub fn key_eq_swapped(&self, t: &Tuple) -> bool {
        let (a, b) = (words(&self.src), words(&t.dst));
        let (c, d) = (words(&self.dst), words(&t.src));
        let m = |s: u16, d: u16, t: &Tuple| {
            u64::from(s) | u64::from(d) << 16 | u64::from(t.l3) << 32 | u64::from(t.l4) << 40
        };
        ((a.0 ^ b.0)
            | (a.1 ^ b.1)
            | (c.0 ^ d.0)
            | (c.1 ^ d.1)
            | (m(self.sport, self.dport, self) ^ m(t.dport, t.sport, t)))
            == 0
    }

    /// [`Self::hash`] of an IPv4 tuple, or (`reply`) of its reply direction for a protocol whose inverse swaps
    /// addresses and ports (TCP, UDP, ...; see [`has_ports`]).
    #[inline(always)]
    pub fn hash_v4(&self, zone: u16, seed: u64, reply: bool) -> u32 {
        let v4 = |a: &[u8; 16]| u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let (src, dst, sport, dport) = if reply {
            (v4(&self.dst), v4(&self.src), self.dport, self.sport)
        } else {
            (v4(&self.src), v4(&self.dst), self.sport, self.dport)
        };
        hash_v4(src, dst, sport, dport, zone, self.l4, seed)
    }

    /// Hash over the tuple and zone, seeded. The kernel uses siphash with a boot-time random seed; this is a
    /// cheaper keyed hash, folded 64x64->128 multiplies (the foldhash / wyhash mixer) over the seed
    /// ([`super::Settings::hash_seed`]). IPv4 tuples only carry 4 address bytes, so they hash one word
    /// ([`hash_v4`]).
    #[inline(always)]
    pub fn hash(&self, zone: u16, seed: u64) -> u32 {
        if self.l3 == NFPROTO_IPV4 {
            return self.hash_v4(zone, seed, false);
        }
        let word = |a: &[u8; 16], i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&a[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let meta = u64::from(self.sport) << 48
            | u64::from(self.dport) << 32
            | u64::from(zone) << 16
            | u64::from(self.l3) << 8
            | u64::from(self.l4);
        let h = fold_mul(word(&self.src, 0) ^ seed, word(&self.src, 8) ^ K1);
        let h = fold_mul(h ^ word(&self.dst, 0), word(&self.dst, 8) ^ K2);
        let h = h ^ meta.rotate_left(17);
        let h = fold_mul(h ^ K3, seed ^ K2);
        (h >> 32) as u32 ^ h as u32
    }
}

/// [`Tuple::hash`] of an IPv4 tuple from its parts (addresses as little-endian reads of their 4 bytes), for
/// the per-packet path that never builds a `Tuple`.
#[inline(always)]
pub fn hash_v4(src: u32, dst: u32, sport: u16, dport: u16, zone: u16, l4: u8, seed: u64) -> u32 {
    let meta = u64::from(sport) << 48
        | u64::from(dport) << 32
        | u64::from(zone) << 16
        | u64::from(NFPROTO_IPV4) << 8
        | u64::from(l4);
    let a = u64::from(src) << 32 | u64::from(dst);
    let h = fold_mul(a ^ seed, meta ^ K1);
    let h = fold_mul(h ^ K3, seed ^ K2);
    (h >> 32) as u32 ^ h as u32
}

const K1: u64 = 0x243f_6a88_85a3_08d3;
const K2: u64 = 0x1319_8a2e_0370_7344;
const K3: u64 = 0xa409_3822_299f_31d0;

/// An address as two native-endian words.
#[inline(always)]
fn words(a: &[u8; 16]) -> (u64, u64) {
    let (lo, hi) = a.split_at(8);
    let lo: [u8; 8] = lo.try_into().unwrap_or_default();
    let hi: [u8; 8] = hi.try_into().unwrap_or_default();
    (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
}

/// 64x64 -> 128 multiply, high half xor low half.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p >> 64) as u64 ^ p as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut x = [0; 16];
        x[..4].copy_from_slice(&a);
        x
    }

    #[test]
    fn invert_tcp_and_icmp() {
        let t = Tuple {
            src: v4([1, 2, 3, 4]),
            dst: v4([5, 6, 7, 8]),
            sport: 1000,
            dport: 80,
            l3: 2,
            l4: 6,
        };
        let r = t.invert().unwrap();
        assert_eq!((r.src, r.dst, r.sport, r.dport), (t.dst, t.src, 80, 1000));
        assert_eq!(r.invert().unwrap(), t);
        let echo = Tuple {
            src: v4([1, 2, 3, 4]),
            dst: v4([5, 6, 7, 8]),
            sport: 77,
            dport: 8 << 8,
            l3: 2,
            l4: 1,
        };
        let er = echo.invert().unwrap();
        assert_eq!((er.icmp_type(), er.sport), (0, 77));
        let unreach = Tuple {
            dport: 3 << 8 | 1,
            ..echo
        };
        assert_eq!(unreach.invert(), None);
        let v6 = Tuple {
            l3: 10,
            l4: 58,
            dport: 128 << 8,
            ..Default::default()
        };
        assert_eq!(v6.invert().unwrap().icmp_type(), 129);
        let gre = Tuple {
            l4: 47,
            sport: 0,
            dport: 9,
            ..t
        };
        let gi = gre.invert().unwrap();
        assert_eq!((gi.src, gi.sport, gi.dport), (t.dst, 9, 0));
        assert_eq!(
            gre.fmt_conntrack(),
            "src=1.2.3.4 dst=5.6.7.8 srckey=0x0 dstkey=0x9"
        );
    }

    /// `hash_v4` (what the per-packet path uses) is exactly `Tuple::hash` of the IPv4 tuple, which linked the
    /// entries; and it is the pre-`hash_v4` formula (two address words folded with the ports / zone / protocols),
    /// so bucket choices (early drop's scan) did not move.
    #[test]
    fn hash_v4_matches_tuple_hash() {
        let seed = 0x6a09_e667_f3bc_c908;
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = Tuple {
                src: v4((x as u32).to_be_bytes()),
                dst: v4(((x >> 32) as u32).to_be_bytes()),
                sport: (x >> 7) as u16,
                dport: (x >> 23) as u16,
                l3: 2,
                l4: [6, 17, 1, 47][(x % 4) as usize],
            };
            let zone = (x >> 50) as u16 & 3;
            let le = |a: &[u8; 16]| u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
            let h = hash_v4(le(&t.src), le(&t.dst), t.sport, t.dport, zone, t.l4, seed);
            assert_eq!(h, t.hash(zone, seed));
            // The earlier formula, written out.
            let meta = u64::from(t.sport) << 48
                | u64::from(t.dport) << 32
                | u64::from(zone) << 16
                | 2 << 8
                | u64::from(t.l4);
            let word =
                |a: &[u8; 16]| u64::from_le_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
            let a = word(&t.src) << 32 | (word(&t.dst) & 0xffff_ffff);
            let old = fold_mul(fold_mul(a ^ seed, meta ^ K1) ^ K3, seed ^ K2);
            assert_eq!(h, (old >> 32) as u32 ^ old as u32);
        }
    }

    #[test]
    fn formats_like_conntrack_tools() {
        let t = Tuple {
            src: v4([10, 0, 0, 1]),
            dst: v4([74, 125, 225, 99]),
            sport: 34844,
            dport: 8 << 8,
            l3: 2,
            l4: 1,
        };
        assert_eq!(
            t.fmt_conntrack(),
            "src=10.0.0.1 dst=74.125.225.99 type=8 code=0 id=34844"
        );
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[15] = 1;
        let t6 = Tuple {
            src: a,
            dst: a,
            sport: 1,
            dport: 2,
            l3: 10,
            l4: 17,
        };
        assert_eq!(
            t6.fmt_conntrack(),
            "src=2001::1 dst=2001::1 sport=1 dport=2"
        );
    }
}
