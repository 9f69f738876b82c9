//! The new mount API where mount(2) cannot do the job: detached copies of a tree
//! (open_tree), idmapped mounts (mount_setattr with MOUNT_ATTR_IDMAP) and attaching a
//! detached mount (move_mount). Not in nix; the constants are the UAPI's (linux/mount.h).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::cvt;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// struct mount_attr (linux/mount.h, MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the mount at `path` (and, with `recursive`, of those below it), made a
/// slave of the original: the kernel puts a copy of a shared mount in the original's peer
/// group, so that, attached in a container, everything mounted on it (the container's /proc,
/// /dev, cgroups...) would propagate back to the host's mount table (on a systemd host, where
/// `/` is shared). As a slave it still receives what the host mounts there, as runc's rslave
/// rootfs does, and sends nothing back.
pub fn clone_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let c = super::fs::cstr(path)?;
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | rec;
    // SAFETY: `c` is a NUL-terminated path valid for the call; no other memory is passed.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) })?;
    // SAFETY: open_tree returned a new descriptor that nobody else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    setattr(
        tree.as_fd(),
        &MountAttr {
            attr_set: 0,
            attr_clr: 0,
            propagation: libc::MS_SLAVE,
            userns_fd: 0,
        },
        recursive,
    )
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("make the copy of {} a slave: {e}", path.display()),
        )
    })?;
    Ok(tree)
}

/// A detached bind of the file or directory `fd` refers to (open_tree with AT_EMPTY_PATH), with
/// `recursive` of the mounts below it too: no path is resolved, so nothing can be swapped in
/// between.
pub fn clone_fd(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint
        | rec;
    // SAFETY: the empty path is a static NUL-terminated string; the descriptor is valid for
    // the call.
    let m =
        cvt(unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) })?;
    // SAFETY: open_tree returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(m as i32) })
}

/// Set and clear MOUNT_ATTR_* bits on the mount `mnt` (an O_PATH descriptor of a mount point)
/// and, with `recursive`, on every mount below it.
pub fn set_attrs(mnt: BorrowedFd<'_>, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    setattr(
        mnt,
        &MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        },
        recursive,
    )
}

/// mount_setattr(2) on the mount `mnt` (and, with `recursive`, on those below it).
fn setattr(mnt: BorrowedFd<'_>, attr: &MountAttr, recursive: bool) -> io::Result<()> {
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the empty path is a static NUL-terminated string; `attr` has the kernel's
    // layout, its size is passed, and it outlives the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Make the detached mount `mnt` idmapped through the id maps of user namespace `userns`:
/// a file stored with owner N is seen as owned by the host id that `userns` maps N to, so
/// inside that namespace it shows as N again (host root's files are the container root's,
/// and what container root creates is stored as owned by 0).
pub fn set_idmap(mnt: BorrowedFd<'_>, userns: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    setattr(mnt, &attr, recursive)
}

/// Attach the detached mount `mnt` on `target` (an O_PATH descriptor).
pub fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: both paths are static empty strings; the descriptors are valid for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

/// The mount attributes (MOUNT_ATTR_*) that mount(2) flags ask for; flags with no attribute
/// (propagation, bind) are left to the caller.
pub fn attrs_from_flags(flags: nix::mount::MsFlags) -> u64 {
    use nix::mount::MsFlags as F;
    [
        (F::MS_RDONLY, 0x1),
        (F::MS_NOSUID, 0x2),
        (F::MS_NODEV, 0x4),
        (F::MS_NOEXEC, 0x8),
        (F::MS_NOATIME, 0x10),
        (F::MS_STRICTATIME, 0x20),
        (F::MS_NODIRATIME, 0x80),
    ]
    .iter()
    .filter(|(f, _)| flags.contains(*f))
    .fold(0, |a, (_, attr)| a | attr)
}

/// A new, detached instance of filesystem `fstype` (fsopen, fsconfig, fsmount) named `source`,
/// else `fstype`,
/// (as /proc/mounts shows it) with `data`'s "key=value" / "flag" options and `attrs`
/// (MOUNT_ATTR_*). It belongs to the caller's user
/// namespace: made by host root, device nodes on it work wherever it is attached.
pub fn new_fs(
    fstype: &str,
    source: Option<&Path>,
    data: &[String],
    attrs: u64,
) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(fstype).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let fs = cvt(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen returned a new descriptor that nobody else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    let source = format!(
        "source={}",
        source.map_or(fstype.into(), |s| s.to_string_lossy())
    );
    for opt in std::iter::once(&source).chain(data) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        let k = std::ffi::CString::new(key).map_err(|_| io::ErrorKind::InvalidInput)?;
        let v = value
            .map(std::ffi::CString::new)
            .transpose()
            .map_err(|_| io::ErrorKind::InvalidInput)?;
        let (cmd, vp) = match &v {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: `k` and `v` are NUL-terminated strings that outlive the call (or null for
        // a flag, as the UAPI wants); `fs` is a live fs context.
        cvt(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, k.as_ptr(), vp, 0) })
            .map_err(|e| io::Error::new(e.kind(), format!("option {opt}: {e}")))?;
    }
    // SAFETY: no pointers are passed; `fs` is a live fs context.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: no pointers are passed; `fs` is a created fs context.
    let m =
        cvt(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })?;
    // SAFETY: fsmount returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(m as i32) })
}
