//! The fuzz target's checks (`fuzz/`, `src/fuzzing.rs`) run for a bounded
//! time on stable: mutated requests from a fixed seed through the router,
//! over a real store, settled by the real controller against the fake data
//! plane. Every answer: no 5xx, no panic, errors in the route's shape, an
//! error changes nothing.

use crate::support::FakePlane;
use statera_api::fuzzing::Fuzzer;
use statera_config::DataPlane;
use statera_controller::Controller;
use statera_store::{Durability, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fuzzer over a store in `dir`.
fn fuzzer(dir: &std::path::Path) -> Fuzzer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(
        rt.block_on(Store::open(dir, Durability::Normal))
            .expect("store"),
    );
    let mut planes: HashMap<String, Arc<dyn DataPlane>> = HashMap::new();
    planes.insert("native".to_string(), Arc::new(FakePlane::default()));
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut controller = Controller::new(store.clone(), planes, rx, "fuzz".to_string());
    let settle = Box::new(move |rt: &tokio::runtime::Runtime| {
        rt.block_on(controller.drain_work());
    });
    Fuzzer::new(rt, store, settle).expect("fixtures")
}

#[test]
fn fuzzed_requests_keep_the_invariants() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fuzzer = fuzzer(dir.path());
    assert!(fuzzer.seeds().len() > 40);
    let seed = env_or("STATERA_FUZZ_SEED", 12u64);
    let iterations = env_or("STATERA_FUZZ_ITERATIONS", 4000usize);
    let budget = Duration::from_secs(env_or("STATERA_FUZZ_SECONDS", 6u64));
    let start = Instant::now();
    let stats = fuzzer
        .run(seed, iterations, budget)
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    eprintln!(
        "fuzz: seed {seed}: {} requests in {:?} ({} 2xx, {} 4xx)",
        stats.requests,
        start.elapsed(),
        stats.ok,
        stats.refused
    );
    // Bounded in count and time, and still enough to mean something.
    assert!(stats.requests >= 300, "{stats:?}");
    assert!(stats.ok > 0 && stats.refused > 0, "{stats:?}");
}

#[test]
fn fuzz_target_entry_takes_any_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fuzzer = fuzzer(dir.path());
    for data in [
        &b""[..],
        b"\x00",
        b"12345678",
        b"12345678\x05{\"loadbalancer\": {\"vip_subnet_id\": 5}}",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\x00",
        b"abcdefgh\x10[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ] {
        fuzzer.check_bytes(data);
    }
}
