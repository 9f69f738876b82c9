//! Policies: which layers hold and how tight, as data (policies/*.json, compiled in), and
//! the one pure step that applies a policy to a config ([`apply`]), shared by `create` and the
//! audit so that what the audit reports is what `create` enforces.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::landlock::{ConfigLandlock, PlanInput};

mod operator;
pub use operator::{ChosenBy, Operator};

/// The policies shipped with contain: name, JSON text.
pub const BUILTIN: [(&str, &str); 3] = [
    ("default", include_str!("../../policies/default.json")),
    ("strict", include_str!("../../policies/strict.json")),
    ("runc", include_str!("../../policies/runc.json")),
];

/// The annotation that selects a policy (built-in names only).
pub const ANNOTATION: &str = "io.contain.policy";
/// The annotation that opts out of the user namespace a policy adds (`host`).
pub const USERNS_ANNOTATION: &str = "io.contain.userns";
/// The annotation that asks for an isolation stage (`container` or `microvm`).
pub const ISOLATION_ANNOTATION: &str = "io.contain.isolation";

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("policy {name}: {msg}")]
    Malformed { name: String, msg: String },
    #[error("unknown policy {0:?} (built in: default, strict, runc; or give a path to a policy file with --policy)")]
    Unknown(String),
    #[error("cannot read policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy {policy}: {field}: {reason}")]
    Refused {
        policy: String,
        field: String,
        reason: String,
    },
    #[error("annotation {ANNOTATION}: {0}")]
    BadAnnotation(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    /// Refuse to create the container.
    Refuse,
    /// Create it, with a warning naming what the policy would refuse.
    Warn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompMode {
    /// config.json's profile, else contain's default one.
    ConfigOrBuiltin,
    /// config.json's profile or none.
    Config,
    /// contain's default profile always, config.json's stacked on it.
    BuiltinAndConfig,
}

impl SeccompMode {
    /// The filters this mode installs.
    pub fn choice(self) -> crate::seccomp::Choice {
        match self {
            SeccompMode::ConfigOrBuiltin => crate::seccomp::Choice::ConfigOrDefault,
            SeccompMode::Config => crate::seccomp::Choice::ConfigOnly,
            SeccompMode::BuiltinAndConfig => crate::seccomp::Choice::DefaultAndConfig,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeWhen {
    /// Only where the namespace the scope protects is shared with the host (or joined):
    /// abstract unix sockets live in the network namespace, signals reach the pid namespace.
    SharedNamespace,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    Container,
    Microvm,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pool {
    /// Take the pool from this user's /etc/subuid and /etc/subgid entries when they exist.
    #[serde(default)]
    pub subid_user: Option<String>,
    /// Otherwise host ids [start, start + size).
    pub start: u32,
    pub size: u32,
    /// The ids each container gets (its ids 0 .. rangeSize-1).
    pub range_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserNamespace {
    /// Add a user namespace to a config without one (when contain runs as root).
    pub add: bool,
    /// Refuse to run a container without one where it cannot be added (a rootfs that cannot
    /// be idmapped, namespaces joined by path); otherwise run it without, and say so.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub pool: Option<Pool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    pub bind_tcp: Vec<u16>,
    pub connect_tcp: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Landlock {
    /// Derive a ruleset from the mounts (else only config.json's own section applies).
    pub enabled: bool,
    /// A kernel that cannot enforce every right fails the create.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub no_exec_writable: bool,
    #[serde(default)]
    pub split: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub scope_when: Option<ScopeWhen>,
    /// TCP ports allowed; absent: TCP not restricted by Landlock.
    #[serde(default)]
    pub network: Option<Network>,
    /// A ruleset of the policy's own, in the format of config.json's process.landlock.
    #[serde(default)]
    pub ruleset: Option<ConfigLandlock>,
    /// Also confine processes started with `exec`. Each gets a Landlock domain of its own,
    /// which cannot ptrace (read /proc/<pid>/ns, environ, ...) or, scoped, signal the
    /// container's other processes: strict wants that, default does not.
    #[serde(default)]
    pub on_exec: bool,
}

/// A policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub on_violation: OnViolation,
    pub user_namespace: UserNamespace,
    pub seccomp: SeccompMode,
    /// Seccomp profiles stacked on what `seccomp` installs (each must allow a call), by path;
    /// a relative path is resolved against the policy file's directory. `contain learn`
    /// writes a policy naming the profile it learnt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seccomp_profiles: Vec<PathBuf>,
    pub landlock: Landlock,
    /// Capabilities a config may ask for; null: any.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Capabilities removed from every set of config.json's process, whatever it asks for
    /// (`contain learn` lists those its runs never needed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_capabilities: Vec<String>,
    /// Namespaces a config may share with the host or join; null: any.
    #[serde(default)]
    pub host_namespaces: Option<Vec<String>>,
    /// Force process.noNewPrivileges.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// Force root.readonly.
    #[serde(default)]
    pub readonly_rootfs: bool,
    pub isolation: Isolation,
    /// The policy is meant for hostile code: the audit reports a workload under it that still
    /// shares the host kernel (isolation `container`).
    #[serde(default)]
    pub hostile: bool,
    /// Defaults for the microVM stage (guest kind, kernel, initramfs, command line).
    #[serde(default)]
    pub microvm: crate::microvm::Defaults,
    /// Limits added when config.json sets none.
    #[serde(default)]
    pub default_limits: DefaultLimits,
    /// Read-only mounts stay read-only under CAP_SYS_ADMIN: a container granted it gets the
    /// seccomp mount lock ([`crate::seccomp::MOUNT_LOCK_PROFILE`]) on top of its profile.
    #[serde(default)]
    pub lock_mounts: bool,
    /// What bind mounts (volumes) get.
    #[serde(default)]
    pub binds: Binds,
}

/// What a policy does to config.json's bind mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binds {
    /// Add `nosuid` and `nodev` to every bind whose options do not say `suid` or `dev`
    /// (a device node or anything under /dev keeps its devices), so that a setuid binary or
    /// device node planted on a volume gives nothing inside the container.
    #[serde(default)]
    pub nosuid_nodev: bool,
    /// With a user namespace the policy adds: idmap each bind with it, so that the volume's
    /// files keep their owners inside and container root writes as host root (runc's and the
    /// engines' behaviour for volumes). Off: binds are plain, their files keep their host
    /// owners (root's show as nobody) and what the container creates belongs to its own host
    /// range, so a setuid file it plants on a volume is worth nothing on the host.
    #[serde(default = "yes")]
    pub idmap: bool,
}

fn yes() -> bool {
    true
}

impl Default for Binds {
    fn default() -> Binds {
        Binds {
            nosuid_nodev: false,
            idmap: true,
        }
    }
}

impl Binds {
    /// Add nosuid and nodev to the binds of `spec` as [`Binds::nosuid_nodev`] says; returns
    /// how many were changed.
    fn apply(&self, spec: &mut Spec) -> usize {
        if !self.nosuid_nodev {
            return 0;
        }
        let Some(mut mounts) = spec.mounts().clone() else {
            return 0;
        };
        let mut changed = 0;
        for m in &mut mounts {
            let mut opts = m.options().clone().unwrap_or_default();
            let has = |o: &[String], w: &str| o.iter().any(|x| x == w);
            let bind =
                m.typ().as_deref() == Some("bind") || has(&opts, "bind") || has(&opts, "rbind");
            if !bind {
                continue;
            }
            let under_dev = |p: &Path| p.starts_with("/dev");
            let device = m.source().as_ref().is_some_and(|s| {
                use std::os::unix::fs::FileTypeExt;
                under_dev(s)
                    || std::fs::metadata(s).is_ok_and(|md| {
                        md.file_type().is_char_device() || md.file_type().is_block_device()
                    })
            }) || under_dev(m.destination());
            let before = opts.len();
            if !has(&opts, "suid") && !has(&opts, "nosuid") {
                opts.push("nosuid".into());
            }
            if !device && !has(&opts, "dev") && !has(&opts, "nodev") {
                opts.push("nodev".into());
            }
            if opts.len() != before {
                changed += 1;
                m.set_options(Some(opts));
            }
        }
        spec.set_mounts(Some(mounts));
        changed
    }
}

/// Resource limits a policy adds to a config that sets none, so that one container cannot
/// exhaust the host's processes (a fork bomb) or memory. Added only where contain runs as
/// root and the host has the controller: a default never fails a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultLimits {
    /// linux.resources.pids.limit.
    #[serde(default)]
    pub pids: Option<i64>,
    /// linux.resources.memory.limit, in bytes.
    #[serde(default)]
    pub memory: Option<i64>,
}

impl Policy {
    /// Parse and check a policy file (pure; the fuzz target's entry point).
    pub fn parse(name: &str, data: &[u8]) -> Result<Policy, PolicyError> {
        let bad = |msg: String| PolicyError::Malformed {
            name: name.into(),
            msg,
        };
        let p: Policy = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
        for (i, s) in p.landlock.scopes.iter().enumerate() {
            if !["abstract_unix_socket", "signal"].contains(&s.as_str()) {
                return Err(bad(format!(
                    "landlock.scopes[{i}]: unknown scope {s:?} (abstract_unix_socket, signal)"
                )));
            }
        }
        if let Some(r) = &p.landlock.ruleset {
            r.validate("landlock.ruleset")
                .map_err(|e| bad(e.to_string()))?;
        }
        for (i, c) in p.capabilities.iter().flatten().enumerate() {
            if !crate::caps::is_known(c) {
                return Err(bad(format!("capabilities[{i}]: unknown capability {c:?}")));
            }
        }
        for (i, c) in p.drop_capabilities.iter().enumerate() {
            if !crate::caps::is_known(c) {
                return Err(bad(format!(
                    "dropCapabilities[{i}]: unknown capability {c:?}"
                )));
            }
        }
        for (i, n) in p.host_namespaces.iter().flatten().enumerate() {
            if ns_type(n).is_none() {
                return Err(bad(format!("hostNamespaces[{i}]: unknown namespace {n:?}")));
            }
        }
        if let Some(pool) = &p.user_namespace.pool {
            if pool.range_size == 0 || pool.size < pool.range_size {
                return Err(bad(format!(
                    "userNamespace.pool: size {} cannot hold one range of {}",
                    pool.size, pool.range_size
                )));
            }
            if u64::from(pool.start) + u64::from(pool.size) > u64::from(u32::MAX) {
                return Err(bad("userNamespace.pool: ends beyond the last uid".into()));
            }
        }
        if p.user_namespace.add && p.user_namespace.pool.is_none() {
            return Err(bad("userNamespace.add needs a pool".into()));
        }
        Ok(p)
    }

    pub fn builtin(name: &str) -> Option<Policy> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(n, text)| {
            Policy::parse(n, text.as_bytes())
                .unwrap_or_else(|e| unreachable!("built-in policies are tested to parse: {e}"))
        })
    }

    /// A built-in name, or a path to a policy file.
    pub fn load(name_or_path: &str) -> Result<Policy, PolicyError> {
        if let Some(p) = Policy::builtin(name_or_path) {
            return Ok(p);
        }
        if !name_or_path.contains('/') && !name_or_path.ends_with(".json") {
            return Err(PolicyError::Unknown(name_or_path.into()));
        }
        let path = Path::new(name_or_path);
        let data = std::fs::read(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut policy = Policy::parse(name_or_path, &data)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for p in &mut policy.seccomp_profiles {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        Ok(policy)
    }

    /// The policy for a container, and who chose it: the flag (`--policy`, `CONTAIN_POLICY`),
    /// else the bundle's annotation (a built-in name only: a path in config.json would let
    /// its writer make the runtime read any file; and only one the operator's floor admits),
    /// else the operator's configuration, else `default`.
    pub fn select(
        flag: Option<&str>,
        spec: &Spec,
        operator: &Operator,
    ) -> Result<(Policy, ChosenBy), PolicyError> {
        if let Some(f) = flag {
            return Ok((Policy::load(f)?, ChosenBy::Flag));
        }
        let ann = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION).cloned());
        if let Some(name) = ann {
            let p = Policy::builtin(&name).ok_or_else(|| {
                PolicyError::BadAnnotation(format!(
                    "{name:?} is not a built-in policy (default, strict, runc); a policy file can only be chosen with --policy"
                ))
            })?;
            if !operator.admits(&name) {
                return Err(PolicyError::BadAnnotation(format!(
                    "{name:?} is weaker than the floor {:?} ({}): a bundle's annotations may make a container stricter, never weaker; the operator may allow it with allowAnnotations [\"{ANNOTATION}={name}\"]",
                    operator.floor(),
                    operator.describe()
                )));
            }
            return Ok((p, ChosenBy::Annotation));
        }
        if let (Some(name), Some(path)) = (&operator.policy, &operator.path) {
            return Ok((Policy::load(name)?, ChosenBy::Operator(path.clone())));
        }
        Ok((
            Policy::builtin("default").unwrap_or_else(|| unreachable!()),
            ChosenBy::Default,
        ))
    }
}

fn ns_type(name: &str) -> Option<LinuxNamespaceType> {
    Some(match name {
        "pid" => LinuxNamespaceType::Pid,
        "network" => LinuxNamespaceType::Network,
        "ipc" => LinuxNamespaceType::Ipc,
        "uts" => LinuxNamespaceType::Uts,
        "mount" => LinuxNamespaceType::Mount,
        "cgroup" => LinuxNamespaceType::Cgroup,
        "user" => LinuxNamespaceType::User,
        "time" => LinuxNamespaceType::Time,
        _ => return None,
    })
}

/// The runtime spec's name of a namespace type ("network").
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
    }
}

