//! `/l7policies/{policy_id}/rules` (envelope `rule`/`rules`).

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use regex::Regex;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/l7policies/{policy_id}/rules", get(list).post(create))
        .route(
            "/l7policies/{policy_id}/rules/{id}",
            get(show).put(update).delete(delete),
        )
}

/// Octavia's limit of rules per policy.
pub const MAX_RULES: usize = 50;

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Error parsing L7Rule: Invalid L7 Rule: {msg}"))
}

/// The attributes of a rule as a request states them.
pub struct RuleFields {
    kind: Opt<L7RuleType>,
    compare_type: Opt<L7RuleCompareType>,
    key: Opt<String>,
    value: Opt<String>,
    invert: Opt<bool>,
    admin_state_up: Opt<bool>,
    tags: Opt<Vec<String>>,
}

impl RuleFields {
    pub fn parse(input: &mut Input) -> ApiResult<RuleFields> {
        let key = input.string("key", 255)?;
        let value = input.string("value", 255)?;
        Ok(RuleFields {
            kind: input.enumeration("type", L7RuleType::ALL, |e| e.as_str())?,
            compare_type: input
                .enumeration("compare_type", L7RuleCompareType::ALL, |e| e.as_str())?,
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
        let f = RuleFields::parse(input)?;
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

    pub fn apply(self, r: &mut L7Rule) -> ApiResult<()> {
        match self.kind {
            Opt::Set(k) => r.kind = k,
            Opt::Null => return Err(ApiError::missing_field("type")),
            Opt::Absent => {}
        }
        match self.compare_type {
            Opt::Set(c) => r.compare_type = c,
            Opt::Null => return Err(ApiError::missing_field("compare_type")),
            Opt::Absent => {}
        }
        match self.value {
            Opt::Set(v) => r.value = v,
            Opt::Null => return Err(ApiError::missing_field("value")),
            Opt::Absent => {}
        }
        if let Some(v) = self.key.update() {
            r.key = v;
        }
        if let Some(v) = self.invert.update() {
            r.invert = v.unwrap_or(false);
        }
        if let Some(v) = self.admin_state_up.update() {
            r.admin_state_up = v.unwrap_or(false);
        }
        if let Some(v) = self.tags.update() {
            r.tags = v.unwrap_or_default();
        }
        Ok(())
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value without whitespace or control characters, or a quoted string.
fn is_header_value(s: &str) -> bool {
    let quoted = s.len() >= 2 && s.starts_with('"') && s.ends_with('"');
    !s.is_empty()
        && !s.chars().any(|c| c.is_control())
        && (quoted || !s.chars().any(char::is_whitespace))
}

fn is_cookie_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\",;\\".contains(&b))
}

/// Check a whole rule (Octavia's per-type table).
pub fn validate(r: &L7Rule) -> ApiResult<()> {
    use L7RuleCompareType as C;
    use L7RuleType as T;
    if r.value.chars().any(|c| c == '\r' || c == '\n')
        || r.key.as_deref().is_some_and(|k| k.contains(['\r', '\n']))
    {
        return Err(invalid("key and value must not contain line breaks"));
    }
    let regex_ok = || {
        if r.compare_type == C::Regex {
            Regex::new(&r.value)
                .map(|_| ())
                .map_err(|e| invalid(format!("Invalid regex: {e}")))
        } else {
            Ok(())
        }
    };
    match r.kind {
        T::HostName | T::Path | T::FileType => {
            if r.kind == T::FileType && !matches!(r.compare_type, C::Regex | C::EqualTo) {
                return Err(invalid(
                    "Invalid comparison type for FILE_TYPE rule: must be REGEX or EQUAL_TO",
                ));
            }
            regex_ok()?;
            if r.compare_type != C::Regex && !is_header_value(&r.value) {
                return Err(invalid("value contains invalid characters"));
            }
        }
        T::Header => {
            match &r.key {
                Some(k) if is_token(k) => {}
                _ => {
                    return Err(invalid(
                        "HEADER rule type requires a valid header name in key",
                    ));
                }
            }
            regex_ok()?;
            if r.compare_type != C::Regex && !is_header_value(&r.value) {
                return Err(invalid("value contains invalid characters"));
            }
        }
        T::Cookie => {
            match &r.key {
                Some(k) if is_token(k) => {}
                _ => {
                    return Err(invalid(
                        "COOKIE rule type requires a valid cookie name in key",
                    ));
                }
            }
            regex_ok()?;
            if r.compare_type != C::Regex && !is_cookie_value(&r.value) {
                return Err(invalid("value contains invalid cookie characters"));
            }
        }
        T::SslConnHasCert => {
            if r.key.is_some() {
                return Err(invalid("key is not allowed for SSL_CONN_HAS_CERT rules"));
            }
            if r.compare_type != C::EqualTo {
                return Err(invalid("SSL_CONN_HAS_CERT rules only support EQUAL_TO"));
            }
            if !r.value.eq_ignore_ascii_case("true") {
                return Err(invalid("SSL_CONN_HAS_CERT value must be true"));
            }
        }
        T::SslVerifyResult => {
            if r.key.is_some() {
                return Err(invalid("key is not allowed for SSL_VERIFY_RESULT rules"));
            }
            if r.compare_type != C::EqualTo {
                return Err(invalid("SSL_VERIFY_RESULT rules only support EQUAL_TO"));
            }
            if r.value.parse::<u64>().is_err() {
                return Err(invalid(
                    "SSL_VERIFY_RESULT value must be a non-negative integer",
                ));
            }
        }
        T::SslDnField => {
            let ok = r.key.as_deref().is_some_and(|k| {
                let mut c = k.chars();
                c.next().is_some_and(|f| f.is_ascii_alphabetic())
                    && c.all(|x| x.is_ascii_alphanumeric() || x == '-')
            });
            if !ok {
                return Err(invalid("SSL_DN_FIELD rules require a DN field name in key"));
            }
            regex_ok()?;
        }
    }
    Ok(())
}

/// A new rule of `policy` from a parsed create body.
pub fn build(policy: &L7Policy, fields: RuleFields) -> ApiResult<L7Rule> {
    let mut r = L7Rule {
        id: Uuid::new_v4(),
        project_id: policy.project_id.clone(),
        l7policy_id: policy.id,
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        kind: L7RuleType::Path,
        compare_type: L7RuleCompareType::EqualTo,
        key: None,
        value: String::new(),
        invert: false,
        tags: Vec::new(),
        created_at: now(),
        updated_at: None,
    };
    fields.apply(&mut r)?;
    validate(&r)?;
    Ok(r)
}

/// The policy a rule change goes through: it must be ACTIVE.
fn policy_for_change(s: &State, id: Uuid) -> ApiResult<(Arc<L7Policy>, Arc<Listener>)> {
    let p = s
        .l7policies
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
    let l = s
        .listeners
        .get(&p.listener_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Listener", p.listener_id))?;
    if p.provisioning_status != ProvisioningStatus::Active {
        let lb_pending = s
            .loadbalancers
            .get(&l.loadbalancer_id)
            .is_some_and(|lb| lb.provisioning_status.is_pending());
        return Err(if lb_pending {
            ApiError::immutable("Load Balancer", l.loadbalancer_id)
        } else {
            ApiError::immutable("L7Policy", id)
        });
    }
    Ok((p, l))
}

/// Lock what a rule change locks: LB, listener, policy → PENDING_UPDATE.
fn lock_for_rule(
    txn: &mut Txn,
    policy: &L7Policy,
    listener: &Listener,
    subject: Uuid,
) -> ApiResult<()> {
    lock_lb(txn, listener.loadbalancer_id, &[subject])?;
    touch_listener(txn, listener.id)?;
    let mut p = policy.clone();
    p.provisioning_status = ProvisioningStatus::PendingUpdate;
    p.updated_at = Some(now());
    txn.put(p)?;
    Ok(())
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(policy_id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let policy_id = path_id(&policy_id, "L7 Policy")?;
    let mut input = Input::from_root(body, "rule")?;
    let fields = RuleFields::parse_create(&mut input)?;
    input.finish()?;
    let rule = app
        .store
        .write(|txn| {
            let s = txn.state();
            let p = s
                .l7policies
                .get(&policy_id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("L7 Policy", policy_id))?;
            ctx.authorize("os_load-balancer_api:l7rule:post", &p.project_id)?;
            let r = build(&p, fields)?;
            let (p, l) = policy_for_change(s, policy_id)?;
            if s.l7rules.children(policy_id).count() >= MAX_RULES {
                return Err(ApiError::conflict(format!(
                    "Too many rules on L7 policy {policy_id}"
                )));
            }
            check_quota(
                &app.settings.quota_defaults,
                s,
                &p.project_id,
                QuotaKind::L7Rule,
                1,
            )?;
            lock_for_rule(txn, &p, &l, r.id)?;
            txn.put(r.clone())?;
            Ok::<_, ApiError>(r)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"rule": render::l7rule(&rule)})),
    ))
}

fn readable_policy(
    ctx: &RequestContext,
    s: &State,
    raw: &str,
    rule: &str,
) -> ApiResult<Arc<L7Policy>> {
    let id = path_id(raw, "L7 Policy")?;
    let p = s
        .l7policies
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
    ctx.authorize(rule, &p.project_id)?;
    Ok(p)
}

fn rule_of(s: &State, policy_id: Uuid, raw: &str) -> ApiResult<Arc<L7Rule>> {
    let id = path_id(raw, "L7 Rule")?;
    s.l7rules
        .get(&id)
        .filter(|r| r.l7policy_id == policy_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("L7 Rule", id))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(policy_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let s = app.store.snapshot();
    let p = readable_policy(&ctx, &s, &policy_id, "os_load-balancer_api:l7rule:get_all")?;
    let items = s
        .l7rules
        .children(p.id)
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
    let s = app.store.snapshot();
    let p = readable_policy(&ctx, &s, &policy_id, "os_load-balancer_api:l7rule:get_one")?;
    let r = rule_of(&s, p.id, &id)?;
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
    let fields = RuleFields::parse(&mut input)?;
    input.finish()?;
    let rule = app
        .store
        .write(|txn| {
            let s = txn.state();
            let old = rule_of(s, policy_id, &id)?;
            ctx.authorize("os_load-balancer_api:l7rule:put", &old.project_id)?;
            let mut r = (*old).clone();
            fields.apply(&mut r)?;
            validate(&r)?;
            let (p, l) = policy_for_change(s, policy_id)?;
            lock_for_rule(txn, &p, &l, r.id)?;
            r.provisioning_status = ProvisioningStatus::PendingUpdate;
            r.updated_at = Some(now());
            txn.put(r.clone())?;
            Ok::<_, ApiError>(r)
        })
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
        .write(|txn| {
            let s = txn.state();
            let old = rule_of(s, policy_id, &id)?;
            ctx.authorize("os_load-balancer_api:l7rule:delete", &old.project_id)?;
            let (p, l) = policy_for_change(s, policy_id)?;
            lock_for_rule(txn, &p, &l, old.id)?;
            let mut r = (*old).clone();
            r.provisioning_status = ProvisioningStatus::PendingDelete;
            r.updated_at = Some(now());
            txn.put(r)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
