//! `/ports`: list, create, show, update, delete; fixed IPs (requested or
//! allocated), MAC addresses, security groups and port security. Ports that
//! routers and floating IPs own are changed through those APIs only.

use super::subnets::{AddressSpace, held_addresses, is_host_address};
use super::*;
use crate::input::{JsonBody, NeutronJson, Opt};
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;
use std::net::IpAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ports", get(list).post(create))
        .route("/ports/{id}", get(show).put(update).delete(delete))
}

// ---- MAC addresses --------------------------------------------------------

/// A unicast MAC in `aa:bb:cc:dd:ee:ff` or `aa-bb-…` form, normalised to
/// lower case with colons.
pub(crate) fn parse_mac(raw: &str) -> ApiResult<String> {
    let bad = || invalid_field("mac_address", format!("'{raw}' is not a valid MAC address"));
    let parts: Vec<&str> = raw.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut bytes = [0u8; 6];
    for (b, part) in bytes.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    // All zeros, and multicast/broadcast addresses, name no interface.
    if bytes == [0; 6] || bytes[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn mac_in_use(s: &State, network_id: Uuid, mac: &str, except: Option<Uuid>) -> bool {
    s.ports
        .children(network_id)
        .any(|p| Some(p.id) != except && p.mac_address == mac)
}

/// A MAC no port of `network_id` has.
fn free_mac(s: &State, network_id: Uuid) -> String {
    loop {
        let m = ipam::new_mac();
        if !mac_in_use(s, network_id, &m, None) {
            break m;
        }
    }
}

// ---- fixed IPs ----------------------------------------------------------------

/// One entry of a request's `fixed_ips`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FixedIpRequest {
    pub subnet_id: Option<Uuid>,
    pub ip_address: Option<IpAddr>,
}

fn fixed_ips_input(input: &mut Input) -> ApiResult<Opt<Vec<FixedIpRequest>>> {
    fixed_ip_list(input, "fixed_ips")
}

/// Every subnet the request names must be one the caller sees: another
/// project's is answered exactly as a missing one (before any check that
/// would tell where it is).
fn check_requested_subnets(
    ctx: &RequestContext,
    s: &State,
    requested: Option<&Vec<FixedIpRequest>>,
) -> ApiResult<()> {
    for sid in requested.into_iter().flatten().filter_map(|r| r.subnet_id) {
        visible_subnet(ctx, s, sid)?;
    }
    Ok(())
}

/// A list of `{subnet_id, ip_address}` entries under `key`.
pub(crate) fn fixed_ip_list(input: &mut Input, key: &str) -> ApiResult<Opt<Vec<FixedIpRequest>>> {
    let items = match input.list(key)? {
        Opt::Set(items) => items,
        Opt::Null => return Ok(Opt::Null),
        Opt::Absent => return Ok(Opt::Absent),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut f = Input::from_value(item, key)?;
        let subnet_id = f.uuid("subnet_id")?.value();
        let ip_address = f.ip("ip_address")?.value();
        f.finish()?;
        if subnet_id.is_none() && ip_address.is_none() {
            return Err(invalid_field(
                key,
                "each entry needs a subnet_id or an ip_address",
            ));
        }
        out.push(FixedIpRequest {
            subnet_id,
            ip_address,
        });
    }
    Ok(Opt::Set(out))
}

/// Router interfaces may hold a subnet's gateway address; nothing else may.
fn may_hold_gateway(device_owner: &str) -> bool {
    device_owner.starts_with("network:router_interface")
        || device_owner == "network:ha_router_replicated_interface"
}

/// The answer for a gateway address on a port that is no router interface.
fn gateway_reserved(ip: IpAddr, subnet_id: Uuid) -> ApiError {
    conflict(
        "IpAddressAlreadyAllocated",
        format!(
            "IP address {ip} is the gateway of subnet {subnet_id}; only a router interface may \
             hold it"
        ),
    )
}

/// A port that stops being a router interface may not keep a gateway.
fn check_no_gateway(s: &State, p: &Port) -> ApiResult<()> {
    if may_hold_gateway(&p.device_owner) {
        return Ok(());
    }
    match p.fixed_ips.iter().find(|f| {
        s.subnets
            .get(&f.subnet_id)
            .is_some_and(|sub| sub.gateway_ip == Some(f.ip_address))
    }) {
        Some(f) => Err(gateway_reserved(f.ip_address, f.subnet_id)),
        None => Ok(()),
    }
}

fn exhausted(network_id: Uuid) -> ApiError {
    conflict(
        "IpAddressGenerationFailure",
        format!("No more IP addresses available on network {network_id}."),
    )
}

/// The fixed IPs a port of `network_id` gets for `requested` (`None`: the
/// request named none). `port` is the port being updated, whose own
/// addresses are not in the way and are kept for entries naming only their
/// subnet.
pub(crate) fn assign_fixed_ips(
    s: &State,
    space: &AddressSpace,
    network_id: Uuid,
    port: Option<&Port>,
    requested: Option<Vec<FixedIpRequest>>,
    device_owner: &str,
) -> ApiResult<Vec<FixedIp>> {
    let except = port.map(|p| p.id);
    let Some(requested) = requested else {
        // One address from the first subnet (IPv4 first) with room.
        let mut subs: Vec<&Subnet> = s.subnets.children(network_id).map(|x| &**x).collect();
        if subs.is_empty() {
            return Ok(Vec::new());
        }
        subs.sort_by_key(|x| (x.ip_version(), x.created_at, x.id));
        for sub in subs {
            if let Some(ip) =
                ipam::allocate_avoiding(sub, &space.avoid(held_addresses(s, space, sub, except)))
            {
                return Ok(vec![FixedIp {
                    subnet_id: sub.id,
                    ip_address: ip,
                }]);
            }
        }
        return Err(exhausted(network_id));
    };
    // Resolve each entry's subnet.
    let mut entries: Vec<(Subnet, Option<IpAddr>)> = Vec::with_capacity(requested.len());
    for r in requested {
        let sub = match (r.subnet_id, r.ip_address) {
            (Some(sid), _) => {
                let sub = s
                    .subnets
                    .get(&sid)
                    .ok_or_else(|| not_found("Subnet", sid, "SubnetNotFound"))?;
                if sub.network_id != network_id {
                    return Err(invalid_input(format!(
                        "Failed to create port on network {network_id}, because fixed_ips \
                         included invalid subnet {sid}"
                    )));
                }
                (**sub).clone()
            }
            (None, Some(ip)) => s
                .subnets
                .children(network_id)
                .find(|x| is_host_address(&x.cidr, ip))
                .map(|x| (**x).clone())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "IP address {ip} is not a valid IP for any of the subnets on the \
                         specified network."
                    ))
                    .neutron("InvalidIpForNetwork")
                })?,
            (None, None) => {
                return Err(invalid_field(
                    "fixed_ips",
                    "each entry needs a subnet_id or an ip_address",
                ));
            }
        };
        entries.push((sub, r.ip_address));
    }
    // Requested addresses first, so that allocation goes around them.
    let mut chosen: Vec<FixedIp> = Vec::with_capacity(entries.len());
    for (sub, ip) in &entries {
        let Some(ip) = *ip else { continue };
        if !is_host_address(&sub.cidr, ip) {
            return Err(ApiError::bad_request(format!(
                "IP address {ip} is not a valid IP for the specified subnet."
            ))
            .neutron("InvalidIpForSubnet"));
        }
        if chosen.iter().any(|f| f.ip_address == ip) {
            return Err(invalid_input(format!("Duplicate IP address {ip}")));
        }
        if held_addresses(s, space, sub, except).contains(&ip) {
            return Err(conflict(
                "IpAddressAlreadyAllocated",
                format!("IP address {ip} already allocated in subnet {}", sub.id),
            ));
        }
        if sub.gateway_ip == Some(ip) && !may_hold_gateway(device_owner) {
            return Err(gateway_reserved(ip, sub.id));
        }
        chosen.push(FixedIp {
            subnet_id: sub.id,
            ip_address: ip,
        });
    }
    // Entries naming only a subnet: keep the port's address there, else allocate.
    for (sub, ip) in &entries {
        if ip.is_some() {
            continue;
        }
        let kept = port.and_then(|p| {
            p.fixed_ips
                .iter()
                .find(|f| f.subnet_id == sub.id && !chosen.contains(f))
                .cloned()
        });
        let fixed = match kept {
            Some(f) => f,
            None => {
                let mut taken = space.avoid(held_addresses(s, space, sub, except));
                taken.extend(chosen.iter().map(|f| f.ip_address));
                let ip =
                    ipam::allocate_avoiding(sub, &taken).ok_or_else(|| exhausted(network_id))?;
                FixedIp {
                    subnet_id: sub.id,
                    ip_address: ip,
                }
            }
        };
        chosen.push(fixed);
    }
    Ok(chosen)
}

