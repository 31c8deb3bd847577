//! Builds the default guests (`guests/*`) as wasm32-wasip2 components and puts them in OUT_DIR,
//! where `guest::BUILTIN` embeds them: a bare `cargo build` yields a host that works alone.
//!
//! The guests are built by the same command a person would run (see guests/README.md). Test
//! guests (tests/guests/) are not built here: `tests/guests/artifacts` builds them for the tests
//! that use them, so a release build never contains or compiles them.

include!("build/guests.rs");

/// (name the host knows it by, cargo package): embedded in the binary.
const GUESTS: &[(&str, &str)] = &[
    ("multus-default", "guest-multus-default"),
    ("label-networks", "guest-label-networks"),
    ("lowest-free", "guest-lowest-free"),
    ("random", "guest-random"),
    ("sticky", "guest-sticky"),
    ("node-block", "guest-node-block"),
];

fn main() {
    let out =
        std::path::PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("guests");
    build_guests(GUESTS, &out);
}
