//! The structured form of one iptables table: `Table` → built-in chains (hook, policy, rules) and
//! user chains (name, rules); `Rule` = `IpMatch` + `Match`es + one `Target`. This is what
//! `encode` lays out byte-identically to libiptc, what `decode` rebuilds from a blob, what
//! `save` prints and `parse_save` reads.
#![forbid(unsafe_code)]

use crate::layout::*;
pub use nfr_vm::Hook;

/// Packet and byte counters of an entry (`struct xt_counters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub pcnt: u64,
    pub bcnt: u64,
}

/// `valid_hooks` of a known table (`nfr_proto::hook::IPT_TABLES`).
pub fn table_valid_hooks(name: &str) -> Option<u32> {
    nfr_proto::hook::IptTable::by_name(name).map(|t| t.valid_hooks)
}

/// iptables' name of a hook's built-in chain.
pub fn hook_chain_name(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "PREROUTING",
        Hook::Input => "INPUT",
        Hook::Forward => "FORWARD",
        Hook::Output => "OUTPUT",
        Hook::Postrouting => "POSTROUTING",
    }
}

/// The hook of a built-in chain name.
pub fn chain_name_hook(name: &str) -> Option<Hook> {
    Hook::ALL.into_iter().find(|h| hook_chain_name(*h) == name)
}

/// A built-in chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

/// The `ipt_ip` part of a rule. `flags` holds `IPT_F_FRAG` (and any other raw bits of a decoded
/// blob except `IPT_F_GOTO`, which `Target::Goto` carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpMatch {
    pub ip: IptIp,
}

impl IpMatch {
    /// Set the source address/prefix (address masked like iptables does).
    pub fn set_src(&mut self, addr: [u8; 4], mask: [u8; 4], invert: bool) {
        self.ip.smsk = mask;
        self.ip.src = and4(addr, mask);
        set_bit(&mut self.ip.invflags, IPT_INV_SRCIP, invert);
    }
    /// Set the destination address/prefix.
    pub fn set_dst(&mut self, addr: [u8; 4], mask: [u8; 4], invert: bool) {
        self.ip.dmsk = mask;
        self.ip.dst = and4(addr, mask);
        set_bit(&mut self.ip.invflags, IPT_INV_DSTIP, invert);
    }
    /// `-i name` (`name+` = prefix wildcard).
    pub fn set_iniface(&mut self, name: &str, invert: bool) {
        (self.ip.iniface, self.ip.iniface_mask) = iface_and_mask(name);
        set_bit(&mut self.ip.invflags, IPT_INV_VIA_IN, invert);
    }
    /// `-o name`.
    pub fn set_outiface(&mut self, name: &str, invert: bool) {
        (self.ip.outiface, self.ip.outiface_mask) = iface_and_mask(name);
        set_bit(&mut self.ip.invflags, IPT_INV_VIA_OUT, invert);
    }
    /// `-p proto`.
    pub fn set_proto(&mut self, proto: u16, invert: bool) {
        self.ip.proto = proto;
        set_bit(&mut self.ip.invflags, IPT_INV_PROTO, invert);
    }
    /// `-f`.
    pub fn set_frag(&mut self, invert: bool) {
        self.ip.flags |= IPT_F_FRAG;
        set_bit(&mut self.ip.invflags, IPT_INV_FRAG, invert);
    }
    /// The protocol if it is set and not inverted (what proto-restricted matches need).
    pub fn exact_proto(&self) -> Option<u16> {
        (self.ip.proto != 0 && self.ip.invflags & IPT_INV_PROTO == 0).then_some(self.ip.proto)
    }
}

fn and4(a: [u8; 4], m: [u8; 4]) -> [u8; 4] {
    [a[0] & m[0], a[1] & m[1], a[2] & m[2], a[3] & m[3]]
}

fn set_bit(v: &mut u8, bit: u8, on: bool) {
    if on { *v |= bit } else { *v &= !bit }
}

