//! `exec`: start another process in a running container.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::Process;

use super::lifecycle::{current_status, write_atomic};
use super::status::Status;
use super::store::{State, Store};
use super::{io_err, ContainerError};
use crate::caps::CapPlan;
use crate::cgroups::Cgroup;
use crate::process::{self, rlimits, ExecArgs, ProcessError};

pub struct ExecOpts {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// --ignore-paused: exec into a paused container too (the process starts frozen and
    /// runs once the container is resumed), as runc allows.
    pub ignore_paused: bool,
}

/// A container that can take a new process: its state, its status and its state directory's
/// path (the directory's lock is not kept).
struct Target {
    st: State,
    status: Status,
    dir: PathBuf,
}

/// The container's state, checked to be able to take a new process.
fn exec_target(store: &Store, id: &str, ignore_paused: bool) -> Result<Target, ContainerError> {
    let dir = store.open(id)?;
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    let paused_ok = ignore_paused && status == Status::Paused;
    if !matches!(status, Status::Created | Status::Running) && !paused_ok {
        return Err(ContainerError::WrongStatus {
            verb: "exec in",
            id: id.into(),
            status: status.as_str(),
        });
    }
    Ok(Target {
        st,
        status,
        dir: dir.path.clone(),
    })
}

fn check_process(p: &Process) -> Result<(), ContainerError> {
    let bad = |m: &str| Err(ContainerError::Preflight(format!("process: {m}")));
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return bad("args is empty: nothing to run");
    }
    if !p.cwd().is_absolute() {
        return bad("cwd is not an absolute path");
    }
    if p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty()) {
        return bad("apparmorProfile is not supported by this version of contain; refusing to run without it");
    }
    if p.selinux_label().as_ref().is_some_and(|s| !s.is_empty()) {
        return bad(
            "selinuxLabel is not supported by this version of contain; refusing to run without it",
        );
    }
    Ok(())
}

/// The container's own process: the base an `exec` without --process starts from.
pub fn base_process(
    store: &Store,
    id: &str,
    ignore_paused: bool,
) -> Result<Process, ContainerError> {
    Ok(exec_target(store, id, ignore_paused)?
        .st
        .process
        .unwrap_or_default())
}

/// Whether the container's workload runs in the microVM stage (its processes are in a guest).
fn in_microvm(st: &State) -> bool {
    st.annotations
        .get(crate::policy::ISOLATION_ANNOTATION)
        .is_some_and(|v| v.starts_with("microvm"))
}

/// `ps` of a microVM container: the guest's own `ps` with `args`, run by the guest agent as
/// the container's process's user (the host's ps would list only the VMM); None for any
/// other container, and for a guest without the agent.
pub fn guest_ps(
    store: &Store,
    id: &str,
    args: &[String],
) -> Result<Option<crate::microvm::client::Ended>, ContainerError> {
    let dir = store.open(id)?;
    let st = dir.load()?;
    // A guest without the agent (bare, or an initramfs of its own) has no channel: its
    // container's processes are the host's (the VMM).
    if !in_microvm(&st) || !dir.path.join(crate::microvm::channel::SOCKET).exists() {
        return Ok(None);
    }
    let status = current_status(&dir, &st);
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(ContainerError::WrongStatus {
            verb: "list the guest processes of",
            id: id.into(),
            status: status.as_str(),
        });
    }
    let mut p = st.process.clone().unwrap_or_default();
    p.set_args(Some(
        std::iter::once("ps".to_string())
            .chain(args.iter().cloned())
            .collect(),
    ));
    p.set_terminal(Some(false));
    p.set_console_size(None);
    let path = dir.path.clone();
    drop(dir);
    crate::microvm::client::run_to_end(&path, &p)
        .map(Some)
        .map_err(|e| {
            ContainerError::Preflight(format!(
                "container {id:?} runs in the microVM stage: ps in its guest: {e}"
            ))
        })
}

