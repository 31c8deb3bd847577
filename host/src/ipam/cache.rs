//! A node's own blocks as its last writes left them, kept for the life of the process (a node
//! daemon serves many ADDs on one), so that an ADD need not list them again.
//!
//! Why: a node's writers take turns at its blocks ([`super::turn`]), and each listed them
//! first as any recent state (`resourceVersion=0`, the API server's watch cache). The writer
//! after a turn then often read a state without the entry recorded just before it, chose that
//! offset again and lost: measured in tests/bench/ipam.sh through node daemons, 266 lost
//! `test`s in 1000 ADDs, each a wasted request. The process that made the write knows it: the
//! cache applies each of its successful writes to the blocks it read.
//!
//! Correctness never depends on the cache: every write stays conditional on exactly the key it
//! changes, so a stale view costs a lost write, never an address given twice. What can be
//! stale is only what *other* processes wrote to this node's blocks (an ADD its shim ran
//! in-process, a DEL of a borrowed address, the reconciler): a view is used for
//! [`MAX_AGE`] at most, and dropped on any write that did not apply as expected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::PoolStore;
use super::turn::Turn;
use crate::k8s::{
    self, IPPool, IpAllocation, OverlappingRangeIPReservation, OverlappingRangeIPReservationSpec,
    Write,
};

/// How long a node's blocks are used as last read and written here before they are read again.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// (namespace, range's pool, node).
type Key = (String, String, String);

/// The blocks of the nodes this process allocates for, as its last writes left them.
#[derive(Default)]
pub struct Blocks {
    views: Mutex<HashMap<Key, View>>,
    /// Kept across calls (a daemon's): its next call sees what the last one wrote.
    across_calls: bool,
}

struct View {
    read: Instant,
    blocks: Vec<IPPool>,
}

impl Blocks {
    /// Blocks kept for many calls (a node daemon's) or for one (exec mode: the process ends
    /// with its call, and the next writer is another process that cannot see them).
    pub fn new(across_calls: bool) -> Self {
        Blocks {
            across_calls,
            ..Default::default()
        }
    }

    fn fresh(&self, key: &Key) -> Option<Vec<IPPool>> {
        let views = self.views.lock().ok()?;
        let v = views.get(key)?;
        (v.read.elapsed() < MAX_AGE).then(|| v.blocks.clone())
    }

    fn put(&self, key: Key, blocks: Vec<IPPool>) {
        if let Ok(mut views) = self.views.lock() {
            views.insert(
                key,
                View {
                    read: Instant::now(),
                    blocks,
                },
            );
        }
    }

    /// Apply `change` to block `name` of `namespace` wherever it is kept.
    fn apply(&self, namespace: &str, name: &str, change: impl Fn(&mut IPPool)) {
        if let Ok(mut views) = self.views.lock() {
            for ((ns, _, _), v) in views.iter_mut() {
                if ns != namespace {
                    continue;
                }
                for p in v.blocks.iter_mut() {
                    if p.metadata.name.as_deref() == Some(name) {
                        change(p);
                    }
                }
            }
        }
    }

    /// Forget every view that holds block `name` of `namespace`: its content is not known.
    fn drop_holding(&self, namespace: &str, name: &str) {
        if let Ok(mut views) = self.views.lock() {
            views.retain(|(ns, _, _), v| {
                ns != namespace
                    || !v
                        .blocks
                        .iter()
                        .any(|p| p.metadata.name.as_deref() == Some(name))
            });
        }
    }

    fn drop_key(&self, key: &Key) {
        if let Ok(mut views) = self.views.lock() {
            views.remove(key);
        }
    }

    /// After a write of block `name` answered `w`: applied, `change` it in the views; not as
    /// expected (or failed: `None`), forget the views that hold it.
    ///
    /// An applied write also forgets the block's resourceVersion: the server's is a new one.
    /// (A view of an emptied block that kept the old one made the next ADD write the whole map
    /// on that version, lose, back off and read again: measured, +10 ms per sequential ADD
    /// after a DEL.)
    fn after(&self, namespace: &str, name: &str, w: Option<Write>, change: impl Fn(&mut IPPool)) {
        match w {
            Some(Write::Done) => self.apply(namespace, name, |p| {
                change(p);
                p.metadata.resource_version = None;
            }),
            _ => self.drop_holding(namespace, name),
        }
    }
}

