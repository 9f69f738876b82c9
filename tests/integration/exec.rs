//! `exec`: a second process in a running container, observed from inside.

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    (
        "exec::joins_every_namespace_and_the_cgroup",
        joins_everything,
    ),
    ("exec::flags_and_process_json", flags_and_process_json),
    ("exec::bad_targets_and_input", bad_targets),
    ("exec::pause_resume_and_ps", pause_resume_ps),
    ("exec::ignore_paused", ignore_paused),
    ("exec::update_changes_limits", update_limits),
    (
        "exec::user_without_access_to_the_cwd_starts_there",
        exec_user_cwd,
    ),
    ("exec::update_replaces_device_rules", update_devices),
    (
        "exec::update_never_denies_what_both_rule_sets_allow",
        update_devices_no_gap,
    ),
    ("exec::events_stats_and_oom_kill", events_and_oom),
    (
        "exec::runtime_binary_unreachable_during_exec",
        binary_unreachable_during_exec,
    ),
];

fn running(rt: &Runtime, b: &Bundle, id: &str) -> Result<i64, libtest_mimic::Failed> {
    let o = rt
        .cmd()
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg(id)
        .out();
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    Ok(rt.state(id).ok_or("no state")?["pid"].as_i64().unwrap_or(0))
}

fn joins_everything() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        c["process"]["capabilities"] =
            json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]});
    });
    b.sh("sleep 1000");
    let pid = running(&rt, &b, "c")?;
    let mut want = String::new();
    for n in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
        want.push_str(&std::fs::read_link(format!("/proc/{pid}/ns/{n}"))?.to_string_lossy());
        want.push('\n');
    }
    let o = rt.exec(&["exec", "c", "sh", "-c", "for n in pid net ipc uts mnt cgroup user; do readlink /proc/self/ns/$n; done; \
        cat /proc/self/cgroup | md5sum; cat /proc/1/cgroup | md5sum; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status | tr -d '\\t'; exit 9"]);
    ensure!(o.code == 9, "exec exit {} (want 9): {}", o.code, o.stderr);
    let l: Vec<&str> = o.stdout.lines().collect();
    ensure!(l.len() >= 11, "output {:?}", o.stdout);
    ensure!(
        l[..7].join("\n") + "\n" == want,
        "namespaces differ:\n{}\nwant\n{want}",
        l[..7].join("\n")
    );
    ensure!(l[7] == l[8], "exec is not in the init's cgroups");
    ensure!(
        l[9] == "CapBnd:0000000000000020" && l[10] == "NoNewPrivs:1",
        "treatment differs: {:?}",
        &l[9..]
    );
    pass()
}

fn flags_and_process_json() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    running(&rt, &b, "c")?;
    let o = rt.exec(&[
        "exec",
        "--user",
        "1000:1000",
        "--cwd",
        "/tmp",
        "-e",
        "FOO=bar",
        "--additional-gids",
        "10",
        "c",
        "sh",
        "-c",
        "id -u; id -g; id -G; pwd; echo $FOO",
    ]);
    ensure!(o.code == 0, "exec: {}", o.stderr);
    ensure!(
        o.stdout == "1000\n1000\n1000 10\n/tmp\nbar\n",
        "flags: {:?}",
        o.stdout
    );
    let proc_json = b.path().join("process.json");
    std::fs::write(
        &proc_json,
        serde_json::to_vec(
            &json!({"args": ["sh", "-c", "echo $X; pwd"], "env": ["X=from-json", "PATH=/bin"], "cwd": "/etc", "user": {"uid": 0, "gid": 0}}),
        )?,
    )?;
    let o = rt
        .cmd()
        .args(["exec", "--process"])
        .arg(&proc_json)
        .arg("c")
        .out();
    ensure!(
        o.code == 0 && o.stdout == "from-json\n/etc\n",
        "process.json: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    // Detached, with a pid file: the process runs in the container after exec returns.
    let pid_file = b.path().join("exec.pid");
    let o = rt
        .cmd()
        .args(["exec", "-d", "--pid-file"])
        .arg(&pid_file)
        .args(["c", "sleep", "30"])
        .out();
    ensure!(o.code == 0, "exec -d: {}", o.stderr);
    let pid: i32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    // The pid is the process's from the start; its name changes when it has exec'd, which
    // may be just after `exec -d` returns (as with runc).
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let named = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        comm().trim() == "sleep"
    });
    ensure!(named, "pid file names {:?}", comm());
    pass()
}

