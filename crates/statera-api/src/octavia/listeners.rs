//! `/listeners`: a port on a load balancer's VIP.
//!
//! Create and update share one path: the request's attributes are merged into
//! a base (defaults on create, the stored listener on update) and the result
//! is validated whole, so the rules hold for every way a listener can change.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use ipnet::IpNet;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/listeners", get(list).post(create))
        .route("/listeners/{id}", get(show).put(update).delete(delete))
        .route("/listeners/{id}/stats", get(stats))
}

pub use statera_service::octavia::listeners::{
    DEFAULT_TIMEOUT_CLIENT_DATA, DEFAULT_TIMEOUT_MEMBER_CONNECT, DEFAULT_TIMEOUT_MEMBER_DATA,
    DEFAULT_TIMEOUT_TCP_INSPECT, DEFAULT_TLS_CIPHERS, TIMEOUT_MAX, default_alpn,
    default_tls_versions,
};

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

/// The mutable attributes of a listener as a request states them.
pub struct ListenerFields {
    name: Opt<String>,
    description: Opt<String>,
    admin_state_up: Opt<bool>,
    connection_limit: Opt<i64>,
    default_pool_id: Opt<Uuid>,
    insert_headers: Opt<Map<String, Value>>,
    timeout_client_data: Opt<i64>,
    timeout_member_connect: Opt<i64>,
    timeout_member_data: Opt<i64>,
    timeout_tcp_inspect: Opt<i64>,
    default_tls_container_ref: Opt<String>,
    sni_container_refs: Opt<Vec<String>>,
    client_ca_tls_container_ref: Opt<String>,
    client_authentication: Opt<ClientAuthentication>,
    client_crl_container_ref: Opt<String>,
    allowed_cidrs: Opt<Vec<IpNet>>,
    tls_ciphers: Opt<String>,
    tls_versions: Opt<Vec<TlsVersion>>,
    alpn_protocols: Opt<Vec<AlpnProtocol>>,
    hsts_max_age: Opt<i64>,
    hsts_include_subdomains: Opt<bool>,
    hsts_preload: Opt<bool>,
    tags: Opt<Vec<String>>,
}

fn enum_list<E: std::str::FromStr>(input: &mut Input, key: &str) -> ApiResult<Opt<Vec<E>>> {
    match input.string_list(key, 32)? {
        Opt::Set(items) => {
            if items.is_empty() {
                return Err(ApiError::invalid_field(
                    key,
                    "[]",
                    "Value should not be an empty list",
                ));
            }
            items
                .iter()
                .map(|s| {
                    s.parse::<E>()
                        .map_err(|_| ApiError::invalid_field(key, s, "Invalid value"))
                })
                .collect::<ApiResult<Vec<E>>>()
                .map(Opt::Set)
        }
        Opt::Null => Ok(Opt::Null),
        Opt::Absent => Ok(Opt::Absent),
    }
}

