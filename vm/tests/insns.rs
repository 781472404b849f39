//! Instruction semantics: every instruction, run through the interpreter on real packet bytes.

mod common;
use common::*;
use nfr_vm::insn::*;
use nfr_vm::pkt::{self, CtTuple, NFPROTO_IPV4, NFPROTO_IPV6, ct_state, ifname, ips};
use nfr_vm::program::{ElemData, Policy, SetDataType, SetKind};
use nfr_vm::{ChainId, ChainVerdict, Effects, Hook, Program, Reg, Set, State, Verdict};

fn eq(reg: Reg, d: Data) -> Insn {
    Insn::cmp_eq(reg, d)
}

#[test]
fn payload_loads_every_base() {
    let (p, st) = tcp_syn();
    // network: ip saddr
    assert!(matches(
        vec![
            Insn::payload(PayloadBase::Network, 12, 4, R0),
            eq(R0, Data::new(&[10, 0, 0, 1]).unwrap())
        ],
        &p,
        &st
    ));
    // transport: dport 22
    assert!(matches(
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            eq(R0, Data::be16(22))
        ],
        &p,
        &st
    ));
    // link: ether type, and 6-byte source address over two registers
    assert!(matches(
        vec![
            Insn::payload(PayloadBase::Link, 12, 2, R0),
            eq(R0, Data::be16(0x0800))
        ],
        &p,
        &st
    ));
    assert!(matches(
        vec![
            Insn::payload(PayloadBase::Link, 6, 6, Reg(3)),
            eq(Reg(3), Data::new(&[2, 0, 0, 0, 0, 2]).unwrap())
        ],
        &p,
        &st
    ));
    // a wrong value does not match
    assert!(!matches(
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            eq(R0, Data::be16(23))
        ],
        &p,
        &st
    ));
}

#[test]
fn payload_partial_words_are_zero_padded() {
    let (p, st) = tcp_syn();
    // 3-byte load of 10.0.0 compares equal to the 4-byte value 10.0.0.0 (padding zero)
    assert!(matches(
        vec![
            Insn::Immediate {
                dreg: R0,
                data: Data::be32(0xffff_ffff)
            },
            Insn::payload(PayloadBase::Network, 12, 3, R0),
            eq(R0, Data::new(&[10, 0, 0, 0]).unwrap())
        ],
        &p,
        &st
    ));
}

#[test]
fn out_of_bounds_loads_break_for_every_length_and_offset() {
    let (p, st) = tcp_syn();
    let n = p.len();
    for base in [
        PayloadBase::Link,
        PayloadBase::Network,
        PayloadBase::Transport,
    ] {
        let b = match base {
            PayloadBase::Link => 0,
            PayloadBase::Network => 14,
            PayloadBase::Transport => 34,
        };
        for len in 1..=64u8 {
            for off in 0..(n as u32 + 4) {
                let fits = b + off as usize + len as usize <= n;
                let got = matches(vec![Insn::payload(base, off, len, R0)], &p, &st);
                assert_eq!(got, fits, "base {base:?} off {off} len {len}");
            }
        }
        // huge offsets never overflow
        assert!(!matches(
            vec![Insn::payload(base, u32::MAX, 4, R0)],
            &p,
            &st
        ));
    }
}

#[test]
fn transport_loads_break_on_fragments_and_without_header() {
    let (p, mut st) = tcp_syn();
    let load = || vec![Insn::payload(PayloadBase::Transport, 0, 2, R0)];
    assert!(matches(load(), &p, &st));
    st.fragoff = 8;
    st.is_fragment = true;
    assert!(!matches(load(), &p, &st));
    // network loads still work on the fragment
    assert!(matches(
        vec![Insn::payload(PayloadBase::Network, 0, 1, R0)],
        &p,
        &st
    ));
    st.fragoff = 0;
    st.has_th = false;
    assert!(!matches(load(), &p, &st));
    // meta l4proto needs the transport header flag too (NFT_PKTINFO_L4PROTO)
    assert!(!matches(vec![Insn::meta(MetaKey::L4proto, R0)], &p, &st));
    let (p, mut st) = tcp_syn();
    st.has_ll = false;
    assert!(!matches(
        vec![Insn::payload(PayloadBase::Link, 0, 1, R0)],
        &p,
        &st
    ));
}

