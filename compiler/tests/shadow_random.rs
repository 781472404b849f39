//! The shadowing lint against the interpreter on random rulesets: rules over a small universe of values
//! (addresses, ports, protocols, ct state and mark, meta mark, tcp flags, interfaces; prefixes, ranges, sets,
//! negations, masks) with tails that end the chain or not, write or not, jump or not; packets drawn from the same
//! universe, with and without a transport header, non-first fragments, truncated headers, with and without a
//! conntrack entry. Every rule the lint says can never match (W0602, and W0603 of a rule ending the chain) must
//! never reach its tail (its counter, the tail's first statement, stays 0) over every packet. `ip` and `inet`
//! tables (IPv4 and IPv6 packets). `SEED` and `N` (rulesets, 400) change the run.

use nfr_compiler::check::check_source;
use nfr_vm::classify::analyze;
use nfr_vm::pkt::{ct_state, ifname};
use nfr_vm::{ChainId, ChainVerdict, Effects, Insn, PktState, State};

/// Deterministic xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

const ADDR: &[&str] = &[
    "ip saddr 10.0.0.0/8",
    "ip saddr 10.0.0.0/9",
    "ip saddr 10.128.0.0/9",
    "ip saddr 10.1.0.0/16",
    "ip saddr 10.1.2.3",
    "ip saddr != 10.0.0.0/8",
    "ip saddr { 10.1.2.3, 192.0.2.7 }",
    "ip saddr 192.0.2.0/24",
    "ip daddr 192.0.2.0/25",
    "ip daddr 192.0.2.128/25",
];
const ADDR6: &[&str] = &[
    "ip6 saddr 2001:db8::/32",
    "ip6 saddr 2001:db8::1",
    "ip6 daddr ::1",
    "meta nfproto ipv6",
    "meta nfproto ipv4",
    "ip saddr 10.0.0.0/8",
];
const TCP: &[&str] = &[
    "tcp dport 22",
    "tcp dport 1-1000",
    "tcp dport >= 1001",
    "tcp dport { 22, 80 }",
    "tcp dport != 22",
    "tcp dport 0-65535",
    "tcp sport 1024-65535",
    "tcp sport < 1024",
    "tcp flags syn",
    "tcp flags & (syn | ack) == syn",
    "meta l4proto tcp",
];
const UDP: &[&str] = &[
    "udp dport 53",
    "udp dport 1-1000",
    "udp dport >= 1001",
    "th dport 53",
    "udp sport 53 udp dport 53",
    "meta l4proto udp",
];
const OTHER: &[&str] = &[
    "ct state new",
    "ct state established,related",
    "ct state invalid",
    "ct state != invalid",
    "ct mark 5",
    "ct mark != 5",
    "meta mark 1",
    "meta mark 0",
    "meta mark != 1",
    "meta mark > 10",
    "meta mark & 0x0f == 1",
    "iifname \"eth0\"",
    "iifname \"lo\"",
    "meta l4proto { tcp, udp }",
];
const TAIL: &[&str] = &[
    "counter accept",
    "counter drop",
    "counter",
    "counter meta mark set 1",
    "counter meta mark set 20 accept",
    "counter ct mark set 5",
    "counter reject",
    "counter return",
    "counter jump sub",
    "counter goto sub",
    "counter limit rate 1/second accept",
];

fn rule(r: &mut Rng, inet: bool) -> String {
    let mut m: Vec<&str> = Vec::new();
    for _ in 0..r.below(3) {
        m.push(r.pick(ADDR));
    }
    if inet && r.below(2) == 0 {
        m.push(r.pick(ADDR6));
    }
    match r.below(3) {
        0 => (0..1 + r.below(2)).for_each(|_| m.push(r.pick(TCP))),
        1 => (0..1 + r.below(2)).for_each(|_| m.push(r.pick(UDP))),
        _ => {}
    }
    for _ in 0..r.below(2) {
        m.push(r.pick(OTHER));
    }
    // now and then no match at all
    if r.below(12) == 0 {
        m.clear();
    }
    m.push(r.pick(TAIL));
    m.join(" ")
}

