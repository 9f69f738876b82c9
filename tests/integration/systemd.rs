//! The systemd cgroup driver (`--systemd-cgroup`) against a real systemd: the test boots
//! /lib/systemd/systemd as PID 1 of private pid, mount, cgroup, uts, ipc and network
//! namespaces, inside a cgroup of its own in every hierarchy, with a D-Bus system bus of its
//! own. Its boot target pulls in nothing but D-Bus (no sysinit: nothing of the host is set up
//! again), and the host's filesystems are read-only in its mount namespace, /tmp and the
//! fixture's tmpfs excepted. contain runs inside those namespaces, as it would on a systemd
//! host. Limits are observed from inside the container, and again after a `systemctl
//! daemon-reload`, which puts back what the unit's properties say.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("systemd::scope_limits_from_inside", scope_limits),
    ("systemd::unified_mode_scope", unified_mode_scope),
    ("systemd::refused_without_systemd", refused_without_systemd),
];

/// Outside: make the fixture's cgroup in every hierarchy and enter it, then boot systemd in
/// new namespaces. Inside: every host mount read-only but /tmp, fresh cgroup mounts (rooted at
/// the fixture's cgroups), tmpfs on /run and on the unit directory, which holds a boot target
/// wanting only dbus.socket and dbus.service, both without default dependencies.
const BOOT: &str = r#"set -e
name=$1 layout=$2
for h in /sys/fs/cgroup/*/; do
  d=$h/contain-test/$name
  mkdir -p "$d"
  if [ -e "$h/cpuset.cpus" ]; then
    for f in cpuset.cpus cpuset.mems; do
      [ -s "$h/contain-test/$f" ] || cat "$h/$f" > "$h/contain-test/$f"
      cat "$h/contain-test/$f" > "$d/$f"
    done
  fi
  echo $$ > "$d/cgroup.procs"
done
hier=$(awk -F' - ' '{split($1, a, " "); split($2, b, " ");
  if ((b[1] == "cgroup" || b[1] == "cgroup2") && a[5] ~ "^/sys/fs/cgroup/") print a[5], b[1], b[3]}' /proc/self/mountinfo)
export hier layout
exec unshare --pid --fork --mount --cgroup --uts --ipc --net --mount-proc bash -c '
set -e
mount --make-rprivate /
mount --bind /tmp /tmp
for m in $(awk "{print \$5}" /proc/self/mountinfo | sort -u); do
  case $m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run|/run/*|/tmp) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -t tmpfs -o mode=755 tmpfs /run
if [ "$layout" = unified ]; then
  for m in $(awk "\$5 ~ \"^/sys/fs/cgroup\" {print \$5}" /proc/self/mountinfo | sort -ru); do umount -l "$m" || true; done
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
  while read -r mp fstype opts; do
    mkdir -p "$mp"
    if [ "$fstype" = cgroup ]; then mount -t cgroup -o "${opts#rw,}" cgroup "$mp"
    else mount -t cgroup2 cgroup2 "$mp"; fi
  done <<< "$hier"
fi
u=/etc/systemd/system
mount -t tmpfs tmpfs $u
printf "[Unit]\nDescription=contain test fixture\nDefaultDependencies=no\nWants=dbus.socket dbus.service\n" > $u/contain-test.target
printf "[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n" > $u/dbus.socket
printf "[Unit]\nDefaultDependencies=no\nRequires=dbus.socket\n[Service]\nExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n" > $u/dbus.service
exec env -i container=contain-test PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --unit=contain-test.target --log-target=console
'"#;

/// Run "$@" (from the 3rd argument) in the fixture's namespaces, from its init.scope.
const ENTER: &str = r#"name=$1 pid=$2; shift 2
for h in /sys/fs/cgroup/*/contain-test/$name; do
  if [ -d "$h/init.scope" ]; then echo $$ > "$h/init.scope/cgroup.procs"; else echo $$ > "$h/cgroup.procs"; fi
done
exec nsenter -t "$pid" -m -p -C -- "$@""#;

/// A systemd of the test's own; killed (with its whole pid namespace) and its cgroups
/// removed when dropped.
struct Fixture {
    name: String,
    unshare: Child,
    pid: i32,
}

