//! The `keystone` authenticator against a tiny Keystone stand-in served on a
//! real loopback socket: only the two calls keystonemiddleware makes
//! (`POST /v3/auth/tokens` for the service user, `GET /v3/auth/tokens` with
//! `X-Subject-Token`), counting what it is asked. The real Keystone is
//! exercised by tests/e2e/test_identity_keystone.py.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use statera_identity::keystone::{Keystone, KeystoneConfig};
use statera_identity::{AuthError, Authenticator};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// A user token's project, roles and seconds left.
type TokenInfo = (String, Vec<String>, i64);

#[derive(Default)]
struct FakeKeystone {
    /// Valid user tokens: token → (project id, roles, seconds left).
    tokens: Mutex<HashMap<String, TokenInfo>>,
    /// The service token it accepts now.
    service_token: Mutex<String>,
    service_auths: AtomicUsize,
    validations: AtomicUsize,
    /// Milliseconds every validation waits before answering.
    delay_ms: AtomicU64,
    /// Answer 500 to everything.
    broken: std::sync::atomic::AtomicBool,
    /// Seconds a service token lives (3600 when 0).
    service_ttl: std::sync::atomic::AtomicI64,
}

impl FakeKeystone {
    fn add(&self, token: &str, project: &str, roles: &[&str], seconds_left: i64) {
        self.tokens.lock().unwrap().insert(
            token.into(),
            (
                project.into(),
                roles.iter().map(|r| r.to_string()).collect(),
                seconds_left,
            ),
        );
    }

    fn revoke(&self, token: &str) {
        self.tokens.lock().unwrap().remove(token);
    }

    fn validations(&self) -> usize {
        self.validations.load(Ordering::SeqCst)
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, headers: &[(&str, String)], body: String| {
            let mut r = Response::builder().status(status);
            for (k, v) in headers {
                r = r.header(*k, v);
            }
            r.body(Full::new(Bytes::from(body))).unwrap()
        };
        if self.broken.load(Ordering::SeqCst) {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, &[], "{}".into());
        }
        let expires = |secs: i64| {
            (chrono::Utc::now() + chrono::Duration::seconds(secs))
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        };
        let (parts, body) = req.into_parts();
        assert!(
            parts.uri.path() == "/identity/v3/auth/tokens",
            "{}",
            parts.uri
        );
        let h = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        match parts.method.as_str() {
            "POST" => {
                let body = body.collect().await.unwrap().to_bytes();
                let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let user = &doc["auth"]["identity"]["password"]["user"];
                if user["name"] != "statera" || user["password"] != "svc-pw" {
                    return reply(StatusCode::UNAUTHORIZED, &[], "{}".into());
                }
                assert_eq!(doc["auth"]["scope"]["project"]["name"], "service");
                let n = self.service_auths.fetch_add(1, Ordering::SeqCst) + 1;
                let token = format!("svc-{n}");
                *self.service_token.lock().unwrap() = token.clone();
                let ttl = match self.service_ttl.load(Ordering::SeqCst) {
                    0 => 3600,
                    t => t,
                };
                let body = serde_json::json!({"token": {"expires_at": expires(ttl)}});
                reply(
                    StatusCode::CREATED,
                    &[("x-subject-token", token)],
                    body.to_string(),
                )
            }
            "GET" => {
                self.validations.fetch_add(1, Ordering::SeqCst);
                let delay = self.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if h("x-auth-token") != *self.service_token.lock().unwrap() {
                    return reply(StatusCode::UNAUTHORIZED, &[], "{}".into());
                }
                let subject = h("x-subject-token");
                let found = self.tokens.lock().unwrap().get(&subject).cloned();
                match found {
                    Some((project, roles, left)) if left > 0 => {
                        let roles: Vec<_> = roles
                            .iter()
                            .map(|r| serde_json::json!({"id": r, "name": r}))
                            .collect();
                        let body = serde_json::json!({"token": {
                            "user": {"id": "u1", "name": "alice", "domain": {"id": "default"}},
                            "project": {"id": project, "name": "demo", "domain": {"id": "default"}},
                            "roles": roles,
                            "audit_ids": ["audit-1"],
                            "is_admin_project": false,
                            "expires_at": expires(left),
                        }});
                        reply(StatusCode::OK, &[], body.to_string())
                    }
                    _ => reply(StatusCode::NOT_FOUND, &[], "{}".into()),
                }
            }
            m => panic!("unexpected {m}"),
        }
    }
}

