//! `nfc bench`: the engines run side by side on tiny rulesets and agree; the iptables engine is there when the
//! ruleset lowers to iptables and reported n/a (with the reason) when it does not, as is the native baseline
//! until the classifier wires it in; a program that writes marks gets its states reset before every pass; the
//! JSON document has every number; `--plot` writes an SVG; exit codes. No assertion depends on a timing.

mod common;

use common::{nfc, stdout, tmp_dir};
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let mut a = vec!["bench", "--rounds", "2", "--passes", "2", "--json"];
    a.extend_from_slice(args);
    let o = nfc(&a);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The song snippet imported with its trace: (ruleset, pcap).
fn song(d: &std::path::Path) -> (String, String) {
    let nfr = d.join("song.nfr");
    let o = nfc(&[
        "import",
        "classbench",
        "testdata/classbench/song.rules",
        "testdata/classbench/song.trace",
        "-o",
        nfr.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    (
        nfr.display().to_string(),
        d.join("song.pcap").display().to_string(),
    )
}

fn timed(e: &Value) {
    for k in ["median_ns", "min_ns", "max_ns", "mpps", "build_ms"] {
        assert!(e[k].as_f64().is_some_and(|v| v >= 0.0), "{k}: {e}");
    }
    assert_eq!(e["samples_ns"].as_array().map(Vec::len), Some(2), "{e}");
    assert_eq!(e["verdict_mismatches"], 0, "{e}");
}

#[test]
fn every_engine_runs_on_a_ruleset_that_lowers_to_iptables() {
    let v = json(&["examples/server.nfr", "examples/server.pcap"]);
    assert_eq!(v["rounds"], 2);
    assert_eq!(v["agree"], true);
    let r = &v["rulesets"][0];
    assert_eq!(r["packets"], 27);
    assert_eq!(r["rules"], 8);
    assert_eq!(r["base_chains"], 3);
    assert_eq!(r["passes"], 2);
    assert_eq!(r["agree"], true);
    for e in ["interp", "jit", "ipt"] {
        let e = &r["engines"][e];
        assert_eq!(e["available"], true, "{e}");
        assert_eq!(e["counters_agree"], true, "{e}");
        timed(e);
    }
    // The server's chains use `limit`, interface names and sets: no plain first-match loop.
    let native = &r["engines"]["native"];
    assert_eq!(native["available"], false);
    assert!(
        native["reason"].as_str().unwrap().starts_with("chain "),
        "{native}"
    );
    assert!(r["harness_floor"]["median_ns"].as_f64().unwrap() >= 0.0);
    assert!(r["ratios"]["interp_jit"].as_f64().is_some());
    assert!(r["ratios"]["ipt_jit"].as_f64().is_some());
    assert!(r["ratios"]["native_jit"].is_null());
    assert!(r["structure_bytes"].as_u64().is_some());
    assert!(r["lower_ms"].as_f64().is_some());
}

#[test]
fn ipt_is_not_available_for_a_ruleset_iptables_cannot_express() {
    let d = tmp_dir("bench-song");
    let (nfr, pcap) = song(&d);
    // `th dport` on any protocol has no iptables match.
    let v = json(&[&nfr, &pcap]);
    let r = &v["rulesets"][0];
    assert_eq!(r["packets"], 10);
    let ipt = &r["engines"]["ipt"];
    assert_eq!(ipt["available"], false);
    assert!(
        ipt["reason"].as_str().unwrap().contains("iptables"),
        "{ipt}"
    );
    assert!(r["ratios"]["ipt_jit"].is_null());
    timed(&r["engines"]["jit"]);
    assert_eq!(v["agree"], true);
    // The text report says so too.
    let o = nfc(&["bench", &nfr, &pcap, "--rounds", "1", "--passes", "1"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let s = stdout(&o);
    for want in [
        "7 rules, 10 packets",
        "ipt               n/a   does not lower to iptables",
        "native ",
        "harness",
        "ratios: interp/jit",
        "structure memory: ",
        "verdicts vs interp: jit identical",
    ] {
        assert!(s.contains(want), "{want:?} missing in\n{s}");
    }
}

#[test]
fn states_are_reset_when_the_program_writes_marks() {
    // Without a reset the second engine would see the first one's mark 7 and stop counting at prerouting.
    let d = tmp_dir("bench-marks");
    let f = d.join("marks.nfr");
    std::fs::write(
        &f,
        "table ip mangle {\n\tchain pre {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\
         \t\tmeta mark 0 counter meta mark set 7\n\t}\n}\n\
         table ip filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
         \t\tmeta mark 7 counter accept\n\t}\n}\n",
    )
    .unwrap();
    let v = json(&[f.to_str().unwrap(), "examples/server.pcap"]);
    let r = &v["rulesets"][0];
    assert_eq!(r["states_reset"], true);
    assert_eq!(r["engines"]["ipt"]["available"], true);
    assert_eq!(r["agree"], true, "{r}");
    let v = json(&["examples/server.nfr", "examples/server.pcap"]);
    assert_eq!(v["rulesets"][0]["states_reset"], false);
}

#[test]
fn plot_of_several_rulesets_is_svg() {
    let d = tmp_dir("bench-plot");
    let (nfr, pcap) = song(&d);
    let svg = d.join("p.svg");
    let v = json(&[
        "examples/server.nfr",
        "examples/server.pcap",
        &nfr,
        &pcap,
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(v["rulesets"].as_array().unwrap().len(), 2);
    assert_eq!(v["plot"], svg.to_str().unwrap());
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg"), "{}", &s[..s.len().min(200)]);
    assert!(s.trim_end().ends_with("</svg>"));
    for want in [
        "interp",
        "jit",
        "ipt",
        "harness floor",
        "rules",
        "ns/packet",
    ] {
        assert!(s.contains(want), "{want:?} not in the plot");
    }
}

#[test]
fn exit_codes() {
    let two = |extra: &[&str]| {
        let mut a = vec!["bench", "examples/server.nfr", "examples/server.pcap"];
        a.extend_from_slice(extra);
        nfc(&a).status.code()
    };
    assert_eq!(two(&["--rounds", "1", "--passes", "1"]), Some(0));
    assert_eq!(two(&["--rounds", "0"]), Some(2));
    assert_eq!(two(&["--passes", "0"]), Some(2));
    assert_eq!(two(&["--max-packets", "0"]), Some(2));
    assert_eq!(
        two(&["examples/server.nfr"]),
        Some(2),
        "odd number of paths"
    );
    assert_eq!(
        nfc(&["bench", "examples/server.nfr", "nonexistent.pcap"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        nfc(&["bench", "examples/server.nfr", "examples/server.nfr"])
            .status
            .code(),
        Some(2),
        "not a capture"
    );
    assert_eq!(
        nfc(&["bench", "examples/broken.nfr", "examples/server.pcap"])
            .status
            .code(),
        Some(1),
        "diagnostics"
    );
    assert_eq!(nfc(&["bench"]).status.code(), Some(2), "usage");
}
