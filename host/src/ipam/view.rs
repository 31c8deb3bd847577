//! The read-only pool view handed to IPAM guests as a WIT resource.

use std::collections::BTreeMap;

use super::Range;
use crate::k8s::IpAllocation;

/// One range's state at the moment of a request. The guest queries it; it is never copied
/// into the guest.
#[derive(Debug, Clone)]
pub struct PoolView {
    range: Range,
    taken: BTreeMap<u64, IpAllocation>,
}

impl PoolView {
    /// A view over `range` with `taken` allocated.
    pub fn new(range: Range, taken: BTreeMap<u64, IpAllocation>) -> Self {
        PoolView { range, taken }
    }

    /// The range in CIDR notation.
    pub fn cidr(&self) -> String {
        self.range.cidr()
    }

    /// The highest offset of the range.
    pub fn last_offset(&self) -> u64 {
        self.range.last_offset()
    }

    /// Allocatable and not taken.
    pub fn is_free(&self, offset: u64) -> bool {
        self.range.allocatable(offset) && !self.taken.contains_key(&offset)
    }

    /// The lowest free offset at or above `start`. Walks runs of taken offsets in order, so the
    /// cost is bounded by the allocations it passes, not by the range size.
    pub fn next_free_from(&self, start: u64) -> Option<u64> {
        let (first, last) = self.range.bounds();
        let mut o = start.max(first);
        let mut taken = self.taken.range(o..).map(|(k, _)| *k).peekable();
        loop {
            if o > last {
                return None;
            }
            if let Some(end) = self.range.exclusion_end(o) {
                o = end.checked_add(1)?;
                continue;
            }
            while taken.peek().is_some_and(|t| *t < o) {
                taken.next();
            }
            if taken.peek() == Some(&o) {
                taken.next();
                o = o.checked_add(1)?;
                continue;
            }
            return Some(o);
        }
    }

    /// The offset to try instead of the proposed `offset` after `losses` lost races: one of
    /// the 2^losses free offsets from `offset` on (at most 64), picked by `salt`. Writers that
    /// all propose the same lowest address, and lose it to each other, would otherwise move on
    /// in lockstep — every one to the next lowest — and collide again on every address; widening
    /// the window after each loss fans them out, as Ethernet's backoff does in time. With no
    /// loss it is `offset` itself; it is never below it, and it is always free.
    pub fn spread(&self, offset: u64, losses: u32, salt: u64) -> u64 {
        if losses == 0 {
            return offset;
        }
        let window = 1u64 << losses.min(6);
        let mut at = offset;
        for _ in 0..salt % window {
            match at.checked_add(1).and_then(|n| self.next_free_from(n)) {
                Some(next) => at = next,
                None => break,
            }
        }
        at
    }

    /// Mark `offset` taken by someone this view was not read with (a writer that got there
    /// first, or a reservation from an overlapping range).
    pub fn take(&mut self, offset: u64, by: &str) {
        self.taken.entry(offset).or_insert_with(|| IpAllocation {
            id: String::new(),
            podref: by.to_string(),
            ifname: String::new(),
        });
    }

    /// `namespace/name` of the pod holding `offset`.
    pub fn owner_of(&self, offset: u64) -> Option<String> {
        self.taken.get(&offset).map(|a| a.podref.clone())
    }

    /// How many offsets are taken.
    pub fn allocated_count(&self) -> u64 {
        self.taken.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str) -> IpAllocation {
        IpAllocation {
            id: id.into(),
            podref: format!("default/{id}"),
            ifname: "net1".into(),
        }
    }

    #[test]
    fn lowest_free_skips_taken_and_excluded() {
        let range = Range::parse("10.0.0.0/24", None, None, &["10.0.0.3/32".into()]).unwrap();
        let taken: BTreeMap<u64, IpAllocation> =
            [(1, alloc("a")), (2, alloc("b")), (4, alloc("c"))].into();
        let v = PoolView::new(range, taken);
        assert_eq!(v.next_free_from(0), Some(5));
        assert_eq!(v.next_free_from(250), Some(250));
        assert_eq!(v.next_free_from(255), None);
        assert!(!v.is_free(3) && !v.is_free(1) && v.is_free(5));
        assert_eq!(v.owner_of(2).as_deref(), Some("default/b"));
        assert_eq!(v.allocated_count(), 3);
    }

    #[test]
    fn spread_stays_on_free_offsets_at_or_after_the_proposal_and_widens_with_losses() {
        let range = Range::parse("10.0.0.0/24", None, None, &[]).unwrap();
        let v = PoolView::new(range, [(6, alloc("a")), (7, alloc("b"))].into());
        assert_eq!(v.spread(5, 0, 12345), 5, "no loss: the proposal itself");
        let once: std::collections::BTreeSet<u64> = (0..64).map(|s| v.spread(5, 1, s)).collect();
        assert_eq!(
            once,
            [5, 8].into(),
            "one loss: the proposal or the next free one"
        );
        let many: std::collections::BTreeSet<u64> = (0..256).map(|s| v.spread(5, 9, s)).collect();
        assert_eq!(many.len(), 64, "the window stops at 64");
        assert!(many.iter().all(|o| *o >= 5 && v.is_free(*o)));
        let near_end = PoolView::new(
            Range::parse("10.0.0.0/29", None, None, &[]).unwrap(),
            Default::default(),
        );
        assert_eq!(
            near_end.spread(5, 6, 63),
            6,
            "stops at the last free offset"
        );
    }

    #[test]
    fn full_range_has_nothing_free() {
        let range = Range::parse("10.0.0.0/30", None, None, &[]).unwrap();
        let v = PoolView::new(range, [(1, alloc("a")), (2, alloc("b"))].into());
        assert_eq!(v.next_free_from(0), None);
    }
}
