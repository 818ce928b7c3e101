//! cgroup v1 backend: one directory per controller hierarchy
//! (`/sys/fs/cgroup/<controller>/<runtime's cgroup>/bootlab-...`).

use super::{make_dir, own_path, rel, write_value, Cgroup, CGROUP_ROOT};
use crate::spec::Resources;
use crate::{Error, Result};
use std::path::Path;

/// The controllers a sandbox may get a cgroup of.
pub(crate) const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

fn controller_dir(cg: &mut Cgroup, controller: &str, name: &str) -> Result<std::path::PathBuf> {
    let mount = Path::new(CGROUP_ROOT).join(controller);
    if !mount.join("cgroup.procs").exists() {
        return Err(Error::Cgroup(format!(
            "the v1 `{controller}` controller is not mounted at {}",
            mount.display()
        )));
    }
    let parent = mount.join(rel(&own_path(Some(controller))));
    let dir = make_dir(&parent, name)?;
    cg.add_dir(dir.clone())?;
    Ok(dir)
}

/// Creates the directories the limits need and writes the limits. With
/// `need_kill_group` and no limit, a `pids` cgroup is created anyway so the sandbox
/// can be killed as a group.
pub(crate) fn create(
    cg: &mut Cgroup,
    name: &str,
    res: &Resources,
    need_kill_group: bool,
) -> Result<()> {
    if let Some(bytes) = res.memory_bytes {
        let dir = controller_dir(cg, "memory", name)?;
        write_value(&dir, "memory.limit_in_bytes", &bytes.to_string())?;
        // Without swap accounting (or swap) this file does not exist.
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            write_value(&dir, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
        }
        cg.memory_events = Some((dir, "memory.oom_control"));
    }
    if res.pids.is_some() || (need_kill_group && !res.any()) {
        let dir = controller_dir(cg, "pids", name)?;
        if let Some(n) = res.pids {
            write_value(&dir, "pids.max", &n.to_string())?;
        }
    }
    if let Some((quota, period)) = res.cpu_quota {
        let dir = controller_dir(cg, "cpu", name)?;
        write_value(&dir, "cpu.cfs_period_us", &period.to_string())?;
        write_value(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
    }
    Ok(())
}
