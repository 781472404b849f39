//! Includes, defines and names: parse the root file and its includes (through the caller's
//! [`Loader`]; the compiler never opens files), flatten them into one command list, collect
//! `define`s, and declare tables, chains and sets (duplicates reported with both spans).

use hashbrown::HashMap;
use nfr_grammar::ast;

use crate::diag::{Diagnostic, FileId, SourceMap, Span};
use crate::hir::Family;

/// Finds and reads included files.
pub trait Loader {
    /// Reads one file named by [`Loader::resolve`].
    fn load(&mut self, path: &str) -> Result<String, String>;
    /// The files `include "inc"` in the file named `from` stands for, in include order (empty when a wildcard
    /// pattern matches nothing, which nft accepts). By default `inc` relative to `from`'s directory.
    fn resolve(&mut self, from: &str, inc: &str) -> Result<Vec<String>, String> {
        Ok(vec![join_path(from, inc)])
    }
}

impl<F: FnMut(&str) -> Result<String, String>> Loader for F {
    fn load(&mut self, path: &str) -> Result<String, String> {
        self(path)
    }
}

/// A loader for single-file checks: every include fails.
pub struct NoIncludes;

impl Loader for NoIncludes {
    fn load(&mut self, _path: &str) -> Result<String, String> {
        Err("includes are not available here".into())
    }
}

/// Maximum include nesting.
pub const MAX_INCLUDE_DEPTH: usize = 16;

pub fn sp(file: FileId, s: ast::Span) -> Span {
    Span {
        file,
        start: s.start,
        end: s.end,
    }
}

/// Resolve `inc` relative to the directory of `from`.
pub fn join_path(from: &str, inc: &str) -> String {
    if inc.starts_with('/') {
        return normalize(inc);
    }
    match from.rfind('/') {
        Some(i) => normalize(&format!("{}/{}", &from[..i], inc)),
        None => normalize(inc),
    }
}

fn normalize(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| *l != "..") => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    let j = out.join("/");
    if abs { format!("/{j}") } else { j }
}

/// Parse `file` and, recursively, its includes; push every command in source order.
pub fn flatten(
    sources: &mut SourceMap,
    file: FileId,
    loader: &mut dyn Loader,
    stack: &mut Vec<(String, Span)>,
    out: &mut Vec<(FileId, ast::Command)>,
    diags: &mut Vec<Diagnostic>,
) {
    let parsed = nfr_grammar::parse(sources.text(file));
    for e in &parsed.errors {
        let mut d = Diagnostic::error("E0001", sp(file, e.span), e.message.clone());
        if !e.expected.is_empty() && !e.message.contains("expected") {
            let mut exp = e.expected.clone();
            exp.truncate(12);
            d = d.with_note(format!("expected one of: {}", exp.join(", ")));
        }
        diags.push(d);
    }
    let name = sources.name(file).to_string();
    for cmd in parsed.file.commands {
        if let ast::CommandKind::Include(path) = &cmd.kind {
            let span = sp(file, path.span);
            let targets = match loader.resolve(&name, &path.value) {
                Ok(t) => t,
                Err(why) => {
                    diags.push(
                        Diagnostic::error(
                            "E0002",
                            span,
                            format!("cannot include `{}`: {why}", path.value),
                        )
                        .with_primary_label("included here"),
                    );
                    continue;
                }
            };
            for target in targets {
                include_one(sources, target, span, loader, stack, out, diags);
            }
            continue;
        }
        out.push((file, cmd));
    }
}

/// One resolved include: refused when it closes a cycle or nests too deep, else read and flattened.
fn include_one(
    sources: &mut SourceMap,
    target: String,
    span: Span,
    loader: &mut dyn Loader,
    stack: &mut Vec<(String, Span)>,
    out: &mut Vec<(FileId, ast::Command)>,
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(pos) = stack.iter().position(|(n, _)| *n == target) {
        let mut d = Diagnostic::error(
            "E0003",
            span,
            format!("include cycle: `{target}` includes itself"),
        )
        .with_primary_label("this include closes the cycle");
        for (n, s) in stack.iter().skip(pos + 1) {
            d = d.with_label(*s, format!("`{n}` is included here"));
        }
        diags.push(d.with_help("remove one of the includes"));
        return;
    }
    if stack.len() >= MAX_INCLUDE_DEPTH {
        diags.push(Diagnostic::error(
            "E0004",
            span,
            format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"),
        ));
        return;
    }
    match loader.load(&target) {
        Ok(text) => {
            let id = sources.add(target.clone(), text);
            stack.push((target, span));
            flatten(sources, id, loader, stack, out, diags);
            stack.pop();
        }
        Err(why) => diags.push(
            Diagnostic::error(
                "E0002",
                span,
                format!("cannot read include file `{target}`: {why}"),
            )
            .with_primary_label("included here"),
        ),
    }
}

