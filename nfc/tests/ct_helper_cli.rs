//! `ct helper set` end to end: the FTP captures of `shared/corpus/ct-expected` were made with the kernel's
//! own 6.x setup — a `ct helper` object and `tcp dport 21 ct helper set` after conntrack, no automatic
//! helper assignment. `nfc run pcap` with the same ruleset (and `--ftp-ports ""`, so only the rule attaches
//! the helper) must reproduce every packet's ct state (RELATED data connections included) on the engines
//! that can run it (interp and jit: iptables attaches helpers through a raw-table template instead, so the
//! ruleset does not lower to iptables). Without the rule, the data connections are NEW, not RELATED: the
//! rule is what made the difference. Skips without `../shared/corpus`.

mod common;

use common::{gate, root};
use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const RULES: &str = r#"table inet ct_helpers {
	ct helper ftp21 {
		type "ftp" protocol tcp
		l3proto inet
	}
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		tcp dport 21 ct helper set "ftp21"
	}
}
"#;

const NO_HELPER: &str = r#"table inet ct_helpers {
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
	}
}
"#;

/// Per-frame ct states (`frame` → state) from `--trace --json`; reassembled datagrams are skipped.
fn run(rules: &str, pcap: &Path, engine: &str) -> BTreeMap<u64, String> {
    let dir = common::tmp_dir("ct-helper");
    let f = dir.join(format!("{}.nfr", rules.len()));
    std::fs::write(&f, rules).unwrap();
    let o = common::nfc_command()
        .args(["run", "pcap"])
        .arg(&f)
        .arg(pcap)
        .args(["--path", "input", "--ftp-ports", "", "--trace", "--json"])
        .args(["--engine", engine])
        .output()
        .expect("run nfc");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        if let (Some(n), Some(s)) = (v["frame"].as_u64(), v["ct_state"].as_str())
            && v.get("reassembled").is_none()
        {
            m.insert(n, s.to_string());
        }
    }
    m
}

/// `frame → state` of `<pcap>.pkts.tsv` (plain frame lines only).
fn expected(tsv: &str) -> BTreeMap<u64, String> {
    tsv.lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            let n = it.next()?.parse().ok()?;
            Some((n, it.next()?.to_string()))
        })
        .collect()
}

fn ct_helper_set_reproduces_the_kernels_ftp_states(c: PathBuf) {
    let mut related = 0;
    for name in ["zeek-ftp_ipv4.pcap", "zeek-ftp_bigtransfer.pcap"] {
        let pcap = c.join("pcaps").join(name);
        let tsv = std::fs::read_to_string(c.join("ct-expected").join(format!("{name}.pkts.tsv")))
            .expect("pkts.tsv");
        let want = expected(&tsv);
        let got = run(RULES, &pcap, "interp");
        assert_eq!(got, run(RULES, &pcap, "jit"), "{name}: interp and jit");
        let mut bad = Vec::new();
        for (n, st) in &want {
            if got.get(n) != Some(st) {
                bad.push(format!("frame {n}: kernel {st}, nfc {:?}", got.get(n)));
            }
        }
        assert!(bad.is_empty(), "{name}:\n{}", bad.join("\n"));
        let rel = want.values().filter(|s| s.starts_with("REL")).count();
        related += rel;
        // Without the rule no entry gets the helper: no RELATED packets at all.
        let plain = run(NO_HELPER, &pcap, "interp");
        assert_eq!(
            plain.values().filter(|s| s.starts_with("REL")).count(),
            0,
            "{name}: RELATED without a helper"
        );
    }
    assert!(
        related > 0,
        "the FTP captures have RELATED data connections"
    );
}

/// The kernel's conntrack replay (../shared/oracle/ct_replay), when it can run here.
fn ct_replay() -> Result<PathBuf, String> {
    common::gate::oracle_script(
        "ct_replay/run_one.py",
        &["python3", "nft", "conntrack", "tcpdump", "ip"],
    )
}

/// The shipped FTP example against the real kernel: ct_replay replays `examples/ftp.pcap` through the
/// kernel's conntrack with the same helper setup; every packet's ct state must be what `nfc run pcap
/// examples/ftp.nfr examples/ftp.pcap --local 203.0.113.1` reports, on interp and jit.
fn kernel_agrees_on_the_ftp_example(script: PathBuf) {
    let tmp = common::tmp_dir("ct-replay");
    let out = tmp.join("out");
    let pcap = root().join("examples/ftp.pcap");
    let o = Command::new("python3")
        .arg(script)
        .arg(&pcap)
        .arg(&out)
        .output()
        .expect("run ct_replay");
    assert!(
        o.status.success(),
        "ct_replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let tsv = std::fs::read_to_string(out.join("ftp.pcap.pkts.tsv")).expect("pkts.tsv");
    let want = expected(&tsv);
    assert_eq!(want.len(), 23, "{tsv}");
    assert_eq!(
        want.values().filter(|s| *s == "REL").count(),
        2,
        "the kernel saw both data connections as RELATED: {tsv}"
    );
    for engine in ["interp", "jit"] {
        let o = Command::new(env!("CARGO_BIN_EXE_nfc"))
            .args(["run", "pcap", "examples/ftp.nfr", "examples/ftp.pcap"])
            .args([
                "--local",
                "203.0.113.1",
                "--ftp-ports",
                "",
                "--trace",
                "--json",
            ])
            .args(["--engine", engine])
            .current_dir(root())
            .output()
            .expect("run nfc");
        assert_eq!(o.status.code(), Some(0));
        let mut got = BTreeMap::new();
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            if let (Some(n), Some(s)) = (v["frame"].as_u64(), v["ct_state"].as_str()) {
                got.insert(n, s.to_string());
            }
        }
        assert_eq!(got, want, "{engine}: ct states differ from the kernel's");
    }
}

fn main() {
    gate::run(vec![
        gate::needs(
            "ct_helper_set_reproduces_the_kernels_ftp_states",
            || gate::corpus("ct-expected").map(|d| d.parent().unwrap().to_path_buf()),
            ct_helper_set_reproduces_the_kernels_ftp_states,
        ),
        gate::needs(
            "kernel_agrees_on_the_ftp_example",
            ct_replay,
            kernel_agrees_on_the_ftp_example,
        ),
    ]);
}
