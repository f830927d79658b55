//! Octavia's resources as operations: each takes the caller's [`Context`],
//! the store (through [`StoreRead`]/[`StoreWrite`]) and typed input, checks
//! the policy, validates on the model, locks and writes. The wire layer
//! (statera-api) reads requests into the typed input and renders the result.
//!
//! Moved so far: health monitors, L7 rules, L7 policies, members, quotas,
//! pools, listeners, load balancers (their create takes the VIP from the
//! caller's `plug`: statera-api's Neutron IPAM), flavors and availability
//! zones with their profiles (one implementation, [`profiles`], over the two
//! kinds), amphorae (the admin view of the data-plane instances), providers
//! (what the deployment offers, by policy).

pub mod amphorae;
pub mod availability_zones;
pub mod flavors;
pub mod graph;
pub mod healthmonitors;
pub mod l7policies;
pub mod l7rules;
pub mod listeners;
pub mod loadbalancers;
pub mod members;
pub mod pools;
pub mod profiles;
pub mod providers;
pub mod quotas;

use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::quota::QuotaDefaults;
use crate::store::{Owned, StoreRead};
use statera_model::*;
use std::sync::Arc;
use uuid::Uuid;

/// What operations need to know about the deployment (statera-api's
/// `ApiSettings` implements it).
pub trait Deployment {
    fn quota_defaults(&self) -> &QuotaDefaults;
    /// Health monitor types provider `provider` cannot run (501).
    fn unsupported_monitor_types(&self, provider: &str) -> &[HealthMonitorType];
    /// Listener protocols provider `provider` cannot run (501); none unless
    /// the deployment says so.
    fn unsupported_listener_protocols(&self, _provider: &str) -> &[ListenerProtocol] {
        &[]
    }
    /// Whether provider `provider` speaks TLS to members (`tls_enabled`
    /// pools; 501 otherwise, never a pool served in plain text).
    fn supports_pool_tls(&self, _provider: &str) -> bool {
        true
    }
    /// Whether provider `provider` speaks HTTP/2 to members (a pool over
    /// TLS whose ALPN names only `h2`; 501 otherwise).
    fn supports_pool_h2(&self, _provider: &str) -> bool {
        true
    }
    /// Addresses no member or monitor may point at (Octavia's `reserved_ips`).
    fn reserved_ips(&self) -> &[std::net::IpAddr];
    /// Sockets Statera itself listens on (its API): no member or monitor
    /// may point at them.
    fn own_sockets(&self) -> &[std::net::SocketAddr];
}

/// What a load balancer's create asks of the deployment's providers.
pub trait Providers: Deployment {
    /// The provider of a load balancer that names none (and no flavor).
    fn default_provider(&self) -> &str;
    /// For an enabled provider (an alias of the default included): whether
    /// load balancers can be created with it here; `None` if not enabled.
    fn provider_available(&self, name: &str) -> Option<bool>;
    /// The flavor metadata keys (name, description) enabled provider `name`
    /// accepts; `None` if it is not enabled.
    fn flavor_capabilities(&self, name: &str) -> Option<&[(String, String)]>;
    /// The availability-zone metadata keys, likewise.
    fn availability_zone_capabilities(&self, name: &str) -> Option<&[(String, String)]>;
    /// The enabled providers (name, description), in the deployment's order.
    fn provider_list(&self) -> Vec<(String, String)>;
    /// The provider still accepts a flavor's metadata (501 for what it
    /// cannot build, as Octavia checks at create).
    fn check_flavor_data(&self, provider: &str, flavor_data: &str) -> ServiceResult<()> {
        flavors::check_data(self, provider, flavor_data)
    }
}

/// Octavia's rule `os_load-balancer_api:<resource>:<action>` on the
/// caller's own project: what the admin resources (flavors, availability
/// zones, their profiles, amphorae) and the provider reads ask.
pub fn authorize_own(ctx: &Context, resource: &str, action: &str) -> ServiceResult<()> {
    ctx.authorize(
        &format!("os_load-balancer_api:{resource}:{action}"),
        ctx.caller.project(),
    )
}

