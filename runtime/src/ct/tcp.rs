//! The TCP tracker, a transcription of nf_conntrack_proto_tcp.c (v6.x): `tcp_error`, `tcp_new`, the
//! `tcp_conntracks` state table (verbatim), `nf_conntrack_tcp_packet`'s special cases (re-open from TIME_WAIT /
//! CLOSE, ignored packets and SYN/ACK resync, challenge ACKs, simultaneous open, RST checks) and `tcp_in_window`
//! (window tracking with scaling, SACK, loose pickup, be_liberal), plus the timeout choice.

use super::Settings;
use crate::wire::tcp_flags as F;

/// `enum tcp_conntrack`.
pub mod state {
    pub const NONE: u8 = 0;
    pub const SYN_SENT: u8 = 1;
    pub const SYN_RECV: u8 = 2;
    pub const ESTABLISHED: u8 = 3;
    pub const FIN_WAIT: u8 = 4;
    pub const CLOSE_WAIT: u8 = 5;
    pub const LAST_ACK: u8 = 6;
    pub const TIME_WAIT: u8 = 7;
    pub const CLOSE: u8 = 8;
    pub const SYN_SENT2: u8 = 9;
    /// `TCP_CONNTRACK_MAX` = sIV.
    pub const MAX: u8 = 10;
    /// `TCP_CONNTRACK_IGNORE` = sIG.
    pub const IGNORE: u8 = 11;
    /// Timeout slot only.
    pub const RETRANS: u8 = 12;
    /// Timeout slot only.
    pub const UNACK: u8 = 13;
}
use state::*;

/// `tcp_conntrack_names`.
pub fn state_name(s: u8) -> &'static str {
    match s {
        NONE => "NONE",
        SYN_SENT => "SYN_SENT",
        SYN_RECV => "SYN_RECV",
        ESTABLISHED => "ESTABLISHED",
        FIN_WAIT => "FIN_WAIT",
        CLOSE_WAIT => "CLOSE_WAIT",
        LAST_ACK => "LAST_ACK",
        TIME_WAIT => "TIME_WAIT",
        CLOSE => "CLOSE",
        SYN_SENT2 => "SYN_SENT2",
        _ => "UNKNOWN",
    }
}

// Packet classes (`enum tcp_bit_set`).
pub const TCP_SYN_SET: u8 = 0;
pub const TCP_SYNACK_SET: u8 = 1;
pub const TCP_FIN_SET: u8 = 2;
pub const TCP_ACK_SET: u8 = 3;
pub const TCP_RST_SET: u8 = 4;
pub const TCP_NONE_SET: u8 = 5;

// `ip_ct_tcp_state.flags` / `last_flags`.
pub const IP_CT_TCP_FLAG_WINDOW_SCALE: u8 = 0x01;
pub const IP_CT_TCP_FLAG_SACK_PERM: u8 = 0x02;
pub const IP_CT_TCP_FLAG_CLOSE_INIT: u8 = 0x04;
pub const IP_CT_TCP_FLAG_BE_LIBERAL: u8 = 0x08;
pub const IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED: u8 = 0x10;
pub const IP_CT_TCP_FLAG_MAXACK_SET: u8 = 0x20;
pub const IP_CT_EXP_CHALLENGE_ACK: u8 = 0x40;
pub const IP_CT_TCP_SIMULTANEOUS_OPEN: u8 = 0x80;

const TCP_MAX_WSCALE: u8 = 14;
const MAXACKWINCONST: u32 = 66000;

const S_NO: u8 = NONE;
const S_SS: u8 = SYN_SENT;
const S_SR: u8 = SYN_RECV;
const S_ES: u8 = ESTABLISHED;
const S_FW: u8 = FIN_WAIT;
const S_CW: u8 = CLOSE_WAIT;
const S_LA: u8 = LAST_ACK;
const S_TW: u8 = TIME_WAIT;
const S_CL: u8 = CLOSE;
const S_S2: u8 = SYN_SENT2;
const S_IV: u8 = MAX;
const S_IG: u8 = IGNORE;
const _: u8 = S_NO;

/// `tcp_conntracks[dir][index][old_state]`, verbatim from the kernel.
#[rustfmt::skip]
pub const TCP_CONNTRACKS: [[[u8; 10]; 6]; 2] = [
    [
/* ORIGINAL */
/*            sNO,  sSS,  sSR,  sES,  sFW,  sCW,  sLA,  sTW,  sCL,  sS2 */
/*syn*/     [ S_SS, S_SS, S_IG, S_IG, S_IG, S_IG, S_IG, S_SS, S_SS, S_S2 ],
/*synack*/  [ S_IV, S_IV, S_SR, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_SR ],
/*fin*/     [ S_IV, S_IV, S_FW, S_FW, S_LA, S_LA, S_LA, S_TW, S_CL, S_IV ],
/*ack*/     [ S_ES, S_IV, S_ES, S_ES, S_CW, S_CW, S_TW, S_TW, S_CL, S_IV ],
/*rst*/     [ S_IV, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL ],
/*none*/    [ S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV ],
    ],
    [
/* REPLY */
/*            sNO,  sSS,  sSR,  sES,  sFW,  sCW,  sLA,  sTW,  sCL,  sS2 */
/*syn*/     [ S_IV, S_S2, S_IV, S_IV, S_IV, S_IV, S_IV, S_SS, S_IV, S_S2 ],
/*synack*/  [ S_IV, S_SR, S_IG, S_IG, S_IG, S_IG, S_IG, S_IG, S_IG, S_SR ],
/*fin*/     [ S_IV, S_IV, S_FW, S_FW, S_LA, S_LA, S_LA, S_TW, S_CL, S_IV ],
/*ack*/     [ S_IV, S_IG, S_SR, S_ES, S_CW, S_CW, S_TW, S_TW, S_CL, S_IG ],
/*rst*/     [ S_IV, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL ],
/*none*/    [ S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV, S_IV ],
    ],
];

