//! Criterion micro-benchmarks of the set-up steps a microVM and a sandbox pay before
//! the workload runs: KVM_CREATE_VM + guest memory + a vCPU, clone(2) with each
//! namespace, pivot_root into a fresh mount namespace, cgroup create/remove, and a
//! spawn that enters a masked mount namespace (crun's runs on a hybrid-cgroup host).
//! Steps that need /dev/kvm or root are skipped with a message when unavailable.
//! (Kernel loading is benchmarked by the monitor's own crate, which owns the loader.)

use criterion::{criterion_group, criterion_main, Criterion};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::Kvm;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Guest memory of the KVM set-up benchmark: the monitor's default size.
const GUEST_MEM_BYTES: usize = 128 << 20;

fn kvm_setup(c: &mut Criterion) {
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("SKIP kvm benchmarks: /dev/kvm: {e}");
            return;
        }
    };
    // SAFETY: an anonymous private mapping of GUEST_MEM_BYTES; checked for
    // MAP_FAILED below and unmapped at the end of this function, after the last VM
    // using it has been dropped.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            GUEST_MEM_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        eprintln!("SKIP kvm benchmarks: cannot map guest memory");
        return;
    }
    let mut g = c.benchmark_group("kvm");
    g.sample_size(20);
    g.bench_function("create_vm+memory+vcpu", |b| {
        b.iter(|| {
            let vm = kvm.create_vm().expect("KVM_CREATE_VM");
            let region = kvm_userspace_memory_region {
                slot: 0,
                flags: 0,
                guest_phys_addr: 0,
                memory_size: GUEST_MEM_BYTES as u64,
                userspace_addr: mem as u64,
            };
            // SAFETY: the region points at our live mapping of exactly memory_size
            // bytes, which outlives the VM (dropped at the end of this iteration).
            unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
            let vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
            drop(vcpu);
            drop(vm);
        })
    });
    g.finish();
    // SAFETY: unmapping the mapping made above; no VM refers to it any more.
    unsafe { libc::munmap(mem, GUEST_MEM_BYTES) };
}

/// clone(2) without a new stack (fork-like) with `flags`; the child runs `child`
/// (which must only make async-signal-safe calls) and exits with its status. Returns
/// the child's exit status, or -1 when clone itself failed.
fn clone_run(flags: libc::c_int, child: impl FnOnce() -> libc::c_int) -> libc::c_int {
    // SAFETY: raw clone with a null stack behaves like fork: the child gets a copy
    // of our address space. It only runs `child` (async-signal-safe syscalls) and
    // _exit, never returning into Rust code that could touch locks held by other
    // threads. The parent reaps it with waitpid.
    unsafe {
        let pid = libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from((flags | libc::SIGCHLD).cast_unsigned()),
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if pid < 0 {
            return -1;
        }
        if pid == 0 {
            libc::_exit(child());
        }
        let mut status = 0;
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return -1;
        };
        libc::waitpid(pid, &mut status, 0);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        }
    }
}

const NAMESPACES: [(&str, libc::c_int); 8] = [
    ("none", 0),
    ("mount", libc::CLONE_NEWNS),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("user", libc::CLONE_NEWUSER),
];

fn namespaces(c: &mut Criterion) {
    let mut g = c.benchmark_group("clone");
    g.sample_size(20);
    for (name, flag) in NAMESPACES {
        if clone_run(flag, || 0) != 0 {
            eprintln!("SKIP clone with {name} namespace: not permitted here");
            continue;
        }
        g.bench_function(name, |b| b.iter(|| clone_run(flag, || 0)));
    }
    g.finish();
}

/// Child side of the pivot_root benchmark: private mounts, bind `root` on itself,
/// pivot into it, detach the old root. Async-signal-safe calls only.
fn pivot_into(root: &CString) -> libc::c_int {
    let dot = c".";
    let slash = c"/";
    // SAFETY: plain mount/chdir/pivot_root/umount2 syscalls on NUL-terminated
    // strings that live for the whole call; we are the only thread of this child.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
            || libc::mount(
                root.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            || libc::chdir(root.as_ptr()) != 0
            || libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0
            || libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0
        {
            return 1;
        }
    }
    0
}

