//! config.json's process.landlock section: parsed, validated and planned against kernels of
//! several ABI versions. Never a panic; a required section on a kernel that lacks a right is
//! an error, and a best-effort plan never names a right the kernel lacks.
#![no_main]
use libfuzzer_sys::fuzz_target;

const SPEC: &str = include_str!("../seeds/config/spec.json");

fuzz_target!(|data: &[u8]| {
    let Ok(section) = serde_json::from_slice::<contain::landlock::ConfigLandlock>(data) else {
        return;
    };
    let spec: oci_spec::runtime::Spec = serde_json::from_str(SPEC).expect("seed spec parses");
    let input = contain::landlock::PlanInput {
        derive_from_mounts: true,
        ..Default::default()
    };
    for abi in [0, 1, 4, 7] {
        if let Ok(plan) = contain::landlock::plan(&spec, Some(&section), &input, abi) {
            let known = |k, n: &String| contain::landlock::access_names(k, abi).contains(n);
            for l in &plan.layers {
                use contain::landlock::Kind;
                assert!(l.fs.iter().all(|n| known(Kind::Fs, n)), "{:?} at ABI {abi}", l.fs);
                assert!(l.net.iter().all(|n| known(Kind::Net, n)), "{:?} at ABI {abi}", l.net);
                assert!(l.scopes.iter().all(|n| known(Kind::Scope, n)));
            }
        }
    }
});
