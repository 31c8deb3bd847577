//! Ranges kept in blocks (`block_size`): a range too large or too busy for one IPPool object is
//! split into blocks of 2^bits consecutive addresses, each its own IPPool:
//!
//! - named `<pool>.<block CIDR>` (`10.0.0.0-16.10.0.10.128-26`), with `spec.range` the whole
//!   range's CIDR, so its allocation keys are offsets in the range as whereabouts writes them
//!   and the reconciler and `kubectl` read a block as any IPPool;
//! - labelled `wasmcni.io/pool=<pool>` and `wasmcni.io/node=<node that claimed it>`.
//!
//! A node allocates from the blocks it claimed, so the writers of different nodes never write
//! the same object (and one node's writers take turns, [`super::turn`]), and every object stays
//! small however full the range is:
//!
//! - **ADD** lists this node's blocks (one request, a few objects) and allocates in the first
//!   with a free address. When they are full it claims a new block: it lists the names of the
//!   range's blocks and creates an unclaimed one (one create of a name succeeds). When every
//!   block is claimed it borrows a free address from another node's block, which needs a read
//!   of them all: the range is nearly full by then. A requested address is allocated in its
//!   own block, claiming it if nobody has.
//! - **DEL** looks in this node's blocks and in the blocks of the addresses the runtime reports
//!   (prevResult); when the range is wholly claimed (an address may have been borrowed) and
//!   neither holds it, in every block.
//!
//! The reservation across ranges (ORIP) is made per address as for any pool
//! ([`super::commit`]). Blocks are never deleted. A range in blocks is wasmcni's alone:
//! whereabouts keeps a range in one IPPool named after it and would not see the blocks.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::commit::{allocate_in, offsets, release as release_pools};
use super::conf::{Block, block_pool_name};
use super::turn::Turn;
use super::{Choice, Error, IpamConf, Lease, Owner, PoolRef, PoolStore, PoolView, Proposer};
use crate::k8s::{IPPool, Write};

/// How many unclaimed blocks an ADD tries to create before it borrows (each lost create is a
/// block another node just claimed).
const CLAIM_TRIES: usize = 8;

/// Block `index` of `pool`: its IPPool's name, and the range allocatable only inside it.
pub fn block(pool: &PoolRef, b: Block, index: u64) -> PoolRef {
    let lo = index << b.bits;
    let hi = lo | ((1u64 << b.bits) - 1);
    let prefix = if pool.range.is_ipv4() { 32 } else { 128 } - b.bits;
    let first = pool.range.address(lo).ip();
    let cidr = IpNetwork::new(first, prefix as u8).expect("a block prefix is valid");
    PoolRef {
        name: block_pool_name(&pool.name, &cidr.to_string()),
        range: pool.range.clone().window(lo, hi),
        block: None,
    }
}

/// How many blocks `pool`'s range has.
#[cfg(test)]
fn count(pool: &PoolRef, b: Block) -> u64 {
    (pool.range.last_offset() >> b.bits) + 1
}

/// The most blocks one claim looks at: a range whose exclusions leave few blocks allocatable
/// in a huge span must not make an ADD walk it.
const MAX_EXAMINED: u64 = 1 << 16;

/// The blocks that hold allocatable offsets (`range_start` to `range_end`): the first index
/// and how many.
fn span(pool: &PoolRef, b: Block) -> (u64, u64) {
    let (first, last) = pool.range.bounds();
    if first > last {
        return (0, 0);
    }
    let lo = first >> b.bits;
    (lo, (last >> b.bits) - lo + 1)
}

/// How many blocks can be claimed at all: those of the span with an allocatable address
/// (counted when the span is small enough to walk, else the span).
fn claimable(pool: &PoolRef, b: Block) -> u64 {
    let (lo, n) = span(pool, b);
    if n > MAX_EXAMINED {
        return n;
    }
    (lo..lo + n)
        .filter(|i| allocatable(&block(pool, b, *i)))
        .count() as u64
}

