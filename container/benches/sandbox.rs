//! Criterion benchmarks of the sandbox's building blocks and of the whole path
//! (needs root; prints `SKIP` and measures nothing otherwise):
//! - `clone/<ns>`: fork-style `clone(2)` with one namespace flag (and `none`, `all`),
//!   the child `_exit`s at once, the parent reaps it: the kernel's cost per namespace;
//! - `rootfs/pivot_root`: clone with a mount namespace + our rootfs set-up (private
//!   tree, bind, /proc, /dev, /tmp, pivot_root, detach, read-only remount);
//! - `cgroup/create_remove`: one sandbox cgroup with memory+pids limits, made and
//!   removed (the host's backend: v1, v1+unified or v2);
//! - `sandbox/spawn_to_exec`: `container::run` of `/bin/true` with every default
//!   namespace including net, timed from the call to the child's pre-execve stamp
//!   (the headline "spawn -> workload execve" latency);
//! - `sandbox/run_true`: the same, whole run until the workload is reaped;
//! - `seccomp/podman_profile`: podman 4.3's default profile (the `linux.seccomp` of
//!   container/tests/fixtures/podman-4.3-default.json) compiled with libseccomp, a
//!   step on the start path of every bundle that carries a profile, beside
//!   `seccomp/default_filter`, our own filter (no root needed for either), and
//!   `seccomp/podman_profile_cached`, the same program read back from the cache
//!   (`security::seccomp_cache`; root).
//!
//! The rootfs is `$BOOTLAB_IMAGES/rootfs` when it exists, else a busybox-static tree
//! built in a temp dir. Whole-process comparisons with bwrap and runc are in
//! `benches/compare.sh` (hyperfine).

use container::namespaces::Namespace;
use container::rootfs::RootfsPlan;
use container::{Resources, SandboxSpec};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Clones a child with `flags` that runs `child` and `_exit`s with its status, then
/// reaps it. Returns the child's exit status.
fn clone_run(flags: libc::c_int, child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: fork-style clone of this process; the child runs `child` and
    // `_exit`s without returning into the benchmark harness.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from((flags | libc::SIGCHLD).cast_unsigned()),
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child immediately.
        unsafe { libc::_exit(code) }
    }
    assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    let mut status = 0;
    // SAFETY: reaping our own child; `status` is writable.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

fn test_rootfs() -> PathBuf {
    if let Some(d) = std::env::var_os("BOOTLAB_IMAGES") {
        let r = Path::new(&d).join("rootfs");
        if r.join("bin/true").exists() {
            return r;
        }
    }
    let root = std::env::temp_dir().join(format!("bootlab-bench-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("/bin/busybox (busybox-static)");
    for a in ["true", "sh"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    root
}

fn benches(c: &mut Criterion) {
    if !is_root() {
        eprintln!("SKIP: the sandbox benchmarks need root");
        return;
    }
    let mut g = c.benchmark_group("clone");
    g.bench_function("none", |b| b.iter(|| clone_run(0, || 0)));
    for ns in Namespace::ALL {
        g.bench_function(ns.name(), |b| b.iter(|| clone_run(ns.clone_flag(), || 0)));
    }
    let all = container::NamespaceSet::all().clone_flags();
    g.bench_function("all", |b| b.iter(|| clone_run(all, || 0)));
    g.finish();

    let root = test_rootfs();
    let canon = root.canonicalize().unwrap();
    let spec = SandboxSpec::new(Some(canon.clone()), vec!["true".into()]);
    let plan = RootfsPlan::new(&spec, &canon, None, false).unwrap();
    let mut g = c.benchmark_group("rootfs");
    g.bench_function("pivot_root", |b| {
        b.iter(|| {
            let st = clone_run(libc::CLONE_NEWNS, || i32::from(plan.apply().is_err()));
            assert_eq!(st, 0, "rootfs set-up failed in the child");
        })
    });
    g.finish();

    let mut g = c.benchmark_group("cgroup");
    let res = Resources {
        memory_bytes: Some(64 << 20),
        pids: Some(64),
        ..Resources::default()
    };
    g.bench_function("create_remove", |b| {
        b.iter(|| {
            let mut cg = container::cgroups::Cgroup::create(&res, false).unwrap();
            cg.remove().unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sandbox");
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("spawn_to_exec", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = timeline::now_ns();
                let out = container::run(&spec).unwrap();
                assert_eq!(out.status.code(), 0);
                total += Duration::from_nanos(out.exec_ns - t0);
            }
            total
        })
    });
    g.bench_function("run_true", |b| {
        b.iter(|| assert_eq!(container::run(&spec).unwrap().status.code(), 0))
    });
    g.finish();
    // Only our own temp tree is removed, never $BOOTLAB_IMAGES/rootfs.
    if root.starts_with(std::env::temp_dir()) {
        let _ = std::fs::remove_dir_all(&root);
    }
}

fn seccomp_benches(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/podman-4.3-default.json"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let profile: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_value(config["linux"]["seccomp"].clone()).unwrap();
    let mut g = c.benchmark_group("seccomp");
    g.bench_function("podman_profile", |b| {
        b.iter(|| container::security::oci_seccomp::compile(&profile).unwrap())
    });
    g.bench_function("default_filter", |b| {
        b.iter(container::security::seccomp::Filter::default_filter)
    });
    // The same profile read back from the cache (root only: the folder must be
    // root's).
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let dir = std::env::temp_dir().join(format!("bootlab-bench-scmp-{}", std::process::id()));
        let cached = |d: &Path| {
            container::security::seccomp_cache::compile_cached(&profile, Some(d)).unwrap()
        };
        cached(&dir);
        g.bench_function("podman_profile_cached", |b| b.iter(|| cached(&dir)));
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

criterion_group! {
    name = sandbox;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1));
    targets = benches, seccomp_benches
}
criterion_main!(sandbox);
