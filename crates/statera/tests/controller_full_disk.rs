//! The controller when the store refuses its writes (the disk is full):
//! nothing it settles is lost or half-applied, and once space returns it
//! settles the same work and records the same counters.
//!
//! Needs root (the store lives on a small tmpfs): skipped with the reason
//! on a developer's machine, a failure when `CI=true`.

mod support;

use statera_config::{
    BoxFuture, DataPlane, DataPlaneError, LbConfig, ListenerReport, ListenerState, Stats,
    StatusReport,
};
use statera_model::ProvisioningStatus;
use statera_store::{Durability, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::*;
use uuid::Uuid;

/// Serves every configuration at once and reports its listeners open
/// with the counters the test sets.
#[derive(Default)]
struct Counting {
    served: Mutex<HashMap<Uuid, Arc<LbConfig>>>,
    bytes_in: Mutex<u64>,
}

impl DataPlane for Counting {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(async move {
            let v = config.version;
            self.served.lock().unwrap().insert(config.lb_id, config);
            Ok(v)
        })
    }

    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(async move {
            self.served.lock().unwrap().remove(&lb_id);
            Ok(())
        })
    }

    fn report(&self, lb_id: Uuid) -> Option<StatusReport> {
        let cfg = self.served.lock().unwrap().get(&lb_id)?.clone();
        let bytes_in = *self.bytes_in.lock().unwrap();
        Some(StatusReport {
            lb_id,
            version: cfg.version,
            listeners: cfg
                .listeners
                .iter()
                .map(|l| ListenerReport {
                    id: l.id,
                    state: ListenerState::Open,
                    stats: Stats {
                        bytes_in,
                        ..Stats::default()
                    },
                    epoch: 1,
                })
                .collect(),
            pools: vec![],
            unserved: false,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_controller_writes_are_retried_not_lost() {
    let tmpfs = match Tmpfs::mount("4m") {
        Ok(t) => t,
        Err(e) => return skip_or_fail(&e),
    };
    let api = Api::in_dir(&tmpfs.dir, "127.176.0.0/24").await;
    let plane = Arc::new(Counting::default());
    let mut controller = api.controller(HashMap::from([(
        "native".to_string(),
        plane.clone() as Arc<dyn DataPlane>,
    )]));
    let (lb, _) = api.lb(&mut controller, "native").await;
    let first = api.listener(&mut controller, lb, 18101).await;

    // A change is acknowledged, then the disk fills before the controller
    // settles it.
    let (status, body) = api
        .call(
            "POST",
            "/v2/lbaas/listeners",
            Some(serde_json::json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 18102}})),
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{body}");
    let second: Uuid = body["listener"]["id"].as_str().unwrap().parse().unwrap();
    let filler = tmpfs.fill();

    // 1. Settling fails: nothing moves, the work stays.
    controller.drain_work().await;
    let s = api.store.snapshot();
    assert_eq!(
        s.listeners.get(&second).unwrap().provisioning_status,
        ProvisioningStatus::PendingCreate
    );
    assert_eq!(
        s.loadbalancers.get(&lb).unwrap().provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    assert_eq!(s.pending_work.len(), 1, "the work row stays");

    // 2. Counters read while the store refuses are not counted as recorded.
    *plane.bytes_in.lock().unwrap() = 100;
    controller.collect().await;
    assert!(
        api.store
            .snapshot()
            .listener_stats
            .get(&first)
            .is_none_or(|st| st.bytes_in == 0)
    );

    // Space returns: the same work settles, the counters add up.
    std::fs::remove_file(&filler).unwrap();
    controller.drain_work().await;
    *plane.bytes_in.lock().unwrap() = 150;
    controller.collect().await;
    let s = api.store.snapshot();
    assert_eq!(
        s.listeners.get(&second).unwrap().provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(
        s.loadbalancers.get(&lb).unwrap().provisioning_status,
        ProvisioningStatus::Active
    );
    assert!(s.pending_work.is_empty());
    assert_eq!(
        s.listener_stats.get(&first).unwrap().bytes_in,
        150,
        "no traffic is lost from the counters"
    );

    // And the database holds it.
    api.store.close().await;
    drop(controller);
    let store = Store::open(&tmpfs.dir, Durability::Full).await.unwrap();
    let s = store.snapshot();
    assert_eq!(
        s.listeners.get(&second).unwrap().provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(s.listener_stats.get(&first).unwrap().bytes_in, 150);
    assert!(s.pending_work.is_empty());
    store.close().await;
}
