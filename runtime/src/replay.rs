//! Replaying captured frames through the hooks the way the kernel sees injected packets: link layer stripped, a
//! snaplen-cut datagram zero-padded to its IP length, `ip_rcv` / `ipv6_rcv` sanity checks (failures never reach a
//! hook), virtual time from the capture timestamps (optionally with capped gaps), a routing decision, then
//! PREROUTING -> INPUT (or FORWARD -> POSTROUTING) through [`Hooks`]; a packet NAT gave a new destination in
//! PREROUTING (or OUTPUT) is routed again by that destination. An observer entry at a chosen PREROUTING
//! priority (default -150, after conntrack, like an nft `log` rule in a mangle-priority chain) records the ct
//! state each packet had there.
//!
//! This is what `nfc run` and the kernel-agreement tests use; it takes frames, never files.

use crate::ct::Conntrack;
use crate::hook::{Engine, HookCtx, HookOutcome, Hooks, Packet, Route, Stage};
use crate::pcap::{Frame, linktype};
use crate::wire::{self, Ipv4Packet, Ipv6Packet, Malformed, link};
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6, ct_state};
use nfr_vm::{Hook, PktState, Verdict};
use std::cell::Cell;
use std::rc::Rc;

/// The ct state of a packet as the kernel harness names it (NFLOG prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeenState {
    New,
    Est,
    EstReply,
    Rel,
    RelReply,
    Invalid,
    Untracked,
}

impl SeenState {
    /// Every state, in declaration order (`state as usize` indexes it).
    pub const ALL: [SeenState; 7] = [
        SeenState::New,
        SeenState::Est,
        SeenState::EstReply,
        SeenState::Rel,
        SeenState::RelReply,
        SeenState::Invalid,
        SeenState::Untracked,
    ];

    /// From an engine packet context after conntrack.
    pub fn of(p: &PktState) -> Self {
        let reply = p.ct_direction == 1;
        match p.ct_state {
            ct_state::NEW => SeenState::New,
            ct_state::ESTABLISHED if reply => SeenState::EstReply,
            ct_state::ESTABLISHED => SeenState::Est,
            ct_state::RELATED if reply => SeenState::RelReply,
            ct_state::RELATED => SeenState::Rel,
            ct_state::UNTRACKED => SeenState::Untracked,
            _ => SeenState::Invalid,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SeenState::New => "NEW",
            SeenState::Est => "EST",
            SeenState::EstReply => "EST_REPLY",
            SeenState::Rel => "REL",
            SeenState::RelReply => "REL_REPLY",
            SeenState::Invalid => "INVALID",
            SeenState::Untracked => "UNTRACKED",
        }
    }
}

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Not injectable: not IP, unsupported link type, or the IP header itself is cut.
    Skipped(Malformed),
    /// Dropped by `ip_rcv` / `ipv6_rcv` before any hook.
    NotSeen,
    /// Went through the hooks. `state` is what the observer saw (`None`: consumed before it, e.g. a fragment
    /// held by defrag); `reassembled`: this fragment completed a datagram and `state` belongs to the whole.
    Hooked {
        state: Option<SeenState>,
        reassembled: bool,
        stopped_at: Hook,
        outcome: HookOutcome,
    },
}

/// Which way a replayed packet goes through the hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received: PREROUTING, then the routing decision.
    Receive(Route),
    /// Sent by the host itself: OUTPUT -> POSTROUTING.
    Send,
}

impl Direction {
    /// The hooks the direction passes, in order (`nfr_proto::hook::path`).
    pub fn hooks(self) -> &'static [Hook] {
        use nfr_proto::hook::path;
        match self {
            Direction::Receive(Route::Local) => path::LOCAL_IN,
            Direction::Receive(Route::Forward) => path::FORWARD,
            Direction::Receive(Route::Blackhole) => path::BLACKHOLE,
            Direction::Send => path::LOCAL_OUT,
        }
    }
}

/// The devices a packet is seen on (`meta iif/iifname/iiftype`, `meta oif/oifname/oiftype`); index 0 = none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Devices {
    pub iif: u32,
    pub iifname: [u8; nfr_vm::pkt::IFNAMSIZ],
    /// `dev->type` of the input device (`ARPHRD_*`, [`device_type`]).
    pub iiftype: u16,
    pub oif: u32,
    pub oifname: [u8; nfr_vm::pkt::IFNAMSIZ],
    pub oiftype: u16,
}

