//! State files (state.json): a corrupt or hostile one is an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = contain::container::store::parse_state("fuzz", data);
});
