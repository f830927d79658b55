//! How networks, subnets, ports, routers, floating IPs and security groups
//! look on the wire (Neutron's field sets), and the attribute lists that
//! filters and sort keys are checked against.

use crate::list::Object;
use serde_json::{Value, json};
use statera_model::*;
use statera_store::State;

/// Neutron's timestamps: ISO 8601 in UTC with a `Z`.
pub fn ts(t: &Timestamp) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// `updated_at` is the creation time until the first update, as in Neutron.
fn updated(created: &Timestamp, updated: &Option<Timestamp>) -> Value {
    ts(updated.as_ref().unwrap_or(created))
}

fn obj(v: Value) -> Object {
    match v {
        Value::Object(o) => o,
        _ => Object::new(),
    }
}

pub const NETWORK_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "status",
    "shared",
    "router:external",
    "mtu",
    "subnets",
    "project_id",
    "tenant_id",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "availability_zones",
    "availability_zone_hints",
    "ipv4_address_scope",
    "ipv6_address_scope",
    "port_security_enabled",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "qos_policy_id",
    "is_default",
    "l2_adjacency",
];

/// The ids of a network's subnets, oldest first.
pub fn subnet_ids(s: &State, network_id: uuid::Uuid) -> Vec<String> {
    let mut subs: Vec<_> = s.subnets.children(network_id).collect();
    subs.sort_by_key(|x| (x.created_at, x.id));
    subs.iter().map(|x| x.id.to_string()).collect()
}

pub fn network(s: &State, n: &Network) -> Object {
    obj(json!({
        "id": n.id,
        "name": n.name,
        "description": n.description,
        "admin_state_up": n.admin_state_up,
        "status": "ACTIVE",
        "shared": n.shared,
        "router:external": n.external,
        "mtu": n.mtu,
        "subnets": subnet_ids(s, n.id),
        "project_id": n.project_id,
        "tenant_id": n.project_id,
        "tags": n.tags,
        "created_at": ts(&n.created_at),
        "updated_at": updated(&n.created_at, &n.updated_at),
        "revision_number": 0,
        "availability_zones": [],
        "availability_zone_hints": [],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "port_security_enabled": true,
        "provider:network_type": "local",
        "provider:physical_network": null,
        "provider:segmentation_id": null,
        "qos_policy_id": null,
        "is_default": false,
        "l2_adjacency": true,
    }))
}

pub const SUBNET_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "network_id",
    "cidr",
    "ip_version",
    "gateway_ip",
    "allocation_pools",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
    "project_id",
    "tenant_id",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "subnetpool_id",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "service_types",
    "segment_id",
    "dns_publish_fixed_ip",
];

pub fn subnet(sub: &Subnet) -> Object {
    obj(json!({
        "id": sub.id,
        "name": sub.name,
        "description": sub.description,
        "network_id": sub.network_id,
        "cidr": sub.cidr.to_string(),
        "ip_version": sub.ip_version(),
        "gateway_ip": sub.gateway_ip.map(|g| g.to_string()),
        "allocation_pools": sub.allocation_pools.iter().map(|p| json!({
            "start": p.start.to_string(), "end": p.end.to_string(),
        })).collect::<Vec<_>>(),
        "enable_dhcp": sub.enable_dhcp,
        "dns_nameservers": sub.dns_nameservers.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "host_routes": sub.host_routes.iter().map(|r| json!({
            "destination": r.destination.to_string(), "nexthop": r.nexthop.to_string(),
        })).collect::<Vec<_>>(),
        "project_id": sub.project_id,
        "tenant_id": sub.project_id,
        "tags": sub.tags,
        "created_at": ts(&sub.created_at),
        "updated_at": updated(&sub.created_at, &sub.updated_at),
        "revision_number": 0,
        "subnetpool_id": null,
        "ipv6_ra_mode": null,
        "ipv6_address_mode": null,
        "service_types": [],
        "segment_id": null,
        "dns_publish_fixed_ip": false,
    }))
}

pub const PORT_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "network_id",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_owner",
    "device_id",
    "status",
    "security_groups",
    "project_id",
    "tenant_id",
    "tags",
    "binding:vnic_type",
    "binding:host_id",
    "binding:profile",
    "binding:vif_type",
    "binding:vif_details",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "port_security_enabled",
    "qos_policy_id",
    "ip_allocation",
    "created_at",
    "updated_at",
    "revision_number",
];

/// `ACTIVE` once something is plugged into the port, `DOWN` before.
pub fn port_status(p: &Port) -> &'static str {
    if p.device_id.is_empty() {
        "DOWN"
    } else {
        "ACTIVE"
    }
}

pub fn port(p: &Port) -> Object {
    obj(json!({
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "network_id": p.network_id,
        "admin_state_up": p.admin_state_up,
        "mac_address": p.mac_address,
        "fixed_ips": p.fixed_ips.iter().map(|f| json!({
            "subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string(),
        })).collect::<Vec<_>>(),
        "device_owner": p.device_owner,
        "device_id": p.device_id,
        "status": port_status(p),
        "security_groups": p.security_groups,
        "project_id": p.project_id,
        "tenant_id": p.project_id,
        "tags": p.tags,
        "binding:vnic_type": "normal",
        "binding:host_id": "",
        "binding:profile": {},
        "binding:vif_type": "unbound",
        "binding:vif_details": {},
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "port_security_enabled": p.port_security_enabled,
        "qos_policy_id": null,
        "ip_allocation": "immediate",
        "created_at": ts(&p.created_at),
        "updated_at": updated(&p.created_at, &p.updated_at),
        "revision_number": 0,
    }))
}

