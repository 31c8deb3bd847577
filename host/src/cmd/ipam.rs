//! wasmcni as an IPAM plugin: exec'd by another plugin (the reference macvlan, bridge, a
//! delegate of Multus) for `"ipam": {"type": "whereabouts"}` or `"type": "wasmcni"`, with the
//! binary installed in CNI_PATH under that name. A node can thus swap the whereabouts binary for
//! wasmcni and keep its NADs, its flat file and its IPPools; the allocation is the in-process
//! IPAM's ([`ipam::allocate_all`]), so both paths give the same addresses in the same objects.
//!
//! The config is read as whereabouts reads it: the `ipam` keys, then its flat file's
//! (`ipam::IpamConf::load`); the identity is `kubernetes.kubeconfig` and the IPPools live in that
//! kubeconfig's context namespace (kube-system when it names none), as in whereabouts.
//!
//! Where it differs from whereabouts, on purpose:
//! - DEL that cannot reach the API server fails (code 11) so the runtime retries; whereabouts
//!   answers 0 and leaves the address recorded for ever.
//! - CHECK verifies the allocation (whereabouts answers "not implemented").
//! - `ipam.policy` is refused: policy guests run under the wasmcni meta-plugin, which holds the
//!   node's pins; this mode chooses as whereabouts does, lowest free.
//! - GC releases nothing, as whereabouts' (which has none): a whereabouts IPPool is shared by
//!   every network with the same range and its entries do not say which network they belong
//!   to, so one network's valid-attachments cannot tell another's allocations from leaks. The
//!   reconciler frees what no pod holds.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::cni::types::CniResult;
use crate::cni::{Code, Command, Error, Request};
use crate::ipam::{self, IpamConf, LowestFree, Owner};
use crate::k8s::{self, ObjectRef};
use crate::node::Node;

/// Whether `conf` is a config wasmcni reads as an IPAM plugin: another plugin's config whose
/// `ipam.type` is one of the in-process IPAM's.
pub(super) fn is_ipam_call(conf: &Value) -> bool {
    let kind = conf.get("type").and_then(Value::as_str);
    let ipam = conf
        .get("ipam")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str);
    kind != Some("wasmcni") && ipam.is_some_and(ipam::is_builtin)
}

/// The parts of the parent plugin's config an IPAM plugin reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Net {
    #[serde(default)]
    cni_version: String,
    ipam: Value,
    #[serde(default)]
    prev_result: Option<Value>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
}

/// `runtimeConfig.ips` (capability `ips`): the addresses to allocate exactly.
#[derive(Deserialize, Default)]
struct RuntimeConfig {
    #[serde(default)]
    ips: Vec<String>,
}

/// A prepared IPAM-plugin call.
pub(super) struct IpamCall {
    version: String,
    conf: IpamConf,
    requested: Vec<IpAddr>,
    prev: Option<CniResult>,
}

