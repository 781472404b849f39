//! Unit tests of the checker, one group per check: what the Hir holds (dependencies,
//! bytes, ids) and which code each mistake gets.

use super::*;
use crate::hir::{
    ExprKind, Item, KeyPart, MapData, ObjKind, ObjTarget, Op, Rhs, StmtKind, VerdictKind, VmapRef,
};

fn run(src: &str) -> (Option<Hir>, Vec<Diagnostic>) {
    let (_, hir, diags) = check_source("t.nfr", src);
    (hir, diags)
}

fn ok(src: &str) -> Hir {
    let (hir, diags) = run(src);
    let errs: Vec<_> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code, d.message.clone()))
        .collect();
    assert!(errs.is_empty(), "unexpected errors: {errs:?}");
    hir.expect("hir")
}

fn codes(src: &str) -> Vec<&'static str> {
    let (hir, diags) = run(src);
    if diags.iter().any(|d| d.is_error()) {
        assert!(hir.is_none());
    }
    diags.iter().map(|d| d.code).collect()
}

fn in_chain(family: &str, rule: &str) -> String {
    format!(
        "table {family} t {{\n chain c {{\n  type filter hook input priority 0;\n  {rule}\n }}\n}}\n"
    )
}

/// The rule's matches as (selector, op, value bytes, implicit).
fn matches(hir: &Hir) -> Vec<(String, Op, Vec<u8>, bool)> {
    let rule = &hir.chains[0].rules[0];
    rule.matches()
        .map(|m| {
            let sel = match &m.left.kind {
                ExprKind::Payload { field, .. } => {
                    field.map_or_else(String::new, |f| format!("{} {}", f.proto, f.field))
                }
                ExprKind::Meta { key } => format!("meta {}", key.name),
                ExprKind::Ct { key, .. } => format!("ct {}", key.name),
                _ => "other".into(),
            };
            let bytes = match &m.right {
                Rhs::Value(v) => v.bytes.to_vec(),
                _ => vec![],
            };
            (sel, m.op, bytes, m.implicit)
        })
        .collect()
}

// ---- deps ---------------------------------------------------------------------------

#[test]
fn transport_field_gets_l4proto_in_every_family() {
    for fam in ["ip", "ip6", "inet"] {
        let h = ok(&in_chain(fam, "tcp dport 22 accept"));
        assert_eq!(
            matches(&h),
            vec![
                ("meta l4proto".into(), Op::Eq, vec![6], true),
                ("tcp dport".into(), Op::Eq, vec![0, 22], false)
            ],
            "{fam}"
        );
    }
}

#[test]
fn ip_field_gets_nfproto_only_in_inet() {
    let h = ok(&in_chain("inet", "ip saddr 1.2.3.4"));
    assert_eq!(
        matches(&h),
        vec![
            ("meta nfproto".into(), Op::Eq, vec![2], true),
            ("ip saddr".into(), Op::Eq, vec![1, 2, 3, 4], false)
        ]
    );
    let h = ok(&in_chain("ip", "ip saddr 1.2.3.4"));
    assert_eq!(matches(&h).len(), 1);
    let h = ok(&in_chain("inet", "ip6 daddr ::1"));
    assert_eq!(
        matches(&h)[0],
        ("meta nfproto".into(), Op::Eq, vec![10], true)
    );
}

#[test]
fn icmp_in_inet_gets_nfproto_and_l4proto_like_nft() {
    let h = ok(&in_chain("inet", "icmp type echo-request"));
    let m = matches(&h);
    assert_eq!(m[0], ("meta nfproto".into(), Op::Eq, vec![2], true));
    assert_eq!(m[1], ("meta l4proto".into(), Op::Eq, vec![1], true));
    assert_eq!(m[2], ("icmp type".into(), Op::Eq, vec![8], false));
    // nft keeps an explicit nfproto and adds only the l4proto (icmp.t)
    let h = ok(&in_chain(
        "inet",
        "meta nfproto ipv4 icmpv6 type echo-request",
    ));
    let m = matches(&h);
    assert_eq!(m.len(), 3);
    assert_eq!(m[1], ("meta l4proto".into(), Op::Eq, vec![58], true));
}

#[test]
fn explicit_protocol_satisfies_dependency() {
    let h = ok(&in_chain("ip", "ip protocol tcp tcp dport 22"));
    assert_eq!(matches(&h).iter().filter(|m| m.3).count(), 0);
    let h = ok(&in_chain("ip", "meta l4proto 6 tcp dport 22"));
    assert_eq!(matches(&h).iter().filter(|m| m.3).count(), 0);
    // `!=` fixes nothing: nft inserts l4proto udp (tcp.t.payload)
    let h = ok(&in_chain("ip", "ip protocol != tcp udp dport 53"));
    assert_eq!(
        matches(&h)[1],
        ("meta l4proto".into(), Op::Eq, vec![17], true)
    );
    // th needs no dependency
    let h = ok(&in_chain("inet", "meta l4proto udp th dport 1"));
    assert_eq!(matches(&h).len(), 2);
    let h = ok(&in_chain("inet", "th dport 1"));
    assert_eq!(matches(&h).len(), 1);
}

