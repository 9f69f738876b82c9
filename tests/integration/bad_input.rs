//! Bad input: a one-line error that names the problem, a non-zero exit, nothing left behind.

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("bad_input::malformed_config", malformed_config),
    (
        "bad_input::output_to_a_closed_pipe_ends_by_sigpipe",
        closed_stdout,
    ),
    (
        "bad_input::missing_config_and_rootfs",
        missing_config_and_rootfs,
    ),
    ("bad_input::invalid_ids", invalid_ids),
    (
        "bad_input::duplicate_id_and_concurrent_creates",
        duplicate_id,
    ),
    (
        "bad_input::sigkill_at_every_step_of_create_leaves_nothing",
        sigkill_during_create,
    ),
    ("bad_input::create_and_delete_racing", create_delete_race),
    ("bad_input::huge_config_and_odd_ids", huge_config_odd_ids),
    ("bad_input::unknown_signal", unknown_signal),
    ("bad_input::rlimit_above_host_hard_limit", rlimit_above_host),
    ("bad_input::unenforceable_config_is_refused", unenforceable),
    ("bad_input::missing_executable", missing_executable),
    ("bad_input::corrupt_state", corrupt_state),
    (
        "bad_input::terminal_without_console_socket",
        terminal_without_socket,
    ),
];

fn refused(
    rt: &Runtime,
    b: &Bundle,
    o: &Out,
    id: &str,
    needle: &str,
) -> Result<(), libtest_mimic::Failed> {
    ensure!(
        o.code == 1,
        "exit {} (want 1); stderr {:?}",
        o.code,
        o.stderr
    );
    ensure!(
        o.stderr.contains(needle),
        "error {:?} does not mention {needle:?}",
        o.stderr
    );
    ensure!(
        o.stderr.trim_end().lines().count() == 1,
        "not one line: {:?}",
        o.stderr
    );
    ensure!(!o.stderr.contains("panicked"), "panic: {}", o.stderr);
    rt.assert_clean(b, id)
}

fn malformed_config() -> R {
    let rt = Runtime::new();
    let b = Bundle::new();
    std::fs::write(
        b.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\",\n \"process\": [}",
    )?;
    let o = rt.create(&b, "c");
    refused(&rt, &b, &o, "c", "malformed JSON at line 2")?;
    std::fs::write(
        b.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"linux\": {}}",
    )?;
    let o = rt.create(&b, "c");
    refused(&rt, &b, &o, "c", "process")?;
    pass()
}

fn missing_config_and_rootfs() -> R {
    let rt = Runtime::new();
    let b = Bundle::new();
    std::fs::remove_dir_all(b.rootfs())?;
    let o = rt.create(&b, "c");
    refused(&rt, &b, &o, "c", "rootfs")?;
    std::fs::remove_file(b.path().join("config.json"))?;
    let o = rt.create(&b, "c");
    refused(&rt, &b, &o, "c", "config.json")?;
    pass()
}

fn invalid_ids() -> R {
    let rt = Runtime::new();
    let b = Bundle::new();
    for id in ["../escape", "a/b", "..", "with space"] {
        let o = rt.create(&b, id);
        fails_with(&o, "invalid container id")?;
    }
    ensure!(
        std::fs::read_dir(rt.root.path())?.count() == 0,
        "state created for a bad id"
    );
    pass()
}

fn duplicate_id() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    ensure!(rt.create(&b, "c").code == 0, "first create");
    let pid = rt.state("c").unwrap()["pid"].clone();
    let o = rt.create(&b, "c");
    fails_with(&o, "already exists")?;
    ensure!(
        rt.state("c").unwrap()["pid"] == pid,
        "the first container was disturbed"
    );
    // Two creates racing for one id: exactly one wins. (Another bundle: a bundle's cgroup
    // already holding "c" cannot be shared, which is refused on its own.)
    let o = rt.create(&b, "other");
    fails_with(&o, "refusing to share")?;
    let mut b2 = Bundle::new();
    b2.sh("sleep 1000");
    let spawn = || {
        rt.cmd()
            .args(["create", "--bundle"])
            .arg(b2.path())
            .arg("race")
            .out()
    };
    let (a, c) = std::thread::scope(|s| {
        let h1 = s.spawn(spawn);
        let h2 = s.spawn(spawn);
        (h1.join().unwrap(), h2.join().unwrap())
    });
    let wins = [a, c].iter().filter(|o| o.code == 0).count();
    ensure!(wins == 1, "{wins} concurrent creates succeeded");
    ensure!(
        rt.status("race") == "created",
        "race winner: {}",
        rt.status("race")
    );
    pass()
}

