//! The default IPAM policy: the lowest free address of the range, as whereabouts picks it.
//!
//! It asks the host's pool view for the first free offset instead of scanning a copy of the
//! pool, so its cost does not grow with the number of allocations.

#![allow(
    unsafe_code,
    reason = "wit-bindgen's export! glue defines the component's raw ABI entry points"
)]

mod bindings {
    #![allow(
        missing_docs,
        reason = "generated from wit/, which documents every item"
    )]
    wit_bindgen::generate!({ world: "ipam-policy", path: "../../wit", pub_export_macro: true });
}

use bindings::exports::wasmcni::policy::ipam::{Guest, Refusal, Request};
use bindings::wasmcni::policy::pool::View;

struct LowestFree;

impl Guest for LowestFree {
    fn propose(_req: Request, pool: &View) -> Result<u64, Refusal> {
        pool.next_free_from(0).ok_or(Refusal::Exhausted)
    }
}

bindings::export!(LowestFree with_types_in bindings);
