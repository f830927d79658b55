//! `/v3/projects`: create, list (`name`, `domain_id`, `enabled`,
//! `parent_id`), show, update, delete (a leaf only; its role assignments and
//! application credentials go with it, and its tokens are revoked).
//!
//! The wire only: the operations are `statera_service::identity::projects`.
//! Under `noauth` the two GETs keep the lab's behaviour
//! ([`crate::identity`]): any project id or name is answered as a project.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_identity::AuthMode;
use statera_model::identity::{Project, new_id};
use statera_service::identity::projects::{self as service, NewProject, ProjectFields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/projects", get(list_projects).post(create))
        .route(
            "/v3/projects/{id}",
            get(show_project).patch(update).delete(delete),
        )
}

impl AdminResource for Project {
    const PLURAL: &'static str = "projects";
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

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE, Target::default())?;
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
    let project = Project {
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
    let new = NewProject {
        project,
        domain_id,
        parent_id,
    };
    let p = service_write(&state, |txn| service::create(&ctx.service, txn, new)).await?;
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
    admit(&ctx, service::UPDATE, Target::project(&id))?;
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
    let f = ProjectFields {
        name: name_field(&obj, false, PROJECT_NAME_MAX)?,
        description: description_field(&obj)?,
        enabled: bool_field(&obj, "enabled")?,
        tags: tags_field(&obj)?,
        options: options_field(&obj)?,
    };
    let p = service_write(&state, |txn| service::update(&ctx.service, txn, &id, f)).await?;
    Ok(one(StatusCode::OK, "project", render(&ctx, &p)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE, Target::project(&id))?;
    service_write(&state, |txn| service::delete(&ctx.service, txn, &id)).await?;
    Ok(no_content())
}
