//! `/floatingips`: list, create, show, update, delete.
//!
//! A floating IP is an address of an external network, held in IPAM by a
//! `network:floatingip` port (no project, `device_id` = the floating IP) that
//! lives and dies with it. Associating it with a port's fixed IP needs a
//! router with its gateway on that external network and an interface on the
//! fixed IP's subnet; the router carries the translation (`router_id`).

use super::ports::{FixedIpRequest, assign_fixed_ips, service_port};
use super::subnets::{AddressSpace, held_addresses};
use super::*;
use crate::input::{JsonBody, NeutronJson, Opt};
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;
use std::net::IpAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/floatingips", get(list).post(create))
        .route("/floatingips/{id}", get(show).put(update).delete(delete))
}

/// Whether floating IP `f` is associated with a port that exists.
pub(crate) fn associated(s: &State, f: &FloatingIp) -> bool {
    f.port_id.is_some_and(|p| s.ports.contains(&p))
}

fn clear_association(f: &mut FloatingIp) {
    f.port_id = None;
    f.fixed_ip_address = None;
    f.router_id = None;
    f.updated_at = Some(now());
}

/// Where an association lands: the port, its fixed IP, the router.
struct Association {
    port_id: Uuid,
    fixed_ip: IpAddr,
    router_id: Uuid,
}

/// Neutron's checks for associating floating IP `fip` with `port_id`
/// (through `fixed_ip`, or the port's only IPv4 address).
fn associate(
    ctx: &RequestContext,
    s: &State,
    fip: &FloatingIp,
    port_id: Uuid,
    fixed_ip: Option<IpAddr>,
) -> ApiResult<Association> {
    let port = visible_port(ctx, s, port_id)?;
    if port.project_id != fip.project_id && !ctx.is_admin() {
        return Err(bad_request(
            "floatingip",
            format!(
                "Cannot create floating IP and bind it to Port {port_id}, since that port is \
                 owned by a different tenant"
            ),
        ));
    }
    if port.device_owner.starts_with("network:") {
        return Err(bad_request(
            "floatingip",
            format!(
                "Port {port_id} has owner {} and cannot be associated with a floating IP",
                port.device_owner
            ),
        ));
    }
    let fixed = match fixed_ip {
        Some(ip) => {
            let f = port
                .fixed_ips
                .iter()
                .find(|f| f.ip_address == ip)
                .ok_or_else(|| {
                    bad_request(
                        "floatingip",
                        format!("Port {port_id} does not have fixed ip {ip}"),
                    )
                })?;
            if !ip.is_ipv4() {
                return Err(bad_request(
                    "floatingip",
                    format!(
                        "Cannot add floating IP to port {port_id}: {ip} is not an IPv4 address"
                    ),
                ));
            }
            f.clone()
        }
        None => {
            let v4: Vec<&FixedIp> = port
                .fixed_ips
                .iter()
                .filter(|f| f.ip_address.is_ipv4())
                .collect();
            match v4.as_slice() {
                [] => {
                    return Err(bad_request(
                        "floatingip",
                        format!(
                            "Cannot add floating IP to port {port_id} that has no fixed IPv4 \
                             addresses"
                        ),
                    ));
                }
                [one] => (*one).clone(),
                _ => {
                    return Err(bad_request(
                        "floatingip",
                        format!(
                            "Port {port_id} has multiple fixed IPv4 addresses.  Must provide a \
                             specific IPv4 address when assigning a floating IP"
                        ),
                    ));
                }
            }
        }
    };
    let subnet = s
        .subnets
        .get(&fixed.subnet_id)
        .ok_or_else(|| not_found("Subnet", fixed.subnet_id, "SubnetNotFound"))?;
    if subnet.gateway_ip.is_none() {
        return Err(bad_request(
            "floatingip",
            format!(
                "Cannot add floating IP to port on subnet {} which has no gateway_ip",
                subnet.id
            ),
        ));
    }
    let router_id = super::routers::router_reaching(s, subnet, fip.floating_network_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "External network {} is not reachable from subnet {}.  Therefore, cannot \
                     associate Port {port_id} with a Floating IP.",
                    fip.floating_network_id, subnet.id
                ),
            )
            .neutron("ExternalGatewayForFloatingIPNotFound")
        })?;
    if let Some(other) = s.floating_ips.iter().find(|f| {
        f.id != fip.id && f.port_id == Some(port_id) && f.fixed_ip_address == Some(fixed.ip_address)
    }) {
        return Err(conflict(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot associate floating IP {} ({}) with port {port_id} using fixed IP {}, \
                 as that fixed IP already has a floating IP on external network {}.",
                fip.floating_ip_address, fip.id, fixed.ip_address, other.floating_network_id
            ),
        ));
    }
    Ok(Association {
        port_id,
        fixed_ip: fixed.ip_address,
        router_id,
    })
}

