//! Hir → `vm::Program`, linearized the way nftables' `src/netlink_linearize.c` does it, so
//! that the printed Program equals nft's `--debug=netlink` bytecode (the `.t.payload` files).
//!
//! - Registers are handed out like a stack (`get_register`/`release_register`): every match
//!   or statement operand takes 16 bytes (4 × 32-bit registers) starting at `NFT_REG_1`, a
//!   concatenation takes its padded length; after the expression the space is released, so
//!   consecutive matches all use `reg 1`.
//! - Protocol dependencies are the checker's implicit matches (`meta l4proto`, `meta
//!   nfproto`; `Rule::items_with_deps`), lowered in place like any other match.
//! - Adjacent byte-aligned payload equality matches are merged into one wider load exactly
//!   when nft's `stmt_reduce()` / `payload_can_merge()` would merge them.
//! - Prefixes: a byte-aligned big-endian prefix is a shorter load + `cmp` (a /24 is a 3-byte
//!   load); anything else a full load + `bitwise` + `cmp`. Ranges are `range`; host-order
//!   values (marks, lengths) get a `byteorder hton` before ranges, `<`/`>` and interval sets.
//! - Flag tests (`ct state established,related`) are `bitwise & mask` + `cmp neq 0`.
//! - Anonymous sets/maps become Program-owned sets named `__set%d` / `__map%d`.
//!
//! Every instruction records the source span of the match/statement it came from (the debug
//! table, `Program::spans`).

use crate::diag::Span;
use crate::hir::{
    self, BitOp, Element, ElementsRef, Expr, ExprKind, Family, Hir, Item, KeyPart, MapData, Match,
    NatKind, ObjKind, ObjTarget, Op, Operand, RejectKind, Rhs, Rule, StmtKind, Type, Value,
    Verdict, VerdictKind, VmapRef,
};
use nfr_grammar::catalog::{self, ByteOrder};
use nfr_vm::dynset::{DEFAULT_SIZE, DynSpec};
use nfr_vm::insn::{
    BitwiseOp, ByteorderOp, CmpOp, CtKey as VCtKey, CtSetKey, Data, DynsetOp, Insn, LimitSpec,
    LimitType, LogSpec, LookupDest, MetaSetKey, NatSpec, NumgenKind, PayloadBase, RangeOp,
};
use nfr_vm::pkt::{NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6};
use nfr_vm::program::{ElemData, Obj, ObjType, Policy, SetDataType, SetKind};
use nfr_vm::{
    ChainId, ChainVerdict, CounterId, Program, Reg, Set, SetId, VerifiedProgram, VerifyError,
};
use std::borrow::Cow;
use std::fmt;

/// What went wrong while lowering.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LowerErrorKind {
    /// A construct the bytecode lowering does not support (yet).
    Unsupported(String),
    /// The rule needs more than the 16 data registers.
    TooManyRegisters,
    /// A constant longer than 16 bytes (`struct nft_data`).
    DataTooLong,
    /// The lowered program failed `Program::verify` (a lowering bug).
    Verify(VerifyError),
}

/// A lowering error with the source span of the construct, if known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerError {
    pub span: Option<Span>,
    pub kind: LowerErrorKind,
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LowerErrorKind::Unsupported(s) => {
                write!(f, "not supported by the bytecode lowering: {s}")
            }
            LowerErrorKind::TooManyRegisters => write!(f, "rule needs more than 16 registers"),
            LowerErrorKind::DataTooLong => write!(f, "constant longer than 16 bytes"),
            LowerErrorKind::Verify(e) => write!(f, "lowered program does not verify: {e}"),
        }
    }
}

impl std::error::Error for LowerError {}

fn unsupported(span: Span, what: impl Into<String>) -> LowerError {
    LowerError {
        span: Some(span),
        kind: LowerErrorKind::Unsupported(what.into()),
    }
}

type R<T> = Result<T, LowerError>;
/// The debug table of one rule: a source span per instruction.
type Spans = Vec<Option<(u32, u32)>>;

/// Lower a checked ruleset. Chains keep their Hir index (`hir::ChainId(n)` is
/// `vm::ChainId(n)`); rules keep their order. The result is not verified yet.
pub fn lower(hir: &Hir) -> Result<Program, LowerError> {
    let mut lw = Lower {
        hir,
        prog: Program::new(),
        named: Vec::new(),
        anon_sets: 0,
        anon_maps: 0,
        anon_objmaps: 0,
        numgen_slots: 0,
    };
    // Named counter objects first: object `i` is `CounterId(i)`.
    for c in &hir.counters {
        let id = lw.prog.add_counter();
        if let Some(x) = lw.prog.counters.get_mut(id.0 as usize) {
            x.packets = c.packets;
            x.bytes = c.bytes;
        }
    }
    lw.chains()?;
    lw.named_sets()?;
    // Rule handles as `nft -a` shows them: one counter per table, in the order nft creates what the
    // table holds (its chains, its stateful objects, its named sets, then the rules chain by chain),
    // each anonymous set a rule uses taking a handle just before the rule's.
    let mut handle: Vec<u64> = hir
        .tables
        .iter()
        .map(|t| (t.chains.len() + t.objects as usize + t.sets.len()) as u64)
        .collect();
    // Room for what the rules lower to at least (a match loads and tests: two instructions; any other item
    // and a verdict, one), so that a large program is not copied as its vectors double.
    let rules = hir.chains.iter().flat_map(|c| &c.rules);
    let least: usize = rules
        .clone()
        .map(|r| {
            let items: usize = r
                .items
                .iter()
                .map(|i| if matches!(i, Item::Match(_)) { 2 } else { 1 })
                .sum();
            items + 2 * r.deps.iter().flatten().count() + usize::from(r.verdict.is_some())
        })
        .sum();
    lw.prog.insns.reserve(least);
    lw.prog.spans.reserve(least);
    lw.prog.rules.reserve(rules.count());
    for (ci, chain) in hir.chains.iter().enumerate() {
        let family = hir
            .table(chain.table)
            .map(|t| t.family)
            .unwrap_or(Family::Ip);
        for rule in &chain.rules {
            let sets = lw.prog.sets.len();
            let (insns, spans) = lw.rule(rule, family)?;
            let id = lw.prog.add_rule_spanned(
                ChainId(ci as u32),
                insns,
                spans,
                Some((rule.span.start, rule.span.end)),
            );
            if let Some(h) = handle.get_mut(chain.table.0 as usize) {
                *h += (lw.prog.sets.len() - sets) as u64 + 1;
                if let Some(r) = lw.prog.rules.get_mut(id.0 as usize) {
                    r.handle = *h;
                }
            }
        }
    }
    // the program outlives the Hir's lowering (the lint, the classifiers): without the doubling's spare half
    lw.prog.insns.shrink_to_fit();
    lw.prog.spans.shrink_to_fit();
    lw.prog.rules.shrink_to_fit();
    Ok(lw.prog)
}

/// [`lower`], then classifiers over the runs of rules they pay for (`Program::classify`), then
/// `Program::verify`.
pub fn lower_verified(hir: &Hir) -> Result<VerifiedProgram, LowerError> {
    classify_verified(lower(hir)?)
}

/// The second half of [`lower_verified`]: a lowered program with its classifiers, verified (for a
/// caller that drops the Hir before the classifiers are built).
pub fn classify_verified(mut prog: Program) -> Result<VerifiedProgram, LowerError> {
    prog.classify(&nfr_vm::classify::ClassifyOptions::default());
    prog.verify().map_err(|e| LowerError {
        span: None,
        kind: LowerErrorKind::Verify(e),
    })
}

/// A whole Program in nft `--debug=netlink` style, chain by chain: for each chain a
/// `table-family table chain` header line and each rule's expressions, with the anonymous
/// sets a rule uses printed before it (`__set%d table flags` + element lines), as nft's test
/// harness shows them.
pub fn print_program(hir: &Hir, prog: &Program) -> String {
    let mut o = String::new();
    let _ = write_program(&PrintNames::of(hir), prog, &mut o);
    o
}

