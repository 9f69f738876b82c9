//! unified: cgroup v2 files written as given; a file this kernel does not have is refused,
//! not created.

use oci_spec::runtime::LinuxResources;

use super::{hierarchies_of, offered, unsupported, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy, Version};

pub struct Unified;

/// cgroup v2 files `linux.resources.unified` may set: a controller's own files, and of the
/// core files only the two limits (cgroup.procs and friends would move processes or change
/// the tree's shape).
fn key_ok(hierarchies: &[Hierarchy], key: &str) -> Result<(), CgroupError> {
    let field = format!("unified.{key}");
    let Some((prefix, _)) = key.split_once('.') else {
        return Err(unsupported(&field, "not a cgroup v2 interface file name"));
    };
    if key.contains('/') || key.contains('\0') || prefix.is_empty() {
        return Err(unsupported(&field, "not a cgroup v2 interface file name"));
    }
    if prefix == "cgroup" {
        if !["cgroup.max.depth", "cgroup.max.descendants"].contains(&key) {
            return Err(unsupported(
                &field,
                "of the core files only cgroup.max.depth and cgroup.max.descendants can be set",
            ));
        }
        return Ok(());
    }
    let v2_has = hierarchies
        .iter()
        .any(|h| h.version == Version::V2 && h.controllers.iter().any(|c| c == prefix));
    if !v2_has {
        return Err(unsupported(
            &field,
            format_args!(
                "the {prefix} controller is not in this host's cgroup2 tree ({})",
                offered(hierarchies)
            ),
        ));
    }
    Ok(())
}

impl Controller for Unified {
    fn field(&self) -> &'static str {
        "unified"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.unified().as_ref().is_some_and(|u| !u.is_empty())
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        if !hierarchies.iter().any(|h| h.version == Version::V2) {
            return Err(unsupported(
                "unified",
                format_args!("this host has no cgroup2 tree ({})", offered(hierarchies)),
            ));
        }
        u.keys().try_for_each(|k| key_ok(hierarchies, k))
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        let hierarchies = hierarchies_of(cg);
        let dir = cg
            .v2_dir()
            .ok_or_else(|| unsupported("unified", "this container has no cgroup2 directory"))?;
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in keys {
            key_ok(&hierarchies, k)?;
            if !dir.join(k).is_file() {
                return Err(unsupported(
                    &format!("unified.{k}"),
                    "this kernel has no such cgroup v2 file",
                ));
            }
            write(dir, k, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::cgroups::Version;
    use serde_json::json;

    #[test]
    fn files_the_kernel_has() {
        let (_t, cg) = fake(Version::V2, &["memory", "hugetlb"]);
        std::fs::write(cg.dirs[0].1.join("hugetlb.2MB.max"), "max").unwrap();
        applies(
            &cg,
            json!({"unified": {"hugetlb.2MB.max": "0"}}),
            &[("hugetlb.2MB.max", "0")],
        );
        // A file this kernel does not have is refused, not created.
        let r = res(json!({"unified": {"memory.nosuch": "1"}}));
        let e = super::super::apply(&cg, &r).unwrap_err().to_string();
        assert!(e.contains("unified.memory.nosuch"), "{e}");
        assert_eq!(file(&cg, "memory.nosuch"), "<absent>");
    }

    #[test]
    fn keys_refused() {
        let mem = hierarchy(Version::V2, &["memory", "cpu"]);
        for (v, needle) in [
            (
                json!({"unified": {"cgroup.procs": "1"}}),
                "only cgroup.max.depth",
            ),
            (
                json!({"unified": {"../memory.max": "1"}}),
                "not a cgroup v2 interface file",
            ),
            (
                json!({"unified": {"io.max": "1"}}),
                "the io controller is not in",
            ),
        ] {
            refused(&mem, v, needle);
        }
        let mut hybrid = hierarchy(Version::V1, &["memory"]);
        hybrid.extend(hierarchy(Version::V2, &["hugetlb"]));
        refused(
            &hybrid,
            json!({"unified": {"memory.max": "1"}}),
            "the memory controller is not in this host's cgroup2 tree",
        );
        crate::cgroups::check_supported(
            &res(json!({"unified": {"hugetlb.2MB.max": "0"}})),
            &hybrid,
        )
        .unwrap();
        refused(
            &hierarchy(Version::V1, &["memory"]),
            json!({"unified": {"memory.max": "1"}}),
            "this host has no cgroup2 tree",
        );
    }
}
