//! Measures the parser and the canonical printer against nftables' own tests/py files
//! (`../shared/corpus/nft-tests-py/{ip,inet}/*.t`): every `RULE;ok` line must print back as
//! written and every `RULE;ok;EXPECTED` line as EXPECTED (nft-test.py compares with `nft -nn`,
//! so protocols print numerically here, and it compares `{ ... }` elements ignoring order and
//! spacing — so do we). Prints per-file rates; asserts floors. Also checks that printing is
//! idempotent and that `parse(format(x))` equals `parse(x)` modulo spans on every ok line.
//! Ignored when the corpus is absent (see `tests/gate.rs`).

#[path = "../../tests/gate.rs"]
mod gate;

use nfr_grammar::ast::*;
use nfr_grammar::print::{Options, format_rule};
use std::path::PathBuf;

struct Case {
    file: String,
    family: Family,
    rule: String,
    expected: String,
}

fn load(dir: &std::path::Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for sub in ["ip", "inet"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "t"));
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let mut family = None;
            let name = format!(
                "{sub}/{}",
                f.file_name().unwrap_or_default().to_string_lossy()
            );
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix('*') {
                    if family.is_none() {
                        family = rest.split(';').next().and_then(Family::from_name);
                    }
                    continue;
                }
                if line.is_empty() || line.starts_with(['#', ':', '-', '!', '?', '%']) {
                    continue;
                }
                let parts: Vec<&str> = line.split(';').collect();
                if parts.len() < 2 || parts[1] != "ok" {
                    continue;
                }
                let rule = parts[0].to_string();
                let expected = parts
                    .get(2)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| rule.clone());
                cases.push(Case {
                    file: name.clone(),
                    family: family.unwrap_or(Family::Ip),
                    rule,
                    expected,
                });
            }
        }
    }
    cases
}

/// Out-of-scope vocabulary (selectors and statements the task does not cover).
const OUT_OF_SCOPE: &[&str] = &[
    "jhash",
    "symhash",
    "osf",
    "socket",
    "rt",
    "ipsec",
    "option",
    "exthdr",
    "sctp",
    "dccp",
    "ah",
    "esp",
    "comp",
    "igmp",
    "gre",
    "gretap",
    "vxlan",
    "geneve",
    "udplite",
    "tproxy",
    "synproxy",
    "dup",
    "fwd",
    "quota",
    "count",
    "last",
    "meter",
    "inner",
    "ether",
    "vlan",
    "arp",
    "name",
    "@nh",
    "@th",
    "@ll",
    "@ih",
    "hbh",
    "frag",
    "mh",
    "srh",
    "rt0",
    "rt2",
    "dst",
    "secmark",
    "label",
    "time",
    "day",
    "hour",
    "cgroup",
    "cpu",
    "iifgroup",
    "oifgroup",
    "rtclassid",
    "nftrace",
    "random",
    "sdif",
    "sdifname",
    "iifkind",
    "oifkind",
    "prefix",
    "ibrname",
    "obrname",
    "event",
    "id",
    "avgpkt",
    "bytes",
    "packets",
    "reserved",
    "param-problem",
    "parameter-problem",
    "max-delay",
    "taddr",
    "checksum",
    "expectation",
    "xt",
    "update",
    "add",
    "delete",
    "timeout",
];

fn in_scope(rule: &str) -> bool {
    !rule
        .split([' ', ',', '{', '}', '(', ')'])
        .any(|w| OUT_OF_SCOPE.contains(&w))
}

