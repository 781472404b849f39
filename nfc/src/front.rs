//! The front-end driver: reads `.nfr` files (and their includes) from disk, runs the checker, and renders
//! diagnostics. This is the only place where the front end touches the file system.

use std::io::Write as _;
use std::path::Path;

use nfr_compiler::check::Listing;
use nfr_compiler::diag::{self, Diagnostic, SourceMap, Span};
use nfr_compiler::hir::Hir;

/// A checked file: every source it pulled in, the Hir if there were no errors, and all diagnostics.
pub struct Checked {
    pub sources: SourceMap,
    pub hir: Option<Hir>,
    /// With the Hir, from [`check_file_listed`]: the ruleset as checked, for listings.
    pub listing: Option<Listing>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
    /// (errors, warnings)
    pub fn counts(&self) -> (usize, usize) {
        let e = self.diagnostics.iter().filter(|d| d.is_error()).count();
        (e, self.diagnostics.len() - e)
    }
    /// The diagnostics as text, at most `--max-errors` errors and as many warnings, then a line saying how many
    /// more there are.
    pub fn render(&self, color: bool) -> String {
        let (shown, more_e, more_w) = capped(&self.diagnostics);
        let mut s = diag::render(&shown, &self.sources, color);
        if more_e + more_w > 0 {
            s.push_str(&format!(
                "... {more_e} more error(s) and {more_w} more warning(s) not shown (--max-errors 0 shows all)\n"
            ));
        }
        s
    }
}

/// Reads a source file argument (`-`: standard input) as UTF-8, naming the file in the error.
pub fn read_source(path: &Path) -> anyhow::Result<String> {
    let bytes = crate::source::read_capped(path, crate::source::MAX_SOURCE_BYTES)?;
    if let Some(format) = nfr_runtime::pcap::capture_format(&bytes) {
        anyhow::bail!(
            "{} is a {format} capture, not a ruleset (`nfc run pcap RULES CAPTURE` takes the ruleset first)",
            crate::source::display_name(path)
        );
    }
    crate::source::utf8(&crate::source::display_name(path), bytes)
}

/// `--max-errors`: errors (and, apart, warnings) printed per file; 0 for all. nft stops at 10 errors.
static MAX_ERRORS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The default of `--max-errors`, as nft's `parser_max_errors`.
pub const DEFAULT_MAX_ERRORS: usize = 10;

/// Sets `--max-errors` (once, from the command line).
pub fn set_max_errors(n: usize) {
    let _ = MAX_ERRORS.set(n);
}

/// The first `--max-errors` errors and warnings (in source order), and how many errors and warnings are left.
pub fn capped(diags: &[Diagnostic]) -> (Vec<Diagnostic>, usize, usize) {
    let max = MAX_ERRORS.get().copied().unwrap_or(DEFAULT_MAX_ERRORS);
    if max == 0 {
        return (diags.to_vec(), 0, 0);
    }
    let (mut e, mut w) = (0, 0);
    let shown = diags
        .iter()
        .filter(|d| {
            let n = if d.is_error() { &mut e } else { &mut w };
            *n += 1;
            *n <= max
        })
        .cloned()
        .collect();
    (shown, e.saturating_sub(max), w.saturating_sub(max))
}

/// Parses and checks `path` (`-`: standard input); `include` is resolved by [`crate::source::Includes`] (the
/// `-I` directories, then the including file's directory for plain names; wildcards; regular files only).
pub fn check_file(path: &Path) -> anyhow::Result<Checked> {
    check_file_with(path, false)
}

/// [`check_file`], with the ruleset's [`Listing`] beside the Hir.
pub fn check_file_listed(path: &Path) -> anyhow::Result<Checked> {
    check_file_with(path, true)
}

fn check_file_with(path: &Path, listed: bool) -> anyhow::Result<Checked> {
    let text = read_source(path)?;
    let mut sources = SourceMap::new();
    let mut loader = crate::source::Includes::new(crate::source::include_dirs(), text.len());
    let root = sources.add(crate::source::display_name(path), text);
    let (hir, listing, diagnostics) = if listed {
        let (out, diagnostics) = nfr_compiler::check::check_listed(&mut sources, root, &mut loader);
        let (hir, listing) = out.unzip();
        (hir, listing, diagnostics)
    } else {
        let (hir, diagnostics) = nfr_compiler::check::check(&mut sources, root, &mut loader);
        (hir, None, diagnostics)
    };
    Ok(Checked {
        sources,
        hir,
        listing,
        diagnostics,
    })
}

/// Renders syntax errors of a single file (for `nfc fmt`, which does not need the checker).
pub fn render_syntax_errors(
    path: &Path,
    text: &str,
    errors: &[nfr_grammar::SyntaxError],
    color: bool,
) -> String {
    let mut sources = SourceMap::new();
    let id = sources.add(crate::source::display_name(path), text.to_string());
    let diags: Vec<Diagnostic> = errors
        .iter()
        .map(|e| {
            let d = Diagnostic::error(
                "E0001",
                Span::new(id, e.span.start as usize, e.span.end as usize),
                &e.message,
            );
            if e.expected.is_empty() {
                d
            } else {
                d.with_note(format!("expected {}", e.expected.join(", ")))
            }
        })
        .collect();
    diag::render(&diags, &sources, color)
}

/// `{"files": [{"file", "ok", "diagnostics"}...]}` for `nfc check --format json`, pretty-printed to stdout one
/// diagnostic at a time.
pub fn print_json_files(files: &[(String, Checked)]) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        file: &'a str,
        ok: bool,
        diagnostics: diag::JsonDiags<'a>,
        /// Errors and warnings past `--max-errors`, not listed.
        not_shown: NotShown,
    }
    #[derive(serde::Serialize)]
    struct NotShown {
        errors: usize,
        warnings: usize,
    }
    let capped: Vec<(Vec<Diagnostic>, usize, usize)> =
        files.iter().map(|(_, c)| capped(&c.diagnostics)).collect();
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        files: Vec<File<'a>>,
    }
    let doc = Doc {
        files: files
            .iter()
            .zip(&capped)
            .map(|((name, c), (shown, e, w))| File {
                file: name,
                ok: !c.has_errors(),
                diagnostics: diag::JsonDiags {
                    diags: shown,
                    sources: &c.sources,
                },
                not_shown: NotShown {
                    errors: *e,
                    warnings: *w,
                },
            })
            .collect(),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, &doc)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// [`print_stdout`] for text made piece by piece: `write` writes into a buffered stdout, so the whole text is never
/// held at once.
pub fn write_stdout(
    write: impl FnOnce(&mut dyn std::fmt::Write) -> std::fmt::Result,
) -> anyhow::Result<()> {
    /// `fmt::Write` over an `io::Write`, keeping the first io error (fmt's error has no cause).
    struct Out<W> {
        w: W,
        err: Option<std::io::Error>,
    }
    impl<W: std::io::Write> std::fmt::Write for Out<W> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.w.write_all(s.as_bytes()).map_err(|e| {
                self.err.get_or_insert(e);
                std::fmt::Error
            })
        }
    }
    let mut out = Out {
        w: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
        err: None,
    };
    if write(&mut out).is_err() {
        return Err(out.err.take().map_or_else(
            || anyhow::anyhow!("formatting the output failed"),
            Into::into,
        ));
    }
    out.w.flush()?;
    Ok(())
}

/// Writes to stdout; a closed pipe surfaces as an io::Error that `main` turns into exit 0.
pub fn print_stdout(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}
