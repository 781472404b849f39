//! Connection builders shared by the conntrack flood test, the criterion benchmark (`benches/conntrack.rs`) and
//! the profiling driver (`examples/ct_profile.rs`), which include this file by path: a packet through
//! conntrack as the hook path sends it (`conntrack_in`, `confirm`, release), and a whole three-way handshake.
#![allow(dead_code)] // each includer uses its own part

use nfr_runtime::ct::{Conntrack, Nfct, Settings};
use nfr_runtime::wire::build;
use nfr_runtime::wire::tcp_flags as F;
use nfr_vm::{Hook, Verdict};
use std::net::{IpAddr, Ipv4Addr};

pub fn ip(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// One packet through `conntrack_in` and (if accepted) `confirm`, then released: the attachment `conntrack_in`
/// gave it and the final verdict.
pub fn pass(ct: &mut Conntrack, p: &[u8], now: u64) -> (Nfct, Verdict) {
    let mut n = Nfct::None;
    let v = ct.conntrack_in(p, Hook::Prerouting, now, &mut n);
    let seen = n;
    let v = if v == Verdict::Accept {
        ct.confirm(p, now, &mut n)
    } else {
        v
    };
    ct.release(&mut n);
    (seen, v)
}

/// SYN, SYN/ACK, ACK between `client:sport` and `server:dport` (client ISN 1, server ISN 100, windows 65535);
/// returns the attachment of the final ACK (ESTABLISHED when all went well).
pub fn establish(
    ct: &mut Conntrack,
    client: IpAddr,
    sport: u16,
    server: IpAddr,
    dport: u16,
    now: u64,
) -> Nfct {
    pass(
        ct,
        &build::tcp(client, server, sport, dport, 1, 0, F::SYN, 65535, &[], b""),
        now,
    );
    pass(
        ct,
        &build::tcp(
            server,
            client,
            dport,
            sport,
            100,
            2,
            F::SYN | F::ACK,
            65535,
            &[],
            b"",
        ),
        now,
    );
    pass(
        ct,
        &build::tcp(
            client,
            server,
            sport,
            dport,
            2,
            101,
            F::ACK,
            65535,
            &[],
            b"",
        ),
        now,
    )
    .0
}

/// The client end of benchmark flow `i`: 1024 source ports per address.
pub fn client(i: u32) -> (IpAddr, u16) {
    (ip(0x0a00_0000 + (i >> 10)), 1024 + (i & 1023) as u16)
}

/// The server of the benchmark flows.
pub const SERVER: u32 = 0xc0a8_0001;

/// A table of `n` established flows to `SERVER:80`, with buckets = `n` rounded up to a power of two (the
/// kernel sizes `nf_conntrack_max` = buckets, so chains hold ~2 links), and 4096 ACK segments of pseudo-random
/// ones of them (the measured packets: no building or allocation in the measured loop).
pub fn populate(n: u32) -> (Conntrack, Vec<Vec<u8>>) {
    let mut ct = Conntrack::new(Settings {
        max: 0,
        buckets: n.next_power_of_two().max(1024),
        checksum: false,
        ..Settings::default()
    });
    let server = ip(SERVER);
    for i in 0..n {
        let (c, sp) = client(i);
        establish(&mut ct, c, sp, server, 80, 0);
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let pkts = (0..4096)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (c, sp) = client((x % u64::from(n)) as u32);
            build::tcp(c, server, sp, 80, 2 + k, 101, F::ACK, 65535, &[], b"")
        })
        .collect();
    (ct, pkts)
}

/// The table (262144 buckets, unbounded) and SYN template of the new-connection measurements.
pub fn new_table() -> (Conntrack, Vec<u8>) {
    let ct = Conntrack::new(Settings {
        max: 0,
        buckets: 262_144,
        checksum: false,
        ..Settings::default()
    });
    let tmpl = build::tcp(
        ip(0x0a00_0000),
        ip(SERVER),
        1,
        80,
        7,
        0,
        F::SYN,
        1024,
        &[],
        b"",
    );
    (ct, tmpl)
}

/// Makes `tmpl` the SYN of new connection `i` (source address and port rewritten in place; checksums are
/// off), first letting every entry expire and collecting them once per 128K connections (so GC is amortised
/// into the cost, as destruction is part of a connection's).
pub fn next_syn(ct: &mut Conntrack, tmpl: &mut [u8], i: u32, now: &mut u64) {
    if i.is_multiple_of(131_072) {
        *now += 200_000_000_000;
        ct.gc(*now);
    }
    if let Some(src) = tmpl.get_mut(12..16) {
        src.copy_from_slice(&(0x0a00_0000 + (i >> 16)).to_be_bytes());
    }
    if let Some(sport) = tmpl.get_mut(20..22) {
        sport.copy_from_slice(&(i as u16).to_be_bytes());
    }
}
