//! Mount options of config.json -> mount(2) flags, propagation and fs data (pure).

use nix::mount::MsFlags;

/// What a list of mount options asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, ...): they matter on a bind remount.
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific data (`mode=755,size=64k`).
    pub data: Vec<String>,
    /// `tmpcopyup`: copy the content of the destination into a new tmpfs.
    pub tmpcopyup: bool,
    /// Recursive attributes (`rro`, `rnosuid`, ...): MOUNT_ATTR_* bits set and cleared on
    /// the mount and every mount below it with mount_setattr(AT_RECURSIVE).
    pub recursive: RecursiveAttrs,
    /// `idmap` (Some(false)) or `ridmap` (Some(true), every mount below too): the bind mount
    /// is idmapped, through its own uidMappings/gidMappings or the container's user namespace.
    pub idmap: Option<bool>,
}

/// MOUNT_ATTR_* bits for mount_setattr(2), from the recursive options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
}

const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;
const ATTR_ATIME_MASK: u64 = 0x70;
const ATTR_RELATIME: u64 = 0x0;
const ATTR_NOATIME: u64 = 0x10;
const ATTR_STRICTATIME: u64 = 0x20;
const ATTR_NODIRATIME: u64 = 0x80;
const ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// A recursive option as (bits to set, bits to clear); None if `s` is not one. An atime
/// mode clears the whole atime field first, as the kernel wants.
fn recursive_attr(s: &str) -> Option<(u64, u64)> {
    Some(match s {
        "rro" => (ATTR_RDONLY, 0),
        "rrw" => (0, ATTR_RDONLY),
        "rnosuid" => (ATTR_NOSUID, 0),
        "rsuid" => (0, ATTR_NOSUID),
        "rnodev" => (ATTR_NODEV, 0),
        "rdev" => (0, ATTR_NODEV),
        "rnoexec" => (ATTR_NOEXEC, 0),
        "rexec" => (0, ATTR_NOEXEC),
        "rnodiratime" => (ATTR_NODIRATIME, 0),
        "rdiratime" => (0, ATTR_NODIRATIME),
        "rnoatime" => (ATTR_NOATIME, ATTR_ATIME_MASK),
        "rrelatime" | "rnostrictatime" => (ATTR_RELATIME, ATTR_ATIME_MASK),
        "rstrictatime" => (ATTR_STRICTATIME, ATTR_ATIME_MASK),
        // Relatime is the value 0 of the atime field: clearing it changes nothing (as runc).
        "rnorelatime" => (0, 0),
        "rnosymfollow" => (ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

/// Whether any mount of `spec` asks to be idmapped (`idmap`, `ridmap`).
pub fn any_idmap(spec: &oci_spec::runtime::Spec) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| parse(m.options().as_deref().unwrap_or_default()).is_ok_and(|o| o.idmap.is_some()))
}

/// Parse options; the error names the option.
pub fn parse(options: &[String]) -> Result<MountOptions, String> {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        tmpcopyup: false,
        recursive: RecursiveAttrs::default(),
        idmap: None,
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "nosymfollow" => (
                MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
                MsFlags::empty(),
            ),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation
                    .push(propagation_flags(opt).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            "idmap" | "ridmap" => {
                o.idmap = Some(opt == "ridmap");
                continue;
            }
            s if recursive_attr(s).is_some() => {
                let (set, clear) = recursive_attr(s).unwrap_or_default();
                // Later options win: what this one sets is no longer cleared, and back.
                o.recursive.clear = (o.recursive.clear & !set) | clear;
                o.recursive.set = (o.recursive.set & !clear) | set;
                continue;
            }
            "" => return Err("an empty option".to_string()),
            data => {
                if data.contains(',') {
                    return Err(format!("{data:?}: one option per entry"));
                }
                o.data.push(data.to_string());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.cleared |= clear;
        o.cleared &= !set;
    }
    Ok(o)
}

/// The mount(2) flags of a propagation name (linux.rootfsPropagation and mount options).
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_and_data() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.is_bind());
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        let o = p(&["rw", "ro"]);
        assert!(o.flags.contains(MsFlags::MS_RDONLY));
        assert!(!o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_and_propagation() {
        let o = p(&["rbind", "rprivate", "ro"]);
        assert!(o.is_bind() && o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(p(&["tmpcopyup"]).tmpcopyup);
    }

    #[test]
    fn recursive_attributes() {
        let r = |opts: &[&str]| p(opts).recursive;
        assert_eq!(r(&["rbind", "rro"]), RecursiveAttrs { set: 1, clear: 0 });
        // Later options win.
        assert_eq!(r(&["rro", "rrw"]), RecursiveAttrs { set: 0, clear: 1 });
        assert_eq!(
            r(&["rnosuid", "rnodev", "rnoexec", "rnosymfollow"]),
            RecursiveAttrs {
                set: 0x2 | 0x4 | 0x8 | 0x0020_0000,
                clear: 0
            }
        );
        // An atime mode replaces the whole atime field.
        assert_eq!(
            r(&["rnoatime"]),
            RecursiveAttrs {
                set: 0x10,
                clear: 0x70
            }
        );
        assert_eq!(
            r(&["rnoatime", "rrelatime"]),
            RecursiveAttrs {
                set: 0,
                clear: 0x70
            }
        );
        assert_eq!(
            r(&["rstrictatime"]),
            RecursiveAttrs {
                set: 0x20,
                clear: 0x70
            }
        );
        assert!(r(&["rnorelatime"]).is_empty());
        // Not recursive options: flags as before.
        assert!(r(&["ro", "rbind"]).is_empty());
    }

    #[test]
    fn refusals() {
        for bad in ["", "a,b"] {
            assert!(parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        let o = |v: &[&str]| parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        assert_eq!(o(&["rbind", "idmap"]).idmap, Some(false));
        assert_eq!(o(&["bind", "ridmap"]).idmap, Some(true));
        assert_eq!(o(&["bind"]).idmap, None);
    }
}
