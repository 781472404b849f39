//! From tokens to the Ast: the pre-pass that balances braces and caps nesting, the lalrpop run
//! with its recovered errors, and the conversion of the raw tree ([`crate::cst`]) into
//! [`crate::ast`], including the rule / expression parser (a recursive-descent parser over token
//! trees, guided by the [`crate::catalog`] so it knows where a statement ends — nft's scanner does
//! the same with start conditions).
//!
//! Errors inside one line (a rule, a set property, a chain property) drop that line and are
//! recorded; every other line is still converted, so one run reports every error.

use crate::ast::*;
use crate::catalog;
use crate::cst::{self, Item, Top, exact};
use crate::lexer::{self, Tok};
use crate::packed::{Elements, Packed, PackedExprs, Packer};
use crate::{Parsed, SyntaxError};

/// Maximum nesting of `{ ( [` groups.
pub const MAX_DEPTH: usize = 64;

/// Maximum number of bit operators in one operator chain (the tree is nested that deep).
pub const MAX_BINOPS: usize = 64;

fn sp(l: usize, r: usize) -> Span {
    Span::new(
        l.min(u32::MAX as usize) as u32,
        r.min(u32::MAX as usize) as u32,
    )
}

fn err(l: usize, r: usize, msg: impl Into<String>) -> SyntaxError {
    SyntaxError {
        span: sp(l, r),
        message: msg.into(),
        expected: Vec::new(),
    }
}

/// An open group in the pre-pass.
struct Open {
    close: Tok,
    start: usize,
    end: usize,
    /// A `{ ... }` value literal (set, map, vmap, elements) rather than a declaration block.
    literal: bool,
    /// A table body (its lines may declare objects such as `counter NAME { ... }`).
    table_body: bool,
    /// Indentation (columns, tab = 8) of the line that opened the group.
    indent: usize,
    /// The body of a set or map declaration (its `elements = {` list may be packed).
    set_body: bool,
}

/// Incremental "which line am I on" tracker for the pre-pass: positions are queried in
/// increasing order, so the whole file is scanned once (hostile single-line inputs stay linear).
struct Lines<'s> {
    src: &'s [u8],
    /// Scanned up to here.
    pos: usize,
    /// Start of the line containing `pos`.
    line_start: usize,
    /// (indentation in columns, end of the leading whitespace) of the current line, once known.
    indent: Option<(usize, usize)>,
}

impl<'s> Lines<'s> {
    fn new(src: &'s str) -> Self {
        Lines {
            src: src.as_bytes(),
            pos: 0,
            line_start: 0,
            indent: None,
        }
    }

    /// Indentation (columns, tab = 8) of the line containing byte `at`, and whether only
    /// whitespace precedes `at` on that line. `at` must not decrease between calls.
    fn at(&mut self, at: usize) -> (usize, bool) {
        let at = at.min(self.src.len());
        while self.pos < at {
            if self.src.get(self.pos) == Some(&b'\n') {
                self.line_start = self.pos + 1;
                self.indent = None;
            }
            self.pos += 1;
        }
        let (col, ws_end) = *self.indent.get_or_insert_with(|| {
            let mut col = 0;
            let mut i = self.line_start;
            while let Some(c @ (b' ' | b'\t')) = self.src.get(i) {
                col = if *c == b'\t' {
                    (col / 8 + 1) * 8
                } else {
                    col + 1
                };
                i += 1;
            }
            (col, i)
        });
        (col, ws_end >= at)
    }
}

fn open_name(c: &Tok) -> &'static str {
    match c {
        Tok::RBrace => "{",
        Tok::RParen => "(",
        _ => "[",
    }
}

/// Lex, drop error tokens, balance braces, cap depth.
///
/// Recovery heuristic (only for files whose braces do not balance) for a forgotten `}` of a
/// value literal (`tcp dport { 22, 80` at the end
/// of a line): a `}` that starts a line indented less than the line that opened a still-open
/// literal closes that literal first (with an "unclosed `{`" error), so the enclosing chain or
/// table keeps its shape.
fn prepare<'s>(
    src: &'s str,
    pack: bool,
    errors: &mut Vec<SyntaxError>,
    comments: &mut Vec<Comment>,
) -> Prep<'s, impl Iterator<Item = lexer::Spanned> + 's> {
    // Valid files are balanced as written; only unbalanced ones get the indentation heuristic. A first pass
    // keeps only the errors and comments; the tokens stream to the parser from a second (no vector of all
    // tokens: 48 B each, three for a set element `10.0.0.1,` and its newline).
    let mut plain = Prep::new(src, false);
    plain.by_ref().for_each(drop);
    let unbalanced = plain
        .errors
        .iter()
        .any(|e| e.message == "unclosed `{`" || e.message.contains("without matching"));
    let mut chosen = plain;
    if unbalanced {
        chosen = Prep::new(src, true);
        chosen.by_ref().for_each(drop);
    }
    errors.append(&mut chosen.errors);
    comments.append(&mut chosen.comments);
    let mut last = Prep::new(src, unbalanced);
    // element lists are packed only where the groups are as written
    last.pack = pack && !unbalanced;
    last
}

/// The balancing pass over the lexer's tokens, one token (or a few closing ones) at a time.
struct Prep<'s, I> {
    src: &'s str,
    toks: I,
    errors: Vec<SyntaxError>,
    comments: Vec<Comment>,
    heuristic: bool,
    stack: Vec<Open>,
    skip_depth: usize,
    /// First two words of the current statement (for classifying `{`).
    stmt: Vec<Tok>,
    /// Tokens of the current statement.
    stmt_len: usize,
    lines: Lines<'s>,
    pending: std::collections::VecDeque<lexer::Spanned>,
    done: bool,
    /// Pack the tokens of element lists ([`crate::packed`]).
    pack: bool,
    /// The element list being packed: the offset of its `{` and its tokens so far.
    packing: Option<(usize, Packer)>,
    /// The packed element lists, by the offset of their `{` (their group reaches the grammar empty).
    packs: Vec<(usize, Packed)>,
}

impl<'s> Prep<'s, ()> {
    fn new(src: &'s str, heuristic: bool) -> Prep<'s, impl Iterator<Item = lexer::Spanned> + 's> {
        Prep {
            src,
            toks: lexer::tokens(src),
            errors: Vec::new(),
            comments: Vec::new(),
            heuristic,
            stack: Vec::new(),
            skip_depth: 0,
            stmt: Vec::new(),
            stmt_len: 0,
            lines: Lines::new(src),
            pending: std::collections::VecDeque::new(),
            done: false,
            pack: false,
            packing: None,
            packs: Vec::new(),
        }
    }
}

impl<I: Iterator<Item = lexer::Spanned>> Iterator for Prep<'_, I> {
    type Item = lexer::Spanned;

    fn next(&mut self) -> Option<lexer::Spanned> {
        loop {
            if let Some(t) = self.pending.pop_front() {
                return Some(t);
            }
            if self.done {
                return None;
            }
            match self.toks.next() {
                Some(t) => self.step(t),
                None => {
                    self.finish();
                    self.done = true;
                }
            }
        }
    }
}

impl<I> Prep<'_, I> {
    fn step(&mut self, (l, t, r): lexer::Spanned) {
        let Prep {
            stack,
            skip_depth,
            stmt,
            stmt_len,
            lines,
            pending,
            errors,
            comments,
            heuristic,
            pack,
            packing,
            packs,
            ..
        } = self;
        let mut start_pack = false;
        if *skip_depth > 0 {
            match t {
                Tok::LBrace | Tok::LParen | Tok::LBracket => *skip_depth += 1,
                Tok::RBrace | Tok::RParen | Tok::RBracket => *skip_depth -= 1,
                _ => {}
            }
            return;
        }
        match &t {
            Tok::Error(m) => {
                errors.push(err(l, r, m.clone()));
                return;
            }
            Tok::Comment(text) => {
                comments.push(Comment {
                    text: text.clone(),
                    span: sp(l, r),
                    own_line: lines.at(l).1,
                });
                return;
            }
            Tok::LBrace | Tok::LParen | Tok::LBracket => {
                // a packed list holds no groups
                unpack(packing, pending);
                if stack.len() >= MAX_DEPTH {
                    errors.push(err(l, r, format!("nesting deeper than {MAX_DEPTH} levels")));
                    *skip_depth = 1;
                    return;
                }
                let close = match t {
                    Tok::LBrace => Tok::RBrace,
                    Tok::LParen => Tok::RParen,
                    _ => Tok::RBracket,
                };
                let in_table = stack.last().is_some_and(|o| o.table_body);
                let decl = |k: Option<&Tok>| {
                    matches!(
                        k,
                        Some(
                            Tok::KwTable
                                | Tok::KwChain
                                | Tok::KwSet
                                | Tok::KwMap
                                | Tok::KwFlowtable
                        )
                    )
                };
                let first = stmt.first();
                let block = decl(first)
                    || (matches!(first, Some(Tok::KwAdd | Tok::KwCreate)) && decl(stmt.get(1)))
                    || (in_table
                        && !matches!(
                            first,
                            Some(Tok::KwElements | Tok::KwDefine | Tok::KwRedefine)
                        ));
                let table_body = matches!(first, Some(Tok::KwTable))
                    || (matches!(first, Some(Tok::KwAdd | Tok::KwCreate))
                        && matches!(stmt.get(1), Some(Tok::KwTable)));
                let set_body = t == Tok::LBrace
                    && block
                    && (matches!(first, Some(Tok::KwSet | Tok::KwMap))
                        || (matches!(first, Some(Tok::KwAdd | Tok::KwCreate))
                            && matches!(stmt.get(1), Some(Tok::KwSet | Tok::KwMap))));
                // `elements = {` in a set body, `add element T S {` at the top
                start_pack = *pack
                    && t == Tok::LBrace
                    && !block
                    && ((stmt[..] == [Tok::KwElements, Tok::Assign]
                        && *stmt_len == 2
                        && stack.last().is_some_and(|o| o.set_body))
                        || (stack.is_empty()
                            && matches!(
                                first,
                                Some(Tok::KwAdd | Tok::KwCreate | Tok::KwDelete | Tok::KwDestroy)
                            )
                            && stmt.get(1) == Some(&Tok::KwElement)));
                let (indent, _) = lines.at(l);
                stack.push(Open {
                    close,
                    start: l,
                    end: r,
                    literal: !block,
                    table_body,
                    indent,
                    set_body,
                });
                if t == Tok::LBrace {
                    stmt.clear();
                    *stmt_len = 0;
                }
            }
            Tok::RBrace => {
                if !stack.iter().any(|o| o.close == Tok::RBrace) {
                    errors.push(err(l, r, "unexpected `}` without matching `{`"));
                    return;
                }
                let (indent, first_on_line) = lines.at(l);
                while let Some(o) = stack.pop() {
                    let innermost_brace = o.close == Tok::RBrace
                        && !(*heuristic
                            && first_on_line
                            && o.literal
                            && indent < o.indent
                            && stack.iter().any(|x| x.close == Tok::RBrace));
                    if innermost_brace {
                        break;
                    }
                    errors.push(err(
                        o.start,
                        o.end,
                        format!("unclosed `{}`", open_name(&o.close)),
                    ));
                    // Keep groups balanced for the parser.
                    pending.push_back((l, o.close, l));
                }
                stmt.clear();
                *stmt_len = 0;
                if let Some((open, p)) = packing.take()
                    && !p.is_empty()
                {
                    packs.push((open, p.finish()));
                }
            }
            Tok::RParen | Tok::RBracket => {
                if stack.last().map(|o| &o.close) != Some(&t) {
                    errors.push(err(l, r, format!("unexpected `{}`", lexer::punct_str(&t))));
                    return;
                }
                stack.pop();
            }
            Tok::Newline | Tok::Semi => {
                stmt.clear();
                *stmt_len = 0;
                if packing.is_some() {
                    // inside a list only line separators
                    return;
                }
            }
            _ => {
                if stmt.len() < 2 {
                    stmt.push(t.clone());
                }
                *stmt_len += 1;
                if let Some((_, p)) = packing {
                    if p.push(l, &t, r) {
                        return;
                    }
                    unpack(packing, pending);
                }
            }
        }
        pending.push_back((l, t, r));
        if start_pack {
            *packing = Some((l, Packer::new(l)));
        }
    }

    /// Closes what is still open at the end of the source.
    fn finish(&mut self) {
        unpack(&mut self.packing, &mut self.pending);
        let end = self.src.len();
        while let Some(o) = self.stack.pop() {
            self.errors.push(err(
                o.start,
                o.end,
                format!("unclosed `{}`", open_name(&o.close)),
            ));
            self.pending.push_back((end, o.close, end));
        }
    }
}

