//! The plan: which rulesets, with which rules (pure).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::model::{abi_of, access_names, ConfigLandlock, Kind};
use super::LandlockError;

/// The rulesets of a container, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// The kernel's Landlock ABI version the plan was checked against (0: none).
    pub abi: i32,
    pub layers: Vec<Layer>,
    /// Processes started with `exec` get the plan too (else only the init and its children).
    #[serde(default)]
    pub on_exec: bool,
    /// What the plan leaves to other layers (read-only mounts inside a broader rule, rights
    /// this kernel lacks), for `state` and the audit.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One Landlock ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    /// Fail the create if the kernel cannot enforce every right of it.
    pub required: bool,
    pub fs: Vec<String>,
    pub net: Vec<String>,
    pub scopes: Vec<String>,
    pub paths: Vec<PathGrant>,
    pub ports: Vec<PortGrant>,
}

/// Allow `access` beneath `path`. With `except`, the grant is split: `path` itself gets
/// `on_self`, each of its entries other than those in `except` gets `access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathGrant {
    pub path: PathBuf,
    pub access: Vec<String>,
    #[serde(default)]
    pub except: Vec<PathBuf>,
    #[serde(default)]
    pub on_self: Vec<String>,
    /// A path that may not exist (a read-only path the kernel lacks): then it needs no rule.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortGrant {
    pub port: u16,
    pub access: Vec<String>,
}

/// One place in the container's mount tree, as the mounts layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountView {
    pub path: PathBuf,
    pub readonly: bool,
    pub noexec: bool,
    /// A kernel filesystem whose entries come and go (proc, sysfs, cgroup, devpts, mqueue):
    /// never split, since a later entry would have no rule.
    pub dynamic: bool,
}

/// What the policy asks of the mounts layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanInput {
    /// No layer at all (the `runc` policy): only config.json's own section applies.
    pub derive_from_mounts: bool,
    /// Fail if the kernel cannot enforce the mounts layer fully.
    pub required: bool,
    /// Writable places get no `execute`.
    pub no_exec_writable: bool,
    /// Split a broader rule around a narrower mount below it (otherwise the narrower mount
    /// relies on its mount flags, which Landlock keeps from being changed).
    pub split: bool,
    /// Scopes (`abstract_unix_socket`, `signal`), already reduced to those that apply.
    pub scopes: Vec<String>,
    /// TCP ports the container may bind and connect to; None: network not handled.
    pub bind_tcp: Option<Vec<u16>>,
    pub connect_tcp: Option<Vec<u16>>,
    /// The policy's own ruleset (a layer of its own).
    pub policy_layer: Option<ConfigLandlock>,
    /// Processes started with `exec` get the plan too.
    pub on_exec: bool,
}

const DYNAMIC: [&str; 6] = ["proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue"];

/// The places of the mount tree: the rootfs, every mount, every read-only path; a later
/// mount on the same destination replaces an earlier one.
pub fn mount_views(spec: &Spec) -> Vec<MountView> {
    let root_ro = spec.root().as_ref().and_then(|r| r.readonly()) == Some(true);
    let mut views: BTreeMap<PathBuf, MountView> = BTreeMap::new();
    views.insert(
        PathBuf::from("/"),
        MountView {
            path: PathBuf::from("/"),
            readonly: root_ro,
            noexec: false,
            dynamic: false,
        },
    );
    for m in spec.mounts().iter().flatten() {
        let Ok(o) = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default())
        else {
            continue;
        };
        let typ = m.typ().as_deref().unwrap_or("");
        let path = crate::oci::container_path(m.destination());
        let masked = spec
            .linux()
            .as_ref()
            .and_then(|l| l.masked_paths().as_ref())
            .is_some_and(|mp| mp.iter().any(|p| Path::new(p) == path));
        if masked {
            continue;
        }
        views.insert(
            path.clone(),
            MountView {
                path,
                readonly: o.flags.contains(MsFlags::MS_RDONLY),
                noexec: o.flags.contains(MsFlags::MS_NOEXEC),
                dynamic: DYNAMIC.contains(&typ),
            },
        );
    }
    for p in spec
        .linux()
        .as_ref()
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        let path = crate::oci::container_path(Path::new(&p));
        let dynamic = nearest(&views, &path).is_some_and(|v| v.dynamic);
        views.insert(
            path.clone(),
            MountView {
                path,
                readonly: true,
                noexec: false,
                dynamic,
            },
        );
    }
    views.into_values().collect()
}

