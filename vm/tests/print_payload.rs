//! Printer fidelity: hand-built Programs printed by `nfr_vm::print` must equal the expression
//! lines (and set element lines) of nftables' tests/py `.t.payload` records, read from the shared
//! corpus (those tests are ignored when the corpus is absent), plus self-contained format checks.

#[path = "../../tests/gate.rs"]
mod gate;

use nfr_vm::ids::Reg;
use nfr_vm::insn::*;
use nfr_vm::pkt::{NFPROTO_INET, NFPROTO_IPV4};
use nfr_vm::print::{print_insn, print_rule, print_set_elements};
use nfr_vm::program::{ElemData, Policy, SetDataType, SetKind};
use nfr_vm::{ChainVerdict, Hook, Program, Set, SetId};
use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    gate::corpus("nft-tests-py").ok()
}

/// (expression lines, element lines) of the first record headed `# rule` in `file`.
fn record(file: &str, rule: &str) -> Option<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(corpus()?.join(file)).expect("corpus file readable");
    let header = format!("# {rule}");
    let mut lines = text.lines().skip_while(|l| l.trim_end() != header);
    lines.next()?;
    let mut exprs = Vec::new();
    let mut elems = Vec::new();
    for l in lines {
        if l.trim().is_empty() || l.starts_with("# ") {
            break;
        }
        let t = l.trim();
        if t.starts_with('[') {
            exprs.push(t.to_string());
        } else if t.starts_with("element") {
            elems.extend(
                t.split("[end]")
                    .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|e| !e.is_empty()),
            );
        }
    }
    Some((exprs, elems))
}

fn norm_elems(s: &str) -> Vec<String> {
    s.split("[end]")
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| !e.is_empty())
        .collect()
}

fn check(file: &str, rule: &str, prog: &Program, set: Option<SetId>) {
    let Some((exprs, elems)) = record(file, rule) else {
        if corpus().is_some() {
            panic!("record `{rule}` not found in {file}");
        }
        return;
    };
    let rid = nfr_vm::RuleId(0);
    let got: Vec<String> = print_rule(prog, rid)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(got, exprs, "record `{rule}` in {file}");
    if let Some(s) = set {
        assert_eq!(
            norm_elems(&print_set_elements(prog, s)),
            elems,
            "elements of `{rule}`"
        );
    }
}

const R1: Reg = Reg(0);
const R2: Reg = Reg(4);

fn one_rule(insns: Vec<Insn>) -> Program {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    p.add_rule(c, insns);
    p
}

fn l4(proto: u8) -> Vec<Insn> {
    vec![
        Insn::meta(MetaKey::L4proto, R1),
        Insn::cmp_eq(R1, Data::u8(proto)),
    ]
}

fn mask_xor(reg: Reg, len: u8, mask: Data, xor: Data) -> Insn {
    Insn::Bitwise {
        sreg: reg,
        dreg: reg,
        len,
        op: BitwiseOp::mask_xor(mask, xor),
    }
}

fn icmp_type_echo_request() {
    let mut v = l4(1);
    v.push(Insn::payload(PayloadBase::Transport, 0, 1, R1));
    v.push(Insn::cmp_eq(R1, Data::u8(8)));
    check(
        "ip/meta.t.payload",
        "icmp type echo-request",
        &one_rule(v),
        None,
    );
}

fn tcp_dport_range() {
    let mut v = l4(6);
    v.push(Insn::payload(PayloadBase::Transport, 2, 2, R1));
    v.push(Insn::range(RangeOp::Eq, R1, Data::be16(33), Data::be16(45)));
    check("inet/tcp.t.payload", "tcp dport 33-45", &one_rule(v), None);
}

fn ip_daddr_range() {
    let v = vec![
        Insn::payload(PayloadBase::Network, 16, 4, R1),
        Insn::range(
            RangeOp::Eq,
            R1,
            Data::be32(0x0a00_0000),
            Data::be32(0x0aff_ffff),
        ),
    ];
    check(
        "ip/ip.t.payload",
        "ip daddr 10.0.0.0-10.255.255.255",
        &one_rule(v),
        None,
    );
}

