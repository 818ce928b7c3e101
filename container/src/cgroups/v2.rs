//! cgroup v2 backend: one directory in the unified hierarchy, controllers enabled in
//! the parent's `cgroup.subtree_control` when needed.

use super::{make_dir, own_path, rel, write_value, Cgroup};
use crate::spec::Resources;
use crate::{Error, Result};
use std::path::Path;

/// Creates the cgroup below the runtime's own and writes the limits.
pub(crate) fn create(cg: &mut Cgroup, root: &Path, name: &str, res: &Resources) -> Result<()> {
    let parent = root.join(rel(&own_path(None)));
    let mut needed = Vec::new();
    if res.memory_bytes.is_some() {
        needed.push("memory");
    }
    if res.pids.is_some() {
        needed.push("pids");
    }
    if res.cpu_quota.is_some() {
        needed.push("cpu");
    }
    if !needed.is_empty() {
        let enabled =
            std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if !missing.is_empty() {
            let req: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
            write_value(&parent, "cgroup.subtree_control", &req.join(" ")).map_err(|e| {
                Error::Cgroup(format!(
                    "controllers {missing:?} are not available below {} ({e}); run from a delegated cgroup",
                    parent.display()
                ))
            })?;
        }
    }
    let dir = make_dir(&parent, name)?;
    cg.add_dir(dir.clone())?;
    cg.kill_file = Some(dir.join("cgroup.kill"));
    if let Some(bytes) = res.memory_bytes {
        write_value(&dir, "memory.max", &bytes.to_string())?;
        if dir.join("memory.swap.max").exists() {
            write_value(&dir, "memory.swap.max", "0")?;
        }
        cg.memory_events = Some((dir.clone(), "memory.events"));
    }
    if let Some(n) = res.pids {
        write_value(&dir, "pids.max", &n.to_string())?;
    }
    if let Some((quota, period)) = res.cpu_quota {
        write_value(&dir, "cpu.max", &format!("{quota} {period}"))?;
    }
    Ok(())
}