// ---- load balancer ports ------------------------------------------------------

/// The load balancer whose VIP port `p` is, if it is one: a load balancer
/// names it as `vip_port_id`, or it is an `Octavia` port whose `device_id`
/// names an existing load balancer. (An `Octavia` port whose load balancer
/// is gone is an ordinary port again, so that it can be cleaned up.)
fn vip_owner(s: &State, p: &Port) -> Option<Uuid> {
    if let Some(lb) = s.loadbalancers.iter().find(|lb| lb.vip_port_id == p.id) {
        return Some(lb.id);
    }
    if p.device_owner != ipam::VIP_DEVICE_OWNER {
        return None;
    }
    let lb = p.device_id.strip_prefix("lb-").unwrap_or(&p.device_id);
    Uuid::parse_str(lb)
        .ok()
        .filter(|id| s.loadbalancers.contains(id))
}

fn vip_port_in_use(ctx: &RequestContext, s: &State, p: &Port, lb: Uuid) -> ApiError {
    let lb = match s.loadbalancers.get(&lb) {
        Some(x) => shown_id(ctx, &x.project_id, lb),
        None => lb.to_string(),
    };
    conflict(
        "PortInUse",
        format!(
            "Port {} belongs to load balancer {lb} (it is its VIP port) and cannot be \
             changed or deleted here; delete the load balancer instead.",
            p.id
        ),
    )
}