/// How the user namespace of a container comes about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserNs {
    /// config.json has one (created or joined) and its own mappings.
    Config,
    /// The policy adds one; the mappings come from the pool at create.
    Added(Pool),
    /// The namespaces config.json joins belong to the user namespace the policy added to
    /// another container (the pod's sandbox): this one joins it, with the sandbox's range.
    Pod(Pod),
    /// None: container root is host root. The reason, for `state` and the audit.
    None(String),
}

/// A policy applied to a config: what `create` sets up and the audit reports.
#[derive(Debug, Clone)]
pub struct Applied {
    pub policy: String,
    /// The config with what the policy forces (user namespace entry, read-only rootfs,
    /// no_new_privs); mappings of an added user namespace are filled in at create.
    pub spec: Spec,
    pub userns: UserNs,
    pub seccomp: SeccompMode,
    /// The policy's own profiles, stacked ([`Policy::seccomp_profiles`]).
    pub seccomp_profiles: Vec<PathBuf>,
    pub landlock: PlanInput,
    /// The microVM stage, when the annotation or the policy asks for it.
    pub microvm: Option<crate::microvm::Plan>,
    /// Violations let through by `onViolation: warn`, and other notes.
    pub warnings: Vec<String>,
    /// The policy's default limits added to the config (`pids.limit 4096`, ...).
    pub added_limits: Vec<String>,
    /// Stack the mount lock when CAP_SYS_ADMIN is granted.
    pub lock_mounts: bool,
    /// The added user namespace idmaps the binds (see [`Binds::idmap`]).
    pub idmap_binds: bool,
    /// What the policy did to the binds, for `state`.
    pub binds: String,
    /// The host's namespaces config.json joins by path that are joined before the user
    /// namespace the policy adds or the pod's (as host root, from outside it).
    pub joined_first: Vec<LinuxNamespaceType>,
}

