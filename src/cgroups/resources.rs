//! `linux.resources` -> cgroup files. Every field contain cannot enforce on this host is
//! refused (`check_supported`) before anything is created, never ignored.

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::stats::read_u64;
use super::{Cgroup, CgroupError, Hierarchy, Version};

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

/// cgroup v2 files `linux.resources.unified` may set: a controller's own files, and of the
/// core files only the two limits (cgroup.procs and friends would move processes or change
/// the tree's shape).
fn unified_key_ok(hierarchies: &[Hierarchy], key: &str) -> Result<(), CgroupError> {
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

/// Refuse the parts of `res` this host or this version cannot enforce (pure).
pub fn check_supported(res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
    let need = |field: &str, c: &str| need(hierarchies, field, c);
    if let Some(m) = res.memory() {
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
        let v1_only = [
            ("memory.kernelTCP", m.kernel_tcp().is_some()),
            ("memory.swappiness", m.swappiness().is_some()),
            (
                "memory.disableOOMKiller",
                m.disable_oom_killer() == Some(true),
            ),
        ];
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || v1_only.iter().any(|(_, set)| *set);
        if any {
            match need("memory", "memory")? {
                Version::V1 => {
                    if m.swappiness().is_some_and(|s| s > 100) {
                        return Err(unsupported("memory.swappiness", "must be 0..100"));
                    }
                }
                Version::V2 => {
                    if let Some((field, _)) = v1_only.iter().find(|(_, set)| *set) {
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
        }
    }
    if let Some(c) = res.cpu() {
        let sched = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some();
        if sched {
            let v = need("cpu", "cpu")?;
            if v == Version::V2 && (c.realtime_period().is_some() || c.realtime_runtime().is_some())
            {
                return Err(unsupported(
                    "cpu.realtimeRuntime/realtimePeriod",
                    "cgroup v1 only: this host's cpu controller is on cgroup v2, which has no real-time budget",
                ));
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            need("cpu.cpus/mems", "cpuset")?;
        }
    }
    if res.pids().is_some() {
        need("pids", "pids")?;
    }
    if let Some(b) = res.block_io() {
        if controller_version(hierarchies, "blkio").is_none() {
            need("blockIO", "io")?;
        }
        if b.leaf_weight().is_some()
            || b.weight_device()
                .iter()
                .flatten()
                .any(|d| d.leaf_weight().is_some())
        {
            return Err(unsupported(
                "blockIO.leafWeight",
                "only the CFQ scheduler, gone since Linux 5.0, had it",
            ));
        }
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        need("hugepageLimits", "hugetlb")?;
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() {
            need("network.classID", "net_cls")?;
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            need("network.priorities", "net_prio")?;
        }
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        need("rdma", "rdma")?;
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        if !hierarchies.iter().any(|h| h.version == Version::V2) {
            return Err(unsupported(
                "unified",
                format_args!("this host has no cgroup2 tree ({})", offered(hierarchies)),
            ));
        }
        for k in u.keys() {
            unified_key_ok(hierarchies, k)?;
        }
    }
    let has_v2 = hierarchies.iter().any(|h| h.version == Version::V2);
    if res.devices().as_ref().is_some_and(|d| !d.is_empty())
        && controller_version(hierarchies, "devices").is_none()
        && !has_v2
    {
        return Err(unsupported(
            "devices",
            "this host has neither a v1 devices controller nor a cgroup2 tree for a device program",
        ));
    }
    Ok(())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    std::fs::write(dir.join(file), value).map_err(|source| CgroupError::Write {
        path: dir.to_path_buf(),
        file: format!("{file}={value}"),
        source,
    })
}

/// A new v1 cpuset cgroup starts with empty cpus and mems: copy them from the nearest
/// ancestor that has them, or nothing could join it.
pub fn cpuset_inherit(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
    let mut chain = Vec::new();
    let mut cur = dir.to_path_buf();
    while cur.starts_with(mount) && cur != mount {
        chain.push(cur.clone());
        cur.pop();
    }
    for d in chain.into_iter().rev() {
        let parent = d.parent().unwrap_or(mount);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(d.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                write(&d, f, theirs.trim())?;
            }
        }
    }
    Ok(())
}

/// The devices every container needs, allowed after a deny-all (as runc does).
/// `linux.resources.devices` as (allow?, v1 rule text) in order, a deny-all followed by the
/// defaults runc allows; None when config.json has no device rules.
pub fn device_rules(res: &LinuxResources) -> Option<Vec<(bool, String)>> {
    let devs = res.devices().as_ref().filter(|d| !d.is_empty())?;
    let mut rules = Vec::new();
    for d in devs {
        let rule = device_rule(d);
        let deny_all = !d.allow() && rule.starts_with("a ");
        rules.push((d.allow(), rule));
        if deny_all {
            rules.extend(default_allowed().into_iter().map(|r| (true, r)));
        }
    }
    Some(rules)
}

fn default_allowed() -> Vec<String> {
    [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c *:* m",
        "b *:* m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        Some(LinuxDeviceType::A) | None => "a",
    };
    let num = |n: Option<i64>| n.map_or_else(|| "*".to_string(), |v| v.to_string());
    let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
    if typ == "a" {
        format!("a *:* {access}")
    } else {
        format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
    }
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
            let hierarchies: Vec<Hierarchy> = cg.dirs.iter().map(|(h, _)| h.clone()).collect();
            unsupported(
                field,
                format_args!(
                    "this container's cgroup has no {controller} controller ({})",
                    offered(&hierarchies)
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

fn apply_memory(cg: &Cgroup, m: &oci_spec::runtime::LinuxMemory) -> Result<(), CgroupError> {
    let any = m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true);
    if !any {
        return Ok(());
    }
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
            // memsw must stay >= the limit: when raising both, the order that works depends
            // on the current values, so try the limit first and else the swap first.
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

/// cpu.shares (v1 2..262144) to cpu.weight (v2 1..10000), as runc converts it.
fn cpu_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + (s - 2) * 9999 / 262_142
}

fn apply_cpu(cg: &Cgroup, c: &oci_spec::runtime::LinuxCpu) -> Result<(), CgroupError> {
    let sched = c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_period().is_some()
        || c.realtime_runtime().is_some();
    if sched {
        let (v, dir) = dir_of(cg, "cpu", "cpu")?;
        match v {
            Version::V1 => {
                if let Some(s) = c.shares() {
                    write(dir, "cpu.shares", &s.to_string())?;
                }
                if let Some(p) = c.period() {
                    write(dir, "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = c.quota() {
                    write(dir, "cpu.cfs_quota_us", &q.to_string())?;
                }
                if let Some(b) = c.burst() {
                    write(dir, "cpu.cfs_burst_us", &b.to_string())?;
                }
                if let Some(p) = c.realtime_period() {
                    write(dir, "cpu.rt_period_us", &p.to_string())?;
                }
                if let Some(r) = c.realtime_runtime() {
                    write(dir, "cpu.rt_runtime_us", &r.to_string())?;
                }
            }
            Version::V2 => {
                if let Some(s) = c.shares().filter(|&s| s != 0) {
                    write(dir, "cpu.weight", &cpu_weight(s).to_string())?;
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
    }
    if c.cpus().is_some() || c.mems().is_some() {
        let (_, dir) = dir_of(cg, "cpu.cpus/mems", "cpuset")?;
        if let Some(cpus) = c.cpus() {
            write(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems() {
            write(dir, "cpuset.mems", mems)?;
        }
    }
    Ok(())
}

/// network: v1 net_cls.classid and net_prio.ifpriomap (cgroup v2 has neither).
fn apply_network(cg: &Cgroup, n: &oci_spec::runtime::LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        let (_, dir) = dir_of(cg, "network.classID", "net_cls")?;
        write(dir, "net_cls.classid", &id.to_string())?;
    }
    for p in n.priorities().iter().flatten() {
        let (_, dir) = dir_of(cg, "network.priorities", "net_prio")?;
        write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

/// rdma: "DEVICE hca_handle=N hca_object=M" into rdma.max (v1 and v2 alike).
fn apply_rdma(
    cg: &Cgroup,
    r: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
) -> Result<(), CgroupError> {
    let (_, dir) = dir_of(cg, "rdma", "rdma")?;
    let mut devices: Vec<_> = r.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devices {
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line += &format!(" hca_handle={h}");
        }
        if let Some(o) = l.hca_objects() {
            line += &format!(" hca_object={o}");
        }
        write(dir, "rdma.max", &line)?;
    }
    Ok(())
}

/// unified: cgroup v2 files written as given (keys checked by [`check_supported`]); a file this
/// kernel does not have is refused, not created.
fn apply_unified(
    cg: &Cgroup,
    u: &std::collections::HashMap<String, String>,
) -> Result<(), CgroupError> {
    let hierarchies: Vec<Hierarchy> = cg.dirs.iter().map(|(h, _)| h.clone()).collect();
    let dir = cg
        .v2_dir()
        .ok_or_else(|| unsupported("unified", "this container has no cgroup2 directory"))?;
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in keys {
        unified_key_ok(&hierarchies, k)?;
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

pub fn apply(cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = res.memory() {
        apply_memory(cg, m)?;
    }
    if let Some(p) = res.pids() {
        let (_, dir) = dir_of(cg, "pids", "pids")?;
        let limit = if p.limit() <= 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        write(dir, "pids.max", &limit)?;
    }
    if let Some(c) = res.cpu() {
        apply_cpu(cg, c)?;
    }
    if let Some(n) = res.network() {
        apply_network(cg, n)?;
    }
    if let Some(r) = res.rdma().as_ref().filter(|r| !r.is_empty()) {
        apply_rdma(cg, r)?;
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        apply_unified(cg, u)?;
    }
    if let Some(b) = res.block_io() {
        apply_block_io(cg, b)?;
    }
    if let Some(l) = res.hugepage_limits().as_ref().filter(|l| !l.is_empty()) {
        apply_hugetlb(cg, l)?;
    }
    if let Some(rules) = device_rules(res) {
        let v1 = cg.dirs.iter().find(|(h, _)| {
            h.version == Version::V1 && h.controllers.iter().any(|c| c == "devices")
        });
        if let Some((_, dir)) = v1 {
            // An update goes the shortest way from what the cgroup holds (a new cgroup holds
            // v1's allow-all, so create replays the rules).
            let list = std::fs::read_to_string(dir.join("devices.list")).unwrap_or_default();
            let writes =
                super::devices::v1_transition(&list, &rules).unwrap_or_else(|| rules.clone());
            for (allow, rule) in &writes {
                write(
                    dir,
                    if *allow {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    },
                    rule,
                )?;
            }
        }
        // cgroup v2 has no device files: a BPF program attached to the cgroup decides. On a
        // hybrid host it holds beside the v1 controller (both must allow).
        if let Some((_, dir)) = cg.dirs.iter().find(|(h, _)| h.version == Version::V2) {
            super::devices::attach(dir, &rules).map_err(|e| CgroupError::Write {
                path: dir.clone(),
                file: "device program".into(),
                source: std::io::Error::other(e),
            })?;
        } else if v1.is_none() {
            return Err(unsupported(
                "devices",
                "this container's cgroup has neither a v1 devices controller nor a cgroup2 directory",
            ));
        }
    }
    Ok(())
}

/// blockIO: throttles (v1 blkio.throttle.*, v2 io.max) and weights (v1 blkio.weight or the
/// BFQ scheduler's blkio.bfq.weight; v2 io.weight or io.bfq.weight, the v1 scale converted
/// as runc does). A weight no file here can take is refused, not dropped.
fn apply_block_io(cg: &Cgroup, b: &oci_spec::runtime::LinuxBlockIo) -> Result<(), CgroupError> {
    let (v, dir) = dir_of(cg, "blockIO", "blkio").or_else(|_| dir_of(cg, "blockIO", "io"))?;
    let v1 = v == Version::V1;
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    for (list, v1_file, v2_key) in throttles {
        for d in list.iter().flatten() {
            let dev = format!("{}:{}", d.major(), d.minor());
            if v1 {
                write(dir, v1_file, &format!("{dev} {}", d.rate()))?;
            } else {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                write(dir, "io.max", &format!("{dev} {v2_key}={rate}"))?;
            }
        }
    }
    let (plain, bfq) = if v1 {
        ("blkio.weight", "blkio.bfq.weight")
    } else {
        ("io.weight", "io.bfq.weight")
    };
    let wants_weight = b.weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.weight().is_some());
    if wants_weight {
        let file = [plain, bfq]
            .into_iter()
            .find(|f| dir.join(f).exists())
            .ok_or_else(|| {
                unsupported(
                    "blockIO.weight",
                    format_args!(
                        "neither {plain} nor {bfq} exists here (no I/O scheduler with weights)"
                    ),
                )
            })?;
        let via_bfq = file == bfq;
        if via_bfq {
            crate::log::warn(&format!(
                "blockIO weights go to {bfq}: they take effect only on devices whose I/O scheduler is bfq"
            ));
        }
        // v1's and BFQ's weights run 10..1000; v2's io.weight 1..10000.
        let value = |w: u16| -> String {
            if v1 || via_bfq {
                w.to_string()
            } else {
                (1 + (u64::from(w).saturating_sub(10)) * 9999 / 990).to_string()
            }
        };
        if let Some(w) = b.weight() {
            let v = if v1 || via_bfq {
                value(w)
            } else {
                format!("default {}", value(w))
            };
            write(dir, file, &v)?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                write(
                    dir,
                    file,
                    &format!("{}:{} {}", d.major(), d.minor(), value(w)),
                )?;
            }
        }
    }
    Ok(())
}

/// hugepageLimits: v1 hugetlb.<size>.limit_in_bytes, v2 hugetlb.<size>.max; a page size this
/// host does not have is refused.
fn apply_hugetlb(
    cg: &Cgroup,
    limits: &[oci_spec::runtime::LinuxHugepageLimit],
) -> Result<(), CgroupError> {
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

/// The first limit of `res` that needs a cgroup of the container's own (the device list
/// does not: without a cgroup the caller's applies, and a rootless container cannot make
/// device nodes anyway). None when there is none.
pub fn limits_named(res: &LinuxResources) -> Option<&'static str> {
    if res.memory().is_some() {
        Some("memory")
    } else if res.cpu().is_some() {
        Some("cpu")
    } else if res.pids().is_some() {
        Some("pids")
    } else if res.block_io().is_some() {
        Some("blockIO")
    } else if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        Some("hugepageLimits")
    } else if res.network().is_some() {
        Some("network")
    } else if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        Some("rdma")
    } else if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        Some("unified")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules() {
        let d: LinuxDeviceCgroup =
            serde_json::from_value(serde_json::json!({"allow": false, "access": "rwm"})).unwrap();
        assert_eq!(device_rule(&d), "a *:* rwm");
        let d: LinuxDeviceCgroup = serde_json::from_value(
            serde_json::json!({"allow": true, "type": "c", "major": 10, "access": "rw"}),
        )
        .unwrap();
        assert_eq!(device_rule(&d), "c 10:* rw");
    }

    #[test]
    fn refuses_unenforced() {
        let h = vec![Hierarchy {
            version: Version::V2,
            mount: "/x".into(),
            controllers: vec!["memory".into()],
        }];
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"blockIO": {"weight": 10}})).unwrap();
        assert!(check_supported(&r, &h)
            .unwrap_err()
            .to_string()
            .contains("blockIO"));
        // Devices: the v2 program on a v2 host; refused where neither v1 nor v2 can hold them.
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"devices": [{"allow": false}]})).unwrap();
        check_supported(&r, &h).unwrap();
        let v1_without_devices = vec![Hierarchy {
            version: Version::V1,
            mount: "/y".into(),
            controllers: vec!["memory".into()],
        }];
        assert!(check_supported(&r, &v1_without_devices).is_err());
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"memory": {"limit": 1000000}})).unwrap();
        check_supported(&r, &h).unwrap();
    }

    fn fake(version: Version, controllers: &[&str]) -> (tempfile::TempDir, Cgroup) {
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

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn file(cg: &Cgroup, name: &str) -> String {
        std::fs::read_to_string(cg.dirs[0].1.join(name)).unwrap_or_else(|_| "<absent>".into())
    }

    #[test]
    fn cgroup_v2_files() {
        let all = ["memory", "cpu", "cpuset", "pids", "hugetlb", "io", "rdma"];
        let (_t, cg) = fake(Version::V2, &all);
        std::fs::write(cg.dirs[0].1.join("hugetlb.2MB.max"), "max").unwrap();
        let r = res(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432},
            "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 1000, "idle": 1,
                    "cpus": "0", "mems": "0"},
            "pids": {"limit": 10},
            "rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}},
            "unified": {"hugetlb.2MB.max": "0"}
        }));
        let hs: Vec<Hierarchy> = cg.dirs.iter().map(|(h, _)| h.clone()).collect();
        check_supported(&r, &hs).unwrap();
        apply(&cg, &r).unwrap();
        for (f, want) in [
            ("memory.max", "67108864"),
            ("memory.swap.max", "33554432"),
            ("memory.low", "33554432"),
            ("cpu.weight", "39"),
            ("cpu.max", "20000 100000"),
            ("cpu.max.burst", "1000"),
            ("cpu.idle", "1"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("pids.max", "10"),
            ("rdma.max", "mlx4_0 hca_handle=2 hca_object=2000"),
            ("hugetlb.2MB.max", "0"),
        ] {
            assert_eq!(file(&cg, f), want, "{f}");
        }
        // A period alone keeps the quota in force; -1 and "no quota" are max.
        apply(&cg, &res(serde_json::json!({"cpu": {"period": 200000}}))).unwrap();
        assert_eq!(file(&cg, "cpu.max"), "20000 200000");
        apply(
            &cg,
            &res(serde_json::json!({"cpu": {"quota": -1}, "memory": {"limit": -1, "swap": -1}})),
        )
        .unwrap();
        assert_eq!(file(&cg, "cpu.max"), "max");
        assert_eq!(file(&cg, "memory.max"), "max");
        assert_eq!(file(&cg, "memory.swap.max"), "max");
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(262_144), 10_000);
        // A unified file this kernel does not have is refused, not created.
        let e = apply(
            &cg,
            &res(serde_json::json!({"unified": {"memory.nosuch": "1"}})),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unified.memory.nosuch"), "{e}");
        assert_eq!(file(&cg, "memory.nosuch"), "<absent>");
    }

    #[test]
    fn cgroup_v1_files() {
        let (_t, cg) = fake(
            Version::V1,
            &["memory", "cpu", "cpuacct", "net_cls", "net_prio"],
        );
        let r = res(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432,
                       "kernelTCP": 16777216, "swappiness": 10, "disableOOMKiller": true},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000,
                    "realtimeRuntime": 1000, "realtimePeriod": 1000000},
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}
        }));
        let hs: Vec<Hierarchy> = cg.dirs.iter().map(|(h, _)| h.clone()).collect();
        check_supported(&r, &hs).unwrap();
        apply(&cg, &r).unwrap();
        for (f, want) in [
            ("memory.limit_in_bytes", "67108864"),
            ("memory.memsw.limit_in_bytes", "100663296"),
            ("memory.soft_limit_in_bytes", "33554432"),
            ("memory.kmem.tcp.limit_in_bytes", "16777216"),
            ("memory.swappiness", "10"),
            ("memory.oom_control", "1"),
            ("cpu.shares", "512"),
            ("cpu.cfs_quota_us", "20000"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_burst_us", "1000"),
            ("cpu.rt_runtime_us", "1000"),
            ("cpu.rt_period_us", "1000000"),
            ("net_cls.classid", "1048577"),
            ("net_prio.ifpriomap", "eth0 5"),
        ] {
            assert_eq!(file(&cg, f), want, "{f}");
        }
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        let v2 = |c: &[&str]| {
            vec![Hierarchy {
                version: Version::V2,
                mount: "/sys/fs/cgroup".into(),
                controllers: c.iter().map(|s| s.to_string()).collect(),
            }]
        };
        let hybrid = vec![
            Hierarchy {
                version: Version::V1,
                mount: "/sys/fs/cgroup/memory".into(),
                controllers: vec!["memory".into()],
            },
            v2(&["hugetlb"]).remove(0),
        ];
        let refused = |hs: &[Hierarchy], v: serde_json::Value, needle: &str| {
            let e = check_supported(&res(v.clone()), hs)
                .expect_err(&v.to_string())
                .to_string();
            assert!(e.contains(needle), "{v}: {e}");
        };
        let mem = v2(&["memory", "cpu"]);
        refused(
            &mem,
            serde_json::json!({"memory": {"swappiness": 10}}),
            "memory.swappiness: cgroup v1 only",
        );
        refused(
            &mem,
            serde_json::json!({"memory": {"disableOOMKiller": true}}),
            "disableOOMKiller",
        );
        refused(
            &mem,
            serde_json::json!({"memory": {"kernelTCP": 1}}),
            "kernelTCP",
        );
        refused(
            &mem,
            serde_json::json!({"memory": {"kernel": 1}}),
            "no longer enforces",
        );
        refused(
            &mem,
            serde_json::json!({"memory": {"swap": 100}}),
            "needs memory.limit",
        );
        refused(
            &mem,
            serde_json::json!({"memory": {"limit": 200, "swap": 100}}),
            "at least memory.limit",
        );
        // swap minus a hugely negative limit overflowed (found while writing the fuzz target).
        refused(
            &mem,
            serde_json::json!({"memory": {"limit": i64::MIN, "swap": 5}}),
            "is not a limit",
        );
        refused(
            &mem,
            serde_json::json!({"cpu": {"realtimeRuntime": 1}}),
            "real-time",
        );
        refused(
            &mem,
            serde_json::json!({"pids": {"limit": 1}}),
            "no pids controller to enforce it (cgroup2: cpu, memory)",
        );
        refused(
            &mem,
            serde_json::json!({"unified": {"cgroup.procs": "1"}}),
            "only cgroup.max.depth",
        );
        refused(
            &mem,
            serde_json::json!({"unified": {"../memory.max": "1"}}),
            "not a cgroup v2 interface file",
        );
        refused(
            &mem,
            serde_json::json!({"unified": {"io.max": "1"}}),
            "the io controller is not in",
        );
        refused(
            &mem,
            serde_json::json!({"memory": {"useHierarchy": false}}),
            "non-hierarchical",
        );
        // This host's shape: memory on v1 (so the v1-only knobs are fine), hugetlb on v2.
        check_supported(
            &res(serde_json::json!({"memory": {"kernelTCP": 1, "swappiness": 5}})),
            &hybrid,
        )
        .unwrap();
        refused(
            &hybrid,
            serde_json::json!({"cpu": {"quota": 1000}}),
            "(v1: memory; cgroup2: hugetlb)",
        );
        refused(
            &hybrid,
            serde_json::json!({"unified": {"memory.max": "1"}}),
            "the memory controller is not in this host's cgroup2 tree",
        );
        check_supported(
            &res(serde_json::json!({"unified": {"hugetlb.2MB.max": "0"}})),
            &hybrid,
        )
        .unwrap();
        refused(
            &hybrid,
            serde_json::json!({"network": {"classID": 1}}),
            "no net_cls controller",
        );
    }
}
