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
            .map(|(_, v)| v.trim());
        match annotation {
            None | Some("") => {}
            Some(text) if text.starts_with('[') => {
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
        default_route: Vec::new(),
        cni_args: None,
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
    if interface == Some("") {
        return Err(bad("empty interface name after '@'".into()));
    }
    for part in [namespace, name, interface.unwrap_or_default()] {
        if !part.is_empty() && !is_dns_label(part) {
            return Err(bad(format!(
                "{part:?} must consist of lower-case alphanumerics and '-', and start and end with an alphanumeric (as in Multus)"
            )));
        }
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
        out.push(Attachment {
            network: NetworkRef { namespace, name },
            interface: field("interface")?,
            ips: strings("ips")?,
            mac: field("mac")?,
            default_route: strings("default-route")?,
            cni_args,
        });
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
        assert!(decide("net@").is_err());
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
        for refused in ["Net-A", "ns/net_a", "net-a@eth_0", "-net", "net-", "ns/"] {
            assert!(decide(refused).is_err(), "{refused} should be refused");
        }
        let a = decide(r#"[{"name":"n","cni-args":{"k":1}}]"#).unwrap();
        assert_eq!(a[0].cni_args.as_deref(), Some(r#"{"k":1}"#));
        assert!(decide(r#"[{"name":"n","cni-args":[]}]"#).is_err());
    }
}