fn meta_mark_set_dscp_shift() {
    let v = vec![
        Insn::payload(PayloadBase::Network, 1, 1, R1),
        mask_xor(R1, 1, Data::u8(0xfc), Data::u8(0)),
        Insn::Bitwise {
            sreg: R1,
            dreg: R1,
            len: 1,
            op: BitwiseOp::Rshift(2),
        },
        Insn::Bitwise {
            sreg: R1,
            dreg: R1,
            len: 4,
            op: BitwiseOp::Lshift(2),
        },
        mask_xor(R1, 4, Data::host32(0xffff_ffef), Data::host32(0x10)),
        Insn::MetaSet {
            key: MetaSetKey::Mark,
            sreg: R1,
        },
    ];
    check(
        "ip/meta.t.payload",
        "meta mark set ip dscp << 2 | 0x10",
        &one_rule(v),
        None,
    );
}

fn ct_mark_or_dscp_counter() {
    let mut p = one_rule(vec![]);
    let cnt = p.add_counter();
    let mut p2 = Program::new();
    let c = p2.add_base_chain("output", Hook::Output, 0, Policy::Accept);
    p2.counters = p.counters.clone();
    p2.add_rule(
        c,
        vec![
            Insn::Ct {
                key: CtKey::Mark,
                dir: None,
                dreg: R1,
            },
            Insn::payload(PayloadBase::Network, 1, 1, R2),
            mask_xor(R2, 1, Data::u8(0xfc), Data::u8(0)),
            Insn::Bitwise {
                sreg: R2,
                dreg: R2,
                len: 1,
                op: BitwiseOp::Rshift(2),
            },
            Insn::Bitwise {
                sreg: R1,
                dreg: R1,
                len: 4,
                op: BitwiseOp::Or(R2),
            },
            mask_xor(R1, 4, Data::host32(0xffff_fdff), Data::host32(0x200)),
            Insn::CtSet {
                key: CtSetKey::Mark,
                sreg: R1,
            },
            Insn::Counter(cnt),
        ],
    );
    check(
        "ip/ct.t.payload",
        "ct mark set ct mark | ip dscp | 0x200 counter",
        &p2,
        None,
    );
    assert!(p2.verify().is_ok());
}

fn dnat_with_anonymous_set() {
    let mut p = Program::new();
    let c = p.add_base_chain("prerouting", Hook::Prerouting, -100, Policy::Accept);
    let mut s = Set::new("__set%d", 2, SetDataType::None, SetKind::Hash);
    for port in [80u16, 90, 23] {
        s.insert(&port.to_be_bytes(), ElemData::None);
    }
    let sid = p.add_set(s);
    let mut v = vec![
        Insn::meta(MetaKey::Iifname, R1),
        Insn::cmp_eq(R1, Data::name16("eth0")),
    ];
    v.extend(l4(6));
    v.push(Insn::payload(PayloadBase::Transport, 2, 2, R1));
    v.push(Insn::Lookup {
        sreg: R1,
        set: sid,
        dest: LookupDest::None,
        invert: false,
    });
    v.push(Insn::Immediate {
        dreg: R1,
        data: Data::be32(0xc0a8_0302),
    });
    v.push(Insn::Nat(NatSpec {
        kind: NatKind::Dnat,
        family: NFPROTO_IPV4,
        addr_min: Some(R1),
        addr_max: None,
        proto_min: None,
        proto_max: None,
        flags: 0,
    }));
    p.add_rule(c, v);
    check(
        "ip/dnat.t.payload.ip",
        "iifname \"eth0\" tcp dport {80, 90, 23} dnat to 192.168.3.2",
        &p,
        Some(sid),
    );
    assert!(p.verify().is_ok());
}

fn ct_original_daddr_map_to_mark() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    let mut s = Set::new("__map%d", 4, SetDataType::Data(4), SetKind::Hash);
    s.insert(&[1, 1, 1, 1], ElemData::Data(Data::host32(0x11)));
    let sid = p.add_set(s);
    p.add_rule(
        c,
        vec![
            Insn::Ct {
                key: CtKey::DstIp,
                dir: Some(CtDir::Original),
                dreg: R1,
            },
            Insn::Lookup {
                sreg: R1,
                set: sid,
                dest: LookupDest::Reg(R1),
                invert: false,
            },
            Insn::MetaSet {
                key: MetaSetKey::Mark,
                sreg: R1,
            },
        ],
    );
    check(
        "ip/ct.t.payload",
        "meta mark set ct original ip daddr map { 1.1.1.1 : 0x00000011 }",
        &p,
        Some(sid),
    );
}

