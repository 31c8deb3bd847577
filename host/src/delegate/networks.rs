//! Networks found as Multus finds them: what the node config names (`clusterNetwork`,
//! `defaultNetworks`, `delegates`) and the NADs whose `spec.config` is empty (the conf file of
//! the same name in `confDir`, as the NAD spec says and Multus' `GetCNIConfig` does).

use std::path::Path;

use serde_json::Value;

use super::Error;
use crate::cni;
use crate::cni::types::NetConfList;
use crate::config::NetworkSource;
use crate::k8s;

/// A network, found.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Its name in network-status: `namespace/name` for a NAD, the conf's `name` otherwise
    /// (as Multus names its delegates).
    pub name: String,
    /// Its plugin chain.
    pub chain: NetConfList,
}

/// Where names are looked up.
pub struct Lookup<'a> {
    /// The API, when there is one (DEL may run without).
    pub kube: Option<&'a k8s::Client>,
    /// `confDir`.
    pub conf_dir: &'a Path,
    /// `multusNamespace`: where bare names are NADs.
    pub namespace: &'a str,
}

impl Lookup<'_> {
    /// Find `source`. `what` names it in errors (`clusterNetwork`, `defaultNetworks[1]`).
    pub async fn resolve(&self, what: &str, source: &NetworkSource) -> Result<Resolved, Error> {
        match source {
            NetworkSource::Path(p) => local(what, p).map(named),
            NetworkSource::Inline(v) => {
                NetConfList::parse(v)
                    .map(named)
                    .map_err(|why| Error::Config {
                        network: format!("{what} (inline)"),
                        why,
                    })
            }
            NetworkSource::Nad { namespace, name } => Ok(Resolved {
                name: format!("{namespace}/{name}"),
                chain: self.nad(namespace, name).await?,
            }),
            NetworkSource::Name(name) => {
                // Multus' order: the NAD first, then a conf of that name in confDir.
                let api = match self.nad(self.namespace, name).await {
                    Ok(chain) => {
                        return Ok(Resolved {
                            name: format!("{}/{name}", self.namespace),
                            chain,
                        });
                    }
                    Err(e) => e,
                };
                match by_conf_name(self.conf_dir, name)? {
                    Some(chain) => Ok(named(chain)),
                    // No NAD and no conf: say so (code 103), unless the API could not answer,
                    // which is the error worth retrying on.
                    None => match api {
                        Error::Api(k8s::Error::NetworkNotFound { .. }) => Err(Error::Config {
                            network: format!("{what} {name:?}"),
                            why: format!(
                                "no NetworkAttachmentDefinition {}/{name} and no conf named \
                                 {name:?} in confDir {}",
                                self.namespace,
                                self.conf_dir.display()
                            ),
                        }),
                        other => Err(other),
                    },
                }
            }
        }
    }

    /// The chain of NAD `namespace/name`: its `spec.config`, or when that is empty the conf
    /// in `confDir` named after it.
    pub async fn nad(&self, namespace: &str, name: &str) -> Result<NetConfList, Error> {
        k8s::ObjectRef::new(namespace, name).map_err(|e| Error::Config {
            network: format!("{namespace}/{name}"),
            why: format!("not a NetworkAttachmentDefinition reference: {e}"),
        })?;
        let kube = self.kube.ok_or_else(|| Error::NoApi {
            what: format!("NetworkAttachmentDefinition {namespace}/{name}"),
        })?;
        let bad = |why: String| {
            Error::Api(k8s::Error::BadNetworkConfig {
                namespace: namespace.into(),
                name: name.into(),
                why,
            })
        };
        match kube.network(namespace, name).await.map_err(Error::Api)? {
            Some(config) => NetConfList::parse(&config).map_err(bad),
            None => by_conf_name(self.conf_dir, name)?.ok_or_else(|| {
                bad(format!(
                    "spec.config is empty and confDir {} has no conf named {name:?}",
                    self.conf_dir.display()
                ))
            }),
        }
    }
}

/// The pod's `v1.multus-cni.io/default-network` annotation, read as Multus reads it: one
/// network, in the comma form (`[namespace/]name`) or the JSON form (`[{"name": …,
/// "namespace": …}]`), a bare name in `multus_namespace`. An interface given with it is not
/// used (the cluster network is always CNI_IFNAME), as in Multus.
pub fn pod_default_network(text: &str, multus_namespace: &str) -> Result<NetworkSource, String> {
    let refs: Vec<(String, String)> = if text.contains(['[', '{', '"']) {
        let list: Vec<serde_json::Map<String, Value>> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON list of networks: {e}"))?;
        list.iter()
            .map(|el| {
                let field = |k: &str| match el.get(k) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.trim().to_string()),
                    Some(other) => Err(format!("{k:?} must be a string, not {other}")),
                };
                if let Some(k) = el
                    .keys()
                    .find(|k| !matches!(k.as_str(), "name" | "namespace" | "interface"))
                {
                    return Err(format!(
                        "{k:?} cannot be given for the default network (only name and namespace)"
                    ));
                }
                Ok((field("namespace")?, field("name")?))
            })
            .collect::<Result<_, String>>()?
    } else {
        text.split(',')
            .map(|el| {
                let el = el.split('@').next().unwrap_or_default();
                match el.split_once('/') {
                    Some((ns, name)) => (ns.trim().to_string(), name.trim().to_string()),
                    None => (String::new(), el.trim().to_string()),
                }
            })
            .collect()
    };
    let [(namespace, name)] = refs.as_slice() else {
        return Err(format!(
            "{} networks given; the default network is exactly one",
            refs.len()
        ));
    };
    let namespace = if namespace.is_empty() {
        multus_namespace
    } else {
        namespace
    };
    let r = k8s::ObjectRef::new(namespace, name).map_err(|e| e.to_string())?;
    Ok(NetworkSource::Nad {
        namespace: r.namespace().into(),
        name: r.name().into(),
    })
}

