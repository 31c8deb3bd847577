//! The result model: a spec 1.1.0 result, plus what libcni carries over from a 0.x result.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// An interface a plugin created or configured.
///
/// The 1.1 keys `socketPath` and `pciID` are held beside it, in [`CniResult::interface_ext`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// `name`.
    pub name: String,
    /// `mac`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// `mtu` (1.0+; libcni omits 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `sandbox`: the netns path for interfaces inside the container, empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// The 1.1 keys of an interface, held beside [`Interface`] (same index in
/// [`CniResult::interface_ext`]) so that code building an `Interface` need not know them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceExt {
    /// `socketPath` (1.1).
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    /// `pciID` (1.1).
    #[serde(rename = "pciID", default, skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// One IP configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `version` ("4"/"6") exactly as a 0.3.x/0.4.0 result wrote it (libcni copies it verbatim,
    /// even empty or wrong, between 0.x versions); "4" for a 0.1.0/0.2.0 result's `ip4` and "6"
    /// for its `ip6`, whatever the address. `None` when read from a 1.x result; computed from
    /// the address when a 1.x result is written as 0.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `address`, CIDR notation.
    pub address: IpNetwork,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// `interface`: index into `interfaces` (libcni does not check it is in range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route.
///
/// The keys `mtu`, `advmss`, `priority`, `table` and `scope` are held beside it, in
/// [`CniResult::route_ext`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// `dst`.
    pub dst: IpNetwork,
    /// `gw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// The 1.1 keys of a route, held beside [`Route`] (same index in [`CniResult::route_ext`]).
/// libcni keeps them in every version (0.3.x and 0.4.0 too: its `types.Route` is shared).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteExt {
    /// `mtu` (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: i64,
    /// `advmss` (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub advmss: i64,
    /// `priority` (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    /// `table` (written when set, 0 included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<i64>,
    /// `scope` (written when set, 0 included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<i64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// `nameservers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// `domain`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// `search`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// `options`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub(super) fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// A result: the spec 1.1.0 result, plus what libcni carries over from a 0.x result it read
/// (each IP's `version` as written; which routes a 0.1.0/0.2.0 result gave `ip4`).
///
/// Read with [`CniResult::from_value`] (or [`CniResult::from_plugin_output`],
/// [`CniResult::from_prev_result`]), written with [`CniResult::to_version`]; both follow
/// libcni v1.3.1 (`pkg/types/{020,040,100}`, `pkg/types/internal`), which tests/versions.rs checks
/// field by field against libcni itself. `Serialize`/`Deserialize` are the delegate cache's
/// own format, not a CNI wire format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    /// `cniVersion` of the result as read (empty: made here, treated as 1.1.0, as libcni treats
    /// a result without a version).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// `interfaces`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// `ips`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// `routes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// `dns`.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    /// `socketPath`/`pciID` of `interfaces[i]` at index `i`; missing entries are empty.
    #[serde(
        rename = "interfaceExt",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub interface_ext: Vec<InterfaceExt>,
    /// `mtu`/`advmss`/`priority`/`table`/`scope` of `routes[i]` at index `i`; missing entries
    /// are unset.
    #[serde(rename = "routeExt", default, skip_serializing_if = "Vec::is_empty")]
    pub route_ext: Vec<RouteExt>,
    /// For a result read at 0.1.0/0.2.0: how many of `routes` (the first ones) were
    /// `ip4.routes`; the rest were `ip6.routes`. It lets such a result be written at 0.1.0/0.2.0
    /// again exactly as libcni copies it (even a route of the other family under `ip4`). `None`
    /// for any other result, and set to `None` by code that changes `routes`
    /// ([`CniResult::routes_changed`]): the routes are then placed by family, as libcni places
    /// a 0.3.0+ result's.
    #[serde(rename = "ip4Routes", default, skip_serializing_if = "Option::is_none")]
    pub ip4_routes: Option<usize>,
}

impl CniResult {
    /// Say that `routes` were changed here: a 0.1.0/0.2.0 result's split of them between `ip4`
    /// and `ip6` no longer holds.
    pub fn routes_changed(&mut self) {
        self.ip4_routes = None;
    }

    /// Addresses (without prefix) of the IP configs that belong to interface `name`, or to no
    /// interface in particular.
    pub fn addresses_of(&self, name: &str) -> Vec<String> {
        let idx = self.interfaces.iter().position(|i| i.name == name);
        self.ips
            .iter()
            .filter(|ip| ip.interface.is_none() || ip.interface == idx)
            .map(|ip| ip.address.ip().to_string())
            .collect()
    }

    /// The MAC of the interface `name` inside the sandbox, if reported.
    pub fn mac_of(&self, name: &str) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|i| i.name == name && !i.sandbox.is_empty())
            .or_else(|| self.interfaces.iter().find(|i| i.name == name))
            .map(|i| i.mac.as_str())
            .filter(|m| !m.is_empty())
    }
}
