//! The checked ruleset (Hir): what `check()` produces and the lowerings consume.
//!
//! Everything is resolved and typed: names are ids (`ChainId`, `SetId`), values are bytes in
//! network order with their length, implicit protocol dependencies are explicit matches
//! (marked `implicit: true`; a rule keeps them compact, as [`Dep`]s, and
//! [`Rule::items_with_deps`] gives them in their places), and every node keeps its source span.
//! A `Hir` exists only when the checker found no errors.
//!
//! Payload fields are described in bits (`offset_bits`, `len_bits`) from the start of their
//! header; [`Expr::load_window`] gives the byte window, mask and shift a lowering needs.
//! The value of a sub-byte field (e.g. `ip dscp`) is stored right-aligned in
//! `ceil(len_bits / 8)` bytes (dscp cs1 = `[0x08]`); the lowering shifts it into place.

mod elements;

pub use elements::{Elements, ElementsRef};

use std::borrow::Cow;

use crate::diag::{SourceMap, Span};
use crate::lower::ipt_mapping::IptMapping;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(pub u32);

/// Table families nfc supports (arp/bridge/netdev are rejected by the checker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
        }
    }
}

/// Netfilter hooks (NF_INET_* plus ingress).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    Ingress,
}

impl Hook {
    pub const ALL: [Hook; 6] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
        Hook::Ingress,
    ];
    pub fn name(self) -> &'static str {
        self.nf_hook().map_or("ingress", nfr_proto::Hook::name)
    }
    /// The NF_INET_* hook (`None` for ingress).
    pub fn nf_hook(self) -> Option<nfr_proto::Hook> {
        nfr_proto::Hook::from_u32(self.nf_inet())
    }
    pub fn from_name(s: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name() == s)
    }
    /// NF_INET_* number (ingress = 5 as in NF_INET_INGRESS).
    pub fn nf_inet(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
            Hook::Ingress => 5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    pub fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
    pub fn from_name(s: &str) -> Option<ChainType> {
        match s {
            "filter" => Some(ChainType::Filter),
            "nat" => Some(ChainType::Nat),
            "route" => Some(ChainType::Route),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hir {
    /// `flush ruleset` appeared (atomic replace).
    pub flush_ruleset: bool,
    pub tables: Vec<Table>,
    /// All chains of all tables, indexed by `ChainId`.
    pub chains: Vec<Chain>,
    /// All named sets/maps of all tables, indexed by `SetId`.
    pub sets: Vec<Set>,
    /// All `counter NAME { ... }` objects of all tables; `StmtKind::NamedCounter::obj` indexes them
    /// (and the bytecode gives object `i` the counter `CounterId(i)`).
    pub counters: Vec<CounterObj>,
}

/// A named counter object (`counter NAME { packets N bytes M }`, `nft_counter` as an object):
/// every `counter name "NAME"` in the table's rules adds to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterObj {
    pub table: TableId,
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
    pub span: Span,
}

impl Hir {
    pub fn chain(&self, id: ChainId) -> Option<&Chain> {
        self.chains.get(id.0 as usize)
    }
    pub fn set(&self, id: SetId) -> Option<&Set> {
        self.sets.get(id.0 as usize)
    }
    pub fn table(&self, id: TableId) -> Option<&Table> {
        self.tables.get(id.0 as usize)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub id: TableId,
    pub family: Family,
    pub name: String,
    pub span: Span,
    pub chains: Vec<ChainId>,
    pub sets: Vec<SetId>,
    /// Stateful objects declared in the table (`counter NAME`, `ct helper NAME`): they take
    /// handles after the chains (see `Rule::handle` in the bytecode).
    pub objects: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub id: ChainId,
    pub table: TableId,
    pub name: String,
    pub span: Span,
    pub kind: ChainKind,
    pub rules: Vec<Rule>,
}

impl Chain {
    pub fn base(&self) -> Option<&BaseChain> {
        match &self.kind {
            ChainKind::Base(b) => Some(b),
            ChainKind::User => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainKind {
    Base(BaseChain),
    User,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseChain {
    pub ty: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
    pub device: Option<String>,
    pub span: Span,
}

/// A rule: items in source order (matches and statements interleave, as in nft) and at
/// most one verdict, which is always last (verdict maps are items, see [`Item::Vmap`]).
/// Its implicit protocol matches are `deps` (read the items through [`Rule::items_with_deps`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Rule {
    pub span: Span,
    pub items: Vec<Item>,
    /// Implicit protocol matches kept compact (in order; more than two stay in `items`).
    pub deps: [Option<Dep>; 2],
    pub verdict: Option<Verdict>,
    pub comment: Option<Box<str>>,
}

impl Rule {
    /// The items with each of `deps` made into its implicit match, in its place.
    pub fn items_with_deps(&self) -> Vec<Cow<'_, Item>> {
        let deps = || self.deps.iter().flatten();
        if deps().next().is_none() {
            return self.items.iter().map(Cow::Borrowed).collect();
        }
        let mut out = Vec::with_capacity(self.items.len() + deps().count());
        for i in 0..=self.items.len() {
            for d in deps().filter(|d| usize::from(d.before) == i) {
                out.push(Cow::Owned(Item::Match(d.to_match())));
            }
            if let Some(it) = self.items.get(i) {
                out.push(Cow::Borrowed(it));
            }
        }
        out
    }

    /// The matches, implicit ones included (see [`Rule::items_with_deps`]).
    pub fn matches(&self) -> impl Iterator<Item = Cow<'_, Match>> {
        self.items_with_deps().into_iter().filter_map(|i| match i {
            Cow::Borrowed(Item::Match(m)) => Some(Cow::Borrowed(m)),
            Cow::Owned(Item::Match(m)) => Some(Cow::Owned(m)),
            _ => None,
        })
    }
    pub fn stmts(&self) -> impl Iterator<Item = &Stmt> {
        self.items.iter().filter_map(|i| match i {
            Item::Stmt(s) => Some(s),
            _ => None,
        })
    }
}

/// As derived, with the implicit matches among the items (as they were before `deps`).
impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("span", &self.span)
            .field("items", &self.items_with_deps())
            .field("verdict", &self.verdict)
            .field("comment", &self.comment)
            .finish()
    }
}

/// The key of an implicit protocol match ([`Dep`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepKey {
    /// `meta nfproto`: the family, before a network header field in an inet table.
    Nfproto,
    /// `meta l4proto`: the transport protocol, before a transport header field.
    L4proto,
}

impl DepKey {
    /// How nft names `value` of this key (`ipv4`, `tcp`; a protocol without a name as its number).
    pub fn value_name(self, value: u8) -> String {
        match self {
            DepKey::Nfproto if value == nfr_proto::desc::NFPROTO_IPV6 => "ipv6".to_string(),
            DepKey::Nfproto => "ipv4".to_string(),
            DepKey::L4proto => Type::InetProto
                .symbol_name(u64::from(value))
                .map_or_else(|| value.to_string(), str::to_string),
        }
    }

    /// The implicit match `meta KEY == value` at `span`, its value named as nft lists it.
    pub fn implicit(self, value: u8, span: Span) -> Match {
        let (key, ty) = match self {
            DepKey::Nfproto => ("nfproto", Type::Nfproto),
            DepKey::L4proto => ("l4proto", Type::InetProto),
        };
        let text = self.value_name(value);
        let meta =
            nfr_grammar::catalog::meta_key(key).unwrap_or(&nfr_grammar::catalog::META_KEYS[0]);
        Match {
            left: Expr {
                kind: ExprKind::Meta { key: meta },
                ty,
                span,
            },
            op: Op::Eq,
            right: Rhs::Value(Value {
                ty,
                bytes: Bytes::new(&[value]),
                text: Some(text.into()),
                span,
            }),
            implicit: true,
            span,
        }
    }
}

/// An implicit protocol match nft inserts before an item (`meta l4proto tcp` before `tcp dport 22`, `meta
/// nfproto ipv4` before `ip saddr` in an inet table), kept in its rule as these 16 bytes instead of a
/// 128 B item and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dep {
    pub key: DepKey,
    pub value: u8,
    /// It stands before `items[before]`.
    pub before: u16,
    pub span: Span,
}