/// `struct ip_ct_tcp_state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpDir {
    pub td_end: u32,
    pub td_maxend: u32,
    pub td_maxwin: u32,
    pub td_maxack: u32,
    pub td_scale: u8,
    pub flags: u8,
}

/// `struct ip_ct_tcp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCt {
    pub seen: [TcpDir; 2],
    pub state: u8,
    pub last_dir: u8,
    pub retrans: u8,
    pub last_index: u8,
    pub last_seq: u32,
    pub last_ack: u32,
    pub last_end: u32,
    pub last_win: u16,
    pub last_wscale: u8,
    pub last_flags: u8,
}

/// The parts of a TCP segment the tracker reads.
#[derive(Debug, Clone, Copy)]
pub struct Seg<'a> {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub win: u16,
    /// TCP payload length (`skb->len - dataoff - doff*4`).
    pub payload_len: u32,
    /// Option bytes (between 20 and doff*4).
    pub options: &'a [u8],
}

impl Seg<'_> {
    fn syn(&self) -> bool {
        self.flags & F::SYN != 0
    }
    fn ack_f(&self) -> bool {
        self.flags & F::ACK != 0
    }
    fn rst(&self) -> bool {
        self.flags & F::RST != 0
    }
    fn fin(&self) -> bool {
        self.flags & F::FIN != 0
    }
    /// `segment_seq_plus_len`.
    pub fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(u32::from(self.syn()))
            .wrapping_add(u32::from(self.fin()))
    }
}

/// `get_conntrack_index`.
pub fn conntrack_index(flags: u8) -> u8 {
    if flags & F::RST != 0 {
        TCP_RST_SET
    } else if flags & F::SYN != 0 {
        if flags & F::ACK != 0 {
            TCP_SYNACK_SET
        } else {
            TCP_SYN_SET
        }
    } else if flags & F::FIN != 0 {
        TCP_FIN_SET
    } else if flags & F::ACK != 0 {
        TCP_ACK_SET
    } else {
        TCP_NONE_SET
    }
}

/// `tcp_valid_flags` (PSH, ECE and CWR ignored).
pub fn valid_flags(flags: u8) -> bool {
    let f = flags & !(F::ECE | F::CWR | F::PSH);
    const SYN: u8 = F::SYN;
    const SYN_URG: u8 = F::SYN | F::URG;
    const SYN_ACK: u8 = F::SYN | F::ACK;
    const RST: u8 = F::RST;
    const RST_ACK: u8 = F::RST | F::ACK;
    const FIN_ACK: u8 = F::FIN | F::ACK;
    const FIN_ACK_URG: u8 = F::FIN | F::ACK | F::URG;
    const ACK: u8 = F::ACK;
    const ACK_URG: u8 = F::ACK | F::URG;
    matches!(
        f,
        SYN | SYN_URG | SYN_ACK | RST | RST_ACK | FIN_ACK | FIN_ACK_URG | ACK | ACK_URG
    )
}

#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// conntrack's `tcp_options`: window scale and SACK-permitted into `st`. (Segments without options, the common
/// case, return here without a call.)
#[inline(always)]
fn tcp_options(opts: &[u8], st: &mut TcpDir) {
    if !opts.is_empty() {
        (st.td_scale, st.flags) = parse_tcp_options(opts, st.flags);
    }
}

/// [`tcp_options`] for a non-empty option block: the new `td_scale` and `flags` of a direction whose flags were
/// `flags` (by value, so that the caller's state need not live in memory).
#[inline(never)]
fn parse_tcp_options(opts: &[u8], flags: u8) -> (u8, u8) {
    let mut td_scale = 0;
    let mut flags = flags & IP_CT_TCP_FLAG_BE_LIBERAL;
    let mut i = 0usize;
    while i < opts.len() {
        let op = opts.get(i).copied().unwrap_or(0);
        match op {
            0 => break,
            1 => {
                i += 1;
                continue;
            }
            _ => {
                let length = opts.len() - i;
                if length < 2 {
                    break;
                }
                let sz = usize::from(opts.get(i + 1).copied().unwrap_or(0));
                if sz < 2 || sz > length {
                    break;
                }
                if op == 4 && sz == 2 {
                    flags |= IP_CT_TCP_FLAG_SACK_PERM;
                } else if op == 3 && sz == 3 {
                    td_scale = opts.get(i + 2).copied().unwrap_or(0).min(TCP_MAX_WSCALE);
                    flags |= IP_CT_TCP_FLAG_WINDOW_SCALE;
                }
                i += sz;
            }
        }
    }
    (td_scale, flags)
}

/// conntrack's `tcp_sack`: the highest SACK right edge above `sack`.
fn tcp_sack(opts: &[u8], sack: &mut u32) {
    if opts.len() == 12 && opts.get(..4) == Some(&[1, 1, 8, 10]) {
        return;
    }
    let mut i = 0usize;
    while i < opts.len() {
        let op = opts.get(i).copied().unwrap_or(0);
        match op {
            0 => return,
            1 => i += 1,
            _ => {
                let length = opts.len() - i;
                if length < 2 {
                    return;
                }
                let sz = usize::from(opts.get(i + 1).copied().unwrap_or(0));
                if sz < 2 || sz > length {
                    return;
                }
                if op == 5 && sz >= 10 && (sz - 2) % 8 == 0 {
                    let mut j = 0;
                    while j < sz - 2 {
                        let tmp = crate::wire::be32(opts, i + 2 + j + 4);
                        if after(tmp, *sack) {
                            *sack = tmp;
                        }
                        j += 8;
                    }
                    return;
                }
                i += sz;
            }
        }
    }
}

/// `tcp_error`: true = INVALID (header length is checked by the caller; checksum is off or checked by the caller).
pub fn tcp_error(flags: u8) -> bool {
    !valid_flags(flags)
}