/// `xtables_parse_interface`: the name bytes and the mask (0xff × (len+1), or × (len-1) for `+`).
pub fn iface_and_mask(name: &str) -> ([u8; IFNAMSIZ], [u8; IFNAMSIZ]) {
    let mut n = [0u8; IFNAMSIZ];
    let mut m = [0u8; IFNAMSIZ];
    let b = name.as_bytes();
    let len = b.len().min(IFNAMSIZ - 1);
    n[..len].copy_from_slice(&b[..len]);
    if len == 0 {
        return (n, m);
    }
    let ml = if b[len - 1] == b'+' {
        len - 1
    } else {
        (len + 1).min(IFNAMSIZ)
    };
    m[..ml].fill(0xff);
    (n, m)
}

/// A match of a rule. The typed variants are the extensions nfc understands; anything else (or a
/// typed payload that would not re-encode byte-identically) is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `-m tcp` (rev 0).
    Tcp(XtTcp),
    /// `-m udp` (rev 0).
    Udp(XtUdp),
    /// `-m icmp` (rev 0).
    Icmp(IptIcmp),
    /// `-m conntrack` / `-m state` (conntrack rev 3; `-m state` sets XT_CONNTRACK_STATE_ALIAS).
    Conntrack(ConntrackMtInfo3),
    /// `-m multiport` (rev 1).
    Multiport(MultiportV1),
    /// `-m mark` (rev 1).
    Mark(MarkMtInfo1),
    /// `-m comment` (rev 0): the comment bytes up to the NUL (≤ 255).
    Comment(Vec<u8>),
    /// `-m limit` (rev 0).
    Limit(RateInfo),
    /// `-m length` (rev 0).
    Length(LengthInfo),
    /// `-m iprange` (rev 1).
    Iprange(IprangeMtInfo),
    /// `-m ttl` (rev 0).
    Ttl(TtlInfo),
    /// `-m pkttype` (rev 0).
    Pkttype(PkttypeInfo),
    /// `-m connmark` (rev 1).
    Connmark(ConnmarkMtInfo1),
    /// `-m dscp` (rev 0).
    Dscp(DscpInfo),
    /// `-m mac` (rev 0).
    Mac(MacInfo),
    /// `-m owner` (rev 1).
    Owner(OwnerInfo),
    /// `-m statistic` (rev 0).
    Statistic(StatisticInfo),
    /// `-m recent` (rev 1; boxed: its name field is 200 bytes).
    Recent(Box<RecentInfoV1>),
    /// `-m addrtype` (rev 1).
    Addrtype(AddrtypeInfoV1),
    /// Any other match, as raw data (already XT_ALIGN padded when it came from a blob).
    Other {
        name: String,
        revision: u8,
        data: Vec<u8>,
    },
}

