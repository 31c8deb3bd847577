//! Committing an allocation: read the pool once, choose, claim the address, record it; when
//! another writer got there first, choose again over what is now known to be taken. Releases
//! the same way. No lock, and no write conditional on the whole pool: every write names the
//! one key or object it changes (see [`PoolStore`]).
//!
//! With `enable_overlapping_ranges` (whereabouts' default) the claim across ranges is the
//! create of the address's OverlappingRangeIPReservation, named after the address as
//! whereabouts names it: the API server lets one create of a name succeed, so two ranges that
//! contain an address — or a whereabouts node and a wasmcni node — never both hold it.
//!
//! The order is whereabouts' (v0.9.2 `IPManagementKubernetesUpdate`): ADD records the address
//! in its pool, then reserves it; DEL removes the record, then the reservation. So every
//! write an ADD makes is found again by its owner: a plugin killed between the two writes
//! leaves a pool entry under its container ID, which the runtime's DEL frees (the other order
//! left a reservation no DEL could name — seen in the fault tier). An entry whose reservation
//! another range won is not held: the writer that finds it so gives the entry back and
//! chooses again, so an address is only ever handed out with both writes made.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::turn::Turn;
use super::{
    Choice, Error, IpamConf, Lease, Owner, PoolRef, PoolStore, PoolView, Proposal, Proposer, conf,
    range,
};
use crate::k8s::{IPPool, IPPoolSpec, IpAllocation, OverlappingRangeIPReservationSpec, Write};

/// How many addresses one allocation may try. Each lost address costs one small write, so the
/// budget is sized for a crowd (50 writers choosing the same lowest-free address), not for a
/// few races.
pub const MAX_ATTEMPTS: u32 = 64;

/// After this many addresses lost in a row the pool is read again: a crowd that has taken many
/// addresses is passed in one read instead of one address at a time.
const REREAD_AFTER: u32 = 8;

/// Decoded allocations of a pool; keys that are not offsets are kept aside untouched.
pub(super) fn offsets(spec: &IPPoolSpec) -> BTreeMap<u64, IpAllocation> {
    spec.allocations
        .iter()
        .filter_map(|(k, v)| k.parse::<u64>().ok().map(|o| (o, v.clone())))
        .collect()
}

/// Allocate an address for `owner` in `pool` (one range of `conf`).
///
/// Guarantees: on `Ok`, the address is recorded in the pool for `owner` and — with
/// overlapping ranges on — reserved for `owner` cluster-wide; it was free (allocatable, not
/// excluded, not the gateway, not recorded) when recorded. Idempotent by owner: if the pool
/// already records an address for `owner` (a retried ADD, or an earlier attempt whose response
/// was lost) that address is returned; if it records one for the same pod and interface under
/// another container (the pod is back with a new sandbox) that one is handed to `owner`, as
/// whereabouts does.
///
/// Errors: [`Error::Conflict`] after [`MAX_ATTEMPTS`] addresses lost to other writers
/// (retryable); [`Error::Exhausted`] when the proposer finds nothing; [`Error::Unavailable`]
/// for a requested address that is outside the range or taken; [`Error::InvalidProposal`]
/// when the proposer names an offset that is not free; [`Error::Proposer`] and
/// [`Error::Store`] pass through.
pub async fn allocate<S: PoolStore, P: Proposer>(
    store: &S,
    conf: &IpamConf,
    pool: &PoolRef,
    namespace: &str,
    owner: &Owner,
    choice: Choice<'_, P>,
) -> Result<Lease, Error<P::Error>> {
    let mut turn = store.turn(namespace, &pool.name).await;
    allocate_in(store, conf, pool, namespace, owner, choice, None, &mut turn).await
}

