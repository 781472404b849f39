//! `nfc run pcap RULES CAPTURE`: replays a capture through the ruleset the way a Linux host would see it —
//! the ruleset's base chains registered as hook entries beside defrag and conntrack (`nfr_runtime::engine`),
//! every frame sent along the path the path model gives it (see [`path`]) — and reports what happened:
//! verdicts per hook, skipped and malformed frames, the ruleset with its counters, the conntrack table and
//! events, per-packet traces, JSON. With `--threads N` flows are sharded over N workers by a symmetric hash of
//! the address pair, each with its own conntrack shard; the results are merged in frame order (or, when nothing is
//! printed per frame, every worker reads the capture itself and the totals are merged at the end), so the output
//! is the same as with one thread.

mod path;
pub(crate) mod pcapw;
mod progress;
mod report;
mod setup;
mod worker;

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use nfr_runtime::pcap::PcapReader;

use crate::{ColorChoice, Outcome, front};

pub use setup::Setup;

/// Which engine runs the ruleset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The reference bytecode interpreter.
    Interp,
    /// Native code (Cranelift); falls back to the interpreter with a note when unavailable.
    Jit,
    /// The iptables blob executor (only for rulesets that lower to iptables).
    Ipt,
}

/// Where packets go (see the path model in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// By address: `--local` addresses decide input/output/forward (everything forwarded without `--local`).
    Auto,
    /// Every packet PREROUTING -> INPUT, every destination local (the kernel harness of ct-expected).
    Input,
}

/// The path model, as `nfc run pcap --help` prints it (the README's "Replaying captures" says the same).
const PATH_HELP: &str = "\
Path model:
  to a --local address                  PREROUTING -> INPUT
  from a --local address                OUTPUT -> POSTROUTING
  anything else (all without --local)   PREROUTING -> FORWARD -> POSTROUTING
  every packet with --path input        PREROUTING -> INPUT

Interfaces (meta iif/iifname, oif/oifname), the first rule that applies:
  1. --iif NAME / --oif NAME, for every packet;
  2. the capture's interface (pcapng Interface Description Block `if_name`; interface ids are per
     section): the input interface of a packet entering PREROUTING, the output interface of a packet
     leaving through OUTPUT (a forwarded packet's output interface is not in the capture);
  3. --iface NAME=PREFIX routes: input = the interface whose prefix holds the source, output = the one
     holding the destination (longest prefix wins). With host bits (eth0=198.51.100.1/24, as `ip addr add`
     takes it) the address is also the interface's own: local to the host, what masquerade (output
     interface) and redirect (input interface) map to.
  Received packets have no output interface, sent ones no input interface. Names are cut to 15 bytes.
  Interface indexes: lo is 1, other names 2, 3, ... in the order --iface, --iif, --oif, then capture
  interfaces as they first appear.

Exit status: 0 ok (also a truncated capture, read up to where it could be, with a warning), 1 diagnostics in
the ruleset, 2 operational error (unreadable file, a capture where the ruleset goes or the reverse, no frame
readable).";

#[derive(Subcommand, Debug)]
pub enum RunCmd {
    /// Replay a pcap or pcapng capture through a ruleset.
    #[command(after_help = PATH_HELP)]
    Pcap(Args),
}

