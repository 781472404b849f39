//! Printer in nft `--debug=netlink` style, exactly as libnftnl formats expressions (the
//! `.t.payload` files of nftables' tests/py): `[ payload load 2b @ transport header + 2 =>
//! reg 1 ]`, `[ cmp eq reg 1 0x00001600 ]`, … Registers print as uapi numbers (`Reg::uapi`),
//! data as little-endian host words (`0x%08x`), so the output does not depend on the machine.

use crate::ids::{RuleId, SetId};
use crate::insn::{
    BitwiseOp, ByteorderOp, Data, ExthdrOp, Insn, LimitType, LookupDest, NatKind, NumgenKind,
    PayloadBase, RangeOp,
};
use crate::pkt;
use crate::program::{ElemData, Program, SetKind};
use crate::verdict::ChainVerdict;
use std::fmt::Write;

fn data(out: &mut String, d: &Data) {
    for w in d.words() {
        let _ = write!(out, "0x{w:08x} ");
    }
}

fn base_name(b: PayloadBase) -> &'static str {
    match b {
        PayloadBase::Link => "link",
        PayloadBase::Network => "network",
        PayloadBase::Transport => "transport",
    }
}

fn verdict_str(prog: &Program, v: &ChainVerdict) -> String {
    let chain = |c: &crate::ids::ChainId| {
        prog.chains
            .get(c.0 as usize)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| format!("#{}", c.0))
    };
    match v {
        ChainVerdict::Continue => "continue".into(),
        ChainVerdict::Break => "break".into(),
        ChainVerdict::Accept => "accept".into(),
        ChainVerdict::Drop => "drop".into(),
        ChainVerdict::Stolen => "stolen".into(),
        ChainVerdict::Queue { .. } => "queue".into(),
        ChainVerdict::Repeat => "repeat".into(),
        ChainVerdict::Jump(c) => format!("jump -> {}", chain(c)),
        ChainVerdict::Goto(c) => format!("goto -> {}", chain(c)),
        ChainVerdict::Return => "return".into(),
    }
}

/// A set's name as `nft --debug=netlink` prints it in a lookup, `?` for an id the program lacks.
fn set_name(prog: &Program, set: SetId) -> &str {
    prog.sets
        .get(set.0 as usize)
        .map_or("?", |s| s.name.as_str())
}

fn family_name(f: u8) -> &'static str {
    match f {
        pkt::NFPROTO_IPV4 => "ip",
        pkt::NFPROTO_IPV6 => "ip6",
        pkt::NFPROTO_INET => "inet",
        _ => "unknown",
    }
}

fn unit_name(u: u64) -> String {
    match u {
        1 => "second".into(),
        60 => "minute".into(),
        3600 => "hour".into(),
        86400 => "day".into(),
        604800 => "week".into(),
        _ => "error".into(),
    }
}