/// What printing a program reads of its Hir: each chain's family and table name, the named counters.
pub struct PrintNames {
    chains: Vec<(&'static str, String)>,
    counters: Vec<String>,
}

impl PrintNames {
    pub fn of(hir: &Hir) -> PrintNames {
        PrintNames {
            chains: hir
                .chains
                .iter()
                .map(|c| {
                    hir.table(c.table).map_or(("ip", "?".to_string()), |t| {
                        (t.family.name(), t.name.clone())
                    })
                })
                .collect(),
            counters: hir.counters.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

/// [`print_program`] written rule by rule into `o` (a large program is never held as one text).
pub fn write_program(names: &PrintNames, prog: &Program, o: &mut dyn fmt::Write) -> fmt::Result {
    for (ci, chain) in prog.chains.iter().enumerate() {
        let (fam, table) = names
            .chains
            .get(ci)
            .map_or(("ip", "?"), |(f, t)| (*f, t.as_str()));
        for &r in &chain.rules {
            for insn in prog.rule_insns(r) {
                if let Insn::Lookup { set, .. } | Insn::Objref { set, .. } = insn
                    && let Some(s) = prog.sets.get(set.0 as usize)
                    && s.name.starts_with("__")
                {
                    o.write_str(&nfr_vm::print::print_set_header(prog, *set, table))?;
                    let el = nfr_vm::print::print_set_elements(prog, *set);
                    if !el.is_empty() {
                        o.write_str(&el)?;
                        o.write_char('\n')?;
                    }
                }
            }
            writeln!(o, "{fam} {table} {}", chain.name)?;
            let text = nfr_vm::print::print_rule(prog, r);
            let insns = prog.rule_insns(r);
            if text.lines().count() == insns.len() {
                // A named counter is nft's objref (`[ objref type 1 name NAME ]`, NFT_OBJECT_COUNTER).
                for (line, insn) in text.lines().zip(insns) {
                    match insn {
                        Insn::Counter(id) if (id.0 as usize) < names.counters.len() => {
                            let name = names.counters.get(id.0 as usize).map_or("", |c| c);
                            writeln!(o, "  [ objref type 1 name {name} ]")?;
                        }
                        _ => {
                            o.write_str(line)?;
                            o.write_char('\n')?;
                        }
                    }
                }
                if text.ends_with('\n') {
                    o.write_char('\n')?;
                }
            } else {
                o.write_str(&text)?;
                o.write_char('\n')?;
            }
        }
        if chain.rules.is_empty() {
            writeln!(o, "{fam} {table} {}\n", chain.name)?;
        }
    }
    Ok(())
}

struct Lower<'h> {
    hir: &'h Hir,
    prog: Program,
    /// vm set of each Hir named set.
    named: Vec<SetId>,
    anon_sets: u32,
    anon_maps: u32,
    anon_objmaps: u32,
    /// `numgen inc` counters handed out (`NumgenKind::Inc::slot`).
    numgen_slots: u32,
}

/// One key field as it sits in registers: its type, its length in bytes, how far a value
/// must be shifted left to sit in the loaded window (sub-byte fields), and whether a
/// host-order value is converted to big endian (`byteorder hton`) before use.
#[derive(Clone, Copy, Debug)]
struct Field {
    ty: Type,
    len: usize,
    shift: u32,
    hton: bool,
    /// Packet data is always big endian, whatever the datatype says.
    big: bool,
}

impl Field {
    fn plain(ty: Type) -> Field {
        Field {
            ty,
            len: ty.byte_len().max(1) as usize,
            shift: 0,
            hton: false,
            big: false,
        }
    }
    fn host(&self) -> bool {
        !self.big && self.ty.byteorder() == ByteOrder::Host
    }
    /// Host-order values longer than a byte are converted for ordered comparisons.
    fn needs_hton(&self) -> bool {
        self.host() && self.len > 1
    }
}

fn obj_type(k: ObjKind) -> ObjType {
    match k {
        ObjKind::Counter => ObjType::Counter,
        ObjKind::CtHelper => ObjType::CtHelper,
    }
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn words(n: usize) -> u8 {
    n.div_ceil(4).min(255) as u8
}

fn field_of(e: &Expr) -> Field {
    match &e.kind {
        ExprKind::Payload { .. } => {
            let (_, nbytes, _, shift) = e.load_window().unwrap_or((0, 1, None, 0));
            Field {
                ty: e.ty,
                len: nbytes as usize,
                shift,
                hton: false,
                big: true,
            }
        }
        ExprKind::Numgen { .. } | ExprKind::FibType { .. } => Field {
            ty: e.ty,
            len: 4,
            shift: 0,
            hton: false,
            big: false,
        },
        ExprKind::Meta { key } => Field {
            ty: e.ty,
            len: key.len_bits.div_ceil(8).max(1) as usize,
            shift: 0,
            hton: false,
            big: false,
        },
        ExprKind::Ct { key, .. } => {
            let len = if matches!(key.name, "saddr" | "daddr") {
                e.ty.byte_len() as usize
            } else {
                key.len_bits.div_ceil(8).max(1) as usize
            };
            Field {
                ty: e.ty,
                len,
                shift: 0,
                hton: false,
                big: false,
            }
        }
        ExprKind::Bitwise { expr, .. } => {
            let inner = field_of(expr);
            Field {
                ty: e.ty,
                len: inner.len.max(e.ty.byte_len() as usize),
                shift: 0,
                hton: false,
                big: inner.big && e.ty == expr.ty,
            }
        }
        ExprKind::Concat(_) => Field::plain(e.ty),
    }
}

/// The key fields of a set keyed by `key`; in an interval set, the fields stored big-endian (`hton`) and
/// whether any is (the key must then be converted before the lookup).
fn interval_fields(key: &Expr, interval: bool) -> (Vec<Field>, bool) {
    let mut fields = fields_of(key);
    let mut hton = false;
    if interval {
        for f in &mut fields {
            f.hton = f.needs_hton();
            hton |= f.hton;
        }
    }
    (fields, hton)
}

fn fields_of(e: &Expr) -> Vec<Field> {
    match &e.kind {
        ExprKind::Concat(parts) => parts.iter().map(field_of).collect(),
        _ => vec![field_of(e)],
    }
}

/// Bytes a (possibly concatenated) key occupies in registers.
fn key_len(fields: &[Field]) -> usize {
    if fields.len() > 1 {
        fields.iter().map(|f| pad4(f.len)).sum()
    } else {
        fields.first().map_or(4, |f| f.len)
    }
}

/// A value as register bytes for `f`: network-order bytes right-aligned in `f.len` bytes,
/// shifted into a sub-byte window, reversed for host-order types (unless converted).
fn encode(v: &Value, f: &Field) -> Vec<u8> {
    let n = f.len;
    if matches!(f.ty.byteorder(), ByteOrder::Invalid) {
        let mut b = v.bytes.to_vec();
        b.resize(n, 0);
        return b;
    }
    let mut out = vec![0u8; n];
    if f.shift > 0 {
        let x = v.as_u128() << f.shift;
        for (i, b) in out.iter_mut().rev().enumerate() {
            *b = (x >> (8 * i)) as u8;
        }
    } else {
        for (d, s) in out.iter_mut().rev().zip(v.bytes.iter().rev()) {
            *d = *s;
        }
    }
    if f.host() && !f.hton {
        out.reverse();
    }
    out
}

fn data(b: &[u8], span: Span) -> R<Data> {
    Data::new(b).ok_or(LowerError {
        span: Some(span),
        kind: LowerErrorKind::DataTooLong,
    })
}

fn byteorder_size(len: usize) -> u8 {
    let bits = len * 8;
    if bits.is_multiple_of(64) {
        8
    } else if bits.is_multiple_of(32) {
        4
    } else {
        2
    }
}

fn vm_hook(h: hir::Hook) -> Option<nfr_vm::Hook> {
    h.nf_hook()
}

/// The VM's load for `ct KEY` (the catalog's [`catalog::CtKey::load`]; the tuple addresses by family:
/// `ct original saddr` in an inet table loads the whole address, `ct original ip saddr` the IPv4 one).
/// `None`: the engines cannot read it; the checker refuses such rules.
pub(crate) fn ct_key(key: &catalog::CtKey, family: Option<Family>, ty: Type) -> Option<VCtKey> {
    let v6 = family == Some(Family::Ip6) || (family.is_some() && ty == Type::Ipv6Addr);
    Some(match (key.load?, family) {
        (VCtKey::Src, Some(_)) if v6 => VCtKey::SrcIp6,
        (VCtKey::Src, Some(_)) => VCtKey::SrcIp,
        (VCtKey::Dst, Some(_)) if v6 => VCtKey::DstIp6,
        (VCtKey::Dst, Some(_)) => VCtKey::DstIp,
        (k, _) => k,
    })
}

fn payload_base(b: hir::PayloadBase) -> PayloadBase {
    match b {
        hir::PayloadBase::Link => PayloadBase::Link,
        hir::PayloadBase::Network => PayloadBase::Network,
        hir::PayloadBase::Transport => PayloadBase::Transport,
    }
}

fn log_level(name: &str) -> Option<u32> {
    nfr_proto::catalog::LOG_LEVEL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| v as u32)
}

/// One item of a rule after nft's payload merging.
enum LItem<'a> {
    Item(&'a Item),
    /// Adjacent payload equality matches merged into one load.
    Merged {
        base: hir::PayloadBase,
        offset: u32,
        bytes: Vec<u8>,
        span: Span,
        /// The merged matches' selectors (for their icmp dependencies).
        parts: Vec<&'a Expr>,
    },
}

/// A payload `==` constant match over whole bytes: (base, byte offset, value bytes).
fn mergeable(m: &Match) -> Option<(hir::PayloadBase, u32, Vec<u8>)> {
    if m.op != Op::Eq {
        return None;
    }
    let ExprKind::Payload { base, .. } = &m.left.kind else {
        return None;
    };
    let Rhs::Value(v) = &m.right else { return None };
    let (off, len, mask, _) = m.left.load_window()?;
    if mask.is_some() {
        return None;
    }
    let f = field_of(&m.left);
    let bytes = encode(v, &f);
    (bytes.len() == len as usize).then_some((*base, off, bytes))
}

/// `meta protocol ip` in an ip table (`ip6` in ip6) is dropped by nft's `stmt_reduce()`.
fn redundant_protocol(m: &Match, family: Family) -> bool {
    let (ExprKind::Meta { key }, Op::Eq, Rhs::Value(v)) = (&m.left.kind, m.op, &m.right) else {
        return false;
    };
    key.name == "protocol"
        && matches!(
            (family, v.as_u128()),
            (Family::Ip, 0x0800) | (Family::Ip6, 0x86dd)
        )
}

/// nft's `stmt_reduce()`: within runs of expression statements (statements are fences),
/// payload `==` constant matches sorted by (base, offset) are merged when adjacent and
/// `payload_can_merge` allows it. The merged match takes the place of the lower-offset
/// one (or of the protocol field, if the higher one is `ip protocol`/`ip6 nexthdr`).
fn merge_payloads<'a>(items: &'a [Cow<'a, Item>]) -> Vec<LItem<'a>> {
    let mut out: Vec<Option<LItem<'a>>> = items.iter().map(|i| Some(LItem::Item(i))).collect();
    let mut run: Vec<usize> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        match &**it {
            Item::Match(m) => {
                if mergeable(m).is_some() {
                    run.push(i);
                }
            }
            _ => {
                if run.len() >= 2 {
                    merge_run(items, &run, &mut out);
                }
                run.clear();
            }
        }
    }
    if run.len() >= 2 {
        merge_run(items, &run, &mut out);
    }
    out.into_iter().flatten().collect()
}

/// `icmp type` / `icmpv6 type`.
fn is_icmp_type(e: &Expr) -> bool {
    e.payload_field()
        .is_some_and(|f| matches!(f.dtype, Type::IcmpType | Type::Icmpv6Type))
}

fn is_protocol_field(m: &Match) -> bool {
    m.left.is_l4_protocol_key()
}

fn merge_run<'a>(items: &'a [Cow<'a, Item>], run: &[usize], out: &mut [Option<LItem<'a>>]) {
    struct Cur<'a> {
        idx: usize,
        base: hir::PayloadBase,
        off: u32,
        bytes: Vec<u8>,
        parts: Vec<&'a Expr>,
        span: Span,
    }
    /// (item index, base, byte offset, value bytes, is a protocol field, the match)
    type Entry<'a> = (usize, hir::PayloadBase, u32, Vec<u8>, bool, &'a Match);
    let mut sorted: Vec<Entry<'a>> = run
        .iter()
        .filter_map(|&i| match items.get(i).map(|c| &**c) {
            Some(Item::Match(m)) => {
                mergeable(m).map(|(b, o, v)| (i, b, o, v, is_protocol_field(m), m))
            }
            _ => None,
        })
        .collect();
    let base_rank = |b: hir::PayloadBase| match b {
        hir::PayloadBase::Link => 0,
        hir::PayloadBase::Network => 1,
        hir::PayloadBase::Transport => 2,
    };
    sorted.sort_by_key(|s| (base_rank(s.1), s.2));
    let mut cur: Option<Cur<'a>> = None;
    let finish = |c: Cur<'a>, out: &mut [Option<LItem<'a>>]| {
        if c.parts.len() > 1
            && let Some(slot) = out.get_mut(c.idx)
        {
            *slot = Some(LItem::Merged {
                base: c.base,
                offset: c.off,
                bytes: c.bytes,
                span: c.span,
                parts: c.parts,
            });
        }
    };
    for (idx, base, off, bytes, proto, m) in sorted {
        let span = m.span;
        if let Some(c) = cur.as_mut() {
            let adjacent = c.base == base && c.off + c.bytes.len() as u32 == off;
            let (l1, l2) = (c.bytes.len(), bytes.len());
            let total = l1 + l2;
            let can = adjacent
                && total <= 16
                && (total <= 4 || base == hir::PayloadBase::Link || l1 > 4 || l2 > 4);
            if can {
                c.bytes.extend_from_slice(&bytes);
                c.parts.push(&m.left);
                c.span = c.span.to(span);
                let removed = if proto {
                    let old = c.idx;
                    c.idx = idx;
                    old
                } else {
                    idx
                };
                if let Some(slot) = out.get_mut(removed) {
                    *slot = None;
                }
                continue;
            }
        }
        if let Some(c) = cur.take() {
            finish(c, out);
        }
        cur = Some(Cur {
            idx,
            base,
            off,
            bytes,
            parts: vec![&m.left],
            span,
        });
    }
    if let Some(c) = cur.take() {
        finish(c, out);
    }
}

