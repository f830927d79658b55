//! Listeners: a port on a load balancer's VIP.
//!
//! Create and update share one path: the request's attributes are merged into
//! a base (defaults on create, the stored listener on update) and the result
//! is validated whole, so the rules hold for every way a listener can change.

use super::{Deployment, find, list_owned, show_owned};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::{load_balancer, lock_lb, mark_listener_deleted, touch_updated};
use crate::opt::Opt;
use crate::quota::{QuotaKind, check_quota};
use crate::store::{StoreRead, StoreWrite};
use ipnet::IpNet;
use statera_model::*;
/// The counters a listener's data plane last reported.
pub use statera_store::ListenerStats;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

pub const TIMEOUT_MAX: i64 = 2_073_600_000;
pub const DEFAULT_TIMEOUT_CLIENT_DATA: i64 = 50_000;
pub const DEFAULT_TIMEOUT_MEMBER_CONNECT: i64 = 5_000;
pub const DEFAULT_TIMEOUT_MEMBER_DATA: i64 = 50_000;
pub const DEFAULT_TIMEOUT_TCP_INSPECT: i64 = 0;
pub const DEFAULT_TLS_CIPHERS: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

/// The TLS versions a TLS listener (or a re-encrypting pool) gets by default.
pub fn default_tls_versions() -> Vec<TlsVersion> {
    vec![TlsVersion::TlsV1_2, TlsVersion::TlsV1_3]
}

/// The ALPN protocols a TLS listener (or a re-encrypting pool) gets by default.
pub fn default_alpn() -> Vec<AlpnProtocol> {
    vec![AlpnProtocol::H2, AlpnProtocol::Http11, AlpnProtocol::Http10]
}

const HTTP_HEADERS: &[&str] = &[
    "X-Forwarded-For",
    "X-Forwarded-Port",
    "X-Forwarded-Proto",
    "X-Forwarded-IP",
    "X-Client-IP",
    "X-Real-IP",
];
const TLS_HEADERS: &[&str] = &[
    "X-SSL-Client-Verify",
    "X-SSL-Client-Has-Cert",
    "X-SSL-Client-DN",
    "X-SSL-Client-CN",
    "X-SSL-Issuer",
    "X-SSL-Client-SHA1",
    "X-SSL-Client-Not-Before",
    "X-SSL-Client-Not-After",
];

/// One `insert_headers` value as the request states it: its text (a
/// boolean reads as `True`/`False`), or, as `Err`, what stood there instead
/// of a string, as the request wrote it (refused once the header names are
/// checked).
pub type HeaderValue = Result<String, String>;

/// The mutable attributes of a listener as a request states them.
pub struct ListenerFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub connection_limit: Opt<i64>,
    pub default_pool_id: Opt<Uuid>,
    /// In the request's order.
    pub insert_headers: Opt<Vec<(String, HeaderValue)>>,
    pub timeout_client_data: Opt<i64>,
    pub timeout_member_connect: Opt<i64>,
    pub timeout_member_data: Opt<i64>,
    pub timeout_tcp_inspect: Opt<i64>,
    pub default_tls_container_ref: Opt<String>,
    pub sni_container_refs: Opt<Vec<String>>,
    pub client_ca_tls_container_ref: Opt<String>,
    pub client_authentication: Opt<ClientAuthentication>,
    pub client_crl_container_ref: Opt<String>,
    pub allowed_cidrs: Opt<Vec<IpNet>>,
    pub tls_ciphers: Opt<String>,
    pub tls_versions: Opt<Vec<TlsVersion>>,
    pub alpn_protocols: Opt<Vec<AlpnProtocol>>,
    pub hsts_max_age: Opt<i64>,
    pub hsts_include_subdomains: Opt<bool>,
    pub hsts_preload: Opt<bool>,
    pub tags: Opt<Vec<String>>,
}

