//! `/pools`: a set of members behind a listener (or an L7 policy).

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Map, Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pools", get(list).post(create))
        .route("/pools/{id}", get(show).put(update).delete(delete))
}

/// The mutable attributes of a pool as a request states them.
pub struct PoolFields {
    name: Opt<String>,
    description: Opt<String>,
    admin_state_up: Opt<bool>,
    lb_algorithm: Opt<LbAlgorithm>,
    session_persistence: Opt<Map<String, Value>>,
    tls_enabled: Opt<bool>,
    tls_container_ref: Opt<String>,
    ca_tls_container_ref: Opt<String>,
    crl_container_ref: Opt<String>,
    tls_ciphers: Opt<String>,
    tls_versions: Opt<Vec<String>>,
    alpn_protocols: Opt<Vec<String>>,
    tags: Opt<Vec<String>>,
}

fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// Parse a `session_persistence` object; `old` supplies the type when a PUT omits it.
fn session_persistence(
    m: Map<String, Value>,
    old: Option<&SessionPersistence>,
) -> ApiResult<SessionPersistence> {
    let mut i = Input::from_value(Value::Object(m), "session_persistence")?;
    let kind = match i.enumeration("type", SessionPersistenceType::ALL, |e| e.as_str())? {
        Opt::Set(k) => k,
        _ => old
            .map(|o| o.kind)
            .ok_or_else(|| ApiError::missing_field("type"))?,
    };
    let cookie_name = i.string("cookie_name", 255)?.value();
    let persistence_timeout = i
        .int("persistence_timeout", 0, i64::from(i32::MAX))?
        .value();
    let persistence_granularity = i.string("persistence_granularity", 64)?.value();
    i.finish()?;
    if let Some(c) = &cookie_name
        && !is_cookie_name(c)
    {
        return Err(ApiError::invalid_field(
            "cookie_name",
            c,
            "Invalid cookie name",
        ));
    }
    Ok(SessionPersistence {
        kind,
        cookie_name,
        persistence_timeout,
        persistence_granularity,
    })
}

