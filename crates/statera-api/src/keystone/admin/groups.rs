//! `/v3/groups`: create, list (`name`, `domain_id`), show, update, delete;
//! membership: `PUT/HEAD/DELETE /v3/groups/{g}/users/{u}`,
//! `GET /v3/groups/{g}/users`.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{Actor, Group, new_id};

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
    const KIND: &'static str = "group";
    const PLURAL: &'static str = "groups";
    const GET: &'static str = "identity:get_group";
    const LIST: &'static str = "identity:list_groups";
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

fn name_taken(txn: &Txn, domain_id: &str, name: &str, except: &str) -> bool {
    txn.state()
        .groups
        .iter()
        .any(|g| g.id != except && g.domain_id == domain_id && g.name.eq_ignore_ascii_case(name))
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_group", Target::default())?;
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
    let g = write(&state, |txn| {
        if !txn.state().domains.contains(&g.domain_id) {
            return Err(not_found("domain", &g.domain_id));
        }
        if name_taken(txn, &g.domain_id, &g.name, "") {
            return Err(duplicate_in("group", &g.name, &g.domain_id));
        }
        txn.put(g.clone())?;
        Ok(g)
    })
    .await?;
    Ok(one(StatusCode::CREATED, "group", render(&ctx, &g)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:update_group", Target::default())?;
    let obj = envelope(&body, "group")?;
    if obj.contains_key("domain_id") {
        return Err(bad_request("Update of `domain_id` is not allowed."));
    }
    only(&obj, &["name", "description"])?;
    let name = name_field(&obj, false, NAME_MAX)?;
    let description = description_field(&obj)?;
    let g = write(&state, |txn| {
        let mut g = fetch::<Group>(txn.state(), &id)?;
        if let Some(n) = name {
            if name_taken(txn, &g.domain_id, &n, &g.id) {
                return Err(duplicate_in("group", &n, &g.domain_id));
            }
            g.name = n;
        }
        if let Some(x) = description {
            g.description = x;
        }
        txn.put(g.clone())?;
        Ok(g)
    })
    .await?;
    Ok(one(StatusCode::OK, "group", render(&ctx, &g)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_group", Target::default())?;
    write(&state, |txn| {
        let g = fetch::<Group>(txn.state(), &id)?;
        delete_assignments(txn, |a| matches!(&a.actor, Actor::Group(x) if x == &id));
        txn.delete::<Group>(&id);
        // Its members lose what the group gave them.
        for u in &g.members {
            revoke(txn, |r| r.user_id = Some(u.clone()))?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn members(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:list_users_in_group", Target::default())?;
    let snap = state.store.snapshot();
    let g = snap
        .groups
        .get(&id)
        .ok_or_else(|| not_found("group", &id))?;
    let mut users: Vec<_> = g.members.iter().filter_map(|u| snap.users.get(u)).collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let items = users
        .into_iter()
        .map(|u| super::users::render(&ctx, u))
        .collect();
    Ok(collection(&ctx, "users", &uri, items))
}

async fn check_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:check_user_in_group", Target::default())?;
    let snap = state.store.snapshot();
    let g = snap
        .groups
        .get(&id)
        .ok_or_else(|| not_found("group", &id))?;
    if !snap.users.contains(&user) {
        return Err(not_found("user", &user));
    }
    if !g.members.contains(&user) {
        return Err(kerr(
            StatusCode::NOT_FOUND,
            format!("User '{user}' not found in group '{id}'"),
        ));
    }
    Ok(no_content())
}

async fn add_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:add_user_to_group", Target::default())?;
    write(&state, |txn| {
        let mut g = fetch::<Group>(txn.state(), &id)?;
        if !txn.state().users.contains(&user) {
            return Err(not_found("user", &user));
        }
        if !g.members.contains(&user) {
            g.members.push(user.clone());
            txn.put(g)?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn remove_member(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:remove_user_from_group", Target::default())?;
    write(&state, |txn| {
        let mut g = fetch::<Group>(txn.state(), &id)?;
        if !txn.state().users.contains(&user) {
            return Err(not_found("user", &user));
        }
        if !g.members.contains(&user) {
            return Err(kerr(
                StatusCode::NOT_FOUND,
                format!("User '{user}' not found in group '{id}'"),
            ));
        }
        g.members.retain(|m| m != &user);
        txn.put(g)?;
        revoke(txn, |r| r.user_id = Some(user.clone()))
    })
    .await?;
    Ok(no_content())
}
