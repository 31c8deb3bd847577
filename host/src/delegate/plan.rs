//! From the delegation guest's answer to a validated plan: every interface name legal and
//! unique, every network resolved to its config, before anything is created.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Error;
use super::networks::{Lookup, Resolved};
use crate::cni;
use crate::cni::types::NetConfList;
use crate::guest::{Attachment, NetworkRef};
use crate::k8s;

/// One extra network to attach, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// `namespace/name` of the NetworkAttachmentDefinition.
    pub network: String,
    /// The interface in the pod.
    pub ifname: String,
    /// The network's plugin chain, with the pod's requests (ips, mac, cni-args) folded in.
    pub chain: NetConfList,
    /// What the pod asked for that no plugin of the chain takes (an `ips` or `mac` request
    /// without the capability), said in its network-status entry rather than dropped silently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// CNI_ARGS pairs for this network's plugins on ADD: Multus passes a selection's `mac` and
    /// `ips` as `MAC=` and `IP=` besides the capabilities (the reference macvlan and
    /// host-local read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<(String, String)>,
    /// The pod's `default-route` for this network (Multus'): `Some` — even empty — means the
    /// pod's default routes are placed by request (see `cmd::add`), `None` leaves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<Vec<std::net::IpAddr>>,
    /// The device-info file of an attachment given a `deviceID` (Multus'): its path went to
    /// the plugins that declare `CNIDeviceInfoFile`; ADD reads it into network-status, DEL
    /// removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<std::path::PathBuf>,
}

/// The sandbox a plan is made for.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox<'a> {
    /// CNI_CONTAINERID (names each attachment's device-info file).
    pub container_id: &'a str,
    /// The cluster network's interface (no attachment may take it).
    pub cluster_ifname: &'a str,
}

/// More extra networks than this for one pod is a runaway policy, not a request.
pub const MAX_ATTACHMENTS: usize = 32;

/// Which NAD namespaces a pod may use: all (Multus' default), or its own plus the global ones.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// Any namespace.
    Off,
    /// The pod's own namespace and these.
    Namespaces(Vec<String>),
}

