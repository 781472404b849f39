//! The replay loop. A [`Worker`] owns one hook registry with the ruleset's engines, one conntrack shard and a
//! replayer; it turns frames into [`FrameRecord`]s. [`drive`] reads the capture (streamed), computes the shared
//! virtual clock (capped gaps), and either runs one worker inline or shards frames over `--threads` workers by
//! address pair and merges their records back in frame order, so the collector sees the same sequence either
//! way.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::mpsc;

use nfr_runtime::ct::{Conntrack, CtEvent, CtStats, Settings};
use nfr_runtime::engine::{
    self, EffectStats, EngineKind, IptEngine, ProgramEngine, SharedIpt, SharedProgram, TraceStep,
};
use nfr_runtime::hook::Hooks;
use nfr_runtime::pcap::{Frame, PcapReader};
use nfr_runtime::replay::{Direction, Fate, ReplayConfig, Replayer};
use nfr_runtime::wire;
use nfr_vm::program::Counter;

use super::report::Collector;
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
    /// Frame bytes (when writing pcaps).
    pub data: Option<Vec<u8>>,
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
}

#[derive(Clone, Copy)]
struct Opts {
    trace: bool,
    events: bool,
    keep_data: bool,
    /// The final conntrack table is printed (`--ct-list`) or part of `--json`: list it. Otherwise the listing,
    /// a few hundred bytes an entry, is not made (a flood's table would double the run's memory at the end).
    ct_lines: bool,
}

pub struct Worker {
    replayer: Replayer,
    prog: Option<SharedProgram>,
    ipts: Vec<SharedIpt>,
    path: path::PathModel,
    opts: Opts,
}

impl Worker {
    fn new(setup: &Setup, opts: Opts) -> anyhow::Result<Worker> {
        WorkerSeed::of(setup).build(opts)
    }

    /// Replays one frame; `f.ts_ns` is virtual time; `cap` is the device it was captured on.
    fn frame(
        &mut self,
        no: u64,
        f: &Frame<'_>,
        orig_ts: u64,
        cap: Option<path::CapDev>,
    ) -> FrameRecord {
        let mut dir = None;
        let mut devs = None;
        let path = &self.path;
        let fate = self.replayer.frame_with(f, |l3| {
            let d = path.decide(l3, cap.as_ref());
            dir = Some(d.0);
            let name = |n: &[u8; 16]| {
                let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                String::from_utf8_lossy(n.get(..end).unwrap_or(&[])).into_owned()
            };
            devs = Some((name(&d.1.iifname), name(&d.1.oifname)));
            d
        });
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
        let events = if self.opts.events {
            self.replayer.ct.drain_events()
        } else {
            Vec::new()
        };
        let ethertype = match fate {
            Fate::Skipped(wire::Malformed::NotIp) => wire::parse_link(f.linktype, f.data)
                .ok()
                .map(|li| li.ethertype),
            _ => None,
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
            data: self.opts.keep_data.then(|| f.data.to_vec()),
        }
    }

