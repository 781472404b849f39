//! The logos lexer: `.nfr` text → tokens with byte spans.
//!
//! Tokens follow nftables' `src/scanner.l` where it matters: identifiers may contain `-`, `.`,
//! `/` and `_` after the first character (`echo-request`, `kbytes/second`), `#` comments run to
//! end of line, a backslash-newline continues a line, IPv4/IPv6/MAC addresses and times
//! (`1d2h3m4s5ms`) are single tokens. Newlines are tokens (they end statements). Structural
//! keywords (`table`, `chain`, `set`, `type`, ...) are distinct tokens so the lalrpop grammar can
//! see them; the rule parser treats them as words where a rule uses them (`meta mark set 1`).
//!
//! Lexical errors are returned as [`Tok::Error`] tokens with their span; the parser reports them.

use logos::Logos;
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Raw logos token (internal; converted into [`Tok`]).
#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(skip r"[ \t\r\f\u{feff}]+")]
#[logos(skip r"\\\r?\n")]
enum Raw {
    #[token("\n")]
    Newline,
    #[regex(r"#[^\n]*", allow_greedy = true)]
    Comment,
    #[token(";")]
    Semi,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(".")]
    Dot,
    #[token("/")]
    Slash,
    #[token("-")]
    Minus,
    #[token("+")]
    Plus,
    #[token("*")]
    Star,
    #[token("&")]
    Amp,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("<<")]
    Shl,
    #[token(">>")]
    Shr,
    #[token("==")]
    EqEq,
    #[token("!=")]
    Ne,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("!")]
    Bang,
    #[token("=")]
    Assign,
    #[token("@")]
    At,
    #[token("$")]
    Dollar,
    #[regex(r"[0-9]+", priority = 3)]
    Dec,
    #[regex(r"0[xX][0-9a-fA-F]+")]
    Hex,
    #[regex(r"([0-9]+(d|h|m|s|ms))+")]
    Time,
    #[regex(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")]
    Ipv4,
    // IPv6 (RFC 4291 text forms incl. `::`, `::ffff:1.2.3.4`) and MAC addresses share one
    // pattern: hex groups separated by at least two colons; the callback decides.
    #[regex(r"[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}(\.[0-9]+)*")]
    ColonAddr,
    #[regex(r#""[^"\n]*""#)]
    Quoted,
    #[regex(r#""[^"\n]*"#)]
    Unterminated,
    #[regex(r"[a-zA-Z_][a-zA-Z0-9_\-./]*")]
    Word,
}

/// Parser tokens. `Word` carries identifiers; keyword variants exist for the structural words
/// the lalrpop grammar needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Newline,
    Semi,
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Dot,
    Slash,
    Minus,
    Plus,
    Star,
    Amp,
    Pipe,
    Caret,
    Shl,
    Shr,
    EqEq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Bang,
    Assign,
    At,
    Dollar,
    /// A number (decimal or `0x` hex).
    Number {
        value: u128,
        hex: bool,
    },
    /// A time literal in milliseconds.
    Time(u64),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Mac([u8; 6]),
    /// A quoted string without its quotes.
    Quoted(String),
    /// (Each distinct word of a source shares one block: see [`tokens`].)
    Word(Arc<str>),
    // Structural keywords.
    KwTable,
    KwChain,
    KwSet,
    KwMap,
    KwFlush,
    KwRuleset,
    KwAdd,
    KwCreate,
    KwInsert,
    KwDelete,
    KwDestroy,
    KwReplace,
    KwList,
    KwRule,
    KwElement,
    KwDefine,
    KwRedefine,
    KwUndefine,
    KwInclude,
    KwType,
    KwTypeof,
    KwHook,
    KwDevice,
    KwDevices,
    KwPriority,
    KwPolicy,
    KwFlags,
    KwElements,
    KwTimeout,
    KwGcInterval,
    KwSize,
    KwAutoMerge,
    KwComment,
    KwCounter,
    KwFlowtable,
    KwQuota,
    KwLimit,
    KwCt,
    KwSecmark,
    KwSynproxy,
    /// A `#` comment (text after `#`, trailing whitespace removed). The pre-pass takes these out
    /// of the token stream; the parser never sees them.
    Comment(String),
    /// A lexical error (message).
    Error(String),
}

