//! Delegation policy `own-namespace-only`, as a team ships it: Multus' comma form of
//! `k8s.v1.cni.cncf.io/networks`, but a pod may only name networks of its own namespace — a
//! reference to another team's network is a typed `forbidden` denial with the reason.

use wasmcni_guest::delegation::{Attachment, DelegationPolicy, Denial, Request, attach};

/// The policy.
pub struct OwnNamespaceOnly;

impl DelegationPolicy for OwnNamespaceOnly {
    fn decide(req: &Request) -> Result<Vec<Attachment>, Denial> {
        let pod_ns = req.pod.namespace.as_str();
        let Some((_, value)) = req
            .pod
            .annotations
            .iter()
            .find(|(k, _)| k == "k8s.v1.cni.cncf.io/networks")
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for element in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (reference, interface) = match element.split_once('@') {
                Some((r, i)) => (r, Some(i.to_string())),
                None => (element, None),
            };
            let (ns, name) = reference.split_once('/').unwrap_or((pod_ns, reference));
            if ns != pod_ns {
                return Err(Denial::Forbidden(format!(
                    "{element}: pods of namespace {pod_ns} may only use its own networks, not {ns}'s"
                )));
            }
            out.push(Attachment {
                interface,
                ..attach(ns, name)
            });
        }
        Ok(out)
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::delegation_policy!(OwnNamespaceOnly);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::delegation::request;

    const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

    #[test]
    fn own_networks_pass() {
        let got =
            OwnNamespaceOnly::decide(&request("shop", "p", &[], &[(NETWORKS, "a, shop/b@data0")]))
                .unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|a| (a.network.name.clone(), a.interface.clone()))
            .collect();
        assert_eq!(
            names,
            vec![("a".into(), None), ("b".into(), Some("data0".into()))]
        );
    }

    #[test]
    fn other_teams_networks_are_forbidden() {
        match OwnNamespaceOnly::decide(&request("shop", "p", &[], &[(NETWORKS, "a, bank/vault")])) {
            Err(Denial::Forbidden(why)) => assert!(why.contains("not bank's"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
