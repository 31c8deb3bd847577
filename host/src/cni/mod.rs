//! The CNI protocol: environment + stdin in, result or error JSON out (spec 0.1.0 – 1.1.0).
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

/// Versions of the spec this plugin implements — every one libcni has a result type for
/// (`version.All`) — oldest first, in the order VERSION reports them.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The version a config declares, as libcni and skel read it: an absent or empty `cniVersion`
/// is 0.1.0 (`version.ConfigDecoder`).
pub fn declared_version(cni_version: &str) -> &str {
    if cni_version.is_empty() {
        "0.1.0"
    } else {
        cni_version
    }
}

/// Whether `version` is one this plugin speaks (`""` is 0.1.0).
pub fn supports(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&declared_version(version))
}

/// Whether `version` is `since` or later, for the verbs and behaviours that came with a
/// version (CHECK and a DEL's cached result with 0.4.0, STATUS and GC with 1.1.0). A version
/// this plugin does not speak is never at least anything.
pub fn at_least(version: &str, since: &str) -> bool {
    let rank = |v: &str| {
        SUPPORTED_VERSIONS
            .iter()
            .position(|s| *s == declared_version(v))
    };
    matches!((rank(version), rank(since)), (Some(v), Some(s)) if v >= s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ordered_and_empty_is_0_1_0() {
        assert!(supports("") && supports("0.2.0") && !supports("0.5.0"));
        assert!(at_least("0.4.0", "0.4.0") && at_least("1.0.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0") && !at_least("", "0.2.0"));
        assert!(at_least("", "0.1.0"));
        assert!(
            !at_least("9.9.9", "0.1.0"),
            "an unknown version predates nothing"
        );
    }
}
