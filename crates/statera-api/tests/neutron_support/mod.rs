//! What the Neutron test files share: a router over a fresh store, and
//! requests through it as a given project and roles.

#![allow(dead_code)] // each test file uses its own part of it

#[path = "../../../statera-store/tests/support/pg.rs"]
mod pg;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use statera_api::{ApiSettings, AppState, ProviderInfo, QuotaDefaults};

use std::sync::Arc;
use tower::ServiceExt;

pub struct Api {
    router: Router,
    _dir: tempfile::TempDir,
}

/// The API over an empty store (default project `p1`, one provider).
pub async fn api() -> Api {
    api_with(|_| {}).await
}

/// [`api`] with `change` applied to its settings.
pub async fn api_with(change: impl FnOnce(&mut ApiSettings)) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = pg::test_store(dir.path()).await;
    let settings = ApiSettings {
        default_project_id: "p1".into(),
        pagination_max_limit: 1000,
        default_provider: "native".into(),
        providers: vec![ProviderInfo {
            name: "native".into(),
            description: "native".into(),
            available: true,
            flavor_capabilities: Vec::new(),
            availability_zone_capabilities: Vec::new(),
            unsupported_listener_protocols: Vec::new(),
            unsupported_monitor_types: Vec::new(),
            pool_tls: false,
            pool_h2: true,
        }],
        quota_defaults: QuotaDefaults::default(),
        reserved_ips: Vec::new(),
        host_address_space: Default::default(),
        own_sockets: Vec::new(),
        neutron: Default::default(),
        trust_proxy_headers: false,
    };
    let mut settings = settings;
    change(&mut settings);
    let router = statera_api::app(AppState::lab(Arc::new(store), settings));
    Api { router, _dir: dir }
}

impl Api {
    /// One request with a raw body, as `auth` = (project, roles) (None: the
    /// noauth admin default); the answer's status and JSON (Null if empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        auth: Option<(&str, &str)>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "api.test");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some((project, roles)) = auth {
            req = req.header("x-project-id", project).header("x-roles", roles);
        }
        let req = req.body(Body::from(body.unwrap_or_default())).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// A request with a JSON body (or none) as the noauth admin.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send(method, path, body.map(|b| b.to_string()), None)
            .await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
}
