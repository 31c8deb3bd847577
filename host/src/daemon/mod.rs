//! Thick mode: one long-lived `wasmcni daemon` per node serves the CNI calls the runtime execs
//! `wasmcni` for, on one [`Node`](crate::node::Node) — one API connection, compiled guests kept
//! warm — instead of each call paying for a process's TLS handshakes and engine start.
//!
//! - [`wire`]: the frames between the two (a leaf);
//! - [`shim`]: the exec'd side, which falls back to running the call in-process;
//! - [`server`]: the daemon's socket, bounded;
//! - [`metrics`]: what it counts, and the endpoint that serves it with the probes.

pub mod metrics;
pub mod server;
pub mod shim;
pub mod wire;