fn bad_targets() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let o = rt.exec(&["exec", "nope", "true"]);
    exec_fails_with(&o, "does not exist")?;
    b.sh("true");
    ensure!(rt.create(&b, "c").code == 0, "create");
    ensure!(rt.exec(&["start", "c"]).code == 0, "start");
    ensure!(rt.wait_status("c", "stopped"), "did not stop");
    let o = rt.exec(&["exec", "c", "true"]);
    exec_fails_with(&o, "stopped")?;
    ensure!(rt.exec(&["delete", "c"]).code == 0, "delete");
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    running(&rt, &b, "d")?;
    let bad = b.path().join("bad.json");
    std::fs::write(&bad, "{\"args\": [")?;
    let o = rt
        .cmd()
        .args(["exec", "--process"])
        .arg(&bad)
        .arg("d")
        .out();
    exec_fails_with(&o, "malformed process JSON")?;
    let o = rt.exec(&["exec", "d", "/no/such/thing"]);
    exec_fails_with(&o, "/no/such/thing")?;
    let o = rt.exec(&["exec", "--apparmor", "x", "d", "true"]);
    exec_fails_with(&o, "--apparmor")?;
    ensure!(rt.status("d") == "running", "the container was disturbed");
    pass()
}

/// CVE-2019-5736, the way it worked: a process in the container watches /proc for a process
/// of the runtime entering it and opens its /proc/<pid>/exe to overwrite the runtime. The
/// runtime used here is a copy, so that a regression could not damage the real binary; each
/// `exec` process is non-dumpable until it has exec'd, so the open is refused.
fn binary_unreachable_during_exec() -> R {
    let copy_dir = tempfile::tempdir()?;
    let copy = copy_dir.path().join("contain");
    std::fs::copy(CONTAIN, &copy)?;
    let before = std::fs::read(&copy)?;
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["root"]["readonly"] = json!(false));
    // Shell builtins only (no fork per probe), so the watcher is fast enough to see the window.
    b.sh("while [ ! -e /stop ]; do for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n = 1 ] && continue; [ $n = $$ ] && continue; \
          if { read -r -n 4 x < $p/exe; } 2>/dev/null; then case \"$x\" in *ELF*) [ -e /proc/$n/cmdline ] && read -r c < /proc/$n/comm && [ \"$c\" = contain ] && echo LEAK $n >> /watch.log;; esac; \
          ( : > $p/exe ) 2>/dev/null && echo WROTE $n >> /watch.log; \
          elif [ -e $p/stat ]; then echo DENIED $n >> /watch.log; fi; done; done; sleep 1000");
    let o = std::process::Command::new(&copy)
        .arg("--root")
        .arg(rt.root.path())
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg("w")
        .out();
    ensure!(o.code == 0, "run: {}", o.stderr);
    // Batches of execs until the watcher has caught one in the window (at most 300): a run in
    // which it never did would prove nothing, and fails.
    let watch_log = b.rootfs().join("watch.log");
    for _ in 0..15 {
        for _ in 0..20 {
            let o = std::process::Command::new(&copy)
                .arg("--root")
                .arg(rt.root.path())
                .args(["exec", "w", "true"])
                .out();
            ensure!(o.code == 0, "exec exited {}: {}", o.code, o.stderr);
        }
        if std::fs::read_to_string(&watch_log)
            .unwrap_or_default()
            .contains("DENIED")
        {
            break;
        }
    }
    std::fs::write(b.rootfs().join("stop"), "")?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = std::fs::read_to_string(&watch_log).unwrap_or_default();
    ensure!(
        !log.contains("LEAK") && !log.contains("WROTE"),
        "the container reached the runtime binary: {log}"
    );
    ensure!(
        std::fs::read(&copy)? == before,
        "the runtime binary (a copy) was modified"
    );
    ensure!(
        log.contains("DENIED"),
        "the watcher never caught an exec process before it exec'd in 300 execs: the test proved nothing"
    );
    pass()
}

