//! The operator's configuration: which policy applies when the command line names none, and
//! the floor below which a bundle's annotations may not take a container. Annotations come
//! from whoever writes the bundle (podman `--annotation`, Kubernetes pod annotations, image
//! labels): they may make a container stricter than the floor, never weaker, unless the
//! operator allows that one annotation by name.
//!
//! The file is `/etc/contain/config.json`, or the path in `CONTAIN_CONFIG` (the runtime's
//! environment is the operator's or the engine's, never a bundle's). A missing file means the
//! defaults: the `default` policy, floor `default`, nothing allowed.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::PolicyError;

/// The default location of the operator's configuration.
pub const CONFIG_PATH: &str = "/etc/contain/config.json";

/// The built-in policies from the weakest to the strictest.
const RANKS: [&str; 3] = ["runc", "default", "strict"];

/// The operator's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operator {
    /// The policy (a built-in name or the path of a policy file) when neither `--policy` nor
    /// `CONTAIN_POLICY` names one.
    #[serde(default)]
    pub policy: Option<String>,
    /// The weakest built-in policy (`runc`, `default`, `strict`) that a bundle's annotation
    /// `io.contain.policy` may choose; `default` when unset.
    #[serde(default)]
    pub floor: Option<String>,
    /// Weakening annotations that bundles may use anyway, as `KEY=VALUE`
    /// (`io.contain.userns=host`, `io.contain.policy=runc`).
    #[serde(default)]
    pub allow_annotations: Vec<String>,
    /// Where it was read from (None: no file, the defaults).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl Operator {
    /// Read the operator's configuration (see the module's documentation).
    pub fn load() -> Result<Operator, PolicyError> {
        let path = std::env::var_os("CONTAIN_CONFIG")
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(CONFIG_PATH), PathBuf::from);
        match std::fs::read(&path) {
            Ok(data) => Operator::parse(&path, &data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Operator::default()),
            Err(source) => Err(PolicyError::Read { path, source }),
        }
    }

    /// Parse and check the file's text (pure).
    pub fn parse(path: &Path, data: &[u8]) -> Result<Operator, PolicyError> {
        let bad = |msg: String| PolicyError::Malformed {
            name: format!("operator configuration {}", path.display()),
            msg,
        };
        let mut o: Operator = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
        if let Some(f) = &o.floor {
            if rank(f).is_none() {
                return Err(bad(format!(
                    "floor {f:?}: the floor is a built-in policy (runc, default, strict)"
                )));
            }
        }
        for a in &o.allow_annotations {
            if !a.contains('=') {
                return Err(bad(format!("allowAnnotations: {a:?} is not KEY=VALUE")));
            }
        }
        o.path = Some(path.to_path_buf());
        Ok(o)
    }

    /// The floor's name.
    pub fn floor(&self) -> &str {
        self.floor.as_deref().unwrap_or("default")
    }

    /// Whether the operator lets bundles use annotation `key` with `value`.
    pub fn allows(&self, key: &str, value: &str) -> bool {
        self.allow_annotations
            .iter()
            .any(|a| a.split_once('=') == Some((key, value)))
    }

    /// Whether a bundle's annotation may choose built-in policy `name`: at least as strict as
    /// the floor, or allowed by name.
    pub fn admits(&self, name: &str) -> bool {
        let floor = rank(self.floor()).unwrap_or(1);
        rank(name).is_some_and(|r| r >= floor) || self.allows(super::ANNOTATION, name)
    }

    /// How the configuration is named in messages and in `state`.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("the operator's configuration {}", p.display()),
            None => format!("no operator configuration ({CONFIG_PATH} absent): the defaults"),
        }
    }
}

fn rank(name: &str) -> Option<usize> {
    RANKS.iter().position(|r| *r == name)
}

/// Who chose a container's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChosenBy {
    /// `--policy` or `CONTAIN_POLICY`: whoever runs the runtime.
    Flag,
    /// The bundle's annotation io.contain.policy, admitted by the floor.
    Annotation,
    /// The operator's configuration file.
    Operator(PathBuf),
    /// Nobody: the built-in default.
    Default,
}

impl std::fmt::Display for ChosenBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChosenBy::Flag => write!(f, "the --policy flag (or CONTAIN_POLICY)"),
            ChosenBy::Annotation => write!(f, "the bundle's annotation {}", super::ANNOTATION),
            ChosenBy::Operator(p) => write!(f, "the operator's configuration {}", p.display()),
            ChosenBy::Default => write!(f, "the built-in default"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_and_allowances() {
        let none = Operator::default();
        assert_eq!(none.floor(), "default");
        assert!(none.admits("strict") && none.admits("default") && !none.admits("runc"));
        assert!(!none.admits("/etc/some.json"));
        let o = Operator::parse(
            Path::new("/c.json"),
            br#"{"policy": "strict", "floor": "strict", "allowAnnotations": ["io.contain.policy=runc", "io.contain.userns=host"]}"#,
        )
        .unwrap();
        assert!(o.admits("strict") && !o.admits("default") && o.admits("runc"));
        assert!(o.allows("io.contain.userns", "host") && !o.allows("io.contain.userns", "x"));
        assert_eq!(o.policy.as_deref(), Some("strict"));
        for bad in [
            r#"{"floor": "lenient"}"#,
            r#"{"allowAnnotations": ["io.contain.userns"]}"#,
            r#"{"unknown": 1}"#,
            "{",
        ] {
            let e = Operator::parse(Path::new("/c.json"), bad.as_bytes()).unwrap_err();
            assert!(
                e.to_string().contains("operator configuration /c.json"),
                "{e}"
            );
        }
    }
}
