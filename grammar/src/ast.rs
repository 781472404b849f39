//! The `.nfr` abstract syntax tree: what the source says, with byte spans, before any checking.
//!
//! Conventions:
//! - Every node that can be the subject of a diagnostic carries a [`Span`]: a half-open byte range
//!   `start..end` into the source text given to [`crate::parse`] (u32 offsets; offsets past 4 GiB
//!   saturate). A synthetic node (e.g. an error placeholder) may carry an empty span.
//! - The tree records syntax, not meaning: names are not resolved, `$var`s are not substituted,
//!   `include`s are not opened, families are as written (`None` = not written; nft then assumes `ip`).
//!   Selectors (`tcp dport`, `meta mark`, `ct state`) are resolved against the static
//!   [`crate::catalog`] tables already at parse time, because the grammar needs them to know where
//!   one statement ends; the Ast points at the catalog entry.
//! - Values on the right-hand side are kept as written (`Symbol("ssh")`, `Number(22)`): turning a
//!   symbol into a value needs the left-hand side's datatype, which is the checker's job (helpers
//!   for that are in the catalog).
//! - One desugaring: nft's mask form `tcp flags syn / syn,ack` becomes
//!   `tcp flags & (syn | ack) == syn` (a [`StmtKind::Match`] with a [`ExprKind::Binary`] left side),
//!   which is also how nft lists it.
//! - `jump $var` / `goto $var` keep the variable as the target name (`"$var"`).
//! - Parsing never fails: a line (rule, chain/set property, table line, command) with an error is
//!   dropped whole and its error is in [`crate::Parsed::errors`]; everything else is kept.
//!   [`ExprKind::Error`] exists for tools that build partial trees.

use crate::catalog;
pub use crate::packed::Elements;

/// Half-open byte range `start..end` into the parsed source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub const fn new(start: u32, end: u32) -> Span {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A name as written (table, chain, set, variable, device ...), with its span.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A quoted or bare string with its span (comments, log prefixes, include paths).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Str {
    pub value: String,
    pub span: Span,
}

/// A whole `.nfr` file (or nft -f script).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub commands: Vec<Command>,
    /// Every `#` comment of the source, in order (the printer puts them back near the node
    /// that follows them; the checker can ignore them).
    pub comments: Vec<Comment>,
}

/// A `#` comment: its text (after `#`, trailing whitespace removed) and span (from `#`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub text: String,
    pub span: Span,
    /// The comment is alone on its line (otherwise it trails code on that line).
    pub own_line: bool,
}

/// Address families as nft spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    Arp,
    Bridge,
    Netdev,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }
    pub fn from_name(s: &str) -> Option<Family> {
        Some(match s {
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "inet" => Family::Inet,
            "arp" => Family::Arp,
            "bridge" => Family::Bridge,
            "netdev" => Family::Netdev,
            _ => return None,
        })
    }
}

/// A table, chain, set or element reference in a command: `[family] table [chain|set]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjRef {
    pub family: Option<Family>,
    pub table: Ident,
    /// Chain or set name (absent for table commands).
    pub name: Option<Ident>,
    pub span: Span,
}

/// One top-level command.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub kind: CommandKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CommandKind {
    /// `flush ruleset [family]`.
    FlushRuleset { family: Option<Family> },
    /// `define NAME = value` (also `redefine`).
    Define(Define),
    /// `undefine NAME`.
    Undefine(Ident),
    /// `include "file"` (not resolved here).
    Include(Str),
    /// `table [family] NAME { ... }` or `add|create table [family] NAME [{ ... }]`.
    Table(Table),
    /// `add|create chain [family] TABLE NAME [{ ... }]`.
    AddChain { table: ObjRef, chain: Chain },
    /// `add|insert rule [family] TABLE CHAIN [position N|index N|handle N] RULE` (also the bare
    /// `add TABLE CHAIN RULE` form nft accepts).
    AddRule {
        target: ObjRef,
        insert: bool,
        position: Option<(Ident, u64)>,
        rule: Rule,
    },
    /// `add|create set|map [family] TABLE NAME { ... }`.
    AddSet { table: ObjRef, set: Set },
    /// `add|delete element [family] TABLE SET { elements }`.
    Element {
        delete: bool,
        target: ObjRef,
        elements: Elements,
    },
    /// `flush|delete table|chain|set|map ...` and other object commands without a body.
    /// `verb` is the command word (`flush`, `delete`, `destroy`), `object` the object word.
    Object {
        verb: Ident,
        object: Ident,
        target: ObjRef,
    },
}

/// `define NAME = value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Define {
    pub name: Ident,
    pub value: Expr,
    /// `redefine` instead of `define`.
    pub redefine: bool,
    pub span: Span,
}

