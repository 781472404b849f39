//! Memory per set element and per rule through parse, check and lowering (and what `nfc compile --emit
//! bytecode` adds), measured by a counting allocator (peak live heap bytes) on generated rulesets, and the
//! sizes of the Hir's nodes: each test fails if the cost per element or rule grows back past its bound. The
//! measurements themselves (peak RSS of the large inputs) are in docs/PERFORMANCE.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nfr_compiler::check::check_source;

/// Counts live heap bytes and their peak since the last [`reset_peak`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // counted as a new block while the old one is alive (as a moving realloc is)
        let live = LIVE.fetch_add(new, Ordering::Relaxed) + new;
        PEAK.fetch_max(live, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// One measurement at a time (tests run on threads of one process).
static ONE: Mutex<()> = Mutex::new(());

/// Peak live heap bytes above the starting level while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed).saturating_sub(base), out)
}

/// The kinds of set measured.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Hash,
    Interval,
    /// `type ipv4_addr : verdict`, every element `ADDR : drop`.
    Vmap,
}

fn set_ruleset(n: usize, kind: Kind) -> String {
    let mut s = String::from(match kind {
        Kind::Vmap => "table ip t {\n map s {\n  type ipv4_addr : verdict\n",
        _ => "table ip t {\n set s {\n  type ipv4_addr\n",
    });
    if kind == Kind::Interval {
        s.push_str("  flags interval\n");
    }
    s.push_str("  elements = {\n");
    for i in 0..n {
        s.push_str(&format!(
            "10.{}.{}.{}{},\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            if kind == Kind::Vmap { " : drop" } else { "" }
        ));
    }
    s.push_str("  }\n }\n chain c {\n  type filter hook input priority 0; policy accept;\n");
    s.push_str(if kind == Kind::Vmap {
        "  ip saddr vmap @s\n }\n}\n"
    } else {
        "  ip saddr @s drop\n }\n}\n"
    });
    s
}

fn rules_ruleset(n: usize) -> String {
    let mut s = String::from(
        "table ip t {\n chain c {\n  type filter hook input priority 0; policy accept;\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "  ip saddr 10.{}.{}.{} tcp dport {} accept\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            1 + i % 60000
        ));
    }
    s.push_str(" }\n}\n");
    s
}

/// Parse, check and lower `src` (the source text is not counted: the caller made it).
fn check_peak(src: &str) -> usize {
    let (peak, (_, hir, diags)) = peak_during(|| check_source("m.nfr", src));
    assert!(hir.is_some(), "{diags:?}");
    peak
}

#[test]
fn set_elements_stay_small_through_check_and_in_the_vm_set() {
    let _one = ONE.lock();
    let n = 20_000;
    for kind in [Kind::Hash, Kind::Interval, Kind::Vmap] {
        let src = set_ruleset(n, kind);
        let per = check_peak(&src) / n;
        eprintln!("set ({kind:?}): {per} B per element through check");
        // was 1,330 B (the AST and Hir elements copied twice, a KeyPart vector of capacity 4), then 487 B
        // (the token tree and a copy of it alive at once), then 326 B (hash), 338 B (interval) (an Expr and
        // a Hir Element each)
        let bound = if kind == Kind::Vmap {
            BOUND_VMAP
        } else {
            BOUND_SET
        };
        assert!(per <= bound, "{per} B per element ({kind:?})");
        let (_, hir, _) = check_source("m.nfr", &src);
        let prog = nfr_compiler::lower::bytecode::lower(&hir.unwrap()).unwrap();
        let set = &prog.sets[0];
        assert_eq!(set.len(), n);
        // the lowered set: fixed-width rows, no allocation per element (the kernel's are ~40-100 B)
        let per = set.elem_bytes() / n;
        eprintln!("set ({kind:?}): {per} B per element in the VM set");
        // (46 B measured for the verdict map: a 20 B `ElemData` an element beside the rows and index)
        let bound = if kind == Kind::Vmap { 48 } else { 24 };
        assert!(per <= bound, "{per} B per element in the VM set ({kind:?})");
        assert!(set.lookup(&[10, 0, 78, 31]).is_some() && set.lookup(&[10, 1, 0, 0]).is_none());
    }
}

