//! Admin pins: the guests a network config may name, from the ConfigMap
//! `kube-system/wasmcni-guests` (name → sha256, with the module in `binaryData` or on the node).
//!
//! ```yaml
//! data:
//!   sticky.sha256: "9f2c…"                          # required: what the module must hash to
//!   node-block.sha256: "41aa…"
//!   node-block.path: /var/lib/wasmcni/node-block.wasm  # the module on every node …
//! binaryData:
//!   sticky.wasm: AGFzbQ…                            # … or in the ConfigMap itself
//! ```
//!
//! Read on every CNI call that names a non-built-in guest, so an updated pin is used by the next
//! call without restarting anything.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a pinned module's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Module {
    /// In the ConfigMap's binaryData.
    Inline(Vec<u8>),
    /// A file on the node.
    Path(PathBuf),
}

/// One pinned guest, or why its entry is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Usable: the module must hash to `sha256`.
    Pinned {
        /// Lower-case hex sha256.
        sha256: String,
        /// The module.
        module: Module,
    },
    /// An entry an admin got wrong; naming it fails with this reason.
    Broken(String),
}

/// The admin's pins, by guest name, and the networks allowed to fail open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    entries: BTreeMap<String, Pin>,
    fail_open: Vec<String>,
}

impl Pins {
    /// Parse a ConfigMap's `data` and `binaryData`.
    pub fn parse(data: &BTreeMap<String, String>, binary: &BTreeMap<String, Vec<u8>>) -> Self {
        let mut entries = BTreeMap::new();
        let names = data
            .keys()
            .filter_map(|k| {
                k.strip_suffix(".sha256")
                    .or_else(|| k.strip_suffix(".path"))
            })
            .chain(binary.keys().filter_map(|k| k.strip_suffix(".wasm")));
        for name in names {
            let sha = data
                .get(&format!("{name}.sha256"))
                .map(|s| s.trim().to_ascii_lowercase());
            let inline = binary.get(&format!("{name}.wasm"));
            let path = data
                .get(&format!("{name}.path"))
                .map(|p| PathBuf::from(p.trim()));
            let pin = match (sha, inline, path) {
                (None, _, _) => Pin::Broken(format!("{name}.sha256 is missing")),
                (Some(s), _, _) if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Pin::Broken(format!("{name}.sha256 is not a sha256 ({s:?})"))
                }
                (Some(_), Some(_), Some(_)) => {
                    Pin::Broken(format!("both {name}.wasm and {name}.path are set"))
                }
                (Some(_), None, None) => {
                    Pin::Broken(format!("neither {name}.wasm nor {name}.path is set"))
                }
                (Some(_), None, Some(p)) if !p.is_absolute() => {
                    Pin::Broken(format!("{name}.path must be absolute, not {}", p.display()))
                }
                (Some(sha256), Some(b), None) => Pin::Pinned {
                    sha256,
                    module: Module::Inline(b.clone()),
                },
                (Some(sha256), None, Some(p)) => Pin::Pinned {
                    sha256,
                    module: Module::Path(p),
                },
            };
            entries.insert(name.to_string(), pin);
        }
        // `fail-open`: networks (`namespace/name`, comma or space separated) whose failing IPAM
        // policy gives way to the built-in lowest-free. Admin-only: it lives in this ConfigMap.
        let fail_open = data
            .get("fail-open")
            .map(|v| {
                v.split([',', ' ', '\n'])
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Pins { entries, fail_open }
    }

    /// Whether `network` (`namespace/name`) may fall back to the built-in policy.
    pub fn fails_open(&self, network: &str) -> bool {
        self.fail_open.iter().any(|n| n == network)
    }

    /// The pin of `name`.
    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.entries.get(name)
    }

    /// Pinned names, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_parsed_and_mistakes_named() {
        let sha = "ab".repeat(32);
        let data = BTreeMap::from([
            ("inline.sha256".to_string(), sha.to_uppercase()),
            ("onnode.sha256".to_string(), sha.clone()),
            (
                "onnode.path".to_string(),
                "/var/lib/wasmcni/x.wasm".to_string(),
            ),
            ("nosha.path".to_string(), "/x.wasm".to_string()),
            ("badsha.sha256".to_string(), "123".to_string()),
            ("relative.sha256".to_string(), sha.clone()),
            ("relative.path".to_string(), "x.wasm".to_string()),
        ]);
        let binary = BTreeMap::from([("inline.wasm".to_string(), b"\0asm".to_vec())]);
        let pins = Pins::parse(&data, &binary);
        assert_eq!(
            pins.get("inline"),
            Some(&Pin::Pinned {
                sha256: sha.clone(),
                module: Module::Inline(b"\0asm".to_vec())
            })
        );
        assert_eq!(
            pins.get("onnode"),
            Some(&Pin::Pinned {
                sha256: sha.clone(),
                module: Module::Path("/var/lib/wasmcni/x.wasm".into())
            })
        );
        for (name, why) in [
            ("nosha", "sha256 is missing"),
            ("badsha", "is not a sha256"),
            ("relative", "must be absolute"),
        ] {
            match pins.get(name) {
                Some(Pin::Broken(w)) => assert!(w.contains(why), "{name}: {w}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(pins.get("absent"), None);
    }
}
