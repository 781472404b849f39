//! The floor of the packet path: the least `nfc run pcap RULES CAPTURE --local ADDR` has to do for each frame
//! of the `gen_workload` capture, with the project's own parts and nothing between them
//! (`cargo run --release -p nfc --example path_floor -- RULES CAPTURE [--stages N] [--prefetch] [--local ADDR]`):
//! read the record, parse the frame once into the packet context, `nf_conntrack_in` (PREROUTING for a packet
//! to ADDR, else OUTPUT), the ruleset's input chain for a packet to ADDR (JIT), `nf_confirm`, count the
//! verdicts. No hook walk, no path model, no observer, no copy of the datagram, no report. `--stages` 1 to 4
//! stops after reading, parsing, conntrack (in and confirm) or the chain (all, the default); `--prefetch`
//! prefetches conntrack's lookups 32 frames ahead as `nfc run pcap` does. It prints the loop's time, to set
//! beside `nfc run pcap`'s own on the same files.

use std::sync::Arc;
use std::time::Instant;

use nfr_runtime::ct::{Conntrack, Nfct, Settings};
use nfr_runtime::engine::{EngineKind, ProgramEngine};
use nfr_runtime::pcap::PcapReader;
use nfr_runtime::wire;
use nfr_vm::{Hook, PktState, Verdict};

fn main() -> anyhow::Result<()> {
    const USAGE: &str =
        "usage: path_floor RULES CAPTURE [--stages 1-4] [--prefetch] [--local ADDR]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [rules, capture, rest @ ..] = args.as_slice() else {
        anyhow::bail!(USAGE);
    };
    let (mut stages, mut prefetch, mut local) = (4u32, false, [10, 0, 0, 1]);
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value; {USAGE}"))
        };
        match a.as_str() {
            "--stages" => stages = value()?.parse()?,
            "--local" => local = value()?.parse::<std::net::Ipv4Addr>()?.octets(),
            "--prefetch" => prefetch = true,
            _ => anyhow::bail!("unknown argument {a}; {USAGE}"),
        }
    }
    let text = std::fs::read_to_string(rules)?;
    let (_, hir, diags) = nfr_compiler::check::check_source(rules, &text);
    let hir = hir.ok_or_else(|| anyhow::anyhow!("ruleset has errors: {diags:?}"))?;
    let prog = Arc::new(nfr_compiler::lower::lower_verified(&hir)?);
    let (specs, _) = nfr_host::chain_specs(&hir);
    let input = specs
        .iter()
        .find(|s| s.hook == Hook::Input)
        .ok_or_else(|| anyhow::anyhow!("no input chain"))?
        .chain;
    let mut engine = ProgramEngine::new(prog, EngineKind::Jit);
    let mut ct = Conntrack::new(Settings {
        checksum: false,
        ..Settings::default()
    });
    let mut reader = PcapReader::new(std::fs::File::open(capture)?)?;
    let mut counts = [0u64; 4];
    let mut frames = 0u64;
    let t = Instant::now();
    let start = 1_000_000_000_000u64;
    let mut first = None;
    loop {
        if prefetch && frames.is_multiple_of(32) {
            let mut ahead = [(0, &[][..]); 32];
            let n = reader.peek_buffered(&mut ahead);
            let mut l3 = [&[][..]; 32];
            for (d, &(lt, f)) in l3.iter_mut().zip(&ahead[..n]) {
                let nh = wire::parse_link(lt, f).map_or(f.len(), |li| usize::from(li.nhoff));
                *d = f.get(nh..).unwrap_or(&[]);
            }
            ct.prefetch_burst(&l3[..n], 0);
        }
        let Some(f) = reader.next_frame()? else {
            break;
        };
        frames += 1;
        let now = start + f.ts_ns - *first.get_or_insert(f.ts_ns);
        if stages < 2 {
            // Touch the frame as the parse would.
            counts[0] += u64::from(f.data.get(14).copied().unwrap_or(0));
            continue;
        }
        let Ok(pi) = wire::parse_frame(f.linktype, f.data) else {
            counts[3] += 1;
            continue;
        };
        let l3 = pi.l3(f.data);
        let mut st = PktState {
            tstamp_ns: now,
            ..PktState::default()
        };
        pi.fill(&mut st);
        st.nhoff = 0;
        st.thoff -= pi.nhoff;
        st.has_ll = false;
        let to_host = l3.get(16..20) == Some(&local[..]);
        let hook = if to_host {
            Hook::Prerouting
        } else {
            Hook::Output
        };
        if stages < 3 {
            counts[0] += u64::from(st.thoff) + u64::from(hook == Hook::Output);
            continue;
        }
        let mut nfct = Nfct::None;
        let mut v = ct.conntrack_in(l3, hook, now, &mut nfct);
        ct.fill_pkt_state(&nfct, &mut st);
        if v == Verdict::Accept && to_host && stages >= 4 {
            v = engine.run_chain(input, l3, &mut st);
        }
        if v == Verdict::Accept {
            v = match ct.confirmed(&nfct, &mut st) {
                Some(v) => v,
                None => ct.confirm_mangled(l3, now, &mut nfct).0,
            };
        }
        ct.release(&mut nfct);
        counts[usize::from(v == Verdict::Accept) + 2 * usize::from(to_host)] += 1;
    }
    let s = t.elapsed().as_secs_f64();
    // counts: [dropped, accepted] of the packets from elsewhere, then of those to ADDR (stages 1 and 2: a
    // checksum of what was read).
    println!(
        "frames {frames}: {s:.3} s, {:.0} packets/s, {:.1} ns a frame; counts {counts:?}",
        frames as f64 / s,
        s * 1e9 / frames as f64
    );
    Ok(())
}
