//! `contain learn`'s observations (observations.json, read back from the output directory on
//! every run): any input that parses merges, diffs and becomes a profile without a panic; the
//! profile written re-reads as the same profile, compiles when every name is a known syscall
//! and architecture,
//! and nothing the observations hold is reported as new against themselves or their merge;
//! the learnt Landlock layer is valid and names every directory.
#![no_main]
use contain::learn::Observations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(obs) = serde_json::from_slice::<Observations>(data) else {
        return;
    };
    assert!(obs.new_in(&obs).is_empty());
    let mut merged = obs.clone();
    merged.merge(&obs);
    assert!(merged.new_in(&obs).is_empty());
    // The learnt Landlock layer: every directory (folded) in a rule, and a valid section.
    if !obs.fs.is_empty() {
        let layer = contain::learn::fs::ruleset(&obs.fs);
        layer
            .validate("learnt")
            .expect("a learnt Landlock layer is valid");
        let granted: Vec<_> = layer
            .rules
            .iter()
            .flat_map(|r| &r.path_beneath)
            .flat_map(|r| &r.paths)
            .collect();
        assert!(contain::learn::fs::folded(&obs.fs)
            .keys()
            .all(|d| granted.contains(&d)));
    }
    for runtime in [false, true] {
        let profile = obs.profile(runtime);
        let text = serde_json::to_vec(&profile).expect("a profile serializes");
        let back =
            contain::seccomp::Profile::from_slice(&text).expect("the written profile parses");
        assert_eq!(back, profile);
        let arches =
            profile.architectures.iter().flatten().all(|a| {
                ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"].contains(&a.as_str())
            });
        let known = arches
            && profile.syscalls.iter().flatten().all(|r| {
                r.names
                    .iter()
                    .all(|n| contain::seccomp::Abi::X86_64.number(n).is_some())
            });
        if known {
            contain::seccomp::compile(&profile)
                .expect("a learnt profile of known syscalls compiles");
        }
    }
});
