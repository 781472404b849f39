//! The instruction set of `vm::Program`: nf_tables expressions (payload, meta, ct, cmp, range,
//! bitwise, byteorder, lookup, immediate, counter, limit, log, reject, notrack, queue, nat, …)
//! over 16 × 32-bit data registers plus the verdict register.
//!
//! Register model (as the kernel's `struct nft_regs`): a value of N bytes occupies `ceil(N/4)`
//! consecutive 32-bit registers, stored in the byte order the kernel stores it (packet data in
//! network order; `meta mark`, `ct mark`, … host order), u8/u16 values zero-padded to a word.
//! nfc defines "host order" as little-endian on every machine (the kernel on x86), so a
//! Program's behaviour and printed form do not depend on the machine it runs on.

use crate::ids::{CounterId, LimitId, Reg, SetId};
use crate::verdict::ChainVerdict;

/// Constant data of up to 16 bytes (`struct nft_data` value), in register memory order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Data {
    len: u8,
    bytes: [u8; 16],
}

impl Data {
    /// Maximum length in bytes (`sizeof(struct nft_data)`).
    pub const MAX: usize = 16;

    /// Data from raw bytes (register memory order). `None` if longer than 16 bytes or empty.
    pub fn new(b: &[u8]) -> Option<Data> {
        if b.is_empty() || b.len() > Self::MAX {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..b.len()].copy_from_slice(b);
        Some(Data {
            len: b.len() as u8,
            bytes,
        })
    }

    /// Network-order (big-endian) bytes of a u8 value, e.g. `meta l4proto`.
    pub fn u8(v: u8) -> Data {
        Data::new(&[v]).unwrap_or_default()
    }

    /// Big-endian bytes of a u16, e.g. a port: `Data::be16(22)` prints `0x00001600`.
    pub fn be16(v: u16) -> Data {
        Data::new(&v.to_be_bytes()).unwrap_or_default()
    }

    /// Big-endian bytes of a u32, e.g. an IPv4 address.
    pub fn be32(v: u32) -> Data {
        Data::new(&v.to_be_bytes()).unwrap_or_default()
    }

    /// A host-order u32 as the kernel stores `meta mark` etc. (little-endian, see module docs).
    pub fn host32(v: u32) -> Data {
        Data::new(&v.to_le_bytes()).unwrap_or_default()
    }

    /// A host-order u16 (e.g. `meta iiftype`), zero-padded to 2 bytes.
    pub fn host16(v: u16) -> Data {
        Data::new(&v.to_le_bytes()).unwrap_or_default()
    }

    /// A NUL-padded 16-byte interface/helper name.
    pub fn name16(s: &str) -> Data {
        let mut b = [0u8; 16];
        for (d, c) in b.iter_mut().zip(s.bytes()) {
            *d = c;
        }
        Data { len: 16, bytes: b }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false for a constructed `Data` (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }

    /// The bytes zero-padded to whole 32-bit words, as little-endian host words (what the
    /// registers hold and what nft prints).
    pub fn words(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes[..Reg::words(self.len()) * 4]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

impl Default for Data {
    /// One zero byte.
    fn default() -> Self {
        Data {
            len: 1,
            bytes: [0; 16],
        }
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Data(")?;
        for b in self.bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// `enum nft_payload_bases`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    /// `NFT_PAYLOAD_LL_HEADER` ("link header").
    Link,
    /// `NFT_PAYLOAD_NETWORK_HEADER` ("network header").
    Network,
    /// `NFT_PAYLOAD_TRANSPORT_HEADER` ("transport header").
    Transport,
}

/// `meta` and `ct` loads (`enum nft_meta_keys`, `enum nft_ct_keys`): the catalog's (`nfr_proto::catalog`).
pub use nfr_proto::catalog::{NftCtKey as CtKey, NftMetaKey as MetaKey};

/// Writable `meta` keys (`meta set <key> with reg N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaSetKey {
    /// `skb->mark` (4 bytes, host order).
    Mark,
    /// `skb->priority` (4 bytes) — recorded in `Effects::priority`.
    Priority,
    /// `skb->pkt_type` (1 byte).
    Pkttype,
    /// `nftrace` (1 byte) — recorded in `Effects::nftrace`.
    Nftrace,
}

impl MetaSetKey {
    /// Bytes read from the source register.
    pub fn size(self) -> usize {
        match self {
            MetaSetKey::Mark | MetaSetKey::Priority => 4,
            MetaSetKey::Pkttype | MetaSetKey::Nftrace => 1,
        }
    }

    /// libnftnl's name.
    pub fn name(self) -> &'static str {
        match self {
            MetaSetKey::Mark => "mark",
            MetaSetKey::Priority => "priority",
            MetaSetKey::Pkttype => "pkttype",
            MetaSetKey::Nftrace => "nftrace",
        }
    }
}

/// Writable `ct` keys (`ct set <key> with reg N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtSetKey {
    /// `ct->mark` (4 bytes host order); ignored without a conntrack entry.
    Mark,
    /// The zone of the template (2 bytes) — recorded in `Effects::ct_zone`.
    Zone,
    /// `ct helper set "obj"` (nft's `objref` of a `ct helper` object, resolved by the compiler):
    /// the helper's type name, NUL-padded to 16 bytes (`NF_CT_HELPER_NAME_LEN`) — recorded in
    /// `Effects::ct_helper`; the runtime attaches it to an unconfirmed entry of the helper's protocol.
    Helper,
}

impl CtSetKey {
    /// Bytes read from the source register.
    pub fn size(self) -> usize {
        match self {
            CtSetKey::Mark => 4,
            CtSetKey::Zone => 2,
            CtSetKey::Helper => 16,
        }
    }

    /// libnftnl's name.
    pub fn name(self) -> &'static str {
        match self {
            CtSetKey::Mark => "mark",
            CtSetKey::Zone => "zone",
            CtSetKey::Helper => "helper",
        }
    }
}

/// Tuple direction of a `ct` load (`IP_CT_DIR_*`).
pub use nfr_proto::catalog::CtDir;

/// `enum nft_cmp_ops`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    /// libnftnl's name.
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Neq => "neq",
            CmpOp::Lt => "lt",
            CmpOp::Lte => "lte",
            CmpOp::Gt => "gt",
            CmpOp::Gte => "gte",
        }
    }
}

