//! Whereabouts-compatible IPAM: ranges, the pool view a guest queries, and allocation committed
//! to IPPool objects by resourceVersion compare-and-swap (no cluster-wide lock).

mod range;
mod view;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::GuestRef;
use crate::guest::{self, Guests, IpamRequest, Loaded, Refusal};
use crate::k8s::{self, Cas, IPPool, IPPoolSpec, IpAllocation};

pub use range::Range;
pub use view::PoolView;

/// How often an allocation is retried after losing a compare-and-swap race.
const MAX_ATTEMPTS: u32 = 20;

/// Why an IPAM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// The address the pod asked for (capability `ips`) cannot be given.
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
    /// The policy guest failed or refused.
    #[error(transparent)]
    Guest(guest::Error),
    /// The IPPool store failed.
    #[error(transparent)]
    Store(k8s::Error),
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

    /// The parsed range.
    pub fn range(&self) -> Result<Range, Error> {
        Range::parse(&self.range, self.range_start, self.range_end, &self.exclude)
            .map_err(|why| Error::Config { why })
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

/// Decoded allocations of a pool; keys that are not offsets are kept aside untouched.
fn offsets(spec: &IPPoolSpec) -> BTreeMap<u64, IpAllocation> {
    spec.allocations
        .iter()
        .filter_map(|(k, v)| k.parse::<u64>().ok().map(|o| (o, v.clone())))
        .collect()
}

/// Who picks the address.
pub enum Pick<'a> {
    /// The network's policy guest proposes one.
    Policy {
        /// The engine.
        guests: &'a Guests,
        /// The policy.
        guest: &'a Loaded,
        /// What it is told about the pod.
        req: &'a IpamRequest,
    },
    /// The pod asked for this address (runtimeConfig capability `ips`, from the network
    /// selection annotation); the policy is not asked.
    Exact(IpAddr),
}

/// Allocate an address for `owner` in `conf`'s range: read the pool, let the guest propose (or
/// take the requested address), validate, and commit with compare-and-swap; on a lost race,
/// start over.
pub async fn allocate(
    kube: &k8s::Client,
    conf: &IpamConf,
    namespace: &str,
    owner: &Owner,
    pick: Pick<'_>,
) -> Result<Lease, Error> {
    let range = conf.range()?;
    let name = conf.pool_name(&range);
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            backoff(attempt).await;
        }
        let mut pool = kube
            .ip_pool(namespace, &name)
            .await
            .map_err(Error::Store)?
            .unwrap_or_else(|| {
                let mut p = IPPool::new(
                    &name,
                    IPPoolSpec {
                        range: range.cidr(),
                        allocations: BTreeMap::new(),
                    },
                );
                p.metadata.namespace = Some(namespace.to_string());
                p
            });
        let taken = offsets(&pool.spec);
        // ADD is idempotent: a retried ADD for the same container and interface keeps its address.
        if let Some((&o, _)) = taken.iter().find(|(_, a)| owner.holds(a)) {
            return Ok(Lease {
                address: range.address(o),
                pool: name,
            });
        }
        let view = PoolView::new(range.clone(), taken);
        let (offset, chooser) = match &pick {
            Pick::Exact(ip) => {
                let unavailable = |why: String| Error::Unavailable { ip: *ip, why };
                let o = range
                    .offset_of(*ip)
                    .ok_or_else(|| unavailable(format!("it is outside {}", range.cidr())))?;
                if !view.is_free(o) {
                    return Err(unavailable(match view.owner_of(o) {
                        Some(holder) => format!("it is allocated to {holder}"),
                        None => "it is reserved or excluded in this range".into(),
                    }));
                }
                (o, "the pod requested".to_string())
            }
            Pick::Policy { guests, guest, req } => {
                let (answer, view) = guests.propose(guest, req, view).map_err(Error::Guest)?;
                let offset = match answer {
                    Ok(o) => o,
                    Err(Refusal::Exhausted) => {
                        return Err(Error::Exhausted {
                            range: range.cidr(),
                        });
                    }
                    Err(Refusal::Other(why)) => return Err(Error::Guest(guest.denied(&why))),
                };
                if !view.is_free(offset) {
                    let why = match view.owner_of(offset) {
                        Some(holder) => format!(
                            "offset {offset} ({}) is already allocated to {holder}",
                            range.address(offset)
                        ),
                        None if offset > range.last_offset() => {
                            format!("offset {offset} is outside {}", range.cidr())
                        }
                        None => format!(
                            "offset {offset} ({}) is reserved or excluded",
                            range.address(offset)
                        ),
                    };
                    return Err(Error::Guest(guest.invalid(why)));
                }
                (
                    offset,
                    format!(
                        "ipam guest {} (sha256 {}) proposed",
                        guest.name(),
                        guest.digest()
                    ),
                )
            }
        };
        pool.spec.allocations.insert(
            offset.to_string(),
            IpAllocation {
                id: owner.container_id.clone(),
                podref: owner.podref.clone(),
                ifname: owner.ifname.clone(),
            },
        );
        match kube
            .write_ip_pool(namespace, &pool)
            .await
            .map_err(Error::Store)?
        {
            Cas::Done => {
                tracing::info!(
                    "{chooser} {} for {}; committed to IPPool {namespace}/{name}",
                    range.address(offset),
                    owner.podref
                );
                return Ok(Lease {
                    address: range.address(offset),
                    pool: name,
                });
            }
            Cas::Conflict => tracing::info!("IPPool {name}: lost a write race, attempt {attempt}"),
        }
    }
    Err(Error::Conflict {
        pool: name,
        attempts: MAX_ATTEMPTS,
    })
}

