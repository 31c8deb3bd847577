//! Kubernetes API access: Pods, NetworkAttachmentDefinitions and whereabouts IPPools.
//!
//! Every call has a deadline (the kubelet's CNI timeout is short and DEL must never hang), and
//! errors say which object and whether trying again can help.

mod cluster;
mod crd;
mod names;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client as KubeClient, Config};

pub use cluster::PodSummary;
pub use names::{InvalidName, ObjectRef};

pub use crd::{
    IPPool, IPPoolSpec, IpAllocation, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec,
    OverlappingRangeIPReservation, OverlappingRangeIPReservationSpec,
};

/// Per-request deadline. Short: a CNI call waits on it, and DEL must fail over to the cache.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP connect deadline: an API server that is down should be noticed fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The NAD annotation naming the device-plugin resource its network needs (Multus').
const RESOURCE_NAME: &str = "k8s.v1.cni.cncf.io/resourceName";

/// Why a Kubernetes operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or used. Not retryable: fix the file.
    #[error("cannot use kubeconfig {path}")]
    Kubeconfig {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The API server did not answer. Retryable.
    #[error("Kubernetes API server unreachable while {what}")]
    Unreachable {
        /// What was being done.
        what: String,
        /// The transport error.
        #[source]
        source: kube::Error,
    },
    /// The pod the runtime named does not exist. Not retryable.
    #[error("pod {namespace}/{name} not found")]
    PodNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A NetworkAttachmentDefinition the pod asked for does not exist. Not retryable.
    #[error("NetworkAttachmentDefinition {namespace}/{name} not found")]
    NetworkNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A NetworkAttachmentDefinition's `spec.config` is not a usable CNI config.
    #[error("NetworkAttachmentDefinition {namespace}/{name} has an invalid config: {why}")]
    BadNetworkConfig {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The API server refused the request (RBAC, validation, …). Not retryable as is.
    #[error("Kubernetes API refused {what}: {message} ({reason}, {code})")]
    Api {
        /// What was being done.
        what: String,
        /// The API's message.
        message: String,
        /// The API's reason (Forbidden, Invalid, …).
        reason: String,
        /// The HTTP code.
        code: u16,
    },
}

impl Error {
    fn from_kube(what: impl Into<String>, e: kube::Error) -> Self {
        let what = what.into();
        match e {
            kube::Error::Api(s) => Error::Api {
                what,
                message: s.message,
                reason: s.reason,
                code: s.code,
            },
            _ => Error::Unreachable { what, source: e },
        }
    }
}

/// A list of the objects matching label `selector`. `fresh`: a consistent read, which the API
/// server serves from its watch cache only once the cache has caught up with etcd — measured
/// here at about 80 ms per list right after a write (tests/bench/ipam.sh; 100 ms per
/// sequential ADD in blocks instead of 20). Otherwise any recent state (`resourceVersion=0`),
/// for callers whose writes are conditional anyway and so survive a stale read.
fn list_params(selector: &str, fresh: bool) -> kube::api::ListParams {
    let p = kube::api::ListParams::default().labels(selector);
    if fresh { p } else { p.match_any() }
}

/// wasmcni's deadlines on `config`: connect, and `request` for each write and each response.
///
/// kube's read timeout is one on the connection (hyper-timeout), and a pooled connection arms
/// it while it sits idle: without `reset_reader_on_write`, the idle time counted against the
/// next response on it, so a node daemon whose connections had been idle about `request` lost
/// calls that had just been sent ("connection error: timed out", 2 DELs of 1000 in
/// tests/bench/ipam.sh). Reset on the request's write, the deadline counts from the request.
fn with_deadlines(config: &mut Config, request: Duration) {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(request);
    config.write_timeout = Some(request);
    config.reset_reader_on_write = true;
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// A client bound to wasmcni's identity.
#[derive(Clone)]
pub struct Client {
    kube: KubeClient,
}

/// The outcome of a conditional write of one key or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Applied.
    Done,
    /// Not applied: the condition failed (the key is taken or no longer ours, the object
    /// exists, or changed).
    Changed,
    /// Not applied: the object does not exist.
    Absent,
}

impl Client {
    /// A client for the identity in `kubeconfig`, with wasmcni's deadlines.
    pub async fn from_kubeconfig(path: &Path) -> Result<Self, Error> {
        let bad = |source| Error::Kubeconfig {
            path: path.to_path_buf(),
            source,
        };
        // Checked first: a FIFO (or a device) where the kubeconfig should be would block the
        // read below forever; kube then reads it (and resolves the paths inside it).
        crate::files::check_regular(path).map_err(|e| {
            bad(kube::config::KubeconfigError::ReadConfig(
                std::io::Error::other(e.to_string()),
                path.to_path_buf(),
            ))
        })?;
        let kc = Kubeconfig::read_from(path).map_err(bad)?;
        let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(bad)?;
        with_deadlines(&mut config, REQUEST_TIMEOUT);
        let kube =
            KubeClient::try_from(config).map_err(|e| Error::from_kube("building the client", e))?;
        Ok(Client { kube })
    }

    /// A client for the pod's own ServiceAccount (in-cluster: the mounted token, CA and
    /// `KUBERNETES_SERVICE_HOST`), with wasmcni's deadlines: the reconciler's Deployment.
    pub fn in_cluster() -> Result<Self, Error> {
        let path = PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount");
        let mut config = Config::incluster().map_err(|e| Error::Kubeconfig {
            path,
            source: kube::config::KubeconfigError::ReadConfig(
                std::io::Error::other(e.to_string()),
                "in-cluster".into(),
            ),
        })?;
        with_deadlines(&mut config, REQUEST_TIMEOUT);
        let kube =
            KubeClient::try_from(config).map_err(|e| Error::from_kube("building the client", e))?;
        Ok(Client { kube })
    }

    /// The namespace of `kubeconfig`'s current context, if it names one: where whereabouts
    /// keeps its IPPools when it runs with that kubeconfig (kube-system when none is named).
    pub fn context_namespace(kubeconfig: &Path) -> Result<Option<String>, Error> {
        let bad = |source| Error::Kubeconfig {
            path: kubeconfig.to_path_buf(),
            source,
        };
        let kc = Kubeconfig::read_from(kubeconfig).map_err(bad)?;
        let current = kc.current_context.clone().unwrap_or_default();
        Ok(kc
            .contexts
            .iter()
            .find(|c| c.name == current)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.namespace.clone())
            .filter(|ns| !ns.is_empty()))
    }

    /// The pod `namespace/name`.
    pub async fn pod(&self, namespace: &str, name: &str) -> Result<Pod, Error> {
        let api: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        match api.get(name).await {
            Ok(p) => Ok(p),
            Err(e) if status_code(&e) == Some(404) => Err(Error::PodNotFound {
                namespace: namespace.into(),
                name: name.into(),
            }),
            Err(e) => Err(Error::from_kube(
                format!("reading pod {namespace}/{name}"),
                e,
            )),
        }
    }

    /// Set one annotation on a pod (a merge patch: other annotations are untouched).
    pub async fn annotate_pod(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        let api: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        // Through pods/status, as Multus writes it: the subresource a node's identity may be
        // given without the right to change a pod's spec (its image) or to create pods. A
        // merge patch names no resourceVersion, so it never conflicts (Multus' PUT retries).
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| Error::from_kube(format!("annotating pod {namespace}/{name}"), e))
    }

    /// The network config of NetworkAttachmentDefinition `namespace/name`; `None` when its
    /// `spec.config` is empty (the network is then the conf file of that name in `confDir`).
    /// A NAD with a device-plugin resource (`k8s.v1.cni.cncf.io/resourceName`) is refused.
    pub async fn network(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, Error> {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.kube.clone(), namespace);
        let nad = match api.get(name).await {
            Ok(n) => n,
            Err(e) if status_code(&e) == Some(404) => {
                return Err(Error::NetworkNotFound {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
            Err(e) => {
                return Err(Error::from_kube(
                    format!("reading NetworkAttachmentDefinition {namespace}/{name}"),
                    e,
                ));
            }
        };
        let bad = |why: String| Error::BadNetworkConfig {
            namespace: namespace.into(),
            name: name.into(),
            why,
        };
        // Multus gives such a network the device the kubelet allocated the pod (its pod
        // resources), as `deviceID`; attached without it the network would not be the one
        // asked for.
        if let Some(resource) = nad
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESOURCE_NAME))
            .filter(|r| !r.is_empty())
        {
            return Err(bad(format!(
                "annotation {RESOURCE_NAME} {resource:?} asks for a device-plugin resource; \
                 wasmcni does not read the kubelet's pod resources, so it cannot hand this \
                 network its device (a pod may name one with the selection's deviceID on a NAD \
                 without the annotation)"
            )));
        }
        let Some(text) = nad.spec.config.filter(|c| !c.trim().is_empty()) else {
            return Ok(None);
        };
        let mut config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("spec.config is not JSON: {e}")))?;
        // As Multus does: a config without a name is named after its NAD.
        if let Some(obj) = config.as_object_mut()
            && obj
                .get("name")
                .and_then(|n| n.as_str())
                .is_none_or(str::is_empty)
        {
            obj.insert("name".into(), serde_json::Value::String(name.to_string()));
        }
        Ok(Some(config))
    }

    /// `data` and `binaryData` of ConfigMap `namespace/name`; empty when it does not exist.
    pub async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, Vec<u8>>), Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.kube.clone(), namespace);
        let cm = api
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(format!("reading ConfigMap {namespace}/{name}"), e))?;
        Ok(cm
            .map(|cm| {
                let binary = cm
                    .binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                (cm.data.unwrap_or_default(), binary)
            })
            .unwrap_or_default())
    }

    /// Server-side apply of `cm` as `manager`: only the keys it carries are owned by `manager`,
    /// so pinning one guest never removes another's entry.
    pub async fn apply_config_map(&self, cm: &ConfigMap, manager: &str) -> Result<(), Error> {
        let ns = cm.metadata.namespace.clone().unwrap_or_default();
        let name = cm.metadata.name.clone().unwrap_or_default();
        let api: Api<ConfigMap> = Api::namespaced(self.kube.clone(), &ns);
        let mut body = serde_json::to_value(cm).expect("ConfigMap serializes");
        body["apiVersion"] = "v1".into();
        body["kind"] = "ConfigMap".into();
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await
        .map(drop)
        .map_err(|e| Error::from_kube(format!("applying ConfigMap {ns}/{name}"), e))
    }

    /// The IPPool `name` in `namespace`, if it exists.
    pub async fn ip_pool(&self, namespace: &str, name: &str) -> Result<Option<IPPool>, Error> {
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| Error::from_kube(format!("reading IPPool {namespace}/{name}"), e))
    }

    /// Every IPPool in `namespace` (for releases when the range is not known).
    pub async fn ip_pools(&self, namespace: &str) -> Result<Vec<IPPool>, Error> {
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .map_err(|e| Error::from_kube(format!("listing IPPools in {namespace}"), e))
    }

    /// The IPPools in `namespace` whose labels match `selector`; `fresh`: a consistent read
    /// (see [`list_params`]).
    pub async fn ip_pools_labelled(
        &self,
        namespace: &str,
        selector: &str,
        fresh: bool,
    ) -> Result<Vec<IPPool>, Error> {
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        api.list(&list_params(selector, fresh))
            .await
            .map(|l| l.items)
            .map_err(|e| Error::from_kube(format!("listing IPPools {selector} in {namespace}"), e))
    }

    /// The names of the IPPools in `namespace` whose labels match `selector` (metadata only:
    /// a few hundred bytes per pool, however full).
    pub async fn ip_pool_names(
        &self,
        namespace: &str,
        selector: &str,
        fresh: bool,
    ) -> Result<Vec<String>, Error> {
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        api.list_metadata(&list_params(selector, fresh))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|m| m.metadata.name)
                    .collect()
            })
            .map_err(|e| Error::from_kube(format!("listing IPPools {selector} in {namespace}"), e))
    }

    /// Create an empty IPPool `name` for `range` with `labels`: [`Write::Changed`] when one of
    /// that name exists.
    pub async fn create_ip_pool_labelled(
        &self,
        namespace: &str,
        name: &str,
        range: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Write, Error> {
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        let mut pool = IPPool::new(
            name,
            IPPoolSpec {
                range: range.into(),
                allocations: BTreeMap::new(),
            },
        );
        pool.metadata.labels = Some(labels);
        match api.create(&PostParams::default(), &pool).await {
            Ok(_) => Ok(Write::Done),
            Err(e) if status_code(&e) == Some(409) => Ok(Write::Changed),
            Err(e) => Err(Error::from_kube(
                format!("creating IPPool {namespace}/{name}"),
                e,
            )),
        }
    }

    /// Whether the IPPool store answers: one list request of at most one object.
    pub async fn probe_ip_pools(&self, namespace: &str) -> Result<(), Error> {
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        api.list(&kube::api::ListParams::default().limit(1))
            .await
            .map(drop)
            .map_err(|e| Error::from_kube(format!("listing IPPools in {namespace}"), e))
    }

    /// Record `entry` at `offset` of IPPool `name` only if no allocation is there: one JSON
    /// patch whose `test` makes the API server refuse it when the key exists (the same guard
    /// whereabouts puts on its `add`s). No resourceVersion precondition, so writers of other
    /// offsets never conflict; the server applies the patch to the stored object atomically.
    ///
    /// `rv_if_empty`: the resourceVersion of a pool read with no allocations. Its
    /// `spec.allocations` may be absent, so the whole map is written instead, guarded by that
    /// version.
    pub async fn insert_allocation(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        entry: &IpAllocation,
        rv_if_empty: Option<&str>,
    ) -> Result<Write, Error> {
        let value = serde_json::to_value(entry).expect("IpAllocation serializes");
        let ops = match rv_if_empty {
            Some(rv) => serde_json::json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "add", "path": "/spec/allocations", "value": {offset.to_string(): value}},
            ]),
            None => serde_json::json!([
                {"op": "test", "path": format!("/spec/allocations/{offset}"), "value": null},
                {"op": "add", "path": format!("/spec/allocations/{offset}"), "value": value},
            ]),
        };
        self.patch_pool(namespace, name, ops, "recording an allocation in")
            .await
    }

    /// Remove the allocation at `offset` of IPPool `name` if it still names container `id`.
    pub async fn remove_allocation(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        id: &str,
    ) -> Result<Write, Error> {
        let path = format!("/spec/allocations/{offset}");
        let ops = serde_json::json!([
            {"op": "test", "path": format!("{path}/id"), "value": id},
            {"op": "remove", "path": path},
        ]);
        self.patch_pool(namespace, name, ops, "releasing an allocation in")
            .await
    }

    /// Re-own the allocation at `offset` (held by container `from`) for container `to`: the
    /// pod came back with a new sandbox and keeps its address, as whereabouts does.
    pub async fn move_allocation(
        &self,
        namespace: &str,
        name: &str,
        offset: u64,
        from: &str,
        to: &str,
    ) -> Result<Write, Error> {
        let path = format!("/spec/allocations/{offset}/id");
        let ops = serde_json::json!([
            {"op": "test", "path": path, "value": from},
            {"op": "replace", "path": path, "value": to},
        ]);
        self.patch_pool(namespace, name, ops, "re-owning an allocation in")
            .await
    }

    async fn patch_pool(
        &self,
        namespace: &str,
        name: &str,
        ops: serde_json::Value,
        what: &str,
    ) -> Result<Write, Error> {
        let patch: json_patch::Patch = serde_json::from_value(ops).expect("a valid JSON patch");
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => Ok(Write::Done),
            Err(e) if status_code(&e) == Some(404) => Ok(Write::Absent),
            // A failed `test` is 422 Invalid; a changed resourceVersion 409.
            Err(e) if matches!(status_code(&e), Some(409 | 422)) => Ok(Write::Changed),
            Err(e) => Err(Error::from_kube(
                format!("{what} IPPool {namespace}/{name}"),
                e,
            )),
        }
    }

    /// Create an empty IPPool for `range` (success when someone else just created it).
    pub async fn create_ip_pool(
        &self,
        namespace: &str,
        name: &str,
        range: &str,
    ) -> Result<(), Error> {
        let api: Api<IPPool> = Api::namespaced(self.kube.clone(), namespace);
        let pool = IPPool::new(
            name,
            IPPoolSpec {
                range: range.into(),
                allocations: BTreeMap::new(),
            },
        );
        match api.create(&PostParams::default(), &pool).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(409) => Ok(()),
            Err(e) => Err(Error::from_kube(
                format!("creating IPPool {namespace}/{name}"),
                e,
            )),
        }
    }

    /// The OverlappingRangeIPReservation `name`, if it exists.
    pub async fn reservation(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<OverlappingRangeIPReservation>, Error> {
        let api: Api<OverlappingRangeIPReservation> = Api::namespaced(self.kube.clone(), namespace);
        api.get_opt(name).await.map_err(|e| {
            Error::from_kube(
                format!("reading OverlappingRangeIPReservation {namespace}/{name}"),
                e,
            )
        })
    }

    /// Create the OverlappingRangeIPReservation `name`: [`Write::Done`] when this call made it,
    /// [`Write::Changed`] when it already exists (whoever holds it).
    pub async fn reserve(
        &self,
        namespace: &str,
        name: &str,
        spec: &OverlappingRangeIPReservationSpec,
    ) -> Result<Write, Error> {
        let api: Api<OverlappingRangeIPReservation> = Api::namespaced(self.kube.clone(), namespace);
        let orip = OverlappingRangeIPReservation::new(name, spec.clone());
        match api.create(&PostParams::default(), &orip).await {
            Ok(_) => Ok(Write::Done),
            Err(e) if status_code(&e) == Some(409) => Ok(Write::Changed),
            Err(e) => Err(Error::from_kube(
                format!("creating OverlappingRangeIPReservation {namespace}/{name}"),
                e,
            )),
        }
    }

    /// Delete the OverlappingRangeIPReservation `name` if it is still the object with `uid`
    /// (so a reservation someone made after ours was read is never deleted).
    pub async fn unreserve(&self, namespace: &str, name: &str, uid: &str) -> Result<Write, Error> {
        let api: Api<OverlappingRangeIPReservation> = Api::namespaced(self.kube.clone(), namespace);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(Write::Done),
            Err(e) if status_code(&e) == Some(404) => Ok(Write::Absent),
            Err(e) if status_code(&e) == Some(409) => Ok(Write::Changed),
            Err(e) => Err(Error::from_kube(
                format!("deleting OverlappingRangeIPReservation {namespace}/{name}"),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP/1.1 server on loopback that answers every GET with a ConfigMap, the second and
    /// later ones after `slow`; it counts the connections it accepted.
    async fn server(slow: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut served = 0;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        served += 1;
                        if served > 1 {
                            tokio::time::sleep(slow).await;
                        }
                        let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"}}"#;
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    /// The deadline of a response counts from its request, not from when the pooled
    /// connection it went out on fell idle: idle 0.6 s, then a response in 0.6 s, both under
    /// a 1 s deadline, on one connection.
    #[tokio::test]
    async fn a_pooled_connection_idle_does_not_eat_the_next_requests_deadline() {
        let deadline = Duration::from_secs(1);
        let (url, accepted) = server(deadline * 6 / 10).await;
        let mut config = Config::new(url.parse().unwrap());
        with_deadlines(&mut config, deadline);
        let client = KubeClient::try_from(config).unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        api.get("x").await.expect("the first answer is immediate");
        tokio::time::sleep(deadline * 6 / 10).await;
        let second = api.get("x").await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "both requests on one connection"
        );
        second.expect("0.6 s idle + 0.6 s answer is within a 1 s deadline per request");
    }
}
