//! `/subnets`: list, create, show, update, delete; the CIDR, gateway and
//! allocation-pool rules.

pub(crate) use super::ipam::{
    AddressSpace, default_gateway, default_pools, held_addresses, is_host_address, to_u128,
};
use super::*;
use crate::input::{JsonBody, NeutronJson, Opt};
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;
use ipnet::IpNet;
use statera_model::addressing::host_reserved_overlap;
use std::net::IpAddr;
use std::str::FromStr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/subnets", get(list).post(create))
        .route("/subnets/{id}", get(show).put(update).delete(delete))
}

fn show_pool(p: &AllocationPool) -> String {
    format!("{}-{}", p.start, p.end)
}

/// A subnet CIDR as given: a network without host bits.
pub(crate) fn parse_subnet_cidr(raw: &str) -> ApiResult<IpNet> {
    let net = IpNet::from_str(raw.trim())
        .map_err(|_| invalid_field("cidr", format!("'{raw}' is not a valid IP subnet")))?;
    if net.trunc() != net {
        return Err(invalid_field(
            "cidr",
            format!(
                "'{raw}' isn't a recommended CIDR, '{}' is recommended",
                net.trunc()
            ),
        ));
    }
    Ok(net)
}

/// The gateway must be a host address of the subnet.
pub(crate) fn check_gateway(cidr: &IpNet, gateway: IpAddr) -> ApiResult<()> {
    if !cidr.contains(&gateway) {
        return Err(invalid_input(format!(
            "Gateway IP {gateway} is not in subnet {cidr}."
        )));
    }
    if !is_host_address(cidr, gateway) {
        return Err(invalid_input(format!(
            "Gateway IP {gateway} is not valid on subnet {cidr}."
        )));
    }
    Ok(())
}

/// Pools must be ordered ranges of host addresses of the subnet, must not
/// overlap, and must not contain the gateway.
pub(crate) fn check_pools(
    cidr: &IpNet,
    pools: &[AllocationPool],
    gateway: Option<IpAddr>,
) -> ApiResult<()> {
    let mut ranges = Vec::with_capacity(pools.len());
    for p in pools {
        let same_family =
            p.start.is_ipv4() == cidr.addr().is_ipv4() && p.end.is_ipv4() == cidr.addr().is_ipv4();
        if !same_family || to_u128(p.start) > to_u128(p.end) {
            return Err(ApiError::bad_request(format!(
                "The allocation pool {} is not valid.",
                show_pool(p)
            ))
            .neutron("InvalidAllocationPool"));
        }
        if !is_host_address(cidr, p.start) || !is_host_address(cidr, p.end) {
            return Err(ApiError::bad_request(format!(
                "The allocation pool {} spans beyond the subnet cidr {cidr}.",
                show_pool(p)
            ))
            .neutron("OutOfBoundsAllocationPool"));
        }
        ranges.push((to_u128(p.start), to_u128(p.end), p));
    }
    ranges.sort_by_key(|r| (r.0, r.1));
    for w in ranges.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(conflict(
                "OverlappingAllocationPools",
                format!(
                    "Found overlapping allocation pools: {} {} for subnet {cidr}.",
                    show_pool(w[0].2),
                    show_pool(w[1].2)
                ),
            ));
        }
    }
    if let Some(g) = gateway
        && let Some(r) = ranges.iter().find(|r| (r.0..=r.1).contains(&to_u128(g)))
    {
        return Err(conflict(
            "GatewayConflictWithAllocationPools",
            format!(
                "Gateway ip {g} conflicts with allocation pool {}",
                show_pool(r.2)
            ),
        ));
    }
    Ok(())
}

// ---- request attributes ---------------------------------------------------

