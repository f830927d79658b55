//! Subnets: list, create, show, update, delete; the CIDR, gateway,
//! allocation-pool and host-route rules.

use super::ipam::{default_gateway, default_pools, is_host_address, to_u128};
use super::quotas::{self, NeutronConfig, QuotaResource};
use super::{
    check_restated, conflict, error, forbidden, invalid_field, invalid_input, lb_user, may_create,
    network_target, subnet_target, subnet_visible, visible_network, visible_subnet,
};
use crate::auth::Context;
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use ipnet::IpNet;
use statera_model::addressing::host_reserved_overlap;
use statera_model::*;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

/// A subnet as a create states it (absent attributes take Neutron's defaults).
pub struct NewSubnet {
    pub network_id: Uuid,
    /// Already read with [`parse_cidr`].
    pub cidr: IpNet,
    pub ip_version: Option<i64>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Absent: the first host address; null: no gateway.
    pub gateway_ip: Opt<IpAddr>,
    /// Absent, null or empty: the host range minus the gateway.
    pub allocation_pools: Opt<Vec<AllocationPool>>,
    pub enable_dhcp: Option<bool>,
    pub dns_nameservers: Option<Vec<IpAddr>>,
    pub host_routes: Option<Vec<HostRoute>>,
    pub tags: Option<Vec<String>>,
    /// The project asked for, else the caller's.
    pub project_id: Option<String>,
}

/// What an update states.
pub struct SubnetFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub gateway_ip: Opt<IpAddr>,
    pub allocation_pools: Opt<Vec<AllocationPool>>,
    pub enable_dhcp: Opt<bool>,
    pub dns_nameservers: Opt<Vec<IpAddr>>,
    pub host_routes: Opt<Vec<HostRoute>>,
    pub tags: Opt<Vec<String>>,
    /// Immutable attributes the request restates, checked in this order once
    /// the subnet is found: the attribute and its value as text (`None`: a
    /// value that is neither a string nor an integer, or null, which never
    /// restates anything).
    pub restated: Vec<(&'static str, Option<String>)>,
    /// The wire layer's refusal of the attributes the request holds beyond
    /// all of these, reported after the read-only ones.
    pub rejected: Option<ServiceError>,
}

/// The immutable attributes an update may restate, in the order checked.
pub const READ_ONLY: [&str; 5] = [
    "cidr",
    "ip_version",
    "network_id",
    "project_id",
    "tenant_id",
];

fn show_pool(p: &AllocationPool) -> String {
    format!("{}-{}", p.start, p.end)
}

// ---- rules on values ----------------------------------------------------------

