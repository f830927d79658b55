//! The key manager (Barbican's v1 subset): secrets and containers of secret
//! references, their read ACLs and consumers, with Barbican's rules and
//! messages. The wire (`statera-api`'s `barbican.rs`) reads bodies and
//! headers; everything decided about an object is decided here.
//!
//! - Payloads are sealed before they reach the store ([`seal`]) and opened
//!   only by [`secret_payload`], after `secret:decrypt`.
//! - An expired secret is, as in Barbican, not found anywhere.
//! - A caller outside the object's project and not on its read ACL gets the
//!   same 404 as for a missing object (Barbican answers 403, which tells
//!   another tenant the id exists); inside the project, a refused rule is
//!   Barbican's 403 `… attempt not allowed …`.
//! - Every project holds at most [`KeyManager::max_secrets`] secrets and
//!   [`KeyManager::max_containers`] containers (the store's image is in
//!   memory: one tenant may not fill it).

pub mod seal;
pub mod tls;

use crate::{Context, ServiceError, ServiceResult, StoreRead, StoreWrite};
use statera_model::keymanager::*;
use statera_model::{Timestamp, now};
use statera_policy::Target;
use std::sync::Arc;
use uuid::Uuid;

pub use seal::{Kek, SealError};

/// Barbican's `max_allowed_secret_in_bytes`.
pub const MAX_SECRET_BYTES: usize = 20_000;

/// What the deployment gives the key manager.
#[derive(Debug)]
pub struct KeyManager {
    pub kek: Kek,
    pub max_secrets: usize,
    pub max_containers: usize,
    /// How tenants' PKCS#12 bundles are read (`statera serve`: in a child
    /// process under CPU and memory limits).
    pub pkcs12: statera_tls::Isolation,
}

pub const SECRET_TYPES: &[&str] = &[
    "symmetric",
    "passphrase",
    "private",
    "public",
    "certificate",
    "opaque",
];
pub const CONTAINER_TYPES: &[&str] = &["generic", "rsa", "certificate"];

/// An object with a project, a creator and a read ACL: what the policy
/// target of Barbican's rules is made of.
pub trait Guarded: statera_store::Record<Key = Uuid> {
    /// `secret` or `container` (the target's `target.<kind>.*` keys).
    const KIND: &'static str;
    /// `Secret not found.` / `Secrets container not found.`
    const NOT_FOUND: &'static str;
    fn project(&self) -> &str;
    fn creator(&self) -> &str;
    fn acl(&self) -> &Acl;
    fn acl_mut(&mut self) -> &mut Acl;
    fn touch(&mut self, at: Timestamp);
    /// Expired objects read as missing (secrets only).
    fn expired(&self, _at: Timestamp) -> bool {
        false
    }
}

impl Guarded for Secret {
    const KIND: &'static str = "secret";
    const NOT_FOUND: &'static str = "Secret not found.";
    fn project(&self) -> &str {
        &self.project_id
    }
    fn creator(&self) -> &str {
        &self.creator_id
    }
    fn acl(&self) -> &Acl {
        &self.acl
    }
    fn acl_mut(&mut self) -> &mut Acl {
        &mut self.acl
    }
    fn touch(&mut self, at: Timestamp) {
        self.updated_at = at;
    }
    fn expired(&self, at: Timestamp) -> bool {
        self.expiration.is_some_and(|e| e <= at)
    }
}

impl Guarded for SecretContainer {
    const KIND: &'static str = "container";
    const NOT_FOUND: &'static str = "Secrets container not found.";
    fn project(&self) -> &str {
        &self.project_id
    }
    fn creator(&self) -> &str {
        &self.creator_id
    }
    fn acl(&self) -> &Acl {
        &self.acl
    }
    fn acl_mut(&mut self) -> &mut Acl {
        &mut self.acl
    }
    fn touch(&mut self, at: Timestamp) {
        self.updated_at = at;
    }
}

/// The caller's user id ("" for a caller without one, such as `noauth`
/// without headers).
fn user_of(ctx: &Context) -> &str {
    ctx.caller.user_id.as_deref().unwrap_or("")
}

fn on_acl(acl: &Acl, user: &str) -> bool {
    !user.is_empty()
        && acl
            .read
            .as_ref()
            .is_some_and(|r| r.users.iter().any(|u| u == user))
}

