//! Streaming pcap / pcapng reader: yields one [`Frame`] at a time in constant memory.
//!
//! Handles legacy pcap (micro- and nanosecond magic, both byte orders, FCS bits in the link-type field, the
//! "modified" format's longer record header) and pcapng (several sections and interfaces, per-interface link
//! type, `if_name`, `if_tsresol` and `if_tsoffset`; the interface table starts anew at each Section Header Block,
//! so an interface id means the interface of the frame's own section, and [`Frame::if_name`] carries that
//! interface's name). Timestamps are returned as nanoseconds since the epoch. A truncated or corrupt file yields
//! every complete frame, then an error saying how far the reader got ([`PcapError::offset`],
//! [`PcapError::frames`]). The reader takes any `std::io::Read`; it never opens files itself.
//!
//! The records are walked here, over large reads into the reader's own buffer (not a memory map: a file cut
//! short while it is read ends the capture early instead of faulting): a frame whose record is in the buffer
//! costs a header's bounds checks and fields, and its bytes are borrowed from the buffer, not copied. Every
//! length is checked against what was read and against the buffer's limit before it is used. The buffer can be
//! shared ([`PcapReader::buffer`]): a frame's bytes then outlive the next reads, which go to another buffer while
//! anyone holds this one. Of pcapng's
//! blocks, Section Header, Interface Description, Enhanced and Simple Packet Blocks are read; every other block
//! is skipped by its length.

use std::io::Read;
use std::sync::Arc;

/// Shared buffers kept for reuse (what the readers of a `--threads` run hold at once is far less).
const MAX_SPARE: usize = 64;

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

