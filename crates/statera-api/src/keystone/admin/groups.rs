//! `/v3/groups`: create, list (`name`, `domain_id`), show, update, delete;
//! membership: `PUT/HEAD/DELETE /v3/groups/{g}/users/{u}`,
//! `GET /v3/groups/{g}/users`. The wire only: the operations are
//! `statera_service::identity::groups`.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{Group, new_id};
use statera_service::identity::groups::{self as service, GroupFields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/groups", get(list::<Group>).post(create))
        .route(
            "/v3/groups/{id}",
            get(show::<Group>).patch(update).delete(delete),
        )
        .route("/v3/groups/{id}/users", get(members))
        .route(
            "/v3/groups/{id}/users/{user}",
            get(check_member).put(add_member).delete(remove_member),
        )
}

impl AdminResource for Group {
    const PLURAL: &'static str = "groups";
    const FILTERS: &'static [&'static str] = &["name", "domain_id"];
    fn render(ctx: &RequestContext, g: &Self) -> Value {
        render(ctx, g)
    }
    fn sort_key(&self) -> String {
        self.name.clone()
    }
}

pub fn render(ctx: &RequestContext, g: &Group) -> Value {
    with_self(
        ctx,
        json!({
            "id": g.id,
            "name": g.name,
            "domain_id": g.domain_id,
            "description": g.description,
        }),
        &format!("groups/{}", g.id),
    )
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE, Target::default())?;
    let obj = envelope(&body, "group")?;
    only(&obj, &["name", "domain_id", "description"])?;
    let g = Group {
        id: new_id(),
        name: name_field(&obj, true, NAME_MAX)?.unwrap_or_default(),
        domain_id: opt_str(&obj, "domain_id", 64, false)?
            .flatten()
            .unwrap_or_else(|| {
                ctx.caller
                    .user_domain_id
                    .clone()
                    .unwrap_or_else(|| statera_model::identity::DEFAULT_DOMAIN_ID.to_string())
            }),
        description: description_field(&obj)?.unwrap_or_default(),
        members: Vec::new(),
        created_at: statera_model::now(),
    };
    let g = service_write(&state, |txn| service::create(&ctx.service, txn, g)).await?;
    Ok(one(StatusCode::CREATED, "group", render(&ctx, &g)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::UPDATE, Target::default())?;
    let obj = envelope(&body, "group")?;
    if obj.contains_key("domain_id") {
        return Err(bad_request("Update of `domain_id` is not allowed."));
    }
    only(&obj, &["name", "description"])?;
    let f = GroupFields {
        name: name_field(&obj, false, NAME_MAX)?,
        description: description_field(&obj)?,
    };
    let g = service_write(&state, |txn| service::update(&ctx.service, txn, &id, f)).await?;
    Ok(one(StatusCode::OK, "group", render(&ctx, &g)))
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

async fn members(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    let mut users = service::members(&ctx.service, &*state.store.snapshot(), &id).map_err(kse)?;
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let items = users
        .iter()
        .map(|u| super::users::render(&ctx, u))
        .collect();
    Ok(collection(&ctx, "users", &uri, items))
}

async fn check_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    service::check_member(&ctx.service, &*state.store.snapshot(), &id, &user).map_err(kse)?;
    Ok(no_content())
}

async fn add_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    admit(&ctx, service::ADD_USER, Target::default())?;
    service_write(&state, |txn| {
        service::add_member(&ctx.service, txn, &id, &user)
    })
    .await?;
    Ok(no_content())
}

async fn remove_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    admit(&ctx, service::REMOVE_USER, Target::default())?;
    service_write(&state, |txn| {
        service::remove_member(&ctx.service, txn, &id, &user)
    })
    .await?;
    Ok(no_content())
}
