//! Policy files, applied: a policy is parsed, applied to config.json (the effective
//! configuration step `create` and the audit share) and turned into a Landlock plan. A
//! malformed policy is an error, never a panic; whatever is accepted yields a plan whose
//! explicit rule paths are absolute and never climb with "..".
#![no_main]
use libfuzzer_sys::fuzz_target;

const SPEC: &str = include_str!("../seeds/config/spec.json");

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = contain::policy::Policy::parse("fuzz", data) else {
        return;
    };
    let spec: oci_spec::runtime::Spec = serde_json::from_str(SPEC).expect("seed spec parses");
    for as_root in [true, false] {
        let facts = contain::policy::Facts {
            as_root,
            rootfs_idmap: Ok(()),
            controllers: vec!["pids".into(), "memory".into()],
            allowed_annotations: vec!["io.contain.userns=host".into()],
            pod: None,
            host_joins: Vec::new(),
        };
        let Ok(applied) = contain::policy::apply(&policy, &spec, &facts) else {
            continue;
        };
        for abi in [0, 3, 7] {
            if let Ok(plan) = contain::landlock::plan(&applied.spec, None, &applied.landlock, abi) {
                for layer in plan.layers.iter().filter(|l| l.name != "mounts") {
                    for g in &layer.paths {
                        assert!(g.path.is_absolute(), "relative rule path {:?}", g.path);
                        assert!(
                            !g.path.components().any(|c| c == std::path::Component::ParentDir),
                            "rule path climbs: {:?}",
                            g.path
                        );
                    }
                }
            }
        }
    }
});
