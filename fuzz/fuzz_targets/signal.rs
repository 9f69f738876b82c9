//! Signal names and numbers as `kill` takes them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = contain::container::signal::parse(data);
});
