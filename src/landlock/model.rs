//! `process.landlock` of config.json, as proposed for the runtime spec (opencontainers/
//! runtime-spec PRs 1111 and 1241), and the access names by Landlock ABI version.
//!
//! Where the proposal is silent or ambiguous, contain decides (SECURITY.md lists these):
//! * names are the kernel's without the `LANDLOCK_ACCESS_FS_` prefix, lower case
//!   (`read_file`); the proposal's examples use exactly these;
//! * an `allowedAccess` right that the ruleset does not handle is an error (the kernel
//!   refuses such a rule with EINVAL; the proposal does not say);
//! * `handledAccessNetwork`, `scoped` and `rules.netPort` are contain's extensions for ABI 4
//!   and 6, named the same way (`bind_tcp`, `abstract_unix_socket`);
//! * `disableBestEffort: true` makes every right of the section required: a kernel that lacks
//!   one fails the create (best effort silently drops it otherwise, and `state` says so);
//! * the section is applied as a ruleset of its own, on top of the one contain derives from
//!   the mounts: it can only take rights away.

use std::path::{Component, PathBuf};

use serde::{Deserialize, Serialize};

use super::LandlockError;

/// What a right restricts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fs,
    Net,
    Scope,
}

/// Every right contain knows, with the ABI version that introduced it.
pub(crate) const RIGHTS: [(Kind, &str, i32); 20] = [
    (Kind::Fs, "execute", 1),
    (Kind::Fs, "write_file", 1),
    (Kind::Fs, "read_file", 1),
    (Kind::Fs, "read_dir", 1),
    (Kind::Fs, "remove_dir", 1),
    (Kind::Fs, "remove_file", 1),
    (Kind::Fs, "make_char", 1),
    (Kind::Fs, "make_dir", 1),
    (Kind::Fs, "make_reg", 1),
    (Kind::Fs, "make_sock", 1),
    (Kind::Fs, "make_fifo", 1),
    (Kind::Fs, "make_block", 1),
    (Kind::Fs, "make_sym", 1),
    (Kind::Fs, "refer", 2),
    (Kind::Fs, "truncate", 3),
    (Kind::Fs, "ioctl_dev", 5),
    (Kind::Net, "bind_tcp", 4),
    (Kind::Net, "connect_tcp", 4),
    (Kind::Scope, "abstract_unix_socket", 6),
    (Kind::Scope, "signal", 6),
];

/// The names of one kind of right that an ABI version (or any, with `i32::MAX`) knows.
pub fn access_names(kind: Kind, abi: i32) -> Vec<String> {
    RIGHTS
        .iter()
        .filter(|(k, _, v)| *k == kind && *v <= abi)
        .map(|(_, n, _)| n.to_string())
        .collect()
}

