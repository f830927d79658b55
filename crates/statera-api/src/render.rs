//! How objects look on the wire (Octavia's response field sets), and the
//! attribute lists that filters and sort keys are checked against.

use crate::list::Object;
use serde_json::{Value, json};
use statera_model::*;
use statera_store::State;
use std::sync::Arc;
use uuid::Uuid;

pub fn ts(t: &Timestamp) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

fn opt_ts(t: &Option<Timestamp>) -> Value {
    t.as_ref().map(ts).unwrap_or(Value::Null)
}

/// `name`/`description` are never null on the wire.
fn text(s: &Option<String>) -> Value {
    Value::String(s.clone().unwrap_or_default())
}

fn refs<'a, T: 'a>(items: impl Iterator<Item = &'a Arc<T>>, id: impl Fn(&T) -> Uuid) -> Value {
    Value::Array(items.map(|i| json!({"id": id(i)})).collect())
}

fn obj(v: Value) -> Object {
    match v {
        Value::Object(o) => o,
        _ => Object::new(),
    }
}

pub const LB_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "provisioning_status",
    "operating_status",
    "vip_address",
    "vip_port_id",
    "vip_subnet_id",
    "vip_network_id",
    "vip_qos_policy_id",
    "vip_sg_ids",
    "vip_vnic_type",
    "additional_vips",
    "listeners",
    "pools",
    "provider",
    "flavor_id",
    "availability_zone",
    "tags",
    "created_at",
    "updated_at",
];

pub fn loadbalancer(s: &State, lb: &LoadBalancer) -> Object {
    obj(json!({
        "id": lb.id,
        "name": text(&lb.name),
        "description": text(&lb.description),
        "admin_state_up": lb.admin_state_up,
        "project_id": lb.project_id,
        "tenant_id": lb.project_id,
        "provisioning_status": lb.provisioning_status,
        "operating_status": lb.operating_status,
        "vip_address": lb.vip_address.to_string(),
        "vip_port_id": lb.vip_port_id,
        "vip_subnet_id": lb.vip_subnet_id,
        "vip_network_id": lb.vip_network_id,
        "vip_qos_policy_id": lb.vip_qos_policy_id,
        "vip_sg_ids": lb.vip_sg_ids,
        "vip_vnic_type": "normal",
        "additional_vips": lb.additional_vips.iter().map(|v| json!({
            "subnet_id": v.subnet_id, "ip_address": v.ip_address.to_string(), "port_id": v.port_id,
        })).collect::<Vec<_>>(),
        "listeners": refs(s.listeners.children(lb.id), |l| l.id),
        "pools": refs(s.pools.children(lb.id), |p| p.id),
        "provider": if lb.provider.is_empty() { "octavia" } else { lb.provider.as_str() },
        "flavor_id": lb.flavor_id,
        "availability_zone": lb.availability_zone,
        "tags": lb.tags,
        "created_at": ts(&lb.created_at),
        "updated_at": opt_ts(&lb.updated_at),
    }))
}

pub const LISTENER_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "provisioning_status",
    "operating_status",
    "protocol",
    "protocol_port",
    "connection_limit",
    "default_pool_id",
    "loadbalancers",
    "l7policies",
    "insert_headers",
    "timeout_client_data",
    "timeout_member_connect",
    "timeout_member_data",
    "timeout_tcp_inspect",
    "default_tls_container_ref",
    "sni_container_refs",
    "client_ca_tls_container_ref",
    "client_authentication",
    "client_crl_container_ref",
    "allowed_cidrs",
    "tls_ciphers",
    "tls_versions",
    "alpn_protocols",
    "hsts_max_age",
    "hsts_include_subdomains",
    "hsts_preload",
    "tags",
    "created_at",
    "updated_at",
];

