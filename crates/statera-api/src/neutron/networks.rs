//! `/networks`: list, create, show, update, delete.

use super::*;
use crate::input::{JsonBody, NeutronJson};
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list).post(create))
        .route("/networks/{id}", get(show).put(update).delete(delete))
}

/// Ports Neutron removes by itself when their network goes.
fn auto_deleted(p: &Port) -> bool {
    p.device_owner == "network:dhcp"
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let items = s
            .networks
            .iter()
            .filter(|n| network_visible(&ctx, n))
            .map(|n| render::network(&s, n))
            .collect();
        list_body(
            &app,
            &ctx,
            &uri,
            "networks",
            render::NETWORK_ATTRS,
            &[],
            items,
        )
        .map(Json)
    })
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let n = visible_network(&ctx, &s, path_id(&id, "Network", "NetworkNotFound")?)?;
        Ok(Json(one("network", render::network(&s, &n), &uri)))
    })
}

/// The attributes Statera shows with one fixed value; a request may only
/// restate that value.
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    only_default(input, "port_security_enabled", |v| {
        crate::input::parse_bool(v) == Some(true)
    })?;
    only_default(input, "availability_zone_hints", |v| {
        v.as_array().is_some_and(|a| a.is_empty())
    })?;
    only_default(input, "provider:network_type", |v| v == "local")?;
    only_default(input, "provider:physical_network", |_| false)?;
    only_default(input, "provider:segmentation_id", |_| false)?;
    only_default(input, "qos_policy_id", |_| false)?;
    only_default(input, "is_default", |v| {
        crate::input::parse_bool(v) == Some(false)
    })?;
    Ok(())
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(create_network(ctx, app, body).await)
}

async fn create_network(
    ctx: RequestContext,
    app: AppState,
    body: Value,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = envelope(body, "network")?;
    let name = input.string("name", 255)?.value().unwrap_or_default();
    let description = input
        .string("description", 255)?
        .value()
        .unwrap_or_default();
    let admin_state_up = input.boolean("admin_state_up")?.or(true);
    let shared = input.boolean("shared")?.or(false);
    let external = input.boolean("router:external")?.or(false);
    let mtu = input.int("mtu", 68, 65_535)?.or(1500) as u32;
    let tags = crate::octavia::tags(&mut input)?
        .value()
        .unwrap_or_default();
    let project_id = input
        .project_id()?
        .unwrap_or_else(|| ctx.project_id.clone());
    fixed_attributes(&mut input)?;
    input.finish()?;
    if !ctx.allowed("create_network", &project_id) {
        return Err(forbidden("create_network"));
    }
    if shared && !ctx.allowed("create_network:shared", &project_id) {
        return Err(forbidden("create_network:shared"));
    }
    if external && !ctx.allowed("create_network:router:external", &project_id) {
        return Err(forbidden("create_network:router:external"));
    }
    let n = Network {
        id: Uuid::new_v4(),
        project_id,
        name,
        description,
        admin_state_up,
        shared,
        external,
        mtu,
        tags,
        created_at: now(),
        updated_at: None,
    };
    let id = n.id;
    app.store
        .write(|txn| {
            let project = n.project_id.clone();
            super::quotas::check(
                &app,
                txn.state(),
                &project,
                super::quotas::Resource::Network,
                1,
            )?;
            txn.put(n)?;
            Ok::<(), ApiError>(())
        })
        .await?;
    let s = app.store.snapshot();
    let n = visible_network(&ctx, &s, id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"network": render::network(&s, &n)})),
    ))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(update_network(ctx, app, id, body).await)
}

async fn update_network(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Network", "NetworkNotFound")?;
    let mut input = envelope(body, "network")?;
    let name = input.string("name", 255)?.update();
    let description = input.string("description", 255)?.update();
    let admin_state_up = input.boolean("admin_state_up")?.update();
    let shared = input.boolean("shared")?.update();
    let external = input.boolean("router:external")?.update();
    let mtu = input.int("mtu", 68, 65_535)?.update();
    let tags = crate::octavia::tags(&mut input)?.update();
    fixed_attributes(&mut input)?;
    input.finish()?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let mut n = visible_network(&ctx, s, id)?;
            if !ctx.allowed("update_network", &n.project_id) {
                return Err(forbidden("update_network"));
            }
            if let Some(v) = name {
                n.name = v.unwrap_or_default();
            }
            if let Some(v) = description {
                n.description = v.unwrap_or_default();
            }
            if let Some(v) = admin_state_up {
                n.admin_state_up = v.unwrap_or(true);
            }
            if let Some(v) = shared {
                let v = v.unwrap_or(false);
                if v != n.shared && !ctx.allowed("update_network:shared", &n.project_id) {
                    return Err(forbidden("update_network:shared"));
                }
                let foreign = s.ports.children(id).any(|p| p.project_id != n.project_id)
                    || s.subnets.children(id).any(|x| x.project_id != n.project_id);
                if !v && foreign {
                    return Err(conflict(
                        "InvalidSharedSetting",
                        format!(
                            "Unable to reconfigure sharing settings for network {id}. \
                             Multiple tenants are using it."
                        ),
                    ));
                }
                n.shared = v;
            }
            if let Some(v) = external {
                let v = v.unwrap_or(false);
                if v != n.external && !ctx.allowed("update_network:router:external", &n.project_id)
                {
                    return Err(forbidden("update_network:router:external"));
                }
                let gateways = s.routers.iter().any(|r| {
                    r.external_gateway
                        .as_ref()
                        .is_some_and(|g| g.network_id == id)
                }) || s.floating_ips.iter().any(|f| f.floating_network_id == id);
                if n.external && !v && gateways {
                    return Err(conflict(
                        "ExternalNetworkInUse",
                        format!(
                            "External network {id} cannot be updated to be made non-external, \
                             since it has existing gateway ports."
                        ),
                    ));
                }
                n.external = v;
            }
            if let Some(v) = mtu {
                n.mtu = v.unwrap_or(1500) as u32;
            }
            if let Some(v) = tags {
                n.tags = v.unwrap_or_default();
            }
            n.updated_at = Some(now());
            txn.put(n)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let n = visible_network(&ctx, &s, id)?;
    Ok(Json(json!({"network": render::network(&s, &n)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(delete_network(ctx, app, id).await)
}

async fn delete_network(ctx: RequestContext, app: AppState, id: String) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Network", "NetworkNotFound")?;
    app.store
        .write(|txn| {
            let s = txn.state().clone();
            let n = visible_network(&ctx, &s, id)?;
            if !ctx.allowed("delete_network", &n.project_id) {
                return Err(forbidden("delete_network"));
            }
            if s.ports.children(id).any(|p| !auto_deleted(p)) {
                return Err(conflict(
                    "NetworkInUse",
                    format!(
                        "Unable to complete operation on network {id}. \
                         There are one or more ports still in use on the network."
                    ),
                ));
            }
            for sub in s.subnets.children(id) {
                if let Some(user) = super::subnets::lb_user(&ctx, &s, sub.id) {
                    return Err(conflict(
                        "NetworkInUse",
                        format!(
                            "Unable to complete operation on network {id}. \
                             Its subnet {} is used by {user}.",
                            sub.id
                        ),
                    ));
                }
            }
            for p in s.ports.children(id) {
                txn.delete::<Port>(&p.id);
            }
            for sub in s.subnets.children(id) {
                txn.delete::<Subnet>(&sub.id);
            }
            txn.delete::<Network>(&id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
