#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation (the
# flags cargo-fuzz passes, minus the nightly-only sanitizer, so the stable
# toolchain builds it) and runs each for SECONDS (default 30), starting from
# the committed seeds in fuzz/seeds/<target> (a stored line, a checkpoint)
# and the corpus earlier runs left in fuzz/corpus/<target>. Exits non-zero on the
# first crash; the crashing input is left in fuzz/artifacts/<target>/.
#
#   bash fuzz/run.sh            # each target for 30 s (what .ci/run does)
#   bash fuzz/run.sh 3600 json  # one target for an hour
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(json stored_line signed_note proofs csv)
fi
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros
# (they run on the host and must not be instrumented).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$host"
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
    echo "fuzz: $t for ${seconds}s"
    "$CARGO_TARGET_DIR/$host/release/$t" -max_total_time="$seconds" -max_len=65536 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 "corpus/$t" "seeds/$t" 2>&1 | tail -n 12
done
