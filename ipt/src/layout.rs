//! x86_64 (LP64) byte layout of the iptables blob: `ipt_replace`, `ipt_entry`, `ipt_ip`, the
//! `xt_entry_match`/`xt_entry_target` headers and the payloads of the extensions nfc supports.
//!
//! Everything is read and written with explicit byte offsets: integers in host order (little-endian
//! on x86_64) except addresses, masks and NAT ports, which are in network order. Readers take
//! untrusted bytes and return `None` when the slice is too short; they never panic.
#![forbid(unsafe_code)]

/// `XT_ALIGN`: round up to the alignment of `struct _xt_align` (8 on x86_64).
pub const fn xt_align(n: usize) -> usize {
    (n + 7) & !7
}

/// `sizeof(struct ipt_replace)`.
pub const IPT_REPLACE_SIZE: usize = 96;
/// `sizeof(struct ipt_entry)`.
pub const IPT_ENTRY_SIZE: usize = 112;
/// `sizeof(struct ipt_ip)`.
pub const IPT_IP_SIZE: usize = 84;
/// `sizeof(struct xt_entry_match)` / `sizeof(struct xt_entry_target)`.
pub const XT_HDR_SIZE: usize = 32;
/// `sizeof(struct xt_standard_target)`.
pub const XT_STANDARD_TARGET_SIZE: usize = 40;
/// `sizeof(struct xt_error_target)`.
pub const XT_ERROR_TARGET_SIZE: usize = 64;
/// `XT_EXTENSION_MAXNAMELEN`: size of the name field of a match/target header.
pub const XT_EXTENSION_MAXNAMELEN: usize = 29;
/// `XT_FUNCTION_MAXNAMELEN`: size of `xt_error_target.errorname`.
pub const XT_FUNCTION_MAXNAMELEN: usize = 30;
/// `XT_TABLE_MAXNAMELEN`.
pub const XT_TABLE_MAXNAMELEN: usize = 32;
/// `IFNAMSIZ`.
pub const IFNAMSIZ: usize = 16;
/// `NF_INET_NUMHOOKS`.
pub const NF_INET_NUMHOOKS: usize = 5;

/// `XT_STANDARD_TARGET` (the empty name).
pub const XT_STANDARD_TARGET: &str = "";
/// `XT_ERROR_TARGET`.
pub const XT_ERROR_TARGET: &str = "ERROR";

/// Standard-target verdicts as stored in the blob (`-NF_x - 1`).
pub const VERDICT_DROP: i32 = -1;
/// `-NF_ACCEPT - 1`.
pub const VERDICT_ACCEPT: i32 = -2;
/// `-NF_QUEUE - 1`.
pub const VERDICT_QUEUE: i32 = -4;
/// `XT_RETURN = -NF_REPEAT - 1`.
pub const XT_RETURN: i32 = -5;
/// `XT_CONTINUE`, a target's "go on" return value (never stored in a blob).
pub const XT_CONTINUE: u32 = 0xFFFF_FFFF;

/// `ipt_ip.flags` bits.
pub const IPT_F_FRAG: u8 = 0x01;
/// Jump without pushing a return address.
pub const IPT_F_GOTO: u8 = 0x02;
/// All known `ipt_ip.flags` bits.
pub const IPT_F_MASK: u8 = 0x03;
/// `ipt_ip.invflags` bits.
pub const IPT_INV_VIA_IN: u8 = 0x01;
/// Invert the output interface.
pub const IPT_INV_VIA_OUT: u8 = 0x02;
/// Invert TOS (unused by iptables).
pub const IPT_INV_TOS: u8 = 0x04;
/// Invert the source address.
pub const IPT_INV_SRCIP: u8 = 0x08;
/// Invert the destination address.
pub const IPT_INV_DSTIP: u8 = 0x10;
/// Invert the fragment flag.
pub const IPT_INV_FRAG: u8 = 0x20;
/// Invert the protocol (`XT_INV_PROTO`).
pub const IPT_INV_PROTO: u8 = 0x40;
/// All known `ipt_ip.invflags` bits.
pub const IPT_INV_MASK: u8 = 0x7F;

// ---------------------------------------------------------------------------------------------
// Readers over untrusted bytes.

/// `n` bytes at `off`, or `None`.
pub fn bytes(b: &[u8], off: usize, n: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(n)?)
}
/// Little-endian u16 at `off`.
pub fn le16(b: &[u8], off: usize) -> Option<u16> {
    let s = bytes(b, off, 2)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}
/// Little-endian u32 at `off`.
pub fn le32(b: &[u8], off: usize) -> Option<u32> {
    let s = bytes(b, off, 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
/// Little-endian i32 at `off`.
pub fn le_i32(b: &[u8], off: usize) -> Option<i32> {
    le32(b, off).map(|v| v as i32)
}
/// Little-endian u64 at `off`.
pub fn le64(b: &[u8], off: usize) -> Option<u64> {
    let s = bytes(b, off, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}
/// Big-endian (network order) u16 at `off`.
pub fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = bytes(b, off, 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}
/// One byte at `off`.
pub fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}
/// Fixed-size array at `off`.
pub fn arr<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let s = bytes(b, off, N)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Some(a)
}
/// The C string starting at `off`, up to its NUL, searching at most `max` bytes; `None` if there
/// is no NUL within `max` bytes (or within the slice).
pub fn cstr(b: &[u8], off: usize, max: usize) -> Option<&[u8]> {
    let rest = b.get(off..)?;
    let lim = rest.len().min(max);
    let s = rest.get(..lim)?;
    let n = s.iter().position(|&c| c == 0)?;
    s.get(..n)
}

/// A zeroed, growable output buffer with offset writers (writes beyond the end grow it).
#[derive(Debug, Default, Clone)]
pub struct Out(pub Vec<u8>);

impl Out {
    /// A zero-filled buffer of `n` bytes.
    pub fn zeroed(n: usize) -> Self {
        Out(vec![0; n])
    }
    fn at(&mut self, off: usize, n: usize) -> &mut [u8] {
        if self.0.len() < off + n {
            self.0.resize(off + n, 0);
        }
        &mut self.0[off..off + n]
    }
    /// Write raw bytes.
    pub fn put(&mut self, off: usize, v: &[u8]) {
        self.at(off, v.len()).copy_from_slice(v);
    }
    /// Write a byte.
    pub fn u8(&mut self, off: usize, v: u8) {
        self.at(off, 1)[0] = v;
    }
    /// Write a little-endian u16.
    pub fn le16(&mut self, off: usize, v: u16) {
        self.put(off, &v.to_le_bytes());
    }
    /// Write a little-endian u32.
    pub fn le32(&mut self, off: usize, v: u32) {
        self.put(off, &v.to_le_bytes());
    }
    /// Write a little-endian u64.
    pub fn le64(&mut self, off: usize, v: u64) {
        self.put(off, &v.to_le_bytes());
    }
    /// Write a big-endian u16.
    pub fn be16(&mut self, off: usize, v: u16) {
        self.put(off, &v.to_be_bytes());
    }
    /// Write a string into a NUL-padded field of `n` bytes (truncated to `n - 1`).
    pub fn str_field(&mut self, off: usize, s: &[u8], n: usize) {
        let k = s.len().min(n.saturating_sub(1));
        self.at(off, n).fill(0);
        self.put(off, &s[..k]);
    }
}

// ---------------------------------------------------------------------------------------------
// Header structs.

/// `struct ipt_replace` without its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaceHeader {
    /// Table name (NUL-padded to 32 on the wire).
    pub name: Vec<u8>,
    pub valid_hooks: u32,
    pub num_entries: u32,
    pub size: u32,
    pub hook_entry: [u32; NF_INET_NUMHOOKS],
    pub underflow: [u32; NF_INET_NUMHOOKS],
    pub num_counters: u32,
    /// The user-space counters pointer (opaque).
    pub counters: u64,
}

