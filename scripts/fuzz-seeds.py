#!/usr/bin/env python3
"""Writes small fuzz seed corpora from the captures in tests/corpus (classic pcap files):
real frames for parse_frame, short captures for replay_capture, L4 payloads for the decoder
targets (one shared directory, fuzz/seeds/payloads), and flow_sequence records made from
real flows' payloads. Deterministic: the same corpus gives the same files. Run from the
repository root: python3 scripts/fuzz-seeds.py"""
import hashlib
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "corpus")
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
MAX_FRAMES, MAX_PAYLOADS, MAX_CAPTURES = 160, 240, 24


def captures():
    for d, _, files in sorted(os.walk(CORPUS)):
        for f in sorted(files):
            if f.endswith((".pcap", ".cap")):
                yield os.path.join(d, f)


def records(path):
    """(header bytes, [(record header, frame)]) of a classic Ethernet pcap, else None."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 24:
        return None
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None or struct.unpack(order + "I", data[20:24])[0] != 1:
        return None
    out, at = [], 24
    while at + 16 <= len(data):
        incl = struct.unpack(order + "I", data[at + 8:at + 12])[0]
        if at + 16 + incl > len(data):
            break
        out.append((data[at:at + 16], data[at + 16:at + 16 + incl]))
        at += 16 + incl
    return data[:24], out


def payload(frame):
    """(proto, payload) of an untagged IPv4 TCP/UDP frame, else None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 15) * 4
    proto, l4 = frame[23], 14 + ihl
    if proto == 6 and len(frame) >= l4 + 20:
        return 6, frame[l4 + (frame[l4 + 12] >> 4) * 4:]
    if proto == 17 and len(frame) >= l4 + 8:
        return 17, frame[l4 + 8:]
    return None


def write(target, blob):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(blob).hexdigest()), "wb") as fh:
        fh.write(blob)


def main():
    frames, payloads, caps = set(), set(), 0
    for path in captures():
        got = records(path)
        if got is None:
            continue
        header, recs = got
        if caps < MAX_CAPTURES:
            write("replay_capture", header + b"".join(h + f for h, f in recs[:6]))
            caps += 1
        seq = b""
        for _, f in recs[:40]:
            if len(frames) < MAX_FRAMES and len(f) <= 600 and f[:64] not in frames:
                frames.add(f[:64])
                write("parse_frame", f)
            p = payload(f)
            if p and p[1]:
                body = p[1][:200]
                if len(payloads) < MAX_PAYLOADS and body[:32] not in payloads:
                    payloads.add(body[:32])
                    write("payloads", body)
                # flow_sequence: [flags, endpoint, length, payload]: TCP+PSH+ACK or UDP.
                flags = (1 | (0x18 << 2)) if p[0] == 6 else 0
                seq += bytes([flags & 0x7f, 0x00, len(body[:120])]) + body[:120]
        if seq:
            write("flow_sequence", seq[:1200])


if __name__ == "__main__":
    main()