/// Barbican's policy target of an object (`target.secret.project_id`, …).
pub fn target_of<G: Guarded>(ctx: &Context, o: &G) -> Target {
    let k = G::KIND;
    let mut t = Target::new();
    t.insert(format!("target.{k}.project_id"), o.project().to_string());
    t.insert(format!("target.{k}.creator_id"), o.creator().to_string());
    let project_access = o.acl().read.as_ref().is_none_or(|r| r.project_access);
    t.insert(
        format!("target.{k}.read_project_access"),
        if project_access { "True" } else { "False" }.to_string(),
    );
    if on_acl(o.acl(), user_of(ctx)) {
        t.insert(format!("target.{k}.read"), "read".to_string());
    }
    t
}

/// Barbican's 403: `<op> attempt not allowed - please review your
/// user/project privileges`.
pub fn not_allowed(op: &str) -> ServiceError {
    ServiceError::Forbidden(format!(
        "{op} attempt not allowed - please review your user/project privileges"
    ))
}

/// `rule` for the caller, or Barbican's 403 for `op`.
pub fn authorize_op(ctx: &Context, rule: &str, target: &Target, op: &str) -> ServiceResult<()> {
    if ctx.allowed_on(rule, target) {
        Ok(())
    } else {
        Err(not_allowed(op))
    }
}

/// The object `id` as the caller may act on it under `rule`: missing,
/// expired, or refused to a caller outside its project and not on its ACL
/// is `G::NOT_FOUND`; refused to an insider, the 403 of `op`.
pub fn guarded<G: Guarded>(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
    rule: &str,
    op: &str,
) -> ServiceResult<Arc<G>> {
    let o = s
        .get::<G>(&id)
        .filter(|o| !o.expired(now()))
        .ok_or_else(|| ServiceError::NotFound(G::NOT_FOUND.into()))?;
    if ctx.allowed_on(rule, &target_of(ctx, o.as_ref())) {
        return Ok(o);
    }
    // Refused: inside the project or on the ACL, Barbican's 403; anyone
    // else learns nothing of the object (an admin of another project
    // included: no default rule lets one in).
    let insider =
        ctx.caller.project_id.as_deref() == Some(o.project()) || on_acl(o.acl(), user_of(ctx));
    Err(if insider {
        not_allowed(op)
    } else {
        ServiceError::NotFound(G::NOT_FOUND.into())
    })
}

fn caller_project(ctx: &Context, op: &str) -> ServiceResult<String> {
    ctx.caller
        .project_id
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| not_allowed(op))
}

fn quota_reached(what: &str) -> ServiceError {
    ServiceError::Forbidden(format!(
        "{what} creation issue seen - Creation not allowed because a quota has been reached."
    ))
}

// ---------------------------------------------------------------- secrets

pub const SECRETS_POST: &str = "secrets:post";
pub const SECRETS_GET: &str = "secrets:get";
pub const SECRET_GET: &str = "secret:get";
pub const SECRET_DECRYPT: &str = "secret:decrypt";
pub const SECRET_PUT: &str = "secret:put";
pub const SECRET_DELETE: &str = "secret:delete";
pub const CONTAINERS_POST: &str = "containers:post";
pub const CONTAINERS_GET: &str = "containers:get";
pub const CONTAINER_GET: &str = "container:get";
pub const CONTAINER_DELETE: &str = "container:delete";

/// A payload as the wire read it: bytes and its normalised content type
/// (`text/plain`, `application/octet-stream`, `application/pkcs8`). Its
/// `Debug` shows the length, never the bytes.
#[derive(Clone)]
pub struct Payload {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.bytes.len())
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// A secret create as the wire read and checked it.
#[derive(Debug, Clone, Default)]
pub struct NewSecret {
    pub name: Option<String>,
    pub secret_type: String,
    pub algorithm: Option<String>,
    pub bit_length: Option<u32>,
    pub mode: Option<String>,
    pub expiration: Option<Timestamp>,
    pub payload: Option<Payload>,
}

