//! Multus' `default-route`: when any of a pod's networks asks for it, the pod's default routes
//! are placed by request — every interface loses its default routes (both families, main
//! table), and the asking interface gets one through each gateway it named. A request of `[]`
//! leaves the pod with no default route. One gateway per family across the pod (the plan
//! refuses ECMP).

use std::net::IpAddr;
use std::path::Path;

use ipnetwork::IpNetwork;

use super::Error;
use crate::cni::types::{CniResult, Route};
use crate::{netlink, netns};

/// One interface of the pod as ADD made it: its name, what its network asked for, and the
/// result its chain returned (edited to say what the pod now has, for CHECK and DEL).
pub struct Placed<'a> {
    /// The interface in the pod.
    pub ifname: &'a str,
    /// The network's `default-route` (`None`: it asked for nothing).
    pub request: Option<&'a [IpAddr]>,
    /// Its chain's result.
    pub result: &'a mut CniResult,
}

/// Place the default routes of the pod in `netns` as its networks asked (see the module).
/// Interfaces whose chain reported neither an interface nor an address are left alone, as in
/// Multus (a plugin that made nothing has no route to move).
pub async fn place(netns: &Path, interfaces: Vec<Placed<'_>>) -> Result<(), Error> {
    let ns = netns::Netns::open(netns).map_err(Error::Netns)?;
    let h = ns.handle().map_err(Error::Netns)?;
    for p in interfaces {
        if p.result.interfaces.is_empty() && p.result.ips.is_empty() {
            continue;
        }
        let gateways = p.request.unwrap_or_default();
        netlink::set_default_routes(&h, p.ifname, gateways)
            .await
            .map_err(Error::Netlink)?;
        rewrite(p.result, gateways);
    }
    Ok(())
}

/// `result` with its default routes replaced by one through each of `gateways`.
fn rewrite(result: &mut CniResult, gateways: &[IpAddr]) {
    result.routes_changed();
    let mut i = 0;
    while i < result.routes.len() {
        if result.routes[i].dst.prefix() == 0 {
            result.routes.remove(i);
            if i < result.route_ext.len() {
                result.route_ext.remove(i);
            }
        } else {
            i += 1;
        }
    }
    for g in gateways {
        let any = if g.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        result.routes.push(Route {
            dst: IpNetwork::new(any, 0).expect("a /0 is a network"),
            gw: Some(*g),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::types::RouteExt;

    #[test]
    fn a_result_says_which_default_routes_the_pod_has() {
        let route = |dst: &str, gw: Option<&str>| Route {
            dst: dst.parse().unwrap(),
            gw: gw.map(|g| g.parse().unwrap()),
        };
        let mut r = CniResult {
            routes: vec![
                route("0.0.0.0/0", Some("10.0.0.1")),
                route("10.1.0.0/16", None),
                route("::/0", Some("fd00::1")),
            ],
            route_ext: vec![
                RouteExt {
                    priority: 5,
                    ..RouteExt::default()
                },
                RouteExt {
                    priority: 7,
                    ..RouteExt::default()
                },
            ],
            ..CniResult::default()
        };
        rewrite(&mut r, &["172.16.0.1".parse().unwrap()]);
        assert_eq!(
            r.routes,
            [
                route("10.1.0.0/16", None),
                route("0.0.0.0/0", Some("172.16.0.1"))
            ]
        );
        assert_eq!(r.route_ext.len(), 1);
        assert_eq!(r.route_ext[0].priority, 7, "the kept route keeps its keys");
        rewrite(&mut r, &[]);
        assert_eq!(r.routes, [route("10.1.0.0/16", None)]);
    }
}
