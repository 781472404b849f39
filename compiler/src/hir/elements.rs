//! A named set's elements, encoded one after the other in one byte vector instead of an [`Element`] each
//! (a `Vec` of key parts and three spans): a value's bytes in place, spans as varint gaps from the previous
//! element's (a part's span usually is its element's), types and made-up texts as indices into small side
//! tables, data other than values (verdicts, objects) beside them. Elements are read back in order
//! ([`Elements::iter`]), each as the [`Element`] that was pushed.

use std::borrow::Cow;

use nfr_grammar::packed::{get_varint, put_varint};

use super::{Bytes, ChainId, Element, KeyPart, MapData, Type, Value, Verdict, VerdictKind};
use crate::diag::{FileId, Span};

/// See the module documentation.
#[derive(Clone, Default)]
pub struct Elements {
    bytes: Vec<u8>,
    len: usize,
    tys: Vec<Type>,
    texts: Vec<Box<str>>,
    /// Data held as it is (verdicts, objects).
    others: Vec<MapData>,
    /// The last element's span start and file (the next one's is written relative to them).
    last: (u32, FileId),
}

const DATA_NONE: u8 = 0;
const DATA_VALUES: u8 = 1;
const DATA_OTHER: u8 = 2;
/// A verdict without operands but a chain (a code byte, the chain, the span).
const DATA_VERDICT: u8 = 3;
/// Head bit: the file differs from the previous element's (value: from its element's).
const NEW_FILE: u8 = 4;
/// Value head bit: its span is its element's.
const SAME_SPAN: u8 = 1;
const HAS_TEXT: u8 = 2;
/// Part kinds.
const VALUE: u8 = 0;
const PREFIX: u8 = 1;
const RANGE: u8 = 2;

/// The code of a verdict held in place, and its chain.
fn verdict_code(k: &VerdictKind) -> Option<(u8, Option<ChainId>)> {
    Some(match k {
        VerdictKind::Accept => (0, None),
        VerdictKind::Drop => (1, None),
        VerdictKind::Continue => (2, None),
        VerdictKind::Return => (3, None),
        VerdictKind::Jump(c) => (4, Some(*c)),
        VerdictKind::Goto(c) => (5, Some(*c)),
        VerdictKind::Queue { .. } | VerdictKind::Vmap { .. } => return None,
    })
}

fn zigzag(d: i64) -> u128 {
    u128::from(((d << 1) ^ (d >> 63)) as u64)
}

fn unzigzag(v: u128) -> i64 {
    let v = v as u64;
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

impl Elements {
    pub fn new() -> Elements {
        Elements::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held, for measurements.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.tys.capacity() * std::mem::size_of::<Type>()
            + self.others.capacity() * std::mem::size_of::<MapData>()
    }

    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.others.shrink_to_fit();
    }

    pub fn push(&mut self, e: &Element) {
        let (data, other) = match e.data.as_deref() {
            None => (DATA_NONE, None),
            Some(MapData::Value(_)) => (DATA_VALUES, None),
            Some(MapData::Verdict(v))
                if v.span.file == e.span.file && verdict_code(&v.kind).is_some() =>
            {
                (DATA_VERDICT, None)
            }
            Some(d) => (DATA_OTHER, Some(d.clone())),
        };
        let new_file = e.span.file != self.last.1;
        let nparts = e.key.len();
        let mut b = std::mem::take(&mut self.bytes);
        b.push(data | if new_file { NEW_FILE } else { 0 } | (nparts.min(31) as u8) << 3);
        if nparts >= 31 {
            put_varint(&mut b, nparts as u128);
        }
        if new_file {
            put_varint(&mut b, u128::from(e.span.file.0));
        }
        put_varint(
            &mut b,
            zigzag(i64::from(e.span.start) - i64::from(self.last.0)),
        );
        put_varint(&mut b, u128::from(e.span.end - e.span.start));
        for k in &e.key {
            self.put_part(&mut b, k, e.span);
        }
        match (e.data.as_deref(), other) {
            (Some(MapData::Value(parts)), _) => {
                put_varint(&mut b, parts.len() as u128);
                for k in parts {
                    self.put_part(&mut b, k, e.span);
                }
            }
            (_, Some(d)) => {
                put_varint(&mut b, self.others.len() as u128);
                self.others.push(d);
            }
            (Some(MapData::Verdict(v)), None) => {
                if let Some((code, chain)) = verdict_code(&v.kind) {
                    b.push(code);
                    if let Some(c) = chain {
                        put_varint(&mut b, u128::from(c.0));
                    }
                }
                put_varint(
                    &mut b,
                    zigzag(i64::from(v.span.start) - i64::from(e.span.start)),
                );
                put_varint(&mut b, u128::from(v.span.end.saturating_sub(v.span.start)));
            }
            _ => {}
        }
        self.bytes = b;
        self.last = (e.span.start, e.span.file);
        self.len += 1;
    }

    fn put_part(&mut self, b: &mut Vec<u8>, k: &KeyPart, at: Span) {
        match k {
            KeyPart::Value(v) => {
                b.push(VALUE);
                self.put_value(b, v, at);
            }
            KeyPart::Prefix { value, len } => {
                b.push(PREFIX);
                put_varint(b, u128::from(*len));
                self.put_value(b, value, at);
            }
            KeyPart::Range { lo, hi } => {
                b.push(RANGE);
                self.put_value(b, lo, at);
                self.put_value(b, hi, at);
            }
        }
    }

    fn put_value(&mut self, b: &mut Vec<u8>, v: &Value, at: Span) {
        let ty = match self.tys.iter().position(|t| *t == v.ty) {
            Some(i) => i,
            None => {
                self.tys.push(v.ty);
                self.tys.len() - 1
            }
        };
        let same = v.span == at;
        let new_file = v.span.file != at.file;
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let head = flag(same, SAME_SPAN)
            | flag(v.text.is_some(), HAS_TEXT)
            | flag(new_file, NEW_FILE)
            | ((ty.min(31) as u8) << 3);
        b.push(head);
        if ty >= 31 {
            put_varint(b, ty as u128);
        }
        put_varint(b, v.bytes.len() as u128);
        b.extend_from_slice(&v.bytes);
        if !same {
            if new_file {
                put_varint(b, u128::from(v.span.file.0));
            }
            put_varint(b, zigzag(i64::from(v.span.start) - i64::from(at.start)));
            put_varint(b, u128::from(v.span.end.saturating_sub(v.span.start)));
        }
        if let Some(t) = &v.text {
            put_varint(b, self.texts.len() as u128);
            self.texts.push(t.clone());
        }
    }

    /// The elements in the order they were pushed.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            s: self,
            at: 0,
            last: (0, FileId::default()),
        }
    }
}

