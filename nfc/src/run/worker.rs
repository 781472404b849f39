//! The replay loop. A [`Worker`] owns one hook registry with the ruleset's engines, one conntrack shard and a
//! replayer; it turns frames into [`FrameRecord`]s. [`drive`] reads the capture (streamed), computes the shared
//! virtual clock (capped gaps), and either runs one worker inline or shards frames over `--threads` workers by
//! address pair and merges their records back in frame order, so the collector sees the same sequence either
//! way. Without per-frame output, [`drive_shards`] lets the workers read the capture by turns and hand each other
//! batches of their shards' frames instead.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use nfr_runtime::ct::{BURST, Conntrack, CtEvent, CtStats, Settings};
use nfr_runtime::engine::{EffectStats, EngineKind, SharedIpt, SharedProgram, TraceStep};
use nfr_runtime::hook::{HookProfile, Sent};
use nfr_runtime::pcap::{Frame, PcapReader};
use nfr_runtime::replay::{Direction, Fate, ReplayConfig, Replayer};
use nfr_runtime::wire;
use nfr_vm::program::Counter;

use super::report::{Collector, Tally};
use super::setup::Setup;
use super::{Args, path};

/// What happened to one frame.
#[derive(Debug, Clone)]
pub struct FrameRecord {
    /// 1-based frame number.
    pub no: u64,
    pub ts_ns: u64,
    pub orig_len: u32,
    pub linktype: u16,
    pub fate: Fate,
    /// The link layer's protocol (EtherType) of a frame skipped as not IP.
    pub ethertype: Option<u16>,
    pub dir: Option<Direction>,
    /// Input and output device names (empty: none), as the path model chose them.
    pub devs: Option<(String, String)>,
    /// One-line packet summary (when tracing).
    pub summary: Option<String>,
    pub trace: Vec<TraceStep>,
    pub events: Vec<CtEvent>,
    /// Frame bytes (when writing pcaps): as the packet left when it passed every hook (a forwarded packet with
    /// its TTL decremented), else as captured.
    pub data: Option<Vec<u8>>,
    /// Packets the host sent in reaction (reject answers, ICMP errors), with the steps of their trace.
    pub sent: Vec<SentRecord>,
    /// NAT rewrites (when tracing): the hook, the packet before and after (one-line summaries).
    pub rewrites: Vec<Rewritten>,
}

/// What the report counts of a frame of which nothing is printed or written.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub orig_len: u32,
    pub linktype: u16,
    pub fate: Fate,
    /// As [`FrameRecord::ethertype`].
    pub ethertype: Option<u16>,
    /// Packets the host sent in reaction, and those of them that left.
    pub sent: u32,
    pub sent_out: u32,
}

impl Counted {
    /// (`sent`, `sent_out`) of the packets the host sent in reaction.
    pub fn sent<'a>(sent: impl ExactSizeIterator<Item = &'a Sent>) -> (u32, u32) {
        let n = sent.len();
        let out = sent
            .filter(|s| s.outcome == nfr_runtime::hook::HookOutcome::Accept)
            .count();
        (n as u32, out as u32)
    }
}

/// One NAT rewrite as traces show it.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub hook: nfr_vm::Hook,
    pub before: String,
    pub after: String,
}

fn rewritten(r: &[nfr_runtime::hook::Rewrite]) -> Vec<Rewritten> {
    if r.is_empty() {
        return Vec::new();
    }
    let raw = nfr_runtime::pcap::linktype::RAW;
    r.iter()
        .map(|w| Rewritten {
            hook: w.hook,
            before: summary(raw, &w.before),
            after: summary(raw, &w.after),
        })
        .collect()
}

/// A packet the host sent in reaction to a frame.
#[derive(Debug, Clone)]
pub struct SentRecord {
    pub sent: Sent,
    /// The frame, as it would be written: the answered frame's link-layer header (Ethernet addresses swapped)
    /// and the datagram (when writing pcaps).
    pub data: Option<Vec<u8>>,
    pub summary: String,
    pub trace: Vec<TraceStep>,
    /// Its NAT rewrites (when tracing).
    pub rewrites: Vec<Rewritten>,
}

/// A worker's state at the end.
#[derive(Debug, Default)]
pub struct WorkerEnd {
    pub counters: Vec<Counter>,
    pub effects: EffectStats,
    pub ct_lines: Vec<String>,
    pub ct_stats: CtStats,
    pub ct_count: usize,
    pub kind: Option<EngineKind>,
    pub fallback: Option<String>,
    /// `--engine ipt`: per table, per entry.
    pub ipt_counters: Vec<Vec<nfr_ipt::Counters>>,
    pub profile: Option<Profile>,
    /// The elements of the sets the packet path updates (`State::dynsets`), and the time of the end.
    pub dynsets: Vec<nfr_vm::dynset::DynSet>,
    pub now: u64,
}

/// `--profile` times one frame in this many (reading, replay, report).
pub const PROFILE_EVERY: u64 = 16;

/// `--profile`: nanoseconds per stage, summed over the frames that were timed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Profile {
    /// What reading the clock costs, subtracted from every interval.
    pub clock_ns: u64,
    pub timed: u64,
    pub read_ns: u64,
    /// A frame's whole replay (parsing, routing, the hooks, its record); the hooks' share is in `hooks`.
    pub replay_ns: u64,
    pub report_ns: u64,
    pub hooks: HookProfile,
}

impl Profile {
    fn merge(&mut self, o: &Profile) {
        self.clock_ns = self.clock_ns.max(o.clock_ns);
        self.timed += o.timed;
        self.read_ns += o.read_ns;
        self.replay_ns += o.replay_ns;
        self.report_ns += o.report_ns;
        self.hooks.merge(&o.hooks);
    }
}

/// The least time a clock read takes (over a few rounds of 64).
fn clock_cost() -> u64 {
    (0..8)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..64 {
                std::hint::black_box(Instant::now());
            }
            t.elapsed().as_nanos() as u64 / 64
        })
        .min()
        .unwrap_or(0)
}

fn since(t: Option<Instant>) -> u64 {
    t.map_or(0, |t| t.elapsed().as_nanos() as u64)
}

/// The merged end of a run.
#[derive(Debug, Default)]
pub struct RunEnd {
    pub counters: Vec<Counter>,
    pub effects: EffectStats,
    pub ct_lines: Vec<String>,
    pub ct_stats: CtStats,
    pub ct_count: usize,
    pub kind: Option<EngineKind>,
    pub fallback: Option<String>,
    /// (error, byte offset, frames read) when the capture ended early.
    pub read_error: Option<(String, u64, u64)>,
    pub frames: u64,
    pub threads: usize,
    pub ipt_counters: Vec<Vec<nfr_ipt::Counters>>,
    pub profile: Option<Profile>,
    /// The elements of the sets the packet path updates (a ruleset with such sets runs on one
    /// thread), and the time of the end (ns, the replay's clock).
    pub dynsets: Vec<nfr_vm::dynset::DynSet>,
    pub now: u64,
}