impl ListenerFields {
    pub fn parse(input: &mut Input) -> ApiResult<ListenerFields> {
        Ok(ListenerFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            connection_limit: input.int("connection_limit", -1, i64::from(i32::MAX))?,
            default_pool_id: input.uuid("default_pool_id")?,
            insert_headers: input.object("insert_headers")?,
            timeout_client_data: input.int("timeout_client_data", 0, TIMEOUT_MAX)?,
            timeout_member_connect: input.int("timeout_member_connect", 0, TIMEOUT_MAX)?,
            timeout_member_data: input.int("timeout_member_data", 0, TIMEOUT_MAX)?,
            timeout_tcp_inspect: input.int("timeout_tcp_inspect", 0, TIMEOUT_MAX)?,
            default_tls_container_ref: input.string("default_tls_container_ref", 255)?,
            sni_container_refs: input.string_list("sni_container_refs", 255)?,
            client_ca_tls_container_ref: input.string("client_ca_tls_container_ref", 255)?,
            client_authentication: input.enumeration(
                "client_authentication",
                ClientAuthentication::ALL,
                |e| e.as_str(),
            )?,
            client_crl_container_ref: input.string("client_crl_container_ref", 255)?,
            allowed_cidrs: input.cidr_list("allowed_cidrs")?,
            tls_ciphers: input.string("tls_ciphers", 2048)?,
            tls_versions: enum_list(input, "tls_versions")?,
            alpn_protocols: enum_list(input, "alpn_protocols")?,
            hsts_max_age: input.int("hsts_max_age", 0, i64::from(i32::MAX))?,
            hsts_include_subdomains: input.boolean("hsts_include_subdomains")?,
            hsts_preload: input.boolean("hsts_preload")?,
            tags: tags(input)?,
        })
    }

    /// Merge into `l`: absent keeps, null resets to the default, a value sets.
    pub fn apply(self, l: &mut Listener) -> ApiResult<()> {
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
        let tls_default = |v: Option<String>| {
            if tls {
                Some(v.unwrap_or_else(|| DEFAULT_TLS_CIPHERS.to_string()))
            } else {
                v
            }
        };
        if let Some(v) = self.tls_ciphers.update() {
            l.tls_ciphers = tls_default(v);
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
    h: Map<String, Value>,
) -> ApiResult<BTreeMap<String, String>> {
    if h.is_empty() {
        return Ok(BTreeMap::new());
    }
    if !protocol.is_http() {
        return Err(ApiError::validation(format!(
            "insert-headers is not a valid option for a {protocol} protocol listener."
        )));
    }
    let allowed = |k: &str| {
        HTTP_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(k))
            || (protocol == ListenerProtocol::TerminatedHttps
                && TLS_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(k)))
    };
    let bad: Vec<&str> = h
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed(k))
        .collect();
    if !bad.is_empty() {
        return Err(ApiError::validation(format!(
            "{} is not a valid option for insert_headers",
            bad.join(", ")
        )));
    }
    h.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) if s.chars().count() <= 255 => Ok((k, s)),
            Value::Bool(b) => Ok((
                k,
                if b {
                    "True".to_string()
                } else {
                    "False".to_string()
                },
            )),
            other => Err(ApiError::invalid_field(
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

/// Check a whole listener against the rules and its load balancer. `pools`
/// resolves pools that are not in the store yet (fully populated create).
pub fn validate(
    app: &AppState,
    s: &State,
    lb: &LoadBalancer,
    l: &Listener,
    extra_pools: &[Pool],
) -> ApiResult<()> {
    let p = l.protocol;
    let has_refs = l.default_tls_container_ref.is_some() || !l.sni_container_refs.is_empty();
    let tls = p == ListenerProtocol::TerminatedHttps;
    if has_refs && !(tls || p == ListenerProtocol::Prometheus) {
        return Err(ApiError::validation(format!(
            "Certificate container references are not allowed on {p} protocol listeners."
        )));
    }
    if tls && !has_refs {
        return Err(ApiError::validation(
            "An SNI or default certificate container reference must be provided for TERMINATED_HTTPS listeners.",
        ));
    }
    if !tls && (l.client_ca_tls_container_ref.is_some() || l.client_crl_container_ref.is_some()) {
        return Err(ApiError::validation(format!(
            "Certificate container references are not allowed on {p} protocol listeners."
        )));
    }
    if l.client_authentication != ClientAuthentication::None
        && l.client_ca_tls_container_ref.is_none()
    {
        return Err(ApiError::validation(
            "Client authentication setting NONE requires a client CA container reference."
                .replace("NONE", l.client_authentication.as_str()),
        ));
    }
    if l.client_crl_container_ref.is_some() && l.client_ca_tls_container_ref.is_none() {
        return Err(ApiError::validation(
            "A client authentication CA reference is required to specify a client authentication revocation list.",
        ));
    }
    if !tls && (l.hsts_max_age.is_some() || l.hsts_include_subdomains || l.hsts_preload) {
        return Err(ApiError::validation(
            "The HSTS feature can only be used for listeners using the TERMINATED_HTTPS protocol.",
        ));
    }
    if l.hsts_max_age.is_none() && (l.hsts_include_subdomains || l.hsts_preload) {
        return Err(ApiError::validation("HSTS options require hsts_max_age."));
    }
    if !tls && (l.tls_versions.is_some() || l.alpn_protocols.is_some() || l.tls_ciphers.is_some()) {
        return Err(ApiError::validation(format!(
            "TLS protocol options are not valid for a {p} protocol listener."
        )));
    }
    if let Some(c) = &l.tls_ciphers
        && !c
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-+!:@=_.".contains(ch))
    {
        return Err(ApiError::invalid_field(
            "tls_ciphers",
            c,
            "Invalid cipher string",
        ));
    }
    let vip_v4 = lb.vip_address.is_ipv4();
    for c in &l.allowed_cidrs {
        if matches!(c, IpNet::V4(_)) != vip_v4 {
            return Err(ApiError::validation(format!(
                "CIDR {c} IP version incompatible with all VIPs {} IP version.",
                lb.vip_address
            )));
        }
    }
    if !l.allowed_cidrs.is_empty() && !lb.vip_sg_ids.is_empty() {
        return Err(ApiError::validation(
            "Allowed CIDRs are not allowed when vip_sg_ids are set.",
        ));
    }
    if p == ListenerProtocol::Prometheus
        && (l.default_pool_id.is_some() || s.l7policies.children(l.id).next().is_some())
    {
        return Err(ApiError::validation(
            "Protocol PROMETHEUS listeners cannot have child objects.",
        ));
    }
    if let Some(pid) = l.default_pool_id {
        let pool = extra_pools
            .iter()
            .find(|x| x.id == pid)
            .cloned()
            .or_else(|| s.pools.get(&pid).map(|x| (**x).clone()))
            .filter(|x| x.loadbalancer_id == lb.id)
            .ok_or_else(|| ApiError::not_found("Pool", pid))?;
        if !p.accepts_pool(pool.protocol) {
            return Err(ApiError::validation(format!(
                "The pool protocol '{}' is invalid while the listener protocol is '{p}'.",
                pool.protocol
            )));
        }
    }
    for other in s.listeners.children(lb.id) {
        if other.id != l.id
            && other.protocol_port == l.protocol_port
            && other.protocol.family() == p.family()
        {
            return Err(ApiError::conflict(format!(
                "Another Listener on this Load Balancer is already using protocol {} and protocol_port {}",
                other.protocol, l.protocol_port
            )));
        }
    }
    if let Some(info) = app.settings.provider(&lb.provider)
        && info.unsupported_listener_protocols.contains(&p)
    {
        return Err(ApiError::not_implemented(format!(
            "Provider '{}' does not support a requested option: {p} protocol listeners",
            lb.provider
        )));
    }
    Ok(())
}

/// Parse a listener create body (`loadbalancer_id` taken by the caller).
pub fn parse_create(
    input: &mut Input,
) -> ApiResult<(ListenerProtocol, u16, Option<String>, ListenerFields)> {
    let protocol = input
        .enumeration("protocol", ListenerProtocol::ALL, |e| e.as_str())?
        .required("protocol")?;
    let port = input
        .int("protocol_port", 1, 65535)?
        .required("protocol_port")? as u16;
    let project_id = input.project_id()?;
    let fields = ListenerFields::parse(input)?;
    Ok((protocol, port, project_id, fields))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "listener")?;
    let lb_id = input.uuid("loadbalancer_id")?.required("loadbalancer_id")?;
    let (protocol, port, _project, fields) = parse_create(&mut input)?;
    input.finish()?;
    let id = app
        .store
        .write(|txn| {
            let s = txn.state();
            let lb = load_balancer(s, lb_id)?.clone();
            ctx.authorize("os_load-balancer_api:listener:post", &lb.project_id)?;
            let mut l = new_listener(&lb, protocol, port);
            fields.apply(&mut l)?;
            validate(&app, s, &lb, &l, &[])?;
            check_quota(
                &app.settings.quota_defaults,
                s,
                &lb.project_id,
                QuotaKind::Listener,
                1,
            )?;
            lock_lb(txn, lb.id, &[l.id])?;
            let id = l.id;
            txn.put(l)?;
            Ok::<_, ApiError>(id)
        })
        .await?;
    let s = app.store.snapshot();
    let l = s
        .listeners
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Listener", id))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"listener": render::listener(&s, l)})),
    ))
}

