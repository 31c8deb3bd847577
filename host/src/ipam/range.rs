//! Address ranges as whereabouts configures them, in offsets from the network address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// The most `exclude` entries a range may have. A tenant's NAD must not be able to make the
/// host do unbounded work (an outside run gave one 16,383); a range with more is refused.
pub const MAX_EXCLUDES: usize = 4096;

/// A range: its network, the allocatable offsets within it and its exclusions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    net: IpNetwork,
    first: u64,
    last: u64,
    /// Excluded offsets as disjoint, sorted, non-adjacent inclusive intervals: a lookup is a
    /// binary search, whatever the config's overlaps.
    exclude: Vec<(u64, u64)>,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Range {
    /// Parse whereabouts' `range` (`CIDR` or `first-last/prefix`), `range_start`, `range_end`
    /// and `exclude`. Offsets must fit 64 bits (at most a /64 of IPv6).
    pub fn parse(
        range: &str,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        exclude: &[String],
    ) -> Result<Self, String> {
        let (mut start, mut end) = (start, end);
        let cidr = match range.split_once('-') {
            // "192.168.2.225-192.168.2.230/24": the dash form.
            Some((first, rest)) if !range.contains(':') || first.parse::<IpAddr>().is_ok() => {
                let (last, prefix) = rest
                    .split_once('/')
                    .ok_or(format!("range {range:?}: expected first-last/prefix"))?;
                start = Some(
                    first
                        .parse()
                        .map_err(|e| format!("range {range:?}: {first:?}: {e}"))?,
                );
                end = Some(
                    last.parse()
                        .map_err(|e| format!("range {range:?}: {last:?}: {e}"))?,
                );
                format!("{first}/{prefix}")
            }
            _ => range.to_string(),
        };
        let parsed: IpNetwork = cidr
            .parse()
            .map_err(|e| format!("range {range:?} is not a CIDR (like 172.16.1.0/24): {e}"))?;
        if !cidr.contains('/') {
            return Err(format!(
                "range {range:?} is not a CIDR: it has no prefix length (like 172.16.1.0/24)"
            ));
        }
        let net =
            IpNetwork::new(parsed.network(), parsed.prefix()).expect("prefix already validated");
        if net.prefix() == 0 {
            return Err(format!(
                "range {range:?} covers every address; give the network the pods are on"
            ));
        }
        let special = match net.network() {
            IpAddr::V4(a) => a.is_loopback() || a.is_multicast() || a.octets()[0] == 0,
            IpAddr::V6(a) => a.is_loopback() || a.is_multicast() || a.is_unspecified(),
        };
        if special {
            return Err(format!(
                "range {range:?} is a loopback, multicast or unspecified network, not one pods can use"
            ));
        }
        let host_bits = u32::from(if net.is_ipv4() { 32u8 } else { 128 }) - u32::from(net.prefix());
        if host_bits > 64 {
            return Err(format!(
                "range {range:?} is larger than a /64; offsets must fit 64 bits"
            ));
        }
        if host_bits < 2 && net.is_ipv4() {
            return Err(format!("range {range:?} has no usable addresses"));
        }
        let size_minus_one: u64 = if host_bits == 64 {
            u64::MAX
        } else {
            (1u64 << host_bits) - 1
        };
        let base = to_u128(net.network());
        let offset_of = |ip: IpAddr, what: &str| -> Result<u64, String> {
            if ip.is_ipv4() != net.is_ipv4() || !net.contains(ip) {
                return Err(format!("{what} {ip} is not inside {net}"));
            }
            Ok((to_u128(ip) - base) as u64)
        };
        // IPv4: the network and broadcast addresses are never handed out; IPv6: the
        // subnet-router anycast address (offset 0) is not either.
        let mut first = 1u64;
        let mut last = if net.is_ipv4() {
            size_minus_one - 1
        } else {
            size_minus_one
        };
        if let Some(s) = start {
            first = first.max(offset_of(s, "range_start")?);
        }
        if let Some(e) = end {
            last = last.min(offset_of(e, "range_end")?);
        }
        if first > last {
            return Err(format!("range {range:?}: range_start is after range_end"));
        }
        if exclude.len() > MAX_EXCLUDES {
            return Err(format!(
                "exclude has {} entries; at most {MAX_EXCLUDES} are accepted (use wider CIDRs)",
                exclude.len()
            ));
        }
        let mut excl = Vec::new();
        for x in exclude {
            let x: IpNetwork = x
                .parse()
                .map_err(|e| format!("exclude {x:?} is not a CIDR: {e}"))?;
            let xb = to_u128(x.network());
            let xbits = u32::from(if x.is_ipv4() { 32u8 } else { 128 }) - u32::from(x.prefix());
            if x.is_ipv4() != net.is_ipv4() {
                continue;
            }
            let xlast = xb.saturating_add((1u128 << xbits.min(127)) - 1);
            let lo = xb.max(base);
            let hi = xlast.min(base + u128::from(size_minus_one));
            if lo <= hi {
                excl.push(((lo - base) as u64, (hi - base) as u64));
            }
        }
        Ok(Range {
            net,
            first,
            last,
            exclude: merged(excl),
        })
    }

    /// The same range with `ip` never allocatable (the gateway): a one-address exclusion.
    /// An address outside the network changes nothing.
    pub fn reserving(mut self, ip: IpAddr) -> Self {
        if ip.is_ipv4() == self.net.is_ipv4()
            && let Some(o) = self.offset_of(ip)
        {
            self.exclude.push((o, o));
            self.exclude = merged(std::mem::take(&mut self.exclude));
        }
        self
    }

    /// The same range allocatable only within offsets `lo..=hi` (one block of it): addresses
    /// keep the range's network and prefix. A window outside the range allocates nothing.
    pub fn window(mut self, lo: u64, hi: u64) -> Self {
        self.first = self.first.max(lo);
        self.last = self.last.min(hi);
        if self.first > self.last {
            // Nothing allocatable: first > last makes `allocatable` false everywhere.
            self.first = 1;
            self.last = 0;
        }
        self
    }

    /// The network's prefix length.
    pub fn prefix(&self) -> u8 {
        self.net.prefix()
    }

    /// Whether the network is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.net.is_ipv4()
    }

    /// The network in CIDR notation.
    pub fn cidr(&self) -> String {
        self.net.to_string()
    }

    /// The highest offset of the network.
    pub fn last_offset(&self) -> u64 {
        let bits =
            u32::from(if self.net.is_ipv4() { 32u8 } else { 128 }) - u32::from(self.net.prefix());
        if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        }
    }

    /// Whether `offset` may ever be allocated (inside start..end and not excluded).
    pub fn allocatable(&self, offset: u64) -> bool {
        (self.first..=self.last).contains(&offset) && self.exclusion_end(offset).is_none()
    }

    /// If `offset` is excluded, the last offset of its exclusion (a binary search).
    pub fn exclusion_end(&self, offset: u64) -> Option<u64> {
        let i = self.exclude.partition_point(|(lo, _)| *lo <= offset);
        let (_, hi) = *self.exclude.get(i.checked_sub(1)?)?;
        (offset <= hi).then_some(hi)
    }

    /// The first and last allocatable offsets.
    pub fn bounds(&self) -> (u64, u64) {
        (self.first, self.last)
    }

    /// The offset of `ip` in the network, if it is inside it.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u64> {
        if !self.net.contains(ip) {
            return None;
        }
        u64::try_from(to_u128(ip) - to_u128(self.net.network())).ok()
    }

    /// The address at `offset`, with the range's prefix length.
    pub fn address(&self, offset: u64) -> IpNetwork {
        at(self.net, offset).expect("offsets of a range are inside its network")
    }
}

