//! IP address management: address arithmetic on a subnet's CIDR, which
//! addresses of a subnet are taken, handing out free ones, and the VIP port
//! of a load balancer.

use super::quotas::{NeutronConfig, read_host_addresses};
use super::{usable_network, usable_port, usable_subnet};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::store::{StoreRead, StoreWrite};
use ipnet::IpNet;
use statera_model::addressing::{HostAddressSpace, canonical, overlaps};
use statera_model::*;
use std::collections::HashSet;
use std::net::IpAddr;
use uuid::Uuid;

/// Octavia's read rule on a load balancer (naming a port's device).
const LB_GET_ONE: &str = "os_load-balancer_api:loadbalancer:get_one";

/// The device_owner of ports Statera creates for VIPs.
pub const VIP_DEVICE_OWNER: &str = "Octavia";

// ---- address arithmetic -------------------------------------------------

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn from_u128(n: u128, like: &IpNet) -> IpAddr {
    match like {
        IpNet::V4(_) => IpAddr::V4((n as u32).into()),
        IpNet::V6(_) => IpAddr::V6(n.into()),
    }
}

/// The addresses of `cidr` a host may hold, as an inclusive range: all but
/// the network address and (IPv4) the broadcast address; a single-address
/// subnet holds that address. `None` when nothing is left (/31).
pub fn host_range(cidr: &IpNet) -> Option<(u128, u128)> {
    let first = to_u128(cidr.network());
    let last = to_u128(cidr.broadcast());
    if first == last {
        return Some((first, last));
    }
    let lo = first + 1;
    let hi = if cidr.addr().is_ipv4() {
        last - 1
    } else {
        last
    };
    (lo <= hi).then_some((lo, hi))
}

/// Whether a port may hold `ip` on a subnet of `cidr`.
pub fn is_host_address(cidr: &IpNet, ip: IpAddr) -> bool {
    cidr.contains(&ip) && host_range(cidr).is_some_and(|(lo, hi)| (lo..=hi).contains(&to_u128(ip)))
}

/// Neutron's default gateway: the first host address.
pub fn default_gateway(cidr: &IpNet) -> Option<IpAddr> {
    match host_range(cidr) {
        Some((lo, hi)) if lo < hi => Some(from_u128(lo, cidr)),
        _ => None,
    }
}

/// The whole host range of `cidr`, minus the gateway.
pub fn default_pools(cidr: &IpNet, gateway: Option<IpAddr>) -> Vec<AllocationPool> {
    let Some((lo, hi)) = host_range(cidr) else {
        return Vec::new();
    };
    let mut ranges = vec![(lo, hi)];
    if let Some(g) = gateway.filter(|g| cidr.contains(g)).map(to_u128)
        && (lo..=hi).contains(&g)
    {
        ranges.clear();
        if g > lo {
            ranges.push((lo, g - 1));
        }
        if g < hi {
            ranges.push((g + 1, hi));
        }
    }
    ranges
        .into_iter()
        .map(|(a, b)| AllocationPool {
            start: from_u128(a, cidr),
            end: from_u128(b, cidr),
        })
        .collect()
}

// ---- the address space ----------------------------------------------------

/// Where a request allocates addresses: which subnets share the host's own
/// kernel addresses (the network driver decides), and the addresses the
/// host's interfaces hold, which are never handed out by allocation under
/// the host driver (a load balancer given one would bind the host's own
/// address). Asking for one by value is an admin's right (see
/// `quotas::check_port_addresses`).
#[derive(Debug, Clone, Default)]
pub struct AddressSpace {
    pub kind: HostAddressSpace,
    pub host: Vec<IpAddr>,
}

impl AddressSpace {
    pub fn holds(&self, cidr: &IpNet) -> bool {
        self.kind.holds(cidr)
    }