#[test]
fn conflicting_dependencies_name_both_places() {
    let src = in_chain("inet", "tcp dport 22 udp sport 53 accept");
    let (_, d) = run(&src);
    let c: Vec<_> = d.iter().filter(|d| d.code == "E0300").collect();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].labels.len(), 1);
    let at = |s: Span| &src[s.range()];
    assert_eq!(at(c[0].primary), "udp sport");
    assert_eq!(at(c[0].labels[0].0), "tcp dport");
    assert_eq!(
        codes(&in_chain("ip", "ip protocol udp tcp dport 22")),
        vec!["E0300"]
    );
    assert_eq!(
        codes(&in_chain("inet", "ip saddr 1.1.1.1 ip6 daddr ::1")),
        vec!["E0300"]
    );
    assert_eq!(
        codes(&in_chain("inet", "meta l4proto udp meta l4proto tcp")),
        vec!["E0300"]
    );
}

#[test]
fn reject_with_tcp_reset_depends_on_tcp() {
    let h = ok(&in_chain("ip", "reject with tcp reset"));
    assert_eq!(
        matches(&h),
        vec![("meta l4proto".into(), Op::Eq, vec![6], true)]
    );
    assert!(matches!(
        h.chains[0].rules[0].stmts().next().map(|s| &s.kind),
        Some(StmtKind::Reject(crate::hir::RejectKind::TcpReset))
    ));
    assert_eq!(
        codes(&in_chain("ip", "reject with icmpv6 no-route")),
        vec!["E0203"]
    );
}

// ---- types and values ------------------------------------------------------------------

