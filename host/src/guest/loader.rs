//! Guest resolution (built-in name, or a node path pinned by sha256), verification and the
//! per-node compile cache.
//!
//! The cache key is the module's sha256 plus the engine's precompile compatibility hash, so a
//! wasmcni upgrade or a changed engine config never loads a stale artifact; files are written to
//! a temporary name and renamed, so a crash never leaves a half-written one under the key.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::pins::{Module, Pin, Pins};
use super::{Error, Loaded, Origin};
use crate::config::GuestRef;

/// A guest compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The name configs use.
    pub name: &'static str,
    /// The component.
    pub bytes: &'static [u8],
    /// Its sha256, computed at build time: a CNI call does not re-hash the binary's own guests.
    pub sha256: &'static str,
}

/// Each guest in `OUT_DIR/guests/NAME.{wasm,sha256}` (put there by build.rs).
macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(Builtin {
            name: $name,
            bytes: include_bytes!(concat!(env!("OUT_DIR"), "/guests/", $name, ".wasm")),
            sha256: include_str!(concat!(env!("OUT_DIR"), "/guests/", $name, ".sha256")),
        }),*]
    };
}

/// Guests compiled into the binary (built from `guests/` by build.rs).
pub const BUILTIN: &[Builtin] = builtin![
    "multus-default",
    "label-networks",
    "lowest-free",
    "random",
    "sticky",
    "node-block",
];

/// The bytes of built-in guest `name`.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|b| b.name == name).map(|b| b.bytes)
}

/// The largest guest module read from the node (componentize-py's Python guests are ~18 MB).
const MAX_MODULE: u64 = 64 << 20;

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn load(
    engine: &Engine,
    cache_dir: &Path,
    r: &GuestRef,
    origin: Origin,
    pins: &Pins,
    memo: &Mutex<HashMap<(String, String), Arc<Loaded>>>,
) -> Result<Arc<Loaded>, Error> {
    let not_found = |why: String| Error::NotFound {
        name: r.guest.clone(),
        why,
    };
    let mut pinned: Option<&str> = None;
    let mut known_digest: Option<&'static str> = None;
    let bytes: std::borrow::Cow<'static, [u8]> = if let Some(b) =
        BUILTIN.iter().find(|b| b.name == r.guest)
    {
        known_digest = Some(b.sha256);
        b.bytes.into()
    } else if r.guest.starts_with('/') {
        // Only the node's own config (an admin's file) may point at a module on disk.
        if origin == Origin::Network {
            return Err(not_found(
                "a NetworkAttachmentDefinition may only name built-in guests or guests an admin pinned"
                    .into(),
            ));
        }
        if r.sha256.is_none() {
            return Err(not_found(
                "a guest loaded from a node path must be pinned with \"sha256\"".into(),
            ));
        }
        crate::files::read_regular(Path::new(&r.guest), MAX_MODULE)
            .map_err(|e| not_found(format!("{}: {e}", r.guest)))?
            .into()
    } else {
        match pins.get(&r.guest) {
            Some(Pin::Pinned { sha256, module }) => {
                pinned = Some(sha256);
                match module {
                    Module::Inline(b) => b.clone().into(),
                    Module::Path(p) => crate::files::read_regular(p, MAX_MODULE)
                        .map_err(|e| {
                            not_found(format!(
                                "pinned at {}, which cannot be used: {e}",
                                p.display()
                            ))
                        })?
                        .into(),
                }
            }
            Some(Pin::Broken(why)) => return Err(not_found(format!("its pin is unusable: {why}"))),
            None => {
                let known: Vec<_> = BUILTIN.iter().map(|b| b.name).collect();
                return Err(not_found(format!(
                    "no such guest; built in: {}; pinned by the admin: {}",
                    known.join(", "),
                    if pins.names().is_empty() {
                        "none".to_string()
                    } else {
                        pins.names().join(", ")
                    }
                )));
            }
        }
    };
    // Built-in bytes are part of this binary, hashed when it was built; everything else is
    // hashed here, before anything else is done with it.
    let digest = known_digest.map_or_else(|| sha256_hex(&bytes), str::to_string);
    for want in [pinned, r.sha256.as_deref()].into_iter().flatten() {
        if !want.eq_ignore_ascii_case(&digest) {
            return Err(not_found(format!(
                "sha256 mismatch: pinned {want}, module has {digest}; refusing to run it"
            )));
        }
    }
    let key = (r.guest.clone(), digest.clone());
    if let Some(l) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(l);
    }
    let component = compiled(engine, cache_dir, &digest, &bytes).map_err(|source| Error::Load {
        name: r.guest.clone(),
        digest: digest.clone(),
        source,
    })?;
    let loaded = Arc::new(Loaded {
        name: r.guest.clone(),
        digest,
        component,
        delegation: OnceLock::new(),
        ipam: OnceLock::new(),
    });
    if let Ok(mut m) = memo.lock() {
        m.insert(key, loaded.clone());
    }
    Ok(loaded)
}

