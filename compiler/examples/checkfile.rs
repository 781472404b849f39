//! Debug helper: check one file and print the rendered diagnostics (and the Hir with -v).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: checkfile FILE [-v]");
        return;
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut sm = nfr_compiler::diag::SourceMap::new();
    let id = sm.add(path.clone(), text);
    let mut loader = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
    let (hir, diags) = nfr_compiler::check::check(&mut sm, id, &mut loader);
    print!("{}", nfr_compiler::diag::render(&diags, &sm, false));
    if args.iter().any(|a| a == "-v") {
        match &hir {
            Some(h) => println!("{}", h.listing(&sm)),
            None => println!("(no Hir: errors)"),
        }
    }
}
