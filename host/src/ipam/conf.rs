//! The `ipam` section of a NAD's plugin config: every key whereabouts v0.9.2 reads, each
//! honoured with whereabouts' meaning or refused naming the key — never dropped silently.
//!
//! Whereabouts decodes with Go's `encoding/json`, which matches keys case-insensitively and
//! drops unknown ones. wasmcni matches the same way but refuses what it does not know: a
//! mistyped `range_star` must not give a pod an address from the wrong part of a range.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Error, Range};
use crate::cni::types::{Dns, Route};
use crate::config::GuestRef;

/// What wasmcni does with one whereabouts key.
enum Key {
    /// Read, with whereabouts' meaning.
    Honoured,
    /// Accepted; it has no effect in wasmcni, for the reason given (documented in the README).
    NoEffect(&'static str),
    /// Refused with code 7, for the reason given.
    Refused(&'static str),
}

/// Every key of whereabouts' `IPAMConfig` (pkg/types, v0.9.2), plus `policy`.
const KEYS: &[(&str, Key)] = &[
    ("type", Key::Honoured),
    ("range", Key::Honoured),
    ("range_start", Key::Honoured),
    ("range_end", Key::Honoured),
    ("exclude", Key::Honoured),
    ("ipRanges", Key::Honoured),
    ("gateway", Key::Honoured),
    ("routes", Key::Honoured),
    ("dns", Key::Honoured),
    ("addresses", Key::Honoured),
    ("network_name", Key::Honoured),
    ("enable_overlapping_ranges", Key::Honoured),
    ("sleep_for_race", Key::Honoured),
    ("policy", Key::Honoured),
    // wasmcni's own: the range kept in per-node blocks (`ipam::blocks`) instead of one IPPool.
    ("block_size", Key::Honoured),
    // As the IPAM plugin (`"ipam": {"type": "whereabouts"}` under another main plugin), its
    // `kubeconfig` is the identity used, as in whereabouts; under the wasmcni meta-plugin the
    // node config's is (a NAD cannot choose the credentials the host acts with).
    ("kubernetes", Key::Honoured),
    ("datastore", Key::Honoured),
    (
        "log_file",
        Key::NoEffect(
            "wasmcni logs where the node config says; a NAD cannot name a file root writes",
        ),
    ),
    (
        "log_level",
        Key::NoEffect("wasmcni's log level is the node config's"),
    ),
    (
        "leader_lease_duration",
        Key::NoEffect("wasmcni takes no cluster-wide lease: writes are per address"),
    ),
    (
        "leader_renew_deadline",
        Key::NoEffect("wasmcni takes no cluster-wide lease: writes are per address"),
    ),
    (
        "leader_retry_period",
        Key::NoEffect("wasmcni takes no cluster-wide lease: writes are per address"),
    ),
    (
        "reconciler_cron_expression",
        Key::NoEffect("whereabouts' controller reads it from its own flat file, never from a NAD"),
    ),
    (
        "name",
        Key::NoEffect("whereabouts overwrites it with the network's name"),
    ),
    (
        "podName",
        Key::NoEffect("whereabouts overwrites it from CNI_ARGS K8S_POD_NAME"),
    ),
    (
        "podNamespace",
        Key::NoEffect("whereabouts overwrites it from CNI_ARGS K8S_POD_NAMESPACE"),
    ),
    (
        "node_slice_size",
        Key::Refused(
            "node slices (a NodeSlicePool controller) are not supported; remove the key to use one shared IPPool per range",
        ),
    ),
    ("configuration_path", Key::Honoured),
    ("etcd_host", Key::Refused(ETCD)),
    ("etcd_username", Key::Refused(ETCD)),
    ("etcd_password", Key::Refused(ETCD)),
    ("etcd_key_file", Key::Refused(ETCD)),
    ("etcd_cert_file", Key::Refused(ETCD)),
    ("etcd_ca_cert_file", Key::Refused(ETCD)),
];

const ETCD: &str =
    "the etcd datastore is gone from whereabouts (v0.6); allocations live in IPPool objects";

/// The keys of one `ipRanges` entry (whereabouts' `RangeConfiguration`).
const RANGE_KEYS: &[&str] = &["range", "range_start", "range_end", "exclude"];

/// The keys of one `addresses` entry (whereabouts' `Address`).
const ADDRESS_KEYS: &[&str] = &["address", "gateway"];

/// The keys of `kubernetes` (whereabouts' `KubernetesConfig`). Whereabouts never reads
/// `k8s_api_root` (the kubeconfig names the server); it is accepted without effect.
const KUBERNETES_KEYS: &[&str] = &["kubeconfig", "k8s_api_root"];

/// One range as configured: `range` with its start, end and exclusions.
#[derive(Debug, Clone, Deserialize)]
pub struct RangeConf {
    /// `range`: CIDR, or `first-last/prefix`.
    pub range: String,
    /// `range_start`.
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    /// `range_end`.
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    /// `exclude`: CIDRs (or addresses) never handed out.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A static address of `addresses`: added to the result as is, never allocated.
#[derive(Debug, Clone, Deserialize)]
pub struct StaticAddress {
    /// `address`: CIDR notation, the address with its prefix.
    pub address: ipnetwork::IpNetwork,
    /// `gateway`.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// The keys as written, after case folding; what [`IpamConf`] is built from.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    exclude: Option<Vec<String>>,
    #[serde(default, rename = "ipRanges")]
    ip_ranges: Vec<Value>,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default)]
    addresses: Vec<Value>,
    #[serde(default)]
    network_name: Option<String>,
    #[serde(default)]
    enable_overlapping_ranges: Option<bool>,
    #[serde(default)]
    sleep_for_race: Option<u32>,
    #[serde(default)]
    datastore: Option<String>,
    #[serde(default)]
    kubernetes: Option<Value>,
    #[serde(default)]
    configuration_path: Option<String>,
    #[serde(default)]
    policy: Option<GuestRef>,
    #[serde(default)]
    block_size: Option<u8>,
}

/// The `ipam` section of a NAD's plugin config, in whereabouts' keys plus `policy`.
#[derive(Debug, Clone)]
pub struct IpamConf {
    /// `type`: "whereabouts" (or "wasmcni").
    pub kind: String,
    /// `range` (first, with the top-level `range_start`, `range_end`, `exclude`) then each of
    /// `ipRanges`: one address is allocated from each.
    pub ranges: Vec<RangeConf>,
    /// `gateway`: reported with the addresses of its family and never allocated.
    pub gateway: Option<IpAddr>,
    /// `routes`.
    pub routes: Vec<Route>,
    /// `dns`.
    pub dns: Option<Dns>,
    /// `addresses`: static addresses added to the result.
    pub addresses: Vec<StaticAddress>,
    /// `network_name`: prefixes pool and reservation names, so equal ranges of different
    /// networks are apart.
    pub network_name: Option<String>,
    /// `enable_overlapping_ranges` (whereabouts' default: true): each address is also held by
    /// an OverlappingRangeIPReservation, so overlapping ranges never give it twice.
    pub overlapping: bool,
    /// `sleep_for_race`: seconds to wait between choosing and recording (whereabouts' knob for
    /// testing races).
    pub sleep_for_race: u32,
    /// `policy`: the guest that proposes addresses (default: lowest-free, whereabouts' choice).
    pub policy: Option<GuestRef>,
    /// `block_size` (wasmcni's key, a prefix length as Calico's `blockSize`): each range is
    /// kept in blocks of that size, one IPPool each, claimed by nodes ([`super::blocks`]).
    /// `None`: one whereabouts IPPool per range.
    pub block_size: Option<u8>,
    /// `kubernetes.kubeconfig`: the identity of the IPAM plugin (see [`KEYS`]).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The whereabouts flat file whose keys filled this config's unset ones, if one was read.
    pub flat_file: Option<std::path::PathBuf>,
}

/// Go's `encoding/json` key matching: an exact match first, else the first that folds equal.
fn canonical<'a>(key: &str, known: impl Iterator<Item = &'a str> + Clone) -> Option<&'a str> {
    known
        .clone()
        .find(|k| *k == key)
        .or_else(|| known.into_iter().find(|k| k.eq_ignore_ascii_case(key)))
}

