#!/usr/bin/env bash
# Offline replay end to end against ndpiReader and the libpcap read/write ceiling, on the
# same files, in the same run:
#
#   bash benches/replay_vs_ndpi.sh [--copies N] [--runs R]
#
# 1. Builds two captures from tests/corpus: N and 2N copies (default 60 and 120) of
#    sipnab_SIP_CALL_RTP_G711 + 1kxun + iphone, each copy's IPv4 addresses shifted and its
#    times moved on (about 6,500 packets a copy), into target/replay-bench/.
# 2. Times, best of R (default 3) each, on both captures:
#    - `aperture-dataplane replay --pcap IN --flow-log FLOWS` (the flow log alone),
#    - the same with `--out OUT` (the output capture too),
#    - `ndpiReader -i IN` (its classification, no output),
#    - `tcpdump -r IN -w OUT` (libpcap's read and write: the ceiling for replay with --out).
# 3. Prints the marginal rates (2N - N packets over the time difference: start-up cancels
#    out) and Aperture's ratios against ndpiReader and tcpdump. One worker, the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

COPIES=60
RUNS=3
while (($#)); do
    case $1 in
        --copies) COPIES=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        *) echo "usage: $0 [--copies N] [--runs R]" >&2; exit 2 ;;
    esac
    shift
done

bash scripts/setup.sh >/dev/null
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
for t in ndpiReader tcpdump python3; do
    command -v "$t" >/dev/null || { echo "$t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
cargo build --release -q -p aperture-dataplane
BIN=target/release/aperture-dataplane
DIR=target/replay-bench
mkdir -p "$DIR"

# Classic pcap, Ethernet; per copy k: second octet of every IPv4 address + k (header
# checksum fixed), timestamps + 100 s * k.
build() {
    python3 - "$1" "$2" tests/corpus/sip-calls/sipnab_SIP_CALL_RTP_G711.pcap \
        tests/corpus/ndpi/1kxun.pcap tests/corpus/ndpi/iphone.pcap <<'EOF'
import struct, sys
def records(path):
    d = open(path, 'rb').read()
    assert struct.unpack('<I', d[:4])[0] == 0xa1b2c3d4 and struct.unpack('<I', d[20:24])[0] == 1, path
    at = 24
    while at + 16 <= len(d):
        s, us, incl, orig = struct.unpack('<IIII', d[at:at + 16])
        yield s, us, d[at + 16:at + 16 + incl], orig
        at += 16 + incl
def ipsum(h):
    s = sum(struct.unpack('!%dH' % (len(h) // 2), h))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
def shift(f, k):
    if len(f) < 34 or f[12:14] != b'\x08\x00':
        return f
    b = bytearray(f)
    ihl = (b[14] & 15) * 4
    b[27] = (b[27] + k) & 0xff
    b[31] = (b[31] + k) & 0xff
    b[24:26] = b'\0\0'
    b[24:26] = struct.pack('!H', ipsum(bytes(b[14:14 + ihl])))
    return bytes(b)
copies, out = int(sys.argv[1]), sys.argv[2]
caps = [list(records(p)) for p in sys.argv[3:]]
n = 0
with open(out, 'wb') as w:
    w.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
    for k in range(copies):
        for c in caps:
            for s, us, f, orig in c:
                g = shift(f, k)
                w.write(struct.pack('<IIII', s + 100 * k, us, len(g), max(orig, len(g))) + g)
                n += 1
print(n)
EOF
}

N1=$(build "$COPIES" "$DIR/n1.pcap")
N2=$(build $((2 * COPIES)) "$DIR/n2.pcap")
echo "captures: $N1 and $N2 packets"
# Written out before timing anything (writeback would slow whatever runs first), then read
# once so every run finds them in the page cache.
sync
cat "$DIR/n1.pcap" "$DIR/n2.pcap" >/dev/null

calc() { python3 -c "print(round($1, 3))"; }

# best SECONDS of RUNS runs of a command
best() {
    local b=""
    for _ in $(seq "$RUNS"); do
        local s e t
        s=$(date +%s.%N)
        "$@" >/dev/null 2>&1
        e=$(date +%s.%N)
        t=$(calc "$e - $s")
        # The files a run wrote go (and are synced) before the next run, untimed: writeback
        # of one run's output must not land in the next one's time.
        rm -f "$DIR/out.pcap" "$DIR/tcpdump.pcap"
        sync
        if [[ -z $b ]] || [[ $(calc "$t < $b") == True ]]; then b=$t; fi
    done
    echo "$b"
}

# Each tool on N, then on 2N, then the next tool: the pairs a marginal rate is made of run
# next to each other. Files written are removed (and synced) after each run, untimed.
declare -A T
for k in flowlog out ndpi tcpdump; do
    for n in 1 2; do
        IN=$DIR/n$n.pcap
        case $k in
            flowlog) T[$k$n]=$(best "$BIN" replay --quiet --pcap "$IN" --flow-log "$DIR/flows.jsonl" --out-dir "$DIR") ;;
            out) T[$k$n]=$(best "$BIN" replay --quiet --pcap "$IN" --flow-log "$DIR/flows.jsonl" --out "$DIR/out.pcap" --out-dir "$DIR") ;;
            ndpi) T[$k$n]=$(best ndpiReader -i "$IN" -q) ;;
            tcpdump) T[$k$n]=$(best tcpdump -r "$IN" -w "$DIR/tcpdump.pcap") ;;
        esac
    done
done

rate() { calc "($N2 - $N1) / (${T[${1}2]} - ${T[${1}1]}) / 1e6"; }
printf '\n%-34s %9s %9s %12s\n' "" "N (s)" "2N (s)" "marginal Mpps"
for k in flowlog out ndpi tcpdump; do
    case $k in
        flowlog) name="aperture replay --flow-log" ;;
        out) name="aperture replay --flow-log --out" ;;
        ndpi) name="ndpiReader -i" ;;
        tcpdump) name="tcpdump -r -w (ceiling)" ;;
    esac
    printf '%-34s %9s %9s %12s\n' "$name" "${T[${k}1]}" "${T[${k}2]}" "$(rate "$k")"
done
echo
echo "aperture --flow-log / ndpiReader:        $(calc "$(rate flowlog) / $(rate ndpi)")"
echo "aperture --flow-log --out / tcpdump -w:  $(calc "$(rate out) / $(rate tcpdump)")"
echo "start-up (N-copy time minus its marginal share), --flow-log: $(calc "${T[flowlog1]} - $N1 / ($(rate flowlog) * 1e6)") s"
