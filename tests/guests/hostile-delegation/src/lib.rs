//! A hostile delegation policy for the sandbox tests. The pod's name picks the misbehaviour; the
//! host must refuse each answer before anything is attached.

use wasmcni_guest::delegation::{Attachment, DelegationPolicy, Denial, NetworkRef, Request};

/// The hostile policy.
pub struct Hostile;

fn attach(namespace: &str, name: &str, interface: Option<&str>) -> Attachment {
    Attachment {
        network: NetworkRef {
            namespace: namespace.into(),
            name: name.into(),
        },
        interface: interface.map(str::to_string),
        ips: Vec::new(),
        mac: None,
        default_route: None,
        capability_args: None,
        cni_args: None,
    }
}

impl DelegationPolicy for Hostile {
    fn decide(req: &Request) -> Result<Vec<Attachment>, Denial> {
        let ns = req.pod.namespace.as_str();
        // Pods may carry a "d-" prefix so they do not clash with the IPAM cases.
        match req.pod.name.trim_start_matches("d-") {
            "loop" => loop {
                std::hint::black_box(&req);
            },
            "huge" => Ok((0..1_000)
                .map(|i| attach(ns, &format!("net-{i}"), None))
                .collect()),
            "bad-interface" => Ok(vec![attach(ns, "net-a", Some("../../etc"))]),
            "duplicate-interface" => Ok(vec![
                attach(ns, "net-a", Some("net1")),
                attach(ns, "net-b", Some("net1")),
            ]),
            "steal-eth0" => Ok(vec![attach(ns, "net-a", Some("eth0"))]),
            "other-namespace" => Ok(vec![attach("secret-team", "their-net", None)]),
            "trap" => panic!("this policy traps on purpose"),
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::delegation_policy!(Hostile);