#[test]
fn a_simple_rule_stays_small_through_check_and_lowering() {
    let _one = ONE.lock();
    let n = 10_000;
    let src = rules_ruleset(n);
    let per = check_peak(&src) / n;
    eprintln!("{per} B per rule through check");
    // was 4.2 KB, then 2.47 KB, then 2.3 KB (Hir items of 240 B, values with two heap blocks), then 1,442 B
    // (40 B instructions, the doubling's spare half of the program), then 1,181 B (the program copied as it
    // doubled, the lint's spare capacity, a copy of each rule's cubes, a map of every rule's hash), then
    // 970 B (the implied `meta l4proto tcp` a 128 B item with its text on the heap)
    assert!(per <= BOUND_RULE_CHECK, "{per} B per rule");
}

/// Bytes a set element (hash or interval) may take at the peak of check (packed tokens, then encoded
/// rows; the source text not counted): 42 B (hash) and 45 B (interval) measured.
const BOUND_SET: usize = 48;
/// The same for a verdict map's element (`ADDR : drop`): 98 B measured, its peak the lowered map's rows
/// beside the Hir's (the VM map's element data: a 20 B `ElemData` each, in a vector that doubles).
const BOUND_VMAP: usize = 104;

/// Bytes a simple rule may take at the peak of check (parse, check, lower, lint): 856 measured.
const BOUND_RULE_CHECK: usize = 880;
/// Bytes a simple rule may take at the peak of `nfc compile --emit bytecode`: 856 measured.
const BOUND_RULE_COMPILE: usize = 880;

/// `fmt::Write` that only counts.
struct Sink(usize);

impl std::fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

#[test]
fn a_simple_rule_stays_small_through_compile() {
    let _one = ONE.lock();
    let n = 10_000;
    let src = rules_ruleset(n);
    // what `nfc compile --emit bytecode` holds: the check, then the classified program printed rule by rule
    let (peak, printed) = peak_during(|| {
        let (sm, hir, diags) = check_source("m.nfr", &src);
        let hir = hir.unwrap_or_else(|| panic!("{diags:?}"));
        drop((sm, diags));
        let mut prog = nfr_compiler::lower::lower(&hir).unwrap();
        let names = nfr_compiler::lower::PrintNames::of(&hir);
        drop(hir);
        prog.spans = Vec::new();
        let prog = nfr_compiler::lower::classify_verified(prog).unwrap();
        let mut out = Sink(0);
        nfr_compiler::lower::write_program(&names, prog.program(), &mut out).unwrap();
        out.0
    });
    assert!(printed > 100 * n, "{printed} bytes printed");
    let per = peak / n;
    eprintln!("{per} B per rule through compile");
    // was 3.2 KB (two programs and the whole text at once, beside the Hir), then 1,443 B, then 1,183 B,
    // then 971 B
    assert!(per <= BOUND_RULE_COMPILE, "{per} B per rule");
}

#[test]
fn hir_nodes_stay_small() {
    use nfr_compiler::hir::{Dep, Item, Rule, Value};
    use std::mem::size_of;
    let sizes = [
        size_of::<Item>(),
        size_of::<Value>(),
        size_of::<Rule>(),
        size_of::<Dep>(),
    ];
    eprintln!("Item, Value, Rule, Dep: {sizes:?} B");
    // were 240 and 64 (with two heap blocks); the Rule was 104, before it kept two implicit matches
    // (16 B each) in place of 128 B items (and its comment as a `Box<str>`, 8 B less)
    assert!(
        sizes[0] <= 128 && sizes[1] <= 56 && sizes[2] <= 128 && sizes[3] <= 16,
        "{sizes:?}"
    );
}

#[test]
fn syntax_statements_and_instructions_stay_small() {
    use std::mem::size_of;
    let sizes = [
        size_of::<nfr_grammar::ast::Stmt>(),
        size_of::<nfr_vm::Insn>(),
    ];
    eprintln!("ast::Stmt, vm::Insn: {sizes:?} B");
    // were 288 (the set update statement in place) and 40 (a range's two bounds in place)
    assert!(sizes[0] <= 192 && sizes[1] <= 24, "{sizes:?}");
}
