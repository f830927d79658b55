//! `/v3/roles` (global and domain-specific): create, list (`name`,
//! `domain_id`), show, update, delete; implied roles:
//! `PUT/GET/HEAD/DELETE /v3/roles/{prior}/implies/{implied}`,
//! `GET /v3/roles/{prior}/implies`, `GET /v3/role_inferences`.

use super::*;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{Actor, Role, new_id};
use statera_store::State as StoreState;

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

fn name_taken(txn: &Txn, domain_id: Option<&str>, name: &str, except: &str) -> bool {
    txn.state().roles.iter().any(|r| {
        r.id != except && r.domain_id.as_deref() == domain_id && r.name.eq_ignore_ascii_case(name)
    })
}

/// Every role `role_id` implies, transitively (itself excluded unless a
/// cycle leads back to it).
pub fn implied_closure(state: &StoreState, role_id: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo = vec![role_id.to_string()];
    while let Some(r) = todo.pop() {
        if let Some(role) = state.roles.get(&r) {
            for i in &role.implies {
                if !out.contains(i) && state.roles.contains(i) {
                    out.push(i.clone());
                    todo.push(i.clone());
                }
            }
        }
        if out.len() > 1024 {
            break;
        }
    }
    out
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_role", Target::default())?;
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
    let r = write(&state, |txn| {
        if let Some(d) = &r.domain_id
            && !txn.state().domains.contains(d)
        {
            return Err(not_found("domain", d));
        }
        if name_taken(txn, r.domain_id.as_deref(), &r.name, "") {
            return Err(duplicate("role", &r.name));
        }
        txn.put(r.clone())?;
        Ok(r)
    })
    .await?;
    Ok(one(StatusCode::CREATED, "role", render(&ctx, &r)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:update_role", Target::default())?;
    let obj = envelope(&body, "role")?;
    if obj.contains_key("domain_id") {
        return Err(bad_request("Update of `domain_id` is not allowed."));
    }
    only(&obj, &["name", "description", "options"])?;
    let name = name_field(&obj, false, NAME_MAX)?;
    let description = description_field(&obj)?;
    let options = options_field(&obj)?;
    let r = write(&state, |txn| {
        let mut r = fetch::<Role>(txn.state(), &id)?;
        if let Some(n) = name {
            if name_taken(txn, r.domain_id.as_deref(), &n, &r.id) {
                return Err(duplicate("role", &n));
            }
            r.name = n;
        }
        if let Some(x) = description {
            r.description = x;
        }
        if let Some(x) = options {
            r.options.extend(x);
            r.options.retain(|_, v| !v.is_null());
        }
        txn.put(r.clone())?;
        Ok(r)
    })
    .await?;
    Ok(one(StatusCode::OK, "role", render(&ctx, &r)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_role", Target::default())?;
    write(&state, |txn| {
        fetch::<Role>(txn.state(), &id)?;
        let holders: Vec<String> = txn
            .state()
            .role_assignments
            .iter()
            .filter(|a| a.role_id == id)
            .flat_map(|a| match &a.actor {
                Actor::User(u) => vec![u.clone()],
                Actor::Group(g) => txn
                    .state()
                    .groups
                    .get(g)
                    .map(|g| g.members.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let mut holders = holders;
        holders.sort();
        holders.dedup();
        delete_assignments(txn, |a| a.role_id == id);
        let priors: Vec<Role> = txn
            .state()
            .roles
            .iter()
            .filter(|r| r.implies.contains(&id))
            .map(|r| (**r).clone())
            .collect();
        for mut r in priors {
            r.implies.retain(|i| i != &id);
            txn.put(r)?;
        }
        let creds: Vec<_> = txn
            .state()
            .application_credentials
            .iter()
            .filter(|c| c.role_ids.contains(&id))
            .map(|c| (**c).clone())
            .collect();
        for mut c in creds {
            c.role_ids.retain(|r| r != &id);
            txn.put(c)?;
        }
        txn.delete::<Role>(&id);
        for u in holders {
            revoke(txn, |r| r.user_id = Some(u))?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

fn inference_link(ctx: &RequestContext, prior: &str, implied: &str) -> Value {
    json!({"self": link(ctx, &format!("roles/{prior}/implies/{implied}"))})
}

fn lookup_pair(state: &StoreState, prior: &str, implied: &str) -> ApiResult<(Role, Role)> {
    let p = state
        .roles
        .get(&prior.to_string())
        .ok_or_else(|| not_found("role", prior))?;
    let i = state
        .roles
        .get(&implied.to_string())
        .ok_or_else(|| not_found("role", implied))?;
    Ok(((**p).clone(), (**i).clone()))
}

fn implied_not_found(prior: &str, implied: &str) -> ApiError {
    kerr(
        StatusCode::NOT_FOUND,
        format!("{prior} does not imply {implied}."),
    )
}

async fn get_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:get_implied_role", Target::default())?;
    let snap = state.store.snapshot();
    let (p, i) = lookup_pair(&snap, &prior, &implied)?;
    if !p.implies.contains(&implied) {
        return Err(implied_not_found(&prior, &implied));
    }
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
    authorize(&ctx, "identity:get_implied_role", Target::default())?;
    let snap = state.store.snapshot();
    let (p, _) = lookup_pair(&snap, &prior, &implied)?;
    if !p.implies.contains(&implied) {
        return Err(implied_not_found(&prior, &implied));
    }
    Ok(no_content())
}

async fn create_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_implied_role", Target::default())?;
    let (p, i) = write(&state, |txn| {
        let (mut p, i) = lookup_pair(txn.state(), &prior, &implied)?;
        // Keystone's `[assignment] prohibited_implied_role` (admin).
        if i.name.eq_ignore_ascii_case("admin") {
            return Err(forbidden(format!("{implied} cannot be an implied roles.")));
        }
        if p.domain_id.is_none() && i.domain_id.is_some() {
            return Err(forbidden("Global role cannot imply a domain-specific role"));
        }
        if prior == implied || implied_closure(txn.state(), &implied).contains(&prior) {
            return Err(bad_request(format!(
                "Implying {implied} from {prior} would create a cycle of implied roles."
            )));
        }
        if !p.implies.contains(&implied) {
            p.implies.push(implied.clone());
            txn.put(p.clone())?;
        }
        Ok((p, i))
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
    authorize(&ctx, "identity:delete_implied_role", Target::default())?;
    write(&state, |txn| {
        let (mut p, _) = lookup_pair(txn.state(), &prior, &implied)?;
        if !p.implies.contains(&implied) {
            return Err(implied_not_found(&prior, &implied));
        }
        p.implies.retain(|i| i != &implied);
        txn.put(p)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

fn inference(ctx: &RequestContext, snap: &StoreState, p: &Role) -> Value {
    let implies: Vec<Value> = p
        .implies
        .iter()
        .filter_map(|i| snap.roles.get(i))
        .map(|i| brief(ctx, i))
        .collect();
    json!({"prior_role": brief(ctx, p), "implies": implies})
}

async fn list_implied(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(prior): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:list_implied_roles", Target::default())?;
    let snap = state.store.snapshot();
    let p = snap
        .roles
        .get(&prior)
        .ok_or_else(|| not_found("role", &prior))?;
    Ok(Json(json!({
        "role_inference": inference(&ctx, &snap, p),
        "links": {"self": link(&ctx, &format!("roles/{prior}/implies"))},
    }))
    .into_response())
}

async fn inferences(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Response> {
    authorize(
        &ctx,
        "identity:list_role_inference_rules",
        Target::default(),
    )?;
    let snap = state.store.snapshot();
    let mut priors: Vec<&Role> = snap
        .roles
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| !r.implies.is_empty())
        .collect();
    priors.sort_by(|a, b| a.name.cmp(&b.name));
    let items: Vec<Value> = priors
        .into_iter()
        .map(|p| inference(&ctx, &snap, p))
        .collect();
    Ok(Json(json!({
        "role_inferences": items,
        "links": {"self": link(&ctx, "role_inferences")},
    }))
    .into_response())
}