impl ListenerFields {
    /// Merge into `l`: absent keeps, null resets to the default, a value sets.
    pub fn apply(self, l: &mut Listener) -> ServiceResult<()> {
        fn set<T>(slot: &mut T, v: Opt<T>, default: impl FnOnce() -> T) {
            match v {
                Opt::Absent => {}
                Opt::Null => *slot = default(),
                Opt::Set(v) => *slot = v,
            }
        }
        fn set_opt<T>(slot: &mut Option<T>, v: Opt<T>) {
            if let Some(v) = v.update() {
                *slot = v;
            }
        }
        let tls = l.protocol == ListenerProtocol::TerminatedHttps;
        set_opt(&mut l.name, self.name);
        set_opt(&mut l.description, self.description);
        set(&mut l.admin_state_up, self.admin_state_up, || false);
        set(&mut l.connection_limit, self.connection_limit, || -1);
        set_opt(&mut l.default_pool_id, self.default_pool_id);
        if let Some(h) = self.insert_headers.update() {
            l.insert_headers = insert_headers(l.protocol, h.unwrap_or_default())?;
        }
        set(&mut l.timeout_client_data, self.timeout_client_data, || {
            DEFAULT_TIMEOUT_CLIENT_DATA
        });
        set(
            &mut l.timeout_member_connect,
            self.timeout_member_connect,
            || DEFAULT_TIMEOUT_MEMBER_CONNECT,
        );
        set(&mut l.timeout_member_data, self.timeout_member_data, || {
            DEFAULT_TIMEOUT_MEMBER_DATA
        });
        set(&mut l.timeout_tcp_inspect, self.timeout_tcp_inspect, || {
            DEFAULT_TIMEOUT_TCP_INSPECT
        });
        set_opt(
            &mut l.default_tls_container_ref,
            self.default_tls_container_ref,
        );
        set(&mut l.sni_container_refs, self.sni_container_refs, Vec::new);
        set_opt(
            &mut l.client_ca_tls_container_ref,
            self.client_ca_tls_container_ref,
        );
        set(
            &mut l.client_authentication,
            self.client_authentication,
            || ClientAuthentication::None,
        );
        set_opt(
            &mut l.client_crl_container_ref,
            self.client_crl_container_ref,
        );
        set(&mut l.allowed_cidrs, self.allowed_cidrs, Vec::new);
        if let Some(v) = self.tls_ciphers.update() {
            l.tls_ciphers = if tls {
                Some(v.unwrap_or_else(|| DEFAULT_TLS_CIPHERS.to_string()))
            } else {
                v
            };
        }
        if let Some(v) = self.tls_versions.update() {
            l.tls_versions = if tls {
                Some(v.unwrap_or_else(default_tls_versions))
            } else {
                v
            };
        }
        if let Some(v) = self.alpn_protocols.update() {
            l.alpn_protocols = if tls {
                Some(v.unwrap_or_else(default_alpn))
            } else {
                v
            };
        }
        set_opt(&mut l.hsts_max_age, self.hsts_max_age);
        set(
            &mut l.hsts_include_subdomains,
            self.hsts_include_subdomains,
            || false,
        );
        set(&mut l.hsts_preload, self.hsts_preload, || false);
        set(&mut l.tags, self.tags, Vec::new);
        Ok(())
    }
}

/// Check and normalise `insert_headers` for a listener of `protocol`.
fn insert_headers(
    protocol: ListenerProtocol,
    h: Vec<(String, HeaderValue)>,
) -> ServiceResult<BTreeMap<String, String>> {
    if h.is_empty() {
        return Ok(BTreeMap::new());
    }
    if !protocol.is_http() {
        return Err(ServiceError::validation(format!(
            "insert-headers is not a valid option for a {protocol} protocol listener."
        )));
    }
    let allowed = |k: &str| {
        HTTP_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(k))
            || (protocol == ListenerProtocol::TerminatedHttps
                && TLS_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(k)))
    };
    let bad: Vec<&str> = h
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !allowed(k))
        .collect();
    if !bad.is_empty() {
        return Err(ServiceError::validation(format!(
            "{} is not a valid option for insert_headers",
            bad.join(", ")
        )));
    }
    h.into_iter()
        .map(|(k, v)| match v {
            Ok(text) => Ok((k, text)),
            Err(other) => Err(ServiceError::invalid_field(
                "insert_headers",
                other,
                "Values must be strings",
            )),
        })
        .collect()
}

