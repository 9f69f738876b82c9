//! Signal names and numbers as `kill` accepts them (pure).

use nix::sys::signal::Signal;

/// `9`, `KILL`, `SIGKILL`, `sigkill` -> SIGKILL; `0` -> None: no signal, only the checks
/// (kill(2)'s signal 0, which runc's `kill` accepts too).
pub fn parse(s: &str) -> Result<Option<Signal>, String> {
    if let Ok(n) = s.parse::<i32>() {
        if n == 0 {
            return Ok(None);
        }
        return Signal::try_from(n)
            .map(Some)
            .map_err(|_| format!("unknown signal {s:?}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map(Some)
        .map_err(|_| format!("unknown signal {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("9").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse("KILL").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse("SIGTERM").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(parse("term").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(parse("0").unwrap(), None);
        assert!(parse("NOPE").is_err());
        assert!(parse("999").is_err());
        assert!(parse("").is_err());
    }
}
