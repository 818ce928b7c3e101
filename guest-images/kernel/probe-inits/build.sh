#!/bin/sh
# Builds the tiny probe /init programs and one initramfs per program into $1
# (default /var/tmp/pvm-probe): initrd64.cpio.gz, initrd32.cpio.gz, ...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/var/tmp/pvm-probe}
mkdir -p "$out"
flags="-static -nostdlib -O2 -fno-stack-protector -fno-pic -no-pie"
gcc $flags -o "$out/init64" "$here/init64.c"
for v in 32 32s 32y 32m; do gcc -m32 $flags -ffreestanding -fno-builtin -o "$out/init$v" "$here/init$v.c"; done
for v in 64 32 32s 32y 32m; do
	rm -rf "$out/r$v"; mkdir -p "$out/r$v/dev"; cp "$out/init$v" "$out/r$v/init"
	(cd "$out/r$v" && find . | cpio -o -H newc 2>/dev/null | gzip >"$out/initrd$v.cpio.gz")
done
ls -l "$out"/initrd*.cpio.gz
