//! Real clients driving contain unchanged, with their default seccomp profiles (and the
//! ulimits this host needs: it lacks CAP_SYS_RESOURCE).

use std::process::Command;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("clients::podman_run_exec_pause_stop", podman),
    ("clients::containerd_run_exec_pause_kill_delete", containerd),
];

fn podman() -> R {
    let Some(podman) = which("podman") else {
        return skip("podman is not installed (apt-get install podman)");
    };
    let tag = format!("contain-test-{}", std::process::id());
    let image = format!("localhost/{tag}:latest");
    let b = Bundle::new();
    podman_import(&podman, &b, &image)?;
    let result = podman_checks(&podman, &image, &tag);
    let _ = Command::new(&podman).args(["rm", "-f", &tag]).out();
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
    let o = p(&[
        "exec",
        name,
        "sh",
        "-c",
        "echo exec-ok; readlink /proc/self/ns/pid; readlink /proc/1/ns/pid",
    ]);
    let l: Vec<&str> = o.stdout.lines().collect();
    ensure!(
        o.code == 0 && l.len() == 3 && l[0] == "exec-ok" && l[1] == l[2],
        "podman exec: {} {:?} {}",
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
/// directory, the CRI plugin off. Dropping it removes what is left and stops the daemon.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: std::process::Child,
    ctr: std::path::PathBuf,
}

impl Containerd {
    fn start(containerd: &std::path::Path, ctr: std::path::PathBuf) -> Result<Containerd, String> {
        let dir = tempfile::Builder::new()
            .prefix("ctd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path().display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  level = "warn"
"#
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

    fn ctr(&self, args: &[&str]) -> Out {
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
/// tar and sha256sum.
fn oci_archive(
    rootfs: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
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
            "config": {"Cmd": ["/bin/sh"]},
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
    let archive = oci_archive(&b.rootfs(), d.dir.path(), image)?;
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
