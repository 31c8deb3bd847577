//! Builds the default guests (`guests/*`) as wasm32-wasip2 components and puts them in OUT_DIR,
//! where `guest::BUILTIN` embeds them: a bare `cargo build` yields a host that works alone.
//!
//! The guests are built by the same command a person would run (see guests/README.md), into a
//! target directory of their own, since the outer cargo holds the lock on the host's.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use sha2::Digest;

/// (name the host knows it by, cargo package): embedded in the binary.
const GUESTS: &[(&str, &str)] = &[
    ("multus-default", "guest-multus-default"),
    ("label-networks", "guest-label-networks"),
    ("lowest-free", "guest-lowest-free"),
    ("random", "guest-random"),
    ("sticky", "guest-sticky"),
    ("node-block", "guest-node-block"),
];
/// Guests only the tests use (tests/guests/): built here too, never embedded.
const TEST_GUESTS: &[(&str, &str)] = &[
    ("hostile-ipam", "guest-hostile-ipam"),
    ("hostile-delegation", "guest-hostile-delegation"),
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("guests");
    let target = env::var_os("WASMCNI_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("guests"));

    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args([
            "build",
            "--locked",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target);
    for (_, package) in GUESTS.iter().chain(TEST_GUESTS) {
        cmd.args(["-p", package]);
    }
    // The outer build's settings are for the host (a clippy wrapper, host RUSTFLAGS, its target
    // dir): keep them out of the guest build, but share the jobserver.
    for (k, _) in env::vars() {
        let leak = (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_MAKEFLAGS")
            || matches!(
                k.as_str(),
                "RUSTFLAGS" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTC_WRAPPER" | "RUSTC"
            );
        if leak {
            cmd.env_remove(k);
        }
    }
    let status = cmd.status().expect("running cargo for the guests");
    assert!(
        status.success(),
        "building the guests failed; is the target installed? `rustup target add wasm32-wasip2`"
    );

    std::fs::create_dir_all(out.join("test")).expect("creating OUT_DIR/guests");
    let place = |list: &[(&str, &str)], dir: PathBuf| {
        for (name, package) in list {
            let built = target
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", package.replace('-', "_")));
            let bytes = std::fs::read(&built)
                .unwrap_or_else(|e| panic!("reading {}: {e}", built.display()));
            let digest: String = sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(dir.join(format!("{name}.wasm")), &bytes)
                .expect("writing OUT_DIR/guests");
            std::fs::write(dir.join(format!("{name}.sha256")), digest)
                .expect("writing OUT_DIR/guests");
        }
    };
    place(GUESTS, out.clone());
    place(TEST_GUESTS, out.join("test"));
    for dir in ["guests", "wit", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-env-changed=WASMCNI_GUEST_TARGET_DIR");
}
