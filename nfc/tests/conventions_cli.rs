//! The habits users bring from nft, iptables, conntrack, tcpdump and diff, one test each: exit codes in
//! every `--help`, `fmt --check` as a unified diff, operational errors that say what is wrong (a capture
//! where the ruleset goes and the reverse, pcap errors in words with the magic number, non-UTF-8 input
//! at line:col, `--threads 0`, `--passes 0`, `nfc load` without CAP_NET_ADMIN), `run pcap --no-listing`,
//! and the checker refusing what the kernel refuses (`limit rate` overflow, a raw payload offset).

mod common;

use common::{gate, nfc, stdout};
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every subcommand's `--help` ends with what its exit codes mean.
fn every_help_says_the_exit_status() {
    for cmd in [
        &["check"][..],
        &["fmt"],
        &["compile"],
        &["verify"],
        &["decompile"],
        &["import", "iptables-save"],
        &["import", "classbench"],
        &["load"],
        &["run", "pcap"],
        &["bench"],
    ] {
        let mut a = cmd.to_vec();
        a.push("--help");
        let o = nfc(&a);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}");
        let out = stdout(&o);
        assert!(
            out.contains("Exit status: 0 ") && out.contains(", 2 operational error"),
            "nfc {} --help says no exit status:\n{out}",
            cmd.join(" ")
        );
    }
}

/// `nfc fmt --check` prints a unified diff (`---`/`+++` headers, `@@` hunks) and exits 1.
fn fmt_check_prints_a_unified_diff() {
    let f = common::tmp_file(
        "messy.nfr",
        "table ip t {\n  chain c {\n    tcp dport ssh accept\n  }\n}\n",
    );
    let o = nfc(&["fmt", "--check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let name = f.display().to_string();
    assert!(
        out.starts_with(&format!("--- {name}\n+++ {name} (canonical)\n@@ ")),
        "{out}"
    );
    assert!(out.contains("\n-    tcp dport ssh accept\n"), "{out}");
    assert!(out.contains("\n+\t\ttcp dport 22 accept\n"), "{out}");
    // The canonical form itself: no output, exit 0.
    let canonical = common::tmp_file("canonical.nfr", nfc(&["fmt", f.to_str().unwrap()]).stdout);
    let o = nfc(&["fmt", "--check", canonical.to_str().unwrap()]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), String::new()));
}

