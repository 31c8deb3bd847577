//! Network configuration lists (`.conflist`), and single configs lifted into one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CniResult;

/// A network configuration list (`.conflist`), or a single config lifted into one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfList {
    /// `cniVersion`: the version every plugin of the list is called with; empty when the config
    /// has none (libcni passes it on so, and plugins read it as 0.1.0). For a list with
    /// `cniVersions`, the newest of those (and `cniVersion`) up to 1.1.0, as libcni picks it.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// `name`: the network's name, injected into each plugin's config.
    pub name: String,
    /// `plugins`: each plugin's own config, passed through untouched apart from the injected keys.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetConfList {
    /// Parse a conflist as libcni's `NetworkConfFromBytes` does (`cniVersion` optional,
    /// `cniVersions` honoured), or a single network config as its `ConfFromBytes` does (which
    /// becomes a list of one).
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
        let mut cni_version = match obj.get("cniVersion") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("\"cniVersion\" must be a string, not {other}")),
        };
        let name = string("name")?;
        if obj.contains_key("plugins")
            && let Some(listed) = obj.get("cniVersions")
        {
            cni_version = newest_version(listed, &cni_version)?;
        }
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

/// The newest of a list's `cniVersions` and its `cniVersion`, leaving out those newer than
/// 1.1.0 (the newest wasmcni speaks), as libcni v1.3 picks the version of a list; `cniVersion`
/// when none is left.
fn newest_version(listed: &Value, cni_version: &str) -> Result<String, String> {
    const NEWEST: (i64, i64, i64) = (1, 1, 0);
    let Value::Array(listed) = listed else {
        return Err(format!("\"cniVersions\" must be a list, not {listed}"));
    };
    let mut known = Vec::new();
    for (i, v) in listed.iter().enumerate() {
        let Value::String(v) = v else {
            return Err(format!("cniVersions[{i}] must be a string, not {v}"));
        };
        let parsed =
            go_version(v).ok_or_else(|| format!("cniVersions[{i}] {v:?} is not a version"))?;
        if parsed <= NEWEST {
            known.push((parsed, v.clone()));
        }
    }
    if !cni_version.is_empty() {
        let parsed = go_version(cni_version)
            .ok_or_else(|| format!("cniVersion {cni_version:?} is not a version"))?;
        if parsed <= NEWEST {
            known.push((parsed, cni_version.to_string()));
        }
    }
    // Of one version spelt two ways ("1.0", "1.0.0") libcni's unstable sort keeps either; the
    // last here. Any spelling but the canonical one is refused later (not a CNI version).
    known.sort_by_key(|(parsed, _)| *parsed);
    Ok(known
        .pop()
        .map_or_else(|| cni_version.to_string(), |(_, v)| v))
}

/// libcni's `version.ParseVersion`: up to three dot-separated integers (Go's `Atoi`: an
/// optional sign, decimal digits), missing parts 0; `""` is 0.1.0.
fn go_version(v: &str) -> Option<(i64, i64, i64)> {
    if v.is_empty() {
        return Some((0, 1, 0));
    }
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() > 3 {
        return None;
    }
    let atoi = |p: &str| -> Option<i64> {
        let digits = p.strip_prefix(['+', '-']).unwrap_or(p);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let part = |i: usize| parts.get(i).map_or(Some(0), |p| atoi(p));
    Some((part(0)?, part(1)?, part(2)?))
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
    fn versions_are_read_as_libcni_reads_them() {
        let v = |conf: Value| NetConfList::parse(&conf).map(|l| l.cni_version);
        assert_eq!(v(json!({"name":"n","type":"x"})), Ok(String::new()));
        assert_eq!(
            v(
                json!({"name":"n","cniVersion":"0.4.0","cniVersions":["0.3.1","1.0.0","2.0.0"],
                "plugins":[{"type":"x"}]})
            ),
            Ok("1.0.0".into()),
            "the newest up to 1.1.0"
        );
        assert_eq!(
            v(
                json!({"name":"n","cniVersion":"1.1.0","cniVersions":["1.0.0"],"plugins":[{"type":"x"}]})
            ),
            Ok("1.1.0".into())
        );
        assert_eq!(
            v(json!({"name":"n","cniVersions":["3.0.0"],"plugins":[{"type":"x"}]})),
            Ok(String::new()),
            "none left: the list's own (none)"
        );
        assert!(v(json!({"name":"n","cniVersions":["x.1"],"plugins":[{"type":"x"}]})).is_err());
        assert!(v(json!({"name":"n","cniVersions":"1.0.0","plugins":[{"type":"x"}]})).is_err());
        assert!(v(json!({"name":"n","cniVersion":1,"type":"x"})).is_err());
        // A single config is not a list: libcni does not look at its cniVersions.
        assert_eq!(
            v(json!({"name":"n","cniVersion":"0.3.1","cniVersions":["1.0.0"],"type":"x"})),
            Ok("0.3.1".into())
        );
    }

    #[test]
    fn bad_lists_are_refused() {
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
