//! CHECK's comparisons of kernel state with what ADD reported, as the reference plugins'
//! `pkg/ip` validators (`ValidateExpectedInterfaceIPs`, `ValidateExpectedRoute`) make them: the
//! first difference is the answer, saying what was expected and what is there.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rtnetlink::Handle;

use super::{Error, LinkKind, find, inspect, routes};
use crate::cni::types::Route;

/// What an attachment must look like: from its config and its ADD result.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// Kind and mode the config asks for.
    pub kind: LinkKind,
    /// The master on the node.
    pub master: &'a str,
    /// The MAC ADD reported (empty: not compared).
    pub mac: &'a str,
    /// The MTU the config asks for.
    pub mtu: Option<u32>,
    /// Every address ADD reported for the interface.
    pub addrs: Vec<IpNetwork>,
    /// The routes of the result; one without a gateway uses the interface's gateway of its
    /// family, as ADD installed it.
    pub routes: &'a [Route],
    /// The gateways of the interface's addresses.
    pub gateways: Vec<IpAddr>,
}

/// A difference between the kernel and the ADD result, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift(pub String);

/// Compare link `ifname` (in `inside`'s namespace, its master in `host`'s) with `want`.
/// `Ok(Err(drift))` names the first difference; `Err` is a netlink failure while looking.
pub async fn attachment(
    host: &Handle,
    inside: &Handle,
    ifname: &str,
    sandbox: &str,
    want: &Expected<'_>,
) -> Result<Result<(), Drift>, Error> {
    let lookup = |step: &str| Error::step(step.to_string(), ifname);
    let drift = |what: String| Ok(Err(Drift(what)));
    let Some(link) = inspect(inside, ifname)
        .await
        .map_err(lookup("looking up the link"))?
    else {
        return drift(format!("interface {ifname} is missing from {sandbox}"));
    };

    // The link: kind and mode, master, MAC, MTU.
    if link.kind != Some(want.kind) {
        let is = match link.kind {
            Some(k) => k.describe(),
            None if link.kind_name.is_empty() => "a plain device".into(),
            None => format!("a {} link", link.kind_name),
        };
        return drift(format!("is {is}, the config says {}", want.kind.describe()));
    }
    let Some((master_index, _)) = find(host, want.master)
        .await
        .map_err(lookup("looking up the master"))?
    else {
        return drift(format!("master {} is gone from the node", want.master));
    };
    if link.parent != Some(master_index) {
        return drift(format!(
            "is no longer a child of master {} (index {master_index}); its parent index is {:?}",
            want.master, link.parent
        ));
    }
    if !want.mac.is_empty() && !want.mac.eq_ignore_ascii_case(&link.mac) {
        return drift(format!("MAC is {}, ADD reported {}", link.mac, want.mac));
    }
    if let (Some(w), Some(got)) = (want.mtu, link.mtu)
        && w != got
    {
        return drift(format!("MTU is {got}, the config says {w}"));
    }

    // Addresses, then routes.
    if let Err(d) = addresses(&want.addrs, &link.addrs) {
        return Ok(Err(d));
    }
    let present = routes(inside, link.index)
        .await
        .map_err(lookup("listing routes"))?;
    Ok(expected_routes(want.routes, &want.gateways, &present))
}

/// Every expected address is on the link (`ValidateExpectedInterfaceIPs`).
pub fn addresses(expected: &[IpNetwork], present: &[IpNetwork]) -> Result<(), Drift> {
    for a in expected {
        if !present.contains(a) {
            let has: Vec<String> = present.iter().map(ToString::to_string).collect();
            return Err(Drift(format!(
                "address {a} from the ADD result is missing (it has {})",
                if has.is_empty() {
                    "none".into()
                } else {
                    has.join(", ")
                }
            )));
        }
    }
    Ok(())
}

/// Every expected route leaves through the link, via its gateway (`ValidateExpectedRoute`).
pub fn expected_routes(
    expected: &[Route],
    gateways: &[IpAddr],
    present: &[(IpNetwork, Option<IpAddr>)],
) -> Result<(), Drift> {
    for r in expected {
        let gw = r.gw.or_else(|| {
            gateways
                .iter()
                .copied()
                .find(|g| g.is_ipv4() == r.dst.is_ipv4())
        });
        let found = present
            .iter()
            .any(|(dst, via)| *dst == r.dst && (gw.is_none() || *via == gw));
        if !found {
            let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(Drift(format!("route {}{via} is missing", r.dst)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn a_missing_address_is_named_with_what_the_link_has() {
        assert_eq!(
            addresses(&[net("10.0.0.2/24")], &[net("10.0.0.2/24")]),
            Ok(())
        );
        let d = addresses(&[net("10.0.0.2/24")], &[net("10.0.0.9/24")]).unwrap_err();
        assert_eq!(
            d.0,
            "address 10.0.0.2/24 from the ADD result is missing (it has 10.0.0.9/24)"
        );
        let d = addresses(&[net("10.0.0.2/24")], &[]).unwrap_err();
        assert!(d.0.ends_with("(it has none)"), "{}", d.0);
    }

    #[test]
    fn a_route_without_a_gateway_is_expected_via_the_interfaces_gateway_of_its_family() {
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        let r = [Route {
            dst: net("10.77.0.0/16"),
            gw: None,
        }];
        let v6 = "fd00::1".parse().unwrap();
        assert_eq!(
            expected_routes(&r, &[v6, gw], &[(net("10.77.0.0/16"), Some(gw))]),
            Ok(())
        );
        let d = expected_routes(&r, &[gw], &[(net("10.77.0.0/16"), None)]).unwrap_err();
        assert_eq!(d.0, "route 10.77.0.0/16 via 10.0.0.1 is missing");
        assert!(expected_routes(&r, &[], &[(net("10.77.0.0/16"), None)]).is_ok());
    }
}
