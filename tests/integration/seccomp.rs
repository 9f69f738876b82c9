//! Seccomp, observed from inside the container: a probe (built with gcc from
//! probes/syscalls.c) makes raw syscalls — including through the i386 (`int 0x80`) and x32
//! entry points — and prints what each returned.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    (
        "seccomp::default_profile_stops_escape_syscalls",
        default_profile,
    ),
    ("seccomp::docker_profile_same_as_runc", docker_same_as_runc),
    ("seccomp::podman_profile_same_as_runc", podman_same_as_runc),
    (
        "seccomp::template_is_resolved_not_widened",
        template_not_widened,
    ),
    ("seccomp::every_action_observed", every_action),
    ("seccomp::other_abis_cannot_bypass", other_abis),
    (
        "seccomp::notify_agent_answers_for_the_container",
        notify_agent,
    ),
    ("seccomp::without_no_new_privs_still_filtered", without_nnp),
    ("seccomp::exec_gets_the_same_filter", exec_same_filter),
    ("seccomp::bad_profiles_refused_before_create", bad_profiles),
    (
        "seccomp::the_profile_need_not_allow_the_runtime",
        profile_need_not_allow_the_runtime,
    ),
    ("seccomp::runc_own_seccomp_tests", runc_own_tests),
];

/// runc's own seccomp tests (its bats suite's `seccomp_syscall_test1` and `test2`: C programs
/// that assert what each raw syscall returns under the profile beside them — masked and
/// multi-argument rules, errnoRet, ENOSYS for unknown syscalls), from runc 1.1.5's source as
/// Debian ships it (scripts/test-runc-testdata.sh). Each must pass under runc and under
/// `--policy runc` exactly; under `default` (contain's profile stacked) any assertion that
/// fails may only have got EPERM, never a result the profile alone would refuse.
fn runc_own_tests() -> R {
    let Some(dir) = std::env::var_os("CONTAIN_TEST_RUNC_TESTDATA") else {
        return skip(
            "CONTAIN_TEST_RUNC_TESTDATA is not set (scripts/test.sh sets it from scripts/test-runc-testdata.sh)",
        );
    };
    let Some(runc) = which("runc") else {
        return skip("runc is not installed (apt-get install runc)");
    };
    let dir = PathBuf::from(dir);
    let rt = Runtime::new();
    for test in ["seccomp_syscall_test1", "seccomp_syscall_test2"] {
        let bin = build_static(&dir.join(format!("{test}.c")), test)?;
        let profile: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{test}.json")))?)?;
        let mut b = Bundle::new();
        std::fs::copy(&bin, b.rootfs().join("seccomp_test"))?;
        b.set(|c| {
            c["process"]["args"] = json!(["/seccomp_test"]);
            c["linux"]["seccomp"] = profile.clone();
        });
        let o = runc_run(&runc, &b, &format!("r-{test}"));
        ensure!(
            o.code == 0,
            "{test} under runc itself: exit {} {} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        let o = rt.with_policy("runc", "run", &b, &format!("c-{test}"));
        ensure!(
            o.code == 0,
            "{test} under --policy runc: exit {} {} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        let o = rt.with_policy("default", "run", &b, &format!("d-{test}"));
        let wider: Vec<&str> = o
            .stdout
            .lines()
            .filter(|l| l.starts_with("syscall_assert") && !l.contains("failed: -1 !="))
            .collect();
        ensure!(
            (o.code == 0 || o.code == 32) && wider.is_empty() && !o.stderr.contains("panic"),
            "{test} under default: exit {}, assertions that got more than EPERM: {wider:?} ({} {})",
            o.code,
            o.stdout,
            o.stderr
        );
        eprintln!(
            "{test}: runc and --policy runc pass; under default {} assertion(s) got EPERM from contain's profile",
            o.stdout.lines().filter(|l| l.starts_with("syscall_assert")).count()
        );
        for id in ["c-", "d-"] {
            rt.assert_clean(&b, &format!("{id}{test}"))?;
        }
    }
    pass()
}

/// The probe, compiled once per test run.
fn probe() -> Result<PathBuf, String> {
    crate::util::build_probe("syscalls")
}

/// A bundle whose process runs the probe on `specs`.
fn probe_bundle(specs: &[&str]) -> Result<Bundle, String> {
    let p = probe()?;
    let mut b = Bundle::new();
    std::fs::copy(&p, b.rootfs().join("bin/syscalls")).map_err(|e| e.to_string())?;
    let mut args = vec!["/bin/syscalls".to_string()];
    args.extend(specs.iter().map(|s| s.to_string()));
    b.set(|c| c["process"]["args"] = json!(args));
    Ok(b)
}

/// The probe's answer for `spec` ("ok", "errno 1", ...).
fn answer<'a>(out: &'a str, spec: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(spec).and_then(|r| r.strip_prefix(' ')))
}

