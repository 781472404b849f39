#!/usr/bin/env python3
"""nft_verdicts.py - the kernel's answer for an nftables ruleset.

  nft_verdicts.py ORACLE_DIR RULES.nft CAPTURE.pcap [--if-addr DEV=ADDR/LEN]...
                 [kernel_verdicts.py options]

Runs ORACLE_DIR/kernel_verdicts.py (the three-namespace forwarding lab) with no
iptables rules and RULES.nft loaded into the firewall namespace with `nft -f`
once the lab is up. `--if-addr` gives a firewall interface an address first
(what masquerade and redirect take). The report (report.json, egress-*.pcap in -o OUTDIR) is
kernel_verdicts.py's: per packet the outcome, the conntrack state at
prerouting/output priority -190, and every frame the firewall sent.
"""

import os
import sys


def main():
    oracle, rules, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.path.insert(0, oracle)
    import kernel_verdicts as kv

    rest, addrs = [], []
    while args:
        a = args.pop(0)
        if a == "--if-addr" and args:
            addrs.append(args.pop(0).split("=", 1))
        else:
            rest.append(a)
    text = open(rules).read()
    setup = kv.Lab.setup

    def setup_with_nft(self, side, local, rules_text):
        setup(self, side, local, rules_text)
        for dev, addr in addrs:
            r = self.ns["fw"].run(["ip", "address", "add", addr, "dev", dev])
            if r.returncode:
                raise RuntimeError("ip address add failed:\n" + r.stderr)
        r = self.ns["fw"].run(["nft", "-f", "-"], input=text)
        if r.returncode:
            raise RuntimeError("nft -f failed:\n" + r.stderr)

    kv.Lab.setup = setup_with_nft
    return kv.main(["-"] + rest)


if __name__ == "__main__":
    sys.exit(main())
