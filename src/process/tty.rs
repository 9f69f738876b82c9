//! The container's terminal: a pty allocated inside the container's devpts, its master sent
//! to the caller's console socket (SCM_RIGHTS, as runc does), its slave made the controlling
//! terminal and stdio of the init.

use super::ProcessError;
use crate::sys::during;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::sys::socket::send_fd;

/// Bind the pty slave onto /dev/console, as the runtime spec asks for a container with a
/// terminal. The bind's source is the slave's descriptor and its target a descriptor opened
/// without following any symlink and checked to be a regular file or a character device, so
/// neither can be swapped for another path (CVE-2025-52565: runc's bind, redirected by a
/// symlink or a race, made /proc/sys/kernel/core_pattern writable in the container). A
/// missing /dev/console is created; one that is anything else is refused.
fn bind_console(slave: &OwnedFd) -> Result<(), ProcessError> {
    use crate::sys::fs::{ensure_file_in_root, fstat, open_host, openat2};
    use std::path::Path;
    let root = open_host(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(during("open the container's root"))?;
    let strict = || {
        openat2(
            root.as_fd(),
            Path::new("dev/console"),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        )
    };
    let target = match strict() {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            ensure_file_in_root(root.as_fd(), Path::new("/dev/console"))
                .and_then(|_| strict())
                .map_err(during("create /dev/console"))?
        }
        other => other.map_err(|e| {
            ProcessError::Refused(format!(
                "/dev/console: {e} (a symlink on the way is refused: the console is bound on it)"
            ))
        })?,
    };
    let kind = fstat(target.as_fd())
        .map_err(during("/dev/console"))?
        .st_mode
        & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        return Err(ProcessError::Refused(format!(
            "/dev/console in the container is a {}: refusing to bind the console on it (only a file or a character device)",
            match kind {
                libc::S_IFLNK => "symlink",
                libc::S_IFDIR => "directory",
                libc::S_IFIFO => "FIFO",
                libc::S_IFSOCK => "socket",
                libc::S_IFBLK => "block device",
                _ => "special file",
            }
        )));
    }
    let tree =
        crate::sys::mount::clone_fd(slave.as_fd(), false).map_err(during("bind the console"))?;
    crate::sys::mount::attach(tree.as_fd(), target.as_fd())
        .map_err(|e| during("bind the console on /dev/console")(e).into())
}

/// Allocate the pty, send the master over `console`, and make the slave our terminal.
pub fn setup(
    console: &OwnedFd,
    size: Option<(u16, u16)>,
    owner_uid: u32,
) -> Result<(), ProcessError> {
    let (master, slave) =
        crate::sys::tty::open_pty().map_err(during("open a pty (/dev/ptmx) in the container"))?;
    if let Some((rows, cols)) = size {
        crate::sys::tty::set_window_size(master.as_fd(), rows, cols)
            .map_err(during("set the console size"))?;
    }
    nix::unistd::fchown(
        slave.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(owner_uid)),
        None,
    )
    .map_err(during("chown the pty slave"))?;
    bind_console(&slave)?;
    send_fd(console.as_fd(), master.as_raw_fd(), b"/dev/ptmx")
        .map_err(during("send the pty master to the console socket"))?;
    drop(master);
    nix::unistd::setsid().map_err(during("setsid"))?;
    crate::sys::tty::set_controlling_terminal(slave.as_fd())
        .map_err(during("make the pty the controlling terminal"))?;
    for fd in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), fd)
            .map_err(during(format!("dup the pty to fd {fd}")))?;
    }
    Ok(())
}
