//! Conntrack throughput: an established-flow hit with 1K / 10K / 100K / 1M tracked flows, a new connection
//! (SYN -> confirm, with periodic expiry), and the per-flow memory footprint (printed). Each is measured one
//! packet at a time (`conntrack_in`) and in bursts of 32 (`conntrack_in_burst`, the shape of OVS's
//! `test-conntrack benchmark` with batch 32); a burst sample is 32 packets (criterion's element throughput; the
//! time per packet is the sample time / 32). Beside them, a bare `hashbrown` lookup of the same flows' keys in the
//! same bursts, the baseline that shows what the tracker costs over a hash lookup.
//!
//! The hit loop replays 4096 prebuilt ACK segments of random flows (no packet building or allocation in the
//! measured loop); 1K flows keeps the whole table in L1/L2 (the instruction-bound cost), larger tables add the
//! cache misses of the lookup (bucket head, chain entries, TCP state). The bucket count is the flow count
//! rounded up to a power of two (the kernel sizes `nf_conntrack_max` = buckets), so chains hold ~2 links.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nfr_runtime::ct::{BURST, Nfct};
use nfr_vm::{Hook, Verdict};
use std::hint::black_box;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{SERVER, client, new_table, next_syn, pass, populate};

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("ct_established_hit");
    for n in [1_000u32, 10_000, 100_000, 1_000_000] {
        let (mut ct, pkts) = populate(n);
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let p = &pkts[k & 4095];
                k += 1;
                let mut nf = Nfct::None;
                black_box(ct.conntrack_in(p, Hook::Prerouting, 1_000_000, &mut nf));
                ct.release(&mut nf);
            })
        });
    }
    g.finish();
}

fn established_burst(c: &mut Criterion) {
    let mut g = c.benchmark_group("ct_established_hit_burst32");
    g.throughput(Throughput::Elements(BURST as u64));
    for n in [1_000u32, 10_000, 100_000, 1_000_000] {
        let (mut ct, pkts) = populate(n);
        let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
        let mut k = 0usize;
        let mut verdicts = [Verdict::Accept; BURST];
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let at = (k * BURST) & 4095;
                k += 1;
                let mut nfcts = [Nfct::None; BURST];
                ct.conntrack_in_burst(
                    &refs[at..at + BURST],
                    Hook::Prerouting,
                    1_000_000,
                    &mut nfcts,
                    &mut verdicts,
                );
                for nf in &mut nfcts {
                    ct.release(black_box(nf));
                }
            })
        });
    }
    g.finish();
}

/// The baseline of the hit: a bare `hashbrown` map from the same flows' 5-tuples (both directions, as the
/// table holds them) to an index, looked up with the keys of the same 4096 packets, taken from their headers
/// beforehand, in bursts of 32 like the burst hit. What the tracker costs is the hit minus this.
fn hashbrown_baseline(c: &mut Criterion) {
    let mut g = c.benchmark_group("ct_hashbrown_lookup_burst32");
    g.throughput(Throughput::Elements(BURST as u64));
    let key = |p: &[u8]| -> [u8; 13] {
        let th = usize::from(p[0] & 0xf) * 4;
        let mut k = [0u8; 13];
        k[..8].copy_from_slice(&p[12..20]);
        k[8..12].copy_from_slice(&p[th..th + 4]);
        k[12] = p[9];
        k
    };
    for n in [1_000u32, 10_000, 100_000, 1_000_000] {
        let (ct, pkts) = populate(n);
        drop(ct);
        let server = SERVER.to_be_bytes();
        let mut map = hashbrown::HashMap::with_capacity(2 * n as usize);
        for i in 0..n {
            let (c, sp) = client(i);
            let std::net::IpAddr::V4(c) = c else {
                unreachable!()
            };
            let mut k = [0u8; 13];
            k[..4].copy_from_slice(&c.octets());
            k[4..8].copy_from_slice(&server);
            k[8..10].copy_from_slice(&sp.to_be_bytes());
            k[10..12].copy_from_slice(&80u16.to_be_bytes());
            k[12] = 6;
            map.insert(k, 2 * i);
            let mut r = [0u8; 13];
            r[..4].copy_from_slice(&server);
            r[4..8].copy_from_slice(&c.octets());
            r[8..10].copy_from_slice(&80u16.to_be_bytes());
            r[10..12].copy_from_slice(&sp.to_be_bytes());
            r[12] = 6;
            map.insert(r, 2 * i + 1);
        }
        let keys: Vec<[u8; 13]> = pkts.iter().map(|p| key(p)).collect();
        assert!(keys.iter().all(|k| map.contains_key(k)));
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let at = (k * BURST) & 4095;
                k += 1;
                let mut sum = 0u32;
                for key in &keys[at..at + BURST] {
                    sum = sum.wrapping_add(*map.get(black_box(key)).unwrap_or(&0));
                }
                black_box(sum)
            })
        });
    }
    g.finish();
}