/// Who the IPPool of `conf`'s range records as holding `ip` (`None`: nobody, or no pool).
pub async fn holder(
    kube: &k8s::Client,
    conf: &IpamConf,
    namespace: &str,
    ip: IpAddr,
) -> Result<Option<IpAllocation>, Error> {
    let range = conf.range()?;
    let Some(offset) = range.offset_of(ip) else {
        return Ok(None);
    };
    let pool = kube
        .ip_pool(namespace, &conf.pool_name(&range))
        .await
        .map_err(Error::Store)?;
    Ok(pool.and_then(|p| offsets(&p.spec).remove(&offset)))
}

/// Release `owner`'s addresses from the pools `pools` (all pools in `namespace` when `None`).
/// Absent pools and absent allocations are success: DEL is idempotent.
pub async fn release(
    kube: &k8s::Client,
    namespace: &str,
    pools: Option<&[String]>,
    owner: &Owner,
) -> Result<(), Error> {
    let names: Vec<String> = match pools {
        Some(p) => p.to_vec(),
        None => kube
            .ip_pools(namespace)
            .await
            .map_err(Error::Store)?
            .into_iter()
            .filter(|p| p.spec.allocations.values().any(|a| owner.holds(a)))
            .filter_map(|p| p.metadata.name)
            .collect(),
    };
    for name in names {
        let mut attempt = 0;
        loop {
            let Some(mut pool) = kube.ip_pool(namespace, &name).await.map_err(Error::Store)? else {
                break;
            };
            let before = pool.spec.allocations.len();
            pool.spec.allocations.retain(|_, a| !owner.holds(a));
            if pool.spec.allocations.len() == before {
                break;
            }
            match kube
                .write_ip_pool(namespace, &pool)
                .await
                .map_err(Error::Store)?
            {
                Cas::Done => break,
                Cas::Conflict if attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Cas::Conflict => {
                    return Err(Error::Conflict {
                        pool: name,
                        attempts: MAX_ATTEMPTS,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Short, jittered, growing pauses: racing writers spread out instead of colliding again.
async fn backoff(attempt: u32) {
    let jitter = u64::from(std::process::id() % 7) + u64::from(attempt.min(10)) * 3;
    tokio::time::sleep(Duration::from_millis(
        5 + jitter * u64::from(attempt.min(5)),
    ))
    .await;
}