#[test]
fn values_are_network_order_bytes() {
    let h = ok(&in_chain(
        "ip",
        "meta mark 0x10203040 ct state new,established iifname \"eth0\" iif lo",
    ));
    let m = matches(&h);
    assert_eq!(m[0].2, vec![0x10, 0x20, 0x30, 0x40]);
    assert_eq!((m[1].1, m[1].2.clone()), (Op::Bitmask, vec![0, 0, 0, 10]));
    assert_eq!(m[2].2, b"eth0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec());
    assert_eq!(m[3].2, vec![0, 0, 0, 1]);
    let h = ok(&in_chain("ip", "ct state == established"));
    assert_eq!(matches(&h)[0].1, Op::Eq);
}

#[test]
fn sub_byte_fields_are_right_aligned_with_a_load_window() {
    let h = ok(&in_chain("ip", "ip dscp cs1"));
    let rule = &h.chains[0].rules[0];
    let m = rule.matches().next().unwrap();
    assert_eq!(matches(&h)[0].2, vec![0x08]);
    assert_eq!(m.left.load_window(), Some((1, 1, Some(vec![0xfc]), 2)));
    let h = ok(&in_chain("ip", "tcp dport 1"));
    let m = h.chains[0].rules[0].matches().nth(1).unwrap();
    assert_eq!(m.left.load_window(), Some((2, 2, None, 0)));
}

#[test]
fn prefixes_ranges_and_sets() {
    let h = ok(&in_chain(
        "ip",
        "ip saddr 10.1.2.3/8 tcp dport 1000-2000 tcp sport { 22, 80-90 }",
    ));
    let ms: Vec<_> = h.chains[0].rules[0]
        .matches()
        .filter(|m| !m.implicit)
        .collect();
    let Rhs::Prefix { value, len } = &ms[0].right else {
        panic!("{:?}", ms[0].right)
    };
    assert_eq!((value.bytes.to_vec(), *len), (vec![10, 0, 0, 0], 8));
    let Rhs::Range { lo, hi } = &ms[1].right else {
        panic!()
    };
    assert_eq!((lo.as_u128(), hi.as_u128()), (1000, 2000));
    let Rhs::Set(s) = &ms[2].right else { panic!() };
    assert!(s.interval);
    assert_eq!(s.elements.len(), 2);
    assert!(matches!(s.elements[1].key[0], KeyPart::Range { .. }));
}

#[test]
fn range_and_family_errors() {
    assert_eq!(codes(&in_chain("ip", "tcp dport 65536")), vec!["E0200"]);
    assert_eq!(codes(&in_chain("ip", "ip ttl 256")), vec!["E0200"]);
    assert_eq!(codes(&in_chain("ip", "ip saddr 1.2.3.4/33")), vec!["E0202"]);
    assert_eq!(codes(&in_chain("ip6", "ip6 saddr ::/129")), vec!["E0202"]);
    assert_eq!(codes(&in_chain("ip", "ip6 saddr ::1")), vec!["E0203"]);
    assert_eq!(codes(&in_chain("ip6", "ip saddr 1.1.1.1")), vec!["E0203"]);
    assert_eq!(codes(&in_chain("ip", "ip saddr ::1")), vec!["E0203"]);
    assert_eq!(codes(&in_chain("ip", "tcp dport 30-20")), vec!["E0207"]);
    assert_eq!(
        codes(&in_chain("ip", "tcp dport < { 1, 2 }")),
        vec!["E0209"]
    );
}

#[test]
fn unknown_symbols_suggest() {
    let (_, d) = run(&in_chain("ip", "tcp dport htps"));
    assert_eq!(d[0].code, "E0201");
    assert_eq!(d[0].help.as_deref(), Some("did you mean `https`?"));
    let (_, d) = run(&in_chain("ip", "ct state estabished"));
    assert_eq!(d[0].help.as_deref(), Some("did you mean `established`?"));
    let (_, d) = run(&in_chain("ip", "icmp type echo-requst"));
    assert_eq!(d[0].help.as_deref(), Some("did you mean `echo-request`?"));
}

// ---- names, sets, defines, includes ----------------------------------------------------------

#[test]
fn named_sets_resolve_and_check_types() {
    let src = "table ip t {\n set s { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 1.2.3.4 } }\n \
               chain c { type filter hook input priority 0; ip saddr @s drop }\n}\n";
    let h = ok(src);
    let m = h.chains[0].rules[0].matches().next().unwrap();
    assert_eq!(m.right, Rhs::SetRef(SetId(0)));
    assert_eq!(h.sets[0].elements.len(), 2);
    assert!(h.sets[0].flags.interval);
    let bad = src.replace("ip saddr @s", "tcp dport @s");
    assert!(codes(&bad).contains(&"E0205"));
    let missing = src.replace("@s drop", "@x drop");
    assert!(codes(&missing).contains(&"E0104"));
    let no_interval = src.replace("flags interval; ", "");
    assert!(codes(&no_interval).contains(&"E0205"));
    let wrong_elem = src.replace("1.2.3.4", "::1");
    assert!(codes(&wrong_elem).contains(&"E0203"));
}

#[test]
fn overlapping_map_keys_are_errors() {
    let c = codes(&in_chain(
        "ip",
        "ip saddr vmap { 10.0.1.0-10.0.1.255 : accept, 10.0.1.1-10.0.2.255 : drop }",
    ));
    assert_eq!(c, vec!["E0205"]);
}

#[test]
fn overlapping_set_elements_are_reported_in_source_order() {
    // the element added first in the text is the one overlapped, though the set's own are read first
    let src = "table ip t { }\nadd element ip t m { 1.2.3.4 : drop, 10.0.0.0/8 : drop, 2.2.2.2 : drop }\n\
               add map ip t m { type ipv4_addr : verdict; elements = { 1.2.3.4 : accept, 3.3.3.3 : drop, \
               2.2.2.2 : accept, 10.1.0.0-10.1.0.9 : drop } }\n";
    let (_, d) = run(src);
    let at = |s: Span| &src[s.start as usize..s.end as usize];
    let found: Vec<(&str, &str)> = d
        .iter()
        .filter(|d| d.message.starts_with("overlapping"))
        .map(|d| (at(d.primary), at(d.labels[0].0)))
        .collect();
    assert_eq!(
        found,
        [
            ("1.2.3.4 : accept", "1.2.3.4 : drop"),
            ("2.2.2.2 : accept", "2.2.2.2 : drop"),
        ],
        "{d:?}"
    );
    // intervals: a range inside a prefix, a prefix inside a range
    let (_, d) = run(&src
        .replace("verdict;", "verdict; flags interval;")
        .replace("1.2.3.4 : drop, ", ""));
    let found: Vec<(&str, &str)> = d
        .iter()
        .filter(|d| d.message.starts_with("overlapping"))
        .map(|d| (at(d.primary), at(d.labels[0].0)))
        .collect();
    assert_eq!(found.len(), 2, "{d:?}");
}

#[test]
fn duplicates_report_both_spans() {
    let (_, d) = run("table ip t { chain a { }\nchain a { } }\n");
    let x = d.iter().find(|d| d.code == "E0101").expect("E0101");
    assert_eq!(x.labels.len(), 1);
    assert_ne!(x.labels[0].0, x.primary);
    assert!(codes("table ip t { }\ntable ip t { }\n").contains(&"E0100"));
    // `add table` merges silently, as in nft
    assert!(!codes("add table ip t\ntable ip t { }\n").contains(&"E0100"));
}

#[test]
fn defines_substitute_and_flatten() {
    let src = "define ports = { 22, 80 }\ndefine lan = 10.0.0.0/8\n".to_string()
        + &in_chain("ip", "ip saddr $lan tcp dport { $ports, 443 } accept");
    let h = ok(&src);
    let ms: Vec<_> = h.chains[0].rules[0]
        .matches()
        .filter(|m| !m.implicit)
        .collect();
    assert!(matches!(ms[0].right, Rhs::Prefix { len: 8, .. }));
    let Rhs::Set(s) = &ms[1].right else { panic!() };
    assert_eq!(s.elements.len(), 3);
    let (_, d) = run(&in_chain("ip", "tcp dport $nope"));
    assert_eq!(d[0].code, "E0010");
}

#[test]
fn includes_go_through_the_loader() {
    let mut sm = SourceMap::new();
    let root = sm.add("etc/main.nfr", "include \"rules/a.nfr\"\ntable ip t { chain c { type filter hook input priority 0; tcp dport $p accept } }\n");
    let mut seen = Vec::new();
    let mut loader = |p: &str| {
        seen.push(p.to_string());
        match p {
            "etc/rules/a.nfr" => Ok("define p = 22\n".to_string()),
            _ => Err("no such file".to_string()),
        }
    };
    let (hir, d) = check(&mut sm, root, &mut loader);
    assert!(d.is_empty(), "{d:?}");
    assert!(hir.is_some());
    assert_eq!(seen, vec!["etc/rules/a.nfr"]);
    assert_eq!(sm.name(FileId(1)), "etc/rules/a.nfr");

    let mut sm = SourceMap::new();
    let root = sm.add("m.nfr", "include \"x.nfr\"\n");
    let mut cyc = |p: &str| match p {
        "x.nfr" => Ok("include \"m.nfr\"\n".to_string()),
        _ => Err("?".to_string()),
    };
    let (_, d) = check(&mut sm, root, &mut cyc);
    assert_eq!(d.iter().map(|d| d.code).collect::<Vec<_>>(), vec!["E0003"]);

    let mut sm = SourceMap::new();
    let root = sm.add("m.nfr", "include \"gone.nfr\"\n");
    let (_, d) = check(&mut sm, root, &mut NoIncludes);
    assert_eq!(d[0].code, "E0002");
}

// ---- chains, hooks, verdicts --------------------------------------------------------------

#[test]
fn base_chain_checks() {
    assert_eq!(
        codes("table ip t { chain c { type nat hook forward priority 0; } }"),
        vec!["E0400"]
    );
    assert_eq!(
        codes("table ip t { chain c { type route hook input priority 0; } }"),
        vec!["E0400"]
    );
    assert_eq!(
        codes("table ip t { chain c { type nat hook prerouting priority -200; } }"),
        vec!["E0401"]
    );
    assert!(
        codes("table ip t { chain c { type nat hook prerouting priority dstnat; } }").is_empty()
    );
    assert_eq!(
        codes("table ip t { chain c { type filter hook input priority dstnat; } }"),
        vec!["E0404"]
    );
    assert!(codes("table ip t { chain i { type filter hook input priority 0; jump c }\nchain c { policy drop; } }")
        .contains(&"E0403"));
    assert_eq!(
        codes("table arp t { chain c { type filter hook input priority 0; } }"),
        vec!["E0020"]
    );
    assert_eq!(
        codes("table inet t { chain c { type filter hook ingress priority 0; } }"),
        vec!["E0400"]
    );
    assert!(
        codes("table inet t { chain c { type filter hook ingress device \"lo\" priority 0; } }")
            .is_empty()
    );
    assert_eq!(
        codes("table ip t { chain c { type filter hook input device \"lo\" priority 0; } }"),
        vec!["E0400"]
    );
    let h =
        ok("table ip t { chain c { type filter hook input priority mangle - 5; policy drop; } }");
    let b = h.chains[0].base().unwrap();
    assert_eq!(
        (b.priority, b.policy, b.hook),
        (-155, crate::hir::Policy::Drop, crate::hir::Hook::Input)
    );
}

#[test]
fn jumps_resolve_to_user_chains_only() {
    let h = ok(
        "table ip t { chain i { type filter hook input priority 0; jump u }\nchain u { accept } }",
    );
    assert_eq!(
        h.chains[0].rules[0].verdict.as_ref().unwrap().kind,
        VerdictKind::Jump(ChainId(1))
    );
    assert!(
        codes("table ip t { chain i { type filter hook input priority 0; jump x } }")
            .contains(&"E0103")
    );
    assert!(
        codes("table ip t { chain i { type filter hook input priority 0; jump o }\nchain o { type filter hook output priority 0; } }")
            .contains(&"E0105")
    );
}

#[test]
fn vmaps_are_items_and_graph_edges() {
    let h = ok(
        "table ip t { chain i { type filter hook input priority 0; tcp dport vmap { 22 : jump u, 80 : accept } counter }\nchain u { } }",
    );
    let r = &h.chains[0].rules[0];
    assert!(r.items.iter().any(|i| matches!(i, Item::Vmap(_))));
    assert!(matches!(r.items.last(), Some(Item::Stmt(_))));
    let g = loops::graph_from_hir(&h);
    assert_eq!(g.edges.len(), 1);
}

#[test]
fn loops_depth_and_unreachable() {
    let c = codes(
        "table ip t { chain i { type filter hook input priority 0; jump a }\nchain a { jump b }\nchain b { jump a } }",
    );
    assert_eq!(c, vec!["E0500"]);
    let mut src =
        String::from("table ip t { chain i { type filter hook input priority 0; jump c1 }\n");
    for i in 1..=16 {
        src.push_str(&format!("chain c{i} {{ jump c{} }}\n", i + 1));
    }
    src.push_str("chain c17 { } }\n");
    assert_eq!(codes(&src), vec!["E0501"]);
    let (hir, d) =
        run("table ip t { chain i { type filter hook input priority 0; }\nchain lost { } }");
    assert_eq!(d.iter().map(|d| d.code).collect::<Vec<_>>(), vec!["W0600"]);
    assert!(hir.is_some(), "warnings do not block the Hir");
}

#[test]
fn statement_placement() {
    let nat = |hook: &str, prio: &str, stmt: &str| {
        format!(
            "table ip t {{ chain c {{ type nat hook {hook} priority {prio}; meta l4proto tcp {stmt} }} }}"
        )
    };
    assert!(codes(&nat("prerouting", "dstnat", "dnat to 10.0.0.1")).is_empty());
    assert!(codes(&nat("postrouting", "srcnat", "masquerade")).is_empty());
    assert!(codes(&nat("output", "-100", "redirect to :8080")).is_empty());
    assert_eq!(
        codes(&nat("prerouting", "dstnat", "snat to 10.0.0.1")),
        vec!["E0405"]
    );
    assert_eq!(
        codes(&nat("prerouting", "dstnat", "masquerade")),
        vec!["E0405"]
    );
    assert_eq!(codes(&nat("input", "100", "redirect")), vec!["E0405"]);
    assert_eq!(codes(&in_chain("ip", "snat to 1.2.3.4")), vec!["E0405"]);
    assert_eq!(
        codes("table ip t { chain c { type filter hook prerouting priority 0; reject } }"),
        vec!["E0405"]
    );
    // through a user chain: checked against the base chain that reaches it
    let via = "table ip t { chain c { type filter hook input priority 0; jump u }\nchain u { dnat to 1.1.1.1 } }";
    assert_eq!(codes(via), vec!["E0405"]);
    assert_eq!(codes(&in_chain("ip", "accept counter")), vec!["E0406"]);
    assert_eq!(codes(&in_chain("ip", "quota 10 mbytes")), vec!["E0210"]);
}

#[test]
fn nat_needs_family_in_inet_and_a_protocol_for_ports() {
    let nat = |stmt: &str| {
        format!("table inet t {{ chain c {{ type nat hook prerouting priority dstnat; {stmt} }} }}")
    };
    assert!(codes(&nat("dnat ip to 1.2.3.4")).is_empty());
    assert!(codes(&nat("ip saddr 10.0.0.1 dnat to 1.2.3.4")).is_empty());
    assert_eq!(codes(&nat("dnat to 1.2.3.4")), vec!["E0211"]);
    assert_eq!(codes(&nat("dnat ip to 1.2.3.4:80")), vec!["E0211"]);
    assert!(codes(&nat("tcp dport 80 dnat ip to 1.2.3.4:8080")).is_empty());
}

// ---- iptables mapping ---------------------------------------------------------------------

#[test]
fn ipt_mapping_per_table() {
    let h = ok(
        "table ip filter { chain input { type filter hook input priority 0; }\nchain fwd { type filter hook forward priority 0; policy drop; } }\n\
                table inet x { chain input { type filter hook input priority 0; } }",
    );
    assert!(matches!(
        crate::lower::ipt::table_mapping(&h, h.tables[0].id),
        crate::lower::ipt::IptMapping::Maps {
            table: crate::lower::ipt::IptTable::Filter,
            ..
        }
    ));
    let crate::lower::ipt::IptMapping::No(r) =
        &crate::lower::ipt::table_mapping(&h, h.tables[1].id)
    else {
        panic!()
    };
    assert_eq!(r, &vec![crate::lower::ipt::IptReason::Family(Family::Inet)]);
}

#[test]
fn no_input_panics_on_garbage() {
    for src in [
        "",
        "}",
        "table ip t { chain c { type filter hook input priority filter + 9223372036854775807; } }",
        "table ip t { chain c { type filter hook input priority -9223372036854775808; } }",
        "table ip t { chain c { type filter hook input priority 0; meta mark set ip dscp << 200 } }",
        "table ip t { chain c { type filter hook input priority 0; @th,4294967290,64 1 } }",
        "table",
        "table ip t { chain c { type filter hook input priority 0; tcp dport { } } }",
        "define x = $x\ntable ip t { chain c { type filter hook input priority 0; tcp dport $x } }",
        "table ip t { chain c { type filter hook input priority 99999999999999; } }",
        "table ip t { set s { type ipv4_addr . inet_service; elements = { 1.1.1.1 . 22 . 3 } } }",
    ] {
        let _ = run(src);
    }
    // the inner `$x` refers to a definition before this one: there is none
    assert!(codes("define x = $x\ntable ip t { chain c { type filter hook input priority 0; tcp dport $x } }")
        .contains(&"E0010"));
}

#[test]
fn defines_are_positional() {
    let rule = "table ip t {\n chain c {\n type filter hook input priority 0;\n tcp dport $p accept\n }\n}\n";
    // used before its definition
    let (_, d) = run(&format!("{rule}define p = 22\n"));
    assert_eq!(d[0].code, "E0010");
    assert_eq!(d[0].labels.len(), 1, "points at the later definition");
    // redefine: each use sees the definition in force at its position
    let src = format!("define p = 22\n{rule}redefine p = 23\nadd rule ip t c tcp dport $p drop\n");
    let h = ok(&src);
    let ports: Vec<u128> = h.chains[0]
        .rules
        .iter()
        .filter_map(|r| r.matches().find(|m| !m.implicit))
        .filter_map(|m| match &m.right {
            Rhs::Value(v) => Some(v.as_u128()),
            _ => None,
        })
        .collect();
    assert_eq!(ports, vec![22, 23]);
    // undefine
    assert!(codes(&format!("define p = 22\nundefine p\n{rule}")).contains(&"E0010"));
    // a define nested in another sees earlier definitions
    assert!(codes(&format!("define a = 22\ndefine p = $a\n{rule}")).is_empty());
}

#[test]
fn hir_listing_shows_implicit_dependencies() {
    let (sm, h, _) = check_source(
        "t.nfr",
        "table inet t {\n set s { type ipv4_addr; elements = { 1.2.3.4 } }\n chain c { type filter hook input priority 0; ip saddr @s tcp dport { 22, 80 } jump u }\n chain u { }\n}\n",
    );
    let text = h.expect("hir").listing(&sm).to_string();
    assert_eq!(
        text,
        "table inet t [ipt: no (2 reasons)]\n  set s ipv4_addr { 1.2.3.4 }\n  chain c [filter input priority 0 policy accept]\n    \
         meta nfproto == ipv4 (implicit); ip saddr == @s; meta l4proto == tcp (implicit); tcp dport == { 22, 80 }; jump u\n  chain u\n"
    );
}

#[test]
fn notrack_after_conntrack_warns() {
    let w = |hook: &str, prio: &str| {
        codes(&format!(
            "table ip t {{ chain c {{ type filter hook {hook} priority {prio}; notrack }} }}"
        ))
    };
    assert!(w("prerouting", "raw").is_empty());
    assert!(w("output", "-250").is_empty());
    assert_eq!(w("prerouting", "filter"), vec!["W0601"]);
    assert_eq!(w("input", "raw"), vec!["W0601"]);
}

#[test]
fn ifname_wildcard_keeps_only_the_prefix() {
    let h = ok(&in_chain("ip", "iifname \"eth*\" oifname \"lo\""));
    let m = matches(&h);
    assert_eq!(m[0].2, b"eth".to_vec());
    assert_eq!(m[1].2.len(), 16);
}

#[test]
fn objref_maps_resolve_objects_and_refuse_what_nft_refuses() {
    let objs = "counter ssh { }\n counter web { }\n ct helper ftp { type \"ftp\" protocol tcp; }\n \
                map who { type ipv4_addr : counter; elements = { 10.0.0.1 : \"ssh\" } }\n";
    let src = |rule: &str| {
        format!(
            "table ip t {{\n {objs} chain c {{\n  type filter hook prerouting priority 0;\n  {rule}\n }}\n}}\n"
        )
    };
    // Resolved: elements name the objects (counter index, helper type), the key has its
    // protocol dependency, a named object map is referenced.
    let hir = ok(&src(
        "counter name tcp dport map { 22 : \"ssh\", 80 : web } ct helper set tcp dport map { 21 : \"ftp\" }",
    ));
    let stmts: Vec<&StmtKind> = hir.chains[0].rules[0].stmts().map(|s| &s.kind).collect();
    let [
        StmtKind::ObjrefMap {
            kind: ObjKind::Counter,
            map: VmapRef::Anon(a),
            ..
        },
        StmtKind::ObjrefMap {
            kind: ObjKind::CtHelper,
            map: VmapRef::Anon(h),
            ..
        },
    ] = stmts.as_slice()
    else {
        panic!("{stmts:?}")
    };
    let data: Vec<_> = a
        .elements
        .iter()
        .map(|e| e.data.as_deref().cloned())
        .collect();
    assert_eq!(
        data,
        vec![
            Some(MapData::Object(ObjTarget::Counter(0))),
            Some(MapData::Object(ObjTarget::Counter(1)))
        ]
    );
    assert_eq!(
        h.elements[0].data.as_deref().cloned(),
        Some(MapData::Object(ObjTarget::CtHelper {
            name: "ftp".into(),
            helper: "ftp".into()
        }))
    );
    assert_eq!(matches(&hir)[0].0, "meta l4proto");
    let hir = ok(&src("counter name ip saddr map @who"));
    assert_eq!(hir.sets[0].obj, Some(ObjKind::Counter));
    // Undefined, or of the other kind: E0108 (nft: ENOENT).
    assert_eq!(
        codes(&src("counter name tcp dport map { 22 : \"nope\" }")),
        ["E0108"]
    );
    assert_eq!(
        codes(&src("counter name tcp dport map { 21 : \"ftp\" }")),
        ["E0108"]
    );
    assert_eq!(
        codes(&src("ct helper set tcp dport map { 21 : \"ssh\" }")),
        ["E0108"]
    );
    // A key of another type, a key twice (nft: EEXIST), a value that is no name.
    assert_eq!(
        codes(&src("counter name tcp dport map { 10.0.0.1 : \"ssh\" }")),
        ["E0204"]
    );
    assert_eq!(
        codes(&src(
            "counter name tcp dport map { 22 : \"ssh\", 22 : \"web\" }"
        )),
        ["E0205"]
    );
    assert_eq!(
        codes(&src("counter name tcp dport map { 22 : 7 }")),
        ["E0204"]
    );
    // One catch-all element (no key), not two.
    let hir = ok(&src(
        "counter name tcp dport map { 22 : \"ssh\", * : \"web\" }",
    ));
    let Some(StmtKind::ObjrefMap {
        map: VmapRef::Anon(a),
        ..
    }) = hir.chains[0].rules[0].stmts().map(|s| &s.kind).next()
    else {
        panic!()
    };
    assert!(a.elements[1].key.is_empty());
    assert_eq!(
        codes(&src(
            "counter name tcp dport map { * : \"ssh\", * : \"web\" }"
        )),
        ["E0205"]
    );
    // A named object map is not a value map, nor a key type mismatch allowed.
    assert_eq!(codes(&src("meta mark set ip saddr map @who")), ["E0106"]);
    assert_eq!(codes(&src("ct helper set ip saddr map @who")), ["E0106"]);
    assert_eq!(
        codes(&src("counter name ip daddr . tcp dport map @who")),
        ["E0205"]
    );
}

fn chain(family: &str, rules: &[&str]) -> String {
    format!(
        "table {family} t {{\n chain c {{\n  type filter hook input priority 0;\n  {}\n }}\n}}\n",
        rules.join("\n  ")
    )
}

#[test]
fn shadowing_follows_the_window_of_writes() {
    // a writer that never runs closes nothing
    let c = codes(&chain(
        "ip",
        &[
            "ip saddr 1.1.1.1 accept",
            "ip saddr 1.1.1.1 meta mark set 1",
            "ip saddr 1.1.1.1 drop",
        ],
    ));
    assert_eq!(c, ["W0602", "W0602"]);
    // one that runs does
    let c = codes(&chain(
        "ip",
        &[
            "ip saddr 1.1.1.1 accept",
            "meta mark set 1",
            "ip saddr 1.1.1.1 drop",
        ],
    ));
    assert!(c.is_empty(), "{c:?}");
    // unless it ends the chain for what it writes
    let c = codes(&chain(
        "ip",
        &[
            "ip saddr 1.1.1.1 accept",
            "ip daddr 2.2.2.2 meta mark set 1 accept",
            "ip saddr 1.1.1.1 drop",
        ],
    ));
    assert_eq!(c, ["W0602"]);
}

#[test]
fn families_and_named_sets_are_told_apart() {
    let c = codes(&chain(
        "inet",
        &[
            "ip saddr 10.0.0.0/8 accept",
            "ip6 saddr ::1 drop",
            "meta nfproto ipv4 drop",
        ],
    ));
    assert!(c.is_empty(), "{c:?}");
    let c = codes(&chain(
        "inet",
        &[
            "meta nfproto ipv4 accept",
            "meta nfproto ipv6 accept",
            "ip6 saddr ::1 drop",
        ],
    ));
    assert_eq!(c, ["W0602"]);
    // two named sets with one content are two sets (elements can be added to one)
    let src = "table ip t {\n set a { type ipv4_addr; elements = { 1.2.3.4 } }\n \
               set b { type ipv4_addr; elements = { 1.2.3.4 } }\n \
               chain c {\n  type filter hook input priority 0;\n  \
               ip saddr @a counter\n  ip saddr @b counter\n  ip saddr @a counter\n }\n}\n";
    assert_eq!(codes(src), ["W0603"]);
}

#[test]
fn big_unions_are_bounded_and_never_wrong() {
    // a 32 × 32 grid of cells, then the box they fill (within the work caps)
    let mut rules: Vec<String> = Vec::new();
    for a in 0..32 {
        for p in 0..32 {
            if (a, p) != (17, 5) {
                rules.push(format!("ip saddr 10.0.0.{a} tcp dport {p} accept"));
            }
        }
    }
    rules.push("ip saddr 10.0.0.0/27 tcp dport 0-31 drop".to_string());
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    // one cell is missing: not covered
    assert!(codes(&chain("ip", &refs)).is_empty());
    rules.insert(0, "ip saddr 10.0.0.17 tcp dport 5 accept".to_string());
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    assert_eq!(codes(&chain("ip", &refs)), ["W0602"]);
}

#[test]
fn log_prefix_variables_expand_as_nft_does() {
    let h = ok(&format!(
        "define p = \"hello\"\ndefine w_1 = world\n{}",
        in_chain("ip", "log prefix \"x $p-$w_1 y\" accept")
    ));
    let prefix = h.chains[0].rules[0].stmts().find_map(|s| match &s.kind {
        StmtKind::Log { prefix, .. } => prefix.clone(),
        _ => None,
    });
    assert_eq!(prefix.as_deref(), Some("x hello-world y"));
    // An undefined name, and a define that is not a word or a string (nft 1.0.6 crashes on the latter).
    assert_eq!(
        codes(&in_chain("ip", "log prefix \"x $p y\" accept")),
        ["E0010"]
    );
    assert_eq!(
        codes(&format!(
            "define lan = 10.0.0.0/8\n{}",
            in_chain("ip", "log prefix \"from $lan\" accept")
        )),
        ["E0211"]
    );
    // Without `$` the prefix is kept as written.
    let h = ok(&in_chain("ip", "log prefix \"50% off\" accept"));
    assert!(format!("{:?}", h.chains[0].rules[0]).contains("50% off"));
}

/// The listing of a clean ruleset, printed, with each rule's Hir address.
fn listed(src: &str) -> (String, Vec<Option<(ChainId, usize)>>) {
    let mut sm = SourceMap::new();
    let id = sm.add("t.nfr", src);
    let (out, diags) = check_listed(&mut sm, id, &mut NoIncludes);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let (_, mut listing) = out.expect("hir");
    let ids = listing.rules_mut().map(|(_, id)| id).collect();
    (nfr_grammar::format(&listing.file), ids)
}

#[test]
fn listing_expands_defines_in_element_lists() {
    let (text, _) = listed(
        "define lan = 10.0.0.0/8\ndefine more = 172.16.0.0/12\ntable ip t {\n set a { type ipv4_addr; flags interval; elements = { $lan, 1.2.3.4 } }\n \
         set b { type ipv4_addr; elements = { 5.6.7.8, 9.9.9.9 } }\n}\nadd element ip t a { 192.168.0.0/16, $more }\n",
    );
    assert!(!text.contains('$'), "{text}");
    assert!(
        text.contains("10.0.0.0/8") && text.contains("172.16.0.0/12"),
        "{text}"
    );
    assert!(
        text.contains("5.6.7.8") && text.contains("192.168.0.0/16"),
        "{text}"
    );
}

#[test]
fn listing_expands_defines_as_checked() {
    let (text, ids) = listed(
        "define lan = 10.0.0.0/8\ndefine p = \"in\"\ndefine web = { 80, 443 }\ndefine pol = drop\n\
         define prio = 10\ndefine dev = eth1\n\
         table ip t {\n define local = 2\n chain c {\n  type filter hook input priority $prio; policy $pol;\n\
         \x20 ip saddr $lan log prefix \"$p: \" counter accept comment \"to $lan\"\n\
         \x20 iifname $dev tcp dport $web counter\n  meta mark $local drop\n }\n}\n\
         redefine lan = 192.168.0.0/16\nadd rule ip t c ip saddr $lan drop\n",
    );
    assert!(!text.contains("define"), "{text}");
    // Priority and policy as the checker resolved them, printed as nft lists them.
    assert!(
        text.contains("type filter hook input priority filter + 10; policy drop;"),
        "{text}"
    );
    // A log prefix's `$name` is a define use; a comment's is text.
    assert!(
        text.contains("ip saddr 10.0.0.0/8 log prefix \"in: \" counter accept comment \"to $lan\""),
        "{text}"
    );
    // A word define in an interface name is quoted, a set define's elements are a set.
    assert!(
        text.contains("iifname \"eth1\" tcp dport { 80, 443 } counter"),
        "{text}"
    );
    // A table's own define, and a redefine seen only by what follows it.
    assert!(text.contains("meta mark 0x00000002 drop"), "{text}");
    assert!(
        text.contains("add rule ip t c ip saddr 192.168.0.0/16 drop"),
        "{text}"
    );
    let c = Some(ChainId(0));
    assert_eq!(
        ids,
        [0, 1, 2, 3].map(|i| c.map(|c| (c, i))).to_vec(),
        "every rule tied to its Hir rule"
    );
}
