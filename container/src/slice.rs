//! The start asks the scheduler for short time slices.
//!
//! On Linux 6.12 and later the fair scheduler (EEVDF) takes a `SCHED_OTHER` task's
//! `sched_attr.sched_runtime` as the length of slice it asks for (0.1-100 ms, the
//! default is the kernel's base slice, 1.4 ms on our two-CPU hosts), an
//! unprivileged latency hint: a task with a shorter slice gets an earlier deadline,
//! so when it becomes runnable beside a CPU-bound task it runs soon instead of
//! waiting for that task's slice to end (up to a scheduler tick, 4 ms here); its
//! share of the CPU is unchanged. The start of a sandbox is a few short bursts
//! separated by waits (the clone, an RCU grace period in the unmount of the old
//! root, the move to another CPU at execve), which is what that hint is for.
//! Traced with ftrace beside two busy loops on two CPUs, the start loses the CPU
//! for 2-4 ms at a time (until the busy loop's next tick, `CONFIG_HZ=250`) two to
//! three times; the measured effect is in [`SETUP_SLICE_NS`].
//!
//! The runtime asks for the short slice before it prepares the start, its child
//! inherits it, and the child puts the kernel's default back right before the
//! workload's execve: the workload is scheduled like any other process. Older
//! kernels take the value and ignore it; a runtime under a real-time or idle
//! policy is left alone.

/// The slice asked for during the start, the shortest the kernel accepts.
///
/// Measured on our two-CPU host beside two busy loops, interleaved builds of the
/// same code with and without the request: spawn to the workload's execve
/// (ftrace, 30 starts a round) median 10.2-10.6 ms without (four rounds), 7.7 and
/// 10.2 ms with (two rounds, the distribution is bimodal: one preemption fewer or
/// not); `bootlab bench --runtimes sandbox,sandbox-floor,bwrap --runs 40 --load 2`,
/// to the workload's first console line, loaded: 10.44, 10.84, 11.70 ms without,
/// 9.00, 10.42 ms with; quiet: 2.26-2.41 without, 2.37-2.47 with (no difference).
/// 0.3 ms and longer slices (3, 8 ms) did no better or worse.
pub const SETUP_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` as of Linux 4.x (`SCHED_ATTR_SIZE_VER0`, 48 bytes); the
/// utilization clamps that follow in later versions are not touched.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// The size of [`SchedAttr`], which the kernel reads from its `size` field.
const ATTR_SIZE: u32 = 48;
const _: () = assert!(std::mem::size_of::<SchedAttr>() == ATTR_SIZE as usize);

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

fn get() -> Option<SchedAttr> {
    let mut a = SchedAttr::default();
    // SAFETY: `a` is writable for ATTR_SIZE bytes; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut a as *mut SchedAttr,
            ATTR_SIZE,
            0,
        )
    };
    (rc == 0).then_some(a)
}

fn set(mut a: SchedAttr) -> bool {
    a.size = ATTR_SIZE;
    a.flags = 0;
    // SAFETY: `a` is a valid sched_attr of the size it states; pid 0 is the calling
    // thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
    rc == 0
}

/// The calling thread's scheduling attributes while it runs with the short slice.
#[derive(Clone, Copy)]
pub struct Shortened {
    saved: SchedAttr,
}

impl std::fmt::Debug for Shortened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shortened").finish_non_exhaustive()
    }
}

impl Shortened {
    /// Asks for [`SETUP_SLICE_NS`] on the calling thread (threads and children
    /// made from here on inherit it); `None` when the thread is not under a fair
    /// policy or the kernel refuses. Nice value and policy are kept.
    pub fn request() -> Option<Shortened> {
        let saved = get()?;
        if saved.policy != SCHED_OTHER && saved.policy != SCHED_BATCH {
            return None;
        }
        set(SchedAttr {
            runtime: SETUP_SLICE_NS,
            ..saved
        })
        .then_some(Shortened { saved })
    }

    /// Gives the calling thread the kernel's default slice again, with the nice
    /// value and policy it had. Async-signal-safe (one system call), so the child
    /// of the vfork start may call it.
    pub fn reset(&self) -> bool {
        set(SchedAttr {
            runtime: 0,
            ..self.saved
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_slice_is_asked_for_and_reset_keeping_the_nice_value() {
        // In a thread of its own: the attributes are per thread.
        std::thread::spawn(|| {
            let before = get().expect("sched_getattr");
            let Some(s) = Shortened::request() else {
                eprintln!("SKIP: this kernel refuses a slice request");
                return;
            };
            let during = get().unwrap();
            if during.runtime == before.runtime && before.runtime != SETUP_SLICE_NS {
                eprintln!("SKIP: this kernel ignores sched_runtime for SCHED_OTHER (before 6.12)");
                return;
            }
            assert_eq!(during.runtime, SETUP_SLICE_NS);
            assert_eq!(during.nice, before.nice);
            assert_eq!(during.policy, before.policy);
            assert!(s.reset());
            let after = get().unwrap();
            assert_eq!(after.runtime, before.runtime, "the default slice is back");
            assert_eq!(after.nice, before.nice);
        })
        .join()
        .unwrap();
    }
}