/// The index of the block IPPool `name` of `pool`, read back from its name.
fn index_of(pool: &PoolRef, b: Block, name: &str) -> Option<u64> {
    let suffix = name.strip_prefix(&pool.name)?.strip_prefix('.')?;
    let (addr, _) = suffix.rsplit_once('-')?;
    let ip: IpAddr = if pool.range.is_ipv4() {
        addr.parse().ok()?
    } else {
        addr.replace('-', ":").parse().ok()?
    };
    Some(pool.range.offset_of(ip)? >> b.bits)
}

/// Whether any address of block `at` may ever be allocated (range_start/end, exclude).
fn allocatable(at: &PoolRef) -> bool {
    PoolView::new(at.range.clone(), Default::default())
        .next_free_from(0)
        .is_some()
}

fn has_free(at: &PoolRef, p: &IPPool) -> bool {
    PoolView::new(at.range.clone(), offsets(&p.spec))
        .next_free_from(0)
        .is_some()
}

/// Allocate an address for `owner` from range `pool` kept in blocks of size `b`, on `node`.
/// The same guarantees and errors as [`super::allocate`]; idempotent by owner within this
/// node's blocks (a pod back with a new sandbox on another node gets a new address).
#[allow(clippy::too_many_arguments)]
pub async fn allocate<S: PoolStore, P: Proposer>(
    store: &S,
    conf: &IpamConf,
    pool: &PoolRef,
    b: Block,
    namespace: &str,
    owner: &Owner,
    node: &str,
    choice: Choice<'_, P>,
) -> Result<Lease, Error<P::Error>> {
    // This node's writers take turns at the range (its blocks); other nodes write other
    // objects and need no turn with it. The node is in the key so that nodes simulated on one
    // machine (the fault tier, the benchmark) are as apart as real ones.
    let mut turn = store
        .turn(namespace, &format!("{}@{node}", pool.name))
        .await;
    let turn = &mut turn;
    let st = Error::Store;

    if let Choice::Requested(ip) = choice {
        let Some(o) = pool.range.offset_of(ip) else {
            return Err(Error::Unavailable {
                ip,
                why: format!("it is outside {}", pool.range.cidr()),
            });
        };
        let blk = block(pool, b, o >> b.bits);
        // Claimed by this node now, or already someone's: either way it exists.
        store
            .create_block(namespace, &blk.name, &pool.range.cidr(), &pool.name, node)
            .await
            .map_err(st)?;
        return allocate_in(store, conf, &blk, namespace, owner, choice, None, turn).await;
    }

    // Reads a moment old are enough here (every write below is conditional), and much faster
    // than consistent lists (k8s::list_params).
    let mine = listed(store, namespace, pool, b, Some(node), false)
        .await
        .map_err(st)?;
    // A retried ADD, or the pod back with a new sandbox: the block that records it.
    let again = mine.iter().find(|(_, p)| {
        offsets(&p.spec)
            .values()
            .any(|a| owner.holds(a) || owner.same_pod_interface(a))
    });
    if let Some((i, p)) = again {
        let (blk, seed) = (block(pool, b, *i), Some(p.clone()));
        return allocate_in(store, conf, &blk, namespace, owner, choice, seed, turn).await;
    }
    if let Some(got) =
        in_first_free(store, conf, pool, b, &mine, namespace, owner, choice, turn).await
    {
        return got;
    }

    // Claim a block nobody has, starting at a place of this node's own so that nodes claiming
    // at once do not all race for the lowest one.
    let (lo, n) = span(pool, b);
    let claimed: BTreeSet<u64> = store
        .block_names(namespace, &pool.name, false)
        .await
        .map_err(st)?
        .iter()
        .filter_map(|name| index_of(pool, b, name))
        .collect();
    if n > 0 && (claimed.len() as u64) < n {
        let start = start_for(node) % n;
        let mut tries = 0;
        for k in 0..n.min(claimed.len() as u64 + MAX_EXAMINED) {
            let i = lo + (start + k) % n;
            let blk = block(pool, b, i);
            if claimed.contains(&i) || !allocatable(&blk) {
                continue;
            }
            let w = store
                .create_block(namespace, &blk.name, &pool.range.cidr(), &pool.name, node)
                .await
                .map_err(st)?;
            if w == Write::Done {
                tracing::info!("{node} claimed block {} of {}", blk.name, pool.range.cidr());
                match allocate_in(store, conf, &blk, namespace, owner, choice, None, turn).await {
                    Err(Error::Exhausted { .. }) => {}
                    other => return other,
                }
            }
            tries += 1;
            if tries == CLAIM_TRIES {
                break;
            }
        }
    }

    // Every block is claimed (or the claims kept losing): borrow from any block.
    let all = listed(store, namespace, pool, b, None, false)
        .await
        .map_err(st)?;
    in_first_free(store, conf, pool, b, &all, namespace, owner, choice, turn)
        .await
        .unwrap_or_else(|| {
            Err(Error::Exhausted {
                range: pool.range.cidr(),
            })
        })
}

