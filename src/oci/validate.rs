//! Complete validation of a config, with no I/O: every error names the field at fault.

use std::collections::HashSet;
use std::path::{Component, Path};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{invalid, ConfigError};

/// Container ids: runc's rule (letters, digits, `_`, `+`, `-`, `.`), not `.` or `..`, at most
/// 255 bytes (it names a directory under the state root and a cgroup: a longer name fails in
/// the kernel with ENAMETOOLONG). This is a security check.
pub fn validate_id(id: &str) -> Result<(), ConfigError> {
    let bad = |reason| ConfigError::BadId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id.len() > 255 {
        return Err(bad(
            "it is longer than 255 bytes (it names a directory and a cgroup)",
        ));
    }
    if id == "." || id == ".." {
        return Err(bad("it is a path component"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return Err(bad(
            "only letters, digits, '_', '+', '-' and '.' are allowed",
        ));
    }
    Ok(())
}

/// Whether a path climbs above its starting point with `..` (lexically).
pub fn escapes(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for c in path.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

fn check_in_container_path(field: &str, path: &Path) -> Result<(), ConfigError> {
    if !path.is_absolute() {
        return Err(invalid(
            field,
            format!("{:?} is not an absolute path", path),
        ));
    }
    if escapes(path) {
        return Err(invalid(
            field,
            format!("{:?} leaves the container's root filesystem", path),
        ));
    }
    Ok(())
}

/// Which sysctls are namespaced, and the namespace each needs.
pub fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Validate everything in `spec` that can be checked without touching the system.
pub fn validate(spec: &Spec) -> Result<(), ConfigError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("{:?} is not a 1.x runtime-spec version", spec.version()),
        ));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "empty"));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing: contain runs Linux containers only"))?;

    let (new_ns, all_ns) = namespaces(linux)?;
    id_mappings(linux, &new_ns, &all_ns)?;
    needs_new_namespaces(spec, linux, &new_ns, &all_ns)?;
    sysctls(linux, &all_ns)?;
    linux_fields(spec, linux)?;
    process(spec)?;
    mounts(spec)?;
    hooks(spec)
}

/// Namespaces: known, unique, joined by absolute path. Returns the types made new and all
/// types listed.
fn namespaces(
    linux: &oci_spec::runtime::Linux,
) -> Result<(HashSet<LinuxNamespaceType>, HashSet<LinuxNamespaceType>), ConfigError> {
    let mut new_ns = HashSet::new();
    let mut all_ns = HashSet::new();
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        if !all_ns.insert(ns.typ()) {
            return Err(invalid(
                "linux.namespaces",
                format!("namespace {:?} is listed twice", ns.typ()),
            ));
        }
        match ns.path() {
            Some(p) if !p.is_absolute() => {
                return Err(invalid(
                    "linux.namespaces",
                    format!(
                        "path {:?} of the {:?} namespace is not absolute",
                        p,
                        ns.typ()
                    ),
                ))
            }
            Some(_) => {}
            None => {
                new_ns.insert(ns.typ());
            }
        }
    }
    Ok((new_ns, all_ns))
}

/// A new user namespace's mappings: both given, bounded, within 32 bits; none without one.
fn id_mappings(
    linux: &oci_spec::runtime::Linux,
    new_ns: &HashSet<LinuxNamespaceType>,
    all_ns: &HashSet<LinuxNamespaceType>,
) -> Result<(), ConfigError> {
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_ns.contains(&LinuxNamespaceType::User) {
        let uid = linux.uid_mappings().as_deref().unwrap_or_default();
        let gid = linux.gid_mappings().as_deref().unwrap_or_default();
        if uid.is_empty() || gid.is_empty() {
            return Err(invalid(
                "linux.uidMappings",
                "a new user namespace needs both uidMappings and gidMappings",
            ));
        }
        for (field, maps) in [("linux.uidMappings", uid), ("linux.gidMappings", gid)] {
            if maps.len() > 340 {
                return Err(invalid(field, "more than 340 ranges"));
            }
            for m in maps {
                if m.size() == 0 {
                    return Err(invalid(field, "a mapping of size 0"));
                }
                if u64::from(m.container_id()) + u64::from(m.size()) > 1 << 32
                    || u64::from(m.host_id()) + u64::from(m.size()) > 1 << 32
                {
                    return Err(invalid(field, "a mapping past the 32-bit id range"));
                }
            }
        }
    } else if has_maps && !all_ns.contains(&LinuxNamespaceType::User) {
        return Err(invalid(
            "linux.uidMappings",
            "id mappings are given but there is no user namespace",
        ));
    }
    Ok(())
}

