//! Diagnostics as plain data (`Diagnostic`, `Span`, `SourceMap`), the table of stable
//! codes, and the two renderers used at the edge: ariadne text (`render`) and JSON
//! (`to_json`). The checker only builds `Diagnostic` values; nothing here prints.

use std::fmt::Write as _;

/// Index of a source file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = u32::try_from(end).unwrap_or(u32::MAX).max(start);
        Span { file, start, end }
    }
    /// The smallest span covering both (same file assumed; otherwise `self`).
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One loaded source text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

/// Every source text the checker saw (the root file and its includes), by [`FileId`].
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    /// Per file, the byte offset where each line starts (for `line_col`), made when first asked (4 B a
    /// line, which a file without diagnostics never needs).
    line_starts: Vec<std::sync::OnceLock<Vec<u32>>>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile {
            name: name.into(),
            text: text.into(),
        });
        self.line_starts.push(std::sync::OnceLock::new());
        id
    }

    /// The byte offset where each line of `id` starts.
    fn starts(&self, id: FileId) -> &[u32] {
        let Some(cell) = self.line_starts.get(id.0 as usize) else {
            return &[];
        };
        cell.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text(id).match_indices('\n').map(|(i, _)| i + 1))
                .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
                .collect()
        })
    }
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }
    pub fn name(&self, id: FileId) -> &str {
        self.get(id).map_or("<unknown>", |f| f.name.as_str())
    }
    pub fn text(&self, id: FileId) -> &str {
        self.get(id).map_or("", |f| f.text.as_str())
    }
    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }
    /// 0-based line of a byte offset.
    pub fn line_of(&self, id: FileId, offset: usize) -> usize {
        let starts = self.starts(id);
        starts
            .partition_point(|&s| s as usize <= offset)
            .saturating_sub(1)
    }

    /// Byte range of a 0-based line, without its newline.
    pub fn line_bounds(&self, id: FileId, line: usize) -> (usize, usize) {
        let text = self.text(id);
        let starts = self.starts(id);
        let a = starts
            .get(line)
            .map_or(text.len(), |&s| s as usize)
            .min(text.len());
        let b = starts
            .get(line + 1)
            .map_or(text.len(), |&s| (s as usize).saturating_sub(1))
            .clamp(a, text.len());
        (a, b)
    }

    /// Whether either end of `s` is on a line longer than [`MAX_SHOWN_LINE`].
    pub fn long_line_at(&self, s: Span) -> bool {
        [s.start, s.end].into_iter().any(|o| {
            let (a, b) = self.line_bounds(s.file, self.line_of(s.file, o as usize));
            b - a > MAX_SHOWN_LINE
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: FileId, offset: u32) -> (usize, usize) {
        let text = self.text(id);
        let mut off = (offset as usize).min(text.len());
        while off > 0 && !text.is_char_boundary(off) {
            off -= 1;
        }
        let starts = self.starts(id);
        // the last line starting at or before `off`
        let line = starts.partition_point(|&s| s as usize <= off).max(1);
        let from = starts.get(line - 1).map_or(0, |&s| s as usize).min(off);
        let col = text.get(from..off).map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A checker finding. Plain data: rendering happens at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable code from [`CODES`], e.g. `"E0104"`.
    pub code: &'static str,
    pub message: String,
    pub primary: Span,
    /// Text shown at the primary span (may be empty).
    pub primary_label: String,
    /// Related places, each with its own text.
    pub labels: Vec<(Span, String)>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, primary: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary,
            primary_label: String::new(),
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }
    pub fn warning(code: &'static str, primary: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, primary, message)
        }
    }
    pub fn with_primary_label(mut self, text: impl Into<String>) -> Diagnostic {
        self.primary_label = text.into();
        self
    }
    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.labels.push((span, text.into()));
        self
    }
    pub fn with_note(mut self, text: impl Into<String>) -> Diagnostic {
        self.notes.push(text.into());
        self
    }
    pub fn with_help(mut self, text: impl Into<String>) -> Diagnostic {
        self.help = Some(text.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Every diagnostic code with a one-line description. Codes are stable: never reuse one.
pub const CODES: &[(&str, &str)] = &[
    ("E0001", "syntax error (from the parser)"),
    ("E0002", "include file could not be read"),
    ("E0003", "include cycle"),
    ("E0004", "include nesting too deep"),
    ("E0010", "undefined variable `$name`"),
    ("E0011", "variable defined twice"),
    (
        "E0012",
        "define expansion too deep or too large (defines nested over 16 levels, or over 2^20 substituted values)",
    ),
    (
        "E0020",
        "address family not supported (arp, bridge, netdev)",
    ),
    ("E0021", "command not supported in a ruleset file"),
    ("E0100", "duplicate table"),
    ("E0101", "duplicate chain"),
    ("E0102", "duplicate set or map"),
    ("E0103", "jump/goto to an undefined chain"),
    ("E0104", "reference to an undefined set or map"),
    ("E0105", "jump/goto to a base chain"),
    (
        "E0106",
        "object used with the wrong kind (set vs map vs vmap)",
    ),
    ("E0107", "duplicate named object (ct helper, counter)"),
    (
        "E0108",
        "reference to an undefined named object (`ct helper set`, `counter name`)",
    ),
    ("E0200", "value out of range for its type"),
    ("E0201", "unknown symbol for the expected type"),
    ("E0202", "prefix length out of range"),
    (
        "E0203",
        "address family of a value or selector does not match the table family",
    ),
    ("E0204", "type mismatch between the two sides of a match"),
    ("E0205", "set element does not match the set's key type"),
    ("E0206", "unsupported or unknown expression"),
    ("E0207", "invalid range (low > high)"),
    ("E0208", "unknown datatype in a set/map declaration"),
    ("E0209", "relational operator not valid for this type"),
    ("E0210", "unsupported statement"),
    ("E0211", "invalid statement argument"),
    (
        "E0212",
        "set statement (`add|update|delete @set`) the set cannot take: constant or interval set, timeout without `flags timeout`, a verdict map, a map element without data",
    ),
    ("E0300", "conflicting protocol dependencies in one rule"),
    ("E0400", "chain type not valid on this hook"),
    (
        "E0401",
        "nat chain priority must be greater than -200 (conntrack)",
    ),
    ("E0403", "policy on a user chain"),
    ("E0404", "unknown hook, chain type or priority name"),
    (
        "E0405",
        "statement not allowed on this chain's hook or type",
    ),
    ("E0406", "statement after verdict"),
    ("E0500", "loop in the jump/goto graph"),
    ("E0501", "jump depth reaches NFT_JUMP_STACK_SIZE (16)"),
    (
        "E0700",
        "table or base chain has no iptables equivalent (`--emit ipt`)",
    ),
    (
        "E0701",
        "rule or statement has no iptables form (`--emit ipt`)",
    ),
    (
        "E0702",
        "built iptables table fails the kernel's translate_table checks (an internal guard)",
    ),
    ("W0600", "user chain is never jumped to (unreachable)"),
    (
        "W0601",
        "notrack after conntrack (hook other than prerouting/output, or priority >= -200)",
    ),
    (
        "W0602",
        "rule can never match: earlier rules that end the chain take every packet it matches",
    ),
    (
        "W0603",
        "rule duplicates an earlier rule (same match and statements)",
    ),
];

/// The one-line description of a code, if it is known.
pub fn describe(code: &str) -> Option<&'static str> {
    CODES.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

/// Bytes of a source line shown around a caret: a longer line is cut to a window around the diagnostic's
/// spans on it, marked with `…` at the cut ends, so output stays proportional to the diagnostics, not the lines.
pub const MAX_SHOWN_LINE: usize = 160;

/// Bytes kept before the first and after the last span of a cut line.
const LINE_CONTEXT: usize = 40;

/// A control character (other than tab and newline) as a one-byte stand-in: raw NULs and escape sequences
/// never reach the terminal, and byte offsets stay those of the source.
fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f)
    {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| match c {
                // CRLF files: the carriage return shows as the blank it is
                '\r' => ' ',
                '\t' | '\n' => c,
                c if c.is_ascii_control() => '?',
                c => c,
            })
            .collect(),
    )
}

