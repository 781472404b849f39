//! Printer tests: canonical forms of single rules, idempotence and round trip on the full
//! rulesets in tests/data/, and (when root and nft are available) agreement with the real
//! `nft list ruleset` on those rulesets (except `syntax-*.nfr`, which exercise every statement
//! form, defines and nft commands, and are only checked for round trip).

#[path = "../../tests/gate.rs"]
mod gate;

use nfr_grammar::ast::*;
use nfr_grammar::print::{Options, format_rule};
use nfr_grammar::{format, parse};
use std::path::PathBuf;

fn canon(rule: &str, family: Family) -> String {
    let p = parse(&format!(
        "table {} t {{ chain c {{\n{rule}\n}} }}",
        family.as_str()
    ));
    assert!(p.errors.is_empty(), "{rule}: {:?}", p.errors);
    let CommandKind::Table(t) = &p.file.commands[0].kind else {
        panic!()
    };
    let TableItem::Chain(c) = &t.items[0] else {
        panic!()
    };
    format_rule(&c.rules[0], family, Options::default())
}

fn canonical_rule_forms() {
    for (input, want) in [
        ("tcp dport ssh accept", "tcp dport 22 accept"),
        ("tcp dport { https, ssh, 80 }", "tcp dport { 22, 80, 443 }"),
        ("ip protocol 6", "ip protocol tcp"),
        ("meta l4proto 17", "meta l4proto udp"),
        ("meta l4proto icmpv6", "meta l4proto ipv6-icmp"),
        ("ct state new,established", "ct state established,new"),
        (
            "ct state { new, established }",
            "ct state { established, new }",
        ),
        ("tcp flags syn / syn,ack", "tcp flags & (syn | ack) == syn"),
        ("tcp flags & (syn | ack) != 0", "tcp flags syn,ack"),
        ("tcp flags & syn == 0", "tcp flags ! syn"),
        ("tcp flags == 0x12", "tcp flags == 0x12"),
        ("mark 16", "meta mark 0x00000010"),
        ("mark set 1", "meta mark set 0x00000001"),
        ("meta iifname eth0", "iifname \"eth0\""),
        ("ip saddr 10.1.2.3/8", "ip saddr 10.0.0.0/8"),
        ("ip saddr 10.1.2.3/32", "ip saddr 10.1.2.3"),
        ("ip6 daddr fe80::1/64", "ip6 daddr fe80::/64"),
        ("ip saddr ne 1.2.3.4", "ip saddr != 1.2.3.4"),
        ("tcp dport == 22", "tcp dport 22"),
        ("ip protocol tcp tcp dport 22", "tcp dport 22"),
        ("meta l4proto tcp tcp dport 22", "tcp dport 22"),
        ("icmp type 8", "icmp type echo-request"),
        ("limit rate 5/second burst 5 packets", "limit rate 5/second"),
        (
            "limit rate over 1 mbytes/second burst 100 kbytes",
            "limit rate over 1 mbytes/second burst 100 kbytes",
        ),
        ("log prefix \"x\" level warn", "log prefix \"x\""),
        ("reject with icmp type port-unreachable", "reject"),
        (
            "reject with icmp type host-unreachable",
            "reject with icmp host-unreachable",
        ),
        ("ct expiration 90m", "ct expiration 1h30m"),
        (
            "tcp dport 22 accept comment \"ssh\"",
            "tcp dport 22 accept comment \"ssh\"",
        ),
        (
            "meta mark set ct mark and 0xffff0000 or meta mark and 0xffff",
            "meta mark set ct mark & 0xffff0000 | meta mark & 0x0000ffff",
        ),
        ("ip dscp set ip dscp | 1 << 2", "ip dscp set ip dscp | 0x4"),
        (
            "masquerade persistent,random",
            "masquerade random,persistent",
        ),
        ("dnat to 10.0.0.1-10.0.0.255", "dnat to 10.0.0.1-10.0.0.255"),
        ("snat to 10.0.0.0-10.0.0.255", "snat to 10.0.0.0/24"),
        (
            "tcp dport vmap { 80 : drop, 22 : accept }",
            "tcp dport vmap { 22 : accept, 80 : drop }",
        ),
        (
            "ip saddr { { 3.3.3.3, 1.1.1.1 }, 2.2.2.2 }",
            "ip saddr { 1.1.1.1, 2.2.2.2, 3.3.3.3 }",
        ),
        ("queue flags bypass num 2", "queue num 2 bypass"),
    ] {
        assert_eq!(canon(input, Family::Ip), want, "input {input:?}");
    }
    // inet specifics
    assert_eq!(
        canon("snat to 192.0.2.1", Family::Inet),
        "snat ip to 192.0.2.1"
    );
    assert_eq!(
        canon("meta nfproto ipv4 reject", Family::Inet),
        "reject with icmp port-unreachable"
    );
    assert_eq!(
        canon("ip protocol tcp tcp dport 22", Family::Inet),
        "ip protocol tcp tcp dport 22"
    );
    assert_eq!(
        canon("ct original saddr @s6", Family::Ip6),
        "ct original ip6 saddr @s6"
    );
    assert_eq!(
        canon("ct original saddr ::1", Family::Inet),
        "ct original ip6 saddr ::1"
    );
    assert_eq!(
        canon("ct reply daddr 10.0.0.0/8", Family::Inet),
        "ct reply ip daddr 10.0.0.0/8"
    );
    assert_eq!(
        canon("jump { tcp dport 22 accept }", Family::Ip),
        "jump { tcp dport 22 accept }"
    );
    assert_eq!(
        canon("fib daddr type local # c\n drop", Family::Ip),
        "fib daddr type local"
    );
    // numeric protocols as with `nft -nn`
    let p = parse("table ip t { chain c { ip protocol tcp meta l4proto { udp, tcp } } }");
    let CommandKind::Table(t) = &p.file.commands[0].kind else {
        panic!()
    };
    let TableItem::Chain(c) = &t.items[0] else {
        panic!()
    };
    assert_eq!(
        format_rule(
            &c.rules[0],
            Family::Ip,
            Options {
                numeric_proto: true
            }
        ),
        "ip protocol 6 meta l4proto { 6, 17 }"
    );
}