/// Gives back the tokens of the list being packed (it holds something a packed list does not).
fn unpack(
    packing: &mut Option<(usize, Packer)>,
    pending: &mut std::collections::VecDeque<lexer::Spanned>,
) {
    if let Some((open, p)) = packing.take() {
        pending.extend(p.finish().tokens(open));
    }
}

fn readable_expected(exp: &[String]) -> Vec<String> {
    let mut v: Vec<String> = exp
        .iter()
        .map(|e| {
            let e = e.trim_matches('"').replace("\\\"", "\"");
            match e.as_str() {
                "\\n" => "newline".to_string(),
                "Word" => "identifier".to_string(),
                "Num" => "number".to_string(),
                "Quoted" => "string".to_string(),
                _ => format!("`{}`", e.trim_matches('"')),
            }
        })
        .collect();
    v.sort();
    v.dedup();
    if v.len() > 8 {
        // Too many alternatives (e.g. "any token of a rule") to say anything useful.
        v.clear();
    }
    v
}

fn convert_parse_error(e: lalrpop_util::ParseError<usize, Tok, ()>, src_len: usize) -> SyntaxError {
    use lalrpop_util::ParseError as P;
    match e {
        P::InvalidToken { location } => err(location, location + 1, "invalid token"),
        P::UnrecognizedEof { location, expected } => SyntaxError {
            span: sp(location, src_len),
            message: "unexpected end of input".into(),
            expected: readable_expected(&expected),
        },
        P::UnrecognizedToken {
            token: (l, t, r),
            expected,
        } => SyntaxError {
            span: sp(l, r),
            message: format!("unexpected {}", t.describe()),
            expected: readable_expected(&expected),
        },
        P::ExtraToken { token: (l, t, r) } => err(l, r, format!("unexpected {}", t.describe())),
        P::User { .. } => err(0, 0, "parse error"),
    }
}

/// The entry point behind [`crate::parse`].
pub fn parse(src: &str) -> Parsed {
    parse_with(src, true)
}

/// [`parse`], element lists packed or not.
fn parse_with(src: &str, pack: bool) -> Parsed {
    let mut errors = Vec::new();
    let mut comments = Vec::new();
    let mut toks = prepare(src, pack, &mut errors, &mut comments);
    let mut recovered = Vec::new();
    let result =
        crate::nfr::FileParser::new().parse(&mut recovered, toks.by_ref().map(Ok::<_, ()>));
    let packs = std::mem::take(&mut toks.packs);
    drop(toks);
    for r in recovered {
        errors.push(convert_parse_error(r.error, src.len()));
    }
    let tops = match result {
        Ok(t) => t,
        Err(e) => {
            errors.push(convert_parse_error(e, src.len()));
            Vec::new()
        }
    };
    let mut cx = Cx { src, errors, packs };
    let mut file = File {
        commands: Vec::new(),
        comments,
    };
    for t in tops {
        if let Some(c) = cx.top(t) {
            file.commands.push(c);
        }
    }
    let mut errors = cx.errors;
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    errors.dedup();
    Parsed { file, errors }
}

type R<T> = Result<T, SyntaxError>;

struct Cx<'s> {
    src: &'s str,
    errors: Vec<SyntaxError>,
    /// Packed element lists by the offset of their `{` (taken as their group is converted).
    packs: Vec<(usize, Packed)>,
}

fn ident(n: &cst::Name) -> Ident {
    Ident {
        name: n.1.clone(),
        span: sp(n.0, n.2),
    }
}

/// Flatten the lines of a group into one item sequence (newlines inside `{}` literals are
/// insignificant).
fn flat(g: &cst::Group) -> Vec<Item> {
    let mut v = Vec::with_capacity(g.lines.iter().map(|l| l.items.len()).sum());
    v.extend(g.lines.iter().flat_map(|l| l.items.iter().cloned()));
    v
}

/// [`flat`], the items moved out of the group (each line freed as it is emptied: a large set's elements
/// are never held twice).
fn take_flat(g: &mut cst::Group) -> Vec<Item> {
    let lines = std::mem::take(&mut g.lines);
    let mut v = Vec::with_capacity(lines.iter().map(|l| l.items.len()).sum());
    v.extend(lines.into_iter().flat_map(|l| l.items));
    v
}

