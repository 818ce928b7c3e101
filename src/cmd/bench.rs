//! `bootlab bench`: run our microVM, our sandbox and the installed peers side by side
//! on the same workload and write `reports/<name>/` (results.json, report.md,
//! report.html).

use anyhow::{bail, Context};
use bench::harness::{self, Entry, Plan};
use bench::host::HostFacts;
use bench::results::RuntimeStatus;
use bench::runners::{
    seqread, BootlabSandbox, BootlabVm, BootlabVmRestore, Bwrap, Engine, EngineRow, EngineRuntime,
    Firecracker, FirecrackerRestore, Firmware, FirmwareGuest, ForkExec, Guest, KvmFloor, LinuxBoot,
    Oci, OciFlavor, QemuFirmware, QemuMicrovm, Runner, SandboxFloor, Workload,
};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Every runtime the harness knows, in report order.
pub const RUNTIMES: [&str; 28] = [
    "bootlab-vm-lab",
    "bootlab-vm-lab-kernel-irqchip",
    "bootlab-vm-lab-restore",
    "bootlab-vm-linux-restore",
    "bootlab-vm-linux",
    "bootlab-vm-linux-disk",
    "bootlab-sandbox",
    "bootlab-oci",
    "fork-exec",
    "sandbox-floor",
    "bwrap",
    "runc",
    "crun",
    "podman+bootlab",
    "podman+runc",
    "containerd+bootlab",
    "containerd+runc",
    "kvm-floor",
    "qemu-microvm",
    "qemu-microvm-linux",
    "qemu-microvm-disk",
    "qemu-microvm-qboot",
    "qemu-pc-seabios",
    "qemu-q35-ovmf",
    "firecracker",
    "firecracker-lab-restore",
    "firecracker-linux",
    "firecracker-linux-disk",
];

/// The Linux-guest rows: on an emulated host one boot takes about a minute (through
/// SeaBIOS about three), so they run there only when named in `--runtimes`.
const LINUX_ROWS: [&str; 9] = [
    "bootlab-vm-linux",
    "bootlab-vm-linux-disk",
    "qemu-microvm-linux",
    "qemu-microvm-disk",
    "qemu-microvm-qboot",
    "qemu-pc-seabios",
    "qemu-q35-ovmf",
    "firecracker-linux",
    "firecracker-linux-disk",
];

/// The rows whose Linux guest has its root on rootfs.ext4: the ones `--seqread`
/// gives the sequential-read workload.
const DISK_ROWS: [&str; 3] = [
    "bootlab-vm-linux-disk",
    "qemu-microvm-disk",
    "firecracker-linux-disk",
];

/// The container-engine rows: a podman run is ~0.5 s and a ctr run more, so the
/// four with their warm-up and concurrency batches would add minutes to the default
/// comparison; they run when named in `--runtimes`.
const ENGINE_ROWS: [&str; 4] = [
    "podman+bootlab",
    "podman+runc",
    "containerd+bootlab",
    "containerd+runc",
];

/// The EFI kernel `qemu-q35-ovmf` boots (guest-images/build.sh kernel-efi).
const EFI_KERNEL: &str = "bzImage-efi";