impl ReplaceHeader {
    /// Parse the first 96 bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let raw = bytes(b, 0, XT_TABLE_MAXNAMELEN)?;
        let name = raw.iter().take_while(|&&c| c != 0).copied().collect();
        let mut hook_entry = [0; 5];
        let mut underflow = [0; 5];
        for h in 0..NF_INET_NUMHOOKS {
            hook_entry[h] = le32(b, 44 + 4 * h)?;
            underflow[h] = le32(b, 64 + 4 * h)?;
        }
        Some(ReplaceHeader {
            name,
            valid_hooks: le32(b, 32)?,
            num_entries: le32(b, 36)?,
            size: le32(b, 40)?,
            hook_entry,
            underflow,
            num_counters: le32(b, 84)?,
            counters: le64(b, 88)?,
        })
    }
    /// The 96 header bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(IPT_REPLACE_SIZE);
        o.str_field(0, &self.name, XT_TABLE_MAXNAMELEN);
        o.le32(32, self.valid_hooks);
        o.le32(36, self.num_entries);
        o.le32(40, self.size);
        for h in 0..NF_INET_NUMHOOKS {
            o.le32(44 + 4 * h, self.hook_entry[h]);
            o.le32(64 + 4 * h, self.underflow[h]);
        }
        o.le32(84, self.num_counters);
        o.le64(88, self.counters);
        o.0
    }
}

/// `struct ipt_ip`, kept as wire bytes (addresses in network order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct IptIp {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub smsk: [u8; 4],
    pub dmsk: [u8; 4],
    pub iniface: [u8; IFNAMSIZ],
    pub outiface: [u8; IFNAMSIZ],
    pub iniface_mask: [u8; IFNAMSIZ],
    pub outiface_mask: [u8; IFNAMSIZ],
    pub proto: u16,
    pub flags: u8,
    pub invflags: u8,
}

impl IptIp {
    /// Parse 84 bytes at `off`.
    pub fn parse(b: &[u8], off: usize) -> Option<Self> {
        Some(IptIp {
            src: arr(b, off)?,
            dst: arr(b, off + 4)?,
            smsk: arr(b, off + 8)?,
            dmsk: arr(b, off + 12)?,
            iniface: arr(b, off + 16)?,
            outiface: arr(b, off + 32)?,
            iniface_mask: arr(b, off + 48)?,
            outiface_mask: arr(b, off + 64)?,
            proto: le16(b, off + 80)?,
            flags: u8_at(b, off + 82)?,
            invflags: u8_at(b, off + 83)?,
        })
    }
    /// Write 84 bytes at `off`.
    pub fn write(&self, o: &mut Out, off: usize) {
        o.put(off, &self.src);
        o.put(off + 4, &self.dst);
        o.put(off + 8, &self.smsk);
        o.put(off + 12, &self.dmsk);
        o.put(off + 16, &self.iniface);
        o.put(off + 32, &self.outiface);
        o.put(off + 48, &self.iniface_mask);
        o.put(off + 64, &self.outiface_mask);
        o.le16(off + 80, self.proto);
        o.u8(off + 82, self.flags);
        o.u8(off + 83, self.invflags);
    }
    /// All-zero (`unconditional()` also needs target_offset == 112).
    pub fn is_zero(&self) -> bool {
        *self == IptIp::default()
    }
}

/// The fixed part of `struct ipt_entry` after `ipt_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryHeader {
    pub ip: IptIp,
    pub nfcache: u32,
    pub target_offset: u16,
    pub next_offset: u16,
    pub comefrom: u32,
    pub pcnt: u64,
    pub bcnt: u64,
}

impl EntryHeader {
    /// Parse the 112-byte entry header at `off`.
    pub fn parse(b: &[u8], off: usize) -> Option<Self> {
        Some(EntryHeader {
            ip: IptIp::parse(b, off)?,
            nfcache: le32(b, off + 84)?,
            target_offset: le16(b, off + 88)?,
            next_offset: le16(b, off + 90)?,
            comefrom: le32(b, off + 92)?,
            pcnt: le64(b, off + 96)?,
            bcnt: le64(b, off + 104)?,
        })
    }
    /// Write the 112-byte header at `off`.
    pub fn write(&self, o: &mut Out, off: usize) {
        self.ip.write(o, off);
        o.le32(off + 84, self.nfcache);
        o.le16(off + 88, self.target_offset);
        o.le16(off + 90, self.next_offset);
        o.le32(off + 92, self.comefrom);
        o.le64(off + 96, self.pcnt);
        o.le64(off + 104, self.bcnt);
    }
}

/// A match or target header: `u16 size`, `char name[29]`, `u8 revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XtHeader {
    pub size: u16,
    /// The name up to its NUL (`None` on the wire would be an unterminated name; see `parse`).
    pub name: Vec<u8>,
    /// True when `name[29]` holds no NUL (the kernel's strnlen check fails).
    pub name_unterminated: bool,
    pub revision: u8,
}

