//! The runtime's side of creating a container: fork stage 1, answer its requests (cgroups,
//! id maps, hooks) and return once the init waits on the exec fifo. On any failure every
//! process it started is killed and reaped before the error is returned.

use super::ProcessError;
use crate::sys::during;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxIdMapping};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::init::{stage1, InitArgs};
use super::sync::{Channel, Msg};
use crate::ns;
use crate::sys::{self, fs::ProcFs, socket::seqpacket_pair};

/// What the runtime does for a child that installed a seccomp filter with a listener: hand
/// the listener (taken from the child pid) to the agent.
pub type OnListener<'a> = dyn FnMut(i32, OwnedFd) -> Result<(), ProcessError> + 'a;

/// Start the container's init; `create_runtime_hooks` is called with the init's pid when the
/// init asks for the prestart/createRuntime hooks and returns the state JSON it handed them.
pub fn spawn(
    args: &InitArgs<'_>,
    create_runtime_hooks: &mut dyn FnMut(i32) -> Result<String, ProcessError>,
    on_listener: &mut OnListener<'_>,
) -> Result<i32, ProcessError> {
    let procfs = ProcFs::open(Path::new("/proc")).map_err(during("open /proc"))?;
    let (parent_end, child_end) = seqpacket_pair().map_err(during("socketpair"))?;
    // Before any child can join a container namespace: nothing in there may ptrace us or
    // open our /proc entries (and through them /proc/<pid>/exe, the host binary).
    sys::set_dumpable(false).map_err(during("prctl"))?;
    let (forked, join_v2) = fork_stage1(args.cgroup)?;
    let stage1_pid = match forked {
        sys::Forked::Child(one) => {
            drop(parent_end);
            stage1(Channel::new(child_end), args, &one)
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(child_end);
    let ch = Channel::new(parent_end);
    let mut init_pid = None;
    let result = match args
        .cgroup
        .filter(|_| join_v2)
        .map(|cg| cg.join_v2(stage1_pid))
    {
        Some(Err(e)) => Err(e.into()),
        _ => drive(
            &ch,
            args,
            &procfs,
            stage1_pid,
            &mut init_pid,
            create_runtime_hooks,
            on_listener,
        ),
    };
    if result.is_err() {
        for pid in [Some(stage1_pid), init_pid].into_iter().flatten() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
    result
}

/// Fork stage 1 straight into the container's cgroup v2 directory (clone3 with
/// CLONE_INTO_CGROUP: no migration). Stage 1 moves itself into the v1 hierarchies. Returns
/// the fork's result and whether the v2 cgroup must still be joined the slow way (a kernel
/// without CLONE_INTO_CGROUP).
fn fork_stage1(
    cgroup: Option<&crate::cgroups::Cgroup>,
) -> Result<(sys::Forked, bool), ProcessError> {
    let one = sys::SingleThreaded::check().map_err(ProcessError::Io)?;
    if let Some(dir) = cgroup.and_then(|c| c.v2_dir()) {
        let fd = crate::sys::fs::open_host(dir, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(during(format!("open cgroup {}", dir.display())))?;
        match sys::fork_into_cgroup(std::os::fd::AsFd::as_fd(&fd), &one) {
            Ok(r) => return Ok((r, false)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::E2BIG)) => {
                let r = sys::fork(&one).map_err(during("fork"))?;
                return Ok((r, true));
            }
            Err(e) => return Err(during(format!("clone3 into cgroup {}", dir.display()))(e).into()),
        }
    }
    Ok((sys::fork(&one).map_err(during("fork"))?, false))
}

fn drive(
    ch: &Channel,
    args: &InitArgs<'_>,
    procfs: &ProcFs,
    stage1_pid: i32,
    init_pid: &mut Option<i32>,
    hooks: &mut dyn FnMut(i32) -> Result<String, ProcessError>,
    on_listener: &mut OnListener<'_>,
) -> Result<i32, ProcessError> {
    let io = ProcessError::Io;
    ch.send(&Msg::Go).map_err(io)?;
    loop {
        match ch.recv().map_err(io)? {
            msg @ (Msg::WriteIdMaps | Msg::PrepareMounts) => {
                let linux = args
                    .bundle
                    .spec
                    .linux()
                    .as_ref()
                    .ok_or("no linux section")?;
                let new_user = msg == Msg::WriteIdMaps;
                if new_user {
                    ns::write_id_maps(
                        procfs,
                        stage1_pid,
                        linux.uid_mappings().as_deref().unwrap_or_default(),
                        linux.gid_mappings().as_deref().unwrap_or_default(),
                        !nix::unistd::geteuid().is_root(),
                    )
                    .map_err(during("write the user namespace's id maps"))?;
                } else if args.pod_userns.is_some() {
                    check_pod_userns(args, stage1_pid)?;
                }
                let mut mounts = if args.idmap {
                    idmapped_mounts(args, linux, stage1_pid)?
                } else {
                    Vec::new()
                };
                asked_idmaps(args, stage1_pid, &mut mounts)?;
                if new_user || args.pod_userns.is_some() {
                    mounts.extend(dev_tmpfs(args, linux)?);
                }
                ch.send(&Msg::IdMapsWritten {
                    prepared: mounts.iter().map(|(i, _)| *i).collect(),
                })
                .map_err(io)?;
                for (_, fd) in &mounts {
                    sys::socket::send_fd(ch.as_fd(), fd.as_raw_fd(), b"mount").map_err(io)?;
                }
            }
            Msg::InitPid(pid) => {
                *init_pid = Some(pid);
                let _ = waitpid(Pid::from_raw(stage1_pid), None);
                if args.idmap {
                    // Through the init's /proc root: the path resolves in its mount
                    // namespace, searched with our (host root's) permissions.
                    let rootfs = &args.bundle.rootfs;
                    let dir = sys::fs::open_host(
                        &Path::new(&format!("/proc/{pid}/root"))
                            .join(rootfs.strip_prefix("/").unwrap_or(rootfs)),
                        libc::O_PATH | libc::O_DIRECTORY,
                    )
                    .map_err(during(format!(
                        "open the rootfs {} in the container's mount namespace",
                        rootfs.display()
                    )))?;
                    ch.send(&Msg::RootfsDir).map_err(io)?;
                    sys::socket::send_fd(ch.as_fd(), dir.as_raw_fd(), b"rootfs").map_err(io)?;
                }
                ch.send(&Msg::Go).map_err(io)?;
            }
            Msg::RunCreateRuntimeHooks => {
                let pid = init_pid.ok_or("hooks requested before the init was reported")?;
                let state = hooks(pid)?;
                ch.send(&Msg::HooksDone { state }).map_err(io)?;
            }
            Msg::SeccompListener(fd) => {
                let pid = init_pid.ok_or("listener before the init was reported")?;
                take_listener(ch, pid, fd, on_listener)?;
            }
            Msg::Ready => {
                return init_pid.ok_or_else(|| {
                    ProcessError::Protocol("ready before the init was reported".into())
                })
            }
            Msg::Error(e) => return Err(ProcessError::Child(e)),
            other => {
                return Err(ProcessError::Protocol(format!(
                    "unexpected message from the container's init: {other:?}"
                )))
            }
        }
    }
}

/// The host's ids of the container's `uid` and `gid` under config.json's id maps.
fn host_ids(linux: &Linux, uid: u32, gid: u32) -> Option<(u32, u32)> {
    let find = |maps: &[LinuxIdMapping], id: u32| {
        maps.iter().find_map(|m| {
            let off = id.checked_sub(m.container_id())?;
            (off < m.size()).then(|| m.host_id() + off)
        })
    };
    find(linux.uid_mappings().as_deref().unwrap_or_default(), uid).zip(find(
        linux.gid_mappings().as_deref().unwrap_or_default(),
        gid,
    ))
}

/// In a new user namespace the init cannot make device nodes (mknod wants CAP_MKNOD in the
/// host's user namespace) and a tmpfs it mounts would not honour them (SB_I_NODEV). So, as
/// host root, make config.json's /dev tmpfs here, detached, with every node under /dev at
/// the config's type, number, mode and owner (mapped into the namespace), for the init to
/// attach in place of its own mount. None: no /dev tmpfs in the config, or not root (then
/// the init binds the host's nodes, as before).
fn dev_tmpfs(args: &InitArgs<'_>, linux: &Linux) -> Result<Option<(i64, OwnedFd)>, ProcessError> {
    use crate::rootfs::devices::{mknod_at, nodes, set_mode_owner};
    use crate::sys::fs::{chown_at, mkdir_all_in_root, open_in_root};
    use std::os::unix::ffi::OsStrExt;
    if !nix::unistd::geteuid().is_root() || crate::rootfs::dev_is_bind(&args.bundle.spec) {
        return Ok(None);
    }
    let spec = &args.bundle.spec;
    let Some((index, m)) =
        spec.mounts().iter().flatten().enumerate().find(|(_, m)| {
            m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs")
        })
    else {
        return Ok(None);
    };
    let opts = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| ProcessError::Refused(format!("mount /dev: {e}")))?;
    let owner = |what: &Path, uid: u32, gid: u32| {
        host_ids(linux, uid, gid).ok_or_else(|| {
            ProcessError::Refused(format!(
                "{}: owner {uid}:{gid} is not mapped in the container's user namespace",
                what.display()
            ))
        })
    };
    // Writable while its nodes are made; the init makes it read-only if asked (rootfs::seal_dev).
    let fs = crate::sys::mount::new_fs(
        "tmpfs",
        m.source().as_deref(),
        &opts.data,
        crate::sys::mount::attrs_from_flags(opts.flags - nix::mount::MsFlags::MS_RDONLY),
    )
    .map_err(during("make the /dev tmpfs"))?;
    let root = owner(Path::new("/dev"), 0, 0)?;
    chown_at(fs.as_fd(), c"", root).map_err(during("chown the /dev tmpfs"))?;
    for n in nodes(spec)? {
        let (Ok(rel), Some(name)) = (n.path.strip_prefix("/dev"), n.path.file_name()) else {
            continue;
        };
        let path = &n.path;
        let fail = |what: &'static str| during(format!("linux.devices {}: {what}", path.display()));
        // The directories on the way (resolved inside the tmpfs), owned by the namespace's root.
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = mkdir_all_in_root(fs.as_fd(), parent, 0o755).map_err(fail("mkdir"))?;
        for p in parent.ancestors().filter(|p| !p.as_os_str().is_empty()) {
            let d = open_in_root(fs.as_fd(), p, libc::O_PATH | libc::O_DIRECTORY)
                .map_err(fail("open"))?;
            chown_at(d.as_fd(), c"", root).map_err(fail("chown"))?;
        }
        let c = std::ffi::CString::new(name.as_bytes()).map_err(|_| "NUL in a device path")?;
        mknod_at(dir.as_fd(), &c, &n).map_err(fail("mknod"))?;
        let o = owner(&n.path, n.uid, n.gid)?;
        set_mode_owner(dir.as_fd(), &c, &n, o).map_err(fail("set mode and owner"))?;
    }
    Ok(Some((index as i64, fs)))
}

/// A mount's source on the host (relative to the bundle when not absolute).
fn bind_source(args: &InitArgs<'_>, m: &oci_spec::runtime::Mount) -> Option<std::path::PathBuf> {
    let src = m.source().as_ref()?;
    Some(if src.is_absolute() {
        src.clone()
    } else {
        args.bundle.dir.join(src)
    })
}

/// The bind mounts config.json asks to idmap (`idmap`, `ridmap`): through their own
/// mappings (a user namespace the runtime made for them) or the container's user namespace
/// ([`idmapped_mounts`] leaves them out). A failure fails the create.
fn asked_idmaps(
    args: &InitArgs<'_>,
    stage1_pid: i32,
    out: &mut Vec<(i64, OwnedFd)>,
) -> Result<(), ProcessError> {
    use crate::sys::mount::{clone_tree, set_idmap};
    let mut container_userns = None;
    for (i, m) in args.bundle.spec.mounts().iter().flatten().enumerate() {
        let opts = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|e| {
                ProcessError::Refused(format!("mount {}: {e}", m.destination().display()))
            })?;
        let Some(recursive_idmap) = opts.idmap else {
            continue;
        };
        let Some(src) = bind_source(args, m) else {
            continue;
        };
        let own = args
            .mount_userns
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, fd)| fd);
        let userns = match own {
            Some(fd) => fd.as_fd(),
            None => {
                if container_userns.is_none() {
                    container_userns = Some(
                        crate::sys::fs::open_host(
                            Path::new(&format!("/proc/{stage1_pid}/ns/user")),
                            libc::O_RDONLY,
                        )
                        .map_err(during("open the container's user namespace"))?,
                    );
                }
                container_userns
                    .as_ref()
                    .ok_or("no user namespace")?
                    .as_fd()
            }
        };
        let recursive_bind = opts.flags.contains(nix::mount::MsFlags::MS_REC);
        let tree = clone_tree(&src, recursive_bind)
            .and_then(|t| set_idmap(t.as_fd(), userns, recursive_idmap).map(|()| t))
            .map_err(during(format!(
                "mounts[{}]: idmap {}",
                m.destination().display(),
                src.display()
            )))?;
        out.push((i as i64, tree));
    }
    Ok(())
}

