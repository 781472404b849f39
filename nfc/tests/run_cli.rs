//! End-to-end tests of `nfc run pcap`. Like ripgrep's `rgtest!`, every test runs on every engine (`interp`,
//! `jit`, and `ipt` where the ruleset lowers to iptables) and checks that they agree.
//!
//! * the example rulesets over the example captures: exact verdicts and counters, same on every engine;
//! * every capture of `shared/corpus/pcaps` runs without a panic on every engine (ignored without the corpus);
//! * `--path input --trace --json` reproduces the kernel's per-packet conntrack states of
//!   `shared/corpus/ct-expected`;
//! * `--threads 2` prints what `--threads 1` prints;
//! * the generated example captures are byte-identical when regenerated (deterministic generator).

mod common;

use common::{TmpFile, gate, nfc, nfc_command, root, stdout, tmp_file};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nfr_runtime::pcap::{linktype, ng, pcap_header, pcap_record};
use serde_json::Value;

/// `shared/corpus` when it holds `sub`.
fn corpus(sub: &str) -> Result<PathBuf, String> {
    common::gate::corpus(sub).map(|d| d.parent().unwrap().to_path_buf())
}

/// `nfc run pcap examples/server.nfr examples/server.pcap ARGS`.
fn run_server(args: &[&str]) -> Output {
    let mut all = vec!["run", "pcap", "examples/server.nfr", "examples/server.pcap"];
    all.extend_from_slice(args);
    nfc(&all)
}

/// Engines to compare (every ruleset used here lowers to iptables, so `ipt` runs too).
const ENGINES: [&str; 3] = ["interp", "jit", "ipt"];

/// The part of a report every engine prints the same way: everything before the ruleset listing (which is
/// `nft list ruleset` for interp/jit and `iptables-save -c` for ipt).
fn summary_part(report: &str) -> String {
    stable(report.split("\n\n").next().unwrap_or(""))
}

/// The report without the lines that legitimately differ between runs/engines (time, engine name).
fn stable(report: &str) -> String {
    report
        .lines()
        .filter(|l| !l.starts_with("time: ") && !l.starts_with("engine: "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tmp_ruleset(name: &str, text: &str) -> TmpFile {
    common::tmp_file(name, text)
}

const ACCEPT_ALL: &str = "table ip t {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tcounter\n\t}\n}\n";

// ---------------------------------------------------------------------------------------------------------
// The example rulesets over the example captures.

struct Case {
    rules: &'static str,
    capture: &'static str,
    args: &'static [&'static str],
    /// Lines that must appear in the report (verdict summary and counters, exactly).
    expect: &'static [&'static str],
    /// Lines of the `--engine ipt` listing (`iptables-save -c`).
    ipt_expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        rules: "examples/server.nfr",
        capture: "examples/server.pcap",
        args: &["--local", "203.0.113.1"],
        expect: &[
            "frames: 27 (1552 bytes); through the hooks: 27 (1552 bytes); skipped: 0; dropped by ip_rcv: 0",
            "  input        accept 15, drop 5",
            "  forward      drop 1",
            "  postrouting  accept 6",
            "ct state at prerouting/output: new 12, established 7, established ct direction reply 6, invalid 2",
            "\t\tct state established,related counter packets 7 bytes 314 accept",
            "\t\tct state invalid counter packets 2 bytes 80 drop",
            "\t\ttcp dport 22 ip saddr 192.0.2.0/24 ct state new counter packets 1 bytes 40 accept",
            "\t\ttcp dport { 80, 443 } ct state new counter packets 2 bytes 80 accept",
            "\t\ticmp type echo-request limit rate 5/second counter packets 5 bytes 225 accept",
            "\t\tcounter packets 3 bytes 120 drop",
        ],
        ipt_expect: &[
            ":INPUT DROP [0:0]",
            "[7:314] -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "[2:80] -A INPUT -m conntrack --ctstate INVALID -j DROP",
            "[1:40] -A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
            "[2:80] -A INPUT -p tcp -m multiport --dports 80,443 -m conntrack --ctstate NEW -j ACCEPT",
            "[5:225] -A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec -j ACCEPT",
            "[3:120] -A INPUT -j DROP",
            ":FORWARD DROP [1:40]",
            ":OUTPUT ACCEPT [6:275]",
        ],
    },
    Case {
        rules: "examples/router.nfr",
        capture: "examples/router.pcap",
        args: &[
            "--iface",
            "eth1=192.168.1.1/24",
            "--iface",
            "eth0=198.51.100.1/24",
            "--iface",
            "eth0=0.0.0.0/0",
        ],
        expect: &[
            "frames: 17 (967 bytes); through the hooks: 17 (967 bytes); skipped: 0; dropped by ip_rcv: 0",
            "  input        accept 2, drop 1",
            "  forward      drop 2",
            "  postrouting  accept 12",
            "effects: reject 0, nat 2, nat failed 0, log 0, notrack 0, ct mark set 0, ct helper set 0, queued 0",
            "\t\tct state established,related counter packets 8 bytes 377 accept",
            "\t\tct state invalid counter packets 1 bytes 40 drop",
            "\t\tiifname \"eth1\" oifname \"eth0\" counter packets 1 bytes 40 accept",
            "\t\tiifname \"eth0\" ip daddr 192.168.1.10 tcp dport 8080 ct status dnat counter packets 1 bytes 40 accept",
        ],
        ipt_expect: &[
            ":FORWARD DROP [1:40]",
            "[8:377] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "[1:40] -A FORWARD -m conntrack --ctstate INVALID -j DROP",
            "[1:40] -A FORWARD -i eth1 -o eth0 -j ACCEPT",
            "[1:40] -A FORWARD -d 192.168.1.10/32 -i eth0 -p tcp -m tcp --dport 8080 -m conntrack --ctstate DNAT -j ACCEPT",
            "[1:40] -A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.1.10:8080",
            "[1:40] -A POSTROUTING -s 192.168.1.0/24 -o eth0 -j MASQUERADE",
        ],
    },
    Case {
        rules: "examples/kube-proxy.nfr",
        capture: "examples/kube-proxy.pcap",
        args: &[
            "--iface",
            "eth0=192.168.0.10/24",
            "--iface",
            "cni0=10.244.0.1/24",
            "--local",
            "192.168.0.10",
            "10.244.0.1",
        ],
        // The endpoints as the default seed draws them: every engine the same.
        expect: &[
            "frames: 23 (1242 bytes); through the hooks: 23 (1242 bytes); skipped: 0; dropped by ip_rcv: 0",
            "  forward      drop 1",
            "  postrouting  accept 22",
            "effects: reject 0, nat 34, nat failed 0, log 0, notrack 0, ct mark set 0, ct helper set 0, queued 0",
            "\t\tcounter packets 12 bytes 480 masquerade fully-random comment \"kubernetes service traffic requiring SNAT\"",
            "\t\tmeta random & 2147483647 < 715827883 counter packets 6 bytes 240 jump KUBE-SEP-WEB1 comment \"default/web:http -> 10.244.0.5:8080\"",
            "\t\tmeta random & 2147483647 < 1073741824 counter packets 7 bytes 280 jump KUBE-SEP-WEB2 comment \"default/web:http -> 10.244.0.6:8080\"",
            "\t\tcounter packets 5 bytes 200 jump KUBE-SEP-WEB3 comment \"default/web:http -> 10.244.0.7:8080\"",
        ],
        ipt_expect: &[
            "[12:480] -A KUBE-SERVICES -m addrtype --dst-type LOCAL -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -j KUBE-NODEPORTS",
            "[6:240] -A KUBE-SVC-WEB -m statistic --mode random --probability 0.33333333349 -m comment --comment \"default/web:http -> 10.244.0.5:8080\" -j KUBE-SEP-WEB1",
            "[7:280] -A KUBE-SVC-WEB -m statistic --mode random --probability 0.50000000000 -m comment --comment \"default/web:http -> 10.244.0.6:8080\" -j KUBE-SEP-WEB2",
        ],
    },
];