impl XtHeader {
    /// Parse the 32-byte header at `off`.
    pub fn parse(b: &[u8], off: usize) -> Option<Self> {
        let raw = bytes(b, off + 2, XT_EXTENSION_MAXNAMELEN)?;
        let n = raw.iter().position(|&c| c == 0);
        Some(XtHeader {
            size: le16(b, off)?,
            name: raw[..n.unwrap_or(raw.len())].to_vec(),
            name_unterminated: n.is_none(),
            revision: u8_at(b, off + 31)?,
        })
    }
}

/// Write a match/target: header plus `data` zero-padded to `XT_ALIGN`; returns the bytes.
pub fn xt_blob(name: &str, revision: u8, data: &[u8]) -> Vec<u8> {
    let size = XT_HDR_SIZE + xt_align(data.len());
    let mut o = Out::zeroed(size);
    o.le16(0, size as u16);
    o.str_field(2, name.as_bytes(), XT_EXTENSION_MAXNAMELEN);
    o.u8(31, revision);
    o.put(XT_HDR_SIZE, data);
    o.0
}

// ---------------------------------------------------------------------------------------------
// Extension payloads. Each `encode` returns the data padded to XT_ALIGN(sizeof); each `decode`
// takes the data bytes after the 32-byte header.

/// `struct xt_tcp` ("tcp" rev 0, 12 bytes, XT_ALIGN 16). Ports in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XtTcp {
    pub spts: [u16; 2],
    pub dpts: [u16; 2],
    pub option: u8,
    pub flg_mask: u8,
    pub flg_cmp: u8,
    pub invflags: u8,
}
/// `XT_TCP_INV_SRCPT`.
pub const XT_TCP_INV_SRCPT: u8 = 0x01;
/// `XT_TCP_INV_DSTPT`.
pub const XT_TCP_INV_DSTPT: u8 = 0x02;
/// `XT_TCP_INV_FLAGS`.
pub const XT_TCP_INV_FLAGS: u8 = 0x04;
/// `XT_TCP_INV_OPTION`.
pub const XT_TCP_INV_OPTION: u8 = 0x08;
/// `XT_TCP_INV_MASK`.
pub const XT_TCP_INV_MASK: u8 = 0x0F;

impl Default for XtTcp {
    fn default() -> Self {
        XtTcp {
            spts: [0, 0xFFFF],
            dpts: [0, 0xFFFF],
            option: 0,
            flg_mask: 0,
            flg_cmp: 0,
            invflags: 0,
        }
    }
}
impl XtTcp {
    /// Kernel `matchsize`.
    pub const SIZE: usize = 12;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.le16(0, self.spts[0]);
        o.le16(2, self.spts[1]);
        o.le16(4, self.dpts[0]);
        o.le16(6, self.dpts[1]);
        o.u8(8, self.option);
        o.u8(9, self.flg_mask);
        o.u8(10, self.flg_cmp);
        o.u8(11, self.invflags);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(XtTcp {
            spts: [le16(d, 0)?, le16(d, 2)?],
            dpts: [le16(d, 4)?, le16(d, 6)?],
            option: u8_at(d, 8)?,
            flg_mask: u8_at(d, 9)?,
            flg_cmp: u8_at(d, 10)?,
            invflags: u8_at(d, 11)?,
        })
    }
}

/// `struct xt_udp` ("udp" rev 0, 10 bytes, XT_ALIGN 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XtUdp {
    pub spts: [u16; 2],
    pub dpts: [u16; 2],
    pub invflags: u8,
}
/// `XT_UDP_INV_SRCPT`.
pub const XT_UDP_INV_SRCPT: u8 = 0x01;
/// `XT_UDP_INV_DSTPT`.
pub const XT_UDP_INV_DSTPT: u8 = 0x02;
/// `XT_UDP_INV_MASK`.
pub const XT_UDP_INV_MASK: u8 = 0x03;

impl Default for XtUdp {
    fn default() -> Self {
        XtUdp {
            spts: [0, 0xFFFF],
            dpts: [0, 0xFFFF],
            invflags: 0,
        }
    }
}
impl XtUdp {
    pub const SIZE: usize = 10;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.le16(0, self.spts[0]);
        o.le16(2, self.spts[1]);
        o.le16(4, self.dpts[0]);
        o.le16(6, self.dpts[1]);
        o.u8(8, self.invflags);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(XtUdp {
            spts: [le16(d, 0)?, le16(d, 2)?],
            dpts: [le16(d, 4)?, le16(d, 6)?],
            invflags: u8_at(d, 8)?,
        })
    }
}

/// `struct ipt_icmp` ("icmp" rev 0, 4 bytes, XT_ALIGN 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IptIcmp {
    pub icmp_type: u8,
    pub code: [u8; 2],
    pub invflags: u8,
}
/// `IPT_ICMP_INV`.
pub const IPT_ICMP_INV: u8 = 0x01;
impl IptIcmp {
    pub const SIZE: usize = 4;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.put(
            0,
            &[self.icmp_type, self.code[0], self.code[1], self.invflags],
        );
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(IptIcmp {
            icmp_type: u8_at(d, 0)?,
            code: [u8_at(d, 1)?, u8_at(d, 2)?],
            invflags: u8_at(d, 3)?,
        })
    }
}

