//! Where and when the sandbox's network namespace is made.
//!
//! Creating a network namespace is the most expensive part of `clone(2)` with every
//! `CLONE_NEW*` flag (the kernel initialises a whole network stack: about
//! 0.35-0.6 ms on our hosts, more under load), and it does not depend on anything
//! the child does before its root filesystem is set up. As root without a user
//! namespace it is therefore made outside the clone, in one of two ways
//! ([`placement`]):
//! - in parallel, when a CPU is idle ([`idle_cpu`]): a thread of the runtime makes
//!   it (`unshare(CLONE_NEWNET)`, loopback up) while the child clones without
//!   `CLONE_NEWNET` and sets up its root filesystem; then the child takes the
//!   namespace's descriptor from the runtime with `pidfd_getfd(2)` and joins it with
//!   `setns(2)`. Nothing is lost when the thread fails: the child then creates its
//!   own namespace the ordinary way;
//! - in the child, after its root filesystem, when no CPU is idle: the thread would
//!   only take turns with the runtime on the one CPU it gets (measured with
//!   `bootlab bench --load 2`: the runtime's own steps before the clone went from
//!   0.3 to 1-6 ms median while the thread ran), and a namespace made by the clone
//!   itself made the lazy unmount of the old root, which waits for an RCU grace
//!   period, slower (median 0.16 -> 1.7 ms under strace).
//!
//! Made in the clone instead when something needs it before the root filesystem:
//! a sysfs mount (sysfs takes the network namespace of the task that mounts it),
//! a net.* sysctl, or hooks (see `process::netns_placement`). The sandbox always
//! ends up in a fresh network namespace.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// Where the network namespace is made (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// By the clone (`CLONE_NEWNET`), or not at all when none is asked for.
    InClone,
    /// By a thread of the runtime while the child sets up its root filesystem.
    Parallel,
    /// By the child itself, once its root filesystem is set up.
    InChild,
}

/// Where a network namespace that may be made outside the clone (`movable`) is
/// made, given whether a CPU is idle to run a thread beside the child.
pub fn placement(movable: bool, idle_cpu: bool) -> Placement {
    match (movable, idle_cpu) {
        (false, _) => Placement::InClone,
        (true, true) => Placement::Parallel,
        (true, false) => Placement::InChild,
    }
}

/// Whether a CPU we may run on is free for the thread right now: at most one
/// runnable task in the system (`/proc/loadavg`, this one included) per CPU in our
/// affinity mask. ("Fewer than" sent a quiet `bootlab bench` run, where the
/// harness is often runnable beside us, to the child's path, which was slower
/// there.) A snapshot, taken once per start; when it cannot be read, no CPU
/// counts as free.
pub fn idle_cpu() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/loadavg") else {
        return false;
    };
    match (runnable_tasks(&text), affinity_cpus()) {
        (Some(runnable), Some(cpus)) => runnable <= cpus,
        _ => false,
    }
}

/// The number of runnable tasks in a `/proc/loadavg` line (the `R` of `R/T`).
fn runnable_tasks(loadavg: &str) -> Option<u32> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The number of CPUs in this thread's affinity mask.
fn affinity_cpus() -> Option<u32> {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable for the size passed; pid 0 is the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    // SAFETY: CPU_COUNT only reads the set filled above.
    u32::try_from(unsafe { libc::CPU_COUNT(&set) }).ok()
}

/// Stack of the namespace thread: it makes two system calls and an ioctl, so the
/// default 2 MiB would only cost a larger mapping.
const NETNS_THREAD_STACK: usize = 64 * 1024;

/// Slot value while the thread is still working.
const PENDING: i32 = -1;
/// Slot value when the thread failed.
const FAILED: i32 = -2;

/// The runtime's side: the thread making the namespace and what the child needs to
/// fetch it.
pub struct ParallelNetns {
    slot: Arc<AtomicI32>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A pidfd of the runtime itself, inherited by the child.
    self_pidfd: RawFd,
}

/// The child's side, readable from the child (it shares the runtime's memory).
#[derive(Clone)]
pub struct NetnsHandle {
    slot: Arc<AtomicI32>,
    self_pidfd: RawFd,
}

