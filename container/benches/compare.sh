#!/bin/sh
# Side-by-side whole-run comparison of `bootlab sandbox run` with bubblewrap and runc
# on the same rootfs, workload /bin/true, all namespaces (incl. net) for each.
# Usage: container/benches/compare.sh [ROOTFS] [RUNS]   (as root; needs hyperfine)
# Prints each command's median and the ratios bootlab/bwrap and bootlab/runc.
set -eu
ROOTFS=$(realpath "${1:-${BOOTLAB_IMAGES:-guest-images/out}/rootfs}")
RUNS=${2:-200}
BIN=${BOOTLAB_BIN:-target/release/bootlab}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/bundle"
( cd "$WORK/bundle" && runc spec )
python3 - "$WORK/bundle/config.json" "$ROOTFS" <<'PY'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"]["path"] = root
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY
hyperfine -N -w 20 -r "$RUNS" --export-json "$WORK/h.json" \
  "$BIN sandbox run --rootfs $ROOTFS -- /bin/true" \
  "bwrap --unshare-all --ro-bind $ROOTFS / --proc /proc --dev /dev /bin/true" \
  "runc run -b $WORK/bundle bootlab-compare-$$" >/dev/null
python3 - "$WORK/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
med = [x["median"] * 1e3 for x in r]
for m, x in zip(med, r):
    print(f"{m:8.3f} ms median  {x['command']}")
print(f"bootlab/bwrap = {med[0] / med[1]:.3f}   bootlab/runc = {med[0] / med[2]:.3f}")
PY