/// `enum nft_range_ops`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangeOp {
    Eq,
    Neq,
}

/// The operands of `NFT_BITWISE_MASK_XOR`: `dst = (src & mask) ^ xor`; both `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaskXor {
    pub mask: Data,
    pub xor: Data,
}

/// `enum nft_bitwise_ops` with their operands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BitwiseOp {
    /// `NFT_BITWISE_MASK_XOR` (boxed, as [`Insn::Range`]'s bounds: two `Data` in place would make every
    /// instruction 40 bytes instead of 24).
    MaskXor(Box<MaskXor>),
    /// `NFT_BITWISE_LSHIFT` by 0..32 bits, over host-order words.
    Lshift(u32),
    /// `NFT_BITWISE_RSHIFT` by 0..32 bits, over host-order words.
    Rshift(u32),
    /// `NFT_BITWISE_AND` with a second source register.
    And(Reg),
    /// `NFT_BITWISE_OR` with a second source register.
    Or(Reg),
    /// `NFT_BITWISE_XOR` with a second source register.
    Xor(Reg),
}

impl BitwiseOp {
    /// `NFT_BITWISE_MASK_XOR` with its operands.
    pub fn mask_xor(mask: Data, xor: Data) -> BitwiseOp {
        BitwiseOp::MaskXor(Box::new(MaskXor { mask, xor }))
    }
}

/// The bounds of an `nft_range`: `from <= reg <= to` (memcmp); equal lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RangeBounds {
    pub from: Data,
    pub to: Data,
}

/// `enum nft_byteorder_ops`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteorderOp {
    Ntoh,
    Hton,
}

/// `enum nft_exthdr_op` (the ones nfc runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExthdrOp {
    /// `NFT_EXTHDR_OP_IPV6`: IPv6 extension headers (`ipv6_find_hdr`).
    Ipv6,
    /// `NFT_EXTHDR_OP_TCPOPT`: TCP options.
    Tcpopt,
}

/// Where a lookup's result goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupDest {
    /// Membership test only.
    None,
    /// Copy the map element's data into this register.
    Reg(Reg),
    /// Verdict map: the element's verdict goes into the verdict register (`dreg 0`).
    Verdict,
}

/// `nft limit` type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitType {
    /// `NFT_LIMIT_PKTS`.
    Packets,
    /// `NFT_LIMIT_PKT_BYTES`.
    Bytes,
}

/// A `limit` token bucket definition (`nft_limit`); its state lives in `State::limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    /// Rate (packets or bytes) per `unit` seconds.
    pub rate: u64,
    /// Unit in seconds (1, 60, 3600, 86400, 604800).
    pub unit: u64,
    /// Burst (packets or bytes); 0 for packets means the kernel default of 5.
    pub burst: u32,
    pub ty: LimitType,
    /// `NFT_LIMIT_F_INV` ("over").
    pub invert: bool,
}

