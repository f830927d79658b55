//! `keystone` mode: tokens validated by an external Keystone, the way
//! keystonemiddleware's `auth_token` does it.
//!
//! Statera authenticates itself as a service user (password auth, scoped to
//! the service project) and asks Keystone about each caller's token:
//! `GET {auth_url}/auth/tokens?nocatalog` with `X-Auth-Token: <service token>`
//! and `X-Subject-Token: <caller's token>`.
//! - 200: the token's user, scope (project, domain or system), roles,
//!   `is_admin_project` and audit id become the [`Caller`];
//! - 404 (or 400): the token is unknown, expired or revoked: 401
//!   ([`AuthError::Invalid`]);
//! - 401: the service token itself was refused: Statera authenticates again
//!   and asks once more; refused again (or 403: the service user may not
//!   validate tokens) is a misconfiguration, answered 503;
//! - no connection, a 5xx or no answer within `timeout`: 503
//!   ([`AuthError::Unavailable`], the client may retry).
//!
//! Answers are cached ([`TokenCache`]): a valid token until
//! min(its `expires_at`, now + `cache_seconds`) — so a revoked token is
//! refused at the latest `cache_seconds` after its revocation — and an
//! invalid one for min(30 s, `cache_seconds`), so a flood of bad tokens is
//! not a flood on Keystone. Concurrent validations of one token share one
//! request. `cache_seconds = 0` disables the cache.
//!
//! The client speaks HTTP/1.1, plain or over TLS (rustls with ring; the CAs
//! of `cafile`, else the system bundle).

use crate::{AuthError, AuthFuture, AuthMode, Authenticator, Caller};
use blake2::{Blake2b, Digest, digest::consts::U32};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How Statera reaches an external Keystone (`[auth.keystone]`).
#[derive(Debug, Clone)]
pub struct KeystoneConfig {
    /// Keystone's identity v3 endpoint, `http://host:5000/v3` (`/v3` is
    /// added when missing).
    pub auth_url: String,
    /// The service user Statera authenticates as.
    pub username: String,
    pub password: String,
    pub user_domain_name: String,
    /// The project the service user's token is scoped to.
    pub project_name: String,
    pub project_domain_name: String,
    /// How long a validated token is trusted without asking again; 0 = no cache.
    pub cache_seconds: u64,
    /// Each request to Keystone (connect, send, whole answer) must finish within this.
    pub timeout: Duration,
    /// The identity endpoint a 401 points clients to; `auth_url` if unset.
    pub www_authenticate_uri: Option<String>,
    /// The most tokens the cache holds.
    pub cache_entries: usize,
    /// For an https `auth_url`: the CAs (PEM) Keystone's certificate must
    /// chain to; the system bundle if unset.
    pub cafile: Option<PathBuf>,
}

impl KeystoneConfig {
    pub const DEFAULT_CACHE_SECONDS: u64 = 300;
    pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
    pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
    /// How long a refused token is remembered (at most `cache_seconds`).
    pub const NEGATIVE_CACHE: Duration = Duration::from_secs(30);
}

