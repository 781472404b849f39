//! A port of the kernel's `IPT_SO_SET_REPLACE` checks: `do_replace` header checks,
//! `translate_table` (`check_entry_size_and_hooks`, `xt_check_entry_offsets`, `check_underflow`,
//! `xt_check_table_hooks`, `mark_source_chains`, `find_check_entry` with `xt_check_match` /
//! `xt_check_target` and each supported extension's `checkentry`), then `__do_replace`'s table
//! lookup. Errors carry the kernel's errno class and the offending entry's offset.
//!
//! The extension registry models the kernel's for the extensions nfc supports (name, revision,
//! family list, size, table, hooks, protocol, checkentry). An extension outside that set is
//! "not found" (ENOENT), as on a kernel without its module. CT helpers are those of a kernel with
//! every conntrack helper built in; `limit` uses HZ = 250.
//!
//! Any byte string is accepted as input: every read is bounds-checked, and `mark_source_chains`
//! carries a step budget so that no input can make it spin.
//!
//! Modelled, not queried: the table list (filter, mangle, raw, nat, security with their
//! valid_hooks), the extension registry above, `nf_logger_find_get` (LOG always finds a logger),
//! conntrack timeout policies (none exist: `CT --timeout` is ENOENT), and allocation failures
//! (ENOMEM only for the `num_counters` overflow and tables ≥ 512 MiB). Checked against the
//! kernel (6.18, tests/kernel.rs): 72 hand-made cases, 358 truncated/corrupted blobs, and the
//! comefrom of every entry of every test table.
#![forbid(unsafe_code)]

use crate::layout::*;
use crate::model::{Match, Target, table_valid_hooks};
use std::fmt;

/// The errno classes `IPT_SO_SET_REPLACE` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    EINVAL,
    ELOOP,
    ENOENT,
    EPROTOTYPE,
    EAGAIN,
    ENOMEM,
    ERANGE,
    ENAMETOOLONG,
    EIO,
    EDOM,
}

impl Errno {
    /// The Linux errno number.
    pub fn code(self) -> i32 {
        match self {
            Errno::EINVAL => 22,
            Errno::ELOOP => 40,
            Errno::ENOENT => 2,
            Errno::EPROTOTYPE => 91,
            Errno::EAGAIN => 11,
            Errno::ENOMEM => 12,
            Errno::ERANGE => 34,
            Errno::ENAMETOOLONG => 36,
            Errno::EIO => 5,
            Errno::EDOM => 33,
        }
    }
    /// From a Linux errno number.
    pub fn from_code(c: i32) -> Option<Errno> {
        [
            Errno::EINVAL,
            Errno::ELOOP,
            Errno::ENOENT,
            Errno::EPROTOTYPE,
            Errno::EAGAIN,
            Errno::ENOMEM,
            Errno::ERANGE,
            Errno::ENAMETOOLONG,
            Errno::EIO,
            Errno::EDOM,
        ]
        .into_iter()
        .find(|e| e.code() == c)
    }
}

/// A rejected blob: errno class, the entry's offset (from the first entry) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub errno: Errno,
    pub offset: Option<u32>,
    pub reason: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{:?}: entry at {o}: {}", self.errno, self.reason),
            None => write!(f, "{:?}: {}", self.errno, self.reason),
        }
    }
}
impl std::error::Error for VerifyError {}

fn err(errno: Errno, offset: Option<usize>, reason: impl Into<String>) -> VerifyError {
    VerifyError {
        errno,
        offset: offset.map(|o| o as u32),
        reason: reason.into(),
    }
}

/// Options for `verify_with`.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The live table's entry count; when set, `num_counters` must equal it (else EAGAIN), as in
    /// `xt_replace_table`.
    pub live_num_entries: Option<u32>,
    /// Skip the final table lookup (unknown name → ENOENT, valid_hooks mismatch → EINVAL).
    pub skip_table_lookup: bool,
    /// Accept matches/targets outside nfc's registry (a kernel knows many more) without their
    /// size/table/hook/protocol checks; they become `Match::Other`/`Target::Other`. Off by
    /// default: then they are ENOENT, as on a kernel without their modules.
    pub allow_unknown_extensions: bool,
}

/// The target of a verified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VTarget {
    /// Standard target with its verdict (< 0: -NF_x-1 or XT_RETURN; ≥ 0: offset).
    Standard(i32),
    /// ERROR target with its errorname.
    Error(Vec<u8>),
    /// An extension target.
    Ext(Target),
}

/// One entry of a verified table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VEntry {
    pub offset: u32,
    pub next_offset: u32,
    pub ip: IptIp,
    pub matches: Vec<Match>,
    pub target: VTarget,
    /// The hook bitmask `mark_source_chains` computed (what the kernel returns as `comefrom`).
    pub comefrom: u32,
}

/// A blob that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTable {
    pub name: String,
    pub valid_hooks: u32,
    pub hook_entry: [u32; 5],
    pub underflow: [u32; 5],
    /// Number of ERROR entries (`newinfo->stacksize`): the jump stack depth.
    pub stacksize: u32,
    pub size: u32,
    pub entries: Vec<VEntry>,
}

impl VerifiedTable {
    /// Index of the entry at `offset`.
    pub fn index_of(&self, offset: u32) -> Option<usize> {
        self.entries
            .binary_search_by_key(&offset, |e| e.offset)
            .ok()
    }
}

