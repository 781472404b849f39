//! `encode` (Table → `ipt_replace` blob, byte-identical to what libiptc's TC_COMMIT sends) and
//! `decode` (blob → Table, splitting the entries into chains the way libiptc's parser does).
//!
//! Layout (libiptc `iptcc_compile_table`): built-in chains in hook order, each its rules then the
//! policy entry (the underflow); user chains sorted by name, each an ERROR head naming it, its
//! rules and an unconditional RETURN foot; one final ERROR entry named "ERROR". A jump targets
//! the entry after the chain's head; `-g` adds `IPT_F_GOTO`; a rule without target gets a
//! standard target whose verdict is the next entry's offset.
//!
//! `decode` accepts what libiptc's parser accepts: entries grouped into chains that start at a
//! hook entry or an ERROR head, built-in chains ending at their underflow (unconditional
//! ACCEPT/DROP), user chains ending in an unconditional RETURN (the final ERROR entry may be
//! missing), jumps landing on a chain's first entry. Blobs the kernel accepts but that have no
//! chain structure (a jump into the middle of a chain or onto an ERROR head, entries outside
//! every chain, non-UTF-8 or empty chain names) are a `DecodeError`; `verify` still handles
//! them.
#![forbid(unsafe_code)]

use crate::layout::*;
use crate::model::*;
use std::collections::HashMap;
use std::fmt;

/// Why a table could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A jump/goto names a chain that does not exist.
    UnknownChain(String),
    /// Two user chains with the same name, or a user chain named like a built-in one.
    DuplicateChain(String),
    /// A chain name does not fit `errorname[30]` (or is empty).
    BadChainName(String),
    /// The table name does not fit in 31 bytes.
    BadTableName(String),
    /// An entry is larger than the u16 offsets allow.
    EntryTooLarge,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::UnknownChain(c) => write!(f, "jump to unknown chain `{c}`"),
            EncodeError::DuplicateChain(c) => write!(f, "chain `{c}` defined twice"),
            EncodeError::BadChainName(c) => write!(f, "bad chain name `{c}`"),
            EncodeError::BadTableName(c) => write!(f, "bad table name `{c}`"),
            EncodeError::EntryTooLarge => write!(f, "entry larger than 65535 bytes"),
        }
    }
}
impl std::error::Error for EncodeError {}

/// Why a blob could not be decoded into a `Table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the offending entry (from the first entry), if any.
    pub offset: Option<u32>,
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "entry at {o}: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}
impl std::error::Error for DecodeError {}

fn derr(offset: Option<usize>, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        offset: offset.map(|o| o as u32),
        reason: reason.into(),
    }
}

const HEAD_SIZE: usize = IPT_ENTRY_SIZE + XT_ERROR_TARGET_SIZE; // 176
const FOOT_SIZE: usize = IPT_ENTRY_SIZE + XT_STANDARD_TARGET_SIZE; // 152

fn rule_size(r: &Rule) -> usize {
    let m: usize = r
        .matches
        .iter()
        .map(|m| XT_HDR_SIZE + xt_align(m.data().len()))
        .sum();
    let t = match r.target.ext_parts() {
        Some((_, _, d)) => XT_HDR_SIZE + xt_align(d.len()),
        None => XT_STANDARD_TARGET_SIZE,
    };
    IPT_ENTRY_SIZE + m + t
}

/// Encode a table as a complete `ipt_replace` (96-byte header + entries). `num_counters` is set
/// to the table's own entry count and the counters pointer to 0 (a loader patches both).
pub fn encode(t: &Table) -> Result<Vec<u8>, EncodeError> {
    let (hdr, entries) = encode_parts(t)?;
    let mut out = hdr.encode();
    out.extend_from_slice(&entries);
    Ok(out)
}

