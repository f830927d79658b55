//! The Neutron subset's operations: networks, subnets, ports, routers,
//! floating IPs and security groups, with Neutron's rules, its policy
//! defaults and its errors ([`Fault`] plus Neutron's exception names).
//!
//! Visibility follows Neutron: an object of another project that the caller
//! may not see is 404, never 403; shared and external networks (and their
//! subnets) are visible to every project. What the Octavia operations need
//! of this subset (which objects a caller may reference) is here too.

pub mod floatingips;
pub mod ipam;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod routers;
pub mod security_groups;
pub mod subnets;
pub mod tags;

use crate::auth::{Context, project_target};
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::store::StoreRead;
use statera_model::Router as L3Router;
use statera_model::*;
use statera_policy::Target;
use std::fmt::Display;
use std::sync::Arc;
use uuid::Uuid;

pub use quotas::{NeutronConfig, NeutronQuotas, NeutronSettings, QuotaResource};

// ---------------------------------------------------------------------------------------------
// Neutron's errors

/// A Neutron error of `fault` with Neutron's exception name.
pub fn error(fault: Fault, exception: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Neutron {
        fault,
        exception,
        message: message.into(),
    }
}

/// `<Resource> <id> could not be found.` with Neutron's exception name.
pub fn not_found(resource: &str, id: impl Display, exception: &'static str) -> ServiceError {
    error(
        Fault::NotFound,
        exception,
        format!("{resource} {id} could not be found."),
    )
}

/// Neutron's `InvalidInput` (400): `Invalid input for operation: …`.
pub fn invalid_input(message: impl Display) -> ServiceError {
    error(
        Fault::Invalid,
        "InvalidInput",
        format!("Invalid input for operation: {message}"),
    )
}

/// A 400 about one attribute: `Invalid input for <field>. Reason: …`.
pub fn invalid_field(field: &str, reason: impl Display) -> ServiceError {
    error(
        Fault::Invalid,
        "HTTPBadRequest",
        format!("Invalid input for {field}. Reason: {reason}."),
    )
}

/// Neutron's generic `BadRequest` (400): `Bad <resource> request: <msg>.`
pub fn bad_request(resource: &str, msg: impl Display) -> ServiceError {
    error(
        Fault::Invalid,
        "BadRequest",
        format!("Bad {resource} request: {msg}."),
    )
}

/// A 409 with Neutron's exception name.
pub fn conflict(exception: &'static str, message: impl Into<String>) -> ServiceError {
    error(Fault::Conflict, exception, message)
}

/// `(rule:<action>) is disallowed by policy` (403).
pub fn forbidden(action: &str) -> ServiceError {
    error(
        Fault::Forbidden,
        "PolicyNotAuthorized",
        format!("(rule:{action}) is disallowed by policy"),
    )
}

