//! Floating IPs: list, create, show, update, delete.
//!
//! A floating IP is an address of an external network, held in IPAM by a
//! `network:floatingip` port (no project, `device_id` = the floating IP) that
//! lives and dies with it. Associating it with a port's fixed IP needs a
//! router with its gateway on that external network and an interface on the
//! fixed IP's subnet; the router carries the translation (`router_id`).

use super::check_restated;
use super::ipam::{self, AddressSpace, held_addresses};
use super::ports::{ADDRESS_GENERATION_FAILURE, FixedIpRequest, assign_fixed_ips, service_port};
use super::quotas::{self, NeutronConfig, QuotaResource};
use super::routers::router_reaching;
use super::{
    authorize, bad_request, conflict, error, not_found, visible_floating_ip, visible_network,
    visible_port,
};
use crate::auth::Context;
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// A floating IP as a create states it.
pub struct NewFloatingIp {
    /// The project asked for, else the caller's.
    pub project_id: Option<String>,
    pub floating_network_id: Uuid,
    pub floating_ip_address: Option<IpAddr>,
    pub subnet_id: Option<Uuid>,
    pub port_id: Option<Uuid>,
    pub fixed_ip_address: Option<IpAddr>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// What an update states.
pub struct FloatingIpFields {
    /// Set: associate with that port; null: let go of the association.
    pub port_id: Opt<Uuid>,
    pub fixed_ip_address: Option<IpAddr>,
    pub description: Opt<String>,
    pub tags: Opt<Vec<String>>,
    /// Read-only attributes the body states (`floating_network_id`,
    /// `floating_ip_address`, `project_id`, `tenant_id`), with their value
    /// when it is a string: they may be restated, not changed.
    pub restated: Vec<(&'static str, Option<String>)>,
    /// The wire layer's refusal of the rest of the body (attributes it does
    /// not know), given once the floating IP is found and the read-only
    /// attributes are checked.
    pub rejected: Option<ServiceError>,
}

/// The floating IPs associated with port `port_id`.
pub fn of_port(s: &impl StoreRead, port_id: Uuid) -> Vec<Arc<FloatingIp>> {
    s.list_by_project::<FloatingIp>(None)
        .into_iter()
        .filter(|f| f.port_id == Some(port_id))
        .collect()
}

/// Whether floating IP `f` is associated with a port that exists.
pub fn associated(s: &impl StoreRead, f: &FloatingIp) -> bool {
    f.port_id.is_some_and(|p| s.get::<Port>(&p).is_some())
}

/// Floating IP `f` no longer associated with anything.
pub(super) fn clear_association(f: &mut FloatingIp) {
    f.port_id = None;
    f.fixed_ip_address = None;
    f.router_id = None;
    f.updated_at = Some(now());
}

/// Let go of every floating IP associated with port `port_id` (the port is
/// being deleted).
pub fn disassociate_port(txn: &mut impl StoreWrite, port_id: Uuid) -> ServiceResult<()> {
    for f in of_port(txn, port_id) {
        let mut f = (*f).clone();
        clear_association(&mut f);
        txn.put(f)?;
    }
    Ok(())
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
    ctx: &Context,
    s: &impl StoreRead,
    fip: &FloatingIp,
    port_id: Uuid,
    fixed_ip: Option<IpAddr>,
) -> ServiceResult<Association> {
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
        .get::<Subnet>(&fixed.subnet_id)
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
    let router_id = router_reaching(s, &subnet, fip.floating_network_id).ok_or_else(|| {
        error(
            Fault::NotFound,
            "ExternalGatewayForFloatingIPNotFound",
            format!(
                "External network {} is not reachable from subnet {}.  Therefore, cannot \
                 associate Port {port_id} with a Floating IP.",
                fip.floating_network_id, subnet.id
            ),
        )
    })?;
    if let Some(other) = s.list_by_project::<FloatingIp>(None).iter().find(|f| {
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

fn exhausted(network_id: Uuid) -> ServiceError {
    error(
        Fault::Invalid,
        "ExternalIpAddressExhausted",
        format!("Unable to find any IP address on external network {network_id}."),
    )
}

fn fixed_ip_without_port() -> ServiceError {
    bad_request(
        "floatingip",
        "fixed_ip_address cannot be specified without a port_id",
    )
}

/// The address of a new floating IP on `network_id`: the requested one, or
/// the first free address of the requested subnet or of the network's IPv4
/// subnets.
fn allocate(
    s: &impl StoreRead,
    space: &AddressSpace,
    network_id: Uuid,
    subnet_id: Option<Uuid>,
    address: Option<IpAddr>,
) -> ServiceResult<FixedIp> {
    if let Some(sid) = subnet_id {
        let sub = s
            .get::<Subnet>(&sid)
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
        .map_err(|e| match e {
            ServiceError::Neutron {
                exception: ADDRESS_GENERATION_FAILURE,
                ..
            } => exhausted(network_id),
            e => e,
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
    let mut subs: Vec<Arc<Subnet>> = s
        .children::<Subnet>(network_id)
        .into_iter()
        .filter(|x| x.cidr.addr().is_ipv4())
        .collect();
    subs.sort_by_key(|x| (x.created_at, x.id));
    for sub in &subs {
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

/// The floating IPs the caller sees.
pub fn list(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<FloatingIp>>> {
    Ok(s.list_by_project::<FloatingIp>(None)
        .into_iter()
        .filter(|f| ctx.allowed("get_floatingip", &f.project_id))
        .collect())
}

pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<FloatingIp>> {
    visible_floating_ip(ctx, s, id)
}

/// A new floating IP on an external network, its address held by a port of
/// its own, associated at once when the create names a port.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    new: NewFloatingIp,
) -> ServiceResult<Uuid> {
    let project_id = new
        .project_id
        .unwrap_or_else(|| ctx.caller.project().to_string());
    let network_id = new.floating_network_id;
    authorize(ctx, "create_floatingip", &project_id)?;
    if new.floating_ip_address.is_some() {
        authorize(ctx, "create_floatingip:floating_ip_address", &project_id)?;
    }
    if new.fixed_ip_address.is_some() && new.port_id.is_none() {
        return Err(fixed_ip_without_port());
    }
    let id = Uuid::new_v4();
    let network = visible_network(ctx, txn, network_id)?;
    if !network.external {
        return Err(bad_request(
            "floatingip",
            format!("Network {network_id} is not a valid external network"),
        ));
    }
    quotas::check(cfg, txn, &project_id, QuotaResource::FloatingIp, 1)?;
    let held = allocate(
        txn,
        &ipam::address_space(cfg)?,
        network_id,
        new.subnet_id,
        new.floating_ip_address,
    )?;
    let port = service_port(
        txn,
        network_id,
        "",
        device_owner::FLOATING_IP,
        id,
        vec![held.clone()],
    );
    let mut fip = FloatingIp {
        id,
        project_id,
        description: new.description.unwrap_or_default(),
        floating_network_id: network_id,
        floating_ip_address: held.ip_address,
        floating_port_id: port.id,
        port_id: None,
        fixed_ip_address: None,
        router_id: None,
        tags: new.tags.unwrap_or_default(),
        created_at: now(),
        updated_at: None,
    };
    if let Some(pid) = new.port_id {
        let a = associate(ctx, txn, &fip, pid, new.fixed_ip_address)?;
        fip.port_id = Some(a.port_id);
        fip.fixed_ip_address = Some(a.fixed_ip);
        fip.router_id = Some(a.router_id);
    }
    txn.put(port)?;
    txn.put(fip)?;
    Ok(id)
}

pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    u: FloatingIpFields,
) -> ServiceResult<()> {
    let mut f = (*visible_floating_ip(ctx, txn, id)?).clone();
    check_restated(&u.restated, |key| match key {
        "floating_network_id" => f.floating_network_id.to_string(),
        "floating_ip_address" => f.floating_ip_address.to_string(),
        _ => f.project_id.clone(),
    })?;
    if let Some(e) = u.rejected {
        return Err(e);
    }
    authorize(ctx, "update_floatingip", &f.project_id)?;
    match u.port_id {
        Opt::Set(pid) => {
            let a = associate(ctx, txn, &f, pid, u.fixed_ip_address)?;
            f.port_id = Some(a.port_id);
            f.fixed_ip_address = Some(a.fixed_ip);
            f.router_id = Some(a.router_id);
        }
        _ if u.fixed_ip_address.is_some() => return Err(fixed_ip_without_port()),
        Opt::Null => clear_association(&mut f),
        Opt::Absent => {}
    }
    if let Some(v) = u.description.update() {
        f.description = v.unwrap_or_default();
    }
    if let Some(v) = u.tags.update() {
        f.tags = v.unwrap_or_default();
    }
    f.updated_at = Some(now());
    txn.put(f)?;
    Ok(())
}

pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let f = visible_floating_ip(ctx, txn, id)?;
    authorize(ctx, "delete_floatingip", &f.project_id)?;
    txn.delete::<Port>(&f.floating_port_id);
    txn.delete::<FloatingIp>(&id);
    Ok(())
}
