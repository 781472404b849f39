//! Scenario tests for the conntrack core with synthetic packets (the kernel-replay agreement lives in
//! `tests/ct_expected.rs`).

use super::*;
use crate::wire::build::{self, echo};
use crate::wire::tcp_flags as F;
use std::net::IpAddr;

const S: u64 = NS;

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn settings() -> Settings {
    Settings {
        checksum: true,
        acct: true,
        events: true,
        ..Settings::default()
    }
}

/// PREROUTING -> INPUT: returns the state name seen at PREROUTING.
fn path(ct: &mut Conntrack, p: &[u8], now: u64) -> (&'static str, Verdict) {
    let mut n = Nfct::None;
    let v = ct.conntrack_in(p, Hook::Prerouting, now, &mut n);
    let st = name(&n);
    let v2 = if v == Verdict::Accept {
        ct.confirm(p, now, &mut n)
    } else {
        v
    };
    ct.release(&mut n);
    (st, v2)
}

fn name(n: &Nfct) -> &'static str {
    match n {
        Nfct::Ct {
            ctinfo: CtInfo::New,
            ..
        } => "NEW",
        Nfct::Ct {
            ctinfo: CtInfo::Established,
            ..
        } => "EST",
        Nfct::Ct {
            ctinfo: CtInfo::EstablishedReply,
            ..
        } => "EST_REPLY",
        Nfct::Ct {
            ctinfo: CtInfo::Related,
            ..
        } => "REL",
        Nfct::Ct {
            ctinfo: CtInfo::RelatedReply,
            ..
        } => "REL_REPLY",
        Nfct::Untracked => "UNTRACKED",
        _ => "INVALID",
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp(src: &str, dst: &str, sp: u16, dp: u16, seq: u32, ack: u32, fl: u8, data: &[u8]) -> Vec<u8> {
    build::tcp(a(src), a(dst), sp, dp, seq, ack, fl, 64000, &[], data)
}

fn handshake(ct: &mut Conntrack, t: u64) {
    assert_eq!(
        path(
            ct,
            &tcp("10.0.0.1", "10.0.0.2", 1000, 80, 100, 0, F::SYN, b""),
            t
        )
        .0,
        "NEW"
    );
    assert_eq!(
        path(
            ct,
            &tcp(
                "10.0.0.2",
                "10.0.0.1",
                80,
                1000,
                500,
                101,
                F::SYN | F::ACK,
                b""
            ),
            t
        )
        .0,
        "EST_REPLY"
    );
    assert_eq!(
        path(
            ct,
            &tcp("10.0.0.1", "10.0.0.2", 1000, 80, 101, 501, F::ACK, b""),
            t
        )
        .0,
        "EST"
    );
}

#[test]
fn tcp_handshake_and_listing() {
    let mut ct = Conntrack::new(settings());
    handshake(&mut ct, 10 * S);
    assert_eq!(
        ct.listing(11 * S),
        "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=80 packets=2 bytes=80 \
         src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1000 packets=1 bytes=40 [ASSURED] mark=0 use=1\n"
    );
    let ev: Vec<CtEventKind> = ct.drain_events().iter().map(|e| e.kind).collect();
    assert_eq!(
        ev,
        vec![
            CtEventKind::New,
            CtEventKind::Update,
            CtEventKind::Update,
            CtEventKind::Update,
            CtEventKind::Assured
        ]
    );
    // Close: FIN, FIN, ACK -> TIME_WAIT 120 s; then a new SYN re-opens (kill + NEW).
    path(
        &mut ct,
        &tcp(
            "10.0.0.1",
            "10.0.0.2",
            1000,
            80,
            101,
            501,
            F::FIN | F::ACK,
            b"",
        ),
        12 * S,
    );
    path(
        &mut ct,
        &tcp(
            "10.0.0.2",
            "10.0.0.1",
            80,
            1000,
            501,
            102,
            F::FIN | F::ACK,
            b"",
        ),
        12 * S,
    );
    path(
        &mut ct,
        &tcp("10.0.0.1", "10.0.0.2", 1000, 80, 102, 502, F::ACK, b""),
        12 * S,
    );
    assert!(ct.listing(12 * S).starts_with("tcp      6 120 TIME_WAIT "));
    assert_eq!(
        path(
            &mut ct,
            &tcp("10.0.0.1", "10.0.0.2", 1000, 80, 9000, 0, F::SYN, b""),
            13 * S
        )
        .0,
        "NEW"
    );
    let l = ct.listing(13 * S);
    assert!(
        l.starts_with("tcp      6 120 SYN_SENT ") && l.contains("[UNREPLIED]"),
        "{l}"
    );
    assert_eq!(ct.len(13 * S), 1);
    assert!(
        ct.drain_events()
            .iter()
            .any(|e| e.kind == CtEventKind::Destroy)
    );
}

#[test]
fn entries_and_flush() {
    let mut ct = Conntrack::new(settings());
    handshake(&mut ct, S);
    path(
        &mut ct,
        &build::udp(a("10.0.0.1"), a("10.0.0.3"), 7, 8, b"x"),
        S,
    );
    let e = ct.entries(S);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].tcp_state, Some("ESTABLISHED"));
    assert_eq!((e[0].orig.dport, e[0].reply.sport), (80, 80));
    assert_eq!(e[0].status & ips::ASSURED, ips::ASSURED);
    assert_eq!(
        (e[1].tcp_state, e[1].packets, e[1].timeout_ms),
        (None, [1, 0], 30_000)
    );
    ct.drain_events();
    assert_eq!(ct.flush(S), 2);
    assert!(ct.is_empty(S) && ct.entries(S).is_empty());
    assert_eq!(ct.drain_events().len(), 2);
    assert_eq!(
        path(
            &mut ct,
            &tcp("10.0.0.1", "10.0.0.2", 1000, 80, 101, 501, F::ACK, b""),
            S
        )
        .0,
        "NEW"
    );
}

#[test]
fn invalid_tcp_cases() {
    let mut ct = Conntrack::new(settings());
    // Lone SYN/ACK, RST, bare FIN, NULL and Xmas: never create an entry.
    for fl in [F::SYN | F::ACK, F::RST, F::FIN, 0, 0xff] {
        assert_eq!(
            path(
                &mut ct,
                &tcp("10.0.0.1", "10.0.0.2", 1, 2, 5, 5, fl, b""),
                S
            )
            .0,
            "INVALID"
        );
    }
    assert_eq!(ct.count(), 0);
    // Bad checksum with checksum verification on.
    let mut p = tcp("10.0.0.1", "10.0.0.2", 1, 2, 5, 0, F::SYN, b"");
    p[36] ^= 0xff;
    assert_eq!(path(&mut ct, &p, S).0, "INVALID");
    // ... accepted with it off.
    let mut off = Conntrack::new(Settings {
        checksum: false,
        ..settings()
    });
    assert_eq!(path(&mut off, &p, S).0, "NEW");
    // Truncated header (doff past the end).
    let mut t = tcp("10.0.0.1", "10.0.0.2", 1, 2, 5, 0, F::SYN, b"");
    t[32] = 0xf0;
    assert_eq!(path(&mut off, &t, S).0, "INVALID");
    // Pickup disabled: a mid-stream ACK is INVALID.
    let mut strict = Conntrack::new(Settings {
        tcp_loose: false,
        ..settings()
    });
    assert_eq!(
        path(
            &mut strict,
            &tcp("10.0.0.1", "10.0.0.2", 1, 2, 5, 5, F::ACK, b""),
            S
        )
        .0,
        "INVALID"
    );
    assert_eq!(
        path(
            &mut ct,
            &tcp("10.0.0.1", "10.0.0.2", 1, 2, 5, 5, F::ACK, b"x"),
            S
        )
        .0,
        "NEW"
    );
    assert!(ct.listing(S).contains("ESTABLISHED") && ct.listing(S).starts_with("tcp      6 300 "));
}