/// `struct xt_conntrack_mtinfo3` ("conntrack" rev 3, 164 bytes, XT_ALIGN 168).
/// Addresses/masks are `nf_inet_addr` (16 bytes, IPv4 in the first 4, network order); unlike
/// revisions 1/2, the rev-3 ports are host order (the kernel compares them with `ntohs(port)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConntrackMtInfo3 {
    pub origsrc_addr: [u8; 16],
    pub origsrc_mask: [u8; 16],
    pub origdst_addr: [u8; 16],
    pub origdst_mask: [u8; 16],
    pub replsrc_addr: [u8; 16],
    pub replsrc_mask: [u8; 16],
    pub repldst_addr: [u8; 16],
    pub repldst_mask: [u8; 16],
    pub expires_min: u32,
    pub expires_max: u32,
    pub l4proto: u16,
    pub origsrc_port: u16,
    pub origdst_port: u16,
    pub replsrc_port: u16,
    pub repldst_port: u16,
    pub match_flags: u16,
    pub invert_flags: u16,
    pub state_mask: u16,
    pub status_mask: u16,
    pub origsrc_port_high: u16,
    pub origdst_port_high: u16,
    pub replsrc_port_high: u16,
    pub repldst_port_high: u16,
}
/// `XT_CONNTRACK_*` match_flags bits.
pub const XT_CONNTRACK_STATE: u16 = 1 << 0;
pub const XT_CONNTRACK_PROTO: u16 = 1 << 1;
pub const XT_CONNTRACK_ORIGSRC: u16 = 1 << 2;
pub const XT_CONNTRACK_ORIGDST: u16 = 1 << 3;
pub const XT_CONNTRACK_REPLSRC: u16 = 1 << 4;
pub const XT_CONNTRACK_REPLDST: u16 = 1 << 5;
pub const XT_CONNTRACK_STATUS: u16 = 1 << 6;
pub const XT_CONNTRACK_EXPIRES: u16 = 1 << 7;
pub const XT_CONNTRACK_ORIGSRC_PORT: u16 = 1 << 8;
pub const XT_CONNTRACK_ORIGDST_PORT: u16 = 1 << 9;
pub const XT_CONNTRACK_REPLSRC_PORT: u16 = 1 << 10;
pub const XT_CONNTRACK_REPLDST_PORT: u16 = 1 << 11;
pub const XT_CONNTRACK_DIRECTION: u16 = 1 << 12;
pub const XT_CONNTRACK_STATE_ALIAS: u16 = 1 << 13;
/// state_mask bits: `XT_CONNTRACK_STATE_INVALID` and `XT_CONNTRACK_STATE_BIT(ctinfo)`.
pub const XT_CONNTRACK_STATE_INVALID: u16 = 1 << 0;
pub const XT_CONNTRACK_STATE_ESTABLISHED: u16 = 1 << 1;
pub const XT_CONNTRACK_STATE_RELATED: u16 = 1 << 2;
pub const XT_CONNTRACK_STATE_NEW: u16 = 1 << 3;
pub const XT_CONNTRACK_STATE_SNAT: u16 = 1 << 6;
pub const XT_CONNTRACK_STATE_DNAT: u16 = 1 << 7;
pub const XT_CONNTRACK_STATE_UNTRACKED: u16 = 1 << 8;
/// `IPS_*` status bits used by `--ctstatus`.
pub const IPS_EXPECTED: u16 = 1 << 0;
pub const IPS_SEEN_REPLY: u16 = 1 << 1;
pub const IPS_ASSURED: u16 = 1 << 2;
pub const IPS_CONFIRMED: u16 = 1 << 3;

impl ConntrackMtInfo3 {
    pub const SIZE: usize = 164;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        let addrs = [
            &self.origsrc_addr,
            &self.origsrc_mask,
            &self.origdst_addr,
            &self.origdst_mask,
            &self.replsrc_addr,
            &self.replsrc_mask,
            &self.repldst_addr,
            &self.repldst_mask,
        ];
        for (i, a) in addrs.iter().enumerate() {
            o.put(16 * i, &a[..]);
        }
        o.le32(128, self.expires_min);
        o.le32(132, self.expires_max);
        o.le16(136, self.l4proto);
        o.le16(138, self.origsrc_port);
        o.le16(140, self.origdst_port);
        o.le16(142, self.replsrc_port);
        o.le16(144, self.repldst_port);
        o.le16(146, self.match_flags);
        o.le16(148, self.invert_flags);
        o.le16(150, self.state_mask);
        o.le16(152, self.status_mask);
        o.le16(154, self.origsrc_port_high);
        o.le16(156, self.origdst_port_high);
        o.le16(158, self.replsrc_port_high);
        o.le16(160, self.repldst_port_high);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(ConntrackMtInfo3 {
            origsrc_addr: arr(d, 0)?,
            origsrc_mask: arr(d, 16)?,
            origdst_addr: arr(d, 32)?,
            origdst_mask: arr(d, 48)?,
            replsrc_addr: arr(d, 64)?,
            replsrc_mask: arr(d, 80)?,
            repldst_addr: arr(d, 96)?,
            repldst_mask: arr(d, 112)?,
            expires_min: le32(d, 128)?,
            expires_max: le32(d, 132)?,
            l4proto: le16(d, 136)?,
            origsrc_port: le16(d, 138)?,
            origdst_port: le16(d, 140)?,
            replsrc_port: le16(d, 142)?,
            repldst_port: le16(d, 144)?,
            match_flags: le16(d, 146)?,
            invert_flags: le16(d, 148)?,
            state_mask: le16(d, 150)?,
            status_mask: le16(d, 152)?,
            origsrc_port_high: le16(d, 154)?,
            origdst_port_high: le16(d, 156)?,
            replsrc_port_high: le16(d, 158)?,
            repldst_port_high: le16(d, 160)?,
        })
    }
}

/// `struct xt_multiport_v1` ("multiport" rev 1, 48 bytes). Ports in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MultiportV1 {
    pub flags: u8,
    pub count: u8,
    pub ports: [u16; 15],
    pub pflags: [u8; 15],
    pub invert: u8,
}
/// `XT_MULTIPORT_SOURCE`, `_DESTINATION`, `_EITHER`.
pub const XT_MULTIPORT_SOURCE: u8 = 0;
pub const XT_MULTIPORT_DESTINATION: u8 = 1;
pub const XT_MULTIPORT_EITHER: u8 = 2;
/// `XT_MULTI_PORTS`.
pub const XT_MULTI_PORTS: usize = 15;
impl MultiportV1 {
    pub const SIZE: usize = 48;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.u8(0, self.flags);
        o.u8(1, self.count);
        for (i, p) in self.ports.iter().enumerate() {
            o.le16(2 + 2 * i, *p);
        }
        o.put(32, &self.pflags);
        o.u8(47, self.invert);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        let mut ports = [0u16; 15];
        for (i, p) in ports.iter_mut().enumerate() {
            *p = le16(d, 2 + 2 * i)?;
        }
        Some(MultiportV1 {
            flags: u8_at(d, 0)?,
            count: u8_at(d, 1)?,
            ports,
            pflags: arr(d, 32)?,
            invert: u8_at(d, 47)?,
        })
    }
}

/// `struct xt_mark_mtinfo1` ("mark" rev 1, 12 bytes, XT_ALIGN 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MarkMtInfo1 {
    pub mark: u32,
    pub mask: u32,
    pub invert: u8,
}
impl MarkMtInfo1 {
    pub const SIZE: usize = 12;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.le32(0, self.mark);
        o.le32(4, self.mask);
        o.u8(8, self.invert);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(MarkMtInfo1 {
            mark: le32(d, 0)?,
            mask: le32(d, 4)?,
            invert: u8_at(d, 8)?,
        })
    }
}

