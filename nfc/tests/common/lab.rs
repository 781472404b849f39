//! Packets and captures for the tests that replay through the kernel's forwarding lab
//! (`../shared/oracle/kernel_verdicts.py`) and through `nfc run pcap`: IPv4 datagrams built with their
//! checksums, raw-IP pcaps, the datagrams of a pcap, and the keys packets and `conntrack -L` lines are
//! compared by.

use nfr_runtime::wire::build;
use std::net::IpAddr;

/// An address literal.
pub fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Sets an IPv4 datagram's TTL, id and DF bit and fixes its header checksum.
pub fn ip4(mut p: Vec<u8>, ttl: u8, id: u16, df: bool) -> Vec<u8> {
    p[8] = ttl;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = if df { 0x40 } else { 0 };
    p[7] = 0;
    p[10..12].fill(0);
    let c = nfr_runtime::wire::checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

pub fn udp(src: &str, dst: &str, sp: u16, dp: u16, data: &[u8], ttl: u8, id: u16) -> Vec<u8> {
    ip4(build::udp(a(src), a(dst), sp, dp, data), ttl, id, false)
}

#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: &str,
    dst: &str,
    sp: u16,
    dp: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
    id: u16,
) -> Vec<u8> {
    ip4(
        build::tcp(a(src), a(dst), sp, dp, seq, ack, flags, 64240, &[], data),
        64,
        id,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn icmp(
    src: &str,
    dst: &str,
    ty: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
    ttl: u8,
    id: u16,
) -> Vec<u8> {
    ip4(
        build::icmp(a(src), a(dst), ty, code, rest, body),
        ttl,
        id,
        false,
    )
}

/// A fragment of the IPv4 datagram `d` (20-byte header): payload bytes `off..off + len`, MF as given.
pub fn frag(d: &[u8], off: usize, len: usize, mf: bool) -> Vec<u8> {
    let body = &d[20..];
    let end = (off + len).min(body.len());
    let mut p = d[..20].to_vec();
    p.extend_from_slice(&body[off..end]);
    let tot = p.len() as u16;
    p[2..4].copy_from_slice(&tot.to_be_bytes());
    let fo = (off / 8) as u16 | if mf { 0x2000 } else { 0 };
    p[6..8].copy_from_slice(&fo.to_be_bytes());
    p[10..12].fill(0);
    let c = nfr_runtime::wire::checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;

/// A raw-IP pcap (LINKTYPE_RAW 101), one packet a millisecond.
pub fn pcap(pkts: &[Vec<u8>]) -> Vec<u8> {
    use nfr_runtime::pcap::{pcap_header, pcap_record};
    let mut o = pcap_header(101, 262_144).to_vec();
    for (i, p) in pkts.iter().enumerate() {
        o.extend(pcap_record(
            1_700_000_000_000_000 + 1000 * i as u64,
            p.len() as u32,
            p,
        ));
    }
    o
}

/// The IP datagrams of a pcap (Ethernet 1 or raw 101).
pub fn read_pcap(b: &[u8]) -> Vec<Vec<u8>> {
    let le = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    if b.len() < 24 {
        return Vec::new();
    }
    let lt = le(20);
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let cap = le(o + 8) as usize;
        let f = &b[o + 16..(o + 16 + cap).min(b.len())];
        o += 16 + cap;
        let ip = match lt {
            1 if f.len() > 14 && f[12..14] == [8, 0] => &f[14..],
            101 => f,
            _ => continue,
        };
        if ip.first().is_some_and(|b| b >> 4 == 6) && ip.len() >= 40 {
            let tot = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
            out.push(ip[..tot].to_vec());
        } else if ip.len() >= 20 {
            let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
            out.push(ip[..tot].to_vec());
        }
    }
    out
}

/// A datagram as the strict (NAT) comparison sees it: every byte, but for packets that are not one of the case's
/// (the host's own answers, whose IP id the kernel picks) the IP id and header checksum.
pub fn strict_key(p: &[u8], ids: &[u16]) -> String {
    let mut p = p.to_vec();
    if p.len() >= 20 && p[0] >> 4 == 4 && !ids.contains(&u16::from_be_bytes([p[4], p[5]])) {
        p[4..6].fill(0);
        p[10..12].fill(0);
    }
    p.iter().map(|b| format!("{b:02x}")).collect()
}

/// The IP ids of a case's IPv4 packets.
pub fn ids(pkts: &[Vec<u8>]) -> Vec<u16> {
    pkts.iter()
        .filter(|p| p.len() >= 20 && p[0] >> 4 == 4)
        .map(|p| u16::from_be_bytes([p[4], p[5]]))
        .collect()
}

/// A `conntrack -L` line as compared: protocol, TCP state, the original tuple (`both`: and the reply tuple)
/// and the ASSURED / UNREPLIED flags (no timeout, counters, mark).
pub fn ct_key(line: &str, both: bool) -> Option<String> {
    let t: Vec<&str> = line.split_whitespace().collect();
    if t.len() < 4 || t[1].parse::<u8>().is_err() {
        return None;
    }
    let mut k = vec![t[0].to_string()];
    let mut seen = std::collections::BTreeSet::new();
    for w in &t[3..] {
        match w.split_once('=') {
            Some((name, _))
                if ["src", "dst", "sport", "dport", "type", "code", "id"].contains(&name)
                    && (seen.insert(name) || both) =>
            {
                k.push(w.to_string());
            }
            Some(_) => {}
            None if *w == "[ASSURED]"
                || *w == "[UNREPLIED]"
                || w.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
            {
                k.push(w.to_string())
            }
            None => {}
        }
    }
    Some(k.join(" "))
}

/// What `nfc run pcap ... --json` printed: each frame's line, and the final `conntrack -L` lines of the report.
pub struct JsonRun {
    pub frames: Vec<serde_json::Value>,
    pub conntrack: Vec<String>,
}

impl JsonRun {
    pub fn parse(text: &str) -> Result<JsonRun, String> {
        let mut run = JsonRun {
            frames: Vec::new(),
            conntrack: Vec::new(),
        };
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("{l}: {e}"))?;
            if let Some(r) = v.get("report") {
                run.conntrack = r["conntrack"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect();
            }
            if v.get("frame").is_some() {
                run.frames.push(v);
            }
        }
        Ok(run)
    }
}

/// One line in `bad` for each packet whose (fate, ct state) differs between the kernel's answer and nfc's, and one
/// when their numbers of packets differ; `what` names nfc's run. Returns the number of packets that agree.
pub fn diff_per_packet(
    what: &str,
    kernel: &[(String, String)],
    ours: &[(String, String)],
    bad: &mut Vec<String>,
) -> usize {
    let mut agree = 0;
    for (i, (kp, np)) in kernel.iter().zip(ours).enumerate() {
        if kp == np {
            agree += 1;
        } else {
            bad.push(format!(
                "{what} packet {}: kernel {} {}, nfc {} {}",
                i + 1,
                kp.0,
                kp.1,
                np.0,
                np.1
            ));
        }
    }
    if kernel.len() != ours.len() {
        bad.push(format!(
            "{what}: {} frames, kernel {}",
            ours.len(),
            kernel.len()
        ));
    }
    agree
}
