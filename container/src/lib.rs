//! A namespace sandbox: namespaces, pivot_root rootfs, cgroups, security (see shared/DESIGN.md).
