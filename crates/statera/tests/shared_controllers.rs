//! Several controllers on one PostgreSQL store, through the API and the
//! real controller (data planes that record what they are given): each load
//! balancer is placed on one controller, the least loaded, and applied once;
//! a controller that goes silent has its load balancers adopted by the
//! others within the timeout, the amphora API saying where they run now; a
//! controller that comes back under its name serves nothing it lost and
//! takes new load balancers.

mod support;

#[path = "../../statera-store/tests/support/pg.rs"]
mod pg;

use axum::http::StatusCode;
use serde_json::json;
use statera_config::{BoxFuture, DataPlane, DataPlaneError, LbConfig, StatusReport};
use statera_controller::{Controller, Sharing};
use statera_store::{Durability, Location, PgOptions, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use uuid::Uuid;

/// Serves nothing; remembers which load balancers it was given.
#[derive(Default)]
struct Recording {
    served: Mutex<HashMap<Uuid, u64>>,
    applies: Mutex<Vec<Uuid>>,
}

impl Recording {
    fn lbs(&self) -> HashSet<Uuid> {
        self.served.lock().unwrap().keys().copied().collect()
    }
}

impl DataPlane for Recording {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(async move {
            self.served
                .lock()
                .unwrap()
                .insert(config.lb_id, config.version);
            self.applies.lock().unwrap().push(config.lb_id);
            Ok(config.version)
        })
    }
    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(async move {
            self.served.lock().unwrap().remove(&lb_id);
            Ok(())
        })
    }
    fn report(&self, _: Uuid) -> Option<StatusReport> {
        None
    }
}

const TIMEOUT: Duration = Duration::from_secs(2);

async fn node(url: &str) -> Arc<Store> {
    Arc::new(
        Store::open_at(
            &Location::Postgres(url.into()),
            Durability::Full,
            PgOptions::default(),
        )
        .await
        .unwrap(),
    )
}

/// A controller named `name` on its own node of the store, running.
async fn controller(
    url: &str,
    name: &str,
) -> (
    Arc<Recording>,
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<bool>,
) {
    let store = node(url).await;
    let plane = Arc::new(Recording::default());
    let planes = HashMap::from([("native".to_string(), plane.clone() as Arc<dyn DataPlane>)]);
    let (_, rx) = tokio::sync::mpsc::unbounded_channel();
    let c = Controller::new(store, planes, rx, "unused".into()).with_sharing(Sharing {
        node: name.into(),
        timeout: TIMEOUT,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    (plane, tokio::spawn(c.run(stopped)), stop)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn provisioning(api: &Api, lb: Uuid) -> String {
    let (status, body) = api
        .call("GET", &format!("/v2/lbaas/loadbalancers/{lb}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["loadbalancer"]["provisioning_status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_are_spread_and_a_silent_controllers_are_adopted() {
    let Some(url) = pg::fresh_database("shared").await else {
        return;
    };
    statera_store::db_upgrade(&Location::Postgres(url.clone()))
        .await
        .unwrap();
    let api = Api::on_store(node(&url).await, "127.212.0.0/24").await;
    let (a, task_a, stop_a) = controller(&url, "ctl-a").await;
    let (b, task_b, stop_b) = controller(&url, "ctl-b").await;
    // Both heartbeat before anything is placed.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut lbs = Vec::new();
    for i in 0..6 {
        let (status, body) = api
            .call(
                "POST",
                "/v2/lbaas/loadbalancers",
                Some(json!({"loadbalancer": {"name": format!("lb-{i}"), "vip_subnet_id": api.subnet_id}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        lbs.push(
            body["loadbalancer"]["id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        );
    }
    for &lb in &lbs {
        let start = Instant::now();
        while provisioning(&api, lb).await != "ACTIVE" {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{lb} never ACTIVE"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Each load balancer on exactly one controller, applied once, and the
    // two share them (least loaded first: three each).
    let (on_a, on_b) = (a.lbs(), b.lbs());
    assert!(on_a.is_disjoint(&on_b), "{on_a:?} / {on_b:?}");
    assert_eq!(on_a.len() + on_b.len(), lbs.len());
    assert_eq!((on_a.len(), on_b.len()), (3, 3));
    let applies = a.applies.lock().unwrap().len() + b.applies.lock().unwrap().len();
    assert_eq!(applies, lbs.len(), "a configuration applied twice");

    // Controller a dies (no more heartbeats): b serves everything within
    // the timeout and a tick or two.
    task_a.abort();
    let _ = task_a.await;
    let took = wait_for("b adopting a's load balancers", TIMEOUT * 4, || {
        b.lbs().len() == lbs.len()
    })
    .await;
    eprintln!("failover of {} load balancers took {took:?}", on_a.len());
    let (status, body) = api.call("GET", "/v2/octavia/amphorae", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.store.sync().await.unwrap();
    for amphora in body["amphorae"].as_array().unwrap() {
        assert_eq!(amphora["compute_id"], "ctl-b", "{amphora}");
    }
    // A change to an adopted load balancer is b's work now.
    let moved = *on_a.iter().next().unwrap();
    let (status, body) = api
        .call(
            "PUT",
            &format!("/v2/lbaas/loadbalancers/{moved}"),
            Some(json!({"loadbalancer": {"description": "after failover"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let start = Instant::now();
    while provisioning(&api, moved).await != "ACTIVE" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never ACTIVE after failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.served.lock().unwrap()[&moved] >= 2);

    // a comes back under its name: it serves nothing it lost.
    drop(stop_a);
    let (a2, task_a2, stop_a2) = controller(&url, "ctl-a").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a2.lbs().is_empty(), "{:?}", a2.lbs());
    // New load balancers go to it now (it has the fewest).
    let (status, body) = api
        .call(
            "POST",
            "/v2/lbaas/loadbalancers",
            Some(json!({"loadbalancer": {"name": "after", "vip_subnet_id": api.subnet_id}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let after: Uuid = body["loadbalancer"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    wait_for(
        "the new load balancer on the returned controller",
        Duration::from_secs(10),
        || a2.lbs().contains(&after),
    )
    .await;
    for (stop, task) in [(stop_b, task_b), (stop_a2, task_a2)] {
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }
}
