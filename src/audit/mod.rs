//! `contain audit`: what a bundle and its policy leave open, before anything runs.
//!
//! [`audit`] is pure over its inputs: it applies the policy with the same function `create`
//! uses ([`crate::policy::apply`]), compiles the same seccomp filters and plans the same
//! Landlock rulesets, then checks the effective configuration against the catalogue
//! ([`rules::RULES`]). What it reports is what `create` would enforce on this host.

pub mod host;
pub mod live;
mod output;
pub mod rules;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::Serialize;

pub use output::{diff, render, render_diff, Change, Diff, Format};
pub use rules::{Layer, Rule, Severity, RULES};

use crate::landlock::ConfigLandlock;
use crate::policy::{self, Policy};
use crate::seccomp::{self, bpf::SeccompData, Profile};

/// One finding: a rule that fires, with what in the config made it fire.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub layer: Layer,
    pub title: &'static str,
    pub detail: String,
    pub remediation: &'static str,
    pub pss: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

/// What one layer enforces.
#[derive(Debug, Clone, Serialize)]
pub struct Enforced {
    pub layer: &'static str,
    pub what: String,
}

/// The result of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config.json audited.
    pub config: PathBuf,
    pub policy: String,
    /// 100 minus the weight of every finding, at least 0: higher is better.
    pub score: u32,
    pub summary: Summary,
    /// The Pod Security Standards levels the bundle meets ("restricted", "baseline", or none).
    pub pod_security: &'static str,
    /// Who chose the policy (the flag, the bundle's annotation, the operator's configuration,
    /// the built-in default), when the caller knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_by: Option<String>,
    /// Why the policy would refuse the config (then the config is audited as written).
    pub refused: Option<String>,
    /// What holds, layer by layer, as `state` would show it.
    pub enforced: Vec<Enforced>,
    pub findings: Vec<Finding>,
}

/// What the audit needs to know about the host (the caller gathers it).
#[derive(Debug, Clone)]
pub struct Host {
    pub facts: policy::Facts,
    /// The kernel's Landlock ABI version (0: none).
    pub landlock_abi: i32,
    /// Whether KVM can run the microVM stage here; else why not.
    pub microvm: Result<(), String>,
}

/// config.json's extra sections contain reads itself.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub seccomp: Option<Profile>,
    pub landlock: Option<ConfigLandlock>,
}

const ROOTLIKE: [&str; 11] = [
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_DAC_READ_SEARCH",
    "CAP_NET_ADMIN",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_SYS_TIME",
];

const DOCKER_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const SENSITIVE: [&str; 17] = [
    "/",
    "/run",
    "/var/run",
    "/var/lib/containerd",
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/boot",
    "/lib/modules",
    "/var/lib/kubelet",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/podman/podman.sock",
    "/var/lib/docker",
];

/// Host trees every path below which is as sensitive: any process's root or files through
/// /proc (/proc/1/root is the host's `/`), root's home (its SSH keys), the host's secrets and
/// SSH and cluster configuration. (Engines' per-container files under /run and /var/lib, such
/// as podman's and Docker's hosts files, are not: only those directories whole are, above.)
const SENSITIVE_TREES: [&str; 7] = [
    "/proc",
    "/root",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/ssh",
    "/etc/kubernetes",
];

/// Sysctls the Pod Security Standards (baseline) allow.
const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, id: &'static str, detail: String) {
        let r = rules::rule(id);
        self.0.push(Finding {
            id: r.id,
            severity: r.severity,
            layer: r.layer,
            title: r.title,
            detail,
            remediation: r.remediation,
            pss: r.pss,
        });
    }

    /// CA-CAP-001 and CA-CAP-002 for the capabilities held (names, sorted), each detail
    /// starting with `what`.
    fn capabilities(&mut self, held: &[String], what: &str) {
        let list = |pick: &dyn Fn(&str) -> bool| -> Vec<&str> {
            held.iter()
                .map(String::as_str)
                .filter(|c| pick(c))
                .collect()
        };
        let rootlike = list(&|c| ROOTLIKE.contains(&c));
        if !rootlike.is_empty() {
            self.add("CA-CAP-001", format!("{what} {}", rootlike.join(", ")));
        }
        let extra = list(&|c| !DOCKER_DEFAULT.contains(&c) && !ROOTLIKE.contains(&c));
        if !extra.is_empty() {
            self.add("CA-CAP-002", format!("{what} {}", extra.join(", ")));
        }
    }

    /// The report: findings worst first, counted, scored and mapped to the Pod Security
    /// Standards.
    fn report(
        self,
        config: PathBuf,
        policy: String,
        refused: Option<String>,
        enforced: Vec<Enforced>,
    ) -> Report {
        let mut findings = self.0;
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
        let count = |s| findings.iter().filter(|x| x.severity == s).count();
        let summary = Summary {
            critical: count(Severity::Critical),
            high: count(Severity::High),
            medium: count(Severity::Medium),
            low: count(Severity::Low),
        };
        let score = 100u32.saturating_sub(findings.iter().map(|x| x.severity.weight()).sum());
        let pod_security = if findings.iter().any(|x| x.pss == Some("baseline")) {
            "none"
        } else if findings.iter().any(|x| x.pss == Some("restricted")) {
            "baseline"
        } else {
            "restricted"
        };
        Report {
            config,
            policy,
            score,
            summary,
            pod_security,
            chosen_by: None,
            refused,
            enforced,
            findings,
        }
    }
}