    /// `taken` plus the host's own addresses: what allocation must avoid.
    pub fn avoid(&self, mut taken: HashSet<IpAddr>) -> HashSet<IpAddr> {
        taken.extend(self.host.iter().copied());
        taken
    }
}

/// The address space requests allocate in, with the host's interface
/// addresses under the host driver (read now: interfaces change).
pub fn address_space(cfg: &(impl NeutronConfig + ?Sized)) -> ServiceResult<AddressSpace> {
    let kind = cfg.host_address_space();
    let host = if kind == HostAddressSpace::AllSubnets {
        read_host_addresses(cfg)?
            .into_iter()
            .map(canonical)
            .collect()
    } else {
        Vec::new()
    };
    Ok(AddressSpace { kind, host })
}

/// The addresses of `subnet` held by ports other than `except`. On a subnet
/// in the host's own address space (`space`), also every address held on
/// another such subnet that overlaps it, whatever its network or project:
/// there, one address is one kernel socket address, and two load balancers
/// on it would share or steal each other's traffic.
pub fn held_addresses(
    s: &impl StoreRead,
    space: &AddressSpace,
    subnet: &Subnet,
    except: Option<Uuid>,
) -> HashSet<IpAddr> {
    let on = |sub: &Subnet| {
        s.children::<Port>(sub.network_id)
            .iter()
            .filter(|p| Some(p.id) != except)
            .flat_map(|p| p.fixed_ips.iter())
            .filter(|f| f.subnet_id == sub.id)
            .map(|f| f.ip_address)
            .collect::<Vec<_>>()
    };
    let mut held: HashSet<IpAddr> = on(subnet).into_iter().collect();
    if space.holds(&subnet.cidr) {
        for other in s.list_by_project::<Subnet>(None).iter().filter(|o| {
            o.id != subnet.id && space.holds(&o.cidr) && overlaps(&o.cidr, &subnet.cidr)
        }) {
            held.extend(on(other));
        }
    }
    held
}

/// The name of the VIP port Statera creates for load balancer `lb_id`.
pub fn vip_port_name(lb_id: Uuid) -> String {
    format!("octavia-lb-{lb_id}")
}

/// Addresses of `subnet` held by ports (on every overlapping subnet of the
/// host's own address space too: see [`held_addresses`]).
pub fn used_addresses(
    s: &impl StoreRead,
    space: &AddressSpace,
    subnet: &Subnet,
) -> HashSet<IpAddr> {
    held_addresses(s, space, subnet, None)
}