/// `--threads 0` and `--passes 0` are refused (exit 2) rather than taken as 1.
fn zero_threads_and_passes_are_errors() {
    let o = nfc(&[
        "run",
        "pcap",
        "examples/server.nfr",
        "examples/server.pcap",
        "--threads",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--threads"), "{}", stderr(&o));
    let o = nfc(&[
        "bench",
        "examples/server.nfr",
        "examples/server.pcap",
        "--passes",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--passes must be at least 1"),
        "{}",
        stderr(&o)
    );
}

/// `--no-listing` (alias `--summary`) prints the report without the ruleset listing.
fn no_listing_prints_the_report_alone() {
    let args = [
        "run",
        "pcap",
        "examples/server.nfr",
        "examples/server.pcap",
        "--local",
        "203.0.113.1",
    ];
    let full = stdout(&nfc(&args));
    assert!(full.contains("table ip filter {"), "{full}");
    for flag in ["--no-listing", "--summary"] {
        let mut a = args.to_vec();
        a.push(flag);
        let o = nfc(&a);
        assert_eq!(o.status.code(), Some(0));
        let short = stdout(&o);
        assert!(!short.contains("table ip filter"), "{short}");
        assert!(short.contains("verdicts (hook where"), "{short}");
    }
}

/// A capture given where the ruleset goes, and a ruleset where the capture goes, are named as such.
fn capture_and_ruleset_swapped_are_named() {
    let o = nfc(&["run", "pcap", "examples/server.pcap", "examples/server.nfr"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("examples/server.pcap is a pcap capture, not a ruleset"),
        "{}",
        stderr(&o)
    );
    let o = nfc(&["run", "pcap", "examples/server.nfr", "examples/server.nfr"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("examples/server.nfr: not a pcap or pcapng file: unknown magic 0x")
            && e.contains("a ruleset?"),
        "{e}"
    );
}

/// pcap errors are words with the magic number, never the reader's internal names.
fn pcap_errors_in_words() {
    let f = common::tmp_file(
        "junk.pcap",
        [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 9, 9, 9, 9],
    );
    let o = nfc(&["run", "pcap", "examples/server.nfr", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("not a pcap or pcapng file: unknown magic 0xefbeadde"),
        "{e}"
    );
    assert!(!e.contains("HeaderNotRecognized"), "{e}");
}

/// A ruleset that is not UTF-8 is reported at the line and column of the first bad byte.
fn non_utf8_ruleset_at_line_col() {
    let f = common::tmp_file(
        "latin1.nfr",
        b"table ip t {\n\tchain c {\n\t\tcounter \xff\n\t}\n}\n",
    );
    let o = nfc(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("{}:3:11: not UTF-8 text (byte 0xff)", f.display())),
        "{}",
        stderr(&o)
    );
}

/// `nfc load` without CAP_NET_ADMIN (here: as `nobody`) exits 2 and says it needs root.
fn load_without_cap_net_admin_exits_2(_: ()) {
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_nfc"))
        .args(["load", "examples/server.nfr"])
        .current_dir(common::root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run setpriv");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nfc load needs root (CAP_NET_ADMIN"),
        "{}",
        stderr(&o)
    );
}

/// The checker refuses what the kernel refuses: a limit whose rate and burst overflow 64 bits (nft:
/// "Value too large for defined data type"), and a raw payload whose offset is out of range (blamed on the
/// offset, not the length).
fn checker_refuses_limit_overflow_and_raw_offset() {
    let f = common::tmp_file(
        "gaps.nfr",
        "table ip t {\n\tchain c {\n\t\ttype filter hook input priority filter;\n\
         \t\tlimit rate 18446744073709551615/second accept\n\
         \t\tlimit rate 18446744073709551610/second accept\n\
         \t\tlimit rate 18446744074 bytes/second accept\n\
         \t\t@nh,4294967295,8 1 accept\n\t}\n}\n",
    );
    let o = nfc(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert_eq!(e.matches("limit rate too large").count(), 2, "{e}");
    assert!(
        e.contains(":4:3 ]") && e.contains(":6:3 ]") && !e.contains(":5:3 ]"),
        "{e}"
    );
    assert!(e.contains("Value too large for defined data type"), "{e}");
    assert!(
        e.contains("raw payload offset 4294967295 out of range"),
        "{e}"
    );
    assert!(!e.contains("length 8 out of range"), "{e}");
}

/// `nfc import iptables-save` as `iptables-restore-translate` names things: chains keep their names, rule
/// counters are kept, ICMP types are named; and every line it cannot import is reported in one run (exit 1).
fn import_iptables_save_keeps_names_and_counters() {
    let good = "*filter\n:INPUT DROP [10:600]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                :MY_CHAIN - [0:0]\n[3:180] -A INPUT -i lo -j ACCEPT\n\
                [7:420] -A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n\
                -A INPUT -p tcp -m tcp --dport 22 -j MY_CHAIN\n\
                -A MY_CHAIN -s 192.0.2.0/24 -j ACCEPT\nCOMMIT\n";
    let f = common::tmp_file("good.save", good);
    let o = nfc(&["import", "iptables-save", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "\tchain INPUT {\n\t\ttype filter hook input priority 0; policy drop;\n",
        "\t\tiifname \"lo\" counter packets 3 bytes 180 accept\n",
        "\t\ticmp type echo-request counter packets 7 bytes 420 accept\n",
        "\t\ttcp dport 22 jump MY_CHAIN\n",
        "\tchain MY_CHAIN {\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // What it prints checks clean.
    let nfr = common::tmp_file("good.nfr", &o.stdout);
    assert_eq!(
        nfc(&["check", nfr.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let bad = good.replace(
        "COMMIT",
        "-A INPUT -m recent --name x --rcheck --hitcount 2\n-A INPUT -m hashlimit --hashlimit-upto 5/sec -j ACCEPT\n\
         -A INPUT -m ttl --ttl-eq 3 -j DROP\nCOMMIT",
    );
    let f = common::tmp_file("bad.save", bad);
    let o = nfc(&["import", "iptables-save", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    let name = f.display();
    for want in [
        format!("{name}:10: INPUT rule 4: -m recent --name x: --hitcount 2 has no nft form"),
        format!("{name}:11: unsupported match `hashlimit`"),
        format!("{name}:12: INPUT rule 5: -m ttl"),
    ] {
        assert!(e.contains(&want), "missing {want:?} in:\n{e}");
    }
    assert_eq!(stdout(&o), "");
}

/// `nfc run pcap ARGS --no-listing` on the FTP example, stdout.
fn ftp(args: &[&str]) -> String {
    let mut a = vec![
        "run",
        "pcap",
        "examples/ftp.nfr",
        "examples/ftp.pcap",
        "--local",
        "203.0.113.1",
        "--no-listing",
    ];
    a.extend_from_slice(args);
    let o = nfc(&a);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

/// `--ct-events` prints `conntrack -E` lines (type right-aligned in nine columns, timeout, state, both tuples,
/// `[UNREPLIED]`, `[ASSURED]`), only the kernel's event types, one event per entry and packet.
fn ct_events_in_conntrack_e_format() {
    let out = ftp(&["--ct-events"]);
    let events: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("event frame "))
        .collect();
    assert_eq!(
        events[0],
        "event frame 1:     [NEW] tcp      6 120 SYN_SENT src=198.51.100.7 dst=203.0.113.1 sport=40100 dport=21 \
         [UNREPLIED] src=203.0.113.1 dst=198.51.100.7 sport=21 dport=40100"
    );
    assert_eq!(
        events[1],
        "event frame 2:  [UPDATE] tcp      6 60 SYN_RECV src=198.51.100.7 dst=203.0.113.1 sport=40100 dport=21 \
         src=203.0.113.1 dst=198.51.100.7 sport=21 dport=40100"
    );
    assert_eq!(
        events[2],
        "event frame 3:  [UPDATE] tcp      6 432000 ESTABLISHED src=198.51.100.7 dst=203.0.113.1 sport=40100 \
         dport=21 src=203.0.113.1 dst=198.51.100.7 sport=21 dport=40100 [ASSURED]"
    );
    for l in &events {
        let kind = l.split(": ").nth(1).unwrap().trim_start();
        assert!(
            kind.starts_with("[NEW] ")
                || kind.starts_with("[UPDATE] ")
                || kind.starts_with("[DESTROY] "),
            "{l}"
        );
    }
    // One event per entry and packet: the SYN-ACKs (frames 2, 13, 20) once each.
    for f in ["2", "13", "20"] {
        let n = events
            .iter()
            .filter(|l| l.starts_with(&format!("event frame {f}:")))
            .count();
        assert_eq!(n, 1, "frame {f}: {events:#?}");
    }
    // The related data connections are NEW, as the kernel reports them.
    assert!(
        events
            .iter()
            .any(|l| l.starts_with("event frame 12:     [NEW] tcp")),
        "{events:#?}"
    );
}

/// Conntrack accounting follows the kernel's default (`nf_conntrack_acct=0`): no counters in `--ct-list`
/// unless `--sysctl nf_conntrack_acct=1`.
fn conntrack_accounting_as_the_kernel() {
    let off = ftp(&["--ct-list"]);
    let table = off
        .split("conntrack table")
        .nth(1)
        .expect("--ct-list table");
    assert!(!table.contains("packets="), "{table}");
    let on = ftp(&["--ct-list", "--sysctl", "nf_conntrack_acct=1"]);
    let table = on.split("conntrack table").nth(1).expect("--ct-list table");
    assert!(
        table.contains(" packets=") && table.contains(" bytes="),
        "{table}"
    );
}

/// `--trace` heads each frame as `tcpdump -n` does (flags `[S.]`, `[P.]`, `[F.]`; `length` the payload), and
/// names ct states as nft does (`ct state established ct direction reply`), also in the summary.
fn trace_in_tcpdump_and_nft_words() {
    let out = stdout(&nfc(&[
        "run",
        "pcap",
        "examples/server.nfr",
        "examples/server.pcap",
        "--local",
        "203.0.113.1",
        "--trace",
        "--no-listing",
    ]));
    for want in [
        "frame 2 IP 203.0.113.1.22 > 192.0.2.10.40001: Flags [S.], length 0\n  hooks output -> postrouting, \
         ct state established ct direction reply\n",
        "frame 4 IP 192.0.2.10.40001 > 203.0.113.1.22: Flags [P.], length 16\n  hooks prerouting -> input, \
         ct state established\n",
        "frame 1 IP 192.0.2.10.40001 > 203.0.113.1.22: Flags [S], length 0\n  hooks prerouting -> input, \
         ct state new\n",
        "frame 16 IP 198.51.100.30 > 203.0.113.1: ICMP type 8 code 0, length 25\n",
        "frame 23 IP 198.51.100.60.53000 > 203.0.113.1.53: UDP, length 12\n",
        "frame 25 IP 192.0.2.10.40001 > 203.0.113.1.22: Flags [F.], length 0\n",
        "ct state at prerouting/output: new 12, established 7, established ct direction reply 6, invalid 2\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("EST_REPLY"), "{out}");
}

/// Every frame's flags and length in the trace are what `tcpdump -nr` prints for it.
fn trace_flags_and_length_equal_tcpdumps(_: ()) {
    let ours = stdout(&nfc(&[
        "run",
        "pcap",
        "examples/server.nfr",
        "examples/server.pcap",
        "--trace",
        "--no-listing",
    ]));
    let theirs = std::process::Command::new("tcpdump")
        .args(["-nr", "examples/server.pcap"])
        .current_dir(common::root())
        .output()
        .expect("run tcpdump");
    let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
    let ours: Vec<&str> = ours.lines().filter(|l| l.starts_with("frame ")).collect();
    let theirs: Vec<&str> = theirs.lines().collect();
    assert_eq!(ours.len(), theirs.len());
    // `Flags [..]` and the final `length N` of TCP lines (tcpdump may decode the payload after it).
    let tcp = |l: &str| -> Option<(String, String)> {
        let f = l.split("Flags [").nth(1)?.split(']').next()?.to_string();
        let n = l.split(", length ").nth(1)?.split(':').next()?.to_string();
        Some((f, n))
    };
    for (o, t) in ours.iter().zip(&theirs) {
        if let Some(want) = tcp(t) {
            assert_eq!(tcp(o), Some(want), "\nours:    {o}\ntcpdump: {t}");
        }
    }
}

/// `--engine ipt` lists the tables as `iptables-save -c` does (policies `:INPUT DROP [p:b]`, rules
/// `[p:b] -A ...`), in that one format, which reads back (here with `nfc import iptables-save`, counters kept).
fn ipt_listing_is_iptables_save_c() {
    let out = stdout(&nfc(&[
        "run",
        "pcap",
        "examples/server.nfr",
        "examples/server.pcap",
        "--local",
        "203.0.113.1",
        "--engine",
        "ipt",
    ]));
    let listing = &out[out.find("*filter\n").expect("an iptables-save listing")..];
    assert!(listing.contains(":FORWARD DROP [1:40]\n"), "{listing}");
    assert!(
        listing.contains("[7:314] -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"),
        "{listing}"
    );
    assert!(listing.trim_end().ends_with("COMMIT"), "{listing}");
    assert!(
        !out.contains("Chain INPUT") && !out.contains("pkts"),
        "{out}"
    );
    let f = common::tmp_file("listing.save", listing);
    let o = nfc(&["import", "iptables-save", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("ct state established,related counter packets 7 bytes 314 accept"),
        "{}",
        stdout(&o)
    );
}

/// Rule handles in `--trace --json` are the ones `nft -a list ruleset` shows after `nft -f` of the same file:
/// one counter per table over its chains, objects, named sets, then rules, anonymous sets taking a handle
/// before their rule (the numbers below are nft 1.0's for the examples).
fn rule_handles_as_nft_a() {
    let handles = |args: &[&str]| -> Vec<(String, u64)> {
        let mut a = vec!["run", "pcap"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--trace", "--json", "--no-listing"]);
        let mut v: Vec<(String, u64)> = stdout(&nfc(&a))
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| Some((r["rule"].as_str()?.to_string(), r["handle"].as_u64()?)))
            .collect();
        v.sort_by_key(|(_, h)| *h);
        v.dedup();
        v
    };
    let server = handles(&[
        "examples/server.nfr",
        "examples/server.pcap",
        "--local",
        "203.0.113.1",
    ]);
    let h: Vec<u64> = server.iter().map(|(_, h)| *h).collect();
    assert_eq!(h, [5, 6, 7, 9, 10, 13], "{server:?}");
    let ftp = handles(&[
        "examples/ftp.nfr",
        "examples/ftp.pcap",
        "--local",
        "203.0.113.1",
    ]);
    let h: Vec<u64> = ftp.iter().map(|(_, h)| *h).collect();
    assert_eq!(h, [4, 6, 7, 9, 10], "{ftp:?}");
    let router = handles(&[
        "examples/router.nfr",
        "examples/router.pcap",
        "--iface",
        "eth1=192.168.1.1/24",
        "--iface",
        "eth0=198.51.100.1/24",
        "--iface",
        "eth0=0.0.0.0/0",
    ]);
    let h: Vec<u64> = router.iter().map(|(_, h)| *h).collect();
    assert_eq!(h, [3, 4, 8, 9, 10, 11, 12, 13], "{router:?}");
}

fn main() {
    gate::run(vec![
        gate::test(
            "every_help_says_the_exit_status",
            every_help_says_the_exit_status,
        ),
        gate::test(
            "fmt_check_prints_a_unified_diff",
            fmt_check_prints_a_unified_diff,
        ),
        gate::test(
            "zero_threads_and_passes_are_errors",
            zero_threads_and_passes_are_errors,
        ),
        gate::test(
            "no_listing_prints_the_report_alone",
            no_listing_prints_the_report_alone,
        ),
        gate::test(
            "capture_and_ruleset_swapped_are_named",
            capture_and_ruleset_swapped_are_named,
        ),
        gate::test("pcap_errors_in_words", pcap_errors_in_words),
        gate::test("non_utf8_ruleset_at_line_col", non_utf8_ruleset_at_line_col),
        gate::needs(
            "load_without_cap_net_admin_exits_2",
            || {
                gate::root()?;
                gate::have_tools(&["setpriv"])
            },
            load_without_cap_net_admin_exits_2,
        ),
        gate::test(
            "ct_events_in_conntrack_e_format",
            ct_events_in_conntrack_e_format,
        ),
        gate::test(
            "conntrack_accounting_as_the_kernel",
            conntrack_accounting_as_the_kernel,
        ),
        gate::test(
            "trace_in_tcpdump_and_nft_words",
            trace_in_tcpdump_and_nft_words,
        ),
        gate::needs(
            "trace_flags_and_length_equal_tcpdumps",
            || gate::have_tools(&["tcpdump"]),
            trace_flags_and_length_equal_tcpdumps,
        ),
        gate::test(
            "ipt_listing_is_iptables_save_c",
            ipt_listing_is_iptables_save_c,
        ),
        gate::test("rule_handles_as_nft_a", rule_handles_as_nft_a),
        gate::test(
            "import_iptables_save_keeps_names_and_counters",
            import_iptables_save_keeps_names_and_counters,
        ),
        gate::test(
            "checker_refuses_limit_overflow_and_raw_offset",
            checker_refuses_limit_overflow_and_raw_offset,
        ),
    ]);
}
