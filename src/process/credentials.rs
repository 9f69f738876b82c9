//! The process's credentials: its user, group and additional groups, set so that the
//! capabilities the caller keeps survive the change of uid (shared by the init, `exec` and
//! the microVM's guest agent).

use super::ProcessError;
use crate::sys::during;
use nix::unistd::{setresgid, setresuid, Gid, Uid};

use crate::sys;

/// Become `user` (additional groups, gid, uid), keeping the permitted capabilities.
pub(crate) fn set_user(user: &oci_spec::runtime::User) -> Result<(), ProcessError> {
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if let Err(e) = nix::unistd::setgroups(&groups) {
        // With setgroups denied (an unprivileged user namespace) only an empty list is fine.
        if !groups.is_empty() || e != nix::errno::Errno::EPERM {
            return Err(during("process.user.additionalGids: setgroups")(e).into());
        }
    }
    sys::set_keep_caps(true).map_err(during("prctl keepcaps"))?;
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    setresgid(gid, gid, gid).map_err(during(format!("process.user.gid {gid}")))?;
    setresuid(uid, uid, uid).map_err(during(format!("process.user.uid {uid}")))?;
    sys::set_keep_caps(false).map_err(during("prctl keepcaps"))?;
    Ok(())
}