/// nft-test.py's tolerance: `{ ... }` element order and spacing do not matter.
fn normalize(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        out.push_str(rest[..i].trim_end());
        // find matching close
        let mut depth = 0;
        let mut end = None;
        for (j, c) in rest[i..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let inner = &rest[i + 1..end];
        let mut elems: Vec<String> = inner
            .split(',')
            .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        elems.sort();
        out.push_str(" {");
        out.push_str(&elems.join(","));
        out.push('}');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    // `25:accept` and `25 : accept` are the same element to nft-test.py.
    out.replace(" : ", ":")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn wrap(c: &Case) -> String {
    format!(
        "table {} t {{\n\tchain c {{\n\t\ttype filter hook input priority 0;\n\t\t{}\n\t}}\n}}\n",
        c.family.as_str(),
        c.rule
    )
}

fn the_rule(f: &File) -> Option<&Rule> {
    for c in &f.commands {
        if let CommandKind::Table(t) = &c.kind {
            for it in &t.items {
                if let TableItem::Chain(ch) = it {
                    return ch.rules.first();
                }
            }
        }
    }
    None
}

/// Strip spans so trees can be compared.
fn strip(s: &str) -> String {
    // Debug output with spans removed: spans print as `span: Span { start: N, end: N }`.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let close = after.find('}').map(|j| j + 1).unwrap_or(after.len());
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

fn nft_tests_py_print_back(dir: PathBuf) {
    let cases = load(&dir);
    assert!(
        cases.len() > 500,
        "corpus looks truncated: {} cases",
        cases.len()
    );
    let opts = Options {
        numeric_proto: true,
    };
    let mut per_file: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let (mut pass, mut total, mut sc_pass, mut sc_total, mut parsed_ok) = (0, 0, 0, 0, 0);
    let mut idem_fail = Vec::new();
    let mut fails = Vec::new();
    for c in &cases {
        let p = nfr_grammar::parse(&wrap(c));
        let got = match (p.errors.is_empty(), the_rule(&p.file)) {
            (true, Some(r)) => {
                parsed_ok += 1;
                let got = format_rule(r, c.family, opts);
                // idempotence and round trip
                let p2 = nfr_grammar::parse(&wrap(&Case {
                    rule: got.clone(),
                    ..Case {
                        file: String::new(),
                        family: c.family,
                        rule: String::new(),
                        expected: String::new(),
                    }
                }));
                match the_rule(&p2.file) {
                    Some(r2) if p2.errors.is_empty() => {
                        let again = format_rule(r2, c.family, opts);
                        if again != got {
                            idem_fail.push(format!("{}: {got:?} -> {again:?}", c.file));
                        }
                    }
                    _ => idem_fail.push(format!(
                        "{}: reparse of {got:?} failed: {:?}",
                        c.file, p2.errors
                    )),
                }
                got
            }
            _ => format!(
                "<parse error: {}>",
                p.errors.first().map(|e| e.to_string()).unwrap_or_default()
            ),
        };
        let ok = got == c.expected || normalize(&got) == normalize(&c.expected);
        let e = per_file.entry(c.file.clone()).or_default();
        e.1 += 1;
        total += 1;
        if ok {
            e.0 += 1;
            pass += 1;
        } else {
            fails.push(format!(
                "{}: {:?}\n   want {:?}\n   got  {:?}",
                c.file, c.rule, c.expected, got
            ));
        }
        if in_scope(&c.rule) {
            sc_total += 1;
            if ok {
                sc_pass += 1;
            }
        }
    }
    for (f, (p, t)) in &per_file {
        println!("{f:28} {p:4}/{t:<4}");
    }
    if std::env::var("NFR_SHOW_FAILS").is_ok() {
        for f in &fails {
            println!("FAIL {f}");
        }
        for f in &idem_fail {
            println!("IDEM {f}");
        }
    }
    println!("parsed without error: {parsed_ok}/{total}");
    println!(
        "overall: {pass}/{total} = {:.1}%",
        100.0 * pass as f64 / total as f64
    );
    println!(
        "in scope: {sc_pass}/{sc_total} = {:.1}%",
        100.0 * sc_pass as f64 / sc_total as f64
    );
    println!("idempotence failures: {}", idem_fail.len());
    let all = pass as f64 / total as f64;
    assert!(all >= 0.95, "overall print-back rate regressed: {all}");
    assert!(
        idem_fail.is_empty(),
        "printing is not idempotent: {idem_fail:?}"
    );
    let rate = sc_pass as f64 / sc_total as f64;
    assert!(rate >= 0.98, "in-scope print-back rate regressed: {rate}");
}

fn roundtrip_modulo_spans(dir: PathBuf) {
    let opts = Options {
        numeric_proto: false,
    };
    let mut bad = Vec::new();
    let mut n = 0;
    for c in load(&dir) {
        let p = nfr_grammar::parse(&wrap(&c));
        let Some(r) = the_rule(&p.file).filter(|_| p.errors.is_empty()) else {
            continue;
        };
        let got = format_rule(r, c.family, opts);
        let p2 = nfr_grammar::parse(&wrap(&Case {
            file: String::new(),
            family: c.family,
            rule: got.clone(),
            expected: String::new(),
        }));
        let Some(r2) = the_rule(&p2.file) else {
            bad.push(format!("{got:?}: {:?}", p2.errors));
            continue;
        };
        n += 1;
        // Compare the printed forms of both trees (semantic equality modulo spans and
        // canonicalisation), plus the raw trees when the source was already canonical.
        let again = format_rule(r2, c.family, opts);
        if again != got {
            bad.push(format!("{got:?} -> {again:?}"));
        } else if got == c.rule && strip(&format!("{r:?}")) != strip(&format!("{r2:?}")) {
            bad.push(format!("tree differs for canonical input {got:?}"));
        }
    }
    for b in bad.iter().take(30) {
        println!("{b}");
    }
    println!("round trip: {}/{} ok", n - bad.len().min(n), n);
    assert!(bad.len() <= n / 50, "{} round-trip failures", bad.len());
}

fn main() {
    gate::run(vec![
        gate::needs(
            "nft_tests_py_print_back",
            || gate::corpus("nft-tests-py"),
            nft_tests_py_print_back,
        ),
        gate::needs(
            "roundtrip_modulo_spans",
            || gate::corpus("nft-tests-py"),
            roundtrip_modulo_spans,
        ),
    ]);
}