fn fixture(name: &str) -> Option<Value> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seccomp")
        .join(name);
    std::fs::read(&p)
        .ok()
        .map(|d| serde_json::from_slice(&d).unwrap())
}

const AF_VSOCK_HIGH_GARBAGE: &str = "64:41:0x100000028:1:0";

fn default_profile() -> R {
    // x86_64 numbers: unshare 272, keyctl 250, bpf 321, io_uring_setup 425, userfaultfd 323,
    // perf_event_open 298, open_by_handle_at 304, add_key 248, socket 41, clone 56;
    // i386: getpid 20; x32: getpid 39.
    let specs = [
        "64:272:0x10000000",
        "64:250:9999",
        "64:248:0",
        "64:321:9999",
        "64:425:0:0",
        "64:323:0xffff",
        "64:298:0",
        "64:304:-1",
        "64:41:40:1:0",
        "64:41:30:1:0",
        "64:41:38:5:0",
        AF_VSOCK_HIGH_GARBAGE,
        "64:56:0x10000800",
        "32:20",
        "x32:39",
        "64:39",
        "64:41:1:1:0",
        "64:41:2:2:0",
        "64:56:0x800",
    ];
    let b = match probe_bundle(&specs) {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    b.save();
    let rt = Runtime::new();
    let o = rt.run(&b, "sd");
    ensure!(o.code == 0, "probe failed: {}", o.stderr);
    let want = [
        ("64:272:0x10000000", "errno 1"),
        ("64:250:9999", "errno 1"),
        ("64:248:0", "errno 1"),
        ("64:321:9999", "errno 1"),
        ("64:425:0:0", "errno 38"),
        ("64:323:0xffff", "errno 1"),
        ("64:298:0", "errno 1"),
        ("64:304:-1", "errno 1"),
        ("64:41:40:1:0", "errno 1"),
        ("64:41:30:1:0", "errno 1"),
        ("64:41:38:5:0", "errno 1"),
        (AF_VSOCK_HIGH_GARBAGE, "errno 1"),
        ("64:56:0x10000800", "errno 1"),
        ("32:20", "errno 1"),
        ("x32:39", "errno 1"),
        // Allowed, and then the kernel answers: getpid works, sockets open, clone without
        // namespace flags reaches the kernel (which refuses SIGHAND without VM: EINVAL).
        ("64:39", "ok"),
        ("64:41:1:1:0", "ok"),
        ("64:41:2:2:0", "ok"),
        ("64:56:0x800", "errno 22"),
    ];
    for (spec, w) in want {
        ensure!(
            answer(&o.stdout, spec) == Some(w),
            "{spec}: want {w}, got {:?}\n{}",
            answer(&o.stdout, spec),
            o.stdout
        );
    }
    // Ordinary programs still work: a shell, ls, ps, and a TCP connection over loopback.
    let mut b = Bundle::new();
    b.sh("ls / >/dev/null && ps >/dev/null && echo listing-ok; \
          (sleep 60 | nc -l -p 7777 > /tmp/got &) ; \
          for i in $(seq 50); do echo hello | nc 127.0.0.1 7777 2>/dev/null && break; sleep 0.1; done; \
          for i in $(seq 50); do [ -s /tmp/got ] && break; sleep 0.1; done; \
          cat /tmp/got; unshare -U true 2>/dev/null || echo unshare-refused; \
          grep Seccomp: /proc/self/status");
    b.set(|c| c["root"]["readonly"] = json!(false));
    b.save();
    let o = rt.run(&b, "sd2");
    ensure!(
        o.code == 0
            && o.stdout.contains("listing-ok")
            && o.stdout.contains("hello")
            && o.stdout.contains("unshare-refused")
            && status_field(&o.stdout, "Seccomp") == Some("2"),
        "exit {}: {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    let st = rt.exec(&["state", "sd2"]);
    ensure!(st.code != 0, "the container was not removed");
    pass()
}

/// Probes that hit the conditional rules of Docker's and podman's profiles, chosen among the
/// syscalls that the libseccomp runc links (2.5.4 on Debian 12) knows.
const COMPARE: &[&str] = &[
    "64:39",
    "64:135:0xffffffff",
    "64:135:0x10000ffffffff",
    "64:135:8",
    "64:135:0x400000",
    "64:56:0x800",
    "64:56:0x10000800",
    "64:56:0x40000800",
    "64:56:0x20000800",
    "64:41:1:1:0",
    "64:41:2:1:0",
    "64:41:10:1:0",
    "64:41:16:3:0",
    "64:41:17:3:0",
    "64:41:21:5:0",
    "64:41:30:1:0",
    "64:41:38:5:0",
    "64:41:39:1:0",
    "64:41:40:1:0",
    "64:41:41:1:0",
    AF_VSOCK_HIGH_GARBAGE,
    "64:272:0x10000000",
    "64:272:0",
    "64:308:-1:0",
    "64:250:9999",
    "64:321:9999",
    "64:425:0:0",
    "64:323:0xffff",
    "64:298:0",
    "64:304:-1",
    "64:435:0:0",
    "64:101:2:0",
    "64:165:0:0:0",
    "64:161:0",
    "64:163:0",
    "64:103:10",
    "64:169:0",
    "64:246:0",
    "64:313:-1",
    "64:600",
    "64:1000",
    "32:20",
    "32:136:0xffffffff",
    "32:136:0x400000",
    "32:120:0x10000800",
    "32:310:0x10000000",
    "32:102:1:0",
    "32:26:2:0",
    "32:999",
    "x32:39",
];

/// The same probes under runc and contain with one profile: every answer must be the same.
fn same_as_runc(fixture_name: &str) -> R {
    let Some(runc) = which("runc") else {
        return skip("runc is not installed (apt-get install runc)");
    };
    let Some(profile) = fixture(fixture_name) else {
        return skip(format!("tests/fixtures/seccomp/{fixture_name} is absent"));
    };
    let mut b = match probe_bundle(COMPARE) {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    b.set(|c| c["linux"]["seccomp"] = profile);
    b.save();
    let rt = Runtime::new();
    let ours = rt.run(&b, "cmp");
    ensure!(ours.code == 0, "contain: {}{}", ours.stdout, ours.stderr);
    let theirs = runc_run(&runc, &b, "cmp-runc");
    ensure!(theirs.code == 0, "runc: {}{}", theirs.stdout, theirs.stderr);
    let mut checked = 0;
    for spec in COMPARE {
        let (a, r) = (answer(&ours.stdout, spec), answer(&theirs.stdout, spec));
        ensure!(a.is_some() && a == r, "{spec}: contain {a:?}, runc {r:?}");
        checked += 1;
    }
    // The probes must not all have the same answer: then they would prove nothing.
    let distinct: std::collections::HashSet<_> = COMPARE
        .iter()
        .filter_map(|s| answer(&ours.stdout, s))
        .collect();
    ensure!(
        checked == COMPARE.len() && distinct.len() >= 4,
        "answers: {distinct:?}"
    );
    pass()
}

fn docker_same_as_runc() -> R {
    same_as_runc("moby-default.resolved.json")
}

fn podman_same_as_runc() -> R {
    same_as_runc("podman-default.resolved.json")
}

/// Docker's template handed over unresolved: its CAP_SYS_ADMIN-only rules must not apply to
/// a container without CAP_SYS_ADMIN. runc ignores `includes` and lets unshare through.
fn template_not_widened() -> R {
    let Some(template) = fixture("moby-default.json") else {
        return skip("tests/fixtures/seccomp/moby-default.json is absent");
    };
    let specs = ["64:272:0x10000000", "64:39"];
    let mut b = match probe_bundle(&specs) {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    b.set(|c| c["linux"]["seccomp"] = template);
    b.save();
    let rt = Runtime::new();
    let o = rt.run(&b, "tpl");
    ensure!(o.code == 0, "contain: {}", o.stderr);
    ensure!(
        answer(&o.stdout, "64:272:0x10000000") == Some("errno 1")
            && answer(&o.stdout, "64:39") == Some("ok"),
        "unshare(CLONE_NEWUSER) under the resolved template: {}",
        o.stdout
    );
    ensure!(
        o.stderr.contains("template"),
        "no warning that a template was resolved: {:?}",
        o.stderr
    );
    if let Some(runc) = which("runc") {
        let theirs = runc_run(&runc, &b, "tpl-runc");
        // Documented in SECURITY.md: runc drops the conditions and so allows the call.
        eprintln!(
            "runc with the same template: unshare(CLONE_NEWUSER) -> {:?}",
            answer(&theirs.stdout, "64:272:0x10000000")
        );
    }
    pass()
}

fn custom(default: &str, rules: Value) -> Value {
    json!({"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"], "syscalls": rules})
}

/// Every action, each on its own syscall: what the process sees.
fn every_action() -> R {
    // getppid 110: ERRNO 13; getuid 102: LOG (allowed, logged); getgid 104: TRACE without a
    // tracer (ENOSYS); getegid 108: ALLOW with default KILL_PROCESS... and finally geteuid 107:
    // KILL_PROCESS (SIGSYS ends the probe: the last line never prints).
    let specs = ["64:110", "64:102", "64:104", "64:39", "64:107", "64:39"];
    let mut b = match probe_bundle(&specs) {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getuid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getgid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
            {"names": ["geteuid"], "action": "SCMP_ACT_KILL_PROCESS"}
        ]
    });
    b.set(|c| c["linux"]["seccomp"] = profile);
    b.save();
    let rt = Runtime::new();
    let o = rt.run(&b, "act");
    ensure!(
        o.code == 128 + libc::SIGSYS,
        "KILL_PROCESS: exit {} (want {}): {}",
        o.code,
        128 + libc::SIGSYS,
        o.stdout
    );
    ensure!(
        answer(&o.stdout, "64:110") == Some("errno 13")
            && answer(&o.stdout, "64:102") == Some("ok")
            && answer(&o.stdout, "64:104") == Some("errno 38")
            && o.stdout.lines().count() == 4,
        "{}",
        o.stdout
    );
    // TRAP and KILL_THREAD (SCMP_ACT_KILL) end a single-threaded program with SIGSYS too.
    for action in ["SCMP_ACT_TRAP", "SCMP_ACT_KILL"] {
        let mut b = probe_bundle(&["64:39", "64:110", "64:39"])?;
        b.set(|c| {
            c["linux"]["seccomp"] = custom(
                "SCMP_ACT_ALLOW",
                json!([{"names": ["getppid"], "action": action}]),
            )
        });
        b.save();
        let o = rt.run(&b, "act2");
        ensure!(
            o.code == 128 + libc::SIGSYS && o.stdout.lines().count() == 1,
            "{action}: exit {}, {:?}",
            o.code,
            o.stdout
        );
    }
    // Argument conditions: two on distinct arguments of one rule (both must hold; two on the
    // same argument are alternatives, as runc_own_seccomp_tests shows), several rules for one
    // syscall, and MASKED_EQ. personality 135 with 0xffffffff only queries.
    let mut b = probe_bundle(&[
        "64:135:0xffffffff:7",
        "64:135:0xffffffff:8",
        "64:135:0xffffffff:3",
        "64:56:0x800",
        "64:56:0x10000800",
    ])?;
    b.set(|c| {
        c["linux"]["seccomp"] = custom(
            "SCMP_ACT_ALLOW",
            json!([
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
                 "args": [{"index": 0, "value": 0xffffffffu32, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12,
                 "args": [{"index": 1, "value": 8, "op": "SCMP_CMP_GT"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 14,
                 "args": [{"index": 1, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 15,
                 "args": [{"index": 0, "value": 0x10000000, "valueTwo": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]),
        )
    });
    b.save();
    let o = rt.run(&b, "args");
    ensure!(o.code == 0, "{}", o.stderr);
    for (spec, want) in [
        ("64:135:0xffffffff:7", "errno 11"),
        ("64:135:0xffffffff:8", "errno 14"),
        ("64:135:0xffffffff:3", "ok"),
        ("64:56:0x800", "errno 22"),
        ("64:56:0x10000800", "errno 15"),
    ] {
        ensure!(
            answer(&o.stdout, spec) == Some(want),
            "{spec}: want {want}: {}",
            o.stdout
        );
    }
    pass()
}

/// A deny-list profile that lists only x86_64: the same syscall through the i386 or x32 entry
/// points must not slip through (runc/libseccomp kill such calls; so does contain when the
/// default allows). The default profile lists only x86_64: i386 and x32 calls are refused.
fn other_abis() -> R {
    // unshare: x86_64 272, i386 310.
    let rt = Runtime::new();
    for spec in ["32:310:0x10000000", "x32:272:0x10000000"] {
        let mut b = probe_bundle(&["64:272:0x10000000", spec])?;
        b.set(|c| {
            c["linux"]["seccomp"] = custom(
                "SCMP_ACT_ALLOW",
                json!([{"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}]),
            )
        });
        b.save();
        let o = rt.run(&b, "abi");
        ensure!(
            answer(&o.stdout, "64:272:0x10000000") == Some("errno 1"),
            "{}",
            o.stdout
        );
        ensure!(
            o.code == 128 + libc::SIGSYS && answer(&o.stdout, spec).is_none(),
            "{spec} through another ABI: exit {}, {}",
            o.code,
            o.stdout
        );
    }
    // Listing the ABIs makes their syscalls subject to the same rules.
    let mut b = probe_bundle(&["32:310:0x10000000", "32:20"])?;
    b.set(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
        })
    });
    b.save();
    let o = rt.run(&b, "abi2");
    ensure!(
        o.code == 0
            && answer(&o.stdout, "32:310:0x10000000") == Some("errno 77")
            && answer(&o.stdout, "32:20") == Some("ok"),
        "exit {}: {}",
        o.code,
        o.stdout
    );
    pass()
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;

/// SCMP_ACT_NOTIFY: an agent at listenerPath receives the container state and the listener,
/// and answers the container's mkdir calls (here: EROFS, which the shell then reports).
fn notify_agent() -> R {
    let dir = tempfile::tempdir()?;
    let sock_path = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path)?;
    let mut b = Bundle::new();
    b.sh("mkdir /tmp/made 2>&1; echo mkdir=$?; test -d /tmp/made && echo exists || echo absent");
    b.set(|c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock_path,
            "listenerMetadata": "agent-test",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    b.save();
    listener.set_nonblocking(true)?;
    let agent = std::thread::spawn(move || -> Result<(Value, u32), String> {
        let mut conn = None;
        for _ in 0..1000 {
            match listener.accept() {
                Ok((c, _)) => {
                    conn = Some(c);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let conn = conn.ok_or("the runtime never connected to listenerPath")?;
        conn.set_nonblocking(false).map_err(|e| e.to_string())?;
        let (msg, fd) = recv_with_fd(&conn)?;
        let mut answered = 0;
        let mut notif = SeccompNotif::default();
        // SAFETY: NOTIF_RECV fills a struct seccomp_notif (80 bytes), which `notif` is.
        while unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut notif) } == 0 {
            let resp = SeccompNotifResp {
                id: notif.id,
                val: 0,
                error: -libc::EROFS,
                flags: 0,
            };
            // SAFETY: NOTIF_SEND reads a struct seccomp_notif_resp (24 bytes), which `resp` is.
            if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp) } == 0 {
                answered += 1;
            }
            notif = SeccompNotif::default();
        }
        Ok((msg, answered))
    });
    let rt = Runtime::new();
    let o = rt.run(&b, "notif");
    let (msg, answered) = agent.join().map_err(|_| "agent panicked")??;
    ensure!(
        msg["fds"] == json!(["seccompFd"])
            && msg["metadata"] == "agent-test"
            && msg["ociVersion"].is_string()
            && msg["pid"].as_i64().is_some_and(|p| p > 1)
            && msg["state"]["id"] == "notif"
            && msg["state"]["status"] == "creating",
        "container process state sent to the agent: {msg}"
    );
    ensure!(
        o.code == 0
            && o.stdout.contains("Read-only file system")
            && o.stdout.contains("absent")
            && answered >= 1,
        "exit {}, answered {answered}: {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    pass()
}

/// One message with one descriptor, as the runtime spec's agent receives it.
fn recv_with_fd(
    conn: &std::os::unix::net::UnixStream,
) -> Result<(Value, std::os::fd::OwnedFd), String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = vec![0u8; 1 << 16];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    let mut fd = None;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this descriptor for us; nothing else owns it.
            fd = fds
                .first()
                .map(|&f| unsafe { std::os::fd::OwnedFd::from_raw_fd(f) });
        }
    }
    let n = msg.bytes;
    let fd = fd.ok_or("no descriptor with the message")?;
    let v = serde_json::from_slice(&buf[..n]).map_err(|e| format!("agent message: {e}"))?;
    Ok((v, fd))
}

/// noNewPrivileges false: the filter is still installed (while the init still holds
/// CAP_SYS_ADMIN) and the process really has no_new_privs off.
fn without_nnp() -> R {
    let mut b = match probe_bundle(&["64:272:0x10000000"]) {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    b.set(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; /bin/syscalls 64:272:0x10000000"
        ]);
    });
    b.save();
    let rt = Runtime::new();
    let o = rt.run(&b, "nnp");
    ensure!(
        o.code == 0
            && status_field(&o.stdout, "NoNewPrivs") == Some("0")
            && status_field(&o.stdout, "Seccomp") == Some("2")
            && answer(&o.stdout, "64:272:0x10000000") == Some("errno 1"),
        "exit {}: {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    pass()
}

/// `exec` gets the container's filter, also when its profile was a custom one.
fn exec_same_filter() -> R {
    let mut b = match probe_bundle(&[]) {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    b.set(|c| {
        c["process"]["args"] = json!(["sleep", "30"]);
        c["linux"]["seccomp"] = custom(
            "SCMP_ACT_ALLOW",
            json!([{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]),
        );
    });
    b.save();
    let rt = Runtime::new();
    let o = rt.exec(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "ex"]);
    ensure!(o.code == 0, "{}", o.stderr);
    let e = rt.exec(&["exec", "ex", "/bin/syscalls", "64:110", "64:39"]);
    ensure!(
        answer(&e.stdout, "64:110") == Some("errno 42") && answer(&e.stdout, "64:39") == Some("ok"),
        "exec: {}{}",
        e.stdout,
        e.stderr
    );
    let st = rt.state("ex").ok_or("no state")?;
    ensure!(
        st["annotations"]["io.contain.seccomp"]
            .as_str()
            .is_some_and(|s| s.starts_with("config.json")),
        "state does not say which filter holds: {}",
        st["annotations"]
    );
    rt.exec(&["delete", "--force", "ex"]);
    rt.assert_clean(&b, "ex")?;
    pass()
}

fn bad_profiles() -> R {
    let rt = Runtime::new();
    let rule = |extra: Value| {
        let mut r = json!({"names": ["getpid"], "action": "SCMP_ACT_ERRNO"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [r]})
    };
    let huge: Vec<Value> = (0..35_000)
        .map(|i| {
            json!({"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": i % 4000 + 1,
                        "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_EXPLODE"}),
            "SCMP_ACT_EXPLODE",
        ),
        (
            rule(json!({"args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]})),
            "SCMP_CMP_ALMOST",
        ),
        (
            rule(json!({"args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]})),
            "index 6",
        ),
        (rule(json!({"errnoRet": 5000})), "errnoRet 5000"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/nonexistent/agent.sock",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "/nonexistent/agent.sock",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": huge}),
            "4096",
        ),
    ];
    for (i, (profile, needle)) in cases.into_iter().enumerate() {
        let mut b = Bundle::new();
        b.set(|c| c["linux"]["seccomp"] = profile);
        b.save();
        let id = format!("bad{i}");
        let o = rt.create(&b, &id);
        fails_with(&o, needle)?;
        ensure!(
            o.stderr.trim().lines().count() == 1,
            "not a one-line error: {:?}",
            o.stderr
        );
        rt.assert_clean(&b, &id)?;
    }
    pass()
}

/// The config's filter may refuse what the runtime itself does (close_range, say, which
/// runtime-tools' and older Docker profiles lack): whatever the runtime still does after it
/// installs the filter must not need it. With no_new_privs off the filter goes in before the
/// credentials change (as in runc); with it on, only execve follows, so a deny-by-default
/// profile that allows little more than execve runs a static program. `exec` likewise.
fn profile_need_not_allow_the_runtime() -> R {
    let mut b = match probe_bundle(&["64:436:0:0:0"]) {
        Ok(b) => b,
        Err(why) => return skip(why),
    };
    let no_close_range = custom(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]),
    );
    b.set(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = no_close_range.clone();
    });
    let rt = Runtime::new();
    for policy in ["default", "runc"] {
        let o = rt.with_policy(policy, "run", &b, "nc");
        ensure!(
            o.code == 0 && answer(&o.stdout, "64:436:0:0:0") == Some("errno 1"),
            "no close_range, no_new_privs off, {policy} policy: {} {:?} {}",
            o.code,
            o.stdout,
            o.stderr
        );
    }
    // exec into a container whose profile has no close_range.
    b.set(|c| c["process"]["args"] = json!(["sleep", "30"]));
    let o = rt.exec(&["run", "-d", "--bundle", b.path().to_str().unwrap(), "nx"]);
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    let e = rt.exec(&["exec", "nx", "/bin/syscalls", "64:39"]);
    ensure!(
        e.code == 0 && answer(&e.stdout, "64:39") == Some("ok"),
        "exec: {} {:?} {}",
        e.code,
        e.stdout,
        e.stderr
    );
    rt.exec(&["delete", "--force", "nx"]);
    rt.assert_clean(&b, "nx")?;
    // A profile installed before the wait for `start` that refuses ppoll and rt_sigprocmask:
    // the waiting init cannot take its signals in ppoll, yet a created container still ends
    // on TERM, and a started one runs its process.
    b.set(|c| {
        c["linux"]["seccomp"] = custom(
            "SCMP_ACT_ALLOW",
            json!([{"names": ["ppoll", "rt_sigprocmask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]),
        );
    });
    let o = rt.create(&b, "np");
    ensure!(o.code == 0, "create without ppoll: {}", o.stderr);
    ensure!(rt.exec(&["kill", "np", "TERM"]).code == 0, "kill TERM");
    ensure!(
        rt.wait_status("np", "stopped"),
        "a created container whose profile refuses ppoll is {} after kill TERM",
        rt.status("np")
    );
    rt.exec(&["delete", "np"]);
    rt.assert_clean(&b, "np")?;
    let o = rt.create(&b, "nq");
    ensure!(o.code == 0, "create without ppoll: {}", o.stderr);
    ensure!(rt.exec(&["start", "nq"]).code == 0, "start without ppoll");
    std::thread::sleep(std::time::Duration::from_millis(300));
    ensure!(
        rt.status("nq") == "running",
        "started without ppoll: {}",
        rt.status("nq")
    );
    rt.exec(&["delete", "--force", "nq"]);
    rt.assert_clean(&b, "nq")?;
    // no_new_privs on: errno by default, only execve and what a static program's libc needs
    // to start (memory for its TLS), write and exit_group allowed.
    b.set(|c| {
        c["process"]["noNewPrivileges"] = json!(true);
        c["process"]["args"] = json!(["/bin/syscalls", "64:39"]);
        c["linux"]["seccomp"] = custom(
            "SCMP_ACT_ERRNO",
            json!([{"names": ["execve", "brk", "mmap", "munmap", "mprotect", "arch_prctl",
                               "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]),
        );
    });
    let o = rt.run(&b, "nm");
    ensure!(
        o.code == 0 && answer(&o.stdout, "64:39") == Some("errno 1"),
        "deny-by-default profile: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.assert_clean(&b, "nm")?;
    pass()
}
