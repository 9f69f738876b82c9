//! What a (resolved) profile means for one syscall, evaluated straight from the profile with
//! no compilation: the oracle that the compiled program is compared against in tests and in
//! the differential fuzz target. Written independently of the code generator; it shares only
//! the syscall tables, the action encoding and the argument comparison.

use super::bpf::{self, SeccompData};
use super::compile::{compile, Abi, Action, Check, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_BIT};
use super::profile::Profile;

/// The seccomp return value the profile means for `d`.
pub fn evaluate(p: &Profile, d: &SeccompData) -> Result<u32, String> {
    let default = Action::new(p.default_action, p.default_errno_ret, "defaultAction")?;
    // The native architecture is always in libseccomp's filter, whatever the profile lists.
    let listed: Vec<Abi> = std::iter::once(Abi::X86_64)
        .chain(
            p.architectures
                .iter()
                .flatten()
                .filter_map(|t| match t.as_str() {
                    "SCMP_ARCH_X86" => Some(Abi::I386),
                    "SCMP_ARCH_X32" => Some(Abi::X32),
                    _ => None,
                }),
        )
        .collect();
    let abi = match d.arch {
        AUDIT_ARCH_X86_64 if d.nr & X32_BIT != 0 => Some(Abi::X32),
        AUDIT_ARCH_X86_64 => Some(Abi::X86_64),
        AUDIT_ARCH_I386 => Some(Abi::I386),
        _ => None,
    };
    let Some(abi) = abi.filter(|a| listed.contains(a)) else {
        return Ok(if default.denies() {
            default.ret()
        } else {
            Action::KillProcess.ret()
        });
    };

    let mut highest: Option<u32> = None;
    let mut unconditional: Option<Action> = None;
    let mut conditional: Vec<(Vec<Check>, Action)> = Vec::new();
    for r in p.syscalls.iter().flatten() {
        let numbers: Vec<u32> = r.names.iter().filter_map(|n| abi.number(n)).collect();
        if let Some(m) = numbers.iter().max() {
            highest = highest.max(Some(*m));
        }
        let action = Action::new(r.action, r.errno_ret, "rule")?;
        if action == default || !numbers.contains(&d.nr) {
            continue;
        }
        let checks: Vec<Check> = r
            .args
            .iter()
            .flatten()
            .map(|a| Check {
                index: a.index,
                op: a.op,
                value: a.value,
                value_two: a.value_two.unwrap_or(0),
            })
            .collect();
        if checks.is_empty() {
            unconditional = unconditional.or(Some(action));
        } else {
            conditional.push((checks, action));
        }
    }
    if let Some(a) = unconditional {
        return Ok(a.ret());
    }
    for (checks, action) in &conditional {
        let holds = |c: &Check| c.holds(d.args[c.index as usize], abi.wide());
        // Two conditions on one argument: either may hold (runc's "old behaviour", kept for
        // them); otherwise all must.
        let one_argument_twice = checks
            .iter()
            .any(|c| checks.iter().filter(|o| o.index == c.index).count() > 1);
        let matched = if one_argument_twice {
            checks.iter().any(holds)
        } else {
            checks.iter().all(holds)
        };
        if matched {
            return Ok(action.ret());
        }
    }
    let permissive = matches!(default, Action::Allow | Action::Log | Action::Trace(_));
    let stub = !permissive && p.default_errno_ret != Some(libc::ENOSYS as u32);
    if stub && conditional.is_empty() && highest.is_some_and(|h| d.nr > h) {
        return Ok(Action::Errno(libc::ENOSYS as u16).ret());
    }
    Ok(default.ret())
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Values near every constant the profile mentions, with and without garbage in the upper
/// 32 bits (what a 32-bit comparison must ignore and a 64-bit one must not).
pub fn interesting_values(p: &Profile) -> Vec<u64> {
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

/// The (arch, syscall number) pairs worth checking: every number of every ABI up to past the
/// tables, the edges of the number space, and an architecture no profile lists.
fn grid() -> Vec<(u32, u32)> {
    let mut numbers: Vec<u32> = (0..600).collect();
    numbers.extend([0x3fff_ffff, 0x8000_0000, 0xffff_ffff, u32::MAX - 1]);
    let mut v = Vec::new();
    for (arch, bit) in [
        (AUDIT_ARCH_X86_64, 0),
        (AUDIT_ARCH_X86_64, X32_BIT),
        (AUDIT_ARCH_I386, 0),
        (0xc000_00b7, 0),
    ] {
        v.extend(numbers.iter().map(|&nr| (arch, nr | bit)));
    }
    v
}

/// Compare the compiled program with the reference on `per_point` argument vectors (drawn
/// from the interesting values) at each of `points`; returns the number of inputs checked or
/// the first disagreement.
fn compare(
    p: &Profile,
    rng: &mut Rng,
    points: &[(u32, u32)],
    per_point: usize,
) -> Result<usize, String> {
    let c = compile(p).map_err(|e| format!("compile: {e}"))?;
    bpf::check(&c.program)?;
    let values = interesting_values(p);
    let mut checked = 0;
    for &(arch, nr) in points {
        for _ in 0..per_point {
            let mut args = [0u64; 6];
            for a in &mut args {
                *a = *rng.pick(&values);
            }
            let d = SeccompData {
                nr,
                arch,
                ip: 0,
                args,
            };
            let want = evaluate(p, &d)?;
            let got = bpf::run(&c.program, &d)?;
            if got != want {
                return Err(format!(
                    "arch {arch:#x} nr {nr:#x} args {args:x?}: program says {}, profile means {}",
                    bpf::action_name(got),
                    bpf::action_name(want)
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// Every point of the grid, four argument vectors each.
pub fn differential(p: &Profile, rng: &mut Rng) -> Result<usize, String> {
    compare(p, rng, &grid(), 4)
}

/// `samples` random points of the grid, one argument vector each (for fuzzing).
pub fn differential_sampled(p: &Profile, rng: &mut Rng, samples: usize) -> Result<usize, String> {
    let g = grid();
    let points: Vec<(u32, u32)> = (0..samples).map(|_| *rng.pick(&g)).collect();
    compare(p, rng, &points, 1)
}
