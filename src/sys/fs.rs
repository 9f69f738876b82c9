//! Path resolution that treats the container's rootfs as hostile: every lookup inside it goes
//! through openat2(2) with RESOLVE_IN_ROOT, so `..` and symlinks (absolute or relative) can
//! never leave it, and magic links are refused. Mounts are then made on the resulting
//! descriptor (through `/proc/self/fd/N`), never by resolving a path string a second time.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use super::cvt;

/// `statfs.f_type` of procfs.
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;

pub(crate) fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// openat2(2).
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        how.mode = u64::from(mode);
    }
    // SAFETY: `c` is a valid NUL-terminated string and `how` a valid open_how that outlive
    // the call; the size passed is that of the struct.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    })?;
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Open an absolute host path (trusted: it comes from the runtime or its caller).
pub fn open_host(path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) }.into())?;
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Resolve `path` inside `root` as if `root` were `/`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = relative(path);
    openat2(
        root,
        &rel,
        flags,
        0,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// The path relative to the root, `.` for the root itself.
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Whether the last component of `path` inside `root` is a symlink (after resolving its
/// parents inside `root`). A missing path is not a symlink.
pub fn is_symlink_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<bool> {
    match open_in_root(root, path, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => Ok(fstat(fd_borrow(&fd))?.st_mode & libc::S_IFMT == libc::S_IFLNK),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

fn fd_borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// Create every missing directory of `path` inside `root` and return an O_PATH descriptor of
/// the directory. Each component is created relative to the descriptor of its resolved
/// parent, so a symlink planted in the rootfs cannot redirect the creation outside.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    mkdir_all_depth(root, path, mode, 0)
}

/// The target of the symlink `name` in `dir`, if it is one.
fn readlink_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Option<PathBuf> {
    let c = cstr(Path::new(name)).ok()?;
    readlinkat(dir, &c)
        .ok()
        .map(|t| PathBuf::from(std::ffi::OsString::from_vec(t)))
}

/// readlinkat(2): the target of the symlink `name` in `dir`.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `name` is NUL-terminated, `dir` live, `buf` writable for its length.
    let n = cvt(unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    } as libc::c_long)?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// fstatat(2) of `name` in `dir`, never following a symlink at `name`.
pub fn lstatat(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated, `dir` live, `st` writable memory of the right size.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    }
    .into())?;
    // SAFETY: fstatat succeeded, so it initialised `st`.
    Ok(unsafe { st.assume_init() })
}

fn mkdir_all_depth(
    root: BorrowedFd<'_>,
    path: &Path,
    mode: u32,
    depth: u32,
) -> io::Result<OwnedFd> {
    if depth > 40 {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let rel = relative(path);
    let mut prefix = PathBuf::new();
    let mut cur = open_in_root(root, Path::new("."), libc::O_PATH | libc::O_DIRECTORY)?;
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            // `..` is resolved by openat2 inside the root; keep it in the prefix.
            prefix.push(comp);
            cur = open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY)?;
            continue;
        };
        prefix.push(name);
        match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let c = cstr(Path::new(name))?;
                // SAFETY: `c` is a valid single-component name; `cur` is a live directory fd.
                let ret = unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), mode) };
                if ret < 0 {
                    let err = io::Error::last_os_error();
                    if err.raw_os_error() != Some(libc::EEXIST) {
                        return Err(err);
                    }
                    // A dangling symlink: create its target, resolved inside the root.
                    if let Some(target) = readlink_at(fd_borrow(&cur), name) {
                        let parent = prefix.parent().unwrap_or(Path::new(""));
                        let resolved = Path::new("/").join(parent).join(target);
                        mkdir_all_depth(root, &resolved, mode, depth + 1)?;
                    }
                }
                cur = open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// chown `name` in `dir` (or `dir` itself when `name` is empty) to `owner`, never following
/// a symlink.
pub fn chown_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr, owner: (u32, u32)) -> io::Result<()> {
    let flags = libc::AT_SYMLINK_NOFOLLOW
        | if name.is_empty() {
            libc::AT_EMPTY_PATH
        } else {
            0
        };
    // SAFETY: `name` is NUL-terminated; `dir` is a live descriptor; AT_SYMLINK_NOFOLLOW (and
    // AT_EMPTY_PATH for the directory itself) keep the call on what `dir` and `name` name.
    if unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), owner.0, owner.1, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Make sure a non-directory exists at `path` inside `root` (creating an empty regular file
/// and its parents if needed) and return an O_PATH descriptor of it.
pub fn ensure_file_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    match open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    let c = cstr(Path::new(name))?;
    // SAFETY: `c` is a valid single-component name; `dir` is a live directory fd. O_NOFOLLOW
    // keeps a symlink planted at the name from being followed.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err);
        }
    } else {
        // SAFETY: the kernel just returned this descriptor; nobody else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    open_in_root(root, path, libc::O_PATH)
}

/// fstat(2).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid writable memory of the right size for fstat to fill.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) }.into())?;
    // SAFETY: fstat succeeded, so it initialised `st`.
    Ok(unsafe { st.assume_init() })
}

/// fstatfs(2): the filesystem type.
pub fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `st` is valid writable memory of the right size for fstatfs to fill.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) }.into())?;
    // SAFETY: fstatfs succeeded, so it initialised `st`.
    Ok(unsafe { st.assume_init() }.f_type)
}

/// fstatvfs(2): the mount flags (ST_RDONLY, ST_NOSUID, ...).
pub fn mount_flags(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `st` is valid writable memory of the right size for fstatvfs to fill.
    cvt(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) }.into())?;
    // SAFETY: fstatvfs succeeded, so it initialised `st`.
    Ok(unsafe { st.assume_init() }.f_flag)
}

/// The magic-link path of a descriptor, for syscalls that only take paths (mount(2)).
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A handle on a procfs instance that has been checked to be procfs. Files are opened beneath
/// it without following any symlink and without crossing into another mount, so a bind mount
/// or symlink planted over `/proc/sys/...` or `/proc/<pid>/...` is refused instead of written.
pub struct ProcFs {
    root: OwnedFd,
}

impl ProcFs {
    /// Open and verify the procfs mounted at `path`.
    pub fn open(path: &Path) -> io::Result<ProcFs> {
        let root = open_host(path, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)?;
        if fs_type(fd_borrow(&root))? != PROC_SUPER_MAGIC {
            return Err(io::Error::other(format!(
                "{} is not procfs",
                path.display()
            )));
        }
        Ok(ProcFs { root })
    }

    /// Open `rel` (no symlinks, same mount, checked to be procfs).
    pub fn open_file(&self, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
        let fd = openat2(
            fd_borrow(&self.root),
            rel,
            flags | libc::O_NOFOLLOW,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV,
        )?;
        if fs_type(fd_borrow(&fd))? != PROC_SUPER_MAGIC {
            return Err(io::Error::other(format!(
                "/proc/{} is not on procfs",
                rel.display()
            )));
        }
        Ok(fd)
    }

    /// Write `data` to `rel` in one write(2).
    pub fn write(&self, rel: &Path, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let fd = self.open_file(rel, libc::O_WRONLY)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data)
    }
}