fn exhausted(network_id: Uuid) -> ApiError {
    ApiError::bad_request(format!(
        "Unable to find any IP address on external network {network_id}."
    ))
    .neutron("ExternalIpAddressExhausted")
}

/// The address of a new floating IP on `network_id`: the requested one, or
/// the first free address of the requested subnet or of the network's IPv4
/// subnets.
fn allocate(
    s: &State,
    space: &AddressSpace,
    network_id: Uuid,
    subnet_id: Option<Uuid>,
    address: Option<IpAddr>,
) -> ApiResult<FixedIp> {
    if let Some(sid) = subnet_id {
        let sub = s
            .subnets
            .get(&sid)
            .filter(|x| x.network_id == network_id)
            .ok_or_else(|| {
                bad_request(
                    "floatingip",
                    format!("Invalid subnet {sid} for network {network_id}"),
                )
            })?;
        if !sub.cidr.addr().is_ipv4() {
            return Err(bad_request(
                "floatingip",
                format!("Subnet {sid} is not an IPv4 subnet"),
            ));
        }
    }
    if address.is_some() || subnet_id.is_some() {
        let fixed = assign_fixed_ips(
            s,
            space,
            network_id,
            None,
            Some(vec![FixedIpRequest {
                subnet_id,
                ip_address: address,
            }]),
            device_owner::FLOATING_IP,
        )
        .map_err(|e| {
            if e.neutron_type == "IpAddressGenerationFailure" {
                exhausted(network_id)
            } else {
                e
            }
        })?;
        let f = fixed
            .into_iter()
            .next()
            .ok_or_else(|| exhausted(network_id))?;
        if !f.ip_address.is_ipv4() {
            return Err(bad_request(
                "floatingip",
                format!("{} is not an IPv4 address", f.ip_address),
            ));
        }
        return Ok(f);
    }
    let mut subs: Vec<&Subnet> = s
        .subnets
        .children(network_id)
        .map(|x| &**x)
        .filter(|x| x.cidr.addr().is_ipv4())
        .collect();
    subs.sort_by_key(|x| (x.created_at, x.id));
    for sub in subs {
        if let Some(ip) =
            ipam::allocate_avoiding(sub, &space.avoid(held_addresses(s, space, sub, None)))
        {
            return Ok(FixedIp {
                subnet_id: sub.id,
                ip_address: ip,
            });
        }
    }
    Err(exhausted(network_id))
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
            .floating_ips
            .iter()
            .filter(|f| ctx.allowed("get_floatingip", &f.project_id))
            .map(|f| render::floating_ip(&s, f))
            .collect();
        list_body(
            &app,
            &ctx,
            &uri,
            "floatingips",
            render::FLOATINGIP_ATTRS,
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
        let f = visible_floating_ip(&ctx, &s, path_uuid(&id, floating_ip_not_found)?)?;
        Ok(Json(one("floatingip", render::floating_ip(&s, &f), &uri)))
    })
}

/// The attributes Statera shows with one fixed value.
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    only_default(input, "qos_policy_id", |_| false)?;
    only_default(input, "dns_domain", |v| v == "")?;
    only_default(input, "dns_name", |v| v == "")?;
    Ok(())
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(create_fip(ctx, app, body).await)
}

