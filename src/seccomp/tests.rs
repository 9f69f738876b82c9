//! The compiler against the reference meaning, on real and generated profiles.

use super::bpf::{self, SeccompData};
use super::compile::{Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_BIT};
use super::profile::{ActionName, Arg, Op, Profile, Rule, Target};
use super::{compile, default_profile, reference};

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Values near every constant the profile mentions, with and without garbage in the upper
/// 32 bits (what a 32-bit comparison must ignore and a 64-bit one must not).
fn interesting_values(p: &Profile) -> Vec<u64> {
    let mut v = vec![0, 1, u64::MAX, 0xffff_ffff, 0x1_0000_0000];
    for r in p.syscalls.iter().flatten() {
        for a in r.args.iter().flatten() {
            for x in [
                a.value,
                a.value_two.unwrap_or(0),
                a.value & !a.value_two.unwrap_or(0),
            ] {
                for y in [
                    x,
                    x.wrapping_sub(1),
                    x.wrapping_add(1),
                    x | 0xdead_0000_0000_0000,
                    x ^ (1 << 32),
                ] {
                    v.push(y);
                }
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Compare the compiled program with the reference on every syscall number of every ABI
/// (and numbers past the tables), with arguments drawn from the interesting values.
fn assert_equivalent(p: &Profile, rng: &mut Rng) {
    let c = compile(p).unwrap_or_else(|e| panic!("compile: {e}\n{p:?}"));
    bpf::check(&c.program).unwrap();
    let values = interesting_values(p);
    let mut numbers: Vec<u32> = (0..600).collect();
    numbers.extend([0x3fff_ffff, 0x8000_0000, 0xffff_ffff, u32::MAX - 1]);
    let arches = [
        (AUDIT_ARCH_X86_64, 0),
        (AUDIT_ARCH_X86_64, X32_BIT),
        (AUDIT_ARCH_I386, 0),
        (0xc000_00b7, 0),
    ];
    for &(arch, bit) in &arches {
        for &nr in &numbers {
            for _ in 0..4 {
                let mut args = [0u64; 6];
                for a in &mut args {
                    *a = *rng.pick(&values);
                }
                let d = SeccompData {
                    nr: nr | bit,
                    arch,
                    ip: 0,
                    args,
                };
                let want = reference::evaluate(p, &d).unwrap();
                let got = bpf::run(&c.program, &d).unwrap();
                assert_eq!(
                    bpf::action_name(got),
                    bpf::action_name(want),
                    "arch {arch:#x} nr {:#x} args {args:x?}",
                    d.nr
                );
            }
        }
    }
}

fn fixture(name: &str) -> Option<Profile> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/seccomp")
        .join(name);
    match std::fs::read(&path) {
        Ok(data) => Some(Profile::from_slice(&data).unwrap()),
        Err(_) => {
            eprintln!(
                "skipped: {} is absent (the fixtures sit beside the project in CI)",
                path.display()
            );
            None
        }
    }
}

fn docker_caps() -> Vec<String> {
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL CAP_AUDIT_WRITE"
        .split(' ')
        .map(String::from)
        .collect()
}

#[test]
fn real_profiles_compile_to_their_meaning() {
    let mut rng = Rng(0x5eed);
    for name in ["moby-default.resolved.json", "podman-default.resolved.json"] {
        if let Some(p) = fixture(name) {
            assert_equivalent(&p, &mut rng);
        }
    }
    for name in ["moby-default.json", "podman-default.json"] {
        if let Some(t) = fixture(name) {
            assert!(
                compile(&t).is_err(),
                "an unresolved template must not compile"
            );
            for caps in [
                docker_caps(),
                vec!["CAP_SYS_ADMIN".into(), "CAP_SYS_PTRACE".into()],
            ] {
                let p = t
                    .resolve(&Target {
                        arch: "amd64",
                        caps,
                        kernel: (6, 18),
                    })
                    .unwrap();
                assert_equivalent(&p, &mut rng);
            }
        }
    }
}

#[test]
fn resolving_docker_template_gives_the_resolved_fixture() {
    let (Some(t), Some(r)) = (
        fixture("moby-default.json"),
        fixture("moby-default.resolved.json"),
    ) else {
        return;
    };
    let mine = t
        .resolve(&Target {
            arch: "amd64",
            caps: docker_caps(),
            kernel: (6, 18),
        })
        .unwrap();
    let strip = |p: &Profile| -> Vec<(Vec<String>, ActionName, Option<Vec<Arg>>)> {
        p.syscalls
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.names.clone(),
                    r.action,
                    r.args.clone().filter(|a| !a.is_empty()),
                )
            })
            .collect()
    };
    assert_eq!(strip(&mine), strip(&r));
    assert_eq!(mine.architectures, r.architectures);
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

#[test]
fn the_search_is_logarithmic() {
    // Docker's profile: the hot syscalls take a handful of instructions, not hundreds.
    let Some(p) = fixture("moby-default.resolved.json") else {
        return;
    };
    let c = compile(&p).unwrap();
    for nr in [0u32, 1, 39, 202, 232, 435] {
        let d = SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            ..Default::default()
        };
        let (_, steps) = bpf::run_counted(&c.program, &d).unwrap();
        assert!(steps <= 16, "syscall {nr}: {steps} instructions");
    }
}

/// The compiled programs of the shipped profile (and of the fixtures, when present) are kept
/// in tests/golden: a change to the code generator shows up as a reviewed diff.
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
    for (name, file) in [
        ("moby-resolved", "moby-default.resolved.json"),
        ("podman-resolved", "podman-default.resolved.json"),
    ] {
        if let Some(p) = fixture(file) {
            cases.push((name, p));
        }
    }
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