fn pivot_root(c: &mut Criterion) {
    let root = std::env::temp_dir().join(format!("bench-pivot-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&root);
    let Ok(croot) = CString::new(root.as_os_str().as_encoded_bytes()) else {
        return;
    };
    if clone_run(libc::CLONE_NEWNS, || pivot_into(&croot)) != 0 {
        eprintln!("SKIP pivot_root benchmark: needs root (CAP_SYS_ADMIN)");
    } else {
        let mut g = c.benchmark_group("rootfs");
        g.sample_size(20);
        g.bench_function("clone(mount)+pivot_root", |b| {
            b.iter(|| clone_run(libc::CLONE_NEWNS, || pivot_into(&croot)))
        });
        g.finish();
    }
    let _ = std::fs::remove_dir(&root);
}

/// A cgroup hierarchy we may create groups in: v2 unified root, else v1 pids.
fn cgroup_parent() -> Option<PathBuf> {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
    let candidates: [&Path; 3] = if v2.exists() {
        [
            Path::new("/sys/fs/cgroup"),
            Path::new("/sys/fs/cgroup"),
            Path::new("/sys/fs/cgroup"),
        ]
    } else {
        [
            Path::new("/sys/fs/cgroup/pids"),
            Path::new("/sys/fs/cgroup/memory"),
            Path::new("/sys/fs/cgroup/unified"),
        ]
    };
    candidates.into_iter().map(Path::to_owned).find(|p| {
        let probe = p.join(format!("bootlab-bench-probe-{}", std::process::id()));
        std::fs::create_dir(&probe).is_ok() && std::fs::remove_dir(&probe).is_ok()
    })
}

fn cgroups(c: &mut Criterion) {
    let Some(parent) = cgroup_parent() else {
        eprintln!("SKIP cgroup benchmark: no writable cgroup hierarchy (needs root)");
        return;
    };
    let dir = parent.join(format!("bootlab-bench-{}", std::process::id()));
    let mut g = c.benchmark_group("cgroup");
    g.sample_size(20);
    g.bench_function(format!("mkdir+rmdir {}", parent.display()), |b| {
        b.iter(|| {
            std::fs::create_dir(&dir).expect("create cgroup");
            std::fs::remove_dir(&dir).expect("remove cgroup");
        })
    });
    g.finish();
}

/// What crun's runs pay for the masked controller list on a hybrid-cgroup host
/// (bench::runners::oci): a spawn made from a thread that entered the session's mount
/// namespace beside the same spawn from the harness's own namespace. Only the spawn
/// and wait are timed, as a run's time is (the thread's entry happens before).
fn masked_mount_namespace(c: &mut Criterion) {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP masked mount namespace benchmark: needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("bootlab-bench-mask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("controllers");
    std::fs::write(&file, "hugetlb\n").expect("controllers file");
    let ns = bench::mountns::with_masked_file(&file).expect("masked namespace");
    let spawn = |iters: u64| {
        let t0 = std::time::Instant::now();
        for _ in 0..iters {
            let status = std::process::Command::new("/bin/true").status();
            assert!(status.expect("spawn /bin/true").success());
        }
        t0.elapsed()
    };
    let mut g = c.benchmark_group("masked-mount-ns");
    g.sample_size(50);
    g.bench_function("spawn /bin/true", |b| b.iter_custom(spawn));
    g.bench_function("spawn /bin/true from the masked namespace", |b| {
        b.iter_custom(|iters| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    bench::mountns::enter_on_this_thread(&ns).expect("enter");
                    spawn(iters)
                })
                .join()
                .expect("spawning thread")
            })
        })
    });
    g.finish();
    drop(ns);
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(
    setup,
    kvm_setup,
    namespaces,
    pivot_root,
    cgroups,
    masked_mount_namespace
);
criterion_main!(setup);