/// pause freezes every process (a counter stops), resume thaws it; ps lists the processes.
fn pause_resume_ps() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["root"]["readonly"] = json!(false));
    b.sh("i=0; while true; do i=$((i+1)); echo $i > /count; usleep 5000; done");
    let pid = running(&rt, &b, "c")?;
    let o = rt.exec(&["exec", "-d", "c", "sleep", "100"]);
    ensure!(o.code == 0, "exec -d: {}", o.stderr);
    let o = rt.exec(&["ps", "--format", "json", "c"]);
    let pids: Vec<i64> =
        serde_json::from_str(&o.stdout).map_err(|e| format!("ps json {:?}: {e}", o.stdout))?;
    ensure!(
        pids.contains(&pid) && pids.len() >= 2,
        "ps: {pids:?} (init {pid})"
    );
    let o = rt.exec(&["ps", "c"]);
    ensure!(
        o.stdout.starts_with("UID") && o.stdout.contains("sleep 100"),
        "ps table: {}",
        o.stdout
    );
    let count = || std::fs::read_to_string(b.rootfs().join("count")).unwrap_or_default();
    ensure!(rt.exec(&["pause", "c"]).code == 0, "pause");
    ensure!(rt.status("c") == "paused", "status {}", rt.status("c"));
    let frozen = count();
    std::thread::sleep(std::time::Duration::from_millis(200));
    ensure!(
        count() == frozen,
        "the counter moved while paused: {frozen} -> {}",
        count()
    );
    let o = rt.exec(&["pause", "c"]);
    fails_with(&o, "paused")?;
    ensure!(rt.exec(&["resume", "c"]).code == 0, "resume");
    ensure!(
        rt.status("c") == "running",
        "status after resume {}",
        rt.status("c")
    );
    let mut moved = false;
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        if count() != frozen {
            moved = true;
            break;
        }
    }
    ensure!(moved, "the counter did not move within 2 s of resume");
    ensure!(rt.exec(&["pause", "c"]).code == 0, "pause again");
    let o = rt.exec(&["delete", "--force", "c"]);
    ensure!(
        o.code == 0,
        "delete --force of a paused container: {}",
        o.stderr
    );
    rt.assert_clean(&b, "c")?;
    let o = rt.exec(&["resume", "c"]);
    fails_with(&o, "does not exist")?;
    pass()
}

/// update: new limits are seen from inside; nonsense is refused and changes nothing.
fn update_limits() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = json!({"limit": 64});
    });
    b.sh("sleep 1000");
    running(&rt, &b, "c")?;
    let read = || {
        rt.exec(&[
            "exec",
            "c",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
        ])
        .stdout
    };
    ensure!(read() == "67108864\n64\n", "before: {:?}", read());
    let o = rt.exec(&["update", "--memory", "32m", "--pids-limit", "10", "c"]);
    ensure!(o.code == 0, "update: {}", o.stderr);
    ensure!(read() == "33554432\n10\n", "after: {:?}", read());
    let o = rt.exec(&[
        "update",
        "--memory-reservation",
        "16m",
        "--cpu-idle",
        "1",
        "c",
    ]);
    ensure!(o.code == 0, "update: {}", o.stderr);
    let o = rt.exec(&[
        "exec",
        "c",
        "cat",
        "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes",
        "/sys/fs/cgroup/cpu/cpu.idle",
    ]);
    ensure!(
        o.stdout == "16777216\n1\n",
        "reservation, idle: {:?}",
        o.stdout
    );
    for bad in [
        &["--memory", "lots"][..],
        &["--pids-limit", "0"],
        &["--cpu-quota", "-7"],
        &["--kernel-memory", "1m"],
        &["--blkio-weight", "5"],
        &["--cpu-idle", "2"],
    ] {
        let mut args = vec!["update"];
        args.extend_from_slice(bad);
        args.push("c");
        let o = rt.exec(&args);
        ensure!(
            o.code == 1 && o.stderr.lines().count() == 1,
            "{bad:?}: {} {}",
            o.code,
            o.stderr
        );
    }
    let res = b.path().join("res.json");
    std::fs::write(&res, r#"{"network": {"classID": 10}}"#)?;
    let o = rt.cmd().args(["update", "-r"]).arg(&res).arg("c").out();
    fails_with(&o, "network")?;
    ensure!(
        read() == "33554432\n10\n",
        "a refused update changed limits: {:?}",
        read()
    );
    let o = rt.exec(&["update", "--memory", "1m", "nope"]);
    fails_with(&o, "does not exist")?;
    pass()
}

