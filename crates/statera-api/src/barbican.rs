//! The key manager's wire: Barbican's v1 API under `/key-manager` (the
//! catalog's `key-manager` endpoint), as python-barbicanclient and Octavia
//! speak it — version discovery with microversions 1.0–1.2, secrets (one-step
//! and two-step payloads, `text/plain` and `application/octet-stream`
//! payloads by `Accept`), containers, read ACLs and consumers, with
//! Barbican's `{code, title, description}` errors and messages. Everything
//! decided about an object is `statera_service::keymanager`'s.

use crate::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, Style};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use statera_model::Timestamp;
use statera_model::keymanager::{Acl, ContainerConsumer, Secret, SecretConsumer, SecretContainer};
use statera_service::keymanager::{
    self as km, AclChange, Guarded, MAX_SECRET_BYTES, NewContainer, NewSecret, Payload,
    SecretFilter,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The catalog endpoint's path (unversioned: the client appends `/v1`).
pub const PREFIX: &str = "/key-manager";
/// Barbican's `max_allowed_request_size_in_bytes`.
const MAX_REQUEST_BYTES: usize = 25_000;
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// Microversions served: 1.0 (none asked), 1.1 (consumers), 1.2 (deleting a
/// secret with consumers needs `force`).
const MAX_MINOR: u8 = 2;

pub fn is_key_manager_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/key-manager/")
}

/// The discovery document needs no token (as Barbican's `/`).
pub fn needs_no_token(path: &str) -> bool {
    path == PREFIX || path == "/key-manager/"
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PREFIX, get(versions))
        .route("/key-manager/v1", get(version_v1))
        .route(
            "/key-manager/v1/secrets",
            get(list_secrets).post(create_secret),
        )
        .route(
            "/key-manager/v1/secrets/{id}",
            get(show_secret).put(put_payload).delete(delete_secret),
        )
        .route("/key-manager/v1/secrets/{id}/payload", get(get_payload))
        .route(
            "/key-manager/v1/secrets/{id}/acl",
            get(show_acl::<Secret>)
                .put(put_acl::<Secret>)
                .patch(patch_acl::<Secret>)
                .delete(delete_acl::<Secret>),
        )
        .route(
            "/key-manager/v1/secrets/{id}/consumers",
            get(list_secret_consumers)
                .post(add_secret_consumer)
                .delete(remove_secret_consumer),
        )
        .route(
            "/key-manager/v1/containers",
            get(list_containers).post(create_container),
        )
        .route(
            "/key-manager/v1/containers/{id}",
            get(show_container).delete(delete_container),
        )
        .route(
            "/key-manager/v1/containers/{id}/acl",
            get(show_acl::<SecretContainer>)
                .put(put_acl::<SecretContainer>)
                .patch(patch_acl::<SecretContainer>)
                .delete(delete_acl::<SecretContainer>),
        )
        .route(
            "/key-manager/v1/containers/{id}/consumers",
            get(list_container_consumers)
                .post(add_container_consumer)
                .delete(remove_container_consumer),
        )
        .layer(middleware::from_fn(microversion))
}

// ---------------------------------------------------------------- errors, versions

/// An error in Barbican's shape.
pub struct Km(ApiError);

impl<E: Into<ApiError>> From<E> for Km {
    fn from(e: E) -> Km {
        Km(e.into())
    }
}

impl IntoResponse for Km {
    fn into_response(self) -> Response {
        self.0.in_style(Style::Barbican).into_response()
    }
}

type KmResult = Result<Response, Km>;

fn err(status: StatusCode, message: impl Into<String>) -> Km {
    Km(ApiError::new(status, message))
}

fn invalid(schema: &str, reason: impl std::fmt::Display, prop: &str) -> Km {
    err(
        StatusCode::BAD_REQUEST,
        format!(
            "Provided object does not match schema '{schema}': {reason}. Invalid property: '{prop}'"
        ),
    )
}

/// The microversion a request asked for (`OpenStack-API-Version:
/// key-manager 1.x`; none is 1.0), kept in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Minor(u8);

fn asked_version(headers: &HeaderMap) -> Result<Minor, Km> {
    let Some(v) = headers.get("openstack-api-version") else {
        return Ok(Minor(0));
    };
    let v = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
    // Several services may be named, comma-separated; only ours counts.
    let ours = v
        .split(',')
        .map(str::trim)
        .find_map(|s| s.strip_prefix("key-manager "))
        .map(str::trim);
    let Some(ours) = ours else {
        if v.split(',').any(|s| s.trim() == "key-manager") {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "Invalid microversion header: key-manager names no version",
            ));
        }
        return Ok(Minor(0));
    };
    if ours == "latest" {
        return Ok(Minor(MAX_MINOR));
    }
    let parsed = ours
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    match parsed {
        Some((1, m)) if m <= u64::from(MAX_MINOR) => Ok(Minor(m as u8)),
        Some(_) => Err(err(
            StatusCode::NOT_ACCEPTABLE,
            format!("Invalid microversion: key-manager {ours}"),
        )),
        None => Err(err(
            StatusCode::BAD_REQUEST,
            format!("Invalid microversion header: key-manager {ours}"),
        )),
    }
}