/// Verify a complete `ipt_replace` blob with default options.
pub fn verify(blob: &[u8]) -> Result<VerifiedTable, VerifyError> {
    verify_with(blob, &VerifyOptions::default())
}

/// Raw view of one entry during translate_table.
struct E {
    off: usize,
    hdr: EntryHeader,
    /// Target name as C string (kernel strcmp semantics, bounded by the entry).
    tname: Vec<u8>,
    verdict: i32,
}

const XT_MAX_TABLE_SIZE: u64 = 512 * 1024 * 1024;

/// Verify with options.
pub fn verify_with(blob: &[u8], opts: &VerifyOptions) -> Result<VerifiedTable, VerifyError> {
    // do_replace
    let hdr = ReplaceHeader::parse(blob)
        .ok_or_else(|| err(Errno::EINVAL, None, "shorter than struct ipt_replace"))?;
    if hdr.num_counters as u64 >= (i32::MAX as u64) / 16 {
        return Err(err(Errno::ENOMEM, None, "num_counters overflow"));
    }
    if hdr.num_counters == 0 {
        return Err(err(Errno::EINVAL, None, "num_counters is 0"));
    }
    if (blob.len() as u64) < hdr.size as u64 + IPT_REPLACE_SIZE as u64 {
        return Err(err(Errno::EINVAL, None, "blob shorter than 96 + size"));
    }
    if hdr.size as u64 + 256 >= XT_MAX_TABLE_SIZE {
        return Err(err(Errno::ENOMEM, None, "table too large"));
    }
    let name: Vec<u8> = hdr
        .name
        .iter()
        .take(XT_TABLE_MAXNAMELEN - 1)
        .copied()
        .collect();
    let name = String::from_utf8_lossy(&name).into_owned();
    let size = hdr.size as usize;
    let ent = blob
        .get(IPT_REPLACE_SIZE..IPT_REPLACE_SIZE + size)
        .ok_or_else(|| err(Errno::EINVAL, None, "short"))?;
    let vh = hdr.valid_hooks;

    // translate_table: walk the entries.
    let mut hook_entry = [u32::MAX; 5];
    let mut underflow = [u32::MAX; 5];
    let mut es: Vec<E> = Vec::new();
    let mut stacksize = 0u32;
    let mut off = 0usize;
    while off < size {
        let e = check_entry_size_and_hooks(ent, off, size, &hdr, &mut hook_entry, &mut underflow)?;
        if e.tname == XT_ERROR_TARGET.as_bytes() {
            stacksize += 1;
        }
        off += e.hdr.next_offset as usize;
        es.push(e);
        if es.len() > hdr.num_entries as usize + 1 && es.len() > size / 144 + 1 {
            break; // cannot happen (next_offset >= 144); keeps the loop obviously finite
        }
    }
    if es.len() != hdr.num_entries as usize {
        return Err(err(
            Errno::EINVAL,
            None,
            format!("{} entries, header says {}", es.len(), hdr.num_entries),
        ));
    }
    xt_check_table_hooks(&hook_entry, &underflow, vh)?;
    let offsets: Vec<usize> = es.iter().map(|e| e.off).collect();
    let comefrom = mark_source_chains(&es, &offsets, size, vh, &hook_entry).ok_or_else(|| {
        err(
            Errno::ELOOP,
            None,
            "loop, bad jump or fall-off in mark_source_chains",
        )
    })?;

    // find_check_entry for each entry.
    let mut out = Vec::with_capacity(es.len());
    for (i, e) in es.iter().enumerate() {
        out.push(find_check_entry(
            ent,
            e,
            &name,
            comefrom[i],
            opts.allow_unknown_extensions,
        )?);
    }

    // __do_replace
    if !opts.skip_table_lookup {
        let want = table_valid_hooks(&name)
            .ok_or_else(|| err(Errno::ENOENT, None, format!("no table `{name}`")))?;
        if want != vh {
            return Err(err(
                Errno::EINVAL,
                None,
                format!("valid_hooks {vh:#x} != {want:#x} of table {name}"),
            ));
        }
    }
    if opts.live_num_entries.is_some_and(|n| n != hdr.num_counters) {
        return Err(err(
            Errno::EAGAIN,
            None,
            "num_counters != live table's num_entries",
        ));
    }
    Ok(VerifiedTable {
        name,
        valid_hooks: vh,
        hook_entry,
        underflow,
        stacksize,
        size: hdr.size,
        entries: out,
    })
}

/// C-string at `off` within `b[..lim]` (strcmp reads up to the NUL; we stop at the entry end).
fn cname(b: &[u8], off: usize, lim: usize) -> Vec<u8> {
    let s = b.get(off..lim.min(b.len())).unwrap_or_default();
    let n = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    s[..n].to_vec()
}

fn unconditional(h: &EntryHeader) -> bool {
    h.target_offset as usize == IPT_ENTRY_SIZE && h.ip.is_zero()
}

fn ip_checkentry(ip: &IptIp) -> bool {
    ip.flags & !IPT_F_MASK == 0 && ip.invflags & !IPT_INV_MASK == 0
}