/// `tcp_new`: initialises a fresh entry, `false` = "invalid new".
pub fn tcp_new(ct: &mut TcpCt, seg: &Seg<'_>, settings: &Settings) -> bool {
    let new_state = TCP_CONNTRACKS[0][usize::from(conntrack_index(seg.flags))][usize::from(NONE)];
    if new_state >= MAX {
        return false;
    }
    *ct = TcpCt::default();
    let s0 = &mut ct.seen[0];
    s0.td_end = seg.end();
    s0.td_maxwin = u32::from(seg.win).max(1);
    if new_state == SYN_SENT {
        s0.td_maxend = s0.td_end;
        tcp_options(seg.options, s0);
    } else if !settings.tcp_loose {
        return false;
    } else {
        s0.td_maxend = s0.td_end.wrapping_add(s0.td_maxwin);
        ct.seen[0].flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
        ct.seen[1].flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
    }
    ct.last_index = TCP_NONE_SET;
    true
}

/// `enum nf_ct_tcp_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WinAction {
    Ignore,
    Invalid,
    Accept,
}

fn tcp_init_sender(ct: &mut TcpCt, dir: usize, seg: &Seg<'_>, end: u32, win: u32) {
    let (sender, receiver) = split(ct, dir);
    sender.td_end = end;
    sender.td_maxend = end;
    sender.td_maxwin = if win == 0 { 1 } else { win };
    tcp_options(seg.options, sender);
    if dir == 1
        && !(sender.flags & IP_CT_TCP_FLAG_WINDOW_SCALE != 0
            && receiver.flags & IP_CT_TCP_FLAG_WINDOW_SCALE != 0)
    {
        sender.td_scale = 0;
        receiver.td_scale = 0;
    }
}

fn split(ct: &mut TcpCt, dir: usize) -> (&mut TcpDir, &mut TcpDir) {
    let [a, b] = &mut ct.seen;
    if dir == 0 { (a, b) } else { (b, a) }
}

fn log_invalid(sender_flags: u8, settings: &Settings, ret: WinAction) -> WinAction {
    if sender_flags & IP_CT_TCP_FLAG_BE_LIBERAL != 0 || settings.tcp_be_liberal {
        WinAction::Accept
    } else {
        ret
    }
}

fn maxackwindow(s: &TcpDir) -> u32 {
    if s.td_maxwin > MAXACKWINCONST {
        s.td_maxwin
    } else {
        MAXACKWINCONST
    }
}

/// `tcp_in_window` when SEQ is over the upper bound: data inside the receive window that overshoots by at most
/// the receiver's max window is IGNOREd (and `td_end` moves), anything else is INVALID.
#[cold]
#[inline(never)]
fn seq_over_upper_bound(
    sender: &mut TcpDir,
    receiver: &TcpDir,
    end: u32,
    sack: u32,
    settings: &Settings,
) -> WinAction {
    let overshot = end.wrapping_sub(sender.td_maxend).wrapping_add(1);
    let ack_ok = after(
        sack,
        receiver
            .td_end
            .wrapping_sub(maxackwindow(sender))
            .wrapping_sub(1),
    );
    let in_recv_win = receiver.td_maxwin != 0
        && after(
            end,
            sender
                .td_end
                .wrapping_sub(receiver.td_maxwin)
                .wrapping_sub(1),
        );
    if in_recv_win
        && ack_ok
        && overshot <= receiver.td_maxwin
        && before(sack, receiver.td_end.wrapping_add(1))
    {
        sender.td_end = end;
        sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
        return log_invalid(sender.flags, settings, WinAction::Ignore);
    }
    log_invalid(sender.flags, settings, WinAction::Invalid)
}

/// `tcp_in_window`.
fn tcp_in_window(
    ct: &mut TcpCt,
    dir: usize,
    index: u8,
    seg: &Seg<'_>,
    receiver_offset: u32,
    settings: &Settings,
) -> WinAction {
    let ct_state = ct.state;
    let mut seq = seg.seq;
    let mut ack = seg.ack;
    let mut sack = seg.ack;
    let win_raw = seg.win;
    let mut win = u32::from(win_raw);
    let mut end = seg.end();

    if ct.seen[1 - dir].flags & IP_CT_TCP_FLAG_SACK_PERM != 0 {
        tcp_sack(seg.options, &mut sack);
    }
    // Take into account NAT sequence number mangling.
    ack = ack.wrapping_sub(receiver_offset);
    sack = sack.wrapping_sub(receiver_offset);

    if ct.seen[dir].td_maxwin == 0 {
        if seg.syn() {
            tcp_init_sender(ct, dir, seg, end, win);
            if !seg.ack_f() {
                return WinAction::Accept;
            }
        } else {
            let (sender, receiver) = split(ct, dir);
            sender.td_end = end;
            let swin = win << sender.td_scale;
            sender.td_maxwin = if swin == 0 { 1 } else { swin };
            sender.td_maxend = end.wrapping_add(sender.td_maxwin);
            if receiver.td_maxwin == 0 {
                receiver.td_end = sack;
                receiver.td_maxend = sack;
            } else if sack == receiver.td_end.wrapping_add(1) {
                receiver.td_end = receiver.td_end.wrapping_add(1);
            }
        }
    } else if seg.syn()
        && after(end, ct.seen[dir].td_end)
        && (ct_state == SYN_SENT || ct_state == SYN_RECV)
    {
        tcp_init_sender(ct, dir, seg, end, win);
        if dir == 1 && !seg.ack_f() {
            return WinAction::Accept;
        }
    }

    let (sender, receiver) = split(ct, dir);
    if !seg.ack_f() || (seg.flags & (F::ACK | F::RST) == (F::ACK | F::RST) && ack == 0) {
        ack = receiver.td_end;
        sack = receiver.td_end;
    }

    if seg.rst() && seq == 0 && ct_state == SYN_SENT {
        seq = sender.td_end;
        end = sender.td_end;
    }

    let seq_ok = before(seq, sender.td_maxend.wrapping_add(1));
    if !seq_ok {
        return seq_over_upper_bound(sender, receiver, end, sack, settings);
    }

    if !before(sack, receiver.td_end.wrapping_add(1)) {
        return log_invalid(sender.flags, settings, WinAction::Invalid);
    }

    let in_recv_win = receiver.td_maxwin == 0
        || after(
            end,
            sender
                .td_end
                .wrapping_sub(receiver.td_maxwin)
                .wrapping_sub(1),
        );
    if !in_recv_win {
        return log_invalid(sender.flags, settings, WinAction::Ignore);
    }
    if !after(
        sack,
        receiver
            .td_end
            .wrapping_sub(maxackwindow(sender))
            .wrapping_sub(1),
    ) {
        return log_invalid(sender.flags, settings, WinAction::Ignore);
    }

    if !seg.syn() {
        win = win.wrapping_shl(u32::from(sender.td_scale));
    }
    window_accept(
        ct,
        dir,
        index,
        seg.ack_f(),
        seq,
        ack,
        sack,
        end,
        win,
        win_raw,
    );
    WinAction::Accept
}

