//! Writing results in the shape of a version, as libcni's `GetAsVersion` + `json.Marshal` do.

use serde_json::{Map, Value};

use super::{CniResult, IpConfig, Shape, shape};

impl CniResult {
    /// The result in the shape of `version`, as JSON, exactly as libcni's `GetAsVersion` +
    /// `json.Marshal` write it; see [`CniResult::try_to_version`]. For a version libcni has no
    /// converter to, the result as held (what libcni hands the next plugin of an ADD: the
    /// previous result, unconverted).
    pub fn to_version(&self, version: &str) -> Value {
        self.try_to_version(version).unwrap_or_else(|_| {
            let own = self.source_version();
            self.try_to_version(own)
                .expect("a result converts to its own version")
        })
    }

    fn source_version(&self) -> &str {
        if self.cni_version.is_empty() {
            "1.1.0"
        } else {
            &self.cni_version
        }
    }

    /// The result converted to `version` as libcni v1.3.1 does:
    ///
    /// | from → to | interfaces | ips | routes | dns |
    /// |---|---|---|---|---|
    /// | 1.x → 1.x | all keys | no `version` | all keys | omitted when empty |
    /// | 1.x → 0.x | `name`, `mac`, `sandbox` | `version` from the address | all keys | always written |
    /// | 0.x → 0.x | as read | `version` as read (even `""`) | all keys | always written |
    /// | 0.x → 1.x | as read | `version` dropped | all keys | omitted when empty |
    ///
    /// and to 0.1.0/0.2.0 (`ip4`, `ip6`, `dns` always written), see [`CniResult::to_v02`].
    /// An empty `version` is 0.1.0 (libcni's `convert.Convert`). Errors on a version libcni
    /// cannot convert to, and where libcni's conversion fails.
    pub fn try_to_version(&self, version: &str) -> Result<Value, String> {
        let version = if version.is_empty() { "0.1.0" } else { version };
        let from = self.source_version();
        let no_converter = || format!("no converter for CNI result version {from} to {version}");
        let to = shape(version).ok_or_else(no_converter)?;
        let from_shape = shape(from).ok_or_else(no_converter)?;
        if to == Shape::V02 {
            return self.to_v02(version, from_shape);
        }
        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::String(version.into()));
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                let mut o = Map::new();
                o.insert("name".into(), Value::String(iface.name.clone()));
                if !iface.mac.is_empty() {
                    o.insert("mac".into(), Value::String(iface.mac.clone()));
                }
                if to == Shape::V1
                    && let Some(mtu) = iface.mtu.filter(|m| *m != 0)
                {
                    o.insert("mtu".into(), mtu.into());
                }
                if !iface.sandbox.is_empty() {
                    o.insert("sandbox".into(), Value::String(iface.sandbox.clone()));
                }
                if to == Shape::V1
                    && let Some(ext) = self.interface_ext.get(i)
                {
                    if !ext.socket_path.is_empty() {
                        o.insert("socketPath".into(), Value::String(ext.socket_path.clone()));
                    }
                    if !ext.pci_id.is_empty() {
                        o.insert("pciID".into(), Value::String(ext.pci_id.clone()));
                    }
                }
                Value::Object(o)
            })
            .collect();
        if !interfaces.is_empty() {
            out.insert("interfaces".into(), Value::Array(interfaces));
        }
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if to == Shape::V04 {
                    o.insert("version".into(), Value::String(ip_version(from_shape, ip)));
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), i.into());
                }
                o.insert("address".into(), Value::String(ip.address.to_string()));
                if let Some(g) = ip.gateway {
                    o.insert("gateway".into(), Value::String(g.to_string()));
                }
                Value::Object(o)
            })
            .collect();
        if !ips.is_empty() {
            out.insert("ips".into(), Value::Array(ips));
        }
        let routes: Vec<Value> = (0..self.routes.len())
            .map(|i| self.route_value(i, true))
            .collect();
        if !routes.is_empty() {
            out.insert("routes".into(), Value::Array(routes));
        }
        if to == Shape::V04 || !self.dns.is_empty() {
            out.insert("dns".into(), self.dns_value());
        }
        Ok(Value::Object(out))
    }

    /// The result at 0.1.0/0.2.0, as libcni writes one:
    ///
    /// - from 0.1.0/0.2.0: `ip4` and `ip6` as read, each with its own routes, every key kept
    ///   (libcni copies the struct);
    /// - from 0.3.0 and later (a 1.x result by way of 0.4.0, versions computed from the
    ///   address): the first IP config of version "4" is `ip4`, the first of "6" is `ip6`;
    ///   interfaces and the other addresses are dropped; each route goes to the config of its
    ///   destination's family, with `dst` and `gw` only, and is dropped when there is none;
    ///   a result with neither is refused ("cannot convert: no valid IP addresses").
    fn to_v02(&self, version: &str, from: Shape) -> Result<Value, String> {
        let slot = |v: &str| {
            self.ips
                .iter()
                .find(|ip| ip_version(from, ip) == v)
                .map(|ip| (ip, Vec::new()))
        };
        let (mut ip4, mut ip6) = (slot("4"), slot("6"));
        match self
            .ip4_routes
            .filter(|n| from == Shape::V02 && *n <= self.routes.len())
        {
            Some(n) => {
                for i in 0..self.routes.len() {
                    let to = if i < n { &mut ip4 } else { &mut ip6 };
                    if let Some((_, routes)) = to {
                        routes.push(self.route_value(i, true));
                    }
                }
            }
            None => {
                if from != Shape::V02 && ip4.is_none() && ip6.is_none() {
                    return Err("cannot convert: no valid IP addresses".into());
                }
                for (i, r) in self.routes.iter().enumerate() {
                    let to = if r.dst.is_ipv4() { &mut ip4 } else { &mut ip6 };
                    if let Some((_, routes)) = to {
                        routes.push(self.route_value(i, from == Shape::V02));
                    }
                }
            }
        }
        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::String(version.into()));
        for (key, config) in [("ip4", ip4), ("ip6", ip6)] {
            if let Some((ip, routes)) = config {
                let mut o = Map::new();
                o.insert("ip".into(), Value::String(ip.address.to_string()));
                if let Some(g) = ip.gateway {
                    o.insert("gateway".into(), Value::String(g.to_string()));
                }
                if !routes.is_empty() {
                    o.insert("routes".into(), Value::Array(routes));
                }
                out.insert(key.into(), Value::Object(o));
            }
        }
        out.insert("dns".into(), self.dns_value());
        Ok(Value::Object(out))
    }

    /// Route `i` as libcni's `types.Route` writes it; `ext` false: `dst` and `gw` only (what
    /// libcni's 0.4.0 → 0.2.0 conversion keeps).
    fn route_value(&self, i: usize, ext: bool) -> Value {
        let r = &self.routes[i];
        let mut o = Map::new();
        o.insert("dst".into(), Value::String(r.dst.to_string()));
        if let Some(g) = r.gw {
            o.insert("gw".into(), Value::String(g.to_string()));
        }
        if let Some(ext) = self.route_ext.get(i).filter(|_| ext) {
            for (k, n) in [
                ("mtu", ext.mtu),
                ("advmss", ext.advmss),
                ("priority", ext.priority),
            ] {
                if n != 0 {
                    o.insert(k.into(), n.into());
                }
            }
            for (k, n) in [("table", ext.table), ("scope", ext.scope)] {
                if let Some(n) = n {
                    o.insert(k.into(), n.into());
                }
            }
        }
        Value::Object(o)
    }

    fn dns_value(&self) -> Value {
        serde_json::to_value(&self.dns).expect("dns serializes")
    }
}

