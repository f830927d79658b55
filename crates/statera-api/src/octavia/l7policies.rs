//! `/l7policies`: ordered request-routing policies on HTTP listeners. The
//! wire only: reading requests (`parse_fields`), rendering; the operations
//! are `statera_service::octavia::l7policies`.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use statera_service::octavia::l7policies as service;
pub use statera_service::octavia::l7policies::{
    MAX_POSITION, PolicyFields, new_policy, place, validate,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/l7policies", get(list).post(create))
        .route("/l7policies/{id}", get(show).put(update).delete(delete))
}

/// The mutable attributes of a policy as a request states them.
pub fn parse_fields(input: &mut Input) -> ApiResult<PolicyFields> {
    Ok(PolicyFields {
        name: input.string("name", 255)?,
        description: input.string("description", 255)?,
        admin_state_up: input.boolean("admin_state_up")?,
        action: input.enumeration("action", L7PolicyAction::ALL, |e| e.as_str())?,
        redirect_pool_id: input.uuid("redirect_pool_id")?,
        redirect_url: input.string("redirect_url", 255)?,
        redirect_prefix: input.string("redirect_prefix", 255)?,
        redirect_http_code: input.int("redirect_http_code", 0, 999)?,
        position: input.int("position", 1, MAX_POSITION)?,
        tags: tags(input)?,
    })
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "l7policy")?;
    let listener_id = input.uuid("listener_id")?.required("listener_id")?;
    input.project_id()?;
    let action = input.enumeration("action", L7PolicyAction::ALL, |e| e.as_str())?;
    let rules = input.list("rules")?.value().unwrap_or_default();
    let fields = parse_fields(&mut input)?;
    input.finish()?;
    let action = action.required("action")?;
    let mut new_rules = Vec::with_capacity(rules.len());
    for r in rules {
        let mut ri = Input::from_value(r, "rule")?;
        new_rules.push(l7rules::parse_create(&mut ri)?);
        ri.finish()?;
    }
    let id = app
        .store
        .write(|txn| {
            service::create(
                &ctx.service,
                txn,
                &app.settings.quota_defaults,
                listener_id,
                action,
                fields,
                new_rules,
            )
        })
        .await?;
    let s = app.store.snapshot();
    let p = s
        .l7policies
        .get(&id)
        .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"l7policy": render::l7policy(&s, p)})),
    ))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let s = app.store.snapshot();
    let items = service::list(&ctx.service, &*s, q.get("project_id"))?
        .iter()
        .map(|p| render::l7policy(&s, p))
        .collect();
    app.collection(
        &ctx,
        &uri,
        "l7policies",
        Some("l7policies_links"),
        render::L7POLICY_ATTRS,
    )
    .respond(items, &q)
    .map(Json)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "L7 Policy")?;
    let s = app.store.snapshot();
    let p = service::show(&ctx.service, &*s, id)?;
    Ok(Json(loadbalancers::one(
        "l7policy",
        render::l7policy(&s, &p),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "L7 Policy")?;
    let mut input = Input::from_root(body, "l7policy")?;
    let fields = parse_fields(&mut input)?;
    input.finish()?;
    if fields.is_empty() {
        return Err(service::invalid("Invalid update options").into());
    }
    app.store
        .write(|txn| service::update(&ctx.service, txn, id, fields))
        .await?;
    let s = app.store.snapshot();
    let p = s
        .l7policies
        .get(&id)
        .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
    Ok(Json(json!({"l7policy": render::l7policy(&s, p)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "L7 Policy")?;
    app.store
        .write(|txn| service::delete(&ctx.service, txn, id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
