#!/usr/bin/env python3
"""nat_lab.py - the kernel's answer for NAT over IPv4 and IPv6.

  nat_lab.py ORACLE_DIR RULES.nft CAPTURE.pcap OUT.json --left PREFIX... --right PREFIX...
             [--left-if NAME] [--right-if NAME] [--if-addr DEV=ADDR/LEN]... [--settle-ms N]

The oracle's lab (ORACLE_DIR/kernel_verdicts.py) forwards IPv4 only and tells a packet that left by its IP id
and length, which a NAT helper that changes a packet's length defeats. This lab is that lab's shape for both
families: three network namespaces made with kernel_blob.NetNS (kept only by this process's descriptors),
left | fw | right joined by veths (fw's interfaces are `left` and `right`, or the `--left-if` / `--right-if` names), IPv4 and IPv6 forwarding in fw, each
PREFIX routed through a fake next hop with a permanent neighbour entry, RULES loaded with `nft -f`, and a probe
table counting `ct state` x `ct direction` at prerouting priority -190 (which also turns conntrack on). Each
packet of the capture (raw IP, linktype 101) is written on the wire of the side its source is on (`--left`
prefixes, else right); every frame fw sends on either wire within the settle time is recorded (neighbour
discovery and MLD left out). A transport checksum the kernel left for the device to complete
(CHECKSUM_PARTIAL, reported by PACKET_AUXDATA: a NAT helper's rewrite) is completed as the device would.

OUT.json: `packets`: per packet its `ct` (the probe that moved: new, established/original, ...) and `left`
(the datagrams that came out: side and hex); `conntrack`: `conntrack -L` of both families.
"""

import argparse
import ipaddress
import json
import select
import socket
import struct
import sys
import time

MAC_FW = {"left": "02:6e:61:00:01:fe", "right": "02:6e:61:00:02:fe"}
MAC_PEER = {"left": "02:6e:61:00:01:01", "right": "02:6e:61:00:02:01"}
GW4 = {"left": "169.254.255.1", "right": "169.254.255.2"}
GW6 = {"left": "fe80::1", "right": "fe80::2"}
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 8
PROBES = [
    ("invalid", "ct state invalid"),
    ("untracked", "ct state untracked"),
    ("new", "ct state new"),
    ("established/original", "ct state established ct direction original"),
    ("established/reply", "ct state established ct direction reply"),
    ("related/original", "ct state related ct direction original"),
    ("related/reply", "ct state related ct direction reply"),
]


def read_raw_pcap(path):
    b = open(path, "rb").read()
    magic, = struct.unpack_from("<I", b, 0)
    e = "<" if magic == 0xA1B2C3D4 else ">"
    if struct.unpack_from(e + "I", b, 20)[0] != 101:
        raise SystemExit("capture must be raw IP (linktype 101)")
    out, o = [], 24
    while o + 16 <= len(b):
        caplen = struct.unpack_from(e + "I", b, o + 8)[0]
        out.append(b[o + 16:o + 16 + caplen])
        o += 16 + caplen
    return out


