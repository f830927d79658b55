//! The identity admin API of the built-in Keystone: domains, projects, users,
//! groups, roles (and implied roles), grants and role assignments,
//! application credentials, and the catalog (services, endpoints, regions).
//!
//! Shapes follow Keystone v3: `{"<kind>": {..., "links": {"self": ...}}}`,
//! lists with `links: {self, next, previous}`, 201 on create, 204 on delete,
//! errors as `{"error": {code, title, message}}`. Every mutation is one
//! `store.write` that validates inside it: a refused request changes nothing.
//!
//! The wire only: routes, reading requests, rendering, Keystone's error
//! shape ([`kse`]), and what needs the built-in Keystone itself (hashing
//! passwords and secrets, its lockout's memory). The operations, with their
//! authorization by statera-policy's `identity:*` rules (Keystone's names,
//! Keystone's defaults in spirit; an operator's policy file overrides them),
//! are `statera_service::identity`, group by group.

pub mod app_creds;
pub mod catalog;
pub mod domains;
pub mod grants;
pub mod groups;
pub mod projects;
pub mod roles;
pub mod users;

use crate::context::Client;
use crate::error::{ApiError, ApiResult, Style};
use crate::{AppState, RequestContext};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use statera_model::Timestamp;
use statera_service::identity;
use statera_service::{ServiceError, ServiceResult};
use statera_store::Txn;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(domains::routes())
        .merge(projects::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(roles::routes())
        .merge(grants::routes())
        .merge(app_creds::routes())
        .merge(catalog::routes())
}

// ---------------------------------------------------------------- policy

pub use statera_service::identity::{Resource, Target};

/// The service's policy check for `action` on `target`, asked before the
/// request's body is read (as Keystone does: a 403 wins over a 400); the
/// service asks it again inside the operation.
pub fn admit(ctx: &RequestContext, action: &str, target: Target) -> ApiResult<()> {
    identity::authorize(&ctx.service, action, target).map_err(kse)
}

// ---------------------------------------------------------------- errors

/// An error in Keystone's shape.
pub fn kerr(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status, message).in_style(Style::Keystone)
}

/// A service error in Keystone's shape: Invalid → 400, NotFound → 404,
/// Conflict → 409, Forbidden → 403, the message word for word.
pub fn kse(e: ServiceError) -> ApiError {
    ks(ApiError::from(e))
}

/// Keystone's schema validation failure (400).
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    kerr(
        StatusCode::BAD_REQUEST,
        format!("Invalid input for field '{field}': {reason}"),
    )
}

/// 400 with a message of its own.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    kerr(StatusCode::BAD_REQUEST, message)
}

/// Any error in Keystone's shape (store failures arrive in Octavia's).
pub fn ks(e: ApiError) -> ApiError {
    e.in_style(Style::Keystone)
}

/// One transaction of the service's; its error in Keystone's shape.
pub async fn service_write<T>(
    state: &AppState,
    f: impl FnOnce(&mut Txn) -> ServiceResult<T>,
) -> ApiResult<T> {
    state.store.write(f).await.map_err(kse)
}

/// Hash a password or secret off the async runtime (argon2 costs tens of
/// ms), through the built-in Keystone's bounded password gate: 503 with
/// `Retry-After` when it is full.
pub async fn hash_secret(state: &AppState, client: Client, secret: String) -> ApiResult<String> {
    passwords(state)?
        .hash_secret(client.0, secret)
        .await
        .map_err(issue_error)
}

/// The built-in Keystone, which keeps passwords and secrets; under another
/// auth mode they are the external identity service's business (501).
pub fn passwords(state: &AppState) -> ApiResult<&statera_identity::builtin::Builtin> {
    state.auth.builtin().ok_or_else(|| {
        kerr(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "Passwords and secrets are kept by the built-in identity service only \
                 (this deployment's auth mode is {}).",
                state.auth.mode().as_str()
            ),
        )
    })
}

/// An [`IssueError`](statera_identity::builtin::IssueError) of a password
/// check or hash in Keystone's shape.
pub fn issue_error(e: statera_identity::builtin::IssueError) -> ApiError {
    use statera_identity::builtin::IssueError;
    match e {
        IssueError::BadRequest(m) => bad_request(m),
        IssueError::Unauthorized(reason) => {
            tracing::info!(%reason, "authentication refused");
            ApiError::unauthorized(None)
        }
        IssueError::Store(e) => ks(ApiError::from(e)),
        e @ IssueError::Busy => ks(ApiError::busy(e.to_string())),
    }
}