#[derive(Clone, Copy)]
struct Opts {
    trace: bool,
    events: bool,
    keep_data: bool,
    /// The final conntrack table is printed (`--ct-list`, `--json`).
    ct_list: bool,
    profile: bool,
}

pub struct Worker {
    replayer: Replayer,
    prog: Option<SharedProgram>,
    ipts: Vec<SharedIpt>,
    path: path::PathModel,
    opts: Opts,
    prof: Profile,
}

impl Worker {
    /// `run(self)`, timed when `timing` (`--profile`).
    fn timed<R>(&mut self, timing: bool, run: impl FnOnce(&mut Self) -> R) -> R {
        if !timing {
            return run(self);
        }
        if let Some(p) = self.replayer.hooks.profile.as_mut() {
            p.timing = true;
        }
        let t = Some(Instant::now());
        let rec = run(self);
        self.prof.replay_ns += since(t);
        if let Some(p) = self.replayer.hooks.profile.as_mut() {
            p.timing = false;
        }
        rec
    }

    /// [`Worker::frame`], timed when `timing` (`--profile`).
    fn frame_timed(
        &mut self,
        no: u64,
        f: &Frame<'_>,
        orig_ts: u64,
        cap: Option<&path::CapDev>,
        timing: bool,
    ) -> FrameRecord {
        self.timed(timing, |w| w.frame(no, f, orig_ts, cap))
    }

    /// [`Worker::count`], timed when `timing` (`--profile`).
    fn count_timed(&mut self, f: &Frame<'_>, cap: Option<&path::CapDev>, timing: bool) -> Counted {
        self.timed(timing, |w| w.count(f, cap))
    }

    fn new(setup: &Setup, opts: Opts) -> anyhow::Result<Worker> {
        WorkerSeed::of(setup).build(opts)
    }

    /// Replays one frame through the path model's route: its fate, direction and (when tracing) devices.
    fn replay(
        &mut self,
        f: &Frame<'_>,
        cap: Option<&path::CapDev>,
    ) -> (Fate, Option<Direction>, Option<(String, String)>) {
        let mut dir = None;
        let mut devs = None;
        let path = &self.path;
        let trace = self.opts.trace;
        let fate = self.replayer.frame_with(f, |l3| {
            let d = path.decide(l3, cap);
            dir = Some(d.0);
            // Only traces print the devices (no allocation per frame otherwise).
            if trace {
                let name = |n: &[u8; 16]| {
                    let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                    String::from_utf8_lossy(n.get(..end).unwrap_or(&[])).into_owned()
                };
                devs = Some((name(&d.1.iifname), name(&d.1.oifname)));
            }
            d
        });
        (fate, dir, devs)
    }

    /// The link layer's protocol of a frame skipped as not IP.
    fn ethertype(fate: Fate, f: &Frame<'_>) -> Option<u16> {
        match fate {
            Fate::Skipped(wire::Malformed::NotIp) => wire::parse_link(f.linktype, f.data)
                .ok()
                .map(|li| li.ethertype),
            _ => None,
        }
    }

    /// Replays one frame of which nothing is printed or written (no trace, events or pcap output): only what
    /// the report counts.
    fn count(&mut self, f: &Frame<'_>, cap: Option<&path::CapDev>) -> Counted {
        let (fate, _, _) = self.replay(f, cap);
        let (sent, sent_out) = Counted::sent(self.replayer.hooks.sent.iter());
        self.replayer.hooks.sent.clear();
        Counted {
            orig_len: f.orig_len,
            linktype: f.linktype,
            fate,
            ethertype: Self::ethertype(fate, f),
            sent,
            sent_out,
        }
    }

    /// Replays one frame; `f.ts_ns` is virtual time; `cap` is the device it was captured on.
    fn frame(
        &mut self,
        no: u64,
        f: &Frame<'_>,
        orig_ts: u64,
        cap: Option<&path::CapDev>,
    ) -> FrameRecord {
        let (fate, dir, devs) = self.replay(f, cap);
        let mut trace = Vec::new();
        if self.opts.trace {
            if let Some(p) = &self.prog {
                trace.extend(
                    p.borrow_mut()
                        .trace
                        .as_mut()
                        .map(std::mem::take)
                        .unwrap_or_default(),
                );
            }
            for t in &self.ipts {
                trace.extend(
                    t.borrow_mut()
                        .trace
                        .as_mut()
                        .map(std::mem::take)
                        .unwrap_or_default(),
                );
            }
            // Steps of several tables interleave by hook order already (one packet, one walk) except that each
            // table records separately: order them by when they ran (stable sort on the hook position).
            trace.sort_by_key(|s| s.order);
        }
        // Steps of the packets the host sent in reaction belong to them (one a frame at most: a reject's answer or
        // a time exceeded).
        let mut sent_trace: Vec<TraceStep> = Vec::new();
        if !trace.is_empty() {
            trace.retain(|s| {
                if s.generated {
                    sent_trace.push(s.clone());
                }
                !s.generated
            });
        }
        let events = if self.opts.events {
            let now = self.replayer.now();
            self.replayer.ct.deliver_events(now)
        } else {
            Vec::new()
        };
        let ethertype = Self::ethertype(fate, f);
        let sent = if self.replayer.hooks.sent.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut self.replayer.hooks.sent)
                .into_iter()
                .map(|s| SentRecord {
                    trace: std::mem::take(&mut sent_trace),
                    rewrites: rewritten(&s.rewrites),
                    data: self
                        .opts
                        .keep_data
                        .then(|| with_link_header(f, &s.data, true)),
                    summary: summary(nfr_runtime::pcap::linktype::RAW, &s.data),
                    sent: s,
                })
                .collect()
        };
        FrameRecord {
            no,
            ts_ns: orig_ts,
            orig_len: f.orig_len,
            linktype: f.linktype,
            fate,
            ethertype,
            dir,
            devs,
            summary: self.opts.trace.then(|| summary(f.linktype, f.data)),
            trace,
            events,
            data: self.opts.keep_data.then(|| match &self.replayer.egress {
                Some(out) => with_link_header(f, out, false),
                None => f.data.to_vec(),
            }),
            rewrites: rewritten(&self.replayer.rewrites),
            sent,
        }
    }

    fn end(self, now: u64) -> WorkerEnd {
        let ct = &self.replayer.ct;
        let mut prof = self.prof;
        if let Some(h) = &self.replayer.hooks.profile {
            prof.hooks.merge(h);
        }
        let mut w = WorkerEnd {
            profile: self.opts.profile.then_some(prof),
            ct_lines: if self.opts.ct_list {
                ct.listing(now).lines().map(str::to_string).collect()
            } else {
                Vec::new()
            },
            ct_stats: ct.stats(),
            ct_count: ct.len(now),
            ..WorkerEnd::default()
        };
        if let Some(p) = &self.prog {
            let e = p.borrow();
            w.counters = e.state.counters.clone();
            w.dynsets = e.state.dynsets.clone();
            w.now = now;
            w.effects = e.stats;
            w.kind = Some(e.kind());
            w.fallback = e.fallback_note.clone();
        }
        for t in &self.ipts {
            let e = t.borrow();
            w.effects.add(&e.stats);
            w.ipt_counters.push(e.table.counters().to_vec());
            w.kind = Some(EngineKind::Ipt);
        }
        w
    }
}

