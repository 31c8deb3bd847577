//! IPAM policy `random`: start from a point spread by the pod's UID and container ID, take the
//! first free address from there (wrapping). Concurrent ADDs on one range rarely propose the same
//! address, so fewer compare-and-swap retries than lowest-free; the answer depends on the request
//! only, so it is reproducible.

use wasmcni_guest::fnv1a;
use wasmcni_guest::ipam::{IpamPolicy, Pool, Refusal, Request};

/// The policy.
pub struct Random;

impl IpamPolicy for Random {
    fn propose(req: &Request, pool: &dyn Pool) -> Result<u64, Refusal> {
        let span = pool.last_offset().saturating_add(1).max(1);
        let start = fnv1a(&[&req.pod.uid, &req.container_id, &req.interface]) % span;
        pool.next_free_wrapping(start).ok_or(Refusal::Exhausted)
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::ipam_policy!(Random);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::ipam::{FakePool, request};

    #[test]
    fn spreads_and_wraps() {
        let pool = FakePool::new(256);
        let a = Random::propose(&request("ns", "a", "n1"), &pool).unwrap();
        let b = Random::propose(&request("ns", "b", "n1"), &pool).unwrap();
        assert_ne!(a, b, "two pods start at different points");
        assert!(pool.is_free(a) && pool.is_free(b));
        let full = (1..255).fold(FakePool::new(256), |p, o| {
            if o == 7 { p } else { p.take(o, "x/y") }
        });
        assert_eq!(
            Random::propose(&request("ns", "a", "n1"), &full).unwrap(),
            7
        );
        let none = full.take(7, "x/z");
        assert!(matches!(
            Random::propose(&request("ns", "a", "n1"), &none),
            Err(Refusal::Exhausted)
        ));
    }
}
