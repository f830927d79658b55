//! `/routers`: list, create, show, update (name, gateway, extra routes),
//! delete, and `add_router_interface` / `remove_router_interface`.
//!
//! A router's legs are ports with `device_id` = the router: the gateway port
//! (`network:router_gateway`, no project) on an external network, and one
//! `network:router_interface` port per attached subnet, which holds that
//! subnet's gateway address (or whatever address a port brought along).

use super::floatingips::associated;
use super::ports::{FixedIpRequest, assign_fixed_ips, fixed_ip_list, service_port};
use super::subnets::AddressSpace;
use super::*;
use crate::input::{JsonBody, NeutronJson, Opt};
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::{get, put};
use ipnet::IpNet;
use statera_store::Txn;

/// Neutron's default `max_routes`.
const MAX_ROUTES: usize = 30;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/routers", get(list).post(create))
        .route("/routers/{id}", get(show).put(update).delete(delete))
        .route("/routers/{id}/add_router_interface", put(add_interface))
        .route(
            "/routers/{id}/remove_router_interface",
            put(remove_interface),
        )
}

// ---- legs -------------------------------------------------------------------------------

/// The interface ports of router `id`.
pub(crate) fn interfaces(s: &State, id: Uuid) -> Vec<Port> {
    let device = id.to_string();
    s.ports
        .iter()
        .filter(|p| p.device_owner == device_owner::ROUTER_INTERFACE && p.device_id == device)
        .map(|p| (**p).clone())
        .collect()
}

/// The oldest router with its gateway on `external_network` and an
/// interface on `subnet`: the one that carries a floating IP of that
/// network for an address of that subnet.
pub(crate) fn router_reaching(s: &State, subnet: &Subnet, external_network: Uuid) -> Option<Uuid> {
    let mut found: Vec<&L3Router> = s
        .ports
        .children(subnet.network_id)
        .filter(|p| {
            p.device_owner == device_owner::ROUTER_INTERFACE
                && p.fixed_ips.iter().any(|f| f.subnet_id == subnet.id)
        })
        .filter_map(|p| Uuid::parse_str(&p.device_id).ok())
        .filter_map(|rid| s.routers.get(&rid).map(|r| &**r))
        .filter(|r| {
            r.external_gateway
                .as_ref()
                .is_some_and(|g| g.network_id == external_network)
        })
        .collect();
    found.sort_by_key(|r| (r.created_at, r.id));
    found.first().map(|r| r.id)
}