// ---- router and floating IP ports ---------------------------------------------------

/// The router or floating IP that owns port `p`, if it is one of theirs and
/// its owner exists (a leftover whose owner is gone is an ordinary port).
pub(crate) fn l3_owner(s: &State, p: &Port) -> Option<Uuid> {
    let id = Uuid::parse_str(&p.device_id).ok()?;
    match p.device_owner.as_str() {
        device_owner::ROUTER_INTERFACE | device_owner::ROUTER_GATEWAY => {
            s.routers.contains(&id).then_some(id)
        }
        device_owner::FLOATING_IP => s.floating_ips.contains(&id).then_some(id),
        _ => None,
    }
}

fn l3_port_in_use(p: &Port) -> ApiError {
    conflict(
        "L3PortInUse",
        format!(
            "Port {} has owner {} and therefore cannot be deleted directly via the port API.",
            p.id, p.device_owner
        ),
    )
}

fn l3_port_locked(ctx: &RequestContext, s: &State, p: &Port, owner: Uuid) -> ApiError {
    let project = s
        .routers
        .get(&owner)
        .map(|r| r.project_id.clone())
        .or_else(|| s.floating_ips.get(&owner).map(|f| f.project_id.clone()))
        .unwrap_or_default();
    let owner = shown_id(ctx, &project, owner);
    conflict(
        "PortInUse",
        format!(
            "Port {} belongs to {} {owner} ({}): its addresses, device_owner and device_id \
             change through the router and floating IP APIs only.",
            p.id,
            if p.device_owner == device_owner::FLOATING_IP {
                "floating IP"
            } else {
                "router"
            },
            p.device_owner
        ),
    )
}

/// The port API may not make a port a leg of an existing router or the
/// holder of an existing floating IP (add_router_interface does that).
fn check_not_claiming_l3(s: &State, p: &Port) -> ApiResult<()> {
    match l3_owner(s, p) {
        Some(owner) => Err(bad_request(
            "port",
            format!(
                "device_owner {} with device_id {owner} is managed by the router and \
                 floating IP APIs",
                p.device_owner
            ),
        )),
        None => Ok(()),
    }
}

// ---- security groups -------------------------------------------------------------------