fn next(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

/// The first free address of the subnet's allocation pools.
pub fn allocate(s: &impl StoreRead, space: &AddressSpace, subnet: &Subnet) -> Option<IpAddr> {
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
fn subnet(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Subnet> {
    usable_subnet(ctx, s, id)
        .ok_or_else(|| ServiceError::validation(format!("Subnet {id} not found.")))
}

/// What a load-balancer create asks of its VIP.
#[derive(Debug, Clone, Copy, Default)]
pub struct VipRequest {
    pub subnet_id: Option<Uuid>,
    pub network_id: Option<Uuid>,
    pub port_id: Option<Uuid>,
    pub address: Option<IpAddr>,
}

/// Find or create the VIP port of load balancer `lb_id` from what the user
/// gave (in Octavia's errors: this is a load-balancer create). Every object
/// named must be one the caller may use (its own, a shared or external
/// network's, or any for an admin); others are answered exactly as missing
/// ones.
pub fn plug_vip(
    txn: &mut impl StoreWrite,
    ctx: &Context,
    space: &AddressSpace,
    project_id: &str,
    lb_id: Uuid,
    vip: VipRequest,
) -> ServiceResult<VipInfo> {
    let VipRequest {
        subnet_id,
        network_id,
        port_id,
        address,
    } = vip;
    if let Some(pid) = port_id {
        let port = usable_port(ctx, txn, pid)
            .ok_or_else(|| ServiceError::validation(format!("Port {pid} not found.")))?;
        if !port.device_id.is_empty() {
            // The device is named only when the caller may see what it is.
            let shown = port
                .device_id
                .strip_prefix("lb-")
                .and_then(|id| Uuid::parse_str(id).ok())
                .and_then(|id| txn.get::<LoadBalancer>(&id))
                .map_or(ctx.allowed(LB_GET_ONE, &port.project_id), |lb| {
                    ctx.allowed(LB_GET_ONE, &lb.project_id)
                });
            return Err(ServiceError::conflict(if shown {
                format!("Port {pid} is already in use by {}.", port.device_id)
            } else {
                format!("Port {pid} is already in use.")
            }));
        }
        if network_id.is_some_and(|n| n != port.network_id) {
            return Err(ServiceError::validation(
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
                ServiceError::validation(format!(
                    "Port {pid} has no fixed IP matching the requested VIP."
                ))
            })?;
        // A subnet's gateway is a router's, never a VIP.
        if txn
            .get::<Subnet>(&fixed.subnet_id)
            .is_some_and(|sub| sub.gateway_ip == Some(fixed.ip_address))
        {
            return Err(ServiceError::conflict(format!(
                "IP address {} already allocated in subnet {}",
                fixed.ip_address, fixed.subnet_id
            )));
        }
        let network_id = port.network_id;
        let mut port = port;
        port.device_owner = VIP_DEVICE_OWNER.to_string();
        port.device_id = format!("lb-{lb_id}");
        port.updated_at = Some(now());
        txn.put(port)?;
        return Ok(VipInfo {
            address: fixed.ip_address,
            port_id: pid,
            subnet_id: fixed.subnet_id,
            network_id,
        });
    }
    let sub = match (subnet_id, network_id) {
        (Some(sid), net) => {
            let sub = subnet(ctx, txn, sid)?;
            if net.is_some_and(|n| n != sub.network_id) {
                return Err(ServiceError::validation(format!(
                    "Subnet {sid} is not on network {}.",
                    net.unwrap_or_default()
                )));
            }
            sub
        }
        (None, Some(nid)) => {
            if usable_network(ctx, txn, nid).is_none() {
                return Err(ServiceError::validation(format!(
                    "Network {nid} not found."
                )));
            }
            let mut subs = txn.children::<Subnet>(nid);
            subs.sort_by_key(|x| (x.ip_version(), x.created_at));
            let first = subs
                .iter()
                .find(|x| address.is_none_or(|a| is_host_address(&x.cidr, a)))
                .ok_or_else(|| {
                    ServiceError::validation(format!("Network {nid} has no subnet for the VIP."))
                })?;
            (**first).clone()
        }
        (None, None) => {
            return Err(ServiceError::validation(
                "VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.",
            ));
        }
    };
    let ip = match address {
        Some(a) => {
            // Its network and broadcast addresses are in the subnet but
            // are no address a port may hold (the port API's rule).
            if !sub.cidr.contains(&a) {
                return Err(ServiceError::validation(format!(
                    "vip_address {a} is not in subnet {} ({}).",
                    sub.id, sub.cidr
                )));
            }
            if !is_host_address(&sub.cidr, a) {
                return Err(ServiceError::validation(format!(
                    "vip_address {a} is not a usable host address of subnet {} ({}).",
                    sub.id, sub.cidr
                )));
            }
            if used_addresses(txn, space, &sub).contains(&a) || sub.gateway_ip == Some(a) {
                return Err(ServiceError::conflict(format!(
                    "IP address {a} already allocated in subnet {}",
                    sub.id
                )));
            }
            a
        }
        None => allocate(txn, space, &sub).ok_or_else(|| {
            ServiceError::conflict(format!(
                "No more IP addresses available on network {}.",
                sub.network_id
            ))
        })?,
    };
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
        created_at: now(),
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

/// The network side of a load-balancer create: the VIP port Statera
/// creates is the project's, as Octavia's is, and counts against its
/// Neutron port quota (a 409 in Octavia's words); then [`plug_vip`] in the
/// deployment's address space.
pub fn plug_lb_vip(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    project_id: &str,
    lb_id: Uuid,
    vip: VipRequest,
) -> ServiceResult<crate::octavia::loadbalancers::PluggedVip> {
    if vip.port_id.is_none() {
        super::quotas::check(cfg, txn, project_id, super::QuotaResource::Port, 1)
            .map_err(|e| ServiceError::conflict(e.to_string()))?;
    }
    let space = address_space(cfg)?;
    let v = plug_vip(txn, ctx, &space, project_id, lb_id, vip)?;
    Ok(crate::octavia::loadbalancers::PluggedVip {
        address: v.address,
        port_id: v.port_id,
        subnet_id: v.subnet_id,
        network_id: v.network_id,
    })
}

/// A non-admin's VIP address asked for by value that is one of this host's
/// own addresses: refused (400) under the host driver.
pub fn check_vip_address(
    ctx: &Context,
    cfg: &(impl NeutronConfig + ?Sized),
    address: Option<IpAddr>,
) -> ServiceResult<()> {
    match super::quotas::requested_host_address(cfg, ctx, address)? {
        None => Ok(()),
        Some(ip) => Err(ServiceError::validation(format!(
            "vip_address {ip} is an address of this host; only an administrator may use it."
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub(crate) fn pool(a: &str, b: &str) -> AllocationPool {
        AllocationPool {
            start: ip(a),
            end: ip(b),
        }
    }

    #[test]
    fn defaults() {
        let c = net("10.0.0.0/24");
        assert_eq!(default_gateway(&c), Some(ip("10.0.0.1")));
        assert_eq!(
            default_pools(&c, Some(ip("10.0.0.1"))),
            [pool("10.0.0.2", "10.0.0.254")]
        );
        assert_eq!(default_pools(&c, None), [pool("10.0.0.1", "10.0.0.254")]);
        assert_eq!(
            default_pools(&c, Some(ip("10.0.0.100"))),
            [
                pool("10.0.0.1", "10.0.0.99"),
                pool("10.0.0.101", "10.0.0.254")
            ]
        );
        assert_eq!(
            default_pools(&c, Some(ip("10.0.0.254"))),
            [pool("10.0.0.1", "10.0.0.253")]
        );
        let v6 = net("2001:db8::/64");
        assert_eq!(default_gateway(&v6), Some(ip("2001:db8::1")));
        assert_eq!(
            default_pools(&v6, Some(ip("2001:db8::1"))),
            [pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")]
        );
        // Tiny subnets.
        assert_eq!(default_gateway(&net("10.0.0.0/31")), None);
        assert!(default_pools(&net("10.0.0.0/31"), None).is_empty());
        assert_eq!(default_gateway(&net("10.0.0.7/32")), None);
        assert_eq!(
            default_pools(&net("10.0.0.7/32"), None),
            [pool("10.0.0.7", "10.0.0.7")]
        );
        assert_eq!(default_gateway(&net("10.0.0.0/30")), Some(ip("10.0.0.1")));
        assert_eq!(
            default_pools(&net("10.0.0.0/30"), Some(ip("10.0.0.1"))),
            [pool("10.0.0.2", "10.0.0.2")]
        );
    }

    #[test]
    fn host_addresses() {
        let c = net("10.0.0.0/24");
        assert!(is_host_address(&c, ip("10.0.0.1")));
        assert!(!is_host_address(&c, ip("10.0.0.0")));
        assert!(!is_host_address(&c, ip("10.0.0.255")));
        assert!(!is_host_address(&c, ip("10.0.1.1")));
        assert!(!is_host_address(&c, ip("::1")));
        assert!(is_host_address(&net("10.0.0.7/32"), ip("10.0.0.7")));
    }
}
