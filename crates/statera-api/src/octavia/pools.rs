//! `/pools`: a set of members behind a listener (or an L7 policy). The wire
//! only: reading requests (`parse_fields`, `parse_create`, the
//! `session_persistence` object), rendering; the operations are
//! `statera_service::octavia::pools`.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Map, Value, json};
use statera_service::ServiceError;
use statera_service::octavia::pools as service;
pub use statera_service::octavia::pools::{
    NewPool, PoolFields, SessionPersistenceAttributes, SessionPersistenceFields, new_pool, validate,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pools", get(list).post(create))
        .route("/pools/{id}", get(show).put(update).delete(delete))
}

/// An error of the wire's reading, reported by the service when it applies
/// what was read (always a 400: the message is the wire's, word for word).
fn deferred(e: ApiError) -> ServiceError {
    ServiceError::Invalid(e.message)
}

/// Read a `session_persistence` object; its errors are reported when the
/// service applies it (after the pool is found and the caller authorized).
fn session_persistence(m: Map<String, Value>) -> SessionPersistenceFields {
    let mut i = match Input::from_value(Value::Object(m), "session_persistence") {
        Ok(i) => i,
        Err(e) => {
            return SessionPersistenceFields {
                kind: Err(deferred(e.clone())),
                attributes: Err(deferred(e)),
            };
        }
    };
    let kind = i
        .enumeration("type", SessionPersistenceType::ALL, |e| e.as_str())
        .map(Opt::value)
        .map_err(deferred);
    let attributes = (|| {
        let cookie_name = i.string("cookie_name", 255)?.value();
        let persistence_timeout = i
            .int("persistence_timeout", 0, i64::from(i32::MAX))?
            .value();
        let persistence_granularity = i.string("persistence_granularity", 64)?.value();
        i.finish()?;
        Ok(SessionPersistenceAttributes {
            cookie_name,
            persistence_timeout,
            persistence_granularity,
        })
    })()
    .map_err(deferred);
    SessionPersistenceFields { kind, attributes }
}

/// The mutable attributes of a pool as a request states them.
pub fn parse_fields(input: &mut Input) -> ApiResult<PoolFields> {
    Ok(PoolFields {
        name: input.string("name", 255)?,
        description: input.string("description", 255)?,
        admin_state_up: input.boolean("admin_state_up")?,
        lb_algorithm: input.enumeration("lb_algorithm", LbAlgorithm::ALL, |e| e.as_str())?,
        session_persistence: input
            .object("session_persistence")?
            .map(session_persistence),
        tls_enabled: input.boolean("tls_enabled")?,
        tls_container_ref: input.string("tls_container_ref", 255)?,
        ca_tls_container_ref: input.string("ca_tls_container_ref", 255)?,
        crl_container_ref: input.string("crl_container_ref", 255)?,
        tls_ciphers: input.string("tls_ciphers", 2048)?,
        tls_versions: input.string_list("tls_versions", 32)?,
        alpn_protocols: input.string_list("alpn_protocols", 32)?,
        tags: tags(input)?,
    })
}

/// Parse a pool create body (ids taken by the caller).
pub fn parse_create(input: &mut Input) -> ApiResult<(PoolProtocol, PoolFields)> {
    let protocol = input
        .enumeration("protocol", PoolProtocol::ALL, |e| e.as_str())?
        .required("protocol")?;
    input.project_id()?;
    let fields = parse_fields(input)?;
    if !fields.has_algorithm() {
        return Err(ApiError::missing_field("lb_algorithm"));
    }
    Ok((protocol, fields))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "pool")?;
    let loadbalancer_id = input.uuid("loadbalancer_id")?.value();
    let listener_id = input.uuid("listener_id")?.value();
    let (protocol, fields) = parse_create(&mut input)?;
    input.finish()?;
    let new = NewPool {
        loadbalancer_id,
        listener_id,
        protocol,
        fields,
    };
    let id = app
        .store
        .write(|txn| service::create(&ctx.service, txn, &*app.settings, new))
        .await?
        .id;
    let s = app.store.snapshot();
    let p = s
        .pools
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Pool", id))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"pool": render::pool(&s, p)})),
    ))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let s = app.store.snapshot();
    let items = service::list(&ctx.service, &*s, q.get("project_id"))?;
    app.collection(&ctx, &uri, "pools", Some("pools_links"), render::POOL_ATTRS)
        .respond_lazy(
            items,
            &q,
            |x| render::pool_summary(x),
            |x| render::pool(&s, x),
        )
        .map(Json)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let p = service::show(&ctx.service, &*s, path_id(&id, "Pool")?)?;
    Ok(Json(loadbalancers::one(
        "pool",
        render::pool(&s, &p),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Pool")?;
    let mut input = Input::from_root(body, "pool")?;
    let fields = parse_fields(&mut input)?;
    input.finish()?;
    app.store
        .write(|txn| service::update(&ctx.service, txn, id, fields))
        .await?;
    let s = app.store.snapshot();
    let p = s
        .pools
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Pool", id))?;
    Ok(Json(json!({"pool": render::pool(&s, p)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Pool")?;
    app.store
        .write(|txn| service::delete(&ctx.service, txn, id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
