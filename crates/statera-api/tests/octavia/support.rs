//! The harness: a real store in a temp dir, the host network, the API router
//! called without a socket, and the real controller against a fake data plane
//! that acknowledges (or refuses) every configuration.

#![allow(dead_code)]

#[path = "../../../statera-store/tests/support/pg.rs"]
mod pg;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use statera_api::{ApiSettings, AppState, ProviderInfo, QuotaDefaults};
use statera_config::{BoxFuture, DataPlane, DataPlaneError, LbConfig, StatusReport};
use statera_controller::Controller;
use statera_model::ListenerProtocol;
use statera_store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;
use uuid::Uuid;

pub const PROJECT: &str = "e3cd678b11784734bc366148aa37580e";
pub const OTHER_PROJECT: &str = "0f4c5a6b7d8e4f90a1b2c3d4e5f60718";
/// The API's own listening socket as the harness tells the API.
pub const API_SOCKET: &str = "127.0.0.1:9876";

/// A data plane that serves whatever it is given, unless told to refuse.
#[derive(Default)]
pub struct FakePlane {
    pub refuse: AtomicBool,
    pub applied: Mutex<Vec<Arc<LbConfig>>>,
    pub removed: Mutex<Vec<Uuid>>,
}

impl DataPlane for FakePlane {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(async move {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(DataPlaneError::Other("refused by the test".into()));
            }
            let v = config.version;
            self.applied.lock().unwrap().push(config);
            Ok(v)
        })
    }

    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(async move {
            self.removed.lock().unwrap().push(lb_id);
            Ok(())
        })
    }

    fn report(&self, _lb_id: Uuid) -> Option<StatusReport> {
        None
    }
}

