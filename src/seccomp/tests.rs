//! The compiler against the reference meaning, on real and generated profiles.

use super::bpf;
use super::compile::Abi;
use super::profile::{ActionName, Arg, Op, Profile, Rule, Target};
use super::reference::{differential, Rng};
use super::{compile, default_profile};

fn assert_equivalent(p: &Profile, rng: &mut Rng) {
    if let Err(e) = differential(p, rng) {
        panic!("{e}");
    }
}

fn docker_caps() -> Vec<String> {
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL CAP_AUDIT_WRITE"
        .split(' ')
        .map(String::from)
        .collect()
}

#[test]
fn default_profile_compiles_to_its_meaning() {
    let t = default_profile();
    assert!(t.is_template());
    let mut rng = Rng(7);
    for caps in [
        vec![],
        docker_caps(),
        vec!["CAP_SYS_ADMIN".to_string(), "CAP_SYS_PTRACE".to_string()],
    ] {
        let p = t
            .resolve(&Target {
                arch: "amd64",
                caps,
                kernel: (6, 18),
            })
            .unwrap();
        assert_equivalent(&p, &mut rng);
        let c = compile(&p).unwrap();
        assert_eq!(c.abis, [Abi::X86_64]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }
}

const ACTIONS: &[(ActionName, Option<u32>)] = &[
    (ActionName::Allow, None),
    (ActionName::Errno, Some(1)),
    (ActionName::Errno, Some(13)),
    (ActionName::Errno, None),
    (ActionName::Kill, None),
    (ActionName::KillProcess, None),
    (ActionName::Trap, None),
    (ActionName::Trace, Some(7)),
    (ActionName::Log, None),
];
const OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::MaskedEq];
const ARCHES: &[&str] = &[
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_NATIVE",
];

fn random_profile(rng: &mut Rng) -> Profile {
    let names: Vec<&str> = Abi::X86_64
        .table()
        .iter()
        .chain(Abi::I386.table())
        .map(|(n, _)| *n)
        .collect();
    let (default_action, default_errno_ret) = *rng.pick(ACTIONS);
    let consts = [
        0u64,
        1,
        2,
        40,
        0xffff_ffff,
        0x1_0000_0000,
        0x7e02_0000,
        u64::MAX,
        0x8000_0000_0000_0001,
    ];
    let mut rules = Vec::new();
    for _ in 0..rng.below(40) {
        let mut rule_names = Vec::new();
        for _ in 0..1 + rng.below(4) {
            rule_names.push(if rng.below(20) == 0 {
                "no_such_syscall".to_string()
            } else {
                rng.pick(&names).to_string()
            });
        }
        let (action, errno_ret) = *rng.pick(ACTIONS);
        let mut args = Vec::new();
        for _ in 0..rng.below(4) {
            args.push(Arg {
                index: rng.below(6) as u32,
                value: *rng.pick(&consts) ^ rng.below(3),
                value_two: Some(*rng.pick(&consts)).filter(|_| rng.below(2) == 0),
                op: *rng.pick(OPS),
            });
        }
        rules.push(Rule {
            names: rule_names,
            action,
            errno_ret,
            errno: None,
            args: Some(args),
            includes: None,
            excludes: None,
            comment: None,
        });
    }
    let architectures = match rng.below(4) {
        0 => None,
        _ => Some(
            (0..1 + rng.below(3))
                .map(|_| rng.pick(ARCHES).to_string())
                .collect(),
        ),
    };
    Profile {
        default_action,
        default_errno_ret,
        default_errno: None,
        architectures,
        arch_map: None,
        flags: None,
        listener_path: None,
        listener_metadata: None,
        syscalls: Some(rules),
        comment: None,
    }
}

#[test]
fn random_profiles_compile_to_their_meaning() {
    let mut rng = Rng(0xc0ffee);
    for _ in 0..150 {
        let p = random_profile(&mut rng);
        assert_equivalent(&p, &mut rng);
    }
}

#[test]
fn bad_profiles_are_refused_with_the_field() {
    let cases = [
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":5000}"#,
            "over 4095",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#,
            "only meaningful",
        ),
        (r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#, "defaultAction"),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_PDP11"]}"#,
            "PDP11",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_BOGUS"]}"#,
            "BOGUS",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
            "NOTIFY",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0].args[0]: index 6",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}"#,
            "names",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "listenerPath",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "deadlock",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","errnoRet":3}]}"#,
            "only meaningful",
        ),
    ];
    for (json, want) in cases {
        let err = Profile::from_slice(json.as_bytes())
            .and_then(|p| compile(&p).map(drop))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{json}: {err}");
    }
}