const SHAREABLE: [LinuxNamespaceType; 6] = [
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Cgroup,
];

/// The pod a container belongs to: every namespace it joins by path (its network namespace
/// may be the host's) is owned by the user namespace contain added to another container of the
/// same state root, the pod's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// The sandbox container's id.
    pub sandbox: String,
    /// Its user namespace (/proc/PID/ns/user of the sandbox's init).
    pub userns: PathBuf,
    /// That namespace's identity (nsfs device, inode), checked again once joined.
    pub userns_id: (u64, u64),
    /// The host id range the sandbox holds.
    pub range: crate::ns::idmap::Range,
    /// The joined namespaces that are the host's (the network namespace CNI made, the UTS
    /// namespace of a hostNetwork pod): joined first, as host root.
    pub host_owned: Vec<LinuxNamespaceType>,
}

/// What `apply` needs to know about the host and the bundle (gathered by the caller, so
/// that `apply` stays pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// contain runs as host root (a policy adds a user namespace only then; a rootless
    /// caller's config has its own).
    pub as_root: bool,
    /// Whether the rootfs can be idmapped; the reason if not.
    pub rootfs_idmap: Result<(), String>,
    /// The cgroup controllers this host has (v1 hierarchies and the cgroup2 tree).
    pub controllers: Vec<String>,
    /// The weakening annotations the operator lets bundles use (`KEY=VALUE`).
    pub allowed_annotations: Vec<String>,
    /// The pod whose user namespace owns the namespaces config.json joins, if any (found by
    /// `create`; the audit does not look).
    pub pod: Option<Pod>,
    /// The namespaces config.json joins by path that are the host's and can be joined before
    /// an added user namespace (found by `create`, and by the audit where the paths exist).
    pub host_joins: Vec<LinuxNamespaceType>,
}

