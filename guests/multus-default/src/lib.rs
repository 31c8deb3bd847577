//! The default delegation policy: Multus' semantics for `k8s.v1.cni.cncf.io/networks`.
//!
//! Both annotation forms are understood, as Multus documents them:
//! - the comma form, `net-a, other-ns/net-b@eth9`;
//! - the JSON form, `[{"name": "net-a", "namespace": "…", "interface": "…", "ips": […],
//!   "mac": "…", "default-route": […], "cni-args": {…}}]`.
//!
//! Unqualified names resolve in the pod's namespace. The cluster's default networks come first.
//! Interface names left out are assigned by the host (`net1`, `net2`, … by position).

use wasmcni_guest::delegation::{Attachment, DelegationPolicy, Denial, NetworkRef, Request};

/// The pod annotation Multus reads.
const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";

/// The policy.
pub struct MultusDefault;

impl DelegationPolicy for MultusDefault {
    fn decide(req: &Request) -> Result<Vec<Attachment>, Denial> {
        let mut out: Vec<Attachment> = req.default_networks.iter().cloned().map(plain).collect();
        let annotation = req
            .pod
            .annotations
            .iter()
            .find(|(k, _)| k == NETWORKS_ANNOTATION)
            .map(|(_, v)| v.as_str());
        match annotation {
            // Only an empty value is "no networks" (Multus: one of blanks names an empty network).
            None | Some("") => {}
            // Multus reads the JSON form whenever one of `[`, `{`, `"` appears.
            Some(text) if text.contains(['[', '{', '"']) => {
                out.extend(parse_json(text, &req.pod.namespace)?)
            }
            Some(text) => {
                for element in text.split(',') {
                    out.push(parse_element(element.trim(), &req.pod.namespace)?);
                }
            }
        }
        Ok(out)
    }
}

fn plain(network: NetworkRef) -> Attachment {
    Attachment {
        network,
        interface: None,
        ips: Vec::new(),
        mac: None,
        default_route: None,
        cni_args: None,
        capability_args: None,
    }
}

