//! `exec`: a new process in a running container. Stage 1 moves into the container's cgroup
//! (the runtime writes its pid), opens every namespace of the container's init *before*
//! joining any (after the mount namespace, /proc is the container's), joins them (user first,
//! mount last), then forks the process with CLONE_PARENT so that the pid namespace applies and
//! the runtime can wait for it. The process gets the same treatment as the container's init:
//! capabilities, user, no_new_privs, rlimits, a fresh signal state, only the descriptors meant
//! for it, and it stays non-dumpable until it has exec'd.

use super::ProcessError;
use crate::sys::during;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::setns;
use nix::unistd::{setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::exec;
use super::init::{
    apply_landlock, close_runtime_fds, expect, fail, filter_at, fork_and_report, install_seccomp,
    FilterAt,
};
use super::rlimits;
use super::sync::{Channel, Msg};
use super::tty;
use crate::caps::CapPlan;
use crate::ns::{clone_flag, ns_file, JOIN_ORDER};
use crate::sys;

/// What the forked stages need.
pub struct ExecArgs<'a> {
    pub init_pid: i32,
    /// The init's start time from the state: a pid with another start time is not the init.
    pub init_start_time: u64,
    /// The namespace types of the container (from its config).
    pub namespaces: &'a [LinuxNamespaceType],
    pub process: &'a Process,
    pub caps: CapPlan,
    pub preserve_fds: u32,
    pub console: Option<OwnedFd>,
    /// The container's seccomp filters, compiled by the runtime, in install order.
    pub seccomp: Vec<&'a crate::seccomp::Compiled>,
    /// The container's Landlock plan.
    pub landlock: Option<&'a crate::landlock::Plan>,
}

pub fn stage1(
    ch: Channel,
    args: &ExecArgs<'_>,
    cgroup: &crate::cgroups::Cgroup,
    one: &sys::SingleThreaded,
) -> ! {
    match stage1_inner(&ch, args, cgroup, one) {
        Ok(false) => sys::exit_now(0),
        Ok(true) => match process_inner(&ch, args) {
            Ok(never) => match never {},
            Err(e) => fail(&ch, e),
        },
        Err(e) => fail(&ch, e),
    }
}

/// Returns true in the forked process, false in stage 1 once it has reported the pid.
fn stage1_inner(
    ch: &Channel,
    args: &ExecArgs<'_>,
    cgroup: &crate::cgroups::Cgroup,
    one: &sys::SingleThreaded,
) -> Result<bool, ProcessError> {
    sys::set_parent_death_signal(libc::SIGKILL).map_err(during("prctl"))?;
    let mut keep = vec![ch.as_raw_fd()];
    keep.extend(args.console.as_ref().map(|c| c.as_raw_fd()));
    close_runtime_fds(keep, args.preserve_fds)?;
    expect(ch, Msg::Go)?;
    cgroup.join_self_v1()?;
    rlimits::apply(args.process.rlimits().as_deref().unwrap_or_default())?;
    let mut files: Vec<(LinuxNamespaceType, File)> = Vec::new();
    // Unprivileged, the user namespace first: it grants the rights to join the others. As
    // root, the others first (root may join any), the user namespace last: a namespace the
    // container joined before its user namespace was made (a network namespace by path) is
    // not the user namespace's to enter.
    let order: Vec<LinuxNamespaceType> = if nix::unistd::geteuid().is_root() {
        JOIN_ORDER
            .into_iter()
            .chain(std::iter::once(LinuxNamespaceType::User))
            .collect()
    } else {
        std::iter::once(LinuxNamespaceType::User)
            .chain(JOIN_ORDER)
            .collect()
    };
    // The namespaces are the init's only if the pid still is the init's when they are open:
    // a pidfd taken after checking the start time, and still alive afterwards, proves it (a
    // pid reused between the status check and here would join another process's namespaces).
    let gone = || {
        ProcessError::Namespace(format!(
            "the container's init (pid {}) has exited",
            args.init_pid
        ))
    };
    let pidfd =
        crate::sys::proc::pidfd_of(args.init_pid, args.init_start_time).map_err(|_| gone())?;
    for t in order.into_iter().filter(|t| args.namespaces.contains(t)) {
        let path = format!("/proc/{}/ns/{}", args.init_pid, ns_file(t));
        let f = File::open(&path).map_err(during(format!("open {path}")))?;
        files.push((t, f));
    }
    if !crate::sys::proc::pidfd_alive(&pidfd) {
        return Err(gone());
    }
    drop(pidfd);
    for (t, f) in &files {
        setns(f.as_fd(), clone_flag(*t)).map_err(during(format!(
            "join the container's {} namespace",
            ns_file(*t)
        )))?;
        if *t == LinuxNamespaceType::User
            && setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).is_ok()
        {
            setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                .map_err(during("become root in the user namespace"))?;
        }
    }
    drop(files);
    fork_and_report(ch, "the process", one)
}

enum Never {}

fn process_inner(ch: &Channel, args: &ExecArgs<'_>) -> Result<Never, ProcessError> {
    sys::set_parent_death_signal(libc::SIGKILL).map_err(during("prctl"))?;
    expect(ch, Msg::Go)?;
    let p = args.process;
    let user = p.user();
    if let Some(console) = &args.console {
        let size = p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup(console, size, user.uid())?;
    }
    apply_landlock(args.landlock)?;
    // Before any filter: config.json's profile need not allow close_range.
    sys::cloexec_from(3 + args.preserve_fds).map_err(during("close descriptors"))?;
    let at = filter_at(p, &args.seccomp, false);
    if at == FilterAt::BeforeCredentials {
        install_seccomp(ch, &args.seccomp)?;
    }
    let program = exec::become_process(p, &args.caps)?;
    exec::reset_signals();
    sys::set_parent_death_signal(0).map_err(during("prctl"))?;
    // The runtime waits for Ready, so installing just before it still reports errors.
    if at != FilterAt::BeforeCredentials {
        install_seccomp(ch, &args.seccomp)?;
    }
    ch.send(&Msg::Ready).map_err(during("sync"))?;
    program.exec()
}
