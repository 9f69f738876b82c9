//! The `linux.seccomp` section of config.json, as contain reads it: the OCI fields, plus the
//! template fields of Docker's and podman's profile files (`archMap`, per-rule `includes` /
//! `excludes`, `comment`). Any other field is refused: a seccomp field that is silently
//! ignored is a filter that is silently wider than its author meant (runc ignores the template
//! fields and so allows every conditional rule of a template).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SeccompError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionName {
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: ActionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Template only (podman): the symbolic name of `defaultErrnoRet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Template only: the architectures to list, per native architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<Vec<Rule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: ActionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Template only (podman): the symbolic name of `errnoRet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Arg>>,
    /// Template only: the rule applies when all of these hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Condition>,
    /// Template only: the rule is dropped when any of these holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

impl Condition {
    fn is_empty(&self) -> bool {
        self.caps.as_deref().unwrap_or_default().is_empty()
            && self.arches.as_deref().unwrap_or_default().is_empty()
            && self.min_kernel.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_two: Option<u64>,
    pub op: Op,
}

/// What a template is resolved against.
#[derive(Clone, Debug)]
pub struct Target {
    /// Go's name of the native architecture, as templates use it ("amd64").
    pub arch: &'static str,
    /// The capabilities the process can ever hold (its bounding set).
    pub caps: Vec<String>,
    /// The running kernel's (major, minor).
    pub kernel: (u32, u32),
}

impl Target {
    /// This host, for a process whose bounding set is `caps`.
    pub fn host(caps: Vec<String>) -> Target {
        Target {
            arch: "amd64",
            caps,
            kernel: running_kernel(),
        }
    }
}

fn running_kernel() -> (u32, u32) {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| parse_kernel(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

/// "6.18.0-1-amd64" -> (6, 18).
pub fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The native architecture of a template's archMap entry for `arch` ("amd64").
fn native_token(arch: &str) -> Option<&'static str> {
    match arch {
        "amd64" => Some("SCMP_ARCH_X86_64"),
        _ => None,
    }
}

impl Profile {
    /// Parse a profile file's text.
    pub fn from_slice(data: &[u8]) -> Result<Profile, SeccompError> {
        serde_json::from_slice(data).map_err(|e| SeccompError::Invalid(e.to_string()))
    }

    /// Whether this is a Docker/podman template (it has fields only templates have).
    pub fn is_template(&self) -> bool {
        self.arch_map.is_some()
            || self.default_errno.is_some()
            || self.syscalls.iter().flatten().any(|r| {
                r.includes.as_ref().is_some_and(|c| !c.is_empty())
                    || r.excludes.as_ref().is_some_and(|c| !c.is_empty())
                    || r.errno.is_some()
            })
    }

    /// Resolve a template the way Docker and podman do before they write config.json: keep
    /// the rules whose `includes` all hold and none of whose `excludes` does, and list the
    /// architectures of `archMap`'s entry for the native one. A profile that is not a
    /// template comes back unchanged.
    pub fn resolve(&self, t: &Target) -> Result<Profile, SeccompError> {
        let mut out = self.clone();
        out.default_errno_ret = errno_of(
            "defaultErrno",
            out.default_errno.take().as_deref(),
            out.default_errno_ret,
        )?;
        if let Some(map) = out.arch_map.take() {
            if out.architectures.is_some() {
                return Err(SeccompError::Invalid(
                    "both architectures and archMap are set".into(),
                ));
            }
            let native = native_token(t.arch);
            if let Some(m) = map.iter().find(|m| Some(m.architecture.as_str()) == native) {
                let mut arches = vec![m.architecture.clone()];
                arches.extend(m.sub_architectures.iter().flatten().cloned());
                out.architectures = Some(arches);
            }
        }
        let kernel_at_least = |v: &str| -> Result<bool, SeccompError> {
            let want = parse_kernel(v).ok_or_else(|| {
                SeccompError::Invalid(format!("minKernel {v:?} is not a kernel version"))
            })?;
            Ok(t.kernel >= want)
        };
        let mut kept = Vec::new();
        for r in self.syscalls.iter().flatten() {
            let inc = r.includes.clone().unwrap_or_default();
            let exc = r.excludes.clone().unwrap_or_default();
            let has = |c: &String| t.caps.iter().any(|x| x == c);
            let excluded = exc.arches.iter().flatten().any(|a| a == t.arch)
                || exc.caps.iter().flatten().any(has)
                || match &exc.min_kernel {
                    Some(v) => kernel_at_least(v)?,
                    None => false,
                };
            let included = inc
                .arches
                .as_ref()
                .is_none_or(|a| a.is_empty() || a.iter().any(|a| a == t.arch))
                && inc.caps.iter().flatten().all(has)
                && match &inc.min_kernel {
                    Some(v) => kernel_at_least(v)?,
                    None => true,
                };
            if included && !excluded {
                let mut r = r.clone();
                r.includes = None;
                r.excludes = None;
                r.errno_ret = errno_of("errno", r.errno.take().as_deref(), r.errno_ret)?;
                kept.push(r);
            }
        }
        out.syscalls = Some(kept);
        Ok(out)
    }
}

/// A template's symbolic errno merged with its number; they must agree when both are given.
fn errno_of(
    field: &str,
    name: Option<&str>,
    number: Option<u32>,
) -> Result<Option<u32>, SeccompError> {
    let Some(name) = name else { return Ok(number) };
    let n = match name {
        "EPERM" => libc::EPERM,
        "ENOENT" => libc::ENOENT,
        "EACCES" => libc::EACCES,
        "EINVAL" => libc::EINVAL,
        "ENOSYS" => libc::ENOSYS,
        "EOPNOTSUPP" | "ENOTSUP" => libc::EOPNOTSUPP,
        "EAFNOSUPPORT" => libc::EAFNOSUPPORT,
        _ if number.is_some() => return Ok(number),
        other => {
            return Err(SeccompError::Invalid(format!(
                "{field} {other:?} is not an errno name contain knows; give errnoRet"
            )))
        }
    } as u32;
    match number {
        Some(x) if x != n => Err(SeccompError::Invalid(format!(
            "{field} {name:?} is {n}, but errnoRet says {x}"
        ))),
        _ => Ok(Some(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[&str], kernel: (u32, u32)) -> Target {
        Target {
            arch: "amd64",
            caps: caps.iter().map(|s| s.to_string()).collect(),
            kernel,
        }
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        let bad = [
            r#"{"defaultAction":"SCMP_ACT_ALLOW","bogus":1}"#,
            r#"{"defaultAction":"SCMP_ACT_FOO"}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_BAD"}]}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"whatever":1}}]}"#,
        ];
        for b in bad {
            assert!(Profile::from_slice(b.as_bytes()).is_err(), "{b}");
        }
    }

    #[test]
    fn templates_resolve_by_caps_arch_and_kernel() {
        let p = Profile::from_slice(
            br#"{"defaultAction":"SCMP_ACT_ERRNO",
                "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},
                           {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
                "syscalls":[
                  {"names":["read"],"action":"SCMP_ACT_ALLOW"},
                  {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                  {"names":["clone"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_SYS_ADMIN"]}},
                  {"names":["arch_prctl"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64","x32"]}},
                  {"names":["sync_file_range2"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["ppc64le"]}},
                  {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
                  {"names":["old"],"action":"SCMP_ACT_ALLOW","excludes":{"minKernel":"5.0"}}
                ]}"#,
        )
        .unwrap();
        assert!(p.is_template());
        let names = |p: &Profile| -> Vec<String> {
            p.syscalls
                .iter()
                .flatten()
                .map(|r| r.names[0].clone())
                .collect()
        };
        let r = p.resolve(&target(&[], (6, 18))).unwrap();
        assert!(!r.is_template());
        assert_eq!(
            r.architectures.as_deref().unwrap(),
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        assert_eq!(names(&r), ["read", "clone", "arch_prctl", "ptrace"]);
        let r = p.resolve(&target(&["CAP_SYS_ADMIN"], (4, 4))).unwrap();
        assert_eq!(names(&r), ["read", "mount", "arch_prctl", "old"]);
        assert_eq!(parse_kernel("6.18.0-1-amd64"), Some((6, 18)));
    }
}
