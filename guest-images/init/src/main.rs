//! bootlab's guest init: PID 1 in a microVM, or a plain workload launcher.
fn main() {}
