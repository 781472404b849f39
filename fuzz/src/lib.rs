//! The fuzz entry functions: one per cargo-fuzz target, each a thin wrapper over the public API of the
//! workspace crates that must never panic on hostile input (the ARCHITECTURE invariant "no input — text,
//! packet, pcap, blob — ever panics"). The fuzz targets in `fuzz_targets/` call these, and the workspace test
//! `nfc/tests/fuzz_regressions.rs` includes this very file (`#[path]`) to replay `fuzz/regressions/<target>/`
//! on stable Rust, so a crash found by fuzzing stays a test after the fuzz run is gone.
//!
//! Errors returned by the crates are fine; only panics (and sanitizer findings) are bugs.
#![forbid(unsafe_code)]

use nfr_runtime::ct::{BurstPrefetch, Conntrack, Nfct, Settings};
use nfr_runtime::pcap::{PcapReader, linktype};
use nfr_runtime::wire::parse_frame;
use nfr_vm::{ChainId, Effects, Hook, PktState, State, Verdict, VerifiedProgram};

/// Fixed IPv4 packets every executable table or program sees: a TCP SYN to port 22, a UDP datagram to
/// port 53, an ICMP echo request, and the SYN cut short inside its TCP header.
fn fixed_packets() -> [(Vec<u8>, PktState); 4] {
    #[rustfmt::skip]
    let syn: Vec<u8> = vec![
        0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 10, 0, 0, 1,
        0x9c, 0x40, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0,
    ];
    #[rustfmt::skip]
    let udp: Vec<u8> = vec![
        0x45, 0, 0, 32, 0, 2, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 192, 0, 2, 53,
        0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4,
    ];
    #[rustfmt::skip]
    let icmp: Vec<u8> = vec![
        0x45, 0, 0, 28, 0, 3, 0, 0, 1, 1, 0, 0, 198, 51, 100, 7, 10, 0, 0, 1,
        8, 0, 0, 0, 0x12, 0x34, 0, 1,
    ];
    let short = syn.get(..26).unwrap_or(&[]).to_vec();
    let state = |proto: u8, len: usize| PktState {
        nhoff: 0,
        thoff: 20,
        has_th: true,
        l4proto: proto,
        nfproto: nfr_vm::pkt::NFPROTO_IPV4,
        protocol: 0x0800,
        len: len as u32,
        ..PktState::default()
    };
    let (ls, lu, li, lt) = (syn.len(), udp.len(), icmp.len(), short.len());
    [
        (syn, state(6, ls)),
        (udp, state(17, lu)),
        (icmp, state(1, li)),
        (short, state(6, lt)),
    ]
}

/// Target `parse_check`: if `data` is UTF-8, parse it, print it canonically, check it and, when a `Hir`
/// comes out, print its listing, lower it to a verified program and run every chain of it on the fixed packets.
pub fn parse_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = nfr_grammar::parse(text);
    let printed = nfr_grammar::format(&parsed.file);
    // The canonical form is text the parser must take too.
    let _ = nfr_grammar::parse(&printed);
    let mut sources = nfr_compiler::diag::SourceMap::new();
    let root = sources.add("fuzz.nfr", text);
    let (out, _diags) =
        nfr_compiler::check::check_listed(&mut sources, root, &mut nfr_compiler::check::NoIncludes);
    let Some((hir, listing)) = out else {
        return;
    };
    // The listing `nfc run pcap` prints.
    let _ = nfr_grammar::format(&listing.file);
    if let Ok(prog) = nfr_compiler::lower::lower_verified(&hir) {
        run_program(&prog);
    }
}

/// Runs every chain of a verified program on the fixed packets (interpreter).
pub fn run_program(prog: &VerifiedProgram) {
    let mut state = State::new(prog);
    let mut fx = Effects::default();
    for i in 0..prog.program().chains.len() {
        for (pkt, st) in fixed_packets() {
            let mut st = st;
            fx.clear();
            let _ = prog.run(&mut state, ChainId(i as u32), &pkt, &mut st, &mut fx);
        }
    }
}

