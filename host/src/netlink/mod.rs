//! Links, addresses and routes: ipvlan/macvlan created straight into the pod's namespace.
//!
//! Links are created with IFLA_NET_NS_FD, so the kernel makes them inside the pod's namespace:
//! nothing is left on the node if we die between two steps. They get their final name at once,
//! except on kernels that check the name against the node's links first (Debian's 6.1: a pod's
//! `eth0` clashes with the node's) — there, on EEXIST, the link is made under a temporary name
//! unique on the node and renamed inside the pod ([`create`]).

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, IpVlanMode, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage, MacVlanMode,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, LinkIpVlan, LinkMacVlan, LinkUnspec, RouteMessageBuilder};

use crate::cni::types::{Route, RouteExt};
use crate::netns::Netns;

pub mod verify;

/// Why a netlink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Entering the pod's (or the node's) namespace failed.
    #[error(transparent)]
    Netns(#[from] crate::netns::Error),
    /// The master interface is not on the node. Not retryable: fix the NAD or the node.
    #[error("master interface {master:?} does not exist on this node")]
    MasterMissing {
        /// The configured master.
        master: String,
    },
    /// The link could not be created.
    #[error("creating {kind} link {ifname} on master {master}")]
    LinkCreate {
        /// ipvlan or macvlan.
        kind: &'static str,
        /// The interface name in the pod.
        ifname: String,
        /// The master.
        master: String,
        /// The kernel's answer (boxed: netlink errors carry the whole request header).
        #[source]
        source: Box<rtnetlink::Error>,
    },
    /// An address, route or state change on a link failed.
    #[error("{step} on {ifname}")]
    Configure {
        /// What was being done.
        step: String,
        /// The link.
        ifname: String,
        /// The kernel's answer (boxed: netlink errors carry the whole request header).
        #[source]
        source: Box<rtnetlink::Error>,
    },
    /// The requested MTU is larger than the master's. Not retryable: fix the config.
    #[error("invalid MTU {mtu}, must be [0, master MTU({master_mtu})] of {master}")]
    Mtu {
        /// The configured MTU.
        mtu: u32,
        /// The master.
        master: String,
        /// Its MTU.
        master_mtu: u32,
    },
}

impl Error {
    /// The error of `step` on `ifname`, for `map_err` (one way to name a failed step).
    pub fn step(step: String, ifname: &str) -> impl FnOnce(rtnetlink::Error) -> Error + use<> {
        let ifname = ifname.to_string();
        move |source| Error::Configure {
            step,
            ifname,
            source: Box::new(source),
        }
    }
}

/// The kind of link a built-in plugin creates, with its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// ipvlan in l2, l3 or l3s mode.
    Ipvlan(IpVlanMode),
    /// macvlan in bridge, private, vepa or passthru mode.
    Macvlan(MacVlanMode),
}

impl LinkKind {
    /// Parse the reference plugins' `type` + `mode` (ipvlan default l2, macvlan default bridge).
    pub fn parse(kind: &str, mode: Option<&str>) -> Result<Self, String> {
        match (kind, mode.unwrap_or("")) {
            ("ipvlan", "" | "l2") => Ok(LinkKind::Ipvlan(IpVlanMode::L2)),
            ("ipvlan", "l3") => Ok(LinkKind::Ipvlan(IpVlanMode::L3)),
            ("ipvlan", "l3s") => Ok(LinkKind::Ipvlan(IpVlanMode::L3S)),
            ("macvlan", "" | "bridge") => Ok(LinkKind::Macvlan(MacVlanMode::Bridge)),
            ("macvlan", "private") => Ok(LinkKind::Macvlan(MacVlanMode::Private)),
            ("macvlan", "vepa") => Ok(LinkKind::Macvlan(MacVlanMode::Vepa)),
            ("macvlan", "passthru") => Ok(LinkKind::Macvlan(MacVlanMode::Passthrough)),
            (k, m) => Err(format!("{k} mode {m:?} is not supported")),
        }
    }

