//! Logs go to stderr (never stdout, which carries the CNI result) and optionally a file.

use std::sync::Mutex;

/// Initialise logging from `WASMCNI_LOG` (`error`, `warn`, `info`, `debug`; default `warn`) and
/// `WASMCNI_LOG_FILE` (append there instead of stderr).
pub fn init() {
    let level = std::env::var("WASMCNI_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::WARN);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    // 0600: log lines name pods, networks and addresses of every tenant on the node.
    let file = std::env::var_os("WASMCNI_LOG_FILE").and_then(|p| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(p)
            .ok()
    });
    let _ = match file {
        Some(f) => builder.with_writer(Mutex::new(f)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}