fn new_connection(c: &mut Criterion) {
    let (mut ct, mut tmpl) = new_table();
    let mut i: u32 = 0;
    let mut now: u64 = 0;
    c.bench_function("ct_new_connection", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            next_syn(&mut ct, &mut tmpl, i, &mut now);
            pass(&mut ct, black_box(&tmpl), now);
        })
    });
    println!("bytes per flow (slab entry): {}", ct.bytes_per_flow());
}

/// 32 SYNs of new connections through `conntrack_in_burst`, then each confirmed (OVS's batch commit).
fn new_connection_burst(c: &mut Criterion) {
    let (mut ct, tmpl) = new_table();
    let mut syns = vec![tmpl; BURST];
    let mut i: u32 = 0;
    let mut now: u64 = 0;
    let mut verdicts = [Verdict::Accept; BURST];
    let mut g = c.benchmark_group("ct_new_connection_burst32");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("syn", |b| {
        b.iter(|| {
            for s in &mut syns {
                i = i.wrapping_add(1);
                next_syn(&mut ct, s, i, &mut now);
            }
            let refs: [&[u8]; BURST] = std::array::from_fn(|k| syns[k].as_slice());
            let mut nfcts = [Nfct::None; BURST];
            ct.conntrack_in_burst(&refs, Hook::Prerouting, now, &mut nfcts, &mut verdicts);
            for (p, nf) in refs.iter().zip(&mut nfcts) {
                ct.confirm(p, now, nf);
                ct.release(nf);
            }
        })
    });
    g.finish();
}

/// The floor an established hit cannot go below: the tracker step alone (`tcp::established_ack`, the lean
/// path's `tcp_in_window` checks and accepting tail and the timeout choice) on an in-cache connection, no
/// parsing, hashing or lookup. A data segment one way and its ACK the other, so the windows stay valid forever;
/// a sample is the pair.
fn tracker_step(c: &mut Criterion) {
    use nfr_runtime::ct::Settings;
    use nfr_runtime::ct::tcp::{self, Seg, TcpCtx};
    use nfr_runtime::wire::tcp_flags as F;
    let st = Settings::default();
    let seg = |seq, ack, flags, payload_len| Seg {
        seq,
        ack,
        flags,
        win: 65535,
        payload_len,
        options: &[],
    };
    let cx = TcpCtx {
        confirmed: true,
        seen_reply: true,
        assured: false,
        fixed_timeout: false,
        expires_ns: 60_000_000_000,
        receiver_offset: 0,
    };
    let (mut tc, _) = tcp::new_syn(&seg(1, 0, F::SYN, 0), &st);
    tcp::tcp_packet(&mut tc, 1, &seg(100, 2, F::SYN | F::ACK, 0), &cx, &st);
    tcp::tcp_packet(&mut tc, 0, &seg(2, 101, F::ACK, 0), &cx, &st);
    assert_eq!(tc.state, tcp::state::ESTABLISHED);
    let (mut s0, s1) = (2u32, 101u32);
    let mut g = c.benchmark_group("ct_tracker_step");
    g.throughput(Throughput::Elements(2));
    g.bench_function("established_ack_pair", |b| {
        b.iter(|| {
            let data = seg(s0, s1, F::ACK, 100);
            let r0 = tcp::established_ack(&mut tc, 0, black_box(&data), true, &st);
            s0 = s0.wrapping_add(100);
            let ack = seg(s1, s0, F::ACK, 0);
            let r1 = tcp::established_ack(&mut tc, 1, black_box(&ack), true, &st);
            assert!(r0.is_some() && r1.is_some());
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    tracker_step,
    established,
    established_burst,
    hashbrown_baseline,
    new_connection,
    new_connection_burst
);
criterion_main!(benches);
