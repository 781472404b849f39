//! Golden bytecode: every shipped example (`examples/*.nfr`, except `broken.nfr`) and every
//! `testdata/bytecode/*.nfr` is checked, lowered and printed with `print_program` (nft's
//! `--debug=netlink` form), and compared with `testdata/bytecode/<name>.txt`.
//! `UPDATE_EXPECT=1` rewrites the goldens. A lowering change shows up here as a reviewable diff.

use std::path::{Path, PathBuf};

use nfr_compiler::check::check;
use nfr_compiler::diag::{SourceMap, render_short};
use nfr_compiler::lower::{lower, print_program};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.extension().is_some_and(|e| e == "nfr")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("broken"))
    });
    v.sort();
    v
}

#[test]
fn bytecode_goldens() {
    let golden_dir = root().join("testdata/bytecode");
    let mut files = inputs(&root().join("examples"));
    files.extend(inputs(&golden_dir));
    assert!(
        files.len() >= 8,
        "examples and testdata/bytecode inputs: {files:?}"
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = path.parent().unwrap().to_path_buf();
        let mut sm = SourceMap::new();
        let id = sm.add(name.clone(), std::fs::read_to_string(path).unwrap());
        let mut loader = |p: &str| std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string());
        let (hir, diags) = check(&mut sm, id, &mut loader);
        let Some(hir) = hir else {
            failures.push(format!("{name}: {}", render_short(&diags, &sm)));
            continue;
        };
        let prog = match lower(&hir) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: lowering failed: {e:?}"));
                continue;
            }
        };
        let got = print_program(&hir, &prog);
        // `UPDATE_EXPECT=1` rewrites the golden.
        expect_test::expect_file![golden_dir.join(format!("{name}.txt"))].assert_eq(&got);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
