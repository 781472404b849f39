//! iptables-save output for a `Table`, exactly as `iptables-legacy-save` (v1.8.9) prints it, minus
//! the `# Generated`/`# Completed` comment lines: `*table`, chain lines with policy counters,
//! `-A` rules in blob order (ip part, then each match's save function, then the target), `COMMIT`.
#![forbid(unsafe_code)]

use crate::layout::*;
use crate::model::*;
use std::fmt::Write;

/// Print one table (`with_counters` = `iptables-save -c`: `[pkts:bytes]` before each rule).
pub fn save(t: &Table, with_counters: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "*{}", t.name);
    let users = t.sorted_user_chains();
    for c in &t.builtins {
        let p = if c.policy == Policy::Accept {
            "ACCEPT"
        } else {
            "DROP"
        };
        let _ = writeln!(
            s,
            ":{} {} [{}:{}]",
            hook_chain_name(c.hook),
            p,
            c.policy_counters.pcnt,
            c.policy_counters.bcnt
        );
    }
    for u in &users {
        let _ = writeln!(s, ":{} - [0:0]", u.name);
    }
    for c in &t.builtins {
        for r in &c.rules {
            s.push_str(&rule_line(hook_chain_name(c.hook), r, with_counters));
            s.push('\n');
        }
    }
    for u in &users {
        for r in &u.rules {
            s.push_str(&rule_line(&u.name, r, with_counters));
            s.push('\n');
        }
    }
    s.push_str("COMMIT\n");
    s
}

/// Print several tables one after the other.
pub fn save_all(tables: &[Table], with_counters: bool) -> String {
    tables.iter().map(|t| save(t, with_counters)).collect()
}

/// One `-A chain ...` line (no newline), as `print_rule4` prints it.
pub fn rule_line(chain: &str, r: &Rule, with_counters: bool) -> String {
    let mut s = String::new();
    if with_counters {
        let _ = write!(s, "[{}:{}] ", r.counters.pcnt, r.counters.bcnt);
    }
    let _ = write!(s, "-A {chain}");
    s.push_str(&rule_spec(r));
    s
}

/// Everything after `-A chain` (with a leading space when not empty).
pub fn rule_spec(r: &Rule) -> String {
    let mut s = String::new();
    let ip = &r.ip.ip;
    save_addr(
        &mut s,
        's',
        ip.src,
        ip.smsk,
        ip.invflags & IPT_INV_SRCIP != 0,
    );
    save_addr(
        &mut s,
        'd',
        ip.dst,
        ip.dmsk,
        ip.invflags & IPT_INV_DSTIP != 0,
    );
    if ip.iniface[0] != 0 {
        save_iface(
            &mut s,
            'i',
            &ip.iniface,
            &ip.iniface_mask,
            ip.invflags & IPT_INV_VIA_IN != 0,
        );
    }
    if ip.outiface[0] != 0 {
        save_iface(
            &mut s,
            'o',
            &ip.outiface,
            &ip.outiface_mask,
            ip.invflags & IPT_INV_VIA_OUT != 0,
        );
    }
    if ip.proto > 0 {
        if ip.invflags & IPT_INV_PROTO != 0 {
            s.push_str(" !");
        }
        match proto_name(ip.proto) {
            Some(n) => {
                let _ = write!(s, " -p {n}");
            }
            None => {
                let _ = write!(s, " -p {}", ip.proto);
            }
        }
    }
    if ip.flags & IPT_F_FRAG != 0 {
        if ip.invflags & IPT_INV_FRAG != 0 {
            s.push_str(" !");
        }
        s.push_str(" -f");
    }
    for m in &r.matches {
        save_match(&mut s, m);
    }
    match &r.target {
        Target::Accept => s.push_str(" -j ACCEPT"),
        Target::Drop => s.push_str(" -j DROP"),
        Target::Queue => s.push_str(" -j QUEUE"),
        Target::Return => s.push_str(" -j RETURN"),
        Target::Jump(c) => {
            let _ = write!(s, " -j {c}");
        }
        Target::Goto(c) => {
            let _ = write!(s, " -g {c}");
        }
        Target::Fallthrough => {}
        t => save_target(&mut s, t),
    }
    s
}