/// `dev->type` of a device the replay names: `lo` is `ARPHRD_LOOPBACK`, every other device an Ethernet
/// device (`ARPHRD_ETHER`), as the devices of an Ethernet capture are; no device (empty name) is 0.
pub fn device_type(name: &[u8; nfr_vm::pkt::IFNAMSIZ]) -> u16 {
    use nfr_proto::desc::{ARPHRD_ETHER, ARPHRD_LOOPBACK};
    match name {
        [0, ..] => 0,
        [b'l', b'o', 0, ..] => ARPHRD_LOOPBACK,
        _ => ARPHRD_ETHER,
    }
}

/// Replay parameters.
#[derive(Debug, Clone, Copy)]
pub struct ReplayConfig {
    /// Inter-packet gaps longer than this are shortened to it (the kernel harness's "compressed" timing).
    pub gap_cap_ns: Option<u64>,
    /// Zero-pad snaplen-cut datagrams to their IP length (as the kernel harness does).
    pub pad_truncated: bool,
    /// PREROUTING priority of the observer entry.
    pub observe_priority: i32,
    /// Virtual time of the first frame.
    pub start_ns: u64,
    /// Routing decision for received packets.
    pub route: fn(&[u8]) -> Route,
    /// Frame timestamps already are virtual time (monotonic; gaps capped by the caller): `now = ts_ns`. Lets
    /// several replayers (one per flow shard) share one clock.
    pub clock_from_ts: bool,
    /// Keep the datagram of each packet that passed every hook as it left ([`Replayer::egress`]): forwarded
    /// packets with their TTL decremented.
    pub keep_egress: bool,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            gap_cap_ns: None,
            pad_truncated: true,
            observe_priority: -150,
            start_ns: 1_000_000_000_000,
            route: anyip_route,
            clock_from_ts: false,
            keep_egress: false,
        }
    }
}

/// The kernel harness's routing: every destination is local (AnyIP), except IPv6 link-local destinations (the
/// on-link route wins, never delivered) and multicast (unjoined groups are dropped).
pub fn anyip_route(l3: &[u8]) -> Route {
    match l3.first().map(|b| b >> 4) {
        Some(4) => {
            let d = Ipv4Packet::new_unchecked(l3).dst_addr();
            if (224..=239).contains(&d[0]) {
                Route::Blackhole
            } else {
                Route::Local
            }
        }
        Some(6) => {
            let d = Ipv6Packet::new_unchecked(l3).dst_addr();
            let link_local = d[0] == 0xfe && d[1] & 0xc0 == 0x80;
            if link_local || d[0] == 0xff {
                Route::Blackhole
            } else {
                Route::Local
            }
        }
        _ => Route::Blackhole,
    }
}

/// `ip_rcv_core` / `ipv6_rcv` checks (the IPv4 header checksum is not verified: captures often carry offloaded
/// or anonymised ones).
pub fn ip_rcv_ok(l3: &[u8]) -> bool {
    match l3.first().map(|b| b >> 4) {
        Some(4) => Ipv4Packet::new_checked(l3).is_ok(),
        Some(6) => Ipv6Packet::new_checked(l3).is_ok_and(|ip| ip.src_addr()[0] != 0xff),
        _ => false,
    }
}

/// Records the observed state at its priority.
struct Observer(Rc<Cell<Option<SeenState>>>);

impl Engine for Observer {
    fn hook(&mut self, pkt: &mut Packet<'_>, _cx: &mut HookCtx<'_>) -> Verdict {
        if self.0.get().is_none() {
            self.0.set(Some(SeenState::of(&pkt.state)));
        }
        Verdict::Accept
    }

    fn name(&self) -> &str {
        "observer"
    }

    fn stage(&self) -> Stage {
        Stage::Other
    }
}

/// A replay session: hooks, conntrack table and virtual clock.
pub struct Replayer {
    pub hooks: Hooks,
    pub ct: Conntrack,
    cfg: ReplayConfig,
    seen: Rc<Cell<Option<SeenState>>>,
    now: u64,
    last_ts: Option<u64>,
    last_injected: u64,
    /// The packet walking the hooks, its bytes and lists kept from one frame to the next.
    pkt: Packet<'static>,
    /// The last frame's datagram as it left, when it passed every hook and `ReplayConfig::keep_egress`.
    pub egress: Option<Vec<u8>>,
    /// The last frame's NAT rewrites (with `Hooks::trace_nat`).
    pub rewrites: Vec<crate::hook::Rewrite>,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer").field("now", &self.now).finish()
    }
}

