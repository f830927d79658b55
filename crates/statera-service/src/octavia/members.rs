//! Pool members (`/pools/{pool_id}/members`), including the batch update.

use super::Deployment;
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::{lock_lb, pool_for_change, touch_pool};
use crate::neutron::usable_subnet;
use crate::opt::Opt;
use crate::parse_id;
use crate::quota::{QuotaKind, check_quota};
use crate::store::{StoreRead, StoreWrite};
use statera_model::addressing::canonical;
use statera_model::*;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// The mutable attributes of a member as a request states them.
pub struct MemberFields {
    pub name: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub weight: Opt<i64>,
    pub backup: Opt<bool>,
    pub monitor_address: Opt<(IpAddr, Option<String>)>,
    pub monitor_port: Opt<i64>,
    pub tags: Opt<Vec<String>>,
}

impl MemberFields {
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

/// A member's `subnet_id` must be one the caller may use: another
/// project's is answered exactly as a missing one.
pub fn check_subnet(
    ctx: &Context,
    s: &impl StoreRead,
    subnet_id: Option<Uuid>,
) -> ServiceResult<()> {
    match subnet_id {
        Some(sid) if usable_subnet(ctx, s, sid).is_none() => {
            Err(ServiceError::validation(format!("Subnet {sid} not found.")))
        }
        _ => Ok(()),
    }
}

/// Build a member of `pool` from a create body, checking what can be checked
/// without the pool's other members.
pub fn build(
    d: &impl Deployment,
    ctx: &Context,
    s: &impl StoreRead,
    pool: &Pool,
    has_monitor: bool,
    new: NewMember,
) -> ServiceResult<Member> {
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
    check_targets(d, &m)?;
    Ok(m)
}

/// Where a member and its health checks may point: never at an address of
/// Octavia's `reserved_ips`, the unspecified address (which reaches this
/// host), or a socket Statera itself listens on (its API), whether given as
/// `address`/`protocol_port` or `monitor_address`/`monitor_port`.
/// Addresses are compared as the kernel routes them (`::ffff:a.b.c.d` is
/// `a.b.c.d`); the member keeps its address exactly as sent.
pub fn check_targets(d: &impl Deployment, m: &Member) -> ServiceResult<()> {
    check_address(d, m.address, "member address")?;
    if let Some(a) = m.monitor_address {
        check_address(d, a, "member monitor_address")?;
    }
    check_socket(d, m.address, m.protocol_port, "member address")?;
    let probe = (
        m.monitor_address.unwrap_or(m.address),
        m.monitor_port.unwrap_or(m.protocol_port),
    );
    if probe != (m.address, m.protocol_port) {
        check_socket(d, probe.0, probe.1, "member monitor_address")?;
    }
    Ok(())
}

fn check_address(d: &impl Deployment, ip: IpAddr, option: &str) -> ServiceResult<()> {
    let c = canonical(ip);
    if c.is_unspecified() || d.reserved_ips().iter().any(|r| canonical(*r) == c) {
        return Err(ServiceError::Invalid(format!(
            "{ip} is not a valid option for {option}"
        )));
    }
    Ok(())
}

fn check_socket(d: &impl Deployment, ip: IpAddr, port: u16, option: &str) -> ServiceResult<()> {
    let c = canonical(ip);
    let own = d.own_sockets().iter().any(|s| {
        s.port() == port
            && (canonical(s.ip()) == c || (s.ip().is_unspecified() && is_local_address(c)))
    });
    if own {
        return Err(ServiceError::Invalid(format!(
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

fn duplicate(address: IpAddr, port: u16) -> ServiceError {
    ServiceError::conflict(format!(
        "Another member on this pool is already using ip {address} on protocol_port {port}"
    ))
}

/// The pool of a read, which `rule` must allow.
fn readable_pool(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
    rule: &str,
) -> ServiceResult<Arc<Pool>> {
    let p = s
        .get::<Pool>(&id)
        .ok_or_else(|| ServiceError::not_found("Pool", id))?;
    ctx.authorize(rule, &p.project_id)?;
    Ok(p)
}

/// The member `raw` of pool `pool_id` (a member of another pool is 404).
fn member_of(s: &impl StoreRead, pool_id: Uuid, raw: &str) -> ServiceResult<Arc<Member>> {
    let id = parse_id(raw, "Member")?;
    s.get::<Member>(&id)
        .filter(|m| m.pool_id == pool_id)
        .ok_or_else(|| ServiceError::not_found("Member", id))
}

fn has_monitor(s: &impl StoreRead, pool_id: Uuid) -> bool {
    !s.children::<HealthMonitor>(pool_id).is_empty()
}

/// `POST /pools/{pool_id}/members`: PENDING_CREATE, its pool and load
/// balancer locked.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    pool_id: Uuid,
    new: NewMember,
) -> ServiceResult<Member> {
    let pool = txn
        .get::<Pool>(&pool_id)
        .ok_or_else(|| ServiceError::not_found("Pool", pool_id))?;
    ctx.authorize("os_load-balancer_api:member:post", &pool.project_id)?;
    let pool = pool_for_change(txn, pool_id)?;
    let m = build(d, ctx, txn, &pool, has_monitor(txn, pool_id), new)?;
    if txn
        .children::<Member>(pool_id)
        .iter()
        .any(|o| o.address == m.address && o.protocol_port == m.protocol_port)
    {
        return Err(duplicate(m.address, m.protocol_port));
    }
    check_quota(
        d.quota_defaults(),
        txn,
        &pool.project_id,
        QuotaKind::Member,
        1,
    )?;
    lock_lb(txn, pool.loadbalancer_id, &[m.id])?;
    touch_pool(txn, pool_id)?;
    txn.put(m.clone())?;
    Ok(m)
}

/// `GET /pools/{pool_id}/members`: the pool's members, in id order.
pub fn list(ctx: &Context, s: &impl StoreRead, pool_id: Uuid) -> ServiceResult<Vec<Arc<Member>>> {
    let pool = readable_pool(ctx, s, pool_id, "os_load-balancer_api:member:get_all")?;
    Ok(s.children::<Member>(pool.id))
}

/// `GET /pools/{pool_id}/members/{id}`.
pub fn show(
    ctx: &Context,
    s: &impl StoreRead,
    pool_id: Uuid,
    member_id: &str,
) -> ServiceResult<Arc<Member>> {
    let pool = readable_pool(ctx, s, pool_id, "os_load-balancer_api:member:get_one")?;
    member_of(s, pool.id, member_id)
}

/// `PUT /pools/{pool_id}/members/{id}`: merged, targets checked,
/// PENDING_UPDATE.
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    pool_id: Uuid,
    member_id: &str,
    fields: MemberFields,
) -> ServiceResult<Member> {
    let old = member_of(txn, pool_id, member_id)?;
    ctx.authorize("os_load-balancer_api:member:put", &old.project_id)?;
    let pool = pool_for_change(txn, pool_id)?;
    let mut m = (*old).clone();
    fields.apply(&mut m);
    check_targets(d, &m)?;
    m.provisioning_status = ProvisioningStatus::PendingUpdate;
    m.updated_at = Some(now());
    lock_lb(txn, pool.loadbalancer_id, &[m.id])?;
    touch_pool(txn, pool_id)?;
    txn.put(m.clone())?;
    Ok(m)
}

/// `DELETE /pools/{pool_id}/members/{id}`: PENDING_DELETE.
pub fn delete(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    pool_id: Uuid,
    member_id: &str,
) -> ServiceResult<()> {
    let old = member_of(txn, pool_id, member_id)?;
    ctx.authorize("os_load-balancer_api:member:delete", &old.project_id)?;
    let pool = pool_for_change(txn, pool_id)?;
    let mut m = (*old).clone();
    m.provisioning_status = ProvisioningStatus::PendingDelete;
    m.updated_at = Some(now());
    lock_lb(txn, pool.loadbalancer_id, &[m.id])?;
    touch_pool(txn, pool_id)?;
    txn.put(m)?;
    Ok(())
}

/// `PUT /pools/{pool_id}/members`: make the pool's members what `wanted`
/// lists (each (address, protocol_port) once), matched by (address,
/// protocol_port); with `additive` members not listed are kept. Every check
/// runs against the state before the change; nothing is written unless all
/// pass.
pub fn batch_update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    pool_id: Uuid,
    additive: bool,
    wanted: Vec<NewMember>,
) -> ServiceResult<()> {
    let pool = txn
        .get::<Pool>(&pool_id)
        .ok_or_else(|| ServiceError::not_found("Pool", pool_id))?;
    // Octavia checks post, put and (unless additive only) delete.
    ctx.authorize("os_load-balancer_api:member:post", &pool.project_id)?;
    ctx.authorize("os_load-balancer_api:member:put", &pool.project_id)?;
    if !additive {
        ctx.authorize("os_load-balancer_api:member:delete", &pool.project_id)?;
    }
    let listed: HashSet<(IpAddr, u16)> = wanted
        .iter()
        .map(|n| (n.address, n.protocol_port))
        .collect();
    let existing = txn.children::<Member>(pool_id);
    let to_delete: Vec<&Arc<Member>> = if additive {
        Vec::new()
    } else {
        existing
            .iter()
            .filter(|m| !listed.contains(&(m.address, m.protocol_port)))
            .collect()
    };
    if wanted.is_empty() && to_delete.is_empty() {
        return Ok(());
    }
    let pool = pool_for_change(txn, pool_id)?;
    let has_monitor = has_monitor(txn, pool_id);
    let mut creates = 0;
    let mut rows = Vec::new();
    for new in wanted {
        match existing
            .iter()
            .find(|m| m.address == new.address && m.protocol_port == new.protocol_port)
        {
            Some(old) => {
                // As Octavia: every listed member's subnet is checked, and a
                // listed member that exists (same address and port) takes the
                // subnet given.
                check_subnet(ctx, txn, new.subnet_id)?;
                let mut m = (**old).clone();
                if new.subnet_id.is_some() {
                    m.subnet_id = new.subnet_id;
                }
                new.fields.apply(&mut m);
                check_targets(d, &m)?;
                m.provisioning_status = ProvisioningStatus::PendingUpdate;
                m.updated_at = Some(now());
                rows.push(m);
            }
            None => {
                creates += 1;
                rows.push(build(d, ctx, txn, &pool, has_monitor, new)?);
            }
        }
    }
    let deletes = to_delete.len() as i64;
    for m in to_delete {
        let mut m = (**m).clone();
        m.provisioning_status = ProvisioningStatus::PendingDelete;
        m.updated_at = Some(now());
        rows.push(m);
    }
    check_quota(
        d.quota_defaults(),
        txn,
        &pool.project_id,
        QuotaKind::Member,
        creates - deletes,
    )?;
    let subjects: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
    for m in rows {
        txn.put(m)?;
    }
    lock_lb(txn, pool.loadbalancer_id, &subjects)?;
    touch_pool(txn, pool_id)?;
    Ok(())
}
