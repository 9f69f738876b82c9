//! Command lines as Go clients write them: containerd's go-runc and conmon may pass long flags
//! with one dash (`-root /x`, `-log-format=json`). They are rewritten to `--root` before
//! clap sees them (pure).

use std::ffi::OsString;

/// Every long flag name contain accepts, on any command.
const LONG: &[&str] = &[
    "root",
    "log",
    "log-format",
    "debug",
    "systemd-cgroup",
    "rootless",
    "criu",
    "bundle",
    "pid-file",
    "console-socket",
    "pidfd-socket",
    "no-pivot",
    "no-new-keyring",
    "preserve-fds",
    "detach",
    "keep",
    "force",
    "all",
    "format",
    "quiet",
    "help",
    "version",
    "no-subreaper",
    "process",
    "tty",
    "env",
    "cwd",
    "user",
    "cap",
    "no-new-privs",
    "additional-gids",
    "process-label",
    "apparmor",
    "ignore-paused",
];

/// Flags that take a value as the next argument (so that value is not a positional).
const WITH_VALUE: &[&str] = &[
    "--root",
    "--log",
    "--log-format",
    "--rootless",
    "--bundle",
    "-b",
    "--pid-file",
    "--console-socket",
    "--pidfd-socket",
    "--preserve-fds",
    "--format",
    "-f",
    "--process",
    "-p",
    "--env",
    "-e",
    "--cwd",
    "--user",
    "-u",
    "--cap",
    "-c",
    "--additional-gids",
    "-g",
    "--process-label",
    "--apparmor",
];

/// Rewrite single-dash long flags to double-dash ones; stop at `--`, and after `exec`'s
/// container id (what follows is the command to run, left as it is).
pub fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::with_capacity(args.len());
    let mut done = false;
    let mut in_exec = false;
    let mut skip_value = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || done {
            out.push(a);
            continue;
        }
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        if s == "--" {
            done = true;
            out.push(a);
            continue;
        }
        if skip_value {
            skip_value = false;
            out.push(a);
            continue;
        }
        if !s.starts_with('-') {
            if in_exec {
                // The container id: the rest is the command.
                done = true;
            } else if s == "exec" {
                in_exec = true;
            }
            out.push(a);
            continue;
        }
        let mut flag = s.to_string();
        if let Some(rest) = s.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            let name = rest.split_once('=').map_or(rest, |(n, _)| n);
            if name.len() > 1 && LONG.contains(&name) {
                flag = format!("-{s}");
            }
        }
        skip_value = !flag.contains('=') && WITH_VALUE.contains(&flag.as_str());
        out.push(OsString::from(flag));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[&str]) -> Vec<String> {
        normalize(v.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn go_style() {
        assert_eq!(
            n(&[
                "contain",
                "-root",
                "/r",
                "-log-format=json",
                "create",
                "-bundle",
                "/b",
                "-d",
                "x"
            ]),
            vec![
                "contain",
                "--root",
                "/r",
                "--log-format=json",
                "create",
                "--bundle",
                "/b",
                "-d",
                "x"
            ]
        );
        assert_eq!(
            n(&["contain", "kill", "x", "--", "-root"]),
            vec!["contain", "kill", "x", "--", "-root"]
        );
        assert_eq!(n(&["contain", "-9"]), vec!["contain", "-9"]);
        // exec: flags before the id are rewritten, the command after it is left alone.
        assert_eq!(
            n(&["contain", "exec", "-cwd", "/x", "-env", "-all", "id", "ls", "-all", "-root"]),
            vec!["contain", "exec", "--cwd", "/x", "--env", "-all", "id", "ls", "-all", "-root"]
        );
    }
}
