//! Host id ranges for the user namespaces contain adds: a pool (a subordinate-id entry or a
//! fixed span), cut into equal ranges, one per container, reserved under a host-wide lock
//! (whatever the state root) so that two containers never share host ids; a config's own
//! mappings are checked against and recorded in the same ledger.

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// The host-wide ledger: which state roots hold containers with reserved host ids, and the
/// lock that serialises every reservation on the host, whatever `--root` each caller uses
/// (two state roots must never hand out the same range). /run/contain, or
/// `CONTAIN_IDMAP_LEDGER` (the operator's, or a test's).
pub fn ledger_dir() -> PathBuf {
    std::env::var_os("CONTAIN_IDMAP_LEDGER")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/run/contain"), PathBuf::from)
}

/// What one container holds: host uid and gid ranges (base, count).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Held {
    uids: Vec<(u32, u32)>,
    gids: Vec<(u32, u32)>,
}

/// A reservation file: "UID GID SIZE" (a range of the pool), or "uid BASE COUNT" and
/// "gid BASE COUNT" lines (a config's own mappings).
fn parse_reservation(text: &str) -> Option<Held> {
    let mut held = Held::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = |s: &str| s.parse::<u32>().ok();
        match f.as_slice() {
            ["uid", b, c] => held.uids.push((n(b)?, n(c)?)),
            ["gid", b, c] => held.gids.push((n(b)?, n(c)?)),
            [u, g, c] => {
                held.uids.push((n(u)?, n(c)?));
                held.gids.push((n(g)?, n(c)?));
            }
            _ => return None,
        }
    }
    Some(held)
}

fn overlaps(a_start: u32, a_len: u32, b_start: u32, b_len: u32) -> bool {
    let (a0, a1) = (u64::from(a_start), u64::from(a_start) + u64::from(a_len));
    let (b0, b1) = (u64::from(b_start), u64::from(b_start) + u64::from(b_len));
    a0 < b1 && b0 < a1
}

/// The ledger, locked for the caller's lifetime of it, with `root` registered.
struct Ledger {
    _lock: nix::fcntl::Flock<std::fs::File>,
    roots: Vec<PathBuf>,
}

impl Ledger {
    fn open(dir: &Path, root: &Path) -> Result<Ledger, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("create {}: {e}", dir.display()))?;
        let lock_path = dir.join("idmap.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("open {}: {e}", lock_path.display()))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("lock {}: {e}", lock_path.display()))?;
        let list = dir.join("roots");
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut roots: Vec<PathBuf> = std::fs::read_to_string(&list)
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .filter(|r| r.is_dir())
            .collect();
        if !roots.contains(&root) {
            roots.push(root);
        }
        let text: String = roots.iter().map(|r| format!("{}\n", r.display())).collect();
        let tmp = dir.join("roots.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &list))
            .map_err(|e| format!("write {}: {e}", list.display()))?;
        Ok(Ledger { _lock: lock, roots })
    }

    /// Every reservation on the host but container `id` of `root`'s: (state root, id, ids).
    fn held(&self, root: &Path, id: &str) -> Vec<(PathBuf, String, Held)> {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut out = Vec::new();
        for r in &self.roots {
            for e in std::fs::read_dir(r).into_iter().flatten().flatten() {
                let other = e.file_name().to_string_lossy().into_owned();
                if *r == root && other == id {
                    continue;
                }
                let held = std::fs::read_to_string(e.path().join(RESERVATION))
                    .ok()
                    .as_deref()
                    .and_then(parse_reservation);
                if let Some(h) = held {
                    out.push((r.clone(), other, h));
                }
            }
        }
        out
    }
}

/// Reserve the first free range of `pool` for container `id` (its state directory is
/// `root/id`), free host-wide: against every container of every state root, pool ranges
/// and configs' own mappings alike. Errors say what is exhausted.
pub fn reserve(root: &Path, id: &str, pool: &Pool) -> Result<Range, String> {
    reserve_in(&ledger_dir(), root, id, pool)
}

