#!/usr/bin/env bash
# Installs the Debian 12 (bookworm) packages that Aperture's build and tests need.
# Run as root. Idempotent: when everything is present it only checks and returns
# (no apt-get update). Called by scripts/test.sh, scripts/demo.sh and CI as
# `bash scripts/setup.sh`; it exports nothing.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
    dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev libpcap-dev build-essential
    tshark sip-tester libndpi-bin prometheus
    iproute2 iputils-ping nftables ethtool
    python3 python3-scapy python3-jsonschema jq tcpreplay tcpdump
)
# bookworm's own rustc is 1.63 (too old); rustc-web/cargo-web from bookworm-security are 1.9x.
RUST_PACKAGES=(rustc-web cargo-web)
SECURITY_LINE='deb http://security.debian.org/debian-security bookworm-security main'
SECURITY_LIST=/etc/apt/sources.list.d/aperture-bookworm-security.list

export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

have_cargo() {
    command -v cargo >/dev/null 2>&1 || [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]
}

# Is bookworm-security configured in any one-line (.list) or deb822 (.sources) file?
have_security_repo() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        grep -Eq '^[[:space:]]*deb[[:space:]].*[[:space:]]bookworm-security([[:space:]]|$)' "$f" && return 0
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        grep -Eq '^[[:space:]]*Suites:.*[[:space:]]bookworm-security([[:space:]]|$)' "$f" && return 0
    done
    return 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root to install: $*"
}

codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null || true)
if [[ $codename != bookworm ]]; then
    log "warning: expected Debian 12 (bookworm), found '${codename:-unknown}'"
fi

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if have_cargo; then
    log "cargo: found ($(PATH="${HOME:-/root}/.cargo/bin:$PATH" cargo --version 2>/dev/null || echo unknown version))"
else
    log "cargo: not found, will install ${RUST_PACKAGES[*]} from bookworm-security"
    if have_security_repo; then
        log "apt source bookworm-security: configured"
    else
        need_root "apt source bookworm-security"
        log "apt source bookworm-security: adding $SECURITY_LIST"
        printf '%s\n' "$SECURITY_LINE" >"$SECURITY_LIST"
    fi
    for p in "${RUST_PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
fi

if ((${#missing[@]} == 0)); then
    log "packages: all ${#PACKAGES[@]} present"
else
    need_root "${missing[*]}"
    log "packages: missing ${missing[*]}"
    log "debconf: wireshark-common/install-setuid=false"
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    log "apt-get update"
    apt-get update -q >/dev/null
    log "apt-get install ${missing[*]}"
    apt-get install -y -q "${missing[@]}" >/dev/null
    for p in "${missing[@]}"; do
        is_installed "$p" || die "package $p did not install"
    done
    log "packages: installed ${#missing[@]}"
fi

have_cargo || die "cargo still not found after installing ${RUST_PACKAGES[*]}"

if dpdk_version=$(pkg-config --modversion libdpdk 2>/dev/null); then
    log "dpdk: libdpdk $dpdk_version"
else
    die "pkg-config cannot find libdpdk"
fi
log "done"
