//! wasmcni's own network config: the `"type": "wasmcni"` plugin in the node's primary conflist.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "wasmcni", "type": "wasmcni",
//!  "kubeconfig": "/etc/cni/net.d/wasmcni.d/wasmcni.kubeconfig",
//!  "clusterNetwork": "/etc/cni/net.d/wasmcni.d/cluster.conflist",
//!  "delegation": {"guest": "multus-default"}}
//! ```
//!
//! A Multus config is one too, with `"type"` changed: every key Multus v4 reads
//! (`pkg/types/conf.go`) is read here with Multus' meaning and defaults, or refused by name
//! ([`Error::Refused`]). Keys match case-insensitively, as Go's `encoding/json` matches them.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
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
    /// A key (a Multus one) that wasmcni understands but will not do, or a value it cannot use.
    #[error("network config key {key:?}: {why}")]
    Refused {
        /// The key, as the config spells it.
        key: String,
        /// Why, and what to write instead.
        why: String,
    },
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

/// A network the node config names — `clusterNetwork`, an entry of `defaultNetworks` or of
/// `delegates` — read as Multus' `getNetDelegate` reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkSource {
    /// An absolute path: a conf or conflist file, or a directory whose first conf file (by
    /// name, as libcni sorts them) is the network.
    Path(PathBuf),
    /// A bare name: the NetworkAttachmentDefinition of that name in `multusNamespace`, else the
    /// conf in `confDir` whose `name` it is.
    Name(String),
    /// `namespace/name`: that NetworkAttachmentDefinition. wasmcni's spelling: Multus would
    /// read it as a relative path (relative to the runtime's working directory).
    Nad {
        /// Namespace of the NAD.
        namespace: String,
        /// Name of the NAD.
        name: String,
    },
    /// A config written inline (an entry of Multus' `delegates`).
    Inline(Value),
}

impl NetworkSource {
    /// Read a name as `clusterNetwork` and `defaultNetworks` hold it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("empty network name".into());
        }
        if text.starts_with('/') {
            return Ok(NetworkSource::Path(PathBuf::from(text)));
        }
        // Names are checked as Kubernetes names where they are looked up (delegate::networks):
        // this layer knows no API.
        match text.split_once('/') {
            None => Ok(NetworkSource::Name(text.to_string())),
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(NetworkSource::Nad {
                    namespace: namespace.into(),
                    name: name.into(),
                })
            }
            Some(_) => Err(format!(
                "{text:?} is neither an absolute path nor a NetworkAttachmentDefinition \
                 (NAME or NAMESPACE/NAME)"
            )),
        }
    }
}

/// Multus' log levels and the ones wasmcni adds, as a `tracing` level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub tracing::Level);

impl LogLevel {
    /// `logLevel`, case-insensitive: Multus' `panic`, `error`, `verbose`, `debug`, and
    /// `warn`/`info`/`trace`.
    pub fn parse(text: &str) -> Result<Self, String> {
        use tracing::Level;
        Ok(LogLevel(match text.to_ascii_lowercase().as_str() {
            // wasmcni does not panic on purpose: errors are what is left at Multus' quietest.
            "panic" | "error" => Level::ERROR,
            "warn" | "warning" => Level::WARN,
            "verbose" | "info" => Level::INFO,
            "debug" => Level::DEBUG,
            "trace" => Level::TRACE,
            _ => {
                return Err(format!(
                    "{text:?} is not a log level (debug, verbose, error, panic; or warn, info, trace)"
                ));
            }
        }))
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
fn default_conf_dir() -> PathBuf {
    PathBuf::from("/etc/cni/multus/net.d")
}
fn default_guest_cache() -> PathBuf {
    PathBuf::from("/var/lib/wasmcni/guests")
}
fn default_kube_system() -> String {
    "kube-system".into()
}
fn default_system_namespaces() -> Vec<String> {
    vec!["kube-system".into()]
}
fn default_global_namespaces() -> Vec<String> {
    vec!["default".into()]
}
fn default_guest_timeout_ms() -> u64 {
    50
}
fn default_true() -> bool {
    true
}

/// `globalNamespaces`: Multus' comma-separated string (`"default,tenant-a"`), or a list.
fn namespace_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Form::deserialize(d)? {
        Form::Text(s) => s.split(',').map(|n| n.trim().to_string()).collect(),
        Form::List(l) => l,
    })
}

