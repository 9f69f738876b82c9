//! Finding and starting the container's program.

use std::ffi::CString;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Look `prog` up as execvp would, in the container's PATH.
pub fn lookup(prog: &str, env: &[String]) -> Result<PathBuf, String> {
    let is_exec =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        return if is_exec(&p) {
            Ok(p)
        } else {
            Err(format!(
                "exec: {prog:?}: no such executable file in the container"
            ))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(prog);
        if is_exec(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "exec: {prog:?}: executable file not found in $PATH"
    ))
}

pub fn cstrings(items: &[String]) -> Result<Vec<CString>, String> {
    items
        .iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("{s:?} contains a NUL byte")))
        .collect()
}
