//! Kernel oracle for the corpus rulesets that lower to iptables: for each such case, the blob nfc
//! emits must equal the table the kernel builds from the equivalent iptables-save text (our
//! `nfr_ipt::save` of the lowered table, loaded with `iptables-legacy-restore` in a private
//! network namespace and read back with IPT_SO_GET_ENTRIES; comefrom and counters masked).
//! Ignored without root / iptables-legacy / netns; fails instead when `NFC_REQUIRE_ORACLE=1`.

#[path = "../gate.rs"]
mod gate;

mod common;

use common::{corpus_files, root};
use std::process::{Command, Stdio};

use nfr_compiler::lower::ipt::lower_ipt;
use nfr_ipt::blob::mask_load_time_fields;
use nfr_testsuite::parse_corpus;

/// Ok when root, `iptables-legacy-restore` and a private network namespace are there.
fn oracle() -> Result<(), String> {
    gate::root()?;
    gate::have_tools(&["iptables-legacy-restore"])?;
    nfr_ipt::kernel::with_private_netns(|| ())
        .map_err(|e| format!("no private network namespace: {e}"))
}

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
            .ok_or("no stdin")?
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

fn corpus_blobs_equal_the_kernels_tables(_: ()) {
    let files = corpus_files();
    let (mut rulesets, mut tables, mut fails) = (0usize, 0usize, Vec::new());
    for f in &files {
        let corpus = parse_corpus(&std::fs::read_to_string(f).unwrap()).unwrap();
        for case in &corpus.cases {
            let source = match (&case.rules, &case.file) {
                (Some(r), _) => r.clone(),
                (None, Some(p)) => std::fs::read_to_string(root().join(p)).unwrap(),
                _ => continue,
            };
            let (_, Some(hir), _) = nfr_compiler::check::check_source(&case.name, &source) else {
                continue;
            };
            let Ok(lowered) = lower_ipt(&hir) else {
                continue;
            };
            rulesets += 1;
            let text: String = lowered
                .iter()
                .map(|(_, t)| nfr_ipt::save(t, false))
                .collect();
            let names: Vec<String> = lowered.iter().map(|(_, t)| t.name.clone()).collect();
            match kernel_tables(text.clone(), names) {
                Err(e) => fails.push(format!("{}: {e}\n{text}", case.name)),
                Ok(kb) => {
                    for ((_, t), k) in lowered.iter().zip(kb) {
                        tables += 1;
                        let ours = nfr_ipt::encode(t).unwrap();
                        if mask_load_time_fields(&ours) != mask_load_time_fields(&k) {
                            fails.push(format!(
                                "{}: table {} differs from the kernel's for\n{text}",
                                case.name, t.name
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!("corpus ipt: {rulesets} rulesets lower, {tables} tables compared with the kernel");
    assert!(fails.is_empty(), "{}", fails.join("\n\n"));
    assert!(
        rulesets >= 10,
        "only {rulesets} corpus rulesets lower to iptables"
    );
}

fn main() {
    gate::run(vec![gate::needs(
        "corpus_blobs_equal_the_kernels_tables",
        oracle,
        corpus_blobs_equal_the_kernels_tables,
    )]);
}