/// Encode a table: the header and the entries separately.
pub fn encode_parts(t: &Table) -> Result<(ReplaceHeader, Vec<u8>), EncodeError> {
    if t.name.is_empty() || t.name.len() >= XT_TABLE_MAXNAMELEN || t.name.contains('\0') {
        return Err(EncodeError::BadTableName(t.name.clone()));
    }
    let users = t.sorted_user_chains();
    for w in users.windows(2) {
        if w[0].name == w[1].name {
            return Err(EncodeError::DuplicateChain(w[0].name.clone()));
        }
    }
    for u in &users {
        if u.name.is_empty() || u.name.len() >= XT_FUNCTION_MAXNAMELEN || u.name.contains('\0') {
            return Err(EncodeError::BadChainName(u.name.clone()));
        }
        if chain_name_hook(&u.name).is_some_and(|h| t.builtin(h).is_some()) {
            return Err(EncodeError::DuplicateChain(u.name.clone()));
        }
    }
    // Pass 1: offsets.
    let mut off = 0usize;
    let mut chain_start: HashMap<&str, usize> = HashMap::new();
    let mut hook_entry = [u32::MAX; 5];
    let mut underflow = [u32::MAX; 5];
    let mut num = 0u32;
    let mut builtins: Vec<&BuiltinChain> = t.builtins.iter().collect();
    builtins.sort_by_key(|c| c.hook);
    for c in &builtins {
        let h = c.hook as usize;
        hook_entry[h] = off as u32;
        chain_start.insert(hook_chain_name(c.hook), off);
        for r in &c.rules {
            off += rule_size(r);
            num += 1;
        }
        underflow[h] = off as u32;
        off += FOOT_SIZE;
        num += 1;
    }
    for u in &users {
        off += HEAD_SIZE;
        num += 1;
        chain_start.insert(&u.name, off);
        for r in &u.rules {
            off += rule_size(r);
            num += 1;
        }
        off += FOOT_SIZE;
        num += 1;
    }
    let size = off + HEAD_SIZE;
    num += 1;

    // Pass 2: bytes.
    let mut o = Out::zeroed(size);
    let mut pos = 0usize;
    let resolve = |name: &str| {
        chain_start
            .get(name)
            .copied()
            .ok_or_else(|| EncodeError::UnknownChain(name.to_string()))
    };
    let write_rule = |o: &mut Out, pos: &mut usize, r: &Rule| -> Result<(), EncodeError> {
        let len = rule_size(r);
        if len > u16::MAX as usize {
            return Err(EncodeError::EntryTooLarge);
        }
        let mut ip = r.ip.ip;
        let mut moff = IPT_ENTRY_SIZE;
        for m in &r.matches {
            let b = m.to_bytes();
            o.put(*pos + moff, &b);
            moff += b.len();
        }
        let target_offset = moff;
        match r.target.ext_parts() {
            Some((name, rev, data)) => o.put(*pos + moff, &xt_blob(&name, rev, &data)),
            None => {
                let v = match &r.target {
                    Target::Jump(c) => resolve(c)? as i32,
                    Target::Goto(c) => {
                        ip.flags |= IPT_F_GOTO;
                        resolve(c)? as i32
                    }
                    Target::Fallthrough => (*pos + len) as i32,
                    other => other.std_verdict().unwrap_or(VERDICT_DROP),
                };
                write_std(o, *pos + moff, v);
            }
        }
        EntryHeader {
            ip,
            nfcache: r.nfcache,
            target_offset: target_offset as u16,
            next_offset: len as u16,
            comefrom: 0,
            pcnt: r.counters.pcnt,
            bcnt: r.counters.bcnt,
        }
        .write(o, *pos);
        *pos += len;
        Ok(())
    };
    for c in &builtins {
        for r in &c.rules {
            write_rule(&mut o, &mut pos, r)?;
        }
        let v = if c.policy == Policy::Accept {
            VERDICT_ACCEPT
        } else {
            VERDICT_DROP
        };
        write_foot(&mut o, pos, v, c.policy_counters);
        pos += FOOT_SIZE;
    }
    for u in &users {
        write_head(&mut o, pos, u.name.as_bytes());
        pos += HEAD_SIZE;
        for r in &u.rules {
            write_rule(&mut o, &mut pos, r)?;
        }
        write_foot(&mut o, pos, XT_RETURN, Counters::default());
        pos += FOOT_SIZE;
    }
    write_head(&mut o, pos, b"ERROR");
    let hdr = ReplaceHeader {
        name: t.name.as_bytes().to_vec(),
        valid_hooks: t.valid_hooks,
        num_entries: num,
        size: size as u32,
        hook_entry,
        underflow,
        num_counters: num,
        counters: 0,
    };
    Ok((hdr, o.0))
}

