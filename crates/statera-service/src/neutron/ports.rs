//! Ports: list, create, show, update, delete; fixed IPs (requested or
//! allocated through [`super::ipam`]), MAC addresses, security groups and
//! port security, Neutron's attribute policies. Ports that routers and
//! floating IPs own change through those operations only; a load
//! balancer's VIP port through the load balancer only.

use super::ipam::{self, AddressSpace, VIP_DEVICE_OWNER, held_addresses, is_host_address};
use super::quotas::{self, NeutronConfig, QuotaResource};
use super::{
    authorize, bad_request, conflict, error, forbidden, invalid_field, invalid_input, may_create,
    network_target, not_found, port_visible, security_group_not_found, shown_id, visible_network,
    visible_port, visible_security_group,
};
use crate::auth::Context;
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// One entry of a request's fixed IPs (a port's `fixed_ips`, a router
/// gateway's `external_fixed_ips`, a floating IP's address).
#[derive(Debug, Clone, PartialEq)]
pub struct FixedIpRequest {
    pub subnet_id: Option<Uuid>,
    pub ip_address: Option<IpAddr>,
}

/// A port as a create states it (absent attributes take Neutron's defaults).
pub struct NewPort {
    pub network_id: Uuid,
    /// The project asked for, else the caller's.
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    /// A unicast MAC, in canonical form (lower case, colons).
    pub mac_address: Option<String>,
    /// `None`: the request names none (one address is allocated).
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    pub device_owner: Option<String>,
    pub device_id: Option<String>,
    pub security_groups: Option<Vec<Uuid>>,
    pub port_security_enabled: Option<bool>,
    pub tags: Option<Vec<String>>,
}

/// What an update states (the immutable attributes are the wire's to
/// refuse: they may only be restated).
pub struct PortFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub device_owner: Opt<String>,
    pub device_id: Opt<String>,
    pub security_groups: Opt<Vec<Uuid>>,
    pub port_security_enabled: Opt<bool>,
    pub tags: Opt<Vec<String>>,
    /// Null: no fixed IPs at all.
    pub fixed_ips: Opt<Vec<FixedIpRequest>>,
}

// ---- MAC addresses ----------------------------------------------------------------

fn mac_in_use(s: &impl StoreRead, network_id: Uuid, mac: &str, except: Option<Uuid>) -> bool {
    s.children::<Port>(network_id)
        .iter()
        .any(|p| Some(p.id) != except && p.mac_address == mac)
}

/// A MAC no port of `network_id` has.
fn free_mac(s: &impl StoreRead, network_id: Uuid) -> String {
    loop {
        let m = ipam::new_mac();
        if !mac_in_use(s, network_id, &m, None) {
            break m;
        }
    }
}

/// A port Statera makes for a router or a floating IP (Neutron gives them no
/// name and, for gateway and floating IP ports, no project).
pub fn service_port(
    s: &impl StoreRead,
    network_id: Uuid,
    project_id: &str,
    device_owner: &str,
    device_id: Uuid,
    fixed_ips: Vec<FixedIp>,
) -> Port {
    Port {
        id: Uuid::new_v4(),
        project_id: project_id.to_string(),
        network_id,
        name: String::new(),
        description: String::new(),
        admin_state_up: true,
        mac_address: free_mac(s, network_id),
        fixed_ips,
        device_owner: device_owner.to_string(),
        device_id: device_id.to_string(),
        security_groups: Vec::new(),
        port_security_enabled: false,
        tags: Vec::new(),
        created_at: now(),
        updated_at: None,
    }
}

// ---- fixed IPs ----------------------------------------------------------------------

/// Every subnet the request names must be one the caller sees: another
/// project's is answered exactly as a missing one (before any check that
/// would tell where it is).
fn check_requested_subnets(
    ctx: &Context,
    s: &impl StoreRead,
    requested: Option<&Vec<FixedIpRequest>>,
) -> ServiceResult<()> {
    for sid in requested.into_iter().flatten().filter_map(|r| r.subnet_id) {
        super::visible_subnet(ctx, s, sid)?;
    }
    Ok(())
}