#[test]
fn syn_then_rst_deletes_entry() {
    let mut ct = Conntrack::new(settings());
    assert_eq!(
        path(
            &mut ct,
            &tcp("10.0.0.1", "10.0.0.2", 1, 2, 5, 0, F::SYN, b""),
            S
        )
        .0,
        "NEW"
    );
    assert_eq!(
        path(
            &mut ct,
            &tcp("10.0.0.2", "10.0.0.1", 2, 1, 0, 6, F::RST | F::ACK, b""),
            S
        )
        .0,
        "EST_REPLY"
    );
    assert!(ct.is_empty(S));
    assert_eq!(ct.count(), 0);
}

#[test]
fn udp_unreplied_reply_and_stream() {
    let mut ct = Conntrack::new(settings());
    let q = build::udp(a("10.0.0.1"), a("10.0.0.53"), 5000, 53, b"q");
    let r = build::udp(a("10.0.0.53"), a("10.0.0.1"), 53, 5000, b"answer");
    assert_eq!(path(&mut ct, &q, 0).0, "NEW");
    assert_eq!(path(&mut ct, &q, S).0, "NEW");
    assert!(ct.listing(S).contains("[UNREPLIED]"));
    assert_eq!(path(&mut ct, &r, S).0, "EST_REPLY");
    let l = ct.listing(S);
    assert!(
        l.starts_with("udp      17 30 ") && !l.contains("ASSURED") && !l.contains("UNREPLIED"),
        "{l}"
    );
    assert_eq!(path(&mut ct, &q, 3 * S).0, "EST");
    let l = ct.listing(3 * S);
    assert!(
        l.starts_with("udp      17 120 ") && l.contains("[ASSURED]"),
        "{l}"
    );
    // Expiry: gone after 120 s of silence, GC emits DESTROY.
    assert_eq!(ct.gc(200 * S), 1);
    assert!(ct.is_empty(200 * S));
    assert_eq!(
        ct.drain_events().last().map(|e| e.kind),
        Some(CtEventKind::Destroy)
    );
}

#[test]
fn icmp_echo_and_errors() {
    let mut ct = Conntrack::new(settings());
    let req = build::icmp(a("10.0.0.1"), a("10.0.0.2"), 8, 0, echo(7, 1), b"ping");
    let rep = build::icmp(a("10.0.0.2"), a("10.0.0.1"), 0, 0, echo(7, 1), b"ping");
    assert_eq!(
        path(&mut ct, &rep, S).0,
        "INVALID",
        "an echo reply cannot create an entry"
    );
    assert_eq!(path(&mut ct, &req, S).0, "NEW");
    assert_eq!(path(&mut ct, &rep, S).0, "EST_REPLY");
    assert!(ct.listing(S).contains("type=8 code=0 id=7"));
    // A UDP flow and a port-unreachable about it.
    let q = build::udp(a("10.0.0.1"), a("10.0.0.9"), 4000, 33434, b"probe");
    path(&mut ct, &q, S);
    let err = build::icmp(a("10.0.0.9"), a("10.0.0.1"), 3, 3, [0; 4], &q);
    assert_eq!(path(&mut ct, &err, S).0, "REL_REPLY");
    // From a router on the path: still REL_REPLY (outer daddr is the client).
    let ttl = build::icmp(a("192.0.2.254"), a("10.0.0.1"), 11, 0, [0; 4], &q);
    assert_eq!(path(&mut ct, &ttl, S).0, "REL_REPLY");
    // Outer destination mismatch -> INVALID; orphan -> INVALID; type > 18 -> INVALID.
    let bogus = build::icmp(a("10.0.0.9"), a("10.0.0.77"), 3, 3, [0; 4], &q);
    assert_eq!(path(&mut ct, &bogus, S).0, "INVALID");
    let other = build::udp(a("10.0.0.5"), a("10.0.0.9"), 1, 2, b"");
    assert_eq!(
        path(
            &mut ct,
            &build::icmp(a("10.0.0.9"), a("10.0.0.5"), 3, 3, [0; 4], &other),
            S
        )
        .0,
        "INVALID"
    );
    assert_eq!(
        path(
            &mut ct,
            &build::icmp(a("10.0.0.9"), a("10.0.0.5"), 40, 0, [0; 4], b""),
            S
        )
        .0,
        "INVALID"
    );
    // The error neither refreshed nor counted.
    assert!(
        ct.listing(S)
            .contains("sport=4000 dport=33434 packets=1 bytes=33 [UNREPLIED]")
    );
}

#[test]
fn icmpv6_untracked_echo_and_errors() {
    let mut ct = Conntrack::new(settings());
    let ns = build::icmp(a("2001:db8::1"), a("2001:db8::2"), 135, 0, [0; 4], &[0; 16]);
    assert_eq!(path(&mut ct, &ns, S).0, "UNTRACKED");
    let req = build::icmp(a("2001:db8::1"), a("2001:db8::2"), 128, 0, echo(1, 1), b"x");
    let rep = build::icmp(a("2001:db8::2"), a("2001:db8::1"), 129, 0, echo(1, 1), b"x");
    assert_eq!(path(&mut ct, &req, S).0, "NEW");
    assert_eq!(path(&mut ct, &rep, S).0, "EST_REPLY");
    assert!(
        ct.listing(S)
            .starts_with("icmpv6   58 30 src=2001:db8::1 dst=2001:db8::2 type=128 code=0 id=1")
    );
    let t = tcp("2001:db8::1", "2001:db8::3", 1, 80, 1, 0, F::SYN, b"");
    path(&mut ct, &t, S);
    let too_big = build::icmp(a("2001:db8::ff"), a("2001:db8::1"), 2, 0, [0, 0, 5, 0], &t);
    assert_eq!(path(&mut ct, &too_big, S).0, "REL_REPLY");
}