/// Audit a config (already parsed and validated) under a policy on a host.
pub fn audit(config: &Path, spec: &Spec, extra: &Extra, pol: &Policy, host: &Host) -> Report {
    let mut f = Findings(Vec::new());
    let mut enforced = vec![Enforced {
        layer: "policy",
        what: pol.name.clone(),
    }];
    let mut hold = |layer: &'static str, what: String| enforced.push(Enforced { layer, what });
    let (applied, refused) = match policy::apply(pol, spec, &host.facts) {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let effective = applied.as_ref().map_or(spec, |a| &a.spec);
    let namespaces: Vec<_> = effective
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let ns = |t| namespaces.iter().find(|n| n.typ() == t);
    let process = effective.process().clone().unwrap_or_default();
    let linux = effective.linux().clone().unwrap_or_default();

    // User namespace.
    const CLIENT_USERNS: &str = "the client's (config.json's, its mappings honoured as given)";
    let userns_text = match applied.as_ref().map(|a| &a.userns) {
        Some(policy::UserNs::Added(_)) => "added by the policy (a range of the pool)".to_string(),
        Some(policy::UserNs::Pod(p)) => format!("the pod's, joined from container {:?}", p.sandbox),
        Some(policy::UserNs::None(why)) => format!("none ({why})"),
        Some(policy::UserNs::Config) => CLIENT_USERNS.to_string(),
        None if ns(LinuxNamespaceType::User).is_some() => CLIENT_USERNS.to_string(),
        None => "none in config.json".to_string(),
    };
    hold("userns", userns_text.clone());
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

    // Capabilities.
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

    // Namespaces.
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

    // Seccomp.
    let choice = applied
        .as_ref()
        .map_or(seccomp::Choice::ConfigOnly, |a| a.seccomp.choice());
    let bounding: Vec<String> = caps
        .bounding()
        .iter()
        .flatten()
        .map(crate::caps::cap_name)
        .collect();
    let lock_mounts = applied.as_ref().is_some_and(|a| a.lock_mounts);
    match seccomp::effective(extra.seccomp.as_ref(), bounding, choice, lock_mounts) {
        Ok(filters) if filters.is_empty() => {
            hold("seccomp", "none".into());
            f.add(
                "CA-SECCOMP-001",
                "config.json has no linux.seccomp and the policy adds none".into(),
            );
        }
        Ok(filters) => {
            hold(
                "seccomp",
                filters
                    .iter()
                    .map(|e| e.source.describe())
                    .collect::<Vec<_>>()
                    .join(" + "),
            );
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
        }
        Err(e) => {
            hold("seccomp", format!("invalid: {e}"));
            f.add(
                "CA-SECCOMP-001",
                format!("the profile cannot be compiled, so create would fail: {e}"),
            );
        }
    }

    // Landlock.
    let input = applied
        .as_ref()
        .map(|a| a.landlock.clone())
        .unwrap_or_default();
    match crate::landlock::plan(
        effective,
        extra.landlock.as_ref(),
        &input,
        host.landlock_abi,
    ) {
        Ok(plan) => {
            hold("landlock", plan.describe());
            if plan.layers.is_empty() {
                f.add("CA-LANDLOCK-001", plan.describe());
            } else if !plan.notes.is_empty() {
                f.add("CA-LANDLOCK-002", plan.notes.join("; "));
            }
        }
        Err(e) => {
            hold("landlock", format!("create would fail: {e}"));
            f.add("CA-LANDLOCK-001", format!("create would fail: {e}"));
        }
    }

    // Privileges.
    if !process.no_new_privileges().unwrap_or(false) {
        f.add("CA-PRIV-001", "process.noNewPrivileges is not true".into());
    }
    if process.user().uid() == 0 {
        f.add("CA-PRIV-002", "process.user.uid is 0".into());
    }
    if effective.root().as_ref().and_then(|r| r.readonly()) != Some(true) {
        f.add("CA-ROOTFS-001", "root.readonly is not true".into());
    }

    // Mounts.
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

    // Devices.
    let res = linux.resources().clone().unwrap_or_default();
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

    // Resources.
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

    // Kernel knobs.
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

    // Isolation stage.
    if let Some(plan) = applied.as_ref().and_then(|a| a.microvm.as_ref()) {
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
            Ok(()) => hold(
                "isolation",
                format!(
                    "microvm: kernel {}, {} MiB; the VMM jailed with per-thread seccomp",
                    plan.kernel,
                    plan.memory >> 20
                ),
            ),
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

    // Hooks.
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

    f.report(config.to_path_buf(), pol.name.clone(), refused, enforced)
}

/// `path` with every symlink on this host followed (at most 40), as the kernel will follow
/// them when it binds it; a link that cannot be read (a magic link of a process we may not
/// trace) is kept by its name. Only lstat and readlink: nothing is opened.
fn resolve(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => todo.push(n.to_os_string()),
                Component::ParentDir => todo.push("..".into()),
                _ => {}
            }
        }
    };
    push(&mut todo, path);
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        let is_link = std::fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink());
        match std::fs::read_link(&next) {
            Ok(target) if is_link && links < 40 => {
                links += 1;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                push(&mut todo, &target);
            }
            _ => out = next,
        }
    }
    out
}

