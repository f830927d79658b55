//! Load balancers: create (the VIP plugged by the caller's network side, a
//! fully populated create's objects by [`super::graph`]), reads, update,
//! delete (with cascade), failover.

use super::graph::Graph;
use super::listeners::ListenerStats;
use super::{Providers, find, list_owned, show_owned};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::mark_tree_deleted;
use crate::neutron::usable_security_group;
use crate::opt::Opt;
use crate::quota::{QuotaKind, check_quota};
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

/// A load balancer to create, as its request states it (the VIP is plugged
/// by the caller's network side, see [`create`]).
pub struct NewLoadBalancer {
    pub id: Uuid,
    pub project_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: bool,
    pub vip_qos_policy_id: Option<Uuid>,
    pub vip_sg_ids: Vec<Uuid>,
    pub provider: Option<String>,
    pub flavor_id: Option<Uuid>,
    pub availability_zone: Option<String>,
    pub tags: Vec<String>,
    /// A fully populated create's nested objects.
    pub graph: Option<Graph>,
}

/// Where a VIP was plugged.
pub struct PluggedVip {
    pub address: std::net::IpAddr,
    pub port_id: Uuid,
    pub subnet_id: Uuid,
    pub network_id: Uuid,
}

/// Whether the caller may create a load balancer in `project_id` at all:
/// the wire asks this as soon as the request is read, so that the 403 wins
/// over what it checks afterwards (the VIP's presence, the nested objects),
/// as in Octavia. [`create`] asks it again.
pub fn admit_create(ctx: &Context, project_id: &str) -> ServiceResult<()> {
    ctx.authorize("os_load-balancer_api:loadbalancer:post", project_id)
}

/// `POST /loadbalancers`: the provider (the flavor's, else the one asked
/// for, else the default) enabled, available and accepting the flavor; the
/// availability zone enabled and allowing the VIP's network; the quota; the
/// VIP's security groups usable; then `plug` (the network side: the VIP
/// port, its address and quota) and the load balancer PENDING_CREATE with a
/// fully populated create's objects ([`graph::create`]) and the controller's
/// work. The listeners created, in the request's order, when populated.
///
/// Errors are `E`, the caller's, so that `plug` may fail in its own terms.
pub fn create<T: StoreWrite, E: From<ServiceError>>(
    ctx: &Context,
    txn: &mut T,
    d: &impl Providers,
    new: NewLoadBalancer,
    plug: impl FnOnce(&mut T) -> Result<PluggedVip, E>,
) -> Result<Option<Vec<Uuid>>, E> {
    ctx.authorize("os_load-balancer_api:loadbalancer:post", &new.project_id)?;
    let flavor_provider = match new.flavor_id {
        None => None,
        Some(fid) => {
            let f = txn
                .get::<Flavor>(&fid)
                .ok_or_else(|| ServiceError::validation(format!("Invalid flavor_id {fid}.")))?;
            if !f.enabled {
                return Err(ServiceError::validation(format!(
                    "The selected flavor is not allowed in this deployment: {fid}"
                ))
                .into());
            }
            txn.get::<FlavorProfile>(&f.flavor_profile_id)
                .map(|p| (p.provider_name.clone(), p.flavor_data.clone()))
        }
    };
    let provider = match (&new.provider, &flavor_provider) {
        (Some(p), Some((fp, _))) if p != fp => {
            return Err(ServiceError::validation(format!(
                "Flavor '{}' is not compatible with provider '{p}'",
                new.flavor_id.map(|f| f.to_string()).unwrap_or_default()
            ))
            .into());
        }
        (Some(p), _) => p.clone(),
        (None, Some((fp, _))) => fp.clone(),
        (None, None) => d.default_provider().to_string(),
    };
    match d.provider_available(&provider) {
        None => {
            return Err(
                ServiceError::Invalid(format!("Provider '{provider}' is not enabled.")).into(),
            );
        }
        Some(false) => {
            return Err(ServiceError::not_implemented(format!(
                "Provider '{provider}' is not yet available in this deployment."
            ))
            .into());
        }
        Some(true) => {}
    }
    if let Some((_, data)) = &flavor_provider {
        d.check_flavor_data(&provider, data)?;
    }
    let zone = match &new.availability_zone {
        None => None,
        Some(az) => match txn.get::<AvailabilityZone>(az) {
            None => {
                return Err(ServiceError::validation(format!(
                    "Invalid availability zone name {az}."
                ))
                .into());
            }
            Some(z) if !z.enabled => {
                return Err(ServiceError::validation(format!(
                    "The selected availability_zone is not allowed in this deployment: {az}"
                ))
                .into());
            }
            Some(z) => Some(z),
        },
    };
    check_quota(
        d.quota_defaults(),
        &*txn,
        &new.project_id,
        QuotaKind::LoadBalancer,
        1,
    )?;
    check_vip_sg_ids(ctx, &*txn, &new.vip_sg_ids)?;
    let vip = plug(txn)?;
    if let Some(z) = &zone {
        check_vip_network(&*txn, z, vip.network_id)?;
    }
    let lb = LoadBalancer {
        id: new.id,
        project_id: new.project_id,
        name: new.name,
        description: new.description,
        admin_state_up: new.admin_state_up,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        vip_address: vip.address,
        vip_port_id: vip.port_id,
        vip_subnet_id: vip.subnet_id,
        vip_network_id: vip.network_id,
        vip_qos_policy_id: new.vip_qos_policy_id,
        vip_sg_ids: new.vip_sg_ids,
        additional_vips: Vec::new(),
        provider,
        flavor_id: new.flavor_id,
        availability_zone: new.availability_zone,
        tags: new.tags,
        created_at: now(),
        updated_at: None,
        config_version: 0,
    };
    txn.put(lb.clone()).map_err(ServiceError::from)?;
    let listeners = match new.graph {
        Some(graph) => Some(super::graph::create(ctx, txn, d, &lb, graph)?),
        None => None,
    };
    txn.enqueue(lb.id, &[lb.id]).map_err(ServiceError::from)?;
    Ok(listeners)
}

/// A load balancer in zone `az` must have its VIP on one of the zone's
/// `valid_vip_networks` when the zone's profile names any (Octavia's
/// `network_allowed_by_config`).
pub fn check_vip_network(
    s: &impl StoreRead,
    az: &AvailabilityZone,
    vip_network: Uuid,
) -> ServiceResult<()> {
    let Some(profile) = s.get::<AvailabilityZoneProfile>(&az.availability_zone_profile_id) else {
        return Ok(());
    };
    let data: serde_json::Value =
        serde_json::from_str(&profile.availability_zone_data).unwrap_or_default();
    let Some(valid) = data.get("valid_vip_networks").and_then(|v| v.as_array()) else {
        return Ok(());
    };
    if valid.is_empty()
        || valid
            .iter()
            .filter_map(|v| v.as_str())
            .any(|n| Uuid::parse_str(n).is_ok_and(|id| id == vip_network))
    {
        return Ok(());
    }
    Err(ServiceError::validation(
        "Supplied VIP network_id is not allowed by the configuration of this deployment.",
    ))
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
/// the controller owed a failover (with agents, a move to another one).
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
    txn.enqueue_failover(id)?;
    Ok(())
}
