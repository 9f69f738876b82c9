//! The one place (besides `microvm/`) where raw syscalls live. Every function here turns the
//! kernel's return value into a `Result` at once and hands out `OwnedFd`s with `O_CLOEXEC`.

#![allow(unsafe_code)]

pub mod bpf;
pub mod fs;
pub mod mount;
pub mod net;
pub mod nsfs;
pub mod proc;
pub mod seccomp;
pub mod socket;
pub mod tty;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A failed system call: the step it was for and its error, which keeps the errno. The
/// modules' typed errors (process, microvm) take it as their `Sys` case.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct StepError {
    pub step: String,
    #[source]
    pub source: io::Error,
}

/// A failed `step`'s error (an `io::Error`, nix's `Errno`, KVM's) as a [`StepError`]:
/// `.map_err(during("prctl"))?`.
pub fn during<E: Into<io::Error>>(step: impl Into<String>) -> impl FnOnce(E) -> StepError {
    let step = step.into();
    move |e| StepError {
        step,
        source: e.into(),
    }
}

/// Turn a raw syscall return value into an `io::Result`.
pub fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The kernel's struct sigaction (x86_64 layout), for rt_sigaction(2) itself: libc's wrapper
/// refuses the signals it reserves, which a caller may still have ignored.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

// The layout rt_sigaction(2) reads on x86_64 (with an 8-byte sigset).
const _: () = assert!(std::mem::size_of::<KernelSigaction>() == 32);

/// A signal's description as strsignal(3) gives it, lower-cased as Go prints it ("bad system
/// call", "killed").
pub fn signal_description(sig: i32) -> String {
    // SAFETY: strsignal takes any number and returns a pointer to a NUL-terminated string
    // (static, or in a thread-local buffer for unknown numbers), or null.
    let p = unsafe { libc::strsignal(sig) };
    if p.is_null() {
        return format!("signal {sig}");
    }
    // SAFETY: `p` is a valid NUL-terminated string until the next strsignal call on this
    // thread; it is copied at once.
    let text = unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned();
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// Every signal's action back to SIG_DFL (but SIGKILL's and SIGSTOP's, which cannot change),
/// including those libc reserves for itself.
pub fn reset_signal_handlers() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours; the struct has the kernel's layout
        // and outlives the call; the old action is not requested.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null::<KernelSigaction>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// setdomainname(2) in the calling thread's UTS namespace.
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the call.
    cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }.into()).map(drop)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING): a new session keyring named `name`.
pub fn join_session_keyring(name: &std::ffi::CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING reads a NUL-terminated name, valid for the call.
    cvt(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) })
        .map(drop)
}

/// The Landlock ABI version of the running kernel (0: no Landlock).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION takes no attribute (NULL, size 0) and returns
    // the ABI version; no memory is passed.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// Make this process non-dumpable (or dumpable again). A non-dumpable process cannot be
/// ptraced by, and its `/proc/<pid>` files cannot be opened by, processes of a lesser
/// privilege, which keeps a container from reaching the runtime through `/proc/<pid>/exe`.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes a plain integer argument and touches no memory of ours.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            libc::c_ulong::from(dumpable),
            0,
            0,
            0,
        )
    };
    cvt(ret.into()).map(drop)
}

/// Set no_new_privs for this thread and its descendants.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integer arguments and touches no memory of ours.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    cvt(ret.into()).map(drop)
}

/// Keep (or stop keeping) the permitted capability set across a uid change.
pub fn set_keep_caps(keep: bool) -> io::Result<()> {
    // SAFETY: PR_SET_KEEPCAPS takes plain integer arguments and touches no memory of ours.
    let ret = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep), 0, 0, 0) };
    cvt(ret.into()).map(drop)
}

/// Ask the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    cvt(ret.into()).map(drop)
}

/// Mark every descriptor from `first` upwards close-on-exec, so that nothing the runtime
/// inherited by accident reaches the container's process.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers; CLOSE_RANGE_CLOEXEC only sets a flag.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    cvt(ret).map(drop)
}

/// The descriptor number the next open, dup or socket of this process would get (the lowest
/// free one), found by duplicating `open` (any descriptor of ours) and closing the copy.
pub fn lowest_free_fd(open: std::os::fd::BorrowedFd<'_>) -> io::Result<i32> {
    let probe = nix::fcntl::fcntl(open.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0))
        .map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nobody else owns.
    let probe = unsafe { OwnedFd::from_raw_fd(probe) };
    let n = probe.as_raw_fd();
    drop(probe);
    Ok(n)
}

/// personality(2): the execution domain (PER_LINUX 0, PER_LINUX32 8).
pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality takes a plain integer and touches no memory of ours.
    let r = unsafe { libc::personality(persona) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// set_mempolicy(2): the calling thread's NUMA memory policy (inherited across fork and
/// execve). `mode` is MPOL_* with the MPOL_F_* flags or-ed in; `nodes` the node mask words.
pub fn set_mempolicy(mode: i32, nodes: &[u64]) -> io::Result<()> {
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits.
        (nodes.as_ptr(), nodes.len() as u64 * 64 + 1)
    };
    // SAFETY: `nodes` is valid for the maxnode - 1 bits the kernel reads, or null with 0.
    cvt(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) }).map(drop)
}

