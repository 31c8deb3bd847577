//! Where pools are kept: read one with its resourceVersion, write it only if that version is
//! still current, list them. The IPAM commit logic works over this interface, so it is tested
//! against a fake ([`tests`](super::commit)) and served by the API server in production.

use std::future::Future;

use crate::k8s::{self, Cas, IPPool};

/// A store of IPPool objects with compare-and-swap writes.
///
/// Contract: [`put`](PoolStore::put) of a pool read by [`get`](PoolStore::get) succeeds only
/// if nobody wrote it in between (its `metadata.resourceVersion` still matches; a pool without
/// one is created and conflicts if it exists). A failed call (`Err`) may or may not have been
/// applied — a lost response — so callers must be idempotent by owner.
pub trait PoolStore: Sync {
    /// The pool `namespace/name`, with its resourceVersion, or `None` when it does not exist.
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<IPPool>, k8s::Error>> + Send;

    /// Write `pool` if its resourceVersion is still the stored one.
    fn put(
        &self,
        namespace: &str,
        pool: &IPPool,
    ) -> impl Future<Output = Result<Cas, k8s::Error>> + Send;

    /// Every pool in `namespace`.
    fn list(&self, namespace: &str)
    -> impl Future<Output = Result<Vec<IPPool>, k8s::Error>> + Send;
}

impl PoolStore for k8s::Client {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<IPPool>, k8s::Error> {
        self.ip_pool(namespace, name).await
    }
    async fn put(&self, namespace: &str, pool: &IPPool) -> Result<Cas, k8s::Error> {
        self.write_ip_pool(namespace, pool).await
    }
    async fn list(&self, namespace: &str) -> Result<Vec<IPPool>, k8s::Error> {
        self.ip_pools(namespace).await
    }
}
