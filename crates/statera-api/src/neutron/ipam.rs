//! IP address management: which addresses of a subnet are taken, handing out
//! free ones, and the VIP port of a load balancer.

use super::subnets::{AddressSpace, held_addresses, is_host_address};
use super::{usable_network, usable_port, usable_subnet};
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use statera_model::*;
use statera_store::{State, Txn};
use std::collections::HashSet;
use std::net::IpAddr;
use uuid::Uuid;

/// The device_owner of ports Statera creates for VIPs.
/// Octavia's read rule on a load balancer (naming a port's device).
const LB_GET_ONE: &str = "os_load-balancer_api:loadbalancer:get_one";

pub const VIP_DEVICE_OWNER: &str = "Octavia";

/// The name of the VIP port Statera creates for load balancer `lb_id`.
pub fn vip_port_name(lb_id: Uuid) -> String {
    format!("octavia-lb-{lb_id}")
}

/// Addresses of `subnet` held by ports (on every overlapping subnet of the
/// host's own address space too: see [`held_addresses`]).
pub fn used_addresses(s: &State, space: &AddressSpace, subnet: &Subnet) -> HashSet<IpAddr> {
    held_addresses(s, space, subnet, None)
}

fn next(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

/// The first free address of the subnet's allocation pools.
pub fn allocate(s: &State, space: &AddressSpace, subnet: &Subnet) -> Option<IpAddr> {
    allocate_avoiding(subnet, &space.avoid(used_addresses(s, space, subnet)))
}

/// The first address of the subnet's allocation pools that is neither in
/// `taken` nor the gateway.
pub fn allocate_avoiding(subnet: &Subnet, taken: &HashSet<IpAddr>) -> Option<IpAddr> {
    for pool in &subnet.allocation_pools {
        let mut ip = pool.start;
        loop {
            if !taken.contains(&ip) && Some(ip) != subnet.gateway_ip {
                return Some(ip);
            }
            if ip == pool.end {
                break;
            }
            ip = next(ip)?;
        }
    }
    None
}

/// A random locally administered MAC with Neutron's usual prefix.
pub fn new_mac() -> String {
    let b: [u8; 3] = rand::random();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Where a load balancer's VIP landed.
pub struct VipInfo {
    pub address: IpAddr,
    pub port_id: Uuid,
    pub subnet_id: Uuid,
    pub network_id: Uuid,
}

/// The subnet `id` if the caller may use it; a subnet it may not use is
/// answered exactly as a missing one.
fn subnet(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Subnet> {
    usable_subnet(ctx, s, id).ok_or_else(|| ApiError::validation(format!("Subnet {id} not found.")))
}

/// Find or create the VIP port of load balancer `lb_id` from what the user
/// gave. Every object named must be one the caller may use (its own, a
/// shared or external network's, or any for an admin); others are answered
/// exactly as missing ones.
#[allow(clippy::too_many_arguments)]
pub fn plug_vip(
    txn: &mut Txn,
    ctx: &RequestContext,
    space: &AddressSpace,
    project_id: &str,
    lb_id: Uuid,
    subnet_id: Option<Uuid>,
    network_id: Option<Uuid>,
    port_id: Option<Uuid>,
    address: Option<IpAddr>,
) -> ApiResult<VipInfo> {
    let s = txn.state();
    if let Some(pid) = port_id {
        let port = usable_port(ctx, s, pid)
            .ok_or_else(|| ApiError::validation(format!("Port {pid} not found.")))?;
        if !port.device_id.is_empty() {
            // The device is named only when the caller may see what it is.
            let shown = port
                .device_id
                .strip_prefix("lb-")
                .and_then(|id| Uuid::parse_str(id).ok())
                .and_then(|id| s.loadbalancers.get(&id))
                .map_or(ctx.allowed(LB_GET_ONE, &port.project_id), |lb| {
                    ctx.allowed(LB_GET_ONE, &lb.project_id)
                });
            return Err(ApiError::conflict(if shown {
                format!("Port {pid} is already in use by {}.", port.device_id)
            } else {
                format!("Port {pid} is already in use.")
            }));
        }
        if network_id.is_some_and(|n| n != port.network_id) {
            return Err(ApiError::validation(
                "vip_port_id is not on vip_network_id.",
            ));
        }
        let fixed = port
            .fixed_ips
            .iter()
            .find(|f| {
                address.is_none_or(|a| a == f.ip_address)
                    && subnet_id.is_none_or(|sid| sid == f.subnet_id)
            })
            .cloned()
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "Port {pid} has no fixed IP matching the requested VIP."
                ))
            })?;
        // A subnet's gateway is a router's, never a VIP.
        if s.subnets
            .get(&fixed.subnet_id)
            .is_some_and(|sub| sub.gateway_ip == Some(fixed.ip_address))
        {
            return Err(ApiError::conflict(format!(
                "IP address {} already allocated in subnet {}",
                fixed.ip_address, fixed.subnet_id
            )));
        }
        let mut port = port;
        port.device_owner = VIP_DEVICE_OWNER.to_string();
        port.device_id = format!("lb-{lb_id}");
        port.updated_at = Some(now());
        txn.put(port)?;
        return Ok(VipInfo {
            address: fixed.ip_address,
            port_id: pid,
            subnet_id: fixed.subnet_id,
            network_id: port_network(txn, pid),
        });
    }
    let sub = match (subnet_id, network_id) {
        (Some(sid), net) => {
            let sub = subnet(ctx, s, sid)?;
            if net.is_some_and(|n| n != sub.network_id) {
                return Err(ApiError::validation(format!(
                    "Subnet {sid} is not on network {}.",
                    net.unwrap_or_default()
                )));
            }
            sub
        }
        (None, Some(nid)) => {
            if usable_network(ctx, s, nid).is_none() {
                return Err(ApiError::validation(format!("Network {nid} not found.")));
            }
            let mut subs: Vec<_> = s.subnets.children(nid).collect();
            subs.sort_by_key(|x| (x.ip_version(), x.created_at));
            let first = subs
                .iter()
                .find(|x| address.is_none_or(|a| is_host_address(&x.cidr, a)))
                .ok_or_else(|| {
                    ApiError::validation(format!("Network {nid} has no subnet for the VIP."))
                })?;
            (***first).clone()
        }
        (None, None) => {
            return Err(ApiError::validation(
                "VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.",
            ));
        }
    };
    let ip = match address {
        Some(a) => {
            // Its network and broadcast addresses are in the subnet but
            // are no address a port may hold (the port API's rule).
            if !sub.cidr.contains(&a) {
                return Err(ApiError::validation(format!(
                    "vip_address {a} is not in subnet {} ({}).",
                    sub.id, sub.cidr
                )));
            }
            if !is_host_address(&sub.cidr, a) {
                return Err(ApiError::validation(format!(
                    "vip_address {a} is not a usable host address of subnet {} ({}).",
                    sub.id, sub.cidr
                )));
            }
            if used_addresses(s, space, &sub).contains(&a) || sub.gateway_ip == Some(a) {
                return Err(ApiError::conflict(format!(
                    "IP address {a} already allocated in subnet {}",
                    sub.id
                )));
            }
            a
        }
        None => allocate(s, space, &sub).ok_or_else(|| {
            ApiError::conflict(format!(
                "No more IP addresses available on network {}.",
                sub.network_id
            ))
        })?,
    };
    let now = now();
    let port = Port {
        id: Uuid::new_v4(),
        project_id: project_id.to_string(),
        network_id: sub.network_id,
        name: vip_port_name(lb_id),
        description: String::new(),
        admin_state_up: true,
        mac_address: new_mac(),
        fixed_ips: vec![FixedIp {
            subnet_id: sub.id,
            ip_address: ip,
        }],
        device_owner: VIP_DEVICE_OWNER.to_string(),
        device_id: format!("lb-{lb_id}"),
        security_groups: Vec::new(),
        port_security_enabled: true,
        tags: Vec::new(),
        created_at: now,
        updated_at: None,
    };
    let info = VipInfo {
        address: ip,
        port_id: port.id,
        subnet_id: sub.id,
        network_id: sub.network_id,
    };
    txn.put(port)?;
    Ok(info)
}

fn port_network(txn: &Txn, port_id: Uuid) -> Uuid {
    txn.state()
        .ports
        .get(&port_id)
        .map(|p| p.network_id)
        .unwrap_or_default()
}
