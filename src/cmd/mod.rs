//! One module per subcommand. Each returns the process exit code on success and an
//! `anyhow::Error` (printed by `main` as one line with its context chain) on failure.

pub mod bench;
pub mod images;
pub mod report;
pub mod sandbox;
pub mod vm;

/// Exit code for a usage or set-up error (bad input, missing file, missing /dev/kvm).
pub const EXIT_ERROR: u8 = 1;

/// The guest images folder: `$BOOTLAB_IMAGES`, else `guest-images/out` of the checkout.
pub fn images_dir() -> std::path::PathBuf {
    std::env::var_os("BOOTLAB_IMAGES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out")
        })
}
