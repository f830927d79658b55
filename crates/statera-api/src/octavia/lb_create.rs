//! `POST /loadbalancers` (plain or fully populated) on the wire: the request
//! read (a fully populated create's objects by `graph_input.rs`), then the
//! service's create (`statera_service::octavia::loadbalancers::create`:
//! provider, flavor, availability zone, quota, the nested objects) with the
//! network side given as its `plug`: the Neutron port quota and the VIP
//! plugged through the Neutron subset's IPAM
//! (`statera_service::neutron::ipam::plug_lb_vip`, on the write transaction).

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::render;
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use serde_json::{Value, json};
use statera_service::neutron::ipam::{self, VipRequest};
use statera_service::octavia::loadbalancers::{self as service, NewLoadBalancer};

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
    service::admit_create(&ctx.service, &project_id)?;
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
    if let Some(g) = &graph {
        let refs = g
            .listeners
            .iter()
            .flat_map(|l| crate::certificates::listener_refs(l.protocol, &l.fields))
            .chain(
                g.pools
                    .iter()
                    .flat_map(|p| crate::certificates::pool_refs(&p.fields)),
            )
            .collect();
        crate::certificates::check(&app, &ctx, refs, Some(project_id.clone())).await?;
    }
    ipam::check_vip_address(&ctx.service, &*app.settings, vip_address)?;

    let lb_id = Uuid::new_v4();
    let new = NewLoadBalancer {
        id: lb_id,
        project_id: project_id.clone(),
        name,
        description,
        admin_state_up,
        vip_qos_policy_id,
        vip_sg_ids,
        provider,
        flavor_id,
        availability_zone,
        tags,
        graph,
    };
    let vip = VipRequest {
        subnet_id: vip_subnet_id,
        network_id: vip_network_id,
        port_id: vip_port_id,
        address: vip_address,
    };
    let settings = &*app.settings;
    let plug =
        |txn: &mut Txn| ipam::plug_lb_vip(&ctx.service, txn, settings, &project_id, lb_id, vip);
    let created = app
        .store
        .write(|txn| service::create(&ctx.service, txn, &*app.settings, new, plug))
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
