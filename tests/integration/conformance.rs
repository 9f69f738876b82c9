//! Conformance to the runtime spec under contain's policies, against runc on the same host.
//!
//! One config asks for every process and Linux setting the spec says a runtime MUST apply
//! (the areas the OCI runtime-tools validation suite covers: args, env, cwd, user and
//! additional gids, umask, rlimits, the five capability sets, no_new_privs, oomScoreAdj,
//! hostname, new namespaces, read-only root, mounts with their options, device nodes with
//! their number, mode and owner, the default devices and /dev links, masked and read-only
//! paths, sysctls, cgroup limits). A probe inside the container checks each one and prints
//! `NAME ok` or `NAME FAIL`. It runs under runc, under contain's `runc` policy and under
//! contain's `default` policy (which adds a user namespace, seccomp and Landlock): every
//! check that passes under runc must pass under both.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    (
        "conformance::default_policy_no_worse_than_runc",
        no_worse_than_runc,
    ),
    ("conformance::runc_bats_suite", runc_bats_suite),
    ("conformance::runtime_tools_suite", runtime_tools_suite),
    (
        "conformance::what_runtime_tools_found_now_matches_runc",
        runtime_tools_findings,
    ),
    (
        "conformance::what_runtime_tools_found_now_matches_runc_shared_root",
        || on_shared_root(runtime_tools_findings),
    ),
    (
        "conformance::what_runcs_suite_found_now_matches_runc",
        runcs_suite_findings,
    ),
    (
        "conformance::what_runcs_suite_found_now_matches_runc_shared_root",
        || on_shared_root(runcs_suite_findings),
    ),
];

/// CAP_CHOWN (0) and CAP_KILL (5) as /proc/self/status prints a set.
const CHOWN_KILL: &str = "0000000000000021";
const KILL: &str = "0000000000000020";

