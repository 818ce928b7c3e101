//! bootlab's guest init as a library: the pure parts (kernel command line parsing,
//! mode detection, marker lines, exec preparation, wait statuses) live here so that
//! they are unit tested on the host; `sys` wraps the few raw system calls PID 1
//! needs. The binary (`main.rs`) only wires them together. The protocol it speaks:
//! docs/ARCHITECTURE.md, "The marker protocol".
//!
//! Builds with std (the default: tests, `cargo build`) and, with
//! `--cfg guest_init_tiny`, without std or libc for the images (guest-images/build.sh);
//! everything here only needs `core` and `alloc`.

#![cfg_attr(guest_init_tiny, no_std)]

extern crate alloc;

pub mod cmdline;
pub mod console;
pub mod exec;
pub mod mode;
pub mod net;
pub mod seqread;
pub mod sys;

/// The marker protocol: the very source file of `timeline::marker` (it only uses
/// `core`), compiled in here so that the libc-free build can use it without
/// linking the std-based `timeline` crate.
#[path = "../../../timeline/src/marker.rs"]
pub mod marker;

/// Workload measurement lines: the very source file of `timeline::measure`, compiled
/// in as [`marker`] is.
#[path = "../../../timeline/src/measure.rs"]
pub mod measure;