/// Stage 1 says it joined the pod's user namespace: it must be the one the pod was found by
/// (a sandbox that exited and whose pid was reused in between would have another).
fn check_pod_userns(args: &InitArgs<'_>, stage1_pid: i32) -> Result<(), ProcessError> {
    let want = args.pod_userns.ok_or("PrepareMounts outside a pod")?;
    let path = format!("/proc/{stage1_pid}/ns/user");
    let found = crate::sys::fs::open_host(Path::new(&path), libc::O_RDONLY)
        .and_then(|f| crate::sys::nsfs::id(f.as_fd()))
        .map_err(during(path.as_str()))?;
    if found != want {
        return Err(
            "the pod's user namespace is gone (its sandbox exited while this container was created)"
                .into(),
        );
    }
    Ok(())
}

/// Idmapped copies (through the id maps of stage 1's new user namespace) of the rootfs and of
/// every bind mount's source, made here because only host root may idmap a host mount.
/// The rootfs must be idmappable; a bind source on a filesystem that cannot be idmapped is
/// bound as it is (its files then show as the overflow id inside), with a warning.
fn idmapped_mounts(
    args: &InitArgs<'_>,
    linux: &Linux,
    stage1_pid: i32,
) -> Result<Vec<(i64, OwnedFd)>, ProcessError> {
    use crate::sys::mount::{clone_tree, set_idmap};
    let userns = crate::sys::fs::open_host(
        Path::new(&format!("/proc/{stage1_pid}/ns/user")),
        libc::O_RDONLY,
    )
    .map_err(during("open the container's user namespace"))?;
    let rootfs = &args.bundle.rootfs;
    let root = if let Some(o) = crate::rootfs::overlay::of(rootfs) {
        let ids = host_ids(linux, 0, 0).ok_or("the user namespace does not map root")?;
        o.idmapped(userns.as_fd(), ids).map_err(|e| {
            ProcessError::Refused(format!(
                "the rootfs {} is an overlay: {e}",
                rootfs.display()
            ))
        })?
    } else {
        clone_tree(rootfs, false)
        .and_then(|m| set_idmap(m.as_fd(), userns.as_fd(), false).map(|()| m))
        .map_err(|e| {
            ProcessError::Refused(format!(
                "idmap the rootfs {}: {e} (its filesystem must support idmapped mounts when the policy adds a user namespace; choose --policy runc, or give config.json a user namespace of its own)",
                rootfs.display()
            ))
        })?
    };
    let mut out = vec![(-1, root)];
    if !args.idmap_binds {
        return Ok(out);
    }
    for (i, m) in args.bundle.spec.mounts().iter().flatten().enumerate() {
        let opts = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|e| {
                ProcessError::Refused(format!("mount {}: {e}", m.destination().display()))
            })?;
        // A mount config.json asks to idmap itself is made by asked_idmaps.
        if !(opts.is_bind() || m.typ().as_deref() == Some("bind")) || opts.idmap.is_some() {
            continue;
        }
        let Some(src) = bind_source(args, m) else {
            continue;
        };
        // Device nodes are not idmapped: their access is by mode and the device cgroup.
        let is_dev = std::fs::metadata(&src).is_ok_and(|md| {
            use std::os::unix::fs::FileTypeExt;
            md.file_type().is_char_device() || md.file_type().is_block_device()
        });
        if is_dev {
            continue;
        }
        let recursive = opts.flags.contains(nix::mount::MsFlags::MS_REC);
        match clone_tree(&src, recursive)
            .and_then(|t| set_idmap(t.as_fd(), userns.as_fd(), recursive).map(|()| t))
        {
            Ok(t) => out.push((i as i64, t)),
            Err(e) => crate::log::warn(&format!(
                "bind mount {} on {}: not idmapped ({e}); its files keep their host owners, which the container sees as nobody",
                src.display(),
                m.destination().display()
            )),
        }
    }
    Ok(out)
}