pub fn listener(s: &State, l: &Listener) -> Object {
    let mut policies: Vec<&Arc<L7Policy>> = s.l7policies.children(l.id).collect();
    policies.sort_by_key(|p| p.position);
    obj(json!({
        "id": l.id,
        "name": text(&l.name),
        "description": text(&l.description),
        "admin_state_up": l.admin_state_up,
        "project_id": l.project_id,
        "tenant_id": l.project_id,
        "provisioning_status": l.provisioning_status,
        "operating_status": l.operating_status,
        "protocol": l.protocol,
        "protocol_port": l.protocol_port,
        "connection_limit": l.connection_limit,
        "default_pool_id": l.default_pool_id,
        "loadbalancers": json!([{"id": l.loadbalancer_id}]),
        "l7policies": policies.iter().map(|p| json!({"id": p.id})).collect::<Vec<_>>(),
        "insert_headers": l.insert_headers,
        "timeout_client_data": l.timeout_client_data,
        "timeout_member_connect": l.timeout_member_connect,
        "timeout_member_data": l.timeout_member_data,
        "timeout_tcp_inspect": l.timeout_tcp_inspect,
        "default_tls_container_ref": l.default_tls_container_ref,
        "sni_container_refs": l.sni_container_refs,
        "client_ca_tls_container_ref": l.client_ca_tls_container_ref,
        "client_authentication": l.client_authentication,
        "client_crl_container_ref": l.client_crl_container_ref,
        "allowed_cidrs": if l.allowed_cidrs.is_empty() { Value::Null } else {
            json!(l.allowed_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>()) },
        "tls_ciphers": l.tls_ciphers,
        "tls_versions": l.tls_versions,
        "alpn_protocols": l.alpn_protocols,
        "hsts_max_age": l.hsts_max_age,
        "hsts_include_subdomains": l.hsts_include_subdomains,
        "hsts_preload": l.hsts_preload,
        "tags": l.tags,
        "created_at": ts(&l.created_at),
        "updated_at": opt_ts(&l.updated_at),
    }))
}

pub const POOL_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "provisioning_status",
    "operating_status",
    "protocol",
    "lb_algorithm",
    "session_persistence",
    "loadbalancers",
    "listeners",
    "members",
    "healthmonitor_id",
    "tls_enabled",
    "tls_container_ref",
    "ca_tls_container_ref",
    "crl_container_ref",
    "tls_ciphers",
    "tls_versions",
    "alpn_protocols",
    "tags",
    "created_at",
    "updated_at",
];

pub fn session_persistence(sp: &Option<SessionPersistence>) -> Value {
    match sp {
        None => Value::Null,
        Some(sp) => json!({
            "type": sp.kind,
            "cookie_name": sp.cookie_name,
            "persistence_timeout": sp.persistence_timeout,
            "persistence_granularity": sp.persistence_granularity,
        }),
    }
}

pub fn pool(s: &State, p: &Pool) -> Object {
    obj(json!({
        "id": p.id,
        "name": text(&p.name),
        "description": text(&p.description),
        "admin_state_up": p.admin_state_up,
        "project_id": p.project_id,
        "tenant_id": p.project_id,
        "provisioning_status": p.provisioning_status,
        "operating_status": p.operating_status,
        "protocol": p.protocol,
        "lb_algorithm": p.lb_algorithm,
        "session_persistence": session_persistence(&p.session_persistence),
        "loadbalancers": json!([{"id": p.loadbalancer_id}]),
        "listeners": refs(s.listeners_using_pool(p.loadbalancer_id, p.id), |l| l.id),
        "members": refs(s.members.children(p.id), |m| m.id),
        "healthmonitor_id": s.pool_monitor(p.id).map(|h| h.id),
        "tls_enabled": p.tls_enabled,
        "tls_container_ref": p.tls_container_ref,
        "ca_tls_container_ref": p.ca_tls_container_ref,
        "crl_container_ref": p.crl_container_ref,
        "tls_ciphers": p.tls_ciphers,
        "tls_versions": p.tls_versions,
        "alpn_protocols": p.alpn_protocols,
        "tags": p.tags,
        "created_at": ts(&p.created_at),
        "updated_at": opt_ts(&p.updated_at),
    }))
}

pub const MEMBER_ATTRS: &[&str] = &[
    "id",
    "name",
    "operating_status",
    "provisioning_status",
    "admin_state_up",
    "address",
    "protocol_port",
    "weight",
    "backup",
    "subnet_id",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "monitor_address",
    "monitor_port",
    "tags",
    "vnic_type",
    "pool_id",
];

pub fn member(m: &Member) -> Object {
    obj(json!({
        "id": m.id,
        "name": text(&m.name),
        "operating_status": m.operating_status,
        "provisioning_status": m.provisioning_status,
        "admin_state_up": m.admin_state_up,
        "address": m.address_text(),
        "protocol_port": m.protocol_port,
        "weight": m.weight,
        "backup": m.backup,
        "subnet_id": m.subnet_id,
        "project_id": m.project_id,
        "tenant_id": m.project_id,
        "created_at": ts(&m.created_at),
        "updated_at": opt_ts(&m.updated_at),
        "monitor_address": m.monitor_address_text(),
        "monitor_port": m.monitor_port,
        "tags": m.tags,
        "vnic_type": "normal",
    }))
}

pub const HM_ATTRS: &[&str] = &[
    "id",
    "name",
    "type",
    "delay",
    "timeout",
    "max_retries",
    "max_retries_down",
    "http_method",
    "url_path",
    "expected_codes",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "pools",
    "provisioning_status",
    "operating_status",
    "created_at",
    "updated_at",
    "tags",
    "http_version",
    "domain_name",
];

