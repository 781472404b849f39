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