async fn create_fip(
    ctx: RequestContext,
    app: AppState,
    body: Value,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = envelope(body, "floatingip")?;
    let network_id = required_attribute(input.uuid("floating_network_id")?, "floating_network_id")?;
    let address = input.ip("floating_ip_address")?.value();
    let subnet_id = input.uuid("subnet_id")?.value();
    let port_id = input.uuid("port_id")?.value();
    let fixed_ip = input.ip("fixed_ip_address")?.value();
    let description = input
        .string("description", 255)?
        .value()
        .unwrap_or_default();
    let tags = crate::octavia::tags(&mut input)?
        .value()
        .unwrap_or_default();
    let project_id = input
        .project_id()?
        .unwrap_or_else(|| ctx.project_id.clone());
    fixed_attributes(&mut input)?;
    input.finish()?;
    if !ctx.allowed("create_floatingip", &project_id) {
        return Err(forbidden("create_floatingip"));
    }
    if address.is_some() && !ctx.allowed("create_floatingip:floating_ip_address", &project_id) {
        return Err(forbidden("create_floatingip:floating_ip_address"));
    }
    if fixed_ip.is_some() && port_id.is_none() {
        return Err(bad_request(
            "floatingip",
            "fixed_ip_address cannot be specified without a port_id",
        ));
    }
    let id = Uuid::new_v4();
    app.store
        .write(|txn| {
            let s = txn.state();
            let network = visible_network(&ctx, s, network_id)?;
            if !network.external {
                return Err(bad_request(
                    "floatingip",
                    format!("Network {network_id} is not a valid external network"),
                ));
            }
            super::quotas::check(&app, s, &project_id, super::quotas::Resource::FloatingIp, 1)?;
            let held = allocate(
                s,
                &super::quotas::address_space(&app)?,
                network_id,
                subnet_id,
                address,
            )?;
            let port = service_port(
                s,
                network_id,
                "",
                device_owner::FLOATING_IP,
                id,
                vec![held.clone()],
            );
            let mut fip = FloatingIp {
                id,
                project_id,
                description,
                floating_network_id: network_id,
                floating_ip_address: held.ip_address,
                floating_port_id: port.id,
                port_id: None,
                fixed_ip_address: None,
                router_id: None,
                tags,
                created_at: now(),
                updated_at: None,
            };
            if let Some(pid) = port_id {
                let a = associate(&ctx, s, &fip, pid, fixed_ip)?;
                fip.port_id = Some(a.port_id);
                fip.fixed_ip_address = Some(a.fixed_ip);
                fip.router_id = Some(a.router_id);
            }
            txn.put(port)?;
            txn.put(fip)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let f = visible_floating_ip(&ctx, &s, id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"floatingip": render::floating_ip(&s, &f)})),
    ))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(update_fip(ctx, app, id, body).await)
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

async fn update_fip(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id, floating_ip_not_found)?;
    let mut input = envelope(body, "floatingip")?;
    let port_id = input.uuid("port_id")?;
    let fixed_ip = input.ip("fixed_ip_address")?.value();
    let description = input.string("description", 255)?.update();
    let tags = crate::octavia::tags(&mut input)?.update();
    fixed_attributes(&mut input)?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let mut f = visible_floating_ip(&ctx, s, id)?;
            unchanged(
                &mut input,
                "floating_network_id",
                &f.floating_network_id.to_string(),
            )?;
            unchanged(
                &mut input,
                "floating_ip_address",
                &f.floating_ip_address.to_string(),
            )?;
            unchanged(&mut input, "project_id", &f.project_id)?;
            unchanged(&mut input, "tenant_id", &f.project_id)?;
            input.finish()?;
            if !ctx.allowed("update_floatingip", &f.project_id) {
                return Err(forbidden("update_floatingip"));
            }
            match port_id {
                Opt::Set(pid) => {
                    let a = associate(&ctx, s, &f, pid, fixed_ip)?;
                    f.port_id = Some(a.port_id);
                    f.fixed_ip_address = Some(a.fixed_ip);
                    f.router_id = Some(a.router_id);
                }
                _ if fixed_ip.is_some() => {
                    return Err(bad_request(
                        "floatingip",
                        "fixed_ip_address cannot be specified without a port_id",
                    ));
                }
                Opt::Null => clear_association(&mut f),
                Opt::Absent => {}
            }
            if let Some(v) = description {
                f.description = v.unwrap_or_default();
            }
            if let Some(v) = tags {
                f.tags = v.unwrap_or_default();
            }
            f.updated_at = Some(now());
            txn.put(f)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let f = visible_floating_ip(&ctx, &s, id)?;
    Ok(Json(json!({"floatingip": render::floating_ip(&s, &f)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = path_uuid(&id, floating_ip_not_found)?;
            app.store
                .write(|txn| {
                    let f = visible_floating_ip(&ctx, txn.state(), id)?;
                    if !ctx.allowed("delete_floatingip", &f.project_id) {
                        return Err(forbidden("delete_floatingip"));
                    }
                    txn.delete::<Port>(&f.floating_port_id);
                    txn.delete::<FloatingIp>(&id);
                    Ok(())
                })
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}
