//! The elements of a large `elements = { ... }` list (or `add element ... { ... }`) kept as packed tokens
//! instead of a token tree and an [`Expr`] each: the pre-pass packs the tokens of such a group (a tag, the
//! gap and length of its span as varints, then the value: ~10 bytes for `10.0.0.1,`), the converter checks
//! that every element parses, and [`Elements`] hands out each element's [`Expr`] when asked, parsed again
//! from its tokens by the same element parser (so it is the Expr the token tree would have given). A group
//! holding anything else (`{`, `(`, `[`) or an element that does not parse is unpacked into the token tree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::ast::Expr;
use crate::cst::Item;
use crate::lexer::Tok;

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Reads an unsigned LEB128 varint at `*at` (advancing it); `None` past the end or beyond 128 bits.
pub fn get_varint(buf: &[u8], at: &mut usize) -> Option<u128> {
    let mut v = 0u128;
    for shift in (0..128).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u128::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Tokens without a value, packed as their index here.
const PLAIN: &[Tok] = &[
    Tok::Comma,
    Tok::Colon,
    Tok::Dot,
    Tok::Slash,
    Tok::Minus,
    Tok::Plus,
    Tok::Star,
    Tok::Amp,
    Tok::Pipe,
    Tok::Caret,
    Tok::Shl,
    Tok::Shr,
    Tok::EqEq,
    Tok::Ne,
    Tok::Lt,
    Tok::Gt,
    Tok::Le,
    Tok::Ge,
    Tok::Bang,
    Tok::Assign,
    Tok::At,
    Tok::Dollar,
];
const NUM: u8 = 100;
const HEX: u8 = 101;
const TIME: u8 = 102;
const IPV4: u8 = 103;
const IPV6: u8 = 104;
const MAC: u8 = 105;
/// A word or keyword (its text in `strs`; keywords come back as their keyword token).
const WORD: u8 = 106;
const QUOTED: u8 = 107;

/// The tokens of one `{ ... }` element group, packed (newlines and `;` left out: inside the group they
/// only separate lines, which the element parser does not see).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Packed {
    bytes: Vec<u8>,
    /// Texts of words and strings, each once.
    strs: Vec<Box<str>>,
    /// Elements (known once the group is checked, [`Packed::seal`]).
    len: usize,
    /// Some token is a `$` (an element may name a define).
    dollar: bool,
}

/// Builds a [`Packed`] token by token.
#[derive(Default)]
pub(crate) struct Packer {
    packed: Packed,
    /// End of the last token packed.
    end: usize,
    interned: HashMap<Box<str>, u32>,
}

impl Packer {
    pub(crate) fn new(start: usize) -> Packer {
        Packer {
            end: start,
            ..Packer::default()
        }
    }

    /// Packs a token; `false` (nothing packed) for a token a packed group does not hold.
    pub(crate) fn push(&mut self, l: usize, t: &Tok, r: usize) -> bool {
        let text = |s: &str, p: &mut Packer| -> u32 {
            if let Some(&i) = p.interned.get(s) {
                return i;
            }
            let i = p.packed.strs.len() as u32;
            p.packed.strs.push(s.into());
            p.interned.insert(s.into(), i);
            i
        };
        let (tag, value): (u8, Option<u128>) = match t {
            Tok::Number { value, hex } => (if *hex { HEX } else { NUM }, Some(*value)),
            Tok::Time(ms) => (TIME, Some(u128::from(*ms))),
            Tok::Ipv4(a) => (IPV4, Some(u128::from(u32::from(*a)))),
            Tok::Ipv6(a) => (IPV6, Some(u128::from(*a))),
            Tok::Mac(m) => (
                MAC,
                Some(m.iter().fold(0u128, |v, b| (v << 8) | u128::from(*b))),
            ),
            Tok::Quoted(s) => (QUOTED, Some(u128::from(text(s, self)))),
            t => match (t.word(), PLAIN.iter().position(|p| p == t)) {
                (Some(w), _) => (WORD, Some(u128::from(text(w, self)))),
                (None, Some(i)) => (i as u8, None),
                (None, None) => return false,
            },
        };
        if l < self.end || r < l {
            return false;
        }
        self.packed.dollar |= *t == Tok::Dollar;
        let b = &mut self.packed.bytes;
        b.push(tag);
        put_varint(b, (l - self.end) as u128);
        put_varint(b, (r - l) as u128);
        if let Some(v) = value {
            match tag {
                IPV4 => b.extend_from_slice(&(v as u32).to_be_bytes()),
                IPV6 => b.extend_from_slice(&v.to_be_bytes()),
                _ => put_varint(b, v),
            }
        }
        self.end = r;
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.packed.bytes.is_empty()
    }

    pub(crate) fn finish(mut self) -> Packed {
        self.packed.bytes.shrink_to_fit();
        self.packed.strs.shrink_to_fit();
        self.packed
    }
}

impl Packed {
    /// Its tokens, in order, as the lexer gave them.
    pub(crate) fn tokens(&self, start: usize) -> Tokens<'_> {
        Tokens {
            p: self,
            at: 0,
            end: start,
        }
    }

    /// Its tokens as leaves, as the grammar would have made them.
    pub(crate) fn items(&self, start: usize) -> Vec<Item> {
        self.tokens(start)
            .map(|(l, t, r)| Item::Leaf(l, t, r))
            .collect()
    }

    /// Records the number of elements (every one parses).
    pub(crate) fn seal(&mut self, len: usize) {
        self.len = len;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held (tokens and texts), for measurements.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.strs.iter().map(|s| s.len() + 16).sum::<usize>()
    }
}

