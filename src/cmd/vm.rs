//! `bootlab vm ...`: boot a microVM with our monitor.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use timeline::marker::Marker;
use timeline::{event, step};
use timeline::{EventSource, PhaseModel, VM_MODEL};
use vmm::{ExitReason, KernelSource, SnapshotPoint, SnapshotRequest, VmConfig};

/// Exit codes of `bootlab vm run` beyond the guest's own status.
pub const EXIT_TRIPLE_FAULT: u8 = 80;
pub const EXIT_INTERNAL_ERROR: u8 = 81;
pub const EXIT_FAIL_ENTRY: u8 = 82;
pub const EXIT_KVM_RUN: u8 = 83;
pub const EXIT_TIMEOUT: u8 = 124;

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Boot a kernel (or a built-in guest) and run it to completion.
    #[command(after_help = "\
Exit status: the guest's status when it writes one to the exit port (0x501),
0 when it resets or shuts down, 1 for a bad input or a set-up error,
80 triple fault, 81 KVM internal/emulation error, 82 VM entry failure,
83 KVM_RUN failure, 124 timeout.

The fuzz guest: --guest fuzz --cmdline \"MODE [SEED]\" (SEED decimal, default 1; the same
seed replays the same accesses):
  sweep      a random write and a read-back on every I/O port but 0x501 (exit) and
             0x64 (i8042 reset), then random MMIO (boot-timer page, end of RAM up to
             4 GiB, above 4 GiB); ends with status 42
  hypercall  vmcall/vmmcall with random registers, then status 42
  triple     a triple fault (exit status 80)
  spin       loops forever (end it with --timeout)
  flood      writes the serial port as fast as it can, forever (use --timeout)
  echo       reads 4 bytes of stdin with one rep insb, prints them, status 42
  markers    the done marker on the marker port and the console, forever
  virtio     hostile drivers of the --disk device (looping chains, buffers outside
             memory, bad queue sizes, a jumping index, a notify storm, a reset
             mid-request), each must leave it marked DEVICE_NEEDS_RESET; status 42
  virtio-vsock  hostile drivers of the --vsock device: broken rings must leave it
             marked DEVICE_NEEDS_RESET, broken packets get a RST; a storm and a reset
             mid-stream, then a stream to host port 1234 (PATH_1234); status 42
  virtio-net hostile drivers of the --net card: broken rings must leave it marked
             DEVICE_NEEDS_RESET, frames that cannot go are dropped; a storm and a
             reset mid-traffic, then a frame out; status 42
  rtdisk N   N reads of the --disk device's sector 0, then status 42
  rtport N   N writes to the marker port, then status 42 (beside rtdisk: a benchmark)")]
    Run(RunArgs),
    /// Restore a microVM saved with `vm run --snapshot-at` and run it to completion.
    #[command(after_help = "\
Exit status as for `vm run`: the guest's own status, or 80-83 and 124.

The snapshot folder must not be writable by group or others. Its memory file is
mapped copy-on-write: the same snapshot restores any number of times, also at once.")]
    Restore(super::restore::RestoreArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Guest {
    /// The tiny built-in guest that walks the marker protocol (runs anywhere).
    Lab,
    /// The Linux kernel and initramfs from the guest images.
    Linux,
    /// A hostile built-in guest that attacks the monitor (modes: see below).
    Fuzz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IrqChip {
    /// `split` for the built-in lab guest, `kernel` for every other kernel.
    Auto,
    /// KVM's in-kernel PIC, IO-APIC and PIT.
    Kernel,
    /// Local APICs in KVM, the IO-APIC in the monitor, no PIC and no PIT: a
    /// guest that needs no legacy timer starts and ends faster.
    Split,
}

/// How virtio queue notifications reach the monitor (`--virtio-notify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifyArg {
    /// The notify write exits to the monitor, which serves the queue in the exit
    /// (the fastest single request on our hosts).
    Exit,
    /// KVM_IOEVENTFD: the write stays in the kernel and the monitor's event loop
    /// serves the queue (the vCPU runs on meanwhile).
    Ioeventfd,
}

impl NotifyArg {
    fn mode(self) -> vmm::QueueNotify {
        match self {
            NotifyArg::Exit => vmm::QueueNotify::Exit,
            NotifyArg::Ioeventfd => vmm::QueueNotify::Ioeventfd,
        }
    }
}

/// The CPU vendor the guest sees in CPUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VendorArg {
    /// The host's own vendor (what KVM reports).
    Host,
    /// `GenuineIntel`, whatever the host is.
    Intel,
}

