//! Projects: create (under a domain or a parent project), show, list,
//! update, delete (a leaf only; its role assignments and application
//! credentials go with it, and its tokens are revoked).

use super::*;
use statera_model::identity::{ApplicationCredential, AssignmentTarget, Domain, Project};
use std::collections::BTreeMap;

impl Resource for Project {
    const KIND: &'static str = "project";
    const GET: &'static str = "identity:get_project";
    const LIST: &'static str = "identity:list_projects";
    fn target(id: &str) -> Target<'_> {
        Target::project(id)
    }
}

pub const CREATE: &str = "identity:create_project";
pub const UPDATE: &str = "identity:update_project";
pub const DELETE: &str = "identity:delete_project";

/// Keystone's `max_project_tree_depth` (projects below a domain).
const MAX_DEPTH: usize = 5;

/// A new project as a request states it (`project.parent_id` unset: the
/// parent is `parent_id`, checked here).
#[derive(Debug)]
pub struct NewProject {
    /// `domain_id` empty when the request names none.
    pub project: Project,
    pub domain_id: Option<String>,
    pub parent_id: Option<String>,
}

/// A project update as a request states it.
#[derive(Debug, Default)]
pub struct ProjectFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub tags: Option<Vec<String>>,
    /// Merged into the project's options (a null removes one).
    pub options: Option<BTreeMap<String, serde_json::Value>>,
}

/// `id` and the projects above it, nearest first (bounded against loops).
pub fn ancestors(s: &impl StoreRead, id: &str) -> Vec<Project> {
    let mut out: Vec<Project> = Vec::new();
    let mut at = Some(id.to_string());
    while let Some(pid) = at {
        let Some(p) = s.get::<Project>(&pid) else {
            break;
        };
        if out.iter().any(|o| o.id == p.id) || out.len() > 64 {
            break;
        }
        at = p.parent_id.clone();
        out.push((*p).clone());
    }
    out
}

fn name_taken(s: &impl StoreRead, domain_id: &str, name: &str, except: &str) -> bool {
    s.all::<Project>()
        .iter()
        .any(|p| p.id != except && p.domain_id == domain_id && p.name.eq_ignore_ascii_case(name))
}

/// A new project: the parent decides the domain when none is given
/// (Keystone), else the caller's project's domain, else the default one.
pub fn create(ctx: &Context, s: &mut impl StoreWrite, new: NewProject) -> ServiceResult<Project> {
    authorize(ctx, CREATE, Target::default())?;
    let NewProject {
        project: mut p,
        domain_id,
        parent_id,
    } = new;
    let parent = match &parent_id {
        Some(pid) => match s.get::<Project>(pid) {
            Some(parent) => Some(parent),
            None if domain_id.as_deref() == Some(pid.as_str())
                || (domain_id.is_none() && s.get::<Domain>(pid).is_some()) =>
            {
                None
            }
            None => return Err(not_found("project", pid)),
        },
        None => None,
    };
    if p.domain_id.is_empty() {
        p.domain_id = match (&parent, &parent_id) {
            (Some(parent), _) => parent.domain_id.clone(),
            (None, Some(pid)) => pid.clone(),
            (None, None) => ctx
                .caller
                .project_domain_id
                .clone()
                .unwrap_or_else(|| statera_model::identity::DEFAULT_DOMAIN_ID.to_string()),
        };
    }
    if s.get::<Domain>(&p.domain_id).is_none() {
        return Err(not_found("domain", &p.domain_id));
    }
    if let Some(parent) = &parent {
        if parent.domain_id != p.domain_id {
            return Err(bad_request(format!(
                "Cannot create project, since it specifies its domain_id {}, but specifies \
                 a parent in a different domain ({}).",
                p.domain_id, parent.domain_id
            )));
        }
        let branch = ancestors(s, &parent.id);
        if let Some(off) = branch.iter().find(|a| !a.enabled) {
            return Err(bad_request(format!(
                "cannot create a project in a branch containing a disabled project: {}",
                off.id
            )));
        }
        if branch.len() + 1 > MAX_DEPTH {
            return Err(forbidden(format!(
                "Max hierarchy depth reached for {} branch.",
                parent.id
            )));
        }
        p.parent_id = Some(parent.id.clone());
    }
    if name_taken(s, &p.domain_id, &p.name, "") {
        return Err(duplicate_in("project", &p.name, &p.domain_id));
    }
    s.put(p.clone())?;
    Ok(p)
}

/// Disabling a project revokes its tokens (refused while a project below it
/// is enabled); enabling one under a disabled parent is refused.
pub fn update(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: ProjectFields,
) -> ServiceResult<Project> {
    authorize(ctx, UPDATE, Target::project(id))?;
    let mut p = fetch::<Project>(s, id)?;
    if let Some(n) = f.name {
        if name_taken(s, &p.domain_id, &n, &p.id) {
            return Err(duplicate_in("project", &n, &p.domain_id));
        }
        p.name = n;
    }
    if let Some(x) = f.description {
        p.description = x;
    }
    if let Some(x) = f.tags {
        p.tags = x;
    }
    if let Some(x) = f.options {
        p.options.extend(x);
        p.options.retain(|_, v| !v.is_null());
    }
    if let Some(e) = f.enabled {
        if p.enabled && !e {
            if s.all::<Project>()
                .iter()
                .any(|c| c.enabled && ancestors(s, &c.id).iter().skip(1).any(|a| a.id == p.id))
            {
                return Err(forbidden(format!(
                    "Cannot disable project {} since its subtree contains enabled projects.",
                    p.id
                )));
            }
            let pid = p.id.clone();
            revoke(s, |r| r.project_id = Some(pid))?;
        }
        if !p.enabled && e && ancestors(s, &p.id).iter().skip(1).any(|a| !a.enabled) {
            return Err(forbidden(format!(
                "Cannot enable project {} since it has disabled parents",
                p.id
            )));
        }
        p.enabled = e;
    }
    s.put(p.clone())?;
    Ok(p)
}

/// A leaf project, its assignments and application credentials.
pub fn delete(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE, Target::project(id))?;
    fetch::<Project>(s, id)?;
    if s.all::<Project>()
        .iter()
        .any(|p| p.parent_id.as_deref() == Some(id))
    {
        return Err(forbidden(format!(
            "Cannot delete the project {id} since it is not a leaf in the hierarchy. \
             Use the cascade option if you want to delete a whole subtree."
        )));
    }
    delete_assignments(
        s,
        |a| matches!(&a.target, AssignmentTarget::Project(p) if p == id),
    );
    let creds: Vec<String> = s
        .all::<ApplicationCredential>()
        .iter()
        .filter(|c| c.project_id == id)
        .map(|c| c.id.clone())
        .collect();
    for c in &creds {
        s.delete::<ApplicationCredential>(c);
    }
    s.delete::<Project>(&id.to_string());
    revoke(s, |r| r.project_id = Some(id.to_string()))?;
    Ok(())
}