impl Dep {
    /// The implicit match it stands for.
    pub fn to_match(&self) -> Match {
        self.key.implicit(self.value, self.span)
    }

    /// `m` as a dependency before item `before`, when it is an implicit match that one gives back whole.
    pub fn of(m: &Match, before: usize) -> Option<Dep> {
        let key = match &m.left.kind {
            ExprKind::Meta { key } if key.name == "nfproto" => DepKey::Nfproto,
            ExprKind::Meta { key } if key.name == "l4proto" => DepKey::L4proto,
            _ => return None,
        };
        let Rhs::Value(v) = &m.right else { return None };
        let &[value] = &*v.bytes else { return None };
        let d = Dep {
            key,
            value,
            before: u16::try_from(before).ok()?,
            span: m.span,
        };
        (m.implicit && d.to_match() == *m).then_some(d)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Match(Match),
    Stmt(Stmt),
    /// A verdict map (`tcp dport vmap { 22 : accept }`). Unlike other verdicts it may be
    /// followed by statements, which run only when the map gives no verdict or `continue`.
    Vmap(Verdict),
}

// ---------------------------------------------------------------------------------------
// Types and values

/// Datatypes of selectors and values: nft's datatypes, from the grammar's catalog
/// (`bits()`, `byte_len()`, `byteorder()`, `is_bitmask()`, `name()`, symbol tables).
///
/// Values of every type are stored in network order (big endian) in Hir; a lowering converts
/// the types whose `byteorder()` is `Host` (mark, ct state, ...) to register order.
pub use nfr_grammar::catalog::Datatype as Type;
/// Meta and ct keys from the grammar's catalog (`name`, `dtype`, `len_bits`).
pub use nfr_grammar::catalog::{CtKey, MetaKey, PayloadField};

/// A typed constant: bytes in network order, `ty.bytes()` long (ifname: 16 bytes, NUL padded;
/// an ifname wildcard `"eth*"` holds only the prefix `eth`, 3 bytes: compare that many).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub ty: Type,
    pub bytes: Bytes,
    /// How it was written when that is not the source text at `span` (an implied protocol's name,
    /// a value the lowering made); `None`, the usual case, is the source text: see [`Value::text`].
    pub text: Option<Box<str>>,
    pub span: Span,
}

