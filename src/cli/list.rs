//! `list`: runc's table, or JSON.

use crate::container::{self, Store};

pub fn print(store: &Store, format: &str, quiet: bool) -> anyhow::Result<()> {
    let states = container::list(store)?;
    if quiet {
        for s in &states {
            outln!("{}", s.id)?;
        }
        return Ok(());
    }
    if format == "json" {
        outln!("{}", serde_json::to_string(&states)?)?;
        return Ok(());
    }
    let rows: Vec<[String; 6]> = states
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.pid.to_string(),
                s.status.to_string(),
                s.bundle.display().to_string(),
                s.created.clone(),
                s.owner.clone(),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(str::to_string);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", line.join("   ").trim_end())?;
    }
    Ok(())
}
