//! DEL: undo an ADD, never blocked by what is already gone.
//!
//! - With the delegate cache: every planned attachment's chain is deleted in reverse, then the
//!   cluster network. No API read of the pod or its NADs is needed.
//! - Without it (ADD never got that far, or the file was lost or corrupt): the cluster network
//!   is deleted — the pod's own (`v1.multus-cni.io/default-network`) when the pod can still be
//!   read, as Multus does, else the node's — and any address recorded for this container in an
//!   IPPool is released. Links inside the pod's namespace go away with the namespace.
//!
//! Every step runs even when an earlier one failed; the first error is reported (an
//! unreachable API server is code 11, so the runtime retries and no address leaks).

use super::{call, cluster_network, pod_ref, pod_stub};
use crate::cni::{Error, Request};
use crate::config::PluginConf;
use crate::delegate::{self, Call, cache::Record};
use crate::ipam::{self, Owner};
use crate::k8s::ObjectRef;

pub(super) async fn del(
    node: &std::sync::Arc<crate::node::Node>,
    req: &Request,
    conf: PluginConf,
) -> Result<(), Error> {
    if let Some(file) = &conf.readiness_indicator_file
        && !file.exists()
    {
        // As Multus: DEL goes on (it must never be blocked), saying so.
        tracing::warn!(
            "readinessindicatorfile {} does not exist on DEL",
            file.display()
        );
    }
    let record = Record::read(&conf.cni_dir, &req.container_id);
    let pod = match (&record, pod_ref(req)) {
        (_, Ok(p)) => p,
        (Some(r), Err(e)) => ObjectRef::parse(&r.podref, "").map_err(|_| e)?,
        (None, Err(e)) => return Err(e),
    };
    let kube = match node.kube(&conf.kubeconfig).await {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!("DEL continues without the API: {e}");
            None
        }
    };
    let pod = pod_stub(&pod, req.args.pod_uid.as_deref());
    let dir = conf.cni_dir.clone();
    let call = call(node, req, conf, pod, kube.clone());
    let mut first: Option<Error> = None;
    let mut keep = |r: Result<(), Error>| {
        if let Err(e) = r {
            tracing::error!("DEL {}: {e}", req.container_id);
            first.get_or_insert(e);
        }
    };

    match &record {
        Some(rec) => keep(undo(&call, rec).await),
        None => {
            let own = match &kube {
                Some(kube) => pod_own_network(&call.conf, kube, req).await,
                None => None,
            };
            let cluster = match own {
                Some(own) => match cluster_network(&call.conf, kube.as_ref(), Some(&own)).await {
                    Ok(c) => Ok(c),
                    Err(e) => {
                        // As Multus: DEL goes on with the node's cluster network.
                        tracing::warn!("DEL: the pod's own cluster network: {e}");
                        cluster_network(&call.conf, kube.as_ref(), None).await
                    }
                },
                None => cluster_network(&call.conf, kube.as_ref(), None).await,
            };
            match cluster {
                Ok(cluster) => keep(
                    delegate::del_chain(&call, &cluster.name, &cluster.chain, &req.ifname, None)
                        .await
                        .map_err(|e| {
                            Error::from(e).context(format!("cluster network {}", cluster.name))
                        }),
                ),
                Err(e) => keep(Err(e)),
            }
            if let Some(kube) = &kube {
                let owner = Owner {
                    container_id: req.container_id.to_string(),
                    ifname: String::new(),
                    podref: call.podref(),
                };
                keep(
                    ipam::release(kube, &call.conf.ipam_namespace, None, &owner)
                        .await
                        .map_err(Error::from),
                );
            }
        }
    }
    match first {
        None => Record::remove(&dir, &req.container_id).map_err(Error::from),
        Some(e) => Err(e),
    }
}

/// The pod's own cluster network, when a DEL without a record can still learn it: from the
/// annotations the runtime passed, else from the pod as the API server has it. A pod that is
/// gone or unreadable, or an annotation ADD would have refused, is none (the node's cluster
/// network is deleted then).
async fn pod_own_network(
    conf: &PluginConf,
    kube: &crate::k8s::Client,
    req: &Request,
) -> Option<crate::config::NetworkSource> {
    let pod = pod_ref(req).ok()?;
    let facts = match super::add::read_pod(conf, kube, &pod, req.args.pod_uid.as_deref()).await {
        Ok(facts) => facts,
        Err(e) => {
            tracing::info!("DEL without a record: {e}; the node's cluster network is used");
            return None;
        }
    };
    super::add::pod_default(conf, &facts)
        .map_err(|e| tracing::warn!("DEL without a record: {e}"))
        .ok()
        .flatten()
}

/// Undo one recorded ADD: every attachment's chain in reverse, then the cluster network, each
/// with the result ADD recorded. Every step runs; the first error is returned.
pub(super) async fn undo(call: &Call, rec: &Record) -> Result<(), Error> {
    let mut first: Option<Error> = None;
    for (i, att) in rec.attachments.iter().enumerate().rev() {
        // The plugins see the CNI_ARGS they saw at ADD (MAC=, IP= of the pod's requests).
        call.extend_args(&att.ifname, &att.args);
        let prev = rec.results.get(i).and_then(Option::as_ref);
        if let Err(e) = delegate::del_chain(call, &att.network, &att.chain, &att.ifname, prev).await
        {
            first.get_or_insert(
                Error::from(e).context(format!("network {} ({})", att.network, att.ifname)),
            );
        }
        // As Multus: the device-info file goes whatever the plugins answered.
        if let Some(path) = &att.device_info {
            delegate::devinfo::clean(path);
        }
    }
    let cluster = &rec.cluster;
    if let Err(e) = delegate::del_chain(
        call,
        &cluster.name,
        cluster,
        &rec.ifname,
        rec.cluster_result.as_ref(),
    )
    .await
    {
        first.get_or_insert(Error::from(e).context(format!("cluster network {}", cluster.name)));
    }
    first.map_or(Ok(()), Err)
}
