//! The CNI protocol: environment + stdin in, result or error JSON out (spec 0.3.0 – 1.1.0).
//!
//! A leaf: it imports no other module of the host. Every other module returns its own typed
//! error; the verbs (`cmd::codes`) are the one place those become a [`Code`].

mod env;
mod error;
pub mod types;

pub use env::{CniArgs, Command, ContainerId, IfName, Request, validate_ifname};
pub use error::{Code, Error};

/// The largest stdin accepted. Network configs are a few KiB; Multus caps delegates similarly.
pub const MAX_STDIN: usize = 1 << 20;

/// Versions of the spec this plugin implements, in the order VERSION reports them.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Whether `version` is one this plugin speaks.
pub fn supports(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}
