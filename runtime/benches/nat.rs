//! What NAT costs a packet: the same established TCP flow forwarded through the hooks (PREROUTING with
//! conntrack, FORWARD, POSTROUTING with confirm; `Hooks::receive`), an ACK each way per iteration, side by side
//!
//! * `plain`: no nat chain, so no NAT hook (the router without NAT);
//! * `null_binding`: a nat chain on POSTROUTING that maps nothing: the NAT hooks run on every packet, the
//!   connection has a null binding and is not rewritten;
//! * `snat`: the nat chain SNATs the connection: every packet is rewritten (the client's source on the way out,
//!   the destination of the server's answers on the way in, with the checksum updates).
//!
//! A sample is two packets (criterion's element throughput); the time per packet is the sample time / 2. The
//! packet is copied into an owned buffer for each step in every variant (as the replay owns its packets), so the
//! difference between the variants is what NAT adds. On a loaded machine criterion's separate runs drift apart,
//! so the bench first times the three interleaved, round by round, and prints each one's best round (ns a
//! packet) and the differences to the first (`NFC_NAT_ROUNDS`, default 40 rounds of 20000 iterations;
//! `NFC_NAT_ONLY=snat` times one variant alone, e.g. under callgrind).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nfr_runtime::ct::nat::{Manip, NatRange};
use nfr_runtime::ct::{Conntrack, Settings};
use nfr_runtime::hook::{Engine, HookCtx, Hooks, Packet, Route, priority};
use nfr_runtime::pcap::linktype;
use nfr_runtime::wire::build;
use nfr_vm::pkt::NFPROTO_IPV4;
use nfr_vm::{Hook, Verdict};
use std::hint::black_box;
use std::net::IpAddr;

/// A nat chain: binds every new connection to `range` (`snat to`), or to nothing.
struct Snat(Option<NatRange>);

impl Engine for Snat {
    fn hook(&mut self, pkt: &mut Packet<'_>, cx: &mut HookCtx<'_>) -> Verdict {
        if let Some(r) = &self.0 {
            let _ = cx.ct.nf_nat_setup_info(&pkt.nfct, r, Manip::Src, cx.now);
        }
        Verdict::Accept
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One packet through the forward path, from an owned copy of `data`.
fn forward(h: &mut Hooks, ct: &mut Conntrack, buf: &mut Vec<u8>, data: &[u8], now: u64) {
    buf.clear();
    buf.extend_from_slice(data);
    let Ok(mut p) = Packet::from_owned(linktype::RAW, std::mem::take(buf), now) else {
        return;
    };
    black_box(h.receive(&mut p, Route::Forward, ct, now));
    if let std::borrow::Cow::Owned(b) = p.data {
        *buf = b;
    }
}

/// Hooks and table with the flow established; the two ACKs of the steady state.
fn setup(nat: Option<Option<NatRange>>) -> (Hooks, Conntrack, [Vec<u8>; 2]) {
    let mut h = Hooks::with_conntrack();
    if let Some(r) = nat {
        h.register_nat(
            NFPROTO_IPV4,
            Hook::Postrouting,
            priority::NAT_SRC,
            Box::new(Snat(r)),
        )
        .unwrap();
    }
    // Checksums not verified, as `nfc run` replays by default (and the lean conntrack paths need).
    let mut ct = Conntrack::new(Settings {
        checksum: false,
        ..Settings::default()
    });
    let (c, s) = (ip("192.168.1.50"), ip("93.184.216.34"));
    // What the server sees: the client, or the router's address when SNATed.
    let seen = if matches!(nat, Some(Some(_))) {
        ip("198.51.100.1")
    } else {
        c
    };
    let syn = build::tcp(c, s, 50000, 443, 1000, 0, 0x02, 64240, &[], &[]);
    let synack = build::tcp(s, seen, 443, 50000, 5000, 1001, 0x12, 64240, &[], &[]);
    let ack = build::tcp(c, s, 50000, 443, 1001, 5001, 0x10, 64240, &[], &[]);
    let back = build::tcp(s, seen, 443, 50000, 5001, 1001, 0x10, 64240, &[], &[]);
    let mut buf = Vec::new();
    for p in [&syn, &synack, &ack, &back] {
        forward(&mut h, &mut ct, &mut buf, p, 1_000_000);
    }
    assert_eq!(ct.len(1_000_000), 1);
    (h, ct, [ack, back])
}

/// The three variants: name and NAT set-up.
fn variants() -> [(&'static str, Option<Option<NatRange>>); 3] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[198, 51, 100, 1]);
    let snat = NatRange {
        flags: 0,
        addr: Some((a, a)),
        proto: None,
    };
    [
        ("plain", None),
        ("null_binding", Some(None)),
        ("snat", Some(Some(snat))),
    ]
}

/// The variants timed side by side: rounds interleave them, each round's ns a packet; the best round of each.
fn side_by_side() {
    let rounds: usize = std::env::var("NFC_NAT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let iters = 20_000u32;
    // `NFC_NAT_ONLY=name` times one variant (for an instruction profile of it alone).
    let only = std::env::var("NFC_NAT_ONLY").ok();
    let mut runs: Vec<_> = variants()
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .map(|(name, nat)| (name, setup(nat), Vec::new(), f64::MAX))
        .collect();
    for _ in 0..rounds {
        for (_, (h, ct, pkts), buf, best) in runs.iter_mut() {
            let t = std::time::Instant::now();
            for _ in 0..iters {
                for p in pkts.iter() {
                    forward(h, ct, buf, p, 2_000_000);
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / f64::from(iters * 2);
            *best = best.min(ns);
        }
    }
    let base = runs[0].3;
    println!("NAT side by side (best of {rounds} interleaved rounds, ns a packet):");
    for (name, _, _, best) in &runs {
        println!(
            "  {name:<13} {best:7.1}  ({:+.1} over the first)",
            best - base
        );
    }
}

fn established(c: &mut Criterion) {
    side_by_side();
    let mut g = c.benchmark_group("nat_established_forward");
    g.throughput(Throughput::Elements(2));
    for (name, nat) in variants() {
        let (mut h, mut ct, pkts) = setup(nat);
        let mut buf = Vec::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                for p in &pkts {
                    forward(&mut h, &mut ct, &mut buf, p, 2_000_000);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, established);
criterion_main!(benches);