    /// `ipvlan` or `macvlan`.
    pub fn name(&self) -> &'static str {
        match self {
            LinkKind::Ipvlan(_) => "ipvlan",
            LinkKind::Macvlan(_) => "macvlan",
        }
    }

    /// The kind and mode as the reference plugins' config spells them (`macvlan mode bridge`).
    pub fn describe(&self) -> String {
        let mode = match self {
            LinkKind::Ipvlan(IpVlanMode::L2) => "l2",
            LinkKind::Ipvlan(IpVlanMode::L3) => "l3",
            LinkKind::Ipvlan(IpVlanMode::L3S) => "l3s",
            LinkKind::Macvlan(MacVlanMode::Bridge) => "bridge",
            LinkKind::Macvlan(MacVlanMode::Private) => "private",
            LinkKind::Macvlan(MacVlanMode::Vepa) => "vepa",
            LinkKind::Macvlan(MacVlanMode::Passthrough) => "passthru",
            LinkKind::Ipvlan(m) => return format!("ipvlan mode {m:?}"),
            LinkKind::Macvlan(m) => return format!("macvlan mode {m:?}"),
        };
        format!("{} mode {mode}", self.name())
    }
}

/// A link as the kernel reports it: what CHECK compares with what ADD made.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkState {
    /// Its index in its namespace.
    pub index: u32,
    /// Its MAC, lower-case hex with colons.
    pub mac: String,
    /// The kernel's kind name (`macvlan`, `veth`, …; empty for a plain device).
    pub kind_name: String,
    /// Kind and mode when it is an ipvlan or macvlan link.
    pub kind: Option<LinkKind>,
    /// The index of its parent (IFLA_LINK), in the parent's namespace.
    pub parent: Option<u32>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// Its addresses, with prefix length.
    pub addrs: Vec<IpNetwork>,
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

