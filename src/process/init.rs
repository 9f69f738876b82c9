//! All code that runs between fork and exec, in two stages:
//!
//! * stage 1 (a child of the runtime): enters or creates the namespaces (asking the runtime
//!   to write the user namespace's id maps), sets rlimits and oom_score_adj, then forks
//! * the init (created with CLONE_PARENT, so the runtime's child and the container's pid 1):
//!   builds the rootfs, switches root, drops privileges and waits on the exec fifo.
//!
//! Neither stage ever returns or unwinds: an error goes to the runtime over the sync socket
//! and the process `_exit`s.

use super::ProcessError;
use crate::sys::during;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::exec;
use super::rlimits;
use super::sync::{Channel, Msg};
use super::tty;
use crate::caps::CapPlan;
use crate::cgroups::Cgroup;
use crate::ns::{self, NsPlan};
use crate::oci::Bundle;
use crate::rootfs::{self, RootfsPlan};
use crate::sys::{self, fs::ProcFs};

/// Everything both stages need, prepared by the runtime before it forks.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub ns: NsPlan,
    pub cgroup: Option<&'a Cgroup>,
    pub caps: CapPlan,
    /// The policy added the user namespace: the runtime hands over idmapped copies of the
    /// rootfs and the bind mounts' sources, so that host root's files are container root's.
    pub idmap: bool,
    /// ... and of the bind mounts' sources too (else only the rootfs is idmapped).
    pub idmap_binds: bool,
    /// The user namespace joined is the pod's: its identity (nsfs device, inode), which the
    /// runtime checks before it idmaps the mounts through it.
    pub pod_userns: Option<(u64, u64)>,
    /// Namespaces joined by path that are the host's, joined before the pod's user namespace
    /// (the one the policy added, or the client's joined by path; the network one has its own
    /// step: see [`join_network_first`]).
    pub join_first: Vec<LinuxNamespaceType>,
    /// User namespaces made for the idmapped mounts that have mappings of their own: (index
    /// in config.json's mounts, the namespace).
    pub mount_userns: Vec<(usize, OwnedFd)>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// A connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    /// The exec fifo, opened read-write: the init blocks reading it until `start` writes.
    pub fifo: OwnedFd,
    /// The seccomp filters, compiled by the runtime, in install order.
    pub seccomp: Vec<&'a crate::seccomp::Compiled>,
    /// The Landlock rulesets.
    pub landlock: Option<&'a crate::landlock::Plan>,
    /// The microVM stage: the init becomes the VMM instead of executing process.args.
    pub microvm: Option<&'a crate::microvm::Prepared>,
}

/// When the init installs its seccomp filter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FilterAt {
    /// Before dropping privileges: without no_new_privs only CAP_SYS_ADMIN may install one.
    BeforeCredentials,
    /// Before reporting ready: the runtime must hand a listener to the agent, or
    /// startContainer hooks must run under the filter.
    BeforeReady,
    /// The very last step before execve, so that the fewest syscalls run under it.
    LastStep,
}

/// `start_hooks`: the process has startContainer hooks, which run under the filter (as runc
/// 1.1 runs them: its filter is in place before the wait for `start`).
pub(super) fn filter_at(
    p: &oci_spec::runtime::Process,
    c: &[&crate::seccomp::Compiled],
    start_hooks: bool,
) -> FilterAt {
    if !p.no_new_privileges().unwrap_or(false) {
        FilterAt::BeforeCredentials
    } else if start_hooks || c.iter().any(|c| c.notify) {
        FilterAt::BeforeReady
    } else {
        FilterAt::LastStep
    }
}