/// The groups a port of `project_id` asks for: each must exist and be the
/// port project's (an admin may use any), duplicates are dropped.
fn port_groups(
    ctx: &RequestContext,
    s: &State,
    project_id: &str,
    ids: Vec<Uuid>,
) -> ApiResult<Vec<Uuid>> {
    let mut out: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in ids {
        let g = visible_security_group(ctx, s, id)?;
        if g.project_id != project_id && !ctx.is_admin() {
            return Err(security_group_not_found(id));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn security_needs_port_security_and_ip() -> ApiError {
    ApiError::bad_request(
        "Port security must be enabled and port must have an IP address in order to use \
         security groups.",
    )
    .neutron("PortSecurityAndIPRequiredForSecurityGroups")
}

// ---- attribute policies ------------------------------------------------------------

/// Neutron's attribute rules for ports, by name (`create_port:device_owner`,
/// `:mac_address`, `:fixed_ips:ip_address`, `:port_security_enabled`, and
/// the `update_port:` ones): by default, on a network the caller neither
/// administers nor owns (a shared one), it may not give a `network:*`
/// device owner, a MAC address, an explicit fixed IP address or port
/// security; naming only a subnet stays allowed. `action` is `create_port`
/// or `update_port`; `requested` lists the attributes the request sets
/// (device owner: the new value) on a port of `project_id`.
fn check_attribute_policy(
    ctx: &RequestContext,
    network: &Network,
    project_id: &str,
    action: &str,
    requested: AttributePolicy<'_>,
) -> ApiResult<()> {
    let mut target = super::network_target(project_id, network);
    let mut asked: Vec<&str> = Vec::new();
    if let Some(owner) = requested.device_owner {
        target.insert("device_owner".into(), owner.to_string());
        asked.push("device_owner");
    }
    if requested.mac_address {
        asked.push("mac_address");
    }
    if requested
        .fixed_ips
        .is_some_and(|f| f.iter().any(|r| r.ip_address.is_some()))
    {
        asked.push("fixed_ips:ip_address");
    }
    if requested.port_security_enabled {
        asked.push("port_security_enabled");
    }
    for attr in asked {
        let rule = format!("{action}:{attr}");
        if !ctx.allowed_on(&rule, &target) {
            return Err(forbidden(&rule));
        }
    }
    Ok(())
}

/// What a port request sets, for [`check_attribute_policy`].
#[derive(Default, Clone, Copy)]
struct AttributePolicy<'a> {
    device_owner: Option<&'a str>,
    mac_address: bool,
    fixed_ips: Option<&'a Vec<FixedIpRequest>>,
    port_security_enabled: bool,
}

// ---- request attributes ---------------------------------------------------------

/// The attributes Statera shows with one fixed value.
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    let empty_list = |v: &Value| v.as_array().is_some_and(|a| a.is_empty());
    only_default(input, "binding:vnic_type", |v| v == "normal")?;
    only_default(input, "binding:host_id", |v| v == "")?;
    only_default(input, "binding:profile", |v| {
        v.as_object().is_some_and(|o| o.is_empty())
    })?;
    only_default(input, "allowed_address_pairs", empty_list)?;
    only_default(input, "extra_dhcp_opts", empty_list)?;
    only_default(input, "qos_policy_id", |_| false)?;
    Ok(())
}

/// An immutable attribute may be restated, not changed.
fn unchanged(input: &mut Input, key: &str, current: &str) -> ApiResult<()> {
    match input.take(key) {
        Opt::Absent => Ok(()),
        Opt::Set(v) if v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(current)) => Ok(()),
        _ => Err(
            ApiError::bad_request(format!("Cannot update read-only attribute {key}"))
                .neutron("HTTPBadRequest"),
        ),
    }
}

// ---- handlers -------------------------------------------------------------------

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let q = Query::parse(uri.query());
        let wanted = FixedIpFilter::parse(&q)?;
        let items = s
            .ports
            .iter()
            .filter(|p| port_visible(&ctx, &s, p) && wanted.matches(p))
            .map(|p| render::port(p))
            .collect();
        list_body(
            &app,
            &ctx,
            &uri,
            "ports",
            render::PORT_ATTRS,
            &["fixed_ips"],
            items,
        )
        .map(Json)
    })
}

