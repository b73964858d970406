#!/usr/bin/env bash
# Three-namespace testbed for Aperture's end-to-end tests.
#
#   ${P}client            ${P}appl                 ${P}server
#   c0 192.0.2.2/24 <---> a0 (no IP)   a1 (no IP) <---> s0 198.51.100.2/24
#   default via 192.0.2.1                            default via 198.51.100.1
#
# The appliance veths carry no kernel address: a DPDK process attaches to a0/a1 with
# net_af_packet and answers ARP for 192.0.2.1 and 198.51.100.1 itself. An nft netdev
# table with ingress chains (policy drop) on a0/a1 keeps the appliance namespace's
# own kernel silent; AF_PACKET taps still see every frame. IPv6 is disabled and
# offloads are off on every veth. Until a dataplane runs, nothing forwards.
#
# Usage: scripts/testbed.sh up|down|status [--prefix NAME]   (default prefix: apt-)
# Run as root. `up` first runs `down` for the same prefix (and undoes itself if it fails);
# `down` also stops processes left inside the namespaces. Different prefixes coexist.
# `status` exits 3 when none of the prefix's namespaces exist.
set -euo pipefail

cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 up|down|status [--prefix NAME]   (default prefix: apt-)" >&2
    exit 2
}

log() { printf 'testbed[%s]: %s\n' "$P" "$*"; }
die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }

ACTION=""
P="apt-"
while (($#)); do
    case $1 in
        up | down | status)
            [[ -z $ACTION ]] || usage
            ACTION=$1
            ;;
        --prefix)
            (($# >= 2)) || usage
            P=$2
            shift
            ;;
        --prefix=*) P=${1#--prefix=} ;;
        -h | --help) usage ;;
        *) usage ;;
    esac
    shift
done
[[ -n $ACTION ]] || usage
[[ $P =~ ^[A-Za-z0-9._-]{0,40}$ ]] || die "prefix must match [A-Za-z0-9._-]{0,40}: '$P'"

NS_CLIENT="${P}client"
NS_APPL="${P}appl"
NS_SERVER="${P}server"
ALL_NS=("$NS_CLIENT" "$NS_APPL" "$NS_SERVER")

CLIENT_ADDR=192.0.2.2/24
CLIENT_GW=192.0.2.1
SERVER_ADDR=198.51.100.2/24
SERVER_GW=198.51.100.1

# Temporary names in the root namespace, unique per prefix (<= 15 chars): "ap" + 8 hex + role.
TAG="ap$(printf '%s' "$P" | md5sum | cut -c1-8)"
TMP_C0="${TAG}c0"
TMP_A0="${TAG}a0"
TMP_A1="${TAG}a1"
TMP_S0="${TAG}s0"

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "$1"; }

# Features a veth cannot change are tolerated; each is tried on its own.
offloads_off() {
    local ns=$1 dev=$2 feat
    for feat in tx rx tso gso gro; do
        ip netns exec "$ns" ethtool -K "$dev" "$feat" off >/dev/null 2>&1 || true
    done
}

ipv6_off() {
    local ns=$1 dev=$2
    ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.$dev.disable_ipv6=1" >/dev/null 2>&1 || true
}

# move_veth TMPNAME NS NAME: move a root-namespace veth end into NS and rename it.
move_veth() {
    ip link set "$1" netns "$2"
    ip -n "$2" link set "$1" name "$3"
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    local t
    for t in ip ethtool nft sysctl md5sum; do
        command -v "$t" >/dev/null 2>&1 || die "'$t' not found (run: bash scripts/setup.sh)"
    done
}

