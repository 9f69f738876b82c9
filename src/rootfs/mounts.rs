//! One entry of config.json `mounts`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Mount;

use super::{options, step, RootfsError, RootfsPlan, Source, Syscalls};
use crate::cgroups::Version;

/// File systems whose mount point must not be a symlink in the image: a symlinked /proc or
/// /dev is how runc's image-symlink bugs redirected kernel interfaces.
const NO_SYMLINK_TYPES: [&str; 7] = [
    "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "tmpfs",
];

/// Mount flags that stay locked on a mount made in a user namespace; a remount must repeat them.
pub(crate) fn locked_flags(sys: &dyn Syscalls, fd: BorrowedFd<'_>) -> Result<MsFlags, RootfsError> {
    let st = sys.mount_flags(fd).map_err(step("statvfs of a mount"))?;
    let mut f = MsFlags::empty();
    for (st_flag, ms) in [
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st & st_flag != 0 {
            f |= ms;
        }
    }
    Ok(f)
}

/// Flags that need a bind remount to take effect.
fn remount_flags(o: &options::MountOptions) -> MsFlags {
    o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
}

pub fn mount_one(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    m: &Mount,
    index: i64,
    plan: &RootfsPlan<'_>,
) -> Result<(), RootfsError> {
    let dest = m.destination();
    let opts = options::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| RootfsError::Refused(format!("mount {}: {e}", dest.display())))?;
    let typ = m.typ().as_deref().unwrap_or("");
    if opts.is_bind() || typ == "bind" {
        return bind(sys, root, m, &opts, index, plan);
    }
    if NO_SYMLINK_TYPES.contains(&typ)
        && sys
            .is_symlink_in_root(root, dest)
            .map_err(step(format!("look up {}", dest.display())))?
    {
        return Err(RootfsError::Refused(format!(
            "mount destination {} is a symlink in the rootfs: {typ} must be mounted on ordinary directory (refusing to mount it through the symlink)",
            dest.display()
        )));
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return cgroup_mount(sys, root, m, &opts, plan);
    }
    let target = sys
        .mkdir_all_in_root(root, dest, 0o755)
        .map_err(step(format!("create mount point {}", dest.display())))?;
    not_into_proc(sys, &target, dest)?;
    let old = if opts.tmpcopyup {
        Some(
            sys.open_in_root(root, dest, libc::O_PATH | libc::O_DIRECTORY)
                .map_err(step("open tmpcopyup source"))?,
        )
    } else {
        None
    };
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let mut flags = opts.flags & !MsFlags::MS_REMOUNT;
    if typ == "tmpfs" && dest == Path::new("/dev") {
        // Its device nodes and the console come next: read-only after them (super::seal_dev).
        flags.remove(MsFlags::MS_RDONLY);
    }
    if let Some(made) = plan.prepared(index) {
        // The runtime made this one (the /dev tmpfs with device nodes, as host root).
        attach_prepared(sys, root, made.as_fd(), target.as_fd(), (typ, dest))?;
    } else {
        match sys.mount(
            Source::Name(&source),
            target.as_fd(),
            Some(typ),
            flags,
            opts.data_string().as_deref(),
        ) {
            Ok(()) => {}
            // A container in a user namespace that shares the host's pid, network or ipc
            // namespace cannot mount a new instance: bind the host's, which shows the same
            // namespace, with the config's flags. The masked and read-only paths are applied
            // on it as usual.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && host_instance(typ).is_some() => {
                let host = Path::new(host_instance(typ).unwrap_or("/proc"));
                bind_host(sys, root, host, dest, &target, &opts, MsFlags::MS_REC)?;
            }
            Err(e) => return Err(step(format!("mount {typ} on {}", dest.display()))(e)),
        }
    }
    let new = sys
        .open_in_root(root, dest, libc::O_PATH)
        .map_err(step(format!("open {}", dest.display())))?;
    if let Some(old) = old {
        sys.copy_tree(old.as_fd(), new.as_fd())
            .map_err(step(format!("tmpcopyup into {}", dest.display())))?;
    }
    set_propagation(sys, &new, &opts, dest)
}

/// Refuse a mount point that resolved into the container's procfs through a symlink in the
/// rootfs (config validation refuses the paths that say /proc): runc's rule, checked on what
/// the destination really is.
fn not_into_proc(sys: &dyn Syscalls, target: &OwnedFd, dest: &Path) -> Result<(), RootfsError> {
    let on_proc = sys
        .fs_type(target.as_fd())
        .map_err(step(format!("statfs {}", dest.display())))?
        == crate::sys::fs::PROC_SUPER_MAGIC;
    if on_proc && !crate::oci::allowed_in_proc(&crate::oci::lexical(dest)) {
        return Err(RootfsError::Refused(format!(
            "mount destination {} resolves inside the container's /proc through a symlink in the rootfs; refusing to mount over a procfs entry",
            dest.display()
        )));
    }
    Ok(())
}