#[test]
fn meta_keys() {
    let (p, mut st) = tcp_syn();
    st.mark = 0x1234;
    st.iif = 3;
    st.oif = 0;
    st.iifname = ifname("eth0");
    st.iiftype = 1;
    st.pkttype = pkt::pkttype::PACKET_BROADCAST;
    let cases: Vec<(MetaKey, Data, bool)> = vec![
        (MetaKey::Len, Data::host32(40), true),
        (MetaKey::Protocol, Data::be16(0x0800), true),
        (MetaKey::Nfproto, Data::u8(2), true),
        (MetaKey::L4proto, Data::u8(6), true),
        (MetaKey::Mark, Data::host32(0x1234), true),
        (MetaKey::Iif, Data::host32(3), true),
        (MetaKey::Oif, Data::host32(0), true),
        (MetaKey::Iifname, Data::name16("eth0"), true),
        (MetaKey::Oifname, Data::name16(""), true),
        (MetaKey::Iiftype, Data::host16(1), true),
        (MetaKey::Pkttype, Data::u8(1), true),
    ];
    for (k, d, want) in cases {
        assert_eq!(
            matches(vec![Insn::meta(k, R0), eq(R0, d)], &p, &st),
            want,
            "{k:?}"
        );
    }
    // missing device / socket → break
    assert!(!matches(vec![Insn::meta(MetaKey::Oiftype, R0)], &p, &st));
    assert!(!matches(vec![Insn::meta(MetaKey::Skuid, R0)], &p, &st));
    st.has_sk = true;
    st.sk_uid = 1000;
    st.sk_gid = 100;
    assert!(matches(
        vec![Insn::meta(MetaKey::Skuid, R0), eq(R0, Data::host32(1000))],
        &p,
        &st
    ));
    assert!(matches(
        vec![Insn::meta(MetaKey::Skgid, R0), eq(R0, Data::host32(100))],
        &p,
        &st
    ));
}

fn tracked() -> (Vec<u8>, nfr_vm::PktState) {
    let (p, mut st) = tcp_syn();
    st.ct_valid = true;
    st.ct_state = ct_state::ESTABLISHED;
    st.ct_status = ips::CONFIRMED | ips::SEEN_REPLY;
    st.ct_mark = 7;
    st.ct_direction = pkt::IP_CT_DIR_REPLY;
    st.ct_zone = 5;
    st.ct_zone_dir = pkt::NF_CT_ZONE_DIR_ORIG;
    st.ct_expiration_ms = 30_000;
    st.ct_id = 99;
    st.ct_helper = *b"ftp\0\0\0\0\0\0\0\0\0\0\0\0\0";
    st.ct_l3proto = NFPROTO_IPV4;
    st.ct_protocol = 6;
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[10, 0, 0, 1]);
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&[10, 0, 0, 2]);
    st.ct_orig = CtTuple {
        src: a,
        dst: b,
        src_port: 1234,
        dst_port: 22,
    };
    st.ct_reply = CtTuple {
        src: b,
        dst: a,
        src_port: 22,
        dst_port: 1234,
    };
    (p, st)
}

fn ct(key: CtKey, dir: Option<CtDir>) -> Insn {
    Insn::Ct { key, dir, dreg: R0 }
}