/// A subnet CIDR as given: a network without host bits.
pub fn parse_cidr(raw: &str) -> ServiceResult<IpNet> {
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

/// A stated `ip_version` must be 4 or 6, and the CIDR's.
pub fn check_ip_version(cidr: &IpNet, ip_version: Option<i64>) -> ServiceResult<()> {
    let version = if cidr.addr().is_ipv4() { 4 } else { 6 };
    match ip_version {
        None => Ok(()),
        Some(v) if v != 4 && v != 6 => {
            Err(invalid_field("ip_version", format!("{v} is not in [4, 6]")))
        }
        Some(v) if v != version => Err(invalid_input(format!(
            "Cannot use an IPv{version} cidr ({cidr}) with ip_version {v}."
        ))),
        Some(_) => Ok(()),
    }
}

/// The gateway must be a host address of the subnet.
pub fn check_gateway(cidr: &IpNet, gateway: IpAddr) -> ServiceResult<()> {
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
pub fn check_pools(
    cidr: &IpNet,
    pools: &[AllocationPool],
    gateway: Option<IpAddr>,
) -> ServiceResult<()> {
    let mut ranges = Vec::with_capacity(pools.len());
    for p in pools {
        let same_family =
            p.start.is_ipv4() == cidr.addr().is_ipv4() && p.end.is_ipv4() == cidr.addr().is_ipv4();
        if !same_family || to_u128(p.start) > to_u128(p.end) {
            return Err(error(
                Fault::Invalid,
                "InvalidAllocationPool",
                format!("The allocation pool {} is not valid.", show_pool(p)),
            ));
        }
        if !is_host_address(cidr, p.start) || !is_host_address(cidr, p.end) {
            return Err(error(
                Fault::Invalid,
                "OutOfBoundsAllocationPool",
                format!(
                    "The allocation pool {} spans beyond the subnet cidr {cidr}.",
                    show_pool(p)
                ),
            ));
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

/// Host routes must be of the subnet's IP version.
pub fn check_routes(cidr: &IpNet, routes: &[HostRoute]) -> ServiceResult<()> {
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

// ---- operations ---------------------------------------------------------------

/// The subnets the caller sees.
pub fn list(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<Subnet>>> {
    Ok(s.list_by_project::<Subnet>(None)
        .into_iter()
        .filter(|x| subnet_visible(ctx, s, x))
        .collect())
}

pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Subnet>> {
    visible_subnet(ctx, s, id)
}

/// Creates the subnet: the values' rules first (IP version, gateway, pools,
/// routes), then the policy on the caller's own tree, the host-reserved
/// ranges and the host's interfaces (non-admins), then the network (404
/// unless visible, the policy on it), no overlap with its other subnets, and
/// the quota.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    new: NewSubnet,
) -> ServiceResult<Uuid> {
    let cidr = new.cidr;
    let network_id = new.network_id;
    let project_id = new
        .project_id
        .unwrap_or_else(|| ctx.caller.project().to_string());
    check_ip_version(&cidr, new.ip_version)?;
    let gateway_ip = match new.gateway_ip {
        Opt::Absent => default_gateway(&cidr),
        Opt::Null => None,
        Opt::Set(g) => {
            check_gateway(&cidr, g)?;
            Some(g)
        }
    };
    let allocation_pools = match new.allocation_pools {
        Opt::Set(p) if !p.is_empty() => {
            check_pools(&cidr, &p, gateway_ip)?;
            p
        }
        _ => default_pools(&cidr, gateway_ip),
    };
    let host_routes = new.host_routes.unwrap_or_default();
    check_routes(&cidr, &host_routes)?;
    if !may_create(ctx, "create_subnet", &project_id) {
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
    quotas::check_host_interfaces(cfg, ctx, &cidr)?;

    let network = visible_network(ctx, txn, network_id)?;
    if !ctx.allowed_on("create_subnet", &network_target(&project_id, &network)) {
        return Err(forbidden("create_subnet"));
    }
    if let Some(other) = txn
        .children::<Subnet>(network_id)
        .into_iter()
        .find(|x| x.cidr.contains(&cidr.network()) || cidr.contains(&x.cidr.network()))
    {
        return Err(invalid_input(format!(
            "Requested subnet with cidr: {cidr} for network: {network_id} overlaps \
             with another subnet ({} {}).",
            other.id, other.cidr
        )));
    }
    quotas::check(cfg, txn, &project_id, QuotaResource::Subnet, 1)?;
    let sub = Subnet {
        id: Uuid::new_v4(),
        project_id,
        network_id,
        name: new.name.unwrap_or_default(),
        description: new.description.unwrap_or_default(),
        cidr,
        gateway_ip,
        allocation_pools,
        enable_dhcp: new.enable_dhcp.unwrap_or(true),
        dns_nameservers: new.dns_nameservers.unwrap_or_default(),
        host_routes,
        tags: new.tags.unwrap_or_default(),
        created_at: now(),
        updated_at: None,
    };
    let id = sub.id;
    txn.put(sub)?;
    Ok(id)
}

/// Updates the subnet: 404 unless visible, then the restated immutable
/// attributes, the request's unknown attributes, the policy, and the
/// values' rules as each is applied (a new gateway must be free of ports;
/// the pools, kept or new, are checked against the resulting gateway).
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    f: SubnetFields,
) -> ServiceResult<()> {
    let mut sub = (*visible_subnet(ctx, txn, id)?).clone();
    check_restated(&f.restated, |key| match key {
        "cidr" => sub.cidr.to_string(),
        "ip_version" => sub.ip_version().to_string(),
        "network_id" => sub.network_id.to_string(),
        _ => sub.project_id.clone(),
    })?;
    if let Some(e) = f.rejected {
        return Err(e);
    }
    if !ctx.allowed_on("update_subnet", &subnet_target(txn, &sub)) {
        return Err(forbidden("update_subnet"));
    }
    if let Some(v) = f.name.update() {
        sub.name = v.unwrap_or_default();
    }
    if let Some(v) = f.description.update() {
        sub.description = v.unwrap_or_default();
    }
    match f.gateway_ip {
        Opt::Absent => {}
        Opt::Null => sub.gateway_ip = None,
        Opt::Set(g) => {
            check_gateway(&sub.cidr, g)?;
            if sub.gateway_ip != Some(g)
                && let Some(p) = txn.children::<Port>(sub.network_id).into_iter().find(|p| {
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
    match f.allocation_pools {
        Opt::Set(p) if !p.is_empty() => sub.allocation_pools = p,
        Opt::Set(_) | Opt::Null => sub.allocation_pools = default_pools(&sub.cidr, sub.gateway_ip),
        Opt::Absent => {}
    }
    check_pools(&sub.cidr, &sub.allocation_pools, sub.gateway_ip)?;
    if let Some(v) = f.enable_dhcp.update() {
        sub.enable_dhcp = v.unwrap_or(true);
    }
    if let Some(v) = f.dns_nameservers.update() {
        sub.dns_nameservers = v.unwrap_or_default();
    }
    if let Some(v) = f.host_routes.update() {
        sub.host_routes = v.unwrap_or_default();
        check_routes(&sub.cidr, &sub.host_routes)?;
    }
    if let Some(v) = f.tags.update() {
        sub.tags = v.unwrap_or_default();
    }
    sub.updated_at = Some(now());
    txn.put(sub)?;
    Ok(())
}

/// Deletes the subnet unless the load-balancing side uses it or a port
/// other than a DHCP port holds an address on it; DHCP ports let go of
/// their address on it.
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let sub = visible_subnet(ctx, txn, id)?;
    if !ctx.allowed_on("delete_subnet", &subnet_target(txn, &sub)) {
        return Err(forbidden("delete_subnet"));
    }
    let holders: Vec<Arc<Port>> = txn
        .children::<Port>(sub.network_id)
        .into_iter()
        .filter(|p| p.fixed_ips.iter().any(|f| f.subnet_id == id))
        .collect();
    if let Some(user) = lb_user(ctx, txn, id) {
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
    for p in holders {
        let mut p = (*p).clone();
        p.fixed_ips.retain(|f| f.subnet_id != id);
        p.updated_at = Some(now());
        txn.put(p)?;
    }
    txn.delete::<Subnet>(&id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::neutron::ipam::tests::{ip, net, pool};

    /// The fault and the exception name of a Neutron error.
    fn kind(e: ServiceError) -> (Fault, &'static str) {
        match e {
            ServiceError::Neutron {
                fault, exception, ..
            } => (fault, exception),
            other => panic!("not a Neutron error: {other:?}"),
        }
    }

    #[test]
    fn cidr_must_be_a_network() {
        assert!(parse_cidr("10.0.0.0/24").is_ok());
        let e = parse_cidr("10.0.0.5/24").unwrap_err().to_string();
        assert!(e.contains("'10.0.0.0/24' is recommended"), "{e}");
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("nonsense").is_err());
        assert!(parse_cidr("2001:db8::/64").is_ok());
    }

    #[test]
    fn ip_version_matches_the_cidr() {
        let c = net("10.0.0.0/24");
        assert!(check_ip_version(&c, None).is_ok());
        assert!(check_ip_version(&c, Some(4)).is_ok());
        assert_eq!(
            kind(check_ip_version(&c, Some(5)).unwrap_err()),
            (Fault::Invalid, "HTTPBadRequest")
        );
        assert_eq!(
            kind(check_ip_version(&c, Some(6)).unwrap_err()),
            (Fault::Invalid, "InvalidInput")
        );
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
        assert_eq!(kind(e).0, Fault::Invalid);
        let e = check_pools(&c, &[pool("10.0.0.10", "10.0.1.20")], g).unwrap_err();
        assert_eq!(kind(e).1, "OutOfBoundsAllocationPool");
        let e = check_pools(&c, &[pool("10.0.0.200", "10.0.0.255")], g).unwrap_err();
        assert_eq!(kind(e).1, "OutOfBoundsAllocationPool");
        let e = check_pools(
            &c,
            &[
                pool("10.0.0.10", "10.0.0.20"),
                pool("10.0.0.20", "10.0.0.30"),
            ],
            g,
        )
        .unwrap_err();
        assert_eq!(kind(e).1, "OverlappingAllocationPools");
        let e = check_pools(&c, &[pool("10.0.0.1", "10.0.0.20")], g).unwrap_err();
        assert_eq!(kind(e).1, "GatewayConflictWithAllocationPools");
        let e = check_pools(&c, &[pool("2001:db8::1", "2001:db8::2")], g).unwrap_err();
        assert_eq!(kind(e).1, "InvalidAllocationPool");
    }

    #[test]
    fn routes_match_the_ip_version() {
        let c = net("10.0.0.0/24");
        let v4 = HostRoute {
            destination: net("10.1.0.0/16"),
            nexthop: ip("10.0.0.1"),
        };
        let v6 = HostRoute {
            destination: net("2001:db8::/64"),
            nexthop: ip("10.0.0.1"),
        };
        assert!(check_routes(&c, &[v4]).is_ok());
        assert_eq!(
            kind(check_routes(&c, &[v6]).unwrap_err()),
            (Fault::Invalid, "InvalidInput")
        );
    }
}