/// A marker to save the machine at (`--snapshot-at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotAt {
    /// Init has started.
    InitStart,
    /// Right before the workload: the guest's dedicated snapshot point.
    Snapshot,
    /// The workload's exec.
    Exec,
    /// When the monitor process gets SIGUSR1 (`kill -USR1 PID`), whatever the
    /// guest is doing.
    Signal,
}

impl SnapshotAt {
    pub fn point(self) -> SnapshotPoint {
        match self {
            SnapshotAt::InitStart => SnapshotPoint::Marker(Marker::InitStart),
            SnapshotAt::Snapshot => SnapshotPoint::Marker(Marker::Snapshot),
            SnapshotAt::Exec => SnapshotPoint::Marker(Marker::Exec),
            SnapshotAt::Signal => SnapshotPoint::Signal,
        }
    }
}

/// Defaults of `vm run`, shared by clap and the argument scanner.
const DEFAULT_MEM_MIB: u64 = 128;
const DEFAULT_VCPUS: u32 = 1;
const DEFAULT_IRQCHIP: IrqChip = IrqChip::Auto;
const DEFAULT_NOTIFY: NotifyArg = NotifyArg::Exit;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kernel image: ELF vmlinux (PVH note or 64-bit entry) or bzImage.
    #[arg(long, value_name = "PATH", conflicts_with = "guest")]
    kernel: Option<PathBuf>,
    /// A built-in guest instead of --kernel.
    #[arg(long, value_enum)]
    guest: Option<Guest>,
    /// Initial ramdisk (cpio, optionally gzip).
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,
    /// Kernel command line (default for --guest linux: one that suits this host's
    /// KVM, hardware or emulated; for --guest fuzz: "MODE [SEED]", default "sweep 1").
    #[arg(long)]
    cmdline: Option<String>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = DEFAULT_MEM_MIB, value_name = "MiB")]
    mem: u64,
    /// Number of vCPUs.
    #[arg(long, default_value_t = DEFAULT_VCPUS)]
    vcpus: u32,
    /// Interrupt controller model.
    #[arg(long, value_enum, default_value_t = DEFAULT_IRQCHIP)]
    irqchip: IrqChip,
    /// CPU vendor shown to the guest (default: intel for --guest linux on an
    /// emulated /dev/kvm, else host).
    #[arg(long, value_enum)]
    cpu_vendor: Option<VendorArg>,
    /// End the VM after this many seconds (exit status 124).
    #[arg(long, value_name = "S")]
    timeout: Option<f64>,
    #[command(flatten)]
    report: super::TimelineArgs,
    #[command(flatten)]
    snapshot: SnapshotArgs,
    /// A raw disk image as a virtio-blk device, read-only unless `,rw` follows
    /// (repeatable; the first is the guest's /dev/vda). With --guest linux and no
    /// --initrd the first disk is the root (ext4, e.g. the images' rootfs.ext4) and
    /// its /sbin/guest-init the init.
    #[arg(long, value_name = "PATH[,ro|,rw]")]
    disk: Vec<String>,
    /// A virtio-vsock device for guest CID `CID` (3 up to 2^32-2) whose host side is
    /// the Unix socket PATH (Firecracker's hybrid vsock): a host program connects to
    /// PATH and writes `CONNECT <port>\n` to reach a guest port; guest connections
    /// to host port P go to the socket `PATH_P`. PATH must not exist; it is
    /// removed when the VM ends.
    #[arg(long, value_name = "CID,PATH")]
    vsock: Option<String>,
    /// A virtio-net card over a tap: `tap` creates one the kernel names
    /// (bootlab0, ...), `tap=NAME` attaches to tap NAME or creates it; a tap
    /// made here is removed when the VM ends. `,ip=ADDR/PREFIX` gives the guest
    /// `bootlab.ip=ADDR/PREFIX` (guest-init brings eth0 up with it). Needs root.
    #[arg(long, value_name = "tap[=NAME][,ip=ADDR/PREFIX]")]
    net: Option<String>,
    /// How the virtio devices take queue notifications.
    #[arg(long, value_enum, default_value_t = DEFAULT_NOTIFY)]
    virtio_notify: NotifyArg,
}

