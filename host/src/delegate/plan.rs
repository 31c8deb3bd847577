//! From the delegation guest's answer to a validated plan: every interface name legal and
//! unique, every network resolved to its config, before anything is created.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Error;
use crate::cni;
use crate::cni::types::NetConfList;
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
pub fn cluster_network(path: &Path) -> Result<NetConfList, Error> {
    let bad = |why: String| Error::ClusterNetwork {
        path: path.to_path_buf(),
        why,
    };
    let text = crate::files::read_regular(path, cni::MAX_STDIN as u64).map_err(|e| bad(e.to_string()))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    NetConfList::parse(&v).map_err(bad)
}

/// More extra networks than this for one pod is a runaway policy, not a request.
pub const MAX_ATTACHMENTS: usize = 32;

/// Which NAD namespaces a pod may use: all (Multus' default), or its own plus the global ones.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// Any namespace.
    Off,
    /// The pod's own namespace and these.
    Namespaces(Vec<String>),
}

/// Validate the guest's attachments and resolve each network through the API.
pub async fn plan(
    kube: &k8s::Client,
    guest: &Loaded,
    decided: Vec<Attachment>,
    cluster_ifname: &str,
    pod_namespace: &str,
    isolation: &Isolation,
) -> Result<Vec<Planned>, Error> {
    if decided.len() > MAX_ATTACHMENTS {
        return Err(Error::Guest(guest.invalid(format!(
            "{} attachments for one pod; at most {MAX_ATTACHMENTS} are accepted",
            decided.len()
        ))));
    }
    // Every answer is checked before the first API read: a bad plan costs nothing.
    let mut seen: HashSet<String> = HashSet::from([cluster_ifname.to_string()]);
    let mut checked = Vec::with_capacity(decided.len());
    for (i, a) in decided.into_iter().enumerate() {
        // Validated as Kubernetes names before anything is built from them: a guest's text
        // never becomes an API path of its choosing.
        let at = k8s::ObjectRef::new(&a.network.namespace, &a.network.name).map_err(|e| {
            Error::Guest(guest.invalid(format!(
                "network reference {:?}: {e}",
                crate::guest::clamp(&format!("{}/{}", a.network.namespace, a.network.name))
            )))
        })?;
        let network = at.to_string();
        let ifname = a
            .interface
            .clone()
            .unwrap_or_else(|| format!("net{}", i + 1));
        if let Err(why) = cni::validate_ifname(&ifname) {
            return Err(Error::Guest(
                guest.invalid(format!("interface {ifname:?} for {network} {why}")),
            ));
        }
        if !seen.insert(ifname.clone()) {
            return Err(Error::Guest(guest.invalid(format!(
                "interface {ifname:?} is used twice (network {network})"
            ))));
        }
        if let Isolation::Namespaces(global) = isolation
            && a.network.namespace != pod_namespace
            && !global.contains(&a.network.namespace)
        {
            return Err(Error::Isolated {
                network,
                pod_namespace: pod_namespace.into(),
                global: global.clone(),
            });
        }
        checked.push((network, ifname, a));
    }
    let mut out = Vec::with_capacity(checked.len());
    for (network, ifname, a) in checked {
        let config = kube
            .network(&a.network.namespace, &a.network.name)
            .await
            .map_err(Error::Api)?;
        let mut chain = NetConfList::parse(&config).map_err(|why| {
            Error::Api(k8s::Error::BadNetworkConfig {
                namespace: a.network.namespace.clone(),
                name: a.network.name.clone(),
                why,
            })
        })?;
        fold_requests(&mut chain, &a).map_err(|why| Error::Config {
            network: network.clone(),
            why,
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
/// capability arguments (to the plugins that declare them), `cni-args` as `args.cni`.
fn fold_requests(chain: &mut NetConfList, a: &Attachment) -> Result<(), String> {
    let extra_args = match &a.cni_args {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| format!("cni-args is not JSON: {e}"))?,
        ),
        None => None,
    };
    let mut caps = Map::new();
    if !a.ips.is_empty() {
        caps.insert("ips".into(), json!(a.ips));
    }
    if let Some(mac) = &a.mac {
        caps.insert("mac".into(), json!(mac));
    }
    inject_capabilities(chain, &caps);
    if let Some(args) = &extra_args {
        for p in &mut chain.plugins {
            p.insert("args".into(), json!({ "cni": args }));
        }
    }
    Ok(())
}

/// Give each plugin of `chain` the capability arguments it declares, exactly as libcni's
/// `injectRuntimeConfig` does: a plugin gets, as its `runtimeConfig`, the arguments whose names
/// its `capabilities` map sets to true — replacing any `runtimeConfig` it had — and nothing
/// when none apply. Used for the runtime's arguments on the cluster network (portMappings,
/// bandwidth, ips, mac, …) and for a pod's per-network requests on extra networks.
pub fn inject_capabilities(chain: &mut NetConfList, args: &Map<String, Value>) {
    for p in &mut chain.plugins {
        let declared = p.get("capabilities").and_then(Value::as_object);
        let rc: Map<String, Value> = args
            .iter()
            .filter(|(k, _)| {
                declared.is_some_and(|d| d.get(k.as_str()) == Some(&Value::Bool(true)))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rc.is_empty() {
            p.insert("runtimeConfig".into(), Value::Object(rc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_reach_only_the_plugins_that_declare_them() {
        let mut chain = NetConfList::parse(&json!({"cniVersion":"1.1.0","name":"n","plugins":[
            {"type":"bridge","runtimeConfig":{"stale":1}},
            {"type":"portmap","capabilities":{"portMappings":true}},
            {"type":"tuning","capabilities":{"mac":true,"ips":false}}]}))
        .unwrap();
        let args = json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
            "mac":"02:00:00:00:00:01","ips":["10.0.0.5/24"]});
        inject_capabilities(&mut chain, args.as_object().unwrap());
        assert_eq!(chain.plugins[0]["runtimeConfig"], json!({"stale":1}));
        assert_eq!(
            chain.plugins[1]["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
        );
        assert_eq!(
            chain.plugins[2]["runtimeConfig"],
            json!({"mac":"02:00:00:00:00:01"})
        );
    }
}