/// Where the host has its instance of a kernel filesystem that a user namespace may only
/// mount when it owns the matching namespace (proc: pid, sysfs: network, mqueue: ipc).
fn host_instance(typ: &str) -> Option<&'static str> {
    match typ {
        "proc" => Some("/proc"),
        "sysfs" => Some("/sys"),
        "mqueue" => Some("/dev/mqueue"),
        _ => None,
    }
}

/// Bind the host path `src` (with the mounts below it if `rec` is MS_REC) on `target`
/// (`dest` in the rootfs), then give it the mount's options.
fn bind_host(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    src: &Path,
    dest: &Path,
    target: &OwnedFd,
    opts: &options::MountOptions,
    rec: MsFlags,
) -> Result<(), RootfsError> {
    let fd = sys
        .open_host(src, libc::O_PATH)
        .map_err(step(format!("open {}", src.display())))?;
    sys.mount(
        Source::Fd(fd.as_fd()),
        target.as_fd(),
        None,
        MsFlags::MS_BIND | rec,
        None,
    )
    .map_err(step(format!(
        "bind {} on {}",
        src.display(),
        dest.display()
    )))?;
    let new = sys
        .open_in_root(root, dest, libc::O_PATH)
        .map_err(step(format!("open {}", dest.display())))?;
    remount_with_options(sys, &new, opts, MsFlags::empty(), dest)
}

/// Give a bind mount its own flags (ro, nosuid, ...) with a bind remount that repeats the
/// flags locked on it; `rec` (MS_REC or empty) applies them to the mounts below too.
fn remount_with_options(
    sys: &dyn Syscalls,
    new: &OwnedFd,
    opts: &options::MountOptions,
    rec: MsFlags,
    dest: &Path,
) -> Result<(), RootfsError> {
    let extra = remount_flags(opts);
    if extra.is_empty() {
        return Ok(());
    }
    let locked = locked_flags(sys, new.as_fd())? & !opts.cleared;
    sys.mount(
        Source::None,
        new.as_fd(),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rec | extra | locked,
        None,
    )
    .map_err(step(format!("remount {} with its options", dest.display())))
}

fn set_propagation(
    sys: &dyn Syscalls,
    fd: &OwnedFd,
    opts: &options::MountOptions,
    dest: &Path,
) -> Result<(), RootfsError> {
    for p in &opts.propagation {
        sys.mount(Source::None, fd.as_fd(), None, *p, None)
            .map_err(step(format!("set propagation of {}", dest.display())))?;
    }
    // Recursive attributes (rro, rnosuid, ...) last, on this mount and all below it.
    let r = opts.recursive;
    if !r.is_empty() {
        sys.set_attrs(fd.as_fd(), r.set, r.clear, true)
            .map_err(step(format!(
                "set the recursive attributes of {}",
                dest.display()
            )))?;
    }
    Ok(())
}

/// Attach a tree the runtime prepared (`what`: an idmapped bind source, the /dev tmpfs) on
/// `target`, `dest` in the container. Since Linux 6.8 /proc/self/mountinfo lists a namespace's mounts in
/// the order they were made, not attached, and the runtime made these before the init mounted
/// the entries above them; so the init attaches the tree, copies it from there (a copy of a
/// mount in its own namespace, which every kernel allows: a tree the runtime copied from the
/// host's namespace cannot be copied again from another), takes the tree off and attaches the
/// copy in its place. The container then sees its mounts in config.json's order, as the spec
/// asks and as runc's are (runtime-tools' validation checks it).
fn attach_prepared(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    tree: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    (what, dest): (&str, &Path),
) -> Result<(), RootfsError> {
    let failed = |s: &str| step(format!("{s} the runtime's {what} on {}", dest.display()));
    sys.attach(tree, target).map_err(failed("attach"))?;
    let attached = sys
        .open_in_root(root, dest, libc::O_PATH)
        .map_err(failed("open"))?;
    let copy = sys
        .copy_tree_now(attached.as_fd())
        .map_err(failed("copy"))?;
    sys.detach(attached.as_fd()).map_err(failed("detach"))?;
    sys.attach(copy.as_fd(), target)
        .map_err(failed("attach a copy of"))
}

/// Where a bind mount comes from: a detached tree the runtime prepared (idmapped), or the
/// source opened here by path.
enum BindSource<'a> {
    Prepared(&'a OwnedFd),
    Path(OwnedFd),
}