impl Facts {
    /// This host's facts, with `rootfs_idmap` for the bundle at hand.
    pub fn of_host(rootfs_idmap: Result<(), String>, operator: &Operator) -> Facts {
        Facts {
            as_root: nix::unistd::geteuid().is_root(),
            rootfs_idmap,
            allowed_annotations: operator.allow_annotations.clone(),
            pod: None,
            host_joins: Vec::new(),
            controllers: crate::cgroups::hierarchies()
                .unwrap_or_default()
                .into_iter()
                .flat_map(|h| h.controllers)
                .collect(),
        }
    }
}

/// The policy for a bundle on this host, who chose it, and the facts [`apply`] needs, from
/// one reading of the operator's configuration (create, the audit and guest-initramfs all
/// choose this way).
pub fn choose(
    flag: Option<&str>,
    spec: &Spec,
    rootfs_idmap: Result<(), String>,
) -> Result<(Policy, ChosenBy, Facts), PolicyError> {
    let operator = Operator::load()?;
    let (policy, by) = Policy::select(flag, spec, &operator)?;
    Ok((policy, by, Facts::of_host(rootfs_idmap, &operator)))
}

/// Apply `policy` to `spec` (pure).
/// What `apply` found: violations refuse (or warn, under `onViolation: warn`), notes warn.
struct Verdicts<'a> {
    policy: &'a Policy,
    warnings: Vec<String>,
}

