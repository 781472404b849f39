//! Hostile inputs through the `nfc` binary, each generated small here: the bound it hits, the exit code and the
//! message, and that the output stays small. Also source loading: `-` as standard input, `include` wildcards
//! and `-I` directories.

mod common;

use std::io::Write as _;
use std::process::{Output, Stdio};

use common::{nfc, nfc_command, tmp_dir};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `nfc ARGS` with `input` on standard input.
fn nfc_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = nfc_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nfc");
    let mut sin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // a writer thread: nfc may stop reading early (size cap) and the pipe must not block the test
    let w = std::thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait nfc");
    let _ = w.join();
    out
}

const RULESET: &str = "table ip t {\n chain c {\n  type filter hook input priority 0;\n  tcp dport 22 accept\n }\n}\n";

#[test]
fn include_of_a_device_is_refused_not_read() {
    let d = tmp_dir("inc-dev");
    let f = d.join("z.nfr");
    std::fs::write(&f, "include \"/dev/zero\"\n").unwrap();
    let o = nfc(&["check", f.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("cannot read include file `/dev/zero`: not a regular file"),
        "{e}"
    );
}

#[test]
fn include_of_a_fifo_is_refused_without_blocking() {
    let d = tmp_dir("inc-fifo");
    let fifo = d.join("pipe");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("mkfifo unavailable; skipped");
        return;
    }
    let f = d.join("f.nfr");
    std::fs::write(&f, "include \"pipe\"\n").unwrap();
    let o = nfc(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

#[test]
fn a_root_file_past_the_size_cap_is_an_operational_error() {
    // /dev/zero never ends: read up to the 64 MiB cap, then refused
    let o = nfc(&["check", "/dev/zero"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("/dev/zero is larger than 67108864 bytes, the limit for one file"),
        "{e}"
    );
    assert!(e.len() < 200, "{e}");
}

#[test]
fn dash_reads_the_ruleset_from_standard_input() {
    let o = nfc_stdin(&["check", "-"], RULESET.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("<stdin>: ok"), "{}", stderr(&o));
    let o = nfc_stdin(
        &["check", "-"],
        b"table ip t {\n chain c {\n  tcp dport 70000 accept\n }\n}\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("<stdin>:3:"), "{}", stderr(&o));
    let o = nfc_stdin(&["fmt", "-"], RULESET.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("tcp dport 22 accept"));
}

#[test]
fn include_wildcards_and_include_path() {
    let d = tmp_dir("inc-glob");
    std::fs::create_dir_all(d.join("rules.d")).unwrap();
    std::fs::create_dir_all(d.join("lib")).unwrap();
    // alphabetical order: a.nft defines p, b.nft redefines it
    std::fs::write(d.join("rules.d/b.nft"), "redefine p = 23\n").unwrap();
    std::fs::write(d.join("rules.d/a.nft"), "define p = 22\n").unwrap();
    std::fs::write(d.join("rules.d/.hidden.nft"), "garbage\n").unwrap();
    std::fs::write(d.join("lib/q.nft"), "define q = 80\n").unwrap();
    let main = d.join("main.nfr");
    std::fs::write(
        &main,
        "include \"rules.d/*.nft\"\ninclude \"empty.d/*\"\ninclude \"q.nft\"\n\
         table ip t {\n chain c {\n  type filter hook input priority 0;\n  tcp dport { $p, $q } accept\n }\n}\n",
    )
    .unwrap();
    // without -I, `q.nft` is looked for beside main.nfr only
    let o = nfc(&["check", main.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("q.nft"), "{}", stderr(&o));
    let lib = d.join("lib");
    let o = nfc(&[
        "compile",
        "-I",
        lib.to_str().unwrap(),
        main.to_str().unwrap(),
        "--emit",
        "bytecode",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = nfc(&[
        "--includepath",
        lib.to_str().unwrap(),
        "check",
        main.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn exponential_includes_stop_at_the_include_count() {
    // each level includes the next twice: 2^15 includes within the depth limit
    let d = tmp_dir("inc-bomb");
    for i in 0..15 {
        std::fs::write(
            d.join(format!("l{i}.nft")),
            format!("include \"l{}.nft\"\ninclude \"l{}.nft\"\n", i + 1, i + 1),
        )
        .unwrap();
    }
    std::fs::write(d.join("l15.nft"), "# leaf\n").unwrap();
    let o = nfc(&[
        "check",
        "--max-errors",
        "0",
        d.join("l0.nft").to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(e.contains("more than 4096 includes in one ruleset"), "{e}");
    assert_eq!(e.matches("[E0002]").count(), 1, "{e}");
}

fn chain_with(body: &str) -> String {
    format!("table ip t {{\n chain c {{\n  type filter hook input priority 0;\n{body} }}\n}}\n")
}

#[test]
fn a_long_line_is_cut_around_the_caret() {
    // 1 MB of blanks before the mistake on one line
    let d = tmp_dir("long-line");
    let f = d.join("long.nfr");
    let pad = " ".repeat(1 << 20);
    std::fs::write(&f, chain_with(&format!("{pad}tcp dport 99999 accept\n"))).unwrap();
    let o = nfc(&["check", f.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(e.len() < 1500, "{} bytes of stderr", e.len());
    // the real column, and the line cut with `…`
    assert!(
        e.contains(&format!("long.nfr:4:{} ]", (1 << 20) + 11)),
        "{e}"
    );
    assert!(e.contains("│ …    "), "{e}");
    assert!(e.contains("tcp dport 99999 accept\n"), "{e}");
}

#[test]
fn errors_are_capped_at_max_errors() {
    let d = tmp_dir("max-errors");
    let f = d.join("many.nfr");
    let body: String = (0..1000)
        .map(|i| format!("  tcp dport {} accept\n", 70000 + i))
        .collect();
    std::fs::write(&f, chain_with(&body)).unwrap();
    let o = nfc(&["check", f.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(e.matches("[E0200]").count(), 10, "{e}");
    assert!(
        e.contains(
            "... 990 more error(s) and 0 more warning(s) not shown (--max-errors 0 shows all)"
        ),
        "{e}"
    );
    assert!(e.contains("many.nfr: 1000 error(s), 0 warning(s)"), "{e}");
    let o = nfc(&["check", "--max-errors", "0", f.to_str().unwrap()]);
    assert_eq!(stderr(&o).matches("[E0200]").count(), 1000);
    let o = nfc(&[
        "check",
        "--max-errors",
        "3",
        "--format",
        "json",
        f.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"][0]["diagnostics"].as_array().unwrap().len(), 3);
    assert_eq!(v["files"][0]["not_shown"]["errors"], 997);
}

#[test]
fn a_bad_address_gives_no_follow_on_error() {
    let d = tmp_dir("follow-on");
    let f = d.join("addr.nfr");
    std::fs::write(&f, chain_with("  ip saddr 999.1.1.1 accept\n")).unwrap();
    let o = nfc(&["check", f.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(e.contains("invalid IPv4 address `999.1.1.1`"), "{e}");
    assert!(!e.contains("is not an address"), "{e}");
    assert!(e.contains("addr.nfr: 1 error(s)"), "{e}");
}

#[test]
fn a_nul_in_a_string_is_refused_and_never_echoed() {
    let d = tmp_dir("nul");
    let f = d.join("nul.nfr");
    std::fs::write(
        &f,
        chain_with("  iifname \"et\0h0\" accept\n  meta mark 0x\0 accept\n"),
    )
    .unwrap();
    let o = nfc(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!o.stderr.contains(&0), "raw NUL on stderr");
    assert!(!o.stderr.contains(&0x1b), "escape sequence on stderr");
    assert!(
        stderr(&o).contains("a string cannot contain a NUL byte"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn decompile_refuses_a_blob_the_verifier_rejects() {
    let d = tmp_dir("decompile");
    let prefix = d.join("c");
    let o = nfc(&[
        "compile",
        "examples/chains.nfr",
        "--emit",
        "ipt",
        "-o",
        prefix.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let mut blob = std::fs::read(d.join("c.filter.replace.bin")).unwrap();
    // ipt_replace.num_entries (after the 32-byte name and valid_hooks)
    blob[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
    let bad = d.join("bad.bin");
    std::fs::write(&bad, &blob).unwrap();
    let o = nfc(&["decompile", bad.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("rejected: "), "{e}");
    assert!(e.contains("not decompiled"), "{e}");
    assert!(o.stdout.is_empty());
}

/// A legacy pcap (little-endian, microseconds) with one 20-byte frame.
fn legacy_pcap(snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, snaplen, linktype] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    for w in [1u32, 0, 20, 20] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[3] = 20;
    ip[8] = 64;
    ip[9] = 6;
    b.extend_from_slice(&ip);
    b
}

fn run_capture(name: &str, bytes: &[u8]) -> Output {
    let d = tmp_dir(name);
    let f = d.join("cap.pcap");
    std::fs::write(&f, bytes).unwrap();
    nfc(&[
        "run",
        "pcap",
        "examples/server.nfr",
        f.to_str().unwrap(),
        "--no-progress",
    ])
}

#[test]
fn an_unsupported_linktype_is_named_by_its_value() {
    let o = run_capture("linktype", &legacy_pcap(65535, 147));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("unsupported-linktype 1 (linktype 147 1)"),
        "{out}"
    );
}

#[test]
fn snaplen_zero_is_read_with_a_warning() {
    let o = run_capture("snaplen", &legacy_pcap(0, 101));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the pcap header's snaplen is 0"),
        "{}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("frames: 1 "));
}

#[test]
fn a_pcapng_packet_on_an_undeclared_interface_names_the_id() {
    let mut b = Vec::new();
    let mut block = |ty: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
    };
    // SHB: byte-order magic, version 1.0, section length unknown
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(0x0a0d_0d0a, &shb);
    // IDB: LINKTYPE_RAW, snaplen 0
    block(1, &[101, 0, 0, 0, 0, 0, 0, 0]);
    // EPB on interface 3, four bytes of data
    let mut epb = Vec::new();
    for w in [3u32, 0, 0, 4, 4] {
        epb.extend_from_slice(&w.to_le_bytes());
    }
    epb.extend_from_slice(&[0x45, 0, 0, 4]);
    block(6, &epb);
    let o = run_capture("pcapng-iface", &b);
    let e = stderr(&o);
    assert!(
        e.contains("a packet on interface 3, but its section declares 1 interface(s)"),
        "{e}"
    );
}
