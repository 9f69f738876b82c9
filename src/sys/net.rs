//! Bring up the loopback interface of a new network namespace (runc does the same).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::cvt;

/// Set IFF_UP on `lo` of the calling thread's network namespace.
pub fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = cvt(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }.into(),
    )?;
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills `req`, valid for the call.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) }.into())?;
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req`, valid for the call.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }.into())?;
    Ok(())
}
