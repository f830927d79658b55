//! `/v3` discovery and `/v3/auth/*`: tokens, scopes, the catalog, and
//! (`GET /v3/users/{id}/projects`, which Horizon asks on every page, is the
//! admin API's: `keystone/admin/users.rs`).
//!
//! Every route here answers only when the deployment's authenticator is the
//! built-in Keystone (auth mode `builtin`); otherwise 404. Token issue and
//! validation live in `statera_identity::builtin`; this module reads
//! Keystone's request bodies and renders Keystone's answers.

use crate::context::Client;
use crate::error::Style;
use crate::{ApiError, AppState, RequestContext};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};
use statera_identity::builtin::{
    AuthRequest, Builtin, DomainRef, IssueError, Method, ProjectRef, RevokeError, ScopeRequest,
    TokenInfo, UserRef,
};
use statera_model::identity::{Domain, Project};
use statera_store::State as StoreState;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3", get(discovery))
        .route("/v3/auth/tokens", get(validate).post(issue).delete(revoke))
        .route("/v3/auth/projects", get(auth_projects))
        .route("/v3/auth/domains", get(auth_domains))
        .route("/v3/auth/system", get(auth_system))
        .route("/v3/auth/catalog", get(auth_catalog))
}

fn keystone_error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status, message).in_style(Style::Keystone)
}

fn not_found() -> ApiError {
    keystone_error(StatusCode::NOT_FOUND, "The resource could not be found.")
}

fn forbidden(action: &str) -> ApiError {
    keystone_error(
        StatusCode::FORBIDDEN,
        format!("You are not authorized to perform the requested action: {action}."),
    )
}

fn bad_request(message: impl std::fmt::Display) -> ApiError {
    keystone_error(
        StatusCode::BAD_REQUEST,
        format!(
            "{message} The server could not comply with the request since it is either \
             malformed or otherwise incorrect. The client is assumed to be in error."
        ),
    )
}

/// The built-in Keystone, or 404 when the deployment runs another auth mode.
fn builtin(state: &AppState) -> Result<&Builtin, ApiError> {
    state.auth.builtin().ok_or_else(not_found)
}

fn time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `GET /v3`: Keystone's version document.
async fn discovery(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    builtin(&state)?;
    let base = crate::context::base_url(&headers, state.settings.trust_proxy_headers);
    Ok(Json(json!({"version": {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }}))
    .into_response())
}

// --- reading a request ----------------------------------------------------

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| bad_request(format!("Invalid input for field '{path}': not an object.")))
}

fn opt_str(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 255 => Ok(Some(s.clone())),
        Some(_) => Err(bad_request(format!(
            "Invalid input for field '{path}/{key}': a string of at most 255 characters is expected."
        ))),
    }
}

fn domain_ref(v: &Value, path: &str) -> Result<DomainRef, ApiError> {
    let m = obj(v, path)?;
    if let Some(id) = opt_str(m, "id", path)? {
        return Ok(DomainRef::Id(id));
    }
    match opt_str(m, "name", path)? {
        Some(name) => Ok(DomainRef::Name(name)),
        None => Err(bad_request(format!(
            "Expecting to find id or name in {path}."
        ))),
    }
}

fn user_ref(v: &Value, path: &str) -> Result<UserRef, ApiError> {
    let m = obj(v, path)?;
    if let Some(id) = opt_str(m, "id", path)? {
        return Ok(UserRef::Id(id));
    }
    let name = opt_str(m, "name", path)?
        .ok_or_else(|| bad_request(format!("Expecting to find id or name in {path}.")))?;
    let domain = m
        .get("domain")
        .ok_or_else(|| bad_request(format!("Expecting to find domain in {path}.")))?;
    Ok(UserRef::Name {
        name,
        domain: domain_ref(domain, &format!("{path}/domain"))?,
    })
}

