//! The must-show test: replay every capture that has a kernel expectation in `shared/corpus/ct-expected` through
//! `wire` + the hook path (`Hooks::with_conntrack`: defrag -400, conntrack -200, a logging probe at -150 like the
//! harness's NFLOG rule, confirm at INPUT) along the path the kernel replay used (every packet PREROUTING -> INPUT, FTP helper on
//! tcp dport 21, checksum off, acct on, timing as meta.json says) and compare each packet's ct state and the
//! final `conntrack -L` table with the kernel's. Prints per-capture agreement and asserts a floor.

use nfr_runtime::ct::{Conntrack, Settings};
use nfr_runtime::hook::{self, Engine, HookCtx, Hooks, Route};
use nfr_runtime::pcap::{PcapReader, linktype};
use nfr_runtime::wire::{self, Ipv4Packet, Ipv6Packet, link};
use nfr_vm::pkt::ct_state;
use nfr_vm::{Hook, PktState, Verdict};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    p.join("ct-expected").is_dir().then_some(p)
}

/// The harness's NFLOG prefix for a packet context.
fn state_name(p: &PktState) -> &'static str {
    let reply = p.ct_direction == 1;
    match p.ct_state {
        ct_state::NEW => "NEW",
        ct_state::ESTABLISHED if reply => "EST_REPLY",
        ct_state::ESTABLISHED => "EST",
        ct_state::RELATED if reply => "REL_REPLY",
        ct_state::RELATED => "REL",
        ct_state::UNTRACKED => "UNTRACKED",
        _ => "INVALID",
    }
}

