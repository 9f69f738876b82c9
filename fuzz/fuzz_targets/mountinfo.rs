//! /proc/self/mountinfo as the cgroup code parses it (hierarchies, v1/v2/hybrid).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = contain::cgroups::parse_mountinfo(data);
});
