//! Neutron's per-project quotas and host-address rules, as the handlers not
//! yet on the service layer call them; the rules are
//! `statera_service::neutron::quotas`.

use crate::{ApiResult, AppState, RequestContext};
use ipnet::IpNet;
use statera_service::neutron::quotas as service;
pub use statera_service::neutron::quotas::{
    HostAddressReader, MAX_FIXED_IPS_PER_PORT, NeutronConfig, NeutronQuotas, NeutronSettings,
    QuotaResource as Resource, usage,
};
use statera_store::State;
use std::net::IpAddr;

impl NeutronConfig for crate::ApiSettings {
    fn neutron(&self) -> &NeutronSettings {
        &self.neutron
    }
    fn host_address_space(&self) -> statera_model::addressing::HostAddressSpace {
        self.host_address_space
    }
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
    Ok(service::check(&*app.settings, s, project, r, adding)?)
}

/// Neutron's `max_fixed_ips_per_port` (400 `InvalidInput`).
pub fn check_fixed_ips_count(app: &AppState, device_owner: &str, count: usize) -> ApiResult<()> {
    Ok(service::check_fixed_ips_count(
        &*app.settings,
        device_owner,
        count,
    )?)
}

/// The address space requests allocate in.
pub fn address_space(app: &AppState) -> ApiResult<super::ipam::AddressSpace> {
    Ok(super::ipam::address_space(&*app.settings)?)
}

/// A Neutron port asking for a host address: 400 `InvalidInput`.
pub fn check_port_addresses(
    app: &AppState,
    ctx: &RequestContext,
    requested: impl IntoIterator<Item = IpAddr>,
) -> ApiResult<()> {
    Ok(service::check_port_addresses(
        &*app.settings,
        &ctx.service,
        requested,
    )?)
}

/// Under the host driver, a non-admin's subnet must not contain an address
/// of the host's own interfaces.
pub fn check_host_interfaces(app: &AppState, ctx: &RequestContext, cidr: &IpNet) -> ApiResult<()> {
    Ok(service::check_host_interfaces(
        &*app.settings,
        &ctx.service,
        cidr,
    )?)
}