impl Replayer {
    /// `hooks` usually comes from [`Hooks::with_conntrack`] plus the table engines; the observer is added here.
    pub fn new(mut hooks: Hooks, ct: Conntrack, cfg: ReplayConfig) -> Self {
        let seen = Rc::new(Cell::new(None));
        for nf in [NFPROTO_IPV4, NFPROTO_IPV6] {
            for hook in [Hook::Prerouting, Hook::Output] {
                let _ = hooks.register(
                    nf,
                    hook,
                    cfg.observe_priority,
                    Box::new(Observer(seen.clone())),
                );
            }
        }
        Replayer {
            hooks,
            ct,
            cfg,
            seen,
            now: cfg.start_ns,
            last_ts: None,
            last_injected: cfg.start_ns,
            pkt: Packet {
                data: std::borrow::Cow::Owned(Vec::new()),
                state: PktState::default(),
                nfct: crate::ct::Nfct::None,
                reject: None,
                generated: false,
                rewrites: Vec::new(),
                mangled: false,
            },
            egress: None,
            rewrites: Vec::new(),
        }
    }

    /// Current virtual time (ns).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Virtual time of the last frame that was injected (reached `ip_rcv`).
    pub fn last_injected(&self) -> u64 {
        self.last_injected
    }

    /// Replays one received frame, routed by `ReplayConfig::route`, on no device.
    pub fn frame(&mut self, f: &Frame<'_>) -> Fate {
        let route = self.cfg.route;
        self.frame_with(f, |l3| (Direction::Receive(route(l3)), Devices::default()))
    }

    /// Makes `self.pkt` the datagram of `f` as `ip_rcv` passes it on (see [`Self::inject_general`]), or says
    /// why it never reaches a hook. An IPv4 frame captured whole is parsed once, straight into the packet
    /// context; every other frame, and every frame that fails a check, takes the general path.
    fn inject(&mut self, f: &Frame<'_>) -> Result<(), Fate> {
        if (f.orig_len as usize) <= f.data.len()
            && let Ok(pi) = wire::parse_frame(f.linktype, f.data)
            && pi.nfproto == NFPROTO_IPV4
        {
            // `parse_frame`'s IPv4 checks on the datagram and what follows it are `ip_rcv_ok`'s, and a
            // datagram captured whole needs no padding: the general path would end where this one does.
            self.last_injected = self.now;
            let pkt = &mut self.pkt;
            let buf = pkt.data.to_mut();
            buf.clear();
            buf.extend_from_slice(pi.l3(f.data));
            pkt.state = PktState {
                tstamp_ns: self.now,
                ..PktState::default()
            };
            // As parsing the datagram alone gives it: no link layer, offsets from the network header.
            pi.fill(&mut pkt.state);
            pkt.state.has_ll = false;
            pkt.state.pkttype = 0;
            pkt.state.nhoff = 0;
            pkt.state.thoff = pi.thoff - pi.nhoff;
            pkt.reset();
            return Ok(());
        }
        self.inject_general(f)
    }

    /// The link layer stripped, `ip_rcv_core` / `ipv6_rcv`'s checks, a snaplen-cut datagram zero-padded to its
    /// IP length (`ReplayConfig::pad_truncated`), and the datagram trimmed to that length.
    fn inject_general(&mut self, f: &Frame<'_>) -> Result<(), Fate> {
        let li = wire::parse_link(f.linktype, f.data).map_err(Fate::Skipped)?;
        if li.ethertype != link::ETH_P_IP && li.ethertype != link::ETH_P_IPV6 {
            return Err(Fate::Skipped(Malformed::NotIp));
        }
        let ip = f.data.get(usize::from(li.nhoff)..).unwrap_or(&[]);
        let first = ip.first().copied().unwrap_or(0);
        let (hdr_len, declared) = match first >> 4 {
            4 => (usize::from(first & 0xf) * 4, usize::from(wire::be16(ip, 2))),
            6 => (40, 40 + usize::from(wire::be16(ip, 4))),
            _ => return Err(Fate::Skipped(Malformed::BadIpVersion)),
        };
        if ip.len() < hdr_len.max(20) {
            return Err(Fate::Skipped(if first >> 4 == 4 {
                Malformed::ShortIpv4
            } else {
                Malformed::ShortIpv6
            }));
        }
        self.last_injected = self.now;
        // The packet owns a copy of the datagram while it walks (the forward path rewrites its TTL in place).
        let pkt = &mut self.pkt;
        let buf = pkt.data.to_mut();
        buf.clear();
        buf.extend_from_slice(ip);
        if self.cfg.pad_truncated && (f.orig_len as usize) > f.data.len() && buf.len() < declared {
            buf.resize(declared, 0);
        }
        if !ip_rcv_ok(buf) {
            return Err(Fate::NotSeen);
        }
        buf.truncate(declared.max(hdr_len));
        if !pkt.refill(linktype::RAW, self.now) {
            return Err(Fate::NotSeen);
        }
        Ok(())
    }

