//! `nfc fmt FILE...`: print each file in canonical form (the layout `nft list ruleset` uses), or with `--check`
//! print a unified diff (as `rustfmt --check` and `diff -u` do) of each file that is not canonical. Files with
//! syntax errors are not formatted: their errors are printed.

use std::path::PathBuf;

use crate::{ColorChoice, Outcome, front};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.nfr` files to format.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Do not print the files; print a unified diff of each one that is not in canonical form (exit 1).
    #[arg(long)]
    check: bool,
    /// Colours in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    color: ColorChoice,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Ok;
    for path in &args.files {
        let text = front::read_source(path)?;
        let parsed = nfr_grammar::parse(&text);
        if !parsed.errors.is_empty() {
            eprint!(
                "{}",
                front::render_syntax_errors(path, &text, &parsed.errors, args.color.enabled())
            );
            outcome = Outcome::Diagnostics;
            continue;
        }
        let formatted = nfr_grammar::format(&parsed.file);
        if args.check {
            if formatted != text {
                let name = crate::source::display_name(path);
                let diff = similar::TextDiff::from_lines(&text, &formatted)
                    .unified_diff()
                    .header(&name, &format!("{name} (canonical)"))
                    .to_string();
                front::print_stdout(&diff)?;
                outcome = Outcome::Diagnostics;
            }
        } else {
            front::print_stdout(&formatted)?;
        }
    }
    Ok(outcome)
}