#[test]
fn icmpv6_redirect_is_related() {
    let mut ct = Conntrack::new(settings());
    let t = tcp("2001:db8::1", "2001:db8:1::9", 4000, 80, 1, 0, F::SYN, b"");
    path(&mut ct, &t, S);
    // Redirect from the router's link-local address: target + destination, then a Redirected Header option
    // (type 4, length in 8-byte units, 6 reserved bytes) carrying the original packet.
    let mut body = vec![0u8; 32];
    body.extend_from_slice(&[4, (1 + t.len().div_ceil(8)) as u8, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&t);
    let mk = |src: &str, hl: u8, code: u8, body: &[u8]| {
        let mut p = build::icmp(a(src), a("2001:db8::1"), 137, code, [0; 4], body);
        p[7] = hl;
        p
    };
    // Like any error about a packet the host sent: RELATED in the reply direction.
    assert_eq!(
        path(&mut ct, &mk("fe80::1", 255, 0, &body), S).0,
        "REL_REPLY"
    );
    assert_eq!(
        path(&mut ct, &mk("2001:db8::fe", 255, 0, &body), S).0,
        "INVALID"
    );
    assert_eq!(path(&mut ct, &mk("fe80::1", 64, 0, &body), S).0, "INVALID");
    let mut wrong_opt = body.clone();
    wrong_opt[32] = 1;
    assert_eq!(
        path(&mut ct, &mk("fe80::1", 255, 0, &wrong_opt), S).0,
        "INVALID"
    );
}

#[test]
fn generic_protocol_and_zones_and_notrack() {
    let mut ct = Conntrack::new(settings());
    let gre = build::ip(a("10.0.0.1"), a("10.0.0.2"), 47, &[0; 8]);
    assert_eq!(path(&mut ct, &gre, S).0, "NEW");
    let l = ct.listing(S);
    assert!(
        l.starts_with("gre      47 30 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 packets=1"),
        "{l}"
    );
    // PPTP GREv1 keys on the call id (the source key would come from the PPTP helper's keymap, absent
    // here: 0). A reply carrying the peer's own call id is therefore another flow ...
    let v1 = |src: &str, dst: &str, call: u16| {
        let c = call.to_be_bytes();
        build::ip(
            a(src),
            a(dst),
            47,
            &[0x30, 0x81, 0x88, 0x0b, 0, 0, c[0], c[1]],
        )
    };
    assert_eq!(
        path(&mut ct, &v1("10.0.0.5", "10.0.0.6", 0x1234), S).0,
        "NEW"
    );
    assert_eq!(path(&mut ct, &v1("10.0.0.6", "10.0.0.5", 0x99), S).0, "NEW");
    let l = ct.listing(S);
    assert!(
        l.contains("gre      47 30 src=10.0.0.5 dst=10.0.0.6 srckey=0x0 dstkey=0x1234"),
        "{l}"
    );
    // ... while call id 0 both ways matches, and replied GRE is a 180 s ASSURED stream.
    assert_eq!(path(&mut ct, &v1("10.0.0.7", "10.0.0.8", 0), S).0, "NEW");
    assert_eq!(
        path(&mut ct, &v1("10.0.0.8", "10.0.0.7", 0), S).0,
        "EST_REPLY"
    );
    assert_eq!(
        path(&mut ct, &v1("10.0.0.8", "10.0.0.7", 0), S).0,
        "EST_REPLY"
    );
    let l = ct.listing(S);
    assert!(
        l.contains("gre      47 180 src=10.0.0.7 dst=10.0.0.8 srckey=0x0 dstkey=0x0"),
        "{l}"
    );
    // A non-PPP GREv1 payload cannot form a tuple: INVALID.
    let bad = build::ip(
        a("10.0.0.5"),
        a("10.0.0.6"),
        47,
        &[0x30, 0x81, 0x08, 0x00, 0, 0, 0, 1],
    );
    assert_eq!(path(&mut ct, &bad, S).0, "INVALID");
    // Truly unknown protocols use the generic tracker (600 s, no ports).
    let other = build::ip(a("10.0.0.1"), a("10.0.0.2"), 99, &[0; 8]);
    assert_eq!(path(&mut ct, &other, S).0, "NEW");
    assert!(
        ct.listing(S)
            .contains("unknown  99 600 src=10.0.0.1 dst=10.0.0.2 packets=1")
    );
    let u = build::udp(a("10.0.0.1"), a("10.0.0.2"), 1, 2, b"");
    let mut n = Nfct::Template { zone: 7 };
    ct.conntrack_in(&u, Hook::Prerouting, S, &mut n);
    assert_eq!(name(&n), "NEW");
    ct.confirm(&u, S, &mut n);
    let mut p = PktState::default();
    ct.fill_pkt(&n, S, &mut p);
    assert_eq!(
        (p.ct_zone, p.ct_state, p.ct_protocol, p.ct_expiration_ms),
        (7, ct_state::NEW, 17, 30_000)
    );
    assert_eq!(p.ct_orig.src_port, 1);
    assert_eq!(p.ct_reply.src_port, 2);
    ct.release(&mut n);
    // Same tuple in zone 0 is a different entry.
    assert_eq!(path(&mut ct, &u, S).0, "NEW");
    assert!(ct.listing(S).contains("zone=7"));
    let mut un = Nfct::Untracked;
    assert_eq!(
        ct.conntrack_in(&u, Hook::Prerouting, S, &mut un),
        Verdict::Accept
    );
    assert_eq!(un, Nfct::Untracked);
    let mut p = PktState::default();
    ct.fill_pkt(&un, S, &mut p);
    assert_eq!((p.ct_valid, p.ct_state), (false, ct_state::UNTRACKED));
}

#[test]
fn ftp_passive_creates_related_data_connection() {
    let mut ct = Conntrack::new(Settings {
        ftp_ports: vec![21],
        ..settings()
    });
    let (c, s) = ("10.0.0.1", "10.0.0.2");
    path(&mut ct, &tcp(c, s, 3000, 21, 100, 0, F::SYN, b""), S);
    path(
        &mut ct,
        &tcp(s, c, 21, 3000, 700, 101, F::SYN | F::ACK, b""),
        S,
    );
    path(&mut ct, &tcp(c, s, 3000, 21, 101, 701, F::ACK, b""), S);
    let banner = b"220 ready\r\n";
    path(
        &mut ct,
        &tcp(s, c, 21, 3000, 701, 101, F::ACK | F::PSH, banner),
        S,
    );
    let next = 701 + banner.len() as u32;
    path(
        &mut ct,
        &tcp(c, s, 3000, 21, 101, next, F::ACK | F::PSH, b"PASV\r\n"),
        S,
    );
    let pasv = b"227 Entering Passive Mode (10,0,0,2,4,1).\r\n";
    assert_eq!(
        path(
            &mut ct,
            &tcp(s, c, 21, 3000, next, 107, F::ACK | F::PSH, pasv),
            S
        )
        .0,
        "EST_REPLY"
    );
    assert_eq!(ct.expectations().len(), 1);
    assert_eq!(ct.expectations()[0].tuple.dport, 1025);
    assert_eq!(
        path(&mut ct, &tcp(c, s, 3001, 1025, 1, 0, F::SYN, b""), 2 * S).0,
        "REL"
    );
    assert!(ct.expectations().is_empty());
    assert_eq!(
        path(
            &mut ct,
            &tcp(s, c, 1025, 3001, 9, 2, F::SYN | F::ACK, b""),
            2 * S
        )
        .0,
        "EST_REPLY"
    );
    let l = ct.listing(2 * S);
    assert!(
        l.contains("dport=21 ") && l.contains("helper=ftp use=2"),
        "{l}"
    );
    // A data connection to an unannounced port is just NEW.
    assert_eq!(
        path(&mut ct, &tcp(c, s, 3002, 1026, 1, 0, F::SYN, b""), 2 * S).0,
        "NEW"
    );
    // A partial command is dropped by the helper.
    let seq = next + pasv.len() as u32;
    let (_, v) = path(
        &mut ct,
        &tcp(s, c, 21, 3000, seq, 107, F::ACK | F::PSH, b"227 "),
        3 * S,
    );
    assert_eq!(v, Verdict::Drop);
}

#[test]
fn active_port_command_and_expect_timeout() {
    let mut ct = Conntrack::new(Settings {
        ftp_ports: vec![21],
        ..settings()
    });
    let (c, s) = ("10.0.0.1", "10.0.0.2");
    path(&mut ct, &tcp(c, s, 3000, 21, 100, 0, F::SYN, b""), S);
    path(
        &mut ct,
        &tcp(s, c, 21, 3000, 700, 101, F::SYN | F::ACK, b""),
        S,
    );
    path(&mut ct, &tcp(c, s, 3000, 21, 101, 701, F::ACK, b""), S);
    let user = b"USER x\r\n";
    path(
        &mut ct,
        &tcp(c, s, 3000, 21, 101, 701, F::ACK | F::PSH, user),
        S,
    );
    let seq = 101 + user.len() as u32;
    path(
        &mut ct,
        &tcp(
            c,
            s,
            3000,
            21,
            seq,
            701,
            F::ACK | F::PSH,
            b"PORT 10,0,0,1,19,137\r\n",
        ),
        S,
    );
    assert_eq!(ct.expectations().len(), 1);
    let e = ct.expectations()[0].tuple;
    assert_eq!((e.dport, e.sport), (19 * 256 + 137, 0));
    // 300 s later the expectation is gone: the server's connection is NEW.
    assert_eq!(
        path(&mut ct, &tcp(s, c, 20, 5001, 1, 0, F::SYN, b""), 302 * S).0,
        "NEW"
    );
}

#[test]
fn early_drop_and_table_full() {
    let mut ct = Conntrack::new(Settings {
        max: 4,
        buckets: 1,
        ..settings()
    });
    for i in 0..4u16 {
        path(
            &mut ct,
            &build::udp(a("10.0.0.1"), a("10.0.0.2"), 1000 + i, 53, b""),
            S,
        );
    }
    assert_eq!(ct.count(), 4);
    // A fifth flow evicts the unreplied ones in its bucket.
    assert_eq!(
        path(
            &mut ct,
            &build::udp(a("10.0.0.1"), a("10.0.0.2"), 2000, 53, b""),
            S
        )
        .0,
        "NEW"
    );
    assert_eq!(ct.count(), 1);
    assert_eq!(ct.stats().early_drop, 4);
    // Fill with ASSURED TCP flows: nothing can be evicted, the new packet is dropped.
    let mut ct = Conntrack::new(Settings {
        max: 2,
        buckets: 1,
        ..settings()
    });
    for p in [1000u16, 1001] {
        path(
            &mut ct,
            &tcp("10.0.0.1", "10.0.0.2", p, 80, 100, 0, F::SYN, b""),
            S,
        );
        path(
            &mut ct,
            &tcp(
                "10.0.0.2",
                "10.0.0.1",
                80,
                p,
                500,
                101,
                F::SYN | F::ACK,
                b"",
            ),
            S,
        );
        path(
            &mut ct,
            &tcp("10.0.0.1", "10.0.0.2", p, 80, 101, 501, F::ACK, b""),
            S,
        );
    }
    let (st, v) = path(
        &mut ct,
        &tcp("10.0.0.1", "10.0.0.2", 1002, 80, 100, 0, F::SYN, b""),
        S,
    );
    assert_eq!((st, v), ("INVALID", Verdict::Drop));
    assert_eq!(ct.count(), 2);
    assert_eq!(ct.stats().drop, 1);
}

#[test]
fn hostile_packets_never_panic() {
    let mut ct = Conntrack::new(Settings {
        max: 64,
        buckets: 16,
        ftp_ports: vec![21],
        ..settings()
    });
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let seeds = [
        tcp(
            "10.0.0.1",
            "10.0.0.2",
            1,
            21,
            5,
            0,
            F::SYN,
            b"PORT 1,2,3,4,5,6\r\n",
        ),
        build::icmp(
            a("10.0.0.9"),
            a("10.0.0.1"),
            3,
            3,
            [0; 4],
            &build::udp(a("10.0.0.1"), a("10.0.0.9"), 1, 2, b""),
        ),
        build::icmp(
            a("2001:db8::1"),
            a("2001:db8::2"),
            1,
            0,
            [0; 4],
            &[0x60; 48],
        ),
    ];
    for i in 0..30_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut p = seeds[(i % 3) as usize].clone();
        let n = (x % 4 + 1) as usize;
        for k in 0..n {
            let pos = ((x >> (8 * k)) as usize) % p.len();
            p[pos] = (x >> (3 * k)) as u8;
        }
        p.truncate(((x >> 40) as usize % (p.len() + 1)).max(1));
        let mut nf = Nfct::None;
        // OUTPUT skips checksum verification, so the lean TCP paths see the mangled packets too.
        let hook = if i % 2 == 0 {
            Hook::Prerouting
        } else {
            Hook::Output
        };
        // The burst prefetch passes parse the same bytes; every 4th packet goes through a burst (with a
        // truncated copy of itself) instead, passes forced on.
        let pair = [p.as_slice(), &p[..p.len() / 2]];
        ct.prefetch_burst(&pair, 0);
        if i % 4 == 3 {
            ct.set_burst_prefetch(BurstPrefetch::Always);
            let mut nfs = [Nfct::None; 2];
            let mut vs = [Verdict::Accept; 2];
            ct.conntrack_in_burst(&pair, hook, i * 1_000_000, &mut nfs, &mut vs);
            for (q, nf) in pair.iter().zip(&mut nfs) {
                let _ = ct.confirm(q, i * 1_000_000, nf);
                ct.release(nf);
            }
            continue;
        }
        let _ = ct.conntrack_in(&p, hook, i * 1_000_000, &mut nf);
        let _ = ct.confirm(&p, i * 1_000_000, &mut nf);
        ct.release(&mut nf);
    }
    let _ = ct.listing(40 * S);
    assert!(ct.count() <= 64);
}