/// Processes whose command line names `needle` (the runtime and its stage 1 and init carry the
/// bundle path until the workload execs).
fn processes_naming(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// After `delete --force`: no state, cgroup, mount or process of the container is left.
fn nothing_left(
    rt: &Runtime,
    b: &Bundle,
    id: &str,
    when: &str,
) -> Result<(), libtest_mimic::Failed> {
    let needle = b.path().to_string_lossy().into_owned();
    let mut left = processes_naming(&needle);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = processes_naming(&needle);
    }
    ensure!(left.is_empty(), "{when}: processes left: {left:?}");
    rt.assert_clean(b, id)
        .map_err(|e| format!("{when}: {}", e.message().unwrap_or("not clean")).into())
}

/// Issue 18, item 9: the runtime SIGKILLed at every moment of a create (its duration cut into
/// steps), then `delete --force`: no state directory, cgroup, mount or live init remains,
/// and the id can be created again.
fn sigkill_during_create() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    let t = std::time::Instant::now();
    ensure!(rt.create(&b, "k").code == 0, "create");
    let full = t.elapsed();
    ensure!(rt.exec(&["delete", "--force", "k"]).code == 0, "delete");
    let steps = 40u32;
    let mut interrupted = 0;
    for i in 0..=steps {
        let mut child = rt
            .cmd()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg("k")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(full * i / steps);
        if child.try_wait()?.is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let d = rt.exec(&["delete", "--force", "k"]);
        ensure!(d.code == 0, "step {i}: delete --force: {}", d.stderr);
        nothing_left(&rt, &b, "k", &format!("killed at {i}/{steps} of {full:?}"))?;
    }
    ensure!(
        interrupted > steps / 4,
        "only {interrupted} creates were interrupted"
    );
    ensure!(rt.create(&b, "k").code == 0, "create after the kills");
    ensure!(rt.exec(&["delete", "--force", "k"]).code == 0, "delete");
    nothing_left(&rt, &b, "k", "the last")?;
    pass()
}

/// `create` and `delete --force` of one id racing: whatever the order, a final
/// `delete --force` leaves nothing, and neither command panics or hangs.
fn create_delete_race() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    for i in 0..15 {
        let (c, d) = std::thread::scope(|s| {
            let c = s.spawn(|| {
                rt.cmd()
                    .args(["create", "--bundle"])
                    .arg(b.path())
                    .arg("r")
                    .stdin(std::process::Stdio::null())
                    .out()
            });
            let d = s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(i));
                rt.exec(&["delete", "--force", "r"])
            });
            (c.join().unwrap(), d.join().unwrap())
        });
        for o in [&c, &d] {
            ensure!(!o.stderr.contains("panicked"), "round {i}: {}", o.stderr);
        }
        ensure!(d.code == 0, "round {i}: delete --force: {}", d.stderr);
        let f = rt.exec(&["delete", "--force", "r"]);
        ensure!(f.code == 0, "round {i}: final delete: {}", f.stderr);
        nothing_left(&rt, &b, "r", &format!("round {i}"))?;
    }
    pass()
}

/// A 100 MB config.json is refused at once with the limit named (no state, no cgroup); odd
/// but valid ids work end to end; ids the state directory could not hold are refused up front.
fn huge_config_odd_ids() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["annotations"] = json!({"big": "x".repeat(100 << 20)}));
    let t = std::time::Instant::now();
    let o = rt.create(&b, "big");
    fails_with(&o, "larger than")?;
    ensure!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
    rt.assert_clean(&b, "big")?;

    let mut b = Bundle::new();
    b.sh("true");
    for id in ["-x", "...", "a.b+c_d-e", &"a".repeat(255)] {
        let o = rt
            .cmd()
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg("--")
            .arg(id)
            .out();
        ensure!(o.code == 0, "id {id:?}: {}", o.stderr);
        rt.assert_clean(&b, id)?;
    }
    for (id, why) in [
        ("a".repeat(256), "longer than 255"),
        ("a\nb".to_string(), "only letters"),
        ("ü".to_string(), "only letters"),
    ] {
        let o = rt.create(&b, &id);
        fails_with(&o, why)?;
    }
    ensure!(
        std::fs::read_dir(rt.root.path())?.count() == 0,
        "state left by a refused id"
    );
    pass()
}

