//! `audit`: what a bundle and its policy leave open (src/audit), or what this host can enforce.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::audit::{self, Format, Severity};
use crate::container::Store;
use crate::policy;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Report, before anything runs, which layers a bundle and its policy leave open: the \
policy is applied and the seccomp filters and Landlock rulesets are built exactly as `create` \
would on this host, then every rule of the catalogue is checked (user namespace, capabilities, \
namespaces, seccomp with argument-level checks, Landlock, privileges, mounts, devices, \
resources, sysctls, hooks). Findings carry a stable id, a severity, a remediation and the Pod \
Security Standards level they fail. The policy is chosen as create chooses it: the global \
--policy, else the config's annotation io.contain.policy (not below the operator's floor), \
else the operator's configuration (/etc/contain/config.json), else `default`.",
    after_help = "Exit status: 0, or 1 when a finding is at least --fail-on; 2 for usage or input errors (malformed config or policy, missing bundle)."
)]
pub struct AuditArgs {
    /// Audit this running container instead: what the kernel applied to its init (/proc)
    #[arg(value_name = "CONTAINER_ID", conflicts_with_all = ["bundle", "config", "host"])]
    id: Option<String>,
    /// Bundle directory whose config.json is audited
    #[arg(short = 'b', long, value_name = "DIR", conflicts_with_all = ["config", "host"])]
    bundle: Option<PathBuf>,
    /// A config.json to audit (no rootfs needed)
    #[arg(long, value_name = "FILE", conflicts_with = "host")]
    config: Option<PathBuf>,
    /// Report what this host can enforce instead (user namespaces, seccomp actions, Landlock
    /// ABI, idmapped mounts, cgroups, KVM)
    #[arg(long)]
    host: bool,
    /// Compare with this config: what it weakens or tightens (under the same policy)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["host", "diff_policy"])]
    diff_config: Option<PathBuf>,
    /// Compare with this policy: what it weakens or tightens for the same config
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "host")]
    diff_policy: Option<String>,
    /// Compare the seccomp profile `contain learn` wrote in DIR with contain's default profile
    /// (and with each --against): the x86_64 syscalls one allows and the other does not.
    /// Templates are resolved for Docker's default capabilities
    #[arg(long, value_name = "DIR", conflicts_with_all = ["id", "bundle", "config", "host", "diff_config", "diff_policy"])]
    learnt: Option<PathBuf>,
    /// With --learnt: another profile to compare with (Docker's or podman's default profile
    /// file, say); may be repeated
    #[arg(long, value_name = "PROFILE", requires = "learnt")]
    against: Vec<PathBuf>,
    /// Output format (a comparison is text or JSON)
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Exit 1 when a finding is at least this severe
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<Severity>,
}

/// Run the audit; returns the exit code (errors are printed here, with exit code 2).
pub fn audit(args: &AuditArgs, policy_flag: Option<&str>, store: &Store) -> i32 {
    match run(args, policy_flag, store) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("contain audit: {e}");
            2
        }
    }
}

fn finish(args: &AuditArgs, report: &audit::Report) -> anyhow::Result<i32> {
    let color = args.format == Format::Text && std::io::stdout().is_terminal();
    super::out(&audit::render(report, args.format, color))?;
    let fail = args
        .fail_on
        .is_some_and(|t| report.findings.iter().any(|f| f.severity >= t));
    Ok(i32::from(fail))
}

fn run(args: &AuditArgs, policy_flag: Option<&str>, store: &Store) -> anyhow::Result<i32> {
    if let Some(id) = &args.id {
        let st = crate::container::state(store, id)?;
        let status = st.status;
        let pid = Some(i64::from(st.pid))
            .filter(|p| *p > 0 && matches!(status, "created" | "running" | "paused"));
        let Some(pid) = pid else {
            anyhow::bail!("container {id:?} is {status}: only a live container can be audited this way (audit its bundle instead)");
        };
        let observed =
            audit::live::observe(id, pid, status, &st.annotations).map_err(anyhow::Error::msg)?;
        return finish(args, &audit::live::report(&observed));
    }
    if let Some(dir) = &args.learnt {
        let others: Vec<&std::path::Path> = args.against.iter().map(PathBuf::as_path).collect();
        let c = audit::compare::compare(dir, &others).map_err(anyhow::Error::msg)?;
        match args.format {
            Format::Json => super::out(&format!("{}\n", serde_json::to_string_pretty(&c)?))?,
            Format::Text => super::out(&audit::compare::render(&c))?,
            Format::Sarif => {
                anyhow::bail!("--format sarif: a comparison is printed as text or json")
            }
        }
        return Ok(0);
    }
    if args.host {
        let report = audit::host::probe();
        super::out(&audit::host::render(&report, args.format))?;
        return Ok(0);
    }
    let (path, rootfs) = match (&args.bundle, &args.config) {
        (_, Some(c)) => (c.clone(), None),
        (Some(b), None) => (b.join("config.json"), Some(b.clone())),
        (None, None) => (PathBuf::from("config.json"), Some(PathBuf::from("."))),
    };
    let report = audit_config(&path, rootfs.as_deref(), policy_flag)?;
    let other = match (&args.diff_config, &args.diff_policy) {
        (Some(c), _) => Some((audit_config(c, None, policy_flag)?, c.display().to_string())),
        (None, Some(p)) => Some((
            audit_config(&path, rootfs.as_deref(), Some(p))?,
            format!("policy {p}"),
        )),
        (None, None) => None,
    };
    let Some((after, label)) = other else {
        return finish(args, &report);
    };
    if args.format == Format::Sarif {
        anyhow::bail!("--format sarif: a comparison is printed as text or json");
    }
    let before = if args.diff_config.is_some() {
        path.display().to_string()
    } else {
        format!("policy {}", report.policy)
    };
    let d = audit::diff(&report, &after, before, label);
    let color = args.format == Format::Text && std::io::stdout().is_terminal();
    super::out(&audit::render_diff(&d, args.format, color))?;
    let fail = args
        .fail_on
        .is_some_and(|t| d.weakened.iter().any(|f| f.severity >= t));
    Ok(i32::from(fail))
}

/// Audit the config at `path` (its bundle directory `dir`, when known, for the rootfs).
fn audit_config(
    path: &std::path::Path,
    dir: Option<&std::path::Path>,
    policy_flag: Option<&str>,
) -> anyhow::Result<audit::Report> {
    let data =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let (spec, extra) = crate::oci::parse_and_validate(path, &data)?;
    let rootfs = dir.and_then(|b| Some(crate::oci::rootfs_path(b, spec.root().as_ref()?)));
    let (pol, chosen, mut facts) = policy::choose(
        policy_flag,
        &spec,
        match &rootfs {
            Some(r) => crate::ns::idmap::idmappable(r),
            // A config alone: assume the rootfs can be idmapped.
            None => Ok(()),
        },
    )?;
    // The host's namespaces the config joins, as create finds them (where the paths exist
    // here: a config audited on another host joins nothing of this one).
    facts.host_joins = crate::container::joined(&spec)
        .map(|j| j.host_joins())
        .unwrap_or_default();
    let host = audit::Host {
        facts,
        landlock_abi: crate::landlock::kernel_abi(),
        microvm: crate::microvm::support().kvm,
    };
    let extra = audit::Extra {
        seccomp: extra.seccomp,
        landlock: extra.landlock,
    };
    let mut report = audit::audit(path, &spec, &extra, &pol, &host);
    report.chosen_by = Some(chosen.to_string());
    Ok(report)
}