/// [`allocate`] without taking this node's turn at the pool: the caller holds `turn` (a range
/// in blocks takes the turn of the whole range, [`super::blocks`]) and, when the store sees its
/// own writes, this gives it up as soon as the address is recorded in the pool — the
/// reservation that follows writes no pool, and the node's next writer need not wait for it.
/// `seed`: the pool as the caller just read it, used instead of the first read.
#[allow(clippy::too_many_arguments)]
pub(super) async fn allocate_in<S: PoolStore, P: Proposer>(
    store: &S,
    conf: &IpamConf,
    pool: &PoolRef,
    namespace: &str,
    owner: &Owner,
    choice: Choice<'_, P>,
    mut seed: Option<IPPool>,
    turn: &mut Option<Turn>,
) -> Result<Lease, Error<P::Error>> {
    let store_err = Error::Store;
    let lease = |o: u64| Lease {
        address: pool.range.address(o),
        pool: pool.name.clone(),
    };
    let entry = IpAllocation {
        id: owner.container_id.clone(),
        podref: owner.podref.clone(),
        ifname: owner.ifname.clone(),
    };
    // The pool as last read: the view proposals are made over, and its resourceVersion when it
    // had no allocations at all (the first write then replaces the whole map).
    let mut read: Option<(PoolView, Option<String>)> = None;
    let mut lost = 0u32;
    for attempt in 0..MAX_ATTEMPTS {
        let (view, empty_rv) = match read.take() {
            Some(r) => r,
            None => {
                let p = match seed.take() {
                    Some(p) => Some(p),
                    None => store.get(namespace, &pool.name).await.map_err(store_err)?,
                };
                let Some(p) = p else {
                    store
                        .create(namespace, &pool.name, &pool.range.cidr())
                        .await
                        .map_err(store_err)?;
                    continue;
                };
                let taken = offsets(&p.spec);
                if let Some((&o, _)) = taken.iter().find(|(_, a)| owner.holds(a)) {
                    if reserve_held(store, conf, namespace, pool, o, owner, &entry).await? {
                        return Ok(lease(o));
                    }
                    continue; // given back: read again and choose
                }
                if let Some((&o, a)) = taken.iter().find(|(_, a)| owner.same_pod_interface(a)) {
                    let w = store
                        .rehome(namespace, &pool.name, o, &a.id, &owner.container_id)
                        .await
                        .map_err(store_err)?;
                    if w == Write::Done {
                        tracing::info!(
                            "{} keeps {} (was container {}); IPPool {namespace}/{}",
                            owner.podref,
                            pool.range.address(o),
                            a.id,
                            pool.name
                        );
                        if reserve_held(store, conf, namespace, pool, o, owner, &entry).await? {
                            return Ok(lease(o));
                        }
                    }
                    continue; // it changed under us, or was given back: read again
                }
                let empty_rv = if taken.is_empty() {
                    p.metadata.resource_version.clone()
                } else {
                    None
                };
                (PoolView::new(pool.range.clone(), taken), empty_rv)
            }
        };

        let (proposed, chooser, mut view) = choose(&choice, view, &pool.range).await?;
        let requested = matches!(choice, Choice::Requested(_));
        // After lost races, fan out from the proposal instead of following every other loser
        // to the next lowest address (PoolView::spread). A requested address is exact.
        let offset = if requested {
            proposed
        } else {
            view.spread(proposed, lost, salt(attempt))
        };

        if conf.sleep_for_race > 0 {
            tokio::time::sleep(Duration::from_secs(conf.sleep_for_race.into())).await;
        }
        let w = store
            .insert(namespace, &pool.name, offset, &entry, empty_rv.as_deref())
            .await
            .map_err(store_err)?;
        if w != Write::Done {
            // Another writer recorded this offset first (or the pool changed while it was
            // empty). Nothing of ours was written.
            lost += 1;
            tracing::info!(
                "IPPool {}: offset {offset} went to another writer (attempt {attempt})",
                pool.name
            );
            if empty_rv.is_some() {
                backoff(attempt).await;
            } else if !requested && w == Write::Changed && !lost.is_multiple_of(REREAD_AFTER) {
                view.take(offset, "another writer");
                read = Some((view, None));
            }
            // Otherwise read again (a requested address then reports its holder).
            continue;
        }
        // Recorded: the pool is written, and the turn was for writers of the pool — if the next
        // one will see this record (PoolStore::sees_own_writes).
        if store.sees_own_writes() {
            drop(turn.take());
        }
        if conf.overlapping {
            let ip = pool.range.address(offset).ip();
            if let Claim::Held(by) = claim(store, conf, namespace, ip, owner).await? {
                // An overlapping range (or a whereabouts node) reserved it after our read.
                give_back(store, namespace, &pool.name, offset, &entry).await?;
                if requested {
                    return Err(Error::Unavailable {
                        ip,
                        why: format!(
                            "it is reserved for {by} (OverlappingRangeIPReservation \
                             {namespace}/{}: an overlapping range holds it)",
                            conf.reservation_name(ip)
                        ),
                    });
                }
                view.take(offset, &by);
                lost += 1;
                read = Some((view, None));
                continue;
            }
        }
        tracing::info!(
            "{chooser} {} for {}; recorded in IPPool {namespace}/{}",
            pool.range.address(offset),
            owner.podref,
            pool.name
        );
        return Ok(lease(offset));
    }
    Err(Error::Conflict {
        pool: pool.name.clone(),
        attempts: MAX_ATTEMPTS,
    })
}

/// The offset to try, who chose it (for the log), and the view back.
async fn choose<P: Proposer>(
    choice: &Choice<'_, P>,
    view: PoolView,
    range: &super::Range,
) -> Result<(u64, String, PoolView), Error<P::Error>> {
    match choice {
        Choice::Requested(ip) => {
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
            Ok((o, "the pod requested".to_string(), view))
        }
        Choice::Proposed(p) => {
            let (answer, view) = p.propose(view).await.map_err(Error::Proposer)?;
            let offset = match answer {
                Proposal::Offset(o) => o,
                Proposal::Exhausted => {
                    return Err(Error::Exhausted {
                        range: range.cidr(),
                    });
                }
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
                return Err(Error::InvalidProposal {
                    by: p.describe(),
                    why,
                });
            }
            Ok((offset, format!("{} proposed", p.describe()), view))
        }
    }
}

/// The outcome of claiming an address's reservation.
enum Claim {
    /// The reservation is `owner`'s (made now, or by an earlier attempt of the same owner).
    Mine,
    /// Someone else's: `namespace/name` of its pod.
    Held(String),
}

/// Whether reservation `spec` is `owner`'s: the same container, or the same pod and interface
/// (whereabouts v0.9.2 writes no container ID). An interface left empty matches any.
fn is_mine(spec: &OverlappingRangeIPReservationSpec, owner: &Owner) -> bool {
    let ifname = spec.ifname.is_empty() || owner.ifname.is_empty() || spec.ifname == owner.ifname;
    let same_pod = owner.names_a_pod() && spec.podref == owner.podref;
    let same_container = !spec.containerid.is_empty() && spec.containerid == owner.container_id;
    ifname && (same_pod || same_container)
}

