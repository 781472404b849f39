//! Where a classified ClassBench lookup spends its time: the same packets through the
//! classifier's walk alone (keys read beforehand), the key reader plus the walk, the
//! interpreter and the JIT (both optimisation levels, and calling the shared walk) over the
//! classified program, and the JIT over a one-rule chain (the fixed cost of a call). Alternating rounds, medians in ns/packet.
//!
//! `cargo run --release -p nfr-jit --example cls_profile -- acl1_1K [rounds]` (a set of
//! `shared/corpus/classbench/song-filterset`).

#[path = "../tests/common/classbench.rs"]
mod cb;

use nfr_jit::{JitOptions, JitProgram, OptLevel};
use nfr_vm::classify::MAX_DIMS;
use nfr_vm::{ChainId, Effects, State};
use std::hint::black_box;
use std::time::Instant;

/// One walk, not inlined (so that cachegrind can tell it apart).
#[inline(never)]
fn walk_one(cls: &nfr_vm::classify::Classifier, k: &[u32; MAX_DIMS]) -> u32 {
    cls.first(k, 0).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let set = args.get(1).map_or("acl1_1K", String::as_str);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(11);
    let Some(dir) = cb::dir() else {
        eprintln!("shared/corpus/classbench not found");
        std::process::exit(2);
    };
    let rules = cb::parse_rules(&std::fs::read_to_string(dir.join(set)).expect("rules"));
    let trace =
        cb::parse_trace(&std::fs::read_to_string(dir.join(format!("{set}_trace"))).expect("trace"));
    // With NFC_NFR=FILE.nfr (`nfc import classbench` of the same set): the rules as nfc lowers
    // them; else built directly (`tests/common/classbench.rs`).
    let linear = match std::env::var("NFC_NFR") {
        Ok(f) => {
            let text = std::fs::read_to_string(&f).expect("ruleset");
            let (_, hir, diags) = nfr_compiler::check::check_source(&f, &text);
            let hir = hir.unwrap_or_else(|| panic!("{f}: {} diagnostics", diags.len()));
            let p = nfr_compiler::lower::lower(&hir).expect("lowers");
            p.verify().expect("verifies")
        }
        Err(_) => cb::program(&rules, rules.len()),
    };
    let t = Instant::now();
    let mut opts = nfr_vm::classify::ClassifyOptions::default();
    if let Some(b) = std::env::var("NFC_BINTH").ok().and_then(|v| v.parse().ok()) {
        opts.binth = b;
    }
    if let Some(b) = std::env::var("NFC_SPFAC10")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.spfac10 = b;
    }
    let mut p = linear.program().clone();
    p.classify(&opts);
    let prog = p.verify().expect("verifies");
    let build = t.elapsed();
    let pkts: Vec<_> = trace.iter().map(|t| cb::packet(*t)).collect();
    let cls = &prog.program().classifiers[0];
    print!("{}", nfr_vm::print::print_classifiers(prog.program()));
    println!(
        "{set}: {} rules, {} classifier(s), {} tree(s), {} bytes, built in {:.1} ms",
        rules.len(),
        prog.program().classifiers.len(),
        cls.trees.len(),
        prog.program().classifier_bytes(),
        build.as_secs_f64() * 1e3
    );
    let keys: Vec<[u32; MAX_DIMS]> = pkts
        .iter()
        .map(|(b, st)| {
            let mut k = [0u32; MAX_DIMS];
            nfr_vm::interp::classify_key(cls, b, st, &mut k);
            k
        })
        .collect();
    let mut ws = nfr_vm::classify::WalkStats::default();
    for k in &keys {
        cls.first_stats(k, 0, &mut ws);
    }
    let per = |x: u64| x as f64 / keys.len() as f64;
    println!(
        "per lookup: {:.2} trees, {:.2} nodes, {:.2} entries, {:.2} lines",
        per(ws.trees),
        per(ws.nodes),
        per(ws.entries),
        per(ws.lines)
    );
    if std::env::var_os("NFC_STATS_ONLY").is_some() {
        return;
    }
    if let Ok(m) = std::env::var("NFC_WALK_ONLY") {
        // For cachegrind: the walk alone, once over the trace.
        let _ = m;
        let mut sum = 0u64;
        for k in &keys {
            sum += u64::from(walk_one(cls, black_box(k)));
        }
        println!("{sum}");
        return;
    }
    let jit_none = JitProgram::compile_with(&prog, &JitOptions::default()).expect("compiles");
    let jit_speed = JitProgram::compile_with(
        &prog,
        &JitOptions {
            opt_level: OptLevel::Speed,
            ..JitOptions::default()
        },
    )
    .expect("compiles");
    let jit_rust = JitProgram::compile_with(
        &prog,
        &JitOptions {
            native_walk: false,
            ..JitOptions::default()
        },
    )
    .expect("compiles");
    let one = cb::program(&rules, 1);
    let jit_one = JitProgram::compile_with(&one, &JitOptions::default()).expect("compiles");
    let mut s = State::new(&prog);
    let mut s1 = State::new(&one);
    let mut fx = Effects::default();
    if let Ok(m) = std::env::var("NFC_ONE") {
        // For callgrind: one engine, once over the trace.
        let jit = match m.as_str() {
            "one" => &jit_one,
            "rust" => &jit_rust,
            "speed" => &jit_speed,
            _ => &jit_none,
        };
        let st_ = if m == "one" { &mut s1 } else { &mut s };
        for (b, st) in &pkts {
            let mut st = st.clone();
            black_box(jit.run(st_, ChainId(0), b, &mut st, &mut fx));
        }
        return;
    }
    let names = [
        "walk",
        "key+walk",
        "interp",
        "jit none",
        "jit speed",
        "jit walk",
        "jit 1 rule",
    ];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let reps = (200_000 / pkts.len()).max(1);
    let n = (reps * pkts.len()) as f64;
    for _ in 0..rounds {
        for (i, v) in t.iter_mut().enumerate() {
            let t0 = Instant::now();
            for _ in 0..reps {
                match i {
                    0 => {
                        for k in &keys {
                            black_box(cls.first(black_box(k), 0));
                        }
                    }
                    1 => {
                        for (b, st) in &pkts {
                            let mut k = [0u32; MAX_DIMS];
                            nfr_vm::interp::classify_key(cls, b, st, &mut k);
                            black_box(cls.first(&k, 0));
                        }
                    }
                    _ => {
                        for (b, st) in &pkts {
                            let mut st = st.clone();
                            black_box(match i {
                                2 => prog.run(&mut s, ChainId(0), b, &mut st, &mut fx),
                                3 => jit_none.run(&mut s, ChainId(0), b, &mut st, &mut fx),
                                4 => jit_speed.run(&mut s, ChainId(0), b, &mut st, &mut fx),
                                5 => jit_rust.run(&mut s, ChainId(0), b, &mut st, &mut fx),
                                _ => jit_one.run(&mut s1, ChainId(0), b, &mut st, &mut fx),
                            });
                        }
                    }
                }
            }
            v.push(t0.elapsed().as_nanos() as f64 / n);
        }
    }
    for (name, v) in names.iter().zip(t) {
        println!("{name:>11} {:>8.1} ns/packet", median(v));
    }
}
