//! The front-end driver: reads `.nfr` files (and their includes) from disk, runs the checker, and renders
//! diagnostics. This is the only place where the front end touches the file system.

use std::io::Write as _;
use std::path::Path;

use nfr_compiler::diag::{self, Diagnostic, SourceMap, Span};
use nfr_compiler::hir::Hir;

/// A checked file: every source it pulled in, the Hir if there were no errors, and all diagnostics.
pub struct Checked {
    pub sources: SourceMap,
    pub hir: Option<Hir>,
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
    pub fn render(&self, color: bool) -> String {
        diag::render(&self.diagnostics, &self.sources, color)
    }
}

/// Reads a source file argument (`-`: standard input) as UTF-8, naming the file in the error.
pub fn read_source(path: &Path) -> anyhow::Result<String> {
    crate::source::read_text(path)
}

/// Parses and checks `path` (`-`: standard input); `include` is resolved by [`crate::source::Includes`] (the
/// `-I` directories, then the including file's directory for plain names; wildcards; regular files only).
pub fn check_file(path: &Path) -> anyhow::Result<Checked> {
    let text = read_source(path)?;
    let mut sources = SourceMap::new();
    let mut loader = crate::source::Includes::new(crate::source::include_dirs(), text.len());
    let root = sources.add(crate::source::display_name(path), text);
    let (hir, diagnostics) = nfr_compiler::check::check(&mut sources, root, &mut loader);
    Ok(Checked {
        sources,
        hir,
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
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        files: Vec<File<'a>>,
    }
    let doc = Doc {
        files: files
            .iter()
            .map(|(name, c)| File {
                file: name,
                ok: !c.has_errors(),
                diagnostics: diag::JsonDiags {
                    diags: &c.diagnostics,
                    sources: &c.sources,
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

/// Writes to stdout; a closed pipe surfaces as an io::Error that `main` turns into exit 0.
pub fn print_stdout(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}
