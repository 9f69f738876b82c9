//! seccomp(2) and the classic BPF instruction it takes; pidfd_getfd(2), with which the
//! runtime takes a filter's listener from the process that installed it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// One instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// `install` hands a slice of `Insn` to the kernel as `struct sock_filter`s.
const _: () = assert!(std::mem::size_of::<Insn>() == std::mem::size_of::<libc::sock_filter>());
const _: () = assert!(std::mem::align_of::<Insn>() == std::mem::align_of::<libc::sock_filter>());

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;

/// Whether this kernel can enforce the filter action `kind` (SECCOMP_GET_ACTION_AVAIL).
pub fn action_available(kind: u32) -> io::Result<()> {
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 through the pointer, valid for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0,
            &kind as *const u32,
        )
    };
    cvt(r).map(drop)
}

/// Install `program` on the calling thread with `flags`; with SECCOMP_FILTER_FLAG_NEW_LISTENER
/// among them (`listener`), the listener descriptor the kernel returns.
pub fn install(program: &[Insn], flags: u32, listener: bool) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `program`, whose `Insn`s have sock_filter's layout (asserted
    // above) and outlive the call; the kernel copies the program.
    let r = cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &prog as *const libc::sock_fprog,
        )
    })?;
    if listener {
        // SAFETY: with NEW_LISTENER the kernel returns a new descriptor that nobody else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }))
    } else {
        Ok(None)
    }
}

/// Take descriptor `fd` of the process behind `pidfd` with pidfd_getfd(2).
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags 0; no memory is passed.
    let r = cvt(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?;
    // SAFETY: pidfd_getfd returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// One seccomp user notification: which process made which syscall, with what arguments.
#[derive(Clone, Copy, Debug)]
pub struct Notification {
    pub id: u64,
    /// In the pid namespace of the listener's reader.
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// Receive the next notification from `listener` (blocks unless one is pending).
pub fn notif_recv(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    // SAFETY: seccomp_notif is plain integers; the kernel wants it zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV writes one struct seccomp_notif, which `n` is.
    let r = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
    cvt(r.into())?;
    Ok(Notification {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// Let the notified syscall `id` run as if no filter had notified it
/// (SECCOMP_USER_NOTIF_FLAG_CONTINUE): the process's other filters have already decided.
pub fn notif_continue(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    // SAFETY: NOTIF_SEND reads one struct seccomp_notif_resp, which `resp` is.
    cvt(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    }
    .into())
    .map(drop)
}

/// Whether notification `id` is still pending (SECCOMP_IOCTL_NOTIF_ID_VALID): the process
/// is still in that syscall, so what was read of it since the receive is its own (and not of
/// another process that took its pid).
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    let mut id = id;
    // SAFETY: NOTIF_ID_VALID reads one u64, which `id` is.
    cvt(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id,
        )
    }
    .into())
    .map(drop)
}

/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6): the notifying process and the reader hand
/// the CPU to each other directly, which makes a supervisor that answers every syscall
/// several times cheaper. An older kernel refuses it (EINVAL); the caller may go on without.
pub fn notif_sync_wake_up(listener: BorrowedFd<'_>) -> io::Result<()> {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
    // SAFETY: SET_FLAGS takes the flags by value; no memory is passed.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    cvt(r.into()).map(drop)
}
