//! The report as text (people), JSON (tools) and SARIF 2.1.0 (code-scanning UIs).

use serde_json::{json, Value};

use super::rules::{Severity, RULES};
use super::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

/// The report in `format`; `color` adds ANSI colours to the text form.
pub fn render(r: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Text => text(r, color),
        Format::Json => serde_json::to_string_pretty(&json(r)).unwrap_or_default() + "\n",
        Format::Sarif => serde_json::to_string_pretty(&sarif(r)).unwrap_or_default() + "\n",
    }
}

fn paint(color: bool, s: Severity, text: &str) -> String {
    if !color {
        return text.to_string();
    }
    let code = match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn text(r: &Report, color: bool) -> String {
    let mut out = format!(
        "contain audit of {} under policy {}\nscore {}/100: {} critical, {} high, {} medium, {} low; Pod Security Standards: {}\n",
        r.config.display(),
        r.policy,
        r.score,
        r.summary.critical,
        r.summary.high,
        r.summary.medium,
        r.summary.low,
        r.pod_security
    );
    if let Some(who) = &r.chosen_by {
        out += &format!("policy chosen by {who}\n");
    }
    if let Some(why) = &r.refused {
        out += &format!("the policy refuses this config (create would fail): {why}\n");
    }
    out += "enforced:\n";
    for e in &r.enforced {
        out += &format!("  {:<9} {}\n", e.layer, e.what);
    }
    // Grouped by layer, the layer of the worst finding first.
    let mut layers: Vec<_> = Vec::new();
    for f in &r.findings {
        if !layers.contains(&f.layer) {
            layers.push(f.layer);
        }
    }
    for layer in layers {
        out += &format!("\n[{}]\n", layer.as_str());
        for f in r.findings.iter().filter(|f| f.layer == layer) {
            let sev = format!("{:<8}", f.severity.as_str());
            out += &format!(
                "  {} {} {}\n      {}\n      fix: {}\n",
                paint(color, f.severity, &sev),
                f.id,
                f.title,
                f.detail,
                f.remediation
            );
            if let Some(p) = f.pss {
                out += &format!("      fails Pod Security Standards: {p}\n");
            }
        }
    }
    if r.findings.is_empty() {
        out += "\nno findings\n";
    }
    out
}

fn json(r: &Report) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// security-severity for GitHub code scanning (0-10).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.0",
        Severity::Low => "2.0",
    }
}

fn sarif(r: &Report) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.title,
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": rule.rationale},
                "help": {"text": rule.remediation},
                "defaultConfiguration": {"level": level(rule.severity)},
                "properties": {
                    "layer": rule.layer.as_str(),
                    "security-severity": security_severity(rule.severity),
                    "tags": ["security", "container"],
                }
            })
        })
        .collect();
    let uri = r.config.to_string_lossy().into_owned();
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.id,
                "ruleIndex": RULES.iter().position(|x| x.id == f.id).unwrap_or(0),
                "level": level(f.severity),
                "message": {"text": format!("{}: {}", f.title, f.detail)},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "contain audit",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "properties": {"policy": r.policy, "score": r.score},
            "results": results,
        }]
    })
}

/// What the second of two reports weakens (findings it adds), tightens (findings it drops) or
/// changes (same rule, other detail).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diff {
    pub before: String,
    pub after: String,
    pub score_before: u32,
    pub score_after: u32,
    pub weakened: Vec<super::Finding>,
    pub tightened: Vec<super::Finding>,
    pub changed: Vec<Change>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub id: &'static str,
    pub severity: Severity,
    pub before: String,
    pub after: String,
}

pub fn diff(a: &Report, b: &Report, before: String, after: String) -> Diff {
    let find = |r: &Report, id: &str| r.findings.iter().find(|f| f.id == id).cloned();
    Diff {
        before,
        after,
        score_before: a.score,
        score_after: b.score,
        weakened: b
            .findings
            .iter()
            .filter(|f| find(a, f.id).is_none())
            .cloned()
            .collect(),
        tightened: a
            .findings
            .iter()
            .filter(|f| find(b, f.id).is_none())
            .cloned()
            .collect(),
        changed: b
            .findings
            .iter()
            .filter_map(|f| {
                let old = find(a, f.id)?;
                (old.detail != f.detail).then(|| Change {
                    id: f.id,
                    severity: f.severity,
                    before: old.detail,
                    after: f.detail.clone(),
                })
            })
            .collect(),
    }
}

pub fn render_diff(d: &Diff, format: Format, color: bool) -> String {
    if format != Format::Text {
        return serde_json::to_string_pretty(d).unwrap_or_default() + "\n";
    }
    let mut out = format!(
        "contain audit: {} compared with {}\nscore {} -> {}\n",
        d.after, d.before, d.score_before, d.score_after
    );
    for (what, list, sign) in [
        ("weakens", &d.weakened, "+"),
        ("tightens", &d.tightened, "-"),
    ] {
        out += &format!("\n{what} ({}):\n", list.len());
        for f in list {
            let sev = format!("{:<8}", f.severity.as_str());
            out += &format!(
                "  {sign} {} {} {}\n      {}\n",
                paint(color, f.severity, &sev),
                f.id,
                f.title,
                f.detail
            );
        }
    }
    out += &format!("\nchanged ({}):\n", d.changed.len());
    for c in &d.changed {
        out += &format!(
            "  ~ {} {}\n      before: {}\n      after:  {}\n",
            c.severity.as_str(),
            c.id,
            c.before,
            c.after
        );
    }
    out
}
