//! Conntrack profiling driver for instruction counting (callgrind / `perf stat`): builds a table of N
//! established TCP flows like `benches/conntrack.rs`, then runs K established hits (`hit`) or K new
//! connections (`new`). Run twice with different K and subtract to get instructions per packet.
//!
//! `cargo run --release -p nfr-runtime --example ct_profile -- hit 100000 1000000`

use nfr_runtime::ct::{Conntrack, Nfct, Settings};
use nfr_runtime::wire::build;
use nfr_runtime::wire::tcp_flags as F;
use nfr_vm::Hook;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

fn ip(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn pass(ct: &mut Conntrack, p: &[u8], now: u64) {
    let mut n = Nfct::None;
    ct.conntrack_in(p, Hook::Prerouting, now, &mut n);
    ct.confirm(p, now, &mut n);
    ct.release(&mut n);
}

fn client(i: u32) -> (IpAddr, u16) {
    (ip(0x0a00_0000 + (i >> 10)), 1024 + (i & 1023) as u16)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("hit", String::as_str).to_string();
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let k: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let server = ip(0xc0a8_0001);
    let buckets = n.next_power_of_two().max(1024);
    let mut ct = Conntrack::new(Settings {
        max: 0,
        buckets: if mode == "new" { 262_144 } else { buckets },
        checksum: false,
        ..Settings::default()
    });
    if mode == "new" {
        let mut tmpl = build::tcp(ip(0x0a00_0000), server, 1, 80, 7, 0, F::SYN, 1024, &[], b"");
        let t0 = std::time::Instant::now();
        run_new(&mut ct, &mut tmpl, k);
        let ns = t0.elapsed().as_nanos() as f64 / k as f64;
        println!(
            "new: {k} connections, count {}, {ns:.1} ns each",
            ct.count()
        );
        return;
    }
    for i in 0..n {
        let (c, sp) = client(i);
        pass(
            &mut ct,
            &build::tcp(c, server, sp, 80, 1, 0, F::SYN, 65535, &[], b""),
            0,
        );
        pass(
            &mut ct,
            &build::tcp(server, c, 80, sp, 100, 2, F::SYN | F::ACK, 65535, &[], b""),
            0,
        );
        pass(
            &mut ct,
            &build::tcp(c, server, sp, 80, 2, 101, F::ACK, 65535, &[], b""),
            0,
        );
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let pkts: Vec<Vec<u8>> = (0..4096)
        .map(|j| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % u64::from(n)) as u32;
            let (c, sp) = client(i);
            build::tcp(c, server, sp, 80, 2 + j, 101, F::ACK, 65535, &[], b"")
        })
        .collect();
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
        if i.is_multiple_of(131_072) {
            now += 200_000_000_000;
            ct.gc(now);
        }
        tmpl[12..16].copy_from_slice(&(0x0a00_0000 + (i >> 16)).to_be_bytes());
        tmpl[20..22].copy_from_slice(&(i as u16).to_be_bytes());
        pass(ct, black_box(tmpl), now);
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