impl Match {
    /// The extension name.
    pub fn name(&self) -> &str {
        match self {
            Match::Tcp(_) => "tcp",
            Match::Udp(_) => "udp",
            Match::Icmp(_) => "icmp",
            Match::Conntrack(_) => "conntrack",
            Match::Multiport(_) => "multiport",
            Match::Mark(_) => "mark",
            Match::Comment(_) => "comment",
            Match::Limit(_) => "limit",
            Match::Length(_) => "length",
            Match::Iprange(_) => "iprange",
            Match::Ttl(_) => "ttl",
            Match::Pkttype(_) => "pkttype",
            Match::Connmark(_) => "connmark",
            Match::Dscp(_) => "dscp",
            Match::Mac(_) => "mac",
            Match::Owner(_) => "owner",
            Match::Statistic(_) => "statistic",
            Match::Recent(_) => "recent",
            Match::Addrtype(_) => "addrtype",
            Match::Other { name, .. } => name,
        }
    }
    /// The revision written to the blob.
    pub fn revision(&self) -> u8 {
        match self {
            Match::Conntrack(_) => 3,
            Match::Multiport(_)
            | Match::Mark(_)
            | Match::Iprange(_)
            | Match::Connmark(_)
            | Match::Owner(_)
            | Match::Addrtype(_)
            | Match::Recent(_) => 1,
            Match::Other { revision, .. } => *revision,
            _ => 0,
        }
    }
    /// The data bytes (XT_ALIGN padded).
    pub fn data(&self) -> Vec<u8> {
        match self {
            Match::Tcp(m) => m.encode(),
            Match::Udp(m) => m.encode(),
            Match::Icmp(m) => m.encode(),
            Match::Conntrack(m) => m.encode(),
            Match::Multiport(m) => m.encode(),
            Match::Mark(m) => m.encode(),
            Match::Comment(c) => {
                let mut o = Out::zeroed(XT_COMMENT_SIZE);
                o.str_field(0, c, XT_COMMENT_SIZE);
                o.0
            }
            Match::Limit(m) => m.encode(),
            Match::Length(m) => m.encode(),
            Match::Iprange(m) => m.encode(),
            Match::Ttl(m) => m.encode(),
            Match::Pkttype(m) => m.encode(),
            Match::Connmark(m) => m.encode(),
            Match::Dscp(m) => m.encode(),
            Match::Mac(m) => m.encode(),
            Match::Owner(m) => m.encode(),
            Match::Statistic(m) => m.encode(),
            Match::Recent(m) => m.encode(),
            Match::Addrtype(m) => m.encode(),
            Match::Other { data, .. } => data.clone(),
        }
    }
    /// The whole `xt_entry_match` (header + data).
    pub fn to_bytes(&self) -> Vec<u8> {
        xt_blob(self.name(), self.revision(), &self.data())
    }
    /// Build from a blob's match (name, revision, data after the header). Falls back to `Other`.
    pub fn from_parts(name: &str, revision: u8, data: &[u8]) -> Match {
        let typed = match (name, revision, data.len()) {
            ("tcp", 0, 16) => XtTcp::decode(data).map(Match::Tcp),
            ("udp", 0, 16) => XtUdp::decode(data).map(Match::Udp),
            ("icmp", 0, 8) => IptIcmp::decode(data).map(Match::Icmp),
            ("conntrack", 3, 168) => ConntrackMtInfo3::decode(data).map(Match::Conntrack),
            ("multiport", 1, 48) => MultiportV1::decode(data).map(Match::Multiport),
            ("mark", 1, 16) => MarkMtInfo1::decode(data).map(Match::Mark),
            ("comment", 0, 256) => cstr(data, 0, 256).map(|c| Match::Comment(c.to_vec())),
            ("limit", 0, 40) => RateInfo::decode(data).map(Match::Limit),
            ("length", 0, 8) => LengthInfo::decode(data).map(Match::Length),
            ("iprange", 1, 72) => IprangeMtInfo::decode(data).map(Match::Iprange),
            ("ttl", 0, 8) => TtlInfo::decode(data).map(Match::Ttl),
            ("pkttype", 0, 8) => PkttypeInfo::decode(data).map(Match::Pkttype),
            ("connmark", 1, 16) => MarkMtInfo1::decode(data).map(Match::Connmark),
            ("dscp", 0, 8) => DscpInfo::decode(data).map(Match::Dscp),
            ("mac", 0, 16) => MacInfo::decode(data).map(Match::Mac),
            ("owner", 1, 24) => OwnerInfo::decode(data).map(Match::Owner),
            ("statistic", 0, 24) => StatisticInfo::decode(data).map(Match::Statistic),
            ("recent", 1, 232) => RecentInfoV1::decode(data).map(|r| Match::Recent(Box::new(r))),
            ("addrtype", 1, 8) => AddrtypeInfoV1::decode(data).map(Match::Addrtype),
            _ => None,
        };
        match typed {
            Some(m) if m.data() == data => m,
            _ => Match::Other {
                name: name.to_string(),
                revision,
                data: data.to_vec(),
            },
        }
    }
}

