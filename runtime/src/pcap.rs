//! Streaming pcap / pcapng reader (on top of `pcap-parser`): yields one [`Frame`] at a time in constant memory.
//!
//! Handles legacy pcap (micro- and nanosecond magic, both byte orders, FCS bits in the link-type field) and pcapng
//! (several sections and interfaces, per-interface link type, `if_name`, `if_tsresol` and `if_tsoffset`; the
//! interface table starts anew at each Section Header Block, so an interface id means the interface of the
//! frame's own section, and [`Frame::if_name`] carries that interface's name). Timestamps are
//! returned as nanoseconds since the epoch. A truncated or corrupt file yields every complete frame, then an
//! error saying how far the reader got ([`PcapError::offset`], [`PcapError::frames`]). The reader takes any
//! `std::io::Read`; it never opens files itself.

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError as PpError};
use std::io::Read;

/// LINKTYPE_* values understood by [`crate::wire::parse_frame`].
pub mod linktype {
    /// BSD loopback: 4-byte host-order address family.
    pub const NULL: u16 = 0;
    /// Ethernet II (with 802.1Q / 802.1ad tags, MPLS, PPPoE session).
    pub const ETHERNET: u16 = 1;
    /// PPP (optional HDLC address/control, then the protocol; MPLS inside).
    pub const PPP: u16 = 9;
    /// Raw IP (OpenBSD value).
    pub const RAW_OPENBSD: u16 = 12;
    /// Raw IP (BSD/OS value).
    pub const RAW_BSDOS: u16 = 14;
    /// Raw IP (LINKTYPE_RAW).
    pub const RAW: u16 = 101;
    /// OpenBSD loopback: 4-byte network-order address family.
    pub const LOOP: u16 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: u16 = 113;
    /// Raw IPv4.
    pub const IPV4: u16 = 228;
    /// Raw IPv6.
    pub const IPV6: u16 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u16 = 276;
}

/// One captured frame. `data` is valid until the next call to [`PcapReader::next_frame`].
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Link type (LINKTYPE_*, lower 16 bits of the header field).
    pub linktype: u16,
    /// Timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Captured bytes (may be shorter than `orig_len`).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// Interface id within the frame's section (pcapng; 0 for legacy pcap).
    pub iface: u32,
    /// Number of FCS bytes at the end of each frame (legacy header FCS bits), usually 0.
    pub fcs_len: u8,
    /// Section of the frame (pcapng: 0 for the first Section Header Block, 1 for the next, ...; 0 for legacy
    /// pcap).
    pub section: u32,
    /// The `if_name` option of the frame's interface (pcapng), `None` when absent, not UTF-8, or legacy pcap.
    pub if_name: Option<&'a str>,
}

/// Why reading stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PcapErrorKind {
    /// The file is neither pcap nor pcapng.
    HeaderNotRecognized,
    /// The file ends in the middle of a record.
    Truncated,
    /// A record could not be parsed.
    Corrupt,
    /// A single record is larger than the maximum buffer size.
    RecordTooLarge,
    /// The underlying reader failed.
    Io,
    /// A packet refers to an interface that was never described: its id, and how many Interface Description
    /// Blocks the section declared before it.
    UnknownInterface { id: u32, declared: u32 },
}

impl std::fmt::Display for PcapErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PcapErrorKind::HeaderNotRecognized => write!(f, "neither a pcap nor a pcapng header"),
            PcapErrorKind::Truncated => write!(f, "the file ends inside a record"),
            PcapErrorKind::Corrupt => write!(f, "a corrupt record"),
            PcapErrorKind::RecordTooLarge => write!(f, "a record over {MAX_BUF} bytes"),
            PcapErrorKind::Io => write!(f, "a read error"),
            PcapErrorKind::UnknownInterface { id, declared } => write!(
                f,
                "a packet on interface {id}, but its section declares {declared} interface(s)"
            ),
        }
    }
}

