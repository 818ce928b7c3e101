//! Fuzz target: arbitrary text as the kernel command line, loaded with the lab guest
//! by `vmm::boot::load_image`. Either the line is refused with a command-line error,
//! or guest memory holds exactly the trimmed line, NUL-terminated, at CMDLINE_START.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use vmm::boot;
use vmm::layout::{CMDLINE_MAX_SIZE, CMDLINE_START};
use vmm::memory::{self, GuestMemory};
use vmm::Error;

const MEM_BYTES: u64 = 16 << 20;

fn mem() -> &'static GuestMemory {
    static MEM: OnceLock<GuestMemory> = OnceLock::new();
    MEM.get_or_init(|| memory::create(MEM_BYTES).expect("guest memory"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(cmdline) = std::str::from_utf8(data) else {
        return;
    };
    match boot::load_image(
        mem(),
        MEM_BYTES,
        Path::new("lab"),
        vmm::lab::ELF,
        None,
        cmdline,
    ) {
        Ok(_) => {
            let want = cmdline.trim().as_bytes();
            assert!(want.len() < CMDLINE_MAX_SIZE);
            let mut got = vec![0u8; want.len() + 1];
            use vm_memory::Bytes;
            mem()
                .read_slice(&mut got, vm_memory::GuestAddress(CMDLINE_START))
                .unwrap();
            assert_eq!(&got[..want.len()], want);
            assert_eq!(got[want.len()], 0);
        }
        Err(Error::Cmdline(_)) => {}
        Err(e) => panic!("the lab guest failed to load with a command line: {e}"),
    }
});
