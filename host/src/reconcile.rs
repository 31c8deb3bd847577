//! The IPAM reconciler (`wasmcni reconcile`, one leader per cluster): frees what no pod holds —
//! allocations whose pod is gone (a node lost, a DEL that never came: containerd 1.x sends no
//! CNI GC) or whose pod no longer lists the address, and reservations no pool accounts for (a
//! DEL that died between its two writes).
//!
//! It must never free the address of a pod being created (whereabouts #162/#176 were races of
//! exactly that). Four guards:
//! 1. Pools are read before pods: an allocation in the pool snapshot was made for a pod that
//!    existed before it was made (the kubelet creates the sandbox of a pod object that exists),
//!    so the later pod list has that pod unless it is really gone.
//! 2. A suspect is freed only when a pass at least `grace` after it was first seen finds it
//!    still a suspect, on fresh snapshots (a restarted or newly elected reconciler starts with
//!    nothing seen, so it waits a full grace period).
//! 3. Just before an allocation is freed its pod is read live, and the rule is applied again.
//! 4. The release is the DEL's own ([`ipam::release`]): the key is removed only if it still
//!    names the same container, and the reservation only if it is still that owner's.
//!
//! A pod "no longer lists the address" only when it is Running, has a network-status
//! annotation, and none of its networks lists the address: a pod without the annotation (an
//! attachment nobody reported) is never judged by it. Completed pods (Succeeded, Failed) hold
//! nothing: the kubelet has torn their sandboxes down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;

use crate::ipam::{self, Owner, Recorded};
use crate::k8s::{self, OverlappingRangeIPReservation, PodSummary};

/// The component name on Events and the Lease's name.
pub const COMPONENT: &str = "wasmcni-reconciler";

/// Something that may be a leak, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suspect {
    /// A pool entry.
    Entry {
        /// Pool, offset, container ID: what identifies the entry.
        key: (String, u64, String),
        /// The address.
        ip: std::net::IpAddr,
        /// Its pod.
        podref: String,
        /// Its interface.
        ifname: String,
        /// Why it looks leaked.
        why: String,
    },
    /// A reservation no pool entry accounts for.
    Reservation {
        /// Its name.
        name: String,
        /// Its uid (the delete is conditional on it).
        uid: String,
        /// Its pod.
        podref: String,
        /// Why it looks leaked.
        why: String,
    },
}

impl Suspect {
    fn key(&self) -> String {
        match self {
            Suspect::Entry { key, .. } => format!("entry {}/{}/{}", key.0, key.1, key.2),
            Suspect::Reservation { name, uid, .. } => format!("reservation {name}/{uid}"),
        }
    }
}

/// Why pod `p` (if it exists) does not hold `ip`; `None` when it may.
fn not_held(p: Option<&PodSummary>, podref: &str, ip: std::net::IpAddr) -> Option<String> {
    match p {
        None => Some(format!("pod {podref} no longer exists")),
        Some(p) if matches!(p.phase.as_str(), "Succeeded" | "Failed") => {
            Some(format!("pod {podref} has completed ({})", p.phase))
        }
        Some(p) if p.phase == "Running" => match &p.status_ips {
            Some(ips) if !ips.iter().any(|s| s.parse().ok() == Some(ip)) => Some(format!(
                "running pod {podref} does not list {ip} in its network-status"
            )),
            _ => None,
        },
        Some(_) => None,
    }
}

/// Why pod `p` (if it exists) does not hold reservation `name`, which no pool accounts for;
/// `None` when it may. A pod that exists and is neither completed nor Running with a
/// network-status is never judged: a pass reads the pools before the reservations, so an ADD
/// that writes its entry and then its reservation in between looks like a leak.
fn reservation_not_held(p: Option<&PodSummary>, podref: &str, name: &str) -> Option<String> {
    match p {
        None => Some(format!(
            "no pool records its address and pod {podref} no longer exists"
        )),
        Some(p) if matches!(p.phase.as_str(), "Succeeded" | "Failed") => Some(format!(
            "no pool records its address and pod {podref} has completed ({})",
            p.phase
        )),
        Some(p) if p.phase == "Running" => match &p.status_ips {
            Some(ips)
                if !ips
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .any(|ip| ipam::names_address(name, ip)) =>
            {
                Some(format!(
                    "no pool records its address and running pod {podref} does not list it"
                ))
            }
            _ => None,
        },
        Some(_) => None,
    }
}