/// Per-rule state: the instructions, their spans and the register stack.
struct Rcx {
    insns: Vec<Insn>,
    spans: Vec<Option<(u32, u32)>>,
    reg_low: u8,
    span: Span,
    family: Family,
    /// `meta nfproto` fixed by an earlier match of the rule.
    nfproto: Option<u8>,
}

impl Rcx {
    fn emit(&mut self, i: Insn) {
        self.insns.push(i);
        self.spans.push(Some((self.span.start, self.span.end)));
    }
    fn get(&mut self, bytes: usize) -> R<Reg> {
        let n = words(bytes.max(1));
        if usize::from(self.reg_low) + usize::from(n) > nfr_vm::ids::NFT_REG32_COUNT {
            return Err(LowerError {
                span: Some(self.span),
                kind: LowerErrorKind::TooManyRegisters,
            });
        }
        let r = Reg(self.reg_low);
        self.reg_low += n;
        Ok(r)
    }
    fn release(&mut self, bytes: usize) {
        self.reg_low = self.reg_low.saturating_sub(words(bytes.max(1)));
    }
    /// `get_register(expr)`: a concatenation takes its length, anything else 16 bytes.
    fn get_for(&mut self, e: &Expr) -> R<(Reg, usize)> {
        let n = match &e.kind {
            ExprKind::Concat(_) => key_len(&fields_of(e)),
            _ => 16,
        };
        Ok((self.get(n)?, n))
    }
}