fn fixed_ips(p: &Port) -> Vec<Value> {
    p.fixed_ips
        .iter()
        .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()}))
        .collect()
}

pub const ROUTER_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "status",
    "external_gateway_info",
    "routes",
    "project_id",
    "tenant_id",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "availability_zones",
    "availability_zone_hints",
    "flavor_id",
];

/// `external_gateway_info`: null without a gateway, else the network, the
/// SNAT flag and the gateway port's addresses.
pub fn gateway_info(s: &State, r: &Router) -> Value {
    match &r.external_gateway {
        None => Value::Null,
        Some(g) => json!({
            "network_id": g.network_id,
            "enable_snat": g.enable_snat,
            "external_fixed_ips": s.ports.get(&g.port_id).map(|p| fixed_ips(p)).unwrap_or_default(),
        }),
    }
}

pub fn router(s: &State, r: &Router) -> Object {
    obj(json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "admin_state_up": r.admin_state_up,
        "status": "ACTIVE",
        "external_gateway_info": gateway_info(s, r),
        "routes": r.routes.iter().map(|x| json!({
            "destination": x.destination.to_string(), "nexthop": x.nexthop.to_string(),
        })).collect::<Vec<_>>(),
        "project_id": r.project_id,
        "tenant_id": r.project_id,
        "tags": r.tags,
        "created_at": ts(&r.created_at),
        "updated_at": updated(&r.created_at, &r.updated_at),
        "revision_number": 0,
        "availability_zones": [],
        "availability_zone_hints": [],
        "flavor_id": null,
    }))
}

pub const FLOATINGIP_ATTRS: &[&str] = &[
    "id",
    "floating_ip_address",
    "floating_network_id",
    "router_id",
    "port_id",
    "fixed_ip_address",
    "status",
    "description",
    "project_id",
    "tenant_id",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "port_details",
    "qos_policy_id",
    "dns_domain",
    "dns_name",
    "port_forwardings",
];

/// The port a floating IP is associated with, if it still exists.
pub fn fip_port<'a>(s: &'a State, f: &FloatingIp) -> Option<&'a Port> {
    f.port_id.and_then(|id| s.ports.get(&id)).map(|p| &**p)
}

pub fn floating_ip(s: &State, f: &FloatingIp) -> Object {
    // An association whose port is gone (a load balancer deleted with its
    // VIP port) shows as no association.
    let port = fip_port(s, f);
    let associated = port.is_some();
    obj(json!({
        "id": f.id,
        "floating_ip_address": f.floating_ip_address.to_string(),
        "floating_network_id": f.floating_network_id,
        "router_id": if associated { f.router_id } else { None },
        "port_id": port.map(|p| p.id),
        "fixed_ip_address": if associated { f.fixed_ip_address.map(|a| a.to_string()) } else { None },
        "status": if associated { "ACTIVE" } else { "DOWN" },
        "description": f.description,
        "project_id": f.project_id,
        "tenant_id": f.project_id,
        "tags": f.tags,
        "created_at": ts(&f.created_at),
        "updated_at": updated(&f.created_at, &f.updated_at),
        "revision_number": 0,
        "port_details": port.map(|p| json!({
            "name": p.name,
            "network_id": p.network_id,
            "mac_address": p.mac_address,
            "admin_state_up": p.admin_state_up,
            "status": port_status(p),
            "device_id": p.device_id,
            "device_owner": p.device_owner,
        })),
        "qos_policy_id": null,
        "dns_domain": "",
        "dns_name": "",
        "port_forwardings": [],
    }))
}

pub const SECURITY_GROUP_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "stateful",
    "shared",
    "security_group_rules",
    "project_id",
    "tenant_id",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];

/// A group's rules, oldest first.
pub fn group_rules(s: &State, group_id: uuid::Uuid) -> Vec<std::sync::Arc<SecurityGroupRule>> {
    let mut rules: Vec<_> = s.security_group_rules.children(group_id).cloned().collect();
    rules.sort_by_key(|r| (r.created_at, r.id));
    rules
}

pub fn security_group(s: &State, g: &SecurityGroup) -> Object {
    obj(json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "stateful": g.stateful,
        "shared": false,
        "security_group_rules": group_rules(s, g.id)
            .iter()
            .map(|r| Value::Object(security_group_rule(r)))
            .collect::<Vec<_>>(),
        "project_id": g.project_id,
        "tenant_id": g.project_id,
        "tags": g.tags,
        "created_at": ts(&g.created_at),
        "updated_at": updated(&g.created_at, &g.updated_at),
        "revision_number": 0,
    }))
}

pub const SECURITY_GROUP_RULE_ATTRS: &[&str] = &[
    "id",
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "normalized_cidr",
    "description",
    "belongs_to_default_sg",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
];

pub fn security_group_rule(r: &SecurityGroupRule) -> Object {
    obj(json!({
        "id": r.id,
        "security_group_id": r.security_group_id,
        "direction": match r.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        },
        "ethertype": match r.ethertype {
            EtherType::IPv4 => "IPv4",
            EtherType::IPv6 => "IPv6",
        },
        "protocol": r.protocol,
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": r.remote_ip_prefix.map(|n| n.to_string()),
        "remote_group_id": r.remote_group_id,
        "remote_address_group_id": null,
        "normalized_cidr": r.remote_ip_prefix.map(|n| n.trunc().to_string()),
        "description": r.description,
        "belongs_to_default_sg": false,
        "project_id": r.project_id,
        "tenant_id": r.project_id,
        "created_at": ts(&r.created_at),
        "updated_at": updated(&r.created_at, &r.updated_at),
        "revision_number": 0,
    }))
}
