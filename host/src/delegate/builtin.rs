//! The built-in main plugins: ipvlan and macvlan in-process, with whereabouts-compatible IPAM
//! (or an exec'd IPAM plugin). Same config keys and results as the reference plugins.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

use super::{Call, Error, exec};
use crate::cni::types::{CniResult, Dns, Interface, IpConfig};
use crate::cni::{CniArgs, Command};
use crate::guest::{IpamRequest, Origin, Policy};
use crate::ipam::{self, IpamConf, LowestFree, Owner};
use crate::netlink::{self, LinkKind, verify};
use crate::netns::{self, Netns, Sysctl};

/// Whether plugin type `t` runs in-process.
pub fn handles(t: &str) -> bool {
    matches!(t, "ipvlan" | "macvlan")
}

/// The reference ipvlan/macvlan plugins' keys.
#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(rename = "type")]
    kind: String,
    master: Option<String>,
    mode: Option<String>,
    mtu: Option<u32>,
    #[serde(default)]
    ipam: Option<Value>,
    /// `mac`: the link's MAC (macvlan); the capability argument wins over it.
    #[serde(default)]
    mac: Option<String>,
    /// `dns`: what the result reports (the reference plugins report this, not IPAM's).
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default, rename = "runtimeConfig")]
    runtime_config: RuntimeConf,
}

/// The capability arguments the built-ins honour (given only when the config declares them).
#[derive(Debug, Default, Deserialize)]
struct RuntimeConf {
    /// `mac`: the link's MAC (macvlan; an ipvlan link has its master's).
    #[serde(default)]
    mac: Option<String>,
    /// `ips`: the addresses the pod asked for (the in-process IPAM allocates exactly these;
    /// an exec'd IPAM reads them itself).
    #[serde(default)]
    ips: Vec<String>,
}

struct Parsed {
    kind: LinkKind,
    master: String,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    ips: Vec<std::net::IpAddr>,
    dns: Dns,
    ipam: Ipam,
}

enum Ipam {
    None,
    InProcess(Box<IpamConf>),
    Exec(String),
}

