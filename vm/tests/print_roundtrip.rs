//! Printer fidelity over the whole nft-tests-py corpus: every expression line of every
//! `.t.payload*` file whose expression nfc supports is parsed back into an `Insn` (by the small
//! reader below, test-only) and printed again; the text must be identical. Ignored when the
//! corpus is absent.

#[path = "../../tests/gate.rs"]
mod gate;

use nfr_vm::insn::*;
use nfr_vm::pkt::{NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6};
use nfr_vm::print::print_insn;
use nfr_vm::program::{SetDataType, SetKind};
use nfr_vm::{ChainVerdict, Program, Reg, Set};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn reg(s: &str) -> Option<Reg> {
    Reg::from_uapi(s.parse().ok()?)
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

fn data(words: &[&str]) -> Option<Data> {
    let mut b = Vec::new();
    for w in words {
        b.extend_from_slice(&hex(w)?.to_le_bytes());
    }
    Data::new(&b)
}

fn base(s: &str) -> Option<PayloadBase> {
    Some(match s {
        "link" => PayloadBase::Link,
        "network" => PayloadBase::Network,
        "transport" => PayloadBase::Transport,
        _ => return None,
    })
}

fn meta_key(s: &str) -> Option<MetaKey> {
    use MetaKey::*;
    [
        Len, Protocol, Nfproto, L4proto, Mark, Iif, Oif, Iifname, Oifname, Iiftype, Oiftype,
        Pkttype, Skuid, Skgid,
    ]
    .into_iter()
    .find(|k| k.name() == s)
}

fn ct_key(s: &str) -> Option<CtKey> {
    use CtKey::*;
    [
        State, Direction, Status, Mark, Expiration, Helper, L3protocol, Src, Dst, Protocol,
        ProtoSrc, ProtoDst, Zone, Id, SrcIp, DstIp, SrcIp6, DstIp6,
    ]
    .into_iter()
    .find(|k| k.name() == s)
}

/// Parse one `[ ... ]` line; `None` for expressions nfc does not support.
fn parse(p: &mut Program, line: &str) -> Option<Insn> {
    let inner = line.strip_prefix("[ ")?.strip_suffix(" ]")?;
    let t: Vec<&str> = inner.split(' ').collect();
    let at = |i: usize| t.get(i).copied().unwrap_or("");
    Some(match (at(0), at(1)) {
        ("payload", "load") => {
            let len = at(2).strip_suffix('b')?.parse().ok()?;
            Insn::Payload {
                base: base(at(4))?,
                offset: at(7).parse().ok()?,
                len,
                dreg: reg(at(10))?,
            }
        }
        ("payload", "write") => Insn::PayloadWrite {
            sreg: reg(at(3))?,
            len: at(5).strip_suffix('b')?.parse().ok()?,
            base: base(at(7))?,
            offset: at(10).parse().ok()?,
            csum_type: at(12).parse().ok()?,
            csum_offset: at(14).parse().ok()?,
            csum_flags: hex(at(16))?,
        },
        ("meta", "load") if t.len() == 6 => Insn::Meta {
            key: meta_key(at(2))?,
            dreg: reg(at(5))?,
        },
        ("meta", "set") => {
            let key = match at(2) {
                "mark" => MetaSetKey::Mark,
                "priority" => MetaSetKey::Priority,
                "pkttype" => MetaSetKey::Pkttype,
                "nftrace" => MetaSetKey::Nftrace,
                _ => return None,
            };
            Insn::MetaSet {
                key,
                sreg: reg(at(5))?,
            }
        }
        ("ct", "load") => {
            let dir = match (at(6), at(7), at(8)) {
                ("", _, _) => None,
                (",", "dir", "original") => Some(CtDir::Original),
                (",", "dir", "reply") => Some(CtDir::Reply),
                _ => return None,
            };
            Insn::Ct {
                key: ct_key(at(2))?,
                dir,
                dreg: reg(at(5))?,
            }
        }
        ("ct", "set") => {
            let key = match at(2) {
                "mark" => CtSetKey::Mark,
                "zone" => CtSetKey::Zone,
                _ => return None,
            };
            Insn::CtSet {
                key,
                sreg: reg(at(5))?,
            }
        }
        ("cmp", op) => {
            let op = [
                CmpOp::Eq,
                CmpOp::Neq,
                CmpOp::Lt,
                CmpOp::Lte,
                CmpOp::Gt,
                CmpOp::Gte,
            ]
            .into_iter()
            .find(|o| o.name() == op)?;
            Insn::Cmp {
                op,
                sreg: reg(at(3))?,
                data: data(&t[4..])?,
            }
        }
        ("range", op) => {
            let op = if op == "eq" {
                RangeOp::Eq
            } else {
                RangeOp::Neq
            };
            let w = &t[4..];
            let (a, b) = w.split_at(w.len() / 2);
            Insn::range(op, reg(at(3))?, data(a)?, data(b)?)
        }
        ("bitwise", "reg") => {
            let dreg = reg(at(2))?;
            let sreg = reg(at(6))?;
            let op = match at(7) {
                "&" if at(8).starts_with("0x") => {
                    let close = t.iter().position(|x| *x == ")")?;
                    let mask = data(&t[8..close])?;
                    let xor = data(&t[close + 2..])?;
                    let len = mask.len() as u8;
                    return Some(Insn::Bitwise {
                        sreg,
                        dreg,
                        len,
                        op: BitwiseOp::mask_xor(mask, xor),
                    });
                }
                "<<" => BitwiseOp::Lshift(hex(at(8))?),
                ">>" => BitwiseOp::Rshift(hex(at(8))?),
                "&" => BitwiseOp::And(reg(at(9))?),
                "|" => BitwiseOp::Or(reg(at(9))?),
                "^" => BitwiseOp::Xor(reg(at(9))?),
                _ => return None,
            };
            Insn::Bitwise {
                sreg,
                dreg,
                len: 4,
                op,
            }
        }
        ("byteorder", "reg") => {
            // byteorder reg D = hton(reg S, size, len)
            let (op, rest) = at(4).split_once("(reg")?;
            let _ = rest;
            let op = if op == "hton" {
                ByteorderOp::Hton
            } else {
                ByteorderOp::Ntoh
            };
            Insn::Byteorder {
                dreg: reg(at(2))?,
                op,
                sreg: reg(at(5).trim_end_matches(','))?,
                size: at(6).trim_end_matches(',').parse().ok()?,
                len: at(7).trim_end_matches(')').parse().ok()?,
            }
        }
        ("lookup", "reg") => {
            let name = at(4);
            let set = match p.sets.iter().position(|s| s.name == name) {
                Some(i) => nfr_vm::SetId(i as u32),
                None => p.add_set(Set::new(name, 4, SetDataType::Data(4), SetKind::Hash)),
            };
            let mut dest = LookupDest::None;
            let mut invert = false;
            let mut i = 5;
            while i < t.len() {
                match at(i) {
                    "dreg" => {
                        dest = if at(i + 1) == "0" {
                            LookupDest::Verdict
                        } else {
                            LookupDest::Reg(reg(at(i + 1))?)
                        };
                        i += 2;
                    }
                    "0x1" => {
                        invert = true;
                        i += 1;
                    }
                    _ => return None,
                }
            }
            Insn::Lookup {
                sreg: reg(at(2))?,
                set,
                dest,
                invert,
            }
        }
        ("immediate", "reg") if at(2) == "0" => {
            let v = match at(3) {
                "accept" => ChainVerdict::Accept,
                "drop" => ChainVerdict::Drop,
                "continue" => ChainVerdict::Continue,
                "return" => ChainVerdict::Return,
                "jump" | "goto" => {
                    let c = p.chain_by_name(at(5)).unwrap_or_else(|| p.add_chain(at(5)));
                    if at(3) == "jump" {
                        ChainVerdict::Jump(c)
                    } else {
                        ChainVerdict::Goto(c)
                    }
                }
                _ => return None,
            };
            Insn::ImmVerdict(v)
        }
        ("immediate", "reg") => Insn::Immediate {
            dreg: reg(at(2))?,
            data: data(&t[3..])?,
        },
        ("counter", "pkts") if at(2) == "0" && at(4) == "0" => Insn::Counter(p.add_counter()),
        ("reject", "type") => Insn::Reject {
            ty: at(2).parse().ok()?,
            code: at(4).parse().ok()?,
        },
        ("notrack", "") => Insn::Notrack,
        ("log", "") => Insn::Log(Box::default()),
        ("nat", kind) | ("masq" | "redir", kind) => {
            let (kind, family, mut i) = match at(0) {
                "nat" => {
                    let fam = match at(2) {
                        "ip" => NFPROTO_IPV4,
                        "ip6" => NFPROTO_IPV6,
                        "inet" => NFPROTO_INET,
                        _ => return None,
                    };
                    (
                        if kind == "snat" {
                            NatKind::Snat
                        } else {
                            NatKind::Dnat
                        },
                        fam,
                        3,
                    )
                }
                "masq" => (NatKind::Masquerade, NFPROTO_IPV4, 1),
                _ => (NatKind::Redirect, NFPROTO_IPV4, 1),
            };
            let mut n = NatSpec {
                kind,
                family,
                addr_min: None,
                addr_max: None,
                proto_min: None,
                proto_max: None,
                flags: 0,
            };
            while i < t.len() {
                match at(i) {
                    "addr_min" => n.addr_min = Some(reg(at(i + 2))?),
                    "addr_max" => n.addr_max = Some(reg(at(i + 2))?),
                    "proto_min" => n.proto_min = Some(reg(at(i + 2))?),
                    "proto_max" => n.proto_max = Some(reg(at(i + 2))?),
                    "flags" => {
                        n.flags = hex(at(i + 1))?;
                        i += 2;
                        continue;
                    }
                    _ => return None,
                }
                i += 3;
            }
            Insn::Nat(n)
        }
        _ => return None,
    })
}

fn every_supported_corpus_line_prints_back_identically(dir: PathBuf) {
    let mut lines = BTreeSet::new();
    for fam in std::fs::read_dir(&dir).unwrap().flatten() {
        if !fam.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(fam.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if !name.contains(".t.payload") {
                continue;
            }
            let text = std::fs::read_to_string(f.path()).unwrap();
            for l in text.lines() {
                let l = l.trim();
                if l.starts_with("[ ") {
                    lines.insert(l.to_string());
                }
            }
        }
    }
    let mut p = Program::new();
    let (mut ok, mut unsupported) = (0, 0);
    let mut bad = Vec::new();
    for l in &lines {
        match parse(&mut p, l) {
            Some(insn) => {
                let got = print_insn(&p, &insn);
                if got == *l {
                    ok += 1;
                } else {
                    bad.push(format!("want {l}\n got {got}"));
                }
            }
            None => unsupported += 1,
        }
    }
    eprintln!(
        "printer round trip: {ok} identical, {unsupported} unsupported, {} different",
        bad.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(ok > 300, "too few supported lines: {ok}");
}

fn main() {
    gate::run(vec![gate::needs(
        "every_supported_corpus_line_prints_back_identically",
        || gate::corpus("nft-tests-py"),
        every_supported_corpus_line_prints_back_identically,
    )]);
}