    /// Replays one frame; `decide` sees the IP datagram and picks the direction and devices. It is asked again
    /// when NAT changed the destination in PREROUTING (the way and output device of a received packet) or in
    /// OUTPUT (the output device of a sent one).
    pub fn frame_with(
        &mut self,
        f: &Frame<'_>,
        mut decide: impl FnMut(&[u8]) -> (Direction, Devices),
    ) -> Fate {
        if self.cfg.clock_from_ts {
            self.now = self.now.max(f.ts_ns);
        } else if let Some(prev) = self.last_ts {
            let gap = f.ts_ns.saturating_sub(prev);
            self.now += self.cfg.gap_cap_ns.map_or(gap, |c| gap.min(c));
        }
        self.last_ts = Some(f.ts_ns);
        self.egress = None;
        self.rewrites.clear();
        if let Err(fate) = self.inject(f) {
            return fate;
        }
        let now = self.now;
        let pkt = &mut self.pkt;
        let (dir, dev) = decide(pkt.l3());
        pkt.state.iif = dev.iif;
        pkt.state.iifname = dev.iifname;
        pkt.state.iiftype = dev.iiftype;
        pkt.state.oif = dev.oif;
        pkt.state.oifname = dev.oifname;
        pkt.state.oiftype = dev.oiftype;
        let was_fragment = pkt.state.is_fragment;
        self.seen.set(None);
        let mut reroute = |p: &mut Packet<'_>| {
            // Only NAT writes the datagram, and in PREROUTING and OUTPUT it writes the destination: an unwritten
            // datagram keeps its route (a rewrite to the same address is asked again, and gets the same answer).
            if !p.mangled {
                return None;
            }
            let l3 = p.l3();
            let (d, dev) = decide(l3);
            p.state.oif = dev.oif;
            p.state.oifname = dev.oifname;
            p.state.oiftype = dev.oiftype;
            Some(d)
        };
        let (stopped_at, outcome) = match dir {
            Direction::Receive(route) => {
                self.hooks
                    .receive_routed(pkt, &mut self.ct, now, &mut |p| match reroute(p) {
                        None => route,
                        Some(Direction::Receive(r)) => r,
                        // A new destination is never a reason to send the packet as the host's own.
                        Some(Direction::Send) => Route::Forward,
                    })
            }
            Direction::Send => self.hooks.send_routed(pkt, &mut self.ct, now, &mut |p| {
                reroute(p);
            }),
        };
        let state = self.seen.get();
        self.egress =
            (self.cfg.keep_egress && outcome == HookOutcome::Accept && stopped_at != Hook::Input)
                .then(|| pkt.l3().to_vec());
        self.rewrites = std::mem::take(&mut pkt.rewrites);
        Fate::Hooked {
            state,
            reassembled: was_fragment && state.is_some(),
            stopped_at,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ct::Settings;
    use crate::wire::build;

    fn frame(data: &[u8], ts: u64) -> Frame<'_> {
        Frame::whole(linktype::RAW, ts, data)
    }

    #[test]
    fn states_fates_and_capped_time() {
        let ct = Conntrack::new(Settings {
            checksum: false,
            ..Settings::default()
        });
        let cfg = ReplayConfig {
            gap_cap_ns: Some(2_000_000_000),
            ..ReplayConfig::default()
        };
        let mut r = Replayer::new(Hooks::with_conntrack(), ct, cfg);
        let q = build::udp(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            b"",
        );
        let a = build::udp(
            "10.0.0.2".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            2,
            1,
            b"",
        );
        let st = |f: Fate| match f {
            Fate::Hooked { state, .. } => state,
            _ => None,
        };
        assert_eq!(st(r.frame(&frame(&q, 0))), Some(SeenState::New));
        assert_eq!(
            st(r.frame(&frame(&a, 100_000_000_000))),
            Some(SeenState::EstReply)
        );
        assert_eq!(
            r.now() - ReplayConfig::default().start_ns,
            2_000_000_000,
            "gap capped"
        );
        assert_eq!(
            r.frame(&frame(&[0x45, 0, 0], 0)),
            Fate::Skipped(Malformed::ShortIpv4)
        );
        let mut bad = q.clone();
        bad[3] = 200; // tot_len beyond the data: ip_rcv drops it
        assert_eq!(r.frame(&frame(&bad, 0)), Fate::NotSeen);
        // Multicast destination: seen at PREROUTING, never confirmed.
        let m = build::udp(
            "10.0.0.1".parse().unwrap(),
            "239.1.1.1".parse().unwrap(),
            1,
            2,
            b"",
        );
        assert_eq!(st(r.frame(&frame(&m, 0))), Some(SeenState::New));
        assert_eq!(r.ct.len(r.now()), 1);
    }

