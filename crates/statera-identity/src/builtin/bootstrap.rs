//! The first identity objects, as `keystone-manage bootstrap` makes them: the
//! `default` domain, the `admin` and `service` projects, the `admin` user with
//! the `admin` role on the admin project and on the system, the default roles
//! (admin ⇒ member ⇒ reader), Octavia's `load-balancer_*` roles, `service`,
//! and the catalog (identity, load-balancer, network in `RegionOne`).
//! The admin user gets Keystone's user option
//! `ignore_lockout_failure_attempts: true`, so that nobody can lock the cloud
//! admin out by guessing its password; an explicit `false` set since is kept.
//! Idempotent: what exists is kept, an existing admin keeps its password
//! unless one is given, endpoints take the given public URL.

use crate::builtin::lockout::IGNORE_LOCKOUT;
use crate::password;
use statera_model::identity::*;
use statera_store::{Store, StoreError, Txn};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const REGION: &str = "RegionOne";
pub const ADMIN: &str = "admin";

/// The roles bootstrap makes, with the roles each implies.
pub const ROLES: &[(&str, &[&str])] = &[
    ("admin", &["member"]),
    ("member", &["reader"]),
    ("reader", &[]),
    ("load-balancer_observer", &[]),
    ("load-balancer_global_observer", &[]),
    ("load-balancer_member", &[]),
    ("load-balancer_quota_admin", &[]),
    ("load-balancer_admin", &[]),
    ("service", &[]),
];

/// The catalog: (service type, service name, path after the public URL).
pub const SERVICES: &[(&str, &str, &str)] = &[
    ("identity", "keystone", "/v3"),
    ("load-balancer", "octavia", ""),
    ("network", "neutron", ""),
    ("key-manager", "barbican", "/key-manager"),
];

/// The catalog services this Statera serves that the store's catalog lacks
/// (a store bootstrapped by an older Statera), added with their public
/// endpoint; existing services and endpoints are left as they are. Returns
/// the types added.
pub async fn add_missing_services(
    store: &Store,
    public_url: &str,
) -> Result<Vec<String>, StoreError> {
    let missing: Vec<&str> = {
        let state = store.snapshot();
        SERVICES
            .iter()
            .map(|(kind, _, _)| *kind)
            .filter(|kind| !state.catalog_services.iter().any(|s| s.kind == *kind))
            .collect()
    };
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let public_url = public_url.to_string();
    let added = missing.iter().map(|k| k.to_string()).collect();
    store
        .write(move |txn| ensure_catalog(txn, &public_url, false))
        .await?;
    Ok(added)
}

#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// The admin's password; `None` keeps an existing admin's, or makes a
    /// random one for a new admin.
    pub admin_password: Option<String>,
    /// Where clients reach this API (`http://127.0.0.1:9876`), no trailing slash.
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct BootstrapOutcome {
    pub admin_user_id: String,
    pub admin_project_id: String,
    /// Whether the admin user was created now.
    pub created_admin: bool,
    /// The password set now (given or generated), to be written to
    /// clouds.yaml; `None` when an existing admin kept its password.
    pub admin_password: Option<String>,
}

/// A new enabled user of `domain_id` (a fresh id, no failures recorded).
pub fn new_user(name: &str, domain_id: &str, password_hash: Option<String>) -> User {
    User {
        id: new_id(),
        name: name.to_string(),
        domain_id: domain_id.to_string(),
        enabled: true,
        password_hash,
        default_project_id: None,
        description: String::new(),
        email: None,
        extra: Default::default(),
        options: Default::default(),
        password_expires_at: None,
        failed_auth_count: 0,
        last_failed_auth_at: None,
        created_at: statera_model::now(),
    }
}

/// A new enabled top-level project of `domain_id` (a fresh id).
pub fn new_project(name: &str, domain_id: &str) -> Project {
    Project {
        id: new_id(),
        name: name.to_string(),
        domain_id: domain_id.to_string(),
        description: String::new(),
        enabled: true,
        parent_id: Some(domain_id.to_string()),
        tags: Vec::new(),
        options: Default::default(),
        created_at: statera_model::now(),
    }
}

