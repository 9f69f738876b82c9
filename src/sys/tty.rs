//! Terminal ioctls: the console pty (unlocked, its slave opened through the master), window
//! sizes, the controlling terminal.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// TIOCSPTLCK 0: unlock the pty behind `master`.
pub fn unlock_pty(master: BorrowedFd<'_>) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer, which is valid for the call.
    cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) }.into()).map(drop)
}

/// TIOCGPTPEER: the slave of `master`, opened through the master itself (no path lookup in
/// a /dev/pts the container controls), close-on-exec and not our controlling terminal.
pub fn open_pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor or -1.
    let fd = cvt(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    }
    .into())?;
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A new pty of the devpts behind /dev/ptmx: (master, slave), unlocked, neither our
/// controlling terminal, both close-on-exec.
pub fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let master = super::fs::open_host(
        std::path::Path::new("/dev/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY,
    )?;
    unlock_pty(master.as_fd())?;
    let slave = open_pty_peer(master.as_fd())?;
    Ok((master, slave))
}

/// Put the terminal behind `fd` in raw mode (no echo, no line discipline, bytes unchanged);
/// its settings before.
pub fn make_raw(fd: BorrowedFd<'_>) -> io::Result<nix::sys::termios::Termios> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let orig = tcgetattr(fd)?;
    let mut raw = orig.clone();
    cfmakeraw(&mut raw);
    tcsetattr(fd, SetArg::TCSANOW, &raw)?;
    Ok(orig)
}

/// TIOCGWINSZ: (rows, columns) of the terminal behind `fd`.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize, valid for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) }.into())?;
    Ok((ws.ws_row, ws.ws_col))
}

/// TIOCSWINSZ: give the terminal behind `fd` this size.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is valid for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) }.into()).map(drop)
}

/// TIOCSCTTY: make the terminal behind `fd` the calling session's controlling terminal.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument; `fd` is a live descriptor.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }.into()).map(drop)
}