fn check_entry_size_and_hooks(
    ent: &[u8],
    off: usize,
    limit: usize,
    hdr: &ReplaceHeader,
    hook_entry: &mut [u32; 5],
    underflow: &mut [u32; 5],
) -> Result<E, VerifyError> {
    let einval = |r: &str| err(Errno::EINVAL, Some(off), r);
    if !off.is_multiple_of(8) || off + IPT_ENTRY_SIZE >= limit {
        return Err(einval("entry misaligned or too close to the end"));
    }
    let h = EntryHeader::parse(ent, off).ok_or_else(|| einval("truncated"))?;
    let next = h.next_offset as usize;
    if off + next > limit {
        return Err(einval("next_offset past the end"));
    }
    if next < IPT_ENTRY_SIZE + XT_HDR_SIZE {
        return Err(einval("next_offset too small"));
    }
    if !ip_checkentry(&h.ip) {
        return Err(einval("unknown ip flags/invflags"));
    }
    let (tname, verdict) = xt_check_entry_offsets(ent, off, &h)?;
    for hk in 0..5 {
        if hdr.valid_hooks & (1 << hk) == 0 {
            continue;
        }
        if off as u32 == hdr.hook_entry[hk] {
            hook_entry[hk] = off as u32;
        }
        if off as u32 == hdr.underflow[hk] {
            // check_underflow
            let v = (verdict as u32).wrapping_neg().wrapping_sub(1);
            if !(unconditional(&h) && tname.is_empty() && (v == 0 || v == 1)) {
                return Err(einval("underflow is not an unconditional ACCEPT/DROP"));
            }
            underflow[hk] = off as u32;
        }
    }
    Ok(E {
        off,
        hdr: h,
        tname,
        verdict,
    })
}

/// `xt_check_entry_offsets`: returns the target name and the int at target+32 (the verdict).
fn xt_check_entry_offsets(
    ent: &[u8],
    off: usize,
    h: &EntryHeader,
) -> Result<(Vec<u8>, i32), VerifyError> {
    let einval = |r: &str| err(Errno::EINVAL, Some(off), r);
    let toff = h.target_offset as usize;
    let next = h.next_offset as usize;
    if toff < IPT_ENTRY_SIZE {
        return Err(einval("target_offset inside ipt_entry"));
    }
    if toff + XT_HDR_SIZE > next {
        return Err(einval("target header past next_offset"));
    }
    let t = off + toff;
    let tsize = le16(ent, t).ok_or_else(|| einval("truncated target"))? as usize;
    if tsize < XT_HDR_SIZE {
        return Err(einval("target_size too small"));
    }
    if toff + tsize > next {
        return Err(einval("target past next_offset"));
    }
    let tname = cname(ent, t + 2, off + next);
    let verdict = le_i32(ent, t + XT_HDR_SIZE).unwrap_or(0);
    if tname.is_empty() {
        if xt_align(toff + XT_STANDARD_TARGET_SIZE) != next {
            return Err(einval("standard target size/next_offset mismatch"));
        }
        if !verdict_ok(verdict) {
            return Err(einval("bad standard verdict"));
        }
    } else if tname == XT_ERROR_TARGET.as_bytes() {
        let ok = tsize == XT_ERROR_TARGET_SIZE
            && cstr(ent, t + XT_HDR_SIZE, XT_FUNCTION_MAXNAMELEN).is_some();
        if !ok {
            return Err(einval("bad ERROR target"));
        }
    }
    // xt_check_entry_match
    let mut length = toff as i64 - IPT_ENTRY_SIZE as i64;
    let mut pos = off + IPT_ENTRY_SIZE;
    while length > 0 {
        if !pos.is_multiple_of(8) {
            return Err(einval("match misaligned"));
        }
        if length < XT_HDR_SIZE as i64 {
            return Err(einval("match header past target"));
        }
        let ms = le16(ent, pos).ok_or_else(|| einval("truncated match"))? as i64;
        if ms < XT_HDR_SIZE as i64 {
            return Err(einval("match_size too small"));
        }
        if ms > length {
            return Err(einval("match past target"));
        }
        length -= ms;
        pos += ms as usize;
    }
    Ok((tname, verdict))
}

fn verdict_ok(v: i32) -> bool {
    if v > 0 {
        return true;
    }
    if v < 0 {
        if v == XT_RETURN {
            return true;
        }
        let nf = -(v as i64) - 1;
        return matches!(nf, 0 | 1 | 3);
    }
    false
}

fn xt_check_table_hooks(he: &[u32; 5], uf: &[u32; 5], vh: u32) -> Result<(), VerifyError> {
    let mut max_entry = 0;
    let mut max_uflow = 0;
    let mut check = false;
    for i in 0..5 {
        if vh & (1 << i) == 0 {
            continue;
        }
        if he[i] == u32::MAX {
            return Err(err(
                Errno::EINVAL,
                None,
                format!("hook {i}: no entry at hook_entry"),
            ));
        }
        if uf[i] == u32::MAX {
            return Err(err(
                Errno::EINVAL,
                None,
                format!("hook {i}: no entry at underflow"),
            ));
        }
        if check {
            if max_uflow > uf[i] {
                return Err(err(
                    Errno::EINVAL,
                    None,
                    format!("unsorted underflow at hook {i}"),
                ));
            }
            if max_uflow == uf[i] {
                return Err(err(
                    Errno::EINVAL,
                    None,
                    format!("duplicate underflow at hook {i}"),
                ));
            }
            if max_entry > he[i] {
                return Err(err(
                    Errno::EINVAL,
                    None,
                    format!("unsorted entry at hook {i}"),
                ));
            }
            if max_entry == he[i] {
                return Err(err(
                    Errno::EINVAL,
                    None,
                    format!("duplicate entry at hook {i}"),
                ));
            }
        }
        max_entry = he[i];
        max_uflow = uf[i];
        check = true;
    }
    Ok(())
}

