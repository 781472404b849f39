//! Connection tracking modelled on the kernel's nf_conntrack: `nf_conntrack_in` (PREROUTING / OUTPUT, -200),
//! `nf_confirm` (INPUT / POSTROUTING, INT_MAX) with helpers, per-protocol trackers (TCP in `tcp`, UDP, ICMP,
//! ICMPv6, generic), ICMP errors as RELATED, expectations and the FTP helper, timeouts on virtual time, GC,
//! `nf_conntrack_max` with `early_drop`, events, and a `conntrack -L` listing.
//!
//! Table layout (a deliberate choice): like the kernel's `nf_conntrack_hash`, a bucket array of chain heads with
//! the chains threaded through the entries (one link per direction), so every entry is reachable from its
//! original and its reply tuple, and `early_drop` can scan "8 buckets from the new tuple's bucket" exactly as the
//! kernel does. Only the original tuple is stored: without NAT the reply tuple is its inverse; the reply tuple
//! of a NAT binding (`nat`) sits in a side table, which lookups (the lean one too) read for the reply link of
//! an entry with NAT status bits; bursts keep their lean lanes for tables without bindings.
//! Entries live in a slab (`Vec`) addressed by index; a packet refers to its entry with [`Nfct`] (index + generation, like
//! `skb->_nfct`). An entry is 128 bytes: timeouts are wrapping millisecond ticks (jiffies-like, reaped by a
//! periodic GC on packet time); rare data lives in side tables (hashbrown): FTP helper state, `ct->master` of
//! expected entries; packet/byte counters sit in a parallel array only when `acct` is on. Beside the heads, one
//! byte a bucket counts its chain's links, so that `confirm` checks the reply chain's length without walking it
//! when the original chain already showed there is no clash; until an entry is confirmed its (unused) reply link
//! holds the reply bucket, computed once by `init_conntrack`.
//!
//! Per-packet cost: `conntrack_in` first tries lean paths for the dominant packets (an ACK of an established TCP
//! connection, a SYN that creates one; see `fast_tcp`), which do the kernel's checks for exactly that case and
//! otherwise fall back, unchanged, to the general path; a differential test holds the two to the same results.

mod burst;
pub mod ftp;
mod lean;
pub mod nat;
mod nat_helper;
pub mod tcp;
pub mod tuple;

#[cfg(test)]
mod tests;

use crate::wire::{Ipv4Packet, Ipv6Packet, checksum, proto};
pub use burst::{BURST, BurstPrefetch, PREFETCH_MIN_BYTES};
use nfr_vm::pkt::{NFPROTO_IPV4, NFPROTO_IPV6, ct_state, ips};
use nfr_vm::{Hook, PktState, Verdict};
pub use tcp::TcpCt;
pub use tuple::Tuple;

const NS: u64 = 1_000_000_000;
const NONE_IDX: u32 = u32::MAX;

/// `enum ip_conntrack_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CtInfo {
    Established = 0,
    Related = 1,
    New = 2,
    EstablishedReply = 3,
    RelatedReply = 4,
}

impl CtInfo {
    /// `CTINFO2DIR`: 0 original, 1 reply.
    pub fn dir(self) -> usize {
        if (self as u8) >= 3 { 1 } else { 0 }
    }

    /// nft `ct state` bit.
    pub fn state_bit(self) -> u32 {
        match self {
            CtInfo::Established | CtInfo::EstablishedReply => ct_state::ESTABLISHED,
            CtInfo::Related | CtInfo::RelatedReply => ct_state::RELATED,
            CtInfo::New => ct_state::NEW,
        }
    }
}

/// Handle of one entry (slab index + generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub idx: u32,
    pub generation: u32,
}

/// What a packet carries (`skb->_nfct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nfct {
    /// Nothing yet (or INVALID after `conntrack_in`).
    #[default]
    None,
    /// `notrack` / `ct zone set` template: zone for the entry that will be created.
    Template { zone: u16 },
    /// `IP_CT_UNTRACKED`.
    Untracked,
    /// Attached entry.
    Ct { id: ConnId, ctinfo: CtInfo },
}

impl Nfct {
    /// nft `ct state` bits for this attachment.
    pub fn state_bits(&self) -> u32 {
        match self {
            Nfct::Ct { ctinfo, .. } => ctinfo.state_bit(),
            Nfct::Untracked => ct_state::UNTRACKED,
            _ => ct_state::INVALID,
        }
    }
}

/// Conntrack helpers known to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Helper {
    Ftp = 1,
}

/// Sysctls and module parameters, with the kernel's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `nf_conntrack_max` (0 = unlimited).
    pub max: u32,
    /// `nf_conntrack_buckets`.
    pub buckets: u32,
    /// `nf_conntrack_tcp_loose`.
    pub tcp_loose: bool,
    /// `nf_conntrack_tcp_be_liberal`.
    pub tcp_be_liberal: bool,
    /// `nf_conntrack_tcp_ignore_invalid_rst`.
    pub tcp_ignore_invalid_rst: bool,
    /// `nf_conntrack_tcp_max_retrans`.
    pub tcp_max_retrans: u8,
    /// `nf_conntrack_checksum` (kernel default on; captures with offloaded checksums want it off).
    pub checksum: bool,
    /// `nf_conntrack_acct` (packet/byte counters in the listing).
    pub acct: bool,
    /// Per-state TCP timeouts in seconds, indexed by `tcp::state` (RETRANS and UNACK included).
    pub tcp_timeouts: [u32; 14],
    pub udp_timeout: u32,
    pub udp_timeout_stream: u32,
    pub icmp_timeout: u32,
    pub icmpv6_timeout: u32,
    pub generic_timeout: u32,
    /// GRE unreplied / stream timeouts.
    pub gre_timeout: u32,
    pub gre_timeout_stream: u32,
    /// `nf_conntrack_expect_max`.
    pub expect_max: u32,
    /// TCP destination ports that get the FTP helper on new entries (nft `tcp dport 21 ct helper set "ftp"`).
    /// Empty by default: 6.x kernels never auto-assign helpers.
    pub ftp_ports: Vec<u16>,
    /// Record events (`conntrack -E`).
    pub events: bool,
    /// Seed of the tuple hash.
    pub hash_seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max: 262_144,
            buckets: 262_144,
            tcp_loose: true,
            tcp_be_liberal: false,
            tcp_ignore_invalid_rst: false,
            tcp_max_retrans: 3,
            checksum: true,
            acct: false,
            //            NONE SS   SR  ES      FW   CW  LA  TW   CL  S2   MAX IG RETRANS UNACK
            tcp_timeouts: [
                0, 120, 60, 432_000, 120, 60, 30, 120, 10, 120, 0, 0, 300, 300,
            ],
            udp_timeout: 30,
            udp_timeout_stream: 120,
            icmp_timeout: 30,
            icmpv6_timeout: 30,
            generic_timeout: 600,
            gre_timeout: 30,
            gre_timeout_stream: 180,
            expect_max: 4096,
            ftp_ports: Vec::new(),
            events: false,
            hash_seed: 0x6a09_e667_f3bc_c908,
        }
    }
}

/// Per-protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4State {
    None,
    Tcp(TcpCt),
    /// `stream_ts` in milliseconds ticks (see [`tick`]).
    Udp {
        stream_ts: u32,
    },
}

/// One connection (`struct nf_conn`). Two cache lines, aligned: the first holds everything a lookup reads
/// (tuple, zone, chain links, status, timeout), the second the protocol state.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Conn {
    orig: Tuple,
    zone: u16,
    /// `IPS_*`; `IPS_HELPER` means the FTP helper is attached.
    status: u32,
    /// Expiry in millisecond ticks once confirmed (wrapping, compared like jiffies); the relative timeout before.
    timeout: u32,
    /// Chain links (`idx << 1 | direction` of the next entry in the original / reply bucket's chain) once
    /// confirmed; before that, `[NONE_IDX, reply bucket]` (the bucket `confirm` walks and links the reply
    /// direction into, [`Conntrack::reply_bucket`], computed by `init_conntrack`).
    next: [u32; 2],
    /// Slot generation; 0 = free slot.
    generation: u32,
    mark: u32,
    l4: L4State,
}

impl Conn {
    fn live(&self) -> bool {
        self.generation != 0
    }

    fn has_ftp(&self) -> bool {
        self.status & ips::HELPER != 0
    }

    /// Remaining lifetime in ms (the relative timeout while unconfirmed), 0 when expired.
    fn remaining_ms(&self, now: u64) -> u64 {
        if self.status & ips::CONFIRMED != 0 {
            (self.timeout.wrapping_sub(tick(now)) as i32).max(0) as u64
        } else {
            u64::from(self.timeout)
        }
    }
}

/// Virtual time in wrapping millisecond ticks (the kernel's jiffies, HZ=1000).
fn tick(now: u64) -> u32 {
    (now / 1_000_000) as u32
}

/// Packet / byte counters of both directions (`nf_conn_acct`), kept only with `Settings::acct`.
#[derive(Debug, Clone, Copy, Default)]
struct Acct {
    packets: [u64; 2],
    bytes: [u64; 2],
}

/// An expectation (`struct nf_conntrack_expect`): `tuple` with the source port wildcarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub tuple: Tuple,
    pub zone: u16,
    pub master: ConnId,
    /// Absolute expiry (ns).
    pub expires: u64,
    pub helper: Helper,
    /// Set by the FTP NAT helper: the data connection gets NAT bindings that follow the master's
    /// (`exp->expectfn = nf_nat_follow_master`), towards `saved_port` (`exp->saved_proto`) for the packets of
    /// direction `dir` (`exp->dir`).
    pub follow_master: bool,
    pub saved_port: u16,
    pub dir: u8,
}

/// One entry as data (see [`Conntrack::entries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtEntry {
    pub id: ConnId,
    pub orig: Tuple,
    pub reply: Tuple,
    pub zone: u16,
    /// `IPS_*`.
    pub status: u32,
    pub mark: u32,
    /// Remaining lifetime.
    pub timeout_ms: u64,
    /// TCP state name (`ESTABLISHED`, ...).
    pub tcp_state: Option<&'static str>,
    pub helper: Option<&'static str>,
    /// Per direction, when `Settings::acct`.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

/// `conntrack -E` event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtEventKind {
    New,
    Related,
    Update,
    Assured,
    Destroy,
}

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtEvent {
    pub kind: CtEventKind,
    pub ts_ns: u64,
    pub orig: Tuple,
    /// The reply tuple.
    pub reply: Tuple,
    pub status: u32,
    /// TCP state (`tcp::state`), 0 for other protocols.
    pub tcp_state: u8,
    /// Seconds left before the entry times out (what `conntrack -E` prints after the protocol).
    pub timeout_s: u64,
    /// The entry (slab index, generation), to read its state again when the event is delivered.
    pub entry: (u32, u32),
}

/// `/proc/net/stat/nf_conntrack` counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtStats {
    pub found: u64,
    pub invalid: u64,
    pub insert: u64,
    pub insert_failed: u64,
    pub drop: u64,
    pub early_drop: u64,
    pub error: u64,
    pub expect_new: u64,
    pub expect_create: u64,
    pub expect_delete: u64,
    pub search_restart: u64,
    pub clash_resolve: u64,
    pub chaintoolong: u64,
}

