//! Statera's HTTP API.
//!
//! - the Octavia v2 API ([`octavia`]) under both `/v2` and `/v2.0`, with and
//!   without the `/lbaas` segment, as Octavia's controllers are mounted;
//! - the Neutron subset load balancers stand on ([`neutron`]): networks,
//!   subnets and ports with Neutron's envelopes and error shape;
//! - version discovery at `/`.
//!
//! Handlers validate, check the caller's rights, and write one transaction to
//! the store that moves objects into PENDING_* and records pending work. They
//! never call a provider or a data plane: the controller does that.

pub mod barbican;
pub mod certificates;
pub mod context;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod input;
pub mod keystone;
pub mod list;
pub mod neutron;
pub mod octavia;
pub mod render;
pub mod wire;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use statera_store::Store;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use context::RequestContext;
pub use error::{ApiError, ApiResult};

/// A provider (driver) users can name in `provider`.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    pub name: String,
    pub description: String,
    /// Whether load balancers can be created with it in this deployment.
    pub available: bool,
    /// Accepted flavor metadata keys: (name, description).
    pub flavor_capabilities: Vec<(String, String)>,
    /// Accepted availability-zone metadata keys.
    pub availability_zone_capabilities: Vec<(String, String)>,
    /// Listener protocols this provider answers with 501.
    pub unsupported_listener_protocols: Vec<statera_model::ListenerProtocol>,
    /// Health monitor types this provider answers with 501.
    pub unsupported_monitor_types: Vec<statera_model::HealthMonitorType>,
    /// Whether it re-encrypts to members (`tls_enabled` pools; 501 if not).
    pub pool_tls: bool,
    /// Whether it speaks HTTP/2 to members: a pool over TLS whose
    /// `alpn_protocols` name only `h2` is 501 if not.
    pub pool_h2: bool,
}

pub use statera_service::QuotaDefaults;

#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The project of requests that do not name one (noauth).
    pub default_project_id: String,
    pub pagination_max_limit: usize,
    /// The provider of load balancers that name none.
    pub default_provider: String,
    pub providers: Vec<ProviderInfo>,
    pub quota_defaults: QuotaDefaults,
    /// Member and monitor addresses refused (Octavia: `reserved_ips`).
    pub reserved_ips: Vec<IpAddr>,
    /// Which subnets' addresses are the host's own (decided by the network
    /// driver): an address held on one of them is refused on all the others.
    pub host_address_space: statera_model::addressing::HostAddressSpace,
    /// Sockets Statera itself listens on that are not a load balancer's
    /// listener (the API): no member or monitor may point at them. An
    /// unspecified address stands for every address of this host.
    pub own_sockets: Vec<SocketAddr>,
    /// Neutron quotas, `max_fixed_ips_per_port`, the host's interface
    /// addresses.
    pub neutron: neutron::quotas::NeutronSettings,
    /// Whether `X-Forwarded-Proto`/`-Host` name the address clients used
    /// (a proxy in front sets them); off, links use `Host`.
    pub trust_proxy_headers: bool,
}

/// Octavia's names of its default provider (`[api_settings]
/// enabled_provider_drivers` by default): clients, flavor profiles and
/// tooling written for Octavia name it. Here both name the deployment's
/// default provider (`default_provider`, the native engine under `statera
/// serve`), unless a provider of that very name exists. A load balancer keeps
/// the name it was created with, as Octavia stores the driver name asked for
/// (`octavia` stays `octavia`); the controller maps it to the same data plane.
pub const DEFAULT_PROVIDER_ALIASES: &[(&str, &str)] = &[
    (
        "amphora",
        "Octavia's default provider name; here Statera's default provider.",
    ),
    (
        "octavia",
        "Deprecated alias of the Octavia Amphora driver; here Statera's default provider.",
    ),
];

impl ApiSettings {
    /// The provider `name` names: one of `providers`, or an alias of the
    /// default provider ([`DEFAULT_PROVIDER_ALIASES`]).
    pub fn provider(&self, name: &str) -> Option<&ProviderInfo> {
        self.providers.iter().find(|p| p.name == name).or_else(|| {
            DEFAULT_PROVIDER_ALIASES
                .iter()
                .any(|(a, _)| *a == name)
                .then(|| {
                    self.providers
                        .iter()
                        .find(|p| p.name == self.default_provider)
                })
                .flatten()
        })
    }

