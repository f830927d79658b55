//! `/loadbalancers`: create (plain or fully populated), show, list, update,
//! delete (cascade), stats, status tree, failover.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::neutron::ipam;
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/loadbalancers", get(list).post(create))
        .route("/loadbalancers/{id}", get(show).put(update).delete(delete))
        .route("/loadbalancers/{id}/stats", get(stats))
        .route("/loadbalancers/{id}/status", get(status_tree))
        .route("/loadbalancers/{id}/statuses", get(status_tree))
        .route("/loadbalancers/{id}/failover", put(failover))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let scope = list_scope(&ctx, &q, "loadbalancer")?;
    let s = app.store.snapshot();
    let items = s
        .loadbalancers
        .iter()
        .filter(|lb| in_scope(&scope, &lb.project_id))
        .collect::<Vec<_>>();
    app.collection(
        &ctx,
        &uri,
        "loadbalancers",
        Some("loadbalancers_links"),
        render::LB_ATTRS,
    )
    .respond_lazy(
        items,
        &q,
        |x| render::loadbalancer_summary(x),
        |x| render::loadbalancer(&s, x),
    )
    .map(Json)
}

/// The load balancer `raw` names, readable by the caller.
fn readable(
    ctx: &RequestContext,
    s: &State,
    raw: &str,
    rule: &str,
) -> ApiResult<Arc<LoadBalancer>> {
    let lb = load_balancer(s, path_id(raw, "Load Balancer")?)?.clone();
    ctx.authorize(rule, &lb.project_id)?;
    Ok(lb)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let lb = readable(&ctx, &s, &id, "os_load-balancer_api:loadbalancer:get_one")?;
    Ok(Json(one(
        "loadbalancer",
        render::loadbalancer(&s, &lb),
        &query(&uri),
    )))
}

/// Every security group in `vip_sg_ids` must be one the caller may use (its
/// own; any for an admin); another project's is answered as a missing one.
fn check_vip_sg_ids(ctx: &RequestContext, s: &State, ids: &[Uuid]) -> ApiResult<()> {
    for id in ids {
        if crate::neutron::usable_security_group(ctx, s, *id).is_none() {
            return Err(ApiError::validation(format!(
                "Security group {id} not found."
            )));
        }
    }
    Ok(())
}