/// The generator of an `nft_numgen` (`enum nft_ng_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumgenKind {
    /// `NFT_NG_INCREMENTAL`: counter `slot` of `State::numgen` (one per instruction).
    Inc { slot: u32 },
    /// `NFT_NG_RANDOM`: from the engine state's seeded generator.
    Random,
}

/// `enum nft_dynset_ops`: what an `Insn::Dynset` does with its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DynsetOp {
    /// `NFT_DYNSET_OP_ADD`: insert the element unless it is there.
    Add,
    /// `NFT_DYNSET_OP_UPDATE`: insert it, or restart its timeout.
    Update,
    /// `NFT_DYNSET_OP_DELETE`: remove it.
    Delete,
}

impl DynsetOp {
    /// libnftnl's name.
    pub fn name(self) -> &'static str {
        match self {
            DynsetOp::Add => "add",
            DynsetOp::Update => "update",
            DynsetOp::Delete => "delete",
        }
    }
}

/// A `log` statement's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct LogSpec {
    pub prefix: Option<String>,
    /// nflog group (`log group N`).
    pub group: Option<u16>,
    pub snaplen: u32,
    pub qthreshold: u16,
    /// syslog level (`log level warn` = 4).
    pub level: Option<u32>,
    /// `NF_LOG_*` flags.
    pub flags: u32,
}

/// NAT kinds (`nft_nat` snat/dnat, `nft_masq`, `nft_redir`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    Snat,
    Dnat,
    Masquerade,
    Redirect,
}

/// A NAT request: the interpreter reads the registers and records a `NatRequest`; the runtime
/// does the rewriting. Sets the verdict to accept like `nf_nat_setup_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatSpec {
    pub kind: NatKind,
    /// `NFPROTO_IPV4` / `NFPROTO_IPV6` (`NFPROTO_INET` for inet-family port-only NAT);
    /// address registers hold 4 or 16 bytes accordingly.
    pub family: u8,
    pub addr_min: Option<Reg>,
    pub addr_max: Option<Reg>,
    /// Port registers hold 2 network-order bytes.
    pub proto_min: Option<Reg>,
    pub proto_max: Option<Reg>,
    /// `NF_NAT_RANGE_*` flags.
    pub flags: u32,
}

/// `NFT_PAYLOAD_CSUM_NONE` / `NFT_PAYLOAD_CSUM_INET`: a payload write fixes no checksum, or the
/// Internet checksum at its `csum_offset`.
pub const NFT_PAYLOAD_CSUM_NONE: u8 = 0;
pub const NFT_PAYLOAD_CSUM_INET: u8 = 1;
/// `NFT_PAYLOAD_L4CSUM_PSEUDOHDR`: the write changes the transport checksum's pseudo-header.
pub const NFT_PAYLOAD_L4CSUM_PSEUDOHDR: u32 = 1;

