//! The meta-plugin: resolving a pod's attachments, running each attachment's plugin chain
//! (built-in ipvlan/macvlan in-process, anything else exec'd from CNI_PATH) and the delegate
//! cache that DEL relies on.

mod builtin;
pub mod cache;
pub mod devinfo;
mod exec;
pub mod networks;
mod plan;
pub mod routes;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::cni::types::{CniResult, NetConfList};
use crate::cni::{CniArgs, Command};
use crate::config::GuestRef;
use crate::config::PluginConf;
use crate::guest::{Guests, Loaded, Origin, Pins, Pod};
use crate::node::Node;
use crate::{ipam, k8s, netlink, netns};

pub use builtin::requested_ip;
pub use plan::{Isolation, MAX_ATTACHMENTS, Planned, Sandbox, inject_capabilities, plan};

/// Why running a delegate failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plugin binary is not in CNI_PATH. Not retryable: install it.
    #[error("plugin {plugin:?} not found in CNI_PATH ({path})")]
    NotFound {
        /// The plugin type.
        plugin: String,
        /// CNI_PATH as searched.
        path: String,
    },
    /// The plugin could not be run.
    #[error("running plugin {plugin:?}")]
    Exec {
        /// The plugin type.
        plugin: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plugin printed something that is not a CNI result.
    #[error("plugin {plugin:?} printed an invalid result: {why}")]
    BadOutput {
        /// The plugin type.
        plugin: String,
        /// What is wrong.
        why: String,
    },
    /// The plugin returned a CNI error.
    #[error("network {network}, {step}: {msg}")]
    Plugin {
        /// The network.
        network: String,
        /// Which plugin and verb.
        step: String,
        /// Its code.
        code: u32,
        /// Its msg.
        msg: String,
        /// Its details.
        details: String,
    },
    /// The cluster network's conf/conflist cannot be read or parsed. Not retryable: fix the
    /// node's config.
    #[error("invalid clusterNetwork {path}: {why}")]
    ClusterNetwork {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A network had to be read from the API server, and there is no client (DEL when the
    /// kubeconfig is unusable). Retryable.
    #[error("cannot read {what}: no connection to the API server")]
    NoApi {
        /// What was to be read.
        what: String,
    },
    /// Under `namespaceIsolation`, the pod asked for a NAD of a namespace it may not use. A
    /// decision, not a failure.
    #[error("network {network} is not allowed for pods in namespace {pod_namespace}")]
    Isolated {
        /// `namespace/name` of the NAD.
        network: String,
        /// The pod's namespace.
        pod_namespace: String,
        /// The namespaces any pod may use.
        global: Vec<String>,
    },
    /// A network's config is unusable.
    #[error("network {network}: {why}")]
    Config {
        /// The network.
        network: String,
        /// What is wrong.
        why: String,
    },
    /// The delegate cache could not be written or removed.
    #[error("delegate cache {path}")]
    Cache {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// CHECK found the attachment differs from what ADD made.
    #[error("network {network}, {ifname}: {what}")]
    Drift {
        /// The network.
        network: String,
        /// The interface in the pod.
        ifname: String,
        /// What differs: expected and found.
        what: String,
    },
    /// IPAM failed (its proposer is a guest).
    #[error(transparent)]
    Ipam(ipam::Error<crate::guest::Error>),
    /// A guest could not be loaded.
    #[error(transparent)]
    Guest(crate::guest::Error),
    /// The admin's pins could not be read.
    #[error(transparent)]
    Api(k8s::Error),
    /// A netlink operation failed.
    #[error(transparent)]
    Netlink(netlink::Error),
    /// The pod's network namespace could not be entered.
    #[error(transparent)]
    Netns(netns::Error),
}

impl From<ipam::Error> for Error {
    fn from(e: ipam::Error) -> Self {
        Error::Ipam(e.widen())
    }
}

impl From<ipam::Error<crate::guest::Error>> for Error {
    fn from(e: ipam::Error<crate::guest::Error>) -> Self {
        Error::Ipam(e)
    }
}

impl Error {
    /// A policy guest failed (missing, unpinned, tampered, trapped, or answered something the
    /// host rejects) — as opposed to refusing, which is a decision.
    pub fn is_guest_failure(&self) -> bool {
        use crate::guest::Error as G;
        let g = match self {
            Error::Guest(g) | Error::Ipam(ipam::Error::Proposer(g)) => g,
            // The host refused what the policy proposed: the policy is broken.
            Error::Ipam(ipam::Error::InvalidProposal { .. }) => return true,
            _ => return false,
        };
        !matches!(g, G::Denied { .. })
    }
}

/// What every delegate of one CNI call shares: the call's own state, and the process's
/// [`Node`] (engines, API clients) it borrows.
pub struct Call {
    /// The process-lifetime state.
    pub node: Arc<Node>,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: Option<PathBuf>,
    /// CNI_ARGS, passed to exec'd delegates unchanged.
    pub args: CniArgs,
    /// CNI_PATH.
    pub path: Vec<PathBuf>,
    /// The pod, as the guests see it.
    pub pod: Pod,
    /// The node's name, as guests see it.
    pub node_name: String,
    /// The API client (IPPools).
    pub kube: Option<k8s::Client>,
    /// wasmcni's config.
    pub conf: PluginConf,
    /// The admin's guest pins, read at most once per call and only if a guest needs them.
    pub pins: tokio::sync::OnceCell<Pins>,
    /// Notes for the pod's network-status, by interface (e.g. a policy fallback).
    pub notes: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// CNI_ARGS of one interface's plugins where they differ from the call's (Multus' `MAC=`
    /// and `IP=` for a network selection's `mac` and `ips`), by interface.
    args_by_ifname: std::sync::Mutex<std::collections::BTreeMap<String, CniArgs>>,
}

impl Call {
    /// The shared context of one CNI call on `node`.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one CNI input; a builder would hide which are required"
    )]
    pub fn new(
        node: Arc<Node>,
        container_id: String,
        netns: Option<PathBuf>,
        args: CniArgs,
        path: Vec<PathBuf>,
        pod: Pod,
        kube: Option<k8s::Client>,
        conf: PluginConf,
    ) -> Self {
        Call {
            node,
            container_id,
            netns,
            args,
            path,
            pod,
            node_name: conf.node(),
            kube,
            conf,
            pins: tokio::sync::OnceCell::new(),
            notes: Default::default(),
            args_by_ifname: Default::default(),
        }
    }

    /// The guest engine for this call's config, started on first use: DEL, CHECK and GC never
    /// run a guest and so never pay for an engine and its epoch thread.
    pub fn guests(&self) -> Result<Arc<Guests>, Error> {
        self.node
            .guests(&self.conf.guest_cache_dir, self.conf.guest_timeout_ms)
            .map_err(Error::Guest)
    }

    /// `namespace/name` of the pod.
    pub fn podref(&self) -> String {
        format!("{}/{}", self.pod.namespace, self.pod.name)
    }

    /// Load the guest `r` names, reading the admin's pins first when it is not built in.
    pub async fn guest(&self, r: &GuestRef, origin: Origin) -> Result<Arc<Loaded>, Error> {
        static NONE: std::sync::LazyLock<Pins> = std::sync::LazyLock::new(Pins::default);
        let pins = if crate::guest::needs_pins(r) {
            self.pins().await?
        } else {
            &NONE
        };
        self.guests()?.load(r, origin, pins).map_err(Error::Guest)
    }

    async fn pins(&self) -> Result<&Pins, Error> {
        self.pins
            .get_or_try_init(|| async {
                let Some(kube) = &self.kube else {
                    return Ok(Pins::default());
                };
                let at =
                    k8s::ObjectRef::parse(&self.conf.guest_pins, "kube-system").map_err(|e| {
                        Error::Config {
                            network: self.conf.name.clone(),
                            why: format!("guestPins: {e}"),
                        }
                    })?;
                let (data, binary) = kube
                    .config_map(at.namespace(), at.name())
                    .await
                    .map_err(Error::Api)?;
                Ok(Pins::parse(&data, &binary))
            })
            .await
    }

    /// Whether the admin lets `network` fall back to the built-in policy when its own fails.
    pub async fn fails_open(&self, network: &str) -> bool {
        self.pins().await.is_ok_and(|p| p.fails_open(network))
    }

    /// Record a note for the pod's network-status entry of `ifname`.
    pub fn note(&self, ifname: &str, note: String) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.insert(ifname.to_string(), note);
        }
    }

    /// The note recorded for `ifname`, if any.
    pub fn note_for(&self, ifname: &str) -> Option<String> {
        self.notes.lock().ok().and_then(|n| n.get(ifname).cloned())
    }

    /// Give `ifname`'s plugins the call's CNI_ARGS with `pairs` appended.
    pub fn extend_args(&self, ifname: &str, pairs: &[(String, String)]) {
        if pairs.is_empty() {
            return;
        }
        let args = self.args.with(pairs);
        if let Ok(mut m) = self.args_by_ifname.lock() {
            m.insert(ifname.to_string(), args);
        }
    }

    /// The CNI_ARGS of `ifname`'s plugins.
    pub fn args_for(&self, ifname: &str) -> CniArgs {
        self.args_by_ifname
            .lock()
            .ok()
            .and_then(|m| m.get(ifname).cloned())
            .unwrap_or_else(|| self.args.clone())
    }
}