fn icmp_type_not_in_set() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    let mut s = Set::new("__set%d", 1, SetDataType::None, SetKind::Hash);
    for t in [0u8, 3, 4] {
        s.insert(&[t], ElemData::None);
    }
    let sid = p.add_set(s);
    let mut v = l4(1);
    v.push(Insn::payload(PayloadBase::Transport, 0, 1, R1));
    v.push(Insn::Lookup {
        sreg: R1,
        set: sid,
        dest: LookupDest::None,
        invert: true,
    });
    p.add_rule(c, v);
    check(
        "ip/icmp.t.payload.ip",
        "icmp type != {echo-reply, destination-unreachable, source-quench}",
        &p,
        Some(sid),
    );
}

fn frag_off_accept() {
    let v = vec![
        Insn::payload(PayloadBase::Network, 6, 2, R1),
        Insn::cmp_eq(R1, Data::be16(0xde)),
        Insn::ImmVerdict(ChainVerdict::Accept),
    ];
    check(
        "ip/ip.t.payload",
        "ip frag-off 0xde accept",
        &one_rule(v),
        None,
    );
}

fn reject_default() {
    let v = vec![Insn::Reject { ty: 0, code: 3 }];
    check("ip/reject.t.payload", "reject", &one_rule(v), None);
}

fn masquerade_with_vmap_and_ct_state() {
    let mut p = Program::new();
    let c = p.add_base_chain("postrouting", Hook::Postrouting, 100, Policy::Accept);
    let mut s = Set::new("__map%d", 2, SetDataType::Verdict, SetKind::Hash);
    s.insert(&22u16.to_be_bytes(), ElemData::Verdict(ChainVerdict::Drop));
    s.insert(&222u16.to_be_bytes(), ElemData::Verdict(ChainVerdict::Drop));
    let sid = p.add_set(s);
    let mut v = vec![
        Insn::meta(MetaKey::Iifname, R1),
        Insn::cmp_eq(R1, Data::name16("eth0")),
        Insn::Ct {
            key: CtKey::State,
            dir: None,
            dreg: R1,
        },
        mask_xor(R1, 4, Data::host32(0x0a), Data::host32(0)),
        Insn::Cmp {
            op: CmpOp::Neq,
            sreg: R1,
            data: Data::host32(0),
        },
    ];
    v.extend(l4(6));
    v.push(Insn::payload(PayloadBase::Transport, 2, 2, R1));
    v.push(Insn::Lookup {
        sreg: R1,
        set: sid,
        dest: LookupDest::Verdict,
        invert: false,
    });
    v.push(Insn::Nat(NatSpec {
        kind: NatKind::Masquerade,
        family: NFPROTO_IPV4,
        addr_min: None,
        addr_max: None,
        proto_min: None,
        proto_max: None,
        flags: 0,
    }));
    p.add_rule(c, v);
    check(
        "ip/masquerade.t.payload",
        "iifname \"eth0\" ct state established,new tcp dport vmap {22 : drop, 222 : drop } masquerade",
        &p,
        Some(sid),
    );
    assert!(p.verify().is_ok());
}

fn hdrlength_interval_vmap() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    let mut s = Set::new("__map%d", 1, SetDataType::Verdict, SetKind::Interval);
    s.insert_range(&[0], &[4], ElemData::Verdict(ChainVerdict::Drop));
    s.insert(&[5], ElemData::Verdict(ChainVerdict::Accept));
    s.insert(&[6], ElemData::Verdict(ChainVerdict::Continue));
    let sid = p.add_set(s);
    let cnt = p.add_counter();
    p.add_rule(
        c,
        vec![
            Insn::payload(PayloadBase::Network, 0, 1, R1),
            mask_xor(R1, 1, Data::u8(0x0f), Data::u8(0)),
            Insn::Lookup {
                sreg: R1,
                set: sid,
                dest: LookupDest::Verdict,
                invert: false,
            },
            Insn::Counter(cnt),
        ],
    );
    check(
        "ip/ip.t.payload",
        "ip hdrlength vmap { 0-4 : drop, 5 : accept, 6 : continue } counter",
        &p,
        Some(sid),
    );
}

