//! L7 policies: ordered request-routing policies on HTTP listeners.

use super::l7rules::{self, RuleFields};
use super::{find, list_owned, show_owned};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::{lock_lb, mark_policy_deleted, touch_listener, touch_updated};
use crate::opt::Opt;
use crate::quota::{QuotaDefaults, QuotaKind, check_quota};
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::sync::Arc;
use uuid::Uuid;

pub const MAX_POSITION: i64 = 2_147_483_647;

pub fn invalid(msg: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(format!("Invalid L7 Policy arguments: {msg}"))
}

/// The mutable attributes of a policy as a request states them.
pub struct PolicyFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub action: Opt<L7PolicyAction>,
    pub redirect_pool_id: Opt<Uuid>,
    pub redirect_url: Opt<String>,
    pub redirect_prefix: Opt<String>,
    pub redirect_http_code: Opt<i64>,
    pub position: Opt<i64>,
    pub tags: Opt<Vec<String>>,
}

fn valid_url(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
        && !host.is_empty()
        && !u.chars().any(|c| c.is_control() || c.is_whitespace())
}

impl PolicyFields {
    /// Whether the request stated nothing.
    pub fn is_empty(&self) -> bool {
        [
            self.name.is_absent(),
            self.description.is_absent(),
            self.admin_state_up.is_absent(),
            self.action.is_absent(),
            self.redirect_pool_id.is_absent(),
            self.redirect_url.is_absent(),
            self.redirect_prefix.is_absent(),
            self.redirect_http_code.is_absent(),
            self.position.is_absent(),
            self.tags.is_absent(),
        ]
        .iter()
        .all(|a| *a)
    }

    /// Merge into `p` (position is handled by the caller).
    pub fn apply(self, p: &mut L7Policy) -> ServiceResult<()> {
        if let Some(v) = self.name.update() {
            p.name = v;
        }
        if let Some(v) = self.description.update() {
            p.description = v;
        }
        if let Some(v) = self.admin_state_up.update() {
            p.admin_state_up = v.unwrap_or(false);
        }
        if self.redirect_pool_id.is_set()
            && (self.redirect_url.is_set() || self.redirect_prefix.is_set())
        {
            return Err(invalid(
                "Cannot specify redirect_pool_id together with redirect_url or redirect_prefix",
            ));
        }
        if let Opt::Set(a) = self.action {
            p.action = a;
        }
        let (pool_given, url_given, prefix_given) = (
            self.redirect_pool_id.is_set(),
            self.redirect_url.is_set(),
            self.redirect_prefix.is_set(),
        );
        if let Some(v) = self.redirect_url.update() {
            p.redirect_url = v;
        }
        if let Some(v) = self.redirect_prefix.update() {
            p.redirect_prefix = v;
        }
        if let Some(v) = self.redirect_pool_id.update() {
            p.redirect_pool_id = v;
        }
        // A target given implicitly chooses the action.
        if pool_given {
            p.action = L7PolicyAction::RedirectToPool;
        } else if url_given {
            p.action = L7PolicyAction::RedirectToUrl;
        } else if prefix_given {
            p.action = L7PolicyAction::RedirectPrefix;
        }
        match p.action {
            L7PolicyAction::Reject => {
                p.redirect_pool_id = None;
                p.redirect_url = None;
                p.redirect_prefix = None;
            }
            L7PolicyAction::RedirectToPool => {
                p.redirect_url = None;
                p.redirect_prefix = None;
            }
            L7PolicyAction::RedirectToUrl => {
                p.redirect_pool_id = None;
                p.redirect_prefix = None;
            }
            L7PolicyAction::RedirectPrefix => {
                p.redirect_pool_id = None;
                p.redirect_url = None;
            }
        }
        let redirects = matches!(
            p.action,
            L7PolicyAction::RedirectToUrl | L7PolicyAction::RedirectPrefix
        );
        match self.redirect_http_code {
            Opt::Set(c) => {
                if ![301, 302, 303, 307, 308].contains(&c) {
                    return Err(ServiceError::invalid_field(
                        "redirect_http_code",
                        c,
                        "Value should be one of: 301, 302, 303, 307, 308",
                    ));
                }
                p.redirect_http_code = Some(c as u16);
            }
            Opt::Null => p.redirect_http_code = None,
            Opt::Absent => {}
        }
        if redirects {
            p.redirect_http_code.get_or_insert(302);
        } else {
            p.redirect_http_code = None;
        }
        if let Some(v) = self.tags.update() {
            p.tags = v.unwrap_or_default();
        }
        Ok(())
    }
}