/// `mark_source_chains`: returns each entry's comefrom, or `None` for ELOOP.
fn mark_source_chains(
    es: &[E],
    offsets: &[usize],
    size: usize,
    vh: u32,
    he: &[u32; 5],
) -> Option<Vec<u32>> {
    const ONSTACK: u32 = 1 << 5;
    let n = es.len();
    let idx = |pos: usize| offsets.binary_search(&pos).ok();
    let mut comefrom = vec![0u32; n];
    let mut back = vec![0usize; n];
    let budget = 16 * n + 64;
    for (hook, &start) in he.iter().enumerate() {
        if vh & (1 << hook) == 0 {
            continue;
        }
        let mut pos = start as usize;
        let mut e = idx(pos)?;
        back[e] = pos;
        let mut steps = 0usize;
        'walk: loop {
            steps += 1;
            if steps > budget {
                return None;
            }
            let cur = es.get(e)?;
            let visited = comefrom[e] & (1 << hook) != 0;
            if comefrom[e] & ONSTACK != 0 {
                return None;
            }
            comefrom[e] |= (1 << hook) | ONSTACK;
            let std = cur.tname.is_empty();
            if (unconditional(&cur.hdr) && std && cur.verdict < 0) || visited {
                loop {
                    comefrom[e] ^= ONSTACK;
                    let oldpos = pos;
                    pos = back[e];
                    back[e] = 0;
                    if pos == oldpos {
                        break 'walk;
                    }
                    e = idx(pos)?;
                    steps += 1;
                    if steps > budget {
                        return None;
                    }
                    if oldpos != pos + es.get(e)?.hdr.next_offset as usize {
                        break;
                    }
                }
                let sz = es.get(e)?.hdr.next_offset as usize;
                if pos + sz >= size {
                    return None;
                }
                e = idx(pos + sz)?;
                back[e] = pos;
                pos += sz;
            } else {
                let newpos = if std && cur.verdict >= 0 {
                    let np = cur.verdict as usize;
                    idx(np)?; // xt_find_jump_offset
                    np
                } else {
                    let np = pos + cur.hdr.next_offset as usize;
                    if np >= size {
                        return None;
                    }
                    np
                };
                e = idx(newpos)?;
                back[e] = pos;
                pos = newpos;
            }
        }
    }
    Some(comefrom.into_iter().map(|c| c & !ONSTACK).collect())
}

// ---------------------------------------------------------------------------------------------
// Extension registry.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fam {
    V4,
    Unspec,
}

struct Ext {
    name: &'static str,
    rev: u8,
    fam: Fam,
    size: usize,
    table: Option<&'static str>,
    hooks: u32,
    proto: u16,
}

const PRE: u32 = 1 << 0;
const IN: u32 = 1 << 1;
const FWD: u32 = 1 << 2;
const OUT: u32 = 1 << 3;
const POST: u32 = 1 << 4;

const fn x(name: &'static str, rev: u8, fam: Fam, size: usize) -> Ext {
    Ext {
        name,
        rev,
        fam,
        size,
        table: None,
        hooks: 0,
        proto: 0,
    }
}
const fn xt(
    name: &'static str,
    rev: u8,
    fam: Fam,
    size: usize,
    table: &'static str,
    hooks: u32,
) -> Ext {
    Ext {
        name,
        rev,
        fam,
        size,
        table: Some(table),
        hooks,
        proto: 0,
    }
}

const MATCHES: &[Ext] = &[
    Ext {
        proto: 1,
        ..x("icmp", 0, Fam::V4, 4)
    },
    Ext {
        proto: 6,
        ..x("tcp", 0, Fam::V4, 12)
    },
    Ext {
        proto: 17,
        ..x("udp", 0, Fam::V4, 10)
    },
    x("conntrack", 1, Fam::Unspec, 152),
    x("conntrack", 2, Fam::Unspec, 160),
    x("conntrack", 3, Fam::Unspec, 164),
    x("state", 0, Fam::Unspec, 4),
    x("multiport", 1, Fam::V4, 48),
    x("mark", 1, Fam::Unspec, 12),
    x("comment", 0, Fam::Unspec, 256),
    x("length", 0, Fam::Unspec, 5),
    x("iprange", 1, Fam::V4, 65),
    x("ttl", 0, Fam::V4, 2),
    x("pkttype", 0, Fam::Unspec, 8),
    x("connmark", 1, Fam::Unspec, 9),
    x("dscp", 0, Fam::Unspec, 2),
    x("statistic", 0, Fam::Unspec, 24),
    x("addrtype", 1, Fam::Unspec, 8),
    x("recent", 1, Fam::V4, 228),
    Ext {
        hooks: PRE | IN | FWD,
        ..x("mac", 0, Fam::Unspec, 12)
    },
    Ext {
        hooks: OUT | POST,
        ..x("owner", 1, Fam::Unspec, 18)
    },
];
const LIMIT: Ext = x("limit", 0, Fam::Unspec, 40);

