//! Per-call cost of a policy guest against a native Rust implementation of the same policy, in
//! one run: warm (component loaded and its imports resolved in this process; each call gets a
//! fresh store and instance, as a CNI call does), cold from the compile cache (a new `wasmcni` process that
//! loads the cached artifact, instantiates and calls), and on a compile miss.
//!
//! `cargo bench --bench guests` (or `bash tests/bench/guests.sh`); prints a Markdown table.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use wasmcni::config::GuestRef;
use wasmcni::guest::{self, Guests, IpamRequest, Origin, Pins, Pod};
use wasmcni::ipam::{PoolView, Range};
use wasmcni::k8s::IpAllocation;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_micros(10) {
        format!("{:.2} µs", d.as_nanos() as f64 / 1000.0)
    } else if d < Duration::from_millis(10) {
        format!("{:.1} µs", d.as_nanos() as f64 / 1000.0)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn view(taken: u64, range: &str) -> PoolView {
    let t: BTreeMap<u64, IpAllocation> = (1..=taken)
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
    PoolView::new(Range::parse(range, None, None, &[]).unwrap(), t)
}

fn main() {
    let req = IpamRequest {
        pod: Pod {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            labels: Vec::new(),
            annotations: Vec::new(),
        },
        interface: "net1".into(),
        node: "n1".into(),
        container_id: "c".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let lowest = GuestRef::builtin("lowest-free");
    let bytes = guest::builtin("lowest-free").unwrap();
    println!(
        "| step (lowest-free, {} KB guest) | pool | median |",
        bytes.len() / 1024
    );
    println!("|---|---|---|");

    for (label, taken, range) in [
        ("100 taken of a /24", 100, "10.0.0.0/24"),
        ("60k taken of a /16", 60_000, "10.8.0.0/16"),
    ] {
        let v = view(taken, range);
        let native: Vec<Duration> = (0..2000)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(v.next_free_from(0));
                t.elapsed()
            })
            .collect();
        println!(
            "| native Rust (the host's own `next_free_from`), the same view each time | {label} | {} |",
            fmt(median(native))
        );
        // The guest is handed a fresh copy of the view on every call (as each ADD builds its
        // own from the IPPool): the same walk over memory just written, for a fair comparison.
        let native_fresh: Vec<Duration> = (0..300)
            .map(|_| {
                let v = v.clone();
                let t = Instant::now();
                std::hint::black_box(v.next_free_from(0));
                let d = t.elapsed();
                drop(v);
                d
            })
            .collect();
        println!(
            "| native Rust, a fresh copy of the view each time (what the guest row gets) | {label} | {} |",
            fmt(median(native_fresh))
        );

        let g = Guests::new(dir.path().join("warm"), Duration::from_millis(1000)).unwrap();
        let loaded = g.load(&lowest, Origin::Node, &Pins::default()).unwrap();
        let warm: Vec<Duration> = (0..300)
            .map(|_| {
                let v = v.clone();
                let t = Instant::now();
                let (answer, v) = g.propose(&loaded, &req, v).unwrap();
                let d = t.elapsed();
                drop(v); // the pool's own drop is not the guest's cost
                assert_eq!(answer.unwrap(), taken + 1);
                d
            })
            .collect();
        println!(
            "| Wasm warm: new store + instantiate + call, in-process | {label} | {} |",
            fmt(median(warm))
        );
    }

    let miss: Vec<Duration> = (0..5)
        .map(|i| {
            let g = Guests::new(
                dir.path().join(format!("miss{i}")),
                Duration::from_millis(1000),
            )
            .unwrap();
            let t = Instant::now();
            g.load(&lowest, Origin::Node, &Pins::default()).unwrap();
            t.elapsed()
        })
        .collect();
    println!(
        "| compile miss: Cranelift compile + seal + write the cache | — | {} |",
        fmt(median(miss))
    );

    // A new process per call, as the kubelet's runtime execs the plugin.
    let exe = env!("CARGO_BIN_EXE_wasmcni");
    let cache = dir.path().join("cold");
    let run = |args: &[&str]| {
        let t = Instant::now();
        let out = Command::new(exe).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    // By name: the built-in's sha256 was computed at build time, as on the CNI path.
    let w = "lowest-free".to_string();
    let c = cache.display().to_string();
    let test_args = ["guest", "test", &w, "--taken", "1-100", "--cache", &c];
    run(&test_args); // fill the cache
    let baseline: Vec<Duration> = (0..30).map(|_| run(&["guest", "list"])).collect();
    let cold: Vec<Duration> = (0..30).map(|_| run(&test_args)).collect();
    println!(
        "| new process: start + exit only (`wasmcni guest list`) | — | {} |",
        fmt(median(baseline.clone()))
    );
    println!(
        "| new process: load cached artifact + instantiate + call (`guest test --cache`) | 100 taken of a /24 | {} |",
        fmt(median(cold.clone()))
    );
    println!(
        "| … of which the guest (process start subtracted) | 100 taken of a /24 | {} |",
        fmt(median(cold).saturating_sub(median(baseline)))
    );
}
