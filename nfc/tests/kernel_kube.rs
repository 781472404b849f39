//! kube-proxy's ruleset against the real kernel: `testdata/ipt/kube-proxy.ipt` loaded as iptables into the
//! kernel's forwarding lab (`../shared/oracle/kernel_verdicts.py`, driven by `kernel/drawn_replies.py`), and its
//! `nfc import` run by `nfc run pcap` on every engine (interp, jit, ipt), with two seeds and one and two
//! threads. The node is 192.168.0.10 on eth0 (the lab's left side), its pods are behind cni0 (10.244.0.1/24,
//! the right side).
//!
//! The capture holds connections to the web service (three endpoints) through its NodePort and its cluster IP
//! (from pods, some of them the service's own endpoints: hairpin), DNS queries to the dns service (two
//! endpoints) from pods and from the node network, and traffic no service sees (pod egress, a connection from
//! outside straight to a pod, a stray reset, a packet to the node itself). Which endpoint a connection gets and
//! which port masquerade gives it are drawn at random: by the kernel from its generator, by nfc from its seed.
//! So the replies in the capture are written as the reverse of their connection's original tuple, and each side
//! sends them as the mapping it chose says (the kernel through `drawn_replies.py`, nfc by replaying twice: the
//! first run's conntrack table tells the mappings, the second answers them and must make the same ones).
//!
//! Then, strictly: every packet's fate and conntrack state are the kernel's; every connection's mapping has the
//! kernel's properties on both sides (its endpoint is one of its service's; masquerade happened exactly for the
//! connections from outside the pod network and the hairpins, to the cni0 address and a port in 1024-65535;
//! reply tuples are unique); and with each connection's kernel mapping replaced by nfc's (addresses and ports
//! rewritten in the kernel's packets with the kernel's own incremental checksum updates), the packets that left
//! are the kernel's byte for byte, checksums included, and the conntrack table is the kernel's with both tuples.
//! Both spread the connections over every endpoint (see [`WEB_FLOWS`]).
//!
//! Two smaller NAT cases against the kernel use the same lab and comparison: a SNAT range with no free port
//! left (the kernel keeps a clashing tuple and drops the packet at confirm, after the later chains saw it), and
//! the source address of the host's ICMP errors (the address of the interface they leave by).

mod common;

use common::lab::{
    ACK, FIN, JsonRun, PSH, RST, SYN, ct_key, diff_per_packet, ids, pcap, read_pcap, strict_key,
    tcp, udp,
};
use common::{nfc, root, shared, stdout};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn main() {
    let args = Arguments::from_args();
    let why = common::gate::oracle_script(
        "kernel_verdicts.py",
        &["iptables-legacy", "nft", "conntrack", "python3", "ip"],
    )
    .err()
    .or_else(|| {
        (!Path::new("/proc/net/ip_tables_names").exists())
            .then(|| "no legacy ip_tables in this kernel".to_string())
    });
    let ignored = common::gate::announce(
        why.as_ref()
            .map(|w| format!("kernel oracle unavailable: {w}"))
            .as_deref(),
    );
    let (w1, w2, w3) = (why.clone(), why.clone(), why);
    let trials = vec![
        Trial::test("kube_proxy_is_the_kernels_up_to_the_draws", move || {
            kube_proxy(w1.as_deref())
        })
        .with_ignored_flag(ignored),
        Trial::test(
            "snat_range_exhausted_fails_at_confirm_as_in_the_kernel",
            move || snat_range_exhausted(w2.as_deref()),
        )
        .with_ignored_flag(ignored),
        Trial::test(
            "icmp_errors_come_from_the_interface_they_leave_by",
            move || icmp_error_source(w3.as_deref()),
        )
        .with_ignored_flag(ignored),
    ];
    libtest_mimic::run(&args, trials).exit();
}

// ---------------------------------------------------------------------------------------------------------
// The node, its services and the capture.

const NODE: &str = "192.168.0.10";
/// cni0's address: what masquerade maps to towards the pods.
const CNI0: &str = "10.244.0.1";
const WEB_VIP: &str = "10.96.0.20";
const DNS_VIP: &str = "10.96.0.10";
const NODEPORT: u16 = 30080;
const WEB: [&str; 3] = ["10.244.0.5", "10.244.0.6", "10.244.0.7"];
const DNS: [&str; 2] = ["10.244.0.2", "10.244.0.3"];
/// A pod that is no endpoint.
const CLIENT_POD: &str = "10.244.0.9";

/// Connections through the draws: `WEB_FLOWS` to the web service, `DNS_FLOWS` to the dns service. The kernel
/// picks each endpoint with probability 1/3 (web; `--probability 0.33333333349`, then 0.5 of the rest) or 1/2
/// (dns), independently per connection, so an endpoint goes unused with probability at most
/// 3 * (2/3)^40 = 2.7e-7 (web) and 2 * (1/2)^28 = 7.5e-9 (dns): the kernel's spread check fails falsely with
/// probability below 3e-7.
const WEB_FLOWS: u16 = 40;
const DNS_FLOWS: u16 = 28;