fn chain_headers_and_priorities() {
    let src = "table ip t {\n\
               chain a { type filter hook input priority 0; }\n\
               chain b { type filter hook forward priority 5; policy drop; }\n\
               chain c { type nat hook prerouting priority -100; }\n\
               chain d { type filter hook output priority -155; }\n\
               chain e { type filter hook input priority 20; }\n\
               chain f { type nat hook postrouting priority srcnat + 3; }\n\
               chain g { type filter hook prerouting priority raw; }\n\
               chain h { comment \"user\" }\n\
               }";
    let out = format(&parse(src).file);
    let want = "table ip t {\n\
                \tchain a {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n\n\
                \tchain b {\n\t\ttype filter hook forward priority filter + 5; policy drop;\n\t}\n\n\
                \tchain c {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n\n\
                \tchain d {\n\t\ttype filter hook output priority mangle - 5; policy accept;\n\t}\n\n\
                \tchain e {\n\t\ttype filter hook input priority 20; policy accept;\n\t}\n\n\
                \tchain f {\n\t\ttype nat hook postrouting priority srcnat + 3; policy accept;\n\t}\n\n\
                \tchain g {\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t}\n\n\
                \tchain h {\n\t\tcomment \"user\"\n\t}\n\
                }\n";
    assert_eq!(out, want);
    // netdev device
    let out = format(
        &parse("table netdev n { chain i { type filter hook ingress device eth0 priority 0; } }")
            .file,
    );
    assert!(
        out.contains("type filter hook ingress device \"eth0\" priority filter; policy accept;"),
        "{out}"
    );
}

