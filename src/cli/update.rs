//! `update`: change a running container's cgroup limits, from flags or a resources JSON
//! (`-r FILE`, `-` for stdin), as runc does. Values are checked before anything is written.

use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::container::{self, Store};

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Container id
    id: String,
    /// A linux.resources JSON file ("-" for stdin); flags override it
    #[arg(short = 'r', long, value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory plus swap limit (bytes, or with a k/m/g suffix; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Memory soft limit (bytes, or with a k/m/g suffix; -1 for none): v1
    /// memory.soft_limit_in_bytes, v2 memory.low
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Kernel memory limit: refused (Linux no longer enforces it), as in config.json
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// Kernel TCP buffer limit (cgroup v1 only)
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// Block I/O weight (10..1000)
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// CPU real-time period in microseconds (cgroup v1 only)
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    /// CPU real-time runtime in microseconds (cgroup v1 only)
    #[arg(long, allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// Idle scheduling for the container's processes (0 or 1)
    #[arg(long)]
    cpu_idle: Option<u8>,
    /// Maximum number of processes (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long)]
    cpu_share: Option<u64>,
    /// CPU CFS quota in microseconds (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CPUs the container may use (0-3, 0,1)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long)]
    cpuset_mems: Option<String>,
}

/// `512`, `64k`, `32m`, `1g`, `-1` -> bytes (pure).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (bytes, or with k, m or g)"))?;
    if n <= 0 {
        return Err(format!("{s:?} must be positive (or -1 for no limit)"));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn resources(a: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut v: Value = match &a.resources {
        None => json!({}),
        Some(p) => {
            let mut data = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut data)?;
            } else {
                data = std::fs::read(p)
                    .map_err(|e| anyhow::anyhow!("--resources {}: {e}", p.display()))?;
            }
            serde_json::from_slice(&data)
                .map_err(|e| anyhow::anyhow!("--resources: malformed JSON: {e}"))?
        }
    };
    let bytes = |flag: &str, s: &str| parse_bytes(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"));
    if let Some(m) = &a.memory {
        v["memory"]["limit"] = json!(bytes("memory", m)?);
    }
    if let Some(m) = &a.memory_swap {
        v["memory"]["swap"] = json!(bytes("memory-swap", m)?);
    }
    if let Some(m) = &a.memory_reservation {
        v["memory"]["reservation"] = json!(bytes("memory-reservation", m)?);
    }
    if let Some(m) = &a.kernel_memory {
        v["memory"]["kernel"] = json!(bytes("kernel-memory", m)?);
    }
    if let Some(m) = &a.kernel_memory_tcp {
        v["memory"]["kernelTCP"] = json!(bytes("kernel-memory-tcp", m)?);
    }
    if let Some(w) = a.blkio_weight {
        if !(10..=1000).contains(&w) {
            anyhow::bail!("--blkio-weight {w}: must be 10..1000");
        }
        v["blockIO"]["weight"] = json!(w);
    }
    if let Some(p) = a.cpu_rt_period {
        v["cpu"]["realtimePeriod"] = json!(p);
    }
    if let Some(r) = a.cpu_rt_runtime {
        v["cpu"]["realtimeRuntime"] = json!(r);
    }
    if let Some(i) = a.cpu_idle {
        if i > 1 {
            anyhow::bail!("--cpu-idle {i}: must be 0 or 1");
        }
        v["cpu"]["idle"] = json!(i);
    }
    if let Some(p) = a.pids_limit {
        if p == 0 || p < -1 {
            anyhow::bail!("--pids-limit {p}: must be positive (or -1 for no limit)");
        }
        v["pids"]["limit"] = json!(p);
    }
    if let Some(s) = a.cpu_share {
        v["cpu"]["shares"] = json!(s);
    }
    if let Some(q) = a.cpu_quota {
        if q == 0 || q < -1 {
            anyhow::bail!("--cpu-quota {q}: must be positive (or -1 for no limit)");
        }
        v["cpu"]["quota"] = json!(q);
    }
    if let Some(p) = a.cpu_period {
        v["cpu"]["period"] = json!(p);
    }
    if let Some(c) = &a.cpuset_cpus {
        v["cpu"]["cpus"] = json!(c);
    }
    if let Some(m) = &a.cpuset_mems {
        v["cpu"]["mems"] = json!(m);
    }
    let mut res: LinuxResources =
        serde_json::from_value(v).map_err(|e| anyhow::anyhow!("resources: {e}"))?;
    // As runc: a zero or empty value changes nothing.
    crate::oci::drop_unset(&mut res);
    Ok(res)
}

pub fn update(store: &Store, a: &UpdateArgs) -> anyhow::Result<()> {
    let res = resources(a)?;
    container::update(store, &a.id, &res)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes("32M").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        for bad in ["", "abc", "0", "-5", "12x", "99999999999999g"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
