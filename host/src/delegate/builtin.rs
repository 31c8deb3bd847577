//! The built-in main plugins: ipvlan and macvlan in-process, with whereabouts-compatible IPAM
//! (or an exec'd IPAM plugin). Same config keys and results as the reference plugins.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

use super::{Call, Error, exec};
use crate::cni::Command;
use crate::cni::types::{CniResult, Dns, Interface, IpConfig};
use crate::guest::{IpamRequest, Origin, Policy};
use crate::ipam::{self, Choice, IpamConf, LowestFree, Owner};
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

fn parse(network: &str, conf: &Value) -> Result<Parsed, Error> {
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
                Ipam::InProcess(Box::new(IpamConf::parse(v).map_err(Error::from)?))
            }
            Some(t) if !t.is_empty() => Ipam::Exec(t.to_string()),
            _ => return Err(bad("ipam.type is required".into())),
        },
    };
    let mac = match c.runtime_config.mac.as_ref().or(c.mac.as_ref()) {
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
    parse(network, conf).map(drop)
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
pub(super) fn requested_ip(s: &str) -> Result<std::net::IpAddr, String> {
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
    let p = parse(network, conf)?;
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
    let p = parse(network, conf)?;
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
    let p = parse(network, conf)?;
    let drift = |what: String| Error::Drift {
        network: network.into(),
        ifname: ifname.into(),
        what,
    };
    let version = conf
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
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
            let me = owner(call, ifname);
            let pools = ic.pools().map_err(Error::from)?;
            for ip in &mine {
                let Some(pool) = pools
                    .iter()
                    .find(|p| p.range.offset_of(ip.address.ip()).is_some())
                else {
                    if ic.addresses.iter().any(|s| s.address == ip.address) {
                        continue; // a static address of `addresses`: nothing is recorded
                    }
                    return Err(drift(format!(
                        "{} is in none of this network's ranges",
                        ip.address
                    )));
                };
                let held = ipam::holder(kube, pool, &call.conf.ipam_namespace, ip.address.ip())
                    .await
                    .map_err(Error::from)?;
                match held {
                    Some(a) if me.holds(&a) => {}
                    Some(a) => {
                        return Err(drift(format!(
                            "IPPool records {} for container {} ({} {}), not for this one",
                            ip.address.ip(),
                            a.id,
                            a.podref,
                            a.ifname
                        )));
                    }
                    None => {
                        return Err(drift(format!(
                            "IPPool no longer records {} (it could be handed to another pod)",
                            ip.address.ip()
                        )));
                    }
                }
            }
            Ok(())
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
            let pools = ic.pools().map_err(Error::from)?;
            // The pod's requested addresses (capability `ips`): each must fall in a range, at
            // most one per range.
            for want in &p.ips {
                let n = pools
                    .iter()
                    .filter(|pl| pl.range.offset_of(*want).is_some())
                    .count();
                if n == 0 {
                    let cidrs: Vec<_> = pools.iter().map(|pl| pl.range.cidr()).collect();
                    return Err(Error::Ipam(ipam::Error::Unavailable {
                        ip: *want,
                        why: format!("it is outside {}", cidrs.join(" and ")),
                    }));
                }
            }
            let mut leases = Vec::new();
            for pool in &pools {
                let wants: Vec<_> = p
                    .ips
                    .iter()
                    .filter(|ip| pool.range.offset_of(**ip).is_some())
                    .collect();
                if wants.len() > 1 {
                    return Err(Error::Ipam(ipam::Error::Unavailable {
                        ip: *wants[1],
                        why: format!(
                            "{} is requested from {} too: one address per range",
                            wants[0],
                            pool.range.cidr()
                        ),
                    }));
                }
                match allocate_from(
                    call,
                    network,
                    ic,
                    pool,
                    wants.first().copied().copied(),
                    ifname,
                )
                .await
                {
                    Ok(l) => leases.push(l),
                    Err(e) => {
                        // Ranges already served are given back: the ADD fails as a whole.
                        if !leases.is_empty()
                            && let Err(undo) = release(call, network, &p.ipam, conf, ifname).await
                        {
                            tracing::error!("rollback of {network} on {ifname}: {undo}");
                        }
                        return Err(e);
                    }
                }
            }
            Ok(lease_result(ic, leases))
        }
    }
}