/// The suspects of one snapshot (pools read first, then reservations, then pods).
pub fn suspects(
    recorded: &[Recorded],
    reservations: &[OverlappingRangeIPReservation],
    pods: &BTreeMap<String, PodSummary>,
) -> Vec<Suspect> {
    let mut out = Vec::new();
    for r in recorded {
        let a = &r.allocation;
        if let Some(why) = not_held(pods.get(&a.podref), &a.podref, r.ip) {
            out.push(Suspect::Entry {
                key: (r.pool.clone(), r.offset, a.id.clone()),
                ip: r.ip,
                podref: a.podref.clone(),
                ifname: a.ifname.clone(),
                why,
            });
        }
    }
    let accounted: BTreeSet<&str> = recorded.iter().map(|r| r.reservation.as_str()).collect();
    for orip in reservations {
        let (Some(name), Some(uid)) = (&orip.metadata.name, &orip.metadata.uid) else {
            continue;
        };
        if accounted.contains(name.as_str()) {
            continue;
        }
        let podref = &orip.spec.podref;
        let Some(why) = reservation_not_held(pods.get(podref), podref, name) else {
            continue;
        };
        out.push(Suspect::Reservation {
            name: name.clone(),
            uid: uid.clone(),
            podref: podref.clone(),
            why,
        });
    }
    out
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pass {
    /// Allocations released.
    pub freed_entries: usize,
    /// Reservations deleted.
    pub freed_reservations: usize,
    /// Suspects seen for less than the grace period (looked at again next pass).
    pub waiting: usize,
    /// Suspects that turned out held when read again live.
    pub cleared: usize,
}

/// The reconciler's memory across passes: when each suspect was first seen.
pub struct Reconciler {
    kube: k8s::Client,
    namespace: String,
    grace: Duration,
    seen: BTreeMap<String, Instant>,
}

impl Reconciler {
    /// A reconciler of the IPPools and reservations in `namespace`.
    pub fn new(kube: k8s::Client, namespace: String, grace: Duration) -> Self {
        Reconciler {
            kube,
            namespace,
            grace,
            seen: BTreeMap::new(),
        }
    }

    /// Forget every suspect (leadership lost: the next leader waits its own grace).
    pub fn forget(&mut self) {
        self.seen.clear();
    }

    /// One pass: snapshot, age the suspects, free those past the grace period.
    pub async fn pass(&mut self) -> Result<Pass, k8s::Error> {
        let ns = self.namespace.clone();
        let pools = self.kube.ip_pools(&ns).await?;
        let reservations = self.kube.reservations(&ns).await?;
        let pods = self.kube.pod_summaries().await?;
        let found = suspects(&ipam::recorded(&pools), &reservations, &pods);
        let now = Instant::now();
        let keys: BTreeSet<String> = found.iter().map(Suspect::key).collect();
        self.seen.retain(|k, _| keys.contains(k));
        let mut pass = Pass::default();
        for s in found {
            let first = *self.seen.entry(s.key()).or_insert(now);
            if now.duration_since(first) < self.grace {
                pass.waiting += 1;
                continue;
            }
            match self.free(&s).await {
                Ok(true) => {
                    match s {
                        Suspect::Entry { .. } => pass.freed_entries += 1,
                        Suspect::Reservation { .. } => pass.freed_reservations += 1,
                    }
                    self.seen.remove(&s.key());
                }
                Ok(false) => {
                    pass.cleared += 1;
                    self.seen.remove(&s.key());
                }
                // One object failing must not stop the others; it is looked at next pass.
                Err(e) => tracing::warn!("{}: {e}", s.key()),
            }
        }
        Ok(pass)
    }

    /// Free `s` if it is still a leak: `Ok(false)` when the live check finds it held.
    async fn free(&self, s: &Suspect) -> Result<bool, ipam::Error> {
        let store = ipam::Error::Store;
        let ns = &self.namespace;
        match s {
            Suspect::Entry {
                key: (pool, _, id),
                ip,
                podref,
                ifname,
                ..
            } => {
                let live = self.live_pod(podref).await.map_err(store)?;
                let Some(why) = not_held(live.as_ref(), podref, *ip) else {
                    return Ok(false);
                };
                let owner = Owner {
                    container_id: id.clone(),
                    ifname: ifname.clone(),
                    podref: podref.clone(),
                };
                ipam::release(&self.kube, ns, Some(std::slice::from_ref(pool)), &owner).await?;
                let msg = format!(
                    "released {ip} (IPPool {ns}/{pool}, container {id}, {podref} {ifname}): {why}"
                );
                tracing::info!("{msg}");
                let object = match (&live, podref.split_once('/')) {
                    (Some(p), Some((pns, name))) => object("v1", "Pod", pns, name, Some(&p.uid)),
                    _ => object(WHEREABOUTS, "IPPool", ns, pool, None),
                };
                self.event(object, &msg).await;
                Ok(true)
            }
            Suspect::Reservation {
                name,
                uid,
                podref,
                why,
            } => {
                let live = self.live_pod(podref).await.map_err(store)?;
                if reservation_not_held(live.as_ref(), podref, name).is_none() {
                    return Ok(false);
                }
                if self.kube.unreserve(ns, name, uid).await.map_err(store)? != k8s::Write::Done {
                    return Ok(false); // gone or replaced meanwhile: nothing of ours to free
                }
                let msg =
                    format!("deleted OverlappingRangeIPReservation {ns}/{name} ({podref}): {why}");
                tracing::info!("{msg}");
                let object = object(
                    WHEREABOUTS,
                    "OverlappingRangeIPReservation",
                    ns,
                    name,
                    Some(uid),
                );
                self.event(object, &msg).await;
                Ok(true)
            }
        }
    }

    /// The pod `podref` as it is now, if it exists.
    async fn live_pod(&self, podref: &str) -> Result<Option<PodSummary>, k8s::Error> {
        match podref.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                self.kube.pod_summary(ns, name).await
            }
            _ => Ok(None),
        }
    }

    /// Events are best effort: a release that happened is not undone because its Event failed.
    async fn event(&self, object: ObjectReference, msg: &str) {
        if let Err(e) = self
            .kube
            .event(object, false, "AddressReleased", msg, COMPONENT)
            .await
        {
            tracing::warn!("event for {msg:?}: {e}");
        }
    }
}

