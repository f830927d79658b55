//! Pools: a set of members behind a listener (or an L7 policy).

use super::listeners::{DEFAULT_TLS_CIPHERS, default_alpn, default_tls_versions};
use super::{Deployment, find, list_owned, show_owned};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::{
    listeners_using_pool, load_balancer, lock_lb, mark_pool_deleted, touch_listener, touch_pool,
    touch_updated,
};
use crate::opt::Opt;
use crate::quota::{QuotaKind, check_quota};
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::sync::Arc;
use uuid::Uuid;

/// A `session_persistence` object as the request states it. It is read only
/// once the pool is found and the caller authorized (a PUT without `type`
/// keeps the pool's type), so what the wire layer found wrong in it travels
/// along and is reported then, in Octavia's order: an invalid `type`, a
/// missing `type`, then the other attributes, then the cookie name.
pub struct SessionPersistenceFields {
    pub kind: ServiceResult<Option<SessionPersistenceType>>,
    pub attributes: ServiceResult<SessionPersistenceAttributes>,
}

/// The attributes of a `session_persistence` object besides its `type`.
pub struct SessionPersistenceAttributes {
    pub cookie_name: Option<String>,
    pub persistence_timeout: Option<i64>,
    pub persistence_granularity: Option<String>,
}

/// The mutable attributes of a pool as a request states them.
pub struct PoolFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub lb_algorithm: Opt<LbAlgorithm>,
    pub session_persistence: Opt<SessionPersistenceFields>,
    pub tls_enabled: Opt<bool>,
    pub tls_container_ref: Opt<String>,
    pub ca_tls_container_ref: Opt<String>,
    pub crl_container_ref: Opt<String>,
    pub tls_ciphers: Opt<String>,
    pub tls_versions: Opt<Vec<String>>,
    pub alpn_protocols: Opt<Vec<String>>,
    pub tags: Opt<Vec<String>>,
}

fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

impl SessionPersistenceFields {
    /// The persistence the request asks for; `old` supplies the type when a
    /// PUT omits it.
    fn resolve(self, old: Option<&SessionPersistence>) -> ServiceResult<SessionPersistence> {
        let kind = match self.kind? {
            Some(k) => k,
            None => old
                .map(|o| o.kind)
                .ok_or_else(|| ServiceError::missing_field("type"))?,
        };
        let a = self.attributes?;
        if let Some(c) = &a.cookie_name
            && !is_cookie_name(c)
        {
            return Err(ServiceError::invalid_field(
                "cookie_name",
                c,
                "Invalid cookie name",
            ));
        }
        Ok(SessionPersistence {
            kind,
            cookie_name: a.cookie_name,
            persistence_timeout: a.persistence_timeout,
            persistence_granularity: a.persistence_granularity,
        })
    }
}

/// A non-empty list of `key`'s values, each parsed.
fn parse_list<T: std::str::FromStr>(key: &str, items: Vec<String>) -> ServiceResult<Vec<T>> {
    if items.is_empty() {
        return Err(ServiceError::invalid_field(
            key,
            "[]",
            "Value should not be an empty list",
        ));
    }
    items
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| ServiceError::invalid_field(key, s, "Invalid value"))
        })
        .collect()
}

impl PoolFields {
    pub fn has_algorithm(&self) -> bool {
        self.lb_algorithm.is_set()
    }

