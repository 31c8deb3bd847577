//! ADD, top to bottom: who is the pod → which networks (delegation guest) → the plan, written
//! down → the cluster network → each extra network (address by IPAM guest, link, config) →
//! the pod's network-status → the result. Any failure undoes what was done, in reverse.

use std::sync::Arc;

use serde_json::Value;

use super::{call, cluster_chain, pod_ref};
use crate::cni::{Error, Request};
use crate::config::PluginConf;
use crate::delegate::{self, NetworkStatus, cache::Record};
use crate::guest::{DelegationRequest, NetworkRef, Origin, Pod};
use crate::k8s::ObjectRef;
use crate::node::Node;

/// The annotation Multus writes and tools read.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// What to undo when a later step fails.
enum Undo {
    /// The cluster network's chain.
    Cluster,
    /// Extra attachment `i`'s chain.
    Attachment(usize),
}

pub(super) async fn add(node: &Arc<Node>, req: &Request, conf: PluginConf) -> Result<Value, Error> {
    // 0. Everything that can be checked locally is, before the first API call.
    let pod = pod_ref(req)?;
    let (namespace, name) = (pod.namespace(), pod.name());
    let cluster = cluster_chain(&conf)?;
    let defaults = default_networks(&conf.default_networks, namespace)?;
    if let Some(netns) = &req.netns {
        crate::netns::Netns::open(netns)?;
    }

    // 1. The pod: its annotations from the runtime when it passes them (capability
    //    io.kubernetes.cri.pod-annotations: no API round trip), else as the API server knows it.
    let kube = node.kube(&conf.kubeconfig).await?;
    let uid = req.args.pod_uid.as_deref();
    let facts = match runtime_annotations(&conf) {
        Some(annotations) => Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.unwrap_or_default().into(),
            labels: Vec::new(),
            annotations,
        },
        None => pod_facts(&kube.pod(namespace, name).await?, namespace, name, uid),
    };
    let call = call(node, req, conf, facts.clone(), Some(kube.clone()));

    // 2. Which extra networks: the delegation guest decides, the host validates and resolves.
    let decider = call.guest(&call.conf.delegation, Origin::Node).await?;
    let ask = DelegationRequest {
        pod: facts,
        node: call.node_name.clone(),
        default_networks: defaults,
    };
    let decided = call.guests()?.decide_pooled(&decider, ask).await?;
    tracing::info!(
        "delegation guest {} (sha256 {}) chose {} extra network(s) for {}: {:?}",
        decider.name(),
        decider.digest(),
        decided.len(),
        call.podref(),
        decided
            .iter()
            .map(|a| format!("{}/{}", a.network.namespace, a.network.name))
            .collect::<Vec<_>>()
    );
    let isolation = if call.conf.namespace_isolation {
        delegate::Isolation::Namespaces(call.conf.global_namespaces.clone())
    } else {
        delegate::Isolation::Off
    };
    let plan = delegate::plan(
        &kube,
        decider.name(),
        decided,
        &req.ifname,
        namespace,
        &isolation,
    )
    .await?;

    // 3. Written down before anything is created: DEL must find it even if we die next.
    let dir = call.conf.cni_dir.clone();
    let mut record = Record::new(
        &req.container_id,
        &call.podref(),
        &req.ifname,
        &cluster,
        &plan,
    );
    record.write(&dir)?;

    let mut undo: Vec<Undo> = Vec::new();
    let attached = async {
        // 4. The cluster network (eth0).
        undo.push(Undo::Cluster);
        let primary = delegate::add_chain(&call, &cluster.name, &cluster, &req.ifname)
            .await
            .map_err(|e| Error::from(e).context(format!("cluster network {}", cluster.name)))?;
        let mut status = vec![NetworkStatus::from_result(
            &cluster.name,
            &req.ifname,
            &primary,
            true,
        )];
        record.cluster_result = Some(primary.clone());

        // 5. Each extra network, in order.
        for (i, att) in plan.iter().enumerate() {
            undo.push(Undo::Attachment(i));
            let result = delegate::add_chain(&call, &att.network, &att.chain, &att.ifname)
                .await
                .map_err(|e| {
                    Error::from(e).context(format!("network {} ({})", att.network, att.ifname))
                })?;
            let mut entry = NetworkStatus::from_result(&att.network, &att.ifname, &result, false);
            entry.note = call.note_for(&att.ifname).or_else(|| att.note.clone());
            status.push(entry);
            record.results[i] = Some(result);
        }

        // 6. Tell the pod what it got.
        let text = serde_json::to_string_pretty(&status).expect("status serializes");
        kube.annotate_pod(namespace, name, NETWORK_STATUS, &text)
            .await?;
        record.write(&dir)?;
        Ok::<_, Error>(primary)
    }
    .await;

    match attached {
        Ok(primary) => Ok(primary.to_version(&call.conf.cni_version)),
        Err(e) => {
            for step in undo.into_iter().rev() {
                let (net, chain, ifname) = match step {
                    Undo::Cluster => (cluster.name.as_str(), &cluster, req.ifname.as_str()),
                    Undo::Attachment(i) => (
                        plan[i].network.as_str(),
                        &plan[i].chain,
                        plan[i].ifname.as_str(),
                    ),
                };
                if let Err(u) = delegate::del_chain(&call, net, chain, ifname, None).await {
                    tracing::error!("rollback of {net} on {ifname} failed: {u}");
                }
            }
            if let Err(u) = Record::remove(&dir, &req.container_id) {
                tracing::error!("rollback: {u}");
            }
            Err(e)
        }
    }
}

/// The pod as guests see it.
fn pod_facts(
    pod: &k8s_openapi::api::core::v1::Pod,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> Pod {
    let pairs = |m: &Option<std::collections::BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    Pod {
        namespace: namespace.into(),
        name: name.into(),
        uid: pod
            .metadata
            .uid
            .clone()
            .or(uid.map(str::to_string))
            .unwrap_or_default(),
        labels: pairs(&pod.metadata.labels),
        annotations: pairs(&pod.metadata.annotations),
    }
}

/// The pod's annotations as the runtime passed them (`runtimeConfig` capability
/// `io.kubernetes.cri.pod-annotations`), if it did. Labels are not passed this way: a
/// label-driven delegation policy needs the pod read from the API (leave the capability out).
fn runtime_annotations(conf: &PluginConf) -> Option<Vec<(String, String)>> {
    let map = conf
        .runtime_config
        .as_ref()?
        .get("io.kubernetes.cri.pod-annotations")?
        .as_object()?;
    Some(
        map.iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
    )
}

/// `defaultNetworks` of the config as references (unqualified names are in the pod's namespace).
fn default_networks(names: &[String], pod_namespace: &str) -> Result<Vec<NetworkRef>, Error> {
    names
        .iter()
        .map(|n| {
            let r = ObjectRef::parse(n, pod_namespace).map_err(|e| {
                Error::new(
                    crate::cni::Code::InvalidConfig,
                    "invalid defaultNetworks",
                    format!("{e} (NAME or NAMESPACE/NAME)"),
                )
            })?;
            Ok(NetworkRef {
                namespace: r.namespace().into(),
                name: r.name().into(),
            })
        })
        .collect()
}
