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
];

/// Rewrite single-dash long flags to double-dash ones; stop at `--`.
pub fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut done = false;
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
        if let Some(rest) = s.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            let name = rest.split_once('=').map_or(rest, |(n, _)| n);
            if name.len() > 1 && LONG.contains(&name) {
                out.push(OsString::from(format!("-{s}")));
                continue;
            }
        }
        out.push(a);
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
    }
}
