//! The built-in Keystone's tokens against a real store: issue, validate,
//! tamper, expiry, key rotation, revocation, role and enablement changes,
//! application credentials, lockout.

use statera_identity::builtin::bootstrap::{
    BootstrapOptions, add_missing_services, bootstrap, new_project, new_user,
};
use statera_identity::builtin::{
    AuthRequest, Builtin, BuiltinSettings, DomainRef, IssueError, Method, ProjectRef, ScopeRequest,
    UserRef, key_repository, lockout,
};
use statera_identity::password;
use statera_model::identity::*;
use statera_store::{Durability, Store};
use std::sync::Arc;

#[path = "../../statera-store/tests/support/tmpfs.rs"]
mod tmpfs;

struct Env {
    _dir: Option<tempfile::TempDir>,
    data: std::path::PathBuf,
    store: Arc<Store>,
    auth: Builtin,
    admin_password: String,
}

async fn env_with(settings: BuiltinSettings) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut e = env_at(dir.path(), settings).await;
    e._dir = Some(dir);
    e
}

/// A bootstrapped store and its built-in Keystone under `root`.
async fn env_at(root: &std::path::Path, settings: BuiltinSettings) -> Env {
    let data = root.join("data");
    let store = Arc::new(Store::open(&data, Durability::Normal).await.unwrap());
    let out = bootstrap(
        &store,
        &BootstrapOptions {
            admin_password: Some("s3cret-admin".into()),
            public_url: "http://127.0.0.1:1".into(),
        },
    )
    .await
    .unwrap();
    assert!(out.created_admin);
    let auth = Builtin::new(store.clone(), key_repository(&data), settings).unwrap();
    Env {
        _dir: None,
        data,
        store,
        auth,
        admin_password: "s3cret-admin".into(),
    }
}

async fn env() -> Env {
    env_with(BuiltinSettings::default()).await
}

fn by_name(user: &str) -> UserRef {
    UserRef::Name {
        name: user.into(),
        domain: DomainRef::Name("Default".into()),
    }
}

fn password(user: &str, pw: &str, scope: ScopeRequest) -> AuthRequest {
    AuthRequest {
        method: Method::Password {
            user: by_name(user),
            password: pw.into(),
        },
        scope,
    }
}

fn project(name: &str) -> ScopeRequest {
    ScopeRequest::Project(ProjectRef::Name {
        name: name.into(),
        domain: DomainRef::Id(DEFAULT_DOMAIN_ID.into()),
    })
}

fn role_id(store: &Store, name: &str) -> String {
    store
        .snapshot()
        .roles
        .iter()
        .find(|r| r.name == name)
        .unwrap()
        .id
        .clone()
}

/// A user `name` (password `pw`) and a project `name-p` where it has `role`.
async fn user_with_role(store: &Store, name: &str, pw: &str, role: &str) -> (String, String) {
    let rid = role_id(store, role);
    let user = new_user(name, DEFAULT_DOMAIN_ID, Some(password::hash(pw)));
    let project = new_project(&format!("{name}-p"), DEFAULT_DOMAIN_ID);
    let (uid, pid) = (user.id.clone(), project.id.clone());
    store
        .write(|txn| {
            txn.put(user)?;
            txn.put(project)?;
            txn.put(RoleAssignment::new(
                Actor::User(uid.clone()),
                AssignmentTarget::Project(pid.clone()),
                rid,
                false,
            ))
        })
        .await
        .unwrap();
    (uid, pid)
}

