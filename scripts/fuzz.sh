#!/usr/bin/env bash
# Bounded fuzzing of the parsers that take outside input (fuzz/fuzz_targets: kernel
# images, kernel command line, initrd placement, OCI config.json) with cargo-fuzz on
# the nightly toolchain. Installs cargo-fuzz if it is missing, builds every target
# once (AddressSanitizer, debug assertions on), then runs each for FUZZ_SECONDS
# (default 20) from its seed corpus fuzz/corpus/<target> and prints the runs made.
# New inputs libFuzzer finds go to a scratch directory, never into the repo. A crash
# fails the script; its input is left in fuzz/artifacts/<target>/: fix the bug, then
# add the input to fuzz/corpus/<target>/ so it is replayed on every run.
#   FUZZ_SECONDS=60 bash scripts/fuzz.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
toolchain=${FUZZ_TOOLCHAIN:-nightly}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

start=$(date +%s)
cargo "+$toolchain" fuzz build --debug-assertions
echo "fuzz: targets built in $(( $(date +%s) - start )) s"

if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo "+$toolchain" fuzz list); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  if cargo "+$toolchain" fuzz run --debug-assertions "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz: $t: ${runs:-?} runs in $seconds s, ${cov:-cov: ?}, $(ls "$scratch/$t" | wc -l) new inputs"
  else
    failed=1
    echo "fuzz: $t FAILED; the end of its log:" >&2
    tail -n 40 "$log" >&2
  fi
done
echo "fuzz: finished in $(( $(date +%s) - start )) s"
exit "$failed"
