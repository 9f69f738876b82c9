//! `contain learn`: run a bundle in the foreground under its policy plus the observer filter,
//! then write (or, with --replay, compare against) the learnt policy in the output directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::unistd::Pid;

use crate::container::Store;
use crate::learn::{supervisor::Learner, Observations};

use crate::learn::{OBSERVATIONS, POLICY, SECCOMP};

#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    #[command(flatten)]
    create: super::CreateArgs,
    /// Directory of the learnt policy: observations.json (what every run saw, merged),
    /// seccomp.json (the learnt profile) and policy.json (the policy learnt under, with the
    /// profile stacked: use it with --policy). A directory that already holds a learnt
    /// policy gets this run merged in
    #[arg(short = 'o', long, value_name = "DIR")]
    output: PathBuf,
    /// Compare this run with the learnt policy in --output and print only what is new; write
    /// nothing
    #[arg(long)]
    replay: bool,
}

impl LearnArgs {
    pub fn preserve_fds(&self) -> u32 {
        self.create.preserve_fds
    }
}

pub fn learn(
    store: &Store,
    a: &LearnArgs,
    policy: Option<&str>,
    systemd: bool,
) -> anyhow::Result<i32> {
    let mut opts = a.create.opts(policy, systemd);
    let (base, no_new_privs) = learning_base(policy, &opts.bundle)?;
    let previous = Observations::load(&a.output.join(OBSERVATIONS)).map_err(anyhow::Error::msg)?;
    if a.replay && previous.is_none() {
        anyhow::bail!(
            "--replay: {} holds no learnt policy ({OBSERVATIONS}); learn without --replay first",
            a.output.display()
        );
    }
    let sock = super::console::PrivateSocket::bind("learn")
        .context("bind the learning supervisor's socket")?;
    let one = crate::sys::SingleThreaded::check()?;
    let learner = Learner::start(&one, &sock.listener).context("start the learning supervisor")?;
    opts.learn = Some(sock.path());
    let ran = super::run::foreground(store, &opts, false, Some(Pid::from_raw(learner.pid())));
    let supervisor_died = learner.ended();
    let code = match ran {
        Ok(code) => code,
        Err(e) => {
            drop(learner.finish());
            return Err(e);
        }
    };
    if supervisor_died {
        drop(learner.finish());
        anyhow::bail!(
            "the learning supervisor ended while the workload ran; the workload was killed and nothing was written"
        );
    }
    let mut run = learner.finish().map_err(anyhow::Error::msg)?;
    if code != 0 {
        run.notes.push(exit_note(code));
    }
    if a.replay {
        let known = previous.unwrap_or_default();
        let new = known.new_in(&run);
        if new.is_empty() {
            eprintln!(
                "contain learn: nothing new since the policy learnt in {}",
                a.output.display()
            );
        }
        for n in new {
            eprintln!("contain learn: new since the learnt policy: {n}");
        }
        return Ok(code);
    }
    write_result(&a.output, previous, &run, &base, no_new_privs)?;
    Ok(code)
}

/// The policy a run is learnt under (the one create chooses for the bundle) and whether its
/// process gets no_new_privs (then the learnt profile needs none of contain's own syscalls).
fn learning_base(
    policy: Option<&str>,
    bundle: &Path,
) -> anyhow::Result<(crate::policy::Policy, bool)> {
    let bundle = crate::oci::load_bundle(bundle)?;
    let (base, _, _) = crate::policy::choose(policy, &bundle.spec, Ok(()))?;
    let no_new_privs = base.no_new_privileges
        || bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.no_new_privileges())
            .unwrap_or(false);
    Ok((base, no_new_privs))
}

/// `contain --learn DIR create ...`: what a client (podman, containerd, Docker) starts is
/// learnt into DIR, as `contain learn` would: the container is created as usual with the
/// observer filter, its supervisor detached (the client's create returns at once); when the
/// container's process has exited and every process `exec`ed into it is gone, the run is
/// merged into DIR (under a lock, so that concurrent containers learning into one directory
/// all land).
pub fn create_learning(
    store: &Store,
    a: &super::CreateArgs,
    dir: &Path,
    policy: Option<&str>,
    systemd: bool,
) -> anyhow::Result<()> {
    use crate::learn::supervisor::{self, Detached};
    let mut opts = a.opts(policy, systemd);
    let (base, no_new_privs) = learning_base(policy, &opts.bundle)?;
    std::fs::create_dir_all(dir).with_context(|| format!("--learn {}", dir.display()))?;
    // Readable now rather than found corrupt when the container is gone.
    Observations::load(&dir.join(OBSERVATIONS)).map_err(anyhow::Error::msg)?;
    let sock = super::console::PrivateSocket::bind("learn")
        .context("bind the learning supervisor's socket")?;
    let one = crate::sys::SingleThreaded::check()?;
    let out = dir.to_path_buf();
    let finish = move |run: Observations| -> Result<(), String> {
        let lock = std::fs::File::create(out.join(".lock")).map_err(|e| e.to_string())?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e.to_string())?;
        let previous = Observations::load(&out.join(OBSERVATIONS))?;
        write_result(&out, previous, &run, &base, no_new_privs).map_err(|e| format!("{e:#}"))
    };
    match supervisor::detach(&one, &sock.listener, finish)
        .context("start the learning supervisor")?
    {
        Detached::Child(code) => {
            drop(sock);
            crate::sys::exit_now(code)
        }
        Detached::Parent(pid) => {
            let path = sock.path();
            opts.learn = Some(path.clone());
            sock.hand_over();
            if let Err(e) = crate::container::create(store, &opts) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
                if let Some(d) = path.parent() {
                    let _ = std::fs::remove_dir_all(d);
                }
                return Err(e.into());
            }
            Ok(())
        }
    }
}

