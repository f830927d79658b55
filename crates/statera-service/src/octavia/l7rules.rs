//! L7 rules (`/l7policies/{policy_id}/rules`): Octavia's per-type rule
//! table, at most [`MAX_RULES`] per policy.

use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::{lock_lb, touch_listener};
use crate::opt::Opt;
use crate::quota::{QuotaKind, check_quota};
use crate::store::{StoreRead, StoreWrite};
use crate::{QuotaDefaults, parse_id};
use regex::Regex;
use statera_model::*;
use std::sync::Arc;
use uuid::Uuid;

/// Octavia's limit of rules per policy.
pub const MAX_RULES: usize = 50;

fn invalid(msg: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(format!("Error parsing L7Rule: Invalid L7 Rule: {msg}"))
}

/// The attributes of a rule as a request states them.
pub struct RuleFields {
    pub kind: Opt<L7RuleType>,
    pub compare_type: Opt<L7RuleCompareType>,
    pub key: Opt<String>,
    pub value: Opt<String>,
    pub invert: Opt<bool>,
    pub admin_state_up: Opt<bool>,
    pub tags: Opt<Vec<String>>,
}

impl RuleFields {
    /// Merge into `r`; a required field given as null is an error.
    pub fn apply(self, r: &mut L7Rule) -> ServiceResult<()> {
        match self.kind {
            Opt::Set(k) => r.kind = k,
            Opt::Null => return Err(ServiceError::missing_field("type")),
            Opt::Absent => {}
        }
        match self.compare_type {
            Opt::Set(c) => r.compare_type = c,
            Opt::Null => return Err(ServiceError::missing_field("compare_type")),
            Opt::Absent => {}
        }
        match self.value {
            Opt::Set(v) => r.value = v,
            Opt::Null => return Err(ServiceError::missing_field("value")),
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
pub fn validate(r: &L7Rule) -> ServiceResult<()> {
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
pub fn build(policy: &L7Policy, fields: RuleFields) -> ServiceResult<L7Rule> {
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
pub fn policy_for_change(
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<(Arc<L7Policy>, Arc<Listener>)> {
    let p = policy(s, id)?;
    let l = s
        .get::<Listener>(&p.listener_id)
        .ok_or_else(|| ServiceError::not_found("Listener", p.listener_id))?;
    if p.provisioning_status != ProvisioningStatus::Active {
        let lb_status = s
            .get::<LoadBalancer>(&l.loadbalancer_id)
            .map(|lb| lb.provisioning_status)
            .filter(|st| st.is_pending());
        return Err(match lb_status {
            Some(st) => ServiceError::immutable("Load Balancer", l.loadbalancer_id, st),
            None => ServiceError::immutable("L7Policy", id, p.provisioning_status),
        });
    }
    Ok((p, l))
}

/// Lock what a rule change locks: LB, listener, policy → PENDING_UPDATE.
fn lock_for_rule(
    txn: &mut impl StoreWrite,
    policy: &L7Policy,
    listener: &Listener,
    subject: Uuid,
) -> ServiceResult<()> {
    lock_lb(txn, listener.loadbalancer_id, &[subject])?;
    touch_listener(txn, listener.id)?;
    let mut p = policy.clone();
    p.provisioning_status = ProvisioningStatus::PendingUpdate;
    p.updated_at = Some(now());
    txn.put(p)?;
    Ok(())
}

fn policy(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<L7Policy>> {
    s.get::<L7Policy>(&id)
        .ok_or_else(|| ServiceError::not_found("L7 Policy", id))
}

/// The rule `raw` of policy `policy_id` (a rule of another policy is 404).
fn rule_of(s: &impl StoreRead, policy_id: Uuid, raw: &str) -> ServiceResult<Arc<L7Rule>> {
    let id = parse_id(raw, "L7 Rule")?;
    s.get::<L7Rule>(&id)
        .filter(|r| r.l7policy_id == policy_id)
        .ok_or_else(|| ServiceError::not_found("L7 Rule", id))
}

/// The policy of a read, which `rule` must allow.
fn readable_policy(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
    rule: &str,
) -> ServiceResult<Arc<L7Policy>> {
    let p = policy(s, id)?;
    ctx.authorize(rule, &p.project_id)?;
    Ok(p)
}

/// `POST /l7policies/{policy_id}/rules`: PENDING_CREATE; the load balancer,
/// the listener and the policy locked.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    quotas: &QuotaDefaults,
    policy_id: Uuid,
    fields: RuleFields,
) -> ServiceResult<L7Rule> {
    let p = policy(txn, policy_id)?;
    ctx.authorize("os_load-balancer_api:l7rule:post", &p.project_id)?;
    let r = build(&p, fields)?;
    let (p, l) = policy_for_change(txn, policy_id)?;
    if txn.children::<L7Rule>(policy_id).len() >= MAX_RULES {
        return Err(ServiceError::conflict(format!(
            "Too many rules on L7 policy {policy_id}"
        )));
    }
    check_quota(quotas, txn, &p.project_id, QuotaKind::L7Rule, 1)?;
    lock_for_rule(txn, &p, &l, r.id)?;
    txn.put(r.clone())?;
    Ok(r)
}

/// `GET /l7policies/{policy_id}/rules`: the policy's rules, in id order.
pub fn list(ctx: &Context, s: &impl StoreRead, policy_id: Uuid) -> ServiceResult<Vec<Arc<L7Rule>>> {
    let p = readable_policy(ctx, s, policy_id, "os_load-balancer_api:l7rule:get_all")?;
    Ok(s.children::<L7Rule>(p.id))
}

/// `GET /l7policies/{policy_id}/rules/{id}`.
pub fn show(
    ctx: &Context,
    s: &impl StoreRead,
    policy_id: Uuid,
    rule_id: &str,
) -> ServiceResult<Arc<L7Rule>> {
    let p = readable_policy(ctx, s, policy_id, "os_load-balancer_api:l7rule:get_one")?;
    rule_of(s, p.id, rule_id)
}

/// `PUT /l7policies/{policy_id}/rules/{id}`: merged, validated whole,
/// PENDING_UPDATE.
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    policy_id: Uuid,
    rule_id: &str,
    fields: RuleFields,
) -> ServiceResult<L7Rule> {
    let old = rule_of(txn, policy_id, rule_id)?;
    ctx.authorize("os_load-balancer_api:l7rule:put", &old.project_id)?;
    let mut r = (*old).clone();
    fields.apply(&mut r)?;
    validate(&r)?;
    let (p, l) = policy_for_change(txn, policy_id)?;
    lock_for_rule(txn, &p, &l, r.id)?;
    r.provisioning_status = ProvisioningStatus::PendingUpdate;
    r.updated_at = Some(now());
    txn.put(r.clone())?;
    Ok(r)
}

/// `DELETE /l7policies/{policy_id}/rules/{id}`: PENDING_DELETE.
pub fn delete(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    policy_id: Uuid,
    rule_id: &str,
) -> ServiceResult<()> {
    let old = rule_of(txn, policy_id, rule_id)?;
    ctx.authorize("os_load-balancer_api:l7rule:delete", &old.project_id)?;
    let (p, l) = policy_for_change(txn, policy_id)?;
    lock_for_rule(txn, &p, &l, old.id)?;
    let mut r = (*old).clone();
    r.provisioning_status = ProvisioningStatus::PendingDelete;
    r.updated_at = Some(now());
    txn.put(r)?;
    Ok(())
}
