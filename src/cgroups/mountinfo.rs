//! Finding cgroup hierarchies in /proc/self/mountinfo (pure parsing).

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Version {
    V1,
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hierarchy {
    pub version: Version,
    pub mount: PathBuf,
    /// v1: the controllers bound to it (and `name=...`); v2: those in cgroup.controllers.
    pub controllers: Vec<String>,
}

/// Unescape the octal escapes mountinfo uses for spaces and such.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo text into the cgroup hierarchies it shows, one mount per hierarchy. For
/// v2, the controllers are read from the mounted `cgroup.controllers` when it is readable.
///
/// A hierarchy can be mounted more than once: a container's own cgroup mounts show up in
/// this table when they propagated out of it (or a caller bound them somewhere), below that
/// container's rootfs and often rooted at the container's cgroup rather than the
/// hierarchy's root. As runc does, the mount of the hierarchy's root wins, then the one
/// nearest to `/` (fewest path components), then the first listed.
pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    // (hierarchy, rank): lower ranks are better.
    let mut out: Vec<(Hierarchy, (bool, usize))> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let mount = PathBuf::from(unescape(left[4]));
        let version = match right[0] {
            "cgroup" => Version::V1,
            "cgroup2" => Version::V2,
            _ => continue,
        };
        let rank = (left[3] != "/", mount.components().count());
        let controllers = match version {
            Version::V1 => right[2]
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro" | "clone_children" | "noprefix" | "xattr" | "cpuset_v2_mode"
                    ) && !o.starts_with("release_agent=")
                })
                .map(str::to_string)
                .collect(),
            Version::V2 => Vec::new(),
        };
        let same = out
            .iter()
            .position(|(h, _)| h.version == version && h.controllers == controllers);
        match same {
            Some(i) if out[i].1 <= rank => continue,
            Some(i) => {
                out[i] = (
                    Hierarchy {
                        version,
                        mount,
                        controllers,
                    },
                    rank,
                )
            }
            None => out.push((
                Hierarchy {
                    version,
                    mount,
                    controllers,
                },
                rank,
            )),
        }
    }
    out.into_iter()
        .map(|(mut h, _)| {
            if h.version == Version::V2 {
                h.controllers = std::fs::read_to_string(h.mount.join("cgroup.controllers"))
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default();
            }
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_host() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
garbage line
";
        let h = parse_mountinfo(text);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].controllers, vec!["cpu"]);
        assert_eq!(h[2].controllers, vec!["name=systemd"]);
        assert_eq!(h[3].version, Version::V2);
        assert_eq!(h[1].mount, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn escaped_mount_point() {
        let h = parse_mountinfo("1 2 0:1 / /a\\040b rw - cgroup cgroup rw,pids\n");
        assert_eq!(h[0].mount, PathBuf::from("/a b"));
    }

    #[test]
    fn a_containers_leaked_mounts_are_not_the_hierarchy() {
        // A container's cgroup mounts that reached this table (listed first, rooted at the
        // container's cgroup or below its rootfs) lose to the host's own mounts.
        let text = "\
90 80 0:29 /contain-test/c1 /b/rootfs/sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu
91 80 0:38 / /b/rootfs/sys/fs/cgroup/unified ro - cgroup2 cgroup2 rw
92 80 0:32 / /b/rootfs/sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let h = parse_mountinfo(text);
        let mounts: Vec<_> = h.iter().map(|h| h.mount.to_str().unwrap()).collect();
        assert_eq!(
            mounts,
            [
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/memory"
            ]
        );
        // Only a mount of a sub-cgroup: still found (a nested runtime may see no other).
        let h =
            parse_mountinfo("1 2 0:29 /docker/x /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
        assert_eq!(h[0].mount, PathBuf::from("/sys/fs/cgroup/cpu"));
    }
}
