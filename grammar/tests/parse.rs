//! Parser tests: every construct of the language scope parses into the expected Ast shape, and
//! error recovery reports several errors in one run with correct spans.

use nfr_grammar::ast::*;
use nfr_grammar::{catalog, parse};

/// Parse a file that must be error-free.
fn ok(src: &str) -> File {
    let p = parse(src);
    assert!(
        p.errors.is_empty(),
        "unexpected errors for {src:?}: {:#?}",
        p.errors
    );
    p.file
}

/// The statements of the single rule in `table ip t { chain c { RULE } }`.
fn stmts(rule: &str) -> Vec<StmtKind> {
    rule_of(rule).stmts.into_iter().map(|s| s.kind).collect()
}

fn rule_of(rule: &str) -> Rule {
    let f = ok(&format!(
        "table inet t {{\n chain c {{\n  {rule}\n }}\n}}\n"
    ));
    let CommandKind::Table(t) = &f.commands[0].kind else {
        panic!("no table")
    };
    let TableItem::Chain(c) = &t.items[0] else {
        panic!("no chain")
    };
    assert_eq!(c.rules.len(), 1, "{rule}");
    c.rules[0].clone()
}

fn one_match(rule: &str) -> (Expr, RelOp, Expr) {
    match stmts(rule).remove(0) {
        StmtKind::Match { left, op, right } => (left, op, right),
        s => panic!("not a match: {s:?}"),
    }
}

fn payload(e: &Expr) -> (&'static str, &'static str) {
    match &e.kind {
        ExprKind::Payload(f) => (f.proto, f.field),
        k => panic!("not a payload: {k:?}"),
    }
}

