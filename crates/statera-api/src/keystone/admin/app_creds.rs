//! `/v3/users/{id}/application_credentials`: create (the secret is
//! generated unless given and shown only in the create answer; the roles are
//! a subset of the caller's on its token's project), list (`name`), show,
//! delete (its tokens are revoked). Only the owning user creates; the owner
//! or an admin reads and deletes. The wire only (with the secret, drawn and
//! hashed by the built-in Keystone): the operations are
//! `statera_service::identity::app_creds`.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{ApplicationCredential, Role};
use statera_service::StoreRead;
use statera_service::identity::app_creds::{self as service, NewAppCred, RoleRef};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v3/users/{id}/application_credentials",
            get(list).post(create),
        )
        .route(
            "/v3/users/{id}/application_credentials/{cred}",
            get(show).delete(delete),
        )
}

/// The longest secret a client may choose.
const SECRET_MAX: usize = 4096;
/// The length of a generated secret (Keystone: 64 random bytes, URL-safe base64).
const SECRET_LEN: usize = 86;

pub fn render(ctx: &RequestContext, state: &impl StoreRead, c: &ApplicationCredential) -> Value {
    let roles: Vec<Value> = c
        .role_ids
        .iter()
        .filter_map(|r| state.get::<Role>(r))
        .map(|r| json!({"id": r.id, "name": r.name, "domain_id": r.domain_id}))
        .collect();
    with_self(
        ctx,
        json!({
            "id": c.id,
            "name": c.name,
            "description": c.description,
            "user_id": c.user_id,
            "project_id": c.project_id,
            "roles": roles,
            "expires_at": c.expires_at.as_ref().map(timestamp),
            "unrestricted": c.unrestricted,
            "access_rules": [],
        }),
        &format!("users/{}/application_credentials/{}", c.user_id, c.id),
    )
}

/// `expires_at` as ISO 8601 (with or without zone and fraction), in UTC.
fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.naive_utc());
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
}

/// The roles asked for: `[{"id": …} | {"name": …}]` (an id wins).
fn requested_roles(obj: &Object) -> ApiResult<Option<Vec<RoleRef>>> {
    match obj.get("roles") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                let o = item
                    .as_object()
                    .ok_or_else(|| invalid("roles", format!("{item} is not of type 'object'")))?;
                only(o, &["id", "name", "domain_id"])?;
                let id = o.get("id").and_then(Value::as_str).map(str::to_string);
                let name = o.get("name").and_then(Value::as_str).map(str::to_string);
                out.push(match (id, name) {
                    (Some(i), _) => RoleRef::Id(i),
                    (None, Some(n)) => RoleRef::Name(n),
                    (None, None) => {
                        return Err(invalid("roles", "a role needs an id or a name"));
                    }
                });
            }
            Ok(Some(out))
        }
        Some(other) => Err(invalid("roles", format!("{other} is not of type 'array'"))),
    }
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    client: Client,
    Path(user): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    service::admit_create(&ctx.service, &user).map_err(kse)?;
    let obj = envelope(&body, "application_credential")?;
    only(
        &obj,
        &[
            "name",
            "description",
            "secret",
            "expires_at",
            "roles",
            "unrestricted",
            "access_rules",
        ],
    )?;
    match obj.get("access_rules") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return Err(bad_request(
                "Access rules are not supported by this Keystone.",
            ));
        }
    }
    let Some(project_id) = ctx.caller.project_id.clone().filter(|p| !p.is_empty()) else {
        return Err(bad_request(
            "Application credentials are created with a project-scoped token.",
        ));
    };
    let name = name_field(&obj, true, NAME_MAX)?.unwrap_or_default();
    let description = description_field(&obj)?.unwrap_or_default();
    let unrestricted = bool_field(&obj, "unrestricted")?.unwrap_or(false);
    let expires_at = match opt_str(&obj, "expires_at", 64, true)?.flatten() {
        None => None,
        Some(s) => {
            let t = parse_time(&s)
                .ok_or_else(|| invalid("expires_at", format!("'{s}' is not a 'date-time'")))?;
            if t <= chrono::Utc::now().naive_utc() {
                return Err(bad_request(
                    "The 'expires_at' must not be before now. The server could not comply with \
                     the request since it is either malformed or otherwise incorrect.",
                ));
            }
            Some(t)
        }
    };
    let requested = requested_roles(&obj)?;
    let secret = match opt_str(&obj, "secret", SECRET_MAX, true)?.flatten() {
        Some(s) if !s.is_empty() => s,
        _ => statera_identity::password::random_secret(SECRET_LEN),
    };
    let secret_hash = hash_secret(&state, client, secret.clone()).await?;
    let new = NewAppCred {
        user_id: user,
        project_id,
        name,
        description,
        secret_hash,
        expires_at,
        unrestricted,
        roles: requested,
    };
    let c = service_write(&state, |txn| service::create(&ctx.service, txn, new)).await?;
    let snap = state.store.snapshot();
    let mut v = render(&ctx, &*snap, &c);
    v["secret"] = json!(secret);
    Ok(one(StatusCode::CREATED, "application_credential", v))
}

async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(user): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    let snap = state.store.snapshot();
    let all = service::list(&ctx.service, &*snap, &user).map_err(kse)?;
    let q = crate::list::Query::parse(uri.query());
    let mut creds: Vec<_> = all
        .iter()
        .filter(|c| q.get("name").is_none_or(|n| c.name == n))
        .collect();
    creds.sort_by(|a, b| a.name.cmp(&b.name));
    let items = creds.into_iter().map(|c| render(&ctx, &*snap, c)).collect();
    Ok(collection(&ctx, "application_credentials", &uri, items))
}

async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((user, cred)): Path<(String, String)>,
) -> ApiResult<Response> {
    let snap = state.store.snapshot();
    let c = service::show(&ctx.service, &*snap, &user, &cred).map_err(kse)?;
    Ok(one(
        StatusCode::OK,
        "application_credential",
        render(&ctx, &*snap, &c),
    ))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((user, cred)): Path<(String, String)>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE, Target::user(&user))?;
    service_write(&state, |txn| {
        service::delete(&ctx.service, txn, &user, &cred)
    })
    .await?;
    Ok(no_content())
}