/// What an entry of an encoded table is (for labelling counters and traces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryRole {
    /// Rule `index` (0-based) of the chain.
    Rule(usize),
    /// A built-in chain's policy entry (its underflow).
    Policy,
    /// A user chain's implicit RETURN foot.
    Return,
    /// The ERROR entry heading a user chain.
    ChainHead,
    /// The final ERROR entry.
    TableEnd,
}

/// One entry of `entry_map`: its offset, chain name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLabel {
    pub offset: u32,
    pub chain: String,
    pub role: EntryRole,
}

/// The entries `encode` lays out for `t`, in blob order (same order as `ExecTable::counters`).
pub fn entry_map(t: &Table) -> Vec<EntryLabel> {
    let mut out = Vec::new();
    let mut off = 0usize;
    let mut push = |off: &mut usize, chain: &str, role: EntryRole, size: usize| {
        out.push(EntryLabel {
            offset: *off as u32,
            chain: chain.to_string(),
            role,
        });
        *off += size;
    };
    let mut builtins: Vec<&BuiltinChain> = t.builtins.iter().collect();
    builtins.sort_by_key(|c| c.hook);
    for c in builtins {
        let name = hook_chain_name(c.hook);
        for (i, r) in c.rules.iter().enumerate() {
            push(&mut off, name, EntryRole::Rule(i), rule_size(r));
        }
        push(&mut off, name, EntryRole::Policy, FOOT_SIZE);
    }
    for u in t.sorted_user_chains() {
        push(&mut off, &u.name, EntryRole::ChainHead, HEAD_SIZE);
        for (i, r) in u.rules.iter().enumerate() {
            push(&mut off, &u.name, EntryRole::Rule(i), rule_size(r));
        }
        push(&mut off, &u.name, EntryRole::Return, FOOT_SIZE);
    }
    push(&mut off, "", EntryRole::TableEnd, HEAD_SIZE);
    out
}

fn write_std(o: &mut Out, at: usize, verdict: i32) {
    o.le16(at, XT_STANDARD_TARGET_SIZE as u16);
    o.le32(at + XT_HDR_SIZE, verdict as u32);
}

fn write_foot(o: &mut Out, pos: usize, verdict: i32, c: Counters) {
    EntryHeader {
        target_offset: IPT_ENTRY_SIZE as u16,
        next_offset: FOOT_SIZE as u16,
        pcnt: c.pcnt,
        bcnt: c.bcnt,
        ..Default::default()
    }
    .write(o, pos);
    write_std(o, pos + IPT_ENTRY_SIZE, verdict);
}

fn write_head(o: &mut Out, pos: usize, name: &[u8]) {
    EntryHeader {
        target_offset: IPT_ENTRY_SIZE as u16,
        next_offset: HEAD_SIZE as u16,
        ..Default::default()
    }
    .write(o, pos);
    let t = pos + IPT_ENTRY_SIZE;
    o.le16(t, XT_ERROR_TARGET_SIZE as u16);
    o.str_field(t + 2, XT_ERROR_TARGET.as_bytes(), XT_EXTENSION_MAXNAMELEN);
    o.str_field(t + XT_HDR_SIZE, name, XT_FUNCTION_MAXNAMELEN);
}

/// One entry of a blob, split into its parts (offsets are from the first entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub offset: usize,
    pub hdr: EntryHeader,
    /// (name, revision, data) of each match.
    pub matches: Vec<(String, u8, Vec<u8>)>,
    pub target_name: String,
    pub target_revision: u8,
    pub target_data: Vec<u8>,
}

