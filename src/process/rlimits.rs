//! process.rlimits: checked against the host before anything is created, set in the runtime's
//! child before it enters the container's user namespace.

use super::ProcessError;
use crate::sys::during;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use nix::sys::resource::{getrlimit, setrlimit, Resource};

fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

fn name(t: PosixRlimitType) -> String {
    format!("{t:?}").trim_start_matches("Rlimit").to_uppercase()
}

/// The (soft, hard) limits of this process.
fn get(t: PosixRlimitType) -> nix::Result<(u64, u64)> {
    getrlimit(resource(t))
}

/// Refuse, before anything is created, an rlimit whose hard limit is above the host's while
/// the runtime lacks CAP_SYS_RESOURCE to raise it.
pub fn preflight(limits: &[PosixRlimit]) -> Result<(), ProcessError> {
    let can_raise = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    if can_raise {
        return Ok(());
    }
    for l in limits {
        let cur = get(l.typ()).map_err(during(format!("getrlimit RLIMIT_{}", name(l.typ()))))?;
        let max = cur.1;
        if max != libc::RLIM_INFINITY && l.hard() > max {
            return Err(ProcessError::Refused(format!(
                "process.rlimits: RLIMIT_{} hard limit {} is above this host's hard limit {} and the runtime lacks CAP_SYS_RESOURCE to raise it",
                name(l.typ()),
                l.hard(),
                max
            )));
        }
    }
    Ok(())
}

/// Set every limit on the calling process.
pub fn apply(limits: &[PosixRlimit]) -> Result<(), ProcessError> {
    for l in limits {
        setrlimit(resource(l.typ()), l.soft(), l.hard())
            .map_err(during(format!("setrlimit RLIMIT_{}", name(l.typ()))))?;
    }
    Ok(())
}