/// One element of the comma form: `[namespace/]name[@interface]`, read as Multus'
/// `parsePodNetworkObjectName` reads it: parts trimmed, an empty namespace is the pod's, and
/// every part given must be a DNS-1123 label (lower-case alphanumerics and '-').
fn parse_element(element: &str, pod_namespace: &str) -> Result<Attachment, Denial> {
    let bad = |why: String| Denial::BadAnnotation(format!("network {element:?}: {why}"));
    if element.is_empty() {
        return Err(bad("empty element (stray comma?)".into()));
    }
    let (namespace, rest) = match element.split_once('/') {
        Some((_, rest)) if rest.contains('/') => return Err(bad("more than one '/'".into())),
        Some((ns, rest)) => (ns.trim(), rest),
        None => ("", element),
    };
    let (name, interface) = match rest.split_once('@') {
        Some((_, iface)) if iface.contains('@') => return Err(bad("more than one '@'".into())),
        Some((n, iface)) => (n.trim(), Some(iface.trim())),
        None => (rest.trim(), None),
    };
    if name.is_empty() {
        return Err(bad("empty network name".into()));
    }
    // Multus: `net@` is `net` with the interface left to the host.
    let interface = interface.filter(|i| !i.is_empty());
    for part in [namespace, name] {
        if !part.is_empty() && !is_dns_label(part) {
            return Err(bad(format!(
                "{part:?} must consist of lower-case alphanumerics and '-', and start and end with an alphanumeric (as in Multus)"
            )));
        }
    }
    // Multus' rule for the interface: at most 15 bytes, no '/' and no blank (the host checks
    // the rest of what the kernel refuses).
    if let Some(i) = interface
        && (i.len() > 15 || i.contains(|c: char| c == '/' || c.is_whitespace()))
    {
        return Err(bad(format!(
            "interface {i:?} must be at most 15 characters, without '/' or spaces (as in Multus)"
        )));
    }
    let namespace = if namespace.is_empty() {
        pod_namespace
    } else {
        namespace
    };
    Ok(Attachment {
        interface: interface.map(str::to_string),
        ..plain(NetworkRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    })
}

/// Multus' `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`.
fn is_dns_label(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(ok) && s.ends_with(ok) && s.chars().all(|c| ok(c) || c == '-')
}

/// The JSON form: a list of Multus `NetworkSelectionElement`s.
fn parse_json(text: &str, pod_namespace: &str) -> Result<Vec<Attachment>, Denial> {
    let bad = |why: String| Denial::BadAnnotation(why);
    let elements: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| bad(format!("not a JSON list of networks: {e}")))?;
    let mut out = Vec::with_capacity(elements.len());
    for (i, el) in elements.iter().enumerate() {
        let el = match el {
            serde_json::Value::Object(o) => canonical(o, i)?,
            other => return Err(bad(format!("element {i} is not an object: {other}"))),
        };
        let field = |key: &str| -> Result<Option<String>, Denial> {
            match el.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(bad(format!(
                    "element {i}: {key:?} must be a string, not {other}"
                ))),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, Denial> {
            match el.get(key) {
                None | Some(serde_json::Value::Null) => Ok(Vec::new()),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| bad(format!("element {i}: {key:?} must hold strings")))
                    })
                    .collect(),
                Some(_) => Err(bad(format!(
                    "element {i}: {key:?} must be a list of strings"
                ))),
            }
        };
        let name = field("name")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad(format!("element {i}: \"name\" is required")))?;
        // Multus: an empty namespace is the pod's, like a missing one.
        let namespace = field("namespace")?
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| pod_namespace.to_string());
        let cni_args = match el.get("cni-args") {
            None | Some(serde_json::Value::Null) => None,
            Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
            Some(_) => return Err(bad(format!("element {i}: \"cni-args\" must be an object"))),
        };
        // Multus: a list given (even empty) is a request; absent is none. Each must be an IP.
        let default_route = match el.get("default-route") {
            None | Some(serde_json::Value::Null) => None,
            Some(_) => {
                let gws = strings("default-route")?;
                for gw in &gws {
                    if gw.parse::<std::net::IpAddr>().is_err() {
                        return Err(bad(format!(
                            "element {i}: \"default-route\" entry {gw:?} is not an IP address"
                        )));
                    }
                }
                Some(gws)
            }
        };
        // Multus: `interfaceRequest` (before v3.2) when `interface` is not given.
        let interface = field("interface")?
            .filter(|s| !s.is_empty())
            .or(field("interfaceRequest")?.filter(|s| !s.is_empty()));
        out.push(Attachment {
            network: NetworkRef { namespace, name },
            interface,
            ips: strings("ips")?,
            mac: field("mac")?.filter(|s| !s.is_empty()),
            default_route,
            cni_args,
            capability_args: capability_args(&el, i)?,
        });
    }
    Ok(out)
}

/// The element's requests that reach the plugins as capability arguments (Multus'
/// `mergeCNIRuntimeConfig`): `portMappings`, `bandwidth`, `infiniband-guid` (as
/// `infinibandGUID`), `deviceID` — checked for the shapes Multus' decoder insists on.
fn capability_args(
    el: &serde_json::Map<String, serde_json::Value>,
    i: usize,
) -> Result<Option<String>, Denial> {
    use serde_json::Value;
    let bad = |why: String| Denial::BadAnnotation(format!("element {i}: {why}"));
    let int = |v: Option<&Value>| v.is_none_or(|v| v.is_i64() || v.is_null());
    let mut caps = serde_json::Map::new();
    match el.get("portMappings") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (j, m) in list.iter().enumerate() {
                let ok = m.as_object().is_some_and(|m| {
                    int(m.get("hostPort"))
                        && int(m.get("containerPort"))
                        && m.get("protocol").is_none_or(Value::is_string)
                        && m.get("hostIP").is_none_or(Value::is_string)
                });
                if !ok {
                    return Err(bad(format!(
                        "portMappings[{j}] must be {{\"hostPort\": int, \"containerPort\": int, \"protocol\": \"tcp\", \"hostIP\": \"…\"}}"
                    )));
                }
            }
            caps.insert("portMappings".into(), Value::Array(list.clone()));
        }
        Some(_) => return Err(bad("\"portMappings\" must be a list".into())),
    }
    match el.get("bandwidth") {
        None | Some(Value::Null) => {}
        Some(Value::Object(b)) => {
            for k in ["ingressRate", "ingressBurst", "egressRate", "egressBurst"] {
                if !int(b.get(k)) {
                    return Err(bad(format!("bandwidth.{k} must be an integer")));
                }
            }
            caps.insert("bandwidth".into(), Value::Object(b.clone()));
        }
        Some(_) => return Err(bad("\"bandwidth\" must be an object".into())),
    }
    for (key, cap) in [
        ("infiniband-guid", "infinibandGUID"),
        ("deviceID", "deviceID"),
    ] {
        match el.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => {
                if key == "infiniband-guid" && !is_hardware_addr(s) {
                    return Err(bad(format!("\"infiniband-guid\" {s:?} is not a GUID")));
                }
                caps.insert(cap.into(), Value::String(s.clone()));
            }
            Some(_) => return Err(bad(format!("{key:?} must be a string"))),
        }
    }
    Ok((!caps.is_empty()).then(|| Value::Object(caps).to_string()))
}

