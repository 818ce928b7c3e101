//! The socket files the vsock devices listen on are removed when the monitor is
//! ended by SIGTERM, SIGINT or SIGHUP, not only when the device is dropped: a
//! handler (installed once, only over a default disposition) unlinks every
//! registered path and lets the signal end the process as it would have.
//! SIGKILL cannot be caught: a SIGKILLed monitor leaves its socket behind.
//!
//! The handler may only use async-signal-safe calls and must not touch memory
//! another thread may free, so paths live in static slots of atomics.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

/// How many socket paths can be registered at once (more are still removed on
/// drop, only not on a signal).
const SLOTS: usize = 16;
/// The longest path a Unix socket can have (sun_path, NUL included).
const PATH_MAX: usize = 108;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

static STATE: [AtomicU8; SLOTS] = [const { AtomicU8::new(FREE) }; SLOTS];
static PATHS: [[AtomicU8; PATH_MAX]; SLOTS] =
    [const { [const { AtomicU8::new(0) }; PATH_MAX] }; SLOTS];

/// The signals that end a monitor and may be caught.
const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// A path removed on those signals until this is dropped.
#[derive(Debug)]
pub struct Registration(Option<usize>);

/// Registers `path` for removal on a terminating signal.
pub fn register(path: &Path) -> Registration {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install);
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= PATH_MAX || bytes.contains(&0) {
        return Registration(None);
    }
    for (slot, state) in STATE.iter().enumerate() {
        if state
            .compare_exchange(FREE, WRITING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        for (i, cell) in PATHS[slot].iter().enumerate() {
            cell.store(bytes.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
        state.store(READY, Ordering::Release);
        return Registration(Some(slot));
    }
    log::debug!(
        "vsock: no slot left to remove {} on a signal",
        path.display()
    );
    Registration(None)
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            STATE[slot].store(FREE, Ordering::Release);
        }
    }
}

fn install() {
    for sig in SIGNALS {
        // SAFETY: a zeroed sigaction is a valid value to read the old one into.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying the disposition only (null new action).
        if unsafe { libc::sigaction(sig, std::ptr::null(), &raw mut old) } != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            // The program has its own plan for this signal (or ignores it).
            continue;
        }
        // SAFETY: as above; the fields set next make it a valid action.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // Once handled, the default comes back, so raising again ends the process.
        action.sa_flags = libc::SA_RESETHAND;
        // SAFETY: `action` is a valid sigaction whose handler is async-signal-safe.
        unsafe { libc::sigaction(sig, &raw const action, std::ptr::null_mut()) };
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    for (slot, state) in STATE.iter().enumerate() {
        if state.load(Ordering::Acquire) != READY {
            continue;
        }
        let mut path = [0u8; PATH_MAX + 1];
        for (b, cell) in path.iter_mut().zip(&PATHS[slot]) {
            *b = cell.load(Ordering::Relaxed);
        }
        // SAFETY: `path` is NUL-terminated (its last byte is never written);
        // unlink is async-signal-safe.
        unsafe { libc::unlink(path.as_ptr().cast()) };
    }
    // SAFETY: raise is async-signal-safe; the disposition is the default again.
    unsafe { libc::raise(sig) };
}
