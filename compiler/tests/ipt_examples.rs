//! iptables lowering of every example (examples/*.nfr) and every ruleset in testdata/ipt/*.nfr:
//! - a ruleset with a hand-written `testdata/ipt/<name>.ipt` must lower, and our tables must equal
//!   iptables' own: offline (the `.ipt` parsed by nfr-ipt, encoded) and, when the kernel oracle
//!   is available, byte for byte against what `iptables-legacy-restore` made of the `.ipt` in a
//!   private network namespace (comefrom and counters masked); the kernel must also accept our
//!   blob and `iptables-legacy-save` must print our rules;
//! - a ruleset with `testdata/ipt/<name>.stderr` must not lower, with exactly that diagnostic
//!   (colour off; `UPDATE_EXPECT=1` rewrites it).
//!
//! The kernel comparison is its own test, ignored unless root + iptables-legacy + unshare work
//! (failing instead when `NFC_REQUIRE_ORACLE=1`).

#[path = "../../tests/gate.rs"]
mod gate;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nfr_compiler::diag;
use nfr_compiler::lower::ipt::lower_ipt;
use nfr_ipt::blob::mask_load_time_fields;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every (name, relative path of the .nfr) to test.
fn rulesets() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for dir in ["examples", "testdata/ipt"] {
        let Ok(rd) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "nfr") {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                v.push((name.clone(), format!("{dir}/{name}.nfr")));
            }
        }
    }
    v.sort();
    v
}

fn oracle_ok() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    for tool in ["iptables-legacy-restore", "iptables-legacy-save"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("{tool} not found"));
        }
    }
    nfr_ipt::kernel::with_private_netns(|| ()).map_err(|e| format!("no private netns: {e}"))?;
    Ok(())
}

/// Load an iptables-save text with iptables-legacy-restore in a fresh netns; read the tables back.
fn kernel_tables(text: String, names: Vec<String>) -> Result<Vec<Vec<u8>>, String> {
    nfr_ipt::kernel::with_private_netns(move || {
        let mut child = Command::new("iptables-legacy-restore")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "iptables-legacy-restore failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        names
            .iter()
            .map(|n| nfr_ipt::kernel::get_replace_blob(n).map_err(|e| e.to_string()))
            .collect()
    })
    .map_err(|e| e.to_string())?
}

/// Load our blob into a fresh netns; return `iptables-legacy-save -t T` without comments.
fn kernel_accepts(blob: Vec<u8>, name: String) -> Result<String, String> {
    nfr_ipt::kernel::with_private_netns(move || {
        nfr_ipt::kernel::get_info(&name).map_err(|e| e.to_string())?;
        nfr_ipt::kernel::load(&blob).map_err(|e| format!("kernel refused our blob: {e}"))?;
        let out = Command::new("iptables-legacy-save")
            .args(["-t", &name])
            .output()
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect())
    })
    .map_err(|e| e.to_string())?
}

fn examples_lower_like_iptables(kernel: bool) {
    let mut failures = Vec::new();
    let (mut identical, mut accepted, mut goldens, mut tables_seen) = (0, 0, 0, 0);
    for (name, rel) in rulesets() {
        let text = std::fs::read_to_string(root().join(&rel)).unwrap();
        let (sources, hir, diags) = nfr_compiler::check::check_source(&rel, &text);
        let Some(hir) = hir else {
            // rulesets the checker rejects (examples/broken.nfr) are the checker's business
            assert!(diags.iter().any(|d| d.is_error()), "{rel}");
            continue;
        };
        let ipt_path = root().join(format!("testdata/ipt/{name}.ipt"));
        let stderr_path = root().join(format!("testdata/ipt/{name}.stderr"));
        match lower_ipt(&hir) {
            Ok(tables) => {
                let Ok(want_text) = std::fs::read_to_string(&ipt_path) else {
                    failures.push(format!(
                        "{rel}: lowers, but there is no {}",
                        ipt_path.display()
                    ));
                    continue;
                };
                let want = nfr_ipt::parse_save(&want_text)
                    .unwrap_or_else(|e| panic!("{}: {e:?}", ipt_path.display()));
                let names: Vec<String> = tables.iter().map(|(_, t)| t.name.clone()).collect();
                let mut want_names: Vec<String> = want.iter().map(|t| t.name.clone()).collect();
                let mut got_names = names.clone();
                want_names.sort();
                got_names.sort();
                if want_names != got_names {
                    failures.push(format!(
                        "{rel}: tables {got_names:?}, .ipt has {want_names:?}"
                    ));
                    continue;
                }
                let kernel_blobs = if kernel {
                    match kernel_tables(want_text.clone(), names.clone()) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            failures.push(format!("{rel}: {e}"));
                            None
                        }
                    }
                } else {
                    None
                };
                for (i, (_, t)) in tables.iter().enumerate() {
                    tables_seen += 1;
                    let ours = nfr_ipt::encode(t).unwrap();
                    let w = want.iter().find(|w| w.name == t.name).unwrap();
                    if nfr_ipt::save(t, false) != nfr_ipt::save(w, false) {
                        failures.push(format!(
                            "{rel} table {}: ours\n{}\nwant\n{}",
                            t.name,
                            nfr_ipt::save(t, false),
                            nfr_ipt::save(w, false)
                        ));
                        continue;
                    }
                    assert_eq!(ours, nfr_ipt::encode(w).unwrap(), "{rel} {}", t.name);
                    if let Some(kb) = &kernel_blobs {
                        if mask_load_time_fields(&ours) == mask_load_time_fields(&kb[i]) {
                            identical += 1;
                        } else {
                            failures.push(format!(
                                "{rel} table {}: our blob differs from the kernel's for {}",
                                t.name,
                                ipt_path.display()
                            ));
                        }
                        match kernel_accepts(ours.clone(), t.name.clone()) {
                            Ok(saved) => {
                                if saved == nfr_ipt::save(t, false) {
                                    accepted += 1;
                                } else {
                                    failures.push(format!(
                                        "{rel} table {}: iptables-legacy-save shows\n{saved}\nwe meant\n{}",
                                        t.name,
                                        nfr_ipt::save(t, false)
                                    ));
                                }
                            }
                            Err(e) => failures.push(format!("{rel} table {}: {e}", t.name)),
                        }
                    }
                }
            }
            Err(d) => {
                let got = diag::render(&d, &sources, false);
                if !stderr_path.exists() && std::env::var_os("UPDATE_EXPECT").is_none() {
                    failures.push(format!(
                        "{rel}: does not lower (no {}):\n{got}",
                        stderr_path.display()
                    ));
                } else {
                    // `UPDATE_EXPECT=1` rewrites (or writes) the golden.
                    expect_test::expect_file![&stderr_path].assert_eq(&got);
                    goldens += 1;
                }
            }
        }
    }
    eprintln!(
        "ipt: {tables_seen} tables lowered, {identical} byte-identical to the kernel's, {accepted} accepted by the kernel; {goldens} diagnostic goldens"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(tables_seen >= 6, "{tables_seen}");
    if kernel {
        assert_eq!(identical, tables_seen);
        assert_eq!(accepted, tables_seen);
    }
}

fn main() {
    gate::run(vec![
        gate::test("examples_lower_like_iptables", || {
            examples_lower_like_iptables(false)
        }),
        gate::needs(
            "examples_lower_like_iptables_in_the_kernel",
            oracle_ok,
            |()| examples_lower_like_iptables(true),
        ),
    ]);
}
