//! Delegation policy `label-networks`: a pod labelled `networks.wasmcni.io/<name>: "true"` gets
//! NAD `<name>` of its own namespace — no annotation needed. Labels are selectable, so
//! Deployments, NetworkPolicies and admins can reason about them; annotations are not.

use wasmcni_guest::delegation::{Attachment, DelegationPolicy, Denial, Request, attach};

/// The label prefix that asks for a network.
pub const PREFIX: &str = "networks.wasmcni.io/";

/// The policy.
pub struct LabelNetworks;

impl DelegationPolicy for LabelNetworks {
    fn decide(req: &Request) -> Result<Vec<Attachment>, Denial> {
        let mut out: Vec<Attachment> = req
            .default_networks
            .iter()
            .map(|n| attach(&n.namespace, &n.name))
            .collect();
        for (key, value) in &req.pod.labels {
            let Some(name) = key.strip_prefix(PREFIX) else {
                continue;
            };
            match value.as_str() {
                "true" => out.push(attach(&req.pod.namespace, name)),
                "false" => {}
                other => {
                    return Err(Denial::BadAnnotation(format!(
                        "label {key}={other}: use \"true\" or \"false\""
                    )));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::delegation_policy!(LabelNetworks);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::delegation::request;

    #[test]
    fn labels_ask_for_networks() {
        let req = request(
            "shop",
            "web-0",
            &[
                ("app", "web"),
                ("networks.wasmcni.io/storage", "true"),
                ("networks.wasmcni.io/old", "false"),
            ],
            &[],
        );
        let got = LabelNetworks::decide(&req).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].network.namespace.as_str(),
                got[0].network.name.as_str()
            ),
            ("shop", "storage")
        );
        assert!(
            LabelNetworks::decide(&request(
                "shop",
                "x",
                &[("networks.wasmcni.io/storage", "yes")],
                &[]
            ))
            .is_err()
        );
        assert!(
            LabelNetworks::decide(&request("shop", "x", &[], &[]))
                .unwrap()
                .is_empty()
        );
    }
}
