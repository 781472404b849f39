//! Reads every capture of `shared/corpus/pcaps` (pcap LE/BE, micro/nanosecond, pcapng with several interfaces,
//! several link types) with `pcap::PcapReader` and `wire::parse_frame`: the frame count must equal INDEX.tsv's,
//! format details must come out right, and nothing may panic. Also feeds truncated copies of every file.
//! Ignored when the corpus is absent.

#[path = "../../tests/gate.rs"]
mod gate;

use nfr_runtime::pcap::{PcapErrorKind, PcapReader};
use nfr_runtime::wire::{self, Malformed, MalformedCounters};
use std::path::PathBuf;

fn pcaps() -> Result<PathBuf, String> {
    gate::corpus("pcaps/INDEX.tsv").map(|f| f.parent().unwrap().to_path_buf())
}

struct Read {
    frames: u64,
    linktypes: Vec<u16>,
    first_ts: u64,
    ifaces: Vec<u32>,
    err: Option<PcapErrorKind>,
    counters: MalformedCounters,
    parsed: u64,
}

fn read(bytes: &[u8]) -> Option<Read> {
    let mut r = PcapReader::new(bytes).ok()?;
    let mut out = Read {
        frames: 0,
        linktypes: Vec::new(),
        first_ts: 0,
        ifaces: Vec::new(),
        err: None,
        counters: MalformedCounters::default(),
        parsed: 0,
    };
    loop {
        match r.next_frame() {
            Ok(Some(f)) => {
                if out.frames == 0 {
                    out.first_ts = f.ts_ns;
                }
                out.frames += 1;
                if !out.linktypes.contains(&f.linktype) {
                    out.linktypes.push(f.linktype);
                }
                if !out.ifaces.contains(&f.iface) {
                    out.ifaces.push(f.iface);
                }
                match wire::parse_frame(f.linktype, f.data) {
                    Ok(_) => out.parsed += 1,
                    Err(m) => out.counters.record(m),
                }
            }
            Ok(None) => {
                // A clean end means every byte was consumed.
                assert_eq!(
                    r.offset(),
                    bytes.len() as u64,
                    "clean EOF before the end of the data"
                );
                return Some(out);
            }
            Err(e) => {
                out.err = Some(e.kind);
                assert_eq!(e.frames, out.frames);
                assert!(e.offset <= bytes.len() as u64);
                return Some(out);
            }
        }
    }
}

fn every_corpus_capture_reads_completely(dir: PathBuf) {
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).expect("INDEX.tsv");
    let (mut files, mut frames, mut parsed) = (0, 0u64, 0u64);
    let mut reasons = MalformedCounters::default();
    for line in index.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(count)) = (f.first(), f.get(6).and_then(|c| c.parse::<u64>().ok()))
        else {
            continue;
        };
        let bytes = std::fs::read(dir.join(name)).expect("read pcap");
        let r = read(&bytes).unwrap_or_else(|| panic!("{name}: header not recognised"));
        assert_eq!(r.err, None, "{name}: read error");
        assert_eq!(r.frames, count, "{name}: frame count");
        files += 1;
        frames += r.frames;
        parsed += r.parsed;
        for (m, n) in r.counters.iter() {
            for _ in 0..n {
                reasons.record(m);
            }
        }
        // Format specifics from INDEX.tsv.
        let ltf = f.get(5).copied().unwrap_or("");
        let lt: u16 = if ltf.contains("IDB: ether") {
            1
        } else {
            ltf.split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        if r.frames > 0 {
            assert_eq!(r.linktypes, vec![lt], "{name}: link type");
            assert!(
                r.first_ts > 631_152_000_000_000_000,
                "{name}: timestamp before 1990: {}",
                r.first_ts
            );
        }
        if *name == "zeek-pcapng-multi-interface.pcapng" {
            assert_eq!(r.ifaces.len(), 2, "two interfaces");
        }
        // Truncated copies report progress and never panic.
        for cut in [
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len().saturating_sub(3),
        ] {
            // A cut on a record boundary is a valid shorter file; any other cut must end in an error
            // (checked inside `read`: a clean end must have consumed every byte).
            if let Some(t) = read(&bytes[..cut]) {
                assert!(t.frames <= r.frames, "{name} cut at {cut}");
            }
        }
    }
    println!("{files} captures, {frames} frames, {parsed} parsed to IP; skipped by reason:");
    for (m, n) in reasons.iter() {
        println!("  {m}: {n}");
    }
    assert!(
        files >= 70,
        "expected the 72 corpus captures, found {files}"
    );
    // ARP frames (nmap-vsn, QinQ, dot1q, sll2) are the only large skip class; no unsupported link types.
    assert_eq!(reasons.get(Malformed::UnsupportedLinktype), 0);
    assert_eq!(parsed + reasons.total(), frames);
    // 513 ARP frames, 43 snaplen-cut frames whose IP total length exceeds the capture, 2 cut headers.
    assert!(
        parsed * 4 >= frames * 3,
        "only {parsed} of {frames} frames parsed"
    );
}

fn nanosecond_and_big_endian_timestamps(dir: PathBuf) {
    // tcpdump-tcp-handshake-nano: nanosecond magic; tcpdump-pptp: big-endian.
    for name in [
        "tcpdump-tcp-handshake-nano.pcap",
        "tcpdump-pptp.pcap",
        "tcpdump-unaligned-nfs-1.pcap",
    ] {
        let bytes = std::fs::read(dir.join(name)).expect("read");
        let mut r = PcapReader::new(&bytes[..]).expect("header");
        let mut prev = 0u64;
        let mut n = 0;
        while let Some(f) = r.next_frame().expect("frame") {
            assert!(f.ts_ns >= prev, "{name}: timestamps go backwards");
            assert!(
                f.ts_ns > 946_684_800_000_000_000 && f.ts_ns < 2_000_000_000_000_000_000,
                "{name}"
            );
            prev = f.ts_ns;
            n += 1;
        }
        assert!(n > 0, "{name}");
    }
}

fn main() {
    gate::run(vec![
        gate::needs(
            "every_corpus_capture_reads_completely",
            pcaps,
            every_corpus_capture_reads_completely,
        ),
        gate::needs(
            "nanosecond_and_big_endian_timestamps",
            pcaps,
            nanosecond_and_big_endian_timestamps,
        ),
    ]);
}