async fn microversion(mut req: Request, next: Next) -> Response {
    let minor = match asked_version(req.headers()) {
        Ok(m) => m,
        Err(e) => return with_version(e.into_response(), Minor(0)),
    };
    req.extensions_mut().insert(minor);
    with_version(next.run(req).await, minor)
}

fn with_version(mut resp: Response, m: Minor) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("key-manager 1.{}", m.0)) {
        resp.headers_mut().insert("openstack-api-version", v);
    }
    resp.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("OpenStack-API-Version"),
    );
    resp
}

fn minor(headers_ext: &axum::http::Extensions) -> Minor {
    headers_ext.get::<Minor>().copied().unwrap_or(Minor(0))
}

/// `{base}/key-manager`
fn km_base(ctx_base: &str) -> String {
    format!("{ctx_base}{PREFIX}")
}

fn version_doc(base: &str, m: Minor) -> Value {
    let links = json!([
        {"rel": "self", "href": format!("{}/v1/", km_base(base))},
        {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}
    ]);
    if m.0 >= 1 {
        json!({"id": "v1", "status": "CURRENT", "min_version": "1.0",
               "max_version": format!("1.{MAX_MINOR}"), "links": links})
    } else {
        json!({"id": "v1", "status": "stable", "links": links,
               "media-types": [{"base": "application/json",
                                "type": "application/vnd.openstack.key-manager-v1+json"}]})
    }
}

async fn versions(State(state): State<AppState>, req: Request) -> Response {
    let m = minor(req.extensions());
    let base = crate::context::base_url(req.headers(), state.settings.trust_proxy_headers);
    let doc = version_doc(&base, m);
    let body = if m.0 >= 1 {
        json!({"versions": [doc]})
    } else {
        json!({"versions": {"values": [doc]}})
    };
    (StatusCode::MULTIPLE_CHOICES, Json(body)).into_response()
}

async fn version_v1(ctx: RequestContext, req: Request) -> Response {
    let m = minor(req.extensions());
    Json(json!({"version": version_doc(&ctx.base_url, m)})).into_response()
}

// ---------------------------------------------------------------- rendering

fn iso(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn secret_ref(base: &str, id: Uuid) -> String {
    format!("{}/v1/secrets/{id}", km_base(base))
}

fn container_ref(base: &str, id: Uuid) -> String {
    format!("{}/v1/containers/{id}", km_base(base))
}

/// A secret as Barbican renders it (exactly these keys: the client builds
/// its object from them and refuses others).
fn render_secret(base: &str, s: &Secret, m: Minor) -> Value {
    let mut o = json!({
        "created": iso(s.created_at),
        "updated": iso(s.updated_at),
        "status": "ACTIVE",
        "secret_ref": secret_ref(base, s.id),
        "name": s.name,
        "secret_type": s.secret_type,
        "expiration": s.expiration.map(iso),
        "algorithm": s.algorithm,
        "bit_length": s.bit_length,
        "mode": s.mode,
        "creator_id": s.creator_id,
    });
    if m.0 >= 1 {
        o["consumers"] = s
            .consumers
            .iter()
            .map(|c| {
                json!({"service": c.service, "resource_type": c.resource_type,
                       "resource_id": c.resource_id})
            })
            .collect();
    }
    if let (Some(ct), Some(_)) = (&s.content_type, &s.payload) {
        o["content_types"] = json!({"default": ct});
    }
    o
}

fn render_container(base: &str, c: &SecretContainer) -> Value {
    json!({
        "created": iso(c.created_at),
        "updated": iso(c.updated_at),
        "status": "ACTIVE",
        "name": c.name,
        "type": c.kind,
        "creator_id": c.creator_id,
        "container_ref": container_ref(base, c.id),
        "secret_refs": c.secret_refs.iter().map(|r| json!({
            "name": r.name, "secret_ref": secret_ref(base, r.secret_id)})).collect::<Vec<_>>(),
        "consumers": c.consumers.iter().map(|x| json!({"name": x.name, "URL": x.url}))
            .collect::<Vec<_>>(),
    })
}

fn render_acl(acl: &Acl) -> Value {
    match &acl.read {
        None => json!({"read": {"project-access": true}}),
        Some(r) => json!({"read": {
            "project-access": r.project_access,
            "users": r.users,
            "created": iso(r.created_at),
            "updated": iso(r.updated_at),
        }}),
    }
}

fn created(location: String, key: &str) -> Response {
    let mut resp = (StatusCode::CREATED, Json(json!({ key: location }))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A page of `items` as Barbican pages lists: `limit`/`offset`, `total`,
/// `next`/`previous` links carrying `extra` query parameters.
fn page(
    items: Vec<Value>,
    key: &str,
    url: &str,
    q: &BTreeMap<String, String>,
    extra: &[(&str, String)],
) -> Value {
    let offset = q
        .get("offset")
        .and_then(|o| o.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0) as usize;
    let limit = match q.get("limit").and_then(|l| l.parse::<i64>().ok()) {
        None | Some(0) => DEFAULT_LIMIT,
        Some(l) => l.clamp(1, MAX_LIMIT as i64) as usize,
    };
    let total = items.len();
    let shown: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let mut o = Map::new();
    o.insert(key.into(), Value::Array(shown));
    o.insert("total".into(), total.into());
    let link = |off: usize| {
        let mut s = format!("{url}?limit={limit}&offset={off}");
        for (k, v) in extra {
            s.push('&');
            s.push_str(k);
            s.push('=');
            s.push_str(&form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
        }
        s
    };
    if offset > 0 {
        o.insert("previous".into(), link(offset.saturating_sub(limit)).into());
    }
    if total > offset + limit {
        o.insert("next".into(), link(offset + limit).into());
    }
    Value::Object(o)
}

// ---------------------------------------------------------------- reading bodies

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Km> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if ct.as_deref() != Some("application/json") {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unexpected content type. Expected content types are: ['application/json']",
        ));
    }
    if body.len() > MAX_REQUEST_BYTES {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Provided information too large to process",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => {
            strip(&mut o);
            Ok(o)
        }
        _ => Err(err(StatusCode::BAD_REQUEST, "Malformed JSON")),
    }
}

