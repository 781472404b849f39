//! End-to-end tests of the `nfc` binary: exit codes, the examples, golden diagnostics, `--format json`, and the
//! real `nft -c` accepting what `nfc fmt` prints (a kernel-tool oracle test: it skips without root/nft/unshare,
//! and fails instead when `NFC_REQUIRE_ORACLE=1`).

mod common;

use common::{gate, nfc, root};
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "nfr"))
        .collect();
    v.sort();
    v
}

fn is_broken(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("broken"))
}

/// Compares `actual` with the golden file `nfc/tests/golden/NAME` (`UPDATE_EXPECT=1` rewrites it).
fn golden(name: &str, actual: &str) {
    expect_test::expect_file![root().join("nfc/tests/golden").join(name)].assert_eq(actual);
}

fn good_examples_check_clean() {
    for p in examples().iter().filter(|p| !is_broken(p)) {
        let out = nfc(&["check", p.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", p.display());
        assert!(stderr.contains(": ok"), "{stderr}");
        // the examples hold no rule that can never match, and no duplicate
        assert!(
            !stderr.contains("W0602") && !stderr.contains("W0603"),
            "{stderr}"
        );
    }
}

fn shadowed_rules_are_warnings() {
    let f = "testdata/diagnostics/W0602-shadowed-by-a-union.nfr";
    let out = nfc(&["check", f]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ok (4 warning(s))"), "{stderr}");
    let out = nfc(&["check", "--deny-warnings", f]);
    assert_eq!(out.status.code(), Some(1));
    let out = nfc(&["check", "--format", "json", f]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON on stdout");
    let d = &v["files"][0]["diagnostics"][0];
    assert_eq!(d["code"], "W0602");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["primary"]["line"], 7);
    let labels: Vec<(u64, &str)> = d["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        labels,
        [(5, "covered by this rule"), (6, "covered by this rule")]
    );
}

fn broken_example_reports_every_error() {
    let out = nfc(&["check", "--color", "never", "examples/broken.nfr"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    golden("broken.stderr", &stderr);
    for code in ["E0200", "E0203", "E0300", "E0500"] {
        assert!(stderr.contains(code), "missing {code} in\n{stderr}");
    }
}

fn json_diagnostics() {
    let out = nfc(&["check", "--format", "json", "examples/broken.nfr"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON on stdout");
    let file = &v["files"][0];
    assert_eq!(file["ok"], false);
    let text = file["diagnostics"].to_string();
    assert!(text.contains("E0500"), "{text}");
}

fn operational_errors_exit_2() {
    let out = nfc(&["check", "examples/does-not-exist.nfr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist.nfr"));
    let out = nfc(&["check"]);
    assert_eq!(out.status.code(), Some(2), "usage errors are operational");
}

fn fmt_is_idempotent_and_checks() {
    let dir = common::tmp_dir("fmt");
    for p in examples().iter().filter(|p| !is_broken(p)) {
        let once = nfc(&["fmt", p.to_str().unwrap()]);
        assert_eq!(once.status.code(), Some(0), "{}", p.display());
        let f1 = dir.join(p.file_name().unwrap());
        std::fs::write(&f1, &once.stdout).unwrap();
        let twice = nfc(&["fmt", f1.to_str().unwrap()]);
        assert_eq!(
            String::from_utf8_lossy(&once.stdout),
            String::from_utf8_lossy(&twice.stdout),
            "fmt is not idempotent on {}",
            p.display()
        );
        assert_eq!(
            nfc(&["fmt", "--check", f1.to_str().unwrap()]).status.code(),
            Some(0)
        );
        // The formatted file still checks clean.
        assert_eq!(
            nfc(&["check", f1.to_str().unwrap()]).status.code(),
            Some(0),
            "{}",
            f1.display()
        );
    }
    assert_eq!(
        nfc(&["fmt", "--check", "examples/broken.nfr"])
            .status
            .code(),
        Some(1)
    );
}

fn nft_accepts_fmt_output_of_every_example(_: ()) {
    let dir = common::tmp_dir("nft-c");
    for p in examples().iter().filter(|p| !is_broken(p)) {
        let out = nfc(&["fmt", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0));
        let f = dir.join(p.file_name().unwrap());
        std::fs::write(&f, &out.stdout).unwrap();
        let nft = common::unshare_n(["nft", "-c", "-f", f.to_str().unwrap()]);
        assert!(
            nft.status.success(),
            "nft -c rejects `nfc fmt {}`:\n{}\n{}",
            p.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&nft.stderr)
        );
    }
}

/// Protocol names: `nfc fmt` prints `meta l4proto N` and `ip protocol N` for every N in 1..=255
/// exactly as `nft list ruleset` does after loading them (`/etc/protocols`, digits where it has
/// no name). 0 is left out: nft 1.0.6 prints `ip` (the first 0 line of /etc/protocols), nfc
/// prints `hopopt`.
fn nft_prints_protocol_names_like_nfc_fmt(_: ()) {
    let mut text = String::from("table inet t {\n\tchain c {\n");
    for n in 1..=255 {
        text.push_str(&format!("\t\tmeta l4proto {n}\n\t\tip protocol {n}\n"));
    }
    text.push_str("\t}\n}\n");
    let dir = common::tmp_dir("nft-protocols");
    let f = dir.join("protocols.nfr");
    std::fs::write(&f, &text).unwrap();
    let ours = nfc(&["fmt", f.to_str().unwrap()]);
    assert_eq!(ours.status.code(), Some(0));
    let script = format!("nft -f '{}' && nft list ruleset", f.display());
    let nft = common::unshare_n(["sh", "-c", &script]);
    assert!(
        nft.status.success(),
        "{}",
        String::from_utf8_lossy(&nft.stderr)
    );
    let (ours, theirs) = (common::stdout(&ours), common::stdout(&nft));
    assert_eq!(
        ours, theirs,
        "nfc fmt (left) and nft list ruleset (right) differ"
    );
    assert!(theirs.contains("meta l4proto ethernet\n") && theirs.contains("ip protocol 144\n"));
}

fn main() {
    gate::run(vec![
        gate::test("good_examples_check_clean", good_examples_check_clean),
        gate::test("shadowed_rules_are_warnings", shadowed_rules_are_warnings),
        gate::test(
            "broken_example_reports_every_error",
            broken_example_reports_every_error,
        ),
        gate::test("json_diagnostics", json_diagnostics),
        gate::test("operational_errors_exit_2", operational_errors_exit_2),
        gate::test("fmt_is_idempotent_and_checks", fmt_is_idempotent_and_checks),
        gate::needs(
            "nft_accepts_fmt_output_of_every_example",
            || gate::netns_tool("nft"),
            nft_accepts_fmt_output_of_every_example,
        ),
        gate::needs(
            "nft_prints_protocol_names_like_nfc_fmt",
            || gate::netns_tool("nft"),
            nft_prints_protocol_names_like_nfc_fmt,
        ),
    ]);
}
