//! Real clients driving contain unchanged, with their default seccomp profiles (and the
//! ulimits this host needs: it lacks CAP_SYS_RESOURCE).

use std::process::Command;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("clients::podman_run_exec_pause_stop", podman),
    ("clients::podman_shared_root", || on_shared_root(podman)),
    ("clients::podman_learns_then_enforces", podman_learn),
    ("clients::containerd_run_exec_pause_kill_delete", containerd),
    ("clients::containerd_shared_root", || {
        on_shared_root(containerd)
    }),
    ("clients::docker_run_exec_cp_stop", docker),
    ("clients::docker_shared_root", || on_shared_root(docker)),
];

/// One podman test at a time: both share podman's storage (and its mount bookkeeping),
/// each from a mount namespace of its own.
static PODMAN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn podman() -> R {
    let Some(podman) = which("podman") else {
        return skip("podman is not installed (apt-get install podman)");
    };
    let _one = PODMAN.lock().unwrap_or_else(|e| e.into_inner());
    let tag = format!("contain-test-{}", std::process::id());
    let image = format!("localhost/{tag}:latest");
    let b = Bundle::new();
    podman_import(&podman, &b, &image)?;
    let result = podman_checks(&podman, &image, &tag);
    let _ = Command::new(&podman).args(["rm", "-f", &tag]).out();
    let _ = Command::new(&podman).args(["rmi", "-f", &image]).out();
    result
}

