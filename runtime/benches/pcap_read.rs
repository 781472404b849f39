//! Capture reading: `PcapReader::next_frame` over an in-memory capture of 100K TCP frames of 66–130 bytes, as
//! legacy pcap and as pcapng (one interface), the frame's bytes touched so that a reader that returns them
//! lazily pays for them too. Criterion's element throughput is one frame.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nfr_runtime::pcap::{PcapReader, linktype, ng, pcap_header, pcap_record};
use std::hint::black_box;

const FRAMES: usize = 100_000;

/// An Ethernet frame of `len` bytes (contents irrelevant to the reader).
fn frame(i: usize) -> Vec<u8> {
    let len = 66 + (i * 7919) % 65;
    (0..len).map(|k| (k ^ i) as u8).collect()
}

fn legacy() -> Vec<u8> {
    let mut v = pcap_header(linktype::ETHERNET, 65535).to_vec();
    for i in 0..FRAMES {
        v.extend(pcap_record(i as u64 * 10, 0, &frame(i)));
    }
    v
}

fn pcapng() -> Vec<u8> {
    let mut v = ng::shb();
    v.extend(ng::idb(linktype::ETHERNET, Some(b"eth0")));
    for i in 0..FRAMES {
        v.extend(ng::epb(0, i as u64 * 10, &frame(i)));
    }
    v
}

#[inline(never)]
fn read_all(bytes: &[u8]) -> u64 {
    let mut r = PcapReader::new(bytes).expect("capture");
    let mut sum = 0u64;
    while let Ok(Some(f)) = r.next_frame() {
        sum = sum.wrapping_add(f.ts_ns) ^ u64::from(f.data[f.data.len() - 1]);
    }
    sum
}

fn reading(c: &mut Criterion) {
    let mut g = c.benchmark_group("pcap_read");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.sample_size(20);
    for (name, bytes) in [("pcap", legacy()), ("pcapng", pcapng())] {
        assert_eq!(
            {
                let mut r = PcapReader::new(bytes.as_slice()).unwrap();
                let mut n = 0;
                while let Ok(Some(_)) = r.next_frame() {
                    n += 1;
                }
                n
            },
            FRAMES
        );
        g.bench_function(name, |b| b.iter(|| black_box(read_all(black_box(&bytes)))));
    }
    g.finish();
}

criterion_group!(benches, reading);
criterion_main!(benches);
