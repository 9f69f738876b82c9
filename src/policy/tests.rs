use super::*;

fn spec(v: serde_json::Value) -> Spec {
    serde_json::from_value(v).unwrap()
}

fn docker_like() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN"]}},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
            {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]}
    })
}

fn root() -> Facts {
    Facts {
        as_root: true,
        rootfs_idmap: Ok(()),
        controllers: vec!["pids".into(), "memory".into()],
        allowed_annotations: Vec::new(),
        pod: None,
        host_joins: Vec::new(),
    }
}

#[test]
fn no_userns_where_it_cannot_be_added() {
    let overlay = Facts {
        as_root: true,
        rootfs_idmap: Err("the rootfs /m is on overlayfs, which cannot be idmapped".into()),
        controllers: Vec::new(),
        allowed_annotations: Vec::new(),
        pod: None,
        host_joins: Vec::new(),
    };
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(docker_like()),
        &overlay,
    )
    .unwrap();
    assert!(matches!(a.userns, UserNs::None(ref r) if r.contains("overlayfs")));
    assert!(a
        .warnings
        .iter()
        .any(|w| w.contains("container root is host root")));
    let e = apply(
        &Policy::builtin("strict").unwrap(),
        &spec(docker_like()),
        &overlay,
    )
    .unwrap_err();
    assert!(e.to_string().contains("requires a user namespace"), "{e}");
    let mut v = docker_like();
    v["linux"]["namespaces"][1] = serde_json::json!({"type": "network", "path": "/proc/1/ns/net"});
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(v.clone()),
        &root(),
    )
    .unwrap();
    // A network namespace joined by path is joined before the user namespace is made.
    assert!(matches!(a.userns, UserNs::Added(_)), "{:?}", a.userns);
    assert!(a.warnings.iter().any(|w| w.contains("/proc/1/ns/net")));
    // Any other joined namespace could not be entered from a new user namespace.
    let list = v["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|n| n["type"] != "ipc");
    list.push(serde_json::json!({"type": "ipc", "path": "/proc/1/ns/ipc"}));
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(v.clone()),
        &root(),
    )
    .unwrap();
    assert!(matches!(a.userns, UserNs::None(ref r) if r.contains("ipc")));
    // ... unless it is the host's and can be joined first (create finds which: hostIPC)...
    let host_ipc = Facts {
        host_joins: vec![LinuxNamespaceType::Ipc],
        ..root()
    };
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(v.clone()),
        &host_ipc,
    )
    .unwrap();
    assert!(matches!(a.userns, UserNs::Added(_)), "{:?}", a.userns);
    assert_eq!(a.joined_first, vec![LinuxNamespaceType::Ipc]);
    assert!(a
        .warnings
        .iter()
        .any(|w| w.contains("host's ipc namespace")));
    // ... or unless it belongs to a pod (the user namespace contain added to its sandbox): then
    // that user namespace is joined, by path.
    let pod = Pod {
        sandbox: "sb".into(),
        userns: "/proc/7/ns/user".into(),
        userns_id: (4, 4026531837),
        range: crate::ns::idmap::Range {
            uid_base: 100000,
            gid_base: 100000,
            size: 65536,
        },
        host_owned: vec![LinuxNamespaceType::Network],
    };
    let in_pod = Facts {
        pod: Some(pod.clone()),
        ..root()
    };
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(v.clone()),
        &in_pod,
    )
    .unwrap();
    assert_eq!(a.userns, UserNs::Pod(pod));
    let user = a
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap();
    let user = user
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .unwrap();
    assert_eq!(user.path().as_deref(), Some(Path::new("/proc/7/ns/user")));
    assert!(a.idmap_binds, "a pod's binds are idmapped as its sandbox's");
    // strict still refuses a namespace joined by path.
    let e = apply(&Policy::builtin("strict").unwrap(), &spec(v), &in_pod).unwrap_err();
    assert!(e.to_string().contains("joined from a path"), "{e}");
}

