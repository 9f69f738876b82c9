//! `contain learn`: run a workload under an observer filter, record what it does, and write
//! the tightest seccomp profile that still runs it, with a policy that stacks it.
//!
//! * The observer ([`observer`]) is one more seccomp filter: every syscall is notified to a
//!   supervisor process ([`supervisor`]), which records it and lets it continue
//!   (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The policy's own filters are still installed and
//!   still decide (a denial outranks a notification), so what is learnt never exceeds what
//!   the policy allowed.
//! * [`Observations`] are what one or several runs saw, merged; [`Observations::profile`] turns
//!   them into an OCI seccomp profile whose every rule says which observation led to it.

pub mod caps;
pub mod fs;
pub mod supervisor;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::seccomp::compile::{Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_BIT};
use crate::seccomp::profile::{ActionName, Arg, Op, Profile, Rule};

/// The files `learn` writes in its output directory.
pub const OBSERVATIONS: &str = "observations.json";
pub const SECCOMP: &str = "seccomp.json";
pub const POLICY: &str = "policy.json";

/// Distinct argument tuples kept per syscall; past it the syscall is allowed without
/// argument rules, and the result says so.
pub const MAX_ARG_TUPLES: usize = 32;

/// The observer filter: every syscall of every x86 ABI goes to the supervisor at `sock`.
pub fn observer(sock: &Path) -> Profile {
    Profile {
        default_action: ActionName::Notify,
        default_errno_ret: None,
        default_errno: None,
        architectures: Some(
            [Abi::X86_64, Abi::I386, Abi::X32]
                .iter()
                .map(|a| a.token().to_string())
                .collect(),
        ),
        arch_map: None,
        flags: None,
        listener_path: Some(sock.to_path_buf()),
        listener_metadata: Some(OBSERVER.into()),
        syscalls: None,
        comment: Some(
            "contain learn's observer: records every syscall, then lets it continue".into(),
        ),
    }
}

/// Whether a profile from a container's state is the observer [`observer`] made.
pub fn is_observer(p: &Profile) -> bool {
    p.default_action == ActionName::Notify && p.listener_metadata.as_deref() == Some(OBSERVER)
}

const OBSERVER: &str = "contain-learn";

/// The arguments worth keeping for a syscall (the ones a profile can usefully narrow):
/// clone's flags, socket's family and type, personality's persona, ioctl's request,
/// prctl's option.
pub fn sensitive_args(name: &str) -> &'static [usize] {
    match name {
        "clone" | "personality" | "prctl" => &[0],
        "socket" | "socketpair" => &[0, 1],
        "ioctl" => &[1],
        _ => &[],
    }
}

/// The ABI of a notification's `arch` and syscall number, and the number within it.
pub fn abi_of(arch: u32, nr: i32) -> Option<(Abi, u32)> {
    let nr = u32::try_from(nr).ok()?;
    match arch {
        AUDIT_ARCH_X86_64 if nr & X32_BIT != 0 => Some((Abi::X32, nr)),
        AUDIT_ARCH_X86_64 => Some((Abi::X86_64, nr)),
        AUDIT_ARCH_I386 => Some((Abi::I386, nr)),
        _ => None,
    }
}

/// A syscall's name in `abi`'s table.
pub fn name_of(abi: Abi, nr: u32) -> Option<&'static str> {
    abi.table()
        .iter()
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}

/// What the runs saw of one syscall in one ABI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    pub count: u64,
    /// The command (comm) of the first process seen making it.
    #[serde(default)]
    pub first_by: String,
    /// Distinct tuples of [`sensitive_args`], at most [`MAX_ARG_TUPLES`].
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub args: BTreeSet<Vec<u64>>,
    /// More distinct tuples were seen than are kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_overflow: bool,
}

impl Seen {
    pub fn add_args(&mut self, tuple: Vec<u64>) {
        if self.args_overflow || self.args.contains(&tuple) {
            return;
        }
        if self.args.len() >= MAX_ARG_TUPLES {
            self.args_overflow = true;
            self.args.clear();
        } else {
            self.args.insert(tuple);
        }
    }

    fn merge(&mut self, other: &Seen) {
        self.count += other.count;
        if self.first_by.is_empty() {
            self.first_by.clone_from(&other.first_by);
        }
        if other.args_overflow {
            self.args_overflow = true;
            self.args.clear();
        }
        for t in &other.args {
            self.add_args(t.clone());
        }
    }
}

/// ABI token ("SCMP_ARCH_X86_64") -> syscall name -> what was seen.
pub type ByAbi = BTreeMap<String, BTreeMap<String, Seen>>;