#[test]
fn table_chain_structure() {
    let src = "flush ruleset\n\
               define ports = { 22, 80 }\n\
               include \"other.nfr\"\n\
               table inet filter {\n\
                 set blocked { type ipv4_addr; flags interval,timeout; timeout 1h; size 1024; policy performance; auto-merge; elements = { 10.0.0.0/8, 192.168.1.1-192.168.1.9, } }\n\
                 map ports { type inet_service : verdict; elements = { 22 : accept, 80 : jump web } }\n\
                 map nat4 { typeof ip saddr . tcp dport : ip daddr; }\n\
                 chain input {\n\
                   type filter hook input priority filter + 5; policy drop;\n\
                   comment \"in\"\n\
                   ct state established,related accept\n\
                 }\n\
                 chain web { tcp dport 80 accept; }\n\
                 chain pre { type nat hook prerouting priority dstnat - 10; }\n\
                 chain raw1 { type filter hook prerouting priority -300; }\n\
                 chain ing { type filter hook ingress device \"eth0\" priority 0; }\n\
               }\n\
               table ip6 t6 { }\n\
               table t0 { }\n\
               table arp a { }\n";
    let f = ok(src);
    assert_eq!(f.commands.len(), 7);
    assert!(matches!(
        f.commands[0].kind,
        CommandKind::FlushRuleset { family: None }
    ));
    let CommandKind::Define(d) = &f.commands[1].kind else {
        panic!()
    };
    assert_eq!(d.name.name, "ports");
    assert!(matches!(&d.value.kind, ExprKind::Set(v) if v.len() == 2));
    assert!(matches!(&f.commands[2].kind, CommandKind::Include(s) if s.value == "other.nfr"));
    let CommandKind::Table(t) = &f.commands[3].kind else {
        panic!()
    };
    assert_eq!(
        (t.family, t.name.name.as_str()),
        (Some(Family::Inet), "filter")
    );
    let sets: Vec<&Set> = t
        .items
        .iter()
        .filter_map(|i| {
            if let TableItem::Set(s) = i {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    let chains: Vec<&Chain> = t
        .items
        .iter()
        .filter_map(|i| {
            if let TableItem::Chain(c) = i {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(sets.len(), 3);
    let s = sets[0];
    assert!(!s.is_map);
    assert!(matches!(&s.key, Some(SetKey::Type(v)) if v.len() == 1 && v[0].name == "ipv4_addr"));
    assert_eq!(
        s.flags.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["interval", "timeout"]
    );
    assert_eq!(s.timeout.map(|t| t.ms), Some(3_600_000));
    assert_eq!(s.size, Some(1024));
    assert!(s.auto_merge);
    assert_eq!(s.elements.len(), 2);
    // (packed: the Exprs are parsed from the tokens when asked)
    assert!(matches!(s.elements, Elements::Packed(..)));
    let els = s.elements.to_vec();
    assert!(matches!(&els[0].kind, ExprKind::Prefix { len: 8, .. }));
    assert!(matches!(&els[1].kind, ExprKind::Range { .. }));
    let m = sets[1];
    assert!(m.is_map);
    assert!(matches!(&m.data, Some(SetKey::Type(v)) if v[0].name == "verdict"));
    let els = m.elements.to_vec();
    let ExprKind::MapElem { value, .. } = &els[1].kind else {
        panic!()
    };
    assert!(matches!(&value.kind, ExprKind::Verdict(Verdict::Jump(n)) if n.name == "web"));
    assert!(matches!(&sets[2].key, Some(SetKey::Typeof(v)) if v.len() == 2));
    assert!(matches!(&sets[2].data, Some(SetKey::Typeof(v)) if payload(&v[0]) == ("ip", "daddr")));

    let input = chains[0];
    let h = input.hook.as_ref().unwrap();
    assert_eq!(
        (h.chain_type.name.as_str(), h.hook.name.as_str()),
        ("filter", "input")
    );
    assert_eq!(
        h.priority.kind,
        PriorityKind::Named {
            name: "filter".into(),
            offset: 5
        }
    );
    assert_eq!(input.policy.as_ref().unwrap().kind, PolicyKind::Drop);
    assert_eq!(input.comment.as_ref().unwrap().value, "in");
    assert_eq!(input.rules.len(), 1);
    assert!(chains[1].hook.is_none());
    assert_eq!(
        chains[2].hook.as_ref().unwrap().priority.kind,
        PriorityKind::Named {
            name: "dstnat".into(),
            offset: -10
        }
    );
    assert_eq!(
        chains[3].hook.as_ref().unwrap().priority.kind,
        PriorityKind::Number(-300)
    );
    assert_eq!(chains[4].hook.as_ref().unwrap().devices[0].value, "eth0");
    assert!(matches!(&f.commands[4].kind, CommandKind::Table(t) if t.family == Some(Family::Ip6)));
    assert!(matches!(&f.commands[5].kind, CommandKind::Table(t) if t.family.is_none()));
    assert!(matches!(&f.commands[6].kind, CommandKind::Table(t) if t.family == Some(Family::Arp)));
}

#[test]
fn nft_command_forms() {
    let f = ok("add table ip t\n\
                add chain ip t c { type filter hook output priority 0 ; }\n\
                add rule ip t c tcp dport 22 accept\n\
                add rule t c udp dport 53 drop\n\
                insert rule inet t c position 5 counter\n\
                add set ip t s { type ipv4_addr ; }\n\
                add element ip t s { 1.2.3.4, 5.6.7.8 }\n\
                delete element ip t s { 1.2.3.4 }\n\
                flush chain ip t c\n\
                delete table ip t\n");
    let k: Vec<&CommandKind> = f.commands.iter().map(|c| &c.kind).collect();
    assert!(matches!(k[0], CommandKind::Table(t) if !t.has_body && t.name.name == "t"));
    assert!(matches!(k[1], CommandKind::AddChain { chain, .. } if chain.hook.is_some()));
    let CommandKind::AddRule {
        target,
        insert: false,
        rule,
        ..
    } = k[2]
    else {
        panic!()
    };
    assert_eq!(
        (target.family, target.table.name.as_str()),
        (Some(Family::Ip), "t")
    );
    assert_eq!(target.name.as_ref().unwrap().name, "c");
    assert_eq!(rule.stmts.len(), 2);
    let CommandKind::AddRule { target, .. } = k[3] else {
        panic!()
    };
    assert_eq!(target.family, None);
    assert!(matches!(
        k[4],
        CommandKind::AddRule {
            insert: true,
            position: Some((_, 5)),
            ..
        }
    ));
    assert!(matches!(k[5], CommandKind::AddSet { set, .. } if set.name.name == "s"));
    assert!(
        matches!(k[6], CommandKind::Element { delete: false, elements, .. } if elements.len() == 2)
    );
    assert!(matches!(k[7], CommandKind::Element { delete: true, .. }));
    assert!(
        matches!(k[8], CommandKind::Object { verb, object, .. } if verb.name == "flush" && object.name == "chain")
    );
    assert!(matches!(k[9], CommandKind::Object { verb, .. } if verb.name == "delete"));
}

#[test]
fn selectors() {
    for (rule, proto, field) in [
        ("ip saddr 1.2.3.4", "ip", "saddr"),
        ("ip frag-off 0x4000", "ip", "frag-off"),
        ("ip6 flowlabel 5", "ip6", "flowlabel"),
        ("tcp urgptr 1", "tcp", "urgptr"),
        ("udp checksum 1", "udp", "checksum"),
        ("th dport 53", "th", "dport"),
        ("icmp type echo-request", "icmp", "type"),
        ("icmpv6 mtu 1280", "icmpv6", "mtu"),
    ] {
        let (l, op, _) = one_match(rule);
        assert_eq!(payload(&l), (proto, field), "{rule}");
        assert_eq!(op, RelOp::Implicit);
    }
    let (l, _, _) = one_match("meta l4proto tcp");
    assert!(matches!(l.kind, ExprKind::Meta { key, qualified: true } if key.name == "l4proto"));
    let (l, _, r) = one_match("iifname \"eth0\"");
    assert!(matches!(l.kind, ExprKind::Meta { key, qualified: false } if key.name == "iifname"));
    assert!(matches!(r.kind, ExprKind::String(ref s) if s == "eth0"));
    let (l, _, _) = one_match("mark 0x10");
    assert!(matches!(l.kind, ExprKind::Meta { key, .. } if key.name == "mark"));
    let (l, _, r) = one_match("ct state established,related");
    assert!(matches!(l.kind, ExprKind::Ct { dir: None, key, .. } if key.name == "state"));
    assert!(matches!(&r.kind, ExprKind::List(v) if v.len() == 2));
    let (l, _, _) = one_match("ct original ip saddr 1.2.3.4");
    assert!(
        matches!(l.kind, ExprKind::Ct { dir: Some(catalog::CtDir::Original), family: Some(Family::Ip), key } if key.name == "saddr")
    );
    let (l, _, _) = one_match("ct reply proto-dst 53");
    assert!(
        matches!(l.kind, ExprKind::Ct { dir: Some(catalog::CtDir::Reply), key, .. } if key.name == "proto-dst")
    );
    let (l, _, _) = one_match("@nh,16,8 5");
    assert!(matches!(
        l.kind,
        ExprKind::RawPayload {
            base: RawBase::Nh,
            offset: 16,
            len: 8
        }
    ));
    // the selector's catalog entry is complete
    let (l, _, _) = one_match("tcp dport 22");
    let ExprKind::Payload(f) = l.kind else {
        panic!()
    };
    assert_eq!(
        (f.base, f.offset_bits, f.len_bits, f.dtype),
        (
            catalog::PayloadBase::Transport,
            16,
            16,
            catalog::Datatype::InetService
        )
    );
}

#[test]
fn right_hand_sides() {
    let (_, _, r) = one_match("ip6 saddr ::ffff:1.2.3.4");
    assert!(
        matches!(r.kind, ExprKind::Ipv6(a) if a == "::ffff:1.2.3.4".parse::<std::net::Ipv6Addr>().unwrap())
    );
    let (_, _, r) = one_match("ip6 daddr fe80::/64");
    assert!(
        matches!(&r.kind, ExprKind::Prefix { len: 64, addr } if matches!(addr.kind, ExprKind::Ipv6(_)))
    );
    let (_, _, r) = one_match("tcp dport 1024-65535");
    assert!(matches!(&r.kind, ExprKind::Range { .. }));
    let (_, _, r) = one_match("tcp dport { ssh, 80, 8000-8080, }");
    let ExprKind::Set(v) = &r.kind else { panic!() };
    assert_eq!(v.len(), 3);
    assert!(matches!(&v[0].kind, ExprKind::Symbol(s) if s == "ssh"));
    let (_, _, r) = one_match("ip saddr {\n 10.0.0.0/8,\n { 1.1.1.1, 2.2.2.2 }\n}");
    assert!(
        matches!(&r.kind, ExprKind::Set(v) if v.len() == 2 && matches!(v[1].kind, ExprKind::Set(_)))
    );
    let (_, _, r) = one_match("ip saddr @blocked");
    assert!(matches!(&r.kind, ExprKind::SetRef(n) if n.name == "blocked"));
    let (_, _, r) = one_match("ip saddr $trusted");
    assert!(matches!(&r.kind, ExprKind::Var(n) if n.name == "trusted"));
    let (l, _, r) = one_match("ip saddr . tcp dport { 1.2.3.4 . 22 }");
    assert!(matches!(&l.kind, ExprKind::Concat(v) if v.len() == 2));
    assert!(
        matches!(&r.kind, ExprKind::Set(v) if matches!(&v[0].kind, ExprKind::Concat(c) if c.len() == 2))
    );
    let (l, op, r) = one_match("tcp flags & (syn | ack) == syn");
    assert!(matches!(&l.kind, ExprKind::Binary { op: BinOp::And, .. }));
    assert_eq!(op, RelOp::Eq);
    assert!(matches!(&r.kind, ExprKind::Symbol(s) if s == "syn"));
    // nft's mask form is desugared to the bitwise form.
    let (l, op, r) = one_match("tcp flags syn / syn,ack");
    assert!(matches!(&l.kind, ExprKind::Binary { op: BinOp::And, .. }));
    assert_eq!(op, RelOp::Eq);
    assert!(matches!(&r.kind, ExprKind::Symbol(_)));
    for (rule, want) in [
        ("tcp dport == 22", RelOp::Eq),
        ("tcp dport != 22", RelOp::Ne),
        ("tcp dport < 22", RelOp::Lt),
        ("tcp dport > 22", RelOp::Gt),
        ("tcp dport <= 22", RelOp::Le),
        ("tcp dport >= 22", RelOp::Ge),
        ("tcp dport eq 22", RelOp::Eq),
        ("tcp dport ne 22", RelOp::Ne),
        ("tcp dport lt 22", RelOp::Lt),
        ("tcp dport gt 22", RelOp::Gt),
        ("tcp dport le 22", RelOp::Le),
        ("tcp dport ge 22", RelOp::Ge),
        ("tcp flags ! syn", RelOp::Neg),
    ] {
        assert_eq!(one_match(rule).1, want, "{rule}");
    }
    let (_, _, r) = one_match("meta mark 0x10");
    assert!(matches!(
        r.kind,
        ExprKind::Number {
            value: 16,
            hex: true
        }
    ));
    let (_, _, r) = one_match("ct expiration 1d2h3m4s5ms");
    assert!(
        matches!(r.kind, ExprKind::Time(ms) if ms == 86_400_000 + 7_200_000 + 180_000 + 4_000 + 5)
    );
    let (_, _, r) = one_match("ether saddr 00:11:22:33:44:55");
    assert!(matches!(
        r.kind,
        ExprKind::Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55])
    ));
}

#[test]
fn statements() {
    let s = stmts(
        "tcp dport 22 counter packets 1 bytes 2 log prefix \"x \" level info group 2 snaplen 64 accept",
    );
    assert!(matches!(
        s[1],
        StmtKind::Counter {
            packets: Some(1),
            bytes: Some(2),
            name: None
        }
    ));
    let StmtKind::Log(l) = &s[2] else { panic!() };
    assert_eq!(l.prefix.as_ref().unwrap().value, "x ");
    assert_eq!(l.level.as_ref().unwrap().name, "info");
    assert_eq!((l.group, l.snaplen), (Some(2), Some(64)));
    assert!(matches!(s[3], StmtKind::Verdict(Verdict::Accept)));

    let s = stmts("limit rate over 10/second burst 20 packets drop");
    let StmtKind::Limit(l) = &s[0] else { panic!() };
    assert!(
        l.over && l.rate == 10 && l.per == "second" && l.burst == Some(20) && l.rate_unit.is_none()
    );
    let s = stmts("limit rate 10 kbytes/second");
    let StmtKind::Limit(l) = &s[0] else { panic!() };
    assert_eq!(
        (l.rate_unit.as_deref(), l.per.as_str()),
        (Some("kbytes"), "second")
    );

    for (rule, key) in [
        ("meta mark set 1", "mark"),
        ("mark set 1", "mark"),
        ("ct mark set meta mark", "mark"),
        ("ct helper set \"ftp\"", "helper"),
        ("ct zone set 2", "zone"),
    ] {
        let s = stmts(rule);
        let StmtKind::Set { key: k, .. } = &s[0] else {
            panic!("{rule}: {s:?}")
        };
        let name = match &k.kind {
            ExprKind::Meta { key, .. } => key.name,
            ExprKind::Ct { key, .. } => key.name,
            _ => panic!(),
        };
        assert_eq!(name, key, "{rule}");
    }
    assert!(matches!(stmts("notrack")[0], StmtKind::Notrack));
    assert!(matches!(stmts("reject")[0], StmtKind::Reject(None)));
    assert!(matches!(
        stmts("reject with tcp reset")[0],
        StmtKind::Reject(Some(RejectWith::TcpReset))
    ));
    for r in [
        "reject with icmp type host-unreachable",
        "reject with icmp host-unreachable",
        "reject with icmpv6 type no-route",
        "reject with icmpx type port-unreachable",
    ] {
        assert!(
            matches!(
                &stmts(r)[0],
                StmtKind::Reject(Some(RejectWith::Icmp { .. }))
            ),
            "{r}"
        );
    }
    assert!(
        matches!(&stmts("queue num 3 bypass")[0], StmtKind::Queue { num: Some(_), flags } if flags[0].name == "bypass")
    );
    assert!(matches!(
        &stmts("queue")[0],
        StmtKind::Queue { num: None, .. }
    ));

    let StmtKind::Nat(n) = &stmts("dnat to 10.0.0.1:8080")[0] else {
        panic!()
    };
    assert!(n.kind == NatKind::Dnat && matches!(n.addr.as_ref().unwrap().kind, ExprKind::Ipv4(_)));
    assert!(matches!(
        n.port.as_ref().unwrap().kind,
        ExprKind::Number { value: 8080, .. }
    ));
    let StmtKind::Nat(n) = &stmts("dnat ip6 to [dead::beef]:4443")[0] else {
        panic!()
    };
    assert_eq!(n.family, Some(Family::Ip6));
    assert!(matches!(n.addr.as_ref().unwrap().kind, ExprKind::Ipv6(_)));
    let StmtKind::Nat(n) = &stmts("snat ip to 10.0.0.1-10.0.0.9:1000-2000 random,persistent")[0]
    else {
        panic!()
    };
    assert!(matches!(
        n.addr.as_ref().unwrap().kind,
        ExprKind::Range { .. }
    ));
    assert!(matches!(
        n.port.as_ref().unwrap().kind,
        ExprKind::Range { .. }
    ));
    assert_eq!(n.flags.len(), 2);
    let StmtKind::Nat(n) = &stmts("dnat to ip daddr map { 1.1.1.1 : 2.2.2.2 }")[0] else {
        panic!()
    };
    assert!(matches!(
        n.addr.as_ref().unwrap().kind,
        ExprKind::Map { .. }
    ));
    let StmtKind::Nat(n) = &stmts("masquerade to :1024-2048")[0] else {
        panic!()
    };
    assert!(n.kind == NatKind::Masquerade && n.addr.is_none() && n.port.is_some());
    let StmtKind::Nat(n) = &stmts("redirect to :8080")[0] else {
        panic!()
    };
    assert!(n.kind == NatKind::Redirect && n.port.is_some());
    assert!(
        matches!(&stmts("masquerade")[0], StmtKind::Nat(n) if n.addr.is_none() && n.port.is_none())
    );

    for (r, v) in [
        ("accept", Verdict::Accept),
        ("drop", Verdict::Drop),
        ("continue", Verdict::Continue),
        ("return", Verdict::Return),
    ] {
        assert_eq!(stmts(r)[0], StmtKind::Verdict(v));
    }
    assert!(
        matches!(&stmts("jump other")[0], StmtKind::Verdict(Verdict::Jump(n)) if n.name == "other")
    );
    assert!(
        matches!(&stmts("goto other")[0], StmtKind::Verdict(Verdict::Goto(n)) if n.name == "other")
    );
    assert!(
        matches!(&stmts("tcp dport vmap { 22 : accept, 80 : jump web }")[0], StmtKind::Vmap { map, .. } if matches!(&map.kind, ExprKind::Set(v) if v.len() == 2))
    );
    assert!(
        matches!(&stmts("ip saddr vmap @m")[0], StmtKind::Vmap { map, .. } if matches!(map.kind, ExprKind::SetRef(_)))
    );

    let r = rule_of("tcp dport 22 accept comment \"ssh\"");
    assert_eq!(r.comment.unwrap().value, "ssh");
    assert_eq!(r.stmts.len(), 2);
    // `;` ends a rule like a newline does.
    let f = ok("table ip t { chain c { tcp dport 22 accept; udp dport 53 accept } }");
    let CommandKind::Table(t) = &f.commands[0].kind else {
        panic!()
    };
    let TableItem::Chain(c) = &t.items[0] else {
        panic!()
    };
    assert_eq!(c.rules.len(), 2);
}

#[test]
fn spans_point_at_source() {
    let src = "table ip t {\n chain c {\n  tcp dport 22 accept\n }\n}\n";
    let f = ok(src);
    let CommandKind::Table(t) = &f.commands[0].kind else {
        panic!()
    };
    let TableItem::Chain(c) = &t.items[0] else {
        panic!()
    };
    let r = &c.rules[0];
    assert_eq!(&src[r.span.range()], "tcp dport 22 accept");
    assert_eq!(&src[r.stmts[0].span.range()], "tcp dport 22");
    assert_eq!(&src[r.stmts[1].span.range()], "accept");
    let StmtKind::Match { left, right, .. } = &r.stmts[0].kind else {
        panic!()
    };
    assert_eq!(&src[left.span.range()], "tcp dport");
    assert_eq!(&src[right.span.range()], "22");
    assert_eq!(&src[t.name.span.range()], "t");
    assert_eq!(&src[c.name.span.range()], "c");
}

#[test]
fn error_recovery_reports_every_error() {
    let src = "table ip t {\n\
               \tchain c {\n\
               \t\ttcp dport 22 accept\n\
               \t\tfoo bar baz\n\
               \t\tudp dport 53 accept\n\
               \t\tip saddr\n\
               \t}\n\
               \tbogus line here\n\
               \tchain d { tcp dport 80 drop }\n\
               }\n\
               table ip u { chain c { ~ } }\n";
    let p = parse(src);
    let msgs: Vec<(String, &str)> = p
        .errors
        .iter()
        .map(|e| (e.message.clone(), &src[e.span.range()]))
        .collect();
    assert!(p.errors.len() >= 4, "{msgs:#?}");
    assert_eq!(msgs[0].1, "foo", "{msgs:#?}");
    assert!(msgs[0].0.contains("unknown statement"), "{msgs:#?}");
    // `ip saddr` with no value: error at the end of the statement.
    assert!(
        msgs.iter().any(|(m, _)| m.contains("expected a value")),
        "{msgs:#?}"
    );
    assert!(msgs.iter().any(|(_, t)| *t == "bogus"), "{msgs:#?}");
    assert!(msgs.iter().any(|(_, t)| *t == "~"), "{msgs:#?}");
    // The good parts are all there.
    let CommandKind::Table(t) = &p.file.commands[0].kind else {
        panic!()
    };
    let chains: Vec<&Chain> = t
        .items
        .iter()
        .filter_map(|i| {
            if let TableItem::Chain(c) = i {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(chains.len(), 2);
    assert_eq!(chains[0].rules.len(), 2);
    assert_eq!(chains[1].rules.len(), 1);
    assert_eq!(p.file.commands.len(), 2);
}

#[test]
fn structural_errors_recover() {
    // A broken table header, a stray `}`, an unclosed brace at the end: all reported.
    let src =
        "table { }\ntable ip ok { chain c { accept } }\n}\ntable ip open { chain c { accept }\n";
    let p = parse(src);
    assert!(p.errors.len() >= 3, "{:#?}", p.errors);
    assert!(p.errors.iter().any(|e| e.message.contains("unclosed")));
    assert!(
        p.errors
            .iter()
            .any(|e| e.message.contains("without matching"))
    );
    let names: Vec<&str> = p
        .file
        .commands
        .iter()
        .filter_map(|c| {
            if let CommandKind::Table(t) = &c.kind {
                Some(t.name.name.as_str())
            } else {
                None
            }
        })
        .collect();
    assert!(names.contains(&"ok"), "{names:?}");
    assert!(names.contains(&"open"), "{names:?}");
    // The lalrpop error names what was expected.
    let e = p
        .errors
        .iter()
        .find(|e| e.span.start == 6)
        .expect("error at `{` of `table {`");
    assert!(e.expected.iter().any(|x| x == "identifier"), "{e:?}");
}

#[test]
fn forgotten_literal_brace_keeps_chain_shape() {
    let src =
        "table ip t {\n\tchain c {\n\t\ttcp dport { 22, 80\n\t}\n\tchain d {\n\t\taccept\n\t}\n}\n";
    let p = parse(src);
    assert_eq!(p.errors.len(), 1, "{:#?}", p.errors);
    assert_eq!(p.errors[0].message, "unclosed `{`");
    assert_eq!(p.errors[0].span.start as usize, src.find("{ 22").unwrap());
    let CommandKind::Table(t) = &p.file.commands[0].kind else {
        panic!()
    };
    let names: Vec<&str> = t
        .items
        .iter()
        .filter_map(|i| {
            if let TableItem::Chain(c) = i {
                Some(c.name.name.as_str())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(names, ["c", "d"]);
}

#[test]
fn odd_indentation_of_valid_files_is_fine() {
    // Balanced files never get the indentation heuristic.
    let src = "table ip t {\n\tchain c {\n\t\ttcp dport {\n22, 80\n}\n\t}\n}\n";
    let f = ok(src);
    let CommandKind::Table(t) = &f.commands[0].kind else {
        panic!()
    };
    let TableItem::Chain(c) = &t.items[0] else {
        panic!()
    };
    assert_eq!(c.rules.len(), 1);
}

#[test]
fn objref_maps() {
    // `counter name KEY map { ... }`: an objref map, the key a selector (or concatenation).
    let s = stmts("counter name tcp dport map { 22 : \"ssh\", 80 : web } accept");
    let StmtKind::CounterMap { map } = &s[0] else {
        panic!("{:?}", s[0])
    };
    let ExprKind::Map { key, map } = &map.kind else {
        panic!("{map:?}")
    };
    assert_eq!(payload(key), ("tcp", "dport"));
    let ExprKind::Set(elems) = &map.kind else {
        panic!("{map:?}")
    };
    assert_eq!(elems.len(), 2);
    assert!(matches!(&elems[0].kind, ExprKind::MapElem { value, .. }
        if matches!(&value.kind, ExprKind::String(n) if n == "ssh")));
    assert!(matches!(s[1], StmtKind::Verdict(Verdict::Accept)));
    let s = stmts("counter name ip saddr . tcp dport map @m");
    let StmtKind::CounterMap { map } = &s[0] else {
        panic!("{:?}", s[0])
    };
    assert!(matches!(&map.kind, ExprKind::Map { key, map }
        if matches!(key.kind, ExprKind::Concat(_)) && matches!(&map.kind, ExprKind::SetRef(id) if id.name == "m")));
    // A plain name is still the immediate form, quoted or not.
    for rule in ["counter name \"web\"", "counter name web accept"] {
        assert!(
            matches!(&stmts(rule)[0], StmtKind::Counter { name: Some(n), .. } if n.name == "web"),
            "{rule}"
        );
    }
    // `ct helper set KEY map { ... }` is a `set` statement whose value is the map.
    let s = stmts("ct helper set tcp dport map { 21 : \"ftp-std\" }");
    assert!(
        matches!(&s[0], StmtKind::Set { value, .. } if matches!(value.kind, ExprKind::Map { .. }))
    );
    // The printer gives nft's form back.
    let src = "table ip t {\n\tchain c {\n\t\tcounter name tcp dport map { 22 : \"ssh\", 80 : \"web\" }\n\t}\n}\n";
    let f = ok(src);
    assert_eq!(nfr_grammar::print::format(&f), src);
}