#[test]
fn ct_keys() {
    let (p, st) = tracked();
    let o = Some(CtDir::Original);
    let r = Some(CtDir::Reply);
    let cases: Vec<(Insn, Data)> = vec![
        (ct(CtKey::State, None), Data::host32(ct_state::ESTABLISHED)),
        (ct(CtKey::Direction, None), Data::u8(1)),
        (
            ct(CtKey::Status, None),
            Data::host32(ips::CONFIRMED | ips::SEEN_REPLY),
        ),
        (ct(CtKey::Mark, None), Data::host32(7)),
        (ct(CtKey::Expiration, None), Data::host32(30_000)),
        (ct(CtKey::Helper, None), Data::name16("ftp")),
        (ct(CtKey::L3protocol, None), Data::u8(2)),
        (ct(CtKey::Protocol, None), Data::u8(6)),
        (ct(CtKey::Zone, None), Data::host16(5)),
        (ct(CtKey::Zone, o), Data::host16(5)),
        (ct(CtKey::Zone, r), Data::host16(0)),
        (ct(CtKey::Id, None), Data::host32(99)),
        (ct(CtKey::SrcIp, o), Data::new(&[10, 0, 0, 1]).unwrap()),
        (ct(CtKey::DstIp, r), Data::new(&[10, 0, 0, 1]).unwrap()),
        (ct(CtKey::ProtoDst, o), Data::be16(22)),
        (ct(CtKey::ProtoSrc, r), Data::be16(22)),
        (
            ct(CtKey::Src, o),
            Data::new(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
        ),
    ];
    for (insn, d) in cases {
        assert!(matches(vec![insn.clone(), eq(R0, d)], &p, &st), "{insn:?}");
    }
    // IPv6-only keys break on an IPv4 entry
    assert!(!matches(vec![ct(CtKey::SrcIp6, o)], &p, &st));
    let (p2, mut st2) = tracked();
    st2.ct_l3proto = NFPROTO_IPV6;
    assert!(!matches(vec![ct(CtKey::SrcIp, o)], &p2, &st2));
    assert!(matches(vec![ct(CtKey::SrcIp6, o)], &p2, &st2));
    // no helper → break
    st2.ct_helper = [0; 16];
    assert!(!matches(vec![ct(CtKey::Helper, None)], &p2, &st2));
}

#[test]
fn ct_without_entry_only_state_works() {
    let (p, st) = tcp_syn();
    assert!(matches(
        vec![
            ct(CtKey::State, None),
            eq(R0, Data::host32(ct_state::INVALID))
        ],
        &p,
        &st
    ));
    for k in [
        CtKey::Mark,
        CtKey::Status,
        CtKey::Direction,
        CtKey::Zone,
        CtKey::Expiration,
    ] {
        assert!(!matches(vec![ct(k, None)], &p, &st), "{k:?}");
    }
    let mut st = st;
    st.ct_state = ct_state::UNTRACKED;
    assert!(matches(
        vec![ct(CtKey::State, None), eq(R0, Data::host32(64))],
        &p,
        &st
    ));
}

#[test]
fn cmp_ops_are_memcmp() {
    let (p, st) = tcp_syn();
    // dport 22 (0x0016) vs 0x0100 = 256: big-endian memcmp order, not host order
    let load = || Insn::payload(PayloadBase::Transport, 2, 2, R0);
    let c = |op, v: u16| {
        vec![
            load(),
            Insn::Cmp {
                op,
                sreg: R0,
                data: Data::be16(v),
            },
        ]
    };
    assert!(matches(c(CmpOp::Lt, 256), &p, &st));
    assert!(matches(c(CmpOp::Lte, 22), &p, &st));
    assert!(!matches(c(CmpOp::Lt, 22), &p, &st));
    assert!(matches(c(CmpOp::Gt, 21), &p, &st));
    assert!(!matches(c(CmpOp::Gt, 256), &p, &st));
    assert!(matches(c(CmpOp::Gte, 22), &p, &st));
    assert!(matches(c(CmpOp::Neq, 23), &p, &st));
    assert!(!matches(c(CmpOp::Neq, 22), &p, &st));
    // 8-byte compare across two registers: saddr.daddr
    let two = |op, b: [u8; 8]| {
        vec![
            Insn::payload(PayloadBase::Network, 12, 8, R0),
            Insn::Cmp {
                op,
                sreg: R0,
                data: Data::new(&b).unwrap(),
            },
        ]
    };
    assert!(matches(two(CmpOp::Eq, [10, 0, 0, 1, 10, 0, 0, 2]), &p, &st));
    assert!(matches(two(CmpOp::Gt, [10, 0, 0, 1, 10, 0, 0, 1]), &p, &st));
    assert!(matches(two(CmpOp::Lt, [10, 0, 0, 1, 11, 0, 0, 0]), &p, &st));
    assert!(!matches(
        two(CmpOp::Lt, [9, 255, 255, 255, 255, 0, 0, 0]),
        &p,
        &st
    ));
}

#[test]
fn range_eq_and_neq() {
    let (p, st) = tcp_syn();
    let r = |op, a: u16, b: u16| {
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            Insn::range(op, R0, Data::be16(a), Data::be16(b)),
        ]
    };
    assert!(matches(r(RangeOp::Eq, 22, 22), &p, &st));
    assert!(matches(r(RangeOp::Eq, 1, 1024), &p, &st));
    assert!(!matches(r(RangeOp::Eq, 23, 1024), &p, &st));
    assert!(!matches(r(RangeOp::Eq, 1, 21), &p, &st));
    assert!(matches(r(RangeOp::Neq, 23, 1024), &p, &st));
    assert!(!matches(r(RangeOp::Neq, 20, 30), &p, &st));
}