/// The providers as `statera serve` configures them.
pub fn providers() -> Vec<ProviderInfo> {
    vec![
        ProviderInfo {
            name: "native".to_string(),
            description: "Statera's own data plane, in process.".to_string(),
            available: true,
            flavor_capabilities: vec![(
                "loadbalancer_topology".to_string(),
                "The load balancer topology.".to_string(),
            )],
            availability_zone_capabilities:
                statera_api::octavia::providers::octavia_availability_zone_capabilities(),
            unsupported_listener_protocols: vec![ListenerProtocol::Sctp],
            unsupported_monitor_types: vec![statera_model::HealthMonitorType::Sctp],
            pool_tls: false,
            pool_h2: true,
        },
        ProviderInfo {
            name: "haproxy".to_string(),
            description: "One HAProxy process per load balancer.".to_string(),
            available: false,
            flavor_capabilities: vec![],
            availability_zone_capabilities: vec![],
            unsupported_listener_protocols: vec![ListenerProtocol::Udp, ListenerProtocol::Sctp],
            unsupported_monitor_types: vec![
                statera_model::HealthMonitorType::Ping,
                statera_model::HealthMonitorType::UdpConnect,
                statera_model::HealthMonitorType::Sctp,
            ],
            pool_tls: true,
            pool_h2: true,
        },
    ]
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Assert the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.text
        );
        self
    }

    /// The faultstring of an Octavia error body.
    pub fn fault(&self) -> String {
        self.body["faultstring"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Assert an Octavia-shaped error with `status` whose faultstring contains `needle`.
    #[track_caller]
    pub fn error(self, status: u16, needle: &str) -> Resp {
        let r = self.expect(status);
        let o = r.body.as_object().expect("error body is an object");
        assert_eq!(
            o.keys().map(String::as_str).collect::<Vec<_>>().len(),
            3,
            "{}",
            r.text
        );
        assert_eq!(
            r.body["faultcode"],
            if status >= 500 { "Server" } else { "Client" },
            "{}",
            r.text
        );
        assert!(r.body["debuginfo"].is_null(), "{}", r.text);
        assert!(
            r.fault().contains(needle),
            "faultstring {:?} does not contain {needle:?}",
            r.fault()
        );
        r
    }
}

pub struct Harness {
    pub store: Arc<Store>,
    pub router: Router,
    pub plane: Arc<FakePlane>,
    pub controller: tokio::sync::Mutex<Controller>,
    pub network_id: Uuid,
    pub subnet_id: Uuid,
    _reports: tokio::sync::mpsc::UnboundedSender<StatusReport>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_quotas(QuotaDefaults::default()).await
    }

    pub async fn with_quotas(quota_defaults: QuotaDefaults) -> Harness {
        Harness::with_settings(|s| s.quota_defaults = quota_defaults).await
    }

    /// A harness whose API settings `change` adjusts (from the defaults below).
    pub async fn with_settings(change: impl FnOnce(&mut ApiSettings)) -> Harness {
        Harness::with_state(change, |_| {}).await
    }

    /// A harness whose settings `change` adjusts and whose `AppState` (the
    /// lab's: noauth, admin by default) `state` adjusts.
    pub async fn with_state(
        change: impl FnOnce(&mut ApiSettings),
        state: impl FnOnce(&mut AppState),
    ) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(pg::test_store(dir.path()).await);
        let (network, subnet) = statera_net::host::default_network(
            PROJECT,
            "127.170.0.0/24".parse().unwrap(),
            statera_model::now(),
        )
        .expect("host network");
        let (network_id, subnet_id) = (network.id, subnet.id);
        store
            .write(|txn| {
                txn.put(network)?;
                txn.put(subnet)?;
                Ok::<_, statera_store::StoreError>(())
            })
            .await
            .expect("write host network");
        let mut settings = ApiSettings {
            default_project_id: PROJECT.to_string(),
            pagination_max_limit: 1000,
            default_provider: "native".to_string(),
            providers: providers(),
            quota_defaults: QuotaDefaults::default(),
            reserved_ips: vec!["169.254.169.254".parse().unwrap()],
            host_address_space: Default::default(),
            own_sockets: vec![API_SOCKET.parse().unwrap()],
            neutron: Default::default(),
            trust_proxy_headers: false,
        };
        change(&mut settings);
        let mut app_state = AppState::lab(store.clone(), settings);
        state(&mut app_state);
        let router = statera_api::app(app_state);
        let plane = Arc::new(FakePlane::default());
        let mut planes: HashMap<String, Arc<dyn DataPlane>> = HashMap::new();
        planes.insert("native".to_string(), plane.clone());
        for (alias, _) in statera_api::DEFAULT_PROVIDER_ALIASES {
            planes.insert(alias.to_string(), plane.clone());
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let controller = Controller::new(store.clone(), planes, rx, "test-host".to_string());
        Harness {
            store,
            router,
            plane,
            controller: tokio::sync::Mutex::new(controller),
            network_id,
            subnet_id,
            _reports: tx,
            _dir: dir,
        }
    }

    /// Let the real controller settle every pending change.
    pub async fn settle(&self) {
        self.controller.lock().await.drain_work().await;
    }

    pub fn refuse(&self, refuse: bool) {
        self.plane.refuse.store(refuse, Ordering::SeqCst);
    }

    /// A raw request: `headers` are added as given.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Resp {
        self.raw_from(None, method, path, headers, body).await
    }

    /// [`Harness::raw`] as if on a connection from `peer` (the server puts
    /// the peer's address in every request's extensions).
    pub async fn raw_from(
        &self,
        peer: Option<std::net::SocketAddr>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("host", "statera.test:9876");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(s) => b
                .header("content-type", "application/json")
                .body(Body::from(s))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let mut req = req;
        if let Some(peer) = peer {
            req.extensions_mut()
                .insert(statera_api::context::PeerAddr(peer));
        }
        let svc = tower::Layer::layer(
            &tower::util::MapRequestLayer::new(statera_api::normalize_path),
            self.router.clone(),
        );
        let resp = svc.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(text.clone()))
        };
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.raw(method, path, &[], body.map(|b| b.to_string()))
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }

    /// A request as a project member of `project` (not an admin).
    pub async fn as_member(
        &self,
        project: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        self.raw(
            method,
            path,
            &[("x-project-id", project), ("x-roles", "member,reader")],
            body.map(|b| b.to_string()),
        )
        .await
    }

    // ---- building blocks: create and settle ----

    /// POST a load balancer (not settled); the response.
    pub async fn post_lb(&self, extra: Value) -> Resp {
        let mut lb = json!({"vip_subnet_id": self.subnet_id});
        merge(&mut lb, extra);
        self.post("/v2/lbaas/loadbalancers", json!({ "loadbalancer": lb }))
            .await
    }

    /// An ACTIVE load balancer; its id.
    pub async fn lb(&self) -> String {
        let r = self.post_lb(json!({"name": "lb"})).await.expect(201);
        self.settle().await;
        id(&r.body["loadbalancer"])
    }

    /// An ACTIVE listener of `protocol` on `port`; its id.
    pub async fn listener(&self, lb: &str, protocol: &str, port: u16) -> String {
        let r = self
            .post(
                "/v2/lbaas/listeners",
                json!({"listener": {"loadbalancer_id": lb, "protocol": protocol, "protocol_port": port}}),
            )
            .await
            .expect(201);
        self.settle().await;
        id(&r.body["listener"])
    }

    /// An ACTIVE pool on `lb`; its id.
    pub async fn pool(&self, lb: &str, protocol: &str) -> String {
        let r = self
            .post(
                "/v2/lbaas/pools",
                json!({"pool": {"loadbalancer_id": lb, "protocol": protocol, "lb_algorithm": "ROUND_ROBIN"}}),
            )
            .await
            .expect(201);
        self.settle().await;
        id(&r.body["pool"])
    }

    /// An ACTIVE default pool of `listener`; its id.
    pub async fn default_pool(&self, listener: &str, protocol: &str) -> String {
        let r = self
            .post(
                "/v2/lbaas/pools",
                json!({"pool": {"listener_id": listener, "protocol": protocol, "lb_algorithm": "ROUND_ROBIN"}}),
            )
            .await
            .expect(201);
        self.settle().await;
        id(&r.body["pool"])
    }

    /// An ACTIVE member; its id.
    pub async fn member(&self, pool: &str, address: &str, port: u16) -> String {
        let r = self
            .post(
                &format!("/v2/lbaas/pools/{pool}/members"),
                json!({"member": {"address": address, "protocol_port": port}}),
            )
            .await
            .expect(201);
        self.settle().await;
        id(&r.body["member"])
    }

    /// An ACTIVE health monitor; its id.
    pub async fn monitor(&self, pool: &str, kind: &str) -> String {
        let r = self
            .post(
                "/v2/lbaas/healthmonitors",
                json!({"healthmonitor": {"pool_id": pool, "type": kind, "delay": 5, "timeout": 3, "max_retries": 2}}),
            )
            .await
            .expect(201);
        self.settle().await;
        id(&r.body["healthmonitor"])
    }

    /// An ACTIVE REJECT policy on `listener`; its id.
    pub async fn policy(&self, listener: &str) -> String {
        let r = self
            .post(
                "/v2/lbaas/l7policies",
                json!({"l7policy": {"listener_id": listener, "action": "REJECT"}}),
            )
            .await
            .expect(201);
        self.settle().await;
        id(&r.body["l7policy"])
    }

    /// An ACTIVE PATH rule; its id.
    pub async fn rule(&self, policy: &str, value: &str) -> String {
        let r = self
            .post(
                &format!("/v2/lbaas/l7policies/{policy}/rules"),
                json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": value}}),
            )
            .await
            .expect(201);
        self.settle().await;
        id(&r.body["rule"])
    }

    /// The provisioning status of the object at `path` (envelope `key`).
    pub async fn status_of(&self, path: &str, key: &str) -> String {
        let r = self.get(path).await.expect(200);
        r.body[key]["provisioning_status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn lb_status(&self, lb: &str) -> String {
        self.status_of(&format!("/v2/lbaas/loadbalancers/{lb}"), "loadbalancer")
            .await
    }
}

