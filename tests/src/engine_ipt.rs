//! The iptables engine: a ruleset lowered to iptables tables (`compiler::lower::ipt`), each table
//! encoded to its blob and loaded by nfr-host as `nfc run pcap --engine ipt` loads it: the blob
//! executor (`nfr_ipt::ExecTable::do_table`, `ipt_do_table`) registered on each of the table's hooks at
//! its `NF_IP_PRI_*` (`runtime::engine::IptEntry`), so a packet meets the tables in the runtime's hook
//! order beside conntrack, IPv4 only (ip6tables has its own tables).
//!
//! A ruleset that does not map to iptables (inet tables, sets, vmaps, ...) is a [`Skip`] with the
//! lowering's first diagnostic. A rule's counter is the sum of the counters of the entries that
//! carry its last action (a rule with a set becomes one entry per element; a rule with several
//! actions one entry per action, each counting the same packets).

use nfr_compiler::hir::{Hir, Item, StmtKind};
use nfr_compiler::lower::ipt::{RuleEntries, lower_ipt_table_mapped};
use nfr_host::{IptBlob, Lowered};
use nfr_ipt::{Effect, EntryRole, NatKind, layout::*};
use nfr_runtime::engine::SharedIpt;

use crate::{BuiltPacket, Engine, Host, HostSpec, Outcome, Prepared, Skip};

/// The iptables blob engine.
pub struct Ipt;

struct Table {
    engine: SharedIpt,
    /// Offsets of the rule entries per chain (iptables name), in chain order.
    entries: Vec<(String, Vec<u32>)>,
    rules: Vec<RuleEntries>,
}

struct IptPrepared {
    host: Host,
    tables: Vec<Table>,
    /// (nft table name, nft chain name, ipt table index, ChainId) per chain.
    chains: Vec<(String, String, usize, nfr_compiler::hir::ChainId)>,
    /// Rules with a `counter` statement: (ChainId, rule index).
    counted: Vec<(nfr_compiler::hir::ChainId, usize)>,
}

impl Engine for Ipt {
    fn name(&self) -> &'static str {
        "ipt"
    }

    /// Rulesets that do not lower to iptables (inet tables, sets, maps, ...) are skipped.
    fn partial(&self) -> bool {
        true
    }

    fn prepare(&self, hir: &Hir, host: &HostSpec) -> Result<Box<dyn Prepared>, Skip> {
        let mut blobs = Vec::new();
        let mut maps = Vec::new();
        let mut chains = Vec::new();
        let mut counted = Vec::new();
        for t in &hir.tables {
            let (table, rules) = lower_ipt_table_mapped(hir, t.id).map_err(|d| {
                Skip(
                    d.first()
                        .map_or("does not map to iptables".into(), |d| d.message.clone()),
                )
            })?;
            blobs.push(IptBlob::encode(&table).map_err(|e| Skip(e.to_string()))?);
            let mut entries: Vec<(String, Vec<u32>)> = Vec::new();
            for l in nfr_ipt::entry_map(&table) {
                if let EntryRole::Rule(_) = l.role {
                    match entries.iter_mut().find(|(c, _)| *c == l.chain) {
                        Some((_, v)) => v.push(l.offset),
                        None => entries.push((l.chain.clone(), vec![l.offset])),
                    }
                }
            }
            let idx = maps.len();
            for cid in &t.chains {
                let Some(c) = hir.chain(*cid) else { continue };
                chains.push((t.name.clone(), c.name.clone(), idx, *cid));
                for (ri, r) in c.rules.iter().enumerate() {
                    if r
                        .items
                        .iter()
                        .any(|i| matches!(i, Item::Stmt(s) if matches!(s.kind, StmtKind::Counter { .. })))
                    {
                        counted.push((*cid, ri));
                    }
                }
            }
            maps.push((entries, rules));
        }
        let (host, loaded) = Host::new(&Lowered::Ipt(blobs), host)?;
        let tables = loaded
            .ipts
            .into_iter()
            .zip(maps)
            .map(|(engine, (entries, rules))| Table {
                engine,
                entries,
                rules,
            })
            .collect();
        Ok(Box::new(IptPrepared {
            host,
            tables,
            chains,
            counted,
        }))
    }
}

