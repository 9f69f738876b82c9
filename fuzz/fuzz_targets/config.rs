//! config.json: parsing, complete validation and the seccomp section, exactly as `create`
//! runs them before touching the filesystem.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = contain::oci::parse_and_validate(std::path::Path::new("config.json"), data);
});
