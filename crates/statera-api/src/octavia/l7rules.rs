//! `/l7policies/{policy_id}/rules` (envelope `rule`/`rules`). The wire only:
//! reading requests (`parse_fields`, `parse_create`), rendering; the
//! operations are `statera_service::octavia::l7rules`.

use super::*;
use crate::ApiSettings;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::render;
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use statera_service::octavia::l7rules as service;
pub use statera_service::octavia::l7rules::{MAX_RULES, RuleFields, build};
use statera_service::{Context, ServiceResult};

pub fn routes() -> Router<AppState> {
    resource::child_routes::<Rules>("/l7policies/{policy_id}/rules", post(create))
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

/// L7 rules on the one nested wire shape ([`resource::Child`]).
pub struct Rules;

impl resource::Child for Rules {
    type Model = L7Rule;
    type Fields = RuleFields;
    const PARENT: &'static str = "L7 Policy";
    const ENVELOPE: &'static str = "rule";
    const PLURAL: &'static str = "rules";
    const LINKS: &'static str = "rules_links";
    const ATTRS: &'static [&'static str] = render::L7RULE_ATTRS;
    // openstacksdk adds `?l7policy_id=` (the policy of the path) when it lists rules.
    const IGNORED: &'static [&'static str] = &["l7policy_id"];

    fn render(r: &L7Rule) -> crate::list::Object {
        render::l7rule(r)
    }
    fn list(ctx: &Context, s: &State, policy_id: Uuid) -> ServiceResult<Vec<Arc<L7Rule>>> {
        service::list(ctx, s, policy_id)
    }
    fn show(ctx: &Context, s: &State, policy_id: Uuid, id: &str) -> ServiceResult<Arc<L7Rule>> {
        service::show(ctx, s, policy_id, id)
    }
    fn parse_update(input: &mut Input) -> ApiResult<RuleFields> {
        parse_fields(input)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _settings: &ApiSettings,
        policy_id: Uuid,
        id: &str,
        fields: RuleFields,
    ) -> ServiceResult<L7Rule> {
        service::update(ctx, txn, policy_id, id, fields)
    }
    fn delete(ctx: &Context, txn: &mut Txn, policy_id: Uuid, id: &str) -> ServiceResult<()> {
        service::delete(ctx, txn, policy_id, id)
    }
}
