//! `nfc compile FILE --emit FORM`: show one intermediate form of a checked ruleset (the Ast as parsed, the
//! checked Hir, the bytecode, the iptables blobs, the JIT's Cranelift IR), for debugging rulesets and the
//! compiler itself.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::{ColorChoice, Outcome, front};

/// The intermediate forms `--emit` can print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The syntax tree, as parsed (before any check).
    Ast,
    /// The checked tree: resolved names, typed values, explicit protocol dependencies.
    Hir,
    /// The register bytecode, per chain, in nft's `--debug=netlink` style.
    Bytecode,
    /// iptables blobs: one `OUT.<table>.replace.bin` (`ipt_replace` + entries) per table.
    Ipt,
    /// An annotated hex dump of the iptables blobs, entry by entry.
    IptHex,
    /// The JIT's Cranelift IR (before optimisation), per chain and partition.
    Clif,
    /// The classifiers over runs of rules: dimensions, trees, sizes, and how each rule runs.
    Classify,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.nfr` file to compile.
    file: PathBuf,
    /// What to print.
    #[arg(long, value_enum)]
    emit: Emit,
    /// Colours in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    color: ColorChoice,
    /// `--emit ipt|ipt-hex`: only this table (iptables or nft name).
    #[arg(long)]
    table: Option<String>,
    /// `--emit ipt`: output prefix (default: FILE without `.nfr`).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    match args.emit {
        Emit::Ipt => crate::ipt_cmds::emit_blobs(
            &args.file,
            args.table.as_deref(),
            args.output.as_deref(),
            args.color,
        ),
        Emit::IptHex => crate::ipt_cmds::emit_hex(&args.file, args.table.as_deref(), args.color),
        Emit::Ast => {
            let text = front::read_source(&args.file)?;
            let parsed = nfr_grammar::parse(&text);
            front::print_stdout(&format!("{:#?}\n", parsed.file))?;
            if !parsed.errors.is_empty() {
                eprint!(
                    "{}",
                    front::render_syntax_errors(
                        &args.file,
                        &text,
                        &parsed.errors,
                        args.color.enabled()
                    )
                );
                return Ok(Outcome::Diagnostics);
            }
            Ok(Outcome::Ok)
        }
        Emit::Classify => {
            let checked = front::check_file(&args.file)?;
            if !checked.diagnostics.is_empty() {
                eprint!("{}", checked.render(args.color.enabled()));
            }
            let Some(hir) = &checked.hir else {
                return Ok(Outcome::Diagnostics);
            };
            let prog = nfr_compiler::lower::lower_verified(hir)
                .map_err(|e| anyhow::anyhow!("lowering to bytecode failed: {e}"))?;
            front::print_stdout(&nfr_vm::print::print_classifiers(prog.program()))?;
            Ok(Outcome::Ok)
        }
        Emit::Bytecode | Emit::Clif => {
            let mut checked = front::check_file(&args.file)?;
            if !checked.diagnostics.is_empty() {
                eprint!("{}", checked.render(args.color.enabled()));
            }
            let Some(hir) = checked.hir.take() else {
                return Ok(Outcome::Diagnostics);
            };
            // reported: the sources and diagnostics go, and the Hir once lowered, before the classifiers
            // are built
            drop(checked);
            let mut prog = nfr_compiler::lower::lower(&hir)
                .map_err(|e| anyhow::anyhow!("lowering to bytecode failed: {e}"))?;
            let names = nfr_compiler::lower::PrintNames::of(&hir);
            drop(hir);
            if args.emit == Emit::Bytecode {
                // the instructions' spans serve the engines' traces, not the listing
                prog.spans = Vec::new();
            }
            // What the engines run: with the classifiers (they leave the instructions and sets printed
            // as they are), so one program serves both forms.
            let verified = nfr_compiler::lower::classify_verified(prog)
                .map_err(|e| anyhow::anyhow!("the lowered program does not verify: {e}"))?;
            if args.emit == Emit::Clif {
                let clif = nfr_jit::clif(&verified)
                    .map_err(|e| anyhow::anyhow!("the JIT cannot compile this ruleset: {e}"))?;
                front::print_stdout(&clif)?;
            } else {
                front::write_stdout(|o| {
                    nfr_compiler::lower::write_program(&names, verified.program(), o)
                })?;
            }
            Ok(Outcome::Ok)
        }
        Emit::Hir => {
            let checked = front::check_file(&args.file)?;
            if !checked.diagnostics.is_empty() {
                eprint!("{}", checked.render(args.color.enabled()));
            }
            match &checked.hir {
                Some(hir) => {
                    front::print_stdout(&format!("{hir:#?}\n"))?;
                    Ok(Outcome::Ok)
                }
                None => Ok(Outcome::Diagnostics),
            }
        }
    }
}