/// `obj` with its keys renamed to `known`'s spelling; an unknown key is refused.
fn fold<'a>(
    obj: &Map<String, Value>,
    known: impl Iterator<Item = &'a str> + Clone,
    at: &str,
) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for (k, v) in obj {
        let Some(c) = canonical(k, known.clone()) else {
            return Err(Error::Config {
                why: format!("{at}{k:?} is not a whereabouts key (a typo?); remove it"),
            });
        };
        out.insert(c.to_string(), v.clone());
    }
    Ok(out)
}

/// Each object of a list key (`ipRanges`, `addresses`), its keys folded as Go matches them and
/// unknown ones refused, as `T`.
fn entries<T: serde::de::DeserializeOwned>(
    list: &[Value],
    known: &[&str],
    key: &str,
) -> Result<Vec<T>, Error> {
    let bad = |why: String| Error::Config { why };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("{key}[{i}].");
            let obj = v
                .as_object()
                .ok_or_else(|| bad(format!("{at} must be an object")))?;
            let folded = fold(obj, known.iter().copied(), &at)?;
            serde_json::from_value(Value::Object(folded)).map_err(|e| bad(format!("{at}: {e}")))
        })
        .collect()
}

/// `obj`'s keys checked against [`KEYS`]: a refused key is an error naming it (`at` says where it
/// was written), a key without effect is logged and dropped.
fn check_keys(obj: &mut Map<String, Value>, at: &str) -> Result<(), Error> {
    for (k, what) in KEYS {
        if !obj.contains_key(*k) {
            continue;
        }
        match what {
            Key::Honoured => {}
            Key::NoEffect(why) => {
                tracing::debug!("{at}{k} has no effect in wasmcni: {why}");
                obj.remove(*k);
            }
            Key::Refused(why) => {
                return Err(Error::Config {
                    why: format!("{at}{k} is not supported: {why}"),
                });
            }
        }
    }
    Ok(())
}

