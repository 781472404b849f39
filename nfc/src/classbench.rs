//! `nfc import classbench RULES [TRACE] [-o OUT.nfr] [--pcap OUT.pcap]`: a ClassBench filter set as a `.nfr`
//! ruleset and its trace as a capture. The ruleset is one `table ip filter` with one base chain `input` (policy
//! drop) holding one rule per filter, in file order, so the first match wins as in ClassBench; each rule is
//! written as a user would write it and keeps a `counter`. Both filter formats are read: Song's
//! (`@sip/len dip/len sp_lo : sp_hi dp_lo : dp_hi proto/mask`, spaces) and db_generator's (tabs, plus a trailing
//! `0xVVVV/0xMMMM` field whose high byte is the TCP flags for TCP and the ICMP type, low byte the ICMP code, for
//! ICMP). The trace (`sip dip sport dport proto filter_no`, decimal) becomes one raw IPv4 packet per line
//! (LINKTYPE_RAW). Every malformed line is reported as `file:line`, and then nothing is written (exit 1).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use nfr_runtime::pcap::linktype;
use nfr_runtime::wire::build;

use crate::Outcome;
use crate::run::pcapw::PcapWriter;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The filter set: Song's format (`@sip/len dip/len sp_lo : sp_hi dp_lo : dp_hi proto/mask`) or
    /// db_generator's (tab-separated, with a trailing `0xVVVV/0xMMMM` flags field).
    rules: PathBuf,
    /// The trace (`sip dip sport dport proto filter_no`, decimal), written as a capture of raw IPv4 packets.
    trace: Option<PathBuf>,
    /// Write the ruleset to this file (default: stdout).
    #[arg(short, long, value_name = "OUT.nfr")]
    output: Option<PathBuf>,
    /// Write the trace's packets to this pcap (default: OUT with the extension `.pcap`).
    #[arg(long, value_name = "OUT.pcap", requires = "trace")]
    pcap: Option<PathBuf>,
}

/// One ClassBench filter. Prefix addresses are masked to their length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    pub src: (Ipv4Addr, u8),
    pub dst: (Ipv4Addr, u8),
    pub sport: (u16, u16),
    pub dport: (u16, u16),
    /// (value, mask).
    pub proto: (u8, u8),
    /// (value, mask); (0, 0) in Song's format.
    pub flags: (u16, u16),
}

/// One trace line: a packet's 5-tuple and the filter it was generated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracePkt {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub filter: Option<u32>,
}

/// A decimal or `0x` hexadecimal number no larger than `max`.
fn number(s: &str, max: u32) -> Option<u32> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok()?,
        None => s.parse::<u32>().ok()?,
    };
    (v <= max).then_some(v)
}

fn prefix(what: &str, s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("{what} `{s}` is not ADDRESS/LENGTH"))?;
    let addr: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("{what} `{s}`: `{a}` is not an IPv4 address"))?;
    let len = l
        .parse::<u8>()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("{what} `{s}`: the prefix length must be 0-32"))?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ok((Ipv4Addr::from(u32::from(addr) & mask), len))
}

fn port_range(what: &str, lo: &str, hi: &str) -> Result<(u16, u16), String> {
    let p = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("{what} `{s}` is not a port (0-65535)"))
    };
    let (l, h) = (p(lo)?, p(hi)?);
    if l > h {
        return Err(format!("{what} range {l} : {h} is empty (low > high)"));
    }
    Ok((l, h))
}

fn masked(what: &str, s: &str, max: u32) -> Result<(u32, u32), String> {
    let (v, m) = s
        .split_once('/')
        .ok_or_else(|| format!("{what} `{s}` is not VALUE/MASK"))?;
    let bad = || format!("{what} `{s}`: value and mask must be numbers 0-{max:#x}");
    Ok((
        number(v, max).ok_or_else(bad)?,
        number(m, max).ok_or_else(bad)?,
    ))
}

/// Parses one filter line (without its line number).
pub fn parse_filter(line: &str) -> Result<Filter, String> {
    let body = line
        .trim()
        .strip_prefix('@')
        .ok_or("a filter line starts with `@`")?;
    // `lo:hi` and `lo : hi` alike.
    let spaced = body.replace(':', " : ");
    let t: Vec<&str> = spaced.split_whitespace().collect();
    if !(t.len() == 9 || t.len() == 10) || t[3] != ":" || t[6] != ":" {
        return Err(format!(
            "expected `@sip/len dip/len sp_lo : sp_hi dp_lo : dp_hi proto/mask [flags/mask]`, found {} field(s)",
            t.len()
        ));
    }
    let (pv, pm) = masked("protocol", t[8], 0xff)?;
    let flags = match t.get(9) {
        Some(f) => masked("flags", f, 0xffff)?,
        None => (0, 0),
    };
    Ok(Filter {
        src: prefix("source prefix", t[0])?,
        dst: prefix("destination prefix", t[1])?,
        sport: port_range("source port", t[2], t[4])?,
        dport: port_range("destination port", t[5], t[7])?,
        proto: (pv as u8, pm as u8),
        flags: (flags.0 as u16, flags.1 as u16),
    })
}

