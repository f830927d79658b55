//! `/loadbalancers`: show, list, update, delete (cascade), stats, status
//! tree, failover. The wire only: reading requests, rendering; the
//! operations are `statera_service::octavia::loadbalancers`. The create
//! (plain or fully populated) is `lb_create.rs`, still in this crate.

use super::*;
use crate::ApiSettings;
use crate::input::Input;
use crate::list::Object;
use crate::render;
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use resource::Resource;
use serde_json::{Value, json};
use statera_service::octavia::listeners::ListenerStats;
use statera_service::octavia::loadbalancers as service;
pub use statera_service::octavia::loadbalancers::LoadBalancerFields;
use statera_service::{Context, ServiceResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(resource::routes::<LoadBalancers>(
            "/loadbalancers",
            post(super::lb_create::create),
        ))
        .route("/loadbalancers/{id}/stats", get(stats))
        .route("/loadbalancers/{id}/status", get(status_tree))
        .route("/loadbalancers/{id}/statuses", get(status_tree))
        .route("/loadbalancers/{id}/failover", put(failover))
}

/// `/loadbalancers` in the shape every resource shares ([`resource`]).
pub struct LoadBalancers;

impl Resource for LoadBalancers {
    type Model = LoadBalancer;
    type Fields = LoadBalancerFields;
    const NAME: &'static str = "Load Balancer";
    const ENVELOPE: &'static str = "loadbalancer";
    const PLURAL: &'static str = "loadbalancers";
    const LINKS: &'static str = "loadbalancers_links";
    const ATTRS: &'static [&'static str] = render::LB_ATTRS;
    const LAZY: bool = true;

    fn render(s: &State, lb: &LoadBalancer) -> Object {
        render::loadbalancer(s, lb)
    }
    fn summary(_: &State, lb: &LoadBalancer) -> Object {
        render::loadbalancer_summary(lb)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<LoadBalancer>> {
        service::show(ctx, s, id)
    }
    fn list(
        ctx: &Context,
        s: &State,
        asked: Option<&str>,
    ) -> ServiceResult<Vec<Arc<LoadBalancer>>> {
        service::list(ctx, s, asked)
    }
    fn parse_update(input: &mut Input) -> ApiResult<LoadBalancerFields> {
        Ok(LoadBalancerFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            vip_qos_policy_id: input.uuid("vip_qos_policy_id")?,
            vip_sg_ids: input.uuid_list("vip_sg_ids")?,
            tags: tags(input)?,
        })
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        id: Uuid,
        f: LoadBalancerFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, id, f).map(drop)
    }
    /// `?cascade=true` deletes the whole tree.
    fn delete(ctx: &Context, txn: &mut Txn, id: Uuid, q: &Query) -> ServiceResult<()> {
        service::delete(ctx, txn, id, q.flag("cascade"))
    }
}

/// A single-object body, with `fields=` applied.
pub fn one(envelope: &str, o: crate::list::Object, q: &Query) -> Value {
    let fields = q.all("fields");
    let o = if fields.is_empty() {
        o
    } else {
        crate::list::select_fields(o, &fields)
    };
    json!({ envelope: o })
}

/// Listener counters as Octavia renders them.
pub fn stats_body(t: ListenerStats) -> Value {
    json!({"stats": {
        "bytes_in": t.bytes_in, "bytes_out": t.bytes_out, "active_connections": t.active_connections,
        "total_connections": t.total_connections, "request_errors": t.request_errors,
    }})
}

async fn stats(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let t = service::stats(&ctx.service, &*s, path_id(&id, "Load Balancer")?)?;
    Ok(Json(stats_body(t)))
}

async fn status_tree(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let lb = service::status(&ctx.service, &*s, path_id(&id, "Load Balancer")?)?;
    let name = |n: &Option<String>| n.clone().unwrap_or_default();
    let pool_tree = |pid: Uuid| -> Option<Value> {
        let p = s.pools.get(&pid)?;
        let mut o = json!({
            "id": p.id, "name": name(&p.name),
            "provisioning_status": p.provisioning_status, "operating_status": p.operating_status,
            "members": s.members.children(p.id).map(|m| json!({
                "id": m.id, "name": name(&m.name), "operating_status": m.operating_status,
                "provisioning_status": m.provisioning_status, "address": m.address_text(),
                "protocol_port": m.protocol_port,
            })).collect::<Vec<_>>(),
        });
        if let Some(h) = s.pool_monitor(p.id) {
            o["health_monitor"] = json!({
                "id": h.id, "name": name(&h.name), "type": h.kind,
                "provisioning_status": h.provisioning_status, "operating_status": h.operating_status,
            });
        }
        Some(o)
    };
    let listeners: Vec<Value> = s
        .listeners
        .children(lb.id)
        .map(|l| {
            let mut pool_ids: Vec<Uuid> = l.default_pool_id.into_iter().collect();
            let mut policies: Vec<_> = s.l7policies.children(l.id).collect();
            policies.sort_by_key(|p| p.position);
            for p in policies {
                if let Some(pid) = p.redirect_pool_id
                    && !pool_ids.contains(&pid)
                {
                    pool_ids.push(pid);
                }
            }
            json!({
                "id": l.id, "name": name(&l.name),
                "operating_status": l.operating_status, "provisioning_status": l.provisioning_status,
                "pools": pool_ids.into_iter().filter_map(pool_tree).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"statuses": {"loadbalancer": {
        "id": lb.id, "name": name(&lb.name),
        "operating_status": lb.operating_status, "provisioning_status": lb.provisioning_status,
        "listeners": listeners,
    }}})))
}

async fn failover(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Load Balancer")?;
    app.store
        .write(|txn| service::failover(&ctx.service, txn, id))
        .await?;
    Ok(StatusCode::ACCEPTED)
}
