use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;

const BUNDLES: [&str; 5] = [
    "privileged-like",
    "docker-like",
    "spec-default",
    "strict",
    "hostile",
];

fn host() -> Host {
    Host {
        facts: policy::Facts {
            as_root: true,
            rootfs_idmap: Ok(()),
            controllers: vec!["pids".into(), "memory".into()],
            allowed_annotations: Vec::new(),
            pod: None,
            host_joins: Vec::new(),
        },
        landlock_abi: 7,
        microvm: Err("no /dev/kvm (the audit tests' host)".into()),
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audit")
}

fn report(bundle: &str, policy: &str) -> Report {
    let rel = format!("tests/audit/{bundle}.json");
    let data = std::fs::read(dir().join(format!("{bundle}.json"))).unwrap();
    let (spec, extra) = crate::oci::parse_and_validate(Path::new(&rel), &data).unwrap();
    let extra = Extra {
        seccomp: extra.seccomp,
        landlock: extra.landlock,
    };
    audit(
        Path::new(&rel),
        &spec,
        &extra,
        &Policy::builtin(policy).unwrap(),
        &host(),
    )
}

fn ids(r: &Report) -> Vec<&'static str> {
    let mut v: Vec<&str> = r.findings.iter().map(|f| f.id).collect();
    v.sort();
    v
}

#[test]
fn exact_findings_per_bundle_and_policy() {
    let want: [(&str, &str, &[&str]); 8] = [
        (
            "privileged-like",
            "default",
            &[
                "CA-CAP-001",
                "CA-CAP-002",
                "CA-DEV-001",
                "CA-HOOK-001",
                "CA-LANDLOCK-002",
                "CA-MOUNT-001",
                "CA-MOUNT-002",
                "CA-MOUNT-003",
                "CA-NS-001",
                "CA-NS-002",
                "CA-PRIV-001",
                "CA-PRIV-002",
                "CA-RES-001",
                "CA-RES-003",
                "CA-ROOTFS-001",
                "CA-SECCOMP-002",
                "CA-SYSCTL-001",
            ],
        ),
        (
            "privileged-like",
            "runc",
            &[
                "CA-CAP-001",
                "CA-CAP-002",
                "CA-DEV-001",
                "CA-HOOK-001",
                "CA-LANDLOCK-001",
                "CA-MOUNT-001",
                "CA-MOUNT-002",
                "CA-MOUNT-003",
                "CA-NS-001",
                "CA-NS-002",
                "CA-PRIV-001",
                "CA-PRIV-002",
                "CA-RES-001",
                "CA-RES-002",
                "CA-RES-003",
                "CA-ROOTFS-001",
                "CA-SECCOMP-002",
                "CA-SYSCTL-001",
                "CA-USERNS-001",
            ],
        ),
        (
            "docker-like",
            "default",
            &[
                "CA-LANDLOCK-002",
                "CA-PRIV-002",
                "CA-RES-003",
                "CA-ROOTFS-001",
            ],
        ),
        (
            "docker-like",
            "runc",
            &[
                "CA-LANDLOCK-001",
                "CA-PRIV-002",
                "CA-RES-003",
                "CA-ROOTFS-001",
                "CA-SECCOMP-001",
                "CA-USERNS-001",
            ],
        ),
        (
            "spec-default",
            "default",
            &["CA-LANDLOCK-002", "CA-PRIV-002", "CA-RES-001", "CA-RES-003"],
        ),
        (
            "spec-default",
            "runc",
            &[
                "CA-LANDLOCK-001",
                "CA-PRIV-002",
                "CA-RES-001",
                "CA-RES-002",
                "CA-RES-003",
                "CA-SECCOMP-001",
                "CA-USERNS-001",
            ],
        ),
        ("strict", "strict", &["CA-LANDLOCK-002", "CA-VM-002"]),
        (
            "strict",
            "runc",
            &["CA-LANDLOCK-001", "CA-SECCOMP-001", "CA-USERNS-001"],
        ),
    ];
    for (bundle, policy, expected) in want {
        let r = report(bundle, policy);
        assert_eq!(ids(&r), expected, "{bundle} under {policy}");
    }
}

#[test]
fn every_rule_fires_somewhere_and_not_everywhere() {
    let mut reports = Vec::new();
    for b in BUNDLES {
        for p in ["default", "runc", "strict"] {
            reports.push(ids(&report(b, p)).into_iter().collect::<BTreeSet<_>>());
        }
    }
    for rule in RULES {
        assert!(
            reports.iter().any(|r| r.contains(rule.id)),
            "{} never fires",
            rule.id
        );
        assert!(
            reports.iter().any(|r| !r.contains(rule.id)),
            "{} always fires",
            rule.id
        );
    }
}