impl Verdicts<'_> {
    fn violation(&mut self, field: &str, reason: String) -> Result<(), PolicyError> {
        match self.policy.on_violation {
            OnViolation::Refuse => Err(PolicyError::Refused {
                policy: self.policy.name.clone(),
                field: field.into(),
                reason,
            }),
            OnViolation::Warn => {
                self.warnings
                    .push(format!("policy {}: {field}: {reason}", self.policy.name));
                Ok(())
            }
        }
    }
}

/// Remove `drop` from every capability set of the config's process.
fn drop_capabilities(spec: &mut Spec, drop: &[String]) {
    if drop.is_empty() {
        return;
    }
    let Some(mut process) = spec.process().clone() else {
        return;
    };
    let Some(mut caps) = process.capabilities().clone() else {
        return;
    };
    let keep = |set: &Option<oci_spec::runtime::Capabilities>| {
        set.clone().map(|mut s| {
            s.retain(|c| !drop.contains(&crate::caps::cap_name(c)));
            s
        })
    };
    caps.set_bounding(keep(caps.bounding()));
    caps.set_effective(keep(caps.effective()));
    caps.set_inheritable(keep(caps.inheritable()));
    caps.set_permitted(keep(caps.permitted()));
    caps.set_ambient(keep(caps.ambient()));
    process.set_capabilities(Some(caps));
    spec.set_process(Some(process));
}

/// Capabilities a config may ask for.
fn check_capabilities(v: &mut Verdicts<'_>, spec: &Spec) -> Result<(), PolicyError> {
    let policy = v.policy;
    if let (Some(allowed), Some(caps)) = (
        &policy.capabilities,
        spec.process()
            .as_ref()
            .and_then(|p| p.capabilities().clone()),
    ) {
        let sets = [
            ("bounding", caps.bounding()),
            ("effective", caps.effective()),
            ("inheritable", caps.inheritable()),
            ("permitted", caps.permitted()),
            ("ambient", caps.ambient()),
        ];
        for (set, list) in sets {
            let mut names: Vec<String> = list
                .iter()
                .flatten()
                .map(crate::caps::cap_name)
                .filter(|c| !allowed.contains(c))
                .collect();
            names.sort();
            names.dedup();
            if !names.is_empty() {
                v.violation(
                    &format!("process.capabilities.{set}"),
                    format!(
                        "{} not allowed (allowed: {})",
                        names.join(", "),
                        allowed.join(", ")
                    ),
                )?;
            }
        }
    }

    Ok(())
}

/// Namespaces shared with the host or joined.
fn check_host_namespaces(
    v: &mut Verdicts<'_>,
    namespaces: &[LinuxNamespace],
) -> Result<(), PolicyError> {
    let policy = v.policy;
    let find = |t| namespaces.iter().find(|n| n.typ() == t);
    if let Some(allowed) = &policy.host_namespaces {
        let mut check = |t: LinuxNamespaceType| -> Result<(), PolicyError> {
            let how = match find(t) {
                None => "shared with the host",
                Some(n) if n.path().is_some() => "joined from a path",
                Some(_) => return Ok(()),
            };
            if allowed.iter().any(|a| a == ns_name(t)) {
                return Ok(());
            }
            v.violation(
                "linux.namespaces",
                format!(
                    "the {} namespace is {how}; this policy requires a new one",
                    ns_name(t)
                ),
            )
        };
        for t in SHAREABLE {
            check(t)?;
        }
        if find(LinuxNamespaceType::User).is_some_and(|n| n.path().is_some()) {
            check(LinuxNamespaceType::User)?;
        }
    }

    Ok(())
}