#[test]
fn bitwise_ops() {
    let (p, st) = tcp_syn();
    // ip dscp: byte at nh+1 = 0 here; use ttl (64) at nh+8: (64 & 0xf0) ^ 0x01 = 0x41
    let mk = |op, len| Insn::Bitwise {
        sreg: R0,
        dreg: Reg(1),
        len,
        op,
    };
    assert!(matches(
        vec![
            Insn::payload(PayloadBase::Network, 8, 1, R0),
            mk(BitwiseOp::mask_xor(Data::u8(0xf0), Data::u8(1)), 1),
            eq(Reg(1), Data::u8(0x41))
        ],
        &p,
        &st
    ));
    // shifts on host-order words: 64 >> 2 = 16, 64 << 2 = 256
    assert!(matches(
        vec![
            Insn::payload(PayloadBase::Network, 8, 1, R0),
            mk(BitwiseOp::Rshift(2), 4),
            eq(Reg(1), Data::host32(16))
        ],
        &p,
        &st
    ));
    assert!(matches(
        vec![
            Insn::payload(PayloadBase::Network, 8, 1, R0),
            mk(BitwiseOp::Lshift(2), 4),
            eq(Reg(1), Data::host32(256))
        ],
        &p,
        &st
    ));
    // multi-word lshift carries from word i into word i-1 (kernel order)
    assert!(matches(
        vec![
            Insn::Immediate {
                dreg: R0,
                data: Data::new(&[0, 0, 0, 0, 0, 0, 0, 0x80]).unwrap()
            },
            mk(BitwiseOp::Lshift(1), 8),
            eq(Reg(1), Data::new(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap())
        ],
        &p,
        &st
    ));
    assert!(matches(
        vec![
            Insn::Immediate {
                dreg: R0,
                data: Data::new(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap()
            },
            mk(BitwiseOp::Rshift(1), 8),
            eq(Reg(1), Data::new(&[0, 0, 0, 0, 0, 0, 0, 0x80]).unwrap())
        ],
        &p,
        &st
    ));
    // and / or / xor with a second register
    let two = |op, want: u32| {
        vec![
            Insn::Immediate {
                dreg: R0,
                data: Data::host32(0b1100),
            },
            Insn::Immediate {
                dreg: Reg(2),
                data: Data::host32(0b1010),
            },
            mk(op, 4),
            eq(Reg(1), Data::host32(want)),
        ]
    };
    assert!(matches(two(BitwiseOp::And(Reg(2)), 0b1000), &p, &st));
    assert!(matches(two(BitwiseOp::Or(Reg(2)), 0b1110), &p, &st));
    assert!(matches(two(BitwiseOp::Xor(Reg(2)), 0b0110), &p, &st));
}

#[test]
fn byteorder_sizes() {
    let (p, st) = tcp_syn();
    let bo = |size, len, input: &[u8], out: &[u8]| {
        vec![
            Insn::Immediate {
                dreg: R0,
                data: Data::new(input).unwrap(),
            },
            Insn::Byteorder {
                sreg: R0,
                dreg: Reg(4),
                op: ByteorderOp::Ntoh,
                len,
                size,
            },
            eq(Reg(4), Data::new(out).unwrap()),
        ]
    };
    assert!(matches(bo(2, 2, &[0, 22], &[22, 0]), &p, &st));
    assert!(matches(bo(2, 4, &[1, 2, 3, 4], &[2, 1, 4, 3]), &p, &st));
    assert!(matches(bo(4, 4, &[1, 2, 3, 4], &[4, 3, 2, 1]), &p, &st));
    assert!(matches(
        bo(8, 8, &[1, 2, 3, 4, 5, 6, 7, 8], &[8, 7, 6, 5, 4, 3, 2, 1]),
        &p,
        &st
    ));
}

fn lookup_prog(
    set: Set,
    load: Vec<Insn>,
    dest: LookupDest,
    invert: bool,
    tail: Vec<Insn>,
) -> nfr_vm::VerifiedProgram {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    let sid = p.add_set(set);
    let mut v = load;
    v.push(Insn::Lookup {
        sreg: R0,
        set: sid,
        dest,
        invert,
    });
    v.extend(tail);
    p.add_rule(c, v);
    p.verify().expect("verifies")
}

#[test]
fn hash_set_lookup_and_invert() {
    let mut s = Set::new("ports", 2, SetDataType::None, SetKind::Hash);
    for port in [22u16, 80, 443] {
        s.insert(&port.to_be_bytes(), ElemData::None);
    }
    let load = || vec![Insn::payload(PayloadBase::Transport, 2, 2, R0)];
    let acc = || vec![Insn::ImmVerdict(ChainVerdict::Accept)];
    let (p, st) = tcp_syn();
    let (p2, st2) = ipv4_l4(6, [1, 2, 3, 4], [5, 6, 7, 8], 1, 8080);
    let vp = lookup_prog(s.clone(), load(), LookupDest::None, false, acc());
    assert_eq!(run(&vp, &p, &st), Verdict::Accept);
    assert_eq!(run(&vp, &p2, &st2), Verdict::Drop);
    let vp = lookup_prog(s, load(), LookupDest::None, true, acc());
    assert_eq!(run(&vp, &p, &st), Verdict::Drop);
    assert_eq!(run(&vp, &p2, &st2), Verdict::Accept);
}

#[test]
fn interval_set_lookup() {
    let mut s = Set::new("nets", 4, SetDataType::None, SetKind::Interval);
    s.insert_range(&[192, 168, 0, 0], &[192, 168, 255, 255], ElemData::None);
    s.insert_range(&[10, 0, 0, 0], &[10, 0, 0, 1], ElemData::None);
    s.insert(&[8, 8, 8, 8], ElemData::None);
    let vp = lookup_prog(
        s,
        vec![Insn::payload(PayloadBase::Network, 12, 4, R0)],
        LookupDest::None,
        false,
        vec![Insn::ImmVerdict(ChainVerdict::Accept)],
    );
    for (src, want) in [
        ([10, 0, 0, 1], Verdict::Accept),
        ([10, 0, 0, 0], Verdict::Accept),
        ([10, 0, 0, 2], Verdict::Drop),
        ([9, 255, 255, 255], Verdict::Drop),
        ([192, 168, 3, 4], Verdict::Accept),
        ([192, 169, 0, 0], Verdict::Drop),
        ([8, 8, 8, 8], Verdict::Accept),
        ([8, 8, 8, 9], Verdict::Drop),
        ([0, 0, 0, 0], Verdict::Drop),
        ([255, 255, 255, 255], Verdict::Drop),
    ] {
        let (p, st) = ipv4_l4(17, src, [1, 1, 1, 1], 1, 2);
        assert_eq!(run(&vp, &p, &st), want, "{src:?}");
    }
}

#[test]
fn concat_hash_map_to_mark() {
    // ip saddr . tcp dport → mark; key = 4 + 4 (port padded to 4 bytes)
    let mut s = Set::new("m", 8, SetDataType::Data(4), SetKind::Hash);
    s.insert(
        &[10, 0, 0, 1, 0, 22, 0, 0],
        ElemData::Data(Data::host32(0x42)),
    );
    let vp = lookup_prog(
        s,
        vec![
            Insn::payload(PayloadBase::Network, 12, 4, R0),
            Insn::payload(PayloadBase::Transport, 2, 2, Reg(1)),
        ],
        LookupDest::Reg(Reg(4)),
        false,
        vec![
            Insn::MetaSet {
                key: MetaSetKey::Mark,
                sreg: Reg(4),
            },
            Insn::ImmVerdict(ChainVerdict::Accept),
        ],
    );
    let (p, st) = tcp_syn();
    let mut state = State::new(&vp);
    let mut st1 = st.clone();
    let mut fx = Effects::default();
    assert_eq!(
        vp.run(&mut state, ChainId(0), &p, &mut st1, &mut fx),
        Verdict::Accept
    );
    assert_eq!(st1.mark, 0x42);
    assert!(fx.mark_set);
    let (p2, st2) = ipv4_l4(6, [10, 0, 0, 1], [1, 1, 1, 1], 1, 23);
    assert_eq!(run(&vp, &p2, &st2), Verdict::Drop);
}

#[test]
fn concat_interval_set() {
    let mut s = Set::new(
        "ci",
        8,
        SetDataType::None,
        SetKind::ConcatInterval {
            field_lens: vec![4, 2],
        },
    );
    s.insert_range(
        &[10, 0, 0, 0, 0, 1, 0, 0],
        &[10, 0, 0, 255, 0, 100, 0, 0],
        ElemData::None,
    );
    let vp = lookup_prog(
        s,
        vec![
            Insn::payload(PayloadBase::Network, 12, 4, R0),
            Insn::payload(PayloadBase::Transport, 2, 2, Reg(1)),
        ],
        LookupDest::None,
        false,
        vec![Insn::ImmVerdict(ChainVerdict::Accept)],
    );
    let (p, st) = tcp_syn(); // 10.0.0.1 port 22
    assert_eq!(run(&vp, &p, &st), Verdict::Accept);
    let (p, st) = ipv4_l4(6, [10, 0, 0, 1], [1, 1, 1, 1], 1, 101);
    assert_eq!(run(&vp, &p, &st), Verdict::Drop);
    let (p, st) = ipv4_l4(6, [10, 0, 1, 1], [1, 1, 1, 1], 1, 22);
    assert_eq!(run(&vp, &p, &st), Verdict::Drop);
}

#[test]
fn verdict_map_and_catchall() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    let ssh = p.add_chain("ssh");
    let mut s = Set::new("vm", 2, SetDataType::Verdict, SetKind::Hash);
    s.insert(
        &22u16.to_be_bytes(),
        ElemData::Verdict(ChainVerdict::Jump(ssh)),
    );
    s.insert(&23u16.to_be_bytes(), ElemData::Verdict(ChainVerdict::Drop));
    let sid = p.add_set(s);
    p.add_rule(
        c,
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            Insn::Lookup {
                sreg: R0,
                set: sid,
                dest: LookupDest::Verdict,
                invert: false,
            },
        ],
    );
    p.add_rule(
        c,
        vec![Insn::ImmVerdict(ChainVerdict::Queue {
            num: 1,
            bypass: false,
        })],
    );
    p.add_rule(ssh, vec![Insn::ImmVerdict(ChainVerdict::Stolen)]);
    let vp = p.clone().verify().unwrap();
    let (pk, st) = tcp_syn();
    assert_eq!(run(&vp, &pk, &st), Verdict::Stolen);
    let (pk, st) = ipv4_l4(6, [1; 4], [2; 4], 1, 23);
    assert_eq!(run(&vp, &pk, &st), Verdict::Drop);
    let (pk, st) = ipv4_l4(6, [1; 4], [2; 4], 1, 24);
    assert_eq!(
        run(&vp, &pk, &st),
        Verdict::Queue {
            num: 1,
            bypass: false
        }
    );
    // catch-all turns misses into a verdict
    p.sets[0].catchall = Some(ElemData::Verdict(ChainVerdict::Accept));
    let vp = p.verify().unwrap();
    assert_eq!(run(&vp, &pk, &st), Verdict::Accept);
}

