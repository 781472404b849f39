//! The chain-call cases shared by `benches/chain_call.rs` and `examples/chain_profile.rs`: a base
//! chain (policy accept) with `rules` copies of `meta l4proto tcp tcp dport 22 counter accept`,
//! and a raw IPv4/TCP packet to a port.

use nfr_vm::insn::{Data, Insn, MetaKey, PayloadBase};
use nfr_vm::program::Policy;
use nfr_vm::{ChainVerdict, Hook, PktState, Program, Reg, VerifiedProgram};

/// `(name, rules, dport)`: no rule; one rule the packet misses (the policy); one it hits.
pub const CASES: [(&str, usize, u16); 3] = [("empty", 0, 80), ("miss", 1, 80), ("hit", 1, 22)];

pub fn program(rules: usize) -> VerifiedProgram {
    let mut p = Program::new();
    let input = p.add_base_chain("input", Hook::Input, 0, Policy::Accept);
    for _ in 0..rules {
        let c = p.add_counter();
        p.add_rule(
            input,
            vec![
                Insn::meta(MetaKey::L4proto, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::u8(6)),
                Insn::payload(PayloadBase::Transport, 2, 2, Reg(0)),
                Insn::cmp_eq(Reg(0), Data::be16(22)),
                Insn::Counter(c),
                Insn::ImmVerdict(ChainVerdict::Accept),
            ],
        );
    }
    p.verify().expect("valid program")
}

/// A raw IPv4/TCP packet to `dport`.
pub fn packet(dport: u16) -> (Vec<u8>, PktState) {
    let mut pkt = vec![0u8; 40];
    pkt[0] = 0x45;
    pkt[9] = 6;
    pkt[22..24].copy_from_slice(&dport.to_be_bytes());
    let st = PktState {
        thoff: 20,
        has_th: true,
        l4proto: 6,
        len: 40,
        nfproto: nfr_vm::pkt::NFPROTO_IPV4,
        ..Default::default()
    };
    (pkt, st)
}