/// Reserve `ip` for `owner` across ranges.
async fn claim<S: PoolStore, E>(
    store: &S,
    conf: &IpamConf,
    namespace: &str,
    ip: IpAddr,
    owner: &Owner,
) -> Result<Claim, Error<E>> {
    let name = conf.reservation_name(ip);
    let spec = OverlappingRangeIPReservationSpec {
        containerid: owner.container_id.clone(),
        podref: owner.podref.clone(),
        ifname: owner.ifname.clone(),
    };
    // A reservation deleted between our create and our read is retried a few times.
    for _ in 0..3 {
        if store
            .reserve(namespace, &name, &spec)
            .await
            .map_err(Error::Store)?
            == Write::Done
        {
            return Ok(Claim::Mine);
        }
        match store
            .reservation(namespace, &name)
            .await
            .map_err(Error::Store)?
        {
            Some(r) if is_mine(&r.spec, owner) => return Ok(Claim::Mine),
            Some(r) => return Ok(Claim::Held(r.spec.podref)),
            None => continue,
        }
    }
    Ok(Claim::Held(format!(
        "a reservation {name} that keeps changing"
    )))
}

/// An address `owner` already records at `offset` (as `entry`): make sure its reservation exists
/// too (an earlier attempt may have stopped between the two writes, or the pool predates
/// reservations). `Ok(false)` when another range holds the reservation: the entry was never
/// held, and has been given back.
async fn reserve_held<S: PoolStore, E>(
    store: &S,
    conf: &IpamConf,
    namespace: &str,
    pool: &PoolRef,
    offset: u64,
    owner: &Owner,
    entry: &IpAllocation,
) -> Result<bool, Error<E>> {
    if !conf.overlapping {
        return Ok(true);
    }
    let ip = pool.range.address(offset).ip();
    let Claim::Held(by) = claim(store, conf, namespace, ip, owner).await? else {
        return Ok(true);
    };
    tracing::info!(
        "{ip} is recorded for {} in IPPool {} but reserved for {by} (an earlier attempt \
         stopped between its two writes): giving it back",
        owner.podref,
        pool.name
    );
    give_back(store, namespace, &pool.name, offset, entry).await?;
    Ok(false)
}

/// Remove `entry`'s record at `offset` of pool `name` (an address it never held).
async fn give_back<S: PoolStore, E>(
    store: &S,
    namespace: &str,
    name: &str,
    offset: u64,
    entry: &IpAllocation,
) -> Result<(), Error<E>> {
    store
        .remove(namespace, name, offset, &entry.id)
        .await
        .map(drop)
        .map_err(Error::Store)
}

/// Delete reservation `name` if it is `owner`'s (and still the object we read).
async fn unreserve<S: PoolStore>(
    store: &S,
    namespace: &str,
    name: &str,
    owner: &Owner,
) -> Result<(), Error> {
    let Some(r) = store
        .reservation(namespace, name)
        .await
        .map_err(Error::Store)?
    else {
        return Ok(());
    };
    if !is_mine(&r.spec, owner) {
        return Ok(());
    }
    let Some(uid) = r.metadata.uid.as_deref() else {
        return Ok(());
    };
    store
        .unreserve(namespace, name, uid)
        .await
        .map(drop)
        .map_err(Error::Store)
}

/// Who `pool` records as holding `ip` (`None`: nobody, or no pool).
pub async fn holder<S: PoolStore>(
    store: &S,
    pool: &PoolRef,
    namespace: &str,
    ip: IpAddr,
) -> Result<Option<IpAllocation>, Error> {
    let Some(offset) = pool.range.offset_of(ip) else {
        return Ok(None);
    };
    let p = store
        .get(namespace, &pool.name)
        .await
        .map_err(Error::Store)?;
    Ok(p.and_then(|p| offsets(&p.spec).remove(&offset)))
}

/// Release `owner`'s addresses from the pools `pools` (all pools in `namespace` when `None`),
/// and their reservations.
///
/// Guarantees: on `Ok`, no pool named records an allocation `owner` holds, and no reservation
/// of a released address is left for `owner` (the reservation's name is derived from the
/// pool's name and range, so this works when the NAD is gone). Absent pools and absent
/// allocations are success: DEL is idempotent. Errors: [`Error::Store`] (retryable when
/// unreachable).
pub async fn release<S: PoolStore>(
    store: &S,
    namespace: &str,
    pools: Option<&[String]>,
    owner: &Owner,
) -> Result<(), Error> {
    let names: Vec<String> = match pools {
        Some(p) => p.to_vec(),
        None => store
            .list(namespace)
            .await
            .map_err(Error::Store)?
            .into_iter()
            .filter(|p| p.spec.allocations.values().any(|a| owner.holds(a)))
            .filter_map(|p| p.metadata.name)
            .collect(),
    };
    for name in names {
        let _turn = store.turn(namespace, &name).await;
        let Some(pool) = store.get(namespace, &name).await.map_err(Error::Store)? else {
            continue;
        };
        let net: Option<ipnetwork::IpNetwork> = pool.spec.range.parse().ok();
        let network = conf::network_of(&name, &pool.spec.range);
        for (o, a) in offsets(&pool.spec) {
            if !owner.holds(&a) {
                continue;
            }
            let w = store
                .remove(namespace, &name, o, &a.id)
                .await
                .map_err(Error::Store)?;
            // Changed: re-owned by a new sandbox of the pod meanwhile; not ours to free.
            if w != Write::Done {
                continue;
            }
            let Some(ip) = net.and_then(|n| range::at(n, o)) else {
                continue;
            };
            let holder = Owner {
                container_id: a.id.clone(),
                ifname: a.ifname.clone(),
                podref: a.podref.clone(),
            };
            let rname = conf::reservation_name(network.as_deref(), ip.ip());
            unreserve(store, namespace, &rname, &holder).await?;
        }
    }
    Ok(())
}