/// A token longer than this is refused without asking Keystone (Fernet
/// tokens are ~200 bytes, JWS tokens under 1 KiB).
const MAX_TOKEN_LEN: usize = 4096;
/// The most of an answer body read from Keystone.
const MAX_BODY: usize = 1 << 20;
/// A service token is renewed this long before it expires.
const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Why a request to Keystone failed, as a typed error: the transport (retry
/// may succeed) or Keystone's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeystoneError {
    #[error("cannot reach Keystone at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("Keystone at {url} did not answer within {ms} ms")]
    Timeout { url: String, ms: u128 },
    #[error("Keystone answered {status} to {what}")]
    Status { what: &'static str, status: u16 },
    #[error("Keystone's answer to {what} is not understood: {reason}")]
    Malformed { what: &'static str, reason: String },
}

impl From<KeystoneError> for AuthError {
    fn from(e: KeystoneError) -> AuthError {
        AuthError::Unavailable(e.to_string())
    }
}

/// The `keystone` authenticator.
pub struct Keystone {
    config: KeystoneConfig,
    base: Endpoint,
    service: tokio::sync::Mutex<Option<ServiceToken>>,
    cache: TokenCache,
    inflight: Mutex<HashMap<TokenKey, watch::Receiver<Option<Outcome>>>>,
}

#[derive(Clone)]
struct ServiceToken {
    token: String,
    renew_at: Instant,
}

/// What Keystone said about one token.
type Outcome = Result<Caller, AuthError>;

impl Keystone {
    /// Checks the configuration (no request is made: Keystone may start later).
    pub fn new(mut config: KeystoneConfig) -> Result<Arc<Keystone>, String> {
        for (name, v) in [
            ("auth_url", &config.auth_url),
            ("username", &config.username),
            ("password", &config.password),
            ("project_name", &config.project_name),
            ("user_domain_name", &config.user_domain_name),
            ("project_domain_name", &config.project_domain_name),
        ] {
            if v.trim().is_empty() {
                return Err(format!(
                    "[auth.keystone] {name} is required in keystone mode"
                ));
            }
        }
        if config.timeout.is_zero() {
            return Err("[auth.keystone] timeout_ms must be above 0".into());
        }
        if config.cache_entries == 0 {
            return Err("[auth.keystone] cache_entries must be above 0".into());
        }
        let trimmed = config.auth_url.trim().trim_end_matches('/').to_string();
        config.auth_url = if trimmed.ends_with("/v3") {
            trimmed
        } else {
            format!("{trimmed}/v3")
        };
        let base = Endpoint::parse(&config.auth_url, config.cafile.as_deref())?;
        let cache = TokenCache::new(config.cache_entries);
        Ok(Arc::new(Keystone {
            config,
            base,
            service: tokio::sync::Mutex::new(None),
            cache,
            inflight: Mutex::new(HashMap::new()),
        }))
    }

    pub fn config(&self) -> &KeystoneConfig {
        &self.config
    }

    /// How many tokens the cache holds now (valid and refused).
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Validates `token`: from the cache, by joining a validation already
    /// under way, or by asking Keystone.
    pub async fn validate(self: &Arc<Self>, token: &str) -> Outcome {
        if token.len() > MAX_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::Invalid("malformed token".into()));
        }
        let key = TokenKey::of(token);
        loop {
            if let Some(hit) = self.cache.get(&key, Instant::now()) {
                return hit;
            }
            let mut rx = {
                let mut inflight = self.inflight.lock().unwrap();
                match inflight.get(&key) {
                    Some(rx) => rx.clone(),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        inflight.insert(key, rx.clone());
                        // The validation runs in its own task: a client that
                        // hangs up does not cancel it for the others waiting.
                        let this = Arc::clone(self);
                        let token = token.to_string();
                        tokio::spawn(async move {
                            let (outcome, expires_in) = match this.ask(&token).await {
                                Ok((caller, expires_in)) => (Ok(caller), expires_in),
                                Err(e) => (Err(e), None),
                            };
                            this.remember(key, &outcome, expires_in);
                            this.inflight.lock().unwrap().remove(&key);
                            let _ = tx.send(Some(outcome));
                        });
                        rx
                    }
                }
            };
            let answer = rx
                .wait_for(Option::is_some)
                .await
                .map(|v| v.clone().expect("waited for Some"));
            match answer {
                Ok(outcome) => return outcome,
                // The task ended without an answer (the runtime shutting
                // down): look again.
                Err(_) => {
                    self.inflight.lock().unwrap().remove(&key);
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    fn remember(&self, key: TokenKey, outcome: &Outcome, expires_in: Option<Duration>) {
        let cache_for = Duration::from_secs(self.config.cache_seconds);
        if cache_for.is_zero() {
            return;
        }
        let now = Instant::now();
        match outcome {
            Ok(caller) => {
                // Trusted until the token expires, and at most cache_seconds.
                let ttl = expires_in.map_or(cache_for, |t| t.min(cache_for));
                self.cache.put(key, Ok(caller.clone()), now + ttl, now);
            }
            Err(e @ AuthError::Invalid(_)) => {
                let ttl = KeystoneConfig::NEGATIVE_CACHE.min(cache_for);
                self.cache.put(key, Err(e.clone()), now + ttl, now);
            }
            // Keystone unavailable: nothing learnt about the token.
            Err(_) => {}
        }
    }

    /// One validation: with the current service token, and once more with a
    /// new one if Keystone refused it.
    async fn ask(&self, token: &str) -> Validated {
        let service = self.service_token(None).await?;
        match self.validate_with(&service, token).await? {
            Some(outcome) => outcome,
            None => {
                tracing::info!("Keystone refused the service token; authenticating again");
                let service = self.service_token(Some(&service)).await?;
                match self.validate_with(&service, token).await? {
                    Some(outcome) => outcome,
                    None => Err(KeystoneError::Status {
                        what: "token validation with a fresh service token",
                        status: 401,
                    }
                    .into()),
                }
            }
        }
    }

    async fn validate_with(
        &self,
        service: &str,
        token: &str,
    ) -> Result<Option<Validated>, AuthError> {
        let (status, _, body) = self
            .send(
                Method::GET,
                "/auth/tokens?nocatalog",
                &[("x-auth-token", service), ("x-subject-token", token)],
                None,
            )
            .await?;
        match status {
            StatusCode::OK => Ok(Some(caller_from_token(&body))),
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => Ok(Some(Err(AuthError::Invalid(
                format!("Keystone answered {} to the token", status.as_u16()),
            )))),
            // The service token was refused.
            StatusCode::UNAUTHORIZED => Ok(None),
            s => Err(KeystoneError::Status {
                what: "token validation",
                status: s.as_u16(),
            }
            .into()),
        }
    }

    /// The service user's token: the one held, unless it nears expiry or is
    /// `refused` (then a new one; concurrent callers wait for that one).
    async fn service_token(&self, refused: Option<&str>) -> Result<String, AuthError> {
        let mut held = self.service.lock().await;
        if let Some(t) = held.as_ref()
            && Instant::now() < t.renew_at
            && refused != Some(t.token.as_str())
        {
            return Ok(t.token.clone());
        }
        let fresh = self.authenticate_service().await?;
        let token = fresh.token.clone();
        *held = Some(fresh);
        Ok(token)
    }

    async fn authenticate_service(&self) -> Result<ServiceToken, AuthError> {
        let c = &self.config;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username,
                "domain": {"name": c.user_domain_name},
                "password": c.password,
            }}},
            "scope": {"project": {
                "name": c.project_name,
                "domain": {"name": c.project_domain_name},
            }},
        }});
        let (status, headers, body) = self
            .send(
                Method::POST,
                "/auth/tokens?nocatalog",
                &[("content-type", "application/json")],
                Some(body.to_string().into()),
            )
            .await?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            if status.is_client_error() {
                tracing::error!(
                    status = status.as_u16(),
                    user = %c.username,
                    "Keystone refused Statera's service user ([auth.keystone] credentials)"
                );
            }
            return Err(KeystoneError::Status {
                what: "the service user's authentication",
                status: status.as_u16(),
            }
            .into());
        }
        let malformed = |reason: &str| {
            AuthError::from(KeystoneError::Malformed {
                what: "the service user's authentication",
                reason: reason.to_string(),
            })
        };
        let token = headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| malformed("no X-Subject-Token"))?
            .to_string();
        let doc: Value = serde_json::from_slice(&body).map_err(|e| malformed(&e.to_string()))?;
        let ttl = doc["token"]["expires_at"]
            .as_str()
            .and_then(remaining)
            .ok_or_else(|| malformed("no expires_at"))?;
        Ok(ServiceToken {
            token,
            renew_at: Instant::now() + ttl.saturating_sub(SERVICE_TOKEN_MARGIN),
        })
    }

    /// One HTTP/1.1 exchange with Keystone on a new connection, bounded by
    /// `timeout` as a whole.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), KeystoneError> {
        let url = format!("{}{}", self.base.path, path_and_query);
        let attempt = async {
            let transport = |reason: String| KeystoneError::Transport {
                url: self.config.auth_url.clone(),
                reason,
            };
            let mut req = Request::builder()
                .method(method)
                .uri(&url)
                .header("host", &self.base.authority)
                .header("accept", "application/json")
                .header("user-agent", "statera");
            for (k, v) in headers {
                let v = HeaderValue::from_str(v).map_err(|e| transport(e.to_string()))?;
                req = req.header(*k, v);
            }
            let req = req
                .body(Full::new(body.unwrap_or_default()))
                .map_err(|e| transport(e.to_string()))?;
            let stream = tokio::net::TcpStream::connect((self.base.host.as_str(), self.base.port))
                .await
                .map_err(|e| transport(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let resp = match &self.base.tls {
                None => exchange(stream, req).await,
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|e| transport(format!("TLS: {e}")))?;
                    exchange(tls, req).await
                }
            }
            .map_err(transport)?;
            let (parts, body) = resp.into_parts();
            Ok((parts.status, parts.headers, body))
        };
        match tokio::time::timeout(self.config.timeout, attempt).await {
            Ok(r) => {
                if let Ok((s, _, _)) = &r
                    && s.is_server_error()
                {
                    return Err(KeystoneError::Status {
                        what: "a request",
                        status: s.as_u16(),
                    });
                }
                r
            }
            Err(_) => Err(KeystoneError::Timeout {
                url: self.config.auth_url.clone(),
                ms: self.config.timeout.as_millis(),
            }),
        }
    }
}