/// Router interfaces may hold a subnet's gateway address; nothing else may.
fn may_hold_gateway(device_owner: &str) -> bool {
    device_owner.starts_with("network:router_interface")
        || device_owner == "network:ha_router_replicated_interface"
}

/// The answer for a gateway address on a port that is no router interface.
fn gateway_reserved(ip: IpAddr, subnet_id: Uuid) -> ServiceError {
    conflict(
        "IpAddressAlreadyAllocated",
        format!(
            "IP address {ip} is the gateway of subnet {subnet_id}; only a router interface may \
             hold it"
        ),
    )
}

/// A port that stops being a router interface may not keep a gateway.
fn check_no_gateway(s: &impl StoreRead, p: &Port) -> ServiceResult<()> {
    if may_hold_gateway(&p.device_owner) {
        return Ok(());
    }
    match p.fixed_ips.iter().find(|f| {
        s.get::<Subnet>(&f.subnet_id)
            .is_some_and(|sub| sub.gateway_ip == Some(f.ip_address))
    }) {
        Some(f) => Err(gateway_reserved(f.ip_address, f.subnet_id)),
        None => Ok(()),
    }
}

/// `IpAddressGenerationFailure` (409): the network has no free address.
pub const ADDRESS_GENERATION_FAILURE: &str = "IpAddressGenerationFailure";

fn exhausted(network_id: Uuid) -> ServiceError {
    conflict(
        ADDRESS_GENERATION_FAILURE,
        format!("No more IP addresses available on network {network_id}."),
    )
}

