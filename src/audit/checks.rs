//! The checks of [`super::audit`], one per layer, each adding the findings of its rules.

use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::runtime::LinuxNamespaceType;

use super::{dangerous_allowed, is_dev_node, is_disk, resolve, Audited, Findings};
use super::{SAFE_SYSCTLS, SENSITIVE, SENSITIVE_TREES};
use crate::policy::{self, Policy};
use crate::seccomp::{self, Profile};

/// The user namespace (CA-USERNS-001); returns what `state` would say of it.
pub(super) fn user_namespace(f: &mut Findings, a: &Audited) -> String {
    let (applied, linux) = (a.applied, a.linux());
    let ns = |t| a.ns(t);
    const CLIENT_USERNS: &str = "the client's (config.json's, its mappings honoured as given)";
    let userns_text = match applied.map(|a| &a.userns) {
        Some(policy::UserNs::Added(_)) => {
            let first: Vec<&str> = applied
                .iter()
                .flat_map(|a| &a.joined_first)
                .map(|t| policy::ns_name(*t))
                .collect();
            if first.is_empty() {
                "added by the policy (a range of the pool)".to_string()
            } else {
                format!(
                    "added by the policy (a range of the pool; the host's {} namespace(s) joined first: container root holds no capability there)",
                    first.join(", ")
                )
            }
        }
        Some(policy::UserNs::Pod(p)) => format!("the pod's, joined from container {:?}", p.sandbox),
        Some(policy::UserNs::None(why)) => format!("none ({why})"),
        Some(policy::UserNs::Config) => CLIENT_USERNS.to_string(),
        None if ns(LinuxNamespaceType::User).is_some() => CLIENT_USERNS.to_string(),
        None => "none in config.json".to_string(),
    };
    let root_mapped = linux
        .uid_mappings()
        .iter()
        .flatten()
        .any(|m| m.container_id() == 0 && m.host_id() == 0);
    if ns(LinuxNamespaceType::User).is_none() {
        f.add("CA-USERNS-001", format!("no user namespace: {userns_text}"));
    } else if root_mapped {
        f.add(
            "CA-USERNS-001",
            "linux.uidMappings maps container uid 0 to host uid 0".into(),
        );
    }

    userns_text
}

/// Capabilities held (CA-CAP-001, CA-CAP-002).
pub(super) fn capabilities(f: &mut Findings, a: &Audited) {
    let process = a.process();
    let caps = process.capabilities().clone().unwrap_or_default();
    let mut held: BTreeSet<String> = BTreeSet::new();
    for set in [
        caps.bounding(),
        caps.effective(),
        caps.permitted(),
        caps.inheritable(),
        caps.ambient(),
    ] {
        held.extend(set.iter().flatten().map(crate::caps::cap_name));
    }
    f.capabilities(
        &held.into_iter().collect::<Vec<_>>(),
        "process.capabilities holds",
    );
}

/// Namespaces shared with the host or joined (CA-NS-001, CA-NS-002).
pub(super) fn namespaces(f: &mut Findings, a: &Audited) {
    let namespaces = a.namespaces();
    let ns = |t| a.ns(t);
    let shared = |t| ns(t).is_none();
    let host_ns: Vec<&str> = [
        (LinuxNamespaceType::Pid, "pid"),
        (LinuxNamespaceType::Network, "network"),
        (LinuxNamespaceType::Ipc, "ipc"),
    ]
    .iter()
    .filter(|(t, _)| shared(*t))
    .map(|(_, n)| *n)
    .collect();
    if !host_ns.is_empty() {
        f.add(
            "CA-NS-001",
            format!("shared with the host: {}", host_ns.join(", ")),
        );
    }
    let mut weaker: Vec<String> = [
        (LinuxNamespaceType::Uts, "uts"),
        (LinuxNamespaceType::Cgroup, "cgroup"),
        (LinuxNamespaceType::Mount, "mount"),
    ]
    .iter()
    .filter(|(t, _)| shared(*t))
    .map(|(_, n)| format!("{n} shared with the host"))
    .collect();
    weaker.extend(
        namespaces
            .iter()
            .filter_map(|n| n.path().as_ref().map(|p| (n.typ(), p)))
            .map(|(t, p)| format!("{} joined from {}", policy::ns_name(t), p.display())),
    );
    if !weaker.is_empty() {
        f.add("CA-NS-002", weaker.join("; "));
    }
}