/// Install the filters; with a listener, let the runtime take it (pidfd_getfd) and hand it to
/// the agent, and wait until that is done. The listener's number is told *before* the filter
/// is installed: once it is, every syscall it notifies (a profile may notify all of them, as
/// `contain learn`'s does) waits for an agent that has the listener, so none of ours may come
/// between the install and the hand-over. The kernel gives the listener the lowest free
/// descriptor, which this single-threaded process knows in advance.
pub(super) fn install_seccomp(
    ch: &Channel,
    filters: &[&crate::seccomp::Compiled],
) -> Result<(), ProcessError> {
    for c in filters {
        if !c.notify {
            crate::seccomp::install(c).map_err(during("install the seccomp filter"))?;
            continue;
        }
        let next = sys::lowest_free_fd(ch.as_fd()).map_err(during("descriptor table"))?;
        ch.send(&Msg::SeccompListener(next))
            .map_err(during("sync"))?;
        let listener = crate::seccomp::install(c)
            .map_err(during("install the seccomp filter"))?
            .ok_or("a notifying filter gave no listener")?;
        if listener.as_raw_fd() != next {
            return Err(ProcessError::Protocol(format!(
                "the seccomp listener is descriptor {}, not {next} as announced",
                listener.as_raw_fd()
            )));
        }
        expect(ch, Msg::Go)?;
    }
    Ok(())
}

/// Apply the Landlock plan (after the root switch, before privileges are dropped).
pub(super) fn apply_landlock(plan: Option<&crate::landlock::Plan>) -> Result<(), ProcessError> {
    if let Some(p) = plan {
        for line in crate::landlock::apply(p)? {
            crate::log::debug(&format!("landlock {line}"));
        }
    }
    Ok(())
}

/// Detached mounts handed over by the runtime: (index in config.json's mounts, or -1 for the
/// rootfs; the mount).
pub type Prepared = Vec<(i64, OwnedFd)>;

fn spec<'a>(a: &'a InitArgs<'_>) -> &'a Spec {
    &a.bundle.spec
}

pub(super) fn expect(ch: &Channel, want: Msg) -> Result<(), ProcessError> {
    match ch.recv().map_err(during("sync"))? {
        m if m == want => Ok(()),
        other => Err(ProcessError::Protocol(format!(
            "sync: expected {want:?}, got {other:?}"
        ))),
    }
}

/// Fork the next stage with CLONE_PARENT (a child of the runtime, so that it can be waited
/// for); the forking stage reports its pid. True in the new process.
pub(super) fn fork_and_report(
    ch: &Channel,
    what: &str,
    one: &sys::SingleThreaded,
) -> Result<bool, ProcessError> {
    match sys::fork_sibling(one).map_err(during(format!("fork {what}")))? {
        sys::Forked::Child(_) => Ok(true),
        sys::Forked::Parent(pid) => {
            ch.send(&Msg::InitPid(pid)).map_err(during("sync"))?;
            Ok(false)
        }
    }
}

/// In a forked stage: close every descriptor above stdio but `keep`, the log file (it stays
/// the logger's, so later lines still reach it) and the caller's own among the
/// `preserve_fds` after stdio (never one the runtime opened in that range).
pub(super) fn close_runtime_fds(mut keep: Vec<i32>, preserve_fds: u32) -> Result<(), ProcessError> {
    keep.extend(crate::log::fd());
    keep.extend(sys::inherited(preserve_fds));
    Ok(sys::close_fds_except(3, &keep).map_err(during("close inherited descriptors"))?)
}

pub(super) fn fail(ch: &Channel, err: ProcessError) -> ! {
    let _ = ch.send(&Msg::Error(err.to_string()));
    sys::exit_now(1)
}

/// Stage 1: never returns.
pub fn stage1(ch: Channel, args: &InitArgs<'_>, one: &sys::SingleThreaded) -> ! {
    match stage1_inner(&ch, args, one) {
        Ok(None) => sys::exit_now(0),
        Ok(Some(prepared)) => match init_inner(&ch, args, prepared) {
            Ok(never) => match never {},
            Err(e) => fail(&ch, e),
        },
        Err(e) => fail(&ch, e),
    }
}