    /// Datagrams the frame tests damage: a TCP segment carrying an FTP command, IPv6 UDP, an ICMP error.
    fn seeds() -> [Vec<u8>; 3] {
        [
            build::tcp(
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                5,
                21,
                1,
                0,
                2,
                100,
                &[],
                b"PORT",
            ),
            build::udp(
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
                1,
                2,
                &[0; 40],
            ),
            build::icmp(
                "10.0.0.9".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
                3,
                3,
                [0; 4],
                &[0x45; 40],
            ),
        ]
    }

    /// The single parse of an IPv4 frame captured whole leaves the packet exactly as the general path does:
    /// bytes, context, fate, on valid and damaged frames of every link type.
    #[test]
    fn single_parse_injection_is_the_general_one() {
        // The hostile test's datagrams (an FTP command, IPv6 UDP, an ICMP error), and a multicast one.
        let mut seeds = seeds().to_vec();
        seeds.push(build::udp(
            "10.0.0.3".parse().unwrap(),
            "224.0.0.9".parse().unwrap(),
            1,
            2,
            &[0; 30],
        ));
        let replayer = || {
            Replayer::new(
                Hooks::with_conntrack(),
                Conntrack::new(Settings::default()),
                ReplayConfig::default(),
            )
        };
        let (mut single, mut general) = (replayer(), replayer());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut fast = 0;
        for i in 0..30_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (lt, head): (u16, &[u8]) = match x % 3 {
                0 => (linktype::RAW, &[]),
                1 => (
                    linktype::ETHERNET,
                    &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00],
                ),
                _ => (
                    linktype::LINUX_SLL2,
                    &[8, 0, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0],
                ),
            };
            let mut d = head.to_vec();
            d.extend_from_slice(&seeds[(i % 4) as usize]);
            // Damage a few bytes (the IP header's among them), add Ethernet-style padding, or cut the frame.
            for k in 0..(x >> 8) % 4 {
                let pos = ((x >> (11 * k + 16)) as usize) % d.len();
                d[pos] = (x >> (5 * k)) as u8;
            }
            if x & (1 << 40) != 0 {
                d.extend_from_slice(&[0; 6]);
            }
            let cut = x & (1 << 41) != 0;
            if cut {
                d.truncate(((x >> 44) as usize) % (d.len() + 1));
            }
            let f = Frame {
                orig_len: (d.len() + usize::from(cut) * 8) as u32,
                ..Frame::whole(lt, i, &d)
            };
            let a = single.inject(&f);
            let b = general.inject_general(&f);
            assert_eq!(a, b, "frame {i}: {d:02x?}");
            if a.is_ok() {
                assert_eq!(single.pkt.data, general.pkt.data, "frame {i}");
                assert_eq!(single.pkt.state, general.pkt.state, "frame {i}");
                fast += usize::from(
                    !cut && wire::parse_frame(lt, &d).is_ok_and(|p| p.nfproto == NFPROTO_IPV4),
                );
            }
        }
        assert!(fast > 1_000, "the single parse ran {fast} times");
    }

    #[test]
    fn hostile_frames_never_panic() {
        let ct = Conntrack::new(Settings {
            max: 256,
            buckets: 64,
            ftp_ports: vec![21],
            ..Settings::default()
        });
        let mut r = Replayer::new(Hooks::with_conntrack(), ct, ReplayConfig::default());
        let seeds = seeds();
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut d = seeds[(i % 3) as usize].clone();
            for k in 0..(x % 5) as usize {
                let pos = ((x >> (9 * k)) as usize) % d.len();
                d[pos] = (x >> (4 * k)) as u8;
            }
            // Make fragments likely too.
            if i % 7 == 0 && d.len() > 8 && d[0] >> 4 == 4 {
                d[6] = 0x20 | (x as u8 & 0x1f);
            }
            d.truncate(((x >> 48) as usize) % (d.len() + 1));
            let lt = [
                linktype::RAW,
                linktype::ETHERNET,
                linktype::LINUX_SLL2,
                linktype::PPP,
            ][(x % 4) as usize];
            let f = Frame {
                orig_len: (d.len() + (x % 3) as usize) as u32,
                ..Frame::whole(lt, i * 1_000_000, &d)
            };
            let _ = r.frame(&f);
        }
        assert!(r.ct.count() <= 256);
    }
}
