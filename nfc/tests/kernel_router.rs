//! The router path against the real kernel: small captures and nftables rulesets replayed through the kernel's
//! forwarding lab (`../shared/oracle/kernel_verdicts.py`, driven by `kernel/nft_verdicts.py`, which loads the
//! ruleset with `nft -f`) and through `nfc run pcap` on every engine that runs the ruleset (interp, jit, and ipt
//! when the ruleset lowers to iptables), with `--threads 1` and `2`. Per packet the fate (passed, dropped,
//! held by defrag) and the conntrack state must be the kernel's, and the packets that leave the host — forwarded
//! ones with their decremented TTL, and the host's own answers (reject's resets and ICMP errors, ICMP time
//! exceeded) — must be the ones the kernel sent (compared without IP id and checksums), and the conntrack table
//! at the end must hold the kernel's entries (protocol, TCP state, original tuple, ASSURED / UNREPLIED).
//!
//! The fixed cases reproduce, one each, what ip_forward does (TTL), what the host sends and how it is filtered
//! (OUTPUT and its `limit`), reset closing its entry, duplicate fragments, ICMP errors on two threads, and the
//! whole-word `ct status !=` / `ct state !=` compares. The NAT cases (the oracle's own NAT example with its
//! iptables rules in the kernel, `examples/router.nfr` on `examples/router.pcap`, ICMP errors about NATed flows
//! with a UDP query without checksum and an SNATed ping) are compared strictly: the packets that leave byte for
//! byte, checksums included, and the conntrack table with both tuples; nfc is given the lab's routes.
//! `random_differential_*` are seeded random (ruleset, capture) pairs covering the same ground:
//! `NFC_ROUTER_DIFF_CASES` (default 4) cases from `NFC_ROUTER_DIFF_SEED` (default 1); each prints its cases,
//! packets and agreements.
//!
//! Without the oracle (no `../shared/oracle`, not root, tools missing) the kernel cases are reported as ignored;
//! with `NFC_REQUIRE_ORACLE=1` they fail instead.

mod common;

use common::lab::{
    ACK, FIN, JsonRun, PSH, RST, SYN, ct_key, diff_per_packet, frag, icmp, ids, ip4, pcap,
    read_pcap, strict_key, tcp, udp,
};
use common::{nfc, root, shared, stdout};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn main() {
    let args = Arguments::from_args();
    let why = oracle_unavailable();
    let ignored = common::gate::announce(
        why.as_ref()
            .map(|w| format!("kernel oracle unavailable: {w}"))
            .as_deref(),
    );
    let mut trials = vec![
        Trial::test("ct_keys_without_a_load_are_refused", refused_ct_keys),
        Trial::test(
            "ipt_refuses_whole_word_bitmask_compares",
            ipt_refuses_bitmask_neq,
        ),
        Trial::test("ipv6_answers_are_the_kernels", ipv6_answers),
        Trial::test(
            "snat_range_of_ten_ports_refuses_the_eleventh_connection",
            snat_range_exhausted,
        ),
    ];
    for case in fixed_cases() {
        let w = why.clone();
        trials.push(
            Trial::test(format!("kernel_{}", case.name), move || {
                run_case(&case, w.as_deref()).map(|_| ())
            })
            .with_ignored_flag(ignored),
        );
    }
    let n: u64 = std::env::var("NFC_ROUTER_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("NFC_ROUTER_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let w = why.clone();
    trials.push(
        Trial::test(
            format!("random_differential_{n}_cases_seed_{seed}"),
            move || random_differential(seed, n, w.as_deref()),
        )
        .with_ignored_flag(ignored),
    );
    libtest_mimic::run(&args, trials).exit();
}

fn oracle_unavailable() -> Option<String> {
    common::gate::oracle_script("kernel_verdicts.py", &["nft", "conntrack", "python3", "ip"])
        .err()
        .or_else(|| {
            (!Path::new("/proc/net/ip_tables_names").exists())
                .then(|| "no legacy ip_tables in this kernel".to_string())
        })
}

// ---------------------------------------------------------------------------------------------------------
// Packets and captures.

const C: &str = "10.1.2.3";
const S: &str = "192.168.5.5";
const R: &str = "172.16.0.1";

/// A datagram as compared: everything but IP id and checksums (`None` for fragments).
fn egress_key(p: &[u8]) -> Option<String> {
    if p.len() < 20 || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
        return None;
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    let l4 = p.get(ihl..).unwrap_or(&[]);
    let addr = |o: usize| format!("{}.{}.{}.{}", p[o], p[o + 1], p[o + 2], p[o + 3]);
    let rest = match p[9] {
        6 if l4.len() >= 20 => format!(
            "tcp {}>{} seq {} ack {} flags 0x{:02x}",
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
            u32::from_be_bytes(l4[4..8].try_into().unwrap()),
            u32::from_be_bytes(l4[8..12].try_into().unwrap()),
            l4[13]
        ),
        17 if l4.len() >= 8 => format!(
            "udp {}>{}",
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]])
        ),
        1 if l4.len() >= 8 => format!("icmp type {} code {}", l4[0], l4[1]),
        x => format!("proto {x}"),
    };
    Some(format!(
        "{}>{} tos 0x{:02x} ttl {} len {} df {} {rest}",
        addr(12),
        addr(16),
        p[1],
        p[8],
        p.len(),
        p[6] & 0x40 != 0
    ))
}

// ---------------------------------------------------------------------------------------------------------
// One case: kernel, then every engine and thread count.

#[derive(Default)]
struct Case {
    name: String,
    rules: String,
    pkts: Vec<Vec<u8>>,
    /// Whether `--engine ipt` must run it (else it must be refused with E0701, when `Some(false)`; `None`: either).
    ipt: Option<bool>,
    /// Per packet, what the kernel is known to say (`fate ct`, e.g. `drop NEW`), checked against the oracle too.
    expect: Vec<&'static str>,
    /// NAT cases: the lab's options (sides, `--local`, interface names), nfc's (`--iface` routes as the lab
    /// assigns the addresses to its sides are added), the kernel's ruleset as iptables-save text instead of
    /// `rules` (the oracle's own NAT example), and the strict comparison: the packets that leave compared byte
    /// for byte (the host's own answers without IP id and header checksum), the table with both tuples.
    nat: Option<NatLab>,
}