fn unknown_signal() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    ensure!(rt.create(&b, "c").code == 0, "create");
    let o = rt.exec(&["kill", "c", "SIGNOPE"]);
    fails_with(&o, "unknown signal")?;
    ensure!(rt.status("c") == "created", "container disturbed");
    pass()
}

fn rlimit_above_host() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a valid rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false)
    {
        return skip("this host grants CAP_SYS_RESOURCE: any hard limit can be raised");
    }
    let want = r.rlim_max + 1;
    b.set(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": want}])
    });
    let o = rt.create(&b, "c");
    refused(&rt, &b, &o, "c", "CAP_SYS_RESOURCE")?;
    pass()
}

fn unenforceable() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["process"]["apparmorProfile"] = json!("docker-default"));
    refused(&rt, &b, &rt.create(&b, "c"), "c", "process.apparmorProfile")?;
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["sysctl"] = json!({"kernel.panic": "1"}));
    refused(&rt, &b, &rt.create(&b, "c"), "c", "not a namespaced sysctl")?;
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["resources"]["blockIO"] = json!({"leafWeight": 100}));
    refused(&rt, &b, &rt.create(&b, "c"), "c", "blockIO.leafWeight")?;
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["resources"]["network"] = json!({"classID": 1}));
    refused(&rt, &b, &rt.create(&b, "c"), "c", "network")?;
    pass()
}

fn missing_executable() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["process"]["args"] = json!(["/no/such/program"]));
    refused(&rt, &b, &rt.create(&b, "c"), "c", "/no/such/program")?;
    ensure!(host_mounts_under(b.path()).is_empty(), "mounts left");
    pass()
}

fn corrupt_state() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 1000");
    // The default cgroup (/contain/<id>), under a unique id: the cleanup finds it there.
    b.set(|c| {
        c["linux"]
            .as_object_mut()
            .unwrap()
            .remove("cgroupsPath")
            .map(drop)
            .unwrap_or(())
    });
    let id = format!("corrupt-{}", std::process::id());
    let id = id.as_str();
    ensure!(rt.create(&b, id).code == 0, "create");
    let pid = rt.state(id).unwrap()["pid"].as_i64().unwrap();
    std::fs::write(rt.root.path().join(id).join("state.json"), "{garbage")?;
    let o = rt.exec(&["state", id]);
    fails_with(&o, "corrupt")?;
    let o = rt.exec(&["delete", id]);
    fails_with(&o, "corrupt")?;
    let o = rt.exec(&["delete", "--force", id]);
    ensure!(o.code == 0, "delete --force of corrupt state: {}", o.stderr);
    ensure!(!rt.root.path().join(id).exists(), "corrupt state left");
    let alive =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    ensure!(!alive, "the init of the corrupt container is still running");
    for h in std::fs::read_dir("/sys/fs/cgroup")?.flatten() {
        ensure!(
            !h.path().join("contain").join(id).exists(),
            "cgroup left in {}",
            h.path().display()
        );
    }
    pass()
}

fn terminal_without_socket() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["process"]["terminal"] = json!(true));
    refused(&rt, &b, &rt.create(&b, "c"), "c", "--console-socket")?;
    pass()
}

/// `contain features | head -1`, `contain list | grep -q`: the reader is gone before contain
/// writes. contain ends as runc does, killed by SIGPIPE, without a panic on stderr.
fn closed_stdout() -> R {
    use std::os::unix::process::ExitStatusExt;
    let rt = Runtime::new();
    let root = rt.root.path().to_string_lossy().into_owned();
    for args in [
        vec!["features"],
        vec!["--root", &root, "list"],
        vec!["--version"],
    ] {
        let (read, write) = nix::unistd::pipe()?;
        drop(read);
        let o = std::process::Command::new(CONTAIN)
            .args(&args)
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::piped())
            .output()?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        ensure!(
            o.status.signal() == Some(libc::SIGPIPE) && stderr.is_empty(),
            "contain {args:?} into a closed pipe: {:?}, stderr {stderr:?}",
            o.status
        );
    }
    pass()
}
