//! podman drives `bootlab-runc` as it drives runc (`podman --runtime PATH`): a local
//! image imported from guest-images/out/rootfs, `podman run --rm IMAGE
//! /sbin/guest-init hello` prints the hello line, and the workload's exit status comes
//! back through conmon and podman; `podman run -d`, `exec` (its status, the
//! container's hostname), `exec -t`, `stop`, `rm`; `podman run -t` (the pty the runtime sends
//! to conmon's console socket, `/dev/pts/0` inside); `--memory` and `--pids-limit`
//! enforced. The same cases run with runc as the control,
//! so a host problem is told apart from ours.
//!
//! podman gets a private storage root, run root and tmpdir under a temporary folder
//! and a containers.conf of its own (CONTAINERS_CONF): root lacks CAP_SYS_RESOURCE
//! on our hosts, so podman's default RLIMIT_NOFILE (1048576) and RLIMIT_NPROC fail
//! for every runtime; `default_ulimits` lowers them. Everything is removed at the end
//! (`podman system reset`, then the folder). Needs root, podman and the guest rootfs;
//! skips loudly otherwise (fails with `BOOTLAB_REQUIRE_KVM=1`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use test_support::{need, Need, TempDir};

/// The image the tests import.
const IMAGE: &str = "localhost/bootlab-guest:test";

fn guest_rootfs() -> PathBuf {
    std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"))
        .join("rootfs")
}

