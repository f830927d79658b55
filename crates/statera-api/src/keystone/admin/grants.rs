//! Grants and role assignments.
//!
//! - `PUT/HEAD/GET/DELETE /v3/{projects,domains}/{id}/{users,groups}/{actor}/roles/{role}`,
//!   `GET .../roles`; the same under `/v3/system/{users,groups}/{actor}/roles`;
//!   OS-INHERIT: `/v3/OS-INHERIT/{domains,projects}/{id}/{users,groups}/{actor}/roles/{role}/inherited_to_projects`
//!   and its `GET .../roles/inherited_to_projects`.
//! - `GET /v3/role_assignments`: filters `user.id`, `group.id`, `role.id`,
//!   `scope.project.id`, `scope.domain.id`, `scope.system`,
//!   `scope.OS-INHERIT:inherited_to`; `effective` (groups expanded into their
//!   users, inherited grants onto the projects below, implied roles added)
//!   and `include_names`.
//!
//! The wire only: the operations, and `effective` (the one computation of
//! who has which role where), are `statera_service::identity::grants`.

use super::*;
use axum::extract::{MatchedPath, OriginalUri, Path, State};
use axum::routing::get;
use statera_model::identity::{Actor, AssignmentTarget, Domain, Group, Project, Role, User};
use statera_service::StoreRead;
use statera_service::identity::grants::{self as service, AssignmentQuery, Grant, Row};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    let mut r = Router::new().route("/v3/role_assignments", get(list_assignments));
    for target in ["projects/{id}", "domains/{id}", "system"] {
        for actor in ["users", "groups"] {
            let base = format!("/v3/{target}/{actor}/{{actor}}/roles");
            r = r.route(&base, get(list_grants)).route(
                &format!("{base}/{{role}}"),
                get(check_grant).put(create_grant).delete(revoke_grant),
            );
        }
    }
    for target in ["domains/{id}", "projects/{id}"] {
        for actor in ["users", "groups"] {
            let base = format!("/v3/OS-INHERIT/{target}/{actor}/{{actor}}/roles");
            r = r
                .route(&format!("{base}/inherited_to_projects"), get(list_grants))
                .route(
                    &format!("{base}/{{role}}/inherited_to_projects"),
                    get(check_grant).put(create_grant).delete(revoke_grant),
                );
        }
    }
    r
}

fn parse_route(matched: &str, params: &HashMap<String, String>) -> Grant {
    let inherited = matched.starts_with("/v3/OS-INHERIT/");
    let rest = matched
        .strip_prefix("/v3/OS-INHERIT/")
        .or_else(|| matched.strip_prefix("/v3/"))
        .unwrap_or(matched);
    let id = params.get("id").cloned().unwrap_or_default();
    let target = if rest.starts_with("projects/") {
        AssignmentTarget::Project(id)
    } else if rest.starts_with("domains/") {
        AssignmentTarget::Domain(id)
    } else {
        AssignmentTarget::System("all".to_string())
    };
    let actor_id = params.get("actor").cloned().unwrap_or_default();
    let actor = if rest.contains("/groups/") {
        Actor::Group(actor_id)
    } else {
        Actor::User(actor_id)
    };
    Grant {
        actor,
        target,
        inherited,
        role_id: params.get("role").cloned(),
    }
}

async fn create_grant(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    let g = parse_route(matched.as_str(), &params);
    admit(&ctx, service::CREATE, Target::default())?;
    service_write(&state, |txn| service::create(&ctx.service, txn, &g)).await?;
    Ok(no_content())
}

async fn check_grant(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    let g = parse_route(matched.as_str(), &params);
    service::check(&ctx.service, &*state.store.snapshot(), &g).map_err(kse)?;
    Ok(no_content())
}

async fn revoke_grant(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    let g = parse_route(matched.as_str(), &params);
    admit(&ctx, service::REVOKE, Target::default())?;
    service_write(&state, |txn| service::delete(&ctx.service, txn, &g)).await?;
    Ok(no_content())
}

async fn list_grants(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    let g = parse_route(matched.as_str(), &params);
    let mut roles = service::list(&ctx.service, &*state.store.snapshot(), &g).map_err(kse)?;
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    let items = roles
        .iter()
        .map(|r| super::roles::render(&ctx, r))
        .collect();
    Ok(collection(&ctx, "roles", &uri, items))
}

// ---------------------------------------------------------------- assignments

fn target_path(t: &AssignmentTarget) -> String {
    match t {
        AssignmentTarget::Project(p) => format!("projects/{p}"),
        AssignmentTarget::Domain(d) => format!("domains/{d}"),
        AssignmentTarget::System(_) => "system".to_string(),
    }
}

fn actor_path(a: &Actor) -> String {
    match a {
        Actor::User(u) => format!("users/{u}"),
        Actor::Group(g) => format!("groups/{g}"),
    }
}

