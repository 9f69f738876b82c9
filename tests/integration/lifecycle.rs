//! create -> start -> state -> kill -> delete, run in the foreground and detached.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("lifecycle::run_prints_and_exits", run_prints_and_exits),
    ("lifecycle::errors_in_runcs_shape", errors_in_runcs_shape),
    (
        "lifecycle::the_init_logs_to_the_log_file",
        the_init_logs_to_the_log_file,
    ),
    (
        "lifecycle::run_propagates_exit_code_and_signal",
        run_propagates_exit_code_and_signal,
    ),
    (
        "lifecycle::create_start_state_kill_delete",
        create_start_state_kill_delete,
    ),
    (
        "lifecycle::exec_fifo_holds_the_workload_until_start",
        exec_fifo_holds_the_workload,
    ),
    ("lifecycle::run_detached_and_list", run_detached_and_list),
    ("lifecycle::runc_spec_bundle_runs", runc_spec_bundle_runs),
    ("lifecycle::same_results_as_runc", same_results_as_runc),
    (
        "lifecycle::kill_ends_a_created_container_as_runc",
        kill_created,
    ),
    ("lifecycle::two_hundred_cycles_leak_nothing", || {
        on_private_root(two_hundred_cycles)
    }),
    ("lifecycle::version_and_features", version_and_features),
    ("lifecycle::log_json_on_error", log_json_on_error),
];

fn run_prints_and_exits() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo hello; echo pid=$$");
    let o = rt.run(&b, "c1");
    ensure!(o.code == 0, "exit {}: {}", o.code, o.stderr);
    ensure!(o.stdout == "hello\npid=1\n", "stdout {:?}", o.stdout);
    rt.assert_clean(&b, "c1")?;
    pass()
}

fn run_propagates_exit_code_and_signal() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("exit 7");
    let o = rt.run(&b, "c1");
    ensure!(o.code == 7, "exit {} (want 7): {}", o.code, o.stderr);
    // Killed by a signal: 128 + N, as runc reports it.
    b.sh("sleep 1000");
    let child = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("c2")
        .spawn()?;
    let running = rt.wait_status("c2", "running");
    ensure!(running, "c2 never ran");
    ensure!(rt.exec(&["kill", "c2", "KILL"]).code == 0, "kill failed");
    let o: Out = child.wait_with_output()?.into();
    ensure!(o.code == 137, "exit {} (want 137): {}", o.code, o.stderr);
    rt.assert_clean(&b, "c2")?;
    pass()
}

