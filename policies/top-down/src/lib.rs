//! IPAM policy `top-down`, as a team ships it: addresses are handed out from the top of the
//! range downwards, so the bottom stays free for the static addresses (routers, VIPs) the
//! network team assigns by hand from the same subnet.

use wasmcni_guest::ipam::{IpamPolicy, Pool, Refusal, Request};

/// The policy.
pub struct TopDown;

impl IpamPolicy for TopDown {
    fn propose(_req: &Request, pool: &dyn Pool) -> Result<u64, Refusal> {
        // Walk down from the top; a pool of 60k holes costs what it reads, not a copy.
        (0..=pool.last_offset())
            .rev()
            .find(|o| pool.is_free(*o))
            .ok_or(Refusal::Exhausted)
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::ipam_policy!(TopDown);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::ipam::{FakePool, request};

    #[test]
    fn hands_out_from_the_top() {
        let pool = FakePool::new(256);
        assert_eq!(
            TopDown::propose(&request("ns", "a", "n"), &pool).unwrap(),
            254
        );
        let pool = pool.take(254, "ns/a").take(253, "ns/b");
        assert_eq!(
            TopDown::propose(&request("ns", "c", "n"), &pool).unwrap(),
            252
        );
    }

    #[test]
    fn says_when_the_range_is_full() {
        let full = (1..255).fold(FakePool::new(256), |p, o| p.take(o, "ns/x"));
        assert!(matches!(
            TopDown::propose(&request("ns", "c", "n"), &full),
            Err(Refusal::Exhausted)
        ));
    }
}
