//! IPAM policies: pick an offset in a range the host owns.

use std::collections::BTreeMap;

#[doc(hidden)]
pub mod bindings {
    #![allow(
        missing_docs,
        reason = "generated from wit/, which documents every item"
    )]
    wit_bindgen::generate!({
        world: "ipam-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_ipam",
        default_bindings_module: "wasmcni_guest::ipam::bindings",
    });
}

pub use bindings::exports::wasmcni::policy::ipam::{Refusal, Request};
pub use bindings::wasmcni::policy::pool::View;
pub use bindings::wasmcni::policy::types::Pod;

/// What a policy may ask of a pool: the host's [`View`] in the sandbox, a [`FakePool`] in tests.
/// Offsets count from the range's network address.
pub trait Pool {
    /// The range in CIDR notation.
    fn cidr(&self) -> String;
    /// The highest offset of the range.
    fn last_offset(&self) -> u64;
    /// Whether `offset` may be allocated.
    fn is_free(&self, offset: u64) -> bool;
    /// The lowest free offset at or above `start`.
    fn next_free_from(&self, start: u64) -> Option<u64>;
    /// `namespace/name` of the pod holding `offset`.
    fn owner_of(&self, offset: u64) -> Option<String>;
    /// How many addresses are allocated.
    fn allocated_count(&self) -> u64;

    /// The lowest free offset at or above `start`, else the lowest free one below it.
    fn next_free_wrapping(&self, start: u64) -> Option<u64> {
        self.next_free_from(start)
            .or_else(|| self.next_free_from(0))
    }
}

impl Pool for View {
    fn cidr(&self) -> String {
        View::cidr(self)
    }
    fn last_offset(&self) -> u64 {
        View::last_offset(self)
    }
    fn is_free(&self, offset: u64) -> bool {
        View::is_free(self, offset)
    }
    fn next_free_from(&self, start: u64) -> Option<u64> {
        View::next_free_from(self, start)
    }
    fn owner_of(&self, offset: u64) -> Option<String> {
        View::owner_of(self, offset)
    }
    fn allocated_count(&self) -> u64 {
        View::allocated_count(self)
    }
}

/// An IPAM policy. Export it with [`ipam_policy!`](crate::ipam_policy).
pub trait IpamPolicy {
    /// The offset to allocate for `req`. The host checks it is free and commits it.
    fn propose(req: &Request, pool: &dyn Pool) -> Result<u64, Refusal>;
}

/// A pool in memory, for testing a policy natively: an IPv4-like range of `size` offsets where
/// offset 0 and the last one are reserved (network and broadcast), as the host does.
#[derive(Debug, Clone)]
pub struct FakePool {
    size: u64,
    taken: BTreeMap<u64, String>,
}

impl FakePool {
    /// A range of `size` offsets (e.g. 256 for a /24), nothing taken.
    pub fn new(size: u64) -> Self {
        FakePool {
            size,
            taken: BTreeMap::new(),
        }
    }
    /// Mark `offset` as held by `podref`.
    pub fn take(mut self, offset: u64, podref: &str) -> Self {
        self.taken.insert(offset, podref.to_string());
        self
    }
}

impl Pool for FakePool {
    fn cidr(&self) -> String {
        format!("fake/{}", self.size)
    }
    fn last_offset(&self) -> u64 {
        self.size - 1
    }
    fn is_free(&self, offset: u64) -> bool {
        offset > 0 && offset < self.size - 1 && !self.taken.contains_key(&offset)
    }
    fn next_free_from(&self, start: u64) -> Option<u64> {
        (start.max(1)..self.size - 1).find(|o| self.is_free(*o))
    }
    fn owner_of(&self, offset: u64) -> Option<String> {
        self.taken.get(&offset).cloned()
    }
    fn allocated_count(&self) -> u64 {
        self.taken.len() as u64
    }
}

/// A request for tests: pod `namespace/name` on `node`, interface net1.
pub fn request(namespace: &str, name: &str, node: &str) -> Request {
    Request {
        pod: Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            labels: Vec::new(),
            annotations: Vec::new(),
        },
        interface: "net1".into(),
        node: node.into(),
        container_id: format!("ctr-{name}"),
    }
}

/// Export `$t` (an [`IpamPolicy`]) as the component's `wasmcni:policy/ipam`.
#[macro_export]
macro_rules! ipam_policy {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __WasmcniIpamExport;
        impl $crate::ipam::bindings::exports::wasmcni::policy::ipam::Guest for __WasmcniIpamExport {
            fn propose(
                req: $crate::ipam::Request,
                pool: &$crate::ipam::View,
            ) -> ::std::result::Result<u64, $crate::ipam::Refusal> {
                <$t as $crate::ipam::IpamPolicy>::propose(&req, pool)
            }
        }
        $crate::ipam::bindings::export_ipam!(__WasmcniIpamExport with_types_in $crate::ipam::bindings);
    };
}