/// The nearest strict ancestor of `path` among the views.
fn nearest<'a>(views: &'a BTreeMap<PathBuf, MountView>, path: &Path) -> Option<&'a MountView> {
    path.ancestors().skip(1).find_map(|a| views.get(a))
}

const READ: [&str; 3] = ["execute", "read_file", "read_dir"];

fn rights_of(v: &MountView, no_exec_writable: bool) -> Vec<String> {
    let mut r: Vec<String> = if v.readonly {
        READ.iter().map(|s| s.to_string()).collect()
    } else {
        access_names(Kind::Fs, i32::MAX)
    };
    if v.noexec || (no_exec_writable && !v.readonly) {
        r.retain(|n| n != "execute");
    }
    r
}

fn is_subset(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| b.contains(x))
}

fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

/// The mounts layer: every place granted its rights; a place narrower than the rule above
/// it either splits that rule (`split`) or is noted as relying on its mount flags.
fn mounts_layer(views: &[MountView], input: &PlanInput, notes: &mut Vec<String>) -> Layer {
    let map: BTreeMap<PathBuf, MountView> =
        views.iter().map(|v| (v.path.clone(), v.clone())).collect();
    let rights: BTreeMap<PathBuf, Vec<String>> = views
        .iter()
        .map(|v| (v.path.clone(), rights_of(v, input.no_exec_writable)))
        .collect();
    // Directories to split: path -> (access, on_self, except).
    type Split = (Vec<String>, Vec<String>, Vec<PathBuf>);
    let mut splits: BTreeMap<PathBuf, Split> = BTreeMap::new();
    for v in views {
        let Some(parent) = nearest(&map, &v.path) else {
            continue;
        };
        let (mine, above) = (&rights[&v.path], &rights[&parent.path]);
        if is_subset(above, mine) {
            continue;
        }
        if !input.split || parent.dynamic {
            let lacks: Vec<&str> = above
                .iter()
                .filter(|r| !mine.contains(r))
                .map(String::as_str)
                .collect();
            let what = match (lacks.contains(&"write_file"), lacks.contains(&"execute")) {
                (true, true) => "read-only, no exec".to_string(),
                (true, false) => "read-only".to_string(),
                (false, true) if lacks.len() == 1 => "no exec".to_string(),
                _ => format!("lacks {}", lacks.join(",")),
            };
            notes.push(format!(
                "{} ({what}) inside {}'s broader rule: kept by its mount flags, which Landlock forbids changing",
                v.path.display(),
                parent.path.display(),
            ));
            continue;
        }
        // Split every directory from the parent place down to this one.
        let mut child = v.path.clone();
        for dir in v.path.ancestors().skip(1) {
            let entry = splits
                .entry(dir.to_path_buf())
                .or_insert_with(|| (above.clone(), above.clone(), Vec::new()));
            entry.1 = intersect(&entry.1, mine);
            if !entry.2.contains(&child) {
                entry.2.push(child.clone());
            }
            if dir == parent.path {
                break;
            }
            child = dir.to_path_buf();
        }
    }
    let mut paths = Vec::new();
    for v in views {
        if !splits.contains_key(&v.path) {
            paths.push(PathGrant {
                path: v.path.clone(),
                access: rights[&v.path].clone(),
                except: Vec::new(),
                on_self: Vec::new(),
                optional: true,
            });
        }
    }
    for (path, (access, on_self, except)) in splits {
        paths.push(PathGrant {
            path,
            access,
            except,
            on_self,
            optional: true,
        });
    }
    let mut ports = Vec::new();
    let mut net = Vec::new();
    for (name, list) in [
        ("bind_tcp", &input.bind_tcp),
        ("connect_tcp", &input.connect_tcp),
    ] {
        if let Some(list) = list {
            net.push(name.to_string());
            ports.extend(list.iter().map(|p| PortGrant {
                port: *p,
                access: vec![name.to_string()],
            }));
        }
    }
    Layer {
        name: "mounts".into(),
        required: input.required,
        fs: access_names(Kind::Fs, i32::MAX),
        net,
        scopes: input.scopes.clone(),
        paths,
        ports,
    }
}

