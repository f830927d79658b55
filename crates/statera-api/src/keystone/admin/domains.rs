//! `/v3/domains`: create, list (`name`, `enabled`), show, update, delete (a
//! domain must be disabled first; its projects, users, groups, roles and
//! assignments go with it, and its tokens are revoked). The wire only: the
//! operations are `statera_service::identity::domains`.

use super::*;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{Domain, new_id};
use statera_service::identity::domains::{self as service, DomainFields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/domains", get(list::<Domain>).post(create))
        .route(
            "/v3/domains/{id}",
            get(show::<Domain>).patch(update).delete(delete),
        )
}

impl AdminResource for Domain {
    const PLURAL: &'static str = "domains";
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

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE, Target::default())?;
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
    let d = service_write(&state, |txn| service::create(&ctx.service, txn, d)).await?;
    Ok(one(StatusCode::CREATED, "domain", render(&ctx, &d)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::UPDATE, Target::default())?;
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
    let f = DomainFields {
        name: name_field(&obj, false, PROJECT_NAME_MAX)?,
        description: description_field(&obj)?,
        enabled: bool_field(&obj, "enabled")?,
        tags: tags_field(&obj)?,
        options: options_field(&obj)?,
    };
    let d = service_write(&state, |txn| service::update(&ctx.service, txn, &id, f)).await?;
    Ok(one(StatusCode::OK, "domain", render(&ctx, &d)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE, Target::default())?;
    service_write(&state, |txn| service::delete(&ctx.service, txn, &id)).await?;
    Ok(no_content())
}
