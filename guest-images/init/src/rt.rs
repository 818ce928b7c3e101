//! Minimal runtime of the libc-free static build (`--cfg guest_init_tiny`, see
//! guest-images/build.sh): the process entry point, a bump heap, the panic handler
//! and the memory functions the compiler emits calls to. Linked with
//! `-nostartfiles -nostdlib -static`, so nothing else runs before `_start`.

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, CStr};
use core::sync::atomic::{AtomicUsize, Ordering};

use guest_init::sys;

// The kernel enters at _start with the stack holding argc, argv[], NULL, envp[],
// NULL. Pass that stack pointer on; align the stack for the call as the ABI wants.
core::arch::global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym start,
);

/// Collects argv (without argv\[0\]) and the environment, runs guest-init, exits.
///
/// # Safety
/// `sp` must be the initial process stack as the kernel laid it out.
unsafe extern "C" fn start(sp: *const usize) -> ! {
    // SAFETY: the caller passes the kernel's initial stack: argc, then argc
    // pointers to NUL-terminated strings and a NULL, then the environment
    // pointers and a NULL.
    let (args, env) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const c_char;
        let mut args = Vec::new();
        for i in 1..argc {
            let arg = CStr::from_ptr(*argv.add(i)).to_bytes();
            args.push(String::from_utf8_lossy(arg).into_owned());
        }
        let mut env = Vec::new();
        let mut p = argv.add(argc + 1);
        while !(*p).is_null() {
            env.push(CStr::from_ptr(*p).to_bytes().to_vec());
            p = p.add(1);
        }
        (args, env)
    };
    sys::exit(crate::run(args, env))
}

/// Heap size: guest-init allocates a few kilobytes (argv, cmdline, messages).
const HEAP_SIZE: usize = 1 << 20;

/// A bump allocator over a static array (in .bss: no file size). Never frees;
/// guest-init's allocations are few and short-lived processes end it.
struct BumpHeap {
    next: AtomicUsize,
}

struct HeapArea(core::cell::UnsafeCell<[u8; HEAP_SIZE]>);
// SAFETY: regions of the area are handed out at most once (atomic bump), so no
// two users share bytes.
unsafe impl Sync for HeapArea {}

static HEAP_AREA: HeapArea = HeapArea(core::cell::UnsafeCell::new([0; HEAP_SIZE]));

// SAFETY: alloc returns distinct, suitably aligned regions inside HEAP_AREA, or
// null when it is exhausted; dealloc does nothing, which is allowed.
unsafe impl GlobalAlloc for BumpHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = HEAP_AREA.0.get() as usize;
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + cur + layout.align() - 1) & !(layout.align() - 1);
            let end = start - base + layout.size();
            if end > HEAP_SIZE {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return start as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: BumpHeap = BumpHeap {
    next: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    let _ = sys::write_all(2, b"guest-init: internal error (panic)\n");
    sys::exit(101)
}

/// # Safety
/// C `memcpy`: `n` bytes readable at `src`, writable at `dst`, not overlapping.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: per the C contract above; `rep movsb` copies rcx bytes forward.
    unsafe {
        core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _,
                         inout("rsi") src => _, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// C `memmove`: `n` bytes readable at `src` and writable at `dst`; may overlap.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize) + n {
        // SAFETY: a forward copy is correct when dst is below src or disjoint.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: backward copy (direction flag set, then cleared as the ABI
    // requires) of the same ranges.
    unsafe {
        core::arch::asm!("std", "rep movsb", "cld", inout("rcx") n => _,
                         inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
                         options(nostack));
    }
    dst
}

/// # Safety
/// C `memset`: `n` bytes writable at `dst`.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: per the C contract; `rep stosb` stores al rcx times.
    unsafe {
        core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _,
                         in("al") c as u8, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// C `memcmp`: `n` bytes readable at `a` and `b`.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, within both readable ranges. Volatile keeps the
        // compiler from turning this loop back into a memcmp call.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// C `bcmp`: as [`memcmp`].
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// C `strlen`: `s` points to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const c_char) -> usize {
    let mut n = 0;
    // SAFETY: reads up to and including the terminating NUL the caller promises.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}
