//! wasmcni's own network config: the `"type": "wasmcni"` plugin in the node's primary conflist.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "wasmcni", "type": "wasmcni",
//!  "kubeconfig": "/etc/cni/net.d/wasmcni.d/wasmcni.kubeconfig",
//!  "clusterNetwork": "/etc/cni/net.d/wasmcni.d/cluster.conflist",
//!  "delegation": {"guest": "multus-default"}}
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// Why wasmcni's own config (stdin) is unusable. None is retryable: the config must change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// stdin is not JSON.
    #[error("network config is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// stdin is JSON but not an object.
    #[error("invalid wasmcni network config: not a JSON object")]
    NotObject,
    /// `cniVersion` is missing or one wasmcni does not speak.
    #[error("unsupported cniVersion {found:?}")]
    Version {
        /// The version the config names (empty when absent).
        found: String,
    },
    /// A key is missing or of the wrong type.
    #[error("invalid wasmcni network config")]
    Invalid(#[source] serde_json::Error),
}

/// Which guest to run for a decision, as a config names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestRef {
    /// The guest's name: built in (`multus-default`, `lowest-free`) or pinned by the admin.
    pub guest: String,
    /// The sha256 the module must have, when the config pins it itself.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl GuestRef {
    /// A reference to a built-in guest.
    pub fn builtin(name: &str) -> Self {
        GuestRef {
            guest: name.to_string(),
            sha256: None,
        }
    }
}

fn default_delegation() -> GuestRef {
    GuestRef::builtin("multus-default")
}
fn default_guest_pins() -> String {
    "kube-system/wasmcni-guests".into()
}
fn default_cni_dir() -> PathBuf {
    PathBuf::from("/var/lib/wasmcni/delegates")
}
fn default_guest_cache() -> PathBuf {
    PathBuf::from("/var/lib/wasmcni/guests")
}
fn default_ipam_namespace() -> String {
    "kube-system".into()
}
fn default_global_namespaces() -> Vec<String> {
    vec!["default".into(), "kube-system".into()]
}
fn default_guest_timeout_ms() -> u64 {
    50
}

/// The `wasmcni` plugin config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginConf {
    /// `cniVersion`: results are written in this version.
    pub cni_version: String,
    /// `name`: the network's name.
    pub name: String,
    /// `kubeconfig`: the identity wasmcni uses (RBAC in deploy/rbac.yaml).
    pub kubeconfig: PathBuf,
    /// `clusterNetwork`: path of the conf/conflist of the pod's primary network (Multus'
    /// `clusterNetwork`), whose plugins are exec'd from CNI_PATH for CNI_IFNAME.
    pub cluster_network: PathBuf,
    /// `defaultNetworks`: NADs (`namespace/name`) every pod gets before its own.
    #[serde(default)]
    pub default_networks: Vec<String>,
    /// `delegation`: the guest that decides a pod's attachments.
    #[serde(default = "default_delegation")]
    pub delegation: GuestRef,
    /// `guestPins`: the admin's ConfigMap of pinned guests, `namespace/name`.
    #[serde(default = "default_guest_pins")]
    pub guest_pins: String,
    /// `cniDir`: where the delegate cache lives (what DEL needs when the API server is away).
    #[serde(default = "default_cni_dir")]
    pub cni_dir: PathBuf,
    /// `guestCacheDir`: root-only directory of compiled guests.
    #[serde(default = "default_guest_cache")]
    pub guest_cache_dir: PathBuf,
    /// `ipamNamespace`: where IPPool objects live (whereabouts' default: kube-system).
    #[serde(default = "default_ipam_namespace")]
    pub ipam_namespace: String,
    /// `guestTimeoutMs`: the wall-clock budget of one guest call.
    #[serde(default = "default_guest_timeout_ms")]
    pub guest_timeout_ms: u64,
    /// `namespaceIsolation`: pods may only attach NADs of their own namespace or of
    /// `globalNamespaces` (Multus' option of the same name).
    #[serde(default)]
    pub namespace_isolation: bool,
    /// `globalNamespaces`: NADs any pod may use under `namespaceIsolation`.
    #[serde(default = "default_global_namespaces")]
    pub global_namespaces: Vec<String>,
    /// `nodeName`: defaults to the host name.
    #[serde(default)]
    pub node_name: Option<String>,
    /// `prevResult`: set when wasmcni is not first in its list.
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// `runtimeConfig`: capability arguments the runtime fills in for the capabilities the
    /// conflist declares (containerd: `io.kubernetes.cri.pod-annotations`, …).
    #[serde(default)]
    pub runtime_config: Option<Value>,
    /// Top-level keys of the config that wasmcni does not read (misspelt, or another tool's),
    /// besides the protocol's own (`type`, `capabilities`, `args`): never silently dropped —
    /// a CNI call logs them, the installer refuses them.
    #[serde(skip)]
    pub unread: Vec<String>,
}

/// Keys of a plugin config that belong to the protocol or the runtime, not to wasmcni: read by
/// libcni (`type`, `capabilities`) or by the plugins a config is handed on to (`args`).
const PROTOCOL_KEYS: &[&str] = &["type", "capabilities", "args"];

impl PluginConf {
    /// Parse stdin.
    pub fn parse(stdin: &[u8]) -> Result<Self, Error> {
        let value: Value = serde_json::from_slice(stdin).map_err(Error::NotJson)?;
        if !value.is_object() {
            return Err(Error::NotObject);
        }
        let version = value
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !crate::cni::supports(version) {
            return Err(Error::Version {
                found: version.to_string(),
            });
        }
        let mut unread = Vec::new();
        let mut conf: PluginConf = serde_ignored::deserialize(value, |path| {
            // Top-level keys only: nested objects (a GuestRef) deny unknown fields themselves.
            if let serde_ignored::Path::Map { parent, key } = path
                && matches!(parent, serde_ignored::Path::Root)
                && !PROTOCOL_KEYS.contains(&key.as_str())
            {
                unread.push(key.clone());
            }
        })
        .map_err(Error::Invalid)?;
        conf.unread = unread;
        Ok(conf)
    }

    /// The node this call runs on.
    pub fn node(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_wasmcni_does_not_read_are_named_not_dropped() {
        let conf = PluginConf::parse(
            br#"{"cniVersion": "1.0.0", "name": "n", "type": "wasmcni", "kubeconfig": "/k",
                 "clusterNetwork": "/c", "capabilities": {"portMappings": true},
                 "defaultNetwork": ["ns/a"], "logLevel": "debug",
                 "delegation": {"guest": "multus-default"}}"#,
        )
        .unwrap();
        assert_eq!(conf.unread, ["defaultNetwork", "logLevel"]);
        // A nested section still refuses what it does not know.
        let e = PluginConf::parse(
            br#"{"cniVersion": "1.0.0", "name": "n", "type": "wasmcni", "kubeconfig": "/k",
                 "clusterNetwork": "/c", "delegation": {"guest": "g", "sha": "x"}}"#,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    }
}