/// Validate the answer of delegation guest `decider` and resolve each network through the API.
/// Everything that can be checked locally is, before the first request: a bad answer costs no
/// API round trip, and no name from it reaches an API path unvalidated.
///
/// `defaults` are the node config's default networks, found already (they were offered to the
/// guest by these references): an attachment naming one is that network, exempt from
/// `namespaceIsolation` as in Multus (an admin's choice, not the pod's).
pub async fn plan(
    lookup: &Lookup<'_>,
    decider: &str,
    decided: Vec<Attachment>,
    sandbox: Sandbox<'_>,
    pod_namespace: &str,
    isolation: &Isolation,
    defaults: &[(NetworkRef, Resolved)],
) -> Result<Vec<Planned>, Error> {
    if decided.len() > MAX_ATTACHMENTS {
        return Err(Error::Guest(invalid(
            decider,
            format!(
                "{} attachments for one pod; at most {MAX_ATTACHMENTS} are accepted",
                decided.len()
            ),
        )));
    }
    // Every answer is checked before the first API read: a bad plan costs nothing.
    let mut seen: HashSet<String> = HashSet::from([sandbox.cluster_ifname.to_string()]);
    let mut checked = Vec::with_capacity(decided.len());
    // Each default network is the admin's once: naming it again is the pod's own request,
    // looked up and isolated like any other (as in Multus, where the annotation's entries are).
    let mut unused_defaults: Vec<&(NetworkRef, Resolved)> = defaults.iter().collect();
    for (i, a) in decided.into_iter().enumerate() {
        let ifname = a
            .interface
            .clone()
            .unwrap_or_else(|| format!("net{}", i + 1));
        if let Some(at) = unused_defaults
            .iter()
            .position(|(r, _)| r.namespace == a.network.namespace && r.name == a.network.name)
        {
            let (_, known) = unused_defaults.remove(at);
            check_ifname(decider, &ifname, &known.name, &mut seen)?;
            checked.push((known.name.clone(), ifname, a, Some(known.chain.clone())));
            continue;
        }
        // Validated as Kubernetes names before anything is built from them: a guest's text
        // never becomes an API path of its choosing.
        let at = k8s::ObjectRef::new(&a.network.namespace, &a.network.name).map_err(|e| {
            Error::Guest(invalid(
                decider,
                format!(
                    "network reference {:?}: {e}",
                    crate::guest::clamp(&format!("{}/{}", a.network.namespace, a.network.name))
                ),
            ))
        })?;
        let network = at.to_string();
        check_ifname(decider, &ifname, &network, &mut seen)?;
        if let Isolation::Namespaces(global) = isolation
            && a.network.namespace != pod_namespace
            && !global.contains(&a.network.namespace)
        {
            return Err(Error::Isolated {
                network,
                pod_namespace: pod_namespace.into(),
                global: global.clone(),
            });
        }
        checked.push((network, ifname, a, None));
    }
    let mut out = Vec::with_capacity(checked.len());
    for (network, ifname, a, known) in checked {
        let mut chain = match known {
            Some(chain) => chain,
            None => lookup.nad(&a.network.namespace, &a.network.name).await?,
        };
        // Every version libcni knows is spoken (none is the oldest, 0.1.0); another is refused
        // before any plugin runs.
        if !crate::cni::supports(&chain.cni_version) {
            return Err(Error::Config {
                network,
                why: format!(
                    "cniVersion {:?} is not a CNI version (known: {})",
                    crate::guest::clamp(&chain.cni_version),
                    crate::cni::SUPPORTED_VERSIONS.join(", ")
                ),
            });
        }
        let device_info = super::devinfo::cni_path(&network, sandbox.container_id, &ifname);
        let (note, device_info) =
            fold_requests(&mut chain, &a, device_info).map_err(|why| Error::Config {
                network: network.clone(),
                why,
            })?;
        let default_route = a
            .default_route
            .as_ref()
            .map(|gws| {
                gws.iter()
                    .map(|g| {
                        g.parse::<std::net::IpAddr>().map_err(|_| Error::Config {
                            network: network.clone(),
                            why: format!(
                                "default-route {:?} is not an IP address",
                                crate::guest::clamp(g)
                            ),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        // Everything local about the chain is checked now, before the first side effect (the
        // cluster network is attached only after the whole plan is known to be usable).
        for i in 0..chain.plugins.len() {
            if super::builtin::handles(chain.plugin_type(i)) {
                super::builtin::validate(&network, &chain.plugin_conf(i, None))?;
            }
        }
        let mut args = Vec::new();
        if let Some(mac) = &a.mac {
            args.push(("MAC".to_string(), mac.clone()));
        }
        if !a.ips.is_empty() {
            args.push(("IP".to_string(), a.ips.join(",")));
        }
        out.push(Planned {
            network,
            ifname,
            chain,
            note,
            args,
            default_route,
            device_info,
        });
    }
    // Multus' CheckGatewayConfig: one default gateway per family across the pod, no ECMP.
    for v4 in [true, false] {
        let asking: Vec<String> = out
            .iter()
            .flat_map(|p| {
                p.default_route
                    .iter()
                    .flatten()
                    .filter(move |g| g.is_ipv4() == v4)
                    .map(move |g| format!("{g} ({})", p.network))
            })
            .collect();
        if asking.len() > 1 {
            return Err(Error::Config {
                network: out
                    .iter()
                    .find(|p| p.default_route.is_some())
                    .map(|p| p.network.clone())
                    .unwrap_or_default(),
                why: format!(
                    "default-route asks for {} IPv{} default gateways ({}); one per family is \
                     allowed (no ECMP, as in Multus)",
                    asking.len(),
                    if v4 { 4 } else { 6 },
                    asking.join(", ")
                ),
            });
        }
    }
    Ok(out)
}

/// Interface `ifname` for `network` is legal and not taken yet.
fn check_ifname(
    decider: &str,
    ifname: &str,
    network: &str,
    seen: &mut HashSet<String>,
) -> Result<(), Error> {
    if let Err(why) = cni::validate_ifname(ifname) {
        return Err(Error::Guest(invalid(
            decider,
            format!("interface {ifname:?} for {network} {why}"),
        )));
    }
    if !seen.insert(ifname.to_string()) {
        return Err(Error::Guest(invalid(
            decider,
            format!("interface {ifname:?} is used twice (network {network})"),
        )));
    }
    Ok(())
}

fn invalid(decider: &str, why: String) -> crate::guest::Error {
    crate::guest::Error::Invalid {
        name: decider.into(),
        why,
    }
}

/// Pass the pod's per-network requests to the chain the way Multus does: `ips`, `mac` and the
/// guest's other capability arguments (`portMappings`, `bandwidth`, `infinibandGUID`,
/// `deviceID`) as capability arguments (to the plugins that declare them), `cni-args` as
/// `args.cni`. Values that are not an address or a MAC are refused; a request no plugin
/// declares a capability for is returned as a note (libcni and Multus drop it silently).
/// With a `deviceID`, `device_info` goes to the plugins as `CNIDeviceInfoFile` too (Multus'
/// auto-generated file) and is returned; else `None`.
fn fold_requests(
    chain: &mut NetConfList,
    a: &Attachment,
    device_info: std::path::PathBuf,
) -> Result<(Option<String>, Option<std::path::PathBuf>), String> {
    // The same readers the built-in plugins apply, for every chain (exec'd plugins too).
    for ip in &a.ips {
        super::builtin::requested_ip(ip)?;
    }
    if let Some(mac) = &a.mac {
        super::builtin::parse_mac(mac).map_err(|why| format!("mac: {why}"))?;
    }
    let declares = |cap: &str| {
        chain.plugins.iter().any(|p| {
            p.get("capabilities")
                .and_then(|c| c.get(cap))
                .is_some_and(|v| v == &Value::Bool(true))
        })
    };
    let extra_caps = match &a.capability_args {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => return Err("capability-args is not a JSON object".into()),
        },
        None => Map::new(),
    };
    let mut caps = extra_caps;
    if !a.ips.is_empty() {
        caps.insert("ips".into(), json!(a.ips));
    }
    if let Some(mac) = &a.mac {
        caps.insert("mac".into(), json!(mac));
    }
    // `ips` and `mac` also reach the plugins as CNI_ARGS (see `Planned::args`): only the other
    // requests can go unheard.
    let unused: Vec<String> = caps
        .keys()
        .filter(|k| !matches!(k.as_str(), "ips" | "mac") && !declares(k))
        .cloned()
        .collect();
    let device_info = caps.get("deviceID").is_some().then_some(device_info);
    if let Some(path) = &device_info {
        caps.insert(
            super::devinfo::CAPABILITY.into(),
            json!(path.to_string_lossy()),
        );
    }
    let note = (!unused.is_empty()).then(|| {
        format!(
            "requested {} not applied: no plugin of this network declares the capability",
            unused.join(" and ")
        )
    });
    let extra_args = match &a.cni_args {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| format!("cni-args is not JSON: {e}"))?,
        ),
        None => None,
    };
    inject_capabilities(chain, &caps);
    if let Some(args) = &extra_args {
        for p in &mut chain.plugins {
            p.insert("args".into(), json!({ "cni": args }));
        }
    }
    Ok((note, device_info))
}

/// Give each plugin of `chain` the capability arguments it declares, exactly as libcni's
/// `injectRuntimeConfig` does: a plugin gets, as its `runtimeConfig`, the arguments whose names
/// its `capabilities` map sets to true — replacing any `runtimeConfig` it had — and nothing
/// when none apply. Used for the runtime's arguments on the cluster network (portMappings,
/// bandwidth, ips, mac, …) and for a pod's per-network requests on extra networks.
pub fn inject_capabilities(chain: &mut NetConfList, args: &Map<String, Value>) {
    for p in &mut chain.plugins {
        let declared = p.get("capabilities").and_then(Value::as_object);
        let rc: Map<String, Value> = args
            .iter()
            .filter(|(k, _)| {
                declared.is_some_and(|d| d.get(k.as_str()) == Some(&Value::Bool(true)))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rc.is_empty() {
            p.insert("runtimeConfig".into(), Value::Object(rc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client whose API server never answers (port 1 on loopback): a plan that reaches it
    /// fails as unreachable, one refused earlier never asks.
    async fn nowhere() -> (tempfile::TempDir, k8s::Client) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n",
        )
        .unwrap();
        let c = k8s::Client::from_kubeconfig(&path).await.unwrap();
        (dir, c)
    }

    fn lookup(kube: &k8s::Client) -> Lookup<'_> {
        Lookup {
            kube: Some(kube),
            conf_dir: std::path::Path::new("/nonexistent"),
            namespace: "kube-system",
        }
    }

    fn asking(namespace: &str, name: &str, interface: Option<&str>) -> Attachment {
        Attachment {
            network: NetworkRef {
                namespace: namespace.into(),
                name: name.into(),
            },
            interface: interface.map(str::to_string),
            ips: Vec::new(),
            mac: None,
            default_route: None,
            cni_args: None,
            capability_args: None,
        }
    }

    #[tokio::test]
    async fn names_and_interfaces_a_guest_gives_are_validated_before_any_request() {
        let (_dir, kube) = nowhere().await;
        let huge = "n".repeat(4 << 20);
        for (a, mentions) in [
            (
                asking("default", "fnet?watch=true", None),
                "not a valid Kubernetes name",
            ),
            (
                asking("kube-system", "configmaps/x", None),
                "not a valid Kubernetes name",
            ),
            (
                asking("..", "etc", None),
                "not a valid Kubernetes namespace",
            ),
            (asking("default", &huge, None), "longer than 253"),
            (asking("", "net", None), "it is empty"),
            (asking("default", "net", Some("lo")), "reserved"),
            (asking("default", "net", Some("all")), "reserved"),
        ] {
            let e = plan(
                &lookup(&kube),
                "g",
                vec![a],
                Sandbox {
                    container_id: "c1",
                    cluster_ifname: "eth0",
                },
                "default",
                &Isolation::Off,
                &[],
            )
            .await
            .unwrap_err();
            assert!(
                matches!(&e, Error::Guest(crate::guest::Error::Invalid { why, .. }) if why.contains(mentions)),
                "want {mentions:?}: {e}"
            );
            assert!(e.to_string().len() < 2000, "the message stays short");
        }
        // A valid answer does reach the API (which is not there).
        let e = plan(
            &lookup(&kube),
            "g",
            vec![asking("default", "net-a", None)],
            Sandbox {
                container_id: "c1",
                cluster_ifname: "eth0",
            },
            "default",
            &Isolation::Off,
            &[],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, Error::Api(k8s::Error::Unreachable { .. })),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_default_network_is_exempt_from_isolation_once() {
        let (_dir, kube) = nowhere().await;
        let side = NetworkRef {
            namespace: "kube-system".into(),
            name: "side".into(),
        };
        let resolved = Resolved {
            name: "kube-system/side".into(),
            chain: NetConfList::parse(
                &json!({"cniVersion":"1.0.0","name":"side","type":"macvlan","master":"eth1"}),
            )
            .unwrap(),
        };
        let defaults = [(side, resolved)];
        let isolated = Isolation::Namespaces(Vec::new());
        let sandbox = Sandbox {
            container_id: "c1",
            cluster_ifname: "eth0",
        };
        let once = vec![asking("kube-system", "side", None)];
        let p = plan(
            &lookup(&kube),
            "g",
            once,
            sandbox,
            "default",
            &isolated,
            &defaults,
        )
        .await
        .unwrap();
        assert_eq!(p.len(), 1, "the admin's default, no API read");
        // Named again, the second is the pod's own request: isolated like any other.
        let twice = vec![
            asking("kube-system", "side", None),
            asking("kube-system", "side", None),
        ];
        let e = plan(
            &lookup(&kube),
            "g",
            twice,
            sandbox,
            "default",
            &isolated,
            &defaults,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Isolated { .. }), "{e}");
    }

    #[test]
    fn requests_no_plugin_takes_are_noted_and_malformed_ones_refused() {
        let chain = || {
            NetConfList::parse(&json!({"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"macvlan","master":"eth1"}]}))
            .unwrap()
        };
        let mut a = asking("default", "n", None);
        a.ips = vec!["10.0.0.5/24".into()];
        a.mac = Some("02:00:00:00:00:01".into());
        // ips and mac also go as CNI_ARGS (MAC=, IP=), which plugins read without a capability.
        let file = || std::path::PathBuf::from("/d/f");
        assert_eq!(
            fold_requests(&mut chain(), &a, file()).unwrap(),
            (None, None)
        );
        a.capability_args = Some(r#"{"portMappings":[],"bandwidth":{}}"#.into());
        let note = fold_requests(&mut chain(), &a, file()).unwrap().0.unwrap();
        assert!(
            note.contains("bandwidth and portMappings not applied"),
            "{note}"
        );
        a.capability_args = None;
        a.ips = vec!["10.0.0.300".into()];
        assert!(
            fold_requests(&mut chain(), &a, file())
                .unwrap_err()
                .contains("ips")
        );
        a.ips.clear();
        a.mac = Some("02:00:00:00:00".into());
        assert!(
            fold_requests(&mut chain(), &a, file())
                .unwrap_err()
                .contains("mac")
        );
    }

    #[test]
    fn a_device_id_brings_its_device_info_file_as_multus_names_it() {
        let mut chain = NetConfList::parse(&json!({"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"sriov","capabilities":{"deviceID":true,"CNIDeviceInfoFile":true}},
            {"type":"tuning"}]}))
        .unwrap();
        let mut a = asking("default", "n", None);
        a.capability_args = Some(r#"{"deviceID":"0000:3b:02.4"}"#.into());
        let file = std::path::PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo/cni/x");
        let (note, info) = fold_requests(&mut chain, &a, file.clone()).unwrap();
        assert_eq!((note, info), (None, Some(file)));
        assert_eq!(
            chain.plugins[0]["runtimeConfig"],
            json!({"deviceID":"0000:3b:02.4",
                "CNIDeviceInfoFile":"/var/run/k8s.cni.cncf.io/devinfo/cni/x"})
        );
        assert!(chain.plugins[1].get("runtimeConfig").is_none());
        // Without a deviceID there is no file.
        a.capability_args = None;
        let (_, info) = fold_requests(&mut chain, &a, "/x".into()).unwrap();
        assert_eq!(info, None);
    }

    #[test]
    fn capabilities_reach_only_the_plugins_that_declare_them() {
        let mut chain = NetConfList::parse(&json!({"cniVersion":"1.1.0","name":"n","plugins":[
            {"type":"bridge","runtimeConfig":{"stale":1}},
            {"type":"portmap","capabilities":{"portMappings":true}},
            {"type":"tuning","capabilities":{"mac":true,"ips":false}}]}))
        .unwrap();
        let args = json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
            "mac":"02:00:00:00:00:01","ips":["10.0.0.5/24"]});
        inject_capabilities(&mut chain, args.as_object().unwrap());
        assert_eq!(chain.plugins[0]["runtimeConfig"], json!({"stale":1}));
        assert_eq!(
            chain.plugins[1]["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
        );
        assert_eq!(
            chain.plugins[2]["runtimeConfig"],
            json!({"mac":"02:00:00:00:00:01"})
        );
    }
}
