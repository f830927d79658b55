//! `/healthmonitors`: one per pool.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use regex::Regex;
use serde_json::{Value, json};
use std::sync::LazyLock;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthmonitors", get(list).post(create))
        .route("/healthmonitors/{id}", get(show).put(update).delete(delete))
}

/// UDP-CONNECT probes no more often than this (seconds), as Octavia's default.
pub const UDP_CONNECT_MIN_DELAY: i64 = 3;

static EXPECTED_CODES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d{3}(\s*,\s*\d{3})*|\d{3}-\d{3})$").expect("valid regex"));
static DOMAIN_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.?$")
        .expect("valid regex")
});

/// The mutable attributes of a monitor as a request states them.
pub struct MonitorFields {
    name: Opt<String>,
    admin_state_up: Opt<bool>,
    delay: Opt<i64>,
    timeout: Opt<i64>,
    max_retries: Opt<i64>,
    max_retries_down: Opt<i64>,
    http_method: Opt<HttpMethod>,
    url_path: Opt<String>,
    expected_codes: Opt<String>,
    http_version: Opt<f64>,
    domain_name: Opt<String>,
    tags: Opt<Vec<String>>,
}

impl MonitorFields {
    pub fn parse(input: &mut Input) -> ApiResult<MonitorFields> {
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

    /// Merge into `h`. HTTP fields given for a non-HTTP monitor are an error.
    pub fn apply(self, h: &mut HealthMonitor) -> ApiResult<()> {
        let http = h.kind.is_http();
        for (field, given) in [
            ("http_method", self.http_method.is_set()),
            ("url_path", self.url_path.is_set()),
            ("expected_codes", self.expected_codes.is_set()),
        ] {
            if given && !http {
                return Err(ApiError::validation(format!(
                    "{field} is not a valid option for health monitors of type {}",
                    h.kind
                )));
            }
        }
        let required = |v: Opt<i64>, field: &str, slot: &mut i64| -> ApiResult<()> {
            match v {
                Opt::Set(x) => *slot = x,
                Opt::Null => return Err(ApiError::missing_field(field)),
                Opt::Absent => {}
            }
            Ok(())
        };
        required(self.delay, "delay", &mut h.delay)?;
        required(self.timeout, "timeout", &mut h.timeout)?;
        required(self.max_retries, "max_retries", &mut h.max_retries)?;
        if let Some(v) = self.max_retries_down.update() {
            h.max_retries_down = v.unwrap_or(3);
        }
        if let Some(v) = self.name.update() {
            h.name = v;
        }
        if let Some(v) = self.admin_state_up.update() {
            h.admin_state_up = v.unwrap_or(false);
        }
        if http {
            if let Some(v) = self.http_method.update() {
                h.http_method = Some(v.unwrap_or(HttpMethod::Get));
            }
            if let Some(v) = self.url_path.update() {
                h.url_path = Some(v.unwrap_or_else(|| "/".to_string()));
            }
            if let Some(v) = self.expected_codes.update() {
                h.expected_codes = Some(v.unwrap_or_else(|| "200".to_string()));
            }
        }
        if let Some(v) = self.http_version.update() {
            h.http_version = v;
        }
        if let Some(v) = self.domain_name.update() {
            h.domain_name = v;
        }
        if let Some(v) = self.tags.update() {
            h.tags = v.unwrap_or_default();
        }
        Ok(())
    }
}

/// Check a whole monitor.
pub fn validate(h: &HealthMonitor) -> ApiResult<()> {
    if let Some(path) = &h.url_path
        && (!path.starts_with('/') || path.chars().any(char::is_whitespace) || path.contains("://"))
    {
        return Err(ApiError::invalid_field(
            "url_path",
            path,
            "Value should be a valid URL path starting with /",
        ));
    }
    if let Some(codes) = &h.expected_codes
        && !EXPECTED_CODES.is_match(codes)
    {
        return Err(ApiError::invalid_field(
            "expected_codes",
            codes,
            "Value should match the pattern ^\\d{3}(\\s*,\\s*\\d{3})*$|^\\d{3}-\\d{3}$",
        ));
    }
    if let Some(v) = h.http_version
        && v != 1.0
        && v != 1.1
    {
        return Err(ApiError::invalid_field(
            "http_version",
            v,
            "Value should be one of: 1.0, 1.1",
        ));
    }
    if let Some(d) = &h.domain_name {
        if !DOMAIN_NAME.is_match(d) {
            return Err(ApiError::invalid_field(
                "domain_name",
                d,
                "Value should be a valid host name",
            ));
        }
        if h.http_version != Some(1.1) {
            return Err(ApiError::validation(
                "The domain_name field requires http_version 1.1 (the Host header is an HTTP/1.1 feature).",
            ));
        }
    }
    if h.kind == HealthMonitorType::UdpConnect && h.delay < UDP_CONNECT_MIN_DELAY {
        return Err(ApiError::validation(format!(
            "The request delay value {} should be larger than {UDP_CONNECT_MIN_DELAY} for UDP-CONNECT health monitor type.",
            h.delay
        )));
    }
    Ok(())
}

/// A monitor of `kind` on `pool` from a create body.
pub fn build(
    pool: &Pool,
    kind: HealthMonitorType,
    fields: MonitorFields,
) -> ApiResult<HealthMonitor> {
    if !fields.delay.is_set() {
        return Err(ApiError::missing_field("delay"));
    }
    if !fields.timeout.is_set() {
        return Err(ApiError::missing_field("timeout"));
    }
    if !fields.max_retries.is_set() {
        return Err(ApiError::missing_field("max_retries"));
    }
    let http = kind.is_http();
    let mut h = HealthMonitor {
        id: Uuid::new_v4(),
        project_id: pool.project_id.clone(),
        pool_id: pool.id,
        name: None,
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        kind,
        delay: 0,
        timeout: 0,
        max_retries: 1,
        max_retries_down: 3,
        http_method: http.then_some(HttpMethod::Get),
        url_path: http.then(|| "/".to_string()),
        expected_codes: http.then(|| "200".to_string()),
        http_version: None,
        domain_name: None,
        tags: Vec::new(),
        created_at: now(),
        updated_at: None,
    };
    fields.apply(&mut h)?;
    validate(&h)?;
    if !pool.protocol.accepts_monitor(kind) {
        return Err(ApiError::validation(format!(
            "The associated pool protocol \"{}\" is not compatible with this health monitor type \"{kind}\".",
            pool.protocol
        )));
    }
    Ok(h)
}

pub fn parse_create(input: &mut Input) -> ApiResult<(HealthMonitorType, MonitorFields)> {
    let kind = input
        .enumeration("type", HealthMonitorType::ALL, |e| e.as_str())?
        .required("type")?;
    input.project_id()?;
    Ok((kind, MonitorFields::parse(input)?))
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
        .write(|txn| {
            let s = txn.state();
            let pool = s
                .pools
                .get(&pool_id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Pool", pool_id))?;
            ctx.authorize("os_load-balancer_api:healthmonitor:post", &pool.project_id)?;
            let h = build(&pool, kind, fields)?;
            check_monitor_supported(&app, load_balancer(s, pool.loadbalancer_id)?, kind)?;
            if s.pool_monitor(pool_id).is_some() {
                return Err(ApiError::conflict("This pool already has a health monitor"));
            }
            let pool = pool_for_change(s, pool_id)?;
            check_quota(
                &app.settings.quota_defaults,
                s,
                &pool.project_id,
                QuotaKind::HealthMonitor,
                1,
            )?;
            lock_lb(txn, pool.loadbalancer_id, &[h.id])?;
            touch_pool(txn, pool_id)?;
            txn.put(h.clone())?;
            Ok::<_, ApiError>(h)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"healthmonitor": render::healthmonitor(&hm)})),
    ))
}

