//! Reading results as libcni reads them: from bytes, from a plugin's stdout, as `prevResult`.

use serde_json::{Map, Value};

use super::gojson::{cidr, field, fold, int, ip, kind, list, object, string, strings};
use super::{CniResult, Dns, Interface, InterfaceExt, IpConfig, Route, RouteExt, Shape, shape};

impl CniResult {
    /// Read a result the way libcni reads one from bytes (`create.CreateFromBytes`): its own
    /// `cniVersion` (absent or empty means 0.1.0) picks the shape.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let obj = object(v, "result")?;
        let version = match field(obj, "cniVersion") {
            None => "0.1.0".to_string(),
            Some(Value::String(s)) if s.is_empty() => "0.1.0".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(format!(
                    "decoding version from network config: cannot unmarshal {} into a string",
                    kind(v)
                ));
            }
        };
        Self::create(&version, obj)
    }

    /// Read a plugin's stdout for a config at `conf_version`, as libcni's
    /// `invoke.ExecPluginWithResult` does: a result without a (string, non-empty) `cniVersion`
    /// is taken to be at `conf_version`; `null` is an empty result.
    pub fn from_plugin_output(v: &Value, conf_version: &str) -> Result<Self, String> {
        let empty = Map::new();
        let obj = match v {
            Value::Null => &empty,
            v => object(v, "failed to unmarshal raw result")?,
        };
        match obj.get("cniVersion") {
            Some(Value::String(s)) if !s.is_empty() => Self::create(s, obj),
            _ => {
                let mut obj = obj.clone();
                obj.insert("cniVersion".into(), Value::String(conf_version.into()));
                Self::create(conf_version, &obj)
            }
        }
    }

    /// Read the `prevResult` of a config at `conf_version`, as every reference plugin does
    /// (`version.ParsePrevResult`): the config's version picks the shape, and the result's own
    /// `cniVersion` (the config's when absent) must be one of that shape's versions — so a
    /// 0.4.0 prevResult in a 0.3.1 config is read, in a 1.0.0 config refused
    /// ([`CniResult::prev_result_version`] tells that case apart).
    pub fn from_prev_result(v: &Value, conf_version: &str) -> Result<Self, String> {
        let version = Self::prev_result_version(v, conf_version)?;
        let mut obj = object(v, "prevResult")?.clone();
        obj.retain(|k, _| fold(k) != "cniversion");
        obj.insert("cniVersion".into(), Value::String(version));
        Self::create(conf_version, &obj).map_err(|e| format!("could not parse prevResult: {e}"))
    }

    /// The version a `prevResult` is read at in a config at `conf_version`, or why libcni's
    /// `version.ParsePrevResult` refuses that version (a version of the other shape, an unknown
    /// one, or a config version libcni has no result type for). Only the version is judged: a
    /// prevResult that is not an object passes here and is refused by
    /// [`CniResult::from_prev_result`].
    pub fn prev_result_version(v: &Value, conf_version: &str) -> Result<String, String> {
        let Some(obj) = v.as_object() else {
            return Ok(conf_version.to_string());
        };
        // ParsePrevResult injects "CNIVersion" (sic) unless that very key holds a non-empty
        // string; Go then marshals the map with sorted keys, and the struct's `cniVersion`
        // takes the last key that folds to it (`null` leaves it as it was).
        let injected = match obj.get("CNIVersion") {
            None => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        let mut keys: Vec<(&str, Value)> = obj
            .iter()
            .filter(|(k, _)| fold(k) == "cniversion" && (k.as_str() != "CNIVersion" || !injected))
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if injected {
            keys.push(("CNIVersion", Value::String(conf_version.into())));
        }
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut version = String::new();
        for (_, value) in keys {
            match value {
                Value::Null => {}
                Value::String(s) => version = s,
                v => {
                    return Err(format!(
                        "could not parse prevResult: cannot unmarshal {} into cniVersion",
                        kind(&v)
                    ));
                }
            }
        }
        let family = shape(conf_version).ok_or_else(|| {
            format!("could not parse prevResult: unsupported CNI result version {conf_version:?}")
        })?;
        if shape(&version) != Some(family) {
            return Err(format!(
                "could not parse prevResult: result type supports {} but unmarshalled CNIVersion is {version:?}",
                supported(family)
            ));
        }
        Ok(version)
    }

    /// libcni's `create.Create(version, bytes)`: the shape of `version`, then the result's own
    /// `cniVersion` must be one of that shape's versions.
    fn create(version: &str, obj: &Map<String, Value>) -> Result<Self, String> {
        let shape = shape(version).ok_or_else(|| {
            format!(
                "unsupported CNI result version {version:?} (wasmcni reads 0.1.0, 0.2.0, 0.3.0, \
                 0.3.1, 0.4.0, 1.0.0 and 1.1.0)"
            )
        })?;
        let mut r = match shape {
            Shape::V02 => Self::parse_v02(obj)?,
            Shape::V04 | Shape::V1 => Self::parse(shape, obj)?,
        };
        if self::shape(&r.cni_version) != Some(shape) {
            return Err(format!(
                "result type supports {} but unmarshalled CNIVersion is {:?}",
                supported(shape),
                r.cni_version
            ));
        }
        if r.cni_version.is_empty() {
            r.cni_version = "0.1.0".into();
        }
        if shape == Shape::V1 {
            for ip in &mut r.ips {
                ip.version = None;
            }
        }
        Ok(r)
    }

    /// Decode `obj` into libcni's struct of `shape`: unknown keys are dropped, and so are the
    /// keys that shape has no field for (a 0.x interface's `mtu`, a 1.x IP's `version`).
    fn parse(shape: Shape, obj: &Map<String, Value>) -> Result<Self, String> {
        let v1 = shape == Shape::V1;
        let mut r = CniResult {
            cni_version: string(obj, "cniVersion", "result")?,
            ..Default::default()
        };
        for (i, v) in list(obj, "interfaces", "result")?.iter().enumerate() {
            let path = format!("interfaces[{i}]");
            let o = object(v, &path)?;
            let mut iface = Interface {
                name: string(o, "name", &path)?,
                mac: string(o, "mac", &path)?,
                mtu: None,
                sandbox: string(o, "sandbox", &path)?,
            };
            let mut ext = InterfaceExt::default();
            if v1 {
                iface.mtu = match int(o, "mtu", &path)? {
                    None | Some(0) => None,
                    Some(n) => Some(u32::try_from(n).map_err(|_| {
                        format!("{path}.mtu: {n} is not an MTU (wasmcni holds 0 … 2^32-1)")
                    })?),
                };
                ext.socket_path = string(o, "socketPath", &path)?;
                ext.pci_id = string(o, "pciID", &path)?;
            }
            r.interfaces.push(iface);
            r.interface_ext.push(ext);
        }
        for (i, v) in list(obj, "ips", "result")?.iter().enumerate() {
            let path = format!("ips[{i}]");
            let o = object(v, &path)?;
            let interface = match int(o, "interface", &path)? {
                None => None,
                Some(n) => Some(usize::try_from(n).map_err(|_| {
                    format!("{path}.interface: {n} is not an index into interfaces")
                })?),
            };
            r.ips.push(IpConfig {
                version: if v1 {
                    None
                } else {
                    Some(string(o, "version", &path)?)
                },
                address: cidr(o, "address", &path)?,
                gateway: ip(o, "gateway", &path)?,
                interface,
            });
        }
        r.push_routes(obj, "result", "routes")?;
        r.dns = dns(obj)?;
        if r.interface_ext
            .iter()
            .all(|e| e == &InterfaceExt::default())
        {
            r.interface_ext.clear();
        }
        r.trim_route_ext();
        Ok(r)
    }

    /// Decode `obj` into libcni's 0.2.0 struct (`types020.Result`): `ip4` and `ip6`, each an
    /// address with its gateway and routes, and `dns`; every other key is dropped. Held as the
    /// 1.x model: `ip4` (version "4") before `ip6` (version "6"), their routes in that order,
    /// and [`CniResult::ip4_routes`] to tell them apart again.
    fn parse_v02(obj: &Map<String, Value>) -> Result<Self, String> {
        let mut r = CniResult {
            cni_version: string(obj, "cniVersion", "result")?,
            ..Default::default()
        };
        let mut ip4_routes = 0;
        for (key, version) in [("ip4", "4"), ("ip6", "6")] {
            if let Some(v) = field(obj, key) {
                let o = object(v, key)?;
                r.ips.push(IpConfig {
                    version: Some(version.into()),
                    address: cidr(o, "ip", key)?,
                    gateway: ip(o, "gateway", key)?,
                    interface: None,
                });
                r.push_routes(o, key, &format!("{key}.routes"))?;
            }
            if key == "ip4" {
                ip4_routes = r.routes.len();
            }
        }
        r.ip4_routes = Some(ip4_routes);
        r.dns = dns(obj)?;
        r.trim_route_ext();
        Ok(r)
    }

    /// Append the routes in `obj`'s `routes` list (libcni's `types.Route`, one type in every
    /// version: the 1.1 keys too) to `routes`/`route_ext`; `path` names the list in errors.
    fn push_routes(
        &mut self,
        obj: &Map<String, Value>,
        parent: &str,
        path: &str,
    ) -> Result<(), String> {
        for (i, v) in list(obj, "routes", parent)?.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let o = object(v, &path)?;
            self.routes.push(Route {
                dst: cidr(o, "dst", &path)?,
                gw: ip(o, "gw", &path)?,
            });
            self.route_ext.push(RouteExt {
                mtu: int(o, "mtu", &path)?.unwrap_or(0),
                advmss: int(o, "advmss", &path)?.unwrap_or(0),
                priority: int(o, "priority", &path)?.unwrap_or(0),
                table: int(o, "table", &path)?,
                scope: int(o, "scope", &path)?,
            });
        }
        Ok(())
    }

    fn trim_route_ext(&mut self) {
        if self.route_ext.iter().all(|e| e == &RouteExt::default()) {
            self.route_ext.clear();
        }
    }
}

