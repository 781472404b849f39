//! The shadowing lint against the interpreter on random rulesets: rules over a small universe of values
//! (addresses, ports, protocols, ct state and mark, meta mark, tcp flags, interfaces; prefixes, ranges, sets,
//! negations, masks) with tails that end the chain or not, write or not, jump or not; packets drawn from the same
//! universe, with and without a transport header, non-first fragments, truncated headers, with and without a
//! conntrack entry. Every rule the lint says can never match (W0602, and W0603 of a rule ending the chain) must
//! never reach its tail (its counter, the tail's first statement, stays 0) over every packet. `ip` and `inet`
//! tables (IPv4 and IPv6 packets). Rulesets and packets are proptest strategies, drawn from a fixed seed;
//! `SEED` and `N` (rulesets, 400) change the run.

use nfr_compiler::check::check_source;
use nfr_vm::classify::analyze;
use nfr_vm::pkt::{ct_state, ifname};
use nfr_vm::{ChainId, ChainVerdict, Effects, Insn, PktState, State};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::cell::Cell;

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

/// One rule: up to two address matches (and an IPv6 one in inet tables), one or two TCP or UDP matches or
/// none, up to one other match, now and then no match at all, and a tail.
fn rule(inet: bool) -> impl Strategy<Value = String> {
    let addr6 = if inet {
        prop::option::of(select(ADDR6)).boxed()
    } else {
        Just(None).boxed()
    };
    let l4 = prop_oneof![
        vec(select(TCP), 1..3),
        vec(select(UDP), 1..3),
        Just(Vec::new()),
    ];
    (
        vec(select(ADDR), 0..3),
        addr6,
        l4,
        vec(select(OTHER), 0..2),
        0..12u8,
        select(TAIL),
    )
        .prop_map(|(addr, addr6, l4, other, none, tail)| {
            let mut m: Vec<&str> = addr;
            m.extend(addr6);
            m.extend(l4);
            m.extend(other);
            if none == 0 {
                m.clear();
            }
            m.push(tail);
            m.join(" ")
        })
}

const PORTS: [u16; 10] = [0, 22, 53, 80, 443, 1000, 1001, 1023, 1024, 65535];

/// A packet from the rules' universe: TCP, UDP or ICMP over IPv4 (or IPv6 in inet tables), transport
/// headers whole, cut after the source port, or absent; non-first fragments; with and without a conntrack
/// entry.
fn packet(inet: bool) -> impl Strategy<Value = Packet> {
    let v6 = if inet {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    };
    let addrs = (
        select(
            &[
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 0x01, 0x0d, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1u8],
            ][..],
        ),
        select(&[[0u8; 16], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]][..]),
        select(
            &[
                [10u8, 1, 2, 3],
                [10, 0, 0, 1],
                [10, 128, 0, 1],
                [192, 0, 2, 7],
                [1, 2, 3, 4],
            ][..],
        ),
        select(&[[192u8, 0, 2, 1], [192, 0, 2, 200], [10, 1, 2, 3]][..]),
    );
    let l4 = (
        select(&[6u8, 17, 1][..]),
        select(&PORTS[..]),
        select(&PORTS[..]),
        select(&[0x02u8, 0x12, 0x10, 0x01, 0x00][..]),
        // truncated transport headers: only the source port, or nothing
        select(&[20usize, 20, 20, 20, 2, 0][..]),
    );
    let meta = (
        any::<bool>(),
        0..8u8,
        0..6u8,
        select(&[0u32, 1, 5, 17, 20][..]),
        select(&["eth0", "lo", "wlan0"][..]),
        select(&[ct_state::NEW, ct_state::ESTABLISHED, ct_state::RELATED][..]),
        select(&[ct_state::INVALID, ct_state::UNTRACKED][..]),
        select(&[0u32, 5][..]),
    );
    (v6, addrs, l4, meta).prop_map(
        |(v6, (a6, b6, a4, b4), (proto, sp, dp, flags, thlen), meta)| {
            let (ct_valid, th, frag, mark, iif, ct_ok, ct_bad, ct_mark) = meta;
            let nh = if v6 { 40 } else { 20 };
            let mut p = vec![0u8; nh + 20];
            if v6 {
                p[0] = 0x60;
                p[6] = proto;
                p[7] = 64;
                p[8..24].copy_from_slice(&a6);
                p[24..40].copy_from_slice(&b6);
            } else {
                p[0] = 0x45;
                p[9] = proto;
                p[12..16].copy_from_slice(&a4);
                p[16..20].copy_from_slice(&b4);
            }
            p[nh..nh + 2].copy_from_slice(&sp.to_be_bytes());
            p[nh + 2..nh + 4].copy_from_slice(&dp.to_be_bytes());
            p[nh + 13] = flags;
            let len = nh + thlen;
            p.truncate(len);
            let st = PktState {
                nhoff: 0,
                thoff: nh as u16,
                nfproto: if v6 { 10 } else { 2 },
                protocol: if v6 { 0x86dd } else { 0x0800 },
                has_th: th != 0,
                fragoff: if frag == 0 { 8 } else { 0 },
                l4proto: proto,
                len: len as u32,
                mark,
                iif: 2,
                iifname: ifname(iif),
                ct_valid,
                ct_state: if ct_valid { ct_ok } else { ct_bad },
                ct_mark,
                ct_l3proto: if v6 { 10 } else { 2 },
                ..Default::default()
            };
            (p, st)
        },
    )
}

