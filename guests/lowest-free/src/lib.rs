//! The default IPAM policy: the lowest free address of the range, as whereabouts picks it.
//!
//! It asks the host's pool view for the first free offset instead of scanning a copy of the
//! pool, so its cost does not grow with the number of allocations.

use wasmcni_guest::ipam::{IpamPolicy, Pool, Refusal, Request};

/// The policy.
pub struct LowestFree;

impl IpamPolicy for LowestFree {
    fn propose(_req: &Request, pool: &dyn Pool) -> Result<u64, Refusal> {
        pool.next_free_from(0).ok_or(Refusal::Exhausted)
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::ipam_policy!(LowestFree);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::ipam::{FakePool, request};

    #[test]
    fn lowest_gap_first() {
        let pool = FakePool::new(256)
            .take(1, "ns/a")
            .take(2, "ns/b")
            .take(4, "ns/c");
        assert_eq!(
            LowestFree::propose(&request("ns", "d", "n"), &pool).unwrap(),
            3
        );
    }
}
