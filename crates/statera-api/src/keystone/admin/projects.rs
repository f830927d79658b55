//! `/v3/projects`: create, list (`name`, `domain_id`, `enabled`,
//! `parent_id`), show, update, delete (a leaf only; its role assignments and
//! application credentials go with it, and its tokens are revoked).
//!
//! Under `noauth` the two GETs keep the lab's behaviour
//! ([`crate::identity`]): any project id or name is answered as a project.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_identity::AuthMode;
use statera_model::identity::{ApplicationCredential, AssignmentTarget, Project, new_id};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/projects", get(list_projects).post(create))
        .route(
            "/v3/projects/{id}",
            get(show_project).patch(update).delete(delete),
        )
}

impl AdminResource for Project {
    const KIND: &'static str = "project";
    const PLURAL: &'static str = "projects";
    const GET: &'static str = "identity:get_project";
    const LIST: &'static str = "identity:list_projects";
    const FILTERS: &'static [&'static str] = &[
        "name",
        "domain_id",
        "enabled",
        "parent_id",
        "is_domain",
        "tags",
    ];
    fn render(ctx: &RequestContext, p: &Self) -> Value {
        render(ctx, p)
    }
    fn sort_key(&self) -> String {
        self.name.clone()
    }
    fn target(id: &str) -> Target<'_> {
        Target::project(id)
    }
}

pub fn render(ctx: &RequestContext, p: &Project) -> Value {
    with_self(
        ctx,
        json!({
            "id": p.id,
            "name": p.name,
            "domain_id": p.domain_id,
            "description": p.description,
            "enabled": p.enabled,
            "parent_id": p.parent_id.clone().unwrap_or_else(|| p.domain_id.clone()),
            "is_domain": false,
            "tags": p.tags,
            "options": p.options,
        }),
        &format!("projects/{}", p.id),
    )
}

/// The attributes a project has here. Keystone keeps any other as an extra;
/// Statera has nowhere to keep them and refuses them rather than drop them.
const FIELDS: &[&str] = &[
    "name",
    "domain_id",
    "description",
    "enabled",
    "parent_id",
    "is_domain",
    "tags",
    "options",
];

/// Keystone's `max_project_tree_depth` (projects below a domain).
const MAX_DEPTH: usize = 5;

/// `id` and the projects above it, nearest first (bounded against loops).
fn ancestors(state: &StoreState, id: &str) -> Vec<Project> {
    let mut out: Vec<Project> = Vec::new();
    let mut at = Some(id.to_string());
    while let Some(pid) = at {
        let Some(p) = state.projects.get(&pid) else {
            break;
        };
        if out.iter().any(|o| o.id == p.id) || out.len() > 64 {
            break;
        }
        at = p.parent_id.clone();
        out.push((**p).clone());
    }
    out
}

