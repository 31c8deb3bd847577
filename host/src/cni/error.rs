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

/// The causes of `e` (its sources, not `e` itself), flattened for `details`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = String::new();
    let mut cur = e.source();
    while let Some(src) = cur {
        let more = src.to_string();
        if !s.contains(&more) {
            if !s.is_empty() {
                s.push_str(": ");
            }
            s.push_str(&more);
        }
        cur = src.source();
    }
    s
}

impl From<crate::k8s::Error> for Error {
    fn from(e: crate::k8s::Error) -> Self {
        use crate::k8s::Error as K;
        let code = match &e {
            K::Unreachable { .. } => Code::TryAgainLater,
            K::PodNotFound { .. } => Code::UnknownContainer,
            K::NetworkNotFound { .. } => Code::NetworkNotFound,
            K::Kubeconfig { .. } | K::BadNetworkConfig { .. } => Code::InvalidConfig,
            K::Api { .. } => Code::ApiServer,
        };
        Error::new(code, e.to_string(), chain(&e))
    }
}

impl From<crate::guest::Error> for Error {
    fn from(e: crate::guest::Error) -> Self {
        use crate::guest::Error as G;
        let code = match &e {
            G::NotFound { .. } => Code::GuestNotFound,
            G::Denied { .. } => Code::GuestDenied,
            G::Trapped { .. } | G::Invalid { .. } | G::Load { .. } => Code::GuestFailed,
        };
        Error::new(code, e.to_string(), chain(&e))
    }
}

impl From<crate::ipam::Error> for Error {
    fn from(e: crate::ipam::Error) -> Self {
        use crate::ipam::Error as I;
        match e {
            I::Guest(g) => g.into(),
            I::Store(k) => k.into(),
            I::Exhausted { .. } | I::Unavailable { .. } => {
                Error::new(Code::AddressExhausted, e.to_string(), chain(&e))
            }
            I::Conflict { .. } => Error::new(Code::TryAgainLater, e.to_string(), chain(&e)),
            I::Config { .. } => Error::new(Code::InvalidConfig, e.to_string(), chain(&e)),
        }
    }
}

impl From<crate::netlink::Error> for Error {
    fn from(e: crate::netlink::Error) -> Self {
        use crate::netlink::Error as N;
        let code = match &e {
            N::NetnsGone { .. } => Code::UnknownContainer,
            N::MasterMissing { .. } | N::Mtu { .. } => Code::InvalidConfig,
            _ => Code::Netlink,
        };
        Error::new(code, e.to_string(), chain(&e))
    }
}

impl From<crate::delegate::Error> for Error {
    fn from(e: crate::delegate::Error) -> Self {
        use crate::delegate::Error as D;
        match e {
            D::Plugin {
                code,
                msg,
                details,
                network,
                step,
            } => {
                // A delegate's own spec code (1–99) passes through; its own codes (100+) become ours.
                let code = match code {
                    1 => Code::IncompatibleVersion,
                    2 => Code::UnsupportedField,
                    3 => Code::UnknownContainer,
                    4 => Code::InvalidEnv,
                    5 => Code::Io,
                    6 => Code::Decode,
                    7 => Code::InvalidConfig,
                    11 => Code::TryAgainLater,
                    _ => Code::Delegate,
                };
                Error::new(code, msg, format!("network {network}, {step}: {details}"))
            }
            D::NotFound { .. } | D::Config { .. } => {
                Error::new(Code::InvalidConfig, e.to_string(), chain(&e))
            }
            D::Exec { .. } | D::BadOutput { .. } => {
                Error::new(Code::Delegate, e.to_string(), chain(&e))
            }
            D::Cache { .. } => Error::new(Code::Io, e.to_string(), chain(&e)),
            D::Engine(_) => Error::new(Code::Internal, e.to_string(), ""),
            D::Drift { .. } => Error::new(Code::Drift, "CHECK found drift", e.to_string()),
            D::Ipam(i) => i.into(),
            D::Guest(g) => g.into(),
            D::Api(k) => k.into(),
            D::Netlink(n) => n.into(),
        }
    }
}