    /// Every provider name a request may use, with its description: the
    /// providers, then the aliases of the default provider.
    pub fn provider_names(&self) -> Vec<(String, String)> {
        let mut names: Vec<(String, String)> = self
            .providers
            .iter()
            .map(|p| (p.name.clone(), p.description.clone()))
            .collect();
        for (alias, description) in DEFAULT_PROVIDER_ALIASES {
            if !names.iter().any(|(n, _)| n == alias) && self.provider(alias).is_some() {
                names.push((alias.to_string(), description.to_string()));
            }
        }
        names
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub settings: Arc<ApiSettings>,
    /// Who is calling: the deployment's auth mode.
    pub auth: Arc<dyn statera_identity::Authenticator>,
    /// What callers may do: the effective policy rules.
    pub policy: Arc<statera_policy::Enforcer>,
    /// The key manager's key-encryption key and per-project bounds.
    pub key_manager: Arc<statera_service::keymanager::KeyManager>,
}

impl AppState {
    /// State for tests and tools: `noauth`, and a caller without headers is
    /// an admin of `settings.default_project_id` (a lab's configuration).
    pub fn lab(store: Arc<Store>, settings: ApiSettings) -> AppState {
        let auth = Arc::new(statera_identity::NoAuth {
            default_project_id: settings.default_project_id.clone(),
            default_roles: vec!["admin".into(), "member".into(), "reader".into()],
        });
        AppState {
            store,
            settings: Arc::new(settings),
            auth,
            policy: Arc::new(statera_policy::Enforcer::defaults()),
            key_manager: Arc::new(lab_key_manager()),
        }
    }
}

/// A key manager with a fresh random key-encryption key and Barbican-like
/// bounds (tests and tools).
pub fn lab_key_manager() -> statera_service::keymanager::KeyManager {
    use statera_service::keymanager::{Kek, KeyManager};
    KeyManager {
        kek: Kek::from_base64(&Kek::generate_base64()).expect("a generated key is valid"),
        max_secrets: 500,
        max_containers: 500,
        pkcs12: statera_tls::Isolation::InProcess,
    }
}

/// The whole API as one router (tests call it without a socket).
pub fn app(state: AppState) -> Router {
    let v2 = octavia::routes().merge(neutron::routes());
    Router::new()
        .route("/", get(versions))
        .route("/v2", get(version_v2))
        .route("/v2.0", get(version_v2))
        .route("/v2/", get(version_v2))
        .route("/v2.0/", get(version_v2))
        .nest("/v2", v2.clone())
        .nest("/v2.0", v2)
        .merge(identity::routes())
        .merge(keystone::routes())
        .merge(barbican::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authentication,
        ))
        .layer(middleware::from_fn_with_state(state, coherent))
        .layer(middleware::from_fn(conventions))
}

/// Every request but version discovery first brings this node's image of
/// the store up to the database's latest commit (a shared PostgreSQL store;
/// nothing to do on SQLite): whichever node a client reaches, it reads what
/// any node acknowledged before (tokens, revocations and policies' targets
/// included, as authentication runs after). While the database cannot be
/// reached the answer is 503 in the API's own shape, and nothing is read
/// from a stale image.
async fn coherent(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if matches!(path, "/" | "/v2" | "/v2.0" | "/v3") || barbican::needs_no_token(path) {
        return next.run(req).await;
    }
    match state.store.sync().await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(error = %e, "the store cannot be brought up to date: 503");
            styled(ApiError::from(e), style_of_path(path)).into_response()
        }
    }
}

/// Requests answered without a token: version discovery (Octavia's, Neutron's
/// and Keystone's), and the identity calls whose credentials are in the body
/// (issuing a token; a user changing its own password with the old one).
fn needs_no_token(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let discovery = matches!(path, "/" | "/v2" | "/v2.0" | "/v3") || barbican::needs_no_token(path);
    let read = method == Method::GET || method == Method::HEAD;
    (read && discovery)
        || (method == Method::POST
            && (path == "/v3/auth/tokens"
                || (path.starts_with("/v3/users/") && path.ends_with("/password"))))
}