/// The seccomp filters create would install (CA-SECCOMP-*); returns what they are.
pub(super) fn seccomp(f: &mut Findings, a: &Audited) -> String {
    let (applied, extra) = (a.applied, a.extra);
    let caps = a.process().capabilities().clone().unwrap_or_default();
    let choice = applied.map_or(seccomp::Choice::ConfigOnly, |a| a.seccomp.choice());
    let bounding: Vec<String> = caps
        .bounding()
        .iter()
        .flatten()
        .map(crate::caps::cap_name)
        .collect();
    let lock_mounts = applied.is_some_and(|a| a.lock_mounts);
    let stacked = applied.map_or(&[][..], |a| &a.seccomp_profiles[..]);
    let filters = seccomp::policy_profiles(stacked).and_then(|stacked| {
        seccomp::effective(
            extra.seccomp.as_ref(),
            bounding,
            choice,
            lock_mounts,
            stacked,
        )
    });
    match filters {
        Ok(filters) if filters.is_empty() => {
            f.add(
                "CA-SECCOMP-001",
                "config.json has no linux.seccomp and the policy adds none".into(),
            );
            "none".into()
        }
        Ok(filters) => {
            let mut unknown: Vec<&str> = filters
                .iter()
                .flat_map(|e| e.compiled.unknown.iter().map(String::as_str))
                .collect();
            unknown.sort();
            unknown.dedup();
            if !unknown.is_empty() {
                f.add("CA-SECCOMP-003", format!("skipped: {}", unknown.join(", ")));
            }
            let profiles: Vec<&Profile> = filters.iter().map(|e| &e.profile).collect();
            let open = dangerous_allowed(&profiles);
            if !open.is_empty() {
                f.add("CA-SECCOMP-002", format!("allowed: {}", open.join(", ")));
            }
            filters
                .iter()
                .map(|e| e.source.describe())
                .collect::<Vec<_>>()
                .join(" + ")
        }
        Err(e) => {
            f.add(
                "CA-SECCOMP-001",
                format!("the profile cannot be compiled, so create would fail: {e}"),
            );
            format!("invalid: {e}")
        }
    }
}

/// The Landlock rulesets create would install (CA-LANDLOCK-*); returns what they are.
pub(super) fn landlock(f: &mut Findings, a: &Audited) -> String {
    let (applied, effective, extra, host) = (a.applied, a.effective, a.extra, a.host);
    let input = applied.map(|a| a.landlock.clone()).unwrap_or_default();
    match crate::landlock::plan(
        effective,
        extra.landlock.as_ref(),
        &input,
        host.landlock_abi,
    ) {
        Ok(plan) => {
            if plan.layers.is_empty() {
                f.add("CA-LANDLOCK-001", plan.describe());
            } else if !plan.notes.is_empty() {
                f.add("CA-LANDLOCK-002", plan.notes.join("; "));
            }
            plan.describe()
        }
        Err(e) => {
            f.add("CA-LANDLOCK-001", format!("create would fail: {e}"));
            format!("create would fail: {e}")
        }
    }
}