/// The ABI version a right needs; None for an unknown name.
pub(crate) fn abi_of(kind: Kind, name: &str) -> Option<i32> {
    RIGHTS
        .iter()
        .find(|(k, n, _)| *k == kind && *n == name)
        .map(|(_, _, v)| *v)
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigLandlock {
    #[serde(default)]
    pub ruleset: Option<RulesetSpec>,
    #[serde(default)]
    pub rules: Option<RulesSpec>,
    #[serde(default)]
    pub disable_best_effort: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RulesetSpec {
    #[serde(default, rename = "handledAccessFS")]
    pub handled_access_fs: Vec<String>,
    #[serde(default)]
    pub handled_access_network: Vec<String>,
    #[serde(default)]
    pub scoped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RulesSpec {
    #[serde(default)]
    pub path_beneath: Vec<PathRule>,
    #[serde(default)]
    pub net_port: Vec<NetRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathRule {
    #[serde(default)]
    pub allowed_access: Vec<String>,
    #[serde(default)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetRule {
    #[serde(default)]
    pub allowed_access: Vec<String>,
    #[serde(default)]
    pub ports: Vec<u64>,
}

fn invalid(field: impl Into<String>, what: impl Into<String>) -> LandlockError {
    LandlockError::Invalid {
        field: field.into(),
        what: what.into(),
    }
}

fn check_names(field: &str, kind: Kind, names: &[String]) -> Result<(), LandlockError> {
    for (i, n) in names.iter().enumerate() {
        if abi_of(kind, n).is_none() {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!(
                    "unknown right {n:?} (known: {})",
                    access_names(kind, i32::MAX).join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn check_subset(field: &str, allowed: &[String], handled: &[String]) -> Result<(), LandlockError> {
    match allowed.iter().find(|a| !handled.contains(a)) {
        Some(a) => Err(invalid(
            field,
            format!("{a:?} is not in the ruleset's handled rights, so a rule cannot allow it"),
        )),
        None => Ok(()),
    }
}

/// A rule path: absolute, and without `..` (it is resolved inside the container's root,
/// where `..` could only be a way to name something else than what it says).
fn check_rule_path(field: &str, p: &std::path::Path) -> Result<(), LandlockError> {
    if !p.is_absolute() {
        return Err(invalid(
            field,
            format!(
                "{} is not an absolute path inside the container",
                p.display()
            ),
        ));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(
            field,
            format!(
                "{} contains \"..\": rule paths name a place inside the rootfs and may not climb out of it",
                p.display()
            ),
        ));
    }
    Ok(())
}

impl ConfigLandlock {
    /// Check names, subsets, paths and ports; `field` prefixes the errors
    /// (`process.landlock`).
    pub fn validate(&self, field: &str) -> Result<(), LandlockError> {
        let rs = self.ruleset.clone().unwrap_or_default();
        check_names(
            &format!("{field}.ruleset.handledAccessFS"),
            Kind::Fs,
            &rs.handled_access_fs,
        )?;
        check_names(
            &format!("{field}.ruleset.handledAccessNetwork"),
            Kind::Net,
            &rs.handled_access_network,
        )?;
        check_names(&format!("{field}.ruleset.scoped"), Kind::Scope, &rs.scoped)?;
        let rules = self.rules.clone().unwrap_or_default();
        for (i, r) in rules.path_beneath.iter().enumerate() {
            let f = format!("{field}.rules.pathBeneath[{i}]");
            check_names(&format!("{f}.allowedAccess"), Kind::Fs, &r.allowed_access)?;
            check_subset(
                &format!("{f}.allowedAccess"),
                &r.allowed_access,
                &rs.handled_access_fs,
            )?;
            if r.paths.is_empty() {
                return Err(invalid(format!("{f}.paths"), "empty"));
            }
            for (j, p) in r.paths.iter().enumerate() {
                check_rule_path(&format!("{f}.paths[{j}]"), p)?;
            }
        }
        for (i, r) in rules.net_port.iter().enumerate() {
            let f = format!("{field}.rules.netPort[{i}]");
            check_names(&format!("{f}.allowedAccess"), Kind::Net, &r.allowed_access)?;
            check_subset(
                &format!("{f}.allowedAccess"),
                &r.allowed_access,
                &rs.handled_access_network,
            )?;
            if let Some(p) = r.ports.iter().find(|p| **p > u64::from(u16::MAX)) {
                return Err(invalid(
                    format!("{f}.ports"),
                    format!("{p} is not a TCP port"),
                ));
            }
        }
        if rs.handled_access_fs.is_empty()
            && rs.handled_access_network.is_empty()
            && rs.scoped.is_empty()
        {
            return Err(invalid(
                format!("{field}.ruleset"),
                "handles nothing, so it would restrict nothing (name at least one right in handledAccessFS, handledAccessNetwork or scoped)",
            ));
        }
        Ok(())
    }

    /// This section as one layer of the plan (validated first).
    pub fn layer(&self, name: &str) -> super::Layer {
        let rs = self.ruleset.clone().unwrap_or_default();
        let rules = self.rules.clone().unwrap_or_default();
        let mut paths = Vec::new();
        for r in &rules.path_beneath {
            for p in &r.paths {
                paths.push(super::PathGrant {
                    path: p.clone(),
                    access: r.allowed_access.clone(),
                    except: Vec::new(),
                    on_self: Vec::new(),
                    optional: false,
                });
            }
        }
        let mut ports = Vec::new();
        for r in &rules.net_port {
            for p in &r.ports {
                ports.push(super::PortGrant {
                    port: u16::try_from(*p).unwrap_or(0),
                    access: r.allowed_access.clone(),
                });
            }
        }
        super::Layer {
            name: name.into(),
            required: self.disable_best_effort.unwrap_or(false),
            fs: rs.handled_access_fs,
            net: rs.handled_access_network,
            scopes: rs.scoped,
            paths,
            ports,
        }
    }
}
