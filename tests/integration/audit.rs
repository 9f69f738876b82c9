//! `contain audit` through the binary: exit codes, formats, bad input, and the host report.
//! (The findings of each test bundle are checked exactly by the unit tests in src/audit.)

use std::path::Path;

use serde_json::Value;

use crate::ensure;
use crate::util::*;

pub const TESTS: &[(&str, crate::TestFn)] = &[
    ("audit::bundle_and_fail_on_exit_codes", exit_codes),
    ("audit::json_and_sarif_parse", formats),
    ("audit::bad_input_exits_2", bad_input),
    ("audit::host_report", host_report),
    ("audit::live_container_read_from_proc", live),
    ("audit::diff_of_configs_and_policies", diff),
    (
        "audit::bind_sources_rated_where_their_symlinks_lead",
        symlinked_sources,
    ),
];

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/audit")
        .join(format!("{name}.json"))
        .to_string_lossy()
        .into_owned()
}

fn audit(args: &[&str]) -> Out {
    std::process::Command::new(CONTAIN)
        .arg("audit")
        .args(args)
        .out()
}

fn exit_codes() -> R {
    // A real bundle under the default policy: the report names what holds.
    let b = Bundle::new();
    let o = audit(&["--bundle", b.path().to_str().unwrap()]);
    ensure!(o.code == 0, "audit of a bundle: {} {}", o.code, o.stderr);
    ensure!(
        o.stdout.contains("under policy default")
            && o.stdout.contains("userns    added by the policy"),
        "{}",
        o.stdout
    );
    let p = fixture("privileged-like");
    let o = audit(&["--config", &p, "--fail-on", "critical"]);
    ensure!(
        o.code == 1,
        "critical findings with --fail-on critical: exit {}",
        o.code
    );
    ensure!(o.stdout.contains("CA-CAP-001"), "{}", o.stdout);
    let s = fixture("strict");
    let o = std::process::Command::new(CONTAIN)
        .args([
            "--policy",
            "strict",
            "audit",
            "--config",
            &s,
            "--fail-on",
            "medium",
        ])
        .out();
    ensure!(
        o.code == 0,
        "strict bundle under strict, --fail-on medium: exit {} {}",
        o.code,
        o.stdout
    );
    let o = audit(&["--config", &s, "--fail-on", "low"]);
    ensure!(
        o.code == 1,
        "low findings with --fail-on low: exit {}",
        o.code
    );
    pass()
}

fn formats() -> R {
    let p = fixture("privileged-like");
    let o = audit(&["--config", &p, "--format", "json"]);
    ensure!(o.code == 0, "json: {}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout)?;
    ensure!(
        v["policy"] == "default" && v["findings"].as_array().is_some_and(|f| !f.is_empty()),
        "{v}"
    );
    let o = audit(&["--config", &p, "--format", "sarif"]);
    ensure!(o.code == 0, "sarif: {}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout)?;
    ensure!(
        v["version"] == "2.1.0"
            && v["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .is_some_and(|r| r.len() >= 20),
        "{v}"
    );
    pass()
}

fn bad_input() -> R {
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("config.json");
    std::fs::write(&bad, "{\"ociVersion\": ")?;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--config".into(), bad.to_string_lossy().into()],
            "malformed JSON",
        ),
        (
            vec!["--bundle".into(), "/nonexistent/bundle".into()],
            "cannot read",
        ),
        (
            vec![
                "--config".into(),
                fixture("strict"),
                "--format".into(),
                "yaml".into(),
            ],
            "invalid value",
        ),
    ];
    for (args, needle) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = audit(&a);
        ensure!(
            o.code == 2 && o.stderr.contains(needle),
            "{a:?}: exit {} {:?}",
            o.code,
            o.stderr
        );
    }
    std::fs::write(
        &bad,
        r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}, "windows": {}}"#,
    )?;
    let o = audit(&["--config", bad.to_str().unwrap()]);
    ensure!(
        o.code == 2 && o.stderr.contains("Linux containers only"),
        "windows config: {} {:?}",
        o.code,
        o.stderr
    );
    let o = std::process::Command::new(CONTAIN)
        .args([
            "--policy",
            "nosuch",
            "audit",
            "--config",
            &fixture("strict"),
        ])
        .out();
    ensure!(
        o.code == 2 && o.stderr.contains("unknown policy"),
        "unknown policy: {} {:?}",
        o.code,
        o.stderr
    );
    pass()
}

