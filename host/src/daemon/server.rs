//! The node daemon's socket: it accepts calls from the shim and serves each on the one
//! [`Node`] it keeps for its life (one API connection, compiled guests, clients), exactly as
//! [`cmd::serve`] answers them — byte for byte what the call would print in a process of its own.
//!
//! Bounded: at most [`Limits::calls`] calls run at once, and at most [`Limits::waiting`] more
//! wait for a slot (each holds its frame, at most a few KiB in practice and ~1 MiB by the
//! wire's bounds); a call past both is declined, and the shim then runs it in-process. A call
//! that waited long for its slot says so in the log, and every call is counted in
//! [`Metrics`] (served by verb and code, waits, declines), which `--metrics` serves.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::metrics::{self, Metrics};
use super::wire::{self, Call, Reply};
use crate::cmd;
use crate::node::Node;

/// How long a connected shim may take to send its call (it has it in memory already).
const READ_WAIT: Duration = Duration::from_secs(10);

/// How long a stopping daemon lets the calls it took finish.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// A wait for a slot longer than this is logged.
const SLOW_WAIT: Duration = Duration::from_secs(1);

/// How many calls run at once and how many may wait.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls running at once.
    pub calls: usize,
    /// Calls waiting for a slot; one more is declined.
    pub waiting: usize,
}

/// The calls in the daemon now, shared by its connections.
struct State {
    node: Arc<Node>,
    slots: Semaphore,
    limits: Limits,
    /// Accepted and not yet answered (waiting or running).
    inside: AtomicUsize,
    metrics: Arc<Metrics>,
}

