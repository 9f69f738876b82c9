//! Loading a bundle: read config.json into the oci-spec types, then validate it completely
//! (pure, no I/O) before anything is created.

pub mod defaults;
mod unset;
mod validate;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::landlock::ConfigLandlock;
use crate::seccomp::Profile;
use thiserror::Error;

pub use unset::drop_unset;
pub use validate::{
    allowed_in_proc, lexical, memory_policy, sysctl_namespace, uts_name_set, validate, validate_id,
};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: malformed JSON at line {line} column {column}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("invalid config: {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("rootfs {path} does not exist or is not a directory")]
    MissingRootfs { path: PathBuf },
    #[error("invalid container id {id:?}: {reason}")]
    BadId { id: String, reason: &'static str },
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Largest config.json accepted (runc has no limit; 16 MiB is far above any real one).
const MAX_CONFIG: u64 = 16 << 20;

/// A bundle whose config has been parsed and validated.
#[derive(Debug)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    pub spec: Spec,
    /// Absolute path of the rootfs.
    pub rootfs: PathBuf,
    /// `linux.seccomp` in contain's own model (which also reads Docker's template fields).
    pub seccomp: Option<Profile>,
    /// `process.landlock` (proposed for the runtime spec; oci-spec does not model it).
    pub landlock: Option<ConfigLandlock>,
}

/// What config.json holds beyond oci-spec's model.
#[derive(Debug, Default)]
pub struct Extra {
    pub seccomp: Option<Profile>,
    pub landlock: Option<ConfigLandlock>,
}

/// Parse config.json text (pure; the fuzz target's entry point).
pub fn parse_config(path: &Path, data: &[u8]) -> Result<Spec, ConfigError> {
    serde_json::from_slice(data).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })
}

/// Parse and validate config.json text: everything `create` checks before touching the
/// filesystem (pure; the fuzz target's entry point). Values of `linux.resources` that mean
/// "not set" are dropped (see [`drop_unset`]).
pub fn parse_and_validate(path: &Path, data: &[u8]) -> Result<(Spec, Extra), ConfigError> {
    let mut spec = parse_config(path, data)?;
    absolute_masked_paths(&mut spec);
    validate(&spec)?;
    if let Some(res) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    {
        drop_unset(res);
    }
    let extra = extra_sections(data)?;
    if let Some(l) = &extra.landlock {
        l.validate("process.landlock")
            .map_err(|e| invalid("process.landlock", e.to_string()))?;
    }
    Ok((spec, extra))
}

/// Relative maskedPaths and readonlyPaths are the rootfs's, as runc resolves them (from the
/// container's `/`): written absolute, so that every check and the audit see one form.
fn absolute_masked_paths(spec: &mut Spec) {
    let Some(linux) = spec.linux_mut().as_mut() else {
        return;
    };
    let fix = |v: &mut Option<Vec<String>>| {
        for p in v.iter_mut().flatten() {
            if !p.starts_with('/') && !p.is_empty() {
                *p = format!("/{p}");
            }
        }
    };
    let mut masked = linux.masked_paths().clone();
    fix(&mut masked);
    linux.set_masked_paths(masked);
    let mut ro = linux.readonly_paths().clone();
    fix(&mut ro);
    linux.set_readonly_paths(ro);
}

/// Where `root.path` of a bundle in `dir` points (relative paths are the bundle's).
pub fn rootfs_path(dir: &Path, root: &oci_spec::runtime::Root) -> PathBuf {
    if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    }
}

/// A path of config.json as the container sees it: absolute, with `.` and `..` dropped
/// (compared lexically, never resolved).
pub fn container_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        if let std::path::Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// Read, parse and validate `<dir>/config.json`, and check that the rootfs exists.
pub fn load_bundle(dir: &Path) -> Result<Bundle, ConfigError> {
    let dir = std::path::absolute(dir).map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("config.json");
    let read_err = |source| ConfigError::Read {
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(&path).map_err(read_err)?;
    if meta.len() > MAX_CONFIG {
        return Err(invalid(
            "config.json",
            format!(
                "{} bytes is larger than the {} bytes accepted",
                meta.len(),
                MAX_CONFIG
            ),
        ));
    }
    let data = std::fs::read(&path).map_err(read_err)?;
    let (spec, extra) = parse_and_validate(&path, &data)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let rootfs = rootfs_path(&dir, root);
    if !rootfs.is_dir() {
        return Err(ConfigError::MissingRootfs { path: rootfs });
    }
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        seccomp: extra.seccomp,
        landlock: extra.landlock,
    })
}

/// `linux.seccomp` and `process.landlock` of config.json text already known to parse.
pub fn extra_sections(data: &[u8]) -> Result<Extra, ConfigError> {
    // Each section is built on its own (serde skips the rest of the document), so that an
    // error names its section.
    #[derive(serde::Deserialize)]
    struct SeccompDoc {
        #[serde(default)]
        linux: Option<SeccompLinux>,
    }
    #[derive(serde::Deserialize)]
    struct SeccompLinux {
        #[serde(default)]
        seccomp: Option<Profile>,
    }
    #[derive(serde::Deserialize)]
    struct LandlockDoc {
        #[serde(default)]
        process: Option<LandlockProcess>,
    }
    #[derive(serde::Deserialize)]
    struct LandlockProcess {
        #[serde(default)]
        landlock: Option<ConfigLandlock>,
    }
    let seccomp = serde_json::from_slice::<SeccompDoc>(data)
        .map(|c| c.linux.and_then(|l| l.seccomp))
        .map_err(|e| invalid("linux.seccomp", e.to_string()))?;
    let landlock = serde_json::from_slice::<LandlockDoc>(data)
        .map(|c| c.process.and_then(|p| p.landlock))
        .map_err(|e| invalid("process.landlock", e.to_string()))?;
    Ok(Extra { seccomp, landlock })
}