/// Parses one trace line.
pub fn parse_trace(line: &str) -> Result<TracePkt, String> {
    let t: Vec<&str> = line.split_whitespace().collect();
    if !(t.len() == 5 || t.len() == 6) {
        return Err(format!(
            "expected `sip dip sport dport proto filter_no` (decimal), found {} field(s)",
            t.len()
        ));
    }
    let num = |what: &str, s: &str, max: u32| {
        s.parse::<u32>()
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| format!("{what} `{s}` is not a decimal number 0-{max}"))
    };
    Ok(TracePkt {
        src: Ipv4Addr::from(num("source address", t[0], u32::MAX)?),
        dst: Ipv4Addr::from(num("destination address", t[1], u32::MAX)?),
        sport: num("source port", t[2], 0xffff)? as u16,
        dport: num("destination port", t[3], 0xffff)? as u16,
        proto: num("protocol", t[4], 0xff)? as u8,
        filter: t
            .get(5)
            .map(|s| num("filter number", s, u32::MAX))
            .transpose()?,
    })
}

const TCP_FLAGS: [&str; 8] = ["fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"];

/// `syn`, `(syn | ack)`, or `0x0` for no flag.
fn tcp_flag_expr(bits: u8) -> String {
    let names: Vec<&str> = (0..8)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| TCP_FLAGS[i])
        .collect();
    match names.len() {
        0 => "0x0".to_string(),
        1 => names[0].to_string(),
        _ => format!("({})", names.join(" | ")),
    }
}

/// `KEY N` for a full mask, `KEY & M == V` otherwise (nothing for an empty mask).
fn masked_match(key: &str, v: u8, m: u8) -> Option<String> {
    match m {
        0 => None,
        0xff => Some(format!("{key} {v}")),
        _ => Some(format!("{key} & {m:#04x} == {:#04x}", v & m)),
    }
}

fn ports(a: (u16, u16)) -> Option<String> {
    match a {
        (0, 0xffff) => None,
        (l, h) if l == h => Some(l.to_string()),
        (l, h) => Some(format!("{l}-{h}")),
    }
}

fn addr(a: (Ipv4Addr, u8)) -> Option<String> {
    match a.1 {
        0 => None,
        32 => Some(a.0.to_string()),
        l => Some(format!("{}/{l}", a.0)),
    }
}

/// The rule for a filter, as a user would write it; `Err` says why a filter has no exact nft form. A protocol
/// and ports become `tcp sport/dport` or `udp sport/dport` (which imply the protocol, and lower to iptables),
/// `th sport/dport` for any other protocol; a protocol without ports is `meta l4proto N`; a partial protocol
/// mask is `meta l4proto & M == V`. A non-zero flags mask is `tcp flags & M == V` for TCP and `icmp type` /
/// `icmp code` for ICMP; values are taken under their mask, as ClassBench compares them.
pub fn rule_text(f: &Filter) -> Result<String, String> {
    let mut m: Vec<String> = Vec::new();
    m.extend(addr(f.src).map(|a| format!("ip saddr {a}")));
    m.extend(addr(f.dst).map(|a| format!("ip daddr {a}")));
    let exact = (f.proto.1 == 0xff).then_some(f.proto.0);
    let (sp, dp) = (ports(f.sport), ports(f.dport));
    let (fv, fm) = f.flags;
    let kw = match exact {
        Some(6) => "tcp",
        Some(17) => "udp",
        _ => "th",
    };
    // `meta l4proto` goes when a `tcp`/`udp`/`icmp` match that follows implies it.
    let implied = match exact {
        Some(6 | 17) => sp.is_some() || dp.is_some() || (exact == Some(6) && fm != 0),
        Some(1) => fm != 0 && sp.is_none() && dp.is_none(),
        _ => false,
    };
    if !implied {
        m.extend(masked_match("meta l4proto", f.proto.0, f.proto.1));
    }
    m.extend(sp.map(|p| format!("{kw} sport {p}")));
    m.extend(dp.map(|p| format!("{kw} dport {p}")));
    if fm != 0 {
        let (hv, hm, lv, lm) = ((fv >> 8) as u8, (fm >> 8) as u8, fv as u8, fm as u8);
        match exact {
            Some(6) if lm == 0 => m.push(format!(
                "tcp flags & {} == {}",
                tcp_flag_expr(hm),
                tcp_flag_expr(hv & hm)
            )),
            Some(1) => {
                m.extend(masked_match("icmp type", hv, hm));
                m.extend(masked_match("icmp code", lv, lm));
            }
            _ => {
                return Err(format!(
                    "flags {fv:#06x}/{fm:#06x}: only TCP flags (protocol 6, high byte) and the ICMP type and code \
                     (protocol 1) have an nft form"
                ));
            }
        }
    }
    m.push("counter accept".to_string());
    Ok(m.join(" "))
}

