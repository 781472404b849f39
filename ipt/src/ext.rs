//! The defaults and option encodings of the supported extensions, as iptables 1.8.9's `libxt_*`
//! apply them: what `-m NAME` / `-j NAME` start from, how each option fills the payload, and the
//! checks iptables makes before it sends a rule. The iptables-restore parser (`parse`) and the
//! compiler's iptables lowering both build `Match`/`Target` values through these functions, so a
//! rule lowered from nft is the rule iptables-restore would build from its iptables-save text.
#![forbid(unsafe_code)]

use crate::layout::*;
use crate::model::*;

impl Match {
    /// What `-m NAME` starts from before its options (`None`: not a supported match).
    pub fn default_of(name: &str) -> Option<Match> {
        Some(match name {
            "tcp" => Match::Tcp(XtTcp::default()),
            "udp" => Match::Udp(XtUdp::default()),
            "icmp" => Match::Icmp(IptIcmp {
                icmp_type: 0xFF,
                code: [0, 0xFF],
                invflags: 0,
            }),
            "conntrack" => Match::Conntrack(ConntrackMtInfo3::default()),
            "state" => Match::Conntrack(ConntrackMtInfo3 {
                match_flags: XT_CONNTRACK_STATE_ALIAS,
                ..Default::default()
            }),
            "multiport" => Match::Multiport(MultiportV1::default()),
            "mark" => Match::Mark(MarkMtInfo1::default()),
            "comment" => Match::Comment(Vec::new()),
            "limit" => Match::Limit(RateInfo {
                avg: XT_LIMIT_SCALE * 3600 / 3,
                burst: XT_LIMIT_BURST_DEFAULT,
            }),
            "length" => Match::Length(LengthInfo {
                min: 0,
                max: 0,
                invert: 0,
            }),
            "iprange" => Match::Iprange(IprangeMtInfo::default()),
            "ttl" => Match::Ttl(TtlInfo {
                mode: IPT_TTL_EQ,
                ttl: 0,
            }),
            "pkttype" => Match::Pkttype(PkttypeInfo {
                pkttype: 0,
                invert: 0,
            }),
            "connmark" => Match::Connmark(MarkMtInfo1::default()),
            "dscp" => Match::Dscp(DscpInfo { dscp: 0, invert: 0 }),
            "mac" => Match::Mac(MacInfo {
                srcaddr: [0; 6],
                invert: 0,
            }),
            "owner" => Match::Owner(OwnerInfo::default()),
            "statistic" => Match::Statistic(StatisticInfo::default()),
            "addrtype" => Match::Addrtype(AddrtypeInfoV1::default()),
            "recent" => Match::Recent(Box::default()),
            _ => return None,
        })
    }
}

impl Target {
    /// What `-j NAME` starts from before its options, for the standard verdicts and the
    /// supported extension targets (`None`: a chain name or an unsupported target).
    pub fn default_of(name: &str) -> Option<Target> {
        let nat = |kind, revision| Target::Nat {
            kind,
            revision,
            range: NatRange::default(),
            rangesize: 1,
        };
        Some(match name {
            "ACCEPT" => Target::Accept,
            "DROP" => Target::Drop,
            "QUEUE" => Target::Queue,
            "RETURN" => Target::Return,
            "REJECT" => Target::Reject(IPT_ICMP_PORT_UNREACHABLE),
            "LOG" => Target::Log(LogInfo {
                level: 4,
                logflags: 0,
                prefix: Vec::new(),
            }),
            "MARK" => Target::Mark(MarkTgInfo2 { mark: 0, mask: 0 }),
            "CONNMARK" => Target::Connmark {
                revision: 2,
                info: ConnmarkTgInfo {
                    ctmark: 0,
                    ctmask: 0,
                    nfmask: 0,
                    shift_dir: 0,
                    shift_bits: 0,
                    mode: 0xFF,
                },
            },
            "CT" => Target::Ct {
                revision: 2,
                info: CtTargetInfo::default(),
            },
            "NFQUEUE" => Target::Nfqueue(NfqInfoV3 {
                queuenum: 0,
                queues_total: 1,
                flags: 0,
            }),
            "NOTRACK" => Target::Ct {
                revision: 2,
                info: CtTargetInfo {
                    flags: XT_CT_NOTRACK | XT_CT_NOTRACK_ALIAS,
                    ..Default::default()
                },
            },
            // The revisions iptables 1.8.9 sends: DNAT 2 (`nf_nat_range2`), the others 0.
            "DNAT" => nat(NatKind::Dnat, 2),
            "SNAT" => nat(NatKind::Snat, 0),
            "MASQUERADE" => nat(NatKind::Masquerade, 0),
            "REDIRECT" => nat(NatKind::Redirect, 0),
            _ => return None,
        })
    }
}