/// The microVM stage, when the annotation or the policy asks for it (the spec gets the
/// VMM's charge).
fn isolation(
    policy: &Policy,
    spec: &mut Spec,
) -> Result<Option<crate::microvm::Plan>, PolicyError> {
    let asked = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ISOLATION_ANNOTATION).cloned());
    let microvm = match asked.as_deref() {
        None => policy.isolation == Isolation::Microvm,
        Some("microvm") => true,
        Some("container") if policy.isolation == Isolation::Microvm => {
            return Err(PolicyError::Refused {
                policy: policy.name.clone(),
                field: format!("annotation {ISOLATION_ANNOTATION}"),
                reason: "\"container\": the policy runs every workload in the microVM stage".into(),
            })
        }
        Some("container") => false,
        Some(other) => {
            return Err(PolicyError::Refused {
                policy: policy.name.clone(),
                field: format!("annotation {ISOLATION_ANNOTATION}"),
                reason: format!("{other:?}: the values are \"container\" and \"microvm\""),
            })
        }
    };
    let microvm = microvm
        .then(|| crate::microvm::plan(&*spec, &policy.microvm))
        .transpose()
        .map_err(|reason| PolicyError::Refused {
            policy: policy.name.clone(),
            field: "microvm".into(),
            reason: reason.to_string(),
        })?;
    if microvm.is_some() {
        crate::microvm::charge_vmm(spec);
    }

    Ok(microvm)
}

/// How the container gets its user namespace: config.json's, added by the policy (a range of
/// the pool, filled in at create), the pod's, or none (and why).
fn user_namespace(
    v: &mut Verdicts<'_>,
    spec: &mut Spec,
    namespaces: &[LinuxNamespace],
    facts: &Facts,
) -> Result<UserNs, PolicyError> {
    let policy = v.policy;
    let opt_out = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(USERNS_ANNOTATION).cloned());
    if let Some(value) = opt_out.as_deref().filter(|v| *v != "host") {
        return Err(PolicyError::Refused {
            policy: policy.name.clone(),
            field: format!("annotation {USERNS_ANNOTATION}"),
            reason: format!("{value:?}: the only value is \"host\""),
        });
    }
    if namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User)
    {
        return Ok(UserNs::Config);
    }
    if !policy.user_namespace.add {
        return Ok(UserNs::None(format!("policy {} adds none", policy.name)));
    }
    if !facts.as_root {
        return Ok(UserNs::None("contain is not running as root".into()));
    }
    if opt_out.is_some() {
        return host_opt_out(v, facts);
    }
    if let Some(why) = cannot_add(namespaces, facts) {
        if policy.user_namespace.required {
            return Err(PolicyError::Refused {
                policy: policy.name.clone(),
                field: "linux.namespaces".into(),
                reason: format!("the policy requires a user namespace, but {why}"),
            });
        }
        v.warnings.push(format!(
            "policy {}: no user namespace added (container root is host root): {why}",
            policy.name
        ));
        return Ok(UserNs::None(format!("not added: {why}")));
    }
    add_user_namespace(v, spec, namespaces, facts)
}

/// Why a user namespace cannot be added, if it cannot: a namespace joined by path that could
/// not be entered from it, or a rootfs that cannot be idmapped. A network namespace joined by
/// path, and another of the host's that can be (see `Facts::host_joins`), is joined before
/// the user namespace is made (as root, the init can); a pod's are the pod's user namespace's.
fn cannot_add(namespaces: &[LinuxNamespace], facts: &Facts) -> Option<String> {
    let joins = namespaces
        .iter()
        .filter(|n| {
            n.path().is_some()
                && n.typ() != LinuxNamespaceType::Network
                && !facts.host_joins.contains(&n.typ())
        })
        .map(|n| ns_name(n.typ()))
        .collect::<Vec<_>>();
    if !joins.is_empty() && facts.pod.is_none() {
        Some(format!(
            "config.json joins the {} namespace(s) by path, which a new user namespace could not enter; give it the user namespace to join",
            joins.join(", ")
        ))
    } else {
        facts.rootfs_idmap.clone().err()
    }
}

