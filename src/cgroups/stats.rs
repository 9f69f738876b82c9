//! Resource usage of a container's cgroup, in runc's `events` stats shape.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{Cgroup, Version};

pub(super) fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `key value` lines (memory.stat, memory.events, cpu.stat, oom_control).
fn read_kv(dir: &Path, file: &str) -> Map<String, Value> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), json!(v.trim().parse::<u64>().ok()?)))
        })
        .collect()
}

/// The number of OOM kills so far (v1 memory.oom_control, v2 memory.events).
pub fn oom_kills(cg: &Cgroup) -> u64 {
    match cg.dir_for("memory") {
        Some((h, dir)) => {
            let file = if h.version == Version::V1 {
                "memory.oom_control"
            } else {
                "memory.events"
            };
            read_kv(dir, file)
                .get("oom_kill")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        }
        None => 0,
    }
}

/// cpu, memory and pids statistics.
pub fn stats(cg: &Cgroup) -> Value {
    let mut data = Map::new();
    if let Some((h, dir)) = cg.dir_for("cpuacct").or_else(|| cg.dir_for("cpu")) {
        let cpu = if h.version == Version::V1 {
            let percpu: Vec<u64> = std::fs::read_to_string(dir.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            json!({"usage": {
                "total": read_u64(dir, "cpuacct.usage"),
                "percpu": percpu,
                "kernel": read_u64(dir, "cpuacct.usage_sys"),
                "user": read_u64(dir, "cpuacct.usage_user"),
            }})
        } else {
            let st = read_kv(dir, "cpu.stat");
            let ns = |k: &str| st.get(k).and_then(Value::as_u64).map(|u| u * 1000);
            json!({"usage": {"total": ns("usage_usec"), "kernel": ns("system_usec"), "user": ns("user_usec")}})
        };
        data.insert("cpu".into(), cpu);
    }
    if let Some((h, dir)) = cg.dir_for("memory") {
        let mem = if h.version == Version::V1 {
            json!({
                "usage": {
                    "usage": read_u64(dir, "memory.usage_in_bytes"),
                    "max": read_u64(dir, "memory.max_usage_in_bytes"),
                    "limit": read_u64(dir, "memory.limit_in_bytes"),
                    "failcnt": read_u64(dir, "memory.failcnt"),
                },
                "raw": read_kv(dir, "memory.stat"),
            })
        } else {
            json!({
                "usage": {"usage": read_u64(dir, "memory.current"), "limit": read_u64(dir, "memory.max")},
                "raw": read_kv(dir, "memory.stat"),
            })
        };
        data.insert("memory".into(), mem);
    }
    if let Some((_, dir)) = cg.dir_for("pids") {
        data.insert(
            "pids".into(),
            json!({"current": read_u64(dir, "pids.current"), "limit": read_u64(dir, "pids.max")}),
        );
    }
    Value::Object(data)
}