/// One packet of the trace: an IPv4 header (TTL 64, checksum, total length) and a 20-byte TCP header (SYN), an
/// 8-byte UDP header, or for other protocols 8 bytes whose first four are the ports (what `th sport/dport`
/// read).
pub fn packet(t: &TracePkt) -> Vec<u8> {
    let (s, d) = (IpAddr::V4(t.src), IpAddr::V4(t.dst));
    match t.proto {
        6 => build::tcp(s, d, t.sport, t.dport, 0, 0, 0x02, 65535, &[], b""),
        17 => build::udp(s, d, t.sport, t.dport, b""),
        p => {
            let mut l4 = [0u8; 8];
            l4[..2].copy_from_slice(&t.sport.to_be_bytes());
            l4[2..4].copy_from_slice(&t.dport.to_be_bytes());
            build::ip(s, d, p, &l4)
        }
    }
}

/// A `file:line: message` diagnostic.
struct LineError {
    line: usize,
    msg: String,
}

/// Parses every non-blank, non-`#` line with `parse`; all errors are collected.
fn parse_lines<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> (Vec<(usize, T)>, Vec<LineError>) {
    let (mut ok, mut errs) = (Vec::new(), Vec::new());
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match parse(t) {
            Ok(v) => ok.push((i + 1, v)),
            Err(msg) => errs.push(LineError { line: i + 1, msg }),
        }
    }
    (ok, errs)
}

/// The `.nfr` text for the filters (`name`: the set's file name, for the header comment).
pub fn ruleset(name: &str, rules: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# ClassBench filter set {name} ({} filters), imported by `nfc import classbench`.\n\
         # Rule N is filter N (the first match wins); packets no filter matches are dropped.",
        rules.len()
    );
    s.push_str(
        "table ip filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n",
    );
    for r in rules {
        let _ = writeln!(s, "\t\t{r}");
    }
    s.push_str("\t}\n}\n");
    s
}