/// A message with control characters escaped (`\0`, `\x1b`).
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The cut lines of one diagnostic, for ariadne.
type WindowCache = ariadne::FnCache<String, fn(&String) -> Result<String, &'static str>, String>;

/// Where a span's ends go in the text ariadne is given.
type SpanMap<'a> = dyn Fn(Span) -> (String, std::ops::Range<usize>) + 'a;

/// Render diagnostics with ariadne (`file:line:col`, carets, labels, notes, help).
/// `color` is off for golden files.
pub fn render(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let mut out = Vec::new();
    // ariadne needs distinct display names per file; the file name plus the id keeps them unique.
    let names: Vec<String> = sources.files().map(|(_, f)| f.name.clone()).collect();
    let mut dup: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for n in &names {
        *dup.entry(n.as_str()).or_default() += 1;
    }
    let name_of = |id: FileId| -> String {
        let n = names
            .get(id.0 as usize)
            .cloned()
            .unwrap_or_else(|| "<unknown>".into());
        if dup.get(n.as_str()).copied().unwrap_or(0) > 1 {
            format!("{n}#{}", id.0)
        } else {
            n
        }
    };
    let clamp = |s: Span| -> std::ops::Range<usize> {
        let len = sources.text(s.file).len();
        let a = (s.start as usize).min(len);
        let b = (s.end as usize).min(len).max(a);
        a..b
    };
    // whole files, made once, for diagnostics whose lines are short
    let mut full: Option<ariadne::FnCache<String, _, String>> = None;
    for d in diags {
        let spans = std::iter::once(d.primary).chain(d.labels.iter().map(|(s, _)| *s));
        if spans.clone().any(|s| sources.long_line_at(s)) {
            let (mut cache, map, fixups) = windowed(d, sources, &name_of);
            let mut one = Vec::new();
            write_one(d, &mut cache, &*map, color, &mut one);
            let mut text = String::from_utf8_lossy(&one).into_owned();
            for (shown, real) in fixups {
                text = text.replace(&shown, &real);
            }
            out.extend_from_slice(text.as_bytes());
        } else {
            let cache = full.get_or_insert_with(|| {
                let srcs: std::collections::HashMap<String, ariadne::Source<String>> = sources
                    .files()
                    .map(|(id, f)| {
                        (
                            name_of(id),
                            ariadne::Source::from(visible(&f.text).into_owned()),
                        )
                    })
                    .collect();
                ariadne::FnCache::new(
                    (|_: &String| Err::<String, _>("no such source")) as fn(&String) -> _,
                )
                .with_sources(srcs)
            });
            let map = |s: Span| (name_of(s.file), clamp(s));
            write_one(d, cache, &map, color, &mut out);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One diagnostic through ariadne, its spans placed by `map`.
fn write_one<C: ariadne::Cache<String>>(
    d: &Diagnostic,
    cache: &mut C,
    map: &SpanMap<'_>,
    color: bool,
    out: &mut Vec<u8>,
) {
    use ariadne::{Config, IndexType, Label, Report, ReportKind};
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    let pspan = map(d.primary);
    let mut b = Report::build(kind, pspan.clone())
        .with_code(d.code)
        .with_message(escape_controls(&d.message))
        .with_config(
            Config::default()
                .with_color(color)
                .with_index_type(IndexType::Byte)
                .with_compact(false),
        );
    // ariadne draws no underline for a label without text: default to "here"
    let text = if d.primary_label.is_empty() {
        "here"
    } else {
        d.primary_label.as_str()
    };
    let primary = Label::new(pspan)
        .with_order(0)
        .with_message(escape_controls(text));
    b = b.with_label(primary);
    for (i, (s, text)) in d.labels.iter().enumerate() {
        let l = Label::new(map(*s))
            .with_message(escape_controls(text))
            .with_order(i as i32 + 1);
        b = b.with_label(l);
    }
    for n in &d.notes {
        b = b.with_note(escape_controls(n));
    }
    if let Some(h) = &d.help {
        b = b.with_help(escape_controls(h));
    }
    let _ = b.finish().write(cache, out);
}

/// The lines of `d`'s spans only, each long one cut to a window around its spans (other lines between them
/// left empty: ariadne shows only lines with labels), numbered as in the file; and the spans' places in it.
fn windowed<'a>(
    d: &Diagnostic,
    sources: &'a SourceMap,
    name_of: &'a dyn Fn(FileId) -> String,
) -> (WindowCache, Box<SpanMap<'a>>, Vec<(String, String)>) {
    let spans: Vec<Span> = std::iter::once(d.primary)
        .chain(d.labels.iter().map(|(s, _)| *s))
        .collect();
    // per file, per line up to the last shown: (window start, window end, where the window starts in the text)
    let mut maps: std::collections::HashMap<FileId, Vec<(usize, usize, usize)>> =
        std::collections::HashMap::new();
    let mut srcs = std::collections::HashMap::new();
    let mut texts: std::collections::HashMap<FileId, String> = std::collections::HashMap::new();
    let mut files: Vec<FileId> = spans.iter().map(|s| s.file).collect();
    files.sort();
    files.dedup();
    for f in files {
        let text = sources.text(f);
        let ends: Vec<usize> = spans
            .iter()
            .filter(|s| s.file == f)
            .flat_map(|s| [s.start as usize, s.end as usize])
            .map(|o| o.min(text.len()))
            .collect();
        let lines: Vec<usize> = ends.iter().map(|&o| sources.line_of(f, o)).collect();
        let (lo_line, hi_line) = (
            lines.iter().copied().min().unwrap_or(0),
            lines.iter().copied().max().unwrap_or(0),
        );
        // ariadne 0.6 numbers the gutter from the text's own first line (its display offset only reaches the
        // `file:line:col` header): the lines before are given empty
        let mut new = "\n".repeat(lo_line);
        let mut rows = vec![(0, 0, 0); lo_line];
        for line in lo_line..=hi_line {
            let (ls, le) = sources.line_bounds(f, line);
            let on: Vec<usize> = ends
                .iter()
                .zip(&lines)
                .filter(|(_, l)| **l == line)
                .map(|(o, _)| *o)
                .collect();
            let (ws, we) = if on.is_empty() {
                (ls, ls)
            } else if le - ls <= MAX_SHOWN_LINE {
                (ls, le)
            } else {
                let first = on.iter().copied().min().unwrap_or(ls);
                let last = on.iter().copied().max().unwrap_or(ls);
                let mut ws = first.saturating_sub(LINE_CONTEXT).max(ls);
                let mut we = (last + LINE_CONTEXT).min(le).min(ws + MAX_SHOWN_LINE);
                while ws > ls && !text.is_char_boundary(ws) {
                    ws -= 1;
                }
                while we > ws && !text.is_char_boundary(we) {
                    we -= 1;
                }
                (ws, we)
            };
            if ws > ls {
                new.push('…');
            }
            rows.push((ws, we, new.len()));
            new.push_str(&visible(&text[ws..we]));
            if we < le && !on.is_empty() {
                new.push('…');
            }
            new.push('\n');
        }
        maps.insert(f, rows);
        texts.insert(f, new);
    }
    let place = move |file: FileId, o: u32| -> usize {
        let text = sources.text(file);
        let o = (o as usize).min(text.len());
        let line = sources.line_of(file, o);
        maps.get(&file)
            .and_then(|rows| rows.get(line))
            .map_or(0, |&(ws, we, at)| at + o.clamp(ws, we) - ws)
    };
    // ariadne counts columns in the text it is given: put the file's own columns back in `file:line:col`
    let mut fixups = Vec::new();
    for sp in &spans {
        let new = &texts[&sp.file];
        let at = place(sp.file, sp.start).min(new.len());
        let from = new[..at].rfind('\n').map_or(0, |i| i + 1);
        let shown = new[from..at].chars().count() + 1;
        let (line, col) = sources.line_col(sp.file, sp.start);
        fixups.push((
            format!("{}:{line}:{shown} ]", name_of(sp.file)),
            format!("{}:{line}:{col} ]", name_of(sp.file)),
        ));
    }
    for (f, new) in texts {
        srcs.insert(name_of(f), ariadne::Source::from(new));
    }
    let cache = ariadne::FnCache::new(
        (|_: &String| Err::<String, _>("no such source")) as fn(&String) -> _,
    )
    .with_sources(srcs);
    let map = move |s: Span| {
        let (a, b) = (place(s.file, s.start), place(s.file, s.end));
        (name_of(s.file), a..b.max(a))
    };
    (cache, Box::new(map), fixups)
}

/// A one-line-per-diagnostic summary `file:line:col: error[E0104]: message`, handy in tests.
pub fn render_short(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let mut s = String::new();
    for d in diags {
        let (l, c) = sources.line_col(d.primary.file, d.primary.start);
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(
            s,
            "{}:{l}:{c}: {sev}[{}]: {}",
            sources.name(d.primary.file),
            d.code,
            d.message
        );
    }
    s
}

fn span_json(s: Span, sources: &SourceMap) -> serde_json::Value {
    let (line, col) = sources.line_col(s.file, s.start);
    let (end_line, end_col) = sources.line_col(s.file, s.end);
    serde_json::json!({
        "file": sources.name(s.file),
        "start": s.start, "end": s.end,
        "line": line, "column": col, "end_line": end_line, "end_column": end_col,
    })
}

/// One diagnostic as a JSON object.
fn diag_json(d: &Diagnostic, sources: &SourceMap) -> serde_json::Value {
    serde_json::json!({
        "severity": d.severity,
        "code": d.code,
        "description": describe(d.code),
        "message": d.message,
        "primary": span_json(d.primary, sources),
        "primary_label": d.primary_label,
        "labels": d.labels.iter().map(|(s, t)| {
            let mut v = span_json(*s, sources);
            v["message"] = serde_json::Value::String(t.clone());
            v
        }).collect::<Vec<_>>(),
        "notes": d.notes,
        "help": d.help,
    })
}

/// Machine-readable diagnostics for `nfc check --format json`: an array of objects.
pub fn to_json(diags: &[Diagnostic], sources: &SourceMap) -> serde_json::Value {
    serde_json::Value::Array(diags.iter().map(|d| diag_json(d, sources)).collect())
}

/// The same array as [`to_json`], serialized one diagnostic at a time (memory stays that of one diagnostic,
/// however many there are).
pub struct JsonDiags<'a> {
    pub diags: &'a [Diagnostic],
    pub sources: &'a SourceMap,
}

impl serde::Serialize for JsonDiags<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = ser.serialize_seq(Some(self.diags.len()))?;
        for d in self.diags {
            seq.serialize_element(&diag_json(d, self.sources))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_sorted() {
        for w in CODES.windows(2) {
            assert!(w[0].0 < w[1].0, "{} !< {}", w[0].0, w[1].0);
        }
        assert_eq!(describe("E0500"), Some("loop in the jump/goto graph"));
    }

    #[test]
    fn line_col_is_one_based() {
        let mut sm = SourceMap::new();
        let f = sm.add("a.nfr", "ab\ncdé\nx");
        assert_eq!(sm.line_col(f, 0), (1, 1));
        assert_eq!(sm.line_col(f, 3), (2, 1));
        assert_eq!(sm.line_col(f, 7), (2, 4));
        assert_eq!(sm.line_col(f, 999), (3, 2));
    }

    #[test]
    fn render_shows_position_code_and_labels() {
        let mut sm = SourceMap::new();
        let f = sm.add("r.nfr", "table ip t {\n  chain c { jump d }\n}\n");
        let d = Diagnostic::error("E0103", Span::new(f, 30, 31), "chain `d` is not defined")
            .with_primary_label("jump target")
            .with_help("define it with `chain d { }`");
        let out = render(std::slice::from_ref(&d), &sm, false);
        assert!(out.contains("E0103"), "{out}");
        assert!(out.contains("r.nfr:2:18"), "{out}");
        assert!(out.contains("jump target"), "{out}");
        assert!(out.contains("define it"), "{out}");
        let j = to_json(&[d], &sm);
        assert_eq!(j[0]["code"], "E0103");
        assert_eq!(j[0]["description"], "jump/goto to an undefined chain");
        assert_eq!(j[0]["primary"]["line"], 2);
        assert_eq!(j[0]["severity"], "error");
    }

    #[test]
    fn render_survives_bad_spans() {
        let mut sm = SourceMap::new();
        let f = sm.add("r.nfr", "x");
        let d = Diagnostic::error("E0001", Span::new(f, 50, 40), "m")
            .with_label(Span::new(FileId(9), 0, 1), "other");
        let _ = render(&[d], &sm, false);
    }
}
