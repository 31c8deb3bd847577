//! Choosing an address: a [`Proposer`] looks at a [`PoolView`] and names an offset. The host
//! never trusts the answer: [`commit`](super::commit) checks it against the same view.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;

use super::PoolView;

/// A proposer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposal {
    /// This offset of the range.
    Offset(u64),
    /// The proposer finds nothing it would give.
    Exhausted,
}

/// Picks an address from a pool view. The Wasm policy guest is one implementation (in
/// `guest`), [`LowestFree`] another; IPAM itself knows neither the engine nor any guest.
pub trait Proposer: Sync {
    /// Why a proposal could not be made (a guest that trapped, or refused).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Who proposes, for logs and errors (e.g. `ipam guest sticky (sha256 …)`).
    fn describe(&self) -> String;

    /// Propose an offset of `view`'s range. The view is handed back so the caller can validate
    /// the answer against exactly what the proposer saw.
    fn propose(
        &self,
        view: PoolView,
    ) -> impl Future<Output = Result<(Proposal, PoolView), Self::Error>> + Send;
}

/// The built-in choice (whereabouts' own): the lowest free offset.
#[derive(Debug, Clone, Copy, Default)]
pub struct LowestFree;

impl Proposer for LowestFree {
    type Error = Infallible;

    fn describe(&self) -> String {
        "the built-in lowest-free".into()
    }

    async fn propose(&self, view: PoolView) -> Result<(Proposal, PoolView), Infallible> {
        let p = view
            .next_free_from(0)
            .map_or(Proposal::Exhausted, Proposal::Offset);
        Ok((p, view))
    }
}

/// Who picks the address of one allocation.
pub enum Choice<'a, P> {
    /// The pod asked for this address (runtimeConfig capability `ips`, from the network
    /// selection annotation); no proposer is asked, and a taken address is refused.
    Requested(IpAddr),
    /// The network's proposer.
    Proposed(&'a P),
}

// By hand: a derive would ask `P: Copy`, and a choice only borrows its proposer.
impl<P> Clone for Choice<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for Choice<'_, P> {}