impl<'a> Frame<'a> {
    /// `data` captured whole (`orig_len` its length), on the first interface of the first section, without FCS.
    pub fn whole(linktype: u16, ts_ns: u64, data: &'a [u8]) -> Frame<'a> {
        Frame {
            linktype,
            ts_ns,
            data,
            orig_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            iface: 0,
            fcs_len: 0,
            section: 0,
            if_name: None,
        }
    }
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
    (magic::US, "pcap"),
    (magic::US_SWAPPED, "pcap"),
    (magic::NS, "pcap"),
    (magic::NS_SWAPPED, "pcap"),
    (block::SHB, "pcapng"),
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

impl Interface {
    /// A timestamp of `ticks` of this interface, in nanoseconds since the epoch (0 and `u64::MAX` at the ends).
    fn ns(&self, ticks: u64) -> u64 {
        if self.offset_s == 0 && NS_PER_S.is_multiple_of(self.resolution) {
            // The usual resolutions (µs, ns): a multiplication.
            if let Some(ns) = ticks.checked_mul(NS_PER_S / self.resolution) {
                return ns;
            }
        }
        let ns = (u128::from(ticks) * u128::from(NS_PER_S) / u128::from(self.resolution)) as i128
            + i128::from(self.offset_s) * i128::from(NS_PER_S);
        ns.clamp(0, i128::from(u64::MAX)) as u64
    }
}

const NS_PER_S: u64 = 1_000_000_000;

const INITIAL_BUF: usize = 1 << 18;
const MAX_BUF: usize = 1 << 24;

/// The legacy pcap magic numbers (read little-endian): microseconds, nanoseconds, and the "modified" format
/// (Kuznetzov's patch: 8 more bytes in every record header), each in either byte order.
mod magic {
    pub const US: u32 = 0xa1b2_c3d4;
    pub const US_SWAPPED: u32 = 0xd4c3_b2a1;
    pub const NS: u32 = 0xa1b2_3c4d;
    pub const NS_SWAPPED: u32 = 0x4d3c_b2a1;
    pub const MODIFIED: u32 = 0xa1b2_cd34;
    pub const MODIFIED_SWAPPED: u32 = 0x34cd_b2a1;
}

/// pcapng block types and the Section Header Block's byte-order magic (draft-ietf-opsawg-pcapng, section 4).
mod block {
    /// Section Header Block; the same value in either byte order.
    pub const SHB: u32 = 0x0a0d_0d0a;
    pub const IDB: u32 = 1;
    pub const SPB: u32 = 3;
    pub const EPB: u32 = 6;
    pub const BYTE_ORDER: u32 = 0x1a2b_3c4d;
    /// Block type and length before the body, the length again after it.
    pub const FRAMING: usize = 12;
    /// Fixed parts of the bodies: SHB (byte order, version, section length), IDB (link type, reserved,
    /// snaplen), EPB (interface, timestamp, captured and original lengths), SPB (original length).
    pub const SHB_BODY: usize = 16;
    pub const IDB_BODY: usize = 8;
    pub const EPB_BODY: usize = 20;
    pub const SPB_BODY: usize = 4;
    /// Interface Description Block options.
    pub const OPT_ENDOFOPT: u16 = 0;
    pub const IF_NAME: u16 = 2;
    pub const IF_TSRESOL: u16 = 9;
    pub const IF_TSOFFSET: u16 = 14;
}

/// Legacy pcap's file header and record header (the modified format's is [`LEGACY_MODIFIED_RECORD`]).
const LEGACY_HEADER: usize = 24;
const LEGACY_RECORD: usize = 16;
const LEGACY_MODIFIED_RECORD: usize = 24;

#[inline]
fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let v = b
        .get(at..at + 2)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .unwrap_or_default();
    if be {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

#[inline]
fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let v = b
        .get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .unwrap_or_default();
    if be {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// A frame found in the buffer: where its bytes are, and its fields.
struct Rec {
    at: usize,
    len: usize,
    linktype: u16,
    ts: u64,
    orig: u32,
    iface: u32,
    fcs: u8,
}

/// Streaming reader over pcap or pcapng input.
pub struct PcapReader<'r> {
    src: Box<dyn Read + Send + 'r>,
    /// Bytes read; `pos..end` not yet consumed. Written only while nobody else holds it.
    buf: Arc<Vec<u8>>,
    /// Buffers given up while shared, taken again once nobody holds them.
    spare: Vec<Arc<Vec<u8>>>,
    pos: usize,
    end: usize,
    /// The source said it has no more bytes.
    eof: bool,
    /// The largest buffer a record may need.
    limit: usize,
    consumed: u64,
    frames: u64,
    /// pcapng (else legacy pcap).
    ng: bool,
    /// Multi-byte fields are big-endian (legacy: the file's; pcapng: the current section's).
    be: bool,
    /// Legacy: the record header's length, the link type, FCS bytes, nanosecond timestamps.
    record: usize,
    legacy_linktype: u16,
    legacy_fcs: u8,
    legacy_ns: bool,
    ifaces: Vec<Interface>,
    /// Section Header Blocks seen.
    sections: u32,
    last_ts: u64,
    /// Where the last frame's bytes start in `buf`.
    last_at: usize,
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
    /// Reads the file header (pcapng's first Section Header Block is only checked here, and read as the first
    /// block). An empty input is an error (`HeaderNotRecognized`).
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
        let mut r = PcapReader {
            src: Box::new(reader),
            buf: Arc::new(vec![0; initial]),
            spare: Vec::new(),
            pos: 0,
            end: 0,
            eof: false,
            limit,
            consumed: 0,
            frames: 0,
            ng: false,
            be: false,
            record: LEGACY_RECORD,
            legacy_linktype: 1,
            legacy_fcs: 0,
            legacy_ns: false,
            ifaces: Vec::new(),
            sections: 0,
            last_ts: 0,
            last_at: 0,
            done: false,
        };
        r.header().map_err(|kind| PcapError {
            kind,
            offset: 0,
            frames: 0,
        })?;
        Ok(r)
    }

    fn header(&mut self) -> Result<(), PcapErrorKind> {
        if !self.fill(4)? {
            return Err(PcapErrorKind::HeaderNotRecognized);
        }
        let m = u32_at(&self.buf, 0, false);
        if m == block::SHB {
            if !self.fill(block::FRAMING)? {
                return Err(PcapErrorKind::Truncated);
            }
            self.ng = true;
            self.be = match u32_at(&self.buf, 8, false) {
                block::BYTE_ORDER => false,
                o if o.swap_bytes() == block::BYTE_ORDER => true,
                _ => return Err(PcapErrorKind::HeaderNotRecognized),
            };
            return Ok(());
        }
        let (be, ns, record) = match m {
            magic::US => (false, false, LEGACY_RECORD),
            magic::US_SWAPPED => (true, false, LEGACY_RECORD),
            magic::NS => (false, true, LEGACY_RECORD),
            magic::NS_SWAPPED => (true, true, LEGACY_RECORD),
            magic::MODIFIED => (false, false, LEGACY_MODIFIED_RECORD),
            magic::MODIFIED_SWAPPED => (true, false, LEGACY_MODIFIED_RECORD),
            _ => return Err(PcapErrorKind::HeaderNotRecognized),
        };
        if !self.fill(LEGACY_HEADER)? {
            return Err(PcapErrorKind::Truncated);
        }
        // The link-type field: the type in the low 16 bits; bit 26 says the FCS length (in 16-bit words) is in
        // bits 28-31.
        let net = u32_at(&self.buf, 20, be);
        self.legacy_linktype = (net & 0xffff) as u16;
        self.legacy_fcs = if net & (1 << 26) != 0 {
            ((net >> 28) as u8) * 2
        } else {
            0
        };
        (self.be, self.legacy_ns, self.record) = (be, ns, record);
        self.pos = LEGACY_HEADER;
        self.consumed = LEGACY_HEADER as u64;
        Ok(())
    }

    /// Bytes of complete records consumed so far (those of the last frame returned included).
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

    /// Next frame, `Ok(None)` at a clean end of file.
    #[inline(always)]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, PcapError> {
        // The common case inline: a legacy record already in the buffer.
        match self.buffered_record() {
            Some(r) => Ok(Some(self.frame(r))),
            None => self.next_frame_slow(),
        }
    }

    #[inline(never)]
    fn next_frame_slow(&mut self) -> Result<Option<Frame<'_>>, PcapError> {
        if self.done {
            return Ok(None);
        }
        let rec = if self.ng {
            self.next_block()
        } else {
            self.next_record()
        };
        match rec {
            Ok(Some(r)) => Ok(Some(self.frame(r))),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(kind) => {
                self.done = true;
                Err(PcapError {
                    kind,
                    offset: self.consumed,
                    frames: self.frames,
                })
            }
        }
    }