/// A different number for every writer and attempt (std's per-process random hash keys).
fn salt(attempt: u32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    h.write_u32(std::process::id());
    h.finish()
}

/// Short, jittered, growing pauses: racing writers spread out instead of colliding again.
async fn backoff(attempt: u32) {
    let jitter = u64::from(std::process::id() % 7) + u64::from(attempt.min(10)) * 3;
    tokio::time::sleep(Duration::from_millis(
        5 + jitter * u64::from(attempt.min(5)),
    ))
    .await;
}

#[cfg(test)]
pub(super) mod tests {
    //! The commit loop over a fake store: lost races, the retry budget, exhaustion, a lost
    //! response, reservations across overlapping ranges (and whereabouts' own), the pod that
    //! comes back with a new sandbox, and releases.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::ipam::LowestFree;
    use crate::k8s::{self, IPPool, OverlappingRangeIPReservation};

    /// An in-memory store with the API server's semantics for each conditional write, and
    /// faults to inject: the next `steal` inserts lose their offset to another writer who
    /// records it first, and the next `lost` inserts are applied but answer a transport error.
    #[derive(Default)]
    pub(in crate::ipam) struct FakeStore {
        pools: Mutex<BTreeMap<String, IPPool>>,
        pub(in crate::ipam) orips: Mutex<BTreeMap<String, OverlappingRangeIPReservation>>,
        version: AtomicU32,
        steal: AtomicU32,
        lost: AtomicU32,
        pub(in crate::ipam) inserts: AtomicU32,
        gets: AtomicU32,
        /// Turns taken in this directory, as on a node (none when `None`).
        turns: Option<tempfile::TempDir>,
        /// Reservations written while the turn of their pool was held.
        reserved_in_turn: AtomicU32,
        /// Reads of one node's blocks.
        pub(in crate::ipam) node_lists: AtomicU32,
    }

    impl FakeStore {
        pub(in crate::ipam) fn entries(&self, name: &str) -> BTreeMap<String, IpAllocation> {
            self.pools.lock().unwrap()[name].spec.allocations.clone()
        }
        pub(in crate::ipam) fn orip(
            &self,
            name: &str,
        ) -> Option<OverlappingRangeIPReservationSpec> {
            self.orips.lock().unwrap().get(name).map(|r| r.spec.clone())
        }
        /// Record `a` at `offset` of pool `name` as another process would (no cache sees it).
        pub(in crate::ipam) fn record_elsewhere(&self, name: &str, offset: u64, a: IpAllocation) {
            let v = self.next();
            let mut pools = self.pools.lock().unwrap();
            let p = pools.get_mut(name).unwrap();
            p.spec.allocations.insert(offset.to_string(), a);
            p.metadata.resource_version = Some(v);
        }
        fn next(&self) -> String {
            (self.version.fetch_add(1, Ordering::SeqCst) + 1).to_string()
        }
        fn empty(&self, name: &str, range: &str) -> IPPool {
            let mut p = IPPool::new(
                name,
                IPPoolSpec {
                    range: range.into(),
                    allocations: BTreeMap::new(),
                },
            );
            p.metadata.resource_version = Some(self.next());
            p
        }
        /// A reservation someone else (e.g. whereabouts, which writes no container ID) made.
        fn reserved_by_other(&self, name: &str, podref: &str) {
            let mut r = OverlappingRangeIPReservation::new(
                name,
                OverlappingRangeIPReservationSpec {
                    podref: podref.into(),
                    ..Default::default()
                },
            );
            r.metadata.uid = Some(self.next());
            self.orips.lock().unwrap().insert(name.into(), r);
        }
    }

    fn lost() -> k8s::Error {
        k8s::Error::Unreachable {
            what: "writing IPPool".into(),
            source: kube::Error::Service("connection reset".into()),
        }
    }