#[test]
fn immediate_counter_and_bytes() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    let all = p.add_counter();
    let ssh = p.add_counter();
    p.add_rule(c, vec![Insn::Counter(all)]);
    p.add_rule(
        c,
        vec![
            Insn::payload(PayloadBase::Transport, 2, 2, R0),
            eq(R0, Data::be16(22)),
            Insn::Counter(ssh),
        ],
    );
    let vp = p.verify().unwrap();
    let mut state = State::new(&vp);
    let mut fx = Effects::default();
    for port in [22u16, 80, 22] {
        let (pk, mut st) = ipv4_l4(6, [1; 4], [2; 4], 1, port);
        assert_eq!(
            vp.run(&mut state, ChainId(0), &pk, &mut st, &mut fx),
            Verdict::Accept
        );
    }
    assert_eq!(state.counters[0].packets, 3);
    assert_eq!(state.counters[0].bytes, 120);
    assert_eq!(state.counters[1].packets, 2);
    assert_eq!(state.counters[1].bytes, 80);
    // 3 + 3 insns for ssh packets, 3 for the other
    assert_eq!(state.insns_executed, 1 + 3 + 1 + 2 + 1 + 3);
}

#[test]
fn limit_packets_token_bucket() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    // 1 packet per second, burst 2
    let l = p.add_limit(LimitSpec {
        rate: 1,
        unit: 1,
        burst: 2,
        ty: LimitType::Packets,
        invert: false,
    });
    p.add_rule(
        c,
        vec![Insn::Limit(l), Insn::ImmVerdict(ChainVerdict::Accept)],
    );
    let vp = p.verify().unwrap();
    let mut state = State::new(&vp);
    let mut fx = Effects::default();
    let (pk, st) = tcp_syn();
    let mut at = |t_ms: u64| {
        let mut s = st.clone();
        s.tstamp_ns = 1_000_000_000_000 + t_ms * 1_000_000;
        vp.run(&mut state, ChainId(0), &pk, &mut s, &mut fx)
    };
    assert_eq!(at(0), Verdict::Accept);
    assert_eq!(at(1), Verdict::Accept);
    assert_eq!(at(2), Verdict::Drop); // burst used up
    assert_eq!(at(500), Verdict::Drop);
    assert_eq!(at(1002), Verdict::Accept); // one token after 1 s
    assert_eq!(at(1003), Verdict::Drop);
}