/// A table and its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub family: Option<Family>,
    pub name: Ident,
    /// Whether a `{ ... }` body was written (`add table ip t` has none).
    pub has_body: bool,
    pub items: Vec<TableItem>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TableItem {
    Chain(Chain),
    /// A named set or map (`Set::is_map`).
    Set(Set),
    Define(Define),
    /// `flags dormant,owner,...`.
    Flags(Vec<Ident>),
    /// `comment "..."`.
    Comment(Str),
    /// A table object the grammar recognises but does not model (flowtable, counter, quota, limit,
    /// ct helper/timeout/expectation, secmark, synproxy): `kind` is its keyword(s), `name` its name,
    /// `body` the lines of its `{ ... }` as written (one line each, whitespace collapsed).
    Object {
        kind: Ident,
        name: Ident,
        span: Span,
        body: Vec<String>,
    },
}

/// A chain (base chain when `hook` is present).
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub name: Ident,
    pub hook: Option<ChainHook>,
    pub policy: Option<Policy>,
    pub comment: Option<Str>,
    /// `flags offload`.
    pub flags: Vec<Ident>,
    pub rules: Vec<Rule>,
    /// Whether a `{ ... }` body was written.
    pub has_body: bool,
    pub span: Span,
}

/// `type T hook H [device D] priority P;`
#[derive(Clone, Debug, PartialEq)]
pub struct ChainHook {
    /// `filter`, `nat`, `route` (not validated here).
    pub chain_type: Ident,
    /// `prerouting`, `input`, ... (not validated here).
    pub hook: Ident,
    /// `device "eth0"` / `device eth0` / `devices = { a, b }` (first device only kept in `device`,
    /// all in `devices`).
    pub devices: Vec<Str>,
    pub priority: Priority,
    pub span: Span,
}

/// A chain or flowtable priority as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Priority {
    pub kind: PriorityKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriorityKind {
    /// `priority -150`.
    Number(i64),
    /// `priority mangle`, `priority filter + 5`, `priority dstnat - 10` (`offset` is signed).
    Named { name: String, offset: i64 },
    /// `priority $prio`.
    Var(String),
}

/// `policy accept|drop|$var;`
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Accept,
    Drop,
    Var(String),
}

/// A named set (`is_map == false`) or map.
#[derive(Clone, Debug, PartialEq)]
pub struct Set {
    pub name: Ident,
    pub is_map: bool,
    /// `type ...` / `typeof ...` of the key; `None` if missing (the checker reports it).
    pub key: Option<SetKey>,
    /// Map data type (`: V`), only for maps.
    pub data: Option<SetKey>,
    /// `type K : interval V`.
    pub data_interval: bool,
    pub flags: Vec<Ident>,
    pub timeout: Option<Time>,
    pub gc_interval: Option<Time>,
    pub size: Option<u64>,
    /// `policy performance|memory`.
    pub policy: Option<Ident>,
    pub auto_merge: bool,
    /// `counter` in the set body (elements carry counters).
    pub counter: bool,
    pub comment: Option<Str>,
    /// `elements = { ... }`; map elements are [`ExprKind::MapElem`].
    pub elements: Elements,
    pub has_body: bool,
    pub span: Span,
}

/// The key (or data) type of a set or map.
#[derive(Clone, Debug, PartialEq)]
pub enum SetKey {
    /// `type ipv4_addr . inet_service` (one name per concatenated part). The names are kept as
    /// written; [`crate::catalog::Datatype::from_name`] maps them.
    Type(Vec<Ident>),
    /// `typeof ip saddr . tcp dport`.
    Typeof(Vec<Expr>),
}

/// A time value (`1h`, `30s`, `1d2h3m4s5ms`, or a plain number of seconds), in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    pub ms: u64,
    pub span: Span,
}

/// One rule: statements in order, plus the trailing `comment "..."`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub stmts: Vec<Stmt>,
    pub comment: Option<Str>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

/// Relational operators (`Implicit` = no operator written: equality, or for flag-like
/// datatypes (ct state, tcp flags, ...) a bitmask test `(x & v) != 0`, as nft does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelOp {
    Implicit,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    /// `!` (nft's OP_NEG, e.g. `tcp flags ! syn`): "none of these bits".
    Neg,
}

