//! Committing an allocation: read the pool, choose, validate, write with compare-and-swap; on a
//! lost race, start over. Releases the same way. No cluster-wide lock.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::{Choice, Error, IpamConf, Lease, Owner, PoolStore, PoolView, Proposal, Proposer};
use crate::k8s::{Cas, IPPool, IPPoolSpec, IpAllocation};

/// How often an allocation is retried after losing a compare-and-swap race.
pub const MAX_ATTEMPTS: u32 = 20;

/// Decoded allocations of a pool; keys that are not offsets are kept aside untouched.
pub(super) fn offsets(spec: &IPPoolSpec) -> BTreeMap<u64, IpAllocation> {
    spec.allocations
        .iter()
        .filter_map(|(k, v)| k.parse::<u64>().ok().map(|o| (o, v.clone())))
        .collect()
}

/// Allocate an address for `owner` in `conf`'s range.
///
/// Guarantees: the address is recorded in the range's IPPool for `owner` before `Ok` is
/// returned, and was free (allocatable, not excluded, not held) in the version of the pool it
/// was written over. Idempotent by owner: if the pool already records an address for `owner`
/// (a retried ADD, or an earlier attempt whose response was lost) that address is returned and
/// nothing is written.
///
/// Errors: [`Error::Conflict`] after [`MAX_ATTEMPTS`] lost races (retryable);
/// [`Error::Exhausted`] when the proposer finds nothing; [`Error::Unavailable`] for a requested
/// address that is outside the range or taken; [`Error::InvalidProposal`] when the proposer
/// names an offset that is not free; [`Error::Proposer`] and [`Error::Store`] pass through.
pub async fn allocate<S: PoolStore, P: Proposer>(
    store: &S,
    conf: &IpamConf,
    namespace: &str,
    owner: &Owner,
    choice: Choice<'_, P>,
) -> Result<Lease, Error<P::Error>> {
    let range = conf.range().map_err(Error::widen)?;
    let name = conf.pool_name(&range);
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            backoff(attempt).await;
        }
        let mut pool = store
            .get(namespace, &name)
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
        if let Some((&o, _)) = taken.iter().find(|(_, a)| owner.holds(a)) {
            return Ok(Lease {
                address: range.address(o),
                pool: name,
            });
        }
        let view = PoolView::new(range.clone(), taken);
        let (offset, chooser) = match &choice {
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
                (o, "the pod requested".to_string())
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
                (offset, format!("{} proposed", p.describe()))
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
        match store.put(namespace, &pool).await.map_err(Error::Store)? {
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
pub async fn holder<S: PoolStore>(
    store: &S,
    conf: &IpamConf,
    namespace: &str,
    ip: IpAddr,
) -> Result<Option<IpAllocation>, Error> {
    let range = conf.range()?;
    let Some(offset) = range.offset_of(ip) else {
        return Ok(None);
    };
    let pool = store
        .get(namespace, &conf.pool_name(&range))
        .await
        .map_err(Error::Store)?;
    Ok(pool.and_then(|p| offsets(&p.spec).remove(&offset)))
}

/// Release `owner`'s addresses from the pools `pools` (all pools in `namespace` when `None`).
///
/// Guarantees: on `Ok`, no pool named records an allocation `owner` holds. Absent pools and
/// absent allocations are success: DEL is idempotent. Errors: [`Error::Conflict`] after
/// [`MAX_ATTEMPTS`] lost races, [`Error::Store`] (retryable when unreachable).
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
        let mut attempt = 0;
        loop {
            let Some(mut pool) = store.get(namespace, &name).await.map_err(Error::Store)? else {
                break;
            };
            let before = pool.spec.allocations.len();
            pool.spec.allocations.retain(|_, a| !owner.holds(a));
            if pool.spec.allocations.len() == before {
                break;
            }
            match store.put(namespace, &pool).await.map_err(Error::Store)? {
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

#[cfg(test)]
mod tests {
    //! The CAS loop over a fake store: conflicts, exhaustion, the retry budget, and an
    //! idempotent retry after a write whose response was lost.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::ipam::LowestFree;
    use crate::k8s;

    /// An in-memory pool store with the API server's resourceVersion semantics and faults to
    /// inject: the next `conflicts` writes lose a race to another writer (who takes the lowest
    /// free offset), and the next `lost` writes are applied but answer with a transport error.
    #[derive(Default)]
    struct FakeStore {
        pools: Mutex<BTreeMap<String, IPPool>>,
        version: AtomicU32,
        conflicts: AtomicU32,
        lost: AtomicU32,
        puts: AtomicU32,
    }

    impl FakeStore {
        fn entries(&self, name: &str) -> BTreeMap<String, IpAllocation> {
            self.pools.lock().unwrap()[name].spec.allocations.clone()
        }
        fn bump(&self, pool: &mut IPPool) {
            let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
            pool.metadata.resource_version = Some(v.to_string());
        }
    }

    fn lost() -> k8s::Error {
        k8s::Error::Unreachable {
            what: "writing IPPool".into(),
            source: kube::Error::Service("connection reset".into()),
        }
    }

    impl PoolStore for FakeStore {
        async fn get(&self, _: &str, name: &str) -> Result<Option<IPPool>, k8s::Error> {
            Ok(self.pools.lock().unwrap().get(name).cloned())
        }
        async fn put(&self, _: &str, pool: &IPPool) -> Result<Cas, k8s::Error> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            let name = pool.metadata.name.clone().unwrap();
            let mut pools = self.pools.lock().unwrap();
            let stored = pools
                .get(&name)
                .and_then(|p| p.metadata.resource_version.clone());
            if stored != pool.metadata.resource_version {
                return Ok(Cas::Conflict);
            }
            if self.conflicts.load(Ordering::SeqCst) > 0 {
                self.conflicts.fetch_sub(1, Ordering::SeqCst);
                // Another node won: it wrote the pool first, taking an address.
                let mut other = pools.get(&name).cloned().unwrap_or_else(|| {
                    let mut fresh = pool.clone();
                    fresh.spec.allocations.clear();
                    fresh
                });
                let taken: Vec<u64> = offsets(&other.spec).into_keys().collect();
                let o = (1..).find(|o| !taken.contains(o)).unwrap();
                other
                    .spec
                    .allocations
                    .insert(o.to_string(), alloc("other-node"));
                self.bump(&mut other);
                pools.insert(name, other);
                return Ok(Cas::Conflict);
            }
            let mut p = pool.clone();
            self.bump(&mut p);
            pools.insert(name, p);
            if self.lost.load(Ordering::SeqCst) > 0 {
                self.lost.fetch_sub(1, Ordering::SeqCst);
                return Err(lost());
            }
            Ok(Cas::Done)
        }
        async fn list(&self, _: &str) -> Result<Vec<IPPool>, k8s::Error> {
            Ok(self.pools.lock().unwrap().values().cloned().collect())
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

    fn owner(id: &str) -> Owner {
        Owner {
            container_id: id.into(),
            ifname: "net1".into(),
            podref: format!("default/{id}"),
        }
    }

    async fn add(store: &FakeStore, c: &IpamConf, id: &str) -> Result<Lease, Error> {
        allocate(
            store,
            c,
            "kube-system",
            &owner(id),
            Choice::Proposed(&LowestFree),
        )
        .await
    }

    #[tokio::test]
    async fn lost_races_are_retried_over_the_winners_state() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        store.conflicts.store(3, Ordering::SeqCst);
        let lease = add(&store, &c, "a").await.unwrap();
        // Three other writers took .1, .2, .3 while we retried: we got .4, and nobody twice.
        assert_eq!(lease.address.to_string(), "10.0.0.4/24");
        let entries = store.entries("10.0.0.0-24");
        assert_eq!(entries.len(), 4);
        assert_eq!(entries["4"].id, "a");
        assert_eq!(store.puts.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_retry_budget_ends_in_a_retryable_conflict() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        store.conflicts.store(MAX_ATTEMPTS, Ordering::SeqCst);
        let e = add(&store, &c, "a").await.unwrap_err();
        assert!(
            matches!(e, Error::Conflict { attempts, .. } if attempts == MAX_ATTEMPTS),
            "{e}"
        );
        assert_eq!(store.puts.load(Ordering::SeqCst), MAX_ATTEMPTS);
        assert!(
            store.entries("10.0.0.0-24").values().all(|a| a.id != "a"),
            "nothing recorded for the loser"
        );
    }

    #[tokio::test]
    async fn a_full_range_is_exhausted_and_nothing_is_written() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/30");
        add(&store, &c, "a").await.unwrap();
        add(&store, &c, "b").await.unwrap();
        let puts = store.puts.load(Ordering::SeqCst);
        let e = add(&store, &c, "c").await.unwrap_err();
        assert!(matches!(e, Error::Exhausted { .. }), "{e}");
        assert_eq!(store.puts.load(Ordering::SeqCst), puts);
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
        let entries = store.entries("10.0.0.0-24");
        assert_eq!(entries.len(), 1);
        // The next pod does not get it.
        assert_eq!(
            add(&store, &c, "b").await.unwrap().address.to_string(),
            "10.0.0.2/24"
        );
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
            let e = allocate(
                &store,
                &c,
                "ns",
                &owner("b"),
                Choice::Proposed(&Fixed(offset)),
            )
            .await
            .unwrap_err();
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
        let l = allocate(
            &store,
            &c,
            "ns",
            &owner("a"),
            Choice::<LowestFree>::Requested(want),
        )
        .await
        .unwrap();
        assert_eq!(l.address.ip(), want);
        let e = allocate(
            &store,
            &c,
            "ns",
            &owner("b"),
            Choice::<LowestFree>::Requested(want),
        )
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
        let e = allocate(&store, &c, "ns", &owner("b"), Choice::Proposed(&Fixed(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::InvalidProposal { why, .. } if why.contains("10.0.0.1")),
            "{e}"
        );
        // and so is a pod asking for it.
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        let e = allocate(
            &store,
            &c,
            "ns",
            &owner("c"),
            Choice::<LowestFree>::Requested(gw),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");
        assert!(store.entries("10.0.0.0-24").keys().all(|k| k != "1"));
    }

    #[tokio::test]
    async fn release_is_idempotent_and_retries_conflicts() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24");
        add(&store, &c, "a").await.unwrap();
        add(&store, &c, "b").await.unwrap();
        store.conflicts.store(2, Ordering::SeqCst);
        release(&store, "ns", None, &owner("a")).await.unwrap();
        let left = store.entries("10.0.0.0-24");
        assert!(left.values().all(|a| a.id != "a"), "{left:?}");
        assert!(left.values().any(|a| a.id == "b"));
        // Again, and on a pool that does not exist: both success.
        release(&store, "ns", None, &owner("a")).await.unwrap();
        release(&store, "ns", Some(&["nope".into()]), &owner("a"))
            .await
            .unwrap();
    }
}