fn create_start_state_kill_delete() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    let pidfile = b.path().join("pid");
    let o: Out = rt
        .cmd()
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg("--pid-file")
        .arg(&pidfile)
        .arg("c1")
        .out();
    ensure!(o.code == 0, "create: {}", o.stderr);
    let st = rt.state("c1").ok_or("no state")?;
    ensure!(st["status"] == "created", "status {}", st["status"]);
    ensure!(
        st["id"] == "c1" && st["ociVersion"].is_string(),
        "state {st}"
    );
    let pid = st["pid"].as_i64().unwrap();
    // The init is in the container's cgroup in every hierarchy (v1 ones and the v2 one).
    let rel = b.cgroup_rel();
    let mut hierarchies = 0;
    for h in std::fs::read_dir("/sys/fs/cgroup")?.flatten() {
        let procs = h.path().join(&rel).join("cgroup.procs");
        if h.path().join("cgroup.procs").exists() {
            hierarchies += 1;
            let text =
                std::fs::read_to_string(&procs).map_err(|e| format!("{}: {e}", procs.display()))?;
            ensure!(
                text.lines().any(|l| l == pid.to_string()),
                "init {pid} not in {}",
                procs.display()
            );
        }
    }
    ensure!(
        hierarchies > 0,
        "no cgroup hierarchy found under /sys/fs/cgroup"
    );
    ensure!(
        std::fs::read_to_string(&pidfile)? == pid.to_string(),
        "pid file differs from state pid"
    );
    ensure!(
        st["bundle"] == b.path().to_string_lossy().as_ref(),
        "bundle {}",
        st["bundle"]
    );
    let o = rt.exec(&["start", "c1"]);
    ensure!(o.code == 0, "start: {}", o.stderr);
    ensure!(
        rt.status("c1") == "running",
        "status after start: {}",
        rt.status("c1")
    );
    let o = rt.exec(&["start", "c1"]);
    ensure!(
        o.code != 0 && o.stderr.contains("running"),
        "second start: {} {}",
        o.code,
        o.stderr
    );
    let o = rt.exec(&["delete", "c1"]);
    ensure!(
        o.code != 0 && o.stderr.contains("running"),
        "delete running: {} {}",
        o.code,
        o.stderr
    );
    let o = rt.exec(&["kill", "c1", "KILL"]);
    ensure!(o.code == 0, "kill: {}", o.stderr);
    let stopped = rt.wait_status("c1", "stopped");
    ensure!(stopped, "not stopped after SIGKILL: {}", rt.status("c1"));
    ensure!(
        rt.state("c1").unwrap()["pid"] == 0,
        "stopped container reports a pid"
    );
    let o = rt.exec(&["kill", "c1", "TERM"]);
    ensure!(o.code != 0, "kill of a stopped container succeeded");
    let o = rt.exec(&["delete", "c1"]);
    ensure!(o.code == 0, "delete: {}", o.stderr);
    rt.assert_clean(&b, "c1")?;
    ensure!(
        rt.exec(&["state", "c1"]).code != 0,
        "state of a deleted container succeeded"
    );
    let o = rt.exec(&["delete", "--force", "c1"]);
    ensure!(
        o.code == 0,
        "delete --force of a missing container: {}",
        o.stderr
    );
    pass()
}

fn exec_fifo_holds_the_workload() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["root"]["readonly"] = false.into());
    b.sh("echo started > /started; sleep 1000");
    let o = rt.create(&b, "c1");
    ensure!(o.code == 0, "create: {}", o.stderr);
    std::thread::sleep(Duration::from_millis(200));
    ensure!(
        !b.rootfs().join("started").exists(),
        "the workload ran before start"
    );
    ensure!(rt.exec(&["start", "c1"]).code == 0, "start failed");
    let mut ok = false;
    for _ in 0..200 {
        if b.rootfs().join("started").exists() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ensure!(ok, "the workload did not run after start");
    ensure!(
        rt.exec(&["delete", "--force", "c1"]).code == 0,
        "delete --force failed"
    );
    rt.assert_clean(&b, "c1")?;
    pass()
}

