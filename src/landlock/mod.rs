//! Landlock: the rulesets a container's processes run under.
//!
//! A [`Plan`] is a stack of layers (each one Landlock ruleset; an access must pass all of
//! them). It is built in the runtime from config.json and the policy (pure, no syscalls:
//! [`plan`]), checked against the running kernel's ABI before anything is created
//! ([`Plan::check`]), kept in the state so that `exec` applies the same, and applied by the
//! container's processes after the rootfs is final and before they drop privileges
//! ([`apply`]).
//!
//! The layers:
//! * `mounts`: derived from the mounts (each mount point and the rootfs granted what its
//!   flags allow: read-only, no exec), plus the policy's network ports and scopes;
//! * `policy`: the policy's own `landlock.ruleset` and `rules`, when it has them;
//! * `config`: `process.landlock` of config.json (runtime-spec PRs 1111/1241), as written.

mod model;
mod plan;

pub use model::{access_names, ConfigLandlock, Kind, PathRule, RulesSpec, RulesetSpec};
pub use plan::{plan, Layer, MountView, PathGrant, Plan, PlanInput, PortGrant};

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

/// What can go wrong with a container's rulesets, from checking them to applying them.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// A ruleset (config.json's `process.landlock`, a policy's) that is not valid: the field,
    /// and what is wrong with it.
    #[error("{field}: {what}")]
    Invalid { field: String, what: String },
    /// A layer that must be enforced asks for rights this kernel's ABI lacks.
    #[error("landlock {layer}: required, but {have} and cannot enforce {missing}")]
    Unenforceable {
        layer: String,
        have: String,
        missing: String,
    },
    /// A layer that must be enforced that the kernel enforced only in part.
    #[error("landlock {layer}: required but only {status} by this kernel")]
    PartlyEnforced { layer: String, status: String },
    /// A rule's path could not be opened (or, `listing`, its directory listed) in the
    /// container.
    #[error("landlock {layer}: {}{}: {source}", if *.listing { "list " } else { "" }, .path.display())]
    Path {
        layer: String,
        path: PathBuf,
        listing: bool,
        source: std::io::Error,
    },
    /// The kernel (or the landlock crate) refused the ruleset.
    #[error("landlock {layer}: {source}")]
    Ruleset {
        layer: String,
        source: landlock::RulesetError,
    },
}

/// The Landlock ABI version of the running kernel (0: no Landlock).
pub fn kernel_abi() -> i32 {
    crate::sys::landlock_abi()
}

fn abi_of(v: i32) -> ABI {
    ABI::from(v)
}

fn fs_bits(names: &[String]) -> BitFlags<AccessFs> {
    let mut b = BitFlags::empty();
    for n in names {
        b |= match n.as_str() {
            "execute" => AccessFs::Execute,
            "write_file" => AccessFs::WriteFile,
            "read_file" => AccessFs::ReadFile,
            "read_dir" => AccessFs::ReadDir,
            "remove_dir" => AccessFs::RemoveDir,
            "remove_file" => AccessFs::RemoveFile,
            "make_char" => AccessFs::MakeChar,
            "make_dir" => AccessFs::MakeDir,
            "make_reg" => AccessFs::MakeReg,
            "make_sock" => AccessFs::MakeSock,
            "make_fifo" => AccessFs::MakeFifo,
            "make_block" => AccessFs::MakeBlock,
            "make_sym" => AccessFs::MakeSym,
            "refer" => AccessFs::Refer,
            "truncate" => AccessFs::Truncate,
            "ioctl_dev" => AccessFs::IoctlDev,
            _ => continue,
        };
    }
    b
}

fn net_bits(names: &[String]) -> BitFlags<AccessNet> {
    let mut b = BitFlags::empty();
    for n in names {
        b |= match n.as_str() {
            "bind_tcp" => AccessNet::BindTcp,
            "connect_tcp" => AccessNet::ConnectTcp,
            _ => continue,
        };
    }
    b
}

fn scope_bits(names: &[String]) -> BitFlags<Scope> {
    let mut b = BitFlags::empty();
    for n in names {
        b |= match n.as_str() {
            "abstract_unix_socket" => Scope::AbstractUnixSocket,
            "signal" => Scope::Signal,
            _ => continue,
        };
    }
    b
}

