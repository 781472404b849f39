//! Golden check of the bytecode lowering against nftables' own bytecode: every `;ok` rule of
//! nftables' tests/py `ip/*.t` and `inet/*.t` that nfc accepts and lowers is printed with the
//! vm printer and compared, expression line by expression line (registers and constants
//! included), with the record of the `.t.payload[.family]` file. Anonymous-set element lines
//! are compared too (as a multiset: nft's element order is its hash order) and reported
//! separately. Prints per-file and overall rates and asserts floors just below what nfc
//! reaches. Ignored when ../shared/corpus is absent. `NFR_PAYLOAD_VERBOSE=1` prints every miss.

#[path = "../../tests/gate.rs"]
mod gate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use nfr_compiler::check::check_source;
use nfr_compiler::lower::lower;
use nfr_compiler::nft_t::{Expect, LineKind, PayloadRecord, TFile, parse_payload};
use nfr_vm::print::{print_insn, print_set_elements};

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// `__set3` → `__set%d`, as nft's harness prints names before the kernel numbers them.
fn norm_names(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("__") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let word = if tail.starts_with("__set") {
            "__set"
        } else if tail.starts_with("__map") {
            "__map"
        } else {
            out.push_str("__");
            rest = &tail[2..];
            continue;
        };
        out.push_str(word);
        out.push_str("%d");
        rest = tail[word.len()..].trim_start_matches(|c: char| c.is_ascii_digit() || c == '%');
        rest = rest
            .strip_prefix('d')
            .filter(|_| tail[word.len()..].starts_with("%d"))
            .unwrap_or(rest);
    }
    out.push_str(rest);
    out
}

fn norm_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Element entries of a record's set lines (`element ... [end]`), normalised and sorted.
fn record_elements(rec: &PayloadRecord) -> Vec<String> {
    let mut v: Vec<String> = rec
        .set_lines
        .iter()
        .filter(|l| l.starts_with("element"))
        .flat_map(|l| l.split("[end]").map(norm_ws).collect::<Vec<_>>())
        .filter(|e| !e.is_empty())
        .collect();
    v.sort();
    v
}

#[derive(Default)]
struct Stat {
    supported: usize,
    exact: usize,
    elem_cmp: usize,
    elem_same: usize,
}

