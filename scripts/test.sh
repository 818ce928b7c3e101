#!/usr/bin/env bash
# The README's test command: installs what is missing, builds the guest images if
# they are not built (the kernel build is cached), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash guest-images/build.sh
cargo test --workspace --all-targets "$@"