/// The accepting tail of `tcp_in_window` (every check passed): max window, `td_end`, `td_maxack`, the receiver's
/// `td_maxwin` / `td_maxend`, the unacknowledged-data flag and the retransmission bookkeeping. `win` is already
/// scaled; `win_raw` is the header's field.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn window_accept(
    ct: &mut TcpCt,
    dir: usize,
    index: u8,
    ack_flag: bool,
    seq: u32,
    ack: u32,
    sack: u32,
    end: u32,
    win: u32,
    win_raw: u16,
) {
    let (sender, receiver) = split(ct, dir);
    let swin = win.wrapping_add(sack.wrapping_sub(ack));
    if sender.td_maxwin < swin {
        sender.td_maxwin = swin;
    }
    if after(end, sender.td_end) {
        sender.td_end = end;
        sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
    }
    if ack_flag {
        if sender.flags & IP_CT_TCP_FLAG_MAXACK_SET == 0 {
            sender.td_maxack = ack;
            sender.flags |= IP_CT_TCP_FLAG_MAXACK_SET;
        } else if after(ack, sender.td_maxack) {
            sender.td_maxack = ack;
        }
    }

    if receiver.td_maxwin != 0 && after(end, sender.td_maxend) {
        receiver.td_maxwin = receiver
            .td_maxwin
            .wrapping_add(end.wrapping_sub(sender.td_maxend));
    }
    if after(sack.wrapping_add(win), receiver.td_maxend.wrapping_sub(1)) {
        receiver.td_maxend = sack.wrapping_add(win);
        if win == 0 {
            receiver.td_maxend = receiver.td_maxend.wrapping_add(1);
        }
    }
    if ack == receiver.td_end {
        receiver.flags &= !IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
    }

    if index == TCP_ACK_SET {
        if usize::from(ct.last_dir) == dir
            && ct.last_seq == seq
            && ct.last_ack == ack
            && ct.last_end == end
            && ct.last_win == win_raw
        {
            ct.retrans = ct.retrans.saturating_add(1);
        } else {
            ct.last_dir = dir as u8;
            ct.last_seq = seq;
            ct.last_ack = ack;
            ct.last_end = end;
            ct.last_win = win_raw;
            ct.retrans = 0;
        }
    }
}

/// What `nf_conntrack_tcp_packet` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpVerdict {
    /// `-NF_ACCEPT`: INVALID, the entry is detached. `lower_timeout_s`: `nf_tcp_handle_invalid` shrank the timeout.
    Invalid { lower_timeout_s: Option<u32> },
    /// `-NF_REPEAT`: kill the entry and look up again.
    Repeat,
    /// `NF_ACCEPT` without refresh or accounting (ignored packet, SYN retransmit before a reply).
    AcceptNoRefresh,
    /// `nf_ct_kill_acct`: account, then delete (RST before any reply).
    KillAcct,
    /// `nf_ct_refresh_acct` with this timeout; `assured`: set IPS_ASSURED now; `changed`: the state moved.
    Refresh {
        timeout_s: u32,
        assured: bool,
        changed: bool,
    },
}

/// Connection facts the tracker needs from the core.
#[derive(Debug, Clone, Copy)]
pub struct TcpCtx {
    pub confirmed: bool,
    pub seen_reply: bool,
    pub assured: bool,
    pub fixed_timeout: bool,
    /// Remaining lifetime in nanoseconds (`nf_ct_expires`).
    pub expires_ns: u64,
    /// `nf_ct_seq_offset(ct, !dir, ack - 1)`: how far a NAT helper moved the receiver's sequence numbers (its
    /// length changes) at the segment's acknowledgement, taken out of the acknowledgement before the window
    /// checks; 0 without `IPS_SEQ_ADJUST`.
    pub receiver_offset: u32,
}

fn tcp_can_early_drop_state(s: u8) -> bool {
    matches!(s, FIN_WAIT | LAST_ACK | TIME_WAIT | CLOSE | CLOSE_WAIT)
}

/// True for the states `tcp_can_early_drop` accepts.
pub fn can_early_drop(ct: &TcpCt) -> bool {
    tcp_can_early_drop_state(ct.state)
}