const WHEREABOUTS: &str = "whereabouts.cni.cncf.io/v1alpha1";

/// The object an Event is about.
fn object(api: &str, kind: &str, ns: &str, name: &str, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some(api.into()),
        kind: Some(kind.into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        uid: uid.map(str::to_string),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::{IpAllocation, OverlappingRangeIPReservationSpec};

    fn rec(pool: &str, offset: u64, ip: &str, id: &str, podref: &str) -> Recorded {
        Recorded {
            pool: pool.into(),
            offset,
            ip: ip.parse().unwrap(),
            reservation: ip.into(),
            allocation: IpAllocation {
                id: id.into(),
                podref: podref.into(),
                ifname: "net1".into(),
            },
        }
    }

    fn pod(phase: &str, ips: Option<&[&str]>) -> PodSummary {
        PodSummary {
            uid: "u".into(),
            phase: phase.into(),
            status_ips: ips.map(|i| i.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn orip(name: &str, podref: &str) -> OverlappingRangeIPReservation {
        let mut o = OverlappingRangeIPReservation::new(
            name,
            OverlappingRangeIPReservationSpec {
                podref: podref.into(),
                ..Default::default()
            },
        );
        o.metadata.uid = Some(format!("uid-{name}"));
        o
    }

    #[test]
    fn gone_completed_and_unlisted_are_suspects_pending_and_unannotated_are_not() {
        let recorded = [
            rec("p", 1, "10.0.0.1", "c1", "default/gone"),
            rec("p", 2, "10.0.0.2", "c2", "default/done"),
            rec("p", 3, "10.0.0.3", "c3", "default/moved"),
            rec("p", 4, "10.0.0.4", "c4", "default/creating"),
            rec("p", 5, "10.0.0.5", "c5", "default/silent"),
            rec("p", 6, "10.0.0.6", "c6", "default/fine"),
        ];
        let pods = BTreeMap::from([
            ("default/done".to_string(), pod("Succeeded", None)),
            (
                "default/moved".to_string(),
                pod("Running", Some(&["10.0.0.99"])),
            ),
            ("default/creating".to_string(), pod("Pending", Some(&[]))),
            ("default/silent".to_string(), pod("Running", None)),
            (
                "default/fine".to_string(),
                pod("Running", Some(&["10.244.0.5", "10.0.0.6"])),
            ),
        ]);
        let s = suspects(&recorded, &[], &pods);
        let ids: Vec<_> = s
            .iter()
            .map(|s| match s {
                Suspect::Entry { key, .. } => key.2.as_str(),
                Suspect::Reservation { .. } => "orip",
            })
            .collect();
        assert_eq!(ids, ["c1", "c2", "c3"]);
    }

    #[test]
    fn a_reservation_is_a_suspect_only_when_no_pool_accounts_for_it_and_its_pod_does_not_list_it() {
        let recorded = [rec("p", 1, "10.0.0.1", "c1", "default/a")];
        let pods = BTreeMap::from([
            ("default/a".to_string(), pod("Running", Some(&["10.0.0.1"]))),
            ("default/b".to_string(), pod("Running", Some(&["10.0.0.2"]))),
            ("default/c".to_string(), pod("Pending", None)),
            ("default/d".to_string(), pod("Failed", None)),
            ("default/e".to_string(), pod("Running", Some(&["10.0.0.9"]))),
        ]);
        let orips = [
            orip("10.0.0.1", "default/a"),      // accounted for
            orip("blue-10.0.0.2", "default/b"), // not recorded, but its pod lists it
            orip("10.0.0.3", "default/c"), // not recorded, pod Pending: its ADD may be in flight
            orip("10.0.0.4", "default/gone"), // not recorded, pod gone
            orip("10.0.0.5", "default/d"), // not recorded, pod completed
            orip("10.0.0.6", "default/e"), // not recorded, running pod lists another address
        ];
        let s = suspects(&recorded, &orips, &pods);
        let names: Vec<_> = s
            .iter()
            .map(|s| match s {
                Suspect::Reservation { name, .. } => name.as_str(),
                Suspect::Entry { .. } => "entry",
            })
            .collect();
        assert_eq!(names, ["10.0.0.4", "10.0.0.5", "10.0.0.6"]);
    }
}
