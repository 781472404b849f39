//! Hostile input: every file of nftables' fuzzing reproducers (`../shared/corpus/nft-bogons/`)
//! must parse without panicking, and printing whatever tree came out must not panic either.
//! Also deep nesting and huge inputs. The corpus check is ignored when the corpus is absent.

#[path = "../../tests/gate.rs"]
mod gate;

use std::path::PathBuf;

fn bogons_parse_without_panic(dir: PathBuf) {
    let mut n = 0;
    let mut with_errors = 0;
    let mut unstable = Vec::new();
    for sub in ["nft-f", "nft-j-f"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_default();
            let src = String::from_utf8_lossy(&bytes);
            let p = nfr_grammar::parse(&src);
            let once = nfr_grammar::format(&p.file);
            // Whatever tree came out prints to something that parses to the same print.
            let p2 = nfr_grammar::parse(&once);
            let twice = nfr_grammar::format(&p2.file);
            if once != twice || !p2.errors.is_empty() {
                unstable.push(format!(
                    "{}: {:?}\n{once}\n---\n{twice}",
                    f.display(),
                    p2.errors.first()
                ));
            }
            for e in &p.errors {
                assert!(
                    e.span.start <= e.span.end && e.span.end as usize <= src.len(),
                    "{}: bad span {e}",
                    f.display()
                );
            }
            n += 1;
            if !p.errors.is_empty() {
                with_errors += 1;
            }
        }
    }
    println!("bogons: {n} files parsed without panic, {with_errors} with syntax errors");
    for u in &unstable {
        println!("UNSTABLE {u}");
    }
    assert!(
        unstable.is_empty(),
        "{} bogons do not print stably",
        unstable.len()
    );
    assert!(
        n >= 80,
        "expected the bogons corpus to have ≥ 80 files, found {n}"
    );
}

fn deep_nesting_is_capped() {
    for open in ["{", "(", "[", "{ ("] {
        let src = format!(
            "table ip t {{ chain c {{ ip saddr {} }} }}",
            open.repeat(100_000)
        );
        let p = nfr_grammar::parse(&src);
        assert!(
            p.errors.iter().any(|e| e.message.contains("nesting")),
            "{open}: {:?}",
            p.errors.first()
        );
    }
    // Balanced deep nesting too.
    let src = format!(
        "table ip t {{ chain c {{ ip saddr {}1.2.3.4{} }} }}",
        "{ ".repeat(5000),
        " }".repeat(5000)
    );
    let p = nfr_grammar::parse(&src);
    assert!(!p.errors.is_empty());
}

fn huge_and_odd_inputs() {
    let big = "table ip t { chain c { tcp dport 22 accept\n".to_string()
        + &"ip saddr 1.2.3.4 drop\n".repeat(50_000)
        + "} }";
    let p = nfr_grammar::parse(&big);
    assert!(p.errors.is_empty(), "{:?}", p.errors.first());
    for src in [
        "",
        "}",
        "{",
        "\"",
        "table",
        "table ip",
        "@",
        "$",
        "\u{0}\u{ff}",
        "chain } {",
        "tcp dport",
        ";;;\n\n",
    ] {
        let p = nfr_grammar::parse(src);
        let _ = nfr_grammar::format(&p.file);
    }
    // A long operator chain must not recurse per operator.
    let src = format!(
        "table ip t {{ chain c {{ meta mark set 1{} }} }}",
        " | 1".repeat(100_000)
    );
    let p = nfr_grammar::parse(&src);
    let _ = nfr_grammar::format(&p.file);
}

/// Random token soup (proptest: runs of the words below, shrunk to a smallest failing one): parse and
/// print must never panic, and every error span must lie inside the input. A fixed seed keeps runs
/// reproducible.
fn random_token_soup() {
    const WORDS: &[&str] = &[
        "table",
        "ip",
        "inet",
        "t",
        "chain",
        "c",
        "set",
        "map",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ";",
        "\n",
        ",",
        ":",
        ".",
        "/",
        "-",
        "&",
        "|",
        "==",
        "!=",
        "!",
        "@",
        "$",
        "=",
        "type",
        "filter",
        "hook",
        "input",
        "priority",
        "policy",
        "accept",
        "drop",
        "tcp",
        "dport",
        "ip",
        "saddr",
        "meta",
        "mark",
        "ct",
        "state",
        "established",
        "vmap",
        "jump",
        "counter",
        "log",
        "prefix",
        "\"x\"",
        "limit",
        "rate",
        "10/second",
        "22",
        "0x10",
        "1.2.3.4",
        "::1",
        "fe80::/64",
        "1h",
        "elements",
        "flags",
        "interval",
        "dnat",
        "to",
        "snat",
        "masquerade",
        "reject",
        "with",
        "icmp",
        "comment",
        "# c",
        "define",
        "include",
        "*",
    ];
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let soup = prop::collection::vec(prop::sample::select(WORDS), 0..40)
        .prop_map(|w| w.iter().map(|w| format!("{w} ")).collect::<String>());
    let mut runner = TestRunner::new_with_rng(
        Config::with_cases(3000),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let clean = std::cell::Cell::new(0);
    let result = runner.run(&soup, |src| {
        let p = nfr_grammar::parse(&src);
        for e in &p.errors {
            prop_assert!(
                e.span.start <= e.span.end && e.span.end as usize <= src.len(),
                "{src:?}: {e}"
            );
        }
        let once = nfr_grammar::format(&p.file);
        if p.errors.is_empty() {
            clean.set(clean.get() + 1);
            let p2 = nfr_grammar::parse(&once);
            prop_assert!(
                p2.errors.is_empty(),
                "{src:?} printed as {once:?}: {:?}",
                p2.errors
            );
            prop_assert_eq!(nfr_grammar::format(&p2.file), once, "{:?}", src);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "random soup: {} error-free inputs printed stably",
        clean.get()
    );
}

fn main() {
    gate::run(vec![
        gate::needs(
            "bogons_parse_without_panic",
            || gate::corpus("nft-bogons"),
            bogons_parse_without_panic,
        ),
        gate::test("deep_nesting_is_capped", deep_nesting_is_capped),
        gate::test("huge_and_odd_inputs", huge_and_odd_inputs),
        gate::test("random_token_soup", random_token_soup),
    ]);
}