/// Which NAT target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    Snat,
    Dnat,
    Masquerade,
    Redirect,
}

impl NatKind {
    /// Target name.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Snat => "SNAT",
            NatKind::Dnat => "DNAT",
            NatKind::Masquerade => "MASQUERADE",
            NatKind::Redirect => "REDIRECT",
        }
    }
}

/// The target of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard target, verdict ACCEPT.
    Accept,
    /// DROP.
    Drop,
    /// QUEUE.
    Queue,
    /// RETURN.
    Return,
    /// `-j chain`: jump to a user chain (or, in decoded blobs, a built-in chain's first entry).
    Jump(String),
    /// `-g chain`.
    Goto(String),
    /// No `-j`: standard target whose verdict is the next entry.
    Fallthrough,
    /// `-j REJECT --reject-with` (`IPT_ICMP_*` / `IPT_TCP_RESET`).
    Reject(u32),
    /// `-j LOG`.
    Log(LogInfo),
    /// `-j MARK` (rev 2).
    Mark(MarkTgInfo2),
    /// `-j CONNMARK` (rev 1 or 2).
    Connmark { revision: u8, info: ConnmarkTgInfo },
    /// `-j NFQUEUE` (rev 3).
    Nfqueue(NfqInfoV3),
    /// `-j CT` (rev 0/1/2; `-j NOTRACK` = CT with XT_CT_NOTRACK | XT_CT_NOTRACK_ALIAS).
    Ct { revision: u8, info: CtTargetInfo },
    /// SNAT/DNAT/MASQUERADE/REDIRECT; `rangesize` only matters for revision 0 (normally 1).
    Nat {
        kind: NatKind,
        revision: u8,
        range: NatRange,
        rangesize: u32,
    },
    /// Any other target, raw.
    Other {
        name: String,
        revision: u8,
        data: Vec<u8>,
    },
}

impl Target {
    /// The standard verdict for ACCEPT/DROP/QUEUE/RETURN.
    pub fn std_verdict(&self) -> Option<i32> {
        match self {
            Target::Accept => Some(VERDICT_ACCEPT),
            Target::Drop => Some(VERDICT_DROP),
            Target::Queue => Some(VERDICT_QUEUE),
            Target::Return => Some(XT_RETURN),
            _ => None,
        }
    }
    /// True for the targets carried by the standard target (name "").
    pub fn is_standard(&self) -> bool {
        matches!(
            self,
            Target::Accept
                | Target::Drop
                | Target::Queue
                | Target::Return
                | Target::Jump(_)
                | Target::Goto(_)
                | Target::Fallthrough
        )
    }
    /// Name, revision and data of an extension target (`None` for standard ones).
    pub fn ext_parts(&self) -> Option<(String, u8, Vec<u8>)> {
        Some(match self {
            Target::Reject(w) => {
                let mut o = Out::zeroed(8);
                o.le32(0, *w);
                ("REJECT".into(), 0, o.0)
            }
            Target::Log(l) => ("LOG".into(), 0, l.encode()),
            Target::Mark(m) => ("MARK".into(), 2, m.encode()),
            Target::Nfqueue(q) => ("NFQUEUE".into(), 3, q.encode()),
            Target::Connmark { revision, info } => {
                ("CONNMARK".into(), *revision, info.encode(*revision))
            }
            Target::Ct { revision, info } => ("CT".into(), *revision, info.encode(*revision)),
            Target::Nat {
                kind,
                revision,
                range,
                rangesize,
            } => (
                kind.name().into(),
                *revision,
                range.encode(*revision, *rangesize),
            ),
            Target::Other {
                name,
                revision,
                data,
            } => (name.clone(), *revision, data.clone()),
            _ => return None,
        })
    }
    /// Build an extension target from a blob (falls back to `Other`).
    pub fn from_parts(name: &str, revision: u8, data: &[u8]) -> Target {
        let typed = match (name, revision, data.len()) {
            ("REJECT", 0, 8) => le32(data, 0).map(Target::Reject),
            ("LOG", 0, 32) => LogInfo::decode(data).map(Target::Log),
            ("MARK", 2, 8) => MarkTgInfo2::decode(data).map(Target::Mark),
            ("NFQUEUE", 3, 8) => NfqInfoV3::decode(data).map(Target::Nfqueue),
            ("CONNMARK", 1 | 2, 16) => ConnmarkTgInfo::decode(data, revision)
                .map(|info| Target::Connmark { revision, info }),
            ("CT", 0, 40) | ("CT", 1 | 2, 72) => {
                CtTargetInfo::decode(data, revision).map(|info| Target::Ct { revision, info })
            }
            ("SNAT" | "DNAT", 0, 24)
            | ("MASQUERADE" | "REDIRECT", 0, 24)
            | ("SNAT" | "DNAT", 1, 40)
            | ("SNAT" | "DNAT", 2, 48) => {
                let kind = match name {
                    "SNAT" => NatKind::Snat,
                    "DNAT" => NatKind::Dnat,
                    "MASQUERADE" => NatKind::Masquerade,
                    _ => NatKind::Redirect,
                };
                NatRange::decode(data, revision).map(|(range, rangesize)| Target::Nat {
                    kind,
                    revision,
                    range,
                    rangesize,
                })
            }
            _ => None,
        };
        match typed {
            Some(t) if t.ext_parts().map(|p| p.2).as_deref() == Some(data) => t,
            _ => Target::Other {
                name: name.to_string(),
                revision,
                data: data.to_vec(),
            },
        }
    }
}