/// The capture, with the indexes (0-based) of the replies written as the reverse of their connection's
/// original tuple.
struct Capture {
    pkts: Vec<Vec<u8>>,
    replies: Vec<usize>,
}

fn capture() -> Capture {
    let mut c = Capture {
        pkts: Vec::new(),
        replies: Vec::new(),
    };
    let mut id = 0u16;
    let mut next = || {
        id += 1;
        id
    };
    let push = |c: &mut Capture, p: Vec<u8>, reply: bool| {
        if reply {
            c.replies.push(c.pkts.len());
        }
        c.pkts.push(p);
    };
    // Pods that are endpoints talk to the world first (so the lab routes them), the dns ones to an upstream
    // resolver on the node network: pod traffic, no service.
    for (i, pod) in WEB.iter().chain(&DNS).enumerate() {
        let sp = 45000 + i as u16;
        push(
            &mut c,
            udp(pod, "192.168.0.2", sp, 53, b"up", 64, next()),
            false,
        );
        push(
            &mut c,
            udp("192.168.0.2", pod, 53, sp, b"answer", 64, next()),
            false,
        );
    }
    for k in 0..WEB_FLOWS {
        // Two of three from the node network to the NodePort (DNAT and masquerade), the rest from pods to the
        // cluster IP (DNAT; masquerade when a pod reaches itself).
        let (src, dst, sp, dp) = if k % 3 != 2 {
            (
                format!("192.168.0.{}", 50 + k),
                NODE.to_string(),
                41000 + k,
                NODEPORT,
            )
        } else {
            let pod = [CLIENT_POD, WEB[0], WEB[1], WEB[2]][usize::from(k / 3) % 4];
            (pod.to_string(), WEB_VIP.to_string(), 42000 + k, 80)
        };
        let (x, y) = (1000 + u32::from(k) * 7, 5000);
        push(
            &mut c,
            tcp(&src, &dst, sp, dp, x, 0, SYN, b"", next()),
            false,
        );
        push(
            &mut c,
            tcp(&dst, &src, dp, sp, y, x + 1, SYN | ACK, b"", next()),
            true,
        );
        push(
            &mut c,
            tcp(&src, &dst, sp, dp, x + 1, y + 1, ACK, b"", next()),
            false,
        );
        if k % 4 == 0 {
            push(
                &mut c,
                tcp(
                    &src,
                    &dst,
                    sp,
                    dp,
                    x + 1,
                    y + 1,
                    PSH | ACK,
                    b"GET /",
                    next(),
                ),
                false,
            );
            push(
                &mut c,
                tcp(
                    &dst,
                    &src,
                    dp,
                    sp,
                    y + 1,
                    x + 6,
                    PSH | ACK,
                    b"200 OK",
                    next(),
                ),
                true,
            );
            push(
                &mut c,
                tcp(&src, &dst, sp, dp, x + 6, y + 7, FIN | ACK, b"", next()),
                false,
            );
            push(
                &mut c,
                tcp(&dst, &src, dp, sp, y + 7, x + 7, FIN | ACK, b"", next()),
                true,
            );
            push(
                &mut c,
                tcp(&src, &dst, sp, dp, x + 7, y + 8, ACK, b"", next()),
                false,
            );
        }
    }
    for k in 0..DNS_FLOWS {
        // Most from pods; every seventh from the node network (marked, masqueraded).
        let src = if k % 7 == 6 {
            format!("192.168.0.{}", 120 + k)
        } else {
            [CLIENT_POD, WEB[0], WEB[1], WEB[2], DNS[0], DNS[1]][usize::from(k) % 6].to_string()
        };
        let sp = 43000 + k;
        push(
            &mut c,
            udp(&src, DNS_VIP, sp, 53, b"\x00\x01query", 64, next()),
            false,
        );
        push(
            &mut c,
            udp(DNS_VIP, &src, 53, sp, b"\x00\x01answer", 64, next()),
            true,
        );
    }
    // No service: a connection from outside straight to a pod (not marked, not established: the FORWARD
    // policy drops it), a stray reset (invalid), and a packet to the node itself.
    push(
        &mut c,
        tcp("192.168.0.99", WEB[0], 44000, 8080, 1, 0, SYN, b"", next()),
        false,
    );
    push(
        &mut c,
        tcp("192.168.0.98", WEB[1], 44001, 8080, 1, 0, RST, b"", next()),
        false,
    );
    push(
        &mut c,
        tcp("192.168.0.97", NODE, 44002, 22, 1, 0, SYN, b"", next()),
        false,
    );
    c
}

// ---------------------------------------------------------------------------------------------------------
// Tuples, mappings, and the kernel's checksum updates.

/// A conntrack tuple: protocol, source, destination, ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Tuple {
    l4: u8,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
}

