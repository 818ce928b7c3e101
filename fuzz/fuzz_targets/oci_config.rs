//! Fuzz target: arbitrary text as an OCI `config.json`, parsed by
//! `container::oci::parse`. It must return a spec or a one-line reason, never panic;
//! a spec it returns has arguments, an absolute cwd and a rootfs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match container::oci::parse(text, Path::new("/bundle")) {
        Ok(spec) => {
            assert!(!spec.args.is_empty());
            assert!(spec.cwd.is_absolute());
            assert!(spec.rootfs.is_some_and(|r| r.is_absolute()));
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