impl ParallelNetns {
    /// Starts the thread; `None` if the runtime cannot even open a pidfd of itself
    /// (old kernel), in which case the caller keeps `CLONE_NEWNET` on its clone.
    pub fn start() -> Option<ParallelNetns> {
        // SAFETY: pidfd_open on our own pid with no flags; the result is checked.
        let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0 as libc::c_uint) };
        let pidfd = RawFd::try_from(rc).unwrap_or(-1);
        if pidfd < 0 {
            return None;
        }
        let slot = Arc::new(AtomicI32::new(PENDING));
        let s = slot.clone();
        // The thread starts with every signal blocked (it inherits our mask), so a
        // signal for the runtime is never handled on it.
        let mut old = nix::sys::signal::SigSet::empty();
        let blocked = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(&nix::sys::signal::SigSet::all()),
            Some(&mut old),
        );
        let thread = std::thread::Builder::new()
            .name("netns".into())
            .stack_size(NETNS_THREAD_STACK)
            .spawn(move || {
                let fd = make_netns().unwrap_or(FAILED);
                s.store(fd, Ordering::Release);
                futex_wake(&s);
            });
        if blocked.is_ok() {
            let _ = nix::sys::signal::pthread_sigmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&old),
                None,
            );
        }
        match thread {
            Ok(t) => Some(ParallelNetns {
                slot,
                thread: Some(t),
                self_pidfd: pidfd,
            }),
            Err(_) => {
                // SAFETY: closing the pidfd opened above, once.
                unsafe { libc::close(pidfd) };
                None
            }
        }
    }

    /// What the child needs.
    pub fn handle(&self) -> NetnsHandle {
        NetnsHandle {
            slot: self.slot.clone(),
            self_pidfd: self.self_pidfd,
        }
    }
}

impl Drop for ParallelNetns {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let fd = self.slot.load(Ordering::Acquire);
        // SAFETY: the runtime's own descriptors, opened by `start` and the thread
        // (joined above), closed once here.
        unsafe {
            if fd >= 0 {
                libc::close(fd);
            }
            libc::close(self.self_pidfd);
        }
    }
}

impl NetnsHandle {
    /// The runtime's pidfd, which the child must keep open until [`join`](Self::join).
    pub fn pidfd(&self) -> RawFd {
        self.self_pidfd
    }

    /// In the child: waits for the runtime's thread and joins its namespace, or, if
    /// the thread failed or the descriptor cannot be fetched, makes a namespace of
    /// its own. Either way the child is in a new network namespace with `lo` up.
    /// Closes the runtime's pidfd.
    pub fn join(&self) -> std::io::Result<()> {
        let fd = loop {
            let v = self.slot.load(Ordering::Acquire);
            if v != PENDING {
                break v;
            }
            futex_wait(&self.slot, PENDING);
        };
        let joined = fd >= 0 && fetch_and_enter(self.self_pidfd, fd).is_ok();
        // SAFETY: the child's own copy of the pidfd, closed once.
        unsafe { libc::close(self.self_pidfd) };
        if joined {
            return Ok(());
        }
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        crate::process::loopback_up()
    }
}

/// In the runtime's thread: a new network namespace with `lo` up; returns an fd of
/// it. The thread's own namespace changes, nobody else's.
fn make_netns() -> Option<RawFd> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
    crate::process::loopback_up().ok()?;
    // SAFETY: a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/ns/net".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    (fd >= 0).then_some(fd)
}

/// In the child: copies the runtime's descriptor `fd` and enters that namespace.
fn fetch_and_enter(pidfd: RawFd, fd: RawFd) -> std::io::Result<()> {
    // SAFETY: pidfd_getfd with a pidfd of the runtime and a descriptor number in its
    // table; the result is checked and closed below.
    let own = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0 as libc::c_uint) };
    if own < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let own = RawFd::try_from(own).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `own` is a namespace descriptor we just received.
    let r = unsafe { libc::setns(own, libc::CLONE_NEWNET) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing our copy, once.
    unsafe { libc::close(own) };
    if r < 0 {
        Err(err)
    } else {
        Ok(())
    }
}

fn futex_wait(word: &AtomicI32, expected: i32) {
    // SAFETY: FUTEX_WAIT on a live, aligned i32; it returns at once if the value
    // changed, on a wake-up, or on a signal; the caller loops.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicI32) {
    // SAFETY: FUTEX_WAKE on a live, aligned i32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runnable_tasks_are_read_from_loadavg() {
        // Lines read on this host: loaded (12 runnable) and quiet (1: the reader).
        assert_eq!(runnable_tasks("10.80 11.50 10.40 12/187 30481\n"), Some(12));
        assert_eq!(runnable_tasks("0.08 0.12 0.10 1/143 2210\n"), Some(1));
        assert_eq!(runnable_tasks("0.08 0.12 0.10"), None);
        assert_eq!(runnable_tasks("0.08 0.12 0.10 x/143 2210"), None);
    }

    #[test]
    fn the_thread_is_used_only_beside_an_idle_cpu() {
        assert_eq!(placement(true, true), Placement::Parallel);
        assert_eq!(placement(true, false), Placement::InChild);
        assert_eq!(placement(false, true), Placement::InClone);
        assert_eq!(placement(false, false), Placement::InClone);
    }

    #[test]
    fn this_thread_may_run_on_some_cpu() {
        assert!(affinity_cpus().is_some_and(|n| n >= 1));
    }
}