/// Time offsets need a new time namespace; hostname and domain name a uts namespace.
fn needs_new_namespaces(
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
    new_ns: &HashSet<LinuxNamespaceType>,
    all_ns: &HashSet<LinuxNamespaceType>,
) -> Result<(), ConfigError> {
    if linux.time_offsets().is_some() && !new_ns.contains(&LinuxNamespaceType::Time) {
        return Err(invalid("linux.timeOffsets", "needs a new time namespace"));
    }
    for (clock, _) in linux.time_offsets().iter().flatten() {
        if clock != "monotonic" && clock != "boottime" {
            return Err(invalid(
                "linux.timeOffsets",
                format!("unknown clock {clock:?} (monotonic or boottime)"),
            ));
        }
    }

    // As runc: a uts namespace of the container's own, new or joined by path (the names are
    // then set in the joined one), never the runtime's.
    if let Some(field) = uts_name_set(spec).filter(|_| !all_ns.contains(&LinuxNamespaceType::Uts)) {
        return Err(invalid(
            field,
            "setting it needs a uts namespace (new, or joined by path)",
        ));
    }

    Ok(())
}

/// The first of config.json's `hostname` and `domainname` that sets a name (the fields a uts
/// namespace holds), if any.
pub fn uts_name_set(spec: &Spec) -> Option<&'static str> {
    [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ]
    .into_iter()
    .find(|(_, name)| name.as_ref().is_some_and(|n| !n.is_empty()))
    .map(|(field, _)| field)
}

/// Only namespaced sysctls, of namespaces the container has, with well-formed keys.
fn sysctls(
    linux: &oci_spec::runtime::Linux,
    all_ns: &HashSet<LinuxNamespaceType>,
) -> Result<(), ConfigError> {
    for (key, _) in linux.sysctl().iter().flatten() {
        let field = format!("linux.sysctl.{key}");
        match sysctl_namespace(key) {
            None => {
                return Err(invalid(
                    field,
                    "not a namespaced sysctl: setting it would change the host",
                ))
            }
            Some(ns) if !all_ns.contains(&ns) => {
                return Err(invalid(
                    field,
                    format!("needs the container's own {ns:?} namespace, but it shares the host's"),
                ))
            }
            Some(_) => {}
        }
        if key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
            return Err(invalid(field, "malformed key"));
        }
    }

    Ok(())
}

/// The rest of `linux`: propagation, cgroupsPath, paths inside the container, personality,
/// memory policy, and what contain refuses rather than ignores.
fn linux_fields(spec: &Spec, linux: &oci_spec::runtime::Linux) -> Result<(), ConfigError> {
    if let Some(p) = linux.rootfs_propagation() {
        if ![
            "",
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        ]
        .contains(&p.as_str())
        {
            return Err(invalid(
                "linux.rootfsPropagation",
                format!("unknown value {p:?}"),
            ));
        }
    }
    if let Some(cg) = linux.cgroups_path() {
        if escapes(cg) || cg.components().any(|c| c == Component::ParentDir) {
            return Err(invalid(
                "linux.cgroupsPath",
                format!("{:?} must not contain '..'", cg),
            ));
        }
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for p in paths.iter().flatten() {
            check_in_container_path(field, Path::new(p))?;
        }
    }
    for d in linux.devices().iter().flatten() {
        check_in_container_path("linux.devices", d.path())?;
    }
    if let Some(flags) = linux
        .personality()
        .as_ref()
        .and_then(|p| p.flags().as_ref())
    {
        if !flags.is_empty() {
            return Err(invalid(
                "linux.personality.flags",
                format!("{flags:?}: no personality flags are supported (runc has none either); only the domain LINUX or LINUX32"),
            ));
        }
    }
    if let Some(mp) = linux.memory_policy() {
        memory_policy(mp).map_err(|e| invalid("linux.memoryPolicy", e))?;
    }
    // Parts of the spec this runtime does not enforce yet: refuse rather than ignore.
    let unsupported = [
        ("linux.intelRdt", linux.intel_rdt().is_some()),
        ("linux.netDevices", linux.net_devices().is_some()),
        ("vm", spec.vm().is_some()),
        (
            "linux.mountLabel",
            linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()),
        ),
    ];
    for (field, present) in unsupported {
        if present {
            return Err(invalid(
                field,
                "not supported by this version of contain; refusing to run without it",
            ));
        }
    }

    Ok(())
}

