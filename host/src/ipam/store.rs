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
