//! The seam between the rootfs's logic (which mount, in which order, on what, refused when)
//! and the kernel: every system call the init makes to build the container's filesystem view
//! goes through [`Syscalls`]. The init uses [`Real`]; the unit tests use a recording fake
//! (rootfs/tests.rs) that models a small tree, so mount order, masking and /dev setup are
//! tested without root.
//!
//! Descriptors stay real `OwnedFd`s on both sides (the fake hands out descriptors of
//! /dev/null and remembers which path each one stands for), so the code above the seam is
//! the code that runs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::devices::Node;
use crate::sys::fs::fd_path;

/// Where a mount comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// No source (a remount, a propagation change).
    None,
    /// A name the filesystem takes as its source ("tmpfs", "proc", a device path).
    Name(&'a Path),
    /// The file or tree a descriptor refers to (the source of a bind).
    Fd(BorrowedFd<'a>),
}

/// What [`Syscalls::stat`] reports of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The file type bits (`S_IFMT`) and permissions.
    pub mode: u32,
    /// The device number of a device node.
    pub rdev: u64,
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// The system calls that build a container's filesystem view.
pub trait Syscalls {
    /// mount(2) on the mount point `target` refers to.
    fn mount(
        &self,
        source: Source<'_>,
        target: BorrowedFd<'_>,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// mount(2) on a path of the init's own view ("/", "." while switching the root, the
    /// rootfs's own path).
    fn mount_path(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()>;
    /// umount2(2) of a path of the init's own view.
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// move_mount(2) of a detached tree onto `target`.
    fn attach(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()>;
    /// A new detached copy of the mount `mnt` and those below it
    /// (open_tree(OPEN_TREE_CLONE|AT_RECURSIVE)).
    fn copy_tree_now(&self, mnt: BorrowedFd<'_>) -> io::Result<OwnedFd>;
    /// Lazily unmount the mount `mnt` (an O_PATH descriptor of its root) and those below it.
    fn detach(&self, mnt: BorrowedFd<'_>) -> io::Result<()>;
    /// mount_setattr(2).
    fn set_attrs(
        &self,
        mnt: BorrowedFd<'_>,
        set: u64,
        clear: u64,
        recursive: bool,
    ) -> io::Result<()>;
    /// Open a (trusted) host path.
    fn open_host(&self, path: &Path, flags: i32) -> io::Result<OwnedFd>;
    /// Open `path` resolved inside `root`.
    fn open_in_root(&self, root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd>;
    /// Create the missing directories of `path` inside `root`; an O_PATH descriptor of it.
    fn mkdir_all_in_root(
        &self,
        root: BorrowedFd<'_>,
        path: &Path,
        mode: u32,
    ) -> io::Result<OwnedFd>;
    /// Make sure a non-directory exists at `path` inside `root`; an O_PATH descriptor of it.
    fn ensure_file_in_root(&self, root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd>;
    /// Whether the last component of `path` inside `root` is a symlink.
    fn is_symlink_in_root(&self, root: BorrowedFd<'_>, path: &Path) -> io::Result<bool>;
    fn stat(&self, fd: BorrowedFd<'_>) -> io::Result<Stat>;
    /// fstatfs(2)'s filesystem type.
    fn fs_type(&self, fd: BorrowedFd<'_>) -> io::Result<i64>;
    /// fstatvfs(2)'s mount flags (ST_*).
    fn mount_flags(&self, fd: BorrowedFd<'_>) -> io::Result<u64>;
    /// The path a descriptor refers to, as the kernel names it.
    fn path_of(&self, fd: BorrowedFd<'_>) -> io::Result<PathBuf>;
    fn duplicate(&self, fd: BorrowedFd<'_>) -> io::Result<OwnedFd>;
    /// mknod the node `n` as `name` in `dir`.
    fn mknod_at(&self, dir: BorrowedFd<'_>, name: &CStr, n: &Node) -> io::Result<()>;
    /// Give `name` in `dir` the node's exact mode and `owner`.
    fn set_mode_owner(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        n: &Node,
        owner: (u32, u32),
    ) -> io::Result<()>;
    /// symlinkat(2).
    fn symlink_at(&self, target: &str, dir: BorrowedFd<'_>, name: &str) -> io::Result<()>;
    /// The host's node for the device `n` names, with its permission bits.
    fn host_node(&self, n: &Node) -> Option<(PathBuf, u32)>;
    /// Whether a host path exists.
    fn host_has(&self, path: &Path) -> bool;
    /// Copy the tree under `from` into `to` (tmpcopyup).
    fn copy_tree(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()>;
    /// The init's /proc/self/mountinfo.
    fn mountinfo(&self) -> io::Result<String>;
    /// fchdir(2).
    fn fchdir(&self, dir: BorrowedFd<'_>) -> io::Result<()>;
    /// pivot_root(".", ".").
    fn pivot_root_here(&self) -> io::Result<()>;
    /// chroot(".").
    fn chroot_here(&self) -> io::Result<()>;
    /// chdir("/").
    fn chdir_root(&self) -> io::Result<()>;
}

/// The kernel.
pub struct Real;

fn nix(r: nix::Result<()>) -> io::Result<()> {
    r.map_err(io::Error::from)
}

impl Syscalls for Real {
    fn mount(
        &self,
        source: Source<'_>,
        target: BorrowedFd<'_>,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let source = match source {
            Source::None => None,
            Source::Name(p) => Some(p.to_path_buf()),
            Source::Fd(fd) => Some(fd_path(&fd)),
        };
        nix(nix::mount::mount(
            source.as_deref(),
            &fd_path(&target),
            fstype,
            flags,
            data,
        ))
    }

    fn mount_path(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()> {
        nix(nix::mount::mount(
            source,
            target,
            fstype,
            flags,
            None::<&str>,
        ))
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix(nix::mount::umount2(target, flags))
    }

    fn attach(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
        crate::sys::mount::attach(tree, target)
    }

    fn copy_tree_now(&self, mnt: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        crate::sys::mount::clone_fd(mnt, true)
    }

    fn detach(&self, mnt: BorrowedFd<'_>) -> io::Result<()> {
        let path = format!("/proc/self/fd/{}", mnt.as_raw_fd());
        nix(nix::mount::umount2(path.as_str(), MntFlags::MNT_DETACH))
    }

    fn set_attrs(
        &self,
        mnt: BorrowedFd<'_>,
        set: u64,
        clear: u64,
        recursive: bool,
    ) -> io::Result<()> {
        crate::sys::mount::set_attrs(mnt, set, clear, recursive)
    }

    fn open_host(&self, path: &Path, flags: i32) -> io::Result<OwnedFd> {
        crate::sys::fs::open_host(path, flags)
    }

    fn open_in_root(&self, root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
        crate::sys::fs::open_in_root(root, path, flags)
    }

    fn mkdir_all_in_root(
        &self,
        root: BorrowedFd<'_>,
        path: &Path,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        crate::sys::fs::mkdir_all_in_root(root, path, mode)
    }

    fn ensure_file_in_root(&self, root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
        crate::sys::fs::ensure_file_in_root(root, path)
    }

    fn is_symlink_in_root(&self, root: BorrowedFd<'_>, path: &Path) -> io::Result<bool> {
        crate::sys::fs::is_symlink_in_root(root, path)
    }

    fn stat(&self, fd: BorrowedFd<'_>) -> io::Result<Stat> {
        let st = crate::sys::fs::fstat(fd)?;
        Ok(Stat {
            mode: st.st_mode,
            rdev: st.st_rdev,
        })
    }

    fn fs_type(&self, fd: BorrowedFd<'_>) -> io::Result<i64> {
        crate::sys::fs::fs_type(fd)
    }

    fn mount_flags(&self, fd: BorrowedFd<'_>) -> io::Result<u64> {
        crate::sys::fs::mount_flags(fd)
    }

    fn path_of(&self, fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
        std::fs::read_link(fd_path(&fd))
    }

    fn duplicate(&self, fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        fd.try_clone_to_owned()
    }

    fn mknod_at(&self, dir: BorrowedFd<'_>, name: &CStr, n: &Node) -> io::Result<()> {
        super::devices::mknod_at(dir, name, n)
    }

    fn set_mode_owner(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        n: &Node,
        owner: (u32, u32),
    ) -> io::Result<()> {
        super::devices::set_mode_owner(dir, name, n, owner)
    }

    fn symlink_at(&self, target: &str, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
        nix(nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name))
    }

    fn host_node(&self, n: &Node) -> Option<(PathBuf, u32)> {
        use std::os::unix::fs::MetadataExt;
        let path = super::devices::host_node(n)?;
        let mode = std::fs::metadata(&path).map(|m| m.mode() & 0o7777).ok()?;
        Some((path, mode))
    }

    fn host_has(&self, path: &Path) -> bool {
        path.exists()
    }

    fn copy_tree(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        copy_tree(&fd_path(&from), &fd_path(&to))
    }

    fn mountinfo(&self) -> io::Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> io::Result<()> {
        nix(nix::unistd::fchdir(dir.as_raw_fd()))
    }

    fn pivot_root_here(&self) -> io::Result<()> {
        nix(nix::unistd::pivot_root(".", "."))
    }

    fn chroot_here(&self) -> io::Result<()> {
        nix(nix::unistd::chroot("."))
    }

    fn chdir_root(&self) -> io::Result<()> {
        nix(nix::unistd::chdir("/"))
    }
}

/// Copy a directory tree without following symlinks (for tmpcopyup).
fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    use std::os::unix::fs::{symlink, PermissionsExt};
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let to = dst.join(entry.file_name());
        let ft = meta.file_type();
        if ft.is_symlink() {
            symlink(std::fs::read_link(entry.path())?, &to)?;
        } else if ft.is_dir() {
            std::fs::create_dir(&to)?;
            std::fs::set_permissions(
                &to,
                std::fs::Permissions::from_mode(meta.permissions().mode()),
            )?;
            copy_tree(&entry.path(), &to)?;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}
