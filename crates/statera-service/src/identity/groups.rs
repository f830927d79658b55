//! Groups: create, show, list, update, delete; membership (list, check, add,
//! remove). Deleting a group or removing a member revokes the tokens of
//! those who lose what the group gave them.

use super::*;
use statera_model::identity::{Actor, Domain, Group, User};

impl Resource for Group {
    const KIND: &'static str = "group";
    const GET: &'static str = "identity:get_group";
    const LIST: &'static str = "identity:list_groups";
}

pub const CREATE: &str = "identity:create_group";
pub const UPDATE: &str = "identity:update_group";
pub const DELETE: &str = "identity:delete_group";
pub const LIST_USERS: &str = "identity:list_users_in_group";
pub const CHECK_USER: &str = "identity:check_user_in_group";
pub const ADD_USER: &str = "identity:add_user_to_group";
pub const REMOVE_USER: &str = "identity:remove_user_from_group";

/// A group update as a request states it.
#[derive(Debug, Default)]
pub struct GroupFields {
    pub name: Option<String>,
    pub description: Option<String>,
}

fn name_taken(s: &impl StoreRead, domain_id: &str, name: &str, except: &str) -> bool {
    s.all::<Group>()
        .iter()
        .any(|g| g.id != except && g.domain_id == domain_id && g.name.eq_ignore_ascii_case(name))
}

fn not_member(user: &str, group: &str) -> ServiceError {
    ServiceError::NotFound(format!("User '{user}' not found in group '{group}'"))
}

/// A new group (in an existing domain, under a free name).
pub fn create(ctx: &Context, s: &mut impl StoreWrite, g: Group) -> ServiceResult<Group> {
    authorize(ctx, CREATE, Target::default())?;
    if s.get::<Domain>(&g.domain_id).is_none() {
        return Err(not_found("domain", &g.domain_id));
    }
    if name_taken(s, &g.domain_id, &g.name, "") {
        return Err(duplicate_in("group", &g.name, &g.domain_id));
    }
    s.put(g.clone())?;
    Ok(g)
}

pub fn update(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: GroupFields,
) -> ServiceResult<Group> {
    authorize(ctx, UPDATE, Target::default())?;
    let mut g = fetch::<Group>(s, id)?;
    if let Some(n) = f.name {
        if name_taken(s, &g.domain_id, &n, &g.id) {
            return Err(duplicate_in("group", &n, &g.domain_id));
        }
        g.name = n;
    }
    if let Some(x) = f.description {
        g.description = x;
    }
    s.put(g.clone())?;
    Ok(g)
}

/// The group and its assignments; its members' tokens are revoked.
pub fn delete(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE, Target::default())?;
    let g = fetch::<Group>(s, id)?;
    delete_assignments(s, |a| matches!(&a.actor, Actor::Group(x) if x == id));
    s.delete::<Group>(&id.to_string());
    // Its members lose what the group gave them.
    for u in &g.members {
        revoke(s, |r| r.user_id = Some(u.clone()))?;
    }
    Ok(())
}

/// The group's members (those that exist), in the group's order.
pub fn members(ctx: &Context, s: &impl StoreRead, id: &str) -> ServiceResult<Vec<Arc<User>>> {
    authorize(ctx, LIST_USERS, Target::default())?;
    let g = s
        .get::<Group>(&id.to_string())
        .ok_or_else(|| not_found("group", id))?;
    Ok(g.members.iter().filter_map(|u| s.get::<User>(u)).collect())
}

/// Whether `user` is a member of group `id` (404 if not).
pub fn check_member(ctx: &Context, s: &impl StoreRead, id: &str, user: &str) -> ServiceResult<()> {
    authorize(ctx, CHECK_USER, Target::default())?;
    let g = s
        .get::<Group>(&id.to_string())
        .ok_or_else(|| not_found("group", id))?;
    if s.get::<User>(&user.to_string()).is_none() {
        return Err(not_found("user", user));
    }
    if !g.members.iter().any(|m| m == user) {
        return Err(not_member(user, id));
    }
    Ok(())
}

pub fn add_member(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    user: &str,
) -> ServiceResult<()> {
    authorize(ctx, ADD_USER, Target::default())?;
    let mut g = fetch::<Group>(s, id)?;
    if s.get::<User>(&user.to_string()).is_none() {
        return Err(not_found("user", user));
    }
    if !g.members.iter().any(|m| m == user) {
        g.members.push(user.to_string());
        s.put(g)?;
    }
    Ok(())
}

/// The member loses what the group gave it: its tokens are revoked.
pub fn remove_member(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    user: &str,
) -> ServiceResult<()> {
    authorize(ctx, REMOVE_USER, Target::default())?;
    let mut g = fetch::<Group>(s, id)?;
    if s.get::<User>(&user.to_string()).is_none() {
        return Err(not_found("user", user));
    }
    if !g.members.iter().any(|m| m == user) {
        return Err(not_member(user, id));
    }
    g.members.retain(|m| m != user);
    s.put(g)?;
    revoke(s, |r| r.user_id = Some(user.to_string()))
}