/// The bundle's annotation io.contain.userns=host: honoured only where the operator allows it,
/// and a violation of a policy that limits host namespaces.
fn host_opt_out(v: &mut Verdicts<'_>, facts: &Facts) -> Result<UserNs, PolicyError> {
    let policy = v.policy;
    let allowed = format!("{USERNS_ANNOTATION}=host");
    if !facts.allowed_annotations.contains(&allowed) {
        return Err(PolicyError::Refused {
            policy: policy.name.clone(),
            field: format!("annotation {USERNS_ANNOTATION}"),
            reason: format!(
                "\"host\" would make container root host root; a bundle's annotations may make a container stricter, never weaker (the operator may allow it: allowAnnotations [\"{allowed}\"] in {})",
                operator::CONFIG_PATH
            ),
        });
    }
    if policy.host_namespaces.is_some() {
        v.violation(
            &format!("annotation {USERNS_ANNOTATION}"),
            "\"host\" opts out of the user namespace this policy adds".into(),
        )?;
    }
    Ok(UserNs::None(format!(
        "opted out by annotation {USERNS_ANNOTATION}=host"
    )))
}

/// Add the user namespace entry to the config (the pod's, joined by path, or a new one with a
/// range of the pool, filled in at create), with a warning for every namespace of the host's
/// joined before it.
fn add_user_namespace(
    v: &mut Verdicts<'_>,
    spec: &mut Spec,
    namespaces: &[LinuxNamespace],
    facts: &Facts,
) -> Result<UserNs, PolicyError> {
    let policy = v.policy;
    let pool = policy
        .user_namespace
        .pool
        .clone()
        .ok_or_else(|| PolicyError::Malformed {
            name: policy.name.clone(),
            msg: "userNamespace.add needs a pool".into(),
        })?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut list = namespaces.to_vec();
    let mut user = oci_spec::runtime::LinuxNamespaceBuilder::default()
        .typ(LinuxNamespaceType::User)
        .build()
        .map_err(|e| PolicyError::Malformed {
            name: policy.name.clone(),
            msg: e.to_string(),
        })?;
    user.set_path(facts.pod.as_ref().map(|p| p.userns.clone()));
    let host_owned = match &facts.pod {
        Some(pod) => &pod.host_owned,
        None => &facts.host_joins,
    };
    if let Some(field) =
        crate::oci::uts_name_set(spec).filter(|_| host_owned.contains(&LinuxNamespaceType::Uts))
    {
        return Err(PolicyError::Refused {
            policy: policy.name.clone(),
            field: field.into(),
            reason: "the uts namespace joined by path is the host's, joined before the user namespace this policy adds: container root cannot set names in it (leave it empty, or use a policy that adds no user namespace, such as runc)".into(),
        });
    }
    list.push(user);
    linux.set_namespaces(Some(list));
    spec.set_linux(Some(linux));
    if let Some(pod) = &facts.pod {
        for t in pod
            .host_owned
            .iter()
            .filter(|t| **t != LinuxNamespaceType::Network)
        {
            v.warnings.push(format!(
                "policy {}: the {} namespace joined by path is the host's: it is joined before the pod's user namespace, and container root holds no capability in it",
                policy.name,
                ns_name(*t)
            ));
        }
        return Ok(UserNs::Pod(pod.clone()));
    }
    let host: Vec<&str> = facts
        .host_joins
        .iter()
        .filter(|t| **t != LinuxNamespaceType::Network)
        .map(|t| ns_name(*t))
        .collect();
    if !host.is_empty() {
        v.warnings.push(format!(
            "policy {}: the host's {} namespace(s) joined by path are joined before the added user namespace is made: container root holds no capability in them",
            policy.name,
            host.join(", ")
        ));
    }
    let joined_net = namespaces
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .and_then(|n| n.path().clone());
    if let Some(p) = &joined_net {
        v.warnings.push(format!(
            "policy {}: the network namespace {} is joined before the added user namespace is made, so it stays the host's: container root holds no capability in it (no raw sockets); ports below 1024 and ICMP echo sockets are opened to every user in it, as Docker does",
            policy.name,
            p.display()
        ));
    }
    Ok(UserNs::Added(pool))
}

