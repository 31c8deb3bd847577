//! Network namespaces: the one place that enters one.
//!
//! A netlink socket belongs to the namespace of the thread that created it. So a handle for a
//! pod's namespace is made on a short-lived OS thread that `setns`es and opens the socket, then
//! ends; no tokio worker ever changes namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;

/// Why entering or using a network namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace does not exist (any more). Not retryable.
    #[error("network namespace {path} is gone")]
    NetnsGone {
        /// Its path.
        path: PathBuf,
        /// The open/setns error.
        #[source]
        source: std::io::Error,
    },
    /// A per-interface sysctl of the pod could not be set.
    #[error("setting {key} in the pod")]
    Sysctl {
        /// The sysctl, as a /proc/sys path.
        key: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The path exists but is not a network namespace (a FIFO, a plain file, another kind of
    /// namespace). Not retryable: the runtime passed a wrong CNI_NETNS.
    #[error("{path} is not a network namespace: {why}")]
    NotANetns {
        /// Its path.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// A netlink socket (or the thread that opens it) could not be made.
    #[error("opening a netlink socket")]
    Socket {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An open network namespace (held by fd, so it cannot vanish under us mid-call).
#[derive(Debug)]
pub struct Netns {
    path: PathBuf,
    file: File,
}

impl Netns {
    /// Open the namespace at `path` (a bind mount like /var/run/netns/X or /proc/PID/ns/net).
    ///
    /// The open never blocks (a FIFO at the path opens at once with O_NONBLOCK) and the opened
    /// file must be on nsfs, the namespace filesystem, and a network namespace.
    pub fn open(path: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| Error::NetnsGone {
                path: path.to_path_buf(),
                source,
            })?;
        let not = |why: String| Error::NotANetns {
            path: path.to_path_buf(),
            why,
        };
        // NSFS_MAGIC (linux/magic.h): what /proc/PID/ns/net and its bind mounts live on.
        const NSFS_MAGIC: i64 = 0x6e73_6673;
        let fs = nix::sys::statfs::fstatfs(&file).map_err(|e| not(e.to_string()))?;
        if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
            let kind = file
                .metadata()
                .map(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    let t = m.file_type();
                    if t.is_fifo() {
                        "a FIFO"
                    } else if t.is_dir() {
                        "a directory"
                    } else {
                        "a plain file"
                    }
                })
                .unwrap_or("unreadable");
            return Err(not(format!("it is {kind}, not a namespace file")));
        }
        // NS_GET_NSTYPE would tell the kind; setns(CLONE_NEWNET) refuses any other kind anyway.
        Ok(Netns {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Its path as the runtime gave it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fd, for IFLA_NET_NS_FD.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// An rtnetlink handle whose socket lives in this namespace.
    pub fn handle(&self) -> Result<Handle, Error> {
        let file = self
            .file
            .try_clone()
            .map_err(|source| Error::Socket { source })?;
        let path = self.path.clone();
        let runtime = tokio::runtime::Handle::current();
        let made = std::thread::spawn(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::NetnsGone {
                path,
                source: std::io::Error::from(e),
            })?;
            // The socket registers with the caller's runtime but is created in this namespace.
            let _guard = runtime.enter();
            rtnetlink::new_connection().map_err(|source| Error::Socket { source })
        })
        .join()
        .map_err(|_| Error::Socket {
            source: std::io::Error::other("netns thread panicked"),
        })??;
        let (connection, handle, _) = made;
        tokio::spawn(connection);
        Ok(handle)
    }
}

/// One sysctl to set in a pod's namespace.
#[derive(Debug, Clone)]
pub struct Sysctl {
    /// The path under /proc/sys, e.g. `net/ipv4/conf/net1/arp_notify`.
    pub key: String,
    /// The value to write.
    pub value: &'static str,
    /// Whether failing to set it fails the call (else it is logged, as the reference plugins
    /// ignore theirs).
    pub required: bool,
}

impl Netns {
    /// Set sysctls of this namespace, all from one short-lived thread inside it: /proc/sys/net
    /// shows the namespace of the thread that opens it.
    pub fn set_sysctls(&self, values: Vec<Sysctl>) -> Result<(), Error> {
        let file = self
            .file
            .try_clone()
            .map_err(|source| Error::Socket { source })?;
        let path = self.path.clone();
        std::thread::spawn(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::NetnsGone {
                path,
                source: std::io::Error::from(e),
            })?;
            for s in values {
                match std::fs::write(format!("/proc/sys/{}", s.key), s.value) {
                    Ok(()) => {}
                    Err(source) if s.required => {
                        return Err(Error::Sysctl { key: s.key, source });
                    }
                    Err(e) => tracing::debug!("sysctl {}: {e}", s.key),
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| Error::Socket {
            source: std::io::Error::other("netns thread panicked"),
        })?
    }
}

/// An rtnetlink handle in the namespace wasmcni runs in (the node's).
pub fn host_handle() -> Result<Handle, Error> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| Error::Socket { source })?;
    tokio::spawn(connection);
    Ok(handle)
}