/// `struct xt_comment_info` ("comment" rev 0, 256 bytes).
pub const XT_COMMENT_SIZE: usize = 256;

/// `struct xt_rateinfo` ("limit" rev 0, 40 bytes; only `avg`/`burst` are user data, the rest is
/// kernel-private and zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub avg: u32,
    pub burst: u32,
}
/// `XT_LIMIT_SCALE`.
pub const XT_LIMIT_SCALE: u32 = 10000;
impl RateInfo {
    pub const SIZE: usize = 40;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.le32(0, self.avg);
        o.le32(4, self.burst);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(RateInfo {
            avg: le32(d, 0)?,
            burst: le32(d, 4)?,
        })
    }
}

/// `struct xt_statistic_info` ("statistic" rev 0, 24 bytes; `master` is kernel-private and zero).
/// `u` is a union: `u.random.probability` overlaps `u.nth.every`, and libxt_statistic's final
/// check sets `u.nth.count = every - packet` in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatisticInfo {
    /// `XT_STATISTIC_MODE_*`.
    pub mode: u16,
    /// `XT_STATISTIC_INVERT`.
    pub flags: u16,
    /// `u.random.probability` (P × 2³¹) or `u.nth.every` (N − 1).
    pub every: u32,
    pub packet: u32,
    /// The nth counter's start (`every - packet`).
    pub count: u32,
}
pub const XT_STATISTIC_MODE_RANDOM: u16 = 0;
pub const XT_STATISTIC_MODE_NTH: u16 = 1;
pub const XT_STATISTIC_INVERT: u16 = 1;
impl StatisticInfo {
    pub const SIZE: usize = 24;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.le16(0, self.mode);
        o.le16(2, self.flags);
        o.le32(4, self.every);
        o.le32(8, self.packet);
        o.le32(12, self.count);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(StatisticInfo {
            mode: le16(d, 0)?,
            flags: le16(d, 2)?,
            every: le32(d, 4)?,
            packet: le32(d, 8)?,
            count: le32(d, 12)?,
        })
    }
}

/// `struct xt_addrtype_info_v1` ("addrtype" rev 1, 8 bytes): `source` and `dest` are masks of
/// `1 << RTN_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrtypeInfoV1 {
    pub source: u16,
    pub dest: u16,
    /// `XT_ADDRTYPE_*` flags.
    pub flags: u32,
}
pub const XT_ADDRTYPE_INVERT_SOURCE: u32 = 0x1;
pub const XT_ADDRTYPE_INVERT_DEST: u32 = 0x2;
pub const XT_ADDRTYPE_LIMIT_IFACE_IN: u32 = 0x4;
pub const XT_ADDRTYPE_LIMIT_IFACE_OUT: u32 = 0x8;
/// libxt_addrtype's `rtn_names`: bit `i` of a mask is route type `i` (`RTN_*`).
pub const ADDRTYPE_NAMES: [&str; 12] = [
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
];
impl AddrtypeInfoV1 {
    pub const SIZE: usize = 8;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.le16(0, self.source);
        o.le16(2, self.dest);
        o.le32(4, self.flags);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(AddrtypeInfoV1 {
            source: le16(d, 0)?,
            dest: le16(d, 2)?,
            flags: le32(d, 4)?,
        })
    }
}

/// `struct xt_recent_mtinfo_v1` ("recent" rev 1, 232 bytes): `name` is the whole 200-byte field
/// as iptables leaves it (libxt_recent writes `DEFAULT` and `--name` then copies its argument
/// and one NUL over it, so the tail of `DEFAULT` stays behind a shorter name), `mask` the whole
/// `union nf_inet_addr` (all ones by default; `--mask` copies a host address with zeroed tail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentInfoV1 {
    pub seconds: u32,
    pub hit_count: u32,
    /// `XT_RECENT_*` bits.
    pub check_set: u8,
    pub invert: u8,
    pub name: [u8; XT_RECENT_NAME_LEN],
    /// `XT_RECENT_SOURCE` or `XT_RECENT_DEST`.
    pub side: u8,
    pub mask: [u8; 16],
}
pub const XT_RECENT_CHECK: u8 = 1 << 0;
pub const XT_RECENT_SET: u8 = 1 << 1;
pub const XT_RECENT_UPDATE: u8 = 1 << 2;
pub const XT_RECENT_REMOVE: u8 = 1 << 3;
pub const XT_RECENT_TTL: u8 = 1 << 4;
pub const XT_RECENT_REAP: u8 = 1 << 5;
pub const XT_RECENT_SOURCE: u8 = 0;
pub const XT_RECENT_DEST: u8 = 1;
pub const XT_RECENT_NAME_LEN: usize = 200;
/// `--rttl` and `--reap`.
pub const XT_RECENT_MODIFIERS: u8 = XT_RECENT_TTL | XT_RECENT_REAP;
pub const XT_RECENT_VALID_FLAGS: u8 = XT_RECENT_CHECK
    | XT_RECENT_SET
    | XT_RECENT_UPDATE
    | XT_RECENT_REMOVE
    | XT_RECENT_TTL
    | XT_RECENT_REAP;
/// `XT_RECENT_MAX_NSTAMPS`: the kernel refuses a `--hitcount` of this or more.
pub const XT_RECENT_MAX_NSTAMPS: u32 = 65536;
impl Default for RecentInfoV1 {
    /// libxt_recent's `recent_init` for revision 1: `--name DEFAULT`, `--rsource`, mask all ones.
    fn default() -> Self {
        let mut name = [0u8; XT_RECENT_NAME_LEN];
        name[..7].copy_from_slice(b"DEFAULT");
        RecentInfoV1 {
            seconds: 0,
            hit_count: 0,
            check_set: 0,
            invert: 0,
            name,
            side: XT_RECENT_SOURCE,
            mask: [0xFF; 16],
        }
    }
}
impl RecentInfoV1 {
    pub const SIZE: usize = 232;
    /// The list's name (up to the first NUL).
    pub fn name(&self) -> &[u8] {
        let n = self
            .name
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(XT_RECENT_NAME_LEN);
        self.name.get(..n).unwrap_or(&[])
    }
    /// `--name NAME` as xtopt_parse_string puts it: at most 199 bytes and a NUL over the field.
    pub fn set_name(&mut self, n: &[u8]) {
        let z = n.len().min(XT_RECENT_NAME_LEN - 1);
        self.name[..z].copy_from_slice(&n[..z]);
        self.name[z] = 0;
    }
    /// `--mask ADDR` (XTTYPE_HOST: the address, the rest of the union zero).
    pub fn set_mask4(&mut self, a: [u8; 4]) {
        self.mask = [0; 16];
        self.mask[..4].copy_from_slice(&a);
    }
    /// The IPv4 mask.
    pub fn mask4(&self) -> [u8; 4] {
        [self.mask[0], self.mask[1], self.mask[2], self.mask[3]]
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.le32(0, self.seconds);
        o.le32(4, self.hit_count);
        o.u8(8, self.check_set);
        o.u8(9, self.invert);
        o.put(10, &self.name);
        o.u8(210, self.side);
        o.put(212, &self.mask);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(RecentInfoV1 {
            seconds: le32(d, 0)?,
            hit_count: le32(d, 4)?,
            check_set: u8_at(d, 8)?,
            invert: u8_at(d, 9)?,
            name: arr(d, 10)?,
            side: u8_at(d, 210)?,
            mask: arr(d, 212)?,
        })
    }
}