/// A podman with its own storage and configuration, reset and removed on drop.
struct Podman {
    dir: TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = TempDir::new("podman").expect("temp dir");
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n",
        )
        .unwrap();
        let p = Podman { dir };
        let rootfs = guest_rootfs();
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar");
        let o = p
            .cmd(&["import", "-", IMAGE])
            .stdin(tar.stdout.take().expect("tar's stdout"))
            .output()
            .unwrap();
        assert!(tar.wait().unwrap().success(), "tar of {}", rootfs.display());
        assert!(o.status.success(), "podman import: {}", text(&o.stderr));
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        // conmon writes an `oom` file into its working directory when the container
        // was OOM-killed (with runc too): the temporary folder, not the checkout.
        c.current_dir(self.dir.path())
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(args);
        c
    }

    /// `podman --runtime RUNTIME run --rm IMAGE ARGS`.
    fn run(&self, runtime: &Path, args: &[&str]) -> Output {
        self.cmd(&["--runtime"])
            .arg(runtime)
            .args(["run", "--rm", IMAGE])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force"]).output();
        let _ = self.cmd(&["system", "reset", "--force"]).output();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ready(test: &str) -> bool {
    let init = guest_rootfs().join("sbin/guest-init");
    need(
        test,
        &[
            Need::Root,
            Need::Tool("podman"),
            Need::Path(&init, "run `bootlab images build` (guest-images/build.sh)"),
        ],
    )
}

/// The hello run and an exit status through podman with `runtime`.
fn hello_and_status(p: &Podman, runtime: &Path) {
    let o = p.run(runtime, &["/sbin/guest-init", "hello"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}: {}",
        runtime.display(),
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("hello from bootlab guest-init"),
        "{}: {}",
        runtime.display(),
        text(&o.stdout)
    );
    let o = p.run(runtime, &["/bin/sh", "-c", "exit 5"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}: {}",
        runtime.display(),
        text(&o.stderr)
    );
}

/// `podman run -d`, `exec` (status and namespaces), `stop`, `rm` with `runtime`.
fn detached_exec_stop_rm(p: &Podman, runtime: &Path) {
    let r = runtime.display();
    let o = p
        .cmd(&["--runtime"])
        .arg(runtime)
        .args(["run", "-d", IMAGE, "/bin/sh", "-c"])
        .arg("trap 'exit 0' TERM; while :; do sleep 0.05; done")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{r}: run -d: {}", text(&o.stderr));
    let cid = text(&o.stdout).trim().to_owned();
    let o = p
        .cmd(&["--runtime"])
        .arg(runtime)
        .args([
            "exec",
            &cid,
            "/bin/sh",
            "-c",
            "echo exec in $(hostname); exit 4",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{r}: exec: {}", text(&o.stderr));
    // The container's UTS namespace: podman names it after the container's short ID.
    assert_eq!(
        text(&o.stdout).trim(),
        format!("exec in {}", &cid[..12]),
        "{r}"
    );
    // exec -t: a terminal of the container's devpts for the exec'd process.
    let o = p
        .cmd(&["--runtime"])
        .arg(runtime)
        .args(["exec", "-t", &cid, "/bin/sh", "-c"])
        .arg("tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 7")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(7),
        "{r}: exec -t: {}",
        text(&o.stderr)
    );
    assert_eq!(text(&o.stdout), "/dev/pts/0\r\nboth-ttys\r\n", "{r}");
    for op in ["stop", "rm"] {
        let o = p
            .cmd(&["--runtime"])
            .arg(runtime)
            .args([op, &cid])
            .output()
            .unwrap();
        assert!(o.status.success(), "{r}: {op}: {}", text(&o.stderr));
    }
    let o = p.cmd(&["ps", "-a", "-q"]).output().unwrap();
    assert_eq!(text(&o.stdout).trim(), "", "{r}: containers left");
}

/// `podman run -t`: the workload's stdio is a terminal of the container's own devpts.
fn terminal(p: &Podman, runtime: &Path) {
    let o = p
        .cmd(&["--runtime"])
        .arg(runtime)
        .args(["run", "--rm", "-t", IMAGE, "/bin/sh", "-c"])
        .arg("tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 6")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = runtime.display();
    assert_eq!(o.status.code(), Some(6), "{r}: run -t: {}", text(&o.stderr));
    // A terminal ends lines with \r\n.
    assert_eq!(text(&o.stdout), "/dev/pts/0\r\nboth-ttys\r\n", "{r}");
}

/// `--memory` and `--pids-limit` hold: a 96 MiB buffer under a 32 MiB limit is
/// OOM-killed (137), the 11th process under a limit of 10 cannot fork.
fn limits(p: &Podman, runtime: &Path) {
    let r = runtime.display();
    let run = |opts: &[&str], args: &[&str]| {
        p.cmd(&["--runtime"])
            .arg(runtime)
            .args(["run", "--rm"])
            .args(opts)
            .arg(IMAGE)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run(
        &["--memory", "32m"],
        &[
            "/bin/dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=96M",
            "count=1",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(137),
        "{r}: --memory: {}",
        text(&o.stderr)
    );
    let o = run(
        &["--pids-limit", "10"],
        &[
            "/bin/sh",
            "-c",
            "for i in $(seq 30); do sleep 2 & done; echo all-started",
        ],
    );
    assert!(
        !o.status.success(),
        "{r}: --pids-limit: {}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stderr).contains("can't fork"),
        "{r}: {}",
        text(&o.stderr)
    );
    assert!(!text(&o.stdout).contains("all-started"), "{r}");
}

#[test]
fn podman_runs_the_guest_with_runc_as_control() {
    if !ready("podman with runc") {
        return;
    }
    let Some(runc) = test_support::tool("runc") else {
        test_support::skip("podman with runc", "runc is not on PATH");
        return;
    };
    let p = Podman::new();
    hello_and_status(&p, &runc);
    detached_exec_stop_rm(&p, &runc);
    terminal(&p, &runc);
    limits(&p, &runc);
}

#[test]
fn podman_runs_the_guest_with_bootlab_runc() {
    if !ready("podman with bootlab-runc") {
        return;
    }
    let p = Podman::new();
    // Engines take one path to a binary: the link's name selects runc's command line.
    let link = p.dir.join("bootlab-runc");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_bootlab"), &link).unwrap();
    hello_and_status(&p, &link);
    detached_exec_stop_rm(&p, &link);
    terminal(&p, &link);
    limits(&p, &link);
}
