//! Runs every case of `testdata/cases/*.toml` on every engine (see `nfr_testsuite`), one test
//! per case named `file.toml/case` (so `cargo test -p nfr-testsuite --test corpus -- nat.toml/`
//! selects some; `NFR_TEST=substr,-excluded` too). `NFR_TEST_VERBOSE=1` prints the engines a
//! case skips. A case's failures on every engine are reported together.

mod common;
#[path = "../gate.rs"]
mod gate;

use common::{corpus_files, root};
use nfr_testsuite::{Case, engines, parse_corpus, run_case, selected, skipped};

/// Every corpus file parses, case names are unique, each case gives exactly one of `rules`
/// and `file` and has packets or an expected error, and there are at least 200 cases.
fn corpus_is_well_formed() {
    let mut fails: Vec<String> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for f in corpus_files() {
        let fname = f.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let text = std::fs::read_to_string(&f).expect("corpus file readable");
        let corpus = match parse_corpus(&text) {
            Ok(c) => c,
            Err(e) => {
                fails.push(format!("{fname}: {e}"));
                continue;
            }
        };
        for case in &corpus.cases {
            let id = format!("{fname}/{}", case.name);
            if !names.insert(id.clone()) {
                fails.push(format!("{id}: duplicate case name"));
            }
            if case.rules.is_some() == case.file.is_some() {
                fails.push(format!("{id}: give exactly one of `rules` and `file`"));
            }
            if case.error.is_none() && case.packets.is_empty() {
                fails.push(format!("{id}: a case needs packets or an expected error"));
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
    assert!(
        names.len() >= 200,
        "the corpus should hold at least 200 cases, has {}",
        names.len()
    );
}

/// One case on every engine (an engine's commented skip, or a ruleset the ipt engine cannot
/// lower, is printed with `NFR_TEST_VERBOSE=1`).
fn run_one(id: &str, case: &Case) {
    let verbose = std::env::var("NFR_TEST_VERBOSE").is_ok();
    let source = match (&case.rules, &case.file) {
        (Some(r), None) => r.clone(),
        (None, Some(p)) => std::fs::read_to_string(root().join(p))
            .unwrap_or_else(|e| panic!("{id}: cannot read {p}: {e}")),
        _ => panic!("{id}: give exactly one of `rules` and `file`"),
    };
    let mut fails: Vec<String> = Vec::new();
    for e in engines() {
        if let Some(why) = skipped(e.name(), id) {
            if verbose {
                println!("SKIP {id} on {}: {why}", e.name());
            }
            continue;
        }
        match run_case(id, case, &source, e.as_ref(), &mut fails) {
            Ok(_) => {}
            Err(s) if e.partial() => {
                if verbose {
                    println!("SKIP {id} on {}: does not lower: {}", e.name(), s.0);
                }
            }
            Err(s) => fails.push(format!(
                "{id}: engine {} could not prepare it: {} (add it to SKIP if intended)",
                e.name(),
                s.0
            )),
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// One test per case, named `file.toml/case`, beside the two whole-corpus checks.
fn main() {
    let filter = std::env::var("NFR_TEST").ok();
    let mut trials = vec![
        gate::test("corpus_is_well_formed", corpus_is_well_formed),
        gate::test("every_truncation_is_safe", every_truncation_is_safe),
    ];
    for f in corpus_files() {
        let fname = f.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let text = std::fs::read_to_string(&f).expect("corpus file readable");
        let Ok(corpus) = parse_corpus(&text) else {
            continue; // corpus_is_well_formed reports it
        };
        for case in corpus.cases {
            let id = format!("{fname}/{}", case.name);
            if selected(filter.as_deref(), &id) {
                trials.push(gate::test(id.clone(), move || run_one(&id, &case)));
            }
        }
    }
    gate::run(trials);
}

/// Every packet of the corpus, cut at every length from 0 to its full size (the packet
/// context still describing the whole datagram), runs on every engine without a panic:
/// out-of-bounds loads break.
fn every_truncation_is_safe() {
    use nfr_compiler::check::check_source;
    let files = corpus_files();
    let mut runs = 0usize;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("corpus file readable");
        let Ok(corpus) = parse_corpus(&text) else {
            continue;
        };
        for case in corpus.cases.iter().filter(|c| c.error.is_none()) {
            let source = match (&case.rules, &case.file) {
                (Some(r), _) => r.clone(),
                (None, Some(p)) => std::fs::read_to_string(root().join(p)).unwrap_or_default(),
                _ => continue,
            };
            let (_, Some(hir), _) = check_source("case.nfr", &source) else {
                continue;
            };
            for e in engines() {
                let Ok(mut prep) = e.prepare(&hir, &case.host()) else {
                    continue;
                };
                for p in &case.packets {
                    let Ok(full) =
                        nfr_testsuite::packet::build(p, case.hook.as_deref().unwrap_or("input"))
                    else {
                        continue;
                    };
                    for n in 0..full.bytes.len() {
                        let mut cut = full.clone();
                        cut.bytes.truncate(n);
                        let _ = prep.run(&cut);
                        runs += 1;
                    }
                }
            }
        }
    }
    println!("truncation runs: {runs}");
    assert!(runs > 10_000, "too few truncation runs: {runs}");
}