impl Lower<'_> {
    fn chains(&mut self) -> R<()> {
        for c in &self.hir.chains {
            match c.base() {
                Some(b) => {
                    let hook = vm_hook(b.hook).ok_or_else(|| {
                        unsupported(b.span, "ingress chains (no netdev hook in the VM)")
                    })?;
                    let policy = match b.policy {
                        hir::Policy::Accept => Policy::Accept,
                        hir::Policy::Drop => Policy::Drop,
                    };
                    self.prog.add_base_chain(&c.name, hook, b.priority, policy);
                }
                None => {
                    self.prog.add_chain(&c.name);
                }
            }
        }
        Ok(())
    }

    fn named_sets(&mut self) -> R<()> {
        // Sets a set statement updates: their elements live in the engine state.
        let mut updated = vec![false; self.hir.sets.len()];
        for r in self.hir.chains.iter().flat_map(|c| &c.rules) {
            for s in r.stmts() {
                if let StmtKind::SetUpdate { set, .. } = &s.kind
                    && let Some(u) = updated.get_mut(set.0 as usize)
                {
                    *u = true;
                }
            }
        }
        for (si, s) in self.hir.sets.iter().enumerate() {
            let mut fields: Vec<Field> = s.key.iter().map(|t| Field::plain(*t)).collect();
            let interval = s.flags.interval
                || s.elements
                    .iter()
                    .any(|e| e.key.iter().any(|k| !matches!(k, KeyPart::Value(_))));
            if interval {
                for f in &mut fields {
                    f.hton = f.needs_hton();
                }
            }
            let data = s.data.clone();
            let mut flags = 0u32;
            if s.flags.constant {
                flags |= 2;
            }
            if interval {
                flags |= 4;
            }
            if data.is_some() {
                flags |= 8;
            }
            if s.flags.timeout {
                flags |= 0x10;
            }
            if s.flags.dynamic {
                flags |= 0x20;
            }
            if fields.len() > 1 && interval {
                flags |= 0x80;
            }
            if s.obj.is_some() {
                flags |= 0x40;
            }
            let id = self.build_set(
                &s.name,
                flags,
                &fields,
                interval,
                data.as_deref(),
                s.obj.map(obj_type),
                (&s.elements).into(),
            )?;
            if updated.get(si).copied().unwrap_or(false)
                && let Some(set) = self.prog.sets.get_mut(id.0 as usize)
            {
                set.dynamic = Some(DynSpec {
                    timeout_ms: s.timeout.unwrap_or(0),
                    size: s.size.filter(|&n| n > 0).unwrap_or(DEFAULT_SIZE),
                });
            }
            self.named.push(id);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn build_set(
        &mut self,
        name: &str,
        flags: u32,
        fields: &[Field],
        interval: bool,
        dtypes: Option<&[Type]>,
        obj: Option<ObjType>,
        elements: ElementsRef<'_>,
    ) -> R<SetId> {
        let klen = key_len(fields);
        // (once: every element's data has the same layout)
        let ivdata = dtypes.is_some() && interval_data(elements);
        let data_type = match (obj, dtypes) {
            (Some(t), _) => SetDataType::Object(t),
            (None, None) => SetDataType::None,
            (None, Some([Type::Verdict])) => SetDataType::Verdict,
            (None, Some(ts)) => {
                SetDataType::Data((map_data_len(ts) * if ivdata { 2 } else { 1 }) as u8)
            }
        };
        let kind = if !interval {
            SetKind::Hash
        } else if fields.len() > 1 {
            SetKind::ConcatInterval {
                field_lens: fields.iter().map(|f| f.len as u8).collect(),
            }
        } else {
            SetKind::Interval
        };
        let mut set = Set::new(name, klen as u8, data_type, kind);
        set.flags = flags;
        if (dtypes.is_some() || obj.is_some()) && name.starts_with("__") {
            set.size = Some(elements.len() as u32);
        }
        for el in elements.iter() {
            let d = match (el.data.as_deref(), dtypes) {
                (None, _) => ElemData::None,
                (Some(MapData::Verdict(v)), _) => ElemData::Verdict(self.chain_verdict(v)?),
                (Some(MapData::Value(parts)), Some(ts)) => {
                    ElemData::Data(data(&map_data_bytes(parts, ts, ivdata, el.span)?, el.span)?)
                }
                (Some(MapData::Value(_)), None) => {
                    return Err(unsupported(el.span, "map data in a set"));
                }
                (Some(MapData::Object(t)), _) => ElemData::Object(match t {
                    ObjTarget::Counter(i) => Obj::Counter(CounterId(*i)),
                    ObjTarget::CtHelper { helper, .. } => {
                        let mut b = [0u8; 16];
                        for (d, s) in b.iter_mut().zip(helper.bytes().take(15)) {
                            *d = s;
                        }
                        Obj::CtHelper(b)
                    }
                }),
            };
            if el.key.is_empty() {
                // The catch-all element `*` (object maps; the checker allows one).
                set.catchall = Some(d);
                continue;
            }
            let (from, to) = element_bounds(&el, fields)?;
            if interval {
                set.insert_range(&from, &to, d);
            } else if from == to {
                set.insert(&from, d);
            } else {
                return Err(unsupported(el.span, "range element in a hash set"));
            }
        }
        Ok(self.prog.add_set(set))
    }

    fn chain_verdict(&self, v: &Verdict) -> R<ChainVerdict> {
        Ok(match &v.kind {
            VerdictKind::Accept => ChainVerdict::Accept,
            VerdictKind::Drop => ChainVerdict::Drop,
            VerdictKind::Continue => ChainVerdict::Continue,
            VerdictKind::Return => ChainVerdict::Return,
            VerdictKind::Jump(c) => ChainVerdict::Jump(ChainId(c.0)),
            VerdictKind::Goto(c) => ChainVerdict::Goto(ChainId(c.0)),
            VerdictKind::Queue { .. } | VerdictKind::Vmap { .. } => {
                return Err(unsupported(v.span, "this verdict inside a map"));
            }
        })
    }

    fn rule(&mut self, rule: &Rule, family: Family) -> R<(Vec<Insn>, Spans)> {
        let mut cx = Rcx {
            insns: Vec::new(),
            spans: Vec::new(),
            reg_low: 0,
            span: rule.span,
            family,
            nfproto: None,
        };
        let mut icmp_type: Option<u8> = None;
        let items = rule.items_with_deps();
        let mut lits = merge_payloads(&items);
        // nft puts the dependency of `reject with tcp reset` at the head of the rule
        if let Some(pos) = lits.iter().position(|l| {
            matches!(l, LItem::Item(Item::Stmt(s)) if matches!(s.kind, StmtKind::Reject(RejectKind::TcpReset)))
        }) && pos > 0
            && matches!(lits.get(pos - 1), Some(LItem::Item(Item::Match(m))) if m.implicit)
        {
            let dep = lits.remove(pos - 1);
            lits.insert(0, dep);
        }
        for it in lits {
            match it {
                LItem::Merged {
                    base,
                    offset,
                    bytes,
                    span,
                    parts,
                } => {
                    cx.span = span;
                    for p in parts {
                        self.icmp_dependency(&mut cx, p, &mut icmp_type)?;
                    }
                    let r = cx.get(16)?;
                    cx.emit(Insn::payload(
                        payload_base(base),
                        offset,
                        bytes.len() as u8,
                        r,
                    ));
                    cx.emit(Insn::cmp_eq(r, data(&bytes, span)?));
                    cx.release(16);
                }
                LItem::Item(Item::Match(m)) => {
                    cx.span = m.span;
                    if redundant_protocol(m, family) {
                        continue;
                    }
                    if let (ExprKind::Meta { key }, Op::Eq, Rhs::Value(v)) =
                        (&m.left.kind, m.op, &m.right)
                        && key.name == "nfproto"
                    {
                        cx.nfproto = v.bytes.first().copied();
                    }
                    self.icmp_dependency(&mut cx, &m.left, &mut icmp_type)?;
                    self.lower_match(&mut cx, m)?;
                    if let (true, Op::Eq, Rhs::Value(v)) = (is_icmp_type(&m.left), m.op, &m.right) {
                        icmp_type = v.bytes.first().copied();
                    }
                    // `icmp type { echo-request, echo-reply }` satisfies the echo dependency
                    if let (true, Op::Eq, Rhs::Set(a)) = (is_icmp_type(&m.left), m.op, &m.right) {
                        let types: Vec<u8> = a
                            .elements
                            .iter()
                            .filter_map(|e| match e.key.first() {
                                Some(KeyPart::Value(v)) => v.bytes.first().copied(),
                                _ => None,
                            })
                            .collect();
                        if !types.is_empty() && types.iter().all(|t| matches!(t, 0 | 8)) {
                            icmp_type = Some(8);
                        } else if !types.is_empty() && types.iter().all(|t| matches!(t, 128 | 129))
                        {
                            icmp_type = Some(128);
                        }
                    }
                }
                LItem::Item(Item::Stmt(s)) => {
                    cx.span = s.span;
                    self.lower_stmt(&mut cx, &s.kind)?;
                }
                LItem::Item(Item::Vmap(v)) => {
                    cx.span = v.span;
                    self.lower_verdict(&mut cx, v)?;
                }
            }
        }
        if let Some(v) = &rule.verdict {
            cx.span = v.span;
            self.lower_verdict(&mut cx, v)?;
        }
        Ok((cx.insns, cx.spans))
    }

    /// nft's `payload_gen_icmp_dependency`: `icmp id`/`sequence` need an echo type, `icmp
    /// mtu` destination-unreachable, `icmp gateway` redirect (likewise for icmpv6), unless
    /// the rule already matched that type.
    fn icmp_dependency(&mut self, cx: &mut Rcx, e: &Expr, known: &mut Option<u8>) -> R<()> {
        let parts: Vec<&Expr> = match &e.kind {
            ExprKind::Concat(p) => p.iter().collect(),
            ExprKind::Bitwise { expr, .. } => vec![expr.as_ref()],
            _ => vec![e],
        };
        for p in parts {
            // the field's `icmp_dep` (catalog), matched on its protocol's `type` field
            let Some(f) = p.payload_field().filter(|f| !f.icmp_dep.is_empty()) else {
                continue;
            };
            let Some(type_field) = catalog::payload_field(f.proto, "type") else {
                continue;
            };
            let (ty, dep) = (type_field.dtype, f.icmp_dep);
            let satisfied = match (known.as_ref(), dep) {
                (Some(0 | 8), [0, 8]) => true,
                (Some(t), [128, 129]) => *t == 128 || *t == 129,
                (Some(t), [d]) => t == d,
                _ => false,
            };
            if satisfied {
                continue;
            }
            let r = cx.get(16)?;
            cx.emit(Insn::payload(PayloadBase::Transport, 0, 1, r));
            if let [one] = dep {
                cx.emit(Insn::cmp_eq(r, Data::u8(*one)));
                *known = Some(*one);
            } else {
                let elements: Vec<Element> = dep
                    .iter()
                    .map(|b| Element {
                        key: vec![KeyPart::Value(Value {
                            ty,
                            bytes: hir::Bytes::new(&[*b]),
                            text: Some(b.to_string().into()),
                            span: p.span,
                        })],
                        data: None,
                        span: p.span,
                    })
                    .collect();
                let key = Expr {
                    kind: ExprKind::Payload {
                        field: Some(type_field),
                        base: type_field.base,
                        offset_bits: type_field.offset_bits,
                        len_bits: type_field.len_bits,
                    },
                    ty,
                    span: p.span,
                };
                let (set, _) = self.anon_set(&key, &elements, false, None)?;
                cx.emit(Insn::Lookup {
                    sreg: r,
                    set,
                    dest: LookupDest::None,
                    invert: false,
                });
                *known = dep.last().copied();
            }
            cx.release(16);
        }
        Ok(())
    }

    // ---- expressions ---------------------------------------------------------------

    /// Load `e` into `dreg` (`netlink_gen_expr`). `hton` converts host-order fields of
    /// more than one byte to big endian (interval set keys); `stmt` right-aligns sub-byte
    /// payload fields (statement operands).
    fn gen_expr(&mut self, cx: &mut Rcx, e: &Expr, dreg: Reg, hton: bool, stmt: bool) -> R<()> {
        match &e.kind {
            ExprKind::Payload { base, .. } => {
                let (off, nbytes, mask, shift) = e
                    .load_window()
                    .ok_or_else(|| unsupported(e.span, "payload window"))?;
                cx.emit(Insn::payload(payload_base(*base), off, nbytes as u8, dreg));
                if let Some(mask) = mask {
                    let zero = vec![0u8; mask.len()];
                    cx.emit(Insn::Bitwise {
                        sreg: dreg,
                        dreg,
                        len: nbytes as u8,
                        op: BitwiseOp::mask_xor(data(&mask, e.span)?, data(&zero, e.span)?),
                    });
                    if stmt && shift > 0 {
                        if nbytes > 1 {
                            cx.emit(Insn::Byteorder {
                                sreg: dreg,
                                dreg,
                                op: ByteorderOp::Ntoh,
                                len: nbytes as u8,
                                size: byteorder_size(nbytes as usize),
                            });
                        }
                        cx.emit(Insn::Bitwise {
                            sreg: dreg,
                            dreg,
                            len: nbytes as u8,
                            op: BitwiseOp::Rshift(shift),
                        });
                    }
                }
            }
            ExprKind::Meta { key } => {
                let k = key
                    .load
                    .ok_or_else(|| unsupported(e.span, format!("meta {}", key.name)))?;
                cx.emit(Insn::meta(k, dreg));
                let f = field_of(e);
                if hton && f.needs_hton() {
                    self.hton(cx, dreg, f.len);
                }
            }
            ExprKind::FibType { daddr } => {
                cx.emit(Insn::FibType {
                    dreg,
                    daddr: *daddr,
                });
                let f = field_of(e);
                if hton && f.needs_hton() {
                    self.hton(cx, dreg, f.len);
                }
            }
            ExprKind::Numgen {
                random,
                modulus,
                offset,
            } => {
                let kind = if *random {
                    NumgenKind::Random
                } else {
                    self.numgen_slots += 1;
                    NumgenKind::Inc {
                        slot: self.numgen_slots - 1,
                    }
                };
                cx.emit(Insn::Numgen {
                    dreg,
                    kind,
                    modulus: *modulus,
                    offset: *offset,
                });
                // Host order; an address-typed operand (`dnat to numgen ...`) is converted.
                let f = field_of(e);
                if (hton && f.needs_hton()) || e.ty.byteorder() == ByteOrder::Big {
                    self.hton(cx, dreg, 4);
                }
            }
            ExprKind::Ct { key, dir, family } => {
                let k = ct_key(key, *family, e.ty)
                    .ok_or_else(|| unsupported(e.span, format!("ct {}", key.name)))?;
                cx.emit(Insn::Ct {
                    key: k,
                    dir: *dir,
                    dreg,
                });
                let f = field_of(e);
                if hton && f.needs_hton() {
                    self.hton(cx, dreg, f.len);
                }
            }
            ExprKind::Concat(parts) => {
                let mut r = dreg.0;
                for p in parts {
                    self.gen_expr(cx, p, Reg(r), hton, stmt)?;
                    r = r.saturating_add(words(field_of(p).len));
                }
            }
            ExprKind::Bitwise { .. } => {
                self.gen_bitwise(cx, e, dreg, stmt)?;
                // `meta mark & 0xff < 10`: ordered like the plain field, after the mask.
                let f = field_of(e);
                if hton && f.needs_hton() {
                    self.hton(cx, dreg, f.len);
                }
            }
        }
        Ok(())
    }

    fn hton(&mut self, cx: &mut Rcx, reg: Reg, len: usize) {
        cx.emit(Insn::Byteorder {
            sreg: reg,
            dreg: reg,
            op: ByteorderOp::Hton,
            len: len as u8,
            size: byteorder_size(len),
        });
    }

    /// `netlink_gen_bitwise` / `netlink_gen_shift`: a chain of `&`, `|`, `^` with constants
    /// folds into one mask/xor; shifts are their own instruction.
    fn gen_bitwise(&mut self, cx: &mut Rcx, e: &Expr, dreg: Reg, stmt: bool) -> R<()> {
        let ExprKind::Bitwise { expr, op, value } = &e.kind else {
            return self.gen_expr(cx, e, dreg, false, stmt);
        };
        let f = field_of(e);
        let len = f.len;
        match op {
            BitOp::Shl | BitOp::Shr => {
                self.gen_expr(cx, expr, dreg, false, stmt)?;
                let n = value.as_u128() as u32;
                cx.emit(Insn::Bitwise {
                    sreg: dreg,
                    dreg,
                    len: len as u8,
                    op: if *op == BitOp::Shl {
                        BitwiseOp::Lshift(n)
                    } else {
                        BitwiseOp::Rshift(n)
                    },
                });
                return Ok(());
            }
            _ => {}
        }
        // collect the chain of and/or/xor down to the first non-boolean expression
        let mut chain: Vec<(BitOp, &Value)> = vec![(*op, value)];
        let mut base: &Expr = expr;
        while let ExprKind::Bitwise {
            expr: inner,
            op: o @ (BitOp::And | BitOp::Or | BitOp::Xor),
            value: v,
        } = &base.kind
        {
            chain.push((*o, v));
            base = inner;
        }
        self.gen_expr(cx, base, dreg, false, stmt)?;
        let mut mask = vec![0xffu8; len];
        let mut xor = vec![0u8; len];
        for (o, v) in chain.iter().rev() {
            let val = encode(v, &f);
            for i in 0..len {
                let x = val.get(i).copied().unwrap_or(0);
                match o {
                    BitOp::And => {
                        mask[i] &= x;
                        xor[i] &= x;
                    }
                    BitOp::Or => {
                        mask[i] &= !x;
                        xor[i] = (xor[i] & !x) ^ x;
                    }
                    _ => {
                        xor[i] ^= x;
                    }
                }
            }
        }
        cx.emit(Insn::Bitwise {
            sreg: dreg,
            dreg,
            len: len as u8,
            op: BitwiseOp::mask_xor(data(&mask, e.span)?, data(&xor, e.span)?),
        });
        Ok(())
    }

    // ---- matches ---------------------------------------------------------------------

    fn lower_match(&mut self, cx: &mut Rcx, m: &Match) -> R<()> {
        let left = &m.left;
        match &m.right {
            Rhs::Value(v) => {
                let f = field_of(left);
                let (sreg, n) = cx.get_for(left)?;
                match m.op {
                    Op::Bitmask | Op::NotBitmask => {
                        self.gen_expr(cx, left, sreg, false, false)?;
                        let mask = encode(v, &f);
                        let zero = vec![0u8; f.len];
                        cx.emit(Insn::Bitwise {
                            sreg,
                            dreg: sreg,
                            len: f.len as u8,
                            op: BitwiseOp::mask_xor(data(&mask, m.span)?, data(&zero, m.span)?),
                        });
                        cx.emit(Insn::Cmp {
                            op: if m.op == Op::Bitmask {
                                CmpOp::Neq
                            } else {
                                CmpOp::Eq
                            },
                            sreg,
                            data: data(&zero, m.span)?,
                        });
                    }
                    op => {
                        let ordered = matches!(op, Op::Lt | Op::Gt | Op::Lte | Op::Gte);
                        let f = Field {
                            hton: ordered && f.needs_hton(),
                            ..f
                        };
                        self.gen_expr(cx, left, sreg, f.hton, false)?;
                        // `iifname "eth*"`: the checker keeps only the prefix bytes
                        let d = if matches!(f.ty.byteorder(), ByteOrder::Invalid)
                            && !v.bytes.is_empty()
                            && v.bytes.len() < f.len
                        {
                            v.bytes.to_vec()
                        } else {
                            encode(v, &f)
                        };
                        cx.emit(Insn::Cmp {
                            op: cmp_op(op),
                            sreg,
                            data: data(&d, m.span)?,
                        });
                    }
                }
                cx.release(n);
            }
            Rhs::Concat(vals) => {
                let fields = fields_of(left);
                let (sreg, n) = cx.get_for(left)?;
                self.gen_expr(cx, left, sreg, false, false)?;
                let mut bytes = Vec::new();
                for (v, f) in vals.iter().zip(&fields) {
                    let mut b = encode(v, f);
                    b.resize(pad4(f.len), 0);
                    bytes.extend(b);
                }
                let blen = key_len(&fields);
                bytes.truncate(blen);
                cx.emit(Insn::Cmp {
                    op: cmp_op(m.op),
                    sreg,
                    data: data(&bytes, m.span)?,
                });
                cx.release(n);
            }
            Rhs::Prefix { value, len } => {
                let f = field_of(left);
                let (sreg, n) = cx.get_for(left)?;
                let plen = *len as usize;
                let string = matches!(f.ty, Type::Ifname | Type::String { .. });
                let full = encode(value, &f);
                let sub_byte = left.load_window().is_some_and(|w| w.2.is_some());
                if sub_byte && f.len == 1 {
                    // nft right-aligns the field, then masks the prefix bits of it
                    let ExprKind::Payload { len_bits, .. } = &left.kind else {
                        return Err(unsupported(m.span, "prefix of this expression"));
                    };
                    self.gen_expr(cx, left, sreg, false, true)?;
                    let bits = (*len_bits).min(8);
                    let keep = (*len).min(bits);
                    let all = if bits >= 8 { 0xffu8 } else { (1u8 << bits) - 1 };
                    let low = if bits - keep >= 8 {
                        0xffu8
                    } else {
                        (1u8 << (bits - keep)) - 1
                    };
                    let pm = all & !low;
                    cx.emit(Insn::Bitwise {
                        sreg,
                        dreg: sreg,
                        len: 1,
                        op: BitwiseOp::mask_xor(Data::u8(pm), Data::u8(0)),
                    });
                    let v = value.bytes.last().copied().unwrap_or(0) & pm;
                    cx.emit(Insn::Cmp {
                        op: cmp_op(m.op),
                        sreg,
                        data: Data::u8(v),
                    });
                } else if string
                    || (f.ty.byteorder() == ByteOrder::Big && plen.is_multiple_of(8) && plen != 0)
                {
                    let cl = plen.div_ceil(8).max(1);
                    match &left.kind {
                        ExprKind::Payload { base, .. } if f.shift == 0 => {
                            let (off, _, _, _) = left.load_window().unwrap_or((0, 0, None, 0));
                            cx.emit(Insn::payload(payload_base(*base), off, cl as u8, sreg));
                        }
                        _ => self.gen_expr(cx, left, sreg, false, false)?,
                    }
                    let d: Vec<u8> = full.iter().copied().take(cl).collect();
                    cx.emit(Insn::Cmp {
                        op: cmp_op(m.op),
                        sreg,
                        data: data(&d, m.span)?,
                    });
                } else {
                    self.gen_expr(cx, left, sreg, false, false)?;
                    let mut mask = vec![0u8; f.len];
                    for (i, b) in mask.iter_mut().enumerate() {
                        let keep = plen.saturating_sub(i * 8).min(8);
                        *b = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
                    }
                    if f.host() {
                        mask.reverse();
                    }
                    let zero = vec![0u8; f.len];
                    cx.emit(Insn::Bitwise {
                        sreg,
                        dreg: sreg,
                        len: f.len as u8,
                        op: BitwiseOp::mask_xor(data(&mask, m.span)?, data(&zero, m.span)?),
                    });
                    cx.emit(Insn::Cmp {
                        op: cmp_op(m.op),
                        sreg,
                        data: data(&full, m.span)?,
                    });
                }
                cx.release(n);
            }
            Rhs::Range { lo, hi } => {
                let f = field_of(left);
                let f = Field {
                    hton: f.needs_hton(),
                    ..f
                };
                let (sreg, n) = cx.get_for(left)?;
                self.gen_expr(cx, left, sreg, f.hton, false)?;
                cx.emit(Insn::range(
                    if m.op == Op::Neq {
                        RangeOp::Neq
                    } else {
                        RangeOp::Eq
                    },
                    sreg,
                    data(&encode(lo, &f), m.span)?,
                    data(&encode(hi, &f), m.span)?,
                ));
                cx.release(n);
            }
            Rhs::Set(anon) => {
                let (set, hton) = self.anon_set(left, &anon.elements, anon.interval, None)?;
                let (sreg, n) = cx.get_for(left)?;
                self.gen_expr(cx, left, sreg, hton, false)?;
                cx.emit(Insn::Lookup {
                    sreg,
                    set,
                    dest: LookupDest::None,
                    invert: m.op == Op::Neq,
                });
                cx.release(n);
            }
            Rhs::SetRef(id) => {
                let set = self.named_ref(*id, m.span)?;
                let hton = self.named_hton(*id);
                let (sreg, n) = cx.get_for(left)?;
                self.gen_expr(cx, left, sreg, hton, false)?;
                cx.emit(Insn::Lookup {
                    sreg,
                    set,
                    dest: LookupDest::None,
                    invert: m.op == Op::Neq,
                });
                cx.release(n);
            }
        }
        Ok(())
    }

    fn named_ref(&self, id: hir::SetId, span: Span) -> R<SetId> {
        self.named
            .get(id.0 as usize)
            .copied()
            .ok_or_else(|| unsupported(span, "unknown named set"))
    }

    fn named_hton(&self, id: hir::SetId) -> bool {
        self.prog
            .sets
            .get(
                self.named
                    .get(id.0 as usize)
                    .map_or(usize::MAX, |s| s.0 as usize),
            )
            .is_some_and(|s| !matches!(s.kind, SetKind::Hash))
            && self
                .hir
                .set(id)
                .is_some_and(|s| s.key.iter().any(|t| Field::plain(*t).needs_hton()))
    }

    /// Build an anonymous set or map keyed by `key`; returns it and whether the key must be
    /// converted to big endian before the lookup.
    fn anon_set(
        &mut self,
        key: &Expr,
        elements: &[Element],
        interval: bool,
        data: Option<&[Type]>,
    ) -> R<(SetId, bool)> {
        let (fields, hton) = interval_fields(key, interval);
        let name = if data.is_some() {
            self.anon_maps += 1;
            format!("__map{}", self.anon_maps - 1)
        } else {
            self.anon_sets += 1;
            format!("__set{}", self.anon_sets - 1)
        };
        let mut flags = 1 | 2;
        if interval {
            flags |= 4;
        }
        if data.is_some() {
            flags |= 8;
        }
        if interval && fields.len() > 1 {
            flags |= 0x80;
        }
        let id = self.build_set(&name, flags, &fields, interval, data, None, elements.into())?;
        Ok((id, hton))
    }

    /// An anonymous object map `__objmap%d` (flags anonymous, constant, object) keyed by `key`;
    /// returns it and whether the key must be converted to big endian before the lookup.
    fn anon_objmap(
        &mut self,
        key: &Expr,
        elements: &[Element],
        interval: bool,
        kind: ObjKind,
    ) -> R<(SetId, bool)> {
        let (fields, hton) = interval_fields(key, interval);
        let name = format!("__objmap{}", self.anon_objmaps);
        self.anon_objmaps += 1;
        let mut flags = 1 | 2 | 0x40;
        if interval {
            flags |= 4;
        }
        if interval && fields.len() > 1 {
            flags |= 0x80;
        }
        let id = self.build_set(
            &name,
            flags,
            &fields,
            interval,
            None,
            Some(obj_type(kind)),
            elements.into(),
        )?;
        Ok((id, hton))
    }

    /// The lookup of a map (`vmap` or `map`): key into a fresh register (or `dreg`), then
    /// `lookup ... dreg`.
    fn gen_map(
        &mut self,
        cx: &mut Rcx,
        key: &Expr,
        map: &VmapRef,
        dest: LookupDest,
        data_types: &[Type],
        span: Span,
    ) -> R<()> {
        let (set, hton) = match map {
            VmapRef::Anon(a) => self.anon_set(key, &a.elements, a.interval, Some(data_types))?,
            VmapRef::Named(id) => (self.named_ref(*id, span)?, self.named_hton(*id)),
        };
        match dest {
            LookupDest::Reg(r) => {
                // netlink_gen_map: sreg = dreg; a concatenated key reserves its space
                let extra = match &key.kind {
                    ExprKind::Concat(_) => key_len(&fields_of(key)),
                    _ => 0,
                };
                if extra > 0 {
                    cx.get(extra)?;
                }
                self.gen_expr(cx, key, r, hton, false)?;
                if extra > 0 {
                    cx.release(extra);
                }
                cx.emit(Insn::Lookup {
                    sreg: r,
                    set,
                    dest,
                    invert: false,
                });
            }
            _ => {
                let (sreg, n) = cx.get_for(key)?;
                self.gen_expr(cx, key, sreg, hton, false)?;
                cx.emit(Insn::Lookup {
                    sreg,
                    set,
                    dest,
                    invert: false,
                });
                cx.release(n);
            }
        }
        Ok(())
    }

    // ---- statements ----------------------------------------------------------------

    /// A statement operand into a fresh register (`get_register(NULL)`); returns it.
    fn gen_operand(&mut self, cx: &mut Rcx, v: &Operand, ty: Type, span: Span) -> R<Reg> {
        let r = cx.get(16)?;
        match v {
            Operand::Value(val) => {
                let f = Field::plain(ty);
                cx.emit(Insn::Immediate {
                    dreg: r,
                    data: data(&encode(val, &f), span)?,
                });
            }
            Operand::Expr(e) => self.gen_expr(cx, e, r, false, true)?,
            Operand::Map { key, map } => {
                self.gen_map(cx, key, map, LookupDest::Reg(r), &[ty], span)?;
            }
        }
        Ok(r)
    }

    fn lower_stmt(&mut self, cx: &mut Rcx, s: &StmtKind) -> R<()> {
        let span = cx.span;
        match s {
            StmtKind::Counter { packets, bytes } => {
                let id = self.prog.add_counter();
                if let Some(c) = self.prog.counters.get_mut(id.0 as usize) {
                    c.packets = *packets;
                    c.bytes = *bytes;
                }
                cx.emit(Insn::Counter(id));
            }
            StmtKind::NamedCounter { obj } => cx.emit(Insn::Counter(CounterId(*obj))),
            StmtKind::ObjrefMap { kind, key, map } => {
                // netlink_gen_objref_stmt: the key into a fresh register, `objref sreg set`.
                let (set, hton) = match map {
                    VmapRef::Anon(a) => self.anon_objmap(key, &a.elements, a.interval, *kind)?,
                    VmapRef::Named(id) => (self.named_ref(*id, span)?, self.named_hton(*id)),
                };
                let (sreg, n) = cx.get_for(key)?;
                self.gen_expr(cx, key, sreg, hton, false)?;
                cx.emit(Insn::Objref { sreg, set });
                cx.release(n);
            }
            StmtKind::Log {
                prefix,
                level,
                group,
            } => {
                let level = match level {
                    None => None,
                    Some(l) => Some(
                        log_level(l).ok_or_else(|| unsupported(span, format!("log level {l}")))?,
                    ),
                };
                cx.emit(Insn::Log(Box::new(LogSpec {
                    prefix: prefix.clone(),
                    group: *group,
                    snaplen: 0,
                    qthreshold: 0,
                    level,
                    flags: 0,
                })));
            }
            StmtKind::Limit {
                rate,
                unit,
                over,
                burst,
                bytes,
            } => {
                let unit = unit.seconds();
                let id = self.prog.add_limit(LimitSpec {
                    rate: *rate,
                    unit,
                    burst: *burst,
                    ty: if *bytes {
                        LimitType::Bytes
                    } else {
                        LimitType::Packets
                    },
                    invert: *over,
                });
                cx.emit(Insn::Limit(id));
            }
            StmtKind::MetaSet { key, value } => {
                let k = match key.name {
                    "mark" => MetaSetKey::Mark,
                    "priority" => MetaSetKey::Priority,
                    "pkttype" => MetaSetKey::Pkttype,
                    "nftrace" => MetaSetKey::Nftrace,
                    o => return Err(unsupported(span, format!("meta {o} set"))),
                };
                let r = self.gen_operand(cx, value, key.dtype, span)?;
                cx.release(16);
                cx.emit(Insn::MetaSet { key: k, sreg: r });
            }
            StmtKind::CtSet { key, value } => {
                let (k, ty) = match key.name {
                    "mark" => (CtSetKey::Mark, Type::Mark),
                    "zone" => (CtSetKey::Zone, Type::Integer { bits: 16 }),
                    "helper" => (CtSetKey::Helper, key.dtype),
                    o => return Err(unsupported(span, format!("ct {o} set"))),
                };
                let r = self.gen_operand(cx, value, ty, span)?;
                cx.release(16);
                cx.emit(Insn::CtSet { key: k, sreg: r });
            }
            StmtKind::PayloadSet { field, value } => {
                let ExprKind::Payload {
                    field: desc,
                    base,
                    offset_bits,
                    len_bits,
                } = &field.kind
                else {
                    return Err(unsupported(span, "payload set"));
                };
                let (off, len, mask, _) = field
                    .load_window()
                    .ok_or_else(|| unsupported(span, "payload set"))?;
                let (proto, name) = desc.map_or(("", ""), |f| (f.proto, f.field));
                use nfr_vm::insn::{
                    NFT_PAYLOAD_CSUM_INET, NFT_PAYLOAD_CSUM_NONE, NFT_PAYLOAD_L4CSUM_PSEUDOHDR,
                };
                let pd = nfr_proto::desc::desc(proto);
                let (csum_type, csum_offset) = match pd.and_then(|d| d.checksum_at) {
                    Some(at) => (NFT_PAYLOAD_CSUM_INET, at),
                    None => (NFT_PAYLOAD_CSUM_NONE, 0),
                };
                let pseudo = pd.is_some_and(|d| d.in_pseudo_header(name));
                // nft writes whole 16-bit words when it fixes a checksum, and whole bytes
                // around a sub-byte field: load the window, mask/xor the field in, write back
                let (mut wstart, mut wend) = (off, off + len);
                if csum_type != NFT_PAYLOAD_CSUM_NONE {
                    wstart &= !1;
                    wend = wend.div_ceil(2) * 2;
                }
                let r = if mask.is_none() && (wstart, wend) == (off, off + len) {
                    let r = self.gen_operand(cx, value, field.ty, span)?;
                    cx.release(16);
                    r
                } else {
                    let wlen = (wend - wstart) as usize;
                    if wlen > 8 {
                        return Err(unsupported(span, "payload write window"));
                    }
                    // field bits within the window, as a big-endian number of wlen bytes
                    let fbits = *len_bits;
                    let fshift = (wend * 8) - (offset_bits + len_bits);
                    let fmask: u64 = if fbits >= 64 {
                        u64::MAX
                    } else {
                        (1u64 << fbits) - 1
                    };
                    let (vm, vx) = match value {
                        Operand::Value(v) => (0u64, v.as_u128() as u64 & fmask),
                        Operand::Expr(e) => same_field_bitwise(e, field)
                            .ok_or_else(|| unsupported(span, "this payload write operand"))?,
                        Operand::Map { .. } => {
                            return Err(unsupported(span, "payload write of a map value"));
                        }
                    };
                    let wm = !(fmask << fshift) | ((vm & fmask) << fshift);
                    let wx = (vx & fmask) << fshift;
                    let be = |x: u64| -> Vec<u8> { x.to_be_bytes()[8 - wlen..].to_vec() };
                    let r = cx.get(16)?;
                    cx.emit(Insn::payload(payload_base(*base), wstart, wlen as u8, r));
                    cx.emit(Insn::Bitwise {
                        sreg: r,
                        dreg: r,
                        len: wlen as u8,
                        op: BitwiseOp::mask_xor(data(&be(wm), span)?, data(&be(wx), span)?),
                    });
                    cx.release(16);
                    r
                };
                cx.emit(Insn::PayloadWrite {
                    base: payload_base(*base),
                    offset: wstart,
                    len: (wend - wstart) as u8,
                    sreg: r,
                    csum_type,
                    csum_offset,
                    csum_flags: if pseudo {
                        NFT_PAYLOAD_L4CSUM_PSEUDOHDR
                    } else {
                        0
                    },
                });
            }
            StmtKind::Notrack => cx.emit(Insn::Notrack),
            StmtKind::Reject(k) => {
                let fam = match (cx.family, cx.nfproto) {
                    (Family::Inet, Some(NFPROTO_IPV4)) => Family::Ip,
                    (Family::Inet, Some(NFPROTO_IPV6)) => Family::Ip6,
                    (f, _) => f,
                };
                let (ty, code) = match (k, fam) {
                    (RejectKind::Default, Family::Inet) => (2, 1),
                    (RejectKind::Default, Family::Ip) => (0, 3),
                    (RejectKind::Default, Family::Ip6) => (0, 4),
                    (RejectKind::TcpReset, _) => (1, 0),
                    (RejectKind::Icmp(c) | RejectKind::Icmpv6(c), _) => (0, *c),
                    (RejectKind::Icmpx(c), _) => (2, *c),
                };
                cx.emit(Insn::Reject { ty, code });
            }
            StmtKind::Nat(n) => self.lower_nat(cx, n)?,
            StmtKind::SetUpdate {
                op,
                set: hset,
                key,
                data: dop,
                timeout,
            } => {
                // netlink_gen_set_stmt / netlink_gen_map_stmt: the key into `get_register(key)`,
                // a map's data into the next register, `dynset OP reg_key set [sreg_data]
                // [timeout]` (the timeout only when the statement has one).
                let set = self.named_ref(*hset, span)?;
                let (sreg, n) = cx.get_for(key)?;
                self.gen_expr(cx, key, sreg, false, false)?;
                let sreg_data = match (dop, self.hir.set(*hset).and_then(|s| s.data.as_deref())) {
                    (Some(v), Some([ty])) => {
                        let r = self.gen_operand(cx, v, *ty, span)?;
                        cx.release(16);
                        Some(r)
                    }
                    (None, _) => None,
                    _ => return Err(unsupported(span, "this map data")),
                };
                cx.release(n);
                cx.emit(Insn::Dynset {
                    op: match op {
                        hir::SetOp::Add => DynsetOp::Add,
                        hir::SetOp::Update => DynsetOp::Update,
                        hir::SetOp::Delete => DynsetOp::Delete,
                    },
                    sreg,
                    set,
                    sreg_data,
                    timeout_ms: timeout.unwrap_or(0),
                });
            }
            StmtKind::Other(s) => return Err(unsupported(span, s.clone())),
        }
        Ok(())
    }

    fn lower_nat(&mut self, cx: &mut Rcx, n: &hir::NatStmt) -> R<()> {
        let span = cx.span;
        let fam = n.family.or(match (cx.family, cx.nfproto) {
            (Family::Ip, _) | (Family::Inet, Some(NFPROTO_IPV4)) => Some(Family::Ip),
            (Family::Ip6, _) | (Family::Inet, Some(NFPROTO_IPV6)) => Some(Family::Ip6),
            (Family::Inet, _) => None,
        });
        let (addr_ty, nfproto) = match fam {
            Some(Family::Ip6) => (Type::Ipv6Addr, NFPROTO_IPV6),
            Some(_) => (Type::Ipv4Addr, NFPROTO_IPV4),
            None => (Type::Ipv4Addr, NFPROTO_INET),
        };
        let mut spec = NatSpec {
            kind: match n.kind {
                NatKind::Snat => nfr_vm::insn::NatKind::Snat,
                NatKind::Dnat => nfr_vm::insn::NatKind::Dnat,
                NatKind::Masquerade => nfr_vm::insn::NatKind::Masquerade,
                NatKind::Redirect => nfr_vm::insn::NatKind::Redirect,
            },
            family: nfproto,
            addr_min: None,
            addr_max: None,
            proto_min: None,
            proto_max: None,
            flags: 0,
        };
        let mut regs = 0;
        if let Some(a) = &n.addr {
            let r = cx.get(16)?;
            regs += 1;
            match a {
                Operand::Value(v) => {
                    let hi = match &n.addr_hi {
                        Some(h) => {
                            let r2 = cx.get(16)?;
                            regs += 1;
                            Some((r2, h))
                        }
                        None => None,
                    };
                    cx.emit(Insn::Immediate {
                        dreg: r,
                        data: data(&encode(v, &Field::plain(addr_ty)), span)?,
                    });
                    if let Some((r2, h)) = hi {
                        cx.emit(Insn::Immediate {
                            dreg: r2,
                            data: data(&encode(h, &Field::plain(addr_ty)), span)?,
                        });
                        spec.addr_max = Some(r2);
                    }
                }
                Operand::Map { key, map } => {
                    let (dt, ivdata) = match map {
                        VmapRef::Named(id) => {
                            let s = self.hir.set(*id);
                            (
                                s.and_then(|s| s.data.clone())
                                    .unwrap_or_else(|| vec![addr_ty]),
                                s.is_some_and(|s| interval_data(&s.elements)),
                            )
                        }
                        VmapRef::Anon(a) => (
                            match a.elements.first().and_then(|e| e.data.as_deref()) {
                                Some(MapData::Value(p)) if p.len() > 1 => {
                                    vec![addr_ty, Type::InetService]
                                }
                                _ => vec![addr_ty],
                            },
                            interval_data(&a.elements),
                        ),
                    };
                    let aw = words(addr_ty.byte_len() as usize);
                    // the data spans several registers: reserve them
                    let extra = map_data_len(&dt) * if ivdata { 2 } else { 1 };
                    if extra > 16 {
                        cx.get(extra - 16)?;
                    }
                    self.gen_map(cx, key, map, LookupDest::Reg(r), &dt, span)?;
                    if extra > 16 {
                        cx.release(extra - 16);
                    }
                    let at = |n: u8| Reg(r.0 + n);
                    match (dt.len() > 1, ivdata) {
                        (false, false) => {}
                        (false, true) => spec.addr_max = Some(at(aw)),
                        (true, false) => spec.proto_min = Some(at(aw)),
                        (true, true) => {
                            spec.proto_min = Some(at(aw));
                            spec.addr_max = Some(at(aw + 1));
                            spec.proto_max = Some(at(2 * aw + 1));
                        }
                    }
                }
                Operand::Expr(e) => self.gen_expr(cx, e, r, false, true)?,
            }
            spec.addr_min = Some(r);
        }
        if let Some(pm) = &n.port_map {
            let r = cx.get(16)?;
            regs += 1;
            match pm {
                Operand::Map { key, map } => {
                    self.gen_map(cx, key, map, LookupDest::Reg(r), &[Type::InetService], span)?
                }
                _ => return Err(unsupported(span, "nat port operand")),
            }
            spec.proto_min = Some(r);
            spec.flags |= nfr_proto::nat::NF_NAT_RANGE_PROTO_SPECIFIED;
        } else if let Some(p) = &n.port {
            let r = cx.get(16)?;
            regs += 1;
            let r2 = match &n.port_hi {
                Some(_) => {
                    regs += 1;
                    Some(cx.get(16)?)
                }
                None => None,
            };
            let pf = Field::plain(Type::InetService);
            cx.emit(Insn::Immediate {
                dreg: r,
                data: data(&encode(p, &pf), span)?,
            });
            spec.proto_min = Some(r);
            if let (Some(r2), Some(h)) = (r2, &n.port_hi) {
                cx.emit(Insn::Immediate {
                    dreg: r2,
                    data: data(&encode(h, &pf), span)?,
                });
                spec.proto_max = Some(r2);
            }
            spec.flags |= nfr_proto::nat::NF_NAT_RANGE_PROTO_SPECIFIED;
        }
        for f in &n.flags {
            use nfr_proto::nat::*;
            spec.flags |= match f.as_str() {
                "random" => NF_NAT_RANGE_PROTO_RANDOM,
                "persistent" => NF_NAT_RANGE_PERSISTENT,
                "fully-random" => NF_NAT_RANGE_PROTO_RANDOM_FULLY,
                "netmap" => NF_NAT_RANGE_NETMAP,
                "prefix" => NF_NAT_RANGE_MAP_IPS,
                _ => 0,
            };
        }
        for _ in 0..regs {
            cx.release(16);
        }
        cx.emit(Insn::Nat(spec));
        Ok(())
    }

    fn lower_verdict(&mut self, cx: &mut Rcx, v: &Verdict) -> R<()> {
        let cv = match &v.kind {
            VerdictKind::Vmap { key, map } => {
                return self.gen_map(cx, key, map, LookupDest::Verdict, &[Type::Verdict], v.span);
            }
            VerdictKind::Queue {
                num,
                num_hi,
                bypass,
                fanout,
            } => {
                let total = num_hi.map_or(1, |h| h.saturating_sub(*num).saturating_add(1));
                cx.emit(Insn::Queue {
                    num: *num,
                    total,
                    bypass: *bypass,
                    fanout: *fanout,
                });
                return Ok(());
            }
            _ => self.chain_verdict(v)?,
        };
        cx.emit(Insn::ImmVerdict(cv));
        Ok(())
    }
}

/// `field set field | a & b ...`: the combined (mask, xor) over the field's own bits.
fn same_field_bitwise(e: &Expr, field: &Expr) -> Option<(u64, u64)> {
    let mut chain = Vec::new();
    let mut cur = e;
    while let ExprKind::Bitwise { expr, op, value } = &cur.kind {
        chain.push((*op, value.as_u128() as u64));
        cur = expr;
    }
    if cur.kind != field.kind || chain.is_empty() {
        return None;
    }
    let (mut mask, mut xor) = (u64::MAX, 0u64);
    for (op, v) in chain.iter().rev() {
        match op {
            BitOp::And => {
                mask &= v;
                xor &= v;
            }
            BitOp::Or => {
                mask &= !v;
                xor = (xor & !v) ^ v;
            }
            BitOp::Xor => xor ^= v,
            _ => return None,
        }
    }
    Some((mask, xor))
}

fn cmp_op(op: Op) -> CmpOp {
    match op {
        Op::Eq | Op::Bitmask => CmpOp::Eq,
        Op::Neq | Op::NotBitmask => CmpOp::Neq,
        Op::Lt => CmpOp::Lt,
        Op::Gt => CmpOp::Gt,
        Op::Lte => CmpOp::Lte,
        Op::Gte => CmpOp::Gte,
    }
}

fn map_data_len(ts: &[Type]) -> usize {
    if ts.len() > 1 {
        ts.iter().map(|t| pad4(Field::plain(*t).len)).sum()
    } else {
        ts.first().map_or(4, |t| Field::plain(*t).len)
    }
}

/// Some element maps to a range or prefix (nat maps): every element's data is then the low
/// values followed by the high values.
fn interval_data<'a>(elements: impl Into<ElementsRef<'a>>) -> bool {
    elements.into().iter().any(|e| {
        matches!(e.data.as_deref(), Some(MapData::Value(p)) if p.iter().any(|k| !matches!(k, KeyPart::Value(_))))
    })
}