/// `struct ipt_reject_info` ("REJECT" rev 0): `with` values `IPT_ICMP_*`/`IPT_TCP_RESET`.
pub const IPT_REJECT_SIZE: usize = 4;
pub const IPT_ICMP_NET_UNREACHABLE: u32 = 0;
pub const IPT_ICMP_HOST_UNREACHABLE: u32 = 1;
pub const IPT_ICMP_PROT_UNREACHABLE: u32 = 2;
pub const IPT_ICMP_PORT_UNREACHABLE: u32 = 3;
pub const IPT_ICMP_ECHOREPLY: u32 = 4;
pub const IPT_ICMP_NET_PROHIBITED: u32 = 5;
pub const IPT_ICMP_HOST_PROHIBITED: u32 = 6;
pub const IPT_TCP_RESET: u32 = 7;
pub const IPT_ICMP_ADMIN_PROHIBITED: u32 = 8;

/// `struct ipt_log_info` ("LOG" rev 0, 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    pub level: u8,
    pub logflags: u8,
    /// Prefix bytes up to the NUL (at most 29).
    pub prefix: Vec<u8>,
}
/// `IPT_LOG_*` flags.
pub const IPT_LOG_TCPSEQ: u8 = 0x01;
pub const IPT_LOG_TCPOPT: u8 = 0x02;
pub const IPT_LOG_IPOPT: u8 = 0x04;
pub const IPT_LOG_UID: u8 = 0x08;
pub const IPT_LOG_NFLOG: u8 = 0x10;
pub const IPT_LOG_MACDECODE: u8 = 0x20;
impl LogInfo {
    pub const SIZE: usize = 32;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.u8(0, self.level);
        o.u8(1, self.logflags);
        o.str_field(2, &self.prefix, 30);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(LogInfo {
            level: u8_at(d, 0)?,
            logflags: u8_at(d, 1)?,
            prefix: cstr(d, 2, 30)?.to_vec(),
        })
    }
}

/// `struct xt_mark_tginfo2` ("MARK" rev 2, 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkTgInfo2 {
    pub mark: u32,
    pub mask: u32,
}
impl MarkTgInfo2 {
    pub const SIZE: usize = 8;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.le32(0, self.mark);
        o.le32(4, self.mask);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(MarkTgInfo2 {
            mark: le32(d, 0)?,
            mask: le32(d, 4)?,
        })
    }
}

/// `struct xt_connmark_tginfo1` (rev 1, 13 → 16 bytes) / `xt_connmark_tginfo2` (rev 2, 15 → 16):
/// `ctmark, ctmask, nfmask`, then (rev 2) `shift_dir, shift_bits`, then `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnmarkTgInfo {
    pub ctmark: u32,
    pub ctmask: u32,
    pub nfmask: u32,
    pub shift_dir: u8,
    pub shift_bits: u8,
    pub mode: u8,
}
/// `XT_CONNMARK_SET`, `_SAVE`, `_RESTORE`.
pub const XT_CONNMARK_SET: u8 = 0;
pub const XT_CONNMARK_SAVE: u8 = 1;
pub const XT_CONNMARK_RESTORE: u8 = 2;
impl ConnmarkTgInfo {
    /// Kernel targetsize for a revision.
    pub fn size(rev: u8) -> usize {
        if rev == 1 { 13 } else { 15 }
    }
    pub fn encode(&self, rev: u8) -> Vec<u8> {
        let mut o = Out::zeroed(16);
        o.le32(0, self.ctmark);
        o.le32(4, self.ctmask);
        o.le32(8, self.nfmask);
        if rev == 1 {
            o.u8(12, self.mode);
        } else {
            o.u8(12, self.shift_dir);
            o.u8(13, self.shift_bits);
            o.u8(14, self.mode);
        }
        o.0
    }
    pub fn decode(d: &[u8], rev: u8) -> Option<Self> {
        let (shift_dir, shift_bits, mode) = if rev == 1 {
            (0, 0, u8_at(d, 12)?)
        } else {
            (u8_at(d, 12)?, u8_at(d, 13)?, u8_at(d, 14)?)
        };
        Some(ConnmarkTgInfo {
            ctmark: le32(d, 0)?,
            ctmask: le32(d, 4)?,
            nfmask: le32(d, 8)?,
            shift_dir,
            shift_bits,
            mode,
        })
    }
}

