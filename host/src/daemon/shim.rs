//! The shim: `wasmcni` exec'd by the runtime hands its call to the node daemon when one serves
//! this node, and prints the daemon's answer — byte for byte what it would have printed itself.
//!
//! The daemon is never needed: with no socket, a socket no one answers on, one that fails the
//! ownership check, or a daemon that declines (busy, stopping), the call runs in-process
//! exactly as exec mode does. Once a call has reached the daemon, the verb decides: DEL and GC
//! are idempotent and must never block on a daemon (Multus #1146), so a daemon that does not
//! answer within [`RELEASE_WAIT`] (or drops the call) has them run in-process as well; an ADD
//! already taken by the daemon is not run a second time beside it — it waits for the answer up
//! to [`ANSWER_WAIT`], and otherwise fails with code 11 for the runtime to retry.
//!
//! Synchronous and allocation-light: the shim runs on every CNI call and starts no runtime.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::wire::{self, Call, Reply};
use crate::cni::{Code, Error};

/// Where the daemon listens unless [`SOCKET_ENV`] says otherwise (the DaemonSet mounts
/// `/run/wasmcni` from the host).
pub const DEFAULT_SOCKET: &str = "/run/wasmcni/daemon.sock";

/// The environment variable naming the socket; empty: never use a daemon.
pub const SOCKET_ENV: &str = "WASMCNI_DAEMON_SOCKET";

/// How long an ADD, CHECK or STATUS waits for the daemon's answer: under the kubelet's 2-minute
/// runtime request timeout, so the runtime hears code 11 rather than cancelling.
pub const ANSWER_WAIT: Duration = Duration::from_secs(110);

/// How long a DEL or GC waits for the daemon before it runs in-process.
pub const RELEASE_WAIT: Duration = Duration::from_secs(15);

/// What became of a call offered to the daemon.
#[derive(Debug)]
pub enum Outcome {
    /// Answered: print `out`, exit 0 when `ok`.
    Answered {
        /// stdout.
        out: String,
        /// Exit status 0.
        ok: bool,
    },
    /// Not served by a daemon: run it in-process.
    InProcess {
        /// Why, for the log.
        why: String,
    },
}

/// The socket this call should go to: [`SOCKET_ENV`] if set (empty: none), else
/// [`DEFAULT_SOCKET`]. VERSION never goes to a daemon (it needs nothing a daemon keeps).
pub fn socket(env: &[(String, String)]) -> Option<PathBuf> {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("CNI_COMMAND") == Some("VERSION") {
        return None;
    }
    match get(SOCKET_ENV) {
        Some("") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// Offer the call (the runtime's `CNI_*` variables of `env`, and `stdin`) to the daemon at
/// `socket`.
pub fn forward(socket: &Path, env: &[(String, String)], stdin: &[u8]) -> Outcome {
    let in_process = |why: String| Outcome::InProcess { why };
    if let Err(why) = trusted(socket) {
        return in_process(why);
    }
    let releases = env
        .iter()
        .any(|(k, v)| k == "CNI_COMMAND" && (v == "DEL" || v == "GC"));
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        // Absent, refused (a daemon that died), or its backlog full: never reached it.
        Err(e) => return in_process(format!("{}: {e}", socket.display())),
    };
    let call = Call {
        env: env
            .iter()
            .filter(|(k, _)| k.starts_with("CNI_"))
            .cloned()
            .collect(),
        stdin: stdin.to_vec(),
    };
    let wait = if releases { RELEASE_WAIT } else { ANSWER_WAIT };
    let sent = stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.set_read_timeout(Some(wait)))
        .and_then(|()| stream.write_all(&call.encode()))
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write));
    if let Err(e) = sent {
        // The frame did not get through whole: the daemon parses nothing and runs nothing.
        return in_process(format!("sending to {}: {e}", socket.display()));
    }
    let mut buf = Vec::new();
    let read = (&mut stream)
        .take(wire::MAX_OUTPUT as u64 + 16)
        .read_to_end(&mut buf)
        .map_err(wire::Error::Io)
        .and_then(|_| Reply::read(&mut &buf[..]));
    match read {
        Ok(Reply::Answer { out, ok }) => Outcome::Answered { out, ok },
        Ok(Reply::Declined { why }) => in_process(format!("the daemon declined: {why}")),
        Err(e) if releases => in_process(format!("no answer from the daemon: {e}")),
        Err(e) => {
            let e = Error::new(
                Code::TryAgainLater,
                "the node daemon did not answer",
                format!(
                    "{} took the call and gave no answer ({e}; waited {wait:?} at most): it may \
                     have died with it; the runtime retries; see the daemon's log",
                    socket.display()
                ),
            );
            let (out, ok) = crate::cmd::failed(stdin, e);
            Outcome::Answered { out, ok }
        }
    }
}

/// The socket is one the daemon made: a socket of this user in a directory no one else may
/// write (else anyone who could put a socket there would answer the runtime's calls).
fn trusted(socket: &Path) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let meta =
        std::fs::symlink_metadata(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    if !meta.file_type().is_socket() || meta.uid() != me {
        return Err(format!(
            "{} is not a socket of uid {me}: not used",
            socket.display()
        ));
    }
    let dir = socket.parent().unwrap_or(Path::new("."));
    let dir = std::fs::metadata(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .map_err(|e| format!("{}: {e}", dir.display()))?;
    if dir.uid() != me || dir.mode() & 0o022 != 0 {
        return Err(format!(
            "the directory of {} is writable by others: not used",
            socket.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_socket_is_the_default_the_env_or_none() {
        let add = env(&[("CNI_COMMAND", "ADD")]);
        assert_eq!(socket(&add), Some(PathBuf::from(DEFAULT_SOCKET)));
        let off = env(&[("CNI_COMMAND", "DEL"), (SOCKET_ENV, "")]);
        assert_eq!(socket(&off), None);
        let mine = env(&[("CNI_COMMAND", "ADD"), (SOCKET_ENV, "/tmp/x.sock")]);
        assert_eq!(socket(&mine), Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(socket(&env(&[("CNI_COMMAND", "VERSION")])), None);
    }

    #[test]
    fn no_daemon_means_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("daemon.sock");
        let e = env(&[("CNI_COMMAND", "ADD")]);
        assert!(matches!(
            forward(&missing, &e, b"{}"),
            Outcome::InProcess { .. }
        ));
        // A stale socket (its daemon gone): refused on connect, run in-process.
        drop(std::os::unix::net::UnixListener::bind(&missing).unwrap());
        assert!(matches!(
            forward(&missing, &e, b"{}"),
            Outcome::InProcess { .. }
        ));
        // A plain file where the socket should be is not trusted.
        let file = dir.path().join("file.sock");
        std::fs::write(&file, b"").unwrap();
        match forward(&file, &e, b"{}") {
            Outcome::InProcess { why } => assert!(why.contains("not a socket"), "{why}"),
            o => panic!("{o:?}"),
        }
    }
}