/// The `wasmcni` plugin config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginConf {
    /// `cniVersion`: results are written in this version (0.1.0 when the config has none, as
    /// skel reads it).
    pub cni_version: String,
    /// `name`: the network's name.
    pub name: String,
    /// `kubeconfig`: the identity wasmcni uses (RBAC in deploy/rbac.yaml).
    pub kubeconfig: PathBuf,
    /// `clusterNetwork` as written: see [`PluginConf::cluster`].
    #[serde(default, rename = "clusterNetwork")]
    cluster_network_text: Option<String>,
    /// `delegates` (Multus): inline configs, the first the cluster network when
    /// `clusterNetwork` is not set, the others attached to every pod after it.
    #[serde(default)]
    delegates: Vec<Value>,
    /// `defaultNetworks` as written: see [`PluginConf::defaults`].
    #[serde(default, rename = "defaultNetworks")]
    default_networks_text: Vec<String>,
    /// The pod's primary network, exec'd from CNI_PATH for CNI_IFNAME: `clusterNetwork` (a
    /// path, a NAD name in `multusNamespace` or a conf name in `confDir`), else `delegates[0]`.
    #[serde(skip, default = "no_network")]
    pub cluster: NetworkSource,
    /// Networks every pod outside `systemNamespaces` gets before its own: `defaultNetworks`
    /// (with `clusterNetwork`), else `delegates[1..]` (every pod, as in Multus).
    #[serde(skip)]
    pub defaults: Vec<NetworkSource>,
    /// Whether `defaults` skip pods in `systemNamespaces` (Multus: only `defaultNetworks` do).
    #[serde(skip)]
    pub defaults_skip_system: bool,
    /// `confDir`: where networks named by conf name are found (Multus' default).
    #[serde(default = "default_conf_dir")]
    pub conf_dir: PathBuf,
    /// `binDir`: searched before CNI_PATH for delegate plugins, as Multus does. Unset: CNI_PATH
    /// only (Multus' default `/opt/cni/bin` is what runtimes put in CNI_PATH anyway).
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// `multusNamespace`: where `clusterNetwork`, `defaultNetworks` and the pod's
    /// `v1.multus-cni.io/default-network` NADs are looked up by bare name.
    #[serde(default = "default_kube_system")]
    pub multus_namespace: String,
    /// `systemNamespaces`: pods there get no `defaultNetworks` (Multus' default: kube-system).
    #[serde(default = "default_system_namespaces")]
    pub system_namespaces: Vec<String>,
    /// `readinessindicatorfile`: ADD, STATUS and GC wait (up to 45 s, as Multus) until this
    /// file exists — the cluster network's own "I am ready" marker.
    #[serde(
        default,
        rename = "readinessindicatorfile",
        alias = "readinessIndicatorFile"
    )]
    pub readiness_indicator_file: Option<PathBuf>,
    /// `logLevel` (Multus' levels, see [`LogLevel`]).
    #[serde(default)]
    log_level: Option<String>,
    /// The parsed `logLevel`.
    #[serde(skip)]
    pub log: Option<LogLevel>,
    /// `logFile`: log lines are appended there (created 0600).
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// `logToStderr`: also log to stderr (Multus' default: true).
    #[serde(default = "default_true")]
    pub log_to_stderr: bool,
    /// `retryDeleteOnError` (Multus): keep what DEL needs when it fails, for the runtime's
    /// retry. wasmcni always does (false would leak the addresses of a failed DEL): false is
    /// read and logged as overridden.
    #[serde(default)]
    pub retry_delete_on_error: Option<bool>,
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
    #[serde(default = "default_kube_system")]
    pub ipam_namespace: String,
    /// `guestTimeoutMs`: the wall-clock budget of one guest call.
    #[serde(default = "default_guest_timeout_ms")]
    pub guest_timeout_ms: u64,
    /// `namespaceIsolation`: pods may only attach NADs of their own namespace or of
    /// `globalNamespaces` (Multus' option of the same name).
    #[serde(default)]
    pub namespace_isolation: bool,
    /// `globalNamespaces`: NADs any pod may use under `namespaceIsolation` — Multus'
    /// comma-separated string or a list; Multus' default `default`.
    #[serde(
        default = "default_global_namespaces",
        deserialize_with = "namespace_list"
    )]
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

fn no_network() -> NetworkSource {
    NetworkSource::Name(String::new())
}

/// Keys of a plugin config that belong to the protocol or the runtime, not to wasmcni: read by
/// libcni (`type`, `capabilities`) or by the plugins a config is handed on to (`args`).
const PROTOCOL_KEYS: &[&str] = &["type", "capabilities", "args"];

/// Every key [`PluginConf`] reads, as spelt canonically: a key that differs only in case is
/// read as this one (Go's `encoding/json` matches so, and Multus configs rely on it).
const KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "kubeconfig",
    "clusterNetwork",
    "delegates",
    "defaultNetworks",
    "confDir",
    "binDir",
    "multusNamespace",
    "systemNamespaces",
    "readinessindicatorfile",
    "logLevel",
    "logFile",
    "logToStderr",
    "retryDeleteOnError",
    "delegation",
    "guestPins",
    "cniDir",
    "guestCacheDir",
    "ipamNamespace",
    "guestTimeoutMs",
    "namespaceIsolation",
    "globalNamespaces",
    "nodeName",
    "prevResult",
    "runtimeConfig",
];