/// The magic numbers a capture file starts with, as its first four bytes read little-endian: pcap with
/// microsecond and nanosecond timestamps in either byte order, and pcapng's Section Header Block type.
pub const CAPTURE_MAGICS: [(u32, &str); 5] = [
    (0xa1b2_c3d4, "pcap"),
    (0xd4c3_b2a1, "pcap"),
    (0xa1b2_3c4d, "pcap"),
    (0x4d3c_b2a1, "pcap"),
    (0x0a0d_0d0a, "pcapng"),
];

/// The first four bytes of `head` as a little-endian magic number (`None` when shorter).
pub fn magic(head: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(head.get(..4)?.try_into().ok()?))
}

/// `Some("pcap")` / `Some("pcapng")` when `head` starts with a capture file's magic number.
pub fn capture_format(head: &[u8]) -> Option<&'static str> {
    let m = magic(head)?;
    CAPTURE_MAGICS
        .iter()
        .find(|(v, _)| *v == m)
        .map(|(_, f)| *f)
}

/// A read error with the position reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapError {
    pub kind: PcapErrorKind,
    /// Bytes of the file consumed (complete records) when the error happened.
    pub offset: u64,
    /// Frames returned before the error.
    pub frames: u64,
}

impl std::fmt::Display for PcapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pcap: {} after {} frames at byte {}",
            self.kind, self.frames, self.offset
        )
    }
}

impl std::error::Error for PcapError {}

/// A pcapng interface (Interface Description Block) of the current section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Link type (LINKTYPE_*, lower 16 bits).
    pub linktype: u16,
    /// The `if_name` option (trailing NULs removed), `None` when absent or not UTF-8.
    pub name: Option<String>,
    /// Timestamp ticks per second (`if_tsresol`, default 10^6).
    pub resolution: u64,
    /// `if_tsoffset`, seconds added to every timestamp.
    pub offset_s: i64,
}

const INITIAL_BUF: usize = 1 << 18;
const MAX_BUF: usize = 1 << 24;

/// Whether `buf` starts with a Process Information Block whose length is under the 12 bytes every pcapng block
/// has: pcap-parser takes 12 from that length without checking (a panic in debug builds, a wrapped length in
/// release), so the reader refuses the block as corrupt first.
fn short_process_information(buf: &[u8], be: bool) -> bool {
    let (Some(t), Some(l)) = (buf.get(0..4), buf.get(4..8)) else {
        return false;
    };
    let word = |b: &[u8]| {
        let b = [b[0], b[1], b[2], b[3]];
        if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    word(t) == pcap_parser::PIB_MAGIC && word(l) < 12
}

/// Streaming reader over pcap or pcapng input.
pub struct PcapReader<'r> {
    inner: Box<dyn PcapReaderIterator + Send + 'r>,
    cap: usize,
    /// The largest buffer a record may need.
    limit: usize,
    pending: usize,
    consumed: u64,
    frames: u64,
    legacy_linktype: u16,
    legacy_fcs: u8,
    legacy_ns: bool,
    ifaces: Vec<Interface>,
    /// Section Header Blocks seen.
    sections: u32,
    /// The current pcapng section is big-endian.
    ng_be: bool,
    last_ts: u64,
    done: bool,
}

impl std::fmt::Debug for PcapReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapReader")
            .field("consumed", &self.consumed)
            .field("frames", &self.frames)
            .finish()
    }
}