fn bundle() -> Result<(Bundle, tempfile::TempDir), libtest_mimic::Failed> {
    let mut b = Bundle::new();
    let data = tempfile::tempdir()?;
    std::fs::write(data.path().join("f"), "data\n")?;
    std::fs::set_permissions(
        data.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    std::fs::create_dir_all(b.rootfs().join("work"))?;
    // The host's namespaces, for the probe to tell that its own are new.
    let host_ns = |n: &str| {
        std::fs::metadata(format!("/proc/self/ns/{n}")).map(|m| format!("{n}:[{}]", m.ino()))
    };
    let mut env = vec!["PATH=/bin".to_string(), "CONFORMANCE=yes".to_string()];
    for n in ["pid", "net", "ipc", "uts", "mnt"] {
        env.push(format!("HOST_{}={}", n.to_uppercase(), host_ns(n)?));
    }
    b.set(|c| {
        c["hostname"] = json!("conformance");
        c["process"]["env"] = json!(env);
        c["process"]["cwd"] = json!("/work");
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10], "umask": 23});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        });
        c["process"]["noNewPrivileges"] = json!(true);
        c["process"]["oomScoreAdj"] = json!(100);
        c["root"]["readonly"] = json!(true);
        c["mounts"].as_array_mut().unwrap().extend([
            json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=1m"]}),
            json!({"destination": "/data", "type": "bind", "source": data.path(),
                   "options": ["rbind", "ro"]}),
        ]);
        c["linux"]["devices"] = json!([{"path": "/dev/zero2", "type": "c", "major": 1, "minor": 5,
                                        "fileMode": 416, "uid": 0, "gid": 10}]);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
        c["linux"]["resources"]["pids"] = json!({"limit": 40});
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    });
    let probe = format!(
        r#"c() {{ n=$1; shift; if eval "$@" >/dev/null 2>&1; then echo "$n ok"; else echo "$n FAIL"; fi; }}
st() {{ grep "^$1:" /proc/self/status | cut -f2; }}
c args true
c env '[ "$CONFORMANCE" = yes ]'
c cwd '[ "$(pwd)" = /work ]'
c user.uid '[ "$(id -u)" = 1000 ]'
c user.gid '[ "$(id -g)" = 1000 ]'
c user.additionalGids 'id -G | grep -qw 10'
c user.umask '[ "$(umask)" = 0027 ]'
c rlimits.soft '[ "$(ulimit -Sn)" = 512 ]'
c rlimits.hard '[ "$(ulimit -Hn)" = 1024 ]'
c caps.bounding '[ "$(st CapBnd)" = {CHOWN_KILL} ]'
c caps.effective '[ "$(st CapEff)" = {KILL} ]'
c caps.permitted '[ "$(st CapPrm)" = {KILL} ]'
c caps.inheritable '[ "$(st CapInh)" = {KILL} ]'
c caps.ambient '[ "$(st CapAmb)" = {KILL} ]'
c noNewPrivileges '[ "$(st NoNewPrivs)" = 1 ]'
c oomScoreAdj '[ "$(cat /proc/self/oom_score_adj)" = 100 ]'
c hostname '[ "$(hostname)" = conformance ]'
c ns.pid '[ $$ = 1 ] && [ "$(readlink /proc/self/ns/pid)" != "$HOST_PID" ]'
c ns.net '[ "$(readlink /proc/self/ns/net)" != "$HOST_NET" ]'
c ns.ipc '[ "$(readlink /proc/self/ns/ipc)" != "$HOST_IPC" ]'
c ns.uts '[ "$(readlink /proc/self/ns/uts)" != "$HOST_UTS" ]'
c ns.mnt '[ "$(readlink /proc/self/ns/mnt)" != "$HOST_MNT" ]'
c root.readonly '! touch /x && grep " / " /proc/mounts | grep -q " ro,"'
c mount.tmpfs 'grep " /scratch tmpfs " /proc/mounts | grep -q "nosuid,nodev,noexec" && echo x > /scratch/x && [ "$(stat -c %a /scratch)" = 1777 ]'
c mount.tmpfs.size '[ "$(df -k /scratch | awk "NR==2 {{print \$2}}")" = 1024 ]'
c mount.bind.ro '[ "$(cat /data/f)" = data ] && ! touch /data/g'
c devices.node '[ "$(stat -c "%F %t:%T %a %u:%g" /dev/zero2)" = "character special file 1:5 640 0:10" ]'
c devices.default 'for d in null zero full random urandom tty; do [ -c /dev/$d ] || exit 1; done; [ "$(stat -c %a /dev/null)" = 666 ]'
c devices.links '[ "$(readlink /dev/fd)" = /proc/self/fd ] && [ "$(readlink /dev/stdin)" = /proc/self/fd/0 ] && [ "$(readlink /dev/ptmx)" = pts/ptmx ]'
c devices.null.works 'echo x > /dev/null && [ "$(head -c 2 /dev/zero | od -An -tx1 | tr -d " ")" = 0000 ]'
c maskedPaths '[ ! -s /proc/kcore ] && [ -z "$(ls /sys/firmware)" ]'
c readonlyPaths '! sh -c "echo 1 > /proc/sysrq-trigger" && grep " /proc/sys " /proc/mounts | grep -q " ro,"'
c sysctl '[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] && [ "$(cat /proc/sys/kernel/shmmni)" = 1234 ]'
c cgroup.pids '[ "$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)" = 40 ]'
c cgroup.memory '[ "$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)" = 67108864 ]'
"#
    );
    b.sh(&probe);
    Ok((b, data))
}

fn results(stdout: &str) -> BTreeMap<String, bool> {
    stdout
        .lines()
        .filter_map(|l| {
            let (name, r) = l.rsplit_once(' ')?;
            Some((name.to_string(), r == "ok"))
        })
        .collect()
}