/// Issue 17, class 8: `exec --user 1000` into a container whose cwd is /root (0700, root's)
/// starts there, as under runc (the cwd is entered before the user is), under the default and
/// runc policies; the process really cannot read it.
fn exec_user_cwd() -> R {
    for policy in ["default", "runc"] {
        let rt = Runtime::new();
        let mut b = Bundle::new();
        std::fs::set_permissions(
            b.rootfs().join("root"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        b.set(|c| c["process"]["cwd"] = json!("/root"));
        b.sh("sleep 1000");
        let o = rt.run_detached(policy, &b, "u");
        ensure!(o.code == 0, "{policy}: run -d: {}", o.stderr);
        let e = rt.exec(&[
            "exec",
            "--user",
            "1000:1000",
            "u",
            "sh",
            "-c",
            "pwd; ls >/dev/null 2>&1 || echo unreadable",
        ]);
        ensure!(
            e.code == 0 && e.stdout == "/root\nunreadable\n",
            "{policy}: exit {} {:?} {}",
            e.code,
            e.stdout,
            e.stderr
        );
    }
    pass()
}

/// Issue 22, defect 6: `update -r` with device rules replaces the container's rules — on
/// cgroup v2 (here beside v1 on a hybrid host) the BPF program attached at create is swapped,
/// not stacked, so an update can widen access, not only narrow it. /dev/fuse (not among the
/// devices every container is allowed), denied at create, opens after the update, and one
/// program of contain's stays attached.
fn update_devices() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let deny_fuse = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]);
    b.set(|c| {
        c["linux"]["resources"]["devices"] = deny_fuse.clone();
        c["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}
        ]);
    });
    b.sh("sleep 1000");
    running(&rt, &b, "d")?;
    let fuse = || {
        rt.exec(&[
            "exec",
            "d",
            "sh",
            "-c",
            "(: <> /dev/fuse) 2>&1 | grep -q 'not permitted' && echo fuse-denied || echo fuse-ok",
        ])
        .stdout
    };
    ensure!(fuse() == "fuse-denied\n", "at create: {:?}", fuse());
    let v2 = rt
        .state("d")
        .and_then(|_| contain::cgroups::hierarchies().ok())
        .and_then(|hs| {
            hs.into_iter()
                .find(|h| h.version == contain::cgroups::Version::V2)
                .map(|h| h.mount.join(b.cgroup_rel()))
        })
        .filter(|d| d.exists());
    let res = b.path().join("res.json");
    for round in 0..2 {
        let widened = json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
        ]});
        std::fs::write(&res, widened.to_string())?;
        let o = rt.cmd().args(["update", "-r"]).arg(&res).arg("d").out();
        ensure!(o.code == 0, "update {round}: {}", o.stderr);
        ensure!(fuse() == "fuse-ok\n", "after update {round}: {:?}", fuse());
        if let Some(dir) = &v2 {
            let n = contain::cgroups::devices::attached(dir)?;
            ensure!(
                n == 1,
                "{n} device programs of contain's on {}",
                dir.display()
            );
        }
    }
    std::fs::write(&res, json!({"devices": deny_fuse}).to_string())?;
    let o = rt.cmd().args(["update", "-r"]).arg(&res).arg("d").out();
    ensure!(o.code == 0, "narrowing update: {}", o.stderr);
    ensure!(fuse() == "fuse-denied\n", "after narrowing: {:?}", fuse());
    if v2.is_none() {
        return skip("no cgroup v2 directory for the container: only v1's rules were exercised");
    }
    pass()
}