/// `xtables_chain_protos` (the names iptables-save prints for `-p`).
pub const CHAIN_PROTOS: [(&str, u16); 12] = [
    ("tcp", 6),
    ("sctp", 132),
    ("udp", 17),
    ("udplite", 136),
    ("icmp", 1),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-mh", 135),
    ("mh", 135),
    ("all", 0),
];

/// The name iptables-save prints for `-p p`: `/etc/protocols` (`getprotobynumber`, as
/// iptables 1.8.9 does), else digits.
fn proto_name(p: u16) -> Option<&'static str> {
    u8::try_from(p).ok().and_then(nfr_proto::ipproto::name)
}

/// `xtables_ipmask_to_cidr`: prefix length of a contiguous mask, else `None`.
pub fn mask_to_cidr(m: [u8; 4]) -> Option<u32> {
    let v = u32::from_be_bytes(m);
    let l = v.leading_ones();
    (v.checked_shl(l).unwrap_or(0) == 0).then_some(l)
}

fn ip4(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn save_addr(s: &mut String, letter: char, addr: [u8; 4], mask: [u8; 4], inv: bool) {
    if mask == [0; 4] && !inv && addr == [0; 4] {
        return;
    }
    let _ = write!(s, "{} -{letter} {}", if inv { " !" } else { "" }, ip4(addr));
    match mask_to_cidr(mask) {
        Some(l) => {
            let _ = write!(s, "/{l}");
        }
        None => {
            let _ = write!(s, "/{}", ip4(mask));
        }
    }
}

/// `print_iface` of iptables 1.8.9: nothing when the mask is empty; the name bytes under the
/// mask, then `+` when the mask ends before the name does.
fn save_iface(
    s: &mut String,
    letter: char,
    name: &[u8; IFNAMSIZ],
    mask: &[u8; IFNAMSIZ],
    inv: bool,
) {
    if mask[0] == 0 {
        return;
    }
    let _ = write!(s, "{} -{letter} ", if inv { " !" } else { "" });
    for i in 0..IFNAMSIZ {
        if mask[i] != 0 {
            if name[i] != 0 {
                s.push(name[i] as char);
            }
        } else {
            if name[i - 1] != 0 {
                s.push('+');
            }
            break;
        }
    }
}

/// `xtables_save_string`: bare when only `[_-0-9a-zA-Z]`, else double-quoted with `"\'` escaped.
pub fn save_string(s: &mut String, v: &[u8]) {
    let plain = !v.is_empty()
        && v.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    s.push(' ');
    let v = String::from_utf8_lossy(v);
    if plain {
        s.push_str(&v);
    } else {
        s.push('"');
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '\'') {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
    }
}

/// libxt_tcp's `tcp_flag_names`: the six flags (printed, in this order), then `ALL` and `NONE`
/// (accepted on input only).
pub(crate) const TCP_FLAG_NAMES: [(&str, u8); 8] = [
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
    ("ALL", 0x3F),
    ("NONE", 0),
];

fn print_tcpf(s: &mut String, flags: u8) {
    let names: Vec<&str> = TCP_FLAG_NAMES
        .iter()
        .filter(|(_, b)| b.is_power_of_two() && flags & b != 0)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        s.push_str("NONE");
    } else {
        s.push_str(&names.join(","));
    }
}

fn save_ports(s: &mut String, opt: &str, pts: [u16; 2], inv: bool) {
    if pts[0] != 0 || pts[1] != 0xFFFF {
        if inv {
            s.push_str(" !");
        }
        if pts[0] != pts[1] {
            let _ = write!(s, " --{opt} {}:{}", pts[0], pts[1]);
        } else {
            let _ = write!(s, " --{opt} {}", pts[0]);
        }
    }
}