/// Interval of the automatic GC pass, in milliseconds of packet time.
pub const GC_INTERVAL_MS: u32 = 60_000;

/// `NF_CT_EVICTION_RANGE`.
pub const NF_CT_EVICTION_RANGE: u32 = 8;
/// Chains longer than this refuse inserts ("chaintoolong"; the kernel uses 50 + random(30)).
pub const MAX_CHAINLEN: u32 = 64;

/// The connection tracking table.
#[derive(Debug)]
pub struct Conntrack {
    settings: Settings,
    heads: Vec<u32>,
    /// The number of links in each bucket's chain (entries of either direction; at most `MAX_CHAINLEN + 1`,
    /// as confirm refuses to grow a longer chain), so that confirm's length check of the reply chain needs no
    /// walk.
    chain_lens: Vec<u8>,
    conns: Vec<Conn>,
    free: Vec<u32>,
    count: u32,
    expects: Vec<Expect>,
    ftp: hashbrown::HashMap<u32, ftp::FtpInfo>,
    /// The sequence corrections of entries with `IPS_SEQ_ADJUST` (`nf_conn_seqadj`, per direction).
    seqadj: hashbrown::HashMap<u32, [nat_helper::SeqAdj; 2]>,
    /// `ct->master` of expected entries (child slot -> master).
    masters: hashbrown::HashMap<u32, ConnId>,
    /// The reply tuple of entries with a NAT binding (`nf_conntrack_alter_reply`); an entry not in it has the
    /// inverse of its original tuple as reply tuple.
    nat_reply: hashbrown::HashMap<u32, Tuple>,
    /// `bysource`: the entry whose SRC binding maps an original source (address, port, protocols, zone).
    nat_bysource: hashbrown::HashMap<nat::SrcKey, u32>,
    /// Parallel to `conns` when `settings.acct`.
    acct: Vec<Acct>,
    /// Tick of the last automatic GC pass.
    last_gc: u32,
    events: Vec<CtEvent>,
    stats: CtStats,
    next_generation: u32,
    /// Lean per-packet paths on (see [`Conntrack::set_fast_path`]).
    fast_path: bool,
    /// When `conntrack_in_burst` prefetches (see [`Conntrack::set_burst_prefetch`]).
    burst_prefetch: BurstPrefetch,
    /// The GC passes' victim list, kept between passes (no allocation per pass).
    gc_scratch: Vec<u32>,
}

/// Result of walking the packet's headers (`get_l4proto`).
#[derive(Debug, Clone, Copy)]
struct L4 {
    nfproto: u8,
    proto: u8,
    /// Offset of the transport header in the datagram.
    dataoff: usize,
}

#[inline]
fn get_l4proto(l3: &[u8]) -> Option<L4> {
    match l3.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_unchecked(l3);
            if ip.frag_offset() != 0 || l3.len() < 20 {
                return None;
            }
            let dataoff = ip.header_len();
            if dataoff < 20 || dataoff > l3.len() {
                return None;
            }
            Some(L4 {
                nfproto: NFPROTO_IPV4,
                proto: ip.protocol(),
                dataoff,
            })
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            let e = ip.exthdrs().ok()?;
            if e.frag_off != 0 || e.l4proto == proto::NONE || e.l4proto == proto::FRAGMENT {
                return None;
            }
            Some(L4 {
                nfproto: NFPROTO_IPV6,
                proto: e.l4proto,
                dataoff: e.thoff,
            })
        }
        _ => None,
    }
}

