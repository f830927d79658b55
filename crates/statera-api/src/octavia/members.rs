//! `/pools/{pool_id}/members`, including the batch update.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use statera_model::addressing::canonical;
use std::collections::HashSet;
use std::net::IpAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/pools/{pool_id}/members",
            get(list).post(create).put(batch_update),
        )
        .route(
            "/pools/{pool_id}/members/{id}",
            get(show).put(update).delete(delete),
        )
}

/// The mutable attributes of a member as a request states them.
pub struct MemberFields {
    name: Opt<String>,
    admin_state_up: Opt<bool>,
    weight: Opt<i64>,
    backup: Opt<bool>,
    monitor_address: Opt<(IpAddr, Option<String>)>,
    monitor_port: Opt<i64>,
    tags: Opt<Vec<String>>,
}

impl MemberFields {
    pub fn parse(input: &mut Input) -> ApiResult<MemberFields> {
        Ok(MemberFields {
            name: input.string("name", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            weight: input.int("weight", 0, 256)?,
            backup: input.boolean("backup")?,
            monitor_address: input.ip_as_sent("monitor_address")?,
            monitor_port: input.int("monitor_port", 1, 65535)?,
            tags: tags(input)?,
        })
    }

    pub fn apply(self, m: &mut Member) {
        if let Some(v) = self.name.update() {
            m.name = v;
        }
        if let Some(v) = self.admin_state_up.update() {
            m.admin_state_up = v.unwrap_or(false);
        }
        if let Some(v) = self.weight.update() {
            m.weight = v.unwrap_or(1) as u16;
        }
        if let Some(v) = self.backup.update() {
            m.backup = v.unwrap_or(false);
        }
        if let Some(v) = self.monitor_address.update() {
            m.monitor_address = v.as_ref().map(|(ip, _)| *ip);
            m.monitor_address_as_sent = v.and_then(|(_, text)| text);
        }
        if let Some(v) = self.monitor_port.update() {
            m.monitor_port = v.map(|p| p as u16);
        }
        if let Some(v) = self.tags.update() {
            m.tags = v.unwrap_or_default();
        }
    }
}

/// A member create body, parsed.
pub struct NewMember {
    pub address: IpAddr,
    /// `address` as sent, when not canonical.
    pub address_as_sent: Option<String>,
    pub protocol_port: u16,
    pub subnet_id: Option<Uuid>,
    pub fields: MemberFields,
}

pub fn parse_create(input: &mut Input) -> ApiResult<NewMember> {
    let (address, address_as_sent) = input.ip_as_sent("address")?.required("address")?;
    let protocol_port = input
        .int("protocol_port", 1, 65535)?
        .required("protocol_port")? as u16;
    let subnet_id = input.uuid("subnet_id")?.value();
    input.project_id()?;
    if input.boolean("request_sriov")?.value() == Some(true) {
        return Err(ApiError::validation(
            "Member SR-IOV is not supported by this deployment's flavors.",
        ));
    }
    let fields = MemberFields::parse(input)?;
    Ok(NewMember {
        address,
        address_as_sent,
        protocol_port,
        subnet_id,
        fields,
    })
}

/// A member's `subnet_id` must be one the caller may use: another
/// project's is answered exactly as a missing one.
fn check_subnet(ctx: &RequestContext, s: &State, subnet_id: Option<Uuid>) -> ApiResult<()> {
    match subnet_id {
        Some(sid) if crate::neutron::usable_subnet(ctx, s, sid).is_none() => {
            Err(ApiError::validation(format!("Subnet {sid} not found.")))
        }
        _ => Ok(()),
    }
}

/// Build a member of `pool` from a create body, checking what can be checked
/// without the pool's other members.
pub fn build(
    app: &AppState,
    ctx: &RequestContext,
    s: &State,
    pool: &Pool,
    has_monitor: bool,
    new: NewMember,
) -> ApiResult<Member> {
    check_subnet(ctx, s, new.subnet_id)?;
    let mut m = Member {
        id: Uuid::new_v4(),
        project_id: pool.project_id.clone(),
        pool_id: pool.id,
        name: None,
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: if has_monitor {
            OperatingStatus::Offline
        } else {
            OperatingStatus::NoMonitor
        },
        address: new.address,
        protocol_port: new.protocol_port,
        weight: 1,
        backup: false,
        subnet_id: new.subnet_id,
        monitor_address: None,
        monitor_port: None,
        tags: Vec::new(),
        created_at: now(),
        updated_at: None,
        address_as_sent: new.address_as_sent,
        monitor_address_as_sent: None,
    };
    new.fields.apply(&mut m);
    check_targets(app, &m)?;
    Ok(m)
}

/// Where a member and its health checks may point: never at an address of
/// Octavia's `reserved_ips`, the unspecified address (which reaches this
/// host), or a socket Statera itself listens on (its API), whether given as
/// `address`/`protocol_port` or `monitor_address`/`monitor_port`.
/// Addresses are compared as the kernel routes them (`::ffff:a.b.c.d` is
/// `a.b.c.d`); the member keeps its address exactly as sent.
pub fn check_targets(app: &AppState, m: &Member) -> ApiResult<()> {
    check_address(app, m.address, "member address")?;
    if let Some(a) = m.monitor_address {
        check_address(app, a, "member monitor_address")?;
    }
    check_socket(app, m.address, m.protocol_port, "member address")?;
    let probe = (
        m.monitor_address.unwrap_or(m.address),
        m.monitor_port.unwrap_or(m.protocol_port),
    );
    if probe != (m.address, m.protocol_port) {
        check_socket(app, probe.0, probe.1, "member monitor_address")?;
    }
    Ok(())
}

fn check_address(app: &AppState, ip: IpAddr, option: &str) -> ApiResult<()> {
    let c = canonical(ip);
    if c.is_unspecified() || app.settings.reserved_ips.iter().any(|r| canonical(*r) == c) {
        return Err(super::flavors::invalid_option(ip, option));
    }
    Ok(())
}

fn check_socket(app: &AppState, ip: IpAddr, port: u16, option: &str) -> ApiResult<()> {
    let c = canonical(ip);
    let own = app.settings.own_sockets.iter().any(|s| {
        s.port() == port
            && (canonical(s.ip()) == c || (s.ip().is_unspecified() && is_local_address(c)))
    });
    if own {
        return Err(ApiError::bad_request(format!(
            "{} is not a valid option for {option}: the load-balancing service itself \
             listens there",
            std::net::SocketAddr::new(ip, port)
        )));
    }
    Ok(())
}

/// Whether `ip` is an address of this host: loopback, or one a socket can
/// be bound to here (binding a non-local address fails).
fn is_local_address(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

fn duplicate(address: IpAddr, port: u16) -> ApiError {
    ApiError::conflict(format!(
        "Another member on this pool is already using ip {address} on protocol_port {port}"
    ))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(pool_id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let pool_id = path_id(&pool_id, "Pool")?;
    let mut input = Input::from_root(body, "member")?;
    let new = parse_create(&mut input)?;
    input.finish()?;
    let member = app
        .store
        .write(|txn| {
            let s = txn.state();
            let pool = s
                .pools
                .get(&pool_id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Pool", pool_id))?;
            ctx.authorize("os_load-balancer_api:member:post", &pool.project_id)?;
            let pool = pool_for_change(s, pool_id)?;
            let m = build(&app, &ctx, s, &pool, s.pool_monitor(pool_id).is_some(), new)?;
            if s.members
                .children(pool_id)
                .any(|o| o.address == m.address && o.protocol_port == m.protocol_port)
            {
                return Err(duplicate(m.address, m.protocol_port));
            }
            check_quota(
                &app.settings.quota_defaults,
                s,
                &pool.project_id,
                QuotaKind::Member,
                1,
            )?;
            lock_lb(txn, pool.loadbalancer_id, &[m.id])?;
            touch_pool(txn, pool_id)?;
            txn.put(m.clone())?;
            Ok::<_, ApiError>(m)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"member": render::member(&member)})),
    ))
}

fn readable_pool(ctx: &RequestContext, s: &State, raw: &str, rule: &str) -> ApiResult<Arc<Pool>> {
    let id = path_id(raw, "Pool")?;
    let p = s
        .pools
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Pool", id))?;
    ctx.authorize(rule, &p.project_id)?;
    Ok(p)
}

fn member_of(s: &State, pool_id: Uuid, raw: &str) -> ApiResult<Arc<Member>> {
    let id = path_id(raw, "Member")?;
    s.members
        .get(&id)
        .filter(|m| m.pool_id == pool_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Member", id))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(pool_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let s = app.store.snapshot();
    let pool = readable_pool(&ctx, &s, &pool_id, "os_load-balancer_api:member:get_all")?;
    let items = s
        .members
        .children(pool.id)
        .map(|m| {
            let mut o = render::member(m);
            o.insert("pool_id".into(), json!(pool.id));
            o
        })
        .collect();
    let mut c = app.collection(
        &ctx,
        &uri,
        "members",
        Some("members_links"),
        render::MEMBER_ATTRS,
    );
    c.ignored = &["pool_id"];
    let mut body = c.respond(items, &q)?;
    if let Some(Value::Array(items)) = body.get_mut("members") {
        for i in items {
            if let Some(o) = i.as_object_mut() {
                o.remove("pool_id");
            }
        }
    }
    Ok(Json(body))
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((pool_id, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let pool = readable_pool(&ctx, &s, &pool_id, "os_load-balancer_api:member:get_one")?;
    let m = member_of(&s, pool.id, &id)?;
    Ok(Json(loadbalancers::one(
        "member",
        render::member(&m),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((pool_id, id)): Path<(String, String)>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let pool_id = path_id(&pool_id, "Pool")?;
    let mut input = Input::from_root(body, "member")?;
    let fields = MemberFields::parse(&mut input)?;
    input.finish()?;
    let member = app
        .store
        .write(|txn| {
            let s = txn.state();
            let old = member_of(s, pool_id, &id)?;
            ctx.authorize("os_load-balancer_api:member:put", &old.project_id)?;
            let pool = pool_for_change(s, pool_id)?;
            let mut m = (*old).clone();
            fields.apply(&mut m);
            check_targets(&app, &m)?;
            m.provisioning_status = ProvisioningStatus::PendingUpdate;
            m.updated_at = Some(now());
            lock_lb(txn, pool.loadbalancer_id, &[m.id])?;
            touch_pool(txn, pool_id)?;
            txn.put(m.clone())?;
            Ok::<_, ApiError>(m)
        })
        .await?;
    Ok(Json(json!({"member": render::member(&member)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((pool_id, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let pool_id = path_id(&pool_id, "Pool")?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let old = member_of(s, pool_id, &id)?;
            ctx.authorize("os_load-balancer_api:member:delete", &old.project_id)?;
            let pool = pool_for_change(s, pool_id)?;
            let mut m = (*old).clone();
            m.provisioning_status = ProvisioningStatus::PendingDelete;
            m.updated_at = Some(now());
            lock_lb(txn, pool.loadbalancer_id, &[m.id])?;
            touch_pool(txn, pool_id)?;
            txn.put(m)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /pools/{id}/members`: make the pool's members what the body lists,
/// matched by (address, protocol_port); with `?additive_only=true` members not
/// listed are kept.
async fn batch_update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(pool_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    JsonBody(body): OctaviaJson,
) -> ApiResult<StatusCode> {
    let pool_id = path_id(&pool_id, "Pool")?;
    let additive = query(&uri).flag("additive_only");
    let items = match body {
        Value::Object(mut o) => match o.remove("members") {
            Some(Value::Array(_)) if !o.is_empty() => {
                let extra: Vec<&str> = o.keys().map(String::as_str).collect();
                return Err(ApiError::invalid_field(
                    "members_",
                    Value::Object(o.clone()),
                    format!(
                        "Unknown attribute for argument members_: {}",
                        extra.join(", ")
                    ),
                ));
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(ApiError::invalid_field(
                    "members",
                    other,
                    "Value should be a list",
                ));
            }
            None => return Err(ApiError::missing_field("members")),
        },
        other => {
            return Err(ApiError::invalid_field(
                "members",
                other,
                "Value should be an object",
            ));
        }
    };
    let mut wanted = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for item in items {
        let mut input = Input::from_value(item, "member")?;
        let new = parse_create(&mut input)?;
        input.finish()?;
        if !seen.insert((new.address, new.protocol_port)) {
            return Err(ApiError::validation(format!(
                "Member {}:{} is listed more than once.",
                new.address, new.protocol_port
            )));
        }
        wanted.push(new);
    }
    app.store
        .write(|txn| {
            let s = txn.state().clone();
            let pool = s
                .pools
                .get(&pool_id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Pool", pool_id))?;
            // Octavia checks post, put and (unless additive only) delete.
            ctx.authorize("os_load-balancer_api:member:post", &pool.project_id)?;
            ctx.authorize("os_load-balancer_api:member:put", &pool.project_id)?;
            if !additive {
                ctx.authorize("os_load-balancer_api:member:delete", &pool.project_id)?;
            }
            let existing: Vec<Arc<Member>> = s.members.children(pool_id).cloned().collect();
            let to_delete: Vec<&Arc<Member>> = if additive {
                Vec::new()
            } else {
                existing
                    .iter()
                    .filter(|m| !seen.contains(&(m.address, m.protocol_port)))
                    .collect()
            };
            if wanted.is_empty() && to_delete.is_empty() {
                return Ok(());
            }
            let pool = pool_for_change(&s, pool_id)?;
            let has_monitor = s.pool_monitor(pool_id).is_some();
            let mut creates = 0;
            let mut subjects = Vec::new();
            for new in wanted {
                match existing
                    .iter()
                    .find(|m| m.address == new.address && m.protocol_port == new.protocol_port)
                {
                    Some(old) => {
                        // As Octavia: every listed member's subnet is
                        // checked, and a listed member that exists (same
                        // address and port) takes the subnet given.
                        check_subnet(&ctx, &s, new.subnet_id)?;
                        let mut m = (**old).clone();
                        if new.subnet_id.is_some() {
                            m.subnet_id = new.subnet_id;
                        }
                        new.fields.apply(&mut m);
                        check_targets(&app, &m)?;
                        m.provisioning_status = ProvisioningStatus::PendingUpdate;
                        m.updated_at = Some(now());
                        subjects.push(m.id);
                        txn.put(m)?;
                    }
                    None => {
                        creates += 1;
                        let m = build(&app, &ctx, &s, &pool, has_monitor, new)?;
                        subjects.push(m.id);
                        txn.put(m)?;
                    }
                }
            }
            let deletes = to_delete.len() as i64;
            for m in to_delete {
                let mut m = (**m).clone();
                m.provisioning_status = ProvisioningStatus::PendingDelete;
                m.updated_at = Some(now());
                subjects.push(m.id);
                txn.put(m)?;
            }
            check_quota(
                &app.settings.quota_defaults,
                &s,
                &pool.project_id,
                QuotaKind::Member,
                creates - deletes,
            )?;
            lock_lb(txn, pool.loadbalancer_id, &subjects)?;
            touch_pool(txn, pool_id)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::ACCEPTED)
}