impl Fixture {
    /// `unified`: only the cgroup2 tree at /sys/fs/cgroup (systemd's unified mode); else this
    /// host's hierarchies as they are.
    fn boot(unified: bool) -> Result<Fixture, String> {
        for need in ["/lib/systemd/systemd", "/usr/bin/dbus-daemon"] {
            if !Path::new(need).exists() {
                return Err(format!("{need} is not installed"));
            }
        }
        let layout = if unified { "unified" } else { "host" };
        let name = format!("systemd-{layout}-{}", std::process::id());
        let unshare = Command::new("bash")
            .args(["-c", BOOT, "boot", &name, layout])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("bash: {e}"))?;
        let mut f = Fixture {
            name,
            unshare,
            pid: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if f.pid == 0 {
                let children =
                    std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", f.unshare.id()))
                        .unwrap_or_default();
                let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm"));
                if let Some(p) = children
                    .split_whitespace()
                    .find(|p| comm(p).is_ok_and(|c| c.trim() == "systemd"))
                {
                    f.pid = p.parse().unwrap_or(0);
                }
            }
            if f.pid != 0 {
                // Ready when systemd answers on the bus.
                let o = f.sh(&[
                    "busctl",
                    "--system",
                    "call",
                    "org.freedesktop.systemd1",
                    "/org/freedesktop/systemd1",
                    "org.freedesktop.DBus.Peer",
                    "Ping",
                ]);
                if o.code == 0 {
                    return Ok(f);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "systemd did not come up on its bus in 30 s (pid {})",
                    f.pid
                ));
            }
            if let Ok(Some(st)) = f.unshare.try_wait() {
                return Err(format!("the fixture exited: {st}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command in the fixture's namespaces.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args(["60", "bash", "-c", ENTER, "enter", &self.name])
            .arg(self.pid.to_string())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn sh(&self, args: &[&str]) -> Out {
        self.cmd(args).out()
    }

    /// `contain --root R --systemd-cgroup ARGS` in the fixture.
    fn contain(&self, rt: &Runtime, args: &[&str]) -> Out {
        let root = rt.root.path().to_string_lossy().into_owned();
        let mut all = vec![CONTAIN, "--root", &root, "--systemd-cgroup"];
        all.extend(args);
        self.sh(&all)
    }

    /// `systemctl show -p PROPERTY --value UNIT`.
    fn show(&self, unit: &str, property: &str) -> String {
        self.sh(&["systemctl", "show", "-p", property, "--value", unit])
            .stdout
            .trim()
            .to_string()
    }

    /// The fixture's cgroup directory in the host's hierarchy at `mount`.
    fn host_dir(&self, mount: &Path) -> PathBuf {
        mount.join("contain-test").join(&self.name)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.pid > 0 {
            // The namespace's init: every process in it dies with it.
            let _ = Command::new("kill")
                .args(["-9", &self.pid.to_string()])
                .status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        for h in contain::cgroups::hierarchies().unwrap_or_default() {
            let dir = self.host_dir(&h.mount);
            for _ in 0..100 {
                let _ = Command::new("find")
                    .arg(&dir)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .stderr(Stdio::null())
                    .status();
                if !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The scope's directory in each of the host's hierarchies.
fn scope_dirs(f: &Fixture, rel: &str) -> Vec<PathBuf> {
    contain::cgroups::hierarchies()
        .unwrap_or_default()
        .iter()
        .map(|h| f.host_dir(&h.mount).join(rel))
        .collect()
}

/// Inside: where systemd put us, whether a denied device opens, whether a memory hog survives
/// (it and its pipe are the OOM killer's first choice: on cgroup v1 a second OOM can come
/// before the first victim's memory is uncharged, and must not take the shell), how many tasks
/// a fork bomb gets (last: its orphans stay until the container goes).
const PROBE: &str = "grep name=systemd /proc/self/cgroup || grep '^0::' /proc/self/cgroup; \
    echo x > /dev/null && echo null-ok; \
    head -c1 /dev/full > /dev/null 2>&1 && echo full-opened || echo full-refused; \
    (echo 1000 > /proc/self/oom_score_adj; head -c 100m /dev/zero | tail > /dev/null); echo hog=$?; \
    (i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; \
    read cur < /sys/fs/cgroup/pids/pids.current; read ev < /sys/fs/cgroup/pids/pids.events; \
    echo $cur $ev";

fn check_probe(out: &str, scope: &str, when: &str) -> Result<(), libtest_mimic::Failed> {
    let l: Vec<&str> = out.lines().collect();
    ensure!(l.len() == 5, "{when}: output {out:?}");
    ensure!(
        l[0].ends_with(&format!(":/{scope}")),
        "{when}: the container is not in the scope systemd made: {:?}",
        l[0]
    );
    ensure!(l[1] == "null-ok", "{when}: /dev/null refused: {l:?}");
    ensure!(
        l[2] == "full-refused",
        "{when}: /dev/full (denied) opened: {l:?}"
    );
    ensure!(
        l[3] == "hog=137",
        "{when}: the memory hog was not OOM-killed at 32 MiB: {:?}",
        l[3]
    );
    let f: Vec<&str> = l[4].split_whitespace().collect();
    let (cur, refused): (u32, u32) = match f[..] {
        [cur, "max", n] => (cur.parse()?, n.parse()?),
        _ => return Err(format!("{when}: pids.current and pids.events: {:?}", l[4]).into()),
    };
    ensure!(cur <= 16, "{when}: pids.max 16 not enforced: {cur} tasks");
    ensure!(refused > 0, "{when}: no fork refused at pids.max");
    Ok(())
}

fn scope_limits() -> R {
    let f = match Fixture::boot(false) {
        Ok(f) => f,
        Err(why) => return skip(format!("no systemd fixture: {why}")),
    };
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = "sd";
    let unit = format!("contain-{id}.scope");
    let rel = format!("containtest.slice/containtest-a.slice/{unit}");
    b.set(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("containtest-a.slice:contain:{id}"));
        // No cgroup namespace: /proc/self/cgroup shows the scope's path.
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
        c["linux"]["resources"] = json!({
            "memory": {"limit": 33554432, "swap": 33554432},
            "pids": {"limit": 16},
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 7, "access": "rwm"}
            ]
        });
    });
    b.sh(PROBE);
    let bundle = b.path().to_string_lossy().into_owned();
    let o = f.contain(&rt, &["run", "--bundle", &bundle, id]);
    ensure!(o.code == 0, "run: {} {} {}", o.code, o.stdout, o.stderr);
    check_probe(&o.stdout, &rel, "run")?;
    // The run deleted the container: the unit and its cgroups are gone.
    let state = f.show(&unit, "ActiveState");
    ensure!(state == "inactive", "{unit} after run: {state:?}");
    for d in scope_dirs(&f, &rel) {
        ensure!(!d.exists(), "{} left behind", d.display());
    }

    // A running container: systemd's view, then a daemon-reload, then the same probe.
    b.sh("sleep 300");
    let o = f.contain(&rt, &["run", "--detach", "--bundle", &bundle, id]);
    ensure!(o.code == 0, "run --detach: {} {}", o.code, o.stderr);
    ensure!(
        f.show(&unit, "ActiveState") == "active",
        "{unit} not active"
    );
    ensure!(
        f.show(&unit, "ControlGroup") == format!("/{rel}"),
        "ControlGroup {:?}",
        f.show(&unit, "ControlGroup")
    );
    ensure!(
        f.show(&unit, "TasksMax") == "16",
        "TasksMax {:?}",
        f.show(&unit, "TasksMax")
    );
    ensure!(f.show(&unit, "Delegate") == "yes", "Delegate not set");
    ensure!(f.show(&unit, "DevicePolicy") == "strict", "DevicePolicy");
    let o = f.sh(&["systemctl", "daemon-reload"]);
    ensure!(o.code == 0, "daemon-reload: {}", o.stderr);
    let o = f.contain(&rt, &["exec", id, "sh", "-c", PROBE]);
    ensure!(
        o.code == 0,
        "exec after daemon-reload: {} {} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    check_probe(&o.stdout, &rel, "after daemon-reload")?;

    // update reaches systemd as well as the cgroup files.
    let o = f.contain(&rt, &["update", "--pids-limit", "12", id]);
    ensure!(o.code == 0, "update: {}", o.stderr);
    ensure!(
        f.show(&unit, "TasksMax") == "12",
        "TasksMax after update {:?}",
        f.show(&unit, "TasksMax")
    );

    // A second container asking for the same scope is refused; the first is untouched.
    let other = Bundle::new();
    let mut other = other;
    other.set(|c| c["linux"]["cgroupsPath"] = json!(format!("containtest-a.slice:contain:{id}")));
    let other_path = other.path().to_string_lossy().into_owned();
    let o = f.contain(&rt, &["create", "--bundle", &other_path, "other"]);
    fails_with(&o, "already holds processes")?;
    ensure!(
        !rt.root.path().join("other").exists(),
        "state of the refused container left behind"
    );
    ensure!(
        f.show(&unit, "ActiveState") == "active",
        "the first scope was stopped"
    );

    let o = f.contain(&rt, &["delete", "--force", id]);
    ensure!(o.code == 0, "delete: {}", o.stderr);
    ensure!(
        f.show(&unit, "ActiveState") == "inactive",
        "{unit} after delete"
    );
    for d in scope_dirs(&f, &rel) {
        ensure!(!d.exists(), "{} left behind", d.display());
    }
    ensure!(!rt.root.path().join(id).exists(), "state left behind");
    pass()
}

/// systemd in unified mode (the cgroup2 tree alone, as on a cgroup2-only distribution): it
/// accepts the v2 property names (IOAccounting), the container is forked into the scope it
/// made, and delete leaves nothing. This host's cgroup2 tree has no memory, pids or cpu
/// controller, so only placement is observable here (limits on cgroup2 are `cgroup2::*`'s).
fn unified_mode_scope() -> R {
    let f = match Fixture::boot(true) {
        Ok(f) => f,
        Err(why) => return skip(format!("no systemd fixture: {why}")),
    };
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let unit = "contain-v2.scope";
    let rel = format!("containtest.slice/{unit}");
    b.set(|c| {
        c["linux"]["cgroupsPath"] = json!("containtest.slice:contain:v2");
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
    });
    // /sys/fs/cgroup inside: the scope's directory (a bind: no cgroup namespace, and a user
    // namespace cannot mount cgroup2), holding the container's own processes.
    b.sh(
        "grep '^0::' /proc/self/cgroup; awk '$2 == \"/sys/fs/cgroup\" {print $3}' /proc/mounts; \
          grep -c . /sys/fs/cgroup/cgroup.procs",
    );
    let bundle = b.path().to_string_lossy().into_owned();
    let o = f.contain(&rt, &["run", "--bundle", &bundle, "v2"]);
    ensure!(o.code == 0, "run: {} {}", o.code, o.stderr);
    ensure!(
        o.stdout == format!("0::/{rel}\ncgroup2\n1\n"),
        "inside: {:?}",
        o.stdout
    );
    b.sh("sleep 300");
    let o = f.contain(&rt, &["run", "--detach", "--bundle", &bundle, "v2"]);
    ensure!(o.code == 0, "run --detach: {} {}", o.code, o.stderr);
    ensure!(
        f.show(unit, "ControlGroup") == format!("/{rel}"),
        "ControlGroup {:?}",
        f.show(unit, "ControlGroup")
    );
    let hierarchies = contain::cgroups::hierarchies().unwrap_or_default();
    let v2 = hierarchies
        .iter()
        .find(|h| h.version == contain::cgroups::Version::V2)
        .ok_or("no cgroup2 tree on this host")?;
    let dir = f.host_dir(&v2.mount).join(&rel);
    ensure!(dir.exists(), "{} missing while running", dir.display());
    let o = f.contain(&rt, &["delete", "--force", "v2"]);
    ensure!(o.code == 0, "delete: {}", o.stderr);
    ensure!(!dir.exists(), "{} left behind", dir.display());
    ensure!(
        f.show(unit, "ActiveState") == "inactive",
        "{unit} after delete"
    );
    pass()
}

/// Without systemd on the bus, or with a cgroupsPath that is not slice:prefix:name, create
/// fails before anything is made.
fn refused_without_systemd() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("true");
    let bundle = b.path().to_string_lossy().into_owned();
    // A path form: refused whether or not systemd runs.
    let o = rt.exec(&["--systemd-cgroup", "run", "--bundle", &bundle, "p"]);
    fails_with(&o, "slice:prefix:name")?;
    rt.assert_clean(&b, "p")?;
    b.set(|c| c["linux"]["cgroupsPath"] = json!("system.slice:contain:a b"));
    let o = rt.exec(&["--systemd-cgroup", "run", "--bundle", &bundle, "p"]);
    fails_with(&o, "not a valid systemd unit name")?;
    ensure!(!rt.root.path().join("p").exists(), "state left behind");
    // No bus here (this host's init is not systemd): a clear refusal, nothing made. An empty
    // address makes that true on any host.
    b.set(|c| c["linux"]["cgroupsPath"] = json!("contain-test.slice:contain:nobus"));
    let o = rt
        .cmd()
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .args(["--systemd-cgroup", "run", "--bundle", &bundle, "p"])
        .out();
    fails_with(&o, "cannot reach systemd")?;
    ensure!(!rt.root.path().join("p").exists(), "state left behind");
    for h in contain::cgroups::hierarchies().unwrap_or_default() {
        let d = h.mount.join("contain-test.slice");
        ensure!(!d.exists(), "{} made without systemd", d.display());
    }
    pass()
}