/// `conf` as ADD, DEL and CHECK read it; `args` are the call's CNI_ARGS (whereabouts reads
/// static addresses from their `IP` and `GATEWAY`).
fn parse(network: &str, conf: &Value, args: &CniArgs) -> Result<Parsed, Error> {
    let bad = |why: String| Error::Config {
        network: network.into(),
        why,
    };
    let c: Conf = serde_json::from_value(conf.clone()).map_err(|e| bad(e.to_string()))?;
    let kind = LinkKind::parse(&c.kind, c.mode.as_deref()).map_err(bad)?;
    // The reference plugins fall back to the default-route interface; we require it explicitly:
    // guessing the master on a multi-homed node attaches pods to the wrong network.
    let master = c
        .master
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("\"master\" is required".into()))?;
    let ipam = match &c.ipam {
        None => Ipam::None,
        Some(v) if v.as_object().is_some_and(|o| o.is_empty()) => Ipam::None,
        Some(v) => match v.get("type").and_then(Value::as_str) {
            Some(t) if ipam::is_builtin(t) => {
                // An address both requested by capability (allocated from the range) and in
                // CNI_ARGS IP (Multus passes the same request both ways) is the request alone.
                let static_ips = args.ip.as_deref().map(|list| {
                    list.split(',')
                        .filter(|i| !c.runtime_config.ips.iter().any(|r| r == i.trim()))
                        .collect::<Vec<_>>()
                        .join(",")
                });
                let ic = IpamConf::load(v)
                    .and_then(|ic| ic.with_cni_args(static_ips.as_deref(), args.gateway.as_deref()))
                    .map_err(Error::from)?;
                if let Some(k) = &ic.kubeconfig {
                    // Documented (README key table): the node's identity writes the pools.
                    tracing::info!(
                        "network {network}: ipam.kubernetes.kubeconfig {} has no effect under \
                         the wasmcni meta-plugin (the node config's kubeconfig is used)",
                        k.display()
                    );
                }
                Ipam::InProcess(Box::new(ic))
            }
            Some(t) if !t.is_empty() => Ipam::Exec(t.to_string()),
            _ => return Err(bad("ipam.type is required".into())),
        },
    };
    // As the reference macvlan: the capability argument, else CNI_ARGS' MAC, else the key
    // (an ipvlan link has its master's MAC, and the reference ipvlan ignores CNI_ARGS' MAC).
    let from_args = args
        .mac
        .as_ref()
        .filter(|_| !matches!(kind, LinkKind::Ipvlan(_)));
    let mac = match c
        .runtime_config
        .mac
        .as_ref()
        .or(from_args)
        .or(c.mac.as_ref())
    {
        None => None,
        Some(_) if matches!(kind, LinkKind::Ipvlan(_)) => {
            return Err(bad(
                "mac: an ipvlan link always has its master's MAC (drop \"mac\" and the \"mac\" capability)"
                    .into(),
            ));
        }
        Some(m) => Some(parse_mac(m).map_err(|why| bad(format!("mac: {why}")))?),
    };
    let ips = c
        .runtime_config
        .ips
        .iter()
        .map(|s| requested_ip(s).map_err(|why| bad(format!("runtimeConfig.{why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if matches!(kind, LinkKind::Ipvlan(_)) && matches!(ipam, Ipam::None) {
        return Err(bad(
            "ipvlan needs an ipam section (an ipvlan link has no address of its own)".into(),
        ));
    }
    Ok(Parsed {
        kind,
        master,
        mtu: c.mtu,
        mac,
        ips,
        dns: c.dns.unwrap_or_default(),
        ipam,
    })
}

/// Check `conf` (a built-in plugin's config, with its capability arguments) as ADD will read
/// it — keys, mode, master named, MAC, requested addresses, the in-process IPAM's range — without
/// touching the kernel or the API.
pub fn validate(network: &str, conf: &Value) -> Result<(), Error> {
    parse(network, conf, &CniArgs::default()).map(drop)
}

/// The pod-side sysctls the reference plugins set when they configure addresses: gratuitous ARP / unsolicited NA when the
/// link comes up or changes address (best effort, as theirs), and for IPv6 addresses IPv6
/// enabled on the link and `lo` and addresses kept when the link goes down.
fn sysctls(ns: &Netns, ifname: &str, addrs: &[IpNetwork]) -> Result<(), netns::Error> {
    let set = |key: String, value, required| Sysctl {
        key,
        value,
        required,
    };
    let mut values = vec![
        set(format!("net/ipv4/conf/{ifname}/arp_notify"), "1", false),
        set(format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1", false),
    ];
    if addrs.iter().any(IpNetwork::is_ipv6) {
        values.extend([
            set("net/ipv6/conf/lo/disable_ipv6".into(), "0", true),
            set(format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0", true),
            set(
                format!("net/ipv6/conf/{ifname}/keep_addr_on_down"),
                "1",
                true,
            ),
        ]);
    }
    ns.set_sysctls(values)
}

/// A requested address (`ips` of the network selection, capability `ips`): an address, or an
/// address with a prefix length, as Multus and the reference plugins take it.
pub fn requested_ip(s: &str) -> Result<std::net::IpAddr, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    match (addr.parse(), prefix.map(str::parse::<u8>)) {
        (Ok(ip), None | Some(Ok(_))) => Ok(ip),
        _ => Err(format!(
            "ips: {s:?} is not an IP address (or address/prefix)"
        )),
    }
}

/// `aa:bb:cc:dd:ee:ff` → bytes; a unicast address only (a multicast MAC breaks the link).
pub(super) fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    for (b, p) in mac.iter_mut().zip(&parts) {
        *b = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| p.len() == 2)
            .ok_or_else(|| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("{s:?} is a multicast address"));
    }
    Ok(mac)
}

/// The API client the in-process IPAM needs (its IPPools live on the API server).
fn kube<'a>(call: &'a Call, network: &str) -> Result<&'a crate::k8s::Client, Error> {
    call.kube.as_ref().ok_or_else(|| Error::Config {
        network: network.into(),
        why: "no Kubernetes client".into(),
    })
}

fn owner(call: &Call, ifname: &str) -> Owner {
    Owner {
        container_id: call.container_id.clone(),
        ifname: ifname.into(),
        podref: call.podref(),
    }
}