/// One expression as libnftnl prints it, `[ ... ]` without indentation or newline.
pub fn print_insn(prog: &Program, insn: &Insn) -> String {
    let mut o = String::from("[ ");
    match insn {
        Insn::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            let _ = write!(
                o,
                "payload load {len}b @ {} header + {offset} => reg {} ",
                base_name(*base),
                dreg.uapi()
            );
        }
        Insn::PayloadWrite {
            base,
            offset,
            len,
            sreg,
            csum_type,
            csum_offset,
            csum_flags,
        } => {
            let _ = write!(
                o,
                "payload write reg {} => {len}b @ {} header + {offset} csum_type {csum_type} \
                 csum_off {csum_offset} csum_flags 0x{csum_flags:x} ",
                sreg.uapi(),
                base_name(*base)
            );
        }
        Insn::Meta { key, dreg } => {
            let _ = write!(o, "meta load {} => reg {} ", key.name(), dreg.uapi());
        }
        Insn::Numgen {
            dreg,
            kind,
            modulus,
            offset,
        } => {
            let ty = match kind {
                NumgenKind::Inc { .. } => "inc",
                NumgenKind::Random => "random",
            };
            let _ = write!(o, "numgen reg {} = {ty} mod {modulus} ", dreg.uapi());
            if *offset != 0 {
                let _ = write!(o, "offset {offset} ");
            }
        }
        Insn::FibType { dreg, daddr } => {
            let f = if *daddr { "daddr" } else { "saddr" };
            let _ = write!(o, "fib {f} type => reg {} ", dreg.uapi());
        }
        Insn::MetaSet { key, sreg } => {
            let _ = write!(o, "meta set {} with reg {} ", key.name(), sreg.uapi());
        }
        Insn::Ct { key, dir, dreg } => {
            let _ = write!(o, "ct load {} => reg {} ", key.name(), dreg.uapi());
            if let Some(d) = dir {
                let _ = write!(o, ", dir {} ", d.as_str());
            }
        }
        Insn::CtSet { key, sreg } => {
            let _ = write!(o, "ct set {} with reg {} ", key.name(), sreg.uapi());
        }
        Insn::Cmp { op, sreg, data: d } => {
            let _ = write!(o, "cmp {} reg {} ", op.name(), sreg.uapi());
            data(&mut o, d);
        }
        Insn::Range { op, sreg, bounds } => {
            let (from, to) = (&bounds.from, &bounds.to);
            let op = match op {
                RangeOp::Eq => "eq",
                RangeOp::Neq => "neq",
            };
            let _ = write!(o, "range {op} reg {} ", sreg.uapi());
            data(&mut o, from);
            data(&mut o, to);
        }
        Insn::Bitwise { sreg, dreg, op, .. } => {
            let _ = write!(o, "bitwise reg {} = ( reg {} ", dreg.uapi(), sreg.uapi());
            match op {
                BitwiseOp::MaskXor(mx) => {
                    let (mask, xor) = (&mx.mask, &mx.xor);
                    o.push_str("& ");
                    data(&mut o, mask);
                    o.push_str(") ^ ");
                    data(&mut o, xor);
                }
                BitwiseOp::Lshift(n) => {
                    let _ = write!(o, "<< 0x{n:08x} ) ");
                }
                BitwiseOp::Rshift(n) => {
                    let _ = write!(o, ">> 0x{n:08x} ) ");
                }
                BitwiseOp::And(r) => {
                    let _ = write!(o, "& reg {} ) ", r.uapi());
                }
                BitwiseOp::Or(r) => {
                    let _ = write!(o, "| reg {} ) ", r.uapi());
                }
                BitwiseOp::Xor(r) => {
                    let _ = write!(o, "^ reg {} ) ", r.uapi());
                }
            }
        }
        Insn::Byteorder {
            sreg,
            dreg,
            op,
            len,
            size,
        } => {
            let op = match op {
                ByteorderOp::Ntoh => "ntoh",
                ByteorderOp::Hton => "hton",
            };
            let _ = write!(
                o,
                "byteorder reg {} = {op}(reg {}, {size}, {len}) ",
                dreg.uapi(),
                sreg.uapi()
            );
        }
        Insn::Lookup {
            sreg,
            set,
            dest,
            invert,
        } => {
            let name = set_name(prog, *set);
            let _ = write!(o, "lookup reg {} set {name} ", sreg.uapi());
            match dest {
                LookupDest::None => {}
                LookupDest::Reg(r) => {
                    let _ = write!(o, "dreg {} ", r.uapi());
                }
                LookupDest::Verdict => o.push_str("dreg 0 "),
            }
            if *invert {
                o.push_str("0x1 ");
            }
        }
        Insn::Objref { sreg, set } => {
            let name = set_name(prog, *set);
            let _ = write!(o, "objref sreg {} set {name} ", sreg.uapi());
        }
        Insn::Dynset {
            op,
            sreg,
            set,
            sreg_data,
            timeout_ms,
        } => {
            // nftnl_expr_dynset_snprintf: the timeout only when the statement gives one.
            let name = set_name(prog, *set);
            let _ = write!(
                o,
                "dynset {} reg_key {} set {name} ",
                op.name(),
                sreg.uapi()
            );
            if let Some(d) = sreg_data {
                let _ = write!(o, "sreg_data {} ", d.uapi());
            }
            if *timeout_ms > 0 {
                let _ = write!(o, "timeout {timeout_ms}ms ");
            }
        }
        Insn::Immediate { dreg, data: d } => {
            let _ = write!(o, "immediate reg {} ", dreg.uapi());
            data(&mut o, d);
        }
        Insn::ImmVerdict(v) => {
            let _ = write!(o, "immediate reg 0 {} ", verdict_str(prog, v));
        }
        Insn::Counter(c) => {
            let c = prog.counters.get(c.0 as usize).copied().unwrap_or_default();
            let _ = write!(o, "counter pkts {} bytes {} ", c.packets, c.bytes);
        }
        Insn::Limit(l) => {
            if let Some(l) = prog.limits.get(l.0 as usize) {
                let _ = write!(
                    o,
                    "limit rate {}/{} burst {} type {} flags 0x{:x} ",
                    l.rate,
                    unit_name(l.unit),
                    l.burst,
                    match l.ty {
                        LimitType::Packets => "packets",
                        LimitType::Bytes => "bytes",
                    },
                    u32::from(l.invert)
                );
            } else {
                o.push_str("limit ");
            }
        }
        Insn::Log(l) => {
            o.push_str("log ");
            if let Some(p) = &l.prefix {
                let _ = write!(o, "prefix {p} ");
            }
            if let Some(g) = l.group {
                let _ = write!(
                    o,
                    "group {g} snaplen {} qthreshold {} ",
                    l.snaplen, l.qthreshold
                );
            } else {
                if let Some(lv) = l.level {
                    let _ = write!(o, "level {lv} ");
                }
                if l.flags != 0 {
                    let _ = write!(o, "flags {} ", l.flags);
                }
            }
        }
        Insn::Reject { ty, code } => {
            let _ = write!(o, "reject type {ty} code {code} ");
        }
        Insn::Notrack => o.push_str("notrack "),
        Insn::Exthdr {
            op,
            ty,
            offset,
            len,
            dreg,
            present,
        } => {
            let op = match op {
                ExthdrOp::Ipv6 => " ipv6",
                ExthdrOp::Tcpopt => " tcpopt",
            };
            let _ = write!(
                o,
                "exthdr load{op} {len}b @ {ty} + {offset}{} => reg {} ",
                if *present { " present" } else { "" },
                dreg.uapi()
            );
        }
        Insn::Queue {
            num,
            total,
            bypass,
            fanout,
        } => {
            let _ = write!(o, "queue num {num}");
            if *total > 1 {
                let _ = write!(o, "-{}", u32::from(*num) + u32::from(*total) - 1);
            }
            o.push(' ');
            if *bypass {
                o.push_str("bypass ");
            }
            if *fanout {
                o.push_str("fanout ");
            }
        }
        Insn::Nat(n) => {
            match n.kind {
                NatKind::Snat | NatKind::Dnat => {
                    let _ = write!(
                        o,
                        "nat {} {} ",
                        if n.kind == NatKind::Snat {
                            "snat"
                        } else {
                            "dnat"
                        },
                        family_name(n.family)
                    );
                    if let Some(r) = n.addr_min {
                        let _ = write!(o, "addr_min reg {} ", r.uapi());
                    }
                    if let Some(r) = n.addr_max {
                        let _ = write!(o, "addr_max reg {} ", r.uapi());
                    }
                }
                NatKind::Masquerade => o.push_str("masq "),
                NatKind::Redirect => o.push_str("redir "),
            }
            if let Some(r) = n.proto_min {
                let _ = write!(o, "proto_min reg {} ", r.uapi());
            }
            if let Some(r) = n.proto_max {
                let _ = write!(o, "proto_max reg {} ", r.uapi());
            }
            if n.flags != 0 {
                let _ = write!(o, "flags 0x{:x} ", n.flags);
            }
        }
    }
    o.push(']');
    o
}