fn data_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("tests/data")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "nfr"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).expect("read"),
            )
        })
        .collect();
    v.sort();
    assert!(v.len() >= 3);
    v
}

/// Debug form of a tree with spans removed.
fn strip_spans(f: &File) -> String {
    let s = format!("{f:?}");
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        rest = &after[after.find('}').map(|j| j + 1).unwrap_or(after.len())..];
    }
    out.push_str(rest);
    out
}

fn data_rulesets_idempotent_and_round_trip() {
    for (name, src) in data_files() {
        let p = parse(&src);
        assert!(p.errors.is_empty(), "{name}: {:?}", p.errors);
        let once = format(&p.file);
        let p2 = parse(&once);
        assert!(
            p2.errors.is_empty(),
            "{name}: reparse: {:?}\n{once}",
            p2.errors
        );
        let twice = format(&p2.file);
        assert_eq!(once, twice, "{name}: not idempotent");
        // The data files are written in canonical form, so the trees agree modulo spans.
        assert_eq!(
            strip_spans(&p.file),
            strip_spans(&p2.file),
            "{name}: trees differ"
        );
        // And the text is the source minus comments and blank-line differences.
        // And the text is the source itself (comments are kept).
        assert_eq!(once.trim(), src.trim(), "{name}: not canonical");
    }
}

/// Compare with the real nft (`unshare -n nft -f FILE; nft list ruleset`), when available.
fn data_rulesets_match_nft_listing(_: ()) {
    // `syntax-*.nfr` use defines/includes/commands whose listing nft resolves differently.
    for (name, src) in data_files()
        .into_iter()
        .filter(|(n, _)| !n.contains("/syntax-"))
    {
        let out = std::process::Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-c",
                "nft -f \"$1\" && nft list ruleset",
                "sh",
                &name,
            ])
            .output()
            .expect("run nft");
        assert!(
            out.status.success(),
            "{name}: nft rejected it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8_lossy(&out.stdout).to_string();
        let ours = format(&parse(&src).file);
        let ours: String = ours
            .lines()
            .filter(|l| *l != "flush ruleset" && !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            ours.trim(),
            listed.trim(),
            "{name}: differs from nft list ruleset"
        );
    }
}

fn comments_are_kept_near_their_node() {
    let src = "# top of file\n\
               table ip t { # trailing on table line\n\
               \t# about chain c\n\
               \tchain c {\n\
               \t\t# first rule\n\
               \t\ttcp dport 22 accept # ssh\n\
               \t\t# dangling at end\n\
               \t}\n\
               \t# about set s\n\
               \tset s {\n\
               \t\ttype ipv4_addr\n\
               \t}\n\
               }\n\
               # end of file\n";
    let out = format(&parse(src).file);
    let want = "# top of file\n\
                table ip t { # trailing on table line\n\
                \t# about set s\n\
                \tset s {\n\
                \t\ttype ipv4_addr\n\
                \t}\n\
                \n\
                \t# about chain c\n\
                \tchain c {\n\
                \t\t# first rule\n\
                \t\ttcp dport 22 accept # ssh\n\
                \t\t# dangling at end\n\
                \t}\n\
                }\n\
                # end of file\n";
    assert_eq!(out, want);
    assert_eq!(format(&parse(&out).file), out);
}

fn main() {
    gate::run(vec![
        gate::test("canonical_rule_forms", canonical_rule_forms),
        gate::test("chain_headers_and_priorities", chain_headers_and_priorities),
        gate::test(
            "data_rulesets_idempotent_and_round_trip",
            data_rulesets_idempotent_and_round_trip,
        ),
        gate::needs(
            "data_rulesets_match_nft_listing",
            || gate::netns_tool("nft"),
            data_rulesets_match_nft_listing,
        ),
        gate::test(
            "comments_are_kept_near_their_node",
            comments_are_kept_near_their_node,
        ),
    ]);
}