/// The process: something to run, a cwd inside, rlimits once each and soft <= hard, env as
/// NAME=value, and nothing contain cannot enforce.
fn process(spec: &Spec) -> Result<(), ConfigError> {
    if let Some(process) = spec.process() {
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(invalid("process.args", "empty: nothing to run"));
        }
        check_in_container_path("process.cwd", process.cwd())?;
        let mut seen = HashSet::new();
        for r in process.rlimits().iter().flatten() {
            if !seen.insert(format!("{:?}", r.typ())) {
                return Err(invalid(
                    "process.rlimits",
                    format!("{:?} is listed twice", r.typ()),
                ));
            }
            if r.soft() > r.hard() {
                return Err(invalid(
                    "process.rlimits",
                    format!(
                        "{:?}: soft limit {} is above hard limit {}",
                        r.typ(),
                        r.soft(),
                        r.hard()
                    ),
                ));
            }
        }
        for e in process.env().iter().flatten() {
            if !e.contains('=') || e.contains('\0') {
                return Err(invalid("process.env", format!("{e:?} is not NAME=value")));
            }
        }
        let unsupported = [
            (
                "process.apparmorProfile",
                process
                    .apparmor_profile()
                    .as_ref()
                    .is_some_and(|p| !p.is_empty()),
            ),
            (
                "process.selinuxLabel",
                process
                    .selinux_label()
                    .as_ref()
                    .is_some_and(|p| !p.is_empty()),
            ),
            ("process.ioPriority", process.io_priority().is_some()),
            ("process.scheduler", process.scheduler().is_some()),
            (
                "process.execCPUAffinity",
                process.exec_cpu_affinity().is_some(),
            ),
        ];
        for (field, present) in unsupported {
            if present {
                return Err(invalid(
                    field,
                    "not supported by this version of contain; refusing to run without it",
                ));
            }
        }
    } else {
        return Err(invalid("process", "missing"));
    }

    Ok(())
}

/// Mounts: destinations inside the container, proc mounts, options, idmaps.
fn mounts(spec: &Spec) -> Result<(), ConfigError> {
    for m in spec.mounts().iter().flatten() {
        check_in_container_path("mounts.destination", m.destination())?;
        check_proc_mount(m)?;
        let opts = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|reason| {
                invalid(
                    format!("mounts[{}].options", m.destination().display()),
                    reason,
                )
            })?;
        check_mount_idmap(m, &opts)?;
    }

    Ok(())
}

/// Hooks: absolute paths, positive timeouts.
fn hooks(spec: &Spec) -> Result<(), ConfigError> {
    if let Some(hooks) = spec.hooks() {
        let kinds = [
            ("hooks.prestart", hooks.prestart()),
            ("hooks.createRuntime", hooks.create_runtime()),
            ("hooks.createContainer", hooks.create_container()),
            ("hooks.startContainer", hooks.start_container()),
            ("hooks.poststart", hooks.poststart()),
            ("hooks.poststop", hooks.poststop()),
        ];
        for (field, list) in kinds {
            for h in list.iter().flatten() {
                if !h.path().is_absolute() {
                    return Err(invalid(
                        field,
                        format!("{:?} is not an absolute path", h.path()),
                    ));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(field, "timeout must be positive"));
                }
            }
        }
    }
    Ok(())
}

/// linux.memoryPolicy as set_mempolicy(2) takes it: the mode with its flags, and the node
/// mask words. DEFAULT and LOCAL take no nodes; BIND, INTERLEAVE, WEIGHTED_INTERLEAVE and
/// PREFERRED_MANY need some; PREFERRED without nodes means the local node (as runc reads the
/// spec). Pure; the kernel still refuses nodes that are not online.
pub fn memory_policy(mp: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<(i32, Vec<u64>), String> {
    use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let nodes = mp.nodes().as_deref().unwrap_or("").trim();
    let mut mask: Vec<u64> = Vec::new();
    if !nodes.is_empty() {
        for part in nodes.split(',') {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let parse = |x: &str| {
                x.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n < 1024)
                    .ok_or_else(|| {
                        format!(
                            "nodes {nodes:?}: {part:?} is not a node number or range below 1024"
                        )
                    })
            };
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(format!(
                    "nodes {nodes:?}: the range {part:?} runs backwards"
                ));
            }
            for n in a..=b {
                let w = (n / 64) as usize;
                if mask.len() <= w {
                    mask.resize(w + 1, 0);
                }
                mask[w] |= 1 << (n % 64);
            }
        }
    }
    let (mode, needs) = match mp.mode() {
        M::MpolDefault => (0, Some(false)),
        M::MpolPreferred => (1, None),
        M::MpolBind => (2, Some(true)),
        M::MpolInterleave => (3, Some(true)),
        M::MpolLocal => (4, Some(false)),
        M::MpolPreferredMany => (5, Some(true)),
        M::MpolWeightedInterleave => (6, Some(true)),
    };
    match needs {
        Some(true) if mask.is_empty() => {
            return Err(format!("mode {} needs nodes", mp.mode()));
        }
        Some(false) if !mask.is_empty() => {
            return Err(format!("mode {} takes no nodes", mp.mode()));
        }
        _ => {}
    }
    let mut flags = 0;
    for f in mp.flags().iter().flatten() {
        flags |= match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        };
    }
    Ok((mode | flags, mask))
}