impl IpamConf {
    /// A plugin config's `ipam` object as whereabouts reads it on a node: its keys, then the
    /// unset ones filled from the node's whereabouts flat file if there is one ([`flat`]).
    /// Refused and unknown keys are errors naming the key (and the file).
    ///
    /// [`flat`]: super::flat
    pub fn load(v: &Value) -> Result<Self, Error> {
        let mut nad = Self::folded(v)?;
        let path = nad.get("configuration_path").and_then(Value::as_str);
        let Some(found) = super::flat::find(path)? else {
            return Self::from_folded(nad, None);
        };
        let file = found.path;
        let at = format!("whereabouts flat file {}: ", file.display());
        let mut flat = fold(&found.keys, KEYS.iter().map(|(k, _)| *k), &at)?;
        check_keys(&mut flat, &at)?;
        // Whereabouts keeps the NAD's enable_overlapping_ranges over the file's (it saves and
        // restores it around the merge), and the file's own configuration_path is not followed.
        for k in ["enable_overlapping_ranges", "configuration_path"] {
            if flat.remove(k).is_some() {
                tracing::debug!("{at}{k} has no effect: whereabouts reads it from the NAD only");
            }
        }
        super::flat::merge(&mut nad, flat);
        Self::from_folded(nad, Some(file))
    }

    /// Parse a plugin config's `ipam` object alone (no flat file). Refused keys and unknown
    /// keys are errors naming the key; keys without effect are logged.
    pub fn parse(v: &Value) -> Result<Self, Error> {
        Self::from_folded(Self::folded(v)?, None)
    }

    /// `v`'s keys in whereabouts' spelling, refused ones refused, those without effect dropped.
    fn folded(v: &Value) -> Result<Map<String, Value>, Error> {
        let obj = v.as_object().ok_or_else(|| Error::Config {
            why: "ipam must be an object".into(),
        })?;
        let mut folded = fold(obj, KEYS.iter().map(|(k, _)| *k), "ipam.")?;
        check_keys(&mut folded, "ipam.")?;
        Ok(folded)
    }

