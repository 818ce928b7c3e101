//! The one clock every bootlab timestamp is taken with: CLOCK_MONOTONIC, in ns.

/// Environment variable through which a harness tells a runtime process the instant
/// (CLOCK_MONOTONIC ns) it was spawned, so the runtime's own `--timeline` output can
/// start at the spawn rather than at its `main`.
pub const ENV_SPAWN_NS: &str = "BOOTLAB_SPAWN_NS";

/// Current CLOCK_MONOTONIC time in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC is always
    // supported on Linux; clock_gettime writes only into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    // CLOCK_MONOTONIC counts up from boot: neither field is ever negative.
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

/// The spawn instant given by a harness in [`ENV_SPAWN_NS`], if any and well formed.
pub fn spawn_ns_from_env() -> Option<u64> {
    std::env::var(ENV_SPAWN_NS).ok()?.trim().parse().ok()
}

static MAIN_ENTRY_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Records "now" as the entry of the process's `main` (call it first thing), the
/// fallback spawn instant of a runtime started without [`ENV_SPAWN_NS`].
pub fn mark_main_entry() {
    MAIN_ENTRY_NS.store(now_ns(), std::sync::atomic::Ordering::Relaxed);
}

/// The instant recorded by [`mark_main_entry`], if it was called.
pub fn main_entry_ns() -> Option<u64> {
    match MAIN_ENTRY_NS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        t => Some(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_does_not_go_back() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        assert!(a > 0);
    }
}