/// A new listener of `protocol` on `port` with every default in place.
pub fn new_listener(lb: &LoadBalancer, protocol: ListenerProtocol, port: u16) -> Listener {
    let tls = protocol == ListenerProtocol::TerminatedHttps;
    Listener {
        id: Uuid::new_v4(),
        project_id: lb.project_id.clone(),
        loadbalancer_id: lb.id,
        name: None,
        description: None,
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        protocol,
        protocol_port: port,
        connection_limit: -1,
        default_pool_id: None,
        insert_headers: BTreeMap::new(),
        timeout_client_data: DEFAULT_TIMEOUT_CLIENT_DATA,
        timeout_member_connect: DEFAULT_TIMEOUT_MEMBER_CONNECT,
        timeout_member_data: DEFAULT_TIMEOUT_MEMBER_DATA,
        timeout_tcp_inspect: DEFAULT_TIMEOUT_TCP_INSPECT,
        default_tls_container_ref: None,
        sni_container_refs: Vec::new(),
        client_ca_tls_container_ref: None,
        client_authentication: ClientAuthentication::None,
        client_crl_container_ref: None,
        allowed_cidrs: Vec::new(),
        tls_ciphers: tls.then(|| DEFAULT_TLS_CIPHERS.to_string()),
        tls_versions: tls.then(default_tls_versions),
        alpn_protocols: tls.then(default_alpn),
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
        tags: Vec::new(),
        created_at: now(),
        updated_at: None,
    }
}

/// Check a whole listener against the rules and its load balancer.
/// `extra_pools` resolves pools that are not in the store yet (fully
/// populated create).
pub fn validate(
    d: &impl Deployment,
    s: &impl StoreRead,
    lb: &LoadBalancer,
    l: &Listener,
    extra_pools: &[Pool],
) -> ServiceResult<()> {
    let p = l.protocol;
    let has_refs = l.default_tls_container_ref.is_some() || !l.sni_container_refs.is_empty();
    let tls = p == ListenerProtocol::TerminatedHttps;
    if has_refs && !(tls || p == ListenerProtocol::Prometheus) {
        return Err(ServiceError::validation(format!(
            "Certificate container references are not allowed on {p} protocol listeners."
        )));
    }
    if tls && !has_refs {
        return Err(ServiceError::validation(
            "An SNI or default certificate container reference must be provided for TERMINATED_HTTPS listeners.",
        ));
    }
    if !tls && (l.client_ca_tls_container_ref.is_some() || l.client_crl_container_ref.is_some()) {
        return Err(ServiceError::validation(format!(
            "Certificate container references are not allowed on {p} protocol listeners."
        )));
    }
    if l.client_authentication != ClientAuthentication::None
        && l.client_ca_tls_container_ref.is_none()
    {
        return Err(ServiceError::validation(
            "Client authentication setting NONE requires a client CA container reference."
                .replace("NONE", l.client_authentication.as_str()),
        ));
    }
    if l.client_crl_container_ref.is_some() && l.client_ca_tls_container_ref.is_none() {
        return Err(ServiceError::validation(
            "A client authentication CA reference is required to specify a client authentication revocation list.",
        ));
    }
    if !tls && (l.hsts_max_age.is_some() || l.hsts_include_subdomains || l.hsts_preload) {
        return Err(ServiceError::validation(
            "The HSTS feature can only be used for listeners using the TERMINATED_HTTPS protocol.",
        ));
    }
    if l.hsts_max_age.is_none() && (l.hsts_include_subdomains || l.hsts_preload) {
        return Err(ServiceError::validation(
            "HSTS options require hsts_max_age.",
        ));
    }
    if !tls && (l.tls_versions.is_some() || l.alpn_protocols.is_some() || l.tls_ciphers.is_some()) {
        return Err(ServiceError::validation(format!(
            "TLS protocol options are not valid for a {p} protocol listener."
        )));
    }
    if let Some(c) = &l.tls_ciphers
        && !c
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-+!:@=_.".contains(ch))
    {
        return Err(ServiceError::invalid_field(
            "tls_ciphers",
            c,
            "Invalid cipher string",
        ));
    }
    let vip_v4 = lb.vip_address.is_ipv4();
    for c in &l.allowed_cidrs {
        if matches!(c, IpNet::V4(_)) != vip_v4 {
            return Err(ServiceError::validation(format!(
                "CIDR {c} IP version incompatible with all VIPs {} IP version.",
                lb.vip_address
            )));
        }
    }
    if !l.allowed_cidrs.is_empty() && !lb.vip_sg_ids.is_empty() {
        return Err(ServiceError::validation(
            "Allowed CIDRs are not allowed when vip_sg_ids are set.",
        ));
    }
    if p == ListenerProtocol::Prometheus
        && (l.default_pool_id.is_some() || !s.children::<L7Policy>(l.id).is_empty())
    {
        return Err(ServiceError::validation(
            "Protocol PROMETHEUS listeners cannot have child objects.",
        ));
    }
    if let Some(pid) = l.default_pool_id {
        let pool = extra_pools
            .iter()
            .find(|x| x.id == pid)
            .cloned()
            .or_else(|| s.get::<Pool>(&pid).map(|x| (*x).clone()))
            .filter(|x| x.loadbalancer_id == lb.id)
            .ok_or_else(|| ServiceError::not_found("Pool", pid))?;
        if !p.accepts_pool(pool.protocol) {
            return Err(ServiceError::validation(format!(
                "The pool protocol '{}' is invalid while the listener protocol is '{p}'.",
                pool.protocol
            )));
        }
    }
    for other in s.children::<Listener>(lb.id) {
        if other.id != l.id
            && other.protocol_port == l.protocol_port
            && other.protocol.family() == p.family()
        {
            return Err(ServiceError::conflict(format!(
                "Another Listener on this Load Balancer is already using protocol {} and protocol_port {}",
                other.protocol, l.protocol_port
            )));
        }
    }
    if d.unsupported_listener_protocols(&lb.provider).contains(&p) {
        return Err(ServiceError::not_implemented(format!(
            "Provider '{}' does not support a requested option: {p} protocol listeners",
            lb.provider
        )));
    }
    Ok(())
}

