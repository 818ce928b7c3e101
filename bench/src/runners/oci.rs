//! runc, crun and ours (`bootlab oci`, row bootlab-oci): an OCI bundle (config.json
//! over the shared rootfs) generated once per session in the scratch dir, then
//! `<runtime> run --bundle B <unique id>` per run (create, start, wait, delete).
//! On a hybrid-cgroup host crun runs in a mount namespace where the cgroup2 mount's
//! controller list reads empty (see [`controllers_mask`]).

use super::{version_of, which, RunCtx, Runner, Workload};
use crate::exec::{ConsoleMap, RunSpec};
use serde_json::json;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use timeline::event;

/// The controller list of the cgroup2 mount of a hybrid host (cgroup v1 controllers
/// at /sys/fs/cgroup/*, cgroup2 at /sys/fs/cgroup/unified).
pub const HYBRID_UNIFIED_CONTROLLERS: &str = "/sys/fs/cgroup/unified/cgroup.controllers";

/// Whether `flavor` must run with [`HYBRID_UNIFIED_CONTROLLERS`] masked, given that
/// file's content (`None`: no such file, not a hybrid host). crun 1.8 refuses every
/// container when that list names a controller (`hugetlb` here) that is also mounted
/// as v1; runc does not look at it.
pub fn controllers_mask(flavor: OciFlavor, controllers: Option<&str>) -> bool {
    flavor == OciFlavor::Crun && controllers.is_some_and(|c| !c.trim().is_empty())
}

/// Which OCI runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciFlavor {
    Runc,
    Crun,
    /// `bootlab oci`, our runtime with runc's command line.
    Bootlab,
}

impl OciFlavor {
    fn name(self) -> &'static str {
        match self {
            OciFlavor::Runc => "runc",
            OciFlavor::Crun => "crun",
            OciFlavor::Bootlab => "bootlab-oci",
        }
    }

    /// What comes before runc's command line (`bootlab oci ...`).
    fn prefix(self) -> &'static [&'static str] {
        match self {
            OciFlavor::Bootlab => &["oci"],
            OciFlavor::Runc | OciFlavor::Crun => &[],
        }
    }
}

/// An OCI runtime run over a generated bundle.
#[derive(Debug, Clone)]
pub struct Oci {
    pub flavor: OciFlavor,
    pub bin: Option<PathBuf>,
    pub workload: Workload,
    bundle: Option<PathBuf>,
    /// The namespace with the controller list masked, when this host needs it.
    masked: Option<Arc<OwnedFd>>,
}

impl Oci {
    pub fn new(flavor: OciFlavor, workload: Workload) -> Self {
        Oci {
            flavor,
            bin: which(flavor.name()),
            workload,
            bundle: None,
            masked: None,
        }
    }

    /// Our runtime: the bootlab binary `bin` as `bootlab oci`.
    pub fn bootlab(bin: PathBuf, workload: Workload) -> Self {
        Oci {
            flavor: OciFlavor::Bootlab,
            bin: Some(bin),
            workload,
            bundle: None,
            masked: None,
        }
    }
}

/// The runtime-spec config.json: the rootfs read-only, the same namespaces as
/// `bwrap --unshare-all` (pid, net, ipc, uts, mount, cgroup), /proc and a tmpfs /dev
/// (the runtime adds the default device nodes), no terminal.
pub fn bundle_config(rootfs: &Path, argv: &[String]) -> serde_json::Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": argv,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": { "path": rootfs, "readonly": true },
        "hostname": "bootlab",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ]
        }
    })
}

impl Runner for Oci {
    fn name(&self) -> &str {
        self.flavor.name()
    }

    fn ours(&self) -> bool {
        self.flavor == OciFlavor::Bootlab
    }

    fn check(&self) -> Result<(), String> {
        self.bin.as_ref().ok_or_else(|| {
            format!(
                "{} not found on PATH (Debian package {})",
                self.name(),
                self.name()
            )
        })?;
        self.workload.check()
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let dir = scratch.join(format!("{}-bundle", self.name()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let rootfs = std::fs::canonicalize(&self.workload.rootfs)
            .map_err(|e| format!("{}: {e}", self.workload.rootfs.display()))?;
        let cfg = bundle_config(&rootfs, &self.workload.argv);
        std::fs::write(dir.join("config.json"), cfg.to_string())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        self.bundle = Some(dir);
        let controllers = std::fs::read_to_string(HYBRID_UNIFIED_CONTROLLERS).ok();
        if controllers_mask(self.flavor, controllers.as_deref()) {
            let ns = crate::mountns::with_masked_file(Path::new(HYBRID_UNIFIED_CONTROLLERS))
                .map_err(|e| match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                })?;
            self.masked = Some(Arc::new(ns));
        }
        Ok(())
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let bin = self.bin.clone().unwrap_or_else(|| self.name().into());
        let bundle = self.bundle.clone().unwrap_or_default();
        let id = format!("bootlab-{}-{}", std::process::id(), ctx.id);
        let mut spec = RunSpec::new(bin, ConsoleMap::Container)
            .args(self.flavor.prefix().iter().copied())
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id);
        spec.required = vec![event::EXEC, event::DONE];
        spec.mount_ns = self.masked.clone();
        spec
    }

    fn version(&self) -> Option<String> {
        let mut args = self.flavor.prefix().to_vec();
        args.push("--version");
        version_of(self.bin.as_ref()?, &args)
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![
            "exec = arrival of the workload's `@@bootlab init-start` line (console), so \
              `sandbox` includes the workload's own execve and start-up"
                .into(),
        ];
        if self.masked.is_some() {
            notes.push(format!(
                "hybrid-cgroup host: crun 1.8 refuses any container while \
                 {HYBRID_UNIFIED_CONTROLLERS} lists a controller, so crun runs in a private \
                 mount namespace (made once per session) where that file is /dev/null \
                 bind-mounted; the host is not changed. Each run is made from a harness \
                 thread that entered the namespace before `spawn` is stamped: not counted"
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_has_rootfs_args_and_namespaces() {
        let c = bundle_config(
            Path::new("/r"),
            &["/sbin/guest-init".into(), "hello".into()],
        );
        assert_eq!(c["root"]["path"], "/r");
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["process"]["args"][1], "hello");
        assert_eq!(c["linux"]["namespaces"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn bootlab_oci_is_ours_and_runs_runc_s_command_line_after_oci() {
        let w = Workload::guest_init("/img/rootfs");
        let ours = Oci::bootlab("/b/bootlab".into(), w.clone());
        assert!(ours.ours() && !Oci::new(OciFlavor::Runc, w).ours());
        assert_eq!(ours.name(), "bootlab-oci");
        assert_eq!(OciFlavor::Bootlab.prefix(), ["oci"]);
        assert!(OciFlavor::Runc.prefix().is_empty());
    }

    #[test]
    fn only_crun_on_a_hybrid_host_gets_the_controllers_masked() {
        assert!(controllers_mask(OciFlavor::Crun, Some("hugetlb\n")));
        assert!(!controllers_mask(OciFlavor::Crun, Some("\n")));
        assert!(!controllers_mask(OciFlavor::Crun, None));
        assert!(!controllers_mask(OciFlavor::Runc, Some("hugetlb\n")));
    }
}
