//! `bootlab images ...`: build the guest images.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build (or reuse from cache) the kernel, initramfs and rootfs.
    Build,
}

pub fn run(cmd: ImagesCommand) -> anyhow::Result<u8> {
    match cmd {
        ImagesCommand::Build => Err(super::not_built("images build", 2)),
    }
}