fn named(chain: NetConfList) -> Resolved {
    Resolved {
        name: chain.name.clone(),
        chain,
    }
}

/// A conf or conflist file, or the first conf file of a directory.
fn local(what: &str, path: &Path) -> Result<NetConfList, Error> {
    if path.is_dir() {
        return match conf_files(path)?.first() {
            Some(first) => read_conf(first),
            None => Err(Error::ClusterNetwork {
                path: path.to_path_buf(),
                why: format!("{what} is a directory with no .conf, .conflist or .json file"),
            }),
        };
    }
    read_conf(path)
}

/// Read a conf or conflist file.
pub fn read_conf(path: &Path) -> Result<NetConfList, Error> {
    let bad = |why: String| Error::ClusterNetwork {
        path: path.to_path_buf(),
        why,
    };
    let text =
        crate::files::read_regular(path, cni::MAX_STDIN as u64).map_err(|e| bad(e.to_string()))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    NetConfList::parse(&v).map_err(bad)
}

/// `.conf`, `.conflist` and `.json` files of `dir`, sorted by name (libcni's `ConfFiles`).
fn conf_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::ClusterNetwork {
        path: dir.to_path_buf(),
        why: format!("cannot list it: {e}"),
    })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conf" | "conflist" | "json")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The first conf of `dir` whose `name` is `name` (the NAD spec's "a .conflist or .conf file on
/// disk whose name matches"); a file that does not parse stops the search, as in Multus. A
/// missing directory holds nothing.
pub fn by_conf_name(dir: &Path, name: &str) -> Result<Option<NetConfList>, Error> {
    if !dir.is_dir() {
        return Ok(None);
    }
    for file in conf_files(dir)? {
        let chain = read_conf(&file)?;
        if chain.name == name {
            return Ok(Some(chain));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, body: &str) {
        std::fs::write(dir.join(file), body).unwrap();
    }

    #[tokio::test]
    async fn names_paths_and_directories_resolve_as_multus_resolves_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "10-gke.conflist",
            r#"{"cniVersion":"1.0.0","name":"gke-pod-network","plugins":[{"type":"ptp"}]}"#,
        );
        write(
            d,
            "20-side.conf",
            r#"{"cniVersion":"0.3.1","name":"side","type":"macvlan"}"#,
        );
        write(d, "README", "not a conf");
        let lookup = Lookup {
            kube: None,
            conf_dir: d,
            namespace: "kube-system",
        };
        // A bare name with no API: the conf of that name in confDir.
        let r = lookup
            .resolve(
                "clusterNetwork",
                &NetworkSource::Name("gke-pod-network".into()),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.name.as_str(), r.chain.plugin_type(0)),
            ("gke-pod-network", "ptp")
        );
        // A directory: its first conf file.
        let r = lookup
            .resolve("clusterNetwork", &NetworkSource::Path(d.to_path_buf()))
            .await
            .unwrap();
        assert_eq!(r.name, "gke-pod-network");
        // A file.
        let r = lookup
            .resolve("x", &NetworkSource::Path(d.join("20-side.conf")))
            .await
            .unwrap();
        assert_eq!(r.chain.plugin_type(0), "macvlan");
        // No such name, no API: the API's absence is the error (retryable), not "not found".
        let e = lookup
            .resolve("clusterNetwork", &NetworkSource::Name("nope".into()))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NoApi { .. }), "{e}");
        // A conf that does not parse stops the search, naming the file.
        write(d, "30-bad.conf", "{");
        let e = by_conf_name(d, "later").unwrap_err();
        assert!(e.to_string().contains("30-bad.conf"), "{e}");
        assert!(by_conf_name(&d.join("missing"), "x").unwrap().is_none());
    }

    #[test]
    fn the_pods_default_network_is_one_nad() {
        let nad = |ns: &str, n: &str| NetworkSource::Nad {
            namespace: ns.into(),
            name: n.into(),
        };
        let read = |t: &str| pod_default_network(t, "kube-system");
        assert_eq!(read("calico-b"), Ok(nad("kube-system", "calico-b")));
        assert_eq!(read(" other / net-b @eth0"), Ok(nad("other", "net-b")));
        assert_eq!(read(r#"[{"name":"x"}]"#), Ok(nad("kube-system", "x")));
        assert_eq!(
            read(r#"[{"name":"x","namespace":"ns"}]"#),
            Ok(nad("ns", "x"))
        );
        for bad in [
            "",
            "a,b",
            "[]",
            r#"[{"name":"x","ips":["10.0.0.1"]}]"#,
            "Upper",
            "a/b/c",
        ] {
            assert!(read(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
