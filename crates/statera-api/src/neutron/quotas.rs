//! Neutron's per-project quotas, its `max_fixed_ips_per_port`, and the
//! host-interface rule for tenant subnets (limits on what one project may
//! take from shared address space).

use crate::{ApiError, ApiResult, AppState, RequestContext};
use axum::http::StatusCode;
use ipnet::IpNet;
use statera_model::addressing::HostAddressSpace;
use statera_store::State;
use std::net::IpAddr;
use std::sync::Arc;

/// Neutron's `max_fixed_ips_per_port` default.
pub const MAX_FIXED_IPS_PER_PORT: usize = 5;

/// Per-project limits of Neutron objects (−1 = unlimited), Neutron's
/// `[quotas] quota_*` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NeutronQuotas {
    pub network: i64,
    pub subnet: i64,
    pub port: i64,
    pub router: i64,
    pub floatingip: i64,
    pub security_group: i64,
    pub security_group_rule: i64,
}

impl Default for NeutronQuotas {
    fn default() -> Self {
        NeutronQuotas {
            network: 100,
            subnet: 100,
            port: 500,
            router: 10,
            floatingip: 50,
            security_group: 10,
            security_group_rule: 100,
        }
    }
}

/// Reads the addresses configured on this host's interfaces, at request time.
pub type HostAddressReader = Arc<dyn Fn() -> std::io::Result<Vec<IpAddr>> + Send + Sync>;

/// The Neutron side's limits, part of [`crate::ApiSettings`].
#[derive(Clone)]
pub struct NeutronSettings {
    pub quotas: NeutronQuotas,
    /// More fixed IPs on one port are refused (400), except on ports of
    /// `network:*` owners, as in Neutron.
    pub max_fixed_ips_per_port: usize,
    /// The host's interface addresses. The default reads none (API tests);
    /// `statera serve` injects the real reader of the network crate.
    pub host_interface_addresses: HostAddressReader,
}

impl Default for NeutronSettings {
    fn default() -> Self {
        NeutronSettings {
            quotas: NeutronQuotas::default(),
            max_fixed_ips_per_port: MAX_FIXED_IPS_PER_PORT,
            host_interface_addresses: Arc::new(|| Ok(Vec::new())),
        }
    }
}

impl std::fmt::Debug for NeutronSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeutronSettings")
            .field("quotas", &self.quotas)
            .field("max_fixed_ips_per_port", &self.max_fixed_ips_per_port)
            .finish_non_exhaustive()
    }
}

/// A Neutron resource with a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Network,
    Subnet,
    Port,
    Router,
    FloatingIp,
    SecurityGroup,
    SecurityGroupRule,
}

impl Resource {
    /// Neutron's name of the resource (in `OverQuota` and `/quotas`).
    pub fn name(self) -> &'static str {
        match self {
            Resource::Network => "network",
            Resource::Subnet => "subnet",
            Resource::Port => "port",
            Resource::Router => "router",
            Resource::FloatingIp => "floatingip",
            Resource::SecurityGroup => "security_group",
            Resource::SecurityGroupRule => "security_group_rule",
        }
    }

    fn limit(self, q: &NeutronQuotas) -> i64 {
        match self {
            Resource::Network => q.network,
            Resource::Subnet => q.subnet,
            Resource::Port => q.port,
            Resource::Router => q.router,
            Resource::FloatingIp => q.floatingip,
            Resource::SecurityGroup => q.security_group,
            Resource::SecurityGroupRule => q.security_group_rule,
        }
    }
}

/// How many objects of `r` `project` holds in `s`.
pub fn usage(s: &State, project: &str, r: Resource) -> usize {
    match r {
        Resource::Network => s
            .networks
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
        Resource::Subnet => s.subnets.iter().filter(|o| o.project_id == project).count(),
        Resource::Port => s.ports.iter().filter(|o| o.project_id == project).count(),
        Resource::Router => s.routers.iter().filter(|o| o.project_id == project).count(),
        Resource::FloatingIp => s
            .floating_ips
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
        Resource::SecurityGroup => s
            .security_groups
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
        Resource::SecurityGroupRule => s
            .security_group_rules
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
    }
}

/// Neutron's `OverQuota` (409): `Quota exceeded for resources: ['port'].`
pub fn over_quota(r: Resource) -> ApiError {
    ApiError::conflict(format!("Quota exceeded for resources: ['{}'].", r.name()))
        .neutron("OverQuota")
}

