//! `create`: validate everything, then create the state directory, the cgroup and the init,
//! undoing all of it if any later step fails.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::lifecycle::{hook_state, write_atomic};
use super::store::{ContainerDir, State, Store};
use super::{io_err, ContainerError};
use crate::caps::CapPlan;
use crate::cgroups::systemd::{self, Systemd};
use crate::cgroups::{self, Cgroup};
use crate::hooks;
use crate::landlock;
use crate::ns::{self, NsPlan};
use crate::oci::{self, Bundle};
use crate::policy;
use crate::process::{self, rlimits, InitArgs, ProcessError};
use crate::seccomp;
use crate::sys::{fs::open_host, proc, socket::send_fd};

/// The flags of `create` (and `run`).
#[derive(Debug, Default, Clone)]
pub struct CreateOpts {
    /// --policy: a built-in name or a policy file.
    pub policy: Option<String>,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub pidfd_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// --systemd-cgroup: cgroupsPath is `slice:prefix:name` and systemd makes the scope.
    pub systemd_cgroup: bool,
    /// `contain learn`: the supervisor's socket, which gets the observer filter's listener.
    pub learn: Option<PathBuf>,
}

/// What a failed create must undo.
struct Undo<'a> {
    dir: Option<ContainerDir>,
    cgroup: Option<&'a Cgroup>,
    init: Option<i32>,
    /// The systemd scope started for the container.
    scope: Option<&'a str>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.init {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = self.cgroup {
            for pid in cg.pids() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if let Some(name) = self.scope {
            if let Err(e) = Systemd::connect().and_then(|s| s.stop(name)) {
                crate::log::warn(&e.to_string());
            }
        }
        if let Some(cg) = self.cgroup {
            let _ = cg.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

fn connect(path: &Path, what: &'static str) -> Result<OwnedFd, ContainerError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(io_err(what, path))
}

/// What preflight prepares: the capability plan, the compiled seccomp filters (in install
/// order) and the Landlock plan.
struct Prepared {
    caps: CapPlan,
    filters: Vec<seccomp::Effective>,
    landlock: landlock::Plan,
    microvm: Option<crate::microvm::Prepared>,
}

/// Check what can be checked before any side effect.
fn preflight(
    bundle: &Bundle,
    opts: &CreateOpts,
    hierarchies: &[cgroups::Hierarchy],
    applied: &policy::Applied,
) -> Result<Prepared, ContainerError> {
    let spec = &bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| oci::ConfigError::Invalid {
            field: "process".into(),
            reason: "missing".into(),
        })?;
    let ns_plan = NsPlan::from_spec(spec);
    check_mount_namespace(&ns_plan)?;
    rlimits::preflight(process.rlimits().as_deref().unwrap_or_default())?;
    check_idmapped_mounts(spec, &ns_plan)?;
    check_host_sysctls(spec)?;
    let caps = CapPlan::new(process.capabilities().as_ref()).map_err(ContainerError::Preflight)?;
    check_sockets(opts, process.terminal().unwrap_or(false))?;
    if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        cgroups::check_supported(res, hierarchies)?;
    }
    // In the microVM stage the workload's syscalls reach the guest kernel; the VMM, which
    // is what runs on the host, gets its own per-thread filters instead.
    let microvm = applied
        .microvm
        .as_ref()
        .map(|plan| {
            let guest = crate::microvm::initramfs::GuestConfig {
                process: process.clone(),
                hostname: spec.hostname().clone(),
                rootfs: plan.rootfs,
                readonly: spec
                    .root()
                    .as_ref()
                    .and_then(|r| r.readonly())
                    .unwrap_or(false),
            };
            crate::microvm::prepare(plan, &bundle.rootfs, &guest)
        })
        .transpose()?;
    let filters = if microvm.is_some() {
        if opts.learn.is_some() {
            return Err(ContainerError::Preflight(
                "contain learn watches the syscalls the host kernel serves; in the microVM stage the guest's kernel serves them: learn under isolation `container`".into(),
            ));
        }
        Vec::new()
    } else {
        seccomp_filters(bundle, applied, &caps, opts.learn.as_deref())?
    };
    let landlock = landlock::plan(
        &bundle.spec,
        bundle.landlock.as_ref(),
        &applied.landlock,
        landlock::kernel_abi(),
    )?;
    for n in &landlock.notes {
        crate::log::debug(&format!("landlock: {n}"));
    }
    Ok(Prepared {
        caps,
        filters,
        landlock,
        microvm,
    })
}

