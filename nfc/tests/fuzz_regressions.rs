//! Replays the fuzz inputs on stable Rust: every file directly under `fuzz/regressions/<target>/` (inputs
//! our own fuzzing found, minimized) and `testdata/fuzz-seeds/<target>/` (the starting corpus, files our own code wrote; kept under testdata/
//! with the project's other test inputs) goes through the same
//! entry function the cargo-fuzz target calls — the entry functions are `fuzz/src/lib.rs`, included here
//! with `#[path]` — and must not panic. Failures are collected and reported together, naming each file.
//!
//! A crash that is not fixed yet lives in `fuzz/regressions/<target>/open/` and is replayed by an
//! `#[ignore]` test naming the bug, so the suite stays green until its owner fixes it; then the file moves
//! up one level and becomes part of the normal replay.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod entries;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz-seeds")
}

/// The regular files directly in `dir`, sorted by name (missing directory: none).
fn files_in(dir: &Path) -> Vec<PathBuf> {
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

/// Runs `f` on every file of the given directories; returns the number of inputs replayed and panics with the
/// list of the inputs that panicked.
fn replay(target: &str, dirs: &[PathBuf], mut f: impl FnMut(&[u8])) -> usize {
    let mut n = 0;
    let mut failed = Vec::new();
    for dir in dirs {
        for path in files_in(&dir.join(target)) {
            let data = std::fs::read(&path).expect("read fuzz input");
            n += 1;
            if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: inputs that panic:\n{}",
        failed.join("\n")
    );
    n
}

fn replay_all(target: &str, f: impl FnMut(&[u8])) {
    let n = replay(target, &[fuzz_dir().join("regressions"), seeds_dir()], f);
    println!("{target}: replayed {n} inputs");
}

#[test]
fn parse_check() {
    replay_all("parse_check", entries::parse_check);
}

#[test]
fn ipt_blob() {
    replay_all("ipt_blob", entries::ipt_blob);
}

#[test]
fn wire() {
    // One table and clock for the whole directory, as in the fuzz target (state persists across inputs).
    let mut ct = nfr_runtime::ct::Conntrack::new(entries::wire_settings());
    let mut clock = 0u64;
    replay_all("wire", |d| entries::wire(&mut ct, &mut clock, d));
}

#[test]
fn pcap() {
    replay_all("pcap", entries::pcap);
}

#[test]
fn import_save() {
    replay_all("import_save", entries::import_save);
}

#[test]
fn run_pcap() {
    let mut pairs = 0;
    replay_all("run_pcap", |d| pairs += entries::run_pcap(d));
    println!("run_pcap: {pairs} (engine, frame) fates equal to the interpreter's");
    // the seeds' rulesets load on more than one engine and their captures have frames
    assert!(pairs > 0);
}

#[test]
fn seeds_are_present() {
    // The replay above must not pass vacuously because the directories moved.
    for t in [
        "parse_check",
        "ipt_blob",
        "wire",
        "pcap",
        "import_save",
        "run_pcap",
    ] {
        let n = files_in(&seeds_dir().join(t)).len();
        assert!(n > 0, "testdata/fuzz-seeds/{t} is empty or missing");
    }
}