fn nat_text(kind: NatKind, r: &NatRange) -> String {
    let mut s = match kind {
        NatKind::Snat => "snat",
        NatKind::Dnat => "dnat",
        NatKind::Masquerade => "masquerade",
        NatKind::Redirect => "redirect",
    }
    .to_string();
    if r.flags & NF_NAT_RANGE_MAP_IPS != 0 {
        let a = r.min_addr;
        s.push_str(&format!(" {}.{}.{}.{}", a[0], a[1], a[2], a[3]));
    }
    if r.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0 {
        s.push_str(&format!(":{}", r.min_proto));
    }
    s
}

impl Prepared for IptPrepared {
    fn run(&mut self, pkt: &BuiltPacket) -> Outcome {
        let ran = self.host.run(pkt);
        let mut log = Vec::new();
        for t in &self.tables {
            if let Some(l) = t.engine.borrow_mut().effects_log.as_mut() {
                log.append(l);
            }
        }
        // One table ends the traversal at most, and only a queue needs the verdict's flags.
        let queued = log
            .iter()
            .map(|(v, _)| *v)
            .find(|v| matches!(v, nfr_vm::Verdict::Queue { .. }));
        let mut out = ran.outcome(queued);
        for e in log.iter().flat_map(|(_, fx)| fx) {
            match e {
                Effect::Log { prefix, .. } => {
                    out.logs.push(String::from_utf8_lossy(prefix).into_owned())
                }
                Effect::Reject { .. } => out.rejected = true,
                Effect::Nat { kind, range } => out.nat.push(nat_text(*kind, range)),
                _ => {}
            }
        }
        out
    }

    fn counter(&self, chain: &str, rule: usize) -> Option<(u64, u64)> {
        let (tname, cname) = match chain.split_once('/') {
            Some((t, c)) => (Some(t), c),
            None => (None, chain),
        };
        let (_, _, ti, cid) = self
            .chains
            .iter()
            .find(|(t, c, _, _)| c == cname && tname.is_none_or(|x| x == t))?;
        if !self.counted.contains(&(*cid, rule)) {
            return None;
        }
        let t = self.tables.get(*ti)?;
        let re = t.rules.iter().find(|r| r.chain == *cid && r.rule == rule)?;
        let offs = &t.entries.iter().find(|(c, _)| *c == re.ipt_chain)?.1;
        let start = re.first + re.count - re.last_action;
        let (mut p, mut b) = (0, 0);
        let e = t.engine.borrow();
        for off in offs.get(start..re.first + re.count)? {
            let c = e.table.counters_at(*off)?;
            p += c.pcnt;
            b += c.bcnt;
        }
        Some((p, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_corpus, run_case};

    /// Every corpus case whose ruleset maps to iptables must give the interpreter's results on
    /// the blob executor too (cases that do not map are skipped and counted).
    #[test]
    fn corpus_cases_that_map_run_on_the_blob() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cases");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        let (mut ran, mut skipped, mut packets) = (0, 0, 0);
        let mut fails = Vec::new();
        for f in files {
            let corpus = parse_corpus(&std::fs::read_to_string(&f).unwrap()).unwrap();
            for case in &corpus.cases {
                if case.error.is_some() {
                    continue;
                }
                let source = match (&case.rules, &case.file) {
                    (Some(r), _) => r.clone(),
                    (None, Some(p)) => std::fs::read_to_string(dir.join("..").join("..").join(p))
                        .unwrap_or_default(),
                    _ => continue,
                };
                let id = format!("{}/{}", f.file_name().unwrap().to_string_lossy(), case.name);
                match run_case(&id, case, &source, &Ipt, &mut fails) {
                    Ok(n) => {
                        ran += 1;
                        packets += n;
                    }
                    Err(_) => skipped += 1,
                }
            }
        }
        eprintln!("ipt engine: {ran} corpus cases ({packets} packets) run, {skipped} do not map");
        assert!(fails.is_empty(), "{}", fails.join("\n"));
        assert!(ran >= 5, "{ran}");
    }
}
