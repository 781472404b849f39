//! Kernel oracle tests: (a) for each ruleset in tests/data/*.ipt, `iptables-legacy-restore` in a
//! private network namespace, read the tables back with IPT_SO_GET_ENTRIES and check that
//! `encode(parse_save(text))` is byte-identical (comefrom and counters masked), that our
//! `verify` accepts the kernel's blob and computes the same comefrom, that `decode` gives back
//! the parsed table, that `save` prints what iptables-legacy-save prints, and that the kernel
//! accepts our own blob; (b) broken blobs pushed with IPT_SO_SET_REPLACE: `verify`'s errno
//! class must equal the kernel's.
//!
//! Ignored unless root + iptables-legacy + unshare work; with NFC_REQUIRE_ORACLE=1 that is a
//! failure.

#[path = "../../tests/gate.rs"]
mod gate;

mod common;

use common::{Rng, data_dir};
use nfr_ipt::blob::{mask_load_time_fields, walk_entries};
use nfr_ipt::kernel;
use nfr_ipt::layout::*;
use nfr_ipt::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// Ok when the kernel oracle can run (see `common::oracle`).
fn oracle() -> Result<(), String> {
    common::oracle("iptables-legacy-restore")
}

fn first_diff(a: &[u8], b: &[u8]) -> String {
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        let e = walk_entries(&a[96.min(a.len())..]).unwrap_or_default();
        let ent = e.iter().rfind(|e| 96 + e.offset <= i).map(|e| e.offset);
        format!(
            "first difference at blob byte {i} (entry {ent:?}): ours {:02x} kernel {:02x}",
            a[i], b[i]
        )
    } else {
        format!("lengths differ: ours {} kernel {}", a.len(), b.len())
    }
}

fn restore_and_read(text: String, tables: Vec<String>) -> Result<(Vec<Vec<u8>>, String), String> {
    kernel::with_private_netns(move || {
        let mut child = Command::new("iptables-legacy-restore")
            .arg("-w")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .ok_or("stdin")?
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "iptables-legacy-restore failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut blobs = Vec::new();
        for t in &tables {
            blobs.push(kernel::get_replace_blob(t).map_err(|e| e.to_string())?);
        }
        let save = Command::new("iptables-legacy-save")
            .output()
            .map_err(|e| e.to_string())?;
        Ok((blobs, String::from_utf8_lossy(&save.stdout).into_owned()))
    })
    .map_err(|e| e.to_string())?
}

/// The `*table ... COMMIT` block of one table in iptables-save output, without comments.
fn save_block(save: &str, table: &str) -> String {
    let mut out = String::new();
    let mut on = false;
    for l in save.lines() {
        if l.starts_with('#') {
            continue;
        }
        if l.starts_with('*') {
            on = l == format!("*{table}");
        }
        if on {
            out.push_str(l);
            out.push('\n');
            if l == "COMMIT" {
                on = false;
            }
        }
    }
    out
}

fn strip_counters(t: &mut Table) {
    for c in &mut t.builtins {
        c.policy_counters = Counters::default();
        for r in &mut c.rules {
            r.counters = Counters::default();
        }
    }
    for c in &mut t.user_chains {
        for r in &mut c.rules {
            r.counters = Counters::default();
        }
    }
    t.user_chains.sort_by(|a, b| a.name.cmp(&b.name));
}

/// `-p N` for every protocol number: `save` names each one as iptables-legacy-save does
/// (`getprotobynumber`, so `ethernet` for 143, digits where /etc/protocols has no entry).
fn protocol_names_match_iptables_save(_: ()) {
    let mut text =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for p in 1..=255 {
        text.push_str(&format!("-A INPUT -p {p}\n"));
    }
    text.push_str("COMMIT\n");
    let t = parse_save(&text).unwrap().remove(0);
    let (_, ksave) = restore_and_read(text, vec![]).unwrap();
    let ours = save(&t, false);
    let theirs = save_block(&ksave, "filter");
    let bad: Vec<String> = ours
        .lines()
        .zip(theirs.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("ours `{a}`, iptables-legacy-save `{b}`"))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(ours.lines().count(), theirs.lines().count());
    for (p, name) in [
        (6, "tcp"),
        (132, "sctp"),
        (135, "mobility-header"),
        (143, "ethernet"),
        (144, "144"),
    ] {
        assert!(ours.contains(&format!("-A INPUT -p {name}\n")), "-p {p}");
    }
}

