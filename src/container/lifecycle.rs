//! `start`, `kill`, `delete`, `state`, `list`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use super::signal;
use super::status::{self, Status};
use super::store::{ContainerDir, State, Store, StoreError};
use super::{io_err, ContainerError};
use crate::cgroups::systemd::Systemd;
use crate::cgroups::Cgroup;
use crate::hooks;
use crate::sys::{fs::open_host, proc};

/// The freezer state file of a container's cgroup, if it has one.
fn freezer_file(st: &State) -> Option<PathBuf> {
    st.cgroup.iter().find_map(|(h, d)| {
        if h.controllers.iter().any(|c| c == "freezer") {
            Some(d.join("freezer.state"))
        } else if h.version == crate::cgroups::Version::V2 {
            Some(d.join("cgroup.freeze"))
        } else {
            None
        }
    })
}

pub(super) fn current_status(dir: &ContainerDir, st: &State) -> Status {
    status::current(
        st.pid,
        st.start_time,
        &dir.fifo_path(),
        freezer_file(st).as_deref(),
    )
}

/// The OCI state of a container (runc's shape: also rootfs, created, owner).
/// A container's state as `state` and `list --format json` print it: runc's fields, in runc's
/// order (tools match it textually).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    /// Sorted by key, as runc's Go prints a map.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    pub owner: String,
}

fn oci_state(st: &State, status: Status) -> OciState {
    OciState {
        oci_version: st.oci_version.clone(),
        id: st.id.clone(),
        pid: if status == Status::Stopped { 0 } else { st.pid },
        status: status.as_str(),
        bundle: st.bundle.clone(),
        rootfs: st.rootfs.clone(),
        created: st.created.clone(),
        annotations: st
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        owner: st.owner.clone(),
    }
}

/// The state handed to hooks on stdin.
pub fn hook_state(st: &State, status: &str) -> String {
    json!({
        "ociVersion": st.oci_version,
        "id": st.id,
        "status": status,
        "pid": st.pid,
        "bundle": st.bundle,
        "annotations": st.annotations,
    })
    .to_string()
}

/// Write a file atomically (pid files).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ContainerError> {
    let path = std::path::absolute(path).map_err(io_err("resolve", path))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(data).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))
}

/// `state ID`.
pub fn state(store: &Store, id: &str) -> Result<OciState, ContainerError> {
    let dir = store.open(id)?;
    let st = dir.load()?;
    Ok(oci_state(&st, current_status(&dir, &st)))
}

/// `list`: the state of every container (corrupt ones are skipped with a warning).
pub fn list(store: &Store) -> Result<Vec<OciState>, ContainerError> {
    let mut out = Vec::new();
    for id in store.list()? {
        let Ok(dir) = store.open(&id) else { continue };
        match dir.load() {
            Ok(st) => out.push(oci_state(&st, current_status(&dir, &st))),
            Err(e) => crate::log::warn(&e.to_string()),
        }
    }
    Ok(out)
}

/// `start ID`: release the init from the exec fifo, then run the poststart hooks.
pub fn start(store: &Store, id: &str) -> Result<(), ContainerError> {
    let dir = store.open(id)?;
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    if !status.can_start() {
        return Err(ContainerError::WrongStatus {
            verb: "start",
            id: id.into(),
            status: status.as_str(),
        });
    }
    let fifo = dir.fifo_path();
    let f = open_host(&fifo, libc::O_WRONLY | libc::O_NONBLOCK).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENXIO) {
            ContainerError::Spawn(format!(
                "container {id:?}: its init is not waiting to start (did it exit?)"
            ))
        } else {
            io_err("open exec fifo", &fifo)(e)
        }
    })?;
    nix::unistd::write(&f, b"0").map_err(|e| io_err("write exec fifo", &fifo)(e.into()))?;
    drop(f);
    std::fs::remove_file(&fifo).map_err(io_err("remove", &fifo))?;
    if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststart().clone()) {
        // As runc: a failing poststart hook fails `start` and ends the container.
        if let Err(e) = hooks::run_all("poststart", &h, &hook_state(&st, "running")) {
            signal_all(&st, Some(Signal::SIGKILL))?;
            return Err(ContainerError::Hook(e));
        }
    }
    Ok(())
}

/// Signal the init, checking through a pidfd that it is still the container's process.
/// `None`: no signal, only the checks (signal 0).
fn signal_init(st: &State, sig: Option<Signal>) -> Result<(), ContainerError> {
    // A pidfd taken once the start time matched: the signal goes to that process, never to
    // another that reused its pid.
    let pidfd = match proc::pidfd_of(st.pid, st.start_time) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(io_err("pidfd_open", format!("/proc/{}", st.pid))(e)),
    };
    match proc::pidfd_send_signal(&pidfd, sig.map_or(0, |s| s as libc::c_int)) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(ContainerError::Signal(format!(
            "signal {} to pid {}: {e}",
            sig.map_or("0", |s| s.as_str()),
            st.pid
        ))),
    }
}