/// Returns `Some` in the init (the forked child), `None` in stage 1 once the init is reported.
fn stage1_inner(
    ch: &Channel,
    args: &InitArgs<'_>,
    one: &sys::SingleThreaded,
) -> Result<Option<Prepared>, ProcessError> {
    sys::set_parent_death_signal(libc::SIGKILL).map_err(during("prctl"))?;
    let mut keep = vec![ch.as_raw_fd(), args.fifo.as_raw_fd()];
    keep.extend(args.console.as_ref().map(|c| c.as_raw_fd()));
    keep.extend(args.microvm.map(|vm| vm.keep_fds()).unwrap_or_default());
    close_runtime_fds(keep, args.preserve_fds)?;
    expect(ch, Msg::Go)?;
    // Into the container's cgroups before anything else (and before any user namespace: the
    // cgroup files belong to host root). The v2 one was entered at fork.
    if let Some(cg) = args.cgroup {
        cg.join_self_v1()?;
    }
    let process = spec(args).process().as_ref().ok_or("no process")?;
    let procfs = ProcFs::open(Path::new("/proc")).map_err(during("open /proc"))?;
    let me = std::process::id();
    if let Some(adj) = process.oom_score_adj() {
        procfs
            .write(
                Path::new(&format!("{me}/oom_score_adj")),
                adj.to_string().as_bytes(),
            )
            .map_err(|e| {
                ProcessError::Refused(format!(
                    "process.oomScoreAdj {adj}: {e} (lowering it needs CAP_SYS_RESOURCE)"
                ))
            })?;
    }
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;

    let mut prepared = Prepared::new();
    let runtime_net = net_ns_id();
    let early_net = join_network_first(args, &procfs, &mut prepared)?;
    if early_net {
        attach_guest_network(args, runtime_net)?;
    }
    for (t, p) in joined_first(args) {
        ns::join(t, p).map_err(ProcessError::Namespace)?;
    }
    host_ipc_mqueue(args, &mut prepared)?;
    if let Some(p) = &args.ns.join_user {
        ns::join(LinuxNamespaceType::User, p).map_err(ProcessError::Namespace)?;
        if args.pod_userns.is_some() || rootfs::options::any_idmap(spec(args)) {
            ch.send(&Msg::PrepareMounts).map_err(during("sync"))?;
            receive_mounts(ch, ch.recv().map_err(during("sync"))?, &mut prepared)?;
        }
    }
    if args.ns.new_user {
        unshare(CloneFlags::CLONE_NEWUSER).map_err(during("create the user namespace"))?;
        // An unprivileged runtime can open our /proc files only while we are dumpable; nothing
        // of the container runs yet, and only processes of the caller's own uid could use it.
        let rootless = !nix::unistd::geteuid().is_root();
        if rootless {
            sys::set_dumpable(true).map_err(during("prctl"))?;
        }
        ch.send(&Msg::WriteIdMaps).map_err(during("sync"))?;
        let answer = ch.recv().map_err(during("sync"));
        if rootless {
            sys::set_dumpable(false).map_err(during("prctl"))?;
        }
        receive_mounts(ch, answer?, &mut prepared)?;
    }
    if args.ns.new_user || args.ns.join_user.is_some() {
        // Become root of the namespace if it has one; capabilities stay full either way.
        if setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).is_ok() {
            setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                .map_err(during("become root in the user namespace"))?;
        }
    }
    let first: Vec<_> = joined_first(args).map(|(t, _)| t).collect();
    for (t, p) in &args.ns.join {
        let joined = first.contains(t) || (early_net && *t == LinuxNamespaceType::Network);
        if !joined {
            ns::join(*t, p).map_err(ProcessError::Namespace)?;
        }
    }
    let flags = args.ns.unshare;
    unshare(flags).map_err(during(format!("create namespaces {flags:?}")))?;
    if !early_net {
        attach_guest_network(args, runtime_net)?;
    }
    if let Some(offsets) = spec(args)
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
    {
        let text: String = offsets
            .iter()
            .map(|(clock, o)| {
                format!(
                    "{clock} {} {}\n",
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0)
                )
            })
            .collect();
        // The file belongs to us only while we are dumpable; nothing of the container runs yet.
        sys::set_dumpable(true).map_err(during("prctl"))?;
        let res = procfs.write(Path::new(&format!("{me}/timens_offsets")), text.as_bytes());
        sys::set_dumpable(false).map_err(during("prctl"))?;
        res.map_err(during("linux.timeOffsets"))?;
    }
    Ok(fork_and_report(ch, "the container's init", one)?.then_some(prepared))
}

/// The runtime's answer to WriteIdMaps or PrepareMounts: the mounts it prepared.
fn receive_mounts(ch: &Channel, answer: Msg, prepared: &mut Prepared) -> Result<(), ProcessError> {
    let indexes = match answer {
        Msg::IdMapsWritten { prepared } => prepared,
        other => {
            return Err(ProcessError::Protocol(format!(
                "sync: expected IdMapsWritten, got {other:?}"
            )))
        }
    };
    for i in indexes {
        let fd =
            crate::sys::socket::recv_fd(ch.as_fd()).map_err(during("receive a prepared mount"))?;
        prepared.push((i, fd));
    }
    Ok(())
}