fn grant_path(actor: &Actor, target: &AssignmentTarget, role: &str, inherited: bool) -> String {
    let base = format!("{}/{}/roles/{role}", target_path(target), actor_path(actor));
    if inherited {
        format!("OS-INHERIT/{base}/inherited_to_projects")
    } else {
        base
    }
}

fn domain_ref(state: &impl StoreRead, id: &str) -> Value {
    let name = state.get::<Domain>(&id.to_string()).map(|d| d.name.clone());
    json!({"id": id, "name": name})
}

fn render_row(ctx: &RequestContext, state: &impl StoreRead, r: &Row, names: bool) -> Value {
    let mut role = json!({"id": r.role_id});
    if names && let Some(x) = state.get::<Role>(&r.role_id) {
        role["name"] = json!(x.name);
        if let Some(d) = &x.domain_id {
            role["domain"] = domain_ref(state, d);
        }
    }
    let (actor_key, actor) = match &r.actor {
        Actor::User(u) => {
            let mut v = json!({"id": u});
            if names && let Some(x) = state.get::<User>(u) {
                v["name"] = json!(x.name);
                v["domain"] = domain_ref(state, &x.domain_id);
            }
            ("user", v)
        }
        Actor::Group(g) => {
            let mut v = json!({"id": g});
            if names && let Some(x) = state.get::<Group>(g) {
                v["name"] = json!(x.name);
                v["domain"] = domain_ref(state, &x.domain_id);
            }
            ("group", v)
        }
    };
    let mut scope = match &r.target {
        AssignmentTarget::Project(p) => {
            let mut v = json!({"id": p});
            if names && let Some(x) = state.get::<Project>(p) {
                v["name"] = json!(x.name);
                v["domain"] = domain_ref(state, &x.domain_id);
            }
            json!({ "project": v })
        }
        AssignmentTarget::Domain(d) => {
            let mut v = json!({"id": d});
            if names && let Some(x) = state.get::<Domain>(d) {
                v["name"] = json!(x.name);
            }
            json!({ "domain": v })
        }
        AssignmentTarget::System(_) => json!({"system": {"all": true}}),
    };
    if r.inherited {
        scope["OS-INHERIT:inherited_to"] = json!("projects");
    }
    let assignment = match &r.source {
        Some(s) => grant_path(&s.actor, &s.target, &s.role_id, s.inherited),
        None => grant_path(&r.actor, &r.target, &r.role_id, r.inherited),
    };
    let mut links = json!({"assignment": link(ctx, &assignment)});
    if let (Some(g), Actor::User(u)) = (&r.via_group, &r.actor) {
        links["membership"] = json!(link(ctx, &format!("groups/{g}/users/{u}")));
    }
    if let Some(p) = &r.prior_role {
        links["prior_role"] = json!(link(ctx, &format!("roles/{p}/implies/{}", r.role_id)));
    }
    let mut v = json!({"role": role, "scope": scope, "links": links});
    v[actor_key] = actor;
    v
}

async fn list_assignments(
    State(state): State<AppState>,
    ctx: RequestContext,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    admit(&ctx, service::LIST_ASSIGNMENTS, Target::default())?;
    let q = crate::list::Query::parse(uri.query());
    // `?effective` and `?include_names` count as true with no value (Keystone).
    let flag = |k: &str| match q.get(k) {
        None => false,
        Some("") => true,
        Some(v) => query_bool(v).unwrap_or(false),
    };
    let effective_mode = flag("effective");
    let names = flag("include_names");
    if effective_mode && q.get("group.id").is_some() {
        return Err(bad_request(
            "Combining effective and group filter will always result in an empty list.",
        ));
    }
    let inherited_to = q.get("scope.OS-INHERIT:inherited_to");
    if let Some(v) = inherited_to
        && v != "projects"
    {
        return Err(invalid(
            "scope.OS-INHERIT:inherited_to",
            format!("'{v}' is not 'projects'"),
        ));
    }
    if q.get("scope.project.id").is_some() as u8
        + q.get("scope.domain.id").is_some() as u8
        + q.get("scope.system").is_some() as u8
        > 1
    {
        return Err(bad_request(
            "Specify one of scope.project.id, scope.domain.id or scope.system.",
        ));
    }
    let query = AssignmentQuery {
        effective: effective_mode,
        user_id: q.get("user.id"),
        group_id: q.get("group.id"),
        role_id: q.get("role.id"),
        project_id: q.get("scope.project.id"),
        domain_id: q.get("scope.domain.id"),
        system: q.get("scope.system").is_some(),
        inherited_only: inherited_to.is_some(),
    };
    let snap = state.store.snapshot();
    let rows = service::assignments(&ctx.service, &*snap, &query).map_err(kse)?;
    let items = rows
        .iter()
        .map(|r| render_row(&ctx, &*snap, r, names))
        .collect();
    Ok(collection(&ctx, "role_assignments", &uri, items))
}