pub fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// Shallow merge of `extra`'s keys into `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// The sorted key set of an object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Assert that object `v` has exactly the fields `expected`.
#[track_caller]
pub fn assert_fields(v: &Value, expected: &[&str]) {
    let mut e: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    e.sort();
    let got = keys(v);
    let missing: Vec<&String> = e.iter().filter(|k| !got.contains(k)).collect();
    let extra: Vec<&String> = got.iter().filter(|k| !e.contains(k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?} in {v}"
    );
}

/// The ids in a list body's `key`.
pub fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} list in {body}"))
        .iter()
        .map(id)
        .collect()
}

/// `updated_at`/`created_at` look like `2017-02-28T00:41:44`.
#[track_caller]
pub fn assert_timestamp(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    assert!(chrono_like(s), "timestamp {s:?} is not YYYY-MM-DDTHH:MM:SS");
}

fn chrono_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16].contains(&i) || c.is_ascii_digit())
}

/// Every common check of a freshly created object: tenant_id == project_id,
/// name/description never null, updated_at null, created_at formatted.
#[track_caller]
pub fn assert_fresh(v: &Value) {
    assert_eq!(v["tenant_id"], v["project_id"], "{v}");
    assert_eq!(v["project_id"], PROJECT, "{v}");
    for k in ["name", "description"] {
        if let Some(x) = v.get(k) {
            assert!(x.is_string(), "{k} must never be null: {v}");
        }
    }
    assert!(
        v["updated_at"].is_null(),
        "fresh object has updated_at: {v}"
    );
    assert_timestamp(&v["created_at"]);
    assert_eq!(v["provisioning_status"], "PENDING_CREATE", "{v}");
}
