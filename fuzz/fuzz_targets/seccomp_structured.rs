//! Structured seccomp profiles (every action, op, architecture, argument shape) that raw JSON
//! bytes rarely reach: compiled programs must mean what the profile means.
#![no_main]
use arbitrary::Arbitrary;
use contain::seccomp::profile::{ActionName, Arg, Op, Profile, Rule};
use contain::seccomp::reference::{differential_sampled, Rng};
use contain::seccomp::{compile, Abi};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct FArg {
    index: u8,
    value: u64,
    value_two: Option<u64>,
    op: u8,
}

#[derive(Arbitrary, Debug)]
struct FRule {
    names: Vec<u16>,
    action: u8,
    errno: Option<u16>,
    args: Vec<FArg>,
}

#[derive(Arbitrary, Debug)]
struct FProfile {
    default_action: u8,
    default_errno: Option<u16>,
    arches: Option<Vec<u8>>,
    rules: Vec<FRule>,
    seed: u64,
}

const ACTIONS: [ActionName; 9] = [
    ActionName::Allow,
    ActionName::Errno,
    ActionName::Kill,
    ActionName::KillThread,
    ActionName::KillProcess,
    ActionName::Trap,
    ActionName::Trace,
    ActionName::Log,
    ActionName::Notify,
];
const OPS: [Op; 7] = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::MaskedEq];
const ARCHES: [&str; 5] = [
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_AARCH64",
];

fn name(n: u16) -> String {
    let all: Vec<&str> = Abi::X86_64
        .table()
        .iter()
        .chain(Abi::I386.table())
        .map(|(n, _)| *n)
        .collect();
    all.get(n as usize % (all.len() + 1))
        .map_or_else(|| "not_a_syscall".into(), |s| s.to_string())
}

fn errno(a: ActionName, e: Option<u16>) -> Option<u32> {
    matches!(a, ActionName::Errno | ActionName::Trace)
        .then_some(e.map(|e| e as u32 % 4096))
        .flatten()
}

fuzz_target!(|f: FProfile| {
    let default_action = ACTIONS[f.default_action as usize % 8];
    let rules = f
        .rules
        .iter()
        .take(64)
        .map(|r| {
            let action = ACTIONS[r.action as usize % 8];
            Rule {
                names: r.names.iter().take(8).map(|&n| name(n)).collect::<Vec<_>>(),
                action,
                errno_ret: errno(action, r.errno),
                errno: None,
                args: Some(
                    r.args
                        .iter()
                        .take(6)
                        .map(|a| Arg {
                            index: a.index as u32 % 6,
                            value: a.value,
                            value_two: a.value_two,
                            op: OPS[a.op as usize % OPS.len()],
                        })
                        .collect(),
                ),
                includes: None,
                excludes: None,
                comment: None,
            }
        })
        .filter(|r| !r.names.is_empty())
        .collect();
    let p = Profile {
        default_action,
        default_errno_ret: errno(default_action, f.default_errno),
        default_errno: None,
        architectures: f.arches.map(|a| {
            a.iter()
                .take(4)
                .map(|&i| ARCHES[i as usize % ARCHES.len()].to_string())
                .collect()
        }),
        arch_map: None,
        flags: None,
        listener_path: None,
        listener_metadata: None,
        syscalls: Some(rules),
        comment: None,
    };
    if compile(&p).is_ok() {
        if let Err(e) = differential_sampled(&p, &mut Rng(f.seed | 1), 256) {
            panic!("compiled program disagrees with the profile: {e}\n{p:?}");
        }
    }
});