/// Open a rule's path inside the container (after the root switch, so "/" is its root).
fn open_rule_path(layer: &str, path: &Path) -> Result<OwnedFd, LandlockError> {
    crate::sys::fs::open_host(path, libc::O_PATH).map_err(|source| LandlockError::Path {
        layer: layer.into(),
        path: path.into(),
        listing: false,
        source,
    })
}

fn is_dir(fd: &OwnedFd) -> bool {
    crate::sys::fs::fstat(fd.as_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Apply every layer of the plan to the calling process (in the container, after the root
/// switch; before dropping capabilities when no_new_privs is not set, which Landlock then
/// needs CAP_SYS_ADMIN for). Returns how each layer was enforced, for the log.
pub fn apply(plan: &Plan) -> Result<Vec<String>, LandlockError> {
    let abi = abi_of(plan.abi);
    let mut out = Vec::new();
    for layer in &plan.layers {
        let status = apply_layer(layer, abi)?;
        out.push(format!("{}: {status:?}", layer.name));
        if layer.required && status != RulesetStatus::FullyEnforced {
            return Err(LandlockError::PartlyEnforced {
                layer: layer.name.clone(),
                status: format!("{status:?}"),
            });
        }
    }
    Ok(out)
}

fn apply_layer(layer: &Layer, abi: ABI) -> Result<RulesetStatus, LandlockError> {
    let level = if layer.required {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let handled_fs = fs_bits(&layer.fs) & AccessFs::from_all(abi);
    let handled_net = net_bits(&layer.net) & AccessNet::from_all(abi);
    let scopes = scope_bits(&layer.scopes) & Scope::from_all(abi);
    let e = |source: landlock::RulesetError| LandlockError::Ruleset {
        layer: layer.name.clone(),
        source,
    };
    let mut rs = Ruleset::default().set_compatibility(level);
    if !handled_fs.is_empty() {
        rs = rs.handle_access(handled_fs).map_err(e)?;
    }
    if !handled_net.is_empty() {
        rs = rs.handle_access(handled_net).map_err(e)?;
    }
    if !scopes.is_empty() {
        rs = rs.scope(scopes).map_err(e)?;
    }
    let mut rules: Vec<(OwnedFd, BitFlags<AccessFs>)> = Vec::new();
    for g in &layer.paths {
        let access = fs_bits(&g.access);
        if g.optional && std::fs::symlink_metadata(&g.path).is_err() {
            continue;
        }
        if g.except.is_empty() {
            rules.push((open_rule_path(&layer.name, &g.path)?, access));
            continue;
        }
        // Split around narrower mounts below: the directory itself gets only `on_self`,
        // every entry of it that does not lead to one of them gets `access`.
        rules.push((open_rule_path(&layer.name, &g.path)?, fs_bits(&g.on_self)));
        let listing = |source| LandlockError::Path {
            layer: layer.name.clone(),
            path: g.path.clone(),
            listing: true,
            source,
        };
        let entries = std::fs::read_dir(&g.path).map_err(listing)?;
        for entry in entries {
            let entry = entry.map_err(listing)?;
            let child = g.path.join(entry.file_name());
            // A symlink is never where a path walk ends: its target has rules of its own.
            let link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if !link && !g.except.contains(&child) {
                rules.push((open_rule_path(&layer.name, &child)?, access));
            }
        }
    }
    let mut created = rs.create().map_err(e)?.no_new_privs(false);
    let file_rights = AccessFs::from_file(abi);
    for (fd, access) in rules {
        // A rule on a file may only name file rights.
        let access = access & handled_fs;
        let access = if is_dir(&fd) {
            access
        } else {
            access & file_rights
        };
        if !access.is_empty() {
            created = created.add_rule(PathBeneath::new(fd, access)).map_err(e)?;
        }
    }
    for p in &layer.ports {
        let access = net_bits(&p.access) & handled_net;
        if !access.is_empty() {
            created = created.add_rule(NetPort::new(p.port, access)).map_err(e)?;
        }
    }
    let status = created.restrict_self().map_err(e)?;
    Ok(status.ruleset)
}
