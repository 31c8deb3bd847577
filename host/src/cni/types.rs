//! Wire types of the spec: network config lists and results, with version conversion.
//!
//! Results are held in the 1.x shape and written in the shape the caller's cniVersion asks for
//! (0.3.x/0.4.0 add `version` to each IP config), as libcni's `convert` does.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A network configuration list (`.conflist`), or a single config lifted into one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfList {
    /// `cniVersion`: the version every plugin of the list is called with.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// `name`: the network's name, injected into each plugin's config.
    pub name: String,
    /// `plugins`: each plugin's own config, passed through untouched apart from the injected keys.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetConfList {
    /// Parse a conflist, or a single network config (which becomes a list of one).
    pub fn parse(value: &Value) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or("a network config must be a JSON object")?;
        let string = |k: &str| -> Result<String, String> {
            match obj.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::String(_)) | None => Err(format!("{k:?} is required")),
                Some(other) => Err(format!("{k:?} must be a string, not {other}")),
            }
        };
        let cni_version = string("cniVersion")?;
        let name = string("name")?;
        let plugins = match obj.get("plugins") {
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err("\"plugins\" is empty".into());
                }
                list.iter()
                    .enumerate()
                    .map(|(i, p)| {
                        p.as_object()
                            .cloned()
                            .ok_or(format!("plugins[{i}] is not an object"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => return Err("\"plugins\" must be a list".into()),
            None => vec![obj.clone()],
        };
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) if !t.is_empty() => {}
                _ => {
                    return Err(format!(
                        "plugins[{i}]: \"type\" is required and must be a string"
                    ));
                }
            }
        }
        Ok(NetConfList {
            cni_version,
            name,
            plugins,
        })
    }

    /// The `type` of plugin `i`.
    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins[i]["type"].as_str().unwrap_or_default()
    }

    /// Plugin `i`'s config as the spec hands it to a plugin: with `name`, `cniVersion` and (when
    /// given) `prevResult` injected.
    pub fn plugin_conf(&self, i: usize, prev: Option<&CniResult>) -> Value {
        let mut conf = self.plugins[i].clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        conf.remove("prevResult");
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.to_version(&self.cni_version));
        }
        Value::Object(conf)
    }
}

/// An interface a plugin created or configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// `name`.
    pub name: String,
    /// `mac`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// `mtu` (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `sandbox`: the netns path for interfaces inside the container, empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// One IP configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `version` ("4"/"6"): present in 0.3.x/0.4.0 results only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `address`, CIDR notation.
    pub address: IpNetwork,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// `interface`: index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// `dst`.
    pub dst: IpNetwork,
    /// `gw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// `nameservers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// `domain`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// `search`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// `options`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// A result, held in the 1.x shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    /// `cniVersion`.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// `interfaces`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// `ips`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// `routes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// `dns`.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// Read a result of any supported version.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let mut r: CniResult =
            serde_json::from_value(v.clone()).map_err(|e| format!("not a CNI result: {e}"))?;
        for ip in &mut r.ips {
            ip.version = None;
        }
        Ok(r)
    }

    /// The result in the shape of `version`, as JSON.
    pub fn to_version(&self, version: &str) -> Value {
        let mut r = self.clone();
        r.cni_version = version.to_string();
        let legacy = version.starts_with("0.");
        for ip in &mut r.ips {
            ip.version = legacy.then(|| if ip.address.is_ipv4() { "4" } else { "6" }.to_string());
        }
        serde_json::to_value(r).expect("result serializes")
    }

    /// Addresses (without prefix) of the IP configs that belong to interface `name`, or to no
    /// interface in particular.
    pub fn addresses_of(&self, name: &str) -> Vec<String> {
        let idx = self.interfaces.iter().position(|i| i.name == name);
        self.ips
            .iter()
            .filter(|ip| ip.interface.is_none() || ip.interface == idx)
            .map(|ip| ip.address.ip().to_string())
            .collect()
    }

    /// The MAC of the interface `name` inside the sandbox, if reported.
    pub fn mac_of(&self, name: &str) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|i| i.name == name && !i.sandbox.is_empty())
            .or_else(|| self.interfaces.iter().find(|i| i.name == name))
            .map(|i| i.mac.as_str())
            .filter(|m| !m.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_config_becomes_a_list() {
        let l = NetConfList::parse(
            &json!({"cniVersion":"0.3.1","name":"n","type":"ipvlan","master":"eth1"}),
        )
        .unwrap();
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugin_type(0), "ipvlan");
        let conf = l.plugin_conf(0, None);
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["master"], "eth1");
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(NetConfList::parse(&json!({"name":"n","type":"x"})).is_err());
        assert!(
            NetConfList::parse(&json!({"cniVersion":"1.0.0","name":"n","plugins":[]})).is_err()
        );
        assert!(
            NetConfList::parse(&json!({"cniVersion":"1.0.0","name":"n","plugins":[{"x":1}]}))
                .is_err()
        );
        assert!(NetConfList::parse(&json!([1])).is_err());
    }

    #[test]
    fn results_convert_between_versions() {
        let legacy = json!({"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/n"}],
            "ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{}});
        let r = CniResult::from_value(&legacy).unwrap();
        let v1 = r.to_version("1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert_eq!(v1["cniVersion"], "1.0.0");
        let back = r.to_version("0.3.1");
        assert_eq!(
            back,
            legacy
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.remove("dns");
                    Value::Object(o)
                })
                .unwrap()
        );
        assert_eq!(r.addresses_of("eth0"), vec!["10.1.0.5".to_string()]);
        assert_eq!(r.mac_of("eth0"), Some("aa:bb:cc:dd:ee:ff"));
    }
}