/// A listener create body, parsed.
pub struct NewListener {
    pub loadbalancer_id: Uuid,
    pub protocol: ListenerProtocol,
    pub protocol_port: u16,
    pub fields: ListenerFields,
}

/// `POST /listeners`: PENDING_CREATE, its load balancer locked.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    new: NewListener,
) -> ServiceResult<Listener> {
    let lb = load_balancer(txn, new.loadbalancer_id)?;
    ctx.authorize("os_load-balancer_api:listener:post", &lb.project_id)?;
    let mut l = new_listener(&lb, new.protocol, new.protocol_port);
    new.fields.apply(&mut l)?;
    validate(d, txn, &lb, &l, &[])?;
    check_quota(
        d.quota_defaults(),
        txn,
        &lb.project_id,
        QuotaKind::Listener,
        1,
    )?;
    lock_lb(txn, lb.id, &[l.id])?;
    txn.put(l.clone())?;
    Ok(l)
}

fn get(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Listener>> {
    find(s, id, "Listener")
}

/// `GET /listeners/{id}`.
pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Listener>> {
    show_owned(ctx, s, id, "Listener", "listener")
}

/// `GET /listeners`: the listeners the caller may list (of project `asked`
/// when given), in id order.
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
    asked: Option<&str>,
) -> ServiceResult<Vec<Arc<Listener>>> {
    list_owned(ctx, s, asked, "listener")
}

/// `GET /listeners/{id}/stats`: the listener's last reported counters
/// (`None` before any report).
pub fn stats(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Option<ListenerStats>> {
    let l = get(s, id)?;
    ctx.authorize("os_load-balancer_api:listener:get_stats", &l.project_id)?;
    Ok(s.get::<ListenerStats>(&l.id).map(|x| *x))
}

/// `PUT /listeners/{id}`: `fields` merged, the whole listener validated
/// against its load balancer, PENDING_UPDATE.
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    id: Uuid,
    fields: ListenerFields,
) -> ServiceResult<Listener> {
    let old = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:listener:put", &old.project_id)?;
    let lb = load_balancer(txn, old.loadbalancer_id)?;
    let mut l = (*old).clone();
    fields.apply(&mut l)?;
    validate(d, txn, &lb, &l, &[])?;
    lock_lb(txn, lb.id, &[l.id])?;
    l.provisioning_status = ProvisioningStatus::PendingUpdate;
    l.updated_at = Some(now());
    txn.put(l.clone())?;
    Ok(l)
}

/// `DELETE /listeners/{id}`: the listener, its L7 policies and their rules
/// PENDING_DELETE.
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let l = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:listener:delete", &l.project_id)?;
    lock_lb(txn, l.loadbalancer_id, &[id])?;
    mark_listener_deleted(txn, id)?;
    touch_updated::<Listener>(txn, &id, |l| l.updated_at = Some(now()))
}