    #[inline(always)]
    fn frame(&mut self, r: Rec) -> Frame<'_> {
        self.frames += 1;
        self.last_at = r.at;
        self.last_ts = r.ts;
        let if_name = match self.ng {
            true => self
                .ifaces
                .get(r.iface as usize)
                .and_then(|i| i.name.as_deref()),
            false => None,
        };
        Frame {
            linktype: r.linktype,
            ts_ns: r.ts,
            data: self.buf.get(r.at..r.at + r.len).unwrap_or(&[]),
            orig_len: r.orig,
            iface: r.iface,
            fcs_len: r.fcs,
            section: self.sections.saturating_sub(1),
            if_name,
        }
    }

    /// The next legacy record when all of it is in the buffer (consumed), else `None`.
    #[inline(always)]
    fn buffered_record(&mut self) -> Option<Rec> {
        if self.ng || self.done {
            return None;
        }
        let (r, next) = self.record_at(self.pos)?;
        self.consumed += (next - self.pos) as u64;
        self.pos = next;
        Some(r)
    }

    /// The legacy record at `p` in the buffer when all of it is there, and where the next one starts.
    #[inline(always)]
    fn record_at(&self, p: usize) -> Option<(Rec, usize)> {
        let avail = self.buf.get(p..self.end)?;
        // The header's fields (seconds, fraction, captured and original lengths).
        let hd: &[u8; LEGACY_RECORD] = avail.first_chunk()?;
        let be = self.be;
        let field = |i: usize| {
            let w = [hd[i], hd[i + 1], hd[i + 2], hd[i + 3]];
            u64::from(if be {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            })
        };
        let len = self.record + field(8) as usize;
        if avail.len() < len {
            return None;
        }
        let frac = field(4);
        let sub = if self.legacy_ns { frac } else { frac * 1000 };
        let r = Rec {
            at: p + self.record,
            len: len - self.record,
            linktype: self.legacy_linktype,
            ts: field(0) * NS_PER_S + sub,
            orig: field(12) as u32,
            iface: 0,
            fcs: self.legacy_fcs,
        };
        Some((r, p + len))
    }

    /// The next frames already in the buffer, as (link type, bytes), up to `out.len()` of them, without reading
    /// them: a look ahead for hints (prefetching what their packets will touch). Legacy pcap only (none for
    /// pcapng). Returns how many were written.
    pub fn peek_buffered<'s>(&'s self, out: &mut [(u16, &'s [u8])]) -> usize {
        if self.ng || self.done {
            return 0;
        }
        let mut p = self.pos;
        for (k, o) in out.iter_mut().enumerate() {
            let Some((r, next)) = self.record_at(p) else {
                return k;
            };
            *o = (r.linktype, self.buf.get(r.at..r.at + r.len).unwrap_or(&[]));
            p = next;
        }
        out.len()
    }

    /// The buffer the frames come from, to hold their bytes past the next reads: a [`Frame`]'s data is
    /// `buffer()[at..at + len]` with `at` its offset ([`Self::last_frame_at`]).
    pub fn buffer(&self) -> &Arc<Vec<u8>> {
        &self.buf
    }

    /// Where the bytes of the frame [`Self::next_frame`] returned last start in [`Self::buffer`].
    pub fn last_frame_at(&self) -> usize {
        self.last_at
    }

    /// A buffer of `size` bytes nobody else holds: a spare one whose holders are gone, else a new one.
    fn fresh(&mut self, size: usize) -> Arc<Vec<u8>> {
        match self
            .spare
            .iter()
            .position(|b| Arc::strong_count(b) == 1 && b.len() == size)
        {
            Some(i) => self.spare.swap_remove(i),
            None => Arc::new(vec![0; size]),
        }
    }

    /// `n` bytes from `pos` in the buffer; `false` when the input ends first.
    #[inline]
    fn fill(&mut self, n: usize) -> Result<bool, PcapErrorKind> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        self.refill(n)
    }

    /// [`Self::fill`] when the bytes are not there yet: the unread bytes (less than a record) move to the
    /// buffer's start, the buffer grows if `n` needs it, and the rest of it is read.
    #[cold]
    fn refill(&mut self, n: usize) -> Result<bool, PcapErrorKind> {
        if n > self.limit {
            return Err(PcapErrorKind::RecordTooLarge);
        }
        let unread = self.end - self.pos;
        let size = if n > self.buf.len() {
            self.buf.len().saturating_mul(4).max(n).min(self.limit)
        } else {
            self.buf.len()
        };
        let buf = match Arc::get_mut(&mut self.buf) {
            Some(b) if b.len() == size => {
                b.copy_within(self.pos..self.end, 0);
                b
            }
            _ => {
                // Grown, or held by someone: the unread bytes go to another buffer. (`make_mut` of a buffer
                // nobody else holds writes it in place.)
                let mut fresh = self.fresh(size);
                Arc::make_mut(&mut fresh)[..unread].copy_from_slice(&self.buf[self.pos..self.end]);
                let old = std::mem::replace(&mut self.buf, fresh);
                if Arc::strong_count(&old) > 1 && self.spare.len() < MAX_SPARE {
                    self.spare.push(old);
                }
                Arc::make_mut(&mut self.buf)
            }
        };
        (self.pos, self.end) = (0, unread);
        while self.end < n {
            if self.eof {
                return Ok(false);
            }
            match self.src.read(&mut buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end = (self.end + k).min(buf.len()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(PcapErrorKind::Io),
            }
        }
        Ok(true)
    }

    /// The next legacy pcap record, read into the buffer first.
    fn next_record(&mut self) -> Result<Option<Rec>, PcapErrorKind> {
        let h = self.record;
        if !self.fill(h)? {
            return match self.end == self.pos {
                true => Ok(None),
                false => Err(PcapErrorKind::Truncated),
            };
        }
        let caplen = u32_at(&self.buf, self.pos + 8, self.be) as usize;
        if !self.fill(h + caplen)? {
            return Err(PcapErrorKind::Truncated);
        }
        // All of it is there now.
        self.buffered_record()
            .map(Some)
            .ok_or(PcapErrorKind::Corrupt)
    }

    /// The next pcapng packet block; the blocks before it are read (SHB, IDB) or skipped.
    #[inline(never)]
    fn next_block(&mut self) -> Result<Option<Rec>, PcapErrorKind> {
        loop {
            if !self.fill(block::FRAMING)? {
                return match self.end == self.pos {
                    true => Ok(None),
                    false => Err(PcapErrorKind::Truncated),
                };
            }
            let p = self.pos;
            let kind = u32_at(&self.buf, p, self.be);
            if kind == block::SHB {
                // A new section says its own byte order.
                self.be = match u32_at(&self.buf, p + 8, false) {
                    block::BYTE_ORDER => false,
                    o if o.swap_bytes() == block::BYTE_ORDER => true,
                    _ => return Err(PcapErrorKind::Corrupt),
                };
            }
            let len = u32_at(&self.buf, p + 4, self.be) as usize;
            if len < block::FRAMING || !len.is_multiple_of(4) {
                return Err(PcapErrorKind::Corrupt);
            }
            if !self.fill(len)? {
                return Err(PcapErrorKind::Truncated);
            }
            let (p, be) = (self.pos, self.be);
            if u32_at(&self.buf, p + len - 4, be) as usize != len {
                return Err(PcapErrorKind::Corrupt);
            }
            // The body, between the framing's two halves.
            let (at, body) = (p + 8, len - block::FRAMING);
            let rec = match kind {
                block::EPB => {
                    if body < block::EPB_BODY {
                        return Err(PcapErrorKind::Corrupt);
                    }
                    let id = u32_at(&self.buf, at, be);
                    let Some(ifc) = self.ifaces.get(id as usize) else {
                        return Err(PcapErrorKind::UnknownInterface {
                            id,
                            declared: self.ifaces.len() as u32,
                        });
                    };
                    let caplen = u32_at(&self.buf, at + 12, be) as usize;
                    if caplen > body - block::EPB_BODY {
                        return Err(PcapErrorKind::Corrupt);
                    }
                    let ticks = (u64::from(u32_at(&self.buf, at + 4, be)) << 32)
                        | u64::from(u32_at(&self.buf, at + 8, be));
                    Some(Rec {
                        at: at + block::EPB_BODY,
                        len: caplen,
                        linktype: ifc.linktype,
                        ts: ifc.ns(ticks),
                        orig: u32_at(&self.buf, at + 16, be),
                        iface: id,
                        fcs: 0,
                    })
                }
                block::SPB => {
                    if body < block::SPB_BODY {
                        return Err(PcapErrorKind::Corrupt);
                    }
                    let Some(ifc) = self.ifaces.first() else {
                        return Err(PcapErrorKind::UnknownInterface { id: 0, declared: 0 });
                    };
                    // No captured length: the original one, as far as the block holds it.
                    let orig = u32_at(&self.buf, at, be);
                    Some(Rec {
                        at: at + block::SPB_BODY,
                        len: (orig as usize).min(body - block::SPB_BODY),
                        linktype: ifc.linktype,
                        ts: self.last_ts,
                        orig,
                        iface: 0,
                        fcs: 0,
                    })
                }
                block::SHB => {
                    if body < block::SHB_BODY {
                        return Err(PcapErrorKind::Corrupt);
                    }
                    // Interface ids are per section: the table starts anew.
                    self.ifaces.clear();
                    self.sections = self.sections.saturating_add(1);
                    None
                }
                block::IDB => {
                    if body < block::IDB_BODY {
                        return Err(PcapErrorKind::Corrupt);
                    }
                    let opts = self.buf.get(at + block::IDB_BODY..at + body).unwrap_or(&[]);
                    let ifc = interface(u16_at(&self.buf, at, be), opts, be);
                    self.ifaces.push(ifc);
                    None
                }
                _ => None,
            };
            self.pos = p + len;
            self.consumed += len as u64;
            if rec.is_some() {
                return Ok(rec);
            }
        }
    }
}

