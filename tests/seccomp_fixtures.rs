//! The seccomp compiler on the real profiles of Docker and podman (tests/fixtures/seccomp):
//! compiled programs against the profiles' meaning, the template resolution against Docker's
//! own result, the search depth, golden listings.

use std::path::{Path, PathBuf};

use contain::seccomp::bpf::{self, SeccompData};
use contain::seccomp::compile::AUDIT_ARCH_X86_64;
use contain::seccomp::reference::{differential, Rng};
use contain::seccomp::{compile, Profile, Target};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

type R = Result<Completion, Failed>;
type Test = (&'static str, fn() -> R);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seccomp")
}

fn load(name: &str) -> Result<Profile, String> {
    let data = std::fs::read(fixtures().join(name)).map_err(|e| format!("{name}: {e}"))?;
    Profile::from_slice(&data).map_err(|e| format!("{name}: {e}"))
}

fn docker_caps() -> Vec<String> {
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID \
     CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL \
     CAP_AUDIT_WRITE"
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn target(caps: Vec<String>) -> Target {
    Target {
        arch: "amd64",
        caps,
        kernel: (6, 18),
    }
}

fn resolved_profiles_compile_to_their_meaning() -> R {
    let mut rng = Rng(0x5eed);
    for name in ["moby-default.resolved.json", "podman-default.resolved.json"] {
        let n = differential(&load(name)?, &mut rng).map_err(|e| format!("{name}: {e}"))?;
        eprintln!("{name}: {n} inputs agree");
    }
    Ok(Completion::Completed)
}

fn templates_resolved_for_any_caps_compile_to_their_meaning() -> R {
    let mut rng = Rng(0xfeed);
    for name in ["moby-default.json", "podman-default.json"] {
        let t = load(name)?;
        if compile(&t).is_ok() {
            return Err(format!("{name}: an unresolved template compiled").into());
        }
        for caps in [
            vec![],
            docker_caps(),
            vec![
                "CAP_SYS_ADMIN".into(),
                "CAP_SYS_PTRACE".into(),
                "CAP_BPF".into(),
            ],
        ] {
            let p = t.resolve(&target(caps)).map_err(|e| e.to_string())?;
            differential(&p, &mut rng).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(Completion::Completed)
}

type Shape = Vec<(Vec<String>, String, String)>;

fn shape(p: &Profile) -> Shape {
    p.syscalls
        .iter()
        .flatten()
        .map(|r| {
            let args = r
                .args
                .as_ref()
                .filter(|a| !a.is_empty())
                .map(|a| format!("{a:?}"))
                .unwrap_or_default();
            (
                r.names.clone(),
                format!("{:?}/{:?}", r.action, r.errno_ret),
                args,
            )
        })
        .collect()
}

fn resolution_matches_dockers() -> R {
    for (template, resolved) in [
        ("moby-default.json", "moby-default.resolved.json"),
        ("podman-default.json", "podman-default.resolved.json"),
    ] {
        let mine = load(template)?
            .resolve(&target(docker_caps()))
            .map_err(|e| e.to_string())?;
        let theirs = load(resolved)?;
        if shape(&mine) != shape(&theirs) || mine.architectures != theirs.architectures {
            return Err(format!("{template} resolves differently from {resolved}").into());
        }
        if mine.default_errno_ret != theirs.default_errno_ret {
            return Err(format!("{template}: defaultErrnoRet differs").into());
        }
    }
    Ok(Completion::Completed)
}

fn the_search_is_logarithmic() -> R {
    let c = compile(&load("moby-default.resolved.json")?).map_err(|e| e.to_string())?;
    for nr in [0u32, 1, 39, 202, 232, 435] {
        let d = SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            ..Default::default()
        };
        let (_, steps) = bpf::run_counted(&c.program, &d)?;
        if steps > 16 {
            return Err(format!("syscall {nr}: {steps} instructions").into());
        }
    }
    Ok(Completion::Completed)
}

/// `UPDATE_GOLDEN=1` rewrites tests/golden/seccomp-{moby,podman}-resolved.bpf.
fn golden_programs() -> R {
    for (name, file) in [
        ("moby-resolved", "moby-default.resolved.json"),
        ("podman-resolved", "podman-default.resolved.json"),
    ] {
        let c = compile(&load(file)?).map_err(|e| e.to_string())?;
        let text = format!(
            "; {} instructions\n{}",
            c.program.len(),
            bpf::disassemble(&c.program)
        );
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/seccomp-{name}.bpf"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).map_err(|e| e.to_string())?;
        } else if std::fs::read_to_string(&path).map_err(|e| e.to_string())? != text {
            return Err(format!(
                "{} differs from the compiled program; review, then UPDATE_GOLDEN=1",
                path.display()
            )
            .into());
        }
    }
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let tests: [Test; 5] = [
        (
            "resolved_profiles_compile_to_their_meaning",
            resolved_profiles_compile_to_their_meaning,
        ),
        (
            "templates_resolved_for_any_caps_compile_to_their_meaning",
            templates_resolved_for_any_caps_compile_to_their_meaning,
        ),
        ("resolution_matches_dockers", resolution_matches_dockers),
        ("the_search_is_logarithmic", the_search_is_logarithmic),
        ("golden_programs", golden_programs),
    ];
    let present = fixtures().join("moby-default.json").exists();
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            Trial::ignorable_test(name, move || {
                if present {
                    f()
                } else {
                    let why = "tests/fixtures/seccomp is absent";
                    if std::env::var("CONTAIN_TEST_REQUIRE").is_ok_and(|v| v == "all") {
                        Err(Failed::from(format!("CONTAIN_TEST_REQUIRE=all: {why}")))
                    } else {
                        Ok(Completion::ignored_with(why))
                    }
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
