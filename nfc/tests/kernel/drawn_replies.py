#!/usr/bin/env python3
"""drawn_replies.py - the kernel's answer for a NAT ruleset whose mappings are drawn at random.

  drawn_replies.py ORACLE_DIR RULES CAPTURE.pcap [--if-addr DEV=ADDR/LEN]... [--replies I,J,...]
                   [kernel_verdicts.py options]

Runs ORACLE_DIR/kernel_verdicts.py (the three-namespace forwarding lab) with RULES: iptables-save text when
the name ends in `.ipt` (loaded by the lab with iptables-legacy-restore), else an nftables ruleset loaded with
`nft -f` once the lab is up. `--if-addr` gives a firewall interface an address first (what masquerade takes).

`--replies` names capture records (1-based) written as the exact reverse of their connection's original
tuple: a reply whose addresses and ports depend on what the kernel drew for the connection (a random endpoint,
a random masquerade port). Just before such a record is injected, its addresses and ports become those of the
reply tuple of the conntrack entry whose original tuple it reverses (`conntrack -L` in the firewall), so the
reply answers the mapping this kernel chose; the lab then fixes its checksums. The report (report.json,
injected.pcap, egress-*.pcap in -o OUTDIR) is kernel_verdicts.py's; the firewall's `nft list ruleset` (with
its counters) and `conntrack -S` at the end are added as nft-ruleset.txt and conntrack-stats.txt.
"""

import os
import re
import socket
import struct
import sys

TUPLE = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")
PROTO = {"tcp": 6, "udp": 17}


def entries(fw):
    """(proto, original tuple, reply tuple) of every entry, tuples as (src, dst, sport, dport)."""
    out = []
    r = fw.run(["conntrack", "-L"])
    for line in r.stdout.splitlines():
        words = line.split()
        t = TUPLE.findall(line)
        if len(t) == 2 and words and words[0] in PROTO:
            out.append((PROTO[words[0]], t[0], t[1]))
    return out


def rewrite(ip, tuple_):
    """The datagram with the addresses and ports of `tuple_` (checksums are fixed by the lab)."""
    src, dst, sport, dport = tuple_
    p = bytearray(ip)
    p[12:16] = socket.inet_aton(src)
    p[16:20] = socket.inet_aton(dst)
    ihl = (p[0] & 15) * 4
    struct.pack_into("!HH", p, ihl, int(sport), int(dport))
    return bytes(p)


def main():
    oracle, rules, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.path.insert(0, oracle)
    import kernel_verdicts as kv

    rest, addrs, replies = [], [], set()
    while args:
        a = args.pop(0)
        if a == "--if-addr" and args:
            addrs.append(args.pop(0).split("=", 1))
        elif a == "--replies" and args:
            replies.update(int(x) for x in args.pop(0).split(",") if x)
        else:
            rest.append(a)
    ipt = rules.endswith(".ipt")
    nft_text = "" if ipt else open(rules).read()
    setup = kv.Lab.setup
    labs = []

    def setup_with_addresses(self, side, local, rules_text):
        setup(self, side, local, rules_text)
        for dev, addr in addrs:
            r = self.ns["fw"].run(["ip", "address", "add", addr, "dev", dev])
            if r.returncode:
                raise RuntimeError("ip address add failed:\n" + r.stderr)
        if nft_text:
            r = self.ns["fw"].run(["nft", "-f", "-"], input=nft_text)
            if r.returncode:
                raise RuntimeError("nft -f failed:\n" + r.stderr)
        labs.append(self)

    class Replies(list):
        """The capture's records; a `--replies` one is rewritten when the replay reaches it (once the lab is
        up: the side assignment before it sees the record as written)."""

        def __iter__(self):
            for p in list.__iter__(self):
                if labs and p["index"] in replies and p["ip"] is not None:
                    d = kv.parse_ip(p["ip"])
                    want = (d["dst"], d["src"], str(d.get("dport")), str(d.get("sport")))
                    for proto, orig, reply in entries(labs[-1].ns["fw"]):
                        if proto == d["proto"] and orig == want:
                            p = dict(p, ip=rewrite(p["ip"], reply))
                            break
                yield p

    close = kv.Lab.close
    outdir = rest[rest.index("-o") + 1] if "-o" in rest[:-1] else "verdicts-out"

    def close_with_listings(self):
        if "fw" in self.ns:
            for name, cmd in (("nft-ruleset.txt", ["nft", "list", "ruleset"]),
                              ("conntrack-stats.txt", ["conntrack", "-S"])):
                r = self.ns["fw"].run(cmd)
                os.makedirs(outdir, exist_ok=True)
                with open(os.path.join(outdir, name), "w") as f:
                    f.write(r.stdout)
        close(self)

    read = kv.read_capture
    kv.Lab.close = close_with_listings
    kv.read_capture = lambda path: Replies(read(path))
    kv.Lab.setup = setup_with_addresses
    return kv.main([rules if ipt else "-"] + rest)


if __name__ == "__main__":
    sys.exit(main())
