//! The way back: every hand-written iptables-save file in testdata/ipt turned into `.nfr`
//! (`tables_to_nfr`, what `nfc import iptables-save` prints) must pass the checker and lower
//! back to byte-identical tables.

use std::path::Path;

use nfr_compiler::lower::ipt::{lower_ipt, tables_to_nfr};

#[test]
fn iptables_save_to_nfr_and_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ipt");
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ipt"))
        .collect();
    files.sort();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap();
        let tables = nfr_ipt::parse_save(&text).unwrap();
        let nfr = tables_to_nfr(&tables).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (sources, hir, diags) = nfr_compiler::check::check_source("imported.nfr", &nfr);
        let Some(hir) = hir else {
            panic!(
                "{}: the imported ruleset does not check:\n{nfr}\n{}",
                p.display(),
                nfr_compiler::diag::render(&diags, &sources, false)
            );
        };
        let lowered = lower_ipt(&hir).unwrap_or_else(|d| {
            panic!(
                "{}: the imported ruleset does not lower:\n{nfr}\n{}",
                p.display(),
                nfr_compiler::diag::render(&d, &sources, false)
            )
        });
        assert_eq!(lowered.len(), tables.len(), "{}", p.display());
        for (t, (_, back)) in tables.iter().zip(&lowered) {
            assert_eq!(
                nfr_ipt::save(back, false),
                nfr_ipt::save(t, false),
                "{}:\n{nfr}",
                p.display()
            );
            assert_eq!(nfr_ipt::encode(back).unwrap(), nfr_ipt::encode(t).unwrap());
            n += 1;
        }
    }
    assert!(n >= 8, "{n}");
}

#[test]
fn unsupported_rules_are_named() {
    let t = nfr_ipt::parse_save("*filter\n:X - [0:0]\n-A X -f -j DROP\nCOMMIT\n").unwrap();
    let e = tables_to_nfr(&t).unwrap_err();
    assert_eq!(e, "X rule 1: -f (fragments)");
    let t = nfr_ipt::parse_save("*filter\n-A INPUT -m ttl --ttl-eq 3\nCOMMIT\n").unwrap();
    assert_eq!(tables_to_nfr(&t).unwrap_err(), "INPUT rule 1: -m ttl");
}

/// kube-proxy's inverted conntrack tests: none of the states (one is set at a time) and a status bit clear,
/// not a compare of the whole word; addrtype as nft's fib.
#[test]
fn inverted_ctstate_ctstatus_and_addrtype_import_with_the_kernels_meaning() {
    let t = nfr_ipt::parse_save(
        "*filter\n:KUBE-FIREWALL - [0:0]\n\
         -A KUBE-FIREWALL -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n\
         -A KUBE-FIREWALL -m conntrack ! --ctstatus ASSURED -j RETURN\n\
         -A KUBE-FIREWALL -m addrtype --dst-type LOCAL ! --src-type LOCAL,BROADCAST -j RETURN\n\
         -A KUBE-FIREWALL -m addrtype --dst-type LOCAL --limit-iface-in -j RETURN\nCOMMIT\n",
    )
    .unwrap();
    let e = tables_to_nfr(&t).unwrap_err();
    assert_eq!(e, "KUBE-FIREWALL rule 4: addrtype --limit-iface-in/out");
    let mut t = t;
    t[0].user_chains[0].rules.pop();
    let nfr = tables_to_nfr(&t).unwrap();
    for want in [
        "ct status & dnat == 0 ct state != { established, related } drop",
        "ct status & assured == 0 return",
        "fib saddr type != { local, broadcast } fib daddr type local return",
    ] {
        assert!(nfr.contains(want), "{want:?} in\n{nfr}");
    }
    let (_, hir, _) = nfr_compiler::check::check_source("imported.nfr", &nfr);
    assert!(hir.is_some(), "{nfr}");
}

/// The lowering builds entries from `nfr_ipt` values, not text: each must still be the entry
/// iptables-restore's parser builds from the iptables-save line printed for it (same defaults,
/// revisions, flag bits and masks), for every ruleset of the repository that lowers and, when
/// ../shared is there, every rule line of nft's tests/py in ip filter and nat chains.
#[test]
fn lowered_entries_are_what_iptables_parses_from_their_lines() {
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "nfr" || x == "t") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    walk(&root.join("examples"), &mut files);
    walk(&root.join("testdata"), &mut files);
    walk(&root.join("../shared/corpus/nft-tests-py/ip"), &mut files);
    walk(&root.join("../shared/corpus/nft-tests-py/inet"), &mut files);
    files.sort();
    let mut sources = Vec::new();
    for p in &files {
        let text = std::fs::read_to_string(p).unwrap();
        if p.extension().is_some_and(|x| x == "nfr") {
            sources.push((p.display().to_string(), text));
            continue;
        }
        for (i, l) in text.lines().enumerate() {
            let l = l.trim_start_matches("- ").trim();
            if l.is_empty() || l.starts_with(['#', ':', '*', '!']) {
                continue;
            }
            let rule = l.split(';').next().unwrap_or_default();
            for chain in [
                "type filter hook forward priority 0",
                "type nat hook prerouting priority -100",
                "type nat hook postrouting priority 100",
            ] {
                sources.push((
                    format!("{}:{}", p.display(), i + 1),
                    format!("table ip t {{ chain c {{ {chain}; {rule} }} }}"),
                ));
            }
        }
    }
    let (mut entries, mut failures) = (0, Vec::new());
    for (name, text) in &sources {
        let (_, Some(hir), _) = nfr_compiler::check::check_source(name, text) else {
            continue;
        };
        let Ok(tables) = lower_ipt(&hir) else {
            continue;
        };
        for (_, t) in &tables {
            let chains = t
                .builtins
                .iter()
                .flat_map(|c| &c.rules)
                .chain(t.user_chains.iter().flat_map(|c| &c.rules));
            for r in chains {
                entries += 1;
                let line = nfr_ipt::rule_spec(r);
                match nfr_ipt::parse_rule_str(&line) {
                    Ok(p) if p == *r => {}
                    other => failures.push(format!("{name}: `{}`: {other:?}", line.trim())),
                }
            }
        }
    }
    eprintln!("{entries} lowered entries compared with iptables' parse of their lines");
    assert!(entries > 50, "only {entries} entries");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
