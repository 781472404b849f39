//! Runs every case of `testdata/corpus/*.toml` on every engine (see `nfr_testsuite`).
//! `NFR_TEST=substr,-excluded` selects cases by `file/name`; `NFR_TEST_VERBOSE=1` prints each
//! case as it runs. Failures are collected and reported together at the end.

mod common;

use common::{corpus_files, root};
use nfr_testsuite::{engines, parse_corpus, run_case, selected, skipped};

#[test]
fn corpus() {
    let files = corpus_files();
    let filter = std::env::var("NFR_TEST").ok();
    let verbose = std::env::var("NFR_TEST_VERBOSE").is_ok();
    let engines = engines();
    let mut fails: Vec<String> = Vec::new();
    let (mut cases, mut packets, mut skips) = (0usize, 0usize, 0usize);
    let mut names = std::collections::HashSet::new();
    for f in &files {
        let fname = f.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let text = std::fs::read_to_string(f).expect("corpus file readable");
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
            if !selected(filter.as_deref(), &id) {
                continue;
            }
            let source = match (&case.rules, &case.file) {
                (Some(r), None) => r.clone(),
                (None, Some(p)) => match std::fs::read_to_string(root().join(p)) {
                    Ok(t) => t,
                    Err(e) => {
                        fails.push(format!("{id}: cannot read {p}: {e}"));
                        continue;
                    }
                },
                _ => {
                    fails.push(format!("{id}: give exactly one of `rules` and `file`"));
                    continue;
                }
            };
            if case.error.is_none() && case.packets.is_empty() {
                fails.push(format!("{id}: a case needs packets or an expected error"));
            }
            cases += 1;
            for e in &engines {
                if let Some(why) = skipped(e.name(), &id) {
                    skips += 1;
                    if verbose {
                        println!("SKIP {id} on {}: {why}", e.name());
                    }
                    continue;
                }
                if verbose {
                    println!("RUN  {id} on {}", e.name());
                }
                match run_case(&id, case, &source, e.as_ref(), &mut fails) {
                    Ok(n) => packets += n,
                    Err(s) if e.partial() => {
                        skips += 1;
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
        }
    }
    println!(
        "corpus: {cases} cases, {packets} packets on {} engine(s), {skips} skipped",
        engines.len()
    );
    if !fails.is_empty() {
        panic!("{} corpus failures:\n{}", fails.len(), fails.join("\n"));
    }
    if filter.is_none() {
        assert!(
            cases >= 200,
            "the corpus should hold at least 200 cases, has {cases}"
        );
    }
}

/// Every packet of the corpus, cut at every length from 0 to its full size (the packet
/// context still describing the whole datagram), runs on every engine without a panic:
/// out-of-bounds loads break.
#[test]
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
                let Ok(mut prep) = e.prepare(&hir) else {
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
