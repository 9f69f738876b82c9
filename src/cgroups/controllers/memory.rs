//! memory: v1 memory.limit_in_bytes and friends, v2 memory.max, memory.swap.max, memory.low.

use oci_spec::runtime::{LinuxMemory, LinuxResources};

use super::super::stats::read_u64;
use super::{dir_of, limit_text, need, unsupported, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy, Version};

pub struct Memory;

/// The v1-only settings, and whether `m` sets each.
fn v1_only(m: &LinuxMemory) -> [(&'static str, bool); 3] {
    [
        ("memory.kernelTCP", m.kernel_tcp().is_some()),
        ("memory.swappiness", m.swappiness().is_some()),
        (
            "memory.disableOOMKiller",
            m.disable_oom_killer() == Some(true),
        ),
    ]
}

/// Whether `m` asks for any limit.
fn any(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || v1_only(m).iter().any(|(_, set)| *set)
}

/// OCI's memory.swap is memory+swap (v1's memsw); cgroup v2's memory.swap.max is the swap
/// alone. None: nothing to write (0 means unset, as runc reads it).
fn swap_v2(limit: Option<i64>, swap: i64) -> Result<Option<String>, CgroupError> {
    match (swap, limit) {
        (0, _) => Ok(None),
        (-1, _) => Ok(Some("max".into())),
        (s, _) if s < -1 => Err(unsupported(
            "memory.swap",
            format_args!("{s} is not a limit"),
        )),
        (_, Some(l)) if l < -1 => Err(unsupported(
            "memory.limit",
            format_args!("{l} is not a limit"),
        )),
        (_, None | Some(0) | Some(-1)) => Err(unsupported(
            "memory.swap",
            "on cgroup v2 it needs memory.limit (OCI's swap is memory+swap)",
        )),
        (s, Some(l)) if s < l => Err(unsupported(
            "memory.swap",
            format_args!("{s} is memory+swap and must be at least memory.limit ({l})"),
        )),
        (s, Some(l)) => Ok(Some((s - l).to_string())),
    }
}

impl Controller for Memory {
    fn field(&self) -> &'static str {
        "memory"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.memory().is_some()
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        let Some(m) = res.memory() else {
            return Ok(());
        };
        if m.kernel().is_some() {
            return Err(unsupported(
                "memory.kernel",
                "Linux no longer enforces separate kernel memory limits (kernel memory counts in memory.limit)",
            ));
        }
        if m.use_hierarchy() == Some(false) {
            return Err(unsupported(
                "memory.useHierarchy",
                "Linux has no non-hierarchical memory cgroups any more",
            ));
        }
        if !any(m) {
            return Ok(());
        }
        match need(hierarchies, "memory", "memory")? {
            Version::V1 => {
                if m.swappiness().is_some_and(|s| s > 100) {
                    return Err(unsupported("memory.swappiness", "must be 0..100"));
                }
            }
            Version::V2 => {
                if let Some((field, _)) = v1_only(m).iter().find(|(_, set)| *set) {
                    return Err(unsupported(
                        field,
                        "cgroup v1 only: this host's memory controller is on cgroup v2, which has no such setting",
                    ));
                }
                if let Some(s) = m.swap() {
                    swap_v2(m.limit(), s)?;
                }
            }
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(m) = res.memory().as_ref().filter(|m| any(m)) else {
            return Ok(());
        };
        let (v, dir) = dir_of(cg, "memory", "memory")?;
        if let (Some(limit), Some(true)) = (m.limit(), m.check_before_update()) {
            let usage = read_u64(
                dir,
                if v == Version::V1 {
                    "memory.usage_in_bytes"
                } else {
                    "memory.current"
                },
            );
            if let Some(u) = usage.filter(|&u| limit >= 0 && u > limit as u64) {
                return Err(unsupported(
                    "memory.limit",
                    format_args!(
                        "checkBeforeUpdate: the container already uses {u} bytes, more than {limit}"
                    ),
                ));
            }
        }
        match v {
            Version::V1 => {
                // memsw must stay >= the limit: when raising both, the order that works
                // depends on the current values, so try the limit first and else the swap
                // first.
                let limit = m.limit().map(|l| l.to_string());
                let swap = m.swap().map(|s| s.to_string());
                match (&limit, &swap) {
                    (Some(l), Some(s)) => {
                        if write(dir, "memory.limit_in_bytes", l).is_err() {
                            write(dir, "memory.memsw.limit_in_bytes", s)?;
                            write(dir, "memory.limit_in_bytes", l)?;
                        } else {
                            write(dir, "memory.memsw.limit_in_bytes", s)?;
                        }
                    }
                    (Some(l), None) => write(dir, "memory.limit_in_bytes", l)?,
                    (None, Some(s)) => write(dir, "memory.memsw.limit_in_bytes", s)?,
                    (None, None) => {}
                }
                if let Some(r) = m.reservation() {
                    write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
                }
                if let Some(t) = m.kernel_tcp() {
                    write(dir, "memory.kmem.tcp.limit_in_bytes", &t.to_string())?;
                }
                if let Some(s) = m.swappiness() {
                    write(dir, "memory.swappiness", &s.to_string())?;
                }
                if m.disable_oom_killer() == Some(true) {
                    write(dir, "memory.oom_control", "1")?;
                }
            }
            Version::V2 => {
                if let Some(l) = m.limit() {
                    write(dir, "memory.max", &limit_text(l, v))?;
                }
                if let Some(s) = m.swap() {
                    if let Some(text) = swap_v2(m.limit(), s)? {
                        write(dir, "memory.swap.max", &text)?;
                    }
                }
                if let Some(r) = m.reservation() {
                    write(dir, "memory.low", &limit_text(r, v))?;
                }
            }
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
    fn v2_files() {
        let (_t, cg) = fake(Version::V2, &["memory"]);
        applies(
            &cg,
            json!({"memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432}}),
            &[
                ("memory.max", "67108864"),
                ("memory.swap.max", "33554432"),
                ("memory.low", "33554432"),
            ],
        );
        applies(
            &cg,
            json!({"memory": {"limit": -1, "swap": -1}}),
            &[("memory.max", "max"), ("memory.swap.max", "max")],
        );
    }

    #[test]
    fn v1_files() {
        let (_t, cg) = fake(Version::V1, &["memory"]);
        applies(
            &cg,
            json!({"memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432,
                              "kernelTCP": 16777216, "swappiness": 10, "disableOOMKiller": true}}),
            &[
                ("memory.limit_in_bytes", "67108864"),
                ("memory.memsw.limit_in_bytes", "100663296"),
                ("memory.soft_limit_in_bytes", "33554432"),
                ("memory.kmem.tcp.limit_in_bytes", "16777216"),
                ("memory.swappiness", "10"),
                ("memory.oom_control", "1"),
            ],
        );
    }

    #[test]
    fn check_before_update_refuses_a_limit_below_the_usage() {
        let (_t, cg) = fake(Version::V2, &["memory"]);
        std::fs::write(cg.dirs[0].1.join("memory.current"), "5000").unwrap();
        let r = res(json!({"memory": {"limit": 4000, "checkBeforeUpdate": true}}));
        let e = super::super::apply(&cg, &r).unwrap_err().to_string();
        assert!(e.contains("already uses 5000 bytes"), "{e}");
        assert_eq!(file(&cg, "memory.max"), "<absent>");
    }

    #[test]
    fn refusals() {
        let mem = hierarchy(Version::V2, &["memory", "cpu"]);
        for (v, needle) in [
            (
                json!({"memory": {"swappiness": 10}}),
                "memory.swappiness: cgroup v1 only",
            ),
            (
                json!({"memory": {"disableOOMKiller": true}}),
                "disableOOMKiller",
            ),
            (json!({"memory": {"kernelTCP": 1}}), "kernelTCP"),
            (json!({"memory": {"kernel": 1}}), "no longer enforces"),
            (json!({"memory": {"swap": 100}}), "needs memory.limit"),
            (
                json!({"memory": {"limit": 200, "swap": 100}}),
                "at least memory.limit",
            ),
            // swap minus a hugely negative limit overflowed (found while writing the fuzz
            // target).
            (
                json!({"memory": {"limit": i64::MIN, "swap": 5}}),
                "is not a limit",
            ),
            (
                json!({"memory": {"useHierarchy": false}}),
                "non-hierarchical",
            ),
        ] {
            refused(&mem, v, needle);
        }
        refused(
            &hierarchy(Version::V1, &["memory"]),
            json!({"memory": {"swappiness": 101}}),
            "must be 0..100",
        );
    }
}