fn readable(ctx: &RequestContext, s: &State, raw: &str, rule: &str) -> ApiResult<Arc<Listener>> {
    let id = path_id(raw, "Listener")?;
    let l = s
        .listeners
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Listener", id))?;
    ctx.authorize(rule, &l.project_id)?;
    Ok(l)
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let scope = list_scope(&ctx, &q, "listener")?;
    let s = app.store.snapshot();
    let items = s
        .listeners
        .iter()
        .filter(|l| in_scope(&scope, &l.project_id))
        .collect::<Vec<_>>();
    app.collection(
        &ctx,
        &uri,
        "listeners",
        Some("listeners_links"),
        render::LISTENER_ATTRS,
    )
    .respond_lazy(
        items,
        &q,
        |x| render::listener_summary(x),
        |x| render::listener(&s, x),
    )
    .map(Json)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let l = readable(&ctx, &s, &id, "os_load-balancer_api:listener:get_one")?;
    Ok(Json(loadbalancers::one(
        "listener",
        render::listener(&s, &l),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Listener")?;
    let mut input = Input::from_root(body, "listener")?;
    let fields = ListenerFields::parse(&mut input)?;
    input.finish()?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let old = s
                .listeners
                .get(&id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Listener", id))?;
            ctx.authorize("os_load-balancer_api:listener:put", &old.project_id)?;
            let lb = load_balancer(s, old.loadbalancer_id)?.clone();
            let mut l = (*old).clone();
            fields.apply(&mut l)?;
            validate(&app, s, &lb, &l, &[])?;
            lock_lb(txn, lb.id, &[l.id])?;
            l.provisioning_status = ProvisioningStatus::PendingUpdate;
            l.updated_at = Some(now());
            txn.put(l)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    let s = app.store.snapshot();
    let l = s
        .listeners
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Listener", id))?;
    Ok(Json(json!({"listener": render::listener(&s, l)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Listener")?;
    app.store
        .write(|txn| {
            let s = txn.state().clone();
            let l = s
                .listeners
                .get(&id)
                .ok_or_else(|| ApiError::not_found("Listener", id))?;
            ctx.authorize("os_load-balancer_api:listener:delete", &l.project_id)?;
            lock_lb(txn, l.loadbalancer_id, &[id])?;
            mark_listener_deleted(txn, id)?;
            touch_updated::<Listener>(txn, &id, |l| l.updated_at = Some(now()))?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stats(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let l = readable(&ctx, &s, &id, "os_load-balancer_api:listener:get_stats")?;
    Ok(Json(loadbalancers::stats_body(
        s.listener_stats.get(&l.id).map(|x| **x).into_iter(),
    )))
}
