//! Mount options of config.json mounts, as the rootfs code parses them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let opts: Vec<String> = data.split(',').map(String::from).collect();
    if let Ok(o) = contain::rootfs::options::parse(&opts) {
        let _ = o.data_string();
    }
});
