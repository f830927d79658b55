//! Restoring after a restart, through the API, the real controller and the
//! data planes: a listener that cannot bind is left out and shows
//! operating_status ERROR while its siblings serve (both providers), and
//! each provider's load balancers are restored independently and several at
//! a time.

mod support;

use axum::http::StatusCode;
use statera_config::{BoxFuture, DataPlane, DataPlaneError, LbConfig, StatusReport};
use statera_model::{OperatingStatus, ProvisioningStatus};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use uuid::Uuid;

fn planes(name: &str, plane: Arc<dyn DataPlane>) -> HashMap<String, Arc<dyn DataPlane>> {
    HashMap::from([(name.to_string(), plane)])
}

/// Binds `addr` plainly (no SO_REUSEPORT), waiting up to 10 s for whoever
/// had it to let go.
fn squat(addr: SocketAddr) -> TcpListener {
    let start = Instant::now();
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if start.elapsed() > Duration::from_secs(10) => {
                panic!("cannot take {addr}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn connects(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// A data plane of the provider under test, and how to stop it as a
/// restart would (leaving no process behind).
struct Provider {
    plane: Arc<dyn DataPlane>,
    haproxy: Option<statera_haproxy::HaproxyProvider>,
}

impl Provider {
    fn new(name: &'static str, dir: &std::path::Path) -> Option<Provider> {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        if name == "native" {
            let engine = statera_dataplane::Engine::new(tx);
            return Some(Provider {
                plane: Arc::new(engine),
                haproxy: None,
            });
        }
        let binary = statera_haproxy::find_haproxy()?;
        let mut options = statera_haproxy::HaproxyOptions::new(dir);
        options.binary = binary;
        options.poll_interval = Duration::from_millis(200);
        options.stop_timeout = Duration::from_secs(2);
        let provider = statera_haproxy::HaproxyProvider::new(options, tx);
        Some(Provider {
            plane: Arc::new(provider.clone()),
            haproxy: Some(provider),
        })
    }

    async fn stop(self) {
        if let Some(h) = &self.haproxy {
            h.shutdown().await;
        }
    }
}

async fn a_listener_that_cannot_bind_at_restore_is_error_and_its_sibling_serves(
    name: &'static str,
    cidr: &str,
) {
    let api = Api::new(cidr).await;
    // Short: HAProxy's socket paths must fit in 107 bytes.
    let haproxy_dir = std::path::PathBuf::from(format!(
        "/tmp/strs-{}",
        &Uuid::new_v4().simple().to_string()[..12]
    ));
    let Some(first) = Provider::new(name, &haproxy_dir) else {
        return skip_or_fail("haproxy is not installed");
    };
    let mut controller = api.controller(planes(name, first.plane.clone()));
    let (lb, vip) = api.lb(&mut controller, name).await;
    let (port_ok, port_taken) = (18091, 18092);
    let ok = api.listener(&mut controller, lb, port_ok).await;
    let taken = api.listener(&mut controller, lb, port_taken).await;
    assert!(connects(SocketAddr::new(vip, port_taken)));

    // A restart during which another program takes the second port.
    drop(controller);
    first.stop().await;
    let squatter = squat(SocketAddr::new(vip, port_taken));
    let second = Provider::new(name, &haproxy_dir).unwrap();
    let mut controller = api.controller(planes(name, second.plane.clone()));
    controller.restore().await;
    controller.collect().await;

    let s = api.store.snapshot();
    let status = |id: Uuid| s.listeners.get(&id).unwrap().operating_status;
    assert!(
        connects(SocketAddr::new(vip, port_ok)),
        "the sibling listener serves"
    );
    assert_eq!(status(ok), OperatingStatus::Online);
    assert_eq!(
        status(taken),
        OperatingStatus::Error,
        "the unbound listener reads ERROR"
    );
    let lb_row = s.loadbalancers.get(&lb).unwrap();
    assert_eq!(lb_row.provisioning_status, ProvisioningStatus::Active);
    assert_eq!(
        lb_row.operating_status,
        OperatingStatus::Degraded,
        "the load balancer serves only in part"
    );
    let why = &controller
        .unbound(lb)
        .expect("the listener is recorded unbound")[&taken];
    assert!(
        why.contains("cannot bind") && why.contains(&port_taken.to_string()),
        "{why}"
    );
    let (code, tree) = api
        .call("GET", &format!("/v2/lbaas/loadbalancers/{lb}/status"), None)
        .await;
    assert_eq!(code, StatusCode::OK);
    let listeners = tree["statuses"]["loadbalancer"]["listeners"]
        .as_array()
        .unwrap();
    let shown = listeners
        .iter()
        .find(|l| l["id"] == taken.to_string())
        .unwrap();
    assert_eq!(shown["operating_status"], "ERROR", "{tree}");

    // The port is free again: the next retry serves the listener.
    drop(squatter);
    controller.retry_unbound().await;
    controller.collect().await;
    let s = api.store.snapshot();
    assert!(connects(SocketAddr::new(vip, port_taken)));
    assert_eq!(
        s.listeners.get(&taken).unwrap().operating_status,
        OperatingStatus::Online
    );
    assert_eq!(
        s.loadbalancers.get(&lb).unwrap().operating_status,
        OperatingStatus::Online
    );
    assert!(controller.unbound(lb).is_none());
    second.stop().await;
    let _ = std::fs::remove_dir_all(&haproxy_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_restore_leaves_out_a_listener_that_cannot_bind() {
    tokio::time::timeout(
        Duration::from_secs(60),
        a_listener_that_cannot_bind_at_restore_is_error_and_its_sibling_serves(
            "native",
            "127.173.0.0/24",
        ),
    )
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_restore_leaves_out_a_listener_that_cannot_bind() {
    tokio::time::timeout(
        Duration::from_secs(90),
        a_listener_that_cannot_bind_at_restore_is_error_and_its_sibling_serves(
            "haproxy",
            "127.174.0.0/24",
        ),
    )
    .await
    .expect("bounded");
}

/// Serves whatever it is given after `delay` (when slow), counting how many
/// applies run at once and when each one ended.
#[derive(Default)]
struct Timed {
    delay: Mutex<Duration>,
    running: AtomicUsize,
    most: AtomicUsize,
    done: Mutex<Vec<Instant>>,
}

impl DataPlane for Timed {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let delay = *self.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.done.lock().unwrap().push(Instant::now());
            Ok(config.version)
        })
    }

    fn remove(&self, _lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(async { Ok(()) })
    }

    fn report(&self, _lb_id: Uuid) -> Option<StatusReport> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_restore_independently_and_several_at_a_time() {
    const SLOW_LBS: usize = 8;
    const PER_LB: Duration = Duration::from_millis(1500);
    let api = Api::new("127.175.0.0/24").await;
    let (native, slow) = (Arc::new(Timed::default()), Arc::new(Timed::default()));
    let both = || {
        HashMap::from([
            ("native".to_string(), native.clone() as Arc<dyn DataPlane>),
            ("haproxy".to_string(), slow.clone() as Arc<dyn DataPlane>),
        ])
    };
    let mut controller = api.controller(both());
    for _ in 0..SLOW_LBS {
        api.lb(&mut controller, "haproxy").await;
    }
    api.lb(&mut controller, "native").await;
    drop(controller);
    native.done.lock().unwrap().clear();
    slow.done.lock().unwrap().clear();
    *slow.delay.lock().unwrap() = PER_LB;

    let mut controller = api.controller(both());
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), controller.restore())
        .await
        .expect("bounded");
    let took = start.elapsed();
    let native_done = native.done.lock().unwrap().clone();
    let slow_done = slow.done.lock().unwrap().clone();
    assert_eq!(native_done.len(), 1);
    assert_eq!(slow_done.len(), SLOW_LBS);
    let first_slow = slow_done.iter().min().unwrap();
    assert!(
        native_done[0] < *first_slow,
        "the native load balancer is restored before any slow one finishes"
    );
    // Serially: 8 x 1.5 s = 12 s. Concurrently: about 1.5 s; half the
    // serial time leaves a noisy machine plenty of room.
    assert!(
        took < PER_LB * SLOW_LBS as u32 / 2,
        "restore took {took:?} for {SLOW_LBS} load balancers of {PER_LB:?} each"
    );
    let most = slow.most.load(Ordering::SeqCst);
    assert!(
        (2..=statera_controller::RESTORE_PARALLELISM).contains(&most),
        "{most} applies at once"
    );
}