fn set_inv8(v: &mut u8, b: u8, inv: bool) {
    if inv { *v |= b } else { *v &= !b }
}

impl XtTcp {
    /// `[!] --sport lo[:hi]`.
    pub fn set_sport(&mut self, r: [u16; 2], inv: bool) {
        self.spts = r;
        set_inv8(&mut self.invflags, XT_TCP_INV_SRCPT, inv);
    }
    /// `[!] --dport lo[:hi]`.
    pub fn set_dport(&mut self, r: [u16; 2], inv: bool) {
        self.dpts = r;
        set_inv8(&mut self.invflags, XT_TCP_INV_DSTPT, inv);
    }
    /// `[!] --tcp-flags mask cmp` (`--syn` is [`TCP_SYN`]).
    pub fn set_flags(&mut self, mask: u8, cmp: u8, inv: bool) {
        self.flg_mask = mask;
        self.flg_cmp = cmp;
        set_inv8(&mut self.invflags, XT_TCP_INV_FLAGS, inv);
    }
    /// `[!] --tcp-option n`.
    pub fn set_option(&mut self, option: u8, inv: bool) {
        self.option = option;
        set_inv8(&mut self.invflags, XT_TCP_INV_OPTION, inv);
    }
}

/// `--syn` of libxt_tcp: `--tcp-flags FIN,SYN,RST,ACK SYN` as (mask, cmp).
pub const TCP_SYN: (u8, u8) = (0x17, 0x02);

impl XtUdp {
    /// `[!] --sport lo[:hi]`.
    pub fn set_sport(&mut self, r: [u16; 2], inv: bool) {
        self.spts = r;
        set_inv8(&mut self.invflags, XT_UDP_INV_SRCPT, inv);
    }
    /// `[!] --dport lo[:hi]`.
    pub fn set_dport(&mut self, r: [u16; 2], inv: bool) {
        self.dpts = r;
        set_inv8(&mut self.invflags, XT_UDP_INV_DSTPT, inv);
    }
}

impl IptIcmp {
    /// `[!] --icmp-type type[/code]`: a type alone matches codes 0..=255.
    pub fn set_type(&mut self, icmp_type: u8, code: Option<[u8; 2]>, inv: bool) {
        self.icmp_type = icmp_type;
        self.code = code.unwrap_or([0, 0xFF]);
        set_inv8(&mut self.invflags, IPT_ICMP_INV, inv);
    }
}

impl ConntrackMtInfo3 {
    fn set_flag(&mut self, b: u16, inv: bool) {
        self.match_flags |= b;
        if inv {
            self.invert_flags |= b;
        } else {
            self.invert_flags &= !b;
        }
    }
    /// `[!] --ctstate` (`--state` of `-m state`) with `XT_CONNTRACK_STATE_*` bits.
    pub fn set_state(&mut self, state_mask: u16, inv: bool) {
        self.state_mask = state_mask;
        self.set_flag(XT_CONNTRACK_STATE, inv);
    }
    /// `[!] --ctstatus` with `IPS_*` bits.
    pub fn set_status(&mut self, status_mask: u16, inv: bool) {
        self.status_mask = status_mask;
        self.set_flag(XT_CONNTRACK_STATUS, inv);
    }
    /// `--ctdir ORIGINAL|REPLY`.
    pub fn set_direction(&mut self, reply: bool) {
        self.match_flags |= XT_CONNTRACK_DIRECTION;
        if reply {
            self.invert_flags |= XT_CONNTRACK_DIRECTION;
        } else {
            self.invert_flags &= !XT_CONNTRACK_DIRECTION;
        }
    }
    /// `[!] --ctproto`, `--ctexpire`, the address and port options: set `bit` in the match
    /// flags (and in the invert flags if inverted).
    pub fn set_option(&mut self, bit: u16, inv: bool) {
        self.set_flag(bit, inv);
    }
}

