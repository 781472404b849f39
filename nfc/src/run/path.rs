//! The path model: which hooks a captured packet passes and on which devices.
//!
//! * `--path input`: every packet PREROUTING -> INPUT, every destination local except multicast and IPv6
//!   link-local (the kernel harness behind `shared/corpus/ct-expected`).
//! * `--path auto` (default) with `--local PREFIX...`: a packet to a local address is received
//!   (PREROUTING -> INPUT), one from a local address is sent (OUTPUT -> POSTROUTING), all others are forwarded
//!   (PREROUTING -> FORWARD -> POSTROUTING). Without `--local` the host is a router that forwards everything.
//! * Devices, first that applies: `--iif`/`--oif` name them for every packet; else the capture's interface
//!   (pcapng `if_name`, per section) is the input device of a packet entering PREROUTING and the output device
//!   of a packet leaving through OUTPUT (a forwarded packet's output device is not in the capture); else
//!   `--iface NAME=PREFIX` routes: the input device is the one whose prefix holds the source (longest match),
//!   the output device the one holding the destination. Received packets have no output device, sent ones no
//!   input device. Names longer than 15 bytes are cut to 15 (IFNAMSIZ). `lo` is a loopback device
//!   (`meta iiftype loopback`), every other device an Ethernet device.
//! * Interface addresses: an `--iface NAME=ADDRESS/LEN` whose address has host bits (`eth0=198.51.100.1/24`,
//!   as `ip addr add` takes it) also gives NAME that address, which the host owns (it counts as `--local`):
//!   masquerade takes the output interface's, redirect the input interface's ([`IfAddrs`]).
//! * Device indexes (`meta iif`/`oif`): `lo` is 1 (as the checker resolves `iif lo`); the other names get 2, 3,
//!   ... in the order `--iface`, `--iif`, `--oif`, then capture interfaces as they first appear ([`DevTable`],
//!   kept by the thread that reads the capture, so indexes do not depend on `--threads`).

use std::net::IpAddr;

use ipnet::IpNet;
use nfr_runtime::hook::{IcmpSource, IfAddr, IfAddrs, Route};
use nfr_runtime::replay::{Devices, Direction, anyip_route, device_type};
use nfr_vm::pkt::ifname;

use super::{Args, PathArg};

/// An address prefix (`192.0.2.0/24`, `2001:db8::/32`, or one address), with its network and mask as
/// numbers for the per-packet test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    net: IpNet,
    bits: u128,
    mask: u128,
}

impl Prefix {
    pub fn parse(s: &str) -> anyhow::Result<Prefix> {
        let t = s.trim();
        if t.contains('/') {
            let net: IpNet = t.parse().map_err(|_| {
                anyhow::anyhow!(
                    "`{s}` is not a prefix (address/length, the length at most 32 or 128)"
                )
            })?;
            return Ok(Prefix::of(net));
        }
        let ip: IpAddr = t
            .parse()
            .map_err(|_| anyhow::anyhow!("`{s}` is not an address or prefix"))?;
        Ok(Prefix::of(IpNet::from(ip)))
    }

    fn of(net: IpNet) -> Prefix {
        let (bits, mask) = match net {
            IpNet::V4(n) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.netmask())),
            ),
            IpNet::V6(n) => (u128::from(n.network()), u128::from(n.netmask())),
        };
        Prefix { net, bits, mask }
    }

    /// Whether the address `a` (4 or 16 bytes) is in the prefix.
    fn contains(&self, a: &[u8]) -> bool {
        let a = match (self.net, a) {
            (IpNet::V4(_), &[a, b, c, d]) => u128::from(u32::from_be_bytes([a, b, c, d])),
            (IpNet::V6(_), a) => match <[u8; 16]>::try_from(a) {
                Ok(a) => u128::from_be_bytes(a),
                Err(_) => return false,
            },
            _ => return false,
        };
        a & self.mask == self.bits
    }

    fn len(&self) -> u8 {
        self.net.prefix_len()
    }

    /// The address of an interface given as `ADDRESS/LEN` with host bits set (`ip addr add` style).
    fn host_address(&self) -> Option<IpAddr> {
        (self.net.addr() != self.net.network()).then(|| self.net.addr())
    }
}

