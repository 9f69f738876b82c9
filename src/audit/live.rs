//! `contain audit ID`: what the kernel actually applied to a running container's init, read
//! from /proc (status, uid_map, namespaces compared with the host's, mountinfo), reported
//! with the same catalogue as the config audit.

use std::path::{Path, PathBuf};

use super::{Findings, Report};

/// What was read about the init (kept apart from the reading, so that it can be tested).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub id: String,
    pub policy: String,
    /// /proc/<pid>/status.
    pub status: String,
    /// /proc/<pid>/uid_map.
    pub uid_map: String,
    /// Namespaces (ns file name) the init shares with the host's pid 1.
    pub shared_ns: Vec<String>,
    /// Whether the init's root mount is read-only.
    pub root_readonly: bool,
    /// The io.contain.landlock annotation.
    pub landlock: String,
    /// The io.contain.seccomp annotation.
    pub seccomp: String,
    /// The container's status ("created": the init waits for start, before its filter).
    pub state: String,
    /// The io.contain.isolation annotation ("microvm: ..." when the init is a VMM).
    pub isolation: String,
}

const NS: [&str; 7] = ["user", "pid", "net", "ipc", "uts", "mnt", "cgroup"];

/// Read what the kernel shows about `pid` (the container's init).
pub fn observe(
    id: &str,
    pid: i64,
    state: &str,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Observed, String> {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{f}"))
            .map_err(|e| format!("/proc/{pid}/{f}: {e}"))
    };
    let link = |p: PathBuf| std::fs::read_link(p).ok();
    let shared_ns = NS
        .iter()
        .filter(|n| {
            let mine = link(Path::new(&format!("/proc/{pid}/ns/{n}")).to_path_buf());
            mine.is_some() && mine == link(Path::new(&format!("/proc/1/ns/{n}")).to_path_buf())
        })
        .map(|n| n.to_string())
        .collect();
    let root_readonly = read("mountinfo")?
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(5))
        .is_some_and(|opts| opts.split(',').any(|o| o == "ro"));
    let ann = |k: &str| annotations.get(k).cloned().unwrap_or_default();
    Ok(Observed {
        id: id.into(),
        policy: ann("io.contain.policy"),
        status: read("status")?,
        uid_map: read("uid_map")?,
        shared_ns,
        root_readonly,
        landlock: ann("io.contain.landlock"),
        seccomp: ann("io.contain.seccomp"),
        state: state.into(),
        isolation: ann("io.contain.isolation"),
    })
}

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn cap_names(hex: &str) -> Vec<String> {
    let bits = u64::from_str_radix(hex, 16).unwrap_or(0);
    (0..64u8)
        .filter(|i| bits & (1u64 << i) != 0)
        .map(|i| {
            caps::all()
                .into_iter()
                .find(|c| c.index() == i)
                .map_or_else(|| format!("CAP_{i}"), |c| c.to_string())
        })
        .collect()
}

