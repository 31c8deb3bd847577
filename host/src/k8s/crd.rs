//! Custom resources, wire-compatible with the upstream projects' CRDs (deploy/crds/).

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Multus' NetworkAttachmentDefinition (k8s.cni.cncf.io/v1).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    namespaced,
    schema = "disabled"
)]
pub struct NetworkAttachmentDefinitionSpec {
    /// `config`: the CNI config (single or list) as JSON text.
    #[serde(default)]
    pub config: Option<String>,
}

/// Whereabouts' IPPool (whereabouts.cni.cncf.io/v1alpha1): one range and its allocations.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "whereabouts.cni.cncf.io",
    version = "v1alpha1",
    kind = "IPPool",
    namespaced,
    schema = "disabled"
)]
pub struct IPPoolSpec {
    /// `range`: the CIDR the pool covers.
    pub range: String,
    /// `allocations`: offset from the range's network address (decimal string) → owner.
    #[serde(default)]
    pub allocations: BTreeMap<String, IpAllocation>,
}

/// One allocation in an IPPool, as whereabouts writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IpAllocation {
    /// `id`: the container ID.
    pub id: String,
    /// `podref`: `namespace/name` of the pod.
    #[serde(default)]
    pub podref: String,
    /// `ifname`: the interface in the pod (newer whereabouts).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ifname: String,
}

/// Whereabouts' OverlappingRangeIPReservation (whereabouts.cni.cncf.io/v1alpha1): one object
/// per address, named after it, so an address is held once across every range that contains it.
/// Creating one is the atomic claim: the API server lets only one create of a name succeed.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "whereabouts.cni.cncf.io",
    version = "v1alpha1",
    kind = "OverlappingRangeIPReservation",
    namespaced,
    schema = "disabled"
)]
pub struct OverlappingRangeIPReservationSpec {
    /// `containerid` (whereabouts v0.9.2 leaves it empty; wasmcni fills it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub containerid: String,
    /// `podref`: `namespace/name` of the pod.
    pub podref: String,
    /// `ifname`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ifname: String,
}