/// A rule's expressions, one `  [ ... ]\n` line each (the body of a `.t.payload` record).
pub fn print_rule(prog: &Program, rule: RuleId) -> String {
    let mut o = String::new();
    for insn in prog.rule_insns(rule) {
        o.push_str("  ");
        o.push_str(&print_insn(prog, insn));
        o.push('\n');
    }
    o
}

fn key_words(o: &mut String, key: &[u8]) {
    for c in key.chunks(4) {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        let _ = write!(o, "{:08x} ", u32::from_le_bytes(w));
    }
}

fn elem(o: &mut String, prog: &Program, key: &[u8], d: &ElemData, flags: u32) {
    o.push_str("\telement ");
    key_words(o, key);
    o.push_str(" : ");
    elem_data(o, prog, d);
    let _ = write!(o, "{flags} [end]");
}

fn elem_data(o: &mut String, prog: &Program, d: &ElemData) {
    match d {
        ElemData::None => {}
        ElemData::Data(x) => {
            for w in x.words() {
                let _ = write!(o, "{w:08x} ");
            }
        }
        ElemData::Verdict(v) => {
            let _ = write!(o, "{} ", verdict_str(prog, v));
        }
        // libnftnl prints no data for object-map elements.
        ElemData::Object(_) => {}
    }
}

