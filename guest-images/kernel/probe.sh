#!/bin/sh
# probe.sh VMLINUX INITRD [EXTRA_CMDLINE] [TIMEOUT_S]
# Boots VMLINUX + INITRD under QEMU -M microvm on /dev/kvm (emulated PVM here),
# prints the console and, on an emulation failure, QEMU's "KVM internal error"
# dump (RIP, Code= bytes). QEMU pauses on such an error, so it always runs under
# a timeout. Env QMON=PATH adds a QEMU monitor socket (info registers, x/i $pc).
# Env CPU overrides the -cpu model (e.g. host,-arch-capabilities,vendor=GenuineIntel).
# Env MEM = guest MiB (default 64: freeing memblock costs seconds per 100 MiB).
set -u
K=$1; I=$2; EXTRA=${3:-}; T=${4:-120}; MEM=${MEM:-64}
BASE="console=ttyS0 noxsave clearcpuid=smap,popcnt,bmi1,bmi2,avx,avx2,fsgsbase,rdpid,rdseed,rdrand reboot=k panic=-1"
exec timeout "$T" qemu-system-x86_64 -M microvm -enable-kvm -cpu "${CPU:-host,-arch-capabilities}" \
  -m "$MEM" -smp 1 -nodefaults -no-user-config -display none -serial stdio -no-reboot \
  -device isa-debug-exit,iobase=0x501,iosize=1 \
  ${QMON:+-monitor unix:$QMON,server,nowait} \
  -kernel "$K" -initrd "$I" -append "$BASE $EXTRA" </dev/null