/// Where the project keeps peers Debian does not package, beside the checkout.
const SHARED_FIRECRACKER: &str = "../shared/peers/firecracker";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Measured runs per runtime.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,
    /// Warm-up runs per runtime (the first one also probes that the runtime works).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    warmup: u32,
    /// Start up to K instances at once (levels 1, 2, 4, ..., K): density, boots per
    /// second. 1 disables the sweep.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Comma-separated runtimes (default: ours and every available peer; the Linux
    /// guest rows only on hardware KVM, but bootlab-vm-linux-restore everywhere: its
    /// snapshot is taken once and cached). Known: bootlab-vm-lab,
    /// bootlab-vm-lab-kernel-irqchip, bootlab-vm-lab-restore, bootlab-vm-linux,
    /// bootlab-vm-linux-disk (its root on rootfs.ext4 through virtio-blk; the peers'
    /// qemu-microvm-disk and firecracker-linux-disk boot from the same image),
    /// bootlab-vm-linux-restore, bootlab-sandbox, bootlab-oci (`bootlab oci run` of a
    /// bundle, driven like runc), fork-exec, sandbox-floor, bwrap, runc,
    /// crun, podman+bootlab, podman+runc, containerd+bootlab and containerd+runc (the
    /// engines driving our runtime or runc; only when named here), kvm-floor, qemu-microvm, qemu-microvm-linux, qemu-microvm-qboot,
    /// qemu-pc-seabios, qemu-q35-ovmf (the Linux guest through firmware: qboot,
    /// SeaBIOS, OVMF; a firmware phase), firecracker,
    /// firecracker-lab-restore (Firecracker's own snapshot of the lab guest, restored
    /// through its API), firecracker-linux, firecracker-linux-disk (the `bootlab-`
    /// prefix may be left out).
    #[arg(long, value_delimiter = ',')]
    runtimes: Vec<String>,
    /// Report name: written to <out-root>/<name>/.
    #[arg(long, default_value = "latest")]
    name: String,
    /// Folder holding the report folders.
    #[arg(long, default_value = "reports")]
    out_root: PathBuf,
    /// Guest images folder (default: $BOOTLAB_IMAGES, else guest-images/out of the checkout).
    #[arg(long)]
    images: Option<PathBuf>,
    /// The lab guest ELF for the VM peers (QEMU, Firecracker) to boot
    /// [default: the embedded lab guest, written to <out-root>/<name>/lab.elf].
    #[arg(long)]
    lab_elf: Option<PathBuf>,
    /// Firecracker binary [default: $BOOTLAB_FIRECRACKER, else
    /// ../shared/peers/firecracker beside the checkout, else `firecracker` on PATH].
    #[arg(long)]
    firecracker: Option<PathBuf>,
    /// The bootlab binary that runs our runtimes (default: this executable).
    #[arg(long, hide = true)]
    bootlab: Option<PathBuf>,
    /// Also measure on a loaded host: every round runs the runtimes once quiet, then
    /// once more beside N CPU-bound worker processes (busy loops) that the harness
    /// starts, pauses between loaded passes and kills at the end; the report puts
    /// quiet and loaded side by side. At most 4x the CPU count. 0: quiet only.
    #[arg(long, default_value_t = 0, value_name = "N")]
    load: u32,
    /// The root-disk rows (bootlab-vm-linux-disk, qemu-microvm-disk,
    /// firecracker-linux-disk) run guest-init's `seqread` workload instead of
    /// `hello`: the first MIB MiB of /dev/vda, their root disk (the read stops at its
    /// end), in 4 KiB O_DIRECT requests, timed by the guest; the report compares the
    /// monitors' read throughput.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=65536))]
    seqread: Option<u32>,
    /// Never draw the progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// `bootlab load-worker`: one CPU-bound worker of `bootlab bench --load` (internal).
#[derive(Debug, Args)]
pub struct LoadWorkerArgs {
    /// The harness's process id: the worker dies with it.
    #[arg(long)]
    parent: u32,
}

/// Spins until killed (by the harness, or by the kernel when the harness dies).
pub fn load_worker(args: LoadWorkerArgs) -> anyhow::Result<u8> {
    bench::load::worker(args.parent)
}

/// Workers per CPU above which `--load` is refused: beyond that it measures the
/// scheduler's queue, not a busy host.
const MAX_LOAD_PER_CPU: u32 = 4;

/// Checks `--load` against the host's CPU count.
fn check_load(load: u32, cpus: u32) -> anyhow::Result<()> {
    let max = MAX_LOAD_PER_CPU.saturating_mul(cpus.max(1));
    if load > max {
        bail!(
            "--load {load} is more than {MAX_LOAD_PER_CPU}x the {cpus} CPUs of this host \
             (at most {max})"
        );
    }
    Ok(())
}

/// Which Firecracker the rows run: `--firecracker`, else `$BOOTLAB_FIRECRACKER`, else
/// the project's build beside the checkout (when it is there); `None` leaves the
/// runners to look on PATH, and without one there the rows are listed as missing.
fn firecracker_binary(
    flag: Option<PathBuf>,
    env: Option<PathBuf>,
    shared: Option<PathBuf>,
) -> Option<PathBuf> {
    flag.or(env).or(shared)
}

/// The root-disk rows' command line: what `bootlab vm run --guest linux --disk`
/// makes (a read-only root), with the sequential-read workload when asked.
fn disk_cmdline(guest: &crate::plan::LinuxGuest, seqread_mib: Option<u32>) -> String {
    let mut c = format!(
        "{} {}",
        guest.cmdline,
        crate::plan::disk_root_params(true, guest.disk_init)
    );
    if let Some(mib) = seqread_mib {
        c = format!("{c} {}", seqread::cmdline_params(mib));
    }
    c
}

