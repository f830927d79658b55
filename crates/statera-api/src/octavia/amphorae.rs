//! `/octavia/amphorae`: the admin view of the data-plane instances serving
//! load balancers (one row per served load balancer, kept by the
//! controller). Every route is admin only. The wire only (routes,
//! rendering, the list's `project_id` filter); the operations are
//! `statera_service::octavia::amphorae`.

use super::loadbalancers::one;
use super::*;
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde_json::{Value, json};
use statera_service::octavia::amphorae as service;

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
        "image_id": a.image_id,
        "compute_flavor": null,
    }) {
        Value::Object(o) => o,
        _ => Object::new(),
    }
}

/// `?project_id=` filters by the owning load balancer's project: the rows
/// carry it under this key while the list is filtered, and lose it after.
const PROJECT_KEY: &str = "project_id";

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let items = service::list(&ctx.service, &*app.store.snapshot())?
        .into_iter()
        .map(|(a, project)| {
            let mut o = render_amphora(&a);
            o.insert(PROJECT_KEY.into(), json!(project));
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
    let a = service::show(&ctx.service, &*app.store.snapshot(), &id)?;
    Ok(Json(one("amphora", render_amphora(&a), &query(&uri))))
}

/// Only an amphora in ERROR may be deleted (409 otherwise).
async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    // Before the write, as Octavia's policy check comes first.
    service::authorize(&ctx.service, "delete")?;
    app.store
        .write(|txn| service::delete(&ctx.service, txn, &id))
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
    service::authorize(&ctx.service, "put_failover")?;
    app.store
        .write(|txn| service::failover(&ctx.service, txn, &id))
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
    service::config(&ctx.service, &*app.store.snapshot(), &id)?;
    Ok(StatusCode::ACCEPTED)
}

/// One entry per listener of the amphora's load balancer.
async fn stats(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (a, listeners) = service::stats(&ctx.service, &*app.store.snapshot(), &id)?;
    let items: Vec<Value> = listeners
        .into_iter()
        .map(|(listener_id, st)| {
            json!({
                "id": a.id,
                "loadbalancer_id": a.loadbalancer_id,
                "listener_id": listener_id,
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
