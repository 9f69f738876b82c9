//! Seccomp: the OCI `linux.seccomp` model compiled to BPF in pure Rust (no libseccomp).
//!
//! * [`profile`]: the JSON model, including Docker's and podman's template fields, which are
//!   resolved (never ignored) against the container's bounding capabilities, the native
//!   architecture and the running kernel;
//! * [`compile`](compile::compile): our own code generator (why not seccompiler's: it has one
//!   match action per filter, one architecture per filter without the x32 check, no
//!   SCMP_ACT_NOTIFY/LOG/TRACE, no ENOSYS stub, and its installer forces no_new_privs);
//! * [`bpf`]: checker, interpreter and disassembler; [`reference`]: the profile's meaning
//!   evaluated directly, which tests and fuzzing compare the compiled program against;
//! * installation with seccomp(2) (flags LOG, SPEC_ALLOW, NEW_LISTENER, WAIT_KILLABLE_RECV),
//!   and the hand-over of the listener to the agent at `listenerPath`.

pub mod bpf;
pub mod compile;
pub mod profile;
pub mod reference;
mod syscalls;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use compile::{compile, compile_with, Abi, Action, Compiled, Options};
pub use profile::{Profile, Target};

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error("linux.seccomp: {0}")]
    Invalid(String),
    #[error("seccomp: {0}")]
    Unsupported(String),
}

/// The built-in hardened profile (policies/seccomp/default.json), a template resolved per
/// container like Docker's.
pub const DEFAULT_PROFILE: &str = include_str!("../../policies/seccomp/default.json");

/// The built-in default profile, parsed.
pub fn default_profile() -> Profile {
    Profile::from_slice(DEFAULT_PROFILE.as_bytes())
        .unwrap_or_else(|e| unreachable!("the built-in profile is tested to parse: {e}"))
}

/// Where a container's filter came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// config.json's `linux.seccomp`, used as given.
    Config,
    /// config.json's `linux.seccomp` was a Docker/podman template, resolved here.
    ConfigTemplate,
    /// config.json has none: contain's default profile.
    Default,
    /// contain's mount lock, stacked when the policy locks mounts and CAP_SYS_ADMIN is granted.
    MountLock,
    /// A profile the policy file names (`seccompProfiles`), stacked: a learnt one, say.
    Policy,
    /// `contain learn`'s observer: every syscall goes to contain's supervisor, which records
    /// it and lets it continue; the other filters still decide.
    Learn,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Config => "config.json",
            Source::ConfigTemplate => "config.json (template resolved by contain)",
            Source::Default => "contain default profile",
            Source::MountLock => "contain mount lock",
            Source::Policy => "the policy's profile",
            Source::Learn => "contain learn (records, then lets the other filters decide)",
        }
    }
}

/// The filter a container's processes get.
#[derive(Clone, Debug)]
pub struct Effective {
    /// The resolved profile (kept in the container's state for `exec`).
    pub profile: Profile,
    pub source: Source,
    pub compiled: Compiled,
}

/// Which filters a container gets (the policy decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// config.json's profile, else the default profile.
    ConfigOrDefault,
    /// config.json's profile, or none.
    ConfigOnly,
    /// The default profile always, config.json's stacked on it (both must allow a call).
    DefaultAndConfig,
}

/// The mount lock: what a process holding CAP_SYS_ADMIN in its user namespace could use to
/// make a read-only mount writable where Landlock cannot see it. `mount_setattr(2)` and
/// `open_tree_attr(2)` pass no LSM hook (a Landlock domain refuses mount(2), move_mount(2)
/// and pivot_root(2), not these), and `mount(2)` with MS_REMOUNT is refused too so that the
/// lock holds on a kernel without Landlock. The kernel's own lock (MNT_LOCK_READONLY) applies
/// only to mounts inherited from a more privileged user namespace, and the container's
/// mounts are made in its own.
pub const MOUNT_LOCK_PROFILE: &str = r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {"names": ["mount_setattr", "open_tree_attr"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "args": [{"index": 3, "value": 32, "valueTwo": 32, "op": "SCMP_CMP_MASKED_EQ"}]}
  ]
}"#;