fn reserve_in(ledger: &Path, root: &Path, id: &str, pool: &Pool) -> Result<Range, String> {
    let l = Ledger::open(ledger, root)?;
    let taken = l.held(root, id);
    let slot = (0..pool.slots())
        .find(|s| {
            let r = pool.range(*s);
            !taken.iter().any(|(_, _, h)| {
                h.uids.iter().any(|&(b, n)| overlaps(r.uid_base, r.size, b, n))
                    || h.gids.iter().any(|&(b, n)| overlaps(r.gid_base, r.size, b, n))
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
    write_reservation(
        root,
        id,
        &format!("{} {} {}\n", r.uid_base, r.gid_base, r.size),
    )?;
    Ok(r)
}

/// The range of the pool container `id` of `root` holds (None for a config's own mappings,
/// or no reservation).
pub fn reserved_range(root: &Path, id: &str) -> Option<Range> {
    let text = std::fs::read_to_string(root.join(id).join(RESERVATION)).ok()?;
    let f: Vec<u32> = text
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    match f.as_slice() {
        &[uid_base, gid_base, size] => Some(Range {
            uid_base,
            gid_base,
            size,
        }),
        _ => None,
    }
}

/// Container `id` joins the pod whose sandbox `sandbox` (of the same `root`) holds `range`:
/// it holds the same range, so that the range stays taken while any of the pod's containers
/// lives. Refused when the sandbox no longer holds it (deleted meanwhile).
pub fn reserve_shared(root: &Path, id: &str, sandbox: &str, range: Range) -> Result<(), String> {
    reserve_shared_in(&ledger_dir(), root, id, sandbox, range)
}

fn reserve_shared_in(
    ledger: &Path,
    root: &Path,
    id: &str,
    sandbox: &str,
    range: Range,
) -> Result<(), String> {
    let l = Ledger::open(ledger, root)?;
    let root_c = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let want = Held {
        uids: vec![(range.uid_base, range.size)],
        gids: vec![(range.gid_base, range.size)],
    };
    if !l
        .held(root, id)
        .iter()
        .any(|(r, other, h)| *r == root_c && other == sandbox && *h == want)
    {
        return Err(format!(
            "the pod's sandbox container {sandbox:?} no longer holds its id range (host uids {}..{}): it was deleted",
            range.uid_base,
            u64::from(range.uid_base) + u64::from(range.size)
        ));
    }
    write_reservation(
        root,
        id,
        &format!("{} {} {}\n", range.uid_base, range.gid_base, range.size),
    )
}

/// Ranges as "BASE..END, ...".
fn show(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|&(b, n)| format!("{b}..{}", u64::from(b) + u64::from(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_reservation(root: &Path, id: &str, text: &str) -> Result<(), String> {
    let path = root.join(id).join(RESERVATION);
    let mut f =
        std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// A config's own mappings (host uid and gid ranges): refused where they overlap ids held by
/// another container anywhere on the host, else recorded for container `id`, so that a range
/// given out later never overlaps them either. `joins`: the container of `root` whose user
/// namespace config.json joins by path (a pod whose client gives the user namespace); it may
/// hold the same ids, which then stay taken while either lives.
pub fn reserve_config(
    root: &Path,
    id: &str,
    joins: Option<&str>,
    uids: &[(u32, u32)],
    gids: &[(u32, u32)],
) -> Result<(), String> {
    reserve_config_in(&ledger_dir(), root, id, joins, uids, gids)
}

fn reserve_config_in(
    ledger: &Path,
    root: &Path,
    id: &str,
    joins: Option<&str>,
    uids: &[(u32, u32)],
    gids: &[(u32, u32)],
) -> Result<(), String> {
    let l = Ledger::open(ledger, root)?;
    let root_c = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mine = Held {
        uids: uids.to_vec(),
        gids: gids.to_vec(),
    };
    let mut adopted = None;
    for (other_root, other, h) in l.held(root, id) {
        if other_root == root_c && Some(other.as_str()) == joins {
            // Mappings are optional when a namespace is joined: it has its own.
            if mine.uids.is_empty() && mine.gids.is_empty() {
                adopted = Some(h);
                continue;
            }
            if h != mine {
                return Err(format!(
                    "linux.uidMappings/gidMappings: config.json joins the user namespace of container {other:?}, whose mappings are {} and {}, but gives {} and {}",
                    show(&h.uids),
                    show(&h.gids),
                    show(uids),
                    show(gids)
                ));
            }
            continue;
        }
        for (field, mine, theirs) in [
            ("linux.uidMappings", uids, &h.uids),
            ("linux.gidMappings", gids, &h.gids),
        ] {
            for &(s, n) in mine {
                if let Some(&(b, c)) = theirs.iter().find(|&&(b, c)| overlaps(s, n, b, c)) {
                    return Err(format!(
                        "{field}: host ids {s}..{} overlap the ids {b}..{} held by container {other:?} (in {})",
                        u64::from(s) + u64::from(n),
                        u64::from(b) + u64::from(c),
                        other_root.display()
                    ));
                }
            }
        }
    }
    let held = adopted.unwrap_or(mine);
    let text: String = held
        .uids
        .iter()
        .map(|(b, n)| format!("uid {b} {n}\n"))
        .chain(held.gids.iter().map(|(b, n)| format!("gid {b} {n}\n")))
        .collect();
    write_reservation(root, id, &text)
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
        let ledger = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let other_root = tempfile::tempdir().unwrap();
        let pool = Pool {
            uid_start: 1000,
            gid_start: 5000,
            size: 300,
            range: 100,
        };
        for id in ["a", "b", "c", "x"] {
            std::fs::create_dir(root.path().join(id)).unwrap();
        }
        std::fs::create_dir(other_root.path().join("o")).unwrap();
        let reserve = |root: &Path, id: &str| reserve_in(ledger.path(), root, id, &pool);
        let a = reserve(root.path(), "a").unwrap();
        // Another state root: still a range of its own.
        let o = reserve(other_root.path(), "o").unwrap();
        assert_eq!((a.uid_base, a.gid_base), (1000, 5000));
        assert_eq!((o.uid_base, o.gid_base), (1100, 5100));
        // A config's own mapping over the pool's last range holds it.
        reserve_config_in(
            ledger.path(),
            root.path(),
            "x",
            None,
            &[(1250, 10)],
            &[(5250, 10)],
        )
        .unwrap();
        let e = reserve(root.path(), "b").unwrap_err();
        assert!(e.contains("exhausted"), "{e}");
        // Freed when the container's directory goes.
        std::fs::remove_dir_all(root.path().join("a")).unwrap();
        assert_eq!(reserve(root.path(), "c").unwrap(), a);
        let e = reserve_config_in(ledger.path(), root.path(), "b", None, &[(1150, 10)], &[])
            .unwrap_err();
        assert!(e.contains("container \"o\""), "{e}");
        let e = reserve_config_in(ledger.path(), root.path(), "b", None, &[], &[(5005, 1)])
            .unwrap_err();
        assert!(e.contains("linux.gidMappings"), "{e}");
        assert!(
            reserve_config_in(ledger.path(), root.path(), "b", None, &[(2000, 10)], &[]).is_ok()
        );
        // The old one-line format still reads.
        assert_eq!(
            parse_reservation("7 8 9\n"),
            Some(Held {
                uids: vec![(7, 9)],
                gids: vec![(8, 9)]
            })
        );
    }

    #[test]
    fn a_pod_shares_its_sandbox_range() {
        let ledger = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let pool = Pool {
            uid_start: 1000,
            gid_start: 5000,
            size: 300,
            range: 100,
        };
        for id in ["sandbox", "app", "app2", "other"] {
            std::fs::create_dir(root.path().join(id)).unwrap();
        }
        let r = reserve_in(ledger.path(), root.path(), "sandbox", &pool).unwrap();
        assert_eq!(reserved_range(root.path(), "sandbox"), Some(r));
        reserve_shared_in(ledger.path(), root.path(), "app", "sandbox", r).unwrap();
        assert_eq!(reserved_range(root.path(), "app"), Some(r));
        // Another pod gets another range, also while only the app holds the pod's.
        std::fs::remove_dir_all(root.path().join("sandbox")).unwrap();
        let other = reserve_in(ledger.path(), root.path(), "other", &pool).unwrap();
        assert_ne!(other.uid_base, r.uid_base);
        // A sandbox that is gone (or holds another range) cannot be joined.
        let e = reserve_shared_in(ledger.path(), root.path(), "app2", "sandbox", r).unwrap_err();
        assert!(e.contains("no longer holds"), "{e}");
        let e = reserve_shared_in(ledger.path(), root.path(), "app2", "other", r).unwrap_err();
        assert!(e.contains("no longer holds"), "{e}");
        // A config's own mappings are no pool range.
        reserve_config_in(
            ledger.path(),
            root.path(),
            "app2",
            None,
            &[(9000, 1)],
            &[(9000, 1)],
        )
        .unwrap();
        assert_eq!(reserved_range(root.path(), "app2"), None);
    }

    #[test]
    fn a_client_given_user_namespace_is_shared_by_who_joins_it() {
        let ledger = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        for id in ["sandbox", "app", "quiet", "stranger"] {
            std::fs::create_dir(root.path().join(id)).unwrap();
        }
        let config = |id, joins, ids: &[(u32, u32)]| {
            reserve_config_in(ledger.path(), root.path(), id, joins, ids, ids)
        };
        config("sandbox", None, &[(9000, 100)]).unwrap();
        // Joining the sandbox's namespace with its mappings: both hold them.
        config("app", Some("sandbox"), &[(9000, 100)]).unwrap();
        // Joining it without mappings (they are optional then): the same.
        config("quiet", Some("sandbox"), &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("quiet").join(RESERVATION)).unwrap(),
            "uid 9000 100\ngid 9000 100\n"
        );
        // Not joining it: the ids are taken.
        let e = config("stranger", None, &[(9000, 100)]).unwrap_err();
        assert!(e.contains("overlap"), "{e}");
        // Joining it but naming other mappings: refused, saying both.
        let e = config("stranger", Some("sandbox"), &[(9000, 50)]).unwrap_err();
        assert!(e.contains("9000..9100") && e.contains("9000..9050"), "{e}");
        // The ids stay taken while the app lives, with the sandbox gone.
        std::fs::remove_dir_all(root.path().join("sandbox")).unwrap();
        let e = config("stranger", None, &[(9050, 1)]).unwrap_err();
        assert!(e.contains("container \"app\""), "{e}");
    }
}