#[test]
fn builtins_parse_and_are_selected() {
    for (name, _) in BUILTIN {
        assert_eq!(Policy::builtin(name).unwrap().name, name);
    }
    let none = Operator::default();
    let name = |flag: Option<&str>, v: serde_json::Value, o: &Operator| {
        let (p, by) = Policy::select(flag, &spec(v), o).unwrap();
        (p.name, by)
    };
    assert_eq!(
        name(None, docker_like(), &none),
        ("default".into(), ChosenBy::Default)
    );
    assert_eq!(
        name(Some("runc"), docker_like(), &none),
        ("runc".into(), ChosenBy::Flag)
    );
    let mut v = docker_like();
    v["annotations"] = serde_json::json!({"io.contain.policy": "strict"});
    assert_eq!(
        name(None, v.clone(), &none),
        ("strict".into(), ChosenBy::Annotation)
    );
    // The flag wins over the annotation.
    assert_eq!(name(Some("runc"), v, &none).0, "runc");
    // The operator's choice when nothing else chooses; an annotation may not go below the
    // floor unless the operator allows that annotation.
    let op = Operator::parse(
        Path::new("/etc/contain/config.json"),
        br#"{"policy": "strict", "floor": "default"}"#,
    )
    .unwrap();
    assert_eq!(
        name(None, docker_like(), &op),
        (
            "strict".into(),
            ChosenBy::Operator("/etc/contain/config.json".into())
        )
    );
    let mut weak = docker_like();
    weak["annotations"] = serde_json::json!({"io.contain.policy": "runc"});
    let e = Policy::select(None, &spec(weak.clone()), &none).unwrap_err();
    assert!(
        e.to_string().contains("weaker than the floor \"default\""),
        "{e}"
    );
    let allow = Operator::parse(
        Path::new("/c.json"),
        br#"{"allowAnnotations": ["io.contain.policy=runc"]}"#,
    )
    .unwrap();
    assert_eq!(name(None, weak, &allow).0, "runc");
}

#[test]
fn bad_selection_is_explained() {
    let s = spec(docker_like());
    let e = Policy::select(Some("lenient"), &s, &Operator::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown policy \"lenient\""), "{e}");
    let e = Policy::select(Some("/nonexistent/p.json"), &s, &Operator::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read policy /nonexistent/p.json"), "{e}");
    let mut v = docker_like();
    v["annotations"] = serde_json::json!({"io.contain.policy": "/etc/passwd"});
    let e = Policy::select(None, &spec(v), &Operator::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("only be chosen with --policy"), "{e}");
}

#[test]
fn malformed_policies_name_the_field() {
    let base: serde_json::Value = serde_json::from_str(BUILTIN[0].1).unwrap();
    let bad = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = base.clone();
        f(&mut v);
        Policy::parse("p", &serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string()
    };
    assert!(bad(&|v| v["extra"] = serde_json::json!(1)).contains("unknown field `extra`"));
    assert!(bad(&|v| v["seccomp"] = serde_json::json!("maybe")).contains("unknown variant"));
    assert!(
        bad(&|v| v["landlock"]["scopes"] = serde_json::json!(["files"]))
            .contains("landlock.scopes[0]")
    );
    assert!(
        bad(&|v| v["capabilities"] = serde_json::json!(["CAP_FLY"])).contains("capabilities[0]")
    );
    assert!(
        bad(&|v| v["hostNamespaces"] = serde_json::json!(["net"])).contains("hostNamespaces[0]")
    );
    assert!(
        bad(&|v| v["userNamespace"]["pool"]["size"] = serde_json::json!(10))
            .contains("cannot hold")
    );
    assert!(
        bad(&|v| v["userNamespace"]["pool"]["start"] = serde_json::json!(4294960000u32))
            .contains("beyond")
    );
    let e = Policy::parse("p", b"{").unwrap_err().to_string();
    assert!(e.starts_with("policy p:"), "{e}");
}

#[test]
fn default_adds_a_user_namespace_and_refuses_nothing() {
    let mut v = docker_like();
    v["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_SYS_ADMIN"]);
    v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
    let a = apply(&Policy::builtin("default").unwrap(), &spec(v), &root()).unwrap();
    assert!(matches!(a.userns, UserNs::Added(_)));
    let ns = a
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .clone()
        .unwrap();
    assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    // Host network and pid namespaces: both scopes apply.
    assert_eq!(a.landlock.scopes, ["abstract_unix_socket", "signal"]);
    let private = apply(
        &Policy::builtin("default").unwrap(),
        &spec(docker_like()),
        &root(),
    )
    .unwrap();
    assert!(private.landlock.scopes.is_empty());
    // Not root: nothing added.
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(docker_like()),
        &Facts {
            as_root: false,
            rootfs_idmap: Ok(()),
            controllers: vec!["pids".into()],
            allowed_annotations: Vec::new(),
            pod: None,
            host_joins: Vec::new(),
        },
    )
    .unwrap();
    assert!(matches!(a.userns, UserNs::None(_)));
}

