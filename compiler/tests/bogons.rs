//! Every input in ../shared/corpus/nft-bogons (nftables' fuzzing crash reproducers) must be
//! rejected with at least one error diagnostic, and parse + check must never panic.

#[path = "../../tests/gate.rs"]
mod gate;

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

fn bogons_are_rejected_without_panics(root: PathBuf) {
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

/// Deterministic mutations (truncations, single-character substitutions) of the golden
/// diagnostics inputs and the examples: parse + check must never panic.
fn mutated_inputs_never_panic() {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    walk(&base.join("testdata/diagnostics"), &mut files);
    walk(&base.join("examples"), &mut files);
    files.retain(|p| p.extension().is_some_and(|e| e == "nfr"));
    files.sort();
    let subst = [
        '{', '}', ';', '$', '@', '.', '-', '/', ':', '"', '\n', '0', 'x', ' ',
    ];
    let mut runs = 0usize;
    let mut panicked = Vec::new();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let step = (bounds.len() / 40).max(1);
        for (k, &i) in bounds.iter().enumerate().step_by(step) {
            let mut variants = vec![text[..i].to_string()];
            let c = subst[k % subst.len()];
            let next = bounds.get(k + 1).copied().unwrap_or(text.len());
            variants.push(format!("{}{c}{}", &text[..i], &text[next..]));
            for v in variants {
                runs += 1;
                if std::panic::catch_unwind(|| nfr_compiler::check::check_source("m.nfr", &v))
                    .is_err()
                {
                    panicked.push(format!("{}@{i}", f.display()));
                }
            }
        }
    }
    std::panic::set_hook(prev);
    println!("mutations: {runs} runs, {} panics", panicked.len());
    assert!(panicked.is_empty(), "panicked on: {panicked:#?}");
}

fn main() {
    gate::run(vec![
        gate::needs(
            "bogons_are_rejected_without_panics",
            || gate::corpus("nft-bogons"),
            bogons_are_rejected_without_panics,
        ),
        gate::test("mutated_inputs_never_panic", mutated_inputs_never_panic),
    ]);
}