/// Build the plan for a container: the mounts layer (unless the policy derives none), the
/// policy's layer, config.json's `process.landlock`; then check it against the kernel's
/// ABI `abi`. Errors name the field.
pub fn plan(
    spec: &Spec,
    config: Option<&ConfigLandlock>,
    input: &PlanInput,
    abi: i32,
) -> Result<Plan, LandlockError> {
    let mut notes = Vec::new();
    let mut layers = Vec::new();
    if input.derive_from_mounts {
        layers.push(mounts_layer(&mount_views(spec), input, &mut notes));
    }
    if let Some(p) = &input.policy_layer {
        p.validate("policy landlock")?;
        layers.push(p.layer("policy"));
    }
    if let Some(c) = config {
        c.validate("process.landlock")?;
        layers.push(c.layer("config"));
    }
    let mut plan = Plan {
        abi,
        layers,
        on_exec: input.on_exec,
        notes,
    };
    plan.fit(abi)?;
    Ok(plan)
}

impl Plan {
    /// Drop what the kernel cannot enforce from best-effort layers (noting it); a required
    /// layer that needs more than the kernel has is an error.
    fn fit(&mut self, abi: i32) -> Result<(), LandlockError> {
        for layer in &mut self.layers {
            let missing: Vec<String> = [
                (Kind::Fs, &layer.fs),
                (Kind::Net, &layer.net),
                (Kind::Scope, &layer.scopes),
            ]
            .iter()
            .flat_map(|(k, names)| {
                names
                    .iter()
                    .filter(|n| abi_of(*k, n).is_some_and(|v| v > abi))
                    .map(|n| format!("{n} (ABI {})", abi_of(*k, n).unwrap_or(0)))
                    .collect::<Vec<_>>()
            })
            .collect();
            if missing.is_empty() {
                continue;
            }
            let have = if abi == 0 {
                "this kernel has no Landlock".to_string()
            } else {
                format!("this kernel has Landlock ABI {abi}")
            };
            if layer.required {
                return Err(LandlockError::Unenforceable {
                    layer: layer.name.clone(),
                    have,
                    missing: missing.join(", "),
                });
            }
            self.notes.push(format!(
                "landlock {}: {have}; not enforced: {}",
                layer.name,
                missing.join(", ")
            ));
            let keep = |k: Kind| move |n: &String| abi_of(k, n).is_some_and(|v| v <= abi);
            layer.fs.retain(keep(Kind::Fs));
            layer.net.retain(keep(Kind::Net));
            layer.scopes.retain(keep(Kind::Scope));
        }
        // A layer that handles nothing on this kernel restricts nothing: drop it.
        self.layers
            .retain(|l| !(l.fs.is_empty() && l.net.is_empty() && l.scopes.is_empty()));
        Ok(())
    }

