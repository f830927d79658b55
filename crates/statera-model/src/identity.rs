//! Identity: who is calling ([`Caller`]), and the objects of the built-in
//! Keystone v3 subset as the store keeps them.
//!
//! Ids are Keystone's: 32 lowercase hex digits (a UUID without hyphens), except
//! the `default` domain's. Names are unique per domain (users, projects,
//! groups) or per domain-or-global (roles), as in Keystone.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The identity a request runs as, however it was authenticated (a built-in
/// token, an external Keystone's token, or the `noauth` headers). Policy
/// decisions read nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub user_domain_id: Option<String>,
    /// The project a project-scoped token is for.
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_id: Option<String>,
    /// The domain a domain-scoped token is for.
    pub domain_id: Option<String>,
    /// `Some("all")` for a system-scoped token.
    pub system_scope: Option<String>,
    /// Role names, lowercase, effective on the scope (implied roles included).
    pub roles: Vec<String>,
    /// Keystone's `is_admin_project` (the cloud admin project).
    pub is_admin_project: bool,
    /// The token's audit id, when a token authenticated the call.
    pub audit_id: Option<String>,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// The project id, or "" when the call is not project-scoped.
    pub fn project(&self) -> &str {
        self.project_id.as_deref().unwrap_or("")
    }
}

/// A new Keystone-style id: 32 lowercase hex digits.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The domain every deployment has (Keystone's `default`).
pub const DEFAULT_DOMAIN_ID: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    /// The parent project, or the domain for a top-level project (Keystone).
    pub parent_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub enabled: bool,
    /// A PHC string (argon2id); `None` = no password (cannot log in with one).
    pub password_hash: Option<String>,
    pub default_project_id: Option<String>,
    #[serde(default)]
    pub description: String,
    pub email: Option<String>,
    /// Anything else the client set (Keystone keeps extra attributes).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    pub password_expires_at: Option<Timestamp>,
    /// Consecutive failed password authentications (lockout).
    #[serde(default)]
    pub failed_auth_count: u32,
    pub last_failed_auth_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    #[serde(default)]
    pub description: String,
    /// Member user ids.
    #[serde(default)]
    pub members: Vec<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    /// Stored as given; matched case-insensitively (Keystone's roles are).
    pub name: String,
    /// `None` for a global role.
    pub domain_id: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Role ids this role implies (Keystone's implied roles: admin ⇒ member ⇒ reader).
    #[serde(default)]
    pub implies: Vec<String>,
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    User(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentTarget {
    Project(String),
    Domain(String),
    /// The system (`all`).
    System(String),
}

/// A role given to a user or group on a project, a domain or the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// Derived from the other fields ([`RoleAssignment::key_for`]): one row per grant.
    pub id: String,
    pub actor: Actor,
    pub target: AssignmentTarget,
    pub role_id: String,
    /// Inherited to the target domain's (or project's) sub-projects.
    #[serde(default)]
    pub inherited: bool,
}

impl RoleAssignment {
    pub fn key_for(
        actor: &Actor,
        target: &AssignmentTarget,
        role_id: &str,
        inherited: bool,
    ) -> String {
        let (a, aid) = match actor {
            Actor::User(id) => ("u", id),
            Actor::Group(id) => ("g", id),
        };
        let (t, tid) = match target {
            AssignmentTarget::Project(id) => ("p", id),
            AssignmentTarget::Domain(id) => ("d", id),
            AssignmentTarget::System(id) => ("s", id),
        };
        format!(
            "{a}:{aid}/{t}:{tid}/{role_id}{}",
            if inherited { "/i" } else { "" }
        )
    }

    pub fn new(actor: Actor, target: AssignmentTarget, role_id: String, inherited: bool) -> Self {
        RoleAssignment {
            id: Self::key_for(&actor, &target, &role_id, inherited),
            actor,
            target,
            role_id,
            inherited,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationCredential {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub user_id: String,
    pub project_id: String,
    /// A PHC string of the secret.
    pub secret_hash: String,
    /// Role ids delegated (a subset of the user's on the project at creation).
    pub role_ids: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// May create further application credentials and trusts.
    #[serde(default)]
    pub unrestricted: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogService {
    pub id: String,
    /// The service type (`load-balancer`, `network`, `identity`, `key-manager`).
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEndpoint {
    pub id: String,
    pub service_id: String,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    pub url: String,
    pub region_id: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub parent_region_id: Option<String>,
}

/// A revocation: tokens matching it and issued at or before `issued_before`
/// are refused. Kept until the longest-lived token it can match has expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    pub id: String,
    /// One token (and the tokens rescoped from it share its audit chain).
    pub audit_id: Option<String>,
    /// Every token of a user (password change, user disabled or deleted).
    pub user_id: Option<String>,
    /// Every token scoped to a project (project disabled or deleted).
    pub project_id: Option<String>,
    /// Every token scoped to a domain, or of its users.
    pub domain_id: Option<String>,
    /// Every token authenticated with this application credential.
    pub application_credential_id: Option<String>,
    pub issued_before: Timestamp,
    /// After this no token it can match is valid anyway: the row may go.
    pub expires_at: Timestamp,
}