    fn from_folded(
        folded: Map<String, Value>,
        flat_file: Option<std::path::PathBuf>,
    ) -> Result<Self, Error> {
        let bad = |why: String| Error::Config { why };
        let raw: Raw =
            serde_json::from_value(Value::Object(folded)).map_err(|e| bad(e.to_string()))?;
        if let Some(d) = raw.datastore.as_deref()
            && !d.is_empty()
            && d != "kubernetes"
        {
            return Err(bad(format!(
                "ipam.datastore {d:?} is not supported: only \"kubernetes\" (IPPool objects)"
            )));
        }
        let mut ranges = Vec::new();
        match raw.range {
            Some(range) if !range.is_empty() => ranges.push(RangeConf {
                range,
                range_start: raw.range_start,
                range_end: raw.range_end,
                exclude: raw.exclude.unwrap_or_default(),
            }),
            // Whereabouts drops these when `range` is absent; wasmcni says so.
            _ => {
                for (key, set) in [
                    ("range_start", raw.range_start.is_some()),
                    ("range_end", raw.range_end.is_some()),
                    ("exclude", raw.exclude.is_some()),
                ] {
                    if set {
                        return Err(bad(format!(
                            "ipam.{key} applies to ipam.range, which is not set; \
                             put it in the ipRanges entry it belongs to"
                        )));
                    }
                }
            }
        }
        let ranges_given: Vec<RangeConf> = entries(&raw.ip_ranges, RANGE_KEYS, "ipam.ipRanges")?;
        ranges.extend(ranges_given);
        let addresses: Vec<StaticAddress> =
            entries(&raw.addresses, ADDRESS_KEYS, "ipam.addresses")?;
        if ranges.is_empty() {
            return Err(bad("ipam needs range or ipRanges".into()));
        }
        let kubeconfig = match raw.kubernetes {
            None | Some(Value::Null) => None,
            Some(Value::Object(k)) => {
                let k = fold(&k, KUBERNETES_KEYS.iter().copied(), "ipam.kubernetes.")?;
                match k.get("kubeconfig") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(p)) if p.is_empty() => None,
                    Some(Value::String(p)) => Some(std::path::PathBuf::from(p)),
                    Some(_) => return Err(bad("ipam.kubernetes.kubeconfig must be a path".into())),
                }
            }
            Some(_) => return Err(bad("ipam.kubernetes must be an object".into())),
        };
        let _ = raw.configuration_path; // read by `load`, before the merge
        let conf = IpamConf {
            kind: raw.kind,
            ranges,
            gateway: raw.gateway,
            routes: raw.routes,
            dns: raw.dns,
            addresses,
            network_name: raw.network_name.filter(|n| !n.is_empty()),
            overlapping: raw.enable_overlapping_ranges.unwrap_or(true),
            sleep_for_race: raw.sleep_for_race.unwrap_or(0),
            policy: raw.policy,
            block_size: raw.block_size,
            kubeconfig,
            flat_file,
        };
        conf.pools()?;
        Ok(conf)
    }

    /// CNI_ARGS `IP` and `GATEWAY` applied as whereabouts' `handleEnvArgs` does: each of `IP`'s
    /// comma-separated CIDRs is one more static address; each `GATEWAY` address becomes the
    /// gateway of every static address whose subnet holds it.
    pub fn with_cni_args(mut self, ip: Option<&str>, gateway: Option<&str>) -> Result<Self, Error> {
        let bad = |why: String| Error::Config { why };
        for item in ip.unwrap_or_default().split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            // Go's ParseCIDR: the prefix is required (ipnetwork would read a bare address as /32).
            let address: ipnetwork::IpNetwork = item
                .contains('/')
                .then(|| item.parse().ok())
                .flatten()
                .ok_or_else(|| {
                    bad(format!(
                        "CNI_ARGS IP {item:?} is not an address with its prefix"
                    ))
                })?;
            self.addresses.push(StaticAddress {
                address,
                gateway: None,
            });
        }
        for item in gateway.unwrap_or_default().split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let gw: IpAddr = item
                .parse()
                .map_err(|e| bad(format!("CNI_ARGS GATEWAY {item:?} is not an address: {e}")))?;
            for a in &mut self.addresses {
                if a.address.contains(gw) {
                    a.gateway = Some(gw);
                }
            }
        }
        Ok(self)
    }

    /// Each range parsed, with its IPPool's name. The gateway is never allocatable.
    /// (Whereabouts v0.9.2 hands out the gateway unless `exclude` lists it — its
    /// `IterateForAssignment` skips only reservations and exclusions; wasmcni never commits
    /// it, whoever proposes it.)
    pub fn pools(&self) -> Result<Vec<PoolRef>, Error> {
        self.ranges
            .iter()
            .map(|r| {
                let range = Range::parse(&r.range, r.range_start, r.range_end, &r.exclude)
                    .map_err(|why| Error::Config { why })?;
                let range = match self.gateway {
                    Some(gw) => range.reserving(gw),
                    None => range,
                };
                let block = self.block_size.map(|b| Block::new(&range, b)).transpose()?;
                Ok(PoolRef {
                    name: pool_name(self.network_name.as_deref(), &range.cidr()),
                    range,
                    block,
                })
            })
            .collect()
    }

    /// The guest that picks addresses.
    pub fn policy(&self) -> GuestRef {
        self.policy
            .clone()
            .unwrap_or_else(|| GuestRef::builtin("lowest-free"))
    }

    /// The name of the reservation of `ip`, as whereabouts' `NormalizeIP` makes it.
    pub fn reservation_name(&self, ip: IpAddr) -> String {
        reservation_name(self.network_name.as_deref(), ip)
    }
}

