//! Generates the lalrpop parser (src/nfr.lalrpop) into OUT_DIR (never into the source tree).
fn main() {
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    lalrpop::Configuration::new()
        .set_in_dir("src")
        .set_out_dir(out)
        .process()
        .expect("lalrpop grammar");
    println!("cargo:rerun-if-changed=src/nfr.lalrpop");
}