impl Tuple {
    fn invert(self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..self
        }
    }

    /// The tuple of a TCP or UDP datagram (`None` for others and fragments).
    fn of(p: &[u8]) -> Option<Tuple> {
        if p.len() < 20 || p[0] >> 4 != 4 || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
            return None;
        }
        let ihl = usize::from(p[0] & 0xf) * 4;
        let l4 = p.get(ihl..ihl + 4)?;
        matches!(p[9], 6 | 17).then(|| Tuple {
            l4: p[9],
            src: p[12..16].try_into().unwrap(),
            dst: p[16..20].try_into().unwrap(),
            sport: u16::from_be_bytes([l4[0], l4[1]]),
            dport: u16::from_be_bytes([l4[2], l4[3]]),
        })
    }

    /// As `conntrack -L` writes it.
    fn text(&self) -> String {
        let a = |x: [u8; 4]| std::net::Ipv4Addr::from(x).to_string();
        format!(
            "src={} dst={} sport={} dport={}",
            a(self.src),
            a(self.dst),
            self.sport,
            self.dport
        )
    }
}

fn ip(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

/// The original and reply tuples of a `conntrack -L` line (TCP and UDP entries).
fn tuples(line: &str) -> Option<(Tuple, Tuple)> {
    let mut w = line.split_whitespace();
    let l4 = match w.next()? {
        "tcp" => 6,
        "udp" => 17,
        _ => return None,
    };
    let mut vals: Vec<&str> = Vec::new();
    for x in w {
        if let Some((k, v)) = x.split_once('=')
            && ["src", "dst", "sport", "dport"].contains(&k)
        {
            vals.push(v);
        }
    }
    let t = |v: &[&str]| -> Option<Tuple> {
        Some(Tuple {
            l4,
            src: v[0].parse::<std::net::Ipv4Addr>().ok()?.octets(),
            dst: v[1].parse::<std::net::Ipv4Addr>().ok()?.octets(),
            sport: v[2].parse().ok()?,
            dport: v[3].parse().ok()?,
        })
    };
    (vals.len() == 8).then(|| Some((t(&vals[..4])?, t(&vals[4..])?)))?
}

/// Each connection's reply tuple, by original tuple.
fn mappings(table: &[String]) -> BTreeMap<Tuple, Tuple> {
    table.iter().filter_map(|l| tuples(l)).collect()
}

/// The replies of the capture rewritten as `map` says: each becomes the reply tuple of the connection whose
/// original tuple it reverses (left alone when there is none).
fn answer(cap: &Capture, map: &BTreeMap<Tuple, Tuple>) -> Vec<u8> {
    let mut pkts = cap.pkts.clone();
    for &i in &cap.replies {
        if let Some(t) = Tuple::of(&pkts[i])
            && let Some(r) = map.get(&t.invert())
        {
            pkts[i] = retuple(&pkts[i], r);
        }
    }
    pcap(&pkts)
}

/// `csum_replace4` / `csum_replace2` (include/net/checksum.h) of the 16-bit checksum at `at`: `from` replaced
/// by `to` in what it covers.
fn csum_replace(p: &mut [u8], at: usize, from: &[u8], to: &[u8]) {
    let words = |b: &[u8]| -> Vec<u64> {
        b.chunks(2)
            .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .collect()
    };
    let old = u16::from_be_bytes([p[at], p[at + 1]]);
    let mut s = u64::from(!old);
    s += words(from).iter().map(|w| !*w & 0xffff).sum::<u64>();
    s += words(to).iter().sum::<u64>();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    p[at..at + 2].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

/// The datagram `p` with the addresses and ports of `t`, its checksums updated as the kernel's NAT updates them
/// (`nf_nat_ipv4_manip_pkt`, `tcp_manip_pkt`, `udp_manip_pkt`: a UDP checksum of 0 stays 0, a result of 0 is
/// written 0xffff).
fn retuple(p: &[u8], t: &Tuple) -> Vec<u8> {
    let Some(old) = Tuple::of(p) else {
        return p.to_vec();
    };
    let mut p = p.to_vec();
    let ihl = usize::from(p[0] & 0xf) * 4;
    let check = ihl + if old.l4 == 6 { 16 } else { 6 };
    let udp_none = old.l4 == 17 && p.get(check..check + 2) == Some(&[0, 0]);
    if p.len() < check + 2 {
        return p;
    }
    let pairs = [
        (12, old.src.to_vec(), t.src.to_vec(), true),
        (16, old.dst.to_vec(), t.dst.to_vec(), true),
        (
            ihl,
            old.sport.to_be_bytes().to_vec(),
            t.sport.to_be_bytes().to_vec(),
            false,
        ),
        (
            ihl + 2,
            old.dport.to_be_bytes().to_vec(),
            t.dport.to_be_bytes().to_vec(),
            false,
        ),
    ];
    for (at, from, to, addr) in pairs {
        if addr {
            csum_replace(&mut p, 10, &from, &to);
        }
        if !udp_none {
            csum_replace(&mut p, check, &from, &to);
            if old.l4 == 17 && p[check..check + 2] == [0, 0] {
                p[check..check + 2].copy_from_slice(&[0xff, 0xff]);
            }
        }
        p[at..at + from.len()].copy_from_slice(&to);
    }
    p
}

/// The properties every mapping has in the kernel: the endpoint is one of the service's (the original tuple's
/// destination, the cluster IP or the NodePort, tells which), masquerade to cni0's address and a port in
/// 1024-65535 exactly for connections from outside the pod network and hairpins, reply tuples unique.
fn check_mappings(who: &str, map: &BTreeMap<Tuple, Tuple>, flows: &BTreeSet<Tuple>) -> Vec<String> {
    let mut bad = Vec::new();
    let pod_net = |a: [u8; 4]| a[..3] == [10, 244, 0];
    let mut seen = BTreeSet::new();
    for f in flows {
        let Some(r) = map.get(f) else {
            bad.push(format!("{who}: no entry for {}", f.text()));
            continue;
        };
        let (endpoints, port): (&[&str], u16) = if f.dst == ip(DNS_VIP) {
            (&DNS, 53)
        } else {
            (&WEB, 8080)
        };
        if !endpoints.iter().any(|e| ip(e) == r.src) || r.sport != port {
            bad.push(format!("{who}: {} went to {}", f.text(), r.text()));
        }
        let masq = !pod_net(f.src) || f.src == r.src;
        let ok = if masq {
            r.dst == ip(CNI0) && r.dport >= 1024
        } else {
            r.dst == f.src && r.dport == f.sport
        };
        if !ok {
            bad.push(format!(
                "{who}: {} mapped to {} (masquerade expected: {masq})",
                f.text(),
                r.text()
            ));
        }
        if !seen.insert(*r) {
            bad.push(format!("{who}: reply tuple {} used twice", r.text()));
        }
    }
    bad
}

/// How the connections to the dns service (`dns`) or to the web one spread over its endpoints (by address).
fn spread(
    map: &BTreeMap<Tuple, Tuple>,
    flows: &BTreeSet<Tuple>,
    dns: bool,
) -> BTreeMap<[u8; 4], usize> {
    let mut n = BTreeMap::new();
    for f in flows.iter().filter(|f| (f.dst == ip(DNS_VIP)) == dns) {
        if let Some(r) = map.get(f) {
            *n.entry(r.src).or_insert(0) += 1;
        }
    }
    n
}

// ---------------------------------------------------------------------------------------------------------
// One side's answer.

/// Per packet (fate, ct state); the datagrams that left; the conntrack table (`conntrack -L` lines).
struct Answer {
    per_packet: Vec<(String, String)>,
    egress: Vec<Vec<u8>>,
    table: Vec<String>,
    /// nfc's `--iface` routes for the lab's sides (kernel only).
    routes: Vec<String>,
}

const LAB: &[&str] = &[
    "--left-if",
    "eth0",
    "--right-if",
    "cni0",
    "--local",
    NODE,
    "--local-stack",
    "quiet",
    "--left",
    "192.168.0.0/24",
    "--right",
    "10.244.0.0/16",
    "--if-addr",
    "eth0=192.168.0.10/24",
    "--if-addr",
    "cni0=10.244.0.1/24",
];

/// Replays `pkts` through the kernel's lab with `rules` (iptables-save text when the name ends in `.ipt`, else
/// nft) and the lab's options `args`; `replies` are the capture's replies to send as the kernel's mappings say.
/// Returns the lab's report and its output directory.
fn lab(
    dir: &Path,
    rules: &Path,
    pkts: &[Vec<u8>],
    args: &[&str],
    replies: &[usize],
) -> Result<(Value, std::path::PathBuf), Failed> {
    let file = dir.join("kernel.pcap");
    std::fs::write(&file, pcap(pkts)).unwrap();
    let out = dir.join("kernel");
    let replies: Vec<String> = replies.iter().map(|i| (i + 1).to_string()).collect();
    let o = Command::new("python3")
        .arg(root().join("nfc/tests/kernel/drawn_replies.py"))
        .arg(shared("oracle"))
        .arg(rules)
        .arg(&file)
        // Only dropped packets wait it out: a long wait keeps a late packet on a loaded machine from being
        // taken for a dropped one.
        .args(["-o", out.to_str().unwrap(), "--settle-ms", "200"])
        .args(args)
        .args(["--replies", &replies.join(",")])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "the kernel lab failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let rep = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    Ok((rep, out))
}

/// A TCP segment the kernel sent itself (a reset) leaves through the lab's veth with `CHECKSUM_PARTIAL`: its
/// checksum field holds the pseudo-header's sum, which a NIC would complete. Completes it; other datagrams are
/// returned as they are.
fn finish_partial(mut p: Vec<u8>) -> Vec<u8> {
    use nfr_runtime::wire::{build::pseudo, checksum};
    if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 6 || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0
    {
        return p;
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    if p.len() < ihl + 20 {
        return p;
    }
    let sum = pseudo(&p[12..16], &p[16..20], 6, p.len() - ihl);
    if u16::from_be_bytes([p[ihl + 16], p[ihl + 17]]) == !checksum(&[], sum) {
        p[ihl + 16..ihl + 18].fill(0);
        let c = checksum(&p[ihl..], sum);
        p[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The kernel's answer for `pkts` from the lab's report, with nfc's `--iface` routes for the lab's sides
/// (`left_if` and `right_if` its interface names; the default route goes right).
fn kernel_answer(
    rep: &Value,
    out: &Path,
    pkts: &[Vec<u8>],
    left_if: &str,
    right_if: &str,
) -> Answer {
    let ids = ids(pkts);
    let mut egress = Vec::new();
    for side in ["egress-left.pcap", "egress-right.pcap"] {
        let b = std::fs::read(out.join(side)).unwrap_or_default();
        egress.extend(
            read_pcap(&b)
                .into_iter()
                .filter(|p| p[0] >> 4 == 4)
                .map(|p| {
                    if ids.contains(&u16::from_be_bytes([p[4], p[5]])) {
                        p
                    } else {
                        finish_partial(p)
                    }
                }),
        );
    }
    // (IP id, protocol, length) of what left: a packet to the node DNATed away left (the lab says "dropped"
    // when nothing was delivered).
    let left: BTreeSet<(u16, u8, usize)> = egress
        .iter()
        .map(|p| (u16::from_be_bytes([p[4], p[5]]), p[9], p.len()))
        .collect();
    let mut per_packet = Vec::new();
    for (i, p) in rep["packets"].as_array().unwrap().iter().enumerate() {
        let ct = match p["ct"].as_str().unwrap_or("-") {
            "new" => "NEW",
            "established/original" => "EST",
            "established/reply" => "EST_REPLY",
            "related/original" => "REL",
            "related/reply" => "REL_REPLY",
            "invalid" => "INVALID",
            "untracked" => "UNTRACKED",
            _ => "-",
        };
        let q = &pkts[i];
        let out_again = p["path"] == "input"
            && left.contains(&(u16::from_be_bytes([q[4], q[5]]), q[9], q.len()));
        let fate = match p["outcome"].as_str().unwrap_or("") {
            "forwarded" | "forwarded-modified" | "sent" | "delivered-local" => "accept",
            "dropped" if out_again => "accept",
            _ => "drop",
        };
        per_packet.push((fate.to_string(), ct.to_string()));
    }
    let table = rep["final"]["conntrack"]
        .as_str()
        .unwrap_or("")
        .lines()
        .filter(|l| ct_key(l, true).is_some())
        .map(str::to_string)
        .collect();
    let mut routes: Vec<String> = rep["sides"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(ip, side)| {
            let dev = if side == "left" { left_if } else { right_if };
            format!("{dev}={ip}/32")
        })
        .collect();
    routes.sort();
    routes.push(format!("{right_if}=0.0.0.0/0"));
    Answer {
        per_packet,
        egress,
        table,
        routes,
    }
}

/// `nfc run pcap` of `file` (a pcap) with `rules`, the options `extra` and the lab's `routes`.
fn ours(
    rules: &Path,
    file: &Path,
    engine: &str,
    threads: &str,
    extra: &[&str],
    routes: &[String],
) -> Result<Answer, Failed> {
    let seed = extra.join("-").replace(['/', '='], "_");
    let acc = file.with_extension(format!("{engine}-{threads}-{seed}.acc.pcap"));
    let mut args = vec![
        "run",
        "pcap",
        rules.to_str().unwrap(),
        file.to_str().unwrap(),
        "--engine",
        engine,
        "--threads",
        threads,
        "--trace",
        "--json",
        "--write-accepted",
        acc.to_str().unwrap(),
    ];
    args.extend(extra);
    for r in routes {
        args.extend(["--iface", r]);
    }
    let o = nfc(&args);
    if o.status.code() != Some(0) {
        return Err(format!(
            "{engine} --threads {threads} {extra:?}: exit {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let run = JsonRun::parse(&stdout(&o))?;
    let table = run.conntrack;
    let mut per_packet = Vec::new();
    let mut egress_at = Vec::new();
    for v in &run.frames {
        let fate = if v["verdict"] == "accept" {
            "accept"
        } else {
            "drop"
        };
        per_packet.push((
            fate.to_string(),
            v["ct_state"].as_str().unwrap_or("-").to_string(),
        ));
        if fate == "accept" {
            // Delivered to the node: written, but it did not leave.
            let delivered = v["hooks"]
                .as_array()
                .and_then(|h| h.last())
                .is_some_and(|h| h == "input");
            egress_at.push(!delivered);
        }
        for s in v["sent"].as_array().into_iter().flatten() {
            if s["verdict"] == "accept" {
                egress_at.push(true);
            }
        }
    }
    let written = read_pcap(&std::fs::read(&acc).unwrap_or_default());
    if written.len() != egress_at.len() {
        return Err(format!(
            "{engine}: {} packets written, {} passed",
            written.len(),
            egress_at.len()
        )
        .into());
    }
    let egress = written
        .into_iter()
        .zip(egress_at)
        .filter(|(_, e)| *e)
        .map(|(p, _)| p)
        .collect();
    Ok(Answer {
        per_packet,
        egress,
        table,
        routes: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------------------
// The comparison.

fn kube_proxy(unavailable: Option<&str>) -> Result<(), Failed> {
    if let Some(w) = unavailable {
        return Err(
            format!("kernel oracle required (NFC_REQUIRE_ORACLE=1) but unavailable: {w}").into(),
        );
    }
    let dir = common::tmp_dir("kube");
    // nfc runs the import of what the kernel loads, and the example (the same rules, as written by hand).
    let imported = nfc(&[
        "import",
        "iptables-save",
        root().join("testdata/ipt/kube-proxy.ipt").to_str().unwrap(),
    ]);
    if imported.status.code() != Some(0) {
        return Err(format!("import: {}", String::from_utf8_lossy(&imported.stderr)).into());
    }
    let import = dir.join("kube-proxy-import.nfr");
    std::fs::write(&import, &imported.stdout).unwrap();
    let example = root().join("examples/kube-proxy.nfr");

    let cap = capture();
    let (rep, out) = lab(
        &dir,
        &root().join("testdata/ipt/kube-proxy.ipt"),
        &cap.pkts,
        LAB,
        &cap.replies,
    )?;
    let k = kernel_answer(&rep, &out, &cap.pkts, "eth0", "cni0");
    let kmap = mappings(&k.table);
    // The connections that went through the draws: those whose first packet is in the capture and reaches a
    // service.
    let flows: BTreeSet<Tuple> = cap
        .pkts
        .iter()
        .enumerate()
        .filter(|(i, _)| !cap.replies.contains(i))
        .filter_map(|(_, p)| Tuple::of(p))
        .filter(|t| {
            (t.dst == ip(NODE) && t.dport == NODEPORT)
                || (t.dst == ip(WEB_VIP) && t.dport == 80)
                || (t.dst == ip(DNS_VIP) && t.dport == 53)
        })
        .collect();
    let mut bad = check_mappings("kernel", &kmap, &flows);
    for (dns, endpoints) in [(false, &WEB[..]), (true, &DNS[..])] {
        let n = spread(&kmap, &flows, dns);
        if endpoints.iter().any(|e| !n.contains_key(&ip(e))) {
            bad.push(format!("kernel: not every endpoint used: {n:?}"));
        }
    }
    let ids = ids(&cap.pkts);
    let template = dir.join("template.pcap");
    std::fs::write(&template, pcap(&cap.pkts)).unwrap();
    for seed in ["1", "7"] {
        let extra = [
            "--seed",
            seed,
            "--iface",
            "eth0=192.168.0.10/24",
            "--iface",
            "cni0=10.244.0.1/24",
        ];
        for (engine, rules) in [
            ("interp", &import),
            ("jit", &import),
            ("ipt", &import),
            ("interp", &example),
            ("jit", &example),
        ] {
            for threads in ["1", "2"] {
                let what = format!(
                    "{} {engine} --threads {threads} --seed {seed}",
                    rules.file_name().unwrap().to_string_lossy()
                );
                // The first run tells nfc's mappings, the second answers them.
                let first = ours(rules, &template, engine, threads, &extra, &k.routes)?;
                let nmap = mappings(&first.table);
                let answered = dir.join(format!("answered-{seed}.pcap"));
                std::fs::write(&answered, answer(&cap, &nmap)).unwrap();
                let n = ours(rules, &answered, engine, threads, &extra, &k.routes)?;
                let nmap2 = mappings(&n.table);
                if flows.iter().any(|f| nmap.get(f) != nmap2.get(f)) {
                    bad.push(format!("{what}: the replies changed the mappings"));
                }
                let mut b = check_mappings(&what, &nmap2, &flows);
                // A loose, deterministic bound: a fixed seed gives every endpoint a fair share.
                for (dns, endpoints, total) in
                    [(false, &WEB[..], WEB_FLOWS), (true, &DNS[..], DNS_FLOWS)]
                {
                    let s = spread(&nmap2, &flows, dns);
                    let fair = usize::from(total) / endpoints.len() / 3;
                    if endpoints
                        .iter()
                        .any(|e| s.get(&ip(e)).copied().unwrap_or(0) < fair)
                    {
                        b.push(format!("{what}: uneven spread {s:?}"));
                    }
                }
                b.extend(compare(&what, &k, &n, &kmap, &nmap2, &flows, &ids));
                println!(
                    "{what}: {} packets, {} left, {} entries; web {:?}, dns {:?}; {} differences",
                    n.per_packet.len(),
                    n.egress.len(),
                    n.table.len(),
                    spread(&nmap2, &flows, false).values().collect::<Vec<_>>(),
                    spread(&nmap2, &flows, true).values().collect::<Vec<_>>(),
                    b.len()
                );
                bad.extend(b);
            }
        }
    }
    println!(
        "kernel: {} packets, {} left, {} entries; web {:?}, dns {:?}",
        k.per_packet.len(),
        k.egress.len(),
        k.table.len(),
        spread(&kmap, &flows, false).values().collect::<Vec<_>>(),
        spread(&kmap, &flows, true).values().collect::<Vec<_>>()
    );
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n").into())
    }
}

/// The strict comparison of nfc's answer `n` with the kernel's `k`: per packet the fate and ct state; the packets
/// that left, byte for byte (the host's own answers without IP id and header checksum), and the conntrack tables
/// with both tuples, after the kernel's mapping of each of the `flows` (`kmap`, by original tuple) is replaced by
/// nfc's (`nmap`) in its packets and entries.
fn compare(
    what: &str,
    k: &Answer,
    n: &Answer,
    kmap: &BTreeMap<Tuple, Tuple>,
    nmap: &BTreeMap<Tuple, Tuple>,
    flows: &BTreeSet<Tuple>,
    ids: &[u16],
) -> Vec<String> {
    let mut b = Vec::new();
    diff_per_packet(what, &k.per_packet, &n.per_packet, &mut b);
    // The kernel's packets and table as they would be with nfc's mappings.
    let swap: BTreeMap<Tuple, Tuple> = flows
        .iter()
        .filter_map(|f| {
            let (kr, nr) = (kmap.get(f)?, nmap.get(f)?);
            Some((kr.invert(), nr.invert()))
        })
        .collect();
    let mut kegress: Vec<String> = k
        .egress
        .iter()
        .map(|p| match Tuple::of(p).and_then(|t| swap.get(&t)) {
            Some(t) => strict_key(&retuple(p, t), ids),
            None => strict_key(p, ids),
        })
        .collect();
    let mut negress: Vec<String> = n.egress.iter().map(|p| strict_key(p, ids)).collect();
    kegress.sort();
    negress.sort();
    if kegress != negress {
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|x| !b.contains(x)).cloned().collect()
        };
        b.push(format!(
            "{what}: packets that left differ\n    kernel only: {:?}\n    nfc only:    {:?}",
            only(&kegress, &negress),
            only(&negress, &kegress)
        ));
    }
    let ktable = table_keys(&k.table, |o, r| match nmap.get(&o) {
        Some(nr) if flows.contains(&o) => *nr,
        _ => r,
    });
    let ntable = table_keys(&n.table, |_, r| r);
    if ktable != ntable {
        b.push(format!(
            "{what}: conntrack tables differ\n    kernel: {ktable:?}\n    nfc:    {ntable:?}"
        ));
    }
    b
}

/// 11 UDP connections through a 10-port SNAT range, with a filter chain after NAT in POSTROUTING: the kernel's
/// `get_unique_tuple` finds no free port for the eleventh and gives up, keeping a clashing tuple, so its packet
/// goes on through that chain (whose counter sees all 11) and is dropped at confirm (`insert_failed`). The ten
/// bindings take every port of the range, each connection its own, which port drawn at random (compared after
/// substitution, as for kube-proxy).
fn snat_range_exhausted(unavailable: Option<&str>) -> Result<(), Failed> {
    if let Some(w) = unavailable {
        return Err(
            format!("kernel oracle required (NFC_REQUIRE_ORACLE=1) but unavailable: {w}").into(),
        );
    }
    let dir = common::tmp_dir("kube-snat");
    let rules = dir.join("snat.nft");
    std::fs::write(
        &rules,
        "table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority 100; policy accept;\n\
         \t\tip saddr 10.0.0.0/8 meta l4proto udp snat to 198.51.100.1:20000-20009\n\t}\n}\n\
         table ip filter {\n\tchain post {\n\t\ttype filter hook postrouting priority 200; policy accept;\n\
         \t\tcounter\n\t}\n}\n",
    )
    .unwrap();
    let pkts: Vec<Vec<u8>> = (0..11)
        .map(|i| udp("10.0.0.2", "203.0.113.9", 30000 + i, 53, b"q", 64, i + 1))
        .collect();
    let (rep, out) = lab(&dir, &rules, &pkts, &["--right", "203.0.113.0/24"], &[])?;
    let k = kernel_answer(&rep, &out, &pkts, "left", "right");
    let listing = std::fs::read_to_string(out.join("nft-ruleset.txt")).unwrap_or_default();
    let stats = std::fs::read_to_string(out.join("conntrack-stats.txt")).unwrap_or_default();
    let k_insert_failed: u64 = stats
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("insert_failed=")?.parse::<u64>().ok())
        .sum();
    let counted = |text: &str| -> Option<u64> {
        let post = &text[text.find("chain post ")?..];
        post.split("counter packets ")
            .nth(1)?
            .split(' ')
            .next()?
            .parse()
            .ok()
    };
    let k_counted = counted(&listing);
    let flows: BTreeSet<Tuple> = pkts.iter().filter_map(|p| Tuple::of(p)).collect();
    let kmap = mappings(&k.table);
    let ports = |m: &BTreeMap<Tuple, Tuple>| -> Vec<u16> {
        let mut v: Vec<u16> = m
            .values()
            .filter(|r| r.dst == ip("198.51.100.1"))
            .map(|r| r.dport)
            .collect();
        v.sort_unstable();
        v
    };
    let mut bad = Vec::new();
    let all: Vec<u16> = (20000..20010).collect();
    if ports(&kmap) != all || k_insert_failed != 1 || k_counted != Some(11) {
        bad.push(format!(
            "kernel: ports {:?}, insert_failed {k_insert_failed}, counted {k_counted:?}",
            ports(&kmap)
        ));
    }
    let ids = ids(&pkts);
    let file = dir.join("cap.pcap");
    std::fs::write(&file, pcap(&pkts)).unwrap();
    let nfr = dir.join("snat.nfr");
    std::fs::copy(&rules, &nfr).unwrap();
    for engine in ["interp", "jit"] {
        for threads in ["1", "2"] {
            let what = format!("{engine} --threads {threads}");
            let n = ours(&nfr, &file, engine, threads, &[], &k.routes)?;
            let nmap = mappings(&n.table);
            bad.extend(compare(&what, &k, &n, &kmap, &nmap, &flows, &ids));
            let mut args = vec![
                "run",
                "pcap",
                nfr.to_str().unwrap(),
                file.to_str().unwrap(),
                "--engine",
                engine,
                "--threads",
                threads,
            ];
            for r in &k.routes {
                args.extend(["--iface", r]);
            }
            let text = stdout(&nfc(&args));
            if ports(&nmap) != all
                || counted(&text) != Some(11)
                || !text.contains("insert failed 1,")
                || !text.contains("nat failed 0,")
            {
                bad.push(format!("{what}: ports {:?}\n{text}", ports(&nmap)));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n").into())
    }
}

/// The source of the host's ICMP errors about forwarded packets: `icmp_send` routes the error back to the
/// packet's source and takes the address of the interface it leaves by (`inet_select_addr`), so a reject's
/// unreachable and ip_forward's time exceeded about a packet from the left come from the left interface's
/// address, about one from the right from the right one's.
fn icmp_error_source(unavailable: Option<&str>) -> Result<(), Failed> {
    if let Some(w) = unavailable {
        return Err(
            format!("kernel oracle required (NFC_REQUIRE_ORACLE=1) but unavailable: {w}").into(),
        );
    }
    let dir = common::tmp_dir("kube-icmp");
    let rules = dir.join("reject.nft");
    std::fs::write(
        &rules,
        "table ip filter {\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\
         \t\tudp dport 53 reject\n\t\ttcp dport 25 reject with tcp reset\n\t}\n}\n",
    )
    .unwrap();
    let (c, s) = ("10.1.2.3", "192.168.5.5");
    let pkts = vec![
        udp(c, s, 1000, 53, b"q", 64, 1),
        udp(s, c, 1001, 53, b"q", 64, 2),
        udp(c, s, 1002, 123, b"t", 1, 3),
        udp(s, c, 1003, 123, b"t", 1, 4),
        tcp(c, s, 4000, 25, 1, 0, SYN, b"", 5),
    ];
    let addrs = ["left=10.1.2.1/24", "right=192.168.5.1/24"];
    let (rep, out) = lab(
        &dir,
        &rules,
        &pkts,
        &[
            "--left",
            "10.1.2.0/24",
            "--if-addr",
            addrs[0],
            "--if-addr",
            addrs[1],
        ],
        &[],
    )?;
    let k = kernel_answer(&rep, &out, &pkts, "left", "right");
    let mut bad = Vec::new();
    let sources: BTreeSet<[u8; 4]> = k
        .egress
        .iter()
        .filter(|p| p[9] == 1)
        .map(|p| p[12..16].try_into().unwrap())
        .collect();
    if sources != BTreeSet::from([ip("10.1.2.1"), ip("192.168.5.1")]) {
        bad.push(format!("kernel: ICMP errors from {sources:?}"));
    }
    let file = dir.join("cap.pcap");
    std::fs::write(&file, pcap(&pkts)).unwrap();
    let nfr = dir.join("reject.nfr");
    std::fs::copy(&rules, &nfr).unwrap();
    let ids = ids(&pkts);
    let none = BTreeMap::new();
    for engine in ["interp", "jit", "ipt"] {
        for threads in ["1", "2"] {
            let what = format!("{engine} --threads {threads}");
            let extra = ["--iface", addrs[0], "--iface", addrs[1]];
            let n = ours(&nfr, &file, engine, threads, &extra, &k.routes)?;
            bad.extend(compare(&what, &k, &n, &none, &none, &BTreeSet::new(), &ids));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n").into())
    }
}

/// The table's entries as compared ([`ct_key`] with both tuples, sorted), each reply tuple given by `reply`
/// (original, reply).
fn table_keys(table: &[String], reply: impl Fn(Tuple, Tuple) -> Tuple) -> Vec<String> {
    let mut v: Vec<String> = table
        .iter()
        .filter_map(|l| {
            let key = ct_key(l, true)?;
            Some(match tuples(l) {
                Some((o, r)) => {
                    let (old, new) = (r.text(), reply(o, r).text());
                    // The reply tuple is the second one.
                    match key.find(&o.text()) {
                        Some(at) => {
                            let cut = at + o.text().len();
                            format!("{}{}", &key[..cut], key[cut..].replacen(&old, &new, 1))
                        }
                        None => key,
                    }
                }
                None => key,
            })
        })
        .collect();
    v.sort();
    v
}