/// One range and the IPPool it is recorded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRef {
    /// The IPPool's name.
    pub name: String,
    /// The range.
    pub range: Range,
    /// Its block size when it is kept in blocks (`block_size`).
    pub block: Option<Block>,
}

/// The size of a range's blocks: each holds 2^`bits` consecutive offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Host bits of one block (32 or 128 minus `block_size`).
    pub bits: u32,
}

/// Block host bits allowed: 4 to 4096 addresses per block object (at most ~600 KB when full;
/// 256 addresses, a /24 or /120, stay under 40 KB).
const BLOCK_BITS: std::ops::RangeInclusive<u32> = 2..=12;

impl Block {
    /// `block_size` for `range`, checked.
    fn new(range: &Range, block_size: u8) -> Result<Block, Error> {
        let max = if range.is_ipv4() { 32u32 } else { 128 };
        let bad = |why: String| Error::Config {
            why: format!("ipam.block_size {block_size}: {why}"),
        };
        let b = u32::from(block_size);
        if b > max || !BLOCK_BITS.contains(&(max - b)) {
            return Err(bad(format!(
                "a block must hold 4 to 4096 addresses (a prefix length from /{} to /{})",
                max - BLOCK_BITS.end(),
                max - BLOCK_BITS.start()
            )));
        }
        // Only claimed blocks are ever listed, so a range may have any number (a /64 in /120s).
        let p = u32::from(range.prefix());
        if b < p {
            return Err(bad(format!(
                "blocks must lie inside the range {} (/{p} or longer)",
                range.cidr()
            )));
        }
        Ok(Block { bits: max - b })
    }
}

/// Whereabouts' `normalizeRange`: `:` and `/` become `-`, and a trailing `:` gets a `0`.
fn normalize(s: &str) -> String {
    let s = if s.ends_with(':') {
        format!("{s}0")
    } else {
        s.to_string()
    };
    s.replace([':', '/'], "-")
}

/// The IPPool's name for `cidr`, as whereabouts' `IPPoolName` derives it.
pub fn pool_name(network: Option<&str>, cidr: &str) -> String {
    match network {
        Some(n) => format!("{n}-{}", normalize(cidr)),
        None => normalize(cidr),
    }
}

/// The network name a pool's name carries (its prefix before the normalized range).
/// A block's IPPool is named after its range's pool, then `.` and its own CIDR
/// ([`block_pool_name`]): the network name is found before the range either way.
pub fn network_of(pool: &str, cidr: &str) -> Option<String> {
    let range = normalize(cidr);
    let (at, _) = pool.match_indices(&range).find(|(at, _)| {
        let rest = &pool[at + range.len()..];
        rest.is_empty() || rest.starts_with('.')
    })?;
    pool[..at].strip_suffix('-').map(str::to_string)
}

/// The IPPool of the block `block_cidr` of the range whose pool is `pool`.
pub fn block_pool_name(pool: &str, block_cidr: &str) -> String {
    format!("{pool}.{}", normalize(block_cidr))
}