fn canonical_name(name: &str) -> Option<&'static str> {
    let name = name.trim();
    RUNTIMES
        .iter()
        .copied()
        .find(|r| *r == name || r.strip_prefix("bootlab-") == Some(name))
}

pub fn run(args: BenchArgs) -> anyhow::Result<u8> {
    if args.name.is_empty() || args.name.contains('/') || args.name == ".." {
        bail!("--name must be a plain folder name, got {:?}", args.name);
    }
    let mut selected = Vec::new();
    for r in &args.runtimes {
        let name = canonical_name(r).with_context(|| {
            format!(
                "unknown runtime {r:?} in --runtimes (known: {})",
                RUNTIMES.join(", ")
            )
        })?;
        if !selected.contains(&name) {
            selected.push(name);
        }
    }
    if let Some(dir) = &args.images {
        if !dir.is_dir() {
            bail!("--images {} is not a folder", dir.display());
        }
    }
    super::check_out_dir("--out-root", &args.out_root)?;
    if let Some(fc) = &args.firecracker {
        super::check_file("--firecracker", fc)?;
    }
    if let Some(elf) = &args.lab_elf {
        super::check_file("--lab-elf", elf)?;
        let mut head = Vec::new();
        std::fs::File::open(elf)
            .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 4096), &mut head))
            .with_context(|| format!("--lab-elf {}", elf.display()))?;
        if let Err(why) = vmm::boot::detect(&head) {
            bail!("--lab-elf {} is not a kernel image: {why}", elf.display());
        }
    }
    let explicit = !selected.is_empty();
    let host = HostFacts::detect();
    if args.seqread.is_some() && host.emulated() {
        bail!(
            "--seqread needs the 64-bit guest-init, which runs on hardware KVM only (this \
             host's KVM is emulated: its Linux guest runs guest-init32); run it in the \
             nested-SVM lane (scripts/hw-lane.sh)"
        );
    }
    check_load(args.load, u32::try_from(host.cpus).unwrap_or(u32::MAX))?;
    let images = args.images.unwrap_or_else(super::images_dir);
    let bin = match args.bootlab {
        Some(b) => b,
        None => std::env::current_exe().context("cannot find the bootlab executable")?,
    };
    let workload = Workload::guest_init(images.join("rootfs"));
    // The VM peers boot the same lab guest our monitor embeds: written next to the
    // report so the report folder holds the exact guest that ran.
    let lab_elf = match args.lab_elf.clone() {
        Some(p) => Some(p),
        None => {
            let dir = args.out_root.join(&args.name);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let p = dir.join("lab.elf");
            std::fs::write(&p, vmm::lab::ELF)
                .with_context(|| format!("cannot write {}", p.display()))?;
            Some(p)
        }
    };

    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SHARED_FIRECRACKER);
    let firecracker = firecracker_binary(
        args.firecracker.clone(),
        std::env::var_os("BOOTLAB_FIRECRACKER").map(PathBuf::from),
        shared.is_file().then_some(shared),
    );
    let linux_guest = crate::plan::LinuxGuest::for_host(host.emulated());
    let linux = LinuxBoot {
        kernel: images.join("vmlinux"),
        initrd: images.join(linux_guest.initrd),
        cmdline: linux_guest.cmdline.to_owned(),
        intel_vendor: linux_guest.cpu_vendor == vmm::CpuVendor::Intel,
        emulated: host.emulated(),
        root_disk: None,
        measures: Vec::new(),
    };
    let disk_cmdline = disk_cmdline(&linux_guest, args.seqread);
    let measures = if args.seqread.is_some() {
        seqread::MEASURES.to_vec()
    } else {
        Vec::new()
    };
    let linux_disk = LinuxBoot {
        root_disk: Some(images.join("rootfs.ext4")),
        cmdline: disk_cmdline.clone(),
        measures: measures.clone(),
        ..linux.clone()
    };
    let make = |name: &str| -> Box<dyn Runner> {
        let vm = |guest| BootlabVm {
            bin: bin.clone(),
            guest,
            kernel_irqchip: false,
            emulated: host.emulated(),
            images: images.clone(),
            root_disk: false,
            cmdline: None,
            measures: Vec::new(),
        };
        match name {
            "bootlab-vm-lab" => Box::new(vm(Guest::Lab)),
            "bootlab-vm-lab-restore" => Box::new(BootlabVmRestore::new(
                bin.clone(),
                Guest::Lab,
                images.clone(),
                host.emulated(),
            )),
            "bootlab-vm-linux-restore" => Box::new(BootlabVmRestore::new(
                bin.clone(),
                Guest::Linux,
                images.clone(),
                host.emulated(),
            )),
            "bootlab-vm-lab-kernel-irqchip" => Box::new(BootlabVm {
                kernel_irqchip: true,
                ..vm(Guest::Lab)
            }),
            "bootlab-vm-linux" => Box::new(vm(Guest::Linux)),
            "bootlab-vm-linux-disk" => Box::new(BootlabVm {
                root_disk: true,
                // The default command line unless a workload is asked for.
                cmdline: args.seqread.map(|_| disk_cmdline.clone()),
                measures: measures.clone(),
                ..vm(Guest::Linux)
            }),
            "bootlab-sandbox" => Box::new(BootlabSandbox {
                bin: bin.clone(),
                workload: workload.clone(),
            }),
            "fork-exec" => Box::new(ForkExec {
                workload: workload.clone(),
            }),
            "sandbox-floor" => Box::new(SandboxFloor::new(workload.clone())),
            "bwrap" => Box::new(Bwrap::new(workload.clone())),
            "bootlab-oci" => Box::new(Oci::bootlab(bin.clone(), workload.clone())),
            "runc" => Box::new(Oci::new(OciFlavor::Runc, workload.clone())),
            "crun" => Box::new(Oci::new(OciFlavor::Crun, workload.clone())),
            "podman+bootlab" | "podman+runc" | "containerd+bootlab" | "containerd+runc" => {
                let engine = if name.starts_with("podman") {
                    Engine::Podman
                } else {
                    Engine::Containerd
                };
                let runtime = if name.ends_with("bootlab") {
                    EngineRuntime::Bootlab
                } else {
                    EngineRuntime::Runc
                };
                Box::new(EngineRow::new(
                    engine,
                    runtime,
                    bin.clone(),
                    workload.clone(),
                ))
            }
            "kvm-floor" => Box::new(KvmFloor::new()),
            "qemu-microvm" => Box::new(QemuMicrovm::new(lab_elf.clone())),
            "qemu-microvm-linux" => Box::new(QemuMicrovm::linux(linux.clone())),
            "qemu-microvm-disk" => Box::new(QemuMicrovm::linux(linux_disk.clone())),
            "qemu-microvm-qboot" => Box::new(QemuFirmware::new(
                Firmware::Qboot,
                FirmwareGuest::Linux(linux.clone()),
            )),
            "qemu-pc-seabios" => Box::new(QemuFirmware::new(
                Firmware::SeaBios,
                FirmwareGuest::Linux(linux.clone()),
            )),
            // The same kernel configuration with the EFI stub, as a bzImage.
            "qemu-q35-ovmf" => Box::new(QemuFirmware::new(
                Firmware::Ovmf,
                FirmwareGuest::Linux(LinuxBoot {
                    kernel: images.join(EFI_KERNEL),
                    ..linux.clone()
                }),
            )),
            "firecracker-linux" => Box::new(Firecracker::linux(firecracker.clone(), linux.clone())),
            "firecracker-linux-disk" => {
                Box::new(Firecracker::linux(firecracker.clone(), linux_disk.clone()))
            }
            "firecracker-lab-restore" => Box::new(FirecrackerRestore::new(
                firecracker.clone(),
                lab_elf.clone(),
            )),
            _ => Box::new(Firecracker::new(firecracker.clone(), lab_elf.clone())),
        }
    };
    let mut entries = Vec::new();
    for name in RUNTIMES {
        if explicit && !selected.contains(&name) {
            continue;
        }
        let mut e = Entry::new(make(name));
        if !explicit && LINUX_ROWS.contains(&name) && host.emulated() {
            e.status = RuntimeStatus::Skipped(
                "emulated KVM host: one Linux boot + init + workload takes one to a few \
                 minutes here (through SeaBIOS about three); name it in --runtimes to \
                 measure it"
                    .into(),
            );
        }
        if !explicit && ENGINE_ROWS.contains(&name) {
            e.status = RuntimeStatus::Skipped(
                "container-engine row: about 0.5-1 s a run, with warm-up and concurrency \
                 batches minutes for the four; name it in --runtimes to measure it"
                    .into(),
            );
        }
        entries.push(e);
    }

    let plan = Plan {
        name: args.name.clone(),
        runs: args.runs,
        warmup: args.warmup,
        concurrency: args.concurrency,
        workload: match args.seqread {
            Some(mib) => format!(
                "{}; root-disk rows ({}): {}",
                workload.argv.join(" "),
                DISK_ROWS.join(", "),
                seqread::cmdline_params(mib)
            ),
            None => workload.argv.join(" "),
        },
        images: images.display().to_string(),
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        load: (args.load > 0).then(|| bench::load::LoadSpec {
            workers: args.load,
            command: vec![
                bin.clone().into_os_string(),
                "load-worker".into(),
                "--parent".into(),
                std::process::id().to_string().into(),
            ],
        }),
    };
    let stop = bench::interrupt::install();
    let results = harness::run(entries, &plan, stop).context("benchmark session")?;
    let dir = args.out_root.join(&args.name);
    let written = bench::report::write_all(&results, &dir)
        .with_context(|| format!("writing the report to {}", dir.display()))?;

    if results.method.interrupted {
        eprintln!("bootlab bench: interrupted; wrote what was measured");
    }
    let report = bench::report::build(&results);
    println!("Verdict\n  {}", report.verdict.sentences().join("\n  "));
    for t in report.tables.iter().filter(|t| {
        t.title == "Runtimes"
            || t.title.starts_with("Medians")
            || t.title.starts_with("Cold vs restored")
            || t.title.starts_with("Quiet vs loaded")
            || t.title.starts_with("Ratios ours / peer, quiet")
    }) {
        println!("{}", t.title);
        println!("  {}", t.header.join(" | "));
        for row in &t.rows {
            println!("  {}", row.join(" | "));
        }
    }
    for p in &written {
        println!("wrote {}", p.display());
    }
    let ran = results
        .runtimes
        .iter()
        .any(|r| r.status == RuntimeStatus::Ran);
    if !ran {
        eprintln!("bootlab bench: no runtime could run here (see the reasons above)");
        return Ok(super::EXIT_ERROR);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_names_every_known_runtime() {
        let cmd = <BenchArgs as clap::Args>::augment_args(clap::Command::new("bench"));
        let help = cmd.term_width(0).render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for r in RUNTIMES {
            assert!(
                help.split([' ', ',', '.', '(']).any(|w| w == r),
                "--help does not name {r}"
            );
        }
    }

    #[test]
    fn firecracker_is_the_flag_then_the_environment_then_the_shared_build() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(firecracker_binary(p("/f"), p("/e"), p("/s")), p("/f"));
        assert_eq!(firecracker_binary(None, p("/e"), p("/s")), p("/e"));
        assert_eq!(firecracker_binary(None, None, p("/s")), p("/s"));
        assert_eq!(firecracker_binary(None, None, None), None);
        // Then PATH, in the runner; with nothing found the row is missing, not an error.
        let mut none = bench::runners::Firecracker::new(None, Some("/r/lab.elf".into()));
        none.bin = None;
        assert!(none.check().unwrap_err().contains("firecracker not found"));
    }

    #[test]
    fn disk_rows_boot_the_root_disk_as_vm_run_does_and_read_it_when_asked() {
        let guest = crate::plan::LinuxGuest::for_host(false);
        assert_eq!(
            disk_cmdline(&guest, None),
            "console=ttyS0 reboot=k panic=-1 root=/dev/vda rootfstype=ext4 ro \
             init=/sbin/guest-init"
        );
        assert!(disk_cmdline(&guest, Some(8))
            .ends_with("init=/sbin/guest-init bootlab.workload=seqread bootlab.args=/dev/vda,8"));
        for row in DISK_ROWS {
            assert!(
                LINUX_ROWS.contains(&row) && RUNTIMES.contains(&row),
                "{row}"
            );
        }
    }

    #[test]
    fn firecracker_holds_the_lab_guest_with_the_guests_own_switch() {
        assert_eq!(bench::runners::LAB_HOLD_SWITCH, vmm::lab::HOLD_SWITCH);
    }
}
