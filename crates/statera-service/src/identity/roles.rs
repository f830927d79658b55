//! Roles (global and domain-specific) and implied roles.

use super::*;
use statera_model::identity::Role;

impl Resource for Role {
    const KIND: &'static str = "role";
    const GET: &'static str = "identity:get_role";
    const LIST: &'static str = "identity:list_roles";
}

use statera_model::identity::{Actor, ApplicationCredential, Domain, Group, RoleAssignment};
use std::collections::BTreeMap;

pub const CREATE: &str = "identity:create_role";
pub const UPDATE: &str = "identity:update_role";
pub const DELETE: &str = "identity:delete_role";
pub const GET_IMPLIED: &str = "identity:get_implied_role";
pub const CREATE_IMPLIED: &str = "identity:create_implied_role";
pub const DELETE_IMPLIED: &str = "identity:delete_implied_role";
pub const LIST_IMPLIED: &str = "identity:list_implied_roles";
pub const LIST_INFERENCES: &str = "identity:list_role_inference_rules";

/// A role update as a request states it.
#[derive(Debug, Default)]
pub struct RoleFields {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Merged into the role's options (a null removes one).
    pub options: Option<BTreeMap<String, serde_json::Value>>,
}

fn name_taken(s: &impl StoreRead, domain_id: Option<&str>, name: &str, except: &str) -> bool {
    s.all::<Role>().iter().any(|r| {
        r.id != except && r.domain_id.as_deref() == domain_id && r.name.eq_ignore_ascii_case(name)
    })
}

