//! Host id ranges for the user namespaces contain adds: a pool (a subordinate-id entry or a
//! fixed span), cut into equal ranges, one per container, reserved in the state root under a
//! lock so that two containers never share host ids.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Where containers' ranges come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub uid_start: u32,
    pub gid_start: u32,
    pub size: u32,
    pub range: u32,
}

/// One container's ids 0 .. size-1 map to host uid_base.. and gid_base..
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub uid_base: u32,
    pub gid_base: u32,
    pub size: u32,
}

/// The entry of `user` in a subid file ("name:start:count" lines); the first one wins.
pub fn subid_entry(text: &str, user: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (name, start, count) = (f.next()?, f.next()?, f.next()?);
        (name == user).then_some(())?;
        Some((start.parse().ok()?, count.parse().ok()?))
    })
}

/// The pool for a policy: `user`'s /etc/subuid and /etc/subgid entries when both exist
/// (the smaller count decides its size), else the fixed span.
pub fn pool(user: Option<&str>, start: u32, size: u32, range: u32) -> Pool {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    if let Some(u) = user {
        if let (Some((us, uc)), Some((gs, gc))) = (
            subid_entry(&read("/etc/subuid"), u),
            subid_entry(&read("/etc/subgid"), u),
        ) {
            return Pool {
                uid_start: us,
                gid_start: gs,
                size: uc.min(gc),
                range,
            };
        }
    }
    Pool {
        uid_start: start,
        gid_start: start,
        size,
        range,
    }
}

impl Pool {
    pub fn slots(&self) -> u32 {
        self.size / self.range
    }

    pub fn range(&self, slot: u32) -> Range {
        Range {
            uid_base: self.uid_start + slot * self.range,
            gid_base: self.gid_start + slot * self.range,
            size: self.range,
        }
    }
}

/// Whether the filesystem holding `path` can be idmapped (by its type: the filesystems whose
/// idmapped mounts this kernel supports); the error names the filesystem.
pub fn idmappable(path: &Path) -> Result<(), String> {
    const OK: [(i64, &str); 5] = [
        (0xEF53, "ext4"),
        (0x5846_5342, "xfs"),
        (0x9123_683E, "btrfs"),
        (0x0102_1994, "tmpfs"),
        (0xF2F5_2010, "f2fs"),
    ];
    const OVERLAY: i64 = 0x794C_7630;
    const KNOWN: [(i64, &str); 4] = [
        (OVERLAY, "overlayfs"),
        (0x6969, "nfs"),
        (0x6573_5546, "fuse"),
        (0x0102_1997, "9p"),
    ];
    let magic = |p: &Path| {
        let fd = crate::sys::fs::open_host(p, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        crate::sys::fs::fs_type(std::os::fd::AsFd::as_fd(&fd))
            .map_err(|e| format!("statfs {}: {e}", p.display()))
    };
    let ok = |m: i64| OK.iter().any(|(k, _)| *k == m);
    let magic = magic(path)?;
    if ok(magic) {
        return Ok(());
    }
    // An overlay's root: its layers are idmapped instead (rootfs::overlay).
    if magic == OVERLAY {
        if let Some(o) = crate::rootfs::overlay::of(path) {
            for layer in o.layers() {
                let fd = crate::sys::fs::open_host(&layer, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| format!("overlay layer {}: {e}", layer.display()))?;
                let m = crate::sys::fs::fs_type(std::os::fd::AsFd::as_fd(&fd))
                    .map_err(|e| format!("statfs {}: {e}", layer.display()))?;
                if !ok(m) {
                    return Err(format!(
                        "the rootfs {} is an overlay whose layer {} is on a filesystem that cannot be idmapped ({m:#x})",
                        path.display(),
                        layer.display()
                    ));
                }
            }
            return Ok(());
        }
    }
    let name = KNOWN.iter().find(|(m, _)| *m == magic).map_or_else(
        || format!("filesystem type {magic:#x}"),
        |(_, n)| n.to_string(),
    );
    Err(format!(
        "the rootfs {} is on {name}, which cannot be idmapped",
        path.display()
    ))
}

/// The name of the file in a container's state directory that holds its reservation.
pub const RESERVATION: &str = "idrange";

fn parse_reservation(text: &str) -> Option<Range> {
    let mut f = text.split_whitespace().map(|x| x.parse::<u32>());
    Some(Range {
        uid_base: f.next()?.ok()?,
        gid_base: f.next()?.ok()?,
        size: f.next()?.ok()?,
    })
}

fn overlaps(a_start: u32, a_len: u32, b_start: u32, b_len: u32) -> bool {
    let (a0, a1) = (u64::from(a_start), u64::from(a_start) + u64::from(a_len));
    let (b0, b1) = (u64::from(b_start), u64::from(b_start) + u64::from(b_len));
    a0 < b1 && b0 < a1
}

/// The ranges reserved by the containers under `root` (other than `except`), by id.
pub fn reserved(root: &Path, except: &str) -> Vec<(String, Range)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if id == except {
            continue;
        }
        if let Some(r) = std::fs::read_to_string(e.path().join(RESERVATION))
            .ok()
            .as_deref()
            .and_then(parse_reservation)
        {
            out.push((id, r));
        }
    }
    out
}

