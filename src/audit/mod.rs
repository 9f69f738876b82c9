//! `contain audit`: what a bundle and its policy leave open, before anything runs.
//!
//! [`audit`] is pure over its inputs: it applies the policy with the same function `create`
//! uses ([`crate::policy::apply`]), compiles the same seccomp filters and plans the same
//! Landlock rulesets, then checks the effective configuration against the catalogue
//! ([`rules::RULES`]). What it reports is what `create` would enforce on this host.

mod checks;
pub mod compare;
pub mod host;
pub mod live;
mod output;
pub mod rules;

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

/// Docker's default capability set.
pub(crate) const DOCKER_DEFAULT: [&str; 14] = [
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
    let (applied, refused) = match policy::apply(pol, spec, &host.facts) {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let a = Audited {
        effective: applied.as_ref().map_or(spec, |a| &a.spec),
        applied: applied.as_ref(),
        extra,
        host,
    };
    let mut f = Findings(Vec::new());
    let mut enforced = vec![Enforced {
        layer: "policy",
        what: pol.name.clone(),
    }];
    let mut hold = |layer: &'static str, what: String| enforced.push(Enforced { layer, what });
    hold("userns", checks::user_namespace(&mut f, &a));
    checks::capabilities(&mut f, &a);
    checks::namespaces(&mut f, &a);
    hold("seccomp", checks::seccomp(&mut f, &a));
    hold("landlock", checks::landlock(&mut f, &a));
    checks::privileges(&mut f, &a);
    checks::mounts(&mut f, &a);
    checks::devices(&mut f, &a);
    checks::resources(&mut f, &a);
    checks::sysctls(&mut f, &a);
    if let Some(isolation) = checks::isolation(&mut f, &a, pol) {
        hold("isolation", isolation);
    }
    checks::hooks(&mut f, &a);
    f.report(config.to_path_buf(), pol.name.clone(), refused, enforced)
}

/// What the checks read: the config as the policy leaves it, and what applying it decided.
struct Audited<'a> {
    effective: &'a Spec,
    applied: Option<&'a policy::Applied>,
    extra: &'a Extra,
    host: &'a Host,
}

impl Audited<'_> {
    fn namespaces(&self) -> Vec<oci_spec::runtime::LinuxNamespace> {
        self.linux().namespaces().clone().unwrap_or_default()
    }

    fn ns(&self, t: LinuxNamespaceType) -> Option<oci_spec::runtime::LinuxNamespace> {
        self.namespaces().into_iter().find(|n| n.typ() == t)
    }

    fn process(&self) -> oci_spec::runtime::Process {
        self.effective.process().clone().unwrap_or_default()
    }

    fn linux(&self) -> oci_spec::runtime::Linux {
        self.effective.linux().clone().unwrap_or_default()
    }

    fn resources(&self) -> oci_spec::runtime::LinuxResources {
        self.linux().resources().clone().unwrap_or_default()
    }
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
