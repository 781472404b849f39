//! The raw concrete tree the lalrpop grammar builds: commands, tables, chains and sets are
//! structured; rule lines and set/chain bodies are kept as token trees (`Item`s) that
//! [`crate::conv`] turns into the [`crate::ast`] with the rule/expression parser.
//!
//! Offsets are byte offsets (usize) into the source.

use crate::lexer::Tok;

/// `v` moved into a block of its length. Shrunk in place, the rest of its grown block would stay a hole
/// beside each line or rule (so the blocks freed as a chain is converted could not hold the next
/// structure); the grown block freed here is reused by the next one's.
pub(crate) fn exact<T>(mut v: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    out.append(&mut v);
    out
}

/// A token or a `{ ... }` group.
#[derive(Clone, Debug)]
pub enum Item {
    Leaf(usize, Tok, usize),
    Group(Group),
}

impl Item {
    pub fn start(&self) -> usize {
        match self {
            Item::Leaf(l, _, _) => *l,
            Item::Group(g) => g.open,
        }
    }
    pub fn end(&self) -> usize {
        match self {
            Item::Leaf(_, _, r) => *r,
            Item::Group(g) => g.close,
        }
    }
}

/// `{ line; line \n line }`: start offset of `{`, end offset after `}`.
#[derive(Clone, Debug)]
pub struct Group {
    pub open: usize,
    pub close: usize,
    pub lines: Vec<Line>,
}

/// One line (statement) of items.
#[derive(Clone, Debug)]
pub struct Line {
    pub start: usize,
    pub end: usize,
    pub items: Vec<Item>,
}

/// A name token (word) with its span.
pub type Name = (usize, String, usize);

/// A top-level command, as the grammar sees it.
#[derive(Clone, Debug)]
pub enum Top {
    /// `[verb] table NAMES [{ ... }]`.
    Table {
        start: usize,
        end: usize,
        verb: Option<Name>,
        names: Vec<Name>,
        body: Option<TableBody>,
    },
    /// `[verb] chain NAMES [{ ... }]`.
    Chain {
        start: usize,
        end: usize,
        verb: Option<Name>,
        names: Vec<Name>,
        body: Option<Group>,
    },
    /// `[verb] set|map NAMES [{ ... }]`.
    Set {
        start: usize,
        end: usize,
        verb: Option<Name>,
        is_map: bool,
        names: Vec<Name>,
        body: Option<Group>,
    },
    /// `verb rule ITEMS`.
    Rule {
        start: usize,
        end: usize,
        verb: Name,
        items: Vec<Item>,
    },
    /// `verb element NAMES { ... }`.
    Element {
        start: usize,
        end: usize,
        verb: Name,
        names: Vec<Name>,
        body: Group,
    },
    /// `flush ruleset [family]`.
    FlushRuleset {
        start: usize,
        end: usize,
        family: Option<Name>,
    },
    /// `define|redefine NAME = ITEMS`.
    Define {
        start: usize,
        end: usize,
        redefine: bool,
        name: Name,
        value: Vec<Item>,
    },
    Undefine {
        start: usize,
        end: usize,
        name: Name,
    },
    Include {
        start: usize,
        end: usize,
        path: Name,
    },
    /// Anything else the grammar accepts as a line (`list ruleset`, `add counter ...`): kept raw.
    Other {
        start: usize,
        end: usize,
        items: Vec<Item>,
    },
}

/// `{ ... }` of a table.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub struct TableBody {
    pub open: usize,
    pub close: usize,
    pub items: Vec<TableLine>,
}

#[derive(Clone, Debug)]
pub enum TableLine {
    Chain {
        start: usize,
        end: usize,
        name: Name,
        body: Group,
    },
    Set {
        start: usize,
        end: usize,
        is_map: bool,
        name: Name,
        body: Group,
    },
    /// Any other line (`flags ...`, `comment "..."`, `define ...`, `counter NAME { ... }`).
    Line(Line),
}