pub fn apply(policy: &Policy, spec: &Spec, facts: &Facts) -> Result<Applied, PolicyError> {
    let mut spec = spec.clone();
    let mut v = Verdicts {
        policy,
        warnings: Vec::new(),
    };
    let namespaces: Vec<LinuxNamespace> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let find = |t| namespaces.iter().find(|n| n.typ() == t);
    drop_capabilities(&mut spec, &policy.drop_capabilities);
    check_capabilities(&mut v, &spec)?;
    check_host_namespaces(&mut v, &namespaces)?;
    let microvm = isolation(policy, &mut spec)?;
    // What the policy forces.
    if policy.readonly_rootfs {
        if let Some(root) = spec.root().clone() {
            let mut root = root;
            root.set_readonly(Some(true));
            spec.set_root(Some(root));
        }
    }
    if policy.no_new_privileges {
        if let Some(mut p) = spec.process().clone() {
            p.set_no_new_privileges(Some(true));
            spec.set_process(Some(p));
        }
    }

    let userns = user_namespace(&mut v, &mut spec, &namespaces, facts)?;
    let shared = |t| find(t).is_none_or(|n| n.path().is_some());
    let ll = &policy.landlock;
    let scopes = ll
        .scopes
        .iter()
        .filter(
            |s| match ll.scope_when.unwrap_or(ScopeWhen::SharedNamespace) {
                ScopeWhen::Always => true,
                ScopeWhen::SharedNamespace => match s.as_str() {
                    "abstract_unix_socket" => shared(LinuxNamespaceType::Network),
                    _ => shared(LinuxNamespaceType::Pid),
                },
            },
        )
        .cloned()
        .collect();
    let landlock = PlanInput {
        derive_from_mounts: ll.enabled,
        required: ll.required,
        no_exec_writable: ll.no_exec_writable,
        split: ll.split,
        scopes,
        bind_tcp: ll.network.as_ref().map(|n| n.bind_tcp.clone()),
        connect_tcp: ll.network.as_ref().map(|n| n.connect_tcp.clone()),
        policy_layer: ll.ruleset.clone(),
        on_exec: ll.on_exec,
    };
    let added_limits = add_default_limits(&mut spec, &policy.default_limits, facts);
    let hardened = policy.binds.apply(&mut spec);
    let idmap_binds = policy.binds.idmap && matches!(userns, UserNs::Added(_) | UserNs::Pod(_));
    let binds = format!(
        "{}; {}",
        if hardened > 0 {
            format!("nosuid,nodev added to {hardened} (none under /dev gets nodev)")
        } else {
            "options as config.json says".into()
        },
        match &userns {
            UserNs::Added(_) | UserNs::Pod(_) if idmap_binds => "idmapped: container root writes as host root",
            UserNs::Added(_) | UserNs::Pod(_) => "not idmapped: files keep their host owners, new ones belong to the container's host range",
            _ => "not idmapped",
        }
    );
    let joined_first = match &userns {
        UserNs::Added(_) => facts.host_joins.clone(),
        UserNs::Pod(p) => p.host_owned.clone(),
        UserNs::Config | UserNs::None(_) => Vec::new(),
    };
    Ok(Applied {
        policy: policy.name.clone(),
        spec,
        userns,
        seccomp: policy.seccomp,
        seccomp_profiles: policy.seccomp_profiles.clone(),
        landlock,
        microvm,
        warnings: v.warnings,
        added_limits,
        lock_mounts: policy.lock_mounts,
        idmap_binds,
        binds,
        joined_first,
    })
}

/// Add the policy's default limits that config.json does not set; returns what was added.
fn add_default_limits(spec: &mut Spec, limits: &DefaultLimits, facts: &Facts) -> Vec<String> {
    let has = |c: &str| facts.as_root && facts.controllers.iter().any(|h| h == c);
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut added = Vec::new();
    if let Some(n) = limits.pids.filter(|_| res.pids().is_none() && has("pids")) {
        let mut p = oci_spec::runtime::LinuxPids::default();
        p.set_limit(n);
        res.set_pids(Some(p));
        added.push(format!("pids.limit {n}"));
    }
    let memory_set = res.memory().as_ref().is_some_and(|m| m.limit().is_some());
    if let Some(n) = limits.memory.filter(|_| !memory_set && has("memory")) {
        let mut m = (*res.memory()).unwrap_or_default();
        m.set_limit(Some(n));
        res.set_memory(Some(m));
        added.push(format!("memory.limit {n}"));
    }
    if !added.is_empty() {
        linux.set_resources(Some(res));
        spec.set_linux(Some(linux));
    }
    added
}

#[cfg(test)]
mod tests;
