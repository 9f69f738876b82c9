//! Real clients driving contain unchanged, with their default seccomp profiles (and the
//! ulimits this host needs: it lacks CAP_SYS_RESOURCE).

use std::process::Command;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[("clients::podman_run_exec_pause_stop", podman)];

fn podman() -> R {
    let Some(podman) = which("podman") else {
        return skip("podman is not installed (apt-get install podman)");
    };
    let tag = format!("contain-test-{}", std::process::id());
    let image = format!("localhost/{tag}:latest");
    let b = Bundle::new();
    let tar = b.path().join("rootfs.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(b.rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .out();
    ensure!(o.code == 0, "tar: {}", o.stderr);
    let o = Command::new(&podman)
        .args(["import", "-q"])
        .arg(&tar)
        .arg(&image)
        .out();
    ensure!(o.code == 0, "podman import: {}", o.stderr);
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
        "echo hello from podman; echo pid=$$; grep Seccomp: /proc/self/status",
    ]);
    let o = p(&args);
    ensure!(
        o.code == 0 && o.stdout == "hello from podman\npid=1\nSeccomp:\t2\n",
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