fn lowering_matches_nft_bytecode(root: PathBuf) {
    let verbose = std::env::var("NFR_PAYLOAD_VERBOSE").is_ok();
    let mut per_file: BTreeMap<String, Stat> = BTreeMap::new();
    let mut lower_errors = 0usize;
    let mut verify_errors: Vec<String> = Vec::new();
    for dir in ["ip", "inet"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "t"));
        files.sort();
        for path in files {
            let name = format!(
                "{dir}/{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
            );
            let tf = TFile::parse(&std::fs::read_to_string(&path).unwrap_or_default());
            for case in tf.cases(&["ip", "ip6", "inet"]) {
                let (LineKind::Rule(rule), Expect::Ok(_), false) =
                    (&case.line.kind, &case.line.expect, case.line.disabled)
                else {
                    continue;
                };
                let fam = &case.table.family;
                let specific = PathBuf::from(format!("{}.payload.{fam}", path.display()));
                let generic = PathBuf::from(format!("{}.payload", path.display()));
                let Ok(text) = std::fs::read_to_string(&specific)
                    .or_else(|_| std::fs::read_to_string(&generic))
                else {
                    continue;
                };
                let recs = parse_payload(&text);
                let Some(rec) = recs
                    .iter()
                    .find(|r| r.rule == *rule && (r.family == *fam || r.family.is_empty()))
                else {
                    continue;
                };
                let (_, hir, _) = check_source("case.nfr", &case.source);
                let Some(hir) = hir else { continue };
                let prog = match lower(&hir) {
                    Ok(p) => p,
                    Err(e) => {
                        lower_errors += 1;
                        if verbose {
                            println!("LOWER {name}:{} [{fam}] {rule}: {e}", case.line.lineno);
                        }
                        continue;
                    }
                };
                if let Err(e) = prog.clone().verify() {
                    verify_errors.push(format!("{name}:{} [{fam}] {rule}: {e}", case.line.lineno));
                }
                // the rule of the first chain the case puts it in
                let Some(&rid) = prog.chains.first().and_then(|c| c.rules.first()) else {
                    continue;
                };
                let got: Vec<String> = prog
                    .rule_insns(rid)
                    .iter()
                    .map(|i| {
                        let p = print_insn(&prog, i);
                        norm_names(p.trim_start_matches("[ ").trim_end_matches(']').trim())
                    })
                    .collect();
                let want: Vec<String> = rec.exprs.iter().map(|e| norm_ws(e)).collect();
                let got: Vec<String> = got.iter().map(|e| norm_ws(e)).collect();
                let st = per_file.entry(name.clone()).or_default();
                st.supported += 1;
                if got == want {
                    st.exact += 1;
                } else if verbose {
                    println!(
                        "DIFF {name}:{} [{fam}] {rule}\n  nft: {want:#?}\n  nfc: {got:#?}",
                        case.line.lineno
                    );
                }
                let want_el = record_elements(rec);
                if !want_el.is_empty() {
                    let mut got_el: Vec<String> = Vec::new();
                    for i in prog.rule_insns(rid) {
                        if let nfr_vm::Insn::Lookup { set, .. } = i
                            && prog
                                .sets
                                .get(set.0 as usize)
                                .is_some_and(|s| s.name.starts_with("__"))
                        {
                            got_el.extend(
                                print_set_elements(&prog, *set)
                                    .split("[end]")
                                    .map(norm_ws)
                                    .filter(|e| !e.is_empty()),
                            );
                        }
                    }
                    got_el.sort();
                    st.elem_cmp += 1;
                    if got_el == want_el {
                        st.elem_same += 1;
                    } else if verbose {
                        println!(
                            "ELEM {name}:{} [{fam}] {rule}\n  nft: {want_el:?}\n  nfc: {got_el:?}",
                            case.line.lineno
                        );
                    }
                }
            }
        }
    }
    let (mut sup, mut ex, mut ec, mut es) = (0, 0, 0, 0);
    println!("payload golden (rules lowered / identical to nft's bytecode):");
    for (f, s) in &per_file {
        println!(
            "  {f:24} {:4} / {:4} ({:5.1}%)   set elements {:3} / {:3}",
            s.exact,
            s.supported,
            pct(s.exact, s.supported),
            s.elem_same,
            s.elem_cmp
        );
        sup += s.supported;
        ex += s.exact;
        ec += s.elem_cmp;
        es += s.elem_same;
    }
    println!(
        "overall: {ex}/{sup} rules identical ({:.1}%), set elements {es}/{ec} ({:.1}%), {lower_errors} not lowered",
        pct(ex, sup),
        pct(es, ec)
    );
    assert!(sup > 300, "too few rules compared: {sup}");
    assert!(
        verify_errors.is_empty(),
        "lowered programs that do not verify:\n{}",
        verify_errors.join("\n")
    );
    assert!(pct(ex, sup) >= FLOOR, "bytecode drifted from nft's");
}

/// Just below the rate reached (see the printed summary).
const FLOOR: f64 = 99.0;

fn norm_names_rewrites_anonymous_set_names() {
    assert_eq!(
        norm_names("lookup reg 1 set __set12"),
        "lookup reg 1 set __set%d"
    );
    assert_eq!(
        norm_names("lookup reg 1 set __map0 dreg 0"),
        "lookup reg 1 set __map%d dreg 0"
    );
    assert_eq!(
        norm_names("lookup reg 1 set __set%d 0x1"),
        "lookup reg 1 set __set%d 0x1"
    );
}

fn main() {
    gate::run(vec![
        gate::needs(
            "lowering_matches_nft_bytecode",
            || gate::corpus("nft-tests-py"),
            lowering_matches_nft_bytecode,
        ),
        gate::test(
            "norm_names_rewrites_anonymous_set_names",
            norm_names_rewrites_anonymous_set_names,
        ),
    ]);
}