/// A packet's bytes and the context it arrives with.
type Packet = (Vec<u8>, PktState);

/// A ruleset case: inet or ip, 3 to 12 rules, 400 packets.
fn case() -> impl Strategy<Value = (bool, Vec<String>, Vec<Packet>)> {
    prop_oneof![1 => Just(true), 2 => Just(false)]
        .prop_flat_map(|inet| (Just(inet), vec(rule(inet), 3..13), vec(packet(inet), 400)))
}

#[test]
fn rules_said_never_to_match_are_never_reached() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1234_5678_9abc_def1);
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::with_cases(n),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    let stats = Cell::new((0usize, 0usize, 0usize));
    let result = runner.run(&case(), |(inet, rules, packets)| {
        let (mut warned, mut hit_alone, mut rulesets) = stats.get();
        let src = format!(
            "table {} t {{\n chain c {{\n  type filter hook input priority 0;\n  {}\n }}\n chain sub {{\n  \
             counter\n }}\n}}\n",
            if inet { "inet" } else { "ip" },
            rules.join("\n  ")
        );
        let (_, hir, diags) = check_source("r.nfr", &src);
        let Some(hir) = hir else { return Ok(()) };
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
            let Some(Insn::Counter(c)) = insns.get(s.tail as usize) else {
                panic!("rule {j} of\n{src}\nhas no counter first in its tail");
            };
            dead.push((j, c.0));
        }
        if dead.is_empty() {
            stats.set((warned, hit_alone, rulesets));
            return Ok(());
        }
        warned += dead.len();
        let mut state = State::new(&vp);
        let mut scratch = State::new(&vp);
        let mut fx = Effects::default();
        let mut alone = vec![false; dead.len()];
        for (pkt, st) in &packets {
            for (k, &(j, _)) in dead.iter().enumerate() {
                fx.clear();
                let v = vp.run_rule(
                    &mut scratch,
                    ChainId(0),
                    j as u32,
                    pkt,
                    &mut st.clone(),
                    &mut fx,
                );
                alone[k] |= v != ChainVerdict::Break;
            }
            fx.clear();
            vp.run(&mut state, ChainId(0), pkt, &mut st.clone(), &mut fx);
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
        stats.set((warned, hit_alone, rulesets));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (warned, hit_alone, rulesets) = stats.get();
    println!(
        "{rulesets} rulesets, {warned} rules said never to match, {hit_alone} of them matched by some packet alone"
    );
    // Most rulesets check (some draw conflicting matches), and they give the lint much to say.
    assert!(
        rulesets * 3 > n as usize * 2 && warned > rulesets / 2,
        "{rulesets} rulesets of {n}, {warned} warned"
    );
    assert!(
        hit_alone * 2 > warned,
        "{hit_alone} of {warned} tried with a packet they match"
    );
}
