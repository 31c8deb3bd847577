//! The wire between the shim (`wasmcni` exec'd by the runtime) and the node daemon: one call per
//! connection, one frame each way, on a unix socket only root can reach.
//!
//! A call is what the runtime gave the shim — the `CNI_*` environment and stdin, as bytes (a
//! config that is not UTF-8 must get exec mode's decode error, byte for byte) — and a reply is
//! what the shim prints and its exit status, or "declined": the daemon did not run the call
//! (busy, shutting down), and the shim runs it in-process as exec mode does.
//!
//! ```text
//! call:  "WCN1" | u32 env length | env (JSON [[k, v], …]) | u32 stdin length | stdin
//! reply: "WCN1" | u8 status (0 ok, 1 failed, 2 declined) | u32 length | output (UTF-8)
//! ```
//! Lengths are big-endian and bounded ([`MAX_ENV`], [`cni::MAX_STDIN`], [`MAX_OUTPUT`]), so a
//! peer cannot make the other side allocate more than a few MiB.

use std::io::{Read, Write};

use crate::cni;

/// The first bytes of every frame: a protocol version, so a shim and a daemon of different
/// builds (a rolling upgrade) refuse each other instead of misreading.
pub const MAGIC: &[u8; 4] = b"WCN1";

/// The largest environment a call carries (the runtime's `CNI_*` variables are a few hundred
/// bytes; `CNI_ARGS` and `CNI_PATH` are the long ones).
pub const MAX_ENV: usize = 64 << 10;

/// The largest output a reply carries (a CNI result or error is a few KiB).
pub const MAX_OUTPUT: usize = 4 << 20;

/// What the runtime gave the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The `CNI_*` variables, in order.
    pub env: Vec<(String, String)>,
    /// stdin, as read.
    pub stdin: Vec<u8>,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The call ran: what to print on stdout and whether it succeeded.
    Answer {
        /// stdout (without the trailing newline the shim adds).
        out: String,
        /// Exit status 0.
        ok: bool,
    },
    /// The call did not run; the shim runs it in-process.
    Declined {
        /// Why, for the shim's log.
        why: String,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed or ended early.
    #[error("reading the frame: {0}")]
    Io(#[from] std::io::Error),
    /// Not a frame of this protocol version.
    #[error("not a wasmcni daemon frame (another version of wasmcni?)")]
    Magic,
    /// A length over its bound.
    #[error("{what} of {len} bytes is over the {max}-byte bound")]
    TooLong {
        /// Which part.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The environment is not `[[k, v], …]`, or the output not UTF-8.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

impl Call {
    /// The frame.
    pub fn encode(&self) -> Vec<u8> {
        let env = serde_json::to_vec(&self.env).expect("strings serialize");
        let mut out = Vec::with_capacity(12 + env.len() + self.stdin.len());
        out.extend_from_slice(MAGIC);
        put(&mut out, &env);
        put(&mut out, &self.stdin);
        out
    }

    /// Read one call frame from `r`.
    pub fn read(r: &mut impl Read) -> Result<Self, Error> {
        magic(r)?;
        let env = part(r, "the environment", MAX_ENV)?;
        let env = serde_json::from_slice(&env).map_err(|_| Error::Malformed("environment"))?;
        // One byte over the runtime's bound is still read, so the verb answers "too large" as
        // exec mode does rather than the wire refusing it.
        let stdin = part(r, "stdin", cni::MAX_STDIN + 1)?;
        Ok(Call { env, stdin })
    }
}

impl Reply {
    /// The frame.
    pub fn encode(&self) -> Vec<u8> {
        let (status, body) = match self {
            Reply::Answer { out, ok: true } => (0u8, out),
            Reply::Answer { out, ok: false } => (1, out),
            Reply::Declined { why } => (2, why),
        };
        let mut out = Vec::with_capacity(9 + body.len());
        out.extend_from_slice(MAGIC);
        out.push(status);
        put(&mut out, body.as_bytes());
        out
    }

    /// Read one reply frame from `r`.
    pub fn read(r: &mut impl Read) -> Result<Self, Error> {
        magic(r)?;
        let mut status = [0u8; 1];
        r.read_exact(&mut status)?;
        let body = part(r, "the output", MAX_OUTPUT)?;
        let body = String::from_utf8(body).map_err(|_| Error::Malformed("output"))?;
        Ok(match status[0] {
            0 => Reply::Answer {
                out: body,
                ok: true,
            },
            1 => Reply::Answer {
                out: body,
                ok: false,
            },
            2 => Reply::Declined { why: body },
            _ => return Err(Error::Malformed("status")),
        })
    }

    /// Write the frame to `w`.
    pub fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.encode())?;
        w.flush()
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("bounded far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn magic(r: &mut impl Read) -> Result<(), Error> {
    let mut m = [0u8; 4];
    r.read_exact(&mut m)?;
    if &m != MAGIC {
        return Err(Error::Magic);
    }
    Ok(())
}

fn part(r: &mut impl Read, what: &'static str, max: usize) -> Result<Vec<u8>, Error> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(Error::TooLong { what, len, max });
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bounds_hold() {
        let call = Call {
            env: vec![("CNI_COMMAND".into(), "ADD".into())],
            stdin: vec![0xff, 0xfe, b'{'],
        };
        assert_eq!(Call::read(&mut &call.encode()[..]).unwrap(), call);
        for reply in [
            Reply::Answer {
                out: "{}".into(),
                ok: true,
            },
            Reply::Answer {
                out: "{\"code\":11}".into(),
                ok: false,
            },
            Reply::Declined { why: "busy".into() },
        ] {
            assert_eq!(Reply::read(&mut &reply.encode()[..]).unwrap(), reply);
        }
        // A length over the bound is refused before anything is allocated for it.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Call::read(&mut &huge[..]),
            Err(Error::TooLong { .. })
        ));
        assert!(matches!(
            Call::read(&mut &b"HTTP/1.1"[..]),
            Err(Error::Magic)
        ));
        // A frame cut short is an I/O error, not a hang or a partial call.
        let cut = &call.encode()[..10];
        assert!(matches!(Call::read(&mut &cut[..]), Err(Error::Io(_))));
    }
}