fn run_detached_and_list() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    let o: Out = rt
        .cmd()
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg("c1")
        .out();
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    ensure!(rt.status("c1") == "running", "status {}", rt.status("c1"));
    let o = rt.exec(&["list", "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(&o.stdout).map_err(|e| format!("list json: {e}: {}", o.stdout))?;
    ensure!(
        v[0]["id"] == "c1" && v[0]["status"] == "running",
        "list {v}"
    );
    let o = rt.exec(&["list"]);
    ensure!(
        o.stdout.starts_with("ID") && o.stdout.contains("c1") && o.stdout.contains("running"),
        "table {}",
        o.stdout
    );
    let o = rt.exec(&["list", "-q"]);
    ensure!(o.stdout == "c1\n", "quiet {:?}", o.stdout);
    let o = rt.exec(&["kill", "--all", "c1", "9"]);
    ensure!(o.code == 0, "kill --all: {}", o.stderr);
    ensure!(rt.exec(&["delete", "--force", "c1"]).code == 0, "delete");
    rt.assert_clean(&b, "c1")?;
    pass()
}

fn runc_spec_bundle_runs() -> R {
    let Some(runc) = which("runc") else {
        return skip("runc is not installed (apt-get install runc)");
    };
    let rt = Runtime::new();
    let b = Bundle::new();
    std::fs::remove_file(b.path().join("config.json"))?;
    let o = std::process::Command::new(runc)
        .arg("spec")
        .current_dir(b.path())
        .output()?;
    ensure!(o.status.success(), "runc spec failed");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json"))?)?;
    v["process"]["terminal"] = false.into();
    v["process"]["args"] = serde_json::json!(["sh", "-c", "echo ok; hostname"]);
    std::fs::write(b.path().join("config.json"), serde_json::to_vec(&v)?)?;
    let o = rt.run(&b, "c1");
    ensure!(
        o.code == 0 && o.stdout == "ok\nrunc\n",
        "exit {} stdout {:?} stderr {}",
        o.code,
        o.stdout,
        o.stderr
    );
    pass()
}

/// The same probe under runc and contain: what the process sees must match.
fn same_results_as_runc() -> R {
    let Some(runc) = which("runc") else {
        return skip("runc is not installed (apt-get install runc)");
    };
    let probe = "id; hostname; echo pid=$$; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; \
                 ulimit -n; umask; cat /proc/self/uid_map; ls /dev | sort | tr '\\n' ' '; echo; \
                 awk '{print $2, $3}' /proc/self/mounts | sort | tr '\\n' ';'; echo; \
                 touch /proc/sys/x 2>&1 | head -c 0; (echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo ro-sys; \
                 cat /proc/kcore | wc -c; ls /sys/firmware | wc -l";
    let mut b = Bundle::new();
    b.sh(probe);
    let rt = Runtime::new();
    // Under the `runc` policy contain adds nothing to the config.
    let ours = rt.with_policy("runc", "run", &b, "c1");
    ensure!(ours.code == 0, "contain: {}", ours.stderr);
    let theirs = runc_run(&runc, &b, "r1");
    ensure!(theirs.code == 0, "runc: {}", theirs.stderr);
    // Under the default policy the same config gets a user namespace and a seccomp filter.
    let hardened = rt.run(&b, "c2");
    ensure!(
        hardened.code == 0,
        "contain (default policy): {}",
        hardened.stderr
    );
    ensure!(
        hardened.stdout.contains("Seccomp:\t2") && theirs.stdout.contains("Seccomp:\t0"),
        "seccomp: contain {:?}, runc {:?}",
        hardened.stdout.lines().find(|l| l.starts_with("Seccomp")),
        theirs.stdout.lines().find(|l| l.starts_with("Seccomp"))
    );
    let map = |o: &str| {
        o.lines()
            .find(|l| l.trim_start().starts_with("0 "))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
    };
    ensure!(
        map(&hardened.stdout).is_some_and(|h| h != "0")
            && map(&theirs.stdout).as_deref() == Some("0"),
        "uid_map: contain {:?}, runc {:?}",
        map(&hardened.stdout),
        map(&theirs.stdout)
    );
    // One difference by design: contain also binds the cgroup2 hierarchy of a hybrid host
    // under /sys/fs/cgroup/unified (runc leaves it out). Everything else is the same.
    let ours_stdout = ours.stdout.replace("/sys/fs/cgroup/unified cgroup2;", "");
    let ours_l: Vec<&str> = ours_stdout.lines().collect();
    let theirs_l: Vec<&str> = theirs.stdout.lines().collect();
    for (i, (a, b)) in ours_l.iter().zip(theirs_l.iter()).enumerate() {
        // The hostname default differs by design ("contain" vs the bundle's), the config is the same.
        ensure!(a == b, "line {i} differs:\n contain: {a}\n runc:    {b}");
    }
    ensure!(
        ours_l.len() == theirs_l.len(),
        "contain printed {} lines, runc {}",
        ours_l.len(),
        theirs_l.len()
    );
    pass()
}

fn two_hundred_cycles() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("true");
    for i in 0..200 {
        let id = format!("cycle{i}");
        let o = rt.create(&b, &id);
        ensure!(o.code == 0, "create {i}: {}", o.stderr);
        let o = rt.exec(&["start", &id]);
        ensure!(o.code == 0, "start {i}: {}", o.stderr);
        let stopped = rt.wait_status(&id, "stopped");
        ensure!(stopped, "cycle {i}: not stopped");
        let o = rt.exec(&["delete", &id]);
        ensure!(o.code == 0, "delete {i}: {}", o.stderr);
        rt.assert_clean(&b, &id)?;
    }
    let root = rt.root.path().to_string_lossy().into_owned();
    for p in std::fs::read_dir("/proc")?.flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        ensure!(
            !String::from_utf8_lossy(&cmdline).contains(&root),
            "process {:?} of the runtime left",
            p.file_name()
        );
    }
    ensure!(
        std::fs::read_dir(rt.root.path())?.count() == 0,
        "state left in the root"
    );
    ensure!(
        host_mounts_under(b.path()).is_empty(),
        "mounts under the bundle on the host"
    );
    pass()
}

