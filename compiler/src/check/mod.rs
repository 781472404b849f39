//! The checker: Ast → Hir, collecting every diagnostic of a run.
//!
//! Split by concern: [`resolve`] (includes, defines, names), [`types`] (selectors and
//! values), [`deps`] (implicit protocol dependencies), [`rules`] (statements, verdicts and
//! their placement), [`hooks`] (chain types, hooks, priorities, iptables mapping), [`loops`]
//! (the jump/goto graph), then, on a clean ruleset, [`shadow`] (rules that can never match,
//! duplicate rules) on its lowered program. [`check`] runs them in that order and returns a
//! [`Hir`] only when no error was found.

pub mod deps;
pub mod hooks;
pub mod listing;
pub mod loops;
pub mod resolve;
pub mod rules;
pub mod shadow;
pub mod types;

#[cfg(test)]
mod tests;

use hashbrown::HashMap;
use nfr_grammar::ast;

use crate::diag::{Diagnostic, FileId, SourceMap, Span};
use crate::hir::{self, ChainId, ChainKind, Family, Hir, SetId, TableId, Type};
pub use listing::Listing;
use resolve::{Defines, sp};
pub use resolve::{Loader, NoIncludes};

pub(crate) struct TableDecl {
    pub family: Family,
    pub name: String,
    pub span: Span,
    pub chains: Vec<usize>,
    pub sets: Vec<usize>,
    /// Span of the first `table NAME { }` block (for duplicate reports).
    pub block: Option<Span>,
    /// `ct helper NAME { type "ftp" protocol tcp; }` objects.
    pub ct_helpers: Vec<CtHelperDecl>,
    /// `counter NAME { ... }` objects: indexes into `Ctx::counter_objs`.
    pub counters: Vec<usize>,
}

/// A `ct helper` object (`nft_ct_helper_obj`): what `ct helper set "NAME"` attaches.
pub(crate) struct CtHelperDecl {
    pub name: String,
    /// The helper's type (`type "ftp"`), the name the conntrack helper registered.
    pub helper: String,
    pub span: Span,
}

pub(crate) struct ChainDecl {
    pub table: usize,
    pub name: String,
    pub span: Span,
    pub hook: Option<(ast::ChainHook, FileId)>,
    /// Position of the chain's header (for `$var`s in priority/policy).
    pub seq: usize,
    pub policy: Option<(ast::Policy, FileId)>,
    /// Rules with their file and position.
    pub rules: Vec<(ast::Rule, FileId, usize)>,
    pub block: Option<Span>,
    pub base: Option<hir::BaseChain>,
}

pub(crate) struct SetDecl {
    pub table: usize,
    pub name: String,
    pub span: Span,
    pub def: Option<(ast::Set, FileId)>,
    /// Position of the declaration.
    pub seq: usize,
    pub key: Vec<Type>,
    pub data: Option<Vec<Type>>,
    pub flags: hir::SetFlags,
    /// The element lists given to the set (its own first), each with its file and position.
    pub extra: Vec<(ast::Elements, FileId, usize)>,
    pub elements: hir::Elements,
    pub typed: bool,
    /// Object maps (`type KEY : counter` / `: ct helper`): the kind of object they hold.
    pub obj: Option<hir::ObjKind>,
}

/// Checker state shared by the modules.
pub struct Ctx {
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) defines: Defines,
    pub(crate) file: FileId,
    pub(crate) family: Family,
    pub(crate) var_depth: u32,
    /// `$var` substitutions made so far (bounded by `types::MAX_VAR_WORK`).
    pub(crate) var_work: u64,
    /// The current expansion failed and was reported: drop the rest of it silently.
    pub(crate) var_abort: bool,
    /// The outermost `$var` of the expansion under way.
    pub(crate) var_use: Span,
    pub(crate) sources: SourceMap,
    pub(crate) tables: Vec<TableDecl>,
    pub(crate) chains: Vec<ChainDecl>,
    pub(crate) sets: Vec<SetDecl>,
    /// Table index of the rule/set being checked.
    pub(crate) table: usize,
    /// Chain index of the rule being checked.
    pub(crate) chain: usize,
    pub(crate) flush_ruleset: bool,
    /// Inside a statement operand (`meta mark set ip dscp << 2 | 0x10`): constants of
    /// bitwise operations may be wider than the selector.
    pub(crate) widen: Option<u32>,
    /// High end of a nat address range, handed out of a closure.
    pub(crate) pending_hi: Option<hir::Value>,
    /// Position of what is being checked, for `$var` lookup (see `resolve::Defines`).
    pub(crate) seq: usize,
    /// (table, chain name) → chain index.
    pub(crate) chain_index: HashMap<(usize, String), usize>,
    /// Named counter objects of all tables, in declaration order.
    pub(crate) counter_objs: Vec<hir::CounterObj>,
    /// For a listing ([`check_listed`]): the position given each command and table item, in order.
    pub(crate) seqs: Option<Vec<usize>>,
}

impl Ctx {
    pub(crate) fn sp(&self, s: ast::Span) -> Span {
        sp(self.file, s)
    }
}

/// Check the ruleset whose root file is `root` in `sources` (includes are read through
/// `loader` and added to `sources`).
pub fn check(
    sources: &mut SourceMap,
    root: FileId,
    loader: &mut dyn Loader,
) -> (Option<Hir>, Vec<Diagnostic>) {
    let (hir, _, diags) = check_with(sources, root, loader, false);
    (hir, diags)
}

