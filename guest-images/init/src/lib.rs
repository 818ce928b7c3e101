//! bootlab's guest init as a library: the pure parts (kernel command line parsing,
//! mode detection, marker and status formatting) live here so that they are unit
//! tested on the host; `sys` wraps the few system calls PID 1 needs. The binary
//! (`main.rs`) only wires them together.

pub mod cmdline;
pub mod console;
pub mod mode;
pub mod sys;