    /// Merge into `p`: absent keeps, null resets, a value sets.
    pub fn apply(self, p: &mut Pool) -> ServiceResult<()> {
        if let Some(v) = self.name.update() {
            p.name = v;
        }
        if let Some(v) = self.description.update() {
            p.description = v;
        }
        if let Some(v) = self.admin_state_up.update() {
            p.admin_state_up = v.unwrap_or(false);
        }
        match self.lb_algorithm {
            Opt::Set(a) => p.lb_algorithm = a,
            Opt::Null => return Err(ServiceError::missing_field("lb_algorithm")),
            Opt::Absent => {}
        }
        match self.session_persistence {
            Opt::Set(sp) => {
                p.session_persistence = Some(sp.resolve(p.session_persistence.as_ref())?)
            }
            Opt::Null => p.session_persistence = None,
            Opt::Absent => {}
        }
        if let Some(v) = self.tls_enabled.update() {
            p.tls_enabled = v.unwrap_or(false);
        }
        if let Some(v) = self.tls_container_ref.update() {
            p.tls_container_ref = v;
        }
        if let Some(v) = self.ca_tls_container_ref.update() {
            p.ca_tls_container_ref = v;
        }
        if let Some(v) = self.crl_container_ref.update() {
            p.crl_container_ref = v;
        }
        if let Some(v) = self.tls_ciphers.update() {
            p.tls_ciphers = v;
        }
        if let Some(v) = self.tls_versions.update() {
            p.tls_versions = v
                .map(|items| parse_list("tls_versions", items))
                .transpose()?;
        }
        if let Some(v) = self.alpn_protocols.update() {
            p.alpn_protocols = v
                .map(|items| parse_list("alpn_protocols", items))
                .transpose()?;
        }
        if let Some(v) = self.tags.update() {
            p.tags = v.unwrap_or_default();
        }
        // TLS defaults apply to pools that re-encrypt.
        if p.tls_enabled {
            p.tls_ciphers
                .get_or_insert_with(|| DEFAULT_TLS_CIPHERS.to_string());
            p.tls_versions.get_or_insert_with(default_tls_versions);
            p.alpn_protocols.get_or_insert_with(default_alpn);
        }
        Ok(())
    }
}

/// A new pool of load balancer `lb` with every default in place.
pub fn new_pool(lb: &LoadBalancer, protocol: PoolProtocol, algorithm: LbAlgorithm) -> Pool {
    Pool {
        id: Uuid::new_v4(),
        project_id: lb.project_id.clone(),
        loadbalancer_id: lb.id,
        name: None,
        description: None,
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        protocol,
        lb_algorithm: algorithm,
        session_persistence: None,
        tls_enabled: false,
        tls_container_ref: None,
        ca_tls_container_ref: None,
        crl_container_ref: None,
        tls_ciphers: None,
        tls_versions: None,
        alpn_protocols: None,
        tags: Vec::new(),
        created_at: now(),
        updated_at: None,
    }
}

/// Check a whole pool against the rules.
pub fn validate(p: &Pool) -> ServiceResult<()> {
    if let Some(sp) = &p.session_persistence {
        let datagram = p.protocol.is_datagram();
        match (sp.kind, &sp.cookie_name) {
            (SessionPersistenceType::AppCookie, None) => {
                return Err(ServiceError::validation(
                    "Field `cookie_name` must be specified when using the `APP_COOKIE` session persistence type.",
                ));
            }
            (SessionPersistenceType::AppCookie, Some(_)) => {}
            (kind, Some(_)) => {
                return Err(ServiceError::validation(format!(
                    "Cookie names are not supported for {kind} persistence."
                )));
            }
            _ => {}
        }
        if datagram && sp.kind != SessionPersistenceType::SourceIp {
            return Err(ServiceError::validation(format!(
                "Session persistence of type {} is not supported for {} protocol pools.",
                sp.kind, p.protocol
            )));
        }
        if !datagram && (sp.persistence_timeout.is_some() || sp.persistence_granularity.is_some()) {
            return Err(ServiceError::validation(format!(
                "persistence_timeout and persistence_granularity is only for UDP and SCTP protocol pools. Pool protocol: {}",
                p.protocol
            )));
        }
        if let Some(g) = &sp.persistence_granularity
            && g.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ServiceError::invalid_field(
                "persistence_granularity",
                g,
                "Value should be an IP netmask",
            ));
        }
    }
    if p.crl_container_ref.is_some() && p.ca_tls_container_ref.is_none() {
        return Err(ServiceError::validation(
            "A CA reference is required to specify a certificate revocation list.",
        ));
    }
    // TLS options without tls_enabled are kept, as Octavia does: they apply
    // once re-encryption is turned on (and turning it off keeps them).
    Ok(())
}

/// A pool create body, parsed: where the pool goes (a load balancer, a
/// listener whose default pool it becomes, or both when they agree).
pub struct NewPool {
    pub loadbalancer_id: Option<Uuid>,
    pub listener_id: Option<Uuid>,
    pub protocol: PoolProtocol,
    pub fields: PoolFields,
}

