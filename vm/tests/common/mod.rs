//! Shared helpers for the vm integration tests: packet builders and one-rule programs.
#![allow(dead_code)]

use nfr_vm::insn::*;
use nfr_vm::pkt::{NFPROTO_IPV4, PktState};
use nfr_vm::program::Policy;
use nfr_vm::{ChainId, ChainVerdict, Effects, Hook, Program, Reg, State, Verdict, VerifiedProgram};

pub const R0: Reg = Reg(0);

/// An Ethernet + IPv4 + TCP/UDP packet; `PktState` filled accordingly (link header present).
pub fn ipv4_l4(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> (Vec<u8>, PktState) {
    let mut p = vec![0u8; 14];
    p[12] = 0x08;
    p[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    let l4len = if proto == 6 { 20 } else { 8 };
    let total = 20 + l4len;
    let mut ip = vec![0x45, 0x00];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    p.extend_from_slice(&ip);
    let mut l4 = vec![0u8; l4len];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        l4[12] = 0x50;
        l4[13] = 0x02; // SYN
    }
    p.extend_from_slice(&l4);
    let st = PktState {
        has_ll: true,
        lloff: 0,
        nhoff: 14,
        thoff: 34,
        has_th: true,
        l4proto: proto,
        nfproto: NFPROTO_IPV4,
        protocol: 0x0800,
        len: total as u32,
        ..Default::default()
    };
    (p, st)
}

/// TCP 10.0.0.1:1234 → 10.0.0.2:22.
pub fn tcp_syn() -> (Vec<u8>, PktState) {
    ipv4_l4(6, [10, 0, 0, 1], [10, 0, 0, 2], 1234, 22)
}

/// Program with one base chain (policy drop) holding one rule `insns` + accept.
pub fn accept_if(insns: Vec<Insn>) -> VerifiedProgram {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    let mut v = insns;
    v.push(Insn::ImmVerdict(ChainVerdict::Accept));
    p.add_rule(c, v);
    p.verify().expect("verifies")
}

/// Run chain 0 once.
pub fn run(vp: &VerifiedProgram, pkt: &[u8], st: &PktState) -> Verdict {
    let mut state = State::new(vp);
    let mut st = st.clone();
    let mut fx = Effects::default();
    vp.run(&mut state, ChainId(0), pkt, &mut st, &mut fx)
}

/// True when `insns` match the packet (accept) rather than fall to policy drop.
pub fn matches(insns: Vec<Insn>, pkt: &[u8], st: &PktState) -> bool {
    run(&accept_if(insns), pkt, st) == Verdict::Accept
}