fn pools_input(input: &mut Input) -> ApiResult<Opt<Vec<AllocationPool>>> {
    let items = match input.list("allocation_pools")? {
        Opt::Set(items) => items,
        Opt::Null => return Ok(Opt::Null),
        Opt::Absent => return Ok(Opt::Absent),
    };
    let mut pools = Vec::with_capacity(items.len());
    for item in items {
        let mut p = Input::from_value(item, "allocation_pools")?;
        let start = p.ip("start")?.value();
        let end = p.ip("end")?.value();
        p.finish()?;
        match (start, end) {
            (Some(start), Some(end)) => pools.push(AllocationPool { start, end }),
            _ => {
                return Err(invalid_field(
                    "allocation_pools",
                    "each pool needs a start and an end",
                ));
            }
        }
    }
    Ok(Opt::Set(pools))
}

fn nameservers_input(input: &mut Input) -> ApiResult<Opt<Vec<IpAddr>>> {
    match input.string_list("dns_nameservers", 64)? {
        Opt::Set(items) => {
            let mut out = Vec::with_capacity(items.len());
            for s in items {
                let ip = IpAddr::from_str(s.trim()).map_err(|_| {
                    invalid_field(
                        "dns_nameservers",
                        format!("'{s}' is not a valid nameserver"),
                    )
                })?;
                if out.contains(&ip) {
                    return Err(invalid_field(
                        "dns_nameservers",
                        format!("Duplicate nameserver '{s}'"),
                    ));
                }
                out.push(ip);
            }
            Ok(Opt::Set(out))
        }
        Opt::Null => Ok(Opt::Null),
        Opt::Absent => Ok(Opt::Absent),
    }
}

fn routes_input(input: &mut Input) -> ApiResult<Opt<Vec<HostRoute>>> {
    route_list(input, "host_routes")
}

/// A list of `{destination, nexthop}` routes under `key` (subnet host
/// routes, router extra routes).
pub(crate) fn route_list(input: &mut Input, key: &str) -> ApiResult<Opt<Vec<HostRoute>>> {
    let items = match input.list(key)? {
        Opt::Set(items) => items,
        Opt::Null => return Ok(Opt::Null),
        Opt::Absent => return Ok(Opt::Absent),
    };
    let mut out: Vec<HostRoute> = Vec::with_capacity(items.len());
    for item in items {
        let mut r = Input::from_value(item, key)?;
        let destination = r.string("destination", 64)?.value();
        let nexthop = r.ip("nexthop")?.value();
        r.finish()?;
        let (Some(destination), Some(nexthop)) = (destination, nexthop) else {
            return Err(invalid_field(
                key,
                "each route needs a destination and a nexthop",
            ));
        };
        let destination = IpNet::from_str(destination.trim())
            .map_err(|_| {
                invalid_field(
                    key,
                    format!("'{destination}' is not a valid destination CIDR"),
                )
            })?
            .trunc();
        let route = HostRoute {
            destination,
            nexthop,
        };
        if out.contains(&route) {
            return Err(invalid_field(
                key,
                format!("Duplicate hostroute '{destination} via {nexthop}'"),
            ));
        }
        out.push(route);
    }
    Ok(Opt::Set(out))
}

fn check_routes(cidr: &IpNet, routes: &[HostRoute]) -> ApiResult<()> {
    let v4 = cidr.addr().is_ipv4();
    for r in routes {
        if r.destination.addr().is_ipv4() != v4 || r.nexthop.is_ipv4() != v4 {
            return Err(invalid_input(format!(
                "Host route {} via {} does not match the IP version of subnet {cidr}.",
                r.destination, r.nexthop
            )));
        }
    }
    Ok(())
}

/// The attributes Statera shows with one fixed value.
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    let is_false = |v: &Value| crate::input::parse_bool(v) == Some(false);
    only_default(input, "subnetpool_id", |_| false)?;
    only_default(input, "prefixlen", |_| false)?;
    only_default(input, "use_default_subnet_pool", is_false)?;
    only_default(input, "ipv6_ra_mode", |_| false)?;
    only_default(input, "ipv6_address_mode", |_| false)?;
    only_default(input, "segment_id", |_| false)?;
    only_default(input, "dns_publish_fixed_ip", is_false)?;
    only_default(input, "service_types", |v| {
        v.as_array().is_some_and(|a| a.is_empty())
    })?;
    Ok(())
}

