//! What to run, from the kernel command line (`/proc/cmdline`, in a VM) or from
//! argv (outside a VM).
//!
//! Kernel parameters: `bootlab.workload=NAME_OR_PATH` (default: the built-in
//! `hello`; `seqread` is the other built-in), `bootlab.args=a,b,c` (comma-separated arguments) and
//! `bootlab.exit=reboot|poweroff` (how PID 1 ends the VM; default `reboot`),
//! `bootlab.ip=ADDR/PREFIX` (eth0's IPv4 address, see [`crate::net`]), and
//! the switch `bootlab.snapshot` (announce the snapshot point before the workload), and
//! `bootlab.markers=vsock:PORT` (also send every marker line to host CID 2 port PORT
//! over vsock, a third channel beside the console and the marker port). Values
//! may be double-quoted as the kernel allows (`bootlab.args="a b,c"`). Parsing stops
//! at `--` (what follows belongs to init's argv). The last occurrence of a parameter
//! wins; unknown values fall back to the default instead of failing (PID 1 must not
//! die on a typo).

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use crate::net::Ipv4Cidr;

/// Kernel parameter naming the workload.
pub const WORKLOAD_PARAM: &str = "bootlab.workload";
/// Kernel parameter with the workload's arguments, separated by commas.
pub const ARGS_PARAM: &str = "bootlab.args";
/// Kernel parameter choosing how the VM is ended after the workload.
pub const EXIT_PARAM: &str = "bootlab.exit";
/// Kernel switch: announce the `snapshot` marker right before the workload, where
/// a monitor asked to (`bootlab vm run --snapshot-at snapshot`) saves the machine.
pub const SNAPSHOT_PARAM: &str = "bootlab.snapshot";
/// Kernel parameter with eth0's address: `ADDR/PREFIX`.
pub const IP_PARAM: &str = "bootlab.ip";
/// Kernel parameter naming an extra channel for the markers: `vsock:PORT`.
pub const MARKERS_PARAM: &str = "bootlab.markers";
/// Name of the built-in workload.
pub const HELLO: &str = "hello";

/// The workload guest-init runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// Built in: prints [`crate::console::HELLO_LINE`] and succeeds.
    Hello,
    /// Built in: reads a block device sequentially and prints what it measured
    /// ([`crate::seqread`]; arguments `[DEVICE [MIB]]`).
    SeqRead,
    /// A program: a path, or a name looked up in `PATH`.
    Program(String),
}

impl Workload {
    /// `hello` (or nothing) and `seqread` are built in; anything else is a program.
    pub fn from_name(name: &str) -> Workload {
        match name {
            "" | HELLO => Workload::Hello,
            crate::seqread::NAME => Workload::SeqRead,
            _ => Workload::Program(name.to_owned()),
        }
    }
}

/// How PID 1 ends the VM once the workload is done (after writing the exit port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitMethod {
    /// `reboot(RB_AUTOBOOT)`: with `reboot=k` the kernel resets through the keyboard
    /// controller, which ends the VM under Firecracker and `qemu -no-reboot`.
    #[default]
    Reboot,
    /// `reboot(RB_POWER_OFF)`: needs a power-off path (ACPI); without one the kernel
    /// halts (or, as PID 1 exits, panics).
    PowerOff,
}

/// Everything guest-init needs to know to run one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// What to run.
    pub workload: Workload,
    /// Its arguments (without argv\[0\]).
    pub args: Vec<String>,
    /// How to end the VM (ignored outside a VM).
    pub exit: ExitMethod,
    /// Announce the snapshot point before the workload (in a VM only).
    pub snapshot: bool,
    /// eth0's address, brought up before the workload (in a VM only); a value
    /// that does not parse is ignored.
    pub ip: Option<Ipv4Cidr>,
    /// Also send the marker lines to this vsock port of the host (in a VM only).
    pub markers_vsock_port: Option<u32>,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            workload: Workload::Hello,
            args: Vec::new(),
            exit: ExitMethod::default(),
            snapshot: false,
            ip: None,
            markers_vsock_port: None,
        }
    }
}

