//! From the delegation guest's answer to a validated plan: every interface name legal and
//! unique, every network resolved to its config, before anything is created.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Error;
use crate::cni::types::NetConfList;
use crate::cni::{self, Code};
use crate::guest::{Attachment, Loaded};
use crate::k8s;

/// One extra network to attach, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// `namespace/name` of the NetworkAttachmentDefinition.
    pub network: String,
    /// The interface in the pod.
    pub ifname: String,
    /// The network's plugin chain, with the pod's requests (ips, mac, cni-args) folded in.
    pub chain: NetConfList,
}

/// Read the cluster network's conf or conflist.
pub fn cluster_network(path: &Path) -> Result<NetConfList, cni::Error> {
    let bad = |why: String| {
        cni::Error::new(
            Code::InvalidConfig,
            "invalid clusterNetwork",
            format!("{}: {why}", path.display()),
        )
    };
    let text = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    NetConfList::parse(&v).map_err(bad)
}

/// Validate the guest's attachments and resolve each network through the API.
pub async fn plan(
    kube: &k8s::Client,
    guest: &Loaded,
    decided: Vec<Attachment>,
    cluster_ifname: &str,
) -> Result<Vec<Planned>, cni::Error> {
    let mut seen: HashSet<String> = HashSet::from([cluster_ifname.to_string()]);
    let mut out = Vec::with_capacity(decided.len());
    for (i, a) in decided.into_iter().enumerate() {
        let network = format!("{}/{}", a.network.namespace, a.network.name);
        let ifname = a
            .interface
            .clone()
            .unwrap_or_else(|| format!("net{}", i + 1));
        if let Err(why) = cni::validate_ifname(&ifname) {
            return Err(guest
                .invalid(format!("interface {ifname:?} for {network} {why}"))
                .into());
        }
        if !seen.insert(ifname.clone()) {
            return Err(guest
                .invalid(format!(
                    "interface {ifname:?} is used twice (network {network})"
                ))
                .into());
        }
        if a.network.namespace.is_empty() || a.network.name.is_empty() {
            return Err(guest
                .invalid(format!("network reference {network:?} is incomplete"))
                .into());
        }
        let config = kube.network(&a.network.namespace, &a.network.name).await?;
        let mut chain = NetConfList::parse(&config).map_err(|why| {
            cni::Error::from(k8s::Error::BadNetworkConfig {
                namespace: a.network.namespace.clone(),
                name: a.network.name.clone(),
                why,
            })
        })?;
        fold_requests(&mut chain, &a).map_err(|why| {
            cni::Error::from(Error::Config {
                network: network.clone(),
                why,
            })
        })?;
        out.push(Planned {
            network,
            ifname,
            chain,
        });
    }
    Ok(out)
}

/// Pass the pod's per-network requests to the chain the way Multus does: `ips` and `mac` as
/// runtimeConfig capabilities, `cni-args` as `args.cni`.
fn fold_requests(chain: &mut NetConfList, a: &Attachment) -> Result<(), String> {
    let extra_args = match &a.cni_args {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| format!("cni-args is not JSON: {e}"))?,
        ),
        None => None,
    };
    for p in &mut chain.plugins {
        let mut rc = serde_json::Map::new();
        if !a.ips.is_empty() {
            rc.insert("ips".into(), json!(a.ips));
        }
        if let Some(mac) = &a.mac {
            rc.insert("mac".into(), json!(mac));
        }
        if !rc.is_empty() {
            p.insert("runtimeConfig".into(), Value::Object(rc));
        }
        if let Some(args) = &extra_args {
            p.insert("args".into(), json!({ "cni": args }));
        }
    }
    Ok(())
}