/// The container's mount namespace: a new one or one joined by path, never the runtime's own
/// (that would switch the host's root).
fn check_mount_namespace(ns_plan: &NsPlan) -> Result<(), ContainerError> {
    let joined_mnt = ns_plan
        .join
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::Mount);
    match joined_mnt {
        // As runc: the rootfs is set up inside the joined namespace (its other processes see
        // the mounts, and the root switch). Never the runtime's own: that would switch the
        // host's root.
        Some((_, p)) if ns::is_own(LinuxNamespaceType::Mount, p) => {
            return Err(ContainerError::Preflight(format!(
                "linux.namespaces: the mount namespace {} is the runtime's own (the host's); the container's rootfs cannot be set up in it",
                p.display()
            )));
        }
        Some(_) => {}
        None if !ns_plan.has_new(LinuxNamespaceType::Mount) => {
            return Err(ContainerError::Preflight(
                "linux.namespaces: no mount namespace is asked for; contain needs one of the container's own (a new one, or one joined by path) for its rootfs under every policy (runc would make the runtime's root a recursive slave, mount the container's filesystems in the runtime's own mount namespace, where they stay, and confine the process by chroot alone)"
                    .into(),
            ));
        }
        None => {}
    }
    Ok(())
}

/// Idmapped mounts need a user namespace and a root runtime.
fn check_idmapped_mounts(
    spec: &oci_spec::runtime::Spec,
    ns_plan: &NsPlan,
) -> Result<(), ContainerError> {
    for m in spec.mounts().iter().flatten() {
        let opts = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(ContainerError::Preflight)?;
        if opts.idmap.is_none() {
            continue;
        }
        let field = format!("mounts[{}]", m.destination().display());
        if !ns_plan.new_user && ns_plan.join_user.is_none() {
            return Err(ContainerError::Preflight(format!(
                "{field}: an idmapped mount needs a user namespace, and the container has none (config.json gives none and the policy adds none)"
            )));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(ContainerError::Preflight(format!(
                "{field}: idmapped mounts need the runtime to run as root"
            )));
        }
    }
    Ok(())
}

