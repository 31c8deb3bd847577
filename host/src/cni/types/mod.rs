//! Wire types of the spec: network config lists and results, with version conversion.
//!
//! Results are held in the 1.x shape ([`result`]) and written in the shape the caller's
//! cniVersion asks for ([`write`]: 0.3.x/0.4.0 add `version` to each IP config, 0.1.0/0.2.0
//! keep one `ip4` and one `ip6`), as libcni's `convert` does; they are read as libcni reads
//! them ([`read`]), with Go's lenient JSON ([`gojson`]). Config lists are [`conflist`].

mod conflist;
mod gojson;
mod read;
mod result;
mod write;

pub use conflist::NetConfList;
pub use result::{CniResult, Dns, Interface, InterfaceExt, IpConfig, Route, RouteExt};

/// The three shapes libcni has for the versions of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// 0.1.0, 0.2.0 (`pkg/types/020`): one `ip4` and one `ip6` (`ip`, `gateway`, their own
    /// `routes`), `dns`; no interfaces. An empty version is 0.1.0 here.
    V02,
    /// 0.3.0, 0.3.1, 0.4.0 (`pkg/types/040`): `version` on each IP, interfaces without
    /// `mtu`/`socketPath`/`pciID`, `dns` always written.
    V04,
    /// 1.0.0, 1.1.0 (`pkg/types/100`): no IP `version`, `dns` omitted when empty.
    V1,
}

/// The shape of `version`, as libcni's creators are registered: `""` is a 0.1.0 result
/// (`types020.NewResult` takes it).
pub(crate) fn shape(version: &str) -> Option<Shape> {
    match version {
        "" | "0.1.0" | "0.2.0" => Some(Shape::V02),
        "0.3.0" | "0.3.1" | "0.4.0" => Some(Shape::V04),
        "1.0.0" | "1.1.0" => Some(Shape::V1),
        _ => None,
    }
}