/// Target `ipt_blob`: `data` as an `ipt_replace` blob — decode it, verify it (`translate_table`), and when it
/// verifies, run the fixed packets through every hook of it with the `ipt_do_table` executor.
pub fn ipt_blob(data: &[u8]) {
    let decoded = nfr_ipt::decode(data);
    if let Ok(table) = &decoded {
        // A decoded table re-encodes (or says why not) without panicking.
        let _ = nfr_ipt::encode(table);
        let _ = nfr_ipt::save(table, true);
    }
    let Ok(verified) = nfr_ipt::verify(data) else {
        return;
    };
    let Ok(mut ex) = nfr_ipt::ExecTable::new(verified) else {
        return;
    };
    for hook in Hook::ALL {
        for (pkt, st) in fixed_packets() {
            let _ = ex.do_table(hook, &pkt, &st);
        }
    }
}

/// Link types `wire` picks from with its first byte.
const LINKTYPES: [u16; 12] = [
    linktype::NULL,
    linktype::ETHERNET,
    linktype::PPP,
    linktype::RAW_OPENBSD,
    linktype::RAW_BSDOS,
    linktype::RAW,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::IPV4,
    linktype::IPV6,
    linktype::LINUX_SLL2,
    0xffff,
];

/// Conntrack settings for fuzzing: a small table (early drop happens), no checksum verification (so
/// mutated packets get past the `*_error` checks), the FTP helper on port 21, events and accounting on.
pub fn wire_settings() -> Settings {
    Settings {
        max: 512,
        buckets: 64,
        checksum: false,
        acct: true,
        events: true,
        ftp_ports: vec![21],
        ..Settings::default()
    }
}

/// Target `wire`: byte 0 picks the link type (low nibble) and the hook (high nibble), byte 1 advances the
/// virtual clock (in 0.1 s steps, so timeouts expire), the rest is the frame. The frame is parsed with
/// `parse_frame`; an IP packet then goes through `prefetch_burst`, `conntrack_in` (or a one-packet
/// `conntrack_in_burst`), `fill_pkt` and `confirm` on the persistent
/// table `ct`, and is released, as the hook path does.
pub fn wire(ct: &mut Conntrack, clock: &mut u64, data: &[u8]) {
    let [sel, step, frame @ ..] = data else {
        return;
    };
    let lt = LINKTYPES
        .get(usize::from(sel & 0x0f) % LINKTYPES.len())
        .copied()
        .unwrap_or(linktype::RAW);
    let hook = Hook::ALL
        .get(usize::from(sel >> 4) % Hook::ALL.len())
        .copied()
        .unwrap_or(Hook::Prerouting);
    *clock = clock.saturating_add(u64::from(*step) * 100_000_000);
    let now = *clock;
    let Ok(pi) = parse_frame(lt, frame) else {
        return;
    };
    let mut st = PktState::default();
    pi.fill(&mut st);
    let l3 = pi.l3(frame);
    // The burst prefetch passes read the same bytes (and the raw frame, as if it were a datagram); when bit 6
    // of the step is set the packet goes through a burst (passes forced on) instead of `conntrack_in`.
    ct.prefetch_burst(&[l3, frame], u16::from(*step & 3));
    let mut nfct = Nfct::None;
    let v = if step & 0x40 != 0 {
        ct.set_burst_prefetch(BurstPrefetch::Always);
        let (mut nfcts, mut vs) = ([Nfct::None], [Verdict::Accept]);
        ct.conntrack_in_burst(&[l3], hook, now, &mut nfcts, &mut vs);
        nfct = nfcts[0];
        vs[0]
    } else {
        ct.conntrack_in(l3, hook, now, &mut nfct)
    };
    if v == Verdict::Accept {
        ct.fill_pkt(&nfct, now, &mut st);
        if ct.confirm(l3, now, &mut nfct) == Verdict::Accept {
            ct.fill_pkt(&nfct, now, &mut st);
        }
    }
    ct.release(&mut nfct);
    let _ = ct.drain_events();
    if step & 0x80 != 0 {
        let _ = ct.gc(now);
        let _ = ct.listing(now);
    }
}

/// Target `pcap`: `data` as a pcap or pcapng file; read every frame (parsing each with `parse_frame`) until
/// the end or an error.
pub fn pcap(data: &[u8]) {
    // No record can be longer than the input: a header claiming megabytes is refused at once instead of growing
    // the buffer for it.
    let Ok(mut reader) = PcapReader::with_buffer(data, data.len(), data.len()) else {
        return;
    };
    // No cap on purpose: a reader that yields frames without consuming input shows up as a fuzzer timeout.
    while let Ok(Some(frame)) = reader.next_frame() {
        let _ = parse_frame(frame.linktype, frame.data);
    }
}

