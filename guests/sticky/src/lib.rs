//! IPAM policy `sticky`: a pod's preferred address is derived from its namespace and name, so a
//! StatefulSet pod (`web-0`, `web-1`, …) that is deleted and recreated asks for — and, unless
//! someone else holds it, gets — the same address. Taken: the next free one after it.

use wasmcni_guest::fnv1a;
use wasmcni_guest::ipam::{IpamPolicy, Pool, Refusal, Request};

/// The policy.
pub struct Sticky;

impl IpamPolicy for Sticky {
    fn propose(req: &Request, pool: &dyn Pool) -> Result<u64, Refusal> {
        let span = pool.last_offset().saturating_add(1).max(1);
        let home = fnv1a(&[&req.pod.namespace, &req.pod.name, &req.interface]) % span;
        pool.next_free_wrapping(home).ok_or(Refusal::Exhausted)
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::ipam_policy!(Sticky);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::ipam::{FakePool, request};

    #[test]
    fn same_pod_name_same_address_across_restarts() {
        let pool = FakePool::new(1024);
        let first = Sticky::propose(&request("db", "web-0", "n1"), &pool).unwrap();
        // Recreated with a new UID and container ID, on another node: same name, same address.
        let mut again = request("db", "web-0", "n2");
        again.pod.uid = "another-uid".into();
        again.container_id = "another-container".into();
        assert_eq!(Sticky::propose(&again, &pool).unwrap(), first);
        assert_ne!(
            Sticky::propose(&request("db", "web-1", "n1"), &pool).unwrap(),
            first
        );
        // Its home taken by someone else: the next free address.
        let taken = pool.clone().take(first, "db/intruder");
        assert_eq!(
            Sticky::propose(&again, &taken).unwrap(),
            taken.next_free_wrapping(first).unwrap()
        );
    }
}
