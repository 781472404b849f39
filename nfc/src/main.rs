//! The `nfc` binary: the only place that parses command lines, opens files, prints colours and turns errors into
//! exit codes (0 ok, 1 diagnostics, 2 operational error). Every subcommand lives in its own module and calls into
//! the library crates, which take bytes and strings.

// No unsafe code; the tests' counting allocator (`run::worker::tests`) is the one exception.
#![cfg_attr(not(test), forbid(unsafe_code))]

mod bench;
mod check;
mod classbench;
mod compile;
mod fmt;
mod front;
mod import;
mod ipt_cmds;
mod run;
mod source;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Check, format, compile and run netfilter rulesets written in nftables syntax.
#[derive(Parser, Debug)]
#[command(name = "nfc", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Add DIR to the directories searched for `include "NAME"` (repeatable; searched in order, before the
    /// including file's directory; names starting with `/`, `./` or `../` are not searched).
    #[arg(short = 'I', long = "includepath", value_name = "DIR", global = true)]
    include: Vec<std::path::PathBuf>,
    /// Print at most N errors and N warnings per file (0: all), as nft stops after 10 errors.
    #[arg(long, value_name = "N", global = true, default_value_t = front::DEFAULT_MAX_ERRORS)]
    max_errors: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and check rulesets; print every diagnostic.
    #[command(
        after_help = "Exit status: 0 no errors (warnings too, unless --deny-warnings), 1 diagnostics, 2 operational error (a file that cannot be read)."
    )]
    Check(check::Args),
    /// Print rulesets in canonical form (as `nft list ruleset` prints them).
    #[command(
        after_help = "Exit status: 0 printed (with --check: every file is canonical), 1 diagnostics, or with --check a file that is not canonical (its diff is printed), 2 operational error."
    )]
    Fmt(fmt::Args),
    /// Show an intermediate form of a ruleset.
    #[command(
        after_help = "Exit status: 0 ok, 1 diagnostics (or, for --emit ipt|ipt-hex, a ruleset that does not lower to iptables), 2 operational error."
    )]
    Compile(compile::Args),
    /// Check an iptables blob (`ipt_replace`) as the kernel's translate_table does.
    #[command(
        after_help = "Exit status: 0 the kernel would accept the blob, 1 it would refuse it (errno, offset and reason printed), 2 operational error (unreadable file)."
    )]
    Verify(ipt_cmds::VerifyArgs),
    /// Print an iptables blob as iptables-save text or as `.nfr`.
    #[command(
        after_help = "Exit status: 0 ok, 2 operational error (unreadable file, not a table blob, no .nfr form)."
    )]
    Decompile(ipt_cmds::DecompileArgs),
    /// Turn another tool's ruleset into `.nfr` (`nfc import iptables-save FILE`, `nfc import classbench RULES`).
    #[command(subcommand)]
    Import(import::ImportCmd),
    /// Compile a ruleset to iptables tables and install them in this network namespace (root).
    #[command(
        after_help = "Exit status: 0 every table loaded, 1 diagnostics (the ruleset does not check or lower to iptables) or a table the kernel refused (its errno printed), 2 operational error (no CAP_NET_ADMIN: not root; unreadable file)."
    )]
    Load(ipt_cmds::LoadArgs),
    /// Run a ruleset on traffic (`nfc run pcap RULES CAPTURE`).
    #[command(subcommand)]
    Run(run::RunCmd),
    /// Rule-evaluation speed of every engine (interpreter, JIT, iptables executor) on captures, side by side.
    #[command(
        after_help = "Exit status: 0 ok, 1 diagnostics in a ruleset or an engine that disagreed with the interpreter, 2 operational error."
    )]
    Bench(bench::Args),
}

/// How diagnostics are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable, with source lines and carets.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
}

/// When to use colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether stderr output should be coloured.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal as _;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
            }
        }
    }
}

/// The outcome of a subcommand, mapped to the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the input has errors (diagnostics were printed) or is not canonical.
    Diagnostics,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    source::set_include_dirs(cli.include);
    front::set_max_errors(cli.max_errors);
    let result = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Verify(a) => ipt_cmds::verify(a),
        Command::Decompile(a) => ipt_cmds::decompile(a),
        Command::Import(c) => import::run(c),
        Command::Load(a) => ipt_cmds::load(a),
        Command::Run(c) => run::run(c),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Diagnostics) => ExitCode::from(1),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let _ = std::io::stdout().flush();
            eprintln!("nfc: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