/// `pool`'s blocks claimed by `node` (every block when `None`) with their indices, in order.
async fn listed<S: PoolStore>(
    store: &S,
    namespace: &str,
    pool: &PoolRef,
    b: Block,
    node: Option<&str>,
    fresh: bool,
) -> Result<Vec<(u64, IPPool)>, crate::k8s::Error> {
    let mut v: Vec<(u64, IPPool)> = store
        .blocks(namespace, &pool.name, node, fresh)
        .await?
        .into_iter()
        .filter_map(|p| Some((index_of(pool, b, p.metadata.name.as_deref()?)?, p)))
        .collect();
    v.sort_by_key(|(i, _)| *i);
    Ok(v)
}

/// Allocate in the first of `blocks` (as just listed) with a free address; `None` when every
/// one is full (or filled meanwhile).
#[allow(clippy::too_many_arguments)]
async fn in_first_free<S: PoolStore, P: Proposer>(
    store: &S,
    conf: &IpamConf,
    pool: &PoolRef,
    b: Block,
    blocks: &[(u64, IPPool)],
    namespace: &str,
    owner: &Owner,
    choice: Choice<'_, P>,
    turn: &mut Option<Turn>,
) -> Option<Result<Lease, Error<P::Error>>> {
    for (i, p) in blocks {
        let blk = block(pool, b, *i);
        if !has_free(&blk, p) {
            continue;
        }
        let seed = Some(p.clone());
        match allocate_in(store, conf, &blk, namespace, owner, choice, seed, turn).await {
            Err(Error::Exhausted { .. }) => continue,
            other => return Some(other),
        }
    }
    None
}

