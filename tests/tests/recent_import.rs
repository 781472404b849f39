//! `-m recent` imported as nft sets updated from the packet path: an iptables-save ruleset with
//! the list shapes the import translates (kube-proxy's ClientIP affinity: `--rcheck --seconds S
//! --reap` then `--set`; `--update --seconds` then `--set`; `--remove`, `--rdest`, an inverted
//! check) runs on the ipt executor (xt_recent's lists) and, imported (`table_to_nfr`), on the
//! interpreter (nft_dynset's sets). Every packet must get the same verdict and mark.
//!
//! Packet times are multiples of 12 ms (3 jiffies at HZ 250, so both engines see the same
//! instants), and the `--seconds` are 5 and 7, whose 1250 and 1750 jiffies no difference of
//! packet times equals: the one place the two differ, a check exactly `--seconds` after a
//! stamp (xt_recent matches, the element has expired), never comes up.

use nfr_compiler::check::check_source;
use nfr_compiler::lower::ipt::tables_to_nfr;
use nfr_compiler::lower::lower_verified;
use nfr_ipt::{ExecTable, encode, parse_save};
use nfr_vm::{Effects, Hook, PktState, State, Verdict};

const RULES: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SEP-A - [0:0]
:SEP-B - [0:0]
:SVC - [0:0]
-A INPUT -p tcp -m tcp --dport 80 -j SVC
-A INPUT -p tcp -m tcp --dport 22 -m recent --update --seconds 7 --name SSH --rsource -j DROP
-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name SSH --rsource
-A INPUT -p tcp -m tcp --dport 23 -m recent --remove --name GONE --rsource -j ACCEPT
-A INPUT -p tcp -m tcp --dport 24 -m recent --set --name GONE --rdest
-A INPUT -p tcp -m tcp --dport 25 -m recent ! --rcheck --name GONE --rsource -j DROP
-A SEP-A -p tcp -m recent --set --name SEP-A --mask 255.255.255.255 --rsource -m tcp -j MARK --set-xmark 0xa/0xffffffff
-A SEP-A -j ACCEPT
-A SEP-B -p tcp -m recent --set --name SEP-B --mask 255.255.255.255 --rsource -m tcp -j MARK --set-xmark 0xb/0xffffffff
-A SEP-B -j ACCEPT
-A SVC -m recent --rcheck --seconds 5 --reap --name SEP-A --mask 255.255.255.255 --rsource -j SEP-A
-A SVC -m recent --rcheck --seconds 5 --reap --name SEP-B --mask 255.255.255.255 --rsource -j SEP-B
-A SVC -m statistic --mode nth --every 2 --packet 0 -j SEP-A
-A SVC -j SEP-B
COMMIT
";

/// xorshift64*, seeded.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn tcp(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    p.extend_from_slice(&t);
    p
}

#[test]
fn imported_recent_lists_agree_with_xt_recent() {
    let tables = parse_save(RULES).expect("iptables-save text");
    let nfr = tables_to_nfr(&tables).expect("every list translates");
    for want in [
        "set SEP-A {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 5s\n\t}",
        "set GONE {\n\t\ttype ipv4_addr\n\t\tflags dynamic\n\t}",
        "ip saddr @SEP-A jump SEP-A",
        "meta l4proto tcp update @SEP-A { ip saddr } meta mark set 0xa",
        "tcp dport 22 ip saddr @SSH update @SSH { ip saddr } drop",
        "tcp dport 22 update @SSH { ip saddr }",
        "tcp dport 23 ip saddr @GONE delete @GONE { ip saddr } accept",
        "tcp dport 24 add @GONE { ip daddr }",
        "tcp dport 25 ip saddr != @GONE drop",
    ] {
        assert!(nfr.contains(want), "missing {want:?} in:\n{nfr}");
    }
    let (_, hir, diags) = check_source("imported.nfr", &nfr);
    let hir = hir.unwrap_or_else(|| panic!("{diags:?}\n{nfr}"));
    let prog = lower_verified(&hir).expect("lowers");
    let input = prog.program().chain_by_name("INPUT").expect("INPUT chain");
    let mut state = State::new(&prog);
    let mut ex = ExecTable::from_blob(&encode(&tables[0]).unwrap()).unwrap();

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut t_ms = 1_000_000u64 * 12;
    let (mut marked, mut dropped) = (0, 0);
    for i in 0..4000 {
        t_ms += 12 * (rng.next() % 90);
        let src = [192, 0, 2, (rng.next() % 20) as u8];
        let dst = [10, 96, 0, (rng.next() % 4) as u8];
        let dport = [80u16, 80, 80, 22, 22, 23, 24, 25, 9][(rng.next() % 9) as usize];
        let p = tcp(src, dst, dport);
        let mut st = PktState {
            nhoff: 0,
            thoff: 20,
            has_th: true,
            l4proto: 6,
            nfproto: nfr_vm::pkt::NFPROTO_IPV4,
            len: p.len() as u32,
            tstamp_ns: t_ms * 1_000_000,
            ..Default::default()
        };
        let theirs = ex.do_table(Hook::Input, &p, &st).unwrap();
        let mut fx = Effects::default();
        let ours = prog.run(&mut state, input, &p, &mut st, &mut fx);
        assert_eq!(
            (ours, st.mark),
            (theirs.verdict, theirs.mark),
            "packet {i}: {src:?} -> {dst:?}:{dport} at {t_ms} ms: nft (verdict, mark) vs xt_recent"
        );
        marked += usize::from(st.mark != 0);
        dropped += usize::from(ours == Verdict::Drop);
    }
    // both lists' affinity and both drop rules were exercised
    assert!(
        marked > 1000 && dropped > 300,
        "{marked} marked, {dropped} dropped"
    );
}