/// One instruction (an nf_tables expression).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `nft_payload` load: `len` bytes at `base + offset` into `dreg`; out of bounds → BREAK.
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u8,
        dreg: Reg,
    },
    /// `nft_payload` write (recorded in `Effects::payload_writes`, applied by the runtime).
    /// `csum_type` is [`NFT_PAYLOAD_CSUM_NONE`] or [`NFT_PAYLOAD_CSUM_INET`] (the checksum at `csum_offset`
    /// from the base follows the change), `csum_flags` may hold [`NFT_PAYLOAD_L4CSUM_PSEUDOHDR`] (the
    /// transport checksum follows it too).
    PayloadWrite {
        base: PayloadBase,
        offset: u32,
        len: u8,
        sreg: Reg,
        csum_type: u8,
        csum_offset: u32,
        csum_flags: u32,
    },
    /// `nft_meta` get.
    Meta { key: MetaKey, dreg: Reg },
    /// `nft_numgen`: a number in `offset..offset + modulus` (4 bytes, host order) into `dreg`.
    Numgen {
        dreg: Reg,
        kind: NumgenKind,
        modulus: u32,
        offset: u32,
    },
    /// `nft_fib` with `NFT_FIB_RESULT_ADDRTYPE`: the route type of the source (or, with `daddr`,
    /// destination) address (`PktState::fib_saddr_type` / `fib_daddr_type`), 4 bytes host order.
    FibType { dreg: Reg, daddr: bool },
    /// `nft_meta` set.
    MetaSet { key: MetaSetKey, sreg: Reg },
    /// `nft_ct` get.
    Ct {
        key: CtKey,
        dir: Option<CtDir>,
        dreg: Reg,
    },
    /// `nft_ct` set.
    CtSet { key: CtSetKey, sreg: Reg },
    /// `nft_cmp`: memcmp of `data.len()` bytes; mismatch → BREAK.
    Cmp { op: CmpOp, sreg: Reg, data: Data },
    /// `nft_range` over `bounds` (boxed: two `Data` in place would make every instruction 40 bytes instead of
    /// 24; the interpreter runs ranges of up to 4 bytes from its own fused form, `fast::Op::Range32`).
    Range {
        op: RangeOp,
        sreg: Reg,
        bounds: Box<RangeBounds>,
    },
    /// `nft_bitwise` over `len` bytes.
    Bitwise {
        sreg: Reg,
        dreg: Reg,
        len: u8,
        op: BitwiseOp,
    },
    /// `nft_byteorder`: convert `len` bytes in elements of `size` (2, 4 or 8) bytes.
    Byteorder {
        sreg: Reg,
        dreg: Reg,
        op: ByteorderOp,
        len: u8,
        size: u8,
    },
    /// `nft_lookup` in a set or map; miss (or hit with `invert`) → BREAK.
    Lookup {
        sreg: Reg,
        set: SetId,
        dest: LookupDest,
        invert: bool,
    },
    /// `nft_dynset`: add, update or delete the element whose key is in `sreg` in the dynamic set
    /// `set` (`State::dynsets`), at the packet's time; an element added or updated expires
    /// `timeout_ms` later (0: the set's default, none if it has none). A full set → BREAK. For
    /// a map, a new element's data is in `sreg_data` (a present element keeps its own).
    Dynset {
        op: DynsetOp,
        sreg: Reg,
        set: SetId,
        sreg_data: Option<Reg>,
        timeout_ms: u64,
    },
    /// `nft_objref_map`: look the key in `sreg` up in the object map `set`; no element (and no
    /// catch-all) → BREAK, else the element's object is evaluated (a named counter counts the
    /// packet, a ct helper object is recorded in `Effects::ct_helper`).
    Objref { sreg: Reg, set: SetId },
    /// `nft_immediate` data into a register.
    Immediate { dreg: Reg, data: Data },
    /// `nft_immediate` into the verdict register (accept, drop, jump, goto, return, …).
    ImmVerdict(ChainVerdict),
    /// `nft_counter`: add 1 packet and `PktState::len` bytes.
    Counter(CounterId),
    /// `nft_limit`; over the limit → BREAK (inverted with `LimitSpec::invert`).
    Limit(LimitId),
    /// `nft_log`: recorded in `Effects::logs`.
    Log(Box<LogSpec>),
    /// `nft_reject` (`NFT_REJECT_*` type, ICMP code): recorded, then verdict drop.
    Reject { ty: u8, code: u8 },
    /// `nft_notrack`: mark the packet untracked (when it has no conntrack entry yet).
    Notrack,
    /// `nft_queue`: verdict `NF_QUEUE` to `num` (with `total > 1`, fanout over
    /// `num..num+total` by packet hash is left to the runtime: the interpreter uses `num`).
    Queue {
        num: u16,
        total: u16,
        bypass: bool,
        fanout: bool,
    },
    /// `nft_nat` / `nft_masq` / `nft_redir`.
    Nat(NatSpec),
    /// `nft_exthdr` load: `len` bytes at `offset` inside extension header / option `ty`
    /// (IPv6 next-header number or TCP option kind). With `present` a single byte 1/0 is
    /// stored instead and the instruction never breaks; otherwise a missing header breaks.
    Exthdr {
        op: ExthdrOp,
        ty: u8,
        offset: u32,
        len: u8,
        dreg: Reg,
        present: bool,
    },
}

impl Insn {
    /// Shorthand: `Cmp { op: Eq, .. }`.
    pub fn cmp_eq(sreg: Reg, data: Data) -> Insn {
        Insn::Cmp {
            op: CmpOp::Eq,
            sreg,
            data,
        }
    }

    /// `nft_range`: `from <= reg <= to`, or outside them with `RangeOp::Neq`.
    pub fn range(op: RangeOp, sreg: Reg, from: Data, to: Data) -> Insn {
        Insn::Range {
            op,
            sreg,
            bounds: Box::new(RangeBounds { from, to }),
        }
    }

    /// Shorthand: payload load.
    pub fn payload(base: PayloadBase, offset: u32, len: u8, dreg: Reg) -> Insn {
        Insn::Payload {
            base,
            offset,
            len,
            dreg,
        }
    }

    /// Shorthand: meta load.
    pub fn meta(key: MetaKey, dreg: Reg) -> Insn {
        Insn::Meta { key, dreg }
    }
}