/// Barbican strips every string of a JSON body.
fn strip(o: &mut Map<String, Value>) {
    for v in o.values_mut() {
        strip_value(v);
    }
}

fn strip_value(v: &mut Value) {
    match v {
        Value::String(s) => *s = s.trim().to_string(),
        Value::Array(a) => a.iter_mut().for_each(strip_value),
        Value::Object(o) => strip(o),
        _ => {}
    }
}

/// A string field (or null) of at most `max` characters.
fn opt_string(
    o: &Map<String, Value>,
    key: &str,
    max: usize,
    schema: &str,
) -> Result<Option<String>, Km> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(invalid(schema, format!("'{s}' is too long"), key)),
        Some(v) => Err(invalid(schema, format!("{v} is not of type 'string'"), key)),
    }
}

/// The supported payload content types, normalised (Barbican's list).
fn normalise_content_type(ct: &str) -> Option<&'static str> {
    let lower = ct.trim().to_ascii_lowercase();
    match lower.as_str() {
        "text/plain" | "text/plain;charset=utf-8" | "text/plain; charset=utf-8" => {
            Some("text/plain")
        }
        "application/octet-stream" => Some("application/octet-stream"),
        "application/pkcs8" => Some("application/pkcs8"),
        _ => None,
    }
}

fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.naive_utc());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

fn too_large() -> Km {
    err(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Provided information too large to process",
    )
}

