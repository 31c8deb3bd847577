//! The hostile test guests of `tests/guests/`, built by this crate's build script. A
//! dev-dependency of the host: release builds of `wasmcni` never contain them.

/// `tests/guests/hostile-ipam`: loops, bombs, traps and bad offsets, chosen by the pod name.
pub const HOSTILE_IPAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile-ipam.wasm"));

/// `tests/guests/hostile-delegation`: runaway, invalid and forbidden attachments.
pub const HOSTILE_DELEGATION: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hostile-delegation.wasm"));