/// The descriptors among 3, 4, ... 3+N-1 that the caller passed to the runtime: recorded at
/// startup, before the runtime opens anything of its own, by [`record_inherited`].
static INHERITED: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();

/// Record which of the descriptors 3..3+`n` are open now, i.e. the caller's (`--preserve-fds
/// N`). Call it before the runtime opens any file: whatever it opens later may take a free
/// number in that range, and must not reach the container.
pub fn record_inherited(n: u32) {
    let open = (3..3i32.saturating_add(n.min(1 << 20) as i32))
        // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect();
    let _ = INHERITED.set(open);
}

/// The caller's descriptors among 3..3+`n` (see [`record_inherited`]).
pub fn inherited(n: u32) -> Vec<i32> {
    INHERITED
        .get()
        .map(|v| {
            v.iter()
                .copied()
                .filter(|&fd| i64::from(fd) < 3 + i64::from(n))
                .collect()
        })
        .unwrap_or_default()
}

/// Close every descriptor from `first` upwards except those in `keep`: a forked child of the
/// runtime must not hold the runtime's locks or files (they would outlive it in the container).
pub fn close_fds_except(first: i32, keep: &[i32]) -> io::Result<()> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd >= first && !keep.contains(&fd) {
            // SAFETY: closing a descriptor number; nothing in this single-threaded child uses
            // the descriptors being closed (its owned handles are all in `keep`).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// The reader of stdout is gone: end as runc and coreutils do, killed by SIGPIPE (Rust
/// ignores the signal, which would make the write fail instead).
pub fn die_of_sigpipe() -> ! {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: installing SIG_DFL runs no code of ours; the struct has the kernel's layout and
    // outlives the call; the old action is not requested.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGPIPE,
            &dfl as *const KernelSigaction,
            std::ptr::null::<KernelSigaction>(),
            std::mem::size_of::<u64>(),
        )
    };
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGPIPE);
    exit_now(128 + libc::SIGPIPE)
}

/// The signals that end runc's init while it waits for `start` (Go's default: exit on
/// SIGHUP, SIGINT, SIGTERM; exit with a dump on SIGQUIT and SIGABRT).
pub const ENDS_A_WAITING_INIT: [nix::sys::signal::Signal; 5] = [
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGQUIT,
    nix::sys::signal::Signal::SIGABRT,
];

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + sig) }
}

/// Make `signals` end the process with status 128+N, and block them: they are taken only
/// where the process waits for them ([`wait_readable_taking`]) or unblocks them. A pid
/// namespace's init ignores every signal it has no handler for (SIGKILL and SIGSTOP from
/// outside excepted), so without this `kill ID TERM` could not end a container that was created
/// and not started, as it ends runc's. execve resets the handlers to the default.
pub fn exit_on_signals(signals: &[nix::sys::signal::Signal]) -> io::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow};
    let action = SigAction::new(
        SigHandler::Handler(exit_on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let mut set = SigSet::empty();
    for &sig in signals {
        // SAFETY: the handler only calls _exit, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.map_err(io::Error::from)?;
        set.add(sig);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(io::Error::from)
}

/// Unblock `signals`.
pub fn unblock_signals(signals: &[nix::sys::signal::Signal]) -> io::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    let set: SigSet = signals.iter().copied().collect();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None)
        .map_err(io::Error::from)
}

/// Wait until `fd` is readable with `signals` unblocked for the wait only (ppoll): a signal
/// that comes while waiting is taken, one that comes once `fd` is readable stays pending, so
/// that whoever makes `fd` readable knows no handler of `signals` runs after it.
pub fn wait_readable_taking(
    fd: std::os::fd::BorrowedFd<'_>,
    signals: &[nix::sys::signal::Signal],
) -> io::Result<()> {
    use nix::poll::{ppoll, PollFd, PollFlags};
    let mut during = nix::sys::signal::SigSet::thread_get_mask().map_err(io::Error::from)?;
    for &sig in signals {
        during.remove(sig);
    }
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match ppoll(&mut fds, None, Some(during)) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Leave the process at once, without running destructors or atexit handlers: the only
/// correct way out of a forked child of the runtime.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Proof that the process has one thread, which every fork here takes: a child forked from a
/// multi-threaded process may inherit locks (the allocator's, stdio's) held by threads that do
/// not exist in it, and the runtime's children allocate, parse JSON and run hooks. Made by
/// [`SingleThreaded::check`], which reads the kernel's thread count, or handed to a forked
/// child by the fork itself (a fork copies only the calling thread). Neither `Send` nor
/// `Sync`: it stays on the thread it was made for.
pub struct SingleThreaded(std::marker::PhantomData<*const ()>);

impl SingleThreaded {
    /// Check that this process has one thread. A thread that was just joined can still be
    /// counted for a moment while the kernel finishes its exit, so a count above one is
    /// read again for up to 100 ms before the fork is refused.
    pub fn check() -> io::Result<SingleThreaded> {
        let mut threads = thread_count()?;
        for _ in 0..200 {
            if threads == 1 {
                return Ok(SingleThreaded(std::marker::PhantomData));
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
            threads = thread_count()?;
        }
        Err(io::Error::other(format!(
            "the runtime has {threads} threads; refusing to fork (a child of a multi-threaded process may inherit held locks)"
        )))
    }
}

/// The number of threads of this process (/proc/self/stat, field 20).
fn thread_count() -> io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    after
        .split_whitespace()
        .nth(17)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other("cannot read the thread count from /proc/self/stat"))
}

