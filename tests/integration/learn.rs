//! `contain learn`: learn a workload's syscalls through the real binary, then enforce the
//! learnt policy and observe from inside that the workload still runs identically and that
//! what it never did is refused.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use libtest_mimic::Failed;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("learn::shell_script_learnt_then_enforced", shell_script),
    ("learn::static_program_learnt_without_clone", static_program),
    ("learn::exec_during_learning_is_learnt", exec_is_learnt),
    ("learn::httpd_learnt_then_enforced", httpd),
    ("learn::httpd_on_a_shared_root", || on_shared_root(httpd)),
    (
        "learn::capabilities_needed_kept_others_dropped",
        capabilities,
    ),
    (
        "learn::supervisor_death_kills_the_workload",
        supervisor_death,
    ),
    ("learn::bad_input_refused_cleanly", bad_input),
    (
        "learn::learn_flag_bad_input_refused_cleanly",
        learn_flag_bad_input,
    ),
    ("learn::overhead_measured_against_default", overhead),
];

fn learn(rt: &Runtime, b: &Bundle, out: &Path, id: &str, extra: &[&str]) -> Out {
    rt.cmd()
        .args(["learn", "--bundle"])
        .arg(b.path())
        .arg("--output")
        .arg(out)
        .args(extra)
        .arg(id)
        .out()
}

/// `contain learn` started in the background, its output piped.
fn learn_in_background(
    rt: &Runtime,
    b: &Bundle,
    out: &Path,
    id: &str,
) -> std::io::Result<std::process::Child> {
    rt.cmd()
        .args(["learn", "--bundle"])
        .arg(b.path())
        .arg("--output")
        .arg(out)
        .arg(id)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

fn policy_of(out: &Path) -> String {
    out.join("policy.json").to_string_lossy().into_owned()
}

fn read_json(p: &Path) -> Result<Value, Failed> {
    Ok(serde_json::from_slice(&std::fs::read(p)?)?)
}

/// The syscall names a profile's ALLOW rules name.
fn allowed(profile: &Value) -> Vec<String> {
    let mut names: Vec<String> = profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A script doing file work: learnt, then run under the learnt policy with the same output;
/// a symlink it never made is refused from inside, and `--replay` names it.
fn shell_script() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["root"]["readonly"] = json!(false));
    let script = "mkdir /tmp/w && echo data > /tmp/w/f && cat /tmp/w/f && ls /tmp/w && rm -r /tmp/w && echo done";
    b.sh(script);
    let out = tempfile::tempdir()?;
    let learnt = out.path().join("learnt");
    let o = learn(&rt, &b, &learnt, "l1", &[]);
    ensure!(o.code == 0, "learn: exit {}: {}", o.code, o.stderr);
    let first = o.stdout.clone();
    ensure!(
        first == "data\nf\ndone\n",
        "learning run's output {first:?}"
    );
    rt.assert_clean(&b, "l1")?;
    // A second run merges.
    let o = learn(&rt, &b, &learnt, "l2", &[]);
    ensure!(o.code == 0, "second learn: {}", o.stderr);
    let obs = read_json(&learnt.join("observations.json"))?;
    ensure!(obs["runs"] == 2, "runs after two learns: {}", obs["runs"]);
    let profile = read_json(&learnt.join("seccomp.json"))?;
    ensure!(
        profile["defaultAction"] == "SCMP_ACT_ERRNO",
        "default {}",
        profile["defaultAction"]
    );
    let names = allowed(&profile);
    for want in ["mkdir", "unlink", "rmdir", "execve", "openat"] {
        ensure!(
            names.iter().any(|n| n == want),
            "{want} not learnt: {names:?}"
        );
    }
    ensure!(
        !names.iter().any(|n| n == "symlink" || n == "symlinkat"),
        "symlink learnt though never made: {names:?}"
    );
    ensure!(
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["comment"].as_str().is_some_and(|c| c.contains("seen"))),
        "a rule without the observation behind it"
    );
    // Enforced: the same output.
    let o = rt.with_policy(&policy_of(&learnt), "run", &b, "e1");
    ensure!(
        o.code == 0 && o.stdout == first,
        "under the learnt policy: exit {} stdout {:?} stderr {}",
        o.code,
        o.stdout,
        o.stderr
    );
    // Something it never did is refused, observed from inside.
    b.sh("ln -s /etc/passwd /tmp/link; echo ln=$?");
    let o = rt.with_policy(&policy_of(&learnt), "run", &b, "e2");
    ensure!(
        o.stdout.contains("ln=1") && o.stderr.contains("Operation not permitted"),
        "a symlink under the learnt policy: {:?} {:?}",
        o.stdout,
        o.stderr
    );
    let o = rt.with_policy("default", "run", &b, "e3");
    ensure!(
        o.stdout.contains("ln=0"),
        "the symlink under default: {:?}",
        o.stdout
    );
    // Replayed: only what is new is listed, nothing is written.
    let before = std::fs::read(learnt.join("seccomp.json"))?;
    let o = learn(&rt, &b, &learnt, "r1", &["--replay"]);
    ensure!(o.code == 0, "replay: {}", o.stderr);
    ensure!(
        o.stderr
            .contains("new since the learnt policy: syscall symlink"),
        "replay output: {}",
        o.stderr
    );
    ensure!(
        std::fs::read(learnt.join("seccomp.json"))? == before,
        "--replay changed the profile"
    );
    measure(&rt, &learnt)?;
    audit_compares(&rt, &learnt)?;
    for id in ["e1", "e2", "e3", "r1"] {
        rt.assert_clean(&b, id)?;
    }
    pass()
}