/// Splits a kernel command line into parameters the way the kernel does:
/// whitespace separates, double quotes group and are removed.
pub fn split_params(cmdline: &str) -> Vec<String> {
    let mut params = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut have = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                have = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if have {
                    params.push(core::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        params.push(cur);
    }
    params
}

/// Splits `bootlab.args`' value into arguments; empty pieces are dropped.
pub fn split_args(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The run specification a kernel command line asks for.
pub fn parse_cmdline(cmdline: &str) -> RunSpec {
    let mut spec = RunSpec::default();
    for param in split_params(cmdline) {
        if param == "--" {
            break;
        }
        if param == SNAPSHOT_PARAM {
            spec.snapshot = true;
            continue;
        }
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        match key {
            WORKLOAD_PARAM => spec.workload = Workload::from_name(value),
            ARGS_PARAM => spec.args = split_args(value),
            IP_PARAM => spec.ip = Ipv4Cidr::parse(value),
            MARKERS_PARAM => {
                spec.markers_vsock_port = value.strip_prefix("vsock:").and_then(|p| p.parse().ok());
            }
            EXIT_PARAM => {
                spec.exit = match value {
                    "poweroff" => ExitMethod::PowerOff,
                    _ => ExitMethod::Reboot,
                }
            }
            _ => {}
        }
    }
    spec
}

/// The run specification of `guest-init [WORKLOAD [ARGS...]]` (argv without
/// argv\[0\]).
pub fn parse_argv<S: AsRef<str>>(argv: &[S]) -> RunSpec {
    match argv.split_first() {
        None => RunSpec::default(),
        Some((name, rest)) => RunSpec {
            workload: Workload::from_name(name.as_ref()),
            args: rest.iter().map(|a| a.as_ref().to_owned()).collect(),
            exit: ExitMethod::default(),
            snapshot: false,
            ip: None,
            markers_vsock_port: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_over_vsock_name_a_port_and_anything_else_is_ignored() {
        let port = |c: &str| parse_cmdline(c).markers_vsock_port;
        assert_eq!(port("console=ttyS0 bootlab.markers=vsock:52"), Some(52));
        assert_eq!(
            port("bootlab.markers=vsock:52 bootlab.markers=vsock:7"),
            Some(7)
        );
        for c in [
            "",
            "bootlab.markers=vsock:",
            "bootlab.markers=vsock:x",
            "bootlab.markers=tcp:52",
            "bootlab.markers=vsock:4294967296",
            "-- bootlab.markers=vsock:52",
        ] {
            assert_eq!(port(c), None, "{c}");
        }
    }

    #[test]
    fn defaults_to_hello_when_nothing_is_given() {
        let spec = parse_cmdline("console=ttyS0 reboot=k panic=-1\n");
        assert_eq!(spec, RunSpec::default());
        assert_eq!(spec.workload, Workload::Hello);
    }

    #[test]
    fn reads_workload_args_and_exit() {
        let spec = parse_cmdline(
            "console=ttyS0 bootlab.workload=/bin/echo bootlab.args=a,b,,c bootlab.exit=poweroff quiet",
        );
        assert_eq!(spec.workload, Workload::Program("/bin/echo".into()));
        assert_eq!(spec.args, ["a", "b", "c"]);
        assert_eq!(spec.exit, ExitMethod::PowerOff);
        assert!(!spec.snapshot);
        let seq = parse_cmdline("bootlab.workload=seqread bootlab.args=/dev/vda,8");
        assert_eq!(seq.workload, Workload::SeqRead);
        assert_eq!(seq.args, ["/dev/vda", "8"]);
        assert!(parse_cmdline("quiet bootlab.snapshot").snapshot);
        assert!(!parse_cmdline("bootlab.snapshotx bootlab.snapshot=").snapshot);
        assert_eq!(spec.ip, None);
        let ip = parse_cmdline("console=ttyS0 bootlab.ip=10.0.2.15/24")
            .ip
            .unwrap();
        assert_eq!((ip.addr, ip.prefix), ([10, 0, 2, 15], 24));
        assert_eq!(parse_cmdline("bootlab.ip=10.0.2.15").ip, None);
    }

    #[test]
    fn quotes_group_and_last_occurrence_wins() {
        let spec = parse_cmdline(
            "bootlab.workload=x bootlab.args=\"one two,three\" bootlab.workload=\"/bin/my prog\"",
        );
        assert_eq!(spec.workload, Workload::Program("/bin/my prog".into()));
        assert_eq!(spec.args, ["one two", "three"]);
    }

    #[test]
    fn stops_at_double_dash_and_tolerates_junk() {
        let spec =
            parse_cmdline("bootlab.workload=hello bootlab.exit=bogus -- bootlab.workload=/bin/sh");
        assert_eq!(spec.workload, Workload::Hello);
        assert_eq!(spec.exit, ExitMethod::Reboot);
        assert_eq!(parse_cmdline("").workload, Workload::Hello);
        assert_eq!(parse_cmdline("bootlab.workload=").workload, Workload::Hello);
        assert_eq!(parse_cmdline("bootlab.args=").args, Vec::<String>::new());
        // A parameter that merely starts like ours is not ours.
        assert_eq!(
            parse_cmdline("bootlab.workloadx=/bin/sh").workload,
            Workload::Hello
        );
    }

    #[test]
    fn splits_like_the_kernel() {
        assert_eq!(
            split_params("  a=1\tb=\"x y\"  \"c d\" \n"),
            ["a=1", "b=x y", "c d"]
        );
        assert_eq!(split_params("e=\"\""), ["e="]);
        assert!(split_params("   ").is_empty());
    }

    #[test]
    fn argv_names_workload_then_args() {
        assert_eq!(parse_argv::<&str>(&[]), RunSpec::default());
        assert_eq!(parse_argv(&["hello"]).workload, Workload::Hello);
        let spec = parse_argv(&["/bin/echo", "hi", "there"]);
        assert_eq!(spec.workload, Workload::Program("/bin/echo".into()));
        assert_eq!(spec.args, ["hi", "there"]);
    }
}
