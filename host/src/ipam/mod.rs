//! Whereabouts-compatible IPAM: ranges, the pool view a proposer queries, choosing an address
//! ([`Proposer`]: a Wasm guest, or [`LowestFree`]) and committing it to IPPool objects over a
//! [`PoolStore`] by resourceVersion compare-and-swap (no cluster-wide lock).
//!
//! IPAM knows neither the Wasm engine nor any guest: a reconciler uses it with `k8s` alone.

mod choose;
mod commit;
mod range;
mod store;
mod view;

use std::convert::Infallible;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use crate::config::GuestRef;
use crate::k8s::{self, IpAllocation};

pub use choose::{Choice, LowestFree, Proposal, Proposer};
pub use commit::{MAX_ATTEMPTS, allocate, holder, release};
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

/// The `ipam` section of a NAD's plugin config, in whereabouts' keys plus `policy`.
#[derive(Debug, Clone, Deserialize)]
pub struct IpamConf {
    /// `type`: "whereabouts" (or "wasmcni").
    #[serde(rename = "type")]
    pub kind: String,
    /// `range`: CIDR, or `first-last/prefix`.
    pub range: String,
    /// `range_start`.
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    /// `range_end`.
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    /// `exclude`: CIDRs never handed out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `gateway`: reported in the result and used for routes without their own.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// `routes`.
    #[serde(default)]
    pub routes: Vec<crate::cni::types::Route>,
    /// `network_name`: prefixes the IPPool name, so equal ranges of different networks do not share a pool.
    #[serde(default)]
    pub network_name: Option<String>,
    /// `policy`: the guest that proposes addresses (default: lowest-free, whereabouts' choice).
    #[serde(default)]
    pub policy: Option<GuestRef>,
}

/// The IPAM types handled in-process.
pub fn is_builtin(ipam_type: &str) -> bool {
    matches!(ipam_type, "whereabouts" | "wasmcni")
}

impl IpamConf {
    /// Parse a plugin config's `ipam` object.
    pub fn parse(v: &Value) -> Result<Self, Error> {
        serde_json::from_value(v.clone()).map_err(|e| Error::Config { why: e.to_string() })
    }

    /// The parsed range, with the gateway never allocatable. (Whereabouts v0.9.2 hands out the
    /// gateway unless `exclude` lists it — its `IterateForAssignment` skips only reservations and
    /// exclusions; wasmcni never commits it, whoever proposes it.)
    pub fn range(&self) -> Result<Range, Error> {
        let r = Range::parse(&self.range, self.range_start, self.range_end, &self.exclude)
            .map_err(|why| Error::Config { why })?;
        Ok(match self.gateway {
            Some(gw) => r.reserving(gw),
            None => r,
        })
    }

    /// The guest that picks addresses.
    pub fn policy(&self) -> GuestRef {
        self.policy
            .clone()
            .unwrap_or_else(|| GuestRef::builtin("lowest-free"))
    }

    /// The IPPool's name, as whereabouts derives it from the range.
    pub fn pool_name(&self, range: &Range) -> String {
        let normalized = range.cidr().replace([':', '/'], "-");
        match &self.network_name {
            Some(n) if !n.is_empty() => format!("{n}-{normalized}"),
            _ => normalized,
        }
    }
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
}

/// An allocated address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address with the range's prefix length.
    pub address: ipnetwork::IpNetwork,
    /// The IPPool it is recorded in.
    pub pool: String,
}