/// The filters' lengths as create reports them (io.contain.seccomp) under the learnt policy.
fn measure(rt: &Runtime, learnt: &Path) -> R {
    let mut b2 = Bundle::new();
    b2.sh("sleep 100");
    let o = rt.run_detached(&policy_of(learnt), &b2, "m1");
    ensure!(
        o.code == 0,
        "detached under the learnt policy: {}",
        o.stderr
    );
    let st = rt.state("m1").ok_or("no state")?;
    let filters = st["annotations"]["io.contain.seccomp"].clone();
    rt.exec(&["delete", "--force", "m1"]);
    rt.assert_clean(&b2, "m1")?;
    ensure!(
        filters
            .as_str()
            .is_some_and(|f| f.contains("the policy's profile")),
        "the learnt profile is not among the filters: {filters}"
    );
    eprintln!("filters under the learnt policy: {filters}");
    pass()
}

/// A static C program that never clones: the learnt profile refuses clone, fork and vfork,
/// and the same program asked to fork gets EPERM from inside.
fn static_program() -> R {
    let probe = match build_probe("learnt") {
        Ok(p) => p,
        Err(e) => return skip(e),
    };
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["root"]["readonly"] = json!(false));
    std::fs::copy(&probe, b.rootfs().join("bin/learnt"))?;
    b.set(|c| c["process"]["args"] = json!(["/bin/learnt"]));
    let out = tempfile::tempdir()?;
    let learnt = out.path().join("learnt");
    let o = learn(&rt, &b, &learnt, "l1", &[]);
    ensure!(o.code == 0, "learn: {} {}", o.code, o.stderr);
    let first = o.stdout.clone();
    ensure!(first == "read back learnt\n", "learning output {first:?}");
    let names = allowed(&read_json(&learnt.join("seccomp.json"))?);
    for no in ["clone", "clone3", "fork", "vfork"] {
        ensure!(!names.iter().any(|n| n == no), "{no} allowed: {names:?}");
    }
    let o = rt.with_policy(&policy_of(&learnt), "run", &b, "e1");
    ensure!(
        o.code == 0 && o.stdout == first,
        "enforced: exit {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    b.set(|c| c["process"]["args"] = json!(["/bin/learnt", "fork"]));
    let o = rt.with_policy(&policy_of(&learnt), "run", &b, "e2");
    ensure!(
        o.stdout == "read back learnt\nfork: Operation not permitted\n",
        "fork under the learnt profile: {:?} {}",
        o.stdout,
        o.stderr
    );
    let o = rt.with_policy("default", "run", &b, "e3");
    ensure!(
        o.stdout.ends_with("fork: ok\n"),
        "fork under default: {:?}",
        o.stdout
    );
    eprintln!(
        "learnt from a static program: {} syscalls: {}",
        names.len(),
        names.join(" ")
    );
    // A thread: glibc tries clone3, which default answers ENOSYS (never seen, so learnt as
    // ENOSYS too), and falls back to clone, which is learnt with its flags.
    b.set(|c| c["process"]["args"] = json!(["/bin/learnt", "thread"]));
    let threads = out.path().join("threads");
    let o = learn(&rt, &b, &threads, "l2", &[]);
    ensure!(
        o.stdout.ends_with("thread: ok\n"),
        "learning a thread: {:?} {}",
        o.stdout,
        o.stderr
    );
    let o = rt.with_policy(&policy_of(&threads), "run", &b, "e4");
    ensure!(
        o.stdout.ends_with("thread: ok\n"),
        "a thread under its learnt policy: exit {}: {:?} {} {}",
        o.code,
        o.stdout,
        o.stderr,
        std::fs::read_to_string(threads.join("policy.json")).unwrap_or_default()
    );
    for id in ["l1", "e1", "e2", "e3", "l2", "e4"] {
        rt.assert_clean(&b, id)?;
    }
    pass()
}