/// Keyword table: spelling ↔ token.
pub const KEYWORDS: &[(&str, Tok)] = &[
    ("table", Tok::KwTable),
    ("chain", Tok::KwChain),
    ("set", Tok::KwSet),
    ("map", Tok::KwMap),
    ("flush", Tok::KwFlush),
    ("ruleset", Tok::KwRuleset),
    ("add", Tok::KwAdd),
    ("create", Tok::KwCreate),
    ("insert", Tok::KwInsert),
    ("delete", Tok::KwDelete),
    ("destroy", Tok::KwDestroy),
    ("replace", Tok::KwReplace),
    ("list", Tok::KwList),
    ("rule", Tok::KwRule),
    ("element", Tok::KwElement),
    ("define", Tok::KwDefine),
    ("redefine", Tok::KwRedefine),
    ("undefine", Tok::KwUndefine),
    ("include", Tok::KwInclude),
    ("type", Tok::KwType),
    ("typeof", Tok::KwTypeof),
    ("hook", Tok::KwHook),
    ("device", Tok::KwDevice),
    ("devices", Tok::KwDevices),
    ("priority", Tok::KwPriority),
    ("policy", Tok::KwPolicy),
    ("flags", Tok::KwFlags),
    ("elements", Tok::KwElements),
    ("timeout", Tok::KwTimeout),
    ("gc-interval", Tok::KwGcInterval),
    ("size", Tok::KwSize),
    ("auto-merge", Tok::KwAutoMerge),
    ("comment", Tok::KwComment),
    ("counter", Tok::KwCounter),
    ("flowtable", Tok::KwFlowtable),
    ("quota", Tok::KwQuota),
    ("limit", Tok::KwLimit),
    ("ct", Tok::KwCt),
    ("secmark", Tok::KwSecmark),
    ("synproxy", Tok::KwSynproxy),
];

impl Tok {
    /// The word this token stands for, if it is a word or a keyword.
    pub fn word(&self) -> Option<&str> {
        match self {
            Tok::Word(w) => Some(w.as_ref()),
            t => KEYWORDS.iter().find(|(_, k)| k == t).map(|(s, _)| *s),
        }
    }

    /// Short description for "expected ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Newline => "newline".into(),
            Tok::Number { .. } => "number".into(),
            Tok::Time(_) => "time".into(),
            Tok::Ipv4(_) => "IPv4 address".into(),
            Tok::Ipv6(_) => "IPv6 address".into(),
            Tok::Mac(_) => "MAC address".into(),
            Tok::Quoted(_) => "string".into(),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Error(m) => m.clone(),
            t => match t.word() {
                Some(w) => format!("`{w}`"),
                None => format!("`{}`", punct_str(t)),
            },
        }
    }
}

/// Spelling of a punctuation token.
pub fn punct_str(t: &Tok) -> &'static str {
    match t {
        Tok::Semi => ";",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::Comma => ",",
        Tok::Colon => ":",
        Tok::Dot => ".",
        Tok::Slash => "/",
        Tok::Minus => "-",
        Tok::Plus => "+",
        Tok::Star => "*",
        Tok::Amp => "&",
        Tok::Pipe => "|",
        Tok::Caret => "^",
        Tok::Shl => "<<",
        Tok::Shr => ">>",
        Tok::EqEq => "==",
        Tok::Ne => "!=",
        Tok::Lt => "<",
        Tok::Gt => ">",
        Tok::Le => "<=",
        Tok::Ge => ">=",
        Tok::Bang => "!",
        Tok::Assign => "=",
        Tok::At => "@",
        Tok::Dollar => "$",
        _ => "?",
    }
}

/// Parse a time literal like `1d2h3m4s5ms` into milliseconds (saturating).
pub fn parse_time(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let b = s.as_bytes();
    let mut i = 0;
    let mut any = false;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: u64 = s.get(start..i)?.parse().ok()?;
        let mult = if s.get(i..i + 2) == Some("ms") {
            i += 2;
            1
        } else {
            let m = match b.get(i)? {
                b'd' => 86_400_000,
                b'h' => 3_600_000,
                b'm' => 60_000,
                b's' => 1000,
                _ => return None,
            };
            i += 1;
            m
        };
        total = total.saturating_add(n.saturating_mul(mult));
        any = true;
    }
    any.then_some(total)
}