/// `?fixed_ips=ip_address=…&fixed_ips=subnet_id=…` (what `openstack port
/// list --fixed-ip` sends): values of one kind are alternatives, kinds combine.
#[derive(Default)]
struct FixedIpFilter {
    ips: Vec<String>,
    subnets: Vec<String>,
    ip_substrings: Vec<String>,
}

impl FixedIpFilter {
    fn parse(q: &Query) -> ApiResult<FixedIpFilter> {
        let mut f = FixedIpFilter::default();
        for (k, v) in &q.pairs {
            if k != "fixed_ips" {
                continue;
            }
            match v.split_once('=') {
                Some(("ip_address", x)) => f.ips.push(x.to_string()),
                Some(("subnet_id", x)) => f.subnets.push(x.to_string()),
                Some(("ip_address_substr", x)) => f.ip_substrings.push(x.to_string()),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid fixed_ips filter '{v}': expected ip_address=, subnet_id= or \
                         ip_address_substr="
                    ))
                    .neutron("HTTPBadRequest"));
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, p: &Port) -> bool {
        let ips: Vec<String> = p
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.to_string())
            .collect();
        (self.ips.is_empty() || ips.iter().any(|i| self.ips.contains(i)))
            && (self.subnets.is_empty()
                || p.fixed_ips
                    .iter()
                    .any(|f| self.subnets.contains(&f.subnet_id.to_string())))
            && (self.ip_substrings.is_empty()
                || ips
                    .iter()
                    .any(|i| self.ip_substrings.iter().any(|x| i.contains(x.as_str()))))
    }
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let p = visible_port(&ctx, &s, path_id(&id, "Port", "PortNotFound")?)?;
        Ok(Json(one("port", render::port(&p), &uri)))
    })
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(create_port(ctx, app, body).await)
}