/// The `TCP_CONNTRACK_SYN_SENT` / `TCP_CONNTRACK_IGNORE` cases of `nf_conntrack_tcp_packet` (re-open from
/// TIME_WAIT / CLOSE, ignored packets, SYN/ACK resync). `Ok((old_state, new_state))` goes on to the window check.
#[inline(never)]
fn syn_or_ignored(
    ct: &mut TcpCt,
    dir: usize,
    index: u8,
    seg: &Seg<'_>,
    mut old_state: u8,
    mut new_state: u8,
) -> Result<(u8, u8), TcpVerdict> {
    let other = 1 - dir;

    let mut handled = false;
    if new_state == SYN_SENT {
        if old_state < TIME_WAIT {
            handled = true; // plain SYN transition, go on to the window check
        } else if (ct.seen[dir].flags | ct.seen[other].flags) & IP_CT_TCP_FLAG_CLOSE_INIT != 0
            || (usize::from(ct.last_dir) == dir && ct.last_index == TCP_RST_SET)
        {
            return Err(TcpVerdict::Repeat);
        }
    }
    if !handled {
        // Ignored packets.
        if index == TCP_SYNACK_SET
            && ct.last_index == TCP_SYN_SET
            && usize::from(ct.last_dir) != dir
            && seg.ack == ct.last_end
        {
            old_state = SYN_SENT;
            new_state = SYN_RECV;
            let ld = usize::from(ct.last_dir.min(1));
            ct.seen[ld].td_end = ct.last_end;
            ct.seen[ld].td_maxend = ct.last_end;
            ct.seen[ld].td_maxwin = if ct.last_win == 0 {
                1
            } else {
                u32::from(ct.last_win)
            };
            ct.seen[ld].td_scale = ct.last_wscale;
            ct.last_flags &= !IP_CT_EXP_CHALLENGE_ACK;
            ct.seen[ld].flags = ct.last_flags;
            let s = &mut ct.seen[dir];
            s.td_end = 0;
            s.td_maxend = 0;
            s.td_maxwin = 0;
            s.td_maxack = 0;
            s.td_scale = 0;
            s.flags &= IP_CT_TCP_FLAG_BE_LIBERAL;
        } else {
            ct.last_index = index;
            ct.last_dir = dir as u8;
            ct.last_seq = seg.seq;
            ct.last_end = seg.end();
            ct.last_win = seg.win;
            if index == TCP_SYN_SET && dir == 0 {
                let mut seen = TcpDir::default();
                ct.last_flags = 0;
                ct.last_wscale = 0;
                tcp_options(seg.options, &mut seen);
                if seen.flags & IP_CT_TCP_FLAG_WINDOW_SCALE != 0 {
                    ct.last_flags |= IP_CT_TCP_FLAG_WINDOW_SCALE;
                    ct.last_wscale = seen.td_scale;
                }
                if seen.flags & IP_CT_TCP_FLAG_SACK_PERM != 0 {
                    ct.last_flags |= IP_CT_TCP_FLAG_SACK_PERM;
                }
                if old_state == LAST_ACK {
                    ct.last_flags |= IP_CT_EXP_CHALLENGE_ACK;
                }
            }
            if old_state == SYN_SENT && index == TCP_ACK_SET && dir == 1 {
                ct.last_ack = seg.ack;
            }
            return Err(TcpVerdict::AcceptNoRefresh);
        }
    }
    Ok((old_state, new_state))
}

/// The `TCP_CONNTRACK_CLOSE` case of `nf_conntrack_tcp_packet` for an RST: skip the checks when already closing,
/// "invalid rst" below `td_maxack`, challenge-ACK handling. `Ok((new_state, skip_window))`.
// The branches mirror the kernel's switch / break structure one to one; keep them that way.
#[allow(clippy::if_same_then_else)]
#[inline(never)]
fn rst_close(
    ct: &mut TcpCt,
    dir: usize,
    seg: &Seg<'_>,
    cx: &TcpCtx,
    settings: &Settings,
    old_state: u8,
) -> Result<(u8, bool), TcpVerdict> {
    let other = 1 - dir;
    let mut new_state = CLOSE;
    let mut skip_window = false;

    if tcp_can_early_drop_state(ct.state) {
        skip_window = true;
    } else {
        let mut brk = false;
        if ct.seen[other].flags & IP_CT_TCP_FLAG_MAXACK_SET != 0 && ct.last_index != TCP_SYN_SET {
            let seq = seg.seq;
            let established = ct.state == ESTABLISHED && cx.assured;
            if seq == 0 && !established {
                brk = true;
            } else {
                if before(seq, ct.seen[other].td_maxack) && !settings.tcp_ignore_invalid_rst {
                    return Err(TcpVerdict::Invalid {
                        lower_timeout_s: None,
                    });
                }
                if !established || seq == ct.seen[other].td_maxack {
                    brk = true;
                } else if ct.last_index == TCP_ACK_SET
                    && usize::from(ct.last_dir) == dir
                    && seq == ct.last_end
                {
                    brk = true;
                } else {
                    new_state = old_state;
                }
            }
        }
        if !brk {
            if ((cx.seen_reply && ct.last_index == TCP_SYN_SET)
                || (!cx.assured && ct.last_index == TCP_ACK_SET))
                && seg.ack == ct.last_end
            {
                skip_window = true;
            } else if old_state == SYN_SENT
                && ct.last_index == TCP_ACK_SET
                && ct.last_dir == 1
                && seg.seq == ct.last_ack
            {
                skip_window = true;
            }
        }
    }
    Ok((new_state, skip_window))
}

/// `nf_tcp_handle_invalid` after an out-of-window packet: INVALID, and an ASSURED entry whose FIN/RST answers the
/// peer's FIN/RST drops to the UNACK timeout.
#[cold]
#[inline(never)]
fn handle_invalid(
    ct: &mut TcpCt,
    dir: usize,
    index: u8,
    cx: &TcpCtx,
    settings: &Settings,
) -> TcpVerdict {
    let mut lower = None;
    if cx.assured && !cx.fixed_timeout && (index == TCP_RST_SET || index == TCP_FIN_SET) {
        if usize::from(ct.last_dir) != dir
            && (ct.last_index == TCP_FIN_SET || ct.last_index == TCP_RST_SET)
        {
            let unack = settings.tcp_timeouts[usize::from(UNACK)];
            let expires_s = cx.expires_ns / 1_000_000_000;
            if expires_s >= 120 && cx.expires_ns > u64::from(unack) * 1_000_000_000 {
                lower = Some(unack);
            }
        } else {
            ct.last_index = index;
            ct.last_dir = dir as u8;
        }
    }
    TcpVerdict::Invalid {
        lower_timeout_s: lower,
    }
}