/// `--seed` picks the endpoints: the same seed repeats a run on every engine, another one draws others.
fn seed_repeats_and_changes_the_draws() {
    let run = |e: &str, seed: &str| {
        let o = nfc(&[
            "run",
            "pcap",
            "examples/kube-proxy.nfr",
            "examples/kube-proxy.pcap",
            "--iface",
            "eth0=192.168.0.10/24",
            "--local",
            "192.168.0.10",
            "--engine",
            e,
            "--seed",
            seed,
        ]);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        let s = stdout(&o);
        s.lines()
            .filter(|l| l.contains("jump KUBE-SEP-"))
            .map(|l| l.split("counter").nth(1).unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let a = run("interp", "7");
    assert_eq!(a.len(), 5, "{a:?}");
    assert_eq!(a, run("interp", "7"));
    assert_eq!(a, run("jit", "7"));
    assert_ne!(a, run("interp", "8"));
}

fn example_cases_available() -> bool {
    CASES.iter().all(|c| root().join(c.capture).exists())
}

fn examples_exact_and_engines_agree() {
    assert!(
        example_cases_available(),
        "examples/*.pcap missing: run `cargo run -p nfc --example gen_captures`"
    );
    for c in CASES {
        let mut outs = Vec::new();
        for e in ENGINES {
            let mut a = vec!["run", "pcap", c.rules, c.capture, "--engine", e];
            a.extend_from_slice(c.args);
            let o = nfc(&a);
            assert_eq!(o.status.code(), Some(0), "{} {e}: {o:?}", c.rules);
            let s = stdout(&o);
            // The nft listing lines (tab-indented) are checked for interp and jit; ipt lists iptables-style.
            for want in c
                .expect
                .iter()
                .filter(|w| e != "ipt" || !w.starts_with('\t'))
            {
                assert!(
                    s.lines().any(|l| l == *want),
                    "{} on {} ({e}): missing line {want:?} in\n{s}",
                    c.rules,
                    c.capture
                );
            }
            outs.push((e, s));
        }
        // interp and jit: the whole report; ipt: everything but the listing, which is in iptables form.
        assert_eq!(
            stable(&outs[0].1),
            stable(&outs[1].1),
            "{}: interp and jit differ",
            c.rules
        );
        for w in outs.windows(2) {
            assert_eq!(
                summary_part(&w[0].1),
                summary_part(&w[1].1),
                "{}: {} and {} differ",
                c.rules,
                w[0].0,
                w[1].0
            );
        }
        // The iptables counters equal the nft ones for the same rules.
        let ipt = &outs[2].1;
        for want in c.ipt_expect {
            assert!(
                ipt.lines().any(|l| l == *want),
                "{} (ipt): missing line {want:?} in\n{ipt}",
                c.rules
            );
        }
    }
}

/// The IPv4 datagrams of a pcap of Ethernet frames.
fn datagrams(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let cap = u32::from_le_bytes(b[o + 8..o + 12].try_into().unwrap()) as usize;
        let f = &b[o + 16..(o + 16 + cap).min(b.len())];
        o += 16 + cap;
        if f.len() > 34 && f[12..14] == [8, 0] {
            out.push(f[14..].to_vec());
        }
    }
    out
}

/// The router example's NAT on every engine: the masqueraded connection leaves from the router's WAN address
/// and its answers reach the LAN host; the port-80 connection is DNATed to 192.168.1.10:8080 and forwarded
/// (not dropped by the input policy), its answers leave from the router's address and port; every packet
/// written leaves with its checksums right. A NAT ruleset runs on one thread (its bindings are shared).
fn router_nat_rewrites_both_directions() {
    let router = &CASES[1];
    let dir = common::tmp_dir("router-nat");
    for e in ENGINES {
        let acc = dir.join(format!("acc-{e}.pcap"));
        let mut a = vec!["run", "pcap", router.rules, router.capture, "--engine", e];
        a.extend_from_slice(router.args);
        a.extend_from_slice(&["--write-accepted", acc.to_str().unwrap(), "--threads", "2"]);
        let o = nfc(&a);
        assert_eq!(o.status.code(), Some(0), "{e}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("uses NAT") && err.contains("1 thread"),
            "{e}: {err}"
        );
        let pkts = datagrams(&std::fs::read(&acc).unwrap());
        let summary = |p: &[u8]| {
            let ihl = usize::from(p[0] & 15) * 4;
            format!(
                "{}.{}.{}.{}:{} > {}.{}.{}.{}:{} ttl {}",
                p[12],
                p[13],
                p[14],
                p[15],
                u16::from_be_bytes([p[ihl], p[ihl + 1]]),
                p[16],
                p[17],
                p[18],
                p[19],
                u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]),
                p[8]
            )
        };
        let got: Vec<String> = pkts
            .iter()
            .filter(|p| p[9] == 6)
            .map(|p| summary(p))
            .collect();
        let want = [
            "198.51.100.1:50000 > 93.184.216.34:443 ttl 63",
            "93.184.216.34:443 > 192.168.1.50:50000 ttl 63",
            "198.51.100.1:50000 > 93.184.216.34:443 ttl 63",
            "198.51.100.1:50000 > 93.184.216.34:443 ttl 63",
            "93.184.216.34:443 > 192.168.1.50:50000 ttl 63",
            "203.0.113.9:51001 > 192.168.1.10:8080 ttl 63",
            "198.51.100.1:80 > 203.0.113.9:51001 ttl 63",
            "203.0.113.9:51001 > 192.168.1.10:8080 ttl 63",
            "203.0.113.9:51001 > 192.168.1.10:8080 ttl 63",
            "198.51.100.1:80 > 203.0.113.9:51001 ttl 63",
        ];
        assert_eq!(got, want, "{e}");
        for p in &pkts {
            let ihl = usize::from(p[0] & 15) * 4;
            assert_eq!(
                nfr_runtime::wire::checksum(&p[..ihl], 0),
                0,
                "{e}: {p:02x?}"
            );
            if p[9] == 6 || p[9] == 17 {
                let init =
                    nfr_runtime::wire::build::pseudo(&p[12..16], &p[16..20], p[9], p.len() - ihl);
                assert_eq!(
                    nfr_runtime::wire::checksum(&p[ihl..], init),
                    0,
                    "{e}: {p:02x?}"
                );
            }
        }
    }
}

/// Payload writes change the packets that leave (`nft_payload_set_eval`), with the IPv4 header checksum and,
/// for an address, the TCP checksum following: every forwarded TCP packet of the router capture leaves with DSCP cs4,
/// the LAN web client's packets to 93.184.216.34 go to .35 on port 8443, and every checksum is right.
fn payload_writes_reach_the_packets_that_leave() {
    let router = &CASES[1];
    let dir = common::tmp_dir("payload-set");
    let rules = dir.join("set.nfr");
    std::fs::write(
        &rules,
        "table ip t {\n\tchain pre {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n         \t\tmeta l4proto tcp ip dscp set cs4\n\t\tip daddr 93.184.216.34 ip daddr set 93.184.216.35\n         \t\ttcp dport 443 tcp dport set 8443\n\t}\n}\n",
    )
    .unwrap();
    for e in ["interp", "jit"] {
        let acc = dir.join(format!("acc-{e}.pcap"));
        let mut a = vec![
            "run",
            "pcap",
            rules.to_str().unwrap(),
            router.capture,
            "--engine",
            e,
        ];
        a.extend_from_slice(router.args);
        a.extend_from_slice(&["--write-accepted", acc.to_str().unwrap()]);
        let o = nfc(&a);
        assert_eq!(o.status.code(), Some(0), "{e}: {o:?}");
        // forwarded TCP (a packet the host takes in is written as it was captured)
        let tcp: Vec<Vec<u8>> = datagrams(&std::fs::read(&acc).unwrap())
            .into_iter()
            .filter(|p| {
                p[9] == 6 && p[16..20] != [198, 51, 100, 1] && p[16..20] != [192, 168, 1, 1]
            })
            .collect();
        assert!(!tcp.is_empty(), "{e}");
        let mut rewritten = 0;
        for p in &tcp {
            let ihl = usize::from(p[0] & 15) * 4;
            assert_eq!(p[1] >> 2, 32, "{e}: dscp {p:02x?}");
            assert_ne!(p[16..20], [93, 184, 216, 34], "{e}: {p:02x?}");
            if p[16..20] == [93, 184, 216, 35] {
                assert_eq!(u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]), 8443, "{e}");
                rewritten += 1;
            }
            assert_eq!(
                nfr_runtime::wire::checksum(&p[..ihl], 0),
                0,
                "{e}: {p:02x?}"
            );
            let init = nfr_runtime::wire::build::pseudo(&p[12..16], &p[16..20], 6, p.len() - ihl);
            assert_eq!(
                nfr_runtime::wire::checksum(&p[ihl..], init),
                0,
                "{e}: {p:02x?}"
            );
        }
        assert!(rewritten > 0, "{e}: no packet went to the new address");
    }
}

/// `redirect` maps to the input interface's address (`--iface NAME=ADDRESS/LEN`): the packet is then for the
/// host and goes to INPUT; on an interface without an address it is dropped and counted as a failed NAT.
fn redirect_maps_to_the_input_interface_address() {
    let rules = tmp_ruleset(
        "redirect.nfr",
        "table ip nat {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\ttcp dport 80 redirect to :8080\n\t}\n}\n",
    );
    let syn = nfr_runtime::wire::build::tcp(
        "203.0.113.9".parse().unwrap(),
        "93.184.216.34".parse().unwrap(),
        40000,
        80,
        1,
        0,
        0x02,
        100,
        &[],
        &[],
    );
    let mut cap = pcap_header(linktype::RAW, 65535).to_vec();
    cap.extend(pcap_record(1_000_000, syn.len() as u32, &syn));
    let cap = common::tmp_file("redirect.pcap", cap);
    for e in ENGINES {
        let run = |iface: &str| {
            let (r, c): (&Path, &Path) = (rules.as_ref(), cap.as_ref());
            stdout(&nfc(&[
                "run",
                "pcap",
                r.to_str().unwrap(),
                c.to_str().unwrap(),
                "--engine",
                e,
                "--trace",
                "--iface",
                iface,
                "--iface",
                "eth0=0.0.0.0/0",
            ]))
        };
        let out = run("eth0=198.51.100.1/24");
        assert!(out.contains("hooks prerouting -> input,"), "{e}: {out}");
        assert!(
            out.contains("-> IP 203.0.113.9.40000 > 198.51.100.1.8080: Flags [S], length 0"),
            "{e}: {out}"
        );
        let out = run("eth1=192.168.1.1/24");
        assert!(out.contains("nat 1, nat failed 1,"), "{e}: {out}");
        assert!(out.contains("verdict drop at prerouting"), "{e}: {out}");
    }
}

