//! The Octavia v2 API: one module per resource, sharing the locking rules
//! (one change at a time per load balancer), quota checks and listing.

pub mod amphorae;
pub mod availability_zones;
pub mod flavors;
pub mod graph_input;
pub mod healthmonitors;
pub mod l7policies;
pub mod l7rules;
pub mod listeners;
pub mod loadbalancers;
pub mod members;
pub mod pools;
pub mod providers;
pub mod quotas;

use crate::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::list::{Collection, Query};
use axum::Router;
use axum::http::Uri;
use statera_model::*;
use statera_store::{State, Txn};
use std::sync::Arc;
use uuid::Uuid;

/// Every Octavia route, relative to `/v2` (mounted with and without `/lbaas`).
pub fn routes() -> Router<AppState> {
    let lbaas = Router::new()
        .merge(loadbalancers::routes())
        .merge(listeners::routes())
        .merge(pools::routes())
        .merge(members::routes())
        .merge(healthmonitors::routes())
        .merge(l7policies::routes())
        .merge(l7rules::routes())
        .merge(quotas::routes())
        .merge(providers::routes())
        .merge(flavors::routes())
        .merge(availability_zones::routes());
    Router::new()
        .nest("/lbaas", lbaas.clone())
        .merge(lbaas)
        .nest("/octavia", amphorae::routes())
}

/// A path id: anything that is not a UUID simply names nothing (404).
pub fn path_id(raw: &str, resource: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(resource, raw))
}

impl AppState {
    /// A collection at the request's own URL.
    pub fn collection<'a>(
        &self,
        ctx: &RequestContext,
        uri: &Uri,
        plural: &'a str,
        links_key: Option<&'a str>,
        attributes: &'a [&'a str],
    ) -> Collection<'a> {
        Collection {
            plural,
            links_key,
            attributes,
            ignored: &[],
            url: format!("{}{}", ctx.base_url, uri.path()),
            max_limit: self.settings.pagination_max_limit,
            strict_filters: true,
        }
    }
}

/// Which projects' objects a list of `resource` (`loadbalancer`, …) shows:
/// `None` = all (`os_load-balancer_api:RESOURCE:get_all-global`), else the
/// one project, which `…:get_all` must allow (asking for another is 403).
pub fn list_scope(
    ctx: &RequestContext,
    query: &Query,
    resource: &str,
) -> ApiResult<Option<String>> {
    if ctx.allowed(
        &format!("os_load-balancer_api:{resource}:get_all-global"),
        "",
    ) {
        return Ok(None);
    }
    let project = query
        .get("project_id")
        .unwrap_or(&ctx.project_id)
        .to_string();
    ctx.authorize(
        &format!("os_load-balancer_api:{resource}:get_all"),
        &project,
    )?;
    Ok(Some(project))
}

pub fn in_scope(scope: &Option<String>, project_id: &str) -> bool {
    scope.as_deref().is_none_or(|p| p == project_id)
}

/// Parse the raw query of a request.
pub fn query(uri: &Uri) -> Query {
    Query::parse(uri.query())
}

pub fn load_balancer(s: &State, id: Uuid) -> ApiResult<&Arc<LoadBalancer>> {
    s.loadbalancers
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Load Balancer", id))
}

/// Lock a load balancer for a change to one of its children: it must be
/// ACTIVE (409 otherwise); it goes PENDING_UPDATE and the controller is owed
/// work about `subjects` (the objects the change is about, as opposed to
/// parents only locked along).
pub fn lock_lb(txn: &mut Txn, lb_id: Uuid, subjects: &[Uuid]) -> ApiResult<()> {
    let lb = load_balancer(txn.state(), lb_id)?;
    if !status::accepts_changes(lb.provisioning_status) {
        return Err(ApiError::immutable("Load Balancer", lb_id));
    }
    let mut lb = (**lb).clone();
    lb.provisioning_status = ProvisioningStatus::PendingUpdate;
    lb.updated_at = Some(now());
    txn.put(lb)?;
    txn.enqueue(lb_id, subjects)?;
    Ok(())
}