fn version_and_features() -> R {
    let rt = Runtime::new();
    let o = rt.exec(&["--version"]);
    let lines: Vec<&str> = o.stdout.lines().collect();
    ensure!(
        lines.len() == 3
            && lines[0].starts_with("contain version ")
            && lines[1].starts_with("commit: ")
            && lines[2].starts_with("spec: 1."),
        "--version: {:?}",
        o.stdout
    );
    let o = rt.exec(&["features"]);
    let f: serde_json::Value = serde_json::from_str(&o.stdout)?;
    ensure!(
        f["linux"]["seccomp"]["enabled"] == true
            && f["linux"]["seccomp"]["actions"]
                .as_array()
                .is_some_and(|a| a.len() == 9),
        "features: seccomp {}",
        f["linux"]["seccomp"]
    );
    ensure!(
        f["linux"]["mountExtensions"]["idmap"]["enabled"] == true,
        "features does not claim idmapped mounts"
    );
    ensure!(
        f["hooks"].as_array().map(Vec::len) == Some(6),
        "hooks {}",
        f["hooks"]
    );
    // The microVM's devices are listed (this build has the stage).
    ensure!(
        f["annotations"]["io.contain.microvm.devices"]
            .as_str()
            .is_some_and(|d| d.contains("virtio-console") && d.contains("virtio-blk")),
        "features: microVM devices {}",
        f["annotations"]
    );
    // Go-style single-dash flags, as go-runc and conmon send them.
    let o: Out = std::process::Command::new(CONTAIN)
        .args([
            "-root",
            &rt.root.path().to_string_lossy(),
            "-log-format=json",
            "list",
            "-format",
            "json",
        ])
        .out();
    ensure!(
        o.code == 0 && o.stdout.trim() == "[]",
        "go-style flags: {} {} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    pass()
}

fn log_json_on_error() -> R {
    let rt = Runtime::new();
    let log = rt.root.path().join("log.json");
    let o: Out = rt
        .cmd()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "start", "nope"])
        .out();
    ensure!(o.code == 1, "exit {}", o.code);
    ensure!(o.stderr.contains("does not exist"), "stderr {}", o.stderr);
    let text = std::fs::read_to_string(&log)?;
    let v: serde_json::Value = serde_json::from_str(text.lines().next().ok_or("empty log")?)?;
    ensure!(
        v["level"] == "error"
            && v["msg"].as_str().unwrap_or("").contains("nope")
            && v["time"].is_string(),
        "log {v}"
    );
    pass()
}

/// The shape of one stderr line: "logrus" (`time="..." level=error msg=...`), "json", or
/// "plain".
fn shape(line: &str) -> &'static str {
    if line.starts_with("time=") && line.contains(" level=error msg=") {
        "logrus"
    } else if serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|v| v["level"] == "error" && v["msg"].is_string() && v["time"].is_string())
    {
        "json"
    } else {
        "plain"
    }
}