/// One rule (one `ipt_entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub ip: IpMatch,
    pub matches: Vec<Match>,
    pub target: Target,
    pub counters: Counters,
    /// `ipt_entry.nfcache` (iptables writes 0; kept for byte-exact round trips).
    pub nfcache: u32,
}

impl Rule {
    /// An unconditional rule with a target.
    pub fn new(target: Target) -> Self {
        Rule {
            ip: IpMatch::default(),
            matches: Vec::new(),
            target,
            counters: Counters::default(),
            nfcache: 0,
        }
    }
}

/// A built-in chain: its hook, policy, rules and the policy entry's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinChain {
    pub hook: Hook,
    pub policy: Policy,
    pub rules: Vec<Rule>,
    pub policy_counters: Counters,
}

/// A user-defined chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChain {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub valid_hooks: u32,
    /// One per valid hook, in hook order.
    pub builtins: Vec<BuiltinChain>,
    /// In any order; `encode` sorts them by name like libiptc.
    pub user_chains: Vec<UserChain>,
}

impl Table {
    /// An empty table with every built-in chain (policy ACCEPT) for a known table name.
    pub fn new(name: &str) -> Option<Table> {
        let valid_hooks = table_valid_hooks(name)?;
        Some(Table::with_hooks(name, valid_hooks))
    }
    /// An empty table with the given valid hooks.
    pub fn with_hooks(name: &str, valid_hooks: u32) -> Table {
        let builtins = Hook::ALL
            .into_iter()
            .filter(|h| valid_hooks & (1 << *h as u32) != 0)
            .map(|hook| BuiltinChain {
                hook,
                policy: Policy::Accept,
                rules: Vec::new(),
                policy_counters: Counters::default(),
            })
            .collect();
        Table {
            name: name.to_string(),
            valid_hooks,
            builtins,
            user_chains: Vec::new(),
        }
    }
    /// The built-in chain of a hook.
    pub fn builtin(&self, hook: Hook) -> Option<&BuiltinChain> {
        self.builtins.iter().find(|c| c.hook == hook)
    }
    /// Mutable rules of a chain (built-in by name, or user chain).
    pub fn rules_mut(&mut self, chain: &str) -> Option<&mut Vec<Rule>> {
        if let Some(c) =
            chain_name_hook(chain).and_then(|h| self.builtins.iter_mut().find(|c| c.hook == h))
        {
            return Some(&mut c.rules);
        }
        self.user_chains
            .iter_mut()
            .find(|c| c.name == chain)
            .map(|c| &mut c.rules)
    }
    /// User chains sorted by name (strcmp order), as libiptc lays them out.
    pub fn sorted_user_chains(&self) -> Vec<&UserChain> {
        let mut v: Vec<&UserChain> = self.user_chains.iter().collect();
        v.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        v
    }
    /// Add an empty user chain (no-op if it exists); returns whether it was added.
    pub fn add_user_chain(&mut self, name: &str) -> bool {
        if self.user_chains.iter().any(|c| c.name == name) {
            return false;
        }
        self.user_chains.push(UserChain {
            name: name.to_string(),
            rules: Vec::new(),
        });
        true
    }
    /// Append a rule to a chain (built-in by name, or user chain); `false` if there is no such
    /// chain.
    pub fn append(&mut self, chain: &str, rule: Rule) -> bool {
        match self.rules_mut(chain) {
            Some(r) => {
                r.push(rule);
                true
            }
            None => false,
        }
    }
    /// Set a built-in chain's policy; `false` if the table has no such hook.
    pub fn set_policy(&mut self, hook: Hook, policy: Policy) -> bool {
        match self.builtins.iter_mut().find(|c| c.hook == hook) {
            Some(c) => {
                c.policy = policy;
                true
            }
            None => false,
        }
    }
}

