//! One interface's addresses: one from each range of the config (`range`, then `ipRanges`), as
//! whereabouts' `IPManagement` gives them, and the CNI result that reports them. Shared by the
//! in-process IPAM under wasmcni's built-in plugins and by wasmcni run as an IPAM plugin.

use std::net::IpAddr;

use super::{
    Choice, Error, IpamConf, Lease, Owner, PoolRef, PoolStore, Proposer, allocate, blocks, holder,
    release,
};
use crate::cni::types::{CniResult, IpConfig};

/// An address from every range for `owner`, all or none: `requested` addresses (capability
/// `ips`) are allocated exactly, at most one per range and each inside one; every other range's
/// address is `proposer`'s choice. When one range fails, the ranges already served are given
/// back before the error is returned. `node`: this node's name (the blocks it claims, for a
/// range in blocks).
pub async fn allocate_all<S: PoolStore, P: Proposer>(
    store: &S,
    conf: &IpamConf,
    namespace: &str,
    owner: &Owner,
    node: &str,
    requested: &[IpAddr],
    proposer: &P,
) -> Result<Vec<Lease>, Error<P::Error>> {
    let pools = conf.pools().map_err(Error::widen)?;
    for want in requested {
        if !pools.iter().any(|pl| pl.range.offset_of(*want).is_some()) {
            let cidrs: Vec<_> = pools.iter().map(|pl| pl.range.cidr()).collect();
            return Err(Error::Unavailable {
                ip: *want,
                why: format!("it is outside {}", cidrs.join(" and ")),
            });
        }
    }
    let mut leases = Vec::new();
    for pool in &pools {
        let wants: Vec<IpAddr> = requested
            .iter()
            .copied()
            .filter(|ip| pool.range.offset_of(*ip).is_some())
            .collect();
        let choice = match wants.as_slice() {
            [] => Choice::Proposed(proposer),
            [one] => Choice::Requested(*one),
            [first, second, ..] => {
                return Err(Error::Unavailable {
                    ip: *second,
                    why: format!(
                        "{first} is requested from {} too: one address per range",
                        pool.range.cidr()
                    ),
                });
            }
        };
        let got = match pool.block {
            Some(b) => blocks::allocate(store, conf, pool, b, namespace, owner, node, choice).await,
            None => allocate(store, conf, pool, namespace, owner, choice).await,
        };
        match got {
            Ok(l) => leases.push(l),
            Err(e) => {
                if !leases.is_empty() {
                    let hints: Vec<IpAddr> = leases.iter().map(|l| l.address.ip()).collect();
                    let undo = release_all(store, conf, namespace, owner, node, &hints).await;
                    if let Err(undo) = undo {
                        tracing::error!(
                            "giving back the addresses of {} on {}: {undo}",
                            owner.container_id,
                            owner.ifname
                        );
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(leases)
}

/// Release `owner`'s addresses from every range of `conf` (DEL): `hints` are the addresses
/// the runtime reports it had (prevResult), which find a block directly. Idempotent.
pub async fn release_all<S: PoolStore>(
    store: &S,
    conf: &IpamConf,
    namespace: &str,
    owner: &Owner,
    node: &str,
    hints: &[IpAddr],
) -> Result<(), Error> {
    let pools = conf.pools()?;
    let whole: Vec<String> = pools
        .iter()
        .filter(|p| p.block.is_none())
        .map(|p| p.name.clone())
        .collect();
    if !whole.is_empty() {
        release(store, namespace, Some(&whole), owner).await?;
    }
    for pool in &pools {
        if let Some(b) = pool.block {
            blocks::release(store, namespace, pool, b, owner, node, hints).await?;
        }
    }
    Ok(())
}

/// The pool object that holds `ip` of range `pool`: its block for a range in blocks.
fn object_of(pool: &PoolRef, ip: IpAddr) -> PoolRef {
    match (pool.block, pool.range.offset_of(ip)) {
        (Some(b), Some(o)) => blocks::block(pool, b, o >> b.bits),
        _ => pool.clone(),
    }
}

/// CHECK of the allocation behind `addresses` (what the result reported): each address of one
/// of `conf`'s ranges must still be recorded for `owner`, each other one must be one of its
/// static `addresses`. `Ok(Err(why))` is drift, described for a person.
pub async fn verify<S: PoolStore>(
    store: &S,
    conf: &IpamConf,
    namespace: &str,
    owner: &Owner,
    addresses: &[ipnetwork::IpNetwork],
) -> Result<Result<(), String>, Error> {
    let pools = conf.pools()?;
    for ip in addresses {
        // A static address (the config's, or CNI_ARGS IP's) is recorded nowhere, even inside
        // a range (whereabouts adds it beside the range's own).
        if conf.addresses.iter().any(|s| s.address == *ip) {
            continue;
        }
        let Some(pool) = pools.iter().find(|p| p.range.offset_of(ip.ip()).is_some()) else {
            return Ok(Err(format!("{ip} is in none of this network's ranges")));
        };
        match holder(store, &object_of(pool, ip.ip()), namespace, ip.ip()).await? {
            Some(a) if owner.holds(&a) => {}
            Some(a) => {
                return Ok(Err(format!(
                    "IPPool records {} for container {} ({} {}), not for this one",
                    ip.ip(),
                    a.id,
                    a.podref,
                    a.ifname
                )));
            }
            None => {
                return Ok(Err(format!(
                    "IPPool no longer records {} (it could be handed to another pod)",
                    ip.ip()
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// Whether every range of `conf` is served by one of `requested`: then no proposer is asked.
pub fn all_requested(conf: &IpamConf, requested: &[IpAddr]) -> Result<bool, Error> {
    Ok(conf
        .pools()?
        .iter()
        .all(|pl| requested.iter().any(|ip| pl.range.offset_of(*ip).is_some())))
}

/// The result of an allocation: one address per range, each with the gateway when it is of the
/// address's family (whereabouts gives every address the one gateway, a v4 gateway to a v6
/// address too), then the static `addresses` (and CNI_ARGS `IP`), the routes and DNS.
pub fn result(conf: &IpamConf, leases: Vec<Lease>) -> CniResult {
    let gateway_for = |ip: IpAddr| conf.gateway.filter(|g| g.is_ipv4() == ip.is_ipv4());
    let mut ips: Vec<IpConfig> = leases
        .into_iter()
        .map(|l| IpConfig {
            version: None,
            gateway: gateway_for(l.address.ip()),
            address: l.address,
            interface: None,
        })
        .collect();
    ips.extend(conf.addresses.iter().map(|s| IpConfig {
        version: None,
        address: s.address,
        gateway: s.gateway,
        interface: None,
    }));
    CniResult {
        ips,
        routes: conf.routes.clone(),
        dns: conf.dns.clone().unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_per_range_the_gateway_only_on_its_family_then_static_addresses() {
        let ic = IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": "172.16.30.0/24", "gateway": "172.16.30.1",
            "ipRanges": [{"range": "fd00:30::/120"}],
            "addresses": [{"address": "192.0.2.7/24", "gateway": "192.0.2.1"}],
            "dns": {"nameservers": ["172.16.30.53"]},
        }))
        .unwrap();
        let pools = ic.pools().unwrap();
        let leases = vec![
            Lease {
                address: pools[0].range.address(2),
                pool: pools[0].name.clone(),
            },
            Lease {
                address: pools[1].range.address(1),
                pool: pools[1].name.clone(),
            },
        ];
        let r = result(&ic, leases);
        let got: Vec<_> = r
            .ips
            .iter()
            .map(|i| format!("{} {:?}", i.address, i.gateway))
            .collect();
        assert_eq!(
            got,
            [
                "172.16.30.2/24 Some(172.16.30.1)",
                "fd00:30::1/120 None",
                "192.0.2.7/24 Some(192.0.2.1)"
            ]
        );
        assert_eq!(r.dns.nameservers, ["172.16.30.53"]);
    }
}
