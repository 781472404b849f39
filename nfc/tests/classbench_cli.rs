//! `nfc import classbench`: hand-written ClassBench filter sets (`testdata/classbench`, Song's and db_generator's
//! formats) give the golden `.nfr` (`nfc/tests/golden/classbench_*.nfr`, rewritten with `UPDATE_EXPECT=1`), which
//! `nfc check` accepts; the trace's pcap replayed with `nfc run pcap` gives the verdicts and counters the filters
//! say; malformed lines are all reported with file:line (exit 1) and nothing is written. The run on the public
//! ClassBench corpus is `classbench_corpus.rs`.

mod common;

use common::{nfc, root, stdout, tmp_dir};
use serde_json::Value;

/// Compares `actual` with the golden file `nfc/tests/golden/NAME` (`UPDATE_EXPECT=1` rewrites it).
fn golden(name: &str, actual: &str) {
    expect_test::expect_file![root().join("nfc/tests/golden").join(name)].assert_eq(actual);
}

#[test]
fn song_set_imports_to_the_golden_ruleset_and_its_trace_replays() {
    let d = tmp_dir("cb-song");
    let out = d.join("song.nfr");
    let o = nfc(&[
        "import",
        "classbench",
        "testdata/classbench/song.rules",
        "testdata/classbench/song.trace",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("7 rule(s)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("10 packet(s)"), "{}", stdout(&o));
    let nfr = std::fs::read_to_string(&out).unwrap();
    golden("classbench_song.nfr", &nfr);
    let o = nfc(&["check", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // The pcap defaults to OUT with `.pcap`; replay it per packet.
    let pcap = d.join("song.pcap");
    let o = nfc(&[
        "run",
        "pcap",
        out.to_str().unwrap(),
        pcap.to_str().unwrap(),
        "--path",
        "input",
        "--trace",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (report, frames) = lines.split_last().unwrap();
    // The rule (1-based) each trace line must hit; 0: none, the policy drops it. Its handle is one more
    // (as `nft -a` numbers them, the chain took handle 1).
    let want = [1, 6, 2, 0, 3, 4, 5, 6, 7, 0];
    assert_eq!(frames.len(), want.len());
    for (f, w) in frames.iter().zip(want) {
        let rules = f["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "{f}");
        if w == 0 {
            assert_eq!(rules[0]["policy"], "drop", "{f}");
            assert_eq!(f["verdict"], "drop", "{f}");
        } else {
            assert_eq!(rules[0]["handle"], w + 1, "{f}");
            assert_eq!(f["verdict"], "accept", "{f}");
        }
    }
    let counters: Vec<u64> = report["report"]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["packets"].as_u64().unwrap())
        .collect();
    assert_eq!(counters, [1, 1, 1, 1, 1, 2, 1]);
}

#[test]
fn db_generator_set_with_flags_imports_and_lowers_to_iptables() {
    let o = nfc(&["import", "classbench", "testdata/classbench/dbgen.rules"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    golden("classbench_dbgen.nfr", &stdout(&o));
    let d = tmp_dir("cb-dbgen");
    let f = d.join("dbgen.nfr");
    std::fs::write(&f, stdout(&o)).unwrap();
    let o = nfc(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = nfc(&[
        "compile",
        f.to_str().unwrap(),
        "--emit",
        "ipt",
        "-o",
        d.join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn every_malformed_line_is_reported_and_nothing_written() {
    let d = tmp_dir("cb-bad");
    let out = d.join("bad.nfr");
    let o = nfc(&[
        "import",
        "classbench",
        "testdata/classbench/bad.rules",
        "testdata/classbench/bad.trace",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    for at in [
        "bad.rules:2:",
        "bad.rules:3:",
        "bad.rules:5:",
        "bad.rules:6:",
        "bad.trace:2:",
        "bad.trace:3:",
    ] {
        assert!(err.contains(at), "{at} missing in\n{err}");
    }
    assert!(
        !err.contains("bad.rules:1:") && !err.contains("bad.trace:1:"),
        "{err}"
    );
    assert!(!out.exists() && !d.join("bad.pcap").exists());
}

#[test]
fn operational_errors_exit_2() {
    // A trace with nowhere to write its capture; an unreadable file; --pcap without a trace.
    for args in [
        &[
            "import",
            "classbench",
            "testdata/classbench/song.rules",
            "testdata/classbench/song.trace",
        ][..],
        &["import", "classbench", "testdata/classbench/nonexistent"][..],
        &[
            "import",
            "classbench",
            "testdata/classbench/song.rules",
            "--pcap",
            "x.pcap",
        ][..],
    ] {
        let o = nfc(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
    // Binary garbage is malformed lines, not a crash.
    let d = tmp_dir("cb-garbage");
    let g = d.join("garbage");
    std::fs::write(&g, [0xff, 0xfe, b'@', b'\n', 0, 1, 2, b'\n']).unwrap();
    let o = nfc(&["import", "classbench", g.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}
