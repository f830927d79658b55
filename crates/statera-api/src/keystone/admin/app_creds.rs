//! `/v3/users/{id}/application_credentials`: create (the secret is
//! generated unless given and shown only in the create answer; the roles are
//! a subset of the caller's on its token's project), list (`name`), show,
//! delete (its tokens are revoked). Only the owning user creates; the owner
//! or an admin reads and deletes.

use super::*;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{ApplicationCredential, Role, new_id};

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

pub fn render(
    ctx: &RequestContext,
    state: &statera_store::State,
    c: &ApplicationCredential,
) -> Value {
    let roles: Vec<Value> = c
        .role_ids
        .iter()
        .filter_map(|r| state.roles.get(r))
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

/// The roles asked for: `[{"id": …} | {"name": …}]`.
/// A role reference: (id, name).
type RoleRef = (Option<String>, Option<String>);

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
                if id.is_none() && name.is_none() {
                    return Err(invalid("roles", "a role needs an id or a name"));
                }
                out.push((id, name));
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
    if !allowed(
        &ctx,
        "identity:create_application_credential",
        Target::user(&user),
    ) {
        return Err(kerr(
            StatusCode::FORBIDDEN,
            "You are not authorized to perform the requested action: Cannot create an \
             application credential for another user.",
        ));
    }
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
    let caller_roles = ctx.caller.roles.clone();
    let c = write(&state, |txn| {
        let s = txn.state();
        if !s.users.contains(&user) {
            return Err(not_found("user", &user));
        }
        // The roles the caller's token carries on its project, as records.
        let held: Vec<&Role> = s
            .roles
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| caller_roles.iter().any(|c| c.eq_ignore_ascii_case(&r.name)))
            .collect();
        let role_ids: Vec<String> = match &requested {
            None => held.iter().map(|r| r.id.clone()).collect(),
            Some(asked) => {
                // Named roles, then what they imply; every one must be on
                // the caller's token (no escalation through a credential).
                let mut ids: Vec<String> = Vec::new();
                for (id, name) in asked {
                    let role = match (id, name) {
                        (Some(i), _) => s.roles.get(i).ok_or_else(|| not_found("role", i))?,
                        (None, Some(n)) => s
                            .roles
                            .iter()
                            .find(|r| r.domain_id.is_none() && r.name.eq_ignore_ascii_case(n))
                            .ok_or_else(|| not_found("role", n))?,
                        (None, None) => unreachable!("checked by requested_roles"),
                    };
                    for r in std::iter::once(role.id.clone()).chain(
                        statera_service::identity::roles::implied_closure(s, &role.id),
                    ) {
                        if !ids.contains(&r) {
                            ids.push(r);
                        }
                    }
                }
                if ids.iter().any(|i| !held.iter().any(|h| &h.id == i)) {
                    return Err(bad_request(
                        "Invalid application credential: Cannot create an application \
                         credential with unassigned role",
                    ));
                }
                ids
            }
        };
        if s.application_credentials
            .iter()
            .any(|c| c.user_id == user && c.name == name)
        {
            return Err(duplicate("application_credential", &name));
        }
        let c = ApplicationCredential {
            id: new_id(),
            name,
            description,
            user_id: user.clone(),
            project_id,
            secret_hash,
            role_ids,
            expires_at,
            unrestricted,
            created_at: statera_model::now(),
        };
        txn.put(c.clone())?;
        Ok(c)
    })
    .await?;
    let snap = state.store.snapshot();
    let mut v = render(&ctx, &snap, &c);
    v["secret"] = json!(secret);
    Ok(one(StatusCode::CREATED, "application_credential", v))
}

async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(user): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Response> {
    authorize(
        &ctx,
        "identity:list_application_credentials",
        Target::user(&user),
    )?;
    let q = crate::list::Query::parse(uri.query());
    let snap = state.store.snapshot();
    if !snap.users.contains(&user) {
        return Err(not_found("user", &user));
    }
    let mut creds: Vec<_> = snap
        .application_credentials
        .iter()
        .filter(|c| c.user_id == user)
        .filter(|c| q.get("name").is_none_or(|n| c.name == n))
        .collect();
    creds.sort_by(|a, b| a.name.cmp(&b.name));
    let items = creds.into_iter().map(|c| render(&ctx, &snap, c)).collect();
    Ok(collection(&ctx, "application_credentials", &uri, items))
}

async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((user, cred)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(
        &ctx,
        "identity:get_application_credential",
        Target::user(&user),
    )?;
    let snap = state.store.snapshot();
    let c = snap
        .application_credentials
        .get(&cred)
        .filter(|c| c.user_id == user)
        .ok_or_else(|| not_found("application credential", &cred))?;
    Ok(one(
        StatusCode::OK,
        "application_credential",
        render(&ctx, &snap, c),
    ))
}

async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((user, cred)): Path<(String, String)>,
) -> ApiResult<Response> {
    authorize(
        &ctx,
        "identity:delete_application_credential",
        Target::user(&user),
    )?;
    write(&state, |txn| {
        if txn
            .state()
            .application_credentials
            .get(&cred)
            .is_none_or(|c| c.user_id != user)
        {
            return Err(not_found("application credential", &cred));
        }
        txn.delete::<ApplicationCredential>(&cred);
        revoke(txn, |r| r.application_credential_id = Some(cred.clone()))
    })
    .await?;
    Ok(no_content())
}