fn no_worse_than_runc() -> R {
    let Some(runc) = which("runc") else {
        return skip("runc is not installed (apt-get install runc)");
    };
    let (b, _data) = bundle()?;
    let rt = Runtime::new();
    let runs = [
        ("runc", runc_run(&runc, &b, "conf-runc")),
        (
            "contain --policy runc",
            rt.with_policy("runc", "run", &b, "conf-a"),
        ),
        (
            "contain --policy default",
            rt.with_policy("default", "run", &b, "conf-b"),
        ),
    ];
    let mut table: Vec<(&str, BTreeMap<String, bool>)> = Vec::new();
    for (who, o) in &runs {
        ensure!(o.code == 0, "{who} exited {}: {}", o.code, o.stderr);
        table.push((who, results(&o.stdout)));
    }
    let reference = &table[0].1;
    ensure!(
        reference.len() == 35,
        "runc ran {} checks: {:?}",
        reference.len(),
        runs[0].1.stdout
    );
    // The table, for the log: every check, pass or fail, per runtime.
    eprintln!(
        "{:<22} {:>6} {:>14} {:>16}",
        "check", "runc", "contain runc", "contain default"
    );
    let mut worse = Vec::new();
    for (name, &theirs) in reference {
        let ours: Vec<bool> = table[1..]
            .iter()
            .map(|(_, r)| r.get(name).copied().unwrap_or(false))
            .collect();
        let mark = |ok: bool| if ok { "ok" } else { "FAIL" };
        eprintln!(
            "{name:<22} {:>6} {:>14} {:>16}",
            mark(theirs),
            mark(ours[0]),
            mark(ours[1])
        );
        for ((who, _), ok) in table[1..].iter().zip(&ours) {
            if theirs && !ok {
                worse.push(format!("{name} under {who}"));
            }
        }
    }
    ensure!(worse.is_empty(), "fails where runc passes: {worse:?}");
    let failed_by_runc: Vec<&String> = reference
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(n, _)| n)
        .collect();
    ensure!(
        failed_by_runc.is_empty(),
        "runc itself fails {failed_by_runc:?} (the probe is wrong?)"
    );
    rt.assert_clean(&b, "conf-b")?;
    pass()
}

/// Tests of runc's own suite that contain fails on purpose, for the policies named ("any":
/// every policy), and why (README, "Differences from runc").
const BATS_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "any",
        "global --debug",
        "it checks runc's internal debug lines (nsexec, the init pipe)",
    ),
    (
        "any",
        "global --debug to --log",
        "runc's internal debug lines",
    ),
    (
        "any",
        "global --debug to --log --log-format 'json'",
        "runc's internal debug lines",
    ),
    (
        "any",
        "global --debug to --log --log-format 'text'",
        "runc's internal debug lines",
    ),
    ("any", "runc --debug exec", "runc's internal debug lines"),
    (
        "any",
        "runc --debug --log exec",
        "runc's internal debug lines",
    ),
    (
        "any",
        "runc -h",
        "help text: urfave/cli's layout naming runc; contain's is clap's",
    ),
    (
        "any",
        "runc command -h",
        "help text, and checkpoint/restore, which contain lacks",
    ),
    (
        "any",
        "runc foo -h",
        "urfave/cli's message for an unknown help topic",
    ),
    ("any", "runc version", "the version line names runc"),
    (
        "any",
        "checkpoint --pre-dump (bad --parent-path)",
        "no checkpoint/restore (CRIU)",
    ),
    (
        "default",
        "ps",
        "user namespace: the host's ps shows the container's root as its host uid",
    ),
    (
        "default",
        "ps -e -x",
        "user namespace: the container's root shows as its host uid",
    ),
    (
        "default",
        "runc exec --preserve-fds",
        "Landlock: a preserved host file reopened through /proc/self/fd lies outside the ruleset",
    ),
    (
        "default",
        "runc run --no-pivot must not expose bare /proc",
        "user namespace: the attack fails a step earlier (unshare is refused, not the mount)",
    ),
    (
        "default",
        "runc run [device cgroup allow rw char device]",
        "user namespace: /dev/kmsg needs CAP_SYSLOG in the host's user namespace",
    ),
    (
        "default",
        "runc run [device cgroup allow rm block device]",
        "user namespace: mknod needs CAP_MKNOD in the host's user namespace",
    ),
    (
        "default",
        "runc run [seccomp] (SCMP_ACT_NOTIFY noNewPrivileges false)",
        NOTIFY_AGENT_UNMAPPED,
    ),
    (
        "default",
        "runc run [seccomp] (SCMP_ACT_NOTIFY noNewPrivileges true)",
        NOTIFY_AGENT_UNMAPPED,
    ),
    (
        "default",
        "runc exec [seccomp] (SCMP_ACT_NOTIFY noNewPrivileges false)",
        NOTIFY_AGENT_UNMAPPED,
    ),
    (
        "default",
        "runc exec [seccomp] (SCMP_ACT_NOTIFY noNewPrivileges true)",
        NOTIFY_AGENT_UNMAPPED,
    ),
    (
        "default",
        "runc run [seccomp] (SCMP_ACT_NOTIFY example config)",
        NOTIFY_AGENT_UNMAPPED,
    ),
];

