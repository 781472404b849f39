//! `nfc import FORMAT ...`: turn another tool's ruleset into `.nfr`. One subcommand per format, as
//! `iptables-restore-translate` and friends are one tool per input: `iptables-save` (the tables as iptables-save
//! prints them) and `classbench` (a ClassBench filter set, and optionally its trace as a pcap).

use clap::Subcommand;

use crate::{Outcome, classbench, ipt_cmds};

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// iptables-save / iptables-restore text; prints the `.nfr` form.
    #[command(
        after_help = "Exit status: 0 ok, 1 lines that cannot be imported (each reported as file:line), 2 operational error (unreadable file)."
    )]
    IptablesSave(ipt_cmds::ImportArgs),
    /// A ClassBench filter set (Song's or db_generator's format) and optionally its trace (as a pcap).
    #[command(
        after_help = "Exit status: 0 ok, 1 malformed lines (each reported as file:line), 2 operational error."
    )]
    Classbench(classbench::Args),
}

pub fn run(cmd: ImportCmd) -> anyhow::Result<Outcome> {
    match cmd {
        ImportCmd::IptablesSave(a) => ipt_cmds::import(a),
        ImportCmd::Classbench(a) => classbench::run(a),
    }
}
