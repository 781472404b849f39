//! `nfc compile FILE --emit clif`: the JIT's Cranelift IR, one function per chain partition, each
//! named by its chain; runs of classified rules show up as classified runs. (Every ruleset that
//! checks also compiles with the JIT — there is no ruleset it refuses — so the error path is not
//! exercised here; `nfr-jit`'s own tests cover `JitError`.)

mod common;

use common::nfc;

/// `nfc compile FILE --emit clif`, which must succeed; returns the IR text.
fn clif(file: &str) -> String {
    let o = nfc(&["compile", file, "--emit", "clif"]);
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn headers(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("; chain ")).collect()
}

#[test]
fn clif_names_every_chain_and_is_real_ir() {
    let out = clif("examples/chains.nfr");
    let hs = headers(&out);
    for chain in ["input", "from_wan", "from_lan", "log_and_drop"] {
        assert!(
            hs.iter()
                .any(|h| h.contains(&format!(" {chain} (")) || h.contains(&format!("/{chain} ("))),
            "no function for chain {chain} in headers {hs:?}"
        );
    }
    // One Cranelift function per header, with a body that returns.
    let funcs = out.lines().filter(|l| l.starts_with("function ")).count();
    assert_eq!(funcs, hs.len(), "{out}");
    assert!(out.contains("return"), "{out}");
    assert!(out.contains("br_table"), "{out}");
    // `iifname "eth0" jump from_wan`: the meta load and compare are native code.
    assert!(out.contains("icmp"), "{out}");
}

#[test]
fn clif_shows_rule_runs_as_classified_runs() {
    let dir = common::tmp_dir("clif");
    let file = dir.join("ports.nfr");
    let mut text = String::from(
        "table ip filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n",
    );
    for p in 0..200 {
        text.push_str(&format!("\t\ttcp dport {} counter accept\n", 1000 + p));
    }
    text.push_str("\t}\n}\n");
    std::fs::write(&file, text).unwrap();
    let out = clif(file.to_str().unwrap());
    let hs = headers(&out);
    assert_eq!(hs.len(), 1, "{hs:?}");
    assert!(
        hs[0].contains("classified rules 0..200"),
        "header {:?}",
        hs[0]
    );
    // One classified run: the walk of the classifier, no per-rule code (far fewer lines than
    // 200 unrolled rules would take).
    assert!(out.lines().count() < 1000, "{} lines", out.lines().count());
}

#[test]
fn leading_ct_state_rules_stay_out_of_the_classified_run() {
    let dir = common::tmp_dir("clif");
    let file = dir.join("stateful.nfr");
    let mut text = String::from(
        "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\tct state invalid drop\n",
    );
    for p in 0..50 {
        text.push_str(&format!("\t\ttcp dport {} counter accept\n", 1000 + p));
    }
    // A `ct state` rule after the run's start is the run's, as any other rule.
    text.push_str("\t\tct state new tcp dport 22 accept\n\t\tct state untracked accept\n");
    text.push_str("\t}\n}\n");
    std::fs::write(&file, text).unwrap();
    let out = clif(file.to_str().unwrap());
    assert_eq!(
        headers(&out),
        [
            "; chain input (#0) rules 0..2",
            "; chain input (#0) rules 2..54, classified rules 2..54"
        ]
    );
}

#[test]
fn clif_of_a_broken_ruleset_fails_with_diagnostics() {
    let o = nfc(&["compile", "examples/broken.nfr", "--emit", "clif"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).is_empty());
    assert!(!String::from_utf8_lossy(&o.stderr).is_empty());
}