fn bind(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    m: &Mount,
    opts: &options::MountOptions,
    index: i64,
    plan: &RootfsPlan<'_>,
) -> Result<(), RootfsError> {
    let dest = m.destination();
    let src = m.source().as_ref().ok_or_else(|| {
        RootfsError::Refused(format!("bind mount on {} has no source", dest.display()))
    })?;
    let src = if src.is_absolute() {
        src.clone()
    } else {
        plan.bundle.join(src)
    };
    // A source the runtime prepared (idmapped) is not opened by path here: in a user
    // namespace its parents may not be searchable (podman's /run/containers/storage).
    let source = match plan.prepared(index) {
        Some(tree) => BindSource::Prepared(tree),
        None => BindSource::Path(
            sys.open_host(&src, libc::O_PATH)
                .map_err(step(format!("open bind source {}", src.display())))?,
        ),
    };
    let probe = match &source {
        BindSource::Prepared(tree) => tree.as_fd(),
        BindSource::Path(fd) => fd.as_fd(),
    };
    let is_dir = sys.stat(probe).map_err(step("stat bind source"))?.is_dir();
    let target = if is_dir {
        sys.mkdir_all_in_root(root, dest, 0o755)
    } else {
        sys.ensure_file_in_root(root, dest)
    }
    .map_err(step(format!("create mount point {}", dest.display())))?;
    not_into_proc(sys, &target, dest)?;
    let rec = opts.flags & MsFlags::MS_REC;
    match &source {
        BindSource::Prepared(tree) => {
            let what = format!("idmapped {}", src.display());
            attach_prepared(sys, root, tree.as_fd(), target.as_fd(), (&what, dest))?
        }
        BindSource::Path(fd) => sys
            .mount(
                Source::Fd(fd.as_fd()),
                target.as_fd(),
                None,
                MsFlags::MS_BIND | rec,
                None,
            )
            .map_err(step(format!(
                "bind {} on {}",
                src.display(),
                dest.display()
            )))?,
    }
    let new = sys
        .open_in_root(root, dest, libc::O_PATH)
        .map_err(step(format!("open {}", dest.display())))?;
    remount_with_options(sys, &new, opts, rec, dest)?;
    set_propagation(sys, &new, opts, dest)
}

/// /sys/fs/cgroup: cgroup2 on a pure v2 host; elsewhere a tmpfs holding a bind of the
/// container's own cgroup directory of each hierarchy.
fn cgroup_mount(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    m: &Mount,
    opts: &options::MountOptions,
    plan: &RootfsPlan<'_>,
) -> Result<(), RootfsError> {
    let dest = m.destination();
    let target = sys
        .mkdir_all_in_root(root, dest, 0o755)
        .map_err(step(format!("create {}", dest.display())))?;
    let flags = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let dirs = plan.cgroup.map(|c| c.dirs.clone()).unwrap_or_default();
    let pure_v2 = !dirs.is_empty() && dirs.iter().all(|(h, _)| h.version == Version::V2);
    if pure_v2 {
        let mounted = sys.mount(
            Source::Name(Path::new("cgroup2")),
            target.as_fd(),
            Some("cgroup2"),
            flags | (opts.flags & MsFlags::MS_RDONLY),
            None,
        );
        return match mounted {
            Ok(()) => Ok(()),
            // In a user namespace without a cgroup namespace of its own the kernel refuses a
            // cgroup2 mount: bind the container's own cgroup directory instead (as runc does).
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                bind_host(sys, root, &dirs[0].1, dest, &target, opts, MsFlags::empty())
            }
            Err(e) => Err(step(format!("mount cgroup2 on {}", dest.display()))(e)),
        };
    }
    sys.mount(
        Source::Name(Path::new("tmpfs")),
        target.as_fd(),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .map_err(step(format!("mount tmpfs on {}", dest.display())))?;
    for (h, dir) in &dirs {
        let name = h
            .mount
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("unified"));
        let sub = dest.join(&name);
        let sub_fd = sys
            .mkdir_all_in_root(root, &sub, 0o755)
            .map_err(step(format!("create {}", sub.display())))?;
        bind_host(sys, root, dir, &sub, &sub_fd, opts, MsFlags::empty())?;
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let new = sys
            .open_in_root(root, dest, libc::O_PATH)
            .map_err(step("reopen cgroup tmpfs"))?;
        sys.mount(
            Source::None,
            new.as_fd(),
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
            Some("mode=755"),
        )
        .map_err(step(format!("remount {} read-only", dest.display())))?;
    }
    Ok(())
}