/// Refuses adding `adding` objects of `r` to `project` beyond its quota.
/// Call it inside the `Store::write` transaction that creates them, so
/// concurrent creates cannot overshoot (writes are serialised).
pub fn check(
    app: &AppState,
    s: &State,
    project: &str,
    r: Resource,
    adding: usize,
) -> ApiResult<()> {
    let limit = r.limit(&app.settings.neutron.quotas);
    if adding == 0 || limit < 0 {
        return Ok(());
    }
    if (usage(s, project, r) + adding) as i64 > limit {
        return Err(over_quota(r));
    }
    Ok(())
}

/// Neutron's `max_fixed_ips_per_port` (400 `InvalidInput`); ports of
/// `network:*` owners (router interfaces, DHCP) are exempt, as in Neutron.
pub fn check_fixed_ips_count(app: &AppState, device_owner: &str, count: usize) -> ApiResult<()> {
    if device_owner.starts_with("network:") || count <= app.settings.neutron.max_fixed_ips_per_port
    {
        return Ok(());
    }
    Err(super::invalid_input(
        "Exceeded maximum amount of fixed ips per port.",
    ))
}

/// The host's interface addresses; 503 (retry is safe) when they cannot be
/// read, so a failure refuses rather than lets a tenant through.
fn read_host_addresses(app: &AppState) -> ApiResult<Vec<IpAddr>> {
    (app.settings.neutron.host_interface_addresses)().map_err(|e| {
        tracing::error!(error = %e, "reading the host's interface addresses");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Could not read the host's interface addresses; retry later.",
        )
    })
}

/// The address space requests allocate in, with the host's interface
/// addresses under the host driver (read now: interfaces change).
pub fn address_space(app: &AppState) -> ApiResult<super::subnets::AddressSpace> {
    let kind = app.settings.host_address_space;
    let host = if kind == HostAddressSpace::AllSubnets {
        read_host_addresses(app)?
            .into_iter()
            .map(statera_model::addressing::canonical)
            .collect()
    } else {
        Vec::new()
    };
    Ok(super::subnets::AddressSpace { kind, host })
}

/// Under the host driver, the first of `requested` (addresses a non-admin
/// asks for by value: a VIP, a port's fixed IP) configured on a host
/// interface. Such a subnet can only be an admin's (see
/// [`check_host_interfaces`]), but a shared one may still cover the host.
pub fn requested_host_address(
    app: &AppState,
    ctx: &RequestContext,
    requested: impl IntoIterator<Item = IpAddr>,
) -> ApiResult<Option<IpAddr>> {
    if ctx.is_admin() || app.settings.host_address_space != HostAddressSpace::AllSubnets {
        return Ok(None);
    }
    let requested: Vec<IpAddr> = requested
        .into_iter()
        .map(statera_model::addressing::canonical)
        .collect();
    if requested.is_empty() {
        return Ok(None);
    }
    let host = read_host_addresses(app)?;
    Ok(requested.into_iter().find(|ip| {
        host.iter()
            .any(|h| statera_model::addressing::canonical(*h) == *ip)
    }))
}

/// A Neutron port asking for a host address: 400 `InvalidInput`.
pub fn check_port_addresses(
    app: &AppState,
    ctx: &RequestContext,
    requested: impl IntoIterator<Item = IpAddr>,
) -> ApiResult<()> {
    match requested_host_address(app, ctx, requested).map_err(super::neutron_error)? {
        None => Ok(()),
        Some(ip) => Err(super::invalid_input(format!(
            "IP address {ip} is an address of this host; only an administrator may assign it."
        ))),
    }
}

/// Under the host driver, a non-admin's subnet must not contain an address
/// configured on one of the host's interfaces (else its load balancers could
/// bind the host's own addresses: publish loopback-only services on them or
/// squat ports host services need).
pub fn check_host_interfaces(app: &AppState, ctx: &RequestContext, cidr: &IpNet) -> ApiResult<()> {
    if ctx.is_admin() || app.settings.host_address_space != HostAddressSpace::AllSubnets {
        return Ok(());
    }
    let addresses = read_host_addresses(app).map_err(super::neutron_error)?;
    if addresses
        .iter()
        .any(|a| cidr.contains(&statera_model::addressing::canonical(*a)))
    {
        return Err(super::invalid_input(format!(
            "Requested subnet with cidr: {cidr} contains an address of this host's own \
             interfaces; only an administrator may create subnets over the host's addresses."
        )));
    }
    Ok(())
}