/// Allocate, create the link in the pod, configure it. Undone in reverse on any failure.
pub async fn add(
    call: &Call,
    network: &str,
    conf: &Value,
    ifname: &str,
) -> Result<CniResult, Error> {
    let p = parse(network, conf, &call.args_for(ifname))?;
    let netns_path = call.netns.clone().ok_or_else(|| Error::Config {
        network: network.into(),
        why: "CNI_NETNS is required".into(),
    })?;
    let ns = Netns::open(&netns_path).map_err(Error::Netns)?;

    // 1. An address (before the link: a full range must not leave a link behind).
    let ip = allocate(call, network, &p, conf, ifname).await?;
    // 2. The link, straight into the pod; 3. its addresses and routes.
    let made = async {
        let host = netns::host_handle().map_err(Error::Netns)?;
        netlink::create(&host, p.kind, &p.master, p.mtu, p.mac, ifname, &ns)
            .await
            .map_err(Error::Netlink)?;
        let inside = ns.handle().map_err(Error::Netns)?;
        let addrs: Vec<IpNetwork> = ip.ips.iter().map(|i| i.address).collect();
        let gateways: Vec<_> = ip.ips.iter().filter_map(|i| i.gateway).collect();
        let mac = async {
            if !matches!(p.ipam, Ipam::None) {
                sysctls(&ns, ifname, &addrs)?;
            }
            netlink::configure(
                &inside,
                ifname,
                &addrs,
                &ip.routes,
                &ip.route_ext,
                &gateways,
            )
            .await
        }
        .await;
        if mac.is_err() {
            let _ = netlink::delete(&inside, ifname).await;
        }
        mac.map_err(Error::Netlink)
    }
    .await;
    let mac = match made {
        Ok(mac) => mac,
        Err(e) => {
            if let Err(undo) = release(call, network, &p.ipam, conf, ifname).await {
                tracing::error!(
                    "rollback of {network} on {ifname}: releasing its address failed: {undo}"
                );
            }
            return Err(e);
        }
    };
    let mut result = ip;
    // The plugin's `dns`, as the reference macvlan and ipvlan set it: they replace what their
    // IPAM returned (whereabouts' `ipam.dns` included) with their own, empty or not.
    result.dns = p.dns.clone();
    result.interfaces = vec![Interface {
        name: ifname.into(),
        mac,
        mtu: None,
        sandbox: netns_path.display().to_string(),
    }];
    for i in &mut result.ips {
        i.interface = Some(0);
    }
    Ok(result)
}

/// Release the address and delete the link. Everything absent is success; every step runs.
pub async fn del(call: &Call, network: &str, conf: &Value, ifname: &str) -> Result<(), Error> {
    let p = parse(network, conf, &call.args_for(ifname))?;
    let released = release(call, network, &p.ipam, conf, ifname).await;
    let deleted = match &call.netns {
        Some(path) => match Netns::open(path) {
            Ok(ns) => match ns.handle() {
                Ok(h) => netlink::delete(&h, ifname).await.map_err(Error::Netlink),
                Err(e) => Err(Error::Netns(e)),
            },
            // The namespace is gone, and the link with it.
            Err(_) => Ok(()),
        },
        None => Ok(()),
    };
    released.and(deleted)
}

/// CHECK: the attachment is still what ADD made, as its result (`prevResult`) says — the link
/// in the pod with its kind, mode, master and MAC, every address and route, and the address
/// still recorded for this container in the IPPool (or the exec'd IPAM's own CHECK). The first
/// difference is reported as drift, naming what was expected and what is there.
pub async fn check(call: &Call, network: &str, conf: &Value, ifname: &str) -> Result<(), Error> {
    let p = parse(network, conf, &call.args_for(ifname))?;
    let drift = |what: String| Error::Drift {
        network: network.into(),
        ifname: ifname.into(),
        what,
    };
    let version = conf
        .get("cniVersion")
        .and_then(Value::as_str)
        .map(crate::cni::declared_version)
        .unwrap_or("0.1.0");
    let prev = match conf.get("prevResult") {
        Some(v) => CniResult::from_prev_result(v, version).map_err(|why| Error::Config {
            network: network.into(),
            why: format!("prevResult: {why}"),
        })?,
        None => {
            return Err(Error::Config {
                network: network.into(),
                why: "CHECK needs the ADD result as prevResult".into(),
            });
        }
    };
    let path = call.netns.clone().ok_or_else(|| Error::Config {
        network: network.into(),
        why: "CNI_NETNS is required".into(),
    })?;
    let sandbox = path.display().to_string();
    let (idx, iface) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == ifname && !i.sandbox.is_empty())
        .ok_or_else(|| drift(format!("prevResult has no interface {ifname} in a sandbox")))?;
    if iface.sandbox != sandbox {
        return Err(drift(format!(
            "prevResult puts {ifname} in {}, but CNI_NETNS is {sandbox}",
            iface.sandbox
        )));
    }
    let ns = Netns::open(&path).map_err(Error::Netns)?;
    let inside = ns.handle().map_err(Error::Netns)?;
    let host = netns::host_handle().map_err(Error::Netns)?;
    let mine: Vec<&IpConfig> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none_or(|i| i == idx))
        .collect();
    let want = verify::Expected {
        kind: p.kind,
        master: &p.master,
        mac: &iface.mac,
        mtu: p.mtu,
        addrs: mine.iter().map(|i| i.address).collect(),
        routes: &prev.routes,
        gateways: mine.iter().filter_map(|i| i.gateway).collect(),
    };
    verify::attachment(&host, &inside, ifname, &sandbox, &want)
        .await
        .map_err(Error::Netlink)?
        .map_err(|d| drift(d.0))?;

    // The allocation behind the addresses.
    match &p.ipam {
        Ipam::None => Ok(()),
        Ipam::Exec(t) => exec::run(call, Command::Check, network, t, conf, ifname)
            .await
            .map(drop),
        Ipam::InProcess(ic) => {
            let kube = kube(call, network)?;
            let ns = &call.conf.ipam_namespace;
            let addrs: Vec<IpNetwork> = mine.iter().map(|i| i.address).collect();
            ipam::verify(kube, ic, ns, &owner(call, ifname), &addrs)
                .await
                .map_err(Error::from)?
                .map_err(drift)
        }
    }
}

