//! The only place WIT becomes Rust on the host: one `bindgen!` per world of `wit/policy.wit`.

/// The `delegation-policy` world.
pub mod delegation {
    #![allow(
        missing_docs,
        reason = "generated from wit/, which documents every item"
    )]
    wasmtime::component::bindgen!({ world: "delegation-policy", path: "../wit" });

    pub use self::wasmcni::policy::types::Pod;
    pub use exports::wasmcni::policy::delegation::{Attachment, Denial, NetworkRef, Request};
}

/// The `ipam-policy` world: the pool is a host resource backed by [`crate::ipam::PoolView`].
pub mod ipam {
    #![allow(
        missing_docs,
        reason = "generated from wit/, which documents every item"
    )]
    wasmtime::component::bindgen!({
        world: "ipam-policy",
        path: "../wit",
        with: {
            "wasmcni:policy/pool.view": crate::ipam::PoolView,
            // One Rust type for the shared `types` interface in both worlds.
            "wasmcni:policy/types": super::delegation::wasmcni::policy::types,
        },
        // Table lookups can fail on a forged handle: that must trap, not panic.
        imports: { default: trappable },
    });

    pub use exports::wasmcni::policy::ipam::{Refusal, Request as IpamRequest};

    use wasmtime::component::Resource;

    use self::wasmcni::policy::pool::{Host, HostView};
    use crate::ipam::PoolView;

    impl Host for super::super::GuestState {}
    impl super::delegation::wasmcni::policy::types::Host for super::super::GuestState {}

    impl HostView for super::super::GuestState {
        fn cidr(&mut self, v: Resource<PoolView>) -> wasmtime::Result<String> {
            Ok(self.table.get(&v)?.cidr())
        }
        fn last_offset(&mut self, v: Resource<PoolView>) -> wasmtime::Result<u64> {
            Ok(self.table.get(&v)?.last_offset())
        }
        fn is_free(&mut self, v: Resource<PoolView>, offset: u64) -> wasmtime::Result<bool> {
            Ok(self.table.get(&v)?.is_free(offset))
        }
        fn next_free_from(
            &mut self,
            v: Resource<PoolView>,
            start: u64,
        ) -> wasmtime::Result<Option<u64>> {
            Ok(self.table.get(&v)?.next_free_from(start))
        }
        fn owner_of(
            &mut self,
            v: Resource<PoolView>,
            offset: u64,
        ) -> wasmtime::Result<Option<String>> {
            Ok(self.table.get(&v)?.owner_of(offset))
        }
        fn allocated_count(&mut self, v: Resource<PoolView>) -> wasmtime::Result<u64> {
            Ok(self.table.get(&v)?.allocated_count())
        }
        fn drop(&mut self, v: Resource<PoolView>) -> wasmtime::Result<()> {
            self.table.delete(v)?;
            Ok(())
        }
    }
}
