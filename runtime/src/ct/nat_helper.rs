//! The NAT half of the FTP helper, after the kernel's nf_nat_ftp.c, nf_nat_helper.c and nf_conntrack_seqadj.c.
//! When the FTP helper finds a command on a NATed connection, `nf_nat_ftp` expects the data connection where
//! the NATed peer will send it (the expectation carries `nf_nat_follow_master`, so the data connection gets the
//! control connection's bindings when it arrives) and writes the command's address/port text again for the
//! NATed address (`nf_nat_mangle_tcp_packet`: the datagram's length and checksums follow). A length change is
//! recorded per direction (`nf_ct_seqadj_set`); from then on every TCP packet of the connection has its sequence
//! number, the other direction's acknowledgement number and SACK blocks moved by it at confirm
//! (`nf_ct_seq_adjust`), and the TCP tracker takes the offset out of the acknowledgements it checks
//! (`nf_ct_seq_offset`).

use super::ftp::{self, FtpType};
use super::nat::{Manip, NatRange};
use super::{ConnId, Conntrack, CtInfo, Expect, Nfct};
use crate::wire::{be16, be32, build, checksum, csum_replace, proto};
use nfr_vm::pkt::{NFPROTO_IPV6, ips};

/// `struct nf_ct_seqadj`: one direction's sequence correction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqAdj {
    pub correction_pos: u32,
    pub offset_before: i32,
    pub offset_after: i32,
}

fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

impl SeqAdj {
    /// `nf_ct_seqadj_set` for this direction: a change of `off` bytes at sequence `seq`. One correction is kept
    /// in the window; a retransmission of the packet already corrected changes nothing.
    fn set(&mut self, seq: u32, off: i32) {
        if self.offset_before == self.offset_after || after(seq, self.correction_pos) {
            self.correction_pos = seq;
            self.offset_before = self.offset_after;
            self.offset_after = self.offset_after.wrapping_add(off);
        }
    }

    /// `nf_ct_seq_offset`: the offset in force at `seq`.
    pub fn offset(&self, seq: u32) -> i32 {
        if after(seq, self.correction_pos) {
            self.offset_after
        } else {
            self.offset_before
        }
    }
}

/// What the helper did to a packet of a NATed connection.
pub(super) enum HelperNat {
    /// Nothing to rewrite.
    Accept,
    /// The datagram with its command rewritten (TCP checksum still to compute).
    Mangled(Vec<u8>),
    /// `NF_DROP` (no port to expect the data connection on, or no room for the new text).
    Drop,
}

/// Why `nf_ct_expect_related` refused an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExpectError {
    /// `-EBUSY`: another master expects the same tuple.
    Busy,
    /// `-EMFILE`: the expectation table is full.
    Full,
}

/// `mangle_contents` + the length fields of `__nf_nat_mangle_tcp_packet`: the datagram `l3` with the `len` bytes
/// at `at` replaced by `rep`, its total (IPv4) or payload (IPv6) length set and the IPv4 header checksum computed
/// again. `None` when the result would pass 65535 bytes (`enlarge_skb`).
fn mangle_contents(l3: &[u8], at: usize, len: usize, rep: &[u8]) -> Option<Vec<u8>> {
    let end = at.checked_add(len).filter(|e| *e <= l3.len())?;
    let new_len = l3.len() - len + rep.len();
    if rep.len() > len && new_len > 65535 {
        return None;
    }
    let mut d = Vec::with_capacity(new_len);
    d.extend_from_slice(l3.get(..at)?);
    d.extend_from_slice(rep);
    d.extend_from_slice(l3.get(end..)?);
    if d.first().is_some_and(|b| b >> 4 == 6) {
        let pl = u16::try_from(new_len.checked_sub(40)?).ok()?;
        d.get_mut(4..6)?.copy_from_slice(&pl.to_be_bytes());
    } else {
        d.get_mut(2..4)?
            .copy_from_slice(&(new_len as u16).to_be_bytes());
        build::refresh_ipv4_checksum(&mut d);
    }
    Some(d)
}

