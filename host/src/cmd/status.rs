//! STATUS (spec 1.1): whether an ADD could succeed now, and whether pods already attached
//! have lost connectivity.
//!
//! 50 (not available): the cluster network's config is unusable, the kubeconfig is missing,
//! the IPAM store (IPPools on the API server) does not answer — wasmcni keeps no local copy of
//! the pools, so there is no cache to fall back on — or a master named by the cluster network
//! is missing while no pod uses it yet.
//! 51 (not available, existing pods may have limited connectivity): a master interface that
//! attached pods hang off is gone (the kernel deletes ipvlan/macvlan children with their master).
//! Then, as Multus asks them, the cluster network's own exec'd plugins (from 1.1.0): the first
//! that is not ready answers with its own code.

use std::collections::BTreeMap;

use crate::cni::{Code, Error};
use crate::config::{NetworkSource, PluginConf};
use crate::delegate::{self, cache::Record};
use crate::{k8s, netlink, netns};

pub(super) async fn status(
    node: &std::sync::Arc<crate::node::Node>,
    req: &crate::cni::Request,
    conf: &PluginConf,
) -> Result<(), Error> {
    // Multus waits up to 45 s for the file here too; STATUS answers at once instead (the
    // runtime asks again every few seconds, and a 45 s STATUS would stall its loop).
    if let Some(file) = &conf.readiness_indicator_file
        && !file.exists()
    {
        return Err(Error::new(
            Code::NotAvailable,
            "cluster network not ready",
            format!(
                "readinessindicatorfile {} does not exist yet",
                file.display()
            ),
        ));
    }
    if !conf.kubeconfig.is_file() {
        return Err(Error::new(
            Code::NotAvailable,
            "kubeconfig missing",
            format!("{} does not exist", conf.kubeconfig.display()),
        ));
    }
    let kube = match &conf.cluster {
        NetworkSource::Path(_) | NetworkSource::Inline(_) => None,
        _ => Some(node.kube(&conf.kubeconfig).await?),
    };
    let resolved = super::cluster_network(conf, kube.as_ref(), None)
        .await
        .map_err(|e| Error::new(Code::NotAvailable, "cluster network not ready", e.details))?;
    let cluster = &resolved.chain;

    // Masters: the cluster network's, and those of every attachment recorded on this node.
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in delegate::masters(cluster) {
        users.entry(m).or_default();
    }
    for rec in Record::all(&conf.cni_dir) {
        for m in delegate::masters(&rec.cluster) {
            users.entry(m).or_default().push(rec.podref.clone());
        }
        for att in &rec.attachments {
            for m in delegate::masters(&att.chain) {
                users.entry(m).or_default().push(format!(
                    "{} ({} via {})",
                    rec.podref, att.ifname, att.network
                ));
            }
        }
    }
    let host = netns::host_handle()
        .map_err(|e| Error::new(Code::NotAvailable, "cannot open netlink", e.to_string()))?;
    let mut gone = Vec::new();
    for (master, pods) in &users {
        match netlink::find(&host, master).await {
            Ok(Some(_)) => {}
            Ok(None) => gone.push((master, pods)),
            Err(e) => {
                return Err(Error::new(
                    Code::NotAvailable,
                    "cannot list the node's links",
                    format!("looking up master {master}: {e}"),
                ));
            }
        }
    }
    if let Some((master, _)) = gone.iter().find(|(_, pods)| !pods.is_empty()) {
        let affected: Vec<&String> = gone.iter().flat_map(|(_, p)| p.iter()).collect();
        return Err(Error::new(
            Code::NotAvailableLimited,
            format!("master interface {master} is gone"),
            format!(
                "attached pods lost the links on it: {}; restore the interface (or fix the network configs) and recreate those pods",
                affected
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some((master, _)) = gone.first() {
        return Err(Error::new(
            Code::NotAvailable,
            format!("master interface {master} is gone"),
            format!(
                "the cluster network {} needs {master} on this node",
                cluster.name
            ),
        ));
    }

    // The IPAM store.
    let unreachable = |e: k8s::Error| {
        Error::new(
            Code::NotAvailable,
            "IPAM store unreachable",
            format!(
                "{e}: addresses live in IPPools on the API server and wasmcni keeps no local copy; ADD cannot allocate until it answers"
            ),
        )
    };
    let kube = node.kube(&conf.kubeconfig).await.map_err(unreachable)?;
    kube.probe_ip_pools(&conf.ipam_namespace)
        .await
        .map_err(unreachable)?;

    // The cluster network's own plugins (Multus' CmdStatus).
    let pod = crate::guest::Pod {
        namespace: String::new(),
        name: String::new(),
        uid: String::new(),
        labels: Vec::new(),
        annotations: Vec::new(),
    };
    let call = super::call(node, req, conf.clone(), pod, Some(kube));
    delegate::status_chain(&call, &resolved.name, cluster)
        .await
        .map_err(|e| Error::from(e).context(format!("cluster network {}", resolved.name)))?;
    Ok(())
}