pub fn create_secret(
    ctx: &Context,
    km: &KeyManager,
    s: &mut impl StoreWrite,
    new: NewSecret,
) -> ServiceResult<Secret> {
    const OP: &str = "Secret creation";
    authorize_op(ctx, SECRETS_POST, &Target::new(), OP)?;
    let project = caller_project(ctx, OP)?;
    if new.expiration.is_some_and(|e| e <= now()) {
        return Err(ServiceError::Invalid(
            "Provided object does not match schema 'Secret': 'expiration' is before current time. Invalid property: 'expiration'".into(),
        ));
    }
    let at = now();
    let mine: Vec<Arc<Secret>> = s
        .all::<Secret>()
        .into_iter()
        .filter(|x| x.project_id == project)
        .collect();
    // Expired secrets are gone for every reader: they leave the project's
    // count and the store here (their container references with them).
    for x in mine.iter().filter(|x| x.expired(at)) {
        forget_secret(s, x.id)?;
    }
    if mine.iter().filter(|x| !x.expired(at)).count() >= km.max_secrets {
        return Err(quota_reached("Secret"));
    }
    let id = Uuid::new_v4();
    let (content_type, payload) = match new.payload {
        Some(p) => (
            Some(p.content_type),
            Some(km.kek.seal(id, &project, &p.bytes)),
        ),
        None => (None, None),
    };
    let secret = Secret {
        id,
        project_id: project,
        creator_id: user_of(ctx).to_string(),
        name: new.name,
        secret_type: new.secret_type,
        algorithm: new.algorithm,
        bit_length: new.bit_length,
        mode: new.mode,
        expiration: new.expiration,
        created_at: at,
        updated_at: at,
        content_type,
        payload,
        acl: Acl::default(),
        consumers: Vec::new(),
    };
    s.put(secret.clone())?;
    Ok(secret)
}

/// The second step of a two-step secret: its payload (once).
pub fn put_payload(
    ctx: &Context,
    km: &KeyManager,
    s: &mut impl StoreWrite,
    id: Uuid,
    payload: Payload,
) -> ServiceResult<()> {
    let mut secret = (*guarded::<Secret>(ctx, s, id, SECRET_PUT, "Secret update")?).clone();
    if secret.payload.is_some() {
        return Err(ServiceError::Conflict(
            "Secret already has data, cannot modify it.".into(),
        ));
    }
    secret.payload = Some(km.kek.seal(id, &secret.project_id, &payload.bytes));
    secret.content_type = Some(payload.content_type);
    secret.updated_at = now();
    s.put(secret)?;
    Ok(())
}

