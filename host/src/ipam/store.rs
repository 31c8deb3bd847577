//! Where pools and address reservations are kept. The commit logic works over this interface,
//! so it is tested against a fake ([`tests`](super::commit)) and served by the API server in
//! production.
//!
//! Every write is conditional on exactly what it changes — one allocation key of an IPPool,
//! or one OverlappingRangeIPReservation object — not on the whole pool's resourceVersion, so
//! writers of different addresses do not conflict however many share a pool.

use std::future::Future;

use crate::k8s::{
    self, IPPool, IpAllocation, OverlappingRangeIPReservation, OverlappingRangeIPReservationSpec,
    Write,
};

/// A store of IPPools and OverlappingRangeIPReservations.
///
/// Contract: each write is applied atomically or not at all, and answers
/// [`Write::Changed`] when its condition did not hold. A failed call (`Err`) may or may not
/// have been applied — a lost response — so callers must be idempotent by owner.
pub trait PoolStore: Sync {
    /// The pool `namespace/name`, or `None` when it does not exist.
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<IPPool>, k8s::Error>> + Send;

    /// Create an empty pool for `range`; success when it already exists.
    fn create(
        &self,
        namespace: &str,
        name: &str,
        range: &str,
    ) -> impl Future<Output = Result<(), k8s::Error>> + Send;

    /// Record `entry` at `offset` if no allocation is there ([`Write::Changed`] otherwise).
    /// `rv_if_empty`: the resourceVersion of the pool as read with no allocations at all; the
    /// write is then conditional on that version instead.
    fn insert(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        entry: &IpAllocation,
        rv_if_empty: Option<&str>,
    ) -> impl Future<Output = Result<Write, k8s::Error>> + Send;

    /// Remove the allocation at `offset` if it still names container `id`.
    fn remove(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        id: &str,
    ) -> impl Future<Output = Result<Write, k8s::Error>> + Send;