/// A disk or other block device by its name (bound, it is the host's data).
fn is_disk(p: &Path) -> bool {
    let Ok(rest) = p.strip_prefix("/dev") else {
        return false;
    };
    let name = rest.to_string_lossy();
    [
        "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "dm-", "loop", "md", "mapper/", "disk/", "nbd",
        "zd",
    ]
    .iter()
    .any(|d| name.starts_with(d))
}

fn is_dev_node(p: &Path) -> bool {
    p.starts_with("/dev/") && p.components().count() == 3
}

/// The dangerous calls every filter of the stack lets through (x86_64 numbers; i386 and x32
/// as whole ABIs).
fn dangerous_allowed(profiles: &[&Profile]) -> Vec<String> {
    use crate::seccomp::compile::{Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_BIT};
    const NEWUSER: u64 = 0x1000_0000;
    let probes: [(&str, &str, [u64; 6]); 16] = [
        (
            "unshare(CLONE_NEWUSER)",
            "unshare",
            [NEWUSER, 0, 0, 0, 0, 0],
        ),
        (
            "clone(CLONE_NEWUSER)",
            "clone",
            [NEWUSER | 17, 0, 0, 0, 0, 0],
        ),
        ("mount", "mount", [0; 6]),
        ("ptrace", "ptrace", [16, 1, 0, 0, 0, 0]),
        ("bpf", "bpf", [0; 6]),
        ("keyctl", "keyctl", [0; 6]),
        ("add_key", "add_key", [0; 6]),
        ("kexec_load", "kexec_load", [0; 6]),
        ("init_module", "init_module", [0; 6]),
        ("finit_module", "finit_module", [0; 6]),
        ("open_by_handle_at", "open_by_handle_at", [0; 6]),
        ("userfaultfd", "userfaultfd", [0; 6]),
        ("perf_event_open", "perf_event_open", [0; 6]),
        ("io_uring_setup", "io_uring_setup", [0; 6]),
        (
            "personality(ADDR_NO_RANDOMIZE)",
            "personality",
            [0x0004_0000, 0, 0, 0, 0, 0],
        ),
        ("socket(AF_VSOCK)", "socket", [40, 1, 0, 0, 0, 0]),
    ];
    let allows = |d: &SeccompData| {
        profiles.iter().all(|p| {
            seccomp::reference::evaluate(p, d)
                .map(|ret| matches!(ret & 0xffff_0000, 0x7fff_0000 | 0x7ffc_0000))
                .unwrap_or(false)
        })
    };
    let mut open = Vec::new();
    for (label, name, args) in probes {
        let Some(nr) = Abi::X86_64.number(name) else {
            continue;
        };
        let d = SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            ip: 0,
            args,
        };
        if allows(&d) {
            open.push(label.to_string());
        }
    }
    for (label, arch, nr) in [
        ("i386 syscalls (int 0x80)", AUDIT_ARCH_I386, 20),
        ("x32 syscalls", AUDIT_ARCH_X86_64, 39 | X32_BIT),
    ] {
        let d = SeccompData {
            nr,
            arch,
            ip: 0,
            args: [0; 6],
        };
        if allows(&d) {
            open.push(label.to_string());
        }
    }
    open
}

#[cfg(test)]
mod tests;