fn name_taken(txn: &Txn, domain_id: &str, name: &str, except: &str) -> bool {
    txn.state()
        .projects
        .iter()
        .any(|p| p.id != except && p.domain_id == domain_id && p.name.eq_ignore_ascii_case(name))
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_project", Target::default())?;
    let obj = envelope(&body, "project")?;
    only(&obj, FIELDS)?;
    if bool_field(&obj, "is_domain")? == Some(true) {
        return Err(bad_request(
            "Projects acting as domains are not supported: create a domain instead.",
        ));
    }
    let name = name_field(&obj, true, PROJECT_NAME_MAX)?.unwrap_or_default();
    let domain_id = opt_str(&obj, "domain_id", 64, true)?.flatten();
    let parent_id = opt_str(&obj, "parent_id", 64, true)?.flatten();
    let mut p = Project {
        id: new_id(),
        name,
        domain_id: domain_id.clone().unwrap_or_default(),
        description: description_field(&obj)?.unwrap_or_default(),
        enabled: bool_field(&obj, "enabled")?.unwrap_or(true),
        parent_id: None,
        tags: tags_field(&obj)?.unwrap_or_default(),
        options: options_field(&obj)?.unwrap_or_default(),
        created_at: statera_model::now(),
    };
    let p = write(&state, |txn| {
        // The parent decides the domain when none is given (Keystone).
        let parent = match &parent_id {
            Some(pid) => match txn.state().projects.get(pid) {
                Some(parent) => Some(parent.clone()),
                None if domain_id.as_deref() == Some(pid.as_str())
                    || (domain_id.is_none() && txn.state().domains.contains(pid)) =>
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
        if !txn.state().domains.contains(&p.domain_id) {
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
            let branch = ancestors(txn.state(), &parent.id);
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
        if name_taken(txn, &p.domain_id, &p.name, "") {
            return Err(duplicate_in("project", &p.name, &p.domain_id));
        }
        txn.put(p.clone())?;
        Ok(p)
    })
    .await?;
    Ok(one(StatusCode::CREATED, "project", render(&ctx, &p)))
}

/// Under `noauth`, the lab's lookups; otherwise the registry.
async fn list_projects(
    state: State<AppState>,
    ctx: RequestContext,
    uri: OriginalUri,
) -> ApiResult<Response> {
    if state.auth.mode() == AuthMode::NoAuth {
        return Ok(crate::identity::list(uri).await.into_response());
    }
    list::<Project>(state, ctx, uri).await
}

async fn show_project(
    state: State<AppState>,
    ctx: RequestContext,
    id: Path<String>,
) -> ApiResult<Response> {
    if state.auth.mode() == AuthMode::NoAuth {
        return Ok(crate::identity::show(id).await.into_response());
    }
    show::<Project>(state, ctx, id).await
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:update_project", Target::project(&id))?;
    let obj = envelope(&body, "project")?;
    if obj.contains_key("domain_id") {
        return Err(bad_request("Update of `domain_id` is not allowed."));
    }
    if obj.contains_key("parent_id") {
        return Err(bad_request("Update of `parent_id` is not allowed."));
    }
    if obj.contains_key("is_domain") {
        return Err(bad_request("Update of `is_domain` is not allowed."));
    }
    only(&obj, FIELDS)?;
    let name = name_field(&obj, false, PROJECT_NAME_MAX)?;
    let description = description_field(&obj)?;
    let enabled = bool_field(&obj, "enabled")?;
    let tags = tags_field(&obj)?;
    let options = options_field(&obj)?;
    let p = write(&state, |txn| {
        let mut p = fetch::<Project>(txn.state(), &id)?;
        if let Some(n) = name {
            if name_taken(txn, &p.domain_id, &n, &p.id) {
                return Err(duplicate_in("project", &n, &p.domain_id));
            }
            p.name = n;
        }
        if let Some(x) = description {
            p.description = x;
        }
        if let Some(x) = tags {
            p.tags = x;
        }
        if let Some(x) = options {
            p.options.extend(x);
            p.options.retain(|_, v| !v.is_null());
        }
        if let Some(e) = enabled {
            if p.enabled && !e {
                let s = txn.state();
                if s.projects
                    .iter()
                    .any(|c| c.enabled && ancestors(s, &c.id).iter().skip(1).any(|a| a.id == p.id))
                {
                    return Err(forbidden(format!(
                        "Cannot disable project {} since its subtree contains enabled projects.",
                        p.id
                    )));
                }
                let pid = p.id.clone();
                revoke(txn, |r| r.project_id = Some(pid))?;
            }
            if !p.enabled
                && e
                && ancestors(txn.state(), &p.id)
                    .iter()
                    .skip(1)
                    .any(|a| !a.enabled)
            {
                return Err(forbidden(format!(
                    "Cannot enable project {} since it has disabled parents",
                    p.id
                )));
            }
            p.enabled = e;
        }
        txn.put(p.clone())?;
        Ok(p)
    })
    .await?;
    Ok(one(StatusCode::OK, "project", render(&ctx, &p)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_project", Target::project(&id))?;
    write(&state, |txn| {
        fetch::<Project>(txn.state(), &id)?;
        if txn
            .state()
            .projects
            .iter()
            .any(|p| p.parent_id.as_deref() == Some(id.as_str()))
        {
            return Err(forbidden(format!(
                "Cannot delete the project {id} since it is not a leaf in the hierarchy. \
                 Use the cascade option if you want to delete a whole subtree."
            )));
        }
        delete_assignments(
            txn,
            |a| matches!(&a.target, AssignmentTarget::Project(p) if p == &id),
        );
        let creds: Vec<String> = txn
            .state()
            .application_credentials
            .iter()
            .filter(|c| c.project_id == id)
            .map(|c| c.id.clone())
            .collect();
        for c in &creds {
            txn.delete::<ApplicationCredential>(c);
        }
        txn.delete::<Project>(&id);
        revoke(txn, |r| r.project_id = Some(id.clone()))?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}