fn read_new_secret(o: &Map<String, Value>) -> Result<NewSecret, Km> {
    const S: &str = "Secret";
    let name = opt_string(o, "name", 255, S)?;
    let algorithm = opt_string(o, "algorithm", 255, S)?;
    let mode = opt_string(o, "mode", 255, S)?;
    let bit_length = match o.get("bit_length") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(b @ 1..=32767) => Some(b as u32),
            _ => {
                return Err(invalid(
                    S,
                    format!("{n} is not between 1 and 32767"),
                    "bit_length",
                ));
            }
        },
        Some(v) => {
            return Err(invalid(
                S,
                format!("{v} is not of type 'integer'"),
                "bit_length",
            ));
        }
    };
    let expiration = match opt_string(o, "expiration", 255, S)? {
        None => None,
        Some(e) if e.is_empty() => None,
        Some(e) => Some(
            parse_time(&e)
                .ok_or_else(|| invalid(S, "Invalid date for 'expiration'", "expiration"))?,
        ),
    };
    let secret_type = match opt_string(o, "secret_type", 255, S)? {
        None => "opaque".to_string(),
        Some(t) if km::SECRET_TYPES.contains(&t.as_str()) => t,
        Some(t) => {
            return Err(invalid(
                S,
                format!("'{t}' is not one of {:?}", km::SECRET_TYPES),
                "secret_type",
            ));
        }
    };
    let payload = match o.get("payload") {
        None => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(v) => {
            return Err(invalid(
                S,
                format!("{v} is not of type 'string'"),
                "payload",
            ));
        }
    };
    let content_type = opt_string(o, "payload_content_type", 255, S)?;
    let encoding = opt_string(o, "payload_content_encoding", 255, S)?;
    if let Some(e) = &encoding
        && e != "base64"
    {
        return Err(invalid(
            S,
            format!("'{e}' is not one of ['base64']"),
            "payload_content_encoding",
        ));
    }
    let payload = match (payload, content_type) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                S,
                "payload must be provided when payload_content_type is specified",
                "payload",
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                S,
                "If 'payload' is supplied, 'payload_content_type' must also be supplied.",
                "payload_content_type",
            ));
        }
        (Some(p), Some(ct)) => {
            if p.is_empty() {
                return Err(invalid(
                    S,
                    "If 'payload' specified, must be non empty",
                    "payload",
                ));
            }
            if p.len() > MAX_SECRET_BYTES {
                return Err(too_large());
            }
            let Some(ct) = normalise_content_type(&ct) else {
                return Err(invalid(
                    S,
                    "payload_content_type is not one of ['text/plain', 'text/plain;charset=utf-8', 'text/plain; charset=utf-8', 'application/octet-stream', 'application/pkcs8']",
                    "payload_content_type",
                ));
            };
            let bytes = match (ct, encoding.as_deref()) {
                ("text/plain", None) => p.into_bytes(),
                ("text/plain", Some(_)) => {
                    return Err(invalid(
                        S,
                        "payload_content_encoding is not one of None",
                        "payload_content_encoding",
                    ));
                }
                (_, Some(_)) => B64.decode(p.as_bytes()).map_err(|_| {
                    invalid(S, "Invalid payload for payload_content_encoding", "payload")
                })?,
                (_, None) => {
                    return Err(invalid(
                        S,
                        "payload_content_encoding is not one of ['base64', 'binary']",
                        "payload_content_encoding",
                    ));
                }
            };
            Some(Payload {
                bytes,
                content_type: ct.to_string(),
            })
        }
    };
    Ok(NewSecret {
        name,
        secret_type,
        algorithm,
        bit_length,
        mode,
        expiration,
        payload,
    })
}

/// A path id: one that is not a UUID names nothing.
fn path_uuid(raw: &str, what: &str) -> Result<Uuid, Km> {
    Uuid::parse_str(raw)
        .ok()
        .filter(|u| u.hyphenated().to_string() == raw)
        .ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                format!("Not Found. Provided {what} id is invalid."),
            )
        })
}

/// The secret a reference names: the last segment of a URL whose path ends
/// in `secrets/<uuid>`.
fn secret_of_ref(r: &str) -> Option<Uuid> {
    let path = url::Url::parse(r)
        .ok()?
        .path()
        .trim_end_matches('/')
        .to_string();
    let mut segs = path.rsplit('/');
    let id = segs.next()?;
    (segs.next()? == "secrets").then_some(())?;
    Uuid::parse_str(id).ok()
}

// ---------------------------------------------------------------- secrets

async fn create_secret(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> KmResult {
    ctx.service
        .allowed_on(km::SECRETS_POST, &Default::default())
        .then_some(())
        .ok_or_else(|| Km::from(km::not_allowed("Secret creation")))?;
    let o = json_body(&headers, &body)?;
    let new = read_new_secret(&o)?;
    let keys = state.key_manager.clone();
    let secret = state
        .store
        .write(|txn| km::create_secret(&ctx.service, &keys, txn, new))
        .await?;
    Ok(created(secret_ref(&ctx.base_url, secret.id), "secret_ref"))
}

/// `limit`, `offset` and the filters of a secret list.
fn secret_filter(q: &BTreeMap<String, String>) -> Result<SecretFilter, Km> {
    let bad = || {
        err(
            StatusCode::BAD_REQUEST,
            "URI provided invalid query string parameters.",
        )
    };
    let bounds = |key: &str| -> Result<Vec<(std::cmp::Ordering, bool, Timestamp)>, Km> {
        let Some(v) = q.get(key) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            use std::cmp::Ordering::*;
            let (ord, eq, t) = if let Some(t) = part.strip_prefix("gte:") {
                (Greater, true, t)
            } else if let Some(t) = part.strip_prefix("gt:") {
                (Greater, false, t)
            } else if let Some(t) = part.strip_prefix("lte:") {
                (Less, true, t)
            } else if let Some(t) = part.strip_prefix("lt:") {
                (Less, false, t)
            } else {
                (Equal, true, part)
            };
            out.push((ord, eq, parse_time(t).ok_or_else(bad)?));
        }
        Ok(out)
    };
    Ok(SecretFilter {
        name: q.get("name").cloned(),
        algorithm: q.get("alg").cloned(),
        mode: q.get("mode").cloned(),
        bits: q.get("bits").and_then(|b| b.parse().ok()),
        secret_type: q.get("secret_type").cloned(),
        acl_only: q
            .get("acl_only")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        created: bounds("created")?,
        updated: bounds("updated")?,
        expiration: bounds("expiration")?,
    })
}