fn ensure_domain(txn: &mut Txn) -> Result<(), StoreError> {
    if txn
        .state()
        .domains
        .get(&DEFAULT_DOMAIN_ID.to_string())
        .is_none()
    {
        txn.put(Domain {
            id: DEFAULT_DOMAIN_ID.to_string(),
            name: "Default".to_string(),
            description: "The default domain".to_string(),
            enabled: true,
            tags: Vec::new(),
            options: Default::default(),
            created_at: statera_model::now(),
        })?;
    }
    Ok(())
}

fn ensure_project(txn: &mut Txn, name: &str) -> Result<String, StoreError> {
    if let Some(p) = txn
        .state()
        .projects
        .iter()
        .find(|p| p.name == name && p.domain_id == DEFAULT_DOMAIN_ID)
    {
        return Ok(p.id.clone());
    }
    let project = Project {
        description: format!("Bootstrap project: {name}"),
        ..new_project(name, DEFAULT_DOMAIN_ID)
    };
    let id = project.id.clone();
    txn.put(project)?;
    Ok(id)
}

fn role_id(txn: &Txn, name: &str) -> Option<String> {
    txn.state()
        .roles
        .iter()
        .find(|r| r.domain_id.is_none() && r.name.eq_ignore_ascii_case(name))
        .map(|r| r.id.clone())
}

fn ensure_roles(txn: &mut Txn) -> Result<(), StoreError> {
    for (name, _) in ROLES {
        if role_id(txn, name).is_none() {
            txn.put(Role {
                id: new_id(),
                name: name.to_string(),
                domain_id: None,
                description: String::new(),
                implies: Vec::new(),
                options: Default::default(),
                created_at: statera_model::now(),
            })?;
        }
    }
    for (name, implies) in ROLES {
        let id = role_id(txn, name).expect("made above");
        let mut role = (**txn.state().roles.get(&id).expect("made above")).clone();
        let before = role.implies.len();
        for implied in *implies {
            let implied = role_id(txn, implied).expect("made above");
            if !role.implies.contains(&implied) {
                role.implies.push(implied);
            }
        }
        if role.implies.len() != before {
            txn.put(role)?;
        }
    }
    Ok(())
}

fn ensure_assignment(
    txn: &mut Txn,
    user_id: &str,
    target: AssignmentTarget,
    role_id: String,
) -> Result<(), StoreError> {
    let a = RoleAssignment::new(Actor::User(user_id.to_string()), target, role_id, false);
    if txn.state().role_assignments.get(&a.id).is_none() {
        txn.put(a)?;
    }
    Ok(())
}

/// The catalog's region, services and public endpoints; with
/// `update_existing` an existing service's endpoint is moved to
/// `public_url`, without it only missing services are added.
fn ensure_catalog(
    txn: &mut Txn,
    public_url: &str,
    update_existing: bool,
) -> Result<(), StoreError> {
    if txn.state().regions.get(&REGION.to_string()).is_none() {
        txn.put(Region {
            id: REGION.to_string(),
            description: String::new(),
            parent_region_id: None,
        })?;
    }
    for (kind, name, path) in SERVICES {
        let found = txn
            .state()
            .catalog_services
            .iter()
            .find(|s| s.kind == *kind)
            .map(|s| s.id.clone());
        let service_id = match found {
            Some(_) if !update_existing => continue,
            Some(id) => id,
            None => {
                let id = new_id();
                txn.put(CatalogService {
                    id: id.clone(),
                    kind: kind.to_string(),
                    name: name.to_string(),
                    description: String::new(),
                    enabled: true,
                })?;
                id
            }
        };
        let url = format!("{public_url}{path}");
        let existing = txn
            .state()
            .catalog_endpoints
            .iter()
            .find(|e| {
                e.service_id == service_id
                    && e.interface == "public"
                    && e.region_id.as_deref() == Some(REGION)
            })
            .cloned();
        match existing {
            Some(e) if e.url == url => {}
            Some(e) => {
                let mut e = (*e).clone();
                e.url = url;
                txn.put(e)?;
            }
            None => txn.put(CatalogEndpoint {
                id: new_id(),
                service_id,
                interface: "public".to_string(),
                url,
                region_id: Some(REGION.to_string()),
                enabled: true,
            })?,
        }
    }
    Ok(())
}