/// `struct xt_ct_target_info` (rev 0, 40 bytes) / `_v1` (rev 1 and 2, 72 bytes). The trailing
/// kernel pointer is private and always zero here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtTargetInfo {
    pub flags: u16,
    pub zone: u16,
    pub ct_events: u32,
    pub exp_events: u32,
    /// Helper name up to its NUL (field of 16).
    pub helper: Vec<u8>,
    /// Timeout policy name up to its NUL (field of 32; rev ≥ 1 only).
    pub timeout: Vec<u8>,
}
/// `XT_CT_*` flags.
pub const XT_CT_NOTRACK: u16 = 1 << 0;
pub const XT_CT_NOTRACK_ALIAS: u16 = 1 << 1;
pub const XT_CT_ZONE_DIR_ORIG: u16 = 1 << 2;
pub const XT_CT_ZONE_DIR_REPL: u16 = 1 << 3;
pub const XT_CT_ZONE_MARK: u16 = 1 << 4;
pub const XT_CT_MASK: u16 = 0x1F;
impl CtTargetInfo {
    /// Kernel targetsize for a revision.
    pub fn size(rev: u8) -> usize {
        if rev == 0 { 40 } else { 72 }
    }
    pub fn encode(&self, rev: u8) -> Vec<u8> {
        let mut o = Out::zeroed(Self::size(rev));
        o.le16(0, self.flags);
        o.le16(2, self.zone);
        o.le32(4, self.ct_events);
        o.le32(8, self.exp_events);
        o.str_field(12, &self.helper, 16);
        if rev != 0 {
            o.str_field(28, &self.timeout, 32);
        }
        o.0
    }
    pub fn decode(d: &[u8], rev: u8) -> Option<Self> {
        let timeout = if rev == 0 {
            Vec::new()
        } else {
            cstr(d, 28, 32)?.to_vec()
        };
        Some(CtTargetInfo {
            flags: le16(d, 0)?,
            zone: le16(d, 2)?,
            ct_events: le32(d, 4)?,
            exp_events: le32(d, 8)?,
            helper: cstr(d, 12, 16)?.to_vec(),
            timeout,
        })
    }
}

/// One NAT range in the form common to all NAT revisions (IPv4 only): `nf_nat_range2` fields.
/// Ports are host-order numbers here (network order on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatRange {
    pub flags: u32,
    pub min_addr: [u8; 4],
    pub max_addr: [u8; 4],
    pub min_proto: u16,
    pub max_proto: u16,
    pub base_proto: u16,
}
/// `NF_NAT_RANGE_*` flags.
pub use nfr_proto::nat::{
    NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_NETMAP, NF_NAT_RANGE_PERSISTENT, NF_NAT_RANGE_PROTO_OFFSET,
    NF_NAT_RANGE_PROTO_RANDOM, NF_NAT_RANGE_PROTO_RANDOM_FULLY, NF_NAT_RANGE_PROTO_SPECIFIED,
};

impl NatRange {
    /// Kernel targetsize: rev 0 `nf_nat_ipv4_multi_range_compat` (20), rev 1 `nf_nat_range` (40),
    /// rev 2 `nf_nat_range2` (44).
    pub fn size(rev: u8) -> usize {
        match rev {
            0 => 20,
            1 => 40,
            _ => 44,
        }
    }
    /// Encode; rev 0 writes `rangesize` = `rangesize` (normally 1).
    pub fn encode(&self, rev: u8, rangesize: u32) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::size(rev)));
        if rev == 0 {
            o.le32(0, rangesize);
            o.le32(4, self.flags);
            o.put(8, &self.min_addr);
            o.put(12, &self.max_addr);
            o.be16(16, self.min_proto);
            o.be16(18, self.max_proto);
        } else {
            o.le32(0, self.flags);
            o.put(4, &self.min_addr);
            o.put(20, &self.max_addr);
            o.be16(36, self.min_proto);
            o.be16(38, self.max_proto);
            if rev >= 2 {
                o.be16(40, self.base_proto);
            }
        }
        o.0
    }
    /// Decode; for rev 0 also returns `rangesize`.
    pub fn decode(d: &[u8], rev: u8) -> Option<(Self, u32)> {
        if rev == 0 {
            Some((
                NatRange {
                    flags: le32(d, 4)?,
                    min_addr: arr(d, 8)?,
                    max_addr: arr(d, 12)?,
                    min_proto: be16(d, 16)?,
                    max_proto: be16(d, 18)?,
                    base_proto: 0,
                },
                le32(d, 0)?,
            ))
        } else {
            Some((
                NatRange {
                    flags: le32(d, 0)?,
                    min_addr: arr(d, 4)?,
                    max_addr: arr(d, 20)?,
                    min_proto: be16(d, 36)?,
                    max_proto: be16(d, 38)?,
                    base_proto: if rev >= 2 { be16(d, 40)? } else { 0 },
                },
                1,
            ))
        }
    }
}

/// `struct xt_NFQ_info_v3` ("NFQUEUE" rev 3, 6 bytes, XT_ALIGN 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NfqInfoV3 {
    pub queuenum: u16,
    pub queues_total: u16,
    pub flags: u16,
}
/// `NFQ_FLAG_BYPASS`.
pub const NFQ_FLAG_BYPASS: u16 = 0x01;
/// `NFQ_FLAG_CPU_FANOUT`.
pub const NFQ_FLAG_CPU_FANOUT: u16 = 0x02;
/// `NFQ_FLAG_MASK`.
pub const NFQ_FLAG_MASK: u16 = 0x03;
impl NfqInfoV3 {
    pub const SIZE: usize = 6;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.le16(0, self.queuenum);
        o.le16(2, self.queues_total);
        o.le16(4, self.flags);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(NfqInfoV3 {
            queuenum: le16(d, 0)?,
            queues_total: le16(d, 2)?,
            flags: le16(d, 4)?,
        })
    }
}

/// `struct xt_length_info` ("length" rev 0, 5 bytes, XT_ALIGN 8): IPv4 total length range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthInfo {
    pub min: u16,
    pub max: u16,
    pub invert: u8,
}
impl LengthInfo {
    pub const SIZE: usize = 5;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.le16(0, self.min);
        o.le16(2, self.max);
        o.u8(4, self.invert);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(LengthInfo {
            min: le16(d, 0)?,
            max: le16(d, 2)?,
            invert: u8_at(d, 4)?,
        })
    }
}

/// `struct xt_iprange_mtinfo` ("iprange" rev 1, 65 bytes, XT_ALIGN 72), IPv4 addresses in the
/// first 4 bytes of each `nf_inet_addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IprangeMtInfo {
    pub src_min: [u8; 4],
    pub src_max: [u8; 4],
    pub dst_min: [u8; 4],
    pub dst_max: [u8; 4],
    pub flags: u8,
}
/// `IPRANGE_SRC`, `IPRANGE_DST`, `IPRANGE_SRC_INV`, `IPRANGE_DST_INV`.
pub const IPRANGE_SRC: u8 = 1 << 0;
pub const IPRANGE_DST: u8 = 1 << 1;
pub const IPRANGE_SRC_INV: u8 = 1 << 4;
pub const IPRANGE_DST_INV: u8 = 1 << 5;
impl IprangeMtInfo {
    pub const SIZE: usize = 65;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.put(0, &self.src_min);
        o.put(16, &self.src_max);
        o.put(32, &self.dst_min);
        o.put(48, &self.dst_max);
        o.u8(64, self.flags);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(IprangeMtInfo {
            src_min: arr(d, 0)?,
            src_max: arr(d, 16)?,
            dst_min: arr(d, 32)?,
            dst_max: arr(d, 48)?,
            flags: u8_at(d, 64)?,
        })
    }
}