/// `obj`'s `dns` (`types.DNS`, one type in every version).
fn dns(obj: &Map<String, Value>) -> Result<Dns, String> {
    let Some(d) = field(obj, "dns") else {
        return Ok(Dns::default());
    };
    let o = object(d, "dns")?;
    Ok(Dns {
        nameservers: strings(o, "nameservers", "dns")?,
        domain: string(o, "domain", "dns")?,
        search: strings(o, "search", "dns")?,
        options: strings(o, "options", "dns")?,
    })
}

/// The versions a shape's result type takes, as libcni's error prints them (Go's `%v` of its
/// `supportedVersions`, whose first entry for 0.2.0 is the empty version).
fn supported(shape: Shape) -> &'static str {
    match shape {
        Shape::V02 => "[ 0.1.0 0.2.0]",
        Shape::V04 => "[0.3.0 0.3.1 0.4.0]",
        Shape::V1 => "[1.0.0 1.1.0]",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn prev_results_are_read_in_the_configs_shape_family() {
        let prev = json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24"}]});
        let r = CniResult::from_prev_result(&prev, "0.3.1").unwrap();
        assert_eq!(r.cni_version, "0.4.0");
        assert!(CniResult::from_prev_result(&prev, "1.0.0").is_err());
        // Without a version it is the config's.
        let bare = json!({"ips":[{"address":"10.1.0.5/24"}]});
        assert_eq!(
            CniResult::from_prev_result(&bare, "1.1.0")
                .unwrap()
                .cni_version,
            "1.1.0"
        );
        assert!(CniResult::from_prev_result(&json!({"cniVersion":"9.9.9"}), "1.1.0").is_err());
        // The version alone, for callers that answer a version mismatch with its own code.
        assert_eq!(
            CniResult::prev_result_version(&prev, "0.3.0").as_deref(),
            Ok("0.4.0")
        );
        assert!(CniResult::prev_result_version(&prev, "1.1.0").is_err());
        assert!(CniResult::prev_result_version(&json!("x"), "1.1.0").is_ok());
        assert!(CniResult::from_prev_result(&json!("x"), "1.1.0").is_err());
    }

    #[test]
    fn plugin_output_without_a_version_is_at_the_configs() {
        let out = json!({"ips":[{"version":"4","address":"10.1.0.5/24"}]});
        let r = CniResult::from_plugin_output(&out, "0.4.0").unwrap();
        assert_eq!(r.cni_version, "0.4.0");
        // Read as bytes, a result without a version is 0.1.0, whose shape has no `ips`.
        let legacy = CniResult::from_value(&out).unwrap();
        assert_eq!(legacy.cni_version, "0.1.0");
        assert!(legacy.ips.is_empty());
        let empty = CniResult::from_plugin_output(&out, "").unwrap();
        assert_eq!(
            empty.cni_version, "0.1.0",
            "a config without a version is 0.1.0"
        );
        assert_eq!(
            CniResult::from_plugin_output(&Value::Null, "1.0.0")
                .unwrap()
                .to_version("1.0.0"),
            json!({"cniVersion":"1.0.0"})
        );
    }

    #[test]
    fn go_json_leniency_is_followed() {
        let r = CniResult::from_value(&json!({"cniVersion":"1.1.0","IPs":[
            {"address":"::ffff:10.1.2.3/120","gateway":"","interface":null}],
            "dns":null,"interfaces":[{"name":null}]}))
        .unwrap();
        assert_eq!(
            r.to_version("1.1.0"),
            json!({"cniVersion":"1.1.0","interfaces":[{"name":""}],"ips":[{"address":"10.1.2.3/24"}]})
        );
        for bad in [
            json!({"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5"}]}),
            json!({"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5/24","interface":1.0}]}),
            json!({"cniVersion":"1.1.0","routes":[{"dst":""}]}),
            json!({"cniVersion":"0.5.0"}),
        ] {
            assert!(CniResult::from_value(&bad).is_err(), "{bad}");
        }
    }
}
