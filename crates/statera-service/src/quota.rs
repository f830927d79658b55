//! Octavia's quotas: per project, per kind, a project's own limit or the
//! deployment's default (−1 = unlimited).

use crate::error::{ServiceError, ServiceResult};
use crate::store::StoreRead;
use statera_model::*;

/// Deployment-wide quota defaults (−1 = unlimited).
#[derive(Debug, Clone, Copy)]
pub struct QuotaDefaults {
    pub loadbalancer: i64,
    pub listener: i64,
    pub member: i64,
    pub pool: i64,
    pub healthmonitor: i64,
    pub l7policy: i64,
    pub l7rule: i64,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        QuotaDefaults {
            loadbalancer: -1,
            listener: -1,
            member: -1,
            pool: -1,
            healthmonitor: -1,
            l7policy: -1,
            l7rule: -1,
        }
    }
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
pub fn quota_limit(d: &QuotaDefaults, s: &impl StoreRead, project: &str, kind: QuotaKind) -> i64 {
    let q = s.get::<Quota>(&project.to_string());
    let q = q.as_deref();
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
pub fn quota_usage(s: &impl StoreRead, project: &str, kind: QuotaKind) -> i64 {
    let n = match kind {
        QuotaKind::LoadBalancer => s.count_by_project::<LoadBalancer>(project),
        QuotaKind::Listener => s.count_by_project::<Listener>(project),
        QuotaKind::Pool => s.count_by_project::<Pool>(project),
        QuotaKind::Member => s.count_by_project::<Member>(project),
        QuotaKind::HealthMonitor => s.count_by_project::<HealthMonitor>(project),
        QuotaKind::L7Policy => s.count_by_project::<L7Policy>(project),
        QuotaKind::L7Rule => s.count_by_project::<L7Rule>(project),
    };
    n as i64
}

/// 403 `Quota has been met for resources: …` when adding `adding` objects of
/// `kind` would pass the project's limit.
pub fn check_quota(
    d: &QuotaDefaults,
    s: &impl StoreRead,
    project: &str,
    kind: QuotaKind,
    adding: i64,
) -> ServiceResult<()> {
    if adding <= 0 {
        return Ok(());
    }
    let limit = quota_limit(d, s, project, kind);
    if limit >= 0 && quota_usage(s, project, kind) + adding > limit {
        return Err(ServiceError::Forbidden(format!(
            "Quota has been met for resources: {}",
            kind.resource_name()
        )));
    }
    Ok(())
}