/// An address as the runtime holds it: 16 bytes, IPv4 in the first 4, and its family.
fn addr16(a: IpAddr) -> ([u8; 16], u8) {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, nfr_vm::pkt::NFPROTO_IPV4)
        }
        IpAddr::V6(a) => (a.octets(), nfr_vm::pkt::NFPROTO_IPV6),
    }
}

/// Source and destination addresses of an IP datagram (4 or 16 bytes each).
pub fn addrs(l3: &[u8]) -> Option<(&[u8], &[u8])> {
    match l3.first()? >> 4 {
        4 => Some((l3.get(12..16)?, l3.get(16..20)?)),
        6 => Some((l3.get(8..24)?, l3.get(24..40)?)),
        _ => None,
    }
}

/// A device a frame was captured on: (ifindex, name as the kernel stores it).
pub type CapDev = (u32, [u8; 16]);

/// Device names to ifindexes: index = position + 1, `lo` first.
#[derive(Clone, Debug)]
pub struct DevTable {
    names: Vec<[u8; 16]>,
}

impl DevTable {
    fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> DevTable {
        let mut t = DevTable { names: Vec::new() };
        t.intern("lo");
        for n in names {
            t.intern(n);
        }
        t
    }

    /// The device called `name` (cut to 15 bytes), added when new.
    pub fn intern(&mut self, name: &str) -> CapDev {
        let n = ifname(name);
        let i = match self.names.iter().position(|x| *x == n) {
            Some(i) => i,
            None => {
                self.names.push(n);
                self.names.len() - 1
            }
        };
        (i as u32 + 1, n)
    }

    fn get(&self, name: &str) -> CapDev {
        let n = ifname(name);
        let i = self.names.iter().position(|x| *x == n).unwrap_or(0);
        (i as u32 + 1, n)
    }
}

#[derive(Clone, Debug)]
pub struct PathModel {
    input_only: bool,
    local: Vec<Prefix>,
    /// `--iface` routes: name, prefix, and the device (index, name) they name.
    ifaces: Vec<(String, Prefix, CapDev)>,
    /// `--iif`, `--oif`.
    iif: Option<CapDev>,
    oif: Option<CapDev>,
    devs: DevTable,
    /// The devices of each way (forwarded, received, sent) for a frame without a capture device, when no
    /// `--iface` route makes them depend on the addresses: [`Self::devices`] once, not per packet.
    fixed: Option<[Devices; 3]>,
}