fn rulesets_match_the_kernel_byte_for_byte(_: ()) {
    let mut files: Vec<_> = std::fs::read_dir(data_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "ipt"));
    files.sort();
    assert!(files.len() >= 4, "test rulesets missing");
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let tables = parse_save(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        let (kblobs, ksave) = restore_and_read(text.clone(), names)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (t, kb) in tables.iter().zip(&kblobs) {
            let what = format!("{}:{}", f.file_name().unwrap().to_string_lossy(), t.name);
            let ours = encode(t).unwrap();
            if mask_load_time_fields(&ours) != mask_load_time_fields(kb) {
                failures.push(format!(
                    "{what}: encode differs from the kernel: {}",
                    first_diff(&mask_load_time_fields(&ours), &mask_load_time_fields(kb))
                ));
            }
            // verify accepts the kernel's blob and computes the kernel's comefrom.
            match verify(kb) {
                Ok(v) => {
                    let es = walk_entries(&kb[96..]).unwrap();
                    for (ve, ke) in v.entries.iter().zip(&es) {
                        if ve.comefrom != ke.hdr.comefrom {
                            failures.push(format!(
                                "{what}: entry {}: comefrom ours {:#x} kernel {:#x}",
                                ke.offset, ve.comefrom, ke.hdr.comefrom
                            ));
                        }
                    }
                }
                Err(e) => failures.push(format!("{what}: verify rejects the kernel's blob: {e}")),
            }
            if let Err(e) = verify(&ours) {
                failures.push(format!("{what}: verify rejects our blob: {e}"));
            }
            // decode gives back the parsed table.
            match decode(kb) {
                Ok(mut d) => {
                    let mut p = t.clone();
                    strip_counters(&mut d);
                    strip_counters(&mut p);
                    if d != p {
                        failures.push(format!("{what}: decode(kernel) != parse_save"));
                    }
                }
                Err(e) => failures.push(format!("{what}: decode failed: {e}")),
            }
            // save prints what iptables-legacy-save prints.
            let ks = save_block(&ksave, &t.name);
            let os = save(t, false);
            if ks != os {
                failures.push(format!(
                    "{what}: save differs:\n--- ours\n{os}--- iptables-legacy-save\n{ks}"
                ));
            }
            checked += 1;
        }
        // The kernel accepts our blobs and reads them back identically.
        let blobs: Vec<Vec<u8>> = tables.iter().map(|t| encode(t).unwrap()).collect();
        let back = kernel::with_private_netns(move || {
            blobs
                .iter()
                .map(|b| {
                    kernel::load(b)?;
                    let name = String::from_utf8_lossy(&ReplaceHeader::parse(b).unwrap().name)
                        .into_owned();
                    kernel::get_replace_blob(&name)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
        match back {
            Ok(back) => {
                for (t, kb) in tables.iter().zip(back) {
                    if mask_load_time_fields(&encode(t).unwrap()) != mask_load_time_fields(&kb) {
                        failures.push(format!(
                            "{}:{}: our blob reads back differently",
                            f.display(),
                            t.name
                        ));
                    }
                }
            }
            Err(e) => failures.push(format!("{}: kernel refused our blob: {e}", f.display())),
        }
    }
    println!("checked {checked} tables from {} files", files.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------------------------------------
// Broken blobs.

/// The kernel's errno for a blob (0 = accepted), in a fresh namespace; `num_counters` is sent
/// as the blob has it.
fn kernel_errno(blob: Vec<u8>) -> i32 {
    let n = ReplaceHeader::parse(&blob)
        .map(|h| h.num_counters)
        .unwrap_or(0);
    kernel::with_private_netns(move || match kernel::load_with(&blob, Some(n)) {
        Ok(()) => 0,
        Err(e) => e.errno,
    })
    .unwrap()
}

/// Entry count of a fresh table (what num_counters must be).
fn fresh_entries(name: &str) -> u32 {
    match name {
        "filter" | "security" => 4,
        "mangle" => 6,
        "raw" => 3,
        "nat" => 5,
        _ => 4,
    }
}

/// Inside a private netns: lo up and a veth pair v0/v1, v0 = 10.9.9.1/24 (its MAC set to
/// `v0_mac` if given) with a default route via 10.9.9.2 whose neighbour entry is fixed, so
/// packets sent out of v0 need no ARP.
fn veth_lab(v0_mac: Option<&str>) -> Result<(), String> {
    let mac = v0_mac
        .map(|m| format!(" && ip link set v0 address {m}"))
        .unwrap_or_default();
    let script = format!(
        "ip link set lo up && ip link add v0 type veth peer name v1{mac} \
         && ip link set v0 up && ip link set v1 up \
         && ip addr add 10.9.9.1/24 dev v0 && ip route add default via 10.9.9.2 dev v0 onlink \
         && ip neigh add 10.9.9.2 lladdr 02:00:00:00:00:02 dev v0"
    );
    let ok = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!("veth lab setup failed: `{script}`"))
    }
}

/// A case where the kernel's errno `k` differs from `verify`'s `o`, with `verify`'s error.
fn errno_mismatch(name: &str, blob: &[u8], k: i32, o: i32) -> String {
    let opts = VerifyOptions {
        live_num_entries: Some(4),
        skip_table_lookup: false,
        ..Default::default()
    };
    let why = verify_with(blob, &opts).err();
    format!("{name}: kernel {k}, verify {o} ({why:?})")
}

fn assert_no_mismatches(bad: &[String]) {
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn our_errno(blob: &[u8]) -> i32 {
    let name = ReplaceHeader::parse(blob)
        .map(|h| String::from_utf8_lossy(&h.name).into_owned())
        .unwrap_or_default();
    let opts = VerifyOptions {
        live_num_entries: Some(fresh_entries(&name)),
        skip_table_lookup: false,
        ..Default::default()
    };
    match verify_with(blob, &opts) {
        Ok(_) => 0,
        Err(e) => e.errno.code(),
    }
}

fn demo() -> Table {
    parse_save(
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:MYCHAIN - [0:0]\n\
         -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -j MYCHAIN\n\
         -A MYCHAIN -s 10.0.0.0/8 -j RETURN\n-A MYCHAIN -p udp -m udp --dport 53 -j ACCEPT\nCOMMIT\n",
    )
    .unwrap()
    .remove(0)
}

fn with_counters(mut b: Vec<u8>) -> Vec<u8> {
    let name = ReplaceHeader::parse(&b)
        .map(|h| String::from_utf8_lossy(&h.name).into_owned())
        .unwrap_or_default();
    b[84..88].copy_from_slice(&fresh_entries(&name).to_le_bytes());
    b
}

fn blob_of(t: &Table) -> Vec<u8> {
    with_counters(encode(t).unwrap())
}

fn entries_of(b: &[u8]) -> Vec<blob::RawEntry> {
    walk_entries(&b[96..]).unwrap()
}

fn poke32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn poke16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Remove the entry at entries-offset `off` (fixing size/num_entries; later offsets are not
/// relocated, so only use it where nothing points past it).
fn remove_entry(b: &[u8], off: usize) -> Vec<u8> {
    let es = entries_of(b);
    let e = es.iter().find(|e| e.offset == off).unwrap();
    let n = e.hdr.next_offset as usize;
    let mut out = b[..96 + off].to_vec();
    out.extend_from_slice(&b[96 + off + n..]);
    let h = ReplaceHeader::parse(b).unwrap();
    poke32(&mut out, 36, h.num_entries - 1);
    poke32(&mut out, 40, h.size - n as u32);
    out
}

fn verdict_at(e: &blob::RawEntry) -> usize {
    96 + e.offset + e.hdr.target_offset as usize + 32
}

fn cases() -> Vec<(&'static str, Vec<u8>, Option<i32>)> {
    let mut v: Vec<(&'static str, Vec<u8>, Option<i32>)> = Vec::new();
    let d = demo();
    let db = blob_of(&d);
    let de = entries_of(&db);
    // demo layout: 0 tcp rule, 1 jump, 2 INPUT policy, 3 FORWARD, 4 OUTPUT, 5 MYCHAIN head,
    // 6 RETURN rule, 7 udp rule, 8 foot, 9 final ERROR.
    v.push(("valid-demo", db.clone(), Some(0)));
    v.push((
        "mangle-layout-as-mangle",
        blob_of(&Table::new("mangle").unwrap()),
        Some(0),
    ));
    let chain = |rules: Vec<Rule>, name: &str| UserChain {
        name: name.into(),
        rules,
    };
    let mut t = Table::new("filter").unwrap();
    t.user_chains = vec![
        chain(vec![Rule::new(Target::Jump("B".into()))], "A"),
        chain(vec![Rule::new(Target::Jump("A".into()))], "B"),
    ];
    let mut t2 = t.clone();
    t.builtins[0]
        .rules
        .push(Rule::new(Target::Jump("A".into())));
    v.push(("loop-two-chains", blob_of(&t), Some(40)));
    v.push(("loop-unreachable", blob_of(&t2), Some(0)));
    t2.user_chains = vec![chain(vec![Rule::new(Target::Jump("A".into()))], "A")];
    t2.builtins[1]
        .rules
        .push(Rule::new(Target::Jump("A".into())));
    v.push(("loop-self", blob_of(&t2), Some(40)));
    let mut b = db.clone();
    poke32(&mut b, verdict_at(&de[1]), (de[6].offset + 8) as u32);
    v.push(("jump-mid-entry", b, Some(40)));
    let mut b = db.clone();
    poke32(&mut b, verdict_at(&de[1]), (db.len() - 96 + 1000) as u32);
    v.push(("jump-past-end", b, Some(40)));
    v.push((
        "no-user-chain-return",
        remove_entry(&db, de[8].offset),
        Some(40),
    ));
    let mut b = db.clone();
    poke32(&mut b, verdict_at(&de[1]), de[5].offset as u32);
    v.push(("jump-to-chain-head", b, Some(0)));
    let mut t3 = d.clone();
    t3.user_chains[0]
        .rules
        .push(Rule::new(Target::Jump("OUTPUT".into())));
    v.push(("jump-into-builtin", blob_of(&t3), Some(0)));
    v.push((
        "no-final-error-entry",
        remove_entry(&db, de[9].offset),
        Some(0),
    ));
    let mut b = db.clone();
    poke32(&mut b, 64 + 4, de[0].offset as u32);
    v.push(("underflow-conditional", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, 64 + 4, de[2].offset as u32 + 8);
    v.push(("underflow-not-entry", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, 64 + 4, de[1].offset as u32);
    v.push(("underflow-jump", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, verdict_at(&de[2]), XT_RETURN as u32);
    v.push(("underflow-return", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, 44 + 8, u32::MAX);
    v.push(("hook-entry-missing", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, 32, 0x1f);
    for h in [0, 4] {
        poke32(&mut b, 44 + 4 * h, de[4].offset as u32);
        poke32(&mut b, 64 + 4 * h, de[4].offset as u32);
    }
    v.push(("hooks-unsorted", b, Some(22)));
    let mut b = blob_of(&Table::new("mangle").unwrap());
    b[..32].fill(0);
    b[..6].copy_from_slice(b"filter");
    poke32(&mut b, 84, 4);
    v.push(("valid-hooks-mismatch", b, Some(22)));
    for (name, delta) in [
        ("next-offset-small", None),
        ("next-offset-misaligned", Some(4)),
        ("next-offset-plus8", Some(8)),
    ] {
        let mut b = db.clone();
        let at = 96 + de[0].offset + 90;
        let nv = match delta {
            None => 112,
            Some(x) => de[0].hdr.next_offset + x,
        };
        poke16(&mut b, at, nv);
        v.push((name, b, Some(22)));
    }
    let mut b = db.clone();
    poke16(&mut b, 96 + de[9].offset + 90, de[9].hdr.next_offset + 8);
    v.push(("next-offset-past-end", b, Some(22)));
    let mut b = db.clone();
    poke16(&mut b, 96 + de[0].offset + 88, 104);
    v.push(("target-offset-small", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, 36, de.len() as u32 + 1);
    v.push(("num-entries-wrong", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, 40, (db.len() - 96 + 8) as u32);
    v.push(("size-larger-than-data", b, Some(22)));
    let mut b = db[..96].to_vec();
    poke32(&mut b, 36, 0);
    poke32(&mut b, 40, 0);
    v.push(("empty-table", b, Some(22)));
    let mut b = db.clone();
    poke32(&mut b, 84, 5);
    v.push(("num-counters-wrong", b, Some(11)));
    let mut b = db.clone();
    poke32(&mut b, 84, 0);
    v.push(("num-counters-zero", b, Some(22)));
    let mut b = db.clone();
    b[..32].fill(0);
    b[..11].copy_from_slice(b"nosuchtable");
    v.push(("unknown-table", b, Some(2)));
    // Rename / re-revision extensions in place.
    let m0 = 96 + de[0].offset + 112; // tcp match of entry 0
    let mut b = db.clone();
    b[m0 + 2..m0 + 31].fill(0);
    b[m0 + 2..m0 + 13].copy_from_slice(b"nosuchmatch");
    v.push(("unknown-match", b, Some(2)));
    let mut b = db.clone();
    b[m0 + 31] = 9;
    v.push(("match-bad-revision", b, Some(2)));
    let rule = |s: &str| parse_rule_str(s).unwrap();
    let one = |table: &str, chain: Hook, r: Rule| {
        let mut t = Table::new(table).unwrap();
        t.builtins
            .iter_mut()
            .find(|c| c.hook == chain)
            .unwrap()
            .rules
            .push(r);
        blob_of(&t)
    };
    let rej = one(
        "filter",
        Hook::Input,
        rule("-p tcp -j REJECT --reject-with tcp-reset"),
    );
    let re = entries_of(&rej);
    let t0 = 96 + re[0].offset + re[0].hdr.target_offset as usize;
    let mut b = rej.clone();
    b[t0 + 2..t0 + 31].fill(0);
    b[t0 + 2..t0 + 14].copy_from_slice(b"NOSUCHTARGET");
    v.push(("unknown-target", b, Some(2)));
    let mut b = rej.clone();
    b[t0 + 31] = 7;
    v.push(("target-bad-revision", b, Some(2)));
    let com = one("filter", Hook::Input, rule("-m comment --comment x"));
    let mut b = com.clone();
    b[96 + 112 + 31] = 5;
    v.push(("match-bad-revision-unspec", b, Some(91)));
    let mut r = rule("-p tcp -m tcp --dport 22 -j ACCEPT");
    r.ip.ip.proto = 0;
    v.push((
        "tcp-match-without-proto",
        one("filter", Hook::Input, r),
        Some(22),
    ));
    let mut r = rule("-p tcp -j ACCEPT");
    r.matches.push(Match::Other {
        name: "tcp".into(),
        revision: 0,
        data: vec![0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff],
    });
    v.push(("match-size-wrong", one("filter", Hook::Input, r), Some(22)));
    let mut b = db.clone();
    poke16(
        &mut b,
        96 + de[0].offset + de[0].hdr.target_offset as usize,
        36,
    );
    v.push(("std-target-size-wrong", b, Some(22)));
    for (name, val) in [
        ("verdict-zero", 0i32),
        ("verdict-stolen", -3),
        ("verdict-very-negative", -100),
    ] {
        let mut b = db.clone();
        poke32(&mut b, verdict_at(&de[0]), val as u32);
        v.push((name, b, Some(22)));
    }
    let mut b = db.clone();
    b[96 + de[0].offset + 82] = 0x04;
    v.push(("ip-flags-unknown", b, Some(22)));
    let mut b = db.clone();
    b[96 + de[0].offset + 83] = 0x80;
    v.push(("ip-invflags-unknown", b, Some(22)));
    let mut b = db.clone();
    let en = 96 + de[5].offset + 112 + 32;
    b[en..en + 30].fill(b'X');
    v.push(("error-name-unterminated", b, Some(22)));
    let mut dn = rule("-p tcp -j DNAT --to-destination 10.0.0.1");
    dn.ip = IpMatch::default();
    v.push((
        "dnat-in-filter",
        one("filter", Hook::Input, dn.clone()),
        Some(22),
    ));
    v.push((
        "reject-in-raw",
        one("raw", Hook::Prerouting, rule("-j REJECT")),
        Some(22),
    ));
    // Beyond the oracle README's table.
    v.push((
        "dnat-in-postrouting",
        one("nat", Hook::Postrouting, dn),
        Some(22),
    ));
    v.push((
        "masquerade-in-prerouting",
        one("nat", Hook::Prerouting, rule("-j MASQUERADE")),
        Some(22),
    ));
    v.push((
        "reject-tcp-reset-udp",
        one(
            "filter",
            Hook::Input,
            rule("-p udp -j REJECT --reject-with tcp-rst"),
        ),
        Some(22),
    ));
    let mut r = rule("-p tcp -j ACCEPT");
    r.matches.push(Match::Multiport(MultiportV1 {
        flags: 1,
        count: 1,
        ports: [22; 15],
        ..Default::default()
    }));
    r.ip.ip.proto = 0;
    v.push((
        "multiport-without-proto",
        one("filter", Hook::Input, r),
        Some(22),
    ));
    let mut r = rule("-m limit --limit 5/sec");
    if let Match::Limit(l) = &mut r.matches[0] {
        l.burst = 0;
    }
    v.push(("limit-burst-zero", one("filter", Hook::Input, r), Some(34)));
    let mut r = rule("-m limit --limit 1/day --limit-burst 10");
    if let Match::Limit(l) = &mut r.matches[0] {
        assert_eq!(l.avg, 864_000_000);
    }
    v.push((
        "limit-avg-times-burst-overflows",
        one("filter", Hook::Input, r),
        Some(34),
    ));
    let mut r = rule("-p tcp -j CT --helper ftp");
    if let Target::Ct { info, .. } = &mut r.target {
        info.helper = b"abcdefghijklmnop".to_vec(); // 16 bytes: no NUL in helper[16]
    }
    let mut b = one("raw", Hook::Prerouting, r);
    let e0 = &entries_of(&b)[0];
    let h = 96 + e0.offset + e0.hdr.target_offset as usize + 32 + 12;
    b[h..h + 16].copy_from_slice(b"abcdefghijklmnop");
    v.push(("ct-helper-name-too-long", b, Some(36)));
    v.push((
        "ct-timeout-unknown",
        one(
            "raw",
            Hook::Prerouting,
            rule("-p tcp -j CT --timeout nosuch"),
        ),
        Some(2),
    ));
    let mut r = rule("-j ACCEPT");
    r.matches.push(Match::Other {
        name: "conntrack".into(),
        revision: 2,
        data: vec![0; 160],
    });
    v.push((
        "conntrack-rev2-empty",
        one("filter", Hook::Input, r),
        Some(0),
    ));
    let mut r = rule("-j ACCEPT");
    r.matches.push(Match::Other {
        name: "state".into(),
        revision: 0,
        data: vec![2, 0, 0, 0, 0, 0, 0, 0],
    });
    v.push(("state-rev0", one("filter", Hook::Input, r), Some(0)));
    let mut r = rule("-j ACCEPT");
    r.matches.push(Match::Other {
        name: "comment".into(),
        revision: 0,
        data: vec![b'x'; 248],
    });
    v.push((
        "comment-size-wrong",
        one("filter", Hook::Input, r),
        Some(22),
    ));
    let mut r = rule("-m dscp --dscp 1");
    if let Match::Dscp(d) = &mut r.matches[0] {
        d.dscp = 0x40;
    }
    v.push(("dscp-out-of-range", one("filter", Hook::Input, r), Some(33)));
    let mut r = rule("-m owner --uid-owner 5-10");
    if let Match::Owner(o) = &mut r.matches[0] {
        (o.uid_min, o.uid_max) = (10, 5);
    }
    v.push((
        "owner-range-reversed",
        one("filter", Hook::Output, r),
        Some(22),
    ));
    v.push((
        "owner-in-input",
        one("filter", Hook::Input, rule("-m owner --uid-owner 0")),
        Some(22),
    ));
    v.push((
        "mac-in-output",
        one(
            "filter",
            Hook::Output,
            rule("-m mac --mac-source 00:11:22:33:44:55"),
        ),
        Some(22),
    ));
    let mut r = rule("-j NFQUEUE --queue-num 1");
    if let Target::Nfqueue(q) = &mut r.target {
        q.queues_total = 0;
    }
    v.push((
        "nfqueue-zero-queues",
        one("filter", Hook::Input, r),
        Some(22),
    ));
    let mut r = rule("-j NFQUEUE --queue-num 65535");
    if let Target::Nfqueue(q) = &mut r.target {
        q.queues_total = 2;
    }
    v.push((
        "nfqueue-queues-overflow",
        one("filter", Hook::Input, r),
        Some(34),
    ));
    v.push((
        "ct-helper-without-proto",
        one("raw", Hook::Prerouting, rule("-j CT --helper ftp")),
        Some(2),
    ));
    v.push((
        "ct-helper-unknown",
        one(
            "raw",
            Hook::Prerouting,
            rule("-p tcp -j CT --helper nosuch"),
        ),
        Some(2),
    ));
    v.push((
        "ct-helper-ftp",
        one("raw", Hook::Prerouting, rule("-p tcp -j CT --helper ftp")),
        Some(0),
    ));
    let mut r = rule("-j LOG");
    if let Target::Log(l) = &mut r.target {
        l.level = 9;
    }
    v.push(("log-level-9", one("filter", Hook::Input, r), Some(22)));
    let mut r = rule("-j CT --notrack");
    if let Target::Ct { info, .. } = &mut r.target {
        info.flags = 0x40;
    }
    v.push(("ct-flags-unknown", one("raw", Hook::Output, r), Some(22)));
    let mut r = rule("-p tcp -j SNAT --to-source 1.2.3.4");
    if let Target::Nat { rangesize, .. } = &mut r.target {
        *rangesize = 2;
    }
    v.push((
        "snat-rangesize-2",
        one("nat", Hook::Postrouting, r),
        Some(22),
    ));
    let mut r = rule("-p tcp -m tcp --dport 1");
    if let Match::Tcp(t) = &mut r.matches[0] {
        t.invflags = 0x10;
    }
    v.push((
        "tcp-invflags-unknown",
        one("filter", Hook::Input, r),
        Some(22),
    ));
    v.push((
        "security-table",
        blob_of(&Table::new("security").unwrap()),
        Some(0),
    ));
    v.push(("raw-table", blob_of(&Table::new("raw").unwrap()), Some(0)));
    v.push(("nat-table", blob_of(&Table::new("nat").unwrap()), Some(0)));
    v
}

fn broken_blobs_get_the_kernels_errno(_: ()) {
    let mut bad = Vec::new();
    let all = cases();
    for (name, blob, expect) in &all {
        let k = kernel_errno(blob.clone());
        let o = our_errno(blob);
        println!("{name:32} kernel {k:3}  verify {o:3}");
        if let Some(e) = expect.filter(|e| k != *e) {
            bad.push(format!("{name}: kernel says {k}, test expected {e}"));
        }
        if k != o {
            bad.push(errno_mismatch(name, blob, k, o));
        }
    }
    println!(
        "{} broken/valid blob cases compared with the kernel",
        all.len()
    );
    assert_no_mismatches(&bad);
}

fn truncations_and_corruptions_match_the_kernel(_: ()) {
    let full = std::fs::read_to_string(data_dir().join("filter.ipt")).unwrap();
    let base = blob_of(&parse_save(&full).unwrap().remove(0));
    let demo = blob_of(&demo());
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    // Truncations with a consistent header (size = what is left): entry boundaries and inside.
    for cut in (0..demo.len() - 96).step_by(8) {
        let mut b = demo[..96 + cut].to_vec();
        poke32(&mut b, 40, cut as u32);
        blobs.push((format!("truncate-{cut}"), b));
    }
    // Random byte corruptions of the demo and of the big filter table.
    for i in 0..150 {
        let src = if i % 3 == 0 { &base } else { &demo };
        let mut b = src.clone();
        let n = 1 + (rng.next() % 3) as usize;
        for _ in 0..n {
            let at = 96 + (rng.next() as usize) % (b.len() - 96);
            b[at] = match rng.next() % 4 {
                0 => 0,
                1 => 0xff,
                2 => b[at] ^ (1 << (rng.next() % 8)),
                _ => rng.next() as u8,
            };
        }
        blobs.push((format!("corrupt-{i}"), b));
    }
    let mut bad = Vec::new();
    let mut accepted = 0;
    for (name, b) in &blobs {
        let k = kernel_errno(b.clone());
        let o = our_errno(b);
        if k == 0 {
            accepted += 1;
        }
        if k != o {
            bad.push(errno_mismatch(name, b, k, o));
        }
    }
    println!(
        "{} truncated/corrupted blobs, {accepted} accepted by the kernel",
        blobs.len()
    );
    assert_no_mismatches(&bad);
}

// ------------------------------------------------------------------------------------------
// do_table against the kernel: packets sent from a raw socket take the OUTPUT hook; afterwards
// every OUTPUT-reachable entry's packet and byte counters must equal ours.

const OUTPUT_RULES: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:web - [0:0]\n:other - [0:0]\n:marked - [0:0]\n\
-A OUTPUT -o lo -p tcp -m tcp --dport 22 -j ACCEPT\n\
-A OUTPUT -d 10.20.0.0/16 -p tcp -j web\n\
-A OUTPUT ! -d 10.0.0.0/8 -p udp -m udp --sport 1000:2000 ! --dport 53 -j other\n\
-A OUTPUT -p udp -m multiport --dports 53,5000:5100 -m comment --comment c\n\
-A OUTPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n\
-A OUTPUT -p icmp -m icmp --icmp-type 3/1\n\
-A OUTPUT -f -j DROP\n\
-A OUTPUT ! -f -p 47 -j DROP\n\
-A OUTPUT -s 192.0.2.0/255.255.255.0 ! -o lo -m mark --mark 0x1/0xff -g marked\n\
-A OUTPUT -m limit --limit 1/hour --limit-burst 3 -j RETURN\n\
-A OUTPUT -o v+ -j MARK --set-xmark 0x10/0x10\n\
-A OUTPUT -m mark --mark 0x10/0x10 -j other\n\
-A OUTPUT -p tcp -m tcp --sport 7:9 -m multiport --sports 8,100:200\n\
-A OUTPUT -m length --length 40:44 -m ttl --ttl-lt 30\n\
-A OUTPUT -m iprange --src-range 192.0.2.0-192.0.2.9 ! --dst-range 10.20.0.0-10.20.255.255 -m ttl ! --ttl-eq 64\n\
-A OUTPUT -m pkttype --pkt-type unicast -m ttl --ttl-gt 100 -j DROP\n\
-A OUTPUT -m length ! --length 28 -m pkttype ! --pkt-type broadcast\n\
-A web -p tcp -m tcp --tcp-flags SYN,ACK SYN -j ACCEPT\n\
-A web -p tcp -m tcp --tcp-option 2 -j DROP\n\
-A web -s 10.9.9.0/24 -j RETURN\n\
-A web -p tcp -m tcp ! --dport 80:90 -j DROP\n\
-A other -p udp -j RETURN\n\
-A other ! -o lo\n\
-A marked -j MARK --set-xmark 0x100/0x100\n\
-A marked -m mark --mark 0x101 -j DROP\n\
COMMIT\n";

fn build_packet(rng: &mut Rng) -> (Vec<u8>, u32) {
    let srcs = [[10, 9, 9, 1], [192, 0, 2, 5], [198, 51, 100, 7]];
    let dsts = [
        [10, 20, 1, 1],
        [10, 20, 200, 3],
        [198, 51, 100, 1],
        [10, 30, 0, 1],
        [203, 0, 113, 9],
    ];
    let pick = |rng: &mut Rng, n: usize| (rng.next() % n as u64) as usize;
    let src = srcs[pick(rng, srcs.len())];
    let dst = dsts[pick(rng, dsts.len())];
    let proto = [6u8, 17, 1, 47][pick(rng, 4)];
    let ports = [7u16, 8, 22, 53, 80, 85, 150, 1000, 1500, 2500, 5050];
    let sp = ports[pick(rng, ports.len())];
    let dp = ports[pick(rng, ports.len())];
    let l4: Vec<u8> = match proto {
        6 => {
            let with_opt = rng.next().is_multiple_of(3);
            let mut t = vec![0u8; if with_opt { 24 } else { 20 }];
            t[0..2].copy_from_slice(&sp.to_be_bytes());
            t[2..4].copy_from_slice(&dp.to_be_bytes());
            t[12] = if with_opt { 6 << 4 } else { 5 << 4 };
            t[13] = [0x02u8, 0x12, 0x10, 0x04, 0x11, 0x3f][pick(rng, 6)];
            if with_opt {
                t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
            }
            t
        }
        17 => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&sp.to_be_bytes());
            u[2..4].copy_from_slice(&dp.to_be_bytes());
            u[5] = 8;
            u
        }
        1 => {
            let (ty, code) = [(8u8, 0u8), (3, 1), (3, 3), (0, 0)][pick(rng, 4)];
            vec![ty, code, 0, 0, 0, 1, 0, 1]
        }
        _ => vec![0u8; 12],
    };
    let frag: u16 = if rng.next().is_multiple_of(6) {
        0x2000 | 4
    } else {
        0
    };
    let ttl = [64u8, 1, 20, 128, 255][pick(rng, 5)];
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, ttl, proto, 0, 0];
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p[6..8].copy_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&l4);
    let mark = [0u32, 1, 0x101, 0x10, 0x201][pick(rng, 5)];
    (p, mark)
}

/// `-m recent` lists on the OUTPUT path: a /24 mask taken from the first rule, `--rdest`,
/// `--hitcount`, `--remove`, `--update`, an inverted check, and more than 100 destinations so
/// the least recently stamped ones are evicted. Verdicts, counters and the list's addresses
/// (`/proc/net/xt_recent/L`) must be the kernel's. All packets are sent within a second: every
/// stamp is inside `--seconds`.
const RECENT_RULES: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A OUTPUT -p udp -m udp --dport 1 -m recent --set --name L --mask 255.255.255.0 --rdest\n\
-A OUTPUT -p udp -m udp --dport 2 -m recent --rcheck --hitcount 3 --name L --rdest -j DROP\n\
-A OUTPUT -p udp -m udp --dport 3 -m recent --remove --name L --rdest\n\
-A OUTPUT -p udp -m udp --dport 4 -m recent --update --seconds 100 --hitcount 2 --name L --rdest -j DROP\n\
-A OUTPUT -p udp -m udp --dport 5 -m recent ! --rcheck --name L --rdest -j DROP\n\
-A OUTPUT -p udp -m udp --dport 6 -m recent --rcheck --seconds 100 --reap --name L --rdest\n\
COMMIT\n";

fn recent_lists_match_the_kernel_on_output(_: ()) -> Result<(), String> {
    let table = parse_save(RECENT_RULES).unwrap().remove(0);
    let blob = encode(&table).unwrap();
    let mut rng = Rng::new(0x5eed_0f7e_c317);
    // 130 destination /24s (eviction past 100), the first ones more often.
    let packets: Vec<Vec<u8>> = (0..1500)
        .map(|_| {
            let net = (rng.next() % 130).min(rng.next() % 160) as u8;
            let dport = [1u16, 1, 1, 1, 2, 3, 4, 5, 6][(rng.next() % 9) as usize];
            let mut p = vec![0x45, 0, 0, 28, 0x12, 0x34, 0, 0, 64, 17, 0, 0];
            p.extend_from_slice(&[10, 9, 9, 1, 10, 77, net, 1 + (rng.next() % 3) as u8]);
            p.extend_from_slice(&[0x30, 0x39]);
            p.extend_from_slice(&dport.to_be_bytes());
            p.extend_from_slice(&[0, 8, 0, 0]);
            p
        })
        .collect();
    let pk = packets.clone();
    let b2 = blob.clone();
    let res = kernel::with_private_netns(move || -> Result<(Vec<i32>, Vec<u8>, String), String> {
        veth_lab(None)?;
        kernel::load(&b2).map_err(|e| e.to_string())?;
        let mut errs = Vec::new();
        for p in &pk {
            errs.push(match kernel::send_raw_ipv4(p, None) {
                Ok(()) => 0,
                Err(e) => e.errno,
            });
        }
        let back = kernel::get_replace_blob("filter").map_err(|e| e.to_string())?;
        let list = std::fs::read_to_string("/proc/thread-self/net/xt_recent/L")
            .map_err(|e| format!("reading the kernel's list: {e}"))?;
        Ok((errs, back, list))
    })
    .unwrap();
    let (errs, back, list) = res.map_err(|e| format!("recent kernel comparison: {e}"))?;
    let mut ex = ExecTable::from_blob(&blob).unwrap();
    let mut bad = Vec::new();
    let mut drops = 0;
    for (i, (p, errno)) in packets.iter().zip(&errs).enumerate() {
        let st = nfr_vm::PktState {
            oifname: nfr_vm::pkt::ifname("v0"),
            has_sk: true,
            len: p.len() as u32,
            tstamp_ns: 1_000_000_000 + i as u64 * 100_000,
            ..Default::default()
        };
        let o = ex.do_table(Hook::Output, p, &st).unwrap();
        let dropped = o.verdict == nfr_vm::Verdict::Drop;
        drops += usize::from(dropped);
        if dropped != (*errno == 1) {
            bad.push(format!(
                "packet {i} to {:?} port {}: ours {:?}, kernel errno {errno}",
                &p[16..20],
                p[23],
                o.verdict
            ));
        }
    }
    let kes = walk_entries(&back[96..]).unwrap();
    for (i, ke) in kes.iter().enumerate() {
        let ours = ex.counters()[i];
        if ours.pcnt != ke.hdr.pcnt {
            bad.push(format!(
                "entry {}: ours {} packets, kernel {}",
                ke.offset, ours.pcnt, ke.hdr.pcnt
            ));
        }
    }
    let mut kernel_addrs: Vec<String> = list
        .lines()
        .filter_map(|l| {
            l.strip_prefix("src=")?
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .collect();
    kernel_addrs.sort();
    let mut ours: Vec<String> = ex
        .recent
        .addresses("L")
        .iter()
        .map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]))
        .collect();
    ours.sort();
    if ours != kernel_addrs {
        bad.push(format!("list L: ours {ours:?}\nkernel {kernel_addrs:?}"));
    }
    println!(
        "{} packets, {drops} dropped, {} addresses in the list",
        packets.len(),
        ours.len()
    );
    // a list kept full (eviction past 100 of 130 /24s) and drops
    assert!(
        drops > 100 && ours.len() + 5 >= nfr_ipt::recent::IP_LIST_TOT,
        "the packet mix no longer exercises the lists"
    );
    assert_no_mismatches(&bad);
    Ok(())
}

fn do_table_counters_match_the_kernel_on_output(_: ()) -> Result<(), String> {
    let table = parse_save(OUTPUT_RULES).unwrap().remove(0);
    let blob = encode(&table).unwrap();
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let packets: Vec<(Vec<u8>, u32)> = (0..160).map(|_| build_packet(&mut rng)).collect();
    let pk = packets.clone();
    let b2 = blob.clone();
    let res = kernel::with_private_netns(move || -> Result<(Vec<i32>, Vec<u8>), String> {
        veth_lab(None)?;
        kernel::load(&b2).map_err(|e| e.to_string())?;
        let mut errs = Vec::new();
        for (p, m) in &pk {
            errs.push(match kernel::send_raw_ipv4(p, Some(*m)) {
                Ok(()) => 0,
                Err(e) => e.errno,
            });
        }
        let back = kernel::get_replace_blob("filter").map_err(|e| e.to_string())?;
        Ok((errs, back))
    })
    .unwrap();
    let (errs, back) = match res {
        Ok(r) => r,
        Err(e) => {
            return Err(format!("do_table kernel comparison: {e}"));
        }
    };
    let mut ex = ExecTable::from_blob(&blob).unwrap();
    let mut sent = 0;
    let mut mismatched_verdicts = Vec::new();
    for ((p, m), errno) in packets.iter().zip(&errs) {
        if *errno != 0 && *errno != 1 {
            continue; // never reached OUTPUT (routing error)
        }
        sent += 1;
        let st = nfr_vm::PktState {
            oifname: nfr_vm::pkt::ifname("v0"),
            mark: *m,
            len: p.len() as u32,
            ..Default::default()
        };
        let o = ex.do_table(Hook::Output, p, &st).unwrap();
        let dropped = o.verdict == nfr_vm::Verdict::Drop;
        if dropped != (*errno == 1) {
            mismatched_verdicts.push(format!(
                "packet {:02x?}: ours {:?}, kernel errno {errno}",
                &p[..24.min(p.len())],
                o.verdict
            ));
        }
    }
    let kes = walk_entries(&back[96..]).unwrap();
    let v = ex.table().clone();
    let mut bad = Vec::new();
    for (i, (ke, ve)) in kes.iter().zip(&v.entries).enumerate() {
        if ve.comefrom & (1 << 3) == 0 || ve.comefrom & !(1 << 3) != 0 {
            continue; // only entries reachable from OUTPUT alone
        }
        let ours = ex.counters()[i];
        if (ours.pcnt, ours.bcnt) != (ke.hdr.pcnt, ke.hdr.bcnt) {
            bad.push(format!(
                "entry {} : ours {}/{} kernel {}/{}",
                ke.offset, ours.pcnt, ours.bcnt, ke.hdr.pcnt, ke.hdr.bcnt
            ));
        }
    }
    let hit: u64 = ex.counters().iter().map(|c| c.pcnt).sum();
    let used = ex.counters().iter().filter(|c| c.pcnt > 0).count();
    let drops = errs.iter().filter(|e| **e == 1).count();
    println!(
        "{sent} packets through OUTPUT ({drops} dropped), {hit} entry hits on {used}/{} entries",
        v.entries.len()
    );
    assert!(
        used >= 20 && drops >= 10,
        "the packet mix no longer exercises the ruleset"
    );
    assert!(sent > 100, "too few packets reached OUTPUT: {sent}");
    assert!(
        mismatched_verdicts.is_empty(),
        "verdicts differ:\n{}",
        mismatched_verdicts.join("\n")
    );
    assert!(bad.is_empty(), "counters differ:\n{}", bad.join("\n"));
    Ok(())
}

/// A generated ruleset: 120 user chains forming a random DAG (chain i only jumps/gotos to
/// chains j > i), called from every built-in chain many times, plus a few thousand rules. The
/// kernel must produce our bytes, and our mark_source_chains its comefrom.
fn generated_ruleset(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let n = 120;
    let name = |i: usize| format!("c{i:03}");
    let mut s =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for i in 0..n {
        s.push_str(&format!(":{} - [0:0]\n", name(i)));
    }
    for chain in ["INPUT", "FORWARD", "OUTPUT"] {
        for _ in 0..200 {
            let t = (rng.next() % n as u64) as usize;
            let port = rng.next() % 65535 + 1;
            let how = if rng.next().is_multiple_of(4) {
                "-g"
            } else {
                "-j"
            };
            s.push_str(&format!(
                "-A {chain} -p tcp -m tcp --dport {port} {how} {}\n",
                name(t)
            ));
        }
    }
    for i in 0..n {
        for _ in 0..(rng.next() % 12) {
            let a = rng.next();
            let target = if i + 1 < n && !rng.next().is_multiple_of(3) {
                let j = i + 1 + (rng.next() % (n - i - 1) as u64) as usize;
                format!("-j {}", name(j))
            } else {
                ["-j ACCEPT", "-j DROP", "-j RETURN", ""][(rng.next() % 4) as usize].to_string()
            };
            s.push_str(&format!(
                "-A {} -s 10.{}.{}.0/24 {target}\n",
                name(i),
                a % 256,
                (a >> 8) % 256
            ));
        }
    }
    s.push_str("COMMIT\n");
    s
}

fn generated_dag_ruleset_matches_the_kernel(_: ()) {
    let text = generated_ruleset(7);
    let t = parse_save(&text).unwrap().remove(0);
    let ours = encode(&t).unwrap();
    let (kb, _) = restore_and_read(text, vec!["filter".into()]).unwrap();
    let kb = &kb[0];
    assert!(
        mask_load_time_fields(&ours) == mask_load_time_fields(kb),
        "{}",
        first_diff(&mask_load_time_fields(&ours), &mask_load_time_fields(kb))
    );
    let v = verify(kb).unwrap();
    let es = walk_entries(&kb[96..]).unwrap();
    let diffs = v
        .entries
        .iter()
        .zip(&es)
        .filter(|(a, b)| a.comefrom != b.hdr.comefrom)
        .count();
    println!(
        "{} entries, {} bytes, stacksize {}",
        es.len(),
        kb.len() - 96,
        v.stacksize
    );
    assert_eq!(diffs, 0, "comefrom differs on {diffs} entries");
    // Back edges: a loop somewhere in the DAG (ELOOP if reachable), a self-goto, a jump into a
    // built-in chain. Our verdict must be the kernel's for each.
    for (from, to) in [(119usize, 3usize), (60, 60), (5, 119), (100, 50)] {
        let mut t2 = t.clone();
        let to_name = format!("c{to:03}");
        let c = t2
            .user_chains
            .iter_mut()
            .find(|c| c.name == format!("c{from:03}"))
            .unwrap();
        c.rules.push(Rule::new(Target::Goto(to_name)));
        let mut b = encode(&t2).unwrap();
        b[84..88].copy_from_slice(&4u32.to_le_bytes());
        let k = kernel_errno(b.clone());
        let o = our_errno(&b);
        println!("edge c{from:03} -> c{to:03}: kernel {k}, verify {o}");
        assert_eq!(k, o, "edge c{from:03} -> c{to:03}");
    }
}

// ------------------------------------------------------------------------------------------
// Conntrack-dependent matches against the kernel: a scripted sequence whose conntrack state is
// known (NEW, NEW confirmed, ESTABLISHED reply, ESTABLISHED original, RELATED ICMP error,
// UNTRACKED via raw CT --notrack, INVALID RST) goes through OUTPUT; the entry counters of a
// table of conntrack/state matches must equal ours given those states.

const CT_RULES: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A OUTPUT -p udp -m udp --dport 9999 -j CT --notrack\nCOMMIT\n\
*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:nw - [0:0]\n\
-A OUTPUT -m conntrack --ctstate NEW -j nw\n\
-A OUTPUT -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL\n\
-A OUTPUT -m conntrack --ctstate ESTABLISHED --ctdir REPLY\n\
-A OUTPUT -m conntrack --ctstate RELATED --ctdir REPLY\n\
-A OUTPUT -m conntrack --ctstate UNTRACKED\n\
-A OUTPUT -m conntrack --ctstate INVALID\n\
-A OUTPUT -m conntrack ! --ctstate INVALID,NEW\n\
-A OUTPUT -m state --state ESTABLISHED,RELATED\n\
-A OUTPUT -m conntrack --ctstatus SEEN_REPLY\n\
-A OUTPUT -m conntrack --ctstatus CONFIRMED\n\
-A OUTPUT -m conntrack ! --ctstatus CONFIRMED\n\
-A OUTPUT -m conntrack --ctproto 17 --ctorigsrc 192.0.2.0/24 --ctrepldstport 5000\n\
-A OUTPUT -m conntrack --ctorigdst 10.20.1.1 --ctorigdstport 53 --ctreplsrcport 53:60\n\
-A OUTPUT -m conntrack ! --ctreplsrc 10.20.1.1 --ctdir ORIGINAL\n\
-A OUTPUT -m conntrack --ctproto 6\n\
-A nw -m conntrack --ctstatus NONE\n\
-A nw -m conntrack --ctstatus CONFIRMED -j RETURN\n\
-A nw -j ACCEPT\n\
COMMIT\n";

fn udp_pkt(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0x11, 0x11, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sp.to_be_bytes());
    p.extend_from_slice(&dp.to_be_bytes());
    p.extend_from_slice(&[0, 8, 0, 0]);
    p
}

fn conntrack_matches_agree_with_the_kernel(_: ()) -> Result<(), String> {
    use nfr_vm::pkt::{CtTuple, IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY, ct_state, ips};
    let tables = parse_save(CT_RULES).unwrap();
    let (raw, filter) = (encode(&tables[0]).unwrap(), encode(&tables[1]).unwrap());
    let (c, s) = ([192, 0, 2, 5], [10, 20, 1, 1]);
    let p1 = udp_pkt(c, 5000, s, 53);
    let p3 = udp_pkt(s, 53, c, 5000);
    let mut icmp = vec![0x45, 0, 0, 56, 0x22, 0x22, 0, 0, 64, 1, 0, 0];
    icmp.extend_from_slice(&s);
    icmp.extend_from_slice(&c);
    icmp.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&p1); // the offending datagram's header + 8 bytes
    let p6 = udp_pkt(c, 6000, s, 9999);
    let mut rst = vec![0x45, 0, 0, 40, 0x33, 0x33, 0, 0, 64, 6, 0, 0];
    rst.extend_from_slice(&c);
    rst.extend_from_slice(&s);
    rst.extend_from_slice(&[
        0x1b, 0x58, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x04, 0x10, 0, 0, 0, 0, 0,
    ]);
    let seq: Vec<Vec<u8>> = vec![
        p1.clone(),
        p1.clone(),
        p3.clone(),
        p1.clone(),
        icmp,
        p6,
        rst,
    ];
    // The conntrack view of each packet at the filter OUTPUT hook.
    let addr = |a: [u8; 4]| {
        let mut x = [0u8; 16];
        x[..4].copy_from_slice(&a);
        x
    };
    let orig = CtTuple {
        src: addr(c),
        dst: addr(s),
        src_port: 5000,
        dst_port: 53,
    };
    let reply = CtTuple {
        src: addr(s),
        dst: addr(c),
        src_port: 53,
        dst_port: 5000,
    };
    let tracked = |state: u32, status: u32, dir: u8| nfr_vm::PktState {
        ct_valid: true,
        ct_state: state,
        ct_status: status,
        ct_direction: dir,
        ct_protocol: 17,
        ct_orig: orig,
        ct_reply: reply,
        ..Default::default()
    };
    let states = vec![
        tracked(ct_state::NEW, 0, IP_CT_DIR_ORIGINAL),
        tracked(ct_state::NEW, ips::CONFIRMED, IP_CT_DIR_ORIGINAL),
        tracked(
            ct_state::ESTABLISHED,
            ips::CONFIRMED | ips::SEEN_REPLY,
            IP_CT_DIR_REPLY,
        ),
        tracked(
            ct_state::ESTABLISHED,
            ips::CONFIRMED | ips::SEEN_REPLY,
            IP_CT_DIR_ORIGINAL,
        ),
        tracked(
            ct_state::RELATED,
            ips::CONFIRMED | ips::SEEN_REPLY,
            IP_CT_DIR_REPLY,
        ),
        nfr_vm::PktState {
            ct_state: ct_state::UNTRACKED,
            ..Default::default()
        },
        nfr_vm::PktState {
            ct_state: ct_state::INVALID,
            ..Default::default()
        },
    ];
    let pk = seq.clone();
    let res = kernel::with_private_netns(move || -> Result<Vec<u8>, String> {
        veth_lab(None)?;
        kernel::load(&raw).map_err(|e| e.to_string())?;
        kernel::load(&filter).map_err(|e| e.to_string())?;
        for p in &pk {
            let _ = kernel::send_raw_ipv4(p, None);
        }
        kernel::get_replace_blob("filter").map_err(|e| e.to_string())
    })
    .unwrap();
    let back = match res {
        Ok(b) => b,
        Err(e) => {
            return Err(format!("conntrack comparison: {e}"));
        }
    };
    let mut ex = ExecTable::from_blob(&encode(&tables[1]).unwrap()).unwrap();
    for (p, st) in seq.iter().zip(&states) {
        let st = nfr_vm::PktState {
            oifname: nfr_vm::pkt::ifname("v0"),
            len: p.len() as u32,
            ..st.clone()
        };
        ex.do_table(Hook::Output, p, &st).unwrap();
    }
    let kes = walk_entries(&back[96..]).unwrap();
    let labels = blob::entry_map(&tables[1]);
    let mut bad = Vec::new();
    for (i, ke) in kes.iter().enumerate() {
        let ours = ex.counters()[i];
        if ours.pcnt != ke.hdr.pcnt {
            let l = &labels[i];
            let text = match l.role {
                blob::EntryRole::Rule(n) => {
                    let rules = match chain_name_hook(&l.chain) {
                        Some(h) => tables[1].builtin(h).map(|b| &b.rules),
                        None => tables[1]
                            .user_chains
                            .iter()
                            .find(|c| c.name == l.chain)
                            .map(|c| &c.rules),
                    };
                    rules
                        .and_then(|r| r.get(n))
                        .map(|r| rule_line(&l.chain, r, false))
                        .unwrap_or_default()
                }
                ref r => format!("{} {r:?}", l.chain),
            };
            bad.push(format!("{text}: ours {} kernel {}", ours.pcnt, ke.hdr.pcnt));
        }
    }
    let used = kes.iter().filter(|e| e.hdr.pcnt > 0).count();
    println!("{} packets, {used} entries hit in the kernel", seq.len());
    assert!(
        bad.is_empty(),
        "conntrack counters differ:\n{}",
        bad.join("\n")
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The ingress path: Ethernet frames written to v1 arrive on v0 and walk raw PREROUTING →
// mangle PREROUTING → (routing: to 10.9.9.1, local) → mangle INPUT → filter INPUT (policy
// DROP, so nothing is delivered and nothing answers). We run the same four tables in that
// order, passing the skb mark along, and compare every entry's counters.

const INGRESS_RULES: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A PREROUTING -i v0 -p udp -m udp --dport 53\n\
-A PREROUTING ! -i v+ -j DROP\n\
-A PREROUTING -i v1 -j DROP\n\
COMMIT\n\
*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
:mk - [0:0]\n\
-A PREROUTING -p tcp -m multiport --dports 22,80:90 -j mk\n\
-A PREROUTING -s 192.0.2.0/25 -j MARK --set-xmark 0x2/0x2\n\
-A INPUT -m mark --mark 0x3/0x3 -j MARK --set-xmark 0x8/0xc\n\
-A mk -p tcp -m tcp --tcp-flags SYN,ACK SYN -j MARK --set-xmark 0x1/0x1\n\
-A mk -j RETURN\n\
COMMIT\n\
*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:chk - [0:0]\n\
-A INPUT -m mark --mark 0x8/0xc -j chk\n\
-A INPUT -i v0 -p icmp -m icmp --icmp-type 8\n\
-A INPUT -m mark --mark 0x2/0x2 -m comment --comment two\n\
-A INPUT ! -i v0 -j ACCEPT\n\
-A INPUT -p udp -m udp ! --sport 1000:2000 -g chk\n\
-A chk -s 192.0.2.0/26 -j DROP\n\
-A chk -p tcp -m tcp --dport 85\n\
COMMIT\n";

fn ipv4_checksum(h: &mut [u8]) {
    h[10] = 0;
    h[11] = 0;
    let mut sum: u32 = 0;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

fn ingress_path_counters_match_the_kernel(_: ()) -> Result<(), String> {
    let tables = parse_save(INGRESS_RULES).unwrap();
    let blobs: Vec<Vec<u8>> = tables.iter().map(|t| encode(t).unwrap()).collect();
    let mut rng = Rng::new(0x5151_1234_abcd_0001);
    let mut packets = Vec::new();
    for _ in 0..120 {
        let (mut p, _) = build_packet(&mut rng);
        p[16..20].copy_from_slice(&[10, 9, 9, 1]);
        if p[12..16] == [10, 9, 9, 1] {
            p[12..16].copy_from_slice(&[192, 0, 2, 77]);
        }
        if rng.next().is_multiple_of(3) {
            p[15] = (rng.next() % 250) as u8 + 1;
        }
        if p[9] == 1 && rng.next().is_multiple_of(2) {
            p[20] = 8; // echo request
        }
        ipv4_checksum(&mut p[..20]);
        packets.push(p);
    }
    let pk = packets.clone();
    let bl = blobs.clone();
    let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
    let nm = names.clone();
    let res = kernel::with_private_netns(move || -> Result<Vec<Vec<u8>>, String> {
        veth_lab(Some("02:00:00:00:00:aa"))?;
        for b in &bl {
            kernel::load(b).map_err(|e| e.to_string())?;
        }
        // v0's MAC is set explicitly below (sysfs shows the host's namespace here).
        let dst = [0x02u8, 0, 0, 0, 0, 0xaa];
        for p in &pk {
            let mut f = dst.to_vec();
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]);
            f.extend_from_slice(p);
            kernel::send_frame("v1", &f).map_err(|e| e.to_string())?;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        nm.iter()
            .map(|n| kernel::get_replace_blob(n).map_err(|e| e.to_string()))
            .collect()
    })
    .unwrap();
    let back = match res {
        Ok(b) => b,
        Err(e) => {
            return Err(format!("ingress comparison: {e}"));
        }
    };
    let mut ex: Vec<ExecTable> = blobs
        .iter()
        .map(|b| ExecTable::from_blob(b).unwrap())
        .collect();
    let (raw, mangle, filter) = (0, 1, 2);
    for p in &packets {
        let mut st = nfr_vm::PktState {
            iifname: nfr_vm::pkt::ifname("v0"),
            len: p.len() as u32,
            ..Default::default()
        };
        let steps = [
            (raw, Hook::Prerouting),
            (mangle, Hook::Prerouting),
            (mangle, Hook::Input),
            (filter, Hook::Input),
        ];
        // ip_local_deliver reassembles before LOCAL_IN: our (incomplete) fragments stop there.
        let fragment = u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0;
        for (t, h) in steps {
            if h == Hook::Input && fragment {
                break;
            }
            let o = ex[t].do_table(h, p, &st).unwrap();
            st.mark = o.mark;
            if o.verdict != nfr_vm::Verdict::Accept {
                break;
            }
        }
    }
    let mut bad = Vec::new();
    let mut used = 0;
    for (t, kb) in back.iter().enumerate() {
        let kes = walk_entries(&kb[96..]).unwrap();
        for (i, ke) in kes.iter().enumerate() {
            let ours = ex[t].counters()[i];
            used += usize::from(ke.hdr.pcnt > 0);
            if (ours.pcnt, ours.bcnt) != (ke.hdr.pcnt, ke.hdr.bcnt) {
                bad.push(format!(
                    "{} entry {}: ours {}/{} kernel {}/{}",
                    names[t], ke.offset, ours.pcnt, ours.bcnt, ke.hdr.pcnt, ke.hdr.bcnt
                ));
            }
        }
    }
    println!(
        "{} frames, {used} entries hit across raw/mangle/filter",
        packets.len()
    );
    assert!(used >= 15, "the packet mix no longer exercises the rules");
    assert!(bad.is_empty(), "counters differ:\n{}", bad.join("\n"));
    Ok(())
}

// ------------------------------------------------------------------------------------------
// ClassBench acl1_1K (shared corpus; skipped without it): ~900 rules as `-A OUTPUT -s -d -p
// --sport --dport -j DROP` (policy DROP, so nothing is delivered and nothing answers). The
// kernel's table must equal ours, and after the 9380 trace packets every entry's counters
// must equal our executor's.

fn classbench_rules(text: &str) -> (String, usize) {
    let mut s =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n");
    let mut skipped = 0;
    for l in text.lines() {
        let f: Vec<&str> = l.trim_start_matches('@').split_whitespace().collect();
        if f.len() < 9 {
            continue;
        }
        let (sp, dp) = ((f[2], f[4]), (f[5], f[7]));
        let full = |p: (&str, &str)| p == ("0", "65535");
        let (proto, mask) = f[8].split_once('/').unwrap_or(("0x00", "0x00"));
        let proto = u8::from_str_radix(proto.trim_start_matches("0x"), 16).unwrap_or(0);
        let exact = mask.eq_ignore_ascii_case("0xFF");
        let mut r = format!("-A OUTPUT -s {} -d {}", f[0], f[1]);
        let ports = !(full(sp) && full(dp));
        match (exact, proto) {
            (true, 6) | (true, 17) => {
                let name = if proto == 6 { "tcp" } else { "udp" };
                r.push_str(&format!(" -p {name}"));
                if ports {
                    r.push_str(&format!(
                        " -m {name} --sport {}:{} --dport {}:{}",
                        sp.0, sp.1, dp.0, dp.1
                    ));
                }
            }
            (true, p) if !ports => r.push_str(&format!(" -p {p}")),
            (false, _) if !ports => {}
            _ => {
                skipped += 1;
                continue;
            }
        }
        r.push_str(" -j DROP\n");
        s.push_str(&r);
    }
    s.push_str("COMMIT\n");
    (s, skipped)
}

fn classbench_packet(line: &str) -> Option<Vec<u8>> {
    let f: Vec<u32> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [sip, dip, sport, dport, proto, ..] = f[..] else {
        return None;
    };
    let mut l4 = vec![0u8; if proto == 6 { 20 } else { 8 }];
    l4[0..2].copy_from_slice(&(sport as u16).to_be_bytes());
    l4[2..4].copy_from_slice(&(dport as u16).to_be_bytes());
    if proto == 6 {
        l4[12] = 5 << 4;
        l4[13] = 0x02;
    }
    let mut p = vec![0x45, 0, 0, 0, 0x44, 0x44, 0, 0, 64, proto as u8, 0, 0];
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&sip.to_be_bytes());
    p.extend_from_slice(&dip.to_be_bytes());
    p.extend_from_slice(&l4);
    Some(p)
}

fn classbench_acl1_1k_matches_the_kernel(dir: std::path::PathBuf) {
    let (text, skipped) = classbench_rules(&std::fs::read_to_string(dir.join("acl1_1K")).unwrap());
    let trace = std::fs::read_to_string(dir.join("acl1_1K_trace")).unwrap();
    let packets: Vec<Vec<u8>> = trace.lines().filter_map(classbench_packet).collect();
    let table = parse_save(&text).unwrap().remove(0);
    let nrules = table.builtin(Hook::Output).unwrap().rules.len();
    let ours = encode(&table).unwrap();
    let (kb, _) = restore_and_read(text.clone(), vec!["filter".into()]).unwrap();
    assert!(
        mask_load_time_fields(&ours) == mask_load_time_fields(&kb[0]),
        "{}",
        first_diff(
            &mask_load_time_fields(&ours),
            &mask_load_time_fields(&kb[0])
        )
    );
    let (pk, blob) = (packets.clone(), ours.clone());
    let (errs, back) =
        kernel::with_private_netns(move || -> Result<(Vec<i32>, Vec<u8>), String> {
            veth_lab(None)?;
            kernel::load(&blob).map_err(|e| e.to_string())?;
            let errs = pk
                .iter()
                .map(|p| {
                    kernel::send_raw_ipv4(p, None)
                        .err()
                        .map(|e| e.errno)
                        .unwrap_or(0)
                })
                .collect();
            Ok((
                errs,
                kernel::get_replace_blob("filter").map_err(|e| e.to_string())?,
            ))
        })
        .unwrap()
        .unwrap();
    let mut ex = ExecTable::from_blob(&ours).unwrap();
    let mut sent = 0;
    for (p, e) in packets.iter().zip(&errs) {
        if *e != 1 {
            continue; // refused before OUTPUT (route), never reached netfilter
        }
        sent += 1;
        let oif = if p[16] == 127 { "lo" } else { "v0" };
        let st = nfr_vm::PktState {
            oifname: nfr_vm::pkt::ifname(oif),
            len: p.len() as u32,
            ..Default::default()
        };
        assert_eq!(
            ex.do_table(Hook::Output, p, &st).unwrap().verdict,
            nfr_vm::Verdict::Drop
        );
    }
    let kes = walk_entries(&back[96..]).unwrap();
    let bad: Vec<String> = kes
        .iter()
        .enumerate()
        .filter(|(i, ke)| {
            (ex.counters()[*i].pcnt, ex.counters()[*i].bcnt) != (ke.hdr.pcnt, ke.hdr.bcnt)
        })
        .map(|(i, ke)| {
            format!(
                "entry {}: ours {:?} kernel {}/{}",
                ke.offset,
                ex.counters()[i],
                ke.hdr.pcnt,
                ke.hdr.bcnt
            )
        })
        .collect();
    let hit = kes.iter().filter(|e| e.hdr.pcnt > 0).count();
    println!(
        "acl1_1K: {nrules} rules ({skipped} inexpressible skipped), {} bytes identical; {sent}/{} trace packets through OUTPUT, {hit} entries hit",
        ours.len(),
        packets.len()
    );
    assert!(sent > packets.len() / 2, "too few packets reached OUTPUT");
    assert!(
        bad.is_empty(),
        "{} entries differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn main() {
    gate::run(vec![
        gate::needs(
            "protocol_names_match_iptables_save",
            oracle,
            protocol_names_match_iptables_save,
        ),
        gate::needs(
            "rulesets_match_the_kernel_byte_for_byte",
            oracle,
            rulesets_match_the_kernel_byte_for_byte,
        ),
        gate::needs(
            "broken_blobs_get_the_kernels_errno",
            oracle,
            broken_blobs_get_the_kernels_errno,
        ),
        gate::needs(
            "truncations_and_corruptions_match_the_kernel",
            oracle,
            truncations_and_corruptions_match_the_kernel,
        ),
        gate::needs(
            "do_table_counters_match_the_kernel_on_output",
            oracle,
            do_table_counters_match_the_kernel_on_output,
        ),
        gate::needs(
            "generated_dag_ruleset_matches_the_kernel",
            oracle,
            generated_dag_ruleset_matches_the_kernel,
        ),
        gate::needs(
            "conntrack_matches_agree_with_the_kernel",
            oracle,
            conntrack_matches_agree_with_the_kernel,
        ),
        gate::needs(
            "recent_lists_match_the_kernel_on_output",
            oracle,
            recent_lists_match_the_kernel_on_output,
        ),
        gate::needs(
            "ingress_path_counters_match_the_kernel",
            oracle,
            ingress_path_counters_match_the_kernel,
        ),
        gate::needs(
            "classbench_acl1_1k_matches_the_kernel",
            || {
                oracle()?;
                gate::corpus("classbench/song-filterset")
            },
            classbench_acl1_1k_matches_the_kernel,
        ),
    ]);
}
