//! `nfc check FILE...`: parse and check each file (with its includes) and print every diagnostic, as text with
//! source lines and carets, or as JSON with `--format json`.

use std::path::PathBuf;

use crate::{ColorChoice, Format, Outcome, front};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.nfr` files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Colours in human output.
    #[arg(long, value_enum, default_value_t)]
    color: ColorChoice,
    /// Treat warnings as errors (exit 1 when any warning is printed).
    #[arg(long)]
    deny_warnings: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Ok;
    let mut json_files = Vec::new();
    for path in &args.files {
        let checked = front::check_file(path)?;
        let failed =
            checked.has_errors() || (args.deny_warnings && !checked.diagnostics.is_empty());
        if failed {
            outcome = Outcome::Diagnostics;
        }
        match args.format {
            Format::Human => {
                if !checked.diagnostics.is_empty() {
                    eprint!("{}", checked.render(args.color.enabled()));
                }
                let (e, w) = checked.counts();
                if e == 0 {
                    eprintln!(
                        "{}: ok{}",
                        crate::source::display_name(path),
                        if w > 0 {
                            format!(" ({w} warning(s))")
                        } else {
                            String::new()
                        }
                    );
                } else {
                    eprintln!(
                        "{}: {e} error(s), {w} warning(s)",
                        crate::source::display_name(path)
                    );
                }
            }
            Format::Json => {
                // the Hir is not printed; sources and diagnostics are kept for the one document at the end
                let mut checked = checked;
                checked.hir = None;
                json_files.push((crate::source::display_name(path), checked));
            }
        }
    }
    if args.format == Format::Json {
        front::print_json_files(&json_files)?;
    }
    Ok(outcome)
}
