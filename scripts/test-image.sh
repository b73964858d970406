#!/usr/bin/env bash
# Builds the container image and checks it as a user would run it (rootful podman, as root).
# scripts/test.sh runs it as its last step (APERTURE_IMAGE_TEST=0 skips it there); it takes
# about 10 minutes on 2 cores, most of it the release build inside the container.
#   1. scripts/docker-build.sh builds aperture:dev (SKIP_BUILD=1 checks an existing image);
#   2. `podman run --rm aperture:dev` replays the embedded sample: exit 0, and the FaceTime
#      session is named (ssl > facetime, sip > facetime, rtp > ichat-av);
#   3. aperturectl inside the image accepts the shipped /etc/aperture/policy.yaml and refuses a
#      broken one with its line and column;
#   4. a capture mounted from the host replays with a flow log written back to the host.
# Environment: IMAGE (default aperture:dev).
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-aperture:dev}
log() { printf 'image: %s\n' "$*"; }
fail() { printf 'image: FAIL: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (rootful podman)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aperture-image-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The same engine settings as scripts/docker-build.sh (runc, cgroupfs, capped ulimits).
export CONTAINERS_CONF="$PWD/scripts/podman-containers.conf"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    start=$(date +%s)
    IMAGE=$IMAGE bash scripts/docker-build.sh
    log "build took $(($(date +%s) - start)) s"
fi
podman image exists "$IMAGE" || fail "no image $IMAGE"
log "$IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

# 2. the default command
podman run --rm "$IMAGE" >"$WORK/default.txt" 2>&1 || { cat "$WORK/default.txt"; fail "default run failed"; }
for want in 'ssl > facetime' 'sip > facetime' 'rtp > ichat-av'; do
    grep -qF "$want" "$WORK/default.txt" || { cat "$WORK/default.txt"; fail "default replay lacks '$want'"; }
done
log "default run: replay of the embedded sample names facetime (ssl, sip) and ichat-av (rtp)"

# 3. aperturectl check
podman run --rm --entrypoint aperturectl "$IMAGE" check /etc/aperture/policy.yaml >"$WORK/check.txt" 2>&1 \
    || { cat "$WORK/check.txt"; fail "aperturectl check refused the shipped policy"; }
log "shipped policy: $(cat "$WORK/check.txt")"
printf 'version: 1\nrules:\n  - name: r\n    application: [no-such-app]\n    action: allow\n' >"$WORK/bad.yaml"
if podman run --rm -v "$WORK:/data:Z" --entrypoint aperturectl "$IMAGE" check /data/bad.yaml >"$WORK/bad.txt" 2>&1; then
    fail "aperturectl check accepted a policy with an unknown application"
fi
grep -q 'bad.yaml:4:' "$WORK/bad.txt" || { cat "$WORK/bad.txt"; fail "the error does not name line 4"; }
log "broken policy: refused ($(head -1 "$WORK/bad.txt"))"

# 4. a mounted capture, flow log back on the host
cp tests/corpus/sip-calls/sipnab_SIP_CALL_RTP_G711.pcap "$WORK/in.pcap"
podman run --rm -v "$WORK:/data:Z" "$IMAGE" replay --pcap /data/in.pcap --flow-log /data/flows.json \
    >"$WORK/mounted.txt" 2>&1 || { cat "$WORK/mounted.txt"; fail "replay of a mounted capture failed"; }
[[ -s $WORK/flows.json ]] || fail "no flow log written to the mount"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$WORK/flows.json" \
    || fail "the flow log is not JSON lines"
grep -q '"app":"sip"' "$WORK/flows.json" || { head -3 "$WORK/flows.json"; fail "the SIP call's signalling is not sip"; }
log "mounted capture: $(wc -l <"$WORK/flows.json") flow records written back to the host, sip among them"
log "ok"
