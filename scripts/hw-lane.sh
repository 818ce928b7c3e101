#!/usr/bin/env bash
# The nested-SVM lane: bootlab on real KVM code, on hosts whose own /dev/kvm is
# emulated (PVM) or missing. QEMU emulates an AMD EPYC CPU with SVM and nested paging
# in software (TCG, no /dev/kvm needed); Debian's cloud kernel boots in it as L1, loads
# kvm_amd and offers a hardware-style /dev/kvm; bootlab commands run inside, and their
# output and files come back to this host. Facts: docs/HOSTS.md.
#
#   scripts/hw-lane.sh [OPTIONS] [-- [VAR=VALUE...] BOOTLAB-ARGS...]...
#
# Every `--` group is one `bootlab BOOTLAB-ARGS` command run inside L1, in order, in a
# working folder that comes back as --out; leading VAR=VALUE words set that command's
# environment, and a group that starts with `sh` runs as a shell command instead
# (`-- sh -c 'firecracker --version'`). The lane stops at the first command that
# fails. Without a group it runs `vm run --guest linux` (a 64-bit Linux guest with
# default arguments).
#
# Options:
#   --out DIR        where the working folder comes back (default target/hw-lane): a
#                    new or empty folder, or an earlier lane output (replaced).
#                    DIR/lane/N.{cmd,out,err,status} hold
#                    each command's line, stdout, stderr and exit status.
#   --timeout S      bound on L1's whole life, boot to power-off (default 1200)
#   --bootlab PATH   the bootlab binary to run inside (default: build the static
#                    release binary as scripts/main.sh does)
#   --plain-kernel   also build (or take from the cache) the guest kernel without the
#                    emulated-KVM workarounds; inside it is /lane/images-plain/vmlinux,
#                    a complete images folder for BOOTLAB_IMAGES
#   --qemu PATH      the QEMU that runs L1 (default qemu-system-x86_64 on PATH)
#   --smp N          L1's CPUs (default 2); --mem MiB: L1's memory (default 3072)
#   -h, --help
#
# Inside L1: PATH has bootlab, firecracker (when found: $BOOTLAB_FIRECRACKER, then
# ../shared/peers/firecracker beside the checkout, then PATH) and qemu-system-x86_64;
# BOOTLAB_IMAGES=/lane/images holds the guest images of this checkout.
#
# Environment: BOOTLAB_CACHE (default /var/cache/bootlab): the L1 kernel is kept in
# $BOOTLAB_CACHE/l1/<package>/; a cached one is used without asking apt unless
# BOOTLAB_LANE_REFRESH=1. BOOTLAB_IMAGES: the guest images (default guest-images/out).
#
# Times measured in the lane are of EMULATED hardware (TCG): compare runtimes with
# each other inside one L1, never with native numbers.
set -euo pipefail
# The whole script is one block, read before it runs: editing the file while a lane
# runs (hours of it, sometimes) cannot change what the running lane does.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CACHE=${BOOTLAB_CACHE:-/var/cache/bootlab}
IMAGES=${BOOTLAB_IMAGES:-$ROOT/guest-images/out}
TARGET=x86_64-unknown-linux-gnu
L1_META=linux-image-cloud-amd64
# Modules L1 loads, in dependency order (checked against each module's `depends=`);
# tun gives `bootlab vm run --net` its /dev/net/tun.
L1_MODULES=(
  virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko
  drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko
  drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
  drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko
  drivers/net/tun.ko
)
# The CPU QEMU emulates: AMD with SVM and nested paging (without NPT it is ~8x slower).
L1_CPU=EPYC
# `idle=poll`: with an idle L1 halting, QEMU's software CPU now and then stopped
# delivering L1's timer interrupts while an L2 guest waited: L1's clock stood still
# and the lane hung with QEMU idle (seen three times here, once in a plain lab-guest
# run). Polling instead of halting costs nothing that is not already emulated.
# BOOTLAB_LANE_L1_CMDLINE replaces the whole line.
L1_CMDLINE=${BOOTLAB_LANE_L1_CMDLINE:-"console=ttyS0 quiet panic=-1 mitigations=off idle=poll rdinit=/init"}
# Sparse output disk: a tar archive written raw by L1.
OUT_DISK_MIB=4096