/// An OverlappingRangeIPReservation's name, as whereabouts' `NormalizeIP` makes it.
pub fn reservation_name(network: Option<&str>, ip: IpAddr) -> String {
    pool_name(network, &ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn refused(v: Value) -> String {
        IpamConf::parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn every_whereabouts_key_is_known() {
        // The field tags of whereabouts v0.9.2's IPAMConfig alias (pkg/types/types.go).
        let whereabouts = [
            "type",
            "routes",
            "datastore",
            "addresses",
            "ipRanges",
            "node_slice_size",
            "exclude",
            "dns",
            "range",
            "range_start",
            "range_end",
            "gateway",
            "etcd_host",
            "etcd_username",
            "etcd_password",
            "etcd_key_file",
            "etcd_cert_file",
            "etcd_ca_cert_file",
            "leader_lease_duration",
            "leader_renew_deadline",
            "leader_retry_period",
            "log_file",
            "log_level",
            "reconciler_cron_expression",
            "enable_overlapping_ranges",
            "sleep_for_race",
            "kubernetes",
            "configuration_path",
            "network_name",
            "Name",
            "PodName",
            "PodNamespace",
        ];
        for k in whereabouts {
            assert!(
                canonical(k, KEYS.iter().map(|(k, _)| *k)).is_some(),
                "{k} is not in the table"
            );
        }
    }

    #[test]
    fn unknown_and_refused_keys_name_themselves() {
        let e = refused(
            json!({"type": "whereabouts", "range": "10.0.0.0/24", "range_star": "10.0.0.5"}),
        );
        assert!(e.contains("ipam.\"range_star\""), "{e}");
        let e = refused(
            json!({"type": "whereabouts", "range": "10.0.0.0/24", "node_slice_size": "/28"}),
        );
        assert!(e.contains("ipam.node_slice_size is not supported"), "{e}");
        let e = refused(json!({"type": "whereabouts", "range": "10.0.0.0/24", "etcd_host": "x"}));
        assert!(e.contains("ipam.etcd_host"), "{e}");
        let e =
            refused(json!({"type": "whereabouts", "range": "10.0.0.0/24", "datastore": "etcd"}));
        assert!(e.contains("ipam.datastore"), "{e}");
        let e = refused(
            json!({"type": "whereabouts", "ipRanges": [{"range": "10.0.0.0/24", "gw": "x"}]}),
        );
        assert!(e.contains("ipam.ipRanges[0].\"gw\""), "{e}");
        let e = refused(json!({"type": "whereabouts", "exclude": ["10.0.0.1/32"],
            "ipRanges": [{"range": "10.0.0.0/24"}]}));
        assert!(e.contains("ipam.exclude applies to ipam.range"), "{e}");
        let e = refused(json!({"type": "whereabouts", "range": "10.0.0.0/24",
            "addresses": [{"address": "10.1.0.5/24", "gw": "10.1.0.1"}]}));
        assert!(e.contains("ipam.addresses[0].\"gw\""), "{e}");
        let e = refused(json!({"type": "whereabouts"}));
        assert!(e.contains("range or ipRanges"), "{e}");
    }

    #[test]
    fn keys_match_case_insensitively_as_go_does_and_no_effect_keys_are_accepted() {
        let c = IpamConf::parse(&json!({
            "type": "whereabouts", "Range": "10.0.0.0/24", "GATEWAY": "10.0.0.1",
            "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
            "log_file": "/tmp/whereabouts.log", "log_level": "debug", "datastore": "kubernetes",
            "leader_lease_duration": 1500, "Name": "x", "podname": "y",
        }))
        .unwrap();
        assert_eq!(c.ranges[0].range, "10.0.0.0/24");
        assert_eq!(c.gateway, Some("10.0.0.1".parse().unwrap()));
        assert!(c.overlapping, "whereabouts' default");
    }

    #[test]
    fn range_then_ip_ranges_in_order_each_its_own_pool() {
        let c = IpamConf::parse(&json!({
            "type": "whereabouts", "range": "10.0.0.0/24", "exclude": ["10.0.0.0/30"],
            "network_name": "blue",
            "ipRanges": [{"range": "fd00::/64"}, {"range": "10.1.0.5-10.1.0.9/24"}],
            "enable_overlapping_ranges": false,
        }))
        .unwrap();
        let pools = c.pools().unwrap();
        let names: Vec<_> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["blue-10.0.0.0-24", "blue-fd00---64", "blue-10.1.0.0-24"]
        );
        assert!(!pools[0].range.allocatable(3) && pools[0].range.allocatable(4));
        assert!(!c.overlapping);
    }

    #[test]
    fn cni_args_ip_and_gateway_are_static_addresses_as_in_whereabouts() {
        let c = IpamConf::parse(&json!({"type": "whereabouts", "range": "10.0.0.0/24",
            "addresses": [{"address": "10.2.0.5/24"}]}))
        .unwrap()
        .with_cni_args(Some("10.1.0.7/24, fd00::7/64"), Some("10.1.0.1,10.2.0.1"))
        .unwrap();
        let got: Vec<_> = c
            .addresses
            .iter()
            .map(|a| (a.address.to_string(), a.gateway.map(|g| g.to_string())))
            .collect();
        assert_eq!(
            got,
            [
                ("10.2.0.5/24".to_string(), Some("10.2.0.1".to_string())),
                ("10.1.0.7/24".to_string(), Some("10.1.0.1".to_string())),
                ("fd00::7/64".to_string(), None),
            ]
        );
        let e = IpamConf::parse(&json!({"type": "whereabouts", "range": "10.0.0.0/24"}))
            .unwrap()
            .with_cni_args(Some("10.1.0.7"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CNI_ARGS IP \"10.1.0.7\""), "{e}");
    }

    #[test]
    fn a_flat_file_fills_what_the_nad_leaves_unset_and_its_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("whereabouts.conf");
        std::fs::write(
            &f,
            r#"{"kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/k"},
                "Gateway": "10.0.0.254", "enable_overlapping_ranges": false,
                "log_level": "debug", "reconciler_cron_expression": "30 4 * * *"}"#,
        )
        .unwrap();
        let path = f.to_str().unwrap();
        let c = IpamConf::load(&json!({"type": "whereabouts", "range": "10.0.0.0/24",
            "configuration_path": path}))
        .unwrap();
        assert_eq!(c.gateway, Some("10.0.0.254".parse().unwrap()));
        assert_eq!(
            c.kubeconfig.as_deref(),
            Some(Path::new("/etc/cni/net.d/whereabouts.d/k"))
        );
        assert!(
            c.overlapping,
            "the file's enable_overlapping_ranges never wins"
        );
        assert_eq!(c.flat_file.as_deref(), Some(f.as_path()));
        std::fs::write(&f, r#"{"node_slice_size": "/28"}"#).unwrap();
        let e = IpamConf::load(&json!({"type": "whereabouts", "range": "10.0.0.0/24",
            "configuration_path": path}))
        .unwrap_err()
        .to_string();
        assert!(e.contains(path) && e.contains("node_slice_size"), "{e}");
        std::fs::write(&f, r#"{"rnage": "10.0.0.0/8"}"#).unwrap();
        let e = IpamConf::load(&json!({"type": "whereabouts", "range": "10.0.0.0/24",
            "configuration_path": path}))
        .unwrap_err()
        .to_string();
        assert!(e.contains(path) && e.contains("rnage"), "{e}");
    }

    #[test]
    fn names_follow_whereabouts_normalisation() {
        let v6: IpAddr = "fd00::".parse().unwrap();
        assert_eq!(reservation_name(None, v6), "fd00--0");
        assert_eq!(
            reservation_name(Some("net"), "10.0.0.7".parse().unwrap()),
            "net-10.0.0.7"
        );
        assert_eq!(
            reservation_name(None, "fd00::1:2".parse().unwrap()),
            "fd00--1-2"
        );
        assert_eq!(
            network_of("blue-10.0.0.0-24", "10.0.0.0/24").as_deref(),
            Some("blue")
        );
        assert_eq!(network_of("10.0.0.0-24", "10.0.0.0/24"), None);
        let block = block_pool_name("blue-10.0.0.0-16", "10.0.10.128/26");
        assert_eq!(block, "blue-10.0.0.0-16.10.0.10.128-26");
        assert_eq!(network_of(&block, "10.0.0.0/16").as_deref(), Some("blue"));
        assert_eq!(
            network_of("10.0.0.0-16.10.0.10.128-26", "10.0.0.0/16"),
            None
        );
    }
}
