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