/// Privileges of the process and the rootfs (CA-PRIV-*, CA-ROOTFS-001).
pub(super) fn privileges(f: &mut Findings, a: &Audited) {
    let (process, effective) = (a.process(), a.effective);
    if !process.no_new_privileges().unwrap_or(false) {
        f.add("CA-PRIV-001", "process.noNewPrivileges is not true".into());
    }
    if process.user().uid() == 0 {
        f.add("CA-PRIV-002", "process.user.uid is 0".into());
    }
    if effective.root().as_ref().and_then(|r| r.readonly()) != Some(true) {
        f.add("CA-ROOTFS-001", "root.readonly is not true".into());
    }
}

/// Bind mounts of sensitive or writable host paths, masked and read-only paths
/// (CA-MOUNT-*).
pub(super) fn mounts(f: &mut Findings, a: &Audited) {
    let (effective, linux) = (a.effective, a.linux());
    let mut sensitive = Vec::new();
    let mut writable = Vec::new();
    for m in effective.mounts().iter().flatten() {
        let opts = m.options().clone().unwrap_or_default();
        let bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        let Some(src) = m.source().as_ref().filter(|_| bind) else {
            continue;
        };
        let ro = opts.iter().any(|o| o == "ro");
        let src_s = crate::oci::lexical(src);
        // What the kernel will bind on this host: symlinks and magic links (/proc/N/root)
        // followed. Only read (readlink, stat); nothing is opened.
        let resolved = Some(resolve(&src_s)).filter(|r| *r != src_s);
        let rated = |p: &Path| {
            SENSITIVE.iter().any(|s| {
                p == Path::new(s) || (*s != "/" && p.starts_with(s) && s.ends_with(".sock"))
            }) || SENSITIVE_TREES.iter().any(|t| p.starts_with(t))
                || is_disk(p)
        };
        let via = resolved.as_ref().filter(|r| !rated(&src_s) && rated(r));
        let hit = rated(&src_s) || via.is_some();
        let what = format!(
            "{}{} on {} ({})",
            src.display(),
            via.map(|r| format!(" (resolves to {})", r.display()))
                .unwrap_or_default(),
            m.destination().display(),
            if ro { "read-only" } else { "writable" }
        );
        if hit {
            sensitive.push(what);
        } else if !ro && !is_dev_node(&src_s) {
            writable.push(what);
        }
    }
    if !sensitive.is_empty() {
        f.add("CA-MOUNT-001", sensitive.join("; "));
    }
    if !writable.is_empty() {
        f.add("CA-MOUNT-002", writable.join("; "));
    }
    let masked = linux.masked_paths().clone().unwrap_or_default();
    let readonly = linux.readonly_paths().clone().unwrap_or_default();
    let mut missing: Vec<String> = crate::oci::defaults::MASKED
        .iter()
        .filter(|p| !masked.iter().any(|m| m == *p))
        .map(|p| format!("masked {p}"))
        .collect();
    missing.extend(
        crate::oci::defaults::READONLY
            .iter()
            .filter(|p| !readonly.iter().any(|m| m == *p))
            .map(|p| format!("read-only {p}")),
    );
    if !missing.is_empty() {
        f.add("CA-MOUNT-003", format!("missing: {}", missing.join(", ")));
    }
}

/// Devices allowed or made (CA-DEV-001).
pub(super) fn devices(f: &mut Findings, a: &Audited) {
    let (linux, res) = (a.linux(), a.resources());
    let mut devs = Vec::new();
    for d in res.devices().iter().flatten().filter(|d| d.allow()) {
        let typ = d.typ().map(|t| t.as_str().to_string());
        let all = typ.as_deref().is_none_or(|t| t == "a");
        if all && d.major().is_none() && d.minor().is_none() {
            devs.push("every device is allowed".to_string());
        } else if typ.as_deref() == Some("b") || all {
            devs.push(format!(
                "block devices allowed ({}:{})",
                d.major().map_or("*".into(), |m| m.to_string()),
                d.minor().map_or("*".into(), |m| m.to_string())
            ));
        }
    }
    for d in linux.devices().iter().flatten() {
        if d.typ().as_str() == "b" {
            devs.push(format!("block device node {}", d.path().display()));
        }
    }
    if !devs.is_empty() {
        f.add("CA-DEV-001", devs.join("; "));
    }
}

