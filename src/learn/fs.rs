//! What the workload did to the filesystem, by directory: the Landlock rights its reads,
//! writes, creations, removals and executions needed, and the learnt policy's Landlock layer
//! made of them. Paths are taken where the file is (symlinks followed in the container's
//! tree), as Landlock checks them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use crate::landlock::{ConfigLandlock, PathRule, RulesSpec, RulesetSpec};

/// Directories kept; past it a new directory is recorded as its top-level ancestor.
pub const MAX_DIRS: usize = 256;

/// The rights the learnt layer handles: reading, every one that changes the filesystem, and
/// execute. What no observation granted is refused everywhere.
pub const HANDLED: [&str; 15] = [
    "read_file",
    "read_dir",
    "execute",
    "write_file",
    "truncate",
    "make_reg",
    "make_dir",
    "make_sym",
    "make_fifo",
    "make_sock",
    "make_char",
    "make_block",
    "remove_file",
    "remove_dir",
    "refer",
];

/// What executing a file needs: the kernel opens it for reading (as it opens an ELF
/// program's loader).
pub const EXECUTE: &[&str] = &["execute", "read_file"];

/// The directory `right` on `path` is granted beneath: the directory itself for `read_dir`
/// (a directory listed), else the file's parent, lexically; anything of the kernel's own
/// filesystems (/proc, /sys) at their mount point, since their entries come and go with
/// processes.
pub fn grant_dir(path: &Path, right: &str) -> PathBuf {
    for top in ["/proc", "/sys"] {
        if path.starts_with(top) {
            return PathBuf::from(top);
        }
    }
    if right == "read_dir" {
        return path.to_path_buf();
    }
    path.parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// The rights one directory needed, with the first observation that needed each.
pub type Dirs = BTreeMap<PathBuf, BTreeMap<String, String>>;

/// `path` made absolute against `base` (the process's cwd or the directory of a descriptor)
/// and normalized lexically (`.`, `..`, repeated slashes).
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Record `right` on the directory for `path` ([`grant_dir`]), first by `why`. Past
/// [`MAX_DIRS`] a new directory is recorded as its top-level ancestor; returns false then.
pub fn add(dirs: &mut Dirs, path: &Path, right: &str, why: impl FnOnce() -> String) -> bool {
    let mut dir = grant_dir(path, right);
    let mut kept = true;
    if !dirs.contains_key(&dir) && dirs.len() >= MAX_DIRS {
        dir = dir.components().take(2).collect();
        kept = false;
    }
    dirs.entry(dir)
        .or_default()
        .entry(right.to_string())
        .or_insert_with(why);
    kept
}

/// Merge `other` into `dirs`, keeping the first observation of each right.
pub fn merge(dirs: &mut Dirs, other: &Dirs) {
    for (dir, rights) in other {
        let mine = dirs.entry(dir.clone()).or_default();
        for (r, why) in rights {
            mine.entry(r.clone()).or_insert_with(|| why.clone());
        }
    }
}

/// The directories, each folded into the nearest ancestor also present (with the union of
/// their rights): a directory the workload made itself may not exist when the learnt policy
/// is applied, and a rule beneath a granted one adds nothing to it.
pub fn folded(dirs: &Dirs) -> Dirs {
    let mut out: Dirs = BTreeMap::new();
    for (dir, rights) in dirs {
        let into = out
            .keys()
            .find(|kept| dir.starts_with(kept))
            .cloned()
            .unwrap_or_else(|| dir.clone());
        let e = out.entry(into).or_default();
        for (r, why) in rights {
            e.entry(r.clone()).or_insert_with(|| why.clone());
        }
    }
    out
}

/// The learnt Landlock layer: [`HANDLED`] rights handled, each granted beneath the
/// directories that needed it.
pub fn ruleset(dirs: &Dirs) -> ConfigLandlock {
    // rights granted -> directories
    let mut by_rights: BTreeMap<BTreeSet<String>, Vec<PathBuf>> = BTreeMap::new();
    for (dir, rights) in folded(dirs) {
        by_rights
            .entry(rights.into_keys().collect())
            .or_default()
            .push(dir);
    }
    ConfigLandlock {
        ruleset: Some(RulesetSpec {
            handled_access_fs: HANDLED.iter().map(|r| r.to_string()).collect(),
            handled_access_network: Vec::new(),
            scoped: Vec::new(),
        }),
        rules: Some(RulesSpec {
            path_beneath: by_rights
                .into_iter()
                .map(|(rights, paths)| PathRule {
                    allowed_access: rights.into_iter().collect(),
                    paths,
                })
                .collect(),
            net_port: Vec::new(),
        }),
        disable_best_effort: None,
    }
}

/// The Landlock rights an `open` with `flags` needs, of a directory when `is_dir` (an
/// O_PATH open needs none).
pub fn open_rights(flags: u64, is_dir: bool) -> Vec<&'static str> {
    let flags = flags as i32;
    let mut r = Vec::new();
    if flags & libc::O_PATH != 0 {
        return r;
    }
    let acc = flags & libc::O_ACCMODE;
    if acc != libc::O_WRONLY {
        r.push(if is_dir { "read_dir" } else { "read_file" });
    }
    if acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
        r.push("write_file");
    }
    if flags & libc::O_TRUNC != 0 {
        r.push("truncate");
    }
    if flags & libc::O_CREAT != 0 {
        r.push("make_reg");
    }
    r
}