impl Value {
    /// The value as an unsigned integer (first 16 bytes at most), for printing and tests.
    pub fn as_u128(&self) -> u128 {
        self.bytes
            .iter()
            .take(16)
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
    }

    /// How the user wrote it (symbol, number, address), for printing.
    pub fn text<'a>(&'a self, sources: &'a SourceMap) -> &'a str {
        match &self.text {
            Some(t) => t,
            None => sources
                .text(self.span.file)
                .get(self.span.range())
                .unwrap_or(""),
        }
    }
}

/// A value's bytes: up to [`Bytes::INLINE`] in place (every address, port, mark and interface name), longer
/// ones on the heap. Compares, hashes and prints as the byte slice it holds.
#[derive(Clone)]
pub enum Bytes {
    Inline { len: u8, buf: [u8; Bytes::INLINE] },
    Heap(Box<[u8]>),
}

impl Bytes {
    /// The longest value held in place (`sizeof(struct nft_data)`).
    pub const INLINE: usize = 16;

    pub fn new(b: &[u8]) -> Bytes {
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= Self::INLINE => {
                let mut buf = [0u8; Self::INLINE];
                buf[..b.len()].copy_from_slice(b);
                Bytes::Inline { len, buf }
            }
            _ => Bytes::Heap(b.into()),
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or(buf),
            Bytes::Heap(b) => b,
        }
    }
}

impl std::ops::DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Bytes::Inline { len, buf } => {
                let n = usize::from(*len).min(Self::INLINE);
                &mut buf[..n]
            }
            Bytes::Heap(b) => b,
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes::new(&v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Bytes {
        Bytes::new(v)
    }
}