/// A `define`d value with the file its expression's spans point into.
#[derive(Clone, Debug)]
pub struct DefineVal {
    pub value: ast::Expr,
    pub file: FileId,
    pub span: Span,
    /// Position of the definition in the flattened ruleset (see [`Defines`]).
    pub seq: usize,
}

/// Defines in ruleset order. Every command and table item has a sequence number; a `$var`
/// sees the definition in force just before its own position (nft's semantics: a variable
/// must be defined before use; `redefine` replaces, `undefine` removes from there on).
#[derive(Clone, Debug, Default)]
pub struct Defines {
    pub map: HashMap<String, Vec<(usize, Option<DefineVal>)>>,
}

impl Defines {
    fn current(&self, name: &str) -> Option<&DefineVal> {
        self.map.get(name)?.last()?.1.as_ref()
    }

    pub fn define(
        &mut self,
        seq: usize,
        file: FileId,
        d: &ast::Define,
        diags: &mut Vec<Diagnostic>,
    ) {
        let span = sp(file, d.name.span);
        if !d.redefine
            && let Some(prev) = self.current(&d.name.name)
        {
            diags.push(
                Diagnostic::error(
                    "E0011",
                    span,
                    format!("`{}` is already defined", d.name.name),
                )
                .with_primary_label("defined again here")
                .with_label(prev.span, "first definition")
                .with_help("use `redefine` to change a definition on purpose"),
            );
            return;
        }
        let v = DefineVal {
            value: d.value.clone(),
            file,
            span,
            seq,
        };
        self.map
            .entry(d.name.name.clone())
            .or_default()
            .push((seq, Some(v)));
    }

    /// `undefine NAME`; false if it was not defined.
    pub fn undefine(&mut self, seq: usize, name: &str) -> bool {
        if self.current(name).is_none() {
            return false;
        }
        self.map
            .entry(name.to_string())
            .or_default()
            .push((seq, None));
        true
    }

    /// The definition of `name` in force just before position `seq`.
    pub fn get(&self, name: &str, seq: usize) -> Option<&DefineVal> {
        self.map
            .get(name)?
            .iter()
            .rev()
            .find(|(s, _)| *s < seq)?
            .1
            .as_ref()
    }

    /// A definition of `name` that comes after `seq` (for "defined later" hints).
    pub fn later(&self, name: &str, seq: usize) -> Option<&DefineVal> {
        self.map
            .get(name)?
            .iter()
            .find(|(s, v)| *s >= seq && v.is_some())?
            .1
            .as_ref()
    }

    /// Names defined just before `seq`.
    pub fn names_at(&self, seq: usize) -> Vec<String> {
        self.map
            .keys()
            .filter(|n| self.get(n, seq).is_some())
            .cloned()
            .collect()
    }
}

/// Map an Ast family (None = ip). `Err` for families nfc does not support.
pub fn family(f: Option<ast::Family>) -> Result<Family, ast::Family> {
    match f {
        None | Some(ast::Family::Ip) => Ok(Family::Ip),
        Some(ast::Family::Ip6) => Ok(Family::Ip6),
        Some(ast::Family::Inet) => Ok(Family::Inet),
        Some(other) => Err(other),
    }
}

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a small distance.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let max = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(join_path("a/b/main.nfr", "inc.nfr"), "a/b/inc.nfr");
        assert_eq!(join_path("a/b/main.nfr", "../x/inc.nfr"), "a/x/inc.nfr");
        assert_eq!(join_path("main.nfr", "./i.nfr"), "i.nfr");
        assert_eq!(join_path("/etc/n/main.nfr", "/abs/i.nfr"), "/abs/i.nfr");
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("sshh", ["ssh", "http"]), Some("ssh"));
        assert_eq!(
            did_you_mean("establised", ["new", "established"]),
            Some("established")
        );
        assert_eq!(did_you_mean("zzzz", ["ssh"]), None);
    }
}
