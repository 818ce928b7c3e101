//! Fuzz target: arbitrary bytes as a kernel image (ELF vmlinux or bzImage), recognised
//! by `vmm::boot::detect` and loaded by `vmm::boot::load_image` into a 16 MiB guest
//! memory with a command line, and with a small initrd when the input's length is
//! odd. The loader must return Ok or a typed error, never panic, and whatever it
//! places must lie inside guest memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use vmm::boot;
use vmm::memory::{self, GuestMemory};

const MEM_BYTES: u64 = 16 << 20;
const HIMEM_START: u64 = vmm::layout::HIMEM_START;

fn mem() -> &'static GuestMemory {
    static MEM: OnceLock<GuestMemory> = OnceLock::new();
    MEM.get_or_init(|| memory::create(MEM_BYTES).expect("guest memory"))
}

/// Size of the initrd used with odd-length inputs.
const INITRD_BYTES: usize = 64 << 10;

/// The initrd file, written once (and kept for the next run) in the temp dir.
fn initrd() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let p = std::env::temp_dir().join("bootlab-fuzz-initrd");
        let ok = std::fs::metadata(&p).is_ok_and(|m| m.len() == INITRD_BYTES as u64);
        if !ok {
            let tmp = p.with_extension(std::process::id().to_string());
            std::fs::write(&tmp, vec![0x5a; INITRD_BYTES]).expect("writing the initrd");
            std::fs::rename(&tmp, &p).expect("placing the initrd");
        }
        p
    })
}

fuzz_target!(|data: &[u8]| {
    let kind = boot::detect(data);
    let initrd = (data.len() % 2 == 1).then(initrd);
    let result = boot::load_image(
        mem(),
        MEM_BYTES,
        Path::new("fuzz-input"),
        data,
        initrd,
        "console=ttyS0 reboot=k",
    );
    if let Ok(setup) = result {
        assert!(kind.is_ok(), "loaded an image detect() refused");
        if let Some((addr, size)) = setup.initrd {
            let start = addr.0;
            assert!(start >= HIMEM_START && start >= setup.kernel_end);
            assert!(start.checked_add(size).is_some_and(|end| end <= MEM_BYTES));
        }
    }
});
