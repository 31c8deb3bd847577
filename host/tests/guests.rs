//! T1: every built-in guest, run through the real wasmtime host exactly as a CNI call runs it.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmcni::config::GuestRef;
use wasmcni::guest::{
    self, DelegationRequest, Guests, IpamRequest, NetworkRef, Origin, Pins, Pod, Refusal,
};
use wasmcni::ipam::{PoolView, Range};
use wasmcni::k8s::IpAllocation;

fn guests(dir: &tempfile::TempDir) -> std::sync::Arc<Guests> {
    Guests::new(dir.path().join("cache"), Duration::from_millis(1000)).unwrap()
}

fn pod(annotation: Option<&str>) -> Pod {
    Pod {
        namespace: "team-a".into(),
        name: "web-0".into(),
        uid: "u1".into(),
        labels: vec![("app".into(), "web".into())],
        annotations: annotation
            .map(|a| vec![("k8s.v1.cni.cncf.io/networks".into(), a.to_string())])
            .unwrap_or_default(),
    }
}

type Decided = Vec<(String, Option<String>)>;

fn decide(annotation: Option<&str>, defaults: Vec<NetworkRef>) -> Result<Decided, guest::Error> {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let loaded = g
        .load(
            &GuestRef::builtin("multus-default"),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    let req = DelegationRequest {
        pod: pod(annotation),
        node: "n1".into(),
        default_networks: defaults,
    };
    g.decide(&loaded, &req).map(|atts| {
        atts.into_iter()
            .map(|a| {
                (
                    format!("{}/{}", a.network.namespace, a.network.name),
                    a.interface,
                )
            })
            .collect()
    })
}

#[test]
fn multus_default_comma_form() {
    let got = decide(Some("net-a, other/net-b@eth9 ,net-c"), vec![]).unwrap();
    assert_eq!(
        got,
        vec![
            ("team-a/net-a".into(), None),
            ("other/net-b".into(), Some("eth9".into())),
            ("team-a/net-c".into(), None)
        ]
    );
}

#[test]
fn multus_default_json_form_and_defaults_first() {
    let defaults = vec![NetworkRef {
        namespace: "kube-system".into(),
        name: "mgmt".into(),
    }];
    let got = decide(
        Some(r#"[{"name":"net-a","interface":"data0","ips":["10.1.1.5/24"]},{"name":"net-b","namespace":"other"}]"#),
        defaults,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            ("kube-system/mgmt".into(), None),
            ("team-a/net-a".into(), Some("data0".into())),
            ("other/net-b".into(), None)
        ]
    );
}

#[test]
fn multus_default_no_annotation_means_cluster_network_only() {
    assert!(decide(None, vec![]).unwrap().is_empty());
    assert!(decide(Some(""), vec![]).unwrap().is_empty());
}

#[test]
fn multus_default_refuses_bad_annotations() {
    for bad in [
        "a/b/c",
        "net@a@b",
        "net-a,,net-b",
        "ns/",
        "Net-A",
        "net-a@sixteen-chars-xx",
        // Multus: blanks name an empty network (refused at its NAD lookup).
        "  ",
        "[{\"namespace\":\"x\"}]",
        "[{\"name\":1}]",
        "[nope",
    ] {
        match decide(Some(bad), vec![]) {
            Err(guest::Error::Denied { name, why }) => {
                assert_eq!(name, "multus-default");
                assert!(why.contains("bad network annotation"), "{bad}: {why}");
            }
            other => panic!("{bad}: expected a denial, got {other:?}"),
        }
    }
}

fn alloc(n: u64) -> IpAllocation {
    IpAllocation {
        id: format!("c{n}"),
        podref: format!("team-a/p{n}"),
        ifname: "net1".into(),
    }
}

fn propose(range: &str, taken: &[u64]) -> Result<u64, Refusal> {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let loaded = g
        .load(
            &GuestRef::builtin("lowest-free"),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    let range = Range::parse(range, None, None, &[]).unwrap();
    let taken_map: BTreeMap<u64, IpAllocation> = taken.iter().map(|o| (*o, alloc(*o))).collect();
    let req = IpamRequest {
        pod: pod(None),
        interface: "net1".into(),
        node: "n1".into(),
        container_id: "c".into(),
    };
    let (answer, view) = g
        .propose(&loaded, &req, PoolView::new(range, taken_map))
        .unwrap();
    assert_eq!(
        view.allocated_count(),
        taken.len() as u64,
        "the view comes back untouched"
    );
    answer
}

#[test]
fn lowest_free_picks_the_first_gap() {
    assert_eq!(propose("172.16.1.0/24", &[]).unwrap(), 1);
    assert_eq!(propose("172.16.1.0/24", &[1, 2, 4]).unwrap(), 3);
}

#[test]
fn lowest_free_reports_exhaustion() {
    assert!(matches!(
        propose("10.0.0.0/30", &[1, 2]),
        Err(Refusal::Exhausted)
    ));
}

#[test]
fn lowest_free_finds_the_gap_after_60k_taken_addresses() {
    // The guest asks the pool one question (next-free-from); the cost side is in the benchmark.
    let taken: Vec<u64> = (1..=60_000).collect();
    assert_eq!(propose("10.8.0.0/16", &taken).unwrap(), 60_001);
}

#[test]
fn compiled_guests_are_cached_and_a_corrupt_artifact_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let first = g
        .load(
            &GuestRef::builtin("lowest-free"),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(
        cached[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(first.digest())
    );
    // The same engine keeps what it loaded: no second read of the cache.
    let memo = g
        .load(
            &GuestRef::builtin("lowest-free"),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &memo));
    // A new process (a new engine) reads the cache, finds it damaged and rebuilds it.
    std::fs::write(&cached[0], b"not a compiled module").unwrap();
    let again = guests(&dir)
        .load(
            &GuestRef::builtin("lowest-free"),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    assert_eq!(again.digest(), first.digest());
    assert!(
        std::fs::metadata(&cached[0]).unwrap().len() > 1000,
        "rebuilt in place"
    );
}

#[test]
fn unknown_unpinned_and_mismatched_guests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let refused = |r: GuestRef| match g.load(&r, Origin::Node, &Pins::default()) {
        Err(guest::Error::NotFound { why, .. }) => why,
        Err(other) => panic!("{r:?}: {other}"),
        Ok(_) => panic!("{r:?}: loaded"),
    };
    assert!(
        refused(GuestRef::builtin("no-such-policy"))
            .contains("built in: multus-default, label-networks, lowest-free")
    );
    let path = dir.path().join("g.wasm");
    std::fs::write(&path, guest::builtin("lowest-free").unwrap()).unwrap();
    let p = path.display().to_string();
    assert!(
        refused(GuestRef {
            guest: p.clone(),
            sha256: None
        })
        .contains("must be pinned")
    );
    let wrong = GuestRef {
        guest: p.clone(),
        sha256: Some("00".repeat(32)),
    };
    assert!(refused(wrong).contains("sha256 mismatch"));
    let pinned = GuestRef {
        guest: p,
        sha256: Some(guest::sha256_hex(guest::builtin("lowest-free").unwrap())),
    };
    assert!(g.load(&pinned, Origin::Node, &Pins::default()).is_ok());
}

#[test]
fn network_configs_may_name_only_builtin_or_admin_pinned_guests() {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let bytes = guest::builtin("lowest-free").unwrap();
    let sha = guest::sha256_hex(bytes);
    let path = dir.path().join("p.wasm");
    std::fs::write(&path, bytes).unwrap();
    let by_path = GuestRef {
        guest: path.display().to_string(),
        sha256: Some(sha.clone()),
    };
    match g.load(&by_path, Origin::Network, &Pins::default()) {
        Err(guest::Error::NotFound { why, .. }) => assert!(
            why.contains("only name built-in guests or guests an admin pinned"),
            "{why}"
        ),
        other => panic!(
            "a NAD named a node path: {:?}",
            other.map(|l| l.digest().to_string())
        ),
    }
    let data = std::collections::BTreeMap::from([("team-policy.sha256".to_string(), sha.clone())]);
    let binary =
        std::collections::BTreeMap::from([("team-policy.wasm".to_string(), bytes.to_vec())]);
    let pins = Pins::parse(&data, &binary);
    let loaded = g
        .load(&GuestRef::builtin("team-policy"), Origin::Network, &pins)
        .unwrap();
    assert_eq!(loaded.digest(), sha);
    // A tampered module (the pin no longer matches) is refused before it is compiled.
    let tampered = Pins::parse(
        &data,
        &std::collections::BTreeMap::from([(
            "team-policy.wasm".to_string(),
            guest::builtin("multus-default").unwrap().to_vec(),
        )]),
    );
    match g.load(
        &GuestRef::builtin("team-policy"),
        Origin::Network,
        &tampered,
    ) {
        Err(guest::Error::NotFound { why, .. }) => {
            assert!(why.contains("sha256 mismatch"), "{why}")
        }
        other => panic!(
            "tampered module loaded: {:?}",
            other.map(|l| l.digest().to_string())
        ),
    }
}

fn propose_with(guest_name: &str, req: IpamRequest, taken: &[u64]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let loaded = g
        .load(
            &GuestRef::builtin(guest_name),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    let range = Range::parse("10.9.0.0/24", None, None, &[]).unwrap();
    let taken: BTreeMap<u64, IpAllocation> = taken.iter().map(|o| (*o, alloc(*o))).collect();
    let (answer, view) = g
        .propose(&loaded, &req, PoolView::new(range, taken))
        .unwrap();
    let o = answer.unwrap();
    assert!(
        view.is_free(o),
        "{guest_name} proposed {o}, which is not free"
    );
    o
}

fn ipam_request(ns: &str, name: &str, node: &str, uid: &str) -> IpamRequest {
    IpamRequest {
        pod: Pod {
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
            labels: Vec::new(),
            annotations: Vec::new(),
        },
        interface: "net1".into(),
        node: node.into(),
        container_id: format!("ctr-{uid}"),
    }
}

#[test]
fn random_spreads_pods_over_the_range() {
    let a = propose_with("random", ipam_request("ns", "a", "n1", "u1"), &[]);
    let b = propose_with("random", ipam_request("ns", "b", "n1", "u2"), &[]);
    assert_ne!(a, b);
    assert_ne!((a, b), (1, 2), "not lowest-free");
}

#[test]
fn sticky_gives_a_recreated_pod_its_address_back() {
    let first = propose_with("sticky", ipam_request("db", "web-0", "n1", "uid-1"), &[]);
    let again = propose_with("sticky", ipam_request("db", "web-0", "n2", "uid-2"), &[]);
    assert_eq!(first, again);
    let other = propose_with("sticky", ipam_request("db", "web-1", "n1", "uid-3"), &[]);
    assert_ne!(first, other);
}

#[test]
fn node_block_keeps_nodes_apart() {
    let a = propose_with("node-block", ipam_request("ns", "p", "node-a", "u1"), &[]);
    let b = propose_with("node-block", ipam_request("ns", "p", "node-b", "u2"), &[]);
    assert_ne!(a / 16, b / 16);
}

#[test]
fn label_networks_attaches_labelled_networks() {
    let dir = tempfile::tempdir().unwrap();
    let g = guests(&dir);
    let loaded = g
        .load(
            &GuestRef::builtin("label-networks"),
            Origin::Node,
            &Pins::default(),
        )
        .unwrap();
    let mut p = pod(None);
    p.labels
        .push(("networks.wasmcni.io/storage".into(), "true".into()));
    let req = DelegationRequest {
        pod: p,
        node: "n1".into(),
        default_networks: vec![],
    };
    let got = g.decide(&loaded, &req).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].network.name, "storage");
    assert_eq!(got[0].network.namespace, "team-a");
}

/// An untested guest fails the build: every crate in guests/ (but the SDK) is built in, and
/// every built-in guest is exercised by a test in this file.
#[test]
fn every_guest_is_built_in_and_tested() {
    let this_file = include_str!("guests.rs");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests");
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if !entry.path().join("Cargo.toml").exists() || name == "sdk" {
            continue;
        }
        assert!(
            guest::builtin(&name).is_some(),
            "guests/{name} is not built in (host/build.rs)"
        );
    }
    for b in guest::BUILTIN {
        assert_eq!(
            guest::sha256_hex(b.bytes),
            b.sha256,
            "{}: the build-time sha256 is the module's",
            b.name
        );
    }
    for guest::Builtin { name, .. } in guest::BUILTIN {
        assert!(
            this_file.contains(&format!("GuestRef::builtin(\"{name}\")"))
                || this_file.contains(&format!("propose_with(\"{name}\"")),
            "built-in guest {name} has no test here"
        );
    }
}