/// Start the process; returns its pid (a child of this process).
pub fn exec(store: &Store, opts: &ExecOpts) -> Result<i32, ContainerError> {
    let Target { st, status, dir } = exec_target(store, &opts.id, opts.ignore_paused)?;
    check_process(&opts.process)?;
    let terminal = opts.process.terminal().unwrap_or(false);
    if terminal != opts.console_socket.is_some() {
        return Err(ContainerError::Preflight(if terminal {
            "process.terminal is true: --console-socket is required to receive the pty master"
                .into()
        } else {
            "--console-socket given but no terminal was asked for (--tty)".into()
        }));
    }
    // The workload of a microVM container runs on its guest kernel: so does a process exec'd
    // into it, started by the guest agent over the control channel (never beside the VMM on
    // the host's kernel).
    if in_microvm(&st) {
        if status == Status::Created {
            return Err(ContainerError::Preflight(format!(
                "container {:?} runs in the microVM stage and its guest boots at start: exec \
                 into it once it has started",
                opts.id
            )));
        }
        if opts.preserve_fds > 0 {
            return Err(ContainerError::Preflight(format!(
                "container {:?} runs in the microVM stage: --preserve-fds cannot reach a \
                 process in its guest",
                opts.id
            )));
        }
        // The path only: the directory's lock was released before the relay is forked (a
        // relay holding it would block every other command on the container).
        let console = opts.console_socket.as_deref();
        let pid = crate::microvm::client::exec(&dir, &opts.process, console).map_err(|e| {
            ContainerError::Preflight(format!(
                "container {:?} runs in the microVM stage: {e}",
                opts.id
            ))
        })?;
        if let Some(p) = &opts.pid_file {
            write_atomic(p, pid.to_string().as_bytes())?;
        }
        crate::log::debug(&format!(
            "exec in the guest of {:?}: relay pid {pid}",
            opts.id
        ));
        return Ok(pid);
    }
    rlimits::preflight(opts.process.rlimits().as_deref().unwrap_or_default())?;
    let caps =
        CapPlan::new(opts.process.capabilities().as_ref()).map_err(ContainerError::Preflight)?;
    // The container's own (already resolved) profiles: the same filters as its init.
    let mut filters = Vec::new();
    for p in &st.seccomp {
        // contain learn's observer (only create can have put it in the state) stays one.
        let (config, extra) = if crate::learn::is_observer(p) {
            (None, vec![(p.clone(), crate::seccomp::Source::Learn)])
        } else {
            (Some(p), Vec::new())
        };
        filters.extend(crate::seccomp::effective(
            config,
            caps.bounding_names(),
            crate::seccomp::Choice::ConfigOnly,
            false,
            extra,
        )?);
    }
    for f in &filters {
        super::create::check_listener(f)?;
    }
    let console = match &opts.console_socket {
        Some(p) => Some(
            UnixStream::connect(p)
                .map(Into::into)
                .map_err(io_err("connect to console socket", p))?,
        ),
        None => None,
    };
    // Every exec'd process gets the container's Landlock ruleset (kubectl exec, health checks
    // and podman exec run binaries the image controls). It is a domain of its own: under a
    // policy without onExec its signal scope is left out, so that `kill -HUP 1` from an exec
    // still reaches the workload; its file, network and abstract-socket rules hold.
    let exec_landlock = st.landlock.clone().map(|mut p| {
        if !p.on_exec {
            for l in &mut p.layers {
                l.scopes.retain(|s| s != "signal");
            }
        }
        p
    });
    let args = ExecArgs {
        init_pid: st.pid,
        init_start_time: st.start_time,
        namespaces: &st.namespaces,
        process: &opts.process,
        caps,
        preserve_fds: opts.preserve_fds,
        console,
        seccomp: filters.iter().map(|f| &f.compiled).collect(),
        landlock: exec_landlock.as_ref(),
    };
    let cgroup = Cgroup {
        dirs: st.cgroup.clone(),
    };
    let mut on_listener = |pid: i32, fd: std::os::fd::OwnedFd| -> Result<(), ProcessError> {
        let profile = &filters
            .iter()
            .find(|f| f.compiled.notify)
            .ok_or("a listener from a filter that does not notify")?
            .profile;
        let mut s = st.clone();
        s.pid = pid;
        let json = super::lifecycle::hook_state(&s, "running");
        super::create::send_listener(profile, &fd, pid, &json).map_err(ProcessError::Hook)
    };
    let pid = process::spawn_exec(&args, &cgroup, &mut on_listener)?;
    if let Some(p) = &opts.pid_file {
        write_atomic(p, pid.to_string().as_bytes())?;
    }
    crate::log::debug(&format!("exec in {:?}: pid {pid}", opts.id));
    Ok(pid)
}
