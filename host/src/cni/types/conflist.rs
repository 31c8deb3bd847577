//! Network configuration lists (`.conflist`), and single configs lifted into one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CniResult;

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
}