/// A single-object body, with `fields=` applied.
pub fn one(envelope: &str, o: crate::list::Object, q: &Query) -> Value {
    let fields = q.all("fields");
    let o = if fields.is_empty() {
        o
    } else {
        crate::list::select_fields(o, &fields)
    };
    json!({ envelope: o })
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "loadbalancer")?;
    let name = input.string("name", 255)?.value();
    let description = input.string("description", 255)?.value();
    let admin_state_up = input.boolean("admin_state_up")?.or(true);
    let project_id = input
        .project_id()?
        .unwrap_or_else(|| ctx.project_id.clone());
    let vip_subnet_id = input.uuid("vip_subnet_id")?.value();
    let vip_network_id = input.uuid("vip_network_id")?.value();
    let vip_port_id = input.uuid("vip_port_id")?.value();
    let vip_address = input.ip("vip_address")?.value();
    let vip_qos_policy_id = input.uuid("vip_qos_policy_id")?.value();
    let vip_sg_ids = input.uuid_list("vip_sg_ids")?.value().unwrap_or_default();
    let additional_vips = input.list("additional_vips")?.value().unwrap_or_default();
    let provider = input.string("provider", 64)?.value();
    let flavor_id = input.uuid("flavor_id")?.value();
    let availability_zone = input.string("availability_zone", 255)?.value();
    let tags = tags(&mut input)?.value().unwrap_or_default();
    let listeners = input.list("listeners")?.value().unwrap_or_default();
    let pools = input.list("pools")?.value().unwrap_or_default();
    input.finish()?;
    ctx.authorize("os_load-balancer_api:loadbalancer:post", &project_id)?;
    if vip_subnet_id.is_none() && vip_network_id.is_none() && vip_port_id.is_none() {
        return Err(ApiError::validation(
            "VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.",
        ));
    }
    if !additional_vips.is_empty() {
        return Err(ApiError::not_implemented(
            "Provider does not support additional_vips yet.",
        ));
    }
    let graph = super::graph_input::parse(listeners, pools)?;
    if let Some(ip) = crate::neutron::quotas::requested_host_address(&app, &ctx, vip_address)? {
        return Err(ApiError::validation(format!(
            "vip_address {ip} is an address of this host; only an administrator may use it."
        )));
    }

    let lb_id = Uuid::new_v4();
    let created = app
        .store
        .write(|txn| {
            let s = txn.state();
            // Provider: the flavor's, else the one asked for, else the default.
            let flavor_provider = match flavor_id {
                None => None,
                Some(fid) => {
                    let f = s
                        .flavors
                        .get(&fid)
                        .ok_or_else(|| ApiError::validation(format!("Invalid flavor_id {fid}.")))?;
                    if !f.enabled {
                        return Err(ApiError::validation(format!(
                            "The selected flavor is not allowed in this deployment: {fid}"
                        )));
                    }
                    s.flavor_profiles
                        .get(&f.flavor_profile_id)
                        .map(|p| p.provider_name.clone())
                }
            };
            let provider = match (&provider, &flavor_provider) {
                (Some(p), Some(fp)) if p != fp => {
                    return Err(ApiError::validation(format!(
                        "Flavor '{}' is not compatible with provider '{p}'",
                        flavor_id.map(|f| f.to_string()).unwrap_or_default()
                    )));
                }
                (Some(p), _) => p.clone(),
                (None, Some(fp)) => fp.clone(),
                (None, None) => app.settings.default_provider.clone(),
            };
            match app.settings.provider(&provider) {
                None => {
                    return Err(ApiError::bad_request(format!(
                        "Provider '{provider}' is not enabled."
                    )));
                }
                Some(p) if !p.available => {
                    return Err(ApiError::not_implemented(format!(
                        "Provider '{provider}' is not yet available in this deployment."
                    )));
                }
                Some(_) => {}
            }
            // The provider must still accept the flavor's metadata (501 for
            // what it cannot build, e.g. ACTIVE_STANDBY), as Octavia checks.
            if let Some(profile) = flavor_id
                .and_then(|f| s.flavors.get(&f))
                .and_then(|f| s.flavor_profiles.get(&f.flavor_profile_id))
            {
                super::flavors::validate_profile(&app, &provider, &profile.flavor_data)?;
            }
            if let Some(az) = &availability_zone {
                match s.availability_zones.get(az) {
                    None => {
                        return Err(ApiError::validation(format!(
                            "Invalid availability zone name {az}."
                        )));
                    }
                    Some(z) if !z.enabled => {
                        return Err(ApiError::validation(format!(
                            "The selected availability_zone is not allowed in this deployment: {az}"
                        )));
                    }
                    Some(_) => {}
                }
            }
            check_quota(
                &app.settings.quota_defaults,
                s,
                &project_id,
                QuotaKind::LoadBalancer,
                1,
            )?;
            check_vip_sg_ids(&ctx, s, &vip_sg_ids)?;
            if vip_port_id.is_none() {
                // The VIP port Statera creates is the project's, as Octavia's is:
                // it counts against the project's Neutron port quota.
                crate::neutron::quotas::check(
                    &app,
                    s,
                    &project_id,
                    crate::neutron::quotas::Resource::Port,
                    1,
                )
                .map_err(|e| ApiError::conflict(e.message))?;
            }
            let vip = ipam::plug_vip(
                txn,
                &ctx,
                &crate::neutron::quotas::address_space(&app)?,
                &project_id,
                lb_id,
                vip_subnet_id,
                vip_network_id,
                vip_port_id,
                vip_address,
            )?;
            if let Some(z) = availability_zone
                .as_ref()
                .and_then(|az| txn.state().availability_zones.get(az))
            {
                super::availability_zones::check_vip_network(txn.state(), z, vip.network_id)?;
            }
            let now = now();
            let lb = LoadBalancer {
                id: lb_id,
                project_id: project_id.clone(),
                name,
                description,
                admin_state_up,
                provisioning_status: ProvisioningStatus::PendingCreate,
                operating_status: OperatingStatus::Offline,
                vip_address: vip.address,
                vip_port_id: vip.port_id,
                vip_subnet_id: vip.subnet_id,
                vip_network_id: vip.network_id,
                vip_qos_policy_id,
                vip_sg_ids,
                additional_vips: Vec::new(),
                provider,
                flavor_id,
                availability_zone,
                tags,
                created_at: now,
                updated_at: None,
                config_version: 0,
            };
            txn.put(lb.clone())?;
            let nested = super::graph_input::create(&app, &ctx, txn, &lb, graph)?;
            txn.enqueue(lb_id, &[lb_id])?;
            Ok::<_, ApiError>(nested)
        })
        .await?;
    let s = app.store.snapshot();
    let lb = load_balancer(&s, lb_id)?;
    let mut o = render::loadbalancer(&s, lb);
    if let Some(nested) = created {
        o.insert("listeners".into(), nested.listeners);
        o.insert("pools".into(), nested.pools);
    }
    Ok((StatusCode::CREATED, Json(json!({"loadbalancer": o}))))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Load Balancer")?;
    let mut input = Input::from_root(body, "loadbalancer")?;
    let name = input.string("name", 255)?.update();
    let description = input.string("description", 255)?.update();
    let admin_state_up = input.boolean("admin_state_up")?.update();
    let vip_qos_policy_id = input.uuid("vip_qos_policy_id")?.update();
    let vip_sg_ids = input.uuid_list("vip_sg_ids")?.update();
    let tags = tags(&mut input)?.update();
    input.finish()?;
    app.store
        .write(|txn| {
            let lb = load_balancer(txn.state(), id)?;
            ctx.authorize("os_load-balancer_api:loadbalancer:put", &lb.project_id)?;
            if !status::accepts_changes(lb.provisioning_status) {
                return Err(ApiError::conflict(format!(
                    "Invalid state {} of loadbalancer resource {id}",
                    lb.provisioning_status
                )));
            }
            let mut lb = (**lb).clone();
            if let Some(v) = name {
                lb.name = v;
            }
            if let Some(v) = description {
                lb.description = v;
            }
            if let Some(v) = admin_state_up {
                lb.admin_state_up = v.unwrap_or(false);
            }
            if let Some(v) = vip_qos_policy_id {
                lb.vip_qos_policy_id = v;
            }
            if let Some(v) = vip_sg_ids {
                let v = v.unwrap_or_default();
                check_vip_sg_ids(&ctx, txn.state(), &v)?;
                lb.vip_sg_ids = v;
            }
            if let Some(v) = tags {
                lb.tags = v.unwrap_or_default();
            }
            lb.provisioning_status = ProvisioningStatus::PendingUpdate;
            lb.updated_at = Some(now());
            txn.put(lb)?;
            txn.enqueue(id, &[id])?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    Ok(Json(
        json!({"loadbalancer": render::loadbalancer(&s, load_balancer(&s, id)?)}),
    ))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Load Balancer")?;
    let cascade = query(&uri).flag("cascade");
    app.store
        .write(|txn| {
            let s = txn.state();
            let lb = load_balancer(s, id)?;
            ctx.authorize("os_load-balancer_api:loadbalancer:delete", &lb.project_id)?;
            if !status::accepts_delete(lb.provisioning_status) {
                return Err(ApiError::conflict(format!(
                    "Invalid state {} of loadbalancer resource {id}",
                    lb.provisioning_status
                )));
            }
            let has_children =
                s.listeners.children(id).next().is_some() || s.pools.children(id).next().is_some();
            if has_children && !cascade {
                return Err(ApiError::validation(format!(
                    "Cannot delete Load Balancer {id} - it has children"
                )));
            }
            mark_tree_deleted(txn, id)?;
            txn.enqueue(id, &[id])?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sum of listener counters.
pub fn stats_body(stats: impl Iterator<Item = statera_store::ListenerStats>) -> Value {
    let mut t = statera_store::ListenerStats::default();
    for s in stats {
        t.bytes_in += s.bytes_in;
        t.bytes_out += s.bytes_out;
        t.active_connections += s.active_connections;
        t.total_connections += s.total_connections;
        t.request_errors += s.request_errors;
    }
    json!({"stats": {
        "bytes_in": t.bytes_in, "bytes_out": t.bytes_out, "active_connections": t.active_connections,
        "total_connections": t.total_connections, "request_errors": t.request_errors,
    }})
}

async fn stats(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let lb = readable(&ctx, &s, &id, "os_load-balancer_api:loadbalancer:get_stats")?;
    Ok(Json(stats_body(
        s.listener_stats.children(lb.id).map(|x| **x),
    )))
}

async fn status_tree(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let lb = readable(
        &ctx,
        &s,
        &id,
        "os_load-balancer_api:loadbalancer:get_status",
    )?;
    let name = |n: &Option<String>| n.clone().unwrap_or_default();
    let pool_tree = |pid: Uuid| -> Option<Value> {
        let p = s.pools.get(&pid)?;
        let mut o = json!({
            "id": p.id, "name": name(&p.name),
            "provisioning_status": p.provisioning_status, "operating_status": p.operating_status,
            "members": s.members.children(p.id).map(|m| json!({
                "id": m.id, "name": name(&m.name), "operating_status": m.operating_status,
                "provisioning_status": m.provisioning_status, "address": m.address_text(),
                "protocol_port": m.protocol_port,
            })).collect::<Vec<_>>(),
        });
        if let Some(h) = s.pool_monitor(p.id) {
            o["health_monitor"] = json!({
                "id": h.id, "name": name(&h.name), "type": h.kind,
                "provisioning_status": h.provisioning_status, "operating_status": h.operating_status,
            });
        }
        Some(o)
    };
    let listeners: Vec<Value> = s
        .listeners
        .children(lb.id)
        .map(|l| {
            let mut pool_ids: Vec<Uuid> = l.default_pool_id.into_iter().collect();
            let mut policies: Vec<_> = s.l7policies.children(l.id).collect();
            policies.sort_by_key(|p| p.position);
            for p in policies {
                if let Some(pid) = p.redirect_pool_id
                    && !pool_ids.contains(&pid)
                {
                    pool_ids.push(pid);
                }
            }
            json!({
                "id": l.id, "name": name(&l.name),
                "operating_status": l.operating_status, "provisioning_status": l.provisioning_status,
                "pools": pool_ids.into_iter().filter_map(pool_tree).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"statuses": {"loadbalancer": {
        "id": lb.id, "name": name(&lb.name),
        "operating_status": lb.operating_status, "provisioning_status": lb.provisioning_status,
        "listeners": listeners,
    }}})))
}

async fn failover(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Load Balancer")?;
    let owner = app
        .store
        .snapshot()
        .loadbalancers
        .get(&id)
        .map(|lb| lb.project_id.clone())
        .unwrap_or_default();
    ctx.authorize("os_load-balancer_api:loadbalancer:put_failover", &owner)?;
    app.store
        .write(|txn| {
            let lb = load_balancer(txn.state(), id)?;
            if !status::accepts_delete(lb.provisioning_status) {
                return Err(ApiError::conflict(format!(
                    "Invalid state {} of loadbalancer resource {id}",
                    lb.provisioning_status
                )));
            }
            let mut lb = (**lb).clone();
            lb.provisioning_status = ProvisioningStatus::PendingUpdate;
            lb.updated_at = Some(now());
            txn.put(lb)?;
            txn.enqueue(id, &[id])?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::ACCEPTED)
}
