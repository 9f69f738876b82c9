//! A rootfs that is an overlayfs mount (podman's and containerd's are) cannot be idmapped:
//! the kernel has no idmapped overlay mounts. Its layers can be. So, for a user namespace the
//! policy adds, the runtime makes a second overlay from idmapped copies of the same lower,
//! upper and work directories, with the options of the first, and the container gets that one.
//!
//! Both overlays then share the upper and work directories. The kernel allows it (it warns
//! that accessing files through both at once is undefined): while the container runs, its
//! writes go through its own overlay, and a host-side view of the engine's mount (`podman
//! cp` into a running container, say) may not see them at once. With `index=on` the kernel
//! refuses the second mount, and the create fails with that reason. A `volatile` overlay
//! (podman's for `--rm` containers) marks its work directory so that no other mount may use
//! it: the second overlay gets a work directory of its own, `contain-work` beside the upper
//! directory (on the same filesystem, as overlayfs wants; it goes when the engine removes the
//! container's layer), and is not volatile itself.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroups::unescape_mountinfo as unescape;

/// The work directory of the second overlay when the first is volatile, beside the upper one.
const OWN_WORKDIR: &str = "contain-work";

/// The overlay mounted at a path, as /proc/self/mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Lower layers, topmost first.
    pub lower: Vec<PathBuf>,
    /// Data-only lower layers (`datadir+`).
    pub data: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// Every other option, as mountinfo shows it (`volatile`, `metacopy=on`, ...).
    pub options: Vec<String>,
    pub readonly: bool,
}

/// overlayfs joins lowerdir's layers with ':' and escapes a ':' in a path as `\:`.
fn split_layers(list: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ':' => out.push(PathBuf::from(std::mem::take(&mut cur))),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(PathBuf::from(cur));
    }
    out
}

/// The overlay whose root is mounted at `path` (the topmost mount there), from mountinfo
/// text (pure).
pub fn at(mountinfo: &str, path: &Path) -> Option<Overlay> {
    let mut found = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.splitn(3, ' ').collect();
        if f.len() < 5 || p.len() < 3 || p[0] != "overlay" || f[3] != "/" {
            continue;
        }
        if Path::new(&unescape(f[4])) != path {
            continue;
        }
        let mut o = Overlay {
            lower: Vec::new(),
            data: Vec::new(),
            upper: None,
            work: None,
            options: Vec::new(),
            readonly: false,
        };
        for opt in p[2].split(',') {
            let opt = unescape(opt);
            match opt.split_once('=') {
                Some(("lowerdir", v)) => o.lower.extend(split_layers(v)),
                Some(("lowerdir+", v)) => o.lower.push(PathBuf::from(v)),
                Some(("datadir+", v)) => o.data.push(PathBuf::from(v)),
                Some(("upperdir", v)) => o.upper = Some(PathBuf::from(v)),
                Some(("workdir", v)) => o.work = Some(PathBuf::from(v)),
                None if opt == "ro" => o.readonly = true,
                None if opt == "rw" => {}
                _ => o.options.push(opt),
            }
        }
        if !o.lower.is_empty() {
            found = Some(o);
        }
    }
    found
}

/// The overlay mounted at `rootfs` in this mount namespace, if it is one.
pub fn of(rootfs: &Path) -> Option<Overlay> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let real = std::fs::canonicalize(rootfs).ok()?;
    at(&text, &real)
}

impl Overlay {
    /// Every directory that must be idmapped: the lower and data layers, and the directory
    /// holding both upper and work (overlayfs wants them on one mount).
    fn upper_base(&self) -> Option<(PathBuf, PathBuf, PathBuf)> {
        let (u, w) = (self.upper.as_ref()?, self.work.as_ref()?);
        let mut base = u.parent()?.to_path_buf();
        while !w.starts_with(&base) {
            base = base.parent()?.to_path_buf();
        }
        Some((
            base.clone(),
            u.strip_prefix(&base).ok()?.to_path_buf(),
            w.strip_prefix(&base).ok()?.to_path_buf(),
        ))
    }

    /// Mounted with `volatile`: the kernel refuses any other mount of the same work
    /// directory while it exists.
    fn volatile(&self) -> bool {
        self.options
            .iter()
            .any(|o| o == "volatile" || o == "fsync=volatile")
    }

    /// The layer directories, for the check that their filesystems can be idmapped.
    pub fn layers(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.lower.iter().chain(&self.data).cloned().collect();
        v.extend(self.upper_base().map(|(b, _, _)| b));
        v
    }