/// [`check`], and with the Hir the ruleset's [`Listing`] (the commands as checked, defines expanded, each rule
/// tied to its Hir rule).
pub fn check_listed(
    sources: &mut SourceMap,
    root: FileId,
    loader: &mut dyn Loader,
) -> (Option<(Hir, Listing)>, Vec<Diagnostic>) {
    let (hir, listing, diags) = check_with(sources, root, loader, true);
    (hir.zip(listing), diags)
}

fn check_with(
    sources: &mut SourceMap,
    root: FileId,
    loader: &mut dyn Loader,
    listed: bool,
) -> (Option<Hir>, Option<Listing>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut cmds = Vec::new();
    let root_name = sources.name(root).to_string();
    let mut stack = vec![(root_name, Span::default())];
    resolve::flatten(sources, root, loader, &mut stack, &mut cmds, &mut diags);
    let mut cx = Ctx {
        diags,
        defines: Defines::default(),
        file: root,
        family: Family::Ip,
        var_depth: 0,
        var_work: 0,
        var_abort: false,
        var_use: Span::default(),
        // moved in and back (no copy of the source text)
        sources: std::mem::take(sources),
        tables: Vec::new(),
        chains: Vec::new(),
        sets: Vec::new(),
        table: 0,
        chain: 0,
        flush_ruleset: false,
        widen: None,
        pending_hi: None,
        seq: 0,
        chain_index: HashMap::new(),
        counter_objs: Vec::new(),
        seqs: listed.then(Vec::new),
    };
    // the listing keeps the commands as written (the checker moves rules out of its own)
    let listed_cmds = listed.then(|| cmds.clone());
    cx.declare(&mut cmds);
    drop(cmds);
    cx.sets_pass();
    cx.chains_pass();
    let rules = cx.rules_pass();
    let hir = cx.build(rules);
    *sources = std::mem::take(&mut cx.sources);
    // chains written with a hook stay base chains for reachability even when the hook was invalid
    let hooked: Vec<Span> = cx
        .chains
        .iter()
        .filter(|c| c.hook.is_some())
        .map(|c| c.span)
        .collect();
    // after a syntax error chains may have lost their hook or jumps: reachability is unreliable
    let syntax_errors = cx.diags.iter().any(|d| d.code == "E0001");
    let mut diags = cx.diags;
    diags.extend(
        loops::check_graph(&loops::graph_from_hir(&hir))
            .into_iter()
            .filter(|d| !(d.code == "W0600" && (syntax_errors || hooked.contains(&d.primary)))),
    );
    if diags.iter().all(|d| !d.is_error()) {
        diags.extend(rules::placement(&hir));
        // the shadowing lint reads the lowered rules; a ruleset the lowering refuses has none
        if let Ok(mut prog) = crate::lower::lower(&hir) {
            // the instructions' spans are for the engines' traces; the lint reports the Hir's
            prog.spans = Vec::new();
            diags.extend(shadow::lint(&hir, &prog, sources));
        }
    }
    sort_diags(&mut diags);
    let ok = diags.iter().all(|d| !d.is_error());
    let listing = match (ok, listed_cmds, &cx.seqs) {
        (true, Some(cmds), Some(seqs)) => Some(listing::build(cmds, seqs, &cx.defines, &hir)),
        _ => None,
    };
    (ok.then_some(hir), listing, diags)
}

/// Convenience for one in-memory file without includes.
pub fn check_source(name: &str, text: &str) -> (SourceMap, Option<Hir>, Vec<Diagnostic>) {
    let mut sm = SourceMap::new();
    let id = sm.add(name, text);
    let (hir, diags) = check(&mut sm, id, &mut NoIncludes);
    (sm, hir, diags)
}

fn sort_diags(d: &mut [Diagnostic]) {
    d.sort_by_key(|x| (x.primary.file, x.primary.start, x.primary.end));
}