/// What learning runs saw, merged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observations {
    /// How many runs (and `exec`s) were merged in.
    pub runs: u32,
    /// The workload's syscalls, from the execve of the container's process (or of an
    /// `exec`ed one) on.
    pub syscalls: ByAbi,
    /// contain's own process between installing the filters and execve: needed by a profile
    /// when process.noNewPrivileges is false (the filters then come before the credentials
    /// are set, as under runc).
    pub runtime: ByAbi,
    /// Directories written, created in, removed from and executed from, with the Landlock
    /// rights each needed ([`fs`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fs: fs::Dirs,
    /// Capabilities exercised ([`caps`]), each with the first observation that needed it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub caps: BTreeMap<String, String>,
    /// TCP ports bound and connected to (IPv4 and IPv6).
    #[serde(default, skip_serializing_if = "Tcp::is_empty")]
    pub tcp: Tcp,
    /// What the learnt result cannot vouch for (exits, kills, namespaces entered).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The TCP ports the workload bound and connected to, each with the command that first did:
/// the learnt policy's Landlock network rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tcp {
    #[serde(default)]
    pub bind: BTreeMap<u16, String>,
    #[serde(default)]
    pub connect: BTreeMap<u16, String>,
}

impl Tcp {
    pub fn is_empty(&self) -> bool {
        self.bind.is_empty() && self.connect.is_empty()
    }

    /// Record a use of `port` by `syscall` ("bind" or "connect"), first by `comm`.
    pub fn add(&mut self, syscall: &str, port: u16, comm: impl FnOnce() -> String) {
        let map = if syscall == "bind" {
            &mut self.bind
        } else {
            &mut self.connect
        };
        map.entry(port).or_insert_with(comm);
    }

    fn merge(&mut self, other: &Tcp) {
        for (mine, theirs) in [
            (&mut self.bind, &other.bind),
            (&mut self.connect, &other.connect),
        ] {
            for (port, by) in theirs {
                mine.entry(*port).or_insert_with(|| by.clone());
            }
        }
    }
}

/// A difference between a run and what was learnt before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum New {
    Syscall {
        abi: String,
        name: String,
        /// None: the syscall itself is new; Some: a new argument tuple of a known syscall.
        args: Option<Vec<u64>>,
    },
    /// A TCP port `bind` or `connect` used.
    Tcp { syscall: &'static str, port: u16 },
    /// A Landlock right needed beneath a directory.
    Fs {
        dir: std::path::PathBuf,
        right: String,
    },
    /// A capability exercised.
    Cap(String),
}

impl std::fmt::Display for New {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            New::Syscall { abi, name, args } => {
                let abi = abi.trim_start_matches("SCMP_ARCH_");
                match args {
                    None => write!(f, "syscall {name} ({abi})"),
                    Some(a) => write!(f, "{name} ({abi}) with {}", describe_args(name, a)),
                }
            }
            New::Tcp { syscall, port } => write!(f, "TCP {syscall} on port {port}"),
            New::Fs { dir, right } => write!(f, "{right} beneath {}", dir.display()),
            New::Cap(cap) => write!(f, "capability {cap}"),
        }
    }
}