/// Barbican's `sort`: `key[:asc|desc]`, comma-separated, no key twice.
fn sort_secrets(list: &mut [std::sync::Arc<Secret>], sort: Option<&String>) -> Result<(), Km> {
    let Some(sort) = sort else {
        return Ok(());
    };
    let bad = || {
        err(
            StatusCode::BAD_REQUEST,
            "URI provided invalid query string parameters.",
        )
    };
    let mut keys: Vec<(String, bool)> = Vec::new();
    for part in sort.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, dir) = part.split_once(':').unwrap_or((part, "asc"));
        let desc = match dir {
            "asc" => false,
            "desc" => true,
            _ => return Err(bad()),
        };
        const KEYS: &[&str] = &[
            "algorithm",
            "bit_length",
            "created",
            "expiration",
            "mode",
            "name",
            "secret_type",
            "status",
            "updated",
        ];
        if !KEYS.contains(&k) || keys.iter().any(|(x, _)| x == k) {
            return Err(bad());
        }
        keys.push((k.to_string(), desc));
    }
    list.sort_by(|a, b| {
        for (k, desc) in &keys {
            let o = match k.as_str() {
                "algorithm" => a.algorithm.cmp(&b.algorithm),
                "bit_length" => a.bit_length.cmp(&b.bit_length),
                "created" => a.created_at.cmp(&b.created_at),
                "expiration" => a.expiration.cmp(&b.expiration),
                "mode" => a.mode.cmp(&b.mode),
                "name" => a.name.cmp(&b.name),
                "secret_type" => a.secret_type.cmp(&b.secret_type),
                "updated" => a.updated_at.cmp(&b.updated_at),
                _ => std::cmp::Ordering::Equal,
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

async fn list_secrets(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> KmResult {
    let m = minor(req.extensions());
    let f = secret_filter(&q)?;
    let snap = state.store.snapshot();
    let mut list = km::list_secrets(&ctx.service, snap.as_ref(), &f)?;
    sort_secrets(&mut list, q.get("sort"))?;
    let items = list
        .iter()
        .map(|s| render_secret(&ctx.base_url, s, m))
        .collect();
    let extra: Vec<(&str, String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "limit" && k.as_str() != "offset")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let url = format!("{}/v1/secrets", km_base(&ctx.base_url));
    Ok(Json(page(items, "secrets", &url, &q, &extra)).into_response())
}

/// Whether `Accept` asks for the metadata (absent, JSON or anything).
fn wants_metadata(headers: &HeaderMap) -> bool {
    match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(a) => {
            let a = a.trim();
            a.is_empty() || a == "application/json" || a == "*/*"
        }
    }
}

async fn show_secret(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    req: Request,
) -> KmResult {
    let id = path_uuid(&id, "secret")?;
    if !wants_metadata(req.headers()) {
        return payload_response(&state, &ctx, id, req.headers());
    }
    let m = minor(req.extensions());
    let snap = state.store.snapshot();
    let s = km::show_secret(&ctx.service, snap.as_ref(), id)?;
    Ok(Json(render_secret(&ctx.base_url, &s, m)).into_response())
}

async fn get_payload(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> KmResult {
    let id = path_uuid(&id, "secret")?;
    payload_response(&state, &ctx, id, &headers)
}

fn payload_response(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    headers: &HeaderMap,
) -> KmResult {
    let snap = state.store.snapshot();
    let (bytes, stored) = km::secret_payload(&ctx.service, &state.key_manager, snap.as_ref(), id)?;
    let wrong = || {
        err(
            StatusCode::NOT_ACCEPTABLE,
            "Secret payload retrieval issue seen - Wrong payload content-type.",
        )
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let (sent_as, kind) = match accept {
        "" => (
            "application/octet-stream".to_string(),
            "application/octet-stream",
        ),
        "*/*" => (
            stored.clone(),
            normalise_content_type(&stored).unwrap_or("application/octet-stream"),
        ),
        a => (a.to_string(), normalise_content_type(a).ok_or_else(wrong)?),
    };
    if kind == "text/plain" && std::str::from_utf8(&bytes).is_err() {
        return Err(wrong());
    }
    let mut resp = (StatusCode::OK, bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&sent_as) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    // A secret in clear: no cache keeps it.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn put_payload(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> KmResult {
    const ISSUE: &str = "Secret update issue seen - ";
    let id = path_uuid(&id, "secret")?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let content_type = match ct.as_deref() {
        Some("text/plain") => "text/plain",
        Some("application/octet-stream") => "application/octet-stream",
        Some("application/json") | None => {
            return Err(err(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type of '{}' is not supported for PUT.",
                    ct.as_deref().unwrap_or("None")
                ),
            ));
        }
        Some(_) => {
            return Err(err(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unexpected content type. Expected content types are: ['application/octet-stream', 'text/plain']",
            ));
        }
    };
    if body.is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{ISSUE}No data supplied to process."),
        ));
    }
    if body.len() > MAX_SECRET_BYTES {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{ISSUE}Provided information too large to process."),
        ));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let bytes = match (content_type, encoding.as_deref()) {
        ("text/plain", _) => {
            if std::str::from_utf8(&body).is_err() {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("{ISSUE}A text/plain payload must be UTF-8."),
                ));
            }
            body.to_vec()
        }
        (_, None) => body.to_vec(),
        (_, Some("base64")) => B64.decode(body.trim_ascii()).map_err(|_| {
            err(
                StatusCode::BAD_REQUEST,
                format!("{ISSUE}Invalid payload for payload_content_encoding."),
            )
        })?,
        (_, Some(_)) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!(
                    "{ISSUE}Text-based binary secret payloads must specify a content-encoding of 'base64'."
                ),
            ));
        }
    };
    let payload = Payload {
        bytes,
        content_type: content_type.to_string(),
    };
    let keys = state.key_manager.clone();
    state
        .store
        .write(|txn| km::put_payload(&ctx.service, &keys, txn, id, payload))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_secret(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> KmResult {
    let id = path_uuid(&id, "secret")?;
    let force = match q.get("force").map(|f| f.to_ascii_lowercase()) {
        None => false,
        Some(f) if ["1", "true", "yes", "on", "y", "t"].contains(&f.as_str()) => true,
        Some(f) if ["0", "false", "no", "off", "n", "f"].contains(&f.as_str()) => false,
        Some(_) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "URI provided invalid query string parameters.",
            ));
        }
    };
    // Before 1.2 a client checks consumers itself; the server does not.
    let force = force || minor(req.extensions()).0 < 2;
    state
        .store
        .write(|txn| km::delete_secret(&ctx.service, txn, id, force))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------- containers

