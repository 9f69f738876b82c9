//! `contain audit --learnt DIR`: a learnt seccomp profile compared with contain's default
//! profile and with any other (Docker's): which syscalls one allows and the other does not.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::seccomp::bpf::SeccompData;
use crate::seccomp::compile::{Abi, AUDIT_ARCH_X86_64};
use crate::seccomp::{self, Profile, Target};

/// The x86_64 syscalls a resolved profile allows, for every argument or (a rule with
/// argument conditions allows it) for some.
fn allowed(p: &Profile) -> Result<BTreeSet<&'static str>, String> {
    let conditional: BTreeSet<&str> = p
        .syscalls
        .iter()
        .flatten()
        .filter(|r| r.action == seccomp::profile::ActionName::Allow && r.args.is_some())
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let mut out = BTreeSet::new();
    for &(name, nr) in Abi::X86_64.table() {
        let d = SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            ip: 0,
            args: [0; 6],
        };
        if conditional.contains(name)
            || seccomp::reference::evaluate(p, &d)? == libc::SECCOMP_RET_ALLOW
        {
            out.insert(name);
        }
    }
    Ok(out)
}

/// One comparison of the learnt profile with another.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Against {
    pub profile: String,
    pub allowed: usize,
    /// Allowed by the learnt profile and not by this one.
    pub only_learnt: Vec<&'static str>,
    /// Allowed by this one and not by the learnt profile.
    pub only_other: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub learnt: String,
    pub allowed: Vec<&'static str>,
    pub against: Vec<Against>,
    /// The TCP ports the learnt policy's Landlock rules allow (None: any; neither contain's
    /// default nor a seccomp profile restricts ports).
    pub tcp: Option<crate::policy::Network>,
    /// The learnt policy's Landlock filesystem rules (None: it has none of its own).
    pub fs: Option<Vec<crate::landlock::PathRule>>,
    /// The capabilities the learnt policy drops from whatever config.json asks for.
    pub dropped_caps: Vec<String>,
}

fn resolved(p: Profile) -> Result<Profile, String> {
    // Templates are resolved for Docker's default capabilities, so that Docker's profile is
    // compared as Docker would install it.
    let caps = super::DOCKER_DEFAULT
        .iter()
        .map(|c| c.to_string())
        .collect();
    p.resolve(&Target::host(caps)).map_err(|e| e.to_string())
}

/// Compare the learnt profile in `dir` with contain's default and with `others`.
pub fn compare(dir: &Path, others: &[&Path]) -> Result<Comparison, String> {
    let path = dir.join(crate::learn::SECCOMP);
    let learnt = seccomp::load_profile(&path).map_err(|e| e.to_string())?;
    let learnt = allowed(&resolved(learnt)?)?;
    let mut against = Vec::new();
    let mut add = |label: String, p: Profile| -> Result<(), String> {
        let other = allowed(&resolved(p)?)?;
        against.push(Against {
            profile: label,
            allowed: other.len(),
            only_learnt: learnt.difference(&other).copied().collect(),
            only_other: other.difference(&learnt).copied().collect(),
        });
        Ok(())
    };
    add("contain default".into(), seccomp::default_profile())?;
    for o in others {
        let p = seccomp::load_profile(o).map_err(|e| e.to_string())?;
        add(o.display().to_string(), p)?;
    }
    let policy = dir.join(crate::learn::POLICY);
    let policy =
        crate::policy::Policy::load(&policy.to_string_lossy()).map_err(|e| e.to_string())?;
    let dropped_caps = policy.drop_capabilities;
    let landlock = policy.landlock;
    let tcp = landlock.network;
    let fs = landlock
        .ruleset
        .and_then(|r| r.rules)
        .map(|r| r.path_beneath);
    Ok(Comparison {
        learnt: path.display().to_string(),
        allowed: learnt.into_iter().collect(),
        against,
        tcp,
        fs,
        dropped_caps,
    })
}

/// The comparison as text.
pub fn render(c: &Comparison) -> String {
    let mut s = format!(
        "learnt profile {}: {} syscalls allowed (x86_64)\n",
        c.learnt,
        c.allowed.len()
    );
    for a in &c.against {
        s.push_str(&format!(
            "\nagainst {} ({} allowed):\n  allowed only by the learnt profile ({}): {}\n  allowed only by {} ({}): {}\n",
            a.profile,
            a.allowed,
            a.only_learnt.len(),
            list(&a.only_learnt),
            a.profile,
            a.only_other.len(),
            list(&a.only_other)
        ));
    }
    let ports = |v: &[u16]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(u16::to_string).collect::<Vec<_>>().join(" ")
        }
    };
    s.push_str(&match &c.tcp {
        Some(n) => format!(
            "\nTCP (Landlock): the learnt policy allows bind to {}, connect to {}; contain's default and a seccomp profile allow any port\n",
            ports(&n.bind_tcp),
            ports(&n.connect_tcp)
        ),
        None => "\nTCP (Landlock): any port, as under contain's default\n".to_string(),
    });
    s.push_str(&match &c.fs {
        Some(rules) => format!(
            "filesystem (Landlock): the learnt policy allows {}; every other read, write, creation, removal and execution is refused, where contain's default allows reads and execution anywhere, and the others wherever a mount is writable\n",
            rules
                .iter()
                .map(|r| format!(
                    "{} beneath {}",
                    r.allowed_access.join(" "),
                    r.paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        None => "filesystem (Landlock): as the base policy allows\n".to_string(),
    });
    let kept: Vec<&str> = super::DOCKER_DEFAULT
        .iter()
        .filter(|cap| !c.dropped_caps.iter().any(|d| d == *cap))
        .copied()
        .collect();
    s.push_str(&format!(
        "capabilities: the learnt policy drops {} whatever config.json asks; of Docker's default set it keeps {} (contain's default keeps what config.json asks)\n",
        list(&c.dropped_caps.iter().map(String::as_str).collect::<Vec<_>>()),
        list(&kept)
    ));
    s
}

fn list(v: &[&str]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}