// ---- handlers ---------------------------------------------------------------

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let items = s
            .subnets
            .iter()
            .filter(|x| subnet_visible(&ctx, &s, x))
            .map(|x| render::subnet(x))
            .collect();
        list_body(
            &app,
            &ctx,
            &uri,
            "subnets",
            render::SUBNET_ATTRS,
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
        let sub = visible_subnet(&ctx, &s, path_id(&id, "Subnet", "SubnetNotFound")?)?;
        Ok(Json(one("subnet", render::subnet(&sub), &uri)))
    })
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(create_subnet(ctx, app, body).await)
}

fn required<T>(v: Opt<T>, field: &str) -> ApiResult<T> {
    v.value().ok_or_else(|| {
        ApiError::bad_request(format!(
            "Failed to parse request. Required attribute '{field}' not specified"
        ))
        .neutron("HTTPBadRequest")
    })
}

async fn create_subnet(
    ctx: RequestContext,
    app: AppState,
    body: Value,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = envelope(body, "subnet")?;
    let network_id = required(input.uuid("network_id")?, "network_id")?;
    let cidr = parse_subnet_cidr(&required(input.string("cidr", 64)?, "cidr")?)?;
    let ip_version = input.int("ip_version", 0, 255)?.value();
    let name = input.string("name", 255)?.value().unwrap_or_default();
    let description = input
        .string("description", 255)?
        .value()
        .unwrap_or_default();
    let gateway = input.ip("gateway_ip")?;
    let pools = pools_input(&mut input)?;
    let enable_dhcp = input.boolean("enable_dhcp")?.or(true);
    let dns_nameservers = nameservers_input(&mut input)?.value().unwrap_or_default();
    let host_routes = routes_input(&mut input)?.value().unwrap_or_default();
    let tags = crate::octavia::tags(&mut input)?
        .value()
        .unwrap_or_default();
    let project_id = input
        .project_id()?
        .unwrap_or_else(|| ctx.project_id.clone());
    fixed_attributes(&mut input)?;
    input.finish()?;

    let version = if cidr.addr().is_ipv4() { 4 } else { 6 };
    match ip_version {
        None => {}
        Some(v) if v != 4 && v != 6 => {
            return Err(invalid_field("ip_version", format!("{v} is not in [4, 6]")));
        }
        Some(v) if v != version => {
            return Err(invalid_input(format!(
                "Cannot use an IPv{version} cidr ({cidr}) with ip_version {v}."
            )));
        }
        Some(_) => {}
    }
    let gateway_ip = match gateway {
        Opt::Absent => default_gateway(&cidr),
        Opt::Null => None,
        Opt::Set(g) => {
            check_gateway(&cidr, g)?;
            Some(g)
        }
    };
    let allocation_pools = match pools {
        Opt::Set(p) if !p.is_empty() => {
            check_pools(&cidr, &p, gateway_ip)?;
            p
        }
        _ => default_pools(&cidr, gateway_ip),
    };
    check_routes(&cidr, &host_routes)?;
    if !super::may_create(&ctx, "create_subnet", &project_id) {
        return Err(forbidden("create_subnet"));
    }
    if !ctx.is_admin()
        && let Some(reserved) = host_reserved_overlap(&cidr)
    {
        return Err(invalid_input(format!(
            "Requested subnet with cidr: {cidr} overlaps the host-reserved range {reserved}; \
             only an administrator may create subnets there."
        )));
    }
    super::quotas::check_host_interfaces(&app, &ctx, &cidr)?;

    let id = Uuid::new_v4();
    app.store
        .write(|txn| {
            let s = txn.state();
            let network = visible_network(&ctx, s, network_id)?;
            if !ctx.allowed_on(
                "create_subnet",
                &super::network_target(&project_id, &network),
            ) {
                return Err(forbidden("create_subnet"));
            }
            if let Some(other) = s
                .subnets
                .children(network_id)
                .find(|x| x.cidr.contains(&cidr.network()) || cidr.contains(&x.cidr.network()))
            {
                return Err(invalid_input(format!(
                    "Requested subnet with cidr: {cidr} for network: {network_id} overlaps \
                     with another subnet ({} {}).",
                    other.id, other.cidr
                )));
            }
            super::quotas::check(&app, s, &project_id, super::quotas::Resource::Subnet, 1)?;
            txn.put(Subnet {
                id,
                project_id,
                network_id,
                name,
                description,
                cidr,
                gateway_ip,
                allocation_pools,
                enable_dhcp,
                dns_nameservers,
                host_routes,
                tags,
                created_at: now(),
                updated_at: None,
            })?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let sub = visible_subnet(&ctx, &s, id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"subnet": render::subnet(&sub)})),
    ))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(update_subnet(ctx, app, id, body).await)
}