/// A network namespace joined by path while a new user namespace is made (podman, as root,
/// makes one per container): join it first, as host root, since from inside the new user
/// namespace we could not. It stays owned by the host's user namespace, so container root
/// holds no capability in it: open ports below 1024 and ICMP echo sockets to every user in it
/// (as Docker does for its containers), and make its sysfs instance here, which only a
/// mounter owning the network namespace may. Returns whether it was joined.
fn join_network_first(
    args: &InitArgs<'_>,
    procfs: &ProcFs,
    prepared: &mut Prepared,
) -> Result<bool, ProcessError> {
    let Some(path) = network_joined_first(args) else {
        return Ok(false);
    };
    // Never widen the host's own network namespace (a config may join /proc/1/ns/net).
    let host = ns::is_own(LinuxNamespaceType::Network, path);
    ns::join(LinuxNamespaceType::Network, path).map_err(ProcessError::Namespace)?;
    // Ours first, then config.json's net.* sysctls (which the init could not write here;
    // create refuses them for the host's namespace).
    let ours: &[(&str, &str)] = if host {
        &[]
    } else {
        &[
            ("net.ipv4.ip_unprivileged_port_start", "0"),
            ("net.ipv4.ping_group_range", "0 2147483647"),
        ]
    };
    let config = spec(args)
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default();
    let theirs = config
        .iter()
        .filter(|(k, _)| k.starts_with("net."))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in ours.iter().copied().chain(theirs) {
        procfs
            .write(
                Path::new(&format!("sys/{}", key.replace('.', "/"))),
                value.as_bytes(),
            )
            .map_err(during(format!(
                "linux.sysctl {key}={value} in {}",
                path.display()
            )))?;
    }
    prepare_instance(args, prepared, "sysfs", false, || {
        format!("make the sysfs of {}", path.display())
    })?;
    Ok(true)
}

/// A microVM guest's network: the interface of the container's network namespace, taken
/// while this process is in it and still host root there (as soon as it joined it first, or
/// once it made or joined its namespaces); never in the runtime's own namespace.
fn attach_guest_network(
    args: &InitArgs<'_>,
    runtime_net: Option<(u64, u64)>,
) -> Result<(), ProcessError> {
    match args.microvm {
        Some(vm) if net_ns_id() != runtime_net => Ok(vm.attach_network()?),
        _ => Ok(()),
    }
}

/// The identity of this thread's network namespace (nsfs device and inode).
fn net_ns_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Make config.json's `typ` mount here, detached, for the init to attach in place of its own:
/// a kernel filesystem only a mounter owning the matching namespace may make, which this
/// process (host root, in that namespace) still is. With the mount's flags, and its data
/// options when `with_data`. Nothing when config.json has no such mount.
fn prepare_instance(
    args: &InitArgs<'_>,
    prepared: &mut Prepared,
    typ: &str,
    with_data: bool,
    what: impl FnOnce() -> String,
) -> Result<(), ProcessError> {
    let Some((i, m)) = spec(args)
        .mounts()
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, m)| m.typ().as_deref() == Some(typ))
    else {
        return Ok(());
    };
    let opts = rootfs::options::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| ProcessError::Refused(format!("mount {}: {e}", m.destination().display())))?;
    let data = if with_data { &opts.data[..] } else { &[] };
    let fs = crate::sys::mount::new_fs(
        typ,
        m.source().as_deref(),
        data,
        crate::sys::mount::attrs_from_flags(opts.flags),
    )
    .map_err(during(what()))?;
    prepared.push((i as i64, fs));
    Ok(())
}