struct Served {
    fake: Arc<FakeKeystone>,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(fake: Arc<FakeKeystone>, port: u16) -> Served {
    serve_with(fake, port, None).await
}

/// The test certificate for 127.0.0.1 and the CA that signed it (made once
/// with the openssl CLI, in tests/fixtures).
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(fixture("keystone-cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("keystone-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve_with(
    fake: Arc<FakeKeystone>,
    port: u16,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Served {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let f = fake.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            let tls = tls.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, std::convert::Infallible>(f.answer(req).await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                .await;
                        }
                    }
                }
            });
        }
    });
    Served { fake, port, task }
}

fn config(port: u16, cache_seconds: u64) -> KeystoneConfig {
    KeystoneConfig {
        auth_url: format!("http://127.0.0.1:{port}/identity"),
        username: "statera".into(),
        password: "svc-pw".into(),
        user_domain_name: "Default".into(),
        project_name: "service".into(),
        project_domain_name: "Default".into(),
        cache_seconds,
        timeout: Duration::from_millis(1000),
        www_authenticate_uri: None,
        cache_entries: 100,
        cafile: None,
    }
}

async fn setup(cache_seconds: u64) -> (Served, Arc<Keystone>) {
    let served = serve(Arc::new(FakeKeystone::default()), 0).await;
    let k = Keystone::new(config(served.port, cache_seconds)).unwrap();
    (served, k)
}

