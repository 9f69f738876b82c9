//! OCI hooks: each runs with the container state as JSON on its stdin, with its own args and
//! env, and is killed when its timeout passes.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// Run every hook in order; the first failure is returned, naming the kind and the path.
pub fn run_all(kind: &str, hooks: &[Hook], state: &str) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        run(kind, i, h, state)?;
    }
    Ok(())
}

/// A failure reads as runc's ("error running hook #0: exit status 1"), naming the hook too.
fn run(kind: &str, index: usize, h: &Hook, state: &str) -> Result<(), String> {
    let name = format!(
        "error running hook #{index} ({kind} {})",
        h.path().display()
    );
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some((first, rest)) = args.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    // The state goes in without blocking, between checks of the hook and its deadline: a hook
    // that never reads a state larger than the pipe holds must still time out. A hook that
    // does not read its stdin is not an error.
    let mut stdin = child.stdin.take().filter(|s| set_nonblocking(s).is_ok());
    let mut rest = state.as_bytes();
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    loop {
        if let Some(pipe) = stdin.as_mut() {
            match pipe.write(rest) {
                Ok(n) if n < rest.len() => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // All written, or the hook closed its end: close ours (EOF for the hook).
                _ => stdin = None,
            }
        }
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{name}: {}", exit_text(status))),
            Ok(None) => {}
            Err(e) => return Err(format!("{name}: wait: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{name}: timed out after {}s",
                h.timeout().unwrap_or(0)
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How a hook ended, in the words runc's Go reports it with: "exit status 2", "signal: bad
/// system call".
fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal: {}", crate::sys::signal_description(sig)),
        _ => status.to_string(),
    }
}

fn set_nonblocking(pipe: &std::process::ChildStdin) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = pipe.as_raw_fd();
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(())
}
