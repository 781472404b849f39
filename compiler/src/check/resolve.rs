//! Includes, defines and names: parse the root file and its includes (through the caller's
//! [`Loader`]; the compiler never opens files), flatten them into one command list, collect
//! `define`s, and declare tables, chains and sets (duplicates reported with both spans).

use hashbrown::HashMap;
use nfr_grammar::ast;

use crate::diag::{Diagnostic, FileId, SourceMap, Span};
use crate::hir::Family;

/// Reads included files. `path` is already resolved against the including file's directory.
pub trait Loader {
    fn load(&mut self, path: &str) -> Result<String, String>;
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
            let target = join_path(&name, &path.value);
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
                continue;
            }
            if stack.len() >= MAX_INCLUDE_DEPTH {
                diags.push(Diagnostic::error(
                    "E0004",
                    span,
                    format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"),
                ));
                continue;
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
            continue;
        }
        out.push((file, cmd));
    }
}

/// A `define`d value with the file its expression's spans point into.
#[derive(Clone, Debug)]
pub struct DefineVal {
    pub value: ast::Expr,
    pub file: FileId,
    pub span: Span,
}

/// Collected defines (file order: a later `redefine` replaces, `undefine` removes).
#[derive(Clone, Debug, Default)]
pub struct Defines {
    pub map: HashMap<String, DefineVal>,
}

impl Defines {
    pub fn define(&mut self, file: FileId, d: &ast::Define, diags: &mut Vec<Diagnostic>) {
        let span = sp(file, d.name.span);
        if !d.redefine
            && let Some(prev) = self.map.get(&d.name.name)
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
        self.map.insert(
            d.name.name.clone(),
            DefineVal {
                value: d.value.clone(),
                file,
                span,
            },
        );
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