/// Read-only attributes a body restates must keep their value (`current`
/// gives it by name).
pub fn check_restated(
    restated: &[(&'static str, Option<String>)],
    current: impl Fn(&str) -> String,
) -> ServiceResult<()> {
    for (key, given) in restated {
        if given.as_deref() != Some(current(key).as_str()) {
            return Err(error(
                Fault::Invalid,
                "HTTPBadRequest",
                format!("Cannot update read-only attribute {key}"),
            ));
        }
    }
    Ok(())
}

/// Refuses with [`forbidden`] unless `rule` allows the caller on `project_id`.
pub fn authorize(ctx: &Context, rule: &str, project_id: &str) -> ServiceResult<()> {
    if ctx.allowed(rule, project_id) {
        Ok(())
    } else {
        Err(forbidden(rule))
    }
}

pub fn router_not_found(id: impl Display) -> ServiceError {
    error(
        Fault::NotFound,
        "RouterNotFound",
        format!("Router {id} could not be found"),
    )
}

pub fn floating_ip_not_found(id: impl Display) -> ServiceError {
    error(
        Fault::NotFound,
        "FloatingIPNotFound",
        format!("Floating IP {id} could not be found"),
    )
}

pub fn security_group_not_found(id: impl Display) -> ServiceError {
    error(
        Fault::NotFound,
        "SecurityGroupNotFound",
        format!("Security group {id} does not exist"),
    )
}

// ---------------------------------------------------------------------------------------------
// Policy targets and visibility

fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

/// The policy target of an object of `project_id` on network `n`: the
/// object's project, the network's (`network:project_id`) and the
/// network's `shared` / `router:external` (Neutron's field checks).
pub fn network_target(project_id: &str, n: &Network) -> Target {
    let mut t = project_target(project_id);
    t.insert("network:project_id".into(), n.project_id.clone());
    t.insert("network:tenant_id".into(), n.project_id.clone());
    t.insert("shared".into(), py_bool(n.shared));
    t.insert("router:external".into(), py_bool(n.external));
    t
}

/// A subnet's policy target (Statera shows a network owner no other
/// project's subnets: `network:project_id` is left out, so Neutron's
/// network-owner alternatives of the subnet rules do not apply).
pub fn subnet_target(s: &impl StoreRead, sub: &Subnet) -> Target {
    let mut t = project_target(&sub.project_id);
    if let Some(n) = s.get::<Network>(&sub.network_id) {
        t.insert("shared".into(), py_bool(n.shared));
        t.insert("router:external".into(), py_bool(n.external));
    }
    t
}

/// Whether a create `rule` allows the caller to create an object for
/// `project_id` in that project's own tree (its own network, its own
/// security group): asked before the parent is looked up, since Neutron
/// refuses a non-admin naming another project whatever the parent.
pub fn may_create(ctx: &Context, rule: &str, project_id: &str) -> bool {
    let mut t = project_target(project_id);
    for key in ["network:project_id", "security_group:project_id"] {
        t.insert(key.into(), project_id.into());
    }
    ctx.allowed_on(rule, &t)
}

/// Whether the caller sees network `n` (`get_network`).
pub fn network_visible(ctx: &Context, n: &Network) -> bool {
    ctx.allowed_on("get_network", &network_target(&n.project_id, n))
}

/// Whether the caller sees subnet `sub` (`get_subnet`: its own, or on a
/// network everyone sees).
pub fn subnet_visible(ctx: &Context, s: &impl StoreRead, sub: &Subnet) -> bool {
    ctx.allowed_on("get_subnet", &subnet_target(s, sub))
}

/// Whether the caller sees port `p` (`get_port`: its own, or on a network
/// it owns).
pub fn port_visible(ctx: &Context, s: &impl StoreRead, p: &Port) -> bool {
    let mut t = project_target(&p.project_id);
    if let Some(n) = s.get::<Network>(&p.network_id) {
        t.insert("network:project_id".into(), n.project_id.clone());
    }
    ctx.allowed_on("get_port", &t)
}

/// Whether the caller may use objects of `project_id` in references of its
/// own requests: Neutron's `admin_or_owner` rule. Unlike reading, Octavia's
/// observer roles give no such right.
pub fn owns(ctx: &Context, project_id: &str) -> bool {
    ctx.allowed("admin_or_owner", project_id)
}

/// The network `id` if the caller may put something on it: its own, a
/// shared one, or an external one (as Neutron shows them to everyone).
pub fn usable_network(ctx: &Context, s: &impl StoreRead, id: Uuid) -> Option<Network> {
    s.get::<Network>(&id)
        .filter(|n| owns(ctx, &n.project_id) || n.shared || n.external)
        .map(|n| (*n).clone())
}

/// The subnet `id` if the caller may use it: its own, or on a network it
/// owns, a shared one or an external one.
pub fn usable_subnet(ctx: &Context, s: &impl StoreRead, id: Uuid) -> Option<Subnet> {
    s.get::<Subnet>(&id)
        .filter(|x| {
            owns(ctx, &x.project_id)
                || s.get::<Network>(&x.network_id)
                    .is_some_and(|n| owns(ctx, &n.project_id) || n.shared || n.external)
        })
        .map(|x| (*x).clone())
}

/// The port `id` if the caller may use it: its own, or on a network it owns.
pub fn usable_port(ctx: &Context, s: &impl StoreRead, id: Uuid) -> Option<Port> {
    s.get::<Port>(&id)
        .filter(|p| {
            owns(ctx, &p.project_id)
                || s.get::<Network>(&p.network_id)
                    .is_some_and(|n| owns(ctx, &n.project_id))
        })
        .map(|p| (*p).clone())
}

/// The security group `id` if the caller may use it (its own).
pub fn usable_security_group(ctx: &Context, s: &impl StoreRead, id: Uuid) -> Option<SecurityGroup> {
    s.get::<SecurityGroup>(&id)
        .filter(|g| owns(ctx, &g.project_id))
        .map(|g| (*g).clone())
}

/// An id to show the caller in an error about an object of `project_id`:
/// the id when the caller may read that object, else a phrase that reveals
/// nothing of another project's objects.
pub fn shown_id(ctx: &Context, project_id: &str, id: impl Display) -> String {
    if owns(ctx, project_id) {
        id.to_string()
    } else {
        "(an object of another project)".to_string()
    }
}

/// The network `id`, visible to the caller, else 404 `NetworkNotFound`.
pub fn visible_network(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Network>> {
    s.get::<Network>(&id)
        .filter(|n| network_visible(ctx, n))
        .ok_or_else(|| not_found("Network", id, "NetworkNotFound"))
}

/// The subnet `id`, visible to the caller, else 404 `SubnetNotFound`.
pub fn visible_subnet(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Subnet>> {
    s.get::<Subnet>(&id)
        .filter(|x| subnet_visible(ctx, s, x))
        .ok_or_else(|| not_found("Subnet", id, "SubnetNotFound"))
}

/// The port `id`, visible to the caller, else 404 `PortNotFound`.
pub fn visible_port(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Port>> {
    s.get::<Port>(&id)
        .filter(|p| port_visible(ctx, s, p))
        .ok_or_else(|| not_found("Port", id, "PortNotFound"))
}

/// The router `id`, visible to the caller, else 404 `RouterNotFound`.
pub fn visible_router(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<L3Router>> {
    s.get::<L3Router>(&id)
        .filter(|r| ctx.allowed("get_router", &r.project_id))
        .ok_or_else(|| router_not_found(id))
}

/// The floating IP `id`, visible to the caller, else 404 `FloatingIPNotFound`.
pub fn visible_floating_ip(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<Arc<FloatingIp>> {
    s.get::<FloatingIp>(&id)
        .filter(|f| ctx.allowed("get_floatingip", &f.project_id))
        .ok_or_else(|| floating_ip_not_found(id))
}

/// The security group `id`, visible to the caller, else 404 `SecurityGroupNotFound`.
pub fn visible_security_group(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<Arc<SecurityGroup>> {
    s.get::<SecurityGroup>(&id)
        .filter(|g| ctx.allowed("get_security_group", &g.project_id))
        .ok_or_else(|| security_group_not_found(id))
}

/// What of the load-balancing side uses subnet `id` (a VIP, an additional
/// VIP, a member), if anything does. Ids of another project's objects are
/// not shown.
pub fn lb_user(ctx: &Context, s: &impl StoreRead, id: Uuid) -> Option<String> {
    if let Some(lb) = s
        .list_by_project::<LoadBalancer>(None)
        .into_iter()
        .find(|lb| lb.vip_subnet_id == id || lb.additional_vips.iter().any(|v| v.subnet_id == id))
    {
        return Some(
            if ctx.allowed("os_load-balancer_api:loadbalancer:get_one", &lb.project_id) {
                format!("load balancer {}", lb.id)
            } else {
                "a load balancer of another project".to_string()
            },
        );
    }
    s.list_by_project::<Member>(None)
        .into_iter()
        .find(|m| m.subnet_id == Some(id))
        .map(|m| {
            if ctx.allowed("os_load-balancer_api:member:get_one", &m.project_id) {
                format!("member {} of pool {}", m.id, m.pool_id)
            } else {
                "a member of another project".to_string()
            }
        })
}