/// What `contain exec` runs in a container being learnt is learnt too.
fn exec_is_learnt() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["root"]["readonly"] = json!(false));
    b.sh("while [ ! -e /tmp/stop ]; do sleep 0.05; done; echo stopped");
    let out = tempfile::tempdir()?;
    let learnt = out.path().join("learnt");
    let child = learn_in_background(&rt, &b, &learnt, "x1")?;
    ensure!(rt.wait_status("x1", "running"), "x1 never ran");
    let o = rt.exec(&[
        "exec",
        "x1",
        "sh",
        "-c",
        "ln -s a /tmp/l && touch /tmp/stop",
    ]);
    // 137: the touch ended the container before the exec returned (as under runc, the kernel
    // kills what is left in the container's PID namespace when its init exits).
    ensure!(
        o.code == 0 || o.code == 137,
        "exec while learning: {} {}",
        o.code,
        o.stderr
    );
    let o: Out = child.wait_with_output()?.into();
    ensure!(
        o.code == 0 && o.stdout == "stopped\n",
        "learn: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let names = allowed(&read_json(&learnt.join("seccomp.json"))?);
    ensure!(
        names.iter().any(|n| n == "symlink" || n == "symlinkat"),
        "the exec'd process's symlink was not learnt: {names:?}"
    );
    let obs = read_json(&learnt.join("observations.json"))?;
    ensure!(obs["runs"] == 2, "runs (init + exec): {}", obs["runs"]);
    rt.assert_clean(&b, "x1")?;
    pass()
}

/// The learner's children: the container's init and the supervisor.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Killing the supervisor kills the workload, not the runtime's caller: learn ends with an
/// error, writes nothing and leaves nothing behind.
fn supervisor_death() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("sleep 100");
    let out = tempfile::tempdir()?;
    let learnt = out.path().join("learnt");
    let child = learn_in_background(&rt, &b, &learnt, "d1")?;
    ensure!(rt.wait_status("d1", "running"), "d1 never ran");
    let init = rt.state("d1").ok_or("no state")?["pid"]
        .as_u64()
        .unwrap_or(0) as u32;
    let supervisor = children(child.id())
        .into_iter()
        .find(|p| *p != init)
        .ok_or("no supervisor process")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let start = std::time::Instant::now();
    let o: Out = child.wait_with_output()?.into();
    ensure!(
        start.elapsed() < Duration::from_secs(20),
        "learn took {:?} to notice",
        start.elapsed()
    );
    ensure!(
        o.code == 1 && o.stderr.contains("supervisor"),
        "learn after its supervisor died: {} {}",
        o.code,
        o.stderr
    );
    ensure!(
        !learnt.exists(),
        "something was written: {}",
        learnt.display()
    );
    ensure!(
        !PathBuf::from(format!("/proc/{init}")).exists()
            || std::fs::read_to_string(format!("/proc/{init}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the workload outlived the supervisor"
    );
    rt.assert_clean(&b, "d1")?;
    pass()
}

fn bad_input() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("true");
    let out = tempfile::tempdir()?;
    // Replay with nothing learnt.
    let o = learn(&rt, &b, out.path(), "b1", &["--replay"]);
    ensure!(
        o.code == 1 && o.stderr.contains("holds no learnt policy"),
        "replay without a policy: {} {}",
        o.code,
        o.stderr
    );
    // A config whose profile notifies an agent already: one listener per process.
    let sock_dir = tempfile::tempdir()?;
    let sock = sock_dir.path().join("agent.sock");
    let _agent = std::os::unix::net::UnixListener::bind(&sock)?;
    b.set(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        })
    });
    let o = learn(&rt, &b, &out.path().join("x"), "b2", &[]);
    ensure!(
        o.code == 1 && o.stderr.contains("more than one filter notifies"),
        "learn with an agent's profile: {} {}",
        o.code,
        o.stderr
    );
    ensure!(!out.path().join("x").exists(), "output written on failure");
    // A corrupt observations file is an error, not a fresh start.
    let bad = out.path().join("corrupt");
    std::fs::create_dir_all(&bad)?;
    std::fs::write(bad.join("observations.json"), "{not json")?;
    b.set(|c| c["linux"]["seccomp"] = Value::Null);
    let o = learn(&rt, &b, &bad, "b3", &[]);
    ensure!(
        o.code == 1 && o.stderr.contains("observations.json"),
        "corrupt observations: {} {}",
        o.code,
        o.stderr
    );
    for id in ["b1", "b2", "b3"] {
        rt.assert_clean(&b, id)?;
    }
    pass()
}