#[derive(Default)]
struct NatLab {
    lab: Vec<String>,
    nfc: Vec<String>,
    ipt_rules: Option<String>,
}

/// The kernel's answer: per packet (fate, ct state), and the egress datagrams.
struct Kernel {
    per_packet: Vec<(String, String)>,
    egress: Vec<String>,
    /// The conntrack table at the end ([`ct_key`] of each entry, sorted).
    table: Vec<String>,
    /// nfc's `--iface` routes for the lab's sides (`SIDE=ADDRESS/32`, then the default route).
    routes: Vec<String>,
}

fn work_dir(name: &str) -> common::TmpDir {
    common::tmp_dir(&format!("router-{name}"))
}

fn kernel(case: &Case, dir: &Path) -> Result<Kernel, Failed> {
    let rules = dir.join("rules.nft");
    let cap = dir.join("cap.pcap");
    std::fs::write(&rules, &case.rules).unwrap();
    std::fs::write(&cap, pcap(&case.pkts)).unwrap();
    let out = dir.join("kernel");
    let mut cmd = Command::new("python3");
    match case.nat.as_ref().and_then(|n| n.ipt_rules.as_ref()) {
        Some(ipt) => {
            let f = dir.join("rules.ipt");
            std::fs::write(&f, ipt).unwrap();
            cmd.arg(shared("oracle/kernel_verdicts.py")).arg(f);
        }
        None => {
            cmd.arg(root().join("nfc/tests/kernel/nft_verdicts.py"))
                .arg(shared("oracle"))
                .arg(&rules);
        }
    }
    let o = cmd
        .arg(&cap)
        .args(["-o", out.to_str().unwrap(), "--settle-ms", "20"])
        .args(case.nat.iter().flat_map(|n| n.lab.iter()))
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{}: the kernel lab failed: {}{}",
            case.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let rep: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let ct_name = |s: &str| match s {
        "new" => "NEW",
        "established/original" => "EST",
        "established/reply" => "EST_REPLY",
        "related/original" => "REL",
        "related/reply" => "REL_REPLY",
        "invalid" => "INVALID",
        "untracked" => "UNTRACKED",
        _ => "?",
    };
    let mut per_packet = Vec::new();
    // (IP id, protocol, length) of every IPv4 packet that left: how the lab itself knows a rewritten packet.
    let mut left = std::collections::BTreeSet::new();
    for side in ["egress-left.pcap", "egress-right.pcap"] {
        let b = std::fs::read(out.join(side)).unwrap_or_default();
        left.extend(
            read_pcap(&b)
                .iter()
                .filter(|p| p[0] >> 4 == 4)
                .map(|p| (u16::from_be_bytes([p[4], p[5]]), p[9], p.len())),
        );
    }
    for (i, p) in rep["packets"].as_array().unwrap().iter().enumerate() {
        let ct = p["ct"].as_str().map_or("-", ct_name).to_string();
        // The lab takes a packet to a --local address for one delivered, and says "dropped" when nothing was
        // delivered; one NAT sent elsewhere (the reply of a masqueraded connection) left the host.
        let rewritten_out = p["path"] == "input"
            && case.nat.is_some()
            && case.pkts.get(i).is_some_and(|q| {
                q.len() >= 20 && left.contains(&(u16::from_be_bytes([q[4], q[5]]), q[9], q.len()))
            });
        let reasm = p["snmp_delta"]
            .as_object()
            .is_some_and(|d| d.keys().any(|k| k.starts_with("Ip.Reasm")));
        let fate = match p["outcome"].as_str().unwrap_or("") {
            "forwarded" | "forwarded-modified" | "sent" | "delivered-local" => "accept",
            "dropped" if rewritten_out => "accept",
            "held-for-reassembly" => "held",
            "dropped" if ct == "-" && reasm => "held",
            _ => "drop",
        };
        per_packet.push((fate.to_string(), ct));
    }
    let strict = case.nat.is_some();
    let ids = ids(&case.pkts);
    let mut egress = Vec::new();
    for side in ["egress-left.pcap", "egress-right.pcap"] {
        let b = std::fs::read(out.join(side)).unwrap_or_default();
        egress.extend(read_pcap(&b).iter().filter_map(|p| {
            if strict {
                Some(strict_key(p, &ids))
            } else {
                egress_key(p)
            }
        }));
    }
    egress.sort();
    let mut table: Vec<String> = rep["final"]["conntrack"]
        .as_str()
        .unwrap_or("")
        .lines()
        .filter_map(|l| ct_key(l, strict))
        .collect();
    table.sort();
    let dev = |side: &str| {
        rep["options"][format!("{side}_if")]
            .as_str()
            .unwrap_or(side)
            .to_string()
    };
    let mut routes: Vec<String> = rep["sides"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(ip, side)| format!("{}={ip}/32", dev(side.as_str().unwrap_or(""))))
        .collect();
    routes.sort();
    if let Some(d) = rep["options"]["default_route"]
        .as_str()
        .filter(|d| *d != "none")
    {
        routes.push(format!("{}=0.0.0.0/0", dev(d)));
    }
    Ok(Kernel {
        per_packet,
        egress,
        table,
        routes,
    })
}

