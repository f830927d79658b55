//! `/l7policies`: ordered request-routing policies on HTTP listeners. The
//! wire only: reading requests (`parse_fields`), rendering; the operations
//! are `statera_service::octavia::l7policies`.

use super::*;
use crate::ApiSettings;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::list::Object;
use crate::render;
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::routing::post;
use resource::Resource;
use serde_json::Value;
use statera_service::octavia::l7policies as service;
pub use statera_service::octavia::l7policies::{
    MAX_POSITION, PolicyFields, new_policy, place, validate,
};
use statera_service::{Context, ServiceResult};

pub fn routes() -> Router<AppState> {
    resource::routes::<Policies>("/l7policies", post(create))
}

/// `/l7policies` in the shape every resource shares ([`resource`]).
pub struct Policies;

impl Resource for Policies {
    type Model = L7Policy;
    type Fields = PolicyFields;
    const NAME: &'static str = "L7 Policy";
    const ENVELOPE: &'static str = "l7policy";
    const PLURAL: &'static str = "l7policies";
    const LINKS: &'static str = "l7policies_links";
    const ATTRS: &'static [&'static str] = render::L7POLICY_ATTRS;

    fn render(s: &State, p: &L7Policy) -> Object {
        render::l7policy(s, p)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<L7Policy>> {
        service::show(ctx, s, id)
    }
    fn list(ctx: &Context, s: &State, asked: Option<&str>) -> ServiceResult<Vec<Arc<L7Policy>>> {
        service::list(ctx, s, asked)
    }
    fn parse_update(input: &mut Input) -> ApiResult<PolicyFields> {
        parse_fields(input)
    }
    fn check_update(f: &PolicyFields) -> ApiResult<()> {
        if f.is_empty() {
            return Err(service::invalid("Invalid update options").into());
        }
        Ok(())
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        id: Uuid,
        f: PolicyFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, id, f)
    }
    fn delete(ctx: &Context, txn: &mut Txn, id: Uuid, _: &Query) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
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
    Ok((
        StatusCode::CREATED,
        Json(resource::rendered::<Policies>(&app, id)?),
    ))
}
