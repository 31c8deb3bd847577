//! Reading the files a runtime or a config names (the cluster network's conflist, the
//! kubeconfig, a guest module on the node): regular files only, of bounded size, and never a
//! blocking open — a FIFO or a device where a file is expected is refused at once instead of
//! hanging the CNI call.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a named file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or reading failed (missing, permission, I/O).
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// It is a FIFO, socket, device or directory.
    #[error("it is not a regular file (a {0})")]
    NotRegular(&'static str),
    /// It is larger than the caller accepts.
    #[error("it is larger than {max} bytes ({size})")]
    TooLarge {
        /// The limit.
        max: u64,
        /// Its size.
        size: u64,
    },
}

/// The bytes of `path`, which must be a regular file of at most `max` bytes. The open does not
/// block (O_NONBLOCK: a FIFO with no writer opens at once) and the file's type is checked on the
/// opened descriptor, so what is checked is what is read.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    check(&meta)?;
    if meta.len() > max {
        return Err(Error::TooLarge {
            max,
            size: meta.len(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while it is read.
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::TooLarge {
            max,
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// `Ok` when `path` is a regular file (checked without a blocking open).
pub fn check_regular(path: &Path) -> Result<(), Error> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    check(&f.metadata()?)
}

fn check(meta: &std::fs::Metadata) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    Err(Error::NotRegular(if t.is_fifo() {
        "FIFO"
    } else if t.is_dir() {
        "directory"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else {
        "special file"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `f` on a thread and fails (instead of hanging the suite) if it does not return.
    fn returns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the read blocked: a FIFO must be refused at once")
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("cluster.conflist");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let p = fifo.clone();
        let e = returns(move || read_regular(&p, 1 << 20)).unwrap_err();
        assert!(matches!(e, Error::NotRegular("FIFO")), "{e}");
        let e = returns(move || check_regular(&fifo)).unwrap_err();
        assert_eq!(e.to_string(), "it is not a regular file (a FIFO)");
    }

    #[test]
    fn sizes_are_bounded_and_directories_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_regular(&f, 10).unwrap(), b"0123456789");
        assert!(matches!(
            read_regular(&f, 9),
            Err(Error::TooLarge { max: 9, size: 10 })
        ));
        assert!(matches!(
            read_regular(dir.path(), 10),
            Err(Error::NotRegular("directory"))
        ));
        assert!(matches!(
            read_regular(&dir.path().join("none"), 10),
            Err(Error::Io(_))
        ));
    }
}