fn signal_all(st: &State, sig: Option<Signal>) -> Result<(), ContainerError> {
    let cg = Cgroup {
        dirs: st.cgroup.clone(),
    };
    for pid in cg.pids() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    signal_init(st, sig)
}

/// `kill ID SIGNAL [--all]`.
pub fn kill(store: &Store, id: &str, sig: &str, all: bool) -> Result<(), ContainerError> {
    let sig = signal::parse(sig).map_err(ContainerError::Signal)?;
    let dir = store.open(id)?;
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    if !status.can_kill() && !all {
        return Err(ContainerError::WrongStatus {
            verb: "kill",
            id: id.into(),
            status: status.as_str(),
        });
    }
    // A microVM's workload gets the signal in the guest (its handlers run, as in a
    // container); SIGKILL, --all, and a guest without the control channel end the VMM.
    let microvm = st
        .annotations
        .get(crate::policy::ISOLATION_ANNOTATION)
        .is_some_and(|v| v.starts_with("microvm"));
    if let Some(s) = sig.filter(|s| {
        microvm && !all && status == Status::Running && *s != nix::sys::signal::Signal::SIGKILL
    }) {
        match crate::microvm::client::signal_init(&dir.path, s as i32) {
            Ok(()) => return Ok(()),
            Err(e) => crate::log::debug(&format!(
                "kill {id}: {e}; the signal goes to the VMM, which ends the VM"
            )),
        }
    }
    if all {
        signal_all(&st, sig)
    } else {
        signal_init(&st, sig)
    }
}

