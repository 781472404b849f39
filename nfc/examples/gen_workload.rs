//! Writes a gateway-shaped workload for measuring `nfc run pcap` end to end
//! (`cargo run --release -p nfc --example gen_workload -- DIR [FLOWS] [OPEN] [RULES] [GAP_US]`):
//! `DIR/gateway.nfr` and `DIR/gateway.pcap`. The host is 10.0.0.1 (run with `--local 10.0.0.1`); FLOWS TCP
//! connections (10,000 by default) from clients in 10.64.0.0/10, OPEN of them (2,000) open at a time, each a
//! handshake, 96 data segments alternating direction and a FIN both ways (103 packets), frames GAP_US (10)
//! microseconds apart. The ruleset's input chain accepts established and related traffic, drops invalid, then
//! holds RULES (1,000) rules of which the last few accept the clients' new connections. Everything follows from
//! a fixed seed, so the files are the same on every run; the capture is written as it is generated, in
//! constant memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use nfr_runtime::wire::build;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DATA_SEGMENTS: u32 = 96;
const PAYLOAD: usize = 64;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One connection: where it is in its life.
struct Flow {
    client: Ipv4Addr,
    cport: u16,
    sport: u16,
    step: u32,
    cseq: u32,
    sseq: u32,
}

impl Flow {
    /// The next segment and whether it was the last one.
    fn next(&mut self) -> (Vec<u8>, bool) {
        let (c, s) = (IpAddr::V4(self.client), IpAddr::V4(HOST));
        let data = [0x5au8; PAYLOAD];
        let step = self.step;
        self.step += 1;
        let last = DATA_SEGMENTS + 6;
        let seg = match step {
            0 => build::tcp(
                c,
                s,
                self.cport,
                self.sport,
                self.cseq,
                0,
                SYN,
                64240,
                &[],
                &[],
            ),
            1 => build::tcp(
                s,
                c,
                self.sport,
                self.cport,
                self.sseq,
                self.cseq + 1,
                SYN | ACK,
                64240,
                &[],
                &[],
            ),
            2 => {
                self.cseq += 1;
                self.sseq += 1;
                build::tcp(
                    c,
                    s,
                    self.cport,
                    self.sport,
                    self.cseq,
                    self.sseq,
                    ACK,
                    64240,
                    &[],
                    &[],
                )
            }
            n if n < 3 + DATA_SEGMENTS => {
                let (a, b, ap, bp, aseq, bseq) = if n % 2 == 1 {
                    (c, s, self.cport, self.sport, &mut self.cseq, self.sseq)
                } else {
                    (s, c, self.sport, self.cport, &mut self.sseq, self.cseq)
                };
                let p = build::tcp(a, b, ap, bp, *aseq, bseq, PSH | ACK, 64240, &[], &data);
                *aseq += PAYLOAD as u32;
                p
            }
            n if n == 3 + DATA_SEGMENTS => build::tcp(
                c,
                s,
                self.cport,
                self.sport,
                self.cseq,
                self.sseq,
                FIN | ACK,
                64240,
                &[],
                &[],
            ),
            n if n == 4 + DATA_SEGMENTS => build::tcp(
                s,
                c,
                self.sport,
                self.cport,
                self.sseq,
                self.cseq + 1,
                ACK,
                64240,
                &[],
                &[],
            ),
            n if n == 5 + DATA_SEGMENTS => build::tcp(
                s,
                c,
                self.sport,
                self.cport,
                self.sseq,
                self.cseq + 1,
                FIN | ACK,
                64240,
                &[],
                &[],
            ),
            _ => build::tcp(
                c,
                s,
                self.cport,
                self.sport,
                self.cseq + 1,
                self.sseq + 1,
                ACK,
                64240,
                &[],
                &[],
            ),
        };
        (seg, step == last)
    }
}

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i)
        .map_or(default, |a| a.parse().expect("a number"))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or(".", String::as_str));
    let flows = arg(&args, 2, 10_000);
    let open = arg(&args, 3, 2_000).max(1);
    let rules = arg(&args, 4, 1_000).max(4);
    let gap_us = arg(&args, 5, 10) as u64;
    std::fs::create_dir_all(&dir)?;

    // The ruleset: rules for other networks and ports first, the clients' services last.
    let mut nfr = String::from(
        "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
         \t\tct state established,related accept\n\t\tct state invalid drop\n",
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..rules - 3 {
        let net = 0xc000_0000u32 | ((rng.next() as u32) & 0x1fff_ff00);
        let port = 1024 + (rng.next() % 60_000) as u16;
        let len = 24 - (i % 9) as u32;
        nfr += &format!(
            "\t\tip saddr {}/{len} tcp dport {port} counter accept\n",
            Ipv4Addr::from(net & (u32::MAX << (32 - len)))
        );
    }
    nfr += "\t\tip saddr 10.64.0.0/10 tcp dport 22 counter accept\n";
    nfr += "\t\tip saddr 10.64.0.0/10 tcp dport { 80, 443 } counter accept\n";
    nfr += "\t\tip saddr 10.64.0.0/10 tcp dport 8000-8999 counter accept\n";
    nfr += "\t}\n}\n";
    std::fs::write(dir.join("gateway.nfr"), nfr)?;

    let mut w = BufWriter::with_capacity(1 << 20, File::create(dir.join("gateway.pcap"))?);
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    let mut t_us: u64 = 1_700_000_000_000_000;
    let mut started = 0usize;
    let mut active: Vec<Flow> = Vec::with_capacity(open);
    let services = [22u16, 80, 443, 8080];
    let mut frame = Vec::with_capacity(2048);
    loop {
        while active.len() < open && started < flows {
            let n = started as u32;
            active.push(Flow {
                client: Ipv4Addr::from(
                    0x0a40_0000 | ((n.wrapping_mul(2_654_435_761)) & 0x003f_ffff),
                ),
                cport: 1024 + (n % 60_000) as u16,
                sport: services[(rng.next() % 4) as usize],
                step: 0,
                cseq: rng.next() as u32,
                sseq: rng.next() as u32,
            });
            started += 1;
        }
        if active.is_empty() {
            break;
        }
        let i = (rng.next() % active.len() as u64) as usize;
        let (ip, done) = active[i].next();
        if done {
            active.swap_remove(i);
        }
        t_us += gap_us;
        frame.clear();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00]);
        frame.extend_from_slice(&ip);
        w.write_all(&((t_us / 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&((t_us % 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(&frame)?;
    }
    w.flush()
}