/// Mounts below /proc that runc allows: files that LXCFS emulates.
const PROC_MOUNTS_ALLOWED: [&str; 10] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// `path` made absolute with `.` and `..` resolved lexically (never above `/`).
pub fn lexical(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Whether a mount may be made at `dest` (lexical, absolute) below /proc.
pub fn allowed_in_proc(dest: &Path) -> bool {
    PROC_MOUNTS_ALLOWED.iter().any(|a| dest == Path::new(a))
}

/// runc's rule for mounts at or below /proc: on /proc itself only a procfs (a `proc` mount,
/// or a bind of the host's /proc); below it only the files LXCFS emulates. A file mounted over a procfs
/// entry would also make a runtime that writes through the container's /proc write
/// elsewhere (CVE-2025-52881; contain writes through its own procfs handle regardless).
fn check_proc_mount(m: &oci_spec::runtime::Mount) -> Result<(), ConfigError> {
    let dest = lexical(m.destination());
    let field = || format!("mounts[{}]", m.destination().display());
    if dest == Path::new("/proc") {
        // Pure: a bind of the host's procfs is recognised by its path, not by statfs.
        let is_proc = m.typ().as_deref() == Some("proc")
            || m.source()
                .as_ref()
                .is_none_or(|s| s.as_os_str().is_empty() || lexical(s) == Path::new("/proc"));
        if !is_proc {
            return Err(invalid(field(), "only a procfs may be mounted on /proc"));
        }
    } else if dest.starts_with("/proc") && !allowed_in_proc(&dest) {
        return Err(invalid(
            field(),
            format!(
                "{} cannot be mounted because it is inside /proc (allowed there: {})",
                dest.display(),
                PROC_MOUNTS_ALLOWED.join(", ")
            ),
        ));
    }
    Ok(())
}

/// An idmapped mount (runtime spec 1.1): uidMappings and gidMappings come together, only with
/// the `idmap` or `ridmap` option, and only on a bind mount.
fn check_mount_idmap(
    m: &oci_spec::runtime::Mount,
    opts: &crate::rootfs::options::MountOptions,
) -> Result<(), ConfigError> {
    let field = || format!("mounts[{}]", m.destination().display());
    let maps = (m.uid_mappings().is_some(), m.gid_mappings().is_some());
    if maps.0 != maps.1 {
        return Err(invalid(
            field(),
            "uidMappings and gidMappings must be given together",
        ));
    }
    if maps.0 && opts.idmap.is_none() {
        return Err(invalid(
            field(),
            "uidMappings/gidMappings need the idmap or ridmap option",
        ));
    }
    let bind = opts.is_bind() || m.typ().as_deref() == Some("bind");
    if opts.idmap.is_some() && !bind {
        return Err(invalid(
            field(),
            "idmap/ridmap: only bind mounts can be idmapped",
        ));
    }
    for map in m.uid_mappings().iter().chain(m.gid_mappings()).flatten() {
        if map.size() == 0 {
            return Err(invalid(field(), "an id mapping of size 0"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<(), ConfigError> {
        let spec: Spec = serde_json::from_value(v).unwrap();
        validate(&spec)
    }

    fn err_of(v: serde_json::Value) -> String {
        check(v).unwrap_err().to_string()
    }

    #[test]
    fn accepts_minimal() {
        check(base()).unwrap();
    }

    #[test]
    fn ids() {
        validate_id("abc-1_2.3+x").unwrap();
        for bad in ["", ".", "..", "a/b", "a b", "../x", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_id(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn escapes_lexically() {
        assert!(escapes(Path::new("/../etc")));
        assert!(escapes(Path::new("/a/../../etc")));
        assert!(!escapes(Path::new("/a/../b")));
        assert!(!escapes(Path::new("/")));
    }

    #[test]
    fn refuses_escaping_cwd_and_mount() {
        let mut v = base();
        v["process"]["cwd"] = "/../../etc".into();
        assert!(err_of(v).contains("process.cwd"));
        let mut v = base();
        v["mounts"] = serde_json::json!([{"destination": "/x/../../../etc", "type": "tmpfs", "source": "tmpfs"}]);
        assert!(err_of(v).contains("leaves the container"));
    }

    #[test]
    fn memory_policies() {
        let mp = |v: serde_json::Value| memory_policy(&serde_json::from_value(v).unwrap());
        assert_eq!(
            mp(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0"})),
            Ok((2, vec![1]))
        );
        assert_eq!(
            mp(
                serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0-2,65", "flags": ["MPOL_F_STATIC_NODES"]})
            ),
            Ok((3 | 1 << 15, vec![0b111, 0b10]))
        );
        assert_eq!(
            mp(serde_json::json!({"mode": "MPOL_DEFAULT"})),
            Ok((0, vec![]))
        );
        assert_eq!(
            mp(serde_json::json!({"mode": "MPOL_PREFERRED"})),
            Ok((1, vec![]))
        );
        assert!(mp(serde_json::json!({"mode": "MPOL_BIND"}))
            .unwrap_err()
            .contains("needs nodes"));
        assert!(mp(serde_json::json!({"mode": "MPOL_LOCAL", "nodes": "0"}))
            .unwrap_err()
            .contains("takes no nodes"));
        for bad in ["x", "3-1", "5000", "0,,1"] {
            assert!(
                mp(serde_json::json!({"mode": "MPOL_BIND", "nodes": bad})).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn proc_mounts_as_runc() {
        let with = |m: serde_json::Value| {
            let mut v = base();
            v["mounts"] = serde_json::json!([m]);
            check(v)
        };
        assert!(with(
            serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"})
        )
        .is_ok());
        assert!(with(
            serde_json::json!({"destination": "/proc", "type": "bind", "source": "/proc"})
        )
        .is_ok());
        assert!(with(serde_json::json!({"destination": "/proc/meminfo", "type": "bind", "source": "/var/lib/lxcfs/proc/meminfo"})).is_ok());
        let e =
            with(serde_json::json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}))
                .unwrap_err();
        assert!(e.to_string().contains("only a procfs"), "{e}");
        for d in [
            "/proc/sys/kernel/core_pattern",
            "/proc/x/../sys/net/ipv4/ip_forward",
            "/proc/self/attr/exec",
        ] {
            let e = with(serde_json::json!({"destination": d, "type": "bind", "source": "/tmp"}))
                .unwrap_err();
            assert!(e.to_string().contains("inside /proc"), "{d}: {e}");
        }
        assert!(with(
            serde_json::json!({"destination": "/procfoo", "type": "tmpfs", "source": "tmpfs"})
        )
        .is_ok());
    }

    #[test]
    fn refuses_user_ns_without_maps() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "user"}]);
        assert!(err_of(v).contains("uidMappings"));
    }

    #[test]
    fn refuses_host_sysctl_and_dup_ns() {
        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"kernel.panic": "1"});
        assert!(err_of(v).contains("not a namespaced sysctl"));
        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        assert!(err_of(v).contains("Network"));
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "pid"}]);
        assert!(err_of(v).contains("twice"));
    }

    #[test]
    fn refuses_unenforced_features() {
        let mut v = base();
        v["process"]["apparmorProfile"] = "x".into();
        assert!(err_of(v).contains("apparmor"));
        let mut v = base();
        v["linux"]["personality"] = serde_json::json!({"domain": "LINUX32", "flags": ["x"]});
        assert!(err_of(v).contains("linux.personality.flags"));
    }

    #[test]
    fn refuses_bad_rlimits_and_hooks() {
        let mut v = base();
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert!(err_of(v).contains("soft limit"));
        let mut v = base();
        v["hooks"] = serde_json::json!({"poststop": [{"path": "relative"}]});
        assert!(err_of(v).contains("hooks.poststop"));
        let mut v = base();
        v["hostname"] = "h".into();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        assert!(err_of(v).contains("uts"));
    }
}
