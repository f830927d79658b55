//! Load balancers: reads, update, delete (with cascade), failover. The
//! create stays in statera-api for now: it plugs the VIP through the Neutron
//! subset's IPAM on the write transaction.

use super::listeners::ListenerStats;
use super::{find, list_owned, show_owned};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::mark_tree_deleted;
use crate::neutron::usable_security_group;
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::sync::Arc;
use uuid::Uuid;

/// The mutable attributes of a load balancer as a request states them.
pub struct LoadBalancerFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub vip_qos_policy_id: Opt<Uuid>,
    pub vip_sg_ids: Opt<Vec<Uuid>>,
    pub tags: Opt<Vec<String>>,
}

/// Every security group in `ids` must be one the caller may use (its own;
/// any for an admin); another project's is answered as a missing one.
pub fn check_vip_sg_ids(ctx: &Context, s: &impl StoreRead, ids: &[Uuid]) -> ServiceResult<()> {
    for id in ids {
        if usable_security_group(ctx, s, *id).is_none() {
            return Err(ServiceError::validation(format!(
                "Security group {id} not found."
            )));
        }
    }
    Ok(())
}

fn get(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<LoadBalancer>> {
    find(s, id, "Load Balancer")
}

/// `Invalid state <status> of loadbalancer resource <id>` (409).
/// Busy (retry-safe) while a change is applied, a plain conflict otherwise.
fn invalid_state(lb: &LoadBalancer) -> ServiceError {
    ServiceError::refused_in(
        lb.provisioning_status,
        format!(
            "Invalid state {} of loadbalancer resource {}",
            lb.provisioning_status, lb.id
        ),
    )
}

/// A load balancer the caller may read under `…:loadbalancer:<action>`.
fn readable(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
    action: &str,
) -> ServiceResult<Arc<LoadBalancer>> {
    let lb = get(s, id)?;
    ctx.authorize(
        &format!("os_load-balancer_api:loadbalancer:{action}"),
        &lb.project_id,
    )?;
    Ok(lb)
}

/// `GET /loadbalancers/{id}`.
pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<LoadBalancer>> {
    show_owned(ctx, s, id, "Load Balancer", "loadbalancer")
}

/// `GET /loadbalancers`: the load balancers the caller may list (of project
/// `asked` when given), in id order.
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
    asked: Option<&str>,
) -> ServiceResult<Vec<Arc<LoadBalancer>>> {
    list_owned(ctx, s, asked, "loadbalancer")
}

/// `GET /loadbalancers/{id}/status`: the load balancer whose status tree
/// the caller may read (the wire renders the tree from the same state).
pub fn status(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<LoadBalancer>> {
    readable(ctx, s, id, "get_status")
}

/// `GET /loadbalancers/{id}/stats`: the counters its listeners last
/// reported, summed.
pub fn stats(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<ListenerStats> {
    let lb = readable(ctx, s, id, "get_stats")?;
    let mut t = ListenerStats::default();
    for x in s.children::<ListenerStats>(lb.id) {
        t.bytes_in += x.bytes_in;
        t.bytes_out += x.bytes_out;
        t.active_connections += x.active_connections;
        t.total_connections += x.total_connections;
        t.request_errors += x.request_errors;
    }
    Ok(t)
}

/// `PUT /loadbalancers/{id}`: merged (security groups the caller may use),
/// PENDING_UPDATE, the controller owed work.
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    fields: LoadBalancerFields,
) -> ServiceResult<LoadBalancer> {
    let lb = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:loadbalancer:put", &lb.project_id)?;
    if !status::accepts_changes(lb.provisioning_status) {
        return Err(invalid_state(&lb));
    }
    let mut lb = (*lb).clone();
    if let Some(v) = fields.name.update() {
        lb.name = v;
    }
    if let Some(v) = fields.description.update() {
        lb.description = v;
    }
    if let Some(v) = fields.admin_state_up.update() {
        lb.admin_state_up = v.unwrap_or(false);
    }
    if let Some(v) = fields.vip_qos_policy_id.update() {
        lb.vip_qos_policy_id = v;
    }
    if let Some(v) = fields.vip_sg_ids.update() {
        let v = v.unwrap_or_default();
        check_vip_sg_ids(ctx, txn, &v)?;
        lb.vip_sg_ids = v;
    }
    if let Some(v) = fields.tags.update() {
        lb.tags = v.unwrap_or_default();
    }
    lb.provisioning_status = ProvisioningStatus::PendingUpdate;
    lb.updated_at = Some(now());
    txn.put(lb.clone())?;
    txn.enqueue(id, &[id])?;
    Ok(lb)
}

/// `DELETE /loadbalancers/{id}`: with children only when `cascade`; the
/// whole tree PENDING_DELETE, the controller owed work.
pub fn delete(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    cascade: bool,
) -> ServiceResult<()> {
    let lb = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:loadbalancer:delete", &lb.project_id)?;
    if !status::accepts_delete(lb.provisioning_status) {
        return Err(invalid_state(&lb));
    }
    let has_children =
        !txn.children::<Listener>(id).is_empty() || !txn.children::<Pool>(id).is_empty();
    if has_children && !cascade {
        return Err(ServiceError::validation(format!(
            "Cannot delete Load Balancer {id} - it has children"
        )));
    }
    mark_tree_deleted(txn, id)?;
    txn.enqueue(id, &[id])?;
    Ok(())
}

/// `PUT /loadbalancers/{id}/failover`: asked of the owner's project (of no
/// project when the load balancer does not exist, so that only those who
/// may fail over any load balancer learn it is missing), PENDING_UPDATE,
/// the controller owed work.
pub fn failover(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let owner = txn
        .get::<LoadBalancer>(&id)
        .map(|lb| lb.project_id.clone())
        .unwrap_or_default();
    ctx.authorize("os_load-balancer_api:loadbalancer:put_failover", &owner)?;
    let lb = get(txn, id)?;
    if !status::accepts_delete(lb.provisioning_status) {
        return Err(invalid_state(&lb));
    }
    let mut lb = (*lb).clone();
    lb.provisioning_status = ProvisioningStatus::PendingUpdate;
    lb.updated_at = Some(now());
    txn.put(lb)?;
    txn.enqueue(id, &[id])?;
    Ok(())
}