/// Reserve the first free range of `pool` for container `id` (its state directory is
/// `root/id`). Errors say what is exhausted.
pub fn reserve(root: &Path, id: &str, pool: &Pool) -> Result<Range, String> {
    // The lock is the state root itself: nothing is left behind in it.
    let lock_path = root;
    let lock =
        std::fs::File::open(lock_path).map_err(|e| format!("open {}: {e}", lock_path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "lock {}: {}",
            lock_path.display(),
            io::Error::last_os_error()
        ));
    }
    let taken = reserved(root, id);
    let slot = (0..pool.slots())
        .find(|s| {
            let r = pool.range(*s);
            !taken.iter().any(|(_, t)| {
                overlaps(r.uid_base, r.size, t.uid_base, t.size)
                    || overlaps(r.gid_base, r.size, t.gid_base, t.size)
            })
        })
        .ok_or_else(|| {
            format!(
                "user namespace pool exhausted: all {} ranges of {} ids (host uids {}..{}) are in use by other containers",
                pool.slots(),
                pool.range,
                pool.uid_start,
                u64::from(pool.uid_start) + u64::from(pool.size)
            )
        })?;
    let r = pool.range(slot);
    let path = root.join(id).join(RESERVATION);
    let mut f =
        std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    writeln!(f, "{} {} {}", r.uid_base, r.gid_base, r.size)
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(r)
}

/// Refuse mappings of a config that overlap a range reserved for another container.
pub fn check_disjoint(
    root: &Path,
    id: &str,
    field: &str,
    host_ranges: &[(u32, u32)],
    uid: bool,
) -> Result<(), String> {
    for (other, r) in reserved(root, id) {
        let base = if uid { r.uid_base } else { r.gid_base };
        if let Some((s, n)) = host_ranges
            .iter()
            .find(|(s, n)| overlaps(*s, *n, base, r.size))
        {
            return Err(format!(
                "{field}: host ids {s}..{} overlap the range {base}..{} given to container {other:?}",
                u64::from(*s) + u64::from(*n),
                u64::from(base) + u64::from(r.size)
            ));
        }
    }
    Ok(())
}

/// `net.ipv4.ping_group_range` ("LOW HIGH") narrowed to the gids a user namespace that maps
/// `mapped` ids from 0 can name: the kernel refuses a range that reaches unmapped gids
/// (Docker asks for "0 2147483647" on every container). A range that keeps no mapped gid
/// becomes "1 0", the kernel's "nobody". None when the value already fits (or is not a
/// range, left for the kernel to refuse).
pub fn clamp_group_range(value: &str, mapped: u32) -> Option<String> {
    let mut it = value.split_whitespace().map(str::parse::<u32>);
    let (Some(Ok(low)), Some(Ok(high)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    let last = mapped.checked_sub(1)?;
    if high <= last || low > high {
        return None;
    }
    Some(if low > last {
        "1 0".to_string()
    } else {
        format!("{low} {last}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ranges_clamped_to_the_mapped_gids() {
        assert_eq!(
            clamp_group_range("0 2147483647", 65536).as_deref(),
            Some("0 65535")
        );
        assert_eq!(clamp_group_range("0 65535", 65536), None);
        assert_eq!(clamp_group_range("1 0", 65536), None);
        assert_eq!(
            clamp_group_range("10 70000", 65536).as_deref(),
            Some("10 65535")
        );
        assert_eq!(
            clamp_group_range("70000 80000", 65536).as_deref(),
            Some("1 0")
        );
        assert_eq!(clamp_group_range("garbage", 65536), None);
        assert_eq!(clamp_group_range("0 1 2", 65536), None);
    }

    #[test]
    fn subid_lines() {
        let t = "alice:100000:65536\ncontain:1000000:6553600\n";
        assert_eq!(subid_entry(t, "contain"), Some((1000000, 6553600)));
        assert_eq!(subid_entry(t, "bob"), None);
        assert_eq!(subid_entry("contain:x:1", "contain"), None);
    }

    #[test]
    fn ranges_are_disjoint_and_exhaust() {
        let root = tempfile::tempdir().unwrap();
        let pool = Pool {
            uid_start: 1000,
            gid_start: 5000,
            size: 200,
            range: 100,
        };
        for id in ["a", "b", "c"] {
            std::fs::create_dir(root.path().join(id)).unwrap();
        }
        let a = reserve(root.path(), "a", &pool).unwrap();
        let b = reserve(root.path(), "b", &pool).unwrap();
        assert_eq!((a.uid_base, a.gid_base), (1000, 5000));
        assert_eq!((b.uid_base, b.gid_base), (1100, 5100));
        let e = reserve(root.path(), "c", &pool).unwrap_err();
        assert!(e.contains("exhausted"), "{e}");
        // Freed when the container's directory goes.
        std::fs::remove_dir_all(root.path().join("a")).unwrap();
        assert_eq!(reserve(root.path(), "c", &pool).unwrap(), a);
        let e =
            check_disjoint(root.path(), "x", "linux.uidMappings", &[(1150, 10)], true).unwrap_err();
        assert!(e.contains("container \"b\""), "{e}");
        assert!(check_disjoint(root.path(), "x", "f", &[(1300, 10)], true).is_ok());
    }
}