/// An immutable attribute may be restated, not changed.
fn unchanged(input: &mut Input, key: &str, current: &str) -> ApiResult<()> {
    match input.take(key) {
        Opt::Absent => Ok(()),
        Opt::Set(v)
            if v.as_str() == Some(current)
                || v.as_i64().is_some_and(|n| n.to_string() == current) =>
        {
            Ok(())
        }
        _ => Err(
            ApiError::bad_request(format!("Cannot update read-only attribute {key}"))
                .neutron("HTTPBadRequest"),
        ),
    }
}

async fn update_subnet(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Subnet", "SubnetNotFound")?;
    let mut input = envelope(body, "subnet")?;
    let name = input.string("name", 255)?.update();
    let description = input.string("description", 255)?.update();
    let gateway = input.ip("gateway_ip")?;
    let pools = pools_input(&mut input)?;
    let enable_dhcp = input.boolean("enable_dhcp")?.update();
    let dns_nameservers = nameservers_input(&mut input)?.update();
    let host_routes = routes_input(&mut input)?.update();
    let tags = crate::octavia::tags(&mut input)?.update();
    fixed_attributes(&mut input)?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let mut sub = visible_subnet(&ctx, s, id)?;
            unchanged(&mut input, "cidr", &sub.cidr.to_string())?;
            unchanged(&mut input, "ip_version", &sub.ip_version().to_string())?;
            unchanged(&mut input, "network_id", &sub.network_id.to_string())?;
            unchanged(&mut input, "project_id", &sub.project_id)?;
            unchanged(&mut input, "tenant_id", &sub.project_id)?;
            input.finish()?;
            if !ctx.allowed_on("update_subnet", &super::subnet_target(s, &sub)) {
                return Err(forbidden("update_subnet"));
            }
            if let Some(v) = name {
                sub.name = v.unwrap_or_default();
            }
            if let Some(v) = description {
                sub.description = v.unwrap_or_default();
            }
            match gateway {
                Opt::Absent => {}
                Opt::Null => sub.gateway_ip = None,
                Opt::Set(g) => {
                    check_gateway(&sub.cidr, g)?;
                    if sub.gateway_ip != Some(g)
                        && let Some(p) = s.ports.children(sub.network_id).find(|p| {
                            p.fixed_ips
                                .iter()
                                .any(|f| f.subnet_id == id && f.ip_address == g)
                        })
                    {
                        return Err(conflict(
                            "GatewayIpInUse",
                            format!(
                                "Gateway ip {g} is already in use by port {}. Unable to update.",
                                p.id
                            ),
                        ));
                    }
                    sub.gateway_ip = Some(g);
                }
            }
            match pools {
                Opt::Set(p) if !p.is_empty() => sub.allocation_pools = p,
                Opt::Set(_) | Opt::Null => {
                    sub.allocation_pools = default_pools(&sub.cidr, sub.gateway_ip)
                }
                Opt::Absent => {}
            }
            check_pools(&sub.cidr, &sub.allocation_pools, sub.gateway_ip)?;
            if let Some(v) = enable_dhcp {
                sub.enable_dhcp = v.unwrap_or(true);
            }
            if let Some(v) = dns_nameservers {
                sub.dns_nameservers = v.unwrap_or_default();
            }
            if let Some(v) = host_routes {
                sub.host_routes = v.unwrap_or_default();
                check_routes(&sub.cidr, &sub.host_routes)?;
            }
            if let Some(v) = tags {
                sub.tags = v.unwrap_or_default();
            }
            sub.updated_at = Some(now());
            txn.put(sub)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let sub = visible_subnet(&ctx, &s, id)?;
    Ok(Json(json!({"subnet": render::subnet(&sub)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(delete_subnet(ctx, app, id).await)
}

async fn delete_subnet(ctx: RequestContext, app: AppState, id: String) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Subnet", "SubnetNotFound")?;
    app.store
        .write(|txn| {
            let s = txn.state().clone();
            let sub = visible_subnet(&ctx, &s, id)?;
            if !ctx.allowed_on("delete_subnet", &super::subnet_target(&s, &sub)) {
                return Err(forbidden("delete_subnet"));
            }
            let holders: Vec<&Port> = s
                .ports
                .children(sub.network_id)
                .filter(|p| p.fixed_ips.iter().any(|f| f.subnet_id == id))
                .map(|p| &**p)
                .collect();
            if let Some(user) = statera_service::neutron::lb_user(&ctx.service, &s, id) {
                return Err(conflict(
                    "SubnetInUse",
                    format!("Unable to complete operation on subnet {id}: {user} uses it."),
                ));
            }
            if holders.iter().any(|p| p.device_owner != "network:dhcp") {
                return Err(conflict(
                    "SubnetInUse",
                    format!(
                        "Unable to complete operation on subnet {id}: \
                         One or more ports have an IP allocation from this subnet."
                    ),
                ));
            }
            // DHCP ports let go of their address on the subnet.
            for p in holders {
                let mut p = p.clone();
                p.fixed_ips.retain(|f| f.subnet_id != id);
                p.updated_at = Some(now());
                txn.put(p)?;
            }
            txn.delete::<Subnet>(&id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pool(a: &str, b: &str) -> AllocationPool {
        AllocationPool {
            start: ip(a),
            end: ip(b),
        }
    }

    #[test]
    fn cidr_must_be_a_network() {
        assert!(parse_subnet_cidr("10.0.0.0/24").is_ok());
        let e = parse_subnet_cidr("10.0.0.5/24").unwrap_err();
        assert!(
            e.message.contains("'10.0.0.0/24' is recommended"),
            "{}",
            e.message
        );
        assert!(parse_subnet_cidr("10.0.0.0").is_err());
        assert!(parse_subnet_cidr("nonsense").is_err());
        assert!(parse_subnet_cidr("2001:db8::/64").is_ok());
    }

    #[test]
    fn gateway_and_pools() {
        let c = net("10.0.0.0/24");
        assert!(check_gateway(&c, ip("10.0.0.1")).is_ok());
        assert!(check_gateway(&c, ip("10.0.1.1")).is_err());
        assert!(check_gateway(&c, ip("10.0.0.0")).is_err());
        assert!(check_gateway(&c, ip("10.0.0.255")).is_err());
        let g = Some(ip("10.0.0.1"));
        assert!(check_pools(&c, &[pool("10.0.0.10", "10.0.0.20")], g).is_ok());
        let e = check_pools(&c, &[pool("10.0.0.20", "10.0.0.10")], g).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = check_pools(&c, &[pool("10.0.0.10", "10.0.1.20")], g).unwrap_err();
        assert_eq!(e.neutron_type, "OutOfBoundsAllocationPool");
        let e = check_pools(&c, &[pool("10.0.0.200", "10.0.0.255")], g).unwrap_err();
        assert_eq!(e.neutron_type, "OutOfBoundsAllocationPool");
        let e = check_pools(
            &c,
            &[
                pool("10.0.0.10", "10.0.0.20"),
                pool("10.0.0.20", "10.0.0.30"),
            ],
            g,
        )
        .unwrap_err();
        assert_eq!(e.neutron_type, "OverlappingAllocationPools");
        let e = check_pools(&c, &[pool("10.0.0.1", "10.0.0.20")], g).unwrap_err();
        assert_eq!(e.neutron_type, "GatewayConflictWithAllocationPools");
        let e = check_pools(&c, &[pool("2001:db8::1", "2001:db8::2")], g).unwrap_err();
        assert_eq!(e.neutron_type, "InvalidAllocationPool");
    }
}
