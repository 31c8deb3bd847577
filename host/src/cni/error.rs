//! CNI error codes and the error JSON (spec: "Error" section).

use serde::Serialize;

/// A CNI error code. 1–99 are the spec's; 100 and up are wasmcni's (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the config's cniVersion is not supported.
    IncompatibleVersion = 1,
    /// 2: a field in the config is not supported.
    UnsupportedField = 2,
    /// 3: the container (or its netns) does not exist.
    UnknownContainer = 3,
    /// 4: a required environment variable is missing or invalid.
    InvalidEnv = 4,
    /// 5: an I/O failure (stdin, cache files).
    Io = 5,
    /// 6: stdin could not be decoded.
    Decode = 6,
    /// 7: the network configuration is invalid.
    InvalidConfig = 7,
    /// 11: try again later (a conflict that outlasted the retries, the API server unreachable).
    TryAgainLater = 11,
    /// 50: STATUS: the plugin is not available.
    NotAvailable = 50,
    /// 51: STATUS: not available, and pods already attached may have limited connectivity.
    NotAvailableLimited = 51,
    /// 100: a policy guest refused the pod (bad annotation, forbidden network).
    GuestDenied = 100,
    /// 101: a policy guest failed: trap, deadline, memory cap, or an answer the host rejected.
    GuestFailed = 101,
    /// 102: a named guest is missing, unpinned, or its bytes do not match the pinned sha256.
    GuestNotFound = 102,
    /// 103: a requested NetworkAttachmentDefinition does not exist.
    NetworkNotFound = 103,
    /// 104: the Kubernetes API answered with an error.
    ApiServer = 104,
    /// 105: the address range has no free address.
    AddressExhausted = 105,
    /// 106: a netlink operation (link, address, route) failed.
    Netlink = 106,
    /// 107: a delegated plugin (exec'd from CNI_PATH) failed.
    Delegate = 107,
    /// 108: CHECK found an attachment that differs from what ADD made (link, address, route,
    /// or the IPAM allocation).
    Drift = 108,
    /// 999: a bug.
    Internal = 999,
}

/// A CNI error: what the runtime receives on stdout.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct Error {
    /// The code.
    pub code: Code,
    /// A short message.
    pub msg: String,
    /// What happened and what a person can do about it.
    pub details: String,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl Error {
    /// An error with `code`, a short `msg` and actionable `details`.
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error JSON the spec defines, for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        serde_json::to_string(&Wire {
            cni_version,
            code: self.code as u32,
            msg: &self.msg,
            details: &self.details,
        })
        .expect("error JSON serializes")
    }

    /// Prefix the details with where the error happened (a network, a step).
    pub fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.details = if self.details.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", self.details)
        };
        self
    }
}
