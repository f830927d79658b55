//! Domains: create, show, list, update, delete (a domain must be disabled
//! first; its projects, users, groups, roles, assignments and application
//! credentials go with it, and its tokens are revoked).

use super::*;
use statera_model::identity::{
    Actor, ApplicationCredential, AssignmentTarget, Domain, Group, Project, Role, User,
};
use std::collections::BTreeMap;

impl Resource for Domain {
    const KIND: &'static str = "domain";
    const GET: &'static str = "identity:get_domain";
    const LIST: &'static str = "identity:list_domains";
}

pub const CREATE: &str = "identity:create_domain";
pub const UPDATE: &str = "identity:update_domain";
pub const DELETE: &str = "identity:delete_domain";

/// A domain update as a request states it.
#[derive(Debug, Default)]
pub struct DomainFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub tags: Option<Vec<String>>,
    /// Merged into the domain's options (a null removes one).
    pub options: Option<BTreeMap<String, serde_json::Value>>,
}

fn name_taken(s: &impl StoreRead, name: &str, except: &str) -> bool {
    s.all::<Domain>()
        .iter()
        .any(|d| d.id != except && d.name.eq_ignore_ascii_case(name))
}

/// A new domain (its id given or drawn by the wire): its name and its id
/// must be free.
pub fn create(ctx: &Context, s: &mut impl StoreWrite, d: Domain) -> ServiceResult<Domain> {
    authorize(ctx, CREATE, Target::default())?;
    if name_taken(s, &d.name, "") {
        return Err(duplicate("domain", &d.name));
    }
    if s.get::<Domain>(&d.id).is_some() {
        return Err(ServiceError::Conflict(format!(
            "Conflict occurred attempting to store domain - Duplicate entry found with ID {}.",
            d.id
        )));
    }
    s.put(d.clone())?;
    Ok(d)
}

/// Disabling a domain revokes its tokens.
pub fn update(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: DomainFields,
) -> ServiceResult<Domain> {
    authorize(ctx, UPDATE, Target::default())?;
    let mut d = fetch::<Domain>(s, id)?;
    if let Some(n) = f.name {
        if name_taken(s, &n, &d.id) {
            return Err(duplicate("domain", &n));
        }
        d.name = n;
    }
    if let Some(x) = f.description {
        d.description = x;
    }
    if let Some(x) = f.tags {
        d.tags = x;
    }
    if let Some(x) = f.options {
        d.options.extend(x);
        d.options.retain(|_, v| !v.is_null());
    }
    if let Some(e) = f.enabled {
        if d.enabled && !e {
            let did = d.id.clone();
            revoke(s, |r| r.domain_id = Some(did))?;
        }
        d.enabled = e;
    }
    s.put(d.clone())?;
    Ok(d)
}

/// A disabled domain and everything in it.
pub fn delete(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE, Target::default())?;
    let d = fetch::<Domain>(s, id)?;
    if d.enabled {
        return Err(forbidden(
            "Cannot delete a domain that is enabled, please disable it first.",
        ));
    }
    let projects: Vec<String> = s
        .all::<Project>()
        .iter()
        .filter(|p| p.domain_id == id)
        .map(|p| p.id.clone())
        .collect();
    let users: Vec<String> = s
        .all::<User>()
        .iter()
        .filter(|u| u.domain_id == id)
        .map(|u| u.id.clone())
        .collect();
    let groups: Vec<String> = s
        .all::<Group>()
        .iter()
        .filter(|g| g.domain_id == id)
        .map(|g| g.id.clone())
        .collect();
    let roles: Vec<String> = s
        .all::<Role>()
        .iter()
        .filter(|r| r.domain_id.as_deref() == Some(id))
        .map(|r| r.id.clone())
        .collect();
    let creds: Vec<String> = s
        .all::<ApplicationCredential>()
        .iter()
        .filter(|c| users.contains(&c.user_id) || projects.contains(&c.project_id))
        .map(|c| c.id.clone())
        .collect();
    delete_assignments(s, |a| {
        let on = match &a.target {
            AssignmentTarget::Domain(d) => d == id,
            AssignmentTarget::Project(p) => projects.contains(p),
            AssignmentTarget::System(_) => false,
        };
        let by = match &a.actor {
            Actor::User(u) => users.contains(u),
            Actor::Group(g) => groups.contains(g),
        };
        on || by || roles.contains(&a.role_id)
    });
    for p in &projects {
        s.delete::<Project>(p);
    }
    for u in &users {
        s.delete::<User>(u);
    }
    for g in &groups {
        s.delete::<Group>(g);
    }
    for r in &roles {
        s.delete::<Role>(r);
    }
    for c in &creds {
        s.delete::<ApplicationCredential>(c);
    }
    s.delete::<Domain>(&id.to_string());
    revoke(s, |r| r.domain_id = Some(id.to_string()))?;
    // Tokens of its projects and users are revoked one by one too, so that
    // no reading of the domain revocation is needed to refuse them.
    for p in projects {
        revoke(s, |r| r.project_id = Some(p))?;
    }
    for u in users {
        revoke(s, |r| r.user_id = Some(u))?;
    }
    Ok(())
}