/// Which projects' objects a list of `resource` (`loadbalancer`, …) shows:
/// `None` = all (`os_load-balancer_api:RESOURCE:get_all-global`), else the
/// one project (`asked`, or the caller's own), which `…:get_all` must allow
/// (asking for another is 403).
pub fn list_scope(
    ctx: &Context,
    asked: Option<&str>,
    resource: &str,
) -> ServiceResult<Option<String>> {
    if ctx.allowed(
        &format!("os_load-balancer_api:{resource}:get_all-global"),
        "",
    ) {
        return Ok(None);
    }
    let project = asked.unwrap_or(ctx.caller.project()).to_string();
    ctx.authorize(
        &format!("os_load-balancer_api:{resource}:get_all"),
        &project,
    )?;
    Ok(Some(project))
}

/// The objects of kind `R` the caller may list (`…:RESOURCE:get_all`, of
/// project `asked` when given; see [`list_scope`]), in id order.
pub fn list_owned<R: Owned>(
    ctx: &Context,
    s: &impl StoreRead,
    asked: Option<&str>,
    resource: &str,
) -> ServiceResult<Vec<Arc<R>>> {
    let scope = list_scope(ctx, asked, resource)?;
    Ok(s.list_by_project::<R>(scope.as_deref()))
}

/// The object `id` of kind `R`, or 404 `<name> <id> not found.`.
pub fn find<R: Owned<Key = Uuid>>(
    s: &impl StoreRead,
    id: Uuid,
    name: &str,
) -> ServiceResult<Arc<R>> {
    s.get::<R>(&id)
        .ok_or_else(|| ServiceError::not_found(name, id))
}

/// `GET /RESOURCEs/{id}`: the object `id` of kind `R` (404 `<name> <id> not
/// found.`), which `…:RESOURCE:get_one` must allow.
pub fn show_owned<R: Owned<Key = Uuid>>(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
    name: &str,
    resource: &str,
) -> ServiceResult<Arc<R>> {
    let o = find::<R>(s, id, name)?;
    ctx.authorize(
        &format!("os_load-balancer_api:{resource}:get_one"),
        o.project_id(),
    )?;
    Ok(o)
}

/// 501 when `p` re-encrypts (`tls_enabled`) and the load balancer's
/// provider cannot, or asks for HTTP/2 only to members and the provider
/// speaks HTTP/1.1 to them.
pub fn check_pool_tls_supported(
    d: &impl Deployment,
    lb: &LoadBalancer,
    p: &Pool,
) -> ServiceResult<()> {
    if p.tls_enabled && !d.supports_pool_tls(&lb.provider) {
        return Err(ServiceError::not_implemented(format!(
            "Provider '{}' does not support a requested option: pools over TLS (tls_enabled)",
            lb.provider
        )));
    }
    let h2_only = p.alpn_protocols.as_ref().is_some_and(|alpn| {
        !alpn.is_empty() && alpn.iter().all(|a| *a == statera_model::AlpnProtocol::H2)
    });
    if p.tls_enabled && h2_only && !d.supports_pool_h2(&lb.provider) {
        return Err(ServiceError::not_implemented(format!(
            "Provider '{}' does not support a requested option: HTTP/2 to members \
             (alpn_protocols naming only h2)",
            lb.provider
        )));
    }
    Ok(())
}

/// 501 when the load balancer's provider cannot run monitors of `kind`.
pub fn check_monitor_supported(
    d: &impl Deployment,
    lb: &LoadBalancer,
    kind: HealthMonitorType,
) -> ServiceResult<()> {
    if d.unsupported_monitor_types(&lb.provider).contains(&kind) {
        return Err(ServiceError::not_implemented(format!(
            "Provider '{}' does not support a requested option: {kind} health monitors",
            lb.provider
        )));
    }
    Ok(())
}
