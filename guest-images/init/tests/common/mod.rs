//! Helpers shared by guest-init's integration tests: where the built images are and
//! reading marker output; skipping follows the test-support crate.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Output;

use timeline::marker::Marker;

/// The images directory: $BOOTLAB_IMAGES, else guest-images/out of this checkout.
pub fn images_dir() -> PathBuf {
    match std::env::var_os("BOOTLAB_IMAGES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../out"),
    }
}

/// Returns `path` if it exists. Otherwise skips loudly (returns `None`), or fails
/// when CI requires everything (test_support's policy).
pub fn need(path: &Path, why: &str) -> Option<PathBuf> {
    let hint = format!("{why}; run guest-images/build.sh");
    test_support::need("guest-init", &[test_support::Need::Path(path, &hint)])
        .then(|| path.to_path_buf())
}

/// Skips loudly, or fails when CI requires everything (test_support's policy).
pub fn skip(reason: &str) {
    test_support::skip("guest-init", reason);
}

/// The markers among `stdout`'s lines, in order.
pub fn markers(stdout: &str) -> Vec<Marker> {
    stdout.lines().filter_map(Marker::parse_line).collect()
}

/// Checks a host-mode run of the built-in `hello`: the three markers in order, the
/// hello line between `exec` and `done`, exit status 0.
pub fn assert_hello_run(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?}, stdout:\n{stdout}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "@@bootlab init-start",
            "@@bootlab exec",
            guest_init::console::HELLO_LINE.trim_end(),
            "@@bootlab done"
        ],
        "stdout:\n{stdout}"
    );
    assert_eq!(markers(&stdout), Marker::REQUIRED);
}

/// Whether `bytes` is an ELF64 file without a PT_INTERP program header, i.e. a
/// statically linked executable (static-pie included). Errors describe why not.
pub fn elf_is_static(bytes: &[u8]) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02") {
        return Err("not an ELF64 file".into());
    }
    let phoff = usize::try_from(u64_at(0x20).ok_or("short header")?)
        .map_err(|_| "program header offset out of range")?;
    let phentsize = u16_at(0x36).ok_or("short header")? as usize;
    let phnum = u16_at(0x38).ok_or("short header")? as usize;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or("truncated program headers")?;
        if p_type == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}
