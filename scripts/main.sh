#!/usr/bin/env bash
# The README's main command: installs what is missing, builds the guest images if
# they are not built, then runs the default comparison and writes a report under
# reports/ (default reports/latest/). Arguments are passed to `bootlab bench`.
#
# The bootlab binary is linked statically (+crt-static): a runtime's start-up is part
# of what is measured, and skipping the dynamic loader saves about 0.5 ms a run. The
# explicit --target keeps the flags off build scripts and proc-macros. It is not
# position-independent (relocation-model=static): a static-pie binary applies ~5,000
# relocations at every start, which dirties its 72 KiB of RELRO data page by page
# (page faults are expensive on our virtualized hosts: 97 -> 76 faults per start).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash guest-images/build.sh
TARGET=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" cargo build --release --target "$TARGET" --bin bootlab
exec "target/$TARGET/release/bootlab" bench "$@"