#[test]
fn memory_per_flow() {
    // Slab entry (orig tuple, status, timeouts, counters, links, TCP window state).
    let b = std::mem::size_of::<Conn>();
    println!("bytes per flow: {b}");
    assert!(b <= 128, "Conn grew to {b} bytes");
}

#[test]
fn hash_spreads_flows_over_buckets() {
    let ct = Conntrack::new(Settings {
        buckets: 16_384,
        ..Settings::default()
    });
    let mut counts = vec![0u32; 16_384];
    for i in 0..10_000u32 {
        let mut t = Tuple {
            l3: 2,
            l4: 6,
            sport: 1024 + (i & 1023) as u16,
            dport: 80,
            ..Default::default()
        };
        t.src[..4].copy_from_slice(&(0x0a00_0000 + (i >> 10)).to_be_bytes());
        t.dst[..4].copy_from_slice(&[192, 168, 0, 1]);
        counts[ct.bucket(&t, 0)] += 1;
        counts[ct.bucket(&t.invert().unwrap(), 0)] += 1;
    }
    let max = counts.iter().max().copied().unwrap_or(0);
    let used = counts.iter().filter(|c| **c > 0).count();
    println!("max chain {max}, buckets used {used}");
    assert!(max <= 12, "max chain {max}");
    assert!(used > 9_000, "only {used} buckets used");
}

#[test]
fn timeouts_survive_tick_wraparound() {
    let mut ct = Conntrack::new(settings());
    let q = build::udp(a("10.0.0.1"), a("10.0.0.2"), 1, 2, b"");
    let other = build::udp(a("10.0.0.3"), a("10.0.0.2"), 1, 2, b"");
    assert_eq!(path(&mut ct, &q, S).0, "NEW");
    // Traffic every 10 minutes for 60 days (the u32 millisecond tick wraps after ~49.7 days).
    let mut t = S;
    while t < 60 * 86_400 * S {
        t += 600 * S;
        path(&mut ct, &other, t);
    }
    assert_eq!(
        path(&mut ct, &q, t).0,
        "NEW",
        "the 60-day-old entry must have expired"
    );
    assert_eq!(ct.len(t), 2);
}

/// Random TCP traffic over 12 flows (3 address pairs, IPv4 and IPv6, 4 ports each): handshakes, data in and out
/// of window, retransmissions, FIN, RST, SACK / timestamp options, zero windows, zones and long gaps.
struct RandomTcp {
    /// Per flow: the client's and the server's next sequence number.
    seqs: [[u32; 2]; 12],
    x: u64,
}

impl RandomTcp {
    fn new(seed: u64) -> Self {
        RandomTcp {
            seqs: [[0; 2]; 12],
            x: seed,
        }
    }

