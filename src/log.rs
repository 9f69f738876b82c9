//! The runtime's log, in runc's text shape (`time="..." level=error msg="..."`) or JSON shape
//! (`{"level":"error","msg":"...","time":"..."}`), to the `--log` file (which containerd's
//! shim and conmon parse) or else to stderr (where runc's test tools look for it).

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

/// The log file's descriptor, for a forked child that keeps logging.
pub fn fd() -> Option<i32> {
    use std::os::fd::AsRawFd;
    let f = LOGGER.get()?.file.as_ref()?;
    f.lock().ok().map(|f| f.as_raw_fd())
}

/// One log line in the given format (pure).
pub fn format_line(format: Format, level: &str, msg: &str, time: &str) -> String {
    match format {
        Format::Json => serde_json::json!({"level": level, "msg": msg, "time": time}).to_string(),
        Format::Text => format!("time={} level={level} msg={}", quote(time), quote(msg)),
    }
}

/// A value as logrus's text formatter writes it: bare when it is only letters, digits and
/// `-._/@^+`, else quoted.
fn quote(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if bare {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Where runc 1.1 writes: every line goes to the log (the `--log` file, else stderr) in the
/// chosen format; an error given a log file is also printed plainly on stderr. Nothing else
/// reaches stderr when there is a log file: during `create` a client (containerd's shim)
/// hands the runtime the container's own stderr.
fn emit(level: &str, msg: &str) {
    let logger = LOGGER.get();
    let format = logger.map_or(Format::Text, |l| l.format);
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let line = format_line(format, level, msg, &time);
    match logger.and_then(|l| l.file.as_ref()) {
        Some(f) => {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{line}");
            }
            if level == "error" {
                eprintln!("{msg}");
            }
        }
        None => eprintln!("{line}"),
    }
}

pub fn error(msg: &str) {
    emit("error", msg);
}

pub fn warn(msg: &str) {
    emit("warning", msg);
}

pub fn debug(msg: &str) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        emit("debug", msg);
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
            format_line(Format::Text, "error", "x \"y\"", "2026-12-04T17:00:41Z"),
            "time=\"2026-12-04T17:00:41Z\" level=error msg=\"x \\\"y\\\"\""
        );
        assert_eq!(
            format_line(Format::Text, "warning", "plain", "T"),
            "time=T level=warning msg=plain"
        );
    }
}