// ---------------------------------------------------------------- bodies

pub type Object = Map<String, Value>;

/// The longest name of a user, group, role or service (Keystone's schemas).
pub const NAME_MAX: usize = 255;
/// The longest name of a project or domain (Keystone's `_name_properties`).
pub const PROJECT_NAME_MAX: usize = 64;
/// The longest password Keystone takes (`[identity] max_password_length`).
pub const PASSWORD_MAX: usize = 4096;
/// The longest description accepted (Keystone's column is TEXT; bounded here).
pub const DESCRIPTION_MAX: usize = 65_535;

/// The object under `key` in a JSON body.
pub fn envelope(body: &[u8], key: &str) -> ApiResult<Object> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        bad_request(format!(
            "The request body is not valid JSON ({e}). The server could not comply with the \
             request since it is either malformed or otherwise incorrect."
        ))
    })?;
    match v {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Object(o)) => Ok(o),
            Some(other) => Err(invalid(key, format!("{other} is not of type 'object'"))),
            None => Err(invalid(key, format!("'{key}' is a required property"))),
        },
        other => Err(invalid(key, format!("{other} is not of type 'object'"))),
    }
}

/// Refuse attributes outside `allowed` (Keystone's `additionalProperties: false`).
pub fn only(obj: &Object, allowed: &[&str]) -> ApiResult<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            k,
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        )),
        None => Ok(()),
    }
}

/// A string attribute: absent → `None`; `null` → refused unless `nullable`
/// (then `Some(None)`); bounded to `max` characters.
pub fn opt_str(
    obj: &Object,
    field: &str,
    max: usize,
    nullable: bool,
) -> ApiResult<Option<Option<String>>> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::Null) if nullable => Ok(Some(None)),
        Some(Value::String(s)) => {
            if s.chars().count() > max {
                Err(invalid(field, format!("'{s}' is too long")))
            } else {
                Ok(Some(Some(s.clone())))
            }
        }
        Some(other) => Err(invalid(field, format!("{other} is not of type 'string'"))),
    }
}

/// A name: a non-empty (after trimming) string of at most `max` characters
/// (Keystone: 64 for projects and domains, 255 for users, groups, roles).
pub fn name_field(obj: &Object, required: bool, max: usize) -> ApiResult<Option<String>> {
    match opt_str(obj, "name", max, false)? {
        None if required => Err(invalid("name", "'name' is a required property")),
        None => Ok(None),
        Some(Some(s)) if s.trim().is_empty() => {
            Err(invalid("name", format!("'{s}' does not match '[\\S]+'")))
        }
        Some(s) => Ok(s),
    }
}

/// The description: a string or null (stored as "").
pub fn description_field(obj: &Object) -> ApiResult<Option<String>> {
    Ok(opt_str(obj, "description", DESCRIPTION_MAX, true)?.map(Option::unwrap_or_default))
}

/// A boolean attribute.
pub fn bool_field(obj: &Object, field: &str) -> ApiResult<Option<bool>> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(field, format!("{other} is not of type 'boolean'"))),
    }
}

/// Keystone's tags: at most 80, each 1-255 characters without `/` or `,`.
pub fn tags_field(obj: &Object) -> ApiResult<Option<Vec<String>>> {
    match obj.get("tags") {
        None => Ok(None),
        Some(Value::Array(items)) => {
            if items.len() > 80 {
                return Err(invalid("tags", "has more than 80 items"));
            }
            let mut out = Vec::new();
            for t in items {
                match t {
                    Value::String(s)
                        if !s.is_empty()
                            && s.chars().count() <= 255
                            && !s.contains('/')
                            && !s.contains(',') =>
                    {
                        if !out.contains(s) {
                            out.push(s.clone())
                        }
                    }
                    other => {
                        return Err(invalid(
                            "tags",
                            format!("{other} is not a valid tag (1-255 characters, no '/' or ',')"),
                        ));
                    }
                }
            }
            Ok(Some(out))
        }
        Some(other) => Err(invalid("tags", format!("{other} is not of type 'array'"))),
    }
}