/// The kernel's message for link `name`, or `None` when it does not exist.
async fn get_link(h: &Handle, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(msg) => Ok(msg),
        Err(e) if is_errno(&e, libc_enodev()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The index and MAC of link `name`, or `None` when it does not exist.
pub async fn find(h: &Handle, name: &str) -> Result<Option<(u32, String)>, rtnetlink::Error> {
    Ok(get_link(h, name).await?.map(|msg| {
        let st = link_state(&msg);
        (st.index, st.mac)
    }))
}

const fn libc_enodev() -> i32 {
    19
}

fn link_state(msg: &LinkMessage) -> LinkState {
    let mut st = LinkState {
        index: msg.header.index,
        mac: String::new(),
        kind_name: String::new(),
        kind: None,
        parent: None,
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        addrs: Vec::new(),
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::Address(b) => {
                st.mac = b
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
            }
            LinkAttribute::Link(i) => st.parent = Some(*i),
            LinkAttribute::Mtu(m) => st.mtu = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => {
                            st.kind_name = match k {
                                InfoKind::IpVlan => "ipvlan".into(),
                                InfoKind::MacVlan => "macvlan".into(),
                                other => other.to_string(),
                            }
                        }
                        LinkInfo::Data(InfoData::IpVlan(d)) => {
                            st.kind = d.iter().find_map(|x| match x {
                                InfoIpVlan::Mode(m) => Some(LinkKind::Ipvlan(*m)),
                                _ => None,
                            });
                        }
                        LinkInfo::Data(InfoData::MacVlan(d)) => {
                            st.kind = d.iter().find_map(|x| match x {
                                InfoMacVlan::Mode(m) => Some(LinkKind::Macvlan(*m)),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    st
}

/// The state of link `name` with its addresses, or `None` when it does not exist.
pub async fn inspect(h: &Handle, name: &str) -> Result<Option<LinkState>, rtnetlink::Error> {
    let Some(msg) = get_link(h, name).await? else {
        return Ok(None);
    };
    let mut st = link_state(&msg);
    let mut addrs = h.address().get().set_link_index_filter(st.index).execute();
    while let Some(a) = addrs.try_next().await? {
        let prefix = a.header.prefix_len;
        for attr in &a.attributes {
            if let AddressAttribute::Address(ip) = attr
                && let Ok(net) = IpNetwork::new(*ip, prefix)
            {
                st.addrs.push(net);
            }
        }
    }
    Ok(Some(st))
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The routes (IPv4 and IPv6) that leave through link `index`, as destination + gateway.
pub async fn routes(
    h: &Handle,
    index: u32,
) -> Result<Vec<(IpNetwork, Option<IpAddr>)>, rtnetlink::Error> {
    let mut out = Vec::new();
    let queries: [RouteMessage; 2] = [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ];
    for q in queries {
        let v4 = q.header.address_family == rtnetlink::packet_route::AddressFamily::Inet;
        let mut stream = h.route().get(q).execute();
        while let Some(r) = stream.try_next().await? {
            let mut oif = None;
            let mut dst = None;
            let mut gw = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Destination(d) => dst = route_ip(d),
                    RouteAttribute::Gateway(g) => gw = route_ip(g),
                    _ => {}
                }
            }
            if oif != Some(index) {
                continue;
            }
            let dst = dst.unwrap_or(if v4 {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            });
            if let Ok(dst) = IpNetwork::new(dst, r.header.destination_prefix_length) {
                out.push((dst, gw));
            }
        }
    }
    Ok(out)
}

/// Create `ifname` of `kind` on `master` (in `host`'s namespace) directly inside `ns`, with
/// `mac` when given (else the kernel picks one).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    host: &Handle,
    kind: LinkKind,
    master: &str,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    ifname: &str,
    ns: &Netns,
) -> Result<(), Error> {
    let m = inspect(host, master)
        .await
        .map_err(Error::step(format!("looking up master {master}"), ifname))?
        .ok_or_else(|| Error::MasterMissing {
            master: master.into(),
        })?;
    // Refused up front, as the reference plugins do, rather than by the kernel's bare EINVAL.
    if let (Some(mtu), Some(master_mtu)) = (mtu, m.mtu)
        && mtu > master_mtu
    {
        return Err(Error::Mtu {
            mtu,
            master: master.into(),
            master_mtu,
        });
    }
    let master_index = m.index;
    let message = |name: &str| {
        let mut msg = match kind {
            LinkKind::Ipvlan(mode) => LinkIpVlan::new(name, master_index, mode)
                .setns_by_fd(ns.raw_fd())
                .build(),
            LinkKind::Macvlan(mode) => LinkMacVlan::new(name, master_index, mode)
                .setns_by_fd(ns.raw_fd())
                .build(),
        };
        if let Some(m) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(m));
        }
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg
    };
    let failed = |source| Error::LinkCreate {
        kind: kind.name(),
        ifname: ifname.into(),
        master: master.into(),
        source: Box::new(source),
    };
    match host.link().add(message(ifname)).execute().await {
        Ok(()) => Ok(()),
        // Some kernels (Debian bookworm's 6.1) check the new name against the node's links
        // before moving the link into the pod, so a pod's `eth0` clashes with the node's. Then
        // the link is made under a name unique on the node and renamed inside the pod.
        Err(e) if is_errno(&e, EEXIST) => create_renamed(host, ns, ifname, message, failed).await,
        Err(e) => Err(failed(e)),
    }
}

/// Create the link `message` describes under a temporary name, then rename it to `ifname`
/// inside the pod. If the rename fails, the temporary link is deleted: nothing is left under
/// a name DEL would not look for.
async fn create_renamed(
    host: &Handle,
    ns: &Netns,
    ifname: &str,
    message: impl Fn(&str) -> LinkMessage,
    failed: impl Fn(rtnetlink::Error) -> Error,
) -> Result<(), Error> {
    let tmp = temp_name(ifname);
    host.link()
        .add(message(&tmp))
        .execute()
        .await
        .map_err(&failed)?;
    let inside = ns.handle()?;
    let renamed = async {
        let (index, _) = find(&inside, &tmp)
            .await?
            .ok_or(rtnetlink::Error::RequestFailed)?;
        inside
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(ifname.to_string())
                    .build(),
            )
            .execute()
            .await
    }
    .await;
    if let Err(source) = renamed {
        let _ = delete(&inside, &tmp).await;
        return Err(failed(source));
    }
    Ok(())
}

const EEXIST: i32 = 17;

/// A link name for `ifname` that no node interface has: `wc` + 8 hex digits of a hash of the
/// name, the process and the time (15 bytes at most, as the kernel requires).
fn temp_name(ifname: &str) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(ifname.as_bytes());
    h.update(&std::process::id().to_le_bytes());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.update(&t.as_nanos().to_le_bytes());
    }
    format!("wc{:08x}", h.finalize())
}

