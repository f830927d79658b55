//! Grants (a role for a user or group on a project, a domain or the system,
//! inherited to the projects below or not) and role assignments, with
//! [`effective`]: the one computation of who has which role where (tokens
//! use it too).

use super::*;
use statera_model::identity::{
    Actor, AssignmentTarget, Domain, Group, Project, Role, RoleAssignment, User,
};

pub const CREATE: &str = "identity:create_grant";
pub const CHECK: &str = "identity:check_grant";
pub const REVOKE: &str = "identity:revoke_grant";
pub const LIST: &str = "identity:list_grants";
pub const LIST_ASSIGNMENTS: &str = "identity:list_role_assignments";

/// What a grant route names.
#[derive(Debug, Clone)]
pub struct Grant {
    pub actor: Actor,
    pub target: AssignmentTarget,
    pub inherited: bool,
    pub role_id: Option<String>,
}

fn exists<R: Resource>(s: &impl StoreRead, id: &str) -> bool {
    s.get::<R>(&id.to_string()).is_some()
}

/// The actor and target exist (404 otherwise), and the role if named (a
/// domain-specific role only within its domain: 403).
fn check_refs(s: &impl StoreRead, g: &Grant) -> ServiceResult<()> {
    match &g.actor {
        Actor::User(u) if !exists::<User>(s, u) => return Err(not_found("user", u)),
        Actor::Group(x) if !exists::<Group>(s, x) => return Err(not_found("group", x)),
        _ => {}
    }
    match &g.target {
        AssignmentTarget::Project(p) if !exists::<Project>(s, p) => {
            return Err(not_found("project", p));
        }
        AssignmentTarget::Domain(d) if !exists::<Domain>(s, d) => {
            return Err(not_found("domain", d));
        }
        _ => {}
    }
    if let Some(r) = &g.role_id {
        let role = s.get::<Role>(r).ok_or_else(|| not_found("role", r))?;
        // A domain-specific role is granted within its domain only.
        if let Some(rd) = &role.domain_id {
            let target_domain = match &g.target {
                AssignmentTarget::Project(p) => s.get::<Project>(p).map(|p| p.domain_id.clone()),
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

fn grant_not_found(g: &Grant) -> ServiceError {
    let role = g.role_id.as_deref().unwrap_or("");
    let actor = match &g.actor {
        Actor::User(id) | Actor::Group(id) => id,
    };
    let target = match &g.target {
        AssignmentTarget::Project(id)
        | AssignmentTarget::Domain(id)
        | AssignmentTarget::System(id) => id,
    };
    ServiceError::NotFound(format!(
        "Could not find role assignment with role: {role}, user or group: {actor}, \
         project, domain, or system: {target}."
    ))
}

fn key(g: &Grant) -> String {
    RoleAssignment::key_for(
        &g.actor,
        &g.target,
        g.role_id.as_deref().unwrap_or(""),
        g.inherited,
    )
}

/// Grant the role (a no-op if it is granted already).
pub fn create(ctx: &Context, s: &mut impl StoreWrite, g: &Grant) -> ServiceResult<()> {
    authorize(ctx, CREATE, Target::default())?;
    check_refs(s, g)?;
    let a = RoleAssignment::new(
        g.actor.clone(),
        g.target.clone(),
        g.role_id.clone().unwrap_or_default(),
        g.inherited,
    );
    if s.get::<RoleAssignment>(&a.id).is_none() {
        s.put(a)?;
    }
    Ok(())
}

/// Whether the role is granted (404 if not).
pub fn check(ctx: &Context, s: &impl StoreRead, g: &Grant) -> ServiceResult<()> {
    authorize(ctx, CHECK, Target::default())?;
    check_refs(s, g)?;
    if s.get::<RoleAssignment>(&key(g)).is_none() {
        return Err(grant_not_found(g));
    }
    Ok(())
}

/// Take the role back: the tokens that carried it lose it now, not at expiry.
pub fn delete(ctx: &Context, s: &mut impl StoreWrite, g: &Grant) -> ServiceResult<()> {
    authorize(ctx, REVOKE, Target::default())?;
    check_refs(s, g)?;
    let key = key(g);
    if s.get::<RoleAssignment>(&key).is_none() {
        return Err(grant_not_found(g));
    }
    s.delete::<RoleAssignment>(&key);
    let users: Vec<String> = match &g.actor {
        Actor::User(u) => vec![u.clone()],
        Actor::Group(x) => s
            .get::<Group>(x)
            .map(|g| g.members.clone())
            .unwrap_or_default(),
    };
    for u in users {
        revoke(s, |r| r.user_id = Some(u))?;
    }
    Ok(())
}

/// The roles granted to the actor on the target (as inherited or not).
pub fn list(ctx: &Context, s: &impl StoreRead, g: &Grant) -> ServiceResult<Vec<Arc<Role>>> {
    authorize(ctx, LIST, Target::default())?;
    check_refs(s, g)?;
    Ok(s.all::<RoleAssignment>()
        .iter()
        .filter(|a| a.actor == g.actor && a.target == g.target && a.inherited == g.inherited)
        .filter_map(|a| s.get::<Role>(&a.role_id))
        .collect())
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
fn descendants(s: &impl StoreRead, project: &str) -> Vec<String> {
    let projects = s.all::<Project>();
    let mut out = Vec::new();
    let mut todo = vec![project.to_string()];
    while let Some(p) = todo.pop() {
        for c in projects
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
pub fn effective(s: &impl StoreRead) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for a in s.all::<RoleAssignment>() {
        let users: Vec<(String, Option<String>)> = match &a.actor {
            Actor::User(u) => vec![(u.clone(), None)],
            Actor::Group(g) => s
                .get::<Group>(g)
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
                AssignmentTarget::Domain(d) => s
                    .all::<Project>()
                    .iter()
                    .filter(|p| &p.domain_id == d)
                    .map(|p| AssignmentTarget::Project(p.id.clone()))
                    .collect(),
                AssignmentTarget::Project(p) => descendants(s, p)
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
                    source: derived.then(|| (*a).clone()),
                    via_group: via.clone(),
                    prior_role: None,
                });
            }
        }
    }
    let mut implied = Vec::new();
    for r in &rows {
        for i in super::roles::implied_closure(s, &r.role_id) {
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
pub fn user_projects(s: &impl StoreRead, user: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in effective(s) {
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
pub fn effective_roles(s: &impl StoreRead, user: &str, target: &AssignmentTarget) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in effective(s) {
        if matches!(&r.actor, Actor::User(u) if u == user)
            && &r.target == target
            && !out.contains(&r.role_id)
        {
            out.push(r.role_id);
        }
    }
    out
}

/// What `GET /v3/role_assignments` asks for (the wire has checked that the
/// combination makes sense).
#[derive(Debug, Default)]
pub struct AssignmentQuery<'a> {
    /// Group grants expanded into their users, inherited grants onto the
    /// projects below, implied roles added.
    pub effective: bool,
    pub user_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub role_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub domain_id: Option<&'a str>,
    pub system: bool,
    /// `scope.OS-INHERIT:inherited_to=projects`: inherited grants only.
    pub inherited_only: bool,
}

/// The role assignments `q` selects, in the order of (actor, target, role).
pub fn assignments(
    ctx: &Context,
    s: &impl StoreRead,
    q: &AssignmentQuery,
) -> ServiceResult<Vec<Row>> {
    authorize(ctx, LIST_ASSIGNMENTS, Target::default())?;
    let rows: Vec<Row> = if q.effective {
        effective(s)
    } else {
        s.all::<RoleAssignment>()
            .iter()
            .map(|a| direct(a))
            .collect()
    };
    let mut rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| {
            q.user_id
                .is_none_or(|u| matches!(&r.actor, Actor::User(x) if x == u))
        })
        .filter(|r| {
            q.group_id
                .is_none_or(|g| matches!(&r.actor, Actor::Group(x) if x == g))
        })
        .filter(|r| q.role_id.is_none_or(|x| r.role_id == x))
        .filter(|r| {
            q.project_id
                .is_none_or(|p| matches!(&r.target, AssignmentTarget::Project(x) if x == p))
        })
        .filter(|r| {
            q.domain_id
                .is_none_or(|d| matches!(&r.target, AssignmentTarget::Domain(x) if x == d))
        })
        .filter(|r| !q.system || matches!(&r.target, AssignmentTarget::System(_)))
        .filter(|r| !q.inherited_only || r.inherited)
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
    Ok(rows)
}
