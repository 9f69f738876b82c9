//! linux.seccomp JSON -> (template resolution) -> BPF, differentially: wherever the profile
//! compiles, the program run in the interpreter must give the action the profile means.
#![no_main]
use contain::seccomp::reference::{differential_sampled, Rng};
use contain::seccomp::{compile, Profile, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Profile::from_slice(data) else {
        return;
    };
    let caps = if data.len() % 2 == 0 {
        vec![]
    } else {
        vec!["CAP_SYS_ADMIN".to_string()]
    };
    let Ok(p) = p.resolve(&Target {
        arch: "amd64",
        caps,
        kernel: (6, 18),
    }) else {
        return;
    };
    if compile(&p).is_ok() {
        if let Err(e) = differential_sampled(&p, &mut Rng(data.len() as u64 + 1), 256) {
            panic!("compiled program disagrees with the profile: {e}");
        }
    }
});