fn trace_json_one_object_per_frame_and_engines_agree() {
    if !example_cases_available() {
        panic!("examples/*.pcap missing");
    }
    let mut outs = Vec::new();
    for e in ENGINES {
        let o = run_server(&["--local", "203.0.113.1", "--trace", "--json", "--engine", e]);
        assert_eq!(o.status.code(), Some(0));
        let s = stdout(&o);
        let lines: Vec<Value> = s
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        let frames: Vec<&Value> = lines.iter().filter(|v| v.get("frame").is_some()).collect();
        assert_eq!(frames.len(), 27);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f["frame"].as_u64(), Some(i as u64 + 1));
            assert!(f.get("verdict").is_some() && f.get("ct_state").is_some());
            assert!(f["hooks"].is_array() && f["rules"].is_array());
        }
        // The first packet: ssh SYN from the admin net, accepted by the ssh rule.
        assert_eq!(frames[0]["ct_state"], "NEW");
        assert_eq!(frames[0]["verdict"], "accept");
        assert_eq!(
            frames[0]["hooks"],
            serde_json::json!(["prerouting", "input"])
        );
        let last = lines.last().unwrap();
        assert!(last.get("report").is_some());
        // Per-packet part must agree between engines (the report has timings).
        // Per-packet fields every engine reports the same way (rule texts differ: nft vs iptables syntax).
        outs.push(
            frames
                .iter()
                .map(|v| {
                    format!(
                        "{} {} {} {} {}",
                        v["frame"], v["ct_state"], v["verdict"], v["hooks"], v["stopped_at"]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        if e == "interp" {
            // The ssh SYN matched the ssh rule, by its text as written.
            assert_eq!(
                frames[0]["rules"][0]["rule"],
                "tcp dport 22 ip saddr $admin_net ct state new counter accept"
            );
        }
        if e == "ipt" {
            assert_eq!(
                frames[0]["rules"][0]["rule"],
                "-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT"
            );
        }
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
}

fn threads_two_prints_what_one_prints() {
    if !example_cases_available() {
        panic!("examples/*.pcap missing");
    }
    for c in CASES {
        let run = |t: &str, extra: &[&str]| {
            let mut a = vec![
                "run",
                "pcap",
                c.rules,
                c.capture,
                "--threads",
                t,
                "--ct-list",
            ];
            a.extend_from_slice(c.args);
            a.extend_from_slice(extra);
            let o = nfc(&a);
            assert_eq!(o.status.code(), Some(0));
            stable(&stdout(&o))
                .lines()
                .filter(|l| !l.contains("thread(s)"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(run("1", &[]), run("2", &[]), "{}", c.rules);
        assert_eq!(
            run("1", &["--trace"]),
            run("3", &["--trace"]),
            "{}",
            c.rules
        );
    }
}

/// A capture cut inside a record: `--threads 2` (every worker reading the file) warns in the words one thread
/// uses and reports the same frames.
fn threads_two_warn_of_a_cut_capture_as_one_does() {
    let bytes = std::fs::read(root().join("examples/server.pcap")).unwrap();
    let cut = tmp_file("cut.pcap", &bytes[..bytes.len() - 5]);
    let rules = tmp_ruleset("accept.nfr", ACCEPT_ALL);
    let run = |t: &str| {
        let o = nfc(&[
            "run",
            "pcap",
            rules.to_str().unwrap(),
            cut.to_str().unwrap(),
            "--local",
            "203.0.113.1",
            "--threads",
            t,
            "--no-progress",
        ]);
        assert_eq!(o.status.code(), Some(0));
        let report = stable(&stdout(&o))
            .lines()
            .filter(|l| !l.contains("thread(s)"))
            .collect::<Vec<_>>()
            .join("\n");
        (report, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let one = run("1");
    assert!(
        one.1
            .contains("capture ends early: the file ends inside a record"),
        "{}",
        one.1
    );
    assert_eq!(one, run("2"));
}

/// A capture long enough that the workers of `--threads N` read it by turns, queue many batches for each other
/// and reuse them: 2 and 3 threads print what one prints, and so does a capture read from standard input.
fn threads_share_a_long_capture_and_print_what_one_prints() {
    use nfr_runtime::wire::build::tcp;
    let host: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let mut cap = pcap_header(linktype::ETHERNET, 65535).to_vec();
    let mut ts = 1_700_000_000_000_000u64;
    let mut put = |ip: Vec<u8>| {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&ip);
        ts += 7;
        cap.extend_from_slice(&pcap_record(ts, f.len() as u32, &f));
    };
    // 600 flows, 100 at a time: handshake, 120 segments each way in turn, a reset from every tenth client.
    let payload = [0x55u8; 40];
    for wave in 0..6u32 {
        let flows: Vec<(std::net::IpAddr, u16)> = (0..100u32)
            .map(|i| {
                let n = wave * 100 + i;
                (
                    format!("10.64.{}.{}", n / 200, n % 200 + 1)
                        .parse()
                        .unwrap(),
                    40_000 + n as u16,
                )
            })
            .collect();
        for &(c, p) in &flows {
            put(tcp(c, host, p, 80, 1000, 0, 0x02, 64240, &[], &[]));
            put(tcp(host, c, 80, p, 9000, 1001, 0x12, 64240, &[], &[]));
            put(tcp(c, host, p, 80, 1001, 9001, 0x10, 64240, &[], &[]));
        }
        for k in 0..120u32 {
            for (i, &(c, p)) in flows.iter().enumerate() {
                let (cs, ss) = (1001 + k * 40, 9001 + k * 40);
                put(tcp(c, host, p, 80, cs, ss, 0x18, 64240, &[], &payload));
                put(tcp(host, c, 80, p, ss, cs + 40, 0x18, 64240, &[], &payload));
                if k == 119 && i % 10 == 0 {
                    put(tcp(c, host, p, 80, cs + 40, 0, 0x04, 0, &[], &[]));
                }
            }
        }
    }
    let capture = tmp_file("long.pcap", &cap);
    let rules = tmp_ruleset(
        "stateful.nfr",
        "table inet t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
         \t\tct state established,related counter accept\n\t\tct state invalid counter drop\n\
         \t\ttcp dport 80 ct state new counter accept\n\t}\n}\n",
    );
    let (r, c) = (rules.to_str().unwrap(), capture.to_str().unwrap());
    let args = |t, cap| {
        vec![
            "run",
            "pcap",
            r,
            cap,
            "--local",
            "10.0.0.1",
            "--no-progress",
            "--threads",
            t,
            "--ct-list",
        ]
    };
    let report = |o: &Output| {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        stable(&stdout(o))
            .lines()
            .filter(|l| !l.contains("thread(s)"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let one = report(&nfc(&args("1", c)));
    assert!(
        one.contains("frames: 145860 (13636440 bytes); through the hooks: 145860"),
        "{one}"
    );
    assert!(one.contains("conntrack entries at the end: 600"), "{one}");
    for t in ["2", "3"] {
        assert_eq!(one, report(&nfc(&args(t, c))), "{t} threads");
    }
    let piped = nfc_command()
        .args(args("2", "-"))
        .stdin(std::fs::File::open(c).unwrap())
        .output()
        .unwrap();
    assert_eq!(one, report(&piped), "2 threads, capture on standard input");
}

/// `--threads 2` prints what `--threads 1` prints on a corpus capture with many flows, traced (records merged
/// back in frame order); and untraced (the workers reading by turns) on every capture of the corpus, whatever
/// its link types, interfaces and errors.
fn threads_two_prints_what_one_prints_on_many_flows(c: PathBuf) {
    let rules = tmp_ruleset("accept.nfr", ACCEPT_ALL);
    let r = rules.to_str().unwrap();
    let run = |p: &Path, t: &str, trace: bool| {
        let mut a = vec!["run", "pcap", r, p.to_str().unwrap(), "--path", "input"];
        a.extend(["--threads", t, "--ct-list", "--no-progress"]);
        if trace {
            a.push("--trace");
        }
        let o = nfc(&a);
        let report = stable(&stdout(&o))
            .lines()
            .filter(|l| !l.contains("thread(s)"))
            .collect::<Vec<_>>()
            .join("\n");
        (
            o.status.code(),
            report,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let ftp = c.join("pcaps/zeek-ftp_ipv4.pcap");
    let one = run(&ftp, "1", true);
    assert_eq!(one.0, Some(0));
    assert_eq!(one, run(&ftp, "2", true));
    let names = corpus_captures(&c);
    assert!(names.len() > 20, "{} captures", names.len());
    for p in &names {
        assert_eq!(run(p, "1", false), run(p, "2", false), "{}", p.display());
    }
}

// ---------------------------------------------------------------------------------------------------------
// The public corpus.

/// The corpus's captures (pcap and pcapng), by name.
fn corpus_captures(c: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(c.join("pcaps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    names.sort();
    names
}

fn corpus_pcaps_never_panic_on_any_engine(c: PathBuf) {
    let names = corpus_captures(&c);
    // INDEX.tsv: file -> (packets, the kernel harness's `SKIPPED(ethertype-0x....)=N` counts).
    type Indexed = (u64, BTreeMap<String, u64>);
    let index: BTreeMap<String, Indexed> = std::fs::read_to_string(c.join("pcaps/INDEX.tsv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let skipped = f
                .get(11)?
                .split_whitespace()
                .filter_map(|t| {
                    let (k, n) = t.strip_prefix("SKIPPED(ethertype-")?.split_once(")=")?;
                    Some((k.to_string(), n.parse().ok()?))
                })
                .collect();
            Some((f.first()?.to_string(), (f.get(6)?.parse().ok()?, skipped)))
        })
        .collect();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut frames = 0u64;
    for p in &names {
        let fname = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut reports = Vec::new();
        for e in ENGINES {
            let o = nfc(&[
                "run",
                "pcap",
                "examples/server.nfr",
                p.to_str().unwrap(),
                "--local",
                "10.0.0.0/8",
                "192.168.0.0/16",
                "--json",
                "--engine",
                e,
            ]);
            let code = o.status.code();
            assert!(
                code == Some(0) || code == Some(2),
                "{} on {e}: exit {code:?}\n{}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            if code == Some(2) {
                // Only a capture nothing can be read from may fail.
                assert!(
                    String::from_utf8_lossy(&o.stderr).contains("no frame could be read")
                        || o.stdout.is_empty(),
                    "{}: {}",
                    p.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
                reports.push(String::new());
                continue;
            }
            let v: Value = serde_json::from_slice(&o.stdout).expect("json report");
            if e == "interp" {
                if let Some((n, eth)) = index.get(&fname) {
                    assert_eq!(
                        v["frames"].as_u64(),
                        Some(*n),
                        "{fname}: frames vs INDEX.tsv"
                    );
                    // Non-IP frames skipped by EtherType, as the kernel harness counted them.
                    let got: BTreeMap<String, u64> = v["skipped_ethertypes"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                                .collect()
                        })
                        .unwrap_or_default();
                    assert_eq!(&got, eth, "{fname}: skipped EtherTypes vs INDEX.tsv");
                }
                println!(
                    "{fname}: {} frames, {} through the hooks, skipped {} {}, dropped by ip_rcv {}",
                    v["frames"], v["packets"], v["skipped"], v["skipped_ethertypes"], v["not_seen"]
                );
                frames += v["frames"].as_u64().unwrap_or(0);
                if let Some(m) = v["skipped"].as_object() {
                    for (k, n) in m {
                        *skipped.entry(k.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
                    }
                }
                let ns = v["not_seen"].as_u64().unwrap_or(0);
                if ns > 0 {
                    *skipped.entry("ip_rcv-drop".into()).or_insert(0) += ns;
                }
            }
            let mut v = v;
            for k in [
                "time_s",
                "packets_per_s",
                "engine",
                "engine_note",
                "counters",
                "ruleset",
            ] {
                v[k] = Value::Null;
            }
            reports.push(v.to_string());
        }
        for w in reports.windows(2) {
            assert_eq!(w[0], w[1], "{}: engines disagree", p.display());
        }
    }
    println!(
        "{} captures, {frames} frames; not through the hooks by reason: {skipped:?}",
        names.len()
    );
    assert!(names.len() >= 60, "expected the corpus captures");
    assert!(
        names
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "pcapng")),
        "expected pcapng captures in the corpus"
    );
    assert!(
        index.len() >= names.len(),
        "INDEX.tsv should list every capture"
    );
}

/// Capped inter-packet gap from meta.json's timing field (seconds).
fn gap_cap(meta: &str) -> Option<String> {
    let i = meta.find("gap cap ")?;
    let rest = &meta[i + 8..];
    let j = rest.find('s')?;
    rest[..j].parse::<f64>().ok().map(|s| s.to_string())
}

fn expected_states(tsv: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut prev = String::new();
    for line in tsv.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut it = line.split('\t');
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            continue;
        };
        let label = if a == "+" {
            format!("+{prev}")
        } else {
            prev = a.to_string();
            a.to_string()
        };
        let st = if b.starts_with("SKIPPED") {
            "SKIPPED".to_string()
        } else {
            b.to_string()
        };
        out.push((label, st));
    }
    out
}

/// Per-frame states from `--trace --json` lines, labelled like the kernel harness.
fn cli_states(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in out.lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        let Some(n) = v["frame"].as_u64() else {
            continue;
        };
        let lab = n.to_string();
        if v.get("skipped").is_some() {
            m.insert(lab, "SKIPPED".to_string());
        } else if v["reassembled"] == Value::Bool(true) {
            m.insert(lab.clone(), "NOT_SEEN".to_string());
            m.insert(
                format!("+{lab}"),
                v["ct_state"].as_str().unwrap_or("NOT_SEEN").to_string(),
            );
        } else {
            m.insert(
                lab,
                v["ct_state"].as_str().unwrap_or("NOT_SEEN").to_string(),
            );
        }
    }
    m
}

/// `--json` output lines with the fields that legitimately change between runs (time, rate, thread count)
/// set to null.
fn json_lines_without_timing(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("one JSON object per line");
            let clear = |r: &mut Value| {
                if let Some(o) = r.as_object_mut() {
                    for k in ["time_s", "packets_per_s", "threads"] {
                        if let Some(x) = o.get_mut(k) {
                            *x = Value::Null;
                        }
                    }
                }
            };
            clear(&mut v);
            if let Some(r) = v.get_mut("report") {
                clear(r);
            }
            v
        })
        .collect()
}

fn path_input_reproduces_ct_expected_states(c: PathBuf) {
    let dir = c.join("ct-expected");
    let rules = tmp_ruleset("accept-input.nfr", ACCEPT_ALL);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".pkts.tsv").map(str::to_string))
        .collect();
    names.sort();
    let (mut ok, mut total, mut files) = (0usize, 0usize, 0usize);
    let mut bad = Vec::new();
    for name in &names {
        let pcap = c.join("pcaps").join(name);
        if !pcap.exists() {
            continue;
        }
        files += 1;
        let tsv = std::fs::read_to_string(dir.join(format!("{name}.pkts.tsv"))).unwrap();
        let meta =
            std::fs::read_to_string(dir.join(format!("{name}.meta.json"))).unwrap_or_default();
        let exp = expected_states(&tsv);
        let mut per_engine = Vec::new();
        for e in ENGINES {
            let mut a = vec![
                "run".to_string(),
                "pcap".into(),
                rules.to_str().unwrap().into(),
                pcap.to_str().unwrap().into(),
                "--path".into(),
                "input".into(),
                // The oracle's `tcp dport 21 ct helper set` without the rule (which iptables cannot write).
                "--ftp-ports".into(),
                "21".into(),
                "--trace".into(),
                "--json".into(),
                "--engine".into(),
                e.into(),
            ];
            if let Some(g) = gap_cap(&meta) {
                a.push("--gap-cap".into());
                a.push(g);
            }
            let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
            let o = nfc(&a);
            assert_eq!(o.status.code(), Some(0), "{name} {e}");
            let one = stdout(&o);
            // Two workers: the same per-packet lines and the same report (but for time and thread count).
            a.extend(["--threads", "2"]);
            let o = nfc(&a);
            assert_eq!(o.status.code(), Some(0), "{name} {e} --threads 2");
            assert_eq!(
                json_lines_without_timing(&one),
                json_lines_without_timing(&stdout(&o)),
                "{name} {e}: --threads 2 differs from --threads 1"
            );
            per_engine.push(cli_states(&one));
        }
        for (i, e) in ENGINES.iter().enumerate().skip(1) {
            assert_eq!(
                per_engine[0], per_engine[i],
                "{name}: interp and {e} disagree"
            );
        }
        let got = &per_engine[0];
        for (lab, st) in &exp {
            total += 1;
            let g = got.get(lab).map(String::as_str).unwrap_or("(none)");
            if g == st {
                ok += 1;
            } else {
                bad.push(format!("{name} frame {lab}: kernel {st}, nfc {g}"));
            }
        }
    }
    println!("ct-expected through the CLI: {ok}/{total} packet states agree over {files} captures");
    for b in bad.iter().take(20) {
        println!("  {b}");
    }
    assert!(files >= 40, "expected the ct-expected captures");
    assert_eq!(ok, total, "per-packet ct states differ from the kernel's");
}

// ---------------------------------------------------------------------------------------------------------
// pcapng interface names as devices.

/// An IPv4/UDP datagram with 4 bytes of payload (32 bytes).
fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    nfr_runtime::wire::build::udp(src.into(), dst.into(), sport, dport, b"ping")
}

/// Two sections whose interface ids name different interfaces (section 1: 0 = eth0, 1 = eth1; section 2:
/// 0 = eth1, 1 = eth0). The host is 10.0.0.1. Received: eth1 4 (1 + 3), eth0 2; sent: eth1 2, eth0 1.
fn two_section_pcapng() -> Vec<u8> {
    let host = [10, 0, 0, 1];
    let peer = |n: u8| [10, 0, 1, n];
    let mut f = ng::shb();
    f.extend(ng::idb(101, Some(b"eth0")));
    f.extend(ng::idb(101, Some(b"eth1")));
    let mut us = 1_000_000u64;
    let mut next = || {
        us += 1000;
        us
    };
    f.extend(ng::epb(1, next(), &ipv4_udp(peer(1), host, 1001, 53)));
    f.extend(ng::epb(0, next(), &ipv4_udp(peer(2), host, 1002, 53)));
    f.extend(ng::epb(0, next(), &ipv4_udp(peer(3), host, 1003, 53)));
    f.extend(ng::epb(1, next(), &ipv4_udp(host, peer(4), 2001, 53)));
    f.extend(ng::epb(1, next(), &ipv4_udp(host, peer(5), 2002, 53)));
    f.extend(ng::shb());
    f.extend(ng::idb(101, Some(b"eth1")));
    f.extend(ng::idb(101, Some(b"eth0")));
    for n in 6..9 {
        f.extend(ng::epb(
            0,
            next(),
            &ipv4_udp(peer(n), host, 1000 + u16::from(n), 53),
        ));
    }
    f.extend(ng::epb(1, next(), &ipv4_udp(host, peer(9), 2003, 53)));
    f
}

const BY_IFNAME: &str = "table ip filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname \"eth1\" counter accept
		iifname \"eth0\" counter accept
		counter
	}

	chain output {
		type filter hook output priority filter; policy accept;
		oifname \"eth1\" counter accept
		oifname \"eth0\" counter accept
		counter
	}
}
";

fn pcapng_interface_names_are_the_devices_on_every_engine() {
    let cap = tmp_ruleset("ifnames.pcapng", "");
    std::fs::write(&cap, two_section_pcapng()).unwrap();
    let rules = tmp_ruleset("by-ifname.nfr", BY_IFNAME);
    let (r, c) = (rules.to_str().unwrap(), cap.to_str().unwrap());
    // The counters when the capture's own interface names are the devices: (nft counter lines,
    // iptables-save -c lines).
    let by_capture_names = (
        [
            "\t\tiifname \"eth1\" counter packets 4 bytes 128 accept",
            "\t\tiifname \"eth0\" counter packets 2 bytes 64 accept",
            "\t\tcounter packets 0 bytes 0",
            "\t\toifname \"eth1\" counter packets 2 bytes 64 accept",
            "\t\toifname \"eth0\" counter packets 1 bytes 32 accept",
            "\t\tcounter packets 0 bytes 0",
        ],
        [
            "[4:128] -A INPUT -i eth1 -j ACCEPT",
            "[2:64] -A INPUT -i eth0 -j ACCEPT",
            "[0:0] -A INPUT",
            "[2:64] -A OUTPUT -o eth1 -j ACCEPT",
            "[1:32] -A OUTPUT -o eth0 -j ACCEPT",
            "[0:0] -A OUTPUT",
        ],
    );
    // (extra args, nft counter lines, iptables-save -c lines)
    let cases: [(&[&str], [&str; 6], [&str; 6]); 3] = [
        (&[], by_capture_names.0, by_capture_names.1),
        // --iif / --oif override the capture's names.
        (
            &["--iif", "eth0", "--oif", "eth9"],
            [
                "\t\tiifname \"eth1\" counter packets 0 bytes 0 accept",
                "\t\tiifname \"eth0\" counter packets 6 bytes 192 accept",
                "\t\tcounter packets 0 bytes 0",
                "\t\toifname \"eth1\" counter packets 0 bytes 0 accept",
                "\t\toifname \"eth0\" counter packets 0 bytes 0 accept",
                "\t\tcounter packets 3 bytes 96",
            ],
            [
                "[0:0] -A INPUT -i eth1 -j ACCEPT",
                "[6:192] -A INPUT -i eth0 -j ACCEPT",
                "[0:0] -A INPUT",
                "[0:0] -A OUTPUT -o eth1 -j ACCEPT",
                "[0:0] -A OUTPUT -o eth0 -j ACCEPT",
                "[3:96] -A OUTPUT",
            ],
        ),
        // ... and win over --iface routes too (a route would put every peer on eth0).
        (
            &["--iface", "eth0=0.0.0.0/0"],
            by_capture_names.0,
            by_capture_names.1,
        ),
    ];
    for (extra, nft, ipt) in cases {
        let mut summaries = Vec::new();
        for e in ENGINES {
            for threads in ["1", "2"] {
                let mut a = vec![
                    "run",
                    "pcap",
                    r,
                    c,
                    "--local",
                    "10.0.0.1",
                    "--engine",
                    e,
                    "--threads",
                    threads,
                ];
                a.extend_from_slice(extra);
                let o = nfc(&a);
                assert_eq!(o.status.code(), Some(0), "{e} {extra:?}: {o:?}");
                let s = stdout(&o);
                assert!(
                    s.contains("frames: 9 (288 bytes); through the hooks: 9 (288 bytes)"),
                    "{s}"
                );
                let want: &[&str] = if e == "ipt" { &ipt } else { &nft };
                // Each expected line in order (the two chains list the same catch-all counter shape).
                let mut lines = s.lines();
                for w in want {
                    assert!(
                        lines.any(|l| l.trim_end() == *w),
                        "{e} {extra:?} threads {threads}: missing {w:?} (in order) in\n{s}"
                    );
                }
                summaries.push(summary_part(&s).replace("thread(s)", ""));
            }
        }
        for w in summaries.windows(2) {
            assert_eq!(
                stable(&w[0])
                    .lines()
                    .filter(|l| !l.contains("thread"))
                    .collect::<Vec<_>>(),
                stable(&w[1])
                    .lines()
                    .filter(|l| !l.contains("thread"))
                    .collect::<Vec<_>>(),
                "engines/threads disagree ({extra:?})"
            );
        }
    }
    // The trace names the devices: per frame (iif, oif) as the capture's sections give them.
    let want = [
        ("eth1", ""),
        ("eth0", ""),
        ("eth0", ""),
        ("", "eth1"),
        ("", "eth1"),
        ("eth1", ""),
        ("eth1", ""),
        ("eth1", ""),
        ("", "eth0"),
    ];
    for e in ENGINES {
        let o = nfc(&[
            "run", "pcap", r, c, "--local", "10.0.0.1", "--engine", e, "--trace", "--json",
        ]);
        let got: Vec<(String, String)> = stdout(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("frame").is_some())
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
                (s("iif"), s("oif"))
            })
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(i, o)| (i.to_string(), o.to_string()))
            .collect();
        assert_eq!(got, want, "{e}");
    }
}

