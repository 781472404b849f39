//! Every input in ../shared/corpus/nft-bogons (nftables' fuzzing crash reproducers) must be
//! rejected with at least one error diagnostic, and parse + check must never panic.

use std::path::{Path, PathBuf};

use nfr_compiler::check::check_source;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn bogons_are_rejected_without_panics() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/nft-bogons");
    if !root.is_dir() {
        println!("SKIP: ../shared/corpus/nft-bogons not found; bogons not run");
        return;
    }
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    assert!(!files.is_empty());
    let mut panicked = Vec::new();
    let mut accepted = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let name = f.display().to_string();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = std::panic::catch_unwind(|| check_source(&name, &text));
        std::panic::set_hook(prev);
        match r {
            Err(_) => panicked.push(name),
            Ok((_, hir, diags)) => {
                if hir.is_some() || !diags.iter().any(|d| d.is_error()) {
                    accepted.push(name);
                }
            }
        }
    }
    println!(
        "bogons: {} files, {} panicked, {} accepted",
        files.len(),
        panicked.len(),
        accepted.len()
    );
    assert!(panicked.is_empty(), "panicked on: {panicked:#?}");
    assert!(accepted.is_empty(), "accepted (no error): {accepted:#?}");
}