/// A syscall-bound workload (dd with 1-byte blocks: two syscalls a block) learnt, then run
/// under the learnt policy and under `default` in the same test: the output is the same, and
/// the cost of learning and of enforcing is reported as a ratio to `default`.
fn overhead() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let blocks = 100_000;
    b.set(|c| {
        c["process"]["args"] = json!([
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=1",
            format!("count={blocks}")
        ])
    });
    let out = tempfile::tempdir()?;
    let learnt = out.path().join("learnt");
    let timed = |f: &dyn Fn() -> Out| {
        let t = std::time::Instant::now();
        let o = f();
        (o, t.elapsed())
    };
    let (l, learning) = timed(&|| learn(&rt, &b, &learnt, "o1", &[]));
    ensure!(l.code == 0, "learn: {}", l.stderr);
    let mut enforced = Duration::MAX;
    let mut default = Duration::MAX;
    for i in 0..3 {
        let (e, t) = timed(&|| rt.with_policy(&policy_of(&learnt), "run", &b, &format!("e{i}")));
        ensure!(e.code == 0, "enforced: {}", e.stderr);
        ensure!(
            e.stderr.lines().next() == l.stderr.lines().next(),
            "dd under the learnt policy said {:?}, learning {:?}",
            e.stderr,
            l.stderr
        );
        enforced = enforced.min(t);
        let (d, t) = timed(&|| rt.with_policy("default", "run", &b, &format!("d{i}")));
        ensure!(d.code == 0, "default: {}", d.stderr);
        default = default.min(t);
    }
    let per_call = learning.saturating_sub(default).as_nanos() / (2 * blocks as u128);
    eprintln!(
        "dd, {} syscalls: default {default:?}, learning {learning:?} ({:.1}x, about {per_call} ns more a syscall), learnt policy enforced {enforced:?} ({:.2}x)",
        2 * blocks,
        learning.as_secs_f64() / default.as_secs_f64(),
        enforced.as_secs_f64() / default.as_secs_f64()
    );
    for id in ["o1", "e0", "d0"] {
        rt.assert_clean(&b, id)?;
    }
    pass()
}

/// `contain audit --learnt`: the learnt profile against contain's default and Docker's.
fn audit_compares(rt: &Runtime, learnt: &Path) -> R {
    let docker =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seccomp/moby-default.json");
    ensure!(docker.exists(), "{} is absent", docker.display());
    let o = rt
        .cmd()
        .args(["audit", "--format", "json", "--learnt"])
        .arg(learnt)
        .arg("--against")
        .arg(&docker)
        .out();
    ensure!(o.code == 0, "audit --learnt: {} {}", o.code, o.stderr);
    let c: Value = serde_json::from_str(&o.stdout)?;
    let against = c["against"].as_array().ok_or("no comparisons")?;
    ensure!(against.len() == 2, "comparisons: {c}");
    for a in against {
        // Learnt under default: nothing beyond contain's default, nor (here) beyond Docker's.
        ensure!(
            a["onlyLearnt"].as_array().is_some_and(Vec::is_empty),
            "the learnt profile allows more than {}: {}",
            a["profile"],
            a["onlyLearnt"]
        );
        ensure!(
            a["onlyOther"]
                .as_array()
                .is_some_and(|v| v.iter().any(|n| n == "symlink")),
            "{} does not list symlink as allowed only by it",
            a["profile"]
        );
    }
    let learnt_n = c["allowed"].as_array().map_or(0, Vec::len);
    eprintln!(
        "audit --learnt (x86_64 syscalls allowed): learnt {learnt_n}, contain default {}, Docker's default {}",
        against[0]["allowed"],
        against[1]["allowed"]
    );
    ensure!(
        against
            .iter()
            .all(|a| a["allowed"].as_u64().is_some_and(|n| n as usize > learnt_n)),
        "the learnt profile is not smaller than the defaults: {c}"
    );
    pass()
}

