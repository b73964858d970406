#!/usr/bin/env bash
# App-ID against nDPI (Debian libndpi-bin, ndpiReader 4.2) on the same capture, one core each:
#
#   bash benches/appid_vs_ndpi.sh [--runs N] [--min-packets N] [--cpu C]
#
# 1. Builds a mix of >= 1,000,000 packets from every capture of tests/corpus (copies with
#    shifted addresses, see benches/appid.rs) into target/appid-mix.pcap.
# 2. Runs ndpiReader on it N times (default 3), pinned to core C (default 1), and reads its
#    "nDPI throughput" and "Packet Processing Time" lines. (`-q` would silence exactly those
#    lines in 4.2, so ndpiReader runs without it; its per-flow listing stays off.)
# 3. Runs our classifier N times on the same frames, loaded into memory first, timing
#    `Offline::packet` (parser, flow table, App-ID engine: the workers' code without DPDK).
#    Runs alternate with nDPI's, so both see the same machine load.
# 4. Scores both on the ndpi part of the corpus against nDPI's published results.
# Writes target/appid-bench-report.md and prints it. Installs nothing beyond scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
MIN_PACKETS=1000000
CPU=1
while (($#)); do
    case $1 in
        --runs) RUNS=$2; shift ;;
        --min-packets) MIN_PACKETS=$2; shift ;;
        --cpu) CPU=$2; shift ;;
        *) echo "usage: $0 [--runs N] [--min-packets N] [--cpu C]" >&2; exit 2 ;;
    esac
    shift
done

bash scripts/setup.sh >/dev/null
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
command -v ndpiReader >/dev/null || { echo "ndpiReader missing (package libndpi-bin)" >&2; exit 1; }

PIN=()
if command -v taskset >/dev/null && taskset -c "$CPU" true 2>/dev/null; then
    PIN=(taskset -c "$CPU")
else
    echo "taskset unavailable or core $CPU absent: running unpinned" >&2
fi

MIX=target/appid-mix.pcap
LOGS=target/appid-bench
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log

