//! `ps`: the container's processes, as JSON (pids) or as the host's `ps` table filtered to them
//! (a microVM container's table is its guest's own `ps`; its JSON, the host pids: the VMM and
//! exec relays).

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
    // A microVM container's processes are in its guest: the guest's ps lists them.
    if let Some(ended) = container::guest_ps(store, id, &args)? {
        if ended.status != 0 {
            anyhow::bail!(
                "ps {} in the guest exited {}: {}",
                args.join(" "),
                ended.status,
                String::from_utf8_lossy(&ended.stderr).trim()
            );
        }
        crate::cli::out(&String::from_utf8_lossy(&ended.stdout))?;
        return Ok(());
    }
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