/// A busybox httpd serving a page and a CGI script, learnt while `exec`ed wgets fetch both;
/// then run under the learnt policy: the same responses, the learnt ports (bind 8080,
/// connect 8080) in the policy's Landlock rules, and a CGI script the runs never called that
/// spawns `nc` to another port, writes into the document root and reads a file nothing read
/// while learning is refused by Landlock (EACCES) each time, where under `default` it reaches
/// the port (nobody listening: refused by the peer), writes the file and reads the other.
fn httpd() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let www = b.rootfs().join("www");
    std::fs::create_dir_all(www.join("cgi-bin"))?;
    std::fs::write(www.join("index.html"), "hello from httpd\n")?;
    let cgi = |name: &str, body: &str| -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = www.join("cgi-bin").join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho 'Content-Type: text/plain'\necho\n{body}\n"),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
    };
    cgi("page", "echo dynamic; date -d @0 -u +%Y")?;
    // Never read while learning: the learnt policy refuses reading it.
    std::fs::create_dir_all(b.rootfs().join("secret"))?;
    std::fs::write(b.rootfs().join("secret/key"), "the key\n")?;
    cgi(
        "attack",
        "nc 127.0.0.1 9090 </dev/null 2>&1; (echo x > /www/pwned) 2>&1 || echo write-refused; cat /secret/key 2>&1; echo done",
    )?;
    b.set(|c| c["root"]["readonly"] = json!(false));
    b.sh("httpd -p 8080 -h /www && while [ ! -e /tmp/stop ]; do sleep 0.05; done; echo stopped");
    let fetch = |id: &str, path: &str| -> Out {
        rt.exec(&[
            "exec",
            id,
            "sh",
            "-c",
            &format!(
                "for i in $(seq 50); do wget -q -O- http://127.0.0.1:8080{path} && exit; sleep 0.1; done; exit 1"
            ),
        ])
    };
    let out = tempfile::tempdir()?;
    let learnt = out.path().join("learnt");
    let child = learn_in_background(&rt, &b, &learnt, "web")?;
    ensure!(rt.wait_status("web", "running"), "web never ran");
    let (page, cgi_out) = (fetch("web", "/"), fetch("web", "/cgi-bin/page"));
    let stop = rt.exec(&["exec", "web", "touch", "/tmp/stop"]);
    let o: Out = child.wait_with_output()?.into();
    ensure!(
        o.code == 0 && o.stdout == "stopped\n",
        "learn: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    ensure!(
        page.code == 0 && page.stdout == "hello from httpd\n",
        "the page while learning: {} {:?} {}",
        page.code,
        page.stdout,
        page.stderr
    );
    ensure!(
        cgi_out.code == 0 && cgi_out.stdout == "dynamic\n1970\n",
        "the CGI while learning: {} {:?} {}",
        cgi_out.code,
        cgi_out.stdout,
        cgi_out.stderr
    );
    // The touch may end the container before the exec returns: its init then exits and the
    // kernel kills what is left in its PID namespace, the touch's exec among it (137).
    ensure!(
        stop.code == 0 || stop.code == 137,
        "exec touch /tmp/stop while learning: {} {:?} {}",
        stop.code,
        stop.stdout,
        stop.stderr
    );
    let policy = read_json(&learnt.join("policy.json"))?;
    let net = &policy["landlock"]["network"];
    ensure!(
        net["bindTcp"] == json!([8080]) && net["connectTcp"] == json!([8080]),
        "learnt TCP ports: {net}"
    );
    let o = rt.cmd().args(["audit", "--learnt"]).arg(&learnt).out();
    ensure!(
        o.code == 0
            && o.stdout
                .contains("the learnt policy allows bind to 8080, connect to 8080")
            && o.stdout.contains("execute read_file beneath /bin")
            && o.stdout.contains("read_file write_file beneath /dev")
            && o.stdout.contains("every other read, write"),
        "audit --learnt does not report the ports and paths: {} {} {}",
        o.code,
        o.stdout,
        o.stderr
    );

    // Enforced: the same responses; the attack's connect to 9090 refused by Landlock.
    std::fs::remove_file(b.rootfs().join("tmp/stop"))?;
    let run = rt.run_detached(&policy_of(&learnt), &b, "web2");
    ensure!(run.code == 0, "run under the learnt policy: {}", run.stderr);
    let (page2, cgi2) = (fetch("web2", "/"), fetch("web2", "/cgi-bin/page"));
    ensure!(
        page2.stdout == page.stdout && cgi2.stdout == cgi_out.stdout,
        "under the learnt policy the responses differ: {:?} {:?} ({} {})",
        page2.stdout,
        cgi2.stdout,
        page2.stderr,
        cgi2.stderr
    );
    let attack = fetch("web2", "/cgi-bin/attack");
    ensure!(
        attack.stdout.contains("can't connect to remote host (127.0.0.1): Permission denied")
            && attack.stdout.contains("write-refused")
            && attack.stdout.contains("can't open '/secret/key': Permission denied")
            && attack.stdout.contains("done")
            && !b.rootfs().join("www/pwned").exists(),
        "the CGI's nc to port 9090, write into the document root and read of /secret under the learnt policy: {} {:?} {}",
        attack.code,
        attack.stdout,
        attack.stderr
    );
    ok_delete(&rt, "web2")?;
    let run = rt.run_detached("default", &b, "web3");
    ensure!(run.code == 0, "run under default: {}", run.stderr);
    let attack = fetch("web3", "/cgi-bin/attack");
    ensure!(
        attack.stdout.contains("Connection refused")
            && !attack.stdout.contains("write-refused")
            && attack.stdout.contains("the key")
            && b.rootfs().join("www/pwned").exists(),
        "under default the CGI's nc should reach port 9090 (nobody listens) and its write succeed: {} {:?} {}",
        attack.code,
        attack.stdout,
        attack.stderr
    );
    ok_delete(&rt, "web3")?;
    for id in ["web", "web2", "web3"] {
        rt.assert_clean(&b, id)?;
    }
    pass()
}