impl Ctx {
    fn find_table(&self, family: Family, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.family == family && t.name == name)
    }

    pub(crate) fn find_chain(&self, table: usize, name: &str) -> Option<usize> {
        self.chain_index.get(&(table, name.to_string())).copied()
    }

    /// E0107: a named object declared twice in one table.
    fn duplicate_object(&mut self, kind: &str, name: &str, at: Span, prev: Span) {
        self.diags.push(
            Diagnostic::error("E0107", at, format!("{kind} `{name}` is defined twice"))
                .with_primary_label("second definition")
                .with_label(prev, "first definition"),
        );
    }

    /// `ct helper NAME { type "T" protocol P; [l3proto F;] }`, checked like
    /// `nft_ct_helper_obj_init`: the helper must exist for that protocol (nfc has `ftp`, TCP).
    fn declare_ct_helper(
        &mut self,
        file: FileId,
        ti: usize,
        name: &ast::Ident,
        span: ast::Span,
        body: &[String],
    ) {
        let span = sp(file, span);
        let name_span = sp(file, name.span);
        if let Some(prev) = self
            .tables
            .get(ti)
            .and_then(|t| t.ct_helpers.iter().find(|h| h.name == name.name))
        {
            let prev = prev.span;
            self.duplicate_object("ct helper", &name.name, name_span, prev);
            return;
        }
        let family = self.tables.get(ti).map(|t| t.family);
        let mut helper = None;
        let mut proto = None;
        for line in body.iter().flat_map(|l| l.split(';')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["type", t, "protocol", p] => {
                    helper = Some(t.trim_matches('"').to_string());
                    proto = Some(*p);
                }
                ["l3proto", f]
                    if Some(*f) == family.map(|f| f.name())
                        || (*f == "inet" && family == Some(Family::Inet)) => {}
                _ => {
                    self.diags.push(
                        Diagnostic::error(
                            "E0211",
                            span,
                            format!("ct helper `{}`: unsupported line `{}`", name.name, line.trim()),
                        )
                        .with_note(
                            "a ct helper object is `type \"ftp\" protocol tcp`, optionally with the \
                             table's own `l3proto`",
                        ),
                    );
                    return;
                }
            }
        }
        let (Some(helper), Some(proto)) = (helper, proto) else {
            self.diags.push(
                Diagnostic::error(
                    "E0211",
                    span,
                    format!(
                        "ct helper `{}` has no `type \"...\" protocol ...` line",
                        name.name
                    ),
                )
                .with_help("write `type \"ftp\" protocol tcp`"),
            );
            return;
        };
        if helper != "ftp" || proto != "tcp" {
            self.diags.push(
                Diagnostic::error(
                    "E0210",
                    span,
                    format!("no conntrack helper `{helper}` for protocol `{proto}`"),
                )
                .with_note("nfc implements the ftp helper (`type \"ftp\" protocol tcp`)"),
            );
            return;
        }
        if let Some(t) = self.tables.get_mut(ti) {
            t.ct_helpers.push(CtHelperDecl {
                name: name.name.clone(),
                helper,
                span: name_span,
            });
        }
    }

    /// `counter NAME { [packets N bytes M] }`, a named counter object (`nft_counter_obj_init`).
    fn declare_counter(
        &mut self,
        file: FileId,
        ti: usize,
        name: &ast::Ident,
        span: ast::Span,
        body: &[String],
    ) {
        let span = sp(file, span);
        let name_span = sp(file, name.span);
        if let Some(prev) = self.find_counter(ti, &name.name) {
            let prev = self.counter_objs.get(prev).map(|c| c.span).unwrap_or(span);
            self.duplicate_object("counter", &name.name, name_span, prev);
            return;
        }
        let (mut packets, mut bytes) = (0u64, 0u64);
        for line in body.iter().flat_map(|l| l.split(';')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let ok = match words.as_slice() {
                [] => true,
                ["packets", p, "bytes", b] => match (p.parse(), b.parse()) {
                    (Ok(p), Ok(b)) => {
                        (packets, bytes) = (p, b);
                        true
                    }
                    _ => false,
                },
                _ => false,
            };
            if !ok {
                self.diags.push(
                    Diagnostic::error(
                        "E0211",
                        span,
                        format!("counter `{}`: unexpected `{}`", name.name, line.trim()),
                    )
                    .with_help("a counter object holds `packets N bytes M`, or nothing"),
                );
                return;
            }
        }
        let idx = self.counter_objs.len();
        self.counter_objs.push(hir::CounterObj {
            table: TableId(ti as u32),
            name: name.name.clone(),
            packets,
            bytes,
            span: name_span,
        });
        if let Some(t) = self.tables.get_mut(ti) {
            t.counters.push(idx);
        }
    }

    /// The named counter object `name` of table `table` (index into `counter_objs`).
    pub(crate) fn find_counter(&self, table: usize, name: &str) -> Option<usize> {
        self.tables
            .get(table)?
            .counters
            .iter()
            .copied()
            .find(|&i| self.counter_objs.get(i).is_some_and(|c| c.name == name))
    }

    fn find_set(&self, table: usize, name: &str) -> Option<usize> {
        self.tables
            .get(table)?
            .sets
            .iter()
            .copied()
            .find(|c| self.sets.get(*c).is_some_and(|x| x.name == name))
    }

    fn table_ref(&mut self, file: FileId, r: &ast::ObjRef) -> Option<usize> {
        let fam = match resolve::family(r.family) {
            Ok(f) => f,
            Err(f) => {
                self.unsupported_family(f, sp(file, r.span));
                return None;
            }
        };
        match self.find_table(fam, &r.table.name) {
            Some(t) => Some(t),
            None => {
                self.diags.push(
                    Diagnostic::error(
                        "E0103",
                        sp(file, r.table.span),
                        format!("table `{} {}` is not defined", fam.name(), r.table.name),
                    )
                    .with_help("declare the table first: `table NAME { ... }`"),
                );
                None
            }
        }
    }

    fn unsupported_family(&mut self, f: ast::Family, span: Span) {
        self.diags.push(
            Diagnostic::error(
                "E0020",
                span,
                format!("family `{}` is not supported", f.as_str()),
            )
            .with_note("nfc supports ip, ip6 and inet tables"),
        );
    }

    fn declare_table(&mut self, file: FileId, t: &ast::Table) -> Option<usize> {
        let fam = match resolve::family(t.family) {
            Ok(f) => f,
            Err(f) => {
                let head = ast::Span {
                    start: t.span.start,
                    end: t.name.span.end.max(t.span.start),
                };
                self.unsupported_family(f, sp(file, head));
                return None;
            }
        };
        let span = sp(file, t.name.span);
        let idx = match self.find_table(fam, &t.name.name) {
            Some(i) => {
                if t.has_body
                    && let Some(prev) = self.tables[i].block
                {
                    self.diags.push(
                        Diagnostic::error(
                            "E0100",
                            span,
                            format!("table `{} {}` is defined twice", fam.name(), t.name.name),
                        )
                        .with_primary_label("second definition")
                        .with_label(prev, "first definition")
                        .with_help("merge the two blocks into one"),
                    );
                }
                i
            }
            None => {
                self.tables.push(TableDecl {
                    family: fam,
                    name: t.name.name.clone(),
                    span,
                    chains: vec![],
                    sets: vec![],
                    block: None,
                    ct_helpers: vec![],
                    counters: vec![],
                });
                self.tables.len() - 1
            }
        };
        if t.has_body && self.tables[idx].block.is_none() {
            self.tables[idx].block = Some(span);
        }
        Some(idx)
    }

    fn declare_chain(&mut self, file: FileId, table: usize, c: &mut ast::Chain) {
        let span = sp(file, c.name.span);
        let idx = match self.find_chain(table, &c.name.name) {
            Some(i) => {
                let ch = &self.chains[i];
                if c.has_body
                    && let Some(prev) = ch.block
                {
                    self.diags.push(
                        Diagnostic::error(
                            "E0101",
                            span,
                            format!("chain `{}` is defined twice", c.name.name),
                        )
                        .with_primary_label("second definition")
                        .with_label(prev, "first definition")
                        .with_help("merge the two chains, or rename one"),
                    );
                    return;
                }
                i
            }
            None => {
                self.chain_index
                    .insert((table, c.name.name.clone()), self.chains.len());
                self.chains.push(ChainDecl {
                    table,
                    name: c.name.name.clone(),
                    span,
                    hook: None,
                    seq: self.seq,
                    policy: None,
                    rules: vec![],
                    block: None,
                    base: None,
                });
                self.tables[table].chains.push(self.chains.len() - 1);
                self.chains.len() - 1
            }
        };
        let seq = self.seq;
        let ch = &mut self.chains[idx];
        if c.has_body {
            ch.block = Some(span);
        }
        if let Some(h) = &c.hook {
            ch.hook = Some((h.clone(), file));
            ch.seq = seq;
        }
        if let Some(p) = &c.policy {
            ch.policy = Some((p.clone(), file));
        }
        ch.rules.extend(
            std::mem::take(&mut c.rules)
                .into_iter()
                .map(|r| (r, file, seq)),
        );
    }

    /// Declares a set; its elements are moved out of `s` (not copied).
    fn declare_set(&mut self, file: FileId, table: usize, s: &mut ast::Set) {
        let span = sp(file, s.name.span);
        if let Some(i) = self.find_set(table, &s.name.name) {
            if self.sets[i].def.is_some() && s.key.is_some() {
                let prev = self.sets[i].span;
                self.diags.push(
                    Diagnostic::error(
                        "E0102",
                        span,
                        format!(
                            "{} `{}` is defined twice",
                            if s.is_map { "map" } else { "set" },
                            s.name.name
                        ),
                    )
                    .with_primary_label("second definition")
                    .with_label(prev, "first definition"),
                );
            } else {
                let els = std::mem::take(&mut s.elements);
                self.sets[i].extra.push((els, file, self.seq));
            }
            return;
        }
        let own = std::mem::take(&mut s.elements);
        self.sets.push(SetDecl {
            table,
            name: s.name.name.clone(),
            span,
            def: Some((s.clone(), file)),
            seq: self.seq,
            key: vec![],
            data: None,
            flags: hir::SetFlags::default(),
            extra: vec![(own, file, self.seq)],
            elements: hir::Elements::new(),
            typed: false,
            obj: None,
        });
        self.tables[table].sets.push(self.sets.len() - 1);
    }

    /// The position of the next command or table item (recorded for a listing).
    fn next_seq(&mut self) {
        self.seq += 1;
        if let Some(s) = &mut self.seqs {
            s.push(self.seq);
        }
    }

    /// Declares every table, chain, set and object; a chain's rules are moved out of `cmds` (not copied).
    fn declare(&mut self, cmds: &mut [(FileId, ast::Command)]) {
        let mut pending_rules: Vec<(FileId, &ast::ObjRef, &ast::Rule, usize)> = Vec::new();
        let mut pending_elems: Vec<(FileId, &ast::ObjRef, ast::Elements, usize)> = Vec::new();
        for (file, cmd) in cmds.iter_mut() {
            let file = *file;
            self.file = file;
            self.next_seq();
            let cmd_span = cmd.span;
            match &mut cmd.kind {
                ast::CommandKind::FlushRuleset { .. } => self.flush_ruleset = true,
                ast::CommandKind::Define(d) => {
                    let mut diags = std::mem::take(&mut self.diags);
                    self.defines.define(self.seq, file, d, &mut diags);
                    self.diags = diags;
                }
                ast::CommandKind::Undefine(id) => {
                    if !self.defines.undefine(self.seq, &id.name) {
                        self.diags.push(Diagnostic::error(
                            "E0010",
                            sp(file, id.span),
                            format!("undefined variable `${}`", id.name),
                        ));
                    }
                }
                ast::CommandKind::Include(_) => {}
                ast::CommandKind::Table(t) => {
                    let Some(ti) = self.declare_table(file, t) else { continue };
                    for item in &mut t.items {
                        self.next_seq();
                        match item {
                            ast::TableItem::Chain(c) => self.declare_chain(file, ti, c),
                            ast::TableItem::Set(s) => self.declare_set(file, ti, s),
                            ast::TableItem::Define(d) => {
                                let mut diags = std::mem::take(&mut self.diags);
                                self.defines.define(self.seq, file, d, &mut diags);
                                self.diags = diags;
                            }
                            ast::TableItem::Flags(_) | ast::TableItem::Comment(_) => {}
                            ast::TableItem::Object {
                                kind,
                                name,
                                span,
                                body,
                            } if kind.name == "ct helper" => {
                                self.declare_ct_helper(file, ti, name, *span, &*body)
                            }
                            ast::TableItem::Object {
                                kind,
                                name,
                                span,
                                body,
                            } if kind.name == "counter" => {
                                self.declare_counter(file, ti, name, *span, &*body)
                            }
                            ast::TableItem::Object { kind, span, .. } => self.diags.push(
                                Diagnostic::error(
                                    "E0210",
                                    sp(file, *span),
                                    format!("`{}` objects are not supported", kind.name),
                                )
                                .with_note("nfc supports chains, sets, maps, and ct helper and counter objects in tables"),
                            ),
                        }
                    }
                }
                ast::CommandKind::AddChain { table, chain } => {
                    if let Some(ti) = self.table_ref(file, table) {
                        self.declare_chain(file, ti, chain);
                    }
                }
                ast::CommandKind::AddSet { table, set } => {
                    if let Some(ti) = self.table_ref(file, table) {
                        self.declare_set(file, ti, set);
                    }
                }
                ast::CommandKind::AddRule { target, rule, .. } => {
                    pending_rules.push((file, &*target, &*rule, self.seq))
                }
                ast::CommandKind::Element { delete: false, target, elements } => {
                    pending_elems.push((file, &*target, std::mem::take(elements), self.seq))
                }
                ast::CommandKind::Element { delete: true, .. } => self.diags.push(
                    Diagnostic::error("E0021", sp(file, cmd_span), "`delete element` is not supported in a ruleset file"),
                ),
                ast::CommandKind::Object { verb, object, .. } => self.diags.push(
                    Diagnostic::error(
                        "E0021",
                        sp(file, cmd_span),
                        format!("`{} {}` is not supported in a ruleset file", verb.name, object.name),
                    )
                    .with_note("a .nfr file declares a whole ruleset; start it with `flush ruleset` to replace"),
                ),
            }
        }
        for (file, target, rule, seq) in pending_rules {
            self.file = file;
            let Some(ti) = self.table_ref(file, target) else {
                continue;
            };
            let Some(name) = &target.name else { continue };
            match self.find_chain(ti, &name.name) {
                Some(ci) => self.chains[ci].rules.push((rule.clone(), file, seq)),
                None => self.undefined_chain(ti, name, file),
            }
        }
        for (file, target, elems, seq) in pending_elems {
            self.file = file;
            let Some(ti) = self.table_ref(file, target) else {
                continue;
            };
            let Some(name) = &target.name else { continue };
            match self.find_set(ti, &name.name) {
                Some(si) => self.sets[si].extra.push((elems, file, seq)),
                None => self.undefined_set(ti, name, file),
            }
        }
    }

    pub(crate) fn undefined_chain(&mut self, table: usize, name: &ast::Ident, file: FileId) {
        let names: Vec<String> = self.tables[table]
            .chains
            .iter()
            .map(|c| self.chains[*c].name.clone())
            .collect();
        let mut d = Diagnostic::error(
            "E0103",
            sp(file, name.span),
            format!("chain `{}` is not defined", name.name),
        )
        .with_primary_label(format!(
            "no chain of this name in table `{}`",
            self.tables[table].name
        ));
        if let Some(m) = resolve::did_you_mean(&name.name, names.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{m}`?"));
        }
        self.diags.push(d);
    }

    pub(crate) fn undefined_set(&mut self, table: usize, name: &ast::Ident, file: FileId) {
        let names: Vec<String> = self.tables[table]
            .sets
            .iter()
            .map(|c| self.sets[*c].name.clone())
            .collect();
        let mut d = Diagnostic::error(
            "E0104",
            sp(file, name.span),
            format!("set or map `@{}` is not defined", name.name),
        )
        .with_primary_label(format!(
            "no set or map of this name in table `{}`",
            self.tables[table].name
        ));
        if let Some(m) = resolve::did_you_mean(&name.name, names.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `@{m}`?"));
        }
        self.diags.push(d);
    }

    /// Resolve `@name` in the current table; `want_map` = used with `vmap`/`map`.
    pub(crate) fn lookup_set(
        &mut self,
        id: &ast::Ident,
        key: &[Type],
        want_map: bool,
    ) -> Option<SetId> {
        let Some(si) = self.find_set(self.table, &id.name) else {
            self.undefined_set(self.table, id, self.file);
            return None;
        };
        let s = &self.sets[si];
        let is_map = s.data.is_some() || s.obj.is_some();
        let span = self.sp(id.span);
        if is_map != want_map {
            let d = Diagnostic::error(
                "E0106",
                span,
                if is_map {
                    format!("`@{}` is a map, used here as a set", id.name)
                } else {
                    format!("`@{}` is a set, used here as a map", id.name)
                },
            )
            .with_label(s.span, "declared here");
            self.diags.push(d);
            return None;
        }
        if s.typed
            && (s.key.len() != key.len()
                || s.key
                    .iter()
                    .zip(key)
                    .any(|(a, b)| !types::same_type(*a, *b)))
        {
            let have: Vec<&str> = s.key.iter().map(|t| t.name()).collect();
            let want: Vec<&str> = key.iter().map(|t| t.name()).collect();
            let d = Diagnostic::error(
                "E0205",
                span,
                format!(
                    "`@{}` holds {} but is looked up with {}",
                    id.name,
                    have.join(" . "),
                    want.join(" . ")
                ),
            )
            .with_label(s.span, "declared here");
            self.diags.push(d);
            return None;
        }
        Some(SetId(si as u32))
    }

    fn set_types(&mut self, st: &ast::SetKey) -> Option<Vec<Type>> {
        match st {
            ast::SetKey::Type(names) => {
                let mut out = Vec::new();
                for n in names {
                    match Type::from_name(&n.name) {
                        Some(t) => out.push(t),
                        None => {
                            let known = [
                                "ipv4_addr",
                                "ipv6_addr",
                                "ether_addr",
                                "inet_proto",
                                "inet_service",
                                "mark",
                                "ifname",
                                "ct_state",
                                "verdict",
                            ];
                            let mut d = Diagnostic::error(
                                "E0208",
                                self.sp(n.span),
                                format!("unknown datatype `{}`", n.name),
                            );
                            if let Some(m) = resolve::did_you_mean(&n.name, known) {
                                d = d.with_help(format!("did you mean `{m}`?"));
                            }
                            self.diags.push(d);
                            return None;
                        }
                    }
                }
                Some(out)
            }
            ast::SetKey::Typeof(exprs) => {
                let mut out = Vec::new();
                for e in exprs {
                    let x = self.selector(e)?;
                    out.extend(types::key_types(&x));
                }
                Some(out)
            }
        }
    }

    fn sets_pass(&mut self) {
        for si in 0..self.sets.len() {
            let table = self.sets[si].table;
            self.table = table;
            self.family = self.tables[table].family;
            let Some((def, file)) = self.sets[si].def.clone() else {
                continue;
            };
            self.file = file;
            self.seq = self.sets[si].seq;
            let span = self.sets[si].span;
            let Some(k) = &def.key else {
                self.diags.push(
                    Diagnostic::error(
                        "E0208",
                        span,
                        format!("set `{}` has no `type` or `typeof`", def.name.name),
                    )
                    .with_help("add e.g. `type ipv4_addr;`"),
                );
                continue;
            };
            let Some(key) = self.set_types(k) else {
                continue;
            };
            // `type KEY : counter` (nft's map_block_obj_type; nft has no named map of ct
            // helper objects: `ct helper set KEY map { ... }` makes an anonymous one).
            let obj = match &def.data {
                Some(ast::SetKey::Type(names)) if def.is_map => match names.as_slice() {
                    [n] if n.name == "counter" => Some(hir::ObjKind::Counter),
                    _ => None,
                },
                _ => None,
            };
            let data = if def.is_map && obj.is_some() {
                None
            } else if def.is_map {
                match &def.data {
                    Some(d) => match self.set_types(d) {
                        Some(t) => Some(t),
                        None => continue,
                    },
                    None => {
                        self.diags.push(
                            Diagnostic::error(
                                "E0208",
                                span,
                                format!("map `{}` has no data type", def.name.name),
                            )
                            .with_help("write `type KEY : VALUE`, e.g. `type ipv4_addr : verdict`"),
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            let mut flags = hir::SetFlags::default();
            for f in &def.flags {
                match f.name.as_str() {
                    "constant" => flags.constant = true,
                    "interval" => flags.interval = true,
                    "timeout" => flags.timeout = true,
                    "dynamic" => flags.dynamic = true,
                    other => self.diags.push(
                        Diagnostic::error(
                            "E0201",
                            self.sp(f.span),
                            format!("unknown set flag `{other}`"),
                        )
                        .with_note("known flags: constant, interval, timeout, dynamic"),
                    ),
                }
            }
            if def.timeout.is_some() {
                flags.timeout = true;
            }
            flags.interval |= def.data_interval;
            let s = &mut self.sets[si];
            s.key = key;
            s.data = data;
            s.obj = obj;
            s.flags = flags;
            s.typed = true;
        }
        // elements
        for si in 0..self.sets.len() {
            if !self.sets[si].typed {
                continue;
            }
            let table = self.sets[si].table;
            self.table = table;
            self.family = self.tables[table].family;
            let all = std::mem::take(&mut self.sets[si].extra);
            let key = self.sets[si].key.clone();
            let data = self.sets[si].data.clone();
            let obj = self.sets[si].obj;
            // each list is read element by element into the set's rows (and dropped once read)
            let mut out = hir::Elements::new();
            for (list, file, seq) in all {
                self.file = file;
                self.seq = seq;
                for e in list.iter() {
                    let els = match obj {
                        Some(kind) => self.objref_elems(&e, &key, kind),
                        None => self.elements_flat(&e, &key, data.as_deref()),
                    };
                    for el in els.unwrap_or_default() {
                        if !self.sets[si].flags.interval
                            && el.key.iter().any(|k| !matches!(k, hir::KeyPart::Value(_)))
                        {
                            self.diags.push(
                                Diagnostic::error(
                                    "E0205",
                                    el.span,
                                    format!(
                                        "range or prefix in `{}`, which has no `flags interval`",
                                        self.sets[si].name
                                    ),
                                )
                                .with_label(self.sets[si].span, "declared here")
                                .with_help("add `flags interval;` to the set"),
                            );
                            continue;
                        }
                        out.push(&el);
                    }
                }
            }
            let auto_merge = self.sets[si].def.as_ref().is_some_and(|d| d.0.auto_merge);
            if (self.sets[si].flags.interval && !auto_merge) || data.is_some() || obj.is_some() {
                let what = format!("`{}`", self.sets[si].name);
                self.check_overlaps((&out).into(), &what);
            }
            if obj.is_some() {
                self.one_catchall((&out).into());
            }
            out.shrink_to_fit();
            self.sets[si].elements = out;
        }
    }

    fn chains_pass(&mut self) {
        for ci in 0..self.chains.len() {
            let table = self.chains[ci].table;
            let family = self.tables[table].family;
            self.family = family;
            self.seq = self.chains[ci].seq;
            if let Some((h, file)) = self.chains[ci].hook.clone() {
                self.file = file;
                let base =
                    hooks_check::base_chain(self, family, &h, self.chains[ci].policy.clone());
                self.chains[ci].base = base;
            } else if let Some((p, file)) = self.chains[ci].policy.clone() {
                self.file = file;
                self.diags.push(
                    Diagnostic::error("E0403", self.sp(p.span), format!("policy on user chain `{}`", self.chains[ci].name))
                        .with_primary_label("only base chains have a policy")
                        .with_help("add `type filter hook input priority filter;` to make it a base chain, or remove the policy"),
                );
            }
        }
    }

    fn rules_pass(&mut self) -> Vec<Vec<hir::Rule>> {
        let mut out = Vec::new();
        // a rule holding a syntax error is not checked: what the parser recovered of it (`ip saddr 999.1.1.1
        // accept` without the bad address) would only give follow-on errors
        let mut syntax: Vec<(FileId, u32)> = self
            .diags
            .iter()
            .filter(|d| d.code == "E0001")
            .map(|d| (d.primary.file, d.primary.start))
            .collect();
        syntax.sort_unstable();
        let broken = |file: FileId, r: &ast::Rule| {
            let i = syntax.partition_point(|&e| e < (file, r.span.start));
            syntax
                .get(i)
                .is_some_and(|&(f, at)| f == file && at < r.span.end)
        };
        for ci in 0..self.chains.len() {
            let table = self.chains[ci].table;
            self.table = table;
            self.chain = ci;
            self.family = self.tables[table].family;
            // each rule's syntax tree is dropped once its Hir is made, before the Hir settles in its place
            let rules = std::mem::take(&mut self.chains[ci].rules);
            let mut hr = Vec::with_capacity(rules.len());
            for (r, file, seq) in rules {
                if broken(file, &r) {
                    continue;
                }
                self.file = file;
                self.seq = seq;
                if let Some(mut x) = self.rule(&r) {
                    drop(r);
                    Ctx::settle(&mut x);
                    hr.push(x);
                }
            }
            out.push(hr);
        }
        out
    }

    fn build(&mut self, mut rules: Vec<Vec<hir::Rule>>) -> Hir {
        let mut hir = Hir {
            flush_ruleset: self.flush_ruleset,
            counters: self.counter_objs.clone(),
            ..Hir::default()
        };
        for (ci, c) in self.chains.iter().enumerate() {
            let kind = match &c.base {
                Some(b) => ChainKind::Base(b.clone()),
                None => ChainKind::User,
            };
            hir.chains.push(hir::Chain {
                id: ChainId(ci as u32),
                table: TableId(c.table as u32),
                name: c.name.clone(),
                span: c.span,
                kind,
                rules: rules.get_mut(ci).map(std::mem::take).unwrap_or_default(),
            });
        }
        for (si, s) in self.sets.iter_mut().enumerate() {
            hir.sets.push(hir::Set {
                id: SetId(si as u32),
                table: TableId(s.table as u32),
                name: s.name.clone(),
                span: s.span,
                key: s.key.clone(),
                data: s.data.clone(),
                obj: s.obj,
                flags: s.flags.clone(),
                timeout: s
                    .def
                    .as_ref()
                    .and_then(|d| d.0.timeout.as_ref().map(|t| t.ms)),
                size: s
                    .def
                    .as_ref()
                    .and_then(|d| d.0.size.map(|n| u32::try_from(n).unwrap_or(u32::MAX))),
                elements: std::mem::take(&mut s.elements),
            });
        }
        let mut by_table: HashMap<usize, ()> = HashMap::new();
        for (ti, t) in self.tables.iter().enumerate() {
            by_table.insert(ti, ());
            hir.tables.push(hir::Table {
                id: TableId(ti as u32),
                family: t.family,
                name: t.name.clone(),
                span: t.span,
                chains: t.chains.iter().map(|c| ChainId(*c as u32)).collect(),
                sets: t.sets.iter().map(|s| SetId(*s as u32)).collect(),
                objects: (t.ct_helpers.len() + t.counters.len()) as u32,
            });
        }
        hir
    }
}

