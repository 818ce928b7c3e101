#!/usr/bin/env bash
# The README's main command: installs what is missing, builds the guest images if
# they are not built, then runs the default comparison and writes a report under
# reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash guest-images/build.sh
cargo build --release --workspace
exec target/release/bootlab bench "$@"
