//! cgroup v1 backend: one directory per controller hierarchy
//! (`/sys/fs/cgroup/<controller>/<runtime's cgroup>/bootlab-...`).

use super::{write_value, Cgroup, Place, CGROUP_ROOT};
use crate::spec::Resources;
use crate::{Error, Result};
use std::path::Path;

/// The controllers a sandbox may get a cgroup of.
pub(crate) const CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuset", "devices"];

fn controller_dir(cg: &mut Cgroup, controller: &str, name: &Place) -> Result<std::path::PathBuf> {
    let mount = Path::new(CGROUP_ROOT).join(controller);
    if !mount.join("cgroup.procs").exists() {
        return Err(Error::Cgroup(format!(
            "the v1 `{controller}` controller is not mounted at {}",
            mount.display()
        )));
    }
    let dir = name.make(&mount, Some(controller))?;
    cg.add_dir(dir.clone())?;
    Ok(dir)
}

/// Creates the directories the limits need and writes the limits. With
/// `need_kill_group` and no limit, a `pids` cgroup is created anyway so the sandbox
/// can be killed as a group.
pub(crate) fn create(
    cg: &mut Cgroup,
    name: &Place,
    res: &Resources,
    need_kill_group: bool,
) -> Result<()> {
    let placed = matches!(name, Place::At(_));
    if res.memory_bytes.is_some() || res.memory_reservation.is_some() || res.memory_swap.is_some() {
        let dir = controller_dir(cg, "memory", name)?;
        if let Some(bytes) = res.memory_bytes {
            write_value(&dir, "memory.limit_in_bytes", &bytes.to_string())?;
            // Without swap accounting (or swap) this file does not exist. No swap
            // beside the limit unless `swap` says otherwise (-1: unlimited).
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                let memsw = match res.memory_swap {
                    None => Some(bytes),
                    Some(None) => None,
                    Some(Some(total)) => Some(total),
                };
                if let Some(v) = memsw {
                    write_value(&dir, "memory.memsw.limit_in_bytes", &v.to_string())?;
                }
            }
        }
        if let Some(r) = res.memory_reservation {
            write_value(&dir, "memory.soft_limit_in_bytes", &r.to_string())?;
        }
        cg.memory_events = Some((dir, "memory.oom_control"));
    }
    // A bundle's cgroupsPath always gets a pids cgroup: the engine finds the
    // container there, and it can be killed as a group.
    if res.pids.is_some() || placed || (need_kill_group && !res.any()) {
        let dir = controller_dir(cg, "pids", name)?;
        if let Some(n) = res.pids {
            write_value(&dir, "pids.max", &n.to_string())?;
        }
    }
    if res.cpu_quota.is_some() || res.cpu_shares.is_some() {
        let dir = controller_dir(cg, "cpu", name)?;
        if let Some((quota, period)) = res.cpu_quota {
            write_value(&dir, "cpu.cfs_period_us", &period.to_string())?;
            write_value(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let Some(shares) = res.cpu_shares {
            write_value(&dir, "cpu.shares", &shares.to_string())?;
        }
    }
    if res.cpuset() {
        let dir = controller_dir(cg, "cpuset", name)?;
        if let Place::Own(_) = name {
            super::inherit_cpuset(&dir)?;
        }
        if let Some(c) = &res.cpuset_cpus {
            write_value(&dir, "cpuset.cpus", c)?;
        }
        if let Some(m) = &res.cpuset_mems {
            write_value(&dir, "cpuset.mems", m)?;
        }
    }
    if !res.devices.is_empty() {
        let dir = controller_dir(cg, "devices", name)?;
        for (file, line) in super::devices::v1_writes(&res.devices) {
            write_value(&dir, file, &line)?;
        }
    }
    Ok(())
}