/// An Interface Description Block's interface: its link type and options (the first of each; an option whose
/// length runs past the block ends them). `if_tsresol`: ticks per second are 10^v, or 2^(v & 0x7f) with the
/// high bit set; one that does not fit 64 bits is the default µs.
fn interface(linktype: u16, mut opts: &[u8], be: bool) -> Interface {
    let (mut name, mut tsresol, mut offset) = (None, None, None);
    while opts.len() >= 4 {
        let code = u16_at(opts, 0, be);
        let len = usize::from(u16_at(opts, 2, be));
        let Some(v) = opts.get(4..4 + len) else {
            break;
        };
        match code {
            block::OPT_ENDOFOPT => break,
            block::IF_NAME if name.is_none() => name = Some(std::str::from_utf8(v).ok()),
            block::IF_TSRESOL if tsresol.is_none() => tsresol = v.first().copied(),
            block::IF_TSOFFSET if offset.is_none() => {
                if let Ok(b) = <[u8; 8]>::try_from(v) {
                    offset = Some(if be {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    });
                }
            }
            _ => {}
        }
        opts = opts.get(4 + len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    let resolution = match tsresol.unwrap_or(6) {
        v if v & 0x80 == 0 => 10u64.checked_pow(u32::from(v)),
        v => 1u64.checked_shl(u32::from(v & 0x7f)),
    };
    Interface {
        linktype,
        name: name
            .flatten()
            .map(|n| n.trim_end_matches('\0'))
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        resolution: resolution.unwrap_or(1_000_000),
        offset_s: offset.unwrap_or(0),
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

    /// A frame's bytes, held through [`PcapReader::buffer`] at [`PcapReader::last_frame_at`], stay what the
    /// frame was while the reader reads on into other buffers (4 KiB ones, so that it refills often, grown to
    /// 16 KiB for a large record), in both formats; buffers given up are taken again once let go.
    #[test]
    fn held_frames_outlive_the_next_reads() {
        let big = vec![9u8; 9_000];
        let data: Vec<Vec<u8>> = (0..3_000u32)
            .map(|i| match i {
                150 => big.clone(),
                _ => (0..(i % 200 + 1)).map(|k| (k ^ i) as u8).collect(),
            })
            .collect();
        let frames: Vec<(u32, u32, &[u8])> = data
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u32, 0, &d[..]))
            .collect();
        let mut ng_file = [ng::shb(), ng::idb(1, None)].concat();
        for (i, d) in data.iter().enumerate() {
            ng_file.extend(ng::epb(0, i as u64, d));
        }
        for f in [legacy(true, false, 1, &frames), ng_file] {
            let mut r = PcapReader::with_buffer(&f[..], 1, 1 << 16).expect("header");
            let mut held: Vec<(Arc<Vec<u8>>, usize, usize)> = Vec::new();
            let mut n = 0;
            while let Some(fr) = r.next_frame().unwrap() {
                let len = fr.data.len();
                assert_eq!(fr.data, data[n]);
                let (buf, at) = (r.buffer().clone(), r.last_frame_at());
                assert_eq!(buf[at..at + len], data[n]);
                // Hold every other frame's buffer for 100 frames (several buffers).
                if n % 2 == 0 {
                    held.push((buf, at, n));
                }
                held.retain(|(b, at, k)| {
                    assert_eq!(
                        b[*at..*at + data[*k].len()],
                        data[*k],
                        "frame {k}, at frame {n}"
                    );
                    n - k < 100
                });
                n += 1;
            }
            assert_eq!(n, 3_000);
            // ~300 KB read into 4 then 16 KiB buffers, a few of them held at a time: the ones let go were taken
            // again (with none taken again, 26 are kept).
            assert!(r.spare.len() <= 8, "{} spare buffers", r.spare.len());
        }
    }

    /// `peek_buffered` shows the frames `next_frame` returns next, as far as the buffer holds whole records,
    /// and consumes nothing; a pcapng capture shows none.
    #[test]
    fn peeking_shows_the_next_buffered_frames() {
        let data: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let frames: Vec<(u32, u32, &[u8])> = data
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u32, 0, &d[..]))
            .collect();
        let f = legacy(true, false, 1, &frames);
        // A buffer that holds some records whole, the next one cut.
        let mut r = PcapReader::with_buffer(&f[..], 300, f.len()).expect("header");
        let mut seen = 0;
        let mut peeks = 0;
        loop {
            let mut ahead = [(0u16, &[][..]); 8];
            let n = r.peek_buffered(&mut ahead);
            let ahead: Vec<(u16, Vec<u8>)> =
                ahead[..n].iter().map(|(l, d)| (*l, d.to_vec())).collect();
            peeks += usize::from(n > 0);
            for (lt, d) in &ahead {
                let fr = r.next_frame().unwrap().expect("a peeked frame");
                assert_eq!((fr.linktype, fr.data), (*lt, &d[..]));
                seen += 1;
            }
            if n == 0 && r.next_frame().unwrap().is_some() {
                seen += 1;
            } else if n == 0 {
                break;
            }
        }
        assert_eq!(seen, 40);
        assert!(peeks > 1);
        let ng = [ng::shb(), ng::idb(1, None), ng::epb(0, 1, b"abcd")].concat();
        let r = PcapReader::new(&ng[..]).expect("header");
        assert_eq!(r.peek_buffered(&mut [(0, &[][..]); 4]), 0);
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
        let legacy_file = legacy(true, false, 1, &[(1, 0, &[1u8; 30]), (2, 0, &[2u8; 60])]);
        // pcapng: two sections, an interface with options, an unknown block, EPBs and an SPB.
        let ng_file = [
            ng::shb(),
            ng::idb(1, Some(b"eth0")),
            ng::epb(0, 5, &[1u8; 30]),
            ng::block(0x99, b"skipped"),
            ng::shb(),
            ng::idb(101, None),
            ng::block(block::SPB, &[3, 0, 0, 0, 1, 2, 3]),
            ng::epb(0, 6, &[2u8; 60]),
        ]
        .concat();
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        for i in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let good = if i % 2 == 0 { &legacy_file } else { &ng_file };
            let mut f = good.clone();
            // Keep the magic most of the time so the record parser gets exercised.
            let from = if i % 8 < 2 { 0 } else { 4 };
            for k in 0..(x % 6) as usize {
                let pos = from + ((x >> (7 * k)) as usize) % (f.len() - from);
                f[pos] = (x >> (5 * k)) as u8;
            }
            f.truncate(((x >> 32) as usize) % (f.len() + 1));
            // As the fuzz target reads it too: a buffer no larger than the input.
            let r = match i % 3 {
                0 => PcapReader::with_buffer(&f[..], f.len(), f.len()),
                _ => PcapReader::new(&f[..]),
            };
            if let Ok(mut r) = r {
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

    /// A pcapng block in big-endian byte order (what [`ng::block`] builds little-endian).
    fn block_be(t: u32, body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        b.resize(body.len().next_multiple_of(4), 0);
        let len = (12 + b.len() as u32).to_be_bytes();
        [&t.to_be_bytes()[..], &len, &b, &len].concat()
    }

    /// A big-endian section: its fields, options and timestamps in its byte order, `if_tsoffset` added,
    /// `if_tsresol` as a power of two; then a little-endian section after it.
    #[test]
    fn pcapng_big_endian_section_offset_and_binary_resolution() {
        let mut shb = vec![0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0];
        shb.extend_from_slice(&[0xff; 8]);
        let mut idb = Vec::new();
        idb.extend_from_slice(&101u16.to_be_bytes());
        idb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        // if_name "be0", if_tsresol 2^-10, if_tsoffset 100 s, end of options.
        idb.extend_from_slice(&[0, 2, 0, 3, b'b', b'e', b'0', 0]);
        idb.extend_from_slice(&[0, 9, 0, 1, 0x8a, 0, 0, 0]);
        idb.extend_from_slice(&[0, 14, 0, 8]);
        idb.extend_from_slice(&100i64.to_be_bytes());
        idb.extend_from_slice(&[0, 0, 0, 0]);
        let mut epb = Vec::new();
        for w in [0u32, 0, 1536, 3, 60] {
            epb.extend_from_slice(&w.to_be_bytes());
        }
        epb.extend_from_slice(b"abc");
        let mut f = [
            block_be(block::SHB, &shb),
            block_be(block::IDB, &idb),
            block_be(block::EPB, &epb),
        ]
        .concat();
        f.extend(ng::shb());
        f.extend(ng::idb(1, Some(b"le0")));
        f.extend(ng::epb(0, 7, b"de"));
        let mut r = PcapReader::new(&f[..]).unwrap();
        let a = r.next_frame().unwrap().unwrap();
        // 1536 ticks of 1/1024 s: 1.5 s, plus 100 s.
        assert_eq!(
            (a.data, a.ts_ns, a.orig_len, a.linktype, a.if_name),
            (&b"abc"[..], 101_500_000_000, 60, 101, Some("be0"))
        );
        let b = r.next_frame().unwrap().unwrap();
        assert_eq!(
            (b.data, b.ts_ns, b.section, b.if_name),
            (&b"de"[..], 7_000, 1, Some("le0"))
        );
        assert!(r.next_frame().unwrap().is_none());
        assert_eq!(r.offset(), f.len() as u64);
    }

    /// Broken framing and fields inside a block are errors at the block's start, after the frames before it.
    #[test]
    fn corrupt_blocks_are_errors() {
        let good = [ng::shb(), ng::idb(1, None), ng::epb(0, 1, b"abcd")].concat();
        let at = good.len() as u64;
        let err = |tail: Vec<u8>| {
            let f = [good.clone(), tail].concat();
            let (frames, e) = collect(&f);
            assert_eq!(frames.len(), 1);
            let e = e.expect("an error");
            assert_eq!((e.frames, e.offset), (1, at), "{e:?}");
            e.kind
        };
        // The trailing length differs from the leading one.
        let mut t = ng::epb(0, 2, b"efgh");
        let n = t.len();
        t[n - 4] ^= 4;
        assert_eq!(err(t), PcapErrorKind::Corrupt);
        // A length under 12, and one not a multiple of 4.
        assert_eq!(
            err(vec![6, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0]),
            PcapErrorKind::Corrupt
        );
        let mut t = ng::block(0x99, b"1234");
        t[4] += 1;
        assert_eq!(err(t), PcapErrorKind::Corrupt);
        // An EPB whose captured length runs past its block, and one too short for its fixed fields.
        let mut t = ng::epb(0, 2, b"efgh");
        t[20] = 9;
        assert_eq!(err(t), PcapErrorKind::Corrupt);
        assert_eq!(err(ng::block(block::EPB, &[0; 16])), PcapErrorKind::Corrupt);
        // A packet on an interface the section does not declare; a Simple Packet Block before any.
        assert_eq!(
            err(ng::epb(3, 2, b"x")),
            PcapErrorKind::UnknownInterface { id: 3, declared: 1 }
        );
        let f = [ng::shb(), ng::block(block::SPB, &[1, 0, 0, 0, b'x'])].concat();
        let e = collect(&f).1.expect("an error");
        assert_eq!(
            (e.kind, e.offset),
            (PcapErrorKind::UnknownInterface { id: 0, declared: 0 }, 28)
        );
        // A block cut short by the end of the file; one claiming more than the buffer may hold.
        let t = ng::epb(0, 2, b"efgh");
        assert_eq!(err(t[..t.len() - 1].to_vec()), PcapErrorKind::Truncated);
        assert_eq!(
            err(vec![0x99, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0]),
            PcapErrorKind::RecordTooLarge
        );
        // Unknown blocks are skipped; a Simple Packet Block takes interface 0 and the last timestamp.
        let f = [
            good.clone(),
            ng::block(0x99, b"ignored"),
            ng::block(block::SPB, &[2, 0, 0, 0, b'x', b'y']),
        ]
        .concat();
        let (frames, e) = collect(&f);
        assert!(e.is_none(), "{e:?}");
        assert_eq!(frames[1], (1, 1_000, b"xy".to_vec(), 0));
    }

    /// A source that gives a few bytes a read, and a 4 KiB buffer: the frames are those of one big read,
    /// for records across reads, records larger than the buffer, and both formats.
    #[test]
    fn short_reads_give_the_same_frames() {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                self.1 = self.1 % 7 + 1;
                let n = self.1.min(out.len()).min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let big = vec![5u8; 9000];
        let sizes = [1usize, 60, 9000, 0, 4095, 33];
        let frames: Vec<(u32, u32, &[u8])> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as u32, 9, &big[..n]))
            .collect();
        let mut ng_file = [ng::shb(), ng::idb(1, Some(b"eth0"))].concat();
        for (i, &n) in sizes.iter().enumerate() {
            ng_file.extend(ng::epb(0, i as u64, &big[..n]));
        }
        for f in [
            legacy(true, false, 1, &frames),
            legacy(false, true, 1, &frames),
            ng_file,
        ] {
            let want = collect(&f);
            assert!(want.1.is_none());
            assert_eq!(want.0.len(), sizes.len());
            let mut r = PcapReader::with_buffer(Trickle(&f, 0), 1, 1 << 16).unwrap();
            let mut got = Vec::new();
            while let Some(fr) = r.next_frame().unwrap() {
                got.push((fr.linktype, fr.ts_ns, fr.data.to_vec(), fr.iface));
            }
            assert_eq!(got, want.0);
            assert_eq!(r.offset(), f.len() as u64);
        }
    }

    /// The "modified" pcap format's record headers are 8 bytes longer; its frames are read past them.
    #[test]
    fn modified_pcap_records() {
        let mut f = legacy(true, false, 1, &[]);
        f[..4].copy_from_slice(&magic::MODIFIED.to_le_bytes());
        for (i, d) in [&b"abc"[..], b"defgh"].iter().enumerate() {
            let mut r = pcap_record(i as u64, 0, d);
            r.splice(16..16, [0xee; 8]);
            f.extend(r);
        }
        let (frames, e) = collect(&f);
        assert!(e.is_none(), "{e:?}");
        assert_eq!(frames[0], (1, 0, b"abc".to_vec(), 0));
        assert_eq!(frames[1], (1, 1_000, b"defgh".to_vec(), 0));
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
