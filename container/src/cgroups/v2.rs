//! cgroup v2 backend: one directory in the unified hierarchy, controllers enabled in
//! the parent's `cgroup.subtree_control` when needed.

use super::{own_path, rel, write_value, Cgroup, Place};
use crate::spec::Resources;
use crate::{Error, Result};
use std::path::Path;

/// Creates the cgroup below the runtime's own and writes the limits.
pub(crate) fn create(cg: &mut Cgroup, root: &Path, name: &Place, res: &Resources) -> Result<()> {
    let mut needed = Vec::new();
    if res.memory_bytes.is_some() || res.memory_reservation.is_some() || res.memory_swap.is_some() {
        needed.push("memory");
    }
    if res.pids.is_some() {
        needed.push("pids");
    }
    if res.cpu_quota.is_some() || res.cpu_shares.is_some() {
        needed.push("cpu");
    }
    if res.cpuset() {
        needed.push("cpuset");
    }
    // Every cgroup between the hierarchy's root (or the runtime's own cgroup) and
    // ours must pass the controllers down.
    let own = root.join(rel(&own_path(None)));
    let mut chain = vec![own.clone()];
    if let Place::At(p) = name {
        let base = if p.is_absolute() {
            root.to_path_buf()
        } else {
            own
        };
        let rel_parent = p
            .parent()
            .map(|q| q.to_string_lossy().trim_start_matches('/').to_owned());
        chain = vec![base.clone()];
        let mut cur = base;
        for c in Path::new(rel_parent.as_deref().unwrap_or("")).components() {
            cur.push(c);
            chain.push(cur.clone());
        }
    }
    for parent in &chain {
        if !parent.exists() {
            std::fs::create_dir(parent)
                .map_err(|e| Error::Cgroup(format!("cannot create {}: {e}", parent.display())))?;
        }
        enable(parent, &needed)?;
    }
    let dir = name.make(root, None)?;
    cg.add_dir(dir.clone())?;
    cg.kill_file = Some(dir.join("cgroup.kill"));
    if let Some(bytes) = res.memory_bytes {
        write_value(&dir, "memory.max", &bytes.to_string())?;
        if dir.join("memory.swap.max").exists() {
            // OCI's swap is memory + swap; cgroup2 limits the swap alone.
            let swap = match res.memory_swap {
                None => "0".to_owned(),
                Some(None) => "max".to_owned(),
                Some(Some(total)) => total.saturating_sub(bytes).to_string(),
            };
            write_value(&dir, "memory.swap.max", &swap)?;
        }
        cg.memory_events = Some((dir.clone(), "memory.events"));
    }
    if let Some(r) = res.memory_reservation {
        write_value(&dir, "memory.low", &r.to_string())?;
    }
    if let Some(n) = res.pids {
        write_value(&dir, "pids.max", &n.to_string())?;
    }
    if let Some((quota, period)) = res.cpu_quota {
        write_value(&dir, "cpu.max", &format!("{quota} {period}"))?;
    }
    if let Some(shares) = res.cpu_shares {
        write_value(&dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
    }
    if let Some(c) = &res.cpuset_cpus {
        write_value(&dir, "cpuset.cpus", c)?;
    }
    if let Some(m) = &res.cpuset_mems {
        write_value(&dir, "cpuset.mems", m)?;
    }
    Ok(())
}

/// cgroup v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000), the mapping
/// runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9_999 / 262_142
}

/// Enables the `needed` controllers in `parent`'s `cgroup.subtree_control`.
fn enable(parent: &Path, needed: &[&str]) -> Result<()> {
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
            write_value(parent, "cgroup.subtree_control", &req.join(" ")).map_err(|e| {
                Error::Cgroup(format!(
                    "controllers {missing:?} are not available below {} ({e}); run from a delegated cgroup",
                    parent.display()
                ))
            })?;
        }
    }
    Ok(())
}