/// Everything about the call that can be checked before the API is touched.
pub(super) fn prepare(req: &Request, conf: &Value) -> Result<IpamCall, Error> {
    let invalid = |what: &str, why: String| Error::new(Code::InvalidConfig, what, why);
    let mut net: Net = serde_json::from_value(conf.clone())
        .map_err(|e| invalid("invalid network config", e.to_string()))?;
    net.cni_version = crate::cni::declared_version(&net.cni_version).to_string();
    if !crate::cni::supports(&net.cni_version) {
        return Err(Error::new(
            Code::IncompatibleVersion,
            "unsupported cniVersion",
            format!(
                "{:?} is not one of {}",
                net.cni_version,
                crate::cni::SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    super::allowed_at(req.command, &net.cni_version)?;
    let ic = IpamConf::load(&net.ipam)
        .and_then(|ic| ic.with_cni_args(req.args.ip.as_deref(), req.args.gateway.as_deref()))
        .map_err(Error::from)?;
    if ic.policy.is_some() {
        return Err(invalid(
            "ipam.policy is not supported here",
            "policy guests run when wasmcni is the meta-plugin (the node's pins are in its \
             config); as an IPAM plugin wasmcni picks the lowest free address, as whereabouts"
                .into(),
        ));
    }
    let requested = net
        .runtime_config
        .ips
        .iter()
        .map(|s| {
            crate::delegate::requested_ip(s)
                .map_err(|why| invalid("invalid runtimeConfig.ips", why))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prev = super::prev_result(net.prev_result.as_ref(), &net.cni_version)?;
    Ok(IpamCall {
        version: net.cni_version,
        conf: ic,
        requested,
        prev,
    })
}

/// Run the verb.
pub(super) async fn run(
    node: &Arc<Node>,
    req: &Request,
    call: IpamCall,
) -> Result<Option<Value>, Error> {
    let ic = &call.conf;
    if req.command == Command::Gc {
        tracing::debug!("GC as an IPAM plugin releases nothing (see cmd::ipam)");
        return Ok(None);
    }
    let kubeconfig = ic.kubeconfig.as_deref().ok_or_else(|| {
        Error::new(
            Code::InvalidConfig,
            "no kubeconfig for the IPAM plugin",
            match &ic.flat_file {
                Some(f) => format!(
                    "neither ipam.kubernetes.kubeconfig nor the whereabouts flat file {} names one",
                    f.display()
                ),
                None => format!(
                    "set ipam.kubernetes.kubeconfig, or write it in a whereabouts flat file ({})",
                    ipam::FLAT_PATHS.join(", ")
                ),
            },
        )
    })?;
    let kube = node.kube(kubeconfig).await?;
    let ns = k8s::Client::context_namespace(kubeconfig)?.unwrap_or_else(|| "kube-system".into());
    if req.command == Command::Status {
        return kube
            .probe_ip_pools(&ns)
            .await
            .map(|()| None)
            .map_err(|e| Error::new(Code::NotAvailable, "IPPools unreachable", e.to_string()));
    }
    let owner = owner(req)?;
    match req.command {
        Command::Add => {
            let blocks = node.blocks(kubeconfig);
            let store = ipam::Cached::new(&kube, &blocks);
            let node = node_name();
            let leases =
                ipam::allocate_all(&store, ic, &ns, &owner, &node, &call.requested, &LowestFree)
                    .await?;
            Ok(Some(ipam::result(ic, leases).to_version(&call.version)))
        }
        Command::Del => {
            let hints: Vec<_> = call
                .prev
                .iter()
                .flat_map(|r| r.ips.iter().map(|i| i.address.ip()))
                .collect();
            let blocks = node.blocks(kubeconfig);
            let store = ipam::Cached::new(&kube, &blocks);
            ipam::release_all(&store, ic, &ns, &owner, &node_name(), &hints).await?;
            Ok(None)
        }
        Command::Check => {
            let prev = call.prev.ok_or_else(|| {
                Error::new(
                    Code::InvalidConfig,
                    "CHECK needs prevResult",
                    "the runtime passes the ADD result as prevResult",
                )
            })?;
            let addrs: Vec<_> = prev.ips.iter().map(|i| i.address).collect();
            match ipam::verify(&kube, ic, &ns, &owner, &addrs).await? {
                Ok(()) => Ok(None),
                Err(why) => Err(Error::new(Code::Drift, "CHECK found drift", why)),
            }
        }
        Command::Version | Command::Status | Command::Gc => unreachable!("answered above"),
    }
}

/// Who the addresses are for: the container and interface, and the pod from CNI_ARGS (validated
/// when present; whereabouts records `/` without them).
fn owner(req: &Request) -> Result<Owner, Error> {
    let podref = match (&req.args.pod_namespace, &req.args.pod_name) {
        (Some(ns), Some(name)) => ObjectRef::new(ns, name)
            .map_err(|e| Error::new(Code::InvalidEnv, "invalid pod in CNI_ARGS", e.to_string()))?
            .to_string(),
        _ => "/".to_string(),
    };
    Ok(Owner {
        container_id: req.container_id.to_string(),
        ifname: req.ifname.to_string(),
        podref,
    })
}

/// The node this plugin runs on, as whereabouts finds it: `NODENAME`, else `/etc/hostname`
/// (else the kernel's host name). Only a range in blocks uses it: the blocks a node claims.
fn node_name() -> String {
    let trimmed = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    std::env::var("NODENAME")
        .ok()
        .and_then(trimmed)
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .and_then(trimmed)
        })
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .and_then(trimmed)
        })
        .unwrap_or_default()
}