impl RawEntry {
    /// The standard target's verdict, if the target is the standard one.
    pub fn std_verdict(&self) -> Option<i32> {
        if self.target_name.is_empty() {
            le_i32(&self.target_data, 0)
        } else {
            None
        }
    }
    /// The ERROR target's errorname.
    pub fn error_name(&self) -> Option<String> {
        (self.target_name == XT_ERROR_TARGET)
            .then(|| {
                cstr(&self.target_data, 0, XT_FUNCTION_MAXNAMELEN)
                    .and_then(|s| String::from_utf8(s.to_vec()).ok())
            })
            .flatten()
    }
    /// `unconditional()`: target right after the header and an all-zero `ipt_ip`.
    pub fn unconditional(&self) -> bool {
        self.hdr.target_offset as usize == IPT_ENTRY_SIZE && self.hdr.ip.is_zero()
    }
}

/// The blob with what the kernel fills in at load time masked out — the header's `num_counters`
/// and `counters` pointer, and every entry's `comefrom` and counters — so that a blob read back
/// with IPT_SO_GET_ENTRIES and one we encoded compare byte for byte on the table alone. Walks
/// entries by `next_offset` and stops at the first that doesn't fit; never panics.
pub fn mask_load_time_fields(blob: &[u8]) -> Vec<u8> {
    let mut b = blob.to_vec();
    if let Some(h) = b.get_mut(84..IPT_REPLACE_SIZE) {
        h.fill(0);
    }
    let mut off = IPT_REPLACE_SIZE;
    while let Some(e) = b.get_mut(off..off.saturating_add(IPT_ENTRY_SIZE)) {
        let next = usize::from(u16::from_le_bytes([e[90], e[91]]));
        e[92..IPT_ENTRY_SIZE].fill(0);
        if next == 0 {
            break;
        }
        off = off.saturating_add(next);
    }
    b
}

/// Split the entries area into entries (structural checks only; `verify` does the kernel's).
pub fn walk_entries(entries: &[u8]) -> Result<Vec<RawEntry>, DecodeError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < entries.len() {
        let hdr = EntryHeader::parse(entries, off)
            .ok_or_else(|| derr(Some(off), "truncated entry header"))?;
        let next = hdr.next_offset as usize;
        let toff = hdr.target_offset as usize;
        if next < IPT_ENTRY_SIZE + XT_HDR_SIZE
            || off + next > entries.len()
            || !off.is_multiple_of(8)
        {
            return Err(derr(Some(off), "bad next_offset"));
        }
        if toff < IPT_ENTRY_SIZE || toff + XT_HDR_SIZE > next {
            return Err(derr(Some(off), "bad target_offset"));
        }
        let e = entries
            .get(off..off + next)
            .ok_or_else(|| derr(Some(off), "entry past end"))?;
        let mut matches = Vec::new();
        let mut m = IPT_ENTRY_SIZE;
        while m < toff {
            let h = XtHeader::parse(e, m).ok_or_else(|| derr(Some(off), "truncated match"))?;
            let sz = h.size as usize;
            if sz < XT_HDR_SIZE || m + sz > toff {
                return Err(derr(Some(off), "bad match size"));
            }
            let data = e.get(m + XT_HDR_SIZE..m + sz).unwrap_or_default().to_vec();
            matches.push((
                String::from_utf8_lossy(&h.name).into_owned(),
                h.revision,
                data,
            ));
            m += sz;
        }
        let th = XtHeader::parse(e, toff).ok_or_else(|| derr(Some(off), "truncated target"))?;
        let tsz = th.size as usize;
        if tsz < XT_HDR_SIZE || toff + tsz > next {
            return Err(derr(Some(off), "bad target size"));
        }
        let target_data = e
            .get(toff + XT_HDR_SIZE..toff + tsz)
            .unwrap_or_default()
            .to_vec();
        out.push(RawEntry {
            offset: off,
            hdr,
            matches,
            target_name: String::from_utf8_lossy(&th.name).into_owned(),
            target_revision: th.revision,
            target_data,
        });
        off += next;
    }
    Ok(out)
}

