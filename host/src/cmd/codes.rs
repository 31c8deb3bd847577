//! The one place module errors become CNI codes: the edge that answers the runtime.
//!
//! Every module below the verbs returns its own typed error, whose variants say what failed and
//! whether trying again can help; here each variant gets the spec's (or wasmcni's) code, and its
//! causes become `details`. Nothing below `cmd` knows a code.

use crate::cni::{Code, Error};
use crate::{config, delegate, guest, ipam, k8s, netlink, netns};

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

fn with_chain(code: Code, e: &dyn std::error::Error) -> Error {
    Error::new(code, e.to_string(), chain(e))
}

impl From<config::Error> for Error {
    fn from(e: config::Error) -> Self {
        use config::Error as C;
        match &e {
            C::NotJson(source) => Error::new(
                Code::Decode,
                "network config is not JSON",
                format!("stdin: {source}"),
            ),
            C::NotObject => Error::new(
                Code::InvalidConfig,
                "invalid wasmcni network config",
                "stdin must be a JSON object (a plugin's config)",
            ),
            C::Version { found } => Error::new(
                Code::IncompatibleVersion,
                "unsupported cniVersion",
                format!(
                    "cniVersion {found:?}; wasmcni supports {}",
                    crate::cni::SUPPORTED_VERSIONS.join(", ")
                ),
            ),
            C::Invalid(source) => Error::new(
                Code::InvalidConfig,
                "invalid wasmcni network config",
                source.to_string(),
            ),
            C::Refused { key, why } => Error::new(
                Code::InvalidConfig,
                format!("invalid network config key {key:?}"),
                why.clone(),
            ),
        }
    }
}

impl From<k8s::Error> for Error {
    fn from(e: k8s::Error) -> Self {
        use k8s::Error as K;
        let code = match &e {
            K::Unreachable { .. } => Code::TryAgainLater,
            K::PodNotFound { .. } => Code::UnknownContainer,
            K::NetworkNotFound { .. } => Code::NetworkNotFound,
            K::Kubeconfig { .. } | K::BadNetworkConfig { .. } => Code::InvalidConfig,
            K::Api { .. } => Code::ApiServer,
        };
        with_chain(code, &e)
    }
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        use guest::Error as G;
        let code = match &e {
            G::NotFound { .. } => Code::GuestNotFound,
            G::Denied { .. } => Code::GuestDenied,
            G::Trapped { .. } | G::Invalid { .. } | G::Load { .. } => Code::GuestFailed,
            G::Engine { .. } => Code::Internal,
        };
        with_chain(code, &e)
    }
}

impl From<ipam::Error<guest::Error>> for Error {
    fn from(e: ipam::Error<guest::Error>) -> Self {
        use ipam::Error as I;
        match e {
            I::Proposer(g) => g.into(),
            I::Store(k) => k.into(),
            I::InvalidProposal { .. } => with_chain(Code::GuestFailed, &e),
            I::Exhausted { .. } | I::Unavailable { .. } => with_chain(Code::AddressExhausted, &e),
            I::Conflict { .. } => with_chain(Code::TryAgainLater, &e),
            I::Config { .. } => with_chain(Code::InvalidConfig, &e),
        }
    }
}

impl From<ipam::Error> for Error {
    fn from(e: ipam::Error) -> Self {
        Error::from(e.widen::<guest::Error>())
    }
}

impl From<netns::Error> for Error {
    fn from(e: netns::Error) -> Self {
        let code = match &e {
            netns::Error::NetnsGone { .. } => Code::UnknownContainer,
            netns::Error::NotANetns { .. } => Code::InvalidEnv,
            netns::Error::Sysctl { .. } | netns::Error::Socket { .. } => Code::Netlink,
        };
        with_chain(code, &e)
    }
}

impl From<netlink::Error> for Error {
    fn from(e: netlink::Error) -> Self {
        use netlink::Error as N;
        match e {
            N::Netns(n) => n.into(),
            N::MasterMissing { .. } | N::Mtu { .. } => with_chain(Code::InvalidConfig, &e),
            N::LinkCreate { .. } | N::Configure { .. } => with_chain(Code::Netlink, &e),
        }
    }
}

impl From<delegate::Error> for Error {
    fn from(e: delegate::Error) -> Self {
        use delegate::Error as D;
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
                    50 => Code::NotAvailable,
                    51 => Code::NotAvailableLimited,
                    _ => Code::Delegate,
                };
                Error::new(code, msg, format!("network {network}, {step}: {details}"))
            }
            D::ClusterNetwork { path, why } => Error::new(
                Code::InvalidConfig,
                "invalid clusterNetwork",
                format!("{}: {why}", path.display()),
            ),
            D::Isolated {
                network,
                pod_namespace,
                global,
            } => Error::new(
                Code::GuestDenied,
                format!("network {network} is not allowed for pods in namespace {pod_namespace}"),
                format!(
                    "namespaceIsolation is on: pods may use NADs of their own namespace or of {}",
                    global.join(", ")
                ),
            ),
            D::NotFound { .. } | D::Config { .. } => with_chain(Code::InvalidConfig, &e),
            D::Exec { .. } | D::BadOutput { .. } => with_chain(Code::Delegate, &e),
            D::Cache { .. } => with_chain(Code::Io, &e),
            D::NoApi { .. } => with_chain(Code::TryAgainLater, &e),
            D::Drift { .. } => Error::new(Code::Drift, "CHECK found drift", e.to_string()),
            D::Ipam(i) => i.into(),
            D::Guest(g) => g.into(),
            D::Api(k) => k.into(),
            D::Netlink(n) => n.into(),
            D::Netns(n) => n.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delegates_spec_code_passes_through_and_its_own_codes_become_107() {
        let plugin = |code| delegate::Error::Plugin {
            network: "default/n".into(),
            step: "ADD of bridge".into(),
            code,
            msg: "m".into(),
            details: "d".into(),
        };
        assert_eq!(Error::from(plugin(11)).code, Code::TryAgainLater);
        assert_eq!(Error::from(plugin(7)).code, Code::InvalidConfig);
        assert_eq!(Error::from(plugin(50)).code, Code::NotAvailable, "STATUS");
        assert_eq!(Error::from(plugin(51)).code, Code::NotAvailableLimited);
        assert_eq!(Error::from(plugin(999)).code, Code::Delegate);
        assert_eq!(Error::from(plugin(100)).code, Code::Delegate);
    }

    #[test]
    fn retryable_store_errors_are_code_11_and_a_full_range_105() {
        let conflict: ipam::Error = ipam::Error::Conflict {
            pool: "p".into(),
            attempts: 3,
        };
        assert_eq!(Error::from(conflict).code, Code::TryAgainLater);
        let full: ipam::Error = ipam::Error::Exhausted {
            range: "10.0.0.0/30".into(),
        };
        assert_eq!(Error::from(full).code, Code::AddressExhausted);
        let gone = netlink::Error::Netns(netns::Error::NetnsGone {
            path: "/run/netns/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        let e = Error::from(gone);
        assert_eq!(e.code, Code::UnknownContainer);
        assert!(e.msg.contains("/run/netns/x"), "{e}");
    }
}