fn scope(v: Option<&Value>) -> Result<ScopeRequest, ApiError> {
    let v = match v {
        None | Some(Value::Null) => return Ok(ScopeRequest::Default),
        Some(Value::String(s)) if s == "unscoped" => return Ok(ScopeRequest::Unscoped),
        Some(v) => v,
    };
    let m = obj(v, "scope")?;
    if let Some(p) = m.get("project") {
        let pm = obj(p, "scope/project")?;
        if let Some(id) = opt_str(pm, "id", "scope/project")? {
            return Ok(ScopeRequest::Project(ProjectRef::Id(id)));
        }
        let name = opt_str(pm, "name", "scope/project")?
            .ok_or_else(|| bad_request("Expecting to find id or name in scope/project."))?;
        let domain = pm
            .get("domain")
            .ok_or_else(|| bad_request("Expecting to find domain in scope/project."))?;
        return Ok(ScopeRequest::Project(ProjectRef::Name {
            name,
            domain: domain_ref(domain, "scope/project/domain")?,
        }));
    }
    if let Some(d) = m.get("domain") {
        return Ok(ScopeRequest::Domain(domain_ref(d, "scope/domain")?));
    }
    if let Some(s) = m.get("system") {
        if s.get("all") == Some(&Value::Bool(true)) {
            return Ok(ScopeRequest::System);
        }
        return Err(bad_request(
            "Invalid input for field 'scope/system': expecting {\"all\": true}.",
        ));
    }
    if m.contains_key("OS-TRUST:trust") {
        return Err(keystone_error(
            StatusCode::NOT_IMPLEMENTED,
            "Trusts are not supported by this identity service.",
        ));
    }
    Err(bad_request(
        "Invalid input for field 'scope': expecting project, domain or system.",
    ))
}

/// Keystone's `{"auth": {"identity": …, "scope": …}}`.
fn auth_request(body: &[u8]) -> Result<AuthRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("The request body is not valid JSON ({e}).")))?;
    let auth = v
        .get("auth")
        .ok_or_else(|| bad_request("Expecting to find auth in the request body."))?;
    let identity = obj(auth, "auth")?
        .get("identity")
        .ok_or_else(|| bad_request("Expecting to find identity in auth."))?;
    let identity = obj(identity, "identity")?;
    let methods: Vec<&str> = identity
        .get("methods")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("Expecting to find methods in identity."))?
        .iter()
        .map(|m| m.as_str().unwrap_or(""))
        .collect();
    let method = match methods.as_slice() {
        [m] => *m,
        [] => {
            return Err(bad_request(
                "Invalid input for field 'identity/methods': at least one method is expected.",
            ));
        }
        _ => {
            return Err(unsupported());
        }
    };
    let section = |name: &str| {
        identity
            .get(name)
            .ok_or_else(|| bad_request(format!("Expecting to find {name} in identity.")))
    };
    let method = match method {
        "password" => {
            let p = obj(section("password")?, "identity/password")?;
            let user = p
                .get("user")
                .ok_or_else(|| bad_request("Expecting to find user in password."))?;
            let password = obj(user, "identity/password/user")?
                .get("password")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("Expecting to find password in user."))?;
            if password.len() > 4096 {
                return Err(bad_request(
                    "Invalid input for field 'identity/password/user/password': too long.",
                ));
            }
            Method::Password {
                user: user_ref(user, "identity/password/user")?,
                password: password.to_string(),
            }
        }
        "token" => {
            let t = obj(section("token")?, "identity/token")?;
            Method::Token {
                token: t
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_request("Expecting to find id in token."))?
                    .to_string(),
            }
        }
        "application_credential" => {
            let path = "identity/application_credential";
            let a = obj(section("application_credential")?, path)?;
            let secret = a
                .get("secret")
                .and_then(Value::as_str)
                .filter(|s| s.len() <= 4096)
                .ok_or_else(|| {
                    bad_request("Expecting to find secret in application_credential.")
                })?;
            Method::ApplicationCredential {
                id: opt_str(a, "id", path)?,
                name: opt_str(a, "name", path)?,
                user: a
                    .get("user")
                    .map(|u| user_ref(u, &format!("{path}/user")))
                    .transpose()?,
                secret: secret.to_string(),
            }
        }
        _ => return Err(unsupported()),
    };
    Ok(AuthRequest {
        method,
        scope: scope(auth.get("scope"))?,
    })
}

fn unsupported() -> ApiError {
    keystone_error(
        StatusCode::UNAUTHORIZED,
        "Attempted to authenticate with an unsupported method.",
    )
}

// --- rendering ------------------------------------------------------------

fn domain_ref_json(d: &Domain) -> Value {
    json!({"id": d.id, "name": d.name})
}

/// The catalog as a token carries it: enabled services with their enabled
/// endpoints.
pub fn catalog(state: &StoreState) -> Vec<Value> {
    state
        .catalog_services
        .iter()
        .filter(|s| s.enabled)
        .filter_map(|s| {
            let endpoints: Vec<Value> = state
                .catalog_endpoints
                .iter()
                .filter(|e| e.enabled && e.service_id == s.id)
                .map(|e| {
                    json!({
                        "id": e.id,
                        "interface": e.interface,
                        "region": e.region_id,
                        "region_id": e.region_id,
                        "url": e.url,
                    })
                })
                .collect();
            (!endpoints.is_empty()).then(
                || json!({"endpoints": endpoints, "id": s.id, "type": s.kind, "name": s.name}),
            )
        })
        .collect()
}

