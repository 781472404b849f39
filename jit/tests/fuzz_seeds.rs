//! Replays the `jit_diff` fuzz target's seeds (`testdata/fuzz-seeds/jit_diff`) and any crash
//! inputs kept in `fuzz/regressions/jit_diff` through `nfr_jit::testgen::diff_input`, on stable.

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn jit_diff_seeds_and_regressions_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = files(&root.join("testdata/fuzz-seeds/jit_diff"));
    assert!(
        !seeds.is_empty(),
        "testdata/fuzz-seeds/jit_diff is empty or missing"
    );
    let regressions = files(&root.join("fuzz/regressions/jit_diff"));
    let mut pairs = 0;
    for p in seeds.iter().chain(&regressions) {
        let data = std::fs::read(p).expect("read fuzz input");
        match nfr_jit::testgen::diff_input(&data) {
            Ok(n) => pairs += n,
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    println!(
        "jit_diff: {} inputs, {pairs} (program, packet) pairs equal",
        seeds.len() + regressions.len()
    );
    assert!(pairs > 0);
}