/// Every role `role_id` implies, transitively (itself excluded unless a
/// cycle leads back to it).
pub fn implied_closure(s: &impl StoreRead, role_id: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo = vec![role_id.to_string()];
    while let Some(r) = todo.pop() {
        if let Some(role) = s.get::<Role>(&r) {
            for i in &role.implies {
                if !out.contains(i) && s.get::<Role>(i).is_some() {
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

/// A new role (global, or in an existing domain), under a free name.
pub fn create(ctx: &Context, s: &mut impl StoreWrite, r: Role) -> ServiceResult<Role> {
    authorize(ctx, CREATE, Target::default())?;
    if let Some(d) = &r.domain_id
        && s.get::<Domain>(d).is_none()
    {
        return Err(not_found("domain", d));
    }
    if name_taken(s, r.domain_id.as_deref(), &r.name, "") {
        return Err(duplicate("role", &r.name));
    }
    s.put(r.clone())?;
    Ok(r)
}

pub fn update(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: RoleFields,
) -> ServiceResult<Role> {
    authorize(ctx, UPDATE, Target::default())?;
    let mut r = fetch::<Role>(s, id)?;
    if let Some(n) = f.name {
        if name_taken(s, r.domain_id.as_deref(), &n, &r.id) {
            return Err(duplicate("role", &n));
        }
        r.name = n;
    }
    if let Some(x) = f.description {
        r.description = x;
    }
    if let Some(x) = f.options {
        r.options.extend(x);
        r.options.retain(|_, v| !v.is_null());
    }
    s.put(r.clone())?;
    Ok(r)
}

/// The role, its assignments, its place in other roles' implications and
/// application credentials; the tokens of those who held it are revoked.
pub fn delete(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE, Target::default())?;
    fetch::<Role>(s, id)?;
    let mut holders: Vec<String> = s
        .all::<RoleAssignment>()
        .iter()
        .filter(|a| a.role_id == id)
        .flat_map(|a| match &a.actor {
            Actor::User(u) => vec![u.clone()],
            Actor::Group(g) => s
                .get::<Group>(g)
                .map(|g| g.members.clone())
                .unwrap_or_default(),
        })
        .collect();
    holders.sort();
    holders.dedup();
    delete_assignments(s, |a| a.role_id == id);
    let priors: Vec<Role> = s
        .all::<Role>()
        .iter()
        .filter(|r| r.implies.iter().any(|i| i == id))
        .map(|r| (**r).clone())
        .collect();
    for mut r in priors {
        r.implies.retain(|i| i != id);
        s.put(r)?;
    }
    let creds: Vec<ApplicationCredential> = s
        .all::<ApplicationCredential>()
        .iter()
        .filter(|c| c.role_ids.iter().any(|r| r == id))
        .map(|c| (**c).clone())
        .collect();
    for mut c in creds {
        c.role_ids.retain(|r| r != id);
        s.put(c)?;
    }
    s.delete::<Role>(&id.to_string());
    for u in holders {
        revoke(s, |r| r.user_id = Some(u))?;
    }
    Ok(())
}

fn lookup_pair(s: &impl StoreRead, prior: &str, implied: &str) -> ServiceResult<(Role, Role)> {
    let p = s
        .get::<Role>(&prior.to_string())
        .ok_or_else(|| not_found("role", prior))?;
    let i = s
        .get::<Role>(&implied.to_string())
        .ok_or_else(|| not_found("role", implied))?;
    Ok(((*p).clone(), (*i).clone()))
}

fn implied_not_found(prior: &str, implied: &str) -> ServiceError {
    ServiceError::NotFound(format!("{prior} does not imply {implied}."))
}

/// The inference `prior` → `implied` (404 if there is none).
pub fn get_implied(
    ctx: &Context,
    s: &impl StoreRead,
    prior: &str,
    implied: &str,
) -> ServiceResult<(Role, Role)> {
    authorize(ctx, GET_IMPLIED, Target::default())?;
    let (p, i) = lookup_pair(s, prior, implied)?;
    if !p.implies.iter().any(|x| x == implied) {
        return Err(implied_not_found(prior, implied));
    }
    Ok((p, i))
}

/// `prior` implies `implied` from now on (refused: `admin`, a global role
/// implying a domain-specific one, a cycle).
pub fn create_implied(
    ctx: &Context,
    s: &mut impl StoreWrite,
    prior: &str,
    implied: &str,
) -> ServiceResult<(Role, Role)> {
    authorize(ctx, CREATE_IMPLIED, Target::default())?;
    let (mut p, i) = lookup_pair(s, prior, implied)?;
    // Keystone's `[assignment] prohibited_implied_role` (admin).
    if i.name.eq_ignore_ascii_case("admin") {
        return Err(forbidden(format!("{implied} cannot be an implied roles.")));
    }
    if p.domain_id.is_none() && i.domain_id.is_some() {
        return Err(forbidden("Global role cannot imply a domain-specific role"));
    }
    if prior == implied || implied_closure(s, implied).iter().any(|x| x == prior) {
        return Err(bad_request(format!(
            "Implying {implied} from {prior} would create a cycle of implied roles."
        )));
    }
    if !p.implies.iter().any(|x| x == implied) {
        p.implies.push(implied.to_string());
        s.put(p.clone())?;
    }
    Ok((p, i))
}

pub fn delete_implied(
    ctx: &Context,
    s: &mut impl StoreWrite,
    prior: &str,
    implied: &str,
) -> ServiceResult<()> {
    authorize(ctx, DELETE_IMPLIED, Target::default())?;
    let (mut p, _) = lookup_pair(s, prior, implied)?;
    if !p.implies.iter().any(|x| x == implied) {
        return Err(implied_not_found(prior, implied));
    }
    p.implies.retain(|i| i != implied);
    s.put(p)?;
    Ok(())
}

/// A prior role and the roles it implies directly (those that exist).
pub struct Inference {
    pub prior: Arc<Role>,
    pub implies: Vec<Arc<Role>>,
}

fn inference(s: &impl StoreRead, prior: Arc<Role>) -> Inference {
    let implies = prior
        .implies
        .iter()
        .filter_map(|i| s.get::<Role>(i))
        .collect();
    Inference { prior, implies }
}

/// What `prior` implies directly.
pub fn list_implied(ctx: &Context, s: &impl StoreRead, prior: &str) -> ServiceResult<Inference> {
    authorize(ctx, LIST_IMPLIED, Target::default())?;
    let p = s
        .get::<Role>(&prior.to_string())
        .ok_or_else(|| not_found("role", prior))?;
    Ok(inference(s, p))
}

/// Every role that implies others, by name.
pub fn inferences(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Inference>> {
    authorize(ctx, LIST_INFERENCES, Target::default())?;
    let mut priors: Vec<Arc<Role>> = s
        .all::<Role>()
        .into_iter()
        .filter(|r| !r.implies.is_empty())
        .collect();
    priors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(priors.into_iter().map(|p| inference(s, p)).collect())
}