    /// A new overlay of the same layers, each idmapped through `userns`, made with the
    /// credentials of the namespace's root (`root` = its host uid and gid): overlayfs does
    /// its upper-layer work as whoever mounted it, and only ids the idmap maps can write
    /// there. Detached; the caller attaches it.
    pub fn idmapped(
        &self,
        userns: std::os::fd::BorrowedFd<'_>,
        root: (u32, u32),
    ) -> Result<OwnedFd, String> {
        use crate::sys::mount::{clone_tree, new_fs, set_idmap};
        let idmap = |p: &Path| {
            clone_tree(p, false)
                .and_then(|m| set_idmap(m.as_fd(), userns, false).map(|()| m))
                .map_err(|e| format!("idmap overlay layer {}: {e}", p.display()))
        };
        let lower: Vec<OwnedFd> = self
            .lower
            .iter()
            .map(|p| idmap(p))
            .collect::<Result<_, _>>()?;
        let data: Vec<OwnedFd> = self
            .data
            .iter()
            .map(|p| idmap(p))
            .collect::<Result<_, _>>()?;
        let fd = |m: &OwnedFd| format!("/proc/self/fd/{}", m.as_raw_fd());
        let mut opts: Vec<String> = lower
            .iter()
            .map(|m| format!("lowerdir+={}", fd(m)))
            .collect();
        opts.extend(data.iter().map(|m| format!("datadir+={}", fd(m))));
        let upper = match (self.upper_base(), self.readonly) {
            (Some((base, u, w)), false) => {
                let w = if self.volatile() {
                    let own = PathBuf::from(OWN_WORKDIR);
                    std::fs::create_dir_all(base.join(&own))
                        .map_err(|e| format!("create {}: {e}", base.join(&own).display()))?;
                    own
                } else {
                    w
                };
                let m = idmap(&base)?;
                opts.push(format!("upperdir={}/{}", fd(&m), u.display()));
                opts.push(format!("workdir={}/{}", fd(&m), w.display()));
                Some(m)
            }
            _ => None,
        };
        opts.extend(
            self.options
                .iter()
                .filter(|o| *o != "volatile" && *o != "fsync=volatile")
                .cloned(),
        );
        let attrs = if self.readonly || upper.is_none() {
            0x1
        } else {
            0
        };
        let made = crate::sys::with_fs_ids(root, || new_fs("overlay", None, &opts, attrs))
            .map_err(|e| format!("mount the idmapped overlay: {e}"))?;
        made.map_err(|e| {
            format!(
                "mount an overlay of the rootfs's idmapped layers: {e} (the kernel log says why)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_and_new_api_lines() {
        let text = "48 42 0:40 / /var/lib/containers/storage/overlay/36/merged rw,relatime - overlay overlay rw,lowerdir=/s/l/A:/s/l/B\\134:C,upperdir=/s/36/diff,workdir=/s/36/work,uuid=on,fsync=volatile\n\
                    69 44 0:39 / /tmp/with\\040space rw,relatime - overlay none ro,lowerdir+=/x/a,lowerdir+=/x/b,datadir+=/x/d,uuid=on\n\
                    70 44 0:41 /sub /tmp/bindofsub rw - overlay none rw,lowerdir=/y\n";
        let o = at(
            text,
            Path::new("/var/lib/containers/storage/overlay/36/merged"),
        )
        .unwrap();
        assert_eq!(
            o.lower,
            [PathBuf::from("/s/l/A"), PathBuf::from("/s/l/B:C")]
        );
        assert_eq!(o.upper.as_deref(), Some(Path::new("/s/36/diff")));
        assert_eq!(o.options, ["uuid=on", "fsync=volatile"]);
        assert!(!o.readonly && o.volatile());
        assert_eq!(
            o.upper_base(),
            Some(("/s/36".into(), "diff".into(), "work".into()))
        );
        let o = at(text, Path::new("/tmp/with space")).unwrap();
        assert_eq!(o.lower, [PathBuf::from("/x/a"), PathBuf::from("/x/b")]);
        assert_eq!(o.data, [PathBuf::from("/x/d")]);
        assert!(o.readonly && o.upper.is_none());
        // A bind of a directory inside an overlay is not the overlay's root.
        assert!(at(text, Path::new("/tmp/bindofsub")).is_none());
        assert!(at(text, Path::new("/nowhere")).is_none());
    }
}