/// `l3` framed like `f`: `f`'s link-layer header (Ethernet addresses swapped when `answer`: it goes back), then
/// `l3`, then whatever followed `f`'s datagram (Ethernet padding) unless `answer`.
fn with_link_header(f: &Frame<'_>, l3: &[u8], answer: bool) -> Vec<u8> {
    let Ok(li) = wire::parse_link(f.linktype, f.data) else {
        return l3.to_vec();
    };
    let nh = usize::from(li.nhoff);
    let mut d = f.data.get(..nh).unwrap_or(&[]).to_vec();
    if answer && f.linktype == nfr_runtime::pcap::linktype::ETHERNET && d.len() >= 12 {
        let (dst, src) = d.split_at_mut(6);
        dst.swap_with_slice(&mut src[..6]);
    }
    d.extend_from_slice(l3);
    if !answer {
        d.extend_from_slice(f.data.get(nh + l3.len()..).unwrap_or(&[]));
    }
    d
}

/// TCP flags as tcpdump prints them (`[S.]`, `[P.]`, `[F.]`, `[R]`): one letter per flag in this order
/// (`tcp_flag_values` in tcpdump's print-tcp.c), `.` for ACK, `none` when no flag is set.
const TCPDUMP_FLAGS: [(u8, char); 8] = [
    (0x01, 'F'),
    (0x02, 'S'),
    (0x04, 'R'),
    (0x08, 'P'),
    (0x10, '.'),
    (0x20, 'U'),
    (0x40, 'E'),
    (0x80, 'W'),
];

/// A frame in one line as `tcpdump -n` prints it: `IP 10.0.0.1.1000 > 10.0.0.2.22: Flags [S], length 0`,
/// `IP6 ...`, `UDP, length N`, `ICMP type 8 code 0, length N`; `length` is the payload (after the TCP or
/// UDP header; for ICMP and other protocols, after the IP header), as tcpdump counts it.
pub fn summary(linktype: u16, data: &[u8]) -> String {
    let Ok(pi) = wire::parse_frame(linktype, data) else {
        return "not an IP packet".to_string();
    };
    let l3 = pi.l3(data);
    let Some((s, d)) = path::addrs(l3) else {
        return "not an IP packet".to_string();
    };
    let fmt = |a: &[u8]| -> String {
        if let Ok(b) = <[u8; 4]>::try_from(a) {
            std::net::Ipv4Addr::from(b).to_string()
        } else if let Ok(b) = <[u8; 16]>::try_from(a) {
            std::net::Ipv6Addr::from(b).to_string()
        } else {
            "?".to_string()
        }
    };
    let (s, d) = (fmt(s), fmt(d));
    let ip = if pi.nfproto == nfr_vm::pkt::NFPROTO_IPV6 {
        "IP6"
    } else {
        "IP"
    };
    let th = data.get(usize::from(pi.thoff)..).unwrap_or(&[]);
    let port = |o: usize| th.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    // The IP payload: from the transport header to the end of the datagram.
    let payload =
        (usize::from(pi.nhoff) + pi.ip_len as usize).saturating_sub(usize::from(pi.thoff));
    let frag = if pi.is_fragment { " (fragment)" } else { "" };
    let at = |a: &str, p: Option<u16>| p.map_or_else(|| a.to_string(), |p| format!("{a}.{p}"));
    if !pi.has_th || pi.fragoff != 0 {
        return format!(
            "{ip} {s} > {d}: ip-proto-{}, length {payload}{frag}",
            pi.l4proto
        );
    }
    match pi.l4proto {
        6 => {
            let fl = th.get(13).copied().unwrap_or(0);
            let mut f: String = TCPDUMP_FLAGS
                .iter()
                .filter(|(b, _)| fl & b != 0)
                .map(|(_, c)| *c)
                .collect();
            if f.is_empty() {
                f.push_str("none");
            }
            let doff = usize::from(th.get(12).copied().unwrap_or(0x50) >> 4) * 4;
            format!(
                "{ip} {} > {}: Flags [{f}], length {}{frag}",
                at(&s, port(0)),
                at(&d, port(2)),
                payload.saturating_sub(doff)
            )
        }
        17 => format!(
            "{ip} {} > {}: UDP, length {}{frag}",
            at(&s, port(0)),
            at(&d, port(2)),
            payload.saturating_sub(8)
        ),
        1 | 58 => format!(
            "{ip} {s} > {d}: {} type {} code {}, length {payload}{frag}",
            if pi.l4proto == 1 { "ICMP" } else { "ICMP6" },
            th.first().copied().unwrap_or(0),
            th.get(1).copied().unwrap_or(0)
        ),
        p => format!("{ip} {s} > {d}: ip-proto-{p}, length {payload}{frag}"),
    }
}

/// The shared virtual clock: capture time with capped gaps.
struct Clock {
    cap: Option<u64>,
    now: u64,
    last: Option<u64>,
}

impl Clock {
    fn tick(&mut self, ts: u64) -> u64 {
        if let Some(prev) = self.last {
            let gap = ts.saturating_sub(prev);
            self.now += self.cap.map_or(gap, |c| gap.min(c));
        }
        self.last = Some(ts);
        self.now
    }
}

fn merge(ends: Vec<WorkerEnd>, threads: usize) -> RunEnd {
    let mut r = RunEnd {
        threads,
        ..RunEnd::default()
    };
    for e in ends {
        if r.counters.is_empty() {
            r.counters = e.counters;
        } else {
            for (a, b) in r.counters.iter_mut().zip(&e.counters) {
                a.packets += b.packets;
                a.bytes += b.bytes;
            }
        }
        r.effects.add(&e.effects);
        if r.dynsets.is_empty() {
            r.dynsets = e.dynsets;
        }
        r.now = r.now.max(e.now);
        if r.ipt_counters.is_empty() {
            r.ipt_counters = e.ipt_counters;
        } else {
            for (a, b) in r.ipt_counters.iter_mut().zip(&e.ipt_counters) {
                for (x, y) in a.iter_mut().zip(b) {
                    x.pcnt += y.pcnt;
                    x.bcnt += y.bcnt;
                }
            }
        }
        r.ct_lines.extend(e.ct_lines);
        let (a, b) = (&mut r.ct_stats, e.ct_stats);
        a.found += b.found;
        a.invalid += b.invalid;
        a.insert += b.insert;
        a.insert_failed += b.insert_failed;
        a.drop += b.drop;
        a.early_drop += b.early_drop;
        a.error += b.error;
        a.expect_new += b.expect_new;
        a.expect_create += b.expect_create;
        a.expect_delete += b.expect_delete;
        r.ct_count += e.ct_count;
        if let Some(p) = e.profile {
            r.profile.get_or_insert_default().merge(&p);
        }
        r.kind = r.kind.or(e.kind);
        r.fallback = r.fallback.or(e.fallback);
    }
    // One order whatever the sharding: by the text after the timeout column.
    r.ct_lines.sort_by_cached_key(|l| {
        l.split_whitespace()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, t)| t.to_string())
            .collect::<Vec<_>>()
    });
    r
}