/// A container in a user namespace whose IPC namespace is the host's (joined first, or no
/// `ipc` entry: hostIPC pods, `--ipc=host`) cannot mount mqueue itself, and the host need not
/// have an instance at /dev/mqueue to bind (only systemd mounts one). As host root, in that
/// IPC namespace, make config.json's mqueue mount here, detached, for the init to attach: the
/// instance the container would have mounted without a user namespace.
fn host_ipc_mqueue(args: &InitArgs<'_>, prepared: &mut Prepared) -> Result<(), ProcessError> {
    let ipc = LinuxNamespaceType::Ipc;
    let in_userns = args.ns.new_user || args.ns.join_user.is_some();
    let host_ipc = args.join_first.contains(&ipc)
        || (!args.ns.unshare.contains(CloneFlags::CLONE_NEWIPC)
            && !args.ns.join.iter().any(|(t, _)| *t == ipc));
    if !in_userns || !host_ipc || !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    prepare_instance(args, prepared, "mqueue", true, || {
        "make the host IPC namespace's mqueue".into()
    })
}

/// The host's namespaces (but the network one) a pod's container joins before the pod's user
/// namespace, in the safe order.
fn joined_first<'a>(
    args: &'a InitArgs<'_>,
) -> impl Iterator<Item = (LinuxNamespaceType, &'a Path)> + 'a {
    args.ns
        .join
        .iter()
        .filter(|(t, _)| *t != LinuxNamespaceType::Network && args.join_first.contains(t))
        .map(|(t, p)| (*t, p.as_path()))
}

/// The network namespace stage 1 joins before it makes the user namespace (see
/// [`join_network_first`]).
fn network_joined_first<'a>(args: &'a InitArgs<'_>) -> Option<&'a Path> {
    let (_, path) = args
        .ns
        .join
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::Network)?;
    let before_userns = args.ns.new_user
        || args.pod_userns.is_some()
        || args.join_first.contains(&LinuxNamespaceType::Network);
    (before_userns && nix::unistd::geteuid().is_root()).then_some(path.as_path())
}

enum Never {}

fn init_inner(
    ch: &Channel,
    args: &InitArgs<'_>,
    prepared: Prepared,
) -> Result<Never, ProcessError> {
    sys::set_parent_death_signal(libc::SIGKILL).map_err(during("prctl"))?;
    let rootfs_dir = receive_rootfs_dir(ch, &prepared)?;
    expect(ch, Msg::Go)?;
    let spec = spec(args);
    let process = spec.process().as_ref().ok_or("no process")?;
    let linux = spec.linux().as_ref().ok_or("no linux section")?;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let procfs = ProcFs::open(Path::new("/proc")).map_err(during("open /proc"))?;

    let plan = RootfsPlan {
        spec,
        rootfs: &args.bundle.rootfs,
        bundle: &args.bundle.dir,
        cgroup: args.cgroup,
        prepared,
        rootfs_dir,
    };
    let sys = &rootfs::Real;
    let root = rootfs::prepare(sys, &plan)?;
    // The prepared mounts are attached: their descriptors must not reach the workload.
    drop(plan);
    if !rootfs::dev_is_bind(spec) {
        rootfs::create_devices(sys, root.as_fd(), spec)?;
    }
    set_names_and_sysctls(args, &procfs)?;
    ch.send(&Msg::RunCreateRuntimeHooks)
        .map_err(during("sync"))?;
    let state = match ch.recv().map_err(during("sync"))? {
        Msg::HooksDone { state } => state,
        other => {
            return Err(ProcessError::Protocol(format!(
                "sync: unexpected {other:?}"
            )))
        }
    };
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().clone())
    {
        crate::hooks::run_all("createContainer", &h, &state).map_err(ProcessError::Hook)?;
    }

    rootfs::protect(sys, root.as_fd(), spec)?;
    rootfs::switch_root(sys, root.as_fd(), args.no_pivot)?;
    drop(root);
    drop(procfs);
    rootfs::set_root_propagation(sys, spec)?;

    if !args.no_new_keyring {
        join_session_keyring(args.id)?;
    }
    let user = process.user();
    if let Some(console) = &args.console {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        tty::setup(console, size, user.uid())?;
    }
    if rootfs::dev_tmpfs_readonly(spec) {
        let top = crate::sys::fs::open_host(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)
            .map_err(during("open the container's root"))?;
        rootfs::seal_dev(sys, top.as_fd())?;
    }

    apply_landlock(args.landlock)?;
    if let Some(vm) = args.microvm {
        return run_vmm(ch, args, vm, &state);
    }
    set_execution_domain(linux)?;
    let start_hooks = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .is_some_and(|h| !h.is_empty());
    let at = filter_at(process, &args.seccomp, start_hooks);
    let wait = start_wait(at, &args.seccomp);
    ends_on_kill(wait)?;
    // Before any filter: config.json's profile need not allow close_range (runc's last
    // steps under the filter are only execve's).
    sys::cloexec_from(3 + args.preserve_fds).map_err(during("close descriptors"))?;
    if at == FilterAt::BeforeCredentials {
        install_seccomp(ch, &args.seccomp)?;
    }
    let program = exec::become_process(process, &args.caps)?;
    if at == FilterAt::BeforeReady {
        install_seccomp(ch, &args.seccomp)?;
    }

    // From here on the runtime may exit: the init must outlive it.
    sys::set_parent_death_signal(0).map_err(during("prctl"))?;
    ch.send(&Msg::Ready).map_err(during("sync"))?;

    wait_for_start(args, &state, wait)?;
    // The runtime blocked signals (`run` relays them) and Rust ignores SIGPIPE: the workload
    // must start with the default mask and dispositions. A signal `kill` sent after `start`
    // returned and still pending meets the default disposition: a pid namespace's init
    // ignores it, as the workload would.
    exec::reset_signals();
    if at == FilterAt::LastStep {
        for c in &args.seccomp {
            if let Err(e) = crate::seccomp::install(c) {
                eprintln!("contain: install the seccomp filter: {e}");
                sys::exit_now(1);
            }
        }
    }
    program.exec()
}