/// The filters for a process whose bounding set is `bounding`, in the order they are
/// installed: config.json's profile (resolved if it is a template) and/or the default
/// profile, as `choice` says, then `extra` (the policy's own profiles, learning's observer),
/// then the mount lock if `lock_mounts` and the bounding set holds CAP_SYS_ADMIN (without it
/// none of those calls can change a mount). Compiled and checked against the kernel here, in
/// the runtime, before anything is created. At most one of them may notify (the kernel gives
/// a process one listener).
pub fn effective(
    config: Option<&Profile>,
    bounding: Vec<String>,
    choice: Choice,
    lock_mounts: bool,
    extra: Vec<(Profile, Source)>,
) -> Result<Vec<Effective>, SeccompError> {
    let config = config.map(|p| {
        if p.is_template() {
            (p.clone(), Source::ConfigTemplate)
        } else {
            (p.clone(), Source::Config)
        }
    });
    let default = || (default_profile(), Source::Default);
    let mut list: Vec<(Profile, Source)> = match choice {
        Choice::ConfigOrDefault => vec![config.unwrap_or_else(default)],
        Choice::ConfigOnly => config.into_iter().collect(),
        Choice::DefaultAndConfig => std::iter::once(default()).chain(config).collect(),
    };
    list.extend(extra);
    if lock_mounts && bounding.iter().any(|c| c == "CAP_SYS_ADMIN") {
        let lock = Profile::from_slice(MOUNT_LOCK_PROFILE.as_bytes())
            .unwrap_or_else(|e| unreachable!("the mount lock is tested to parse: {e}"));
        list.push((lock, Source::MountLock));
    }
    let target = Target::host(bounding);
    let filters = list
        .into_iter()
        .map(|(template, source)| {
            let profile = template.resolve(&target)?;
            let compiled = if source == Source::Learn {
                compile_with(
                    &profile,
                    Options {
                        enosys_stub: false,
                        notify_by_default: true,
                    },
                )?
            } else {
                compile(&profile)?
            };
            preflight(&compiled)?;
            Ok(Effective {
                profile,
                source,
                compiled,
            })
        })
        .collect::<Result<Vec<_>, SeccompError>>()?;
    let notifying: Vec<&str> = filters
        .iter()
        .filter(|f| f.compiled.notify)
        .map(|f| f.source.describe())
        .collect();
    if notifying.len() > 1 {
        return Err(SeccompError::Invalid(format!(
            "more than one filter notifies an agent ({}); a process can have one listener",
            notifying.join(", ")
        )));
    }
    Ok(filters)
}

/// The profiles a policy names, to stack ([`crate::policy::Policy::seccomp_profiles`]).
pub fn policy_profiles(paths: &[PathBuf]) -> Result<Vec<(Profile, Source)>, SeccompError> {
    paths
        .iter()
        .map(|p| Ok((load_profile(p)?, Source::Policy)))
        .collect()
}

/// A profile file (the OCI `linux.seccomp` form, or a Docker/podman template).
pub fn load_profile(path: &Path) -> Result<Profile, SeccompError> {
    let data = std::fs::read(path)
        .map_err(|e| SeccompError::Invalid(format!("{}: {e}", path.display())))?;
    Profile::from_slice(&data)
        .map_err(|e| SeccompError::Invalid(format!("{}: {e}", path.display())))
}

/// Whether this kernel can enforce the filter action `kind` (SECCOMP_GET_ACTION_AVAIL).
pub fn action_available(kind: u32) -> bool {
    crate::sys::seccomp::action_available(kind).is_ok()
}

/// Check, before anything is created, that this kernel can enforce the program: seccomp
/// filters exist and every action it can return is available.
pub fn preflight(c: &Compiled) -> Result<(), SeccompError> {
    for a in &c.actions {
        if !action_available(a.kind()) {
            return Err(SeccompError::Unsupported(format!(
                "this kernel cannot enforce the action {} ({}); refusing to run without it",
                bpf::action_name(a.ret()),
                io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Install the filter on the calling thread; returns the listener when the profile notifies.
/// Needs no_new_privs or CAP_SYS_ADMIN in the caller's user namespace.
pub fn install(c: &Compiled) -> io::Result<Option<OwnedFd>> {
    crate::sys::seccomp::install(&c.program, c.flags, c.notify)
}

/// Take the listener that process `pid` (a child of ours) announced as descriptor `fd`, with
/// pidfd_getfd(2), as soon as its filter is installed (the child tells the number first, see
/// `install_seccomp`): until then the descriptor is absent, and anything but a seccomp
/// listener there is refused. Gives up after 10 s or when the process is gone.
pub fn take_listener(pid: i32, fd: i32) -> io::Result<OwnedFd> {
    let pidfd = crate::sys::proc::pidfd_open(pid)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match crate::sys::seccomp::pidfd_getfd(&pidfd, fd) {
            Ok(got) => {
                let link = std::fs::read_link(format!("/proc/self/fd/{}", got.as_raw_fd()))?;
                if link.as_os_str() == "anon_inode:seccomp notify" {
                    return Ok(got);
                }
                return Err(io::Error::other(format!(
                    "descriptor {fd} is {}, not a seccomp listener",
                    link.display()
                )));
            }
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
            Err(e) => return Err(e),
        }
        if !crate::sys::proc::pidfd_alive(&pidfd) {
            return Err(io::Error::other(
                "the process ended before its filter was installed",
            ));
        }
        if std::time::Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "descriptor {fd} never became a seccomp listener"
            )));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Hand the listener to the agent at `path`, as the runtime spec says: the container process
/// state as JSON, with the listener attached (SCM_RIGHTS) and named "seccompFd" in `fds`.
pub fn send_listener(
    path: &Path,
    listener: &OwnedFd,
    pid: i32,
    metadata: Option<&str>,
    state_json: &str,
) -> io::Result<()> {
    let state: serde_json::Value = serde_json::from_str(state_json).map_err(io::Error::other)?;
    let msg = serde_json::json!({
        "ociVersion": "1.0.2",
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or(""),
        "state": state,
    });
    let sock = std::os::unix::net::UnixStream::connect(path)?;
    let data = serde_json::to_vec(&msg).map_err(io::Error::other)?;
    crate::sys::socket::send_fd(sock.as_fd(), listener.as_raw_fd(), &data)
}

#[cfg(test)]
mod tests;