/// Records the ct state at its priority (the kernel replay's `nft ... log group 1 prefix <state>`).
struct NflogProbe(Rc<RefCell<Vec<&'static str>>>);

impl Engine for NflogProbe {
    fn hook(&mut self, pkt: &mut hook::Packet<'_>, _cx: &mut HookCtx<'_>) -> Verdict {
        self.0.borrow_mut().push(state_name(&pkt.state));
        Verdict::Accept
    }
}

/// Capped inter-packet gap from meta.json's timing field.
fn gap_cap_ns(meta: &str) -> Option<u64> {
    let i = meta.find("gap cap ")?;
    let rest = &meta[i + 8..];
    let j = rest.find('s')?;
    rest[..j].parse::<f64>().ok().map(|s| (s * 1e9) as u64)
}

/// Would the kernel deliver this packet locally (and so confirm its entry)? IPv6 link-local destinations are
/// routed to tun0 instead, multicast to unjoined groups is dropped (README: "Known harness limits").
fn delivered(l3: &[u8]) -> bool {
    match l3.first().map(|b| b >> 4) {
        Some(4) => {
            let d = Ipv4Packet::new_unchecked(l3).dst_addr();
            !(224..=239).contains(&d[0])
        }
        Some(6) => {
            let d = Ipv6Packet::new_unchecked(l3).dst_addr();
            let link_local = d[0] == 0xfe && d[1] & 0xc0 == 0x80;
            let mcast = d[0] == 0xff;
            !link_local && !mcast
        }
        _ => false,
    }
}

/// `ip_rcv_core` / `ipv6_rcv` sanity checks (the IPv4 header checksum is repaired by the harness, so not checked).
fn ip_rcv_ok(l3: &[u8]) -> bool {
    match l3.first().map(|b| b >> 4) {
        Some(4) => Ipv4Packet::new_checked(l3).is_ok(),
        Some(6) => Ipv6Packet::new_checked(l3).is_ok_and(|ip| ip.src_addr()[0] != 0xff),
        _ => false,
    }
}

struct Outcome {
    /// (frame label, state); label is the frame number or "+<frame>" for a reassembled packet.
    states: Vec<(String, String)>,
    listing: String,
}

fn replay(pcap: &Path, meta: &str, checksum: bool) -> Outcome {
    let settings = Settings {
        checksum,
        acct: true,
        ftp_ports: vec![21],
        ..Settings::default()
    };
    let mut ct = Conntrack::new(settings);
    // Like the kernel harness: a prerouting entry at -150 (after conntrack) logs each packet's ct state.
    let log: Rc<RefCell<Vec<&'static str>>> = Rc::new(RefCell::new(Vec::new()));
    let mut hooks = Hooks::with_conntrack();
    for nf in [2u8, 10] {
        hooks
            .register(
                nf,
                Hook::Prerouting,
                -150,
                Box::new(NflogProbe(log.clone())),
            )
            .expect("register probe");
    }
    let cap = gap_cap_ns(meta);
    let file = std::fs::File::open(pcap).expect("open pcap");
    let mut states = Vec::new();
    let mut now: u64 = 1_000 * 1_000_000_000;
    let mut last_ts: Option<u64> = None;
    let Ok(mut r) = PcapReader::new(std::io::BufReader::new(file)) else {
        return Outcome {
            states,
            listing: String::new(),
        };
    };
    let mut frame_no = 0u64;
    // Time of the last packet written to tun0 (the harness dumps the table right after it).
    let mut last_injected = now;
    while let Ok(Some(f)) = r.next_frame() {
        frame_no += 1;
        if let Some(prev) = last_ts {
            let gap = f.ts_ns.saturating_sub(prev);
            now += cap.map_or(gap, |c| gap.min(c));
        }
        last_ts = Some(f.ts_ns);
        let label = frame_no.to_string();
        let li = match wire::parse_link(f.linktype, f.data) {
            Ok(li) => li,
            Err(_) => {
                states.push((label, "SKIPPED".into()));
                continue;
            }
        };
        if li.ethertype != link::ETH_P_IP && li.ethertype != link::ETH_P_IPV6 {
            states.push((label, "SKIPPED".into()));
            continue;
        }
        let mut ip = f.data.get(usize::from(li.nhoff)..).unwrap_or(&[]).to_vec();
        // Header itself cut: skipped by the harness.
        let hdr_len = match ip.first().map(|b| b >> 4) {
            Some(4) => usize::from(ip.first().copied().unwrap_or(0) & 0xf) * 4,
            Some(6) => 40,
            _ => usize::MAX,
        };
        if ip.len() < hdr_len.max(20) {
            states.push((label, "SKIPPED".into()));
            continue;
        }
        last_injected = now;
        let declared = if ip[0] >> 4 == 4 {
            usize::from(u16::from_be_bytes([ip[2], ip[3]]))
        } else {
            40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))
        };
        if (f.orig_len as usize) > f.data.len() && ip.len() < declared {
            ip.resize(declared, 0);
        }
        if !ip_rcv_ok(&ip) {
            states.push((label, "NOT_SEEN".into()));
            continue;
        }
        ip.truncate(declared.max(hdr_len));
        let mut pkt = match hook::Packet::from_frame(linktype::RAW, &ip, now) {
            Ok(p) => p,
            Err(_) => {
                states.push((label, "NOT_SEEN".into()));
                continue;
            }
        };
        let was_fragment = pkt.state.is_fragment;
        let route = if delivered(&ip) {
            Route::Local
        } else {
            Route::Blackhole
        };
        log.borrow_mut().clear();
        let (_, outcome) = hooks.receive(&mut pkt, route, &mut ct, now);
        let seen = log.borrow().first().copied();
        match (seen, outcome) {
            (Some(st), _) if was_fragment => {
                // The fragment completed a datagram: the kernel lists the frame as consumed and the
                // reassembled packet on a `+` line.
                states.push((label.clone(), "NOT_SEEN".into()));
                states.push((format!("+{label}"), st.to_string()));
            }
            (Some(st), _) => states.push((label, st.to_string())),
            (None, _) => states.push((label, "NOT_SEEN".into())),
        }
    }
    // The kernel table was dumped about a second after the last packet.
    let listing = ct.listing(last_injected + 1_000_000_000);
    Outcome { states, listing }
}

fn expected_states(tsv: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut prev = String::new();
    for line in tsv.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut it = line.split('\t');
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            continue;
        };
        let label = if a == "+" {
            format!("+{prev}")
        } else {
            a.to_string()
        };
        if a != "+" {
            prev = a.to_string();
        }
        let st = if b.starts_with("SKIPPED") {
            "SKIPPED".to_string()
        } else {
            b.to_string()
        };
        out.push((label, st));
    }
    out
}

/// Splits a listing line into (timeout, rest-without-timeout).
fn split_line(l: &str) -> Option<(i64, String)> {
    let toks: Vec<&str> = l.split_whitespace().collect();
    let t = toks.get(2)?.parse::<i64>().ok()?;
    let mut rest: Vec<&str> = toks.clone();
    rest.remove(2);
    Some((t, rest.join(" ")))
}