/// Go's `net.ParseMAC` forms of 8 or 20 bytes (an InfiniBand GUID or address): hex pairs
/// separated by ':' or '-', or groups of four separated by '.'.
fn is_hardware_addr(s: &str) -> bool {
    let hex = |g: &str, n: usize| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit());
    let bytes = if s.contains('.') {
        let groups: Vec<&str> = s.split('.').collect();
        groups.iter().all(|g| hex(g, 4)).then_some(groups.len() * 2)
    } else {
        let sep = if s.contains('-') { '-' } else { ':' };
        let pairs: Vec<&str> = s.split(sep).collect();
        pairs.iter().all(|g| hex(g, 2)).then_some(pairs.len())
    };
    matches!(bytes, Some(6 | 8 | 20))
}

/// Keys of a network selection element this policy reads, as Multus spells them.
const KEYS: &[&str] = &[
    "name",
    "namespace",
    "interface",
    "interfaceRequest",
    "ips",
    "mac",
    "default-route",
    "cni-args",
    "portMappings",
    "bandwidth",
    "infiniband-guid",
    "deviceID",
];

/// Element `i` with its keys spelt as Multus spells them (Go's decoder matches keys
/// case-insensitively); a key nobody reads is refused, naming it.
fn canonical(
    el: &serde_json::Map<String, serde_json::Value>,
    i: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, Denial> {
    let mut out = serde_json::Map::new();
    for (k, v) in el {
        let Some(key) = KEYS.iter().find(|c| c.eq_ignore_ascii_case(k)) else {
            return Err(Denial::BadAnnotation(format!(
                "element {i}: unknown key {k:?} (known: {})",
                KEYS.join(", ")
            )));
        };
        out.entry(key.to_string()).or_insert_with(|| v.clone());
    }
    Ok(out)
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::delegation_policy!(MultusDefault);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::delegation::request;

    fn decide(annotation: &str) -> Result<Vec<Attachment>, Denial> {
        MultusDefault::decide(&request(
            "pod-ns",
            "p",
            &[],
            &[(NETWORKS_ANNOTATION, annotation)],
        ))
    }

    /// Fuzz finding (host/fuzz, target `annotation`): `"namespace": ""` in the JSON form was
    /// answered as an empty namespace, which the host refuses as an invalid guest answer; Multus
    /// reads it as the pod's namespace. Reproducer: host/fuzz/regressions/annotation/.
    #[test]
    fn empty_json_namespace_is_the_pods() {
        let a = decide(r#"[{"name":"x","namespace":""}]"#).unwrap();
        assert_eq!(a[0].network.namespace, "pod-ns");
        assert_eq!(a[0].network.name, "x");
        let text = include_str!("../../../host/fuzz/regressions/annotation/json-empty-namespace");
        for a in decide(text).unwrap() {
            assert!(!a.network.namespace.is_empty() && !a.network.name.is_empty());
        }
    }

    #[test]
    fn both_forms() {
        let a = decide("net-a, other/net-b@eth9").unwrap();
        assert_eq!(
            (a[0].network.namespace.as_str(), a[0].network.name.as_str()),
            ("pod-ns", "net-a")
        );
        assert_eq!(a[1].network.namespace, "other");
        assert_eq!(a[1].interface.as_deref(), Some("eth9"));
        assert!(decide("a,,b").is_err());
        assert!(decide("ns/net@if@x").is_err());
        assert!(decide("a/b/c").is_err());
        assert_eq!(decide("net@").unwrap()[0].interface, None);
    }

    /// What Multus' parsePodNetworkObjectName accepts and refuses, element by element.
    #[test]
    fn comma_form_reads_as_multus_reads_it() {
        let one = |text: &str| {
            let a = decide(text).unwrap();
            assert_eq!(a.len(), 1, "{text}");
            (
                a[0].network.namespace.clone(),
                a[0].network.name.clone(),
                a[0].interface.clone(),
            )
        };
        let r = |ns: &str, n: &str, i: Option<&str>| (ns.into(), n.into(), i.map(str::to_string));
        assert_eq!(one("/net-a"), r("pod-ns", "net-a", None));
        assert_eq!(
            one(" other / net-b @ eth9 "),
            r("other", "net-b", Some("eth9"))
        );
        assert_eq!(one("net-1@net9"), r("pod-ns", "net-1", Some("net9")));
        assert_eq!(
            one("net-a@my_interface"),
            r("pod-ns", "net-a", Some("my_interface"))
        );
        for refused in [
            "Net-A",
            "ns/net_a",
            "net-a@sixteen-chars-xx",
            "net-a@a/b",
            "-net",
            "net-",
            "ns/",
            " ",
        ] {
            assert!(decide(refused).is_err(), "{refused} should be refused");
        }
        let a = decide(r#"[{"name":"n","cni-args":{"k":1}}]"#).unwrap();
        assert_eq!(a[0].cni_args.as_deref(), Some(r#"{"k":1}"#));
        assert!(decide(r#"[{"name":"n","cni-args":[]}]"#).is_err());
    }

    /// The JSON form as Multus' decoder reads it: found by any of `[{"`, keys matched without
    /// case, the old `interfaceRequest`, gateways that must be addresses; what cannot be
    /// honoured refused by name.
    #[test]
    fn json_form_reads_as_multus_reads_it() {
        let a = decide(r#"[{"Name":"n","Interface":"eth5"}]"#).unwrap();
        assert_eq!(
            (a[0].network.name.as_str(), a[0].interface.as_deref()),
            ("n", Some("eth5"))
        );
        let a = decide(r#"[{"name":"n","interfaceRequest":"old1"}]"#).unwrap();
        assert_eq!(a[0].interface.as_deref(), Some("old1"));
        let a = decide(r#"[{"name":"n","default-route":["10.0.0.1","fd00::1"]}]"#).unwrap();
        assert_eq!(a[0].default_route.as_ref().map(Vec::len), Some(2));
        let a = decide(r#"[{"name":"n","default-route":[]},{"name":"m"}]"#).unwrap();
        assert_eq!(
            (a[0].default_route.clone(), a[1].default_route.clone()),
            (Some(vec![]), None)
        );
        let a = decide(
            r#"[{"name":"n","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
                 "bandwidth":{"ingressRate":1000,"ingressBurst":10},"infiniband-guid":"00:00:00:00:00:00:00:01","deviceID":"0000:03:00.1"}]"#,
        )
        .unwrap();
        let caps: serde_json::Value =
            serde_json::from_str(a[0].capability_args.as_deref().unwrap()).unwrap();
        assert_eq!(caps["portMappings"][0]["hostPort"], 8080);
        assert_eq!(caps["bandwidth"]["ingressRate"], 1000);
        assert_eq!(caps["infinibandGUID"], "00:00:00:00:00:00:00:01");
        assert_eq!(caps["deviceID"], "0000:03:00.1");
        for (text, mentions) in [
            (
                r#"[{"name":"n","default-route":["10.0.0.300"]}]"#,
                "default-route",
            ),
            (
                r#"[{"name":"n","bandwidth":{"ingressRate":"fast"}}]"#,
                "bandwidth",
            ),
            (r#"[{"name":"n","portMappings":{}}]"#, "portMappings"),
            (
                r#"[{"name":"n","infiniband-guid":"zz"}]"#,
                "infiniband-guid",
            ),
            (r#"[{"name":"n","colour":"red"}]"#, "colour"),
            (r#"{"name":"n"}"#, "JSON list"),
            (r#"net-a, "quoted""#, "JSON list"),
        ] {
            match decide(text) {
                Err(Denial::BadAnnotation(why)) => assert!(why.contains(mentions), "{why}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
