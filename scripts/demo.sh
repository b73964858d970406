#!/usr/bin/env bash
# The demo: replays the dataplane's bundled sample capture through DPDK (net_pcap) with the
# embedded default configuration and prints a summary. Extra arguments go to `replay`,
# e.g. `bash scripts/demo.sh --pcap FILE`. Run as root on Debian 12.
set -euo pipefail

cd "$(dirname "$0")/.."

echo "demo: checking system packages"
bash scripts/setup.sh

if [[ -f "${HOME:-/root}/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "${HOME:-/root}/.cargo/env"
fi

# The example policy (allow facetime and what it depends on, DNS; reset SMTP; deny the rest)
# unless the caller gives one.
args=("$@")
if [[ " $* " != *" --policy "* ]]; then
    args+=(--policy conf/policy.yaml)
fi
# The build is quiet (its output goes to a log, shown only if it fails): what stays on the
# screen is the replay's summary, which ends with where its outputs are.
mkdir -p target
build_log=target/demo-build.log
echo "demo: building aperture-dataplane (release; a first build takes a few minutes; log: $build_log)"
if ! cargo build --release -p aperture-dataplane --bin aperture-dataplane >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    echo "demo: the build failed (whole log: $build_log)" >&2
    exit 1
fi
echo "demo: aperture-dataplane replay ${args[*]}"
exec target/release/aperture-dataplane replay "${args[@]}"
