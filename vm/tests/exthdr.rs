//! `exthdr`: TCP options and IPv6 extension headers (load, `present`, missing → break).

mod common;
use common::*;
use nfr_vm::insn::*;
use nfr_vm::pkt::{NFPROTO_IPV6, PktState};
use nfr_vm::print::print_insn;
use nfr_vm::{Program, Reg};

/// TCP SYN with options: MSS 1460, NOP, NOP, SACK-permitted, window scale 7, a zero-length
/// bogus option 99, end. Raw IPv4 (no link layer).
fn tcp_with_options() -> (Vec<u8>, PktState) {
    let opts = [2u8, 4, 0x05, 0xb4, 1, 1, 4, 2, 3, 3, 7, 99, 0, 0, 0, 0];
    let mut p = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let mut tcp = vec![0u8; 20];
    tcp[2..4].copy_from_slice(&22u16.to_be_bytes());
    tcp[12] = (((20 + opts.len()) / 4) << 4) as u8;
    tcp[13] = 0x02;
    tcp.extend_from_slice(&opts);
    p.extend_from_slice(&tcp);
    let st = PktState {
        nhoff: 0,
        thoff: 20,
        has_th: true,
        l4proto: 6,
        len: p.len() as u32,
        ..Default::default()
    };
    (p, st)
}

fn opt(ty: u8, offset: u32, len: u8, present: bool) -> Insn {
    Insn::Exthdr {
        op: ExthdrOp::Tcpopt,
        ty,
        offset,
        len,
        dreg: R0,
        present,
    }
}

#[test]
fn tcp_option_loads() {
    let (p, st) = tcp_with_options();
    // tcp option maxseg size 1460
    assert!(matches(
        vec![opt(2, 2, 2, false), Insn::cmp_eq(R0, Data::be16(1460))],
        &p,
        &st
    ));
    // tcp option window count 7
    assert!(matches(
        vec![opt(3, 2, 1, false), Insn::cmp_eq(R0, Data::u8(7))],
        &p,
        &st
    ));
    // present / missing
    assert!(matches(
        vec![opt(4, 0, 1, true), Insn::cmp_eq(R0, Data::u8(1))],
        &p,
        &st
    ));
    assert!(matches(
        vec![opt(8, 0, 1, true), Insn::cmp_eq(R0, Data::u8(0))],
        &p,
        &st
    ));
    assert!(!matches(vec![opt(8, 0, 1, false)], &p, &st));
    // a load past the option's own length breaks (SACK-permitted is 2 bytes)
    assert!(!matches(vec![opt(4, 2, 1, false)], &p, &st));
    // the zero-length option 99 is skipped one byte at a time without looping forever,
    // and kind 99 is "found" with length 1
    assert!(matches(
        vec![opt(99, 0, 1, true), Insn::cmp_eq(R0, Data::u8(1))],
        &p,
        &st
    ));
    // no TCP header, non-first fragment, truncated packet
    let mut s2 = st.clone();
    s2.l4proto = 17;
    assert!(!matches(vec![opt(2, 2, 2, false)], &p, &s2));
    let mut s3 = st.clone();
    s3.fragoff = 8;
    assert!(!matches(vec![opt(2, 2, 2, false)], &p, &s3));
    assert!(!matches(vec![opt(2, 2, 2, false)], &p[..p.len() - 4], &st));
}

/// IPv6 + hop-by-hop (8) + routing (8) + TCP.
fn ipv6_with_exthdrs(frag: Option<u16>) -> (Vec<u8>, PktState) {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
    p.extend_from_slice(&[0x20; 16]);
    p.extend_from_slice(&[0x21; 16]);
    p[6] = 0; // hop-by-hop
    let mut hbh = vec![43u8, 0, 1, 4, 0, 0, 0, 0]; // next: routing
    let mut rt = vec![6u8, 0, 0, 5, 0, 0, 0, 0]; // next: tcp, segments left 5
    if let Some(fo) = frag {
        hbh[0] = 44;
        let mut f = vec![43u8, 0];
        f.extend_from_slice(&(fo << 3).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1]);
        hbh.extend_from_slice(&f);
    }
    p.append(&mut hbh);
    p.append(&mut rt);
    p.extend_from_slice(&[0u8; 20]);
    let st = PktState {
        nhoff: 0,
        nfproto: NFPROTO_IPV6,
        protocol: 0x86dd,
        has_th: true,
        l4proto: 6,
        thoff: (p.len() - 20) as u16,
        len: p.len() as u32,
        ..Default::default()
    };
    (p, st)
}

fn ext(ty: u8, offset: u32, len: u8, present: bool) -> Insn {
    Insn::Exthdr {
        op: ExthdrOp::Ipv6,
        ty,
        offset,
        len,
        dreg: R0,
        present,
    }
}

#[test]
fn ipv6_extension_headers() {
    let (p, st) = ipv6_with_exthdrs(None);
    // rt seg-left 5 (routing header byte 3), rt nexthdr tcp
    assert!(matches(
        vec![ext(43, 3, 1, false), Insn::cmp_eq(R0, Data::u8(5))],
        &p,
        &st
    ));
    assert!(matches(
        vec![ext(43, 0, 1, false), Insn::cmp_eq(R0, Data::u8(6))],
        &p,
        &st
    ));
    assert!(matches(
        vec![ext(0, 0, 1, true), Insn::cmp_eq(R0, Data::u8(1))],
        &p,
        &st
    ));
    assert!(matches(
        vec![ext(44, 0, 1, true), Insn::cmp_eq(R0, Data::u8(0))],
        &p,
        &st
    ));
    assert!(!matches(vec![ext(60, 0, 1, false)], &p, &st));
    // beyond the packet
    assert!(!matches(vec![ext(43, 100, 1, false)], &p, &st));
    // first fragment: headers after it are found; non-first: only the fragment header
    let (p, st) = ipv6_with_exthdrs(Some(0));
    assert!(matches(
        vec![ext(43, 3, 1, false), Insn::cmp_eq(R0, Data::u8(5))],
        &p,
        &st
    ));
    let (p, st) = ipv6_with_exthdrs(Some(100));
    assert!(matches(
        vec![ext(44, 0, 1, true), Insn::cmp_eq(R0, Data::u8(1))],
        &p,
        &st
    ));
    assert!(matches(
        vec![ext(43, 0, 1, true), Insn::cmp_eq(R0, Data::u8(0))],
        &p,
        &st
    ));
    // IPv4 packets have no IPv6 extension headers
    let (p, st) = tcp_syn();
    assert!(!matches(vec![ext(0, 0, 1, false)], &p, &st));
}

#[test]
fn exthdr_print_and_verify() {
    let p = Program::new();
    assert_eq!(
        print_insn(&p, &opt(2, 2, 2, false)),
        "[ exthdr load tcpopt 2b @ 2 + 2 => reg 1 ]"
    );
    assert_eq!(
        print_insn(
            &p,
            &Insn::Exthdr {
                op: ExthdrOp::Ipv6,
                ty: 43,
                offset: 0,
                len: 1,
                dreg: Reg(1),
                present: true
            }
        ),
        "[ exthdr load ipv6 1b @ 43 + 0 present => reg 9 ]"
    );
    let mut p = Program::new();
    let c = p.add_base_chain("c", nfr_vm::Hook::Input, 0, nfr_vm::program::Policy::Accept);
    p.add_rule(
        c,
        vec![Insn::Exthdr {
            op: ExthdrOp::Ipv6,
            ty: 43,
            offset: 0,
            len: 8,
            dreg: Reg(15),
            present: false,
        }],
    );
    assert!(p.verify().is_err());
}