/// Base chain checks that need the checker context (kept next to the tables in `hooks`).
mod hooks_check {
    use super::*;
    use crate::hir::{BaseChain, ChainType, Hook, Policy};

    pub(super) fn base_chain(
        cx: &mut Ctx,
        family: Family,
        h: &ast::ChainHook,
        policy: Option<(ast::Policy, FileId)>,
    ) -> Option<BaseChain> {
        let mut ok = true;
        let ty = ChainType::from_name(&h.chain_type.name);
        if ty.is_none() {
            ok = false;
            let mut d = Diagnostic::error(
                "E0404",
                cx.sp(h.chain_type.span),
                format!("unknown chain type `{}`", h.chain_type.name),
            )
            .with_note("chain types are filter, nat and route");
            if let Some(m) = resolve::did_you_mean(&h.chain_type.name, ["filter", "nat", "route"]) {
                d = d.with_help(format!("did you mean `{m}`?"));
            }
            cx.diags.push(d);
        }
        let hook = Hook::from_name(&h.hook.name);
        if hook.is_none() {
            ok = false;
            let names = [
                "prerouting",
                "input",
                "forward",
                "output",
                "postrouting",
                "ingress",
            ];
            let mut d = Diagnostic::error(
                "E0404",
                cx.sp(h.hook.span),
                format!("unknown hook `{}`", h.hook.name),
            )
            .with_note(format!("hooks are {}", names.join(", ")));
            if let Some(m) = resolve::did_you_mean(&h.hook.name, names) {
                d = d.with_help(format!("did you mean `{m}`?"));
            }
            cx.diags.push(d);
        }
        let prio_span = cx.sp(h.priority.span);
        let priority: Option<i64> = match &h.priority.kind {
            ast::PriorityKind::Number(n) => Some(*n),
            ast::PriorityKind::Named { name, offset } => match hooks::std_prio(name, hook) {
                Ok(v) => Some(i64::from(v).saturating_add(*offset)),
                Err(why) => {
                    let mut d = Diagnostic::error("E0404", prio_span, why);
                    let names: Vec<&str> =
                        nfr_proto::hook::STD_PRIOS.iter().map(|p| p.name).collect();
                    if !names.contains(&name.as_str())
                        && let Some(m) = resolve::did_you_mean(name, names)
                    {
                        d = d.with_help(format!("did you mean `{m}`?"));
                    }
                    cx.diags.push(d);
                    None
                }
            },
            ast::PriorityKind::Var(v) => {
                let e = ast::Expr::new(
                    ast::ExprKind::Var(ast::Ident {
                        name: v.clone(),
                        span: h.priority.span,
                    }),
                    h.priority.span,
                );
                cx.value(&e, Type::Integer { bits: 32 })
                    .map(|v| v.as_u128() as u32 as i32 as i64)
            }
        };
        let priority = match priority.map(i32::try_from) {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => {
                cx.diags.push(Diagnostic::error(
                    "E0200",
                    prio_span,
                    "priority out of range for a 32-bit integer",
                ));
                None
            }
            None => None,
        };
        let (Some(ty), Some(hook), Some(priority)) = (ty, hook, priority) else {
            return None;
        };
        if let Some(why) = hooks::chain_type_hook_error(family, ty, hook) {
            ok = false;
            cx.diags.push(
                Diagnostic::error(
                    "E0400",
                    cx.sp(h.hook.span),
                    format!("a {} chain cannot hook {}", ty.name(), hook.name()),
                )
                .with_label(
                    cx.sp(h.chain_type.span),
                    format!("chain type {}", ty.name()),
                )
                .with_note(why),
            );
        }
        if ty == ChainType::Nat && priority <= hooks::NF_IP_PRI_CONNTRACK {
            ok = false;
            cx.diags.push(
                Diagnostic::error("E0401", prio_span, format!("nat chain priority {priority} is not above -200"))
                    .with_primary_label("conntrack runs at -200; nat must come after it")
                    .with_help("use `priority dstnat` (-100) on prerouting/output or `priority srcnat` (100) on postrouting/input"),
            );
        }
        let policy = match policy {
            None => Policy::Accept,
            Some((p, file)) => {
                let saved = cx.file;
                cx.file = file;
                let r = match &p.kind {
                    ast::PolicyKind::Accept => Policy::Accept,
                    ast::PolicyKind::Drop => Policy::Drop,
                    ast::PolicyKind::Var(v) => {
                        let e = ast::Expr::new(
                            ast::ExprKind::Var(ast::Ident {
                                name: v.clone(),
                                span: p.span,
                            }),
                            p.span,
                        );
                        match cx.with_var(&e, &mut |cx, e| match &e.kind {
                            ast::ExprKind::Verdict(ast::Verdict::Accept) => Some(Policy::Accept),
                            ast::ExprKind::Verdict(ast::Verdict::Drop) => Some(Policy::Drop),
                            ast::ExprKind::Symbol(s) if s == "accept" => Some(Policy::Accept),
                            ast::ExprKind::Symbol(s) if s == "drop" => Some(Policy::Drop),
                            _ => {
                                cx.diags.push(Diagnostic::error(
                                    "E0204",
                                    cx.sp(e.span),
                                    "a policy is `accept` or `drop`",
                                ));
                                None
                            }
                        }) {
                            Some(p) => p,
                            None => {
                                ok = false;
                                Policy::Accept
                            }
                        }
                    }
                };
                cx.file = saved;
                r
            }
        };
        let device = h.devices.first().map(|d| d.value.clone());
        match (hook, &device) {
            (Hook::Ingress, None) => {
                ok = false;
                cx.diags.push(
                    Diagnostic::error(
                        "E0400",
                        cx.sp(h.hook.span),
                        "an ingress chain needs a device",
                    )
                    .with_help("write `type filter hook ingress device \"eth0\" priority 0;`"),
                );
            }
            (Hook::Ingress, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                ok = false;
                cx.diags.push(Diagnostic::error(
                    "E0400",
                    cx.sp(h.span),
                    format!(
                        "`device` is only valid on the ingress hook, not {}",
                        hook.name()
                    ),
                ));
            }
        }
        ok.then(|| BaseChain {
            ty,
            hook,
            priority,
            policy,
            device,
            span: cx.sp(h.span),
        })
    }
}