    impl PoolStore for FakeStore {
        /// Every read is of the store itself.
        fn sees_own_writes(&self) -> bool {
            true
        }
        async fn turn(&self, namespace: &str, name: &str) -> Option<Turn> {
            let dir = self.turns.as_ref()?;
            crate::ipam::turn::take_in(dir.path(), namespace, name, Duration::from_secs(5)).await
        }
        async fn get(&self, _: &str, name: &str) -> Result<Option<IPPool>, k8s::Error> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            Ok(self.pools.lock().unwrap().get(name).cloned())
        }
        async fn create(&self, _: &str, name: &str, range: &str) -> Result<(), k8s::Error> {
            let mut pools = self.pools.lock().unwrap();
            if !pools.contains_key(name) {
                pools.insert(name.into(), self.empty(name, range));
            }
            Ok(())
        }
        async fn insert(
            &self,
            _: &str,
            name: &str,
            offset: u64,
            entry: &IpAllocation,
            rv_if_empty: Option<&str>,
        ) -> Result<Write, k8s::Error> {
            self.inserts.fetch_add(1, Ordering::SeqCst);
            let mut pools = self.pools.lock().unwrap();
            let Some(p) = pools.get_mut(name) else {
                return Ok(Write::Absent);
            };
            if self.steal.load(Ordering::SeqCst) > 0 {
                self.steal.fetch_sub(1, Ordering::SeqCst);
                p.spec
                    .allocations
                    .insert(offset.to_string(), alloc("other-node"));
                p.metadata.resource_version = Some(self.next());
                return Ok(Write::Changed);
            }
            let key = offset.to_string();
            let ok = match rv_if_empty {
                Some(rv) => p.metadata.resource_version.as_deref() == Some(rv),
                None => !p.spec.allocations.contains_key(&key),
            };
            if !ok {
                return Ok(Write::Changed);
            }
            p.spec.allocations.insert(key, entry.clone());
            p.metadata.resource_version = Some(self.next());
            if self.lost.load(Ordering::SeqCst) > 0 {
                self.lost.fetch_sub(1, Ordering::SeqCst);
                return Err(lost());
            }
            Ok(Write::Done)
        }
        async fn remove(
            &self,
            _: &str,
            name: &str,
            offset: u64,
            id: &str,
        ) -> Result<Write, k8s::Error> {
            let mut pools = self.pools.lock().unwrap();
            let Some(p) = pools.get_mut(name) else {
                return Ok(Write::Absent);
            };
            let key = offset.to_string();
            if p.spec.allocations.get(&key).is_none_or(|a| a.id != id) {
                return Ok(Write::Changed);
            }
            p.spec.allocations.remove(&key);
            // Every write of an object gives it a new resourceVersion, as on the API server.
            p.metadata.resource_version = Some(self.next());
            Ok(Write::Done)
        }
        async fn rehome(
            &self,
            _: &str,
            name: &str,
            offset: u64,
            from: &str,
            to: &str,
        ) -> Result<Write, k8s::Error> {
            let mut pools = self.pools.lock().unwrap();
            let Some(a) = pools
                .get_mut(name)
                .and_then(|p| p.spec.allocations.get_mut(&offset.to_string()))
            else {
                return Ok(Write::Absent);
            };
            if a.id != from {
                return Ok(Write::Changed);
            }
            a.id = to.into();
            let v = self.next();
            if let Some(p) = pools.get_mut(name) {
                p.metadata.resource_version = Some(v);
            }
            Ok(Write::Done)
        }
        async fn list(&self, _: &str) -> Result<Vec<IPPool>, k8s::Error> {
            Ok(self.pools.lock().unwrap().values().cloned().collect())
        }
        async fn blocks(
            &self,
            _: &str,
            pool: &str,
            node: Option<&str>,
            _fresh: bool,
        ) -> Result<Vec<IPPool>, k8s::Error> {
            if node.is_some() {
                self.node_lists.fetch_add(1, Ordering::SeqCst);
            }
            let of =
                |p: &IPPool, k: &str| p.metadata.labels.as_ref().and_then(|l| l.get(k).cloned());
            Ok(self
                .pools
                .lock()
                .unwrap()
                .values()
                .filter(|p| of(p, "pool").as_deref() == Some(pool))
                .filter(|p| node.is_none_or(|n| of(p, "node").as_deref() == Some(n)))
                .cloned()
                .collect())
        }
        async fn block_names(
            &self,
            ns: &str,
            pool: &str,
            _fresh: bool,
        ) -> Result<Vec<String>, k8s::Error> {
            let all = self.blocks(ns, pool, None, true).await?;
            Ok(all.into_iter().filter_map(|p| p.metadata.name).collect())
        }
        async fn create_block(
            &self,
            _: &str,
            name: &str,
            range: &str,
            pool: &str,
            node: &str,
        ) -> Result<Write, k8s::Error> {
            let mut pools = self.pools.lock().unwrap();
            if pools.contains_key(name) {
                return Ok(Write::Changed);
            }
            let mut p = self.empty(name, range);
            p.metadata.labels = Some(
                [("pool", pool), ("node", node)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            pools.insert(name.into(), p);
            Ok(Write::Done)
        }
        async fn reservation(
            &self,
            _: &str,
            name: &str,
        ) -> Result<Option<OverlappingRangeIPReservation>, k8s::Error> {
            Ok(self.orips.lock().unwrap().get(name).cloned())
        }
        async fn reserve(
            &self,
            _: &str,
            name: &str,
            spec: &OverlappingRangeIPReservationSpec,
        ) -> Result<Write, k8s::Error> {
            if let Some(dir) = &self.turns {
                let free = crate::ipam::turn::take_in(
                    dir.path(),
                    "kube-system",
                    "10.0.0.0-24",
                    Duration::ZERO,
                )
                .await
                .is_some();
                if !free {
                    self.reserved_in_turn.fetch_add(1, Ordering::SeqCst);
                }
            }
            let mut orips = self.orips.lock().unwrap();
            if orips.contains_key(name) {
                return Ok(Write::Changed);
            }
            let mut r = OverlappingRangeIPReservation::new(name, spec.clone());
            r.metadata.uid = Some(self.next());
            orips.insert(name.into(), r);
            Ok(Write::Done)
        }
        async fn unreserve(&self, _: &str, name: &str, uid: &str) -> Result<Write, k8s::Error> {
            let mut orips = self.orips.lock().unwrap();
            match orips.get(name) {
                None => Ok(Write::Absent),
                Some(r) if r.metadata.uid.as_deref() != Some(uid) => Ok(Write::Changed),
                Some(_) => {
                    orips.remove(name);
                    Ok(Write::Done)
                }
            }
        }
    }

    fn alloc(id: &str) -> IpAllocation {
        IpAllocation {
            id: id.into(),
            podref: format!("default/{id}"),
            ifname: "net1".into(),
        }
    }

    fn conf(range: &str) -> IpamConf {
        IpamConf::parse(&serde_json::json!({"type": "whereabouts", "range": range})).unwrap()
    }

    pub(in crate::ipam) fn owner(id: &str) -> Owner {
        Owner {
            container_id: id.into(),
            ifname: "net1".into(),
            podref: format!("default/{id}"),
        }
    }

    async fn alloc_as(
        store: &FakeStore,
        c: &IpamConf,
        o: &Owner,
        choice: Choice<'_, LowestFree>,
    ) -> Result<Lease, Error> {
        allocate(store, c, &c.pools().unwrap()[0], "kube-system", o, choice).await
    }

    async fn add(store: &FakeStore, c: &IpamConf, id: &str) -> Result<Lease, Error> {
        alloc_as(store, c, &owner(id), Choice::Proposed(&LowestFree)).await
    }

    /// The node's turn at a pool is for writers of the pool: the reservation after the record
    /// is written without it, so the node's next writer does not wait for that request.
    #[tokio::test]
    async fn the_turn_is_given_up_once_the_address_is_recorded() {
        let store = FakeStore {
            turns: Some(tempfile::tempdir().unwrap()),
            ..Default::default()
        };
        let c = conf("10.0.0.0/24");
        assert!(c.overlapping, "reservations are on by default");
        add(&store, &c, "a").await.unwrap();
        add(&store, &c, "b").await.unwrap();
        assert_eq!(store.orips.lock().unwrap().len(), 2);
        assert_eq!(store.reserved_in_turn.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn lost_races_move_on_to_the_next_address_without_reading_again() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        add(&store, &c, "first").await.unwrap();
        let gets = store.gets.load(Ordering::SeqCst);
        store.steal.store(3, Ordering::SeqCst);
        let lease = add(&store, &c, "a").await.unwrap();
        // Three other writers took the addresses we tried: we got another one, nobody got one
        // twice, the pool was read once, and the losers' reservations were given back. (After
        // each loss the next try fans out over a wider window: PoolView::spread.)
        let entries = store.entries("10.0.0.0-24");
        assert_eq!(entries.len(), 5, "first, three stolen, ours: {entries:?}");
        let ours: Vec<_> = entries.iter().filter(|(_, a)| a.id == "a").collect();
        assert_eq!(ours.len(), 1);
        let o: u64 = ours[0].0.parse().unwrap();
        assert_eq!(lease.address.to_string(), format!("10.0.0.{o}/24"));
        // Any free offset the windows reach (a window may skip one a later loser takes).
        assert!(
            (2..=2 + 1 + 2 + 4 + 8).contains(&o),
            "outside the widened windows: {o}"
        );
        assert_eq!(store.gets.load(Ordering::SeqCst) - gets, 1);
        for (k, a) in &entries {
            if a.id != "a" && a.id != "first" {
                assert_eq!(
                    store.orip(&format!("10.0.0.{k}")),
                    None,
                    "a loser's reservation"
                );
            }
        }
        assert_eq!(store.orip(&format!("10.0.0.{o}")).unwrap().containerid, "a");
    }

    #[tokio::test]
    async fn the_retry_budget_ends_in_a_retryable_conflict() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/16");
        add(&store, &c, "first").await.unwrap();
        store.steal.store(MAX_ATTEMPTS, Ordering::SeqCst);
        let e = add(&store, &c, "a").await.unwrap_err();
        assert!(
            matches!(e, Error::Conflict { attempts, .. } if attempts == MAX_ATTEMPTS),
            "{e}"
        );
        assert!(
            store.entries("10.0.0.0-16").values().all(|a| a.id != "a"),
            "nothing recorded for the loser"
        );
        assert!(
            store
                .orips
                .lock()
                .unwrap()
                .values()
                .all(|r| r.spec.containerid != "a"),
            "and nothing reserved"
        );
        // Re-read once per REREAD_AFTER losses, not once per loss.
        let gets = store.gets.load(Ordering::SeqCst);
        assert!(gets <= 2 + MAX_ATTEMPTS / REREAD_AFTER, "{gets} reads");
    }

    #[tokio::test]
    async fn a_full_range_is_exhausted_and_nothing_is_written() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/30");
        add(&store, &c, "a").await.unwrap();
        add(&store, &c, "b").await.unwrap();
        let inserts = store.inserts.load(Ordering::SeqCst);
        let e = add(&store, &c, "c").await.unwrap_err();
        assert!(matches!(e, Error::Exhausted { .. }), "{e}");
        assert_eq!(store.inserts.load(Ordering::SeqCst), inserts);
    }