async fn create_container(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> KmResult {
    const C: &str = "Container";
    ctx.service
        .allowed_on(km::CONTAINERS_POST, &Default::default())
        .then_some(())
        .ok_or_else(|| Km::from(km::not_allowed("Container creation")))?;
    let o = json_body(&headers, &body)?;
    let name = opt_string(&o, "name", 255, C)?;
    let kind = match o.get("type") {
        None => return Err(invalid(C, "'type' is a required property", "type")),
        Some(Value::String(t)) if km::CONTAINER_TYPES.contains(&t.as_str()) => t.clone(),
        Some(t) => {
            return Err(invalid(
                C,
                format!("{t} is not one of {:?}", km::CONTAINER_TYPES),
                "type",
            ));
        }
    };
    let mut refs = Vec::new();
    match o.get("secret_refs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > 16 {
                return Err(invalid(
                    C,
                    "a container holds at most 16 secret references",
                    "secret_refs",
                ));
            }
            for item in items {
                let Value::Object(item) = item else {
                    return Err(invalid(
                        C,
                        format!("{item} is not of type 'object'"),
                        "secret_refs",
                    ));
                };
                let rname = opt_string(item, "name", 255, C)?;
                let r = match item.get("secret_ref") {
                    Some(Value::String(r)) if !r.is_empty() => r.clone(),
                    _ => {
                        return Err(invalid(
                            C,
                            "'secret_ref' is a required property",
                            "secret_refs",
                        ));
                    }
                };
                let id = secret_of_ref(&r).ok_or_else(|| {
                    err(
                        StatusCode::BAD_REQUEST,
                        "Provided field value is not supported",
                    )
                })?;
                refs.push((rname, id));
            }
        }
        Some(v) => {
            return Err(invalid(
                C,
                format!("{v} is not of type 'array'"),
                "secret_refs",
            ));
        }
    }
    let keys = state.key_manager.clone();
    let c = state
        .store
        .write(|txn| {
            km::create_container(&ctx.service, &keys, txn, NewContainer { name, kind, refs })
        })
        .await?;
    Ok(created(container_ref(&ctx.base_url, c.id), "container_ref"))
}

