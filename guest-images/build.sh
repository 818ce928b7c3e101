#!/usr/bin/env bash
# Builds bootlab's guest images. Idempotent; safe to re-run (a cached kernel makes a
# second run take seconds, also from a fresh clone on the same machine).
#
#   guest-images/build.sh [STEP...]     STEP: deps init init32 rootfs initramfs kernel kernel-efi
#                                       (default: all but kernel-efi)
#
# Output in $BOOTLAB_IMAGES (default guest-images/out/):
#   guest-init            the static init, ~25 KB (also inside rootfs/ and the initramfs)
#   guest-init32          its 32-bit (i386) C twin, ~10 KB, for an emulated /dev/kvm
#   rootfs/               busybox-static + applet links + guest-init (/sbin/guest-init, /init)
#   initramfs.cpio[.gz]   newc: /init = guest-init, /dev/console, empty /proc /sys /dev /tmp
#   initramfs-full.cpio.gz  the whole rootfs/ as an initramfs (larger: slower to boot emulated)
#   initramfs32.cpio[.gz] /init = guest-init32, /bin/hello -> /init, /dev/console, empty dirs
#   rootfs.ext4           rootfs/ as an ext4 image (mkfs.ext4 -d, no loop mount), plus
#                         /sbin/guest-init32 for an emulated /dev/kvm: the root disk of
#                         `bootlab vm run --guest linux --disk rootfs.ext4`
#   vmlinux               Linux 6.1 (Debian linux-source-6.1), tinyconfig + kernel/*.config
#   bzImage-efi           step kernel-efi only: the same kernel config plus kernel/efi.config
#                         (CONFIG_EFI, CONFIG_EFI_STUB) as a bzImage, for UEFI firmware
#                         (qemu-q35-ovmf); its own cache key, vmlinux is unchanged
#
# Environment:
#   BOOTLAB_IMAGES=DIR               output directory
#   BOOTLAB_CACHE=DIR                kernel cache (default /var/cache/bootlab)
#   BOOTLAB_KERNEL_WORKAROUNDS=0     build the kernel WITHOUT the emulated-KVM workarounds
#                                    (kernel/emulated-kvm.config + kernel/patches/); for
#                                    hardware KVM. Default 1.
#   BOOTLAB_JOBS=N                   make -j (default: nproc)
# Needs root (apt-get, mknod of /dev/console in the initramfs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT=${BOOTLAB_IMAGES:-$HERE/out}
CACHE=${BOOTLAB_CACHE:-/var/cache/bootlab}
WORKAROUNDS=${BOOTLAB_KERNEL_WORKAROUNDS:-1}
JOBS=${BOOTLAB_JOBS:-$(nproc)}
KSRC_PKG=linux-source-6.1
KSRC_TAR=/usr/src/linux-source-6.1.tar.xz
TARGET=x86_64-unknown-linux-gnu
# Bump when the kernel recipe below changes in a way the hashed inputs do not show.
KERNEL_RECIPE=1
# vmlinux (the PVH ELF every monitor boots) or efi (bzImage with the EFI stub).
KERNEL_VARIANT=vmlinux

