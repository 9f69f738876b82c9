//! `linux.resources` -> cgroup files, one controller per file behind [`Controller`]. Every
//! field contain cannot enforce on this host is refused ([`check_supported`]) before anything
//! is created, never ignored.

mod blkio;
mod cpu;
mod cpuset;
mod devices;
mod hugetlb;
mod memory;
mod network;
mod pids;
mod rdma;
mod unified;

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{Cgroup, CgroupError, Hierarchy, Version};

pub use cpuset::inherit as cpuset_inherit;
pub use devices::rules as device_rules;

/// One controller's part of `linux.resources`.
trait Controller: Sync {
    /// The field of `linux.resources` it enforces, as errors and [`limits_named`] name it.
    fn field(&self) -> &'static str;
    /// Whether config.json names the field (set or empty).
    fn named(&self, res: &LinuxResources) -> bool;
    /// Whether its limits need a cgroup of the container's own (the device list does not:
    /// without a cgroup the caller's applies).
    fn needs_own_cgroup(&self) -> bool {
        true
    }
    /// Refuse what this host or this cgroup version cannot enforce (pure).
    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError>;
    /// Write the limits into the container's cgroup.
    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError>;
}

/// Every controller, in the order they are checked and applied (runc's: `unified` after the
/// others, which it may refine; devices last).
const CONTROLLERS: &[&dyn Controller] = &[
    &memory::Memory,
    &cpu::Cpu,
    &cpuset::Cpuset,
    &pids::Pids,
    &blkio::BlockIo,
    &hugetlb::Hugetlb,
    &network::Network,
    &rdma::Rdma,
    &unified::Unified,
    &devices::Devices,
];

/// Refuse the parts of `res` this host or this version cannot enforce (pure).
pub fn check_supported(res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
    CONTROLLERS
        .iter()
        .try_for_each(|c| c.check(res, hierarchies))
}

/// Apply `res` to the container's cgroup.
pub fn apply(cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
    CONTROLLERS.iter().try_for_each(|c| c.apply(cg, res))
}

/// The first limit of `res` that needs a cgroup of the container's own (a rootless container
/// cannot make device nodes anyway). None when there is none.
pub fn limits_named(res: &LinuxResources) -> Option<&'static str> {
    CONTROLLERS
        .iter()
        .find(|c| c.needs_own_cgroup() && c.named(res))
        .map(|c| c.field())
}

/// Where `controller` is on this host: a v1 hierarchy first (as [`Cgroup::dir_for`] picks),
/// then the cgroup2 tree.
fn controller_version(hierarchies: &[Hierarchy], controller: &str) -> Option<Version> {
    let on = |v: Version| {
        hierarchies
            .iter()
            .any(|h| h.version == v && h.controllers.iter().any(|c| c == controller))
    };
    [Version::V1, Version::V2].into_iter().find(|&v| on(v))
}

/// The controllers this host offers, for error messages ("v1: cpu, memory; cgroup2: hugetlb").
fn offered(hierarchies: &[Hierarchy]) -> String {
    let list = |v: Version| {
        let mut c: Vec<&str> = hierarchies
            .iter()
            .filter(|h| h.version == v)
            .flat_map(|h| h.controllers.iter().map(String::as_str))
            .filter(|c| !c.starts_with("name="))
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let mut parts = Vec::new();
    for (v, name) in [(Version::V1, "v1"), (Version::V2, "cgroup2")] {
        if hierarchies.iter().any(|h| h.version == v) {
            let c = list(v);
            parts.push(format!(
                "{name}: {}",
                if c.is_empty() {
                    "none".to_string()
                } else {
                    c.join(", ")
                }
            ));
        }
    }
    parts.join("; ")
}

fn unsupported(field: &str, why: impl std::fmt::Display) -> CgroupError {
    CgroupError::Unsupported(format!("{field}: {why}"))
}

/// The controller `field` needs, or a refusal naming what this host offers instead.
fn need(hierarchies: &[Hierarchy], field: &str, controller: &str) -> Result<Version, CgroupError> {
    controller_version(hierarchies, controller).ok_or_else(|| {
        unsupported(
            field,
            format_args!(
                "this host has no {controller} controller to enforce it ({})",
                offered(hierarchies)
            ),
        )
    })
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    std::fs::write(dir.join(file), value).map_err(|source| CgroupError::Write {
        path: dir.to_path_buf(),
        file: format!("{file}={value}"),
        source,
    })
}

/// The hierarchies of the container's cgroup.
fn hierarchies_of(cg: &Cgroup) -> Vec<Hierarchy> {
    cg.dirs.iter().map(|(h, _)| h.clone()).collect()
}

/// The directory of the hierarchy that holds `controller`, with its version.
fn dir_of<'a>(
    cg: &'a Cgroup,
    field: &str,
    controller: &str,
) -> Result<(Version, &'a Path), CgroupError> {
    cg.dir_for(controller)
        .map(|(h, d)| (h.version, d))
        .ok_or_else(|| {
            unsupported(
                field,
                format_args!(
                    "this container's cgroup has no {controller} controller ({})",
                    offered(&hierarchies_of(cg))
                ),
            )
        })
}

