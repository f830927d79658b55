//! Application credentials: create (the roles a subset of the caller's on
//! its token's project), show, list, delete (its tokens are revoked). Only
//! the owning user creates; the owner or an admin reads and deletes. The
//! wire draws and hashes the secret (the identity provider's work).

use super::*;
use statera_model::Timestamp;
use statera_model::identity::{ApplicationCredential, Role, User, new_id};

pub const CREATE: &str = "identity:create_application_credential";
pub const GET: &str = "identity:get_application_credential";
pub const LIST: &str = "identity:list_application_credentials";
pub const DELETE: &str = "identity:delete_application_credential";

/// A role asked for by id or by name (a global role's).
#[derive(Debug, Clone)]
pub enum RoleRef {
    Id(String),
    Name(String),
}

/// A new application credential as a request states it.
#[derive(Debug)]
pub struct NewAppCred {
    pub user_id: String,
    /// The caller's token's project.
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub secret_hash: String,
    pub expires_at: Option<Timestamp>,
    pub unrestricted: bool,
    /// The roles asked for (with what they imply); `None`: every role the
    /// caller's token carries.
    pub roles: Option<Vec<RoleRef>>,
}

/// Only the user itself creates its credentials (Keystone's own 403).
pub fn admit_create(ctx: &Context, user: &str) -> ServiceResult<()> {
    if allowed(ctx, CREATE, Target::user(user)) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "You are not authorized to perform the requested action: Cannot create an \
             application credential for another user."
                .into(),
        ))
    }
}

fn cred_not_found(cred: &str) -> ServiceError {
    not_found("application credential", cred)
}

/// A new credential: its roles must all be on the caller's token (no
/// escalation through a credential), its name free for the user.
pub fn create(
    ctx: &Context,
    s: &mut impl StoreWrite,
    new: NewAppCred,
) -> ServiceResult<ApplicationCredential> {
    admit_create(ctx, &new.user_id)?;
    if s.get::<User>(&new.user_id).is_none() {
        return Err(not_found("user", &new.user_id));
    }
    let roles = s.all::<Role>();
    // The roles the caller's token carries on its project, as records.
    let held: Vec<&Role> = roles
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| {
            ctx.caller
                .roles
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&r.name))
        })
        .collect();
    let role_ids: Vec<String> = match &new.roles {
        None => held.iter().map(|r| r.id.clone()).collect(),
        Some(asked) => {
            // Named roles, then what they imply.
            let mut ids: Vec<String> = Vec::new();
            for asked in asked {
                let role = match asked {
                    RoleRef::Id(i) => s.get::<Role>(i).ok_or_else(|| not_found("role", i))?,
                    RoleRef::Name(n) => roles
                        .iter()
                        .find(|r| r.domain_id.is_none() && r.name.eq_ignore_ascii_case(n))
                        .cloned()
                        .ok_or_else(|| not_found("role", n))?,
                };
                for r in std::iter::once(role.id.clone())
                    .chain(super::roles::implied_closure(s, &role.id))
                {
                    if !ids.contains(&r) {
                        ids.push(r);
                    }
                }
            }
            if ids.iter().any(|i| !held.iter().any(|h| &h.id == i)) {
                return Err(bad_request(
                    "Invalid application credential: Cannot create an application \
                     credential with unassigned role",
                ));
            }
            ids
        }
    };
    if s.all::<ApplicationCredential>()
        .iter()
        .any(|c| c.user_id == new.user_id && c.name == new.name)
    {
        return Err(duplicate("application_credential", &new.name));
    }
    let c = ApplicationCredential {
        id: new_id(),
        name: new.name,
        description: new.description,
        user_id: new.user_id,
        project_id: new.project_id,
        secret_hash: new.secret_hash,
        role_ids,
        expires_at: new.expires_at,
        unrestricted: new.unrestricted,
        created_at: statera_model::now(),
    };
    s.put(c.clone())?;
    Ok(c)
}

/// The user's credentials (the user must exist).
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
    user: &str,
) -> ServiceResult<Vec<Arc<ApplicationCredential>>> {
    authorize(ctx, LIST, Target::user(user))?;
    if s.get::<User>(&user.to_string()).is_none() {
        return Err(not_found("user", user));
    }
    Ok(s.all::<ApplicationCredential>()
        .into_iter()
        .filter(|c| c.user_id == user)
        .collect())
}

/// One of the user's credentials.
pub fn show(
    ctx: &Context,
    s: &impl StoreRead,
    user: &str,
    cred: &str,
) -> ServiceResult<Arc<ApplicationCredential>> {
    authorize(ctx, GET, Target::user(user))?;
    s.get::<ApplicationCredential>(&cred.to_string())
        .filter(|c| c.user_id == user)
        .ok_or_else(|| cred_not_found(cred))
}

/// One of the user's credentials; the tokens it issued are revoked.
pub fn delete(ctx: &Context, s: &mut impl StoreWrite, user: &str, cred: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE, Target::user(user))?;
    let key = cred.to_string();
    if s.get::<ApplicationCredential>(&key)
        .is_none_or(|c| c.user_id != user)
    {
        return Err(cred_not_found(cred));
    }
    s.delete::<ApplicationCredential>(&key);
    revoke(s, |r| r.application_credential_id = Some(key.clone()))
}
