//! One module per subcommand. Each returns the process exit code on success and an
//! `anyhow::Error` (printed by `main` as one line with its context chain) on failure.

pub mod bench;
pub mod images;
pub mod report;
pub mod restore;
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

/// Checks that `path` (given for `what`, e.g. "kernel" or "--lab-elf") is an
/// existing regular file, with an error that says which of the three it is not.
pub fn check_file(what: &str, path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() => Ok(()),
        Ok(md) if md.is_dir() => {
            anyhow::bail!("{what} {} is a directory, not a file", path.display())
        }
        Ok(_) => anyhow::bail!("{what} {} is not a regular file", path.display()),
        Err(e) => anyhow::bail!("{what} {}: {e}", path.display()),
    }
}

/// Checks, before any work is done, that an output file can be created at `path`
/// (given with `flag`): it is not a directory and its parent folder exists.
pub fn check_out_file(flag: &str, path: &std::path::Path) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!("{flag} {} is a directory, not a file", path.display());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "{flag} {}: folder {} does not exist",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

/// Checks that an output folder given with `flag` is a folder or can be created
/// (nothing that is not a folder is in its way).
pub fn check_out_dir(flag: &str, path: &std::path::Path) -> anyhow::Result<()> {
    let mut p = Some(path);
    while let Some(d) = p {
        if let Ok(md) = std::fs::metadata(d) {
            if md.is_dir() {
                return Ok(());
            }
            anyhow::bail!(
                "{flag} {}: {} exists and is not a folder",
                path.display(),
                d.display()
            );
        }
        p = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    Ok(())
}

/// Longest `--timeout` accepted: far beyond any run, and small enough that adding
/// it to a clock reading cannot overflow.
pub const MAX_TIMEOUT_S: f64 = 365.0 * 24.0 * 3600.0;

/// A `--timeout` value in seconds: positive, finite, at most [`MAX_TIMEOUT_S`].
pub fn timeout(flag: &str, s: f64) -> anyhow::Result<std::time::Duration> {
    if !(s > 0.0 && s <= MAX_TIMEOUT_S) {
        anyhow::bail!(
            "{flag} {} is not a number of seconds in (0, {MAX_TIMEOUT_S}] (one year)",
            short(s)
        );
    }
    std::time::Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow::anyhow!("{flag} {} is too short to be a timeout", short(s)))
}

/// A number as a user would write it: plain when moderate, else in e-notation (so
/// that 1e300 is not printed with 300 digits).
pub fn short(x: f64) -> String {
    if x.is_finite() && (x == 0.0 || (1e-6..1e9).contains(&x.abs())) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Adds the instant the runtime's `main` began as step `name`, when the spawn instant
/// came from a harness: the gap between the two is the runtime's own process start
/// (execve, loading, libc and Rust start-up), which no other event shows.
pub fn push_main_entry(tl: &mut timeline::Timeline, name: &str) {
    if timeline::clock::spawn_ns_from_env().is_none() {
        return;
    }
    if let Some(t) = timeline::clock::main_entry_ns() {
        tl.push(name, t, timeline::EventSource::Runtime);
    }
}
