#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 30) each: scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). A crash stops the run
# with a non-zero exit; its input lands in fuzz/artifacts/TARGET/ (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
  # Every target built at once first (cargo links them in parallel), not one at a time by
  # the runs below; a target that does not build fails its run below, with the compiler's
  # errors.
  cargo +nightly fuzz build >/dev/null 2>&1 || true
fi
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "== fuzz $t for ${SECONDS_EACH}s"
  # The run's own status decides (a target that no longer builds, or crashes, fails); the
  # grep only trims the output and may match nothing.
  set +e
  cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_EACH" -dict=dict/json.dict -print_final_stats=1 2>&1 \
    | grep -E '^(==|#[0-9]+ *DONE|stat::number_of_executed_units|INFO: Running|SUMMARY|.*panicked|Failing input|error)'
  status=${PIPESTATUS[0]}
  set -e
  # libFuzzer also saves slow-unit-* inputs (over 10 s, e.g. on a starved machine): reported,
  # not failures. crash-, leak-, timeout- and oom- inputs are.
  for slow in "artifacts/$t"/slow-unit-*; do
    [ -e "$slow" ] && echo "fuzz: $t: a slow input (not a failure): fuzz/$slow" >&2
  done
  if [ -n "$(ls -A "artifacts/$t" 2>/dev/null | grep -v '^slow-unit-')" ]; then
    echo "fuzz: $t crashed; inputs in fuzz/artifacts/$t" >&2
    exit 1
  fi
  if [ "$status" != 0 ]; then
    echo "fuzz: $t: cargo fuzz exited $status (does the target still build?)" >&2
    exit 1
  fi
done