impl MultiportV1 {
    /// `[!] --sports|--dports|--ports` (`flags` = `XT_MULTIPORT_*`): each item a port or a
    /// range (`lo:hi`, which takes two of the 15 slots even when `lo == hi`).
    pub fn set_ports(
        &mut self,
        flags: u8,
        ports: &[(u16, Option<u16>)],
        inv: bool,
    ) -> Result<(), &'static str> {
        self.flags = flags;
        self.invert = inv as u8;
        let mut i = 0usize;
        for (lo, hi) in ports {
            let need = if hi.is_some() { 2 } else { 1 };
            if i + need > XT_MULTI_PORTS {
                return Err("too many ports specified");
            }
            self.ports[i] = *lo;
            if let Some(h) = hi {
                self.pflags[i] = 1;
                self.ports[i + 1] = *h;
            }
            i += need;
        }
        self.count = i as u8;
        Ok(())
    }
}

impl IprangeMtInfo {
    /// `[!] --src-range lo-hi`.
    pub fn set_src(&mut self, lo: [u8; 4], hi: [u8; 4], inv: bool) {
        (self.src_min, self.src_max) = (lo, hi);
        self.flags |= IPRANGE_SRC;
        if inv {
            self.flags |= IPRANGE_SRC_INV;
        }
    }
    /// `[!] --dst-range lo-hi`.
    pub fn set_dst(&mut self, lo: [u8; 4], hi: [u8; 4], inv: bool) {
        (self.dst_min, self.dst_max) = (lo, hi);
        self.flags |= IPRANGE_DST;
        if inv {
            self.flags |= IPRANGE_DST_INV;
        }
    }
}

/// The option names of libxt_recent's `XT_RECENT_*` bits, as errors name them.
fn recent_opt(bit: u8) -> &'static str {
    match bit {
        XT_RECENT_SET => "--set",
        XT_RECENT_CHECK => "--rcheck",
        XT_RECENT_UPDATE => "--update",
        XT_RECENT_REMOVE => "--remove",
        XT_RECENT_TTL => "--rttl",
        _ => "--reap",
    }
}

impl RecentInfoV1 {
    fn ops(&self) -> u8 {
        self.check_set & (XT_RECENT_SET | XT_RECENT_CHECK | XT_RECENT_UPDATE | XT_RECENT_REMOVE)
    }
    /// `[!] --set|--rcheck|--update|--remove` (`bit`: `XT_RECENT_*`): one of them only
    /// (libxt_recent's `.excl = F_ANY_OP`).
    pub fn set_op(&mut self, bit: u8, inv: bool) -> Result<(), String> {
        if self.ops() != 0 {
            return Err(format!(
                "recent: {} cannot be used together with {}",
                recent_opt(bit),
                recent_opt(self.ops())
            ));
        }
        self.check_set |= bit;
        if inv {
            self.invert = 1;
        }
        Ok(())
    }
    /// `--rttl`: not after `--set` or `--remove` (`.excl = F_SET | F_REMOVE`).
    pub fn set_rttl(&mut self) -> Result<(), String> {
        let o = self.check_set & (XT_RECENT_SET | XT_RECENT_REMOVE);
        if o != 0 {
            return Err(format!(
                "recent: --rttl cannot be used together with {}",
                recent_opt(o)
            ));
        }
        self.check_set |= XT_RECENT_TTL;
        Ok(())
    }
    /// `--seconds N` (at least 1).
    pub fn set_seconds(&mut self, n: u32) -> Result<(), String> {
        if n == 0 {
            return Err("recent: --seconds: value 0 out of range (at least 1)".into());
        }
        self.seconds = n;
        Ok(())
    }
    /// `--rsource` (false) / `--rdest` (true).
    pub fn set_side(&mut self, dest: bool) {
        self.side = if dest {
            XT_RECENT_DEST
        } else {
            XT_RECENT_SOURCE
        };
    }
}

/// libxt_limit's default `--limit-burst`.
pub const XT_LIMIT_BURST_DEFAULT: u32 = 5;
/// libxt_limit's largest `--limit-burst`.
pub const XT_LIMIT_BURST_MAX: u32 = 10000;

/// `--limit N/unit` of libxt_limit as `rateinfo.avg`: `XT_LIMIT_SCALE × unit_secs / N`.
pub fn limit_avg(n: u64, unit_secs: u64) -> Result<u32, &'static str> {
    if n == 0 {
        return Err("bad rate");
    }
    let v = XT_LIMIT_SCALE as u64 * unit_secs / n;
    if v == 0 {
        return Err("rate too fast");
    }
    u32::try_from(v).map_err(|_| "bad rate")
}