/// See [`Elements::iter`].
pub struct Iter<'a> {
    s: &'a Elements,
    at: usize,
    last: (u32, FileId),
}

impl Iter<'_> {
    fn varint(&mut self) -> Option<u128> {
        get_varint(&self.s.bytes, &mut self.at)
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.s.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn part(&mut self, at: Span) -> Option<KeyPart> {
        Some(match self.byte()? {
            VALUE => KeyPart::Value(self.value(at)?),
            PREFIX => {
                let len = self.varint()? as u32;
                KeyPart::Prefix {
                    len,
                    value: self.value(at)?,
                }
            }
            _ => KeyPart::Range {
                lo: Box::new(self.value(at)?),
                hi: Box::new(self.value(at)?),
            },
        })
    }

    fn value(&mut self, at: Span) -> Option<Value> {
        let head = self.byte()?;
        let mut ty = usize::from(head >> 3);
        if ty >= 31 {
            ty = self.varint()? as usize;
        }
        let n = self.varint()? as usize;
        let bytes = Bytes::new(self.s.bytes.get(self.at..self.at + n)?);
        self.at += n;
        let span = if head & SAME_SPAN != 0 {
            at
        } else {
            let file = if head & NEW_FILE != 0 {
                FileId(self.varint()? as u32)
            } else {
                at.file
            };
            let start = (i64::from(at.start) + unzigzag(self.varint()?)) as u32;
            let end = start + self.varint()? as u32;
            Span { file, start, end }
        };
        let text = if head & HAS_TEXT != 0 {
            Some(self.s.texts.get(self.varint()? as usize)?.clone())
        } else {
            None
        };
        Some(Value {
            ty: *self.s.tys.get(ty)?,
            bytes,
            text,
            span,
        })
    }
}

impl Iterator for Iter<'_> {
    type Item = Element;

    fn next(&mut self) -> Option<Element> {
        let head = self.byte()?;
        let mut nparts = usize::from(head >> 3);
        if nparts >= 31 {
            nparts = self.varint()? as usize;
        }
        let file = if head & NEW_FILE != 0 {
            FileId(self.varint()? as u32)
        } else {
            self.last.1
        };
        let start = (i64::from(self.last.0) + unzigzag(self.varint()?)) as u32;
        let end = start + self.varint()? as u32;
        let span = Span { file, start, end };
        self.last = (start, file);
        let mut key = Vec::with_capacity(nparts);
        for _ in 0..nparts {
            key.push(self.part(span)?);
        }
        let data = match head & 3 {
            DATA_VALUES => {
                let n = self.varint()? as usize;
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(self.part(span)?);
                }
                Some(Box::new(MapData::Value(parts)))
            }
            DATA_OTHER => Some(Box::new(
                self.s.others.get(self.varint()? as usize)?.clone(),
            )),
            DATA_VERDICT => {
                let code = self.byte()?;
                let mut chain = || self.varint().map(|c| ChainId(c as u32));
                let kind = match code {
                    0 => VerdictKind::Accept,
                    1 => VerdictKind::Drop,
                    2 => VerdictKind::Continue,
                    3 => VerdictKind::Return,
                    4 => VerdictKind::Jump(chain()?),
                    _ => VerdictKind::Goto(chain()?),
                };
                let start = (i64::from(start) + unzigzag(self.varint()?)) as u32;
                let end = start + self.varint()? as u32;
                let span = Span { file, start, end };
                Some(Box::new(MapData::Verdict(Verdict { kind, span })))
            }
            _ => None,
        };
        Some(Element { key, data, span })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.s.len))
    }
}

