//! Golden diagnostics: every `testdata/diagnostics/<CODE>-<class>.nfr` is checked and its
//! rendered diagnostics (ariadne, colour off) compared with `<CODE>-<class>.stderr`.
//! `UPDATE_EXPECT=1` rewrites the `.stderr` files. Each file must produce its code, and
//! every code of `diag::CODES` must have a golden file. Files of the iptables lowering codes (E07xx)
//! are lowered with `lower_ipt` after a clean check.

use std::path::{Path, PathBuf};

use nfr_compiler::check::check;
use nfr_compiler::diag::{CODES, SourceMap, render};
use nfr_compiler::lower::ipt::lower_ipt;

/// Codes no source reaches: E0702 guards the lowering itself (every table it builds must pass
/// translate_table; `nfr-ipt`'s verifier tests cover the check).
const INTERNAL: &[&str] = &["E0702"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/diagnostics")
}

fn run(dir: &Path, name: &str) -> (String, Vec<&'static str>) {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let mut sm = SourceMap::new();
    let id = sm.add(name, text);
    let mut loader =
        |p: &str| std::fs::read_to_string(dir.join(p)).map_err(|e| e.kind().to_string());
    let (hir, mut diags) = check(&mut sm, id, &mut loader);
    if diags.iter().any(|d| d.is_error()) {
        assert!(hir.is_none(), "{name}: a Hir despite errors");
    }
    if name.starts_with("E07")
        && let Some(h) = &hir
        && let Err(d) = lower_ipt(h)
    {
        diags.extend(d);
    }
    (
        render(&diags, &sm, false),
        diags.iter().map(|d| d.code).collect(),
    )
}

#[test]
fn golden_diagnostics() {
    let dir = dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("testdata/diagnostics")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".nfr"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    let mut covered = Vec::new();
    for name in &names {
        let (out, codes) = run(&dir, name);
        let code = name.split('-').next().unwrap_or("");
        if !codes.contains(&code) {
            failures.push(format!(
                "{name}: expected a {code} diagnostic, got {codes:?}"
            ));
        }
        covered.push(code.to_string());
        // `UPDATE_EXPECT=1` rewrites the golden.
        expect_test::expect_file![dir.join(name.replace(".nfr", ".stderr"))].assert_eq(&out);
    }
    for (code, _) in CODES {
        if !INTERNAL.contains(code) && !covered.iter().any(|c| c == code) {
            failures.push(format!("no golden file for {code}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