fn dnat_addr_port() {
    let mut v = vec![
        Insn::meta(MetaKey::Iifname, R1),
        Insn::cmp_eq(R1, Data::name16("eth0")),
    ];
    v.extend(l4(6));
    v.push(Insn::payload(PayloadBase::Transport, 2, 2, R1));
    v.push(Insn::cmp_eq(R1, Data::be16(81)));
    v.push(Insn::Immediate {
        dreg: R1,
        data: Data::be32(0xc0a8_0302),
    });
    v.push(Insn::Immediate {
        dreg: R2,
        data: Data::be16(8080),
    });
    v.push(Insn::Nat(NatSpec {
        kind: NatKind::Dnat,
        family: NFPROTO_IPV4,
        addr_min: Some(R1),
        addr_max: None,
        proto_min: Some(R2),
        proto_max: None,
        flags: 2,
    }));
    check(
        "ip/dnat.t.payload.ip",
        "iifname \"eth0\" tcp dport 81 dnat to 192.168.3.2:8080",
        &one_rule(v),
        None,
    );
}

// ---- self-contained format checks (no corpus needed) ----

fn format_of_every_other_insn() {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    let u = p.add_chain("sub");
    let lim = p.add_limit(LimitSpec {
        rate: 400,
        unit: 60,
        burst: 5,
        ty: LimitType::Packets,
        invert: false,
    });
    let cases: Vec<(Insn, &str)> = vec![
        (
            Insn::payload(PayloadBase::Link, 6, 6, Reg(0)),
            "[ payload load 6b @ link header + 6 => reg 1 ]",
        ),
        (
            Insn::meta(MetaKey::Mark, Reg(1)),
            "[ meta load mark => reg 9 ]",
        ),
        (
            Insn::Ct {
                key: CtKey::ProtoDst,
                dir: Some(CtDir::Reply),
                dreg: Reg(2),
            },
            "[ ct load proto_dst => reg 10 , dir reply ]",
        ),
        (
            Insn::Cmp {
                op: CmpOp::Lt,
                sreg: Reg(0),
                data: Data::be32(0x7f00_0000),
            },
            "[ cmp lt reg 1 0x0000007f ]",
        ),
        (
            Insn::Byteorder {
                sreg: Reg(0),
                dreg: Reg(0),
                op: ByteorderOp::Hton,
                len: 2,
                size: 2,
            },
            "[ byteorder reg 1 = hton(reg 1, 2, 2) ]",
        ),
        (
            Insn::ImmVerdict(ChainVerdict::Jump(u)),
            "[ immediate reg 0 jump -> sub ]",
        ),
        (
            Insn::ImmVerdict(ChainVerdict::Goto(u)),
            "[ immediate reg 0 goto -> sub ]",
        ),
        (
            Insn::ImmVerdict(ChainVerdict::Return),
            "[ immediate reg 0 return ]",
        ),
        (
            Insn::Limit(lim),
            "[ limit rate 400/minute burst 5 type packets flags 0x0 ]",
        ),
        (Insn::Log(Box::default()), "[ log ]"),
        (
            Insn::Log(Box::new(LogSpec {
                prefix: Some("ssh ".into()),
                level: Some(4),
                ..Default::default()
            })),
            "[ log prefix ssh  level 4 ]",
        ),
        (Insn::Notrack, "[ notrack ]"),
        (
            Insn::Queue {
                num: 2,
                total: 3,
                bypass: true,
                fanout: false,
            },
            "[ queue num 2-4 bypass ]",
        ),
        (
            Insn::Nat(NatSpec {
                kind: NatKind::Redirect,
                family: NFPROTO_INET,
                addr_min: None,
                addr_max: None,
                proto_min: Some(Reg(0)),
                proto_max: None,
                flags: 2,
            }),
            "[ redir proto_min reg 1 flags 0x2 ]",
        ),
        (
            Insn::PayloadWrite {
                base: PayloadBase::Network,
                offset: 8,
                len: 2,
                sreg: Reg(0),
                csum_type: 1,
                csum_offset: 10,
                csum_flags: 0,
            },
            "[ payload write reg 1 => 2b @ network header + 8 csum_type 1 csum_off 10 csum_flags 0x0 ]",
        ),
    ];
    for (insn, want) in cases {
        assert_eq!(print_insn(&p, &insn), want);
    }
    let _ = c;
}

fn interval_set_elements_with_gap() {
    let mut p = Program::new();
    let mut s = Set::new("s", 4, SetDataType::None, SetKind::Interval);
    s.insert_range(&[1, 1, 1, 0], &[1, 1, 1, 255], ElemData::None);
    s.insert_range(&[2, 2, 2, 0], &[2, 2, 2, 255], ElemData::None);
    let sid = p.add_set(s);
    assert_eq!(
        norm_elems(&print_set_elements(&p, sid)),
        vec![
            "element 00000000 : 1",
            "element 00010101 : 0",
            "element 00020101 : 1",
            "element 00020202 : 0",
            "element 00030202 : 1",
        ]
    );
}

