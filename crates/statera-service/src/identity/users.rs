//! Users: create, show, list, update, delete, a user's own password change,
//! a user's groups and projects. The wire hashes passwords (the identity
//! provider's work): the service takes and keeps hashes only.

use super::*;
use statera_model::identity::User;

impl Resource for User {
    const KIND: &'static str = "user";
    const GET: &'static str = "identity:get_user";
    const LIST: &'static str = "identity:list_users";
    fn target(id: &str) -> Target<'_> {
        Target::user(id)
    }
}

use statera_model::identity::{Actor, ApplicationCredential, Domain, Group, Project};
use std::collections::BTreeMap;

pub const CREATE: &str = "identity:create_user";
pub const UPDATE: &str = "identity:update_user";
pub const DELETE: &str = "identity:delete_user";
pub const LIST_GROUPS: &str = "identity:list_groups_for_user";
pub const LIST_PROJECTS: &str = "identity:list_user_projects";

/// A user update as a request states it (`Some(None)`: cleared). The
/// password arrives hashed (the wire's work).
#[derive(Debug, Default)]
pub struct UserFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub default_project_id: Option<Option<String>>,
    pub email: Option<Option<String>>,
    /// Merged into the user's options (a null removes one).
    pub options: Option<BTreeMap<String, serde_json::Value>>,
    /// Attributes without a column: set, or removed by a null.
    pub extra: BTreeMap<String, serde_json::Value>,
    pub password_hash: Option<Option<String>>,
}

fn name_taken(s: &impl StoreRead, domain_id: &str, name: &str, except: &str) -> bool {
    s.all::<User>()
        .iter()
        .any(|u| u.id != except && u.domain_id == domain_id && u.name.eq_ignore_ascii_case(name))
}

fn exists<R: Resource>(s: &impl StoreRead, id: &str) -> bool {
    s.get::<R>(&id.to_string()).is_some()
}

/// A new user (its password already hashed) in an existing domain, under a
/// free name.
pub fn create(ctx: &Context, s: &mut impl StoreWrite, mut u: User) -> ServiceResult<User> {
    authorize(ctx, CREATE, Target::default())?;
    if !exists::<Domain>(s, &u.domain_id) {
        return Err(not_found("domain", &u.domain_id));
    }
    if let Some(p) = &u.default_project_id
        && !exists::<Project>(s, p)
    {
        return Err(not_found("project", p));
    }
    if name_taken(s, &u.domain_id, &u.name, "") {
        return Err(duplicate_in("user", &u.name, &u.domain_id));
    }
    u.options.retain(|_, v| !v.is_null());
    s.put(u.clone())?;
    Ok(u)
}

/// A new password or an enable clears the failed authentications (an
/// unlock); a new password or a disable revokes the user's tokens.
pub fn update(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: UserFields,
) -> ServiceResult<User> {
    authorize(ctx, UPDATE, Target::user(id))?;
    let mut u = fetch::<User>(s, id)?;
    if let Some(n) = f.name {
        if name_taken(s, &u.domain_id, &n, &u.id) {
            return Err(duplicate_in("user", &n, &u.domain_id));
        }
        u.name = n;
    }
    if let Some(x) = f.description {
        u.description = x;
    }
    if let Some(x) = f.default_project_id {
        if let Some(p) = &x
            && !exists::<Project>(s, p)
        {
            return Err(not_found("project", p));
        }
        u.default_project_id = x;
    }
    if let Some(x) = f.email {
        u.email = x;
    }
    if let Some(x) = f.options {
        u.options.extend(x);
        u.options.retain(|_, v| !v.is_null());
    }
    for (k, v) in f.extra {
        if v.is_null() {
            u.extra.remove(&k);
        } else {
            u.extra.insert(k, v);
        }
    }
    let mut revoke_user = false;
    if let Some(h) = f.password_hash {
        u.password_hash = h;
        u.failed_auth_count = 0;
        revoke_user = true;
    }
    if let Some(e) = f.enabled {
        revoke_user |= u.enabled && !e;
        if e {
            u.failed_auth_count = 0;
        }
        u.enabled = e;
    }
    if revoke_user {
        let uid = u.id.clone();
        revoke(s, |r| r.user_id = Some(uid))?;
    }
    s.put(u.clone())?;
    Ok(u)
}

/// The user, its assignments, memberships and application credentials; its
/// tokens are revoked.
pub fn delete(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE, Target::user(id))?;
    fetch::<User>(s, id)?;
    delete_assignments(s, |a| matches!(&a.actor, Actor::User(u) if u == id));
    let groups: Vec<Group> = s
        .all::<Group>()
        .iter()
        .filter(|g| g.members.iter().any(|m| m == id))
        .map(|g| (**g).clone())
        .collect();
    for mut g in groups {
        g.members.retain(|m| m != id);
        s.put(g)?;
    }
    let creds: Vec<String> = s
        .all::<ApplicationCredential>()
        .iter()
        .filter(|c| c.user_id == id)
        .map(|c| c.id.clone())
        .collect();
    for c in &creds {
        s.delete::<ApplicationCredential>(c);
    }
    s.delete::<User>(&id.to_string());
    revoke(s, |r| r.user_id = Some(id.to_string()))?;
    Ok(())
}

/// A user's own password change, after the wire checked the original
/// password (`checked`: the hash it was checked against) and hashed the new
/// one. Applied only over the password that was checked: an admin's reset
/// (or a disable) while the request waited for its hash wins, and then
/// nothing is written (`Ok(false)`). `unlock` clears the failed
/// authentications (the identity provider's lockout says how).
pub fn change_password(
    s: &mut impl StoreWrite,
    id: &str,
    checked: Option<String>,
    new_hash: String,
    unlock: impl FnOnce(&mut User),
) -> ServiceResult<bool> {
    let mut u = fetch::<User>(s, id)?;
    if !u.enabled || u.password_hash != checked {
        return Ok(false);
    }
    u.password_hash = Some(new_hash);
    unlock(&mut u);
    s.put(u)?;
    revoke(s, |r| r.user_id = Some(id.to_string()))?;
    Ok(true)
}

/// The groups `id` is a member of.
pub fn groups_of(ctx: &Context, s: &impl StoreRead, id: &str) -> ServiceResult<Vec<Arc<Group>>> {
    authorize(ctx, LIST_GROUPS, Target::user(id))?;
    if !exists::<User>(s, id) {
        return Err(not_found("user", id));
    }
    Ok(s.all::<Group>()
        .into_iter()
        .filter(|g| g.members.iter().any(|m| m == id))
        .collect())
}

/// The projects `id` has a role on (directly, through a group, or inherited
/// from a domain or a parent project).
pub fn projects_of(
    ctx: &Context,
    s: &impl StoreRead,
    id: &str,
) -> ServiceResult<Vec<Arc<Project>>> {
    authorize(ctx, LIST_PROJECTS, Target::user(id))?;
    if !exists::<User>(s, id) {
        return Err(not_found("user", id));
    }
    Ok(super::grants::user_projects(s, id)
        .iter()
        .filter_map(|p| s.get::<Project>(p))
        .collect())
}

/// The user whose password a password change checks: `id` if it exists and
/// is enabled (the wire refuses anything else with the same work and answer
/// as a wrong password).
pub fn password_subject(s: &impl StoreRead, id: &str) -> Option<Arc<User>> {
    s.get::<User>(&id.to_string()).filter(|u| u.enabled)
}