/// The fixed IPs a port of `network_id` gets for `requested` (`None`: the
/// request named none). `port` is the port being updated, whose own
/// addresses are not in the way and are kept for entries naming only their
/// subnet.
pub fn assign_fixed_ips(
    s: &impl StoreRead,
    space: &AddressSpace,
    network_id: Uuid,
    port: Option<&Port>,
    requested: Option<Vec<FixedIpRequest>>,
    device_owner: &str,
) -> ServiceResult<Vec<FixedIp>> {
    let except = port.map(|p| p.id);
    let Some(requested) = requested else {
        // One address from the first subnet (IPv4 first) with room.
        let mut subs = s.children::<Subnet>(network_id);
        if subs.is_empty() {
            return Ok(Vec::new());
        }
        subs.sort_by_key(|x| (x.ip_version(), x.created_at, x.id));
        for sub in subs {
            if let Some(ip) =
                ipam::allocate_avoiding(&sub, &space.avoid(held_addresses(s, space, &sub, except)))
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
                    .get::<Subnet>(&sid)
                    .ok_or_else(|| not_found("Subnet", sid, "SubnetNotFound"))?;
                if sub.network_id != network_id {
                    return Err(invalid_input(format!(
                        "Failed to create port on network {network_id}, because fixed_ips \
                         included invalid subnet {sid}"
                    )));
                }
                (*sub).clone()
            }
            (None, Some(ip)) => s
                .children::<Subnet>(network_id)
                .iter()
                .find(|x| is_host_address(&x.cidr, ip))
                .map(|x| (**x).clone())
                .ok_or_else(|| {
                    error(
                        Fault::Invalid,
                        "InvalidIpForNetwork",
                        format!(
                            "IP address {ip} is not a valid IP for any of the subnets on the \
                             specified network."
                        ),
                    )
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
            return Err(error(
                Fault::Invalid,
                "InvalidIpForSubnet",
                format!("IP address {ip} is not a valid IP for the specified subnet."),
            ));
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

// ---- load balancer ports ------------------------------------------------------------

/// The load balancer whose VIP port `p` is, if it is one: a load balancer
/// names it as `vip_port_id`, or it is an `Octavia` port whose `device_id`
/// names an existing load balancer. (An `Octavia` port whose load balancer
/// is gone is an ordinary port again, so that it can be cleaned up.)
fn vip_owner(s: &impl StoreRead, p: &Port) -> Option<Uuid> {
    if let Some(lb) = s
        .list_by_project::<LoadBalancer>(None)
        .iter()
        .find(|lb| lb.vip_port_id == p.id)
    {
        return Some(lb.id);
    }
    if p.device_owner != VIP_DEVICE_OWNER {
        return None;
    }
    let lb = p.device_id.strip_prefix("lb-").unwrap_or(&p.device_id);
    Uuid::parse_str(lb)
        .ok()
        .filter(|id| s.get::<LoadBalancer>(id).is_some())
}

fn vip_port_in_use(ctx: &Context, s: &impl StoreRead, p: &Port, lb: Uuid) -> ServiceError {
    let lb = match s.get::<LoadBalancer>(&lb) {
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
pub fn l3_owner(s: &impl StoreRead, p: &Port) -> Option<Uuid> {
    let id = Uuid::parse_str(&p.device_id).ok()?;
    match p.device_owner.as_str() {
        device_owner::ROUTER_INTERFACE | device_owner::ROUTER_GATEWAY => {
            s.get::<Router>(&id).is_some().then_some(id)
        }
        device_owner::FLOATING_IP => s.get::<FloatingIp>(&id).is_some().then_some(id),
        _ => None,
    }
}

fn l3_port_in_use(p: &Port) -> ServiceError {
    conflict(
        "L3PortInUse",
        format!(
            "Port {} has owner {} and therefore cannot be deleted directly via the port API.",
            p.id, p.device_owner
        ),
    )
}

fn l3_port_locked(ctx: &Context, s: &impl StoreRead, p: &Port, owner: Uuid) -> ServiceError {
    let project = s
        .get::<Router>(&owner)
        .map(|r| r.project_id.clone())
        .or_else(|| s.get::<FloatingIp>(&owner).map(|f| f.project_id.clone()))
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
fn check_not_claiming_l3(s: &impl StoreRead, p: &Port) -> ServiceResult<()> {
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

// ---- security groups --------------------------------------------------------------------

/// The groups a port of `project_id` asks for: each must exist and be the
/// port project's (an admin may use any), duplicates are dropped.
fn port_groups(
    ctx: &Context,
    s: &impl StoreRead,
    project_id: &str,
    ids: Vec<Uuid>,
) -> ServiceResult<Vec<Uuid>> {
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

fn security_needs_port_security_and_ip() -> ServiceError {
    error(
        Fault::Invalid,
        "PortSecurityAndIPRequiredForSecurityGroups",
        "Port security must be enabled and port must have an IP address in order to use \
         security groups.",
    )
}

// ---- attribute policies ------------------------------------------------------------------

/// What a port request sets, for [`check_attribute_policy`].
#[derive(Default, Clone, Copy)]
struct AttributePolicy<'a> {
    device_owner: Option<&'a str>,
    mac_address: bool,
    fixed_ips: Option<&'a Vec<FixedIpRequest>>,
    port_security_enabled: bool,
}

/// Neutron's attribute rules for ports, by name (`create_port:device_owner`,
/// `:mac_address`, `:fixed_ips:ip_address`, `:port_security_enabled`, and
/// the `update_port:` ones): by default, on a network the caller neither
/// administers nor owns (a shared one), it may not give a `network:*`
/// device owner, a MAC address, an explicit fixed IP address or port
/// security; naming only a subnet stays allowed. `action` is `create_port`
/// or `update_port`; `requested` lists the attributes the request sets
/// (device owner: the new value) on a port of `project_id`.
fn check_attribute_policy(
    ctx: &Context,
    network: &Network,
    project_id: &str,
    action: &str,
    requested: AttributePolicy<'_>,
) -> ServiceResult<()> {
    let mut target = network_target(project_id, network);
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

/// The addresses an update asks for by value must not be the host's own
/// (unless the caller is an admin): 400 `InvalidInput`, or 503 when the
/// host's addresses cannot be read.
pub fn check_update_addresses(
    cfg: &(impl NeutronConfig + ?Sized),
    ctx: &Context,
    f: &PortFields,
) -> ServiceResult<()> {
    if let Opt::Set(requested) = &f.fixed_ips {
        quotas::check_port_addresses(cfg, ctx, requested.iter().filter_map(|r| r.ip_address))?;
    }
    Ok(())
}

// ---- operations -----------------------------------------------------------------------

/// The ports the caller sees.
pub fn list(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<Port>>> {
    Ok(s.list_by_project::<Port>(None)
        .into_iter()
        .filter(|p| port_visible(ctx, s, p))
        .collect())
}

pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Port>> {
    visible_port(ctx, s, id)
}

pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    new: NewPort,
) -> ServiceResult<Uuid> {
    let network_id = new.network_id;
    let project_id = new
        .project_id
        .unwrap_or_else(|| ctx.caller.project().to_string());
    let device_owner = new.device_owner.unwrap_or_default();
    let port_security_enabled = new.port_security_enabled.unwrap_or(true);
    if !may_create(ctx, "create_port", &project_id) {
        return Err(forbidden("create_port"));
    }
    if let Some(f) = &new.fixed_ips {
        quotas::check_fixed_ips_count(cfg, &device_owner, f.len())?;
        quotas::check_port_addresses(cfg, ctx, f.iter().filter_map(|r| r.ip_address))?;
    }
    if device_owner == VIP_DEVICE_OWNER
        && !ctx.allowed("statera:port:vip_device_owner", &project_id)
    {
        return Err(forbidden("create_port:device_owner"));
    }

    let network = visible_network(ctx, txn, network_id)?;
    if !ctx.allowed_on("create_port", &network_target(&project_id, &network)) {
        return Err(forbidden("create_port"));
    }
    check_attribute_policy(
        ctx,
        &network,
        &project_id,
        "create_port",
        AttributePolicy {
            device_owner: Some(&device_owner),
            mac_address: new.mac_address.is_some(),
            fixed_ips: new.fixed_ips.as_ref(),
            port_security_enabled: new.port_security_enabled.is_some(),
        },
    )?;
    let mac_address = match new.mac_address {
        Some(m) => {
            if mac_in_use(txn, network_id, &m, None) {
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
        None => free_mac(txn, network_id),
    };
    let security_groups = port_groups(
        ctx,
        txn,
        &project_id,
        new.security_groups.unwrap_or_default(),
    )?;
    quotas::check(cfg, txn, &project_id, QuotaResource::Port, 1)?;
    check_requested_subnets(ctx, txn, new.fixed_ips.as_ref())?;
    let fixed_ips = assign_fixed_ips(
        txn,
        &ipam::address_space(cfg)?,
        network_id,
        None,
        new.fixed_ips,
        &device_owner,
    )?;
    if !security_groups.is_empty() && (!port_security_enabled || fixed_ips.is_empty()) {
        return Err(security_needs_port_security_and_ip());
    }
    let port = Port {
        id: Uuid::new_v4(),
        project_id,
        network_id,
        name: new.name.unwrap_or_default(),
        description: new.description.unwrap_or_default(),
        admin_state_up: new.admin_state_up.unwrap_or(true),
        mac_address,
        fixed_ips,
        device_owner,
        device_id: new.device_id.unwrap_or_default(),
        security_groups,
        port_security_enabled,
        tags: new.tags.unwrap_or_default(),
        created_at: now(),
        updated_at: None,
    };
    check_not_claiming_l3(txn, &port)?;
    let id = port.id;
    txn.put(port)?;
    Ok(id)
}

pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    id: Uuid,
    f: PortFields,
) -> ServiceResult<()> {
    check_update_addresses(cfg, ctx, &f)?;
    let old = (*visible_port(ctx, txn, id)?).clone();
    authorize(ctx, "update_port", &old.project_id)?;
    let name = f.name.update();
    let description = f.description.update();
    let admin_state_up = f.admin_state_up.update();
    let device_owner = f.device_owner.update();
    let device_id = f.device_id.update();
    let security_groups = f.security_groups.update();
    let port_security_enabled = f.port_security_enabled.update();
    let tags = f.tags.update();
    let fixed_ips = f.fixed_ips.update();
    if let Some(network) = txn.get::<Network>(&old.network_id) {
        check_attribute_policy(
            ctx,
            &network,
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
        p.security_groups = port_groups(ctx, txn, &p.project_id, v.unwrap_or_default())?;
    }
    if let Some(v) = port_security_enabled {
        p.port_security_enabled = v.unwrap_or(true);
    }
    if let Some(v) = tags {
        p.tags = v.unwrap_or_default();
    }
    if let Some(v) = fixed_ips {
        let requested = v.unwrap_or_default();
        quotas::check_fixed_ips_count(cfg, &p.device_owner, requested.len())?;
        check_requested_subnets(ctx, txn, Some(&requested))?;
        p.fixed_ips = assign_fixed_ips(
            txn,
            &ipam::address_space(cfg)?,
            p.network_id,
            Some(&old),
            Some(requested),
            &p.device_owner,
        )?;
    }
    let moved = p.fixed_ips != old.fixed_ips
        || p.device_owner != old.device_owner
        || p.device_id != old.device_id;
    if let Some(lb) = vip_owner(txn, &old)
        && moved
    {
        return Err(vip_port_in_use(ctx, txn, &old, lb));
    }
    if let Some(owner) = l3_owner(txn, &old)
        && moved
    {
        return Err(l3_port_locked(ctx, txn, &old, owner));
    }
    if p.device_owner != old.device_owner || p.device_id != old.device_id {
        check_not_claiming_l3(txn, &p)?;
    }
    if p.device_owner != old.device_owner {
        check_no_gateway(txn, &p)?;
    }
    if !p.security_groups.is_empty() && (!p.port_security_enabled || p.fixed_ips.is_empty()) {
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
    // A fixed IP a floating IP translates to stays until the floating IP
    // lets go of it.
    for f in super::floatingips::of_port(txn, id) {
        if let Some(ip) = f.fixed_ip_address
            && !p.fixed_ips.iter().any(|x| x.ip_address == ip)
        {
            return Err(conflict(
                "PortInUse",
                format!(
                    "Fixed IP {ip} of port {id} is associated with floating IP {} ({}); \
                     disassociate it first.",
                    f.floating_ip_address,
                    shown_id(ctx, &f.project_id, f.id)
                ),
            ));
        }
    }
    if p.device_owner == VIP_DEVICE_OWNER
        && old.device_owner != VIP_DEVICE_OWNER
        && !ctx.allowed("statera:port:vip_device_owner", &p.project_id)
    {
        return Err(forbidden("update_port:device_owner"));
    }
    p.updated_at = Some(now());
    txn.put(p)?;
    Ok(())
}

pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let p = visible_port(ctx, txn, id)?;
    authorize(ctx, "delete_port", &p.project_id)?;
    if let Some(lb) = vip_owner(txn, &p) {
        return Err(vip_port_in_use(ctx, txn, &p, lb));
    }
    if l3_owner(txn, &p).is_some() {
        return Err(l3_port_in_use(&p));
    }
    // Neutron lets go of the floating IPs associated with the port.
    super::floatingips::disassociate_port(txn, id)?;
    txn.delete::<Port>(&id);
    Ok(())
}