fn colon_addr(s: &str) -> Tok {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 6 && parts.iter().all(|p| !p.is_empty() && p.len() <= 2) {
        let mut mac = [0u8; 6];
        for (m, p) in mac.iter_mut().zip(&parts) {
            match u8::from_str_radix(p, 16) {
                Ok(v) => *m = v,
                Err(_) => return Tok::Error(format!("invalid MAC address `{s}`")),
            }
        }
        return Tok::Mac(mac);
    }
    match s.parse::<Ipv6Addr>() {
        Ok(a) => Tok::Ipv6(a),
        Err(_) => Tok::Error(format!("invalid IPv6 address `{s}`")),
    }
}

/// A token with its byte span (start, end).
pub type Spanned = (usize, Tok, usize);

/// Lex the whole source. Never fails: bad input becomes [`Tok::Error`] tokens.
pub fn lex(src: &str) -> Vec<Spanned> {
    tokens(src).collect()
}

/// The tokens of `src` one by one (no vector of them all: a consumer that keeps only some holds only those).
/// The words share a block each (`ip`, `saddr`: a block a word, ~5 a rule, would sit between the token
/// lines and keep the blocks freed as the lines are converted apart).
pub fn tokens(src: &str) -> impl Iterator<Item = Spanned> + '_ {
    let mut lx = Raw::lexer(src);
    let mut words: HashSet<Arc<str>> = HashSet::new();
    std::iter::from_fn(move || {
        let r = lx.next()?;
        let span = lx.span();
        let text = lx.slice();
        let tok = match r {
            Err(()) => Tok::Error(format!(
                "unexpected character `{}`",
                text.chars()
                    .next()
                    .map(|c| c.escape_debug().to_string())
                    .unwrap_or_default()
            )),
            Ok(raw) => match raw {
                Raw::Newline => Tok::Newline,
                Raw::Comment => Tok::Comment(text.get(1..).unwrap_or("").trim_end().to_string()),
                Raw::Semi => Tok::Semi,
                Raw::LBrace => Tok::LBrace,
                Raw::RBrace => Tok::RBrace,
                Raw::LParen => Tok::LParen,
                Raw::RParen => Tok::RParen,
                Raw::LBracket => Tok::LBracket,
                Raw::RBracket => Tok::RBracket,
                Raw::Comma => Tok::Comma,
                Raw::Colon => Tok::Colon,
                Raw::Dot => Tok::Dot,
                Raw::Slash => Tok::Slash,
                Raw::Minus => Tok::Minus,
                Raw::Plus => Tok::Plus,
                Raw::Star => Tok::Star,
                Raw::Amp => Tok::Amp,
                Raw::Pipe => Tok::Pipe,
                Raw::Caret => Tok::Caret,
                Raw::Shl => Tok::Shl,
                Raw::Shr => Tok::Shr,
                Raw::EqEq => Tok::EqEq,
                Raw::Ne => Tok::Ne,
                Raw::Lt => Tok::Lt,
                Raw::Gt => Tok::Gt,
                Raw::Le => Tok::Le,
                Raw::Ge => Tok::Ge,
                Raw::Bang => Tok::Bang,
                Raw::Assign => Tok::Assign,
                Raw::At => Tok::At,
                Raw::Dollar => Tok::Dollar,
                Raw::Dec => match text.parse::<u128>() {
                    Ok(v) => Tok::Number {
                        value: v,
                        hex: false,
                    },
                    Err(_) => Tok::Error(format!("number `{text}` is too large")),
                },
                Raw::Hex => match text.get(2..).and_then(|h| u128::from_str_radix(h, 16).ok()) {
                    Some(v) => Tok::Number {
                        value: v,
                        hex: true,
                    },
                    None => Tok::Error(format!("number `{text}` is too large")),
                },
                Raw::Time => match parse_time(text) {
                    Some(ms) => Tok::Time(ms),
                    None => Tok::Error(format!("invalid time `{text}`")),
                },
                Raw::Ipv4 => match text.parse::<Ipv4Addr>() {
                    Ok(a) => Tok::Ipv4(a),
                    Err(_) => Tok::Error(format!("invalid IPv4 address `{text}`")),
                },
                Raw::ColonAddr => colon_addr(text),
                // nft refuses a NUL in a string (interface names, prefixes and comments are C strings)
                Raw::Quoted if text.contains('\0') => {
                    Tok::Error("a string cannot contain a NUL byte".into())
                }
                Raw::Quoted => Tok::Quoted(text.get(1..text.len() - 1).unwrap_or("").to_string()),
                Raw::Unterminated => Tok::Error("unterminated string".into()),
                Raw::Word => match KEYWORDS.iter().find(|(k, _)| *k == text) {
                    Some((_, t)) => t.clone(),
                    None => Tok::Word(match words.get(text) {
                        Some(w) => Arc::clone(w),
                        None => {
                            let w: Arc<str> = text.into();
                            words.insert(Arc::clone(&w));
                            w
                        }
                    }),
                },
            },
        };
        Some((span.start, tok, span.end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).into_iter().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(toks("::1"), vec![Tok::Ipv6("::1".parse().unwrap())]);
        assert_eq!(
            toks("fe80::/64"),
            vec![
                Tok::Ipv6("fe80::".parse().unwrap()),
                Tok::Slash,
                Tok::Number {
                    value: 64,
                    hex: false
                }
            ]
        );
        assert_eq!(
            toks("::ffff:1.2.3.4"),
            vec![Tok::Ipv6("::ffff:1.2.3.4".parse().unwrap())]
        );
        assert_eq!(
            toks("2001:db8:0:0:0:0:0:1"),
            vec![Tok::Ipv6("2001:db8::1".parse().unwrap())]
        );
        assert_eq!(toks("::"), vec![Tok::Ipv6(Ipv6Addr::UNSPECIFIED)]);
        assert_eq!(
            toks("00:11:22:33:44:aa"),
            vec![Tok::Mac([0, 0x11, 0x22, 0x33, 0x44, 0xaa])]
        );
        assert!(matches!(toks("1::2::3")[0], Tok::Error(_)));
        // A single colon is a map separator, not an address.
        assert_eq!(
            toks("22:accept"),
            vec![
                Tok::Number {
                    value: 22,
                    hex: false
                },
                Tok::Colon,
                Tok::Word("accept".into())
            ]
        );
        // `dead` is a word, `dead::1` an address.
        assert_eq!(toks("dead"), vec![Tok::Word("dead".into())]);
        assert_eq!(toks("dead::1"), vec![Tok::Ipv6("dead::1".parse().unwrap())]);
    }

    #[test]
    fn times_numbers_strings() {
        assert_eq!(
            toks("1d2h3m4s5ms"),
            vec![Tok::Time(86_400_000 + 7_200_000 + 180_000 + 4000 + 5)]
        );
        assert_eq!(toks("10s"), vec![Tok::Time(10_000)]);
        assert_eq!(
            toks("0x10"),
            vec![Tok::Number {
                value: 16,
                hex: true
            }]
        );
        assert_eq!(toks("\"eth*\""), vec![Tok::Quoted("eth*".into())]);
        assert!(matches!(toks("\"abc")[0], Tok::Error(_)));
        assert_eq!(
            toks("1.2.3.4-1.2.3.5"),
            vec![
                Tok::Ipv4([1, 2, 3, 4].into()),
                Tok::Minus,
                Tok::Ipv4([1, 2, 3, 5].into())
            ]
        );
    }

    #[test]
    fn words_keywords_comments() {
        assert_eq!(
            toks("table ip echo-request # x\n;"),
            vec![
                Tok::KwTable,
                Tok::Word("ip".into()),
                Tok::Word("echo-request".into()),
                Tok::Comment(" x".into()),
                Tok::Newline,
                Tok::Semi
            ]
        );
        assert_eq!(
            toks("a \\\n b"),
            vec![Tok::Word("a".into()), Tok::Word("b".into())]
        );
        assert_eq!(
            toks("\u{feff}a\r\n"),
            vec![Tok::Word("a".into()), Tok::Newline]
        );
        let t = lex("x ~");
        assert_eq!(t[1].0, 2);
        assert!(matches!(t[1].1, Tok::Error(_)));
    }
}
