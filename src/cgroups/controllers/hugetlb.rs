//! hugepageLimits: v1 hugetlb.<size>.limit_in_bytes, v2 hugetlb.<size>.max; a page size this
//! host does not have is refused.

use oci_spec::runtime::LinuxResources;

use super::{dir_of, need, unsupported, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy, Version};

pub struct Hugetlb;

impl Controller for Hugetlb {
    fn field(&self) -> &'static str {
        "hugepageLimits"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.hugepage_limits()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        if self.named(res) {
            need(hierarchies, "hugepageLimits", "hugetlb")?;
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(limits) = res.hugepage_limits().as_ref().filter(|l| !l.is_empty()) else {
            return Ok(());
        };
        let (v, dir) = dir_of(cg, "hugepageLimits", "hugetlb")?;
        for l in limits {
            let size = l.page_size();
            let file = match v {
                Version::V1 => format!("hugetlb.{size}.limit_in_bytes"),
                Version::V2 => format!("hugetlb.{size}.max"),
            };
            if !dir.join(&file).exists() {
                return Err(unsupported(
                    "hugepageLimits",
                    format_args!("page size {size:?}: no {file} on this host"),
                ));
            }
            write(dir, &file, &l.limit().to_string())?;
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
    fn files_of_the_page_sizes_the_host_has() {
        let (_t, cg) = fake(Version::V2, &["hugetlb"]);
        std::fs::write(cg.dirs[0].1.join("hugetlb.2MB.max"), "max").unwrap();
        applies(
            &cg,
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            &[("hugetlb.2MB.max", "4194304")],
        );
        let r = res(json!({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}));
        let e = super::super::apply(&cg, &r).unwrap_err().to_string();
        assert!(e.contains("page size \"1GB\": no hugetlb.1GB.max"), "{e}");
        assert_eq!(file(&cg, "hugetlb.1GB.max"), "<absent>");
    }
}
