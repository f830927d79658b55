//! `/v3/users`: create, list (`name`, `domain_id`, `enabled`), show, update,
//! delete; `POST /v3/users/{id}/password` (a user changes its own password,
//! proven by the original one); `GET /v3/users/{id}/groups` and
//! `/v3/users/{id}/projects`. Passwords are stored as argon2id hashes and
//! never rendered; disabling or deleting a user, or changing its password,
//! revokes its tokens.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::{get, post};
use bytes::Bytes;
use statera_model::identity::{Actor, ApplicationCredential, Group, User, new_id};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/users", get(list::<User>).post(create))
        .route(
            "/v3/users/{id}",
            get(show::<User>).patch(update).delete(delete),
        )
        .route("/v3/users/{id}/password", post(change_password))
        .route("/v3/users/{id}/groups", get(groups_of))
        .route("/v3/users/{id}/projects", get(projects_of))
}

/// Attributes with a column of their own; anything else is kept in `extra`.
const KNOWN: &[&str] = &[
    "id",
    "name",
    "domain_id",
    "password",
    "enabled",
    "default_project_id",
    "email",
    "description",
    "options",
    "federated",
    "links",
    "password_expires_at",
];

impl AdminResource for User {
    const PLURAL: &'static str = "users";
    const FILTERS: &'static [&'static str] = &["name", "domain_id", "enabled"];
    fn render(ctx: &RequestContext, u: &Self) -> Value {
        render(ctx, u)
    }
    fn sort_key(&self) -> String {
        self.name.clone()
    }
}

pub fn render(ctx: &RequestContext, u: &User) -> Value {
    let mut v = json!({
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "password_expires_at": u.password_expires_at.as_ref().map(timestamp),
        "options": u.options,
    });
    if let Some(p) = &u.default_project_id {
        v["default_project_id"] = json!(p);
    }
    if !u.description.is_empty() {
        v["description"] = json!(u.description);
    }
    if let Some(e) = &u.email {
        v["email"] = json!(e);
    }
    for (k, x) in &u.extra {
        if v.get(k).is_none() {
            v[k] = x.clone();
        }
    }
    with_self(ctx, v, &format!("users/{}", u.id))
}

fn name_taken(txn: &Txn, domain_id: &str, name: &str, except: &str) -> bool {
    txn.state()
        .users
        .iter()
        .any(|u| u.id != except && u.domain_id == domain_id && u.name.eq_ignore_ascii_case(name))
}

fn password_field(obj: &Object, field: &str) -> ApiResult<Option<Option<String>>> {
    opt_str(obj, field, PASSWORD_MAX, true)
}