impl<'a> IntoIterator for &'a Elements {
    type Item = Element;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl From<Vec<Element>> for Elements {
    fn from(v: Vec<Element>) -> Elements {
        let mut s = Elements::new();
        for e in &v {
            s.push(e);
        }
        s.shrink_to_fit();
        s
    }
}

impl FromIterator<Element> for Elements {
    fn from_iter<I: IntoIterator<Item = Element>>(it: I) -> Elements {
        let mut s = Elements::new();
        for e in it {
            s.push(&e);
        }
        s.shrink_to_fit();
        s
    }
}

impl PartialEq for Elements {
    fn eq(&self, o: &Elements) -> bool {
        self.len == o.len && self.iter().eq(o.iter())
    }
}

impl Eq for Elements {}

impl std::fmt::Debug for Elements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A set's elements wherever they are held: a named set's [`Elements`], an anonymous set's list.
#[derive(Clone, Copy)]
pub enum ElementsRef<'a> {
    Encoded(&'a Elements),
    List(&'a [Element]),
}

impl<'a> ElementsRef<'a> {
    pub fn len(self) -> usize {
        match self {
            ElementsRef::Encoded(e) => e.len(),
            ElementsRef::List(l) => l.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    pub fn iter(self) -> Box<dyn Iterator<Item = Cow<'a, Element>> + 'a> {
        match self {
            ElementsRef::Encoded(e) => Box::new(e.iter().map(Cow::Owned)),
            ElementsRef::List(l) => Box::new(l.iter().map(Cow::Borrowed)),
        }
    }
}

impl<'a> From<&'a Elements> for ElementsRef<'a> {
    fn from(e: &'a Elements) -> Self {
        ElementsRef::Encoded(e)
    }
}

impl<'a> From<&'a [Element]> for ElementsRef<'a> {
    fn from(l: &'a [Element]) -> Self {
        ElementsRef::List(l)
    }
}

impl<'a> From<&'a Vec<Element>> for ElementsRef<'a> {
    fn from(l: &'a Vec<Element>) -> Self {
        ElementsRef::List(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(b: &[u8], file: u32, start: u32, end: u32, text: Option<&str>) -> Value {
        Value {
            ty: Type::Ipv4Addr,
            bytes: Bytes::new(b),
            text: text.map(Into::into),
            span: Span {
                file: FileId(file),
                start,
                end,
            },
        }
    }

    #[test]
    fn elements_read_back_as_pushed() {
        let at = |file, start, end| Span {
            file: FileId(file),
            start,
            end,
        };
        let els = vec![
            Element {
                key: vec![KeyPart::Value(v(&[10, 0, 0, 1], 0, 100, 108, None))],
                data: None,
                span: at(0, 100, 108),
            },
            // backwards, another file, a made-up text, a prefix and a range, value data
            Element {
                key: vec![
                    KeyPart::Prefix {
                        value: v(&[10, 0, 0, 0], 2, 40, 48, Some("ten")),
                        len: 8,
                    },
                    KeyPart::Range {
                        lo: Box::new(v(&[1; 20], 2, 50, 51, None)),
                        hi: Box::new(v(&[2; 20], 1, 52, 53, None)),
                    },
                ],
                data: Some(Box::new(MapData::Value(vec![KeyPart::Value(v(
                    &[7],
                    2,
                    60,
                    61,
                    None,
                ))]))),
                span: at(2, 40, 61),
            },
            Element {
                key: Vec::new(),
                data: Some(Box::new(MapData::Object(super::super::ObjTarget::Counter(
                    3,
                )))),
                span: at(2, 0, 1),
            },
            Element {
                key: vec![KeyPart::Value(v(&[1], 2, 70, 71, None))],
                data: Some(Box::new(MapData::Verdict(Verdict {
                    kind: VerdictKind::Goto(ChainId(300)),
                    span: at(2, 74, 82),
                }))),
                span: at(2, 70, 82),
            },
            Element {
                key: vec![KeyPart::Value(v(&[2], 2, 90, 91, None))],
                data: Some(Box::new(MapData::Verdict(Verdict {
                    kind: VerdictKind::Drop,
                    span: at(2, 94, 98),
                }))),
                span: at(2, 90, 98),
            },
        ];
        let s = Elements::from(els.clone());
        assert_eq!(s.len(), 5);
        assert_eq!(s.others.len(), 1, "verdicts in place");
        assert_eq!(s.iter().collect::<Vec<_>>(), els);
        // a plain address in 11 bytes: head, span start (100: two bytes) and length, part kind, value head,
        // length, bytes
        let one = Elements::from(vec![els[0].clone()]);
        assert_eq!(one.bytes.len(), 11);
    }
}
