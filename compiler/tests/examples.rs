//! The shipped examples (`examples/*.nfr`) pass the checker, except `broken.nfr`, which must
//! be rejected. Includes are read relative to the examples directory.

use std::path::PathBuf;

use nfr_compiler::check::check;
use nfr_compiler::diag::{SourceMap, render_short};

#[test]
fn examples_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let rd = std::fs::read_dir(&dir).expect("the examples folder");
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".nfr"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let mut sm = SourceMap::new();
        let id = sm.add(name.clone(), text);
        let mut loader = |p: &str| std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string());
        let (hir, diags) = check(&mut sm, id, &mut loader);
        let broken = name.starts_with("broken");
        if broken && hir.is_some() {
            failures.push(format!("{name}: expected errors, got none"));
        }
        if !broken && hir.is_none() {
            failures.push(format!("{name}:\n{}", render_short(&diags, &sm)));
        }
    }
    println!("{} examples checked", names.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
