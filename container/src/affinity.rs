//! The child of the fast start begins on the CPU its parent runs on.
//!
//! With `CLONE_VFORK` the parent sleeps from the clone until the workload's execve,
//! so the CPU it runs on is the one certain to be free for the child; the kernel's
//! fork placement may pick another one, busy or (on a virtualized host) not even
//! running, and the child then waits for it. The runtime pins itself to its current
//! CPU for the clone; the child inherits the pin and puts the runtime's own mask
//! back first thing (the workload gets that mask), and the runtime does the same
//! once the clone returned.

use std::io;

/// The runtime's affinity mask while it is pinned to one CPU.
#[derive(Clone, Copy)]
pub struct Pin {
    saved: libc::cpu_set_t,
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pin").finish_non_exhaustive()
    }
}

impl Pin {
    /// Pins the calling thread to the CPU it runs on; `None` when there is nothing
    /// to gain (a mask of one CPU) or the mask cannot be read or set.
    pub fn to_current_cpu() -> Option<Pin> {
        // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
        let mut saved: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is writable for the size passed; pid 0 is this thread.
        let rc = unsafe {
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut saved)
        };
        // SAFETY: CPU_COUNT only reads the set.
        if rc != 0 || unsafe { libc::CPU_COUNT(&saved) } < 2 {
            return None;
        }
        // SAFETY: no preconditions.
        let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return None;
        }
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below the set's size, checked above.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        set(&one).ok()?;
        Some(Pin { saved })
    }

    /// Puts the saved mask back on the calling thread.
    pub fn restore(&self) -> io::Result<()> {
        set(&self.saved)
    }
}

fn set(mask: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `mask` is a valid set of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), mask) };
    crate::sys::cvt(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_undone_by_restore() {
        // In a thread of its own: the pin changes the calling thread's mask.
        std::thread::spawn(|| {
            let count = || {
                // SAFETY: as in `Pin::to_current_cpu`.
                let mut s: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                // SAFETY: as above.
                unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&s), &mut s) };
                // SAFETY: as above.
                unsafe { libc::CPU_COUNT(&s) }
            };
            let before = count();
            match Pin::to_current_cpu() {
                None => assert!(before < 2),
                Some(pin) => {
                    assert_eq!(count(), 1);
                    pin.restore().unwrap();
                    assert_eq!(count(), before);
                }
            }
        })
        .join()
        .unwrap();
    }
}