/// nfc's answer for one engine and thread count (`None`: the engine refused the ruleset, exit 1); `routes`
/// are the lab's (used for NAT cases).
fn ours(
    case: &Case,
    dir: &Path,
    engine: &str,
    threads: u32,
    routes: &[String],
) -> Result<Option<Kernel>, Failed> {
    let rules = dir.join("rules.nfr");
    let cap = dir.join("cap.pcap");
    std::fs::write(&rules, &case.rules).unwrap();
    std::fs::write(&cap, pcap(&case.pkts)).unwrap();
    let acc = dir.join(format!("acc-{engine}-{threads}.pcap"));
    let t = threads.to_string();
    let mut args = vec![
        "run",
        "pcap",
        rules.to_str().unwrap(),
        cap.to_str().unwrap(),
        "--engine",
        engine,
        "--threads",
        &t,
        "--trace",
        "--json",
        "--write-accepted",
        acc.to_str().unwrap(),
    ];
    if let Some(n) = &case.nat {
        args.extend(n.nfc.iter().map(String::as_str));
        for r in routes {
            args.extend(["--iface", r]);
        }
    }
    let o = nfc(&args);
    if o.status.code() == Some(1) && engine == "ipt" {
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("E0701") {
            return Ok(None);
        }
    }
    if o.status.code() != Some(0) {
        return Err(format!(
            "{} {engine} --threads {threads}: exit {:?}: {}",
            case.name,
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let run = JsonRun::parse(&stdout(&o))?;
    let mut table: Vec<String> = run
        .conntrack
        .iter()
        .filter_map(|l| ct_key(l, case.nat.is_some()))
        .collect();
    table.sort();
    let mut per_packet = Vec::new();
    let mut left_reassembled = Vec::new();
    for v in &run.frames {
        let fate = match v["verdict"].as_str().unwrap_or("") {
            "accept" => "accept",
            "stolen" => "held",
            _ => "drop",
        };
        let ct = v["ct_state"].as_str().unwrap_or("-").to_string();
        per_packet.push((fate.to_string(), ct));
        if fate == "accept" {
            // Not an egress packet: a reassembled datagram (its fragments leave), one delivered to the host.
            let delivered = v["hooks"]
                .as_array()
                .and_then(|h| h.last())
                .is_some_and(|h| h == "input");
            left_reassembled.push(v.get("reassembled").is_some() || delivered);
        }
        for s in v["sent"].as_array().into_iter().flatten() {
            if s["verdict"] == "accept" {
                left_reassembled.push(false);
            }
        }
    }
    let written = read_pcap(&std::fs::read(&acc).unwrap_or_default());
    // Forwarded packets leave with the TTL decremented and the header checksum fixed; answers are whole.
    if let Some(p) = written
        .iter()
        .filter(|p| p[0] >> 4 == 4)
        .find(|p| nfr_runtime::wire::checksum(&p[..usize::from(p[0] & 0xf) * 4], 0) != 0)
    {
        return Err(format!(
            "{} {engine}: written with a bad IP checksum: {p:02x?}",
            case.name
        )
        .into());
    }
    if written.len() != left_reassembled.len() {
        return Err(format!(
            "{} {engine}: {} packets written, {} passed",
            case.name,
            written.len(),
            left_reassembled.len()
        )
        .into());
    }
    let ids = ids(&case.pkts);
    let mut egress: Vec<String> = written
        .iter()
        .zip(&left_reassembled)
        .filter(|(_, r)| !**r)
        .filter_map(|(p, _)| {
            if case.nat.is_some() {
                Some(strict_key(p, &ids))
            } else {
                egress_key(p)
            }
        })
        .collect();
    egress.sort();
    Ok(Some(Kernel {
        per_packet,
        egress,
        table,
        routes: Vec::new(),
    }))
}

/// Runs a case on the kernel and every engine/thread count; returns (packets, agreements).
fn run_case(case: &Case, unavailable: Option<&str>) -> Result<(usize, usize), Failed> {
    if let Some(w) = unavailable {
        return Err(
            format!("kernel oracle required (NFC_REQUIRE_ORACLE=1) but unavailable: {w}").into(),
        );
    }
    let dir = work_dir(&case.name);
    if let Some(ipt) = case.nat.as_ref().and_then(|n| n.ipt_rules.as_ref()) {
        let f = dir.join("import.ipt");
        std::fs::write(&f, ipt).unwrap();
        let imported = stdout(&nfc(&["import", "iptables-save", f.to_str().unwrap()]));
        if imported != case.rules {
            return Err(format!("{}: the import is now\n{imported}", case.name).into());
        }
    }
    let k = kernel(case, &dir)?;
    let mut bad = Vec::new();
    for (i, want) in case
        .expect
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.is_empty())
    {
        let got = k.per_packet.get(i).map(|(f, c)| format!("{f} {c}"));
        if got.as_deref() != Some(*want) {
            bad.push(format!(
                "packet {}: kernel says {got:?}, the case expects {want:?}",
                i + 1
            ));
        }
    }
    let mut agree = 0;
    for engine in ["interp", "jit", "ipt"] {
        for threads in [1, 2] {
            let Some(n) = ours(case, &dir, engine, threads, &k.routes)? else {
                if case.ipt == Some(true) {
                    bad.push("ipt refused the ruleset (E0701)".to_string());
                }
                break;
            };
            if engine == "ipt" && case.ipt == Some(false) {
                bad.push("ipt ran a ruleset it must refuse".to_string());
            }
            agree += diff_per_packet(
                &format!("{engine} --threads {threads}"),
                &k.per_packet,
                &n.per_packet,
                &mut bad,
            );
            if n.table != k.table {
                bad.push(format!(
                    "{engine} --threads {threads}: conntrack tables differ\n    kernel: {:?}\n    nfc:    {:?}",
                    k.table, n.table
                ));
            }
            if n.egress != k.egress {
                bad.push(format!(
                    "{engine} --threads {threads}: packets that left differ\n    kernel: {:?}\n    nfc:    {:?}",
                    k.egress, n.egress
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok((k.per_packet.len(), agree))
    } else {
        Err(format!("{}: rules\n{}\n{}", case.name, case.rules, bad.join("\n")).into())
    }
}

// ---------------------------------------------------------------------------------------------------------
// The fixed cases.

fn forward(policy: &str, rules: &[&str]) -> String {
    format!(
        "table ip filter {{\n\tchain forward {{\n\t\ttype filter hook forward priority 0; policy {policy};\n{}\t}}\n}}\n",
        rules
            .iter()
            .map(|r| format!("\t\t{r}\n"))
            .collect::<String>()
    )
}

fn fixed_cases() -> Vec<Case> {
    let mut v = Vec::new();
    // ip_forward drops TTL <= 1 before FORWARD and answers with time exceeded; the entry is never confirmed,
    // so the reply is NEW, and a router's error quoting the query is RELATED to the reply's entry.
    let q = udp(C, S, 1000, 53, b"query", 1, 1);
    v.push(Case {
        name: "ttl_1_dropped_by_ip_forward".into(),
        rules: forward("accept", &["counter"]),
        pkts: vec![
            q.clone(),
            udp(S, C, 53, 1000, b"answer", 64, 2),
            icmp(R, C, 11, 0, [0; 4], &q, 64, 3),
        ],
        ipt: Some(true),
        expect: vec!["drop NEW", "accept NEW", "accept REL"],
        ..Default::default()
    });
    // The TTL is decremented before FORWARD: FORWARD sees 63 for a packet that came with 64.
    v.push(Case {
        name: "ttl_decremented_before_forward".into(),
        rules: forward("accept", &["ip ttl 64 drop"]),
        pkts: vec![
            udp(C, S, 1001, 53, b"q", 64, 1),
            udp(C, S, 1002, 53, b"q", 65, 2),
            tcp(C, S, 4000, 80, 1, 0, SYN, b"", 3),
        ],
        ipt: Some(false),
        expect: vec!["accept NEW", "drop NEW", "accept NEW"],
        ..Default::default()
    });
    // A router's ICMP errors, sent to the client from addresses not in the flow, about UDP, TCP and ICMP echo
    // flows of several address pairs: RELATED on one thread and on two.
    let mut pkts = Vec::new();
    let mut expect = Vec::new();
    for i in 0..4u8 {
        let c = format!("10.1.2.{}", 10 + i);
        let s = format!("192.168.5.{}", 20 + i);
        let r = format!("172.16.0.{}", 1 + i);
        let id = u16::from(i) * 16;
        let q = udp(&c, &s, 2000, 53, b"q", 64, id + 1);
        pkts.push(q.clone());
        pkts.push(icmp(&r, &c, 11, 0, [0; 4], &q, 64, id + 2));
        let syn = tcp(&c, &s, 3000, 80, 100, 0, SYN, b"", id + 3);
        pkts.push(syn.clone());
        pkts.push(icmp(&r, &c, 3, 1, [0; 4], &syn, 64, id + 4));
        let ping = icmp(&c, &s, 8, 0, [0, 7, 0, 1], b"ping", 64, id + 5);
        pkts.push(ping.clone());
        pkts.push(icmp(&r, &c, 3, 0, [0; 4], &ping, 64, id + 6));
        expect.extend(["accept NEW", "accept REL_REPLY"].repeat(3));
    }
    v.push(Case {
        name: "icmp_errors_follow_their_flow_on_two_threads".into(),
        rules: forward(
            "drop",
            &[
                "ct state established,related accept",
                "ct state new udp dport 53 accept",
                "ct state new tcp dport 80 accept",
                "ct state new icmp type echo-request accept",
            ],
        ),
        pkts,
        ipt: Some(true),
        expect,
        ..Default::default()
    });
    // A reset sent by reject moves the entry to CLOSE: after the FINs, a new SYN on the same ports is ignored
    // (EST), not a new connection.
    v.push(Case {
        name: "reject_with_tcp_reset_closes_the_entry".into(),
        rules: forward(
            "accept",
            &["tcp dport 80 tcp flags & psh == psh reject with tcp reset"],
        ),
        pkts: vec![
            tcp(C, S, 40000, 80, 1000, 0, SYN, b"", 1),
            tcp(S, C, 80, 40000, 5000, 1001, SYN | ACK, b"", 2),
            tcp(C, S, 40000, 80, 1001, 5001, ACK, b"", 3),
            tcp(C, S, 40000, 80, 1001, 5001, PSH | ACK, b"GET /", 4),
            tcp(C, S, 40000, 80, 1006, 5001, FIN | ACK, b"", 5),
            tcp(S, C, 80, 40000, 5001, 1007, FIN | ACK, b"", 6),
            tcp(C, S, 40000, 80, 1007, 5002, ACK, b"", 7),
            tcp(C, S, 40000, 80, 9000, 0, SYN, b"", 8),
        ],
        ipt: Some(true),
        expect: vec![
            "accept NEW",
            "accept EST_REPLY",
            "accept EST",
            "drop EST",
            "",
            "",
            "",
            "accept EST",
        ],
        ..Default::default()
    });
    // A fragment inside data already received is a duplicate: ignored, the datagram completes. One that reaches
    // past it overlaps: the datagram is discarded.
    let body: Vec<u8> = (0..112u8).collect();
    let d1 = udp(C, S, 5000, 53, &body, 64, 0x101);
    let d2 = udp(C, S, 5001, 53, &body, 64, 0x102);
    v.push(Case {
        name: "duplicate_fragments_are_ignored".into(),
        rules: forward("accept", &["counter"]),
        pkts: vec![
            frag(&d1, 0, 48, true),
            frag(&d1, 48, 48, true),
            frag(&d1, 40, 48, true),
            frag(&d1, 96, 24, false),
            frag(&d2, 0, 48, true),
            frag(&d2, 40, 56, true),
            frag(&d2, 96, 24, false),
        ],
        ipt: Some(true),
        expect: vec![
            "held -",
            "held -",
            "held -",
            "accept NEW",
            "held -",
            "held -",
            "held -",
        ],
        ..Default::default()
    });
    // The host's answers go through OUTPUT: its `limit` lets the first one out and drops the others.
    v.push(Case {
        name: "host_answers_go_through_output".into(),
        rules: "table ip filter {\n\
                \tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\
                \t\tudp dport 53 reject\n\t\ttcp dport 25 reject with tcp reset\n\t}\n\
                \tchain output {\n\t\ttype filter hook output priority 0; policy drop;\n\
                \t\tlimit rate 1/hour burst 1 packets accept\n\t}\n}\n"
            .into(),
        pkts: vec![
            udp(C, S, 1000, 53, b"q1", 64, 1),
            udp(C, S, 1001, 53, b"q2", 64, 2),
            tcp(C, S, 4000, 25, 1, 0, SYN, b"", 3),
        ],
        ipt: Some(true),
        expect: vec!["drop NEW", "drop NEW", "drop NEW"],
        ..Default::default()
    });
    // `ct status != confirmed` compares the whole word: a confirmed entry without a reply (0x8) fails it, one
    // with a reply (0xa) passes.
    v.push(Case {
        name: "ct_status_neq_is_a_whole_word_compare".into(),
        rules: forward("drop", &["ct status != confirmed accept"]),
        pkts: vec![
            udp(C, S, 1000, 53, b"q", 64, 1),
            udp(C, S, 1000, 53, b"q", 64, 2),
            udp(S, C, 53, 1000, b"a", 64, 3),
            udp(C, S, 1000, 53, b"q", 64, 4),
        ],
        ipt: Some(false),
        // Without a reply, later packets in the original direction are still NEW.
        expect: vec!["accept NEW", "drop NEW", "accept EST_REPLY", "accept EST"],
        ..Default::default()
    });
    // `ct state != established,related` is `state != 0x6`: every packet passes.
    v.push(Case {
        name: "ct_state_neq_two_states_is_always_true".into(),
        rules: forward("drop", &["ct state != established,related accept"]),
        pkts: vec![
            udp(C, S, 1000, 53, b"q", 64, 1),
            udp(S, C, 53, 1000, b"a", 64, 2),
            tcp(C, S, 4000, 80, 1, 0, ACK, b"", 3),
        ],
        ipt: Some(false),
        expect: vec!["accept NEW", "accept EST_REPLY", "accept NEW"],
        ..Default::default()
    });
    v.extend(nat_cases());
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// NAT against the kernel, byte for byte: the oracle's own NAT example (its iptables rules in the kernel,
/// their import in nfc), the router example, and a case of ICMP errors about NATed flows, UDP without checksum
/// and an SNATed ping.
fn nat_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let (c, s, x, snat) = (
        "192.0.2.10",
        "198.51.100.20",
        "203.0.113.30",
        "198.51.100.1",
    );
    v.push(Case {
        name: "nat_oracle_example".into(),
        rules: NAT_EXAMPLE_NFR.into(),
        pkts: vec![
            tcp(c, s, 41000, 80, 1, 0, SYN, b"", 1),
            tcp(x, snat, 8080, 41000, 9, 2, SYN | ACK, b"", 2),
            tcp(c, s, 41000, 80, 2, 10, ACK, b"", 3),
            tcp(c, s, 41001, 81, 1, 0, SYN, b"", 4),
        ],
        ipt: Some(true),
        expect: vec!["accept NEW", "accept EST_REPLY", "accept EST", "drop NEW"],
        nat: Some(NatLab {
            lab: strings(&["--right", "203.0.113.0/24"]),
            ipt_rules: Some(
                std::fs::read_to_string(shared("oracle/examples/nat.ipt")).unwrap_or_default(),
            ),
            ..Default::default()
        }),
    });
    // The example's packets with IP ids of their own (the lab tells a rewritten packet by its id).
    let cap = std::fs::read(root().join("examples/router.pcap")).unwrap_or_default();
    let pkts = read_pcap(&cap)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (ttl, df) = (p[8], p[6] & 0x40 != 0);
            ip4(p, ttl, i as u16 + 1, df)
        })
        .collect();
    v.push(Case {
        name: "nat_router_example".into(),
        rules: std::fs::read_to_string(root().join("examples/router.nfr")).unwrap_or_default(),
        pkts,
        ipt: Some(true),
        expect: vec![
            "accept NEW",
            "accept EST_REPLY",
            "accept NEW",
            "accept EST_REPLY",
            "accept EST",
            "accept EST",
            "accept EST_REPLY",
            "accept NEW",
            "accept EST_REPLY",
            "drop NEW",
            "accept NEW",
            "accept EST_REPLY",
        ],
        nat: Some(NatLab {
            lab: strings(&[
                "--left-if",
                "eth1",
                "--right-if",
                "eth0",
                "--local",
                "192.168.1.1",
                "--local",
                "198.51.100.1",
                "--local-stack",
                "quiet",
                "--left",
                "192.168.1.0/24",
                "--right",
                "0.0.0.0/0",
                "--if-addr",
                "eth1=192.168.1.1/24",
                "--if-addr",
                "eth0=198.51.100.1/24",
            ]),
            nfc: strings(&[
                "--iface",
                "eth1=192.168.1.1/24",
                "--iface",
                "eth0=198.51.100.1/24",
            ]),
            ..Default::default()
        }),
    });
    // DNAT + SNAT of DNS (a query without UDP checksum), an SNATed ping, and the errors routers send about
    // them, to the router's address: translated back to the client, the quoted datagram too.
    let r = "172.16.0.1";
    let mut q = udp(c, s, 5353, 5353, b"query", 64, 1);
    q[26..28].fill(0);
    let answer = udp(x, snat, 53, 5353, b"answer", 64, 2);
    let quoted = udp(snat, x, 5353, 53, b"query", 63, 3);
    let ping = icmp(c, x, 8, 0, [0, 9, 0, 1], b"ping", 64, 4);
    let quoted_ping = icmp(snat, x, 8, 0, [0, 9, 0, 1], b"ping", 63, 5);
    let syn = tcp(c, s, 42000, 80, 100, 0, SYN, b"", 6);
    let quoted_syn = tcp(snat, x, 42000, 8080, 100, 0, SYN, b"", 7);
    v.push(Case {
        name: "nat_icmp_errors_udp_without_checksum_and_ping".into(),
        rules: "table ip nat {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
                \t\tudp dport 5353 dnat to 203.0.113.30:53\n\t\ttcp dport 80 dnat to 203.0.113.30:8080\n\t}\n\
                \tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                \t\toifname \"right\" snat to 198.51.100.1\n\t}\n}\n"
            .into(),
        pkts: vec![
            q,
            answer,
            icmp(r, snat, 3, 3, [0; 4], &quoted, 64, 8),
            ping,
            icmp(x, snat, 0, 0, [0, 9, 0, 1], b"ping", 64, 9),
            icmp(r, snat, 11, 0, [0; 4], &quoted_ping, 64, 10),
            syn,
            icmp(r, snat, 3, 1, [0; 4], &quoted_syn[..28], 64, 11),
        ],
        ipt: None,
        expect: vec![
            "accept NEW",
            "accept EST_REPLY",
            "accept REL_REPLY",
            "accept NEW",
            "accept EST_REPLY",
            "accept REL_REPLY",
            "accept NEW",
            "accept REL_REPLY",
        ],
        nat: Some(NatLab {
            lab: strings(&["--right", "203.0.113.0/24", "--right", "172.16.0.0/16"]),
            ..Default::default()
        }),
    });
    // DNAT to a port range: the first connection's port is not in it, so the search starts at its first port
    // (a DST search has no random offset); a ping DNATed keeps its id.
    v.push(Case {
        name: "nat_dnat_port_range_starts_at_its_first_port".into(),
        rules: "table ip nat {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
                \t\ttcp dport 80 dnat to 203.0.113.30:8000-8010\n\t\ticmp type echo-request dnat to 203.0.113.30\n\
                \t}\n}\n"
            .into(),
        pkts: vec![
            tcp(c, s, 43000, 80, 1, 0, SYN, b"", 1),
            tcp(x, c, 8000, 43000, 9, 2, SYN | ACK, b"", 2),
            tcp(c, s, 43001, 80, 1, 0, SYN, b"", 3),
            icmp(c, s, 8, 0, [0, 5, 0, 1], b"ping", 64, 4),
            icmp(x, c, 0, 0, [0, 5, 0, 1], b"ping", 64, 5),
        ],
        ipt: None,
        expect: vec![
            "accept NEW",
            "accept EST_REPLY",
            "accept NEW",
            "accept NEW",
            "accept EST_REPLY",
        ],
        nat: Some(NatLab {
            lab: strings(&["--right", "203.0.113.0/24"]),
            ..Default::default()
        }),
    });
    // SNAT to an address range: find_best_ips_proto hashes the tuple's addresses (jhash2; with `persistent` the
    // source alone), so each flow's address is the kernel's, not the range's first.
    let mut pkts = Vec::new();
    for i in 0..6u8 {
        let (src, dst) = (
            format!("192.0.2.{}", 10 + i),
            format!("203.0.113.{}", 30 + i % 3),
        );
        pkts.push(udp(
            &src,
            &dst,
            40000 + u16::from(i),
            53,
            b"q",
            64,
            u16::from(i) + 1,
        ));
        pkts.push(udp(
            &src,
            &dst,
            41000 + u16::from(i),
            123,
            b"t",
            64,
            u16::from(i) + 20,
        ));
    }
    v.push(Case {
        name: "nat_snat_address_range_hashes_like_the_kernel".into(),
        rules: "table ip nat {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                \t\tudp dport 53 snat to 198.51.100.1-198.51.100.8\n\
                \t\tudp dport 123 snat to 198.51.100.1-198.51.100.8 persistent\n\t}\n}\n"
            .into(),
        expect: vec!["accept NEW"; pkts.len()],
        pkts,
        ipt: None,
        nat: Some(NatLab {
            lab: strings(&["--right", "203.0.113.0/24"]),
            ..Default::default()
        }),
    });
    v
}

/// `nfc import iptables-save` of the oracle's `examples/nat.ipt` (checked by the case).
const NAT_EXAMPLE_NFR: &str = "table ip nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority -100; policy accept;\n\
    \t\tip daddr 198.51.100.20 tcp dport 80 dnat to 203.0.113.30:8080\n\t}\n\n\
    \tchain INPUT {\n\t\ttype nat hook input priority 100; policy accept;\n\t}\n\n\
    \tchain OUTPUT {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n\n\
    \tchain POSTROUTING {\n\t\ttype nat hook postrouting priority 100; policy accept;\n\
    \t\toifname \"right\" snat to 198.51.100.1\n\t}\n}\n\n\
    table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n\n\
    \tchain FORWARD {\n\t\ttype filter hook forward priority 0; policy drop;\n\
    \t\tct state established,related accept\n\t\tip daddr 203.0.113.30 tcp dport 8080 accept\n\t}\n\n\
    \tchain OUTPUT {\n\t\ttype filter hook output priority 0; policy accept;\n\t}\n}\n";

// ---------------------------------------------------------------------------------------------------------
// Refusals (no kernel needed).

fn refused_ct_keys() -> Result<(), Failed> {
    let dir = work_dir("ctkeys");
    for key in ["ct packets > 10", "ct original bytes > 100", "ct avgpkt 5"] {
        let f = dir.join("r.nfr");
        std::fs::write(&f, forward("accept", &[&format!("{key} drop")])).unwrap();
        let o = nfc(&["check", f.to_str().unwrap()]);
        let out = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
        if o.status.code() != Some(1) || !out.contains("E0206") || !out.contains("r.nfr:4:") {
            return Err(format!("`{key}`: exit {:?}\n{out}", o.status.code()).into());
        }
    }
    Ok(())
}

fn ipt_refuses_bitmask_neq() -> Result<(), Failed> {
    let dir = work_dir("bitmask");
    for rule in [
        "ct status != confirmed accept",
        "ct status == seen-reply accept",
        "ct state != established,related accept",
    ] {
        let f = dir.join("r.nfr");
        std::fs::write(&f, forward("drop", &[rule])).unwrap();
        let o = nfc(&["compile", f.to_str().unwrap(), "--emit", "ipt"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned() + &stdout(&o);
        if o.status.code() != Some(1) || !err.contains("E0701") {
            return Err(format!("`{rule}`: exit {:?}\n{err}", o.status.code()).into());
        }
    }
    // What stays exact: one state, and bit tests of the status.
    for rule in [
        "ct state != established accept",
        "ct status dnat accept",
        "ct status assured accept",
    ] {
        let f = dir.join("r.nfr");
        std::fs::write(&f, forward("drop", &[rule])).unwrap();
        let o = nfc(&["compile", f.to_str().unwrap(), "--emit", "ipt"]);
        if o.status.code() != Some(0) {
            return Err(format!("`{rule}`: {}", String::from_utf8_lossy(&o.stderr)).into());
        }
    }
    Ok(())
}

/// 11 connections through a 10-port SNAT range: ten bindings, and the eleventh finds no unique tuple, keeps a
/// clashing one and its packet is dropped at confirm (`insert_failed`; against the kernel in `kernel_kube.rs`).
fn snat_range_exhausted() -> Result<(), Failed> {
    let dir = work_dir("snat_exhausted");
    let rules = dir.join("r.nfr");
    let cap = dir.join("cap.pcap");
    std::fs::write(
        &rules,
        "table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority 100; policy accept;\n\
         \t\tip saddr 10.0.0.0/8 meta l4proto udp snat to 198.51.100.1:20000-20009\n\t}\n}\n",
    )
    .unwrap();
    let pkts: Vec<Vec<u8>> = (0..11)
        .map(|i| udp("10.0.0.2", "203.0.113.9", 30000 + i, 53, b"q", 64, i + 1))
        .collect();
    std::fs::write(&cap, pcap(&pkts)).unwrap();
    for (engine, threads) in [("interp", "1"), ("jit", "1"), ("interp", "2"), ("jit", "2")] {
        let o = nfc(&[
            "run",
            "pcap",
            rules.to_str().unwrap(),
            cap.to_str().unwrap(),
            "--engine",
            engine,
            "--threads",
            threads,
            "--ct-list",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        if o.status.code() != Some(0)
            || !out.contains("nat failed 0,")
            || !out.contains("insert failed 1,")
            || !out.contains("conntrack entries at the end: 10")
        {
            return Err(format!(
                "{engine} --threads {threads}: {out}{}",
                String::from_utf8_lossy(&o.stderr)
            )
            .into());
        }
        let mut ports: Vec<u16> = out
            .lines()
            .filter_map(|l| l.split(" dst=198.51.100.1 sport=53 dport=").nth(1))
            .filter_map(|r| r.split(' ').next()?.parse().ok())
            .collect();
        ports.sort_unstable();
        if ports != (20000..20010).collect::<Vec<u16>>() {
            return Err(
                format!("{engine} --threads {threads}: reply ports {ports:?}\n{out}").into(),
            );
        }
    }
    Ok(())
}

/// IPv6 (which the oracle lab does not forward): the host's answers — ICMPv6 time exceeded for hop limit 1,
/// reject's reset and port unreachable — byte for byte as the kernel sent them (`testdata/router`), flow label
/// aside, with the host's address given by `--local`.
fn ipv6_answers() -> Result<(), Failed> {
    let rec = std::fs::read_to_string(root().join("testdata/router/ipv6_answers.txt")).unwrap();
    let hex = |h: &str| -> Vec<u8> {
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let field = |w: &str| -> Vec<Vec<u8>> {
        rec.lines()
            .filter_map(|l| l.strip_prefix(w))
            .map(|h| hex(h.trim()))
            .collect()
    };
    let (ins, want) = (field("in "), field("out "));
    let dir = work_dir("ipv6");
    let rules = dir.join("r.nfr");
    let cap = dir.join("cap.pcap");
    std::fs::write(
        &rules,
        "table ip6 filter {\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\
         \t\ttcp dport 80 reject with tcp reset\n\t\tudp dport 53 reject\n\t}\n}\n",
    )
    .unwrap();
    std::fs::write(&cap, pcap(&ins)).unwrap();
    let no_flow_label = |p: &[u8]| {
        let mut p = p.to_vec();
        p[1] &= 0xf0;
        p[2..4].fill(0);
        p
    };
    let want: Vec<Vec<u8>> = want.iter().map(|p| no_flow_label(p)).collect();
    for engine in ["interp", "jit"] {
        for threads in ["1", "2"] {
            let acc = dir.join("acc.pcap");
            let o = nfc(&[
                "run",
                "pcap",
                rules.to_str().unwrap(),
                cap.to_str().unwrap(),
                "--local",
                "2001:db8:ff::1",
                "--engine",
                engine,
                "--threads",
                threads,
                "--write-accepted",
                acc.to_str().unwrap(),
            ]);
            if o.status.code() != Some(0) {
                return Err(String::from_utf8_lossy(&o.stderr).into_owned().into());
            }
            let got: Vec<Vec<u8>> = read_pcap(&std::fs::read(&acc).unwrap())
                .iter()
                .map(|p| no_flow_label(p))
                .collect();
            if got != want {
                return Err(format!(
                    "{engine} --threads {threads}:\n kernel {:02x?}\n nfc    {:02x?}",
                    want, got
                )
                .into());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The random differential test.

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// A random ruleset: forward rules over ct state/status, TCP flags, ports, ICMP types, TTL, marks, a user chain,
/// rejects and limits; sometimes an output chain (what the host's answers meet) with a limit.
fn random_rules(r: &mut Rng) -> String {
    let matches = [
        "ct state established,related",
        "ct state new",
        "ct state invalid",
        "ct state { new, established }",
        "ct status seen-reply",
        "ct status & assured == 0",
        "ct status != confirmed",
        "tcp flags & (syn | ack) == syn",
        "tcp flags & rst == rst",
        "tcp flags & psh == psh",
        "tcp dport 80",
        "tcp dport { 22, 25 }",
        "udp dport 53",
        "udp sport 53",
        "icmp type echo-request",
        "icmp type { destination-unreachable, time-exceeded }",
        "ip ttl 63",
        "ip ttl < 10",
        "meta mark 0x1",
        "ip saddr 10.1.2.0/24",
        "ip daddr 192.168.5.21",
        "meta l4proto udp",
    ];
    let verdicts = [
        "accept",
        "drop",
        "counter accept",
        "counter drop",
        "reject",
        "reject with tcp reset",
        "reject with icmp type host-unreachable",
        "meta mark set 0x1",
        "jump sub",
        "limit rate 1/hour burst 2 packets accept",
        "counter",
    ];
    let mut fwd = Vec::new();
    for _ in 0..1 + r.below(5) {
        let m = r.pick(&matches);
        let mut v = *r.pick(&verdicts);
        if v == "reject with tcp reset" && !m.starts_with("tcp") {
            v = "reject";
        }
        fwd.push(format!("{m} {v}"));
    }
    let policy = if r.chance(50) { "accept" } else { "drop" };
    let sub: Vec<String> = (0..1 + r.below(2))
        .map(|_| {
            format!(
                "{} {}",
                r.pick(&matches),
                r.pick(&["accept", "drop", "return", "counter"])
            )
        })
        .collect();
    let mut t = format!(
        "table ip filter {{\n\tchain sub {{\n{}\t}}\n\tchain forward {{\n\t\ttype filter hook forward priority 0; policy {policy};\n{}\t}}\n",
        sub.iter().map(|x| format!("\t\t{x}\n")).collect::<String>(),
        fwd.iter().map(|x| format!("\t\t{x}\n")).collect::<String>()
    );
    if r.chance(50) {
        let (pol, rule) = *r.pick(&[
            ("drop", "limit rate 1/hour burst 1 packets accept"),
            ("accept", "icmp type destination-unreachable counter drop"),
            ("accept", "tcp flags & rst == rst drop"),
            ("drop", "ct state invalid accept"),
            ("accept", "counter"),
        ]);
        t.push_str(&format!(
            "\tchain output {{\n\t\ttype filter hook output priority 0; policy {pol};\n\t\t{rule}\n\t}}\n"
        ));
    }
    t.push_str("}\n");
    t
}

/// A random capture: TCP connections (handshake, data, FIN or RST), UDP queries and answers, pings, ICMP errors
/// from routers about existing flows, low TTLs, fragments with duplicates and overlaps.
fn random_capture(r: &mut Rng) -> Vec<Vec<u8>> {
    let mut pkts: Vec<Vec<u8>> = Vec::new();
    let mut id: u16 = 1;
    let mut next_id = || {
        id = id.wrapping_add(1);
        id
    };
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for _ in 0..3 + r.below(5) {
        // Many clients: the host's ICMP rate limit (per destination) is kept per worker with --threads 2, so
        // more than 6 errors to one client from flows on different workers would differ from one thread.
        let c = format!("10.1.2.{}", 10 + r.below(40));
        let s = format!("192.168.5.{}", 20 + r.below(3));
        let ttl = *r.pick(&[64u8, 64, 64, 1, 2]);
        match r.below(5) {
            0 | 1 => {
                let sp = 40000 + r.below(1000) as u16;
                let dp = *r.pick(&[80u16, 22, 25, 443]);
                let (x, y) = (1000 + r.below(1000) as u32, 5000 + r.below(1000) as u32);
                let mut p = vec![
                    tcp(&c, &s, sp, dp, x, 0, SYN, b"", next_id()),
                    tcp(&s, &c, dp, sp, y, x + 1, SYN | ACK, b"", next_id()),
                    tcp(&c, &s, sp, dp, x + 1, y + 1, ACK, b"", next_id()),
                ];
                if r.chance(60) {
                    p.push(tcp(
                        &c,
                        &s,
                        sp,
                        dp,
                        x + 1,
                        y + 1,
                        PSH | ACK,
                        b"hello",
                        next_id(),
                    ));
                    p.push(tcp(&s, &c, dp, sp, y + 1, x + 6, ACK, b"", next_id()));
                }
                let x2 = if p.len() > 3 { x + 6 } else { x + 1 };
                match r.below(3) {
                    0 => {
                        p.push(tcp(&c, &s, sp, dp, x2, y + 1, FIN | ACK, b"", next_id()));
                        p.push(tcp(
                            &s,
                            &c,
                            dp,
                            sp,
                            y + 1,
                            x2 + 1,
                            FIN | ACK,
                            b"",
                            next_id(),
                        ));
                        p.push(tcp(&c, &s, sp, dp, x2 + 1, y + 2, ACK, b"", next_id()));
                    }
                    1 => p.push(tcp(&c, &s, sp, dp, x2, 0, RST, b"", next_id())),
                    _ => {}
                }
                if r.chance(30) {
                    p.push(tcp(&c, &s, sp, dp, x2 + 5000, 0, SYN, b"", next_id()));
                }
                if r.chance(20) {
                    p.truncate(1 + r.below(p.len() as u64) as usize);
                }
                sent.push(p[0].clone());
                pkts.extend(p);
            }
            2 => {
                let sp = 1024 + r.below(1000) as u16;
                let q = udp(&c, &s, sp, 53, b"query", ttl, next_id());
                pkts.push(q.clone());
                if r.chance(70) {
                    pkts.push(udp(&s, &c, 53, sp, b"answer", 64, next_id()));
                }
                sent.push(q);
            }
            3 => {
                let e = [0, r.below(200) as u8, 0, 1];
                let ping = icmp(&c, &s, 8, 0, e, b"ping", ttl, next_id());
                pkts.push(ping.clone());
                if r.chance(70) {
                    pkts.push(icmp(&s, &c, 0, 0, e, b"ping", 64, next_id()));
                }
                sent.push(ping);
            }
            _ => {
                let body: Vec<u8> = (0..112u8).collect();
                let d = udp(&c, &s, 6000 + r.below(100) as u16, 53, &body, 64, next_id());
                let mut fr = vec![
                    frag(&d, 0, 48, true),
                    frag(&d, 48, 48, true),
                    frag(&d, 96, 24, false),
                ];
                match r.below(4) {
                    0 => fr.insert(2, frag(&d, 40, 48, true)), // duplicate inside the run
                    1 => fr.insert(1, frag(&d, 40, 56, true)), // overlap past the data
                    2 => fr.swap(0, 1),                        // out of order
                    _ => {}
                }
                pkts.extend(fr);
            }
        }
        // A router's error about something sent, now and then.
        if !sent.is_empty() && r.chance(35) {
            let q = r.pick(&sent).clone();
            let rt = format!("172.16.0.{}", 1 + r.below(3));
            let dst = format!("{}.{}.{}.{}", q[12], q[13], q[14], q[15]);
            let (ty, code) = *r.pick(&[(11u8, 0u8), (3, 1), (3, 3)]);
            pkts.push(icmp(&rt, &dst, ty, code, [0; 4], &q, 64, next_id()));
        }
    }
    pkts
}

fn random_differential(seed: u64, n: u64, unavailable: Option<&str>) -> Result<(), Failed> {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut cases, mut packets, mut agreements, mut failures) = (0, 0, 0, Vec::new());
    for i in 0..n {
        let case = Case {
            name: format!("random-{seed}-{i}"),
            rules: random_rules(&mut r),
            pkts: random_capture(&mut r),
            ipt: None,
            expect: Vec::new(),
            ..Default::default()
        };
        match run_case(&case, unavailable) {
            Ok((p, a)) => {
                cases += 1;
                packets += p;
                agreements += a;
            }
            Err(e) => failures.push(format!("{e:?}")),
        }
    }
    println!(
        "random differential (seed {seed}): {cases} of {n} cases agree with the kernel, {packets} packets, \
         {agreements} per-packet agreements over engines x thread counts"
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n\n").into())
    }
}