/// The subnets router `r` is on (interfaces and gateway), with the port.
fn router_subnets(s: &State, r: &L3Router) -> Vec<(Subnet, Uuid)> {
    let mut ports = interfaces(s, r.id);
    if let Some(g) = &r.external_gateway
        && let Some(p) = s.ports.get(&g.port_id)
    {
        ports.push((**p).clone());
    }
    ports
        .iter()
        .flat_map(|p| p.fixed_ips.iter().map(move |f| (f.subnet_id, p.id)))
        .filter_map(|(sid, pid)| s.subnets.get(&sid).map(|x| ((**x).clone(), pid)))
        .collect()
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Neutron's `_check_for_dup_router_subnets`: a router is on a subnet once,
/// and never on two overlapping subnets.
fn check_new_leg(s: &State, r: &L3Router, sub: &Subnet) -> ApiResult<()> {
    for (other, _) in router_subnets(s, r) {
        if other.id == sub.id {
            return Err(bad_request(
                "router",
                format!("Router already has a port on subnet {}", sub.id),
            ));
        }
        if overlaps(&other.cidr, &sub.cidr) {
            return Err(bad_request(
                "router",
                format!(
                    "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                    sub.cidr, sub.id, other.cidr, other.id
                ),
            ));
        }
    }
    Ok(())
}

/// Router `r`'s interface on `sub` may go only when no floating IP and no
/// extra route depends on it.
fn check_leg_unused(s: &State, r: &L3Router, sub: &Subnet) -> ApiResult<()> {
    if s.floating_ips.iter().any(|f| {
        f.router_id == Some(r.id)
            && associated(s, f)
            && f.fixed_ip_address.is_some_and(|ip| sub.cidr.contains(&ip))
    }) {
        return Err(conflict(
            "RouterInterfaceInUseByFloatingIP",
            format!(
                "Router interface for subnet {} on router {} cannot be deleted, as it is \
                 required by one or more floating IPs.",
                sub.id, r.id
            ),
        ));
    }
    if r.routes.iter().any(|x| sub.cidr.contains(&x.nexthop)) {
        return Err(conflict(
            "RouterInterfaceInUseByRoute",
            format!(
                "Router interface for subnet {} on router {} cannot be deleted, as it is \
                 required by one or more routes.",
                sub.id, r.id
            ),
        ));
    }
    Ok(())
}

// ---- the external gateway -------------------------------------------------------------------

/// `external_gateway_info` as requested.
struct GatewayRequest {
    network_id: Uuid,
    enable_snat: Option<bool>,
    fixed_ips: Option<Vec<FixedIpRequest>>,
}

/// Absent: leave it; `Set(None)`: clear it (`{}` or null); `Set(Some)`: set it.
fn gateway_input(input: &mut Input) -> ApiResult<Opt<Option<GatewayRequest>>> {
    let m = match input.object("external_gateway_info")? {
        Opt::Absent => return Ok(Opt::Absent),
        Opt::Null => return Ok(Opt::Set(None)),
        Opt::Set(m) if m.is_empty() => return Ok(Opt::Set(None)),
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
    let fixed_ips = fixed_ip_list(&mut g, "external_fixed_ips")?.value();
    only_default(&mut g, "qos_policy_id", |_| false)?;
    g.finish()?;
    Ok(Opt::Set(Some(GatewayRequest {
        network_id,
        enable_snat,
        fixed_ips,
    })))
}

fn gateway_needed_by_fips(s: &State, r: &L3Router) -> ApiResult<()> {
    let Some(g) = &r.external_gateway else {
        return Ok(());
    };
    if s.floating_ips
        .iter()
        .any(|f| f.router_id == Some(r.id) && associated(s, f))
    {
        return Err(conflict(
            "RouterExternalGatewayInUseByFloatingIp",
            format!(
                "Gateway cannot be updated for router {}, since a gateway to external network \
                 {} is required by one or more floating IPs.",
                r.id, g.network_id
            ),
        ));
    }
    Ok(())
}

/// Set, change or clear router `r`'s gateway (its port included).
fn apply_gateway(
    txn: &mut Txn,
    ctx: &RequestContext,
    space: &AddressSpace,
    r: &mut L3Router,
    req: Option<GatewayRequest>,
) -> ApiResult<()> {
    let s = txn.state().clone();
    let Some(req) = req else {
        if let Some(g) = r.external_gateway.take() {
            let mut before = r.clone();
            before.external_gateway = Some(g.clone());
            gateway_needed_by_fips(&s, &before)?;
            txn.delete::<Port>(&g.port_id);
        }
        return Ok(());
    };
    let network = visible_network(ctx, &s, req.network_id)?;
    if !network.external {
        return Err(bad_request(
            "router",
            format!("Network {} is not an external network", network.id),
        ));
    }
    let enable_snat = req.enable_snat.unwrap_or(true);
    if !enable_snat
        && !ctx.allowed(
            "update_router:external_gateway_info:enable_snat",
            &r.project_id,
        )
    {
        return Err(forbidden("update_router:external_gateway_info:enable_snat"));
    }
    if req.fixed_ips.is_some()
        && !ctx.allowed(
            "update_router:external_gateway_info:external_fixed_ips",
            &r.project_id,
        )
    {
        return Err(forbidden(
            "update_router:external_gateway_info:external_fixed_ips",
        ));
    }
    match r.external_gateway.clone() {
        Some(mut g) if g.network_id == req.network_id => {
            // Same network: new addresses, if asked for, on the same port.
            if let Some(requested) = req.fixed_ips
                && let Some(port) = s.ports.get(&g.port_id)
            {
                let mut port = (**port).clone();
                let fixed = assign_fixed_ips(
                    &s,
                    space,
                    port.network_id,
                    Some(&port),
                    Some(requested),
                    device_owner::ROUTER_GATEWAY,
                )?;
                if fixed != port.fixed_ips {
                    port.fixed_ips = fixed;
                    port.updated_at = Some(now());
                    txn.put(port)?;
                }
            }
            g.enable_snat = enable_snat;
            r.external_gateway = Some(g);
            Ok(())
        }
        old => {
            if let Some(g) = old {
                gateway_needed_by_fips(&s, r)?;
                txn.delete::<Port>(&g.port_id);
            }
            let s = txn.state().clone();
            let fixed = assign_fixed_ips(
                &s,
                space,
                network.id,
                None,
                req.fixed_ips,
                device_owner::ROUTER_GATEWAY,
            )?;
            if fixed.is_empty() {
                return Err(bad_request(
                    "router",
                    format!("No IPs available for external network {}", network.id),
                ));
            }
            for f in &fixed {
                if let Some(sub) = s.subnets.get(&f.subnet_id) {
                    check_new_leg(
                        &s,
                        &L3Router {
                            external_gateway: None,
                            ..r.clone()
                        },
                        sub,
                    )?;
                }
            }
            let port = service_port(
                &s,
                network.id,
                "",
                device_owner::ROUTER_GATEWAY,
                r.id,
                fixed,
            );
            r.external_gateway = Some(ExternalGateway {
                network_id: network.id,
                enable_snat,
                port_id: port.id,
            });
            txn.put(port)?;
            Ok(())
        }
    }
}

// ---- extra routes -----------------------------------------------------------------------

fn invalid_routes(routes: &[HostRoute], reason: impl std::fmt::Display) -> ApiError {
    let shown: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{{'destination': '{}', 'nexthop': '{}'}}",
                r.destination, r.nexthop
            )
        })
        .collect();
    ApiError::bad_request(format!(
        "Invalid format for routes: [{}], {reason}",
        shown.join(", ")
    ))
    .neutron("InvalidRoutes")
}

