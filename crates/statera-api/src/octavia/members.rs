//! `/pools/{pool_id}/members`, including the batch update. The wire only:
//! reading requests (`parse_fields`, `parse_create`, the batch body),
//! rendering; the operations are `statera_service::octavia::members`.

use super::*;
use crate::ApiSettings;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use statera_service::octavia::members as service;
pub use statera_service::octavia::members::{MemberFields, NewMember, build, check_targets};
use statera_service::{Context, ServiceResult};
use std::collections::HashSet;

pub fn routes() -> Router<AppState> {
    resource::child_routes::<Members>("/pools/{pool_id}/members", post(create).put(batch_update))
}

/// The mutable attributes of a member as a request states them.
pub fn parse_fields(input: &mut Input) -> ApiResult<MemberFields> {
    Ok(MemberFields {
        name: input.string("name", 255)?,
        admin_state_up: input.boolean("admin_state_up")?,
        weight: input.int("weight", 0, 256)?,
        backup: input.boolean("backup")?,
        monitor_address: input.ip_as_sent("monitor_address")?,
        monitor_port: input.int("monitor_port", 1, 65535)?,
        tags: tags(input)?,
    })
}

pub fn parse_create(input: &mut Input) -> ApiResult<NewMember> {
    let (address, address_as_sent) = input.ip_as_sent("address")?.required("address")?;
    let protocol_port = input
        .int("protocol_port", 1, 65535)?
        .required("protocol_port")? as u16;
    let subnet_id = input.uuid("subnet_id")?.value();
    input.project_id()?;
    if input.boolean("request_sriov")?.value() == Some(true) {
        return Err(ApiError::validation(
            "Member SR-IOV is not supported by this deployment's flavors.",
        ));
    }
    let fields = parse_fields(input)?;
    Ok(NewMember {
        address,
        address_as_sent,
        protocol_port,
        subnet_id,
        fields,
    })
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(pool_id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let pool_id = path_id(&pool_id, "Pool")?;
    let mut input = Input::from_root(body, "member")?;
    let new = parse_create(&mut input)?;
    input.finish()?;
    let member = app
        .store
        .write(|txn| service::create(&ctx.service, txn, &*app.settings, pool_id, new))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"member": render::member(&member)})),
    ))
}

/// Members on the one nested wire shape ([`resource::Child`]).
pub struct Members;

impl resource::Child for Members {
    type Model = Member;
    type Fields = MemberFields;
    const PARENT: &'static str = "Pool";
    const ENVELOPE: &'static str = "member";
    const PLURAL: &'static str = "members";
    const LINKS: &'static str = "members_links";
    const ATTRS: &'static [&'static str] = render::MEMBER_ATTRS;
    const IGNORED: &'static [&'static str] = &["pool_id"];
    const LIST_ONLY: &'static [&'static str] = &["pool_id"];

    fn render(m: &Member) -> crate::list::Object {
        render::member(m)
    }
    fn list_item(m: &Member, pool_id: Uuid) -> crate::list::Object {
        let mut o = render::member(m);
        o.insert("pool_id".into(), json!(pool_id));
        o
    }
    fn list(ctx: &Context, s: &State, pool_id: Uuid) -> ServiceResult<Vec<Arc<Member>>> {
        service::list(ctx, s, pool_id)
    }
    fn show(ctx: &Context, s: &State, pool_id: Uuid, id: &str) -> ServiceResult<Arc<Member>> {
        service::show(ctx, s, pool_id, id)
    }
    fn parse_update(input: &mut Input) -> ApiResult<MemberFields> {
        parse_fields(input)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        pool_id: Uuid,
        id: &str,
        fields: MemberFields,
    ) -> ServiceResult<Member> {
        service::update(ctx, txn, settings, pool_id, id, fields)
    }
    fn delete(ctx: &Context, txn: &mut Txn, pool_id: Uuid, id: &str) -> ServiceResult<()> {
        service::delete(ctx, txn, pool_id, id)
    }
}

/// `PUT /pools/{id}/members`: make the pool's members what the body lists,
/// matched by (address, protocol_port); with `?additive_only=true` members not
/// listed are kept.
async fn batch_update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(pool_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    JsonBody(body): OctaviaJson,
) -> ApiResult<StatusCode> {
    let pool_id = path_id(&pool_id, "Pool")?;
    let additive = query(&uri).flag("additive_only");
    let items = match body {
        Value::Object(mut o) => match o.remove("members") {
            Some(Value::Array(_)) if !o.is_empty() => {
                let extra: Vec<&str> = o.keys().map(String::as_str).collect();
                return Err(ApiError::invalid_field(
                    "members_",
                    Value::Object(o.clone()),
                    format!(
                        "Unknown attribute for argument members_: {}",
                        extra.join(", ")
                    ),
                ));
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(ApiError::invalid_field(
                    "members",
                    other,
                    "Value should be a list",
                ));
            }
            None => return Err(ApiError::missing_field("members")),
        },
        other => {
            return Err(ApiError::invalid_field(
                "members",
                other,
                "Value should be an object",
            ));
        }
    };
    let mut wanted = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for item in items {
        let mut input = Input::from_value(item, "member")?;
        let new = parse_create(&mut input)?;
        input.finish()?;
        if !seen.insert((new.address, new.protocol_port)) {
            return Err(ApiError::validation(format!(
                "Member {}:{} is listed more than once.",
                new.address, new.protocol_port
            )));
        }
        wanted.push(new);
    }
    app.store
        .write(|txn| {
            service::batch_update(&ctx.service, txn, &*app.settings, pool_id, additive, wanted)
        })
        .await?;
    Ok(StatusCode::ACCEPTED)
}
