//! process.rlimits: checked against the host before anything is created, set in the runtime's
//! child before it enters the container's user namespace.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

pub fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn name(t: PosixRlimitType) -> String {
    format!("{t:?}").trim_start_matches("Rlimit").to_uppercase()
}

fn get(t: PosixRlimitType) -> std::io::Result<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(resource(t), &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// Refuse, before anything is created, an rlimit whose hard limit is above the host's while
/// the runtime lacks CAP_SYS_RESOURCE to raise it.
pub fn preflight(limits: &[PosixRlimit]) -> Result<(), String> {
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
        let cur = get(l.typ()).map_err(|e| format!("getrlimit RLIMIT_{}: {e}", name(l.typ())))?;
        if cur.rlim_max != libc::RLIM_INFINITY && l.hard() > cur.rlim_max {
            return Err(format!(
                "process.rlimits: RLIMIT_{} hard limit {} is above this host's hard limit {} and the runtime lacks CAP_SYS_RESOURCE to raise it",
                name(l.typ()),
                l.hard(),
                cur.rlim_max
            ));
        }
    }
    Ok(())
}

/// Set every limit on the calling process.
pub fn apply(limits: &[PosixRlimit]) -> Result<(), String> {
    for l in limits {
        let r = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: `r` is a valid rlimit read by setrlimit.
        if unsafe { libc::setrlimit(resource(l.typ()), &r) } != 0 {
            return Err(format!(
                "setrlimit RLIMIT_{}: {}",
                name(l.typ()),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
