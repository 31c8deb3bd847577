//! Node-local turns at a pool: the writers of one node take turns at an IPPool (an exclusive
//! `flock` on a file under [`TURN_DIR`]), so the API server sees at most one writer per node
//! per pool.
//!
//! Why: every write to an IPPool is one JSON patch of one object, and the API server applies
//! concurrent patches of one object by optimistic retries inside the server — each retry decodes,
//! patches, validates and re-encodes the whole pool and recomputes its managedFields. Measured
//! here (tests/bench/ipam.sh, 50 concurrent ADDs on one /16 pool of about 700 entries; CPU as
//! `top` showed it during the run): the kube-apiserver at 187 % CPU for about 2 allocations/s, where one writer at a time (whereabouts,
//! serialised by its Lease) does more. Across nodes the writes stay concurrent (a cluster of N
//! nodes has at most N writers per pool), and correctness never depends on a turn: the writes are
//! conditional as before. A turn not had within [`TURN_WAIT`], or a lock file that cannot be
//! opened, and the writer goes ahead without one.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

/// Where the lock files live: tmpfs, root's, gone at reboot (a turn is never held across one).
pub const TURN_DIR: &str = "/run/wasmcni/ipam";

/// How long a writer waits for its turn before it goes ahead anyway. Long: 50 writers that
/// give up after 5 s all write at once again (measured: a quarter of them then failed on
/// request timeouts); the kubelet gives a sandbox's CNI ADD minutes.
pub const TURN_WAIT: Duration = Duration::from_secs(30);

/// A turn at one pool, held until dropped (closing the file releases the lock, also when the
/// process dies).
#[derive(Debug)]
pub struct Turn {
    _lock: Flock<std::fs::File>,
}

/// Wait for the turn at pool `namespace/name` on this node; `None` when there is none to be had
/// (the directory or file cannot be made) or [`TURN_WAIT`] passed.
pub async fn take(namespace: &str, name: &str) -> Option<Turn> {
    take_in(Path::new(TURN_DIR), namespace, name, TURN_WAIT).await
}

pub(super) async fn take_in(
    dir: &Path,
    namespace: &str,
    name: &str,
    wait: Duration,
) -> Option<Turn> {
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        tracing::debug!("no turns at pools: {}: {e}", dir.display());
        return None;
    }
    // The file is named by a hash: pool names carry a NAD's network_name.
    let key = Sha256::digest(format!("{namespace}/{name}"));
    let file: String = key.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{file}.lock"));
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
    };
    let start = Instant::now();
    let mut f = match open() {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!("no turn at {namespace}/{name}: {}: {e}", path.display());
            return None;
        }
    };
    let mut pause = 1u64;
    loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Some(Turn { _lock: lock }),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if start.elapsed() < wait => {
                f = back;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                pause = (pause + 1).min(5);
            }
            Err((_, e)) => {
                tracing::info!(
                    "no turn at IPPool {namespace}/{name} after {} ms ({e}): going ahead",
                    start.elapsed().as_millis()
                );
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_at_a_time_per_pool_and_a_bounded_wait() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("turns");
        let a = take_in(&d, "kube-system", "10.0.0.0-24", TURN_WAIT).await;
        assert!(a.is_some());
        let other = take_in(&d, "kube-system", "10.0.1.0-24", TURN_WAIT).await;
        assert!(other.is_some(), "another pool is another turn");
        let t0 = Instant::now();
        let b = take_in(&d, "kube-system", "10.0.0.0-24", Duration::from_millis(50)).await;
        assert!(b.is_none(), "held: no second turn");
        assert!(t0.elapsed() >= Duration::from_millis(50));
        drop(a);
        let c = take_in(&d, "kube-system", "10.0.0.0-24", Duration::from_millis(50)).await;
        assert!(c.is_some(), "released on drop");
    }
}
