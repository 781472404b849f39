//! Sets updated from the packet path end to end: `nfc run pcap` with a ruleset that adds to a set, a
//! concatenated set and a map on the server capture, on the interpreter and the JIT. Both give the same
//! verdicts and counters, the listing shows each set's elements at the end (with the time each has left, as
//! `nft list set` does), and such a ruleset runs on one thread.

mod common;

use common::{gate, nfc, stdout};
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const RULES: &str = "table inet t {
	set seen {
		type ipv4_addr
		flags dynamic,timeout
		timeout 1h
	}
	set pairs {
		type ipv4_addr . inet_service
		flags dynamic
	}
	map lastmark {
		type ipv4_addr : mark
		flags dynamic
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @seen counter accept
		tcp dport 22 update @seen { ip saddr } counter
		meta l4proto tcp add @pairs { ip saddr . tcp dport }
		add @lastmark { ip saddr : 0x2a }
	}
}
";

fn listing(engine: &str, threads: &str) -> (String, String) {
    let f = common::tmp_file("dynset.nfr", RULES);
    let o = nfc(&[
        "run",
        "pcap",
        f.to_str().unwrap(),
        "examples/server.pcap",
        "--local",
        "203.0.113.1",
        "--engine",
        engine,
        "--threads",
        threads,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let from = out.find("table inet t").expect("a listing");
    let to = out[from..]
        .find("\n}\n")
        .map_or(out.len(), |i| from + i + 3);
    (out[from..to].to_string(), stderr(&o))
}

fn sets_list_their_elements_on_every_engine() {
    let (interp, _) = listing("interp", "1");
    for want in [
        "\t\telements = { 192.0.2.10 expires 59m58s903ms, 198.51.100.7 expires 59m58s917ms,",
        "\t\t\t     198.51.100.50 . 22,",
        "198.51.100.60 : 0x0000002a }",
        "ip saddr @seen counter packets 5 bytes 216 accept",
        "tcp dport 22 update @seen { ip saddr } counter packets 3 bytes 120",
    ] {
        assert!(interp.contains(want), "missing {want:?} in:\n{interp}");
    }
    let (jit, note) = listing("jit", "2");
    assert_eq!(jit, interp);
    assert!(
        note.contains("adds to sets from the packet path") && note.contains("running on 1 thread"),
        "{note}"
    );
}

fn main() {
    gate::run(vec![gate::test(
        "sets_list_their_elements_on_every_engine",
        sets_list_their_elements_on_every_engine,
    )]);
}