/// Check a whole policy against its listener. `extra_pools`: pools not yet in
/// the store (fully populated create).
pub fn validate(
    s: &impl StoreRead,
    listener: &Listener,
    p: &L7Policy,
    extra_pools: &[Pool],
) -> ServiceResult<()> {
    match p.action {
        L7PolicyAction::RedirectToPool if p.redirect_pool_id.is_none() => {
            return Err(invalid("redirect_pool_id must not be None"));
        }
        L7PolicyAction::RedirectToUrl if p.redirect_url.is_none() => {
            return Err(invalid("redirect_url must not be None"));
        }
        L7PolicyAction::RedirectPrefix if p.redirect_prefix.is_none() => {
            return Err(invalid("redirect_prefix must not be None"));
        }
        _ => {}
    }
    for (field, url) in [
        ("redirect_url", &p.redirect_url),
        ("redirect_prefix", &p.redirect_prefix),
    ] {
        if let Some(u) = url
            && !valid_url(u)
        {
            return Err(ServiceError::invalid_field(
                field,
                u,
                "Value should be an http or https URL with a host",
            ));
        }
    }
    if let Some(pid) = p.redirect_pool_id {
        let pool = extra_pools
            .iter()
            .find(|x| x.id == pid)
            .cloned()
            .or_else(|| s.get::<Pool>(&pid).map(|x| (*x).clone()))
            .filter(|x| x.loadbalancer_id == listener.loadbalancer_id)
            .ok_or_else(|| ServiceError::not_found("Pool", pid))?;
        if !listener.protocol.accepts_pool(pool.protocol) {
            return Err(ServiceError::validation(format!(
                "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                pool.protocol, listener.protocol
            )));
        }
    }
    if listener.protocol == ListenerProtocol::Prometheus {
        return Err(ServiceError::validation(
            "Protocol PROMETHEUS listeners cannot have child objects.",
        ));
    }
    if !listener.protocol.is_http() {
        let provider = s
            .get::<LoadBalancer>(&listener.loadbalancer_id)
            .map(|l| l.provider.clone())
            .unwrap_or_default();
        return Err(ServiceError::not_implemented(format!(
            "Provider '{provider}' does not support a requested option: L7 policies on {} protocol listeners",
            listener.protocol
        )));
    }
    Ok(())
}

pub fn new_policy(listener: &Listener, action: L7PolicyAction) -> L7Policy {
    L7Policy {
        id: Uuid::new_v4(),
        project_id: listener.project_id.clone(),
        listener_id: listener.id,
        name: None,
        description: None,
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        action,
        redirect_pool_id: None,
        redirect_url: None,
        redirect_prefix: None,
        redirect_http_code: None,
        position: 1,
        tags: Vec::new(),
        created_at: now(),
        updated_at: None,
    }
}

/// Place `p` at `wanted` (1-based; `None` or past the end appends) among the
/// listener's other live policies, renumbering them densely.
pub fn place(
    txn: &mut impl StoreWrite,
    p: &mut L7Policy,
    wanted: Option<i64>,
) -> ServiceResult<()> {
    let mut others: Vec<L7Policy> = txn
        .children::<L7Policy>(p.listener_id)
        .into_iter()
        .filter(|o| o.id != p.id && o.provisioning_status != ProvisioningStatus::PendingDelete)
        .map(|o| (*o).clone())
        .collect();
    others.sort_by_key(|o| o.position);
    let at = wanted
        .map(|w| (w as usize).saturating_sub(1))
        .unwrap_or(others.len())
        .min(others.len());
    p.position = at as u32 + 1;
    for (i, mut o) in others.into_iter().enumerate() {
        let pos = if i < at { i as u32 + 1 } else { i as u32 + 2 };
        if o.position != pos {
            o.position = pos;
            txn.put(o)?;
        }
    }
    Ok(())
}