    fn rnd(&mut self, m: u64) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x % m
    }

    /// The next packet, the time gap before it (ns) and its zone.
    fn next(&mut self) -> (Vec<u8>, u64, u16) {
        let hosts = [
            ("10.0.0.1", "10.0.0.2"),
            ("10.0.0.3", "10.0.0.2"),
            ("2001:db8::1", "2001:db8::2"),
        ];
        let f = self.rnd(12) as usize;
        let (c, s) = hosts[f % 3];
        let cport = 1000 + (f / 3) as u16;
        let dir = self.rnd(2) as usize;
        let kind = self.rnd(100);
        let flags = match kind {
            0..=5 => F::SYN,
            6..=9 => F::SYN | F::ACK,
            10..=12 => F::FIN | F::ACK,
            13..=14 => F::RST | F::ACK,
            15 => F::RST,
            16 => 0,
            17..=19 => F::ACK | F::PSH | F::URG,
            _ => F::ACK | if self.rnd(2) == 0 { F::PSH } else { 0 },
        };
        let len = [0usize, 0, 1, 10, 100, 1400][self.rnd(6) as usize];
        let jitter = match self.rnd(20) {
            0 => 70_000u32,
            1 => 0u32.wrapping_sub(70_000),
            2 => 3_000_000,
            3 => 0u32.wrapping_sub(len as u32),
            _ => 0,
        };
        let seq = if flags & F::SYN != 0 && flags & F::ACK == 0 && dir == 0 {
            self.seqs[f][0] = self.rnd(1 << 32) as u32;
            self.seqs[f][0]
        } else if flags == F::SYN | F::ACK && dir == 1 {
            self.seqs[f][1] = self.rnd(1 << 32) as u32;
            self.seqs[f][1]
        } else {
            self.seqs[f][dir].wrapping_add(jitter)
        };
        let ack = self.seqs[f][1 - dir].wrapping_add(if self.rnd(4) == 0 { 1 } else { 0 });
        if flags & F::SYN != 0 || flags & F::FIN != 0 {
            self.seqs[f][dir] = self.seqs[f][dir].wrapping_add(1);
        }
        self.seqs[f][dir] = self.seqs[f][dir].wrapping_add(len as u32);
        let opts: &[u8] = match self.rnd(6) {
            0 => &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
            1 => &[1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0],
            2 if flags & F::SYN != 0 => &[2, 4, 5, 180, 4, 2, 3, 3, 7, 1, 1, 0],
            _ => &[],
        };
        // A SACK block edge near the peer's data.
        let mut opts = opts.to_vec();
        if opts.get(2) == Some(&5) {
            opts[8..12].copy_from_slice(&self.seqs[f][1 - dir].wrapping_add(jitter).to_be_bytes());
        }
        let win = [0u16, 1, 512, 64000, 65535][self.rnd(5) as usize];
        let (src, dst, sp, dp) = if dir == 0 {
            (c, s, cport, 80)
        } else {
            (s, c, 80, cport)
        };
        let p = build::tcp(
            a(src),
            a(dst),
            sp,
            dp,
            seq,
            ack,
            flags,
            win,
            &opts,
            &vec![0x41; len],
        );
        let gap = match self.rnd(200) {
            0 => 500 * S,
            1 => 7_000 * S,
            _ => self.rnd(50_000_000),
        };
        let zone = if self.rnd(50) == 0 { 3 } else { 0 };
        (p, gap, zone)
    }
}

/// The lean per-packet paths (`established_tcp`, `new_tcp`) against the general path: the same random TCP traffic
/// (handshakes, data in and out of window, retransmissions, FIN, RST, SACK / timestamp options, zero windows,
/// IPv4 and IPv6, zones, long gaps that expire entries) through two tables, one with the lean paths off (and
/// confirming without `Conntrack::confirmed`'s shortcut); every packet's verdict, ctinfo and ct facts, the
/// statistics, the events and the final listing must agree.
#[test]
fn lean_paths_agree_with_the_general_path() {
    // The third run has a table of 6 entries: early drop and "table full" on the new-SYN path. The last one
    // SNATs the connections of 10.0.0.3 to 10.0.0.1 ports 1000-1003, the other client's addresses and ports: the
    // server's answers to 10.0.0.3 must not find the NATed entries by their original tuple, those to the mapped
    // port must.
    for (liberal, max, nat) in [
        (false, 0, false),
        (true, 0, false),
        (false, 6, false),
        (false, 0, true),
    ] {
        let st = Settings {
            checksum: false,
            acct: true,
            events: true,
            tcp_be_liberal: liberal,
            max,
            buckets: 64,
            ..Settings::default()
        };
        let mut fast = Conntrack::new(st.clone());
        let mut slow = Conntrack::new(st);
        slow.set_fast_path(false);
        let mut traffic =
            RandomTcp::new(0x9e37_79b9_7f4a_7c15u64 ^ u64::from(liberal) ^ u64::from(max));
        let mut now = S;
        let mut hits = 0;
        for step in 0..15_000 {
            let (p, gap, zone) = traffic.next();
            now += gap;
            let mut out = Vec::new();
            for (i, ct) in [&mut fast, &mut slow].into_iter().enumerate() {
                let mut n = if zone == 0 {
                    Nfct::None
                } else {
                    Nfct::Template { zone }
                };
                let v = ct.conntrack_in(&p, Hook::Prerouting, now, &mut n);
                let before = n;
                let mut bound = Ok(Tuple::default());
                if nat
                    && matches!(
                        n,
                        Nfct::Ct {
                            ctinfo: CtInfo::New,
                            ..
                        }
                    )
                    && p[0] >> 4 == 4
                    && p[12..16] == [10, 0, 0, 3]
                {
                    let mut a = [0u8; 16];
                    a[..4].copy_from_slice(&[10, 0, 0, 1]);
                    let range = super::nat::NatRange {
                        flags: 0,
                        addr: Some((a, a)),
                        proto: Some((1000, 1003)),
                    };
                    bound = ct.nf_nat_setup_info(&n, &range, super::nat::Manip::Src, now);
                }
                // The fast table confirms through `confirmed` first, as the confirm hook does.
                let mut facts = nfr_vm::pkt::PktState::default();
                let v2 = if bound.is_ok() || bound == Err(super::nat::NatError::NoEntry) {
                    let quick = if i == 0 {
                        ct.confirmed(&n, &mut facts)
                    } else {
                        None
                    };
                    match quick {
                        Some(v) => v,
                        None => {
                            let v = ct.confirm(&p, now, &mut n);
                            ct.fill_pkt_state(&n, &mut facts);
                            v
                        }
                    }
                } else {
                    Verdict::Drop
                };
                ct.release(&mut n);
                out.push((v, before, v2, ct.stats(), facts));
            }
            assert_eq!(out[0], out[1], "step {step}: packet {p:02x?}");
            // The whole entries, window tracking state included.
            assert_eq!(
                format!("{:?}", fast.conns),
                format!("{:?}", slow.conns),
                "step {step}: packet {p:02x?}"
            );
            if matches!(out[0].1, Nfct::Ct { ctinfo, .. } if ctinfo.dir() == 1 || ctinfo == CtInfo::Established)
            {
                hits += 1;
            }
            if step % 1000 == 0 {
                assert_eq!(fast.entries(now), slow.entries(now), "step {step}");
                assert_eq!(fast.drain_events(), slow.drain_events(), "step {step}");
            }
        }
        assert_eq!(fast.entries(now), slow.entries(now));
        assert_eq!(fast.listing(now), slow.listing(now));
        println!("{hits} established packets");
        assert!(hits > 1_000, "only {hits} established packets");
        if max != 0 {
            assert!(fast.stats().early_drop > 0 && fast.stats().drop > 0);
        }
        if nat {
            assert!(
                !fast.nat_reply.is_empty(),
                "some connections are NATed at the end"
            );
        }
        assert!(fast.chain_lens_agree() && slow.chain_lens_agree());
    }
}

