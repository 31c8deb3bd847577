//! Whereabouts-compatible IPAM: ranges, the pool view a proposer queries, choosing an address
//! ([`Proposer`]: a Wasm guest, or [`LowestFree`]) and committing it to IPPool objects over a
//! [`PoolStore`] with per-address conditional writes (no cluster-wide lock), and what the
//! pools record ([`recorded`]) for the reconciler.
//!
//! IPAM knows neither the Wasm engine nor any guest: a reconciler uses it with `k8s` alone.

mod audit;
mod blocks;
mod cache;
mod choose;
mod commit;
mod conf;
mod flat;
mod lease;
mod range;
mod store;
mod turn;
mod view;

use std::convert::Infallible;
use std::net::IpAddr;

use crate::k8s::{self, IpAllocation};

pub use audit::{Recorded, names_address, recorded};
pub use cache::{Blocks, Cached};
pub use choose::{Choice, LowestFree, Proposal, Proposer};
pub use commit::{MAX_ATTEMPTS, allocate, holder, release};
pub use conf::{IpamConf, PoolRef};
pub use flat::DEFAULT_PATHS as FLAT_PATHS;
pub use lease::{all_requested, allocate_all, release_all, result, verify};
pub use range::Range;
pub use store::PoolStore;
pub use view::PoolView;

/// Why an IPAM operation failed. `E` is the proposer's error (none for operations that do not
/// choose: release, holder, config).
#[derive(Debug, thiserror::Error)]
pub enum Error<E = Infallible> {
    /// The `ipam` section is invalid. Not retryable.
    #[error("invalid ipam config: {why}")]
    Config {
        /// What is wrong.
        why: String,
    },
    /// No address of the range is free. Retryable once addresses are released.
    #[error("no free address in {range}")]
    Exhausted {
        /// The range.
        range: String,
    },
    /// The address the pod asked for (capability `ips`) cannot be given. Not retryable as is.
    #[error("requested address {ip} cannot be allocated: {why}")]
    Unavailable {
        /// The address.
        ip: IpAddr,
        /// Why: outside the range, reserved, or held by another container.
        why: String,
    },
    /// Every attempt lost a compare-and-swap race. Retryable.
    #[error("IPPool {pool} kept changing under us ({attempts} attempts)")]
    Conflict {
        /// The pool object.
        pool: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The proposer named an offset that is not free: a broken policy. Not retryable.
    #[error("{by} gave an invalid answer: {why}")]
    InvalidProposal {
        /// The proposer ([`Proposer::describe`]).
        by: String,
        /// What is wrong with the offset.
        why: String,
    },
    /// The proposer failed or refused.
    #[error(transparent)]
    Proposer(E),
    /// The IPPool store failed (retryable when unreachable).
    #[error(transparent)]
    Store(k8s::Error),
}

impl Error {
    /// The same error as one of an operation whose proposer fails with `E`.
    pub fn widen<E>(self) -> Error<E> {
        match self {
            Error::Config { why } => Error::Config { why },
            Error::Exhausted { range } => Error::Exhausted { range },
            Error::Unavailable { ip, why } => Error::Unavailable { ip, why },
            Error::Conflict { pool, attempts } => Error::Conflict { pool, attempts },
            Error::InvalidProposal { by, why } => Error::InvalidProposal { by, why },
            Error::Proposer(never) => match never {},
            Error::Store(k) => Error::Store(k),
        }
    }
}

/// The IPAM types handled in-process.
pub fn is_builtin(ipam_type: &str) -> bool {
    matches!(ipam_type, "whereabouts" | "wasmcni")
}

/// Who holds an address: whereabouts matches releases on container ID and interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// The interface in the pod; empty matches every interface of the container.
    pub ifname: String,
    /// `namespace/name` of the pod.
    pub podref: String,
}

impl Owner {
    /// Whether allocation `a` is this owner's.
    pub fn holds(&self, a: &IpAllocation) -> bool {
        a.id == self.container_id
            && (self.ifname.is_empty() || a.ifname.is_empty() || a.ifname == self.ifname)
    }

    /// Whether `a` is this pod's interface under another (earlier) container: whereabouts
    /// hands the same address back to a pod that returns with a new sandbox (podref and
    /// ifname equal), so a StatefulSet pod keeps its address across restarts.
    pub fn same_pod_interface(&self, a: &IpAllocation) -> bool {
        self.names_a_pod()
            && !self.ifname.is_empty()
            && a.podref == self.podref
            && a.ifname == self.ifname
    }

    /// Whether `podref` names a pod (`namespace/name`, both set): a call without pod
    /// arguments must never match another such call by podref.
    pub fn names_a_pod(&self) -> bool {
        self.podref
            .split_once('/')
            .is_some_and(|(ns, n)| !ns.is_empty() && !n.is_empty())
    }
}

/// An allocated address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address with the range's prefix length.
    pub address: ipnetwork::IpNetwork,
    /// The IPPool it is recorded in.
    pub pool: String,
}
