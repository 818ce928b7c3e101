//! runc and crun: an OCI bundle (config.json over the shared rootfs) generated once
//! per session in the scratch dir, then `<runtime> run --bundle B <unique id>` per run.

use super::{version_of, which, RunCtx, Runner, Workload};
use crate::exec::{ConsoleMap, RunSpec};
use serde_json::json;
use std::path::{Path, PathBuf};
use timeline::event;

/// Which OCI runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciFlavor {
    Runc,
    Crun,
}

impl OciFlavor {
    fn name(self) -> &'static str {
        match self {
            OciFlavor::Runc => "runc",
            OciFlavor::Crun => "crun",
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
}

impl Oci {
    pub fn new(flavor: OciFlavor, workload: Workload) -> Self {
        Oci {
            flavor,
            bin: which(flavor.name()),
            workload,
            bundle: None,
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
        Ok(())
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let bin = self.bin.clone().unwrap_or_else(|| self.name().into());
        let bundle = self.bundle.clone().unwrap_or_default();
        let id = format!("bootlab-{}-{}", std::process::id(), ctx.id);
        let mut spec = RunSpec::new(bin, ConsoleMap::Container)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id);
        spec.required = vec![event::EXEC, event::DONE];
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "exec = arrival of the workload's `@@bootlab init-start` line (console), so \
              `sandbox` includes the workload's own execve and start-up"
                .into(),
        ]
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
}