impl RelOp {
    /// The symbolic form nft prints (`""` for the implicit operator).
    pub fn as_str(self) -> &'static str {
        match self {
            RelOp::Implicit => "",
            RelOp::Eq => "==",
            RelOp::Ne => "!=",
            RelOp::Lt => "<",
            RelOp::Gt => ">",
            RelOp::Le => "<=",
            RelOp::Ge => ">=",
            RelOp::Neg => "!",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `LEFT [op] RIGHT`, e.g. `tcp dport { 22, 80 }`, `ct state != established`.
    Match {
        left: Expr,
        op: RelOp,
        right: Expr,
    },
    /// A verdict: `accept`, `drop`, `jump c`, ...
    Verdict(Verdict),
    /// `KEY vmap { k : verdict, ... }` / `KEY vmap @m`.
    Vmap {
        key: Expr,
        map: Expr,
    },
    /// `counter [packets N bytes N]` / `counter name NAME`.
    Counter {
        packets: Option<u64>,
        bytes: Option<u64>,
        name: Option<Ident>,
    },
    /// `counter name KEY map { k : "NAME", ... }` / `counter name KEY map @m`: the named counter
    /// chosen by a map lookup (nft's objref map, `nft_objref_map`). `map` is an
    /// [`ExprKind::Map`] whose values are counter object names.
    CounterMap {
        map: Expr,
    },
    /// Boxed, as the other rare statements with large bodies: a `Stmt` is the size of a `Match`.
    Log(Box<Log>),
    Limit(Box<Limit>),
    /// `SELECTOR set VALUE`: `meta mark set 1`, `mark set 1`, `ct mark set meta mark`,
    /// `ct helper set "ftp"`, `ct zone set 1`, `ip dscp set cs1`...
    /// `key` is a selector expression (Meta / Ct / Payload).
    Set {
        key: Expr,
        value: Expr,
    },
    /// `notrack`.
    Notrack,
    /// `reject [with ...]`.
    Reject(Option<RejectWith>),
    /// `queue [flags f,..] [num N | to N] [bypass] [fanout]`.
    Queue {
        num: Option<Expr>,
        flags: Vec<Ident>,
    },
    /// snat/dnat/masquerade/redirect.
    Nat(Box<Nat>),
    /// `add|update|delete @SET { KEY [timeout T] }`: nft's set statement, the kernel's
    /// `nft_dynset` (an element added, refreshed or removed from the packet path).
    SetUpdate(Box<SetUpdate>),
    /// A statement the grammar accepts but does not model (`quota`, `dup`, `fwd`, `ct count`,
    /// `last`, `tproxy`, `synproxy`, set add/update, ...): its first keyword and the raw text.
    Other {
        keyword: String,
        text: String,
    },
}

/// The operation of a set statement (`enum nft_dynset_ops`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetOp {
    /// `add`: insert the element unless it is there (`NFT_DYNSET_OP_ADD`).
    Add,
    /// `update`: insert it, or restart its timeout (`NFT_DYNSET_OP_UPDATE`).
    Update,
    /// `delete`: remove it (`NFT_DYNSET_OP_DELETE`).
    Delete,
}

impl SetOp {
    /// nft's keyword (and libnftnl's name).
    pub fn as_str(self) -> &'static str {
        match self {
            SetOp::Add => "add",
            SetOp::Update => "update",
            SetOp::Delete => "delete",
        }
    }
}

/// `add|update|delete @SET { KEY [timeout T] [: DATA] [STATEMENTS] }`.
#[derive(Clone, Debug, PartialEq)]
pub struct SetUpdate {
    pub op: SetOp,
    /// The set, without its `@`.
    pub set: Ident,
    /// The key: a selector or a concatenation of selectors.
    pub key: Expr,
    /// `timeout T` after the key.
    pub timeout: Option<Time>,
    /// `: DATA` (an element of a map).
    pub data: Option<Expr>,
    /// Per-element statements after the key (`counter`, `limit ...`), as written; nfc does
    /// not model them (the checker refuses them).
    pub stmts: Option<(String, Span)>,
    /// The braces.
    pub braces: Span,
}

/// Verdicts (`accept drop continue return jump goto`; `queue` is a statement).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(Ident),
    Goto(Ident),
}

/// `log` options, in the order nft prints them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Log {
    pub prefix: Option<Str>,
    /// `emerg alert crit err warn notice info debug audit` (as written).
    pub level: Option<Ident>,
    pub group: Option<u64>,
    pub snaplen: Option<u64>,
    pub queue_threshold: Option<u64>,
    /// `flags tcp sequence,options`, `flags ip options`, `flags skuid`, `flags ether`, `flags all`
    /// — kept as written, one entry per word after `flags`.
    pub flags: Vec<Ident>,
}

/// `limit rate [over|until] N[/unit] [burst N packets|bytes]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub over: bool,
    pub rate: u64,
    /// `None` = packets; `Some("kbytes")` etc. for byte rates (as written: bytes kbytes mbytes).
    pub rate_unit: Option<String>,
    /// `second minute hour day week`.
    pub per: String,
    pub burst: Option<u64>,
    /// Unit of the burst (`packets`, `bytes`, `kbytes`, ...) when written.
    pub burst_unit: Option<String>,
}

