//! NAT against the kernel where the oracle's lab cannot follow it: the FTP helper's NAT (`nf_nat_ftp`: PORT,
//! 227 and EPRT text rewritten for the NATed address, the length change carried into later sequence and
//! acknowledgement numbers, the data connections NATed like their master) and IPv6 NAT (snat, dnat to an
//! address and port, masquerade, an ICMPv6 error about a NATed flow). Each case's capture and nftables ruleset
//! go through the kernel in `kernel/nat_lab.py` (a three-namespace forwarding lab for both families that
//! records every datagram the firewall sends, and completes the transport checksums the kernel leaves to the
//! device after a helper's rewrite) and through `nfc run pcap` on the interpreter and the JIT, with one and two
//! threads. Compared strictly: per packet the fate (something left or not) and the conntrack state, the
//! datagrams that left byte for byte (checksums included), and the conntrack table at the end with both tuples.
//!
//! Without the oracle (no `../shared/oracle`, not root, tools missing) the cases are reported as ignored; with
//! `NFC_REQUIRE_ORACLE=1` they fail instead.

mod common;

use common::lab::{ACK, FIN, JsonRun, PSH, SYN, a, ct_key, diff_per_packet, pcap};
use common::{nfc, root, shared, stdout};
use libtest_mimic::{Arguments, Failed, Trial};
use nfr_runtime::wire::build;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn main() {
    let args = Arguments::from_args();
    let why =
        common::gate::oracle_script("kernel_blob.py", &["nft", "conntrack", "python3", "ip"]).err();
    let ignored = common::gate::announce(
        why.as_ref()
            .map(|w| format!("kernel oracle unavailable: {w}"))
            .as_deref(),
    );
    let mut trials: Vec<Trial> = cases()
        .into_iter()
        .map(|case| {
            let w = why.clone();
            Trial::test(format!("kernel_{}", case.name), move || {
                run_case(&case, w.as_deref())
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    trials.push(Trial::test(
        "ftp_nat_rewrites_port_and_moves_acks_without_the_kernel",
        ftp_nat_without_the_kernel,
    ));
    libtest_mimic::run(&args, trials).exit();
}

/// What the kernel cases hold, checked without the kernel on the first FTP case: the `PORT` leaves with the
/// NATed address (4 bytes longer), the server's next acknowledgement leaves moved back by 4, the active data
/// connection is RELATED and leaves DNATed to the client, every TCP checksum is right, and the table lists the
/// data connection with both tuples.
fn ftp_nat_without_the_kernel() -> Result<(), Failed> {
    let case = ftp_snat();
    let dir = common::tmp_dir("nat-ftp-nokernel");
    std::fs::write(dir.join("rules.nft"), &case.rules).unwrap();
    std::fs::write(dir.join("cap.pcap"), pcap(&case.pkts)).unwrap();
    let mut interp = None;
    for engine in ["interp", "jit"] {
        let n = ours(&case, &dir, engine, "1", &[])?;
        let want: Vec<(String, String)> = case
            .expect
            .iter()
            .map(|e| {
                let (f, c) = e.split_once(' ').unwrap();
                (f.to_string(), c.to_string())
            })
            .collect();
        if n.per_packet != want {
            return Err(format!("{engine}: {:?}", n.per_packet).into());
        }
        let acc = read_pcap(&std::fs::read(dir.join(format!("acc-{engine}-1.pcap"))).unwrap());
        let port = acc
            .iter()
            .position(|p| p.ends_with(b"PORT 198,51,100,1,195,80\r\n"))
            .ok_or("no rewritten PORT")?;
        let seq = u32::from_be_bytes(acc[port][24..28].try_into().unwrap());
        let reply = &acc[port + 1];
        if u32::from_be_bytes(reply[28..32].try_into().unwrap()) != seq + 22 {
            return Err(
                format!("{engine}: the server's ack is not moved back: {reply:02x?}").into(),
            );
        }
        let data = &acc[port + 2];
        if data[16..20] != [10, 0, 0, 2] || data[22..24] != 50000u16.to_be_bytes() {
            return Err(format!("{engine}: the data connection is not DNATed: {data:02x?}").into());
        }
        for p in acc.iter().filter(|p| p[9] == 6) {
            let init = build::pseudo(&p[12..16], &p[16..20], 6, p.len() - 20);
            if nfr_runtime::wire::checksum(&p[20..], init) != 0 {
                return Err(format!("{engine}: bad TCP checksum: {p:02x?}").into());
            }
        }
        let data_entry = "tcp ESTABLISHED src=198.51.100.20 dst=198.51.100.1 sport=20 dport=50000 \
                          src=10.0.0.2 dst=198.51.100.20 sport=50000 dport=20";
        if !n.table.iter().any(|l| l.starts_with(data_entry)) {
            return Err(format!("{engine}: {:#?}", n.table).into());
        }
        interp.get_or_insert(n);
    }
    // The ipt engine: iptables attaches helpers through raw-table templates (`-j CT --helper ftp`), which
    // `--ftp-ports 21` stands for; the NAT table alone lowers to iptables and must give the same packets.
    let mut nat_only = ftp_snat();
    nat_only.rules = nat_only
        .rules
        .split("table ip nat")
        .nth(1)
        .map_or(String::new(), |t| format!("table ip nat{t}"));
    let dir2 = common::tmp_dir("nat-ftp-ipt");
    std::fs::write(dir2.join("rules.nft"), &nat_only.rules).unwrap();
    std::fs::write(dir2.join("cap.pcap"), pcap(&nat_only.pkts)).unwrap();
    let i = ours(&nat_only, &dir2, "ipt", "1", &["--ftp-ports", "21"])?;
    let interp = interp.ok_or("no interp run")?;
    if i != interp {
        return Err(format!("ipt --ftp-ports 21: {i:#?}\ninterp: {interp:#?}").into());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    src: &str,
    dst: &str,
    sp: u16,
    dp: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    build::tcp(a(src), a(dst), sp, dp, seq, ack, flags, 64240, &[], data)
}

/// The IP datagrams of a pcap (Ethernet 1 or raw 101), cut to their IP length.
fn read_pcap(b: &[u8]) -> Vec<Vec<u8>> {
    let mut r = nfr_runtime::pcap::PcapReader::new(b).unwrap();
    let mut out = Vec::new();
    while let Ok(Some(f)) = r.next_frame() {
        let d = f.data;
        let ip = match f.linktype {
            1 if d.len() > 14 => &d[14..],
            _ => d,
        };
        let tot = match ip.first().map(|b| b >> 4) {
            Some(4) if ip.len() >= 20 => usize::from(u16::from_be_bytes([ip[2], ip[3]])),
            Some(6) if ip.len() >= 40 => 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]])),
            _ => continue,
        };
        out.push(ip[..tot.min(ip.len())].to_vec());
    }
    out
}

fn hex(p: &[u8]) -> String {
    p.iter().map(|b| format!("{b:02x}")).collect()
}

struct Case {
    name: &'static str,
    rules: String,
    pkts: Vec<Vec<u8>>,
    /// The names of the firewall's interfaces on the left and on the right.
    ifs: [&'static str; 2],
    /// Prefixes on each side of the firewall.
    left: Vec<&'static str>,
    right: Vec<&'static str>,
    /// Addresses of the firewall's interfaces (`DEV=ADDRESS/LEN`), what masquerade maps to.
    if_addr: Vec<&'static str>,
    /// Per packet, what the kernel is known to do (`fate ct`), checked against the lab too.
    expect: Vec<&'static str>,
}

/// What one side (the kernel or an nfc run) did: per packet (fate, ct state), the datagrams that left (hex,
/// sorted), the conntrack table ([`ct_key`], sorted).
#[derive(Debug, PartialEq)]
struct Outcome {
    per_packet: Vec<(String, String)>,
    egress: Vec<String>,
    table: Vec<String>,
}

fn kernel(case: &Case, dir: &Path) -> Result<Outcome, Failed> {
    let out = dir.join("kernel.json");
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("nfc/tests/kernel/nat_lab.py"))
        .arg(shared("oracle"))
        .arg(dir.join("rules.nft"))
        .arg(dir.join("cap.pcap"))
        .arg(&out);
    for p in &case.left {
        cmd.args(["--left", p]);
    }
    for p in &case.right {
        cmd.args(["--right", p]);
    }
    for p in &case.if_addr {
        cmd.args(["--if-addr", p]);
    }
    cmd.args(["--left-if", case.ifs[0], "--right-if", case.ifs[1]]);
    let o = cmd.output().map_err(|e| format!("python3: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "the kernel lab failed: {}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let rep: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let mut per_packet = Vec::new();
    let mut egress = Vec::new();
    for p in rep["packets"].as_array().unwrap() {
        let left = p["left"].as_array().unwrap();
        let ct = match p["ct"].as_str().unwrap_or("") {
            "new" => "NEW",
            "established/original" => "EST",
            "established/reply" => "EST_REPLY",
            "related/original" => "REL",
            "related/reply" => "REL_REPLY",
            "invalid" => "INVALID",
            "untracked" => "UNTRACKED",
            _ => "-",
        };
        let fate = if left.is_empty() { "drop" } else { "accept" };
        per_packet.push((fate.to_string(), ct.to_string()));
        egress.extend(left.iter().map(|l| l["hex"].as_str().unwrap().to_string()));
    }
    egress.sort();
    let mut table: Vec<String> = rep["conntrack"]
        .as_str()
        .unwrap_or("")
        .lines()
        .filter_map(|l| ct_key(l, true))
        .collect();
    table.sort();
    Ok(Outcome {
        per_packet,
        egress,
        table,
    })
}

fn ours(
    case: &Case,
    dir: &Path,
    engine: &str,
    threads: &str,
    extra: &[&str],
) -> Result<Outcome, Failed> {
    let acc = dir.join(format!("acc-{engine}-{threads}.pcap"));
    let rules = dir.join("rules.nft");
    let cap = dir.join("cap.pcap");
    let mut args = vec![
        "run".to_string(),
        "pcap".into(),
        rules.display().to_string(),
        cap.display().to_string(),
        "--engine".into(),
        engine.into(),
        "--threads".into(),
        threads.into(),
        "--trace".into(),
        "--json".into(),
        "--write-accepted".into(),
        acc.display().to_string(),
    ];
    for (side, prefixes) in [(case.ifs[0], &case.left), (case.ifs[1], &case.right)] {
        for p in prefixes.iter() {
            args.extend(["--iface".into(), format!("{side}={p}")]);
        }
    }
    for p in &case.if_addr {
        args.extend(["--iface".into(), p.to_string()]);
    }
    args.extend(extra.iter().map(|x| x.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = nfc(&args);
    if o.status.code() != Some(0) {
        return Err(format!(
            "{engine} --threads {threads}: exit {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let run = JsonRun::parse(&stdout(&o))?;
    let mut table: Vec<String> = run
        .conntrack
        .iter()
        .filter_map(|l| ct_key(l, true))
        .collect();
    table.sort();
    let per_packet = run
        .frames
        .iter()
        .map(|v| {
            let fate = if v["verdict"] == "accept" {
                "accept"
            } else {
                "drop"
            };
            let ct = v["ct_state"].as_str().unwrap_or("-").to_string();
            (fate.to_string(), ct)
        })
        .collect();
    let mut egress: Vec<String> = read_pcap(&std::fs::read(&acc).unwrap_or_default())
        .iter()
        .map(|p| hex(p))
        .collect();
    egress.sort();
    Ok(Outcome {
        per_packet,
        egress,
        table,
    })
}

fn run_case(case: &Case, unavailable: Option<&str>) -> Result<(), Failed> {
    if let Some(w) = unavailable {
        return Err(
            format!("kernel oracle required (NFC_REQUIRE_ORACLE=1) but unavailable: {w}").into(),
        );
    }
    let dir = common::tmp_dir(&format!("nat-{}", case.name));
    std::fs::write(dir.join("rules.nft"), &case.rules).unwrap();
    std::fs::write(dir.join("cap.pcap"), pcap(&case.pkts)).unwrap();
    let k = kernel(case, &dir)?;
    let mut bad = Vec::new();
    for (i, want) in case.expect.iter().enumerate() {
        let got = k.per_packet.get(i).map(|(f, c)| format!("{f} {c}"));
        if got.as_deref() != Some(*want) {
            bad.push(format!(
                "packet {}: the kernel says {got:?}, the case expects {want:?}",
                i + 1
            ));
        }
    }
    for engine in ["interp", "jit"] {
        for threads in ["1", "2"] {
            let n = ours(case, &dir, engine, threads, &[])?;
            diff_per_packet(
                &format!("{engine} --threads {threads}"),
                &k.per_packet,
                &n.per_packet,
                &mut bad,
            );
            if n.table != k.table {
                bad.push(format!(
                    "{engine} --threads {threads}: conntrack tables differ\n    kernel: {:#?}\n    nfc:    {:#?}",
                    k.table, n.table
                ));
            }
            if n.egress != k.egress {
                let only = |x: &[String], y: &[String]| -> Vec<String> {
                    x.iter().filter(|p| !y.contains(p)).cloned().collect()
                };
                bad.push(format!(
                    "{engine} --threads {threads}: packets that left differ\n    kernel only: {:#?}\n    nfc only:    {:#?}",
                    only(&k.egress, &n.egress),
                    only(&n.egress, &k.egress)
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: rules\n{}\n{}", case.name, case.rules, bad.join("\n")).into())
    }
}

// ---------------------------------------------------------------------------------------------------------
// The cases.

fn cases() -> Vec<Case> {
    vec![
        ftp_nat_example(),
        ftp_snat(),
        ftp_dnat_pasv_epsv(),
        ftp6_snat_eprt_sack(),
        ftp_icmp_error_through_seq_adjust(),
        nat66(),
    ]
}

/// `examples/ftp-nat.nfr` on `examples/ftp-nat.pcap`, with the example's interfaces and addresses.
fn ftp_nat_example() -> Case {
    let cap = std::fs::read(root().join("examples/ftp-nat.pcap")).unwrap_or_default();
    let mut expect = vec!["accept NEW"];
    // Handshake, greeting, USER, PASS, PORT, RETR with their answers.
    for _ in 0..6 {
        expect.extend(["accept EST_REPLY", "accept EST"]);
    }
    expect.pop();
    // The data connection, the transfer's end, QUIT, and the connection nothing expects.
    expect.extend(["accept REL", "accept EST_REPLY", "accept EST", "accept EST"]);
    expect.extend([
        "accept EST_REPLY",
        "accept EST",
        "accept EST_REPLY",
        "drop NEW",
    ]);
    Case {
        name: "ftp_nat_example",
        rules: std::fs::read_to_string(root().join("examples/ftp-nat.nfr")).unwrap_or_default(),
        pkts: read_pcap(&cap),
        ifs: ["eth1", "eth0"],
        left: vec!["10.0.0.0/24"],
        right: vec!["0.0.0.0/0"],
        if_addr: vec!["eth0=198.51.100.1/24"],
        expect,
    }
}

/// nf_confirm runs `nf_ct_seq_adjust` on every packet of a connection with a sequence correction, except
/// RELATED replies, reading the bytes after the network header as a TCP header: an ICMP error the client sends
/// about the server's packet (RELATED, original direction) has its "sequence number" (the ICMP header's unused
/// word) moved by the offset once its sequence space is past the correction (a client ISN near 2^32 puts 0
/// there), and the "checksum" update lands on the quoted header's TTL and protocol, as the kernel sends it.
fn ftp_icmp_error_through_seq_adjust() -> Case {
    let (c, s, n) = ("10.0.0.2", "198.51.100.20", "198.51.100.1");
    let mut f = Ftp::new(c, s, s, n);
    f.cs = 3_000_000_000;
    f.open();
    f.client(PSH | ACK, b"PORT 10,0,0,2,195,80\r\n", "accept EST");
    f.c_off += 4;
    f.server(PSH | ACK, b"200 PORT ok\r\n", "accept EST_REPLY");
    // The server's last packet as the client received it, quoted (IP id 0x1234) in a port unreachable.
    let mut q = tcp(
        s,
        c,
        21,
        40000,
        f.ss - 13,
        f.cs,
        PSH | ACK,
        b"200 PORT ok\r\n",
    );
    q[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    q[10..12].fill(0);
    let ck = nfr_runtime::wire::checksum(&q[..20], 0);
    q[10..12].copy_from_slice(&ck.to_be_bytes());
    f.other(
        build::icmp(a(c), a(s), 3, 3, [0; 4], &q[..48]),
        "accept REL",
    );
    f.client(ACK, b"", "accept EST");
    Case {
        name: "ftp_icmp_error_through_seq_adjust",
        rules: FTP_HELPER.to_string()
            + "table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
               \t\toifname \"right\" snat to 198.51.100.1\n\t}\n}\n",
        pkts: f.pkts,
        ifs: ["left", "right"],
        left: vec!["10.0.0.0/24"],
        right: vec!["198.51.100.0/24"],
        if_addr: vec![],
        expect: f.expect,
    }
}

/// One FTP control connection as a capture: the client's packets (to the address it sees), the server's (to
/// the address it sees), each side's own sequence numbers, and what the NAT added to each side's stream (what
/// the other side acknowledges).
struct Ftp {
    c: &'static str,
    c_dst: &'static str,
    s: &'static str,
    s_dst: &'static str,
    cport: u16,
    cs: u32,
    ss: u32,
    c_off: u32,
    s_off: u32,
    opts: Vec<u8>,
    pkts: Vec<Vec<u8>>,
    expect: Vec<&'static str>,
}

impl Ftp {
    fn new(c: &'static str, c_dst: &'static str, s: &'static str, s_dst: &'static str) -> Ftp {
        Ftp {
            c,
            c_dst,
            s,
            s_dst,
            cport: 40000,
            cs: 1000,
            ss: 5000,
            c_off: 0,
            s_off: 0,
            opts: Vec::new(),
            pkts: Vec::new(),
            expect: Vec::new(),
        }
    }

    fn client(&mut self, flags: u8, data: &[u8], expect: &'static str) {
        let ack = if flags & ACK != 0 {
            self.ss.wrapping_add(self.s_off)
        } else {
            0
        };
        let opts = if flags & SYN != 0 {
            &self.opts[..]
        } else {
            &[]
        };
        self.pkts.push(build::tcp(
            a(self.c),
            a(self.c_dst),
            self.cport,
            21,
            self.cs,
            ack,
            flags,
            64240,
            opts,
            data,
        ));
        self.cs += data.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.expect.push(expect);
    }

    fn server_with(&mut self, flags: u8, data: &[u8], opts: &[u8], expect: &'static str) {
        let ack = self.cs.wrapping_add(self.c_off);
        self.pkts.push(build::tcp(
            a(self.s),
            a(self.s_dst),
            21,
            self.cport,
            self.ss,
            ack,
            flags,
            64240,
            opts,
            data,
        ));
        self.ss += data.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.expect.push(expect);
    }

    fn server(&mut self, flags: u8, data: &[u8], expect: &'static str) {
        let opts = if flags & SYN != 0 {
            self.opts.clone()
        } else {
            Vec::new()
        };
        self.server_with(flags, data, &opts, expect);
    }

    /// Handshake, the greeting and a login line each way (the helper reads a command only in a segment that
    /// starts just after a newline it saw).
    fn open(&mut self) {
        self.client(SYN, b"", "accept NEW");
        self.server(SYN | ACK, b"", "accept EST_REPLY");
        self.client(ACK, b"", "accept EST");
        self.server(PSH | ACK, b"220 nfc ftp\r\n", "accept EST_REPLY");
        self.client(PSH | ACK, b"USER ftp\r\n", "accept EST");
        self.server(PSH | ACK, b"230 ok\r\n", "accept EST_REPLY");
    }

    fn close(&mut self) {
        self.client(FIN | ACK, b"", "accept EST");
        self.server(FIN | ACK, b"", "accept EST_REPLY");
        self.client(ACK, b"", "accept EST");
    }

    /// A packet of another connection.
    fn other(&mut self, p: Vec<u8>, expect: &'static str) {
        self.pkts.push(p);
        self.expect.push(expect);
    }
}

const FTP_HELPER: &str = "table inet filter {\n\tct helper ftp-standard {\n\t\ttype \"ftp\" protocol tcp\n\t}\n\n\
    \tchain prerouting {\n\t\ttype filter hook prerouting priority filter; policy accept;\n\
    \t\ttcp dport 21 ct helper set \"ftp-standard\"\n\t}\n}\n";

/// An FTP client (10.0.0.2) SNATed to 198.51.100.1 talks to a server (198.51.100.20): `PORT` (4 bytes longer
/// once rewritten), the active data connection from port 20 (expected at the NATed address, DNATed back to
/// the client), `PASV` and its `227` (rewritten with the same text), the passive data connection (SNATed like
/// its master), `EPRT` (4 bytes longer again), and the close; the server acknowledges the lengths it received,
/// which conntrack takes the offsets out of.
fn ftp_snat() -> Case {
    let (c, s, n) = ("10.0.0.2", "198.51.100.20", "198.51.100.1");
    let mut f = Ftp::new(c, s, s, n);
    f.open();
    // "10,0,0,2,195,80" becomes "198,51,100,1,195,80".
    f.client(PSH | ACK, b"PORT 10,0,0,2,195,80\r\n", "accept EST");
    f.c_off += 4;
    f.server(PSH | ACK, b"200 PORT ok\r\n", "accept EST_REPLY");
    f.other(tcp(s, n, 20, 50000, 7000, 0, SYN, b""), "accept REL");
    f.other(
        tcp(c, s, 50000, 20, 9000, 7001, SYN | ACK, b""),
        "accept EST_REPLY",
    );
    f.other(tcp(s, n, 20, 50000, 7001, 9001, ACK, b""), "accept EST");
    f.client(PSH | ACK, b"PASV\r\n", "accept EST");
    f.server(
        PSH | ACK,
        b"227 Entering Passive Mode (198,51,100,20,195,81).\r\n",
        "accept EST_REPLY",
    );
    f.other(tcp(c, s, 40001, 50001, 3000, 0, SYN, b""), "accept REL");
    f.other(
        tcp(s, n, 50001, 40001, 8000, 3001, SYN | ACK, b""),
        "accept EST_REPLY",
    );
    // "|1|10.0.0.2|50002|" becomes "|1|198.51.100.1|50002|".
    f.client(PSH | ACK, b"EPRT |1|10.0.0.2|50002|\r\n", "accept EST");
    f.c_off += 4;
    f.server(PSH | ACK, b"200 EPRT ok\r\n", "accept EST_REPLY");
    f.close();
    Case {
        name: "ftp_snat_port_pasv_eprt",
        rules: FTP_HELPER.to_string()
            + "table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
               \t\toifname \"right\" snat to 198.51.100.1\n\t}\n}\n",
        pkts: f.pkts,
        ifs: ["left", "right"],
        left: vec!["10.0.0.0/24"],
        right: vec!["198.51.100.0/24"],
        if_addr: vec![],
        expect: f.expect,
    }
}

/// A server (10.1.1.20) behind DNAT (198.51.100.1:21): its `227` names its own address, written as the public
/// one (3 bytes longer; a retransmission of it is written the same way), so the client's passive data connection is expected at the public address and DNATed
/// to the server; `EPSV`'s `229` carries only a port (written again, same length).
fn ftp_dnat_pasv_epsv() -> Case {
    let (c, p, s) = ("203.0.113.5", "198.51.100.1", "10.1.1.20");
    let mut f = Ftp::new(c, p, s, c);
    f.open();
    f.client(PSH | ACK, b"PASV\r\n", "accept EST");
    f.server(
        PSH | ACK,
        b"227 Entering Passive Mode (10,1,1,20,195,80).\r\n",
        "accept EST_REPLY",
    );
    f.s_off += 3;
    // Retransmitted: written again the same way, the correction already made is not made twice.
    let again = f.pkts.last().unwrap().clone();
    f.other(again, "accept EST_REPLY");
    f.other(tcp(c, p, 41000, 50000, 100, 0, SYN, b""), "accept REL");
    f.other(
        tcp(s, c, 50000, 41000, 900, 101, SYN | ACK, b""),
        "accept EST_REPLY",
    );
    f.client(PSH | ACK, b"EPSV\r\n", "accept EST");
    f.server(
        PSH | ACK,
        b"229 Entering Extended Passive Mode (|||50001|)\r\n",
        "accept EST_REPLY",
    );
    f.other(tcp(c, p, 41001, 50001, 200, 0, SYN, b""), "accept REL");
    f.other(
        tcp(s, c, 50001, 41001, 800, 201, SYN | ACK, b""),
        "accept EST_REPLY",
    );
    f.close();
    Case {
        name: "ftp_dnat_pasv_epsv",
        rules: FTP_HELPER.to_string()
            + "table ip nat {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
               \t\tip daddr 198.51.100.1 tcp dport 21 dnat to 10.1.1.20\n\t}\n}\n",
        pkts: f.pkts,
        ifs: ["left", "right"],
        left: vec!["10.1.1.0/24"],
        right: vec!["203.0.113.0/24"],
        if_addr: vec![],
        expect: f.expect,
    }
}

/// FTP over IPv6 through SNAT, SACK permitted: `EPRT |2|...|` written with the NATed address in `%pI6`'s full
/// form (30 bytes longer), the active data connection, and the server's acknowledgement with a SACK block,
/// both moved back by the offset on the way to the client.
fn ftp6_snat_eprt_sack() -> Case {
    let (c, s, n) = ("2001:db8::10", "2001:db8:1::20", "2001:db8:ff::1");
    let mut f = Ftp::new(c, s, s, n);
    f.opts = vec![1, 1, 4, 2];
    f.open();
    f.client(PSH | ACK, b"EPRT |2|2001:db8::10|50000|\r\n", "accept EST");
    // "2001:db8::10" becomes "2001:0db8:00ff:0000:0000:0000:0000:0001".
    f.c_off += 27;
    // A duplicate-SACK block of the last 4 bytes acknowledged.
    let end = f.cs + f.c_off;
    let mut sack = vec![1, 1, 5, 10];
    sack.extend_from_slice(&(end - 4).to_be_bytes());
    sack.extend_from_slice(&end.to_be_bytes());
    f.server_with(ACK, b"", &sack, "accept EST_REPLY");
    f.server(PSH | ACK, b"200 EPRT ok\r\n", "accept EST_REPLY");
    f.other(tcp(s, n, 20, 50000, 7000, 0, SYN, b""), "accept REL");
    f.other(
        tcp(c, s, 50000, 20, 9000, 7001, SYN | ACK, b""),
        "accept EST_REPLY",
    );
    f.close();
    Case {
        name: "ftp6_snat_eprt_sack",
        rules: FTP_HELPER.to_string()
            + "table ip6 nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
               \t\toifname \"right\" snat to 2001:db8:ff::1\n\t}\n}\n",
        pkts: f.pkts,
        ifs: ["left", "right"],
        left: vec!["2001:db8::/64"],
        right: vec!["2001:db8:1::/64", "2001:db8:ff::/64"],
        if_addr: vec![],
        expect: f.expect,
    }
}

/// IPv6 NAT: a UDP query masqueraded to the right interface's address and its answer, a TCP connection
/// DNATed to another address and port and SNATed, a ping SNATed, and routers' ICMPv6 errors about the UDP flow
/// (to the masqueraded address) and the TCP flow (packet too big, to the SNAT address): translated back to the
/// client, the quoted datagram too (checksums through the pseudo-header).
fn nat66() -> Case {
    let (c, s, t, m, n, r) = (
        "2001:db8::10",
        "2001:db8:1::20",
        "2001:db8:1::30",
        "2001:db8:1::1",
        "2001:db8:ff::1",
        "2001:db8:1::99",
    );
    let q = build::udp(a(c), a(s), 1000, 53, b"query");
    let quoted = build::udp(a(m), a(s), 1000, 53, b"query");
    let pkts = vec![
        q,
        build::udp(a(s), a(m), 53, 1000, b"answer"),
        tcp(c, s, 40000, 80, 100, 0, SYN, b""),
        tcp(t, n, 8080, 40000, 900, 101, SYN | ACK, b""),
        tcp(c, s, 40000, 80, 101, 901, ACK, b""),
        build::icmp(a(c), a(s), 128, 0, build::echo(7, 1), b"ping"),
        build::icmp(a(s), a(n), 129, 0, build::echo(7, 1), b"ping"),
        build::icmp(a(r), a(m), 1, 4, [0; 4], &quoted),
        // Packet too big (MTU 1280) about the DNATed and SNATed TCP flow's next segment as it left.
        build::icmp(
            a(r),
            a(n),
            2,
            0,
            [0, 0, 5, 0],
            &tcp(n, t, 40000, 8080, 101, 901, PSH | ACK, b"GET /"),
        ),
    ];
    Case {
        name: "nat66_snat_dnat_masquerade_icmpv6_error",
        rules: "table inet nat {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
                \t\tip6 daddr 2001:db8:1::20 tcp dport 80 dnat ip6 to [2001:db8:1::30]:8080\n\t}\n\n\
                \tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                \t\toifname \"right\" meta l4proto udp masquerade\n\
                \t\toifname \"right\" snat ip6 to 2001:db8:ff::1\n\t}\n}\n"
            .into(),
        pkts,
        ifs: ["left", "right"],
        left: vec!["2001:db8::/64"],
        right: vec!["2001:db8:1::/64", "2001:db8:ff::/64"],
        if_addr: vec!["right=2001:db8:1::1/64"],
        expect: vec![
            "accept NEW",
            "accept EST_REPLY",
            "accept NEW",
            "accept EST_REPLY",
            "accept EST",
            "accept NEW",
            "accept EST_REPLY",
            "accept REL_REPLY",
            "accept REL_REPLY",
        ],
    }
}
