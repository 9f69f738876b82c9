//! /proc/self/mountinfo as the runtime parses it: the cgroup hierarchies (v1/v2/hybrid), and
//! the overlay mounted at each mount point the text names (rootfs::overlay).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = contain::cgroups::parse_mountinfo(data);
    for line in data.lines().take(16) {
        if let Some(point) = line.split(' ').nth(4) {
            if let Some(o) = contain::rootfs::overlay::at(data, std::path::Path::new(point)) {
                assert!(!o.lower.is_empty(), "an overlay without lower layers");
                let _ = o.layers();
            }
        }
    }
});