async fn show_container(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> KmResult {
    let id = path_uuid(&id, "container")?;
    let snap = state.store.snapshot();
    let c = km::show_container(&ctx.service, snap.as_ref(), id)?;
    Ok(Json(render_container(&ctx.base_url, &c)).into_response())
}

async fn delete_container(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> KmResult {
    let id = path_uuid(&id, "container")?;
    state
        .store
        .write(|txn| km::delete_container(&ctx.service, txn, id))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_containers(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(q): Query<BTreeMap<String, String>>,
) -> KmResult {
    let snap = state.store.snapshot();
    let list = km::list_containers(
        &ctx.service,
        snap.as_ref(),
        q.get("name").map(String::as_str),
        q.get("type").map(String::as_str),
    )?;
    let items = list
        .iter()
        .map(|c| render_container(&ctx.base_url, c))
        .collect();
    let url = format!("{}/v1/containers", km_base(&ctx.base_url));
    Ok(Json(page(items, "containers", &url, &q, &[])).into_response())
}

// ---------------------------------------------------------------- ACLs

fn acl_ref<G: Guarded>(base: &str, id: Uuid) -> String {
    match G::KIND {
        "secret" => format!("{}/acl", secret_ref(base, id)),
        _ => format!("{}/acl", container_ref(base, id)),
    }
}

fn path_of<G: Guarded>(raw: &str) -> Result<Uuid, Km> {
    path_uuid(raw, G::KIND)
}

async fn show_acl<G: Guarded>(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> KmResult {
    let id = path_of::<G>(&id)?;
    let snap = state.store.snapshot();
    let acl = km::show_acl::<G>(&ctx.service, snap.as_ref(), id)?;
    Ok(Json(render_acl(&acl)).into_response())
}

/// An ACL body: `{"read": {"users": [...], "project-access": bool}}`, no
/// other key at either level.
type AclRead = Option<(Option<Vec<String>>, Option<bool>)>;

fn read_acl(headers: &HeaderMap, body: &Bytes) -> Result<AclRead, Km> {
    const A: &str = "ACL";
    let o = json_body(headers, body)?;
    if let Some(k) = o.keys().find(|k| k.as_str() != "read") {
        return Err(invalid(
            A,
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
            k,
        ));
    }
    let read = match o.get("read") {
        None => return Ok(None),
        Some(Value::Object(r)) => r,
        Some(v) => return Err(invalid(A, format!("{v} is not of type 'object'"), "read")),
    };
    if read.is_empty() {
        return Ok(None);
    }
    if let Some(k) = read
        .keys()
        .find(|k| k.as_str() != "users" && k.as_str() != "project-access")
    {
        return Err(invalid(
            A,
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
            "read",
        ));
    }
    let users = match read.get("users") {
        None => None,
        Some(Value::Array(us)) => Some(
            us.iter()
                .map(|u| match u {
                    Value::String(s) if s.len() <= 255 => Ok(s.clone()),
                    v => Err(invalid(A, format!("{v} is not a user id"), "read")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(v) => return Err(invalid(A, format!("{v} is not of type 'array'"), "read")),
    };
    let access = match read.get("project-access") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => return Err(invalid(A, format!("{v} is not of type 'boolean'"), "read")),
    };
    Ok(Some((users, access)))
}

async fn put_acl<G: Guarded + Clone>(
    state: State<AppState>,
    ctx: RequestContext,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> KmResult {
    let read = read_acl(&headers, &body)?;
    change_acl::<G>(state, ctx, path, AclChange::Replace(read)).await
}

async fn patch_acl<G: Guarded + Clone>(
    state: State<AppState>,
    ctx: RequestContext,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> KmResult {
    let read = read_acl(&headers, &body)?;
    change_acl::<G>(state, ctx, path, AclChange::Merge(read)).await
}

async fn delete_acl<G: Guarded + Clone>(
    state: State<AppState>,
    ctx: RequestContext,
    path: Path<String>,
) -> KmResult {
    change_acl::<G>(state, ctx, path, AclChange::Delete).await
}

async fn change_acl<G: Guarded + Clone>(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    change: AclChange,
) -> KmResult {
    let id = path_of::<G>(&id)?;
    let delete = matches!(change, AclChange::Delete);
    state
        .store
        .write(|txn| km::change_acl::<G>(&ctx.service, txn, id, change))
        .await?;
    if delete {
        return Ok(Json(Value::Null).into_response());
    }
    Ok(Json(json!({"acl_ref": acl_ref::<G>(&ctx.base_url, id)})).into_response())
}

// ---------------------------------------------------------------- consumers

fn bounded_string(
    o: &Map<String, Value>,
    key: &str,
    max: usize,
    schema: &str,
) -> Result<String, Km> {
    match o.get(key) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(s.clone()),
        Some(Value::String(s)) if s.is_empty() => {
            Err(invalid(schema, format!("'{s}' is too short"), key))
        }
        Some(Value::String(s)) => Err(invalid(schema, format!("'{s}' is too long"), key)),
        None => Err(invalid(
            schema,
            format!("'{key}' is a required property"),
            key,
        )),
        Some(v) => Err(invalid(schema, format!("{v} is not of type 'string'"), key)),
    }
}

/// A container consumer body `{name, URL}` (its project set by the service).
fn container_consumer_body(headers: &HeaderMap, body: &Bytes) -> Result<ContainerConsumer, Km> {
    let o = json_body(headers, body)?;
    Ok(ContainerConsumer {
        project_id: String::new(),
        name: bounded_string(&o, "name", 36, "Consumer")?,
        url: bounded_string(&o, "URL", 255, "Consumer")?,
        created_at: statera_model::now(),
    })
}

/// A secret consumer body `{service, resource_type, resource_id}`.
fn secret_consumer_body(headers: &HeaderMap, body: &Bytes) -> Result<SecretConsumer, Km> {
    const S: &str = "Secret Consumer";
    let o = json_body(headers, body)?;
    Ok(SecretConsumer {
        project_id: String::new(),
        service: bounded_string(&o, "service", 255, S)?,
        resource_type: bounded_string(&o, "resource_type", 255, S)?,
        resource_id: bounded_string(&o, "resource_id", 255, S)?,
        created_at: statera_model::now(),
    })
}

fn consumer_list(items: Vec<Value>, url: &str, q: &BTreeMap<String, String>) -> Response {
    Json(page(items, "consumers", url, q, &[])).into_response()
}

async fn add_container_consumer(
    state: State<AppState>,
    ctx: RequestContext,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> KmResult {
    container_consumer(state, ctx, path, headers, body, true).await
}

async fn remove_container_consumer(
    state: State<AppState>,
    ctx: RequestContext,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> KmResult {
    container_consumer(state, ctx, path, headers, body, false).await
}

/// Registers (`add`) or removes a container consumer; the container after.
async fn container_consumer(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    add: bool,
) -> KmResult {
    let id = path_uuid(&id, "container")?;
    let consumer = container_consumer_body(&headers, &body)?;
    let c = state
        .store
        .write(|txn| {
            if add {
                km::add_consumer::<SecretContainer>(&ctx.service, txn, id, consumer)
            } else {
                km::remove_consumer::<SecretContainer>(&ctx.service, txn, id, &consumer)
            }
        })
        .await?;
    Ok(Json(render_container(&ctx.base_url, &c)).into_response())
}

async fn list_container_consumers(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> KmResult {
    let id = path_uuid(&id, "container")?;
    let snap = state.store.snapshot();
    let c = km::consumers_of::<SecretContainer>(&ctx.service, snap.as_ref(), id)?;
    let items = c
        .consumers
        .iter()
        .map(|x| {
            json!({"created": iso(x.created_at), "updated": iso(x.created_at),
                   "status": "ACTIVE", "name": x.name, "URL": x.url})
        })
        .collect();
    let url = format!("{}/consumers", container_ref(&ctx.base_url, id));
    Ok(consumer_list(items, &url, &q))
}

async fn add_secret_consumer(
    state: State<AppState>,
    ctx: RequestContext,
    path: Path<String>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    body: Bytes,
) -> KmResult {
    secret_consumer(state, ctx, path, headers, ext, body, true).await
}

async fn remove_secret_consumer(
    state: State<AppState>,
    ctx: RequestContext,
    path: Path<String>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    body: Bytes,
) -> KmResult {
    secret_consumer(state, ctx, path, headers, ext, body, false).await
}

/// Registers (`add`) or removes a secret consumer; the secret after, with
/// its consumers whatever the microversion (the client reads them).
async fn secret_consumer(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    body: Bytes,
    add: bool,
) -> KmResult {
    let id = path_uuid(&id, "secret")?;
    let consumer = secret_consumer_body(&headers, &body)?;
    let s = state
        .store
        .write(|txn| {
            if add {
                km::add_consumer::<Secret>(&ctx.service, txn, id, consumer)
            } else {
                km::remove_consumer::<Secret>(&ctx.service, txn, id, &consumer)
            }
        })
        .await?;
    Ok(Json(render_secret(&ctx.base_url, &s, minor(&ext).max(Minor(1)))).into_response())
}

async fn list_secret_consumers(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> KmResult {
    let id = path_uuid(&id, "secret")?;
    let snap = state.store.snapshot();
    let s = km::consumers_of::<Secret>(&ctx.service, snap.as_ref(), id)?;
    let items = s
        .consumers
        .iter()
        .map(|c| {
            json!({"created": iso(c.created_at), "updated": iso(c.created_at),
                   "status": "ACTIVE", "service": c.service,
                   "resource_type": c.resource_type, "resource_id": c.resource_id})
        })
        .collect();
    let url = format!("{}/consumers", secret_ref(&ctx.base_url, id));
    Ok(consumer_list(items, &url, &q))
}