/// Issue 17, class 8: an update of device rules goes the shortest way (runc's minimal
/// transition), never through "deny everything": a container opening /dev/null in a tight
/// loop through a hundred updates of an unrelated device is never refused.
fn update_devices_no_gap() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let rules = |fuse: bool| {
        let mut v = vec![json!({"allow": false, "access": "rwm"})];
        if fuse {
            v.push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}));
        }
        json!(v)
    };
    b.set(|c| c["linux"]["resources"]["devices"] = rules(false));
    b.sh("n=0; while [ ! -e /dev/shm/stop ]; do { true > /dev/null; } 2>>/dev/shm/err || n=$((n+1)); done; echo $n > /dev/shm/denied; sleep 100");
    running(&rt, &b, "g")?;
    let res = b.path().join("res.json");
    for i in 0..100 {
        std::fs::write(&res, json!({"devices": rules(i % 2 == 0)}).to_string())?;
        let o = rt.cmd().args(["update", "-r"]).arg(&res).arg("g").out();
        ensure!(o.code == 0, "update {i}: {}", o.stderr);
    }
    let o = rt.exec(&[
        "exec", "g", "sh", "-c",
        "touch /dev/shm/stop; while [ ! -e /dev/shm/denied ]; do sleep 0.05; done; cat /dev/shm/denied",
    ]);
    ensure!(
        o.code == 0 && o.stdout.trim() == "0",
        "/dev/null refused {} times during the updates: {}",
        o.stdout.trim(),
        o.stderr
    );
    pass()
}

/// events: a stats event with the container's usage; a memory hog is OOM-killed at the limit
/// and reported as an `oom` event; the stream ends when the container stops.
fn events_and_oom() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["resources"]["memory"] = json!({"limit": 16777216}));
    // The hog: tail keeps a line of 100 MiB of zeros in memory.
    b.sh(
        "sleep 0.5; head -c 100m /dev/zero | tail > /dev/null; echo hog=$? > /dev/null; sleep 0.5",
    );
    running(&rt, &b, "c")?;
    let o = rt.exec(&["events", "--stats", "c"]);
    let v: serde_json::Value =
        serde_json::from_str(o.stdout.trim()).map_err(|e| format!("stats {:?}: {e}", o.stdout))?;
    ensure!(v["type"] == "stats" && v["id"] == "c", "event {v}");
    ensure!(
        v["data"]["memory"]["usage"]["limit"] == 16777216,
        "memory limit in stats: {}",
        v["data"]["memory"]
    );
    ensure!(
        v["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1,
        "pids in stats: {}",
        v["data"]["pids"]
    );
    let o = rt.cmd().args(["events", "--interval", "200ms", "c"]).out();
    ensure!(o.code == 0, "events: {}", o.stderr);
    let kinds: Vec<String> = o
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["type"].as_str().unwrap_or("").to_string())
        .collect();
    ensure!(kinds.iter().any(|k| k == "oom"), "no oom event: {kinds:?}");
    ensure!(
        kinds.iter().filter(|k| *k == "stats").count() >= 2,
        "stats events: {kinds:?}"
    );
    let o = rt.exec(&["events", "--stats", "c"]);
    fails_with(&o, "stopped")?;
    pass()
}

/// A paused container refuses `exec`; with `--ignore-paused` the exec goes in (as runc's):
/// its process is frozen with the container and runs once it is resumed.
fn ignore_paused() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["process"]["args"] = json!(["sleep", "60"]));
    let o = rt.exec(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "ip"]);
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    ensure!(rt.exec(&["pause", "ip"]).code == 0, "pause");
    exec_fails_with(&rt.exec(&["exec", "ip", "true"]), "paused")?;
    let mut cmd = rt.cmd();
    cmd.args(["exec", "--ignore-paused", "ip", "echo", "after-resume"]);
    let waiter = std::thread::spawn(move || cmd.out());
    std::thread::sleep(std::time::Duration::from_millis(500));
    ensure!(!waiter.is_finished(), "the exec ran in a paused container");
    ensure!(rt.exec(&["resume", "ip"]).code == 0, "resume");
    let o = waiter.join().map_err(|_| "exec thread panicked")?;
    ensure!(
        o.code == 0 && o.stdout == "after-resume\n",
        "exec --ignore-paused: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.exec(&["delete", "--force", "ip"]);
    rt.assert_clean(&b, "ip")?;
    pass()
}