    #[tokio::test]
    async fn a_retry_after_a_lost_response_gets_the_same_address_once() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        store.lost.store(1, Ordering::SeqCst);
        let e = add(&store, &c, "a").await.unwrap_err();
        assert!(
            matches!(e, Error::Store(k8s::Error::Unreachable { .. })),
            "{e}"
        );
        // The runtime retries the ADD: the write had landed, so the same address comes back
        // and no second entry is made.
        let lease = add(&store, &c, "a").await.unwrap();
        assert_eq!(lease.address.to_string(), "10.0.0.1/24");
        assert_eq!(store.entries("10.0.0.0-24").len(), 1);
        // The next pod does not get it.
        assert_eq!(
            add(&store, &c, "b").await.unwrap().address.to_string(),
            "10.0.0.2/24"
        );
    }

    #[tokio::test]
    async fn overlapping_ranges_never_give_an_address_twice_unless_disabled() {
        let store = FakeStore::default();
        let wide = conf("10.0.0.0/22");
        let narrow = conf("10.0.1.0/24");
        // .1.0 is offset 256 of the /22; the narrow range's lowest free is .1.1.
        let a = alloc_as(
            &store,
            &wide,
            &owner("a"),
            Choice::Requested("10.0.1.1".parse().unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(a.address.to_string(), "10.0.1.1/22");
        let b = add(&store, &narrow, "b").await.unwrap();
        assert!(
            ["10.0.1.2/24", "10.0.1.3/24"].contains(&b.address.to_string().as_str()),
            "the /22's reservation is honoured (then one of the next two): {}",
            b.address
        );
        let e = alloc_as(
            &store,
            &narrow,
            &owner("c"),
            Choice::Requested("10.0.1.1".parse().unwrap()),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("reserved for default/a"), "{e}");
        // With enable_overlapping_ranges: false each pool stands alone, as in whereabouts:
        // the narrow pool gives .1.1 although the /22 holds it.
        let mut apart = narrow.clone();
        apart.overlapping = false;
        let d = add(&store, &apart, "d").await.unwrap();
        assert_eq!(d.address.to_string(), "10.0.1.1/24");
    }

    #[tokio::test]
    async fn a_whereabouts_reservation_is_honoured_and_left_alone() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        store.reserved_by_other("10.0.0.1", "other/wb-pod");
        let a = add(&store, &c, "a").await.unwrap();
        let ip = a.address.ip().to_string();
        assert!(["10.0.0.2", "10.0.0.3"].contains(&ip.as_str()), "{ip}");
        release(&store, "kube-system", None, &owner("a"))
            .await
            .unwrap();
        assert_eq!(store.orip(&ip), None, "ours released");
        assert_eq!(store.orip("10.0.0.1").unwrap().podref, "other/wb-pod");
    }

    #[tokio::test]
    async fn a_reservation_left_by_an_earlier_attempt_is_reused() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        // A reservation of this pod with no entry (a DEL that died between its two writes).
        store.reserved_by_other("10.0.0.1", "default/a");
        let a = add(&store, &c, "a").await.unwrap();
        assert_eq!(a.address.to_string(), "10.0.0.1/24");
        assert_eq!(store.entries("10.0.0.0-24")["1"].id, "a");
    }

    /// A plugin killed between its two writes: the pool records `id` at `offset`, no
    /// reservation was made.
    async fn killed_after_recording(
        store: &FakeStore,
        pool: &str,
        range: &str,
        offset: u64,
        id: &str,
    ) {
        store.create("kube-system", pool, range).await.unwrap();
        let w = store
            .insert("kube-system", pool, offset, &alloc(id), None)
            .await
            .unwrap();
        assert_eq!(w, Write::Done);
    }

    #[tokio::test]
    async fn an_add_killed_between_its_writes_leaves_only_what_its_del_frees() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        killed_after_recording(&store, "10.0.0.0-24", "10.0.0.0/24", 1, "a").await;
        // The runtime's DEL names the container: the entry goes, and nothing else was made.
        release(&store, "kube-system", None, &owner("a"))
            .await
            .unwrap();
        assert!(store.entries("10.0.0.0-24").is_empty());
        assert!(store.orips.lock().unwrap().is_empty());
        // Or the ADD is retried first: the recorded address comes back, now reserved too.
        killed_after_recording(&store, "10.0.0.0-24", "10.0.0.0/24", 1, "a").await;
        let a = add(&store, &c, "a").await.unwrap();
        assert_eq!(a.address.to_string(), "10.0.0.1/24");
        assert_eq!(store.orip("10.0.0.1").unwrap().containerid, "a");
    }

    #[tokio::test]
    async fn an_unreserved_entry_whose_address_another_range_took_is_given_back() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        killed_after_recording(&store, "10.0.0.0-24", "10.0.0.0/24", 1, "a").await;
        // Meanwhile an overlapping range (or a whereabouts node) reserved 10.0.0.1.
        store.reserved_by_other("10.0.0.1", "other/wb-pod");
        let a = add(&store, &c, "a").await.unwrap();
        let ip = a.address.ip().to_string();
        assert_ne!(
            ip, "10.0.0.1",
            "never handed out while another range holds it"
        );
        let entries = store.entries("10.0.0.0-24");
        assert_eq!(
            entries.len(),
            1,
            "the stale entry was given back: {entries:?}"
        );
        assert_eq!(store.orip(&ip).unwrap().containerid, "a");
        assert_eq!(store.orip("10.0.0.1").unwrap().podref, "other/wb-pod");
    }

    #[tokio::test]
    async fn a_pod_back_with_a_new_sandbox_keeps_its_address() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        add(&store, &c, "x").await.unwrap();
        let old = Owner {
            container_id: "sandbox-1".into(),
            ifname: "net1".into(),
            podref: "default/web-0".into(),
        };
        let first = alloc_as(&store, &c, &old, Choice::Proposed(&LowestFree))
            .await
            .unwrap();
        let new = Owner {
            container_id: "sandbox-2".into(),
            ..old.clone()
        };
        let again = alloc_as(&store, &c, &new, Choice::Proposed(&LowestFree))
            .await
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(store.entries("10.0.0.0-24")["2"].id, "sandbox-2");
        // The old sandbox's late DEL frees nothing; the new one's frees the address.
        release(&store, "kube-system", None, &old).await.unwrap();
        assert_eq!(store.entries("10.0.0.0-24").len(), 2);
        release(&store, "kube-system", None, &new).await.unwrap();
        assert_eq!(store.entries("10.0.0.0-24").len(), 1);
        assert_eq!(store.orip("10.0.0.2"), None);
        // Another interface of the same pod is another allocation.
        let other_if = Owner {
            ifname: "net2".into(),
            ..new.clone()
        };
        let n2 = alloc_as(&store, &c, &other_if, Choice::Proposed(&LowestFree))
            .await
            .unwrap();
        assert_eq!(n2.address.to_string(), "10.0.0.2/24");
    }

    /// A proposer that names a fixed offset, right or wrong.
    struct Fixed(u64);
    impl Proposer for Fixed {
        type Error = std::convert::Infallible;
        fn describe(&self) -> String {
            format!("fixed {}", self.0)
        }
        async fn propose(
            &self,
            view: PoolView,
        ) -> Result<(Proposal, PoolView), std::convert::Infallible> {
            Ok((Proposal::Offset(self.0), view))
        }
    }

    async fn fixed(store: &FakeStore, c: &IpamConf, id: &str, o: u64) -> Result<Lease, Error> {
        allocate(
            store,
            c,
            &c.pools().unwrap()[0],
            "ns",
            &owner(id),
            Choice::Proposed(&Fixed(o)),
        )
        .await
    }

    #[tokio::test]
    async fn a_proposal_that_is_not_free_is_refused_naming_the_proposer() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        add(&store, &c, "a").await.unwrap();
        for (offset, why) in [
            (1, "already allocated to default/a"),
            (0, "reserved or excluded"),
            (300, "outside 10.0.0.0/24"),
        ] {
            let e = fixed(&store, &c, "b", offset).await.unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(&e, Error::InvalidProposal { by, .. } if by == &format!("fixed {offset}"))
                    && text.contains(why),
                "{text}"
            );
        }
        assert_eq!(store.entries("10.0.0.0-24").len(), 1);
    }

    #[tokio::test]
    async fn a_requested_address_is_given_or_refused_naming_its_holder() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        let want: IpAddr = "10.0.0.9".parse().unwrap();
        let l = alloc_as(&store, &c, &owner("a"), Choice::Requested(want))
            .await
            .unwrap();
        assert_eq!(l.address.ip(), want);
        let e = alloc_as(&store, &c, &owner("b"), Choice::Requested(want))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("10.0.0.9"), "{e}");
        assert!(format!("{e:?}").contains("default/a"), "{e:?}");
    }

    #[tokio::test]
    async fn the_gateway_is_never_committed_whoever_proposes_it() {
        let store = FakeStore::default();
        let c = IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": "10.0.0.0/24", "gateway": "10.0.0.1"}))
        .unwrap();
        // lowest-free skips it,
        assert_eq!(
            add(&store, &c, "a").await.unwrap().address.to_string(),
            "10.0.0.2/24"
        );
        // a policy proposing it is refused,
        let e = fixed(&store, &c, "b", 1).await.unwrap_err();
        assert!(
            matches!(&e, Error::InvalidProposal { why, .. } if why.contains("10.0.0.1")),
            "{e}"
        );
        // and so is a pod asking for it.
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        let e = alloc_as(&store, &c, &owner("c"), Choice::Requested(gw))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");
        assert!(store.entries("10.0.0.0-24").keys().all(|k| k != "1"));
    }

    #[tokio::test]
    async fn release_is_idempotent_and_frees_the_reservation() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        add(&store, &c, "a").await.unwrap();
        add(&store, &c, "b").await.unwrap();
        assert!(store.orip("10.0.0.1").is_some());
        release(&store, "ns", None, &owner("a")).await.unwrap();
        let left = store.entries("10.0.0.0-24");
        assert!(left.values().all(|a| a.id != "a"), "{left:?}");
        assert!(left.values().any(|a| a.id == "b"));
        assert_eq!(store.orip("10.0.0.1"), None);
        assert!(store.orip("10.0.0.2").is_some());
        // Again, and on a pool that does not exist: both success.
        release(&store, "ns", None, &owner("a")).await.unwrap();
        release(&store, "ns", Some(&["nope".into()]), &owner("a"))
            .await
            .unwrap();
        // The freed address is the next one given.
        assert_eq!(
            add(&store, &c, "c").await.unwrap().address.to_string(),
            "10.0.0.1/24"
        );
    }

    #[tokio::test]
    async fn a_named_network_prefixes_pool_and_reservation_and_release_finds_both() {
        let store = FakeStore::default();
        let c = IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": "fd00::/120", "network_name": "blue"}))
        .unwrap();
        let a = add(&store, &c, "a").await.unwrap();
        assert_eq!(a.pool, "blue-fd00---120");
        assert!(store.orip("blue-fd00--1").is_some());
        release(&store, "ns", None, &owner("a")).await.unwrap();
        assert_eq!(store.orip("blue-fd00--1"), None);
    }
}
