#!/usr/bin/env bash
# Compares builds of one criterion benchmark on a noisy machine: runs each binary in turn,
# ROUNDS times, pinned to one core, and prints per benchmark and binary the median and the
# minimum of criterion's point estimates (report the ratio of medians, with the spread).
#   bash benches/ab.sh ROUNDS FILTER BIN...
# e.g. build the old revision in a worktree (`git worktree add /tmp/old REV`, then
# `cargo bench --bench pipeline --no-run` there), copy both pipeline-* binaries aside, and
#   bash benches/ab.sh 10 pipeline/worker /tmp/ab/old /tmp/ab/new
set -euo pipefail
(($# >= 3)) || { echo "usage: $0 ROUNDS FILTER BIN..." >&2; exit 2; }
rounds=$1 filter=$2
shift 2
out=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$out" "$work"' EXIT
core=$(($(nproc) - 1))
for _ in $(seq "$rounds"); do
    for b in "$@"; do
        (cd "$work" && taskset -c "$core" "$b" --bench --warm-up-time 1 --measurement-time 3 \
            --noplot "$filter" 2>&1) |
            awk -v bin="$b" '
                /^[a-z0-9_-]+\// { name = $1 }
                /time:/ && !/%/ {
                    for (i = 1; i <= NF; i++) if ($i == "time:") k = i
                    v = $(k + 3); u = $(k + 4)
                    if (u == "ns") v /= 1000; if (u == "ms") v *= 1000
                    print bin, name, v
                }' >>"$out"
    done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, n, v = line.split()
    d[(n, b)].append(float(v))
for (n, b), vs in sorted(d.items()):
    print(f"{n:28s} {b:24s} median {statistics.median(vs):8.3f} us  min {min(vs):8.3f}  n={len(vs)}")
PY
