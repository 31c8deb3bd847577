//! CHECK: what ADD made is still there. The cluster network is checked against the result the
//! runtime passes back (`prevResult`, which must be what ADD returned); the extra networks
//! against their results in the delegate cache. Each chain's plugins check their own part.

use super::{call, pod_ref, pod_stub, prev_result};
use crate::cni::{Code, Error, Request};
use crate::config::PluginConf;
use crate::delegate::{self, cache::Record};

pub(super) async fn check(
    node: &std::sync::Arc<crate::node::Node>,
    req: &Request,
    conf: PluginConf,
) -> Result<(), Error> {
    let pod = pod_ref(req)?;
    let rec = Record::read(&conf.cni_dir, &req.container_id).ok_or_else(|| {
        Error::new(
            Code::UnknownContainer,
            "nothing to check",
            format!("no ADD is recorded for container {}", req.container_id),
        )
    })?;
    let given = prev_result(conf.prev_result.as_ref(), &conf.cni_version)?.ok_or_else(|| {
        Error::new(
            Code::InvalidConfig,
            "CHECK needs prevResult",
            "the runtime must pass the result of ADD as prevResult (libcni does)",
        )
    })?;
    let recorded = rec.cluster_result.as_ref().ok_or_else(|| {
        Error::new(
            Code::UnknownContainer,
            "ADD did not finish",
            format!(
                "the cluster network {} has no recorded result",
                rec.cluster.name
            ),
        )
    })?;
    // The runtime's copy and ours must agree on what the pod has.
    let addrs = |r: &crate::cni::types::CniResult| {
        let mut a: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
        a.sort();
        a
    };
    if addrs(&given) != addrs(recorded) {
        return Err(Error::new(
            Code::Drift,
            "CHECK found drift",
            format!(
                "cluster network {}: prevResult has addresses [{}], ADD returned [{}]",
                rec.cluster.name,
                addrs(&given).join(", "),
                addrs(recorded).join(", ")
            ),
        ));
    }
    let kube = node.kube(&conf.kubeconfig).await.ok();
    let call = call(node, req, conf, pod_stub(&pod, None), kube);
    delegate::check_chain(&call, &rec.cluster.name, &rec.cluster, &rec.ifname, &given).await?;
    for (att, prev) in rec.attachments.iter().zip(&rec.results) {
        // The plugins see the CNI_ARGS they saw at ADD (MAC=, IP= of the pod's requests).
        call.extend_args(&att.ifname, &att.args);
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
