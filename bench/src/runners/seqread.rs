//! guest-init's sequential-read workload (guest-images/init/src/seqread.rs) as the
//! `-disk` rows run it under `bootlab bench --seqread MIB`: the first MIB MiB of
//! /dev/vda, their root disk, in 4 KiB O_DIRECT requests, timed by the guest and
//! reported on its console as `@@bootlab-measure seqread bytes= requests= ns=`.

/// The values every seqread run must report, as the harness keeps them.
pub const BYTES: &str = "seqread.bytes";
pub const NS: &str = "seqread.ns";
pub const MEASURES: [&str; 2] = [BYTES, NS];

/// The device the rows read: the root disk, the only one they have.
pub const DEVICE: &str = "/dev/vda";

/// The kernel parameters that make guest-init run the workload on `mib` MiB.
pub fn cmdline_params(mib: u32) -> String {
    format!("bootlab.workload=seqread bootlab.args={DEVICE},{mib}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_name_the_workload_the_device_and_the_size() {
        assert_eq!(
            cmdline_params(8),
            "bootlab.workload=seqread bootlab.args=/dev/vda,8"
        );
    }
}