/// `conntrack_in_burst` must equal `conntrack_in` packet by packet: random TCP traffic (plus UDP and ICMP, which
/// the rounds prefetch or skip) in bursts of 1 to 80 packets sharing a timestamp, some packets in another zone
/// than the burst's first, through one table in bursts and one packet by packet; after each burst every packet
/// is confirmed in order on both. Verdicts, attachments, statistics, whole entries, events and listings agree.
#[test]
fn bursts_agree_with_single_packets() {
    for (max, buckets) in [(0, 64), (8, 16), (0, 4096)] {
        let st = Settings {
            checksum: false,
            acct: true,
            events: true,
            max,
            buckets,
            ..Settings::default()
        };
        let mut burst = Conntrack::new(st.clone());
        let mut single = Conntrack::new(st);
        let mut traffic =
            RandomTcp::new(0x2545_f491_4f6c_dd1d ^ u64::from(max) ^ u64::from(buckets));
        let mut now = S;
        let mut walked = 0;
        for round in 0..600 {
            let n = 1 + traffic.rnd(80) as usize;
            let mut pkts = Vec::new();
            let mut zones = Vec::new();
            for _ in 0..n {
                let (p, gap, zone) = traffic.next();
                now += gap / 8;
                let p = match traffic.rnd(10) {
                    0 => build::udp(
                        a("10.0.0.9"),
                        a("10.0.0.2"),
                        5000 + traffic.rnd(4) as u16,
                        53,
                        b"q",
                    ),
                    1 => build::udp(
                        a("10.0.0.2"),
                        a("10.0.0.9"),
                        53,
                        5000 + traffic.rnd(4) as u16,
                        b"a",
                    ),
                    2 => build::icmp(a("10.0.0.9"), a("10.0.0.2"), 8, 0, [0, 7, 0, 1], b""),
                    _ => p,
                };
                pkts.push(p);
                zones.push(zone);
            }
            let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
            let start = |z: &u16| {
                if *z == 0 {
                    Nfct::None
                } else {
                    Nfct::Template { zone: *z }
                }
            };
            let mut nb: Vec<Nfct> = zones.iter().map(start).collect();
            let mut vb = vec![Verdict::Drop; n];
            // The table is too small for conntrack_in_burst to prefetch by itself: run the passes anyway
            // (every other round, and the standalone passes too).
            burst.set_burst_prefetch(if round % 2 == 0 {
                BurstPrefetch::Always
            } else {
                BurstPrefetch::Auto
            });
            burst.prefetch_burst(&refs, zones[0]);
            burst.conntrack_in_burst(&refs, Hook::Prerouting, now, &mut nb, &mut vb);
            let mut ns: Vec<Nfct> = zones.iter().map(start).collect();
            let vs: Vec<Verdict> = refs
                .iter()
                .zip(&mut ns)
                .map(|(p, nf)| single.conntrack_in(p, Hook::Prerouting, now, nf))
                .collect();
            assert_eq!(vb, vs, "round {round}");
            assert_eq!(nb, ns, "round {round}");
            walked += nb.iter().filter(|n| matches!(n, Nfct::Ct { .. })).count();
            for (ct, nfcts) in [(&mut burst, &mut nb), (&mut single, &mut ns)] {
                for (p, nf) in refs.iter().zip(nfcts.iter_mut()) {
                    ct.confirm(p, now, nf);
                    ct.release(nf);
                }
            }
            assert_eq!(burst.stats(), single.stats(), "round {round}");
            assert_eq!(
                format!("{:?}", burst.conns),
                format!("{:?}", single.conns),
                "round {round}"
            );
            assert_eq!(burst.drain_events(), single.drain_events(), "round {round}");
        }
        assert_eq!(burst.listing(now), single.listing(now));
        assert!(burst.chain_lens_agree() && single.chain_lens_agree());
        assert!(walked > 5_000, "only {walked} packets attached");
        if max != 0 {
            assert!(burst.stats().early_drop > 0);
        }
    }
}

/// `gc` with many victims unlinks them in one sweep over the buckets; the result (chains, free list, events,
/// survivors) must be the one of deleting the victims one by one.
#[test]
fn batched_gc_equals_one_by_one_deletes() {
    // With events (the general per-victim path) and without (the lean one).
    for events in [true, false] {
        batched_gc_equals_one_by_one_deletes_with(events);
    }
}

fn batched_gc_equals_one_by_one_deletes_with(events: bool) {
    let st = Settings {
        checksum: false,
        events,
        buckets: 256,
        ..Settings::default()
    };
    let mut batched = Conntrack::new(st.clone());
    let mut single = Conntrack::new(st);
    for ct in [&mut batched, &mut single] {
        for i in 0..600u32 {
            let c = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
            let s = a("10.9.9.9");
            let sp = 1024 + (i % 7) as u16;
            let t = u64::from(i) * S / 10;
            let syn = build::tcp(c, s, sp, 80, 1, 0, F::SYN, 1000, &[], b"");
            path(ct, &syn, t);
            if i % 3 != 0 {
                // Established (5 days) for two in three; the rest stay SYN_SENT (120 s).
                path(
                    ct,
                    &build::tcp(s, c, 80, sp, 9, 2, F::SYN | F::ACK, 1000, &[], b""),
                    t,
                );
                path(
                    ct,
                    &build::tcp(c, s, sp, 80, 2, 10, F::ACK, 1000, &[], b""),
                    t,
                );
            }
        }
        ct.drain_events();
    }
    let now = 200 * S;
    let n = batched.gc(now);
    let victims: Vec<u32> = (0..single.conns.len() as u32)
        .filter(|&i| {
            single.conns[i as usize].live() && Conntrack::expired(&single.conns[i as usize], now)
        })
        .collect();
    assert_eq!(n, victims.len());
    assert!(n > 100 && n < 600, "{n} victims");
    assert!(
        n * 32 >= single.heads.len() + 2 * single.count as usize,
        "not batched"
    );
    for v in victims {
        single.delete(v, now);
    }
    single.expects.retain(|e| e.expires > now);
    assert_eq!(batched.heads, single.heads);
    assert!(batched.chain_lens_agree() && single.chain_lens_agree());
    assert_eq!(batched.free, single.free);
    assert_eq!(
        format!("{:?}", batched.conns),
        format!("{:?}", single.conns)
    );
    assert_eq!(batched.drain_events(), single.drain_events());
    assert_eq!(batched.listing(now), single.listing(now));
}

