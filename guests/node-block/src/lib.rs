//! IPAM policy `node-block`: the range is cut into 16 blocks and each node prefers its own
//! (chosen by hashing the node name), Calico-style, so nodes allocating at once rarely contend
//! for the same addresses. A full block spills over to the lowest free address anywhere.

use wasmcni_guest::fnv1a;
use wasmcni_guest::ipam::{IpamPolicy, Pool, Refusal, Request};

/// Blocks per range.
const BLOCKS: u64 = 16;

/// The policy.
pub struct NodeBlock;

impl IpamPolicy for NodeBlock {
    fn propose(req: &Request, pool: &dyn Pool) -> Result<u64, Refusal> {
        let span = pool.last_offset().saturating_add(1);
        let size = (span / BLOCKS).max(1);
        let start = (fnv1a(&[&req.node]) % BLOCKS) * size;
        let in_block = pool
            .next_free_from(start)
            .filter(|o| *o < start.saturating_add(size));
        in_block
            .or_else(|| pool.next_free_from(0))
            .ok_or(Refusal::Exhausted)
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::ipam_policy!(NodeBlock);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcni_guest::ipam::{FakePool, request};

    #[test]
    fn each_node_fills_its_own_block_first() {
        let pool = FakePool::new(256);
        let a = NodeBlock::propose(&request("ns", "p", "node-a"), &pool).unwrap();
        let b = NodeBlock::propose(&request("ns", "p", "node-b"), &pool).unwrap();
        assert_ne!(a / 16, b / 16, "different nodes, different blocks");
        // The next pod on node-a lands in node-a's block too.
        let next = NodeBlock::propose(&request("ns", "q", "node-a"), &pool.clone().take(a, "ns/p"))
            .unwrap();
        assert_eq!(next / 16, a / 16);
        // A full block spills over to the lowest free address.
        let block = a / 16 * 16;
        let full = (block..block + 16).fold(pool, |p, o| p.take(o, "ns/x"));
        assert_eq!(
            NodeBlock::propose(&request("ns", "r", "node-a"), &full).unwrap(),
            full.next_free_from(0).unwrap()
        );
    }
}