    /// One line for `state`: what holds.
    pub fn describe(&self) -> String {
        if self.layers.is_empty() {
            return if self.abi == 0 {
                "off (this kernel has no Landlock)".into()
            } else {
                "off".into()
            };
        }
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|l| {
                let mut parts = Vec::new();
                if !l.fs.is_empty() {
                    parts.push(format!(
                        "fs {} rights on {} paths",
                        l.fs.len(),
                        l.paths.len()
                    ));
                }
                if !l.net.is_empty() {
                    parts.push(format!("tcp {} ({} ports)", l.net.join("+"), l.ports.len()));
                }
                if !l.scopes.is_empty() {
                    parts.push(format!("scoped {}", l.scopes.join("+")));
                }
                format!(
                    "{}{}: {}",
                    l.name,
                    if l.required { " (required)" } else { "" },
                    parts.join(", ")
                )
            })
            .collect();
        format!(
            "ABI {}; {}{}",
            self.abi,
            layers.join("; "),
            if self.on_exec {
                "; exec'd processes confined alike"
            } else {
                "; exec'd processes confined alike, but may signal the container's processes"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
                {"destination": "/data/in", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]}
            ],
            "linux": {"readonlyPaths": ["/proc/sys"], "maskedPaths": ["/proc/kcore"]}
        })
    }

    fn input() -> PlanInput {
        PlanInput {
            derive_from_mounts: true,
            ..Default::default()
        }
    }

    fn grant<'a>(p: &'a Plan, path: &str) -> &'a PathGrant {
        p.layers[0]
            .paths
            .iter()
            .find(|g| g.path == Path::new(path))
            .unwrap_or_else(|| panic!("no grant for {path}: {:?}", p.layers[0].paths))
    }

    #[test]
    fn readonly_root_grants_read_and_writable_mounts_all() {
        let p = plan(&spec(base()), None, &input(), 7).unwrap();
        assert_eq!(grant(&p, "/").access, ["execute", "read_file", "read_dir"]);
        assert!(grant(&p, "/dev").access.contains(&"write_file".to_string()));
        assert_eq!(grant(&p, "/data/in").access.len(), 3);
        // /proc/sys is narrower than /proc, a dynamic filesystem: noted, not split.
        assert!(
            p.notes.iter().any(|n| n.starts_with("/proc/sys")),
            "{:?}",
            p.notes
        );
        assert!(grant(&p, "/proc").except.is_empty());
        assert!(!p.layers[0]
            .paths
            .iter()
            .any(|g| g.path == Path::new("/proc/kcore")));
    }

    #[test]
    fn split_around_narrower_mount() {
        let mut v = base();
        v["root"]["readonly"] = serde_json::json!(false);
        let mut i = input();
        i.split = true;
        let p = plan(&spec(v), None, &i, 7).unwrap();
        let root = grant(&p, "/");
        assert!(root.except.contains(&PathBuf::from("/sys")));
        assert!(root.except.contains(&PathBuf::from("/data")));
        assert_eq!(root.on_self, ["execute", "read_file", "read_dir"]);
        let data = grant(&p, "/data");
        assert_eq!(data.except, [PathBuf::from("/data/in")]);
        assert_eq!(data.access.len(), 16);
        assert_eq!(grant(&p, "/data/in").access.len(), 3);
    }

    #[test]
    fn no_exec_writable_splits_exec_away() {
        let mut i = input();
        i.split = true;
        i.no_exec_writable = true;
        let p = plan(&spec(base()), None, &i, 7).unwrap();
        assert!(!grant(&p, "/dev").access.contains(&"execute".to_string()));
        let root = grant(&p, "/");
        assert!(root.except.contains(&PathBuf::from("/dev")));
        assert_eq!(root.on_self, ["read_file", "read_dir"]);
    }

    #[test]
    fn old_kernel_best_effort_and_required() {
        let mut i = input();
        i.scopes = vec!["signal".into()];
        let p = plan(&spec(base()), None, &i, 3).unwrap();
        assert!(!p.layers[0].fs.contains(&"ioctl_dev".to_string()));
        assert!(p.layers[0].scopes.is_empty());
        assert!(p.notes.iter().any(|n| n.contains("signal (ABI 6)")));
        i.required = true;
        let e = plan(&spec(base()), None, &i, 3).unwrap_err();
        assert!(
            matches!(&e, LandlockError::Unenforceable { missing, .. } if missing.contains("ioctl_dev")),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("required, but this kernel has Landlock ABI 3"),
            "{e}"
        );
        let none = plan(&spec(base()), None, &input(), 0).unwrap();
        assert!(none.layers.is_empty());
        assert!(none.describe().contains("no Landlock"));
    }

    #[test]
    fn config_section_checked() {
        // The field, and what is wrong with it.
        let bad = |v: serde_json::Value| {
            let c: ConfigLandlock = serde_json::from_value(v).unwrap();
            match plan(&spec(base()), Some(&c), &input(), 7).unwrap_err() {
                LandlockError::Invalid { field, what } => format!("{field}: {what}"),
                e => panic!("not a field's error: {e:?}"),
            }
        };
        let e = bad(serde_json::json!({"ruleset": {"handledAccessFS": ["read_file", "fly"]}}));
        assert!(
            e.starts_with("process.landlock.ruleset.handledAccessFS[1]: unknown right \"fly\""),
            "{e}"
        );
        let e = bad(serde_json::json!({
            "ruleset": {"handledAccessFS": ["read_file"]},
            "rules": {"pathBeneath": [{"allowedAccess": ["write_file"], "paths": ["/tmp"]}]}
        }));
        assert!(e.contains("pathBeneath[0].allowedAccess"), "{e}");
        let e = bad(serde_json::json!({
            "ruleset": {"handledAccessFS": ["read_file"]},
            "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/../../etc"]}]}
        }));
        assert!(e.contains("paths[0]") && e.contains(".."), "{e}");
        let e = bad(serde_json::json!({"ruleset": {}}));
        assert!(e.contains("handles nothing"), "{e}");
        let ok: ConfigLandlock = serde_json::from_value(serde_json::json!({
            "ruleset": {"handledAccessFS": ["execute", "read_file"], "handledAccessNetwork": ["bind_tcp"]},
            "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/etc", "/bin"]}],
                      "netPort": [{"allowedAccess": ["bind_tcp"], "ports": [8080]}]},
            "disableBestEffort": true
        }))
        .unwrap();
        let p = plan(&spec(base()), Some(&ok), &input(), 7).unwrap();
        let l = &p.layers[1];
        assert!(l.required && l.paths.len() == 2 && l.ports[0].port == 8080);
    }
}
