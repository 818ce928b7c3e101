//! Ctrl-C as a flag: the harness checks it between runs, so an interrupted session
//! still writes what it measured. Runtimes run in their own process group and do not
//! see the terminal's SIGINT.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT handler (once) and returns the flag it sets. A second Ctrl-C
/// after the first falls back to the default action (terminate).
pub fn install() -> &'static AtomicBool {
    // SAFETY: `sigaction` with a handler that only stores to a static atomic (which
    // is async-signal-safe); SA_RESETHAND restores the default on delivery, so a
    // second Ctrl-C still kills a stuck harness. The struct is zero-initialized and
    // its mask emptied before use.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
    &STOP
}