/// The tokens of a [`Packed`].
pub(crate) struct Tokens<'a> {
    p: &'a Packed,
    at: usize,
    end: usize,
}

impl Iterator for Tokens<'_> {
    type Item = (usize, Tok, usize);

    fn next(&mut self) -> Option<(usize, Tok, usize)> {
        let b = &self.p.bytes;
        let tag = *b.get(self.at)?;
        self.at += 1;
        let l = self.end + get_varint(b, &mut self.at)? as usize;
        let r = l + get_varint(b, &mut self.at)? as usize;
        self.end = r;
        let mut fixed = |n: usize| -> Option<&[u8]> {
            let s = b.get(self.at..self.at + n)?;
            self.at += n;
            Some(s)
        };
        let t = match tag {
            IPV4 => Tok::Ipv4(Ipv4Addr::from(<[u8; 4]>::try_from(fixed(4)?).ok()?)),
            IPV6 => Tok::Ipv6(Ipv6Addr::from(<[u8; 16]>::try_from(fixed(16)?).ok()?)),
            NUM | HEX | TIME | MAC | WORD | QUOTED => {
                let v = get_varint(b, &mut self.at)?;
                let s = || self.p.strs.get(v as usize);
                match tag {
                    NUM | HEX => Tok::Number {
                        value: v,
                        hex: tag == HEX,
                    },
                    TIME => Tok::Time(v as u64),
                    MAC => {
                        let x = v.to_be_bytes();
                        Tok::Mac(<[u8; 6]>::try_from(&x[10..]).ok()?)
                    }
                    WORD => {
                        let w = s()?;
                        match crate::lexer::KEYWORDS.iter().find(|(k, _)| **k == **w) {
                            Some((_, k)) => k.clone(),
                            None => Tok::Word(Arc::from(&**w)),
                        }
                    }
                    _ => Tok::Quoted(s()?.to_string()),
                }
            }
            i => PLAIN.get(usize::from(i))?.clone(),
        };
        Some((l, t, r))
    }
}

/// The elements of a named set (`elements = { ... }`) or of an `add element` command: their Exprs, or
/// for a large group of plain elements its packed tokens.
#[derive(Clone)]
pub enum Elements {
    Exprs(Vec<Expr>),
    /// The packed tokens and the offset of the group's `{`.
    Packed(Packed, usize),
}

impl Default for Elements {
    fn default() -> Self {
        Elements::Exprs(Vec::new())
    }
}

impl From<Vec<Expr>> for Elements {
    fn from(v: Vec<Expr>) -> Self {
        Elements::Exprs(v)
    }
}

impl Elements {
    pub fn len(&self) -> usize {
        match self {
            Elements::Exprs(v) => v.len(),
            Elements::Packed(p, _) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each element's Expr (a packed one parsed from its tokens as it comes).
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, Expr>> + '_ {
        let (exprs, packed) = match self {
            Elements::Exprs(v) => (&v[..], None),
            Elements::Packed(p, open) => (&[][..], Some(PackedExprs::new(p, *open))),
        };
        exprs
            .iter()
            .map(Cow::Borrowed)
            .chain(packed.into_iter().flatten().map(Cow::Owned))
    }

    /// Whether an element may name a define (`$name`): a packed list without a `$` names none.
    pub fn may_name_defines(&self) -> bool {
        match self {
            Elements::Exprs(_) => true,
            Elements::Packed(p, _) => p.dollar,
        }
    }

    /// The Exprs, unpacked first if packed.
    pub fn exprs_mut(&mut self) -> &mut Vec<Expr> {
        loop {
            match self {
                Elements::Exprs(v) => return v,
                Elements::Packed(..) => {
                    *self = Elements::Exprs(self.iter().map(Cow::into_owned).collect());
                }
            }
        }
    }

    /// The Exprs (unpacked if packed).
    pub fn to_vec(&self) -> Vec<Expr> {
        self.iter().map(Cow::into_owned).collect()
    }
}

impl std::fmt::Debug for Elements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Elements {
    fn eq(&self, o: &Elements) -> bool {
        self.len() == o.len() && self.iter().eq(o.iter())
    }
}

/// The elements of a packed group: the tokens up to each `,` parsed by the element parser.
pub(crate) struct PackedExprs<'a> {
    toks: Tokens<'a>,
    chunk: Vec<Item>,
    out: std::vec::IntoIter<Expr>,
    /// An element did not parse (the iteration stopped there).
    pub(crate) failed: bool,
}

impl<'a> PackedExprs<'a> {
    pub(crate) fn new(p: &'a Packed, open: usize) -> Self {
        PackedExprs {
            toks: p.tokens(open),
            chunk: Vec::new(),
            out: Vec::new().into_iter(),
            failed: false,
        }
    }
}

impl Iterator for PackedExprs<'_> {
    type Item = Expr;

    fn next(&mut self) -> Option<Expr> {
        loop {
            if let Some(e) = self.out.next() {
                return Some(e);
            }
            self.chunk.clear();
            for (l, t, r) in self.toks.by_ref() {
                if t == Tok::Comma {
                    break;
                }
                self.chunk.push(Item::Leaf(l, t, r));
            }
            if self.chunk.is_empty() {
                // `,,` or the end: the end once no token is left
                if self.toks.at >= self.toks.p.bytes.len() {
                    return None;
                }
                continue;
            }
            match crate::conv::parse_element_chunk(&self.chunk) {
                Ok(v) => self.out = v.into_iter(),
                Err(_) => {
                    self.failed = true;
                    return None;
                }
            }
        }
    }
}