impl Cx<'_> {
    fn objref(&mut self, names: &[cst::Name], want: usize, start: usize, end: usize) -> R<ObjRef> {
        // want = number of names without the family (1 = table, 2 = table + object).
        let (family, rest) = match names.len() {
            n if n == want + 1 => {
                let f = &names[0];
                match Family::from_name(&f.1) {
                    Some(fam) => (Some(fam), &names[1..]),
                    None => return Err(err(f.0, f.2, format!("unknown family `{}`", f.1))),
                }
            }
            n if n == want => (None, names),
            _ => {
                return Err(err(
                    start,
                    end,
                    "wrong number of names (expected [family] table [name])",
                ));
            }
        };
        Ok(ObjRef {
            family,
            table: ident(&rest[0]),
            name: rest.get(1).map(ident),
            span: sp(start, end),
        })
    }

    fn top(&mut self, t: Top) -> Option<Command> {
        match self.top_inner(t) {
            Ok(c) => c,
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn top_inner(&mut self, t: Top) -> R<Option<Command>> {
        let is_add =
            |v: &Option<cst::Name>| v.as_ref().is_none_or(|v| v.1 == "add" || v.1 == "create");
        Ok(Some(match t {
            Top::Table {
                start,
                end,
                verb,
                names,
                body,
            } => {
                let r = self.objref(&names, 1, start, end)?;
                if !is_add(&verb) {
                    let verb = verb.as_ref().map(ident).unwrap_or_else(|| Ident {
                        name: "add".into(),
                        span: sp(start, start),
                    });
                    if body.is_some() {
                        return Err(err(
                            start,
                            end,
                            format!("`{} table` takes no body", verb.name),
                        ));
                    }
                    return Ok(Some(Command {
                        kind: CommandKind::Object {
                            verb,
                            object: Ident {
                                name: "table".into(),
                                span: sp(start, end),
                            },
                            target: r,
                        },
                        span: sp(start, end),
                    }));
                }
                let mut table = Table {
                    family: r.family,
                    name: r.table,
                    has_body: body.is_some(),
                    items: Vec::new(),
                    span: sp(start, end),
                };
                if let Some(b) = body {
                    for line in b.items {
                        if let Some(it) = self.table_line(line) {
                            table.items.push(it);
                        }
                    }
                }
                Command {
                    kind: CommandKind::Table(table),
                    span: sp(start, end),
                }
            }
            Top::Chain {
                start,
                end,
                verb,
                names,
                body,
            } => {
                let r = self.objref(&names, 2, start, end)?;
                if !is_add(&verb) {
                    let verb = verb.as_ref().map(ident).unwrap_or_else(|| Ident {
                        name: "add".into(),
                        span: sp(start, start),
                    });
                    return Ok(Some(Command {
                        kind: CommandKind::Object {
                            verb,
                            object: Ident {
                                name: "chain".into(),
                                span: sp(start, end),
                            },
                            target: r,
                        },
                        span: sp(start, end),
                    }));
                }
                let name = r.name.clone().unwrap_or_else(|| r.table.clone());
                let chain = self.chain(name, body, start, end);
                Command {
                    kind: CommandKind::AddChain { table: r, chain },
                    span: sp(start, end),
                }
            }
            Top::Set {
                start,
                end,
                verb,
                is_map,
                names,
                body,
            } => {
                let r = self.objref(&names, 2, start, end)?;
                if !is_add(&verb) {
                    let verb = verb.as_ref().map(ident).unwrap_or_else(|| Ident {
                        name: "add".into(),
                        span: sp(start, start),
                    });
                    return Ok(Some(Command {
                        kind: CommandKind::Object {
                            verb,
                            object: Ident {
                                name: if is_map { "map" } else { "set" }.into(),
                                span: sp(start, end),
                            },
                            target: r,
                        },
                        span: sp(start, end),
                    }));
                }
                let name = r.name.clone().unwrap_or_else(|| r.table.clone());
                let set = self.set(name, is_map, body, start, end);
                Command {
                    kind: CommandKind::AddSet { table: r, set },
                    span: sp(start, end),
                }
            }
            Top::Rule {
                start,
                end,
                verb,
                items,
            } => {
                let insert = match verb.1.as_str() {
                    "add" => false,
                    "insert" => true,
                    v => return Err(err(verb.0, verb.2, format!("`{v} rule` is not supported"))),
                };
                // [family] table chain [position|handle|index N] rule...
                let mut i = 0;
                let mut words = Vec::new();
                while words.len() < 3 {
                    match items.get(i) {
                        Some(Item::Leaf(l, t, r)) if t.word().is_some() => {
                            words.push((*l, t.word().unwrap_or_default().to_string(), *r));
                            i += 1;
                        }
                        _ => break,
                    }
                    if words.len() == 2 && Family::from_name(&words[0].1).is_none() {
                        break;
                    }
                }
                if words.len() == 3 && Family::from_name(&words[0].1).is_none() {
                    i -= 1;
                    words.pop();
                }
                if words.len() < 2 {
                    return Err(err(
                        start,
                        end,
                        "expected `[family] TABLE CHAIN` after `rule`",
                    ));
                }
                let target = self.objref(&words, 2, start, end)?;
                let mut position = None;
                if let (
                    Some(Item::Leaf(l, t, r)),
                    Some(Item::Leaf(_, Tok::Number { value, .. }, _)),
                ) = (items.get(i), items.get(i + 1))
                    && matches!(t.word(), Some("position" | "handle" | "index"))
                {
                    position = Some((
                        Ident {
                            name: t.word().unwrap_or_default().into(),
                            span: sp(*l, *r),
                        },
                        u64::try_from(*value).unwrap_or(u64::MAX),
                    ));
                    i += 2;
                }
                let rest = items.get(i..).unwrap_or(&[]);
                let mut rule = self.rule(rest)?;
                rule.stmts = exact(rule.stmts);
                Command {
                    kind: CommandKind::AddRule {
                        target,
                        insert,
                        position,
                        rule,
                    },
                    span: sp(start, end),
                }
            }
            Top::Element {
                start,
                end,
                verb,
                names,
                mut body,
            } => {
                let delete = match verb.1.as_str() {
                    "add" | "create" => false,
                    "delete" | "destroy" => true,
                    v => {
                        return Err(err(
                            verb.0,
                            verb.2,
                            format!("`{v} element` is not supported"),
                        ));
                    }
                };
                let target = self.objref(&names, 2, start, end)?;
                let elements = self.set_elements(&mut body)?;
                Command {
                    kind: CommandKind::Element {
                        delete,
                        target,
                        elements,
                    },
                    span: sp(start, end),
                }
            }
            Top::FlushRuleset { start, end, family } => {
                let family = match family {
                    None => None,
                    Some(f) => Some(
                        Family::from_name(&f.1)
                            .ok_or_else(|| err(f.0, f.2, format!("unknown family `{}`", f.1)))?,
                    ),
                };
                Command {
                    kind: CommandKind::FlushRuleset { family },
                    span: sp(start, end),
                }
            }
            Top::Define {
                start,
                end,
                redefine,
                name,
                value,
            } => {
                let d = self.define(redefine, &name, &value, start, end)?;
                Command {
                    kind: CommandKind::Define(d),
                    span: sp(start, end),
                }
            }
            Top::Undefine { start, end, name } => Command {
                kind: CommandKind::Undefine(ident(&name)),
                span: sp(start, end),
            },
            Top::Include { start, end, path } => Command {
                kind: CommandKind::Include(Str {
                    value: path.1,
                    span: sp(path.0, path.2),
                }),
                span: sp(start, end),
            },
            Top::Other { start, end, items } => {
                if items.is_empty() && start == end {
                    return Ok(None); // error placeholder; already reported
                }
                return Err(err(start, end, "unsupported command"));
            }
        }))
    }

    fn define(
        &mut self,
        redefine: bool,
        name: &cst::Name,
        value: &[Item],
        start: usize,
        end: usize,
    ) -> R<Define> {
        let mut p = P::new(self.src, value, end);
        let v = p.value_or_selector()?;
        p.expect_end()?;
        Ok(Define {
            name: ident(name),
            value: v,
            redefine,
            span: sp(start, end),
        })
    }

    fn table_line(&mut self, line: cst::TableLine) -> Option<TableItem> {
        match line {
            cst::TableLine::Chain {
                start,
                end,
                name,
                body,
            } => Some(TableItem::Chain(self.chain(
                ident(&name),
                Some(body),
                start,
                end,
            ))),
            cst::TableLine::Set {
                start,
                end,
                is_map,
                name,
                body,
            } => Some(TableItem::Set(self.set(
                ident(&name),
                is_map,
                Some(body),
                start,
                end,
            ))),
            cst::TableLine::Line(l) => {
                if l.items.is_empty() {
                    return None; // recovered error
                }
                match self.table_other(&l) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        self.errors.push(e);
                        None
                    }
                }
            }
        }
    }

    fn table_other(&mut self, l: &cst::Line) -> R<TableItem> {
        let mut p = P::new(self.src, &l.items, l.end);
        let (wl, w, wr) = p.word_any()?;
        match w.as_str() {
            "flags" => {
                let flags = p.ident_list()?;
                p.expect_end()?;
                Ok(TableItem::Flags(flags))
            }
            "comment" => {
                let s = p.string()?;
                p.expect_end()?;
                Ok(TableItem::Comment(s))
            }
            "define" | "redefine" => {
                let (nl, n, nr) = p.word_any()?;
                p.expect_tok(&Tok::Assign, "`=`")?;
                let v = p.value_or_selector()?;
                p.expect_end()?;
                Ok(TableItem::Define(Define {
                    name: Ident {
                        name: n,
                        span: sp(nl, nr),
                    },
                    value: v,
                    redefine: w == "redefine",
                    span: sp(l.start, l.end),
                }))
            }
            "counter" | "quota" | "limit" | "flowtable" | "secmark" | "synproxy" | "ct"
            | "tunnel" => {
                let mut kind = w.clone();
                if w == "ct" {
                    let (_, k, _) = p.word_any()?;
                    kind = format!("ct {k}");
                }
                let (nl, n, nr) = p.word_any()?;
                let body = match p.next() {
                    Some(Item::Group(g)) => g
                        .lines
                        .iter()
                        .map(|ln| normalize_other(self.src.get(ln.start..ln.end).unwrap_or("")))
                        .filter(|t| !t.is_empty())
                        .collect(),
                    None => Vec::new(),
                    Some(_) => return Err(p.unexpected("`{`")),
                };
                p.expect_end()?;
                Ok(TableItem::Object {
                    kind: Ident {
                        name: kind,
                        span: sp(wl, wr),
                    },
                    name: Ident {
                        name: n,
                        span: sp(nl, nr),
                    },
                    span: sp(l.start, l.end),
                    body,
                })
            }
            _ => Err(err(wl, wr, format!("unexpected `{w}` in table body"))),
        }
    }

    /// The chain's lines are consumed one by one: each line's tokens are dropped once its rule is made, so the
    /// token tree and the rules are not both whole at once.
    fn chain(&mut self, name: Ident, body: Option<cst::Group>, start: usize, end: usize) -> Chain {
        let mut chain = Chain {
            name,
            hook: None,
            policy: None,
            comment: None,
            flags: Vec::new(),
            rules: Vec::new(),
            has_body: body.is_some(),
            span: sp(start, end),
        };
        let Some(body) = body else { return chain };
        chain.rules.reserve_exact(body.lines.len());
        for line in body.lines {
            if let Err(e) = self.chain_line(&mut chain, line) {
                self.errors.push(e);
            }
        }
        chain
    }

    fn chain_line(&mut self, chain: &mut Chain, line: cst::Line) -> R<()> {
        let first = match line.items.first() {
            Some(Item::Leaf(_, t, _)) => t.clone(),
            _ => Tok::Semi,
        };
        let mut p = P::new(self.src, &line.items, line.end);
        match first {
            Tok::KwType => {
                p.bump();
                let chain_type = p.ident()?;
                p.expect_word("hook")?;
                let hook = p.ident()?;
                let mut devices = Vec::new();
                if p.eat_word("device") {
                    devices.push(p.string_or_word()?);
                } else if p.eat_word("devices") {
                    p.expect_tok(&Tok::Assign, "`=`")?;
                    let (items, _, _) = p.group()?;
                    let mut q = P::new(self.src, &items, line.end);
                    while !q.at_end() {
                        devices.push(q.string_or_word()?);
                        if !q.eat_tok(&Tok::Comma) {
                            break;
                        }
                    }
                    q.expect_end()?;
                }
                p.expect_word("priority")?;
                let priority = p.priority()?;
                p.expect_end()?;
                if chain.hook.is_some() {
                    return Err(err(line.start, line.end, "chain type/hook given twice"));
                }
                chain.hook = Some(ChainHook {
                    chain_type,
                    hook,
                    devices,
                    priority,
                    span: sp(line.start, line.end),
                });
            }
            Tok::KwPolicy => {
                p.bump();
                let kind = if p.eat_tok(&Tok::Dollar) {
                    PolicyKind::Var(p.ident()?.name)
                } else {
                    let id = p.ident()?;
                    match id.name.as_str() {
                        "accept" => PolicyKind::Accept,
                        "drop" => PolicyKind::Drop,
                        other => {
                            return Err(err(
                                id.span.start as usize,
                                id.span.end as usize,
                                format!("unknown policy `{other}` (expected accept or drop)"),
                            ));
                        }
                    }
                };
                p.expect_end()?;
                chain.policy = Some(Policy {
                    kind,
                    span: sp(line.start, line.end),
                });
            }
            Tok::KwComment => {
                p.bump();
                chain.comment = Some(p.string()?);
                p.expect_end()?;
            }
            Tok::KwFlags => {
                p.bump();
                chain.flags = p.ident_list()?;
                p.expect_end()?;
            }
            _ => {
                let mut rule = self.rule(&line.items)?;
                // the line's tokens freed first: the rule's statements can then take their place
                drop(line);
                rule.stmts = exact(rule.stmts);
                chain.rules.push(rule);
            }
        }
        Ok(())
    }

    fn rule(&mut self, items: &[Item]) -> R<Rule> {
        let end = items.last().map(|i| i.end()).unwrap_or(0);
        let start = items.first().map(|i| i.start()).unwrap_or(end);
        let mut p = P::new(self.src, items, end);
        let mut rule = Rule {
            stmts: Vec::new(),
            comment: None,
            span: sp(start, end),
        };
        while !p.at_end() {
            if p.peek_word() == Some("comment") {
                p.bump();
                rule.comment = Some(p.string()?);
                if !p.at_end() {
                    let (l, r) = p.peek_span();
                    return Err(err(l, r, "`comment` must be the last statement of a rule"));
                }
                break;
            }
            let s = p.stmt()?;
            rule.stmts.push(s);
        }
        if rule.stmts.is_empty() && rule.comment.is_none() {
            return Err(err(start, end, "empty rule"));
        }
        Ok(rule)
    }

    fn set(
        &mut self,
        name: Ident,
        is_map: bool,
        body: Option<cst::Group>,
        start: usize,
        end: usize,
    ) -> Set {
        let mut set = Set {
            name,
            is_map,
            key: None,
            data: None,
            data_interval: false,
            flags: Vec::new(),
            timeout: None,
            gc_interval: None,
            size: None,
            policy: None,
            auto_merge: false,
            counter: false,
            comment: None,
            elements: Elements::default(),
            has_body: body.is_some(),
            span: sp(start, end),
        };
        let Some(mut body) = body else { return set };
        for line in &mut body.lines {
            if let Err(e) = self.set_line(&mut set, line) {
                self.errors.push(e);
            }
        }
        set
    }

    fn set_line(&mut self, set: &mut Set, line: &mut cst::Line) -> R<()> {
        let mut p = P::new(self.src, &line.items, line.end);
        let (wl, w, wr) = p.word_any()?;
        match w.as_str() {
            "type" => {
                let mut key = vec![p.ident()?];
                while p.eat_tok(&Tok::Dot) {
                    key.push(p.ident()?);
                }
                // `ipv4_addr.inet_service` lexes as one word.
                key = key.into_iter().flat_map(split_dotted).collect();
                set.key = Some(SetKey::Type(key));
                if p.eat_tok(&Tok::Colon) {
                    if set.is_map && p.peek_word() == Some("interval") {
                        p.bump();
                        set.data_interval = true;
                    }
                    let mut data = vec![p.ident()?];
                    while p.eat_tok(&Tok::Dot) {
                        data.push(p.ident()?);
                    }
                    set.data = Some(SetKey::Type(
                        data.into_iter().flat_map(split_dotted).collect(),
                    ));
                }
            }
            "typeof" => {
                let mut key = vec![p.selector_expr(false)?];
                while p.eat_tok(&Tok::Dot) {
                    key.push(p.selector_expr(false)?);
                }
                set.key = Some(SetKey::Typeof(key));
                if p.eat_tok(&Tok::Colon) {
                    if p.peek_word() == Some("interval") {
                        p.bump();
                        set.data_interval = true;
                    }
                    if matches!(p.peek_word(), Some("verdict" | "counter")) {
                        set.data = Some(SetKey::Type(vec![p.ident()?]));
                    } else {
                        let mut data = vec![p.selector_expr(false)?];
                        while p.eat_tok(&Tok::Dot) {
                            data.push(p.selector_expr(false)?);
                        }
                        set.data = Some(SetKey::Typeof(data));
                    }
                }
            }
            "flags" => set.flags = p.ident_list()?,
            "timeout" => set.timeout = Some(p.time()?),
            "gc-interval" => set.gc_interval = Some(p.time()?),
            "size" => set.size = Some(p.number_u64()?),
            "policy" => set.policy = Some(p.ident()?),
            "auto-merge" => set.auto_merge = true,
            "counter" => set.counter = true,
            "comment" => set.comment = Some(p.string()?),
            "elements" => {
                p.expect_tok(&Tok::Assign, "`=`")?;
                if !matches!(p.next(), Some(Item::Group(_))) {
                    return Err(err(wl, wr, "expected `{ ... }` after `elements =`"));
                }
                let (at, end) = (p.pos - 1, p.expect_end());
                // the group is parsed out of the line (moved, not copied)
                if let Some(Item::Group(g)) = line.items.get_mut(at) {
                    set.elements = self.set_elements(g)?;
                }
                return end;
            }
            _ => {
                return Err(err(
                    wl,
                    wr,
                    format!(
                        "unexpected `{w}` in {} body",
                        if set.is_map { "map" } else { "set" }
                    ),
                ));
            }
        }
        p.expect_end()
    }

    fn set_elements(&mut self, g: &mut cst::Group) -> R<Elements> {
        let packed = match self.packs.binary_search_by_key(&g.open, |p| p.0) {
            Ok(i) if g.lines.is_empty() => Some(std::mem::take(&mut self.packs[i].1)),
            _ => None,
        };
        let items = match packed {
            Some(mut p) => {
                // kept packed when every element parses; else parsed as a token tree (same errors)
                let mut each = PackedExprs::new(&p, g.open);
                let n = each.by_ref().count();
                if !each.failed {
                    p.seal(n);
                    return Ok(Elements::Packed(p, g.open));
                }
                p.items(g.open)
            }
            None => take_flat(g),
        };
        let mut p = P::new(self.src, &items, g.close);
        Ok(p.elements()?.into())
    }
}

