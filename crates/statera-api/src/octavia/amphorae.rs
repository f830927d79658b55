//! `/octavia/amphorae`: the admin view of the data-plane instances serving
//! load balancers (one row per served load balancer, kept by the
//! controller). Every route is admin only.

use super::loadbalancers::one;
use super::*;
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/amphorae", get(list))
        .route("/amphorae/{id}", get(show).delete(delete))
        .route("/amphorae/{id}/failover", put(failover))
        .route("/amphorae/{id}/config", put(config))
        .route("/amphorae/{id}/stats", get(stats))
}

pub const AMPHORA_ATTRS: &[&str] = &[
    "id",
    "loadbalancer_id",
    "compute_id",
    "lb_network_ip",
    "vrrp_ip",
    "ha_ip",
    "vrrp_port_id",
    "ha_port_id",
    "cert_expiration",
    "cert_busy",
    "role",
    "status",
    "vrrp_interface",
    "vrrp_id",
    "vrrp_priority",
    "cached_zone",
    "created_at",
    "updated_at",
    "image_id",
    "compute_flavor",
];

pub fn render_amphora(a: &Amphora) -> Object {
    let ts = crate::render::ts;
    match json!({
        "id": a.id,
        "loadbalancer_id": a.loadbalancer_id,
        "compute_id": a.compute_id,
        "lb_network_ip": a.lb_network_ip.map(|ip| ip.to_string()),
        "vrrp_ip": null,
        "ha_ip": a.ha_ip.map(|ip| ip.to_string()),
        "vrrp_port_id": null,
        "ha_port_id": a.ha_port_id,
        "cert_expiration": null,
        "cert_busy": false,
        "role": a.role,
        "status": a.status,
        "vrrp_interface": null,
        "vrrp_id": null,
        "vrrp_priority": null,
        "cached_zone": a.cached_zone,
        "created_at": ts(&a.created_at),
        "updated_at": a.updated_at.as_ref().map(ts),
        "image_id": null,
        "compute_flavor": null,
    }) {
        Value::Object(o) => o,
        _ => Object::new(),
    }
}

fn amphora(s: &State, raw: &str) -> ApiResult<Arc<Amphora>> {
    let id = path_id(raw, "Amphora")?;
    s.amphorae
        .get(&id)
        .filter(|a| a.status != AmphoraStatus::Deleted)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Amphora", id))
}

/// `?project_id=` filters by the owning load balancer's project: the rows
/// carry it under this key while the list is filtered, and lose it after.
const PROJECT_KEY: &str = "project_id";

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize("os_load-balancer_api:amphora:get_all", &ctx.project_id)?;
    let s = app.store.snapshot();
    let items = s
        .amphorae
        .iter()
        .filter(|a| a.status != AmphoraStatus::Deleted)
        .map(|a| {
            let mut o = render_amphora(a);
            let project = s
                .loadbalancers
                .get(&a.loadbalancer_id)
                .map(|lb| json!(lb.project_id))
                .unwrap_or(Value::Null);
            o.insert(PROJECT_KEY.into(), project);
            o
        })
        .collect();
    let mut attrs: Vec<&str> = AMPHORA_ATTRS.to_vec();
    attrs.push(PROJECT_KEY);
    let mut body = app
        .collection(&ctx, &uri, "amphorae", Some("amphorae_links"), &attrs)
        .respond(items, &query(&uri))?;
    if let Some(Value::Array(list)) = body.get_mut("amphorae") {
        for o in list.iter_mut().filter_map(Value::as_object_mut) {
            o.remove(PROJECT_KEY);
        }
    }
    Ok(Json(body))
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize("os_load-balancer_api:amphora:get_one", &ctx.project_id)?;
    let s = app.store.snapshot();
    let a = amphora(&s, &id)?;
    Ok(Json(one("amphora", render_amphora(&a), &query(&uri))))
}

/// Only an amphora in ERROR may be deleted (409 otherwise).
async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize("os_load-balancer_api:amphora:delete", &ctx.project_id)?;
    app.store
        .write(|txn| {
            let a = amphora(txn.state(), &id)?;
            if a.status != AmphoraStatus::Error {
                return Err(ApiError::immutable("Amphora", a.id));
            }
            txn.delete::<Amphora>(&a.id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Fail the amphora over: its load balancer must be ACTIVE (409 otherwise),
/// goes PENDING_UPDATE, and the controller is owed work.
async fn failover(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize("os_load-balancer_api:amphora:put_failover", &ctx.project_id)?;
    app.store
        .write(|txn| {
            let a = amphora(txn.state(), &id)?;
            Ok::<_, ApiError>(lock_lb(txn, a.loadbalancer_id, &[a.loadbalancer_id])?)
        })
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Push the configuration again: nothing to do beyond checking it exists
/// (the controller reconciles continuously).
async fn config(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize("os_load-balancer_api:amphora:put_config", &ctx.project_id)?;
    amphora(&app.store.snapshot(), &id)?;
    Ok(StatusCode::ACCEPTED)
}

/// One entry per listener of the amphora's load balancer.
async fn stats(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.authorize("os_load-balancer_api:amphora:get_stats", &ctx.project_id)?;
    let s = app.store.snapshot();
    let a = amphora(&s, &id)?;
    let items: Vec<Value> = s
        .listeners
        .children(a.loadbalancer_id)
        .map(|l| {
            let st = s.listener_stats.get(&l.id).map(|x| **x).unwrap_or_default();
            json!({
                "id": a.id,
                "loadbalancer_id": a.loadbalancer_id,
                "listener_id": l.id,
                "active_connections": st.active_connections,
                "bytes_in": st.bytes_in,
                "bytes_out": st.bytes_out,
                "request_errors": st.request_errors,
                "total_connections": st.total_connections,
            })
        })
        .collect();
    Ok(Json(json!({ "amphora_stats": items })))
}