/// Why runc's example seccomp agent cannot do its mkdir for a container under `default`.
const NOTIFY_AGENT_UNMAPPED: &str = "user namespace: runc's example agent makes the directory as \
     the host's root, which the container's user namespace does not map (EOVERFLOW); the \
     notification reaches the agent and its answer reaches the process";

/// Whether one test of a TAP stream passed, was skipped or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tap {
    Pass,
    Skip,
    Fail,
}

/// The outcomes of a `bats -T -t` run by test name ("ok 3 name in 12ms # skip why").
fn tap_outcomes(out: &str) -> BTreeMap<String, Tap> {
    let mut map = BTreeMap::new();
    for line in out.lines().map(|l| l.trim_end_matches('\r')) {
        let (outcome, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            (Tap::Fail, r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            (Tap::Pass, r)
        } else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(' ') else {
            continue;
        };
        let (rest, outcome) = match rest.split_once(" # skip") {
            Some((r, _)) => (r, Tap::Skip),
            None => (rest, outcome),
        };
        let name = match rest.rsplit_once(" in ") {
            Some((n, t)) if t.ends_with("ms") => n,
            _ => rest,
        };
        map.insert(name.to_string(), outcome);
    }
    map
}

/// runc 1.1.5's own bats suite (scripts/test-runc-bats.sh) run against runc, contain under
/// `default` and contain under `--policy runc`, each in a mount namespace of its own and on
/// a terminal: every test runc passes passes under contain too, but those BATS_DIFFERENCES
/// names for the policy; and every listed difference is still one (the list stays honest).
/// The seccomp-notify files run with a C stand-in for runc's seccomp agent.
fn runc_bats_suite() -> R {
    let Some(dir) = std::env::var_os("CONTAIN_TEST_RUNC_BATS") else {
        return skip(
            "CONTAIN_TEST_RUNC_BATS is not set (scripts/test.sh sets it from scripts/test-runc-bats.sh)",
        );
    };
    let dir = PathBuf::from(dir);
    for tool in ["bats", "jq", "script", "runc"] {
        if which(tool).is_none() {
            return skip(format!(
                "{tool} is not installed (scripts/test-deps.sh installs it)"
            ));
        }
    }
    let runc = which("runc").unwrap_or_default();
    let mut files: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bats"))
        .collect();
    files.sort();
    ensure!(
        files.len() > 30,
        "runc's suite has {} files in {}",
        files.len(),
        dir.display()
    );
    let wrappers = tempfile::tempdir()?;
    let under_policy = wrappers.path().join("contain-runc-policy");
    std::fs::write(
        &under_policy,
        format!("#!/bin/sh\nexec {CONTAIN} --policy runc \"$@\"\n"),
    )?;
    std::fs::set_permissions(
        &under_policy,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let suite = |runtime: &Path| -> Result<BTreeMap<String, Tap>, libtest_mimic::Failed> {
        let cmd = format!(
            "env RUNC={} BATS_TEST_TIMEOUT=120 unshare -m --propagation private bats -T -t {}",
            runtime.display(),
            files.join(" ")
        );
        let out = std::process::Command::new("timeout")
            .args(["1200", "script", "-qec", &cmd, "/dev/null"])
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .output()?;
        // A recvtty or seccomp agent whose test's teardown missed it is debris of the
        // suite's: end it.
        let helpers = [
            std::fs::canonicalize(dir.join("../../contrib/cmd/recvtty/recvtty"))?,
            std::fs::canonicalize(dir.join("../../contrib/cmd/seccompagent/seccompagent"))?,
        ];
        for pid in std::fs::read_dir("/proc")?.filter_map(|e| e.ok()) {
            let exe = std::fs::read_link(pid.path().join("exe"));
            if exe.is_ok_and(|e| helpers.contains(&e)) {
                if let Ok(n) = pid.file_name().to_string_lossy().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(n),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let map = tap_outcomes(&String::from_utf8_lossy(&out.stdout));
        ensure!(
            map.len() > 100,
            "bats under {} reported {} tests: {}",
            runtime.display(),
            map.len(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(map)
    };
    let count = |m: &BTreeMap<String, Tap>, t: Tap| m.values().filter(|o| **o == t).count();
    let reference = suite(&runc)?;
    let mut problems = Vec::new();
    for (policy, runtime) in [
        ("default", Path::new(CONTAIN)),
        ("runc", under_policy.as_path()),
    ] {
        let got = suite(runtime)?;
        eprintln!(
            "runc's bats suite: runc {} passed, {} skipped, {} failed; contain --policy {policy}: {} passed, {} skipped, {} failed",
            count(&reference, Tap::Pass),
            count(&reference, Tap::Skip),
            count(&reference, Tap::Fail),
            count(&got, Tap::Pass),
            count(&got, Tap::Skip),
            count(&got, Tap::Fail),
        );
        let passed = |m: &BTreeMap<String, Tap>| {
            m.iter()
                .map(|(k, v)| (k.clone(), *v == Tap::Pass))
                .collect::<BTreeMap<_, _>>()
        };
        problems.extend(departures(
            policy,
            &passed(&reference),
            &passed(&got),
            ("BATS_DIFFERENCES", BATS_DIFFERENCES),
            |name| format!("({:?})", got.get(name)),
        ));
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    pass()
}

/// Where contain under `policy` departs from runc in a public suite (test name -> passed): a
/// test runc passes that contain does not, unless the list of differences names it for the
/// policy ("any": every policy); and a listed one that passes (the list stays honest). `more`
/// adds to the first kind's message.
fn departures(
    policy: &str,
    runc: &BTreeMap<String, bool>,
    ours: &BTreeMap<String, bool>,
    (list, differences): (&str, &[(&str, &str, &str)]),
    more: impl Fn(&str) -> String,
) -> Vec<String> {
    let listed = |name: &str| {
        differences
            .iter()
            .any(|(p, n, _)| (*p == "any" || *p == policy) && *n == name)
    };
    let mut problems = Vec::new();
    for (name, runc_passed) in runc {
        let passed = ours.get(name).copied().unwrap_or(false);
        if *runc_passed && !passed && !listed(name) {
            problems.push(format!(
                "{policy}: {name:?} passes under runc, not under contain {}",
                more(name)
            ));
        }
        if listed(name) && passed {
            problems.push(format!(
                "{policy}: {name:?} is listed as a difference from runc but passes: remove it from {list}"
            ));
        }
    }
    problems
}

/// Validation programs of runtime-tools that contain fails on purpose, for the policies named
/// ("any": every policy), and why (README, "Differences from runc").
const RUNTIME_TOOLS_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "any",
        "linux_ns_itype",
        "a config without a mount namespace: runc sets the rootfs up in the runtime's own mount \
         namespace (the mounts stay in the host's table) and only chroots; contain refuses it",
    ),
    (
        "default",
        "linux_ns_path",
        "user namespace: the hostname cannot be set in a host's uts namespace joined by path \
         (container root holds no capability in it); refused, naming hostname and the runc policy",
    ),
];

/// Whether a runtime-tools validation program's TAP output is a pass, as a TAP harness counts
/// it: it exited 0, printed its plan, and no test point failed but those marked TODO.
fn tap_program_passed(out: &std::process::Output) -> bool {
    let text = String::from_utf8_lossy(&out.stdout);
    let failed = text
        .lines()
        .any(|l| l.starts_with("not ok") && !l.contains("# TODO"));
    let planned = text.lines().any(|l| {
        l.strip_prefix("1..")
            .is_some_and(|n| n.parse::<u32>().is_ok())
    });
    out.status.success() && planned && !failed
}

/// The OCI runtime-tools validation suite (scripts/test-runtime-tools.sh: one program per
/// spec area, most of which run runtime-tools' runtimetest inside the container to check it
/// from there) run against runc, contain under `default` and contain under `--policy runc`,
/// each program in a mount namespace of its own: every program runc passes passes under
/// contain too, but those RUNTIME_TOOLS_DIFFERENCES names for the policy, and every listed
/// difference is still one.
fn runtime_tools_suite() -> R {
    let Some(dir) = std::env::var_os("CONTAIN_TEST_RUNTIME_TOOLS") else {
        return skip(
            "CONTAIN_TEST_RUNTIME_TOOLS is not set (scripts/test.sh sets it from scripts/test-runtime-tools.sh)",
        );
    };
    let dir = PathBuf::from(dir);
    let Some(runc) = which("runc") else {
        return skip("runc is not installed (scripts/test-deps.sh installs it)");
    };
    let mut programs: Vec<String> = std::fs::read_dir(dir.join("validation"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            dir.join("validation")
                .join(n)
                .join(format!("{n}.t"))
                .is_file()
        })
        .collect();
    programs.sort();
    ensure!(
        programs.len() > 50,
        "runtime-tools has {} validation programs in {}",
        programs.len(),
        dir.display()
    );
    let roots = tempfile::tempdir()?;
    // Each runtime with a state root of its own, so that what a failing program leaves is
    // found and removed afterwards.
    let wrapper = |name: &str, cmd: String| -> Result<PathBuf, libtest_mimic::Failed> {
        let root = roots.path().join(format!("{name}-state"));
        let path = roots.path().join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nexec {cmd} --root {} \"$@\"\n", root.display()),
        )?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        Ok(path)
    };
    let suite = |runtime: &Path| -> Result<BTreeMap<String, bool>, libtest_mimic::Failed> {
        let mut map = BTreeMap::new();
        for p in &programs {
            let out = std::process::Command::new("timeout")
                .args(["120", "unshare", "-m", "--propagation", "private"])
                .arg(format!("validation/{p}/{p}.t"))
                .env("RUNTIME", runtime)
                .current_dir(&dir)
                .stdin(std::process::Stdio::null())
                .output()?;
            map.insert(p.clone(), tap_program_passed(&out));
        }
        // What a failing program left: its containers, ended and deleted.
        let list = std::process::Command::new(runtime)
            .args(["list", "-q"])
            .output()?;
        for id in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            let _ = std::process::Command::new(runtime)
                .args(["delete", "-f", id])
                .output();
        }
        Ok(map)
    };
    let passed = |m: &BTreeMap<String, bool>| m.values().filter(|p| **p).count();
    let reference = suite(&wrapper("runc", runc.display().to_string())?)?;
    let mut problems = Vec::new();
    for (policy, runtime) in [
        ("default", wrapper("contain-default", CONTAIN.to_string())?),
        (
            "runc",
            wrapper("contain-runc", format!("{CONTAIN} --policy runc"))?,
        ),
    ] {
        let got = suite(&runtime)?;
        eprintln!(
            "runtime-tools validation: runc {} of {} programs passed; contain --policy {policy}: {}",
            passed(&reference),
            reference.len(),
            passed(&got)
        );
        problems.extend(departures(
            policy,
            &reference,
            &got,
            ("RUNTIME_TOOLS_DIFFERENCES", RUNTIME_TOOLS_DIFFERENCES),
            |name| {
                format!(
                    "(run it: cd {} && RUNTIME={} validation/{name}/{name}.t)",
                    dir.display(),
                    runtime.display()
                )
            },
        ));
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    pass()
}

/// What runtime-tools' validation found, under `default` and `--policy runc`, observed from
/// inside: the container's /proc/self/mountinfo lists its mounts in config.json's order, also
/// those the runtime prepares before the init mounts the rest (the /dev tmpfs, idmapped bind
/// sources under `default`); a hostname is set in a uts namespace joined by path (runc's
/// rule), and where the added user namespace makes that impossible it is refused naming the
/// field and the policy that allows it, with nothing left behind.
fn runtime_tools_findings() -> R {
    let host_dir = tempfile::tempdir()?;
    std::fs::write(host_dir.path().join("mark"), "bound")?;
    let mut uts = std::process::Command::new("unshare")
        .args(["-u", "sleep", "60"])
        .spawn()?;
    let uts_path = format!("/proc/{}/ns/uts", uts.id());
    let result = (|| -> R {
        for policy in ["default", "runc"] {
            let rt = Runtime::new();
            let mut b = Bundle::new();
            b.sh("cat /mnt/b/mark; echo; awk '{print $5}' /proc/self/mountinfo");
            b.set(|c| {
                let mounts = c["mounts"].as_array_mut().expect("mounts");
                mounts.push(
                    json!({"destination": "/tmp/a", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "size=64k"]}),
                );
                mounts.push(json!({"destination": "/mnt/b", "type": "bind",
                    "source": host_dir.path(), "options": ["rbind", "ro"]}));
            });
            let want: Vec<String> = b.config["mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["destination"].as_str().map(str::to_string))
                .collect();
            let o = rt.with_policy(policy, "run", &b, "order");
            ensure!(
                o.code == 0 && o.stdout.starts_with("bound"),
                "{policy}: run: {} {} {}",
                o.code,
                o.stdout,
                o.stderr
            );
            let seen: Vec<&str> = o
                .stdout
                .lines()
                .skip(1)
                .filter(|l| want.iter().any(|w| w == l))
                .collect();
            ensure!(
                seen == want,
                "{policy}: mountinfo lists config.json's mounts as {seen:?}, config.json's order is {want:?}"
            );
            rt.assert_clean(&b, "order")?;

            let mut b = Bundle::new();
            b.sh("hostname");
            b.set(|c| {
                c["hostname"] = json!("joined-uts");
                let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
                ns.retain(|n| n["type"] != "uts");
                ns.push(json!({"type": "uts", "path": uts_path}));
            });
            let o = rt.with_policy(policy, "run", &b, "uts");
            let theirs = std::process::Command::new("nsenter")
                .args(["-t", &uts.id().to_string(), "-u", "hostname"])
                .output()?;
            let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_string();
            if policy == "runc" {
                ensure!(
                    o.code == 0 && o.stdout.trim() == "joined-uts" && theirs == "joined-uts",
                    "runc: hostname in a joined uts namespace: {} {:?} {:?}, the namespace's: {theirs:?}",
                    o.code,
                    o.stdout,
                    o.stderr
                );
            } else {
                fails_with(&o, "hostname")?;
                ensure!(
                    o.stderr.contains("runc") && theirs != "joined-uts",
                    "default: the refusal names no policy, or the name was set: {:?}, the namespace's: {theirs:?}",
                    o.stderr
                );
            }
            rt.assert_clean(&b, "uts")?;
        }
        pass()
    })();
    let _ = uts.kill();
    let _ = uts.wait();
    result
}

/// What runc's own suite found, each under `default` and `--policy runc`, observed through
/// the container: a profile that does not list the native architecture still governs it (as
/// libseccomp's filter always holds it); a startContainer hook runs under the filter and its
/// death is runc's "error running hook ... bad system call"; a read-only /dev tmpfs is
/// read-only and shows as tmpfs with its devices made; `kill ID 0` of a stopped container
/// succeeds; `exec`'s own failures exit 255 with "exec failed:"; `list --format json` keeps
/// runc's field order; an `exec --process` file without `user` runs as root.
fn runcs_suite_findings() -> R {
    for policy in ["default", "runc"] {
        let rt = Runtime::new();
        // mkdir refused by a profile naming only the 32-bit ABIs.
        let mut b = Bundle::new();
        b.sh("mkdir /tmp/foo; echo status=$?");
        b.set(|c| {
            c["process"]["noNewPrivileges"] = json!(false);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
            });
        });
        let o = rt.with_policy(policy, "run", &b, "arch");
        ensure!(
            o.code == 0
                && o.stdout.contains("status=1")
                && o.stderr.contains("Operation not permitted"),
            "{policy}: mkdir under a profile without x86_64: {} {} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        // A startContainer hook killed by the filter fails the run, in runc's words.
        let mut b = Bundle::new();
        b.set(|c| {
            c["process"]["args"] = json!(["/bin/true"]);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
            });
            c["hooks"] = json!({"startContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/foo"]}
            ]});
        });
        let o = rt.with_policy(policy, "run", &b, "hook");
        ensure!(
            o.code != 0
                && o.stderr.contains("error running hook #0")
                && o.stderr.contains("bad system call"),
            "{policy}: startContainer hook under the filter: {} {}",
            o.code,
            o.stderr
        );
        // A read-only /dev tmpfs: read-only, a tmpfs, and its nodes made.
        let mut b = Bundle::new();
        b.sh("grep '^tmpfs /dev tmpfs ro,' /proc/mounts && test -c /dev/null && ! touch /dev/x 2>/dev/null && echo sealed");
        b.set(|c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/dev" {
                    m["options"].as_array_mut().unwrap().push(json!("ro"));
                }
            }
        });
        let o = rt.with_policy(policy, "run", &b, "rodev");
        ensure!(
            o.code == 0 && o.stdout.contains("sealed"),
            "{policy}: ro /dev: {} {} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        // kill 0, exec's 255, list's order, --process without user.
        let mut b = Bundle::new();
        b.sh("sleep 30");
        ensure!(
            rt.run_detached(policy, &b, "k").code == 0,
            "{policy}: run -d"
        );
        let o = rt.exec(&["list", "--format", "json"]);
        let order: Vec<usize> = [
            "\"ociVersion\"",
            "\"id\"",
            "\"pid\"",
            "\"status\"",
            "\"bundle\"",
            "\"rootfs\"",
            "\"created\"",
        ]
        .iter()
        .map(|k| o.stdout.find(k).unwrap_or(usize::MAX))
        .collect();
        ensure!(
            order.windows(2).all(|w| w[0] < w[1] && w[1] != usize::MAX),
            "{policy}: list --format json order: {}",
            o.stdout
        );
        let proc_json = b.path().join("process.json");
        std::fs::write(&proc_json, r#"{"args": ["/bin/id", "-u"], "cwd": "/"}"#)?;
        let o = rt
            .cmd()
            .args(["exec", "--process"])
            .arg(&proc_json)
            .arg("k")
            .out();
        ensure!(
            o.code == 0 && o.stdout.trim() == "0",
            "{policy}: exec --process without user: {} {} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        let o = rt.exec(&["exec", "--pid-file", "/nonexistent/dir/pid", "k", "true"]);
        ensure!(
            o.code == 255 && o.stderr.contains("exec failed:"),
            "{policy}: exec's own failure: {} {}",
            o.code,
            o.stderr
        );
        let o = rt.exec(&["exec", "nosuch", "true"]);
        ensure!(
            o.code == 255,
            "{policy}: exec into a missing container: {}",
            o.code
        );
        ensure!(rt.exec(&["kill", "k", "KILL"]).code == 0, "{policy}: kill");
        ensure!(rt.wait_status("k", "stopped"), "{policy}: not stopped");
        let o = rt.exec(&["kill", "--all", "k", "0"]);
        ensure!(
            o.code == 0,
            "{policy}: kill -a k 0 of a stopped container: {} {}",
            o.code,
            o.stderr
        );
        ensure!(rt.exec(&["delete", "k"]).code == 0, "{policy}: delete");
    }
    pass()
}