/// The arguments of `nfc run pcap ARGV...` as the command line parses them (for the run modules' tests).
#[cfg(test)]
fn test_args(argv: &[&str]) -> Args {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: RunCmd,
    }
    let argv = ["nfc", "pcap"].iter().chain(argv);
    let RunCmd::Pcap(args) = <Cli as clap::Parser>::parse_from(argv).cmd;
    args
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The `.nfr` ruleset.
    pub rules: PathBuf,
    /// The capture (pcap or pcapng).
    pub capture: PathBuf,
    /// Engine: interp, jit (default; falls back to interp) or ipt.
    #[arg(long, value_enum, default_value = "jit")]
    pub engine: EngineArg,
    /// The filtering host's own addresses or prefixes (packets to them go to INPUT, from them through OUTPUT).
    #[arg(long, num_args = 1.., value_name = "PREFIX")]
    pub local: Vec<String>,
    /// Path model: auto (by --local) or input (every packet PREROUTING -> INPUT).
    #[arg(long, value_enum, default_value = "auto")]
    pub path: PathArg,
    /// An interface and the prefix routed through it, NAME=PREFIX (repeatable): `iif` is the interface of
    /// the longest prefix holding the source, `oif` the one holding the destination (when neither
    /// --iif/--oif nor the pcapng interface name applies). NAME=ADDRESS/LEN with host bits also gives the
    /// interface that address (the host's own; masquerade and redirect map to it).
    #[arg(long = "iface", value_name = "NAME=PREFIX")]
    pub ifaces: Vec<String>,
    /// Input interface of every received packet (overrides the pcapng interface name and --iface).
    #[arg(long)]
    pub iif: Option<String>,
    /// Output interface of every forwarded or sent packet (overrides the pcapng interface name and --iface).
    #[arg(long)]
    pub oif: Option<String>,
    /// Seed of the generator behind `numgen random`, `meta random` and iptables' `-m statistic --mode random`
    /// (where the kernel draws random numbers): the same seed gives the same run.
    #[arg(long, value_name = "N", default_value_t = nfr_vm::prandom::DEFAULT_SEED)]
    pub seed: u64,
    /// Print the final conntrack table (conntrack -L format).
    #[arg(long)]
    pub ct_list: bool,
    /// Leave out the ruleset listing with this run's counters (the report alone; for big rulesets).
    #[arg(long, visible_alias = "summary")]
    pub no_listing: bool,
    /// Print conntrack events (conntrack -E style).
    #[arg(long)]
    pub ct_events: bool,
    /// Print per packet the hooks, chains and rules traversed, the verdict and the ct state.
    #[arg(long)]
    pub trace: bool,
    /// JSON output (with --trace: one JSON object per packet per line, then the report).
    #[arg(long)]
    pub json: bool,
    /// Write the packets that passed every hook to this pcap.
    #[arg(long, value_name = "FILE")]
    pub write_accepted: Option<PathBuf>,
    /// Write the packets that were dropped (by a rule, policy, reject, or conntrack) to this pcap.
    #[arg(long, value_name = "FILE")]
    pub write_dropped: Option<PathBuf>,
    /// Worker threads (flows sharded by address pair; output identical to one thread). At least 1.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub threads: usize,
    /// Shorten inter-packet gaps longer than this many seconds (virtual time).
    #[arg(long, value_name = "SECONDS")]
    pub gap_cap: Option<f64>,
    /// Verify TCP/UDP/ICMP checksums in conntrack (`nf_conntrack_checksum=1`; off by default because
    /// captures usually carry offloaded checksums).
    #[arg(long)]
    pub ct_checksum: bool,
    /// TCP ports whose new connections get the FTP helper without a rule (comma-separated), as kernels before 4.7
    /// did with nf_conntrack_helper=1. None by default: as in 6.x kernels, only `ct helper set` attaches helpers
    /// (and `--engine ipt` has no rule for it, so use this there).
    #[arg(long, default_value = "", value_name = "PORTS")]
    pub ftp_ports: String,
    /// A conntrack sysctl, by its kernel name (`net.netfilter.` optional), e.g. `nf_conntrack_max=65536`,
    /// `nf_conntrack_tcp_be_liberal=1`, `nf_conntrack_tcp_timeout_established=3600`; repeatable, applied in order
    /// after `--ct-checksum`. Everything else keeps the kernel's default.
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    pub sysctls: Vec<String>,
    /// Time the stages of the replay (reading, parsing and routing, conntrack, the chains, the report) on one
    /// frame in 16 and print what each costs a frame, after the run's time.
    #[arg(long)]
    pub profile: bool,
    /// Never show the progress bar (shown on stderr, when it is a terminal, for runs longer than a second:
    /// bytes read of the capture's size, frames, rate).
    #[arg(long)]
    pub no_progress: bool,
    /// Colours in diagnostics.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorChoice,
}

pub fn run(cmd: RunCmd) -> anyhow::Result<Outcome> {
    match cmd {
        RunCmd::Pcap(a) => run_pcap(a),
    }
}

