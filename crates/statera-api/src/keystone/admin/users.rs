//! `/v3/users`: create, list (`name`, `domain_id`, `enabled`), show, update,
//! delete; `POST /v3/users/{id}/password` (a user changes its own password,
//! proven by the original one); `GET /v3/users/{id}/groups` and
//! `/v3/users/{id}/projects`. Passwords are stored as argon2id hashes and
//! never rendered; disabling or deleting a user, or changing its password,
//! revokes its tokens. The wire only (with the password hashing and the
//! lockout's memory, which are the identity provider's): the operations are
//! `statera_service::identity::users`.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::{get, post};
use bytes::Bytes;
use statera_model::identity::{User, new_id};
use statera_service::identity::users::{self as service, UserFields};

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
    admit(&ctx, service::CREATE, Target::default())?;
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
    let u = User {
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
    let u = service_write(&state, |txn| service::create(&ctx.service, txn, u)).await?;
    Ok(one(StatusCode::CREATED, "user", render(&ctx, &u)))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    client: Client,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::UPDATE, Target::user(&id))?;
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
    let f = UserFields {
        name,
        description,
        enabled,
        default_project_id,
        email,
        options,
        extra,
        password_hash,
    };
    let u = service_write(&state, |txn| service::update(&ctx.service, txn, &id, f)).await?;
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
    admit(&ctx, service::DELETE, Target::user(&id))?;
    service_write(&state, |txn| service::delete(&ctx.service, txn, &id)).await?;
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
    let user = service::password_subject(&*state.store.snapshot(), &id);
    let checked = user.as_ref().and_then(|u| u.password_hash.clone());
    b.check_password(user.as_deref(), original, client.0)
        .await
        .map_err(issue_error)?;
    let new_hash = hash_secret(&state, client, new).await?;
    let changed = service_write(&state, |txn| {
        service::change_password(
            txn,
            &id,
            checked,
            new_hash,
            statera_identity::builtin::lockout::unlock,
        )
    })
    .await?;
    if !changed {
        return Err(ks(ApiError::unauthorized(None)));
    }
    Ok(no_content())
}

async fn groups_of(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    let mut groups =
        service::groups_of(&ctx.service, &*state.store.snapshot(), &id).map_err(kse)?;
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let items = groups
        .iter()
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
    let all = service::projects_of(&ctx.service, &*state.store.snapshot(), &id).map_err(kse)?;
    let q = crate::list::Query::parse(uri.query());
    let enabled = q.get("enabled").map(query_bool);
    let mut projects: Vec<_> = all
        .iter()
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
