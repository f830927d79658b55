//! The built-in Keystone's identity administration: domains, projects,
//! users, groups, roles (and implied roles), grants and role assignments,
//! application credentials, and the catalog, as operations on typed input.
//!
//! Authorization asks statera-policy's `identity:*` rules (Keystone's names)
//! on a [`Target`] of a user and a project; a refusal is Keystone's
//! `You are not authorized to perform the requested action: <action>.`.
//! Errors carry Keystone's messages word for word (`Could not find <kind>:
//! <id>.`, the duplicate-entry conflicts); the wire gives them Keystone's
//! shape. What needs the identity provider itself (hashing a password,
//! forgetting failed authentications, issuing tokens) is the wire's: it
//! hands the service a hash, not a password.

pub mod app_creds;
pub mod catalog;
pub mod domains;
pub mod grants;
pub mod groups;
pub mod projects;
pub mod roles;
pub mod users;

use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::store::{StoreRead, StoreWrite};
use statera_model::identity::{Revocation, RoleAssignment};
use statera_store::Record;
use std::sync::Arc;

/// How long a token can live at most: a revocation is kept that long.
pub const REVOCATION_KEEP: chrono::TimeDelta = chrono::TimeDelta::days(1);

// ---------------------------------------------------------------- policy

/// What an action is about, for the self and own-project rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct Target<'a> {
    pub user_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn user(id: &'a str) -> Self {
        Target {
            user_id: Some(id),
            project_id: None,
        }
    }
    pub fn project(id: &'a str) -> Self {
        Target {
            user_id: None,
            project_id: Some(id),
        }
    }
}

/// Whether `ctx` may do `action` (an `identity:*` rule) on `target`.
pub fn allowed(ctx: &Context, action: &str, target: Target) -> bool {
    let mut t = statera_policy::Target::new();
    if let Some(u) = target.user_id {
        t.insert("user_id".into(), u.to_string());
    }
    if let Some(p) = target.project_id {
        t.insert("project_id".into(), p.to_string());
    }
    ctx.allowed_on(action, &t)
}

/// [`allowed`], or Keystone's 403.
pub fn authorize(ctx: &Context, action: &str, target: Target) -> ServiceResult<()> {
    if allowed(ctx, action, target) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!(
            "You are not authorized to perform the requested action: {action}."
        )))
    }
}

// ---------------------------------------------------------------- errors

/// `Could not find <kind>: <id>.` (404)
pub fn not_found(kind: &str, id: &str) -> ServiceError {
    ServiceError::NotFound(format!("Could not find {kind}: {id}."))
}

/// 409 for a name taken in a domain (`... with name <name> at domain ID <d>.`).
pub fn duplicate_in(kind: &str, name: &str, domain_id: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "Conflict occurred attempting to store {kind} - Duplicate entry found with name \
         {name} at domain ID {domain_id}."
    ))
}

/// 409 for a name taken (`Conflict occurred attempting to store <kind> -
/// Duplicate entry found with name <name>.`).
pub fn duplicate(kind: &str, name: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "Conflict occurred attempting to store {kind} - Duplicate entry found with name {name}."
    ))
}

/// 400 with a message of its own.
pub fn bad_request(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(message.into())
}

/// 403 that is not about policy (Keystone's `ForbiddenNotSecurity`).
pub fn forbidden(message: impl Into<String>) -> ServiceError {
    ServiceError::Forbidden(message.into())
}

// ---------------------------------------------------------------- resources

/// A top-level identity record (keyed by its id) as `show` and `list` know it.
pub trait Resource: Record<Key = String> + Clone {
    /// The singular name: the kind in `Could not find`.
    const KIND: &'static str;
    /// The read rules.
    const GET: &'static str;
    const LIST: &'static str;
    /// What the read policy is about.
    fn target(_id: &str) -> Target<'_> {
        Target::default()
    }
}

/// A copy of the record `id`, or Keystone's 404.
pub fn fetch<R: Resource>(s: &impl StoreRead, id: &str) -> ServiceResult<R> {
    s.get::<R>(&id.to_string())
        .map(|r| (*r).clone())
        .ok_or_else(|| not_found(R::KIND, id))
}

/// `GET /v3/<plural>/{id}`: the read rule, then the record.
pub fn show<R: Resource>(ctx: &Context, s: &impl StoreRead, id: &str) -> ServiceResult<R> {
    authorize(ctx, R::GET, R::target(id))?;
    fetch::<R>(s, id)
}

/// `GET /v3/<plural>`: the list rule, then every record in key order (the
/// wire filters and sorts what it shows).
pub fn list<R: Resource>(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<R>>> {
    authorize(ctx, R::LIST, Target::default())?;
    Ok(s.all::<R>())
}

// ---------------------------------------------------------------- revocations

/// A revocation of every token matching the given subject, issued until now.
pub fn revoke(s: &mut impl StoreWrite, fill: impl FnOnce(&mut Revocation)) -> ServiceResult<()> {
    let now = chrono::Utc::now().naive_utc();
    let mut r = Revocation {
        id: statera_model::identity::new_id(),
        audit_id: None,
        user_id: None,
        project_id: None,
        domain_id: None,
        application_credential_id: None,
        issued_before: now,
        expires_at: now + REVOCATION_KEEP,
    };
    fill(&mut r);
    s.put(r)?;
    Ok(())
}

/// Remove every role assignment `matches` selects.
pub fn delete_assignments(s: &mut impl StoreWrite, matches: impl Fn(&RoleAssignment) -> bool) {
    let doomed: Vec<String> = s
        .all::<RoleAssignment>()
        .iter()
        .filter(|a| matches(a))
        .map(|a| a.id.clone())
        .collect();
    for id in doomed {
        s.delete::<RoleAssignment>(&id);
    }
}