/// A namespaced sysctl is the host's when its namespace is joined from a path that is the
/// runtime's own namespace (/proc/1/ns/net, say): refused, as for a shared namespace.
fn check_host_sysctls(spec: &oci_spec::runtime::Spec) -> Result<(), ContainerError> {
    if let Some(linux) = spec.linux() {
        let joined = linux.namespaces().iter().flatten().filter_map(|n| {
            n.path()
                .as_ref()
                .filter(|p| crate::ns::is_own(n.typ(), p))
                .map(|p| (n.typ(), p))
        });
        for (t, path) in joined {
            if let Some((key, _)) = linux
                .sysctl()
                .iter()
                .flatten()
                .find(|(k, _)| crate::oci::sysctl_namespace(k) == Some(t))
            {
                return Err(ContainerError::Preflight(format!(
                    "linux.sysctl.{key}: the {} namespace joined from {} is the host's; setting it would change the host",
                    crate::ns::ns_file(t),
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// --console-socket exactly when process.terminal; --pidfd-socket must exist.
fn check_sockets(opts: &CreateOpts, terminal: bool) -> Result<(), ContainerError> {
    if terminal && opts.console_socket.is_none() {
        return Err(ContainerError::Preflight(
            "process.terminal is true: --console-socket is required to receive the pty master"
                .into(),
        ));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(ContainerError::Preflight(
            "--console-socket given but process.terminal is false: no pty is allocated".into(),
        ));
    }
    if let Some(p) = &opts.pidfd_socket {
        if !p.exists() {
            return Err(ContainerError::Preflight(format!(
                "--pidfd-socket {}: no such socket",
                p.display()
            )));
        }
    }
    Ok(())
}

/// The seccomp filters of the container (the policy's and config.json's), each checked for its
/// listener, its warnings logged.
fn seccomp_filters(
    bundle: &Bundle,
    applied: &policy::Applied,
    caps: &CapPlan,
    learn: Option<&Path>,
) -> Result<Vec<seccomp::Effective>, ContainerError> {
    let mut stacked = seccomp::policy_profiles(&applied.seccomp_profiles)?;
    if let Some(sock) = learn {
        stacked.push((crate::learn::observer(sock), seccomp::Source::Learn));
    }
    let filters = seccomp::effective(
        bundle.seccomp.as_ref(),
        caps.bounding_names(),
        applied.seccomp.choice(),
        applied.lock_mounts,
        stacked,
    )?;
    for f in &filters {
        check_listener(f)?;
        for w in &f.compiled.warnings {
            crate::log::warn(&format!("seccomp: {w}"));
        }
        if f.source == seccomp::Source::ConfigTemplate {
            crate::log::warn(
                "linux.seccomp is a Docker/podman template: resolved for x86_64, this kernel and the bounding capabilities (see SECURITY.md)",
            );
        }
    }
    Ok(filters)
}

const PING_GROUP_RANGE: &str = "net.ipv4.ping_group_range";

/// Host id ranges of a list of mappings.
fn host_ranges(maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>) -> Vec<(u32, u32)> {
    maps.into_iter()
        .flatten()
        .map(|m| (m.host_id(), m.size()))
        .collect()
}

/// Give the user namespace the policy added its range of the pool (reserved in the
/// container's state directory); check a config's own mappings against the ranges given to
/// other containers. Returns the text for `state`.
fn user_namespace(
    store: &Store,
    id: &str,
    spec: &mut oci_spec::runtime::Spec,
    userns: &policy::UserNs,
    joined_first: &[LinuxNamespaceType],
) -> Result<String, ContainerError> {
    let host: Vec<&str> = joined_first.iter().map(|t| policy::ns_name(*t)).collect();
    let host = if host.is_empty() {
        String::new()
    } else {
        format!(
            " (the host's {} namespace(s) joined first: container root holds no capability there)",
            host.join(", ")
        )
    };
    let (r, how) = match userns {
        policy::UserNs::None(why) => {
            return Ok(format!("none: container root is host root ({why})"))
        }
        policy::UserNs::Config => {
            let linux = spec.linux().clone().unwrap_or_default();
            if nix::unistd::geteuid().is_root() {
                let joins = super::pod::joined_userns_holder(store, spec);
                ns::idmap::reserve_config(
                    store.root(),
                    id,
                    joins.as_deref(),
                    &host_ranges(linux.uid_mappings().as_ref()),
                    &host_ranges(linux.gid_mappings().as_ref()),
                )
                .map_err(ContainerError::Preflight)?;
            }
            return Ok(client_userns(&linux));
        }
        policy::UserNs::Pod(pod) => {
            ns::idmap::reserve_shared(store.root(), id, &pod.sandbox, pod.range)
                .map_err(ContainerError::Preflight)?;
            (
                pod.range,
                format!(
                    "the pod's, joined from its sandbox container {:?}{host}",
                    pod.sandbox
                ),
            )
        }
        policy::UserNs::Added(p) => {
            let pool = ns::idmap::pool(p.subid_user.as_deref(), p.start, p.size, p.range_size);
            let r =
                ns::idmap::reserve(store.root(), id, &pool).map_err(ContainerError::Preflight)?;
            (r, format!("added by the policy{host}"))
        }
    };
    let map = |host: u32| -> Result<Vec<oci_spec::runtime::LinuxIdMapping>, ContainerError> {
        let m = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(r.size)
            .build()
            .map_err(|e| ContainerError::Preflight(e.to_string()))?;
        Ok(vec![m])
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_uid_mappings(Some(map(r.uid_base)?));
    linux.set_gid_mappings(Some(map(r.gid_base)?));
    // The namespace is ours, so the translation of gid ranges is too: a range wider than the
    // gids it maps would fail the container (see clamp_group_range).
    let mut note = String::new();
    let mut sysctl = linux.sysctl().clone().unwrap_or_default();
    if let Some(v) = sysctl.get_mut(PING_GROUP_RANGE) {
        if let Some(narrow) = ns::idmap::clamp_group_range(v, r.size) {
            note = format!(
                "; linux.sysctl {PING_GROUP_RANGE} {v:?} narrowed to {narrow:?}, the gids it maps"
            );
            crate::log::debug(&note[2..]);
            *v = narrow;
            linux.set_sysctl(Some(sysctl));
        }
    }
    spec.set_linux(Some(linux));
    Ok(format!(
        "{how}: container ids 0..{} are host uids {}.. and gids {}.. (idmapped rootfs){note}",
        r.size, r.uid_base, r.gid_base
    ))
}

/// `state`'s words for a user namespace the client gave (created or joined by path, as
/// containerd 2 sends for a pod with `hostUsers: false`): its mappings, honoured as given.
fn client_userns(linux: &oci_spec::runtime::Linux) -> String {
    let maps = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        let m = m.as_deref().unwrap_or_default();
        if m.is_empty() {
            return "none".to_string();
        }
        m.iter()
            .map(|m| format!("{} {} {}", m.container_id(), m.host_id(), m.size()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let joined = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        .and_then(|n| n.path().as_ref())
        .map(|p| format!(", joined from {}", p.display()))
        .unwrap_or_default();
    format!(
        "the client's (config.json's user namespace{joined}, its mappings honoured as given): uid map {}; gid map {}",
        maps(linux.uid_mappings()),
        maps(linux.gid_mappings())
    )
}

/// A user namespace for each idmapped mount with mappings of its own (index in config.json's
/// mounts, namespace).
fn mount_user_namespaces(
    spec: &oci_spec::runtime::Spec,
) -> Result<Vec<(usize, OwnedFd)>, ContainerError> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if let (Some(uid), Some(gid)) = (m.uid_mappings(), m.gid_mappings()) {
            let ns = ns::detached_userns(uid, gid).map_err(|e| {
                ContainerError::Preflight(format!("mounts[{}]: {e}", m.destination().display()))
            })?;
            out.push((i, ns));
        }
    }
    Ok(out)
}

/// How runc words a listener it cannot reach (tools match it).
const NO_AGENT: &str = "failed to connect with seccomp agent specified in the seccomp profile";

/// A profile that notifies needs an agent listening at listenerPath.
pub(super) fn check_listener(f: &seccomp::Effective) -> Result<(), ContainerError> {
    use std::os::unix::fs::FileTypeExt;
    if !f.compiled.notify {
        return Ok(());
    }
    let path = f.profile.listener_path.as_deref().unwrap_or(Path::new(""));
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_socket() => Ok(()),
        Ok(_) => Err(ContainerError::Preflight(format!(
            "{NO_AGENT}: linux.seccomp.listenerPath {}: not a unix socket",
            path.display()
        ))),
        Err(e) => Err(ContainerError::Preflight(format!(
            "{NO_AGENT}: linux.seccomp.listenerPath {}: {e}",
            path.display()
        ))),
    }
}

/// Create the container; returns its state with the init waiting on the exec fifo.
pub fn create(store: &Store, opts: &CreateOpts) -> Result<State, ContainerError> {
    oci::validate_id(&opts.id)?;
    let mut bundle = oci::load_bundle(&opts.bundle)?;
    let (policy, chosen_by, mut facts) = policy::choose(
        opts.policy.as_deref(),
        &bundle.spec,
        ns::idmap::idmappable(&bundle.rootfs),
    )?;
    let joined = super::pod::joined(&bundle.spec)?;
    facts.pod = joined.pod(store);
    facts.host_joins = joined.host_joins();
    let applied = policy::apply(&policy, &bundle.spec, &facts)?;
    for w in &applied.warnings {
        crate::log::warn(w);
    }
    bundle.spec = applied.spec.clone();
    let hierarchies = cgroups::hierarchies()?;
    let prepared = preflight(&bundle, opts, &hierarchies, &applied)?;
    let console = opts
        .console_socket
        .as_deref()
        .map(|p| connect(p, "connect to console socket"))
        .transpose()?;
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    let (rel, unit) = cgroup_placement(opts, cgroups_path.as_deref())?;
    let mut cgroup = Cgroup::at(&hierarchies, &rel);

    // Side effects start here; `undo` reverts them unless the create completes.
    let dir = store.create(&opts.id)?;
    let mut undo = Undo {
        dir: None,
        cgroup: None,
        init: None,
        scope: None,
    };
    let fifo_path = dir.fifo_path();
    if let Some(vm) = &prepared.microvm {
        vm.listen(&dir.path)?;
    }
    let recorded = dir.record_creating(&super::store::Creating {
        cgroup: rel.clone(),
        scope: unit.as_ref().map(|u| u.name.clone()),
    });
    undo.dir = Some(dir);
    recorded?;
    let userns_text = user_namespace(
        store,
        &opts.id,
        &mut bundle.spec,
        &applied.userns,
        &applied.joined_first,
    )?;
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .map_err(|e| io_err("mkfifo", &fifo_path)(e.into()))?;
    let fifo = open_host(&fifo_path, libc::O_RDWR).map_err(io_err("open", &fifo_path))?;
    cgroup.check_unused()?;
    let resources = linux.and_then(|l| l.resources().as_ref());
    let mut placeholder = None;
    if let Some(unit) = &unit {
        let unified = systemd::unified(&hierarchies);
        let props = resources
            .map(|r| systemd::resource_properties(r, unified))
            .unwrap_or_default();
        let holder = systemd::Placeholder::spawn()?;
        Systemd::connect()?.start_scope(unit, &opts.id, holder.pid, unified, props)?;
        placeholder = Some(holder);
        undo.scope = Some(&unit.name);
    }
    make_cgroup(&mut cgroup, resources)?;
    undo.cgroup = Some(&cgroup);
    if let Some(res) = resources {
        cgroup.apply(res)?;
    }

    let annotations = annotations(spec, &applied, chosen_by, &prepared, userns_text);
    let mut state = initial_state(
        opts,
        &bundle,
        &cgroup,
        &prepared,
        unit.as_ref(),
        annotations,
    );
    let args = init_args(opts, &bundle, &cgroup, &applied, &prepared, console, fifo)?;
    let pid = spawn_init(&args, &state, &prepared)?;
    undo.init = Some(pid);
    // The init holds the scope now.
    drop(placeholder);
    drop(args);
    state.pid = pid;
    state.start_time = proc::stat(pid)
        .ok_or_else(|| ContainerError::Spawn("the container's init exited during create".into()))?
        .start_time;
    let dir = undo
        .dir
        .as_ref()
        .ok_or_else(|| ContainerError::Spawn("state directory lost".into()))?;
    dir.save(&state)?;
    publish_pid(opts, pid)?;
    crate::log::debug(&format!(
        "container {:?} created: init pid {pid}, cgroup {}",
        opts.id,
        rel.display()
    ));
    undo.init = None;
    undo.cgroup = None;
    undo.scope = None;
    drop(undo.dir.take());
    Ok(state)
}

/// Where the container's cgroup goes: under systemd's scope (`--systemd-cgroup`, checked to
/// be reachable before anything is made) or cgroupsPath in every hierarchy.
fn cgroup_placement(
    opts: &CreateOpts,
    cgroups_path: Option<&Path>,
) -> Result<(PathBuf, Option<systemd::Unit>), ContainerError> {
    if !opts.systemd_cgroup {
        return Ok((cgroups::relative_path(cgroups_path, &opts.id), None));
    }
    let text = cgroups_path
        .map(|p| {
            p.to_str().ok_or_else(|| {
                cgroups::CgroupError::Systemd(format!("cgroupsPath {p:?} is not UTF-8"))
            })
        })
        .transpose()?;
    let unit = systemd::Unit::parse(text, &opts.id)?;
    // Fail here, before anything is made, when systemd cannot be reached.
    Systemd::connect().map(drop)?;
    Ok((unit.cgroup_path(), Some(unit)))
}

/// Create the container's cgroup. Rootless, as runc: without a delegated cgroup the container
/// runs in the caller's (`cgroup` becomes empty), unless config.json asks for limits only a
/// cgroup can enforce.
fn make_cgroup(
    cgroup: &mut Cgroup,
    resources: Option<&oci_spec::runtime::LinuxResources>,
) -> Result<(), ContainerError> {
    match cgroup.create() {
        Err(cgroups::CgroupError::Create { path, source })
            if !nix::unistd::geteuid().is_root()
                && source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            let _ = cgroup.remove();
            if let Some(what) = resources.and_then(cgroups::limits_named) {
                return Err(ContainerError::Preflight(format!(
                    "linux.resources.{what}: rootless, and the cgroup {} cannot be created ({source}); delegate a cgroup to this user or drop the limit",
                    path.display()
                )));
            }
            crate::log::warn(&format!(
                "rootless: cannot create the cgroup {} ({source}); the container stays in the caller's cgroup and has no resource limits",
                path.display()
            ));
            *cgroup = Cgroup { dirs: Vec::new() };
            Ok(())
        }
        other => Ok(other?),
    }
}

/// config.json's annotations with contain's: what each layer enforces, as `state` shows it.
fn annotations(
    spec: &oci_spec::runtime::Spec,
    applied: &policy::Applied,
    chosen_by: policy::ChosenBy,
    prepared: &Prepared,
    userns_text: String,
) -> HashMap<String, String> {
    let mut annotations: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();
    let seccomp_text = if let Some(vm) = &prepared.microvm {
        vm.seccomp_text()
    } else if prepared.filters.is_empty() {
        "none: config.json has no linux.seccomp and the policy adds none".to_string()
    } else {
        prepared
            .filters
            .iter()
            .map(|f| {
                format!(
                    "{} ({} instructions)",
                    f.source.describe(),
                    f.compiled.program.len()
                )
            })
            .collect::<Vec<_>>()
            .join(" + ")
    };
    for (k, v) in [
        (policy::ANNOTATION, applied.policy.clone()),
        ("io.contain.policy.chosen-by", chosen_by.to_string()),
        ("io.contain.seccomp", seccomp_text),
        ("io.contain.landlock", prepared.landlock.describe()),
        ("io.contain.userns", userns_text),
        ("io.contain.binds", applied.binds.clone()),
        (
            "io.contain.limits",
            if applied.added_limits.is_empty() {
                "config.json's (the policy added none)".to_string()
            } else {
                format!("added by the policy: {}", applied.added_limits.join(", "))
            },
        ),
        (
            policy::ISOLATION_ANNOTATION,
            prepared
                .microvm
                .as_ref()
                .map_or_else(|| "container".to_string(), |vm| vm.describe()),
        ),
    ] {
        annotations.insert(k.to_string(), v);
    }
    annotations
}

/// `--pid-file` and `--pidfd-socket`: the init's pid, and a pidfd of it.
fn publish_pid(opts: &CreateOpts, pid: i32) -> Result<(), ContainerError> {
    if let Some(p) = &opts.pid_file {
        write_atomic(p, format!("{pid}").as_bytes())?;
    }
    if let Some(p) = &opts.pidfd_socket {
        let sock = connect(p, "connect to pidfd socket")?;
        let pidfd = proc::pidfd_open(pid).map_err(io_err("pidfd_open", format!("/proc/{pid}")))?;
        send_fd(sock.as_fd(), pidfd.as_raw_fd(), b"pidfd").map_err(io_err("send pidfd to", p))?;
    }
    Ok(())
}

/// What the container's init is given: the namespaces to make and join, the cgroup, the
/// layers prepared, the user namespace's origin.
fn init_args<'a>(
    opts: &'a CreateOpts,
    bundle: &'a Bundle,
    cgroup: &'a Cgroup,
    applied: &policy::Applied,
    prepared: &'a Prepared,
    console: Option<OwnedFd>,
    fifo: OwnedFd,
) -> Result<InitArgs<'a>, ContainerError> {
    let spec = &bundle.spec;
    let mount_userns = mount_user_namespaces(spec)?;
    Ok(InitArgs {
        id: &opts.id,
        bundle,
        ns: NsPlan::from_spec(spec),
        cgroup: (!cgroup.dirs.is_empty()).then_some(cgroup),
        caps: prepared.caps.clone(),
        idmap: matches!(
            applied.userns,
            policy::UserNs::Added(_) | policy::UserNs::Pod(_)
        ),
        pod_userns: match &applied.userns {
            policy::UserNs::Pod(p) => Some(p.userns_id),
            _ => None,
        },
        join_first: match &applied.userns {
            policy::UserNs::Config => super::pod::joined_before_userns(spec)?,
            _ => applied.joined_first.clone(),
        },
        mount_userns,
        idmap_binds: applied.idmap_binds,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        console,
        fifo,
        seccomp: prepared.filters.iter().map(|f| &f.compiled).collect(),
        landlock: Some(&prepared.landlock),
        microvm: prepared.microvm.as_ref(),
    })
}

/// The state of the container being created (its init's pid comes later).
fn initial_state(
    opts: &CreateOpts,
    bundle: &Bundle,
    cgroup: &Cgroup,
    prepared: &Prepared,
    unit: Option<&systemd::Unit>,
    annotations: HashMap<String, String>,
) -> State {
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    State {
        id: opts.id.clone(),
        oci_version: spec.version().clone(),
        pid: 0,
        start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        owner: owner(),
        annotations,
        cgroup: cgroup.dirs.clone(),
        hooks: spec.hooks().clone(),
        process: spec.process().clone(),
        namespaces: linux
            .and_then(|l| l.namespaces().as_ref())
            .map(|n| n.iter().map(|n| n.typ()).collect())
            .unwrap_or_default(),
        seccomp: prepared.filters.iter().map(|f| f.profile.clone()).collect(),
        landlock: Some(prepared.landlock.clone()),
        systemd_unit: unit.map(|u| u.name.clone()),
    }
}

/// Fork the container's init, running the prestart and createRuntime hooks when its
/// namespaces exist and handing a seccomp listener to its agent.
fn spawn_init(
    args: &InitArgs<'_>,
    state: &State,
    prepared: &Prepared,
) -> Result<i32, ContainerError> {
    let spec = &args.bundle.spec;
    let mut run_hooks = |pid: i32| -> Result<String, ProcessError> {
        let mut s = state.clone();
        s.pid = pid;
        let json = hook_state(&s, "creating");
        if let Some(h) = spec.hooks() {
            hooks::run_all(
                "prestart",
                h.prestart().as_deref().unwrap_or_default(),
                &json,
            )
            .map_err(ProcessError::Hook)?;
            hooks::run_all(
                "createRuntime",
                h.create_runtime().as_deref().unwrap_or_default(),
                &json,
            )
            .map_err(ProcessError::Hook)?;
        }
        Ok(json)
    };
    let mut on_listener = |pid: i32, fd: OwnedFd| -> Result<(), ProcessError> {
        let mut s = state.clone();
        s.pid = pid;
        let profile = prepared
            .filters
            .iter()
            .find(|f| f.compiled.notify)
            .map(|f| &f.profile)
            .ok_or("a listener from a filter that does not notify")?;
        send_listener(profile, &fd, pid, &hook_state(&s, "creating")).map_err(ProcessError::Hook)
    };
    Ok(process::spawn(args, &mut run_hooks, &mut on_listener)?)
}

/// Hand a seccomp listener to the agent at the profile's listenerPath.
pub(super) fn send_listener(
    profile: &seccomp::Profile,
    fd: &OwnedFd,
    pid: i32,
    state_json: &str,
) -> Result<(), String> {
    let path = profile
        .listener_path
        .as_deref()
        .ok_or("SCMP_ACT_NOTIFY without listenerPath")?;
    seccomp::send_listener(
        path,
        fd,
        pid,
        profile.listener_metadata.as_deref(),
        state_json,
    )
    .map_err(|e| {
        format!(
            "{NO_AGENT}: send the seccomp listener to {}: {e}",
            path.display()
        )
    })
}

fn owner() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}