/// `contain --learn DIR` through podman (`--runtime-flag learn=DIR`): what a podman
/// container does is learnt into DIR once it is gone; then podman runs it under the learnt
/// policy (`--runtime-flag policy=DIR/policy.json`) with the same output, and something the
/// learning run never did fails from inside.
fn podman_learn() -> R {
    let Some(podman) = which("podman") else {
        return skip("podman is not installed (apt-get install podman)");
    };
    let _one = PODMAN.lock().unwrap_or_else(|e| e.into_inner());
    let tag = format!("contain-learn-{}", std::process::id());
    let image = format!("localhost/{tag}:latest");
    let b = Bundle::new();
    podman_import(&podman, &b, &image)?;
    let out = tempfile::tempdir()?;
    let dir = out.path().join("learnt");
    let run = |flag: String, script: &str| -> Out {
        Command::new(&podman)
            .args(["--runtime", CONTAIN, "--cgroup-manager", "cgroupfs"])
            .args(["--runtime-flag", &flag])
            .args(["run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit"])
            .args(["nproc=4096:4096", &image, "sh", "-c", script])
            .out()
    };
    let script = "mkdir /tmp/x && echo hi > /tmp/x/f && cat /tmp/x/f";
    let result = (|| -> R {
        let o = run(format!("learn={}", dir.display()), script);
        ensure!(
            o.code == 0 && o.stdout == "hi\n",
            "podman run while learning: {} {:?} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        let policy = learnt_policy(&dir)?;
        let flag = format!("policy={}", policy.display());
        let o = run(flag.clone(), script);
        ensure!(
            o.code == 0 && o.stdout == "hi\n",
            "podman run under the learnt policy: {} {:?} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        let o = run(flag, "ln -s a /tmp/l; echo ln=$?");
        ensure!(
            o.stdout.contains("ln=1") && o.stderr.contains("Operation not permitted"),
            "a symlink under the learnt policy: {:?} {:?}",
            o.stdout,
            o.stderr
        );
        pass()
    })();
    let _ = Command::new(&podman).args(["rmi", "-f", &image]).out();
    result
}

fn podman_checks(podman: &std::path::Path, image: &str, name: &str) -> R {
    let p = |args: &[&str]| -> Out {
        let mut c = Command::new(podman);
        c.args(["--runtime", CONTAIN, "--cgroup-manager", "cgroupfs"])
            .args(args);
        c.out()
    };
    let run_opts = [
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
    ];
    let mut args = vec!["run", "--rm"];
    args.extend(run_opts);
    args.extend([
        image,
        "sh",
        "-c",
        "echo hello from podman; echo pid=$$; grep Seccomp: /proc/self/status; awk '$1 == 0 {print ($2 == 0 ? \"host-root\" : \"mapped\")}' /proc/self/uid_map; stat -c %u /bin/busybox; touch /w && stat -c %u /w",
    ]);
    let o = p(&args);
    // The default policy's user namespace, although podman (as root) joins a network
    // namespace it made by path and mounts a volatile overlay: root inside is not host root,
    // the image's files are still root's, and writes work.
    ensure!(
        o.code == 0 && o.stdout == "hello from podman\npid=1\nSeccomp:\t2\nmapped\n0\n0\n",
        "podman run: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let mut args = vec!["run", "--rm", "--memory", "32m"];
    args.extend(run_opts);
    args.extend([image, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]);
    let o = p(&args);
    ensure!(
        o.code == 0 && o.stdout.trim() == "33554432",
        "podman run --memory: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let mut args = vec!["run", "-d", "--name", name];
    args.extend(run_opts);
    args.extend([image, "sleep", "1000"]);
    let o = p(&args);
    ensure!(o.code == 0, "podman run -d: {}", o.stderr);
    // The exec'd process is in the container's pid namespace (compared from the host: in
    // its own Landlock domain it may not read the init's /proc/1/ns).
    let o = p(&[
        "exec",
        name,
        "sh",
        "-c",
        "echo exec-ok; readlink /proc/self/ns/pid",
    ]);
    let init = p(&["inspect", "--format", "{{.State.Pid}}", name]);
    let init_ns = std::fs::read_link(format!("/proc/{}/ns/pid", init.stdout.trim()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let l: Vec<&str> = o.stdout.lines().collect();
    ensure!(
        o.code == 0 && l.len() == 2 && l[0] == "exec-ok" && l[1] == init_ns,
        "podman exec: {} {:?} (the init's {init_ns:?}) {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = p(&["exec", name, "grep", "Seccomp:", "/proc/self/status"]);
    ensure!(
        o.stdout.trim() == "Seccomp:\t2",
        "podman exec is not filtered: {:?} {}",
        o.stdout,
        o.stderr
    );
    // podman's "unconfined" sends no profile: contain's default applies (SECURITY.md).
    let mut args = vec!["run", "--rm", "--security-opt", "seccomp=unconfined"];
    args.extend(run_opts);
    args.extend([
        image,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; unshare -U true || echo refused",
    ]);
    let o = p(&args);
    ensure!(
        o.code == 0 && o.stdout.contains("Seccomp:\t2") && o.stdout.contains("refused"),
        "podman run seccomp=unconfined: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    // -t: conmon hands contain a console socket; the process gets a pty on all three.
    let mut args = vec!["run", "--rm", "-t"];
    args.extend(run_opts);
    args.extend([
        image,
        "sh",
        "-c",
        "tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys",
    ]);
    let o = p(&args);
    ensure!(
        o.code == 0 && o.stdout.replace('\r', "") == "/dev/pts/0\nall-ttys\n",
        "podman run -t: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    ensure!(p(&["pause", name]).code == 0, "podman pause");
    let o = p(&["inspect", "--format", "{{.State.Status}}", name]);
    ensure!(o.stdout.trim() == "paused", "after pause: {:?}", o.stdout);
    ensure!(p(&["unpause", name]).code == 0, "podman unpause");
    let o = p(&["stop", "-t", "1", name]);
    ensure!(o.code == 0, "podman stop: {}", o.stderr);
    let o = p(&["rm", name]);
    ensure!(o.code == 0, "podman rm: {}", o.stderr);
    pass()
}

/// A containerd daemon of the test's own: private socket, root and state under a temporary
/// directory, the CRI plugin off (or configured by `cri`). Dropping it removes what is left and
/// stops the daemon.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    daemon: std::process::Child,
    ctr: std::path::PathBuf,
}

impl Containerd {
    fn start(containerd: &std::path::Path, ctr: std::path::PathBuf) -> Result<Containerd, String> {
        Containerd::start_with(containerd, ctr, |_| None)
    }

    /// Start it; `cri` gets the daemon's directory and returns the CRI plugin's configuration
    /// (its `[plugins."io.containerd.grpc.v1.cri"]` tables), or None to disable the plugin.
    pub fn start_with(
        containerd: &std::path::Path,
        ctr: std::path::PathBuf,
        cri: impl FnOnce(&std::path::Path) -> Option<String>,
    ) -> Result<Containerd, String> {
        let dir = tempfile::Builder::new()
            .prefix("ctd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path().display();
        let cri = cri(dir.path());
        let disabled = if cri.is_some() {
            ""
        } else {
            r#""io.containerd.grpc.v1.cri", "#
        };
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [{disabled}"io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
{cri}
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  level = "warn"
"#,
            cri = cri.unwrap_or_default()
        );
        std::fs::write(dir.path().join("config.toml"), config).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("containerd.log")).map_err(|e| e.to_string())?;
        let daemon = Command::new(containerd)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start containerd: {e}"))?;
        let c = Containerd { dir, daemon, ctr };
        for _ in 0..200 {
            if c.ctr(&["version"]).code == 0 {
                return Ok(c);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(format!(
            "containerd did not answer on its socket: {}",
            std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
        ))
    }

    pub fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("c.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn ctr(&self, args: &[&str]) -> Out {
        Command::new(&self.ctr)
            .arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .out()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in ["t1", "t2"] {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            std::thread::sleep(std::time::Duration::from_millis(100));
            let _ = self.ctr(&["task", "delete", "--force", id]);
            let _ = self.ctr(&["container", "delete", id]);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        for m in host_mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// An OCI image archive (oci-layout, index.json, blobs) of `rootfs`, named `name`, built with
/// tar and sha256sum; its command is `cmd`.
pub fn oci_archive(
    rootfs: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    cmd: &[&str],
) -> Result<std::path::PathBuf, String> {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let sha = |p: &std::path::Path| -> Result<(String, u64), String> {
        let o = Command::new("sha256sum").arg(p).out();
        if o.code != 0 {
            return Err(format!("sha256sum: {}", o.stderr));
        }
        let digest = o.stdout.split_whitespace().next().unwrap_or("").to_string();
        let size = std::fs::metadata(p).map_err(|e| e.to_string())?.len();
        Ok((digest, size))
    };
    let blob = |p: &std::path::Path| -> Result<(String, u64), String> {
        let (d, n) = sha(p)?;
        std::fs::rename(p, blobs.join(&d)).map_err(|e| e.to_string())?;
        Ok((d, n))
    };
    let json_blob = |name: &str, v: serde_json::Value| -> Result<(String, u64), String> {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).map_err(|e| e.to_string())?;
        blob(&p)
    };
    let layer = dir.join("layer.tar");
    tar_dir(rootfs, &layer)?;
    let (ld, ls) = blob(&layer)?;
    let (cd, cs) = json_blob(
        "config.json",
        serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": cmd,
                       "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{ld}")]}
        }),
    )?;
    let (md, ms) = json_blob(
        "manifest.json",
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{cd}"), "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": format!("sha256:{ld}"), "size": ls}]
        }),
    )?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{md}"), "size": ms,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name}
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(|e| e.to_string())?;
    let archive = dir.join("image.tar");
    tar_dir(&layout, &archive)?;
    Ok(archive)
}

/// containerd's io.containerd.runc.v2 shim with contain as its runtime binary (ctr run
/// --runc-binary): run, exit status, exec, ps, pause/resume, kill, delete.
fn containerd() -> R {
    let (Some(containerd), Some(ctr)) = (which("containerd"), which("ctr")) else {
        return skip("containerd is not installed (apt-get install containerd)");
    };
    if which("containerd-shim-runc-v2").is_none() {
        return skip("containerd-shim-runc-v2 is not installed (apt-get install containerd)");
    }
    let d = Containerd::start(&containerd, ctr)?;
    let b = Bundle::new();
    let image = "docker.io/library/contain-test:latest";
    let archive = oci_archive(&b.rootfs(), d.dir.path(), image, &["/bin/sh"])?;
    let o = d.ctr(&["images", "import", &archive.to_string_lossy()]);
    ensure!(o.code == 0, "ctr images import: {}", o.stderr);
    let run = |args: &[&str]| {
        let mut v = vec!["run", "--runc-binary", CONTAIN];
        v.extend(args);
        d.ctr(&v)
    };
    // Foreground: output, the exit status, contain's default seccomp profile (containerd's
    // default spec has none).
    let o = run(&[
        "--rm",
        image,
        "t1",
        "sh",
        "-c",
        "echo hello from containerd; echo pid=$$; grep Seccomp: /proc/self/status; awk '$1 == 0 {print ($2 == 0 ? \"host-root\" : \"mapped\")}' /proc/self/uid_map; stat -c %u /bin/busybox; touch /w && stat -c %u /w; exit 3",
    ]);
    ensure!(
        o.code == 3 && o.stdout == "hello from containerd\npid=1\nSeccomp:\t2\nmapped\n0\n0\n",
        "ctr run: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = run(&["-d", image, "t2", "sleep", "300"]);
    ensure!(o.code == 0, "ctr run -d: {}", o.stderr);
    let task_status = || {
        d.ctr(&["task", "ls"])
            .stdout
            .lines()
            .find(|l| l.starts_with("t2 "))
            .and_then(|l| l.split_whitespace().nth(2).map(String::from))
            .unwrap_or_default()
    };
    ensure!(task_status() == "RUNNING", "task ls: {}", task_status());
    let o = d.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "t2",
        "sh",
        "-c",
        "cat /proc/1/cmdline; echo; echo $$",
    ]);
    ensure!(
        o.code == 0 && o.stdout.starts_with("sleep\x00300\x00\n"),
        "ctr task exec: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = d.ctr(&["task", "ps", "t2"]);
    ensure!(
        o.code == 0 && o.stdout.lines().count() >= 2,
        "ctr task ps: {} {}",
        o.stdout,
        o.stderr
    );
    ensure!(d.ctr(&["task", "pause", "t2"]).code == 0, "pause");
    ensure!(task_status() == "PAUSED", "after pause: {}", task_status());
    ensure!(d.ctr(&["task", "resume", "t2"]).code == 0, "resume");
    ensure!(
        task_status() == "RUNNING",
        "after resume: {}",
        task_status()
    );
    // sleep is pid 1 without a SIGTERM handler: as with runc, only SIGKILL ends it.
    ensure!(
        d.ctr(&["task", "kill", "-s", "SIGKILL", "t2"]).code == 0,
        "kill"
    );
    let mut stopped = false;
    for _ in 0..100 {
        if task_status() == "STOPPED" {
            stopped = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ensure!(stopped, "after kill: {}", task_status());
    let o = d.ctr(&["task", "delete", "t2"]);
    ensure!(o.code == 0, "task delete: {}", o.stderr);
    let o = d.ctr(&["container", "delete", "t2"]);
    ensure!(o.code == 0, "container delete: {}", o.stderr);
    // The shim's runtime root for the "default" namespace holds no state of ours any more.
    ensure!(
        !std::path::Path::new("/run/containerd/runc/default/t2").exists(),
        "contain's state for t2 left behind"
    );
    pass()
}

/// A Docker daemon of the test's own (Debian's docker.io 20.10), configured as the README
/// says: a daemon.json with contain under `runtimes`; private data root, exec root, socket
/// and pid file; no iptables, no bridge. Dropping it removes every container, stops the
/// daemon (and the containerd it manages) and unmounts what is left under its directory.
struct Dockerd {
    dir: tempfile::TempDir,
    daemon: std::process::Child,
    docker: std::path::PathBuf,
}

impl Dockerd {
    fn start(dockerd: &std::path::Path) -> Result<Dockerd, String> {
        // The client of the same package (a newer one may be first on PATH).
        let docker = ["/usr/bin/docker"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
            .or_else(|| which("docker"))
            .ok_or("no docker client (apt-get install docker.io)")?;
        let dir = tempfile::Builder::new()
            .prefix("dkd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        let config = serde_json::json!({
            "runtimes": {
                "contain": {"path": CONTAIN},
                // Learning (`--learn DIR`, passed to every command as runc's global flags
                // are), then the policy learnt there.
                "contain-learn": {"path": CONTAIN, "runtimeArgs": ["--learn", d.join("learnt")]},
                "contain-learnt": {
                    "path": CONTAIN,
                    "runtimeArgs": ["--policy", d.join("learnt/policy.json")]
                }
            },
            "data-root": d.join("data"),
            "exec-root": d.join("exec"),
            "pidfile": d.join("docker.pid"),
            "hosts": [format!("unix://{}", d.join("docker.sock").display())],
            "iptables": false,
            "ip-masq": false,
            "bridge": "none",
            "log-level": "warn",
            // Apart from a host's own Docker, should one share the system containerd.
            "containerd-namespace": "contain-test",
            "containerd-plugins-namespace": "contain-test-plugins",
        });
        std::fs::write(d.join("daemon.json"), config.to_string()).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(d.join("dockerd.log")).map_err(|e| e.to_string())?;
        let daemon = Command::new(dockerd)
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start dockerd: {e}"))?;
        let dk = Dockerd {
            dir,
            daemon,
            docker,
        };
        for _ in 0..600 {
            if dk.docker(&["version"]).code == 0 {
                return Ok(dk);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(format!(
            "dockerd did not answer on its socket: {}",
            std::fs::read_to_string(dk.dir.path().join("dockerd.log")).unwrap_or_default()
        ))
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.docker);
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args)
            .stdin(std::process::Stdio::null());
        c
    }

    fn docker(&self, args: &[&str]) -> Out {
        self.cmd(args).out()
    }

    /// `docker run --rm --runtime contain --network none ARGS...`.
    fn run(&self, args: &[&str]) -> Out {
        let mut v = vec!["run", "--rm", "--runtime", "contain", "--network", "none"];
        v.extend(args);
        self.docker(&v)
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.docker(&["inspect", "-f", format, name])
            .stdout
            .trim()
            .to_string()
    }

    /// The cgroup directories Docker's containers got (cgroupfs driver: /docker/ID).
    fn cgroups(ids: &[String]) -> Vec<std::path::PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|h| ids.iter().map(move |id| h.path().join("docker").join(id)))
            .filter(|p| p.exists())
            .collect()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq", "--no-trunc"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.daemon.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.daemon.kill();
                let _ = self.daemon.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for m in host_mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Docker unchanged, with contain as a runtime from daemon.json: what `docker run`, `exec`,
/// `logs`, `top`, `stats`, `pause`, `stop`, `kill`, `cp` and `rm` do with runc, each checked
/// from inside the container; then nothing is left (daemon, containers, mounts, cgroups).
fn docker() -> R {
    let Some(dockerd) = which("dockerd") else {
        return skip("dockerd is not installed (apt-get install docker.io)");
    };
    let dk = Dockerd::start(&dockerd)?;
    let ids = std::sync::Mutex::new(Vec::new());
    let result = docker_checks(&dk, &ids);
    let dir = dk.dir.path().to_path_buf();
    let pid = dk.daemon.id();
    drop(dk);
    result?;
    let ids = ids.into_inner().unwrap_or_default();
    ensure!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "dockerd (pid {pid}) still runs"
    );
    let left = host_mounts_under(&dir);
    ensure!(left.is_empty(), "mounts left under Docker's root: {left:?}");
    let cgroups = Dockerd::cgroups(&ids);
    ensure!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    pass()
}

fn docker_checks(dk: &Dockerd, ids: &std::sync::Mutex<Vec<String>>) -> R {
    let b = Bundle::new();
    let probe = build_probe("syscalls")?;
    std::fs::copy(&probe, b.rootfs().join("bin/syscalls")).map_err(|e| e.to_string())?;
    let tar = b.path().join("rootfs.tar");
    tar_dir(&b.rootfs(), &tar)?;
    let image = "contain-test:latest";
    let o = dk.docker(&["import", &tar.to_string_lossy(), image]);
    ensure!(o.code == 0, "docker import: {}", o.stderr);
    let track = |name: &str| {
        let id = dk.inspect(name, "{{.Id}}");
        ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    };

    // Exit status, the default policy's user namespace, Docker's sysctls (the group range
    // narrowed to the mapped gids), the seccomp filter.
    let o = dk.run(&[
        image,
        "sh",
        "-c",
        "echo hello from docker; echo pid=$$; grep Seccomp: /proc/self/status; \
         awk '$1 == 0 {print ($2 == 0 ? \"host-root\" : \"mapped\")}' /proc/self/uid_map; \
         cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start; exit 3",
    ]);
    ensure!(
        o.code == 3
            && o.stdout == "hello from docker\npid=1\nSeccomp:\t2\nmapped\n0\t65535\n0\n"
            && o.stderr.is_empty(),
        "docker run: {} {:?} {:?}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = dk.run(&["--user", "1000:1000", image, "id", "-u"]);
    ensure!(
        o.code == 0 && o.stdout == "1000\n",
        "docker run --user: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    // -i: stdin reaches the process.
    let input = b.path().join("stdin.txt");
    std::fs::write(&input, "through stdin\n").map_err(|e| e.to_string())?;
    let o = dk
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "--runtime",
            "contain",
            "--network",
            "none",
            image,
            "cat",
        ])
        .stdin(std::fs::File::open(&input).map_err(|e| e.to_string())?)
        .out();
    ensure!(
        o.code == 0 && o.stdout == "through stdin\n",
        "docker run -i: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = dk.run(&["-t", image, "sh", "-c", "tty; test -t 1 && echo is-a-tty"]);
    ensure!(
        o.code == 0 && o.stdout.replace('\r', "") == "/dev/pts/0\nis-a-tty\n",
        "docker run -t: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = dk.run(&[
        "--read-only",
        image,
        "sh",
        "-c",
        "touch /x 2>&1; touch /tmp/x 2>&1",
    ]);
    ensure!(
        o.stdout.contains("touch: /x: Read-only file system")
            && o.stdout.contains("touch: /tmp/x: Read-only file system"),
        "docker run --read-only: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = dk.run(&[
        "--cap-drop",
        "ALL",
        image,
        "grep",
        "CapEff:",
        "/proc/self/status",
    ]);
    ensure!(
        o.code == 0 && o.stdout == "CapEff:\t0000000000000000\n",
        "docker run --cap-drop ALL: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    // --memory: the hog is OOM-killed; docker reports 137 and OOMKilled.
    let o = dk.docker(&[
        "run",
        "--name",
        "oom",
        "--runtime",
        "contain",
        "--network",
        "none",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        image,
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    track("oom");
    let oom_killed = dk.inspect("oom", "{{.State.OOMKilled}}");
    ensure!(
        o.code == 137 && oom_killed == "true",
        "docker run --memory: {} OOMKilled={oom_killed} {}",
        o.code,
        o.stderr
    );
    let _ = dk.docker(&["rm", "oom"]);
    let o = dk.run(&[
        "--pids-limit",
        "10",
        image,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    ensure!(
        o.code == 0 && o.stdout == "10\n",
        "docker run --pids-limit: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    // Docker's own profile is applied: Docker 20.10's allows io_uring_setup (nr 425; EFAULT
    // on these arguments), which contain's default profile stubs out with ENOSYS; with
    // seccomp=unconfined contain's default applies instead.
    let o = dk.run(&[image, "/bin/syscalls", "64:425"]);
    let docker_answer = o.stdout.trim().to_string();
    let o2 = dk.run(&[
        "--security-opt",
        "seccomp=unconfined",
        image,
        "/bin/syscalls",
        "64:425",
    ]);
    ensure!(
        o.code == 0 && docker_answer == "64:425 errno 14" && o2.stdout.trim() == "64:425 errno 38",
        "seccomp: Docker's profile {:?} {}, unconfined {:?} {}",
        docker_answer,
        o.stderr,
        o2.stdout,
        o2.stderr
    );
    // A profile of the user's: mkdir refused.
    let profile = b.path().join("profile.json");
    std::fs::write(
        &profile,
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]})
        .to_string(),
    )
    .map_err(|e| e.to_string())?;
    let o = dk.run(&[
        "--security-opt",
        &format!("seccomp={}", profile.display()),
        image,
        "sh",
        "-c",
        "mkdir /tmp/d 2>&1; echo done",
    ]);
    ensure!(
        o.stdout.contains("Operation not permitted") && o.stdout.contains("done"),
        "docker run with a user's profile: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    // --restart on-failure:2: two restarts, then the last exit status.
    let o = dk.docker(&[
        "run",
        "-d",
        "--name",
        "rs",
        "--runtime",
        "contain",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        image,
        "sh",
        "-c",
        "exit 4",
    ]);
    ensure!(o.code == 0, "docker run --restart: {}", o.stderr);
    track("rs");
    let mut restarts = String::new();
    for _ in 0..300 {
        restarts = dk.inspect(
            "rs",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
        );
        if restarts == "2 exited 4" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ensure!(
        restarts == "2 exited 4",
        "--restart on-failure:2: {restarts}"
    );
    let _ = dk.docker(&["rm", "rs"]);

    // A long-running container: exec, logs, top, stats, pause, cp, stop.
    let o = dk.docker(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--runtime",
        "contain",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "trap 'echo got SIGTERM; exit 0' TERM; echo started; while true; do sleep 0.1; done",
    ]);
    ensure!(o.code == 0, "docker run -d: {}", o.stderr);
    track("svc");
    let o = dk.docker(&["exec", "svc", "sh", "-c", "echo in-exec; exit 5"]);
    ensure!(
        o.code == 5 && o.stdout == "in-exec\n",
        "docker exec: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = dk.docker(&["exec", "-u", "1000", "svc", "id", "-u"]);
    ensure!(
        o.code == 0 && o.stdout == "1000\n",
        "docker exec -u: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = dk.docker(&["logs", "svc"]);
    ensure!(
        o.stdout == "started\n",
        "docker logs: {:?} {}",
        o.stdout,
        o.stderr
    );
    let o = dk.docker(&["top", "svc"]);
    ensure!(
        o.code == 0 && o.stdout.contains("sleep 0.1") && o.stdout.contains("trap"),
        "docker top: {:?} {}",
        o.stdout,
        o.stderr
    );
    let o = dk.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.PIDs}} {{.MemUsage}}",
        "svc",
    ]);
    ensure!(
        o.code == 0 && o.stdout.split_whitespace().next().is_some_and(|p| p != "0"),
        "docker stats: {:?} {}",
        o.stdout,
        o.stderr
    );
    ensure!(dk.docker(&["pause", "svc"]).code == 0, "docker pause");
    let status = dk.inspect("svc", "{{.State.Status}}");
    ensure!(status == "paused", "after pause: {status}");
    ensure!(dk.docker(&["unpause", "svc"]).code == 0, "docker unpause");
    let status = dk.inspect("svc", "{{.State.Status}}");
    ensure!(status == "running", "after unpause: {status}");
    // cp out of the image's files (the engine's view of the layers).
    let out = b.path().join("passwd.out");
    let o = dk.docker(&["cp", "svc:/etc/passwd", &out.to_string_lossy()]);
    ensure!(
        o.code == 0
            && std::fs::read_to_string(&out)
                .unwrap_or_default()
                .starts_with("root:x:0:0"),
        "docker cp out: {}",
        o.stderr
    );
    // stop: SIGTERM reaches pid 1, whose trap runs.
    let o = dk.docker(&["stop", "-t", "10", "svc"]);
    ensure!(o.code == 0, "docker stop: {}", o.stderr);
    let code = dk.inspect("svc", "{{.State.ExitCode}}");
    let logs = dk.docker(&["logs", "svc"]).stdout;
    ensure!(
        code == "0" && logs == "started\ngot SIGTERM\n",
        "after docker stop: exit {code}, logs {logs:?}"
    );
    // cp in while stopped (see README: a running container's overlay is its own), then the
    // file is there after a restart; a restarted container works as before.
    let input_name = input.to_string_lossy().into_owned();
    let o = dk.docker(&["cp", &input_name, "svc:/tmp/copied"]);
    ensure!(o.code == 0, "docker cp in: {}", o.stderr);
    ensure!(dk.docker(&["start", "svc"]).code == 0, "docker start");
    let o = dk.docker(&["exec", "svc", "cat", "/tmp/copied"]);
    ensure!(
        o.stdout == "through stdin\n",
        "the copied file after restart: {:?} {}",
        o.stdout,
        o.stderr
    );
    // kill: SIGKILL, 137.
    ensure!(dk.docker(&["kill", "svc"]).code == 0, "docker kill");
    let mut code = String::new();
    for _ in 0..100 {
        code = dk.inspect("svc", "{{.State.Status}} {{.State.ExitCode}}");
        if code == "exited 137" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ensure!(code == "exited 137", "after docker kill: {code}");
    let o = dk.docker(&["rm", "svc"]);
    ensure!(o.code == 0, "docker rm: {}", o.stderr);
    docker_learns_then_enforces(dk, image)?;
    let o = dk.docker(&["ps", "-aq"]);
    ensure!(o.stdout.trim().is_empty(), "containers left: {}", o.stdout);
    pass()
}

/// DIR/policy.json of a client's learning run: the detached supervisor writes it once the
/// container is gone, which may be after the client returned (waits up to 20 s).
fn learnt_policy(dir: &std::path::Path) -> Result<std::path::PathBuf, libtest_mimic::Failed> {
    let policy = dir.join("policy.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !policy.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ensure!(policy.exists(), "nothing learnt into {}", dir.display());
    Ok(policy)
}

/// `contain --learn DIR` as a Docker runtime (runtimeArgs): a script learnt through
/// `docker run`, then run the same under the policy learnt; a symlink and a read of a file
/// (Docker's bind-mounted /etc/hosts) it never made or read are refused from inside.
fn docker_learns_then_enforces(dk: &Dockerd, image: &str) -> R {
    let run = |runtime: &str, script: &str| {
        dk.docker(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--network",
            "none",
            image,
            "sh",
            "-c",
            script,
        ])
    };
    let script = "mkdir /tmp/x && echo hi > /tmp/x/f && cat /tmp/x/f";
    let o = run("contain-learn", script);
    ensure!(
        o.code == 0 && o.stdout == "hi\n",
        "docker run while learning: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    learnt_policy(&dk.dir.path().join("learnt"))?;
    let o = run("contain-learnt", script);
    ensure!(
        o.code == 0 && o.stdout == "hi\n",
        "docker run under the learnt policy: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = run(
        "contain-learnt",
        "ln -s a /tmp/l; echo ln=$?; cat /etc/hosts >/dev/null; echo cat=$?",
    );
    ensure!(
        o.stdout == "ln=1\ncat=1\n"
            && o.stderr.contains("Operation not permitted")
            && o.stderr.contains("Permission denied"),
        "a symlink and a read of /etc/hosts under the learnt policy: {:?} {:?}",
        o.stdout,
        o.stderr
    );
    let o = run(
        "contain",
        "ln -s a /tmp/l; echo ln=$?; cat /etc/hosts >/dev/null; echo cat=$?",
    );
    ensure!(
        o.stdout == "ln=0\ncat=0\n",
        "the same under default: {:?} {:?}",
        o.stdout,
        o.stderr
    );
    pass()
}