/// `struct ipt_ttl_info` ("ttl" rev 0, 2 bytes, XT_ALIGN 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlInfo {
    pub mode: u8,
    pub ttl: u8,
}
/// `IPT_TTL_EQ`, `_NE`, `_LT`, `_GT`.
pub const IPT_TTL_EQ: u8 = 0;
pub const IPT_TTL_NE: u8 = 1;
pub const IPT_TTL_LT: u8 = 2;
pub const IPT_TTL_GT: u8 = 3;
impl TtlInfo {
    pub const SIZE: usize = 2;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.u8(0, self.mode);
        o.u8(1, self.ttl);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(TtlInfo {
            mode: u8_at(d, 0)?,
            ttl: u8_at(d, 1)?,
        })
    }
}

/// `struct xt_pkttype_info` ("pkttype" rev 0, 8 bytes): `int pkttype, invert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkttypeInfo {
    pub pkttype: u32,
    pub invert: u32,
}
impl PkttypeInfo {
    pub const SIZE: usize = 8;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(Self::SIZE);
        o.le32(0, self.pkttype);
        o.le32(4, self.invert);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(PkttypeInfo {
            pkttype: le32(d, 0)?,
            invert: le32(d, 4)?,
        })
    }
}

/// `struct xt_connmark_mtinfo1` ("connmark" rev 1, 9 bytes, XT_ALIGN 16): same layout as
/// `xt_mark_mtinfo1`.
pub type ConnmarkMtInfo1 = MarkMtInfo1;

/// `struct xt_dscp_info` ("dscp" rev 0, 2 bytes, XT_ALIGN 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DscpInfo {
    pub dscp: u8,
    pub invert: u8,
}
/// `XT_DSCP_MAX`.
pub const XT_DSCP_MAX: u8 = 0x3f;
impl DscpInfo {
    pub const SIZE: usize = 2;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.u8(0, self.dscp);
        o.u8(1, self.invert);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(DscpInfo {
            dscp: u8_at(d, 0)?,
            invert: u8_at(d, 1)?,
        })
    }
}

/// `struct xt_mac_info` ("mac" rev 0, 12 bytes, XT_ALIGN 16): `srcaddr[6]`, `int invert` @8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacInfo {
    pub srcaddr: [u8; 6],
    pub invert: u32,
}
impl MacInfo {
    pub const SIZE: usize = 12;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.put(0, &self.srcaddr);
        o.le32(8, self.invert);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(MacInfo {
            srcaddr: arr(d, 0)?,
            invert: le32(d, 8)?,
        })
    }
}

/// `struct xt_owner_match_info` ("owner" rev 1, 18 bytes, XT_ALIGN 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnerInfo {
    pub uid_min: u32,
    pub uid_max: u32,
    pub gid_min: u32,
    pub gid_max: u32,
    pub match_flags: u8,
    pub invert: u8,
}
/// `XT_OWNER_UID`, `_GID`, `_SOCKET`, `_SUPPL_GROUPS`.
pub const XT_OWNER_UID: u8 = 1 << 0;
pub const XT_OWNER_GID: u8 = 1 << 1;
pub const XT_OWNER_SOCKET: u8 = 1 << 2;
pub const XT_OWNER_SUPPL_GROUPS: u8 = 1 << 3;
impl OwnerInfo {
    pub const SIZE: usize = 18;
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::zeroed(xt_align(Self::SIZE));
        o.le32(0, self.uid_min);
        o.le32(4, self.uid_max);
        o.le32(8, self.gid_min);
        o.le32(12, self.gid_max);
        o.u8(16, self.match_flags);
        o.u8(17, self.invert);
        o.0
    }
    pub fn decode(d: &[u8]) -> Option<Self> {
        Some(OwnerInfo {
            uid_min: le32(d, 0)?,
            uid_max: le32(d, 4)?,
            gid_min: le32(d, 8)?,
            gid_max: le32(d, 12)?,
            match_flags: u8_at(d, 16)?,
            invert: u8_at(d, 17)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_kernel() {
        assert_eq!(xt_align(XtTcp::SIZE) + XT_HDR_SIZE, 48);
        assert_eq!(xt_align(XtUdp::SIZE) + XT_HDR_SIZE, 48);
        assert_eq!(xt_align(IptIcmp::SIZE) + XT_HDR_SIZE, 40);
        assert_eq!(xt_align(ConntrackMtInfo3::SIZE), 168);
        assert_eq!(ConntrackMtInfo3::default().encode().len(), 168);
        assert_eq!(MultiportV1::default().encode().len(), 48);
        assert_eq!(xt_align(NatRange::size(2)), 48);
        assert_eq!(xt_align(NatRange::size(0)), 24);
        assert_eq!(CtTargetInfo::default().encode(2).len(), 72);
        assert_eq!(xt_blob("tcp", 0, &XtTcp::default().encode()).len(), 48);
    }

    #[test]
    fn readers_never_panic_on_short_input() {
        assert_eq!(le32(&[1, 2, 3], 0), None);
        assert_eq!(le16(&[1, 2, 3], usize::MAX), None);
        assert_eq!(cstr(b"abc", 0, 3), None);
        assert_eq!(cstr(b"ab\0", 0, 3), Some(&b"ab"[..]));
        assert!(EntryHeader::parse(&[0u8; 111], 0).is_none());
        assert!(ConntrackMtInfo3::decode(&[0u8; 100]).is_none());
    }

    #[test]
    fn conntrack_state_alias_layout() {
        // -m state --state RELATED,ESTABLISHED as iptables 1.8.9 writes it (kernel read-back).
        let c = ConntrackMtInfo3 {
            match_flags: XT_CONNTRACK_STATE | XT_CONNTRACK_STATE_ALIAS,
            state_mask: XT_CONNTRACK_STATE_ESTABLISHED | XT_CONNTRACK_STATE_RELATED,
            ..Default::default()
        };
        let b = c.encode();
        assert_eq!(&b[146..154], &[0x01, 0x20, 0, 0, 0x06, 0, 0, 0]);
        assert_eq!(ConntrackMtInfo3::decode(&b), Some(c));
    }
}
