//! T1: the example policies of `policies/`, as built by `policies/build.sh` (which tests/run.sh
//! runs first) into `target/policies/`, run through the real host. lowest-free-py (Python,
//! componentize-py) must pass exactly the cases the Rust lowest-free passes: the ABI is
//! language-neutral. A policy directory without a case here fails the build.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wasmcni::config::GuestRef;
use wasmcni::guest::{
    self, DelegationRequest, Guests, IpamRequest, Loaded, Origin, Pins, Pod, Refusal,
};
use wasmcni::ipam::{PoolView, Range};
use wasmcni::k8s::IpAllocation;

/// Policies with a test below, by directory name.
const TESTED: &[&str] = &["top-down", "own-namespace-only", "lowest-free-py"];

fn built(name: &str) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/policies"))
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `bash policies/build.sh` (tests/run.sh does)",
        path.display()
    );
    path
}

fn load(g: &Guests, name: &str) -> std::sync::Arc<Loaded> {
    let path = built(name);
    let bytes = std::fs::read(&path).unwrap();
    let r = GuestRef {
        guest: path.display().to_string(),
        sha256: Some(guest::sha256_hex(&bytes)),
    };
    g.load(&r, Origin::Node, &Pins::default()).unwrap()
}

fn guests(dir: &tempfile::TempDir) -> std::sync::Arc<Guests> {
    // CPython takes longer than 50 ms on its first call on a loaded 2-core machine.
    Guests::new(dir.path().join("cache"), Duration::from_secs(5)).unwrap()
}

fn pod(ns: &str, networks: Option<&str>) -> Pod {
    Pod {
        namespace: ns.into(),
        name: "p".into(),
        uid: "u".into(),
        labels: Vec::new(),
        annotations: networks
            .map(|n| vec![("k8s.v1.cni.cncf.io/networks".to_string(), n.to_string())])
            .unwrap_or_default(),
    }
}

fn propose(
    g: &Guests,
    l: &Loaded,
    range: &str,
    taken: impl IntoIterator<Item = u64>,
) -> Result<u64, Refusal> {
    let taken: BTreeMap<u64, IpAllocation> = taken
        .into_iter()
        .map(|o| {
            (
                o,
                IpAllocation {
                    id: format!("c{o}"),
                    podref: format!("ns/p{o}"),
                    ifname: "net1".into(),
                },
            )
        })
        .collect();
    let req = IpamRequest {
        pod: pod("ns", None),
        interface: "net1".into(),
        node: "n1".into(),
        container_id: "c".into(),
    };
    let view = PoolView::new(Range::parse(range, None, None, &[]).unwrap(), taken);
    g.propose(l, &req, view).unwrap().0
}

/// The cases lowest-free must pass, in any language.
fn lowest_free_cases(g: &Guests, l: &Loaded) {
    assert_eq!(propose(g, l, "172.16.1.0/24", []).unwrap(), 1);
    assert_eq!(propose(g, l, "172.16.1.0/24", [1, 2, 4]).unwrap(), 3);
    assert!(matches!(
        propose(g, l, "10.0.0.0/30", [1, 2]),
        Err(Refusal::Exhausted)
    ));
    assert_eq!(propose(g, l, "10.8.0.0/16", 1..=60_000).unwrap(), 60_001);
}

#[test]
fn lowest_free_in_python_passes_the_rust_cases() {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let rust = g
        .load(
            &GuestRef::builtin("lowest-free"),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    lowest_free_cases(&g, &rust);
    let python = load(&g, "lowest-free-py");
    lowest_free_cases(&g, &python);
}

#[test]
fn top_down_hands_out_from_the_top() {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let l = load(&g, "top-down");
    assert_eq!(propose(&g, &l, "172.16.1.0/24", []).unwrap(), 254);
    assert_eq!(propose(&g, &l, "172.16.1.0/24", [254, 253]).unwrap(), 252);
    assert!(matches!(
        propose(&g, &l, "10.0.0.0/30", [1, 2]),
        Err(Refusal::Exhausted)
    ));
}

#[test]
fn own_namespace_only_forbids_other_teams_networks() {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let l = load(&g, "own-namespace-only");
    let decide = |networks: &str| {
        let req = DelegationRequest {
            pod: pod("shop", Some(networks)),
            node: "n1".into(),
            default_networks: Vec::new(),
        };
        g.decide(&l, &req)
    };
    assert_eq!(decide("a, shop/b@data0").unwrap().len(), 2);
    match decide("a, bank/vault") {
        Err(guest::Error::Denied { why, .. }) => {
            assert!(why.contains("forbidden") && why.contains("bank"), "{why}")
        }
        other => panic!("{:?}", other.map(|a| a.len())),
    }
}

#[test]
fn every_policy_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().to_string();
            assert!(
                TESTED.contains(&name.as_str()),
                "policies/{name} has no test in host/tests/policies.rs"
            );
            built(&name);
        }
    }
}