/// Set a listener PENDING_UPDATE (as a parent of the change).
pub fn touch_listener(txn: &mut Txn, id: Uuid) -> ApiResult<()> {
    if let Some(l) = txn.state().listeners.get(&id) {
        let mut l = (**l).clone();
        if !l.provisioning_status.is_pending() {
            l.provisioning_status = ProvisioningStatus::PendingUpdate;
        }
        l.updated_at = Some(now());
        txn.put(l)?;
    }
    Ok(())
}

/// Set a pool and every listener using it PENDING_UPDATE (as parents of the change).
pub fn touch_pool(txn: &mut Txn, id: Uuid) -> ApiResult<()> {
    let Some(p) = txn.state().pools.get(&id).cloned() else {
        return Ok(());
    };
    let listeners: Vec<Uuid> = txn
        .state()
        .listeners_using_pool(p.loadbalancer_id, id)
        .map(|l| l.id)
        .collect();
    let mut p = (*p).clone();
    if !p.provisioning_status.is_pending() {
        p.provisioning_status = ProvisioningStatus::PendingUpdate;
    }
    p.updated_at = Some(now());
    txn.put(p)?;
    for l in listeners {
        touch_listener(txn, l)?;
    }
    Ok(())
}

/// A pool that a member or monitor change goes through: it must be ACTIVE.
pub fn pool_for_change(s: &State, pool_id: Uuid) -> ApiResult<Arc<Pool>> {
    let pool = s
        .pools
        .get(&pool_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Pool", pool_id))?;
    if pool.provisioning_status != ProvisioningStatus::Active {
        let lb_pending = s
            .loadbalancers
            .get(&pool.loadbalancer_id)
            .is_some_and(|lb| lb.provisioning_status.is_pending());
        return Err(if lb_pending {
            ApiError::immutable("Load Balancer", pool.loadbalancer_id)
        } else {
            ApiError::immutable("Pool", pool_id)
        });
    }
    Ok(pool)
}

/// The kinds of object a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    LoadBalancer,
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule,
}

impl QuotaKind {
    fn resource_name(self) -> &'static str {
        match self {
            QuotaKind::LoadBalancer => "Load Balancer",
            QuotaKind::Listener => "Listener",
            QuotaKind::Pool => "Pool",
            QuotaKind::Member => "Member",
            QuotaKind::HealthMonitor => "Health Monitor",
            QuotaKind::L7Policy => "L7 Policy",
            QuotaKind::L7Rule => "L7 Rule",
        }
    }
}

/// The effective limit of `kind` for `project` (−1 = unlimited).
pub fn quota_limit(app: &AppState, s: &State, project: &str, kind: QuotaKind) -> i64 {
    let q = s.quotas.get(&project.to_string());
    let d = &app.settings.quota_defaults;
    let (set, default) = match kind {
        QuotaKind::LoadBalancer => (q.and_then(|q| q.loadbalancer), d.loadbalancer),
        QuotaKind::Listener => (q.and_then(|q| q.listener), d.listener),
        QuotaKind::Pool => (q.and_then(|q| q.pool), d.pool),
        QuotaKind::Member => (q.and_then(|q| q.member), d.member),
        QuotaKind::HealthMonitor => (q.and_then(|q| q.healthmonitor), d.healthmonitor),
        QuotaKind::L7Policy => (q.and_then(|q| q.l7policy), d.l7policy),
        QuotaKind::L7Rule => (q.and_then(|q| q.l7rule), d.l7rule),
    };
    set.unwrap_or(default)
}