#[tokio::test]
async fn a_password_token_roundtrips_with_implied_roles_and_survives_a_restart() {
    let e = env().await;
    let (token, info) = e
        .auth
        .issue(password("admin", &e.admin_password, project("admin")))
        .await
        .unwrap();
    let caller = e.auth.validate(&token).unwrap().caller();
    assert_eq!(
        caller.project_id,
        info.project.as_ref().map(|p| p.id.clone())
    );
    assert_eq!(caller.roles, vec!["admin", "member", "reader"]);
    assert!(caller.is_admin_project);
    assert_eq!(caller.audit_id.as_ref().unwrap().len(), 22);
    assert!(token.len() < 200, "{}", token.len());
    // Another authenticator over the same keys (a restart) accepts it.
    let again = Builtin::new(
        e.store.clone(),
        key_repository(&e.data),
        BuiltinSettings::default(),
    )
    .unwrap();
    assert_eq!(again.validate(&token).unwrap().caller(), caller);
    // No scope asked: the admin's default project.
    let (_, info) = e
        .auth
        .issue(password("admin", &e.admin_password, ScopeRequest::Default))
        .await
        .unwrap();
    assert_eq!(info.project.unwrap().name, "admin");
    // Unscoped, domain, system.
    let (t, info) = e
        .auth
        .issue(password("admin", &e.admin_password, ScopeRequest::Unscoped))
        .await
        .unwrap();
    assert!(info.roles.is_empty() && info.project.is_none());
    assert!(e.auth.validate(&t).unwrap().caller().project_id.is_none());
    let (_, info) = e
        .auth
        .issue(password("admin", &e.admin_password, ScopeRequest::System))
        .await
        .unwrap();
    assert_eq!(info.caller().system_scope.as_deref(), Some("all"));
    // The admin has no role on the default domain: refused.
    let r = e
        .auth
        .issue(password(
            "admin",
            &e.admin_password,
            ScopeRequest::Domain(DomainRef::Name("Default".into())),
        ))
        .await;
    assert!(matches!(r, Err(IssueError::Unauthorized(_))), "{r:?}");
}