out=$ROOT/target/hw-lane
timeout_s=1200
bootlab=
plain=0
qemu=
smp=2
mem=3072
declare -a groups=()

die() {
  echo "hw-lane: error: $*" >&2
  exit 1
}
log() { echo "hw-lane: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# ---- arguments --------------------------------------------------------------------
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --timeout)
      need_value "$@"
      [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "--timeout takes whole seconds > 0, got '$2'"
      timeout_s=$2; shift 2 ;;
    --bootlab) need_value "$@"; bootlab=$2; shift 2 ;;
    --plain-kernel) plain=1; shift ;;
    --qemu) need_value "$@"; qemu=$2; shift 2 ;;
    --smp)
      need_value "$@"
      [[ "$2" =~ ^[1-9][0-9]?$ ]] || die "--smp takes 1..99, got '$2'"
      smp=$2; shift 2 ;;
    --mem)
      need_value "$@"
      [[ "$2" =~ ^[0-9]+$ && "$2" -ge 1024 && "$2" -le 16384 ]] || die "--mem takes 1024..16384 MiB, got '$2'"
      mem=$2; shift 2 ;;
    --)
      shift
      g=()
      while [[ $# -gt 0 && "$1" != -- ]]; do g+=("$1"); shift; done
      ((${#g[@]})) || die "an empty command group after --"
      # One line per command: shell-quoted words, VAR=VALUE prefixes kept as such.
      line=
      assigning=1
      for w in "${g[@]}"; do
        if ((assigning)) && [[ "$w" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
          line+="${BASH_REMATCH[1]}=$(printf '%q' "${BASH_REMATCH[2]}") "
        else
          # `sh ...` runs as it is (e.g. `-- sh -c 'firecracker --version'`).
          ((assigning)) && [[ "$w" != sh ]] && line+="bootlab "
          assigning=0
          line+="$(printf '%q' "$w") "
        fi
      done
      ((assigning)) && die "command group '${g[*]}' has no bootlab arguments"
      groups+=("$line")
      ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
((${#groups[@]})) || groups=("bootlab vm run --guest linux")
# --out is replaced at the end: only a new or empty folder, or an earlier lane's output.
if [[ -e "$out" ]]; then
  [[ -d "$out" ]] || die "--out $out exists and is not a folder"
  if [[ -n "$(ls -A "$out")" && ! -d "$out/lane" ]]; then
    die "--out $out is a non-empty folder that is not an earlier lane output (it would be replaced)"
  fi
fi

# ---- host tools -------------------------------------------------------------------
if [[ -z "$qemu" ]]; then
  qemu=$(command -v qemu-system-x86_64 || true)
  [[ -n "$qemu" ]] || die "qemu-system-x86_64 not found (Debian package qemu-system-x86; scripts/deps.sh installs it)"
fi
[[ -x "$qemu" && -f "$qemu" ]] || die "QEMU $qemu not found or not executable"
for t in cpio readelf busybox tar; do
  command -v "$t" >/dev/null || die "$t not found (run scripts/deps.sh)"
done
[[ -f "$IMAGES/vmlinux" && -f "$IMAGES/initramfs.cpio.gz" ]] ||
  die "guest images missing in $IMAGES (run guest-images/build.sh)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bootlab-hw-lane.XXXXXX")
QEMU_PID=
TAIL_PID=
cleanup() {
  local rc=$?
  if [[ -n "$QEMU_PID" ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill -KILL "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  [[ -n "$TAIL_PID" ]] && kill "$TAIL_PID" 2>/dev/null
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- the L1 kernel: Debian's cloud kernel, cached ---------------------------------
# Prints the folder of the newest complete cached L1 kernel (boot/vmlinuz-*,
# lib/modules/*); a fetch cut short leaves a `.tmp` folder without `complete`.
cached_l1() {
  find "$CACHE/l1" -mindepth 2 -maxdepth 2 -name complete -path '*/linux-image-*/complete' 2>/dev/null |
    sort -V | tail -n 1 | xargs -r dirname
  return 0
}

# The kernel package the cloud metapackage names in apt's lists.
l1_package() {
  apt-cache depends "$L1_META" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'
}

fetch_l1() {
  local pkg dest tmp
  pkg=$(l1_package)
  if [[ -z "$pkg" ]]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(l1_package)
  fi
  [[ -n "$pkg" ]] || return 1
  dest="$CACHE/l1/$pkg"
  [[ -f "$dest/complete" ]] && { echo "$dest"; return 0; }
  tmp="$CACHE/l1/$pkg.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "fetching $pkg through apt"
  (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/apt.log") || {
    sed 's/^/  /' "$tmp/apt.log" | grep -v 'unsandboxed' >&2 || true
    rm -rf "$tmp"
    return 1
  }
  dpkg -x "$tmp"/*.deb "$tmp/x"
  rm -rf "$dest"
  mkdir -p "$dest"
  mv "$tmp/x/boot" "$tmp/x/lib" "$dest/"
  rm -rf "$tmp"
  touch "$dest/complete"
  echo "$dest"
}

mkdir -p "$CACHE/l1"
l1=
if [[ "${BOOTLAB_LANE_REFRESH:-0}" != 1 ]]; then l1=$(cached_l1); fi
if [[ -z "$l1" ]]; then
  l1=$( (flock 9; fetch_l1) 9>"$CACHE/l1/.lock") || true
  [[ -n "$l1" ]] || l1=$(cached_l1)
  [[ -n "$l1" ]] || die "cannot fetch the L1 kernel ($L1_META) through apt (no network to Debian's archive?) and none is cached in $CACHE/l1"
fi
vmlinuz=$(find "$l1/boot" -name 'vmlinuz-*' | head -n 1)
moddir=$(find "$l1/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[[ -f "$vmlinuz" && -d "$moddir" ]] || die "the cached L1 kernel in $l1 is incomplete (remove it and retry)"
log "L1 kernel $(basename "$vmlinuz")"

# ---- the binaries and images that go in ---------------------------------------------
if [[ -z "$bootlab" ]]; then
  log "building the static bootlab binary"
  (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --quiet --release --target "$TARGET" --bin bootlab) || die "cannot build bootlab"
  bootlab=$ROOT/target/$TARGET/release/bootlab
fi
[[ -x "$bootlab" && -f "$bootlab" ]] || die "bootlab binary $bootlab not found or not executable"

firecracker=${BOOTLAB_FIRECRACKER:-}
[[ -n "$firecracker" ]] || { [[ -x "$ROOT/../shared/peers/firecracker" ]] && firecracker=$ROOT/../shared/peers/firecracker; }
[[ -n "$firecracker" ]] || firecracker=$(command -v firecracker || true)

R=$WORK/initramfs
mkdir -p "$R"/{bin,dev,proc,sys,tmp,run,lane/bin,lane/out,lane/share,lib/modules}

# A program and the shared libraries it needs, at their own paths.
add_program() {
  local src=$1 name=$2 lib
  cp -L "$src" "$R/lane/bin/$name"
  strip --strip-debug "$R/lane/bin/$name" 2>/dev/null || true
  for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [[ -e "$R$lib" ]] || cp -L --parents "$lib" "$R"
  done
}

install -m 0755 "$(command -v busybox)" "$R/bin/busybox"
for a in $(busybox --list); do
  [[ "$a" == busybox ]] || ln -sf busybox "$R/bin/$a"
done
add_program "$bootlab" bootlab
add_program "$qemu" qemu-system-x86_64
# socat: the host end of a guest's vsock streams (a Unix socket listener), which
# busybox's nc cannot be.
if command -v socat >/dev/null; then add_program "$(command -v socat)" socat; fi
# QEMU finds its firmware relative to its executable (/lane/bin/../share/qemu).
cp -rL /usr/share/qemu "$R/lane/share/qemu" 2>/dev/null || die "cannot copy /usr/share/qemu"
# Debian's QEMU takes SeaBIOS (bios-256k.bin, -M pc's BIOS) from /usr/share/seabios.
if [[ -d /usr/share/seabios ]]; then
  cp -nL /usr/share/seabios/*.bin "$R/lane/share/qemu/" 2>/dev/null || die "cannot copy /usr/share/seabios"
fi
have_fc=no
if [[ -n "$firecracker" && -x "$firecracker" ]]; then
  add_program "$firecracker" firecracker
  have_fc=yes
else
  log "firecracker not found: its rows will be missing inside L1"
fi

mkdir -p "$R/lane/images"
for f in vmlinux bzImage-efi initramfs.cpio.gz initramfs.cpio guest-init rootfs.ext4; do
  [[ -f "$IMAGES/$f" ]] && cp "$IMAGES/$f" "$R/lane/images/"
done
[[ -d "$IMAGES/rootfs" ]] && cp -a "$IMAGES/rootfs" "$R/lane/images/rootfs"
if ((plain)); then
  plain_dir=$ROOT/target/hw-lane-plain-images
  log "guest kernel without the emulated-KVM workarounds (cached after its first build)"
  BOOTLAB_KERNEL_WORKAROUNDS=0 BOOTLAB_IMAGES=$plain_dir bash "$ROOT/guest-images/build.sh" kernel ||
    die "cannot build the guest kernel without workarounds"
  mkdir -p "$R/lane/images-plain"
  cp "$plain_dir/vmlinux" "$R/lane/images-plain/vmlinux"
  for f in initramfs.cpio.gz initramfs.cpio guest-init rootfs rootfs.ext4; do
    [[ -e "$R/lane/images/$f" ]] && ln -s "../images/$f" "$R/lane/images-plain/$f"
  done
fi

# Kernel modules, checked against their declared dependencies.
loaded=" "
: >"$R/lane/modules"
for m in "${L1_MODULES[@]}"; do
  [[ -f "$moddir/kernel/$m" ]] || die "L1 kernel lacks module $m"
  deps=$(readelf -p .modinfo "$moddir/kernel/$m" | grep -o 'depends=[^ ]*' | cut -d= -f2 | tr ',' ' ')
  for d in $deps; do
    [[ "$loaded" == *" $d "* ]] || die "module $m needs $d, which is not loaded before it"
  done
  cp "$moddir/kernel/$m" "$R/lib/modules/"
  echo "$(basename "$m")" >>"$R/lane/modules"
  loaded+="$(basename "$m" .ko | tr - _) "
done

printf '%s\n' "${groups[@]}" >"$R/lane/commands"
cat >"$R/init" <<'EOF'
#!/bin/sh
# L1's PID 1: load KVM, run the lane's commands, write their folder to the output disk.
export PATH=/lane/bin:/bin BOOTLAB_IMAGES=/lane/images HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /dev/pts /dev/shm /root
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
say() { echo "lane(L1): $*"; }
finish() {
  echo "$1" >/lane/out/lane/status
  [ -n "$2" ] && echo "$2" >/lane/out/lane/setup-error
  tar -C /lane/out -cf /dev/vda . || say "cannot write the output disk"
  sync
  say "powering off"
  poweroff -f
}
mkdir -p /lane/out/lane
for m in $(cat /lane/modules); do
  insmod "/lib/modules/$m" || finish 1 "insmod $m failed"
done
[ -c /dev/kvm ] || { dmesg | tail -n 20; finish 1 "no /dev/kvm after loading kvm_amd (dmesg above)"; }
[ -b /dev/vda ] || { say "no output disk /dev/vda"; poweroff -f; }
say "up after $(cut -d' ' -f1 /proc/uptime) s: $(uname -r), kvm_amd npt=$(cat /sys/module/kvm_amd/parameters/npt) nested=$(cat /sys/module/kvm_amd/parameters/nested), $(grep -c ^processor /proc/cpuinfo) CPUs"
cd /lane/out
# A heartbeat on long runs: what is running now, so a stuck L1 or command shows.
(while sleep 60; do say "alive at $(cut -d' ' -f1 /proc/uptime) s: $(ps | grep -E 'bootlab|firecracker|qemu' | grep -v grep | tail -n 1 | tr -s ' ' | cut -c1-120)"; done) &
n=0
status=0
while IFS= read -r line; do
  n=$((n + 1))
  echo "$line" >"lane/$n.cmd"
  say "[$n] $line"
  start=$(cut -d' ' -f1 /proc/uptime)
  # stdout and stderr both shown as they come and kept apart in files.
  { { eval "$line" </dev/null; echo $? >"lane/$n.status"; } 2>&1 1>&3 | tee "lane/$n.err"; } 3>&1 | tee "lane/$n.out"
  status=$(cat "lane/$n.status")
  say "[$n] exit status $status after $(cut -d' ' -f1 /proc/uptime) s (started at $start s)"
  [ "$status" = 0 ] || break
done </lane/commands
finish "$status"
EOF
chmod 0755 "$R/init"
mknod -m 0600 "$R/dev/console" c 5 1
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$WORK/l1.cpio"
log "L1 initramfs $(($(stat -c %s "$WORK/l1.cpio") / 1048576)) MiB (bootlab, qemu, firecracker: $have_fc, images$( ((plain)) && echo ", plain kernel"))"

# ---- run L1 -----------------------------------------------------------------------
truncate -s "${OUT_DISK_MIB}M" "$WORK/out.tar"
: >"$WORK/console.log"
log "booting L1: QEMU TCG, -cpu $L1_CPU, $smp CPUs, $mem MiB, timeout $timeout_s s"
log "times inside are of EMULATED hardware: compare runtimes within this run, not with native numbers"
t0=$(date +%s)
"$qemu" -accel tcg,thread=multi -M q35 -cpu "$L1_CPU" -smp "$smp" -m "$mem" \
  -nodefaults -display none -no-reboot -monitor none \
  -serial "file:$WORK/console.log" \
  -kernel "$vmlinuz" -initrd "$WORK/l1.cpio" -append "$L1_CMDLINE" \
  -drive "file=$WORK/out.tar,format=raw,if=virtio" \
  </dev/null >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!
tail -n +1 -f "$WORK/console.log" --pid="$QEMU_PID" &
TAIL_PID=$!
timed_out=0
while kill -0 "$QEMU_PID" 2>/dev/null; do
  if (($(date +%s) - t0 >= timeout_s)); then
    timed_out=1
    kill -KILL "$QEMU_PID" 2>/dev/null || true
    break
  fi
  sleep 1
done
qemu_rc=0
wait "$QEMU_PID" || qemu_rc=$?
QEMU_PID=
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=
wall=$(($(date +%s) - t0))
grep -v 'warning: TCG doesn.t support requested feature' "$WORK/qemu.log" >&2 || true
((timed_out)) && die "L1 did not finish within $timeout_s s (QEMU killed; console above)"

rm -rf "$out"
mkdir -p "$out"
tar -xf "$WORK/out.tar" -C "$out" 2>/dev/null || true
[[ -f "$out/lane/status" ]] ||
  die "L1 ended after $wall s (QEMU status $qemu_rc) without writing its results: it never got to run the commands (console above)"
[[ -f "$out/lane/setup-error" ]] && die "L1 could not set up: $(cat "$out/lane/setup-error")"
status=$(cat "$out/lane/status")
if [[ "$status" == 0 ]]; then
  log "all ${#groups[@]} command(s) succeeded in L1 ($wall s wall); output in $out"
else
  n=$(find "$out/lane" -name '*.status' | wc -l)
  die "command $n of ${#groups[@]} failed inside L1 with status $status: $(cat "$out/lane/$n.cmd" 2>/dev/null)"
fi
exit 0
}
