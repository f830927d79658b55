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
//! [`effective`] is the one computation of who has which role where; tokens
//! can use it too.

use super::*;
use axum::extract::{MatchedPath, OriginalUri, Path, State};
use axum::routing::get;
use statera_model::identity::{Actor, AssignmentTarget, RoleAssignment};
use statera_store::State as StoreState;
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

/// What a grant route names.
struct Grant {
    actor: Actor,
    target: AssignmentTarget,
    inherited: bool,
    role_id: Option<String>,
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

/// The actor and target exist (404 otherwise), and the role if named.
fn check_refs(state: &StoreState, g: &Grant) -> ApiResult<()> {
    match &g.actor {
        Actor::User(u) if !state.users.contains(u) => return Err(not_found("user", u)),
        Actor::Group(x) if !state.groups.contains(x) => return Err(not_found("group", x)),
        _ => {}
    }
    match &g.target {
        AssignmentTarget::Project(p) if !state.projects.contains(p) => {
            return Err(not_found("project", p));
        }
        AssignmentTarget::Domain(d) if !state.domains.contains(d) => {
            return Err(not_found("domain", d));
        }
        _ => {}
    }
    if let Some(r) = &g.role_id {
        let role = state.roles.get(r).ok_or_else(|| not_found("role", r))?;
        // A domain-specific role is granted within its domain only.
        if let Some(rd) = &role.domain_id {
            let target_domain = match &g.target {
                AssignmentTarget::Project(p) => state.projects.get(p).map(|p| p.domain_id.clone()),
                AssignmentTarget::Domain(d) => Some(d.clone()),
                AssignmentTarget::System(_) => None,
            };
            if target_domain.as_deref() != Some(rd.as_str()) {
                let target = match &g.target {
                    AssignmentTarget::Project(p) => format!("Project {p}"),
                    AssignmentTarget::Domain(d) => format!("Domain {d}"),
                    AssignmentTarget::System(_) => "The system".to_string(),
                };
                return Err(forbidden(format!(
                    "{target} must be in the same domain as the role {r} being assigned."
                )));
            }
        }
    }
    Ok(())
}

fn grant_not_found(g: &Grant) -> ApiError {
    let role = g.role_id.as_deref().unwrap_or("");
    let actor = match &g.actor {
        Actor::User(id) | Actor::Group(id) => id,
    };
    let target = match &g.target {
        AssignmentTarget::Project(id)
        | AssignmentTarget::Domain(id)
        | AssignmentTarget::System(id) => id,
    };
    kerr(
        StatusCode::NOT_FOUND,
        format!(
            "Could not find role assignment with role: {role}, user or group: {actor}, \
             project, domain, or system: {target}."
        ),
    )
}

async fn create_grant(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_grant", Target::default())?;
    let g = parse_route(matched.as_str(), &params);
    write(&state, |txn| {
        check_refs(txn.state(), &g)?;
        let a = RoleAssignment::new(
            g.actor.clone(),
            g.target.clone(),
            g.role_id.clone().unwrap_or_default(),
            g.inherited,
        );
        if !txn.state().role_assignments.contains(&a.id) {
            txn.put(a)?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn check_grant(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:check_grant", Target::default())?;
    let g = parse_route(matched.as_str(), &params);
    let snap = state.store.snapshot();
    check_refs(&snap, &g)?;
    let key = RoleAssignment::key_for(
        &g.actor,
        &g.target,
        g.role_id.as_deref().unwrap_or(""),
        g.inherited,
    );
    if !snap.role_assignments.contains(&key) {
        return Err(grant_not_found(&g));
    }
    Ok(no_content())
}

async fn revoke_grant(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:revoke_grant", Target::default())?;
    let g = parse_route(matched.as_str(), &params);
    write(&state, |txn| {
        check_refs(txn.state(), &g)?;
        let key = RoleAssignment::key_for(
            &g.actor,
            &g.target,
            g.role_id.as_deref().unwrap_or(""),
            g.inherited,
        );
        if !txn.state().role_assignments.contains(&key) {
            return Err(grant_not_found(&g));
        }
        txn.delete::<RoleAssignment>(&key);
        // The tokens that carried the role lose it now, not at expiry.
        let users: Vec<String> = match &g.actor {
            Actor::User(u) => vec![u.clone()],
            Actor::Group(x) => txn
                .state()
                .groups
                .get(x)
                .map(|g| g.members.clone())
                .unwrap_or_default(),
        };
        for u in users {
            revoke(txn, |r| r.user_id = Some(u))?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn list_grants(
    State(state): State<AppState>,
    ctx: RequestContext,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:list_grants", Target::default())?;
    let g = parse_route(matched.as_str(), &params);
    let snap = state.store.snapshot();
    check_refs(&snap, &g)?;
    let mut roles: Vec<_> = snap
        .role_assignments
        .iter()
        .filter(|a| a.actor == g.actor && a.target == g.target && a.inherited == g.inherited)
        .filter_map(|a| snap.roles.get(&a.role_id))
        .collect();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    let items = roles
        .into_iter()
        .map(|r| super::roles::render(&ctx, r))
        .collect();
    Ok(collection(&ctx, "roles", &uri, items))
}

// ---------------------------------------------------------------- assignments

/// One (possibly derived) assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub actor: Actor,
    pub target: AssignmentTarget,
    pub role_id: String,
    pub inherited: bool,
    /// The stored grant it comes from, when derived (group, inheritance).
    pub source: Option<RoleAssignment>,
    /// The group it came through (effective).
    pub via_group: Option<String>,
    /// The role that implied this one (effective).
    pub prior_role: Option<String>,
}

fn direct(a: &RoleAssignment) -> Row {
    Row {
        actor: a.actor.clone(),
        target: a.target.clone(),
        role_id: a.role_id.clone(),
        inherited: a.inherited,
        source: None,
        via_group: None,
        prior_role: None,
    }
}

/// Every project below `project` (children, their children, …).
fn descendants(state: &StoreState, project: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![project.to_string()];
    while let Some(p) = todo.pop() {
        for c in state
            .projects
            .iter()
            .filter(|c| c.parent_id.as_deref() == Some(p.as_str()))
        {
            if !out.contains(&c.id) {
                out.push(c.id.clone());
                todo.push(c.id.clone());
            }
        }
    }
    out
}

/// Keystone's effective assignments: group grants become their members'
/// grants, inherited grants land on every project below their target (and
/// are not listed themselves), and implied roles are added.
pub fn effective(state: &StoreState) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for a in state.role_assignments.iter() {
        let users: Vec<(String, Option<String>)> = match &a.actor {
            Actor::User(u) => vec![(u.clone(), None)],
            Actor::Group(g) => state
                .groups
                .get(g)
                .map(|x| {
                    x.members
                        .iter()
                        .map(|m| (m.clone(), Some(g.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let targets: Vec<AssignmentTarget> = if a.inherited {
            match &a.target {
                AssignmentTarget::Domain(d) => state
                    .projects
                    .iter()
                    .filter(|p| &p.domain_id == d)
                    .map(|p| AssignmentTarget::Project(p.id.clone()))
                    .collect(),
                AssignmentTarget::Project(p) => descendants(state, p)
                    .into_iter()
                    .map(AssignmentTarget::Project)
                    .collect(),
                AssignmentTarget::System(_) => Vec::new(),
            }
        } else {
            vec![a.target.clone()]
        };
        for (u, via) in &users {
            for t in &targets {
                let derived = via.is_some() || a.inherited;
                rows.push(Row {
                    actor: Actor::User(u.clone()),
                    target: t.clone(),
                    role_id: a.role_id.clone(),
                    inherited: false,
                    source: derived.then(|| (**a).clone()),
                    via_group: via.clone(),
                    prior_role: None,
                });
            }
        }
    }
    let mut implied = Vec::new();
    for r in &rows {
        for i in super::roles::implied_closure(state, &r.role_id) {
            implied.push(Row {
                role_id: i,
                prior_role: Some(r.role_id.clone()),
                ..r.clone()
            });
        }
    }
    rows.extend(implied);
    let mut seen = std::collections::HashSet::new();
    rows.retain(|r| {
        seen.insert((
            format!("{:?}", r.actor),
            format!("{:?}", r.target),
            r.role_id.clone(),
        ))
    });
    rows
}

/// The projects `user` has any effective role on.
pub fn user_projects(state: &StoreState, user: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in effective(state) {
        if let (Actor::User(u), AssignmentTarget::Project(p)) = (&r.actor, &r.target)
            && u == user
            && !out.contains(p)
        {
            out.push(p.clone());
        }
    }
    out
}

/// The role ids `user` effectively has on `target` (implied roles included).
pub fn effective_roles(state: &StoreState, user: &str, target: &AssignmentTarget) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in effective(state) {
        if matches!(&r.actor, Actor::User(u) if u == user)
            && &r.target == target
            && !out.contains(&r.role_id)
        {
            out.push(r.role_id);
        }
    }
    out
}

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

fn domain_ref(state: &StoreState, id: &str) -> Value {
    let name = state.domains.get(&id.to_string()).map(|d| d.name.clone());
    json!({"id": id, "name": name})
}

fn render_row(ctx: &RequestContext, state: &StoreState, r: &Row, names: bool) -> Value {
    let mut role = json!({"id": r.role_id});
    if names && let Some(x) = state.roles.get(&r.role_id) {
        role["name"] = json!(x.name);
        if let Some(d) = &x.domain_id {
            role["domain"] = domain_ref(state, d);
        }
    }
    let (actor_key, actor) = match &r.actor {
        Actor::User(u) => {
            let mut v = json!({"id": u});
            if names && let Some(x) = state.users.get(u) {
                v["name"] = json!(x.name);
                v["domain"] = domain_ref(state, &x.domain_id);
            }
            ("user", v)
        }
        Actor::Group(g) => {
            let mut v = json!({"id": g});
            if names && let Some(x) = state.groups.get(g) {
                v["name"] = json!(x.name);
                v["domain"] = domain_ref(state, &x.domain_id);
            }
            ("group", v)
        }
    };
    let mut scope = match &r.target {
        AssignmentTarget::Project(p) => {
            let mut v = json!({"id": p});
            if names && let Some(x) = state.projects.get(p) {
                v["name"] = json!(x.name);
                v["domain"] = domain_ref(state, &x.domain_id);
            }
            json!({ "project": v })
        }
        AssignmentTarget::Domain(d) => {
            let mut v = json!({"id": d});
            if names && let Some(x) = state.domains.get(d) {
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
    authorize(&ctx, "identity:list_role_assignments", Target::default())?;
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
    let snap = state.store.snapshot();
    let rows: Vec<Row> = if effective_mode {
        effective(&snap)
    } else {
        snap.role_assignments.iter().map(|a| direct(a)).collect()
    };
    let mut rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| {
            q.get("user.id")
                .is_none_or(|u| matches!(&r.actor, Actor::User(x) if x == u))
        })
        .filter(|r| {
            q.get("group.id")
                .is_none_or(|g| matches!(&r.actor, Actor::Group(x) if x == g))
        })
        .filter(|r| q.get("role.id").is_none_or(|x| r.role_id == x))
        .filter(|r| {
            q.get("scope.project.id")
                .is_none_or(|p| matches!(&r.target, AssignmentTarget::Project(x) if x == p))
        })
        .filter(|r| {
            q.get("scope.domain.id")
                .is_none_or(|d| matches!(&r.target, AssignmentTarget::Domain(x) if x == d))
        })
        .filter(|r| {
            q.get("scope.system")
                .is_none_or(|_| matches!(&r.target, AssignmentTarget::System(_)))
        })
        .filter(|r| inherited_to.is_none() || r.inherited)
        .collect();
    rows.sort_by(|a, b| {
        (
            format!("{:?}", a.actor),
            format!("{:?}", a.target),
            &a.role_id,
        )
            .cmp(&(
                format!("{:?}", b.actor),
                format!("{:?}", b.target),
                &b.role_id,
            ))
    });
    let items = rows
        .iter()
        .map(|r| render_row(&ctx, &snap, r, names))
        .collect();
    Ok(collection(&ctx, "role_assignments", &uri, items))
}
