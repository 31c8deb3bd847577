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
        std::fs::read(&r.guest)
            .map_err(|e| not_found(format!("cannot read {}: {e}", r.guest)))?
            .into()
    } else {
        match pins.get(&r.guest) {
            Some(Pin::Pinned { sha256, module }) => {
                pinned = Some(sha256);
                match module {
                    Module::Inline(b) => b.clone().into(),
                    Module::Path(p) => std::fs::read(p)
                        .map_err(|e| {
                            not_found(format!(
                                "pinned at {}, which cannot be read: {e}",
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
    let path = cache_dir.join(format!("{digest}-{:016x}.cwasm", h.finish()));
    if let Ok(file) = std::fs::read(&path) {
        match sealed(&file) {
            // SAFETY: the artifact is ours and intact: written by `store` below (root-only
            // directory, atomic rename), under a name keyed by the module's sha256 and this
            // engine's compatibility hash, and its CRC-32 trailer matches, so a truncated,
            // bit-flipped or foreign file never reaches `deserialize`. wasmtime then checks its
            // own header and engine compatibility.
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
                "discarding corrupt compiled guest {} (bad trailer)",
                path.display()
            ),
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(e) = store(cache_dir, &path, &seal(component.serialize()?)) {
        // Not fatal: the next call compiles again.
        tracing::warn!(
            "cannot cache compiled guest in {}: {e}",
            cache_dir.display()
        );
    }
    Ok(component)
}

/// Marks the end of a sealed artifact: `artifact ‖ MAGIC ‖ crc32(artifact) LE ‖ len LE`.
const MAGIC: &[u8; 8] = b"wasmcni1";
const TRAILER: usize = 8 + 4 + 8;

fn seal(mut artifact: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&artifact);
    let len = artifact.len() as u64;
    artifact.extend_from_slice(MAGIC);
    artifact.extend_from_slice(&crc.to_le_bytes());
    artifact.extend_from_slice(&len.to_le_bytes());
    artifact
}

/// The artifact inside a sealed file, if the trailer is present and matches.
fn sealed(file: &[u8]) -> Option<&[u8]> {
    let body_len = file.len().checked_sub(TRAILER)?;
    let (body, trailer) = file.split_at(body_len);
    let crc = u32::from_le_bytes(trailer[8..12].try_into().ok()?);
    let len = u64::from_le_bytes(trailer[12..20].try_into().ok()?);
    (trailer[..8] == MAGIC[..] && len == body.len() as u64 && crc32fast::hash(body) == crc)
        .then_some(body)
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_artifacts_reject_any_damage() {
        let file = seal(b"compiled code".to_vec());
        assert_eq!(sealed(&file), Some(&b"compiled code"[..]));
        for i in [0, 5, file.len() - 1] {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert_eq!(sealed(&bad), None, "flip at {i}");
        }
        assert_eq!(sealed(&file[..file.len() - 1]), None);
        assert_eq!(sealed(b"short"), None);
        assert_eq!(
            sealed(b"compiled code that was never sealed by wasmcni"),
            None
        );
    }
}