/// Lists with no exact nft form are refused, each at the rule that says why (the other rules of
/// the list point at it); the rest of the table still imports.
#[test]
fn recent_lists_without_an_nft_form_are_refused() {
    let head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";
    for (rules, want) in [
        (
            "-A INPUT -m recent --set --name A\n-A INPUT -m recent --rcheck --hitcount 2 --name A\n",
            "INPUT rule 2: -m recent --name A: --hitcount 2 has no nft form",
        ),
        (
            "-A INPUT -m recent --rcheck --rttl --name A\n",
            "INPUT rule 1: -m recent --name A: --rttl has no nft form",
        ),
        (
            "-A INPUT -m recent --rcheck --seconds 5 --name A\n-A INPUT -m recent --update --seconds 6 --name A\n",
            "INPUT rule 2: -m recent --name A: its checks use --seconds 5 and --seconds 6",
        ),
        (
            "-A INPUT -m recent --rcheck --seconds 5 --name A\n-A INPUT -m recent --rcheck --name A\n",
            "INPUT rule 2: -m recent --name A: its checks use --seconds 5 and no --seconds",
        ),
        (
            "-A INPUT -m recent ! --set --name A\n",
            "INPUT rule 1: -m recent --name A: an inverted --set",
        ),
        (
            "-A INPUT -m recent --rcheck --seconds 5 --name A\n-A INPUT -m recent --remove --name A\n",
            "INPUT rule 2: -m recent --name A: --remove forgets addresses of any age",
        ),
        (
            "-A INPUT -m recent --set --name A --mask 255.255.0.0\n-A INPUT -m recent --rcheck --name A\n",
            "INPUT rule 2: -m recent --name A: its rules give different --mask values",
        ),
        (
            "-A INPUT -m recent --set --name A\n-A INPUT -m recent --rcheck --hitcount 3 --name A\n",
            "INPUT rule 1: -m recent --name A: the list has no nft form (INPUT rule 2)",
        ),
    ] {
        let text = format!("{head}-A INPUT -p tcp -m tcp --dport 1 -j ACCEPT\n{rules}COMMIT\n")
            .replace("INPUT rule 1", "INPUT rule 1");
        let tables = parse_save(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let err = tables_to_nfr(&tables).expect_err(&text);
        let want = want
            .replace("INPUT rule 2", "INPUT rule 3")
            .replace("INPUT rule 1", "INPUT rule 2");
        assert!(err.contains(&want), "{want:?} not in:\n{err}");
        assert!(
            !err.contains("INPUT rule 1:"),
            "the first rule imports:\n{err}"
        );
    }
    // a list shared by two tables
    let text = format!(
        "{head}-A INPUT -m recent --rcheck --name L -j DROP\nCOMMIT\n*mangle\n:PREROUTING ACCEPT [0:0]\n\
         :INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A PREROUTING -m recent --set --name L\nCOMMIT\n"
    );
    let err = tables_to_nfr(&parse_save(&text).unwrap()).unwrap_err();
    assert_eq!(
        err.matches("another table uses the list too").count(),
        2,
        "{err}"
    );
    // a mask other than /32 is a masked key
    let text = format!(
        "{head}-A INPUT -m recent --set --name N --mask 255.255.255.0 --rdest\n\
         -A INPUT -m recent --rcheck --name N --mask 255.255.255.0 --rdest -j DROP\nCOMMIT\n"
    );
    let nfr = tables_to_nfr(&parse_save(&text).unwrap()).unwrap();
    assert!(
        nfr.contains("add @N { ip daddr & 255.255.255.0 }")
            && nfr.contains("ip daddr & 255.255.255.0 @N drop"),
        "{nfr}"
    );
    let (_, hir, diags) = check_source("masked.nfr", &nfr);
    assert!(hir.is_some(), "{diags:?}\n{nfr}");
}