/// A `--vsock` value: the guest's CID and the socket path.
fn parse_vsock(value: &str) -> anyhow::Result<vmm::VsockConfig> {
    let Some((cid, path)) = value.split_once(',') else {
        anyhow::bail!("--vsock `{value}`: expected CID,PATH");
    };
    let cid: u64 = cid
        .parse()
        .map_err(|_| anyhow::anyhow!("--vsock `{value}`: the CID `{cid}` is not a number"))?;
    let guest_cid = vmm::devices::virtio::vsock::guest_cid(cid)
        .map_err(|e| anyhow::anyhow!("--vsock `{value}`: {e}"))?;
    if path.is_empty() {
        anyhow::bail!("--vsock `{value}`: no socket path");
    }
    Ok(vmm::VsockConfig {
        guest_cid,
        path: PathBuf::from(path),
    })
}

/// Checks a vsock socket path before any work: nothing there yet (we would not
/// remove someone else's file), in a folder that exists.
fn check_vsock(vsock: &vmm::VsockConfig) -> anyhow::Result<()> {
    let path = &vsock.path;
    if path.symlink_metadata().is_ok() {
        anyhow::bail!(
            "--vsock: {} exists (a stale socket? remove it first)",
            path.display()
        );
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|d| !d.is_dir()) {
        anyhow::bail!("--vsock: {}: no such folder", dir.display());
    }
    Ok(())
}

/// A `--net` value: the tap (None: the kernel names a new one) and the guest's
/// address, if given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NetArg {
    tap: Option<String>,
    ip: Option<String>,
}

fn parse_net(value: &str) -> anyhow::Result<NetArg> {
    let mut parts = value.split(',');
    let first = parts.next().unwrap_or_default();
    let tap = match first.split_once('=') {
        None if first == "tap" => None,
        Some(("tap", name)) => {
            vmm::tap::check_name(name).map_err(|e| anyhow::anyhow!("--net `{value}`: {e}"))?;
            Some(name.to_owned())
        }
        _ => anyhow::bail!("--net `{value}`: expected tap or tap=NAME first"),
    };
    let mut ip = None;
    for part in parts {
        match part.split_once('=') {
            Some(("ip", addr)) if ip.is_none() => {
                check_ipv4_cidr(addr)
                    .map_err(|why| anyhow::anyhow!("--net `{value}`: ip={addr}: {why}"))?;
                ip = Some(addr.to_owned());
            }
            _ => anyhow::bail!(
                "--net `{value}`: unknown or repeated option `{part}` (expected ip=ADDR/PREFIX)"
            ),
        }
    }
    Ok(NetArg { tap, ip })
}

/// Checks `ADDR/PREFIX`: an IPv4 address and a prefix length of 1 to 32.
fn check_ipv4_cidr(value: &str) -> Result<(), &'static str> {
    let (addr, prefix) = value.split_once('/').ok_or("no /PREFIX")?;
    addr.parse::<std::net::Ipv4Addr>()
        .map_err(|_| "not an IPv4 address")?;
    match prefix.parse::<u8>() {
        Ok(1..=32) => Ok(()),
        _ => Err("the prefix length is not 1 to 32"),
    }
}

/// A `--disk` value: the image and whether the guest may write it.
fn parse_disk(value: &str) -> anyhow::Result<vmm::DiskConfig> {
    let (path, mode) = match value.rsplit_once(',') {
        Some((p, m @ ("ro" | "rw"))) => (p, m),
        _ => (value, "ro"),
    };
    if path.is_empty() {
        anyhow::bail!("--disk `{value}`: no image path");
    }
    Ok(vmm::DiskConfig {
        path: PathBuf::from(path),
        read_only: mode == "ro",
    })
}

/// Checks a disk before any work: a regular file we can open as asked.
fn check_disk(disk: &vmm::DiskConfig) -> anyhow::Result<()> {
    let what = if disk.read_only { "disk" } else { "disk (rw)" };
    super::check_file(what, &disk.path)?;
    disk.open()
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{what} {}: {e}", disk.path.display()))
}

