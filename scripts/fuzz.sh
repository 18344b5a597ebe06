#!/usr/bin/env bash
# Fuzzes sabpool-core (crates/sabpool-core) for SECONDS seconds (default 300) with cargo-fuzz (libFuzzer +
# AddressSanitizer, debug assertions on): fuzz/fuzz_targets/region.rs builds a pool and a channel,
# overwrites part of their regions with fuzz bytes, attaches, and runs a fuzz-chosen operation
# sequence (see fuzz/src/lib.rs for what must never happen).
#
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]
#
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz (installed here
# from crates.io if missing). The corpus grows in fuzz/corpus/region; a failing input is saved in
# fuzz/artifacts/region/ and reproduced with
#   cd fuzz && cargo +nightly fuzz run region artifacts/region/<file>
# or, on stable, by dropping it into fuzz/corpus/region and running
#   cargo test --release -p sabpool-core --test fuzz_region
# Exits non-zero if the fuzzer found a crash, a hang (-timeout, 5 s per input) or a leak.
set -euo pipefail
seconds=${1:-300}
shift || true
cd "$(dirname "$0")/../fuzz"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io..." >&2
  cargo install cargo-fuzz --locked
fi

mkdir -p corpus/region artifacts/region
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
status=0
cargo +nightly fuzz run region corpus/region -- \
  -max_total_time="$seconds" -timeout=5 -rss_limit_mb=4096 -print_final_stats=1 "$@" 2>&1 | tee "$log" || status=$?
end=$(date +%s)
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || echo '?')
echo "fuzz.sh: $((end - start)) s, $execs executions, final $cov, corpus $(ls corpus/region | wc -l) inputs, exit $status"
exit "$status"
