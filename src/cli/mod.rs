//! The command line: runc's global flags and commands, each command a thin file.

/// `println!` to stdout through [`out`]: an error instead of a panic, and SIGPIPE's death when
/// the reader is gone.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::cli::out(&format!("{}\n", format_args!($($t)*)))
    };
}

mod argv;
mod audit;
mod console;
mod exec;
mod features;
mod learn;
mod list;
mod ps;
mod run;
mod spec;
mod update;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use std::io::Write;

use crate::container::{self, CreateOpts, Store};
use crate::log;

const SPEC_VERSION: &str = "1.2.0";

#[derive(Debug, Parser)]
#[command(
    name = "contain",
    about = "A security-hardened, runc-compatible OCI container runtime",
    long_about = "contain runs OCI bundles as runc does (same commands, flags, state and exit codes), so \
containerd, podman/conmon and Docker can call it unchanged, but treats every container as hostile: \
the rootfs is resolved with openat2(RESOLVE_IN_ROOT), the runtime never re-executes itself inside \
the container and is non-dumpable before it joins its namespaces, and anything in config.json it \
cannot enforce is refused rather than ignored.\n\nA bundle is a directory holding config.json and \
the root filesystem it names. `contain spec` writes a starting config.json.",
    disable_version_flag = true,
    after_help = "Exit status: 0 on success, 1 on error, 2 on usage errors; `run` exits with the container's status (128+N when killed by signal N)."
)]
pub struct Cli {
    /// Directory for the containers' state (tmpfs recommended)
    #[arg(
        long,
        global = true,
        default_value = "/run/contain",
        value_name = "DIR"
    )]
    root: PathBuf,
    /// Also write the log to this file
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Log format for --log
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: log::Format,
    /// Log debug messages
    #[arg(long, global = true)]
    debug: bool,
    /// Let systemd create the container's cgroup: cgroupsPath is "slice:prefix:name" (empty
    /// slice: system.slice; "-": the root slice; no cgroupsPath: ":contain:ID") and the
    /// container runs in the transient scope prefix-name.scope, started over systemd's private
    /// socket with Delegate=yes and the limits systemd can express. Root only
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Security policy for create/run: default, strict, runc, or a policy file's path (see
    /// policies/ and SECURITY.md). Without it, config.json's annotation io.contain.policy
    /// (a built-in name, not below the operator's floor), else the operator's
    /// configuration's, else `default`
    #[arg(
        long,
        global = true,
        value_name = "NAME|PATH",
        env = "CONTAIN_POLICY",
        long_help = "Security policy for create and run: `default` (hardened: a user namespace of its own, seccomp, Landlock derived from the mounts), `strict` (for hostile code: everything at its tightest, and configs that ask for more are refused), `runc` (exactly what config.json says), or the path of a policy file (the format of policies/*.json). Without this flag, config.json's annotation io.contain.policy (a built-in name only, and not below the floor of the operator's configuration /etc/contain/config.json or CONTAIN_CONFIG), else that configuration's policy, else `default`. What was enforced is shown by `contain state` in the io.contain.* annotations."
    )]
    policy: Option<String>,
    /// With create: learn what the container does into DIR, as `contain learn` does (for
    /// clients: `podman --runtime-flag learn=DIR`); ignored by the other commands
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        long_help = "With create: learn what the container does into DIR, as `contain learn` does, for containers a client starts (podman: --runtime-flag learn=DIR; containerd and Docker: the runtime's options). The container runs as usual under its policy plus the observer filter; a supervisor detached from the runtime records what it and every process exec'd into it do, and when they are all gone merges the run into DIR (observations.json, seccomp.json, policy.json), several containers into one DIR included. Use the result with --policy DIR/policy.json. Ignored by the other commands, which clients call with the same flags; refused by run (use `contain learn`)."
    )]
    learn: Option<PathBuf>,
    /// Rootless mode: true, false or auto (accepted for runc compatibility)
    #[arg(long, value_name = "true|false|auto", num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Print the version (in the shape go-runc parses)
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Args, Clone)]
pub struct CreateArgs {
    /// Container id (letters, digits, '_', '+', '-', '.')
    id: String,
    /// Bundle directory holding config.json
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    bundle: PathBuf,
    /// Write the init's pid to this file
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the init
    #[arg(long, value_name = "SOCKET")]
    pidfd_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (weaker; for ramdisk roots)
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many descriptors after stdio (3, 4, ...) to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    preserve_fds: u32,
}