/// A secret's metadata (`secret:get`).
pub fn show_secret(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Secret>> {
    guarded::<Secret>(ctx, s, id, SECRET_GET, "Secret retrieval")
}

/// A secret's payload in clear with its content type (`secret:decrypt`).
/// A payload this node cannot open is an error of the deployment (another
/// key-encryption key, a damaged row), logged and answered 500.
pub fn secret_payload(
    ctx: &Context,
    km: &KeyManager,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<(Vec<u8>, String)> {
    let secret = guarded::<Secret>(ctx, s, id, SECRET_DECRYPT, "Secret payload retrieval")?;
    open_payload(km, &secret)
}

/// The payload of a secret the caller was already allowed to decrypt.
pub fn open_payload(km: &KeyManager, secret: &Secret) -> ServiceResult<(Vec<u8>, String)> {
    let (Some(sealed), Some(ct)) = (&secret.payload, &secret.content_type) else {
        return Err(ServiceError::NotFound(
            "Not Found. Sorry but your secret has no payload.".into(),
        ));
    };
    match km.kek.open(secret.id, &secret.project_id, sealed) {
        Ok(bytes) => Ok((bytes, ct.clone())),
        Err(e) => {
            tracing::error!(secret = %secret.id, error = %e, "a secret's payload cannot be opened");
            Err(ServiceError::Internal(
                "Secret payload retrieval failure seen - please contact site administrator.".into(),
            ))
        }
    }
}

/// Deletes a secret, its ACL and consumers, and its references in
/// containers. One with consumers is refused unless `force`.
pub fn delete_secret(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: Uuid,
    force: bool,
) -> ServiceResult<()> {
    let secret = guarded::<Secret>(ctx, s, id, SECRET_DELETE, "Secret deletion")?;
    if !secret.consumers.is_empty() && !force {
        return Err(ServiceError::Invalid(
            "Secret deletion issue seen - Secret cannot be deleted as it has consumers.".into(),
        ));
    }
    forget_secret(s, id)
}

/// Removes a secret and its references in containers.
fn forget_secret(s: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    for c in s.all::<SecretContainer>() {
        if c.secret_refs.iter().any(|r| r.secret_id == id) {
            let mut c = (*c).clone();
            c.secret_refs.retain(|r| r.secret_id != id);
            c.updated_at = now();
            s.put(c)?;
        }
    }
    s.delete::<Secret>(&id);
    Ok(())
}

/// The filters of a secret list (Barbican's query parameters).
#[derive(Debug, Default)]
pub struct SecretFilter {
    pub name: Option<String>,
    pub algorithm: Option<String>,
    pub mode: Option<String>,
    pub bits: Option<u32>,
    pub secret_type: Option<String>,
    /// Only the secrets whose read ACL lists the caller, any project.
    pub acl_only: bool,
    pub created: Vec<(std::cmp::Ordering, bool, Timestamp)>,
    pub updated: Vec<(std::cmp::Ordering, bool, Timestamp)>,
    pub expiration: Vec<(std::cmp::Ordering, bool, Timestamp)>,
}

/// `(ordering, or_equal, bound)`: the value must compare as `ordering` to
/// the bound (or equal it when `or_equal`).
fn within(v: Option<Timestamp>, bounds: &[(std::cmp::Ordering, bool, Timestamp)]) -> bool {
    bounds.iter().all(|(ord, eq, b)| {
        v.is_some_and(|v| {
            let c = v.cmp(b);
            c == *ord || (*eq && c == std::cmp::Ordering::Equal)
        })
    })
}

/// The caller's project's unexpired secrets that pass `f`, oldest first
/// (`secrets:get`).
pub fn list_secrets(
    ctx: &Context,
    s: &impl StoreRead,
    f: &SecretFilter,
) -> ServiceResult<Vec<Arc<Secret>>> {
    const OP: &str = "Secret(s) retrieval";
    authorize_op(ctx, SECRETS_GET, &Target::new(), OP)?;
    let project = ctx.caller.project_id.clone().unwrap_or_default();
    let user = user_of(ctx);
    let at = now();
    let mut out: Vec<Arc<Secret>> = s
        .all::<Secret>()
        .into_iter()
        .filter(|x| !x.expired(at))
        .filter(|x| {
            if f.acl_only {
                on_acl(&x.acl, user)
            } else {
                x.project_id == project
            }
        })
        .filter(|x| f.name.as_ref().is_none_or(|n| x.name.as_ref() == Some(n)))
        .filter(|x| {
            f.algorithm
                .as_ref()
                .is_none_or(|a| x.algorithm.as_ref() == Some(a))
        })
        .filter(|x| f.mode.as_ref().is_none_or(|m| x.mode.as_ref() == Some(m)))
        .filter(|x| f.bits.is_none_or(|b| x.bit_length == Some(b)))
        .filter(|x| f.secret_type.as_ref().is_none_or(|t| &x.secret_type == t))
        .filter(|x| within(Some(x.created_at), &f.created))
        .filter(|x| within(Some(x.updated_at), &f.updated))
        .filter(|x| f.expiration.is_empty() || within(x.expiration, &f.expiration))
        .collect();
    out.sort_by_key(|x| (x.created_at, x.id));
    Ok(out)
}

// ---------------------------------------------------------------- containers

/// A container create as the wire read it: the references by name and id.
#[derive(Debug, Clone)]
pub struct NewContainer {
    pub name: Option<String>,
    pub kind: String,
    pub refs: Vec<(Option<String>, Uuid)>,
}

fn container_invalid(reason: &str) -> ServiceError {
    ServiceError::Invalid(format!(
        "Provided object does not match schema 'Container': {reason}. Invalid property: 'secret_refs'"
    ))
}

pub fn create_container(
    ctx: &Context,
    km: &KeyManager,
    s: &mut impl StoreWrite,
    new: NewContainer,
) -> ServiceResult<SecretContainer> {
    const OP: &str = "Container creation";
    authorize_op(ctx, CONTAINERS_POST, &Target::new(), OP)?;
    let project = caller_project(ctx, OP)?;
    let names: Vec<&str> = new
        .refs
        .iter()
        .map(|(n, _)| n.as_deref().unwrap_or(""))
        .collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(container_invalid(
                "Duplicate reference names are not allowed",
            ));
        }
        if new.refs[..i].iter().any(|(_, id)| *id == new.refs[i].1) {
            return Err(container_invalid("Duplicate secret ids are not allowed"));
        }
    }
    if !new.refs.is_empty() {
        match new.kind.as_str() {
            "certificate" => {
                const ALLOWED: &[&str] = &[
                    "certificate",
                    "private_key",
                    "private_key_passphrase",
                    "intermediates",
                ];
                if names.iter().any(|n| !ALLOWED.contains(n)) {
                    return Err(container_invalid(
                        "only 'private_key', 'certificate' , 'private_key_passphrase',  or 'intermediates' reference names are allowed for Certificate type",
                    ));
                }
                if !names.contains(&"certificate") {
                    return Err(container_invalid(
                        "The minimum required reference name is 'certificate' for Certificate type",
                    ));
                }
            }
            "rsa" => {
                const ALLOWED: &[&str] = &["public_key", "private_key", "private_key_passphrase"];
                if names.iter().any(|n| !ALLOWED.contains(n)) {
                    return Err(container_invalid(
                        "only 'private_key', 'public_key' and 'private_key_passphrase' reference names are allowed for RSA type",
                    ));
                }
                if !names.contains(&"public_key") || !names.contains(&"private_key") {
                    return Err(container_invalid(
                        "The minimum required reference names are 'public_key' and 'private_key' for RSA type",
                    ));
                }
            }
            _ => {}
        }
    }
    // Every secret exists, is the caller's project's, and the caller may
    // read it (a container is a way to hand secrets on: it must not launder
    // one the caller could not read itself).
    for (name, id) in &new.refs {
        let readable = s
            .get::<Secret>(id)
            .filter(|x| !x.expired(now()) && x.project_id == project)
            .is_some_and(|x| ctx.allowed_on(SECRET_GET, &target_of(ctx, x.as_ref())));
        if !readable {
            return Err(ServiceError::NotFound(format!(
                "Secret provided for '{}' doesn't exist.",
                name.as_deref().unwrap_or("None")
            )));
        }
    }
    let held = s
        .all::<SecretContainer>()
        .iter()
        .filter(|x| x.project_id == project)
        .count();
    if held >= km.max_containers {
        return Err(quota_reached("Container"));
    }
    let at = now();
    let c = SecretContainer {
        id: Uuid::new_v4(),
        project_id: project,
        creator_id: user_of(ctx).to_string(),
        name: new.name,
        kind: new.kind,
        secret_refs: new
            .refs
            .into_iter()
            .map(|(n, id)| ContainerSecret {
                name: n.unwrap_or_default(),
                secret_id: id,
            })
            .collect(),
        created_at: at,
        updated_at: at,
        acl: Acl::default(),
        consumers: Vec::new(),
    };
    s.put(c.clone())?;
    Ok(c)
}