fn map_data_bytes(parts: &[KeyPart], ts: &[Type], interval: bool, span: Span) -> R<Vec<u8>> {
    let mut lo = Vec::new();
    let mut hi = Vec::new();
    for (p, t) in parts.iter().zip(ts) {
        let f = Field::plain(*t);
        let (mut a, mut b) = match p {
            KeyPart::Value(v) => (encode(v, &f), encode(v, &f)),
            KeyPart::Range { lo, hi } if interval => (encode(lo, &f), encode(hi, &f)),
            KeyPart::Prefix { value, len } if interval => prefix_bounds(value, *len, &f),
            _ => return Err(unsupported(span, "ranges or prefixes as map data")),
        };
        if ts.len() > 1 {
            a.resize(pad4(f.len), 0);
            b.resize(pad4(f.len), 0);
        }
        lo.extend(a);
        hi.extend(b);
    }
    if interval {
        lo.extend(hi);
    }
    Ok(lo)
}

/// Lowest and highest value of `value/len` in `f`'s register encoding.
fn prefix_bounds(value: &Value, len: u32, f: &Field) -> (Vec<u8>, Vec<u8>) {
    let be = Field { hton: true, ..*f };
    let x = encode(value, &be);
    let mut lo = x.clone();
    let mut hi = x;
    for (i, (l, h)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
        let keep = (len as usize).saturating_sub(i * 8).min(8);
        let mask = if keep == 0 { 0u8 } else { 0xffu8 << (8 - keep) };
        *l &= mask;
        *h = (*h & mask) | !mask;
    }
    if f.host() && !f.hton {
        lo.reverse();
        hi.reverse();
    }
    (lo, hi)
}