impl CreateArgs {
    fn opts(&self, policy: Option<&str>, systemd_cgroup: bool) -> CreateOpts {
        CreateOpts {
            policy: policy.map(str::to_string),
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            pidfd_socket: self.pidfd_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            systemd_cgroup,
            learn: None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container: set everything up and leave its process waiting for `start`
    Create(CreateArgs),
    /// Start the user process of a created container
    Start { id: String },
    /// Create and start a container; in the foreground, wait for it and delete it
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container is started
        #[arg(short = 'd', long)]
        detach: bool,
        /// Do not delete the container after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Run another process in a running container (its namespaces, cgroup, capabilities)
    Exec(exec::ExecArgs),
    /// Suspend every process of a container (cgroup freezer)
    Pause { id: String },
    /// Resume a paused container
    Resume { id: String },
    /// List the processes of a container
    Ps {
        id: String,
        /// Output format: the host's ps table filtered to the container, or a JSON array of pids
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Arguments for ps (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change the cgroup limits of a running container
    Update(update::UpdateArgs),
    /// Print resource statistics and OOM events of a container as JSON lines
    Events {
        id: String,
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Interval between stats events (e.g. 5s, 500ms)
        #[arg(long, default_value = "5s", value_parser = parse_interval)]
        interval: std::time::Duration,
    },
    /// Print the OCI state of a container as JSON
    State { id: String },
    /// Send a signal (name or number, default SIGTERM) to the container's init
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Send it to every process in the container's cgroup
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Delete a container and everything the runtime made for it
    Delete {
        id: String,
        /// Kill it first if it is running; succeed if it does not exist
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List containers
    List {
        /// Output format
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only print ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a starting config.json for a bundle
    Spec {
        /// Bundle directory to write config.json into
        #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
        /// A config for running as an unprivileged user
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features JSON)
    Features,
    /// Report what a bundle and its policy leave open, before anything runs
    Audit(audit::AuditArgs),
    /// Run a bundle in the foreground and learn the tightest seccomp profile that still runs it
    ///
    /// The container is created and run as `run` would under the policy (--policy, the
    /// annotation or the operator's), with one more seccomp filter: every syscall is reported
    /// to contain's learning supervisor, which records it (with clone's flags, socket's family
    /// and type, ioctl's request, prctl's option, personality's persona) and lets it continue.
    /// The policy's own filters still decide, so nothing is learnt that the policy refused.
    /// Processes started with `contain exec` while it runs are learnt too. When the workload
    /// ends, the output directory gets observations.json (merged with the runs already there),
    /// seccomp.json (only what was seen is allowed, every other syscall fails with EPERM; each
    /// rule says which observation led to it) and policy.json (the policy learnt under, with
    /// the profile stacked). Run the workload under it with `--policy DIR/policy.json`. A code
    /// path the runs did not take is not learnt: see SECURITY.md before trusting a profile.
    ///
    /// Exit status: the workload's, as `run`'s.
    Learn(learn::LearnArgs),
    /// Write the initramfs a Linux microVM guest of a bundle boots
    ///
    /// The archive (newc cpio) holds the bundle's rootfs, its process (after the policy) and
    /// this binary as the guest agent, which the kernel runs as PID 1. The agent mounts /proc,
    /// /sys and /dev, runs process.args with process.env, cwd, user, capabilities and
    /// rlimits, and ends the VM with the process's exit status written to I/O port 0xf4. This
    /// is the archive the microVM stage boots when the guest is `linux` and no initramfs is
    /// given; write it to inspect it or to boot the same guest under another VMM, with the
    /// kernel command line words `rdinit=/.contain/init -- guest-agent`. When the bundle asks
    /// for a block rootfs (io.contain.microvm.rootfs=block), the archive holds the agent and
    /// the kernel modules it loads instead of the rootfs, which is the disk `guest-disk`
    /// writes (the first virtio-blk device).
    GuestInitramfs {
        /// Bundle directory holding config.json
        #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
        /// Where to write the archive
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Write the disk a Linux microVM guest of a bundle reads its rootfs from
    ///
    /// The disk is a read-only erofs filesystem of the bundle's rootfs, which the microVM
    /// stage serves to the guest over virtio-blk when the rootfs is a block device
    /// (io.contain.microvm.rootfs=block): the metadata and files up to 16 KiB are built in
    /// memory, larger files are read from the rootfs when the guest reads them. Write it to
    /// inspect what the guest sees (`mount -t erofs -o loop,ro FILE DIR`, fsck.erofs).
    GuestDisk {
        /// Bundle directory holding config.json
        #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
        /// Where to write the disk image
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
    },
    /// The guest agent: PID 1 of a Linux microVM guest, started by the guest's kernel
    #[command(hide = true)]
    GuestAgent,
}

/// `contain guest-initramfs`: the archive create would build for the bundle's Linux guest.
fn guest_initramfs(
    bundle: &std::path::Path,
    output: &std::path::Path,
    policy: Option<&str>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let b = crate::oci::load_bundle(bundle)?;
    let (pol, _, facts) =
        crate::policy::choose(policy, &b.spec, crate::ns::idmap::idmappable(&b.rootfs))?;
    let applied = crate::policy::apply(&pol, &b.spec, &facts)?;
    let process = applied
        .spec
        .process()
        .clone()
        .context("config.json has no process")?;
    let readonly = applied
        .spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    let config = crate::microvm::initramfs::GuestConfig {
        process,
        hostname: applied.spec.hostname().clone(),
        rootfs: applied
            .microvm
            .as_ref()
            .map_or(crate::microvm::RootfsMode::Initramfs, |p| p.rootfs),
        readonly,
    };
    let archive = match &applied.microvm {
        Some(plan) => crate::microvm::guest_initramfs(plan, &b.rootfs, &config)?,
        None => crate::microvm::agent_initramfs(
            &b.rootfs,
            &config,
            &[],
            crate::microvm::DEFAULT_MEMORY,
        )?,
    };
    std::fs::write(output, archive).with_context(|| format!("write {}", output.display()))
}

/// `contain guest-disk`: the erofs disk of the bundle's rootfs, as a microVM guest reads it.
fn guest_disk(bundle: &std::path::Path, output: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let b = crate::oci::load_bundle(bundle)?;
    let disk =
        crate::microvm::erofs::Disk::build(&b.rootfs, crate::microvm::erofs::files_allowed())
            .map_err(anyhow::Error::msg)?;
    let mut out = std::fs::File::create(output)
        .map(std::io::BufWriter::new)
        .with_context(|| format!("create {}", output.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < disk.size() {
        let n = buf.len().min((disk.size() - at) as usize);
        disk.read_at(at, &mut buf[..n])
            .with_context(|| format!("read the disk at {at}"))?;
        out.write_all(&buf[..n])
            .with_context(|| format!("write {}", output.display()))?;
        at += n as u64;
    }
    out.flush()
        .with_context(|| format!("write {}", output.display()))
}

/// `5s`, `500ms`, `1m` -> a duration (Go's time.ParseDuration for the units runc users write).
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (5s, 500ms, 1m)"))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    if d.is_zero() {
        return Err("the interval must be positive".into());
    }
    Ok(d)
}

fn version_text() -> String {
    format!(
        "contain version {}\ncommit: {}\nspec: {SPEC_VERSION}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("CONTAIN_COMMIT").unwrap_or("unknown")
    )
}

/// Run the command line; returns the exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    let args = argv::normalize(args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return usage_error(&e, &args),
    };
    // Before the runtime opens anything: which of the descriptors --preserve-fds names are
    // the caller's.
    crate::sys::record_inherited(match &cli.command {
        Some(Command::Create(a)) | Some(Command::Run { create: a, .. }) => a.preserve_fds,
        Some(Command::Exec(a)) => a.preserve_fds(),
        Some(Command::Learn(a)) => a.preserve_fds(),
        _ => 0,
    });
    if let Err(e) = log::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!(
            "contain: cannot open log {}: {e}",
            cli.log
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        );
        return 1;
    }
    if cli.version {
        return match out(&version_text()) {
            Ok(()) => 0,
            Err(e) => {
                log::error(&format!("write the version: {e}"));
                1
            }
        };
    }
    let Some(command) = cli.command else {
        log::error("no command given; see `contain --help`");
        return 1;
    };
    // As runc: `exec` fails with 255 (1..254 are the process's own statuses) and says so.
    let exec = matches!(command, Command::Exec(_));
    match dispatch(
        &cli.root,
        cli.systemd_cgroup,
        cli.policy.as_deref(),
        cli.learn.as_deref(),
        command,
    ) {
        Ok(code) => code,
        Err(e) if exec => {
            log::error(&format!("exec failed: {e}"));
            255
        }
        Err(e) => {
            log::error(&e.to_string());
            1
        }
    }
}

/// A command line clap refused: the usage text, then (as runc) the error as a log line, and
/// exit 1, or 3 for an unknown command; 2 for `audit`, whose 1 means "findings".
fn usage_error(e: &clap::Error, args: &[std::ffi::OsString]) -> i32 {
    let _ = e.print();
    if !e.use_stderr() {
        return 0; // --help, --version
    }
    // The log flags, read leniently from a command line that did not parse.
    let value = |flag: &str| {
        let eq = format!("{flag}=");
        args.iter().enumerate().find_map(|(i, a)| {
            let a = a.to_str()?;
            if a == flag {
                args.get(i + 1)?.to_str().map(str::to_string)
            } else {
                a.strip_prefix(&eq).map(str::to_string)
            }
        })
    };
    let format = match value("--log-format").as_deref() {
        Some("json") => log::Format::Json,
        _ => log::Format::Text,
    };
    let path = value("--log").map(std::path::PathBuf::from);
    let _ = log::init(path.as_deref(), format, false);
    let audit = args.iter().any(|a| a == "audit");
    let text = e.to_string();
    let what = text.split("\n\n").next().unwrap_or_default();
    let what = what.strip_prefix("error: ").unwrap_or(what);
    log::error(&what.split_whitespace().collect::<Vec<_>>().join(" "));
    if audit {
        2
    } else if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
        3
    } else {
        1
    }
}

fn dispatch(
    root: &std::path::Path,
    systemd: bool,
    policy: Option<&str>,
    learn_into: Option<&std::path::Path>,
    command: Command,
) -> anyhow::Result<i32> {
    let store = Store::new(root);
    match command {
        Command::Create(a) => match learn_into {
            Some(dir) => learn::create_learning(&store, &a, dir, policy, systemd)?,
            None => drop(container::create(&store, &a.opts(policy, systemd))?),
        },
        Command::Run { .. } if learn_into.is_some() => {
            anyhow::bail!("--learn is for create; to learn with run, use `contain learn`")
        }
        Command::Start { id } => container::start(&store, &id)?,
        Command::Run {
            create,
            detach,
            keep,
        } => return run::run(&store, &create.opts(policy, systemd), detach, keep),
        Command::Exec(a) => return exec::exec(&store, &a),
        Command::Pause { id } => container::set_frozen(&store, &id, true)?,
        Command::Resume { id } => container::set_frozen(&store, &id, false)?,
        Command::Ps {
            id,
            format,
            ps_args,
        } => ps::print(&store, &id, &format, &ps_args)?,
        Command::Update(a) => update::update(&store, &a)?,
        Command::Events {
            id,
            stats,
            interval,
        } => container::events(&store, &id, stats, interval, &mut |e| {
            let _ = outln!("{e}");
        })?,
        Command::State { id } => outln!(
            "{}",
            serde_json::to_string_pretty(&container::state(&store, &id)?)?
        )?,
        Command::Kill { id, signal, all } => container::kill(&store, &id, &signal, all)?,
        Command::Delete { id, force } => container::delete(&store, &id, force)?,
        Command::List { format, quiet } => list::print(&store, &format, quiet)?,
        Command::Spec { bundle, rootless } => spec::write(&bundle, rootless)?,
        Command::Features => outln!("{}", serde_json::to_string_pretty(&features::features())?)?,
        Command::Audit(a) => return Ok(audit::audit(&a, policy, &store)),
        Command::Learn(a) => return learn::learn(&store, &a, policy, systemd),
        Command::GuestInitramfs { bundle, output } => {
            guest_initramfs(&bundle, &output, policy)?;
        }
        Command::GuestDisk { bundle, output } => guest_disk(&bundle, &output)?,
        Command::GuestAgent => crate::microvm::agent::main(),
    }
    Ok(0)
}

/// Write `text` to stdout and flush it. A reader that went away (`contain list | head -1`)
/// ends the process by SIGPIPE, as it ends runc; any other error is returned.
pub(crate) fn out(text: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => crate::sys::die_of_sigpipe(),
        other => other,
    }
}