#[test]
fn userns_opt_out_is_explicit() {
    let mut v = docker_like();
    v["annotations"] = serde_json::json!({"io.contain.userns": "host"});
    // A bundle may not weaken its container: refused unless the operator allows it.
    let e = apply(
        &Policy::builtin("default").unwrap(),
        &spec(v.clone()),
        &root(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("allowAnnotations"), "{e}");
    let allowed = Facts {
        allowed_annotations: vec!["io.contain.userns=host".into()],
        ..root()
    };
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(v.clone()),
        &allowed,
    )
    .unwrap();
    assert!(matches!(a.userns, UserNs::None(ref r) if r.contains("annotation")));
    let e = apply(
        &Policy::builtin("strict").unwrap(),
        &spec(v.clone()),
        &allowed,
    )
    .unwrap_err();
    assert!(e.to_string().contains("io.contain.userns"), "{e}");
    v["annotations"] = serde_json::json!({"io.contain.userns": "yes"});
    let e = apply(&Policy::builtin("default").unwrap(), &spec(v), &root()).unwrap_err();
    assert!(e.to_string().contains("the only value is \"host\""), "{e}");
}

#[test]
fn strict_refuses_and_forces() {
    let strict = Policy::builtin("strict").unwrap();
    let a = apply(&strict, &spec(docker_like()), &root()).unwrap();
    assert_eq!(a.spec.root().as_ref().unwrap().readonly(), Some(true));
    assert_eq!(
        a.spec.process().as_ref().unwrap().no_new_privileges(),
        Some(true)
    );
    assert!(a.landlock.required && a.landlock.no_exec_writable);
    assert_eq!(a.landlock.bind_tcp, Some(vec![]));

    let mut v = docker_like();
    v["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_CHOWN", "CAP_SYS_ADMIN"]);
    let e = apply(&strict, &spec(v), &root()).unwrap_err().to_string();
    assert!(
        e.contains("process.capabilities.bounding") && e.contains("CAP_SYS_ADMIN"),
        "{e}"
    );

    let mut v = docker_like();
    v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "mount"}]);
    let e = apply(&strict, &spec(v), &root()).unwrap_err().to_string();
    assert!(
        e.contains("linux.namespaces") && e.contains("network namespace is shared with the host"),
        "{e}"
    );

    let mut v = docker_like();
    v["linux"]["namespaces"][1] = serde_json::json!({"type": "network", "path": "/proc/1/ns/net"});
    let e = apply(&strict, &spec(v), &root()).unwrap_err().to_string();
    assert!(e.contains("joined from a path"), "{e}");
}

