#!/usr/bin/env bash
# Installs the Debian packages bootlab needs to build its guest images, run its tests
# and drive the peer runtimes. Idempotent: does nothing when all are present.
set -euo pipefail

PACKAGES=(
  # guest images: busybox rootfs, initramfs, the rootfs as ext4 (mkfs.ext4 -d),
  # kernel build from Debian's source
  busybox-static cpio gzip xz-utils e2fsprogs linux-source-6.1 bc bison flex libelf-dev libssl-dev
  build-essential
  # peers and tools the harness drives (seabios: qemu-pc-seabios's firmware, named
  # because the lane copies it; ovmf: qemu-q35-ovmf's UEFI firmware, OVMF.fd)
  qemu-system-x86 seabios ovmf crun runc bubblewrap hyperfine strace iproute2
  # the host end of vsock streams in the nested lane (a Unix socket listener)
  socat
  # engines that drive the OCI runtime (issue 14), and libseccomp's static archive
  # (container/src/security/oci_seccomp.rs links it, see .cargo/config.toml)
  podman containerd libseccomp-dev
  # report tests: render report.html headless and check the screenshot
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