/// `__nf_conntrack_confirm`'s clash handling: a second unconfirmed entry for a tuple another packet confirmed
/// first is dropped (TCP) or adopts the confirmed one (UDP, `nf_ct_resolve_clash`); an expired entry met by the
/// clash walk is deleted and the new entry goes in.
#[test]
fn confirm_clash_and_expired_matches() {
    let st = Settings {
        checksum: false,
        events: true,
        ..Settings::default()
    };
    let in_only = |ct: &mut Conntrack, p: &[u8], now: u64| {
        let mut n = Nfct::None;
        assert_eq!(
            ct.conntrack_in(p, Hook::Prerouting, now, &mut n),
            Verdict::Accept
        );
        n
    };
    // TCP: the later confirm fails.
    let mut ct = Conntrack::new(st.clone());
    let syn = tcp("10.0.0.1", "10.0.0.2", 1000, 80, 1, 0, F::SYN, b"");
    let mut first = in_only(&mut ct, &syn, 0);
    let mut second = in_only(&mut ct, &syn, 0);
    assert_eq!(ct.count(), 2);
    assert_eq!(ct.confirm(&syn, 0, &mut second), Verdict::Accept);
    assert_eq!(ct.confirm(&syn, 0, &mut first), Verdict::Drop);
    assert_eq!(first, Nfct::None);
    ct.release(&mut second);
    let s = ct.stats();
    assert_eq!((s.insert, s.insert_failed, s.drop), (1, 1, 1));
    assert_eq!(ct.count(), 1);
    // The reply direction clashes too: a SYN the other way was confirmed first.
    let rev = tcp("10.0.0.2", "10.0.0.1", 80, 1000, 1, 0, F::SYN, b"");
    let mut ct = Conntrack::new(st.clone());
    let mut first = in_only(&mut ct, &syn, 0);
    path(&mut ct, &rev, 0);
    assert_eq!(ct.confirm(&syn, 0, &mut first), Verdict::Drop);
    assert_eq!(ct.stats().insert_failed, 1);
    // UDP: the later packet adopts the confirmed entry.
    let mut ct = Conntrack::new(st.clone());
    let dgram = build::udp(a("10.0.0.1"), a("10.0.0.2"), 53, 53, b"q");
    let mut first = in_only(&mut ct, &dgram, 0);
    let mut second = in_only(&mut ct, &dgram, 0);
    let Nfct::Ct { id: winner, .. } = second else {
        panic!("no entry");
    };
    assert_eq!(ct.confirm(&dgram, 0, &mut second), Verdict::Accept);
    assert_eq!(ct.confirm(&dgram, 0, &mut first), Verdict::Accept);
    assert!(matches!(first, Nfct::Ct { id, ctinfo: CtInfo::New } if id == winner));
    assert_eq!(ct.stats().clash_resolve, 1);
    assert_eq!(ct.count(), 1);
    // An expired match is deleted by the clash walk (DESTROY) and the waiting entry is confirmed.
    for flow in [&syn, &rev] {
        let mut ct = Conntrack::new(st.clone());
        let mut first = in_only(&mut ct, &syn, 0);
        path(&mut ct, flow, 0);
        assert_eq!(ct.confirm(&syn, 200 * S, &mut first), Verdict::Accept);
        let kinds: Vec<CtEventKind> = ct.drain_events().iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [CtEventKind::New, CtEventKind::Destroy, CtEventKind::New]
        );
        let s = ct.stats();
        assert_eq!((s.insert, s.insert_failed), (2, 0));
        ct.release(&mut first);
        assert_eq!(ct.len(200 * S), 1);
    }
}

/// The IPv4 port-protocol clash walks of `confirm` (packed-word compares, hashes from the original tuple's parts)
/// give what the general walks (inverse tuple, general compares) give, and delete the same expired entries, on
/// crowded tables with expired entries, both directions, zones, and protocols sharing addresses.
#[test]
fn confirm_probes_agree_with_the_general_walks() {
    let st = Settings {
        checksum: false,
        events: true,
        buckets: 8,
        max: 0,
        ..Settings::default()
    };
    let mut fast = Conntrack::new(st.clone());
    let mut general = Conntrack::new(st);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let addr = |r: u64| IpAddr::from([10, 0, 0, 1 + (r % 3) as u8]);
    let mut checked = 0;
    let mut found = 0;
    let mut deleted = 0;
    for step in 0..3000u64 {
        let r = rnd();
        let now = step * 2 * S;
        let (s, d) = (addr(r), addr(r >> 8));
        let (sp, dp) = (1 + (r >> 16) as u16 % 3, 1 + (r >> 24) as u16 % 3);
        let zone = (r >> 32) as u16 & 1;
        let p = match (r >> 40) % 4 {
            0 | 1 => build::tcp(s, d, sp, dp, 1, 0, F::SYN, 1000, &[], b""),
            2 => build::udp(s, d, sp, dp, b"x"),
            _ => build::icmp(s, d, 8, 0, echo(sp, 1), b""),
        };
        if (r >> 44) % 2 == 0 {
            // Grow the tables (same packets on both).
            for ct in [&mut fast, &mut general] {
                let mut n = if zone == 0 {
                    Nfct::None
                } else {
                    Nfct::Template { zone }
                };
                if ct.conntrack_in(&p, Hook::Prerouting, now, &mut n) == Verdict::Accept {
                    ct.confirm(&p, now, &mut n);
                }
                ct.release(&mut n);
            }
            continue;
        }
        let l4 = [proto::TCP, proto::UDP, proto::GRE, proto::UDPLITE][(r >> 48) as usize % 4];
        let mut t0 = Tuple::from_packet(&p, NFPROTO_IPV4, proto::TCP, 20).unwrap();
        t0.l4 = l4;
        // Half the time an entry's tuple (or its inverse), so that walks find something.
        let live: Vec<&Conn> = general.conns.iter().filter(|c| c.live()).collect();
        if (r >> 56) % 2 == 0
            && let Some(c) = live.get((r >> 20) as usize % live.len().max(1))
            && c.orig.l3 == NFPROTO_IPV4
            && (tuple::has_ports(c.orig.l4) || c.orig.l4 == proto::GRE)
        {
            t0 = if (r >> 58) % 2 == 0 {
                c.orig
            } else {
                c.orig.invert().unwrap()
            };
        }
        let later = now + (r >> 52) % 150 * S;
        let inverse = t0.invert().unwrap();
        let b1 = fast.reply_bucket(&t0, zone);
        assert_eq!(b1, general.bucket(&inverse, zone));
        let a = fast.confirm_probes(NONE_IDX, &t0, zone, b1, later);
        let b = general.confirm_probes_general(NONE_IDX, &t0, zone, later);
        assert_eq!(a, b, "step {step}: {t0:?} zone {zone}");
        checked += 1;
        let b = b.unwrap();
        found += usize::from(b.1.is_some());
        deleted += usize::from(b.3 != [false; 2]);
        assert_eq!(fast.heads, general.heads, "step {step}");
        assert!(
            fast.chain_lens_agree() && general.chain_lens_agree(),
            "step {step}"
        );
        assert_eq!(fast.free, general.free, "step {step}");
        assert_eq!(
            format!("{:?}", fast.conns),
            format!("{:?}", general.conns),
            "step {step}"
        );
        assert_eq!(fast.drain_events(), general.drain_events(), "step {step}");
        assert_eq!(fast.stats(), general.stats(), "step {step}");
    }
    assert!(checked > 1000, "{checked}");
    assert!(found > 50, "only {found} clashes");
    assert!(deleted > 100, "only {deleted} walks deleted");
}

/// PREROUTING with a NAT binding set up before confirm (`nf_nat_setup_info` at the nat hook).
fn path_nat(
    ct: &mut Conntrack,
    p: &[u8],
    range: &nat::NatRange,
    manip: nat::Manip,
    now: u64,
) -> Result<Tuple, nat::NatError> {
    let mut n = Nfct::None;
    assert_eq!(
        ct.conntrack_in(p, Hook::Prerouting, now, &mut n),
        Verdict::Accept
    );
    let r = ct.nf_nat_setup_info(&n, range, manip, now);
    if r.is_ok() {
        assert_eq!(ct.confirm(p, now, &mut n), Verdict::Accept);
    }
    ct.release(&mut n);
    r
}

fn v4(s: &str) -> [u8; 16] {
    let mut b = [0; 16];
    if let IpAddr::V4(x) = a(s) {
        b[..4].copy_from_slice(&x.octets());
    }
    b
}

