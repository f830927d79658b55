//! How networks, subnets and ports look on the wire (Neutron's field sets),
//! and the attribute lists that filters and sort keys are checked against.

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
        "port_security_enabled": true,
        "qos_policy_id": null,
        "ip_allocation": "immediate",
        "created_at": ts(&p.created_at),
        "updated_at": updated(&p.created_at, &p.updated_at),
        "revision_number": 0,
    }))
}
