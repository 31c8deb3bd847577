//! Delegation policies: which extra networks a pod gets.

#[doc(hidden)]
pub mod bindings {
    #![allow(
        missing_docs,
        reason = "generated from wit/, which documents every item"
    )]
    wit_bindgen::generate!({
        world: "delegation-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_delegation",
        default_bindings_module: "wasmcni_guest::delegation::bindings",
    });
}

pub use bindings::exports::wasmcni::policy::delegation::{Attachment, Denial, NetworkRef, Request};
pub use bindings::wasmcni::policy::types::Pod;

/// A delegation policy. Export it with [`delegation_policy!`](crate::delegation_policy).
pub trait DelegationPolicy {
    /// The pod's extra attachments, in order; empty for the cluster network only.
    fn decide(req: &Request) -> Result<Vec<Attachment>, Denial>;
}

/// An attachment of NAD `namespace/name` with everything else left to the host.
pub fn attach(namespace: &str, name: &str) -> Attachment {
    Attachment {
        network: NetworkRef {
            namespace: namespace.into(),
            name: name.into(),
        },
        interface: None,
        ips: Vec::new(),
        mac: None,
        default_route: None,
        cni_args: None,
        capability_args: None,
    }
}

/// A request for tests: pod `namespace/name` with `labels` and `annotations`.
pub fn request(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Request {
    let pairs = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Request {
        pod: Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            labels: pairs(labels),
            annotations: pairs(annotations),
        },
        node: "node-1".into(),
        default_networks: Vec::new(),
    }
}

/// Export `$t` (a [`DelegationPolicy`]) as the component's `wasmcni:policy/delegation`.
#[macro_export]
macro_rules! delegation_policy {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __WasmcniDelegationExport;
        impl $crate::delegation::bindings::exports::wasmcni::policy::delegation::Guest for __WasmcniDelegationExport {
            fn decide(
                req: $crate::delegation::Request,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::delegation::Attachment>, $crate::delegation::Denial> {
                <$t as $crate::delegation::DelegationPolicy>::decide(&req)
            }
        }
        $crate::delegation::bindings::export_delegation!(__WasmcniDelegationExport with_types_in $crate::delegation::bindings);
    };
}