/// Whether the store has no user yet (a fresh deployment).
pub fn is_fresh(store: &Store) -> bool {
    store.snapshot().users.is_empty()
}

pub async fn bootstrap(
    store: &Store,
    opts: &BootstrapOptions,
) -> Result<BootstrapOutcome, StoreError> {
    let admin_exists = store
        .snapshot()
        .users
        .iter()
        .any(|u| u.name == ADMIN && u.domain_id == DEFAULT_DOMAIN_ID);
    let password = match (&opts.admin_password, admin_exists) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(password::random_secret(24)),
        (None, true) => None,
    };
    let hash = match &password {
        Some(p) => {
            let p = p.clone();
            Some(
                tokio::task::spawn_blocking(move || password::hash(&p))
                    .await
                    .map_err(|e| StoreError::Unsettled {
                        reason: format!("hashing the admin password failed: {e}"),
                    })?,
            )
        }
        None => None,
    };
    let public_url = opts.public_url.trim_end_matches('/').to_string();
    store
        .write(|txn| {
            ensure_domain(txn)?;
            let admin_project = ensure_project(txn, ADMIN)?;
            ensure_project(txn, "service")?;
            ensure_roles(txn)?;
            let existing = txn
                .state()
                .users
                .iter()
                .find(|u| u.name == ADMIN && u.domain_id == DEFAULT_DOMAIN_ID)
                .cloned();
            let (user_id, created) = match existing {
                Some(u) => {
                    let unexempt = !u.options.contains_key(IGNORE_LOCKOUT);
                    if hash.is_some() || unexempt {
                        let mut u = (*u).clone();
                        if let Some(h) = &hash {
                            // A new password also unlocks and re-enables.
                            u.password_hash = Some(h.clone());
                            crate::builtin::lockout::unlock(&mut u);
                            u.enabled = true;
                        }
                        if unexempt {
                            u.options.insert(IGNORE_LOCKOUT.into(), true.into());
                        }
                        txn.put(u)?;
                    }
                    (u.id.clone(), false)
                }
                None => {
                    let mut user = User {
                        default_project_id: Some(admin_project.clone()),
                        ..new_user(ADMIN, DEFAULT_DOMAIN_ID, hash.clone())
                    };
                    user.options.insert(IGNORE_LOCKOUT.into(), true.into());
                    let id = user.id.clone();
                    txn.put(user)?;
                    (id, true)
                }
            };
            let admin_role = role_id(txn, "admin").expect("made above");
            ensure_assignment(
                txn,
                &user_id,
                AssignmentTarget::Project(admin_project.clone()),
                admin_role.clone(),
            )?;
            ensure_assignment(
                txn,
                &user_id,
                AssignmentTarget::System("all".to_string()),
                admin_role,
            )?;
            ensure_catalog(txn, &public_url, true)?;
            Ok(BootstrapOutcome {
                admin_user_id: user_id,
                admin_project_id: admin_project,
                created_admin: created,
                admin_password: password.clone(),
            })
        })
        .await
}

/// Double-quoted YAML scalar (passwords here are url-safe characters; any
/// other character is escaped anyway).
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Write `path` (mode 0600, atomically): cloud `statera` with password auth
/// as the admin.
pub fn write_clouds_yaml(path: &Path, auth_url: &str, password: &str) -> std::io::Result<()> {
    let text = format!(
        "# Written by statera: the admin's credentials (keep this file private).\n\
         clouds:\n  statera:\n    auth_type: password\n    auth:\n      auth_url: {}\n      \
         username: admin\n      password: {}\n      project_name: admin\n      \
         user_domain_name: Default\n      project_domain_name: Default\n    \
         region_name: {REGION}\n    identity_api_version: 3\n",
        yaml_str(auth_url),
        yaml_str(password)
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".clouds.yaml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