/// The two set header lines nft's test harness prints before a rule using an anonymous set:
/// `{name} {table} {flags:x}[ size N]` and `{name} {table} 0`.
pub fn print_set_header(prog: &Program, set: SetId, table: &str) -> String {
    let Some(s) = prog.sets.get(set.0 as usize) else {
        return String::new();
    };
    let mut o = format!("{} {table} {:x}", s.name, s.flags);
    if let Some(n) = s.size {
        let _ = write!(o, " size {n}");
    }
    let _ = write!(o, "\n{} {table} 0\n", s.name);
    o
}

/// A set's elements on one line as nft's test harness prints them (`\telement 00001600  : 0
/// [end]…`). Concatenated ranges print `from - to : data 0 [end]`. Interval sets print nft's start/end-element form: `from : 0` then `to + 1 : 1`
/// (NFT_SET_ELEM_INTERVAL_END), with a leading zero end-element when the first interval does
/// not start at 0.
pub fn print_set_elements(prog: &Program, set: SetId) -> String {
    let mut o = String::new();
    let Some(s) = prog.sets.get(set.0 as usize) else {
        return o;
    };
    match s.kind {
        SetKind::Hash => {
            for (k, d) in s.hash_elems() {
                elem(&mut o, prog, k, d, 0);
            }
        }
        SetKind::Interval => {
            let zero = vec![0u8; usize::from(s.key_len)];
            if s.interval_elems().next().is_some_and(|e| *e.from != *zero) {
                elem(&mut o, prog, &zero, &ElemData::None, 1);
            }
            for (i, e) in s.interval_elems().enumerate() {
                elem(&mut o, prog, e.from, e.data, 0);
                let mut next = e.to.to_vec();
                let mut carry = true;
                for b in next.iter_mut().rev() {
                    if carry {
                        let (v, c) = b.overflowing_add(1);
                        *b = v;
                        carry = c;
                    }
                }
                let adjacent = s.interval_elem(i + 1).is_some_and(|n| *n.from == *next);
                if !carry && !adjacent {
                    elem(&mut o, prog, &next, &ElemData::None, 1);
                }
            }
        }
        SetKind::ConcatInterval { .. } => {
            for e in s.interval_elems() {
                o.push_str("\telement ");
                key_words(&mut o, e.from);
                o.push_str(" - ");
                key_words(&mut o, e.to);
                o.push_str(" : ");
                elem_data(&mut o, prog, e.data);
                o.push_str("0 [end]");
            }
        }
    }
    // The catch-all element: no key, flag NFT_SET_ELEM_CATCHALL (2).
    if let Some(d) = &s.catchall {
        elem(&mut o, prog, &[], d, 2);
    }
    o
}

