//! Routers: list, create, show, update (name, gateway, extra routes),
//! delete, and adding / removing interfaces.
//!
//! A router's legs are ports with `device_id` = the router: the gateway port
//! (`network:router_gateway`, no project) on an external network, and one
//! `network:router_interface` port per attached subnet, which holds that
//! subnet's gateway address (or whatever address a port brought along).

use super::floatingips::associated;
use super::ipam;
use super::ports::{FixedIpRequest, assign_fixed_ips, service_port};
use super::quotas::{self, NeutronConfig, QuotaResource};
use super::{
    authorize, bad_request, check_restated, conflict, error, forbidden, not_found, owns,
    visible_network, visible_port, visible_router, visible_subnet,
};
use crate::auth::Context;
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use statera_model::Router as L3Router;
use statera_model::addressing::overlaps;
use statera_model::*;
use std::fmt::Display;
use std::sync::Arc;
use uuid::Uuid;

/// Neutron's default `max_routes`.
const MAX_ROUTES: usize = 30;

/// A router as a create states it (absent attributes take Neutron's defaults).
pub struct NewRouter {
    /// The project asked for, else the caller's.
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub gateway: Option<GatewayRequest>,
    pub tags: Option<Vec<String>>,
}

/// What an update states.
pub struct RouterFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub admin_state_up: Opt<bool>,
    /// Absent: leave it; null: clear it; set: set or change it.
    pub gateway: Opt<GatewayRequest>,
    pub routes: Opt<Vec<HostRoute>>,
    pub tags: Opt<Vec<String>>,
    /// Read-only attributes the body states (`project_id`, `tenant_id`),
    /// with their value when it is a string: they may be restated, not
    /// changed.
    pub restated: Vec<(&'static str, Option<String>)>,
    /// The wire layer's refusal of the rest of the body (attributes it does
    /// not know), given once the router is found and the read-only
    /// attributes are checked.
    pub rejected: Option<ServiceError>,
}

/// `external_gateway_info` as requested.
pub struct GatewayRequest {
    pub network_id: Uuid,
    pub enable_snat: Option<bool>,
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
}

/// What an interface request names (`subnet_id` and/or `port_id`).
pub struct InterfaceRequest {
    pub subnet_id: Option<Uuid>,
    pub port_id: Option<Uuid>,
}

/// Neutron's answer to an interface change.
pub struct InterfaceInfo {
    pub router_id: Uuid,
    pub project_id: String,
    pub port_id: Uuid,
    pub network_id: Uuid,
    pub subnet_ids: Vec<Uuid>,
}

// ---- legs ---------------------------------------------------------------------------------

/// The interface ports of router `id`.
pub fn interfaces(s: &impl StoreRead, id: Uuid) -> Vec<Port> {
    let device = id.to_string();
    s.list_by_project::<Port>(None)
        .into_iter()
        .filter(|p| p.device_owner == device_owner::ROUTER_INTERFACE && p.device_id == device)
        .map(|p| (*p).clone())
        .collect()
}