/// Tools decide that a runtime command failed from its exit status and from the error in
/// runc's shape on stderr or in the --log file. For each failing command (missing, empty and
/// stopped ids; a usage error), contain's exit status and the shape of each stderr line and
/// log line are runc's, without --log, with --log, and with --log-format json.
fn errors_in_runcs_shape() -> R {
    let runc = which("runc");
    let mut b = Bundle::new();
    b.sh("true");
    let rt = Runtime::new();
    let o = rt.create(&b, "done");
    ensure!(o.code == 0, "create: {}", o.stderr);
    ensure!(rt.exec(&["start", "done"]).code == 0, "start");
    ensure!(rt.wait_status("done", "stopped"), "not stopped");
    let runc_root = tempfile::tempdir()?;
    if let Some(runc) = &runc {
        let o: Out = Command::new(runc)
            .arg("--root")
            .arg(runc_root.path())
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg("done")
            .out();
        ensure!(o.code == 0, "runc create: {}", o.stderr);
        let o: Out = Command::new(runc)
            .arg("--root")
            .arg(runc_root.path())
            .args(["start", "done"])
            .out();
        ensure!(o.code == 0, "runc start: {}", o.stderr);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let cases: &[&[&str]] = &[
        &["delete", "nosuch"],
        &["kill", "nosuch", "TERM"],
        &["state", "nosuch"],
        &["start", "nosuch"],
        &["state", ""],
        &["kill", "done", "TERM"],
        &["start", "done"],
        &["state"],
    ];
    for args in cases {
        for mode in ["stderr", "log", "json"] {
            let run = |bin: &Path, root: &Path| -> (Out, Vec<&'static str>, Vec<&'static str>) {
                let log = root.join(format!("log-{mode}"));
                let _ = std::fs::remove_file(&log);
                let mut c = Command::new(bin);
                c.arg("--root").arg(root);
                match mode {
                    "log" => {
                        c.arg("--log").arg(&log);
                    }
                    "json" => {
                        c.args(["--log-format", "json"]);
                    }
                    _ => {}
                }
                let o = c.args(*args).stdin(Stdio::null()).out();
                // Log-shaped lines, and whether any plain line came (a usage text, or the
                // error printed plainly beside a log file).
                let mut err: Vec<_> = o
                    .stderr
                    .lines()
                    .map(shape)
                    .filter(|s| *s != "plain")
                    .collect();
                if mode == "log" && o.stderr.lines().any(|l| shape(l) == "plain") {
                    err.push("plain");
                }
                let logged: Vec<_> = std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .map(shape)
                    .collect();
                (o, err, logged)
            };
            let (o, err, logged) = run(Path::new(CONTAIN), rt.root.path());
            let want_err: &[&str] = match mode {
                "stderr" => &["logrus"],
                "json" => &["json"],
                _ => &["plain"],
            };
            ensure!(
                o.code != 0
                    && err == want_err
                    && logged
                        == (if mode == "log" {
                            vec!["logrus"]
                        } else {
                            vec![]
                        }),
                "contain {mode} {args:?}: exit {}, stderr {:?} ({err:?}), log {logged:?}",
                o.code,
                o.stderr
            );
            if let Some(runc) = &runc {
                let (r, rerr, rlogged) = run(runc, runc_root.path());
                ensure!(
                    r.code == o.code && rerr == err && rlogged == logged,
                    "{mode} {args:?}: runc exit {} {:?} {rlogged:?}, contain exit {} {:?} {logged:?}",
                    r.code,
                    r.stderr,
                    o.code,
                    o.stderr
                );
            }
        }
    }
    if let Some(runc) = &runc {
        let _ = Command::new(runc)
            .arg("--root")
            .arg(runc_root.path())
            .args(["delete", "--force", "done"])
            .out();
    }
    ensure!(rt.exec(&["delete", "done"]).code == 0, "delete");
    pass()
}

/// The init logs after stage 1 closed every descriptor it did not keep: its lines (here the
/// Landlock result it logs with --debug) still reach the --log file, not a closed or reused
/// descriptor, and nothing of the log reaches the container's stderr.
fn the_init_logs_to_the_log_file() -> R {
    let mut b = Bundle::new();
    b.sh("ls -l /proc/self/fd/ | grep -c log.txt");
    let rt = Runtime::new();
    let log = rt.root.path().join("log.txt");
    let o = rt
        .cmd()
        .arg("--debug")
        .arg("--log")
        .arg(&log)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("lg")
        .out();
    ensure!(
        o.code == 1 && o.stdout == "0\n",
        "run: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let text = std::fs::read_to_string(&log)?;
    ensure!(
        text.lines()
            .any(|l| l.contains("level=debug") && l.contains("landlock mounts:")),
        "the init's line is not in the log: {text}"
    );
    ensure!(
        !o.stderr.contains("landlock"),
        "log lines reached the container's stderr: {}",
        o.stderr
    );
    pass()
}

/// `kill ID TERM` (HUP, INT) on a container that is created and not started ends it, as it
/// ends runc's (its Go init exits on them), although a pid namespace's init ignores signals it
/// has no handler for; once started, the workload's own dispositions rule (a `sleep` as pid 1
/// ignores TERM under both runtimes). Under both policies.
fn kill_created() -> R {
    let Some(runc) = which("runc") else {
        return skip("runc is not installed (apt-get install runc)");
    };
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    let rt = Runtime::new();
    let runc_root = tempfile::tempdir()?;
    let runc_cmd = |args: &[&str]| {
        Command::new(&runc)
            .arg("--root")
            .arg(runc_root.path())
            .args(args)
            .current_dir(b.path())
            .out()
    };
    for (i, sig) in ["TERM", "HUP", "2"].into_iter().enumerate() {
        for policy in ["default", "runc"] {
            let id = format!("k{i}{policy}");
            let o = rt
                .cmd()
                .args(["--policy", policy, "create", "--bundle"])
                .arg(b.path())
                .arg(&id)
                .out();
            ensure!(o.code == 0, "create: {}", o.stderr);
            let o = rt.exec(&["kill", &id, sig]);
            ensure!(o.code == 0, "kill {sig}: {}", o.stderr);
            ensure!(
                rt.wait_status(&id, "stopped"),
                "{policy}: a created container is {} after kill {sig}",
                rt.status(&id)
            );
            ensure!(rt.exec(&["delete", &id]).code == 0, "delete {id}");
            rt.assert_clean(&b, &id)?;
        }
        let rid = format!("r{i}");
        let o = runc_cmd(&["create", &rid]);
        ensure!(o.code == 0, "runc create: {}", o.stderr);
        ensure!(runc_cmd(&["kill", &rid, sig]).code == 0, "runc kill");
        let mut st = String::new();
        for _ in 0..100 {
            st = runc_cmd(&["state", &rid]).stdout;
            if st.contains("\"stopped\"") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        ensure!(
            st.contains("\"stopped\""),
            "runc's created container after kill {sig}: {st}"
        );
        runc_cmd(&["delete", "--force", &rid]);
    }
    // Started: sleep as pid 1 ignores TERM, as under runc. Still running `after` the kill.
    let term_after_start =
        |b: &Bundle, id: &str, after: Duration, what: &str| -> Result<(), libtest_mimic::Failed> {
            let o = rt.create(b, id);
            ensure!(o.code == 0, "create: {}", o.stderr);
            ensure!(rt.exec(&["start", id]).code == 0, "start");
            ensure!(rt.exec(&["kill", id, "TERM"]).code == 0, "kill");
            std::thread::sleep(after);
            ensure!(rt.status(id) == "running", "{what}: {}", rt.status(id));
            ensure!(rt.exec(&["delete", "--force", id]).code == 0, "delete");
            rt.assert_clean(b, id)
        };
    term_after_start(
        &b,
        "started",
        Duration::from_millis(300),
        "a started sleep ended on TERM",
    )?;
    // A TERM sent as soon as `start` returned finds the init still in its last steps (here
    // held by a startContainer hook): it is the workload's signal, not the waiting init's.
    b.set(|c| {
        c["hooks"] = serde_json::json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 1"]}]});
    });
    term_after_start(
        &b,
        "late",
        Duration::from_millis(1500),
        "a TERM right after start ended the container",
    )?;
    pass()
}