fn read_lossy(p: &Path) -> anyhow::Result<String> {
    let b = crate::source::read_capped(p, crate::source::MAX_BLOB_BYTES)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let pcap_path = match (&a.trace, &a.pcap, &a.output) {
        (None, _, _) => None,
        (Some(_), Some(p), _) => Some(p.clone()),
        (Some(_), None, Some(o)) => Some(o.with_extension("pcap")),
        (Some(_), None, None) => {
            bail!("a TRACE needs -o OUT.nfr or --pcap OUT.pcap to say where the capture goes")
        }
    };
    if let (Some(p), Some(o)) = (&pcap_path, &a.output)
        && p == o
    {
        bail!(
            "the ruleset and the capture would both be written to {}",
            p.display()
        );
    }
    let mut report = String::new();
    let mut errors = 0usize;
    let text = read_lossy(&a.rules)?;
    let (filters, errs) = parse_lines(&text, |l| parse_filter(l).and_then(|f| rule_text(&f)));
    for e in &errs {
        let _ = writeln!(report, "{}:{}: error: {}", a.rules.display(), e.line, e.msg);
    }
    errors += errs.len();
    let mut trace = Vec::new();
    if let Some(tp) = &a.trace {
        let text = read_lossy(tp)?;
        let (pkts, errs) = parse_lines(&text, parse_trace);
        for e in &errs {
            let _ = writeln!(report, "{}:{}: error: {}", tp.display(), e.line, e.msg);
        }
        errors += errs.len();
        trace = pkts;
    }
    if errors > 0 {
        let _ = writeln!(report, "nfc: {errors} malformed line(s); nothing written");
        eprint!("{report}");
        return Ok(Outcome::Diagnostics);
    }
    let rules: Vec<String> = filters.into_iter().map(|(_, r)| r).collect();
    let nfr = ruleset(&file_name(&a.rules), &rules);
    let mut summary = String::new();
    match &a.output {
        Some(o) => {
            std::fs::write(o, &nfr).with_context(|| format!("cannot write {}", o.display()))?;
            let _ = writeln!(
                summary,
                "{}: {} rule(s) from {}",
                o.display(),
                rules.len(),
                a.rules.display()
            );
        }
        None => crate::front::print_stdout(&nfr)?,
    }
    if let (Some(p), Some(tp)) = (&pcap_path, &a.trace) {
        let mut w = PcapWriter::create(p)?;
        for (i, (_, t)) in trace.iter().enumerate() {
            let bytes = packet(t);
            // One packet a microsecond.
            w.write(linktype::RAW, i as u64 * 1000, bytes.len() as u32, &bytes)?;
        }
        let (n, _) = w.finish()?;
        let _ = writeln!(
            summary,
            "{}: {n} packet(s) (raw IPv4) from {}",
            p.display(),
            tp.display()
        );
    }
    if a.output.is_some() {
        crate::front::print_stdout(&summary)?;
    } else {
        eprint!("{summary}");
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: &str) -> Result<String, String> {
        parse_filter(line).and_then(|f| rule_text(&f))
    }

    #[test]
    fn song_and_db_generator_lines() {
        assert_eq!(
            rule("@64.91.107.21/32 128.222.130.81/32 0 : 65535 1221 : 1221 0x06/0xFF").unwrap(),
            "ip saddr 64.91.107.21 ip daddr 128.222.130.81 tcp dport 1221 counter accept"
        );
        assert_eq!(
            rule("@37.184.89.216/29\t37.184.85.16/29\t7648 : 7648\t0 : 1023\t0x11/0xFF\t0x0000/0x0000\t")
                .unwrap(),
            "ip saddr 37.184.89.216/29 ip daddr 37.184.85.16/29 udp sport 7648 udp dport 0-1023 counter accept"
        );
        assert_eq!(
            rule("@0.0.0.0/0 10.1.2.3/8 0:65535 0:65535 0x00/0x00").unwrap(),
            "ip daddr 10.0.0.0/8 counter accept"
        );
        assert_eq!(
            rule("@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x2f/0xFF").unwrap(),
            "meta l4proto 47 counter accept"
        );
        assert_eq!(
            rule("@0.0.0.0/0 0.0.0.0/0 0 : 65535 80 : 80 0x06/0xFE").unwrap(),
            "meta l4proto & 0xfe == 0x06 th dport 80 counter accept"
        );
        assert_eq!(
            rule("@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x06/0xFF 0x0200/0x1200").unwrap(),
            "tcp flags & (syn | ack) == syn counter accept"
        );
        assert_eq!(
            rule("@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x01/0xFF 0x0800/0xff00").unwrap(),
            "icmp type 8 counter accept"
        );
    }

    #[test]
    fn malformed_lines_say_why() {
        for (l, want) in [
            (
                "64.91.107.21/32 1.2.3.4/32 0 : 1 0 : 1 0x06/0xFF",
                "starts with `@`",
            ),
            ("@1.2.3.4/33 1.2.3.4/32 0 : 1 0 : 1 0x06/0xFF", "0-32"),
            ("@1.2.3.4/32 1.2.3/32 0 : 1 0 : 1 0x06/0xFF", "not an IPv4"),
            ("@1.2.3.4/32 1.2.3.4/32 9 : 1 0 : 1 0x06/0xFF", "empty"),
            (
                "@1.2.3.4/32 1.2.3.4/32 0 : 70000 0 : 1 0x06/0xFF",
                "not a port",
            ),
            ("@1.2.3.4/32 1.2.3.4/32 0 : 1 0 : 1 0x106/0xFF", "0xff"),
            ("@1.2.3.4/32 1.2.3.4/32 0 : 1 0 : 1", "found 8"),
            (
                "@1.2.3.4/32 1.2.3.4/32 0 : 1 0 : 1 0x11/0xFF 0x0200/0x0200",
                "nft form",
            ),
            ("@", "found 0"),
        ] {
            let e = rule(l).unwrap_err();
            assert!(e.contains(want), "{l}: {e}");
        }
        assert!(parse_trace("1 2 3 4").is_err());
        assert!(parse_trace("1 2 3 70000 6 1").is_err());
        assert!(parse_trace("4294967296 2 3 4 6 1").is_err());
    }

    #[test]
    fn trace_packets_carry_the_ports() {
        let t = parse_trace("1079733050 4225952233 1024 80 6 3").unwrap();
        assert_eq!(t.filter, Some(3));
        let p = packet(&t);
        assert_eq!(p.len(), 40);
        assert_eq!(p[8], 64);
        assert_eq!(&p[20..24], &[4, 0, 0, 80]);
        let u = packet(&TracePkt { proto: 17, ..t });
        assert_eq!(u.len(), 28);
        let g = packet(&TracePkt { proto: 47, ..t });
        assert_eq!((g.len(), g[9]), (28, 47));
        assert_eq!(&g[20..24], &[4, 0, 0, 80]);
        let ip = nfr_runtime::wire::Ipv4Packet::new_checked(&g[..]).unwrap();
        assert!(ip.verify_checksum());
    }
}
