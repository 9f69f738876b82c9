//! Facts about processes read from procfs, and pidfds.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::cvt;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The one-letter state (R, S, D, Z, T, ...).
    pub state: char,
    /// Start time in clock ticks after boot: with the pid, it names a process uniquely.
    pub start_time: u64,
}

/// Parse the contents of `/proc/<pid>/stat`. The command name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come fields 4..; the start time is field 22, i.e. 19 further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Read `/proc/<pid>/stat`; `None` if the process does not exist.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Open a pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_send_signal(2): signal `sig` (0: only check) to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a null siginfo and no flags are valid arguments; no memory of ours is passed.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Whether the process behind `pidfd` has not exited (pidfd_send_signal with signal 0).
pub fn pidfd_alive(pidfd: &OwnedFd) -> bool {
    pidfd_send_signal(pidfd, 0).is_ok()
}

/// A pidfd of `pid` if it is still the process that started at `start_time`: with the
/// pidfd held, a later [`pidfd_alive`] says whether what was read of /proc/`pid` since
/// belonged to that process (a reused pid would be another's).
pub fn pidfd_of(pid: i32, start_time: u64) -> io::Result<OwnedFd> {
    let fd = pidfd_open(pid)?;
    if stat(pid).map(|s| s.start_time) != Some(start_time) {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        let st = parse_stat(line).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 98765);
    }

    #[test]
    fn rejects_truncated() {
        assert_eq!(parse_stat("42 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_own_stat() {
        let st = stat(std::process::id() as i32).unwrap();
        assert!(st.start_time > 0);
    }
}
