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

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[(
    "conformance::default_policy_no_worse_than_runc",
    no_worse_than_runc,
)];

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
