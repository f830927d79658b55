//! Effective roles, as Keystone computes them for a token: the user's direct
//! assignments and its groups' on the target, the assignments inherited from
//! the project's domain and parent projects, then every role those imply
//! (admin ⇒ member ⇒ reader). Domain-specific roles are dropped after the
//! expansion: only the global roles they imply reach a token.

use statera_model::identity::{Actor, AssignmentTarget, Role, RoleAssignment};
use statera_store::State;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What a token is scoped to, for role computation.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Project(&'a str),
    Domain(&'a str),
    System,
}

/// The actors whose assignments count for `user_id`: the user and its groups.
fn actors(state: &State, user_id: &str) -> Vec<Actor> {
    let mut out = vec![Actor::User(user_id.to_string())];
    out.extend(
        state
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == user_id))
            .map(|g| Actor::Group(g.id.clone())),
    );
    out
}

/// Every assignment of `user_id` and its groups (one pass over the table).
fn assignments_of(state: &State, user_id: &str) -> Vec<Arc<RoleAssignment>> {
    let actors = actors(state, user_id);
    state
        .role_assignments
        .iter()
        .filter(|a| actors.contains(&a.actor))
        .cloned()
        .collect()
}

/// The role ids assigned to `user_id` on `target` (direct, through groups,
/// inherited), before implications.
fn assigned(state: &State, user_id: &str, target: Target<'_>) -> BTreeSet<String> {
    assigned_in(state, &assignments_of(state, user_id), target)
}

/// The role ids `mine` (a user's assignments) give on `target`.
fn assigned_in(
    state: &State,
    mine: &[Arc<RoleAssignment>],
    target: Target<'_>,
) -> BTreeSet<String> {
    // (target, whether only inherited grants on it count)
    let mut targets: Vec<(AssignmentTarget, bool)> = Vec::new();
    match target {
        Target::Project(id) => {
            targets.push((AssignmentTarget::Project(id.to_string()), false));
            // Parents up the tree (bounded: a cycle cannot loop forever),
            // then the domain: their inherited grants count.
            let mut domain = None;
            let mut cur = state.projects.get(&id.to_string()).cloned();
            for _ in 0..32 {
                let Some(p) = cur else { break };
                domain = Some(p.domain_id.clone());
                cur = match &p.parent_id {
                    Some(parent) if *parent != p.domain_id => {
                        targets.push((AssignmentTarget::Project(parent.clone()), true));
                        state.projects.get(parent).cloned()
                    }
                    _ => None,
                };
            }
            if let Some(d) = domain {
                targets.push((AssignmentTarget::Domain(d), true));
            }
        }
        Target::Domain(id) => targets.push((AssignmentTarget::Domain(id.to_string()), false)),
        Target::System => targets.push((AssignmentTarget::System("all".to_string()), false)),
    }
    mine.iter()
        .filter(|a| {
            targets
                .iter()
                .any(|(t, inherited_only)| a.target == *t && (a.inherited || !inherited_only))
        })
        .filter(|a| {
            // An inherited grant on a project counts for its sub-projects,
            // not for the project itself.
            !(a.inherited && matches!(target, Target::Project(id) if a.target == AssignmentTarget::Project(id.to_string())))
        })
        .map(|a| a.role_id.clone())
        .collect()
}

/// `ids` and every role they imply, transitively (existing roles only).
pub fn with_implied(state: &State, ids: impl IntoIterator<Item = String>) -> Vec<Arc<Role>> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = ids.into_iter().collect();
    let mut out = Vec::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(role) = state.roles.get(&id) {
            stack.extend(role.implies.iter().cloned());
            out.push(role.clone());
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The effective roles of `user_id` on `target`, implied ones included,
/// sorted by name. Domain-specific roles (`domain_id` set) only count for
/// the global roles they imply: as in Keystone, they never reach a token, so
/// a domain role named `admin` grants nothing by its name.
pub fn effective(state: &State, user_id: &str, target: Target<'_>) -> Vec<Arc<Role>> {
    global_only(with_implied(state, assigned(state, user_id, target)))
}

/// `roles` without the domain-specific ones.
pub fn global_only(mut roles: Vec<Arc<Role>>) -> Vec<Arc<Role>> {
    roles.retain(|r| r.domain_id.is_none());
    roles
}

/// Whether `mine` gives at least one effective (global) role on `target`.
fn gives_roles(state: &State, mine: &[Arc<RoleAssignment>], target: Target<'_>) -> bool {
    !global_only(with_implied(state, assigned_in(state, mine, target))).is_empty()
}

/// The enabled projects (in enabled domains) where `user_id` has a role.
pub fn projects_of(state: &State, user_id: &str) -> Vec<Arc<statera_model::identity::Project>> {
    let mine = assignments_of(state, user_id);
    state
        .projects
        .iter()
        .filter(|p| p.enabled && domain_enabled(state, &p.domain_id))
        .filter(|p| gives_roles(state, &mine, Target::Project(&p.id)))
        .cloned()
        .collect()
}

/// The enabled domains where `user_id` has a role.
pub fn domains_of(state: &State, user_id: &str) -> Vec<Arc<statera_model::identity::Domain>> {
    let mine = assignments_of(state, user_id);
    state
        .domains
        .iter()
        .filter(|d| d.enabled)
        .filter(|d| gives_roles(state, &mine, Target::Domain(&d.id)))
        .cloned()
        .collect()
}

pub fn domain_enabled(state: &State, id: &str) -> bool {
    state
        .domains
        .get(&id.to_string())
        .is_some_and(|d| d.enabled)
}
