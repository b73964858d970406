#!/usr/bin/env bash
# The whole Aperture test suite, as one command, on a fresh Debian 12 machine as root:
#   bash scripts/test.sh        (CI runs it through .ci/run)
# Steps: system packages (scripts/setup.sh), script syntax, cargo build, cargo test
# (one test thread: network tests share namespaces), fuzz smoke (if fuzz/ exists), the
# container image (scripts/test-image.sh). Exits non-zero if any step fails. Environment:
# FUZZ_SECONDS (default 10) per fuzz target, APERTURE_IMAGE_TEST=0 skips the image.
# shellcheck disable=SC2317  # the step functions below are called indirectly, through step()
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/aperture-test.XXXXXX")
trap 'rm -rf "$LOG_DIR"' EXIT

RESULTS=()
FAILED=0

say() { printf '\n=== %s\n' "$*"; }

# step NAME CMD...: run CMD, record "NAME: ok|FAILED (Ns)". Never aborts the script.
step() {
    local name=$1 start rc
    shift
    say "$name"
    start=$SECONDS
    set +e
    "$@"
    rc=$?
    set -e
    if ((rc == 0)); then
        RESULTS+=("$name: ok ($((SECONDS - start))s)")
    else
        RESULTS+=("$name: FAILED, exit $rc ($((SECONDS - start))s)")
        FAILED=1
    fi
    return "$rc"
}

skip() {
    RESULTS+=("$1: skipped ($2)")
}

check_scripts() {
    local f rc=0
    for f in scripts/*.sh .ci/run; do
        [[ -f $f ]] || continue
        bash -n "$f" || rc=1
    done
    return "$rc"
}

cargo_build() {
    cargo build --workspace --all-targets
}

cargo_test() {
    local log="$LOG_DIR/cargo-test.log" rc
    set +e
    # Unit, integration and doc-less targets on one thread (network tests share namespaces);
    # then the criterion benches in test mode (each benchmark runs once, asserting its setup;
    # `--bench '*'`, not `--benches`, which would run the libraries' unit tests again and
    # count them twice).
    cargo test --workspace --lib --bins --tests --no-fail-fast -- --test-threads=1 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    cargo test --workspace --bench '*' --no-fail-fast 2>&1 | tee -a "$log"
    ((PIPESTATUS[0] == 0)) || rc=1
    set -e
    # Totals over every test binary, from cargo's "test result:" lines.
    awk '/^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($(i) ~ /^passed;?$/)  p += $(i - 1);
                if ($(i) ~ /^failed;?$/)  f += $(i - 1);
                if ($(i) ~ /^ignored;?$/) g += $(i - 1);
            }
            n++
        }
        END { printf "%d test binaries\ntests: %d passed, %d failed, %d skipped\n", n, p, f, g }' \
        "$log" >"$LOG_DIR/test-totals"
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# Fuzz smoke: every cargo-fuzz target for FUZZ_SECONDS (default 10) each, the App-ID
# decoders' (small, single-message parsers, each also under a proptest) for a third as long.
# All targets are built in one cargo-fuzz build, then each binary runs directly (a cargo
# invocation per target cost about 8 s of the budget each).
# The stable toolchain has no nightly: RUSTC_BOOTSTRAP=1 lets cargo-fuzz's -Z flags work.
# ---------------------------------------------------------------------------------------
run_fuzz_smoke() {
    local secs=${FUZZ_SECONDS:-10} targets t rc=0 bin
    export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "installing cargo-fuzz"
        cargo install --locked cargo-fuzz || return 1
    fi
    targets=$(RUSTC_BOOTSTRAP=1 cargo fuzz list) || return 1
    if [[ -z $targets ]]; then
        echo "fuzz/: no targets listed"
        return 0
    fi
    RUSTC_BOOTSTRAP=1 cargo fuzz build || return 1
    bin=$ROOT/fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
    for t in $targets; do
        local s=$secs
        [[ $t == decoder_* ]] && s=$(((secs + 2) / 3))
        echo "--- fuzz target $t (${s}s)"
        # Committed seeds (fuzz/seeds/TARGET; the decoders share fuzz/seeds/payloads, made by
        # scripts/fuzz-seeds.py from the corpus) join the working corpus (fuzz/corpus, ignored).
        local dirs=() seeds=fuzz/seeds/$t
        [[ $t == decoder_* ]] && seeds=fuzz/seeds/payloads
        mkdir -p "$ROOT/fuzz/corpus/$t" "$ROOT/fuzz/artifacts/$t"
        dirs=("$ROOT/fuzz/corpus/$t")
        [[ -d $seeds ]] && dirs+=("$ROOT/$seeds")
        if ! "$bin/$t" -artifact_prefix="$ROOT/fuzz/artifacts/$t/" -max_total_time="$s" \
            "${dirs[@]}" 2>"$ROOT/fuzz/artifacts/$t.log"; then
            tail -n 40 "$ROOT/fuzz/artifacts/$t.log"
            echo "fuzz target $t FAILED"
            rc=1
        else
            grep -E '^Done' "$ROOT/fuzz/artifacts/$t.log" || true
        fi
    done
    return "$rc"
}

# Nothing the tests, benchmarks or scripts run may read outside the checkout: a clone of the
# project alone must pass. Lists every line that reaches up into the shared folder beside the
# checkout (docs excepted) and fails.
check_self_contained() {
    local hits
    hits=$(git grep -n -E '\.\./(\.\./)?shared' -- ':!*.md' 2>/dev/null || true)
    if [[ -n $hits ]]; then
        echo "these lines reach outside the checkout:"
        echo "$hits"
        return 1
    fi
    [[ -f tests/corpus/README.md ]] || { echo "tests/corpus is missing"; return 1; }
    echo "no test, bench or script reads outside the checkout"
}

# The container image, built with podman from the Dockerfile and run as a user would.
image_test() {
    bash scripts/test-image.sh
}

# Further checks (promtool check metrics, tshark dissection, ...) go here as steps.

# ---------------------------------------------------------------------------------------
start_all=$SECONDS
step "setup" bash scripts/setup.sh || {
    say "summary"
    printf '%s\n' "${RESULTS[@]}"
    echo "test suite FAILED: system setup failed"
    exit 1
}

# rustup's environment, where present (setup.sh leaves Debian's cargo on PATH otherwise).
if [[ -f "${HOME:-/root}/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "${HOME:-/root}/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found after setup" >&2; exit 1; }
echo "using $(cargo --version), $(rustc --version)"

step "scripts (bash -n)" check_scripts || true
step "self-contained" check_self_contained || true

if step "cargo build" cargo_build; then
    step "cargo test" cargo_test || true
    if [[ -d fuzz ]]; then
        step "fuzz smoke" run_fuzz_smoke || true
    else
        skip "fuzz smoke" "no fuzz/ directory"
    fi
else
    skip "cargo test" "build failed"
    skip "fuzz smoke" "build failed"
fi
if [[ ${APERTURE_IMAGE_TEST:-1} == 0 ]]; then
    skip "container image" "APERTURE_IMAGE_TEST=0"
else
    step "container image" image_test || true
fi

cd "$ROOT"
say "summary ($((SECONDS - start_all))s)"
printf '%s\n' "${RESULTS[@]}"
if ((FAILED)); then
    echo "test suite FAILED"
else
    echo "test suite passed"
fi
# Last line: totals over all cargo test binaries ("tests: N passed, N failed, N skipped").
if [[ -f "$LOG_DIR/test-totals" ]]; then
    cat "$LOG_DIR/test-totals"
fi
exit "$FAILED"