fn interface_indexes_lo_is_one() {
    // `iif lo` compiles to ifindex 1: only the device called lo has it, whatever else is named first.
    let cap = tmp_ruleset("ifindex.pcapng", "");
    std::fs::write(&cap, two_section_pcapng()).unwrap();
    let rules = tmp_ruleset(
        "iif-lo.nfr",
        "table ip t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiif lo counter\n\t}\n}\n",
    );
    let (r, c) = (rules.to_str().unwrap(), cap.to_str().unwrap());
    for e in ["interp", "jit"] {
        for (extra, n) in [
            (&["--iface", "eth1=10.0.1.0/24"][..], 0),
            (&[][..], 0),
            (&["--iif", "lo"][..], 6),
        ] {
            let mut a = vec!["run", "pcap", r, c, "--local", "10.0.0.1", "--engine", e];
            a.extend_from_slice(extra);
            let o = nfc(&a);
            assert_eq!(o.status.code(), Some(0), "{o:?}");
            let want = format!("\t\tiif lo counter packets {n} bytes {}", n * 32);
            assert!(
                stdout(&o).lines().any(|l| l == want),
                "{e} {extra:?}: want {want:?} in\n{}",
                stdout(&o)
            );
        }
    }
}

fn device_types_follow_the_devices() {
    // `meta iiftype`/`oiftype` read the replay's device types: `lo` is loopback, the capture's
    // interfaces and every other named device Ethernet, no device none.
    let cap = tmp_ruleset("iftype.pcapng", "");
    std::fs::write(&cap, two_section_pcapng()).unwrap();
    let rules = tmp_ruleset(
        "iftype.nfr",
        "table ip t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tmeta iiftype ether counter\n\t\tmeta iiftype loopback counter\n\t}\n\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tmeta oiftype ether counter\n\t\tmeta oiftype loopback counter\n\t}\n}\n",
    );
    let (r, c) = (rules.to_str().unwrap(), cap.to_str().unwrap());
    for e in ["interp", "jit"] {
        // (extra args, packets per counter: iiftype ether, iiftype loopback, oiftype ether, oiftype loopback)
        for (extra, n) in [
            (&[][..], [6, 0, 3, 0]),
            (&["--iif", "lo", "--oif", "lo"][..], [0, 6, 0, 3]),
            (&["--iif", "ppp0"][..], [6, 0, 3, 0]),
        ] {
            let mut a = vec!["run", "pcap", r, c, "--local", "10.0.0.1", "--engine", e];
            a.extend_from_slice(extra);
            let o = nfc(&a);
            assert_eq!(o.status.code(), Some(0), "{o:?}");
            let s = stdout(&o);
            for (sel, n) in [
                ("iiftype ether", n[0]),
                ("iiftype loopback", n[1]),
                ("oiftype ether", n[2]),
                ("oiftype loopback", n[3]),
            ] {
                let want = format!("{sel} counter packets {n} bytes {}", n * 32);
                assert!(
                    s.lines().any(|l| l.trim_start().ends_with(&want)),
                    "{e} {extra:?}: want {want:?} in\n{s}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The progress bar: on stderr when it is a terminal, never on stdout.

/// A legacy pcap (raw IP) of `n` UDP datagrams to 10.0.0.1.
fn many_udp_pcap(n: u32) -> Vec<u8> {
    let mut f = pcap_header(linktype::RAW, 65535).to_vec();
    for i in 0..n {
        let p = ipv4_udp([10, 1, (i >> 8) as u8, i as u8], [10, 0, 0, 1], 1024, 53);
        let us = u64::from(1000 + i / 1000) * 1_000_000 + u64::from(i % 1000) * 1000;
        f.extend(pcap_record(us, 32, &p));
    }
    f
}

/// Ok when `script` (util-linux) can give a command a pseudo-terminal here.
fn pty() -> Result<(), String> {
    let probe = Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        Ok(())
    } else {
        Err(
            "`script` (util-linux) cannot run here: no pseudo-terminal to test the progress bar on"
                .into(),
        )
    }
}

fn progress_bar_on_a_terminal_stderr_only(_: ()) {
    // `script` (util-linux) gives the command a terminal; stdout is redirected to a file inside it.
    let cap = tmp_ruleset("many.pcap", "");
    std::fs::write(&cap, many_udp_pcap(3000)).unwrap();
    let args = format!(
        "run pcap examples/server.nfr {} --local 10.0.0.1",
        cap.display()
    );
    let plain = nfc(&args.split(' ').collect::<Vec<_>>());
    assert_eq!(plain.status.code(), Some(0));
    let plain = stable(&stdout(&plain));
    for (extra, bar) in [("", true), (" --no-progress", false)] {
        let out = tmp_ruleset(&format!("stdout{}.txt", bar as u8), "");
        let ts = tmp_ruleset(&format!("typescript{}.txt", bar as u8), "");
        let cmd = format!(
            "{} {args}{extra} > {}",
            env!("CARGO_BIN_EXE_nfc"),
            out.display()
        );
        let o = Command::new("script")
            .args(["-qec", &cmd, ts.to_str().unwrap()])
            .current_dir(root())
            .env("NO_COLOR", "1")
            .env("NFC_PROGRESS_DELAY_MS", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        // stdout is the same report as without a terminal.
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(stable(&got), plain, "stdout changed (bar: {bar})");
        // The terminal (stderr) shows the bar: bytes of the file size and frames.
        let term = std::fs::read_to_string(&ts).unwrap();
        let size = std::fs::metadata(&cap).unwrap().len();
        let shown = term.contains(" frames (") && term.contains("KiB/");
        assert_eq!(
            shown, bar,
            "bar expected: {bar} (file {size} bytes); terminal:\n{term}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Errors and edge cases.

/// `--sysctl` sets a conntrack sysctl by its kernel name; a bad one is an operational error that says why.
fn sysctls_change_conntrack_like_the_kernels() {
    assert!(example_cases_available(), "examples/*.pcap missing");
    let timeouts = |extra: &[&str]| -> Vec<u64> {
        let mut a = vec![
            "run",
            "pcap",
            "examples/server.nfr",
            "examples/server.pcap",
            "--local",
            "203.0.113.1",
            "--ct-list",
        ];
        a.extend_from_slice(extra);
        let o = nfc(&a);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        stdout(&o)
            .lines()
            .filter(|l| l.starts_with("tcp ") && l.contains(" ESTABLISHED "))
            .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
            .collect()
    };
    // ESTABLISHED entries time out after 5 days (432000 s), unless data is unacknowledged (300 s).
    let default = timeouts(&[]);
    assert!(default.iter().any(|t| *t > 400_000), "{default:?}");
    let short = timeouts(&[
        "--sysctl",
        "net.netfilter.nf_conntrack_tcp_timeout_established=3600",
    ]);
    assert_eq!(short.len(), default.len());
    for (d, s) in default.iter().zip(&short) {
        if *d > 400_000 {
            assert!(*s <= 3600 && *s > 3000, "{default:?} -> {short:?}");
        } else {
            assert_eq!(d, s, "only the established timeout changed");
        }
    }
    for bad in [
        "nf_conntrack_maxx=1",
        "nf_conntrack_tcp_loose=2",
        "nf_conntrack_max",
    ] {
        let o = run_server(&["--sysctl", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--sysctl"), "{bad}: {err}");
    }
}

/// Named counter objects: every `counter name "web"` adds to the object, whose body lists the run's totals
/// (initial values included) as `nft list ruleset` does; JSON names the object. Interp and jit agree.
fn named_counters_list_their_totals() {
    assert!(example_cases_available(), "examples/*.pcap missing");
    let rules = tmp_ruleset(
        "named-counters.nfr",
        "table inet filter {\n\tcounter web {\n\t\tpackets 10 bytes 1000\n\t}\n\tcounter ssh {\n\t}\n\
         \tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\
         \t\ttcp dport 80 counter name \"web\" accept\n\t\ttcp dport 443 counter name web accept\n\
         \t\ttcp dport 22 counter name \"ssh\"\n\t\tcounter\n\t}\n}\n",
    );
    let r = rules.to_str().unwrap();
    let mut listings = Vec::new();
    for e in ["interp", "jit"] {
        let args = [
            "run",
            "pcap",
            r,
            "examples/server.pcap",
            "--local",
            "203.0.113.1",
            "--engine",
            e,
        ];
        let o = nfc(&args);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        let out = stdout(&o);
        let listing = out[out.find("table inet filter").unwrap()..].to_string();
        // server.pcap: 6 packets (258 bytes) to ports 80/443 on top of the initial 10/1000, 8 to port 22.
        for want in [
            "\tcounter web {\n\t\tpackets 16 bytes 1258\n\t}",
            "\tcounter ssh {\n\t\tpackets 8 bytes 336\n\t}",
            "\t\ttcp dport 443 counter name \"web\" accept",
        ] {
            assert!(listing.contains(want), "{e}: {want:?} in\n{listing}");
        }
        listings.push(listing);
        let mut a = args.to_vec();
        a.push("--json");
        let v: Value = serde_json::from_str(&stdout(&nfc(&a))).unwrap();
        assert_eq!(
            v["counters"][0],
            serde_json::json!({"object": "web", "table": "filter", "packets": 16, "bytes": 1258})
        );
    }
    assert_eq!(listings[0], listings[1]);
}

/// The listing is the ruleset as the checker resolved it, as `nft list ruleset` prints it: a define's value where
/// it is used, printed in its selector's type (ports as numbers, interface names quoted, set elements sorted), a
/// define priority as nft names it, a `$` in a comment left alone, a concatenation's `.` kept, and the rules of
/// an included file listed with their counters. Interp and jit agree.
fn listing_shows_what_the_checker_resolved() {
    assert!(example_cases_available(), "examples/*.pcap missing");
    let dir = common::tmp_dir("listing");
    let main = dir.join("main.nfr");
    std::fs::write(
        &main,
        "define web = { https, http }\ndefine lan = 10.0.0.0/8\ndefine dev = eth1\ndefine prio = 10\n\
         define m = 0x1 | 0x2\ntable inet t {\n\tchain input {\n\
         \t\ttype filter hook input priority $prio; policy accept;\n\
         \t\ttcp dport $web counter comment \"from $lan\"\n\t\tiifname != $dev counter\n\
         \t\tiifname { $dev, \"x\" } counter\n\
         \t\tiifname . tcp dport { \"eth0\" . 22, \"eth1\" . 80 } counter\n\
         \t\tip saddr { 192.168.0.0/16, $lan } counter\n\t\tmeta mark & $m == 0x3 counter\n\t}\n}\n\
         include \"more.nfr\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("more.nfr"),
        "add rule inet t input tcp dport 22 counter accept\n",
    )
    .unwrap();
    let mut listings = Vec::new();
    for e in ["interp", "jit"] {
        let args = [
            "run",
            "pcap",
            main.to_str().unwrap(),
            "examples/server.pcap",
            "--local",
            "203.0.113.1",
            "--engine",
            e,
        ];
        let o = nfc(&args);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        let out = stdout(&o);
        let listing = out[out.find("table inet t").unwrap()..].to_string();
        // server.pcap: 6 packets (258 bytes) to ports 80/443, 8 (336 bytes) to port 22.
        for want in [
            "\t\ttype filter hook input priority filter + 10; policy accept;",
            "\t\ttcp dport { 80, 443 } counter packets 6 bytes 258 comment \"from $lan\"",
            "\t\tiifname != \"eth1\" counter packets 20 bytes 859",
            "\t\tiifname { \"eth1\", \"x\" } counter packets 0 bytes 0",
            "\t\tiifname . tcp dport { \"eth0\" . 22, \"eth1\" . 80 } counter packets 0 bytes 0",
            "\t\tip saddr { 10.0.0.0/8, 192.168.0.0/16 } counter packets 0 bytes 0",
            "add rule inet t input tcp dport 22 counter packets 8 bytes 336 accept",
        ] {
            assert!(
                listing.lines().any(|l| l == want),
                "{e}: {want:?} in\n{listing}"
            );
        }
        // The define's expression stays one operand of `&`.
        assert!(!listing.contains("meta mark & 0x1 | 0x02"), "{listing}");
        assert!(!listing.contains("include"), "{listing}");
        listings.push(listing);
        // JSON names each counter's rule as written.
        let mut a = args.to_vec();
        a.push("--json");
        let v: Value = serde_json::from_str(&stdout(&nfc(&a))).unwrap();
        assert_eq!(
            v["counters"][6],
            serde_json::json!({"chain": "inet t input", "rule": "tcp dport 22 counter accept", "packets": 8, "bytes": 336})
        );
    }
    assert_eq!(listings[0], listings[1]);
}

fn exit_codes() {
    // Diagnostics in the ruleset: 1.
    let o = nfc(&["run", "pcap", "examples/broken.nfr", "examples/server.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    // Missing capture: 2.
    let o = nfc(&["run", "pcap", "examples/server.nfr", "/nonexistent.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    // Not a capture: 2.
    let o = nfc(&["run", "pcap", "examples/server.nfr", "examples/server.nfr"]);
    assert_eq!(o.status.code(), Some(2));
}

fn truncated_capture_reports_what_was_read() {
    let src = std::fs::read(root().join("examples/server.pcap")).expect("examples/server.pcap");
    // Cut in the middle of the 11th record.
    let mut off = 24usize;
    for _ in 0..10 {
        let caplen = u32::from_le_bytes(src[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
    }
    let cut = tmp_ruleset("cut.pcap", "");
    std::fs::write(&cut, &src[..off + 20]).unwrap();
    let o = nfc(&[
        "run",
        "pcap",
        "examples/server.nfr",
        cut.to_str().unwrap(),
        "--local",
        "203.0.113.1",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("capture ends early"), "{err}");
    assert!(stdout(&o).contains("frames: 10 "), "{}", stdout(&o));
}

fn written_pcaps_split_the_capture() {
    let dir = common::tmp_dir("written");
    let acc = dir.join("acc.pcap");
    let drp = dir.join("drop.pcap");
    let o = run_server(&[
        "--local",
        "203.0.113.1",
        "--write-accepted",
        acc.to_str().unwrap(),
        "--write-dropped",
        drp.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let s = stdout(&o);
    assert!(s.contains("wrote 21 accepted packet(s)"), "{s}");
    assert!(s.contains("wrote 6 dropped packet(s)"), "{s}");
    // The written files are captures nfc reads back, with the same frame counts.
    for (f, n) in [(&acc, 21), (&drp, 6)] {
        let o = nfc(&[
            "run",
            "pcap",
            "examples/server.nfr",
            f.to_str().unwrap(),
            "--local",
            "203.0.113.1",
        ]);
        assert!(
            stdout(&o).contains(&format!("frames: {n} ")),
            "{}",
            stdout(&o)
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The example captures are generated deterministically.

#[path = "../examples/gen_captures.rs"]
mod gen_captures;

fn example_captures_regenerate_byte_identical() {
    let dir = common::tmp_dir("gen-captures");
    let names = gen_captures::write_all(&dir).unwrap();
    assert!(names.len() >= 2);
    for n in names {
        let fresh = std::fs::read(dir.join(&n)).unwrap();
        let committed = std::fs::read(root().join("examples").join(&n)).unwrap_or_else(|_| {
            panic!("examples/{n} missing: cargo run -p nfc --example gen_captures")
        });
        assert!(
            fresh == committed,
            "examples/{n} differs from what the generator writes: cargo run -p nfc --example gen_captures"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The kernel as the oracle: shared/oracle/kernel_verdicts.py replays the example capture through the
// hand-written iptables equivalent (testdata/ipt/server.ipt) in a private 3-namespace lab; verdicts, ct
// states, deciding rules and every rule/policy counter must equal `nfc run pcap`'s.

fn oracle() -> Result<PathBuf, String> {
    common::gate::oracle_script(
        "kernel_verdicts.py",
        &[
            "iptables-legacy-restore",
            "conntrack",
            "nft",
            "python3",
            "unshare",
        ],
    )
    .and_then(|script| {
        if Path::new("/proc/net/ip_tables_names").exists() {
            Ok(script)
        } else {
            Err("no legacy ip_tables in this kernel".to_string())
        }
    })
}

fn kernel_agrees_on_the_server_example(script: PathBuf) {
    let tmp = common::tmp_dir("kernel-verdicts");
    let out = tmp.join("out");
    let o = Command::new("python3")
        .arg(script)
        .arg(root().join("testdata/ipt/server.ipt"))
        .arg(root().join("examples/server.pcap"))
        .args([
            "-o",
            out.to_str().unwrap(),
            "--local",
            "203.0.113.1",
            "--local-stack",
            "quiet",
        ])
        .output()
        .expect("run kernel_verdicts.py");
    assert!(
        o.status.success(),
        "kernel_verdicts.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let k: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let kpk = k["packets"].as_array().unwrap();

    let mut ours = BTreeMap::new();
    for e in ENGINES {
        let o = run_server(&["--local", "203.0.113.1", "--engine", e, "--trace", "--json"]);
        assert_eq!(o.status.code(), Some(0));
        ours.insert(e, stdout(&o));
    }
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
    let mut agree = 0;
    for (e, text) in &ours {
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let frames: Vec<&Value> = lines.iter().filter(|v| v.get("frame").is_some()).collect();
        assert_eq!(frames.len(), kpk.len(), "{e}: frame count");
        for (f, kp) in frames.iter().zip(kpk) {
            let kv = match kp["outcome"].as_str().unwrap_or("") {
                "delivered-local" | "sent" | "forwarded" | "forwarded-modified" => "accept",
                _ => "drop",
            };
            assert_eq!(
                f["verdict"], kv,
                "{e} frame {}: verdict (kernel {kp})",
                f["frame"]
            );
            assert_eq!(
                f["ct_state"].as_str().unwrap_or("-"),
                ct_name(kp["ct"].as_str().unwrap_or("")),
                "{e} frame {}: ct state",
                f["frame"]
            );
            let path = kp["path"].as_str().unwrap_or("");
            let hooks = f["path"].as_array().unwrap();
            let want = match path {
                "input" => "input",
                "output" => "output",
                _ => "forward",
            };
            assert!(
                hooks.iter().any(|h| h == want),
                "{e} frame {}: path {path}",
                f["frame"]
            );
            if *e == "ipt" {
                // The deciding rule, in the kernel's own iptables-save words.
                let last = f["rules"]
                    .as_array()
                    .and_then(|r| r.last())
                    .cloned()
                    .unwrap_or(Value::Null);
                if let Some(rule) = kp["decided_by_rule"].as_str()
                    && rule.starts_with("-A")
                {
                    assert_eq!(last["rule"].as_str(), Some(rule), "frame {}", f["frame"]);
                }
            }
            agree += 1;
        }
    }
    // Final counters: every iptables rule and policy counter of the kernel equals ours (ipt engine), and the
    // nft counters of the interp/jit engines equal the kernel's for the rules that have `counter`.
    let report = |t: &str| -> Value {
        let last = t.lines().last().unwrap();
        serde_json::from_str::<Value>(last).unwrap()["report"].clone()
    };
    let ipt = report(&ours["ipt"]);
    let mut checked = 0;
    for kr in k["final"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .chain(k["final"]["policies"].as_array().unwrap())
    {
        let rule = kr["rule"].as_str().unwrap();
        let (pk, bk) = (kr["pkts"].as_u64().unwrap(), kr["bytes"].as_u64().unwrap());
        let mine = ipt["counters"].as_array().unwrap().iter().find(|c| {
            let r = c["rule"].as_str().unwrap_or("");
            r == rule
                || (rule.starts_with(':')
                    && rule.starts_with(&format!(":{} ", r.trim_end_matches(" policy"))))
        });
        let mine = mine.unwrap_or_else(|| panic!("no counter for kernel entry {rule}"));
        assert_eq!(
            (mine["packets"].as_u64(), mine["bytes"].as_u64()),
            (Some(pk), Some(bk)),
            "{rule}"
        );
        checked += 1;
    }
    let interp = report(&ours["interp"]);
    let nft: Vec<(u64, u64)> = interp["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["packets"].as_u64().unwrap(), c["bytes"].as_u64().unwrap()))
        .collect();
    let kr: Vec<(u64, u64)> = k["final"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["pkts"].as_u64().unwrap(), r["bytes"].as_u64().unwrap()))
        .collect();
    // server.nfr's counted rules are iptables rules 2, 3, 4, 5, 6 and 9 (the icmp set became rules 7 and 8).
    let want: Vec<(u64, u64)> = [1usize, 2, 3, 4, 5, 8].iter().map(|&i| kr[i]).collect();
    assert_eq!(nft, want, "nft counters vs the kernel's iptables counters");
    println!(
        "kernel oracle: {agree} packet verdicts/ct states (3 engines x {} frames) and {checked} kernel counters agree",
        kpk.len()
    );
}

fn main() {
    gate::run(vec![
        gate::test(
            "examples_exact_and_engines_agree",
            examples_exact_and_engines_agree,
        ),
        gate::test(
            "router_nat_rewrites_both_directions",
            router_nat_rewrites_both_directions,
        ),
        gate::test(
            "payload_writes_reach_the_packets_that_leave",
            payload_writes_reach_the_packets_that_leave,
        ),
        gate::test(
            "redirect_maps_to_the_input_interface_address",
            redirect_maps_to_the_input_interface_address,
        ),
        gate::test(
            "trace_json_one_object_per_frame_and_engines_agree",
            trace_json_one_object_per_frame_and_engines_agree,
        ),
        gate::test(
            "threads_two_prints_what_one_prints",
            threads_two_prints_what_one_prints,
        ),
        gate::test(
            "threads_two_warn_of_a_cut_capture_as_one_does",
            threads_two_warn_of_a_cut_capture_as_one_does,
        ),
        gate::test(
            "threads_share_a_long_capture_and_print_what_one_prints",
            threads_share_a_long_capture_and_print_what_one_prints,
        ),
        gate::test(
            "seed_repeats_and_changes_the_draws",
            seed_repeats_and_changes_the_draws,
        ),
        gate::needs(
            "threads_two_prints_what_one_prints_on_many_flows",
            || corpus("pcaps"),
            threads_two_prints_what_one_prints_on_many_flows,
        ),
        gate::needs(
            "corpus_pcaps_never_panic_on_any_engine",
            || corpus("pcaps"),
            corpus_pcaps_never_panic_on_any_engine,
        ),
        gate::needs(
            "path_input_reproduces_ct_expected_states",
            || corpus("ct-expected"),
            path_input_reproduces_ct_expected_states,
        ),
        gate::test(
            "pcapng_interface_names_are_the_devices_on_every_engine",
            pcapng_interface_names_are_the_devices_on_every_engine,
        ),
        gate::test("interface_indexes_lo_is_one", interface_indexes_lo_is_one),
        gate::test(
            "device_types_follow_the_devices",
            device_types_follow_the_devices,
        ),
        gate::test(
            "sysctls_change_conntrack_like_the_kernels",
            sysctls_change_conntrack_like_the_kernels,
        ),
        gate::test(
            "named_counters_list_their_totals",
            named_counters_list_their_totals,
        ),
        gate::needs(
            "progress_bar_on_a_terminal_stderr_only",
            pty,
            progress_bar_on_a_terminal_stderr_only,
        ),
        gate::test(
            "listing_shows_what_the_checker_resolved",
            listing_shows_what_the_checker_resolved,
        ),
        gate::test("exit_codes", exit_codes),
        gate::test(
            "truncated_capture_reports_what_was_read",
            truncated_capture_reports_what_was_read,
        ),
        gate::test(
            "written_pcaps_split_the_capture",
            written_pcaps_split_the_capture,
        ),
        gate::test(
            "example_captures_regenerate_byte_identical",
            example_captures_regenerate_byte_identical,
        ),
        gate::test(
            "host_answers_are_traced_and_counted",
            host_answers_are_traced_and_counted,
        ),
        gate::test(
            "profile_times_every_stage_and_changes_nothing_else",
            profile_times_every_stage_and_changes_nothing_else,
        ),
        gate::needs(
            "kernel_agrees_on_the_server_example",
            oracle,
            kernel_agrees_on_the_server_example,
        ),
    ]);
}

fn profile_times_every_stage_and_changes_nothing_else() {
    let stages = [
        "read",
        "parse, route, rest",
        "defrag",
        "conntrack",
        "chains",
        "report",
    ];
    for threads in ["1", "2"] {
        let base = ["--local", "203.0.113.1", "--threads", threads];
        let plain = run_server(&base);
        let o = run_server(&[&base[..], &["--profile"]].concat());
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        let line = out
            .lines()
            .find(|l| l.starts_with("profile (1 frame in 16 timed), per frame: "))
            .unwrap_or_else(|| panic!("no profile line in\n{out}"));
        for s in stages {
            assert!(line.contains(&format!("{s} ")), "{s} missing: {line}");
        }
        let without: String = stable(&out)
            .lines()
            .filter(|l| !l.starts_with("profile "))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(without, stable(&stdout(&plain)), "--threads {threads}");
        let j = run_server(&[&base[..], &["--profile", "--json"]].concat());
        let v: Value = serde_json::from_str(&stdout(&j)).expect("JSON report");
        let p = v["profile_ns_per_frame"]
            .as_object()
            .expect("profile_ns_per_frame");
        assert_eq!(p.len(), stages.len(), "{p:?}");
        assert!(
            p.values().all(|x| x.as_f64().is_some_and(|x| x >= 0.0)),
            "{p:?}"
        );
        assert!(
            p.values().filter_map(Value::as_f64).sum::<f64>() > 0.0,
            "{p:?}"
        );
    }
}

/// The host's answers in the text trace and the report: a forwarded packet with TTL 1 (dropped by ip_forward,
/// answered with time exceeded) and a rejected one (port unreachable), both answers leaving through OUTPUT; the
/// report counts them the same untraced.
fn host_answers_are_traced_and_counted() {
    let mut ttl1 = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], 1024, 99);
    ttl1[8] = 1;
    ttl1[10..12].fill(0);
    let sum: u32 = ttl1[..20]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ttl1[10..12].copy_from_slice(&sum.to_be_bytes());
    let dns = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], 1025, 53);
    let mut f = Vec::new();
    for x in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 101] {
        f.extend_from_slice(&x.to_le_bytes());
    }
    for (i, p) in [ttl1, dns].iter().enumerate() {
        for x in [1000, i as u32 * 1000, 32, 32] {
            f.extend_from_slice(&x.to_le_bytes());
        }
        f.extend_from_slice(p);
    }
    let cap = tmp_ruleset("answers.pcap", "");
    std::fs::write(&cap, f).unwrap();
    let rules = tmp_ruleset(
        "answers.nfr",
        "table ip t {\n\tchain f {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tudp dport 53 reject\n\t}\n\tchain o {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tcounter\n\t}\n}\n",
    );
    let run = |e: &str, trace: bool| {
        let mut args = vec![
            "run",
            "pcap",
            rules.to_str().unwrap(),
            cap.to_str().unwrap(),
            "--engine",
            e,
        ];
        if trace {
            args.push("--trace");
        }
        nfc(&args)
    };
    for e in ENGINES {
        let o = run(e, true);
        assert_eq!(o.status.code(), Some(0), "{e}");
        let out = stdout(&o);
        for want in [
            "  verdict ttl_exceeded at prerouting",
            "  host sends IP 192.0.0.8 > 10.1.0.1: ICMP type 11 code 0, length 40: hooks output -> postrouting",
            "  host sends IP 192.0.0.8 > 10.1.0.1: ICMP type 3 code 3, length 40: hooks output -> postrouting",
            "    verdict accept at postrouting",
            "sent by the host in reaction (reject answers, ICMP errors): 2, left 2, dropped 0",
        ] {
            assert!(out.contains(want), "{e}: no `{want}` in\n{out}");
        }
        // Untraced, the frames are only counted: the same count.
        let want =
            "sent by the host in reaction (reject answers, ICMP errors): 2, left 2, dropped 0";
        assert!(
            stdout(&run(e, false)).contains(want),
            "{e} untraced: no `{want}`"
        );
    }
}
