//! `/quotas`: per-project limits, their listing and the deployment defaults.
//!
//! Every quota body carries both spellings of the two renamed limits
//! (`loadbalancer`/`load_balancer`, `healthmonitor`/`health_monitor`):
//! gophercloud and openstacksdk read the old ones, the CLI the new ones.
//! A project without a row uses the deployment defaults; `DELETE` removes
//! the row.

use super::*;
use crate::QuotaDefaults;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/quotas", get(list))
        // A static segment wins over `{project_id}` in the router.
        .route("/quotas/defaults", get(defaults))
        .route("/quotas/{project_id}", get(show).put(update).delete(delete))
        .route("/quotas/{project_id}/default", get(project_defaults))
}

/// Every attribute a quota can show (filters and sort keys).
pub const QUOTA_ATTRS: &[&str] = &[
    "project_id",
    "tenant_id",
    "loadbalancer",
    "load_balancer",
    "listener",
    "member",
    "pool",
    "healthmonitor",
    "health_monitor",
    "l7policy",
    "l7rule",
];

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

    /// The wire form, with both spellings, and the project when there is one.
    pub fn render(&self, project_id: Option<&str>) -> Object {
        let mut o = match json!({
            "loadbalancer": self.loadbalancer,
            "load_balancer": self.loadbalancer,
            "listener": self.listener,
            "member": self.member,
            "pool": self.pool,
            "healthmonitor": self.healthmonitor,
            "health_monitor": self.healthmonitor,
            "l7policy": self.l7policy,
            "l7rule": self.l7rule,
        }) {
            Value::Object(o) => o,
            _ => Object::new(),
        };
        if let Some(p) = project_id {
            o.insert("project_id".into(), json!(p));
            o.insert("tenant_id".into(), json!(p));
        }
        o
    }
}

/// A project's effective quota (its row, defaults filling the gaps).
pub fn effective(app: &AppState, s: &State, project_id: &str) -> Limits {
    s.quotas
        .get(&project_id.to_string())
        .map(|q| Limits::of(q))
        .unwrap_or_default()
        .effective(&app.settings.quota_defaults)
}

const QUOTA: &str = "os_load-balancer_api:quota:";

/// The quota rule `action` (`get_one`, `put`, …) on `project_id`.
fn authorize_quota(ctx: &RequestContext, action: &str, project_id: &str) -> ApiResult<()> {
    ctx.authorize(&format!("{QUOTA}{action}"), project_id)
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    // `get_all-global` (read-quota-global): global observers, quota admins
    // and admins see all.
    let scope = if ctx.allowed(&format!("{QUOTA}get_all-global"), "") {
        None
    } else {
        let project = q.get("project_id").unwrap_or(&ctx.project_id).to_string();
        authorize_quota(&ctx, "get_all", &project)?;
        Some(project)
    };
    let s = app.store.snapshot();
    // Quotas have no id: the project stands in for it (as paging marker and
    // tie-breaker) while the list is sorted and paged, and is dropped after.
    let items = s
        .quotas
        .iter()
        .filter(|quota| in_scope(&scope, &quota.project_id))
        .map(|quota| {
            let mut o = Limits::of(quota).render(Some(&quota.project_id));
            o.insert(MARKER_KEY.into(), json!(quota.project_id));
            o
        })
        .collect();
    let mut attrs = QUOTA_ATTRS.to_vec();
    attrs.push(MARKER_KEY);
    let mut body = app
        .collection(&ctx, &uri, "quotas", Some("quotas_links"), &attrs)
        .respond(items, &q)?;
    if let Some(Value::Array(list)) = body.get_mut("quotas") {
        for o in list.iter_mut().filter_map(Value::as_object_mut) {
            o.remove(MARKER_KEY);
        }
    }
    Ok(Json(body))
}

/// The key the collection pages by.
const MARKER_KEY: &str = "id";

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    authorize_quota(&ctx, "get_one", &project_id)?;
    let s = app.store.snapshot();
    let o = effective(&app, &s, &project_id).render(Some(&project_id));
    Ok(Json(super::loadbalancers::one("quota", o, &query(&uri))))
}

/// `GET /quotas/{project_id}/default`: the deployment defaults.
async fn project_defaults(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    authorize_quota(&ctx, "get_defaults", &project_id)?;
    let o = Limits::defaults(&app.settings.quota_defaults).render(None);
    Ok(Json(super::loadbalancers::one("quota", o, &query(&uri))))
}

/// `GET /quotas/defaults` (the CLI's and openstacksdk's way to ask): the
/// deployment defaults, readable by anyone who may read their own quota.
async fn defaults(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    authorize_quota(&ctx, "get_defaults", &ctx.project_id)?;
    let o = Limits::defaults(&app.settings.quota_defaults).render(None);
    Ok(Json(super::loadbalancers::one("quota", o, &query(&uri))))
}

const MIN_QUOTA: i64 = -1;
const MAX_QUOTA: i64 = 2_000_000_000;

/// One limit under either of its spellings; the current one wins when both
/// are given (as Octavia's `to_dict` does).
fn limit(input: &mut Input, key: &str, old_key: Option<&str>) -> ApiResult<Opt<i64>> {
    let old = match old_key {
        Some(k) => input.int(k, MIN_QUOTA, MAX_QUOTA)?,
        None => Opt::Absent,
    };
    let new = input.int(key, MIN_QUOTA, MAX_QUOTA)?;
    Ok(if new.is_absent() { old } else { new })
}

fn apply(slot: &mut Option<i64>, v: Opt<i64>) {
    if let Some(v) = v.update() {
        *slot = v;
    }
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    authorize_quota(&ctx, "put", &project_id)?;
    let mut input = Input::from_envelope(body, "quota")?;
    let loadbalancer = limit(&mut input, "loadbalancer", Some("load_balancer"))?;
    let listener = limit(&mut input, "listener", None)?;
    let member = limit(&mut input, "member", None)?;
    let pool = limit(&mut input, "pool", None)?;
    let healthmonitor = limit(&mut input, "healthmonitor", Some("health_monitor"))?;
    let l7policy = limit(&mut input, "l7policy", None)?;
    let l7rule = limit(&mut input, "l7rule", None)?;
    // Clients that echo a whole quota back send its project too; the path
    // names the project, so these are accepted and ignored.
    input.project_id()?;
    input.finish()?;
    let limits = app
        .store
        .write(|txn| {
            let mut q = txn
                .state()
                .quotas
                .get(&project_id)
                .map(|q| (**q).clone())
                .unwrap_or_else(|| Quota {
                    project_id: project_id.clone(),
                    ..Quota::default()
                });
            apply(&mut q.loadbalancer, loadbalancer);
            apply(&mut q.listener, listener);
            apply(&mut q.member, member);
            apply(&mut q.pool, pool);
            apply(&mut q.healthmonitor, healthmonitor);
            apply(&mut q.l7policy, l7policy);
            apply(&mut q.l7rule, l7rule);
            let limits = Limits::of(&q);
            txn.put(q)?;
            Ok::<_, ApiError>(limits)
        })
        .await?;
    let o = limits
        .effective(&app.settings.quota_defaults)
        .render(Some(&project_id));
    Ok((StatusCode::ACCEPTED, Json(json!({ "quota": o }))))
}

/// Back to the deployment defaults. Idempotent: a project without a row
/// already has them.
async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    authorize_quota(&ctx, "delete", &project_id)?;
    app.store
        .write(|txn| {
            txn.delete::<Quota>(&project_id);
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::ACCEPTED)
}