/// Decode a complete `ipt_replace` blob (header + entries) into a Table.
pub fn decode(blob: &[u8]) -> Result<Table, DecodeError> {
    let hdr = ReplaceHeader::parse(blob)
        .ok_or_else(|| derr(None, "shorter than the 96-byte ipt_replace header"))?;
    let entries = blob
        .get(IPT_REPLACE_SIZE..IPT_REPLACE_SIZE + hdr.size as usize)
        .ok_or_else(|| derr(None, "blob shorter than 96 + size"))?;
    decode_entries(
        &String::from_utf8_lossy(&hdr.name),
        hdr.valid_hooks,
        &hdr.hook_entry,
        &hdr.underflow,
        entries,
    )
}

enum Cur {
    None,
    Builtin(usize),
    User(usize),
}

/// Decode an entries area given the header fields (as `IPT_SO_GET_INFO` reports them).
pub fn decode_entries(
    name: &str,
    valid_hooks: u32,
    hook_entry: &[u32; 5],
    underflow: &[u32; 5],
    entries: &[u8],
) -> Result<Table, DecodeError> {
    let raw = walk_entries(entries)?;
    let mut table = Table::with_hooks(name, valid_hooks & 0x1f);
    table.builtins.clear();
    let valid = |h: usize| valid_hooks & (1 << h) != 0;
    // Chain starts (jump destinations): built-in hook entries and the entry after each head.
    let mut starts: HashMap<usize, String> = HashMap::new();
    for (h, &he) in hook_entry.iter().enumerate() {
        if let Some(hook) = Hook::from_u32(h as u32).filter(|_| valid(h)) {
            starts.insert(he as usize, hook_chain_name(hook).to_string());
        }
    }
    let last = raw.len().saturating_sub(1);
    for (i, e) in raw.iter().enumerate() {
        if let Some(n) = e.error_name().filter(|_| i != last) {
            starts.insert(e.offset + e.hdr.next_offset as usize, n);
        }
    }
    let mut cur = Cur::None;
    let mut seen_hooks = 0u32;
    for (i, e) in raw.iter().enumerate() {
        let off = e.offset;
        if e.target_name == XT_ERROR_TARGET {
            let n = e
                .error_name()
                .ok_or_else(|| derr(Some(off), "unterminated error name"))?;
            if let Cur::User(u) = cur {
                return Err(derr(
                    Some(off),
                    format!(
                        "user chain `{}` has no RETURN foot",
                        table.user_chains[u].name
                    ),
                ));
            }
            if let Cur::Builtin(_) = cur {
                return Err(derr(Some(off), "built-in chain without policy entry"));
            }
            if i == last {
                if n != "ERROR" {
                    return Err(derr(Some(off), "final entry is not the ERROR entry"));
                }
                break;
            }
            if n.is_empty() || chain_name_hook(&n).is_some() {
                return Err(derr(Some(off), format!("bad user chain name `{n}`")));
            }
            if table.user_chains.iter().any(|c| c.name == n) {
                return Err(derr(Some(off), format!("duplicate chain `{n}`")));
            }
            table.user_chains.push(UserChain {
                name: n,
                rules: Vec::new(),
            });
            cur = Cur::User(table.user_chains.len() - 1);
            continue;
        }
        if let Some(h) = (0..5).find(|&h| valid(h) && hook_entry[h] as usize == off) {
            if !matches!(cur, Cur::None) {
                return Err(derr(Some(off), "hook entry inside another chain"));
            }
            let hook = Hook::from_u32(h as u32).ok_or_else(|| derr(Some(off), "bad hook"))?;
            seen_hooks |= 1 << h;
            table.builtins.push(BuiltinChain {
                hook,
                policy: Policy::Accept,
                rules: Vec::new(),
                policy_counters: Counters::default(),
            });
            cur = Cur::Builtin(table.builtins.len() - 1);
        }
        match cur {
            Cur::None => return Err(derr(Some(off), "entry outside any chain")),
            Cur::Builtin(b) => {
                let h = table.builtins[b].hook as usize;
                if underflow[h] as usize == off {
                    let policy = match e.std_verdict() {
                        Some(VERDICT_ACCEPT) if e.unconditional() => Policy::Accept,
                        Some(VERDICT_DROP) if e.unconditional() => Policy::Drop,
                        _ => {
                            return Err(derr(
                                Some(off),
                                "policy entry is not an unconditional ACCEPT/DROP",
                            ));
                        }
                    };
                    let c = &mut table.builtins[b];
                    c.policy = policy;
                    c.policy_counters = Counters {
                        pcnt: e.hdr.pcnt,
                        bcnt: e.hdr.bcnt,
                    };
                    cur = Cur::None;
                } else {
                    let r = decode_rule(e, &starts)?;
                    table.builtins[b].rules.push(r);
                }
            }
            Cur::User(u) => {
                // The foot is the entry before the next ERROR entry (or the last entry of a
                // table without its final ERROR entry, which the kernel accepts).
                let next_is_error = raw
                    .get(i + 1)
                    .is_none_or(|n| n.target_name == XT_ERROR_TARGET);
                if next_is_error {
                    if e.std_verdict() != Some(XT_RETURN)
                        || !e.unconditional()
                        || e.hdr.ip.flags != 0
                    {
                        return Err(derr(
                            Some(off),
                            "user chain does not end in an unconditional RETURN",
                        ));
                    }
                    cur = Cur::None;
                } else {
                    let r = decode_rule(e, &starts)?;
                    table.user_chains[u].rules.push(r);
                }
            }
        }
    }
    if !matches!(cur, Cur::None) {
        return Err(derr(None, "last chain is not terminated"));
    }
    if seen_hooks != valid_hooks & 0x1f {
        return Err(derr(None, "a valid hook has no chain"));
    }
    table.builtins.sort_by_key(|c| c.hook);
    Ok(table)
}