/// `reject with ...`.
#[derive(Clone, Debug, PartialEq)]
pub enum RejectWith {
    /// `with icmp|icmpv6|icmpx [type] CODE`: `proto` is `icmp`, `icmpv6` or `icmpx`.
    Icmp { proto: String, code: Expr },
    /// `with tcp reset`.
    TcpReset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    Snat,
    Dnat,
    Masquerade,
    Redirect,
}

/// `snat|dnat [ip|ip6] [to] ADDR[:PORT]`, `masquerade [to :PORT]`, `redirect [to :PORT]`,
/// plus flags `random`, `fully-random`, `persistent`.
#[derive(Clone, Debug, PartialEq)]
pub struct Nat {
    pub kind: NatKind,
    pub family: Option<Family>,
    /// Address expression (may be a range, a prefix, a map `ip saddr map { ... }`).
    pub addr: Option<Expr>,
    /// Port expression (may be a range or a map).
    pub port: Option<Expr>,
    pub flags: Vec<Ident>,
}

/// Expressions, on either side of a match and in set elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::And => "&",
            BinOp::Or => "|",
            BinOp::Xor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
        }
    }
}

/// Payload base of the raw form `@ll|nh|th,OFFSET,LENGTH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RawBase {
    Ll,
    Nh,
    Th,
    Ih,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A protocol header field: `ip saddr`, `tcp dport`, `th sport`, `icmpv6 type`.
    Payload(&'static catalog::PayloadField),
    /// `@nh,16,8` (offset and length in bits).
    RawPayload {
        base: RawBase,
        offset: u32,
        len: u32,
    },
    /// `meta KEY` or an unqualified meta key (`iifname`, `mark`): `qualified` says which was written.
    Meta {
        key: &'static catalog::MetaKey,
        qualified: bool,
    },
    /// `ct [original|reply] [ip|ip6] KEY`.
    Ct {
        dir: Option<catalog::CtDir>,
        family: Option<Family>,
        key: &'static catalog::CtKey,
    },
    /// `numgen inc|random mod MODULUS [offset OFFSET]` (`random` = the random generator).
    Numgen {
        random: bool,
        modulus: u32,
        offset: u32,
    },
    /// `fib FLAG[ . FLAG]... RESULT`: `flags` are `NFTA_FIB_F_*` bits (in the order written, kept for
    /// printing), `result` is `type`, `oif`, `oifname` or `check`.
    Fib {
        flags: Vec<&'static str>,
        result: &'static str,
    },
    /// A decimal or hex number as written (`hex` = written with `0x`).
    Number {
        value: u128,
        hex: bool,
    },
    /// A bare identifier used as a value (`ssh`, `established`, `echo-request`, `eth0`), the
    /// wildcard `*` of map elements, or a negative integer such as `-150` (only meaningful as a
    /// chain priority given through a variable).
    Symbol(String),
    /// A quoted string (`"eth0"`, `"ftp"`).
    String(String),
    Ipv4(std::net::Ipv4Addr),
    Ipv6(std::net::Ipv6Addr),
    Mac([u8; 6]),
    /// A time literal (`1h`, `10s`), in milliseconds.
    Time(u64),
    /// `ADDR/LEN`.
    Prefix {
        addr: Box<Expr>,
        len: u32,
    },
    /// `LOW-HIGH`.
    Range {
        low: Box<Expr>,
        high: Box<Expr>,
    },
    /// An anonymous set `{ a, b-c, d/24 }` (map literal elements are `MapElem`).
    Set(Vec<Expr>),
    /// `@name`.
    SetRef(Ident),
    /// `$name`.
    Var(Ident),
    /// `a . b . c`.
    Concat(Vec<Expr>),
    /// `a & b`, `a | b`, ...
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Comma list outside braces: `syn,ack`, `new,established`.
    List(Vec<Expr>),
    /// `key : value` inside a map literal.
    MapElem {
        key: Box<Expr>,
        value: Box<Expr>,
    },
    /// A set element with options: `1.2.3.4 timeout 10s expires 5s counter comment "x"`.
    Elem {
        value: Box<Expr>,
        timeout: Option<u64>,
        expires: Option<u64>,
        comment: Option<String>,
    },
    /// `KEY map { ... }` / `KEY map @m` (lookup whose result is a value, e.g. `dnat to`).
    Map {
        key: Box<Expr>,
        map: Box<Expr>,
    },
    /// A verdict used as a value (map data, `vmap` elements).
    Verdict(Verdict),
    /// `( expr )` as written (kept so the printer can reproduce grouping in bit operations).
    Paren(Box<Expr>),
    /// Placeholder for an expression that failed to parse (its error is reported).
    Error,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