pub fn healthmonitor(h: &HealthMonitor) -> Object {
    obj(json!({
        "id": h.id,
        "name": text(&h.name),
        "type": h.kind,
        "delay": h.delay,
        "timeout": h.timeout,
        "max_retries": h.max_retries,
        "max_retries_down": h.max_retries_down,
        "http_method": h.http_method,
        "url_path": h.url_path,
        "expected_codes": h.expected_codes,
        "admin_state_up": h.admin_state_up,
        "project_id": h.project_id,
        "tenant_id": h.project_id,
        "pools": [{"id": h.pool_id}],
        "provisioning_status": h.provisioning_status,
        "operating_status": h.operating_status,
        "created_at": ts(&h.created_at),
        "updated_at": opt_ts(&h.updated_at),
        "tags": h.tags,
        "http_version": h.http_version,
        "domain_name": h.domain_name,
    }))
}

pub const L7POLICY_ATTRS: &[&str] = &[
    "id",
    "name",
    "description",
    "provisioning_status",
    "operating_status",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "action",
    "listener_id",
    "redirect_pool_id",
    "redirect_url",
    "redirect_prefix",
    "position",
    "rules",
    "created_at",
    "updated_at",
    "tags",
    "redirect_http_code",
];

pub fn l7policy(s: &State, p: &L7Policy) -> Object {
    obj(json!({
        "id": p.id,
        "name": text(&p.name),
        "description": text(&p.description),
        "provisioning_status": p.provisioning_status,
        "operating_status": p.operating_status,
        "admin_state_up": p.admin_state_up,
        "project_id": p.project_id,
        "tenant_id": p.project_id,
        "action": p.action,
        "listener_id": p.listener_id,
        "redirect_pool_id": p.redirect_pool_id,
        "redirect_url": p.redirect_url,
        "redirect_prefix": p.redirect_prefix,
        "position": p.position,
        "rules": refs(s.l7rules.children(p.id), |r| r.id),
        "created_at": ts(&p.created_at),
        "updated_at": opt_ts(&p.updated_at),
        "tags": p.tags,
        "redirect_http_code": p.redirect_http_code,
    }))
}

pub const L7RULE_ATTRS: &[&str] = &[
    "id",
    "type",
    "compare_type",
    "key",
    "value",
    "invert",
    "provisioning_status",
    "operating_status",
    "created_at",
    "updated_at",
    "project_id",
    "tenant_id",
    "admin_state_up",
    "tags",
];

pub fn l7rule(r: &L7Rule) -> Object {
    obj(json!({
        "id": r.id,
        "type": r.kind,
        "compare_type": r.compare_type,
        "key": r.key,
        "value": r.value,
        "invert": r.invert,
        "provisioning_status": r.provisioning_status,
        "operating_status": r.operating_status,
        "created_at": ts(&r.created_at),
        "updated_at": opt_ts(&r.updated_at),
        "project_id": r.project_id,
        "tenant_id": r.project_id,
        "admin_state_up": r.admin_state_up,
        "tags": r.tags,
    }))
}

/// The attributes every summary carries: enough to filter and sort the common
/// way without rendering the whole object.
macro_rules! summary {
    ($o:expr, { $($k:literal : $v:expr),* $(,)? }) => {{
        let o = $o;
        obj(json!({
            "id": o.id,
            "name": text(&o.name),
            "project_id": o.project_id,
            "tenant_id": o.project_id,
            "admin_state_up": o.admin_state_up,
            "provisioning_status": o.provisioning_status,
            "operating_status": o.operating_status,
            "tags": o.tags,
            "created_at": ts(&o.created_at),
            "updated_at": opt_ts(&o.updated_at),
            $($k: $v),*
        }))
    }};
}

pub fn loadbalancer_summary(lb: &LoadBalancer) -> Object {
    summary!(lb, {
        "vip_address": lb.vip_address.to_string(),
        "vip_subnet_id": lb.vip_subnet_id,
        "vip_network_id": lb.vip_network_id,
        "vip_port_id": lb.vip_port_id,
        "provider": lb.provider,
        "flavor_id": lb.flavor_id,
        "availability_zone": lb.availability_zone,
    })
}

pub fn listener_summary(l: &Listener) -> Object {
    summary!(l, {
        "protocol": l.protocol,
        "protocol_port": l.protocol_port,
        "default_pool_id": l.default_pool_id,
        "loadbalancers": json!([{"id": l.loadbalancer_id}]),
    })
}

pub fn pool_summary(p: &Pool) -> Object {
    summary!(p, {
        "protocol": p.protocol,
        "lb_algorithm": p.lb_algorithm,
        "loadbalancers": json!([{"id": p.loadbalancer_id}]),
    })
}
