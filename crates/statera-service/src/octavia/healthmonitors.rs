//! Health monitors: one per pool.

use super::{Deployment, check_monitor_supported, find, list_owned, show_owned};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::{load_balancer, lock_lb, pool_for_change, touch_pool};
use crate::opt::Opt;
use crate::quota::{QuotaKind, check_quota};
use crate::store::{StoreRead, StoreWrite};
use regex::Regex;
use statera_model::*;
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

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
    pub name: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub delay: Opt<i64>,
    pub timeout: Opt<i64>,
    pub max_retries: Opt<i64>,
    pub max_retries_down: Opt<i64>,
    pub http_method: Opt<HttpMethod>,
    pub url_path: Opt<String>,
    pub expected_codes: Opt<String>,
    pub http_version: Opt<f64>,
    pub domain_name: Opt<String>,
    pub tags: Opt<Vec<String>>,
}

impl MonitorFields {
    /// Merge into `h`. HTTP fields given for a non-HTTP monitor are an error.
    pub fn apply(self, h: &mut HealthMonitor) -> ServiceResult<()> {
        let http = h.kind.is_http();
        for (field, given) in [
            ("http_method", self.http_method.is_set()),
            ("url_path", self.url_path.is_set()),
            ("expected_codes", self.expected_codes.is_set()),
        ] {
            if given && !http {
                return Err(ServiceError::validation(format!(
                    "{field} is not a valid option for health monitors of type {}",
                    h.kind
                )));
            }
        }
        let required = |v: Opt<i64>, field: &str, slot: &mut i64| -> ServiceResult<()> {
            match v {
                Opt::Set(x) => *slot = x,
                Opt::Null => return Err(ServiceError::missing_field(field)),
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
pub fn validate(h: &HealthMonitor) -> ServiceResult<()> {
    if let Some(path) = &h.url_path
        && (!path.starts_with('/') || path.chars().any(char::is_whitespace) || path.contains("://"))
    {
        return Err(ServiceError::invalid_field(
            "url_path",
            path,
            "Value should be a valid URL path starting with /",
        ));
    }
    if let Some(codes) = &h.expected_codes
        && !EXPECTED_CODES.is_match(codes)
    {
        return Err(ServiceError::invalid_field(
            "expected_codes",
            codes,
            "Value should match the pattern ^\\d{3}(\\s*,\\s*\\d{3})*$|^\\d{3}-\\d{3}$",
        ));
    }
    if let Some(v) = h.http_version
        && v != 1.0
        && v != 1.1
    {
        return Err(ServiceError::invalid_field(
            "http_version",
            v,
            "Value should be one of: 1.0, 1.1",
        ));
    }
    if let Some(d) = &h.domain_name {
        if !DOMAIN_NAME.is_match(d) {
            return Err(ServiceError::invalid_field(
                "domain_name",
                d,
                "Value should be a valid host name",
            ));
        }
        if h.http_version != Some(1.1) {
            return Err(ServiceError::validation(
                "The domain_name field requires http_version 1.1 (the Host header is an HTTP/1.1 feature).",
            ));
        }
    }
    if h.kind == HealthMonitorType::UdpConnect && h.delay < UDP_CONNECT_MIN_DELAY {
        return Err(ServiceError::validation(format!(
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
) -> ServiceResult<HealthMonitor> {
    if !fields.delay.is_set() {
        return Err(ServiceError::missing_field("delay"));
    }
    if !fields.timeout.is_set() {
        return Err(ServiceError::missing_field("timeout"));
    }
    if !fields.max_retries.is_set() {
        return Err(ServiceError::missing_field("max_retries"));
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
        return Err(ServiceError::validation(format!(
            "The associated pool protocol \"{}\" is not compatible with this health monitor type \"{kind}\".",
            pool.protocol
        )));
    }
    Ok(h)
}

fn get(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<HealthMonitor>> {
    find(s, id, "Health Monitor")
}

/// `POST /healthmonitors`: a monitor of `kind` on `pool_id`, PENDING_CREATE,
/// its load balancer locked.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    pool_id: Uuid,
    kind: HealthMonitorType,
    fields: MonitorFields,
) -> ServiceResult<HealthMonitor> {
    let pool = txn
        .get::<Pool>(&pool_id)
        .ok_or_else(|| ServiceError::not_found("Pool", pool_id))?;
    ctx.authorize("os_load-balancer_api:healthmonitor:post", &pool.project_id)?;
    let h = build(&pool, kind, fields)?;
    let lb = load_balancer(txn, pool.loadbalancer_id)?;
    check_monitor_supported(d, &lb, kind)?;
    if !txn.children::<HealthMonitor>(pool_id).is_empty() {
        return Err(ServiceError::conflict(
            "This pool already has a health monitor",
        ));
    }
    let pool = pool_for_change(txn, pool_id)?;
    check_quota(
        d.quota_defaults(),
        txn,
        &pool.project_id,
        QuotaKind::HealthMonitor,
        1,
    )?;
    lock_lb(txn, pool.loadbalancer_id, &[h.id])?;
    touch_pool(txn, pool_id)?;
    txn.put(h.clone())?;
    Ok(h)
}

/// `GET /healthmonitors/{id}`.
pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<HealthMonitor>> {
    show_owned(ctx, s, id, "Health Monitor", "healthmonitor")
}

/// `GET /healthmonitors`: the monitors the caller may list (of project
/// `asked` when given), in id order.
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
    asked: Option<&str>,
) -> ServiceResult<Vec<Arc<HealthMonitor>>> {
    list_owned(ctx, s, asked, "healthmonitor")
}

/// `PUT /healthmonitors/{id}`: `fields` merged, the whole monitor validated,
/// PENDING_UPDATE.
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    fields: MonitorFields,
) -> ServiceResult<HealthMonitor> {
    let old = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:healthmonitor:put", &old.project_id)?;
    let mut h = (*old).clone();
    fields.apply(&mut h)?;
    validate(&h)?;
    let pool = pool_for_change(txn, h.pool_id)?;
    lock_lb(txn, pool.loadbalancer_id, &[h.id])?;
    touch_pool(txn, pool.id)?;
    h.provisioning_status = ProvisioningStatus::PendingUpdate;
    h.updated_at = Some(now());
    txn.put(h.clone())?;
    Ok(h)
}

/// `DELETE /healthmonitors/{id}`: PENDING_DELETE; the controller removes it.
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let old = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:healthmonitor:delete", &old.project_id)?;
    let pool = pool_for_change(txn, old.pool_id)?;
    lock_lb(txn, pool.loadbalancer_id, &[id])?;
    touch_pool(txn, pool.id)?;
    let mut h = (*old).clone();
    h.provisioning_status = ProvisioningStatus::PendingDelete;
    h.updated_at = Some(now());
    txn.put(h)?;
    Ok(())
}