/// Bring `ifname` (in `h`'s namespace) up with `addrs`, then add `routes` with their 1.1 keys
/// `ext` (same index: priority, table, scope) — a route without a gateway uses `gateway` of its
/// family, when given — the way the reference plugins' `ipam.ConfigureIface` does (protocol
/// `boot`, as their netlink library writes it). Returns the link's MAC.
pub async fn configure(
    h: &Handle,
    ifname: &str,
    addrs: &[IpNetwork],
    routes: &[Route],
    ext: &[RouteExt],
    gateways: &[IpAddr],
) -> Result<String, Error> {
    let err = |step: String| Error::step(step, ifname);
    let (index, mac) = find(h, ifname)
        .await
        .map_err(err("looking up the new link".into()))?
        .ok_or_else(|| err("looking up the new link".into())(rtnetlink::Error::RequestFailed))?;
    for a in addrs {
        h.address()
            .add(index, a.ip(), a.prefix())
            .replace()
            .execute()
            .await
            .map_err(err(format!("adding address {a}")))?;
    }
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(err("setting the link up".into()))?;
    for (i, r) in routes.iter().enumerate() {
        let gw = r.gw.or_else(|| {
            gateways
                .iter()
                .copied()
                .find(|g| g.is_ipv4() == r.dst.is_ipv4())
        });
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.dst.network(), r.dst.prefix())
            .map_err(|e| err(format!("route {}: {e}", r.dst))(rtnetlink::Error::RequestFailed))?
            .output_interface(index)
            .protocol(RouteProtocol::Boot);
        if let Some(x) = ext.get(i) {
            if let Ok(p) = u32::try_from(x.priority)
                && p > 0
            {
                b = b.priority(p);
            }
            if let Some(t) = x.table.and_then(|t| u32::try_from(t).ok())
                && t > 0
            {
                b = b.table_id(t);
            }
            if let Some(sc) = x.scope.and_then(|sc| u8::try_from(sc).ok()) {
                b = b.scope(RouteScope::from(sc));
            }
        }
        if let Some(g) = gw {
            b = b.gateway(g).map_err(|e| {
                err(format!("route {} via {g}: {e}", r.dst))(rtnetlink::Error::RequestFailed)
            })?;
        }
        h.route()
            .add(b.build())
            .replace()
            .execute()
            .await
            .map_err(err(format!("adding route {}", r.dst)))?;
    }
    Ok(mac)
}

/// Make `gateways` the default routes through `ifname` (Multus' `DeleteDefaultGW` then
/// `SetDefaultGW`): every default route of the main table that leaves through it, of either
/// family, is deleted, then one is added through each gateway (one that exists already is
/// kept). An empty `gateways` leaves `ifname` with no default route.
pub async fn set_default_routes(
    h: &Handle,
    ifname: &str,
    gateways: &[IpAddr],
) -> Result<(), Error> {
    let err = |step: String| Error::step(step, ifname);
    let (index, _) = find(h, ifname)
        .await
        .map_err(err("looking up the link".into()))?
        .ok_or_else(|| err("looking up the link".into())(rtnetlink::Error::RequestFailed))?;
    let queries: [RouteMessage; 2] = [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ];
    let mut defaults = Vec::new();
    for q in queries {
        let mut stream = h.route().get(q).execute();
        while let Some(r) = stream
            .try_next()
            .await
            .map_err(err("listing routes".into()))?
        {
            let main = r.header.table == 254
                || r.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Table(254)));
            let through = r
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index));
            if main && through && r.header.destination_prefix_length == 0 {
                defaults.push(r);
            }
        }
    }
    for r in defaults {
        h.route()
            .del(r)
            .execute()
            .await
            .map_err(err("deleting a default route".into()))?;
    }
    for g in gateways {
        let b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(
                if g.is_ipv4() {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                },
                0,
            )
            .map_err(|e| {
                err(format!("default route via {g}: {e}"))(rtnetlink::Error::RequestFailed)
            })?
            .output_interface(index)
            .gateway(*g)
            .map_err(|e| {
                err(format!("default route via {g}: {e}"))(rtnetlink::Error::RequestFailed)
            })?
            .build();
        match h.route().add(b).execute().await {
            Ok(()) => {}
            Err(e) if is_errno(&e, EEXIST) => {}
            Err(e) => return Err(err(format!("adding the default route via {g}"))(e)),
        }
    }
    Ok(())
}