const TARGETS: &[Ext] = &[
    x("", 0, Fam::V4, 4),
    x("ERROR", 0, Fam::V4, 30),
    xt("REJECT", 0, Fam::V4, 4, "filter", IN | FWD | OUT),
    x("LOG", 0, Fam::V4, 32),
    x("MARK", 2, Fam::Unspec, 8),
    x("CONNMARK", 1, Fam::Unspec, 13),
    x("CONNMARK", 2, Fam::Unspec, 15),
    xt("CT", 0, Fam::Unspec, 40, "raw", 0),
    xt("CT", 1, Fam::Unspec, 72, "raw", 0),
    xt("CT", 2, Fam::Unspec, 72, "raw", 0),
    xt("NOTRACK", 0, Fam::Unspec, 0, "raw", 0),
    xt("SNAT", 0, Fam::V4, 20, "nat", POST | IN),
    xt("DNAT", 0, Fam::V4, 20, "nat", PRE | OUT),
    xt("SNAT", 1, Fam::Unspec, 40, "nat", POST | IN),
    xt("DNAT", 1, Fam::Unspec, 40, "nat", PRE | OUT),
    xt("SNAT", 2, Fam::Unspec, 44, "nat", POST | IN),
    xt("DNAT", 2, Fam::Unspec, 44, "nat", PRE | OUT),
    xt("MASQUERADE", 0, Fam::V4, 20, "nat", POST),
    x("NFQUEUE", 0, Fam::Unspec, 2),
    x("NFQUEUE", 1, Fam::Unspec, 4),
    x("NFQUEUE", 2, Fam::Unspec, 6),
    x("NFQUEUE", 3, Fam::Unspec, 6),
];
const REDIRECT: Ext = xt("REDIRECT", 0, Fam::V4, 20, "nat", PRE | OUT);

/// `xt_find_match`/`xt_find_target` over the IPv4 then the UNSPEC list.
fn xt_find<'a>(
    list: impl Iterator<Item = &'a Ext> + Clone,
    name: &[u8],
    rev: u8,
) -> Result<&'a Ext, Errno> {
    if name.len() >= XT_EXTENSION_MAXNAMELEN {
        return Err(Errno::EINVAL);
    }
    for fam in [Fam::V4, Fam::Unspec] {
        let mut e = Errno::ENOENT;
        for x in list
            .clone()
            .filter(|x| x.fam == fam && x.name.as_bytes() == name)
        {
            if x.rev == rev {
                return Ok(x);
            }
            e = Errno::EPROTOTYPE;
        }
        if fam == Fam::Unspec {
            return Err(e);
        }
    }
    Err(Errno::ENOENT)
}

fn xt_check(
    x: &Ext,
    what: &str,
    off: usize,
    size: usize,
    table: &str,
    comefrom: u32,
    ip: &IptIp,
) -> Result<(), VerifyError> {
    let einval = |r: String| err(Errno::EINVAL, Some(off), r);
    if xt_align(x.size) != size {
        return Err(einval(format!(
            "{}.{} {what}: invalid size {} (kernel) != (user) {size}",
            x.name,
            x.rev,
            xt_align(x.size)
        )));
    }
    if let Some(t) = x.table.filter(|t| *t != table) {
        return Err(einval(format!(
            "{} {what}: only valid in {t} table, not {table}",
            x.name
        )));
    }
    if x.hooks != 0 && comefrom & !x.hooks != 0 {
        return Err(einval(format!(
            "{} {what}: used from hooks {comefrom:#x}, but only valid from {:#x}",
            x.name, x.hooks
        )));
    }
    if x.proto != 0 && (x.proto != ip.proto || ip.invflags & IPT_INV_PROTO != 0) {
        return Err(einval(format!(
            "{} {what}: only valid for protocol {}",
            x.name, x.proto
        )));
    }
    Ok(())
}

/// HZ of the modelled kernel (for `limit`'s overflow check).
pub const HZ: u64 = 250;
/// `CREDITS_PER_JIFFY` for HZ = 250: POW2_BELOW32(0xFFFFFFFF / (HZ*60*60*24)).
pub const CREDITS_PER_JIFFY: u64 = 128;

/// `user2credits` of xt_limit.
pub fn user2credits(user: u32) -> u32 {
    let user = user as u64;
    if user > 0xFFFF_FFFF / (HZ * CREDITS_PER_JIFFY) {
        ((user / XT_LIMIT_SCALE as u64) * HZ * CREDITS_PER_JIFFY) as u32
    } else {
        ((user * HZ * CREDITS_PER_JIFFY) / XT_LIMIT_SCALE as u64) as u32
    }
}

/// CT helpers of a kernel with all helpers built in: (name, l4 protocol).
const CT_HELPERS: [(&str, u16); 13] = [
    ("ftp", 6),
    ("irc", 6),
    ("sip", 17),
    ("sip", 6),
    ("tftp", 17),
    ("amanda", 17),
    ("RAS", 17),
    ("Q.931", 6),
    ("pptp", 6),
    ("sane", 6),
    ("snmp", 17),
    ("netbios-ns", 17),
    ("snmp_trap", 17),
];

