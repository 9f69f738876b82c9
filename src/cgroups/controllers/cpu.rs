//! cpu: v1 cpu.shares, cpu.cfs_* and cpu.rt_*; v2 cpu.weight, cpu.max, cpu.max.burst; cpu.idle.

use oci_spec::runtime::{LinuxCpu, LinuxResources};

use super::{dir_of, need, unsupported, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy, Version};

pub struct Cpu;

/// Whether `c` asks the scheduler for anything (cpus and mems are the cpuset controller's).
fn sched(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_period().is_some()
        || c.realtime_runtime().is_some()
}

/// cpu.shares (v1 2..262144) to cpu.weight (v2 1..10000), as runc converts it.
fn weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + (s - 2) * 9999 / 262_142
}

impl Controller for Cpu {
    fn field(&self) -> &'static str {
        "cpu"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.cpu().is_some()
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        let Some(c) = res.cpu().as_ref().filter(|c| sched(c)) else {
            return Ok(());
        };
        let v = need(hierarchies, "cpu", "cpu")?;
        if v == Version::V2 && (c.realtime_period().is_some() || c.realtime_runtime().is_some()) {
            return Err(unsupported(
                "cpu.realtimeRuntime/realtimePeriod",
                "cgroup v1 only: this host's cpu controller is on cgroup v2, which has no real-time budget",
            ));
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(c) = res.cpu().as_ref().filter(|c| sched(c)) else {
            return Ok(());
        };
        let (v, dir) = dir_of(cg, "cpu", "cpu")?;
        match v {
            Version::V1 => {
                for (value, file) in [
                    (c.shares().map(|s| s.to_string()), "cpu.shares"),
                    (c.period().map(|p| p.to_string()), "cpu.cfs_period_us"),
                    (c.quota().map(|q| q.to_string()), "cpu.cfs_quota_us"),
                    (c.burst().map(|b| b.to_string()), "cpu.cfs_burst_us"),
                    (
                        c.realtime_period().map(|p| p.to_string()),
                        "cpu.rt_period_us",
                    ),
                    (
                        c.realtime_runtime().map(|r| r.to_string()),
                        "cpu.rt_runtime_us",
                    ),
                ] {
                    if let Some(value) = value {
                        write(dir, file, &value)?;
                    }
                }
            }
            Version::V2 => {
                if let Some(s) = c.shares().filter(|&s| s != 0) {
                    write(dir, "cpu.weight", &weight(s).to_string())?;
                }
                if c.quota().is_some() || c.period().is_some() {
                    // cpu.max is "QUOTA PERIOD"; a period alone keeps the current quota.
                    let quota = match c.quota() {
                        Some(q) if q > 0 => q.to_string(),
                        Some(_) => "max".to_string(),
                        None => std::fs::read_to_string(dir.join("cpu.max"))
                            .ok()
                            .and_then(|t| t.split_whitespace().next().map(str::to_string))
                            .unwrap_or_else(|| "max".into()),
                    };
                    let text = match c.period() {
                        Some(p) => format!("{quota} {p}"),
                        None => quota,
                    };
                    write(dir, "cpu.max", &text)?;
                }
                if let Some(b) = c.burst() {
                    write(dir, "cpu.max.burst", &b.to_string())?;
                }
            }
        }
        if let Some(i) = c.idle() {
            write(dir, "cpu.idle", &i.to_string())?;
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
        let (_t, cg) = fake(Version::V2, &["cpu"]);
        applies(
            &cg,
            json!({"cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 1000,
                           "idle": 1}}),
            &[
                ("cpu.weight", "39"),
                ("cpu.max", "20000 100000"),
                ("cpu.max.burst", "1000"),
                ("cpu.idle", "1"),
            ],
        );
        // A period alone keeps the quota in force; -1 (no quota) is max.
        applies(
            &cg,
            json!({"cpu": {"period": 200000}}),
            &[("cpu.max", "20000 200000")],
        );
        applies(&cg, json!({"cpu": {"quota": -1}}), &[("cpu.max", "max")]);
        assert_eq!(super::weight(2), 1);
        assert_eq!(super::weight(262_144), 10_000);
    }

    #[test]
    fn v1_files() {
        let (_t, cg) = fake(Version::V1, &["cpu", "cpuacct"]);
        applies(
            &cg,
            json!({"cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000,
                           "realtimeRuntime": 1000, "realtimePeriod": 1000000}}),
            &[
                ("cpu.shares", "512"),
                ("cpu.cfs_quota_us", "20000"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_burst_us", "1000"),
                ("cpu.rt_runtime_us", "1000"),
                ("cpu.rt_period_us", "1000000"),
            ],
        );
    }

    #[test]
    fn no_real_time_budget_on_v2() {
        refused(
            &hierarchy(Version::V2, &["memory", "cpu"]),
            json!({"cpu": {"realtimeRuntime": 1}}),
            "real-time",
        );
    }
}