fn extra_of(obj: &Object) -> ApiResult<std::collections::BTreeMap<String, Value>> {
    let extra: std::collections::BTreeMap<String, Value> = obj
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if extra.len() > 64 || serde_json::to_string(&extra).map(|s| s.len()).unwrap_or(0) > 65_536 {
        return Err(bad_request(
            "Too many or too large extra attributes on the user.",
        ));
    }
    Ok(extra)
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    client: Client,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_user", Target::default())?;
    let obj = envelope(&body, "user")?;
    let name = name_field(&obj, true, NAME_MAX)?.unwrap_or_default();
    let domain_id = opt_str(&obj, "domain_id", 64, false)?
        .flatten()
        .unwrap_or_else(|| {
            ctx.caller
                .user_domain_id
                .clone()
                .unwrap_or_else(|| statera_model::identity::DEFAULT_DOMAIN_ID.to_string())
        });
    let default_project_id = opt_str(&obj, "default_project_id", 64, true)?.flatten();
    let email = opt_str(&obj, "email", 255, true)?.flatten();
    let password = password_field(&obj, "password")?.flatten();
    let password_hash = match password {
        Some(p) => Some(hash_secret(&state, client, p).await?),
        None => None,
    };
    let mut u = User {
        id: new_id(),
        name,
        domain_id,
        enabled: bool_field(&obj, "enabled")?.unwrap_or(true),
        password_hash,
        default_project_id,
        description: description_field(&obj)?.unwrap_or_default(),
        email,
        extra: extra_of(&obj)?,
        options: options_field(&obj)?.unwrap_or_default(),
        password_expires_at: None,
        failed_auth_count: 0,
        last_failed_auth_at: None,
        created_at: statera_model::now(),
    };
    let u = write(&state, |txn| {
        if !txn.state().domains.contains(&u.domain_id) {
            return Err(not_found("domain", &u.domain_id));
        }
        if let Some(p) = &u.default_project_id
            && !txn.state().projects.contains(p)
        {
            return Err(not_found("project", p));
        }
        if name_taken(txn, &u.domain_id, &u.name, "") {
            return Err(duplicate_in("user", &u.name, &u.domain_id));
        }
        u.options.retain(|_, v| !v.is_null());
        txn.put(u.clone())?;
        Ok(u)
    })
    .await?;
    Ok(one(StatusCode::CREATED, "user", render(&ctx, &u)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    client: Client,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:update_user", Target::user(&id))?;
    let obj = envelope(&body, "user")?;
    if let Some(v) = obj.get("id")
        && v.as_str() != Some(id.as_str())
    {
        return Err(bad_request("Cannot change user ID."));
    }
    if obj.contains_key("domain_id") {
        return Err(bad_request("Update of `domain_id` is not allowed."));
    }
    let name = name_field(&obj, false, NAME_MAX)?;
    let description = description_field(&obj)?;
    let enabled = bool_field(&obj, "enabled")?;
    let default_project_id = opt_str(&obj, "default_project_id", 64, true)?;
    let email = opt_str(&obj, "email", 255, true)?;
    let options = options_field(&obj)?;
    let extra = extra_of(&obj)?;
    let password_hash = match password_field(&obj, "password")? {
        Some(Some(p)) => Some(Some(hash_secret(&state, client, p).await?)),
        Some(None) => Some(None),
        None => None,
    };
    // Both clear the user's failed authentications (an unlock).
    let unlocks = password_hash.is_some() || enabled == Some(true);
    let u = write(&state, |txn| {
        let mut u = fetch::<User>(txn.state(), &id)?;
        if let Some(n) = name {
            if name_taken(txn, &u.domain_id, &n, &u.id) {
                return Err(duplicate_in("user", &n, &u.domain_id));
            }
            u.name = n;
        }
        if let Some(x) = description {
            u.description = x;
        }
        if let Some(x) = default_project_id {
            if let Some(p) = &x
                && !txn.state().projects.contains(p)
            {
                return Err(not_found("project", p));
            }
            u.default_project_id = x;
        }
        if let Some(x) = email {
            u.email = x;
        }
        if let Some(x) = options {
            u.options.extend(x);
            u.options.retain(|_, v| !v.is_null());
        }
        for (k, v) in extra {
            if v.is_null() {
                u.extra.remove(&k);
            } else {
                u.extra.insert(k, v);
            }
        }
        let mut revoke_user = false;
        if let Some(h) = password_hash {
            u.password_hash = h;
            u.failed_auth_count = 0;
            revoke_user = true;
        }
        if let Some(e) = enabled {
            revoke_user |= u.enabled && !e;
            if e {
                u.failed_auth_count = 0;
            }
            u.enabled = e;
        }
        if revoke_user {
            let uid = u.id.clone();
            revoke(txn, |r| r.user_id = Some(uid))?;
        }
        txn.put(u.clone())?;
        Ok(u)
    })
    .await?;
    if unlocks && let Some(b) = state.auth.builtin() {
        // And those a full disk kept from being written.
        b.forget_failures(&id);
    }
    Ok(one(StatusCode::OK, "user", render(&ctx, &u)))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_user", Target::user(&id))?;
    write(&state, |txn| {
        fetch::<User>(txn.state(), &id)?;
        delete_assignments(txn, |a| matches!(&a.actor, Actor::User(u) if u == &id));
        let groups: Vec<Group> = txn
            .state()
            .groups
            .iter()
            .filter(|g| g.members.contains(&id))
            .map(|g| (**g).clone())
            .collect();
        for mut g in groups {
            g.members.retain(|m| m != &id);
            txn.put(g)?;
        }
        let creds: Vec<String> = txn
            .state()
            .application_credentials
            .iter()
            .filter(|c| c.user_id == id)
            .map(|c| c.id.clone())
            .collect();
        for c in &creds {
            txn.delete::<ApplicationCredential>(c);
        }
        txn.delete::<User>(&id);
        revoke(txn, |r| r.user_id = Some(id.clone()))?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// `POST /v3/users/{id}/password`: as Keystone, the original password is the
/// proof (no token needed, so a user whose password expired can change it).
/// An unknown user and a wrong password get the same 401 after the same work.
async fn change_password(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let obj = envelope(&body, "user")?;
    only(&obj, &["password", "original_password"])?;
    let new = match password_field(&obj, "password")? {
        Some(Some(p)) => p,
        _ => return Err(invalid("password", "'password' is a required property")),
    };
    let original = match password_field(&obj, "original_password")? {
        Some(Some(p)) => p,
        _ => {
            return Err(invalid(
                "original_password",
                "'original_password' is a required property",
            ));
        }
    };
    let b = passwords(&state)?;
    // The same check (and lockout) as a password authentication: a wrong
    // original password counts a failure, a locked user is refused.
    let snap = state.store.snapshot();
    let user = snap.users.get(&id).filter(|u| u.enabled);
    let checked = user.and_then(|u| u.password_hash.clone());
    b.check_password(user.map(|u| &**u), original, client.0)
        .await
        .map_err(issue_error)?;
    let new_hash = hash_secret(&state, client, new).await?;
    write(&state, |txn| {
        let mut u = fetch::<User>(txn.state(), &id)?;
        // Only over the password that was checked: an admin's reset (or a
        // disable) while this request waited for its hash wins.
        if !u.enabled || u.password_hash != checked {
            return Err(ApiError::unauthorized(None));
        }
        u.password_hash = Some(new_hash);
        statera_identity::builtin::lockout::unlock(&mut u);
        txn.put(u)?;
        revoke(txn, |r| r.user_id = Some(id.clone()))
    })
    .await?;
    Ok(no_content())
}

async fn groups_of(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:list_groups_for_user", Target::user(&id))?;
    let snap = state.store.snapshot();
    if !snap.users.contains(&id) {
        return Err(not_found("user", &id));
    }
    let mut groups: Vec<&Group> = snap
        .groups
        .iter()
        .map(|g| g.as_ref())
        .filter(|g| g.members.contains(&id))
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let items = groups
        .into_iter()
        .map(|g| super::groups::render(&ctx, g))
        .collect();
    Ok(collection(&ctx, "groups", &uri, items))
}

/// The projects the user has a role on (directly, through a group, or
/// inherited from a domain or a parent project).
async fn projects_of(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:list_user_projects", Target::user(&id))?;
    let snap = state.store.snapshot();
    if !snap.users.contains(&id) {
        return Err(not_found("user", &id));
    }
    let q = crate::list::Query::parse(uri.query());
    let enabled = q.get("enabled").map(query_bool);
    let ids = super::grants::user_projects(&snap, &id);
    let mut projects: Vec<_> = ids
        .iter()
        .filter_map(|p| snap.projects.get(p))
        .map(|p| p.as_ref())
        .filter(|p| q.get("name").is_none_or(|n| p.name == n))
        .filter(|p| q.get("domain_id").is_none_or(|d| p.domain_id == d))
        .filter(|p| enabled.is_none_or(|e| e == Some(p.enabled)))
        .collect();
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    let items = projects
        .into_iter()
        .map(|p| super::projects::render(&ctx, p))
        .collect();
    Ok(collection(&ctx, "projects", &uri, items))
}
