//! Builds the hostile test guests for wasm32-wasip2 into OUT_DIR (the same builder as the
//! host's default guests), so only builds that depend on this crate — the host's tests — pay
//! for them or carry them.

include!("../../../host/build/guests.rs");

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    build_guests(
        &[
            ("hostile-ipam", "guest-hostile-ipam"),
            ("hostile-delegation", "guest-hostile-delegation"),
        ],
        &out,
    );
}
