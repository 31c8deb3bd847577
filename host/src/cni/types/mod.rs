//! Wire types of the spec: network config lists and results, with version conversion.
//!
//! Results are held in the 1.x shape ([`result`]) and written in the shape the caller's
//! cniVersion asks for ([`write`]: 0.3.x/0.4.0 add `version` to each IP config), as libcni's
//! `convert` does; they are read as libcni reads them ([`read`]), with Go's lenient JSON
//! ([`gojson`]). Config lists are [`conflist`].

mod conflist;
mod gojson;
mod read;
mod result;
mod write;

pub use conflist::NetConfList;
pub use result::{CniResult, Dns, Interface, InterfaceExt, IpConfig, Route, RouteExt};

/// The two shapes libcni has for the versions wasmcni speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// 0.3.0, 0.3.1, 0.4.0 (`pkg/types/040`): `version` on each IP, interfaces without
    /// `mtu`/`socketPath`/`pciID`, `dns` always written.
    V04,
    /// 1.0.0, 1.1.0 (`pkg/types/100`): no IP `version`, `dns` omitted when empty.
    V1,
}

pub(crate) fn shape(version: &str) -> Option<Shape> {
    match version {
        "0.3.0" | "0.3.1" | "0.4.0" => Some(Shape::V04),
        "1.0.0" | "1.1.0" => Some(Shape::V1),
        _ => None,
    }
}