fn get(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<L7Policy>> {
    find(s, id, "L7 Policy")
}

fn listener(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Listener>> {
    s.get::<Listener>(&id)
        .ok_or_else(|| ServiceError::not_found("Listener", id))
}

/// `POST /l7policies`: a policy of `action` on `listener_id` (with the rules
/// of a fully populated create), PENDING_CREATE, placed at its position.
/// Returns its id.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    quotas: &QuotaDefaults,
    listener_id: Uuid,
    action: L7PolicyAction,
    fields: PolicyFields,
    new_rules: Vec<RuleFields>,
) -> ServiceResult<Uuid> {
    let listener = listener(txn, listener_id)?;
    ctx.authorize("os_load-balancer_api:l7policy:post", &listener.project_id)?;
    let mut p = new_policy(&listener, action);
    let position = fields.position.clone().value();
    fields.apply(&mut p)?;
    validate(txn, &listener, &p, &[])?;
    check_quota(quotas, txn, &listener.project_id, QuotaKind::L7Policy, 1)?;
    check_quota(
        quotas,
        txn,
        &listener.project_id,
        QuotaKind::L7Rule,
        new_rules.len() as i64,
    )?;
    if new_rules.len() > l7rules::MAX_RULES {
        return Err(ServiceError::conflict(format!(
            "Too many rules on L7 policy {}",
            p.id
        )));
    }
    lock_lb(txn, listener.loadbalancer_id, &[p.id])?;
    touch_listener(txn, listener.id)?;
    place(txn, &mut p, position)?;
    for nr in new_rules {
        let r = l7rules::build(&p, nr)?;
        txn.put(r)?;
    }
    let id = p.id;
    txn.put(p)?;
    Ok(id)
}

/// `GET /l7policies/{id}`.
pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<L7Policy>> {
    show_owned(ctx, s, id, "L7 Policy", "l7policy")
}

/// `GET /l7policies`: the policies the caller may list (of project `asked`
/// when given), in id order.
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
    asked: Option<&str>,
) -> ServiceResult<Vec<Arc<L7Policy>>> {
    list_owned(ctx, s, asked, "l7policy")
}

/// `PUT /l7policies/{id}`: merged, validated against its listener, moved
/// when a position is given, PENDING_UPDATE.
pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    fields: PolicyFields,
) -> ServiceResult<()> {
    let old = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:l7policy:put", &old.project_id)?;
    let listener = listener(txn, old.listener_id)?;
    let mut p = (*old).clone();
    let position = fields.position.clone();
    fields.apply(&mut p)?;
    validate(txn, &listener, &p, &[])?;
    lock_lb(txn, listener.loadbalancer_id, &[p.id])?;
    touch_listener(txn, listener.id)?;
    if let Opt::Set(pos) = position {
        place(txn, &mut p, Some(pos))?;
    }
    p.provisioning_status = ProvisioningStatus::PendingUpdate;
    p.updated_at = Some(now());
    txn.put(p)?;
    Ok(())
}

/// `DELETE /l7policies/{id}`: the policy and its rules PENDING_DELETE.
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let old = get(txn, id)?;
    ctx.authorize("os_load-balancer_api:l7policy:delete", &old.project_id)?;
    let listener = listener(txn, old.listener_id)?;
    lock_lb(txn, listener.loadbalancer_id, &[id])?;
    touch_listener(txn, listener.id)?;
    mark_policy_deleted(txn, id)?;
    touch_updated::<L7Policy>(txn, &id, |p| p.updated_at = Some(now()))?;
    Ok(())
}
