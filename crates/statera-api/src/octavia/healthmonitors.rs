//! `/healthmonitors`: one per pool. The wire only: reading requests
//! (`parse_fields`, `parse_create`), rendering; the operations are
//! `statera_service::octavia::healthmonitors`.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use statera_service::octavia::healthmonitors as service;
pub use statera_service::octavia::healthmonitors::{MonitorFields, build};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthmonitors", get(list).post(create))
        .route("/healthmonitors/{id}", get(show).put(update).delete(delete))
}

/// The mutable attributes of a monitor as a request states them, read the
/// way Octavia's WSME does.
pub fn parse_fields(input: &mut Input) -> ApiResult<MonitorFields> {
    Ok(MonitorFields {
        name: input.string("name", 255)?,
        admin_state_up: input.boolean("admin_state_up")?,
        delay: input.int("delay", 0, i64::from(i32::MAX))?,
        timeout: input.int("timeout", 0, i64::from(i32::MAX))?,
        max_retries: input.int("max_retries", 1, 10)?,
        max_retries_down: input.int("max_retries_down", 1, 10)?,
        http_method: input.enumeration("http_method", HttpMethod::ALL, |e| e.as_str())?,
        url_path: input.string("url_path", 2048)?,
        expected_codes: input.string("expected_codes", 64)?,
        http_version: input.float("http_version")?,
        domain_name: input.string("domain_name", 255)?,
        tags: tags(input)?,
    })
}

pub fn parse_create(input: &mut Input) -> ApiResult<(HealthMonitorType, MonitorFields)> {
    let kind = input
        .enumeration("type", HealthMonitorType::ALL, |e| e.as_str())?
        .required("type")?;
    input.project_id()?;
    Ok((kind, parse_fields(input)?))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "healthmonitor")?;
    let pool_id = input.uuid("pool_id")?.required("pool_id")?;
    let (kind, fields) = parse_create(&mut input)?;
    input.finish()?;
    let hm = app
        .store
        .write(|txn| service::create(&ctx.service, txn, &*app.settings, pool_id, kind, fields))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"healthmonitor": render::healthmonitor(&hm)})),
    ))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let items = service::list(&ctx.service, &*app.store.snapshot(), q.get("project_id"))?
        .iter()
        .map(|h| render::healthmonitor(h))
        .collect();
    app.collection(
        &ctx,
        &uri,
        "healthmonitors",
        Some("healthmonitors_links"),
        render::HM_ATTRS,
    )
    .respond(items, &q)
    .map(Json)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Health Monitor")?;
    let h = service::show(&ctx.service, &*app.store.snapshot(), id)?;
    Ok(Json(loadbalancers::one(
        "healthmonitor",
        render::healthmonitor(&h),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Health Monitor")?;
    let mut input = Input::from_root(body, "healthmonitor")?;
    let fields = parse_fields(&mut input)?;
    input.finish()?;
    let hm = app
        .store
        .write(|txn| service::update(&ctx.service, txn, id, fields))
        .await?;
    Ok(Json(json!({"healthmonitor": render::healthmonitor(&hm)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Health Monitor")?;
    app.store
        .write(|txn| service::delete(&ctx.service, txn, id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