impl Rule {
    /// Builder: add a match.
    pub fn with_match(mut self, m: Match) -> Self {
        self.matches.push(m);
        self
    }
    /// Builder: set `-p proto` (optionally inverted).
    pub fn with_proto(mut self, proto: u16, invert: bool) -> Self {
        self.ip.set_proto(proto, invert);
        self
    }
}

impl Match {
    /// `-m tcp` with optional source/destination port ranges (host order, inclusive).
    pub fn tcp(sport: Option<[u16; 2]>, dport: Option<[u16; 2]>) -> Match {
        let mut t = XtTcp::default();
        if let Some(p) = sport {
            t.spts = p;
        }
        if let Some(p) = dport {
            t.dpts = p;
        }
        Match::Tcp(t)
    }
    /// `-m udp` with optional port ranges.
    pub fn udp(sport: Option<[u16; 2]>, dport: Option<[u16; 2]>) -> Match {
        let mut u = XtUdp::default();
        if let Some(p) = sport {
            u.spts = p;
        }
        if let Some(p) = dport {
            u.dpts = p;
        }
        Match::Udp(u)
    }
    /// `-m conntrack --ctstate` with `XT_CONNTRACK_STATE_*` bits.
    pub fn ct_state(state_mask: u16, invert: bool) -> Match {
        Match::Conntrack(ConntrackMtInfo3 {
            match_flags: XT_CONNTRACK_STATE,
            invert_flags: if invert { XT_CONNTRACK_STATE } else { 0 },
            state_mask,
            ..Default::default()
        })
    }
    /// `-m mark --mark value/mask`.
    pub fn mark(mark: u32, mask: u32, invert: bool) -> Match {
        Match::Mark(MarkMtInfo1 {
            mark,
            mask,
            invert: invert as u8,
        })
    }
    /// `-m comment --comment text` (truncated to 255 bytes).
    pub fn comment(text: &str) -> Match {
        Match::Comment(
            text.as_bytes()
                .iter()
                .take(crate::ext::COMMENT_MAX)
                .copied()
                .collect(),
        )
    }
    /// `-m limit --limit rate/sec-equivalent --limit-burst burst`: `avg` in XT_LIMIT_SCALE units
    /// per packet (10000 = one per second).
    pub fn limit(avg: u32, burst: u32) -> Match {
        Match::Limit(RateInfo { avg, burst })
    }
}