fn ok_delete(rt: &Runtime, id: &str) -> R {
    let o = rt.exec(&["delete", "--force", id]);
    ensure!(o.code == 0, "delete {id}: {}", o.stderr);
    pass()
}

/// Capabilities: a script that changes a file's owner (CAP_CHOWN) and reads a file of
/// another user's with mode 0600 (CAP_DAC_OVERRIDE, Docker's set having no
/// CAP_DAC_READ_SEARCH) keeps those under the learnt policy and runs the same; the ones it
/// never needed (CAP_NET_RAW, CAP_MKNOD, ...) are gone from its bounding set, seen from inside.
fn capabilities() -> R {
    use std::os::unix::fs::PermissionsExt;
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // Docker's default capabilities (runc's spec grants three).
    let docker = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    b.set(|c| {
        c["root"]["readonly"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = docker.clone();
        }
    });
    let secret = b.rootfs().join("secret");
    std::fs::write(&secret, "s3cret\n")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    std::os::unix::fs::chown(&secret, Some(1), Some(1))?;
    b.sh("rm -f /tmp/f; touch /tmp/f && chown 1:1 /tmp/f && stat -c %u /tmp/f && cat /secret && grep CapBnd /proc/self/status");
    let out = tempfile::tempdir()?;
    let learnt = out.path().join("learnt");
    let o = learn(&rt, &b, &learnt, "c1", &[]);
    ensure!(o.code == 0, "learn: exit {}: {}", o.code, o.stderr);
    let policy = read_json(&learnt.join("policy.json"))?;
    let dropped: Vec<&str> = policy["dropCapabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for gone in [
        "CAP_NET_RAW",
        "CAP_MKNOD",
        "CAP_SETUID",
        "CAP_NET_BIND_SERVICE",
    ] {
        ensure!(dropped.contains(&gone), "{gone} not dropped: {dropped:?}");
    }
    for kept in ["CAP_CHOWN", "CAP_DAC_OVERRIDE"] {
        ensure!(
            !dropped.contains(&kept),
            "{kept} dropped though needed: {dropped:?}"
        );
    }
    let o2 = rt.with_policy(&policy_of(&learnt), "run", &b, "c2");
    let bounding = |out: &str| -> Option<u64> {
        let hex = out.lines().find_map(|l| l.strip_prefix("CapBnd:"))?.trim();
        u64::from_str_radix(hex, 16).ok()
    };
    let body = |out: &str| {
        out.lines()
            .filter(|l| !l.starts_with("CapBnd"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    ensure!(
        o2.code == 0 && body(&o2.stdout) == body(&o.stdout) && body(&o.stdout).contains("s3cret"),
        "under the learnt policy: exit {} {:?} (learning: {:?}) {}",
        o2.code,
        o2.stdout,
        o.stdout,
        o2.stderr
    );
    let (before, after) = (
        bounding(&o.stdout).ok_or("no CapBnd while learning")?,
        bounding(&o2.stdout).ok_or("no CapBnd under the learnt policy")?,
    );
    let bit = |cap: u32| 1u64 << cap;
    // CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_MKNOD 27, CAP_NET_RAW 13
    ensure!(
        before & bit(13) != 0 && after & bit(13) == 0 && after & bit(27) == 0,
        "CAP_NET_RAW/CAP_MKNOD still in the bounding set: {before:#x} -> {after:#x}"
    );
    ensure!(
        after & bit(0) != 0 && after & bit(1) != 0,
        "CAP_CHOWN/CAP_DAC_OVERRIDE lost: {after:#x}"
    );
    let o = rt.cmd().args(["audit", "--learnt"]).arg(&learnt).out();
    ensure!(
        o.code == 0
            && o.stdout.contains("capabilities: the learnt policy drops")
            && o.stdout.contains("it keeps CAP_CHOWN CAP_DAC_OVERRIDE"),
        "audit --learnt on capabilities: {} {}",
        o.stdout,
        o.stderr
    );
    for id in ["c1", "c2"] {
        rt.assert_clean(&b, id)?;
    }
    pass()
}

/// `--learn DIR` (for clients' create): a DIR that is a file, a corrupt observations.json in
/// it, or `run` with it: a clear error, exit 1, and no container, socket or supervisor left.
fn learn_flag_bad_input() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("true");
    let out = tempfile::tempdir()?;
    // The learning socket's directory goes to TMPDIR: one of this test's own.
    let tmp = out.path().join("tmp");
    std::fs::create_dir(&tmp)?;
    let contain = || {
        let mut c = rt.cmd();
        c.env("TMPDIR", &tmp);
        c
    };
    let file = out.path().join("file");
    std::fs::write(&file, "")?;
    let corrupt = out.path().join("corrupt");
    std::fs::create_dir(&corrupt)?;
    std::fs::write(corrupt.join("observations.json"), "{not json")?;
    for (dir, want) in [(&file, "--learn"), (&corrupt, "observations.json")] {
        let o = contain()
            .arg("--learn")
            .arg(dir)
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg("bad")
            .out();
        fails_with(&o, want)?;
        rt.assert_clean(&b, "bad")?;
    }
    // A create that fails after the supervisor was started (a duplicate id): it is killed,
    // its socket gone, the existing container untouched.
    let o = rt.create(&b, "dup");
    ensure!(o.code == 0, "create dup: {}", o.stderr);
    let o = contain()
        .arg("--learn")
        .arg(out.path().join("d"))
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg("dup")
        .out();
    fails_with(&o, "exists")?;
    ensure!(rt.status("dup") == "created", "dup: {}", rt.status("dup"));
    let o = rt.exec(&["delete", "--force", "dup"]);
    ensure!(o.code == 0, "delete dup: {}", o.stderr);
    rt.assert_clean(&b, "dup")?;
    let o = contain()
        .arg("--learn")
        .arg(out.path().join("d"))
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("bad")
        .out();
    fails_with(&o, "--learn is for create")?;
    rt.assert_clean(&b, "bad")?;
    let left: Vec<_> = std::fs::read_dir(&tmp)?
        .flatten()
        .map(|e| e.path())
        .collect();
    ensure!(left.is_empty(), "left in TMPDIR: {left:?}");
    pass()
}