/// `--snapshot-at`, `--snapshot-out` and `--snapshot-continue`: saving the machine
/// (`vm run`), or saving a restored one again (`vm restore`).
#[derive(Debug, Default, Args)]
pub struct SnapshotArgs {
    /// Save the machine when the guest announces this marker (on the marker
    /// port), or on SIGUSR1, then exit 0; restore it with `bootlab vm restore DIR`.
    #[arg(long, value_enum, value_name = "EVENT", requires = "snapshot_out")]
    pub snapshot_at: Option<SnapshotAt>,
    /// The snapshot folder (created with mode 0700 if missing).
    #[arg(long, value_name = "DIR", requires = "snapshot_at")]
    pub snapshot_out: Option<PathBuf>,
    /// Keep the guest running after the snapshot is saved.
    #[arg(long, requires = "snapshot_at")]
    pub snapshot_continue: bool,
}

impl SnapshotArgs {
    /// The three options from the scanner; `None` for a combination clap must
    /// refuse (one of --snapshot-at and --snapshot-out without the other,
    /// --snapshot-continue alone) or an unknown marker.
    pub fn fast(s: &crate::fastargs::Scan<'_>) -> Option<SnapshotArgs> {
        let (at, out) = (s.value("snapshot-at"), s.value("snapshot-out"));
        if at.is_some() != out.is_some() || (s.flag("snapshot-continue") && at.is_none()) {
            return None;
        }
        Some(SnapshotArgs {
            snapshot_at: s.parsed_enum("snapshot-at")?,
            snapshot_out: out.map(PathBuf::from),
            snapshot_continue: s.flag("snapshot-continue"),
        })
    }

    /// Whether a snapshot is asked for.
    pub fn asked(&self) -> bool {
        self.snapshot_at.is_some()
    }

    /// Refuses, before the run, a `--snapshot-out` that could not be written.
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.snapshot_out {
            Some(dir) => super::check_out_dir("--snapshot-out", dir),
            None => Ok(()),
        }
    }

    /// The monitor's request, when a snapshot is asked for.
    pub fn request(&self) -> Option<SnapshotRequest> {
        let (at, dir) = (self.snapshot_at?, self.snapshot_out.as_ref()?);
        Some(SnapshotRequest {
            at: at.point(),
            dir: dir.clone(),
            keep_running: self.snapshot_continue,
        })
    }
}

impl RunArgs {
    /// The options the scanner takes (what clap knows for this command: a test
    /// in src/main.rs checks that none is missing).
    pub const FAST: crate::fastargs::Known<'static> = crate::fastargs::Known {
        flags: &["snapshot-continue"],
        valued: &[
            "snapshot-at",
            "snapshot-out",
            "kernel",
            "guest",
            "initrd",
            "cmdline",
            "mem",
            "vcpus",
            "irqchip",
            "cpu-vendor",
            "timeout",
            "timeline",
            "timeline-out",
            "disk",
            "vsock",
            "net",
            "virtio-notify",
        ],
        repeatable: &["disk"],
    };

    /// These arguments (what follows `run`) scanned without clap, or `None` to leave
    /// them to clap (see [`crate::fastargs`]).
    pub fn fast(args: &[std::ffi::OsString]) -> Option<RunArgs> {
        let s = crate::fastargs::scan(args, &Self::FAST)?;
        if !s.rest.is_empty() || (s.value("kernel").is_some() && s.value("guest").is_some()) {
            return None;
        }
        Some(RunArgs {
            kernel: s.value("kernel").map(PathBuf::from),
            guest: s.parsed_enum("guest")?,
            initrd: s.value("initrd").map(PathBuf::from),
            cmdline: s.value("cmdline").map(str::to_owned),
            mem: s.parsed("mem")?.unwrap_or(DEFAULT_MEM_MIB),
            vcpus: s.parsed("vcpus")?.unwrap_or(DEFAULT_VCPUS),
            irqchip: s.parsed_enum("irqchip")?.unwrap_or(DEFAULT_IRQCHIP),
            cpu_vendor: s.parsed_enum("cpu-vendor")?,
            timeout: s.parsed("timeout")?,
            report: super::TimelineArgs::fast(&s)?,
            snapshot: SnapshotArgs::fast(&s)?,
            disk: s.values("disk"),
            vsock: s.value("vsock").map(str::to_owned),
            net: s.value("net").map(str::to_owned),
            virtio_notify: s.parsed_enum("virtio-notify")?.unwrap_or(DEFAULT_NOTIFY),
        })
    }
}