impl PathModel {
    pub fn from_args(a: &Args) -> anyhow::Result<PathModel> {
        let local = a
            .local
            .iter()
            .map(|s| Prefix::parse(s).map_err(|e| anyhow::anyhow!("--local: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ifaces = a
            .ifaces
            .iter()
            .map(|s| {
                let (n, p) = s
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--iface `{s}`: expected NAME=PREFIX"))?;
                if n.is_empty() || n.len() > 15 {
                    anyhow::bail!("--iface `{s}`: interface names have 1 to 15 characters");
                }
                Ok((
                    n.to_string(),
                    Prefix::parse(p).map_err(|e| anyhow::anyhow!("--iface: {e}"))?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for n in [&a.iif, &a.oif].into_iter().flatten() {
            if n.is_empty() || n.len() > 15 {
                anyhow::bail!("interface name `{n}`: 1 to 15 characters");
            }
        }
        let devs = DevTable::new(
            ifaces
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(a.iif.as_deref())
                .chain(a.oif.as_deref()),
        );
        // The interfaces' own addresses are the host's.
        let mut local = local;
        local.extend(
            ifaces
                .iter()
                .filter_map(|(_, p)| p.host_address())
                .map(|ip| Prefix::of(IpNet::from(ip))),
        );
        let ifaces = ifaces
            .into_iter()
            .map(|(n, p)| {
                let d = devs.get(&n);
                (n, p, d)
            })
            .collect();
        let mut m = PathModel {
            input_only: a.path == PathArg::Input,
            local,
            ifaces,
            iif: a.iif.as_deref().map(|n| devs.get(n)),
            oif: a.oif.as_deref().map(|n| devs.get(n)),
            devs,
            fixed: None,
        };
        if m.ifaces.is_empty() {
            m.fixed = Some(WAYS.map(|d| m.devices(d, None, &[], &[])));
        }
        Ok(m)
    }

    /// The source of the host's ICMP errors about packets not addressed to it when their way out has no
    /// address: the first `--local` host address (a /32 or /128 prefix) of each family; IPv4 falls back to
    /// `INADDR_DUMMY` as the kernel does for a host without addresses, IPv6 to none.
    pub fn icmp_source(&self) -> IcmpSource {
        let mut s = IcmpSource::default();
        let host = |p: &&Prefix| p.net.prefix_len() == p.net.max_prefix_len();
        if let Some(a) = self
            .local
            .iter()
            .filter(host)
            .find_map(|p| match p.net.addr() {
                IpAddr::V4(a) => Some(a.octets()),
                IpAddr::V6(_) => None,
            })
        {
            s.v4 = a;
        }
        s.v6 = self
            .local
            .iter()
            .filter(host)
            .find_map(|p| match p.net.addr() {
                IpAddr::V6(a) => Some(a.octets()),
                IpAddr::V4(_) => None,
            });
        s
    }

    /// The interfaces' addresses (`--iface NAME=ADDRESS/LEN`, in the order given) and the host's other
    /// addresses (the `--local` host addresses), for masquerade and redirect.
    pub fn ifaddrs(&self) -> IfAddrs {
        let mut r = IfAddrs::default();
        for (_, p, dev) in &self.ifaces {
            if let Some(ip) = p.host_address() {
                let (addr, nfproto) = addr16(ip);
                r.addrs.push(IfAddr {
                    ifindex: dev.0,
                    addr,
                    nfproto,
                    prefix_len: p.len(),
                });
            }
        }
        let host = |p: &&Prefix| p.net.prefix_len() == p.net.max_prefix_len();
        r.host = self
            .local
            .iter()
            .filter(host)
            .map(|p| {
                let (a, f) = addr16(p.net.addr());
                (f, a)
            })
            .filter(|(f, a)| !r.addrs.iter().any(|x| x.nfproto == *f && x.addr == *a))
            .collect();
        r
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        if self.input_only {
            return "every packet PREROUTING -> INPUT (--path input)".to_string();
        }
        if self.local.is_empty() {
            "router: every packet PREROUTING -> FORWARD -> POSTROUTING (no --local)".to_string()
        } else {
            "to --local: PREROUTING -> INPUT; from --local: OUTPUT -> POSTROUTING; others: PREROUTING -> FORWARD -> POSTROUTING".to_string()
        }
    }

    /// The device table the capture reader extends with the capture's interface names.
    pub fn dev_table(&self) -> DevTable {
        self.devs.clone()
    }

    fn route_dev(&self, a: &[u8]) -> Option<CapDev> {
        self.ifaces
            .iter()
            .enumerate()
            .filter(|(_, (_, p, _))| p.contains(a))
            .max_by_key(|(i, (_, p, _))| (p.len(), usize::MAX - i))
            .map(|(_, (_, _, d))| *d)
    }

    /// `fixed` (--iif/--oif) wins, then the capture's device, then the --iface routes.
    fn dev(&self, fixed: Option<CapDev>, cap: Option<&CapDev>, a: &[u8]) -> CapDev {
        if let Some(d) = fixed {
            return d;
        }
        if let Some(c) = cap {
            return *c;
        }
        self.route_dev(a).unwrap_or((0, [0; 16]))
    }

    /// Direction and devices of one datagram; `cap` is the device the frame was captured on (pcapng
    /// `if_name`), the input device of a received packet and the output device of a sent one.
    pub fn decide(&self, l3: &[u8], cap: Option<&CapDev>) -> (Direction, Devices) {
        let (src, dst) = addrs(l3).unwrap_or((&[], &[]));
        let dir = if self.input_only {
            Direction::Receive(anyip_route(l3))
        } else if self.local.iter().any(|p| p.contains(dst)) {
            Direction::Receive(Route::Local)
        } else if self.local.iter().any(|p| p.contains(src)) {
            Direction::Send
        } else {
            Direction::Receive(Route::Forward)
        };
        let d = match (&self.fixed, cap) {
            (Some(f), None) => f[way(dir)],
            _ => self.devices(dir, cap, src, dst),
        };
        (dir, d)
    }

    /// The devices of a packet going `dir` from `src` to `dst`, captured on `cap`.
    fn devices(&self, dir: Direction, cap: Option<&CapDev>, src: &[u8], dst: &[u8]) -> Devices {
        let mut d = Devices::default();
        let (rx, tx) = match dir {
            Direction::Receive(Route::Forward) => (true, true),
            Direction::Receive(_) => (true, false),
            Direction::Send => (false, true),
        };
        if rx {
            (d.iif, d.iifname) = self.dev(self.iif, cap, src);
            d.iiftype = device_type(&d.iifname);
        }
        if tx {
            // A forwarded packet was captured where it came in: the capture does not name its way out.
            let cap = if rx { None } else { cap };
            (d.oif, d.oifname) = self.dev(self.oif, cap, dst);
            d.oiftype = device_type(&d.oifname);
        }
        d
    }
}

/// One direction of each way a packet's devices are chosen ([`PathModel::devices`]): forwarded, received, sent.
const WAYS: [Direction; 3] = [
    Direction::Receive(Route::Forward),
    Direction::Receive(Route::Local),
    Direction::Send,
];

/// The index of `dir`'s way in [`WAYS`].
fn way(dir: Direction) -> usize {
    match dir {
        Direction::Receive(Route::Forward) => 0,
        Direction::Receive(_) => 1,
        Direction::Send => 2,
    }
}

/// Shard of a datagram: a symmetric hash of the address pair of the flow it belongs to, so both directions of
/// a flow, an FTP data connection with its control connection, the fragments of a datagram, and an ICMP error
/// with the flow it quotes (whoever sent it) land on the same worker. Non-IP frames go to shard 0.
pub fn shard(l3: &[u8], n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    use nfr_runtime::wire::proto::{ICMP, TCP, UDP};
    // Only ICMP errors quote a datagram: IPv4 of another protocol and IPv6 straight to TCP or UDP are their own
    // flow without the look inside.
    let quotes = match l3.first().map(|b| b >> 4) {
        Some(4) => l3.get(9) == Some(&ICMP),
        Some(6) => !matches!(l3.get(6), Some(&(TCP | UDP))),
        _ => false,
    };
    let flow = match quotes {
        true => nfr_runtime::ct::quoted_datagram(l3).unwrap_or(l3),
        false => l3,
    };
    let Some((s, d)) = addrs(flow) else { return 0 };
    let word = |a: &[u8]| match (<[u8; 4]>::try_from(a), <[u8; 16]>::try_from(a)) {
        (Ok(v4), _) => u128::from(u32::from_be_bytes(v4)),
        (_, Ok(v6)) => u128::from_be_bytes(v6),
        _ => 0,
    };
    shard_pair(word(s), word(d), n)
}

/// [`shard`] of a flow's address pair, as numbers (an IPv4 address in the low 32 bits): the ordered pair mixed a
/// 64-bit word at a time (stable across runs and platforms), its high bits scaled to 0..n.
#[inline]
pub fn shard_pair(s: u128, d: u128, n: usize) -> usize {
    let (lo, hi) = if s <= d { (s, d) } else { (d, s) };
    let mut h = 0u64;
    for w in [lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64] {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 32;
    }
    ((u128::from(h) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(extra: &[&str]) -> PathModel {
        let mut argv = vec!["r.nfr", "c.pcap"];
        argv.extend_from_slice(extra);
        PathModel::from_args(&super::super::test_args(&argv)).unwrap()
    }

    /// The devices fixed once per way are those the per-packet choice gives, for every way, with and without
    /// `--iif`/`--oif`; `--iface` routes and capture devices keep the per-packet choice.
    #[test]
    fn fixed_devices_are_the_chosen_ones() {
        let v4 = |s: [u8; 4], d: [u8; 4]| {
            let mut p = vec![0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0];
            p.extend_from_slice(&s);
            p.extend_from_slice(&d);
            p
        };
        let pkts = [
            v4([10, 64, 0, 7], [10, 0, 0, 1]),
            v4([10, 0, 0, 1], [10, 64, 0, 7]),
            v4([10, 64, 0, 7], [192, 0, 2, 9]),
            vec![0x60; 4],
        ];
        let local = ["--local", "10.0.0.1"];
        for extra in [
            &local[..],
            &["--local", "10.0.0.1", "--iif", "eth0", "--oif", "lo"][..],
            &["--local", "10.0.0.1", "--iif", "eth1"][..],
            &["--path", "input", "--iif", "eth0"][..],
        ] {
            let m = model(extra);
            assert!(m.fixed.is_some(), "{extra:?}");
            for p in &pkts {
                let (dir, d) = m.decide(p, None);
                let (s, t) = addrs(p).unwrap_or((&[], &[]));
                assert_eq!(d, m.devices(dir, None, s, t), "{extra:?} {p:?}");
            }
        }
        let m = model(&["--local", "10.0.0.1", "--iface", "eth0=10.0.0.0/8"]);
        assert!(m.fixed.is_none());
        let (_, d) = m.decide(&pkts[0], None);
        assert_eq!(&d.iifname[..5], b"eth0\0");
    }

    #[test]
    fn prefixes() {
        let p = Prefix::parse("192.168.1.0/24").unwrap();
        assert!(p.contains(&[192, 168, 1, 77]));
        assert!(!p.contains(&[192, 168, 2, 1]));
        let p = Prefix::parse("10.0.0.0/9").unwrap();
        assert!(p.contains(&[10, 127, 0, 1]));
        assert!(!p.contains(&[10, 128, 0, 1]));
        assert!(Prefix::parse("0.0.0.0/0").unwrap().contains(&[1, 2, 3, 4]));
        assert!(!Prefix::parse("::/0").unwrap().contains(&[1, 2, 3, 4]));
        let p = Prefix::parse("2001:db8::/33").unwrap();
        let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert!(p.contains(&a("2001:db8:7fff::1")));
        assert!(!p.contains(&a("2001:db8:8000::1")));
        assert!(!p.contains(&[32, 1, 13, 184]));
        assert!(Prefix::parse("10.0.0.0/33").is_err());
        assert!(Prefix::parse("host").is_err());
    }

    #[test]
    fn symmetric_shards() {
        let mut a = vec![0x45u8; 20];
        a[12..16].copy_from_slice(&[10, 0, 0, 1]);
        a[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let mut b = a.clone();
        b[12..16].copy_from_slice(&[10, 0, 0, 2]);
        b[16..20].copy_from_slice(&[10, 0, 0, 1]);
        for n in 2..8 {
            assert_eq!(shard(&a, n), shard(&b, n));
        }
        assert_eq!(shard(&[], 4), 0);
        // A router's time exceeded about a->b, sent to a from elsewhere, goes with the flow.
        use nfr_runtime::wire::build;
        let q = build::udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            5,
            53,
            b"q",
        );
        let e = build::icmp(
            "172.16.9.9".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            11,
            0,
            [0; 4],
            &q,
        );
        for n in 2..8 {
            assert_eq!(shard(&e, n), shard(&a, n));
        }
        // ICMPv6 too.
        let (c6, s6) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8:1::2".parse().unwrap(),
        );
        let q6 = build::tcp(c6, s6, 4000, 80, 1, 0, 0x02, 100, &[], &[]);
        let e6 = build::icmp("2001:db8:9::9".parse().unwrap(), c6, 1, 0, [0; 4], &q6);
        let r6 = build::tcp(s6, c6, 80, 4000, 1, 2, 0x12, 100, &[], &[]);
        for n in 2..8 {
            assert_eq!(shard(&e6, n), shard(&r6, n));
        }
    }

    /// Clients of one host, numbered in a row (a gateway's workload), fill every shard about evenly, for IPv4 and
    /// IPv6.
    #[test]
    fn shards_spread_evenly() {
        for v6 in [false, true] {
            for n in 2..6 {
                let mut count = vec![0u32; n];
                for i in 0..10_000u32 {
                    let mut l3 = vec![0u8; 40];
                    if v6 {
                        l3[0] = 0x60;
                        l3[6] = 6;
                        l3[8..10].copy_from_slice(&[0x20, 0x01]);
                        l3[20..24].copy_from_slice(&i.to_be_bytes());
                        l3[24..26].copy_from_slice(&[0x20, 0x01]);
                        l3[39] = 1;
                    } else {
                        l3[0] = 0x45;
                        l3[9] = 6;
                        l3[12..16].copy_from_slice(&(0x0a40_0000 + i).to_be_bytes());
                        l3[16..20].copy_from_slice(&[10, 0, 0, 1]);
                    }
                    count[shard(&l3, n)] += 1;
                }
                let even = 10_000 / n as u32;
                assert!(
                    count.iter().all(|&c| c.abs_diff(even) < even / 20),
                    "v6 {v6}, {n} shards: {count:?}"
                );
            }
        }
    }
}