#[test]
fn snat_binding_is_the_reply_tuple() {
    let mut ct = Conntrack::new(settings());
    let pub_ip = v4("198.51.100.1");
    let range = nat::NatRange {
        flags: 0,
        addr: Some((pub_ip, pub_ip)),
        proto: None,
    };
    let q = build::udp(a("192.168.1.50"), a("93.184.216.34"), 40000, 53, b"q");
    let reply = path_nat(&mut ct, &q, &range, nat::Manip::Src, 0).unwrap();
    // The source port is in range and unused: kept, as masquerade does.
    assert_eq!((reply.dst, reply.dport), (pub_ip, 40000));
    let l = ct.listing(0);
    assert!(
        l.contains("src=192.168.1.50 dst=93.184.216.34 sport=40000 dport=53 ")
            && l.contains("[UNREPLIED] src=93.184.216.34 dst=198.51.100.1 sport=53 dport=40000 "),
        "{l}"
    );
    assert_eq!(ct.entries(0)[0].status & ips::SRC_NAT, ips::SRC_NAT);
    // The reply comes to the public address and is found by the NATed reply tuple.
    let r = build::udp(a("93.184.216.34"), a("198.51.100.1"), 53, 40000, b"a");
    assert_eq!(path(&mut ct, &r, S).0, "EST_REPLY");
    // A packet to the inside address itself is not the reply: it is new, and its reply tuple clashes with the
    // NATed entry's original tuple at confirm: dropped (UDP adopts no entry with another binding).
    let r2 = build::udp(a("93.184.216.34"), a("192.168.1.50"), 53, 40000, b"a");
    assert_eq!(path(&mut ct, &r2, S), ("NEW", Verdict::Drop));
    assert_eq!((ct.stats().insert_failed, ct.stats().clash_resolve), (1, 0));
    assert_eq!(ct.count(), 1);
    // A second source with the same port gets another public port (nf_nat_used_tuple).
    let q2 = build::udp(a("192.168.1.51"), a("93.184.216.34"), 40000, 53, b"q");
    let reply2 = path_nat(&mut ct, &q2, &range, nat::Manip::Src, 2 * S).unwrap();
    assert_eq!(reply2.dst, pub_ip);
    assert_ne!(reply2.dport, 40000);
    assert!(reply2.dport >= 1024);
    let r3 = build::udp(
        a("93.184.216.34"),
        a("198.51.100.1"),
        53,
        reply2.dport,
        b"a",
    );
    assert_eq!(path(&mut ct, &r3, 3 * S).0, "EST_REPLY");
    // The entries leave the table cleanly (GC unlinks both NATed chains).
    assert_eq!(ct.gc(1000 * S), 2);
    assert!(ct.is_empty(1000 * S));
    assert!(ct.nat_reply.is_empty());
}

#[test]
fn snat_range_of_ten_ports_is_exhausted_by_the_eleventh_connection() {
    let mut ct = Conntrack::new(settings());
    let pub_ip = v4("198.51.100.1");
    let range = nat::NatRange {
        flags: 0,
        addr: Some((pub_ip, pub_ip)),
        proto: Some((20000, 20009)),
    };
    let mut ports = Vec::new();
    for i in 0..11u16 {
        let q = build::udp(a("192.168.1.50"), a("93.184.216.34"), 30000 + i, 53, b"q");
        if i < 10 {
            ports.push(
                path_nat(&mut ct, &q, &range, nat::Manip::Src, 0)
                    .unwrap()
                    .dport,
            );
        } else {
            // No free port: the binding keeps a clashing one (get_unique_tuple gives up), confirm drops.
            let mut n = Nfct::None;
            assert_eq!(
                ct.conntrack_in(&q, Hook::Prerouting, 0, &mut n),
                Verdict::Accept
            );
            let r = ct
                .nf_nat_setup_info(&n, &range, nat::Manip::Src, 0)
                .unwrap();
            assert!((20000..20010).contains(&r.dport), "{r:?}");
            assert_eq!(ct.confirm(&q, 0, &mut n), Verdict::Drop);
            assert_eq!(n, Nfct::None);
            let st = ct.stats();
            assert_eq!((st.insert_failed, st.drop, st.clash_resolve), (1, 1, 0));
        }
    }
    ports.sort_unstable();
    assert_eq!(ports, (20000..20010).collect::<Vec<_>>());
    assert_eq!(ct.count(), 10);
}

#[test]
fn dnat_binding_finds_replies_from_the_inside_host() {
    let mut ct = Conntrack::new(settings());
    let lan = v4("192.168.1.10");
    let range = nat::NatRange {
        flags: 0,
        addr: Some((lan, lan)),
        proto: Some((8080, 8080)),
    };
    let syn = tcp("203.0.113.7", "198.51.100.1", 50000, 80, 1, 0, F::SYN, b"");
    let reply = path_nat(&mut ct, &syn, &range, nat::Manip::Dst, 0).unwrap();
    assert_eq!((reply.src, reply.sport), (lan, 8080));
    let l = ct.listing(0);
    assert!(
        l.contains("src=192.168.1.10 dst=203.0.113.7 sport=8080 dport=50000"),
        "{l}"
    );
    let synack = tcp(
        "192.168.1.10",
        "203.0.113.7",
        8080,
        50000,
        100,
        2,
        F::SYN | F::ACK,
        b"",
    );
    assert_eq!(path(&mut ct, &synack, S).0, "EST_REPLY");
}

#[test]
fn snat_same_source_keeps_its_mapping() {
    let mut ct = Conntrack::new(settings());
    let pub_ip = v4("198.51.100.1");
    let range = nat::NatRange {
        flags: 0,
        addr: Some((pub_ip, pub_ip)),
        proto: Some((20000, 20999)),
    };
    let q1 = build::udp(a("192.168.1.50"), a("93.184.216.34"), 40000, 53, b"q");
    let q2 = build::udp(a("192.168.1.50"), a("8.8.8.8"), 40000, 53, b"q");
    let r1 = path_nat(&mut ct, &q1, &range, nat::Manip::Src, 0).unwrap();
    let r2 = path_nat(&mut ct, &q2, &range, nat::Manip::Src, 0).unwrap();
    assert_eq!((r1.dst, r1.dport), (r2.dst, r2.dport));
    assert_eq!(ct.gc(1000 * S), 2);
    assert!(ct.nat_bysource.is_empty());
}

#[test]
fn snat_random_moves_ports_that_would_be_kept() {
    use nfr_proto::nat::{NF_NAT_RANGE_PROTO_RANDOM, NF_NAT_RANGE_PROTO_RANDOM_FULLY};
    let pub_ip = v4("198.51.100.1");
    for flags in [
        0,
        NF_NAT_RANGE_PROTO_RANDOM,
        NF_NAT_RANGE_PROTO_RANDOM_FULLY,
    ] {
        let mut ct = Conntrack::new(settings());
        let range = nat::NatRange {
            flags,
            addr: Some((pub_ip, pub_ip)),
            proto: Some((20000, 20999)),
        };
        let mut ports = Vec::new();
        for i in 0..50u16 {
            // Every source port is in the range and free: without `random` each is kept (get_unique_tuple's first
            // step), with it the search starts at a random offset (nf_nat_l4proto_unique_tuple).
            let q = build::udp(a("192.168.1.50"), a("93.184.216.34"), 20000 + i, 53, b"q");
            let r = path_nat(&mut ct, &q, &range, nat::Manip::Src, u64::from(i)).unwrap();
            assert!(
                (20000..=20999).contains(&r.dport),
                "{flags:#x}: {}",
                r.dport
            );
            ports.push(r.dport);
        }
        let kept = ports
            .iter()
            .enumerate()
            .filter(|&(i, &p)| p == 20000 + i as u16)
            .count();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{flags:#x}: a port given twice");
        if flags == 0 {
            assert_eq!(kept, 50);
        } else {
            assert!(kept < 5, "{flags:#x}: {kept} of 50 ports kept");
        }
    }
}
