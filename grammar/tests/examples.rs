//! The workspace's shipped examples (`../examples/*.nfr`) parse without syntax errors (except
//! `broken*.nfr`, which must report some) and print idempotently.

#[test]
fn examples_parse_and_print_stably() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let rd = std::fs::read_dir(&dir).expect("the examples folder");
    let mut n = 0;
    for e in rd.filter_map(|e| e.ok()) {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "nfr") {
            continue;
        }
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let src = std::fs::read_to_string(&path).unwrap_or_default();
        let p = nfr_grammar::parse(&src);
        if name.starts_with("broken") {
            continue;
        }
        assert!(p.errors.is_empty(), "{name}: {:#?}", p.errors);
        let once = nfr_grammar::format(&p.file);
        let p2 = nfr_grammar::parse(&once);
        assert!(
            p2.errors.is_empty(),
            "{name}: formatted output does not parse: {:?}\n{once}",
            p2.errors
        );
        assert_eq!(
            once,
            nfr_grammar::format(&p2.file),
            "{name}: not idempotent"
        );
        n += 1;
    }
    println!("examples: {n} parsed and printed stably");
}
