//! `exec`: run another process in a running container, as runc does.

use std::path::PathBuf;

use nix::unistd::Pid;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::console::ConsoleSocket;
use super::run::Supervisor;
use crate::container::{self, ExecOpts, Store};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Container id
    id: String,
    /// The command and its arguments (unless --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// A process.json (the `process` object of config.json) to run instead of COMMAND
    #[arg(short = 'p', long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Allocate a pty
    #[arg(short = 't', long)]
    tty: bool,
    /// Unix socket that receives the pty master
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Return once the process is started
    #[arg(short = 'd', long)]
    detach: bool,
    /// Write the process's pid to this file
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Set an environment variable (NAME=value), repeatable
    #[arg(short = 'e', long, value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// uid[:gid] in the container (numeric)
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// Add a capability (CAP_NAME), repeatable
    #[arg(short = 'c', long, value_name = "CAP")]
    cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    no_new_privs: bool,
    /// Pass this many descriptors after stdio to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    preserve_fds: u32,
    /// Exec into a paused container too: the process starts frozen and runs once the
    /// container is resumed
    #[arg(long)]
    ignore_paused: bool,
    /// Additional gids, repeatable
    #[arg(short = 'g', long, value_name = "GID")]
    additional_gids: Vec<u32>,
    /// SELinux label (refused: not supported)
    #[arg(long, value_name = "LABEL")]
    process_label: Option<String>,
    /// AppArmor profile (refused: not supported)
    #[arg(long, value_name = "PROFILE")]
    apparmor: Option<String>,
}

impl ExecArgs {
    /// --preserve-fds.
    pub fn preserve_fds(&self) -> u32 {
        self.preserve_fds
    }
}

fn parse_user(s: &str) -> anyhow::Result<(u32, Option<u32>)> {
    let (u, g) = s.split_once(':').map_or((s, None), |(u, g)| (u, Some(g)));
    let uid = u
        .parse()
        .map_err(|_| anyhow::anyhow!("--user {s:?}: the uid must be numeric"))?;
    let gid = g
        .map(|g| {
            g.parse()
                .map_err(|_| anyhow::anyhow!("--user {s:?}: the gid must be numeric"))
        })
        .transpose()?;
    Ok((uid, gid))
}

/// The process to run: --process, or the container's own process with the flags applied.
fn build_process(store: &Store, a: &ExecArgs) -> anyhow::Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("--process {}: {e}", path.display()))?;
        let malformed =
            |e| anyhow::anyhow!("--process {}: malformed process JSON: {e}", path.display());
        let mut v: serde_json::Value = serde_json::from_slice(&data).map_err(malformed)?;
        // runc reads a missing user as its zero value: uid 0, gid 0.
        if let Some(o) = v.as_object_mut() {
            o.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        return serde_json::from_value(v).map_err(malformed);
    }
    if a.command.is_empty() {
        anyhow::bail!("exec: give a command to run or --process FILE");
    }
    let mut p = container::base_process(store, &a.id, a.ignore_paused)?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        p.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            p.user_mut().set_gid(gid);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p
            .capabilities()
            .clone()
            .unwrap_or_else(LinuxCapabilities::default);
        for name in &a.cap {
            let cap: Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| anyhow::anyhow!("--cap {name:?}: unknown capability"))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, p) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b).set_effective(e).set_permitted(p);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn exec(store: &Store, a: &ExecArgs) -> anyhow::Result<i32> {
    for (flag, v) in [
        ("--process-label", &a.process_label),
        ("--apparmor", &a.apparmor),
    ] {
        if v.as_ref().is_some_and(|s| !s.is_empty()) {
            anyhow::bail!(
                "{flag}: not supported by this version of contain; refusing to run without it"
            );
        }
    }
    let process = build_process(store, a)?;
    let terminal = process.terminal().unwrap_or(false);
    let own_console = terminal && a.console_socket.is_none() && !a.detach;
    let console = own_console.then(ConsoleSocket::new).transpose()?;
    let opts = ExecOpts {
        id: a.id.clone(),
        process,
        console_socket: console
            .as_ref()
            .map(ConsoleSocket::path)
            .or_else(|| a.console_socket.clone()),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
    };
    let supervisor = (!a.detach).then(Supervisor::new).transpose()?;
    let pid = container::exec(store, &opts)?;
    let master = console.as_ref().map(ConsoleSocket::master).transpose()?;
    drop(console);
    match supervisor {
        None => Ok(0),
        Some(s) => s.wait(Pid::from_raw(pid), master.as_ref()),
    }
}
