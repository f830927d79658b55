//! `/providers`: the provider drivers this deployment knows, and the flavor
//! and availability-zone metadata keys each accepts. The wire only: the
//! reads are `statera_service::octavia::providers`.

use super::*;
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;
use serde_json::{Value, json};
use statera_service::octavia::providers as service;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/providers", get(list))
        .route(
            "/providers/{provider}/flavor_capabilities",
            get(flavor_capabilities),
        )
        .route(
            "/providers/{provider}/availability_zone_capabilities",
            get(availability_zone_capabilities),
        )
}

const ATTRS: &[&str] = &["name", "description"];

fn name_description(name: &str, description: &str) -> Object {
    let mut o = Object::new();
    o.insert("name".into(), json!(name));
    o.insert("description".into(), json!(description));
    o
}

/// A list without links, in the deployment's order unless a sort is asked
/// for, with `fields=` and the `name`/`description` filters.
fn respond(
    app: &AppState,
    ctx: &RequestContext,
    uri: &axum::http::Uri,
    plural: &str,
    items: Vec<Object>,
) -> ApiResult<Json<Value>> {
    let mut c = app.collection(ctx, uri, plural, None, ATTRS);
    c.strict_filters = false;
    let q = query(uri);
    // The collection sorts by name when no sort is given; keep the
    // configured order instead, as Octavia does.
    let sorted = q.get("sort").is_some() || q.get("sort_key").is_some();
    let order: Vec<String> = items
        .iter()
        .filter_map(|o| o.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut body = c.respond(items, &q)?;
    if !sorted && let Some(Value::Array(list)) = body.get_mut(plural) {
        list.sort_by_key(|o| {
            o.get("name")
                .and_then(Value::as_str)
                .and_then(|n| order.iter().position(|x| x == n))
                .unwrap_or(usize::MAX)
        });
    }
    Ok(Json(body))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let items = service::list(&ctx.service, &*app.settings)?
        .iter()
        .map(|(name, description)| name_description(name, description))
        .collect();
    respond(&app, &ctx, &uri, "providers", items)
}

async fn flavor_capabilities(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(provider): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let items = service::flavor_capabilities(&ctx.service, &*app.settings, &provider)?
        .iter()
        .map(|(n, d)| name_description(n, d))
        .collect();
    respond(&app, &ctx, &uri, "flavor_capabilities", items)
}

async fn availability_zone_capabilities(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(provider): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let items = service::availability_zone_capabilities(&ctx.service, &*app.settings, &provider)?
        .iter()
        .map(|(n, d)| name_description(n, d))
        .collect();
    respond(&app, &ctx, &uri, "availability_zone_capabilities", items)
}

/// Octavia's availability-zone metadata keys, with what each means here
/// (docs/API.md): what `statera serve` offers on every provider.
pub fn octavia_availability_zone_capabilities() -> Vec<(String, String)> {
    [
        (
            "compute_zone",
            "A label for where the load balancer runs (informational: every load balancer \
             runs on this host).",
        ),
        (
            "management_network",
            "The ID of an existing network; checked, otherwise unused (the data planes are \
             reached in process, with no management network).",
        ),
        (
            "valid_vip_networks",
            "The IDs of the networks a load balancer in this zone may have its VIP on.",
        ),
        (
            ZONE_AGENTS,
            "The names of the agents (statera agent --name) that may serve this zone's load \
             balancers, when statera serve drives agents (--agent-listen); any agent when \
             absent.",
        ),
    ]
    .into_iter()
    .map(|(k, d)| (k.to_string(), d.to_string()))
    .collect()
}

/// The availability-zone metadata key naming a zone's agents.
pub const ZONE_AGENTS: &str = "agents";

/// The agents a zone's `availability_zone_data` names (`None`: any agent).
pub fn zone_agents(availability_zone_data: &str) -> Option<Vec<String>> {
    let data: Value = serde_json::from_str(availability_zone_data).ok()?;
    let names = data.get(ZONE_AGENTS)?.as_array()?;
    Some(
        names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    )
}
