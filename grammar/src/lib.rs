//! nfr-grammar: the syntax layer of nfc's `.nfr` front end (nftables syntax).
//!
//! - [`parse`] turns source text into an [`ast::File`] plus every syntax error found
//!   ([`Parsed`]); it never fails outright and never panics on hostile input (nesting is capped
//!   at [`MAX_DEPTH`], operator chains at [`MAX_BINOPS`]).
//! - [`ast`] is the tree, with byte spans ([`ast::Span`], half-open `u32` byte offsets).
//! - [`catalog`] holds the static nftables vocabulary (datatypes, symbols, selectors, priorities).
//! - [`format()`] / [`print::format_with`] / [`format_rule`] print the canonical form
//!   (`nft list ruleset` style) used by `nfc fmt`. `#` comments are kept in
//!   [`ast::File::comments`] and printed back next to the node that follows them.
//!
//! Pipeline: [`lexer`] (logos) → a pre-pass that drops lexical errors, balances `{}`/`()`/`[]`
//! and caps nesting → the lalrpop grammar (`src/nfr.lalrpop`, generated into `OUT_DIR`) for the
//! structure (commands, tables, chain/set bodies as token trees, `!` recovery per line) → `conv`,
//! which turns bodies and rules into the Ast with a recursive-descent statement/expression
//! parser guided by the catalog.
#![forbid(unsafe_code)]

pub mod ast;
pub mod catalog;
mod conv;
mod cst;
pub mod lexer;
pub mod packed;
pub mod print;

pub use conv::{MAX_BINOPS, MAX_DEPTH};
lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, unused)]
    nfr
);

use ast::Span;

/// A syntax (or lexical) error with its location and, where known, what was expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
    /// Human-readable names of what would have been accepted (trimmed; may be empty).
    pub expected: Vec<String>,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}..{}: {}",
            self.span.start, self.span.end, self.message
        )?;
        if !self.expected.is_empty() && !self.message.contains("expected") {
            write!(f, " (expected {})", self.expected.join(", "))?;
        }
        Ok(())
    }
}

/// The result of parsing: the tree that could be built and every error.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub file: ast::File,
    pub errors: Vec<SyntaxError>,
}

impl Parsed {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub use print::{format, format_rule, format_with};

/// Parse `.nfr` source. Never fails: returns the tree it could build plus all errors.
pub fn parse(src: &str) -> Parsed {
    conv::parse(src)
}