/// The rootfs directory the runtime opened for us in our mount namespace, when it did: as the
/// user namespace's root we may not be able to search the directories above it.
fn receive_rootfs_dir(ch: &Channel, prepared: &Prepared) -> Result<Option<OwnedFd>, ProcessError> {
    if !prepared.iter().any(|(i, _)| *i == -1) {
        return Ok(None);
    }
    expect(ch, Msg::RootfsDir)?;
    crate::sys::socket::recv_fd(ch.as_fd())
        .map(Some)
        .map_err(|e| during("receive the rootfs directory")(e).into())
}

/// Hostname, domain name, the sysctls stage 1 did not write, and the new network
/// namespace's loopback.
fn set_names_and_sysctls(args: &InitArgs<'_>, procfs: &ProcFs) -> Result<(), ProcessError> {
    let spec = spec(args);
    let linux = spec.linux().as_ref().ok_or("no linux section")?;
    if let Some(h) = spec.hostname().as_ref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(during(format!("sethostname {h:?}")))?;
    }
    if let Some(d) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
        set_domainname(d)?;
    }
    let early_net = network_joined_first(args).is_some();
    for (key, value) in linux.sysctl().iter().flatten() {
        if early_net && key.starts_with("net.") {
            continue; // written by stage 1 (join_network_first)
        }
        let rel = format!("sys/{}", key.replace('.', "/"));
        procfs
            .write(Path::new(&rel), value.as_bytes())
            .map_err(during(format!("linux.sysctl {key}={value}")))?;
    }
    if args.ns.has_new(LinuxNamespaceType::Network) {
        sys::net::loopback_up().map_err(during("bring up lo"))?;
    }

    Ok(())
}

/// linux.personality and linux.memoryPolicy, inherited by the workload.
fn set_execution_domain(linux: &oci_spec::runtime::Linux) -> Result<(), ProcessError> {
    if let Some(p) = linux.personality() {
        let persona = match p.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 8,
        };
        sys::set_personality(persona)
            .map_err(during(format!("linux.personality {}", p.domain())))?;
    }
    if let Some(mp) = linux.memory_policy() {
        let (mode, nodes) = crate::oci::memory_policy(mp).map_err(ProcessError::Refused)?;
        sys::set_mempolicy(mode, &nodes).map_err(during("linux.memoryPolicy (set_mempolicy)"))?;
    }
    Ok(())
}

/// How the init waits for `start` with the signals that end it ([`sys::ENDS_A_WAITING_INIT`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum StartWait {
    /// Blocked, and taken only while waiting (ppoll): one sent once `start` returned stays
    /// pending until the workload's default disposition meets it.
    Taking,
    /// Unblocked throughout, because a filter installed before the wait refuses ppoll or
    /// rt_sigprocmask: a signal sent just after `start` returned may still end the init.
    Unblocked,
}

