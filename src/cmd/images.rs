//! `bootlab images ...`: build the guest images by running `guest-images/build.sh`
//! of the checkout this binary was built from (one recipe, whichever entry point).

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::Command;

/// The image builder script, in the checkout the binary was built from.
const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/guest-images/build.sh");

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build (or reuse from cache) the kernel, initramfs, rootfs and its ext4 image.
    ///
    /// Output goes to guest-images/out/ or $BOOTLAB_IMAGES; the kernel is cached in
    /// /var/cache/bootlab (or $BOOTLAB_CACHE) keyed by its config and patches.
    Build {
        /// Only these steps (default: all of them, in order).
        #[arg(value_enum)]
        steps: Vec<Step>,
        /// Build the kernel without the emulated-KVM workarounds (for hardware KVM).
        #[arg(long)]
        no_workarounds: bool,
        /// Output directory (default: guest-images/out of the checkout).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// One step of the image build (the script's step names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Step {
    /// Install missing Debian packages.
    Deps,
    /// Build the static guest-init.
    Init,
    /// Build guest-init32, the 32-bit init for an emulated /dev/kvm.
    Init32,
    /// Assemble rootfs/.
    Rootfs,
    /// Pack initramfs.cpio[.gz], initramfs-full.cpio.gz and initramfs32.cpio[.gz].
    Initramfs,
    /// Make rootfs.ext4, the root disk, from rootfs/ (mkfs.ext4 -d).
    Disk,
    /// Build or fetch from cache the vmlinux.
    Kernel,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Deps => "deps",
            Step::Init => "init",
            Step::Init32 => "init32",
            Step::Rootfs => "rootfs",
            Step::Initramfs => "initramfs",
            Step::Disk => "disk",
            Step::Kernel => "kernel",
        }
    }
}

pub fn run(cmd: ImagesCommand) -> anyhow::Result<u8> {
    match cmd {
        ImagesCommand::Build {
            steps,
            no_workarounds,
            out,
        } => build(&steps, no_workarounds, out),
    }
}

fn build(steps: &[Step], no_workarounds: bool, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let script = PathBuf::from(BUILD_SCRIPT);
    if !script.is_file() {
        bail!(
            "image builder {} not found (bootlab images build runs the script of the \
             checkout it was built from)",
            script.display()
        );
    }
    let mut cmd = Command::new("bash");
    cmd.arg(&script).args(steps.iter().map(|s| s.name()));
    if no_workarounds {
        cmd.env("BOOTLAB_KERNEL_WORKAROUNDS", "0");
    }
    if let Some(dir) = out {
        super::check_out_dir("--out", &dir)?;
        let dir = std::path::absolute(&dir)
            .with_context(|| format!("output directory {}", dir.display()))?;
        cmd.env("BOOTLAB_IMAGES", dir);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run bash {}", script.display()))?;
    match status.code() {
        Some(0) => Ok(0),
        Some(code) => bail!("{} failed with exit code {code}", script.display()),
        None => bail!("{} was killed by a signal", script.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_one_the_script_knows() {
        let script = std::fs::read_to_string(BUILD_SCRIPT).unwrap();
        let dispatch = script
            .lines()
            .find(|l| l.trim_start().starts_with("deps | init |"))
            .expect("build.sh step dispatch line");
        let known: Vec<&str> = dispatch
            .split(')')
            .next()
            .unwrap()
            .split('|')
            .map(str::trim)
            .collect();
        for step in Step::value_variants() {
            assert!(
                known.contains(&step.name()),
                "{} not in {known:?}",
                step.name()
            );
        }
        assert_eq!(known.len(), Step::value_variants().len());
    }
}