#[test]
fn strict_refusal_is_reported() {
    let r = report("privileged-like", "strict");
    let why = r.refused.as_deref().unwrap_or("");
    assert!(why.contains("process.capabilities"), "{why}");
    // Audited as written: the config's own weaknesses are all there.
    assert!(ids(&r).contains(&"CA-USERNS-001"));
}

#[test]
fn score_and_pod_security_order_the_bundles() {
    let p = report("privileged-like", "default");
    let d = report("docker-like", "default");
    let s = report("strict", "strict");
    assert!(
        p.score < d.score && d.score < s.score,
        "{} {} {}",
        p.score,
        d.score,
        s.score
    );
    assert_eq!(p.pod_security, "none");
    assert_eq!(d.pod_security, "baseline");
    assert_eq!(s.pod_security, "restricted");
}

#[test]
fn golden_outputs() {
    let r = report("privileged-like", "default");
    for (format, ext) in [
        (Format::Text, "txt"),
        (Format::Json, "json"),
        (Format::Sarif, "sarif"),
    ] {
        let got = render(&r, format, false);
        let path = dir().join(format!("golden/privileged-like.default.{ext}"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(
            got,
            want,
            "{} differs (UPDATE_GOLDEN=1 rewrites it)",
            path.display()
        );
    }
    let sarif: serde_json::Value = serde_json::from_str(&render(&r, Format::Sarif, false)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["runs"][0]["results"].as_array().unwrap().len(),
        r.findings.len()
    );
}

#[test]
fn guest_images_named_by_the_bundle_are_flagged() {
    let rel = "tests/audit/spec-default.json";
    let data = std::fs::read(dir().join("spec-default.json")).unwrap();
    let (mut spec, extra) = crate::oci::parse_and_validate(Path::new(rel), &data).unwrap();
    let extra = Extra {
        seccomp: extra.seccomp,
        landlock: extra.landlock,
    };
    let mut ann = std::collections::HashMap::new();
    ann.insert("io.contain.isolation".to_string(), "microvm".to_string());
    ann.insert(
        "io.contain.microvm.kernel".to_string(),
        "/etc/shadow".to_string(),
    );
    spec.set_annotations(Some(ann));
    let r = audit(
        Path::new(rel),
        &spec,
        &extra,
        &Policy::builtin("default").unwrap(),
        &host(),
    );
    let f = r.findings.iter().find(|f| f.id == "CA-VM-003");
    assert!(
        f.is_some_and(|f| f.detail.contains("kernel /etc/shadow")),
        "{:?}",
        r.findings.iter().map(|f| f.id).collect::<Vec<_>>()
    );
}

#[test]
fn sensitive_binds_resolved_as_the_kernel_walks_them() {
    let rel = "tests/audit/spec-default.json";
    let data = std::fs::read(dir().join("spec-default.json")).unwrap();
    let (spec, extra) = crate::oci::parse_and_validate(Path::new(rel), &data).unwrap();
    let extra = Extra {
        seccomp: extra.seccomp,
        landlock: extra.landlock,
    };
    let finding = |source: &str, options: &[&str]| {
        let mut s = spec.clone();
        let mut mounts = s.mounts().clone().unwrap_or_default();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/x")
                .typ("bind")
                .source(source)
                .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap(),
        );
        s.set_mounts(Some(mounts));
        let r = audit(
            Path::new(rel),
            &s,
            &extra,
            &Policy::builtin("default").unwrap(),
            &host(),
        );
        ["CA-MOUNT-001", "CA-MOUNT-002"]
            .into_iter()
            .find(|id| r.findings.iter().any(|f| f.id == *id))
    };
    for sensitive in [
        "/proc/1/root",
        "/proc/self/root/etc",
        "/run",
        "/etc/shadow",
        "/root/.ssh",
        "/srv/data/../../",
        "/srv/../etc/../..",
        "/dev/sda",
        "/dev/nvme0n1",
        "/dev/mapper/root",
    ] {
        assert_eq!(
            finding(sensitive, &["rbind"]),
            Some("CA-MOUNT-001"),
            "{sensitive}"
        );
    }
    assert_eq!(finding("/srv/data", &["rbind"]), Some("CA-MOUNT-002"));
    assert_eq!(finding("/srv/data", &["rbind", "ro"]), None);
    // Symlinks are followed as the kernel will: an innocent name that leads to / or to
    // /etc/shadow on this host is rated by where it leads.
    let t = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/", t.path().join("data")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", t.path().join("cfg")).unwrap();
    std::os::unix::fs::symlink("/proc/1/root", t.path().join("p")).unwrap();
    for link in ["data", "cfg", "p"] {
        let src = t.path().join(link);
        assert_eq!(
            finding(src.to_str().unwrap(), &["rbind", "ro"]),
            Some("CA-MOUNT-001"),
            "{link}"
        );
    }
    // An engine's per-container files are not the engine's state.
    assert_eq!(
        finding(
            "/run/containers/storage/overlay-containers/c/userdata/hosts",
            &["rbind", "ro"]
        ),
        None
    );
}
