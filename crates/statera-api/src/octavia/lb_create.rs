//! `POST /loadbalancers` (plain or fully populated): still in statera-api,
//! not yet moved to the service layer. It plugs the VIP through the Neutron
//! subset's IPAM (`neutron::ipam::plug_vip`, on the write transaction),
//! checks the Neutron port quota and the host-address rule, the provider,
//! flavor and availability zone against the deployment; the nested objects
//! of a fully populated create are read by `graph_input.rs` and built by
//! the service (`statera_service::octavia::graph`).

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::neutron::ipam;
use crate::render;
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use serde_json::{Value, json};
use statera_service::octavia::loadbalancers::check_vip_sg_ids;

pub async fn create(
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
            check_vip_sg_ids(&ctx.service, s, &vip_sg_ids)?;
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
            let listeners = match graph {
                Some(graph) => Some(statera_service::octavia::graph::create(
                    &ctx.service,
                    txn,
                    &*app.settings,
                    &lb,
                    graph,
                )?),
                None => None,
            };
            txn.enqueue(lb_id, &[lb_id])?;
            Ok::<_, ApiError>(listeners)
        })
        .await?;
    let s = app.store.snapshot();
    let lb = load_balancer(&s, lb_id)?;
    let mut o = render::loadbalancer(&s, lb);
    if let Some(listeners) = created {
        let nested = super::graph_input::nested(&s, lb, &listeners);
        o.insert("listeners".into(), nested.listeners);
        o.insert("pools".into(), nested.pools);
    }
    Ok((StatusCode::CREATED, Json(json!({"loadbalancer": o}))))
}
