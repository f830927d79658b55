//! `/l7policies`: ordered request-routing policies on HTTP listeners.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::render;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/l7policies", get(list).post(create))
        .route("/l7policies/{id}", get(show).put(update).delete(delete))
}

pub const MAX_POSITION: i64 = 2_147_483_647;

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Invalid L7 Policy arguments: {msg}"))
}

/// The mutable attributes of a policy as a request states them.
pub struct PolicyFields {
    name: Opt<String>,
    description: Opt<String>,
    admin_state_up: Opt<bool>,
    action: Opt<L7PolicyAction>,
    redirect_pool_id: Opt<Uuid>,
    redirect_url: Opt<String>,
    redirect_prefix: Opt<String>,
    redirect_http_code: Opt<i64>,
    pub position: Opt<i64>,
    tags: Opt<Vec<String>>,
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
    pub fn parse(input: &mut Input) -> ApiResult<PolicyFields> {
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
    pub fn apply(self, p: &mut L7Policy) -> ApiResult<()> {
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
                    return Err(ApiError::invalid_field(
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
    app: &AppState,
    s: &State,
    listener: &Listener,
    p: &L7Policy,
    extra_pools: &[Pool],
) -> ApiResult<()> {
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
            return Err(ApiError::invalid_field(
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
            .or_else(|| s.pools.get(&pid).map(|x| (**x).clone()))
            .filter(|x| x.loadbalancer_id == listener.loadbalancer_id)
            .ok_or_else(|| ApiError::not_found("Pool", pid))?;
        if !listener.protocol.accepts_pool(pool.protocol) {
            return Err(ApiError::validation(format!(
                "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                pool.protocol, listener.protocol
            )));
        }
    }
    if listener.protocol == ListenerProtocol::Prometheus {
        return Err(ApiError::validation(
            "Protocol PROMETHEUS listeners cannot have child objects.",
        ));
    }
    if !listener.protocol.is_http() {
        let provider = s
            .loadbalancers
            .get(&listener.loadbalancer_id)
            .map(|l| l.provider.clone())
            .unwrap_or_default();
        let _ = app;
        return Err(ApiError::not_implemented(format!(
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
pub fn place(txn: &mut Txn, p: &mut L7Policy, wanted: Option<i64>) -> ApiResult<()> {
    let mut others: Vec<L7Policy> = txn
        .state()
        .l7policies
        .children(p.listener_id)
        .filter(|o| o.id != p.id && o.provisioning_status != ProvisioningStatus::PendingDelete)
        .map(|o| (**o).clone())
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
    let fields = PolicyFields::parse(&mut input)?;
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
            let s = txn.state();
            let listener = s
                .listeners
                .get(&listener_id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Listener", listener_id))?;
            ctx.authorize("os_load-balancer_api:l7policy:post", &listener.project_id)?;
            let mut p = new_policy(&listener, action);
            let position = fields.position.clone().value();
            fields.apply(&mut p)?;
            validate(&app, s, &listener, &p, &[])?;
            check_quota(
                &app.settings.quota_defaults,
                s,
                &listener.project_id,
                QuotaKind::L7Policy,
                1,
            )?;
            check_quota(
                &app.settings.quota_defaults,
                s,
                &listener.project_id,
                QuotaKind::L7Rule,
                new_rules.len() as i64,
            )?;
            if new_rules.len() > l7rules::MAX_RULES {
                return Err(ApiError::conflict(format!(
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
            Ok::<_, ApiError>(id)
        })
        .await?;
    let s = app.store.snapshot();
    let p = s
        .l7policies
        .get(&id)
        .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"l7policy": render::l7policy(&s, p)})),
    ))
}

fn readable(ctx: &RequestContext, s: &State, raw: &str, rule: &str) -> ApiResult<Arc<L7Policy>> {
    let id = path_id(raw, "L7 Policy")?;
    let p = s
        .l7policies
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
    ctx.authorize(rule, &p.project_id)?;
    Ok(p)
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let scope = list_scope(&ctx, &q, "l7policy")?;
    let s = app.store.snapshot();
    let items = s
        .l7policies
        .iter()
        .filter(|p| in_scope(&scope, &p.project_id))
        .map(|p| render::l7policy(&s, p))
        .collect();
    app.collection(
        &ctx,
        &uri,
        "l7policies",
        Some("l7policies_links"),
        render::L7POLICY_ATTRS,
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
    let p = readable(&ctx, &s, &id, "os_load-balancer_api:l7policy:get_one")?;
    Ok(Json(loadbalancers::one(
        "l7policy",
        render::l7policy(&s, &p),
        &query(&uri),
    )))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, "L7 Policy")?;
    let mut input = Input::from_root(body, "l7policy")?;
    let fields = PolicyFields::parse(&mut input)?;
    input.finish()?;
    if fields.is_empty() {
        return Err(invalid("Invalid update options"));
    }
    app.store
        .write(|txn| {
            let s = txn.state();
            let old = s
                .l7policies
                .get(&id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
            ctx.authorize("os_load-balancer_api:l7policy:put", &old.project_id)?;
            let listener = s
                .listeners
                .get(&old.listener_id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("Listener", old.listener_id))?;
            let mut p = (*old).clone();
            let position = fields.position.clone();
            fields.apply(&mut p)?;
            validate(&app, s, &listener, &p, &[])?;
            lock_lb(txn, listener.loadbalancer_id, &[p.id])?;
            touch_listener(txn, listener.id)?;
            if let Opt::Set(pos) = position {
                place(txn, &mut p, Some(pos))?;
            }
            p.provisioning_status = ProvisioningStatus::PendingUpdate;
            p.updated_at = Some(now());
            txn.put(p)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    let s = app.store.snapshot();
    let p = s
        .l7policies
        .get(&id)
        .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
    Ok(Json(json!({"l7policy": render::l7policy(&s, p)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, "L7 Policy")?;
    app.store
        .write(|txn| {
            let s = txn.state().clone();
            let old = s
                .l7policies
                .get(&id)
                .ok_or_else(|| ApiError::not_found("L7 Policy", id))?;
            ctx.authorize("os_load-balancer_api:l7policy:delete", &old.project_id)?;
            let listener = s
                .listeners
                .get(&old.listener_id)
                .ok_or_else(|| ApiError::not_found("Listener", old.listener_id))?;
            lock_lb(txn, listener.loadbalancer_id, &[id])?;
            touch_listener(txn, listener.id)?;
            mark_policy_deleted(txn, id)?;
            touch_updated::<L7Policy>(txn, &id, |p| p.updated_at = Some(now()))?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