    /// Hand the allocation at `offset` from container `from` to container `to`.
    fn rehome(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<Write, k8s::Error>> + Send;

    /// Every pool in `namespace`.
    fn list(&self, namespace: &str)
    -> impl Future<Output = Result<Vec<IPPool>, k8s::Error>> + Send;

    /// The blocks (IPPools, [`super::blocks`]) of the range whose pool is `pool`: those
    /// claimed by `node`, or all of them when `None`. `fresh`: as of now (slower); otherwise
    /// possibly a moment old, which is enough where every write that follows is conditional.
    fn blocks(
        &self,
        namespace: &str,
        pool: &str,
        node: Option<&str>,
        fresh: bool,
    ) -> impl Future<Output = Result<Vec<IPPool>, k8s::Error>> + Send;

    /// The names of every block of `pool`'s range (no contents); `fresh` as for
    /// [`PoolStore::blocks`].
    fn block_names(
        &self,
        namespace: &str,
        pool: &str,
        fresh: bool,
    ) -> impl Future<Output = Result<Vec<String>, k8s::Error>> + Send;

    /// Create the empty block `name` of `pool`'s range (`range`: the range's CIDR, which its
    /// offsets count from) claimed by `node`: [`Write::Changed`] when it exists.
    fn create_block(
        &self,
        namespace: &str,
        name: &str,
        range: &str,
        pool: &str,
        node: &str,
    ) -> impl Future<Output = Result<Write, k8s::Error>> + Send;

    /// The reservation `namespace/name`, if any.
    fn reservation(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<OverlappingRangeIPReservation>, k8s::Error>> + Send;

    /// Create the reservation `name` ([`Write::Changed`] when it exists).
    fn reserve(
        &self,
        namespace: &str,
        name: &str,
        spec: &OverlappingRangeIPReservationSpec,
    ) -> impl Future<Output = Result<Write, k8s::Error>> + Send;

    /// Delete the reservation `name` if it is still the object `uid`.
    fn unreserve(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> impl Future<Output = Result<Write, k8s::Error>> + Send;

    /// Whether a read through this store right after a write through it sees that write. The
    /// API server's watch cache, read as any recent state, may not yet; a view this process
    /// keeps of its own writes ([`super::Cached`] in a daemon) does. A writer that sees its own
    /// writes gives up its turn at a pool as soon as its address is recorded; one that does not
    /// keeps it through the reservation, which gives the watch cache the time to catch up
    /// (measured through node daemons without the view, the turn given up early: 266 of 1000
    /// ADDs lost a write to the record before theirs; tests/bench/ipam.sh prints the count).
    fn sees_own_writes(&self) -> bool {
        false
    }

    /// This node's turn at pool `namespace/name`, held until dropped ([`super::turn`]); `None`
    /// where writers need none. Only throughput depends on it, never correctness.
    fn turn(
        &self,
        _namespace: &str,
        _name: &str,
    ) -> impl Future<Output = Option<super::turn::Turn>> + Send {
        std::future::ready(None)
    }
}

impl PoolStore for k8s::Client {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<IPPool>, k8s::Error> {
        self.ip_pool(namespace, name).await
    }
    async fn create(&self, namespace: &str, name: &str, range: &str) -> Result<(), k8s::Error> {
        self.create_ip_pool(namespace, name, range).await
    }
    async fn insert(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        entry: &IpAllocation,
        rv_if_empty: Option<&str>,
    ) -> Result<Write, k8s::Error> {
        self.insert_allocation(namespace, name, offset, entry, rv_if_empty)
            .await
    }
    async fn remove(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        id: &str,
    ) -> Result<Write, k8s::Error> {
        self.remove_allocation(namespace, name, offset, id).await
    }
    async fn rehome(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        from: &str,
        to: &str,
    ) -> Result<Write, k8s::Error> {
        self.move_allocation(namespace, name, offset, from, to)
            .await
    }
    async fn list(&self, namespace: &str) -> Result<Vec<IPPool>, k8s::Error> {
        self.ip_pools(namespace).await
    }
    async fn blocks(
        &self,
        namespace: &str,
        pool: &str,
        node: Option<&str>,
        fresh: bool,
    ) -> Result<Vec<IPPool>, k8s::Error> {
        let mut selector = format!("{POOL_LABEL}={}", label_value(pool));
        if let Some(n) = node {
            selector += &format!(",{NODE_LABEL}={}", label_value(n));
        }
        self.ip_pools_labelled(namespace, &selector, fresh).await
    }
    async fn block_names(
        &self,
        namespace: &str,
        pool: &str,
        fresh: bool,
    ) -> Result<Vec<String>, k8s::Error> {
        let selector = format!("{POOL_LABEL}={}", label_value(pool));
        self.ip_pool_names(namespace, &selector, fresh).await
    }
    async fn create_block(
        &self,
        namespace: &str,
        name: &str,
        range: &str,
        pool: &str,
        node: &str,
    ) -> Result<Write, k8s::Error> {
        let labels = [(POOL_LABEL, pool), (NODE_LABEL, node)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), label_value(v)))
            .collect();
        self.create_ip_pool_labelled(namespace, name, range, labels)
            .await
    }
    async fn reservation(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<OverlappingRangeIPReservation>, k8s::Error> {
        k8s::Client::reservation(self, namespace, name).await
    }
    async fn reserve(
        &self,
        namespace: &str,
        name: &str,
        spec: &OverlappingRangeIPReservationSpec,
    ) -> Result<Write, k8s::Error> {
        k8s::Client::reserve(self, namespace, name, spec).await
    }
    async fn unreserve(&self, namespace: &str, name: &str, uid: &str) -> Result<Write, k8s::Error> {
        k8s::Client::unreserve(self, namespace, name, uid).await
    }
    async fn turn(&self, namespace: &str, name: &str) -> Option<super::turn::Turn> {
        super::turn::take(namespace, name).await
    }
}

/// The label on a block's IPPool naming its range's pool (`kubectl get ippools -l
/// wasmcni.io/pool=10.0.0.0-16`).
pub const POOL_LABEL: &str = "wasmcni.io/pool";

/// The label on a block's IPPool naming the node that claimed it.
pub const NODE_LABEL: &str = "wasmcni.io/node";

/// `s` as a label value: itself when it is one (at most 63 of `[A-Za-z0-9._-]`, alphanumeric
/// at both ends), else `h.` and 16 hex digits of its sha256 (a long node or network name).
pub fn label_value(s: &str) -> String {
    let ok = s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        return s.to_string();
    }
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("h.{hex}")
}

#[cfg(test)]
mod tests {
    use super::label_value;

    #[test]
    fn label_values_are_kept_when_valid_and_hashed_when_not() {
        assert_eq!(label_value("node-1"), "node-1");
        assert_eq!(label_value("blue-10.0.0.0-16"), "blue-10.0.0.0-16");
        let long = "n".repeat(64);
        let h = label_value(&long);
        assert!(h.starts_with("h.") && h.len() == 18, "{h}");
        assert_eq!(h, label_value(&long), "stable");
        assert_ne!(label_value("-x"), "-x");
    }
}