#[test]
fn unknown_names_warn_and_flags_map_to_the_kernel() {
    let p = Profile::from_slice(br#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_TSYNC"],"syscalls":[{"names":["read","frobnicate"],"action":"SCMP_ACT_ALLOW"}]}"#).unwrap();
    let c = compile(&p).unwrap();
    assert_eq!(
        c.warnings,
        ["syscall names unknown on SCMP_ARCH_X86_64 skipped: frobnicate"]
    );
    assert_eq!(c.flags, 1 | 2 | 4);
    assert!(!c.notify);
}

/// The compiled programs of the shipped profile are kept in tests/golden (the fixtures' in
/// tests/seccomp_fixtures.rs): a change to the code generator shows up as a reviewed diff.
/// `UPDATE_GOLDEN=1 cargo test golden` rewrites them.
#[test]
fn golden_programs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<(&str, Profile)> = Vec::new();
    let t = default_profile();
    let resolve = |caps: Vec<String>| {
        t.resolve(&Target {
            arch: "amd64",
            caps,
            kernel: (6, 18),
        })
        .unwrap()
    };
    cases.push((
        "default-runc-spec-caps",
        resolve(vec![
            "CAP_AUDIT_WRITE".into(),
            "CAP_KILL".into(),
            "CAP_NET_BIND_SERVICE".into(),
        ]),
    ));
    cases.push(("default-docker-caps", resolve(docker_caps())));
    for (name, p) in cases {
        let c = compile(&p).unwrap();
        let text = format!(
            "; {} instructions\n{}",
            c.program.len(),
            bpf::disassemble(&c.program)
        );
        let path = dir.join(format!("seccomp-{name}.bpf"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
        assert!(
            want == text,
            "{} differs from the compiled program; review and UPDATE_GOLDEN=1",
            path.display()
        );
    }
}

#[test]
fn mount_lock_refuses_flag_changes_and_nothing_else() {
    use super::compile::AUDIT_ARCH_X86_64;
    let p = Profile::from_slice(super::MOUNT_LOCK_PROFILE.as_bytes()).unwrap();
    assert_equivalent(&p, &mut Rng(11));
    let c = compile(&p).unwrap();
    let call = |nr: u32, args: [u64; 6]| {
        let d = bpf::SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            ip: 0,
            args,
        };
        bpf::run(&c.program, &d).unwrap()
    };
    let eperm = 0x0005_0001; // SECCOMP_RET_ERRNO | EPERM
    let allow = 0x7fff_0000;
    let remount_bind = libc::MS_REMOUNT | libc::MS_BIND;
    assert_eq!(call(442, [0; 6]), eperm, "mount_setattr");
    assert_eq!(call(467, [0; 6]), eperm, "open_tree_attr");
    assert_eq!(call(165, [0, 0, 0, remount_bind, 0, 0]), eperm, "remount");
    assert_eq!(call(165, [0, 0, 0, libc::MS_BIND, 0, 0]), allow, "bind");
    for nr in [0, 1, 2, 257, 428, 429, 430, 431, 432, 433] {
        assert_eq!(call(nr, [0; 6]), allow, "syscall {nr}");
    }
}

#[test]
fn lets_through_reads_the_program() {
    let docker = compile(
        &default_profile()
            .resolve(&Target::host(docker_caps()))
            .unwrap(),
    )
    .unwrap();
    assert!(docker.lets_through("ppoll") && docker.lets_through("rt_sigprocmask"));
    assert!(!docker.lets_through("kexec_load"));
    let only = |action: &str| {
        Profile::from_slice(
            format!(
                r#"{{"defaultAction": "{action}", "syscalls": [{{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    };
    let strict = compile(&only("SCMP_ACT_ERRNO")).unwrap();
    assert!(strict.lets_through("write") && !strict.lets_through("ppoll"));
    assert!(!compile(&only("SCMP_ACT_KILL_PROCESS"))
        .unwrap()
        .lets_through("ppoll"));
    assert!(compile(&only("SCMP_ACT_LOG"))
        .unwrap()
        .lets_through("ppoll"));
    assert!(!strict.lets_through("no_such_syscall"));
}

/// runc's argument semantics: conditions on distinct arguments all hold (AND); two on the same
/// argument make each condition a rule of its own (OR). The compiled program and the
/// reference evaluator agree.
#[test]
fn same_argument_twice_is_either() {
    use super::compile::AUDIT_ARCH_X86_64;
    let p = Profile::from_slice(
        br#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["process_vm_readv"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 100, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 9001, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 1337, "op": "SCMP_CMP_EQ"}]}]}"#,
    )
    .unwrap();
    assert_equivalent(&p, &mut Rng(3));
    let c = compile(&p).unwrap();
    let call = |nr: u32, a0: u64, a1: u64| {
        let d = bpf::SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            ip: 0,
            args: [a0, a1, 0, 0, 0, 0],
        };
        bpf::run(&c.program, &d).unwrap()
    };
    let (allow, eperm) = (0x7fff_0000, 0x0005_0001);
    // process_vm_readv 310, kcmp 312
    assert_eq!(call(310, 100, 0), allow);
    assert_eq!(call(310, 9001, 0), allow);
    assert_eq!(call(310, 0, 0), eperm);
    assert_eq!(call(312, 0, 1337), allow);
    assert_eq!(call(312, 0, 0), eperm);
    assert_eq!(call(312, 500, 1337), eperm);
    // Mixed: the condition on argument 1 becomes an alternative, which is said.
    let mixed = Profile::from_slice(
        br#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]}]}"#,
    )
    .unwrap();
    assert_equivalent(&mixed, &mut Rng(4));
    let c = compile(&mixed).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("alternatives")),
        "{:?}",
        c.warnings
    );
}
