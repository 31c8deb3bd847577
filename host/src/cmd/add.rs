//! ADD, top to bottom: who is the pod → which networks (delegation guest) → the plan, written
//! down → the cluster network → each extra network (address by IPAM guest, link, config) →
//! the pod's network-status → the result. Any failure undoes what was done, in reverse.

use std::sync::Arc;

use serde_json::Value;

use super::{POD_DEFAULT_NETWORK, call, cluster_network, lookup, pod_ref, wait_ready};
use crate::cni::{Code, Error, Request};
use crate::config::{NetworkSource, PluginConf};
use crate::delegate::networks::Resolved;
use crate::delegate::{self, NetworkStatus, cache::Record, devinfo, routes};
use crate::guest::{DelegationRequest, NetworkRef, Origin, Pod};
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
    let local_cluster = match conf.cluster {
        NetworkSource::Path(_) | NetworkSource::Inline(_) => {
            Some(cluster_network(&conf, None, None).await?)
        }
        _ => None,
    };
    if let Some(netns) = &req.netns {
        crate::netns::Netns::open(netns)?;
    }
    wait_ready(&conf).await?;

    // 1. The pod: its annotations from the runtime when it passes them (capability
    //    io.kubernetes.cri.pod-annotations: no API round trip), else as the API server knows it.
    let kube = node.kube(&conf.kubeconfig).await?;
    let facts = read_pod(&conf, &kube, &pod, req.args.pod_uid.as_deref()).await?;

    // 2. The cluster network (the node's, or the pod's own by annotation) and the node's
    //    default networks (none for pods in systemNamespaces), found.
    let cluster = match pod_default(&conf, &facts)? {
        Some(own) => cluster_network(&conf, Some(&kube), Some(&own)).await?,
        None => match local_cluster {
            Some(found) => found,
            None => cluster_network(&conf, Some(&kube), None).await?,
        },
    };
    let defaults = default_networks(&conf, &kube, namespace).await?;
    let call = call(node, req, conf, facts.clone(), Some(kube.clone()));

    // 3. Which extra networks: the delegation guest decides, the host validates and resolves.
    let decider = call.guest(&call.conf.delegation, Origin::Node).await?;
    let ask = DelegationRequest {
        pod: facts,
        node: call.node_name.clone(),
        default_networks: defaults.iter().map(|(r, _)| r.clone()).collect(),
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
        &lookup(&call.conf, Some(&kube)),
        decider.name(),
        decided,
        delegate::Sandbox {
            container_id: req.container_id.as_str(),
            cluster_ifname: &req.ifname,
        },
        namespace,
        &isolation,
        &defaults,
    )
    .await?;
    let Resolved {
        name: cluster_name,
        chain: cluster,
    } = cluster;
    for att in &plan {
        call.extend_args(&att.ifname, &att.args);
    }

    // 4. Written down before anything is created: DEL must find it even if we die next.
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
        // 5. The cluster network (eth0).
        undo.push(Undo::Cluster);
        let primary = delegate::add_chain(&call, &cluster_name, &cluster, &req.ifname)
            .await
            .map_err(|e| Error::from(e).context(format!("cluster network {cluster_name}")))?;
        let mut primary = primary;
        record.cluster_result = Some(primary.clone());

        // 6. Each extra network, in order.
        for (i, att) in plan.iter().enumerate() {
            undo.push(Undo::Attachment(i));
            let result = delegate::add_chain(&call, &att.network, &att.chain, &att.ifname)
                .await
                .map_err(|e| {
                    Error::from(e).context(format!("network {} ({})", att.network, att.ifname))
                })?;
            record.results[i] = Some(result);
        }

        // 7. Multus' default-route: when a network asks, the pod's default routes are placed
        //    by request (every other interface loses its own). Results say what the pod has.
        if plan.iter().any(|a| a.default_route.is_some()) {
            let netns = req.netns.as_ref().ok_or_else(|| {
                Error::new(
                    Code::InvalidEnv,
                    "CNI_NETNS is required",
                    "default-route needs the pod's network namespace",
                )
            })?;
            let mut interfaces = vec![routes::Placed {
                ifname: &req.ifname,
                request: None,
                result: &mut primary,
            }];
            for (att, result) in plan.iter().zip(record.results.iter_mut()) {
                if let Some(result) = result {
                    interfaces.push(routes::Placed {
                        ifname: &att.ifname,
                        request: att.default_route.as_deref(),
                        result,
                    });
                }
            }
            routes::place(netns, interfaces).await?;
            record.cluster_result = Some(primary.clone());
        }

        // 8. Tell the pod what it got.
        let mut status = vec![NetworkStatus::from_result(
            &cluster_name,
            &req.ifname,
            &primary,
            true,
        )];
        for (att, result) in plan.iter().zip(&record.results) {
            let result = result.as_ref().expect("every attachment was made");
            let mut entry = NetworkStatus::from_result(&att.network, &att.ifname, result, false);
            entry.note = call.note_for(&att.ifname).or_else(|| att.note.clone());
            entry.device_info = att.device_info.as_deref().and_then(devinfo::load);
            status.push(entry);
        }
        // The result in the runtime's version before anything is written: a 0.1.0/0.2.0 result
        // holds one address per family, and one with none cannot be written at all.
        let out = primary
            .try_to_version(&call.conf.cni_version)
            .map_err(|why| {
                Error::new(
                    Code::IncompatibleVersion,
                    format!(
                        "the result cannot be written at cniVersion {}",
                        call.conf.cni_version
                    ),
                    format!(
                        "{why} (the cluster network {cluster_name:?} gave {} addresses)",
                        primary.ips.len()
                    ),
                )
            })?;
        let text = serde_json::to_string_pretty(&status).expect("status serializes");
        kube.annotate_pod(namespace, name, NETWORK_STATUS, &text)
            .await?;
        record.write(&dir)?;
        Ok::<_, Error>(out)
    }
    .await;

    match attached {
        Ok(out) => Ok(out),
        Err(e) => {
            for step in undo.into_iter().rev() {
                let (net, chain, ifname) = match step {
                    Undo::Cluster => (cluster_name.as_str(), &cluster, req.ifname.as_str()),
                    Undo::Attachment(i) => (
                        plan[i].network.as_str(),
                        &plan[i].chain,
                        plan[i].ifname.as_str(),
                    ),
                };
                if let Err(u) = delegate::del_chain(&call, net, chain, ifname, None).await {
                    tracing::error!("rollback of {net} on {ifname} failed: {u}");
                }
                if let Undo::Attachment(i) = step
                    && let Some(path) = &plan[i].device_info
                {
                    devinfo::clean(path);
                }
            }
            if let Err(u) = Record::remove(&dir, &req.container_id) {
                tracing::error!("rollback: {u}");
            }
            Err(e)
        }
    }
}