/// A caller and how long its token has left (when the token says).
type Validated = Result<(Caller, Option<Duration>), AuthError>;

/// One request on a fresh connection (plain or TLS); the whole body read.
async fn exchange<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<http::Response<Bytes>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    conn.abort();
    Ok(http::Response::from_parts(parts, body))
}

/// The parts of `auth_url` a request needs.
struct Endpoint {
    host: String,
    port: u16,
    /// `host:port` for the Host header.
    authority: String,
    /// The path up to and including `/v3`, without a trailing slash.
    path: String,
    /// For an https `auth_url`: the TLS client and the name the certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl Endpoint {
    fn parse(auth_url: &str, cafile: Option<&Path>) -> Result<Endpoint, String> {
        let url = url::Url::parse(auth_url)
            .map_err(|e| format!("[auth.keystone] auth_url '{auth_url}': {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("[auth.keystone] auth_url '{auth_url}' has no host"))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = match url.scheme() {
            "http" => None,
            "https" => {
                let name = ServerName::try_from(bare.clone())
                    .map_err(|e| format!("[auth.keystone] auth_url '{auth_url}': {e}"))?;
                Some((tls_connector(cafile)?, name))
            }
            other => {
                return Err(format!(
                    "[auth.keystone] auth_url '{auth_url}': http or https, not {other}"
                ));
            }
        };
        Ok(Endpoint {
            authority: format!("{host}:{port}"),
            host: bare,
            port,
            path: url.path().trim_end_matches('/').to_string(),
            tls,
        })
    }
}

/// The system's CA bundle (Debian's), used when no `cafile` is configured.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS client (rustls with ring, the graph's one provider) trusting the
/// CAs of `cafile` (PEM), or of the system bundle.
fn tls_connector(cafile: Option<&Path>) -> Result<tokio_rustls::TlsConnector, String> {
    let path = cafile.unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
    let err = |e: String| format!("[auth.keystone] cafile {}: {e}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// How long until an ISO 8601 instant (`2026-12-06T15:08:10.000000Z`);
/// None if it cannot be read or has passed.
fn remaining(expires_at: &str) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(expires_at).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// Keystone's token document (`{"token": {...}}`) as a [`Caller`], with the
/// time the token has left.
pub fn caller_from_token(body: &[u8]) -> Validated {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        AuthError::from(KeystoneError::Malformed {
            what: "token validation",
            reason: e.to_string(),
        })
    })?;
    let t = &doc["token"];
    if !t.is_object() {
        return Err(KeystoneError::Malformed {
            what: "token validation",
            reason: "no token".into(),
        }
        .into());
    }
    let s = |v: &Value| v.as_str().map(str::to_string);
    let expires_in = match t["expires_at"].as_str() {
        Some(e) => Some(remaining(e).ok_or_else(|| AuthError::Invalid("token expired".into()))?),
        None => None,
    };
    let caller = Caller {
        user_id: s(&t["user"]["id"]),
        user_name: s(&t["user"]["name"]),
        user_domain_id: s(&t["user"]["domain"]["id"]),
        project_id: s(&t["project"]["id"]),
        project_name: s(&t["project"]["name"]),
        project_domain_id: s(&t["project"]["domain"]["id"]),
        domain_id: s(&t["domain"]["id"]),
        system_scope: t["system"]
            .get("all")
            .and_then(Value::as_bool)
            .filter(|&all| all)
            .map(|_| "all".to_string()),
        roles: t["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .map(str::to_ascii_lowercase)
            .collect(),
        // As keystonemiddleware: a token that does not say is of the admin project.
        is_admin_project: t["is_admin_project"].as_bool().unwrap_or(true),
        audit_id: t["audit_ids"][0].as_str().map(str::to_string),
    };
    Ok((caller, expires_in))
}

impl Authenticator for Arc<Keystone> {
    fn mode(&self) -> AuthMode {
        AuthMode::Keystone
    }

    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> AuthFuture<'a> {
        Box::pin(async move {
            let token = headers
                .get("x-auth-token")
                .or_else(|| headers.get("x-storage-token"))
                .ok_or(AuthError::Missing)?;
            let token = token
                .to_str()
                .map_err(|_| AuthError::Invalid("a token that is not ASCII".into()))?
                .trim();
            if token.is_empty() {
                return Err(AuthError::Missing);
            }
            self.validate(token).await
        })
    }

    fn identity_uri(&self, _base_url: &str) -> Option<String> {
        Some(
            self.config
                .www_authenticate_uri
                .clone()
                .unwrap_or_else(|| self.config.auth_url.clone()),
        )
    }
}

/// A token's cache key: its BLAKE2b-256 digest (the token itself is not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn of(token: &str) -> TokenKey {
        TokenKey(Blake2b::<U32>::digest(token.as_bytes()).into())
    }
}

/// Validated and refused tokens, each until a deadline, at most `capacity`
/// of them. When full, expired entries go first, then those that expire
/// soonest (so refused tokens, kept briefly, make room before valid ones).
pub struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenKey, (Outcome, Instant)>>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &TokenKey, now: Instant) -> Option<Outcome> {
        let mut entries = self.entries.lock().unwrap();
        match entries.get(key) {
            Some((outcome, until)) if now < *until => Some(outcome.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: TokenKey, outcome: Outcome, until: Instant, now: Instant) {
        if until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, u)| now < *u);
            while entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, u))| *u)
                    .map(|(k, _)| *k)
                    .expect("a full cache has an entry");
                entries.remove(&soonest);
            }
        }
        entries.insert(key, (outcome, until));
    }
}