const STATE_NAMES: [(&str, u16); 7] = [
    ("INVALID", XT_CONNTRACK_STATE_INVALID),
    ("NEW", XT_CONNTRACK_STATE_NEW),
    ("RELATED", XT_CONNTRACK_STATE_RELATED),
    ("ESTABLISHED", XT_CONNTRACK_STATE_ESTABLISHED),
    ("UNTRACKED", XT_CONNTRACK_STATE_UNTRACKED),
    ("SNAT", XT_CONNTRACK_STATE_SNAT),
    ("DNAT", XT_CONNTRACK_STATE_DNAT),
];
const STATUS_NAMES: [(&str, u16); 4] = [
    ("EXPECTED", IPS_EXPECTED),
    ("SEEN_REPLY", IPS_SEEN_REPLY),
    ("ASSURED", IPS_ASSURED),
    ("CONFIRMED", IPS_CONFIRMED),
];

fn print_bits(s: &mut String, v: u16, names: &[(&str, u16)]) {
    let mut sep = " ";
    for (n, b) in names {
        if v & b != 0 {
            let _ = write!(s, "{sep}{n}");
            sep = ",";
        }
    }
}

fn ct_addr(s: &mut String, addr: &[u8; 16], mask: &[u8; 16]) {
    let a = [addr[0], addr[1], addr[2], addr[3]];
    let m = [mask[0], mask[1], mask[2], mask[3]];
    let _ = write!(s, " {}", ip4(a));
    match mask_to_cidr(m) {
        Some(32) => {}
        Some(l) => {
            let _ = write!(s, "/{l}");
        }
        None => {
            let _ = write!(s, "/{}", ip4(m));
        }
    }
}

fn ct_ports(s: &mut String, lo: u16, hi: u16) {
    if hi == 0 || lo == hi {
        let _ = write!(s, "{lo}");
    } else {
        let _ = write!(s, "{lo}:{hi}");
    }
}

fn save_conntrack(s: &mut String, c: &ConntrackMtInfo3) {
    let f = c.match_flags;
    let inv = |b: u16| c.invert_flags & b != 0;
    let bang = |s: &mut String, b: u16| {
        if inv(b) {
            s.push_str(" !");
        }
    };
    if f & XT_CONNTRACK_STATE != 0 {
        bang(s, XT_CONNTRACK_STATE);
        s.push_str(if f & XT_CONNTRACK_STATE_ALIAS != 0 {
            " --state"
        } else {
            " --ctstate"
        });
        print_bits(s, c.state_mask, &STATE_NAMES);
    }
    if f & XT_CONNTRACK_PROTO != 0 {
        bang(s, XT_CONNTRACK_PROTO);
        let _ = write!(s, " --ctproto {}", c.l4proto);
    }
    let addrs = [
        (
            XT_CONNTRACK_ORIGSRC,
            "ctorigsrc",
            &c.origsrc_addr,
            &c.origsrc_mask,
        ),
        (
            XT_CONNTRACK_ORIGDST,
            "ctorigdst",
            &c.origdst_addr,
            &c.origdst_mask,
        ),
        (
            XT_CONNTRACK_REPLSRC,
            "ctreplsrc",
            &c.replsrc_addr,
            &c.replsrc_mask,
        ),
        (
            XT_CONNTRACK_REPLDST,
            "ctrepldst",
            &c.repldst_addr,
            &c.repldst_mask,
        ),
    ];
    for (b, n, a, m) in addrs {
        if f & b != 0 {
            bang(s, b);
            let _ = write!(s, " --{n}");
            ct_addr(s, a, m);
        }
    }
    let ports = [
        (
            XT_CONNTRACK_ORIGSRC_PORT,
            "ctorigsrcport",
            c.origsrc_port,
            c.origsrc_port_high,
        ),
        (
            XT_CONNTRACK_ORIGDST_PORT,
            "ctorigdstport",
            c.origdst_port,
            c.origdst_port_high,
        ),
        (
            XT_CONNTRACK_REPLSRC_PORT,
            "ctreplsrcport",
            c.replsrc_port,
            c.replsrc_port_high,
        ),
        (
            XT_CONNTRACK_REPLDST_PORT,
            "ctrepldstport",
            c.repldst_port,
            c.repldst_port_high,
        ),
    ];
    for (b, n, lo, hi) in ports {
        if f & b != 0 {
            bang(s, b);
            let _ = write!(s, " --{n} ");
            ct_ports(s, lo, hi);
        }
    }
    if f & XT_CONNTRACK_STATUS != 0 {
        bang(s, XT_CONNTRACK_STATUS);
        s.push_str(" --ctstatus");
        if c.status_mask == 0 {
            s.push_str(" NONE");
        } else {
            print_bits(s, c.status_mask, &STATUS_NAMES);
        }
    }
    if f & XT_CONNTRACK_EXPIRES != 0 {
        bang(s, XT_CONNTRACK_EXPIRES);
        if c.expires_max == c.expires_min {
            let _ = write!(s, " --ctexpire {}", c.expires_min);
        } else {
            let _ = write!(s, " --ctexpire {}:{}", c.expires_min, c.expires_max);
        }
    }
    if f & XT_CONNTRACK_DIRECTION != 0 {
        s.push_str(if inv(XT_CONNTRACK_DIRECTION) {
            " --ctdir REPLY"
        } else {
            " --ctdir ORIGINAL"
        });
    }
}

