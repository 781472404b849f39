//! Writes the example captures in `examples/` (`cargo run -p nfc --example gen_captures [DIR]`). Every byte is
//! computed here — fixed addresses, ports, sequence numbers, MACs and timestamps — so the files are the same on
//! every run and machine (`nfc/tests/run_cli.rs` regenerates them into a temp dir and compares).
//!
//! * `server.pcap` for `examples/server.nfr` (the host is 203.0.113.1): ssh from the admin net and from a
//!   blocked source, http and https handshakes with the server's replies, a burst of pings within the `limit`'s
//!   burst, invalid TCP (SYN+FIN, a stray RST), a DNS query nobody serves, and one packet passing by.
//! * `router.pcap` for `examples/router.nfr` (the router is 192.168.1.1 on eth1 and 198.51.100.1 on eth0): a LAN
//!   host browsing the web (forwarded, masqueraded: the server's answers arrive addressed to the router's WAN
//!   address), asking the router for DNS, the outside pinging and probing the router, a connection to the
//!   forwarded port 80 (DNATed to 192.168.1.10:8080, whose answers arrive from the LAN), an unsolicited
//!   connection to the LAN and a stray RST. Every packet is as the router receives it, before its NAT.
//! * `ftp.pcap` for `examples/ftp.nfr` (the FTP server is 203.0.113.1): a passive-mode session — login, `PASV`,
//!   the server's `227` naming port 50000, the data connection to it (RELATED: the ftp helper expected it),
//!   `EPSV` with a `229` naming port 50001 and its data connection, then a probe of port 50002 that nothing
//!   expected (dropped).
//! * `ftp-nat.pcap` for `examples/ftp-nat.nfr` (the router is 10.0.0.1 on eth1 and 198.51.100.1 on eth0): a LAN
//!   client's active-mode session with a server outside — login, `PORT` naming its LAN address (the router
//!   writes it again, 3 bytes longer; the server acknowledges what it received), the data connection the server
//!   opens from port 20 to the router's address (RELATED, DNATed to the client), the transfer and `QUIT`; then a
//!   connection from outside straight to the client, which nothing expects (dropped).
//! * `kube-proxy.pcap` for `examples/kube-proxy.nfr` (the node is 192.168.0.10 on eth0, its pods on cni0 at
//!   10.244.0.0/24): twelve clients on the node network opening connections to the NodePort 30080 (DNATed to one
//!   of the three web endpoints at random, masqueraded), six from a pod to the web service's cluster IP, four DNS
//!   queries from a pod to the dns service, and one connection from outside to a pod directly (dropped). Only
//!   the clients' first packets: which endpoint answers is the replay's random choice.

use std::net::IpAddr;
use std::path::Path;

use nfr_runtime::pcap::{linktype, pcap_header, pcap_record};
use nfr_runtime::wire::build;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// Collects Ethernet frames with timestamps and renders a classic pcap.
struct Capture {
    frames: Vec<(u64, Vec<u8>)>,
    t_us: u64,
}

impl Capture {
    fn new() -> Capture {
        // 2023-11-14 22:13:20 UTC.
        Capture {
            frames: Vec::new(),
            t_us: 1_700_000_000_000_000,
        }
    }

    /// Adds an IPv4 datagram `dt_us` after the previous frame.
    fn add(&mut self, dt_us: u64, ip: Vec<u8>) {
        self.t_us += dt_us;
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
        f.extend_from_slice(&ip);
        self.frames.push((self.t_us, f));
    }

    fn bytes(&self) -> Vec<u8> {
        let mut o = pcap_header(linktype::ETHERNET, 65535).to_vec();
        for (t, f) in &self.frames {
            o.extend(pcap_record(*t, f.len() as u32, f));
        }
        o
    }
}

