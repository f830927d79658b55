//! What the statera integration tests share: the API and the store in a
//! directory, the real controller, and the CI rule for missing
//! prerequisites.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use statera_api::{ApiSettings, AppState, ProviderInfo, QuotaDefaults};
use statera_config::DataPlane;
use statera_controller::Controller;
use statera_store::{Durability, Store};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

#[path = "../../../statera-store/tests/support/tmpfs.rs"]
mod tmpfs;
#[allow(unused_imports)]
pub use tmpfs::{Tmpfs, skip_or_fail};

pub const PROJECT: &str = "5d1e0f3a9c8b4e7da2f6b1c0d9e8f7a6";

pub fn provider(name: &str) -> ProviderInfo {
    ProviderInfo {
        name: name.to_string(),
        description: name.to_string(),
        available: true,
        flavor_capabilities: vec![],
        availability_zone_capabilities: vec![],
        unsupported_listener_protocols: vec![],
        unsupported_monitor_types: vec![],
        pool_tls: true,
        pool_h2: true,
    }
}

/// A store in a temp dir with a host network on `cidr`, and the API on it.
pub struct Api {
    pub store: Arc<Store>,
    pub router: Router,
    pub subnet_id: Uuid,
    _dir: Option<tempfile::TempDir>,
}

impl Api {
    /// In a temp dir of its own.
    pub async fn new(cidr: &str) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut api = Api::in_dir(dir.path(), cidr).await;
        api._dir = Some(dir);
        api
    }

    /// With its store in `dir`.
    pub async fn in_dir(dir: &Path, cidr: &str) -> Api {
        let store = Arc::new(Store::open(dir, Durability::Full).await.unwrap());
        Api::on_store(store, cidr).await
    }

    /// On `store` (one node of a shared one, say): the host network is
    /// made unless a node made it already.
    pub async fn on_store(store: Arc<Store>, cidr: &str) -> Api {
        let project = PROJECT.to_string();
        let (network, subnet) = statera_net::host::default_network(
            &project,
            cidr.parse().unwrap(),
            statera_model::now(),
        )
        .unwrap();
        let subnet_id = store
            .write(|txn| {
                if let Some(existing) = txn.state().subnets.iter().find(|s| s.name == subnet.name) {
                    return Ok(existing.id);
                }
                let id = subnet.id;
                txn.put(network)?;
                txn.put(subnet)?;
                Ok::<_, statera_store::StoreError>(id)
            })
            .await
            .unwrap();
        let settings = ApiSettings {
            default_project_id: project,
            pagination_max_limit: 1000,
            default_provider: "native".to_string(),
            providers: vec![provider("native"), provider("haproxy")],
            quota_defaults: QuotaDefaults::default(),
            reserved_ips: vec![],
            host_address_space: Default::default(),
            own_sockets: vec![],
            neutron: Default::default(),
            trust_proxy_headers: false,
        };
        let router = statera_api::app(AppState::lab(store.clone(), settings));
        Api {
            store,
            router,
            subnet_id,
            _dir: None,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// An ACTIVE load balancer of `provider`: its id and VIP.
    pub async fn lb(&self, controller: &mut Controller, provider: &str) -> (Uuid, IpAddr) {
        let (status, body) = self
            .call(
                "POST",
                "/v2/lbaas/loadbalancers",
                Some(json!({"loadbalancer": {"vip_subnet_id": self.subnet_id, "provider": provider}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        controller.drain_work().await;
        let lb = &body["loadbalancer"];
        (
            lb["id"].as_str().unwrap().parse().unwrap(),
            lb["vip_address"].as_str().unwrap().parse().unwrap(),
        )
    }

    /// An ACTIVE TCP listener on `port`; its id.
    pub async fn listener(&self, controller: &mut Controller, lb: Uuid, port: u16) -> Uuid {
        let (status, body) = self
            .call(
                "POST",
                "/v2/lbaas/listeners",
                Some(json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": port}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        controller.drain_work().await;
        body["listener"]["id"].as_str().unwrap().parse().unwrap()
    }

    pub fn controller(&self, planes: HashMap<String, Arc<dyn DataPlane>>) -> Controller {
        // Reports are read by `collect`; the channel's receiver is the
        // controller's, its sender the data planes'.
        let (_, rx) = tokio::sync::mpsc::unbounded_channel();
        Controller::new(self.store.clone(), planes, rx, "test-host".into())
    }
}
