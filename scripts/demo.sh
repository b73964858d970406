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
echo "demo: building and running aperture-dataplane replay ${args[*]}"
exec cargo run --release -p aperture-dataplane --bin aperture-dataplane -- replay "${args[@]}"
