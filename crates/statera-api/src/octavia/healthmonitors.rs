//! `/healthmonitors`: one per pool. The wire only: reading requests
//! (`parse_fields`, `parse_create`), rendering; the operations are
//! `statera_service::octavia::healthmonitors`.

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
use serde_json::{Value, json};
use statera_service::octavia::healthmonitors as service;
pub use statera_service::octavia::healthmonitors::{MonitorFields, build};
use statera_service::{Context, ServiceResult};

pub fn routes() -> Router<AppState> {
    resource::routes::<Monitors>("/healthmonitors", post(create))
}

/// `/healthmonitors` in the shape every resource shares ([`resource`]).
pub struct Monitors;

impl Resource for Monitors {
    type Model = HealthMonitor;
    type Fields = MonitorFields;
    const NAME: &'static str = "Health Monitor";
    const ENVELOPE: &'static str = "healthmonitor";
    const PLURAL: &'static str = "healthmonitors";
    const LINKS: &'static str = "healthmonitors_links";
    const ATTRS: &'static [&'static str] = render::HM_ATTRS;

    fn render(_: &State, m: &HealthMonitor) -> Object {
        render::healthmonitor(m)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<HealthMonitor>> {
        service::show(ctx, s, id)
    }
    fn list(
        ctx: &Context,
        s: &State,
        asked: Option<&str>,
    ) -> ServiceResult<Vec<Arc<HealthMonitor>>> {
        service::list(ctx, s, asked)
    }
    fn parse_update(input: &mut Input) -> ApiResult<MonitorFields> {
        parse_fields(input)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        id: Uuid,
        f: MonitorFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, id, f).map(drop)
    }
    fn delete(ctx: &Context, txn: &mut Txn, id: Uuid, _: &Query) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

/// The mutable attributes of a monitor as a request states them, read the
/// way Octavia's WSME does.
pub fn parse_fields(input: &mut Input) -> ApiResult<MonitorFields> {
    Ok(MonitorFields {
        name: input.string("name", 255)?,
        admin_state_up: input.boolean("admin_state_up")?,
        delay: input.int("delay", 0, i64::from(i32::MAX))?,
        timeout: input.int("timeout", 0, i64::from(i32::MAX))?,
        max_retries: input.int("max_retries", 1, 10)?,
        max_retries_down: input.int("max_retries_down", 1, 10)?,
        http_method: input.enumeration("http_method", HttpMethod::ALL, |e| e.as_str())?,
        url_path: input.string("url_path", 2048)?,
        expected_codes: input.string("expected_codes", 64)?,
        http_version: input.float("http_version")?,
        domain_name: input.string("domain_name", 255)?,
        tags: tags(input)?,
    })
}

pub fn parse_create(input: &mut Input) -> ApiResult<(HealthMonitorType, MonitorFields)> {
    let kind = input
        .enumeration("type", HealthMonitorType::ALL, |e| e.as_str())?
        .required("type")?;
    input.project_id()?;
    Ok((kind, parse_fields(input)?))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "healthmonitor")?;
    let pool_id = input.uuid("pool_id")?.required("pool_id")?;
    let (kind, fields) = parse_create(&mut input)?;
    input.finish()?;
    let hm = app
        .store
        .write(|txn| service::create(&ctx.service, txn, &*app.settings, pool_id, kind, fields))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"healthmonitor": render::healthmonitor(&hm)})),
    ))
}