fn take_listener(
    ch: &Channel,
    pid: i32,
    fd: i32,
    on_listener: &mut OnListener<'_>,
) -> Result<(), ProcessError> {
    let listener = crate::seccomp::take_listener(pid, fd)
        .map_err(during(format!("take the seccomp listener from pid {pid}")))?;
    on_listener(pid, listener)?;
    ch.send(&Msg::Go).map_err(ProcessError::Io)
}

/// Start a process in a running container (`exec`); returns its pid once it is about to exec.
pub fn spawn_exec(
    args: &super::exec_init::ExecArgs<'_>,
    cgroup: &crate::cgroups::Cgroup,
    on_listener: &mut OnListener<'_>,
) -> Result<i32, ProcessError> {
    let (parent_end, child_end) = seqpacket_pair().map_err(during("socketpair"))?;
    sys::set_dumpable(false).map_err(during("prctl"))?;
    let (forked, join_v2) = fork_stage1(Some(cgroup))?;
    let stage1_pid = match forked {
        sys::Forked::Child(one) => {
            drop(parent_end);
            super::exec_init::stage1(Channel::new(child_end), args, cgroup, &one)
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(child_end);
    let ch = Channel::new(parent_end);
    let mut pid = None;
    let result = (|| -> Result<i32, ProcessError> {
        let io = ProcessError::Io;
        if join_v2 {
            cgroup.join_v2(stage1_pid)?;
        }
        ch.send(&Msg::Go).map_err(io)?;
        loop {
            match ch.recv().map_err(io)? {
                Msg::InitPid(p) => {
                    pid = Some(p);
                    let _ = waitpid(Pid::from_raw(stage1_pid), None);
                    ch.send(&Msg::Go).map_err(io)?;
                }
                Msg::SeccompListener(fd) => {
                    let p = pid.ok_or("listener before the pid was reported")?;
                    take_listener(&ch, p, fd, on_listener)?;
                }
                Msg::Ready => {
                    return pid.ok_or_else(|| {
                        ProcessError::Protocol("ready before the pid was reported".into())
                    })
                }
                Msg::Error(e) => return Err(ProcessError::Child(e)),
                other => {
                    return Err(ProcessError::Protocol(format!(
                        "unexpected message: {other:?}"
                    )))
                }
            }
        }
    })();
    if result.is_err() {
        for p in [Some(stage1_pid), pid].into_iter().flatten() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
    }
    result
}