fn find_check_entry(
    ent: &[u8],
    e: &E,
    table: &str,
    comefrom: u32,
    allow_unknown: bool,
) -> Result<VEntry, VerifyError> {
    let off = e.off;
    let h = &e.hdr;
    let einval = |r: &str| err(Errno::EINVAL, Some(off), r);
    // check_entry
    if !ip_checkentry(&h.ip) {
        return Err(einval("unknown ip flags"));
    }
    let toff = h.target_offset as usize;
    let next = h.next_offset as usize;
    let mut matches = Vec::new();
    let mut pos = IPT_ENTRY_SIZE;
    while pos < toff {
        let mh = XtHeader::parse(ent, off + pos).ok_or_else(|| einval("truncated match"))?;
        let ms = mh.size as usize;
        if ms < XT_HDR_SIZE {
            return Err(einval("bad match size"));
        }
        if mh.name_unterminated {
            return Err(einval("match name not terminated"));
        }
        let found = xt_find(
            MATCHES.iter().chain(std::iter::once(&LIMIT)),
            &mh.name,
            mh.revision,
        );
        if found.is_err() && allow_unknown {
            let data = bytes(ent, off + pos + XT_HDR_SIZE, ms - XT_HDR_SIZE)
                .ok_or_else(|| einval("truncated match"))?;
            let name = String::from_utf8_lossy(&mh.name);
            matches.push(Match::Other {
                name: name.into_owned(),
                revision: mh.revision,
                data: data.to_vec(),
            });
            pos += ms;
            continue;
        }
        let x = found.map_err(|en| {
            err(
                en,
                Some(off),
                format!(
                    "match {}.{}: not found",
                    String::from_utf8_lossy(&mh.name),
                    mh.revision
                ),
            )
        })?;
        let data = bytes(ent, off + pos + XT_HDR_SIZE, ms - XT_HDR_SIZE)
            .ok_or_else(|| einval("truncated match"))?;
        xt_check(x, "match", off, ms - XT_HDR_SIZE, table, comefrom, &h.ip)?;
        check_match(x, data, &h.ip).map_err(|(en, r)| err(en, Some(off), r))?;
        matches.push(Match::from_parts(x.name, x.rev, data));
        pos += ms;
    }
    let th = XtHeader::parse(ent, off + toff).ok_or_else(|| einval("truncated target"))?;
    let ts = th.size as usize;
    if toff + ts > next {
        return Err(einval("target past next_offset"));
    }
    if th.name_unterminated {
        return Err(einval("target name not terminated"));
    }
    let found = xt_find(
        TARGETS.iter().chain(std::iter::once(&REDIRECT)),
        &th.name,
        th.revision,
    );
    if found.is_err() && allow_unknown {
        let data = bytes(ent, off + toff + XT_HDR_SIZE, ts - XT_HDR_SIZE)
            .ok_or_else(|| einval("truncated target"))?;
        let name = String::from_utf8_lossy(&th.name).into_owned();
        return Ok(VEntry {
            offset: off as u32,
            next_offset: next as u32,
            ip: h.ip,
            matches,
            target: VTarget::Ext(Target::Other {
                name,
                revision: th.revision,
                data: data.to_vec(),
            }),
            comefrom,
        });
    }
    let x = found.map_err(|en| {
        err(
            en,
            Some(off),
            format!(
                "target {}.{}: not found",
                String::from_utf8_lossy(&th.name),
                th.revision
            ),
        )
    })?;
    let data = bytes(ent, off + toff + XT_HDR_SIZE, ts - XT_HDR_SIZE)
        .ok_or_else(|| einval("truncated target"))?;
    xt_check(x, "target", off, ts - XT_HDR_SIZE, table, comefrom, &h.ip)?;
    check_target(x, data, &h.ip).map_err(|(en, r)| err(en, Some(off), r))?;
    let target = match x.name {
        "" => VTarget::Standard(e.verdict),
        "ERROR" => VTarget::Error(
            cstr(data, 0, XT_FUNCTION_MAXNAMELEN)
                .unwrap_or_default()
                .to_vec(),
        ),
        n => VTarget::Ext(Target::from_parts(n, x.rev, data)),
    };
    Ok(VEntry {
        offset: off as u32,
        next_offset: next as u32,
        ip: h.ip,
        matches,
        target,
        comefrom,
    })
}

type CheckResult = Result<(), (Errno, String)>;

/// xt_recent's `recent_mt_check`: one operation, no `--seconds`/`--hitcount`/`--rttl`/`--reap`
/// with `--set`/`--remove`, `--reap` only with `--seconds`, a `--hitcount` below
/// `XT_RECENT_MAX_NSTAMPS`, and `xt_check_proc_name`'s name rules.
fn recent_check(r: &RecentInfoV1) -> CheckResult {
    let inval = |m: &str| Err((Errno::EINVAL, format!("recent: {m}")));
    let ops = r.check_set & (XT_RECENT_SET | XT_RECENT_REMOVE | XT_RECENT_CHECK | XT_RECENT_UPDATE);
    if r.check_set & !XT_RECENT_VALID_FLAGS != 0 {
        return inval("unsupported flags");
    }
    if ops.count_ones() != 1 {
        return inval("exactly one of --set, --rcheck, --update and --remove is needed");
    }
    if ops & (XT_RECENT_SET | XT_RECENT_REMOVE) != 0
        && (r.seconds != 0 || r.hit_count != 0 || r.check_set & XT_RECENT_MODIFIERS != 0)
    {
        return inval("--set and --remove take no --seconds, --hitcount, --rttl or --reap");
    }
    if r.check_set & XT_RECENT_REAP != 0 && r.seconds == 0 {
        return inval("--reap needs --seconds");
    }
    if r.hit_count >= XT_RECENT_MAX_NSTAMPS {
        return inval("hitcount is larger than allowed maximum (65535)");
    }
    let name = r.name();
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return inval("bad list name");
    }
    if name.len() == XT_RECENT_NAME_LEN {
        return Err((Errno::ENAMETOOLONG, "recent: list name too long".into()));
    }
    Ok(())
}

