//! The way back from iptables: an iptables table (`nfr_ipt::Table`, decoded from a blob or read from
//! iptables-save text) as `.nfr` text, for `nfc decompile` and `nfc import`. The inverse of
//! [`crate::lower::ipt`] for everything it emits; chain types and priorities come from
//! `nfr_proto::hook::IPT_TABLES`.

#![forbid(unsafe_code)]

use crate::lower::ipt::TCP_FLAGS;

/// Print iptables tables as one `.nfr` ruleset (`table ip <name>` per table), as
/// `iptables-restore-translate` names things: chains keep their iptables names (`INPUT`), rule
/// counters are kept (`counter packets N bytes M`, when not zero), ICMP types are named. The
/// text checks with `nfc check` and lowers back to the same tables for everything [`crate::lower::ipt::lower_ipt`]
/// emits (an inverted `--ctstatus` or `--ctstate SNAT/DNAT` is printed with its meaning,
/// `ct status & X == 0`, which has no iptables form in the lowering); anything else (raw extensions,
/// fragments, ...) is an `Err` naming the chain and rule, one line per rule that cannot be printed.
pub fn tables_to_nfr(tables: &[nfr_ipt::Table]) -> Result<String, String> {
    let mut out = String::new();
    let mut errors = Vec::new();
    let shared = shared_recent_lists(tables);
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match table_to_nfr_among(t, &shared) {
            Ok(text) => out.push_str(&text),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

/// The nft chain type and priority of iptables table `table` on hook `h` (`nfr_proto::hook::IPT_TABLES`).
fn prio_for(table: &str, h: nfr_ipt::Hook) -> (&'static str, i32) {
    nfr_proto::hook::IptTable::by_name(table)
        .map_or(("filter", 0), |t| (t.chain_type(h), t.priority(h)))
}

/// How the lists of `-m recent` (xt_recent) become nft sets updated from the packet path: per
/// `--name`, the set's timeout (the `--seconds` of its checks) and the address mask, or why the
/// list has no exact nft form.
///
/// A list translates when its rules only `--set`, `--rcheck`, `--update` (not inverted) and
/// `--remove` (not inverted, and only when no rule checks it with `--seconds`), every
/// `--rcheck`/`--update` has the same `--seconds` (or none has any), none counts hits
/// (`--hitcount` above 1) or TTLs (`--rttl`), and all give one `--mask`. Then, with `KEY` the
/// masked source (`--rsource`) or destination (`--rdest`) address:
/// - the list is `set NAME { type ipv4_addr; flags dynamic[,timeout]; [timeout Ss;] }`;
/// - `--set` is `update @NAME { KEY }` (`add` when the set has no timeout): an address is
///   (re)stamped, which (re)starts its timeout;
/// - `--rcheck [--seconds S]` is `KEY @NAME` (`!=` when inverted): stamped within S seconds is
///   an element that has not timed out (`--reap`, which only forgets addresses no check would
///   match, has nothing left to do);
/// - `--update` is `KEY @NAME update @NAME { KEY }`, `--remove` `KEY @NAME delete @NAME { KEY }`.
///
/// What stays different: xt_recent keeps at most 100 addresses per list and forgets the least
/// recently stamped one for a new one; the set holds up to 65535 and then refuses new ones (the
/// rule stops there). And a check at exactly S seconds after the stamp matches in xt_recent
/// (`>=`) and not in nft (the element expires at that instant).
#[derive(Debug, Default)]
struct RecentPlan {
    /// By list name: the set's timeout in seconds (`None`: no timeout) and mask, or why not.
    lists: std::collections::BTreeMap<Vec<u8>, ListPlan>,
}

/// A list's set timeout (seconds, `None`: none) and mask, or why it has no nft form and the rule
/// that says so (empty: the list as a whole).
type ListPlan = Result<(Option<u32>, [u8; 4]), (String, String)>;

impl RecentPlan {
    /// The lists of table `t`; those named in `shared` are also used by another table.
    fn of(t: &nfr_ipt::Table, shared: &std::collections::BTreeSet<Vec<u8>>) -> RecentPlan {
        use nfr_ipt::layout::*;
        fn numbered(chain: String, rules: &[nfr_ipt::Rule]) -> Vec<(String, &nfr_ipt::Rule)> {
            rules
                .iter()
                .enumerate()
                .map(|(n, r)| (format!("{chain} rule {}", n + 1), r))
                .collect()
        }
        let rules = t
            .builtins
            .iter()
            .flat_map(|b| numbered(nfr_ipt::hook_chain_name(b.hook).to_string(), &b.rules))
            .chain(
                t.sorted_user_chains()
                    .into_iter()
                    .flat_map(|c| numbered(c.name.clone(), &c.rules)),
            );
        // per name: (seconds of checks, seen a check, mask, remove seen, first error)
        #[derive(Default)]
        struct Acc {
            seconds: Option<Option<u32>>,
            mask: Option<[u8; 4]>,
            remove: bool,
            /// Why not, and the rule that says so.
            err: Option<(String, String)>,
        }
        let mut acc: std::collections::BTreeMap<Vec<u8>, Acc> = Default::default();
        for (at, r) in rules {
            for m in &r.matches {
                let nfr_ipt::Match::Recent(info) = m else {
                    continue;
                };
                let a = acc.entry(info.name().to_vec()).or_default();
                let name = String::from_utf8_lossy(info.name()).into_owned();
                let cs = info.check_set;
                let fail = |why: String| Some(format!("-m recent --name {name}: {why}"));
                let why = if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    || !name.starts_with(|c: char| c.is_ascii_alphabetic())
                {
                    fail("the name is not an nft set name".into())
                } else if cs & XT_RECENT_TTL != 0 {
                    fail("--rttl has no nft form (set elements keep no TTL)".into())
                } else if info.hit_count > 1 {
                    fail(format!(
                        "--hitcount {} has no nft form (set elements keep no packet count)",
                        info.hit_count
                    ))
                } else if info.invert != 0 && cs & XT_RECENT_CHECK == 0 {
                    fail("an inverted --set, --update or --remove has no nft form".into())
                } else if a.mask.is_some_and(|x| x != info.mask4()) {
                    fail("its rules give different --mask values".into())
                } else {
                    None
                };
                if let Some(w) = why {
                    a.err = a.err.take().or(Some((w, at.clone())));
                    continue;
                }
                a.mask = Some(info.mask4());
                if cs & XT_RECENT_REMOVE != 0 {
                    a.remove = true;
                }
                if cs & (XT_RECENT_CHECK | XT_RECENT_UPDATE) != 0 {
                    let s = (info.seconds != 0).then_some(info.seconds);
                    match a.seconds {
                        Some(prev) if prev != s => {
                            let t = |s: Option<u32>| {
                                s.map_or("no --seconds".to_string(), |s| format!("--seconds {s}"))
                            };
                            a.err = a.err.take().or(fail(format!(
                                "its checks use {} and {}: one set has one timeout",
                                t(prev),
                                t(s)
                            ))
                            .map(|w| (w, at.clone())));
                        }
                        _ => a.seconds = Some(s),
                    }
                }
            }
        }
        let lists = acc
            .into_iter()
            .map(|(name, a)| {
                let secs = a.seconds.flatten();
                let v = match a.err {
                    Some(e) => Err(e),
                    None if shared.contains(&name) => Err((
                        format!(
                            "-m recent --name {}: another table uses the list too (xt_recent \
                             has one list per name, nft one set per table)",
                            String::from_utf8_lossy(&name)
                        ),
                        String::new(),
                    )),
                    None if a.remove && secs.is_some() => Err((
                        format!(
                            "-m recent --name {}: --remove forgets addresses of any age, but the \
                             list's checks use --seconds (expired elements are gone from the set)",
                            String::from_utf8_lossy(&name)
                        ),
                        String::new(),
                    )),
                    None => Ok((secs, a.mask.unwrap_or([255; 4]))),
                };
                (name, v)
            })
            .collect();
        RecentPlan { lists }
    }

    /// The set declarations of the lists that translate.
    fn decls(&self) -> String {
        let mut s = String::new();
        for (name, v) in &self.lists {
            let Ok((secs, _)) = v else { continue };
            let name = String::from_utf8_lossy(name);
            match secs {
                Some(t) => s.push_str(&format!(
                    "\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {t}s\n\t}}\n\n"
                )),
                None => s.push_str(&format!(
                    "\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic\n\t}}\n\n"
                )),
            }
        }
        s
    }

    /// The nft form of one `-m recent` match (of rule `at`, `CHAIN rule N`).
    fn text(&self, info: &nfr_ipt::layout::RecentInfoV1, at: &str) -> Result<String, String> {
        use nfr_ipt::layout::*;
        let (secs, mask) = match self.lists.get(info.name()) {
            Some(Ok(v)) => *v,
            Some(Err((why, by))) if by.is_empty() || by == at => return Err(why.clone()),
            Some(Err((_, by))) => {
                return Err(format!(
                    "-m recent --name {}: the list has no nft form ({by})",
                    String::from_utf8_lossy(info.name())
                ));
            }
            None => return Err("-m recent".into()),
        };
        let name = String::from_utf8_lossy(info.name());
        let dir = if info.side == XT_RECENT_DEST {
            "daddr"
        } else {
            "saddr"
        };
        let key = if mask == [255; 4] {
            format!("ip {dir}")
        } else {
            format!("ip {dir} & {}.{}.{}.{}", mask[0], mask[1], mask[2], mask[3])
        };
        let cs = info.check_set;
        let look = format!("{key} {}@{name}", op(info.invert != 0));
        Ok(if cs & XT_RECENT_SET != 0 {
            match secs {
                Some(_) => format!("update @{name} {{ {key} }}"),
                None => format!("add @{name} {{ {key} }}"),
            }
        } else if cs & XT_RECENT_UPDATE != 0 {
            match secs {
                Some(_) => format!("{look} update @{name} {{ {key} }}"),
                None => look,
            }
        } else if cs & XT_RECENT_REMOVE != 0 {
            format!("{look} delete @{name} {{ {key} }}")
        } else {
            look
        })
    }
}

/// The `-m recent` list names that more than one of `tables` uses (a list is shared by every
/// table in xt_recent; each nft table would get a set of its own, so they are not imported).
pub fn shared_recent_lists(tables: &[nfr_ipt::Table]) -> std::collections::BTreeSet<Vec<u8>> {
    let mut seen: std::collections::BTreeMap<Vec<u8>, usize> = Default::default();
    for (i, t) in tables.iter().enumerate() {
        let rules = t
            .builtins
            .iter()
            .flat_map(|b| &b.rules)
            .chain(t.user_chains.iter().flat_map(|c| &c.rules));
        for m in rules.flat_map(|r| &r.matches) {
            if let nfr_ipt::Match::Recent(info) = m {
                let e = seen.entry(info.name().to_vec()).or_insert(i);
                if *e != i {
                    *e = usize::MAX;
                }
            }
        }
    }
    seen.into_iter()
        .filter(|(_, i)| *i == usize::MAX)
        .map(|(n, _)| n)
        .collect()
}

/// One table as `.nfr` (see [`tables_to_nfr`]).
pub fn table_to_nfr(t: &nfr_ipt::Table) -> Result<String, String> {
    table_to_nfr_among(t, &Default::default())
}

/// [`table_to_nfr`] for one of several tables: `shared` are the `-m recent` lists another of them
/// uses too ([`shared_recent_lists`]).
pub fn table_to_nfr_among(
    t: &nfr_ipt::Table,
    shared: &std::collections::BTreeSet<Vec<u8>>,
) -> Result<String, String> {
    if nfr_ipt::table_valid_hooks(&t.name) != Some(t.valid_hooks) {
        return Err(format!("`{}` is not one of the iptables tables", t.name));
    }
    let mut errors = Vec::new();
    let mut s = format!("table ip {} {{\n", t.name);
    let recent = RecentPlan::of(t, shared);
    s.push_str(&recent.decls());
    let mut first = true;
    for b in &t.builtins {
        if !first {
            s.push('\n');
        }
        first = false;
        let (ty, prio) = prio_for(&t.name, b.hook);
        let hook = b.hook.name();
        let policy = match b.policy {
            nfr_ipt::Policy::Accept => "accept",
            nfr_ipt::Policy::Drop => "drop",
        };
        let cname = nfr_ipt::hook_chain_name(b.hook);
        s.push_str(&format!(
            "\tchain {cname} {{\n\t\ttype {ty} hook {hook} priority {prio}; policy {policy};\n"
        ));
        for (n, r) in b.rules.iter().enumerate() {
            match rule_text(r, &recent, &format!("{cname} rule {}", n + 1)) {
                Ok(line) => s.push_str(&format!("\t\t{line}\n")),
                Err(e) => errors.push(format!("{cname} rule {}: {e}", n + 1)),
            }
        }
        s.push_str("\t}\n");
    }
    for c in t.sorted_user_chains() {
        if !first {
            s.push('\n');
        }
        first = false;
        if !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
            || c.name
                .starts_with(|ch: char| ch.is_ascii_digit() || ch == '-')
        {
            errors.push(format!("chain name `{}` is not an nft identifier", c.name));
            continue;
        }
        s.push_str(&format!("\tchain {} {{\n", c.name));
        for (n, r) in c.rules.iter().enumerate() {
            match rule_text(r, &recent, &format!("{} rule {}", c.name, n + 1)) {
                Ok(line) => s.push_str(&format!("\t\t{line}\n")),
                Err(e) => errors.push(format!("{} rule {}: {e}", c.name, n + 1)),
            }
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(errors.join("\n"))
    }
}

fn nft_str(b: &[u8]) -> Result<String, String> {
    let t = std::str::from_utf8(b).map_err(|_| "a string that is not UTF-8".to_string())?;
    if t.contains('"') || t.contains('\n') {
        return Err(format!("the string {t:?} cannot be quoted in nft syntax"));
    }
    Ok(format!("\"{t}\""))
}

fn op(inv: bool) -> &'static str {
    if inv { "!= " } else { "" }
}

fn prefix_len(m: [u8; 4]) -> Option<u32> {
    let v = u32::from_be_bytes(m);
    let n = v.leading_ones();
    (v.checked_shl(n).unwrap_or(0) == 0).then_some(n)
}

fn addr_text(a: [u8; 4], m: [u8; 4]) -> Result<String, String> {
    let n = prefix_len(m).ok_or("a non-prefix address mask")?;
    let ip = format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
    Ok(if n == 32 { ip } else { format!("{ip}/{n}") })
}

fn iface_text(name: &[u8; 16], mask: &[u8; 16]) -> Result<String, String> {
    let len = name.iter().position(|b| *b == 0).unwrap_or(16);
    let ml = mask.iter().take_while(|b| **b == 0xff).count();
    let n = std::str::from_utf8(&name[..len]).map_err(|_| "a non-UTF-8 interface name")?;
    if ml == len + 1 || (len == 15 && ml == 16) {
        nft_str(n.as_bytes())
    } else if let Some(stem) = n.strip_suffix('+')
        && ml == len - 1
        && !stem.is_empty()
    {
        nft_str(format!("{stem}*").as_bytes())
    } else if ml == len && len > 0 {
        nft_str(format!("{n}*").as_bytes())
    } else {
        Err("an interface mask iptables syntax cannot write".into())
    }
}

fn ports_text(p: [u16; 2]) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("{}-{}", p[0], p[1])
    }
}

