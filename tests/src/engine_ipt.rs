//! The iptables engine: a ruleset lowered to iptables tables (`compiler::lower::ipt`), each table
//! encoded to its blob, verified (translate_table) and run with `nfr_ipt::ExecTable::do_table`
//! (`ipt_do_table`). At a hook the tables run in the kernel's priority order (raw -300, mangle
//! -150, nat -100 on prerouting/output, filter 0, security 50, nat 100 on input/postrouting);
//! the first verdict other than ACCEPT ends the traversal, as `nf_hook_slow` does.
//!
//! A ruleset that does not map to iptables (inet tables, sets, vmaps, ...) is a [`Skip`] with the
//! lowering's first diagnostic. A rule's counter is the sum of the counters of the entries that
//! carry its last action (a rule with a set becomes one entry per element; a rule with several
//! actions one entry per action, each counting the same packets).

use nfr_compiler::hir::{Hir, Item, StmtKind};
use nfr_compiler::lower::ipt::{RuleEntries, lower_ipt_table_mapped};
use nfr_ipt::{Effect, EntryRole, ExecTable, NatKind, layout::*};
use nfr_vm::{Hook, Verdict};

use crate::{BuiltPacket, Engine, Outcome, Prepared, Skip};

/// The iptables blob engine.
pub struct Ipt;

struct Table {
    name: String,
    exec: ExecTable,
    /// Offsets of the rule entries per chain (iptables name), in chain order.
    entries: Vec<(String, Vec<u32>)>,
    rules: Vec<RuleEntries>,
}

struct IptPrepared {
    tables: Vec<Table>,
    /// (nft table name, nft chain name, ipt table index, ChainId) per chain.
    chains: Vec<(String, String, usize, nfr_compiler::hir::ChainId)>,
    /// Rules with a `counter` statement: (ChainId, rule index).
    counted: Vec<(nfr_compiler::hir::ChainId, usize)>,
}

/// `NF_IP_PRI_*` of an iptables table on a hook (`nfr_proto::hook::IPT_TABLES`).
fn priority(table: &str, hook: Hook) -> i32 {
    nfr_proto::hook::IptTable::by_name(table).map_or(0, |t| t.priority(hook))
}

impl Engine for Ipt {
    fn name(&self) -> &'static str {
        "ipt"
    }

    /// Rulesets that do not lower to iptables (inet tables, sets, maps, ...) are skipped.
    fn partial(&self) -> bool {
        true
    }

    fn prepare(&self, hir: &Hir) -> Result<Box<dyn Prepared>, Skip> {
        let mut tables = Vec::new();
        let mut chains = Vec::new();
        let mut counted = Vec::new();
        for t in &hir.tables {
            let (table, rules) = lower_ipt_table_mapped(hir, t.id).map_err(|d| {
                Skip(
                    d.first()
                        .map_or("does not map to iptables".into(), |d| d.message.clone()),
                )
            })?;
            let blob = nfr_ipt::encode(&table).map_err(|e| Skip(e.to_string()))?;
            let exec = ExecTable::from_blob(&blob).map_err(|e| Skip(format!("{e:?}")))?;
            let mut entries: Vec<(String, Vec<u32>)> = Vec::new();
            for l in nfr_ipt::entry_map(&table) {
                if let EntryRole::Rule(_) = l.role {
                    match entries.iter_mut().find(|(c, _)| *c == l.chain) {
                        Some((_, v)) => v.push(l.offset),
                        None => entries.push((l.chain.clone(), vec![l.offset])),
                    }
                }
            }
            let idx = tables.len();
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
            tables.push(Table {
                name: table.name.clone(),
                exec,
                entries,
                rules,
            });
        }
        Ok(Box::new(IptPrepared {
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
        let mut order: Vec<(i32, usize)> = self
            .tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.exec.table().valid_hooks & (1 << pkt.hook as u32) != 0)
            .map(|(i, t)| (priority(&t.name, pkt.hook), i))
            .collect();
        order = crate::hook_order(pkt.state.nfproto, pkt.hook, &order);
        let mut st = pkt.state.clone();
        let mut out = Outcome {
            verdict: Verdict::Accept,
            mark: st.mark,
            ct_mark: st.ct_mark,
            logs: Vec::new(),
            rejected: false,
            notrack: false,
            nat: Vec::new(),
            writes: Vec::new(),
            helper: None,
        };
        if st.nfproto != nfr_vm::pkt::NFPROTO_IPV4 {
            // iptables tables see only IPv4 (ip6tables has its own)
            order.clear();
        }
        for (_, i) in order {
            let Some(t) = self.tables.get_mut(i) else {
                continue;
            };
            let Ok(o) = t.exec.do_table(pkt.hook, &pkt.bytes, &st) else {
                out.verdict = Verdict::Drop;
                break;
            };
            st.mark = o.mark;
            st.ct_mark = o.ct_mark;
            for e in &o.effects {
                match e {
                    Effect::Log { prefix, .. } => {
                        out.logs.push(String::from_utf8_lossy(prefix).into_owned())
                    }
                    Effect::Reject { .. } => out.rejected = true,
                    Effect::Notrack => out.notrack = true,
                    Effect::Nat { kind, range } => out.nat.push(nat_text(*kind, range)),
                    _ => {}
                }
            }
            out.verdict = o.verdict;
            if o.verdict != Verdict::Accept {
                break;
            }
        }
        out.mark = st.mark;
        out.ct_mark = st.ct_mark;
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
        for off in offs.get(start..re.first + re.count)? {
            let c = t.exec.counters_at(*off)?;
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
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/corpus");
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
