//! Replays the seeds of the `jit_diff` and `classify` fuzz targets (`testdata/fuzz-seeds/<target>`)
//! and any crash inputs kept in `fuzz/regressions/<target>` through `nfr_jit::testgen::diff_input`
//! and `classify_input`, on stable.

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

/// Every seed and regression of `target` through `run`; the pairs compared.
fn replay(target: &str, run: fn(&[u8]) -> Result<usize, String>) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = files(&root.join("testdata/fuzz-seeds").join(target));
    assert!(
        !seeds.is_empty(),
        "testdata/fuzz-seeds/{target} is empty or missing"
    );
    let regressions = files(&root.join("fuzz/regressions").join(target));
    let mut pairs = 0;
    for p in seeds.iter().chain(&regressions) {
        let data = std::fs::read(p).expect("read fuzz input");
        match run(&data) {
            Ok(n) => pairs += n,
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    println!(
        "{target}: {} inputs, {pairs} (program, packet) pairs equal",
        seeds.len() + regressions.len()
    );
    pairs
}

#[test]
fn jit_diff_seeds_and_regressions_agree() {
    assert!(replay("jit_diff", nfr_jit::testgen::diff_input) > 0);
}

#[test]
fn classify_seeds_and_regressions_agree() {
    assert!(replay("classify", nfr_jit::testgen::classify_input) > 0);
}