impl Observations {
    pub fn load(path: &Path) -> Result<Option<Observations>, String> {
        match std::fs::read(path) {
            Ok(d) => serde_json::from_slice(&d)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Add a note, once.
    pub fn note(&mut self, n: String) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    /// Add another run's observations.
    pub fn merge(&mut self, other: &Observations) {
        self.runs += other.runs;
        for (mine, theirs) in [
            (&mut self.syscalls, &other.syscalls),
            (&mut self.runtime, &other.runtime),
        ] {
            for (abi, calls) in theirs {
                let m = mine.entry(abi.clone()).or_default();
                for (name, seen) in calls {
                    m.entry(name.clone()).or_default().merge(seen);
                }
            }
        }
        self.tcp.merge(&other.tcp);
        fs::merge(&mut self.fs, &other.fs);
        for (cap, why) in &other.caps {
            self.caps.entry(cap.clone()).or_insert_with(|| why.clone());
        }
        for n in &other.notes {
            self.note(n.clone());
        }
    }

    /// What `run` saw of the workload that these observations do not hold.
    pub fn new_in(&self, run: &Observations) -> Vec<New> {
        let mut out = Vec::new();
        for (abi, calls) in &run.syscalls {
            for (name, seen) in calls {
                let known = self.syscalls.get(abi).and_then(|c| c.get(name));
                match known {
                    None => out.push(New::Syscall {
                        abi: abi.clone(),
                        name: name.clone(),
                        args: None,
                    }),
                    Some(k) if !k.args_overflow => {
                        for t in seen.args.iter().filter(|t| !k.args.contains(*t)) {
                            out.push(New::Syscall {
                                abi: abi.clone(),
                                name: name.clone(),
                                args: Some(t.clone()),
                            });
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        for (syscall, mine, theirs) in [
            ("bind", &self.tcp.bind, &run.tcp.bind),
            ("connect", &self.tcp.connect, &run.tcp.connect),
        ] {
            out.extend(
                theirs
                    .keys()
                    .filter(|p| !mine.contains_key(p))
                    .map(|&port| New::Tcp { syscall, port }),
            );
        }
        out.extend(
            run.caps
                .keys()
                .filter(|c| !self.caps.contains_key(*c))
                .map(|c| New::Cap(c.clone())),
        );
        let known = fs::folded(&self.fs);
        for (dir, rights) in &run.fs {
            // Covered when the directory or one above it already has the right.
            let has = |r: &String| {
                known
                    .iter()
                    .any(|(k, rs)| dir.starts_with(k) && rs.contains_key(r))
            };
            out.extend(rights.keys().filter(|r| !has(r)).map(|r| New::Fs {
                dir: dir.clone(),
                right: r.clone(),
            }));
        }
        out
    }

    /// The capabilities of [`caps::INFERRED`] no run needed: the learnt policy drops them.
    pub fn unneeded_caps(&self) -> Vec<String> {
        caps::INFERRED
            .iter()
            .filter(|c| !self.caps.contains_key(**c))
            .map(|c| c.to_string())
            .collect()
    }

    /// The learnt TCP ports as a policy's Landlock network rules, never more than `base`
    /// allowed (None: the base policy did not restrict TCP).
    pub fn network(&self, base: Option<&crate::policy::Network>) -> crate::policy::Network {
        let keep = |seen: &BTreeMap<u16, String>, allowed: Option<&Vec<u16>>| {
            seen.keys()
                .filter(|p| allowed.is_none_or(|a| a.contains(p)))
                .copied()
                .collect()
        };
        crate::policy::Network {
            bind_tcp: keep(&self.tcp.bind, base.map(|n| &n.bind_tcp)),
            connect_tcp: keep(&self.tcp.connect, base.map(|n| &n.connect_tcp)),
        }
    }

    /// The learnt profile: the workload's syscalls allowed (with their argument tuples where
    /// kept), the runtime's own when `runtime_needed`, everything else refused with EPERM.
    pub fn profile(&self, runtime_needed: bool) -> Profile {
        let mut arches: BTreeSet<String> = self.syscalls.keys().cloned().collect();
        arches.insert(Abi::X86_64.token().to_string());
        // name -> what every ABI saw of it
        let mut rules: BTreeMap<String, Entry> = BTreeMap::new();
        for (abi, calls) in &self.syscalls {
            for (name, seen) in calls {
                rules.entry(name.clone()).or_default().add(abi, seen);
            }
        }
        if runtime_needed {
            // A syscall both made keeps contain's own argument values too (its
            // prctl(PR_CAPBSET_DROP), say, beside the workload's prctl options).
            for seen in self.runtime.values().flat_map(|c| c.iter()) {
                if let Some(e) = rules.get_mut(seen.0) {
                    e.any_args |= seen.1.args_overflow;
                    e.tuples.extend(seen.1.args.iter().cloned());
                }
            }
        }
        let mut syscalls = Vec::new();
        for (name, e) in &rules {
            syscalls.extend(e.rules(name));
        }
        // libc tries these first and falls back on ENOSYS only (clone3 to clone, io_uring
        // to epoll): a newer libc or a policy that allows them must not turn the fallback
        // into a failure.
        let fallback: Vec<String> = FALLS_BACK_ON_ENOSYS
            .iter()
            .filter(|n| !rules.contains_key(**n))
            .map(|n| n.to_string())
            .collect();
        if !fallback.is_empty() {
            syscalls.push(rule(
                fallback,
                ActionName::Errno,
                Some(libc::ENOSYS as u32),
                None,
                "not seen; ENOSYS rather than EPERM, so that libc falls back to the older syscall (clone3 to clone, io_uring to epoll) as the runs did".into(),
            ));
        }
        if runtime_needed {
            let extra: Vec<String> = self
                .runtime
                .values()
                .flat_map(|c| c.keys())
                .filter(|n| !rules.contains_key(*n))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !extra.is_empty() {
                syscalls.push(rule(
                    extra,
                    ActionName::Allow,
                    None,
                    None,
                    "not the workload's: contain's init makes these between installing the filters and execve, which comes first when process.noNewPrivileges is false".into(),
                ));
            }
        }
        let mut comment = format!(
            "learnt by contain learn from {} run(s): {} syscalls allowed, every other refused with EPERM (ENOSYS for those libc falls back from)",
            self.runs,
            rules.len()
        );
        for n in &self.notes {
            comment.push_str("; ");
            comment.push_str(n);
        }
        Profile {
            default_action: ActionName::Errno,
            default_errno_ret: Some(libc::EPERM as u32),
            default_errno: None,
            architectures: Some(arches.into_iter().collect()),
            arch_map: None,
            flags: None,
            listener_path: None,
            listener_metadata: None,
            syscalls: Some(syscalls),
            comment: Some(comment),
        }
    }

    /// Notes on what a run did that a profile cannot express or that limits what was seen.
    pub fn note_namespaces(&mut self) {
        let mut flags = BTreeSet::new();
        let mut called = BTreeSet::new();
        for calls in self.syscalls.values() {
            if let Some(seen) = calls.get("clone") {
                for t in &seen.args {
                    if let Some(f) = t.first().filter(|f| *f & NEW_NAMESPACES != 0) {
                        flags.insert(*f);
                    }
                }
            }
            called.extend(
                ["unshare", "setns"]
                    .into_iter()
                    .filter(|n| calls.contains_key(*n)),
            );
        }
        for n in called {
            self.note(format!("the workload called {n}: it entered or made namespaces, and what it did in them was learnt as if in the container's own"));
        }
        for f in flags {
            self.note(format!(
                "the workload cloned into new namespaces ({})",
                clone_flags(f)
            ));
        }
    }
}

/// Syscalls whose absence libc answers by falling back, on ENOSYS only.
const FALLS_BACK_ON_ENOSYS: [&str; 3] = ["clone3", "io_uring_setup", "io_uring_enter"];

const NEW_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// A rule of a learnt profile: `names` get `action` (with `errno_ret`), under `args`.
fn rule(
    names: Vec<String>,
    action: ActionName,
    errno_ret: Option<u32>,
    args: Option<Vec<Arg>>,
    comment: String,
) -> Rule {
    Rule {
        names,
        action,
        errno_ret,
        errno: None,
        args,
        includes: None,
        excludes: None,
        comment: Some(comment),
    }
}

/// One syscall's rules, built from all ABIs.
#[derive(Default)]
struct Entry {
    counts: Vec<String>,
    first_by: String,
    tuples: BTreeSet<Vec<u64>>,
    any_args: bool,
}

impl Entry {
    fn add(&mut self, abi: &str, seen: &Seen) {
        self.counts.push(format!(
            "{} times ({})",
            seen.count,
            abi.trim_start_matches("SCMP_ARCH_")
        ));
        if self.first_by.is_empty() {
            self.first_by.clone_from(&seen.first_by);
        }
        self.any_args |= seen.args_overflow;
        self.tuples.extend(seen.args.iter().cloned());
    }

    fn rules(&self, name: &str) -> Vec<Rule> {
        let indices = sensitive_args(name);
        let seen = format!(
            "seen {}, first by {:?}",
            self.counts.join(", "),
            self.first_by
        );
        let rule = |args, comment| {
            rule(
                vec![name.to_string()],
                ActionName::Allow,
                None,
                args,
                comment,
            )
        };
        if indices.is_empty() || self.any_args || self.tuples.is_empty() {
            let why = if self.any_args && !indices.is_empty() {
                format!("{seen}; more than {MAX_ARG_TUPLES} argument values, so any")
            } else {
                seen
            };
            return vec![rule(None, why)];
        }
        self.tuples
            .iter()
            .map(|t| {
                let args = indices
                    .iter()
                    .zip(t)
                    .map(|(&index, &value)| Arg {
                        index: index as u32,
                        value,
                        value_two: None,
                        op: Op::Eq,
                    })
                    .collect();
                rule(
                    Some(args),
                    format!("{seen}; with {}", describe_args(name, t)),
                )
            })
            .collect()
    }
}

/// Argument tuples in words, for comments and `--replay`.
pub fn describe_args(name: &str, t: &[u64]) -> String {
    match (name, t) {
        ("clone", [f]) => format!("flags {}", clone_flags(*f)),
        ("socket" | "socketpair", [family, typ]) => {
            format!("family {} type {:#x}", family_name(*family), typ)
        }
        ("ioctl", [req]) => format!("request {req:#x}"),
        ("prctl", [opt]) => format!("option {opt}"),
        ("personality", [p]) => format!("persona {p:#x}"),
        _ => format!("{t:?}"),
    }
}

fn family_name(f: u64) -> String {
    let name = match f as i32 {
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        _ => return f.to_string(),
    };
    name.to_string()
}

fn clone_flags(f: u64) -> String {
    const NAMES: [(i32, &str); 12] = [
        (libc::CLONE_VM, "CLONE_VM"),
        (libc::CLONE_FS, "CLONE_FS"),
        (libc::CLONE_FILES, "CLONE_FILES"),
        (libc::CLONE_SIGHAND, "CLONE_SIGHAND"),
        (libc::CLONE_THREAD, "CLONE_THREAD"),
        (libc::CLONE_NEWNS, "CLONE_NEWNS"),
        (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET"),
        (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    ];
    let mut parts: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| f & (*bit as u64) != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    parts.push(format!("{f:#x}"));
    parts.join("|")
}

#[cfg(test)]
mod tests;