impl PartialEq for Bytes {
    fn eq(&self, o: &Bytes) -> bool {
        **self == **o
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, o: &Bytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Bytes {
    fn cmp(&self, o: &Bytes) -> std::cmp::Ordering {
        (**self).cmp(&**o)
    }
}

impl std::hash::Hash for Bytes {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (**self).hash(h);
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

// ---------------------------------------------------------------------------------------
// Expressions (left-hand sides)

/// NFT_PAYLOAD_LL_HEADER, NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER.
pub use nfr_proto::catalog::PayloadBase;

/// The operation of a set statement (`add`, `update`, `delete`).
pub use nfr_grammar::ast::SetOp;
/// Tuple direction of `ct original|reply KEY`.
pub use nfr_proto::catalog::CtDir;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    /// A header field: the catalog's descriptor (`tcp dport`), `None` for the raw form
    /// `@th,16,16`; where it is, in bits from the start of its header.
    Payload {
        field: Option<&'static PayloadField>,
        base: PayloadBase,
        offset_bits: u32,
        len_bits: u32,
    },
    Meta {
        key: &'static MetaKey,
    },
    /// `family` is set for `ct original ip saddr` style keys (address family of saddr/daddr).
    Ct {
        key: &'static CtKey,
        dir: Option<CtDir>,
        family: Option<Family>,
    },
    /// `numgen inc|random mod MODULUS [offset OFFSET]`: a 32-bit host-order number.
    Numgen {
        random: bool,
        modulus: u32,
        offset: u32,
    },
    /// `fib saddr|daddr type`: the route type of the packet's source or destination address
    /// (`daddr`: `NFTA_FIB_F_DADDR`), 4 bytes host order.
    FibType {
        daddr: bool,
    },
    /// `a . b . c`
    Concat(Vec<Expr>),
    /// `expr & mask` (also `|`, `^`): a bitwise operation with a constant.
    /// (The constant boxed: rare, and it would double every expression's size.)
    Bitwise {
        expr: Box<Expr>,
        op: BitOp,
        value: Box<Value>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    /// `<<` by a constant (statement operands only, e.g. `meta mark set ip dscp << 2`).
    Shl,
    /// `>>` by a constant.
    Shr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Type,
    pub span: Span,
}

impl Expr {
    /// Whether this is a network header's protocol key (`ip protocol`, `ip6 nexthdr`): the field that
    /// names the transport protocol (`nfr_proto::desc`).
    pub fn is_l4_protocol_key(&self) -> bool {
        self.payload_field().is_some_and(|f| {
            nfr_proto::desc::desc(f.proto).is_some_and(|d| {
                d.base == PayloadBase::Network
                    && d.protocol_key == nfr_proto::desc::ProtoKey::Field(f.field)
            })
        })
    }

    /// The catalog descriptor of a (non-raw) payload field.
    pub fn payload_field(&self) -> Option<&'static PayloadField> {
        match &self.kind {
            ExprKind::Payload { field, .. } => *field,
            _ => None,
        }
    }

    /// For a payload field: `(byte_offset, byte_len, mask, shift)` of the load window, where
    /// `mask` is `Some` for fields that do not fill whole bytes, and `shift` is how far the
    /// field value must be shifted left to sit in the window.
    pub fn load_window(&self) -> Option<(u32, u32, Option<Vec<u8>>, u32)> {
        let ExprKind::Payload {
            offset_bits,
            len_bits,
            ..
        } = &self.kind
        else {
            return None;
        };
        let (off, len) = (*offset_bits, *len_bits);
        let start = off / 8;
        let end = (off + len).div_ceil(8);
        let nbytes = end - start;
        let shift = end * 8 - (off + len);
        if off % 8 == 0 && len % 8 == 0 {
            return Some((start, nbytes, None, 0));
        }
        let mut mask = vec![0u8; nbytes as usize];
        for bit in 0..len {
            let pos = off + bit - start * 8; // bit index from the window's MSB
            if let Some(b) = mask.get_mut((pos / 8) as usize) {
                *b |= 0x80 >> (pos % 8);
            }
        }
        Some((start, nbytes, Some(mask), shift))
    }
}

// ---------------------------------------------------------------------------------------
// Matches

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Lt,
    Gt,
    Lte,
    Gte,
    /// Implicit flag test: `ct state new,established` ⇒ `(x & mask) != 0`.
    Bitmask,
    /// `!` flag test: `tcp flags ! syn` ⇒ `(x & mask) == 0`.
    NotBitmask,
}

/// One element of a set (or one `:`-pair of a map). For concatenations, one part per field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// Empty for the catch-all element `*` (object maps only).
    pub key: Vec<KeyPart>,
    /// Boxed: most elements have none, and a verdict is large.
    pub data: Option<Box<MapData>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    Value(Value),
    /// `addr/len`: `value` is already masked to the prefix.
    Prefix {
        value: Value,
        len: u32,
    },
    /// `lo-hi`, inclusive. (Boxed, as [`Rhs::Range`]: most elements are single values.)
    Range {
        lo: Box<Value>,
        hi: Box<Value>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapData {
    /// One part per concatenated data field; nat maps may map to ranges/prefixes.
    Value(Vec<KeyPart>),
    Verdict(Verdict),
    /// A named object (object maps, `NFT_SET_OBJECT`): `counter name KEY map { k : "NAME" }`.
    Object(ObjTarget),
}

/// The kind of object an object map holds (`NFT_OBJECT_COUNTER`, `NFT_OBJECT_CT_HELPER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjKind {
    Counter,
    CtHelper,
}

impl ObjKind {
    /// nft's keyword for the object type.
    pub fn name(self) -> &'static str {
        match self {
            ObjKind::Counter => "counter",
            ObjKind::CtHelper => "ct helper",
        }
    }
}