/// Every other request is authenticated before routing, as keystonemiddleware
/// does in front of Octavia and Neutron: a handler that forgot to ask who is
/// calling still never serves an anonymous request. The caller is kept in the
/// request's extensions for `RequestContext`.
async fn authentication(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    // Behind an external Keystone the identity API is that Keystone's: the
    // built-in one's routes would read and write tables nobody signs in
    // with (and tokens cannot be issued here at all).
    if state.auth.mode() == statera_identity::AuthMode::Keystone
        && is_identity_path(req.uri().path())
    {
        let base = context::base_url(req.headers(), state.settings.trust_proxy_headers);
        let keystone = state.auth.identity_uri(&base).unwrap_or_default();
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "This deployment's identity service is the Keystone at {keystone}; \
                 Statera serves no identity API of its own."
            ),
        )
        .in_style(error::Style::Keystone)
        .into_response();
    }
    if needs_no_token(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    match context::authenticate(&state, req.headers(), req.uri().path()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Rewrites the request before routing: a `.json` suffix and a trailing
/// slash are ignored, as Octavia does.
pub fn normalize_path(mut req: Request) -> Request {
    let path = req.uri().path();
    let trimmed = path.strip_suffix(".json").unwrap_or(path);
    let trimmed = if trimmed.len() > 1 {
        trimmed.trim_end_matches('/')
    } else {
        trimmed
    };
    if trimmed.len() != path.len() {
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// The longest request target the API reads (eventlet's, under Octavia and
/// Neutron: 8 KiB); longer is 414 in the route's error shape.
pub const MAX_URI_BYTES: usize = 8192;

/// The most header bytes (names and values) a request may carry; more is 431
/// in the route's error shape. hyper's own limits lie above these (see
/// [`wire`]) so that this check, not hyper, answers.
pub const MAX_HEADER_BYTES: usize = 65_536;

/// Transport conventions every route shares: the URI and header limits (414,
/// 431), the `Accept` check (406), every error in the route's own shape
/// (including axum's rejections: undecodable paths, bodies over the limit),
/// and the `x-openstack-request-id` header on every response.
async fn conventions(req: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let style = style_of_path(req.uri().path());
    let uri_len = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().len())
        .unwrap_or(0);
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    // The key manager reads `Accept` itself (a secret's payload is text or
    // bytes as asked).
    let acceptable = barbican::is_key_manager_path(req.uri().path())
        || match req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            None | Some("") => true,
            Some(accept) => accept.split(',').any(|t| {
                let t = t
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                t == "application/json" || t == "*/*" || t == "application/*" || t.is_empty()
            }),
        };
    let mut response = if uri_len > MAX_URI_BYTES {
        styled(
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                format!("The request URI is longer than {MAX_URI_BYTES} bytes."),
            ),
            style,
        )
        .into_response()
    } else if header_bytes > MAX_HEADER_BYTES {
        styled(
            ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("The request headers are larger than {MAX_HEADER_BYTES} bytes."),
            ),
            style,
        )
        .into_response()
    } else if acceptable {
        shape_error(next.run(req).await, style).await
    } else {
        let body = json!({"errors": [{"status": 406, "title": "Not Acceptable",
            "detail": "Only content type application/json is accepted.", "request_id": request_id}]});
        (StatusCode::NOT_ACCEPTABLE, Json(body)).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    response
}

/// The error shape of the routes under `path`.
pub fn style_of_path(path: &str) -> error::Style {
    if is_neutron_path(path) {
        error::Style::Neutron
    } else if is_identity_path(path) {
        error::Style::Keystone
    } else if barbican::is_key_manager_path(path) {
        error::Style::Barbican
    } else {
        error::Style::Octavia
    }
}

/// The identity (Keystone v3) routes.
pub fn is_identity_path(path: &str) -> bool {
    path == "/v3" || path.starts_with("/v3/")
}

/// `e` in `style` (on Neutron routes with webob's exception name of its status).
pub fn styled(e: ApiError, style: error::Style) -> ApiError {
    match style {
        error::Style::Neutron => neutron::neutron_error(e),
        error::Style::Keystone => e.in_style(error::Style::Keystone),
        error::Style::Barbican => e.in_style(error::Style::Barbican),
        error::Style::Octavia => e,
    }
}

/// An error response that is not JSON (axum's rejections answer in plain
/// text: a path parameter that does not decode, a body over the limit, …)
/// becomes the same error in the route's shape, its text as the message.
async fn shape_error(response: Response, style: error::Style) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are short; anything unreadable falls back to the
    // status's own phrase.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_string());
    let mut out = styled(ApiError::new(status, text), style).into_response();
    for (k, v) in parts.headers.iter() {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Whether `path` is one of the Neutron routes (whose errors take Neutron's
/// shape); the server uses it for the errors it answers before routing.
pub fn is_neutron_path(path: &str) -> bool {
    let rest = path
        .strip_prefix("/v2.0/")
        .or_else(|| path.strip_prefix("/v2/"))
        .unwrap_or("");
    neutron::COLLECTIONS
        .iter()
        .any(|c| rest == *c || rest.starts_with(&format!("{c}/")))
}

async fn unknown_route(req: Request) -> ApiError {
    let e = ApiError::new(StatusCode::NOT_FOUND, "The resource could not be found.");
    styled(e, style_of_path(req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method specified is not allowed for this resource.",
    );
    styled(e, style_of_path(req.uri().path()))
}

/// Octavia's API versions, oldest first; the last is CURRENT.
pub const VERSIONS: &[(&str, &str)] = &[
    ("v2.0", "2016-12-11T00:00:00Z"),
    ("v2.1", "2018-04-20T00:00:00Z"),
    ("v2.2", "2018-07-31T00:00:00Z"),
    ("v2.3", "2018-12-18T00:00:00Z"),
    ("v2.4", "2018-12-19T00:00:00Z"),
    ("v2.5", "2019-01-21T00:00:00Z"),
    ("v2.6", "2019-01-25T00:00:00Z"),
    ("v2.7", "2018-01-25T12:00:00Z"),
    ("v2.8", "2019-02-12T00:00:00Z"),
    ("v2.9", "2019-03-04T00:00:00Z"),
    ("v2.10", "2019-03-05T00:00:00Z"),
    ("v2.11", "2019-06-24T00:00:00Z"),
    ("v2.12", "2019-09-11T00:00:00Z"),
    ("v2.13", "2019-09-13T00:00:00Z"),
    ("v2.14", "2019-11-10T00:00:00Z"),
    ("v2.15", "2020-03-10T00:00:00Z"),
    ("v2.16", "2020-03-15T00:00:00Z"),
    ("v2.17", "2020-04-29T00:00:00Z"),
    ("v2.18", "2020-04-29T01:00:00Z"),
    ("v2.19", "2020-05-12T00:00:00Z"),
    ("v2.20", "2020-08-02T00:00:00Z"),
    ("v2.21", "2020-09-03T00:00:00Z"),
    ("v2.22", "2020-09-04T00:00:00Z"),
    ("v2.23", "2020-09-07T00:00:00Z"),
    ("v2.24", "2020-10-15T00:00:00Z"),
    ("v2.25", "2021-10-02T00:00:00Z"),
    ("v2.26", "2022-08-29T00:00:00Z"),
    ("v2.27", "2023-05-05T00:00:00Z"),
    ("v2.28", "2023-11-08T00:00:00Z"),
    ("v2.29", "2024-10-15T00:00:00Z"),
    ("v2.30", "2025-02-26T00:00:00Z"),
];

fn version_doc(base: &str, id: &str, updated: &str, current: bool) -> Value {
    json!({
        "id": id,
        "status": if current { "CURRENT" } else { "SUPPORTED" },
        "updated": updated,
        "links": [{"href": format!("{base}/v2"), "rel": "self"}],
    })
}

async fn versions(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    let base = context::base_url(&headers, state.settings.trust_proxy_headers);
    let n = VERSIONS.len();
    let list: Vec<Value> = VERSIONS
        .iter()
        .enumerate()
        .map(|(i, (id, updated))| version_doc(&base, id, updated, i + 1 == n))
        .collect();
    Json(json!({"versions": list}))
}

/// `GET /v2` and `GET /v2.0`: a version object (Octavia's bare string crashes
/// keystoneauth when an endpoint override ends in /v2.0).
async fn version_v2(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    let base = context::base_url(&headers, state.settings.trust_proxy_headers);
    let (id, updated) = VERSIONS[VERSIONS.len() - 1];
    Json(json!({"version": version_doc(&base, id, updated, true)}))
}

impl statera_service::octavia::Deployment for ApiSettings {
    fn quota_defaults(&self) -> &QuotaDefaults {
        &self.quota_defaults
    }

    fn unsupported_monitor_types(&self, provider: &str) -> &[statera_model::HealthMonitorType] {
        self.provider(provider)
            .map(|p| p.unsupported_monitor_types.as_slice())
            .unwrap_or(&[])
    }

    fn unsupported_listener_protocols(&self, provider: &str) -> &[statera_model::ListenerProtocol] {
        self.provider(provider)
            .map(|p| p.unsupported_listener_protocols.as_slice())
            .unwrap_or(&[])
    }

    fn supports_pool_tls(&self, provider: &str) -> bool {
        self.provider(provider).is_none_or(|p| p.pool_tls)
    }

    fn supports_pool_h2(&self, provider: &str) -> bool {
        self.provider(provider).is_none_or(|p| p.pool_h2)
    }

    fn reserved_ips(&self) -> &[IpAddr] {
        &self.reserved_ips
    }

    fn own_sockets(&self) -> &[SocketAddr] {
        &self.own_sockets
    }
}

impl statera_service::octavia::Providers for ApiSettings {
    fn default_provider(&self) -> &str {
        &self.default_provider
    }

    fn provider_available(&self, name: &str) -> Option<bool> {
        self.provider(name).map(|p| p.available)
    }

    fn flavor_capabilities(&self, name: &str) -> Option<&[(String, String)]> {
        self.provider(name)
            .map(|p| p.flavor_capabilities.as_slice())
    }

    fn availability_zone_capabilities(&self, name: &str) -> Option<&[(String, String)]> {
        self.provider(name)
            .map(|p| p.availability_zone_capabilities.as_slice())
    }

    fn provider_list(&self) -> Vec<(String, String)> {
        self.provider_names()
    }
}