/// Multus keys wasmcni refuses rather than half-does, with what to do instead.
const REFUSED: &[(&str, &str)] = &[
    (
        "logOptions",
        "log rotation (maxAge, maxSize, …) is not done by wasmcni: remove it and rotate logFile \
         with logrotate (copytruncate)",
    ),
    (
        "auxiliaryCNIChainName",
        "auxiliary CNI chains are not supported: remove it, or chain the plugins in the cluster \
         network's conflist",
    ),
];

impl PluginConf {
    /// Parse stdin.
    pub fn parse(stdin: &[u8]) -> Result<Self, Error> {
        let mut value: Value = serde_json::from_slice(stdin).map_err(Error::NotJson)?;
        let Some(obj) = value.as_object_mut() else {
            return Err(Error::NotObject);
        };
        canonical_keys(obj);
        for (key, why) in REFUSED {
            if obj.keys().any(|k| k.eq_ignore_ascii_case(key)) {
                return Err(Error::Refused {
                    key: (*key).into(),
                    why: (*why).into(),
                });
            }
        }
        // skel's reading: absent or empty is 0.1.0, held as such (results are written at it).
        match obj.get("cniVersion") {
            None => {}
            Some(Value::String(v)) if crate::cni::supports(v) => {}
            Some(v) => {
                return Err(Error::Version {
                    found: v.as_str().map_or_else(|| v.to_string(), str::to_string),
                });
            }
        }
        let version = obj.get("cniVersion").and_then(Value::as_str).unwrap_or("");
        let version = crate::cni::declared_version(version).to_string();
        obj.insert("cniVersion".into(), Value::String(version));
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
        conf.resolve_sources()?;
        conf.log = conf
            .log_level
            .as_deref()
            .filter(|l| !l.is_empty())
            .map(LogLevel::parse)
            .transpose()
            .map_err(|why| Error::Refused {
                key: "logLevel".into(),
                why,
            })?;
        Ok(conf)
    }

