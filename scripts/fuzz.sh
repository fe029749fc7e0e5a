#!/usr/bin/env bash
# Bounded fuzz run of the cargo-fuzz targets in fuzz/ (see docs/security.md, "Fuzzing").
#
# Usage: scripts/fuzz.sh [seconds-per-target]     (default 60)
#
# Installs cargo-fuzz if missing, builds every target once, then runs them side by side, each for
# the given time, from its committed seeds (fuzz/seeds/<target>) plus the corpus grown by earlier
# runs (fuzz/corpus/<target>, not committed). Prints one line of figures per target; exits
# non-zero if any target crashed (panic, failed assertion, timeout, out of memory), naming the
# input saved under fuzz/artifacts/<target>/ and the command that replays it.
#
# Runs on the stable toolchain: the targets are built without a sanitizer (`--sanitizer none`
# passes no -Z flag). FUZZ_SANITIZER=address builds with AddressSanitizer instead, which needs
# nightly or RUSTC_BOOTSTRAP=1 (set here for it) and about twice the build time.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
cargo_fuzz_version=0.13.2
sanitizer=${FUZZ_SANITIZER:-none}
targets=(acl_match basic_auth request_body)
declare -A max_len=([acl_match]=1024 [basic_auth]=4096 [request_body]=65536)

log() { printf 'fuzz: %s\n' "$*"; }

# libfuzzer-sys compiles libFuzzer (C++) with the system compiler.
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    scripts/install-deps.sh
fi

if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
    log "installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --quiet
fi

if [[ $sanitizer != none ]]; then
    export RUSTC_BOOTSTRAP=1
    # As `cargo fuzz run` sets it (the targets are run directly here).
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
fi

# fuzz/Cargo.lock is committed; it is not used with --locked so that a dependency change in host/
# does not break this script, but a change is reported.
lock_before=$(sha256sum fuzz/Cargo.lock)
start=$SECONDS
cargo fuzz build --sanitizer "$sanitizer"
log "built in $((SECONDS - start)) s (sanitizer: $sanitizer)"
if [[ "$(sha256sum fuzz/Cargo.lock)" != "$lock_before" ]]; then
    log "note: fuzz/Cargo.lock was out of date and has been updated; commit it"
fi

bin=fuzz/target/x86_64-unknown-linux-gnu/release
logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
pids=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # The first corpus directory receives the new inputs; the seeds are only read.
    "$bin/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
        -max_total_time="$seconds" -max_len="${max_len[$t]}" -rss_limit_mb=2048 -timeout=10 \
        -dict="fuzz/dicts/$t.dict" -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
        >"$logs/$t.log" 2>&1 &
    pids+=($!)
done
log "running ${targets[*]} for ${seconds} s each, side by side (logs in $logs/)"

# A figure of libFuzzer's final statistics (-print_final_stats) in log $f.
final_stat() { sed -n "s/^stat::$1: *//p" "$f"; }

failed=0
for i in "${!targets[@]}"; do
    t=${targets[$i]}
    status=0
    wait "${pids[$i]}" || status=$?
    f="$logs/$t.log"
    last=$(grep -E '^#[0-9]+' "$f" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    if [[ $status -eq 0 ]]; then
        printf 'fuzz: %-13s ok: %s executions (%s/s), coverage %s edges, %s features, corpus %s, peak RSS %s MB\n' \
            "$t" "$(final_stat number_of_executed_units)" "$(final_stat average_exec_per_sec)" \
            "${cov:-?}" "${ft:-?}" "${corp:-?}" "$(final_stat peak_rss_mb)"
    else
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$f" | tail -1)
        printf 'fuzz: %-13s FAILED (exit %s); log: %s\n' "$t" "$status" "$f"
        grep -E -m 5 "panicked at|ERROR: libFuzzer|SUMMARY" "$f" | sed 's/^/fuzz:     /' || true
        if [[ -n $artifact ]]; then
            log "    input: $artifact"
            log "    replay: cargo fuzz run --sanitizer $sanitizer $t $artifact"
        fi
    fi
done
exit "$failed"
