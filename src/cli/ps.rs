//! `ps`: the container's processes, as JSON (pids) or as the host's `ps` table filtered to them.

use std::process::Command;

use crate::container::{self, Store};

pub fn print(store: &Store, id: &str, format: &str, ps_args: &[String]) -> anyhow::Result<()> {
    let pids = container::pids(store, id)?;
    if format == "json" {
        outln!("{}", serde_json::to_string(&pids)?)?;
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| anyhow::anyhow!("run ps: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps {}: no PID column in its output", args.join(" ")))?;
    outln!("{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            outln!("{line}")?;
        }
    }
    Ok(())
}