/// libxt_LOG's `--log-level` names.
pub const LOG_LEVELS: [(&str, u8); 10] = [
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("error", 3),
    ("err", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

/// libxt_LOG's longest `--log-prefix`.
pub const LOG_PREFIX_MAX: usize = 29;

/// libxt_comment's longest `--comment`.
pub const COMMENT_MAX: usize = 255;

impl MarkTgInfo2 {
    /// `--set-xmark value/mask`: mark = (mark & ~mask) ^ value.
    pub fn xset(mark: u32, mask: u32) -> Self {
        MarkTgInfo2 { mark, mask }
    }
    /// `--set-mark value/mask`.
    pub fn set(mark: u32, mask: u32) -> Self {
        MarkTgInfo2 {
            mark,
            mask: mark | mask,
        }
    }
    /// `--and-mark bits`.
    pub fn and(v: u32) -> Self {
        MarkTgInfo2 { mark: 0, mask: !v }
    }
    /// `--or-mark bits`.
    pub fn or(v: u32) -> Self {
        MarkTgInfo2 { mark: v, mask: v }
    }
    /// `--xor-mark bits`.
    pub fn xor(v: u32) -> Self {
        MarkTgInfo2 { mark: v, mask: 0 }
    }
}

impl ConnmarkTgInfo {
    /// `--set-xmark value/mask` (`MarkTgInfo2`'s value/mask for the ct mark).
    pub fn set_xmark(&mut self, x: MarkTgInfo2) {
        self.mode = XT_CONNMARK_SET;
        self.ctmark = x.mark;
        self.ctmask = x.mask;
        self.nfmask = u32::MAX;
    }
    /// `--save-mark` (`save`) or `--restore-mark`: the masks default to all ones.
    pub fn copy_mark(&mut self, save: bool) {
        self.mode = if save {
            XT_CONNMARK_SAVE
        } else {
            XT_CONNMARK_RESTORE
        };
        if self.ctmask == 0 && self.nfmask == 0 {
            self.ctmask = u32::MAX;
            self.nfmask = u32::MAX;
        }
    }
}

impl NfqInfoV3 {
    /// `--queue-num n`.
    pub fn set_num(&mut self, n: u16) {
        self.queuenum = n;
        self.queues_total = 1;
    }
    /// `--queue-balance lo:hi`; `false` (and nothing set) unless `lo < hi`. As iptables 1.8.9:
    /// 0:65535 wraps to 0 queues, which the kernel refuses.
    pub fn set_balance(&mut self, lo: u16, hi: u16) -> bool {
        if lo >= hi {
            return false;
        }
        self.queuenum = lo;
        self.queues_total = (hi - lo).wrapping_add(1);
        true
    }
}

impl NatKind {
    /// Whether the target takes `--persistent` (SNAT and DNAT do, MASQUERADE and REDIRECT not).
    pub fn takes_persistent(self) -> bool {
        matches!(self, NatKind::Snat | NatKind::Dnat)
    }
}

impl NatRange {
    /// `--to-source`/`--to-destination ADDR[-ADDR][:PORT[-PORT]]`: the flags outside the ones
    /// the option sets (`--random`, `--persistent`) stay. Ports must be `0 < lo <= hi`.
    pub fn set_to(
        &mut self,
        addrs: Option<([u8; 4], [u8; 4])>,
        ports: Option<(u16, u16)>,
    ) -> Result<(), &'static str> {
        let keep = self.flags
            & !(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED | NF_NAT_RANGE_PROTO_OFFSET);
        let mut r = NatRange::default();
        if let Some((lo, hi)) = addrs {
            r.flags |= NF_NAT_RANGE_MAP_IPS;
            r.min_addr = lo;
            r.max_addr = hi;
        }
        if let Some((lo, hi)) = ports {
            if lo > hi || lo == 0 {
                return Err("bad port range");
            }
            r.flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
            r.min_proto = lo;
            r.max_proto = hi;
        }
        r.flags |= keep;
        *self = r;
        Ok(())
    }
    /// `--to-ports lo[-hi]` of MASQUERADE/REDIRECT (the rule's protocol must have ports:
    /// [`check_port_proto`]).
    pub fn set_to_ports(&mut self, lo: u16, hi: u16) -> Result<(), &'static str> {
        if lo > hi {
            return Err("bad port range");
        }
        self.flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
        self.min_proto = lo;
        self.max_proto = hi;
        Ok(())
    }
}