pub fn show_container(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<Arc<SecretContainer>> {
    guarded::<SecretContainer>(ctx, s, id, CONTAINER_GET, "Container retrieval")
}

pub fn delete_container(ctx: &Context, s: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    guarded::<SecretContainer>(ctx, s, id, CONTAINER_DELETE, "Container deletion")?;
    s.delete::<SecretContainer>(&id);
    Ok(())
}

/// The caller's project's containers (optionally by name and type), oldest
/// first (`containers:get`).
pub fn list_containers(
    ctx: &Context,
    s: &impl StoreRead,
    name: Option<&str>,
    kind: Option<&str>,
) -> ServiceResult<Vec<Arc<SecretContainer>>> {
    authorize_op(
        ctx,
        CONTAINERS_GET,
        &Target::new(),
        "Containers(s) retrieval",
    )?;
    let project = ctx.caller.project_id.clone().unwrap_or_default();
    let mut out: Vec<Arc<SecretContainer>> = s
        .all::<SecretContainer>()
        .into_iter()
        .filter(|c| c.project_id == project)
        .filter(|c| name.is_none_or(|n| c.name.as_deref() == Some(n)))
        .filter(|c| kind.is_none_or(|k| c.kind == k))
        .collect();
    out.sort_by_key(|c| (c.created_at, c.id));
    Ok(out)
}

// ---------------------------------------------------------------- ACLs

/// An ACL change: `PUT` replaces, `PATCH` merges, `DELETE` resets.
#[derive(Debug, Clone)]
pub enum AclChange {
    /// `None`: the body had no `read` (the ACL is removed).
    Replace(Option<(Option<Vec<String>>, Option<bool>)>),
    Merge(Option<(Option<Vec<String>>, Option<bool>)>),
    Delete,
}

/// Barbican's rule names for an object's ACL operations.
fn acl_rule<G: Guarded>(action: &str) -> String {
    format!("{}_acls:{action}", G::KIND)
}

/// The object's read ACL (`<kind>_acls:get`).
pub fn show_acl<G: Guarded>(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Acl> {
    let o = guarded::<G>(ctx, s, id, &acl_rule::<G>("get"), "ACL(s) retrieval")?;
    Ok(o.acl().clone())
}

pub fn change_acl<G: Guarded + Clone>(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: Uuid,
    change: AclChange,
) -> ServiceResult<()> {
    const MAX_USERS: usize = 50;
    let action = match change {
        AclChange::Delete => "delete",
        _ => "put_patch",
    };
    let o = guarded::<G>(ctx, s, id, &acl_rule::<G>(action), "SecretACL(s) Update")?;
    let mut o = (*o).clone();
    let at = now();
    let current = o.acl().read.clone();
    let read = match change {
        AclChange::Delete | AclChange::Replace(None) => None,
        AclChange::Replace(Some((users, access))) => Some(AclEntry {
            users: users.unwrap_or_default(),
            project_access: access.unwrap_or(true),
            created_at: current.as_ref().map_or(at, |c| c.created_at),
            updated_at: at,
        }),
        AclChange::Merge(None) => current,
        AclChange::Merge(Some((users, access))) => Some(AclEntry {
            users: users.unwrap_or_else(|| {
                current
                    .as_ref()
                    .map(|c| c.users.clone())
                    .unwrap_or_default()
            }),
            project_access: access
                .or(current.as_ref().map(|c| c.project_access))
                .unwrap_or(true),
            created_at: current.as_ref().map_or(at, |c| c.created_at),
            updated_at: at,
        }),
    };
    if let Some(r) = &read
        && r.users.len() > MAX_USERS
    {
        return Err(ServiceError::Invalid(format!(
            "Provided object does not match schema 'ACL': a read ACL lists at most {MAX_USERS} users. Invalid property: 'read'"
        )));
    }
    o.acl_mut().read = read.map(|mut r| {
        let mut seen = std::collections::HashSet::new();
        r.users.retain(|u| seen.insert(u.clone()));
        r
    });
    o.touch(at);
    s.put(o)?;
    Ok(())
}

// ---------------------------------------------------------------- consumers

/// At most this many consumers per secret or container, and of those at
/// most [`MAX_FOREIGN_CONSUMERS`] registered by any one project other than
/// the object's (a reader on the ACL cannot fill the owner's share).
pub const MAX_CONSUMERS: usize = 50;
pub const MAX_FOREIGN_CONSUMERS: usize = 10;

/// Whether `project` may register one more consumer among `registered`
/// (the projects of the object's consumers) on an object of `owner`.
fn consumer_room(registered: &[&str], owner: &str, project: &str) -> bool {
    registered.len() < MAX_CONSUMERS
        && (project == owner
            || registered.iter().filter(|p| **p == project).count() < MAX_FOREIGN_CONSUMERS)
}

/// Barbican's refusal to remove another project's consumer.
fn not_consumer_creator() -> ServiceError {
    ServiceError::Forbidden(
        "Not Allowed. Sorry, only the creator of a consumer can delete it.".into(),
    )
}

/// Whether the caller may remove a consumer `registered_by` on an object of
/// `owner`.
fn may_remove(ctx: &Context, registered_by: &str, owner: &str) -> bool {
    let p = ctx.caller.project_id.as_deref().unwrap_or("");
    p == registered_by || p == owner
}

fn consumer_rule<G: Guarded>(action: &str) -> String {
    format!("{}_consumers:{action}", G::KIND)
}

/// An object services register as consumers of: secrets (`{service,
/// resource_type, resource_id}`) and containers (`{name, URL}`).
pub trait Consumed: Guarded + Clone {
    type Consumer: Clone;
    /// `SecretConsumer`, `ContainerConsumer` (Barbican's messages).
    const CONSUMER: &'static str;
    fn consumers(&self) -> &Vec<Self::Consumer>;
    fn consumers_mut(&mut self) -> &mut Vec<Self::Consumer>;
    /// The project that registered it.
    fn registrant(c: &Self::Consumer) -> &str;
    fn set_registrant(c: &mut Self::Consumer, project: String);
    /// Whether two consumers name the same registration.
    fn same(a: &Self::Consumer, b: &Self::Consumer) -> bool;
}

impl Consumed for Secret {
    type Consumer = SecretConsumer;
    const CONSUMER: &'static str = "SecretConsumer";
    fn consumers(&self) -> &Vec<SecretConsumer> {
        &self.consumers
    }
    fn consumers_mut(&mut self) -> &mut Vec<SecretConsumer> {
        &mut self.consumers
    }
    fn registrant(c: &SecretConsumer) -> &str {
        &c.project_id
    }
    fn set_registrant(c: &mut SecretConsumer, project: String) {
        c.project_id = project;
    }
    fn same(a: &SecretConsumer, b: &SecretConsumer) -> bool {
        a.service == b.service
            && a.resource_type == b.resource_type
            && a.resource_id == b.resource_id
    }
}

impl Consumed for SecretContainer {
    type Consumer = ContainerConsumer;
    const CONSUMER: &'static str = "ContainerConsumer";
    fn consumers(&self) -> &Vec<ContainerConsumer> {
        &self.consumers
    }
    fn consumers_mut(&mut self) -> &mut Vec<ContainerConsumer> {
        &mut self.consumers
    }
    fn registrant(c: &ContainerConsumer) -> &str {
        &c.project_id
    }
    fn set_registrant(c: &mut ContainerConsumer, project: String) {
        c.project_id = project;
    }
    fn same(a: &ContainerConsumer, b: &ContainerConsumer) -> bool {
        a.name == b.name && a.url == b.url
    }
}

/// Registers `consumer` on object `id` for the caller's project
/// (idempotent); the object after.
pub fn add_consumer<G: Consumed>(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: Uuid,
    mut consumer: G::Consumer,
) -> ServiceResult<G> {
    let op = format!("{} creation", G::CONSUMER);
    let mut o = (*guarded::<G>(ctx, s, id, &consumer_rule::<G>("post"), &op)?).clone();
    let project = ctx.caller.project_id.clone().unwrap_or_default();
    if o.consumers().iter().any(|c| G::same(c, &consumer)) {
        return Ok(o);
    }
    let registered: Vec<&str> = o.consumers().iter().map(G::registrant).collect();
    if !consumer_room(&registered, o.project(), &project) {
        return Err(quota_reached(G::CONSUMER));
    }
    G::set_registrant(&mut consumer, project);
    o.consumers_mut().push(consumer);
    o.touch(now());
    s.put(o.clone())?;
    Ok(o)
}

/// Removes the registration `key` names from object `id` (only its
/// registrant's project or the object's may); the object after.
pub fn remove_consumer<G: Consumed>(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: Uuid,
    key: &G::Consumer,
) -> ServiceResult<G> {
    let op = format!("{} deletion", G::CONSUMER);
    let mut o = (*guarded::<G>(ctx, s, id, &consumer_rule::<G>("delete"), &op)?).clone();
    let Some(at) = o.consumers().iter().position(|c| G::same(c, key)) else {
        return Err(ServiceError::NotFound("Consumer not found.".into()));
    };
    if !may_remove(ctx, G::registrant(&o.consumers()[at]), o.project()) {
        return Err(not_consumer_creator());
    }
    o.consumers_mut().remove(at);
    o.touch(now());
    s.put(o.clone())?;
    Ok(o)
}

/// Object `id`, for listing its consumers.
pub fn consumers_of<G: Consumed>(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<Arc<G>> {
    let op = format!("{}s(s) retrieval", G::CONSUMER);
    guarded::<G>(ctx, s, id, &consumer_rule::<G>("get"), &op)
}