/// The pod as guests see it: its annotations from the runtime when it passes them (no API
/// round trip), else the pod as the API server has it.
pub(super) async fn read_pod(
    conf: &PluginConf,
    kube: &crate::k8s::Client,
    pod: &crate::k8s::ObjectRef,
    uid: Option<&str>,
) -> Result<Pod, Error> {
    let (namespace, name) = (pod.namespace(), pod.name());
    Ok(match runtime_annotations(conf) {
        Some(annotations) => Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.unwrap_or_default().into(),
            labels: Vec::new(),
            annotations,
        },
        None => pod_facts(&kube.pod(namespace, name).await?, namespace, name, uid),
    })
}

/// The pod as the API server has it, as guests see it.
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

/// The pod's own cluster network (`v1.multus-cni.io/default-network`), if it names one; a bare
/// name is in `multusNamespace`. Under `namespaceIsolation` it must be a NAD the pod could
/// also attach as an extra network, or of `multusNamespace` (Multus does not check this).
pub(super) fn pod_default(conf: &PluginConf, pod: &Pod) -> Result<Option<NetworkSource>, Error> {
    let Some((_, text)) = pod
        .annotations
        .iter()
        .find(|(k, _)| k == POD_DEFAULT_NETWORK)
    else {
        return Ok(None);
    };
    let bad = |why: String| {
        Error::new(
            crate::cni::Code::GuestDenied,
            format!("invalid pod annotation {POD_DEFAULT_NETWORK}"),
            why,
        )
    };
    let source =
        delegate::networks::pod_default_network(text, &conf.multus_namespace).map_err(bad)?;
    if let NetworkSource::Nad { namespace, name } = &source
        && conf.namespace_isolation
        && *namespace != pod.namespace
        && *namespace != conf.multus_namespace
        && !conf.global_namespaces.contains(namespace)
    {
        return Err(bad(format!(
            "{namespace}/{name}: namespaceIsolation is on, and pods of {} may use NADs of their \
             own namespace, of {} or of {}",
            pod.namespace,
            conf.multus_namespace,
            conf.global_namespaces.join(", ")
        )));
    }
    Ok(Some(source))
}

/// The node's default networks, found, with the reference each is offered to the delegation
/// guest by: a NAD by its namespace and name, a conf (path, confDir, inline) by its name with
/// an empty namespace. Pods in `systemNamespaces` get none of `defaultNetworks` (Multus).
async fn default_networks(
    conf: &PluginConf,
    kube: &crate::k8s::Client,
    pod_namespace: &str,
) -> Result<Vec<(NetworkRef, Resolved)>, Error> {
    if conf.defaults_skip_system && conf.system_namespaces.iter().any(|n| n == pod_namespace) {
        return Ok(Vec::new());
    }
    let lookup = lookup(conf, Some(kube));
    let mut out = Vec::with_capacity(conf.defaults.len());
    for (i, source) in conf.defaults.iter().enumerate() {
        let found = lookup
            .resolve(&format!("defaultNetworks[{i}]"), source)
            .await
            .map_err(|e| Error::from(e).context(format!("default network {}", i + 1)))?;
        let reference = match found.name.split_once('/') {
            Some((namespace, name)) => NetworkRef {
                namespace: namespace.into(),
                name: name.into(),
            },
            None => NetworkRef {
                namespace: String::new(),
                name: found.name.clone(),
            },
        };
        out.push((reference, found));
    }
    Ok(out)
}