/// The object an object-map element names, resolved by the checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjTarget {
    /// A counter object: index into `Hir::counters` (and the bytecode's `CounterId`).
    Counter(u32),
    /// A `ct helper` object: its name and the helper type it attaches (`"ftp"`).
    CtHelper { name: String, helper: String },
}

impl ObjTarget {
    pub fn kind(&self) -> ObjKind {
        match self {
            ObjTarget::Counter(_) => ObjKind::Counter,
            ObjTarget::CtHelper { .. } => ObjKind::CtHelper,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonSet {
    pub elements: Vec<Element>,
    /// Some element is a range or prefix (NFT_SET_INTERVAL).
    pub interval: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rhs {
    Value(Value),
    /// For concatenations: one value per part.
    Concat(Vec<Value>),
    Prefix {
        value: Value,
        len: u32,
    },
    /// (Boxed: rare in rules, and two values inline would double every match's size.)
    Range {
        lo: Box<Value>,
        hi: Box<Value>,
    },
    Set(AnonSet),
    SetRef(SetId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub left: Expr,
    pub op: Op,
    pub right: Rhs,
    /// Inserted by the checker as a protocol dependency (not written by the user).
    pub implicit: bool,
    pub span: Span,
}

// ---------------------------------------------------------------------------------------
// Statements and verdicts

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    Value(Value),
    Expr(Expr),
    /// `KEY map { k : v, ... }` / `KEY map @m`: the value looked up by a key.
    Map {
        key: Box<Expr>,
        map: VmapRef,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    Snat,
    Dnat,
    Masquerade,
    Redirect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    /// plain `reject`: icmp port-unreachable (ip) / icmpx port-unreachable (inet)
    Default,
    TcpReset,
    Icmp(u8),
    Icmpv6(u8),
    Icmpx(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
}

impl RateUnit {
    /// The unit in seconds (NFTA_LIMIT_UNIT).
    pub fn seconds(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
            RateUnit::Hour => 3600,
            RateUnit::Day => 86400,
            RateUnit::Week => 604800,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StmtKind {
    Counter {
        packets: u64,
        bytes: u64,
    },
    /// `counter name "NAME"` (nft's objref): index into `Hir::counters`.
    NamedCounter {
        obj: u32,
    },
    /// `counter name KEY map { k : "NAME", ... }` / `ct helper set KEY map { ... }` (nft's objref
    /// map, `nft_objref_map`): the object of the element the key finds is applied; no element
    /// means NFT_BREAK. Every element's data is a `MapData::Object` of kind `kind`.
    ObjrefMap {
        kind: ObjKind,
        key: Box<Expr>,
        map: VmapRef,
    },
    Log {
        prefix: Option<String>,
        level: Option<String>,
        group: Option<u16>,
    },
    Limit {
        rate: u64,
        unit: RateUnit,
        over: bool,
        burst: u32,
        bytes: bool,
    },
    MetaSet {
        key: &'static MetaKey,
        value: Operand,
    },
    CtSet {
        key: &'static CtKey,
        value: Operand,
    },
    /// `ip dscp set cs1`, `tcp dport set 80` ...
    PayloadSet {
        field: Expr,
        value: Operand,
    },
    Notrack,
    Reject(RejectKind),
    Nat(Box<NatStmt>),
    /// `add|update|delete @set { KEY [timeout T] [: DATA] }` (nft's set and map statements,
    /// `nft_dynset`): the key's element is added, refreshed or removed from the packet path.
    /// `timeout` (ms) is the element's own; without it the set's default applies. `data` is a
    /// map element's.
    SetUpdate {
        op: SetOp,
        set: SetId,
        key: Box<Expr>,
        data: Option<Operand>,
        timeout: Option<u64>,
    },
    /// Any other statement nfc does not model yet (kept for printing; lowerings reject it).
    Other(String),
}

/// `snat|dnat [ip|ip6] to addr[-addr][:port[-port]] [flags]`, `masquerade`, `redirect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatStmt {
    pub kind: NatKind,
    pub family: Option<Family>,
    pub addr: Option<Operand>,
    pub addr_hi: Option<Value>,
    pub port: Option<Value>,
    pub port_hi: Option<Value>,
    /// `redirect to :tcp dport map { 22 : 8000 }`
    pub port_map: Option<Operand>,
    pub flags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerdictKind {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(ChainId),
    Goto(ChainId),
    Queue {
        num: u16,
        num_hi: Option<u16>,
        bypass: bool,
        fanout: bool,
    },
    /// `key vmap { k : verdict }` or `key vmap @map` (boxed: every rule has a verdict, few a vmap)
    Vmap {
        key: Box<Expr>,
        map: Box<VmapRef>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// An anonymous or named map used by a lookup (`vmap`, `map`).
pub enum VmapRef {
    Anon(AnonSet),
    Named(SetId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub span: Span,
}

// ---------------------------------------------------------------------------------------
// Sets and maps

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetFlags {
    pub constant: bool,
    pub interval: bool,
    pub timeout: bool,
    pub dynamic: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub id: SetId,
    pub table: TableId,
    pub name: String,
    pub span: Span,
    /// One type per concatenated field.
    pub key: Vec<Type>,
    /// Map data type; `Some(Type::Verdict)` for verdict maps; `None` for plain sets and
    /// object maps.
    pub data: Option<Vec<Type>>,
    /// Object maps (`type KEY : counter`): the kind of object the elements name.
    pub obj: Option<ObjKind>,
    pub flags: SetFlags,
    /// `timeout T`: the default timeout (ms) of elements the packet path adds.
    pub timeout: Option<u64>,
    /// `size N`: the most elements the set holds (the kernel's `set->size`).
    pub size: Option<u32>,
    pub elements: Elements,
}

// ---------------------------------------------------------------------------------------
// Debug listing

impl Hir {
    /// A compact nft-like listing of the checked ruleset (ids resolved to names, implicit
    /// dependencies marked `(implicit)`, the iptables mapping per table), values as written in
    /// `sources`. For debugging and tests; `nfc fmt` prints the Ast, not this.
    pub fn listing<'a>(&'a self, sources: &'a SourceMap) -> HirListing<'a> {
        HirListing { hir: self, sources }
    }
}

/// See [`Hir::listing`].
pub struct HirListing<'a> {
    hir: &'a Hir,
    sources: &'a SourceMap,
}

impl std::fmt::Display for HirListing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (hir, sources) = (self.hir, self.sources);
        let txt = |v: &Value| v.text(sources).to_string();
        let chain_name = |id: ChainId| hir.chain(id).map_or("?", |c| c.name.as_str());
        let set_name = |id: SetId| hir.set(id).map_or("?", |s| s.name.as_str());
        let expr = |e: &Expr| -> String { show_expr(e, sources) };
        let part = |k: &KeyPart| -> String {
            match k {
                KeyPart::Value(v) => txt(v),
                KeyPart::Prefix { value, len } => format!("{}/{len}", txt(value)),
                KeyPart::Range { lo, hi } => format!("{}-{}", txt(lo), txt(hi)),
            }
        };
        let verdict = |v: &VerdictKind| -> String {
            match v {
                VerdictKind::Accept => "accept".into(),
                VerdictKind::Drop => "drop".into(),
                VerdictKind::Continue => "continue".into(),
                VerdictKind::Return => "return".into(),
                VerdictKind::Jump(c) => format!("jump {}", chain_name(*c)),
                VerdictKind::Goto(c) => format!("goto {}", chain_name(*c)),
                VerdictKind::Queue { num, num_hi, .. } => match num_hi {
                    Some(h) => format!("queue num {num}-{h}"),
                    None => format!("queue num {num}"),
                },
                VerdictKind::Vmap { key, map } => match &**map {
                    VmapRef::Named(s) => format!("{} vmap @{}", expr(key), set_name(*s)),
                    VmapRef::Anon(a) => {
                        format!("{} vmap {{ {} elements }}", expr(key), a.elements.len())
                    }
                },
            }
        };
        let elements = |els: ElementsRef<'_>| -> String {
            let v: Vec<String> = els
                .iter()
                .map(|e| {
                    let k: Vec<String> = e.key.iter().map(part).collect();
                    let k = if k.is_empty() {
                        "*".to_string()
                    } else {
                        k.join(" . ")
                    };
                    match e.data.as_deref() {
                        None => k,
                        Some(MapData::Verdict(v)) => format!("{k} : {}", verdict(&v.kind)),
                        Some(MapData::Value(d)) => {
                            let d: Vec<String> = d.iter().map(part).collect();
                            format!("{k} : {}", d.join(" . "))
                        }
                        Some(MapData::Object(ObjTarget::Counter(i))) => {
                            format!("{k} : counter #{i}")
                        }
                        Some(MapData::Object(ObjTarget::CtHelper { name, .. })) => {
                            format!("{k} : ct helper {name:?}")
                        }
                    }
                })
                .collect();
            format!("{{ {} }}", v.join(", "))
        };
        for t in &hir.tables {
            // the iptables lowering's verdict on the table, for the reader
            let ipt = match crate::lower::ipt_mapping::table_mapping(hir, t.id) {
                IptMapping::Maps { table, .. } => format!("ipt: {table:?}"),
                IptMapping::No(r) => format!("ipt: no ({} reasons)", r.len()),
            };
            writeln!(f, "table {} {} [{ipt}]", t.family.name(), t.name)?;
            for s in t.sets.iter().filter_map(|s| hir.set(*s)) {
                let key: Vec<&str> = s.key.iter().map(|k| k.name()).collect();
                let data = s.data.as_ref().map_or(String::new(), |d| {
                    let d: Vec<&str> = d.iter().map(|k| k.name()).collect();
                    format!(" : {}", d.join(" . "))
                });
                writeln!(
                    f,
                    "  set {} {}{data} {}",
                    s.name,
                    key.join(" . "),
                    elements((&s.elements).into())
                )?;
            }
            for c in t.chains.iter().filter_map(|c| hir.chain(*c)) {
                match &c.kind {
                    ChainKind::Base(b) => writeln!(
                        f,
                        "  chain {} [{} {} priority {} policy {}]",
                        c.name,
                        b.ty.name(),
                        b.hook.name(),
                        b.priority,
                        if b.policy == Policy::Accept {
                            "accept"
                        } else {
                            "drop"
                        }
                    )?,
                    ChainKind::User => writeln!(f, "  chain {}", c.name)?,
                }
                for r in &c.rules {
                    let mut parts: Vec<String> = Vec::new();
                    for i in &r.items_with_deps() {
                        parts.push(match &**i {
                            Item::Match(m) => {
                                let op = match m.op {
                                    Op::Eq => "==",
                                    Op::Neq => "!=",
                                    Op::Lt => "<",
                                    Op::Gt => ">",
                                    Op::Lte => "<=",
                                    Op::Gte => ">=",
                                    Op::Bitmask => "&",
                                    Op::NotBitmask => "!&",
                                };
                                let rhs = match &m.right {
                                    Rhs::Value(v) => txt(v),
                                    Rhs::Concat(vs) => vs
                                        .iter()
                                        .map(|v| v.text(sources))
                                        .collect::<Vec<_>>()
                                        .join(" . "),
                                    Rhs::Prefix { value, len } => format!("{}/{len}", txt(value)),
                                    Rhs::Range { lo, hi } => format!("{}-{}", txt(lo), txt(hi)),
                                    Rhs::Set(a) => elements((&a.elements).into()),
                                    Rhs::SetRef(s) => format!("@{}", set_name(*s)),
                                };
                                let imp = if m.implicit { " (implicit)" } else { "" };
                                format!("{} {op} {rhs}{imp}", expr(&m.left))
                            }
                            Item::Stmt(s) => match &s.kind {
                                StmtKind::Counter { .. } => "counter".into(),
                                StmtKind::NamedCounter { obj } => format!("counter name #{obj}"),
                                StmtKind::ObjrefMap { kind, key, map } => {
                                    let m = match map {
                                        VmapRef::Named(s) => format!("@{}", set_name(*s)),
                                        VmapRef::Anon(a) => elements((&a.elements).into()),
                                    };
                                    match kind {
                                        ObjKind::Counter => {
                                            format!("counter name {} map {m}", expr(key))
                                        }
                                        ObjKind::CtHelper => {
                                            format!("ct helper set {} map {m}", expr(key))
                                        }
                                    }
                                }
                                StmtKind::Log { .. } => "log".into(),
                                StmtKind::Limit { rate, unit, .. } => {
                                    format!("limit {rate}/{unit:?}")
                                }
                                StmtKind::MetaSet { key, .. } => {
                                    format!("meta {} set ...", key.name)
                                }
                                StmtKind::CtSet { key, .. } => format!("ct {} set ...", key.name),
                                StmtKind::PayloadSet { field, .. } => {
                                    format!("{} set ...", expr(field))
                                }
                                StmtKind::Notrack => "notrack".into(),
                                StmtKind::Reject(k) => format!("reject {k:?}"),
                                StmtKind::Nat(n) => format!("{:?}", n.kind).to_lowercase(),
                                StmtKind::SetUpdate { op, set, key, .. } => format!(
                                    "{} @{} {{ {} }}",
                                    op.as_str(),
                                    set_name(*set),
                                    expr(key)
                                ),
                                StmtKind::Other(k) => k.clone(),
                            },
                            Item::Vmap(v) => verdict(&v.kind),
                        });
                    }
                    if let Some(v) = &r.verdict {
                        parts.push(verdict(&v.kind));
                    }
                    writeln!(f, "    {}", parts.join("; "))?;
                }
            }
        }
        Ok(())
    }
}

/// `@ll`, `@nh`, `@th`: the raw payload form's base.
pub fn raw_base_name(b: PayloadBase) -> &'static str {
    match b {
        PayloadBase::Link => "@ll",
        PayloadBase::Network => "@nh",
        PayloadBase::Transport => "@th",
    }
}

fn show_expr(e: &Expr, sources: &SourceMap) -> String {
    match &e.kind {
        ExprKind::Payload {
            field,
            base,
            offset_bits,
            len_bits,
        } => match field {
            Some(f) => format!("{} {}", f.proto, f.field),
            None => format!("{},{offset_bits},{len_bits}", raw_base_name(*base)),
        },
        ExprKind::Meta { key } => format!("meta {}", key.name),
        ExprKind::FibType { daddr } => {
            format!("fib {} type", if *daddr { "daddr" } else { "saddr" })
        }
        ExprKind::Numgen {
            random,
            modulus,
            offset,
        } => {
            let ty = if *random { "random" } else { "inc" };
            match offset {
                0 => format!("numgen {ty} mod {modulus}"),
                o => format!("numgen {ty} mod {modulus} offset {o}"),
            }
        }
        ExprKind::Ct { key, dir, .. } => match dir {
            Some(CtDir::Original) => format!("ct original {}", key.name),
            Some(CtDir::Reply) => format!("ct reply {}", key.name),
            None => format!("ct {}", key.name),
        },
        ExprKind::Concat(p) => p
            .iter()
            .map(|e| show_expr(e, sources))
            .collect::<Vec<_>>()
            .join(" . "),
        ExprKind::Bitwise { expr, op, value } => {
            let o = match op {
                BitOp::And => "&",
                BitOp::Or => "|",
                BitOp::Xor => "^",
                BitOp::Shl => "<<",
                BitOp::Shr => ">>",
            };
            format!("({} {o} {})", show_expr(expr, sources), value.text(sources))
        }
    }
}