/// (header lines, element lines) of a record, for set header checks.
fn header_lines(file: &str, rule: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(corpus()?.join(file)).expect("corpus file readable");
    let header = format!("# {rule}");
    let lines = text.lines().skip_while(|l| l.trim_end() != header).skip(1);
    Some(
        lines
            .take_while(|l| l.starts_with("__"))
            .map(|l| l.trim_end().to_string())
            .collect(),
    )
}

fn concat_range_set_header_and_elements() {
    let rule = "ip saddr . ip daddr vmap { 192.168.5.1-192.168.5.128 . 192.168.6.1-192.168.6.128 : accept }";
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    let mut s = Set::new(
        "__map%d",
        8,
        SetDataType::Verdict,
        SetKind::ConcatInterval {
            field_lens: vec![4, 4],
        },
    );
    s.flags = 0x8f;
    s.size = Some(1);
    s.insert_range(
        &[192, 168, 5, 1, 192, 168, 6, 1],
        &[192, 168, 5, 128, 192, 168, 6, 128],
        ElemData::Verdict(ChainVerdict::Accept),
    );
    let sid = p.add_set(s);
    p.add_rule(
        c,
        vec![
            Insn::payload(PayloadBase::Network, 12, 4, R1),
            Insn::payload(PayloadBase::Network, 16, 4, Reg(1)),
            Insn::Lookup {
                sreg: R1,
                set: sid,
                dest: LookupDest::Verdict,
                invert: false,
            },
        ],
    );
    check("ip/ip.t.payload", rule, &p, Some(sid));
    if let Some(h) = header_lines("ip/ip.t.payload", rule) {
        let got: Vec<String> = nfr_vm::print::print_set_header(&p, sid, "test-ip4")
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(got, h);
    }
    assert!(p.verify().is_ok());
}

fn main() {
    gate::run(vec![
        gate::needs(
            "icmp_type_echo_request",
            || gate::corpus("nft-tests-py"),
            |_| icmp_type_echo_request(),
        ),
        gate::needs(
            "tcp_dport_range",
            || gate::corpus("nft-tests-py"),
            |_| tcp_dport_range(),
        ),
        gate::needs(
            "ip_daddr_range",
            || gate::corpus("nft-tests-py"),
            |_| ip_daddr_range(),
        ),
        gate::needs(
            "meta_mark_set_dscp_shift",
            || gate::corpus("nft-tests-py"),
            |_| meta_mark_set_dscp_shift(),
        ),
        gate::needs(
            "ct_mark_or_dscp_counter",
            || gate::corpus("nft-tests-py"),
            |_| ct_mark_or_dscp_counter(),
        ),
        gate::needs(
            "dnat_with_anonymous_set",
            || gate::corpus("nft-tests-py"),
            |_| dnat_with_anonymous_set(),
        ),
        gate::needs(
            "ct_original_daddr_map_to_mark",
            || gate::corpus("nft-tests-py"),
            |_| ct_original_daddr_map_to_mark(),
        ),
        gate::needs(
            "icmp_type_not_in_set",
            || gate::corpus("nft-tests-py"),
            |_| icmp_type_not_in_set(),
        ),
        gate::needs(
            "frag_off_accept",
            || gate::corpus("nft-tests-py"),
            |_| frag_off_accept(),
        ),
        gate::needs(
            "reject_default",
            || gate::corpus("nft-tests-py"),
            |_| reject_default(),
        ),
        gate::needs(
            "masquerade_with_vmap_and_ct_state",
            || gate::corpus("nft-tests-py"),
            |_| masquerade_with_vmap_and_ct_state(),
        ),
        gate::needs(
            "hdrlength_interval_vmap",
            || gate::corpus("nft-tests-py"),
            |_| hdrlength_interval_vmap(),
        ),
        gate::needs(
            "dnat_addr_port",
            || gate::corpus("nft-tests-py"),
            |_| dnat_addr_port(),
        ),
        gate::test("format_of_every_other_insn", format_of_every_other_insn),
        gate::test(
            "interval_set_elements_with_gap",
            interval_set_elements_with_gap,
        ),
        gate::needs(
            "concat_range_set_header_and_elements",
            || gate::corpus("nft-tests-py"),
            |_| concat_range_set_header_and_elements(),
        ),
    ]);
}
