//! `/v3/roles` (global and domain-specific): create, list (`name`,
//! `domain_id`), show, update, delete; implied roles:
//! `PUT/GET/HEAD/DELETE /v3/roles/{prior}/implies/{implied}`,
//! `GET /v3/roles/{prior}/implies`, `GET /v3/role_inferences`. The wire
//! only: the operations are `statera_service::identity::roles`.

use super::*;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{Role, new_id};
use statera_service::identity::roles::{self as service, Inference, RoleFields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/roles", get(list::<Role>).post(create))
        .route(
            "/v3/roles/{id}",
            get(show::<Role>).patch(update).delete(delete),
        )
        .route("/v3/roles/{id}/implies", get(list_implied))
        .route(
            "/v3/roles/{id}/implies/{implied}",
            get(get_implied)
                .head(check_implied)
                .put(create_implied)
                .delete(delete_implied),
        )
        .route("/v3/role_inferences", get(inferences))
}

impl AdminResource for Role {
    const PLURAL: &'static str = "roles";
    const FILTERS: &'static [&'static str] = &["name", "domain_id"];
    fn render(ctx: &RequestContext, r: &Self) -> Value {
        render(ctx, r)
    }
    fn sort_key(&self) -> String {
        self.name.clone()
    }
    /// Without `domain_id` the global roles are listed (Keystone).
    fn listed(q: &crate::list::Query, r: &Self) -> bool {
        q.get("domain_id").is_some() || r.domain_id.is_none()
    }
}

pub fn render(ctx: &RequestContext, r: &Role) -> Value {
    with_self(
        ctx,
        json!({
            "id": r.id,
            "name": r.name,
            "domain_id": r.domain_id,
            "description": r.description,
            "options": r.options,
        }),
        &format!("roles/{}", r.id),
    )
}

/// The short form an inference shows (`{id, name, links}`).
fn brief(ctx: &RequestContext, r: &Role) -> Value {
    with_self(
        ctx,
        json!({"id": r.id, "name": r.name}),
        &format!("roles/{}", r.id),
    )
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE, Target::default())?;
    let obj = envelope(&body, "role")?;
    only(&obj, &["name", "domain_id", "description", "options"])?;
    let r = Role {
        id: new_id(),
        name: name_field(&obj, true, NAME_MAX)?.unwrap_or_default(),
        domain_id: opt_str(&obj, "domain_id", 64, true)?.flatten(),
        description: description_field(&obj)?.unwrap_or_default(),
        implies: Vec::new(),
        options: options_field(&obj)?.unwrap_or_default(),
        created_at: statera_model::now(),
    };
    let r = service_write(&state, |txn| service::create(&ctx.service, txn, r)).await?;
    Ok(one(StatusCode::CREATED, "role", render(&ctx, &r)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::UPDATE, Target::default())?;
    let obj = envelope(&body, "role")?;
    if obj.contains_key("domain_id") {
        return Err(bad_request("Update of `domain_id` is not allowed."));
    }
    only(&obj, &["name", "description", "options"])?;
    let f = RoleFields {
        name: name_field(&obj, false, NAME_MAX)?,
        description: description_field(&obj)?,
        options: options_field(&obj)?,
    };
    let r = service_write(&state, |txn| service::update(&ctx.service, txn, &id, f)).await?;
    Ok(one(StatusCode::OK, "role", render(&ctx, &r)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE, Target::default())?;
    service_write(&state, |txn| service::delete(&ctx.service, txn, &id)).await?;
    Ok(no_content())
}

fn inference_link(ctx: &RequestContext, prior: &str, implied: &str) -> Value {
    json!({"self": link(ctx, &format!("roles/{prior}/implies/{implied}"))})
}

async fn get_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (p, i) = service::get_implied(&ctx.service, &*state.store.snapshot(), &prior, &implied)
        .map_err(kse)?;
    Ok(Json(json!({
        "role_inference": {"prior_role": brief(&ctx, &p), "implies": brief(&ctx, &i)},
        "links": inference_link(&ctx, &prior, &implied),
    }))
    .into_response())
}

async fn check_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult<Response> {
    service::get_implied(&ctx.service, &*state.store.snapshot(), &prior, &implied).map_err(kse)?;
    Ok(no_content())
}

async fn create_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE_IMPLIED, Target::default())?;
    let (p, i) = service_write(&state, |txn| {
        service::create_implied(&ctx.service, txn, &prior, &implied)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "role_inference": {"prior_role": brief(&ctx, &p), "implies": brief(&ctx, &i)},
            "links": inference_link(&ctx, &prior, &implied),
        })),
    )
        .into_response())
}

async fn delete_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE_IMPLIED, Target::default())?;
    service_write(&state, |txn| {
        service::delete_implied(&ctx.service, txn, &prior, &implied)
    })
    .await?;
    Ok(no_content())
}

fn inference(ctx: &RequestContext, i: &Inference) -> Value {
    let implies: Vec<Value> = i.implies.iter().map(|r| brief(ctx, r)).collect();
    json!({"prior_role": brief(ctx, &i.prior), "implies": implies})
}

async fn list_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(prior): Path<String>,
) -> ApiResult<Response> {
    let i = service::list_implied(&ctx.service, &*state.store.snapshot(), &prior).map_err(kse)?;
    Ok(Json(json!({
        "role_inference": inference(&ctx, &i),
        "links": {"self": link(&ctx, &format!("roles/{prior}/implies"))},
    }))
    .into_response())
}

async fn inferences(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Response> {
    let all = service::inferences(&ctx.service, &*state.store.snapshot()).map_err(kse)?;
    let items: Vec<Value> = all.iter().map(|i| inference(&ctx, i)).collect();
    Ok(Json(json!({
        "role_inferences": items,
        "links": {"self": link(&ctx, "role_inferences")},
    }))
    .into_response())
}