/// The timeout `nf_conntrack_tcp_packet` picks for `new_state` after the window check: RETRANS after too many
/// retransmissions, CLOSE for an RST, UNACK while data is unacknowledged or the window is zero, else the state's.
#[inline(always)]
fn state_timeout(ct: &TcpCt, new_state: u8, index: u8, settings: &Settings) -> u32 {
    let t = &settings.tcp_timeouts;
    let tn = t[usize::from(new_state.min(13))];
    if ct.retrans >= settings.tcp_max_retrans && tn > t[usize::from(RETRANS)] {
        t[usize::from(RETRANS)]
    } else if index == TCP_RST_SET {
        t[usize::from(CLOSE)]
    } else if (ct.seen[0].flags | ct.seen[1].flags) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED != 0
        && tn > t[usize::from(UNACK)]
    {
        t[usize::from(UNACK)]
    } else if ct.last_win == 0 && tn > t[usize::from(RETRANS)] {
        t[usize::from(RETRANS)]
    } else {
        tn
    }
}

/// [`tcp_packet`] for the dominant case, an ACK segment (no SYN, FIN or RST) of a connection that has seen a reply
/// and is ESTABLISHED: `tcp_conntracks[dir][TCP_ACK_SET][ESTABLISHED]` is ESTABLISHED in both directions, so none
/// of the special cases applies and only `tcp_in_window` and the timeout choice run. Returns the refresh timeout
/// (seconds) and whether the entry becomes ASSURED now (it has seen a reply; `assured` is its current IPS_ASSURED),
/// exactly as [`tcp_packet`] would with `TcpVerdict::Refresh { changed: false, .. }`. `None`, having changed
/// nothing, when the segment fails a window check (ignored / invalid / be_liberal) or the sender's window is not
/// set up yet: the caller then runs the general tracker.
#[inline(always)]
pub fn established_ack(
    ct: &mut TcpCt,
    dir: usize,
    seg: &Seg<'_>,
    assured: bool,
    settings: &Settings,
) -> Option<(u32, bool)> {
    if ct.state != ESTABLISHED || seg.flags & (F::SYN | F::FIN | F::RST | F::ACK) != F::ACK {
        return None;
    }
    let dir = dir & 1;
    let sender = ct.seen[dir];
    let receiver = ct.seen[1 - dir];
    if sender.td_maxwin == 0 {
        return None;
    }
    let seq = seg.seq;
    let ack = seg.ack;
    let mut sack = ack;
    let end = seq.wrapping_add(seg.payload_len);
    if receiver.flags & IP_CT_TCP_FLAG_SACK_PERM != 0 && !seg.options.is_empty() {
        tcp_sack(seg.options, &mut sack);
    }
    // tcp_in_window's checks; any failure goes to the general path (log_invalid, IGNORE, seq_over_upper_bound).
    if !before(seq, sender.td_maxend.wrapping_add(1))
        || !before(sack, receiver.td_end.wrapping_add(1))
        || !(receiver.td_maxwin == 0
            || after(
                end,
                sender
                    .td_end
                    .wrapping_sub(receiver.td_maxwin)
                    .wrapping_sub(1),
            ))
        || !after(
            sack,
            receiver
                .td_end
                .wrapping_sub(maxackwindow(&sender))
                .wrapping_sub(1),
        )
    {
        return None;
    }
    let win = u32::from(seg.win).wrapping_shl(u32::from(sender.td_scale));
    window_accept(
        ct,
        dir,
        TCP_ACK_SET,
        true,
        seq,
        ack,
        sack,
        end,
        win,
        seg.win,
    );
    // in_window: the state stays ESTABLISHED.
    ct.last_index = TCP_ACK_SET;
    ct.last_dir = dir as u8;
    Some((
        state_timeout(ct, ESTABLISHED, TCP_ACK_SET, settings),
        !assured,
    ))
}

/// `tcp_new` followed by [`tcp_packet`] for a SYN (no ACK, FIN or RST) that creates an entry: the state goes
/// NONE -> SYN_SENT, `tcp_in_window` initialises the sender from the segment and sets the receiver's `td_maxend` to
/// the window (the ACK-less SYN has ack = sack = 0, so every check passes). Returns the new state and the timeout
/// (seconds) of `TcpVerdict::Refresh { assured: false, changed: true, .. }`, exactly what the two calls give.
#[inline(always)]
pub fn new_syn(seg: &Seg<'_>, settings: &Settings) -> (TcpCt, u32) {
    debug_assert!(seg.flags & (F::SYN | F::FIN | F::RST | F::ACK) == F::SYN);
    let mut ct = TcpCt::default();
    let end = seg.end();
    let win = u32::from(seg.win);
    let s0 = &mut ct.seen[0];
    s0.td_end = end;
    s0.td_maxwin = win.max(1);
    s0.td_maxend = end;
    tcp_options(seg.options, s0);
    ct.seen[1].td_maxend = if win == 0 { 1 } else { win };
    ct.last_index = TCP_SYN_SET;
    ct.last_dir = 0;
    ct.state = SYN_SENT;
    let timeout = state_timeout(&ct, SYN_SENT, TCP_SYN_SET, settings);
    (ct, timeout)
}