/// An IP config's 0.x `version` in a result of shape `from`: as read from a 0.x result (even
/// empty or wrong), computed from the address for a 1.x one (libcni's `convertIPConfigTo040`).
fn ip_version(from: Shape, ip: &IpConfig) -> String {
    match (from, &ip.version) {
        (Shape::V02 | Shape::V04, Some(v)) => v.clone(),
        (Shape::V02 | Shape::V04, None) => String::new(),
        (Shape::V1, _) => if ip.address.is_ipv4() { "4" } else { "6" }.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::types::IpConfig;
    use serde_json::json;
    #[test]
    fn results_convert_between_versions() {
        let legacy = json!({"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/n"}],
            "ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{}});
        let r = CniResult::from_value(&legacy).unwrap();
        let v1 = r.to_version("1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert!(v1.get("dns").is_none(), "1.x omits an empty dns");
        assert_eq!(v1["cniVersion"], "1.0.0");
        // 0.x writes "dns":{} always, as libcni's 040 type does.
        assert_eq!(r.to_version("0.3.1"), legacy);
        assert_eq!(r.addresses_of("eth0"), vec!["10.1.0.5".to_string()]);
        assert_eq!(r.mac_of("eth0"), Some("aa:bb:cc:dd:ee:ff"));
    }

    #[test]
    fn ip_versions_are_copied_between_0x_and_computed_from_1x() {
        let r = CniResult::from_value(&json!({"cniVersion":"0.3.0",
            "ips":[{"version":"6","address":"10.1.0.5/24"},{"address":"fd00::5/64"}]}))
        .unwrap();
        let v04 = r.to_version("0.4.0");
        assert_eq!(v04["ips"][0]["version"], "6", "copied, even wrong");
        assert_eq!(v04["ips"][1]["version"], "", "copied, even missing");
        let up = CniResult::from_value(&r.to_version("1.1.0")).unwrap();
        let down = up.to_version("0.4.0");
        assert_eq!(down["ips"][0]["version"], "4");
        assert_eq!(down["ips"][1]["version"], "6");
    }

    #[test]
    fn the_1_1_keys_survive_where_libcni_keeps_them() {
        let v11 = json!({"cniVersion":"1.1.0",
            "interfaces":[{"name":"net1","mtu":9000,"socketPath":"/s","pciID":"0000:3b:00.2"}],
            "routes":[{"dst":"10.0.0.0/8","mtu":1400,"advmss":1360,"priority":5,"table":0,"scope":253}]});
        let r = CniResult::from_value(&v11).unwrap();
        assert_eq!(r.to_version("1.0.0")["interfaces"], v11["interfaces"]);
        // 0.x interfaces have name/mac/sandbox only; routes keep everything (one Go type).
        assert_eq!(
            r.to_version("0.3.1")["interfaces"],
            json!([{"name":"net1"}])
        );
        assert_eq!(r.to_version("0.3.1")["routes"], v11["routes"]);
        // The delegate cache keeps them too.
        let cached: CniResult = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(cached, r);
    }

    #[test]
    fn legacy_results_keep_ip4_and_ip6_with_their_own_routes() {
        let v02 = json!({"cniVersion":"0.2.0",
            "ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"fd01::/64","mtu":1400}]},
            "ip6":{"ip":"fd00::5/64","routes":[{"dst":"::/0","gw":"fd00::1"}]},"dns":{}});
        let r = CniResult::from_value(&v02).unwrap();
        assert_eq!(
            r.to_version("0.2.0"),
            v02,
            "as read, even a v6 route under ip4"
        );
        assert_eq!(r.to_version("0.1.0")["ip4"], v02["ip4"]);
        let v04 = r.to_version("0.4.0");
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["ips"][1]["version"], "6");
        assert_eq!(v04["routes"][0], json!({"dst":"fd01::/64","mtu":1400}));
        // Made 1.x and back: routes placed by family, dst and gw only.
        let up = CniResult::from_value(&r.to_version("1.1.0")).unwrap();
        assert_eq!(
            up.to_version("0.2.0")["ip6"]["routes"],
            json!([{"dst":"fd01::/64"},{"dst":"::/0","gw":"fd00::1"}])
        );
        // Routes changed here are placed by family too.
        let mut changed = r.clone();
        changed.routes_changed();
        assert!(changed.to_version("0.2.0")["ip4"].get("routes").is_none());
    }

    #[test]
    fn a_result_made_here_is_1_1_and_unknown_targets_are_refused() {
        let r = CniResult {
            ips: vec![IpConfig {
                version: None,
                address: "10.1.0.5/24".parse().unwrap(),
                gateway: None,
                interface: None,
            }],
            ..Default::default()
        };
        assert_eq!(r.to_version("0.3.0")["ips"][0]["version"], "4");
        assert_eq!(
            r.to_version("0.2.0"),
            json!({"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/24"},"dns":{}})
        );
        assert_eq!(
            r.to_version("")["cniVersion"],
            "0.1.0",
            "no version is 0.1.0"
        );
        assert!(
            CniResult::default().try_to_version("0.2.0").is_err(),
            "0.2.0 needs an address"
        );
        assert!(r.try_to_version("2.0.0").is_err());
        // to_version never fails: a version libcni cannot convert to gets the result as held.
        assert_eq!(r.to_version("2.0.0")["cniVersion"], "1.1.0");
    }
}