/// The master interfaces the built-in plugins of `chain` create links on.
pub fn masters(chain: &NetConfList) -> Vec<String> {
    chain
        .plugins
        .iter()
        .filter(|p| {
            p.get("type")
                .and_then(|t| t.as_str())
                .is_some_and(builtin::handles)
        })
        .filter_map(|p| p.get("master").and_then(|m| m.as_str()).map(str::to_string))
        .collect()
}

/// Run `chain`'s ADD for `ifname`: each plugin in order, each given the previous result.
pub async fn add_chain(
    call: &Call,
    network: &str,
    chain: &NetConfList,
    ifname: &str,
) -> Result<CniResult, Error> {
    let mut prev: Option<CniResult> = None;
    for i in 0..chain.plugins.len() {
        let conf = chain.plugin_conf(i, prev.as_ref());
        let result = if builtin::handles(chain.plugin_type(i)) {
            builtin::add(call, network, &conf, ifname).await?
        } else {
            exec::run(
                call,
                Command::Add,
                network,
                chain.plugin_type(i),
                &conf,
                ifname,
            )
            .await?
            .ok_or_else(|| Error::BadOutput {
                plugin: chain.plugin_type(i).into(),
                why: "ADD printed no result".into(),
            })?
        };
        prev = Some(result);
    }
    prev.ok_or_else(|| Error::Config {
        network: network.into(),
        why: "no plugins".into(),
    })
}