/// Every next hop must be on a subnet the router is attached to by an
/// interface, and must not be one of the router's own addresses.
fn check_routes(s: &State, r: &L3Router, routes: &[HostRoute]) -> ApiResult<()> {
    if routes.len() > MAX_ROUTES {
        return Err(ApiError::bad_request(format!(
            "Unable to complete operation for {}. The number of routes exceeds the maximum \
             {MAX_ROUTES}.",
            r.id
        ))
        .neutron("RoutesExhausted"));
    }
    let legs = interfaces(s, r.id);
    for route in routes {
        if route.destination.addr().is_ipv4() != route.nexthop.is_ipv4() {
            return Err(invalid_routes(
                routes,
                format!(
                    "the nexthop {} and the destination {} are of different IP versions",
                    route.nexthop, route.destination
                ),
            ));
        }
        let connected = legs
            .iter()
            .flat_map(|p| p.fixed_ips.iter())
            .filter_map(|f| s.subnets.get(&f.subnet_id))
            .any(|sub| sub.cidr.contains(&route.nexthop));
        if !connected {
            return Err(invalid_routes(
                routes,
                format!("the nexthop {} is not connected with router", route.nexthop),
            ));
        }
        if legs
            .iter()
            .flat_map(|p| p.fixed_ips.iter())
            .any(|f| f.ip_address == route.nexthop)
        {
            return Err(invalid_routes(
                routes,
                format!("the nexthop {} is used by router", route.nexthop),
            ));
        }
    }
    Ok(())
}

// ---- handlers ---------------------------------------------------------------------------

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let items = s
            .routers
            .iter()
            .filter(|r| ctx.allowed("get_router", &r.project_id))
            .map(|r| render::router(&s, r))
            .collect();
        list_body(
            &app,
            &ctx,
            &uri,
            "routers",
            render::ROUTER_ATTRS,
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
        let r = visible_router(&ctx, &s, path_uuid(&id, router_not_found)?)?;
        Ok(Json(one("router", render::router(&s, &r), &uri)))
    })
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

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(create_router(ctx, app, body).await)
}