#[test]
fn limit_bytes_and_invert() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    // over 100 bytes/second burst 0 → tokens_max = 1 s worth = 100 bytes
    let l = p.add_limit(LimitSpec {
        rate: 100,
        unit: 1,
        burst: 0,
        ty: LimitType::Bytes,
        invert: true,
    });
    p.add_rule(
        c,
        vec![Insn::Limit(l), Insn::ImmVerdict(ChainVerdict::Drop)],
    );
    let vp = p.verify().unwrap();
    let mut state = State::new(&vp);
    let mut fx = Effects::default();
    let (pk, st) = tcp_syn(); // 40 bytes
    let mut v = Vec::new();
    for _ in 0..4 {
        let mut s = st.clone();
        v.push(vp.run(&mut state, ChainId(0), &pk, &mut s, &mut fx));
    }
    assert_eq!(
        v,
        vec![
            Verdict::Accept,
            Verdict::Accept,
            Verdict::Drop,
            Verdict::Drop
        ]
    );
}

#[test]
fn meta_and_ct_mark_set_are_visible_later() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    p.add_rule(
        c,
        vec![
            Insn::Immediate {
                dreg: R0,
                data: Data::host32(9),
            },
            Insn::MetaSet {
                key: MetaSetKey::Mark,
                sreg: R0,
            },
            Insn::CtSet {
                key: CtSetKey::Mark,
                sreg: R0,
            },
        ],
    );
    p.add_rule(
        c,
        vec![
            Insn::meta(MetaKey::Mark, R0),
            eq(R0, Data::host32(9)),
            ct(CtKey::Mark, None),
            eq(R0, Data::host32(9)),
            Insn::ImmVerdict(ChainVerdict::Accept),
        ],
    );
    let vp = p.verify().unwrap();
    let (pk, st) = tracked();
    let mut state = State::new(&vp);
    let mut fx = Effects::default();
    let mut s = st.clone();
    assert_eq!(
        vp.run(&mut state, ChainId(0), &pk, &mut s, &mut fx),
        Verdict::Accept
    );
    assert!(fx.mark_set && fx.ct_mark_set);
    assert_eq!((s.mark, s.ct_mark), (9, 9));
    // without a conntrack entry ct mark set is ignored and ct mark load breaks
    let (pk, st) = tcp_syn();
    let mut s = st.clone();
    fx.clear();
    assert_eq!(
        vp.run(&mut state, ChainId(0), &pk, &mut s, &mut fx),
        Verdict::Drop
    );
    assert!(fx.mark_set && !fx.ct_mark_set);
}