/// Opens a capture for streaming.
pub fn open_capture(path: &std::path::Path) -> anyhow::Result<PcapReader<'static>> {
    open_capture_sized(path).map(|(r, _)| r)
}

/// The snaplen of a legacy pcap header (either byte order, micro- or nanosecond magic); None for pcapng.
fn legacy_snaplen(head: &[u8]) -> Option<u32> {
    let magic: [u8; 4] = head.get(..4)?.try_into().ok()?;
    let field: [u8; 4] = head.get(16..20)?.try_into().ok()?;
    match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => Some(u32::from_le_bytes(field)),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => Some(u32::from_be_bytes(field)),
        _ => None,
    }
}

/// Opens a capture for streaming; also its size in bytes (0 when not a regular file).
fn open_capture_sized(path: &std::path::Path) -> anyhow::Result<(PcapReader<'static>, u64)> {
    let (mut f, len) = crate::source::open_stream(path)?;
    // the start, read here and given back whole (the pcap parser looks at its first read only): a legacy
    // header's snaplen of 0 is accepted, with a warning
    let mut head = Vec::with_capacity(1 << 16);
    (&mut f)
        .take(1 << 16)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", crate::source::display_name(path)))?;
    if legacy_snaplen(&head) == Some(0) {
        eprintln!(
            "nfc: warning: {}: the pcap header's snaplen is 0 (no frame should have bytes); frames are read with the lengths their records give",
            crate::source::display_name(path)
        );
    }
    let f = std::io::Cursor::new(head).chain(f);
    let r = PcapReader::new(f).map_err(|e| capture_error(path, &e, len))?;
    Ok((r, len))
}

/// Why `path` could not be opened as a capture, in words: for a file that is not one, its magic number, and
/// whether it looks like a ruleset given in the capture's place.
fn capture_error(
    path: &std::path::Path,
    e: &nfr_runtime::pcap::PcapError,
    len: u64,
) -> anyhow::Error {
    use nfr_runtime::pcap::{PcapErrorKind, magic};
    let p = path.display();
    if e.kind != PcapErrorKind::HeaderNotRecognized {
        return anyhow::anyhow!("{p}: {} (at byte {})", e.kind, e.offset);
    }
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let Some(m) = magic(&head[..n]) else {
        return anyhow::anyhow!(
            "{p}: not a pcap or pcapng file: {len} bytes, too short for a header"
        );
    };
    let text = std::str::from_utf8(&head[..n]).is_ok_and(|t| !t.contains('\0'));
    anyhow::anyhow!(
        "{p}: not a pcap or pcapng file: unknown magic 0x{m:08x}{}",
        if text {
            " (this is text; a ruleset? `nfc run pcap RULES CAPTURE` takes the ruleset first)"
        } else {
            ""
        }
    )
}

fn run_pcap(args: Args) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        !(crate::source::is_stdin(&args.rules) && crate::source::is_stdin(&args.capture)),
        "the ruleset and the capture cannot both be standard input (`-`)"
    );
    let setup = match Setup::build(&args)? {
        Ok(s) => s,
        Err(diags) => {
            eprint!("{diags}");
            return Ok(Outcome::Diagnostics);
        }
    };
    for n in &setup.notes {
        eprintln!("nfc: note: {n}");
    }
    let (reader, size) = open_capture_sized(&args.capture)?;
    let start = Instant::now();
    let mut out = report::Collector::new(&setup, &args)?;
    out.progress = progress::Progress::for_run(size, args.no_progress);
    let res = worker::drive(&setup, &args, reader, &mut out)?;
    out.progress.finish();
    let elapsed = start.elapsed();
    if let Some(e) = &res.read_error {
        eprintln!(
            "nfc: warning: {}: capture ends early: {} at byte {} after {} frame(s); reporting what was read",
            args.capture.display(),
            e.0,
            e.1,
            e.2
        );
        if e.2 == 0 {
            out.finish(&setup, res, elapsed)?;
            anyhow::bail!("{}: no frame could be read", args.capture.display());
        }
    }
    out.finish(&setup, res, elapsed)?;
    Ok(Outcome::Ok)
}

/// Prints to stdout (broken pipe handled by main).
pub(crate) fn print(s: &str) -> anyhow::Result<()> {
    front::print_stdout(s)
}