/// The address at `offset` of network `net` (as a pool's `spec.range` names it), with its
/// prefix length; `None` outside the network.
pub fn at(net: IpNetwork, offset: u64) -> Option<IpNetwork> {
    let v = to_u128(net.network()).checked_add(u128::from(offset))?;
    let ip = match net {
        IpNetwork::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(v).ok()?)),
        IpNetwork::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    };
    IpNetwork::new(ip, net.prefix())
        .ok()
        .filter(|a| net.contains(a.ip()))
}

/// `intervals` sorted and merged: overlapping or adjacent ones become one.
fn merged(mut intervals: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    intervals.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for (lo, hi) in intervals {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_skips_network_and_broadcast() {
        let r = Range::parse("172.16.1.0/24", None, None, &[]).unwrap();
        assert_eq!(r.bounds(), (1, 254));
        assert_eq!(r.address(1).to_string(), "172.16.1.1/24");
        assert!(!r.allocatable(0) && !r.allocatable(255) && r.allocatable(254));
    }

    #[test]
    fn host_bits_are_masked_and_dash_form_parses() {
        let r = Range::parse("172.16.1.7/24", None, None, &[]).unwrap();
        assert_eq!(r.cidr(), "172.16.1.0/24");
        let d = Range::parse("192.168.2.225-192.168.2.230/24", None, None, &[]).unwrap();
        assert_eq!(d.bounds(), (225, 230));
    }

    #[test]
    fn start_end_and_exclusions() {
        let r = Range::parse(
            "10.0.0.0/28",
            Some("10.0.0.4".parse().unwrap()),
            Some("10.0.0.12".parse().unwrap()),
            &["10.0.0.4/31".into(), "10.0.0.10/32".into()],
        )
        .unwrap();
        assert_eq!(r.bounds(), (4, 12));
        assert!(!r.allocatable(4) && !r.allocatable(5) && r.allocatable(6));
        assert_eq!(r.exclusion_end(4), Some(5));
        assert!(!r.allocatable(10));
    }

    #[test]
    fn v6_offsets_fit_u64() {
        let r = Range::parse("fd00::/64", None, None, &[]).unwrap();
        assert_eq!(r.last_offset(), u64::MAX);
        assert_eq!(
            r.address(u64::MAX).ip().to_string(),
            "fd00::ffff:ffff:ffff:ffff"
        );
        assert!(Range::parse("fd00::/63", None, None, &[]).is_err());
    }

    #[test]
    fn overlapping_exclusions_are_merged_and_found_by_search() {
        let r = Range::parse(
            "10.0.0.0/24",
            None,
            None,
            &[
                "10.0.0.8/29".into(),
                "10.0.0.10/32".into(),
                "10.0.0.16/30".into(),
                "10.0.0.100/32".into(),
            ],
        )
        .unwrap();
        assert_eq!(r.exclude, vec![(8, 19), (100, 100)]);
        assert_eq!(r.exclusion_end(7), None);
        assert_eq!(r.exclusion_end(8), Some(19));
        assert_eq!(r.exclusion_end(12), Some(19));
        assert_eq!(r.exclusion_end(20), None);
        assert_eq!(r.exclusion_end(100), Some(100));
        assert_eq!(r.exclusion_end(101), None);
    }

    #[test]
    fn a_tenant_cannot_make_the_host_walk_a_huge_exclude_list() {
        let many: Vec<String> = (0..=MAX_EXCLUDES)
            .map(|i| format!("10.{}.{}.1/32", i / 256, i % 256))
            .collect();
        let e = Range::parse("10.0.0.0/8", None, None, &many).unwrap_err();
        assert!(e.contains("exclude has 4097 entries"), "{e}");
        // The most accepted, all of a /16's .1 addresses: found by search, merged where adjacent.
        let ok = Range::parse("10.0.0.0/8", None, None, &many[..MAX_EXCLUDES]).unwrap();
        assert_eq!(ok.exclusion_end(1), Some(1));
        assert_eq!(ok.exclusion_end(2), None);
    }

    #[test]
    fn the_gateway_is_reserved() {
        let r = Range::parse("10.0.0.0/24", None, None, &[])
            .unwrap()
            .reserving("10.0.0.1".parse().unwrap())
            .reserving("10.9.9.9".parse().unwrap());
        assert!(!r.allocatable(1) && r.allocatable(2));
        assert_eq!(r.exclude, vec![(1, 1)]);
    }

    #[test]
    fn bad_ranges_say_why() {
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "127.0.0.0/8",
            "224.0.0.0/24",
            "ff02::/64",
            "0.0.0.0/24",
        ] {
            let e = Range::parse(bad, None, None, &[]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        for bad in ["172.16.1.0", "172.16.1.0/33", "nope/24", "10.0.0.0/32"] {
            let e = Range::parse(bad, None, None, &[]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(Range::parse("10.0.0.0/24", Some("10.0.1.1".parse().unwrap()), None, &[]).is_err());
    }
}