fn packet(r: &mut Rng, inet: bool) -> (Vec<u8>, PktState) {
    let proto = r.pick(&[6u8, 17, 1]);
    let v6 = inet && r.below(2) == 0;
    let nh = if v6 { 40 } else { 20 };
    let mut p = vec![0u8; nh + 20];
    if v6 {
        p[0] = 0x60;
        p[6] = proto;
        p[7] = 64;
        let a: [u8; 16] = r.pick(&[
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ]);
        let b: [u8; 16] = r.pick(&[[0; 16], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]]);
        p[8..24].copy_from_slice(&a);
        p[24..40].copy_from_slice(&b);
    } else {
        p[0] = 0x45;
        p[9] = proto;
        let saddr: [u8; 4] = r.pick(&[
            [10, 1, 2, 3],
            [10, 0, 0, 1],
            [10, 128, 0, 1],
            [192, 0, 2, 7],
            [1, 2, 3, 4],
        ]);
        let daddr: [u8; 4] = r.pick(&[[192, 0, 2, 1], [192, 0, 2, 200], [10, 1, 2, 3]]);
        p[12..16].copy_from_slice(&saddr);
        p[16..20].copy_from_slice(&daddr);
    }
    let port = |r: &mut Rng| r.pick(&[0u16, 22, 53, 80, 443, 1000, 1001, 1023, 1024, 65535]);
    let (sp, dp) = (port(r), port(r));
    p[nh..nh + 2].copy_from_slice(&sp.to_be_bytes());
    p[nh + 2..nh + 4].copy_from_slice(&dp.to_be_bytes());
    p[nh + 13] = r.pick(&[0x02u8, 0x12, 0x10, 0x01, 0x00]);
    // truncated transport headers: only the source port, or nothing
    let len = nh + r.pick(&[20usize, 20, 20, 20, 2, 0]);
    p.truncate(len);
    let ct_valid = r.below(2) == 0;
    let st = PktState {
        nhoff: 0,
        thoff: nh as u16,
        nfproto: if v6 { 10 } else { 2 },
        protocol: if v6 { 0x86dd } else { 0x0800 },
        has_th: r.below(8) != 0,
        fragoff: if r.below(6) == 0 { 8 } else { 0 },
        l4proto: proto,
        len: len as u32,
        mark: r.pick(&[0u32, 1, 5, 17, 20]),
        iif: 2,
        iifname: ifname(r.pick(&["eth0", "lo", "wlan0"])),
        ct_valid,
        ct_state: if ct_valid {
            r.pick(&[ct_state::NEW, ct_state::ESTABLISHED, ct_state::RELATED])
        } else {
            r.pick(&[ct_state::INVALID, ct_state::UNTRACKED])
        },
        ct_mark: r.pick(&[0u32, 5]),
        ct_l3proto: if v6 { 10 } else { 2 },
        ..Default::default()
    };
    (p, st)
}

#[test]
fn rules_said_never_to_match_are_never_reached() {
    let mut r = Rng(std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1234_5678_9abc_def1));
    let (mut warned, mut hit_alone, mut rulesets) = (0usize, 0usize, 0usize);
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    for _ in 0..n {
        let inet = r.below(3) == 0;
        let rules: Vec<String> = (0..3 + r.below(10)).map(|_| rule(&mut r, inet)).collect();
        let src = format!(
            "table {} t {{\n chain c {{\n  type filter hook input priority 0;\n  {}\n }}\n chain sub {{\n  \
             counter\n }}\n}}\n",
            if inet { "inet" } else { "ip" },
            rules.join("\n  ")
        );
        let (_, hir, diags) = check_source("r.nfr", &src);
        let Some(hir) = hir else { continue };
        rulesets += 1;
        let prog = nfr_compiler::lower::lower(&hir).expect("lowers");
        let vp = prog.clone().verify().expect("verifies");
        // the rules said never to match, each with the counter that starts its tail
        let mut dead: Vec<(usize, u32)> = Vec::new();
        for d in &diags {
            let never = d.code == "W0602"
                || (d.code == "W0603" && d.notes.iter().any(|n| n.contains("never match")));
            if !never {
                continue;
            }
            let j = hir.chains[0]
                .rules
                .iter()
                .position(|x| x.span == d.primary)
                .expect("a rule");
            let insns = prog.rule_insns(prog.chains[0].rules[j]);
            let s = analyze(&prog, insns);
            let Some(Insn::Counter(c)) = insns.get(s.tail) else {
                panic!("rule {j} of\n{src}\nhas no counter first in its tail");
            };
            dead.push((j, c.0));
        }
        if dead.is_empty() {
            continue;
        }
        warned += dead.len();
        let mut state = State::new(&vp);
        let mut scratch = State::new(&vp);
        let mut fx = Effects::default();
        let mut alone = vec![false; dead.len()];
        for _ in 0..400 {
            let (pkt, st) = packet(&mut r, inet);
            for (k, &(j, _)) in dead.iter().enumerate() {
                fx.clear();
                let v = vp.run_rule(
                    &mut scratch,
                    ChainId(0),
                    j as u32,
                    &pkt,
                    &mut st.clone(),
                    &mut fx,
                );
                alone[k] |= v != ChainVerdict::Break;
            }
            fx.clear();
            vp.run(&mut state, ChainId(0), &pkt, &mut st.clone(), &mut fx);
            for &(j, c) in &dead {
                assert_eq!(
                    state.counters[c as usize].packets,
                    0,
                    "rule {} is said never to match, but {pkt:02x?} {st:?} reaches it in\n{src}\n{}",
                    j + 1,
                    nfr_compiler::diag::render_short(&diags, &check_source("r.nfr", &src).0)
                );
            }
        }
        hit_alone += alone.iter().filter(|&&a| a).count();
    }
    println!(
        "{rulesets} rulesets, {warned} rules said never to match, {hit_alone} of them matched by some packet alone"
    );
    assert!(
        rulesets > 300 && warned > 200,
        "{rulesets} rulesets, {warned} warned"
    );
    assert!(
        hit_alone * 2 > warned,
        "{hit_alone} of {warned} tried with a packet they match"
    );
}
