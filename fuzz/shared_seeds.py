#!/usr/bin/env python3
"""Seeds for the fuzz targets from the shared corpus (never committed): writes SHARED-derived inputs under
OUT/<target>/, which fuzz/run.sh passes to libFuzzer as a read-only seed directory next to the committed seeds.

  parse_check  nftables' fuzzing reproducers ("bogons", nft -f inputs), as they are; and each tests/py file's
               rules (`rule;ok`, `rule;fail`) in a table of its first family with its first chain
  pcap         the captures (cut to 64 KiB: the reader must cope with a cut file anyway)
  wire         every frame of those captures, with the target's selector bytes (its link type, a hook per frame,
               a small clock step)
  import_save  iptables' extension tests (*.t): each file's accepted rules as one iptables-save table

usage: shared_seeds.py SHARED_CORPUS_DIR OUT_DIR
"""

import os
import struct
import sys

# fuzz/src/lib.rs LINKTYPES, in order: the wire target's selector is an index into it
LINKTYPES = [0, 1, 9, 12, 14, 101, 108, 113, 228, 229, 276]
MAX_LEN = 8192


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pcap_frames(data):
    """(linktype, frame) of a legacy pcap file; nothing for pcapng or a damaged header."""
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        return
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack(end + "I", data[off + 8 : off + 12])[0]
        frame = data[off + 16 : off + 16 + caplen]
        if len(frame) < caplen:
            return
        yield linktype, frame
        off += 16 + caplen


def main():
    shared, out = sys.argv[1], sys.argv[2]
    n = {}

    bogons = os.path.join(shared, "nft-bogons")
    for root, _, files in os.walk(bogons):
        for f in sorted(files):
            data = open(os.path.join(root, f), "rb").read()[:MAX_LEN]
            rel = os.path.relpath(os.path.join(root, f), bogons).replace(os.sep, "_")
            write(out, "parse_check", rel, data)
            n["parse_check"] = n.get("parse_check", 0) + 1

    testspy = os.path.join(shared, "nft-tests-py")
    for root, _, files in os.walk(testspy):
        for f in sorted(files):
            if not f.endswith(".t"):
                continue
            family, chain, rules = None, None, []
            for line in open(os.path.join(root, f), encoding="utf-8", errors="replace"):
                line = line.rstrip("\n")
                if line.startswith("#") or not line:
                    continue
                if line.startswith(":") and chain is None:
                    chain = line[1:].split(";", 1)[-1]
                elif line.startswith("*") and family is None:
                    family = line[1:].split(";")[0]
                elif ";" in line and not line.startswith((":", "*", "-", "!")):
                    rules.append(line.split(";")[0])
            if not rules or family is None or chain is None:
                continue
            text = "table %s t {\n chain c {\n  %s;\n" % (family, chain)
            text += "".join("  %s\n" % r for r in rules) + " }\n}\n"
            rel = os.path.relpath(os.path.join(root, f), testspy).replace(os.sep, "_")
            write(out, "parse_check", "testspy-" + rel, text.encode()[:MAX_LEN])
            n["parse_check"] = n.get("parse_check", 0) + 1

    pcaps = os.path.join(shared, "pcaps")
    for f in sorted(os.listdir(pcaps)) if os.path.isdir(pcaps) else []:
        if not (f.endswith(".pcap") or f.endswith(".pcapng")):
            continue
        data = open(os.path.join(pcaps, f), "rb").read()
        write(out, "pcap", f, data[:65536])
        n["pcap"] = n.get("pcap", 0) + 1
        for i, (lt, frame) in enumerate(pcap_frames(data)):
            if lt not in LINKTYPES or len(frame) > MAX_LEN - 2:
                continue
            sel = LINKTYPES.index(lt) | ((i % 5) << 4)
            write(out, "wire", "%s-%05d" % (f, i), bytes([sel, 1]) + frame)
            n["wire"] = n.get("wire", 0) + 1

    ipt = os.path.join(shared, "iptables-ext-tests")
    for f in sorted(os.listdir(ipt)) if os.path.isdir(ipt) else []:
        if not (f.startswith("libxt_") or f.startswith("libipt_") or f == "iptables.t") or not f.endswith(".t"):
            continue
        table, chains, rules = "filter", ["INPUT"], []
        for line in open(os.path.join(ipt, f), encoding="utf-8", errors="replace"):
            line = line.rstrip("\n")
            if line.startswith("*"):
                table = line[1:].strip() or "filter"
            elif line.startswith(":"):
                chains = [c for c in line[1:].split(",") if c]
            elif ";" in line:
                parts = line.split(";")
                # `rule;=;` and `rule;OK;...` are accepted rules; `rule;FAIL` is not
                if len(parts) >= 2 and parts[1].strip() in ("=", "OK"):
                    rules.append((chains[0] if chains else "INPUT", parts[0]))
        if not rules:
            continue
        used = sorted({c for c, _ in rules})
        text = "*%s\n" % table + "".join(":%s ACCEPT [0:0]\n" % c for c in used)
        text += "".join("-A %s %s\n" % (c, r) for c, r in rules) + "COMMIT\n"
        write(out, "import_save", f, text.encode()[:MAX_LEN])
        n["import_save"] = n.get("import_save", 0) + 1

    for t in sorted(n):
        print("%s: %d seeds from the shared corpus" % (t, n[t]))


if __name__ == "__main__":
    main()