/// The report for what was observed.
pub fn report(o: &Observed) -> Report {
    let mut f = Findings(Vec::new());
    let maps_root = o.uid_map.lines().any(|l| {
        let v: Vec<&str> = l.split_whitespace().collect();
        v.len() == 3 && v[0] == "0" && v[1] == "0"
    });
    if maps_root || o.shared_ns.iter().any(|n| n == "user") {
        f.add(
            "CA-USERNS-001",
            format!(
                "observed: uid_map {:?}",
                o.uid_map.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        );
    }
    let bnd = cap_names(field(&o.status, "CapBnd").unwrap_or("0"));
    f.capabilities(&bnd, "observed in CapBnd:");
    let shares = |names: [&'static str; 3]| -> Vec<&'static str> {
        names
            .into_iter()
            .filter(|n| o.shared_ns.iter().any(|s| s == n))
            .collect()
    };
    for (id, names) in [
        ("CA-NS-001", ["pid", "net", "ipc"]),
        ("CA-NS-002", ["uts", "mnt", "cgroup"]),
    ] {
        let shared = shares(names);
        if !shared.is_empty() {
            f.add(
                id,
                format!("observed: shares the host's {}", shared.join(", ")),
            );
        }
    }
    // A created container's init installs its filter only when it is started.
    let pending = o.state == "created" && !o.seccomp.is_empty() && !o.seccomp.starts_with("none");
    if field(&o.status, "Seccomp") == Some("0") && !pending {
        f.add("CA-SECCOMP-001", "observed: Seccomp 0 (no filter)".into());
    }
    if o.landlock.is_empty() || o.landlock.starts_with("off") {
        f.add(
            "CA-LANDLOCK-001",
            format!("recorded at create: {:?}", o.landlock),
        );
    }
    if field(&o.status, "NoNewPrivs") == Some("0") {
        f.add("CA-PRIV-001", "observed: NoNewPrivs 0".into());
    }
    let uid = field(&o.status, "Uid")
        .and_then(|u| u.split_whitespace().nth(1))
        .unwrap_or("");
    let inside_root = o.uid_map.lines().any(|l| {
        let v: Vec<&str> = l.split_whitespace().collect();
        v.len() == 3 && v[0] == "0" && v[1] == uid
    });
    if inside_root {
        f.add(
            "CA-PRIV-002",
            format!("observed: effective uid 0 in the container (host uid {uid})"),
        );
    }
    if !o.root_readonly {
        f.add("CA-ROOTFS-001", "observed: / is mounted read-write".into());
    }
    let mut enforced = vec![
        super::Enforced {
            layer: "seccomp",
            what: if pending {
                format!("installed at start: {}", o.seccomp)
            } else {
                format!("Seccomp {}", field(&o.status, "Seccomp").unwrap_or("?"))
            },
        },
        super::Enforced {
            layer: "landlock",
            what: o.landlock.clone(),
        },
    ];
    if o.isolation.starts_with("microvm") {
        enforced.push(super::Enforced {
            layer: "isolation",
            what: format!("{}; the init observed is the VMM", o.isolation),
        });
    }
    f.report(
        PathBuf::from(format!("container {}", o.id)),
        o.policy.clone(),
        None,
        enforced,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_weaknesses_become_findings() {
        let o = Observed {
            id: "c".into(),
            policy: "runc".into(),
            status: "Uid:\t0\t0\t0\t0\nCapBnd:\t00000000a88425fb\nNoNewPrivs:\t0\nSeccomp:\t0\n"
                .into(),
            uid_map: "         0          0 4294967295\n".into(),
            shared_ns: vec!["user".into(), "net".into(), "uts".into()],
            root_readonly: false,
            landlock: "off".into(),
            seccomp: "none".into(),
            state: "running".into(),
            isolation: "container".into(),
        };
        let ids: Vec<&str> = report(&o).findings.iter().map(|f| f.id).collect();
        for want in [
            "CA-USERNS-001",
            "CA-CAP-002",
            "CA-NS-001",
            "CA-NS-002",
            "CA-SECCOMP-001",
            "CA-LANDLOCK-001",
            "CA-PRIV-001",
            "CA-PRIV-002",
            "CA-ROOTFS-001",
        ] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
        // Docker's default set (0xa80425fb) plus CAP_SYS_NICE: nothing root-like.
        assert!(!ids.contains(&"CA-CAP-001"));
        let held = Observed {
            status: "Uid:\t1073741824\t1073741824\t1073741824\t1073741824\nCapBnd:\t0000000000200000\nNoNewPrivs:\t1\nSeccomp:\t2\n".into(),
            uid_map: "0 1073741824 65536\n".into(),
            shared_ns: vec![],
            root_readonly: true,
            landlock: "ABI 7; mounts: fs 16 rights on 13 paths".into(),
            ..o
        };
        let ids: Vec<&str> = report(&held).findings.iter().map(|f| f.id).collect();
        assert_eq!(ids, ["CA-CAP-001", "CA-PRIV-002"]);
    }
}
