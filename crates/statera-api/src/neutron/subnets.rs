//! `/subnets` on the wire: reading requests (allocation pools, DNS
//! nameservers, host routes), rendering; the operations and the CIDR,
//! gateway and allocation-pool rules are `statera_service::neutron::subnets`.

use super::resource::{self, Resource};
use super::*;
use crate::ApiSettings;
use crate::input::Opt;
use ipnet::IpNet;
use statera_service::neutron::subnets::{self as service, NewSubnet, READ_ONLY, SubnetFields};
use statera_service::{Context, ServiceError, ServiceResult};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    resource::routes::<Subnets>()
}

/// `/subnets` in the shape every Neutron resource shares ([`resource`]).
pub struct Subnets;

impl Resource for Subnets {
    type Model = Subnet;
    type New = NewSubnet;
    type Fields = SubnetFields;
    const ENVELOPE: &'static str = "subnet";
    const PLURAL: &'static str = "subnets";
    const ATTRS: &'static [&'static str] = render::SUBNET_ATTRS;

    fn missing(raw: &str) -> ServiceError {
        statera_service::neutron::not_found("Subnet", raw, "SubnetNotFound")
    }
    fn render(_: &State, sub: &Subnet) -> Object {
        render::subnet(sub)
    }
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<Subnet>>> {
        service::list(ctx, s)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<Subnet>> {
        service::show(ctx, s, id)
    }
    fn parse_create(input: &mut Input) -> ApiResult<NewSubnet> {
        let network_id = required_attribute(input.uuid("network_id")?, "network_id")?;
        let cidr = service::parse_cidr(&required_attribute(input.string("cidr", 64)?, "cidr")?)?;
        let new = NewSubnet {
            network_id,
            cidr,
            ip_version: input.int("ip_version", 0, 255)?.value(),
            name: input.string("name", 255)?.value(),
            description: input.string("description", 255)?.value(),
            gateway_ip: input.ip("gateway_ip")?,
            allocation_pools: pools_input(input)?,
            enable_dhcp: input.boolean("enable_dhcp")?.value(),
            dns_nameservers: nameservers_input(input)?.value(),
            host_routes: route_list(input, "host_routes")?.value(),
            tags: crate::octavia::tags(input)?.value(),
            project_id: input.project_id()?,
        };
        fixed_attributes(input)?;
        Ok(new)
    }
    fn create(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        new: NewSubnet,
    ) -> ServiceResult<Uuid> {
        service::create(ctx, txn, settings, new)
    }
    fn parse_update(input: &mut Input) -> ApiResult<SubnetFields> {
        let fields = SubnetFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            gateway_ip: input.ip("gateway_ip")?,
            allocation_pools: pools_input(input)?,
            enable_dhcp: input.boolean("enable_dhcp")?,
            dns_nameservers: nameservers_input(input)?,
            host_routes: route_list(input, "host_routes")?,
            tags: crate::octavia::tags(input)?,
            restated: Vec::new(),
            rejected: None,
        };
        fixed_attributes(input)?;
        Ok(fields)
    }
    /// The immutable attributes are compared with the subnet's, and the
    /// attributes left over refused, once the subnet is found (a 404 wins
    /// over both).
    fn finish_update(mut fields: SubnetFields, mut input: Input) -> ApiResult<SubnetFields> {
        fields.restated = resource::restated(&mut input, &READ_ONLY);
        fields.rejected = resource::leftover(input);
        Ok(fields)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        id: Uuid,
        f: SubnetFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, id, f)
    }
    fn delete(ctx: &Context, txn: &mut Txn, _: &ApiSettings, id: Uuid) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
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