/// The (from, to) key bytes of an element (equal for plain values), each concatenated
/// field padded to 4 bytes.
fn element_bounds(el: &Element, fields: &[Field]) -> R<(Vec<u8>, Vec<u8>)> {
    let concat = fields.len() > 1;
    let mut from = Vec::new();
    let mut to = Vec::new();
    if el.key.len() != fields.len() {
        return Err(unsupported(el.span, "element does not match the key"));
    }
    for (k, f) in el.key.iter().zip(fields) {
        let (mut a, mut b) = match k {
            KeyPart::Value(v) => {
                let x = encode(v, f);
                (x.clone(), x)
            }
            KeyPart::Range { lo, hi } => (encode(lo, f), encode(hi, f)),
            KeyPart::Prefix { value, len } => prefix_bounds(value, *len, f),
        };
        if concat {
            a.resize(pad4(f.len), 0);
            b.resize(pad4(f.len), 0);
        }
        from.extend(a);
        to.extend(b);
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_source;

    fn lowered(rules: &str) -> (Hir, Program) {
        let src = format!(
            "table inet t {{\n\tchain c {{\n\t\ttype filter hook input priority 0; policy accept;\n{rules}\n\t}}\n\tchain u {{\n\t\taccept\n\t}}\n}}\n"
        );
        let (_, hir, diags) = check_source("t.nfr", &src);
        let hir = hir.unwrap_or_else(|| panic!("rejected: {diags:?}"));
        let prog = lower(&hir).expect("lowers");
        (hir, prog)
    }

    fn text(rule: &str) -> Vec<String> {
        let (_, p) = lowered(rule);
        let r = p.chains[0].rules[0];
        nfr_vm::print::print_rule(&p, r)
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    }

    #[test]
    fn consecutive_matches_reuse_reg_1() {
        assert_eq!(
            text("\t\tmeta mark 0x1 ct mark 0x2"),
            [
                "[ meta load mark => reg 1 ]",
                "[ cmp eq reg 1 0x00000001 ]",
                "[ ct load mark => reg 1 ]",
                "[ cmp eq reg 1 0x00000002 ]",
            ]
        );
    }

    #[test]
    fn concatenation_fields_take_padded_registers() {
        let t = text("\t\tip saddr . tcp dport { 10.0.0.1 . 22 } accept");
        assert!(t.contains(&"[ payload load 4b @ network header + 12 => reg 1 ]".to_string()));
        assert!(t.contains(&"[ payload load 2b @ transport header + 2 => reg 9 ]".to_string()));
        assert!(t.iter().any(|l| l.starts_with("[ lookup reg 1 set __set")));
    }

    #[test]
    fn prefixes_as_nft_does() {
        assert_eq!(
            text("\t\tip saddr 192.168.1.0/24")[2..],
            [
                "[ payload load 3b @ network header + 12 => reg 1 ]",
                "[ cmp eq reg 1 0x0001a8c0 ]",
            ]
        );
        assert_eq!(
            text("\t\tip saddr 172.16.16.0/20")[2..],
            [
                "[ payload load 4b @ network header + 12 => reg 1 ]",
                "[ bitwise reg 1 = ( reg 1 & 0x00f0ffff ) ^ 0x00000000 ]",
                "[ cmp eq reg 1 0x001010ac ]",
            ]
        );
    }

    #[test]
    fn ct_state_is_a_bit_test() {
        assert_eq!(
            text("\t\tct state established,related accept"),
            [
                "[ ct load state => reg 1 ]",
                "[ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]",
                "[ cmp neq reg 1 0x00000000 ]",
                "[ immediate reg 0 accept ]",
            ]
        );
    }

    #[test]
    fn host_order_ranges_are_converted() {
        assert_eq!(
            text("\t\tmeta mark 0x10-0x20"),
            [
                "[ meta load mark => reg 1 ]",
                "[ byteorder reg 1 = hton(reg 1, 4, 4) ]",
                "[ range eq reg 1 0x10000000 0x20000000 ]",
            ]
        );
    }

    #[test]
    fn verdicts_and_statements() {
        assert_eq!(
            text("\t\ttcp dport 22 counter log prefix \"x\" jump u"),
            [
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000006 ]",
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ cmp eq reg 1 0x00001600 ]",
                "[ counter pkts 0 bytes 0 ]",
                "[ log prefix x ]",
                "[ immediate reg 0 jump -> u ]",
            ]
        );
        assert_eq!(
            text("\t\tmeta mark set tcp dport map { 22 : 0x1 }")[2..],
            [
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ lookup reg 1 set __map0 dreg 1 ]",
                "[ meta set mark with reg 1 ]",
            ]
        );
    }

    #[test]
    fn debug_table_points_at_the_source() {
        let src = "table ip t {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t\ttcp dport 22 drop\n\t}\n}\n";
        let (_, hir, _) = check_source("t.nfr", src);
        let prog = lower(&hir.expect("accepted")).expect("lowers");
        let spans: Vec<&str> = (0..prog.insns.len())
            .filter_map(|i| prog.span(nfr_vm::InsnIdx(i as u32)))
            .map(|(a, b)| &src[a as usize..b as usize])
            .collect();
        assert_eq!(spans.len(), prog.insns.len());
        assert_eq!(spans.last(), Some(&"drop"));
        assert!(spans.contains(&"tcp dport 22"), "{spans:?}");
    }

    #[test]
    fn verifies_and_keeps_chain_ids() {
        let (hir, p) = lowered("\t\tjump u");
        assert_eq!(p.chains.len(), hir.chains.len());
        assert_eq!(p.chain_by_name("u"), Some(ChainId(1)));
        assert!(p.verify().is_ok());
    }

    #[test]
    fn ingress_is_not_supported() {
        let src = "table inet t {\n\tchain c {\n\t\ttype filter hook ingress device \"eth0\" priority 0;\n\t}\n}\n";
        let (_, hir, diags) = check_source("t.nfr", src);
        if let Some(hir) = hir {
            let e = lower(&hir).expect_err("no ingress hook in the vm");
            assert!(matches!(e.kind, LowerErrorKind::Unsupported(_)));
        } else {
            assert!(!diags.is_empty());
        }
    }

    #[test]
    fn program_printer_shows_sets_and_chains() {
        let (hir, p) = lowered("\t\ttcp dport { 22, 80 } accept");
        let out = print_program(&hir, &p);
        assert!(out.contains("__set0 t 3\n__set0 t 0\n"), "{out}");
        assert!(out.contains("\telement 00001600  : 0 [end]"), "{out}");
        assert!(
            out.contains("inet t c\n  [ meta load l4proto => reg 1 ]"),
            "{out}"
        );
        assert!(
            out.contains("inet t u\n  [ immediate reg 0 accept ]"),
            "{out}"
        );
    }
}