async fn create_router(
    ctx: RequestContext,
    app: AppState,
    body: Value,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = envelope(body, "router")?;
    let name = input.string("name", 255)?.value().unwrap_or_default();
    let description = input
        .string("description", 255)?
        .value()
        .unwrap_or_default();
    let admin_state_up = input.boolean("admin_state_up")?.or(true);
    let gateway = gateway_input(&mut input)?.value().flatten();
    let tags = crate::octavia::tags(&mut input)?
        .value()
        .unwrap_or_default();
    let project_id = input
        .project_id()?
        .unwrap_or_else(|| ctx.project_id.clone());
    fixed_attributes(&mut input)?;
    input.finish()?;
    if !ctx.allowed("create_router", &project_id) {
        return Err(forbidden("create_router"));
    }
    let mut r = L3Router {
        id: Uuid::new_v4(),
        project_id,
        name,
        description,
        admin_state_up,
        external_gateway: None,
        routes: Vec::new(),
        tags,
        created_at: now(),
        updated_at: None,
    };
    let id = r.id;
    app.store
        .write(|txn| {
            super::quotas::check(
                &app,
                txn.state(),
                &r.project_id,
                super::quotas::Resource::Router,
                1,
            )?;
            if gateway.is_some() {
                apply_gateway(
                    txn,
                    &ctx,
                    &super::quotas::address_space(&app)?,
                    &mut r,
                    gateway,
                )?;
            }
            txn.put(r)?;
            Ok::<(), ApiError>(())
        })
        .await?;
    let s = app.store.snapshot();
    let r = visible_router(&ctx, &s, id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"router": render::router(&s, &r)})),
    ))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(update_router(ctx, app, id, body).await)
}

/// An immutable attribute may be restated, not changed.
fn unchanged(input: &mut Input, key: &str, current: &str) -> ApiResult<()> {
    match input.take(key) {
        Opt::Absent => Ok(()),
        Opt::Set(v) if v.as_str() == Some(current) => Ok(()),
        _ => Err(
            ApiError::bad_request(format!("Cannot update read-only attribute {key}"))
                .neutron("HTTPBadRequest"),
        ),
    }
}