/// The oldest router with its gateway on `external_network` and an
/// interface on `subnet`: the one that carries a floating IP of that
/// network for an address of that subnet.
pub fn router_reaching(
    s: &impl StoreRead,
    subnet: &Subnet,
    external_network: Uuid,
) -> Option<Uuid> {
    let mut found: Vec<Arc<L3Router>> = s
        .children::<Port>(subnet.network_id)
        .into_iter()
        .filter(|p| {
            p.device_owner == device_owner::ROUTER_INTERFACE
                && p.fixed_ips.iter().any(|f| f.subnet_id == subnet.id)
        })
        .filter_map(|p| Uuid::parse_str(&p.device_id).ok())
        .filter_map(|rid| s.get::<L3Router>(&rid))
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
fn router_subnets(s: &impl StoreRead, r: &L3Router) -> Vec<(Arc<Subnet>, Uuid)> {
    let mut ports = interfaces(s, r.id);
    if let Some(g) = &r.external_gateway
        && let Some(p) = s.get::<Port>(&g.port_id)
    {
        ports.push((*p).clone());
    }
    ports
        .iter()
        .flat_map(|p| p.fixed_ips.iter().map(move |f| (f.subnet_id, p.id)))
        .filter_map(|(sid, pid)| s.get::<Subnet>(&sid).map(|x| (x, pid)))
        .collect()
}

/// Neutron's `_check_for_dup_router_subnets`: a router is on a subnet once,
/// and never on two overlapping subnets.
fn check_new_leg(s: &impl StoreRead, r: &L3Router, sub: &Subnet) -> ServiceResult<()> {
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
fn check_leg_unused(s: &impl StoreRead, r: &L3Router, sub: &Subnet) -> ServiceResult<()> {
    if s.list_by_project::<FloatingIp>(None).iter().any(|f| {
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

// ---- the external gateway -----------------------------------------------------------------

fn gateway_needed_by_fips(s: &impl StoreRead, r: &L3Router) -> ServiceResult<()> {
    let Some(g) = &r.external_gateway else {
        return Ok(());
    };
    if s.list_by_project::<FloatingIp>(None)
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
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    r: &mut L3Router,
    req: Option<GatewayRequest>,
) -> ServiceResult<()> {
    let space = ipam::address_space(cfg)?;
    let Some(req) = req else {
        if let Some(g) = r.external_gateway.take() {
            let mut before = r.clone();
            before.external_gateway = Some(g.clone());
            gateway_needed_by_fips(txn, &before)?;
            txn.delete::<Port>(&g.port_id);
        }
        return Ok(());
    };
    let network = visible_network(ctx, txn, req.network_id)?;
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
                && let Some(port) = txn.get::<Port>(&g.port_id)
            {
                let mut port = (*port).clone();
                let fixed = assign_fixed_ips(
                    txn,
                    &space,
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
                gateway_needed_by_fips(txn, r)?;
                txn.delete::<Port>(&g.port_id);
            }
            let fixed = assign_fixed_ips(
                txn,
                &space,
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
            let without_gateway = L3Router {
                external_gateway: None,
                ..r.clone()
            };
            for f in &fixed {
                if let Some(sub) = txn.get::<Subnet>(&f.subnet_id) {
                    check_new_leg(txn, &without_gateway, &sub)?;
                }
            }
            let port = service_port(
                txn,
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

// ---- extra routes -------------------------------------------------------------------------

fn invalid_routes(routes: &[HostRoute], reason: impl Display) -> ServiceError {
    let shown: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{{'destination': '{}', 'nexthop': '{}'}}",
                r.destination, r.nexthop
            )
        })
        .collect();
    error(
        Fault::Invalid,
        "InvalidRoutes",
        format!(
            "Invalid format for routes: [{}], {reason}",
            shown.join(", ")
        ),
    )
}

/// Every next hop must be on a subnet the router is attached to by an
/// interface, and must not be one of the router's own addresses.
fn check_routes(s: &impl StoreRead, r: &L3Router, routes: &[HostRoute]) -> ServiceResult<()> {
    if routes.len() > MAX_ROUTES {
        return Err(error(
            Fault::Invalid,
            "RoutesExhausted",
            format!(
                "Unable to complete operation for {}. The number of routes exceeds the maximum \
                 {MAX_ROUTES}.",
                r.id
            ),
        ));
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
            .filter_map(|f| s.get::<Subnet>(&f.subnet_id))
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

// ---- operations ---------------------------------------------------------------------------

/// The routers the caller sees.
pub fn list(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<L3Router>>> {
    Ok(s.list_by_project::<L3Router>(None)
        .into_iter()
        .filter(|r| ctx.allowed("get_router", &r.project_id))
        .collect())
}

pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<L3Router>> {
    visible_router(ctx, s, id)
}

pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    new: NewRouter,
) -> ServiceResult<Uuid> {
    let project_id = new
        .project_id
        .unwrap_or_else(|| ctx.caller.project().to_string());
    authorize(ctx, "create_router", &project_id)?;
    let mut r = L3Router {
        id: Uuid::new_v4(),
        project_id,
        name: new.name.unwrap_or_default(),
        description: new.description.unwrap_or_default(),
        admin_state_up: new.admin_state_up.unwrap_or(true),
        external_gateway: None,
        routes: Vec::new(),
        tags: new.tags.unwrap_or_default(),
        created_at: now(),
        updated_at: None,
    };
    let id = r.id;
    quotas::check(cfg, txn, &r.project_id, QuotaResource::Router, 1)?;
    if new.gateway.is_some() {
        apply_gateway(ctx, txn, cfg, &mut r, new.gateway)?;
    }
    txn.put(r)?;
    Ok(id)
}

pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    id: Uuid,
    f: RouterFields,
) -> ServiceResult<()> {
    let mut r = (*visible_router(ctx, txn, id)?).clone();
    check_restated(&f.restated, |_| r.project_id.clone())?;
    if let Some(e) = f.rejected {
        return Err(e);
    }
    authorize(ctx, "update_router", &r.project_id)?;
    if let Some(v) = f.name.update() {
        r.name = v.unwrap_or_default();
    }
    if let Some(v) = f.description.update() {
        r.description = v.unwrap_or_default();
    }
    if let Some(v) = f.admin_state_up.update() {
        r.admin_state_up = v.unwrap_or(true);
    }
    if let Some(v) = f.routes.update() {
        let v = v.unwrap_or_default();
        check_routes(txn, &r, &v)?;
        r.routes = v;
    }
    match f.gateway {
        Opt::Absent => {}
        Opt::Null => apply_gateway(ctx, txn, cfg, &mut r, None)?,
        Opt::Set(g) => apply_gateway(ctx, txn, cfg, &mut r, Some(g))?,
    }
    if let Some(v) = f.tags.update() {
        r.tags = v.unwrap_or_default();
    }
    r.updated_at = Some(now());
    txn.put(r)?;
    Ok(())
}

pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let r = visible_router(ctx, txn, id)?;
    authorize(ctx, "delete_router", &r.project_id)?;
    if !interfaces(txn, id).is_empty() {
        return Err(conflict(
            "RouterInUse",
            format!("Router {id} still has ports"),
        ));
    }
    // Associations whose port is gone still name the router.
    for f in txn
        .list_by_project::<FloatingIp>(None)
        .into_iter()
        .filter(|f| f.router_id == Some(id))
    {
        let mut f = (*f).clone();
        super::floatingips::clear_association(&mut f);
        txn.put(f)?;
    }
    if let Some(g) = &r.external_gateway {
        txn.delete::<Port>(&g.port_id);
    }
    txn.delete::<L3Router>(&id);
    Ok(())
}

// ---- interfaces ---------------------------------------------------------------------------

/// As Neutron: a subnet of a shared or external network (seen, not owned)
/// takes no router interface, whether named directly or through a port.
fn check_subnet_owned(ctx: &Context, sub: &Subnet) -> ServiceResult<()> {
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

/// The distinct subnets of `port`'s fixed IPs, in order.
fn subnet_ids(port: &Port) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = Vec::new();
    for f in &port.fixed_ips {
        if !ids.contains(&f.subnet_id) {
            ids.push(f.subnet_id);
        }
    }
    ids
}

fn info(r: &L3Router, port: &Port, subnet_ids: Vec<Uuid>) -> InterfaceInfo {
    InterfaceInfo {
        router_id: r.id,
        project_id: r.project_id.clone(),
        port_id: port.id,
        network_id: port.network_id,
        subnet_ids,
    }
}

/// `add_router_interface`: a new interface port holding the subnet's
/// gateway address, or the caller's own unattached port made one.
pub fn add_interface(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    id: Uuid,
    req: InterfaceRequest,
) -> ServiceResult<InterfaceInfo> {
    let r = (*visible_router(ctx, txn, id)?).clone();
    authorize(ctx, "add_router_interface", &r.project_id)?;
    let port = match (req.subnet_id, req.port_id) {
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
            let sub = visible_subnet(ctx, txn, sid)?;
            check_subnet_owned(ctx, &sub)?;
            let Some(gateway) = sub.gateway_ip else {
                return Err(bad_request(
                    "router",
                    "Subnet for router interface must have a gateway IP",
                ));
            };
            check_new_leg(txn, &r, &sub)?;
            let fixed = assign_fixed_ips(
                txn,
                &ipam::address_space(cfg)?,
                sub.network_id,
                None,
                Some(vec![FixedIpRequest {
                    subnet_id: Some(sid),
                    ip_address: Some(gateway),
                }]),
                device_owner::ROUTER_INTERFACE,
            )?;
            service_port(
                txn,
                sub.network_id,
                &sub.project_id,
                device_owner::ROUTER_INTERFACE,
                id,
                fixed,
            )
        }
        (None, Some(pid)) => {
            let mut port = (*visible_port(ctx, txn, pid)?).clone();
            // Only the caller's own port (another's, even one seen on the
            // caller's network, is answered as missing).
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
            let mut subs: Vec<Arc<Subnet>> = Vec::new();
            for f in &port.fixed_ips {
                if let Some(sub) = txn.get::<Subnet>(&f.subnet_id)
                    && !subs.iter().any(|x| x.id == sub.id)
                {
                    subs.push(sub);
                }
            }
            if subs.iter().filter(|x| x.cidr.addr().is_ipv4()).count() > 1 {
                return Err(bad_request(
                    "router",
                    "Cannot have multiple IPv4 subnets on router port",
                ));
            }
            for sub in &subs {
                check_subnet_owned(ctx, sub)?;
                check_new_leg(txn, &r, sub)?;
            }
            port.device_owner = device_owner::ROUTER_INTERFACE.to_string();
            port.device_id = id.to_string();
            port.updated_at = Some(now());
            port
        }
    };
    let info = info(&r, &port, subnet_ids(&port));
    txn.put(port)?;
    let mut r = r;
    r.updated_at = Some(now());
    txn.put(r)?;
    Ok(info)
}

fn no_interface_on_subnet(router: Uuid, subnet: Uuid) -> ServiceError {
    error(
        Fault::NotFound,
        "RouterInterfaceNotFoundForSubnet",
        format!("Router {router} has no interface on subnet {subnet}"),
    )
}

/// `remove_router_interface`: the interface on the subnet (or the port
/// named) lets go of those subnets; a port left with none is deleted.
pub fn remove_interface(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    req: InterfaceRequest,
) -> ServiceResult<InterfaceInfo> {
    let r = (*visible_router(ctx, txn, id)?).clone();
    authorize(ctx, "remove_router_interface", &r.project_id)?;
    let legs = interfaces(txn, id);
    let (port, removed): (Port, Vec<Uuid>) = match (req.subnet_id, req.port_id) {
        (None, None) => {
            return Err(bad_request(
                "router",
                "Either subnet_id or port_id must be specified",
            ));
        }
        (sid, Some(pid)) => {
            let port = legs.into_iter().find(|p| p.id == pid).ok_or_else(|| {
                error(
                    Fault::NotFound,
                    "RouterInterfaceNotFound",
                    format!("Router {id} does not have an interface with id {pid}"),
                )
            })?;
            if let Some(sid) = sid
                && !port.fixed_ips.iter().any(|f| f.subnet_id == sid)
            {
                return Err(no_interface_on_subnet(id, sid));
            }
            let subnets = subnet_ids(&port);
            (port, subnets)
        }
        (Some(sid), None) => {
            visible_subnet(ctx, txn, sid)?;
            let port = legs
                .into_iter()
                .find(|p| p.fixed_ips.iter().any(|f| f.subnet_id == sid))
                .ok_or_else(|| no_interface_on_subnet(id, sid))?;
            (port, vec![sid])
        }
    };
    for sid in &removed {
        if let Some(sub) = txn.get::<Subnet>(sid) {
            check_leg_unused(txn, &r, &sub)?;
        }
    }
    let info = info(&r, &port, removed.clone());
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_attributes_may_be_restated_not_changed() {
        let current = |key: &str| format!("{key}-value");
        assert!(check_restated(&[], current).is_ok());
        assert!(
            check_restated(&[("project_id", Some("project_id-value".into()))], current).is_ok()
        );
        for given in [None, Some("other".to_string())] {
            let e = check_restated(
                &[
                    ("project_id", Some("project_id-value".into())),
                    ("tenant_id", given),
                ],
                current,
            )
            .unwrap_err();
            assert!(matches!(
                e,
                ServiceError::Neutron {
                    fault: Fault::Invalid,
                    exception: "HTTPBadRequest",
                    ref message,
                } if message == "Cannot update read-only attribute tenant_id"
            ));
        }
    }
}
