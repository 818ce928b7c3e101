#!/bin/sh
# Side-by-side whole-run comparison of `bootlab sandbox run` with bubblewrap and runc
# on the same rootfs, workload /bin/true, all namespaces (incl. net) for each.
# Usage (as root, from the checkout, after `cargo build --release`):
#   container/benches/compare.sh [ROOTFS] [RUNS]
# The runs are interleaved, in a random order each round, so drift, the kernel's
# asynchronous network-namespace clean-up and runc's after-effects hit all three
# alike; each run is timed from posix_spawn to waitpid. Prints each median and the ratios
# bootlab/bwrap (target <= 0.6) and bootlab/runc (target <= 0.25).
# HYPERFINE=1 measures with `hyperfine -N` instead (one command after the other).
set -eu
ROOTFS=$(realpath "${1:-${BOOTLAB_IMAGES:-guest-images/out}/rootfs}")
RUNS=${2:-200}
BIN=$(realpath "${BOOTLAB_BIN:-target/release/bootlab}")
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
if [ "${HYPERFINE:-0}" = 1 ]; then
  hyperfine -N -w 20 -r "$RUNS" --export-json "$WORK/h.json" \
    "$BIN sandbox run --rootfs $ROOTFS -- /bin/true" \
    "bwrap --unshare-all --ro-bind $ROOTFS / --proc /proc --dev /dev /bin/true" \
    "runc run -b $WORK/bundle bootlab-compare-$$" >/dev/null
  python3 - "$WORK/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
med = [x["median"] * 1e3 for x in r]
for m, n in zip(med, ["bootlab", "bwrap", "runc"]):
    print(f"{n:8s} median {m:7.3f} ms  (hyperfine)")
print(f"bootlab/bwrap = {med[0]/med[1]:.3f} (target <= 0.6)   "
      f"bootlab/runc = {med[0]/med[2]:.3f} (target <= 0.25)")
PY
  exit 0
fi
python3 - "$BIN" "$ROOTFS" "$WORK/bundle" "$RUNS" <<'PY'
import os, random, shutil, statistics, sys, time
bin_, root, bundle, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cmds = {
    "bootlab": [bin_, "sandbox", "run", "--rootfs", root, "--", "/bin/true"],
    "bwrap": [shutil.which("bwrap"), "--unshare-all", "--ro-bind", root, "/",
              "--proc", "/proc", "--dev", "/dev", "/bin/true"],
    "runc": [shutil.which("runc"), "run", "-b", bundle, f"bootlab-compare-{os.getpid()}"],
}
null = os.open(os.devnull, os.O_RDWR)
fa = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)]
def once(argv):
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
    _, st = os.waitpid(pid, 0)
    t = time.perf_counter_ns() - t0
    if os.waitstatus_to_exitcode(st) != 0:
        sys.exit(f"{argv} failed: {st}")
    return t
for _ in range(10):
    for a in cmds.values():
        once(a)
times = {k: [] for k in cmds}
order = list(cmds)
for _ in range(runs):
    random.shuffle(order)
    for k in order:
        times[k].append(once(cmds[k]))
med = {k: statistics.median(v) / 1e6 for k, v in times.items()}
for k, v in times.items():
    q = statistics.quantiles(v, n=4)
    print(f"{k:8s} median {med[k]:7.3f} ms  (q1 {q[0]/1e6:.3f}, q3 {q[2]/1e6:.3f}, n={len(v)})")
print(f"bootlab/bwrap = {med['bootlab']/med['bwrap']:.3f} (target <= 0.6)   "
      f"bootlab/runc = {med['bootlab']/med['runc']:.3f} (target <= 0.25)")
PY
