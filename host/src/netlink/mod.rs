//! Links, addresses and routes: ipvlan/macvlan created straight into the pod's namespace.
//!
//! Links are created with IFLA_NET_NS_FD, so the kernel makes them inside the pod's namespace
//! under their final name: no temporary name on the node, no rename, and nothing left on the
//! node if we die between two steps.

use std::net::IpAddr;
use std::path::PathBuf;

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::link::{IpVlanMode, LinkAttribute, MacVlanMode};
use rtnetlink::{Handle, LinkIpVlan, LinkMacVlan, LinkUnspec, RouteMessageBuilder};

use crate::cni::types::Route;
use crate::netns::Netns;

/// Why a netlink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pod's network namespace does not exist (any more). Not retryable.
    #[error("network namespace {path} is gone")]
    NetnsGone {
        /// Its path.
        path: PathBuf,
        /// The open/setns error.
        #[source]
        source: std::io::Error,
    },
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
    /// A netlink socket could not be opened.
    #[error("opening a netlink socket")]
    Socket {
        /// Why.
        #[source]
        source: std::io::Error,
    },
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
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

/// The index and MAC of link `name`, or `None` when it does not exist.
pub async fn find(h: &Handle, name: &str) -> Result<Option<(u32, String)>, rtnetlink::Error> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(Some(msg)) => {
            let mac = msg
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Address(b) => Some(
                        b.iter()
                            .map(|x| format!("{x:02x}"))
                            .collect::<Vec<_>>()
                            .join(":"),
                    ),
                    _ => None,
                })
                .unwrap_or_default();
            Ok(Some((msg.header.index, mac)))
        }
        Ok(None) => Ok(None),
        Err(e) if is_errno(&e, libc_enodev()) => Ok(None),
        Err(e) => Err(e),
    }
}

const fn libc_enodev() -> i32 {
    19
}

/// Create `ifname` of `kind` on `master` (in `host`'s namespace) directly inside `ns`.
pub async fn create(
    host: &Handle,
    kind: LinkKind,
    master: &str,
    mtu: Option<u32>,
    ifname: &str,
    ns: &Netns,
) -> Result<(), Error> {
    let (master_index, _) = find(host, master)
        .await
        .map_err(|source| Error::Configure {
            step: format!("looking up master {master}"),
            ifname: ifname.into(),
            source: Box::new(source),
        })?
        .ok_or_else(|| Error::MasterMissing {
            master: master.into(),
        })?;
    let msg = match kind {
        LinkKind::Ipvlan(mode) => LinkIpVlan::new(ifname, master_index, mode)
            .setns_by_fd(ns.raw_fd())
            .build(),
        LinkKind::Macvlan(mode) => LinkMacVlan::new(ifname, master_index, mode)
            .setns_by_fd(ns.raw_fd())
            .build(),
    };
    finish_create(host, msg, kind, master, mtu, ifname).await
}

async fn finish_create(
    host: &Handle,
    mut msg: rtnetlink::packet_route::link::LinkMessage,
    kind: LinkKind,
    master: &str,
    mtu: Option<u32>,
    ifname: &str,
) -> Result<(), Error> {
    if let Some(m) = mtu {
        msg.attributes.push(LinkAttribute::Mtu(m));
    }
    host.link()
        .add(msg)
        .execute()
        .await
        .map_err(|source| Error::LinkCreate {
            kind: kind.name(),
            ifname: ifname.into(),
            master: master.into(),
            source: Box::new(source),
        })
}

/// Bring `ifname` (in `h`'s namespace) up with `addrs`, then add `routes` (a route without a
/// gateway uses `gateway` of its family, when given). Returns the link's MAC.
pub async fn configure(
    h: &Handle,
    ifname: &str,
    addrs: &[IpNetwork],
    routes: &[Route],
    gateways: &[IpAddr],
) -> Result<String, Error> {
    let err = |step: String| {
        move |source| Error::Configure {
            step,
            ifname: ifname.into(),
            source: Box::new(source),
        }
    };
    let (index, mac) = find(h, ifname)
        .await
        .map_err(err("looking up the new link".into()))?
        .ok_or_else(|| Error::Configure {
            step: "looking up the new link".into(),
            ifname: ifname.into(),
            source: Box::new(rtnetlink::Error::RequestFailed),
        })?;
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
    for r in routes {
        let gw = r.gw.or_else(|| {
            gateways
                .iter()
                .copied()
                .find(|g| g.is_ipv4() == r.dst.is_ipv4())
        });
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.dst.network(), r.dst.prefix())
            .map_err(|e| Error::Configure {
                step: format!("route {}: {e}", r.dst),
                ifname: ifname.into(),
                source: Box::new(rtnetlink::Error::RequestFailed),
            })?
            .output_interface(index);
        if let Some(g) = gw {
            b = b.gateway(g).map_err(|e| Error::Configure {
                step: format!("route {} via {g}: {e}", r.dst),
                ifname: ifname.into(),
                source: Box::new(rtnetlink::Error::RequestFailed),
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

/// Delete `ifname` in `h`'s namespace. A link that is already gone is success.
pub async fn delete(h: &Handle, ifname: &str) -> Result<(), Error> {
    let err = |step: &str| {
        let step = step.to_string();
        move |source| Error::Configure {
            step,
            ifname: ifname.into(),
            source: Box::new(source),
        }
    };
    let Some((index, _)) = find(h, ifname).await.map_err(err("looking up the link"))? else {
        return Ok(());
    };
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc_enodev()) => Ok(()),
        Err(e) => Err(err("deleting the link")(e)),
    }
}