impl<'r> PcapReader<'r> {
    /// Probes the input (pcapng first, then pcap). An empty input is an error (`HeaderNotRecognized`).
    pub fn new<R: Read + Send + 'r>(reader: R) -> Result<Self, PcapError> {
        Self::with_buffer(reader, INITIAL_BUF, MAX_BUF)
    }

    /// [`Self::new`] with a first buffer of `initial` bytes, grown (by 4) while a record does not fit, up to
    /// `limit` (each at least 4 KiB, at most the 16 MiB [`Self::new`] allows): a record that needs more is
    /// [`PcapErrorKind::RecordTooLarge`]. An input of known length `n` cannot hold a record over `n` bytes, so
    /// `limit` = `n` refuses a record header's false length without zeroing a buffer for it (the fuzz target).
    pub fn with_buffer<R: Read + Send + 'r>(
        reader: R,
        initial: usize,
        limit: usize,
    ) -> Result<Self, PcapError> {
        let limit = limit.clamp(1 << 12, MAX_BUF);
        let initial = initial.clamp(1 << 12, limit);
        let err = |kind| PcapError {
            kind,
            offset: 0,
            frames: 0,
        };
        let inner = match pcap_parser::create_reader(initial, reader) {
            Ok(r) => r,
            Err(PpError::ReadError) => return Err(err(PcapErrorKind::Io)),
            Err(PpError::Incomplete(_)) => return Err(err(PcapErrorKind::Truncated)),
            Err(_) => return Err(err(PcapErrorKind::HeaderNotRecognized)),
        };
        Ok(PcapReader {
            inner,
            cap: initial,
            limit,
            pending: 0,
            consumed: 0,
            frames: 0,
            legacy_linktype: 1,
            legacy_fcs: 0,
            legacy_ns: false,
            ifaces: Vec::new(),
            sections: 0,
            ng_be: false,
            last_ts: 0,
            done: false,
        })
    }

    /// Bytes of complete records consumed so far.
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The interfaces of the current pcapng section, indexed by interface id (empty for legacy pcap).
    pub fn interfaces(&self) -> &[Interface] {
        &self.ifaces
    }

    /// The current section (0-based; 0 for legacy pcap).
    pub fn section(&self) -> u32 {
        self.sections.saturating_sub(1)
    }

    fn fail(&mut self, kind: PcapErrorKind) -> PcapError {
        self.done = true;
        PcapError {
            kind,
            offset: self.consumed,
            frames: self.frames,
        }
    }

    /// Next frame, `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, PcapError> {
        if self.done {
            return Ok(None);
        }
        if self.pending != 0 {
            // No shift here: the unread bytes move to the buffer's start only when a record does not fit
            // (`refill`), not each time half of the buffer was read.
            self.inner.consume_noshift(self.pending);
            self.consumed += self.pending as u64;
            self.pending = 0;
        }
        loop {
            // Decide what to do with the block without keeping its borrow alive across the refill.
            enum Step {
                Consumed(usize),
                Frame {
                    off: usize,
                    /// The frame's bytes: their address and length inside the reader's buffer.
                    at: usize,
                    len: usize,
                    linktype: u16,
                    ts: u64,
                    orig: u32,
                    iface: u32,
                    fcs: u8,
                },
                Refill,
                Grow,
                Eof,
                Fail(PcapErrorKind),
            }
            if self.sections > 0 && short_process_information(self.inner.data(), self.ng_be) {
                return Err(self.fail(PcapErrorKind::Corrupt));
            }
            let step = match self.inner.next() {
                Ok((off, block)) => match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        self.legacy_linktype = (h.network.0 & 0xffff) as u16;
                        let net = h.network.0 as u32;
                        self.legacy_fcs = if net & (1 << 26) != 0 {
                            ((net >> 28) as u8) * 2
                        } else {
                            0
                        };
                        self.legacy_ns = h.is_nanosecond_precision();
                        Step::Consumed(off)
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let sub = if self.legacy_ns {
                            u64::from(b.ts_usec)
                        } else {
                            u64::from(b.ts_usec) * 1000
                        };
                        let ts = u64::from(b.ts_sec) * 1_000_000_000 + sub;
                        Step::Frame {
                            off,
                            at: b.data.as_ptr() as usize,
                            len: b.data.len(),
                            linktype: self.legacy_linktype,
                            ts,
                            orig: b.origlen,
                            iface: 0,
                            fcs: self.legacy_fcs,
                        }
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        // Interface ids are per section: the table starts anew.
                        self.ng_be = shb.big_endian();
                        self.ifaces.clear();
                        self.sections = self.sections.saturating_add(1);
                        Step::Consumed(off)
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let resolution = idb.ts_resolution().unwrap_or(1_000_000).max(1);
                        let name = match idb.if_name() {
                            Some(Ok(n)) => Some(n.trim_end_matches('\0').to_string()),
                            _ => None,
                        };
                        self.ifaces.push(Interface {
                            linktype: (idb.linktype.0 & 0xffff) as u16,
                            name: name.filter(|n| !n.is_empty()),
                            resolution,
                            offset_s: idb.ts_offset(),
                        });
                        Step::Consumed(off)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match self.ifaces.get(epb.if_id as usize) {
                            None => Step::Fail(PcapErrorKind::UnknownInterface {
                                id: epb.if_id,
                                declared: self.ifaces.len() as u32,
                            }),
                            Some(ifc) => {
                                let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let ns = (u128::from(ticks) * 1_000_000_000
                                    / u128::from(ifc.resolution))
                                    as i128
                                    + i128::from(ifc.offset_s) * 1_000_000_000;
                                let ts = ns.clamp(0, i128::from(u64::MAX)) as u64;
                                let len = (epb.caplen as usize).min(epb.data.len());
                                Step::Frame {
                                    off,
                                    at: epb.data.as_ptr() as usize,
                                    len,
                                    linktype: ifc.linktype,
                                    ts,
                                    orig: epb.origlen,
                                    iface: epb.if_id,
                                    fcs: 0,
                                }
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match self.ifaces.first() {
                        None => Step::Fail(PcapErrorKind::UnknownInterface { id: 0, declared: 0 }),
                        Some(ifc) => {
                            let len = (spb.origlen as usize).min(spb.data.len());
                            Step::Frame {
                                off,
                                at: spb.data.as_ptr() as usize,
                                len,
                                linktype: ifc.linktype,
                                ts: self.last_ts,
                                orig: spb.origlen,
                                iface: 0,
                                fcs: 0,
                            }
                        }
                    },
                    PcapBlockOwned::NG(_) => Step::Consumed(off),
                },
                Err(PpError::Eof) => Step::Eof,
                Err(PpError::Incomplete(_)) => Step::Refill,
                Err(PpError::BufferTooSmall) => Step::Grow,
                Err(PpError::UnexpectedEof) => Step::Fail(PcapErrorKind::Truncated),
                Err(PpError::ReadError) => Step::Fail(PcapErrorKind::Io),
                Err(_) => Step::Fail(PcapErrorKind::Corrupt),
            };
            match step {
                Step::Consumed(off) => {
                    self.inner.consume(off);
                    self.consumed += off as u64;
                }
                Step::Frame {
                    off,
                    at,
                    len,
                    linktype,
                    ts,
                    orig,
                    iface,
                    fcs,
                } => {
                    self.pending = off;
                    self.frames += 1;
                    self.last_ts = ts;
                    let if_name = self
                        .ifaces
                        .get(iface as usize)
                        .and_then(|i| i.name.as_deref());
                    // The block borrowed the buffer, which stays put until the next call consumes the record:
                    // the frame's bytes are taken from there, not copied.
                    let buf = self.inner.data();
                    let start = at.wrapping_sub(buf.as_ptr() as usize);
                    let data = buf.get(start..start.saturating_add(len)).unwrap_or(&[]);
                    return Ok(Some(Frame {
                        linktype,
                        ts_ns: ts,
                        data,
                        orig_len: orig,
                        iface,
                        fcs_len: fcs,
                        section: self.sections.saturating_sub(1),
                        if_name,
                    }));
                }
                Step::Refill => {
                    let before = self.inner.data().len();
                    if self.inner.refill().is_err() {
                        return Err(self.fail(PcapErrorKind::Io));
                    }
                    if self.inner.reader_exhausted() && self.inner.data().len() == before {
                        // The reader reports Incomplete on a cut record when it has not noticed EOF yet; the
                        // next round turns this into UnexpectedEof / Eof.
                        if before != 0 {
                            match self.inner.next() {
                                Ok(_) => {}
                                Err(PpError::Eof) => {}
                                Err(_) => return Err(self.fail(PcapErrorKind::Truncated)),
                            }
                        }
                    }
                }
                Step::Grow => {
                    if self.cap >= self.limit {
                        return Err(self.fail(PcapErrorKind::RecordTooLarge));
                    }
                    self.cap = (self.cap * 4).min(self.limit);
                    if !self.inner.grow(self.cap) {
                        return Err(self.fail(PcapErrorKind::RecordTooLarge));
                    }
                }
                Step::Eof => {
                    self.done = true;
                    return Ok(None);
                }
                Step::Fail(kind) => return Err(self.fail(kind)),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing: the one place captures are made (`nfc run pcap --write-*`, `nfc import classbench`, the
// example captures, tests). Bytes only; the caller writes them where it wants.

/// The libpcap file header (format 2.4, microsecond timestamps, little-endian) for `linktype`.
pub fn pcap_header(linktype: u16, snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&CAPTURE_MAGICS[0].0.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&u32::from(linktype).to_le_bytes());
    h
}

/// One libpcap record after [`pcap_header`]: `ts_us` microseconds since the epoch, the frame's length on the
/// wire (at least the bytes given), the bytes.
pub fn pcap_record(ts_us: u64, orig_len: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + data.len());
    r.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    r.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
    r.extend_from_slice(data);
    r
}

/// pcapng blocks (little-endian), for captures with several interfaces and sections.
pub mod ng {
    /// A block of type `t`, its body padded to 32 bits, with both length fields.
    pub fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        let len = 12 + b.len() as u32;
        let mut v = Vec::with_capacity(len as usize);
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&b);
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    /// A Section Header Block (version 1.0, section length unknown).
    pub fn shb() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(-1i64).to_le_bytes());
        block(super::CAPTURE_MAGICS[4].0, &b)
    }

    /// An Interface Description Block (snaplen 0: unlimited) with an optional `if_name` (option 2), then
    /// `opt_endofopt`.
    pub fn idb(linktype: u16, name: Option<&[u8]>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&linktype.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        if let Some(n) = name {
            b.extend_from_slice(&2u16.to_le_bytes());
            b.extend_from_slice(&(n.len() as u16).to_le_bytes());
            b.extend_from_slice(n);
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
            b.extend_from_slice(&[0, 0, 0, 0]);
        }
        block(1, &b)
    }

    /// An Enhanced Packet Block on interface `ifid` at `ts` (in the interface's resolution: microseconds
    /// unless its IDB says otherwise).
    pub fn epb(ifid: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&ifid.to_le_bytes());
        b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        block(6, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(le: bool, ns: bool, linktype: u32, frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        let magic: u32 = if ns { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let w32 = |v: &mut Vec<u8>, x: u32| {
            if le {
                v.extend_from_slice(&x.to_le_bytes())
            } else {
                v.extend_from_slice(&x.to_be_bytes())
            }
        };
        let w16 = |v: &mut Vec<u8>, x: u16| {
            if le {
                v.extend_from_slice(&x.to_le_bytes())
            } else {
                v.extend_from_slice(&x.to_be_bytes())
            }
        };
        w32(&mut v, magic);
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, linktype);
        for (s, sub, d) in frames {
            w32(&mut v, *s);
            w32(&mut v, *sub);
            w32(&mut v, d.len() as u32);
            w32(&mut v, d.len() as u32 + 2);
            v.extend_from_slice(d);
        }
        v
    }

    type Collected = (Vec<(u16, u64, Vec<u8>, u32)>, Option<PcapError>);

    fn collect(bytes: &[u8]) -> Collected {
        let mut r = PcapReader::new(bytes).expect("header");
        let mut out = Vec::new();
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push((f.linktype, f.ts_ns, f.data.to_vec(), f.iface)),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn legacy_both_orders_and_precisions() {
        for le in [true, false] {
            for ns in [false, true] {
                let f = legacy(le, ns, 101, &[(10, 5, b"abcd"), (11, 7, b"xyz")]);
                let (frames, err) = collect(&f);
                assert!(err.is_none(), "{err:?}");
                assert_eq!(frames.len(), 2);
                let mul = if ns { 1 } else { 1000 };
                assert_eq!(
                    frames[0],
                    (101, 10_000_000_000 + 5 * mul, b"abcd".to_vec(), 0)
                );
                assert_eq!(frames[1].1, 11_000_000_000 + 7 * mul);
                assert_eq!(frames[1].2, b"xyz");
            }
        }
    }

    /// A small first buffer reads the frames the default one does: records that do not fit make it grow (a 4 KiB
    /// buffer and a 70,000-byte frame), and the ones after are read on from the same position.
    #[test]
    fn a_small_first_buffer_grows_and_reads_the_same_frames() {
        let big = vec![7u8; 70_000];
        let frames: Vec<(u32, u32, &[u8])> = (0..200u32)
            .map(|i| {
                (
                    i,
                    0,
                    if i == 57 {
                        &big[..]
                    } else {
                        &big[..(i as usize % 90) + 1]
                    },
                )
            })
            .collect();
        let f = legacy(true, false, 1, &frames);
        let want = collect(&f);
        assert_eq!(want.0.len(), 200);
        let mut r = PcapReader::with_buffer(&f[..], 1, f.len()).expect("header");
        let mut got = Vec::new();
        while let Some(fr) = r.next_frame().unwrap() {
            got.push((fr.linktype, fr.ts_ns, fr.data.to_vec(), fr.iface));
        }
        assert_eq!(got, want.0);
    }

    #[test]
    fn fcs_bits_masked() {
        let f = legacy(
            true,
            false,
            1 | (1 << 26) | (2 << 28),
            &[(1, 0, &[0u8; 20])],
        );
        let mut r = PcapReader::new(&f[..]).unwrap();
        let fr = r.next_frame().unwrap().unwrap();
        assert_eq!(fr.linktype, 1);
        assert_eq!(fr.fcs_len, 4);
    }

    #[test]
    fn truncated_reports_progress() {
        let f = legacy(true, false, 1, &[(1, 0, &[1u8; 30]), (2, 0, &[2u8; 30])]);
        let cut = &f[..f.len() - 10];
        let (frames, err) = collect(cut);
        assert_eq!(frames.len(), 1);
        let e = err.expect("truncation error");
        assert_eq!(e.kind, PcapErrorKind::Truncated);
        assert_eq!(e.frames, 1);
        assert_eq!(e.offset, 24 + 16 + 30);
    }

    #[test]
    fn garbage_and_empty() {
        assert_eq!(
            PcapReader::new(&b""[..]).unwrap_err().kind,
            PcapErrorKind::HeaderNotRecognized
        );
        assert_eq!(
            PcapReader::new(&[0x55u8; 64][..]).unwrap_err().kind,
            PcapErrorKind::HeaderNotRecognized
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let good = legacy(true, false, 1, &[(1, 0, &[1u8; 30]), (2, 0, &[2u8; 60])]);
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        for i in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut f = good.clone();
            // Keep the magic most of the time so the record parser gets exercised.
            let from = if i % 4 == 0 { 0 } else { 4 };
            for k in 0..(x % 6) as usize {
                let pos = from + ((x >> (7 * k)) as usize) % (f.len() - from);
                f[pos] = (x >> (5 * k)) as u8;
            }
            f.truncate(((x >> 32) as usize) % (f.len() + 1));
            if let Ok(mut r) = PcapReader::new(&f[..]) {
                let mut n = 0;
                while let Ok(Some(fr)) = r.next_frame() {
                    assert!(fr.data.len() <= f.len());
                    n += 1;
                    assert!(n < 100);
                }
            }
        }
    }

    #[test]
    fn pcapng_two_interfaces_tsresol() {
        let mut f = ng::shb();
        // IDB 0: ethernet, default µs
        f.extend(ng::idb(1, None));
        // IDB 1: raw, if_tsresol = 9 (ns)
        let mut idb = Vec::new();
        idb.extend_from_slice(&101u16.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&0u32.to_le_bytes());
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]);
        f.extend(ng::block(1, &idb));
        for (ifid, ticks, data) in [
            (1u32, 1_500_000_000u64, &b"abc"[..]),
            (0, 2_000_000, &b"defgh"[..]),
        ] {
            f.extend(ng::epb(ifid, ticks, data));
        }
        let (frames, err) = collect(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], (101, 1_500_000_000, b"abc".to_vec(), 1));
        assert_eq!(frames[1], (1, 2_000_000_000, b"defgh".to_vec(), 0));
    }

    #[test]
    fn pcapng_interface_names_are_per_section() {
        let mut f = ng::shb();
        f.extend(ng::idb(101, Some(b"eth0")));
        f.extend(ng::idb(101, Some(b"eth1\0")));
        f.extend(ng::epb(1, 1, b"a"));
        f.extend(ng::epb(0, 1, b"b"));
        // Second section: ids 0 and 1 now name other interfaces; id 2 has no name.
        f.extend(ng::shb());
        f.extend(ng::idb(101, Some(b"wan")));
        f.extend(ng::idb(1, Some(b"eth0")));
        f.extend(ng::idb(101, None));
        f.extend(ng::epb(0, 1, b"c"));
        f.extend(ng::epb(1, 1, b"d"));
        f.extend(ng::epb(2, 1, b"e"));
        let mut r = PcapReader::new(&f[..]).unwrap();
        let mut got = Vec::new();
        while let Some(fr) = r.next_frame().unwrap() {
            got.push((
                fr.data.to_vec(),
                fr.section,
                fr.iface,
                fr.if_name.map(str::to_string),
                fr.linktype,
            ));
        }
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), 0, 1, s("eth1"), 101),
                (b"b".to_vec(), 0, 0, s("eth0"), 101),
                (b"c".to_vec(), 1, 0, s("wan"), 101),
                (b"d".to_vec(), 1, 1, s("eth0"), 1),
                (b"e".to_vec(), 1, 2, None, 101),
            ]
        );
        assert_eq!(r.section(), 1);
        let names: Vec<_> = r.interfaces().iter().map(|i| i.name.clone()).collect();
        assert_eq!(names, vec![s("wan"), s("eth0"), None]);
        // An id of the first section that the second one does not describe is an error, not a stale name.
        let mut g = ng::shb();
        g.extend(ng::idb(101, Some(b"eth0")));
        g.extend(ng::idb(101, Some(b"eth1")));
        g.extend(ng::shb());
        g.extend(ng::idb(101, Some(b"eth2")));
        g.extend(ng::epb(1, 1, b"x"));
        let mut r = PcapReader::new(&g[..]).unwrap();
        assert_eq!(
            r.next_frame().unwrap_err().kind,
            PcapErrorKind::UnknownInterface { id: 1, declared: 1 }
        );
    }

    #[test]
    fn legacy_frames_have_no_interface_name() {
        let f = legacy(true, false, 101, &[(1, 0, b"abcd")]);
        let mut r = PcapReader::new(&f[..]).unwrap();
        let fr = r.next_frame().unwrap().unwrap();
        assert_eq!((fr.if_name, fr.section, fr.iface), (None, 0, 0));
        assert!(r.interfaces().is_empty());
    }
}
