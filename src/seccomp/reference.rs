//! What a (resolved) profile means for one syscall, evaluated straight from the profile with
//! no compilation: the oracle that the compiled program is compared against in tests and in
//! the differential fuzz target. Written independently of the code generator; it shares only
//! the syscall tables, the action encoding and the argument comparison.

use super::bpf::SeccompData;
use super::compile::{Abi, Action, Check, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_BIT};
use super::profile::Profile;

/// The seccomp return value the profile means for `d`.
pub fn evaluate(p: &Profile, d: &SeccompData) -> Result<u32, String> {
    let default = Action::new(p.default_action, p.default_errno_ret, "defaultAction")?;
    let listed: Vec<Abi> = match &p.architectures {
        None => vec![Abi::X86_64],
        Some(a) => a
            .iter()
            .filter_map(|t| match t.as_str() {
                "SCMP_ARCH_X86_64" | "SCMP_ARCH_NATIVE" => Some(Abi::X86_64),
                "SCMP_ARCH_X86" => Some(Abi::I386),
                "SCMP_ARCH_X32" => Some(Abi::X32),
                _ => None,
            })
            .collect(),
    };
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
        if checks
            .iter()
            .all(|c| c.holds(d.args[c.index as usize], abi.wide()))
        {
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