async fn allocate(
    call: &Call,
    network: &str,
    p: &Parsed,
    conf: &Value,
    ifname: &str,
) -> Result<CniResult, Error> {
    match &p.ipam {
        Ipam::None => Ok(CniResult::default()),
        Ipam::Exec(t) => {
            let r = exec::run(call, Command::Add, network, t, conf, ifname).await?;
            r.ok_or_else(|| Error::BadOutput {
                plugin: t.clone(),
                why: "ADD printed no result".into(),
            })
        }
        Ipam::InProcess(ic) => {
            let leases = allocate_in_process(call, network, ic, &p.ips, ifname).await?;
            Ok(ipam::result(ic, leases))
        }
    }
}

/// One address from each range: the requested ones, the others the network's policy's choice.
async fn allocate_in_process(
    call: &Call,
    network: &str,
    ic: &IpamConf,
    requested: &[IpAddr],
    ifname: &str,
) -> Result<Vec<ipam::Lease>, Error> {
    let blocks = call.node.blocks(&call.conf.kubeconfig);
    let store = ipam::Cached::new(kube(call, network)?, &blocks);
    let store = &store;
    let owner = owner(call, ifname);
    let ns = &call.conf.ipam_namespace;
    let node = &call.node_name;
    let lowest_free = || ipam::allocate_all(store, ic, ns, &owner, node, requested, &LowestFree);
    if ipam::all_requested(ic, requested)? {
        return lowest_free().await.map_err(Error::from); // no range asks the policy
    }
    let chosen = async {
        let guest = call.guest(&ic.policy(), Origin::Network).await?;
        let req = IpamRequest {
            pod: call.pod.clone(),
            interface: ifname.into(),
            node: call.node_name.clone(),
            container_id: call.container_id.clone(),
        };
        let policy = Policy::new(call.guests()?, guest, req);
        ipam::allocate_all(store, ic, ns, &owner, node, requested, &policy)
            .await
            .map_err(Error::Ipam)
    }
    .await;
    match chosen {
        // The admin allows this network to fail open: a broken policy (missing, trapped,
        // answering nonsense) gives way to the built-in lowest-free — native, so it works
        // even when the engine itself cannot start — and the pod's network-status says
        // so. A policy's refusal is a decision and is kept. (A failed allocation gives back
        // the ranges it served, so lowest-free starts from nothing.)
        Err(e) if e.is_guest_failure() && call.fails_open(network).await => {
            let note = format!(
                "policy {:?} failed ({e}); fell back to lowest-free",
                ic.policy().guest
            );
            tracing::warn!("network {network} on {ifname}: {note}");
            call.note(ifname, note);
            lowest_free().await.map_err(Error::from)
        }
        other => other,
    }
}

async fn release(
    call: &Call,
    network: &str,
    ipam: &Ipam,
    conf: &Value,
    ifname: &str,
) -> Result<(), Error> {
    match ipam {
        Ipam::None => Ok(()),
        Ipam::Exec(t) => exec::run(call, Command::Del, network, t, conf, ifname)
            .await
            .map(drop),
        Ipam::InProcess(ic) => {
            let blocks = call.node.blocks(&call.conf.kubeconfig);
            let store = ipam::Cached::new(kube(call, network)?, &blocks);
            // The addresses the result reported (DEL's prevResult): a range in blocks finds
            // the block of each directly.
            let hints: Vec<IpAddr> = conf
                .pointer("/prevResult/ips")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i.get("address")?
                        .as_str()?
                        .parse::<ipnetwork::IpNetwork>()
                        .ok()
                })
                .map(|a| a.ip())
                .collect();
            ipam::release_all(
                &store,
                ic,
                &call.conf.ipam_namespace,
                &owner(call, ifname),
                &call.node_name,
                &hints,
            )
            .await
            .map_err(Error::from)
        }
    }
}