/// Target `import_save`: `data` as iptables-save text (`nfc import iptables-save`): parse it; each table is
/// encoded, verified and printed back, the tables are written as `.nfr`, and that text is checked (a table
/// that imports must give a ruleset the checker reads; whether it accepts it is the checker's call).
pub fn import_save(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(tables) = nfr_ipt::parse_save(text) else {
        return;
    };
    for t in &tables {
        let _ = nfr_ipt::save(t, false);
        if let Ok(blob) = nfr_ipt::encode(t) {
            let _ = nfr_ipt::verify(&blob);
        }
    }
    if let Ok(nfr) = nfr_compiler::lower::ipt::tables_to_nfr(&tables) {
        let _ = nfr_compiler::check::check_source("import.nfr", &nfr);
    }
}

/// Most frames of one `run_pcap` input that are replayed.
const RUN_PCAP_FRAMES: usize = 64;

/// Target `run_pcap`: `nfc run pcap` end to end. Bytes 0-1 (little endian) give the length of the ruleset
/// text that follows (ignored unless UTF-8); the rest is a pcap or pcapng capture. A ruleset that checks is
/// loaded into a host (`nfr_host::load`, as `nfc run pcap` builds it) on the interpreter, the JIT and, when it
/// lowers to iptables, the ipt engine; the capture's first frames are replayed through each host's hooks with
/// conntrack, and every engine must give every frame the same fate. One difference is the kernel's own: an
/// iptables match that cannot read its header drops the packet (`hotdrop`, e.g. `-p tcp --dport` on a cut TCP
/// header) where nft's rule just does not match, so the ipt engine is compared up to its first hotdrop.
/// Returns the (engine, frame) pairs compared with the first engine's.
pub fn run_pcap(data: &[u8]) -> usize {
    use nfr_runtime::engine::EngineKind;
    use nfr_runtime::replay::{ReplayConfig, Replayer};
    let [a, b, rest @ ..] = data else {
        return 0;
    };
    let n = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
    let (rules, capture) = rest.split_at(n);
    let Ok(text) = std::str::from_utf8(rules) else {
        return 0;
    };
    let opts = nfr_host::Options {
        trace: false,
        effects: true,
    };
    let mut fates: Vec<(EngineKind, Vec<String>, bool)> = Vec::new();
    for kind in [EngineKind::Interp, EngineKind::Jit, EngineKind::Ipt] {
        let Ok(host) = nfr_host::load("fuzz.nfr", text, kind, opts) else {
            // a ruleset that does not check fails on every engine; one without an iptables form, on ipt
            continue;
        };
        let ipts = host.loaded.ipts.clone();
        let ct = Conntrack::new(Settings {
            max: 256,
            buckets: 64,
            checksum: false,
            ..Settings::default()
        });
        let mut r = Replayer::new(host.hooks, ct, ReplayConfig::default());
        let Ok(mut reader) = PcapReader::new(capture) else {
            return 0;
        };
        let (mut seen, mut hotdropped) = (Vec::new(), false);
        while seen.len() < RUN_PCAP_FRAMES {
            let Ok(Some(f)) = reader.next_frame() else {
                break;
            };
            let fate = format!("{:?}", r.frame(&f));
            let mut hotdrop = false;
            for t in &ipts {
                if let Some(log) = t.borrow_mut().effects_log.as_mut() {
                    hotdrop |= log
                        .drain(..)
                        .any(|(_, fx)| fx.contains(&nfr_ipt::exec::Effect::Hotdrop));
                }
            }
            if hotdrop {
                hotdropped = true;
                break;
            }
            seen.push(fate);
        }
        fates.push((kind, seen, hotdropped));
    }
    let mut compared = 0;
    if let Some((first, want, _)) = fates.first() {
        for (kind, got, hotdropped) in &fates[1..] {
            let want = if *hotdropped {
                want.get(..got.len()).unwrap_or(want)
            } else {
                want
            };
            assert_eq!(
                got, want,
                "{kind:?} and {first:?} disagree on the frames' fates"
            );
            compared += got.len();
        }
    }
    compared
}