echo "building the bench binary ..." >&2
# Run the built executable itself: every run then measures the same code, and nothing is
# compiled on the pinned core.
BIN=$(cargo bench --bench appid --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "appid" and m.get("executable"):
        print(m["executable"])')
[[ -x $BIN ]] || { echo "could not build benches/appid.rs" >&2; exit 1; }

echo "writing the mix ($MIN_PACKETS packets at least) ..." >&2
"$BIN" --write-mix "$MIX" --min-packets "$MIN_PACKETS" | tee "$LOGS/mix.log" >&2

for i in $(seq 1 "$RUNS"); do
    echo "run $i/$RUNS: ndpiReader ..." >&2
    start=$EPOCHREALTIME
    "${PIN[@]}" ndpiReader -i "$MIX" -n 1 >"$LOGS/ndpi-$i.log" 2>&1
    end=$EPOCHREALTIME
    echo "wall $start $end" >>"$LOGS/ndpi-$i.log"
    echo "run $i/$RUNS: ours ..." >&2
    "${PIN[@]}" "$BIN" --classify "$MIX" --runs 1 | tee "$LOGS/ours-$i.log" >&2
done

echo "accuracy on the ndpi captures ..." >&2
"$BIN" --accuracy --ndpireader >"$LOGS/accuracy.log"

python3 - "$RUNS" "$LOGS" "${PIN[*]:-unpinned}" >target/appid-bench-report.md <<'PY'
import re, subprocess, sys, statistics
runs, logs, pin = int(sys.argv[1]), sys.argv[2], sys.argv[3]
read = lambda name: open(f"{logs}/{name}").read()

def ndpi(i):
    t = read(f"ndpi-{i}.log")
    m = re.search(r"nDPI throughput:\s+([\d.]+)\s*([KMG]?)\s*pps", t)
    rate = float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
    proc = re.search(r"Packet Processing Time:\s+([\d.]+)\s*(\w+)", t)
    proc_s = float(proc.group(1)) * {"msec": 1e-3, "sec": 1.0, "usec": 1e-6}.get(proc.group(2), 1e-3)
    packets = int(re.search(r"IP packets:\s+(\d+)", t).group(1))
    total = int(re.search(r"of (\d+) packets total", t).group(1))
    w = re.search(r"^wall ([\d.]+) ([\d.]+)", t, re.M)
    wall = float(w.group(2)) - float(w.group(1))
    return rate, proc_s, packets, total, wall

def ours(i):
    t = read(f"ours-{i}.log")
    return float(re.search(r"^ours-pps (\d+)", t, re.M).group(1)), t.splitlines()[0]

n = [ndpi(i) for i in range(1, runs + 1)]
o = [ours(i) for i in range(1, runs + 1)]
n_rate = statistics.median(x[0] for x in n)
o_rate = statistics.median(x[0] for x in o)
acc = read("accuracy.log")
ours_acc = re.search(r"^ours-accuracy ([\d.]+) (\d+) (\d+) (\d+) (\d+) (\d+)", acc, re.M)
ndpi_acc = re.search(r"^ndpireader-accuracy ([\d.]+) (\d+) (\d+)", acc, re.M)
mix = read("mix.log").splitlines()[0]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ver = subprocess.run(["ndpiReader", "-h"], capture_output=True, text=True)
ver = re.search(r"nDPI ([\d.]+)", ver.stdout + ver.stderr)
ver = ver.group(1) if ver else "?"

M = lambda v: f"{v / 1e6:.2f} Mpps"
print("# App-ID vs nDPI: throughput and accuracy, one core\n")
print(f"Machine: {cpu}, {subprocess.getoutput('nproc')} cores; pinned with `{pin}`; "
      f"ndpiReader {ver} (Debian libndpi-bin), 1 thread.\n")
print(f"Input: {mix}\n")
print("## Throughput (median of %d runs)\n" % runs)
print("| classifier | packets/s (median) | runs | ratio to nDPI |")
print("|---|---|---|---|")
print(f"| ndpiReader {ver} (`nDPI throughput` line) | {M(n_rate)} | "
      + ", ".join(M(x[0]) for x in n) + " | 1.00 |")
print(f"| Aperture App-ID (`Offline::packet`, frames in memory) | {M(o_rate)} | "
      + ", ".join(M(x[0]) for x in o) + f" | **{o_rate / n_rate:.2f}** |")
print()
print("ndpiReader per run: packet processing time / wall time of the whole process "
      "(setup, reading the file, printing the summary): "
      + "; ".join(f"{x[1]:.2f} s / {x[4]:.2f} s ({x[2]} IP packets of {x[3]})" for x in n) + ".")
print(f"\nTarget: >= 5x ndpiReader's rate: **{'met' if o_rate >= 5 * n_rate else 'NOT met'}** "
      f"({o_rate / n_rate:.2f}x).\n")
print("Caveats: ndpiReader's figure includes reading the capture through libpcap (page cache); "
      "ours excludes reading (frames are loaded first, as a NIC would deliver them), and both "
      "include parsing, flow lookup and classification. nDPI also extracts far more metadata "
      "(JA3, risks, entropy, bins) than App-ID needs.\n")
print("## Accuracy on the ndpi captures (nDPI's published results as ground truth)\n")
if ours_acc:
    a, cov, agree, excused, bad, exc = ours_acc.groups()
    print(f"- Aperture App-ID: **{100 * float(a):.2f}%** of {cov} covered flows right: {agree} agree "
          f"with nDPI ({100 * int(agree) / int(cov):.2f}%), {excused} are nDPI mistakes verified "
          f"with tshark (tests/common/ndpi.rs, NDPI_MISTAKES) where we give the truth, {bad} wrong; "
          f"{exc} flows whose label the catalog has no application for are excluded. Scored by "
          "the logic of tests/appid_ndpi.rs, on the offline classifier (same engine).")
print("- nDPI: 100% by definition (its results are the ground truth).")
if ndpi_acc:
    a, cov, ok = ndpi_acc.groups()
    print(f"- The installed ndpiReader {ver} against the same results (written by a newer nDPI): "
          f"{100 * float(a):.2f}% of {cov} flows map to the same catalog application.")
print("\nPer-capture scores and every disagreement: `target/appid-bench/accuracy.log`.")
PY
cat target/appid-bench-report.md
