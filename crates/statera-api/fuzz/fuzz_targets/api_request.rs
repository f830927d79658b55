//! Whole API requests through the router, in process, over a real store
//! settled by the real controller (`src/fuzzing.rs`): never a 5xx or a
//! panic, every error in the route's shape, and an answered error changes
//! nothing in the store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statera_api::fuzzing::Fuzzer;
use statera_config::{BoxFuture, DataPlane, DataPlaneError, LbConfig, StatusReport};
use statera_controller::Controller;
use statera_store::{Durability, Store};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// A data plane that serves every configuration.
struct AcceptAll;

impl DataPlane for AcceptAll {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(async move { Ok(config.version) })
    }
    fn remove(&self, _lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(async { Ok(()) })
    }
    fn report(&self, _lb_id: Uuid) -> Option<StatusReport> {
        None
    }
}

fn fuzzer() -> Fuzzer {
    // One store per fuzzing process, left in the temporary directory.
    let dir = std::env::temp_dir().join(format!("statera-api-fuzz-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(rt.block_on(Store::open(&dir, Durability::Normal)).expect("store"));
    let mut planes: HashMap<String, Arc<dyn DataPlane>> = HashMap::new();
    planes.insert("native".to_string(), Arc::new(AcceptAll));
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut controller = Controller::new(store.clone(), planes, rx, "fuzz".to_string());
    let settle = Box::new(move |rt: &tokio::runtime::Runtime| rt.block_on(controller.drain_work()));
    Fuzzer::new(rt, store, settle).expect("fixtures")
}

static FUZZER: OnceLock<Fuzzer> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    FUZZER.get_or_init(fuzzer).check_bytes(data);
});