impl PoolFields {
    pub fn parse(input: &mut Input) -> ApiResult<PoolFields> {
        Ok(PoolFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            lb_algorithm: input.enumeration("lb_algorithm", LbAlgorithm::ALL, |e| e.as_str())?,
            session_persistence: input.object("session_persistence")?,
            tls_enabled: input.boolean("tls_enabled")?,
            tls_container_ref: input.string("tls_container_ref", 255)?,
            ca_tls_container_ref: input.string("ca_tls_container_ref", 255)?,
            crl_container_ref: input.string("crl_container_ref", 255)?,
            tls_ciphers: input.string("tls_ciphers", 2048)?,
            tls_versions: input.string_list("tls_versions", 32)?,
            alpn_protocols: input.string_list("alpn_protocols", 32)?,
            tags: tags(input)?,
        })
    }

    pub fn has_algorithm(&self) -> bool {
        self.lb_algorithm.is_set()
    }

    /// Merge into `p`: absent keeps, null resets, a value sets.
    pub fn apply(self, p: &mut Pool) -> ApiResult<()> {
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
            Opt::Null => return Err(ApiError::missing_field("lb_algorithm")),
            Opt::Absent => {}
        }
        match self.session_persistence {
            Opt::Set(m) => {
                p.session_persistence =
                    Some(session_persistence(m, p.session_persistence.as_ref())?)
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
        let parse_list = |key: &str, items: Vec<String>| -> ApiResult<Vec<String>> {
            if items.is_empty() {
                return Err(ApiError::invalid_field(
                    key,
                    "[]",
                    "Value should not be an empty list",
                ));
            }
            Ok(items)
        };
        if let Some(v) = self.tls_ciphers.update() {
            p.tls_ciphers = v;
        }
        if let Some(v) = self.tls_versions.update() {
            p.tls_versions = match v {
                None => None,
                Some(items) => Some(
                    parse_list("tls_versions", items)?
                        .iter()
                        .map(|s| {
                            s.parse().map_err(|_| {
                                ApiError::invalid_field("tls_versions", s, "Invalid value")
                            })
                        })
                        .collect::<ApiResult<_>>()?,
                ),
            };
        }
        if let Some(v) = self.alpn_protocols.update() {
            p.alpn_protocols = match v {
                None => None,
                Some(items) => Some(
                    parse_list("alpn_protocols", items)?
                        .iter()
                        .map(|s| {
                            s.parse().map_err(|_| {
                                ApiError::invalid_field("alpn_protocols", s, "Invalid value")
                            })
                        })
                        .collect::<ApiResult<_>>()?,
                ),
            };
        }
        if let Some(v) = self.tags.update() {
            p.tags = v.unwrap_or_default();
        }
        // TLS defaults apply to pools that re-encrypt.
        if p.tls_enabled {
            p.tls_ciphers
                .get_or_insert_with(|| listeners::DEFAULT_TLS_CIPHERS.to_string());
            p.tls_versions
                .get_or_insert_with(listeners::default_tls_versions);
            p.alpn_protocols.get_or_insert_with(listeners::default_alpn);
        }
        Ok(())
    }
}

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
pub fn validate(p: &Pool) -> ApiResult<()> {
    if let Some(sp) = &p.session_persistence {
        let datagram = p.protocol.is_datagram();
        match (sp.kind, &sp.cookie_name) {
            (SessionPersistenceType::AppCookie, None) => {
                return Err(ApiError::validation(
                    "Field `cookie_name` must be specified when using the `APP_COOKIE` session persistence type.",
                ));
            }
            (SessionPersistenceType::AppCookie, Some(_)) => {}
            (kind, Some(_)) => {
                return Err(ApiError::validation(format!(
                    "Cookie names are not supported for {kind} persistence."
                )));
            }
            _ => {}
        }
        if datagram && sp.kind != SessionPersistenceType::SourceIp {
            return Err(ApiError::validation(format!(
                "Session persistence of type {} is not supported for {} protocol pools.",
                sp.kind, p.protocol
            )));
        }
        if !datagram && (sp.persistence_timeout.is_some() || sp.persistence_granularity.is_some()) {
            return Err(ApiError::validation(format!(
                "persistence_timeout and persistence_granularity is only for UDP and SCTP protocol pools. Pool protocol: {}",
                p.protocol
            )));
        }
        if let Some(g) = &sp.persistence_granularity
            && g.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ApiError::invalid_field(
                "persistence_granularity",
                g,
                "Value should be an IP netmask",
            ));
        }
    }
    if p.crl_container_ref.is_some() && p.ca_tls_container_ref.is_none() {
        return Err(ApiError::validation(
            "A CA reference is required to specify a certificate revocation list.",
        ));
    }
    // TLS options without tls_enabled are kept, as Octavia does: they apply
    // once re-encryption is turned on (and turning it off keeps them).
    Ok(())
}

/// Parse a pool create body (ids taken by the caller).
pub fn parse_create(input: &mut Input) -> ApiResult<(PoolProtocol, PoolFields)> {
    let protocol = input
        .enumeration("protocol", PoolProtocol::ALL, |e| e.as_str())?
        .required("protocol")?;
    input.project_id()?;
    let fields = PoolFields::parse(input)?;
    if !fields.has_algorithm() {
        return Err(ApiError::missing_field("lb_algorithm"));
    }
    Ok((protocol, fields))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "pool")?;
    let lb_id = input.uuid("loadbalancer_id")?.value();
    let listener_id = input.uuid("listener_id")?.value();
    let (protocol, fields) = parse_create(&mut input)?;
    input.finish()?;
    if lb_id.is_none() && listener_id.is_none() {
        return Err(ApiError::validation(
            "Either loadbalancer_id or listener_id must be specified.",
        ));
    }
    let id = app
        .store
        .write(|txn| {
            let s = txn.state();
            let listener = match listener_id {
                Some(lid) => {
                    let l = s
                        .listeners
                        .get(&lid)
                        .cloned()
                        .ok_or_else(|| ApiError::not_found("Listener", lid))?;
                    // Before comparing it with the load balancer, so that
                    // another project's listener says nothing about itself.
                    ctx.authorize("os_load-balancer_api:pool:post", &l.project_id)?;
                    Some(l)
                }
                None => None,
            };
            let lb_id = match (lb_id, &listener) {
                (Some(a), Some(l)) if a != l.loadbalancer_id => {
                    return Err(ApiError::validation(
                        "Listener and load balancer do not match.",
                    ));
                }
                (Some(a), _) => a,
                (None, Some(l)) => l.loadbalancer_id,
                (None, None) => unreachable!("checked above"),
            };
            let lb = load_balancer(s, lb_id)?.clone();
            ctx.authorize("os_load-balancer_api:pool:post", &lb.project_id)?;
            let mut p = new_pool(&lb, protocol, LbAlgorithm::RoundRobin);
            fields.apply(&mut p)?;
            validate(&p)?;
            if let Some(l) = &listener {
                if let Some(existing) = l.default_pool_id {
                    return Err(ApiError::conflict(format!(
                        "Listener {} is already using default pool {existing}.",
                        l.id
                    )));
                }
                if !l.protocol.accepts_pool(p.protocol) {
                    return Err(ApiError::validation(format!(
                        "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                        p.protocol, l.protocol
                    )));
                }
            }
            check_quota(
                &app.settings.quota_defaults,
                s,
                &lb.project_id,
                QuotaKind::Pool,
                1,
            )?;
            lock_lb(txn, lb.id, &[p.id])?;
            let id = p.id;
            txn.put(p)?;
            if let Some(l) = listener {
                let mut l = (*l).clone();
                l.default_pool_id = Some(id);
                txn.put(l)?;
                touch_listener(txn, listener_id.unwrap_or_default())?;
            }
            Ok::<_, ApiError>(id)
        })
        .await?;
    let s = app.store.snapshot();
    let p = s
        .pools
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Pool", id))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"pool": render::pool(&s, p)})),
    ))
}

