//! `nfc import classbench` on the public ClassBench corpus (`../shared/corpus/classbench/song-filterset`): the
//! acl1_100 filter set and its trace are imported and replayed with `nfc run pcap --trace --json`; every trace
//! packet must match a rule at or before the filter that generated it (`filter_no`: the generating filter need
//! not be the first match), and the rules' counters must count exactly the packets the trace says they matched.
//! Packets to multicast addresses stop at PREROUTING as in the kernel and are left out. Without the corpus the
//! test is reported as ignored (`tests/gate.rs`); with `NFC_REQUIRE_ORACLE=1` it fails instead.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;

use common::gate;
use libtest_mimic::Failed;
use serde_json::Value;

fn main() {
    gate::run(vec![gate::needs(
        "acl1_100_trace_packets_match_at_or_before_their_filter",
        || gate::corpus("classbench/song-filterset/acl1_100_trace").map(|f| f.with_file_name("")),
        |dir| acl1_100(&dir).unwrap_or_else(|e| panic!("{e:?}")),
    )]);
}

fn acl1_100(dir: &Path) -> Result<(), Failed> {
    let (rules, trace) = (dir.join("acl1_100"), dir.join("acl1_100_trace"));
    if !rules.is_file() || !trace.is_file() {
        return Err(format!(
            "the ClassBench corpus is required but {} is missing",
            dir.display()
        )
        .into());
    }
    let d = common::tmp_dir("cb-corpus");
    let out = d.join("acl1_100.nfr");
    let o = common::nfc(&[
        "import",
        "classbench",
        rules.to_str().unwrap(),
        trace.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    if !o.status.success() {
        return Err(format!("import failed: {o:?}").into());
    }
    let pcap = d.join("acl1_100.pcap");
    let o = common::nfc(&[
        "run",
        "pcap",
        out.to_str().unwrap(),
        pcap.to_str().unwrap(),
        "--path",
        "input",
        "--trace",
        "--json",
    ]);
    if !o.status.success() {
        return Err(format!("run pcap failed: {o:?}").into());
    }
    // (destination, filter_no) per trace line.
    let want: Vec<(Ipv4Addr, u64)> = std::fs::read_to_string(&trace)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (Ipv4Addr::from(f[1] as u32), f[5])
        })
        .collect();
    let lines: Vec<Value> = common::stdout(&o)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let Some((report, frames)) = lines.split_last() else {
        return Err("no output".into());
    };
    if frames.len() != want.len() {
        return Err(format!("{} frames for {} trace lines", frames.len(), want.len()).into());
    }
    let counters: Vec<u64> = report["report"]["counters"]
        .as_array()
        .ok_or("no counters")?
        .iter()
        .map(|c| c["packets"].as_u64().unwrap_or(u64::MAX))
        .collect();
    let mut hits = vec![0u64; counters.len()];
    let (mut checked, mut multicast) = (0, 0);
    for (i, (f, &(dst, filter))) in frames.iter().zip(&want).enumerate() {
        let reached_input = f["hooks"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| x == "input"));
        if !reached_input {
            if !dst.is_multicast() {
                return Err(format!("trace line {}: did not reach input: {f}", i + 1).into());
            }
            multicast += 1;
            continue;
        }
        let rules = f["rules"].as_array().ok_or("no rules")?;
        let [r] = rules.as_slice() else {
            return Err(format!("trace line {}: matched no single rule: {f}", i + 1).into());
        };
        // The rule's position: its handle less the chain's (`nft -a` numbering, one chain, no sets).
        let h = r["handle"].as_u64().ok_or("no handle")?.saturating_sub(1);
        if h == 0 || h > filter || f["verdict"] != "accept" {
            return Err(format!(
                "trace line {}: first match is rule {h}, after its generating filter {filter}: {f}",
                i + 1
            )
            .into());
        }
        if let Some(x) = hits.get_mut(h as usize - 1) {
            *x += 1;
        }
        checked += 1;
    }
    if hits != counters {
        return Err("the rules' counters differ from the per-packet matches of the trace".into());
    }
    if checked < want.len() * 8 / 10 {
        return Err(format!("only {checked} of {} packets reached the rules", want.len()).into());
    }
    println!(
        "acl1_100: {checked} trace packets match at or before their filter; {multicast} to multicast addresses \
         stop at PREROUTING"
    );
    Ok(())
}