/// The TCP checksum of the segment at `protoff` computed whole, as the device (or `skb_checksum_help`) completes
/// the `CHECKSUM_PARTIAL` that `nf_nat_csum_recalc` leaves (a result of 0 is sent as 0xffff).
fn tcp_csum_complete(d: &mut [u8], protoff: usize) {
    let v6 = d.first().is_some_and(|b| b >> 4 == 6);
    let (src, dst) = if v6 {
        (8..24, 24..40)
    } else {
        (12..16, 16..20)
    };
    let seg_len = d.len().saturating_sub(protoff);
    if seg_len < 20 {
        return;
    }
    let init = build::pseudo(
        d.get(src).unwrap_or(&[]),
        d.get(dst).unwrap_or(&[]),
        proto::TCP,
        seg_len,
    );
    let at = protoff + 16;
    d[at..at + 2].fill(0);
    let c = match checksum(&d[protoff..], init) {
        0 => 0xffff,
        c => c,
    };
    d[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Writes a 32-bit field at `at`, updating the TCP checksum at `check_at` incrementally unless it is left to be
/// computed whole (`partial`, `inet_proto_csum_replace4` on a `CHECKSUM_PARTIAL` packet).
fn put32(d: &mut [u8], at: usize, v: u32, check_at: usize, partial: bool) {
    let old = be32(d, at).to_be_bytes();
    let new = v.to_be_bytes();
    if !partial {
        let c = csum_replace(be16(d, check_at), &old, &new);
        d[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
    }
    d[at..at + 4].copy_from_slice(&new);
}

/// `nf_ct_seq_adjust` on the TCP segment at `protoff` of `d`, with `this_way` the correction of the packet's
/// direction and `other_way` the other's: the sequence number moves by this direction's offset, the
/// acknowledgement number and SACK blocks back by the other's. False (the packet is dropped) for a malformed
/// option list.
fn seq_adjust(
    d: &mut [u8],
    protoff: usize,
    this_way: &SeqAdj,
    other_way: &SeqAdj,
    partial: bool,
) -> bool {
    if d.len() < protoff + 20 {
        return false;
    }
    let check_at = protoff + 16;
    let seq = be32(d, protoff + 4);
    let ack = be32(d, protoff + 8);
    let seqoff = this_way.offset(seq);
    let ackoff = if after(
        ack.wrapping_sub(other_way.offset_before as u32),
        other_way.correction_pos,
    ) {
        other_way.offset_after
    } else {
        other_way.offset_before
    };
    put32(
        d,
        protoff + 4,
        seq.wrapping_add(seqoff as u32),
        check_at,
        partial,
    );
    put32(
        d,
        protoff + 8,
        ack.wrapping_sub(ackoff as u32),
        check_at,
        partial,
    );
    // nf_ct_sack_adjust
    let optend = protoff + usize::from(d[protoff + 12] >> 4) * 4;
    if optend > d.len() {
        return false;
    }
    let mut o = protoff + 20;
    while o < optend {
        match d[o] {
            0 => return true,
            1 => o += 1,
            kind => {
                let l = usize::from(d.get(o + 1).copied().unwrap_or(0));
                if o + 1 == optend || o + l > optend || l < 2 {
                    return false;
                }
                if kind == 5 && l >= 10 && (l - 2) % 8 == 0 {
                    let mut b = o + 2;
                    while b < o + l {
                        for at in [b, b + 4] {
                            let v = be32(d, at);
                            let off = if after(
                                v.wrapping_sub(other_way.offset_before as u32),
                                other_way.correction_pos,
                            ) {
                                other_way.offset_after
                            } else {
                                other_way.offset_before
                            };
                            put32(d, at, v.wrapping_sub(off as u32), check_at, partial);
                        }
                        b += 8;
                    }
                }
                o += l;
            }
        }
    }
    true
}

impl Conntrack {
    /// `nf_ct_seq_offset(ct, dir, seq)` of the entry at slab index `idx` (0 without a correction).
    pub(super) fn seq_offset(&self, idx: u32, dir: usize, seq: u32) -> i32 {
        self.seqadj
            .get(&idx)
            .and_then(|s| s.get(dir))
            .map_or(0, |s| s.offset(seq))
    }

    /// `nf_nat_ftp`: the FTP helper found a command (`ty`, its address/port text `len` bytes at `at` of the
    /// datagram `l3`, whose TCP header is at `protoff`) on a NATed connection. The data connection is expected
    /// where the other direction's packets go (`exp` comes with the port the command named; the next free one is
    /// taken when another master expects it), and the text is written for that address and port.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nf_nat_ftp(
        &mut self,
        id: ConnId,
        ctinfo: CtInfo,
        l3: &[u8],
        protoff: usize,
        mut exp: Expect,
        ty: FtpType,
        at: usize,
        len: usize,
        now: u64,
    ) -> HelperNat {
        let dir = ctinfo.dir();
        let Some(c) = self.conn(id) else {
            return HelperNat::Drop;
        };
        // The connection will come from wherever this packet goes.
        let newaddr = self.tuple_of(id.idx, c, 1 - dir).dst;
        let v6 = c.orig.l3 == NFPROTO_IPV6;
        exp.saved_port = exp.tuple.dport;
        exp.dir = (1 - dir) as u8;
        exp.follow_master = true;
        let mut port = exp.saved_port;
        while port != 0 {
            exp.tuple.dport = port;
            match self.expect_related(exp, now) {
                Ok(()) => break,
                Err(ExpectError::Busy) => port = port.wrapping_add(1),
                Err(ExpectError::Full) => port = 0,
            }
        }
        if port == 0 {
            return HelperNat::Drop;
        }
        let text = ftp::fmt_cmd(ty, v6, &newaddr, port);
        let Some(d) = mangle_contents(l3, at, len, text.as_bytes()) else {
            self.unexpect_related(&exp);
            return HelperNat::Drop;
        };
        let off = text.len() as i32 - len as i32;
        if off != 0 {
            let seq = be32(l3, protoff + 4);
            if let Some(c) = self.conn_mut(id) {
                c.status |= ips::SEQ_ADJUST;
            }
            self.seqadj.entry(id.idx).or_default()[dir].set(seq, off);
        }
        HelperNat::Mangled(d)
    }

    /// `nf_ct_unexpect_related`: takes back an expectation just made.
    fn unexpect_related(&mut self, exp: &Expect) {
        if let Some(pos) = self.expects.iter().position(|e| e == exp) {
            self.expects.remove(pos);
            self.stats.expect_delete += 1;
        }
    }

    /// The helper's rewrite and `nf_ct_seq_adjust` of a packet at confirm: `mangled` is the datagram the helper
    /// rewrote, if it did; a packet of an entry with `IPS_SEQ_ADJUST` has its sequence numbers moved. The
    /// result is the datagram to send (`None`: `l3` unchanged), or `Err` when it must be dropped.
    pub(super) fn nat_seq_adjust(
        &self,
        id: ConnId,
        ctinfo: CtInfo,
        l3: &[u8],
        mangled: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, ()> {
        let Some(c) = self.conn(id) else {
            return Ok(mangled);
        };
        let adjust = c.status & ips::SEQ_ADJUST != 0 && c.orig.l4 == proto::TCP;
        if !adjust && mangled.is_none() {
            return Ok(None);
        }
        // nf_confirm takes the bytes after the network header for a TCP header whatever the packet is: an ICMP
        // error RELATED to the connection in the original direction is "adjusted" too, as in the kernel.
        let Some(l4) = super::get_l4proto(l3) else {
            return Ok(mangled);
        };
        let partial = mangled.is_some();
        let mut d = mangled.unwrap_or_else(|| l3.to_vec());
        if adjust {
            let dir = ctinfo.dir();
            let s = self.seqadj.get(&id.idx).copied().unwrap_or_default();
            if !seq_adjust(&mut d, l4.dataoff, &s[dir], &s[1 - dir], partial) {
                return Err(());
            }
        }
        if partial {
            tcp_csum_complete(&mut d, l4.dataoff);
        }
        Ok(Some(d))
    }

    /// `nf_nat_follow_master`, the expectation's function for a data connection the FTP NAT helper expected
    /// (`exp`) at the unconfirmed entry `idx`: its source is mapped to where the master's packets in the
    /// expectation's direction go, its destination to where they come from, at the port the command named.
    pub(super) fn nf_nat_follow_master(&mut self, idx: u32, exp: &Expect, now: u64) {
        let Some(m) = self.conn(exp.master) else {
            return;
        };
        let t = self.tuple_of(exp.master.idx, m, 1 - usize::from(exp.dir));
        let Some(c) = self.conns.get(idx as usize) else {
            return;
        };
        let nfct = Nfct::Ct {
            id: ConnId {
                idx,
                generation: c.generation,
            },
            ctinfo: CtInfo::Related,
        };
        let src = NatRange {
            addr: Some((t.dst, t.dst)),
            proto: None,
            flags: 0,
        };
        // A binding that cannot be made leaves the entry to fail at confirm, as in the kernel.
        let _ = self.nf_nat_setup_info(&nfct, &src, Manip::Src, now);
        let dst = NatRange {
            addr: Some((t.src, t.src)),
            proto: Some((exp.saved_port, exp.saved_port)),
            flags: 0,
        };
        let _ = self.nf_nat_setup_info(&nfct, &dst, Manip::Dst, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_correction_in_the_window() {
        let mut s = SeqAdj::default();
        s.set(1000, 4);
        assert_eq!((s.offset(1000), s.offset(1001)), (0, 4));
        // A retransmission of the corrected packet changes nothing; a later change adds up.
        s.set(1000, 4);
        assert_eq!((s.offset(1000), s.offset(1001)), (0, 4));
        s.set(2000, -2);
        assert_eq!((s.offset(1500), s.offset(2001)), (4, 2));
    }

    #[test]
    fn seq_adjust_moves_seq_ack_and_sack_with_a_valid_checksum() {
        let a = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // SACK-permitted connection: one SACK block (NOP NOP kind 5 len 10).
        let opts = [1, 1, 5, 10, 0, 0, 0x13, 0x88, 0, 0, 0x13, 0x92];
        let p = build::tcp(
            a("10.0.0.2"),
            a("192.0.2.1"),
            1,
            21,
            3000,
            5000,
            0x10,
            100,
            &opts,
            b"",
        );
        let this = SeqAdj {
            correction_pos: 2000,
            offset_before: 0,
            offset_after: 3,
        };
        let other = SeqAdj {
            correction_pos: 4000,
            offset_before: 0,
            offset_after: -2,
        };
        let mut d = p.clone();
        assert!(seq_adjust(&mut d, 20, &this, &other, false));
        assert_eq!(be32(&d, 24), 3003);
        assert_eq!(be32(&d, 28), 5002);
        assert_eq!((be32(&d, 44), be32(&d, 48)), (5002, 5012));
        let init = build::pseudo(&d[12..16], &d[16..20], proto::TCP, d.len() - 20);
        assert_eq!(checksum(&d[20..], init), 0);
        // A truncated option list is refused.
        let mut bad = p.clone();
        bad[20 + 20 + 3] = 40;
        assert!(!seq_adjust(&mut bad, 20, &this, &other, false));
    }

    #[test]
    fn mangle_sets_lengths_and_refuses_oversize() {
        let a = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let p = build::tcp(
            a("10.0.0.2"),
            a("192.0.2.1"),
            1,
            21,
            1,
            1,
            0x18,
            100,
            &[],
            b"PORT 10,0,0,2,4,1\r\n",
        );
        let mut d = mangle_contents(&p, 45, 12, b"198,51,100,1,4,1").unwrap();
        assert_eq!(be16(&d, 2) as usize, d.len());
        assert_eq!(checksum(&d[..20], 0), 0);
        assert_eq!(&d[40..], b"PORT 198,51,100,1,4,1\r\n");
        tcp_csum_complete(&mut d, 20);
        let init = build::pseudo(&d[12..16], &d[16..20], proto::TCP, d.len() - 20);
        assert_eq!(checksum(&d[20..], init), 0);
        let big = vec![b'1'; 65535];
        assert!(mangle_contents(&p, 45, 12, &big).is_none());
        assert!(mangle_contents(&p, 50, 12, b"x").is_none());
    }
}
