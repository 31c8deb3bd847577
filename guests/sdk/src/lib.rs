//! The SDK for wasmcni policy guests.
//!
//! A policy is a type implementing [`ipam::IpamPolicy`] or [`delegation::DelegationPolicy`],
//! exported with one macro line. Policies are written against the [`ipam::Pool`] trait, so the
//! same code runs on the host's pool view inside the sandbox and on [`ipam::FakePool`] in a
//! native `cargo test`.
//!
//! ```no_run
//! use wasmcni_guest::ipam::{IpamPolicy, Pool, Refusal, Request};
//!
//! pub struct Highest;
//! impl IpamPolicy for Highest {
//!     fn propose(_req: &Request, pool: &dyn Pool) -> Result<u64, Refusal> {
//!         (0..=pool.last_offset()).rev().find(|o| pool.is_free(*o)).ok_or(Refusal::Exhausted)
//!     }
//! }
//! wasmcni_guest::ipam_policy!(Highest);
//! ```

#![allow(
    unsafe_code,
    reason = "wit-bindgen's generated glue calls the component's raw ABI"
)]

pub mod delegation;
pub mod ipam;

/// FNV-1a: a small, stable hash for spreading choices (the sandbox has no random source worth
/// the name, by design: a policy's answer depends on its request only).
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
