//! `/quotas`: per-project limits, their listing and the deployment defaults.
//!
//! Every quota body carries both spellings of the two renamed limits
//! (`loadbalancer`/`load_balancer`, `healthmonitor`/`health_monitor`):
//! gophercloud and openstacksdk read the old ones, the CLI the new ones.
//! A project without a row uses the deployment defaults; `DELETE` removes
//! the row. The wire only (reading, both spellings, rendering); the
//! operations are `statera_service::octavia::quotas`.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
pub use statera_service::octavia::quotas::Limits;
use statera_service::octavia::quotas::{self as service, QuotaFields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/quotas", get(list))
        // A static segment wins over `{project_id}` in the router.
        .route("/quotas/defaults", get(defaults))
        .route("/quotas/{project_id}", get(show).put(update).delete(delete))
        .route("/quotas/{project_id}/default", get(project_defaults))
}

/// Every attribute a quota can show (filters and sort keys).
pub const QUOTA_ATTRS: &[&str] = &[
    "project_id",
    "tenant_id",
    "loadbalancer",
    "load_balancer",
    "listener",
    "member",
    "pool",
    "healthmonitor",
    "health_monitor",
    "l7policy",
    "l7rule",
];

/// The wire form, with both spellings, and the project when there is one.
pub fn render(limits: &Limits, project_id: Option<&str>) -> Object {
    let mut o = match json!({
        "loadbalancer": limits.loadbalancer,
        "load_balancer": limits.loadbalancer,
        "listener": limits.listener,
        "member": limits.member,
        "pool": limits.pool,
        "healthmonitor": limits.healthmonitor,
        "health_monitor": limits.healthmonitor,
        "l7policy": limits.l7policy,
        "l7rule": limits.l7rule,
    }) {
        Value::Object(o) => o,
        _ => Object::new(),
    };
    if let Some(p) = project_id {
        o.insert("project_id".into(), json!(p));
        o.insert("tenant_id".into(), json!(p));
    }
    o
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let s = app.store.snapshot();
    // Quotas have no id: the project stands in for it (as paging marker and
    // tie-breaker) while the list is sorted and paged, and is dropped after.
    let items = service::list(&ctx.service, &*s, q.get("project_id"))?
        .iter()
        .map(|quota| {
            let mut o = render(&Limits::of(quota), Some(&quota.project_id));
            o.insert(MARKER_KEY.into(), json!(quota.project_id));
            o
        })
        .collect();
    let mut attrs = QUOTA_ATTRS.to_vec();
    attrs.push(MARKER_KEY);
    let mut body = app
        .collection(&ctx, &uri, "quotas", Some("quotas_links"), &attrs)
        .respond(items, &q)?;
    if let Some(Value::Array(list)) = body.get_mut("quotas") {
        for o in list.iter_mut().filter_map(Value::as_object_mut) {
            o.remove(MARKER_KEY);
        }
    }
    Ok(Json(body))
}

/// The key the collection pages by.
const MARKER_KEY: &str = "id";

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let limits = service::show(
        &ctx.service,
        &*app.store.snapshot(),
        &app.settings.quota_defaults,
        &project_id,
    )?;
    let o = render(&limits, Some(&project_id));
    Ok(Json(super::loadbalancers::one("quota", o, &query(&uri))))
}

/// `GET /quotas/{project_id}/default`: the deployment defaults.
async fn project_defaults(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let limits = service::defaults(&ctx.service, &app.settings.quota_defaults, &project_id)?;
    let o = render(&limits, None);
    Ok(Json(super::loadbalancers::one("quota", o, &query(&uri))))
}

/// `GET /quotas/defaults` (the CLI's and openstacksdk's way to ask): the
/// deployment defaults, readable by anyone who may read their own quota.
async fn defaults(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let limits = service::defaults(&ctx.service, &app.settings.quota_defaults, &ctx.project_id)?;
    let o = render(&limits, None);
    Ok(Json(super::loadbalancers::one("quota", o, &query(&uri))))
}

const MIN_QUOTA: i64 = -1;
const MAX_QUOTA: i64 = 2_000_000_000;

/// One limit under either of its spellings; the current one wins when both
/// are given (as Octavia's `to_dict` does).
fn limit(input: &mut Input, key: &str, old_key: Option<&str>) -> ApiResult<Opt<i64>> {
    let old = match old_key {
        Some(k) => input.int(k, MIN_QUOTA, MAX_QUOTA)?,
        None => Opt::Absent,
    };
    let new = input.int(key, MIN_QUOTA, MAX_QUOTA)?;
    Ok(if new.is_absent() { old } else { new })
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Before reading the body, as Octavia's policy check comes first.
    service::authorize(&ctx.service, "put", &project_id)?;
    let mut input = Input::from_envelope(body, "quota")?;
    let fields = QuotaFields {
        loadbalancer: limit(&mut input, "loadbalancer", Some("load_balancer"))?,
        listener: limit(&mut input, "listener", None)?,
        member: limit(&mut input, "member", None)?,
        pool: limit(&mut input, "pool", None)?,
        healthmonitor: limit(&mut input, "healthmonitor", Some("health_monitor"))?,
        l7policy: limit(&mut input, "l7policy", None)?,
        l7rule: limit(&mut input, "l7rule", None)?,
    };
    // Clients that echo a whole quota back send its project too; the path
    // names the project, so these are accepted and ignored.
    input.project_id()?;
    input.finish()?;
    let limits = app
        .store
        .write(|txn| service::update(&ctx.service, txn, &project_id, fields))
        .await?;
    let o = render(
        &limits.effective(&app.settings.quota_defaults),
        Some(&project_id),
    );
    Ok((StatusCode::ACCEPTED, Json(json!({ "quota": o }))))
}

/// Back to the deployment defaults. Idempotent: a project without a row
/// already has them.
async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    app.store
        .write(|txn| service::delete(&ctx.service, txn, &project_id))
        .await?;
    Ok(StatusCode::ACCEPTED)
}
