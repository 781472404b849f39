//! Hostile inputs the checker must handle in bounded time and memory, each generated small here: the bound it
//! hits and the one diagnostic it prints.

use std::time::{Duration, Instant};

use nfr_compiler::check::check_source;
use nfr_compiler::diag::{self, Diagnostic, SourceMap};

/// `define a0 = 1`, then `define aI = { $aI-1, ... }` with `fan` copies, `levels` times, used in one rule.
fn define_bomb(fan: usize, levels: usize) -> String {
    let mut s = String::from("define a0 = 1\n");
    for i in 1..=levels {
        let items = vec![format!("$a{}", i - 1); fan].join(", ");
        s.push_str(&format!("define a{i} = {{ {items} }}\n"));
    }
    s.push_str(&format!(
        "table ip t {{\n chain c {{\n  type filter hook input priority 0;\n  tcp dport $a{levels} accept\n }}\n}}\n"
    ));
    s
}

fn timed_check(src: &str) -> (SourceMap, Vec<Diagnostic>, Duration) {
    let t = Instant::now();
    let (sm, hir, diags) = check_source("bomb.nfr", src);
    let took = t.elapsed();
    if diags.iter().any(Diagnostic::is_error) {
        assert!(hir.is_none());
    }
    (sm, diags, took)
}

#[test]
fn exponential_define_is_cut_at_the_substitution_budget_and_reported_once() {
    // 4^12 = 16.7M values: past the 2^20 budget at level 11
    for (fan, levels) in [(4, 12), (10, 10)] {
        let src = define_bomb(fan, levels);
        assert!(src.len() < 1100, "{}", src.len());
        let (sm, diags, took) = timed_check(&src);
        let short = diag::render_short(&diags, &sm);
        assert_eq!(diags.len(), 1, "{short}");
        assert_eq!(diags[0].code, "E0012", "{short}");
        assert!(
            diags[0]
                .message
                .contains("define expansion too large: the ruleset's defines expand to more than 1048576 values"),
            "{short}"
        );
        assert!(took < Duration::from_secs(30), "{fan}x{levels}: {took:?}");
    }
}

#[test]
fn deep_define_nesting_is_one_error_not_one_per_path() {
    // 2 ways over 24 levels: 17 levels deep is refused before 2^16 paths are walked
    let src = define_bomb(2, 24);
    let (sm, diags, _) = timed_check(&src);
    let short = diag::render_short(&diags, &sm);
    assert_eq!(diags.len(), 1, "{short}");
    assert_eq!(diags[0].code, "E0012");
    assert!(
        diags[0]
            .message
            .contains("nests defines deeper than 16 levels"),
        "{short}"
    );
    assert!(!short.contains("recursive"), "{short}");
}

#[test]
fn defines_within_the_bounds_still_expand() {
    // 2^10 = 1024 ports, 10 levels
    let src = define_bomb(2, 10);
    let (_, diags, _) = timed_check(&src);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
}

/// `n` rules, each with one out-of-range port (one E0200 each).
fn many_errors(n: usize) -> String {
    let mut s = String::from("table ip t {\n chain c {\n  type filter hook input priority 0;\n");
    for i in 0..n {
        s.push_str(&format!("  tcp dport {} accept\n", 70000 + i));
    }
    s.push_str(" }\n}\n");
    s
}

/// The fastest of three runs of `f`.
fn best_of_3(mut f: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
fn checking_and_json_are_linear_in_the_number_of_diagnostics() {
    // quadratic work (counting every earlier error per rule, scanning the file per position) makes 4x the
    // errors take 16x the time; linear work 4x
    let time = |n: usize| {
        let src = many_errors(n);
        best_of_3(|| {
            let (sm, _, diags) = check_source("e.nfr", &src);
            assert_eq!(diags.len(), n);
            let mut out = Vec::new();
            serde_json::to_writer(
                &mut out,
                &diag::JsonDiags {
                    diags: &diags,
                    sources: &sm,
                },
            )
            .unwrap();
            assert!(out.len() > n * 100);
        })
    };
    let small = time(4000);
    let big = time(16000);
    let ratio = big.as_secs_f64() / small.as_secs_f64();
    assert!(
        ratio < 8.0,
        "4x the errors took {ratio:.1}x the time ({small:?} -> {big:?})"
    );
}