declare -a SUMMARY=()
log() { echo "images: $*" >&2; }
die() { echo "images: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
size_of() { stat -c %s "$1"; }
note() { SUMMARY+=("$(printf '%-28s %s' "$1" "$2")"); }

step_deps() {
  bash "$ROOT/scripts/deps.sh"
  command -v cargo >/dev/null || die "cargo not found (install Rust, e.g. rustup)"
}

# guest-init: built on its own (own target dir) so that only it is linked this way:
# `--cfg guest_init_tiny` selects its std-free, libc-free variant (own _start, raw
# system calls; see guest-images/init/src/main.rs), linked static and non-PIE.
step_init() {
  local t0 tdir bin
  t0=$(now)
  tdir="$ROOT/target/guest-init"
  (
    cd "$ROOT"
    RUSTFLAGS="--cfg guest_init_tiny -C target-feature=+crt-static -C relocation-model=static -C link-arg=-nostartfiles -C link-arg=-nostdlib" \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
      CARGO_PROFILE_RELEASE_PANIC=abort \
      CARGO_PROFILE_RELEASE_LTO=fat \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
      CARGO_PROFILE_RELEASE_STRIP=true \
      cargo build --quiet --release --locked -p guest-init --target "$TARGET" --target-dir "$tdir"
  )
  bin="$tdir/$TARGET/release/guest-init"
  if readelf -l "$bin" | grep -q 'INTERP'; then
    die "$bin has a PT_INTERP: not static"
  fi
  mkdir -p "$OUT"
  install -m 0755 "$bin" "$OUT/guest-init.tmp"
  mv -f "$OUT/guest-init.tmp" "$OUT/guest-init"
  note "guest-init" "$(size_of "$OUT/guest-init") bytes (static, stripped) in $(elapsed "$t0") s"
}

# guest-init32 (guest-images/init32): the init for an emulated /dev/kvm, where only
# 32-bit user space can make system calls (kernel/EMULATED-USERSPACE.md). No libc:
# `gcc -m32 -nostdlib` needs only gcc and binutils, no i386 libraries.
step_init32() {
  local t0 src=$HERE/init32/guest-init32.c
  t0=$(now)
  mkdir -p "$OUT"
  gcc -m32 -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector -fno-pic -no-pie \
    -fno-asynchronous-unwind-tables -Os -Wall -Wextra -Werror -Wl,--build-id=none -s \
    -o "$OUT/guest-init32.tmp" "$src" || die "cannot build $src (gcc -m32)"
  readelf -h "$OUT/guest-init32.tmp" | grep -q 'Intel 80386' || die "guest-init32 is not an i386 ELF"
  mv -f "$OUT/guest-init32.tmp" "$OUT/guest-init32"
  note "guest-init32" "$(size_of "$OUT/guest-init32") bytes (i386, static, stripped) in $(elapsed "$t0") s"
}

step_rootfs() {
  local t0 busybox tmp a
  t0=$(now)
  [[ -x "$OUT/guest-init" ]] || step_init
  busybox=$(command -v busybox || true)
  [[ -n "$busybox" ]] || die "busybox not found (apt-get install busybox-static)"
  readelf -l "$busybox" | grep -q INTERP && die "$busybox is not static (install busybox-static)"
  tmp="$OUT/rootfs.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"/{bin,sbin,etc,proc,sys,dev,tmp,root,run}
  chmod 1777 "$tmp/tmp"
  install -m 0755 "$busybox" "$tmp/bin/busybox"
  for a in $("$busybox" --list); do
    [[ "$a" == busybox || -e "$tmp/bin/$a" ]] || ln -s busybox "$tmp/bin/$a"
  done
  for a in sh true echo cat ls mount; do
    [[ -L "$tmp/bin/$a" ]] || die "busybox lacks applet $a"
  done
  install -m 0755 "$OUT/guest-init" "$tmp/sbin/guest-init"
  ln -s sbin/guest-init "$tmp/init"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$tmp/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/etc/group"
  echo bootlab >"$tmp/etc/hostname"
  rm -rf "$OUT/rootfs"
  mv "$tmp" "$OUT/rootfs"
  note "rootfs/" "$(du -sb "$OUT/rootfs" | cut -f1) bytes in $(elapsed "$t0") s"
}

# Writes a reproducible newc archive of directory $1 to $2 (and $2.gz).
make_cpio() {
  local dir=$1 out=$2
  # Fixed mtimes: the same inputs give the same bytes.
  find "$dir" -exec touch -h -d @0 {} +
  (cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) >"$out.tmp"
  gzip -9 -n -c "$out.tmp" >"$out.gz.tmp"
  mv -f "$out.tmp" "$out"
  mv -f "$out.gz.tmp" "$out.gz"
}

step_initramfs() {
  local t0 stage
  t0=$(now)
  [[ -x "$OUT/guest-init" ]] || step_init
  [[ -d "$OUT/rootfs" ]] || step_rootfs
  stage=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$stage'" RETURN
  mkdir -p "$stage"/{dev,proc,sys,tmp}
  install -m 0755 "$OUT/guest-init" "$stage/init"
  # The kernel opens /dev/console for init before init can mount devtmpfs.
  mknod -m 0600 "$stage/dev/console" c 5 1
  make_cpio "$stage" "$OUT/initramfs.cpio"
  make_cpio "$OUT/rootfs" "$OUT/initramfs-full.cpio"
  rm -f "$OUT/initramfs-full.cpio" # only the gzip variant of the full one is kept
  # The emulated-KVM initramfs: the 32-bit init, and a link through which it runs
  # as a separate `hello` process (bootlab.workload=/bin/hello).
  [[ -x "$OUT/guest-init32" ]] || step_init32
  rm -rf "$stage"/*
  mkdir -p "$stage"/{bin,dev,proc,sys,tmp}
  install -m 0755 "$OUT/guest-init32" "$stage/init"
  ln -s ../init "$stage/bin/hello"
  mknod -m 0600 "$stage/dev/console" c 5 1
  make_cpio "$stage" "$OUT/initramfs32.cpio"
  note "initramfs.cpio" "$(size_of "$OUT/initramfs.cpio") bytes"
  note "initramfs.cpio.gz" "$(size_of "$OUT/initramfs.cpio.gz") bytes"
  note "initramfs-full.cpio.gz" "$(size_of "$OUT/initramfs-full.cpio.gz") bytes"
  note "initramfs32.cpio" "$(size_of "$OUT/initramfs32.cpio") bytes (in $(elapsed "$t0") s)"
}

# rootfs/ (the container's tree) as an ext4 image, without a loop mount: mkfs.ext4
# -d copies the tree in. No journal (a read-only root by default, and a smaller
# image); root-owned files; a fixed UUID. guest-init32 goes in beside it (/sbin/guest-init32), the init for
# an emulated /dev/kvm (see initramfs32 above).
step_disk() {
  local t0 stage kib
  t0=$(now)
  command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
  [[ -d "$OUT/rootfs" ]] || step_rootfs
  [[ -x "$OUT/guest-init32" ]] || step_init32
  stage=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$stage'" RETURN
  cp -a "$OUT/rootfs/." "$stage/"
  install -m 0755 "$OUT/guest-init32" "$stage/sbin/guest-init32"
  # Twice the tree plus 4 MiB for the file system's own tables, in KiB.
  kib=$(($(du -sk "$stage" | cut -f1) * 2 + 4096))
  rm -f "$OUT/rootfs.ext4.tmp"
  truncate -s "${kib}k" "$OUT/rootfs.ext4.tmp"
  mkfs.ext4 -q -F -L bootlab-root -O ^has_journal \
    -U 0b1ab000-0000-4000-8000-000000000001 -E root_owner=0:0,hash_seed=0b1ab000-0000-4000-8000-000000000002 \
    -d "$stage" "$OUT/rootfs.ext4.tmp" "${kib}k"
  mv -f "$OUT/rootfs.ext4.tmp" "$OUT/rootfs.ext4"
  note "rootfs.ext4" "$(size_of "$OUT/rootfs.ext4") bytes in $(elapsed "$t0") s"
}

# The fragments and patches the kernel is built from, in the order they apply.
kernel_inputs() {
  echo "$HERE/kernel/microvm.config"
  if [[ "$WORKAROUNDS" != 0 ]]; then
    echo "$HERE/kernel/emulated-kvm.config"
    find "$HERE/kernel/patches" -name '*.patch' | LC_ALL=C sort
  fi
  if [[ "$KERNEL_VARIANT" == efi ]]; then
    echo "$HERE/kernel/efi.config"
  fi
}

kernel_key() {
  {
    echo "recipe $KERNEL_RECIPE"
    echo "source $(dpkg-query -W -f='${Version}' "$KSRC_PKG") $(size_of "$KSRC_TAR")"
    echo "workarounds $WORKAROUNDS"
    [[ "$KERNEL_VARIANT" == vmlinux ]] || echo "variant $KERNEL_VARIANT"
    local f
    while read -r f; do
      echo "$(basename "$f") $(sha256sum <"$f" | cut -d' ' -f1)"
    done < <(kernel_inputs)
  } | sha256sum | cut -c1-16
}

# Fails unless every `CONFIG_X=y` of the fragments is set and every
# `# CONFIG_X is not set` is unset in the final .config.
verify_config() {
  local config=$1 frag line opt bad=0
  for frag in $(kernel_inputs | grep '\.config$'); do
    while IFS= read -r line; do
      if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=y$ ]]; then
        opt=${BASH_REMATCH[1]}
        grep -qx "$opt=y" "$config" || { log "required $opt=y is not set ($(basename "$frag"))"; bad=1; }
      elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
        opt=${BASH_REMATCH[1]}
        grep -q "^$opt=" "$config" && { log "$opt must be off but is $(grep "^$opt=" "$config") ($(basename "$frag"))"; bad=1; }
      fi
    done <"$frag"
  done
  ((bad == 0)) || die "kernel config does not have the required options (see above)"
}

build_kernel() {
  local dest=$1 build=$2 frags p t0 target=vmlinux
  [[ "$KERNEL_VARIANT" == efi ]] && target=bzImage
  t0=$(now)
  rm -rf "$build"
  mkdir -p "$build"
  log "kernel: extracting $KSRC_TAR"
  tar -xf "$KSRC_TAR" -C "$build" --strip-components=1
  if [[ "$WORKAROUNDS" != 0 ]]; then
    while read -r p; do
      log "kernel: applying $(basename "$p")"
      patch -d "$build" -p1 --quiet --forward <"$p"
    done < <(kernel_inputs | grep '\.patch$')
  fi
  mapfile -t frags < <(kernel_inputs | grep '\.config$')
  make -C "$build" -s ARCH=x86_64 tinyconfig >/dev/null
  (cd "$build" && ./scripts/kconfig/merge_config.sh -m .config "${frags[@]}" >/dev/null)
  make -C "$build" -s ARCH=x86_64 olddefconfig >/dev/null
  (verify_config "$build/.config") || { rm -rf "$build"; die "kernel config check failed"; }
  log "kernel: make -j$JOBS $target (a few minutes)"
  if ! make -C "$build" -s ARCH=x86_64 -j"$JOBS" "$target" >"$build/make.log" 2>&1; then
    tail -n 40 "$build/make.log" >&2
    cp "$build/make.log" "$dest.make.log"
    rm -rf "$build"
    die "kernel build failed (log: $dest.make.log)"
  fi
  mkdir -p "$dest"
  cp "$build/.config" "$dest/config"
  if [[ "$KERNEL_VARIANT" == efi ]]; then
    cp "$build/arch/x86/boot/bzImage" "$dest/bzImage.tmp"
  fi
  cp "$build/vmlinux" "$dest/vmlinux.tmp"
  elapsed "$t0" >"$dest/build-seconds"
  [[ "$KERNEL_VARIANT" == efi ]] && mv "$dest/bzImage.tmp" "$dest/bzImage"
  mv "$dest/vmlinux.tmp" "$dest/vmlinux"
  # Deleting the tree takes minutes on a busy disk: do it in the background.
  mv "$build" "$build.trash"
  (rm -rf "$build.trash" &)
}

# Gets the kernel KERNEL_VARIANT describes into its cache entry, building it unless
# the entry already has FILE (vmlinux, bzImage); one builder per key at a time
# (several checkouts may share the cache). Sets KDEST (the entry) and KHOW (how the
# kernel was got, for the summary).
cached_kernel() {
  local file=$1 key
  [[ -f "$KSRC_TAR" ]] || die "$KSRC_TAR missing (apt-get install $KSRC_PKG)"
  key=$(kernel_key)
  KDEST="$CACHE/kernel/$key"
  mkdir -p "$CACHE/kernel"
  (
    flock 9
    if [[ ! -f "$KDEST/$file" ]]; then
      build_kernel "$KDEST" "$CACHE/kernel/$key.build"
    fi
  ) 9>"$CACHE/kernel/$key.lock"
  KHOW="cached"
  if [[ -f "$KDEST/build-seconds" ]]; then
    KHOW="cache $key, cold build took $(cat "$KDEST/build-seconds") s"
  fi
}

step_kernel() {
  local t0
  t0=$(now)
  cached_kernel vmlinux
  # The PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, owner "Xen", type 18) lets a
  # monitor enter the ELF vmlinux directly in 32-bit protected mode.
  readelf -n "$KDEST/vmlinux" | grep -A1 -E '^\s+Xen\s' | grep -q -E '0x00000012|PHYS32_ENTRY' ||
    die "$KDEST/vmlinux has no PVH (XEN_ELFNOTE_PHYS32_ENTRY) note"
  mkdir -p "$OUT"
  cp "$KDEST/vmlinux" "$OUT/vmlinux.tmp"
  cp "$KDEST/config" "$OUT/vmlinux.config"
  mv -f "$OUT/vmlinux.tmp" "$OUT/vmlinux"
  note "vmlinux" "$(size_of "$OUT/vmlinux") bytes, workarounds=$WORKAROUNDS ($KHOW) in $(elapsed "$t0") s"
}

# The same kernel with the EFI stub, as a bzImage (kernel/efi.config on top of the
# vmlinux recipe), in its own cache entry: for UEFI firmware (qemu-q35-ovmf, OVMF
# starts it as an EFI application). ~4-7 min cold on 2 cores.
step_kernel_efi() {
  local t0
  t0=$(now)
  KERNEL_VARIANT=efi
  cached_kernel bzImage
  KERNEL_VARIANT=vmlinux
  # A PE/COFF image: the bzImage starts with "MZ" and has a "PE\0\0" header.
  [[ "$(head -c2 "$KDEST/bzImage")" == MZ ]] || die "$KDEST/bzImage has no MZ header (no EFI stub)"
  grep -qx 'CONFIG_EFI_STUB=y' "$KDEST/config" || die "$KDEST/config lacks CONFIG_EFI_STUB=y"
  mkdir -p "$OUT"
  cp "$KDEST/bzImage" "$OUT/bzImage-efi.tmp"
  cp "$KDEST/config" "$OUT/bzImage-efi.config"
  mv -f "$OUT/bzImage-efi.tmp" "$OUT/bzImage-efi"
  note "bzImage-efi" "$(size_of "$OUT/bzImage-efi") bytes, workarounds=$WORKAROUNDS ($KHOW) in $(elapsed "$t0") s"
}

main() {
  local steps=("$@") s t0
  t0=$(now)
  ((${#steps[@]})) || steps=(deps init init32 rootfs initramfs disk kernel)
  for s in "${steps[@]}"; do
    case "$s" in
      deps | init | init32 | rootfs | initramfs | disk | kernel) "step_$s" ;;
      kernel-efi) step_kernel_efi ;;
      all) step_deps; step_init; step_init32; step_rootfs; step_initramfs; step_disk; step_kernel ;;
      *) die "unknown step '$s' (steps: deps init init32 rootfs initramfs disk kernel kernel-efi all)" ;;
    esac
  done
  log "done in $(elapsed "$t0") s; output in $OUT"
  for s in "${SUMMARY[@]}"; do echo "  $s" >&2; done
}

main "$@"