fn readable(ctx: &RequestContext, s: &State, raw: &str, rule: &str) -> ApiResult<Arc<Pool>> {
    let id = path_id(raw, "Pool")?;
    let p = s
        .pools
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Pool", id))?;
    ctx.authorize(rule, &p.project_id)?;
    Ok(p)
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let scope = list_scope(&ctx, &q, "pool")?;
    let s = app.store.snapshot();
    let items = s
        .pools
        .iter()
        .filter(|p| in_scope(&scope, &p.project_id))
        .collect::<Vec<_>>();
    app.collection(&ctx, &uri, "pools", Some("pools_links"), render::POOL_ATTRS)
        .respond_lazy(
            items,
            &q,
            |x| render::pool_summary(x),
            |x| render::pool(&s, x),
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
    let p = readable(&ctx, &s, &id, "os_load-balancer_api:pool:get_one")?;
    Ok(Json(loadbalancers::one(
        "pool",
        render::pool(&s, &p),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Pool")?;
    let mut input = Input::from_root(body, "pool")?;
    let fields = PoolFields::parse(&mut input)?;
    input.finish()?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let old = s
                .pools
                .get(&id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Pool", id))?;
            ctx.authorize("os_load-balancer_api:pool:put", &old.project_id)?;
            let mut p = (*old).clone();
            fields.apply(&mut p)?;
            validate(&p)?;
            lock_lb(txn, p.loadbalancer_id, &[p.id])?;
            p.provisioning_status = ProvisioningStatus::PendingUpdate;
            p.updated_at = Some(now());
            txn.put(p)?;
            touch_pool(txn, id)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    let s = app.store.snapshot();
    let p = s
        .pools
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Pool", id))?;
    Ok(Json(json!({"pool": render::pool(&s, p)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Pool")?;
    app.store
        .write(|txn| {
            let s = txn.state().clone();
            let p = s
                .pools
                .get(&id)
                .ok_or_else(|| ApiError::not_found("Pool", id))?;
            ctx.authorize("os_load-balancer_api:pool:delete", &p.project_id)?;
            if let Some(pol) = s
                .l7policies
                .iter()
                .find(|pol| pol.redirect_pool_id == Some(id))
            {
                return Err(ApiError::conflict(format!(
                    "Pool {id} is in use by L7 policy {}",
                    pol.id
                )));
            }
            lock_lb(txn, p.loadbalancer_id, &[id])?;
            for l in s.listeners_using_pool(p.loadbalancer_id, id) {
                let mut l = (**l).clone();
                l.default_pool_id = None;
                l.provisioning_status = ProvisioningStatus::PendingUpdate;
                l.updated_at = Some(now());
                txn.put(l)?;
            }
            mark_pool_deleted(txn, id)?;
            touch_updated::<Pool>(txn, &id, |p| p.updated_at = Some(now()))?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
