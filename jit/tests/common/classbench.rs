//! ClassBench rule sets (Song format, `shared/corpus/classbench/song-filterset`) converted
//! directly to Program instructions (as nft would lower `ip saddr P ip daddr P ip protocol X
//! th sport A-B th dport C-D accept`), and trace lines converted to IPv4 packets.
#![allow(dead_code)]

use nfr_vm::insn::{BitwiseOp, Data, Insn, PayloadBase, RangeOp};
use nfr_vm::program::Policy;
use nfr_vm::{ChainVerdict, Hook, PktState, Program, Reg, VerifiedProgram};
use std::path::PathBuf;

/// `../shared/corpus/classbench/song-filterset` next to the workspace (or `$NFC_CLASSBENCH_DIR`),
/// if present.
pub fn dir() -> Option<PathBuf> {
    let d = match std::env::var_os("NFC_CLASSBENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("NFC_SHARED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
            .join("corpus/classbench/song-filterset"),
    };
    d.is_dir().then_some(d)
}

/// One rule: (src, plen), (dst, plen), sport lo..=hi, dport lo..=hi, (proto, mask).
#[derive(Clone, Copy, Debug)]
pub struct CbRule {
    pub src: (u32, u32),
    pub dst: (u32, u32),
    pub sport: (u16, u16),
    pub dport: (u16, u16),
    pub proto: (u8, u8),
}

fn prefix(s: &str) -> Option<(u32, u32)> {
    let (a, l) = s.split_once('/')?;
    let mut v = 0u32;
    for p in a.split('.') {
        v = (v << 8) | p.parse::<u32>().ok()?;
    }
    Some((v, l.parse().ok()?))
}

fn hex(s: &str) -> Option<u8> {
    u8::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
}

/// Parse a Song-format rule file.
pub fn parse_rules(text: &str) -> Vec<CbRule> {
    text.lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.trim_start_matches('@').split_whitespace().collect();
            if t.len() < 9 {
                return None;
            }
            let (p, m) = t[8].split_once('/')?;
            Some(CbRule {
                src: prefix(t[0])?,
                dst: prefix(t[1])?,
                sport: (t[2].parse().ok()?, t[4].parse().ok()?),
                dport: (t[5].parse().ok()?, t[7].parse().ok()?),
                proto: (hex(p)?, hex(m)?),
            })
        })
        .collect()
}

/// Parse a trace: `sip dip sport dport proto filter_no`.
pub fn parse_trace(text: &str) -> Vec<(u32, u32, u16, u16, u8)> {
    text.lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            Some((
                t.first()?.parse().ok()?,
                t.get(1)?.parse().ok()?,
                t.get(2)?.parse().ok()?,
                t.get(3)?.parse().ok()?,
                t.get(4)?.parse().ok()?,
            ))
        })
        .collect()
}

fn addr_match(v: &mut Vec<Insn>, off: u32, (a, plen): (u32, u32)) {
    if plen == 0 {
        return;
    }
    v.push(Insn::payload(PayloadBase::Network, off, 4, Reg(0)));
    let mask = if plen >= 32 {
        u32::MAX
    } else {
        !(u32::MAX >> plen)
    };
    if plen < 32 {
        v.push(Insn::Bitwise {
            sreg: Reg(0),
            dreg: Reg(0),
            len: 4,
            op: BitwiseOp::mask_xor(Data::be32(mask), Data::be32(0)),
        });
    }
    v.push(Insn::cmp_eq(Reg(0), Data::be32(a & mask)));
}

fn port_match(v: &mut Vec<Insn>, off: u32, (lo, hi): (u16, u16)) {
    if lo == 0 && hi == 65535 {
        return;
    }
    v.push(Insn::payload(PayloadBase::Transport, off, 2, Reg(0)));
    if lo == hi {
        v.push(Insn::cmp_eq(Reg(0), Data::be16(lo)));
    } else {
        v.push(Insn::range(
            RangeOp::Eq,
            Reg(0),
            Data::be16(lo),
            Data::be16(hi),
        ));
    }
}

/// One base chain (policy drop), one rule per ClassBench rule, first `n` rules, in order;
/// rule i ends with a counter and accept (even i) or drop (odd i).
pub fn program(rules: &[CbRule], n: usize) -> VerifiedProgram {
    let mut p = Program::new();
    let c = p.add_base_chain("input", Hook::Input, 0, Policy::Drop);
    for (i, r) in rules.iter().take(n).enumerate() {
        let mut v = Vec::new();
        addr_match(&mut v, 12, r.src);
        addr_match(&mut v, 16, r.dst);
        if r.proto.1 == 0xff {
            v.push(Insn::payload(PayloadBase::Network, 9, 1, Reg(0)));
            v.push(Insn::cmp_eq(Reg(0), Data::u8(r.proto.0)));
        }
        port_match(&mut v, 0, r.sport);
        port_match(&mut v, 2, r.dport);
        let ctr = p.add_counter();
        v.push(Insn::Counter(ctr));
        v.push(Insn::ImmVerdict(if i % 2 == 0 {
            ChainVerdict::Accept
        } else {
            ChainVerdict::Drop
        }));
        p.add_rule(c, v);
    }
    p.verify().expect("classbench program verifies")
}

/// A raw IPv4 packet (20-byte header + 8 bytes of L4) for a trace line.
pub fn packet((sip, dip, sp, dp, proto): (u32, u32, u16, u16, u8)) -> (Vec<u8>, PktState) {
    let mut b = vec![0u8; 28];
    b[0] = 0x45;
    b[2..4].copy_from_slice(&28u16.to_be_bytes());
    b[9] = proto;
    b[12..16].copy_from_slice(&sip.to_be_bytes());
    b[16..20].copy_from_slice(&dip.to_be_bytes());
    b[20..22].copy_from_slice(&sp.to_be_bytes());
    b[22..24].copy_from_slice(&dp.to_be_bytes());
    let st = PktState {
        thoff: 20,
        has_th: true,
        l4proto: proto,
        len: 28,
        ..Default::default()
    };
    (b, st)
}
