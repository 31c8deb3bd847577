#!/usr/bin/env bash
# Fuzz wasmcni's parsers with cargo-fuzz (libFuzzer): every target in host/fuzz/fuzz_targets
# (config, result, annotation, cni_args) for SECONDS_PER_TARGET (default 300), one after the other,
# one worker each. Prints per target: execs, execs/s, corpus size, crashes.
#
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET]
#
# Too slow for CI: run it by hand. Installs cargo-fuzz if missing. Seeds (committed) are in
# host/fuzz/seeds/<target>; the growing corpus (host/fuzz/corpus/<target>) and crash artifacts
# (host/fuzz/artifacts/<target>) are gitignored. A crash is reproduced with
#   (cd host/fuzz && cargo fuzz run <flags below> <target> artifacts/<target>/crash-…)
# and, once fixed, kept as a regression test (host/fuzz/regressions/<target>/, see
# host/tests/fuzz_regressions.rs).
#
# Built with the default (stable) toolchain and RUSTC_BOOTSTRAP=1 rather than nightly: the host's
# build.rs builds the Wasm guests with the same toolchain, and wasm32-wasip2 is installed for it.
# No sanitizer (`-s none`): the code under test is safe Rust, so ASan adds cost, not findings;
# debug assertions and overflow checks are on (`-a`).
set -euo pipefail

SECONDS_PER_TARGET="${1:-300}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FUZZ="$ROOT/host/fuzz"
TARGETS=(config result annotation cni_args)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

export RUSTC_BOOTSTRAP=1
# The guests the host embeds are built into the fuzz crate's own target dir, not the main one.
export WASMCNI_GUEST_TARGET_DIR="$FUZZ/target/guests"
FLAGS=(-O -a -s none --codegen-units 16)

cd "$FUZZ"
cargo fuzz build "${FLAGS[@]}"

summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t.log"
    echo "== $t: ${SECONDS_PER_TARGET}s"
    # -fork=1: one worker that keeps going after a crash (each one is saved in artifacts/$t).
    cargo fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=16384 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true
    # The fork-mode status line: "#EXECS: cov: … corp: N exec/s: R oom/timeout/crash: a/b/c time: Ts …"
    last="$(grep -E '^#[0-9]+: cov:' "$log" | tail -n1 || true)"
    execs="$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last")"
    crashes="$(sed -nE 's/.*oom\/timeout\/crash: ([0-9]+\/[0-9]+\/[0-9]+).*/\1/p' <<<"$last")"
    secs="$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")"
    # Over the whole run (the status line's own exec/s is its last job's).
    rate="?"
    if [[ -n "$execs" && -n "$secs" && "$secs" -gt 0 ]]; then rate=$((execs / secs)); fi
    corpus="$(find "corpus/$t" -type f | wc -l)"
    artifacts="$(find "artifacts/$t" -type f | wc -l)"
    line="$t: execs=${execs:-?} exec/s=$rate time=${secs:-?}s corpus=$corpus oom/timeout/crash=${crashes:-?} artifacts=$artifacts (log: host/fuzz/$log)"
    echo "$line"
    summary+=("$line")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