fn with_token(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-auth-token", token.parse().unwrap());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_becomes_a_caller_and_is_asked_about_once() {
    let (s, k) = setup(300).await;
    s.fake
        .add("tok-a", "p1", &["Member", "load-balancer_observer"], 3600);
    let c = k.authenticate(&with_token("tok-a")).await.unwrap();
    assert_eq!(c.project_id.as_deref(), Some("p1"));
    assert_eq!(c.user_id.as_deref(), Some("u1"));
    assert_eq!(c.user_domain_id.as_deref(), Some("default"));
    assert_eq!(c.roles, vec!["member", "load-balancer_observer"]);
    assert_eq!(c.audit_id.as_deref(), Some("audit-1"));
    assert!(!c.is_admin_project);
    for _ in 0..10 {
        k.authenticate(&with_token("tok-a")).await.unwrap();
    }
    assert_eq!(s.fake.validations(), 1, "cached after the first");
    assert_eq!(s.fake.service_auths.load(Ordering::SeqCst), 1);
    // `/v3` was added to the configured auth_url; the 401 points there.
    assert_eq!(
        k.identity_uri("http://x").as_deref(),
        Some(format!("http://127.0.0.1:{}/identity/v3", s.port).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_once_the_cache_time_has_passed() {
    let (s, k) = setup(1).await;
    s.fake.add("tok-r", "p1", &["member"], 3600);
    k.validate("tok-r").await.unwrap();
    s.fake.revoke("tok-r");
    // Within cache_seconds the cached answer stands (keystonemiddleware's trade-off)...
    k.validate("tok-r").await.unwrap();
    assert_eq!(s.fake.validations(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // ...after it, Keystone is asked again and says no.
    let e = k.validate("tok-r").await.unwrap_err();
    assert!(matches!(e, AuthError::Invalid(_)), "{e:?}");
    assert_eq!(s.fake.validations(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_not_trusted_past_its_own_expiry() {
    let (s, k) = setup(300).await;
    s.fake.add("tok-e", "p1", &["member"], 2);
    k.validate("tok-e").await.unwrap();
    k.validate("tok-e").await.unwrap();
    assert_eq!(s.fake.validations(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    s.fake.revoke("tok-e"); // Keystone no longer knows an expired token
    assert!(k.validate("tok-e").await.is_err());
    assert_eq!(s.fake.validations(), 2, "asked again once it expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_seconds_zero_asks_every_time() {
    let (s, k) = setup(0).await;
    s.fake.add("tok-z", "p1", &["member"], 3600);
    for _ in 0..3 {
        k.validate("tok-z").await.unwrap();
        assert!(k.validate("bad").await.is_err());
    }
    assert_eq!(s.fake.validations(), 6);
    assert_eq!(k.cached_tokens(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_bad_token_asks_keystone_once() {
    let (s, k) = setup(300).await;
    for _ in 0..50 {
        let e = k.authenticate(&with_token("garbage")).await.unwrap_err();
        assert_eq!(e.status(), 401);
    }
    assert_eq!(s.fake.validations(), 1, "the refusal is cached");
    // Tokens that cannot be tokens are refused without asking.
    let long = "x".repeat(5000);
    assert!(matches!(
        k.validate(&long).await,
        Err(AuthError::Invalid(_))
    ));
    let mut h = HeaderMap::new();
    h.insert(
        "x-auth-token",
        http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
    );
    assert_eq!(k.authenticate(&h).await.unwrap_err().status(), 401);
    assert!(matches!(
        k.authenticate(&HeaderMap::new()).await,
        Err(AuthError::Missing)
    ));
    assert_eq!(s.fake.validations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_holds_at_most_its_bound() {
    let served = serve(Arc::new(FakeKeystone::default()), 0).await;
    let mut cfg = config(served.port, 300);
    cfg.cache_entries = 3;
    let k = Keystone::new(cfg).unwrap();
    for i in 0..10 {
        served.fake.add(&format!("t{i}"), "p1", &["member"], 3600);
        k.validate(&format!("t{i}")).await.unwrap();
        assert!(k.cached_tokens() <= 3, "{} cached", k.cached_tokens());
    }
    assert_eq!(k.cached_tokens(), 3);
    // The latest stays cached.
    k.validate("t9").await.unwrap();
    assert_eq!(served.fake.validations(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_validations_of_one_token_share_one_request() {
    let (s, k) = setup(300).await;
    s.fake.add("tok-c", "p1", &["member"], 3600);
    s.fake.delay_ms.store(300, Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let k = k.clone();
        tasks.spawn(async move { k.validate("tok-c").await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(s.fake.validations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_down_slow_or_failing_is_unavailable_and_not_cached() {
    let (s, k) = setup(300).await;
    s.fake.add("tok-d", "p1", &["member"], 3600);
    s.fake.broken.store(true, Ordering::SeqCst);
    let e = k.validate("tok-d").await.unwrap_err();
    assert!(
        matches!(e, AuthError::Unavailable(_)) && e.retry_safe(),
        "{e:?}"
    );
    assert_eq!(e.status(), 503);
    s.fake.broken.store(false, Ordering::SeqCst);
    // Slower than the timeout.
    s.fake.delay_ms.store(1500, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let e = k.validate("tok-d").await.unwrap_err();
    assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(1400));
    s.fake.delay_ms.store(0, Ordering::SeqCst);
    // Stopped: connection refused.
    let port = s.port;
    let fake = s.fake.clone();
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = k.validate("tok-d").await.unwrap_err();
    assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
    // Back: the same token works (no failure was cached).
    let _s = serve(fake, port).await;
    k.validate("tok-d").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_service_token_is_replaced_and_wrong_credentials_are_unavailable() {
    let (s, k) = setup(0).await;
    s.fake.add("tok-s", "p1", &["member"], 3600);
    k.validate("tok-s").await.unwrap();
    // Keystone forgets the service token (restart, revocation).
    *s.fake.service_token.lock().unwrap() = "rotated".into();
    k.validate("tok-s").await.unwrap();
    assert_eq!(s.fake.service_auths.load(Ordering::SeqCst), 2);

    let mut cfg = config(s.port, 0);
    cfg.password = "wrong".into();
    let k = Keystone::new(cfg).unwrap();
    let e = k.validate("tok-s").await.unwrap_err();
    assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_keystone_trusts_the_configured_ca_only() {
    let served = serve_with(Arc::new(FakeKeystone::default()), 0, Some(tls_acceptor())).await;
    served.fake.add("tok-t", "p1", &["member"], 3600);
    let mut cfg = config(served.port, 300);
    cfg.auth_url = format!("https://127.0.0.1:{}/identity/v3", served.port);
    cfg.cafile = Some(fixture("ca.pem"));
    let k = Keystone::new(cfg.clone()).unwrap();
    let c = k.validate("tok-t").await.unwrap();
    assert_eq!(c.project_id.as_deref(), Some("p1"));
    // Another CA (the server's own certificate is not a CA): the handshake
    // fails, which is Keystone unavailable (503), not the caller's fault.
    cfg.cafile = Some(fixture("keystone-cert.pem"));
    let k = Keystone::new(cfg.clone()).unwrap();
    let e = k.validate("tok-t").await.unwrap_err();
    assert!(
        matches!(&e, AuthError::Unavailable(m) if m.contains("TLS")),
        "{e:?}"
    );
    // Plain http to the TLS port is no answer either.
    cfg.auth_url = format!("http://127.0.0.1:{}/identity/v3", served.port);
    let k = Keystone::new(cfg.clone()).unwrap();
    assert!(matches!(
        k.validate("tok-t").await,
        Err(AuthError::Unavailable(_))
    ));
    // A CA file that is not there stops the start.
    cfg.auth_url = format!("https://127.0.0.1:{}/v3", served.port);
    cfg.cafile = Some(fixture("missing.pem"));
    let e = Keystone::new(cfg).err().unwrap();
    assert!(e.contains("cafile") && e.contains("missing.pem"), "{e}");
}

/// The issue's goal: a cached validation costs microseconds, not a round trip.
/// Prints both figures (`cargo test -p statera-identity --release --test
/// keystone_cache cached -- --nocapture`); the bound is loose for debug builds
/// on a busy machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_validation_costs_microseconds_not_a_round_trip() {
    let (s, cached) = setup(300).await;
    s.fake.add("tok-b", "p1", &["member"], 3600);
    let headers = with_token("tok-b");
    cached.authenticate(&headers).await.unwrap();
    let n = 20_000u32;
    let started = std::time::Instant::now();
    for _ in 0..n {
        cached.authenticate(&headers).await.unwrap();
    }
    let per_cached = started.elapsed() / n;
    let uncached = Keystone::new(config(s.port, 0)).unwrap();
    let m = 50u32;
    let started = std::time::Instant::now();
    for _ in 0..m {
        uncached.authenticate(&headers).await.unwrap();
    }
    let per_round_trip = started.elapsed() / m;
    println!("cached validation: {per_cached:?}; asking Keystone: {per_round_trip:?}");
    assert!(per_cached < Duration::from_micros(100), "{per_cached:?}");
    assert!(
        per_cached * 5 < per_round_trip,
        "{per_cached:?} vs {per_round_trip:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_token_is_renewed_before_it_expires() {
    let (s, k) = setup(0).await;
    s.fake.add("tok-x", "p1", &["member"], 3600);
    // Renewed 60 s before expiry: a 61 s token is due for renewal after ~1 s.
    s.fake.service_ttl.store(61, Ordering::SeqCst);
    k.validate("tok-x").await.unwrap();
    k.validate("tok-x").await.unwrap();
    assert_eq!(s.fake.service_auths.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.fake.service_ttl.store(0, Ordering::SeqCst);
    k.validate("tok-x").await.unwrap();
    assert_eq!(s.fake.service_auths.load(Ordering::SeqCst), 2);
    k.validate("tok-x").await.unwrap();
    assert_eq!(s.fake.service_auths.load(Ordering::SeqCst), 2);
}