fn compiled(
    engine: &Engine,
    cache_dir: &Path,
    digest: &str,
    bytes: &[u8],
) -> wasmtime::Result<Component> {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let engine_hash = format!("{:016x}", h.finish());
    // A .cwasm is native code this (root) process runs: a cache anyone else can write to is
    // never used, neither read nor written (compiled in memory instead, every call).
    if let Err(why) = private_dir(cache_dir) {
        tracing::warn!(
            "not using the compiled-guest cache {}: {why}; compiling in memory",
            cache_dir.display()
        );
        return Component::new(engine, bytes);
    }
    let path = cache_dir.join(format!("{digest}-{engine_hash}.cwasm"));
    let binding = format!("{digest}-{engine_hash}");
    match read_private(&path) {
        Ok(Some(file)) => match sealed(&file, &binding) {
            // SAFETY: the artifact is ours and intact: written by `store` below into a
            // directory only this user can write (checked above, parents included), read from a
            // regular file this user owns that nobody else can write (checked on the open fd,
            // no symlink followed), under a name keyed by the module's sha256 and this engine's
            // compatibility hash — and its trailer's CRC covers that same sha256 and hash with
            // the bytes, so a truncated, bit-flipped or other module's artifact never reaches
            // `deserialize`. wasmtime then checks its own header and engine compatibility.
            #[allow(
                unsafe_code,
                reason = "loading our own precompiled artifact (see SAFETY)"
            )]
            Some(artifact) => match unsafe { Component::deserialize(engine, artifact) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    "discarding unusable compiled guest {}: {e:#}",
                    path.display()
                ),
            },
            None => tracing::warn!(
                "discarding corrupt or foreign compiled guest {} (its seal does not match)",
                path.display()
            ),
        },
        Ok(None) => {}
        Err(why) => tracing::warn!("discarding compiled guest {}: {why}", path.display()),
    }
    let component = Component::new(engine, bytes)?;
    if let Err(e) = store(cache_dir, &path, &seal(component.serialize()?, &binding)) {
        // Not fatal: the next call compiles again.
        tracing::warn!(
            "cannot cache compiled guest in {}: {e}",
            cache_dir.display()
        );
    }
    Ok(component)
}

/// Marks the end of a sealed artifact:
/// `artifact ‖ MAGIC ‖ crc32(binding ‖ artifact) LE ‖ len LE`, where `binding` is the source
/// module's sha256 and the engine's compatibility hash: an artifact copied under another key
/// does not verify.
const MAGIC: &[u8; 8] = b"wasmcni2";
const TRAILER: usize = 8 + 4 + 8;

fn crc(binding: &str, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(binding.as_bytes());
    h.update(body);
    h.finalize()
}

fn seal(mut artifact: Vec<u8>, binding: &str) -> Vec<u8> {
    let crc = crc(binding, &artifact);
    let len = artifact.len() as u64;
    artifact.extend_from_slice(MAGIC);
    artifact.extend_from_slice(&crc.to_le_bytes());
    artifact.extend_from_slice(&len.to_le_bytes());
    artifact
}

/// The artifact inside a sealed file, if the trailer is present and matches `binding`.
fn sealed<'a>(file: &'a [u8], binding: &str) -> Option<&'a [u8]> {
    let body_len = file.len().checked_sub(TRAILER)?;
    let (body, trailer) = file.split_at(body_len);
    let want = u32::from_le_bytes(trailer[8..12].try_into().ok()?);
    let len = u64::from_le_bytes(trailer[12..20].try_into().ok()?);
    (trailer[..8] == MAGIC[..] && len == body.len() as u64 && crc(binding, body) == want)
        .then_some(body)
}