/// How many objects of `kind` a project has.
pub fn quota_usage(s: &State, project: &str, kind: QuotaKind) -> i64 {
    let n = match kind {
        QuotaKind::LoadBalancer => s
            .loadbalancers
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
        QuotaKind::Listener => s
            .listeners
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
        QuotaKind::Pool => s.pools.iter().filter(|o| o.project_id == project).count(),
        QuotaKind::Member => s.members.iter().filter(|o| o.project_id == project).count(),
        QuotaKind::HealthMonitor => s
            .healthmonitors
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
        QuotaKind::L7Policy => s
            .l7policies
            .iter()
            .filter(|o| o.project_id == project)
            .count(),
        QuotaKind::L7Rule => s.l7rules.iter().filter(|o| o.project_id == project).count(),
    };
    n as i64
}

/// 403 `Quota has been met for resources: …` when adding `adding` objects of
/// `kind` would pass the project's limit.
pub fn check_quota(
    app: &AppState,
    s: &State,
    project: &str,
    kind: QuotaKind,
    adding: i64,
) -> ApiResult<()> {
    if adding <= 0 {
        return Ok(());
    }
    let limit = quota_limit(app, s, project, kind);
    if limit >= 0 && quota_usage(s, project, kind) + adding > limit {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!("Quota has been met for resources: {}", kind.resource_name()),
        ));
    }
    Ok(())
}

/// Validation of the `tags` attribute (strings of at most 255 characters).
pub fn tags(input: &mut crate::input::Input) -> ApiResult<crate::input::Opt<Vec<String>>> {
    input.string_list("tags", 255)
}

/// 501 when the load balancer's provider cannot run monitors of `kind`.
pub fn check_monitor_supported(
    app: &AppState,
    lb: &LoadBalancer,
    kind: HealthMonitorType,
) -> ApiResult<()> {
    match app.settings.provider(&lb.provider) {
        Some(info) if info.unsupported_monitor_types.contains(&kind) => {
            Err(ApiError::not_implemented(format!(
                "Provider '{}' does not support a requested option: {kind} health monitors",
                lb.provider
            )))
        }
        _ => Ok(()),
    }
}

/// Put every row of `rows` in PENDING_DELETE.
fn mark_deleted<R: statera_store::Record + status::Provisioned>(
    txn: &mut Txn,
    rows: impl Iterator<Item = Arc<R>>,
) -> ApiResult<()> {
    for row in rows {
        let mut row = (*row).clone();
        row.set_provisioning_status(ProvisioningStatus::PendingDelete);
        txn.put(row)?;
    }
    Ok(())
}

/// An L7 policy and its rules → PENDING_DELETE.
pub fn mark_policy_deleted(txn: &mut Txn, s: &State, policy_id: Uuid) -> ApiResult<()> {
    mark_deleted(txn, s.l7rules.children(policy_id).cloned())?;
    mark_deleted(txn, s.l7policies.get(&policy_id).cloned().into_iter())
}

/// A listener, its policies and their rules → PENDING_DELETE.
pub fn mark_listener_deleted(txn: &mut Txn, s: &State, listener_id: Uuid) -> ApiResult<()> {
    for p in s.l7policies.children(listener_id) {
        mark_policy_deleted(txn, s, p.id)?;
    }
    mark_deleted(txn, s.listeners.get(&listener_id).cloned().into_iter())
}

/// A pool, its members and its monitor → PENDING_DELETE.
pub fn mark_pool_deleted(txn: &mut Txn, s: &State, pool_id: Uuid) -> ApiResult<()> {
    mark_deleted(txn, s.members.children(pool_id).cloned())?;
    mark_deleted(txn, s.healthmonitors.children(pool_id).cloned())?;
    mark_deleted(txn, s.pools.get(&pool_id).cloned().into_iter())
}

/// Stamp `updated_at` on the object just marked (the one the user deleted).
pub fn touch_updated<R: statera_store::Record>(
    txn: &mut Txn,
    key: &R::Key,
    stamp: impl FnOnce(&mut R),
) -> ApiResult<()> {
    if let Some(row) = R::table(txn.state()).get(key) {
        let mut row = (**row).clone();
        stamp(&mut row);
        txn.put(row)?;
    }
    Ok(())
}
