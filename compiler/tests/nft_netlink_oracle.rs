//! The bytecode printout against the real nft: for the goldens listed in `AGREE`
//! (`testdata/bytecode/<name>.nfr`), `nft --debug=netlink -c -f FILE` (inside `unshare -n`, as
//! root) must print the same rules, expression for expression, and the same anonymous sets
//! and elements as `print_program`. Differences that are not about the bytecode are
//! normalised away: nft names anonymous sets `__objmap%d` (nfc numbers them), prints the
//! declarations of named sets (nfc's printout has rules only), appends element `userdata`,
//! and sizes anonymous interval sets by their start/end elements. Ignored
//! without root / nft / network namespaces; fails instead with `NFC_REQUIRE_ORACLE=1`.

#[path = "../../tests/gate.rs"]
mod gate;

use std::path::PathBuf;
use std::process::Command;

use nfr_compiler::check::check;
use nfr_compiler::diag::{SourceMap, render_short};
use nfr_compiler::lower::{lower, print_program};

/// Goldens whose printout agrees with nft's (others differ on purpose, e.g. `ct helper set
/// "NAME"` lowered to an immediate of the helper type instead of nft's `objref type 3`).
const AGREE: &[&str] = &["objmaps", "dynset"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the oracle can't run here, if it can't.
/// `__objmap3` → `__objmap%d` (and `__set`, `__map`).
fn anon_names(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("__") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let prefix = ["__objmap", "__set", "__map"]
            .into_iter()
            .find(|p| after.starts_with(p));
        match prefix {
            Some(p) => {
                out.push_str(p);
                let tail = &after[p.len()..];
                let digits = if tail.starts_with("%d") {
                    2
                } else {
                    tail.bytes().take_while(u8::is_ascii_digit).count()
                };
                out.push_str("%d");
                rest = &tail[digits..];
            }
            None => {
                out.push_str("__");
                rest = &after[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The comparable form of a printout: no `(null)` object lines, no declarations of the named
/// sets `named`, no element userdata, no anonymous set sizes, anonymous names unnumbered.
fn normalise(text: &str, table: &str, named: &[String]) -> String {
    let mut out = Vec::new();
    let mut skip_elements = false;
    for line in text.lines() {
        if line.contains("(null)") {
            continue;
        }
        if skip_elements {
            skip_elements = false;
            if line.starts_with('\t') {
                continue;
            }
        }
        let first = line.split(' ').next().unwrap_or("");
        if named.iter().any(|n| n == first) && line.starts_with(&format!("{first} {table} ")) {
            skip_elements = line.ends_with(&format!("{table} 0"));
            continue;
        }
        let mut l = anon_names(line);
        if let Some(i) = l.find("  userdata = ") {
            l.truncate(i);
        }
        if l.starts_with("__")
            && let Some(i) = l.find(" size ")
        {
            l.truncate(i);
        }
        out.push(l.trim_end().to_string());
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out.join("\n")
}

fn objref_printout_matches_nft_debug_netlink(_: ()) {
    let mut failures = Vec::new();
    for name in AGREE {
        let path = root().join(format!("testdata/bytecode/{name}.nfr"));
        let text = std::fs::read_to_string(&path).expect("golden input");
        let mut sm = SourceMap::new();
        let id = sm.add((*name).to_string(), text);
        let mut loader = |_: &str| Err("no includes".to_string());
        let (hir, diags) = check(&mut sm, id, &mut loader);
        let hir = hir.unwrap_or_else(|| panic!("{name}: {}", render_short(&diags, &sm)));
        let prog = lower(&hir).expect("lowering");
        let ours = print_program(&hir, &prog);
        let nft = Command::new("unshare")
            .args(["-n", "nft", "--debug=netlink", "-c", "-f"])
            .arg(&path)
            .output()
            .expect("run nft");
        assert!(
            nft.status.success(),
            "{name}: nft rejects it: {}",
            String::from_utf8_lossy(&nft.stderr)
        );
        let theirs = String::from_utf8_lossy(&nft.stdout);
        let table = hir.tables.first().map_or("", |t| t.name.as_str());
        let named: Vec<String> = hir.sets.iter().map(|s| s.name.clone()).collect();
        let (a, b) = (
            normalise(&ours, table, &named),
            normalise(&theirs, table, &named),
        );
        if a != b {
            failures.push(format!("{name}:\n--- nfc\n{a}\n--- nft\n{b}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn normalise_drops_what_is_not_bytecode() {
    let nft = "ip (null) (null) use 0\nwho t 40\nwho t 0\n\telement 0100000a  : 0 [end]\n\
               __objmap%d t 47 size 5\n__objmap%d t 0\n\telement 00000000  : 1 [end]  \
               userdata = { \\x01 }\nip t c\n  [ objref sreg 1 set __objmap%d ]\n\n";
    let ours = "__objmap0 t 47 size 2\n__objmap0 t 0\n\telement 00000000  : 1 [end]\nip t c\n  \
                [ objref sreg 1 set __objmap0 ]\n";
    let named = vec!["who".to_string()];
    assert_eq!(normalise(nft, "t", &named), normalise(ours, "t", &named));
    assert_ne!(
        normalise(nft, "t", &named),
        normalise(&ours.replace("sreg 1", "sreg 2"), "t", &named)
    );
}

fn main() {
    gate::run(vec![
        gate::needs(
            "objref_printout_matches_nft_debug_netlink",
            || gate::netns_tool("nft"),
            objref_printout_matches_nft_debug_netlink,
        ),
        gate::test(
            "normalise_drops_what_is_not_bytecode",
            normalise_drops_what_is_not_bytecode,
        ),
    ]);
}