fn readable(
    ctx: &RequestContext,
    s: &State,
    raw: &str,
    rule: &str,
) -> ApiResult<Arc<HealthMonitor>> {
    let id = path_id(raw, "Health Monitor")?;
    let h = s
        .healthmonitors
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Health Monitor", id))?;
    ctx.authorize(rule, &h.project_id)?;
    Ok(h)
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let scope = list_scope(&ctx, &q, "healthmonitor")?;
    let s = app.store.snapshot();
    let items = s
        .healthmonitors
        .iter()
        .filter(|h| in_scope(&scope, &h.project_id))
        .map(|h| render::healthmonitor(h))
        .collect();
    app.collection(
        &ctx,
        &uri,
        "healthmonitors",
        Some("healthmonitors_links"),
        render::HM_ATTRS,
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
    let s = app.store.snapshot();
    let h = readable(&ctx, &s, &id, "os_load-balancer_api:healthmonitor:get_one")?;
    Ok(Json(loadbalancers::one(
        "healthmonitor",
        render::healthmonitor(&h),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "Health Monitor")?;
    let mut input = Input::from_root(body, "healthmonitor")?;
    let fields = MonitorFields::parse(&mut input)?;
    input.finish()?;
    let hm = app
        .store
        .write(|txn| {
            let s = txn.state();
            let old = s
                .healthmonitors
                .get(&id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Health Monitor", id))?;
            ctx.authorize("os_load-balancer_api:healthmonitor:put", &old.project_id)?;
            let mut h = (*old).clone();
            fields.apply(&mut h)?;
            validate(&h)?;
            let pool = pool_for_change(s, h.pool_id)?;
            lock_lb(txn, pool.loadbalancer_id, &[h.id])?;
            touch_pool(txn, pool.id)?;
            h.provisioning_status = ProvisioningStatus::PendingUpdate;
            h.updated_at = Some(now());
            txn.put(h.clone())?;
            Ok::<_, ApiError>(h)
        })
        .await?;
    Ok(Json(json!({"healthmonitor": render::healthmonitor(&hm)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "Health Monitor")?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let old = s
                .healthmonitors
                .get(&id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Health Monitor", id))?;
            ctx.authorize("os_load-balancer_api:healthmonitor:delete", &old.project_id)?;
            let pool = pool_for_change(s, old.pool_id)?;
            lock_lb(txn, pool.loadbalancer_id, &[id])?;
            touch_pool(txn, pool.id)?;
            let mut h = (*old).clone();
            h.provisioning_status = ProvisioningStatus::PendingDelete;
            h.updated_at = Some(now());
            txn.put(h)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