fn decode_rule(e: &RawEntry, starts: &HashMap<usize, String>) -> Result<Rule, DecodeError> {
    let mut ip = e.hdr.ip;
    let next = e.offset + e.hdr.next_offset as usize;
    let target = if e.target_name.is_empty() {
        if e.target_revision != 0 || e.target_data.len() != 8 {
            return Err(derr(Some(e.offset), "bad standard target"));
        }
        let v = e
            .std_verdict()
            .ok_or_else(|| derr(Some(e.offset), "bad standard target"))?;
        let goto = ip.flags & IPT_F_GOTO != 0;
        if let Some(t) = std_target(v) {
            t
        } else if v >= 0 {
            let v = v as usize;
            if goto {
                ip.flags &= !IPT_F_GOTO;
                Target::Goto(
                    starts
                        .get(&v)
                        .cloned()
                        .ok_or_else(|| derr(Some(e.offset), "goto to a non-chain offset"))?,
                )
            } else if v == next {
                Target::Fallthrough
            } else {
                Target::Jump(
                    starts
                        .get(&v)
                        .cloned()
                        .ok_or_else(|| derr(Some(e.offset), "jump to a non-chain offset"))?,
                )
            }
        } else {
            return Err(derr(Some(e.offset), format!("bad verdict {v}")));
        }
    } else {
        Target::from_parts(&e.target_name, e.target_revision, &e.target_data)
    };
    // Standard-target bytes after the verdict must be zero to round-trip.
    let matches = e
        .matches
        .iter()
        .map(|(n, r, d)| Match::from_parts(n, *r, d))
        .collect();
    Ok(Rule {
        ip: IpMatch { ip },
        matches,
        target,
        counters: Counters {
            pcnt: e.hdr.pcnt,
            bcnt: e.hdr.bcnt,
        },
        nfcache: e.hdr.nfcache,
    })
}

