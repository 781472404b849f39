//! The checked ruleset as `nft list ruleset` shows it, for listings that annotate rules (`nfc run pcap`'s
//! counters): the ruleset's commands in order with includes in place, `define`s gone and every `$name` replaced
//! by the value the checker resolved it to (the define in force where it is used, nested defines at their own
//! place; a log prefix's `$name`s as [`super::rules::expand_log_prefix`] expands them), and every rule tied to
//! the Hir rule it became. Print it with `nfr_grammar::print::format`.

use std::cell::Cell;

use hashbrown::HashMap;
use nfr_grammar::ast::{self, ExprKind as A};

use super::resolve::{Defines, sp};
use super::rules::expand_log_prefix;
use super::types::{MAX_VAR_DEPTH, MAX_VAR_WORK};
use crate::diag::{FileId, Span};
use crate::hir::{BaseChain, ChainId, Hir, Policy};

/// A listed ruleset: its commands and, per rule (in [`Listing::rules_mut`] order), the Hir rule it became
/// (chain and index in the chain's rules).
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The commands (no comments).
    pub file: ast::File,
    rules: Vec<Option<(ChainId, usize)>>,
}

impl Listing {
    /// Every rule of [`Listing::file`], in order, with the Hir rule it became.
    pub fn rules_mut(
        &mut self,
    ) -> impl Iterator<Item = (&mut ast::Rule, Option<(ChainId, usize)>)> {
        let mut rules = Vec::new();
        for c in &mut self.file.commands {
            command_rules(c, &mut rules);
        }
        rules.into_iter().zip(self.rules.iter().copied())
    }
}

/// The rules of one command, in order.
fn command_rules<'c>(c: &'c mut ast::Command, out: &mut Vec<&'c mut ast::Rule>) {
    match &mut c.kind {
        ast::CommandKind::Table(t) => {
            for it in &mut t.items {
                if let ast::TableItem::Chain(ch) = it {
                    out.extend(ch.rules.iter_mut());
                }
            }
        }
        ast::CommandKind::AddChain { chain, .. } => out.extend(chain.rules.iter_mut()),
        ast::CommandKind::AddRule { rule, .. } => out.push(rule),
        _ => {}
    }
}

/// The listing of a clean check: `cmds` as flattened (with the file of each), `seqs` the position the
/// checker gave each command and each of a table's items, in walk order.
pub(crate) fn build(
    cmds: Vec<(FileId, ast::Command)>,
    seqs: &[usize],
    defines: &Defines,
    hir: &Hir,
) -> Listing {
    let mut by_span = HashMap::new();
    for c in &hir.chains {
        for (i, r) in c.rules.iter().enumerate() {
            by_span.insert(r.span, (c.id, i));
        }
    }
    let bases = hir
        .chains
        .iter()
        .filter_map(|c| c.base().map(|b| (b.span, b)))
        .collect();
    let x = Expand {
        defines,
        bases,
        work: Cell::new(0),
    };
    let mut seqs = seqs.iter().copied();
    let mut next = move || seqs.next().unwrap_or(usize::MAX);
    let mut file = ast::File::default();
    let mut rules = Vec::new();
    for (fid, mut cmd) in cmds {
        let seq = next();
        match &mut cmd.kind {
            ast::CommandKind::Define(_) | ast::CommandKind::Undefine(_) => continue,
            ast::CommandKind::Table(t) => {
                t.items.retain_mut(|it| {
                    let seq = next();
                    match it {
                        ast::TableItem::Define(_) => return false,
                        ast::TableItem::Chain(c) => x.chain(c, fid, seq),
                        ast::TableItem::Set(s) => x.set(s, seq),
                        _ => {}
                    }
                    true
                });
            }
            ast::CommandKind::AddChain { chain, .. } => x.chain(chain, fid, seq),
            ast::CommandKind::AddRule { rule, .. } => x.rule(rule, seq),
            ast::CommandKind::AddSet { set, .. } => x.set(set, seq),
            ast::CommandKind::Element { elements, .. } => x.elements(elements, seq),
            _ => {}
        }
        let mut own = Vec::new();
        command_rules(&mut cmd, &mut own);
        rules.extend(own.iter().map(|r| by_span.get(&sp(fid, r.span)).copied()));
        file.commands.push(cmd);
    }
    Listing { file, rules }
}