fn split_dotted(id: Ident) -> Vec<Ident> {
    if !id.name.contains('.') {
        return vec![id];
    }
    let mut out = Vec::new();
    let mut off = id.span.start;
    for part in id.name.split('.') {
        let len = part.len() as u32;
        if !part.is_empty() {
            out.push(Ident {
                name: part.to_string(),
                span: Span::new(off, off + len),
            });
        }
        off += len + 1;
    }
    out
}

/// The elements of one `,`-free run of a packed list's tokens (see [`crate::packed`]).
pub(crate) fn parse_element_chunk(items: &[Item]) -> R<Vec<Expr>> {
    let end = items.last().map_or(0, Item::end);
    P::new("", items, end).elements()
}

/// Recursive-descent parser over a slice of token trees.
struct P<'a> {
    src: &'a str,
    items: &'a [Item],
    pos: usize,
    /// Offset used for "at end" errors.
    end: usize,
}

/// Expressions the grammar does not model; a statement using them is kept as
/// [`StmtKind::Other`].
const UNMODELLED_EXPRS: &[&str] = &["jhash", "symhash", "osf", "fib", "rt", "socket", "ipsec"];

const VERDICTS: &[&str] = &["accept", "drop", "continue", "return", "jump", "goto"];

impl<'a> P<'a> {
    fn new(src: &'a str, items: &'a [Item], end: usize) -> Self {
        P {
            src,
            items,
            pos: 0,
            end,
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.items.len()
    }

    fn peek(&self) -> Option<&'a Item> {
        self.items.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&'a Item> {
        self.items.get(self.pos + n)
    }

