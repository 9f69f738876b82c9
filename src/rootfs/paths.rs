//! maskedPaths, readonlyPaths and the read-only rootfs, applied through descriptors before
//! the root is switched.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::mount::MsFlags;

use super::mounts::locked_flags;
use super::{step, RootfsError, Source, Syscalls};

fn open_existing(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    p: &Path,
) -> Result<Option<std::os::fd::OwnedFd>, RootfsError> {
    match sys.open_in_root(root, p, libc::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(step(format!("open {}", p.display()))(e)),
    }
}

/// Hide each path: a read-only empty tmpfs over directories, the container's /dev/null over
/// files. /dev/null is checked to be the real null device (character 1:3) first, so a rootfs
/// that swaps it for a link or a regular file cannot turn masking into a bind of its choice.
pub fn mask_paths(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    paths: &[String],
) -> Result<(), RootfsError> {
    let mut null = None;
    for p in paths {
        let p = Path::new(p);
        let Some(fd) = open_existing(sys, root, p)? else {
            continue;
        };
        let st = sys
            .stat(fd.as_fd())
            .map_err(step(format!("stat {}", p.display())))?;
        if st.is_dir() {
            sys.mount(
                Source::Name(Path::new("tmpfs")),
                fd.as_fd(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
            .map_err(step(format!("mask {}", p.display())))?;
        } else {
            if null.is_none() {
                let fd = sys
                    .open_in_root(
                        root,
                        Path::new("/dev/null"),
                        libc::O_PATH | libc::O_NOFOLLOW,
                    )
                    .map_err(step("open /dev/null to mask paths"))?;
                let st = sys.stat(fd.as_fd()).map_err(step("stat /dev/null"))?;
                if st.mode & libc::S_IFMT != libc::S_IFCHR || st.rdev != libc::makedev(1, 3) {
                    return Err(RootfsError::Refused(
                        "/dev/null in the container is not the null device (character 1:3); refusing to mask paths with it".into(),
                    ));
                }
                null = Some(fd);
            }
            let null = null
                .as_ref()
                .map_or(Source::None, |n| Source::Fd(n.as_fd()));
            sys.mount(null, fd.as_fd(), None, MsFlags::MS_BIND, None)
                .map_err(step(format!("mask {}", p.display())))?;
        }
    }
    Ok(())
}

/// Make each existing path a read-only bind mount of itself.
pub fn readonly_paths(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    paths: &[String],
) -> Result<(), RootfsError> {
    for p in paths {
        let p = Path::new(p);
        let Some(fd) = open_existing(sys, root, p)? else {
            continue;
        };
        sys.mount(
            Source::Fd(fd.as_fd()),
            fd.as_fd(),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(step(format!("bind {} read-only", p.display())))?;
        let new = sys
            .open_in_root(root, p, libc::O_PATH)
            .map_err(step(format!("reopen {}", p.display())))?;
        remount_readonly(sys, new.as_fd(), p)?;
    }
    Ok(())
}

/// Remount the mount at `fd` read-only, keeping its locked flags.
pub fn remount_readonly(
    sys: &dyn Syscalls,
    fd: BorrowedFd<'_>,
    what: &Path,
) -> Result<(), RootfsError> {
    let locked = locked_flags(sys, fd)?;
    sys.mount(
        Source::None,
        fd,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | locked,
        None,
    )
    .map_err(step(format!("remount {} read-only", what.display())))
}