    /// `clusterNetwork` / `delegates` / `defaultNetworks` as [`NetworkSource`]s, as Multus'
    /// `LoadNetConf` reads them: with `clusterNetwork`, `delegates` is not read (Multus ignores
    /// it; here it is refused when both are set, so the admin knows which one runs).
    fn resolve_sources(&mut self) -> Result<(), Error> {
        let refused = |key: &str, why: String| Error::Refused {
            key: key.into(),
            why,
        };
        match (
            self.cluster_network_text.as_deref(),
            self.delegates.as_slice(),
        ) {
            (Some(text), delegates) => {
                if !delegates.is_empty() {
                    return Err(refused(
                        "delegates",
                        "set together with clusterNetwork, which Multus would use alone: \
                         remove one of them"
                            .into(),
                    ));
                }
                self.cluster =
                    NetworkSource::parse(text).map_err(|w| refused("clusterNetwork", w))?;
                self.defaults = self
                    .default_networks_text
                    .iter()
                    .map(|n| NetworkSource::parse(n))
                    .collect::<Result<_, _>>()
                    .map_err(|w| refused("defaultNetworks", w))?;
                self.defaults_skip_system = true;
            }
            (None, [first, rest @ ..]) => {
                if !self.default_networks_text.is_empty() {
                    return Err(refused(
                        "defaultNetworks",
                        "needs clusterNetwork (Multus reads it only then): name the cluster \
                         network in clusterNetwork, or put the networks in delegates"
                            .into(),
                    ));
                }
                self.cluster = NetworkSource::Inline(first.clone());
                self.defaults = rest.iter().cloned().map(NetworkSource::Inline).collect();
                self.defaults_skip_system = false;
            }
            (None, []) => {
                return Err(refused(
                    "clusterNetwork",
                    "required (or Multus' delegates): the pod's primary network, as a conf or \
                     conflist path, a NetworkAttachmentDefinition name, or a conf name in confDir"
                        .into(),
                ));
            }
        }
        Ok(())
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

/// Rename each top-level key that matches one of [`KEYS`] but for case to its canonical
/// spelling (the first such key wins if a config spells one twice, as Go's decoder would not
/// promise either).
fn canonical_keys(obj: &mut serde_json::Map<String, Value>) {
    let renames: Vec<(String, &str)> = obj
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()))
        .filter_map(|k| {
            KEYS.iter()
                .find(|c| c.eq_ignore_ascii_case(k))
                .map(|c| (k.clone(), *c))
        })
        .collect();
    for (from, to) in renames {
        if let Some(v) = obj.remove(&from)
            && !obj.contains_key(to)
        {
            obj.insert(to.to_string(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<PluginConf, Error> {
        PluginConf::parse(
            format!(r#"{{"cniVersion": "1.0.0", "name": "n", "type": "wasmcni", "kubeconfig": "/k"{extra}}}"#)
                .as_bytes(),
        )
    }

    #[test]
    fn keys_wasmcni_does_not_read_are_named_not_dropped() {
        let conf = parse(
            r#", "clusterNetwork": "/c", "capabilities": {"portMappings": true},
                 "defaultNetwork": ["ns/a"], "logLevels": "debug",
                 "delegation": {"guest": "multus-default"}"#,
        )
        .unwrap();
        assert_eq!(conf.unread, ["defaultNetwork", "logLevels"]);
        // A nested section still refuses what it does not know.
        let e = parse(r#", "clusterNetwork": "/c", "delegation": {"guest": "g", "sha": "x"}"#)
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    }

    /// Multus' own daemon config, `"type"` changed: every key read with Multus' meaning.
    #[test]
    fn a_multus_config_reads_with_multus_meanings() {
        let conf = parse(
            r#", "clusterNetwork": "gke-pod-network", "confDir": "/etc/cni/net.d",
                 "namespaceIsolation": true, "globalNamespaces": "default, tenant-a",
                 "logLevel": "verbose", "logFile": "/var/log/multus.log",
                 "defaultNetworks": ["sidecar", "other/net", "/etc/cni/x.conf"],
                 "ReadinessIndicatorFile": "/run/ready", "BinDir": "/opt/multus/bin""#,
        )
        .unwrap();
        assert!(conf.unread.is_empty(), "{:?}", conf.unread);
        assert_eq!(conf.cluster, NetworkSource::Name("gke-pod-network".into()));
        assert_eq!(
            conf.defaults,
            [
                NetworkSource::Name("sidecar".into()),
                NetworkSource::Nad {
                    namespace: "other".into(),
                    name: "net".into()
                },
                NetworkSource::Path("/etc/cni/x.conf".into()),
            ]
        );
        assert_eq!(conf.global_namespaces, ["default", "tenant-a"]);
        assert_eq!(conf.log, Some(LogLevel(tracing::Level::INFO)));
        assert_eq!(conf.multus_namespace, "kube-system");
        assert_eq!(conf.system_namespaces, ["kube-system"]);
        assert_eq!(conf.readiness_indicator_file, Some("/run/ready".into()));
        assert_eq!(conf.bin_dir, Some("/opt/multus/bin".into()));
        assert!(conf.log_to_stderr && conf.defaults_skip_system);
        // Multus' defaults when unset.
        let conf = parse(r#", "clusterNetwork": "/c""#).unwrap();
        assert_eq!(conf.global_namespaces, ["default"]);
        assert_eq!(conf.conf_dir, PathBuf::from("/etc/cni/multus/net.d"));
    }

    #[test]
    fn delegates_are_the_cluster_network_and_every_pods_networks() {
        let conf = parse(
            r#", "delegates": [{"cniVersion": "0.3.1", "name": "flannel", "type": "flannel"},
                                {"cniVersion": "0.3.1", "name": "side", "type": "macvlan"}]"#,
        )
        .unwrap();
        assert!(matches!(&conf.cluster, NetworkSource::Inline(v) if v["name"] == "flannel"));
        assert_eq!(conf.defaults.len(), 1);
        assert!(!conf.defaults_skip_system);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        for (extra, key) in [
            ("", "clusterNetwork"),
            (r#", "clusterNetwork": """#, "clusterNetwork"),
            (r#", "clusterNetwork": "a/b/c""#, "clusterNetwork"),
            (
                r#", "clusterNetwork": "/c", "delegates": [{}]"#,
                "delegates",
            ),
            (
                r#", "delegates": [{}], "defaultNetworks": ["x"]"#,
                "defaultNetworks",
            ),
            (
                r#", "clusterNetwork": "/c", "defaultNetworks": ["a/"]"#,
                "defaultNetworks",
            ),
            (
                r#", "clusterNetwork": "/c", "logLevel": "loud""#,
                "logLevel",
            ),
            (
                r#", "clusterNetwork": "/c", "logOptions": {"maxAge": 5}"#,
                "logOptions",
            ),
            (
                r#", "clusterNetwork": "/c", "auxiliaryCNIChainName": "x""#,
                "auxiliaryCNIChainName",
            ),
        ] {
            match parse(extra) {
                Err(Error::Refused { key: k, .. }) => assert_eq!(k, key, "{extra}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
    }
}