fn exit_note(code: i32) -> String {
    if code > 128 {
        format!(
            "a run ended by signal {}: what it would have done after is not seen",
            code - 128
        )
    } else {
        format!("a run exited with status {code}: a path it did not take is not seen")
    }
}

/// Merge `run` into the directory's observations and write the profile and the policy.
fn write_result(
    dir: &Path,
    previous: Option<Observations>,
    run: &Observations,
    base: &crate::policy::Policy,
    no_new_privs: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let had = previous.is_some();
    let mut all = previous.unwrap_or_default();
    let new = all.new_in(run);
    all.merge(run);
    let profile = all.profile(!no_new_privs);
    let mut policy = learnt_policy(base, &all);
    let ours = PathBuf::from(SECCOMP);
    if !policy.seccomp_profiles.contains(&ours) {
        policy.seccomp_profiles.push(ours);
    }
    let write = |name: &str, data: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(name);
        crate::container::write_atomic(&path, &data)
            .with_context(|| format!("write {}", path.display()))
    };
    write(OBSERVATIONS, serde_json::to_vec_pretty(&all)?)?;
    write(SECCOMP, serde_json::to_vec_pretty(&profile)?)?;
    write(POLICY, serde_json::to_vec_pretty(&policy)?)?;
    let allowed = profile.syscalls.as_ref().map_or(0, Vec::len);
    eprintln!(
        "contain learn: {} run(s), {} rules in {}; {}",
        all.runs,
        allowed,
        dir.join(SECCOMP).display(),
        if had {
            format!("{} new in this run", new.len())
        } else {
            format!("run with --policy {}", dir.join(POLICY).display())
        }
    );
    Ok(())
}

/// The base policy with what the runs learnt: the TCP ports, the filesystem rules (as one
/// more Landlock layer), the capabilities no run needed dropped; its description says which.
fn learnt_policy(base: &crate::policy::Policy, all: &Observations) -> crate::policy::Policy {
    let mut policy = base.clone();
    if policy.name != "learnt" {
        policy.description = format!(
            "Learnt by contain learn under the policy {:?}, whose layers it keeps, with the learnt seccomp profile ({SECCOMP}) stacked on its filters: a syscall must pass both.",
            base.name
        );
        policy.name = "learnt".into();
    }
    // TCP: only the ports the runs used, within what the base policy allowed.
    let network = all.network(base.landlock.network.as_ref());
    let tcp = tcp_rules(&network, all);
    policy.landlock.network = Some(network);
    // Filesystem: reads, writes, creations, removals and executions only beneath the directories
    // the runs needed them in, as one more Landlock layer.
    let fs_rules = if base.landlock.ruleset.is_some() {
        format!(
            "none (the policy {:?} has a Landlock ruleset of its own, kept as it is)",
            base.name
        )
    } else if all.fs.is_empty() {
        "none (no read, write or execution was seen)".to_string()
    } else {
        policy.landlock.ruleset = Some(crate::learn::fs::ruleset(&all.fs));
        fs_rules(all)
    };
    // Capabilities: those learning can judge and no run needed are dropped.
    policy.drop_capabilities = all.unneeded_caps();
    let needed: Vec<String> = all
        .caps
        .iter()
        .map(|(c, why)| format!("{c} (first: {why})"))
        .collect();
    policy.description = format!(
        "{} Landlock TCP rules learnt: {}{}. Landlock filesystem rules learnt (reads, writes, creations, removals, executions): {fs_rules}. Capabilities needed: {}; dropped (never needed): {}; any other is kept as config.json asks.",
        policy
            .description
            .split(" Landlock TCP rules learnt:")
            .next()
            .unwrap_or_default(),
        tcp.join("; "),
        if policy.landlock.enabled {
            ""
        } else {
            " (not enforced: the base policy derives no Landlock ruleset, which carries them; learn under a policy with landlock.enabled)"
        },
        if needed.is_empty() {
            "none".to_string()
        } else {
            needed.join(", ")
        },
        policy.drop_capabilities.join(", ")
    );
    policy
}

/// The learnt TCP rules, as the policy's description names them ("bind 8080 (first by ...)").
fn tcp_rules(network: &crate::policy::Network, all: &Observations) -> Vec<String> {
    [
        ("bind", &network.bind_tcp, &all.tcp.bind),
        ("connect", &network.connect_tcp, &all.tcp.connect),
    ]
    .into_iter()
    .map(|(what, ports, seen)| {
        let list: Vec<String> = ports
            .iter()
            .map(|p| {
                format!(
                    "{p} (first by {:?})",
                    seen.get(p).map_or("", |s| s.as_str())
                )
            })
            .collect();
        format!(
            "{what} {}",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        )
    })
    .collect()
}

/// The learnt filesystem rules, folded by directory, with what first needed each right.
fn fs_rules(all: &Observations) -> String {
    crate::learn::fs::folded(&all.fs)
        .iter()
        .map(|(dir, rights)| {
            let why: Vec<String> = rights
                .iter()
                .map(|(r, first)| format!("{r} (first: {first})"))
                .collect();
            format!("{}: {}", dir.display(), why.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