fn compare_tables(exp: &str, got: &str) -> (usize, usize, Vec<String>) {
    let e: Vec<(i64, String)> = exp
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(split_line)
        .collect();
    let mut g: Vec<Option<(i64, String)>> = got
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(split_line)
        .map(Some)
        .collect();
    let mut ok = 0;
    let mut notes = Vec::new();
    for (et, er) in &e {
        let hit = g.iter().position(|x| {
            x.as_ref()
                .is_some_and(|(gt, gr)| gr == er && (gt - et).abs() <= 3)
        });
        match hit {
            Some(i) => {
                g[i] = None;
                ok += 1;
            }
            None => notes.push(format!("  missing/different: {et} {er}")),
        }
    }
    for (gt, gr) in g.into_iter().flatten() {
        notes.push(format!("  extra:               {gt} {gr}"));
    }
    let total = e.len().max(ok + notes.len().saturating_sub(e.len() - ok));
    (ok, total.max(e.len()), notes)
}

#[test]
fn ct_expected_agreement() {
    let Some(corpus) = corpus() else {
        println!(
            "SKIP: ../shared/corpus/ct-expected not found; kernel conntrack agreement not measured"
        );
        return;
    };
    let dir = corpus.join("ct-expected");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read ct-expected")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".pkts.tsv").map(str::to_string))
        .collect();
    names.sort();
    let verbose = std::env::var("CT_VERBOSE").is_ok();
    let (mut tot_ok, mut tot_n, mut tab_ok, mut tab_n) = (0usize, 0usize, 0usize, 0usize);
    let (mut exact_ok, mut exact_n) = (0usize, 0usize);
    let mut per: BTreeMap<String, (usize, usize, usize, usize, bool)> = BTreeMap::new();
    for name in &names {
        let pcap = corpus.join("pcaps").join(name);
        if !pcap.exists() {
            continue;
        }
        let tsv = std::fs::read_to_string(dir.join(format!("{name}.pkts.tsv"))).unwrap_or_default();
        let meta =
            std::fs::read_to_string(dir.join(format!("{name}.meta.json"))).unwrap_or_default();
        let exp_l = std::fs::read_to_string(dir.join(format!("{name}.conntrack-L.txt")))
            .unwrap_or_default();
        let exact = meta.contains("\"timing\": \"exact\"");
        let exp = expected_states(&tsv);
        let got = replay(&pcap, &meta, false);
        let gmap: BTreeMap<&str, &str> = got
            .states
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut ok = 0;
        for (lab, st) in &exp {
            let g = gmap.get(lab.as_str()).copied().unwrap_or("(none)");
            if g == st {
                ok += 1;
            } else if verbose {
                println!("  {name} frame {lab}: kernel {st}, ours {g}");
            }
        }
        let (tok, tn, notes) = compare_tables(&exp_l, &got.listing);
        if verbose && !notes.is_empty() {
            println!("  {name} table:\n{}", notes.join("\n"));
        }
        tot_ok += ok;
        tot_n += exp.len();
        tab_ok += tok;
        tab_n += tn;
        if exact {
            exact_ok += ok;
            exact_n += exp.len();
        }
        per.insert(name.clone(), (ok, exp.len(), tok, tn, exact));
    }
    println!("{:<48} {:>13} {:>9}  timing", "capture", "packets", "table");
    for (n, (ok, t, tok, tn, exact)) in &per {
        let mark = if ok == t && tok == tn { " " } else { "*" };
        println!(
            "{mark}{n:<47} {ok:>5}/{t:<5}  {tok:>3}/{tn:<3}  {}",
            if *exact { "exact" } else { "compressed" }
        );
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            100.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    println!(
        "overall: packets {tot_ok}/{tot_n} ({:.2}%), exact-timing packets {exact_ok}/{exact_n} ({:.2}%), table entries {tab_ok}/{tab_n} ({:.2}%), captures {}",
        pct(tot_ok, tot_n),
        pct(exact_ok, exact_n),
        pct(tab_ok, tab_n),
        per.len()
    );
    assert!(
        per.len() >= 40,
        "expected the 50 ct-expected captures, found {}",
        per.len()
    );
    // Floor = what the engine achieves today: every packet state and every table entry agrees.
    assert_eq!(
        tot_ok, tot_n,
        "packet-state agreement fell below 100% (run with CT_VERBOSE=1)"
    );
    assert_eq!(
        tab_ok, tab_n,
        "final-table agreement fell below 100% (run with CT_VERBOSE=1)"
    );
}

/// "NEW=1 EST=5 (+reassembled: NEW=1)" -> sorted counts; SKIPPED(reason) folded into SKIPPED; reassembled
/// packets counted under "+STATE".
fn parse_counts(s: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    let mut re = false;
    for tok in s.split_whitespace() {
        if tok.starts_with("(+reassembled") {
            re = true;
            continue;
        }
        let tok = tok.trim_end_matches(')');
        let Some((k, v)) = tok.rsplit_once('=') else {
            continue;
        };
        let Ok(n) = v.parse::<usize>() else { continue };
        let k = if k.starts_with("SKIPPED") {
            "SKIPPED"
        } else {
            k
        };
        let k = if re { format!("+{k}") } else { k.to_string() };
        *m.entry(k).or_insert(0) += n;
    }
    m
}

/// "3x udp; 1x tcp TIME_WAIT [ASSURED]" -> counts per kind.
fn parse_table_summary(s: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for part in s.split(';') {
        let part = part.trim();
        if part.is_empty() || part == "empty" {
            continue;
        }
        if let Some((n, kind)) = part.split_once("x ")
            && let Ok(n) = n.parse::<usize>()
        {
            *m.entry(kind.to_string()).or_insert(0) += n;
        }
    }
    m
}

fn summarize_listing(listing: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in listing.lines() {
        let toks: Vec<&str> = l.split_whitespace().collect();
        let Some(proto) = toks.first() else { continue };
        let mut kind = proto.to_string();
        if *proto == "tcp"
            && let Some(st) = toks.get(3)
        {
            kind.push(' ');
            kind.push_str(st);
        }
        for flag in ["[ASSURED]", "[UNREPLIED]"] {
            if toks.contains(&flag) {
                kind.push(' ');
                kind.push_str(flag);
            }
        }
        *m.entry(kind).or_insert(0) += 1;
    }
    m
}

/// Every capture of sum_primary.tsv (72, including the 22 without per-packet files): per-state packet counts
/// and the final table by kind must equal the kernel's summary line.
#[test]
fn ct_summary_agreement() {
    summary_agreement("sum_primary.tsv", false);
}

/// The same with `nf_conntrack_checksum=1` (the kernel default): offloaded / anonymised checksums
/// turn packets INVALID in 9 captures.
#[test]
fn ct_summary_agreement_checksum_on() {
    summary_agreement("sum_csum1.tsv", true);
}

fn summary_agreement(file: &str, checksum: bool) {
    let Some(corpus) = corpus() else {
        println!("SKIP: ../shared/corpus/ct-expected not found; kernel summaries not compared");
        return;
    };
    let sum = std::fs::read_to_string(corpus.join("ct-expected").join(file)).unwrap_or_default();
    let (mut ok, mut n) = (0, 0);
    let mut bad = Vec::new();
    for line in sum.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(timing)) = (f.first(), f.get(1)) else {
            continue;
        };
        let pcap = corpus.join("pcaps").join(name);
        if !pcap.exists() {
            continue;
        }
        let counts = parse_counts(f.get(2).unwrap_or(&""));
        let table = parse_table_summary(f.get(3).unwrap_or(&""));
        let meta = format!("\"timing\": \"{timing}\"");
        let got = replay(&pcap, &meta, checksum);
        let mut gc: BTreeMap<String, usize> = BTreeMap::new();
        for (lab, st) in &got.states {
            let k = if lab.starts_with('+') {
                format!("+{st}")
            } else {
                st.clone()
            };
            *gc.entry(k).or_insert(0) += 1;
        }
        let gt = summarize_listing(&got.listing);
        n += 1;
        if gc == counts && gt == table {
            ok += 1;
        } else {
            bad.push(format!(
                "{name}\n    kernel {counts:?} {table:?}\n    ours   {gc:?} {gt:?}"
            ));
        }
    }
    for b in &bad {
        println!("*{b}");
    }
    println!(
        "summary agreement ({file}): {ok}/{n} captures identical (state counts + table kinds)"
    );
    assert!(
        n >= 60,
        "expected the 72 captures of sum_primary.tsv, found {n}"
    );
    // Floor = today's result: all 72 summaries identical.
    assert_eq!(ok, n, "a capture's summary differs from the kernel's");
}
