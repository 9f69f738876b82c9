//! `contain audit` on arbitrary configs: whatever parses and validates is audited under every
//! built-in policy without a panic, and the report is consistent (counts match findings,
//! score within 0..=100, findings sorted worst first).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("config.json");
    let Ok((spec, extra)) = contain::oci::parse_and_validate(path, data) else {
        return;
    };
    let extra = contain::audit::Extra {
        seccomp: extra.seccomp,
        landlock: extra.landlock,
    };
    let host = contain::audit::Host {
        facts: contain::policy::Facts {
            as_root: true,
            rootfs_idmap: Ok(()),
            controllers: vec!["pids".into(), "memory".into()],
            allowed_annotations: Vec::new(),
            pod: None,
            host_joins: Vec::new(),
        },
        landlock_abi: 7,
        microvm: Err("no /dev/kvm".into()),
    };
    for name in ["default", "strict", "runc"] {
        let policy = contain::policy::Policy::builtin(name).expect("built-in policy");
        let r = contain::audit::audit(path, &spec, &extra, &policy, &host);
        let s = &r.summary;
        assert_eq!(s.critical + s.high + s.medium + s.low, r.findings.len());
        assert!(r.score <= 100);
        assert!(r.findings.windows(2).all(|w| w[0].severity >= w[1].severity));
        for f in [contain::audit::Format::Text, contain::audit::Format::Json, contain::audit::Format::Sarif] {
            let _ = contain::audit::render(&r, f, false);
        }
    }
});