fn flag_set(bits: u8) -> String {
    let v: Vec<String> = TCP_FLAGS
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_ascii_lowercase())
        .collect();
    v.join(" | ")
}

fn rate_text(avg: u32) -> Result<String, String> {
    for (unit, mult) in [
        ("second", 1u64),
        ("minute", 60),
        ("hour", 3600),
        ("day", 86400),
    ] {
        if avg == 0 {
            break;
        }
        let n = 10_000 * mult / u64::from(avg);
        if n >= 1 && 10_000 * mult / n == u64::from(avg) {
            return Ok(format!("{n}/{unit}"));
        }
    }
    Err(format!("limit average {avg} has no N/unit form"))
}

fn reject_text(w: u32) -> Result<&'static str, String> {
    use nfr_ipt::layout::*;
    Ok(match w {
        IPT_ICMP_PORT_UNREACHABLE => "reject",
        IPT_ICMP_NET_UNREACHABLE => "reject with icmp type net-unreachable",
        IPT_ICMP_HOST_UNREACHABLE => "reject with icmp type host-unreachable",
        IPT_ICMP_PROT_UNREACHABLE => "reject with icmp type prot-unreachable",
        IPT_ICMP_NET_PROHIBITED => "reject with icmp type net-prohibited",
        IPT_ICMP_HOST_PROHIBITED => "reject with icmp type host-prohibited",
        IPT_ICMP_ADMIN_PROHIBITED => "reject with icmp type admin-prohibited",
        IPT_TCP_RESET => "reject with tcp reset",
        _ => return Err(format!("REJECT type {w}")),
    })
}