/// `nf_conntrack_tcp_packet` after `tcp_error` and `tcp_new` (the caller ran those). `dir`: 0 original, 1 reply.
// The branches mirror the kernel's switch / break structure one to one; keep them that way.
#[allow(
    clippy::collapsible_match,
    clippy::collapsible_if,
    clippy::if_same_then_else
)]
pub fn tcp_packet(
    ct: &mut TcpCt,
    dir: usize,
    seg: &Seg<'_>,
    cx: &TcpCtx,
    settings: &Settings,
) -> TcpVerdict {
    let old_state0 = ct.state;
    let mut old_state = old_state0;
    let index = conntrack_index(seg.flags);
    let mut new_state = TCP_CONNTRACKS[dir][usize::from(index)][usize::from(old_state.min(9))];

    let mut skip_window = false;
    match new_state {
        SYN_SENT | IGNORE => match syn_or_ignored(ct, dir, index, seg, old_state, new_state) {
            Ok((o, n)) => {
                old_state = o;
                new_state = n;
            }
            Err(v) => return v,
        },
        MAX => {
            return TcpVerdict::Invalid {
                lower_timeout_s: None,
            };
        }
        TIME_WAIT => {
            if old_state == LAST_ACK
                && index == TCP_ACK_SET
                && usize::from(ct.last_dir) != dir
                && ct.last_index == TCP_SYN_SET
                && ct.last_flags & IP_CT_EXP_CHALLENGE_ACK != 0
            {
                ct.last_flags &= !IP_CT_EXP_CHALLENGE_ACK;
                return TcpVerdict::AcceptNoRefresh;
            }
        }
        SYN_SENT2 => ct.last_flags |= IP_CT_TCP_SIMULTANEOUS_OPEN,
        SYN_RECV => {
            if dir == 1 && index == TCP_ACK_SET && ct.last_flags & IP_CT_TCP_SIMULTANEOUS_OPEN != 0
            {
                new_state = ESTABLISHED;
            }
        }
        CLOSE => {
            if index == TCP_RST_SET {
                match rst_close(ct, dir, seg, cx, settings, old_state) {
                    Ok((n, skip)) => {
                        new_state = n;
                        skip_window = skip;
                    }
                    Err(v) => return v,
                }
            }
        }
        _ => {}
    }

    if !skip_window {
        match tcp_in_window(ct, dir, index, seg, cx.receiver_offset, settings) {
            WinAction::Ignore => return TcpVerdict::AcceptNoRefresh,
            WinAction::Invalid => return handle_invalid(ct, dir, index, cx, settings),
            WinAction::Accept => {}
        }
    }

    // in_window:
    ct.last_index = index;
    ct.last_dir = dir as u8;
    ct.state = new_state;
    if old_state != new_state && new_state == FIN_WAIT {
        ct.seen[dir].flags |= IP_CT_TCP_FLAG_CLOSE_INIT;
    }
    let t = &settings.tcp_timeouts;
    let mut timeout = state_timeout(ct, new_state, index, settings);
    let changed = new_state != old_state0;
    let mut assured = false;
    if !cx.seen_reply {
        if seg.rst() {
            return TcpVerdict::KillAcct;
        }
        if index == TCP_SYN_SET && old_state == SYN_SENT {
            return TcpVerdict::AcceptNoRefresh;
        }
        if new_state == ESTABLISHED && timeout > t[usize::from(UNACK)] {
            timeout = t[usize::from(UNACK)];
        }
    } else if !cx.assured
        && (old_state == SYN_RECV || old_state == ESTABLISHED)
        && new_state == ESTABLISHED
    {
        assured = true;
    }
    TcpVerdict::Refresh {
        timeout_s: timeout,
        assured,
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, ack: u32, flags: u8, len: u32) -> Seg<'static> {
        Seg {
            seq,
            ack,
            flags,
            win: 65535,
            payload_len: len,
            options: &[],
        }
    }

    fn cx(seen_reply: bool, assured: bool) -> TcpCtx {
        TcpCtx {
            confirmed: true,
            seen_reply,
            assured,
            fixed_timeout: false,
            expires_ns: 100_000_000_000,
            receiver_offset: 0,
        }
    }

    #[test]
    fn flags_and_index() {
        assert!(valid_flags(F::SYN) && valid_flags(F::SYN | F::ACK | F::PSH | F::ECE));
        assert!(
            !valid_flags(F::FIN)
                && !valid_flags(0)
                && !valid_flags(F::SYN | F::FIN)
                && !valid_flags(0xff)
        );
        assert_eq!(conntrack_index(F::RST | F::SYN), TCP_RST_SET);
        assert_eq!(conntrack_index(F::SYN | F::FIN | F::ACK), TCP_SYNACK_SET);
        assert_eq!(conntrack_index(F::FIN | F::ACK), TCP_FIN_SET);
        assert_eq!(conntrack_index(F::PSH), TCP_NONE_SET);
    }

    #[test]
    fn three_way_handshake_data_and_close() {
        let s = Settings::default();
        let mut ct = TcpCt::default();
        let syn = seg(1000, 0, F::SYN, 0);
        assert!(tcp_new(&mut ct, &syn, &s));
        let v = tcp_packet(
            &mut ct,
            0,
            &syn,
            &TcpCtx {
                confirmed: false,
                ..cx(false, false)
            },
            &s,
        );
        assert_eq!(
            v,
            TcpVerdict::Refresh {
                timeout_s: 120,
                assured: false,
                changed: true
            }
        );
        assert_eq!(ct.state, SYN_SENT);
        let v = tcp_packet(
            &mut ct,
            1,
            &seg(5000, 1001, F::SYN | F::ACK, 0),
            &cx(false, false),
            &s,
        );
        assert!(matches!(v, TcpVerdict::Refresh { timeout_s: 60, .. }));
        assert_eq!(ct.state, SYN_RECV);
        let v = tcp_packet(
            &mut ct,
            0,
            &seg(1001, 5001, F::ACK, 0),
            &cx(true, false),
            &s,
        );
        assert_eq!(
            v,
            TcpVerdict::Refresh {
                timeout_s: 432000,
                assured: true,
                changed: true
            }
        );
        // data, unacked → UNACK timeout
        let v = tcp_packet(
            &mut ct,
            0,
            &seg(1001, 5001, F::ACK | F::PSH, 100),
            &cx(true, true),
            &s,
        );
        assert!(matches!(v, TcpVerdict::Refresh { timeout_s: 300, .. }));
        let v = tcp_packet(&mut ct, 1, &seg(5001, 1101, F::ACK, 0), &cx(true, true), &s);
        assert!(matches!(
            v,
            TcpVerdict::Refresh {
                timeout_s: 432000,
                ..
            }
        ));
        // close
        tcp_packet(
            &mut ct,
            0,
            &seg(1101, 5001, F::FIN | F::ACK, 0),
            &cx(true, true),
            &s,
        );
        assert_eq!(ct.state, FIN_WAIT);
        assert!(ct.seen[0].flags & IP_CT_TCP_FLAG_CLOSE_INIT != 0);
        tcp_packet(
            &mut ct,
            1,
            &seg(5001, 1102, F::FIN | F::ACK, 0),
            &cx(true, true),
            &s,
        );
        assert_eq!(ct.state, LAST_ACK);
        let v = tcp_packet(&mut ct, 0, &seg(1102, 5002, F::ACK, 0), &cx(true, true), &s);
        assert_eq!(ct.state, TIME_WAIT);
        assert!(matches!(v, TcpVerdict::Refresh { timeout_s: 120, .. }));
        // A new SYN on TIME_WAIT after a FIN: re-open.
        assert_eq!(
            tcp_packet(&mut ct, 0, &seg(9000, 0, F::SYN, 0), &cx(true, true), &s),
            TcpVerdict::Repeat
        );
    }

    #[test]
    fn table_invalids_and_rst_before_reply() {
        let s = Settings::default();
        let mut ct = TcpCt::default();
        assert!(!tcp_new(&mut ct, &seg(1, 1, F::SYN | F::ACK, 0), &s));
        assert!(!tcp_new(&mut ct, &seg(1, 1, F::RST, 0), &s));
        assert!(!tcp_new(&mut ct, &seg(1, 1, F::FIN | F::ACK, 0), &s));
        let loose_off = Settings {
            tcp_loose: false,
            ..Settings::default()
        };
        assert!(!tcp_new(&mut ct, &seg(1, 1, F::ACK, 0), &loose_off));
        // Pickup.
        let ack = seg(1, 1, F::ACK, 10);
        assert!(tcp_new(&mut ct, &ack, &s));
        assert_eq!(
            ct.seen[1].flags,
            IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL
        );
        let v = tcp_packet(
            &mut ct,
            0,
            &ack,
            &TcpCtx {
                confirmed: false,
                ..cx(false, false)
            },
            &s,
        );
        assert!(matches!(v, TcpVerdict::Refresh { timeout_s: 300, .. }));
        // SYN then RST in the original direction before any reply: kill.
        let mut ct = TcpCt::default();
        let syn = seg(100, 0, F::SYN, 0);
        tcp_new(&mut ct, &syn, &s);
        tcp_packet(&mut ct, 0, &syn, &cx(false, false), &s);
        assert_eq!(
            tcp_packet(&mut ct, 0, &syn, &cx(false, false), &s),
            TcpVerdict::AcceptNoRefresh
        );
        assert_eq!(
            tcp_packet(&mut ct, 0, &seg(101, 0, F::RST, 0), &cx(false, false), &s),
            TcpVerdict::KillAcct
        );
        // An ACK from the original side in SYN_SENT is invalid.
        let mut ct = TcpCt::default();
        tcp_new(&mut ct, &syn, &s);
        tcp_packet(&mut ct, 0, &syn, &cx(false, false), &s);
        assert_eq!(
            tcp_packet(&mut ct, 0, &seg(101, 1, F::ACK, 0), &cx(false, false), &s),
            TcpVerdict::Invalid {
                lower_timeout_s: None
            }
        );
    }

    #[test]
    fn window_checks() {
        let s = Settings::default();
        let mut ct = TcpCt::default();
        let syn = seg(1000, 0, F::SYN, 0);
        tcp_new(&mut ct, &syn, &s);
        tcp_packet(&mut ct, 0, &syn, &cx(false, false), &s);
        tcp_packet(
            &mut ct,
            1,
            &seg(5000, 1001, F::SYN | F::ACK, 0),
            &cx(false, false),
            &s,
        );
        tcp_packet(
            &mut ct,
            0,
            &seg(1001, 5001, F::ACK, 0),
            &cx(true, false),
            &s,
        );
        // ACK for data never sent: "ACK is over upper bound".
        assert_eq!(
            tcp_packet(
                &mut ct,
                0,
                &seg(1001, 900_000, F::ACK, 0),
                &cx(true, true),
                &s
            ),
            TcpVerdict::Invalid {
                lower_timeout_s: None
            }
        );
        // Far beyond the window: "SEQ is over upper bound".
        assert_eq!(
            tcp_packet(
                &mut ct,
                0,
                &seg(1001 + 10_000_000, 5001, F::ACK, 0),
                &cx(true, true),
                &s
            ),
            TcpVerdict::Invalid {
                lower_timeout_s: None
            }
        );
        // The same with be_liberal is accepted.
        let lib = Settings {
            tcp_be_liberal: true,
            ..Settings::default()
        };
        assert!(matches!(
            tcp_packet(
                &mut ct,
                0,
                &seg(1001 + 10_000_000, 5001, F::ACK, 0),
                &cx(true, true),
                &lib
            ),
            TcpVerdict::Refresh { .. }
        ));
    }

    #[test]
    fn options_parse_like_kernel() {
        let mut d = TcpDir::default();
        tcp_options(&[2, 4, 5, 0xb4, 1, 3, 3, 20, 4, 2, 0, 0], &mut d);
        assert_eq!(d.td_scale, 14);
        assert_eq!(
            d.flags,
            IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM
        );
        let mut sack = 100;
        tcp_sack(&[1, 1, 5, 10, 0, 0, 0, 50, 0, 0, 0, 200], &mut sack);
        assert_eq!(sack, 200);
    }
}
