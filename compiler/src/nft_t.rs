//! Reader for nftables' `tests/py` `.t` files (format: NFTABLES.md §2), reusable by any test
//! that runs the nft test corpus (checker acceptance now, bytecode goldens later).
//!
//! [`TFile::parse`] reads a file's text; [`TFile::cases`] yields one self-contained `.nfr`
//! source per (test line × table), wrapping the rule in its table and chain together with
//! the sets and elements declared before it. No file IO here.

/// One `:name;spec` chain template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTemplate {
    pub name: String,
    /// e.g. `type filter hook input priority 0`
    pub spec: String,
}

/// One `*family;table;chain,chain` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableLine {
    pub family: String,
    pub name: String,
    pub chains: Vec<String>,
}

/// What a test line expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `;ok`, with the canonical form if the line gives one.
    Ok(Option<String>),
    Fail,
}

/// What a line tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// A rule.
    Rule(String),
    /// `!name spec`: a named set or map declaration.
    Set { name: String, spec: String },
    /// `?name elems`: elements added to a set.
    Elements { name: String, elems: String },
    /// `%name spec`: a stateful object (nfc does not model these).
    Object { name: String, spec: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestLine {
    /// 1-based line number in the `.t` file.
    pub lineno: usize,
    pub kind: LineKind,
    pub expect: Expect,
    /// Written with a leading `- ` (disabled in nftables' own runs).
    pub disabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TFile {
    pub chains: Vec<ChainTemplate>,
    pub tables: Vec<TableLine>,
    pub lines: Vec<TestLine>,
}

/// One runnable case: a line in one table, as `.nfr` source.
#[derive(Clone, Debug)]
pub struct Case<'a> {
    pub line: &'a TestLine,
    pub table: &'a TableLine,
    pub source: String,
}

fn split_expect(body: &str) -> Option<(String, Expect)> {
    // RULE;ok[;canonical] | RULE;fail — a `;` inside braces belongs to the rule
    // (`%h type ct helper { type "ftp" protocol tcp; };ok`).
    let mut depth = 0i32;
    let mut cuts = Vec::new();
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth <= 0 && cuts.len() < 2 => cuts.push(i),
            _ => {}
        }
    }
    let first = *cuts.first()?;
    let rule = body.get(..first)?.trim().to_string();
    let verdict = match cuts.get(1) {
        Some(&k) => body.get(first + 1..k)?,
        None => body.get(first + 1..)?,
    }
    .trim();
    let canonical = cuts.get(1).and_then(|&k| body.get(k + 1..));
    let expect = match verdict {
        "ok" => Expect::Ok(
            canonical
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        ),
        "fail" => Expect::Fail,
        _ => return None,
    };
    Some((rule, expect))
}

