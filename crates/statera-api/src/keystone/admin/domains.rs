//! `/v3/domains`: create, list (`name`, `enabled`), show, update, delete (a
//! domain must be disabled first; its projects, users, groups, roles and
//! assignments go with it, and its tokens are revoked).

use super::*;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{
    ApplicationCredential, AssignmentTarget, Domain, Group, Project, Role, User, new_id,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/domains", get(list::<Domain>).post(create))
        .route(
            "/v3/domains/{id}",
            get(show::<Domain>).patch(update).delete(delete),
        )
}

impl AdminResource for Domain {
    const KIND: &'static str = "domain";
    const PLURAL: &'static str = "domains";
    const GET: &'static str = "identity:get_domain";
    const LIST: &'static str = "identity:list_domains";
    const FILTERS: &'static [&'static str] = &["name", "enabled"];
    fn render(ctx: &RequestContext, d: &Self) -> Value {
        render(ctx, d)
    }
    fn sort_key(&self) -> String {
        self.name.clone()
    }
}

pub fn render(ctx: &RequestContext, d: &Domain) -> Value {
    with_self(
        ctx,
        json!({
            "id": d.id,
            "name": d.name,
            "description": d.description,
            "enabled": d.enabled,
            "tags": d.tags,
            "options": d.options,
        }),
        &format!("domains/{}", d.id),
    )
}

const FIELDS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "tags",
    "options",
    "explicit_domain_id",
];

fn name_taken(txn: &Txn, name: &str, except: &str) -> bool {
    txn.state()
        .domains
        .iter()
        .any(|d| d.id != except && d.name.eq_ignore_ascii_case(name))
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_domain", Target::default())?;
    let obj = envelope(&body, "domain")?;
    only(&obj, FIELDS)?;
    let name = name_field(&obj, true, PROJECT_NAME_MAX)?.unwrap_or_default();
    let id = match opt_str(&obj, "explicit_domain_id", 64, false)? {
        Some(Some(id))
            if !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            id
        }
        Some(Some(id)) => {
            return Err(invalid(
                "explicit_domain_id",
                format!("'{id}' is not a valid id"),
            ));
        }
        _ => new_id(),
    };
    let d = Domain {
        id,
        name,
        description: description_field(&obj)?.unwrap_or_default(),
        enabled: bool_field(&obj, "enabled")?.unwrap_or(true),
        tags: tags_field(&obj)?.unwrap_or_default(),
        options: options_field(&obj)?.unwrap_or_default(),
        created_at: statera_model::now(),
    };
    let d = write(&state, |txn| {
        if name_taken(txn, &d.name, "") {
            return Err(duplicate("domain", &d.name));
        }
        if txn.state().domains.contains(&d.id) {
            return Err(kerr(
                StatusCode::CONFLICT,
                format!("Conflict occurred attempting to store domain - Duplicate entry found with ID {}.", d.id),
            ));
        }
        txn.put(d.clone())?;
        Ok(d)
    })
    .await?;
    Ok(one(StatusCode::CREATED, "domain", render(&ctx, &d)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:update_domain", Target::default())?;
    let obj = envelope(&body, "domain")?;
    only(
        &obj,
        &["name", "description", "enabled", "tags", "options", "id"],
    )?;
    if let Some(v) = obj.get("id")
        && v.as_str() != Some(id.as_str())
    {
        return Err(bad_request("Cannot change Domain ID."));
    }
    let name = name_field(&obj, false, PROJECT_NAME_MAX)?;
    let description = description_field(&obj)?;
    let enabled = bool_field(&obj, "enabled")?;
    let tags = tags_field(&obj)?;
    let options = options_field(&obj)?;
    let d = write(&state, |txn| {
        let mut d = fetch::<Domain>(txn.state(), &id)?;
        if let Some(n) = name {
            if name_taken(txn, &n, &d.id) {
                return Err(duplicate("domain", &n));
            }
            d.name = n;
        }
        if let Some(x) = description {
            d.description = x;
        }
        if let Some(x) = tags {
            d.tags = x;
        }
        if let Some(x) = options {
            d.options.extend(x);
            d.options.retain(|_, v| !v.is_null());
        }
        if let Some(e) = enabled {
            if d.enabled && !e {
                let did = d.id.clone();
                revoke(txn, |r| r.domain_id = Some(did))?;
            }
            d.enabled = e;
        }
        txn.put(d.clone())?;
        Ok(d)
    })
    .await?;
    Ok(one(StatusCode::OK, "domain", render(&ctx, &d)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_domain", Target::default())?;
    write(&state, |txn| {
        let d = fetch::<Domain>(txn.state(), &id)?;
        if d.enabled {
            return Err(forbidden(
                "Cannot delete a domain that is enabled, please disable it first.",
            ));
        }
        let s = txn.state().clone();
        let projects: Vec<String> = s
            .projects
            .iter()
            .filter(|p| p.domain_id == id)
            .map(|p| p.id.clone())
            .collect();
        let users: Vec<String> = s
            .users
            .iter()
            .filter(|u| u.domain_id == id)
            .map(|u| u.id.clone())
            .collect();
        let groups: Vec<String> = s
            .groups
            .iter()
            .filter(|g| g.domain_id == id)
            .map(|g| g.id.clone())
            .collect();
        let roles: Vec<String> = s
            .roles
            .iter()
            .filter(|r| r.domain_id.as_deref() == Some(id.as_str()))
            .map(|r| r.id.clone())
            .collect();
        delete_assignments(txn, |a| {
            let on = match &a.target {
                AssignmentTarget::Domain(d) => d == &id,
                AssignmentTarget::Project(p) => projects.contains(p),
                AssignmentTarget::System(_) => false,
            };
            let by = match &a.actor {
                statera_model::identity::Actor::User(u) => users.contains(u),
                statera_model::identity::Actor::Group(g) => groups.contains(g),
            };
            on || by || roles.contains(&a.role_id)
        });
        for p in &projects {
            txn.delete::<Project>(p);
        }
        for u in &users {
            txn.delete::<User>(u);
        }
        for g in &groups {
            txn.delete::<Group>(g);
        }
        for r in &roles {
            txn.delete::<Role>(r);
        }
        let creds: Vec<String> = s
            .application_credentials
            .iter()
            .filter(|c| users.contains(&c.user_id) || projects.contains(&c.project_id))
            .map(|c| c.id.clone())
            .collect();
        for c in &creds {
            txn.delete::<ApplicationCredential>(c);
        }
        txn.delete::<Domain>(&id);
        revoke(txn, |r| r.domain_id = Some(id.clone()))?;
        // Tokens of its projects and users are revoked one by one too, so that
        // no reading of the domain revocation is needed to refuse them.
        for p in projects {
            revoke(txn, |r| r.project_id = Some(p))?;
        }
        for u in users {
            revoke(txn, |r| r.user_id = Some(u))?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}