#[test]
fn notrack_log_reject_queue_nat() {
    let (pk, st) = tcp_syn();
    let run_fx = |insns: Vec<Insn>| {
        let mut p = Program::new();
        let c = p.add_base_chain("c", Hook::Prerouting, -300, Policy::Accept);
        p.add_rule(c, insns);
        p.add_rule(c, vec![Insn::ImmVerdict(ChainVerdict::Drop)]);
        let vp = p.verify().unwrap();
        let mut state = State::new(&vp);
        let mut fx = Effects::default();
        let mut s = st.clone();
        let v = vp.run(&mut state, ChainId(0), &pk, &mut s, &mut fx);
        (v, s, fx)
    };
    let (v, s, fx) = run_fx(vec![
        Insn::Notrack,
        ct(CtKey::State, None),
        eq(R0, Data::host32(ct_state::UNTRACKED)),
        Insn::ImmVerdict(ChainVerdict::Accept),
    ]);
    assert_eq!(v, Verdict::Accept);
    assert!(fx.notrack);
    assert_eq!(s.ct_state, ct_state::UNTRACKED);

    let (v, _, fx) = run_fx(vec![Insn::Log(Box::new(LogSpec {
        prefix: Some("x".into()),
        ..Default::default()
    }))]);
    assert_eq!(v, Verdict::Drop); // log does not end the rule's effect: next rule drops
    assert_eq!(fx.logs.len(), 1);
    assert_eq!(fx.logs[0].spec.prefix.as_deref(), Some("x"));
    assert_eq!(fx.logs[0].rule, nfr_vm::RuleId(0));

    let (v, _, fx) = run_fx(vec![Insn::Reject { ty: 1, code: 0 }]);
    assert_eq!((v, fx.reject), (Verdict::Drop, Some((1, 0))));

    let (v, _, _) = run_fx(vec![Insn::Queue {
        num: 7,
        total: 1,
        bypass: true,
        fanout: false,
    }]);
    assert_eq!(
        v,
        Verdict::Queue {
            num: 7,
            bypass: true
        }
    );

    let (v, _, fx) = run_fx(vec![
        Insn::Immediate {
            dreg: R0,
            data: Data::be32(0xc0a8_0302),
        },
        Insn::Immediate {
            dreg: Reg(4),
            data: Data::be16(8080),
        },
        Insn::Nat(NatSpec {
            kind: NatKind::Dnat,
            family: NFPROTO_IPV4,
            addr_min: Some(R0),
            addr_max: None,
            proto_min: Some(Reg(4)),
            proto_max: None,
            flags: 2,
        }),
    ]);
    assert_eq!(v, Verdict::Accept);
    assert_eq!(fx.nat.len(), 1);
    let n = fx.nat[0];
    assert_eq!(n.kind, NatKind::Dnat);
    assert_eq!(&n.addr_min.unwrap()[..4], &[192, 168, 3, 2]);
    assert_eq!(n.proto_min, Some(8080));
    assert_eq!(n.addr_max, None);

    let (v, _, fx) = run_fx(vec![Insn::Nat(NatSpec {
        kind: NatKind::Masquerade,
        family: NFPROTO_IPV4,
        addr_min: None,
        addr_max: None,
        proto_min: None,
        proto_max: None,
        flags: 4,
    })]);
    assert_eq!(v, Verdict::Accept);
    assert_eq!((fx.nat[0].kind, fx.nat[0].flags), (NatKind::Masquerade, 4));
}

#[test]
fn payload_write_is_recorded_with_absolute_offset() {
    let (pk, st) = tcp_syn();
    let mut p = Program::new();
    let c = p.add_base_chain("c", Hook::Prerouting, 0, Policy::Accept);
    p.add_rule(
        c,
        vec![
            Insn::Immediate {
                dreg: R0,
                data: Data::be16(2222),
            },
            Insn::PayloadWrite {
                base: PayloadBase::Transport,
                offset: 2,
                len: 2,
                sreg: R0,
                csum_type: 0,
                csum_offset: 0,
                csum_flags: 1,
            },
        ],
    );
    let vp = p.verify().unwrap();
    let mut state = State::new(&vp);
    let mut fx = Effects::default();
    let mut s = st.clone();
    vp.run(&mut state, ChainId(0), &pk, &mut s, &mut fx);
    assert_eq!(fx.payload_writes.len(), 1);
    assert_eq!(fx.payload_writes[0].offset, 36);
    assert_eq!(fx.payload_writes[0].bytes, 2222u16.to_be_bytes().to_vec());
}