#[test]
fn warn_lets_violations_through_with_a_warning() {
    let mut strict = Policy::builtin("strict").unwrap();
    strict.on_violation = OnViolation::Warn;
    let mut v = docker_like();
    v["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_SYS_ADMIN"]);
    let a = apply(&strict, &spec(v), &root()).unwrap();
    assert!(
        a.warnings.iter().any(|w| w.contains("CAP_SYS_ADMIN")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn runc_adds_nothing() {
    let a = apply(
        &Policy::builtin("runc").unwrap(),
        &spec(docker_like()),
        &root(),
    )
    .unwrap();
    assert!(matches!(a.userns, UserNs::None(_)));
    assert!(!a.landlock.derive_from_mounts);
    assert_eq!(a.seccomp, SeccompMode::Config);
    assert_eq!(a.spec, spec(docker_like()));
}

#[test]
fn microvm_stage_planned_from_annotations_and_policy() {
    let default = Policy::builtin("default").unwrap();
    let mut v = docker_like();
    v["annotations"] = serde_json::json!({"io.contain.isolation": "microvm"});
    // Asked for without a kernel: refused, naming what is missing, never ignored.
    let e = apply(&default, &spec(v.clone()), &root()).unwrap_err();
    assert!(e.to_string().contains("needs a guest kernel"), "{e}");
    v["annotations"]["io.contain.microvm.kernel"] = serde_json::json!("/boot/vmlinux");
    v["linux"]["resources"] = serde_json::json!({
        "memory": {"limit": 64 << 20},
        "cpu": {"quota": 150000, "period": 100000}
    });
    let applied = apply(&default, &spec(v.clone()), &root()).unwrap();
    let plan = applied.microvm.expect("a plan");
    // The guest gets the limit; the cgroup, which holds the VMM too, a fixed allowance more.
    let limit = applied
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .as_ref()
        .unwrap();
    assert_eq!(
        limit.memory().as_ref().unwrap().limit(),
        Some((64 << 20) + crate::microvm::VMM_ALLOWANCE)
    );
    assert_eq!(
        plan.kernel,
        crate::microvm::Image::Bundle("/boot/vmlinux".into())
    );
    assert_eq!(plan.memory, 64 << 20);
    assert_eq!(plan.vcpus, 2);
    // A Linux guest (the default) without an initramfs of its own boots the agent's.
    assert_eq!(plan.guest, crate::microvm::Guest::Linux);
    assert_eq!(
        plan.cmdline,
        format!(
            "{} {}",
            crate::microvm::DEFAULT_CMDLINE,
            crate::microvm::initramfs::AGENT_CMDLINE
        )
    );
    let mut bare = v.clone();
    bare["annotations"]["io.contain.microvm.guest"] = serde_json::json!("bare");
    let plan = apply(&default, &spec(bare.clone()), &root())
        .unwrap()
        .microvm
        .unwrap();
    assert_eq!(
        (plan.guest, plan.cmdline.as_str()),
        (crate::microvm::Guest::Bare, crate::microvm::DEFAULT_CMDLINE)
    );
    bare["annotations"]["io.contain.microvm.guest"] = serde_json::json!("windows");
    let e = apply(&default, &spec(bare), &root()).unwrap_err();
    assert!(e.to_string().contains("\"linux\" and \"bare\""), "{e}");
    v["annotations"]["io.contain.isolation"] = serde_json::json!("vm");
    let e = apply(&default, &spec(v.clone()), &root()).unwrap_err();
    assert!(
        e.to_string().contains("\"container\" and \"microvm\""),
        "{e}"
    );
    v["annotations"]["io.contain.isolation"] = serde_json::json!("container");
    assert!(apply(&default, &spec(v.clone()), &root())
        .unwrap()
        .microvm
        .is_none());
    // A policy that isolates everything takes its kernel from its own defaults, and does not
    // let an annotation lower the stage.
    let mut p = Policy::builtin("strict").unwrap();
    p.isolation = Isolation::Microvm;
    p.microvm.kernel = Some("/srv/guest.elf".into());
    let plan = apply(&p, &spec(docker_like()), &root()).unwrap().microvm;
    assert_eq!(
        plan.unwrap().kernel,
        crate::microvm::Image::Operator("/srv/guest.elf".into())
    );
    let e = apply(&p, &spec(v), &root()).unwrap_err();
    assert!(
        e.to_string().contains("runs every workload in the microVM"),
        "{e}"
    );
}

#[test]
fn binds_get_nosuid_nodev_unless_asked_or_devices() {
    let mut c = docker_like();
    c["mounts"] = serde_json::json!([
        {"destination": "/vol", "type": "bind", "source": "/srv/vol", "options": ["rbind", "rw"]},
        {"destination": "/suid", "type": "bind", "source": "/srv/s", "options": ["bind", "suid", "dev"]},
        {"destination": "/dev/null", "type": "bind", "source": "/dev/null", "options": ["bind"]},
        {"destination": "/gpu", "source": "/dev/dri", "options": ["rbind"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]}
    ]);
    let opts = |policy: &str| -> Vec<Vec<String>> {
        let a = apply(&Policy::builtin(policy).unwrap(), &spec(c.clone()), &root()).unwrap();
        a.spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.options().clone().unwrap_or_default())
            .collect()
    };
    let d = opts("default");
    assert_eq!(d[0], ["rbind", "rw", "nosuid", "nodev"]);
    assert_eq!(d[1], ["bind", "suid", "dev"]);
    assert_eq!(d[2], ["bind", "nosuid"]);
    assert_eq!(d[3], ["rbind", "nosuid"]);
    assert_eq!(d[4], ["rw"]);
    assert_eq!(opts("runc")[0], ["rbind", "rw"]);
    let a = apply(
        &Policy::builtin("default").unwrap(),
        &spec(c.clone()),
        &root(),
    )
    .unwrap();
    assert!(
        a.idmap_binds && a.binds.contains("nosuid,nodev added to 3"),
        "{}",
        a.binds
    );
    let s = apply(&Policy::builtin("strict").unwrap(), &spec(c), &root()).unwrap();
    assert!(
        !s.idmap_binds && s.binds.contains("not idmapped"),
        "{}",
        s.binds
    );
}

#[test]
fn stacked_profiles_resolve_against_the_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("../../policies/default.json")).unwrap();
    v["seccompProfiles"] = serde_json::json!(["seccomp.json", "/abs/other.json"]);
    let path = dir.path().join("policy.json");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let p = Policy::load(path.to_str().unwrap()).unwrap();
    assert_eq!(
        p.seccomp_profiles,
        [
            dir.path().join("seccomp.json"),
            PathBuf::from("/abs/other.json")
        ]
    );
    assert!(Policy::builtin("default")
        .unwrap()
        .seccomp_profiles
        .is_empty());
}
