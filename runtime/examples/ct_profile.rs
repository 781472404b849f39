//! Conntrack profiling driver for instruction counting (callgrind / `perf stat`): builds a table of N
//! established TCP flows like `benches/conntrack.rs` (the same builders), then runs K established hits one by
//! one (`hit`) or in bursts of 32 (`hitb`), or K new connections one by one (`new`) or in bursts (`newb`). Run
//! twice with different K and subtract to get instructions per packet.
//!
//! `cargo run --release -p nfr-runtime --example ct_profile -- hit 100000 1000000`

use nfr_runtime::ct::{BurstPrefetch, Conntrack, Nfct};
use nfr_vm::Hook;
use std::hint::black_box;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{new_table, next_syn, pass, populate};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("hit", String::as_str).to_string();
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let k: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    if mode == "new" || mode == "newb" {
        let (mut ct, mut tmpl) = new_table();
        let t0 = std::time::Instant::now();
        if mode == "newb" {
            run_new_burst(&mut ct, &tmpl, k);
        } else {
            run_new(&mut ct, &mut tmpl, k);
        }
        let ns = t0.elapsed().as_nanos() as f64 / k as f64;
        println!(
            "new: {k} connections, count {}, {ns:.1} ns each",
            ct.count()
        );
        return;
    }
    let (mut ct, pkts) = populate(n);
    // A/B switch for the burst prefetch passes: NFC_BURST_PREFETCH=always|never (default: auto).
    match std::env::var("NFC_BURST_PREFETCH").as_deref() {
        Ok("always") => ct.set_burst_prefetch(BurstPrefetch::Always),
        Ok("never") => ct.set_burst_prefetch(BurstPrefetch::Never),
        _ => {}
    }
    let t0 = std::time::Instant::now();
    let est = if mode == "hitb" {
        run_hits_burst(&mut ct, &pkts, k)
    } else {
        run_hits(&mut ct, &pkts, k)
    };
    let ns = t0.elapsed().as_nanos() as f64 / k as f64;
    println!(
        "hit: {n} flows, {k} packets, {est} attached, {ns:.1} ns each, stats {:?}",
        ct.stats()
    );
}

/// The measured loop of `new` (callgrind: `--toggle-collect=*run_new*`).
#[inline(never)]
fn run_new(ct: &mut Conntrack, tmpl: &mut [u8], k: u64) {
    let mut now: u64 = 0;
    for i in 1..=k as u32 {
        next_syn(ct, tmpl, i, &mut now);
        pass(ct, black_box(tmpl), now);
    }
}

/// `run_new` as bursts of 32 SYNs through `conntrack_in_burst`, each then confirmed and released (the
/// `ct_new_connection_burst32` benchmark).
#[inline(never)]
fn run_new_burst(ct: &mut Conntrack, tmpl: &[u8], k: u64) {
    let mut syns = vec![tmpl.to_vec(); 32];
    let mut now: u64 = 0;
    let mut i: u32 = 0;
    let mut v = [nfr_vm::Verdict::Accept; 32];
    for _ in 0..k / 32 {
        for s in &mut syns {
            i = i.wrapping_add(1);
            next_syn(ct, s, i, &mut now);
        }
        let refs: [&[u8]; 32] = std::array::from_fn(|j| syns[j].as_slice());
        let mut nf = [Nfct::None; 32];
        ct.conntrack_in_burst(&refs, Hook::Prerouting, now, &mut nf, &mut v);
        for (p, n) in refs.iter().zip(&mut nf) {
            ct.confirm(p, now, n);
            ct.release(n);
        }
    }
}

/// The measured loop of `hit` (callgrind: `--toggle-collect=*run_hits*`); returns how many packets got a ct.
#[inline(never)]
fn run_hits(ct: &mut Conntrack, pkts: &[Vec<u8>], k: u64) -> u64 {
    let mut est = 0u64;
    for j in 0..k {
        let p = &pkts[(j & 4095) as usize];
        let mut nf = Nfct::None;
        black_box(ct.conntrack_in(p, Hook::Prerouting, 1_000_000, &mut nf));
        if let Nfct::Ct { .. } = nf {
            est += 1;
        }
        ct.release(&mut nf);
    }
    est
}

/// `run_hits` through `conntrack_in_burst`, 32 packets at a time.
#[inline(never)]
fn run_hits_burst(ct: &mut Conntrack, pkts: &[Vec<u8>], k: u64) -> u64 {
    let mut est = 0u64;
    let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
    let mut v = [nfr_vm::Verdict::Accept; 32];
    for j in 0..k / 32 {
        let at = ((j * 32) & 4095) as usize;
        let mut nf = [Nfct::None; 32];
        ct.conntrack_in_burst(
            &refs[at..at + 32],
            Hook::Prerouting,
            1_000_000,
            &mut nf,
            &mut v,
        );
        for n in &mut nf {
            if let Nfct::Ct { .. } = n {
                est += 1;
            }
            ct.release(n);
        }
    }
    black_box(&v);
    est
}
