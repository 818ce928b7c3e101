//! Builds the built-in guests into small static ELFs with a PVH note, which
//! `vmm::lab` embeds: the `lab` guest (lab-guest/lab.rs) and the hostile `fuzz` guest
//! (lab-guest/fuzz.rs), both with lab-guest/lab.ld. Uses the host target with no std,
//! no start files and a linker script, since no bare-metal target can be installed on
//! our machines.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let script = manifest.join("lab-guest/lab.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("lab-guest/virtio_mmio.s").display()
    );
    for name in ["lab", "fuzz"] {
        let src = manifest.join(format!("lab-guest/{name}.rs"));
        println!("cargo:rerun-if-changed={}", src.display());
        build_guest(name, &src, &script, &out_dir.join(format!("{name}.elf")));
    }
}

fn build_guest(name: &str, src: &Path, script: &Path, out: &Path) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin", "--crate-name"])
        .arg(name)
        .args(["--target", "x86_64-unknown-linux-gnu"])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=s",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "relocation-model=static", "-C", "strip=symbols"])
        .args(["-C", "link-arg=-nostdlib", "-C", "link-arg=-nostartfiles"])
        .args(["-C", "link-arg=-static", "-C", "link-arg=-no-pie"])
        .args([
            "-C",
            "link-arg=-Wl,--build-id=none",
            "-C",
            "link-arg=-Wl,-n",
        ])
        .arg("-C")
        .arg(format!("link-arg=-Wl,-T,{}", script.display()))
        .arg("-o")
        .arg(out)
        .arg(src)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("running rustc for the {name} guest: {e}"));
    assert!(status.success(), "building the {name} guest failed");
}
