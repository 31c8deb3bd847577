//! What the pools record, address by address, with the reservation each allocation accounts
//! for: what the reconciler compares with the pods that exist. Read-only; releases go through
//! [`super::release`] like a DEL's.

use std::net::IpAddr;

use super::commit::offsets;
use super::conf::{network_of, reservation_name};
use super::range;
use crate::k8s::{IPPool, IpAllocation};

/// One allocation as a pool records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The IPPool's name.
    pub pool: String,
    /// The offset in the pool's range.
    pub offset: u64,
    /// The address.
    pub ip: IpAddr,
    /// The name of the OverlappingRangeIPReservation that goes with it (whereabouts' name for
    /// the address in the pool's network).
    pub reservation: String,
    /// Who holds it.
    pub allocation: IpAllocation,
}

/// Every allocation of `pools` (entries whose key or range cannot be read are skipped: they
/// name no address).
pub fn recorded(pools: &[IPPool]) -> Vec<Recorded> {
    let mut out = Vec::new();
    for pool in pools {
        let Some(name) = pool.metadata.name.clone() else {
            continue;
        };
        let Ok(net) = pool.spec.range.parse::<ipnetwork::IpNetwork>() else {
            continue;
        };
        let network = network_of(&name, &pool.spec.range);
        for (offset, allocation) in offsets(&pool.spec) {
            let Some(ip) = range::at(net, offset).map(|n| n.ip()) else {
                continue;
            };
            out.push(Recorded {
                pool: name.clone(),
                offset,
                ip,
                reservation: reservation_name(network.as_deref(), ip),
                allocation,
            });
        }
    }
    out
}

/// Whether reservation `name` is that of `ip` in some network (`ip`'s own name, or it with a
/// network prefix).
pub fn names_address(name: &str, ip: IpAddr) -> bool {
    let bare = reservation_name(None, ip);
    name == bare || name.ends_with(&format!("-{bare}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::IPPoolSpec;

    #[test]
    fn each_entry_with_its_address_and_reservation_name() {
        let mut spec = IPPoolSpec {
            range: "10.0.0.0/24".into(),
            ..Default::default()
        };
        let a = IpAllocation {
            id: "c1".into(),
            podref: "default/p".into(),
            ifname: "net1".into(),
        };
        spec.allocations.insert("5".into(), a.clone());
        spec.allocations.insert("junk".into(), a.clone());
        let pools = [
            IPPool::new("blue-10.0.0.0-24", spec.clone()),
            IPPool::new("10.0.0.0-24", spec),
        ];
        let r = recorded(&pools);
        assert_eq!(r.len(), 2, "the unreadable key names no address");
        assert_eq!(r[0].ip, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(r[0].reservation, "blue-10.0.0.5");
        assert_eq!(r[1].reservation, "10.0.0.5");
        assert!(names_address("blue-10.0.0.5", r[0].ip));
        assert!(!names_address("10.0.0.55", r[0].ip));
    }
}
