//! `create`: validate everything, then create the state directory, the cgroup and the init,
//! undoing all of it if any later step fails.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::lifecycle::{hook_state, write_atomic};
use super::store::{ContainerDir, State, Store};
use super::{io_err, ContainerError};
use crate::caps::CapPlan;
use crate::cgroups::{self, Cgroup};
use crate::hooks;
use crate::ns::NsPlan;
use crate::oci::{self, Bundle};
use crate::process::{self, rlimits, InitArgs};
use crate::seccomp;
use crate::sys::{fs::open_host, proc, socket::send_fd};

/// The flags of `create` (and `run`).
#[derive(Debug, Default, Clone)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub pidfd_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// What a failed create must undo.
struct Undo<'a> {
    dir: Option<ContainerDir>,
    cgroup: Option<&'a Cgroup>,
    init: Option<i32>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.init {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = self.cgroup {
            for pid in cg.pids() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = cg.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

fn connect(path: &Path, what: &'static str) -> Result<OwnedFd, ContainerError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(io_err(what, path))
}

/// Check what can be checked before any side effect; returns the capability plan and the
/// compiled seccomp filter.
fn preflight(
    bundle: &Bundle,
    opts: &CreateOpts,
    hierarchies: &[cgroups::Hierarchy],
) -> Result<(CapPlan, seccomp::Effective), ContainerError> {
    let spec = &bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| oci::ConfigError::Invalid {
            field: "process".into(),
            reason: "missing".into(),
        })?;
    if !NsPlan::from_spec(spec).has_new(LinuxNamespaceType::Mount) {
        return Err(ContainerError::Preflight(
            "linux.namespaces: contain needs a new mount namespace for the container's rootfs"
                .into(),
        ));
    }
    rlimits::preflight(process.rlimits().as_deref().unwrap_or_default())
        .map_err(ContainerError::Preflight)?;
    let caps = CapPlan::new(process.capabilities().as_ref()).map_err(ContainerError::Preflight)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.console_socket.is_none() {
        return Err(ContainerError::Preflight(
            "process.terminal is true: --console-socket is required to receive the pty master"
                .into(),
        ));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(ContainerError::Preflight(
            "--console-socket given but process.terminal is false: no pty is allocated".into(),
        ));
    }
    if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        cgroups::check_supported(res, hierarchies)?;
    }
    if let Some(p) = &opts.pidfd_socket {
        if !p.exists() {
            return Err(ContainerError::Preflight(format!(
                "--pidfd-socket {}: no such socket",
                p.display()
            )));
        }
    }
    let filter = seccomp::effective(bundle.seccomp.as_ref(), caps.bounding_names())?;
    check_listener(&filter)?;
    for w in &filter.compiled.warnings {
        crate::log::warn(&format!("seccomp: {w}"));
    }
    if filter.source == seccomp::Source::ConfigTemplate {
        crate::log::warn(
            "linux.seccomp is a Docker/podman template: resolved for x86_64, this kernel and the bounding capabilities (see SECURITY.md)",
        );
    }
    Ok((caps, filter))
}

/// A profile that notifies needs an agent listening at listenerPath.
pub(super) fn check_listener(f: &seccomp::Effective) -> Result<(), ContainerError> {
    use std::os::unix::fs::FileTypeExt;
    if !f.compiled.notify {
        return Ok(());
    }
    let path = f.profile.listener_path.as_deref().unwrap_or(Path::new(""));
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_socket() => Ok(()),
        Ok(_) => Err(ContainerError::Preflight(format!(
            "linux.seccomp.listenerPath {}: not a unix socket",
            path.display()
        ))),
        Err(e) => Err(ContainerError::Preflight(format!(
            "linux.seccomp.listenerPath {}: {e}",
            path.display()
        ))),
    }
}