/// A node's own starting block: the first 8 bytes of the sha256 of its name.
fn start_for(node: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(node.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Release `owner`'s address from range `pool` kept in blocks of size `b`, on `node`;
/// `hints`: addresses the runtime reports the owner had (prevResult). Idempotent, as
/// [`super::release`]. Every read here is fresh: a DEL that missed an entry written a moment
/// ago would leave it behind.
pub async fn release<S: PoolStore>(
    store: &S,
    namespace: &str,
    pool: &PoolRef,
    b: Block,
    owner: &Owner,
    node: &str,
    hints: &[IpAddr],
) -> Result<(), Error> {
    let st = Error::Store;
    let holds = |p: &IPPool| offsets(&p.spec).values().any(|a| owner.holds(a));
    let name_of = |p: IPPool| p.metadata.name;
    // The blocks of the reported addresses first: one read each, no list.
    let mut names: BTreeSet<String> = BTreeSet::new();
    for ip in hints {
        if let Some(o) = pool.range.offset_of(*ip) {
            let name = block(pool, b, o >> b.bits).name;
            if let Some(p) = store.get(namespace, &name).await.map_err(st)?
                && holds(&p)
            {
                names.insert(name);
            }
        }
    }
    if names.is_empty() {
        let mine = store
            .blocks(namespace, &pool.name, Some(node), true)
            .await
            .map_err(st)?;
        names.extend(mine.into_iter().filter(holds).filter_map(name_of));
    }
    if names.is_empty() {
        let claimed = store
            .block_names(namespace, &pool.name, true)
            .await
            .map_err(st)?
            .len() as u64;
        // Borrowing happens only once every block is claimed.
        if claimed >= claimable(pool, b) {
            let all = store
                .blocks(namespace, &pool.name, None, true)
                .await
                .map_err(st)?;
            names.extend(all.into_iter().filter(holds).filter_map(name_of));
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = names.into_iter().collect();
    release_pools(store, namespace, Some(&names), owner).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(range: &str, block_size: u8) -> (PoolRef, Block) {
        let c = IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": range, "block_size": block_size
        }))
        .unwrap();
        let p = c.pools().unwrap().remove(0);
        let b = p.block.unwrap();
        (p, b)
    }

    #[test]
    fn blocks_are_windows_of_the_range_named_by_their_cidr() {
        let (p, b) = pool("10.0.0.0/16", 26);
        assert_eq!(count(&p, b), 1024);
        let blk = block(&p, b, 42);
        assert_eq!(blk.name, "10.0.0.0-16.10.0.10.128-26");
        assert_eq!(index_of(&p, b, &blk.name), Some(42));
        // Addresses keep the range's prefix; offsets count from the range.
        assert_eq!(blk.range.address(42 * 64 + 1).to_string(), "10.0.10.129/16");
        assert_eq!(blk.range.bounds(), (42 * 64, 42 * 64 + 63));
        // The first block does not hand out the network address, the last not the broadcast.
        assert_eq!(block(&p, b, 0).range.bounds().0, 1);
        assert_eq!(block(&p, b, 1023).range.bounds().1, 65534);
        let (p6, b6) = pool("fd00:1::/64", 120);
        assert_eq!(count(&p6, b6), 1 << 56);
        let blk6 = block(&p6, b6, 3);
        assert_eq!(blk6.name, "fd00-1---64.fd00-1--300-120");
        assert_eq!(index_of(&p6, b6, &blk6.name), Some(3));
    }

    use crate::ipam::LowestFree;
    use crate::ipam::commit::tests::{FakeStore, owner};

    fn conf(range: &str, block_size: u8) -> IpamConf {
        IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": range, "block_size": block_size
        }))
        .unwrap()
    }

    async fn add(store: &FakeStore, c: &IpamConf, id: &str, node: &str) -> Result<Lease, Error> {
        let p = c.pools().unwrap().remove(0);
        let b = p.block.unwrap();
        let choice = Choice::Proposed(&LowestFree);
        allocate(store, c, &p, b, "kube-system", &owner(id), node, choice).await
    }

    async fn del(store: &FakeStore, c: &IpamConf, id: &str, node: &str) {
        let p = c.pools().unwrap().remove(0);
        let b = p.block.unwrap();
        release(store, "kube-system", &p, b, &owner(id), node, &[])
            .await
            .unwrap();
    }

    fn ips_of(store: &FakeStore) -> Vec<String> {
        let mut v: Vec<String> = store.orips.lock().unwrap().keys().cloned().collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn each_node_allocates_in_blocks_of_its_own() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/16", 26);
        let a1 = add(&store, &c, "a1", "node-a").await.unwrap();
        let a2 = add(&store, &c, "a2", "node-a").await.unwrap();
        let b1 = add(&store, &c, "b1", "node-b").await.unwrap();
        assert_eq!(a1.pool, a2.pool, "one block for node-a's first two");
        assert_ne!(a1.pool, b1.pool, "node-b claimed another");
        let blocks = store
            .blocks("kube-system", "10.0.0.0-16", None, true)
            .await
            .unwrap();
        assert_eq!(blocks.len(), 2);
        assert!(
            blocks.iter().all(|p| p.spec.range == "10.0.0.0/16"),
            "offsets count from the range"
        );
        // A retried ADD gets the same address; the addresses are distinct and reserved.
        assert_eq!(add(&store, &c, "a1", "node-a").await.unwrap(), a1);
        let mut got: Vec<String> = [&a1, &a2, &b1]
            .iter()
            .map(|l| l.address.ip().to_string())
            .collect();
        got.sort();
        assert_eq!(ips_of(&store), got);
        // DEL frees each; a DEL of nothing touches nothing.
        for (id, node) in [
            ("a1", "node-a"),
            ("a2", "node-a"),
            ("b1", "node-b"),
            ("zz", "node-a"),
        ] {
            del(&store, &c, id, node).await;
        }
        assert!(ips_of(&store).is_empty());
        assert!(store.entries(&a1.pool).is_empty() && store.entries(&b1.pool).is_empty());
    }

    #[tokio::test]
    async fn a_full_range_is_borrowed_from_then_exhausted_and_del_finds_the_borrowed() {
        let store = FakeStore::default();
        // 10.0.0.0/28 in /30 blocks: 4 blocks, 14 usable addresses (.1-.14).
        let c = conf("10.0.0.0/28", 30);
        for k in 0..4 {
            add(&store, &c, &format!("n{k}"), &format!("node-{k}"))
                .await
                .unwrap();
        }
        // Every block is claimed, each with free addresses left: node-x borrows until full.
        let mut borrowed = Vec::new();
        for k in 0..10 {
            let id = format!("x{k}");
            borrowed.push(add(&store, &c, &id, "node-x").await.unwrap());
        }
        let e = add(&store, &c, "x-last", "node-x").await.unwrap_err();
        assert!(matches!(e, Error::Exhausted { .. }), "{e}");
        assert_eq!(ips_of(&store).len(), 14, "every address once");
        // node-x claimed nothing, so its DEL finds the borrowed address by reading every block.
        del(&store, &c, "x0", "node-x").await;
        assert_eq!(ips_of(&store).len(), 13);
        assert!(!ips_of(&store).contains(&borrowed[0].address.ip().to_string()));
    }

    #[tokio::test]
    async fn a_requested_address_is_taken_in_its_block_whoever_claimed_it() {
        let store = FakeStore::default();
        let c = conf("10.0.0.0/24", 28);
        let a = add(&store, &c, "a", "node-a").await.unwrap();
        // The next address of node-a's block.
        let IpAddr::V4(v4) = a.address.ip() else {
            unreachable!()
        };
        let want = IpAddr::V4((u32::from(v4) + 1).into());
        let p = c.pools().unwrap().remove(0);
        let b = p.block.unwrap();
        let r = allocate(
            &store,
            &c,
            &p,
            b,
            "kube-system",
            &owner("r"),
            "node-b",
            Choice::<LowestFree>::Requested(want),
        )
        .await;
        let r = r.unwrap();
        assert_eq!(r.address.ip(), want);
        assert_eq!(r.pool, a.pool, "in node-a's block");
        // Its DEL on node-b finds it through the runtime's prevResult.
        release(&store, "kube-system", &p, b, &owner("r"), "node-b", &[want])
            .await
            .unwrap();
        assert_eq!(ips_of(&store), [a.address.ip().to_string()]);
    }

    #[tokio::test]
    async fn a_narrow_range_start_end_in_a_wide_v6_range_claims_only_its_blocks() {
        let store = FakeStore::default();
        let c = IpamConf::parse(&serde_json::json!({
            "type": "whereabouts", "range": "fd00::/64", "block_size": 120,
            "range_start": "fd00::1:0", "range_end": "fd00::1:1ff",
        }))
        .unwrap();
        let p = c.pools().unwrap().remove(0);
        assert_eq!(claimable(&p, p.block.unwrap()), 2);
        for (id, node) in [("a", "node-a"), ("b", "node-b"), ("c", "node-c")] {
            let l = add(&store, &c, id, node).await.unwrap();
            let ip = l.address.ip().to_string();
            assert!(ip.starts_with("fd00::1:"), "{ip}");
        }
        // Two blocks for three nodes: the third borrowed.
        assert_eq!(
            store
                .blocks("kube-system", &p.name, None, true)
                .await
                .unwrap()
                .len(),
            2
        );
        del(&store, &c, "c", "node-c").await;
        assert_eq!(
            ips_of(&store).len(),
            2,
            "the borrowed address is found and freed"
        );
    }

    #[test]
    fn bad_block_sizes_are_refused_naming_the_key() {
        for (range, bs, why) in [
            ("10.0.0.0/24", 20, "inside the range"),
            ("10.0.0.0/24", 31, "4 to 4096"),
            ("fd00::/64", 100, "4 to 4096"),
        ] {
            let e = IpamConf::parse(&serde_json::json!({
                "type": "whereabouts", "range": range, "block_size": bs
            }))
            .unwrap_err()
            .to_string();
            assert!(e.contains("ipam.block_size") && e.contains(why), "{e}");
        }
    }
}