fn a(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// A TCP segment.
#[allow(clippy::too_many_arguments)]
fn tcp(src: &str, dst: &str, sp: u16, dp: u16, seq: u32, ack: u32, fl: u8, data: &[u8]) -> Vec<u8> {
    build::tcp(a(src), a(dst), sp, dp, seq, ack, fl, 64240, &[], data)
}

/// Client handshake with a server, optional request and response, as (client->server, server->client) pairs.
fn handshake(c: &mut Capture, cl: &str, cp: u16, sv: &str, sp: u16, req: &[u8], resp: &[u8]) {
    let (ci, si) = (1000u32, 5000u32);
    c.add(10_000, tcp(cl, sv, cp, sp, ci, 0, SYN, &[]));
    c.add(1_000, tcp(sv, cl, sp, cp, si, ci + 1, SYN | ACK, &[]));
    c.add(1_000, tcp(cl, sv, cp, sp, ci + 1, si + 1, ACK, &[]));
    if !req.is_empty() {
        c.add(1_000, tcp(cl, sv, cp, sp, ci + 1, si + 1, PSH | ACK, req));
        c.add(
            1_000,
            tcp(
                sv,
                cl,
                sp,
                cp,
                si + 1,
                ci + 1 + req.len() as u32,
                PSH | ACK,
                resp,
            ),
        );
    }
}

/// A handshake, a request and its response through a NAT, each packet as the router receives it: the client's
/// from `cl` to `to`, the server's from `sv` to `back`.
fn handshake_nat(
    c: &mut Capture,
    (cl, to): ((&str, u16), (&str, u16)),
    (sv, back): ((&str, u16), (&str, u16)),
    req: &[u8],
    resp: &[u8],
) {
    let (ci, si) = (1000u32, 5000u32);
    let fwd = |seq, ack, fl, data| tcp(cl.0, to.0, cl.1, to.1, seq, ack, fl, data);
    let rev = |seq, ack, fl, data| tcp(sv.0, back.0, sv.1, back.1, seq, ack, fl, data);
    c.add(10_000, fwd(ci, 0, SYN, &[]));
    c.add(1_000, rev(si, ci + 1, SYN | ACK, &[]));
    c.add(1_000, fwd(ci + 1, si + 1, ACK, &[]));
    c.add(1_000, fwd(ci + 1, si + 1, PSH | ACK, req));
    let end = ci + 1 + req.len() as u32;
    c.add(1_000, rev(si + 1, end, PSH | ACK, resp));
}

/// `examples/server.pcap`.
pub fn server() -> Vec<u8> {
    let mut c = Capture::new();
    let me = "203.0.113.1";
    // ssh from the admin net: accepted, then established.
    handshake(
        &mut c,
        "192.0.2.10",
        40001,
        me,
        22,
        b"SSH-2.0-client\r\n",
        b"SSH-2.0-server\r\n",
    );
    // ssh from elsewhere: dropped (and retransmitted, dropped again).
    c.add(
        10_000,
        tcp("198.51.100.7", me, 40002, 22, 7000, 0, SYN, &[]),
    );
    c.add(
        1_000_000,
        tcp("198.51.100.7", me, 40002, 22, 7000, 0, SYN, &[]),
    );
    // http with a request and a response, https handshake only.
    handshake(
        &mut c,
        "198.51.100.20",
        40003,
        me,
        80,
        b"GET / HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    handshake(&mut c, "198.51.100.21", 40004, me, 443, b"", b"");
    // Five pings from five hosts within 5 ms: the 5/second limit's burst of 5 lets all of them through (the
    // kernel oracle replays without timestamps, so a sixth would pass or not depending on its pace).
    for i in 0..5u8 {
        let src = format!("198.51.100.{}", 30 + i);
        c.add(
            1_000,
            build::icmp(
                a(&src),
                a(me),
                8,
                0,
                build::echo(0x100 + u16::from(i), 1),
                b"ping-ping-ping-pi",
            ),
        );
    }
    // Invalid TCP: SYN+FIN, and an RST for no connection.
    c.add(
        10_000,
        tcp("198.51.100.50", me, 40005, 22, 1, 0, SYN | FIN, &[]),
    );
    c.add(10_000, tcp("198.51.100.51", me, 40006, 80, 1, 0, RST, &[]));
    // DNS query to a host that serves none.
    c.add(
        10_000,
        build::udp(
            a("198.51.100.60"),
            a(me),
            53000,
            53,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
        ),
    );
    // Traffic between two other hosts seen on the wire (the host forwards nothing).
    c.add(
        10_000,
        tcp("198.51.100.70", "198.51.100.71", 40007, 25, 1, 0, SYN, &[]),
    );
    // The admin closes the ssh session.
    c.add(
        10_000,
        tcp("192.0.2.10", me, 40001, 22, 1017, 5017, FIN | ACK, &[]),
    );
    c.add(
        1_000,
        tcp(me, "192.0.2.10", 22, 40001, 5017, 1018, FIN | ACK, &[]),
    );
    c.add(
        1_000,
        tcp("192.0.2.10", me, 40001, 22, 1018, 5018, ACK, &[]),
    );
    c.bytes()
}

/// `examples/router.pcap`.
pub fn router() -> Vec<u8> {
    let mut c = Capture::new();
    let (lan_host, lan_gw, wan_ip) = ("192.168.1.50", "192.168.1.1", "198.51.100.1");
    // A LAN host asks the router for DNS (input) and gets an answer (output).
    c.add(
        10_000,
        build::udp(
            a(lan_host),
            a(lan_gw),
            53001,
            53,
            b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
        ),
    );
    c.add(
        1_000,
        build::udp(
            a(lan_gw),
            a(lan_host),
            53,
            53001,
            b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00",
        ),
    );
    // ... and browses the web: forwarded LAN -> WAN and masqueraded to the router's address (the port kept);
    // the answers come back to that address and are forwarded to the LAN host.
    let web = ("93.184.216.34", 443);
    handshake_nat(
        &mut c,
        ((lan_host, 50000), web),
        (web, (wan_ip, 50000)),
        b"\x16\x03\x01\x00\x05hello",
        b"\x16\x03\x03\x00\x05world",
    );
    // The outside pings the router (accepted) and tries its ssh (dropped by policy).
    c.add(
        10_000,
        build::icmp(
            a("203.0.113.9"),
            a(wan_ip),
            8,
            0,
            build::echo(7, 1),
            b"abcdefgh",
        ),
    );
    c.add(
        1_000,
        build::icmp(
            a(wan_ip),
            a("203.0.113.9"),
            0,
            0,
            build::echo(7, 1),
            b"abcdefgh",
        ),
    );
    c.add(
        10_000,
        tcp("203.0.113.9", wan_ip, 51000, 22, 1, 0, SYN, &[]),
    );
    // The forwarded port: DNATed to 192.168.1.10:8080 and forwarded; the LAN host answers from there.
    handshake_nat(
        &mut c,
        (("203.0.113.9", 51001), (wan_ip, 80)),
        (("192.168.1.10", 8080), ("203.0.113.9", 51001)),
        b"GET / HTTP/1.0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n",
    );
    // Unsolicited connection from the WAN to a LAN host: dropped by the forward policy.
    c.add(
        10_000,
        tcp("203.0.113.9", lan_host, 51002, 22, 1, 0, SYN, &[]),
    );
    // A stray RST towards the LAN: invalid, dropped and counted.
    c.add(
        10_000,
        tcp("93.184.216.35", lan_host, 443, 50001, 1, 0, RST, &[]),
    );
    c.bytes()
}

/// One direction of a TCP conversation: its next sequence number and the peer's.
struct Half<'a> {
    me: (&'a str, u16),
    peer: (&'a str, u16),
    seq: u32,
    ack: u32,
}

impl Half<'_> {
    /// Sends `data` (PSH|ACK) and advances the sequence number.
    fn send(&mut self, c: &mut Capture, data: &[u8]) {
        let (m, p) = (self.me, self.peer);
        c.add(
            2_000,
            tcp(m.0, p.0, m.1, p.1, self.seq, self.ack, PSH | ACK, data),
        );
        self.seq += data.len() as u32;
    }
}

/// A handshake from `cl` to `sv`; the two halves afterwards (client, server).
fn open<'a>(c: &mut Capture, cl: (&'a str, u16), sv: (&'a str, u16)) -> (Half<'a>, Half<'a>) {
    let (ci, si) = (7000u32, 9000u32);
    c.add(10_000, tcp(cl.0, sv.0, cl.1, sv.1, ci, 0, SYN, &[]));
    c.add(
        1_000,
        tcp(sv.0, cl.0, sv.1, cl.1, si, ci + 1, SYN | ACK, &[]),
    );
    c.add(1_000, tcp(cl.0, sv.0, cl.1, sv.1, ci + 1, si + 1, ACK, &[]));
    (
        Half {
            me: cl,
            peer: sv,
            seq: ci + 1,
            ack: si + 1,
        },
        Half {
            me: sv,
            peer: cl,
            seq: si + 1,
            ack: ci + 1,
        },
    )
}

/// Keeps the two halves' acknowledgement numbers in step after a send.
fn sync(a: &mut Half<'_>, b: &mut Half<'_>) {
    a.ack = b.seq;
    b.ack = a.seq;
}

/// `examples/ftp.pcap`.
pub fn ftp() -> Vec<u8> {
    let mut c = Capture::new();
    let (sv, cl) = ("203.0.113.1", "198.51.100.7");
    let (mut k, mut s) = open(&mut c, (cl, 40100), (sv, 21));
    for (req, resp) in [
        (&b""[..], &b"220 nfc example FTP server\r\n"[..]),
        (b"USER anonymous\r\n", b"331 Password please\r\n"),
        (b"PASS guest\r\n", b"230 Logged in\r\n"),
        (
            b"PASV\r\n",
            b"227 Entering Passive Mode (203,0,113,1,195,80).\r\n",
        ),
    ] {
        if !req.is_empty() {
            k.send(&mut c, req);
            sync(&mut k, &mut s);
        }
        s.send(&mut c, resp);
        sync(&mut s, &mut k);
    }
    // The passive data connection the 227 announced: RELATED.
    k.send(&mut c, b"RETR motd\r\n");
    sync(&mut k, &mut s);
    let (_, mut d) = open(&mut c, (cl, 40101), (sv, 50000));
    d.send(&mut c, b"hello from the data connection\n");
    s.send(&mut c, b"226 Transfer complete\r\n");
    sync(&mut s, &mut k);
    // Extended passive mode (229) announces port 50001.
    k.send(&mut c, b"EPSV\r\n");
    sync(&mut k, &mut s);
    s.send(
        &mut c,
        b"229 Entering Extended Passive Mode (|||50001|)\r\n",
    );
    sync(&mut s, &mut k);
    let (mut e, _) = open(&mut c, (cl, 40102), (sv, 50001));
    e.send(&mut c, b"LIST\n");
    // A port nothing announced: NEW, dropped by the policy.
    c.add(10_000, tcp(cl, sv, 40103, 50002, 1, 0, SYN, &[]));
    c.bytes()
}

/// `examples/ftp-nat.pcap`: packets as the router receives them (the server's answers to the router's address).
pub fn ftp_nat() -> Vec<u8> {
    let mut c = Capture::new();
    let (cl, sv, wan) = ("10.0.0.50", "203.0.113.21", "198.51.100.1");
    c.add(10_000, tcp(cl, sv, 40200, 21, 7000, 0, SYN, &[]));
    c.add(1_000, tcp(sv, wan, 21, 40200, 9000, 7001, SYN | ACK, &[]));
    c.add(1_000, tcp(cl, sv, 40200, 21, 7001, 9001, ACK, &[]));
    let mut k = Half {
        me: (cl, 40200),
        peer: (sv, 21),
        seq: 7001,
        ack: 9001,
    };
    // The server sends to the router's address and acknowledges what left the router.
    let mut s = Half {
        me: (sv, 21),
        peer: (wan, 40200),
        seq: 9001,
        ack: 7001,
    };
    // What the router added to the client's stream.
    let mut grown = 0;
    for (req, resp) in [
        (&b""[..], &b"220 nfc example FTP server\r\n"[..]),
        (b"USER anonymous\r\n", b"331 Password please\r\n"),
        (b"PASS guest\r\n", b"230 Logged in\r\n"),
        // "10,0,0,50,195,80" leaves as "198,51,100,1,195,80".
        (
            b"PORT 10,0,0,50,195,80\r\n",
            b"200 PORT command successful\r\n",
        ),
        (b"RETR motd\r\n", b"150 Opening data connection\r\n"),
    ] {
        if !req.is_empty() {
            k.send(&mut c, req);
            if req.starts_with(b"PORT") {
                grown += 3;
            }
            s.ack = k.seq + grown;
        }
        s.send(&mut c, resp);
        k.ack = s.seq;
    }
    // The active data connection, from port 20 to the port the PORT named at the router's address.
    c.add(10_000, tcp(sv, wan, 20, 50000, 3000, 0, SYN, &[]));
    c.add(1_000, tcp(cl, sv, 50000, 20, 4000, 3001, SYN | ACK, &[]));
    c.add(1_000, tcp(sv, wan, 20, 50000, 3001, 4001, ACK, &[]));
    c.add(
        1_000,
        tcp(sv, wan, 20, 50000, 3001, 4001, PSH | ACK, b"hello\n"),
    );
    s.send(&mut c, b"226 Transfer complete\r\n");
    k.ack = s.seq;
    k.send(&mut c, b"QUIT\r\n");
    s.ack = k.seq + grown;
    s.send(&mut c, b"221 Goodbye\r\n");
    // From outside straight to the client: nothing expects it, dropped by the forward policy.
    c.add(10_000, tcp(sv, cl, 20, 50001, 8000, 0, SYN, &[]));
    c.bytes()
}

/// `examples/kube-proxy.pcap`.
pub fn kube_proxy() -> Vec<u8> {
    let mut c = Capture::new();
    for i in 0..12u16 {
        let client = format!("192.168.0.{}", 50 + i);
        c.add(
            10_000,
            tcp(&client, "192.168.0.10", 41000 + i, 30080, 1000, 0, SYN, &[]),
        );
    }
    for i in 0..6u16 {
        c.add(
            10_000,
            tcp("10.244.0.9", "10.96.0.20", 42000 + i, 80, 1000, 0, SYN, &[]),
        );
    }
    for i in 0..4u16 {
        let q = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00";
        c.add(
            10_000,
            build::udp(a("10.244.0.9"), a("10.96.0.10"), 43000 + i, 53, q),
        );
    }
    c.add(
        10_000,
        tcp("192.168.0.99", "10.244.0.5", 44000, 8080, 1000, 0, SYN, &[]),
    );
    c.bytes()
}

/// Writes every capture into `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for (n, bytes) in [
        ("server.pcap", server()),
        ("router.pcap", router()),
        ("ftp.pcap", ftp()),
        ("ftp-nat.pcap", ftp_nat()),
        ("kube-proxy.pcap", kube_proxy()),
    ] {
        std::fs::write(dir.join(n), bytes)?;
        names.push(n.to_string());
    }
    Ok(names)
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"));
    for n in write_all(&dir)? {
        println!("wrote {}", dir.join(n).display());
    }
    Ok(())
}
