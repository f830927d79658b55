//! IP address management: which addresses of a subnet are taken, handing out
//! free ones, and the VIP port of a load balancer.

use crate::error::{ApiError, ApiResult};
use statera_model::*;
use statera_store::{State, Txn};
use std::collections::HashSet;
use std::net::IpAddr;
use uuid::Uuid;

/// The device_owner of ports Statera creates for VIPs.
pub const VIP_DEVICE_OWNER: &str = "Octavia";

/// The name of the VIP port Statera creates for load balancer `lb_id`.
pub fn vip_port_name(lb_id: Uuid) -> String {
    format!("octavia-lb-{lb_id}")
}

/// Addresses of `subnet_id` held by ports.
pub fn used_addresses(s: &State, subnet: &Subnet) -> HashSet<IpAddr> {
    s.ports
        .children(subnet.network_id)
        .flat_map(|p| p.fixed_ips.iter())
        .filter(|f| f.subnet_id == subnet.id)
        .map(|f| f.ip_address)
        .collect()
}

fn next(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

/// The first free address of the subnet's allocation pools.
pub fn allocate(s: &State, subnet: &Subnet) -> Option<IpAddr> {
    allocate_avoiding(subnet, &used_addresses(s, subnet))
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

fn subnet(s: &State, id: Uuid) -> ApiResult<Subnet> {
    s.subnets
        .get(&id)
        .map(|x| (**x).clone())
        .ok_or_else(|| ApiError::validation(format!("Subnet {id} not found.")))
}

/// Find or create the VIP port of load balancer `lb_id` from what the user gave.
pub fn plug_vip(
    txn: &mut Txn,
    project_id: &str,
    lb_id: Uuid,
    subnet_id: Option<Uuid>,
    network_id: Option<Uuid>,
    port_id: Option<Uuid>,
    address: Option<IpAddr>,
) -> ApiResult<VipInfo> {
    let s = txn.state();
    if let Some(pid) = port_id {
        let port = s
            .ports
            .get(&pid)
            .cloned()
            .ok_or_else(|| ApiError::validation(format!("Port {pid} not found.")))?;
        if !port.device_id.is_empty() {
            return Err(ApiError::conflict(format!(
                "Port {pid} is already in use by {}.",
                port.device_id
            )));
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
        let mut port = (*port).clone();
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
            let sub = subnet(s, sid)?;
            if net.is_some_and(|n| n != sub.network_id) {
                return Err(ApiError::validation(format!(
                    "Subnet {sid} is not on network {}.",
                    net.unwrap_or_default()
                )));
            }
            sub
        }
        (None, Some(nid)) => {
            if !s.networks.contains(&nid) {
                return Err(ApiError::validation(format!("Network {nid} not found.")));
            }
            let mut subs: Vec<_> = s.subnets.children(nid).collect();
            subs.sort_by_key(|x| (x.ip_version(), x.created_at));
            let first = subs
                .iter()
                .find(|x| address.is_none_or(|a| x.cidr.contains(&a)))
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
            if !sub.cidr.contains(&a) {
                return Err(ApiError::validation(format!(
                    "vip_address {a} is not in subnet {} ({}).",
                    sub.id, sub.cidr
                )));
            }
            if used_addresses(s, &sub).contains(&a) || sub.gateway_ip == Some(a) {
                return Err(ApiError::conflict(format!(
                    "IP address {a} already allocated in subnet {}",
                    sub.id
                )));
            }
            a
        }
        None => allocate(s, &sub).ok_or_else(|| {
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
