//! Octavia's quotas (`/quotas`): a project's own limits (a row, `null` =
//! the deployment default) and the effective ones.

use super::list_owned;
use crate::auth::Context;
use crate::error::ServiceResult;
use crate::opt::Opt;
use crate::quota::QuotaDefaults;
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::sync::Arc;

/// The seven limits, in wire order, as one value each (`null` = default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub loadbalancer: Option<i64>,
    pub listener: Option<i64>,
    pub member: Option<i64>,
    pub pool: Option<i64>,
    pub healthmonitor: Option<i64>,
    pub l7policy: Option<i64>,
    pub l7rule: Option<i64>,
}

impl Limits {
    pub fn of(q: &Quota) -> Limits {
        Limits {
            loadbalancer: q.loadbalancer,
            listener: q.listener,
            member: q.member,
            pool: q.pool,
            healthmonitor: q.healthmonitor,
            l7policy: q.l7policy,
            l7rule: q.l7rule,
        }
    }

    pub fn defaults(d: &QuotaDefaults) -> Limits {
        Limits {
            loadbalancer: Some(d.loadbalancer),
            listener: Some(d.listener),
            member: Some(d.member),
            pool: Some(d.pool),
            healthmonitor: Some(d.healthmonitor),
            l7policy: Some(d.l7policy),
            l7rule: Some(d.l7rule),
        }
    }

    /// Unset limits replaced by the deployment defaults.
    pub fn effective(self, d: &QuotaDefaults) -> Limits {
        Limits {
            loadbalancer: self.loadbalancer.or(Some(d.loadbalancer)),
            listener: self.listener.or(Some(d.listener)),
            member: self.member.or(Some(d.member)),
            pool: self.pool.or(Some(d.pool)),
            healthmonitor: self.healthmonitor.or(Some(d.healthmonitor)),
            l7policy: self.l7policy.or(Some(d.l7policy)),
            l7rule: self.l7rule.or(Some(d.l7rule)),
        }
    }
}

/// A quota update as a request states it, one field per limit.
pub struct QuotaFields {
    pub loadbalancer: Opt<i64>,
    pub listener: Opt<i64>,
    pub member: Opt<i64>,
    pub pool: Opt<i64>,
    pub healthmonitor: Opt<i64>,
    pub l7policy: Opt<i64>,
    pub l7rule: Opt<i64>,
}

fn apply(slot: &mut Option<i64>, v: Opt<i64>) {
    if let Some(v) = v.update() {
        *slot = v;
    }
}

/// The quota rule `action` (`get_one`, `put`, …) on `project_id`.
pub fn authorize(ctx: &Context, action: &str, project_id: &str) -> ServiceResult<()> {
    ctx.authorize(&format!("os_load-balancer_api:quota:{action}"), project_id)
}

/// A project's effective quota (its row, defaults filling the gaps).
pub fn effective(d: &QuotaDefaults, s: &impl StoreRead, project_id: &str) -> Limits {
    s.get::<Quota>(&project_id.to_string())
        .map(|q| Limits::of(&q))
        .unwrap_or_default()
        .effective(d)
}

/// `GET /quotas`: the rows the caller may list (`get_all-global`: global
/// observers, quota admins and admins see all; else project `asked` or its
/// own), in project order.
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
    asked: Option<&str>,
) -> ServiceResult<Vec<Arc<Quota>>> {
    list_owned(ctx, s, asked, "quota")
}

/// `GET /quotas/{project_id}`: the effective limits.
pub fn show(
    ctx: &Context,
    s: &impl StoreRead,
    d: &QuotaDefaults,
    project_id: &str,
) -> ServiceResult<Limits> {
    authorize(ctx, "get_one", project_id)?;
    Ok(effective(d, s, project_id))
}

/// `GET /quotas/defaults`, `GET /quotas/{project_id}/default`.
pub fn defaults(ctx: &Context, d: &QuotaDefaults, project_id: &str) -> ServiceResult<Limits> {
    authorize(ctx, "get_defaults", project_id)?;
    Ok(Limits::defaults(d))
}

/// `PUT /quotas/{project_id}`: the row's limits as given (null = back to
/// the default). Returns the row's limits.
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    project_id: &str,
    f: QuotaFields,
) -> ServiceResult<Limits> {
    authorize(ctx, "put", project_id)?;
    let mut q = txn
        .get::<Quota>(&project_id.to_string())
        .map(|q| (*q).clone())
        .unwrap_or_else(|| Quota {
            project_id: project_id.to_string(),
            ..Quota::default()
        });
    apply(&mut q.loadbalancer, f.loadbalancer);
    apply(&mut q.listener, f.listener);
    apply(&mut q.member, f.member);
    apply(&mut q.pool, f.pool);
    apply(&mut q.healthmonitor, f.healthmonitor);
    apply(&mut q.l7policy, f.l7policy);
    apply(&mut q.l7rule, f.l7rule);
    let limits = Limits::of(&q);
    txn.put(q)?;
    Ok(limits)
}

/// `DELETE /quotas/{project_id}`: back to the deployment defaults.
/// Idempotent: a project without a row already has them.
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, project_id: &str) -> ServiceResult<()> {
    authorize(ctx, "delete", project_id)?;
    txn.delete::<Quota>(&project_id.to_string());
    Ok(())
}