/// A whole program: chains with their rules' expressions (for goldens and debugging).
pub fn print_program(prog: &Program) -> String {
    let mut o = String::new();
    for (si, s) in prog.sets.iter().enumerate() {
        let _ = writeln!(o, "{} {:x}", s.name, s.flags);
        o.push_str(&print_set_elements(prog, SetId(si as u32)));
        o.push('\n');
    }
    for c in &prog.chains {
        let _ = writeln!(o, "chain {}", c.name);
        for &r in &c.rules {
            o.push_str(&print_rule(prog, r));
        }
    }
    o
}

/// The classifiers of a program, one paragraph each: the chain and rule run, the key's
/// dimensions, each tree's size and depth, and how many rules run from their row (exact
/// analysis, simple tail) or from their first instruction (`nfc compile --emit classify`).
pub fn print_classifiers(p: &Program) -> String {
    use crate::classify::{Field, LEAF, node_parts};
    use std::fmt::Write as _;
    let mut o = String::new();
    if p.classifiers.is_empty() {
        o.push_str("no classifiers\n");
    }
    for (k, c) in p.classifiers.iter().enumerate() {
        let chain = p
            .chains
            .get(c.chain.0 as usize)
            .map_or("?", |c| c.name.as_str());
        let rows = c.rules.iter().filter(|r| r.exact && r.simple).count();
        let _ = writeln!(
            o,
            "classifier {k}: chain {chain}, rules {}..{} ({} rules: {rows} from their row, {} run), {} bytes",
            c.start,
            c.end,
            c.len(),
            c.len() - rows,
            c.bytes()
        );
        for (d, dim) in c.dims.iter().enumerate() {
            let f = match dim.field {
                Field::Payload { base, off, len } => {
                    let b = match base {
                        PayloadBase::Link => "link",
                        PayloadBase::Network => "network",
                        PayloadBase::Transport => "transport",
                    };
                    format!("payload {len}b @ {b} header + {off}")
                }
                Field::Meta { key, word } => format!("meta {} word {word}", key.name()),
                Field::Ct { key, word, .. } => format!("ct {} word {word}", key.name()),
            };
            let m = if dim.mask == dim.max() {
                String::new()
            } else {
                format!(" & 0x{:x}", dim.mask)
            };
            let _ = writeln!(o, "  dim {d}: {f}{m}");
        }
        for (i, t) in c.trees.iter().enumerate() {
            // Depth and leaves by a walk of the node table.
            let (mut depth, mut leaves, mut entries) = (0usize, 0usize, 0usize);
            let mut stack = vec![(t.root, 0usize)];
            let mut seen = std::collections::HashSet::new();
            while let Some((ptr, dp)) = stack.pop() {
                if !seen.insert(ptr) {
                    continue;
                }
                depth = depth.max(dp);
                if ptr & LEAF != 0 {
                    leaves += 1;
                    let quads = t.leaves.get((ptr & !LEAF) as usize).copied().unwrap_or(0);
                    entries += quads as usize * crate::classify::QUAD;
                } else {
                    let (base, nb, _, _) = node_parts(ptr);
                    for j in 0..1usize << nb {
                        if let Some(&q) = t.nodes.get(base + j) {
                            stack.push((q, dp + 1));
                        }
                    }
                }
            }
            let _ = writeln!(
                o,
                "  tree {i}: from rule {}, depth {depth}, {} node slots, {leaves} leaves, {entries} entry places, {} bytes",
                t.min_pos,
                t.nodes.len(),
                t.bytes()
            );
        }
    }
    o
}