/// Pseudo-header partial sum for `nf_checksum`.
fn pseudo_sum(l3: &[u8], nfproto: u8, l4proto: u8, len: usize) -> u32 {
    let mut s: u32 = 0;
    let (a, b) = if nfproto == NFPROTO_IPV4 {
        (12, 20)
    } else {
        (8, 40)
    };
    for c in l3.get(a..b).unwrap_or(&[]).chunks_exact(2) {
        s = s.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    s.wrapping_add(u32::from(l4proto))
        .wrapping_add((len & 0xffff) as u32)
        .wrapping_add((len >> 16) as u32)
}

/// True when the transport checksum is wrong (out of line: it is a loop over the whole segment, and inlined it
/// bloats the per-packet path with hoisted loop set-up).
#[inline(never)]
fn bad_l4_checksum(l3: &[u8], l4: &L4) -> bool {
    let seg = l3.get(l4.dataoff..).unwrap_or(&[]);
    let init = if l4.proto == proto::ICMP {
        0
    } else {
        pseudo_sum(l3, l4.nfproto, l4.proto, seg.len())
    };
    // udp_error: "Packet with no checksum" is accepted for both families.
    if l4.proto == proto::UDP && crate::wire::be16(seg, 6) == 0 {
        return false;
    }
    checksum(seg, init) != 0
}

pub(crate) fn icmp_is_err(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 types that are never tracked (`noct_valid_new`): MLD, RS/RA/NS/NA, MLDv2 report, MRD.
fn icmpv6_noct(t: u8) -> bool {
    matches!(t, 130..=136 | 143 | 151 | 152)
}

/// Outcome of [`Conntrack::lookup`].
enum Lookup {
    Found(u32, usize),
    Miss,
    Expired,
}

/// Result of [`Conntrack::probe_v4`]: the match and the chain length up to it, or the whole chain's length.
enum Probe {
    Found((u32, usize), u32),
    Miss(u32),
    Expired,
}

enum Resolve {
    Invalid,
    Drop,
    Ok(ConnId, CtInfo),
}

impl Conntrack {
    pub fn new(settings: Settings) -> Self {
        let buckets = settings.buckets.max(1);
        Conntrack {
            heads: crate::memhint::filled(buckets as usize, NONE_IDX),
            chain_lens: vec![0; buckets as usize],
            settings,
            conns: Vec::new(),
            free: Vec::new(),
            count: 0,
            expects: Vec::new(),
            ftp: hashbrown::HashMap::new(),
            seqadj: hashbrown::HashMap::new(),
            nat_reply: hashbrown::HashMap::new(),
            nat_bysource: hashbrown::HashMap::new(),
            masters: hashbrown::HashMap::new(),
            acct: Vec::new(),
            last_gc: 0,
            events: Vec::new(),
            stats: CtStats::default(),
            next_generation: 1,
            fast_path: true,
            burst_prefetch: BurstPrefetch::Auto,
            gc_scratch: Vec::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stats(&self) -> CtStats {
        self.stats
    }

    /// `nf_conntrack_count`: allocated entries (confirmed or not).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Pending expectations.
    pub fn expectations(&self) -> &[Expect] {
        &self.expects
    }

    /// Takes the recorded events.
    pub fn drain_events(&mut self) -> Vec<CtEvent> {
        std::mem::take(&mut self.events)
    }

    /// Takes the recorded events as the kernel delivers them at the end of a packet
    /// (`nf_ct_deliver_cached_events`): the state, status and timeout of each entry still alive are
    /// read again at `now`, after everything the packet did to it.
    pub fn deliver_events(&mut self, now: u64) -> Vec<CtEvent> {
        let mut ev = std::mem::take(&mut self.events);
        for e in &mut ev {
            if e.kind == CtEventKind::Destroy {
                continue;
            }
            if let Some(c) = self.conns.get(e.entry.0 as usize)
                && c.generation == e.entry.1
            {
                e.status = c.status;
                e.tcp_state = if let L4State::Tcp(t) = c.l4 {
                    t.state
                } else {
                    0
                };
                e.timeout_s = c.remaining_ms(now) / 1000;
            }
        }
        ev
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns
            .get(id.idx as usize)
            .filter(|c| c.live() && c.generation == id.generation)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns
            .get_mut(id.idx as usize)
            .filter(|c| c.live() && c.generation == id.generation)
    }

    #[inline]
    fn bucket(&self, t: &Tuple, zone: u16) -> usize {
        self.bucket_of(t.hash(zone, self.settings.hash_seed))
    }

    /// The bucket of hash `h` (`scale_hash`: multiply-shift onto the bucket count).
    #[inline(always)]
    fn bucket_of(&self, h: u32) -> usize {
        ((u64::from(h) * self.heads.len() as u64) >> 32) as usize
    }

    fn tuple_of(&self, idx: u32, c: &Conn, dir: usize) -> Tuple {
        if dir == 0 {
            c.orig
        } else if let Some(r) = self.nat_reply_of(idx) {
            r
        } else {
            c.orig.invert().unwrap_or(c.orig)
        }
    }

    /// The NATed reply tuple of entry `idx`, if it has a NAT binding.
    #[inline(always)]
    fn nat_reply_of(&self, idx: u32) -> Option<Tuple> {
        if self.nat_reply.is_empty() {
            None
        } else {
            self.nat_reply.get(&idx).copied()
        }
    }

    /// Whether entry `idx` is reached by tuple `t` in direction `dir` (its original tuple, or its reply tuple:
    /// the NATed one when it has a binding).
    #[inline(always)]
    fn conn_hit(&self, idx: u32, c: &Conn, dir: usize, t: &Tuple) -> bool {
        if dir == 1
            && !self.nat_reply.is_empty()
            && let Some(r) = self.nat_reply.get(&idx)
        {
            return r.key_eq(t);
        }
        c.orig.matches_dir(dir, t)
    }

    #[inline(always)]
    fn event(&mut self, kind: CtEventKind, idx: u32, now: u64) {
        if self.settings.events {
            self.record_event(kind, idx, now);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_event(&mut self, kind: CtEventKind, idx: u32, now: u64) {
        if let Some(c) = self.conns.get(idx as usize) {
            let tcp_state = if let L4State::Tcp(t) = c.l4 {
                t.state
            } else {
                0
            };
            let reply = self.tuple_of(idx, c, 1);
            self.events.push(CtEvent {
                kind,
                ts_ns: now,
                orig: c.orig,
                reply,
                status: c.status,
                tcp_state,
                timeout_s: c.remaining_ms(now) / 1000,
                entry: (idx, c.generation),
            });
        }
    }

    fn expired(c: &Conn, now: u64) -> bool {
        c.status & ips::CONFIRMED != 0 && (c.timeout.wrapping_sub(tick(now)) as i32) <= 0
    }

    /// Looks a tuple up; expired entries met on the way are removed (`nf_ct_gc_expired`). Returns the entry and
    /// the direction the tuple matched.
    #[inline]
    fn find(&mut self, t: &Tuple, zone: u16, now: u64) -> Option<(u32, usize)> {
        let b = self.bucket(t, zone);
        self.find_in(b, t, zone, now)
    }

    /// [`Self::find`] in bucket `b` (the bucket of `t`).
    #[inline]
    fn find_in(&mut self, b: usize, t: &Tuple, zone: u16, now: u64) -> Option<(u32, usize)> {
        match self.lookup(b, t, zone, now) {
            Lookup::Found(idx, dir) => Some((idx, dir)),
            Lookup::Miss => None,
            Lookup::Expired => self.find_in_expired(b, t, zone, now),
        }
    }

    /// The chain walk of a lookup, read-only: stops at the first entry whose tuple matches; `Expired` when that
    /// entry has expired (the caller then deletes it and looks further, [`Self::find_in_expired`]).
    #[inline(always)]
    fn lookup(&self, b: usize, t: &Tuple, zone: u16, now: u64) -> Lookup {
        self.lookup_by(b, now, |node, c, dir| {
            c.zone == zone && self.conn_hit(node, c, dir, t)
        })
    }

    /// [`Self::lookup`]'s walk of bucket `b` with `hit(entry, direction)` as the tuple compare.
    #[inline(always)]
    fn lookup_by(&self, b: usize, now: u64, hit: impl Fn(u32, &Conn, usize) -> bool) -> Lookup {
        let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
        while cur != NONE_IDX {
            let node = cur >> 1;
            let dir = (cur & 1) as usize;
            let Some(c) = self.conns.get(node as usize) else {
                break;
            };
            if hit(node, c, dir) {
                return if Self::expired(c, now) {
                    Lookup::Expired
                } else {
                    Lookup::Found(node, dir)
                };
            }
            cur = c.next[dir];
        }
        Lookup::Miss
    }

    /// [`Self::find_in`] when the walk met an expired match: delete every expired match of the chain
    /// (`nf_ct_gc_expired`) and return the live one, if any.
    #[cold]
    #[inline(never)]
    fn find_in_expired(
        &mut self,
        b: usize,
        t: &Tuple,
        zone: u16,
        now: u64,
    ) -> Option<(u32, usize)> {
        let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
        let mut expired = Vec::new();
        let mut found = None;
        while cur != NONE_IDX {
            let node = cur >> 1;
            let dir = (cur & 1) as usize;
            let Some(c) = self.conns.get(node as usize) else {
                break;
            };
            if c.zone == zone && self.conn_hit(node, c, dir, t) {
                if Self::expired(c, now) {
                    expired.push(node);
                } else {
                    found = Some((node, dir));
                    break;
                }
            }
            cur = c.next[dir];
        }
        if !expired.is_empty() {
            self.delete_all(expired, now);
        }
        found
    }

    #[cold]
    #[inline(never)]
    fn delete_all(&mut self, idxs: Vec<u32>, now: u64) {
        for e in idxs {
            self.delete(e, now);
        }
    }

    /// [`Self::find_in`] for `__nf_conntrack_confirm`: also returns the chain length of `b` (valid when nothing
    /// was found; capped at [`MAX_CHAINLEN`] + 1) and whether expired entries were deleted on the way.
    #[inline]
    fn probe(
        &mut self,
        b: usize,
        t: &Tuple,
        zone: u16,
        now: u64,
    ) -> (Option<(u32, usize)>, u32, bool) {
        // Read-only walk first; only an expired match (rare) takes the deleting walk.
        let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
        let mut n = 0;
        while cur != NONE_IDX {
            let node = cur >> 1;
            let dir = (cur & 1) as usize;
            let Some(c) = self.conns.get(node as usize) else {
                break;
            };
            n += 1;
            if c.zone == zone && self.conn_hit(node, c, dir, t) {
                if Self::expired(c, now) {
                    return self.probe_expired(b, t, zone, now);
                }
                return (Some((node, dir)), n.min(MAX_CHAINLEN + 1), false);
            }
            cur = c.next[dir & 1];
        }
        (None, n.min(MAX_CHAINLEN + 1), false)
    }

    /// [`Self::probe`] when the chain holds an expired match: deletes the expired matches met on the walk.
    #[cold]
    #[inline(never)]
    fn probe_expired(
        &mut self,
        b: usize,
        t: &Tuple,
        zone: u16,
        now: u64,
    ) -> (Option<(u32, usize)>, u32, bool) {
        // `probe` saw an expired match, so this walk deletes at least one entry.
        let found = self.find_in_expired(b, t, zone, now);
        (found, self.chain_len(b), true)
    }

    /// The bucket of the inverse of tuple `t` (the reply chain `confirm` walks and links into): for IPv4 port
    /// protocols from `t`'s parts (the inverse swaps addresses and ports), else through [`Tuple::invert`]
    /// (`t`'s own bucket when it has no inverse).
    #[inline(always)]
    fn reply_bucket(&self, t: &Tuple, zone: u16) -> usize {
        if t.l3 == NFPROTO_IPV4 && (tuple::has_ports(t.l4) || t.l4 == proto::GRE) {
            self.bucket_of(t.hash_v4(zone, self.settings.hash_seed, true))
        } else {
            self.bucket(&t.invert().unwrap_or(*t), zone)
        }
    }

    /// The clash lookups of `__nf_conntrack_confirm` for an entry whose original tuple is `t0` and whose
    /// [`Self::reply_bucket`] is `b1`: the buckets, the entry either walk found (first `t0`'s chain, then the inverse's only on a miss),
    /// the chain lengths and whether expired entries were deleted on the way (as [`Self::probe`] gives them).
    /// `None` when `t0` has no inverse.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn confirm_probes(
        &mut self,
        idx: u32,
        t0: &Tuple,
        zone: u16,
        b1: usize,
        now: u64,
    ) -> Option<([usize; 2], Option<(u32, usize)>, [u32; 2], [bool; 2])> {
        // The packed compares below take every reply tuple for the inverse: not so once NAT bindings exist.
        if self.nat_reply.is_empty()
            && t0.l3 == NFPROTO_IPV4
            && (tuple::has_ports(t0.l4) || t0.l4 == proto::GRE)
        {
            // The inverse swaps addresses and ports: both tuples' keys come from `t0`'s parts, and an IPv4
            // entry's addresses are zero past the 4th byte, so packed words compare exactly.
            let le = |a: &[u8; 16]| u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
            let (src, dst) = (le(&t0.src), le(&t0.dst));
            let b0 = self.bucket_of(tuple::hash_v4(
                src,
                dst,
                t0.sport,
                t0.dport,
                zone,
                t0.l4,
                self.settings.hash_seed,
            ));
            let orig = (
                u64::from(src) | u64::from(dst) << 32,
                u32::from(t0.sport) | u32::from(t0.dport) << 16,
            );
            let reply = (
                u64::from(dst) | u64::from(src) << 32,
                u32::from(t0.dport) | u32::from(t0.sport) << 16,
            );
            let meta = u32::from(zone) | u32::from(t0.l3) << 16 | u32::from(t0.l4) << 24;
            // An expired match anywhere goes to the general walks below (which delete it).
            match self.probe_v4(b0, [orig, reply], meta, now) {
                Probe::Found(x, n) => return Some(([b0, b1], Some(x), [n, 0], [false; 2])),
                // An entry matching the inverse in one direction matches `t0` in the other, and every chained
                // entry is in both of its chains: with no match (live or expired) in `t0`'s chain there is none
                // in the inverse's, whose length is then all the walk would give.
                Probe::Miss(n0) => {
                    if let Some(&n1) = self.chain_lens.get(b1)
                        && n1 < u8::MAX
                    {
                        let n1 = u32::from(n1).min(MAX_CHAINLEN + 1);
                        return Some(([b0, b1], None, [n0, n1], [false; 2]));
                    }
                    return Some(match self.probe_v4(b1, [reply, orig], meta, now) {
                        Probe::Found(x, n1) => ([b0, b1], Some(x), [n0, n1], [false; 2]),
                        Probe::Miss(n1) => ([b0, b1], None, [n0, n1], [false; 2]),
                        Probe::Expired => {
                            let t1 = t0.invert()?;
                            let (clash, n1, del1) = self.probe(b1, &t1, zone, now);
                            ([b0, b1], clash, [n0, n1], [false, del1])
                        }
                    });
                }
                Probe::Expired => {}
            }
        }
        self.confirm_probes_general(idx, t0, zone, now)
    }

    /// [`Self::confirm_probes`] for any tuple: builds the inverse and walks with the general compares.
    #[allow(clippy::type_complexity)]
    fn confirm_probes_general(
        &mut self,
        idx: u32,
        t0: &Tuple,
        zone: u16,
        now: u64,
    ) -> Option<([usize; 2], Option<(u32, usize)>, [u32; 2], [bool; 2])> {
        let t1 = match self.nat_reply_of(idx) {
            Some(r) => r,
            None => t0.invert()?,
        };
        let b0 = self.bucket(t0, zone);
        let b1 = self.bucket(&t1, zone);
        // One walk per chain: the clash lookup (nf_conntrack_find of both tuples) also measures the chain.
        let (clash, n0, del0) = self.probe(b0, t0, zone, now);
        let (clash, n1, del1) = match clash {
            Some(x) => (Some(x), 0, false),
            None => self.probe(b1, &t1, zone, now),
        };
        Some(([b0, b1], clash, [n0, n1], [del0, del1]))
    }

    /// [`Self::probe`]'s read-only walk for an IPv4 tuple given as packed words: `key[dir]` (addresses, ports)
    /// is what an entry reached in direction `dir` holds as its original tuple, `meta` the zone and protocols
    /// (as `lean::lookup_tcp4` packs them).
    #[inline(always)]
    fn probe_v4(&self, b: usize, key: [(u64, u32); 2], meta: u32, now: u64) -> Probe {
        let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
        let mut n = 0;
        while cur != NONE_IDX {
            let node = cur >> 1;
            let dir = (cur & 1) as usize;
            let Some(c) = self.conns.get(node as usize) else {
                break;
            };
            n += 1;
            let o = &c.orig;
            let oa = u64::from(u32::from_le_bytes([o.src[0], o.src[1], o.src[2], o.src[3]]))
                | u64::from(u32::from_le_bytes([o.dst[0], o.dst[1], o.dst[2], o.dst[3]])) << 32;
            let op = u32::from(o.sport) | u32::from(o.dport) << 16;
            let om = u32::from(c.zone) | u32::from(o.l3) << 16 | u32::from(o.l4) << 24;
            if (oa, op) == key[dir] && om == meta {
                if Self::expired(c, now) {
                    return Probe::Expired;
                }
                return Probe::Found((node, dir), n.min(MAX_CHAINLEN + 1));
            }
            cur = c.next[dir];
        }
        Probe::Miss(n.min(MAX_CHAINLEN + 1))
    }

    /// Confirms entry `idx` (its relative timeout becomes absolute, IPS_CONFIRMED) and threads it into the
    /// chains of its original (`b[0]`) and reply (`b[1]`) buckets, in that order.
    #[inline(always)]
    fn link_confirmed(&mut self, idx: u32, b: [usize; 2], now: u64) {
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        c.timeout = c.timeout.wrapping_add(tick(now));
        c.status |= ips::CONFIRMED;
        for (dir, b) in b.into_iter().enumerate() {
            if let Some(h) = self.heads.get_mut(b) {
                c.next[dir] = *h;
                *h = idx << 1 | dir as u32;
                if let Some(n) = self.chain_lens.get_mut(b) {
                    *n = n.saturating_add(1);
                }
            } else {
                c.next[dir] = NONE_IDX;
            }
        }
    }

    fn unlink(&mut self, idx: u32) {
        for dir in 0..2 {
            let Some(c) = self.conns.get(idx as usize) else {
                return;
            };
            let t = self.tuple_of(idx, c, dir);
            let b = self.bucket(&t, c.zone);
            let me = idx << 1 | dir as u32;
            let my_next = c.next[dir];
            let mut prev: Option<u32> = None;
            let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
            while cur != NONE_IDX && cur != me {
                prev = Some(cur);
                cur = self
                    .conns
                    .get((cur >> 1) as usize)
                    .map_or(NONE_IDX, |c| c.next[(cur & 1) as usize]);
            }
            if cur != me {
                continue;
            }
            if let Some(n) = self.chain_lens.get_mut(b) {
                *n = n.saturating_sub(1);
            }
            match prev {
                None => {
                    if let Some(h) = self.heads.get_mut(b) {
                        *h = my_next;
                    }
                }
                Some(p) => {
                    if let Some(pc) = self.conns.get_mut((p >> 1) as usize) {
                        pc.next[(p & 1) as usize] = my_next;
                    }
                }
            }
        }
    }

    fn chain_len(&self, b: usize) -> u32 {
        let mut n = 0;
        let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
        while cur != NONE_IDX && n <= MAX_CHAINLEN {
            n += 1;
            cur = self
                .conns
                .get((cur >> 1) as usize)
                .map_or(NONE_IDX, |c| c.next[(cur & 1) as usize]);
        }
        n
    }

    fn free_slot(&mut self, idx: u32) {
        if let Some(c) = self.conns.get_mut(idx as usize) {
            if !c.live() {
                return;
            }
            c.generation = 0;
            c.status = 0;
            c.next = [NONE_IDX; 2];
            self.count = self.count.saturating_sub(1);
            self.free.push(idx);
            if !self.ftp.is_empty() {
                self.ftp.remove(&idx);
            }
            if !self.seqadj.is_empty() {
                self.seqadj.remove(&idx);
            }
            if !self.masters.is_empty() {
                self.masters.remove(&idx);
            }
            if !self.nat_reply.is_empty() && self.nat_reply.remove(&idx).is_some() {
                let k = nat::SrcKey::of(&c.orig, c.zone);
                if self.nat_bysource.get(&k) == Some(&idx) {
                    self.nat_bysource.remove(&k);
                }
            }
        }
    }

    /// `nf_ct_delete` + the final put: unlink a confirmed entry, drop its expectations, emit DESTROY, free it.
    fn delete(&mut self, idx: u32, now: u64) {
        self.kill(idx, now);
        self.free_slot(idx);
    }

    /// `nf_ct_kill` while a packet still holds the entry: it leaves the table (DESTROY, expectations removed,
    /// `IPS_DYING`) but stays readable until that packet is released.
    fn kill(&mut self, idx: u32, now: u64) {
        self.kill_with(idx, now, true);
    }

    /// [`Self::kill`]; `unlink` false when the caller already took the entry out of the chains
    /// ([`Self::reap`]).
    fn kill_with(&mut self, idx: u32, now: u64, unlink: bool) {
        let Some(c) = self.conns.get(idx as usize) else {
            return;
        };
        if !c.live() || c.status & ips::DYING != 0 {
            return;
        }
        let confirmed = c.status & ips::CONFIRMED != 0;
        let generation = c.generation;
        if confirmed {
            if unlink {
                self.unlink(idx);
            }
            self.event(CtEventKind::Destroy, idx, now);
        }
        if let Some(c) = self.conns.get_mut(idx as usize) {
            c.status |= ips::DYING;
        }
        let before = self.expects.len();
        self.expects
            .retain(|e| !(e.master.idx == idx && e.master.generation == generation));
        self.stats.expect_delete += (before - self.expects.len()) as u64;
    }

    /// `early_drop`: scan up to 8 buckets from the new tuple's bucket, deleting confirmed, non-ASSURED entries
    /// of the first bucket that has any.
    fn early_drop(&mut self, t: &Tuple, zone: u16, now: u64) -> bool {
        let n = self.heads.len();
        let mut b = self.bucket(t, zone);
        for _ in 0..NF_CT_EVICTION_RANGE {
            let mut victims = Vec::new();
            let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
            while cur != NONE_IDX {
                let node = cur >> 1;
                let Some(c) = self.conns.get(node as usize) else {
                    break;
                };
                if Self::expired(c, now)
                    || c.status & ips::ASSURED == 0 && c.status & ips::CONFIRMED != 0
                {
                    victims.push((node, c.status & ips::ASSURED == 0 && !Self::expired(c, now)));
                }
                cur = c.next[(cur & 1) as usize];
            }
            victims.sort_unstable();
            victims.dedup_by_key(|v| v.0);
            let mut drops = 0;
            for (v, is_drop) in victims {
                self.delete(v, now);
                if is_drop {
                    drops += 1;
                }
            }
            if drops > 0 {
                self.stats.early_drop += drops;
                return true;
            }
            b = (b + 1) % n;
        }
        false
    }

    fn alloc(&mut self, orig: Tuple, zone: u16, now: u64) -> Option<u32> {
        self.count += 1;
        if self.settings.max != 0
            && self.count > self.settings.max
            && !self.early_drop(&orig, zone, now)
        {
            self.count -= 1;
            return None;
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let idx = match self.free.pop() {
            Some(i) => {
                // Field by field: the slot is written in place, not built aside and copied.
                if let Some(s) = self.conns.get_mut(i as usize) {
                    s.orig = orig;
                    s.zone = zone;
                    s.status = 0;
                    s.mark = 0;
                    s.generation = generation;
                    s.timeout = 0;
                    s.next = [NONE_IDX; 2];
                    s.l4 = L4State::None;
                }
                i
            }
            None => self.alloc_new_slot(orig, zone, generation),
        };
        if self.settings.acct {
            if self.acct.len() < self.conns.len() {
                self.acct.resize(self.conns.len(), Acct::default());
            }
            if let Some(a) = self.acct.get_mut(idx as usize) {
                *a = Acct::default();
            }
        }
        Some(idx)
    }

    /// [`Self::alloc`] when the free list is empty: the slab grows by one entry.
    #[cold]
    #[inline(never)]
    fn alloc_new_slot(&mut self, orig: Tuple, zone: u16, generation: u32) -> u32 {
        let c = Conn {
            orig,
            zone,
            status: 0,
            mark: 0,
            generation,
            timeout: 0,
            next: [NONE_IDX; 2],
            l4: L4State::None,
        };
        crate::memhint::push(&mut self.conns, c);
        (self.conns.len() - 1) as u32
    }

    /// `nf_ct_find_expectation`: consumes a matching expectation.
    fn find_expectation(&mut self, t: &Tuple, zone: u16, now: u64) -> Option<Expect> {
        self.expects.retain(|e| e.expires > now);
        let pos = self.expects.iter().position(|e| {
            e.zone == zone
                && e.tuple.l3 == t.l3
                && e.tuple.l4 == t.l4
                && e.tuple.src == t.src
                && e.tuple.dst == t.dst
                && e.tuple.dport == t.dport
        })?;
        let e = self.expects.remove(pos);
        let master = self.conn(e.master)?;
        if master.status & ips::CONFIRMED == 0 {
            return None;
        }
        Some(e)
    }

    #[inline]
    fn resolve_normal_ct(&mut self, l3: &[u8], l4: &L4, zone: u16, now: u64) -> Resolve {
        let Some(t) = Tuple::from_packet(l3, l4.nfproto, l4.proto, l4.dataoff) else {
            return Resolve::Invalid;
        };
        let b = self.bucket(&t, zone);
        let (idx, dir) = match self.find_in(b, &t, zone, now) {
            Some(x) => {
                self.stats.found += 1;
                x
            }
            None => match self.init_conntrack(&t, zone, now) {
                Ok(idx) => (idx, 0),
                Err(r) => return r,
            },
        };
        let Some(c) = self.conns.get(idx as usize) else {
            return Resolve::Invalid;
        };
        let ctinfo = if dir == 1 {
            CtInfo::EstablishedReply
        } else if c.status & ips::SEEN_REPLY != 0 {
            CtInfo::Established
        } else if c.status & ips::EXPECTED != 0 {
            CtInfo::Related
        } else {
            CtInfo::New
        };
        Resolve::Ok(
            ConnId {
                idx,
                generation: c.generation,
            },
            ctinfo,
        )
    }

    /// `init_conntrack`: a fresh, unconfirmed entry for `t` (expectation or helper attached).
    #[inline(never)]
    fn init_conntrack(&mut self, t: &Tuple, zone: u16, now: u64) -> Result<u32, Resolve> {
        // Only ICMP / ICMPv6 types can lack an inverse.
        if matches!(t.l4, proto::ICMP | proto::ICMPV6) && t.invert().is_none() {
            return Err(Resolve::Invalid);
        }
        let Some(idx) = self.alloc(*t, zone, now) else {
            self.stats.drop += 1;
            return Err(Resolve::Drop);
        };
        // The reply bucket, which confirm will walk and link into, kept in the reply link until then; its head
        // is not in the cache yet (the lookup read the original bucket's): ask for it now.
        let b1 = self.reply_bucket(t, zone);
        if let Some(c) = self.conns.get_mut(idx as usize) {
            c.next[1] = b1 as u32;
        }
        if let Some(h) = self.heads.get(b1) {
            crate::memhint::prefetch(h);
        }
        let exp = if self.expects.is_empty() {
            None
        } else {
            self.find_expectation(t, zone, now)
        };
        if let Some(e) = exp {
            let master_mark = self.conn(e.master).map_or(0, |m| m.mark);
            if let Some(c) = self.conns.get_mut(idx as usize) {
                c.status |= ips::EXPECTED;
                c.mark = master_mark;
            }
            self.masters.insert(idx, e.master);
            self.stats.expect_new += 1;
            if e.follow_master {
                self.nf_nat_follow_master(idx, &e, now);
            }
        } else if t.l4 == proto::TCP
            && !self.settings.ftp_ports.is_empty()
            && self.settings.ftp_ports.contains(&t.dport)
        {
            self.set_helper_idx(idx, Helper::Ftp);
        }
        Ok(idx)
    }

    fn set_helper_idx(&mut self, idx: u32, h: Helper) {
        if let Some(c) = self.conns.get_mut(idx as usize) {
            // FTP is the only helper: IPS_HELPER names it.
            let Helper::Ftp = h;
            c.status |= ips::HELPER;
            self.ftp.insert(idx, ftp::FtpInfo::default());
        }
    }

    /// `ct helper set`: attach a helper to the packet's still unconfirmed entry. False if there is none.
    pub fn set_helper(&mut self, nfct: &Nfct, h: Helper) -> bool {
        if let Nfct::Ct { id, .. } = nfct
            && self
                .conn(*id)
                .is_some_and(|c| c.status & (ips::CONFIRMED | ips::HELPER) == 0)
        {
            self.set_helper_idx(id.idx, h);
            return true;
        }
        false
    }

    /// Sets `IPS_*` status bits on the packet's entry (NAT bindings set up by the table engines).
    pub fn set_status_bits(&mut self, nfct: &Nfct, bits: u32) {
        if let Nfct::Ct { id, .. } = nfct
            && let Some(c) = self.conn_mut(*id)
        {
            c.status |= bits;
        }
    }

    /// `nf_ct_set_closing` (`nf_conntrack_tcp_set_closing`), called by `nf_send_reset` once it has sent a reset
    /// for the packet: a confirmed TCP entry moves to CLOSE, with CLOSE's timeout unless it already was in
    /// CLOSE or has a fixed timeout.
    pub fn set_closing(&mut self, nfct: &Nfct, now: u64) {
        let close_s = self.settings.tcp_timeouts[usize::from(tcp::state::CLOSE)];
        let Nfct::Ct { id, .. } = nfct else { return };
        let Some(c) = self.conn_mut(*id) else { return };
        if c.status & ips::CONFIRMED == 0 {
            return;
        }
        let L4State::Tcp(t) = &mut c.l4 else { return };
        let old = t.state;
        t.state = tcp::state::CLOSE;
        if old == tcp::state::CLOSE || c.status & ips::FIXED_TIMEOUT != 0 {
            return;
        }
        c.timeout = tick(now).wrapping_add(close_s.saturating_mul(1000));
        self.event(CtEventKind::Update, id.idx, now);
    }

    /// `ct mark set`.
    pub fn set_mark(&mut self, nfct: &Nfct, mark: u32) {
        if let Nfct::Ct { id, .. } = nfct
            && let Some(c) = self.conn_mut(*id)
        {
            c.mark = mark;
        }
    }

    /// `nf_conntrack_inet_error`: RELATED via the embedded packet, or INVALID.
    fn inet_error(
        &mut self,
        l3: &[u8],
        inner_off: usize,
        outer_daddr: [u8; 16],
        zone: u16,
        now: u64,
    ) -> Nfct {
        let Some(inner) = l3.get(inner_off..) else {
            return Nfct::None;
        };
        let Some(il4) = get_l4proto_inner(inner) else {
            return Nfct::None;
        };
        let Some(orig) = Tuple::from_packet(inner, il4.nfproto, il4.proto, il4.dataoff) else {
            return Nfct::None;
        };
        let Some(inv) = orig.invert() else {
            return Nfct::None;
        };
        let Some((idx, dir)) = self.find(&inv, zone, now) else {
            return Nfct::None;
        };
        let Some(c) = self.conns.get(idx as usize) else {
            return Nfct::None;
        };
        let td = self.tuple_of(idx, c, dir);
        if td.dst != outer_daddr {
            return Nfct::None;
        }
        let ctinfo = if dir == 1 {
            CtInfo::RelatedReply
        } else {
            CtInfo::Related
        };
        Nfct::Ct {
            id: ConnId {
                idx,
                generation: c.generation,
            },
            ctinfo,
        }
    }

    /// Packet / byte counters (`nf_ct_acct_update`), when `Settings::acct`.
    #[inline]
    fn account(&mut self, idx: u32, dir: usize, len: usize) {
        if self.acct.is_empty() {
            return;
        }
        if let Some(a) = self.acct.get_mut(idx as usize)
            && let (Some(p), Some(b)) = (a.packets.get_mut(dir), a.bytes.get_mut(dir))
        {
            *p += 1;
            *b += len as u64;
        }
    }

    fn refresh_acct(&mut self, idx: u32, dir: usize, len: usize, timeout_s: Option<u32>, now: u64) {
        if let Some(c) = self.conns.get_mut(idx as usize)
            && let Some(t) = timeout_s
            && c.status & ips::FIXED_TIMEOUT == 0
        {
            let extra = t.saturating_mul(1000);
            c.timeout = if c.status & ips::CONFIRMED != 0 {
                tick(now).wrapping_add(extra)
            } else {
                extra
            };
        }
        if let Some(a) = self.acct.get_mut(idx as usize)
            && let (Some(p), Some(b)) = (a.packets.get_mut(dir), a.bytes.get_mut(dir))
        {
            *p += 1;
            *b += len as u64;
        }
    }

    /// `nf_conntrack_in` for an IP datagram `l3` (starting at the network header, trimmed to its length) at
    /// `hook` and virtual time `now` (ns). Updates `nfct`; returns the verdict (Drop only for "table full").
    #[inline]
    pub fn conntrack_in(&mut self, l3: &[u8], hook: Hook, now: u64, nfct: &mut Nfct) -> Verdict {
        let zone = match *nfct {
            Nfct::None => 0,
            Nfct::Template { zone } => zone,
            Nfct::Untracked | Nfct::Ct { .. } => return Verdict::Accept,
        };
        *nfct = Nfct::None;
        self.auto_gc(now);
        let csum = self.settings.checksum && hook == Hook::Prerouting;
        if !csum
            && self.fast_path
            && let Some((v, n)) = self.fast_tcp(l3, zone, now)
        {
            *nfct = n;
            return v;
        }
        self.conntrack_in_general(l3, csum, zone, now, nfct)
    }

    /// The general path of [`Self::conntrack_in`] (every protocol and case; the lean paths fall back to it).
    #[inline(never)]
    fn conntrack_in_general(
        &mut self,
        l3: &[u8],
        csum: bool,
        zone: u16,
        now: u64,
        nfct: &mut Nfct,
    ) -> Verdict {
        let Some(l4) = get_l4proto(l3) else {
            self.stats.invalid += 1;
            return Verdict::Accept;
        };
        if (l4.proto == proto::ICMP || l4.proto == proto::ICMPV6)
            && self.icmp_error(l3, &l4, csum, zone, now, nfct)
        {
            return Verdict::Accept;
        }
        let mut repeats = 0;
        loop {
            let (id, ctinfo) = match self.resolve_normal_ct(l3, &l4, zone, now) {
                Resolve::Invalid => {
                    self.stats.invalid += 1;
                    return Verdict::Accept;
                }
                Resolve::Drop => return Verdict::Drop,
                Resolve::Ok(id, ci) => (id, ci),
            };
            match self.l4_packet(id, ctinfo, l3, &l4, csum, now) {
                L4Res::Accept => {
                    *nfct = Nfct::Ct { id, ctinfo };
                    if ctinfo == CtInfo::EstablishedReply
                        && let Some(c) = self.conn_mut(id)
                        && c.status & ips::SEEN_REPLY == 0
                    {
                        c.status |= ips::SEEN_REPLY;
                        self.event(CtEventKind::Update, id.idx, now);
                    }
                    return Verdict::Accept;
                }
                L4Res::KillAcct => {
                    // The packet keeps its ct reference and ctinfo; the entry leaves the table.
                    *nfct = Nfct::Ct { id, ctinfo };
                    self.kill(id.idx, now);
                    return Verdict::Accept;
                }
                L4Res::Invalid => {
                    self.release_unconfirmed(id);
                    self.stats.invalid += 1;
                    return Verdict::Accept;
                }
                L4Res::Repeat => {
                    self.delete(id.idx, now);
                    repeats += 1;
                    if repeats > 2 {
                        self.stats.invalid += 1;
                        return Verdict::Accept;
                    }
                }
            }
        }
    }

    /// Turns the lean paths of `conntrack_in` off (on by default); the differential tests compare both.
    #[doc(hidden)]
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    /// When [`Self::conntrack_in_burst`] runs its prefetch passes (by default once the table outgrows the
    /// caches); the results never depend on it.
    pub fn set_burst_prefetch(&mut self, when: BurstPrefetch) {
        self.burst_prefetch = when;
    }

    /// `icmp_error` / `icmpv6_error` (and `nf_conntrack_inet_error`) for an ICMP or ICMPv6 packet: true when the
    /// packet is done (INVALID, UNTRACKED or RELATED in `nfct`), false when it goes on to the normal lookup.
    #[inline(never)]
    fn icmp_error(
        &mut self,
        l3: &[u8],
        l4: &L4,
        csum: bool,
        zone: u16,
        now: u64,
        nfct: &mut Nfct,
    ) -> bool {
        let icmp = l3.get(l4.dataoff..).unwrap_or(&[]);
        if icmp.len() < 8 || (csum && bad_l4_checksum(l3, l4)) {
            self.stats.error += 1;
            self.stats.invalid += 1;
            return true;
        }
        let ty = icmp[0];
        let outer_daddr = if l4.nfproto == NFPROTO_IPV4 {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(l3.get(16..20).unwrap_or(&[0; 4]));
            a
        } else {
            Ipv6Packet::new_unchecked(l3).dst_addr()
        };
        if l4.proto == proto::ICMP && l4.nfproto == NFPROTO_IPV4 {
            if ty > 18 {
                self.stats.error += 1;
                self.stats.invalid += 1;
                return true;
            }
            if icmp_is_err(ty) {
                *nfct = self.inet_error(l3, l4.dataoff + 8, outer_daddr, zone, now);
                if *nfct == Nfct::None {
                    self.stats.error += 1;
                    self.stats.invalid += 1;
                }
                return true;
            }
        } else if l4.proto == proto::ICMPV6 && l4.nfproto == NFPROTO_IPV6 {
            if icmpv6_noct(ty) {
                *nfct = Nfct::Untracked;
                return true;
            }
            // nf_conntrack_icmpv6_redirect: code 0 only; hop limit 255 from a link-local source;
            // the first ND option must be a Redirected Header, whose payload is the inner packet.
            if ty == 137 && icmp.get(1) == Some(&0) {
                let ip6 = Ipv6Packet::new_unchecked(l3);
                let src = ip6.src_addr();
                let link_local = src[0] == 0xfe && src[1] & 0xc0 == 0x80;
                let opt = l4.dataoff + 40;
                let ok = ip6.hop_limit() == 255
                    && link_local
                    && l3.get(opt + 1).is_some_and(|len| *len != 0)
                    && l3.get(opt) == Some(&4);
                if ok {
                    *nfct = self.inet_error(l3, opt + 8, outer_daddr, zone, now);
                }
                if *nfct == Nfct::None {
                    self.stats.error += 1;
                    self.stats.invalid += 1;
                }
                return true;
            }
            if ty < 128 {
                *nfct = self.inet_error(l3, l4.dataoff + 8, outer_daddr, zone, now);
                if *nfct == Nfct::None {
                    self.stats.error += 1;
                    self.stats.invalid += 1;
                }
                return true;
            }
        }
        false
    }

    #[inline(never)]
    fn release_unconfirmed(&mut self, id: ConnId) {
        if self
            .conn(id)
            .is_some_and(|c| c.status & ips::CONFIRMED == 0 || c.status & ips::DYING != 0)
        {
            self.free_slot(id.idx);
        }
    }

    /// Ends a packet's life (`kfree_skb`): an entry that never got confirmed, or was killed while the packet
    /// held it, is freed.
    #[inline]
    pub fn release(&mut self, nfct: &mut Nfct) {
        if let Nfct::Ct { id, .. } = *nfct
            && self
                .conns
                .get(id.idx as usize)
                .is_none_or(|c| c.status & (ips::CONFIRMED | ips::DYING) != ips::CONFIRMED)
        {
            self.release_unconfirmed(id);
        }
        *nfct = Nfct::None;
    }

    fn l4_packet(
        &mut self,
        id: ConnId,
        ctinfo: CtInfo,
        l3: &[u8],
        l4: &L4,
        csum: bool,
        now: u64,
    ) -> L4Res {
        let dir = ctinfo.dir();
        let idx = id.idx;
        let len = l3.len();
        let Some(c) = self.conns.get(idx as usize) else {
            return L4Res::Invalid;
        };
        let confirmed = c.status & ips::CONFIRMED != 0;
        let status = c.status;
        let th = l3.get(l4.dataoff..).unwrap_or(&[]);
        match l4.proto {
            proto::TCP => {
                if th.len() < 20 {
                    return L4Res::Invalid;
                }
                let doff = usize::from(th[12] >> 4) * 4;
                if doff < 20 || th.len() < doff {
                    return L4Res::Invalid;
                }
                if csum && bad_l4_checksum(l3, l4) {
                    return L4Res::Invalid;
                }
                let flags = th[13];
                if tcp::tcp_error(flags) {
                    return L4Res::Invalid;
                }
                let seg = tcp::Seg {
                    seq: crate::wire::be32(th, 4),
                    ack: crate::wire::be32(th, 8),
                    flags,
                    win: crate::wire::be16(th, 14),
                    payload_len: (th.len() - doff) as u32,
                    options: th.get(20..doff).unwrap_or(&[]),
                };
                let cx = tcp::TcpCtx {
                    confirmed,
                    seen_reply: status & ips::SEEN_REPLY != 0,
                    assured: status & ips::ASSURED != 0,
                    fixed_timeout: status & ips::FIXED_TIMEOUT != 0,
                    expires_ns: c.remaining_ms(now) * 1_000_000,
                    receiver_offset: if status & ips::SEQ_ADJUST != 0 {
                        self.seq_offset(idx, 1 - dir, seg.ack.wrapping_sub(1)) as u32
                    } else {
                        0
                    },
                };
                // The tracker runs on the entry in place.
                let settings = &self.settings;
                let Some(c) = self.conns.get_mut(idx as usize) else {
                    return L4Res::Invalid;
                };
                if !confirmed {
                    let mut fresh = TcpCt::default();
                    if !tcp::tcp_new(&mut fresh, &seg, settings) {
                        return L4Res::Invalid;
                    }
                    c.l4 = L4State::Tcp(fresh);
                }
                if !matches!(c.l4, L4State::Tcp(_)) {
                    c.l4 = L4State::Tcp(TcpCt::default());
                }
                let L4State::Tcp(tc) = &mut c.l4 else {
                    return L4Res::Invalid;
                };
                let v = tcp::tcp_packet(tc, dir, &seg, &cx, settings);
                match v {
                    tcp::TcpVerdict::Invalid { lower_timeout_s } => {
                        if let Some(t) = lower_timeout_s {
                            c.timeout = tick(now).wrapping_add(t.saturating_mul(1000));
                        }
                        L4Res::Invalid
                    }
                    tcp::TcpVerdict::Repeat => L4Res::Repeat,
                    tcp::TcpVerdict::AcceptNoRefresh => L4Res::Accept,
                    tcp::TcpVerdict::KillAcct => {
                        self.refresh_acct(idx, dir, len, None, now);
                        L4Res::KillAcct
                    }
                    tcp::TcpVerdict::Refresh {
                        timeout_s,
                        assured,
                        changed,
                    } => {
                        if c.status & ips::FIXED_TIMEOUT == 0 {
                            let extra = timeout_s.saturating_mul(1000);
                            c.timeout = if confirmed {
                                tick(now).wrapping_add(extra)
                            } else {
                                extra
                            };
                        }
                        if changed && confirmed {
                            self.event(CtEventKind::Update, idx, now);
                        }
                        if assured {
                            if let Some(c) = self.conns.get_mut(idx as usize) {
                                c.status |= ips::ASSURED;
                            }
                            self.event(CtEventKind::Assured, idx, now);
                        }
                        self.account(idx, dir, len);
                        L4Res::Accept
                    }
                }
            }
            proto::UDP | proto::UDPLITE => {
                if th.len() < 8 {
                    return L4Res::Invalid;
                }
                let ulen = usize::from(crate::wire::be16(th, 4));
                if l4.proto == proto::UDP && (ulen > th.len() || ulen < 8) {
                    return L4Res::Invalid;
                }
                if csum && bad_l4_checksum(l3, l4) {
                    return L4Res::Invalid;
                }
                let mut stream_ts: u32 = match c.l4 {
                    L4State::Udp { stream_ts } => stream_ts,
                    _ => 0,
                };
                if !confirmed {
                    stream_ts = tick(now).wrapping_add(2000);
                }
                if let Some(c) = self.conns.get_mut(idx as usize) {
                    c.l4 = L4State::Udp { stream_ts };
                }
                if status & ips::SEEN_REPLY != 0 {
                    let mut extra = self.settings.udp_timeout;
                    let mut stream = false;
                    if (stream_ts.wrapping_sub(tick(now)) as i32) < 0 {
                        extra = self.settings.udp_timeout_stream;
                        stream = status & ips::ASSURED == 0;
                    }
                    self.refresh_acct(idx, dir, len, Some(extra), now);
                    if status & ips::NAT_CLASH != 0 {
                        return L4Res::Accept;
                    }
                    if stream {
                        if let Some(c) = self.conns.get_mut(idx as usize) {
                            c.status |= ips::ASSURED;
                        }
                        self.event(CtEventKind::Assured, idx, now);
                    }
                } else {
                    self.refresh_acct(idx, dir, len, Some(self.settings.udp_timeout), now);
                }
                L4Res::Accept
            }
            proto::ICMP if l4.nfproto == NFPROTO_IPV4 => {
                if !matches!(c.orig.icmp_type(), 8 | 13 | 15 | 17) {
                    return L4Res::Invalid;
                }
                self.refresh_acct(idx, dir, len, Some(self.settings.icmp_timeout), now);
                L4Res::Accept
            }
            proto::ICMPV6 if l4.nfproto == NFPROTO_IPV6 => {
                if !confirmed && !matches!(c.orig.icmp_type(), 128 | 139) {
                    return L4Res::Invalid;
                }
                self.refresh_acct(idx, dir, len, Some(self.settings.icmpv6_timeout), now);
                L4Res::Accept
            }
            proto::ICMP | proto::ICMPV6 => L4Res::Invalid,
            proto::GRE => {
                // nf_conntrack_gre_packet
                if status & ips::SEEN_REPLY != 0 {
                    self.refresh_acct(idx, dir, len, Some(self.settings.gre_timeout_stream), now);
                    if status & (ips::ASSURED | ips::NAT_CLASH) == 0 {
                        if let Some(c) = self.conns.get_mut(idx as usize) {
                            c.status |= ips::ASSURED;
                        }
                        self.event(CtEventKind::Assured, idx, now);
                    }
                } else {
                    self.refresh_acct(idx, dir, len, Some(self.settings.gre_timeout), now);
                }
                L4Res::Accept
            }
            _ => {
                self.refresh_acct(idx, dir, len, Some(self.settings.generic_timeout), now);
                L4Res::Accept
            }
        }
    }

    /// `nf_confirm` at INPUT / POSTROUTING: runs the entry's helper, then `__nf_conntrack_confirm` (for entries
    /// whose packets no helper rewrites: see [`Self::confirm_mangled`]).
    pub fn confirm(&mut self, l3: &[u8], now: u64, nfct: &mut Nfct) -> Verdict {
        self.confirm_mangled(l3, now, nfct).0
    }

    /// [`Self::confirm_mangled`] then [`Self::fill_pkt_state`], when confirming has nothing to do: the packet's
    /// entry (if any) is already confirmed (or the packet is a reply) and has no helper or sequence adjustment to
    /// run. `None`, having changed nothing, otherwise.
    #[inline]
    pub fn confirmed(&self, nfct: &Nfct, p: &mut PktState) -> Option<Verdict> {
        if let Nfct::Ct { id, ctinfo } = *nfct {
            let c = self.conn(id)?;
            let helped =
                c.status & (ips::HELPER | ips::SEQ_ADJUST) != 0 && ctinfo != CtInfo::RelatedReply;
            if helped || (c.status & ips::CONFIRMED == 0 && ctinfo.dir() == 0) {
                return None;
            }
        }
        self.fill_facts(nfct, p);
        Some(Verdict::Accept)
    }

    /// `nf_confirm`: runs the entry's helper (on a NATed connection the FTP helper rewrites the command it
    /// finds), then `nf_ct_seq_adjust` for an entry with `IPS_SEQ_ADJUST`, then `__nf_conntrack_confirm`. The
    /// datagram comes back when it was rewritten (its length may have changed).
    pub fn confirm_mangled(
        &mut self,
        l3: &[u8],
        now: u64,
        nfct: &mut Nfct,
    ) -> (Verdict, Option<Vec<u8>>) {
        let Nfct::Ct { id, ctinfo } = *nfct else {
            return (Verdict::Accept, None);
        };
        let Some(c) = self.conn(id) else {
            return (Verdict::Accept, None);
        };
        let mut out = None;
        if c.status & (ips::HELPER | ips::SEQ_ADJUST) != 0 && ctinfo != CtInfo::RelatedReply {
            let helped = if c.has_ftp() {
                self.ftp_help(id, ctinfo, l3, now)
            } else {
                nat_helper::HelperNat::Accept
            };
            let adjusted = match helped {
                nat_helper::HelperNat::Drop => Err(()),
                nat_helper::HelperNat::Accept => self.nat_seq_adjust(id, ctinfo, l3, None),
                nat_helper::HelperNat::Mangled(d) => self.nat_seq_adjust(id, ctinfo, l3, Some(d)),
            };
            let Ok(d) = adjusted else {
                self.stats.drop += 1;
                self.release(nfct);
                return (Verdict::Drop, None);
            };
            out = d;
        }
        (self.confirm_entry(id, ctinfo, now, nfct), out)
    }

    /// `__nf_conntrack_confirm` for the entry of a packet that passed its helper.
    fn confirm_entry(&mut self, id: ConnId, ctinfo: CtInfo, now: u64, nfct: &mut Nfct) -> Verdict {
        let Some(c) = self.conn(id) else {
            return Verdict::Accept;
        };
        if c.status & ips::CONFIRMED != 0 || ctinfo.dir() != 0 {
            return Verdict::Accept;
        }
        // __nf_conntrack_confirm
        let t0 = c.orig;
        let zone = c.zone;
        // init_conntrack left the reply bucket in the entry's (still unused) reply link.
        let b1 = c.next[1] as usize;
        let Some(([b0, b1], clash, [mut n0, n1], [del0, del1])) =
            self.confirm_probes(id.idx, &t0, zone, b1, now)
        else {
            return Verdict::Accept;
        };
        if let Some((other, _)) = clash {
            let is_udp = matches!(t0.l4, proto::UDP | proto::UDPLITE);
            // nf_ct_resolve_clash: UDP may adopt the entry in the table (__nf_ct_resolve_clash); failing that,
            // the entry holding the packet's reply tuple decides (nf_ct_resolve_clash_harder). With none (the
            // clash was in the original direction only) the kernel inserts the packet's entry for replies only;
            // here the packet adopts the one in the table.
            let adopt = if !is_udp {
                None
            } else if self.may_adopt(id.idx, other) {
                Some(other)
            } else {
                let t1 = self.nat_reply_of(id.idx).or_else(|| t0.invert());
                match t1.and_then(|t1| self.probe(b1, &t1, zone, now).0) {
                    Some((h, _)) => (h != other && self.may_adopt(id.idx, h)).then_some(h),
                    None => Some(other),
                }
            };
            if let Some(other) = adopt
                && let Some(oc) = self.conns.get(other as usize)
            {
                // Adopt the existing entry.
                let og = oc.generation;
                let mine = self.acct.get(id.idx as usize).copied().unwrap_or_default();
                if let Some(oa) = self.acct.get_mut(other as usize) {
                    oa.packets[0] += mine.packets[0];
                    oa.bytes[0] += mine.bytes[0];
                }
                self.free_slot(id.idx);
                self.stats.clash_resolve += 1;
                *nfct = Nfct::Ct {
                    id: ConnId {
                        idx: other,
                        generation: og,
                    },
                    ctinfo,
                };
                return Verdict::Accept;
            }
            self.stats.insert_failed += 1;
            self.stats.drop += 1;
            self.release(nfct);
            return Verdict::Drop;
        }
        if del1 || (del0 && b0 == b1) {
            n0 = self.chain_len(b0);
        }
        if n0 >= MAX_CHAINLEN || n1 >= MAX_CHAINLEN {
            self.stats.chaintoolong += 1;
            self.stats.insert_failed += 1;
            self.stats.drop += 1;
            self.release(nfct);
            return Verdict::Drop;
        }
        let has_master = !self.masters.is_empty() && self.masters.contains_key(&id.idx);
        self.link_confirmed(id.idx, [b0, b1], now);
        self.stats.insert += 1;
        self.event(
            if has_master {
                CtEventKind::Related
            } else {
                CtEventKind::New
            },
            id.idx,
            now,
        );
        Verdict::Accept
    }

    /// `__nf_conntrack_resolve_clash`'s test: a packet whose unconfirmed entry `loser` clashes with the entry
    /// `winner` in the table may take `winner` when that has no NAT binding yet or the same tuples both ways
    /// (`nf_ct_match`).
    fn may_adopt(&self, loser: u32, winner: u32) -> bool {
        let (Some(l), Some(w)) = (
            self.conns.get(loser as usize),
            self.conns.get(winner as usize),
        ) else {
            return false;
        };
        w.status & ips::NAT_DONE_MASK == 0
            || (w.zone == l.zone
                && self.tuple_of(winner, w, 0) == self.tuple_of(loser, l, 0)
                && self.tuple_of(winner, w, 1) == self.tuple_of(loser, l, 1))
    }

    /// The FTP helper's `help()`: an expectation for the data connection a command announces; on a NATed
    /// connection `nf_nat_ftp` makes it and rewrites the command.
    fn ftp_help(
        &mut self,
        id: ConnId,
        ctinfo: CtInfo,
        l3: &[u8],
        now: u64,
    ) -> nat_helper::HelperNat {
        use nat_helper::HelperNat;
        if ctinfo != CtInfo::Established && ctinfo != CtInfo::EstablishedReply {
            return HelperNat::Accept;
        }
        let dir = ctinfo.dir();
        let Some(l4) = get_l4proto(l3) else {
            return HelperNat::Accept;
        };
        let Some(th) = l3.get(l4.dataoff..) else {
            return HelperNat::Accept;
        };
        if th.len() < 20 {
            return HelperNat::Accept;
        }
        let dataoff = l4.dataoff + usize::from(th[12] >> 4) * 4;
        if dataoff >= l3.len() {
            return HelperNat::Accept;
        }
        let data = l3.get(dataoff..).unwrap_or(&[]);
        let seq = crate::wire::be32(th, 4);
        let ends_in_nl = data.last() == Some(&b'\n');
        let nl_seq = seq.wrapping_add(data.len() as u32);
        let Some(c) = self.conn(id) else {
            return HelperNat::Accept;
        };
        let orig = c.orig;
        let zone = c.zone;
        let tdir = self.tuple_of(id.idx, c, dir);
        let tother = self.tuple_of(id.idx, c, 1 - dir);
        let nat = c.status & ips::NAT_MASK != 0;
        let mut info = self.ftp.get(&id.idx).copied().unwrap_or_default();
        let mut ret = HelperNat::Accept;
        if info.find_nl_seq(seq, dir) {
            let base = ftp::FtpCmd {
                addr: tdir.src,
                port: 0,
            };
            match ftp::match_command(data, dir, orig.l3 == NFPROTO_IPV6, base) {
                ftp::FtpMatch::Partial => {
                    // NF_DROP without updating the newline memory.
                    return HelperNat::Drop;
                }
                ftp::FtpMatch::None => {}
                ftp::FtpMatch::Found { cmd, ty, off, len } => {
                    if cmd.addr == tdir.src {
                        let exp = Expect {
                            tuple: Tuple {
                                src: tother.src,
                                dst: tother.dst,
                                sport: 0,
                                dport: cmd.port,
                                l3: orig.l3,
                                l4: proto::TCP,
                            },
                            zone,
                            master: id,
                            expires: now + 300 * NS,
                            helper: Helper::Ftp,
                            follow_master: false,
                            saved_port: 0,
                            dir: 0,
                        };
                        ret = if nat {
                            self.nf_nat_ftp(
                                id,
                                ctinfo,
                                l3,
                                l4.dataoff,
                                exp,
                                ty,
                                dataoff + off,
                                len,
                                now,
                            )
                        } else if self.expect_related(exp, now).is_ok() {
                            HelperNat::Accept
                        } else {
                            HelperNat::Drop
                        };
                    }
                }
            }
        }
        if matches!(ret, HelperNat::Drop) {
            return ret;
        }
        if ends_in_nl {
            info.update_nl_seq(nl_seq, dir);
        }
        self.ftp.insert(id.idx, info);
        ret
    }

    /// `nf_ct_expect_related` with the FTP policy (max_expected 1, replace identical, global expect_max).
    fn expect_related(&mut self, exp: Expect, now: u64) -> Result<(), nat_helper::ExpectError> {
        self.expects.retain(|e| e.expires > now);
        if let Some(pos) = self
            .expects
            .iter()
            .position(|e| e.tuple == exp.tuple && e.zone == exp.zone)
        {
            if self.expects[pos].master != exp.master {
                return Err(nat_helper::ExpectError::Busy);
            }
            self.expects.remove(pos);
            self.stats.expect_delete += 1;
        }
        if let Some(pos) = self.expects.iter().rposition(|e| e.master == exp.master) {
            self.expects.remove(pos);
            self.stats.expect_delete += 1;
        }
        if self.expects.len() as u32 >= self.settings.expect_max {
            return Err(nat_helper::ExpectError::Full);
        }
        self.expects.push(exp);
        self.stats.expect_create += 1;
        Ok(())
    }

    /// The periodic gc worker on virtual time: every [`GC_INTERVAL_MS`] of packet time, expired entries are
    /// reaped (this also keeps the wrapping millisecond timeouts meaningful over long captures).
    #[inline]
    fn auto_gc(&mut self, now: u64) {
        let t = tick(now);
        if t.wrapping_sub(self.last_gc) >= GC_INTERVAL_MS {
            self.auto_gc_pass(now, t);
        }
    }

    #[cold]
    #[inline(never)]
    fn auto_gc_pass(&mut self, now: u64, t: u32) {
        self.last_gc = t;
        // Without live entries there is nothing to scan for.
        if self.count != 0 {
            let victims =
                self.victims(|c| c.live() && c.status & ips::DYING == 0 && Self::expired(c, now));
            self.reap(&victims, now);
            self.gc_scratch = victims;
        }
        self.expects.retain(|e| e.expires > now);
    }

    /// The slab indices (ascending) of the entries `doomed` picks, in the reused scratch vector (take it back
    /// into `gc_scratch` after use).
    #[inline]
    fn victims(&mut self, doomed: impl Fn(&Conn) -> bool) -> Vec<u32> {
        let mut v = std::mem::take(&mut self.gc_scratch);
        v.clear();
        v.extend(
            self.conns
                .iter()
                .enumerate()
                .filter(|(_, c)| doomed(c))
                .map(|(i, _)| i as u32),
        );
        v
    }

    /// Removes every expired entry and expectation, and entries killed while a packet held them (call between
    /// packets).
    pub fn gc(&mut self, now: u64) -> usize {
        let victims =
            self.victims(|c| c.live() && (Self::expired(c, now) || c.status & ips::DYING != 0));
        self.reap(&victims, now);
        let n = victims.len();
        self.gc_scratch = victims;
        self.expects.retain(|e| e.expires > now);
        n
    }

    /// Deletes `victims` (ascending slab indices) exactly as [`Self::delete`] on each in turn would (same events,
    /// same order of the free list, same chain order of the survivors). Many victims are unlinked in one sweep
    /// over the buckets (O(buckets + links)) instead of one chain walk each from the bucket head (the chains
    /// are singly linked). `victims` must hold every expired entry (and may hold entries that are not in the
    /// chains: unconfirmed or killed ones), as both GC passes do: the sweep unlinks the expired ones.
    fn reap(&mut self, victims: &[u32], now: u64) {
        if victims.len() * 32 < self.heads.len() + 2 * self.count as usize {
            for &v in victims {
                self.delete(v, now);
            }
            return;
        }
        // The chains hold exactly the confirmed entries not yet killed, so a chained victim is a chained entry
        // that has expired. The chains' entries lie all over the slab: one pass in slab order first copies every
        // slot's links and whether it has expired, so that the walks below read those compact copies and touch
        // the slab only to re-link a survivor.
        let (heads, conns) = (&mut self.heads[..], &mut self.conns[..]);
        let chain_lens = &mut self.chain_lens[..];
        let slots: Vec<([u32; 2], bool)> = conns
            .iter()
            .map(|c| (c.next, Self::expired(c, now)))
            .collect();
        for (head, len) in heads.iter_mut().zip(chain_lens.iter_mut()) {
            let mut prev = NONE_IDX;
            let mut cur = *head;
            while cur != NONE_IDX {
                let Some(&(next, dead)) = slots.get((cur >> 1) as usize) else {
                    break;
                };
                let next = if cur & 1 == 0 { next[0] } else { next[1] };
                if dead {
                    *len = len.saturating_sub(1);
                    if prev == NONE_IDX {
                        *head = next;
                    } else if let Some(pc) = conns.get_mut((prev >> 1) as usize) {
                        pc.next[(prev & 1) as usize] = next;
                    }
                } else {
                    prev = cur;
                }
                cur = next;
            }
        }
        if self.settings.events
            || !self.expects.is_empty()
            || !self.ftp.is_empty()
            || !self.masters.is_empty()
        {
            for &v in victims {
                self.kill_with(v, now, false);
                self.free_slot(v);
            }
            return;
        }
        // No events, expectations or side tables: `kill_with` only sets IPS_DYING, which `free_slot` clears, so
        // each victim is just freed.
        let free_one = |c: &mut Conn| {
            c.generation = 0;
            c.status = 0;
            c.next = [NONE_IDX; 2];
        };
        // The leading run of live victims (all of them from the GC passes) goes onto the free list in one copy.
        let mut live = 0;
        for &v in victims {
            match self.conns.get_mut(v as usize) {
                Some(c) if c.live() => free_one(c),
                _ => break,
            }
            live += 1;
        }
        let (run, rest) = victims.split_at(live);
        self.free.extend_from_slice(run);
        let mut freed = live as u32;
        for &v in rest {
            if let Some(c) = self.conns.get_mut(v as usize)
                && c.live()
            {
                free_one(c);
                self.free.push(v);
                freed += 1;
            }
        }
        self.count = self.count.saturating_sub(freed);
    }

    /// Fills the conntrack fields of an engine packet context from `nfct`: [`Self::fill_pkt_state`] and the
    /// facts that cost more to copy (the tuples, expiration, id and helper).
    pub fn fill_pkt(&self, nfct: &Nfct, now: u64, p: &mut PktState) {
        let Some((id, c)) = self.fill_facts(nfct, p) else {
            return;
        };
        p.ct_expiration_ms = c.remaining_ms(now).min(u64::from(u32::MAX)) as u32;
        p.ct_id = id.idx ^ id.generation.rotate_left(16);
        p.ct_helper = [0; nfr_vm::pkt::NF_CT_HELPER_NAME_LEN];
        if c.has_ftp() {
            p.ct_helper[..3].copy_from_slice(b"ftp");
        }
        p.ct_orig = c.orig.to_vm();
        p.ct_reply = self.tuple_of(id.idx, c, 1).to_vm();
    }

    /// The conntrack facts every packet's hooks read (state, direction, status, mark, zone, protocols); the rest
    /// is left as it was, for [`Self::fill_pkt`] when a ruleset reads it ([`reads_ct_facts`]).
    pub fn fill_pkt_state(&self, nfct: &Nfct, p: &mut PktState) {
        self.fill_facts(nfct, p);
    }

    /// [`Self::fill_pkt_state`], giving the entry when there is one.
    fn fill_facts(&self, nfct: &Nfct, p: &mut PktState) -> Option<(ConnId, &Conn)> {
        p.ct_state = nfct.state_bits();
        p.ct_valid = false;
        let Nfct::Ct { id, ctinfo } = nfct else {
            return None;
        };
        p.ct_direction = ctinfo.dir() as u8;
        let c = self.conn(*id)?;
        p.ct_valid = true;
        p.ct_status = c.status;
        p.ct_mark = c.mark;
        p.ct_zone = c.zone;
        p.ct_l3proto = c.orig.l3;
        p.ct_protocol = c.orig.l4;
        Some((*id, c))
    }

    /// Number of confirmed, unexpired entries.
    pub fn len(&self, now: u64) -> usize {
        self.conns
            .iter()
            .filter(|c| {
                c.live()
                    && c.status & (ips::CONFIRMED | ips::DYING) == ips::CONFIRMED
                    && !Self::expired(c, now)
            })
            .count()
    }

    pub fn is_empty(&self, now: u64) -> bool {
        self.len(now) == 0
    }

    /// The table as `conntrack -L` (conntrack-tools 1.4.7) prints it, one line per entry, creation order.
    pub fn listing(&self, now: u64) -> String {
        let mut out = String::new();
        let mut v: Vec<(u32, &Conn)> = self
            .conns
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c))
            .filter(|(_, c)| {
                c.live()
                    && c.status & (ips::CONFIRMED | ips::DYING | ips::NAT_CLASH) == ips::CONFIRMED
                    && !Self::expired(c, now)
            })
            .collect();
        v.sort_by_key(|(_, c)| c.generation);
        for (idx, c) in v {
            let a = self.acct.get(idx as usize).copied().unwrap_or_default();
            let t0 = c.orig;
            let t1 = self.tuple_of(idx, c, 1);
            let mut l = format!(
                "{:<8} {} {} ",
                t0.proto_name(),
                t0.l4,
                c.remaining_ms(now) / 1000
            );
            if let L4State::Tcp(t) = c.l4 {
                l.push_str(tcp::state_name(t.state));
                l.push(' ');
            }
            l.push_str(&t0.fmt_conntrack());
            l.push(' ');
            if self.settings.acct {
                l.push_str(&format!("packets={} bytes={} ", a.packets[0], a.bytes[0]));
            }
            if c.status & ips::SEEN_REPLY == 0 {
                l.push_str("[UNREPLIED] ");
            }
            l.push_str(&t1.fmt_conntrack());
            l.push(' ');
            if self.settings.acct {
                l.push_str(&format!("packets={} bytes={} ", a.packets[1], a.bytes[1]));
            }
            if c.status & ips::ASSURED != 0 {
                l.push_str("[ASSURED] ");
            }
            l.push_str(&format!("mark={} ", c.mark));
            if c.zone != 0 {
                l.push_str(&format!("zone={} ", c.zone));
            }
            if c.has_ftp() {
                l.push_str("helper=ftp ");
            }
            let children = self
                .masters
                .values()
                .filter(|m| m.idx == idx && m.generation == c.generation)
                .count();
            l.push_str(&format!("use={}\n", 1 + children));
            out.push_str(&l);
        }
        out
    }

    /// Snapshot of every confirmed, live entry (creation order), for tools that want data rather than text.
    pub fn entries(&self, now: u64) -> Vec<CtEntry> {
        let mut v: Vec<(u32, &Conn)> = self
            .conns
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c))
            .filter(|(_, c)| {
                c.live()
                    && c.status & (ips::CONFIRMED | ips::DYING | ips::NAT_CLASH) == ips::CONFIRMED
                    && !Self::expired(c, now)
            })
            .collect();
        v.sort_by_key(|(_, c)| c.generation);
        v.into_iter()
            .map(|(idx, c)| {
                let a = self.acct.get(idx as usize).copied().unwrap_or_default();
                CtEntry {
                    id: ConnId {
                        idx,
                        generation: c.generation,
                    },
                    orig: c.orig,
                    reply: self.tuple_of(idx, c, 1),
                    zone: c.zone,
                    status: c.status,
                    mark: c.mark,
                    timeout_ms: c.remaining_ms(now),
                    tcp_state: if let L4State::Tcp(t) = c.l4 {
                        Some(tcp::state_name(t.state))
                    } else {
                        None
                    },
                    helper: if c.has_ftp() { Some("ftp") } else { None },
                    packets: a.packets,
                    bytes: a.bytes,
                }
            })
            .collect()
    }

    /// `conntrack -F`: deletes every confirmed entry (DESTROY events) and every expectation.
    pub fn flush(&mut self, now: u64) -> usize {
        let mut n = 0;
        for i in 0..self.conns.len() as u32 {
            if self.conns.get(i as usize).is_some_and(|c| {
                c.live() && c.status & (ips::CONFIRMED | ips::DYING) == ips::CONFIRMED
            }) {
                self.delete(i, now);
                n += 1;
            }
        }
        self.expects.clear();
        n
    }

    /// Whether every bucket's [`Self::chain_lens`] is its chain's length (tests).
    #[cfg(test)]
    fn chain_lens_agree(&self) -> bool {
        (0..self.heads.len()).all(|b| {
            let mut n = 0usize;
            let mut cur = self.heads.get(b).copied().unwrap_or(NONE_IDX);
            while cur != NONE_IDX && n <= usize::from(u8::MAX) {
                n += 1;
                cur = self
                    .conns
                    .get((cur >> 1) as usize)
                    .map_or(NONE_IDX, |c| c.next[(cur & 1) as usize]);
            }
            self.chain_lens.get(b).map(|&l| usize::from(l)) == Some(n)
        })
    }

    /// Approximate heap bytes per tracked flow (slab entry + both chain links + amortised bucket heads).
    pub fn bytes_per_flow(&self) -> usize {
        std::mem::size_of::<Conn>()
    }
}

/// The datagram an ICMP or ICMPv6 error `l3` quotes, the one conntrack files the error under (RELATED to its
/// entry); `None` when `l3` is no such error. Redirects are left out.
pub fn quoted_datagram(l3: &[u8]) -> Option<&[u8]> {
    let l4 = get_l4proto(l3)?;
    let ty = *l3.get(l4.dataoff)?;
    let err = match (l4.nfproto, l4.proto) {
        (NFPROTO_IPV4, proto::ICMP) => icmp_is_err(ty),
        (NFPROTO_IPV6, proto::ICMPV6) => ty < 128,
        _ => false,
    };
    let inner = l3.get(l4.dataoff + 8..)?;
    (err && get_l4proto_inner(inner).is_some()).then_some(inner)
}

/// `get_l4proto` for the packet inside an ICMP error (`nf_ct_get_tuplepr`): no ip_rcv length checks, but a
/// non-first fragment or a header running past the data fails.
fn get_l4proto_inner(inner: &[u8]) -> Option<L4> {
    match inner.first().map(|b| b >> 4) {
        Some(4) => {
            if inner.len() < 20 {
                return None;
            }
            let ip = Ipv4Packet::new_unchecked(inner);
            if ip.frag_offset() != 0 {
                return None;
            }
            let dataoff = ip.header_len();
            if dataoff > inner.len() {
                return None;
            }
            Some(L4 {
                nfproto: NFPROTO_IPV4,
                proto: ip.protocol(),
                dataoff,
            })
        }
        Some(6) => {
            if inner.len() < 40 {
                return None;
            }
            let ip = Ipv6Packet::new_unchecked(inner);
            // The embedded datagram is usually cut: walk the chain over what is there.
            let e = ip.exthdrs_lenient().ok()?;
            if e.frag_off != 0 || e.l4proto == proto::NONE || e.l4proto == proto::FRAGMENT {
                return None;
            }
            Some(L4 {
                nfproto: NFPROTO_IPV6,
                proto: e.l4proto,
                dataoff: e.thoff,
            })
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4Res {
    Accept,
    Invalid,
    Repeat,
    KillAcct,
}

/// Whether `prog` loads a conntrack fact that [`Conntrack::fill_pkt_state`] leaves out (expiration, id, helper,
/// the tuples' addresses and ports): its chains need [`Conntrack::fill_pkt`] first.
pub fn reads_ct_facts(prog: &nfr_vm::Program) -> bool {
    use nfr_vm::insn::{CtKey, Insn};
    prog.insns.iter().any(|i| {
        matches!(
            i,
            Insn::Ct { key, .. } if !matches!(
                key,
                CtKey::State
                    | CtKey::Direction
                    | CtKey::Status
                    | CtKey::Mark
                    | CtKey::Zone
                    | CtKey::L3protocol
                    | CtKey::Protocol
            )
        )
    })
}