do_down() {
    local ns pids dev
    for ns in "${ALL_NS[@]}"; do
        ns_exists "$ns" || continue
        # Processes still inside would keep the namespace (and its veths) alive.
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [[ -n $pids ]]; then
            log "stopping processes left in $ns: $(echo "$pids" | tr '\n' ' ')"
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null || true
            sleep 1
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            # shellcheck disable=SC2086
            [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$ns" 2>/dev/null || true
        log "deleted namespace $ns"
    done
    # Leftovers of an interrupted `up` (deleting one veth end deletes its peer).
    for dev in "$TMP_C0" "$TMP_A0" "$TMP_A1" "$TMP_S0"; do
        if ip link show dev "$dev" >/dev/null 2>&1; then
            ip link del dev "$dev" 2>/dev/null || true
            log "deleted leftover veth $dev"
        fi
    done
}

up_failed() {
    local rc=$?
    ((rc)) || rc=1
    echo "testbed: up failed (exit $rc), removing what was created" >&2
    do_down >/dev/null 2>&1 || true
    exit "$rc"
}

do_up() {
    do_down
    trap up_failed EXIT

    local ns
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    log "namespaces ${ALL_NS[*]}"

    ip link add "$TMP_C0" type veth peer name "$TMP_A0"
    ip link add "$TMP_A1" type veth peer name "$TMP_S0"
    move_veth "$TMP_C0" "$NS_CLIENT" c0
    move_veth "$TMP_A0" "$NS_APPL" a0
    move_veth "$TMP_A1" "$NS_APPL" a1
    move_veth "$TMP_S0" "$NS_SERVER" s0
    log "veths $NS_CLIENT/c0 <-> $NS_APPL/a0, $NS_APPL/a1 <-> $NS_SERVER/s0"

    # IPv6 off before link up: no router solicitations or DAD in captures.
    ipv6_off "$NS_CLIENT" c0
    ipv6_off "$NS_APPL" a0
    ipv6_off "$NS_APPL" a1
    ipv6_off "$NS_SERVER" s0
    offloads_off "$NS_CLIENT" c0
    offloads_off "$NS_APPL" a0
    offloads_off "$NS_APPL" a1
    offloads_off "$NS_SERVER" s0
    log "ipv6 disabled, offloads off (tx rx tso gso gro) on c0 a0 a1 s0"

    # The appliance kernel must never answer: drop everything at netdev ingress.
    ip netns exec "$NS_APPL" nft -f - <<'EOF'
table netdev aperture {
    chain ingress_a0 {
        type filter hook ingress device "a0" priority 0; policy drop;
    }
    chain ingress_a1 {
        type filter hook ingress device "a1" priority 0; policy drop;
    }
}
EOF
    log "nft netdev ingress policy drop on $NS_APPL/a0, a1"

    ip -n "$NS_APPL" link set a0 promisc on
    ip -n "$NS_APPL" link set a1 promisc on
    ip -n "$NS_APPL" link set a0 up
    ip -n "$NS_APPL" link set a1 up

    ip -n "$NS_CLIENT" addr add "$CLIENT_ADDR" dev c0
    ip -n "$NS_CLIENT" link set c0 up
    ip -n "$NS_CLIENT" route add default via "$CLIENT_GW" dev c0

    ip -n "$NS_SERVER" addr add "$SERVER_ADDR" dev s0
    ip -n "$NS_SERVER" link set s0 up
    ip -n "$NS_SERVER" route add default via "$SERVER_GW" dev s0

    trap - EXIT
    log "client c0 $CLIENT_ADDR via $CLIENT_GW; server s0 $SERVER_ADDR via $SERVER_GW; appliance a0/a1 up, promisc, no IPv4"
    log "up"
}

do_status() {
    local ns found=0
    for ns in "${ALL_NS[@]}"; do
        if ! ns_exists "$ns"; then
            echo "$ns: absent"
            continue
        fi
        found=1
        echo "$ns:"
        ip -n "$ns" -br link show | sed 's/^/  link  /'
        ip -n "$ns" -br -4 addr show | sed 's/^/  addr  /'
        ip -n "$ns" -4 route show | sed 's/^/  route /'
        if [[ $ns == "$NS_APPL" ]]; then
            ip netns exec "$ns" nft list tables 2>/dev/null | sed 's/^/  nft   /'
        fi
    done
    ((found)) || return 3
}

require_root
case $ACTION in
    up) do_up ;;
    down) do_down; log "down" ;;
    status) do_status ;;
esac