/// Limits (CA-RES-*).
pub(super) fn resources(f: &mut Findings, a: &Audited) {
    let (process, res) = (a.process(), a.resources());
    if res
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .is_none_or(|l| l <= 0)
    {
        f.add(
            "CA-RES-001",
            "linux.resources.memory.limit is not set".into(),
        );
    }
    if res.pids().as_ref().is_none_or(|p| p.limit() <= 0) {
        f.add("CA-RES-002", "linux.resources.pids.limit is not set".into());
    }
    let rl: Vec<String> = process
        .rlimits()
        .iter()
        .flatten()
        .map(|r| format!("{:?}", r.typ()))
        .collect();
    let lacks: Vec<&str> = ["RLIMIT_NOFILE", "RLIMIT_NPROC"]
        .into_iter()
        .filter(|n| {
            !rl.iter()
                .any(|r| r.eq_ignore_ascii_case(&n.replace('_', "")))
        })
        .collect();
    if !lacks.is_empty() {
        f.add(
            "CA-RES-003",
            format!("process.rlimits lacks {}", lacks.join(", ")),
        );
    }
}

/// Kernel knobs (CA-SYSCTL-001).
pub(super) fn sysctls(f: &mut Findings, a: &Audited) {
    let linux = a.linux();
    let unsafe_sysctls: Vec<String> = linux
        .sysctl()
        .iter()
        .flatten()
        .filter(|(k, _)| !SAFE_SYSCTLS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !unsafe_sysctls.is_empty() {
        let mut s = unsafe_sysctls;
        s.sort();
        f.add("CA-SYSCTL-001", s.join(", "));
    }
}

/// The isolation stage (CA-VM-*); returns what the microVM holds, when there is one.
pub(super) fn isolation(f: &mut Findings, a: &Audited, pol: &Policy) -> Option<String> {
    let (applied, host) = (a.applied, a.host);
    if let Some(plan) = applied.and_then(|a| a.microvm.as_ref()) {
        let named: Vec<String> = std::iter::once(("kernel", Some(&plan.kernel)))
            .chain(std::iter::once(("initramfs", plan.initramfs.as_ref())))
            .filter_map(|(what, i)| match i? {
                crate::microvm::Image::Bundle(p) => Some(format!("{what} {}", p.display())),
                crate::microvm::Image::Operator(_) => None,
            })
            .collect();
        if !named.is_empty() {
            f.add("CA-VM-003", named.join(", "));
        }
        match &host.microvm {
            Ok(()) => {
                return Some(format!(
                    "microvm: kernel {}, {} MiB; the VMM jailed with per-thread seccomp",
                    plan.kernel,
                    plan.memory >> 20
                ))
            }
            Err(why) => f.add("CA-VM-001", format!("microvm asked for; {why}")),
        }
    } else if pol.hostile && applied.is_some() {
        f.add(
            "CA-VM-002",
            format!(
                "policy {} is for hostile code; the isolation is container",
                pol.name
            ),
        );
    }
    None
}

/// Hooks the runtime runs on the host (CA-HOOK-001).
pub(super) fn hooks(f: &mut Findings, a: &Audited) {
    let effective = a.effective;
    if let Some(h) = effective.hooks() {
        let mut host_hooks = Vec::new();
        for (kind, list) in [
            ("prestart", h.prestart()),
            ("createRuntime", h.create_runtime()),
            ("poststart", h.poststart()),
            ("poststop", h.poststop()),
        ] {
            for hook in list.iter().flatten() {
                host_hooks.push(format!("{kind}: {}", hook.path().display()));
            }
        }
        if !host_hooks.is_empty() {
            f.add("CA-HOOK-001", host_hooks.join("; "));
        }
    }
}
