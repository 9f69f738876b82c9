//! The runtime's log: errors and warnings to stderr and, with `--log`, to a file in runc's
//! text or JSON shape (`{"level":"error","msg":"...","time":"..."}`), which containerd's shim
//! and conmon parse.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<Mutex<File>>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Set up logging once, from the global flags.
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        )),
        None => None,
    };
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
    Ok(())
}

/// One log line in the given format (pure).
pub fn format_line(format: Format, level: &str, msg: &str, time: &str) -> String {
    match format {
        Format::Json => serde_json::json!({"level": level, "msg": msg, "time": time}).to_string(),
        Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
    }
}

fn emit(level: &str, msg: &str, to_stderr: bool) {
    let logger = LOGGER.get();
    if to_stderr {
        eprintln!("contain: {msg}");
    }
    if let Some(Logger {
        file: Some(f),
        format,
        ..
    }) = logger
    {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        if let Ok(mut f) = f.lock() {
            let _ = writeln!(f, "{}", format_line(*format, level, msg, &time));
        }
    }
}

pub fn error(msg: &str) {
    emit("error", msg, true);
}

pub fn warn(msg: &str) {
    emit("warning", msg, true);
}

pub fn debug(msg: &str) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        emit("debug", msg, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let j = format_line(Format::Json, "error", "a \"b\"", "T");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "a \"b\"");
        assert_eq!(
            format_line(Format::Text, "error", "x y", "T"),
            "time=\"T\" level=error msg=\"x y\""
        );
    }
}