impl TFile {
    pub fn parse(text: &str) -> TFile {
        let mut f = TFile::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix(':') {
                if let Some((name, spec)) = rest.split_once(';') {
                    f.chains.push(ChainTemplate {
                        name: name.trim().into(),
                        spec: spec.trim().into(),
                    });
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix('*') {
                let p: Vec<&str> = rest.split(';').collect();
                if let [fam, name, chains] = p.as_slice() {
                    f.tables.push(TableLine {
                        family: fam.trim().into(),
                        name: name.trim().into(),
                        chains: chains.split(',').map(|c| c.trim().to_string()).collect(),
                    });
                }
                continue;
            }
            let (disabled, body) = match line.strip_prefix('-') {
                Some(r) => (true, r.trim_start()),
                None => (false, line),
            };
            let Some((what, expect)) = split_expect(body) else {
                continue;
            };
            let kind = if let Some(r) = what.strip_prefix('!') {
                let (name, spec) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
                LineKind::Set {
                    name: name.into(),
                    spec: spec.trim().into(),
                }
            } else if let Some(r) = what.strip_prefix('?') {
                let (name, elems) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
                LineKind::Elements {
                    name: name.into(),
                    elems: elems.trim().into(),
                }
            } else if let Some(r) = what.strip_prefix('%') {
                let (name, spec) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
                LineKind::Object {
                    name: name.into(),
                    spec: spec.trim().into(),
                }
            } else {
                LineKind::Rule(what)
            };
            f.lines.push(TestLine {
                lineno: i + 1,
                kind,
                expect,
                disabled,
            });
        }
        f
    }

    /// Turn a `!` set spec (`type ipv4_addr . inet_service : verdict flags interval timeout 60s`)
    /// into a set/map block.
    pub fn set_block(name: &str, spec: &str, elems: &[String]) -> String {
        const CLAUSES: [&str; 7] = [
            "flags",
            "timeout",
            "size",
            "policy",
            "gc-interval",
            "counter",
            "comment",
        ];
        let mut clauses: Vec<Vec<&str>> = Vec::new();
        for tok in spec.split_whitespace() {
            if clauses.is_empty() || CLAUSES.contains(&tok) {
                clauses.push(vec![tok]);
            } else if let Some(last) = clauses.last_mut() {
                last.push(tok);
            }
        }
        let is_map = clauses.first().is_some_and(|c| c.contains(&":"));
        let mut body: Vec<String> = clauses.iter().map(|c| c.join(" ")).collect();
        if !elems.is_empty() {
            body.push(format!("elements = {{ {} }}", elems.join(", ")));
        }
        format!(
            "{} {} {{ {}; }}",
            if is_map { "map" } else { "set" },
            name,
            body.join("; ")
        )
    }

    /// The `.nfr` source for `rule` (or none, for a set/elements line) in `table`, with the
    /// sets and elements of the lines before `upto` (index into `lines`) that expect `ok`.
    pub fn source(&self, table: &TableLine, upto: usize) -> String {
        let mut sets: Vec<(String, String, Vec<String>)> = Vec::new();
        // The objects nfc models (`%name type counter`, `%name type ct helper { ... }`), as table items.
        let mut objects: Vec<String> = Vec::new();
        let mut extra_line: Option<&TestLine> = None;
        for (i, l) in self.lines.iter().enumerate() {
            if i > upto {
                break;
            }
            let this = i == upto;
            if !this && (l.disabled || l.expect == Expect::Fail) {
                continue;
            }
            match &l.kind {
                LineKind::Set { name, spec } => {
                    sets.retain(|s| s.0 != *name);
                    sets.push((name.clone(), spec.clone(), vec![]));
                }
                LineKind::Elements { name, elems } => {
                    if let Some(s) = sets.iter_mut().find(|s| s.0 == *name) {
                        s.2.push(elems.clone());
                    } else if this {
                        // elements for an undeclared set: make the case reference it
                        extra_line = Some(l);
                    }
                }
                LineKind::Rule(_) if this => extra_line = Some(l),
                LineKind::Object { name, spec } if !this => {
                    if spec == "type counter" {
                        objects.push(format!("counter {name} {{\n\t}}"));
                    } else if let Some(body) = spec.strip_prefix("type ct helper") {
                        objects.push(format!("ct helper {name} {}", body.trim()));
                    }
                }
                _ => {}
            }
        }
        let mut out = format!("table {} {} {{\n", table.family, table.name);
        for o in &objects {
            out.push('\t');
            out.push_str(o);
            out.push('\n');
        }
        for (name, spec, elems) in &sets {
            out.push('\t');
            out.push_str(&TFile::set_block(name, spec, elems));
            out.push('\n');
        }
        let rule = match extra_line.map(|l| &l.kind) {
            Some(LineKind::Rule(r)) => Some(r.clone()),
            _ => None,
        };
        for c in &table.chains {
            let spec = self
                .chains
                .iter()
                .find(|t| t.name == *c)
                .map(|t| t.spec.clone())
                .unwrap_or_default();
            out.push_str(&format!("\tchain {c} {{\n"));
            if !spec.is_empty() {
                out.push_str(&format!("\t\t{spec};\n"));
            }
            if let Some(r) = &rule {
                out.push_str(&format!("\t\t{r}\n"));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        if let Some(LineKind::Elements { name, elems }) = extra_line.map(|l| &l.kind) {
            out.push_str(&format!(
                "add element {} {} {} {{ {} }}\n",
                table.family, table.name, name, elems
            ));
        }
        out
    }

    /// Every (line × table) case, tables filtered by `families` (e.g. `["ip", "ip6", "inet"]`).
    pub fn cases<'a>(&'a self, families: &[&str]) -> Vec<Case<'a>> {
        let mut out = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            for t in &self.tables {
                if !families.contains(&t.family.as_str()) {
                    continue;
                }
                out.push(Case {
                    line: l,
                    table: t,
                    source: self.source(t, i),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = ":input;type filter hook input priority 0\n\
        *ip;test-ip4;input\n*bridge;b;input\n\
        !set1 type ipv4_addr flags interval;ok\n?set1 10.0.0.0/8;ok\n\
        tcp dport 22;ok\n- ip hdrlength 10;ok\nip protocol 256;fail\n\
        tcp dport {telnet, http} accept;ok;tcp dport { 23, 80} accept\n";

    #[test]
    fn parses_lines() {
        let f = TFile::parse(T);
        assert_eq!(f.chains[0].spec, "type filter hook input priority 0");
        assert_eq!(f.tables.len(), 2);
        assert_eq!(f.lines.len(), 6);
        assert!(f.lines[3].disabled);
        assert_eq!(f.lines[4].expect, Expect::Fail);
        assert_eq!(
            f.lines[5].expect,
            Expect::Ok(Some("tcp dport { 23, 80} accept".into()))
        );
        assert_eq!(
            f.lines[0].kind,
            LineKind::Set {
                name: "set1".into(),
                spec: "type ipv4_addr flags interval".into()
            }
        );
    }

    #[test]
    fn wraps_rule_with_sets() {
        let f = TFile::parse(T);
        let cases = f.cases(&["ip"]);
        assert_eq!(cases.len(), 6);
        let src = &cases[2].source;
        assert!(
            src.contains("set set1 { type ipv4_addr; flags interval; elements = { 10.0.0.0/8 }; }"),
            "{src}"
        );
        assert!(
            src.contains(
                "chain input {\n\t\ttype filter hook input priority 0;\n\t\ttcp dport 22\n"
            ),
            "{src}"
        );
    }

    #[test]
    fn map_spec() {
        assert_eq!(
            TFile::set_block("m", "type ipv4_addr : verdict timeout 5s", &[]),
            "map m { type ipv4_addr : verdict; timeout 5s; }"
        );
    }
}

/// One record of a `.t.payload` file: the rule, the table/chain line, the anonymous-set
/// lines and the expressions (`[ ... ]` lines, brackets stripped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayloadRecord {
    pub rule: String,
    pub family: String,
    pub table: String,
    pub chain: String,
    pub set_lines: Vec<String>,
    pub exprs: Vec<String>,
}

/// Parse a `.t.payload[.family]` file (libnftnl debug format).
pub fn parse_payload(text: &str) -> Vec<PayloadRecord> {
    let mut out = Vec::new();
    let mut cur: Option<PayloadRecord> = None;
    for line in text.lines() {
        if let Some(rule) = line.strip_prefix("# ") {
            if let Some(r) = cur.take() {
                out.push(r);
            }
            cur = Some(PayloadRecord {
                rule: rule.trim().to_string(),
                ..PayloadRecord::default()
            });
            continue;
        }
        let Some(r) = cur.as_mut() else { continue };
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(e) = t.strip_prefix('[') {
            r.exprs.push(e.trim_end_matches(']').trim().to_string());
        } else if t.starts_with("__set") || t.starts_with("__map") || t.starts_with("element") {
            r.set_lines.push(t.to_string());
        } else {
            let mut w = t.split_whitespace();
            r.family = w.next().unwrap_or("").to_string();
            r.table = w.next().unwrap_or("").to_string();
            r.chain = w.next().unwrap_or("").to_string();
        }
    }
    if let Some(r) = cur.take() {
        out.push(r);
    }
    out
}

/// The `meta nfproto` / `meta l4proto` equality tests of a record, in order, as
/// (key, value): `[ meta load l4proto => reg 1 ]` + `[ cmp eq reg 1 0x00000006 ]` ⇒
/// `("l4proto", 6)`. Registers hold host-order (little-endian) words.
pub fn meta_proto_tests(rec: &PayloadRecord) -> Vec<(String, u8)> {
    let mut out = Vec::new();
    for w in rec.exprs.windows(2) {
        let Some(rest) = w[0].strip_prefix("meta load ") else {
            continue;
        };
        let mut p = rest.split_whitespace();
        let key = p.next().unwrap_or("");
        if key != "nfproto" && key != "l4proto" {
            continue;
        }
        let reg = rest.rsplit(' ').next().unwrap_or("");
        let Some(cmp) = w[1].strip_prefix(&format!("cmp eq reg {reg} 0x")) else {
            continue;
        };
        if let Ok(v) = u32::from_str_radix(cmp.trim(), 16) {
            out.push((key.to_string(), (v & 0xff) as u8));
        }
    }
    out
}

#[cfg(test)]
mod payload_tests {
    use super::*;

    #[test]
    fn reads_records_and_meta_tests() {
        let t = "# tcp dport { 22, 53 }\n__set%d test-inet 3\n__set%d test-inet 0\n\telement 00001600  : 0 [end]\n\
                 inet test-inet input\n  [ meta load l4proto => reg 1 ]\n  [ cmp eq reg 1 0x00000006 ]\n\
                 [ payload load 2b @ transport header + 2 => reg 1 ]\n\n# ip saddr 1.1.1.1\nip test-ip4 input\n\
                 [ payload load 4b @ network header + 12 => reg 1 ]\n";
        let r = parse_payload(t);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (
                r[0].family.as_str(),
                r[0].table.as_str(),
                r[0].chain.as_str()
            ),
            ("inet", "test-inet", "input")
        );
        assert_eq!(r[0].set_lines.len(), 3);
        assert_eq!(r[0].exprs.len(), 3);
        assert_eq!(meta_proto_tests(&r[0]), vec![("l4proto".to_string(), 6)]);
        assert!(meta_proto_tests(&r[1]).is_empty());
    }
}