#[tokio::test]
async fn a_tampered_foreign_or_expired_token_is_refused() {
    let e = env_with(BuiltinSettings {
        token_expiration_s: 2,
        ..BuiltinSettings::default()
    })
    .await;
    let (token, _) = e
        .auth
        .issue(password("admin", &e.admin_password, project("admin")))
        .await
        .unwrap();
    assert!(e.auth.validate(&token).is_ok());
    let mut chars: Vec<char> = token.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert!(e.auth.validate(&tampered).is_err());
    // Signed by another deployment's keys.
    let other = env().await;
    let (foreign, _) = other
        .auth
        .issue(password("admin", &other.admin_password, project("admin")))
        .await
        .unwrap();
    assert!(e.auth.validate(&foreign).unwrap_err().contains("signature"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(e.auth.validate(&token).unwrap_err().contains("expired"));
}

#[tokio::test]
async fn rotation_keeps_old_tokens_until_their_key_is_dropped() {
    let e = env().await;
    let issue = || {
        e.auth
            .issue(password("admin", &e.admin_password, project("admin")))
    };
    let (t1, _) = issue().await.unwrap();
    let repo = key_repository(&e.data);
    assert_eq!(repo.rotate(3).unwrap(), vec![2, 1, 0]);
    // The running authenticator sees the rotation within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (t2, _) = issue().await.unwrap();
    assert!(e.auth.validate(&t1).is_ok(), "key 1 is still a secondary");
    assert!(e.auth.validate(&t2).is_ok());
    assert_eq!(repo.rotate(3).unwrap(), vec![3, 2, 0]);
    let restarted = Builtin::new(e.store.clone(), repo, BuiltinSettings::default()).unwrap();
    assert!(restarted.validate(&t1).is_err(), "key 1 was dropped");
    assert!(restarted.validate(&t2).is_ok(), "key 2 is a secondary now");
}

#[tokio::test]
async fn revocation_covers_the_token_and_its_rescoped_children_only() {
    let e = env().await;
    let (unscoped, _) = e
        .auth
        .issue(password("admin", &e.admin_password, ScopeRequest::Unscoped))
        .await
        .unwrap();
    let rescope = |t: String| AuthRequest {
        method: Method::Token { token: t },
        scope: project("admin"),
    };
    let (child, info) = e.auth.issue(rescope(unscoped.clone())).await.unwrap();
    assert_eq!(info.methods(), vec!["password", "token"]);
    let parent_audit = e.auth.validate(&unscoped).unwrap().audit_ids()[0].clone();
    assert_eq!(info.audit_ids()[1], parent_audit, "the audit chain is kept");
    let (other, _) = e
        .auth
        .issue(password("admin", &e.admin_password, project("admin")))
        .await
        .unwrap();
    e.auth
        .revoke(&e.auth.validate(&unscoped).unwrap())
        .await
        .unwrap();
    assert!(e.auth.validate(&unscoped).unwrap_err().contains("revoked"));
    assert!(e.auth.validate(&child).unwrap_err().contains("revoked"));
    assert!(e.auth.validate(&other).is_ok());
    assert!(e.auth.issue(rescope(unscoped)).await.is_err());
}

#[tokio::test]
async fn removed_roles_and_disabled_users_or_projects_take_effect_at_once() {
    let e = env().await;
    let (uid, pid) = user_with_role(&e.store, "alice", "pw-alice", "member").await;
    let (token, _) = e
        .auth
        .issue(password("alice", "pw-alice", project("alice-p")))
        .await
        .unwrap();
    assert_eq!(
        e.auth.validate(&token).unwrap().caller().roles,
        vec!["member", "reader"]
    );
    // A group's role and a domain-inherited role add up.
    let gid = new_id();
    let observer = role_id(&e.store, "load-balancer_observer");
    let quota = role_id(&e.store, "load-balancer_quota_admin");
    e.store
        .write(|txn| {
            txn.put(Group {
                id: gid.clone(),
                name: "g".into(),
                domain_id: DEFAULT_DOMAIN_ID.into(),
                description: String::new(),
                members: vec![uid.clone()],
                created_at: statera_model::now(),
            })?;
            txn.put(RoleAssignment::new(
                Actor::Group(gid.clone()),
                AssignmentTarget::Project(pid.clone()),
                observer,
                false,
            ))?;
            txn.put(RoleAssignment::new(
                Actor::User(uid.clone()),
                AssignmentTarget::Domain(DEFAULT_DOMAIN_ID.into()),
                quota,
                true,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        e.auth.validate(&token).unwrap().caller().roles,
        vec![
            "load-balancer_observer",
            "load-balancer_quota_admin",
            "member",
            "reader"
        ]
    );
    // Every role gone: the project-scoped token is refused.
    let keys: Vec<String> = e
        .store
        .snapshot()
        .role_assignments
        .iter()
        .filter(|a| a.actor == Actor::User(uid.clone()) || a.actor == Actor::Group(gid.clone()))
        .map(|a| a.id.clone())
        .collect();
    e.store
        .write(|txn| {
            for k in &keys {
                txn.delete::<RoleAssignment>(k);
            }
            Ok::<_, statera_store::StoreError>(())
        })
        .await
        .unwrap();
    assert!(e.auth.validate(&token).unwrap_err().contains("no role"));
    // The admin's token: refused once its project, then its user, is disabled.
    let (admin, _) = e
        .auth
        .issue(password("admin", &e.admin_password, project("admin")))
        .await
        .unwrap();
    let admin_project = e.auth.validate(&admin).unwrap().project.unwrap();
    let mut p = (*admin_project).clone();
    p.enabled = false;
    e.store.write(|txn| txn.put(p)).await.unwrap();
    assert!(e.auth.validate(&admin).unwrap_err().contains("disabled"));
    let (unscoped, _) = e
        .auth
        .issue(password("admin", &e.admin_password, ScopeRequest::Unscoped))
        .await
        .unwrap();
    let admin_user = e.auth.validate(&unscoped).unwrap().user;
    let mut u = (*admin_user).clone();
    u.enabled = false;
    e.store.write(|txn| txn.put(u)).await.unwrap();
    assert!(e.auth.validate(&unscoped).unwrap_err().contains("disabled"));
}

#[tokio::test]
async fn an_application_credential_carries_its_delegated_roles_only() {
    let e = env().await;
    let (uid, pid) = user_with_role(&e.store, "bob", "pw-bob", "member").await;
    let reader = role_id(&e.store, "reader");
    let cred_id = new_id();
    let secret_hash = password::hash("app-secret");
    e.store
        .write(|txn| {
            txn.put(ApplicationCredential {
                id: cred_id.clone(),
                name: "ci".into(),
                description: String::new(),
                user_id: uid.clone(),
                project_id: pid.clone(),
                secret_hash,
                role_ids: vec![reader],
                expires_at: None,
                unrestricted: false,
                created_at: statera_model::now(),
            })
        })
        .await
        .unwrap();
    let by_id = |secret: &str| AuthRequest {
        method: Method::ApplicationCredential {
            id: Some(cred_id.clone()),
            name: None,
            user: None,
            secret: secret.into(),
        },
        scope: ScopeRequest::Default,
    };
    assert!(matches!(
        e.auth.issue(by_id("wrong")).await,
        Err(IssueError::Unauthorized(_))
    ));
    let (token, info) = e.auth.issue(by_id("app-secret")).await.unwrap();
    assert_eq!(info.methods(), vec!["application_credential"]);
    let caller = e.auth.validate(&token).unwrap().caller();
    assert_eq!(caller.roles, vec!["reader"]);
    assert_eq!(caller.project_id.as_deref(), Some(pid.as_str()));
    // By name and user.
    let (_, info) = e
        .auth
        .issue(AuthRequest {
            method: Method::ApplicationCredential {
                id: None,
                name: Some("ci".into()),
                user: Some(UserRef::Id(uid.clone())),
                secret: "app-secret".into(),
            },
            scope: ScopeRequest::Default,
        })
        .await
        .unwrap();
    assert_eq!(info.application_credential.unwrap().id, cred_id);
    // Not rescopable; gone with the credential.
    assert!(
        e.auth
            .issue(AuthRequest {
                method: Method::Token {
                    token: token.clone()
                },
                scope: ScopeRequest::Unscoped,
            })
            .await
            .is_err()
    );
    e.store
        .write(|txn| {
            txn.delete::<ApplicationCredential>(&cred_id);
            Ok::<_, statera_store::StoreError>(())
        })
        .await
        .unwrap();
    assert!(e.auth.validate(&token).is_err());
}

#[tokio::test]
async fn lockout_after_repeated_failures_refuses_even_the_right_password() {
    let e = env_with(BuiltinSettings {
        lockout_failure_attempts: 3,
        ..BuiltinSettings::default()
    })
    .await;
    let (uid, _) = user_with_role(&e.store, "carol", "pw-carol", "member").await;
    // An unknown user and a wrong password fail alike.
    let unknown = e
        .auth
        .issue(password("nobody", "x", ScopeRequest::Unscoped))
        .await
        .unwrap_err();
    let wrong = e
        .auth
        .issue(password("carol", "x", ScopeRequest::Unscoped))
        .await
        .unwrap_err();
    assert_eq!(unknown.to_string(), wrong.to_string());
    // Failures are recorded after the answer: wait for each (bounded).
    let failures = || {
        e.store
            .snapshot()
            .users
            .get(&uid)
            .unwrap()
            .failed_auth_count
    };
    let wait_for = |n: u32| async move {
        for _ in 0..200 {
            if failures() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("failure {n} not recorded");
    };
    wait_for(1).await;
    // A success in between resets the count.
    e.auth
        .issue(password("carol", "pw-carol", ScopeRequest::Unscoped))
        .await
        .unwrap();
    assert_eq!(failures(), 0);
    for n in 1..=3 {
        assert!(
            e.auth
                .issue(password("carol", "bad", ScopeRequest::Unscoped))
                .await
                .is_err()
        );
        wait_for(n).await;
    }
    let locked = e
        .auth
        .issue(password("carol", "pw-carol", ScopeRequest::Unscoped))
        .await
        .unwrap_err();
    assert_eq!(locked.to_string(), wrong.to_string());
    assert!(matches!(locked, IssueError::Unauthorized(ref why) if why.contains("locked")));
    assert!(
        e.store
            .snapshot()
            .users
            .get(&uid)
            .unwrap()
            .last_failed_auth_at
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_the_store_cannot_record_still_counts_toward_lockout() {
    // Before: a failure whose write the store refused (a full disk) was
    // lost, so every guess made while the disk was full was free.
    let fs = match tmpfs::Tmpfs::mount("8M") {
        Ok(fs) => fs,
        Err(why) => return tmpfs::skip_or_fail(&why),
    };
    let e = env_at(
        &fs.dir,
        BuiltinSettings {
            lockout_failure_attempts: 3,
            lockout_duration_s: 120,
            ..BuiltinSettings::default()
        },
    )
    .await;
    let (uid, _) = user_with_role(&e.store, "carol", "pw-carol", "member").await;
    let failures = || {
        e.store
            .snapshot()
            .users
            .get(&uid)
            .unwrap()
            .failed_auth_count
    };
    let filler = fs.fill();
    for _ in 0..3 {
        let r = e
            .auth
            .issue(password("carol", "x", ScopeRequest::Unscoped))
            .await;
        assert!(matches!(r, Err(IssueError::Unauthorized(_))), "{r:?}");
    }
    // Each failure's write has been tried (its reservation holds the next
    // attempt back until then) and refused.
    let locked = e
        .auth
        .issue(password("carol", "pw-carol", ScopeRequest::Unscoped))
        .await;
    assert!(
        matches!(&locked, Err(IssueError::Unauthorized(why)) if why.contains("locked")),
        "{locked:?}"
    );
    assert_eq!(
        failures(),
        0,
        "the disk was full, yet a failure was written"
    );
    // Space again: the retried writes land, and the lock is the store's.
    std::fs::remove_file(&filler).unwrap();
    for _ in 0..100 {
        if failures() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(failures(), 3);
    let locked = e
        .auth
        .issue(password("carol", "pw-carol", ScopeRequest::Unscoped))
        .await;
    assert!(
        matches!(locked, Err(IssueError::Unauthorized(_))),
        "{locked:?}"
    );

    // An administrator's unlock forgets the unwritten failures too, and
    // their retries do not bring them back once space returns.
    let (dave, _) = user_with_role(&e.store, "dave", "pw-dave", "member").await;
    let filler = fs.fill();
    for _ in 0..3 {
        let r = e
            .auth
            .issue(password("dave", "x", ScopeRequest::Unscoped))
            .await;
        assert!(matches!(r, Err(IssueError::Unauthorized(_))), "{r:?}");
    }
    let r = e
        .auth
        .issue(password("dave", "pw-dave", ScopeRequest::Unscoped))
        .await;
    assert!(matches!(r, Err(IssueError::Unauthorized(_))), "{r:?}");
    e.auth.forget_failures(&dave);
    e.auth
        .issue(password("dave", "pw-dave", ScopeRequest::Unscoped))
        .await
        .unwrap();
    std::fs::remove_file(&filler).unwrap();
    // The retries (after 0.25, 0.5, 1 s) have had their turn.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let dave_failures = e
        .store
        .snapshot()
        .users
        .get(&dave)
        .unwrap()
        .failed_auth_count;
    assert_eq!(dave_failures, 0, "cleared failures were written back");
}

/// A store bootstrapped before a service existed gets it at the next start,
/// and nothing else changes.
#[tokio::test]
async fn missing_catalog_services_are_added_once() {
    let e = env().await;
    let km = e
        .store
        .snapshot()
        .catalog_services
        .iter()
        .find(|s| s.kind == "key-manager")
        .map(|s| s.id.clone())
        .expect("bootstrap lists the key manager");
    e.store
        .write(|txn| {
            let eps: Vec<String> = txn
                .state()
                .catalog_endpoints
                .iter()
                .filter(|ep| ep.service_id == km)
                .map(|ep| ep.id.clone())
                .collect();
            for ep in &eps {
                txn.delete::<CatalogEndpoint>(ep);
            }
            txn.delete::<CatalogService>(&km);
            Ok::<_, statera_store::StoreError>(())
        })
        .await
        .unwrap();
    let before = e.store.snapshot();
    let added = add_missing_services(&e.store, "http://lb.test:9876")
        .await
        .unwrap();
    assert_eq!(added, ["key-manager"]);
    let after = e.store.snapshot();
    assert_eq!(
        after.catalog_services.len(),
        before.catalog_services.len() + 1
    );
    let url: Vec<String> = after
        .catalog_endpoints
        .iter()
        .filter(|ep| ep.url.ends_with("/key-manager"))
        .map(|ep| ep.url.clone())
        .collect();
    assert_eq!(url, ["http://lb.test:9876/key-manager"]);
    assert!(
        add_missing_services(&e.store, "http://lb.test:9876")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_keeps_the_password_unless_given() {
    let e = env().await;
    let before = e.store.snapshot();
    let out = bootstrap(
        &e.store,
        &BootstrapOptions {
            admin_password: None,
            public_url: "http://127.0.0.1:1".into(),
        },
    )
    .await
    .unwrap();
    assert!(!out.created_admin && out.admin_password.is_none());
    let after = e.store.snapshot();
    assert_eq!(before.users.len(), after.users.len());
    assert_eq!(before.roles.len(), after.roles.len());
    assert_eq!(before.role_assignments.len(), after.role_assignments.len());
    assert_eq!(after.catalog_endpoints.len(), 4);
    assert!(
        e.auth
            .issue(password("admin", &e.admin_password, project("admin")))
            .await
            .is_ok()
    );
    // A new password and a new public URL.
    bootstrap(
        &e.store,
        &BootstrapOptions {
            admin_password: Some("new-pw".into()),
            public_url: "http://127.0.0.1:2/".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        e.auth
            .issue(password("admin", &e.admin_password, project("admin")))
            .await
            .is_err()
    );
    assert!(
        e.auth
            .issue(password("admin", "new-pw", project("admin")))
            .await
            .is_ok()
    );
    let urls: Vec<String> = e
        .store
        .snapshot()
        .catalog_endpoints
        .iter()
        .map(|x| x.url.clone())
        .collect();
    assert_eq!(urls.len(), 4);
    assert!(
        urls.iter().all(|u| u.starts_with("http://127.0.0.1:2")),
        "{urls:?}"
    );
    assert!(urls.contains(&"http://127.0.0.1:2/v3".to_string()));
}

#[tokio::test]
async fn a_domain_role_named_admin_gives_no_admin_rights() {
    let e = env().await;
    let (uid, pid) = user_with_role(&e.store, "mallory", "pw-mallory", "reader").await;
    // A domain-specific role named `admin` (and one named `Admin`), the
    // second implying the global `member`, both assigned on the project.
    let member = role_id(&e.store, "member");
    let roles =
        [("admin", Vec::new()), ("Admin", vec![member.clone()])].map(|(name, implies)| Role {
            id: new_id(),
            name: name.into(),
            domain_id: Some(DEFAULT_DOMAIN_ID.into()),
            description: String::new(),
            implies,
            options: Default::default(),
            created_at: statera_model::now(),
        });
    let ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();
    e.store
        .write(|txn| {
            for (role, id) in roles.into_iter().zip(&ids) {
                txn.put(role)?;
                txn.put(RoleAssignment::new(
                    Actor::User(uid.clone()),
                    AssignmentTarget::Project(pid.clone()),
                    id.clone(),
                    false,
                ))?;
            }
            Ok::<(), statera_store::StoreError>(())
        })
        .await
        .unwrap();
    let (token, info) = e
        .auth
        .issue(password("mallory", "pw-mallory", project("mallory-p")))
        .await
        .unwrap();
    // Only the global roles: the one assigned and the one implied.
    let caller = e.auth.validate(&token).unwrap().caller();
    assert_eq!(caller.roles, vec!["member", "reader"]);
    assert!(info.roles.iter().all(|r| r.domain_id.is_none()));
}

/// Run `attempts` (user, password) logins at once on `auth`; the results in order.
async fn at_once(auth: &Arc<Builtin>, attempts: Vec<(&str, &str)>) -> Vec<Result<(), IssueError>> {
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(u, pw)| {
            let (auth, req) = (auth.clone(), password(u, pw, ScopeRequest::Unscoped));
            tokio::spawn(async move { auth.issue(req).await.map(|_| ()) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lockout_holds_under_concurrent_guesses() {
    let e = env().await;
    let limit = BuiltinSettings::default().lockout_failure_attempts;
    let auth = Arc::new(
        Builtin::new(
            e.store.clone(),
            key_repository(&e.data),
            BuiltinSettings::default(),
        )
        .unwrap(),
    );
    let (uid, _) = user_with_role(&e.store, "dave", "pw-dave", "member").await;
    let failures = || {
        e.store
            .snapshot()
            .users
            .get(&uid)
            .unwrap()
            .failed_auth_count
    };
    // Concurrent logins with the right password are not refused.
    let ok = at_once(&auth, vec![("dave", "pw-dave"); 10]).await;
    assert!(ok.iter().all(|r| r.is_ok()), "{ok:?}");
    // 39 wrong guesses at once, the right password last: refused, and only
    // `limit` passwords were really checked (each records one failure).
    let wrong = {
        let auth = auth.clone();
        tokio::spawn(async move { at_once(&auth, vec![("dave", "guess"); 39]).await })
    };
    // Let the 39 queue first (a password check takes far longer).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let right = at_once(&auth, vec![("dave", "pw-dave")]).await;
    let mut results = wrong.await.unwrap();
    results.extend(right);
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    let locked = results
        .iter()
        .filter(|r| matches!(r, Err(IssueError::Unauthorized(why)) if why.contains("locked")))
        .count();
    assert_eq!(locked, 40 - limit as usize, "{results:?}");
    for _ in 0..100 {
        if failures() >= limit {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(failures(), limit);
    assert!(
        auth.issue(password("dave", "pw-dave", ScopeRequest::Unscoped))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_bootstrap_admin_cannot_be_locked_out_but_other_users_can() {
    let e = env_with(BuiltinSettings {
        lockout_failure_attempts: 2,
        ..BuiltinSettings::default()
    })
    .await;
    let admin = |store: &Store| {
        store
            .snapshot()
            .users
            .iter()
            .find(|u| u.name == "admin")
            .unwrap()
            .clone()
    };
    assert_eq!(
        admin(&e.store).options.get(lockout::IGNORE_LOCKOUT),
        Some(&serde_json::Value::Bool(true))
    );
    for _ in 0..5 {
        assert!(
            e.auth
                .issue(password("admin", "guess", ScopeRequest::Unscoped))
                .await
                .is_err()
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        e.auth
            .issue(password("admin", &e.admin_password, project("admin")))
            .await
            .is_ok()
    );
    // Someone else with the option is exempt too; without it, locked.
    let (uid, _) = user_with_role(&e.store, "erin", "pw-erin", "member").await;
    for _ in 0..3 {
        let _ = e
            .auth
            .issue(password("erin", "guess", ScopeRequest::Unscoped))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = e
        .auth
        .issue(password("erin", "pw-erin", ScopeRequest::Unscoped))
        .await;
    assert!(
        matches!(r, Err(IssueError::Unauthorized(ref why)) if why.contains("locked")),
        "{r:?}"
    );
    e.store
        .write(|txn| {
            let mut u = (**txn.state().users.get(&uid).unwrap()).clone();
            u.options.insert(
                lockout::IGNORE_LOCKOUT.into(),
                serde_json::Value::Bool(true),
            );
            txn.put(u)
        })
        .await
        .unwrap();
    assert!(
        e.auth
            .issue(password("erin", "pw-erin", ScopeRequest::Unscoped))
            .await
            .is_ok()
    );
    // An admin made before the option existed gets it from a re-run bootstrap.
    let mut old = (*admin(&e.store)).clone();
    old.options.clear();
    e.store.write(|txn| txn.put(old)).await.unwrap();
    bootstrap(
        &e.store,
        &BootstrapOptions {
            admin_password: None,
            public_url: "http://127.0.0.1:1".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        admin(&e.store).options.get(lockout::IGNORE_LOCKOUT),
        Some(&serde_json::Value::Bool(true))
    );
}

#[tokio::test]
async fn validation_work_stays_flat_with_20k_revocations() {
    let e = env().await;
    let (token, info) = e
        .auth
        .issue(password("admin", &e.admin_password, project("admin")))
        .await
        .unwrap();
    let later = statera_model::now() + chrono::Duration::hours(1);
    let row = |audit: Option<String>, user: Option<String>| Revocation {
        id: new_id(),
        audit_id: audit,
        user_id: user,
        project_id: None,
        domain_id: None,
        application_credential_id: None,
        issued_before: statera_model::now(),
        expires_at: later,
    };
    // 20 000 revoked tokens of others, and one revocation of another user.
    e.store
        .write(|txn| {
            for i in 0..20_000 {
                txn.put(row(Some(format!("other-audit-{i}")), None))?;
            }
            txn.put(row(None, Some("someone-else".into())))
        })
        .await
        .unwrap();
    assert!(e.auth.validate(&token).is_ok()); // builds the index once
    let before = e.auth.revocation_comparisons();
    for _ in 0..100 {
        assert!(e.auth.validate(&token).is_ok());
    }
    let per_validation = (e.auth.revocation_comparisons() - before) / 100;
    // One lookup per audit id and the one non-audit row; not 20 000.
    assert!(per_validation <= 3, "{per_validation} rows per validation");
    // The index follows the table: a revocation of this token counts at once.
    e.auth.revoke(&info).await.unwrap();
    assert!(e.auth.validate(&token).unwrap_err().contains("revoked"));
}

#[tokio::test]
async fn revocations_of_one_user_are_bounded_per_minute() {
    use statera_identity::builtin::{MAX_REVOCATIONS_PER_MINUTE, RevokeError};
    let e = env().await;
    let (token, _) = e
        .auth
        .issue(password("admin", &e.admin_password, project("admin")))
        .await
        .unwrap();
    // Not across a minute boundary (the count is per minute).
    let s = chrono::Utc::now().timestamp() % 60;
    if s > 50 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - s) as u64)).await;
    }
    for i in 0..=MAX_REVOCATIONS_PER_MINUTE {
        // Tokens are cheap to mint by rescoping: the reason for the bound.
        let (_, info) = e
            .auth
            .issue(AuthRequest {
                method: Method::Token {
                    token: token.clone(),
                },
                scope: project("admin"),
            })
            .await
            .unwrap();
        let r = e.auth.revoke(&info).await;
        if i < MAX_REVOCATIONS_PER_MINUTE {
            r.unwrap();
        } else {
            assert!(
                matches!(r, Err(RevokeError::TooMany { retry_after_s }) if (1..=60).contains(&retry_after_s)),
                "{r:?}"
            );
        }
    }
    // The parent token itself is untouched (only rescoped children revoked).
    assert!(e.auth.validate(&token).is_ok());
}

#[tokio::test]
async fn forged_tokens_from_the_future_or_living_too_long_are_refused() {
    use statera_identity::builtin::token::{self, Payload, Scope};
    let e = env().await;
    let (good, info) = e
        .auth
        .issue(password("admin", &e.admin_password, project("admin")))
        .await
        .unwrap();
    // A token with padding or whitespace is another spelling: refused.
    assert!(e.auth.validate(&good).is_ok());
    assert!(e.auth.validate(&format!("{good}=")).is_err());
    assert!(e.auth.validate(&format!(" {good}")).is_err());
    let mut h = http::HeaderMap::new();
    h.insert("x-auth-token", format!("{good} ").parse().unwrap());
    use statera_identity::Authenticator;
    assert!(e.auth.authenticate(&h).await.is_err());
    // Signed with the deployment's own key (as a leaked key would allow).
    let keys = key_repository(&e.data).load().unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    let hour = 3_600_000_000i64;
    let forge = |issued_at: i64, expires_at: i64| {
        token::seal(
            keys.primary(),
            &Payload {
                issued_at,
                expires_at,
                audit_ids: vec![token::new_audit_id()],
                ..info.payload.clone()
            },
        )
    };
    assert!(matches!(info.payload.scope, Scope::Project(_)));
    // The same shape as an issued token passes (the forging is right) …
    assert!(e.auth.validate(&forge(now, now + hour)).is_ok());
    // … issued in the future (escapes revocations by issued_before): refused.
    let future = e.auth.validate(&forge(now + hour, now + 2 * hour));
    assert!(future.unwrap_err().contains("future"));
    // … living longer than token_expiration_s: refused.
    let long = e.auth.validate(&forge(now, now + 1000 * hour));
    assert!(long.unwrap_err().contains("lifetime"));
}