impl Target {
    /// `-j MARK --set-xmark mark/mask`.
    pub fn set_xmark(mark: u32, mask: u32) -> Target {
        Target::Mark(MarkTgInfo2 { mark, mask })
    }
    /// `-j LOG --log-prefix prefix --log-level level` (prefix truncated to 29 bytes).
    pub fn log(prefix: &str, level: u8) -> Target {
        Target::Log(LogInfo {
            level,
            logflags: 0,
            prefix: prefix
                .as_bytes()
                .iter()
                .take(crate::ext::LOG_PREFIX_MAX)
                .copied()
                .collect(),
        })
    }
    /// `-j DNAT --to-destination addr[:port]` (revision 2, as iptables 1.8.9 sends it; a port 0,
    /// which iptables refuses, is left out).
    pub fn dnat(addr: [u8; 4], port: Option<u16>) -> Target {
        Target::nat_to("DNAT", addr, port)
    }
    /// `-j SNAT --to-source addr` (revision 0, as iptables 1.8.9 sends it).
    pub fn snat(addr: [u8; 4]) -> Target {
        Target::nat_to("SNAT", addr, None)
    }
    fn nat_to(name: &str, addr: [u8; 4], port: Option<u16>) -> Target {
        let mut t = Target::default_of(name).unwrap_or(Target::Fallthrough);
        if let Target::Nat { range, .. } = &mut t
            && range
                .set_to(Some((addr, addr)), port.map(|p| (p, p)))
                .is_err()
        {
            let _ = range.set_to(Some((addr, addr)), None);
        }
        t
    }
    /// `-j MASQUERADE` (revision 0).
    pub fn masquerade() -> Target {
        Target::default_of("MASQUERADE").unwrap_or(Target::Fallthrough)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, parse_save};

    #[test]
    fn builders_equal_parsed_rules() {
        let text = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:web - [0:0]\n\
            -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
            -A INPUT -p tcp -m tcp --dport 80:90 -m comment --comment web -j web\n\
            -A web -m mark --mark 0x1/0xff -j LOG --log-prefix \"w \" --log-level 6\n\
            -A web -p udp -m udp --sport 53 -j MARK --set-xmark 0x2/0xffffffff\nCOMMIT\n";
        let parsed = parse_save(text).unwrap().remove(0);
        let mut t = Table::new("filter").unwrap();
        t.set_policy(Hook::Input, Policy::Drop);
        assert!(t.add_user_chain("web"));
        t.append(
            "INPUT",
            Rule::new(Target::Accept).with_match(Match::ct_state(
                XT_CONNTRACK_STATE_ESTABLISHED | XT_CONNTRACK_STATE_RELATED,
                false,
            )),
        );
        t.append(
            "INPUT",
            Rule::new(Target::Jump("web".into()))
                .with_proto(6, false)
                .with_match(Match::tcp(None, Some([80, 90])))
                .with_match(Match::comment("web")),
        );
        t.append(
            "web",
            Rule::new(Target::log("w ", 6)).with_match(Match::mark(1, 0xff, false)),
        );
        t.append(
            "web",
            Rule::new(Target::set_xmark(2, u32::MAX))
                .with_proto(17, false)
                .with_match(Match::udp(Some([53, 53]), None)),
        );
        assert_eq!(t, parsed);
        assert_eq!(encode(&t).unwrap(), encode(&parsed).unwrap());
        let mut nat = Table::new("nat").unwrap();
        nat.append(
            "PREROUTING",
            Rule::new(Target::dnat([10, 0, 0, 1], Some(8080))).with_proto(6, false),
        );
        nat.append("POSTROUTING", Rule::new(Target::snat([192, 0, 2, 1])));
        nat.append("POSTROUTING", Rule::new(Target::masquerade()));
        let p = parse_save("*nat\n-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:8080\n-A POSTROUTING -j SNAT --to-source 192.0.2.1\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n").unwrap().remove(0);
        assert_eq!(nat, p);
    }
}
