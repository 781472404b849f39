//! What the corpus test binaries share: the workspace root and the sorted list of
//! `testdata/cases/*.toml` files (the harness library never opens files, so the tests read them).
//! Each test file includes it with `mod common;`.

use std::path::PathBuf;

/// The workspace root (the parent of `tests/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `testdata/cases/*.toml`, sorted by path.
pub fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("testdata/cases"))
        .expect("testdata/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}
