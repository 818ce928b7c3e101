//! containerd 1.6 drives `bootlab-runc` through its runc shim (`ctr run
//! --runc-binary PATH`): `ctr run --rm` of the guest prints its hello line and its
//! exit status comes back; a detached run, `ctr task exec` (status 3), `ctr task
//! kill`, `ctr task delete`, `ctr container rm`. The same cases with runc as the
//! control.
//!
//! The test starts its own containerd (root, state and sockets under a temporary
//! folder), imports an OCI archive of guest-images/out/rootfs (made with podman:
//! `podman import`, `podman save --format oci-archive`, in a private podman store),
//! and stops containerd and removes everything at the end. Needs root, containerd,
//! ctr, podman and the guest rootfs; skips loudly otherwise (fails with
//! `BOOTLAB_REQUIRE_KVM=1`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use test_support::{need, Need, TempDir};

const IMAGE: &str = "localhost/bootlab-guest:test";

fn guest_rootfs() -> PathBuf {
    std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"))
        .join("rootfs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A containerd of the test's own, stopped and removed on drop.
struct Containerd {
    dir: TempDir,
    daemon: Child,
    /// Prefix of the container IDs: the runc shim's state root is shared by every
    /// containerd on the host, so two tests at once must not use the same IDs.
    tag: &'static str,
}

impl Containerd {
    fn start(tag: &'static str) -> Containerd {
        let dir = TempDir::new("ctd").expect("temp dir");
        let d = dir.path().display().to_string();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/t.sock\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n"
            ),
        )
        .unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("containerd.log")).unwrap())
            .spawn()
            .expect("starting containerd");
        let c = Containerd { dir, daemon, tag };
        let t = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "containerd did not answer: {}",
                std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c.import();
        c
    }

    /// An OCI archive of the guest rootfs, made by a private podman, imported.
    fn import(&self) {
        let pm = self.dir.join("podman");
        let podman = |args: &[&str]| {
            let mut cmd = Command::new("podman");
            cmd.arg("--root")
                .arg(pm.join("root"))
                .arg("--runroot")
                .arg(pm.join("runroot"))
                .arg("--tmpdir")
                .arg(pm.join("tmp"))
                .args(args);
            cmd
        };
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(guest_rootfs())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar");
        let o = podman(&["import", "-", IMAGE])
            .stdin(tar.stdout.take().expect("tar's stdout"))
            .output()
            .unwrap();
        assert!(tar.wait().unwrap().success());
        assert!(o.status.success(), "podman import: {}", text(&o.stderr));
        let archive = self.dir.join("image.tar");
        let o = podman(&["save", "--format", "oci-archive", "-o"])
            .arg(&archive)
            .arg(IMAGE)
            .output()
            .unwrap();
        assert!(o.status.success(), "podman save: {}", text(&o.stderr));
        let _ = podman(&["system", "reset", "--force"]).output();
        let o = self
            .cmd(&["image", "import", "--base-name", "localhost/bootlab-guest"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(o.status.success(), "ctr image import: {}", text(&o.stderr));
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("c.sock"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in ["hello", "status", "detached"] {
            let id = format!("{}-{id}", self.tag);
            let _ = self.ctr(&["task", "kill", "--signal", "KILL", &id]);
            let _ = self.ctr(&["task", "delete", "--force", &id]);
            let _ = self.ctr(&["container", "rm", &id]);
        }
        let _ = self.ctr(&["image", "rm", IMAGE]);
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe { libc::kill(i32::try_from(self.daemon.id()).unwrap_or(0), libc::SIGTERM) };
        let _ = self.daemon.wait();
    }
}

fn ready(test: &str) -> bool {
    let init = guest_rootfs().join("sbin/guest-init");
    need(
        test,
        &[
            Need::Root,
            Need::Tool("containerd"),
            Need::Tool("ctr"),
            Need::Tool("podman"),
            Need::Path(&init, "run `bootlab images build` (guest-images/build.sh)"),
        ],
    )
}

/// The cases with `runtime` as the shim's runc binary.
fn cases(c: &Containerd, runtime: &Path) {
    let r = runtime.display().to_string();
    let id = |name: &str| format!("{}-{name}", c.tag);
    let run = |name: &str, args: &[&str]| {
        c.cmd(&["run", "--rm", "--runc-binary", &r, IMAGE, &id(name)])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run("hello", &["/sbin/guest-init", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{r}: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("hello from bootlab guest-init"),
        "{r}: {}",
        text(&o.stdout)
    );
    let o = run("status", &["/bin/sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{r}: {}", text(&o.stderr));

    let o = c
        .cmd(&[
            "run",
            "-d",
            "--runc-binary",
            &r,
            IMAGE,
            &id("detached"),
            "/bin/sh",
            "-c",
        ])
        .arg("trap 'exit 0' TERM; while :; do sleep 0.05; done")
        .output()
        .unwrap();
    assert!(o.status.success(), "{r}: run -d: {}", text(&o.stderr));
    let detached = id("detached");
    let o = c.ctr(&["task", "ls"]);
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l.starts_with(&detached) && l.contains("RUNNING")),
        "{r}: {}",
        text(&o.stdout)
    );
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &detached,
        "/bin/sh",
        "-c",
        "echo exec-ok; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{r}: exec: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "exec-ok", "{r}");
    let o = c.ctr(&["task", "kill", &detached]);
    assert!(o.status.success(), "{r}: kill: {}", text(&o.stderr));
    let t = Instant::now();
    loop {
        let o = c.ctr(&["task", "ls"]);
        if text(&o.stdout)
            .lines()
            .any(|l| l.starts_with(&detached) && l.contains("STOPPED"))
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{r}: never stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    for op in [
        &["task", "delete", &detached][..],
        &["container", "rm", &detached],
    ] {
        let o = c.ctr(op);
        assert!(o.status.success(), "{r}: {op:?}: {}", text(&o.stderr));
    }
    assert_eq!(text(&c.ctr(&["container", "ls", "-q"]).stdout).trim(), "");
}

#[test]
fn containerd_runs_the_guest_with_runc_as_control() {
    if !ready("containerd with runc") {
        return;
    }
    let Some(runc) = test_support::tool("runc") else {
        test_support::skip("containerd with runc", "runc is not on PATH");
        return;
    };
    cases(&Containerd::start("ctd-runc"), &runc);
}

#[test]
fn containerd_runs_the_guest_with_bootlab_runc() {
    if !ready("containerd with bootlab-runc") {
        return;
    }
    let c = Containerd::start("ctd-bootlab");
    let link = c.dir.join("bootlab-runc");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_bootlab"), &link).unwrap();
    cases(&c, &link);
}
