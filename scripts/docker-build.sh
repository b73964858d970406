#!/usr/bin/env bash
# Builds the Aperture image `aperture:dev` from ./Dockerfile with rootful podman, as DESIGN.md
# "Containers on these machines" describes: runc, cgroupfs, capped ulimits, no registry pulls.
#   1. installs podman, runc, debootstrap if missing;
#   2. builds the local base image `debian:bookworm` with debootstrap + podman import if it is
#      not there yet (REBUILD_BASE=1 forces it);
#   3. prepares a temporary build context: the repository's files (no target/, no .git),
#      `cargo vendor` into vendor/, and a .cargo/config.toml pointing at it (the repository
#      itself never gets a vendor/);
#   4. podman build --pull=never --network host -t aperture:dev (extra arguments are passed on).
# Run as root. Environment: IMAGE (default aperture:dev), KEEP_CONTEXT=1 keeps the context dir.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

IMAGE=${IMAGE:-aperture:dev}
BASE=debian:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { printf 'docker-build: %s\n' "$*"; }
die() { printf 'docker-build: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (rootful podman)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aperture-image.XXXXXX")
cleanup() {
    if [[ ${KEEP_CONTEXT:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# 1. tools
missing=()
for p in podman runc debootstrap; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
else
    log "podman, runc, debootstrap: present"
fi
if [[ -f "${HOME:-/root}/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "${HOME:-/root}/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (run: bash scripts/setup.sh)"

# podman settings measured to work here (runc, cgroupfs, capped ulimits).
export CONTAINERS_CONF="$ROOT/scripts/podman-containers.conf"
log "CONTAINERS_CONF=$CONTAINERS_CONF (runc, cgroupfs)"

# 2. base image
if [[ ${REBUILD_BASE:-0} != 1 ]] && podman image exists "$BASE"; then
    log "base image $BASE: present"
else
    log "base image $BASE: debootstrap --variant=minbase bookworm from $MIRROR"
    rootfs="$WORK/rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    # FROM debian:bookworm may resolve to either name; tag both.
    podman tag "$BASE" "docker.io/library/$BASE"
    rm -rf "$rootfs"
    log "base image $BASE: imported"
fi

# 3. build context
CTX="$WORK/context"
mkdir -p "$CTX"
log "context $CTX: copying sources"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked-but-not-ignored files (so target/, fuzz/target ... stay out).
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do
            if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
        done \
        | tar -C "$ROOT" --null --no-recursion -T - -cf - \
        | tar -C "$CTX" -xf -
else
    tar -C "$ROOT" --exclude=./target --exclude=./.git --exclude=./vendor \
        --exclude=./aperture-out --exclude=./fuzz/target -cf - . | tar -C "$CTX" -xf -
fi
mkdir -p "$CTX/conf" "$CTX/.cargo"
if [[ -f "$ROOT/Cargo.lock" ]]; then cp "$ROOT/Cargo.lock" "$CTX/"; fi

log "context: cargo vendor"
# (--quiet would also suppress the [source] snippet that cargo vendor prints on stdout)
(cd "$CTX" && cargo vendor vendor >"$WORK/vendor-config.toml" 2>"$WORK/vendor.log") \
    || { tail -20 "$WORK/vendor.log" >&2; die "cargo vendor failed"; }
grep -q 'vendored-sources' "$WORK/vendor-config.toml" || die "cargo vendor printed no [source] config"
if [[ -f "$CTX/.cargo/config.toml" ]] && grep -q '^\[source' "$CTX/.cargo/config.toml"; then
    die ".cargo/config.toml in the repository already has a [source] section"
fi
cat "$WORK/vendor-config.toml" >>"$CTX/.cargo/config.toml"
log "context: $(find "$CTX/vendor" -mindepth 1 -maxdepth 1 -type d | wc -l) vendored crates, $(du -sh "$CTX" | cut -f1)"

# 4. image
log "podman build -t $IMAGE"
podman build --pull=never --network host -t "$IMAGE" -f "$CTX/Dockerfile" "$@" "$CTX"
log "built $IMAGE; try: podman run --rm $IMAGE"