fn start_wait(at: FilterAt, filters: &[&crate::seccomp::Compiled]) -> StartWait {
    let lets = |c: &&crate::seccomp::Compiled| {
        ["ppoll", "rt_sigprocmask"]
            .iter()
            .all(|n| c.lets_through(n))
    };
    if at == FilterAt::LastStep || filters.iter().all(lets) {
        StartWait::Taking
    } else {
        StartWait::Unblocked
    }
}

/// `kill ID TERM` ends a container that is created and not started, as it ends runc's. Set
/// before `Ready` (a kill may come as soon as `create` returns) and before any seccomp filter
/// (the config's profile need not allow rt_sigaction).
fn ends_on_kill(wait: StartWait) -> Result<(), ProcessError> {
    sys::exit_on_signals(&sys::ENDS_A_WAITING_INIT).map_err(during("signal handlers"))?;
    if wait == StartWait::Unblocked {
        sys::unblock_signals(&sys::ENDS_A_WAITING_INIT).map_err(during("signals"))?;
    }
    Ok(())
}

/// Block on the exec fifo until `start` writes it (a `delete` that removes it ends the init),
/// then run the startContainer hooks; a failing hook ends the init.
fn wait_for_start(args: &InitArgs<'_>, state: &str, wait: StartWait) -> Result<(), ProcessError> {
    if wait == StartWait::Taking {
        sys::wait_readable_taking(args.fifo.as_fd(), &sys::ENDS_A_WAITING_INIT)
            .map_err(during("wait for start"))?;
    }
    let mut fifo = std::fs::File::from(args.fifo.try_clone().map_err(during("dup fifo"))?);
    let mut byte = [0u8; 1];
    match fifo.read(&mut byte) {
        Ok(1) => {}
        _ => sys::exit_now(1),
    }
    drop(fifo);
    if let Some(h) = spec(args)
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().clone())
    {
        if let Err(e) = crate::hooks::run_all("startContainer", &h, state) {
            eprintln!("contain: {e}");
            sys::exit_now(1);
        }
    }
    Ok(())
}

/// The microVM stage's end of the init: build the VM (errors still reach `create`), drop
/// every privilege (the VMM needs none past the open /dev/kvm), wait for `start`, run it.
fn run_vmm(
    ch: &Channel,
    args: &InitArgs<'_>,
    vm: &crate::microvm::Prepared,
    state: &str,
) -> Result<Never, ProcessError> {
    let machine = vm.build()?;
    let none = CapPlan::none();
    none.drop_bounding().map_err(ProcessError::Capabilities)?;
    none.apply().map_err(ProcessError::Capabilities)?;
    sys::set_no_new_privs().map_err(during("prctl no_new_privs"))?;
    sys::set_parent_death_signal(0).map_err(during("prctl"))?;
    ends_on_kill(StartWait::Taking)?;
    ch.send(&Msg::Ready).map_err(during("sync"))?;
    wait_for_start(args, state, StartWait::Taking)?;
    // A started VM ends on these signals too (the guest has no other way to be told yet).
    sys::unblock_signals(&sys::ENDS_A_WAITING_INIT).map_err(during("signals"))?;
    // Nothing of the runtime's may reach the VMM's loop: the sync socket, the fifo and any
    // preserved descriptor are closed (the VM's own descriptors are kept).
    let keep = vm.machine_fds(&machine);
    if let Err(e) = sys::close_fds_except(3, &keep) {
        eprintln!("contain: close descriptors: {e}");
        sys::exit_now(1);
    }
    vm.run(machine)
}

fn set_domainname(name: &str) -> Result<(), ProcessError> {
    Ok(sys::set_domainname(name).map_err(during(format!("setdomainname {name:?}")))?)
}

fn join_session_keyring(id: &str) -> Result<(), ProcessError> {
    let name = std::ffi::CString::new(format!("_ses.{id}")).map_err(|_| "bad keyring name")?;
    match sys::join_session_keyring(&name) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EDQUOT)) => Ok(()),
        Err(e) => Err(during("join a new session keyring")(e).into()),
    }
}
