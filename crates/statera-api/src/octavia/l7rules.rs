//! `/l7policies/{policy_id}/rules` (envelope `rule`/`rules`). The wire only:
//! reading requests (`parse_fields`, `parse_create`), rendering; the
//! operations are `statera_service::octavia::l7rules`.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use statera_service::octavia::l7rules as service;
pub use statera_service::octavia::l7rules::{MAX_RULES, RuleFields, build};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/l7policies/{policy_id}/rules", get(list).post(create))
        .route(
            "/l7policies/{policy_id}/rules/{id}",
            get(show).put(update).delete(delete),
        )
}

/// The attributes of a rule as a request states them.
pub fn parse_fields(input: &mut Input) -> ApiResult<RuleFields> {
    let key = input.string("key", 255)?;
    let value = input.string("value", 255)?;
    Ok(RuleFields {
        kind: input.enumeration("type", L7RuleType::ALL, |e| e.as_str())?,
        compare_type: input.enumeration("compare_type", L7RuleCompareType::ALL, |e| e.as_str())?,
        key,
        value,
        invert: input.boolean("invert")?,
        admin_state_up: input.boolean("admin_state_up")?,
        tags: tags(input)?,
    })
}

/// A create body: type, compare_type and value are required.
pub fn parse_create(input: &mut Input) -> ApiResult<RuleFields> {
    input.project_id()?;
    let f = parse_fields(input)?;
    if !f.kind.is_set() {
        return Err(ApiError::missing_field("type"));
    }
    if !f.compare_type.is_set() {
        return Err(ApiError::missing_field("compare_type"));
    }
    if !f.value.is_set() {
        return Err(ApiError::missing_field("value"));
    }
    Ok(f)
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(policy_id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let policy_id = path_id(&policy_id, "L7 Policy")?;
    let mut input = Input::from_root(body, "rule")?;
    let fields = parse_create(&mut input)?;
    input.finish()?;
    let rule = app
        .store
        .write(|txn| {
            service::create(
                &ctx.service,
                txn,
                &app.settings.quota_defaults,
                policy_id,
                fields,
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"rule": render::l7rule(&rule)})),
    ))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(policy_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let policy_id = path_id(&policy_id, "L7 Policy")?;
    let items = service::list(&ctx.service, &*app.store.snapshot(), policy_id)?
        .iter()
        .map(|r| render::l7rule(r))
        .collect();
    let mut c = app.collection(
        &ctx,
        &uri,
        "rules",
        Some("rules_links"),
        render::L7RULE_ATTRS,
    );
    // openstacksdk adds `?l7policy_id=` (the policy of the path) when it lists rules.
    c.ignored = &["l7policy_id"];
    c.respond(items, &q).map(Json)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((policy_id, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let policy_id = path_id(&policy_id, "L7 Policy")?;
    let r = service::show(&ctx.service, &*app.store.snapshot(), policy_id, &id)?;
    Ok(Json(loadbalancers::one(
        "rule",
        render::l7rule(&r),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((policy_id, id)): Path<(String, String)>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let policy_id = path_id(&policy_id, "L7 Policy")?;
    let mut input = Input::from_root(body, "rule")?;
    let fields = parse_fields(&mut input)?;
    input.finish()?;
    let rule = app
        .store
        .write(|txn| service::update(&ctx.service, txn, policy_id, &id, fields))
        .await?;
    Ok(Json(json!({"rule": render::l7rule(&rule)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((policy_id, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let policy_id = path_id(&policy_id, "L7 Policy")?;
    app.store
        .write(|txn| service::delete(&ctx.service, txn, policy_id, &id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
