//! End-to-end tests of nfc's iptables commands: `compile --emit ipt|ipt-hex`, `verify`, `decompile`,
//! `import iptables-save` (round trip back to the same blob) and `load` (inside `unshare -n`; skips without
//! root/unshare/iptables-legacy-save, fails instead when `NFC_REQUIRE_ORACLE=1`).

mod common;

use common::{gate, nfc, root, stdout};
use std::path::Path;
use std::process::Output;

fn tmp(name: &str) -> common::TmpDir {
    common::tmp_dir(&format!("ipt-cli-{name}"))
}

/// The blobs iptables would build from a hand-written iptables-save file, by table name.
fn want_blobs(ipt: &str) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(root().join(ipt)).unwrap();
    nfr_ipt::parse_save(&text)
        .unwrap()
        .iter()
        .map(|t| (t.name.clone(), nfr_ipt::encode(t).unwrap()))
        .collect()
}

/// `nfc compile SRC --emit ipt -o PREFIX`, which must succeed; returns its output.
fn emit_ipt(src: &str, prefix: &Path) -> Output {
    let o = nfc(&[
        "compile",
        src,
        "--emit",
        "ipt",
        "-o",
        prefix.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{src}: {o:?}");
    o
}

fn compile_emit_ipt_writes_one_blob_per_table() {
    let d = tmp("emit");
    let prefix = d.join("router");
    let o = emit_ipt("examples/router.nfr", &prefix);
    let out = stdout(&o);
    assert!(
        out.contains("router.filter.replace.bin: table filter (13 entries, 3048 bytes)"),
        "{out}"
    );
    assert!(
        out.contains("router.nat.replace.bin: table nat (7 entries, 1192 bytes)"),
        "{out}"
    );
    for (name, blob) in want_blobs("testdata/ipt/router.ipt") {
        let got = std::fs::read(d.join(format!("router.{name}.replace.bin"))).unwrap();
        assert_eq!(got, blob, "{name}");
    }
    // --table picks one (by iptables or nft name)
    let p2 = d.join("only");
    let o = nfc(&[
        "compile",
        "examples/router.nfr",
        "--emit",
        "ipt",
        "--table",
        "nat",
        "-o",
        p2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(d.join("only.nat.replace.bin").exists());
    assert!(!d.join("only.filter.replace.bin").exists());
}

fn unmappable_ruleset_is_diagnosed() {
    let o = nfc(&[
        "compile",
        "examples/sets.nfr",
        "--emit",
        "ipt",
        "--color",
        "never",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("[E0700] Error: inet tables have no iptables equivalent"),
        "{err}"
    );
    assert!(err.contains("named sets and maps"), "{err}");
}

fn hex_dump_annotates_entries() {
    let o = nfc(&["compile", "examples/server.nfr", "--emit", "ipt-hex"]);
    assert!(o.status.success(), "{o:?}");
    let s = stdout(&o);
    assert!(
        s.starts_with("# table filter valid_hooks 0x0e num_entries 13 size "),
        "{s}"
    );
    assert!(
        s.contains("@0      entry 0: INPUT rule 1 (target_offset 112, next_offset 152)"),
        "{s}"
    );
    assert!(s.contains("in \"lo\""), "{s}");
    assert!(s.contains("match multiport rev 1 size 80"), "{s}");
    assert!(s.contains("match limit rev 0 size 72"), "{s}");
    assert!(s.contains("target standard DROP rev 0 size 40"), "{s}");
    assert!(s.contains("target ERROR \"ERROR\" rev 0 size 64"), "{s}");
}

fn verify_and_decompile() {
    let d = tmp("verify");
    let prefix = d.join("c");
    emit_ipt("examples/chains.nfr", &prefix);
    let blob = d.join("c.filter.replace.bin");
    let b = blob.to_str().unwrap();
    let o = nfc(&["verify", b]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).contains(
            "OK: table filter valid_hooks 0x0e, 21 entries, 3560 bytes, 3 user chains, jump stack 4"
        ),
        "{}",
        stdout(&o)
    );
    // a broken blob: the jump of INPUT rule 2 aimed 8 bytes into its target (not an entry start): the kernel
    // (mark_source_chains, xt_find_jump_offset) answers ELOOP
    let mut bytes = std::fs::read(&blob).unwrap();
    let t = nfr_ipt::decode(&bytes).unwrap();
    let off = 96 + nfr_ipt::entry_map(&t)[1].offset as usize;
    let to = u16::from_le_bytes([bytes[off + 88], bytes[off + 89]]) as usize;
    let v = off + to + 32;
    let cur = i32::from_le_bytes(bytes[v..v + 4].try_into().unwrap());
    bytes[v..v + 4].copy_from_slice(&(cur + 8).to_le_bytes());
    let bad = d.join("bad.bin");
    std::fs::write(&bad, &bytes).unwrap();
    let o = nfc(&["verify", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stdout(&o).contains("rejected: ELOOP (errno 40)"),
        "{}",
        stdout(&o)
    );
    // decompile: iptables-save text equals the hand-written file's
    let o = nfc(&["decompile", b]);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(root().join("testdata/ipt/chains.ipt")).unwrap();
    let want = nfr_ipt::save(&nfr_ipt::parse_save(&text).unwrap()[0], false);
    assert_eq!(stdout(&o), want);
    // ... and as .nfr, which checks
    let o = nfc(&["decompile", b, "--format", "nfr"]);
    assert!(o.status.success(), "{o:?}");
    let nfr = d.join("back.nfr");
    std::fs::write(&nfr, stdout(&o)).unwrap();
    assert!(
        stdout(&o).contains("\t\tiifname \"eth1\" goto from_lan\n"),
        "{}",
        stdout(&o)
    );
    let o = nfc(&["check", nfr.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
}

fn import_iptables_save_round_trips_to_the_same_blobs() {
    let d = tmp("import");
    let mut n = 0;
    for name in ["chains", "features", "marks", "router", "server"] {
        let ipt = format!("testdata/ipt/{name}.ipt");
        let o = nfc(&["import", "iptables-save", &ipt]);
        assert!(o.status.success(), "{o:?}");
        let nfr = d.join(format!("{name}.nfr"));
        std::fs::write(&nfr, stdout(&o)).unwrap();
        let o = nfc(&["check", nfr.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {o:?}");
        let prefix = d.join(name);
        emit_ipt(nfr.to_str().unwrap(), &prefix);
        for (t, blob) in want_blobs(&ipt) {
            let got = std::fs::read(d.join(format!("{name}.{t}.replace.bin"))).unwrap();
            assert_eq!(got, blob, "{name} {t}");
            n += 1;
        }
    }
    assert_eq!(n, 8);
    let o = nfc(&["import", "iptables-save", "examples/router.nfr"]);
    assert_eq!(o.status.code(), Some(2));
}

fn load_installs_the_tables_in_a_private_netns(_: ()) {
    let script = format!(
        "'{}' load examples/router.nfr && iptables-legacy-save -t filter && iptables-legacy-save -t nat",
        env!("CARGO_BIN_EXE_nfc")
    );
    let o = common::unshare_n(["sh", "-c", &script]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains(
            "table filter: IPT_SO_SET_REPLACE -> OK (13 entries, 3048 bytes; replaced 4 entries)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "table nat: IPT_SO_SET_REPLACE -> OK (7 entries, 1192 bytes; replaced 5 entries)"
        ),
        "{out}"
    );
    let text = std::fs::read_to_string(root().join("testdata/ipt/router.ipt")).unwrap();
    for t in nfr_ipt::parse_save(&text).unwrap() {
        for line in nfr_ipt::save(&t, false)
            .lines()
            .filter(|l| l.starts_with("-A ") || l.starts_with(':'))
        {
            assert!(out.contains(line), "missing `{line}` in\n{out}");
        }
    }
    // loading again replaces the table (the old entries' counters come back and are dropped)
    let script = format!(
        "'{0}' load examples/server.nfr && '{0}' load examples/server.nfr",
        env!("CARGO_BIN_EXE_nfc")
    );
    let o = common::unshare_n(["sh", "-c", &script]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).contains("(13 entries, 3120 bytes; replaced 13 entries)"),
        "{}",
        stdout(&o)
    );
}

fn main() {
    gate::run(vec![
        gate::test(
            "compile_emit_ipt_writes_one_blob_per_table",
            compile_emit_ipt_writes_one_blob_per_table,
        ),
        gate::test(
            "unmappable_ruleset_is_diagnosed",
            unmappable_ruleset_is_diagnosed,
        ),
        gate::test("hex_dump_annotates_entries", hex_dump_annotates_entries),
        gate::test("verify_and_decompile", verify_and_decompile),
        gate::test(
            "import_iptables_save_round_trips_to_the_same_blobs",
            import_iptables_save_round_trips_to_the_same_blobs,
        ),
        gate::needs(
            "load_installs_the_tables_in_a_private_netns",
            || gate::netns_tool("iptables-legacy-save"),
            load_installs_the_tables_in_a_private_netns,
        ),
    ]);
}