fn check_match(x: &Ext, d: &[u8], ip: &IptIp) -> CheckResult {
    let inval = |r: &str| Err((Errno::EINVAL, r.to_string()));
    match x.name {
        "tcp" if u8_at(d, 11).unwrap_or(0) & !XT_TCP_INV_MASK != 0 => {
            inval("tcp: unknown invflags")
        }
        "udp" if u8_at(d, 8).unwrap_or(0) & !XT_UDP_INV_MASK != 0 => inval("udp: unknown invflags"),
        "icmp" if u8_at(d, 3).unwrap_or(0) & !IPT_ICMP_INV != 0 => inval("icmp: unknown invflags"),
        "multiport" => {
            let flags = u8_at(d, 0).unwrap_or(0xff);
            let count = u8_at(d, 1).unwrap_or(0xff) as usize;
            let proto_ok =
                matches!(ip.proto, 6 | 17 | 136 | 132 | 33) && ip.invflags & IPT_INV_PROTO == 0;
            if proto_ok && flags <= XT_MULTIPORT_EITHER && count <= XT_MULTI_PORTS {
                Ok(())
            } else {
                inval("multiport: bad protocol, flags or count")
            }
        }
        "limit" => {
            let avg = le32(d, 0).unwrap_or(0);
            let burst = le32(d, 4).unwrap_or(0);
            if burst == 0 || user2credits(avg.wrapping_mul(burst)) < user2credits(avg) {
                Err((Errno::ERANGE, format!("Overflow, try lower: {avg}/{burst}")))
            } else {
                Ok(())
            }
        }
        // addrtype_mt_checkentry_v1 (its per-hook checks of --limit-iface-in/out are not made here)
        "addrtype"
            if le32(d, 4).unwrap_or(0)
                & (XT_ADDRTYPE_LIMIT_IFACE_IN | XT_ADDRTYPE_LIMIT_IFACE_OUT)
                == XT_ADDRTYPE_LIMIT_IFACE_IN | XT_ADDRTYPE_LIMIT_IFACE_OUT =>
        {
            inval("addrtype: both incoming and outgoing interface limitation cannot be selected")
        }
        // statistic_mt_check
        "statistic"
            if le16(d, 0).unwrap_or(0) > XT_STATISTIC_MODE_NTH
                || le16(d, 2).unwrap_or(0) & !XT_STATISTIC_INVERT != 0 =>
        {
            inval("statistic: unknown mode or flags")
        }
        // recent_mt_check
        "recent" => match RecentInfoV1::decode(d) {
            None => inval("recent: short data"),
            Some(r) => recent_check(&r),
        },
        "dscp" if u8_at(d, 0).unwrap_or(0) > XT_DSCP_MAX => {
            Err((Errno::EDOM, "dscp: value out of range".into()))
        }
        "owner" => {
            // owner_check: valid (not -1), ordered uid/gid ranges.
            let m = u8_at(d, 16).unwrap_or(0);
            for (bit, at) in [(XT_OWNER_UID, 0), (XT_OWNER_GID, 8)] {
                if m & bit != 0 {
                    let (lo, hi) = (le32(d, at).unwrap_or(0), le32(d, at + 4).unwrap_or(0));
                    if lo == u32::MAX || hi == u32::MAX || hi < lo {
                        return inval("owner: invalid uid/gid range");
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_target(x: &Ext, d: &[u8], ip: &IptIp) -> CheckResult {
    let inval = |r: &str| Err((Errno::EINVAL, r.to_string()));
    match (x.name, x.rev) {
        ("REJECT", _) => {
            let with = le32(d, 0).unwrap_or(0);
            if with == IPT_ICMP_ECHOREPLY {
                return inval("REJECT: ECHOREPLY no longer supported");
            }
            if with == IPT_TCP_RESET && (ip.proto != 6 || ip.invflags & IPT_INV_PROTO != 0) {
                return inval("REJECT: TCP_RESET invalid for non-tcp");
            }
            Ok(())
        }
        ("LOG", _) => {
            if u8_at(d, 0).unwrap_or(0) >= 8 {
                return inval("LOG: level >= 8");
            }
            if u8_at(d, 31).unwrap_or(0) != 0 {
                return inval("LOG: prefix is not null-terminated");
            }
            Ok(())
        }
        ("CT", rev) => {
            let flags = le16(d, 0).unwrap_or(0);
            let allowed = if rev == 2 { XT_CT_MASK } else { XT_CT_NOTRACK };
            if flags & !allowed != 0 {
                return inval("CT: unknown flags");
            }
            if flags & XT_CT_NOTRACK != 0 {
                return Ok(());
            }
            let helper = bytes(d, 12, 16).unwrap_or_default();
            if helper.first().is_some_and(|&c| c != 0) {
                let Some(hn) = cstr(d, 12, 16) else {
                    return Err((Errno::ENAMETOOLONG, "CT: helper name too long".into()));
                };
                let proto = if ip.invflags & IPT_INV_PROTO != 0 {
                    0
                } else {
                    ip.proto
                };
                if proto == 0 {
                    return Err((
                        Errno::ENOENT,
                        "CT: You must specify a L4 protocol and not use inversions on it".into(),
                    ));
                }
                if !CT_HELPERS
                    .iter()
                    .any(|(n, p)| n.as_bytes() == hn && *p == proto)
                {
                    return Err((
                        Errno::ENOENT,
                        format!("CT: No such helper \"{}\"", String::from_utf8_lossy(hn)),
                    ));
                }
            }
            if rev != 0 && u8_at(d, 28).is_some_and(|c| c != 0) {
                if cstr(d, 28, 32).is_none() {
                    return Err((Errno::ENAMETOOLONG, "CT: timeout name too long".into()));
                }
                return Err((Errno::ENOENT, "CT: no such timeout policy".into()));
            }
            Ok(())
        }
        ("NFQUEUE", rev) if rev >= 1 => {
            // nfqueue_tg_check (v1+: queuenum, queues_total, then flags from v2 on).
            let num = u32::from(le16(d, 0).unwrap_or(0));
            let total = u32::from(le16(d, 2).unwrap_or(0));
            let flags = le16(d, 4).unwrap_or(0);
            if total == 0 {
                return inval("NFQUEUE: number of total queues is 0");
            }
            if total - 1 + num > 0xffff {
                return Err((
                    Errno::ERANGE,
                    "NFQUEUE: number of queues out of range".into(),
                ));
            }
            if (rev == 2 && flags > 1) || (rev == 3 && flags & !NFQ_FLAG_MASK != 0) {
                return inval("NFQUEUE: unknown flags");
            }
            Ok(())
        }
        ("SNAT" | "DNAT", 0) => {
            if le32(d, 0).unwrap_or(0) != 1 {
                return inval("NAT: multiple ranges no longer supported");
            }
            Ok(())
        }
        ("MASQUERADE" | "REDIRECT", _) => {
            if le32(d, 4).unwrap_or(0) & NF_NAT_RANGE_MAP_IPS != 0 {
                return inval("bad MAP_IPS");
            }
            if le32(d, 0).unwrap_or(0) != 1 {
                return inval("bad rangesize");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rule, Table, UserChain, encode};

    fn demo() -> Vec<u8> {
        let mut t = Table::new("filter").unwrap();
        t.user_chains.push(UserChain {
            name: "A".into(),
            rules: vec![Rule::new(Target::Return)],
        });
        t.builtins[0]
            .rules
            .push(Rule::new(Target::Jump("A".into())));
        t.builtins[0].rules.push(Rule::new(Target::Fallthrough));
        encode(&t).unwrap()
    }

    #[test]
    fn demo_verifies_with_comefrom() {
        let v = verify(&demo()).unwrap();
        assert_eq!(v.stacksize, 2);
        let cf: Vec<u32> = v.entries.iter().map(|e| e.comefrom).collect();
        // INPUT jump, fallthrough, policy; FORWARD; OUTPUT; A head, A rule (RETURN), A foot
        // (unreachable after the unconditional RETURN), final ERROR
        assert_eq!(cf, vec![2, 2, 2, 4, 8, 0, 2, 0, 0]);
    }

    #[test]
    fn self_loop_is_eloop() {
        let mut t = Table::new("filter").unwrap();
        t.user_chains.push(UserChain {
            name: "A".into(),
            rules: vec![Rule::new(Target::Jump("A".into()))],
        });
        t.builtins[0]
            .rules
            .push(Rule::new(Target::Jump("A".into())));
        assert_eq!(
            verify(&encode(&t).unwrap()).unwrap_err().errno,
            Errno::ELOOP
        );
    }

    #[test]
    fn truncations_never_panic() {
        let b = demo();
        for n in 0..b.len() {
            let _ = verify(&b[..n]);
        }
    }

    #[test]
    fn unknown_extensions_are_enoent_unless_allowed() {
        let mut t = Table::new("filter").unwrap();
        let mut r = Rule::new(Target::Other {
            name: "TCPMSS".into(),
            revision: 0,
            data: vec![0; 8],
        });
        r.matches.push(Match::Other {
            name: "hashlimit".into(),
            revision: 0,
            data: vec![0; 24],
        });
        t.builtins[0].rules.push(r);
        let b = encode(&t).unwrap();
        assert_eq!(verify(&b).unwrap_err().errno, Errno::ENOENT);
        let v = verify_with(
            &b,
            &VerifyOptions {
                allow_unknown_extensions: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            matches!(&v.entries[0].target, VTarget::Ext(Target::Other { name, .. }) if name == "TCPMSS")
        );
        assert!(
            matches!(&v.entries[0].matches[0], Match::Other { name, .. } if name == "hashlimit")
        );
    }

    #[test]
    fn user2credits_hz250() {
        assert_eq!(user2credits(2000), 6400);
    }
}