/// -1 (and, for v2, any negative value) is "no limit".
fn limit_text(v: i64, version: Version) -> String {
    if v < 0 && version == Version::V2 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// A container cgroup in a temporary tree (one hierarchy), for the controllers' tests.
#[cfg(test)]
mod testing {
    use super::*;

    pub fn fake(version: Version, controllers: &[&str]) -> (tempfile::TempDir, Cgroup) {
        let t = tempfile::tempdir().unwrap();
        let h = Hierarchy {
            version,
            mount: t.path().into(),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        };
        let dir = t.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        (
            t,
            Cgroup {
                dirs: vec![(h, dir)],
            },
        )
    }

    pub fn hierarchy(version: Version, controllers: &[&str]) -> Vec<Hierarchy> {
        vec![Hierarchy {
            version,
            mount: "/sys/fs/cgroup".into(),
            controllers: controllers.iter().map(|s| s.to_string()).collect(),
        }]
    }

    pub fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    pub fn file(cg: &Cgroup, name: &str) -> String {
        std::fs::read_to_string(cg.dirs[0].1.join(name)).unwrap_or_else(|_| "<absent>".into())
    }

    /// Check then apply `v` to `cg`, and compare the files written.
    pub fn applies(cg: &Cgroup, v: serde_json::Value, want: &[(&str, &str)]) {
        let r = res(v);
        check_supported(&r, &hierarchies_of(cg)).unwrap();
        apply(cg, &r).unwrap();
        for (f, w) in want {
            assert_eq!(file(cg, f), *w, "{f}");
        }
    }

    /// `v` is refused on `hs` with an error containing `needle`.
    pub fn refused(hs: &[Hierarchy], v: serde_json::Value, needle: &str) {
        let e = check_supported(&res(v.clone()), hs)
            .expect_err(&v.to_string())
            .to_string();
        assert!(e.contains(needle), "{v}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_name_what_the_host_offers() {
        // This host's shape: memory on v1 (so the v1-only knobs are fine), hugetlb on v2.
        let mut hybrid = hierarchy(Version::V1, &["memory"]);
        hybrid.extend(hierarchy(Version::V2, &["hugetlb"]));
        check_supported(
            &res(json!({"memory": {"kernelTCP": 1, "swappiness": 5}})),
            &hybrid,
        )
        .unwrap();
        refused(
            &hybrid,
            json!({"cpu": {"quota": 1000}}),
            "(v1: memory; cgroup2: hugetlb)",
        );
        refused(
            &hierarchy(Version::V2, &["memory", "cpu"]),
            json!({"pids": {"limit": 1}}),
            "no pids controller to enforce it (cgroup2: cpu, memory)",
        );
    }

    #[test]
    fn limits_that_need_a_cgroup_of_its_own() {
        assert_eq!(limits_named(&res(json!({}))), None);
        assert_eq!(
            limits_named(&res(json!({"devices": [{"allow": false}]}))),
            None
        );
        assert_eq!(limits_named(&res(json!({"cpu": {}}))), Some("cpu"));
        assert_eq!(
            limits_named(&res(json!({"pids": {"limit": 1}, "memory": {}}))),
            Some("memory")
        );
        assert_eq!(
            limits_named(&res(json!({"unified": {"a.b": "1"}}))),
            Some("unified")
        );
        assert_eq!(limits_named(&res(json!({"unified": {}}))), None);
    }
}