fn token_body(state: &StoreState, info: &TokenInfo, with_catalog: bool) -> Value {
    let user = &info.user;
    let mut t = json!({
        "methods": info.methods(),
        "user": {
            "id": user.id,
            "name": user.name,
            "domain": domain_ref_json(&info.user_domain),
            "password_expires_at": user.password_expires_at.map(time),
        },
        "audit_ids": info.audit_ids(),
        "expires_at": time(info.expires_at()),
        "issued_at": time(info.issued_at()),
    });
    let m = t.as_object_mut().expect("an object");
    if let (Some(p), Some(d)) = (&info.project, &info.project_domain) {
        m.insert(
            "project".into(),
            json!({"id": p.id, "name": p.name, "domain": domain_ref_json(d)}),
        );
        m.insert("is_domain".into(), Value::Bool(false));
        m.insert(
            "is_admin_project".into(),
            Value::Bool(info.is_admin_project()),
        );
    }
    if let Some(d) = &info.domain {
        m.insert("domain".into(), domain_ref_json(d));
    }
    if info.is_system() {
        m.insert("system".into(), json!({"all": true}));
    }
    if info.project.is_some() || info.domain.is_some() || info.is_system() {
        m.insert(
            "roles".into(),
            info.roles
                .iter()
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect(),
        );
        if with_catalog {
            m.insert("catalog".into(), Value::Array(catalog(state)));
        }
    }
    if let Some(c) = &info.application_credential {
        m.insert(
            "application_credential".into(),
            json!({"id": c.id, "name": c.name, "restricted": !c.unrestricted}),
        );
    }
    json!({ "token": t })
}

fn with_subject(status: StatusCode, token: &str, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

fn nocatalog(uri: &axum::http::Uri) -> bool {
    crate::list::Query::parse(uri.query())
        .get("nocatalog")
        .is_some()
}

// --- handlers ---------------------------------------------------------------

/// `POST /v3/auth/tokens`.
async fn issue(
    State(state): State<AppState>,
    Client(client): Client,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b = builtin(&state)?;
    let req = auth_request(&body)?;
    match b.issue_for(client, req).await {
        Ok((token, info)) => {
            let snapshot = state.store.snapshot();
            let body = token_body(&snapshot, &info, !nocatalog(&uri));
            Ok(with_subject(StatusCode::CREATED, &token, body))
        }
        Err(IssueError::BadRequest(m)) => Err(bad_request(m)),
        Err(IssueError::Unauthorized(reason)) => {
            tracing::info!(%reason, "authentication refused");
            let base = crate::context::base_url(&headers, state.settings.trust_proxy_headers);
            Err(ApiError::unauthorized(state.auth.identity_uri(&base)))
        }
        Err(IssueError::Store(e)) => Err(ApiError::from(e).in_style(Style::Keystone)),
        Err(e @ IssueError::Busy) => Err(ApiError::busy(e.to_string()).in_style(Style::Keystone)),
    }
}

/// What is done with a subject token, for Keystone's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenOp {
    /// `GET` (`identity:validate_token`): the subject, an `admin`, a
    /// `service`, or a system reader.
    Validate,
    /// `HEAD` (`identity:check_token`): the subject, an `admin` or a system
    /// reader.
    Check,
    /// `DELETE` (`identity:revoke_token`): the subject, or a system-scoped
    /// `admin`.
    Revoke,
}

/// The subject token of a validate, check or revoke call, if the caller may
/// do `op` on it.
fn subject(
    b: &Builtin,
    ctx: &RequestContext,
    headers: &HeaderMap,
    op: TokenOp,
) -> Result<TokenInfo, ApiError> {
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad_request("Expecting to find X-Subject-Token in the request headers."))?;
    let system = ctx.caller.system_scope.is_some();
    let privileged = match op {
        TokenOp::Validate => {
            ctx.has_role("admin") || ctx.has_role("service") || (system && ctx.has_role("reader"))
        }
        TokenOp::Check => ctx.has_role("admin") || (system && ctx.has_role("reader")),
        TokenOp::Revoke => system && ctx.has_role("admin"),
    };
    let info = b.validate(subject).map_err(|reason| {
        tracing::info!(%reason, "subject token refused");
        keystone_error(
            StatusCode::NOT_FOUND,
            format!("Could not find token: {subject}."),
        )
    })?;
    if privileged || ctx.caller.user_id.as_deref() == Some(info.user.id.as_str()) {
        Ok(info)
    } else {
        Err(forbidden(match op {
            TokenOp::Validate => "identity:validate_token",
            TokenOp::Check => "identity:check_token",
            TokenOp::Revoke => "identity:revoke_token",
        }))
    }
}