/// Serve CNI calls on `socket` until SIGTERM or SIGINT, then stop taking calls, remove the
/// socket and let the calls taken finish (for [`DRAIN_WAIT`] at most).
///
/// The socket's directory is made 0700 if missing and must not be writable by anyone but the
/// daemon's user; the socket is 0600, and a peer of another uid is declined. A socket left by a
/// daemon that died is replaced; one another daemon still answers on is an error.
///
/// `metrics`: where to serve [`metrics`]' endpoint (none when `None`); bound first, so a taken
/// address fails the start.
pub async fn run(
    socket: &Path,
    limits: Limits,
    node: Arc<Node>,
    metrics: Option<SocketAddr>,
) -> anyhow::Result<()> {
    // Before the socket exists: a SIGTERM as soon as it does is a clean stop, not a kill.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let counted = Arc::new(Metrics::new());
    let endpoint = match metrics {
        Some(addr) => {
            let l = metrics::listen(addr).await?;
            tracing::warn!("metrics on http://{addr}/metrics (and /healthz, /readyz)");
            Some(tokio::spawn(metrics::serve(l, counted.clone())))
        }
        None => None,
    };
    let listener = bind(socket)?;
    counted.set_ready(true);
    tracing::warn!(
        "wasmcni daemon serving on {} ({} calls at once, {} waiting)",
        socket.display(),
        limits.calls,
        limits.waiting
    );
    let state = Arc::new(State {
        node,
        slots: Semaphore::new(limits.calls.max(1)),
        limits,
        inside: AtomicUsize::new(0),
        metrics: counted.clone(),
    });
    let mut calls = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    calls.spawn(connection(state.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!("accept on {}: {e}", socket.display());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // From here a shim finds no socket and runs its call in-process.
    counted.set_ready(false);
    drop(listener);
    let _ = std::fs::remove_file(socket);
    let left = calls.len();
    tracing::warn!("wasmcni daemon stopping: {left} calls to finish");
    let drained = tokio::time::timeout(DRAIN_WAIT, async {
        while calls.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::error!(
            "wasmcni daemon stopped with {} calls unfinished after {DRAIN_WAIT:?}",
            calls.len()
        );
    }
    if let Some(e) = endpoint {
        e.abort();
    }
    Ok(())
}

/// The listening socket at `path`, in a directory only this user may change.
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("making {}", dir.display()))?;
    let meta = std::fs::metadata(&dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        bail!(
            "{} is owned by uid {} with mode {:o}: the daemon's socket directory must be its \
             user's ({me}) and writable by no one else (a shim would refuse the socket)",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon answers on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// One shim's call: admit it, wait for a slot, serve it, answer.
async fn connection(state: Arc<State>, mut stream: UnixStream) {
    // Counted from accept: a connection holds memory (its frame) before it is a call.
    let inside = state.inside.fetch_add(1, Ordering::SeqCst) + 1;
    let reply = match admit(&state, &mut stream, inside).await {
        Ok(call) => serve(&state, call).await,
        Err(why) => {
            tracing::info!("declined a call: {why}");
            state.metrics.declined();
            // Unread bytes would make the close a reset, and the shim would hear no reply.
            drain(&mut stream).await;
            Reply::Declined { why }
        }
    };
    state.inside.fetch_sub(1, Ordering::SeqCst);
    // A shim that gave up waiting is gone; the call has run all the same.
    let _ = stream.write_all(&reply.encode()).await;
    let _ = stream.shutdown().await;
}

/// The call on `stream`, if there is room for it (`inside` connections with it), its peer is
/// the daemon's user and it arrives in time.
async fn admit(state: &State, stream: &mut UnixStream, inside: usize) -> Result<Call, String> {
    let Limits { calls, waiting } = state.limits;
    if inside > calls + waiting {
        return Err(format!(
            "busy: {inside} calls inside ({calls} running at most, {waiting} waiting)"
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(c) if c.uid() == me => {}
        Ok(c) => return Err(format!("peer uid {} is not the daemon's ({me})", c.uid())),
        Err(e) => return Err(format!("no peer credentials: {e}")),
    }
    // The shim half-closes after its frame: read to the end, bounded.
    let bound = (12 + wire::MAX_ENV + crate::cni::MAX_STDIN + 1) as u64;
    let mut buf = Vec::new();
    let mut limited = (&mut *stream).take(bound);
    match tokio::time::timeout(READ_WAIT, limited.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("reading the call: {e}")),
        Err(_) => return Err(format!("no call within {READ_WAIT:?}")),
    }
    Call::read(&mut &buf[..]).map_err(|e| e.to_string())
}

/// Read what is left of a declined call and discard it, in small pieces (a declined call
/// must cost no memory).
async fn drain(stream: &mut UnixStream) {
    let mut chunk = [0u8; 4096];
    let _ = tokio::time::timeout(READ_WAIT, async {
        while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Run `call` in a slot. A panic in the verb answers code 999 as exec mode's does.
async fn serve(state: &State, call: Call) -> Reply {
    let t0 = Instant::now();
    let m = &state.metrics;
    m.waiting.inc();
    let slot = state.slots.acquire().await;
    m.waiting.dec();
    let Ok(_slot) = slot else {
        m.declined();
        return Reply::Declined {
            why: "the daemon is stopping".into(),
        };
    };
    let waited = t0.elapsed();
    let var = |name: &str| {
        call.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (verb, container) = (var("CNI_COMMAND"), var("CNI_CONTAINERID"));
    if waited > SLOW_WAIT {
        tracing::warn!(
            "{verb} waited {} ms for one of {} slots ({} calls inside)",
            waited.as_millis(),
            state.limits.calls,
            state.inside.load(Ordering::SeqCst)
        );
    }
    let node = state.node.clone();
    m.running.inc();
    // Its own task: a panic ends the task, not the daemon, and is answered.
    let ran = tokio::spawn(async move { cmd::serve(&node, &call.env, &call.stdin).await }).await;
    m.running.dec();
    let (out, ok) = ran
        .unwrap_or_else(|_| cmd::internal_error("wasmcni panicked (a bug; see the daemon's log)"));
    m.served(&verb, ok, &out, t0.elapsed() - waited, waited);
    tracing::info!(
        "served {verb} {} in {} ms ({} ms waiting): {}",
        container,
        t0.elapsed().as_millis(),
        waited.as_millis(),
        if ok { "ok" } else { "failed" }
    );
    Reply::Answer { out, ok }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::shim::{self, Outcome};

    fn env(command: &str) -> Vec<(String, String)> {
        [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
            ("HOME", "/root"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Through the socket, a call gets exec mode's answer byte for byte (here: ADDs refused
    /// before any side effect, and a config that is not JSON); a daemon with no room declines,
    /// and a stopped one leaves no socket.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_socket_answers_as_exec_mode_and_declines_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("run/daemon.sock");
        let conf = serde_json::json!({
            "cniVersion": "0.4.0", "name": "wasmcni", "type": "wasmcni",
            "kubeconfig": dir.path().join("kubeconfig"),
            "clusterNetwork": dir.path().join("missing.conflist"),
        })
        .to_string();
        let server = {
            let sock = sock.clone();
            let limits = Limits {
                calls: 2,
                waiting: 8,
            };
            tokio::spawn(async move { run(&sock, limits, Node::new(), None).await })
        };
        while !sock.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for stdin in [conf.as_bytes().to_vec(), b"{\"cniVersion\":".to_vec()] {
            let want = {
                let stdin = stdin.clone();
                std::thread::spawn(move || cmd::run(&env("ADD"), &stdin))
                    .join()
                    .unwrap()
            };
            let (s, e) = (sock.clone(), env("ADD"));
            let got = tokio::task::spawn_blocking(move || shim::forward(&s, &e, &stdin))
                .await
                .unwrap();
            match got {
                Outcome::Answered { out, ok } => assert_eq!((out, ok), want),
                o => panic!("{o:?}"),
            }
        }
        // 16 at once on 2 slots and 8 waiting: each is answered or declined, never lost.
        let calls = (0..16).map(|_| {
            let (s, e, c) = (sock.clone(), env("ADD"), conf.clone());
            tokio::task::spawn_blocking(move || shim::forward(&s, &e, c.as_bytes()))
        });
        let mut answered = 0;
        for o in futures::future::join_all(calls).await {
            match o.unwrap() {
                Outcome::Answered { ok: false, out } => {
                    assert!(out.contains("invalid clusterNetwork"), "{out}");
                    answered += 1;
                }
                Outcome::InProcess { why } => assert!(why.contains("busy"), "{why}"),
                o => panic!("{o:?}"),
            }
        }
        assert!(answered >= 2, "{answered} answered");
        // A second daemon on a socket that answers is refused.
        let second = run(
            &sock,
            Limits {
                calls: 1,
                waiting: 0,
            },
            Node::new(),
            None,
        )
        .await;
        assert!(format!("{:#}", second.unwrap_err()).contains("another daemon"));
        server.abort();
    }
}