fn xmark_text(what: &str, mark: u32, mask: u32) -> Result<String, String> {
    Ok(if mask == u32::MAX {
        format!("{what} set 0x{mark:x}")
    } else if mask == mark {
        format!("{what} set {what} | 0x{mark:x}")
    } else if mark == 0 {
        format!("{what} set {what} & 0x{:x}", !mask)
    } else if mask == 0 {
        format!("{what} set {what} ^ 0x{mark:x}")
    } else {
        return Err(format!(
            "{what} (value 0x{mark:x}, mask 0x{mask:x}) set in two steps"
        ));
    })
}

/// One iptables rule as one nft rule line.
pub fn rule_to_nfr(r: &nfr_ipt::Rule) -> Result<String, String> {
    rule_text(r, &RecentPlan::default(), "")
}

/// [`rule_to_nfr`] with the table's `-m recent` lists.
fn rule_text(r: &nfr_ipt::Rule, recent: &RecentPlan, at: &str) -> Result<String, String> {
    use nfr_ipt::layout::*;
    use nfr_ipt::{Match as M, Target as T};
    let ip = &r.ip.ip;
    let inv = |b: u8| ip.invflags & b != 0;
    let mut p: Vec<String> = Vec::new();
    if ip.flags & IPT_F_FRAG != 0 {
        return Err("-f (fragments)".into());
    }
    if ip.iniface_mask != [0; 16] {
        p.push(format!(
            "iifname {}{}",
            op(inv(IPT_INV_VIA_IN)),
            iface_text(&ip.iniface, &ip.iniface_mask)?
        ));
    }
    if ip.outiface_mask != [0; 16] {
        p.push(format!(
            "oifname {}{}",
            op(inv(IPT_INV_VIA_OUT)),
            iface_text(&ip.outiface, &ip.outiface_mask)?
        ));
    }
    if ip.smsk != [0; 4] {
        p.push(format!(
            "ip saddr {}{}",
            op(inv(IPT_INV_SRCIP)),
            addr_text(ip.src, ip.smsk)?
        ));
    }
    if ip.dmsk != [0; 4] {
        p.push(format!(
            "ip daddr {}{}",
            op(inv(IPT_INV_DSTIP)),
            addr_text(ip.dst, ip.dmsk)?
        ));
    }
    let proto = match ip.proto {
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        n => n.to_string(),
    };
    // `-p` is part of ip_packet_match, before every match: a match that changes state (`-m
    // recent`) must not run for packets of other protocols, so the protocol comes first then.
    let proto_match = |m: &M| matches!(m, M::Tcp(_) | M::Udp(_) | M::Icmp(_) | M::Multiport(_));
    let stateful_first = r
        .matches
        .iter()
        .take_while(|m| !proto_match(m))
        .any(|m| matches!(m, M::Recent(_)));
    let implied = !inv(IPT_INV_PROTO) && !stateful_first && r.matches.iter().any(proto_match);
    if ip.proto != 0 && !implied {
        p.push(format!("meta l4proto {}{proto}", op(inv(IPT_INV_PROTO))));
    }
    let mut comment = None;
    for m in &r.matches {
        match m {
            M::Tcp(t) => {
                if t.option != 0 || t.invflags & XT_TCP_INV_OPTION != 0 {
                    return Err("--tcp-option".into());
                }
                if t.spts != [0, 65535] {
                    p.push(format!(
                        "tcp sport {}{}",
                        op(t.invflags & XT_TCP_INV_SRCPT != 0),
                        ports_text(t.spts)
                    ));
                }
                if t.dpts != [0, 65535] {
                    p.push(format!(
                        "tcp dport {}{}",
                        op(t.invflags & XT_TCP_INV_DSTPT != 0),
                        ports_text(t.dpts)
                    ));
                }
                if t.flg_mask != 0 {
                    let cmp = if t.flg_cmp == 0 {
                        "0x0".to_string()
                    } else {
                        flag_set(t.flg_cmp)
                    };
                    let o = if t.invflags & XT_TCP_INV_FLAGS != 0 {
                        "!="
                    } else {
                        "=="
                    };
                    p.push(format!("tcp flags & ({}) {o} {cmp}", flag_set(t.flg_mask)));
                }
                if t.spts == [0, 65535]
                    && t.dpts == [0, 65535]
                    && t.flg_mask == 0
                    && !p.iter().any(|x| x == "meta l4proto tcp")
                {
                    p.push("meta l4proto tcp".into());
                }
            }
            M::Udp(u) => {
                if u.spts != [0, 65535] {
                    p.push(format!(
                        "udp sport {}{}",
                        op(u.invflags & XT_UDP_INV_SRCPT != 0),
                        ports_text(u.spts)
                    ));
                }
                if u.dpts != [0, 65535] {
                    p.push(format!(
                        "udp dport {}{}",
                        op(u.invflags & XT_UDP_INV_DSTPT != 0),
                        ports_text(u.dpts)
                    ));
                }
            }
            M::Icmp(c) => {
                if c.icmp_type == 0xff {
                    continue;
                }
                let i = c.invflags & IPT_ICMP_INV != 0;
                let ty = nfr_grammar::catalog::Datatype::IcmpType
                    .symbol_name(u64::from(c.icmp_type))
                    .map_or_else(|| c.icmp_type.to_string(), str::to_string);
                match c.code {
                    [0, 255] => p.push(format!("icmp type {}{ty}", op(i))),
                    [a, b] if a == b && !i => p.push(format!("icmp type {ty} icmp code {a}")),
                    _ => return Err("an icmp code range".into()),
                }
            }
            M::Conntrack(c) => {
                let known = XT_CONNTRACK_STATE | XT_CONNTRACK_STATUS | XT_CONNTRACK_DIRECTION;
                if c.match_flags & !known != 0 {
                    return Err("conntrack options other than --ctstate/--ctstatus/--ctdir".into());
                }
                if c.match_flags & XT_CONNTRACK_STATE != 0 {
                    let i = c.invert_flags & XT_CONNTRACK_STATE != 0;
                    let nat = c.state_mask & (XT_CONNTRACK_STATE_SNAT | XT_CONNTRACK_STATE_DNAT);
                    let st = c.state_mask & !nat;
                    if nat != 0 && st != 0 && !i {
                        // Any of the states or the NAT status: an OR of two fields.
                        return Err(
                            "--ctstate mixing SNAT/DNAT with states (write two rules)".into()
                        );
                    }
                    if nat != 0 {
                        let mut v = Vec::new();
                        if nat & XT_CONNTRACK_STATE_SNAT != 0 {
                            v.push("snat");
                        }
                        if nat & XT_CONNTRACK_STATE_DNAT != 0 {
                            v.push("dnat");
                        }
                        if i && v.len() > 1 {
                            return Err("an inverted --ctstate SNAT,DNAT".into());
                        }
                        // A status bit: `!=` would compare the whole status word.
                        if i {
                            p.push(format!("ct status & {} == 0", v.join(",")));
                        } else {
                            p.push(format!("ct status {}", v.join(",")));
                        }
                    }
                    // `! --ctstate RELATED,ESTABLISHED,DNAT` (kube-proxy's KUBE-FIREWALL): none of the states
                    // and not the NAT status, two matches.
                    if st != 0 || nat == 0 {
                        let names = [
                            (XT_CONNTRACK_STATE_INVALID, "invalid"),
                            (XT_CONNTRACK_STATE_ESTABLISHED, "established"),
                            (XT_CONNTRACK_STATE_RELATED, "related"),
                            (XT_CONNTRACK_STATE_NEW, "new"),
                            (XT_CONNTRACK_STATE_UNTRACKED, "untracked"),
                        ];
                        let v: Vec<&str> = names
                            .iter()
                            .filter(|(b, _)| st & b != 0)
                            .map(|(_, n)| *n)
                            .collect();
                        if v.is_empty() || st & !0x10f != 0 {
                            return Err("this --ctstate".into());
                        }
                        // One state bit is set at a time: none of several is `!= { ... }`.
                        if i && v.len() > 1 {
                            p.push(format!("ct state != {{ {} }}", v.join(", ")));
                        } else {
                            p.push(format!("ct state {}{}", op(i), v.join(",")));
                        }
                    }
                }
                if c.match_flags & XT_CONNTRACK_STATUS != 0 {
                    let i = c.invert_flags & XT_CONNTRACK_STATUS != 0;
                    let names = [
                        (1u16, "expected"),
                        (2, "seen-reply"),
                        (4, "assured"),
                        (8, "confirmed"),
                    ];
                    let v: Vec<&str> = names
                        .iter()
                        .filter(|(b, _)| c.status_mask & b != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    if v.is_empty() || (i && v.len() > 1) || c.status_mask & !0xf != 0 {
                        return Err("this --ctstatus".into());
                    }
                    if i {
                        p.push(format!("ct status & {} == 0", v.join(",")));
                    } else {
                        p.push(format!("ct status {}", v.join(",")));
                    }
                }
                if c.match_flags & XT_CONNTRACK_DIRECTION != 0 {
                    let reply = c.invert_flags & XT_CONNTRACK_DIRECTION != 0;
                    p.push(format!(
                        "ct direction {}",
                        if reply { "reply" } else { "original" }
                    ));
                }
            }
            M::Multiport(mp) => {
                let l4 = match ip.proto {
                    6 => "tcp",
                    17 => "udp",
                    _ => return Err("multiport without -p tcp/udp".into()),
                };
                let dir = match mp.flags {
                    XT_MULTIPORT_SOURCE => "sport",
                    XT_MULTIPORT_DESTINATION => "dport",
                    _ => return Err("multiport --ports (either direction)".into()),
                };
                let mut v = Vec::new();
                let mut i = 0usize;
                let n = usize::from(mp.count).min(15);
                while i < n {
                    let a = mp.ports[i];
                    if mp.pflags[i] != 0 && i + 1 < n {
                        v.push(format!("{a}-{}", mp.ports[i + 1]));
                        i += 2;
                    } else {
                        v.push(a.to_string());
                        i += 1;
                    }
                }
                p.push(format!(
                    "{l4} {dir} {}{{ {} }}",
                    op(mp.invert != 0),
                    v.join(", ")
                ));
            }
            M::Mark(mk) | M::Connmark(mk) => {
                let what = if matches!(m, M::Mark(_)) {
                    "meta mark"
                } else {
                    "ct mark"
                };
                if mk.mask == u32::MAX {
                    p.push(format!("{what} {}0x{:x}", op(mk.invert != 0), mk.mark));
                } else {
                    let o = if mk.invert != 0 { "!=" } else { "==" };
                    p.push(format!("{what} & 0x{:x} {o} 0x{:x}", mk.mask, mk.mark));
                }
            }
            M::Comment(c) => comment = Some(nft_str(c)?),
            M::Limit(l) => {
                let mut t = format!("limit rate {}", rate_text(l.avg)?);
                if l.burst != 5 {
                    t.push_str(&format!(" burst {} packets", l.burst));
                }
                p.push(t);
            }
            M::Dscp(d) => p.push(format!("ip dscp {}0x{:02x}", op(d.invert != 0), d.dscp)),
            M::Iprange(ir) => {
                let f = |a: [u8; 4]| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
                if ir.flags & IPRANGE_SRC != 0 {
                    p.push(format!(
                        "ip saddr {}{}-{}",
                        op(ir.flags & IPRANGE_SRC_INV != 0),
                        f(ir.src_min),
                        f(ir.src_max)
                    ));
                }
                if ir.flags & IPRANGE_DST != 0 {
                    p.push(format!(
                        "ip daddr {}{}-{}",
                        op(ir.flags & IPRANGE_DST_INV != 0),
                        f(ir.dst_min),
                        f(ir.dst_max)
                    ));
                }
            }
            // libxt_addrtype's xlate: `fib saddr|daddr type ...`
            M::Addrtype(at) => {
                if at.flags & (XT_ADDRTYPE_LIMIT_IFACE_IN | XT_ADDRTYPE_LIMIT_IFACE_OUT) != 0 {
                    return Err("addrtype --limit-iface-in/out".into());
                }
                for (mask, inv, dir) in [
                    (at.source, XT_ADDRTYPE_INVERT_SOURCE, "saddr"),
                    (at.dest, XT_ADDRTYPE_INVERT_DEST, "daddr"),
                ] {
                    let names: Vec<String> = ADDRTYPE_NAMES
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, n)| n.to_ascii_lowercase())
                        .collect();
                    let o = op(at.flags & inv != 0);
                    match names.as_slice() {
                        [] => {}
                        [one] => p.push(format!("fib {dir} type {o}{one}")),
                        _ => p.push(format!("fib {dir} type {o}{{ {} }}", names.join(", "))),
                    }
                }
            }
            // libxt_statistic's xlate
            M::Statistic(st) => {
                let inv = st.flags & XT_STATISTIC_INVERT != 0;
                if st.mode == XT_STATISTIC_MODE_NTH {
                    p.push(format!(
                        "numgen inc mod {} {}{}",
                        u64::from(st.every) + 1,
                        if inv { "!= " } else { "" },
                        st.packet
                    ));
                } else {
                    p.push(format!(
                        "meta random & {} {} {}",
                        i32::MAX,
                        if inv { ">=" } else { "<" },
                        st.every
                    ));
                }
            }
            M::Recent(info) => p.push(recent.text(info, at)?),
            other => return Err(format!("-m {}", other.name())),
        }
    }
    if r.counters.pcnt != 0 || r.counters.bcnt != 0 {
        p.push(format!(
            "counter packets {} bytes {}",
            r.counters.pcnt, r.counters.bcnt
        ));
    }
    match &r.target {
        T::Accept => p.push("accept".into()),
        T::Drop => p.push("drop".into()),
        T::Return => p.push("return".into()),
        T::Queue => p.push("queue num 0".into()),
        T::Jump(c) => p.push(format!("jump {c}")),
        T::Goto(c) => p.push(format!("goto {c}")),
        T::Fallthrough => {
            if p.is_empty() {
                p.push("counter".into());
            }
        }
        T::Reject(w) => p.push(reject_text(*w)?.into()),
        T::Log(l) => {
            if l.logflags != 0 {
                return Err("LOG flags".into());
            }
            let mut t = "log".to_string();
            if !l.prefix.is_empty() {
                t.push_str(&format!(" prefix {}", nft_str(&l.prefix)?));
            }
            let name = nfr_proto::catalog::LOG_LEVEL
                .iter()
                .find(|&&(_, v)| v == u64::from(l.level) && v <= 7)
                .map(|&(n, _)| n)
                .ok_or("a LOG level above 7")?;
            if l.level != 4 {
                t.push_str(&format!(" level {name}"));
            }
            p.push(t);
        }
        T::Mark(mk) => p.push(xmark_text("meta mark", mk.mark, mk.mask)?),
        T::Connmark { info, .. } => match info.mode {
            XT_CONNMARK_SET if info.shift_bits == 0 => {
                p.push(xmark_text("ct mark", info.ctmark, info.ctmask)?)
            }
            XT_CONNMARK_SAVE
                if info.ctmask == u32::MAX && info.nfmask == u32::MAX && info.shift_bits == 0 =>
            {
                p.push("ct mark set meta mark".into())
            }
            XT_CONNMARK_RESTORE
                if info.ctmask == u32::MAX && info.nfmask == u32::MAX && info.shift_bits == 0 =>
            {
                p.push("meta mark set ct mark".into())
            }
            _ => return Err("this CONNMARK".into()),
        },
        T::Ct { info, .. } => {
            if info.flags & XT_CT_NOTRACK != 0 {
                p.push("notrack".into());
            } else if !info.helper.is_empty() {
                // A raw-table template attaches the helper when conntrack creates the entry;
                // nft's `ct helper set` works after conntrack (a no-op in a raw chain).
                return Err(format!(
                    "CT --helper {} (write a `ct helper` object and `ct helper set` in a \
                     chain after conntrack, e.g. `priority filter`)",
                    String::from_utf8_lossy(&info.helper)
                ));
            } else {
                return Err("this CT target".into());
            }
        }
        T::Nfqueue(q) => {
            let mut t = if q.queues_total > 1 {
                format!(
                    "queue num {}-{}",
                    q.queuenum,
                    q.queuenum + q.queues_total - 1
                )
            } else {
                format!("queue num {}", q.queuenum)
            };
            if q.flags & NFQ_FLAG_BYPASS != 0 {
                t.push_str(" bypass");
            }
            if q.flags & NFQ_FLAG_CPU_FANOUT != 0 {
                t.push_str(" fanout");
            }
            p.push(t);
        }
        T::Nat { kind, range, .. } => {
            let f = |a: [u8; 4]| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
            let mut to = String::new();
            if range.flags & NF_NAT_RANGE_MAP_IPS != 0 {
                to.push_str(&f(range.min_addr));
                if range.max_addr != range.min_addr {
                    to.push_str(&format!("-{}", f(range.max_addr)));
                }
            }
            if range.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0 {
                to.push_str(&format!(
                    ":{}",
                    ports_text([range.min_proto, range.max_proto])
                ));
            }
            let mut t = match kind {
                nfr_ipt::NatKind::Snat => format!("snat to {to}"),
                nfr_ipt::NatKind::Dnat => format!("dnat to {to}"),
                nfr_ipt::NatKind::Masquerade if to.is_empty() => "masquerade".into(),
                nfr_ipt::NatKind::Masquerade => format!("masquerade to {to}"),
                nfr_ipt::NatKind::Redirect if to.is_empty() => "redirect".into(),
                nfr_ipt::NatKind::Redirect => format!("redirect to {to}"),
            };
            if range.flags & NF_NAT_RANGE_PROTO_RANDOM != 0 {
                t.push_str(" random");
            }
            if range.flags & NF_NAT_RANGE_PROTO_RANDOM_FULLY != 0 {
                t.push_str(" fully-random");
            }
            if range.flags & NF_NAT_RANGE_PERSISTENT != 0 {
                t.push_str(" persistent");
            }
            p.push(t);
        }
        T::Other { name, .. } => return Err(format!("-j {name}")),
    }
    if let Some(c) = comment {
        p.push(format!("comment {c}"));
    }
    Ok(p.join(" "))
}