const RATES: [(&str, u32); 4] = [
    ("day", XT_LIMIT_SCALE * 24 * 60 * 60),
    ("hour", XT_LIMIT_SCALE * 60 * 60),
    ("min", XT_LIMIT_SCALE * 60),
    ("sec", XT_LIMIT_SCALE),
];

fn print_rate(s: &mut String, period: u32) {
    if period == 0 {
        s.push_str(" inf");
        return;
    }
    let mut i = 1;
    while i < RATES.len() {
        let m = RATES[i].1;
        if period > m || m / period < m % period {
            break;
        }
        i += 1;
    }
    let _ = write!(s, " {}/{}", RATES[i - 1].1 / period, RATES[i - 1].0);
}

fn save_match(s: &mut String, m: &Match) {
    let alias = match m {
        Match::Conntrack(c) if c.match_flags & XT_CONNTRACK_STATE_ALIAS != 0 => "state",
        _ => m.name(),
    };
    let _ = write!(s, " -m {alias}");
    match m {
        Match::Tcp(t) => {
            save_ports(s, "sport", t.spts, t.invflags & XT_TCP_INV_SRCPT != 0);
            save_ports(s, "dport", t.dpts, t.invflags & XT_TCP_INV_DSTPT != 0);
            if t.option != 0 || t.invflags & XT_TCP_INV_OPTION != 0 {
                if t.invflags & XT_TCP_INV_OPTION != 0 {
                    s.push_str(" !");
                }
                let _ = write!(s, " --tcp-option {}", t.option);
            }
            if t.flg_mask != 0 || t.invflags & XT_TCP_INV_FLAGS != 0 {
                if t.invflags & XT_TCP_INV_FLAGS != 0 {
                    s.push_str(" !");
                }
                s.push_str(" --tcp-flags ");
                print_tcpf(s, t.flg_mask);
                s.push(' ');
                print_tcpf(s, t.flg_cmp);
            }
        }
        Match::Udp(u) => {
            save_ports(s, "sport", u.spts, u.invflags & XT_UDP_INV_SRCPT != 0);
            save_ports(s, "dport", u.dpts, u.invflags & XT_UDP_INV_DSTPT != 0);
        }
        Match::Icmp(i) => {
            if i.invflags & IPT_ICMP_INV != 0 {
                s.push_str(" !");
            }
            if i.icmp_type == 0xFF {
                s.push_str(" --icmp-type any");
            } else {
                let _ = write!(s, " --icmp-type {}", i.icmp_type);
                if i.code[0] != 0 || i.code[1] != 0xFF {
                    let _ = write!(s, "/{}", i.code[0]);
                }
            }
        }
        Match::Conntrack(c) => save_conntrack(s, c),
        Match::Multiport(mp) => {
            if mp.invert != 0 {
                s.push_str(" !");
            }
            match mp.flags {
                XT_MULTIPORT_SOURCE => s.push_str(" --sports "),
                XT_MULTIPORT_DESTINATION => s.push_str(" --dports "),
                XT_MULTIPORT_EITHER => s.push_str(" --ports "),
                _ => {}
            }
            let n = (mp.count as usize).min(XT_MULTI_PORTS);
            let mut i = 0;
            while i < n {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{}", mp.ports[i]);
                if mp.pflags[i] != 0 && i + 1 < XT_MULTI_PORTS {
                    i += 1;
                    let _ = write!(s, ":{}", mp.ports[i]);
                }
                i += 1;
            }
        }
        Match::Mark(mk) => {
            if mk.invert != 0 {
                s.push_str(" !");
            }
            s.push_str(" --mark");
            print_mark(s, mk.mark, mk.mask);
        }
        Match::Comment(c) => {
            s.push_str(" --comment");
            save_string(s, c);
        }
        Match::Limit(r) => {
            s.push_str(" --limit");
            print_rate(s, r.avg);
            if r.burst != 5 {
                let _ = write!(s, " --limit-burst {}", r.burst);
            }
        }
        Match::Length(l) => {
            if l.invert != 0 {
                s.push_str(" !");
            }
            if l.min == l.max {
                let _ = write!(s, " --length {}", l.min);
            } else {
                let _ = write!(s, " --length {}:{}", l.min, l.max);
            }
        }
        Match::Iprange(r) => {
            if r.flags & IPRANGE_SRC != 0 {
                if r.flags & IPRANGE_SRC_INV != 0 {
                    s.push_str(" !");
                }
                let _ = write!(s, " --src-range {}-{}", ip4(r.src_min), ip4(r.src_max));
            }
            if r.flags & IPRANGE_DST != 0 {
                if r.flags & IPRANGE_DST_INV != 0 {
                    s.push_str(" !");
                }
                let _ = write!(s, " --dst-range {}-{}", ip4(r.dst_min), ip4(r.dst_max));
            }
        }
        // libxt_addrtype's addrtype_save_v1
        Match::Addrtype(at) => {
            let types = |mask: u16| {
                ADDRTYPE_NAMES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for (mask, inv, opt) in [
                (at.source, XT_ADDRTYPE_INVERT_SOURCE, "--src-type"),
                (at.dest, XT_ADDRTYPE_INVERT_DEST, "--dst-type"),
            ] {
                if mask != 0 {
                    if at.flags & inv != 0 {
                        s.push_str(" !");
                    }
                    let _ = write!(s, " {opt} {}", types(mask));
                }
            }
            if at.flags & XT_ADDRTYPE_LIMIT_IFACE_IN != 0 {
                s.push_str(" --limit-iface-in");
            }
            if at.flags & XT_ADDRTYPE_LIMIT_IFACE_OUT != 0 {
                s.push_str(" --limit-iface-out");
            }
        }
        Match::Statistic(st) => {
            // libxt_statistic's print_match
            let inv = if st.flags & XT_STATISTIC_INVERT != 0 {
                " !"
            } else {
                ""
            };
            if st.mode == XT_STATISTIC_MODE_NTH {
                // iptables 1.8.9 prints `--packet` always (restore requires it with `--every`).
                let _ = write!(
                    s,
                    " --mode nth{inv} --every {} --packet {}",
                    u64::from(st.every) + 1,
                    st.packet
                );
            } else {
                let p = f64::from(st.every) / 2_147_483_648.0;
                let _ = write!(s, " --mode random{inv} --probability {p:.11}");
            }
        }
        Match::Recent(r) => {
            // libxt_recent's recent_save (NFPROTO_IPV4)
            if r.invert != 0 {
                s.push_str(" !");
            }
            for (bit, o) in [
                (XT_RECENT_SET, "--set"),
                (XT_RECENT_CHECK, "--rcheck"),
                (XT_RECENT_UPDATE, "--update"),
                (XT_RECENT_REMOVE, "--remove"),
            ] {
                if r.check_set & bit != 0 {
                    let _ = write!(s, " {o}");
                }
            }
            if r.seconds != 0 {
                let _ = write!(s, " --seconds {}", r.seconds);
            }
            if r.check_set & XT_RECENT_REAP != 0 {
                s.push_str(" --reap");
            }
            if r.hit_count != 0 {
                let _ = write!(s, " --hitcount {}", r.hit_count);
            }
            if r.check_set & XT_RECENT_TTL != 0 {
                s.push_str(" --rttl");
            }
            let [a, b, c, d] = r.mask4();
            let _ = write!(
                s,
                " --name {} --mask {a}.{b}.{c}.{d}",
                String::from_utf8_lossy(r.name())
            );
            match r.side {
                XT_RECENT_SOURCE => s.push_str(" --rsource"),
                XT_RECENT_DEST => s.push_str(" --rdest"),
                _ => {}
            }
        }
        Match::Ttl(t) => {
            let op = match t.mode {
                IPT_TTL_EQ => " --ttl-eq",
                IPT_TTL_NE => " ! --ttl-eq",
                IPT_TTL_LT => " --ttl-lt",
                IPT_TTL_GT => " --ttl-gt",
                _ => "",
            };
            let _ = write!(s, "{op} {}", t.ttl);
        }
        Match::Pkttype(p) => {
            if p.invert != 0 {
                s.push_str(" !");
            }
            match PKTTYPES.iter().find(|(_, v)| *v == p.pkttype) {
                Some((n, _)) => {
                    let _ = write!(s, " --pkt-type {n}");
                }
                None => {
                    let _ = write!(s, " --pkt-type {}", p.pkttype);
                }
            }
        }
        Match::Connmark(m) => {
            if m.invert != 0 {
                s.push_str(" !");
            }
            s.push_str(" --mark");
            print_mark(s, m.mark, m.mask);
        }
        Match::Dscp(d) => {
            if d.invert != 0 {
                s.push_str(" !");
            }
            let _ = write!(s, " --dscp 0x{:02x}", d.dscp);
        }
        Match::Mac(m) => {
            if m.invert != 0 {
                s.push_str(" !");
            }
            let a = m.srcaddr;
            let _ = write!(
                s,
                " --mac-source {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                a[0], a[1], a[2], a[3], a[4], a[5]
            );
        }
        Match::Owner(o) => {
            let item = |s: &mut String, flag: u8, label: &str, lo: u32, hi: u32, range: bool| {
                if o.match_flags & flag == 0 {
                    return;
                }
                if o.invert & flag != 0 {
                    s.push_str(" !");
                }
                let _ = write!(s, " {label}");
                if range {
                    if lo == hi {
                        let _ = write!(s, " {lo}");
                    } else {
                        let _ = write!(s, " {lo}-{hi}");
                    }
                }
            };
            item(s, XT_OWNER_SOCKET, "--socket-exists", 0, 0, false);
            item(s, XT_OWNER_UID, "--uid-owner", o.uid_min, o.uid_max, true);
            item(s, XT_OWNER_GID, "--gid-owner", o.gid_min, o.gid_max, true);
            item(s, XT_OWNER_SUPPL_GROUPS, "--suppl-groups", 0, 0, false);
        }
        Match::Other { .. } => {}
    }
}

fn print_mark(s: &mut String, mark: u32, mask: u32) {
    if mask != 0xffff_ffff {
        let _ = write!(s, " 0x{mark:x}/0x{mask:x}");
    } else {
        let _ = write!(s, " 0x{mark:x}");
    }
}

/// `supported_types` of libxt_pkttype 1.8.9: (name, PACKET_*); "host" is an alias of unicast.
pub const PKTTYPES: [(&str, u32); 5] = [
    ("unicast", 0),
    ("broadcast", 1),
    ("multicast", 2),
    ("host", 0),
    ("otherhost", 3),
];

/// `reject_table` of libipt_REJECT: (name, alias, value).
pub const REJECT_NAMES: [(&str, &str, u32); 8] = [
    (
        "icmp-net-unreachable",
        "net-unreach",
        IPT_ICMP_NET_UNREACHABLE,
    ),
    (
        "icmp-host-unreachable",
        "host-unreach",
        IPT_ICMP_HOST_UNREACHABLE,
    ),
    (
        "icmp-proto-unreachable",
        "proto-unreach",
        IPT_ICMP_PROT_UNREACHABLE,
    ),
    (
        "icmp-port-unreachable",
        "port-unreach",
        IPT_ICMP_PORT_UNREACHABLE,
    ),
    ("icmp-net-prohibited", "net-prohib", IPT_ICMP_NET_PROHIBITED),
    (
        "icmp-host-prohibited",
        "host-prohib",
        IPT_ICMP_HOST_PROHIBITED,
    ),
    ("tcp-reset", "tcp-rst", IPT_TCP_RESET),
    (
        "icmp-admin-prohibited",
        "admin-prohib",
        IPT_ICMP_ADMIN_PROHIBITED,
    ),
];

fn nat_range(s: &mut String, r: &NatRange) {
    if r.flags & NF_NAT_RANGE_MAP_IPS != 0 {
        s.push_str(&ip4(r.min_addr));
        if r.max_addr != r.min_addr {
            let _ = write!(s, "-{}", ip4(r.max_addr));
        }
    }
    if r.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0 {
        let _ = write!(s, ":{}", r.min_proto);
        if r.max_proto != r.min_proto {
            let _ = write!(s, "-{}", r.max_proto);
        }
        if r.flags & NF_NAT_RANGE_PROTO_OFFSET != 0 {
            let _ = write!(s, "/{}", r.base_proto);
        }
    }
}

fn save_target(s: &mut String, t: &Target) {
    match t {
        Target::Reject(w) => {
            s.push_str(" -j REJECT --reject-with ");
            match REJECT_NAMES.iter().find(|r| r.2 == *w) {
                Some(r) => s.push_str(r.0),
                None => s.push_str("(null)"),
            }
        }
        Target::Log(l) => {
            s.push_str(" -j LOG");
            if !l.prefix.is_empty() {
                s.push_str(" --log-prefix");
                save_string(s, &l.prefix);
            }
            if l.level != 4 {
                let _ = write!(s, " --log-level {}", l.level);
            }
            for (b, n) in [
                (IPT_LOG_TCPSEQ, "--log-tcp-sequence"),
                (IPT_LOG_TCPOPT, "--log-tcp-options"),
                (IPT_LOG_IPOPT, "--log-ip-options"),
                (IPT_LOG_UID, "--log-uid"),
                (IPT_LOG_MACDECODE, "--log-macdecode"),
            ] {
                if l.logflags & b != 0 {
                    let _ = write!(s, " {n}");
                }
            }
        }
        Target::Mark(m) => {
            let _ = write!(s, " -j MARK --set-xmark 0x{:x}/0x{:x}", m.mark, m.mask);
        }
        Target::Connmark { info, .. } => {
            s.push_str(" -j CONNMARK");
            match info.mode {
                XT_CONNMARK_SET => {
                    let _ = write!(s, " --set-xmark 0x{:x}/0x{:x}", info.ctmark, info.ctmask);
                }
                XT_CONNMARK_SAVE => {
                    let _ = write!(
                        s,
                        " --save-mark --nfmask 0x{:x} --ctmask 0x{:x}",
                        info.nfmask, info.ctmask
                    );
                }
                XT_CONNMARK_RESTORE => {
                    let _ = write!(
                        s,
                        " --restore-mark --nfmask 0x{:x} --ctmask 0x{:x}",
                        info.nfmask, info.ctmask
                    );
                }
                m => {
                    let _ = write!(s, " [ERROR: unknown mode {m}]");
                }
            }
            if info.shift_bits != 0 {
                let dir = if info.shift_dir != 0 { "right" } else { "left" };
                let _ = write!(s, " --{dir}-shift-mark {}", info.shift_bits);
            }
        }
        Target::Ct { info, .. } => {
            if info.flags & XT_CT_NOTRACK_ALIAS != 0 {
                s.push_str(" -j NOTRACK");
                return;
            }
            s.push_str(" -j CT");
            if info.flags & XT_CT_NOTRACK != 0 {
                s.push_str(" --notrack");
                return;
            }
            if !info.helper.is_empty() {
                let _ = write!(s, " --helper {}", String::from_utf8_lossy(&info.helper));
            }
            if !info.timeout.is_empty() {
                let _ = write!(s, " --timeout {}", String::from_utf8_lossy(&info.timeout));
            }
            for (flag, tbl, v) in [
                ("--ctevents", &crate::parse::CT_EVENTS[..], info.ct_events),
                (
                    "--expevents",
                    &crate::parse::EXP_EVENTS[..],
                    info.exp_events,
                ),
            ] {
                if v != 0 {
                    let names: Vec<&str> = tbl
                        .iter()
                        .filter(|(_, b)| v & (1 << b) != 0)
                        .map(|(n, _)| *n)
                        .collect();
                    let _ = write!(s, " {flag} {}", names.join(","));
                }
            }
            if info.zone != 0 {
                let _ = write!(s, " --zone {}", info.zone);
            }
        }
        Target::Nfqueue(q) => {
            s.push_str(" -j NFQUEUE");
            if q.queues_total > 1 {
                let last = u32::from(q.queuenum) + u32::from(q.queues_total) - 1;
                let _ = write!(s, " --queue-balance {}:{last}", q.queuenum);
            } else {
                let _ = write!(s, " --queue-num {}", q.queuenum);
            }
            if q.flags & NFQ_FLAG_BYPASS != 0 {
                s.push_str(" --queue-bypass");
            }
            if q.flags & NFQ_FLAG_CPU_FANOUT != 0 {
                s.push_str(" --queue-cpu-fanout");
            }
        }
        Target::Nat { kind, range, .. } => {
            let _ = write!(s, " -j {}", kind.name());
            match kind {
                NatKind::Snat | NatKind::Dnat => {
                    s.push_str(if *kind == NatKind::Snat {
                        " --to-source "
                    } else {
                        " --to-destination "
                    });
                    nat_range(s, range);
                    if range.flags & NF_NAT_RANGE_PROTO_RANDOM != 0 {
                        s.push_str(" --random");
                    }
                    if range.flags & NF_NAT_RANGE_PROTO_RANDOM_FULLY != 0 {
                        s.push_str(" --random-fully");
                    }
                    if range.flags & NF_NAT_RANGE_PERSISTENT != 0 {
                        s.push_str(" --persistent");
                    }
                }
                NatKind::Masquerade | NatKind::Redirect => {
                    if range.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0 {
                        let _ = write!(s, " --to-ports {}", range.min_proto);
                        if range.max_proto != range.min_proto {
                            let _ = write!(s, "-{}", range.max_proto);
                        }
                    }
                    if range.flags & NF_NAT_RANGE_PROTO_RANDOM != 0 {
                        s.push_str(" --random");
                    }
                    if range.flags & NF_NAT_RANGE_PROTO_RANDOM_FULLY != 0 {
                        s.push_str(" --random-fully");
                    }
                }
            }
        }
        Target::Other { name, .. } => {
            let _ = write!(s, " -j {name}");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_print_like_libxt_limit() {
        let mut s = String::new();
        print_rate(&mut s, 2000);
        print_rate(&mut s, 10000 * 3600 / 3);
        print_rate(&mut s, 10000 * 60 / 100);
        assert_eq!(s, " 5/sec 3/hour 100/min");
    }

    #[test]
    fn strings_quote_like_xtables() {
        let mut s = String::new();
        save_string(&mut s, b"abc_-9");
        save_string(&mut s, b"x: ");
        save_string(&mut s, b"a\"b");
        assert_eq!(s, " abc_-9 \"x: \" \"a\\\"b\"");
    }

    #[test]
    fn cidr() {
        assert_eq!(mask_to_cidr([255, 255, 255, 255]), Some(32));
        assert_eq!(mask_to_cidr([0, 0, 0, 0]), Some(0));
        assert_eq!(mask_to_cidr([255, 0, 255, 0]), None);
    }
}