const START_NS: u64 = 1_000_000_000_000;

/// Reads the capture and replays it; every record goes to `out` in frame order.
pub fn drive(
    setup: &Setup,
    args: &Args,
    mut reader: PcapReader<'static>,
    out: &mut Collector,
) -> anyhow::Result<RunEnd> {
    let opts = Opts {
        trace: args.trace,
        events: args.ct_events,
        keep_data: args.write_accepted.is_some() || args.write_dropped.is_some(),
        ct_list: args.ct_list || args.json,
        profile: args.profile,
    };
    let mut clock = Clock {
        cap: setup.gap_cap_ns,
        now: START_NS,
        last: None,
    };
    let threads = setup.threads;
    // Nothing printed or written per frame: frames are only counted.
    let plain = !opts.trace && !opts.events && !opts.keep_data;
    if threads > 1 && plain {
        return drive_shards(setup, opts, reader, out);
    }
    // Capture interface names -> ifindexes, on this (the reading) thread so they do not depend on sharding.
    let mut devs = setup.path.dev_table();
    let mut read_error = None;
    let mut frames = 0u64;
    let ends = if threads <= 1 {
        let mut w = Worker::new(setup, opts)?;
        loop {
            let timing = opts.profile && (frames + 1).is_multiple_of(PROFILE_EVERY);
            let t = timing.then(Instant::now);
            if plain && frames.is_multiple_of(BURST as u64) {
                let mut ahead = [(0, &[][..]); BURST];
                let n = reader.peek_buffered(&mut ahead);
                prefetch_ct(&w.replayer.ct, &ahead[..n]);
            }
            match reader.next_frame() {
                Ok(Some(f)) => {
                    frames += 1;
                    w.prof.read_ns += since(t);
                    w.prof.timed += u64::from(timing);
                    let orig = f.ts_ns;
                    let cap = f.if_name.map(|n| devs.intern(n));
                    let vf = Frame {
                        ts_ns: clock.tick(orig),
                        ..f
                    };
                    if plain {
                        let c = w.count_timed(&vf, cap.as_ref(), timing);
                        let t = timing.then(Instant::now);
                        out.progress.frame(reader.offset());
                        out.count(&c);
                        w.prof.report_ns += since(t);
                    } else {
                        let rec = w.frame_timed(frames, &vf, orig, cap.as_ref(), timing);
                        let t = timing.then(Instant::now);
                        out.progress.frame(reader.offset());
                        out.record(&rec)?;
                        w.prof.report_ns += since(t);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some((e.kind.to_string(), e.offset, e.frames));
                    break;
                }
            }
        }
        vec![w.end(clock.now)]
    } else {
        let (rtx, rrx) = mpsc::sync_channel::<FrameRecord>(4096);
        let mut txs = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..threads {
            let (tx, rx) = mpsc::sync_channel::<Msg>(1024);
            txs.push(tx);
            let rtx = rtx.clone();
            let w = WorkerSeed::of(setup);
            handles.push(std::thread::spawn(move || -> anyhow::Result<WorkerEnd> {
                let mut worker = w.build(opts)?;
                let mut end = None;
                while let Ok(msg) = rx.recv() {
                    let (no, orig, of) = match msg {
                        Msg::Frame(no, orig, of) => (no, orig, of),
                        Msg::End(now) => {
                            end = Some(now);
                            break;
                        }
                    };
                    let f = Frame {
                        linktype: of.linktype,
                        ts_ns: of.ts_ns,
                        data: &of.data,
                        orig_len: of.orig_len,
                        iface: of.iface,
                        fcs_len: of.fcs_len,
                        section: 0,
                        if_name: None,
                    };
                    let timing = opts.profile && no.is_multiple_of(PROFILE_EVERY);
                    let rec = worker.frame_timed(no, &f, orig, of.cap.as_ref(), timing);
                    if rtx.send(rec).is_err() {
                        break;
                    }
                }
                let now = end.unwrap_or_else(|| worker.replayer.now());
                Ok(worker.end(now))
            }));
        }
        drop(rtx);
        // Reader on this thread; records are reordered here too (bounded by the channel sizes).
        let mut pending: BTreeMap<u64, FrameRecord> = BTreeMap::new();
        let mut next = 1u64;
        let flush = |pending: &mut BTreeMap<u64, FrameRecord>,
                     next: &mut u64,
                     out: &mut Collector|
         -> anyhow::Result<()> {
            while let Some(r) = pending.remove(next) {
                out.record(&r)?;
                *next += 1;
            }
            Ok(())
        };
        let mut prof = Profile::default();
        loop {
            let timing = opts.profile && (frames + 1).is_multiple_of(PROFILE_EVERY);
            let t = timing.then(Instant::now);
            match reader.next_frame() {
                Ok(Some(f)) => {
                    frames += 1;
                    prof.read_ns += since(t);
                    prof.timed += u64::from(timing);
                    let orig = f.ts_ns;
                    let ts = clock.tick(orig);
                    let sh = shard_of(&f, threads);
                    let of = OwnedFrame {
                        linktype: f.linktype,
                        ts_ns: ts,
                        data: f.data.to_vec(),
                        orig_len: f.orig_len,
                        iface: f.iface,
                        fcs_len: f.fcs_len,
                        cap: f.if_name.map(|n| devs.intern(n)),
                    };
                    out.progress.frame(reader.offset());
                    // Drain finished records while the worker's queue is full, so nobody blocks forever.
                    let mut item = Some((frames, orig, of));
                    while let Some(it) = item.take() {
                        match txs[sh].try_send(Msg::Frame(it.0, it.1, it.2)) {
                            Ok(()) => {}
                            Err(mpsc::TrySendError::Full(Msg::Frame(a, b, c))) => {
                                item = Some((a, b, c));
                                if let Ok(r) = rrx.recv() {
                                    pending.insert(r.no, r);
                                    flush(&mut pending, &mut next, out)?;
                                }
                            }
                            Err(_) => anyhow::bail!("a worker thread stopped"),
                        }
                    }
                    while let Ok(r) = rrx.try_recv() {
                        pending.insert(r.no, r);
                    }
                    flush(&mut pending, &mut next, out)?;
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some((e.kind.to_string(), e.offset, e.frames));
                    break;
                }
            }
        }
        for tx in &txs {
            // Blocking send: workers keep draining, and their records are collected below.
            let mut m = Msg::End(clock.now);
            loop {
                match tx.try_send(m) {
                    Ok(()) => break,
                    Err(mpsc::TrySendError::Full(back)) => {
                        m = back;
                        if let Ok(r) = rrx.recv() {
                            pending.insert(r.no, r);
                            flush(&mut pending, &mut next, out)?;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        drop(txs);
        while let Ok(r) = rrx.recv() {
            pending.insert(r.no, r);
            flush(&mut pending, &mut next, out)?;
        }
        flush(&mut pending, &mut next, out)?;
        let mut ends = Vec::new();
        for h in handles {
            let mut e = h
                .join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
            // The reader's share (reading; records are collected on this thread, untimed here).
            if let Some(p) = e.profile.as_mut() {
                p.merge(&prof);
                prof = Profile::default();
            }
            ends.push(e);
        }
        ends
    };
    let mut r = merge(ends, threads);
    r.read_error = read_error;
    r.frames = frames;
    Ok(r)
}

/// The worker a frame belongs to ([`path::shard`] of its datagram). The common case without a parse: an untagged
/// Ethernet frame's IPv4 datagram (not ICMP, which may quote another flow) has its addresses at fixed offsets;
/// any other IP datagram after an untagged Ethernet header is at 14.
#[inline]
fn shard_of(f: &Frame<'_>, threads: usize) -> usize {
    use nfr_runtime::wire::proto::ICMP;
    use wire::link::ETH_P_IP;
    const ETH_HLEN: usize = wire::EthernetFrame::<&[u8]>::HEADER_LEN;
    if f.linktype == nfr_runtime::pcap::linktype::ETHERNET
        && let Some(h) = f.data.first_chunk::<{ ETH_HLEN + 20 }>()
    {
        let ethertype = u16::from_be_bytes([h[12], h[13]]);
        let ip = &h[ETH_HLEN..];
        if ethertype == ETH_P_IP && ip[0] >> 4 == 4 && ip[9] != ICMP {
            let addr =
                |o: usize| u128::from(u32::from_be_bytes([ip[o], ip[o + 1], ip[o + 2], ip[o + 3]]));
            return path::shard_pair(addr(12), addr(16), threads);
        }
    }
    path::shard(l3_hint(f.linktype, f.data), threads)
}

/// A frame's datagram without a full parse: after an untagged Ethernet header carrying IP, else where
/// `parse_link` puts it (empty when it fails). For sharding and hints; the replay parses the frame itself.
#[inline]
fn l3_hint(linktype: u16, data: &[u8]) -> &[u8] {
    use wire::link::{ETH_P_IP, ETH_P_IPV6};
    const ETH_HLEN: usize = wire::EthernetFrame::<&[u8]>::HEADER_LEN;
    if linktype == nfr_runtime::pcap::linktype::ETHERNET
        && let Some(h) = data.first_chunk::<ETH_HLEN>()
        && matches!(u16::from_be_bytes([h[12], h[13]]), ETH_P_IP | ETH_P_IPV6)
    {
        return data.get(ETH_HLEN..).unwrap_or(&[]);
    }
    match wire::parse_link(linktype, data) {
        Ok(li) => data.get(usize::from(li.nhoff)..).unwrap_or(&[]),
        Err(_) => &[],
    }
}

/// Prefetches what conntrack will read for the packets of `frames` (link type, bytes; at most [`BURST`]) in
/// zone 0: the table's bucket heads and entries, so that their misses overlap instead of stalling each packet
/// in turn. A hint: nothing changes, and a packet in another zone only wastes its prefetch.
fn prefetch_ct(ct: &Conntrack, frames: &[(u16, &[u8])]) {
    let mut l3 = [&[][..]; BURST];
    for (d, &(lt, f)) in l3.iter_mut().zip(frames) {
        *d = l3_hint(lt, f);
    }
    ct.prefetch_burst(&l3[..frames.len().min(BURST)], 0);
}

/// A batch is handed on when it holds this many frames or bytes.
const BATCH_FRAMES: usize = 1024;
const BATCH_BYTES: usize = 256 * 1024;
/// ... or spans this many of the reader's buffers.
const BATCH_BUFS: usize = 8;
/// Full batches a shard may have waiting: how far ahead of its worker the others read, and what bounds the
/// memory in flight.
const BATCH_QUEUE: usize = 8;
/// A worker's turn of reading ends when this many batches of its own shard wait: the other shards then have
/// about as many, and their workers seldom run dry while it replays its own.
const READ_AHEAD: usize = 4;

/// Frames of one shard, left where the reader read them: the batch holds the reader's buffers its frames are in.
#[derive(Default)]
struct Batch {
    bufs: Vec<Arc<Vec<u8>>>,
    frames: Vec<BatchFrame>,
    /// The capture devices of its frames (pcapng `if_name`).
    caps: Vec<path::CapDev>,
    bytes: usize,
}

impl Batch {
    fn clear(&mut self) {
        self.bufs.clear();
        self.frames.clear();
        self.caps.clear();
        self.bytes = 0;
    }

    /// The bytes of frame `m`.
    fn data(&self, m: &BatchFrame) -> &[u8] {
        self.bufs
            .get(usize::from(m.buf))
            .and_then(|b| b.get(m.at as usize..m.at as usize + m.len as usize))
            .unwrap_or(&[])
    }
}

/// A frame of a [`Batch`]: where its bytes are (`bufs[buf][at..at + len]`), and what was found out about it
/// when it was read.
struct BatchFrame {
    no: u64,
    /// Virtual time.
    ts: u64,
    at: u32,
    len: u32,
    orig_len: u32,
    iface: u32,
    section: u32,
    buf: u16,
    linktype: u16,
    /// Index in `caps`, or `NO_CAP`.
    cap: u16,
    fcs_len: u8,
}

const NO_CAP: u16 = u16::MAX;

/// The capture as the workers of [`drive_shards`] share it: whichever worker runs out of frames reads on.
struct ReadState {
    reader: PcapReader<'static>,
    /// The virtual clock and the interface table over all frames, so both are those of one thread.
    clock: Clock,
    devs: path::DevTable,
    frames: u64,
    read_error: Option<(String, u64, u64)>,
    /// Per shard, the batch being filled.
    filling: Vec<Batch>,
    /// Reading time of the sampled frames (`--profile`).
    prof: Profile,
    profile: bool,
}

/// The full batches of [`drive_shards`], and who reads.
struct Queues {
    /// Per shard, the full batches waiting for its worker.
    ready: Vec<VecDeque<Batch>>,
    /// Emptied batches, filled again before new ones are made.
    spare: Vec<Batch>,
    /// A worker is reading.
    reading: bool,
    /// No more frames: the capture ended, could not be read further, or a worker stopped.
    done: bool,
}

/// What the workers of [`drive_shards`] share. `more` is raised when a batch is queued or taken, and when a
/// worker stops reading.
struct Shared {
    read: std::sync::Mutex<ReadState>,
    queues: std::sync::Mutex<Queues>,
    more: std::sync::Condvar,
}

fn panicked<T>(_: T) -> anyhow::Error {
    anyhow::anyhow!("a worker thread panicked")
}

impl Shared {
    fn new(setup: &Setup, opts: Opts, reader: PcapReader<'static>, threads: usize) -> Shared {
        Shared {
            read: std::sync::Mutex::new(ReadState {
                reader,
                clock: clock(setup),
                devs: setup.path.dev_table(),
                frames: 0,
                read_error: None,
                filling: (0..threads).map(|_| Batch::default()).collect(),
                prof: Profile::default(),
                profile: opts.profile,
            }),
            queues: std::sync::Mutex::new(Queues {
                ready: (0..threads).map(|_| VecDeque::new()).collect(),
                spare: Vec::new(),
                reading: false,
                done: false,
            }),
            more: std::sync::Condvar::new(),
        }
    }

    fn queues(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Queues>> {
        self.queues.lock().map_err(panicked)
    }

    /// Reads frames into their shards' batches, queueing each that fills, until [`READ_AHEAD`] batches of shard
    /// `k` wait, another shard has [`BATCH_QUEUE`] waiting, or the capture ends; `progress` hears (frames, bytes)
    /// read.
    fn read_on(&self, k: usize, mut progress: impl FnMut(u64, u64)) -> anyhow::Result<()> {
        let mut r = self.read.lock().map_err(panicked)?;
        let r = &mut *r;
        let threads = r.filling.len();
        let end = loop {
            let timing = r.profile && (r.frames + 1).is_multiple_of(PROFILE_EVERY);
            let t = timing.then(Instant::now);
            match r.reader.next_frame() {
                Ok(Some(f)) => {
                    r.frames += 1;
                    let j = shard_of(&f, threads);
                    let cap = f.if_name.map(|n| r.devs.intern(n));
                    let len = f.data.len();
                    let mut m = BatchFrame {
                        no: r.frames,
                        ts: r.clock.tick(f.ts_ns),
                        at: 0,
                        len: len as u32,
                        orig_len: f.orig_len,
                        iface: f.iface,
                        section: f.section,
                        buf: 0,
                        linktype: f.linktype,
                        cap: NO_CAP,
                        fcs_len: f.fcs_len,
                    };
                    // The frame's bytes stay in the reader's buffer, which the batch holds.
                    let (buf, at) = (r.reader.buffer(), r.reader.last_frame_at());
                    let b = &mut r.filling[j];
                    if !b.bufs.last().is_some_and(|l| Arc::ptr_eq(l, buf)) {
                        b.bufs.push(buf.clone());
                    }
                    m.buf = (b.bufs.len() - 1) as u16;
                    m.at = at as u32;
                    if let Some(c) = cap {
                        m.cap = b.caps.len() as u16;
                        b.caps.push(c);
                    }
                    b.frames.push(m);
                    b.bytes += len;
                    let full = b.frames.len() >= BATCH_FRAMES
                        || b.bytes >= BATCH_BYTES
                        || b.bufs.len() >= BATCH_BUFS;
                    r.prof.read_ns += since(t);
                    r.prof.timed += u64::from(timing);
                    if full {
                        let mut q = self.queues()?;
                        let fresh = q.spare.pop().unwrap_or_default();
                        let full = std::mem::replace(&mut r.filling[j], fresh);
                        q.ready[j].push_back(full);
                        // A shard with its queue full ends the turn too: else a capture whose frames all go to
                        // other shards would be read whole into their queues.
                        let waiting = q.ready[j].len();
                        let stop = (j == k && waiting >= READ_AHEAD) || waiting >= BATCH_QUEUE;
                        drop(q);
                        self.more.notify_all();
                        if stop {
                            break false;
                        }
                    }
                }
                Ok(None) => break true,
                Err(e) => {
                    r.read_error = Some((e.kind.to_string(), e.offset, e.frames));
                    break true;
                }
            }
        };
        progress(r.frames, r.reader.offset());
        let mut q = self.queues()?;
        q.reading = false;
        q.done |= end;
        drop(q);
        self.more.notify_all();
        Ok(())
    }
}

/// Ends the reading for everyone when a worker leaves early (an error or a panic), so no other worker waits
/// for it to take its batches or to read on.
struct Leave<'a>(&'a Shared);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.queues.lock() {
            q.done = true;
        }
        self.0.more.notify_all();
    }
}

/// `--threads N` when nothing is printed or written per frame. The workers share the capture: one that has
/// no batch of its shard waiting reads on (while no other does), filling every shard's batch, until a few of
/// its own wait (bounded: see [`Shared::read_on`]); so the capture is read once, by turns, and each worker
/// replays its shard's frames in order and counts them in its own tally. Nothing else crosses threads until
/// the end, where the tallies, counters and tables are merged. This thread is worker 0 (and shows the
/// progress).
fn drive_shards(
    setup: &Setup,
    opts: Opts,
    reader: PcapReader<'static>,
    out: &mut Collector,
) -> anyhow::Result<RunEnd> {
    let threads = setup.threads;
    let shared = Shared::new(setup, opts, reader, threads);
    let ends = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .map(|k| {
                let (seed, shared) = (WorkerSeed::of(setup), &shared);
                s.spawn(move || replay_shard(k, shared, seed, opts, |_, _| {}))
            })
            .collect();
        let mine = replay_shard(0, &shared, WorkerSeed::of(setup), opts, |frames, offset| {
            out.progress.at(frames, offset)
        });
        std::iter::once(mine)
            .chain(handles.into_iter().map(|h| h.join().map_err(panicked)?))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let st = shared.read.into_inner().map_err(panicked)?;
    let mut prof = Some(st.prof);
    let mut done = Vec::new();
    for (mut end, tally) in ends {
        // The reading goes to the first worker's profile.
        if let (Some(p), Some(r)) = (end.profile.as_mut(), prof.take()) {
            p.merge(&r);
        }
        done.push(end);
        out.add_tally(tally);
    }
    let mut r = merge(done, threads);
    r.read_error = st.read_error;
    r.frames = st.frames;
    Ok(r)
}

fn clock(setup: &Setup) -> Clock {
    Clock {
        cap: setup.gap_cap_ns,
        now: START_NS,
        last: None,
    }
}

/// Worker `k` of [`drive_shards`]: replays its shard's batches, reading on when none is waiting; `progress`
/// hears (frames, bytes) read after each turn it read.
fn replay_shard(
    k: usize,
    shared: &Shared,
    seed: WorkerSeed,
    opts: Opts,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<(WorkerEnd, Tally)> {
    let _leave = Leave(shared);
    let mut w = seed.build(opts)?;
    let mut tally = Tally::default();
    loop {
        let mut q = shared.queues()?;
        let mut b = if let Some(b) = q.ready[k].pop_front() {
            drop(q);
            shared.more.notify_all();
            b
        } else if q.done {
            drop(q);
            let b = std::mem::take(&mut shared.read.lock().map_err(panicked)?.filling[k]);
            if b.frames.is_empty() {
                break;
            }
            b
        } else if q.reading || q.ready.iter().any(|r| r.len() >= BATCH_QUEUE) {
            // Another worker reads (it may queue a batch of this shard), or is behind: wait.
            drop(shared.more.wait(q).map_err(panicked)?);
            continue;
        } else {
            q.reading = true;
            drop(q);
            shared.read_on(k, &mut progress)?;
            continue;
        };
        replay_batch(&mut w, &mut tally, &b, opts);
        b.clear();
        shared.queues()?.spare.push(b);
    }
    let now = shared.read.lock().map_err(panicked)?.clock.now;
    Ok((w.end(now), tally))
}

/// Replays a batch's frames on `w`, counting them in `tally`.
fn replay_batch(w: &mut Worker, tally: &mut Tally, b: &Batch, opts: Opts) {
    for (i, m) in b.frames.iter().enumerate() {
        if i % BURST == 0 {
            let mut ahead = [(0, &[][..]); BURST];
            for (a, m) in ahead.iter_mut().zip(&b.frames[i..]) {
                *a = (m.linktype, b.data(m));
            }
            prefetch_ct(&w.replayer.ct, &ahead[..(b.frames.len() - i).min(BURST)]);
        }
        let f = Frame {
            linktype: m.linktype,
            ts_ns: m.ts,
            data: b.data(m),
            orig_len: m.orig_len,
            iface: m.iface,
            fcs_len: m.fcs_len,
            section: m.section,
            if_name: None,
        };
        let timing = opts.profile && m.no.is_multiple_of(PROFILE_EVERY);
        // Nothing prints or writes per frame on this path (no trace, events or pcap output).
        let c = w.count_timed(&f, b.caps.get(usize::from(m.cap)), timing);
        let t = timing.then(Instant::now);
        tally.count(&c);
        w.prof.report_ns += since(t);
    }
}

/// Reader -> worker messages.
enum Msg {
    /// (frame number, original timestamp, frame with virtual time).
    Frame(u64, u64, OwnedFrame),
    /// No more frames; list the table at this virtual time.
    End(u64),
}

/// A frame copied out of the reader for another thread.
struct OwnedFrame {
    linktype: u16,
    ts_ns: u64,
    data: Vec<u8>,
    orig_len: u32,
    iface: u32,
    fcs_len: u8,
    /// The capture device (pcapng `if_name`), already given its ifindex.
    cap: Option<path::CapDev>,
}

/// What a worker thread needs to build its own engines (the engines themselves are not `Send`).
struct WorkerSeed {
    lowered: nfr_host::Lowered,
    settings: Settings,
    path: path::PathModel,
    seed: u64,
    /// The ruleset has `fib ... type`: the hooks give packets their addresses' route types.
    fib_types: bool,
}

impl WorkerSeed {
    fn of(setup: &Setup) -> WorkerSeed {
        let lowered = if setup.engine == EngineKind::Ipt {
            nfr_host::Lowered::Ipt(
                setup
                    .ipt
                    .iter()
                    .map(|t| nfr_host::IptBlob {
                        name: t.table.name.clone(),
                        blob: t.blob.clone(),
                        valid_hooks: t.table.valid_hooks,
                    })
                    .collect(),
            )
        } else {
            nfr_host::Lowered::Program {
                prog: setup.prog.clone(),
                specs: setup.specs.clone(),
                kind: setup.engine,
            }
        };
        WorkerSeed {
            lowered,
            settings: setup.ct_settings.clone(),
            path: setup.path.clone(),
            seed: setup.seed,
            fib_types: setup
                .prog
                .program()
                .insns
                .iter()
                .any(|i| matches!(i, nfr_vm::Insn::FibType { .. })),
        }
    }

    fn build(self, opts: Opts) -> anyhow::Result<Worker> {
        let mut hooks = nfr_host::hooks();
        let loaded = self
            .lowered
            .register(
                &mut hooks,
                nfr_host::Options {
                    trace: opts.trace,
                    effects: false,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (prog, ipts) = (loaded.prog, loaded.ipts);
        if let Some(p) = &prog {
            p.borrow_mut().state.prandom = nfr_vm::Prandom::new(self.seed);
        }
        for t in &ipts {
            t.borrow_mut().table.prandom = nfr_vm::Prandom::new(self.seed);
        }
        let st = Settings {
            events: opts.events || self.settings.events,
            ..self.settings
        };
        hooks.icmp_source = self.path.icmp_source();
        hooks.ifaddrs = self.path.ifaddrs();
        hooks.fib_types = self.fib_types;
        hooks.trace_nat = opts.trace;
        let cfg = ReplayConfig {
            clock_from_ts: true,
            keep_egress: opts.keep_data,
            ..ReplayConfig::default()
        };
        if opts.profile {
            hooks.profile = Some(HookProfile::default());
        }
        Ok(Worker {
            prof: Profile {
                clock_ns: if opts.profile { clock_cost() } else { 0 },
                ..Profile::default()
            },
            replayer: Replayer::new(hooks, Conntrack::new(st), cfg),
            prog,
            ipts,
            path: self.path,
            opts,
        })
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    //! The replay loop allocates nothing per packet once its flows exist (no tracing, no pcap writing): a
    //! counting allocator, per thread, around the steady state of established flows.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::net::IpAddr;

    use nfr_runtime::wire::build;

    use super::*;

    struct Counting;

    thread_local! {
        static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    // SAFETY: forwards to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            ALLOCS.with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            ALLOCS.with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's contract is passed on.
            unsafe { System.realloc(p, l, n) }
        }
    }

    #[global_allocator]
    static A: Counting = Counting;

    /// Options of a run that prints and writes nothing per frame.
    const PLAIN: Opts = Opts {
        trace: false,
        events: false,
        keep_data: false,
        ct_list: false,
        profile: false,
    };

    /// The arguments and setup of `nfc run pcap RULES CAPTURE EXTRA...` for the ruleset text `rules` (written
    /// to a temporary directory, with an empty capture: the setup does not read it).
    fn setup(rules: &str, extra: &[&str]) -> (tempfile::TempDir, Args, Setup) {
        let tmp = tempfile::Builder::new()
            .prefix("nfc-worker-")
            .tempdir()
            .unwrap();
        let (r, c) = (tmp.path().join("r.nfr"), tmp.path().join("c.pcap"));
        std::fs::write(&r, rules).unwrap();
        std::fs::write(&c, b"").unwrap();
        let mut argv = vec![r.to_str().unwrap(), c.to_str().unwrap()];
        argv.extend_from_slice(extra);
        let args = super::super::test_args(&argv);
        let setup = Setup::build(&args).unwrap().unwrap();
        (tmp, args, setup)
    }

    /// Ethernet frames of `flows` TCP connections to 10.0.0.1: handshakes, then `data` segments each,
    /// alternating direction, flows interleaved.
    fn frames(flows: u16, data: u32) -> (Vec<Vec<u8>>, usize) {
        let host: IpAddr = "10.0.0.1".parse().unwrap();
        let eth = |ip: Vec<u8>| {
            let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
            f.extend_from_slice(&ip);
            f
        };
        let mut out = Vec::new();
        let mut seq = Vec::new();
        for i in 0..flows {
            let c: IpAddr = format!("10.64.0.{}", i + 1).parse().unwrap();
            let cp = 40_000 + i;
            let (cs, ss) = (1000u32, 9000u32);
            out.push(eth(build::tcp(
                c,
                host,
                cp,
                80,
                cs,
                0,
                0x02,
                64240,
                &[],
                &[],
            )));
            out.push(eth(build::tcp(
                host,
                c,
                80,
                cp,
                ss,
                cs + 1,
                0x12,
                64240,
                &[],
                &[],
            )));
            out.push(eth(build::tcp(
                c,
                host,
                cp,
                80,
                cs + 1,
                ss + 1,
                0x10,
                64240,
                &[],
                &[],
            )));
            seq.push((c, cp, cs + 1, ss + 1));
        }
        let warm = out.len();
        for n in 0..data {
            for (c, cp, cs, ss) in &mut seq {
                // Even segments from the client, odd ones from the host.
                let ((src, sp, sseq), (dst, dp, dseq)) = ((*c, *cp, cs), (host, 80, ss));
                let (from, to) = if n % 2 == 0 {
                    ((src, sp, sseq), (dst, dp, dseq))
                } else {
                    ((dst, dp, dseq), (src, sp, sseq))
                };
                let ip = build::tcp(
                    from.0,
                    to.0,
                    from.1,
                    to.1,
                    *from.2,
                    *to.2,
                    0x18,
                    64240,
                    &[],
                    &[0x5a; 32],
                );
                out.push(eth(ip));
                *from.2 += 32;
            }
        }
        (out, warm)
    }

    /// `shard_of`'s shortcuts give the shard of the datagram as `path::shard` computes it: IPv4 TCP, ICMP errors
    /// (which go with the flow they quote), VLAN-tagged frames, IPv6, raw IP, and frames too short for the
    /// shortcut.
    #[test]
    fn shard_of_is_the_datagrams_shard() {
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "10.64.0.7".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            "192.0.2.9".parse().unwrap(),
        );
        let tcp = build::tcp(a, b, 40_000, 80, 1, 0, 0x02, 100, &[], &[]);
        let err = build::icmp(c, b, 11, 0, [0; 4], &tcp);
        let (a6, b6): (IpAddr, IpAddr) = (
            "2001:db8::7".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let tcp6 = build::tcp(a6, b6, 40_000, 80, 1, 0, 0x02, 100, &[], &[]);
        let eth = |tag: bool, et: [u8; 2], ip: &[u8]| {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            if tag {
                f.extend_from_slice(&[0x81, 0x00, 0, 5]);
            }
            f.extend_from_slice(&et);
            f.extend_from_slice(ip);
            f
        };
        let v4 = [0x08, 0x00];
        let cases = [
            (1, eth(false, v4, &tcp), &tcp[..]),
            (1, eth(false, v4, &err), &err[..]),
            (1, eth(true, v4, &tcp), &tcp[..]),
            (1, eth(false, [0x86, 0xdd], &tcp6), &tcp6[..]),
            (1, eth(false, v4, &tcp[..12]), &tcp[..12]),
            (101, tcp.clone(), &tcp[..]),
        ];
        for threads in 2..6 {
            for (i, (linktype, data, l3)) in cases.iter().enumerate() {
                let f = Frame::whole(*linktype, 0, data);
                assert_eq!(
                    shard_of(&f, threads),
                    path::shard(l3, threads),
                    "case {i}, {threads} threads"
                );
            }
        }
        // The ICMP error goes where the flow it quotes goes, whatever its own addresses.
        let fr = |d: &[u8]| shard_of(&Frame::whole(1, 0, d), 7);
        assert_eq!(fr(&eth(false, v4, &err)), fr(&eth(false, v4, &tcp)));
    }

    #[test]
    fn established_flows_replay_without_allocating() {
        let mut text = String::from(
            "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
             \t\tct state established,related accept\n\t\tct state invalid drop\n",
        );
        for p in 0..100 {
            text += &format!(
                "\t\tip saddr 192.0.{p}.0/24 tcp dport {} counter accept\n",
                1000 + p
            );
        }
        text += "\t\ttcp dport 80 counter accept\n\t}\n}\n";
        for engine in ["interp", "jit"] {
            let (_tmp, args, setup) = setup(
                &text,
                &[
                    "--local",
                    "10.0.0.1",
                    "--engine",
                    engine,
                    "--iface",
                    "eth0=10.0.0.0/8",
                ],
            );
            let mut w = Worker::new(&setup, PLAIN).unwrap();
            let mut out = Collector::new(&setup, &args).unwrap();
            let (fs, warm) = frames(8, 200);
            let mut ts = START_NS;
            let mut run = |no: usize, data: &[u8], w: &mut Worker, out: &mut Collector| {
                ts += 10_000;
                let f = Frame::whole(1, ts, data);
                // Both ways a frame is replayed: with its record, and only counted.
                let fate = if no.is_multiple_of(2) {
                    let rec = w.frame(no as u64 + 1, &f, ts, None);
                    out.record(&rec).unwrap();
                    rec.fate
                } else {
                    let c = w.count(&f, None);
                    out.count(&c);
                    c.fate
                };
                assert!(
                    matches!(
                        fate,
                        Fate::Hooked {
                            outcome: nfr_runtime::hook::HookOutcome::Accept,
                            ..
                        }
                    ),
                    "{engine} frame {no}: {fate:?}"
                );
            };
            // Handshakes and the first segments: entries, counters and maps grow here.
            for (i, f) in fs.iter().enumerate().take(warm + 64) {
                run(i, f, &mut w, &mut out);
            }
            let before = ALLOCS.with(Cell::get);
            for (i, f) in fs.iter().enumerate().skip(warm + 64) {
                run(i, f, &mut w, &mut out);
            }
            let n = ALLOCS.with(Cell::get) - before;
            assert_eq!(
                n,
                0,
                "{engine}: {n} allocations over {} packets",
                fs.len() - warm - 64
            );
        }
    }

    /// A turn of reading by turns ends when a shard's queue is full, so a capture whose frames all go to
    /// another worker's shard (here: one flow) is not read whole into that shard's queue.
    #[test]
    fn a_turn_of_reading_stops_at_a_full_queue() {
        let (_tmp, _, setup) = setup(
            "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n",
            &["--local", "10.0.0.1", "--threads", "2"],
        );
        let (fs, _) = frames(1, ((BATCH_QUEUE + 3) * BATCH_FRAMES) as u32);
        let mut cap = nfr_runtime::pcap::pcap_header(1, 65535).to_vec();
        for (i, f) in fs.iter().enumerate() {
            cap.extend(nfr_runtime::pcap::pcap_record(i as u64, f.len() as u32, f));
        }
        let reader = PcapReader::new(std::io::Cursor::new(cap)).unwrap();
        let shared = Shared::new(&setup, PLAIN, reader, 2);
        let j = shard_of(&Frame::whole(1, 0, &fs[0]), 2);
        assert!(
            fs.iter().all(|f| shard_of(&Frame::whole(1, 0, f), 2) == j),
            "one flow, one shard"
        );
        // The worker of the other shard takes its turn: none of the frames are its own.
        shared.queues().unwrap().reading = true;
        shared.read_on(1 - j, |_, _| {}).unwrap();
        let q = shared.queues().unwrap();
        assert_eq!(q.ready[j].len(), BATCH_QUEUE);
        assert!(q.ready[1 - j].is_empty() && !q.reading && !q.done);
        drop(q);
        assert_eq!(
            shared.read.lock().unwrap().frames,
            (BATCH_QUEUE * BATCH_FRAMES) as u64
        );
    }
}