fn host_report() -> R {
    let o = audit(&["--host", "--format", "json"]);
    ensure!(o.code == 0, "host: {}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout)?;
    let features: Vec<&str> = v["host"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["feature"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        features
            == [
                "user namespaces",
                "seccomp actions",
                "landlock",
                "idmapped mounts",
                "cgroups",
                "microVM stage"
            ],
        "{features:?}"
    );
    // The microVM line says what opening /dev/kvm says.
    let vm = &v["host"][5];
    ensure!(
        vm["available"].as_bool() == Some(kvm_missing().is_none()),
        "microVM stage: {vm}"
    );
    pass()
}

fn live_ids(rt: &Runtime, id: &str) -> Result<Vec<String>, libtest_mimic::Failed> {
    let o = rt.exec(&["audit", id, "--format", "json"]);
    ensure!(o.code == 0, "audit {id}: {} {}", o.code, o.stderr);
    let v: Value = serde_json::from_str(&o.stdout)?;
    Ok(v["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

fn live() -> R {
    let rt = Runtime::new();
    let (mut b, b2) = (Bundle::new(), Bundle::new());
    b.sh("sleep 30");
    let o = rt.create(&b, "hard");
    ensure!(o.code == 0, "create: {}", o.stderr);
    let o = rt.with_policy("runc", "create", &b2, "soft");
    ensure!(o.code == 0, "create under runc: {}", o.stderr);
    let hard = live_ids(&rt, "hard")?;
    let soft = live_ids(&rt, "soft")?;
    for id in ["CA-USERNS-001", "CA-SECCOMP-001", "CA-LANDLOCK-001"] {
        ensure!(!hard.iter().any(|x| x == id), "default: {id} in {hard:?}");
        ensure!(
            soft.iter().any(|x| x == id),
            "runc: {id} missing from {soft:?}"
        );
    }
    // Started, the init has installed its filter: the kernel shows it.
    ensure!(rt.exec(&["start", "hard"]).code == 0, "start");
    let o = rt.exec(&["audit", "hard", "--format", "json"]);
    let v: Value = serde_json::from_str(&o.stdout)?;
    ensure!(
        v["enforced"][0]["what"] == "Seccomp 2"
            && !v["findings"].to_string().contains("CA-SECCOMP-001"),
        "running: {v}"
    );
    let o = rt.exec(&["audit", "nosuch"]);
    ensure!(
        o.code == 2 && o.stderr.contains("does not exist"),
        "missing id: {} {}",
        o.code,
        o.stderr
    );
    for id in ["hard", "soft"] {
        ensure!(rt.exec(&["delete", "--force", id]).code == 0, "delete {id}");
    }
    pass()
}

fn diff() -> R {
    let docker = fixture("docker-like");
    let o = audit(&[
        "--config",
        &docker,
        "--diff-policy",
        "runc",
        "--format",
        "json",
    ]);
    ensure!(o.code == 0, "diff-policy: {} {}", o.code, o.stderr);
    let v: Value = serde_json::from_str(&o.stdout)?;
    let ids = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    ensure!(
        ids("weakened") == ["CA-USERNS-001", "CA-SECCOMP-001", "CA-LANDLOCK-001"],
        "runc weakens: {:?}",
        ids("weakened")
    );
    ensure!(
        v["score_after"].as_u64() < v["score_before"].as_u64(),
        "{v}"
    );
    // The other way round the same findings are tightened, and --fail-on looks at what is
    // weakened only.
    let strict = fixture("strict");
    let o = audit(&[
        "--config",
        &docker,
        "--diff-config",
        &strict,
        "--fail-on",
        "low",
    ]);
    ensure!(
        o.code == 0 && o.stdout.contains("weakens (0)"),
        "strict vs docker-like: {} {}",
        o.code,
        o.stdout
    );
    let o = audit(&[
        "--config",
        &strict,
        "--diff-config",
        &docker,
        "--fail-on",
        "low",
    ]);
    ensure!(
        o.code == 1,
        "docker-like vs strict weakens: exit {}",
        o.code
    );
    let o = audit(&[
        "--config",
        &strict,
        "--diff-config",
        &docker,
        "--format",
        "sarif",
    ]);
    ensure!(o.code == 2, "sarif diff: exit {}", o.code);
    pass()
}

/// Issue 18, item 8: a bind whose source is an innocent-looking symlink to `/` on this host is
/// rated by where it leads (CA-MOUNT-001, the resolution named), as the kernel will bind it.
fn symlinked_sources() -> R {
    let t = tempfile::tempdir()?;
    let link = t.path().join("data");
    std::os::unix::fs::symlink("/", &link)?;
    let mut b = Bundle::new();
    b.set(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": link, "options": ["rbind", "ro"]
        }))
    });
    let o = audit(&["--bundle", b.path().to_str().unwrap(), "--format", "json"]);
    ensure!(o.code == 0, "audit: {} {}", o.code, o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout)?;
    let hit = v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["id"] == "CA-MOUNT-001");
    ensure!(
        hit.is_some_and(|f| f.to_string().contains("resolves to /")),
        "{}",
        o.stdout
    );
    pass()
}
