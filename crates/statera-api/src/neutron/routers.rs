//! `/routers` on the wire: reading requests (the external gateway, extra
//! routes, interface requests), rendering; the operations, and the
//! `add_router_interface` / `remove_router_interface` actions, are
//! `statera_service::neutron::routers`.

use super::resource::{self, Resource};
use super::*;
use crate::ApiSettings;
use crate::input::{JsonBody, NeutronJson, Opt};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::routing::put;
use statera_service::neutron::routers::{
    self as service, GatewayRequest, InterfaceInfo, InterfaceRequest, NewRouter, RouterFields,
};
use statera_service::{Context, ServiceError, ServiceResult};
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    resource::routes::<Routers>()
        .route("/routers/{id}/add_router_interface", put(add_interface))
        .route(
            "/routers/{id}/remove_router_interface",
            put(remove_interface),
        )
}

/// `/routers` in the shape every Neutron resource shares ([`resource`]).
pub struct Routers;

impl Resource for Routers {
    type Model = L3Router;
    type New = NewRouter;
    type Fields = RouterFields;
    const ENVELOPE: &'static str = "router";
    const PLURAL: &'static str = "routers";
    const ATTRS: &'static [&'static str] = render::ROUTER_ATTRS;

    fn missing(raw: &str) -> ServiceError {
        statera_service::neutron::router_not_found(raw)
    }
    fn render(s: &State, r: &L3Router) -> Object {
        render::router(s, r)
    }
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<L3Router>>> {
        service::list(ctx, s)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<L3Router>> {
        service::show(ctx, s, id)
    }
    fn parse_create(input: &mut Input) -> ApiResult<NewRouter> {
        let new = NewRouter {
            name: input.string("name", 255)?.value(),
            description: input.string("description", 255)?.value(),
            admin_state_up: input.boolean("admin_state_up")?.value(),
            gateway: gateway_input(input)?.value(),
            tags: crate::octavia::tags(input)?.value(),
            project_id: input.project_id()?,
        };
        fixed_attributes(input)?;
        Ok(new)
    }
    fn create(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        new: NewRouter,
    ) -> ServiceResult<Uuid> {
        service::create(ctx, txn, settings, new)
    }
    fn parse_update(input: &mut Input) -> ApiResult<RouterFields> {
        let fields = RouterFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            gateway: gateway_input(input)?,
            routes: super::subnets::route_list(input, "routes")?,
            tags: crate::octavia::tags(input)?,
            restated: Vec::new(),
            rejected: None,
        };
        fixed_attributes(input)?;
        Ok(fields)
    }
    /// The router's project may be restated; it and unknown attributes are
    /// answered once the router is found (a router the caller does not see
    /// is 404 whatever the body holds).
    fn finish_update(mut fields: RouterFields, mut input: Input) -> ApiResult<RouterFields> {
        fields.restated = resource::restated(&mut input, &["project_id", "tenant_id"]);
        fields.rejected = resource::leftover(input);
        Ok(fields)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        id: Uuid,
        f: RouterFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, settings, id, f)
    }
    fn delete(ctx: &Context, txn: &mut Txn, _: &ApiSettings, id: Uuid) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

/// The attributes Statera shows with one fixed value (or not at all).
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    let is_false = |v: &Value| crate::input::parse_bool(v) == Some(false);
    only_default(input, "availability_zone_hints", |v| {
        v.as_array().is_some_and(|a| a.is_empty())
    })?;
    only_default(input, "distributed", is_false)?;
    only_default(input, "ha", is_false)?;
    only_default(input, "flavor_id", |_| false)?;
    Ok(())
}

/// `external_gateway_info`: absent leaves it, `{}` or null clears it (null),
/// anything else sets it.
fn gateway_input(input: &mut Input) -> ApiResult<Opt<GatewayRequest>> {
    let m = match input.object("external_gateway_info")? {
        Opt::Absent => return Ok(Opt::Absent),
        Opt::Null => return Ok(Opt::Null),
        Opt::Set(m) if m.is_empty() => return Ok(Opt::Null),
        Opt::Set(m) => m,
    };
    let mut g = Input::from_value(Value::Object(m), "external_gateway_info")?;
    let network_id = g.uuid("network_id")?.value().ok_or_else(|| {
        invalid_field(
            "external_gateway_info",
            "Validation of dictionary's keys failed. Expected keys: {'network_id'}",
        )
    })?;
    let enable_snat = g.boolean("enable_snat")?.value();
    let fixed_ips = super::ports::fixed_ip_list(&mut g, "external_fixed_ips")?.value();
    only_default(&mut g, "qos_policy_id", |_| false)?;
    g.finish()?;
    Ok(Opt::Set(GatewayRequest {
        network_id,
        enable_snat,
        fixed_ips,
    }))
}

// ---- interfaces -------------------------------------------------------------------------

/// `{subnet_id}` and/or `{port_id}` of an interface request (no envelope).
fn interface_input(body: Value) -> ApiResult<InterfaceRequest> {
    let mut input = match body {
        Value::Object(_) => Input::from_value(body, "router")?,
        _ => {
            return Err(
                ApiError::bad_request("Body contains invalid data").neutron("HTTPBadRequest")
            );
        }
    };
    let subnet_id = input.uuid("subnet_id")?.value();
    let port_id = input.uuid("port_id")?.value();
    // Neutron ignores whatever else an interface request carries.
    Ok(InterfaceRequest { subnet_id, port_id })
}

/// Neutron's answer to an interface change.
fn interface_info(i: InterfaceInfo) -> Value {
    json!({
        "id": i.router_id,
        "tenant_id": i.project_id,
        "project_id": i.project_id,
        "port_id": i.port_id,
        "subnet_id": i.subnet_ids.first(),
        "subnet_ids": i.subnet_ids,
        "network_id": i.network_id,
    })
}

async fn add_interface(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(
        async {
            let id = path_uuid(&id, router_not_found)?;
            let req = interface_input(body)?;
            let info = app
                .store
                .write(|txn| service::add_interface(&ctx.service, txn, &*app.settings, id, req))
                .await?;
            Ok(Json(interface_info(info)))
        }
        .await,
    )
}

async fn remove_interface(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(
        async {
            let id = path_uuid(&id, router_not_found)?;
            let req = interface_input(body)?;
            let info = app
                .store
                .write(|txn| service::remove_interface(&ctx.service, txn, id, req))
                .await?;
            Ok(Json(interface_info(info)))
        }
        .await,
    )
}
