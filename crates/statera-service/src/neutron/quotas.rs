//! Neutron's per-project quotas, its `max_fixed_ips_per_port`, and the
//! host-interface rule for tenant subnets (limits on what one project may
//! take from shared address space).

use super::invalid_input;
use crate::auth::Context;
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::store::{Owned, StoreRead};
use ipnet::IpNet;
use statera_model::addressing::{HostAddressSpace, canonical};
use statera_model::*;
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

/// The Neutron side's limits.
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

/// What the Neutron operations read of the deployment's settings
/// (implemented by the API's settings).
pub trait NeutronConfig: Send + Sync {
    fn neutron(&self) -> &NeutronSettings;
    /// Which subnets' addresses the host itself serves on.
    fn host_address_space(&self) -> HostAddressSpace;
}

/// A Neutron resource with a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaResource {
    Network,
    Subnet,
    Port,
    Router,
    FloatingIp,
    SecurityGroup,
    SecurityGroupRule,
}

impl QuotaResource {
    pub const ALL: [QuotaResource; 7] = [
        QuotaResource::Network,
        QuotaResource::Subnet,
        QuotaResource::Port,
        QuotaResource::Router,
        QuotaResource::FloatingIp,
        QuotaResource::SecurityGroup,
        QuotaResource::SecurityGroupRule,
    ];

    /// Neutron's name of the resource (in `OverQuota` and `/quotas`).
    pub fn name(self) -> &'static str {
        match self {
            QuotaResource::Network => "network",
            QuotaResource::Subnet => "subnet",
            QuotaResource::Port => "port",
            QuotaResource::Router => "router",
            QuotaResource::FloatingIp => "floatingip",
            QuotaResource::SecurityGroup => "security_group",
            QuotaResource::SecurityGroupRule => "security_group_rule",
        }
    }

    pub fn limit(self, q: &NeutronQuotas) -> i64 {
        match self {
            QuotaResource::Network => q.network,
            QuotaResource::Subnet => q.subnet,
            QuotaResource::Port => q.port,
            QuotaResource::Router => q.router,
            QuotaResource::FloatingIp => q.floatingip,
            QuotaResource::SecurityGroup => q.security_group,
            QuotaResource::SecurityGroupRule => q.security_group_rule,
        }
    }
}

/// How many objects of `r` `project` holds in `s`.
pub fn usage(s: &impl StoreRead, project: &str, r: QuotaResource) -> usize {
    fn n<R: Owned>(s: &impl StoreRead, project: &str) -> usize {
        s.count_by_project::<R>(project)
    }
    match r {
        QuotaResource::Network => n::<Network>(s, project),
        QuotaResource::Subnet => n::<Subnet>(s, project),
        QuotaResource::Port => n::<Port>(s, project),
        QuotaResource::Router => n::<Router>(s, project),
        QuotaResource::FloatingIp => n::<FloatingIp>(s, project),
        QuotaResource::SecurityGroup => n::<SecurityGroup>(s, project),
        QuotaResource::SecurityGroupRule => n::<SecurityGroupRule>(s, project),
    }
}

/// Neutron's `OverQuota` (409): `Quota exceeded for resources: ['port'].`
pub fn over_quota(r: QuotaResource) -> ServiceError {
    super::error(
        Fault::Conflict,
        "OverQuota",
        format!("Quota exceeded for resources: ['{}'].", r.name()),
    )
}

/// Refuses adding `adding` objects of `r` to `project` beyond its quota.
/// Call it inside the write transaction that creates them, so concurrent
/// creates cannot overshoot (writes are serialised).
pub fn check(
    cfg: &(impl NeutronConfig + ?Sized),
    s: &impl StoreRead,
    project: &str,
    r: QuotaResource,
    adding: usize,
) -> ServiceResult<()> {
    let limit = r.limit(&cfg.neutron().quotas);
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
pub fn check_fixed_ips_count(
    cfg: &(impl NeutronConfig + ?Sized),
    device_owner: &str,
    count: usize,
) -> ServiceResult<()> {
    if device_owner.starts_with("network:") || count <= cfg.neutron().max_fixed_ips_per_port {
        return Ok(());
    }
    Err(invalid_input(
        "Exceeded maximum amount of fixed ips per port.",
    ))
}

/// The host's interface addresses; 503 (retry is safe) when they cannot be
/// read, so a failure refuses rather than lets a tenant through.
pub fn read_host_addresses(cfg: &(impl NeutronConfig + ?Sized)) -> ServiceResult<Vec<IpAddr>> {
    (cfg.neutron().host_interface_addresses)().map_err(|e| {
        tracing::error!(error = %e, "reading the host's interface addresses");
        ServiceError::Unavailable(
            "Could not read the host's interface addresses; retry later.".into(),
        )
    })
}

/// Under the host driver, the first of `requested` (addresses a non-admin
/// asks for by value: a VIP, a port's fixed IP) configured on a host
/// interface. Such a subnet can only be an admin's (see
/// [`check_host_interfaces`]), but a shared one may still cover the host.
pub fn requested_host_address(
    cfg: &(impl NeutronConfig + ?Sized),
    ctx: &Context,
    requested: impl IntoIterator<Item = IpAddr>,
) -> ServiceResult<Option<IpAddr>> {
    if ctx.is_admin() || cfg.host_address_space() != HostAddressSpace::AllSubnets {
        return Ok(None);
    }
    let requested: Vec<IpAddr> = requested.into_iter().map(canonical).collect();
    if requested.is_empty() {
        return Ok(None);
    }
    let host = read_host_addresses(cfg)?;
    Ok(requested
        .into_iter()
        .find(|ip| host.iter().any(|h| canonical(*h) == *ip)))
}

/// A Neutron port asking for a host address: 400 `InvalidInput`.
pub fn check_port_addresses(
    cfg: &(impl NeutronConfig + ?Sized),
    ctx: &Context,
    requested: impl IntoIterator<Item = IpAddr>,
) -> ServiceResult<()> {
    match requested_host_address(cfg, ctx, requested)? {
        None => Ok(()),
        Some(ip) => Err(invalid_input(format!(
            "IP address {ip} is an address of this host; only an administrator may assign it."
        ))),
    }
}

/// Under the host driver, a non-admin's subnet must not contain an address
/// configured on one of the host's interfaces (else its load balancers could
/// bind the host's own addresses: publish loopback-only services on them or
/// squat ports host services need).
pub fn check_host_interfaces(
    cfg: &(impl NeutronConfig + ?Sized),
    ctx: &Context,
    cidr: &IpNet,
) -> ServiceResult<()> {
    if ctx.is_admin() || cfg.host_address_space() != HostAddressSpace::AllSubnets {
        return Ok(());
    }
    let addresses = read_host_addresses(cfg)?;
    if addresses.iter().any(|a| cidr.contains(&canonical(*a))) {
        return Err(invalid_input(format!(
            "Requested subnet with cidr: {cidr} contains an address of this host's own \
             interfaces; only an administrator may create subnets over the host's addresses."
        )));
    }
    Ok(())
}