/// What a fork returned.
pub enum Forked {
    /// In the new process, which has one thread.
    Child(SingleThreaded),
    Parent(libc::pid_t),
}

fn forked(ret: libc::c_long) -> io::Result<Forked> {
    match cvt(ret)? {
        0 => Ok(Forked::Child(SingleThreaded(std::marker::PhantomData))),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// fork(2). The child must leave through `exit_now` or `execve`, never by returning into the
/// caller's stack of destructors.
pub fn fork(_one_thread: &SingleThreaded) -> io::Result<Forked> {
    // SAFETY: the process has one thread (the token proves it), so the child inherits no lock
    // held by another thread.
    forked(unsafe { libc::fork() }.into())
}

/// clone3's flag (libc's constant is deprecated for its width).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's struct clone_args (clone3(2)), up to the cgroup field.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

// CLONE_ARGS_SIZE_VER2: the size clone3(2) is told, and the layout it reads.
const _: () = assert!(std::mem::size_of::<CloneArgs>() == 88);

/// fork(2) through clone3(2) with CLONE_INTO_CGROUP: the child starts in the cgroup v2
/// directory `cgroup_fd`, without the cost of a migration.
pub fn fork_into_cgroup(
    cgroup_fd: std::os::fd::BorrowedFd<'_>,
    _one_thread: &SingleThreaded,
) -> io::Result<Forked> {
    use std::os::fd::AsRawFd;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM and with no stack, clone3 duplicates the process like fork;
    // `args` is a valid clone_args of the size passed and outlives the call. The process has
    // one thread (the token proves it).
    forked(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    })
}

/// clone(2) with CLONE_PARENT: the new process becomes a sibling of the caller, a child of
/// the caller's parent (the runtime), so that the runtime can wait for it.
pub fn fork_sibling(_one_thread: &SingleThreaded) -> io::Result<Forked> {
    // SAFETY: a raw clone without CLONE_VM and with a null stack behaves like fork; the
    // process has one thread (the token proves it).
    forked(unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    })
}

/// Run `f` with this thread's filesystem uid and gid set to `ids` (setfsuid, setfsgid), with
/// the effective capabilities that change drops raised again from the permitted set; all
/// restored afterwards. Both calls act on the calling thread only.
pub fn with_fs_ids<T>(ids: (u32, u32), f: impl FnOnce() -> T) -> io::Result<T> {
    use caps::CapSet;
    let eff = caps::read(None, CapSet::Effective).map_err(io::Error::other)?;
    // SAFETY: a plain integer argument; only this thread's filesystem gid changes.
    let old_gid = unsafe { libc::setfsgid(ids.1) };
    // SAFETY: as above, for the filesystem uid.
    let old_uid = unsafe { libc::setfsuid(ids.0) };
    let out = caps::set(None, CapSet::Effective, &eff)
        .map(|()| f())
        .map_err(io::Error::other);
    // SAFETY: as above, back to the previous ids.
    unsafe { libc::setfsuid(old_uid as u32) };
    // SAFETY: as above.
    unsafe { libc::setfsgid(old_gid as u32) };
    caps::set(None, CapSet::Effective, &eff).map_err(io::Error::other)?;
    out
}

/// The signals a process standing in for another passes on to it (`run` and `exec`'s
/// supervisor to the container's process, a microVM exec relay to its guest process).
pub const FORWARDED_SIGNALS: [nix::sys::signal::Signal; 8] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
    nix::sys::signal::Signal::SIGUSR1,
    nix::sys::signal::Signal::SIGUSR2,
    nix::sys::signal::Signal::SIGWINCH,
    nix::sys::signal::Signal::SIGCONT,
];

/// Which of the descriptors poll(2) reported anything for (readable, writable, hung up or
/// in error), in their order.
pub fn poll_ready(fds: &[nix::poll::PollFd<'_>]) -> Vec<bool> {
    fds.iter()
        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_described_as_go_prints_them() {
        assert_eq!(signal_description(libc::SIGSYS), "bad system call");
        assert_eq!(signal_description(libc::SIGKILL), "killed");
        assert!(!signal_description(1000).is_empty());
    }

    /// A fork is refused while another thread runs (the test harness has its own too), with
    /// the count named; the token cannot be had by waiting it out.
    #[test]
    fn fork_refused_while_other_threads_run() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count().unwrap() >= 2);
        let e = SingleThreaded::check()
            .err()
            .expect("check passed with two threads");
        assert!(e.to_string().contains("threads; refusing to fork"), "{e}");
        tx.send(()).unwrap();
        t.join().unwrap().unwrap();
    }
}