/// Create the container; returns its state with the init waiting on the exec fifo.
pub fn create(store: &Store, opts: &CreateOpts) -> Result<State, ContainerError> {
    oci::validate_id(&opts.id)?;
    let bundle = oci::load_bundle(&opts.bundle)?;
    let hierarchies = cgroups::hierarchies()?;
    let (caps, filter) = preflight(&bundle, opts, &hierarchies)?;
    let console = opts
        .console_socket
        .as_deref()
        .map(|p| connect(p, "connect to console socket"))
        .transpose()?;
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    let rel = cgroups::relative_path(linux.and_then(|l| l.cgroups_path().as_deref()), &opts.id);
    let cgroup = Cgroup::at(&hierarchies, &rel);

    // Side effects start here; `undo` reverts them unless the create completes.
    let dir = store.create(&opts.id)?;
    let mut undo = Undo {
        dir: None,
        cgroup: None,
        init: None,
    };
    let fifo_path = dir.fifo_path();
    undo.dir = Some(dir);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .map_err(|e| io_err("mkfifo", &fifo_path)(e.into()))?;
    let fifo = open_host(&fifo_path, libc::O_RDWR).map_err(io_err("open", &fifo_path))?;
    cgroup.check_unused()?;
    undo.cgroup = Some(&cgroup);
    cgroup.create()?;
    if let Some(res) = linux.and_then(|l| l.resources().as_ref()) {
        cgroup.apply(res)?;
    }

    let mut annotations: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();
    annotations.insert(
        "io.contain.seccomp".into(),
        format!(
            "{} ({} instructions)",
            filter.source.describe(),
            filter.compiled.program.len()
        ),
    );
    let mut state = State {
        id: opts.id.clone(),
        oci_version: spec.version().clone(),
        pid: 0,
        start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        owner: owner(),
        annotations,
        cgroup: cgroup.dirs.clone(),
        hooks: spec.hooks().clone(),
        process: spec.process().clone(),
        namespaces: linux
            .and_then(|l| l.namespaces().as_ref())
            .map(|n| n.iter().map(|n| n.typ()).collect())
            .unwrap_or_default(),
        seccomp: Some(filter.profile.clone()),
    };
    let args = InitArgs {
        id: &opts.id,
        bundle: &bundle,
        ns: NsPlan::from_spec(spec),
        cgroup: Some(&cgroup),
        caps,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        console,
        fifo,
        seccomp: Some(&filter.compiled),
    };
    let mut run_hooks = |pid: i32| -> Result<String, String> {
        let mut s = state.clone();
        s.pid = pid;
        let json = hook_state(&s, "creating");
        if let Some(h) = spec.hooks() {
            hooks::run_all(
                "prestart",
                h.prestart().as_deref().unwrap_or_default(),
                &json,
            )?;
            hooks::run_all(
                "createRuntime",
                h.create_runtime().as_deref().unwrap_or_default(),
                &json,
            )?;
        }
        Ok(json)
    };
    let listener_state = state.clone();
    let mut on_listener = |pid: i32, fd: OwnedFd| -> Result<(), String> {
        let mut s = listener_state.clone();
        s.pid = pid;
        send_listener(&filter.profile, &fd, pid, &hook_state(&s, "creating"))
    };
    let pid =
        process::spawn(&args, &mut run_hooks, &mut on_listener).map_err(ContainerError::Spawn)?;
    undo.init = Some(pid);
    drop(args);
    state.pid = pid;
    state.start_time = proc::stat(pid)
        .ok_or_else(|| ContainerError::Spawn("the container's init exited during create".into()))?
        .start_time;
    let dir = undo
        .dir
        .as_ref()
        .ok_or_else(|| ContainerError::Spawn("state directory lost".into()))?;
    dir.save(&state)?;
    if let Some(p) = &opts.pid_file {
        write_atomic(p, format!("{pid}").as_bytes())?;
    }
    if let Some(p) = &opts.pidfd_socket {
        let sock = connect(p, "connect to pidfd socket")?;
        let pidfd = proc::pidfd_open(pid).map_err(io_err("pidfd_open", format!("/proc/{pid}")))?;
        send_fd(sock.as_fd(), pidfd.as_raw_fd(), b"pidfd").map_err(io_err("send pidfd to", p))?;
    }
    crate::log::debug(&format!(
        "container {:?} created: init pid {pid}, cgroup {}",
        opts.id,
        rel.display()
    ));
    undo.init = None;
    undo.cgroup = None;
    drop(undo.dir.take());
    Ok(state)
}

/// Hand a seccomp listener to the agent at the profile's listenerPath.
pub(super) fn send_listener(
    profile: &seccomp::Profile,
    fd: &OwnedFd,
    pid: i32,
    state_json: &str,
) -> Result<(), String> {
    let path = profile
        .listener_path
        .as_deref()
        .ok_or("SCMP_ACT_NOTIFY without listenerPath")?;
    seccomp::send_listener(
        path,
        fd,
        pid,
        profile.listener_metadata.as_deref(),
        state_json,
    )
    .map_err(|e| format!("send the seccomp listener to {}: {e}", path.display()))
}

fn owner() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}