async fn create_port(
    ctx: RequestContext,
    app: AppState,
    body: Value,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = envelope(body, "port")?;
    let network_id = input.uuid("network_id")?.value().ok_or_else(|| {
        ApiError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        )
        .neutron("HTTPBadRequest")
    })?;
    let name = input.string("name", 255)?.value().unwrap_or_default();
    let description = input
        .string("description", 255)?
        .value()
        .unwrap_or_default();
    let admin_state_up = input.boolean("admin_state_up")?.or(true);
    let mac = match input.string("mac_address", 64)?.value() {
        Some(m) => Some(parse_mac(&m)?),
        None => None,
    };
    let fixed_ips = fixed_ips_input(&mut input)?.value();
    let device_owner = input
        .string("device_owner", 255)?
        .value()
        .unwrap_or_default();
    let device_id = input.string("device_id", 255)?.value().unwrap_or_default();
    let security_groups = input
        .uuid_list("security_groups")?
        .value()
        .unwrap_or_default();
    let port_security = input.boolean("port_security_enabled")?.value();
    let port_security_enabled = port_security.unwrap_or(true);
    let tags = crate::octavia::tags(&mut input)?
        .value()
        .unwrap_or_default();
    let project_id = input
        .project_id()?
        .unwrap_or_else(|| ctx.project_id.clone());
    fixed_attributes(&mut input)?;
    input.finish()?;
    if !super::may_create(&ctx, "create_port", &project_id) {
        return Err(forbidden("create_port"));
    }
    if let Some(f) = &fixed_ips {
        super::quotas::check_fixed_ips_count(&app, &device_owner, f.len())?;
        super::quotas::check_port_addresses(&app, &ctx, f.iter().filter_map(|r| r.ip_address))?;
    }
    if device_owner == ipam::VIP_DEVICE_OWNER
        && !ctx.allowed("statera:port:vip_device_owner", &project_id)
    {
        return Err(forbidden("create_port:device_owner"));
    }

    let id = Uuid::new_v4();
    app.store
        .write(|txn| {
            let s = txn.state();
            let network = visible_network(&ctx, s, network_id)?;
            if !ctx.allowed_on("create_port", &super::network_target(&project_id, &network)) {
                return Err(forbidden("create_port"));
            }
            check_attribute_policy(
                &ctx,
                &network,
                &project_id,
                "create_port",
                AttributePolicy {
                    device_owner: Some(&device_owner),
                    mac_address: mac.is_some(),
                    fixed_ips: fixed_ips.as_ref(),
                    port_security_enabled: port_security.is_some(),
                },
            )?;
            let mac_address = match mac {
                Some(m) => {
                    if mac_in_use(s, network_id, &m, None) {
                        return Err(conflict(
                            "MacAddressInUse",
                            format!(
                                "Unable to complete operation for network {network_id}. \
                                 The mac address {m} is in use."
                            ),
                        ));
                    }
                    m
                }
                None => free_mac(s, network_id),
            };
            let security_groups = port_groups(&ctx, s, &project_id, security_groups)?;
            super::quotas::check(&app, s, &project_id, super::quotas::Resource::Port, 1)?;
            check_requested_subnets(&ctx, s, fixed_ips.as_ref())?;
            let fixed_ips = assign_fixed_ips(
                s,
                &super::quotas::address_space(&app)?,
                network_id,
                None,
                fixed_ips,
                &device_owner,
            )?;
            if !security_groups.is_empty() && (!port_security_enabled || fixed_ips.is_empty()) {
                return Err(security_needs_port_security_and_ip());
            }
            let port = Port {
                id,
                project_id,
                network_id,
                name,
                description,
                admin_state_up,
                mac_address,
                fixed_ips,
                device_owner,
                device_id,
                security_groups,
                port_security_enabled,
                tags,
                created_at: now(),
                updated_at: None,
            };
            check_not_claiming_l3(s, &port)?;
            txn.put(port)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let p = visible_port(&ctx, &s, id)?;
    Ok((StatusCode::CREATED, Json(json!({"port": render::port(&p)}))))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(update_port(ctx, app, id, body).await)
}

async fn update_port(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Port", "PortNotFound")?;
    let mut input = envelope(body, "port")?;
    let name = input.string("name", 255)?.update();
    let description = input.string("description", 255)?.update();
    let admin_state_up = input.boolean("admin_state_up")?.update();
    let device_owner = input.string("device_owner", 255)?.update();
    let device_id = input.string("device_id", 255)?.update();
    let security_groups = input.uuid_list("security_groups")?.update();
    let port_security_enabled = input.boolean("port_security_enabled")?.update();
    let tags = crate::octavia::tags(&mut input)?.update();
    let fixed_ips = fixed_ips_input(&mut input)?.update();
    fixed_attributes(&mut input)?;
    if let Some(Some(f)) = &fixed_ips {
        super::quotas::check_port_addresses(&app, &ctx, f.iter().filter_map(|r| r.ip_address))?;
    }
    app.store
        .write(|txn| {
            let s = txn.state();
            let old = visible_port(&ctx, s, id)?;
            unchanged(&mut input, "network_id", &old.network_id.to_string())?;
            unchanged(&mut input, "project_id", &old.project_id)?;
            unchanged(&mut input, "tenant_id", &old.project_id)?;
            unchanged(&mut input, "mac_address", &old.mac_address)?;
            input.finish()?;
            if !ctx.allowed("update_port", &old.project_id) {
                return Err(forbidden("update_port"));
            }
            if let Some(network) = s.networks.get(&old.network_id) {
                check_attribute_policy(
                    &ctx,
                    network,
                    &old.project_id,
                    "update_port",
                    AttributePolicy {
                        device_owner: device_owner.as_ref().map(|v| v.as_deref().unwrap_or("")),
                        mac_address: false,
                        fixed_ips: fixed_ips.as_ref().and_then(|v| v.as_ref()),
                        port_security_enabled: port_security_enabled.is_some(),
                    },
                )?;
            }
            let mut p = old.clone();
            if let Some(v) = name {
                p.name = v.unwrap_or_default();
            }
            if let Some(v) = description {
                p.description = v.unwrap_or_default();
            }
            if let Some(v) = admin_state_up {
                p.admin_state_up = v.unwrap_or(true);
            }
            if let Some(v) = device_owner {
                p.device_owner = v.unwrap_or_default();
            }
            if let Some(v) = device_id {
                p.device_id = v.unwrap_or_default();
            }
            let groups_given = security_groups.is_some();
            if let Some(v) = security_groups {
                p.security_groups = port_groups(&ctx, s, &p.project_id, v.unwrap_or_default())?;
            }
            if let Some(v) = port_security_enabled {
                p.port_security_enabled = v.unwrap_or(true);
            }
            if let Some(v) = tags {
                p.tags = v.unwrap_or_default();
            }
            if let Some(v) = fixed_ips {
                let requested = v.unwrap_or_default();
                super::quotas::check_fixed_ips_count(&app, &p.device_owner, requested.len())?;
                check_requested_subnets(&ctx, s, Some(&requested))?;
                p.fixed_ips = assign_fixed_ips(
                    s,
                    &super::quotas::address_space(&app)?,
                    p.network_id,
                    Some(&old),
                    Some(requested),
                    &p.device_owner,
                )?;
            }
            let moved = p.fixed_ips != old.fixed_ips
                || p.device_owner != old.device_owner
                || p.device_id != old.device_id;
            if let Some(lb) = vip_owner(s, &old)
                && moved
            {
                return Err(vip_port_in_use(&ctx, s, &old, lb));
            }
            if let Some(owner) = l3_owner(s, &old)
                && moved
            {
                return Err(l3_port_locked(&ctx, s, &old, owner));
            }
            if p.device_owner != old.device_owner || p.device_id != old.device_id {
                check_not_claiming_l3(s, &p)?;
            }
            if p.device_owner != old.device_owner {
                check_no_gateway(s, &p)?;
            }
            if !p.security_groups.is_empty() && (!p.port_security_enabled || p.fixed_ips.is_empty())
            {
                return Err(if groups_given {
                    security_needs_port_security_and_ip()
                } else {
                    conflict(
                        "PortSecurityPortHasSecurityGroup",
                        "Port has security group associated. Cannot disable port security or \
                         IP address until security group is removed.",
                    )
                });
            }
            // A fixed IP a floating IP translates to stays until the
            // floating IP lets go of it.
            for f in super::floatingips::of_port(s, id) {
                if let Some(ip) = f.fixed_ip_address
                    && !p.fixed_ips.iter().any(|x| x.ip_address == ip)
                {
                    return Err(conflict(
                        "PortInUse",
                        format!(
                            "Fixed IP {ip} of port {id} is associated with floating IP {} ({}); \
                             disassociate it first.",
                            f.floating_ip_address,
                            shown_id(&ctx, &f.project_id, f.id)
                        ),
                    ));
                }
            }
            if p.device_owner == ipam::VIP_DEVICE_OWNER
                && old.device_owner != ipam::VIP_DEVICE_OWNER
                && !ctx.allowed("statera:port:vip_device_owner", &p.project_id)
            {
                return Err(forbidden("update_port:device_owner"));
            }
            p.updated_at = Some(now());
            txn.put(p)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let p = visible_port(&ctx, &s, id)?;
    Ok(Json(json!({"port": render::port(&p)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(delete_port(ctx, app, id).await)
}

async fn delete_port(ctx: RequestContext, app: AppState, id: String) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Port", "PortNotFound")?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let p = visible_port(&ctx, s, id)?;
            if !ctx.allowed("delete_port", &p.project_id) {
                return Err(forbidden("delete_port"));
            }
            if let Some(lb) = vip_owner(s, &p) {
                return Err(vip_port_in_use(&ctx, s, &p, lb));
            }
            if l3_owner(s, &p).is_some() {
                return Err(l3_port_in_use(&p));
            }
            // Neutron lets go of the floating IPs associated with the port.
            super::floatingips::disassociate_port(txn, id)?;
            txn.delete::<Port>(&id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses() {
        assert_eq!(parse_mac("FA:16:3E:00:11:22").unwrap(), "fa:16:3e:00:11:22");
        assert_eq!(parse_mac("fa-16-3e-00-11-22").unwrap(), "fa:16:3e:00:11:22");
        for bad in [
            "",
            "fa:16:3e:00:11",
            "fa:16:3e:00:11:22:33",
            "fa:16:3e:00:11:2",
            "fa:16:3e:00:11:zz",
            "00:00:00:00:00:00",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