/// Delete `ifname` in `h`'s namespace. A link that is already gone is success.
pub async fn delete(h: &Handle, ifname: &str) -> Result<(), Error> {
    let err = |step: &str| Error::step(step.to_string(), ifname);
    let Some((index, _)) = find(h, ifname).await.map_err(err("looking up the link"))? else {
        return Ok(());
    };
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc_enodev()) => Ok(()),
        Err(e) => Err(err("deleting the link")(e)),
    }
}

#[cfg(test)]
mod tests {
    //! Links made and removed for real, in private network namespaces (`unshare(CLONE_NEWNET)`
    //! on a thread of the test): the machine's own namespace is never touched. Root only, as CI
    //! runs; without root they fail saying so, they are never skipped.

    use std::fs::File;
    use std::os::fd::AsRawFd;

    use nix::sched::{CloneFlags, setns, unshare};
    use rtnetlink::LinkVeth;

    use super::*;

    /// A new, empty network namespace, held open by the returned file.
    fn private_netns() -> File {
        std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET) failed: the netlink tests need root");
            File::open("/proc/thread-self/ns/net").expect("opening the new namespace")
        })
        .join()
        .expect("netns thread")
    }

    fn netns_of(f: &File) -> Netns {
        Netns::open(std::path::Path::new(&format!(
            "/proc/self/fd/{}",
            f.as_raw_fd()
        )))
        .expect("reopening a private namespace")
    }

    /// Run `body` on a thread inside a fresh "node" namespace that has a veth `m0` (up) as the
    /// master, with a fresh "pod" namespace; both vanish with the test.
    fn on_node<F, Fut>(body: F)
    where
        F: FnOnce(Netns) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let node = private_netns();
        let pod = private_netns();
        std::thread::spawn(move || {
            setns(&node, CloneFlags::CLONE_NEWNET).expect("entering the node namespace");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let host = crate::netns::host_handle().unwrap();
                host.link()
                    .add(LinkVeth::new("m0", "m0peer").build())
                    .execute()
                    .await
                    .expect("creating the veth master");
                let (m0, _) = find(&host, "m0").await.unwrap().unwrap();
                host.link()
                    .set(LinkUnspec::new_with_index(m0).up().build())
                    .execute()
                    .await
                    .unwrap();
                body(netns_of(&pod)).await;
            });
        })
        .join()
        .expect("the test body panicked");
    }

    const MACVLAN: LinkKind = LinkKind::Macvlan(MacVlanMode::Bridge);

    #[test]
    fn a_link_is_made_inside_the_pod_configured_and_deleted_idempotently() {
        on_node(|pod| async move {
            let host = crate::netns::host_handle().unwrap();
            create(&host, MACVLAN, "m0", Some(1400), None, "net1", &pod)
                .await
                .unwrap();
            assert!(
                find(&host, "net1").await.unwrap().is_none(),
                "not on the node"
            );
            let inside = pod.handle().unwrap();
            let addr: IpNetwork = "10.9.0.5/24".parse().unwrap();
            let route = Route {
                dst: "10.77.0.0/16".parse().unwrap(),
                gw: None,
            };
            let gw: IpAddr = "10.9.0.1".parse().unwrap();
            let mac = configure(&inside, "net1", &[addr], &[route], &[], &[gw])
                .await
                .unwrap();
            let st = inspect(&inside, "net1").await.unwrap().unwrap();
            let (m0, _) = find(&host, "m0").await.unwrap().unwrap();
            assert_eq!(st.kind, Some(MACVLAN));
            assert_eq!(st.parent, Some(m0));
            assert_eq!(st.mtu, Some(1400));
            assert_eq!(st.mac, mac);
            assert!(st.up && st.addrs.contains(&addr), "{st:?}");
            let rs = routes(&inside, st.index).await.unwrap();
            assert!(
                rs.contains(&("10.77.0.0/16".parse().unwrap(), Some(gw))),
                "{rs:?}"
            );

            delete(&inside, "net1").await.unwrap();
            assert!(inspect(&inside, "net1").await.unwrap().is_none());
            delete(&inside, "net1").await.unwrap();
        });
    }

    #[test]
    fn a_missing_master_and_a_too_large_mtu_are_refused_before_the_kernel_is_asked() {
        on_node(|pod| async move {
            let host = crate::netns::host_handle().unwrap();
            let e = create(&host, MACVLAN, "nope0", None, None, "net1", &pod)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::MasterMissing { .. }), "{e}");
            let e = create(&host, MACVLAN, "m0", Some(65_000), None, "net1", &pod)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Mtu { .. }), "{e}");
            assert!(
                inspect(&pod.handle().unwrap(), "net1")
                    .await
                    .unwrap()
                    .is_none()
            );
        });
    }

    /// Every link name in `h`'s namespace.
    async fn names(h: &Handle) -> Vec<String> {
        let mut out = Vec::new();
        let mut links = h.link().get().execute();
        while let Some(msg) = links.try_next().await.unwrap() {
            for a in msg.attributes {
                if let LinkAttribute::IfName(n) = a {
                    out.push(n);
                }
            }
        }
        out
    }

    fn macvlan_into(pod: &Netns, master: u32) -> impl Fn(&str) -> LinkMessage + '_ {
        move |name: &str| {
            LinkMacVlan::new(name, master, MacVlanMode::Bridge)
                .setns_by_fd(pod.raw_fd())
                .build()
        }
    }

    #[test]
    fn the_temporary_name_path_leaves_the_final_name_in_the_pod_and_nothing_else() {
        on_node(|pod| async move {
            let host = crate::netns::host_handle().unwrap();
            let (m0, _) = find(&host, "m0").await.unwrap().unwrap();
            let failed = |e| Error::LinkCreate {
                kind: "macvlan",
                ifname: "eth0".into(),
                master: "m0".into(),
                source: Box::new(e),
            };
            create_renamed(&host, &pod, "eth0", macvlan_into(&pod, m0), failed)
                .await
                .unwrap();
            let inside = pod.handle().unwrap();
            let in_pod = names(&inside).await;
            assert!(in_pod.contains(&"eth0".to_string()), "{in_pod:?}");
            let temp = |n: &&String| n.starts_with("wc");
            assert!(!in_pod.iter().any(|n| temp(&n)), "{in_pod:?}");
            assert!(!names(&host).await.iter().any(|n| temp(&n)));

            // The pod already has an eth0: the rename fails, and the temporary link goes.
            let e = create_renamed(&host, &pod, "eth0", macvlan_into(&pod, m0), failed)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::LinkCreate { .. }), "{e}");
            let in_pod = names(&inside).await;
            assert_eq!(
                in_pod.iter().filter(|n| n.starts_with("wc")).count(),
                0,
                "{in_pod:?}"
            );
            assert_eq!(in_pod.iter().filter(|n| *n == "eth0").count(), 1);
        });
    }

    #[test]
    fn a_pod_link_named_like_a_node_link_is_created_on_any_kernel() {
        on_node(|pod| async move {
            let host = crate::netns::host_handle().unwrap();
            // The node's own "eth0" (this kernel may or may not check the name on the node).
            host.link()
                .add(LinkVeth::new("eth0", "eth0peer").build())
                .execute()
                .await
                .unwrap();
            create(&host, MACVLAN, "m0", None, None, "eth0", &pod)
                .await
                .unwrap();
            let inside = pod.handle().unwrap();
            assert!(find(&inside, "eth0").await.unwrap().is_some());
            assert!(!names(&inside).await.iter().any(|n| n.starts_with("wc")));
        });
    }
}