/// `store` with `blocks` in front of its reads of a node's blocks.
pub struct Cached<'a, S> {
    store: &'a S,
    blocks: &'a Blocks,
}

impl<'a, S: PoolStore> Cached<'a, S> {
    /// `store`, its node's blocks kept in `blocks`.
    pub fn new(store: &'a S, blocks: &'a Blocks) -> Self {
        Cached { store, blocks }
    }
}

impl<S: PoolStore> PoolStore for Cached<'_, S> {
    /// The next call of this process reads through the same view (a daemon's).
    fn sees_own_writes(&self) -> bool {
        self.blocks.across_calls || self.store.sees_own_writes()
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<Option<IPPool>, k8s::Error> {
        let got = self.store.get(namespace, name).await?;
        match &got {
            Some(p) => {
                let p = p.clone();
                self.blocks.apply(namespace, name, move |c| *c = p.clone());
            }
            None => self.blocks.drop_holding(namespace, name),
        }
        Ok(got)
    }

    async fn create(&self, namespace: &str, name: &str, range: &str) -> Result<(), k8s::Error> {
        self.store.create(namespace, name, range).await
    }

    async fn insert(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        entry: &IpAllocation,
        rv_if_empty: Option<&str>,
    ) -> Result<Write, k8s::Error> {
        let w = self
            .store
            .insert(namespace, name, offset, entry, rv_if_empty)
            .await;
        self.blocks
            .after(namespace, name, w.as_ref().ok().copied(), |p| {
                p.spec.allocations.insert(offset.to_string(), entry.clone());
            });
        w
    }

    async fn remove(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        id: &str,
    ) -> Result<Write, k8s::Error> {
        let w = self.store.remove(namespace, name, offset, id).await;
        self.blocks
            .after(namespace, name, w.as_ref().ok().copied(), |p| {
                p.spec.allocations.remove(&offset.to_string());
            });
        w
    }

    async fn rehome(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        from: &str,
        to: &str,
    ) -> Result<Write, k8s::Error> {
        let w = self.store.rehome(namespace, name, offset, from, to).await;
        self.blocks
            .after(namespace, name, w.as_ref().ok().copied(), |p| {
                if let Some(a) = p.spec.allocations.get_mut(&offset.to_string()) {
                    a.id = to.to_string();
                }
            });
        w
    }

    async fn list(&self, namespace: &str) -> Result<Vec<IPPool>, k8s::Error> {
        self.store.list(namespace).await
    }

    /// A node's blocks (`node` set) come from the view when it is younger than [`MAX_AGE`]
    /// and `fresh` is not asked; any read of them is kept as the view.
    async fn blocks(
        &self,
        namespace: &str,
        pool: &str,
        node: Option<&str>,
        fresh: bool,
    ) -> Result<Vec<IPPool>, k8s::Error> {
        let Some(node) = node else {
            return self.store.blocks(namespace, pool, None, fresh).await;
        };
        let key = (namespace.to_string(), pool.to_string(), node.to_string());
        if !fresh && let Some(v) = self.blocks.fresh(&key) {
            return Ok(v);
        }
        let read = self
            .store
            .blocks(namespace, pool, Some(node), fresh)
            .await?;
        self.blocks.put(key, read.clone());
        Ok(read)
    }

    async fn block_names(
        &self,
        namespace: &str,
        pool: &str,
        fresh: bool,
    ) -> Result<Vec<String>, k8s::Error> {
        self.store.block_names(namespace, pool, fresh).await
    }

    /// A block claimed (or found claimed): the node's list changed, and is read again.
    async fn create_block(
        &self,
        namespace: &str,
        name: &str,
        range: &str,
        pool: &str,
        node: &str,
    ) -> Result<Write, k8s::Error> {
        let w = self
            .store
            .create_block(namespace, name, range, pool, node)
            .await;
        self.blocks
            .drop_key(&(namespace.to_string(), pool.to_string(), node.to_string()));
        w
    }

    async fn reservation(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<OverlappingRangeIPReservation>, k8s::Error> {
        self.store.reservation(namespace, name).await
    }

    async fn reserve(
        &self,
        namespace: &str,
        name: &str,
        spec: &OverlappingRangeIPReservationSpec,
    ) -> Result<Write, k8s::Error> {
        self.store.reserve(namespace, name, spec).await
    }

    async fn unreserve(&self, namespace: &str, name: &str, uid: &str) -> Result<Write, k8s::Error> {
        self.store.unreserve(namespace, name, uid).await
    }

    async fn turn(&self, namespace: &str, name: &str) -> Option<Turn> {
        self.store.turn(namespace, name).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::ipam::commit::tests::{FakeStore, owner};
    use crate::ipam::{Choice, IpamConf, Lease, LowestFree, blocks};

    fn conf() -> IpamConf {
        IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": "10.0.0.0/24", "block_size": 28
        }))
        .unwrap()
    }

    async fn add<S: PoolStore>(store: &S, id: &str) -> Lease {
        let c = conf();
        let p = c.pools().unwrap().remove(0);
        let b = p.block.unwrap();
        let choice = Choice::Proposed(&LowestFree);
        blocks::allocate(
            store,
            &c,
            &p,
            b,
            "kube-system",
            &owner(id),
            "node-a",
            choice,
        )
        .await
        .unwrap()
    }

    /// A node's ADDs read its blocks once (and again after claiming one), and each sees the
    /// addresses the ones before it recorded.
    #[tokio::test]
    async fn a_node_reads_its_blocks_once_and_sees_its_own_writes() {
        let store = FakeStore::default();
        let blocks = Blocks::default();
        let cached = Cached::new(&store, &blocks);
        let mut got = Vec::new();
        for i in 0..10 {
            got.push(add(&cached, &format!("c{i}")).await.address.to_string());
        }
        let mut distinct = got.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10, "{got:?}");
        // The first ADD lists (nothing), claims a block and lists again; the rest list nothing.
        assert_eq!(store.node_lists.load(Ordering::SeqCst), 2);
        // The same ADDs without the cache list every time.
        let plain = FakeStore::default();
        for i in 0..10 {
            add(&plain, &format!("c{i}")).await;
        }
        assert!(plain.node_lists.load(Ordering::SeqCst) >= 10);
    }

    /// A DEL that empties a block and the ADD after it: the ADD's write applies the first
    /// time (the view does not keep the version the DEL's write replaced).
    #[tokio::test]
    async fn an_add_after_a_del_that_emptied_the_block_writes_once() {
        let store = FakeStore::default();
        let blocks = Blocks::default();
        let cached = Cached::new(&store, &blocks);
        let a = add(&cached, "a").await;
        let c = conf();
        let p = c.pools().unwrap().remove(0);
        let b = p.block.unwrap();
        blocks::release(&cached, "kube-system", &p, b, &owner("a"), "node-a", &[])
            .await
            .unwrap();
        assert!(store.entries(&a.pool).is_empty());
        let inserts = store.inserts.load(Ordering::SeqCst);
        add(&cached, "b").await;
        assert_eq!(
            store.inserts.load(Ordering::SeqCst),
            inserts + 1,
            "one write, no lost one"
        );
    }

    /// What another process recorded meanwhile costs a lost write, then a read: never an
    /// address given twice.
    #[tokio::test]
    async fn a_write_from_elsewhere_costs_a_lost_race_not_a_duplicate() {
        let store = FakeStore::default();
        let blocks = Blocks::default();
        let cached = Cached::new(&store, &blocks);
        let a = add(&cached, "a").await;
        let b = add(&cached, "b").await;
        let lists = store.node_lists.load(Ordering::SeqCst);
        // The next lowest free offset of the block (a /24: the last octet), taken by another
        // process.
        let std::net::IpAddr::V4(ip) = b.address.ip() else {
            unreachable!()
        };
        let next = u64::from(ip.octets()[3]) + 1;
        let block = a.pool.clone();
        let other = owner("elsewhere");
        store.record_elsewhere(
            &block,
            next,
            k8s::IpAllocation {
                id: other.container_id.clone(),
                podref: other.podref.clone(),
                ifname: other.ifname.clone(),
            },
        );
        let c = add(&cached, "c").await;
        assert_eq!(c.pool, block, "the same block");
        assert_ne!(
            c.address.to_string(),
            format!("10.0.0.{next}/24"),
            "not the other process's address"
        );
        let entries = store.entries(&block);
        assert_eq!(entries.len(), 4, "{entries:?}");
        assert_eq!(entries[&next.to_string()].id, "elsewhere");
        // The lost write dropped the view: the next ADD reads the blocks again.
        add(&cached, "d").await;
        assert!(store.node_lists.load(Ordering::SeqCst) > lists);
    }
}