/// Whether a file or directory's metadata says only this user can change it.
fn only_mine(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!("owned by uid {}, not {me}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Make `dir` (0700) if it is missing, then check that nobody but this user (or root) can
/// change it or any directory above it (a parent writable by others must be sticky, as /tmp is).
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory (a symlink?)".into());
    }
    only_mine(&meta)?;
    let me = nix::unistd::geteuid().as_raw();
    let absolute = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    for parent in absolute.ancestors().skip(1) {
        let m = std::fs::metadata(parent).map_err(|e| e.to_string())?;
        let sticky = m.mode() & 0o1000 != 0;
        if (m.uid() != 0 && m.uid() != me) || (m.mode() & 0o022 != 0 && !sticky) {
            return Err(format!(
                "its parent {} can be changed by others (uid {}, mode {:o})",
                parent.display(),
                m.uid(),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// The bytes of `path` if it is a regular file only this user can change, read without
/// following a symlink; `Ok(None)` when it does not exist.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    only_mine(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A fresh name, created exclusively and never through a symlink.
    let tmp = dir.join(format!(
        ".tmp-{}-{:08x}",
        std::process::id(),
        crc32fast::hash(path.as_os_str().as_encoded_bytes())
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const BINDING: &str = "ab12-0011";

    #[test]
    fn sealed_artifacts_reject_any_damage() {
        let file = seal(b"compiled code".to_vec(), BINDING);
        assert_eq!(sealed(&file, BINDING), Some(&b"compiled code"[..]));
        for i in [0, 5, file.len() - 1] {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert_eq!(sealed(&bad, BINDING), None, "flip at {i}");
        }
        assert_eq!(sealed(&file[..file.len() - 1], BINDING), None);
        assert_eq!(sealed(b"short", BINDING), None);
        assert_eq!(
            sealed(b"compiled code that was never sealed by wasmcni", BINDING),
            None
        );
    }

    #[test]
    fn a_seal_is_bound_to_the_module_and_engine_it_was_made_for() {
        let file = seal(b"compiled code".to_vec(), "module-a-engine-1");
        assert_eq!(sealed(&file, "module-b-engine-1"), None);
        assert_eq!(sealed(&file, "module-a-engine-2"), None);
    }

    fn engine() -> Engine {
        Engine::default()
    }

    fn lowest_free() -> (&'static [u8], &'static str) {
        let b = BUILTIN.iter().find(|b| b.name == "lowest-free").unwrap();
        (b.bytes, b.sha256)
    }

    fn key_path(e: &Engine, dir: &Path, digest: &str) -> std::path::PathBuf {
        let mut h = DefaultHasher::new();
        e.precompile_compatibility_hash().hash(&mut h);
        dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    #[test]
    fn a_cache_others_can_write_is_neither_read_nor_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("guests");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = engine();
        let (bytes, digest) = lowest_free();
        // Somebody else planted a file under the key: it must not be loaded (it is not even
        // a sealed artifact here; a crafted one would be native code).
        let path = key_path(&e, &dir, digest);
        std::fs::write(&path, b"planted").unwrap();
        let c = compiled(&e, &dir, digest, bytes).unwrap();
        assert!(c.component_type().exports(&e).count() > 0);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"planted",
            "not rewritten either"
        );
        assert!(
            private_dir(&dir)
                .unwrap_err()
                .contains("writable by group or others")
        );
    }

    #[test]
    fn a_cached_file_owned_by_another_user_or_a_symlink_is_replaced_not_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("guests");
        let e = engine();
        let (bytes, digest) = lowest_free();
        compiled(&e, &dir, digest, bytes).unwrap();
        let path = key_path(&e, &dir, digest);
        let good = std::fs::read(&path).unwrap();

        // Another user's file (as if planted before the directory was locked down).
        nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(
            read_private(&path)
                .unwrap_err()
                .contains("owned by uid 65534")
        );
        compiled(&e, &dir, digest, bytes).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().uid(),
            nix::unistd::geteuid().as_raw()
        );

        // A symlink to a file elsewhere: not followed.
        let elsewhere = tmp.path().join("elsewhere.cwasm");
        std::fs::write(&elsewhere, &good).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(read_private(&path).is_err());
        compiled(&e, &dir, digest, bytes).unwrap();
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn another_modules_artifact_under_this_key_is_rebuilt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("guests");
        let e = engine();
        let (bytes, digest) = lowest_free();
        let other = BUILTIN.iter().find(|b| b.name == "random").unwrap();
        compiled(&e, &dir, other.sha256, other.bytes).unwrap();
        // Copy random's (validly sealed) artifact to lowest-free's name.
        std::fs::copy(key_path(&e, &dir, other.sha256), key_path(&e, &dir, digest)).unwrap();
        let before = std::fs::read(key_path(&e, &dir, digest)).unwrap();
        compiled(&e, &dir, digest, bytes).unwrap();
        let after = std::fs::read(key_path(&e, &dir, digest)).unwrap();
        assert_ne!(before, after, "the foreign artifact was replaced");
        let mut h = DefaultHasher::new();
        e.precompile_compatibility_hash().hash(&mut h);
        assert!(sealed(&after, &format!("{digest}-{:016x}", h.finish())).is_some());
    }
}
