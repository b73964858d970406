#!/usr/bin/env bash
# Worker pipeline throughput on one core, as a ratio to dpdk-testpmd io-forwarding measured in
# the same run (before and after ours, averaged: these machines are shared and noisy).
#
#   bash benches/pipeline.sh [--huge] [--seconds N]
#
# Without --huge both run with --no-huge (as in CI). With --huge, 2 MiB hugepages are reserved
# (root) and both run on them. Writes target/bench-report.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."

HUGE=0
SECONDS_EACH=6
while (($#)); do
    case $1 in
        --huge) HUGE=1 ;;
        --seconds) SECONDS_EACH=$2; shift ;;
        *) echo "usage: $0 [--huge] [--seconds N]" >&2; exit 2 ;;
    esac
    shift
done

bash scripts/setup.sh >/dev/null
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing (package dpdk-dev)" >&2; exit 1; }

MEM=(--no-huge -m 512)
if ((HUGE)); then
    echo 600 >/proc/sys/vm/nr_hugepages
    mkdir -p /dev/hugepages
    mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
    free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
    ((free >= 256)) || { echo "could not reserve hugepages (free: $free)" >&2; exit 1; }
    MEM=(-m 512)
fi

# testpmd io-forwarding on net_null, one forwarding core: total packets per second over the
# ports (the core forwards both directions). Prints the mean of the last samples.
testpmd_pps() {
    local ports=$1 log
    log=$(mktemp)
    local vdevs=(--vdev=net_null0) topo=(--port-topology=loop)
    if ((ports == 2)); then vdevs=(--vdev=net_null0 --vdev=net_null1); topo=(); fi
    timeout -s INT $((SECONDS_EACH + 3)) dpdk-testpmd -l 0,1 "${MEM[@]}" --no-pci --no-shconf --no-telemetry \
        --file-prefix "aptp$$" "${vdevs[@]}" -- --forward-mode=io "${topo[@]}" --auto-start \
        --nb-cores=1 --total-num-mbufs=16384 --stats-period 1 </dev/null >"$log" 2>&1 || true
    # Rx-pps lines come one per port per second; sum each second, skip the first two seconds.
    awk -v ports="$ports" '/Rx-pps:/ { s += $2; n++; if (n % ports == 0) { t[++k] = s; s = 0 } }
        END { for (i = 3; i <= k; i++) { sum += t[i]; m++ } if (m) printf "%.0f\n", sum / m; else print 0 }' "$log"
    rm -f "$log"
}

echo "testpmd io-forward, net_null, before ..." >&2
tp1_before=$(testpmd_pps 1)
tp2_before=$(testpmd_pps 2)

echo "aperture pipeline (criterion) ..." >&2
APERTURE_BENCH_HUGE=$HUGE cargo bench --bench pipeline -- --warm-up-time 2 --measurement-time "$SECONDS_EACH" >&2

echo "testpmd io-forward, net_null, after ..." >&2
tp1_after=$(testpmd_pps 1)
tp2_after=$(testpmd_pps 2)

# Criterion: mean nanoseconds per iteration; an iteration is one burst of 32 packets.
pps() {
    python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(round(32e9/e["mean"]["point_estimate"]))' \
        "target/criterion/pipeline/$1/new/estimates.json"
}
io=$(pps io-forward)
w1k=$(pps worker_1k-flows)
gen=$(pps generator+io-forward)
w1m=$(pps worker_1m-flows)

python3 - "$HUGE" "$tp1_before" "$tp1_after" "$tp2_before" "$tp2_after" "$io" "$w1k" "$gen" "$w1m" >target/bench-report.md <<'PY'
import sys, platform, subprocess
huge, tp1b, tp1a, tp2b, tp2a, io, w1k, gen, w1m = sys.argv[1], *map(int, sys.argv[2:])
tp1 = (tp1b + tp1a) / 2
tp2 = (tp2b + tp2a) / 2
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
M = lambda v: f"{v / 1e6:.1f} Mpps"
print("# Aperture worker pipeline, one core\n")
print(f"Machine: {cpu}, {subprocess.getoutput('nproc')} cores; memory: {'2 MiB hugepages' if huge == '1' else '--no-huge (4 KiB pages)'}\n")
print("Reference, measured in the same run (mean of before and after):\n")
print(f"- testpmd io-forward, 1 net_null port looped, 1 core: {M(tp1)} (before {M(tp1b)}, after {M(tp1a)})")
print(f"- testpmd io-forward, 2 net_null ports, 1 core (both directions): {M(tp2)} (before {M(tp2b)}, after {M(tp2a)})\n")
print("| case | rate | vs testpmd 1 port | vs testpmd 2 ports |")
print("|---|---|---|---|")
for name, v in [("io-forward on our looped ring port (no processing)", io),
                ("worker, 1k established flows", w1k),
                ("generator + io-forward (1M-flow feed, no worker)", gen),
                ("worker, 1M established flows (incl. generator)", w1m)]:
    print(f"| {name} | {M(v)} | {v / tp1:.2f} | {v / tp2:.2f} |")
ratio = w1k / tp1
print(f"\nThe target for now: worker with 1k flows >= 0.5 of the testpmd ceiling (1 port): "
      f"{'met' if ratio >= 0.5 else 'NOT met'} ({ratio:.2f}).")
PY
cat target/bench-report.md