/// `GET` (and `HEAD`) `/v3/auth/tokens`: validate `X-Subject-Token`.
async fn validate(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    method: axum::http::Method,
    ctx: RequestContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let b = builtin(&state)?;
    let op = if method == axum::http::Method::HEAD {
        TokenOp::Check
    } else {
        TokenOp::Validate
    };
    let info = subject(b, &ctx, &headers, op)?;
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let body = token_body(&state.store.snapshot(), &info, !nocatalog(&uri));
    Ok(with_subject(StatusCode::OK, token, body))
}

/// `DELETE /v3/auth/tokens`: revoke `X-Subject-Token` (and the tokens
/// rescoped from it).
async fn revoke(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let b = builtin(&state)?;
    let info = subject(b, &ctx, &headers, TokenOp::Revoke)?;
    match b.revoke(&info).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e @ RevokeError::TooMany { retry_after_s }) => {
            let mut resp =
                keystone_error(StatusCode::TOO_MANY_REQUESTS, e.to_string()).into_response();
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after_s.into());
            Ok(resp)
        }
        Err(RevokeError::Store(e)) => Err(ApiError::from(e).in_style(Style::Keystone)),
    }
}

fn project_json(base: &str, p: &Project) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "is_domain": false,
        "parent_id": p.parent_id,
        "tags": p.tags,
        "options": p.options,
        "links": {"self": format!("{base}/v3/projects/{}", p.id)},
    })
}

/// Keystone's list envelope: `{key: items, "links": {self, previous, next}}`.
fn listed(
    key: &str,
    items: Vec<Value>,
    ctx: &RequestContext,
    uri: &axum::http::Uri,
) -> Json<Value> {
    let links =
        json!({"self": format!("{}{}", ctx.base_url, uri.path()), "previous": null, "next": null});
    Json(json!({ key: items, "links": links }))
}

fn projects_answer(
    state: &AppState,
    ctx: &RequestContext,
    uri: &axum::http::Uri,
    user_id: &str,
) -> Json<Value> {
    let snapshot = state.store.snapshot();
    let projects: Vec<Value> = statera_identity::builtin::roles::projects_of(&snapshot, user_id)
        .iter()
        .map(|p| project_json(&ctx.base_url, p))
        .collect();
    listed("projects", projects, ctx, uri)
}

fn caller_user(ctx: &RequestContext) -> Result<&str, ApiError> {
    ctx.caller
        .user_id
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized(None))
}

/// `GET /v3/auth/projects`: the projects the token's user may scope to.
async fn auth_projects(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    builtin(&state)?;
    let user = caller_user(&ctx)?.to_string();
    Ok(projects_answer(&state, &ctx, &uri, &user))
}

/// `GET /v3/auth/domains`.
async fn auth_domains(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    builtin(&state)?;
    let user = caller_user(&ctx)?;
    let snapshot = state.store.snapshot();
    let domains: Vec<Value> = statera_identity::builtin::roles::domains_of(&snapshot, user)
        .iter()
        .map(|d| {
            json!({
                "id": d.id, "name": d.name, "description": d.description,
                "enabled": d.enabled, "tags": d.tags, "options": d.options,
                "links": {"self": format!("{}/v3/domains/{}", ctx.base_url, d.id)},
            })
        })
        .collect();
    Ok(listed("domains", domains, &ctx, &uri))
}

/// `GET /v3/auth/system`: `[{"all": true}]` when the user has a role on the
/// system.
async fn auth_system(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    builtin(&state)?;
    let user = caller_user(&ctx)?;
    let snapshot = state.store.snapshot();
    let has = !statera_identity::builtin::roles::effective(
        &snapshot,
        user,
        statera_identity::builtin::roles::Target::System,
    )
    .is_empty();
    let system: Vec<Value> = if has {
        vec![json!({"all": true})]
    } else {
        vec![]
    };
    Ok(listed("system", system, &ctx, &uri))
}

/// `GET /v3/auth/catalog`: a scoped token's catalog (an unscoped token has
/// none: 403, as Keystone).
async fn auth_catalog(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    ctx: RequestContext,
) -> Result<Json<Value>, ApiError> {
    builtin(&state)?;
    let c = &ctx.caller;
    if c.project_id.is_none() && c.domain_id.is_none() && c.system_scope.is_none() {
        return Err(forbidden("identity:get_auth_catalog"));
    }
    let snapshot: Arc<StoreState> = state.store.snapshot();
    Ok(listed("catalog", catalog(&snapshot), &ctx, &uri))
}