/// Wait until the container's init is gone.
fn wait_stopped(dir: &ContainerDir, st: &State, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while current_status(dir, st) != Status::Stopped {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Remove everything of a stopped container: cgroups, poststop hooks, state.
fn destroy(dir: ContainerDir, st: &State) -> Result<(), ContainerError> {
    let cg = Cgroup {
        dirs: st.cgroup.clone(),
    };
    if let Some(unit) = &st.systemd_unit {
        // systemd stops an empty scope by itself; stop it in case it has not yet, then
        // remove the directories it does not manage.
        let stopped = Systemd::connect().and_then(|s| s.stop(unit));
        if let Err(e) = stopped {
            crate::log::warn(&e.to_string());
        }
    }
    cg.remove()?;
    if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststop().clone()) {
        if let Err(e) = hooks::run_all("poststop", &h, &hook_state(st, "stopped")) {
            crate::log::warn(&e);
        }
    }
    dir.remove()?;
    Ok(())
}

/// `delete ID [--force]`.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<(), ContainerError> {
    crate::oci::validate_id(id)?;
    let dir = match store.open(id) {
        Err(StoreError::NotExist(_)) if force => return Ok(()),
        other => other?,
    };
    let st = match dir.load() {
        Ok(st) => st,
        Err(e @ StoreError::Corrupt { .. }) if force => {
            // Without state the init's pid is unknown: kill what is in the cgroup the create
            // recorded before making it (else the default one), stop its systemd scope, and
            // remove the cgroup, then the state.
            let creating = dir.creating();
            let rel = creating.as_ref().map_or_else(
                || crate::cgroups::relative_path(None, id),
                |c| c.cgroup.clone(),
            );
            crate::log::warn(&format!(
                "{e}; killing what is left in its cgroup {} and removing it",
                rel.display()
            ));
            if let Some(scope) = creating.as_ref().and_then(|c| c.scope.as_deref()) {
                if let Err(e) =
                    crate::cgroups::systemd::Systemd::connect().and_then(|s| s.stop(scope))
                {
                    crate::log::warn(&e.to_string());
                }
            }
            let cg = Cgroup::at(&crate::cgroups::hierarchies()?, &rel);
            for _ in 0..100 {
                let pids = cg.pids();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            cg.remove()?;
            dir.remove()?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let status = current_status(&dir, &st);
    if !status.can_delete() && !force {
        return Err(ContainerError::WrongStatus {
            verb: "delete",
            id: id.into(),
            status: status.as_str(),
        });
    }
    if status == Status::Paused {
        thaw(&st);
    }
    if status != Status::Stopped {
        signal_all(&st, Some(Signal::SIGKILL))?;
    }
    if !wait_stopped(&dir, &st, Duration::from_secs(10)) {
        return Err(ContainerError::Signal(format!(
            "container {id:?} did not stop after SIGKILL"
        )));
    }
    destroy(dir, &st)?;
    crate::log::debug(&format!("container {id:?} deleted"));
    Ok(())
}

fn thaw(st: &State) {
    if let Some(f) = freezer_file(st) {
        let v = if f.ends_with("cgroup.freeze") {
            "0"
        } else {
            "THAWED"
        };
        let _ = std::fs::write(f, v);
    }
}

/// Freeze (`pause`) or thaw (`resume`) every process of the container.
pub fn set_frozen(store: &Store, id: &str, frozen: bool) -> Result<(), ContainerError> {
    let dir = store.open(id)?;
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    let (verb, ok) = if frozen {
        ("pause", status == Status::Running)
    } else {
        ("resume", status == Status::Paused)
    };
    if !ok {
        return Err(ContainerError::WrongStatus {
            verb,
            id: id.into(),
            status: status.as_str(),
        });
    }
    let file = freezer_file(&st).ok_or_else(|| {
        ContainerError::Preflight(format!("{verb}: the container has no freezer cgroup"))
    })?;
    let v2 = file.ends_with("cgroup.freeze");
    let value = match (v2, frozen) {
        (true, true) => "1",
        (true, false) => "0",
        (false, true) => "FROZEN",
        (false, false) => "THAWED",
    };
    std::fs::write(&file, value).map_err(io_err("write", &file))?;
    // Freezing is asynchronous: wait until the kernel reports it done.
    let (check, want) = if v2 {
        (
            file.with_file_name("cgroup.events"),
            if frozen { "frozen 1" } else { "frozen 0" },
        )
    } else {
        (file.clone(), value)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&check).map_err(io_err("read", &check))?;
        if text.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ContainerError::Signal(format!(
                "{verb}: {} did not reach {want:?}",
                check.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The pids of every process of the container (host pid namespace).
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>, ContainerError> {
    let dir = store.open(id)?;
    let st = dir.load()?;
    let mut pids = Cgroup {
        dirs: st.cgroup.clone(),
    }
    .pids();
    pids.sort_unstable();
    Ok(pids)
}

/// `update`: apply new limits to a live container's cgroup (checked first, as at create).
pub fn update(
    store: &Store,
    id: &str,
    res: &oci_spec::runtime::LinuxResources,
) -> Result<(), ContainerError> {
    let dir = store.open(id)?;
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    if status == Status::Stopped {
        return Err(ContainerError::WrongStatus {
            verb: "update",
            id: id.into(),
            status: status.as_str(),
        });
    }
    let hierarchies: Vec<_> = st.cgroup.iter().map(|(h, _)| h.clone()).collect();
    crate::cgroups::check_supported(res, &hierarchies)?;
    if let Some(unit) = &st.systemd_unit {
        // Tell systemd first, or it would put its old values back at its next reload.
        let unified = crate::cgroups::systemd::unified(&hierarchies);
        let props = crate::cgroups::systemd::resource_properties(res, unified);
        if !props.is_empty() {
            Systemd::connect()?.set_properties(unit, props)?;
        }
    }
    Cgroup {
        dirs: st.cgroup.clone(),
    }
    .apply(res)?;
    Ok(())
}

/// `events`: a stats event now (`once`), or every `interval` plus an `oom` event whenever the
/// kernel OOM-kills a process of the container, until the container stops.
pub fn events(
    store: &Store,
    id: &str,
    once: bool,
    interval: Duration,
    emit: &mut dyn FnMut(serde_json::Value),
) -> Result<(), ContainerError> {
    use crate::cgroups::stats;
    let (st, cg) = {
        let dir = store.open(id)?;
        let st = dir.load()?;
        let status = current_status(&dir, &st);
        if status == Status::Stopped {
            return Err(ContainerError::WrongStatus {
                verb: "watch",
                id: id.into(),
                status: status.as_str(),
            });
        }
        let cg = Cgroup {
            dirs: st.cgroup.clone(),
        };
        (st, cg)
    };
    let stats_event = |cg: &Cgroup| json!({"type": "stats", "id": id, "data": stats::stats(cg)});
    if once {
        emit(stats_event(&cg));
        return Ok(());
    }
    let mut ooms = stats::oom_kills(&cg);
    let mut next = Instant::now();
    loop {
        let now_ooms = stats::oom_kills(&cg);
        if now_ooms > ooms {
            emit(json!({"type": "oom", "id": id}));
            ooms = now_ooms;
        }
        if Instant::now() >= next {
            emit(stats_event(&cg));
            next = Instant::now() + interval;
        }
        if Status::derive(proc::stat(st.pid), st.start_time, false, false) == Status::Stopped {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50).min(interval));
    }
}
