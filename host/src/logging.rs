//! Logs go to stderr (never stdout, which carries the CNI result) and optionally a file.
//!
//! Two sources set them, the later winning: the environment at start (`WASMCNI_LOG`,
//! `WASMCNI_LOG_FILE`), then each call's network config (Multus' `logLevel`, `logFile`,
//! `logToStderr`, see [`configure`]) — so a Multus config's logging keys mean what they meant.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, RwLock};

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// The level now in force, as [`rank`] numbers it.
static LEVEL: AtomicU8 = AtomicU8::new(2);
/// Where lines go now.
static SINK: RwLock<Sink> = RwLock::new(Sink {
    file: None,
    stderr: true,
});

struct Sink {
    /// The log file and its path (kept open across calls of one process).
    file: Option<(PathBuf, Mutex<std::fs::File>)>,
    /// Whether lines also go to stderr.
    stderr: bool,
}

fn rank(l: Level) -> u8 {
    match l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Initialise logging from `WASMCNI_LOG` (`error`, `warn`, `info`, `debug`; default `warn`) and
/// `WASMCNI_LOG_FILE` (append there instead of stderr).
pub fn init() {
    let level = std::env::var("WASMCNI_LOG")
        .ok()
        .and_then(|l| l.parse::<Level>().ok())
        .unwrap_or(Level::WARN);
    LEVEL.store(rank(level), Ordering::Relaxed);
    if let Some(p) = std::env::var_os("WASMCNI_LOG_FILE") {
        set_file(Some(Path::new(&p)), false);
    }
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .with_target(false)
        .with_writer(Lines)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(|meta| {
            rank(*meta.level()) <= LEVEL.load(Ordering::Relaxed)
        }));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Apply a network config's logging keys: `level` when set, `file` when set (appended, created
/// 0600), and whether stderr gets lines too (Multus' `logToStderr`, default true). Unset keys
/// leave what the environment chose.
pub fn configure(level: Option<Level>, file: Option<&Path>, to_stderr: bool) {
    if let Some(l) = level {
        LEVEL.store(rank(l), Ordering::Relaxed);
    }
    if file.is_some() || !to_stderr {
        set_file(file, to_stderr);
    }
}

fn set_file(path: Option<&Path>, stderr: bool) {
    let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
    sink.stderr = stderr;
    let Some(path) = path else {
        return;
    };
    if sink.file.as_ref().is_some_and(|(p, _)| p == path) {
        return;
    }
    use std::os::unix::fs::OpenOptionsExt;
    // 0600: log lines name pods, networks and addresses of every tenant on the node.
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => sink.file = Some((path.to_path_buf(), Mutex::new(f))),
        Err(e) => {
            // Said where it can still be read; the call goes on.
            sink.stderr = true;
            let _ = writeln!(
                std::io::stderr(),
                "wasmcni: cannot open log file {}: {e}",
                path.display()
            );
        }
    }
}

/// The writer of each line: the file and/or stderr, as [`SINK`] says at that moment.
struct Lines;

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::with_capacity(256))
    }
}

/// One formatted line, written out whole when dropped (lines of concurrent calls never mix).
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, f)) = &sink.file
            && let Ok(mut f) = f.lock()
        {
            let _ = f.write_all(&self.0);
        }
        if sink.stderr {
            let _ = std::io::stderr().write_all(&self.0);
        }
    }
}