/// The protocols with ports (TCP, UDP, SCTP, DCCP, UDP-Lite) that `--to-ports`, multiport and
/// NAT port ranges need.
fn has_ports(ip: &IpMatch) -> bool {
    matches!(ip.exact_proto(), Some(6 | 17 | 132 | 33 | 136))
}

/// `--to-ports` needs a protocol with ports.
pub fn check_port_proto(ip: &IpMatch) -> Result<(), String> {
    if has_ports(ip) {
        Ok(())
    } else {
        Err("Need TCP, UDP, SCTP or DCCP with port specification".into())
    }
}

/// The netmask of a prefix length (`/len` of `-s`/`-d`; lengths over 32 count as 32).
pub fn prefix_mask(len: u8) -> [u8; 4] {
    let l = u32::from(len.min(32));
    let v = if l == 0 { 0 } else { u32::MAX << (32 - l) };
    v.to_be_bytes()
}

impl CtTargetInfo {
    /// `--notrack` of `-j CT`.
    pub fn set_notrack(&mut self) {
        self.flags |= XT_CT_NOTRACK;
    }
}

/// `! -p 0` never matches: iptables refuses it.
pub fn check_proto(proto: u16, inv: bool) -> Result<(), String> {
    if proto == 0 && inv {
        return Err("rule would never match protocol".into());
    }
    Ok(())
}

/// An interface name for `-i`/`-o` (with its `+`) must fit IFNAMSIZ with its NUL.
pub fn check_iface(n: &str) -> Result<(), String> {
    if n.len() >= IFNAMSIZ {
        return Err(format!(
            "interface name `{n}` must be shorter than IFNAMSIZ ({IFNAMSIZ})"
        ));
    }
    Ok(())
}

/// The final checks of the extensions (`x6_fcheck` and friends) once a rule is complete.
pub fn check_rule(rule: &Rule) -> Result<(), String> {
    for m in &rule.matches {
        check_match(m, &rule.ip)?;
    }
    check_target(&rule.target, &rule.ip)
}

fn check_match(m: &Match, ip: &IpMatch) -> Result<(), String> {
    match m {
        // libxt_statistic's statistic_check (every is N - 1 by now)
        Match::Statistic(st) if st.mode == XT_STATISTIC_MODE_NTH && st.packet > st.every => {
            return Err("the --packet p must be 0 <= p <= n-1".into());
        }
        Match::Multiport(mp) => {
            if !has_ports(ip) {
                return Err(
                    "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"
                        .into(),
                );
            }
            if mp.count == 0 {
                return Err("multiport: no ports specified".into());
            }
        }
        Match::Conntrack(c) if c.match_flags & !XT_CONNTRACK_STATE_ALIAS == 0 => {
            return Err("conntrack: at least one option is required".into());
        }
        // libxt_recent's recent_check, and `--reap`'s `.also = F_SECONDS`
        Match::Recent(r) if r.ops() == 0 => {
            return Err(
                "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'"
                    .into(),
            );
        }
        Match::Recent(r) if r.check_set & XT_RECENT_REAP != 0 && r.seconds == 0 => {
            return Err("recent: option \"--reap\" also requires \"--seconds\"".into());
        }
        _ => {}
    }
    Ok(())
}

fn check_target(t: &Target, ip: &IpMatch) -> Result<(), String> {
    match t {
        Target::Connmark { info, .. } if info.mode == 0xFF => {
            Err("CONNMARK target: No operation specified".into())
        }
        Target::Nat {
            kind: NatKind::Snat,
            range,
            ..
        } if range.flags & (NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED) == 0 => {
            Err("SNAT: you must specify --to-source".into())
        }
        Target::Nat {
            kind: NatKind::Dnat,
            range,
            ..
        } if range.flags & (NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED) == 0 => {
            Err("DNAT: you must specify --to-destination".into())
        }
        Target::Nat {
            kind: NatKind::Masquerade | NatKind::Redirect,
            range,
            ..
        } if range.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0 => check_port_proto(ip),
        Target::Nat {
            kind: NatKind::Snat | NatKind::Dnat,
            range,
            ..
        } if range.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0
            && !has_ports(ip)
            && ip.exact_proto() != Some(1) =>
        {
            Err("Need TCP, UDP, SCTP or DCCP with port specification".into())
        }
        _ => Ok(()),
    }
}