/// Run `chain`'s DEL for `ifname` in reverse order. Every plugin is tried; the first error is
/// returned after all have run, so one failure never stops the rest of the cleanup.
///
/// `prev` (the ADD result) reaches an exec'd plugin only at 0.4.0 and later, where libcni's
/// `DelNetworkList` hands its cached result on; the built-in plugins get it at every version
/// (it tells them which addresses to free without a search).
pub async fn del_chain(
    call: &Call,
    network: &str,
    chain: &NetConfList,
    ifname: &str,
    prev: Option<&CniResult>,
) -> Result<(), Error> {
    let mut first_err = None;
    let cached = crate::cni::at_least(&chain.cni_version, "0.4.0");
    for i in (0..chain.plugins.len()).rev() {
        let res = if builtin::handles(chain.plugin_type(i)) {
            let conf = chain.plugin_conf(i, prev);
            builtin::del(call, network, &conf, ifname).await
        } else {
            let conf = chain.plugin_conf(i, prev.filter(|_| cached));
            exec::run(
                call,
                Command::Del,
                network,
                chain.plugin_type(i),
                &conf,
                ifname,
            )
            .await
            .map(drop)
        };
        if let Err(e) = res {
            tracing::error!("DEL {network} ({}) on {ifname}: {e}", chain.plugin_type(i));
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Run `chain`'s CHECK for `ifname` with the result ADD produced.
///
/// CHECK came with 0.4.0: below it an exec'd plugin is not called (libcni refuses CHECK for
/// such a list without calling it, and a 0.3.x plugin would answer "config version does not
/// allow CHECK"), so an old NAD does not fail the pod's CHECK; the built-in plugins check at
/// every version.
pub async fn check_chain(
    call: &Call,
    network: &str,
    chain: &NetConfList,
    ifname: &str,
    prev: &CniResult,
) -> Result<(), Error> {
    let defined = crate::cni::at_least(&chain.cni_version, "0.4.0");
    for i in 0..chain.plugins.len() {
        let conf = chain.plugin_conf(i, Some(prev));
        if builtin::handles(chain.plugin_type(i)) {
            builtin::check(call, network, &conf, ifname).await?;
        } else if !defined {
            tracing::debug!(
                "CHECK {network} on {ifname}: {} not called (cniVersion {:?} predates CHECK)",
                chain.plugin_type(i),
                chain.cni_version
            );
        } else {
            exec::run(
                call,
                Command::Check,
                network,
                chain.plugin_type(i),
                &conf,
                ifname,
            )
            .await?;
        }
    }
    Ok(())
}

/// Ask `chain`'s plugins whether they are ready (STATUS), as Multus asks the cluster network's
/// through libcni's `GetStatusNetworkList`: nothing below 1.1.0 (STATUS came with it), else
/// each exec'd plugin in order, the first that is not ready answering. The built-in plugins
/// are not asked: STATUS checks what they need (their masters) itself.
pub async fn status_chain(call: &Call, network: &str, chain: &NetConfList) -> Result<(), Error> {
    if !crate::cni::at_least(&chain.cni_version, "1.1.0") {
        return Ok(());
    }
    for i in 0..chain.plugins.len() {
        if !builtin::handles(chain.plugin_type(i)) {
            let conf = chain.plugin_conf(i, None);
            exec::run(
                call,
                Command::Status,
                network,
                chain.plugin_type(i),
                &conf,
                "",
            )
            .await?;
        }
    }
    Ok(())
}

/// One entry of the `k8s.v1.cni.cncf.io/network-status` annotation, as Multus writes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NetworkStatus {
    /// The network: the cluster network's name, or `namespace/name` of the NAD.
    pub name: String,
    /// The interface in the pod.
    pub interface: String,
    /// Its addresses.
    pub ips: Vec<String>,
    /// Its MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its MTU, when the result gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The gateways of the result's default routes (Multus' `gateway`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
    /// Whether this is the pod's default network.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// DNS settings (Multus always writes the key).
    pub dns: serde_json::Value,
    /// What the plugin wrote in the attachment's device-info file (see [`devinfo`]).
    #[serde(rename = "device-info", skip_serializing_if = "Option::is_none")]
    pub device_info: Option<devinfo::DeviceInfo>,
    /// wasmcni's note on how the attachment was made when it departs from the config (a
    /// policy that failed open).
    #[serde(rename = "wasmcni-note", skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl NetworkStatus {
    /// The status of `ifname` from `result`.
    pub fn from_result(name: &str, ifname: &str, result: &CniResult, default: bool) -> Self {
        NetworkStatus {
            name: name.into(),
            interface: ifname.into(),
            ips: result.addresses_of(ifname),
            mac: result.mac_of(ifname).map(str::to_string),
            mtu: result
                .interfaces
                .iter()
                .find(|i| i.name == ifname)
                .and_then(|i| i.mtu)
                .filter(|m| *m > 0),
            gateway: result
                .routes
                .iter()
                .filter(|r| r.dst.prefix() == 0)
                .filter_map(|r| r.gw.map(|g| g.to_string()))
                .collect(),
            default,
            dns: serde_json::to_value(&result.dns).unwrap_or_else(|_| serde_json::json!({})),
            device_info: None,
            note: None,
        }
    }
}
