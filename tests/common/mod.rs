//! The CLI integration tests' helpers: the skip-or-require policy comes from the
//! test-support crate; what is left here needs this package's binary.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub mod netns;

pub use test_support::{is_root, kvm_or_skip, required};

/// The `bootlab` binary under test, without a harness spawn time in its environment.
pub fn bootlab() -> std::process::Command {
    test_support::bootlab!()
}