def csum(data, init=0):
    if len(data) % 2:
        data += b"\0"
    s = init + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def l4(ip):
    """(protocol, transport offset, pseudo-header sum) of an unfragmented datagram, else None."""
    if ip[0] >> 4 == 4:
        if struct.unpack_from("!H", ip, 6)[0] & 0x3FFF:
            return None
        off = (ip[0] & 15) * 4
        src, dst, proto = ip[12:16], ip[16:20], ip[9]
    else:
        off, proto = 40, ip[6]
        while proto in (0, 43, 60) and off + 8 <= len(ip):
            proto, off = ip[off], off + (ip[off + 1] + 1) * 8
        src, dst = ip[8:24], ip[24:40]
    n = len(ip) - off
    words = src + dst
    s = sum(struct.unpack("!%dH" % (len(words) // 2), words)) + proto + n
    return proto, off, s


def complete_checksum(ip):
    """The transport checksum a device computes for a CHECKSUM_PARTIAL packet (0 is sent as 0xffff)."""
    t = l4(ip)
    if not t or t[0] not in (6, 17):
        return ip
    proto, off, s = t
    at = off + (16 if proto == 6 else 6)
    ip = bytearray(ip)
    ip[at:at + 2] = b"\0\0"
    c = csum(bytes(ip[off:]), s) or 0xFFFF
    ip[at:at + 2] = struct.pack("!H", c)
    return bytes(ip)


def noise(ip):
    """Neighbour discovery, router solicitation and MLD that fw's IPv6 stack sends by itself."""
    if ip[0] >> 4 != 6:
        return False
    t = l4(ip)
    return bool(t) and t[0] == 58 and len(ip) > t[1] and ip[t[1]] in (130, 131, 132, 133, 134, 135, 136, 143)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("oracle")
    p.add_argument("rules")
    p.add_argument("capture")
    p.add_argument("out")
    p.add_argument("--left", action="append", default=[])
    p.add_argument("--right", action="append", default=[])
    p.add_argument("--if-addr", action="append", default=[])
    p.add_argument("--left-if", default="left")
    p.add_argument("--right-if", default="right")
    p.add_argument("--settle-ms", type=int, default=30)
    a = p.parse_args()
    sys.path.insert(0, a.oracle)
    import kernel_blob as kb

    dev = {"left": a.left_if, "right": a.right_if}
    left = [ipaddress.ip_network(n) for n in a.left]
    right = [ipaddress.ip_network(n) for n in a.right]
    ns = {n: kb.NetNS(n) for n in ("left", "fw", "right")}
    F = ns["fw"]

    def sysctl(n, key, value):
        with n.entered():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(str(value))

    try:
        for n in ns.values():
            n.run(["ip", "link", "set", "lo", "up"], check=True)
        for n in (ns["left"], ns["right"]):
            sysctl(n, "net.ipv6.conf.all.disable_ipv6", 1)
            sysctl(n, "net.ipv6.conf.default.disable_ipv6", 1)
        sysctl(F, "net.ipv6.conf.default.accept_dad", 0)
        sysctl(F, "net.ipv6.conf.all.forwarding", 1)
        sysctl(F, "net.ipv4.ip_forward", 1)
        for side in ("left", "right"):
            peer = ns[side]
            F.run(["ip", "link", "add", dev[side], "address", MAC_FW[side], "type", "veth", "peer", "name", "wire",
                   "address", MAC_PEER[side], "netns", "/proc/self/fd/%d" % peer.fd], check=True,
                  extra_fds=[peer.fd])
            peer.run(["ip", "link", "set", "wire", "up"], check=True)
            F.run(["ip", "link", "set", dev[side], "up"], check=True)
        for c in ("all", "default", dev["left"], dev["right"]):
            sysctl(F, "net.ipv4.conf.%s.rp_filter" % c, 0)
            sysctl(F, "net.ipv4.conf.%s.send_redirects" % c, 0)
        batch = []
        for side in ("left", "right"):
            batch.append("neigh replace %s lladdr %s dev %s nud permanent" % (GW4[side], MAC_PEER[side], dev[side]))
            batch.append("-6 neigh replace %s lladdr %s dev %s nud permanent" % (GW6[side], MAC_PEER[side], dev[side]))
        for side, nets in (("left", left), ("right", right)):
            for n in nets:
                if n.version == 4:
                    batch.append("route add %s via %s dev %s onlink" % (n, GW4[side], dev[side]))
                else:
                    batch.append("-6 route add %s via %s dev %s" % (n, GW6[side], dev[side]))
        for spec in a.if_addr:
            dev, addr = spec.split("=", 1)
            # No prefix route: the side's routes stay the lab's (through the fake next hop).
            batch.append("address add %s dev %s noprefixroute%s" % (addr, dev, " nodad" if ":" in addr else ""))
        for cmd in batch:
            F.run(["ip"] + cmd.split(), check=True)
        body = "\n".join('  %s counter comment "%s"' % (e, t) for t, e in PROBES)
        F.run(["nft", "-f", "-"], check=True, input=(
            "table inet nat_lab_probe {\n chain pre { type filter hook prerouting priority -190;\n%s\n }\n}\n" % body))
        F.run(["nft", "-f", a.rules], check=True)

        socks = {}
        for side in ("left", "right"):
            with ns[side].entered():
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
                s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
                s.bind(("wire", 0))
            s.setblocking(False)
            socks[side] = s

        def probes():
            r = F.run(["nft", "-j", "list", "table", "inet", "nat_lab_probe"], check=True)
            out = {}
            for item in json.loads(r.stdout)["nftables"]:
                rule = item.get("rule")
                if rule:
                    for ex in rule["expr"]:
                        if "counter" in ex:
                            out[rule.get("comment")] = ex["counter"]["packets"]
            return out

        def drain(timeout):
            got, end = [], time.monotonic() + timeout
            while True:
                rem = end - time.monotonic()
                r, _, _ = select.select(list(socks.values()), [], [], max(rem, 0))
                for side, s in socks.items():
                    if s not in r:
                        continue
                    while True:
                        try:
                            fr, anc, _, addr = s.recvmsg(65536, 1024)
                        except BlockingIOError:
                            break
                        if addr[2] == PACKET_OUTGOING or len(fr) < 15:
                            continue
                        status = 0
                        for lvl, typ, data in anc:
                            if lvl == SOL_PACKET and typ == PACKET_AUXDATA:
                                status = struct.unpack_from("I", data)[0]
                        ip = fr[14:]
                        if struct.unpack_from("!H", fr, 12)[0] not in (0x0800, 0x86DD) or noise(ip):
                            continue
                        if status & TP_STATUS_CSUMNOTREADY:
                            ip = complete_checksum(ip)
                        got.append({"side": side, "hex": ip.hex()})
                if not r or time.monotonic() >= end:
                    break
            return got

        drain(0.05)
        packets = []
        for ip in read_raw_pcap(a.capture):
            addr = ipaddress.ip_address(ip[12:16] if ip[0] >> 4 == 4 else ip[8:24])
            side = "left" if any(addr in n for n in left) else "right"
            et = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
            frame = (bytes.fromhex(MAC_FW[side].replace(":", "")) + bytes.fromhex(MAC_PEER[side].replace(":", ""))
                     + struct.pack("!H", et) + ip)
            before = probes()
            socks[side].send(frame)
            out = drain(a.settle_ms / 1000.0)
            after = probes()
            moved = [k for k in after if after[k] != before.get(k)]
            packets.append({"ct": moved[0] if moved else None, "left": out})
        ct = ""
        for fam in ("ipv4", "ipv6"):
            ct += F.run(["conntrack", "-L", "-f", fam]).stdout
        json.dump({"packets": packets, "conntrack": ct}, open(a.out, "w"), indent=1)
    finally:
        for n in ns.values():
            n.close()


if __name__ == "__main__":
    main()
