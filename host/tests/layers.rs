//! The host's layers import downward only: protocol ← (netns, k8s, config) ← (netlink, ipam) ←
//! (guest, reconcile) ← node ← delegate ← verbs ← daemon ← CLI. Read from the source, so a new upward import (or a
//! circle) fails here, naming the file and the import.

use std::collections::BTreeMap;
use std::path::Path;

/// Each module of `host/src` and the layer it sits in (lower imports nothing higher).
const LAYERS: &[(&str, u32)] = &[
    ("cni", 0),
    ("logging", 0),
    ("files", 0),
    ("netns", 1),
    ("k8s", 1),
    ("config", 1),
    ("netlink", 2),
    ("ipam", 2),
    ("install", 2),
    ("guest", 3),
    ("reconcile", 3),
    ("node", 4),
    ("delegate", 5),
    ("cmd", 6),
    ("daemon", 7),
    ("cli", 8),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The modules `text` names as `crate::m` or `crate::{a, b::c}`.
fn imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let m: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push(m);
            }
        } else {
            out.push(
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_imports_only_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for path in &all {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for dep in imports(&text) {
            if dep != module && !dep.is_empty() {
                edges
                    .entry((module.clone(), dep))
                    .or_insert_with(|| rel.display().to_string());
            }
        }
    }
    assert!(edges.len() > 20, "the scan found the imports: {edges:?}");
    let mut wrong = Vec::new();
    for ((from, to), file) in &edges {
        let (Some(a), Some(b)) = (layer(from), layer(to)) else {
            wrong.push(format!(
                "{file}: {from} → {to}: a module missing from LAYERS"
            ));
            continue;
        };
        if b >= a {
            wrong.push(format!(
                "{file}: {from} (layer {a}) imports {to} (layer {b})"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways imports:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_both_import_forms() {
    assert_eq!(
        imports("use crate::{config, delegate::Call};\nlet x = crate::ipam::Range;"),
        ["config", "delegate", "ipam"]
    );
}
