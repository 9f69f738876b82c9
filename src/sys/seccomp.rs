//! seccomp(2) and the classic BPF instruction it takes; pidfd_getfd(2), with which the
//! runtime takes a filter's listener from the process that installed it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