/// Keystone's resource options: an object (kept as given).
pub fn options_field(obj: &Object) -> ApiResult<Option<std::collections::BTreeMap<String, Value>>> {
    match obj.get("options") {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone().into_iter().collect())),
        Some(other) => Err(invalid(
            "options",
            format!("{other} is not of type 'object'"),
        )),
    }
}

/// A boolean query filter (`?enabled=false`).
pub fn query_bool(value: &str) -> Option<bool> {
    crate::input::parse_bool_str(value)
}

// ---------------------------------------------------------------- rendering

/// `<base>/v3/<path>`.
pub fn link(ctx: &RequestContext, path: &str) -> String {
    format!("{}/v3/{path}", ctx.base_url)
}

/// `{"links": {"self": ...}}` added to `obj`.
pub fn with_self(ctx: &RequestContext, mut obj: Value, path: &str) -> Value {
    obj["links"] = json!({"self": link(ctx, path)});
    obj
}

/// A collection: `{"<plural>": [...], "links": {self, next, previous}}`.
pub fn collection(
    ctx: &RequestContext,
    plural: &str,
    uri: &axum::http::Uri,
    items: Vec<Value>,
) -> Response {
    let self_link = match uri.query() {
        Some(q) => format!("{}{}?{q}", ctx.base_url, uri.path()),
        None => format!("{}{}", ctx.base_url, uri.path()),
    };
    Json(json!({plural: items, "links": {"self": self_link, "next": null, "previous": null}}))
        .into_response()
}

/// `{"<key>": obj}` with `status`.
pub fn one(status: StatusCode, key: &str, obj: Value) -> Response {
    (status, Json(json!({ key: obj }))).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Keystone's timestamp format (`2026-01-02T03:04:05.000000Z`).
pub fn timestamp(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

// ---------------------------------------------------------------- resources

/// What the generic `show` and `list` need to know of a top-level identity
/// record. Creates, updates and deletes stay per resource: their checks and
/// cascades differ.
pub trait AdminResource: Resource {
    const PLURAL: &'static str;
    /// Query keys compared with the rendered attribute of the same name.
    const FILTERS: &'static [&'static str];
    fn render(ctx: &RequestContext, r: &Self) -> Value;
    fn sort_key(&self) -> String;
    /// Whether a list shows `r` whatever the filters (roles: only global
    /// roles unless `domain_id` is asked).
    fn listed(_q: &crate::list::Query, _r: &Self) -> bool {
        true
    }
}

/// Whether a rendered object matches the query's filters: a string equals,
/// a boolean parses equal, a list holds every value asked (`tags`).
fn matches_filters(obj: &Value, q: &crate::list::Query, filters: &[&str]) -> bool {
    filters.iter().all(|f| match q.get(f) {
        None => true,
        Some(want) => match &obj[*f] {
            Value::String(s) => s == want,
            Value::Bool(b) => query_bool(want) == Some(*b),
            Value::Array(items) => q
                .all(f)
                .iter()
                .all(|t| items.iter().any(|i| i.as_str() == Some(t.as_str()))),
            _ => false,
        },
    })
}

/// `GET /v3/<plural>/{id}`.
pub async fn show<R: AdminResource>(
    axum::extract::State(state): axum::extract::State<AppState>,
    ctx: RequestContext,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let r = identity::show::<R>(&ctx.service, &*state.store.snapshot(), &id).map_err(kse)?;
    Ok(one(StatusCode::OK, R::KIND, R::render(&ctx, &r)))
}

/// `GET /v3/<plural>` with `R::FILTERS`, sorted by `R::sort_key`.
pub async fn list<R: AdminResource>(
    axum::extract::State(state): axum::extract::State<AppState>,
    ctx: RequestContext,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Response> {
    let all = identity::list::<R>(&ctx.service, &*state.store.snapshot()).map_err(kse)?;
    let q = crate::list::Query::parse(uri.query());
    let mut rows: Vec<&R> = all
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| R::listed(&q, r))
        .collect();
    rows.sort_by_key(|r| r.sort_key());
    let items = rows
        .into_iter()
        .map(|r| R::render(&ctx, r))
        .filter(|v| matches_filters(v, &q, R::FILTERS))
        .collect();
    Ok(collection(&ctx, R::PLURAL, &uri, items))
}
