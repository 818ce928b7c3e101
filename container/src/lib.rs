//! A namespace sandbox (see docs/ARCHITECTURE.md): runs one workload as PID 1 of fresh
//! namespaces over a root filesystem made the root with `pivot_root`, with cgroup
//! limits, a reduced capability set, `no_new_privs` and a default seccomp filter.
//!
//! Laid out like youki's libcontainer, one job per module (docs/ARCHITECTURE.md
//! lists them).
//!
//! Speed is a design goal: one `clone(2)` with every `CLONE_NEW*` flag, posix_spawn
//! style (`CLONE_VM | CLONE_VFORK`, no page-table copy) on the parent's own CPU
//! (`affinity`), the network namespace made off the clone: by a runtime thread in
//! parallel with the child's set-up when a CPU is idle, else by the child after its
//! root filesystem (`netns`), with a short scheduler slice asked for until the
//! workload's execve (`slice`), everything that
//! can be computed (seccomp program, paths, argv) computed before the clone, a
//! parent/child round trip only when the parent must act (custom multi-range id
//! maps), cgroups only when limits or a timeout are asked for.

mod affinity;
pub mod cgroups;
pub mod console;
pub mod devices;
mod error;
pub mod hooks;
pub mod lifecycle;
pub mod namespaces;
mod netns;
pub mod nsjoin;
pub mod oci;
pub mod process;
pub mod rootfs;
pub mod security;
mod slice;
pub mod spec;
mod sys;
pub mod sysctl;

pub use error::{Error, Result};
pub use namespaces::{Namespace, NamespaceSet};
pub use process::{run, ExitStatus, Outcome};
pub use spec::{IdMap, Mount, Resources, SandboxSpec, User};
