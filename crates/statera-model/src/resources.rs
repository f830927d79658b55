//! The objects users create through the API, in the form the store keeps them.
//!
//! Names follow Octavia's and Neutron's words. References between objects are
//! ids; the reverse references the API shows (a pool's `members`, a load
//! balancer's `listeners`) are derived from these, never stored twice.

use crate::enums::*;
use chrono::NaiveDateTime;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use uuid::Uuid;

pub type Timestamp = NaiveDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdditionalVip {
    pub subnet_id: Uuid,
    pub ip_address: IpAddr,
    #[serde(default)]
    pub port_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub id: Uuid,
    pub project_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub vip_address: IpAddr,
    pub vip_port_id: Uuid,
    pub vip_subnet_id: Uuid,
    pub vip_network_id: Uuid,
    pub vip_qos_policy_id: Option<Uuid>,
    #[serde(default)]
    pub vip_sg_ids: Vec<Uuid>,
    #[serde(default)]
    pub additional_vips: Vec<AdditionalVip>,
    pub provider: String,
    pub flavor_id: Option<Uuid>,
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    /// The version of the last `LbConfig` a data plane acknowledged for this load balancer.
    #[serde(default)]
    pub config_version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    pub id: Uuid,
    pub project_id: String,
    pub loadbalancer_id: Uuid,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub protocol: ListenerProtocol,
    pub protocol_port: u16,
    /// -1 means the provider's default.
    pub connection_limit: i64,
    pub default_pool_id: Option<Uuid>,
    /// Header name → "true"/"false" as the user sent it.
    #[serde(default)]
    pub insert_headers: BTreeMap<String, String>,
    pub timeout_client_data: i64,
    pub timeout_member_connect: i64,
    pub timeout_member_data: i64,
    pub timeout_tcp_inspect: i64,
    pub default_tls_container_ref: Option<String>,
    #[serde(default)]
    pub sni_container_refs: Vec<String>,
    pub client_ca_tls_container_ref: Option<String>,
    pub client_authentication: ClientAuthentication,
    pub client_crl_container_ref: Option<String>,
    #[serde(default)]
    pub allowed_cidrs: Vec<IpNet>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<TlsVersion>>,
    pub alpn_protocols: Option<Vec<AlpnProtocol>>,
    pub hsts_max_age: Option<i64>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Listener {
    /// Whether the listener asked for header `name` (values are the strings "true"/"false").
    pub fn inserts_header(&self, name: &str) -> bool {
        self.insert_headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case("true"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPersistence {
    #[serde(rename = "type")]
    pub kind: SessionPersistenceType,
    pub cookie_name: Option<String>,
    pub persistence_timeout: Option<i64>,
    pub persistence_granularity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub id: Uuid,
    pub project_id: String,
    pub loadbalancer_id: Uuid,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub protocol: PoolProtocol,
    pub lb_algorithm: LbAlgorithm,
    pub session_persistence: Option<SessionPersistence>,
    pub tls_enabled: bool,
    pub tls_container_ref: Option<String>,
    pub ca_tls_container_ref: Option<String>,
    pub crl_container_ref: Option<String>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<TlsVersion>>,
    pub alpn_protocols: Option<Vec<AlpnProtocol>>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: Uuid,
    pub project_id: String,
    pub pool_id: Uuid,
    pub name: Option<String>,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub address: IpAddr,
    pub protocol_port: u16,
    pub weight: u16,
    pub backup: bool,
    pub subnet_id: Option<Uuid>,
    pub monitor_address: Option<IpAddr>,
    pub monitor_port: Option<u16>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    /// `address` as the request wrote it, when that differs from its
    /// canonical form (`2001:db8:0:0:0:0:0:1`): Octavia shows it as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_as_sent: Option<String>,
    /// `monitor_address` as sent, when that differs from its canonical form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_address_as_sent: Option<String>,
}

impl Member {
    /// The address as Octavia shows it: as the request wrote it.
    pub fn address_text(&self) -> String {
        self.address_as_sent
            .clone()
            .unwrap_or_else(|| self.address.to_string())
    }

    /// The monitor address as the request wrote it.
    pub fn monitor_address_text(&self) -> Option<String> {
        self.monitor_address.map(|a| {
            self.monitor_address_as_sent
                .clone()
                .unwrap_or_else(|| a.to_string())
        })
    }
}

/// The text of an address as sent, kept only when it is not the canonical
/// form (so most rows carry nothing extra).
pub fn as_sent(address: IpAddr, text: &str) -> Option<String> {
    (address.to_string() != text).then(|| text.to_string())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthMonitor {
    pub id: Uuid,
    pub project_id: String,
    pub pool_id: Uuid,
    pub name: Option<String>,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    #[serde(rename = "type")]
    pub kind: HealthMonitorType,
    /// Seconds between probes.
    pub delay: i64,
    /// Seconds a probe may take.
    pub timeout: i64,
    /// Good probes for a member to come back ("rise").
    pub max_retries: i64,
    /// Failed probes for a member to go down ("fall").
    pub max_retries_down: i64,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
    pub http_version: Option<f64>,
    pub domain_name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7Policy {
    pub id: Uuid,
    pub project_id: String,
    pub listener_id: Uuid,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub action: L7PolicyAction,
    pub redirect_pool_id: Option<Uuid>,
    pub redirect_url: Option<String>,
    pub redirect_prefix: Option<String>,
    pub redirect_http_code: Option<u16>,
    /// 1-based, dense per listener.
    pub position: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7Rule {
    pub id: Uuid,
    pub project_id: String,
    pub l7policy_id: Uuid,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    #[serde(rename = "type")]
    pub kind: L7RuleType,
    pub compare_type: L7RuleCompareType,
    pub key: Option<String>,
    pub value: String,
    pub invert: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A project's limits; `None` means "the deployment default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub project_id: String,
    pub loadbalancer: Option<i64>,
    pub listener: Option<i64>,
    pub member: Option<i64>,
    pub pool: Option<i64>,
    pub healthmonitor: Option<i64>,
    pub l7policy: Option<i64>,
    pub l7rule: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub flavor_profile_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorProfile {
    pub id: Uuid,
    pub name: String,
    pub provider_name: String,
    /// JSON text, as Octavia keeps it.
    pub flavor_data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvailabilityZone {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub availability_zone_profile_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvailabilityZoneProfile {
    pub id: Uuid,
    pub name: String,
    pub provider_name: String,
    pub availability_zone_data: String,
}

/// One data-plane instance serving a load balancer (Octavia's admin "amphora" view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Amphora {
    pub id: Uuid,
    pub loadbalancer_id: Uuid,
    pub role: AmphoraRole,
    pub status: AmphoraStatus,
    /// Where the instance runs (the host, or the load balancer's namespace).
    pub compute_id: Option<String>,
    pub lb_network_ip: Option<IpAddr>,
    pub ha_ip: Option<IpAddr>,
    pub ha_port_id: Option<Uuid>,
    pub cached_zone: Option<String>,
    /// The version of the software serving it (an agent's, or this
    /// binary's): Octavia's image_id.
    #[serde(default)]
    pub image_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub id: Uuid,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub mtu: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationPool {
    pub start: IpAddr,
    pub end: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: IpNet,
    pub nexthop: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: Uuid,
    pub project_id: String,
    pub network_id: Uuid,
    pub name: String,
    pub description: String,
    pub cidr: IpNet,
    pub gateway_ip: Option<IpAddr>,
    pub allocation_pools: Vec<AllocationPool>,
    pub enable_dhcp: bool,
    #[serde(default)]
    pub dns_nameservers: Vec<IpAddr>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Subnet {
    pub fn ip_version(&self) -> u8 {
        match self.cidr {
            IpNet::V4(_) => 4,
            IpNet::V6(_) => 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    pub subnet_id: Uuid,
    pub ip_address: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub id: Uuid,
    pub project_id: String,
    pub network_id: Uuid,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    pub device_owner: String,
    pub device_id: String,
    #[serde(default)]
    pub security_groups: Vec<Uuid>,
    /// Whether the port's security groups filter its traffic.
    #[serde(default = "yes")]
    pub port_security_enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

fn yes() -> bool {
    true
}

/// Device owners of the ports Statera creates itself.
pub mod device_owner {
    pub const ROUTER_INTERFACE: &str = "network:router_interface";
    pub const ROUTER_GATEWAY: &str = "network:router_gateway";
    pub const FLOATING_IP: &str = "network:floatingip";
    pub const LOADBALANCER_VIP: &str = "Octavia";
}

/// A Neutron router. Its legs are ports: one `network:router_gateway` port on
/// the external network (when it has a gateway) and one
/// `network:router_interface` port per attached subnet, each with
/// `device_id` = the router's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Router {
    pub id: Uuid,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub external_gateway: Option<ExternalGateway>,
    /// Extra routes (`routes`): destination via a next hop on an attached subnet.
    #[serde(default)]
    pub routes: Vec<HostRoute>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalGateway {
    pub network_id: Uuid,
    /// Source-NAT the attached subnets out of the gateway address.
    pub enable_snat: bool,
    /// The `network:router_gateway` port holding the gateway's addresses.
    pub port_id: Uuid,
}

/// A floating IP: an address of an external network, optionally associated
/// with a port whose subnet a router connects to that network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: Uuid,
    pub project_id: String,
    pub description: String,
    pub floating_network_id: Uuid,
    pub floating_ip_address: IpAddr,
    /// The `network:floatingip` port that holds the address in IPAM.
    pub floating_port_id: Uuid,
    pub port_id: Option<Uuid>,
    pub fixed_ip_address: Option<IpAddr>,
    /// The router that carries the translation (set while associated).
    pub router_id: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: Uuid,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EtherType {
    IPv4,
    IPv6,
}

/// One rule of a security group: traffic it matches is allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    pub id: Uuid,
    pub project_id: String,
    pub security_group_id: Uuid,
    pub description: String,
    pub direction: Direction,
    pub ethertype: EtherType,
    /// As the user gave it: a name (`tcp`, `udp`, `icmp`, …) or a number
    /// (`"6"`); `None` = any. See [`SecurityGroupRule::protocol_number`].
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<IpNet>,
    pub remote_group_id: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl SecurityGroupRule {
    /// The IP protocol number of a protocol name or number Neutron accepts.
    pub fn protocol_number(name: &str) -> Option<u8> {
        Some(match name.to_ascii_lowercase().as_str() {
            "icmp" => 1,
            "igmp" => 2,
            "tcp" => 6,
            "egp" => 8,
            "udp" => 17,
            "ipv6-encap" => 41,
            "ipv6-route" => 43,
            "ipv6-frag" => 44,
            "rsvp" => 46,
            "gre" => 47,
            "esp" => 50,
            "ah" => 51,
            "icmpv6" | "ipv6-icmp" => 58,
            "ipv6-nonxt" => 59,
            "ipv6-opts" => 60,
            "ospf" => 89,
            "pgm" => 113,
            "vrrp" => 112,
            "sctp" => 132,
            "udplite" => 136,
            n => n.parse().ok()?,
        })
    }
}