fn std_target(v: i32) -> Option<Target> {
    Some(match v {
        VERDICT_ACCEPT => Target::Accept,
        VERDICT_DROP => Target::Drop,
        VERDICT_QUEUE => Target::Queue,
        XT_RETURN => Target::Return,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_clears_exactly_the_load_time_fields() {
        let t = Table::new("filter").unwrap();
        let blob = encode(&t).unwrap();
        let mut loaded = blob.clone();
        loaded[84..88].copy_from_slice(&4u32.to_le_bytes()); // num_counters
        loaded[88..96].fill(0xAB); // counters pointer
        for off in [0, 152, 304, 456] {
            let e = IPT_REPLACE_SIZE + off;
            loaded[e + 92..e + 96].fill(0x11); // comefrom
            loaded[e + 96..e + 112].fill(0x22); // pcnt, bcnt
        }
        assert_ne!(loaded, blob);
        assert_eq!(mask_load_time_fields(&loaded), mask_load_time_fields(&blob));
        // The rules themselves are not masked: a different verdict still differs.
        let mut other = blob.clone();
        other[IPT_REPLACE_SIZE + IPT_ENTRY_SIZE + XT_HDR_SIZE] ^= 1; // first verdict
        assert_ne!(mask_load_time_fields(&other), mask_load_time_fields(&blob));
        // Hostile input: any prefix, or a next_offset of 0 or past the end, never panics.
        for n in 0..blob.len() {
            assert_eq!(mask_load_time_fields(&blob[..n]).len(), n);
        }
        let mut bad = blob.clone();
        bad[IPT_REPLACE_SIZE + 90..IPT_REPLACE_SIZE + 92].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(mask_load_time_fields(&bad).len(), bad.len());
    }

    #[test]
    fn empty_filter_is_632_bytes() {
        let t = Table::new("filter").unwrap();
        let (h, e) = encode_parts(&t).unwrap();
        assert_eq!(e.len(), 632);
        assert_eq!(h.num_entries, 4);
        assert_eq!(h.hook_entry, [u32::MAX, 0, 152, 304, u32::MAX]);
        assert_eq!(h.underflow, [u32::MAX, 0, 152, 304, u32::MAX]);
        let blob = encode(&t).unwrap();
        assert_eq!(decode(&blob).unwrap(), t);
    }

    #[test]
    fn entry_map_matches_the_walk() {
        let mut t = Table::new("filter").unwrap();
        t.user_chains.push(UserChain {
            name: "A".into(),
            rules: vec![Rule::new(Target::Return)],
        });
        t.builtins[0]
            .rules
            .push(Rule::new(Target::Jump("A".into())));
        let m = entry_map(&t);
        let blob = encode(&t).unwrap();
        let w = walk_entries(&blob[96..]).unwrap();
        assert_eq!(
            m.iter().map(|e| e.offset as usize).collect::<Vec<_>>(),
            w.iter().map(|e| e.offset).collect::<Vec<_>>()
        );
        assert_eq!(
            m[0],
            EntryLabel {
                offset: 0,
                chain: "INPUT".into(),
                role: EntryRole::Rule(0)
            }
        );
        assert_eq!(m[4].role, EntryRole::ChainHead);
        assert_eq!(
            m[6],
            EntryLabel {
                offset: 152 * 5 + 176,
                chain: "A".into(),
                role: EntryRole::Return
            }
        );
        assert_eq!(m[7].role, EntryRole::TableEnd);
    }

    #[test]
    fn jump_goes_past_the_error_head() {
        let mut t = Table::new("filter").unwrap();
        t.user_chains.push(UserChain {
            name: "B".into(),
            rules: vec![Rule::new(Target::Return)],
        });
        t.user_chains.push(UserChain {
            name: "A".into(),
            rules: vec![],
        });
        t.builtins[0]
            .rules
            .push(Rule::new(Target::Jump("B".into())));
        t.builtins[0]
            .rules
            .push(Rule::new(Target::Goto("A".into())));
        let (h, e) = encode_parts(&t).unwrap();
        // INPUT: 2 rules (152 each) + policy; FORWARD, OUTPUT policies; A head@760, foot@936;
        // B head@1088, rule@1264.
        assert_eq!(h.underflow[1], 304);
        assert_eq!(le_i32(&e, 112 + 32), Some(1264));
        assert_eq!(le_i32(&e, 152 + 112 + 32), Some(936));
        assert_eq!(e[152 + 82], IPT_F_GOTO);
        let back = decode(&[h.encode(), e].concat()).unwrap();
        assert_eq!(back.builtins, t.builtins);
        assert_eq!(back.sorted_user_chains(), t.sorted_user_chains());
    }
}
