// Shared by host/build.rs (the default guests, embedded) and tests/guests/artifacts/build.rs
// (the hostile test guests, for tests only): one way to build guests. Included with `include!`,
// so it is plain functions with no `use` of its own beyond std and sha2.

/// Build `packages` — (name the host knows it by, cargo package) — for wasm32-wasip2 with the
/// command guests/README.md gives, into the workspace's `target/guests` (a target directory of
/// their own: the outer cargo holds the lock on the host's), and put each as `NAME.wasm` with
/// its `NAME.sha256` in `out`.
fn build_guests(packages: &[(&str, &str)], out: &std::path::Path) {
    use sha2::Digest;
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    // Both callers are two levels below the workspace root or one: find it by its Cargo.lock.
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .expect("inside the workspace")
        .to_path_buf();
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
    for (_, package) in packages {
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

    std::fs::create_dir_all(out).expect("creating the guests' output directory");
    for (name, package) in packages {
        let built = target
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", package.replace('-', "_")));
        let bytes =
            std::fs::read(&built).unwrap_or_else(|e| panic!("reading {}: {e}", built.display()));
        let digest: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(out.join(format!("{name}.wasm")), &bytes).expect("writing a guest");
        std::fs::write(out.join(format!("{name}.sha256")), digest).expect("writing a guest");
    }
    for dir in ["guests", "wit", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-env-changed=WASMCNI_GUEST_TARGET_DIR");
}