pub fn run(cmd: VmCommand) -> anyhow::Result<u8> {
    match cmd {
        VmCommand::Run(args) => run_vm(args),
        VmCommand::Restore(args) => super::restore::run(args),
    }
}

fn run_vm(args: RunArgs) -> anyhow::Result<u8> {
    let spawn_ns = timeline::clock::spawn_ns_from_env().unwrap_or_else(timeline::now_ns);
    let disks = args
        .disk
        .iter()
        .map(|d| parse_disk(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let vsock = args.vsock.as_deref().map(parse_vsock).transpose()?;
    let net = args.net.as_deref().map(parse_net).transpose()?;
    let plan = crate::plan::vm(
        &crate::plan::VmChoice {
            guest: args.guest,
            kernel: args.kernel.as_deref(),
            initrd: args.initrd.as_deref(),
            cmdline: args.cmdline.as_deref(),
            irqchip: args.irqchip,
            cpu_vendor: args.cpu_vendor,
            snapshot_at: args.snapshot.snapshot_at,
            first_disk_read_only: disks.first().map(|d| d.read_only),
            net_ip: net.as_ref().and_then(|n| n.ip.as_deref()),
        },
        &crate::plan::ThisHost,
    )?;
    if let Some(files) = &plan.linux {
        let not_built = |p: &std::path::Path| {
            anyhow::anyhow!(
                "the linux guest is not built: {} is missing (run `bootlab images build` or guest-images/build.sh)",
                p.display()
            )
        };
        if !files.vmlinux.exists() {
            return Err(not_built(&files.vmlinux));
        }
        super::check_file("linux guest kernel", &files.vmlinux)?;
        if let Some(i) = files.default_initrd.as_deref().filter(|i| !i.is_file()) {
            return Err(not_built(i));
        }
    }
    if let KernelSource::File(k) = &plan.kernel {
        super::check_file("kernel", k)?;
    }
    if let Some(i) = &plan.initrd {
        super::check_file("initrd", i)?;
    }
    args.report.check()?;
    args.snapshot.check()?;
    let timeout = args
        .timeout
        .map(|s| super::timeout("--timeout", s))
        .transpose()?;
    for d in &disks {
        check_disk(d)?;
    }
    if !disks.is_empty() && args.snapshot.asked() {
        anyhow::bail!("--snapshot-at: a machine with --disk cannot be saved yet");
    }
    if net.is_some() && args.snapshot.asked() {
        anyhow::bail!("--snapshot-at: a machine with --net cannot be saved yet");
    }
    let kernel_named_tap = net.as_ref().is_some_and(|n| n.tap.is_none());
    let net = net.map(|n| {
        vmm::DeviceSpec::Net(vmm::NetConfig {
            tap: n.tap,
            mac: vmm::NetConfig::mac_for(std::process::id()),
        })
    });
    if let Some(v) = &vsock {
        if args.snapshot.asked() {
            anyhow::bail!("--snapshot-at: a machine with --vsock cannot be saved yet");
        }
        check_vsock(v)?;
    }
    let devices = disks
        .into_iter()
        .map(vmm::DeviceSpec::Block)
        .chain(vsock.map(vmm::DeviceSpec::Vsock))
        .chain(net)
        .collect();
    let config = VmConfig {
        kernel: plan.kernel,
        initrd: plan.initrd,
        cmdline: plan.cmdline,
        mem_mib: args.mem,
        vcpus: args.vcpus,
        irqchip: plan.irqchip,
        timeout,
        console: Box::new(RawStdout),
        console_input: Some(0),
        name: plan.name.into(),
        spawn_ns,
        cpu_vendor: plan.cpu_vendor,
        devices,
        virtio_notify: args.virtio_notify.mode(),
    };
    let mut vm = vmm::Vm::build(config).context("cannot run the microVM")?;
    if kernel_named_tap {
        for tap in vm.taps() {
            eprintln!("bootlab: tap {tap} (removed when the VM ends)");
        }
    }
    if let Some(r) = args.snapshot.request() {
        vm.snapshot_at(r);
    }
    let outcome = vm.run().context("cannot run the microVM")?;
    if let (Some(stats), Some(dir)) = (&outcome.snapshot, &args.snapshot.snapshot_out) {
        if std::env::var_os("BOOTLAB_DEBUG").is_some() {
            eprintln!(
                "bootlab: snapshot in {}: {} memory pages, {} bytes of state",
                dir.display(),
                stats.pages,
                stats.state_bytes
            );
        }
    } else if args.snapshot.asked() {
        eprintln!("bootlab: the run ended before its snapshot point; nothing saved");
    }
    finish(outcome, step::VMM_MAIN, &VM_MODEL, &args.report)
}

/// The exit status for how a VM ended.
pub fn exit_code(reason: &ExitReason) -> u8 {
    match reason {
        ExitReason::Reset | ExitReason::Halted | ExitReason::Snapshotted => 0,
        ExitReason::GuestExit(s) => *s,
        ExitReason::TripleFault => EXIT_TRIPLE_FAULT,
        ExitReason::InternalError { .. } => EXIT_INTERNAL_ERROR,
        ExitReason::FailEntry(_) => EXIT_FAIL_ENTRY,
        ExitReason::RunError(_) => EXIT_KVM_RUN,
        ExitReason::Timeout => EXIT_TIMEOUT,
    }
}

/// Stamps the end of a run, reports it (`--timeline`, `--timeline-out`, an error
/// line for an abnormal end) and returns its exit status.
pub fn finish(
    outcome: vmm::VmOutcome,
    main_step: &str,
    model: &PhaseModel,
    report: &super::TimelineArgs,
) -> anyhow::Result<u8> {
    let mut timeline = outcome.timeline;
    super::push_main_entry(&mut timeline, main_step);
    timeline.push(event::EXIT, timeline::now_ns(), EventSource::Runtime);
    let code = exit_code(&outcome.reason);
    timeline.exit_code = Some(code as i32);
    if !matches!(
        outcome.reason,
        ExitReason::Reset | ExitReason::Halted | ExitReason::GuestExit(_) | ExitReason::Snapshotted
    ) {
        timeline.error = Some(outcome.reason.to_string());
        eprintln!("bootlab: vm ended: {}", outcome.reason);
    }
    if outcome.unhandled_pio + outcome.unhandled_mmio > 0 {
        log_unhandled(outcome.unhandled_pio, outcome.unhandled_mmio);
    }
    report.report(&timeline, model)?;
    Ok(code)
}

fn log_unhandled(pio: u64, mmio: u64) {
    if std::env::var_os("BOOTLAB_DEBUG").is_some() {
        eprintln!("bootlab: {pio} unhandled port and {mmio} unhandled MMIO accesses");
    }
}

/// Unbuffered stdout for the serial console, so guest output appears as it is made.
pub struct RawStdout;

impl std::io::Write for RawStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = std::io::stdout().as_raw_fd();
        // SAFETY: writing from a valid, live buffer to the process's stdout fd.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n.unsigned_abs())
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_values_name_a_tap_and_maybe_an_address() {
        let net = |tap: Option<&str>, ip: Option<&str>| NetArg {
            tap: tap.map(str::to_owned),
            ip: ip.map(str::to_owned),
        };
        assert_eq!(parse_net("tap").unwrap(), net(None, None));
        assert_eq!(parse_net("tap=tap0").unwrap(), net(Some("tap0"), None));
        assert_eq!(
            parse_net("tap=t1,ip=10.0.2.15/24").unwrap(),
            net(Some("t1"), Some("10.0.2.15/24"))
        );
        assert_eq!(
            parse_net("tap,ip=192.168.1.2/32").unwrap(),
            net(None, Some("192.168.1.2/32"))
        );
        for (bad, why) in [
            ("user", "expected tap"),
            ("tapx", "expected tap"),
            ("tap=", "empty"),
            ("tap=abcdefghijklmnop", "longer than 15 bytes"),
            ("tap,ip=10.0.2.15", "no /PREFIX"),
            ("tap,ip=10.0.2/24", "not an IPv4 address"),
            ("tap,ip=10.0.2.15/33", "prefix length"),
            ("tap,ip=10.0.2.15/0", "prefix length"),
            ("tap,ip=1.2.3.4/8,ip=1.2.3.5/8", "repeated"),
            ("tap,mtu=9000", "unknown"),
        ] {
            let e = parse_net(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.starts_with("--net"), "{bad}: {e}");
        }
    }
}