/// Replaces `$name`s by their defines' values.
struct Expand<'d> {
    defines: &'d Defines,
    /// The Hir's base chains by the span of their hook.
    bases: HashMap<Span, &'d BaseChain>,
    /// Substitutions made, bounded as the checker's (a `$name` past the bound stays as written).
    work: Cell<u64>,
}

impl Expand<'_> {
    /// A base chain's `$name` priority and policy become the values the checker gave the chain.
    fn chain(&self, c: &mut ast::Chain, file: FileId, seq: usize) {
        if let Some(h) = &mut c.hook
            && let Some(b) = self.bases.get(&sp(file, h.span))
        {
            if let ast::PriorityKind::Var(_) = h.priority.kind {
                h.priority.kind = ast::PriorityKind::Number(i64::from(b.priority));
            }
            if let Some(p) = &mut c.policy
                && let ast::PolicyKind::Var(_) = p.kind
            {
                p.kind = match b.policy {
                    Policy::Accept => ast::PolicyKind::Accept,
                    Policy::Drop => ast::PolicyKind::Drop,
                };
            }
        }
        for r in &mut c.rules {
            self.rule(r, seq);
        }
    }

    fn set(&self, s: &mut ast::Set, seq: usize) {
        self.elements(&mut s.elements, seq);
    }

    /// A packed list without `$` stays packed.
    fn elements(&self, els: &mut ast::Elements, seq: usize) {
        if els.may_name_defines() {
            for e in els.exprs_mut() {
                self.expr(e, seq, 0);
            }
        }
    }

    fn rule(&self, r: &mut ast::Rule, seq: usize) {
        for s in &mut r.stmts {
            match &mut s.kind {
                ast::StmtKind::Match { left, right, .. } => {
                    self.expr(left, seq, 0);
                    self.expr(right, seq, 0);
                }
                ast::StmtKind::Vmap { key, map } => {
                    self.expr(key, seq, 0);
                    self.expr(map, seq, 0);
                }
                ast::StmtKind::CounterMap { map } => self.expr(map, seq, 0),
                ast::StmtKind::Log(l) => {
                    if let Some(p) = &mut l.prefix
                        && let Ok(v) = expand_log_prefix(self.defines, seq, &p.value)
                    {
                        p.value = v;
                    }
                }
                ast::StmtKind::Set { key, value } => {
                    self.expr(key, seq, 0);
                    self.expr(value, seq, 0);
                }
                ast::StmtKind::Reject(Some(ast::RejectWith::Icmp { code, .. })) => {
                    self.expr(code, seq, 0)
                }
                ast::StmtKind::Queue { num: Some(n), .. } => self.expr(n, seq, 0),
                ast::StmtKind::Nat(n) => {
                    for e in n.addr.iter_mut().chain(n.port.iter_mut()) {
                        self.expr(e, seq, 0);
                    }
                }
                ast::StmtKind::SetUpdate(u) => {
                    self.expr(&mut u.key, seq, 0);
                    if let Some(d) = &mut u.data {
                        self.expr(d, seq, 0);
                    }
                }
                _ => {}
            }
        }
    }

    /// Replaces every `$name` in `e` (looked up at `seq`) by its define's value, expanded in turn at the define's
    /// own position, as the checker's `with_var` does (`depth` defines deep).
    fn expr(&self, e: &mut ast::Expr, seq: usize, depth: u32) {
        match &mut e.kind {
            A::Var(id) => {
                if depth >= MAX_VAR_DEPTH || self.work.get() >= MAX_VAR_WORK {
                    return;
                }
                self.work.set(self.work.get() + 1);
                let Some(def) = self.defines.get(&id.name, seq) else {
                    return;
                };
                let mut v = def.value.clone();
                self.expr(&mut v, def.seq, depth + 1);
                e.kind = v.kind;
            }
            A::Prefix { addr: x, .. } | A::Paren(x) | A::Elem { value: x, .. } => {
                self.expr(x, seq, depth)
            }
            A::Range { low: a, high: b }
            | A::Binary {
                left: a, right: b, ..
            }
            | A::MapElem { key: a, value: b }
            | A::Map { key: a, map: b } => {
                self.expr(a, seq, depth);
                self.expr(b, seq, depth);
            }
            A::Set(xs) | A::Concat(xs) | A::List(xs) => {
                xs.iter_mut().for_each(|x| self.expr(x, seq, depth));
            }
            _ => {}
        }
    }
}