    fn end(self, now: u64) -> WorkerEnd {
        let ct = &self.replayer.ct;
        let mut w = WorkerEnd {
            ct_lines: if self.opts.ct_lines {
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

/// `tcp 10.0.0.1:1000 -> 10.0.0.2:22 [S]`-style summary of a frame.
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
    let th = data.get(usize::from(pi.thoff)..).unwrap_or(&[]);
    let port = |o: usize| th.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let v6 = pi.nfproto == nfr_vm::pkt::NFPROTO_IPV6;
    let host = |a: &str, p: Option<u16>| match (p, v6) {
        (Some(p), true) => format!("[{a}]:{p}"),
        (Some(p), false) => format!("{a}:{p}"),
        (None, _) => a.to_string(),
    };
    let frag = if pi.is_fragment { " fragment" } else { "" };
    let len = pi.ip_len;
    if !pi.has_th || pi.fragoff != 0 {
        return format!("proto {} {s} -> {d}{frag} len {len}", pi.l4proto);
    }
    match pi.l4proto {
        6 => {
            let fl = th.get(13).copied().unwrap_or(0);
            let names = [
                (0x02, 'S'),
                (0x10, '.'),
                (0x08, 'P'),
                (0x01, 'F'),
                (0x04, 'R'),
                (0x20, 'U'),
            ];
            let f: String = names
                .iter()
                .filter(|(b, _)| fl & b != 0)
                .map(|(_, c)| *c)
                .collect();
            format!(
                "tcp {} -> {} [{f}]{frag} len {len}",
                host(&s, port(0)),
                host(&d, port(2))
            )
        }
        17 => format!(
            "udp {} -> {}{frag} len {len}",
            host(&s, port(0)),
            host(&d, port(2))
        ),
        1 | 58 => format!(
            "{} {s} -> {d} type {} code {}{frag} len {len}",
            if pi.l4proto == 1 { "icmp" } else { "icmpv6" },
            th.first().copied().unwrap_or(0),
            th.get(1).copied().unwrap_or(0)
        ),
        p => format!("proto {p} {s} -> {d}{frag} len {len}"),
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
        r.kind = r.kind.or(e.kind);
        r.fallback = r.fallback.or(e.fallback);
    }
    // One order whatever the sharding: by the text after the timeout column.
    r.ct_lines.sort_by(|a, b| {
        let k = |l: &str| {
            l.split_whitespace()
                .enumerate()
                .filter(|(i, _)| *i != 2)
                .map(|(_, t)| t.to_string())
                .collect::<Vec<_>>()
        };
        k(a).cmp(&k(b))
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
        ct_lines: args.ct_list || args.json,
    };
    let mut clock = Clock {
        cap: setup.gap_cap_ns,
        now: START_NS,
        last: None,
    };
    let threads = setup.threads;
    // Capture interface names -> ifindexes, on this (the reading) thread so they do not depend on sharding.
    let mut devs = setup.path.dev_table();
    let mut read_error = None;
    let mut frames = 0u64;
    let ends = if threads <= 1 {
        let mut w = Worker::new(setup, opts)?;
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    frames += 1;
                    let orig = f.ts_ns;
                    let cap = f.if_name.map(|n| devs.intern(n));
                    let vf = Frame {
                        ts_ns: clock.tick(orig),
                        ..f
                    };
                    let rec = w.frame(frames, &vf, orig, cap);
                    out.progress.frame(reader.offset());
                    out.record(rec)?;
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
                    let rec = worker.frame(no, &f, orig, of.cap);
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
                out.record(r)?;
                *next += 1;
            }
            Ok(())
        };
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    frames += 1;
                    let orig = f.ts_ns;
                    let ts = clock.tick(orig);
                    let sh = match wire::parse_link(f.linktype, f.data) {
                        Ok(li) => {
                            path::shard(f.data.get(usize::from(li.nhoff)..).unwrap_or(&[]), threads)
                        }
                        Err(_) => 0,
                    };
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
            let e = h
                .join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
            ends.push(e);
        }
        ends
    };
    let mut r = merge(ends, threads);
    r.read_error = read_error;
    r.frames = frames;
    Ok(r)
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
    setup_prog: std::sync::Arc<nfr_vm::VerifiedProgram>,
    specs: Vec<engine::ChainSpec>,
    engine: EngineKind,
    settings: Settings,
    path: path::PathModel,
    /// (table name, blob, valid hooks) for `--engine ipt`.
    ipt: Vec<(String, Vec<u8>, u32)>,
}

impl WorkerSeed {
    fn of(setup: &Setup) -> WorkerSeed {
        WorkerSeed {
            setup_prog: setup.prog.clone(),
            specs: setup.specs.clone(),
            engine: setup.engine,
            settings: setup.ct_settings.clone(),
            path: setup.path.clone(),
            ipt: setup
                .ipt
                .iter()
                .map(|t| (t.table.name.clone(), t.blob.clone(), t.table.valid_hooks))
                .collect(),
        }
    }

    fn build(self, opts: Opts) -> anyhow::Result<Worker> {
        let mut hooks = Hooks::with_conntrack();
        hooks.queue_sink = true;
        let mut prog = None;
        let mut ipts = Vec::new();
        if self.engine == EngineKind::Ipt {
            for (i, (name, blob, valid)) in self.ipt.iter().enumerate() {
                let table = nfr_ipt::ExecTable::from_blob(blob)
                    .map_err(|e| anyhow::anyhow!("the iptables {name} table cannot run: {e}"))?;
                let t = Rc::new(RefCell::new(IptEngine {
                    table,
                    name: name.clone(),
                    stats: EffectStats::default(),
                    trace: opts.trace.then(Vec::new),
                }));
                engine::register_ipt(&mut hooks, &t, &engine::ipt_table_hooks(name, *valid), i)
                    .map_err(|e| anyhow::anyhow!("cannot register the {name} table: {e:?}"))?;
                ipts.push(t);
            }
        } else {
            let p = Rc::new(RefCell::new(ProgramEngine::new(
                self.setup_prog,
                self.engine,
            )));
            p.borrow_mut().set_trace(opts.trace);
            engine::register_program(&mut hooks, &p, &self.specs)
                .map_err(|e| anyhow::anyhow!("cannot register the ruleset's chains: {e:?}"))?;
            prog = Some(p);
        }
        let st = Settings {
            events: opts.events || self.settings.events,
            ..self.settings
        };
        let cfg = ReplayConfig {
            clock_from_ts: true,
            ..ReplayConfig::default()
        };
        Ok(Worker {
            replayer: Replayer::new(hooks, Conntrack::new(st), cfg),
            prog,
            ipts,
            path: self.path,
            opts,
        })
    }
}
