//! CHECK: what ADD made is still there (from the delegate cache, chain by chain).

use super::{call, pod_ref, pod_stub};
use crate::cni::{Code, Error, Request};
use crate::config::PluginConf;
use crate::delegate::{self, cache::Record};
use crate::k8s;

pub(super) async fn check(req: &Request, conf: PluginConf) -> Result<(), Error> {
    let (namespace, name) = pod_ref(req)?;
    let rec = Record::read(&conf.cni_dir, &req.container_id).ok_or_else(|| {
        Error::new(
            Code::UnknownContainer,
            "nothing to check",
            format!("no ADD is recorded for container {}", req.container_id),
        )
    })?;
    let kube = k8s::Client::from_kubeconfig(&conf.kubeconfig).await.ok();
    let call = call(req, conf, pod_stub(&namespace, &name, None), kube)?;
    if let Some(prev) = &rec.cluster_result {
        delegate::check_chain(&call, &rec.cluster.name, &rec.cluster, &rec.ifname, prev).await?;
    }
    for (att, prev) in rec.attachments.iter().zip(&rec.results) {
        let prev = prev.as_ref().ok_or_else(|| {
            Error::new(
                Code::UnknownContainer,
                "ADD did not finish",
                format!("network {} has no recorded result", att.network),
            )
        })?;
        delegate::check_chain(&call, &att.network, &att.chain, &att.ifname, prev).await?;
    }
    Ok(())
}