/// `POST /pools`: PENDING_CREATE, its load balancer locked; given a
/// listener, it becomes the listener's default pool (the listener
/// PENDING_UPDATE).
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    new: NewPool,
) -> ServiceResult<Pool> {
    let rule = "os_load-balancer_api:pool:post";
    let listener = match new.listener_id {
        Some(lid) => {
            let l = txn
                .get::<Listener>(&lid)
                .ok_or_else(|| ServiceError::not_found("Listener", lid))?;
            // Before comparing it with the load balancer, so that another
            // project's listener says nothing about itself.
            ctx.authorize(rule, &l.project_id)?;
            Some(l)
        }
        None => None,
    };
    let lb_id = match (new.loadbalancer_id, &listener) {
        (Some(a), Some(l)) if a != l.loadbalancer_id => {
            return Err(ServiceError::validation(
                "Listener and load balancer do not match.",
            ));
        }
        (Some(a), _) => a,
        (None, Some(l)) => l.loadbalancer_id,
        (None, None) => {
            return Err(ServiceError::validation(
                "Either loadbalancer_id or listener_id must be specified.",
            ));
        }
    };
    let lb = load_balancer(txn, lb_id)?;
    ctx.authorize(rule, &lb.project_id)?;
    let mut p = new_pool(&lb, new.protocol, LbAlgorithm::RoundRobin);
    new.fields.apply(&mut p)?;
    validate(&p)?;
    super::check_pool_tls_supported(d, &lb, &p)?;
    if let Some(l) = &listener {
        if let Some(existing) = l.default_pool_id {
            return Err(ServiceError::conflict(format!(
                "Listener {} is already using default pool {existing}.",
                l.id
            )));
        }
        if !l.protocol.accepts_pool(p.protocol) {
            return Err(ServiceError::validation(format!(
                "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                p.protocol, l.protocol
            )));
        }
    }
    check_quota(d.quota_defaults(), txn, &lb.project_id, QuotaKind::Pool, 1)?;
    lock_lb(txn, lb.id, &[p.id])?;
    txn.put(p.clone())?;
    if let Some(l) = listener {
        let mut l = (*l).clone();
        l.default_pool_id = Some(p.id);
        let lid = l.id;
        txn.put(l)?;
        touch_listener(txn, lid)?;
    }
    Ok(p)
}

fn get(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Pool>> {
    find(s, id, "Pool")
}

/// `GET /pools/{id}`.
pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Pool>> {
    show_owned(ctx, s, id, "Pool", "pool")
}

/// `GET /pools`: the pools the caller may list (of project `asked` when
/// given), in id order.
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
    asked: Option<&str>,
) -> ServiceResult<Vec<Arc<Pool>>> {
    list_owned(ctx, s, asked, "pool")
}

/// `PUT /pools/{id}`: `fields` merged, the whole pool validated,
/// PENDING_UPDATE (and the listeners using it).
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    id: Uuid,
    fields: PoolFields,
) -> ServiceResult<Pool> {
    let old = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:pool:put", &old.project_id)?;
    let mut p = (*old).clone();
    fields.apply(&mut p)?;
    validate(&p)?;
    super::check_pool_tls_supported(d, &*load_balancer(txn, p.loadbalancer_id)?, &p)?;
    lock_lb(txn, p.loadbalancer_id, &[p.id])?;
    p.provisioning_status = ProvisioningStatus::PendingUpdate;
    p.updated_at = Some(now());
    txn.put(p.clone())?;
    touch_pool(txn, id)?;
    Ok(p)
}

/// `DELETE /pools/{id}`: refused while an L7 policy redirects to it; the
/// listeners using it as default pool lose it (PENDING_UPDATE); the pool,
/// its members and its monitor PENDING_DELETE.
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let p = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:pool:delete", &p.project_id)?;
    if let Some(pol) = txn
        .list_by_project::<L7Policy>(None)
        .iter()
        .find(|pol| pol.redirect_pool_id == Some(id))
    {
        return Err(ServiceError::conflict(format!(
            "Pool {id} is in use by L7 policy {}",
            pol.id
        )));
    }
    lock_lb(txn, p.loadbalancer_id, &[id])?;
    for l in listeners_using_pool(txn, p.loadbalancer_id, id) {
        let mut l = (*l).clone();
        l.default_pool_id = None;
        l.provisioning_status = ProvisioningStatus::PendingUpdate;
        l.updated_at = Some(now());
        txn.put(l)?;
    }
    mark_pool_deleted(txn, id)?;
    touch_updated::<Pool>(txn, &id, |p| p.updated_at = Some(now()))
}