/// One range's address: the requested one, or the network's policy's choice.
async fn allocate_from(
    call: &Call,
    network: &str,
    ic: &IpamConf,
    pool: &ipam::PoolRef,
    requested: Option<IpAddr>,
    ifname: &str,
) -> Result<ipam::Lease, Error> {
    let kube = kube(call, network)?;
    let owner = owner(call, ifname);
    let ns = &call.conf.ipam_namespace;
    if let Some(want) = requested {
        return ipam::allocate(
            kube,
            ic,
            pool,
            ns,
            &owner,
            Choice::<LowestFree>::Requested(want),
        )
        .await
        .map_err(Error::from);
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
        ipam::allocate(kube, ic, pool, ns, &owner, Choice::Proposed(&policy))
            .await
            .map_err(Error::Ipam)
    }
    .await;
    match chosen {
        // The admin allows this network to fail open: a broken policy (missing, trapped,
        // answering nonsense) gives way to the built-in lowest-free — native, so it works
        // even when the engine itself cannot start — and the pod's network-status says
        // so. A policy's refusal is a decision and is kept.
        Err(e) if e.is_guest_failure() && call.fails_open(network).await => {
            let note = format!(
                "policy {:?} failed ({e}); fell back to lowest-free",
                ic.policy().guest
            );
            tracing::warn!("network {network} on {ifname}: {note}");
            call.note(ifname, note);
            ipam::allocate(kube, ic, pool, ns, &owner, Choice::Proposed(&LowestFree))
                .await
                .map_err(Error::from)
        }
        other => other,
    }
}

/// The result of an in-process allocation: one address per range, each with the gateway when
/// it is of the address's family (whereabouts gives every address the one gateway, a v4
/// gateway to a v6 address too), then the static `addresses`, the routes and DNS.
fn lease_result(ic: &IpamConf, leases: Vec<ipam::Lease>) -> CniResult {
    let gateway_for = |ip: IpAddr| ic.gateway.filter(|g| g.is_ipv4() == ip.is_ipv4());
    let mut ips: Vec<IpConfig> = leases
        .into_iter()
        .map(|l| IpConfig {
            version: None,
            gateway: gateway_for(l.address.ip()),
            address: l.address,
            interface: None,
        })
        .collect();
    ips.extend(ic.addresses.iter().map(|s| IpConfig {
        version: None,
        address: s.address,
        gateway: s.gateway,
        interface: None,
    }));
    CniResult {
        ips,
        routes: ic.routes.clone(),
        dns: ic.dns.clone().unwrap_or_default(),
        ..Default::default()
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
            let kube = kube(call, network)?;
            let pools: Vec<String> = ic
                .pools()
                .map_err(Error::from)?
                .into_iter()
                .map(|p| p.name)
                .collect();
            ipam::release(
                kube,
                &call.conf.ipam_namespace,
                Some(&pools),
                &owner(call, ifname),
            )
            .await
            .map_err(Error::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_per_range_the_gateway_only_on_its_family_then_static_addresses() {
        let ic = IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": "172.16.30.0/24", "gateway": "172.16.30.1",
            "ipRanges": [{"range": "fd00:30::/120"}],
            "addresses": [{"address": "192.0.2.7/24", "gateway": "192.0.2.1"}],
            "dns": {"nameservers": ["172.16.30.53"]},
        }))
        .unwrap();
        let pools = ic.pools().unwrap();
        let leases = vec![
            ipam::Lease {
                address: pools[0].range.address(2),
                pool: pools[0].name.clone(),
            },
            ipam::Lease {
                address: pools[1].range.address(1),
                pool: pools[1].name.clone(),
            },
        ];
        let r = lease_result(&ic, leases);
        let got: Vec<_> = r
            .ips
            .iter()
            .map(|i| format!("{} {:?}", i.address, i.gateway))
            .collect();
        assert_eq!(
            got,
            [
                "172.16.30.2/24 Some(172.16.30.1)",
                "fd00:30::1/120 None",
                "192.0.2.7/24 Some(192.0.2.1)"
            ]
        );
        assert_eq!(r.dns.nameservers, ["172.16.30.53"]);
    }
}