async fn update_router(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id, router_not_found)?;
    let mut input = envelope(body, "router")?;
    let name = input.string("name", 255)?.update();
    let description = input.string("description", 255)?.update();
    let admin_state_up = input.boolean("admin_state_up")?.update();
    let gateway = gateway_input(&mut input)?;
    let routes = super::subnets::route_list(&mut input, "routes")?.update();
    let tags = crate::octavia::tags(&mut input)?.update();
    fixed_attributes(&mut input)?;
    app.store
        .write(|txn| {
            let mut r = visible_router(&ctx, txn.state(), id)?;
            unchanged(&mut input, "project_id", &r.project_id)?;
            unchanged(&mut input, "tenant_id", &r.project_id)?;
            input.finish()?;
            if !ctx.allowed("update_router", &r.project_id) {
                return Err(forbidden("update_router"));
            }
            if let Some(v) = name {
                r.name = v.unwrap_or_default();
            }
            if let Some(v) = description {
                r.description = v.unwrap_or_default();
            }
            if let Some(v) = admin_state_up {
                r.admin_state_up = v.unwrap_or(true);
            }
            if let Some(v) = routes {
                let v = v.unwrap_or_default();
                check_routes(txn.state(), &r, &v)?;
                r.routes = v;
            }
            if let Opt::Set(g) = gateway {
                apply_gateway(txn, &ctx, &super::quotas::address_space(&app)?, &mut r, g)?;
            }
            if let Some(v) = tags {
                r.tags = v.unwrap_or_default();
            }
            r.updated_at = Some(now());
            txn.put(r)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let r = visible_router(&ctx, &s, id)?;
    Ok(Json(json!({"router": render::router(&s, &r)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = path_uuid(&id, router_not_found)?;
            app.store
                .write(|txn| {
                    let s = txn.state().clone();
                    let r = visible_router(&ctx, &s, id)?;
                    if !ctx.allowed("delete_router", &r.project_id) {
                        return Err(forbidden("delete_router"));
                    }
                    if !interfaces(&s, id).is_empty() {
                        return Err(conflict(
                            "RouterInUse",
                            format!("Router {id} still has ports"),
                        ));
                    }
                    // Associations whose port is gone still name the router.
                    for f in s.floating_ips.iter().filter(|f| f.router_id == Some(id)) {
                        let mut f = (**f).clone();
                        f.port_id = None;
                        f.fixed_ip_address = None;
                        f.router_id = None;
                        f.updated_at = Some(now());
                        txn.put(f)?;
                    }
                    if let Some(g) = &r.external_gateway {
                        txn.delete::<Port>(&g.port_id);
                    }
                    txn.delete::<L3Router>(&id);
                    Ok(())
                })
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}

// ---- interfaces -------------------------------------------------------------------------

/// `{subnet_id}` and/or `{port_id}` of an interface request (no envelope).
fn interface_input(body: Value) -> ApiResult<(Option<Uuid>, Option<Uuid>)> {
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
    Ok((subnet_id, port_id))
}

/// Neutron's answer to an interface change.
fn interface_info(r: &L3Router, port: &Port, subnet_ids: Vec<Uuid>) -> Value {
    json!({
        "id": r.id,
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "port_id": port.id,
        "subnet_id": subnet_ids.first(),
        "subnet_ids": subnet_ids,
        "network_id": port.network_id,
    })
}

async fn add_interface(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(add_interface_inner(ctx, app, id, body).await)
}

/// As Neutron: a subnet of a shared or external network (seen, not owned)
/// takes no router interface, whether named directly or through a port.
fn check_subnet_owned(ctx: &RequestContext, sub: &Subnet) -> ApiResult<()> {
    if owns(ctx, &sub.project_id) {
        return Ok(());
    }
    Err(bad_request(
        "router",
        format!(
            "Cannot add interface to router because subnet {} is not owned by project \
             making the request",
            sub.id
        ),
    ))
}

async fn add_interface_inner(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id, router_not_found)?;
    let (subnet_id, port_id) = interface_input(body)?;
    let info = app
        .store
        .write(|txn| {
            let s = txn.state().clone();
            let r = visible_router(&ctx, &s, id)?;
            if !ctx.allowed("add_router_interface", &r.project_id) {
                return Err(forbidden("add_router_interface"));
            }
            let port = match (subnet_id, port_id) {
                (None, None) => {
                    return Err(bad_request(
                        "router",
                        "Either subnet_id or port_id must be specified",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(bad_request(
                        "router",
                        "Cannot specify both subnet-id and port-id",
                    ));
                }
                (Some(sid), None) => {
                    let sub = visible_subnet(&ctx, &s, sid)?;
                    check_subnet_owned(&ctx, &sub)?;
                    let Some(gateway) = sub.gateway_ip else {
                        return Err(bad_request(
                            "router",
                            "Subnet for router interface must have a gateway IP",
                        ));
                    };
                    check_new_leg(&s, &r, &sub)?;
                    let fixed = assign_fixed_ips(
                        &s,
                        &super::quotas::address_space(&app)?,
                        sub.network_id,
                        None,
                        Some(vec![FixedIpRequest {
                            subnet_id: Some(sid),
                            ip_address: Some(gateway),
                        }]),
                        device_owner::ROUTER_INTERFACE,
                    )?;
                    service_port(
                        &s,
                        sub.network_id,
                        &sub.project_id,
                        device_owner::ROUTER_INTERFACE,
                        id,
                        fixed,
                    )
                }
                (None, Some(pid)) => {
                    let mut port = visible_port(&ctx, &s, pid)?;
                    // Only the caller's own port (another's, even one seen
                    // on the caller's network, is answered as missing).
                    if !ctx.allowed("update_port", &port.project_id) {
                        return Err(not_found("Port", pid, "PortNotFound"));
                    }
                    if !port.device_id.is_empty() {
                        return Err(conflict(
                            "PortInUse",
                            format!(
                                "Unable to complete operation on port {pid} for network {}. \
                                 Port already has an attached device {}.",
                                port.network_id, port.device_id
                            ),
                        ));
                    }
                    if port.fixed_ips.is_empty() {
                        return Err(bad_request(
                            "router",
                            "Router port must have at least one fixed IP",
                        ));
                    }
                    let mut subs: Vec<Subnet> = Vec::new();
                    for f in &port.fixed_ips {
                        if let Some(sub) = s.subnets.get(&f.subnet_id)
                            && !subs.iter().any(|x| x.id == sub.id)
                        {
                            subs.push((**sub).clone());
                        }
                    }
                    if subs.iter().filter(|x| x.cidr.addr().is_ipv4()).count() > 1 {
                        return Err(bad_request(
                            "router",
                            "Cannot have multiple IPv4 subnets on router port",
                        ));
                    }
                    for sub in &subs {
                        check_subnet_owned(&ctx, sub)?;
                        check_new_leg(&s, &r, sub)?;
                    }
                    port.device_owner = device_owner::ROUTER_INTERFACE.to_string();
                    port.device_id = id.to_string();
                    port.updated_at = Some(now());
                    port
                }
            };
            let mut subnet_ids: Vec<Uuid> = Vec::new();
            for f in &port.fixed_ips {
                if !subnet_ids.contains(&f.subnet_id) {
                    subnet_ids.push(f.subnet_id);
                }
            }
            let info = interface_info(&r, &port, subnet_ids);
            txn.put(port)?;
            let mut r = r;
            r.updated_at = Some(now());
            txn.put(r)?;
            Ok(info)
        })
        .await?;
    Ok(Json(info))
}

async fn remove_interface(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(remove_interface_inner(ctx, app, id, body).await)
}

fn no_interface_on_subnet(router: Uuid, subnet: Uuid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Router {router} has no interface on subnet {subnet}"),
    )
    .neutron("RouterInterfaceNotFoundForSubnet")
}

async fn remove_interface_inner(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id, router_not_found)?;
    let (subnet_id, port_id) = interface_input(body)?;
    let info = app
        .store
        .write(|txn| {
            let s = txn.state().clone();
            let r = visible_router(&ctx, &s, id)?;
            if !ctx.allowed("remove_router_interface", &r.project_id) {
                return Err(forbidden("remove_router_interface"));
            }
            let legs = interfaces(&s, id);
            let (port, removed): (Port, Vec<Uuid>) = match (subnet_id, port_id) {
                (None, None) => {
                    return Err(bad_request(
                        "router",
                        "Either subnet_id or port_id must be specified",
                    ));
                }
                (sid, Some(pid)) => {
                    let port = legs.into_iter().find(|p| p.id == pid).ok_or_else(|| {
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            format!("Router {id} does not have an interface with id {pid}"),
                        )
                        .neutron("RouterInterfaceNotFound")
                    })?;
                    if let Some(sid) = sid
                        && !port.fixed_ips.iter().any(|f| f.subnet_id == sid)
                    {
                        return Err(no_interface_on_subnet(id, sid));
                    }
                    let mut subnets: Vec<Uuid> = Vec::new();
                    for f in &port.fixed_ips {
                        if !subnets.contains(&f.subnet_id) {
                            subnets.push(f.subnet_id);
                        }
                    }
                    (port, subnets)
                }
                (Some(sid), None) => {
                    visible_subnet(&ctx, &s, sid)?;
                    let port = legs
                        .into_iter()
                        .find(|p| p.fixed_ips.iter().any(|f| f.subnet_id == sid))
                        .ok_or_else(|| no_interface_on_subnet(id, sid))?;
                    (port, vec![sid])
                }
            };
            for sid in &removed {
                if let Some(sub) = s.subnets.get(sid) {
                    check_leg_unused(&s, &r, sub)?;
                }
            }
            let info = interface_info(&r, &port, removed.clone());
            let kept: Vec<FixedIp> = port
                .fixed_ips
                .iter()
                .filter(|f| !removed.contains(&f.subnet_id))
                .cloned()
                .collect();
            if kept.is_empty() {
                // Neutron deletes the interface port, even one the user brought.
                txn.delete::<Port>(&port.id);
            } else {
                let mut port = port;
                port.fixed_ips = kept;
                port.updated_at = Some(now());
                txn.put(port)?;
            }
            let mut r = r;
            r.updated_at = Some(now());
            txn.put(r)?;
            Ok(info)
        })
        .await?;
    Ok(Json(info))
}