    fn peek_tok(&self) -> Option<&'a Tok> {
        match self.peek() {
            Some(Item::Leaf(_, t, _)) => Some(t),
            _ => None,
        }
    }

    fn peek_tok_at(&self, n: usize) -> Option<&'a Tok> {
        match self.peek_at(n) {
            Some(Item::Leaf(_, t, _)) => Some(t),
            _ => None,
        }
    }

    fn peek_word(&self) -> Option<&'a str> {
        self.peek_tok().and_then(|t| t.word())
    }

    fn peek_word_at(&self, n: usize) -> Option<&'a str> {
        self.peek_tok_at(n).and_then(|t| t.word())
    }

    /// Span of the next item; at the end, the span of the last item (so "expected a value"
    /// points at the statement's last word rather than at an empty span).
    fn peek_span(&self) -> (usize, usize) {
        match self.peek() {
            Some(i) => (i.start(), i.end()),
            None => match self.items.last() {
                Some(i) => (i.start(), i.end()),
                None => (self.end, self.end),
            },
        }
    }

    fn prev_end(&self) -> usize {
        match self.pos.checked_sub(1).and_then(|i| self.items.get(i)) {
            Some(i) => i.end(),
            None => self.peek_span().0,
        }
    }

    fn next(&mut self) -> Option<&'a Item> {
        let i = self.items.get(self.pos);
        if i.is_some() {
            self.pos += 1;
        }
        i
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn unexpected(&self, what: &str) -> SyntaxError {
        let (l, r) = self.peek_span();
        let found = match self.peek() {
            None => "end of statement".to_string(),
            Some(Item::Group(_)) => "`{`".to_string(),
            Some(Item::Leaf(_, t, _)) => t.describe(),
        };
        SyntaxError {
            span: sp(l, r),
            message: format!("unexpected {found}, expected {what}"),
            expected: vec![what.to_string()],
        }
    }

    fn expect_end(&self) -> R<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected("end of statement"))
        }
    }

    fn eat_tok(&mut self, t: &Tok) -> bool {
        if self.peek_tok() == Some(t) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_tok(&mut self, t: &Tok, what: &str) -> R<()> {
        if self.eat_tok(t) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek_word() == Some(w) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, w: &str) -> R<()> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{w}`")))
        }
    }

    /// Any word or keyword.
    fn word_any(&mut self) -> R<(usize, String, usize)> {
        match self.peek() {
            Some(Item::Leaf(l, t, r)) if t.word().is_some() => {
                self.bump();
                Ok((*l, t.word().unwrap_or_default().to_string(), *r))
            }
            _ => Err(self.unexpected("identifier")),
        }
    }

    fn ident(&mut self) -> R<Ident> {
        let (l, w, r) = self.word_any()?;
        Ok(Ident {
            name: w,
            span: sp(l, r),
        })
    }

    /// `a,b,c` as idents.
    fn ident_list(&mut self) -> R<Vec<Ident>> {
        let mut v = vec![self.ident()?];
        while self.eat_tok(&Tok::Comma) {
            v.push(self.ident()?);
        }
        Ok(v)
    }

    fn string(&mut self) -> R<Str> {
        match self.peek() {
            Some(Item::Leaf(l, Tok::Quoted(s), r)) => {
                self.bump();
                Ok(Str {
                    value: s.clone(),
                    span: sp(*l, *r),
                })
            }
            _ => Err(self.unexpected("a quoted string")),
        }
    }

    fn string_or_word(&mut self) -> R<Str> {
        if let Some(Item::Leaf(l, t, r)) = self.peek()
            && let Some(w) = t.word()
        {
            self.bump();
            return Ok(Str {
                value: w.to_string(),
                span: sp(*l, *r),
            });
        }
        if self.eat_tok(&Tok::Dollar) {
            let id = self.ident()?;
            return Ok(Str {
                value: format!("${}", id.name),
                span: id.span,
            });
        }
        self.string()
    }

    fn number(&mut self) -> R<(u128, usize, usize)> {
        match self.peek() {
            Some(Item::Leaf(l, Tok::Number { value, .. }, r)) => {
                self.bump();
                Ok((*value, *l, *r))
            }
            _ => Err(self.unexpected("a number")),
        }
    }

    /// A 32-bit `numgen` operand (`mod`, `offset`).
    fn numgen_u32(&mut self) -> R<u32> {
        let (v, l, r) = self.number()?;
        u32::try_from(v).map_err(|_| err(l, r, "numgen value out of range (32 bits)"))
    }

    fn number_u64(&mut self) -> R<u64> {
        let (v, l, r) = self.number()?;
        u64::try_from(v).map_err(|_| err(l, r, "number too large"))
    }

    fn time(&mut self) -> R<Time> {
        match self.peek() {
            Some(Item::Leaf(l, Tok::Time(ms), r)) => {
                self.bump();
                Ok(Time {
                    ms: *ms,
                    span: sp(*l, *r),
                })
            }
            Some(Item::Leaf(l, Tok::Number { value, .. }, r)) => {
                self.bump();
                let s = u64::try_from(*value).unwrap_or(u64::MAX);
                Ok(Time {
                    ms: s.saturating_mul(1000),
                    span: sp(*l, *r),
                })
            }
            _ => Err(self.unexpected("a time (e.g. 30s, 1h)")),
        }
    }

    fn group(&mut self) -> R<(Vec<Item>, usize, usize)> {
        match self.peek() {
            Some(Item::Group(g)) => {
                self.bump();
                Ok((flat(g), g.open, g.close))
            }
            _ => Err(self.unexpected("`{`")),
        }
    }

    fn priority(&mut self) -> R<Priority> {
        let (start, _) = self.peek_span();
        let kind = if self.eat_tok(&Tok::Dollar) {
            PriorityKind::Var(self.ident()?.name)
        } else if self.eat_tok(&Tok::Minus) {
            let (v, l, r) = self.number()?;
            PriorityKind::Number(-i64::try_from(v).map_err(|_| err(l, r, "priority out of range"))?)
        } else if let Some(Tok::Number { .. }) = self.peek_tok() {
            let (v, l, r) = self.number()?;
            PriorityKind::Number(i64::try_from(v).map_err(|_| err(l, r, "priority out of range"))?)
        } else {
            let name = self.ident()?.name;
            let mut offset = 0i64;
            if let Some(t @ (Tok::Plus | Tok::Minus)) = self.peek_tok() {
                let neg = *t == Tok::Minus;
                self.bump();
                let (v, l, r) = self.number()?;
                let v = i64::try_from(v).map_err(|_| err(l, r, "priority out of range"))?;
                offset = if neg { -v } else { v };
            }
            PriorityKind::Named { name, offset }
        };
        Ok(Priority {
            kind,
            span: sp(start, self.prev_end()),
        })
    }

    // ---------------------------------------------------------------- statements

    fn stmt(&mut self) -> R<Stmt> {
        let (start, _) = self.peek_span();
        let kind = self.stmt_kind()?;
        Ok(Stmt {
            kind,
            span: sp(start, self.prev_end()),
        })
    }

    fn rest_as_other(&mut self, keyword: &str) -> StmtKind {
        let (l, _) = self.peek_span();
        self.rest_as_other_from(keyword, l)
    }

    /// The rest of the rule from byte `l` on, as an unmodelled statement.
    fn rest_as_other_from(&mut self, keyword: &str, l: usize) -> StmtKind {
        let r = self.items.last().map(|i| i.end()).unwrap_or(l);
        // Stop before a trailing `comment "..."`.
        let mut end_pos = self.items.len();
        if self.items.len() >= 2
            && matches!(
                self.items.get(self.items.len() - 2),
                Some(Item::Leaf(_, Tok::KwComment, _))
            )
            && matches!(self.items.last(), Some(Item::Leaf(_, Tok::Quoted(_), _)))
            && self.items.len() - 2 > self.pos
        {
            end_pos = self.items.len() - 2;
        }
        let r = if end_pos < self.items.len() {
            self.items.get(end_pos - 1).map(|i| i.end()).unwrap_or(r)
        } else {
            r
        };
        self.pos = end_pos;
        StmtKind::Other {
            keyword: keyword.to_string(),
            text: normalize_other(self.src.get(l..r).unwrap_or("")),
        }
    }

    fn stmt_kind(&mut self) -> R<StmtKind> {
        let Some(w) = self.peek_word() else {
            if self.peek_tok() == Some(&Tok::At) {
                return self.match_or_set();
            }
            return Err(self.unexpected("a statement"));
        };
        match w {
            "jump" | "goto" if matches!(self.peek_at(1), Some(Item::Group(_))) => {
                // Anonymous chain `jump { ... }`: not modelled.
                Ok(self.rest_as_other(w))
            }
            "accept" | "drop" | "continue" | "return" | "jump" | "goto" => {
                Ok(StmtKind::Verdict(self.verdict()?))
            }
            // `counter name "NAME"` (an objref) or `counter name KEY map { k : "NAME", ... }` /
            // `counter name KEY map @m` (an objref map, `nft_objref_map`).
            "counter" if self.peek_word_at(1) == Some("name") => {
                // A selector after `name` starts the map form (as in nft's grammar, where
                // `counter name tcp` reads `tcp` as a payload expression).
                let saved = self.pos;
                let (l, _) = self.peek_span();
                self.bump();
                self.bump();
                let selector = self.starts_selector();
                self.pos = saved;
                let named = match self.peek_tok_at(2) {
                    Some(Tok::Quoted(_)) => true,
                    Some(t) => t.word().is_some() && !selector,
                    None => false,
                };
                if !named {
                    self.bump();
                    self.bump();
                    if !selector {
                        return Ok(self.rest_as_other_from(w, l));
                    }
                    let key = self.selector_concat()?;
                    if self.peek_tok() != Some(&Tok::KwMap) {
                        return Err(self.unexpected("`map` after the key of `counter name`"));
                    }
                    let map = self.map_suffix(key)?;
                    return Ok(StmtKind::CounterMap { map });
                }
                self.bump();
                self.bump();
                let s = self.string_or_word()?;
                Ok(StmtKind::Counter {
                    packets: None,
                    bytes: None,
                    name: Some(Ident {
                        name: s.value,
                        span: s.span,
                    }),
                })
            }
            "limit" | "quota" if self.peek_word_at(1) == Some("name") => Ok(self.rest_as_other(w)),
            "counter" => {
                self.bump();
                let mut packets = None;
                let mut bytes = None;
                let name = None;
                loop {
                    if self.eat_word("packets") {
                        packets = Some(self.number_u64()?);
                    } else if self.eat_word("bytes") {
                        bytes = Some(self.number_u64()?);
                    } else {
                        break;
                    }
                }
                Ok(StmtKind::Counter {
                    packets,
                    bytes,
                    name,
                })
            }
            "log" => {
                self.bump();
                let mut log = Log::default();
                loop {
                    match self.peek_word() {
                        Some("prefix") => {
                            self.bump();
                            log.prefix = Some(self.string_or_word()?);
                        }
                        Some("level") => {
                            self.bump();
                            log.level = Some(self.ident()?);
                        }
                        Some("group") => {
                            self.bump();
                            log.group = Some(self.number_u64()?);
                        }
                        Some("snaplen") => {
                            self.bump();
                            log.snaplen = Some(self.number_u64()?);
                        }
                        Some("queue-threshold") => {
                            self.bump();
                            log.queue_threshold = Some(self.number_u64()?);
                        }
                        Some("flags") => {
                            self.bump();
                            loop {
                                let mut id = self.ident()?;
                                while self.eat_tok(&Tok::Comma) {
                                    let n = self.ident()?;
                                    id.name.push(',');
                                    id.name.push_str(&n.name);
                                    id.span = id.span.to(n.span);
                                }
                                let more = matches!(id.name.as_str(), "tcp" | "ip");
                                log.flags.push(id);
                                if !more {
                                    break;
                                }
                            }
                        }
                        _ => break,
                    }
                }
                Ok(StmtKind::Log(Box::new(log)))
            }
            "limit" => {
                self.bump();
                self.expect_word("rate")?;
                let mut over = false;
                if self.eat_word("over") {
                    over = true;
                } else {
                    self.eat_word("until");
                }
                let rate = self.number_u64()?;
                let (rate_unit, per) = self.rate_unit()?;
                let mut burst = None;
                let mut burst_unit = None;
                if self.eat_word("burst") {
                    burst = Some(self.number_u64()?);
                    if let Some(u @ ("packets" | "bytes" | "kbytes" | "mbytes")) = self.peek_word()
                    {
                        burst_unit = Some(u.to_string());
                        self.bump();
                    }
                }
                Ok(StmtKind::Limit(Box::new(Limit {
                    over,
                    rate,
                    rate_unit,
                    per,
                    burst,
                    burst_unit,
                })))
            }
            "notrack" => {
                self.bump();
                Ok(StmtKind::Notrack)
            }
            "reject" => {
                self.bump();
                if !self.eat_word("with") {
                    return Ok(StmtKind::Reject(None));
                }
                let (l, w, r) = self.word_any()?;
                match w.as_str() {
                    "tcp" => {
                        self.expect_word("reset")?;
                        Ok(StmtKind::Reject(Some(RejectWith::TcpReset)))
                    }
                    "icmp" | "icmpv6" | "icmpx" => {
                        self.eat_word("type");
                        let code = self.primary_value()?;
                        Ok(StmtKind::Reject(Some(RejectWith::Icmp { proto: w, code })))
                    }
                    _ => Err(err(l, r, format!("unexpected `{w}` after `reject with`"))),
                }
            }
            "queue" => {
                self.bump();
                let mut num = None;
                let mut flags = Vec::new();
                loop {
                    match self.peek_word() {
                        Some("num" | "to") => {
                            self.bump();
                            num = Some(self.unit_value()?);
                        }
                        Some("flags") => {
                            self.bump();
                            flags.extend(self.ident_list()?);
                        }
                        Some("bypass" | "fanout") => {
                            flags.extend(self.ident_list()?);
                        }
                        _ => break,
                    }
                }
                Ok(StmtKind::Queue { num, flags })
            }
            "snat" | "dnat"
                if (1..=3).any(|i| {
                    self.peek_word_at(i)
                        .is_some_and(|w| UNMODELLED_EXPRS.contains(&w) || w == "prefix")
                }) =>
            {
                Ok(self.rest_as_other(w))
            }
            "snat" | "dnat" | "masquerade" | "redirect" => self.nat(),
            "add" | "update" | "delete" if self.peek_tok_at(1) == Some(&Tok::At) => {
                self.set_update(w)
            }
            "quota" | "dup" | "fwd" | "tproxy" | "synproxy" | "last" | "meter" | "add"
            | "update" | "delete" | "xt" | "rt" | "socket" | "osf" | "ipsec" | "jhash"
            | "symhash" | "exthdr" | "hbh" | "frag" | "rt0" | "rt2" | "rt4" | "dst" | "mh"
            | "srh" | "igmp" | "gre" | "gretap" | "geneve" | "vxlan" | "inner" | "reset"
            | "secmark" => Ok(self.rest_as_other(w)),
            "ct" if matches!(
                self.peek_word_at(1),
                Some("count" | "timeout" | "expectation")
            ) =>
            {
                Ok(self.rest_as_other("ct"))
            }
            "ct" if self.peek_word_at(1) == Some("helper")
                && self.peek_word_at(2) == Some("set") =>
            {
                self.match_or_set()
            }
            "tcp" | "ip" | "ip6" | "sctp" | "dccp"
                if matches!(self.peek_word_at(1), Some("option" | "chunk")) =>
            {
                Ok(self.rest_as_other(w))
            }
            _ => self.match_or_set(),
        }
    }

    /// `add|update|delete @SET { KEY [timeout T] [: DATA] [STATEMENTS] }` (nft's `set_stmt`). A
    /// key that is not a selector is read as a value: the checker says why it cannot be one.
    fn set_update(&mut self, w: &str) -> R<StmtKind> {
        let op = match w {
            "add" => SetOp::Add,
            "update" => SetOp::Update,
            _ => SetOp::Delete,
        };
        self.bump();
        self.bump();
        let set = self.ident()?;
        let (items, open, close) = self.group()?;
        let braces = sp(open, close);
        let mut q = P::new(self.src, &items, close);
        if q.at_end() {
            return Err(err(open, close, "expected a key inside `{ }`"));
        }
        let key = if q.starts_selector() {
            q.selector_concat()?
        } else {
            q.concat_value()?
        };
        let mut timeout = None;
        if q.eat_word("timeout") {
            timeout = Some(q.time()?);
        }
        let mut data = None;
        if q.eat_tok(&Tok::Colon) {
            data = Some(q.value_or_selector()?);
        }
        let stmts = if q.at_end() {
            None
        } else {
            let l = q.peek_span().0;
            let r = items.last().map_or(l, |i| i.end());
            Some((normalize_other(self.src.get(l..r).unwrap_or("")), sp(l, r)))
        };
        Ok(StmtKind::SetUpdate(Box::new(SetUpdate {
            op,
            set,
            key,
            timeout,
            data,
            stmts,
            braces,
        })))
    }

    /// `N/second`, `N kbytes/second`, `N kbytes / second` → (byte unit, per).
    fn rate_unit(&mut self) -> R<(Option<String>, String)> {
        let per_ok = |s: &str| matches!(s, "second" | "minute" | "hour" | "day" | "week");
        if self.eat_tok(&Tok::Slash) {
            let (l, w, r) = self.word_any()?;
            if !per_ok(&w) {
                return Err(err(l, r, format!("unknown time unit `{w}`")));
            }
            return Ok((None, w));
        }
        let (l, w, r) = self.word_any()?;
        if let Some((u, per)) = w.split_once('/') {
            if !per_ok(per) {
                return Err(err(l, r, format!("unknown time unit `{per}`")));
            }
            return Ok((Some(u.to_string()), per.to_string()));
        }
        if matches!(w.as_str(), "bytes" | "kbytes" | "mbytes") {
            self.expect_tok(&Tok::Slash, "`/`")?;
            let (l, per, r) = self.word_any()?;
            if !per_ok(&per) {
                return Err(err(l, r, format!("unknown time unit `{per}`")));
            }
            return Ok((Some(w), per));
        }
        Err(err(
            l,
            r,
            format!("expected a rate unit like `/second`, found `{w}`"),
        ))
    }

    fn verdict(&mut self) -> R<Verdict> {
        let (l, w, r) = self.word_any()?;
        Ok(match w.as_str() {
            "accept" => Verdict::Accept,
            "drop" => Verdict::Drop,
            "continue" => Verdict::Continue,
            "return" => Verdict::Return,
            "jump" | "goto" => {
                let target = if self.eat_tok(&Tok::Dollar) {
                    let id = self.ident()?;
                    Ident {
                        name: format!("${}", id.name),
                        span: id.span,
                    }
                } else {
                    self.ident()?
                };
                if w == "jump" {
                    Verdict::Jump(target)
                } else {
                    Verdict::Goto(target)
                }
            }
            _ => return Err(err(l, r, format!("`{w}` is not a verdict"))),
        })
    }

    fn nat(&mut self) -> R<StmtKind> {
        let (_, w, _) = self.word_any()?;
        let kind = match w.as_str() {
            "snat" => NatKind::Snat,
            "dnat" => NatKind::Dnat,
            "masquerade" => NatKind::Masquerade,
            _ => NatKind::Redirect,
        };
        let mut nat = Nat {
            kind,
            family: None,
            addr: None,
            port: None,
            flags: Vec::new(),
        };
        if matches!(kind, NatKind::Snat | NatKind::Dnat)
            && let Some(f @ ("ip" | "ip6")) = self.peek_word()
            && !matches!(self.peek_word_at(1), Some(w) if catalog::payload_field(f, w).is_some())
        {
            nat.family = Family::from_name(f);
            self.bump();
        }
        let has_to = self.eat_word("to");
        if has_to {
            if self.eat_tok(&Tok::Colon) {
                nat.port = Some(self.nat_port()?);
            } else if matches!(kind, NatKind::Snat | NatKind::Dnat) {
                let addr = if self.starts_selector() {
                    let e = self.selector_concat()?;
                    self.map_suffix(e)?
                } else if self.peek_tok() == Some(&Tok::LBracket) {
                    // [v6addr]
                    let (l, _) = self.peek_span();
                    self.bump();
                    let a = self.primary_value()?;
                    self.expect_tok(&Tok::RBracket, "`]`")?;
                    if self.eat_tok(&Tok::Minus) {
                        let lb = self.eat_tok(&Tok::LBracket);
                        let b = self.primary_value()?;
                        if lb {
                            self.expect_tok(&Tok::RBracket, "`]`")?;
                        }
                        Expr::new(
                            ExprKind::Range {
                                low: Box::new(a),
                                high: Box::new(b),
                            },
                            sp(l, self.prev_end()),
                        )
                    } else {
                        a
                    }
                } else {
                    self.unit_value()?
                };
                nat.addr = Some(addr);
                if self.eat_tok(&Tok::Colon) {
                    nat.port = Some(self.nat_port()?);
                }
            } else {
                return Err(self.unexpected("`:PORT`"));
            }
        }
        while let Some("random" | "fully-random" | "persistent") = self.peek_word() {
            nat.flags.extend(self.ident_list()?);
        }
        Ok(StmtKind::Nat(Box::new(nat)))
    }

    fn nat_port(&mut self) -> R<Expr> {
        if self.starts_selector() {
            let e = self.selector_concat()?;
            return self.map_suffix(e);
        }
        self.unit_value()
    }

    /// `E map { ... }` / `E map @m` (if present).
    fn map_suffix(&mut self, e: Expr) -> R<Expr> {
        if self.peek_tok() == Some(&Tok::KwMap) {
            self.bump();
            let m = self.map_ref()?;
            let span = e.span.to(m.span);
            return Ok(Expr::new(
                ExprKind::Map {
                    key: Box::new(e),
                    map: Box::new(m),
                },
                span,
            ));
        }
        Ok(e)
    }

    /// `{ ... }` literal or `@name` after `map`/`vmap`.
    fn map_ref(&mut self) -> R<Expr> {
        match self.peek() {
            Some(Item::Group(g)) => {
                self.bump();
                let items = flat(g);
                let mut q = P::new(self.src, &items, g.close);
                let elems = q.elements()?;
                Ok(Expr::new(ExprKind::Set(elems), sp(g.open, g.close)))
            }
            Some(Item::Leaf(l, Tok::At, _)) => {
                let l = *l;
                self.bump();
                let id = self.ident()?;
                Ok(Expr::new(ExprKind::SetRef(id), sp(l, self.prev_end())))
            }
            Some(Item::Leaf(l, Tok::Dollar, _)) => {
                let l = *l;
                self.bump();
                let id = self.ident()?;
                Ok(Expr::new(ExprKind::Var(id), sp(l, self.prev_end())))
            }
            _ => Err(self.unexpected("`{` or `@set`")),
        }
    }

    /// A statement that starts with a selector: a match, a `set` statement or a vmap.
    fn match_or_set(&mut self) -> R<StmtKind> {
        if !self.starts_selector() {
            let (l, r) = self.peek_span();
            let what = self
                .peek_word()
                .map(|w| format!("`{w}`"))
                .unwrap_or_else(|| "this".into());
            return Err(SyntaxError {
                span: sp(l, r),
                message: format!("unknown statement or selector {what}"),
                expected: vec!["a statement".into()],
            });
        }
        let (stmt_start, _) = self.peek_span();
        let left = self.selector_concat()?;
        if self.peek_tok() == Some(&Tok::KwSet) {
            self.bump();
            if let Some(w) = self.peek_word()
                && UNMODELLED_EXPRS.contains(&w)
            {
                return Ok(self.rest_as_other_from("set", stmt_start));
            }
            let value = self.value_or_selector()?;
            return Ok(StmtKind::Set { key: left, value });
        }
        if self.peek_word() == Some("vmap") {
            self.bump();
            let map = self.map_ref()?;
            return Ok(StmtKind::Vmap { key: left, map });
        }
        let op = self.relop();
        if op == RelOp::Implicit && !self.starts_value() {
            return Err(self.unexpected("a value"));
        }
        let right = self.rhs()?;
        // nft's mask form: `tcp flags syn / syn,ack` == `tcp flags & (syn | ack) == syn`.
        if self.peek_tok() == Some(&Tok::Slash) {
            self.bump();
            let mask = self.rhs()?;
            let mspan = mask.span;
            let mask = Expr::new(ExprKind::Paren(Box::new(list_to_or(mask))), mspan);
            let lspan = left.span.to(mspan);
            let left = Expr::new(
                ExprKind::Binary {
                    op: BinOp::And,
                    left: Box::new(left),
                    right: Box::new(mask),
                },
                lspan,
            );
            let op = match op {
                RelOp::Implicit | RelOp::Eq => RelOp::Eq,
                o => o,
            };
            return Ok(StmtKind::Match {
                left,
                op,
                right: list_to_or(right),
            });
        }
        Ok(StmtKind::Match { left, op, right })
    }

    fn relop(&mut self) -> RelOp {
        let op = match self.peek_tok() {
            Some(Tok::EqEq) => RelOp::Eq,
            Some(Tok::Ne) => RelOp::Ne,
            Some(Tok::Lt) => RelOp::Lt,
            Some(Tok::Gt) => RelOp::Gt,
            Some(Tok::Le) => RelOp::Le,
            Some(Tok::Ge) => RelOp::Ge,
            Some(Tok::Bang) => RelOp::Neg,
            Some(Tok::Word(w)) => match &**w {
                "eq" => RelOp::Eq,
                "ne" => RelOp::Ne,
                "lt" => RelOp::Lt,
                "gt" => RelOp::Gt,
                "le" => RelOp::Le,
                "ge" => RelOp::Ge,
                _ => RelOp::Implicit,
            },
            _ => RelOp::Implicit,
        };
        if op != RelOp::Implicit {
            self.bump();
        }
        op
    }

    fn starts_value(&self) -> bool {
        match self.peek() {
            Some(Item::Group(_)) => true,
            Some(Item::Leaf(_, t, _)) => {
                matches!(
                    t,
                    Tok::Number { .. }
                        | Tok::Time(_)
                        | Tok::Ipv4(_)
                        | Tok::Ipv6(_)
                        | Tok::Mac(_)
                        | Tok::Quoted(_)
                        | Tok::Word(_)
                        | Tok::At
                        | Tok::Dollar
                        | Tok::LParen
                        | Tok::LBracket
                        | Tok::Minus
                ) || t.word().is_some()
            }
            None => false,
        }
    }

    /// Whether the next tokens form a selector (`tcp dport`, `meta mark`, `ct state`, `mark`, `@nh,..`).
    fn starts_selector(&self) -> bool {
        let Some(w) = self.peek_word() else {
            return self.peek_tok() == Some(&Tok::At)
                && matches!(self.peek_word_at(1), Some("ll" | "nh" | "th" | "ih"))
                && self.peek_tok_at(2) == Some(&Tok::Comma);
        };
        match w {
            "meta" => self
                .peek_word_at(1)
                .is_some_and(|k| k == "secpath" || catalog::meta_key(k).is_some()),
            "ct" => true,
            "numgen" => matches!(self.peek_word_at(1), Some("inc" | "random")),
            "fib" => self
                .peek_word_at(1)
                .is_some_and(|f| catalog::FIB_FLAGS.iter().any(|(n, _)| *n == f)),
            _ => {
                if let Some(f) = self.peek_word_at(1)
                    && catalog::payload_field(w, f).is_some()
                {
                    return true;
                }
                catalog::meta_key(w).is_some_and(|k| k.may_be_unqualified)
            }
        }
    }

    /// One selector (no operators).
    fn selector(&mut self) -> R<Expr> {
        let (l, _) = self.peek_span();
        if self.peek_tok() == Some(&Tok::At) {
            self.bump();
            let (bl, b, br) = self.word_any()?;
            let base = match b.as_str() {
                "ll" => RawBase::Ll,
                "nh" => RawBase::Nh,
                "th" => RawBase::Th,
                "ih" => RawBase::Ih,
                _ => return Err(err(bl, br, format!("unknown payload base `{b}`"))),
            };
            self.expect_tok(&Tok::Comma, "`,`")?;
            let (off, ol, or) = self.number()?;
            self.expect_tok(&Tok::Comma, "`,`")?;
            let (len, ll, lr) = self.number()?;
            let offset = u32::try_from(off).map_err(|_| err(ol, or, "offset too large"))?;
            let len = u32::try_from(len).map_err(|_| err(ll, lr, "length too large"))?;
            return Ok(Expr::new(
                ExprKind::RawPayload { base, offset, len },
                sp(l, self.prev_end()),
            ));
        }
        let (wl, w, wr) = self.word_any()?;
        let kind = match w.as_str() {
            "meta" => {
                let (kl, mut k, kr) = self.word_any()?;
                if k == "secpath" {
                    k = "ipsec".into(); // nft's old name for the same key
                }
                let key = catalog::meta_key(&k)
                    .ok_or_else(|| err(kl, kr, format!("unknown meta key `{k}`")))?;
                ExprKind::Meta {
                    key,
                    qualified: true,
                }
            }
            "ct" => {
                let mut dir = None;
                let mut family = None;
                match self.peek_word() {
                    Some("original") => {
                        self.bump();
                        dir = Some(catalog::CtDir::Original);
                    }
                    Some("reply") => {
                        self.bump();
                        dir = Some(catalog::CtDir::Reply);
                    }
                    _ => {}
                }
                if let Some(f @ ("ip" | "ip6")) = self.peek_word()
                    && matches!(self.peek_word_at(1), Some("saddr" | "daddr"))
                {
                    family = Family::from_name(f);
                    self.bump();
                }
                let (kl, k, kr) = self.word_any()?;
                let key = catalog::ct_key(&k)
                    .ok_or_else(|| err(kl, kr, format!("unknown ct key `{k}`")))?;
                ExprKind::Ct { dir, family, key }
            }
            "fib" => {
                let mut flags = Vec::new();
                loop {
                    let (fl, f, fr) = self.word_any()?;
                    let (name, _) = catalog::FIB_FLAGS
                        .iter()
                        .find(|(n, _)| *n == f)
                        .ok_or_else(|| err(fl, fr, format!("unknown fib flag `{f}`")))?;
                    flags.push(*name);
                    if !self.eat_tok(&Tok::Dot) {
                        break;
                    }
                }
                let (rl, r, rr) = self.word_any()?;
                let result = ["type", "oif", "oifname", "check"]
                    .into_iter()
                    .find(|k| *k == r)
                    .ok_or_else(|| err(rl, rr, format!("unknown fib result `{r}`")))?;
                // `fib daddr oif exists` is nft's `fib daddr check exists` (NFTA_FIB_F_PRESENT).
                let result =
                    if result == "oif" && matches!(self.peek_word(), Some("exists" | "missing")) {
                        "check"
                    } else {
                        result
                    };
                ExprKind::Fib { flags, result }
            }
            "numgen" => {
                let (tl, t, tr) = self.word_any()?;
                let random = catalog::NUMGEN_TYPE
                    .iter()
                    .find(|(n, _)| *n == t)
                    .ok_or_else(|| err(tl, tr, format!("unknown numgen type `{t}`")))?
                    .1
                    == u64::from(catalog::NFT_NG_RANDOM);
                self.expect_word("mod")?;
                let modulus = self.numgen_u32()?;
                let mut offset = 0;
                if self.peek_word() == Some("offset") {
                    self.bump();
                    offset = self.numgen_u32()?;
                }
                ExprKind::Numgen {
                    random,
                    modulus,
                    offset,
                }
            }
            _ => {
                if let Some(f) = self.peek_word()
                    && let Some(pf) = catalog::payload_field(&w, f)
                {
                    self.bump();
                    ExprKind::Payload(pf)
                } else if let Some(key) = catalog::meta_key(&w).filter(|k| k.may_be_unqualified) {
                    ExprKind::Meta {
                        key,
                        qualified: false,
                    }
                } else {
                    return Err(err(wl, wr, format!("unknown selector `{w}`")));
                }
            }
        };
        Ok(Expr::new(kind, sp(l, self.prev_end())))
    }

    fn binop(&self) -> Option<BinOp> {
        match self.peek_tok()? {
            Tok::Amp => Some(BinOp::And),
            Tok::Pipe => Some(BinOp::Or),
            Tok::Caret => Some(BinOp::Xor),
            Tok::Shl => Some(BinOp::Shl),
            Tok::Shr => Some(BinOp::Shr),
            Tok::Word(w) => match &**w {
                "and" => Some(BinOp::And),
                "or" => Some(BinOp::Or),
                "xor" => Some(BinOp::Xor),
                "lshift" => Some(BinOp::Shl),
                "rshift" => Some(BinOp::Shr),
                _ => None,
            },
            _ => None,
        }
    }

    /// A selector followed by bit operations (`&`, `|`, `^`, `<<`, `>>`, and the word forms), with
    /// nft's precedences (shifts bind tighter than `&`, then `^`, then `|`).
    /// `_values_too` is kept for call-site clarity: operands may be selectors or values.
    fn selector_expr(&mut self, _values_too: bool) -> R<Expr> {
        let first = self.selector()?;
        self.binary_chain(first, 1, true)
    }

    /// Precedence climbing over bit operations; recursion depth is bounded by the 4 levels.
    fn binary_chain(&mut self, first: Expr, min: u8, allow_sel: bool) -> R<Expr> {
        let mut lhs = first;
        let mut count = 0usize;
        while let Some(op) = self.binop() {
            if bin_prec(op) < min {
                break;
            }
            count += 1;
            if count > MAX_BINOPS {
                let (l, r) = self.peek_span();
                return Err(err(
                    l,
                    r,
                    format!("more than {MAX_BINOPS} operators in one expression"),
                ));
            }
            self.bump();
            let mut rhs = if allow_sel && self.starts_selector() {
                self.selector()?
            } else {
                self.unit_value()?
            };
            while let Some(op2) = self.binop() {
                if bin_prec(op2) <= bin_prec(op) {
                    break;
                }
                rhs = self.binary_chain(rhs, bin_prec(op) + 1, allow_sel)?;
            }
            let span = lhs.span.to(rhs.span);
            lhs = Expr::new(
                ExprKind::Binary {
                    op,
                    left: Box::new(lhs),
                    right: Box::new(rhs),
                },
                span,
            );
        }
        Ok(lhs)
    }

    fn selector_concat(&mut self) -> R<Expr> {
        let first = self.selector_expr(true)?;
        if self.peek_tok() != Some(&Tok::Dot) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_tok(&Tok::Dot) {
            parts.push(self.selector_expr(true)?);
        }
        let span = parts[0].span.to(parts[parts.len() - 1].span);
        Ok(Expr::new(ExprKind::Concat(parts), span))
    }

    /// Value for `set`, `define`, and similar: a selector expression (maybe with `map`) or a
    /// value list.
    fn value_or_selector(&mut self) -> R<Expr> {
        if self.starts_selector() {
            let e = self.selector_concat()?;
            return self.map_suffix(e);
        }
        self.rhs()
    }

    // ---------------------------------------------------------------- values

    /// Right-hand side: a comma list of concatenations.
    fn rhs(&mut self) -> R<Expr> {
        let first = self.concat_value()?;
        if self.peek_tok() != Some(&Tok::Comma) {
            return Ok(first);
        }
        let mut v = vec![first];
        while self.eat_tok(&Tok::Comma) {
            v.push(self.concat_value()?);
        }
        let span = v[0].span.to(v[v.len() - 1].span);
        Ok(Expr::new(ExprKind::List(v), span))
    }

    fn concat_value(&mut self) -> R<Expr> {
        let first = self.or_value()?;
        if self.peek_tok() != Some(&Tok::Dot) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_tok(&Tok::Dot) {
            parts.push(self.or_value()?);
        }
        let span = parts[0].span.to(parts[parts.len() - 1].span);
        Ok(Expr::new(ExprKind::Concat(parts), span))
    }

    /// Bit operations between values (`syn | ack`, `1 << 20`).
    fn or_value(&mut self) -> R<Expr> {
        let first = self.unit_value()?;
        self.binary_chain(first, 1, false)
    }

    /// A primary value with an optional `-HIGH` range or `/LEN` prefix.
    fn unit_value(&mut self) -> R<Expr> {
        let p = self.primary_value()?;
        if self.peek_tok() == Some(&Tok::Minus) {
            self.bump();
            let h = self.primary_value()?;
            let span = p.span.to(h.span);
            return Ok(Expr::new(
                ExprKind::Range {
                    low: Box::new(p),
                    high: Box::new(h),
                },
                span,
            ));
        }
        if self.peek_tok() == Some(&Tok::Slash)
            && let Some(Tok::Number { value, .. }) = self.peek_tok_at(1)
        {
            let len = u32::try_from(*value).unwrap_or(u32::MAX);
            self.bump();
            self.bump();
            let span = p.span.to(sp(0, self.prev_end()));
            let span = Span::new(p.span.start, span.end);
            return Ok(Expr::new(
                ExprKind::Prefix {
                    addr: Box::new(p),
                    len,
                },
                span,
            ));
        }
        Ok(p)
    }

    fn primary_value(&mut self) -> R<Expr> {
        let Some(item) = self.peek() else {
            return Err(self.unexpected("a value"));
        };
        let (l, r) = (item.start(), item.end());
        let kind = match item {
            Item::Group(g) => {
                self.bump();
                let items = flat(g);
                let mut q = P::new(self.src, &items, g.close);
                ExprKind::Set(q.elements()?)
            }
            Item::Leaf(_, t, _) => match t {
                Tok::Number { value, hex } => {
                    self.bump();
                    ExprKind::Number {
                        value: *value,
                        hex: *hex,
                    }
                }
                Tok::Time(ms) => {
                    self.bump();
                    ExprKind::Time(*ms)
                }
                Tok::Ipv4(a) => {
                    self.bump();
                    ExprKind::Ipv4(*a)
                }
                Tok::Ipv6(a) => {
                    self.bump();
                    ExprKind::Ipv6(*a)
                }
                Tok::Mac(m) => {
                    self.bump();
                    ExprKind::Mac(*m)
                }
                Tok::Quoted(s) => {
                    self.bump();
                    ExprKind::String(s.clone())
                }
                Tok::At => {
                    self.bump();
                    ExprKind::SetRef(self.ident()?)
                }
                Tok::Dollar => {
                    self.bump();
                    ExprKind::Var(self.ident()?)
                }
                Tok::LParen => {
                    self.bump();
                    let inner = if self.starts_selector() {
                        self.selector_concat()?
                    } else {
                        self.concat_value()?
                    };
                    self.expect_tok(&Tok::RParen, "`)`")?;
                    ExprKind::Paren(Box::new(inner))
                }
                Tok::LBracket => {
                    // `[::1]` in nat statements.
                    self.bump();
                    let inner = self.primary_value()?;
                    self.expect_tok(&Tok::RBracket, "`]`")?;
                    return Ok(Expr::new(inner.kind, sp(l, self.prev_end())));
                }
                Tok::Star => {
                    // `*` wildcard element (catch-all in maps).
                    self.bump();
                    ExprKind::Symbol("*".into())
                }
                Tok::Minus => {
                    // A negative number (`define prio = -150`): kept as the symbol `-150`.
                    self.bump();
                    let (v, _, _) = self.number()?;
                    ExprKind::Symbol(format!("-{v}"))
                }
                t => match t.word() {
                    Some(w) => {
                        self.bump();
                        ExprKind::Symbol(w.to_string())
                    }
                    None => return Err(self.unexpected("a value")),
                },
            },
        };
        Ok(Expr::new(kind, sp(l, r.max(self.prev_end()))))
    }

    /// Elements of a `{ ... }` literal: `a, b-c, k : v, e timeout 1s comment "x"`.
    fn elements(&mut self) -> R<Vec<Expr>> {
        let mut v = Vec::new();
        loop {
            while self.eat_tok(&Tok::Comma) {}
            if self.at_end() {
                break;
            }
            let key = self.concat_value()?;
            let mut e = self.elem_opts(key)?;
            if self.eat_tok(&Tok::Colon) {
                let val = if self.peek_word().is_some_and(|w| VERDICTS.contains(&w)) {
                    let (l, _) = self.peek_span();
                    let vd = self.verdict()?;
                    Expr::new(ExprKind::Verdict(vd), sp(l, self.prev_end()))
                } else {
                    self.concat_value()?
                };
                let span = e.span.to(val.span);
                e = Expr::new(
                    ExprKind::MapElem {
                        key: Box::new(e),
                        value: Box::new(val),
                    },
                    span,
                );
            }
            v.push(e);
            if self.at_end() {
                break;
            }
            if !self.eat_tok(&Tok::Comma) {
                return Err(self.unexpected("`,` or `}`"));
            }
        }
        v.shrink_to_fit();
        Ok(v)
    }

    fn elem_opts(&mut self, value: Expr) -> R<Expr> {
        let mut timeout = None;
        let mut expires = None;
        let mut comment = None;
        let mut any = false;
        loop {
            match self.peek_word() {
                Some("timeout") => {
                    self.bump();
                    timeout = Some(self.time()?.ms);
                }
                Some("expires") => {
                    self.bump();
                    expires = Some(self.time()?.ms);
                }
                Some("comment") => {
                    self.bump();
                    comment = Some(self.string()?.value);
                }
                Some("counter") => {
                    self.bump();
                    if self.eat_word("packets") {
                        self.number()?;
                    }
                    if self.eat_word("bytes") {
                        self.number()?;
                    }
                }
                _ => break,
            }
            any = true;
        }
        if !any {
            return Ok(value);
        }
        let span = Span::new(value.span.start, self.prev_end() as u32);
        Ok(Expr::new(
            ExprKind::Elem {
                value: Box::new(value),
                timeout,
                expires,
                comment,
            },
            span,
        ))
    }
}

/// The source text of an unmodelled statement, made printable on one line: comments dropped,
/// whitespace runs collapsed (outside strings), brackets balanced (recovery may have closed
/// some that the text leaves open).
fn normalize_other(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut stack: Vec<char> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        if in_quote {
            out.push(c);
            in_quote = c != '"';
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                out.push(c);
            }
            '#' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            c if c.is_whitespace() || c == '\\' => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            '{' | '(' | '[' => {
                stack.push(match c {
                    '{' => '}',
                    '(' => ')',
                    _ => ']',
                });
                out.push(c);
            }
            '}' | ')' | ']' => {
                if stack.last() == Some(&c) {
                    stack.pop();
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    if in_quote {
        out.push('"');
    }
    while let Some(c) = stack.pop() {
        if !out.ends_with(' ') {
            out.push(' ');
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

fn bin_prec(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::Xor => 2,
        BinOp::And => 3,
        BinOp::Shl | BinOp::Shr => 4,
    }
}

/// `a,b,c` → `a | b | c` (for nft's mask form).
fn list_to_or(e: Expr) -> Expr {
    match e.kind {
        ExprKind::List(v) => {
            let mut it = v.into_iter();
            let Some(mut acc) = it.next() else {
                return Expr::new(ExprKind::Error, e.span);
            };
            for x in it {
                let span = acc.span.to(x.span);
                acc = Expr::new(
                    ExprKind::Binary {
                        op: BinOp::Or,
                        left: Box::new(acc),
                        right: Box::new(x),
                    },
                    span,
                );
            }
            acc
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed element lists give the tree and the errors the token trees give.
    #[test]
    fn packed_lists_parse_as_token_trees() {
        let lists = [
            "10.0.0.1, 10.0.0.2,\n 10.0.0.0/8, 1.2.3.4-1.2.3.9",
            "::1, 2001:db8::/32, ::ffff:1.2.3.4 - ::ffff:1.2.3.9",
            "22, 0x16, ssh, http-alt; 1-1024",
            "00:11:22:33:44:55, \"eth*\", \"x\" comment \"c\"",
            "1.2.3.4 . tcp . 22 timeout 1h2m expires 3s comment \"a b\", 1.1.1.1 . udp . 53",
            "1.2.3.4 : accept, 1.2.3.5 : jump other, * : drop",
            "1.2.3.4 : 5.6.7.8 . 80, $v, @s, syn | ack, 1 << 2, !x",
            "set, map, table, elements, counter packets 1 bytes 2",
            // not packed: groups and brackets
            "{ 1.2.3.4, 1.2.3.5 }, 1.2.3.6",
            "(1.2.3.4), [::1]",
            // errors: each is a token tree's
            "1.2.3.4 1.2.3.5",
            "1.2.3.4 :",
            "1.2.3.4 - , 3",
            "jump",
            "1.2.3.4, 1.2.3.5 timeout",
            ",,, 1, ,",
            "1.2.3.4 ) 1.2.3.5",
            "999.1.1.1, 1.1.1.1 # comment\n, 2.2.2.2",
        ];
        let mut packed = 0;
        for list in lists {
            for src in [
                format!(
                    "table ip t {{\n set s {{\n type ipv4_addr\n elements = {{ {list} }}\n }}\n}}\n"
                ),
                format!(
                    "add element ip t s {{ {list} }}\nadd set t m {{ elements = {{ {list} }}; }}\n"
                ),
            ] {
                let (a, b) = (parse_with(&src, true), parse_with(&src, false));
                assert_eq!(a, b, "{src}");
                assert_eq!(format!("{:?}", a.file), format!("{:?}", b.file), "{src}");
                let all = |p: &Parsed| -> Vec<bool> {
                    let mut v = Vec::new();
                    for c in &p.file.commands {
                        match &c.kind {
                            CommandKind::Element { elements, .. } => {
                                v.push(matches!(elements, Elements::Packed(..)))
                            }
                            CommandKind::AddSet { set, .. } => {
                                v.push(matches!(set.elements, Elements::Packed(..)))
                            }
                            CommandKind::Table(t) => {
                                for i in &t.items {
                                    if let TableItem::Set(s) = i {
                                        v.push(matches!(s.elements, Elements::Packed(..)));
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    v
                };
                if all(&a).contains(&true) {
                    packed += 1;
                }
                assert!(!all(&b).contains(&true));
            }
        }
        // the first eight lists parse, and stay packed
        assert_eq!(packed, 8 * 2, "packed lists");
    }
}
