//! T1: hostile guests (tests/guests/) against the real sandbox. Each misbehaviour must end in a
//! clean, typed error or an empty answer — and the host must stay usable afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wasmcni::config::GuestRef;
use wasmcni::guest::{
    self, DelegationRequest, Guests, IpamRequest, Loaded, Origin, Pins, Pod, Refusal,
};
use wasmcni::ipam::{PoolView, Range};
use wasmcni::k8s::IpAllocation;

use wasmcni_test_guests::{HOSTILE_DELEGATION, HOSTILE_IPAM};

struct Fixture {
    _dir: tempfile::TempDir,
    guests: std::sync::Arc<Guests>,
    ipam: std::sync::Arc<Loaded>,
    delegation: std::sync::Arc<Loaded>,
}

/// The hostile guests loaded the way a node-path guest is: written to disk, pinned by sha256.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let guests = Guests::new(dir.path().join("cache"), Duration::from_millis(200)).unwrap();
    let pin = |name: &str, bytes: &[u8]| {
        let path: PathBuf = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let r = GuestRef {
            guest: path.display().to_string(),
            sha256: Some(guest::sha256_hex(bytes)),
        };
        guests.load(&r, Origin::Node, &Pins::default()).unwrap()
    };
    let ipam = pin("hostile-ipam.wasm", HOSTILE_IPAM);
    let delegation = pin("hostile-delegation.wasm", HOSTILE_DELEGATION);
    Fixture {
        _dir: dir,
        guests,
        ipam,
        delegation,
    }
}

fn pod(name: &str) -> Pod {
    Pod {
        namespace: "team-a".into(),
        name: name.into(),
        uid: String::new(),
        labels: Vec::new(),
        annotations: Vec::new(),
    }
}

fn view() -> PoolView {
    let taken = BTreeMap::from([(
        1,
        IpAllocation {
            id: "c1".into(),
            podref: "team-a/holder".into(),
            ifname: "net1".into(),
        },
    )]);
    PoolView::new(Range::parse("10.0.0.0/24", None, None, &[]).unwrap(), taken)
}

fn propose(f: &Fixture, behaviour: &str) -> Result<Result<u64, Refusal>, guest::Error> {
    let req = IpamRequest {
        pod: pod(behaviour),
        interface: "net1".into(),
        node: "n1".into(),
        container_id: "c".into(),
    };
    f.guests
        .propose(&f.ipam, &req, view())
        .map(|(answer, _)| answer)
}

fn trap_text(r: Result<Result<u64, Refusal>, guest::Error>) -> String {
    match r {
        Err(e @ guest::Error::Trapped { .. }) => e.to_string(),
        other => panic!("expected a trap, got {other:?}"),
    }
}

fn refusal_text(r: Result<Result<u64, Refusal>, guest::Error>) -> String {
    match r {
        Ok(Err(Refusal::Other(text))) => text,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_infinite_loop_is_interrupted_by_the_deadline() {
    let f = fixture();
    let text = trap_text(propose(&f, "loop"));
    assert!(
        text.contains("hostile-ipam.wasm") && text.contains("ran past its deadline of"),
        "{text}"
    );
    // The host is intact: the same guest answers the next call.
    assert_eq!(propose(&f, "well-behaved").unwrap().unwrap(), 2);
}

#[test]
fn a_memory_bomb_stops_at_the_cap() {
    let f = fixture();
    let text = trap_text(propose(&f, "bomb"));
    assert!(text.contains("memory"), "{text}");
    assert_eq!(propose(&f, "well-behaved").unwrap().unwrap(), 2);
}

#[test]
fn a_trap_is_a_typed_error_naming_the_guest() {
    let f = fixture();
    let text = trap_text(propose(&f, "trap"));
    assert!(text.contains(f.ipam.digest()), "{text}");
}

#[test]
fn the_guest_sees_no_files_no_environment_and_no_clock() {
    let f = fixture();
    let fs = refusal_text(propose(&f, "fs"));
    assert!(fs.starts_with("no file access"), "{fs}");
    assert_eq!(
        refusal_text(propose(&f, "env")),
        "env vars visible: 0, args: 0"
    );
    assert_eq!(refusal_text(propose(&f, "clock")), "clock: 0");
}

#[test]
fn answers_outside_the_pool_are_not_free() {
    // The host's check (ipam::allocate) rejects any offset the view does not call free; these
    // are the offsets hostile guests try.
    let f = fixture();
    let v = view();
    for (behaviour, offset) in [("outside", 265), ("network-address", 0), ("taken", 1)] {
        let got = propose(&f, behaviour).unwrap().unwrap();
        assert_eq!(got, offset, "{behaviour}");
        assert!(
            !v.is_free(got),
            "{behaviour}: offset {got} must not be free"
        );
    }
}

#[test]
fn huge_guest_text_is_clamped() {
    let f = fixture();
    let text = refusal_text(propose(&f, "huge"));
    assert_eq!(text.len(), 4 << 20, "the guest did send 4 MiB");
    let shown = f.ipam.denied(&text).to_string();
    assert!(
        shown.len() < 700 && shown.contains("bytes cut"),
        "{}",
        shown.len()
    );
}

fn decide(f: &Fixture, behaviour: &str) -> Result<usize, guest::Error> {
    let req = DelegationRequest {
        pod: pod(behaviour),
        node: "n1".into(),
        default_networks: Vec::new(),
    };
    f.guests.decide(&f.delegation, &req).map(|a| a.len())
}

#[test]
fn hostile_delegation_guests_fail_cleanly() {
    let f = fixture();
    assert!(matches!(
        decide(&f, "loop"),
        Err(guest::Error::Trapped { .. })
    ));
    assert!(matches!(
        decide(&f, "trap"),
        Err(guest::Error::Trapped { .. })
    ));
    // A runaway answer is lifted (it fits the memory cap) and then refused by the planner,
    // which accepts at most MAX_ATTACHMENTS (tests/e2e/005-hostile-guests.sh).
    assert_eq!(decide(&f, "huge").unwrap(), 1_000);
    const { assert!(1_000 > wasmcni::delegate::MAX_ATTACHMENTS) };
    assert_eq!(decide(&f, "well-behaved").unwrap(), 0);
}
