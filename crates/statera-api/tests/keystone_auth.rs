//! The built-in Keystone over HTTP: `/v3` discovery, `POST/GET/HEAD/DELETE
//! /v3/auth/tokens` (password, token rescoping, application credentials;
//! project, domain, system and unscoped), the `/v3/auth/*` lists, and the 401
//! in Keystone's shape an Octavia route answers to a missing, malformed,
//! expired or revoked token.

#[path = "octavia/support.rs"]
mod support;

use serde_json::{Value, json};
use statera_api::{ApiSettings, AppState};
use statera_identity::builtin::bootstrap::{BootstrapOptions, bootstrap, new_project, new_user};
use statera_identity::builtin::{Builtin, BuiltinSettings, key_repository};
use statera_model::identity::*;
use std::sync::Arc;
use support::*;

const ADMIN_PW: &str = "admin-pw-for-tests";
const UNAUTHORIZED: &str = "The request you have made requires authentication.";

struct Ks {
    h: Harness,
    _keys: tempfile::TempDir,
}

async fn ks_with(settings: BuiltinSettings) -> Ks {
    ks_with_api(settings, |_| {}).await
}

/// [`ks_with`] with the API's settings adjusted by `change`.
async fn ks_with_api(settings: BuiltinSettings, change: impl FnOnce(&mut ApiSettings)) -> Ks {
    let mut api: Option<ApiSettings> = None;
    let mut h = Harness::with_settings(|s| {
        change(s);
        api = Some(s.clone());
    })
    .await;
    bootstrap(
        &h.store,
        &BootstrapOptions {
            admin_password: Some(ADMIN_PW.into()),
            public_url: "http://statera.test:9876".into(),
        },
    )
    .await
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let auth = Builtin::new(h.store.clone(), key_repository(keys.path()), settings).unwrap();
    h.router = statera_api::app(AppState {
        store: h.store.clone(),
        settings: Arc::new(api.unwrap()),
        auth: Arc::new(auth),
        policy: Arc::new(statera_policy::Enforcer::defaults()),
        key_manager: Arc::new(statera_api::lab_key_manager()),
    });
    Ks { h, _keys: keys }
}

async fn ks() -> Ks {
    ks_with(BuiltinSettings::default()).await
}

fn password_body(user: &str, pw: &str, scope: Value) -> Value {
    let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": pw}}}});
    if !scope.is_null() {
        auth["scope"] = scope;
    }
    json!({ "auth": auth })
}

fn admin_project_scope() -> Value {
    json!({"project": {"name": "admin", "domain": {"id": "default"}}})
}

impl Ks {
    async fn post_tokens(&self, body: Value) -> Resp {
        self.h
            .raw("POST", "/v3/auth/tokens", &[], Some(body.to_string()))
            .await
    }

    /// A token for the admin with `scope`.
    async fn token(&self, scope: Value) -> (String, Value) {
        let r = self
            .post_tokens(password_body("admin", ADMIN_PW, scope))
            .await
            .expect(201);
        let t = r.headers["x-subject-token"].to_str().unwrap().to_string();
        (t, r.body)
    }

    async fn with_token(
        &self,
        method: &str,
        path: &str,
        token: &str,
        subject: Option<&str>,
    ) -> Resp {
        let mut headers = vec![("x-auth-token", token)];
        if let Some(s) = subject {
            headers.push(("x-subject-token", s));
        }
        self.h.raw(method, path, &headers, None).await
    }
}

fn assert_keystone_401(r: &Resp) {
    assert_eq!(r.status.as_u16(), 401, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"error": {"code": 401, "title": "Unauthorized", "message": UNAUTHORIZED}})
    );
    assert_eq!(
        r.headers["www-authenticate"],
        "Keystone uri=\"http://statera.test:9876/v3\""
    );
}

#[tokio::test]
async fn discovery_and_password_tokens_in_every_scope() {
    let k = ks().await;
    let r = k.h.get("/v3").await.expect(200);
    assert_eq!(r.body["version"]["id"], "v3.14");
    assert_eq!(
        r.body["version"]["links"][0]["href"],
        "http://statera.test:9876/v3/"
    );
    // Octavia's discovery stays at `/`.
    assert!(k.h.get("/").await.expect(200).body["versions"].is_array());

    let (token, body) = k.token(admin_project_scope()).await;
    assert!(token.len() < 200);
    let t = &body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["user"]["name"], "admin");
    assert_eq!(
        t["user"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert!(t["user"]["password_expires_at"].is_null());
    assert_eq!(t["project"]["name"], "admin");
    assert_eq!(t["project"]["domain"]["name"], "Default");
    assert_eq!(t["is_domain"], false);
    let mut roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, vec!["admin", "member", "reader"]);
    assert_eq!(t["audit_ids"].as_array().unwrap().len(), 1);
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
    let types: Vec<&str> = t["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 4);
    for kind in ["identity", "load-balancer", "network", "key-manager"] {
        assert!(types.contains(&kind), "{types:?}");
    }
    let lb = t["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "load-balancer")
        .unwrap();
    assert_eq!(lb["endpoints"][0]["url"], "http://statera.test:9876");
    assert_eq!(lb["endpoints"][0]["interface"], "public");
    assert_eq!(lb["endpoints"][0]["region"], "RegionOne");

    // ?nocatalog
    let r =
        k.h.raw(
            "POST",
            "/v3/auth/tokens?nocatalog",
            &[],
            Some(password_body("admin", ADMIN_PW, admin_project_scope()).to_string()),
        )
        .await
        .expect(201);
    assert!(r.body["token"].get("catalog").is_none());

    // Horizon's "unscoped" string, and no scope at all (the default project).
    let (_, body) = k.token(json!("unscoped")).await;
    assert!(body["token"].get("project").is_none() && body["token"].get("roles").is_none());
    let (_, body) = k.token(Value::Null).await;
    assert_eq!(body["token"]["project"]["name"], "admin");

    // System scope.
    let (_, body) = k.token(json!({"system": {"all": true}})).await;
    assert_eq!(body["token"]["system"], json!({"all": true}));
    assert!(body["token"].get("project").is_none());

    // Domain scope: refused without a role on the domain, given with one.
    let domain = json!({"domain": {"name": "Default"}});
    let r = k
        .post_tokens(password_body("admin", ADMIN_PW, domain.clone()))
        .await;
    assert_keystone_401(&r);
    let admin_id =
        k.h.store
            .snapshot()
            .users
            .iter()
            .find(|u| u.name == "admin")
            .unwrap()
            .id
            .clone();
    let reader =
        k.h.store
            .snapshot()
            .roles
            .iter()
            .find(|r| r.name == "reader")
            .unwrap()
            .id
            .clone();
    k.h.store
        .write(|txn| {
            txn.put(RoleAssignment::new(
                Actor::User(admin_id.clone()),
                AssignmentTarget::Domain("default".into()),
                reader,
                false,
            ))
        })
        .await
        .unwrap();
    let (_, body) = k.token(domain).await;
    assert_eq!(
        body["token"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert_eq!(body["token"]["roles"][0]["name"], "reader");
    // By user id too.
    let r = k
        .post_tokens(json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"id": admin_id, "password": ADMIN_PW}}}, "scope": admin_project_scope()}}))
        .await;
    r.expect(201);
}

#[tokio::test]
async fn rescoping_validation_and_revocation() {
    let k = ks().await;
    let (unscoped, _) = k.token(json!("unscoped")).await;
    // Rescope with the token method (Horizon does after login).
    let r = k
        .post_tokens(
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": admin_project_scope()}}),
        )
        .await
        .expect(201);
    let scoped = r.headers["x-subject-token"].to_str().unwrap().to_string();
    assert_eq!(r.body["token"]["methods"], json!(["password", "token"]));
    assert_eq!(r.body["token"]["audit_ids"].as_array().unwrap().len(), 2);

    // A user validates its own token; GET and HEAD.
    let r = k
        .with_token("GET", "/v3/auth/tokens", &scoped, Some(&unscoped))
        .await
        .expect(200);
    assert_eq!(r.headers["x-subject-token"], unscoped.as_str());
    assert_eq!(r.body["token"]["user"]["name"], "admin");
    k.with_token("HEAD", "/v3/auth/tokens", &scoped, Some(&unscoped))
        .await
        .expect(200);
    // An invalid subject: 404, Keystone's message.
    let r = k
        .with_token("GET", "/v3/auth/tokens", &scoped, Some("gAAAAAbogus"))
        .await
        .expect(404);
    assert_eq!(
        r.body["error"]["message"],
        "Could not find token: gAAAAAbogus."
    );
    k.with_token("HEAD", "/v3/auth/tokens", &scoped, Some("gAAAAAbogus"))
        .await
        .expect(404);
    // Without a valid caller token: 401.
    assert_keystone_401(
        &k.with_token("GET", "/v3/auth/tokens", "nope", Some(&scoped))
            .await,
    );

    // The scoped token works on an Octavia route and creates in its project.
    let r = k
        .with_token("GET", "/v2/lbaas/loadbalancers", &scoped, None)
        .await
        .expect(200);
    assert_eq!(r.body["loadbalancers"], json!([]));

    // Revoke the unscoped parent: the rescoped child goes with it.
    k.with_token("DELETE", "/v3/auth/tokens", &scoped, Some(&unscoped))
        .await
        .expect(204);
    let (fresh, _) = k.token(admin_project_scope()).await;
    k.with_token("HEAD", "/v3/auth/tokens", &fresh, Some(&unscoped))
        .await
        .expect(404);
    k.with_token("HEAD", "/v3/auth/tokens", &fresh, Some(&scoped))
        .await
        .expect(404);
    assert_keystone_401(
        &k.with_token("GET", "/v2/lbaas/loadbalancers", &scoped, None)
            .await,
    );
    k.with_token("GET", "/v2/lbaas/loadbalancers", &fresh, None)
        .await
        .expect(200);
    // A revoked token cannot be rescoped.
    assert_keystone_401(
        &k.post_tokens(
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}}}),
        )
        .await,
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_look_the_same_and_lockout_slows_brute_force() {
    let k = ks_with(BuiltinSettings {
        lockout_failure_attempts: 3,
        ..BuiltinSettings::default()
    })
    .await;
    // Bootstrap exempts the admin from lockout; this test locks an admin
    // without the exemption (an operator cleared it).
    let mut exempt = (**k
        .h
        .store
        .snapshot()
        .users
        .iter()
        .find(|u| u.name == "admin")
        .unwrap())
    .clone();
    exempt.options.clear();
    k.h.store.write(|txn| txn.put(exempt)).await.unwrap();
    let started = std::time::Instant::now();
    let wrong = k
        .post_tokens(password_body("admin", "wrong", admin_project_scope()))
        .await;
    let wrong_time = started.elapsed();
    let started = std::time::Instant::now();
    let unknown = k
        .post_tokens(password_body("nobody", "wrong", admin_project_scope()))
        .await;
    let unknown_time = started.elapsed();
    assert_keystone_401(&wrong);
    assert_keystone_401(&unknown);
    assert_eq!(wrong.text, unknown.text);
    // Both cost one password check (argon2, tens of ms): neither is an
    // order of magnitude faster than the other.
    let (a, b) = (wrong_time.as_secs_f64(), unknown_time.as_secs_f64());
    assert!(
        a.max(b) / a.min(b) < 5.0,
        "wrong {a:.4}s vs unknown {b:.4}s"
    );

    // Two more failures lock the admin; then the right password is refused
    // too, with the same answer.
    let admin = || {
        k.h.store
            .snapshot()
            .users
            .iter()
            .find(|u| u.name == "admin")
            .unwrap()
            .clone()
    };
    for n in 2..=3 {
        assert_keystone_401(
            &k.post_tokens(password_body("admin", "wrong", admin_project_scope()))
                .await,
        );
        for _ in 0..200 {
            if admin().failed_auth_count >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(admin().failed_auth_count, n);
    }
    let locked = k
        .post_tokens(password_body("admin", ADMIN_PW, admin_project_scope()))
        .await;
    assert_keystone_401(&locked);
    assert_eq!(locked.text, wrong.text);
    assert!(admin().last_failed_auth_at.is_some());
}

#[tokio::test]
async fn octavia_routes_answer_401_in_keystones_shape_for_missing_bad_expired_and_revoked_tokens() {
    let k = ks_with(BuiltinSettings {
        token_expiration_s: 2,
        ..BuiltinSettings::default()
    })
    .await;
    let (token, _) = k.token(admin_project_scope()).await;
    let (to_revoke, _) = k.token(admin_project_scope()).await;
    k.with_token("DELETE", "/v3/auth/tokens", &token, Some(&to_revoke))
        .await
        .expect(204);
    for path in [
        "/v2/lbaas/loadbalancers",
        "/v2.0/networks",
        "/v3/auth/projects",
    ] {
        assert_keystone_401(&k.h.get(path).await);
        assert_keystone_401(&k.with_token("GET", path, "not-a-token", None).await);
        assert_keystone_401(&k.with_token("GET", path, &to_revoke, None).await);
        k.with_token("GET", path, &token, None).await.expect(200);
    }
    let lb =
        k.h.raw(
            "POST",
            "/v2/lbaas/loadbalancers",
            &[("x-auth-token", &token)],
            Some(json!({"loadbalancer": {"vip_subnet_id": k.h.subnet_id}}).to_string()),
        )
        .await
        .expect(201);
    let admin_project =
        k.h.store
            .snapshot()
            .projects
            .iter()
            .find(|p| p.name == "admin")
            .unwrap()
            .id
            .clone();
    assert_eq!(
        lb.body["loadbalancer"]["project_id"],
        admin_project.as_str()
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_keystone_401(
        &k.with_token("GET", "/v2/lbaas/loadbalancers", &token, None)
            .await,
    );
}

#[tokio::test]
async fn auth_lists_user_projects_and_application_credentials() {
    let k = ks().await;
    let (token, body) = k.token(admin_project_scope()).await;
    let admin_id = body["token"]["user"]["id"].as_str().unwrap().to_string();
    let admin_project = body["token"]["project"]["id"].as_str().unwrap().to_string();
    let r = k
        .with_token("GET", "/v3/auth/projects", &token, None)
        .await
        .expect(200);
    let names: Vec<&str> = r.body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin"]);
    let r = k
        .with_token(
            "GET",
            &format!("/v3/users/{admin_id}/projects"),
            &token,
            None,
        )
        .await
        .expect(200);
    assert_eq!(r.body["projects"][0]["id"], admin_project.as_str());
    let r = k
        .with_token("GET", "/v3/auth/system", &token, None)
        .await
        .expect(200);
    assert_eq!(r.body["system"], json!([{"all": true}]));
    let r = k
        .with_token("GET", "/v3/auth/catalog", &token, None)
        .await
        .expect(200);
    assert_eq!(r.body["catalog"].as_array().unwrap().len(), 4);
    k.with_token("GET", "/v3/auth/domains", &token, None)
        .await
        .expect(200);
    let (unscoped, _) = k.token(json!("unscoped")).await;
    k.with_token("GET", "/v3/auth/catalog", &unscoped, None)
        .await
        .expect(403);

    // A member of another project: its own projects only; not the admin's.
    let member =
        k.h.store
            .snapshot()
            .roles
            .iter()
            .find(|r| r.name == "member")
            .unwrap()
            .id
            .clone();
    let project = new_project("dave-p", "default");
    let user = User {
        default_project_id: Some(project.id.clone()),
        ..new_user(
            "dave",
            "default",
            Some(statera_identity::password::hash("pw-dave")),
        )
    };
    let (uid, pid) = (user.id.clone(), project.id.clone());
    let secret_hash = statera_identity::password::hash("dave-app");
    let cred_id = new_id();
    let now = statera_model::now();
    k.h.store
        .write(|txn| {
            txn.put(user)?;
            txn.put(project)?;
            txn.put(RoleAssignment::new(
                Actor::User(uid.clone()),
                AssignmentTarget::Project(pid.clone()),
                member.clone(),
                false,
            ))?;
            txn.put(ApplicationCredential {
                id: cred_id.clone(),
                name: "dave-ci".into(),
                description: String::new(),
                user_id: uid.clone(),
                project_id: pid.clone(),
                secret_hash,
                role_ids: vec![member],
                expires_at: None,
                unrestricted: false,
                created_at: now,
            })
        })
        .await
        .unwrap();
    let r = k
        .post_tokens(password_body("dave", "pw-dave", Value::Null))
        .await
        .expect(201);
    let dave = r.headers["x-subject-token"].to_str().unwrap().to_string();
    assert_eq!(r.body["token"]["project"]["name"], "dave-p");
    k.with_token(
        "GET",
        &format!("/v3/users/{admin_id}/projects"),
        &dave,
        None,
    )
    .await
    .expect(403);
    // Dave may not validate the admin's token; the admin may validate Dave's.
    k.with_token("GET", "/v3/auth/tokens", &dave, Some(&token))
        .await
        .expect(403);
    k.with_token("GET", "/v3/auth/tokens", &token, Some(&dave))
        .await
        .expect(200);
    // Dave cannot scope to the admin project.
    assert_keystone_401(
        &k.post_tokens(password_body("dave", "pw-dave", admin_project_scope()))
            .await,
    );
    // The application credential, by name and user.
    let r = k
        .post_tokens(
            json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"name": "dave-ci", "secret": "dave-app",
                "user": {"name": "dave", "domain": {"id": "default"}}}}}}),
        )
        .await
        .expect(201);
    assert_eq!(
        r.body["token"]["application_credential"]["id"],
        cred_id.as_str()
    );
    assert_eq!(r.body["token"]["project"]["id"], pid.as_str());
    assert_eq!(
        r.body["token"]["methods"],
        json!(["application_credential"])
    );
}

#[tokio::test]
async fn malformed_requests_are_400_and_other_auth_modes_have_no_v3_auth() {
    let k = ks().await;
    for body in [
        "not json".to_string(),
        json!({}).to_string(),
        json!({"auth": {}}).to_string(),
        json!({"auth": {"identity": {"methods": ["password"]}}}).to_string(),
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"password": "x"}}}}})
            .to_string(),
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin",
            "domain": {"name": "Default"}, "password": "x"}}}, "scope": {"system": {"all": false}}}})
        .to_string(),
    ] {
        let r = k.h.raw("POST", "/v3/auth/tokens", &[], Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["code"], 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["title"], "Bad Request");
    }
    let r =
        k.h.raw(
            "POST",
            "/v3/auth/tokens",
            &[],
            Some(json!({"auth": {"identity": {"methods": ["totp"], "totp": {}}}}).to_string()),
        )
        .await
        .expect(401);
    assert_eq!(r.body["error"]["code"], 401);

    // noauth: no built-in Keystone behind /v3/auth.
    let lab = Harness::new().await;
    let r = lab
        .post("/v3/auth/tokens", password_body("admin", "x", Value::Null))
        .await
        .expect(404);
    assert_eq!(r.body["error"]["code"], 404);
    lab.get("/v3").await.expect(404);
}

/// What Horizon (django_openstack_auth) sends at login and on every page.
#[tokio::test]
async fn horizons_login_sequence_works() {
    let k = ks().await;
    // 1. Password, `"scope": "unscoped"` as a string.
    let (unscoped, body) = k.token(json!("unscoped")).await;
    let user_id = body["token"]["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["token"]["user"]["domain"]["name"], "Default");
    // 2. A domain-scoped request: the admin has no role on the domain (as after
    //    keystone-manage bootstrap), so 401, which Horizon tolerates.
    assert_keystone_401(
        &k.post_tokens(
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"domain": {"name": "Default"}}}}),
        )
        .await,
    );
    // 3. The projects the user may pick, with the unscoped token.
    let r = k
        .with_token(
            "GET",
            &format!("/v3/users/{user_id}/projects"),
            &unscoped,
            None,
        )
        .await
        .expect(200);
    let project = r.body["projects"][0]["id"].as_str().unwrap().to_string();
    let r = k
        .with_token("GET", "/v3/auth/projects", &unscoped, None)
        .await
        .expect(200);
    assert_eq!(r.body["projects"][0]["id"], project.as_str());
    // 4. Rescoping to it by id: catalog, roles, project and the user's domain.
    let r = k
        .post_tokens(
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": project}}}}),
        )
        .await
        .expect(201);
    let t = &r.body["token"];
    assert_eq!(t["project"]["id"], project.as_str());
    assert_eq!(t["user"]["domain"]["id"], "default");
    assert_eq!(t["catalog"].as_array().unwrap().len(), 4);
    assert!(!t["roles"].as_array().unwrap().is_empty());
    let scoped = r.headers["x-subject-token"].to_str().unwrap().to_string();
    // 5. Every page: the user's projects again, and the load balancers.
    k.with_token(
        "GET",
        &format!("/v3/users/{user_id}/projects"),
        &scoped,
        None,
    )
    .await
    .expect(200);
    k.with_token("GET", "/v2/lbaas/loadbalancers", &scoped, None)
        .await
        .expect(200);
    // Logout revokes the token.
    k.with_token("DELETE", "/v3/auth/tokens", &scoped, Some(&scoped))
        .await
        .expect(204);
    assert_keystone_401(
        &k.with_token("GET", "/v2/lbaas/loadbalancers", &scoped, None)
            .await,
    );
}

impl Ks {
    /// A user `name` (password `pw`) with `role` on `target`.
    async fn user_with(&self, name: &str, pw: &str, role: &str, target: AssignmentTarget) {
        let rid = self
            .h
            .store
            .snapshot()
            .roles
            .iter()
            .find(|r| r.name == role)
            .unwrap()
            .id
            .clone();
        let user = new_user(name, "default", Some(statera_identity::password::hash(pw)));
        let uid = user.id.clone();
        self.h
            .store
            .write(|txn| {
                txn.put(user)?;
                txn.put(RoleAssignment::new(Actor::User(uid), target, rid, false))
            })
            .await
            .unwrap();
    }

    async fn token_of(&self, user: &str, pw: &str, scope: Value) -> String {
        let r = self
            .post_tokens(password_body(user, pw, scope))
            .await
            .expect(201);
        r.headers["x-subject-token"].to_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn only_the_subject_or_a_system_admin_may_revoke_a_token() {
    let k = ks().await;
    let service_project =
        k.h.store
            .snapshot()
            .projects
            .iter()
            .find(|p| p.name == "service")
            .unwrap()
            .id
            .clone();
    k.user_with(
        "octavia",
        "pw-svc",
        "service",
        AssignmentTarget::Project(service_project),
    )
    .await;
    k.user_with(
        "auditor",
        "pw-aud",
        "reader",
        AssignmentTarget::System("all".into()),
    )
    .await;
    let service = k
        .token_of(
            "octavia",
            "pw-svc",
            json!({"project": {"name": "service", "domain": {"id": "default"}}}),
        )
        .await;
    let reader = k
        .token_of("auditor", "pw-aud", json!({"system": {"all": true}}))
        .await;
    let (subject, _) = k.token(admin_project_scope()).await;
    let (project_admin, _) = k.token(admin_project_scope()).await;
    let (system_admin, _) = k.token(json!({"system": {"all": true}})).await;
    // The service role validates, but neither checks nor revokes.
    let path = "/v3/auth/tokens";
    k.with_token("GET", path, &service, Some(&subject))
        .await
        .expect(200);
    k.with_token("HEAD", path, &service, Some(&subject))
        .await
        .expect(403);
    let r = k
        .with_token("DELETE", path, &service, Some(&subject))
        .await
        .expect(403);
    assert_eq!(r.body["error"]["code"], 403, "{}", r.text);
    // A system reader validates and checks, but does not revoke.
    k.with_token("GET", path, &reader, Some(&subject))
        .await
        .expect(200);
    k.with_token("HEAD", path, &reader, Some(&subject))
        .await
        .expect(200);
    k.with_token("DELETE", path, &reader, Some(&subject))
        .await
        .expect(403);
    // Still valid after all those refusals.
    k.with_token("GET", path, &subject, Some(&subject))
        .await
        .expect(200);
    // A system-scoped admin revokes anyone's token; the subject its own.
    k.with_token("DELETE", path, &system_admin, Some(&subject))
        .await
        .expect(204);
    k.with_token("DELETE", path, &project_admin, Some(&project_admin))
        .await
        .expect(204);
    let victim = k
        .token_of(
            "octavia",
            "pw-svc",
            json!({"project": {"name": "service", "domain": {"id": "default"}}}),
        )
        .await;
    // A project-scoped admin does not revoke another user's token.
    let (project_admin, _) = k.token(admin_project_scope()).await;
    k.with_token("DELETE", path, &project_admin, Some(&victim))
        .await
        .expect(403);
    k.with_token("DELETE", path, &victim, Some(&victim))
        .await
        .expect(204);
}

/// A user `name` with `password` in the default domain (no roles).
async fn add_user(k: &Ks, name: &str, password: &str) -> String {
    let u = new_user(
        name,
        DEFAULT_DOMAIN_ID,
        Some(statera_identity::password::hash(password)),
    );
    let id = u.id.clone();
    k.h.store.write(|txn| txn.put(u)).await.unwrap();
    id
}

#[tokio::test]
async fn the_password_change_counts_failures_and_honours_lockout() {
    // Before: POST /v3/users/{id}/password checked the original password
    // without lockout, an unauthenticated way round it (any number of
    // guesses, and a locked user could still change its password).
    let k = ks_with(BuiltinSettings {
        lockout_failure_attempts: 3,
        ..BuiltinSettings::default()
    })
    .await;
    let id = add_user(&k, "carol", "carol-pw").await;
    let failures = || {
        k.h.store
            .snapshot()
            .users
            .get(&id)
            .unwrap()
            .failed_auth_count
    };
    let path = format!("/v3/users/{id}/password");
    let k = &k;
    let change = |original: &'static str| {
        let path = path.clone();
        let body = json!({"user": {"password": "n3w-pw", "original_password": original}});
        async move { k.h.raw("POST", &path, &[], Some(body.to_string())).await }
    };
    for n in 1..=3 {
        let r = change("guess").await;
        assert_eq!(r.status.as_u16(), 401, "{}", r.text);
        for _ in 0..200 {
            if failures() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(failures(), n);
    }
    // Locked: neither the right password's token nor a change with it.
    let token = k
        .post_tokens(password_body("carol", "carol-pw", Value::Null))
        .await;
    assert_keystone_401(&token);
    let r = change("carol-pw").await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.text);
    let stored = k.h.store.snapshot().users.get(&id).unwrap().clone();
    assert!(statera_identity::password::verify(
        "carol-pw",
        stored.password_hash.as_deref().unwrap()
    ));
}

#[tokio::test]
async fn a_right_password_change_clears_earlier_failures() {
    let k = ks_with(BuiltinSettings {
        lockout_failure_attempts: 3,
        ..BuiltinSettings::default()
    })
    .await;
    let id = add_user(&k, "dave", "dave-pw").await;
    let path = format!("/v3/users/{id}/password");
    let body = |original: &str| {
        Some(json!({"user": {"password": "n3w-pw", "original_password": original}}).to_string())
    };
    let r = k.h.raw("POST", &path, &[], body("guess")).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.text);
    for _ in 0..200 {
        if k.h
            .store
            .snapshot()
            .users
            .get(&id)
            .unwrap()
            .failed_auth_count
            == 1
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    k.h.raw("POST", &path, &[], body("dave-pw"))
        .await
        .expect(204);
    let u = k.h.store.snapshot().users.get(&id).unwrap().clone();
    assert_eq!((u.failed_auth_count, u.last_failed_auth_at), (0, None));
    k.post_tokens(password_body("dave", "n3w-pw", Value::Null))
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_password_checks_gets_503_beyond_the_queue() {
    // Before: every request waited its turn for argon2, however many there
    // were (a flood held a connection and a body each, for ever longer),
    // and the admin API's hashes and the password change did not queue at
    // all (up to 512 blocking threads of 19 MiB each).
    let k = Arc::new(
        ks_with(BuiltinSettings {
            concurrent_password_checks: 1,
            queued_password_checks: 2,
            ..BuiltinSettings::default()
        })
        .await,
    );
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..30 {
        let k = k.clone();
        flood.spawn(async move {
            if i % 2 == 0 {
                k.post_tokens(password_body("nobody", "guess", Value::Null))
                    .await
            } else {
                let body = json!({"user": {"password": "x", "original_password": "guess"}});
                k.h.raw(
                    "POST",
                    "/v3/users/nobody/password",
                    &[],
                    Some(body.to_string()),
                )
                .await
            }
        });
    }
    let (mut busy, mut refused) = (0, 0);
    while let Some(r) = flood.join_next().await {
        let r = r.unwrap();
        match r.status.as_u16() {
            503 => {
                busy += 1;
                assert_eq!(r.headers["retry-after"], "1");
                assert_eq!(r.body["error"]["code"], 503, "{}", r.text);
            }
            401 => refused += 1,
            other => panic!("{other}: {}", r.text),
        }
    }
    // At most 3 in the gate at once (1 running, 2 waiting).
    assert!(busy >= 20, "busy {busy}, refused {refused}");
    assert!(refused >= 3, "busy {busy}, refused {refused}");
    // The places are free again once the flood has passed.
    k.post_tokens(password_body("admin", ADMIN_PW, admin_project_scope()))
        .await
        .expect(201);
}

/// A flood of `n` wrong passwords, the `i`th from `from(i)` (peer and
/// `X-Forwarded-For`); once its first 503 shows the flood holds all it can,
/// `then` runs while the flood's admitted checks still hold their places.
/// Returns the flood's admitted (401) and refused (503) counts and what
/// `then` got.
async fn flood_then(
    k: &Arc<Ks>,
    n: usize,
    from: impl Fn(usize) -> (std::net::SocketAddr, Option<String>),
    then: impl std::future::Future<Output = Resp>,
) -> (usize, usize, Resp) {
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..n {
        let (k, (peer, xff)) = (k.clone(), from(i));
        flood.spawn(async move {
            let headers: Vec<(&str, &str)> = xff
                .as_deref()
                .map(|x| vec![("x-forwarded-for", x)])
                .unwrap_or_default();
            let body = password_body("nobody", "guess", Value::Null).to_string();
            k.h.raw_from(Some(peer), "POST", "/v3/auth/tokens", &headers, Some(body))
                .await
                .status
                .as_u16()
        });
    }
    let (mut admitted, mut busy) = (0, 0);
    let mut count = |code: u16| match code {
        401 => admitted += 1,
        503 => busy += 1,
        other => panic!("flood answered {other}"),
    };
    loop {
        let code = flood.join_next().await.expect("a flood answer").unwrap();
        count(code);
        if code == 503 {
            break;
        }
    }
    let got = then.await;
    while let Some(code) = flood.join_next().await {
        count(code.unwrap());
    }
    (admitted, busy, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_from_one_client_leaves_the_password_gate_open_to_others() {
    // Before: one gate for everyone, so a flood of guesses from one address
    // (no token needed) took every place and every other sign-in got 503.
    let k = Arc::new(
        ks_with(BuiltinSettings {
            concurrent_password_checks: 1,
            queued_password_checks: 4,
            password_checks_per_client: 2,
            ..BuiltinSettings::default()
        })
        .await,
    );
    let sign_in = |peer: &str, xff: Option<&str>| {
        let (k, peer) = (k.clone(), peer.parse().unwrap());
        let xff = xff.map(str::to_string);
        async move {
            let headers: Vec<(&str, &str)> = xff
                .as_deref()
                .map(|x| vec![("x-forwarded-for", x)])
                .unwrap_or_default();
            let body = password_body("admin", ADMIN_PW, admin_project_scope()).to_string();
            k.h.raw_from(Some(peer), "POST", "/v3/auth/tokens", &headers, Some(body))
                .await
        }
    };
    // Made-up X-Forwarded-For values do not make one client many: the
    // proxy headers are not trusted here.
    let (admitted, busy, other) = flood_then(
        &k,
        12,
        |i| {
            (
                "192.0.2.7:40000".parse().unwrap(),
                Some(format!("10.0.0.{i}")),
            )
        },
        sign_in("198.51.100.9:40001", None),
    )
    .await;
    other.expect(201);
    assert!(admitted <= 3, "admitted {admitted}, busy {busy}");
    assert!(busy >= 9, "admitted {admitted}, busy {busy}");
    // Addresses of one IPv6 /48 (a site's many /64s) are one client;
    // another /48 is another.
    let (admitted, busy, other) = flood_then(
        &k,
        12,
        |i| {
            (
                format!("[2001:db8:0:{i:x}::1]:40000").parse().unwrap(),
                None,
            )
        },
        sign_in("[2001:db8:1::1]:40001", None),
    )
    .await;
    other.expect(201);
    assert!(
        admitted <= 3 && busy >= 9,
        "admitted {admitted}, busy {busy}"
    );
    // Its places are free again once the flood has passed.
    sign_in("192.0.2.7:40000", None).await.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for() {
    let k = Arc::new(
        ks_with_api(
            BuiltinSettings {
                concurrent_password_checks: 1,
                queued_password_checks: 4,
                password_checks_per_client: 2,
                ..BuiltinSettings::default()
            },
            |s| s.trust_proxy_headers = true,
        )
        .await,
    );
    let proxy: std::net::SocketAddr = "192.0.2.1:50000".parse().unwrap();
    let body = password_body("admin", ADMIN_PW, admin_project_scope()).to_string();
    // The client's own claim comes first; the proxy appends the address it
    // saw, and that last one counts.
    let (admitted, busy, other) = flood_then(
        &k,
        12,
        |i| (proxy, Some(format!("10.9.9.{i}, 203.0.113.5"))),
        k.h.raw_from(
            Some(proxy),
            "POST",
            "/v3/auth/tokens",
            &[("x-forwarded-for", "203.0.113.5, 203.0.113.6")],
            Some(body),
        ),
    )
    .await;
    other.expect(201);
    assert!(
        admitted <= 3 && busy >= 9,
        "admitted {admitted}, busy {busy}"
    );
}

#[tokio::test]
async fn behind_an_external_keystone_statera_serves_no_identity_api() {
    // Before: the built-in Keystone's routes answered in keystone mode too,
    // over local tables nobody signs in with (a project or user created
    // there did nothing), and token issue failed deep inside with 501.
    let keystone =
        statera_identity::keystone::Keystone::new(statera_identity::keystone::KeystoneConfig {
            // Never asked: nothing here reaches the authenticator.
            auth_url: "http://127.0.0.1:9/v3".into(),
            username: "statera".into(),
            password: "pw".into(),
            user_domain_name: "Default".into(),
            project_name: "service".into(),
            project_domain_name: "Default".into(),
            cache_seconds: 0,
            timeout: std::time::Duration::from_millis(200),
            www_authenticate_uri: Some("https://keystone.example.net/v3".into()),
            cache_entries: 10,
            cafile: None,
        })
        .unwrap();
    let h = Harness::with_state(|_| {}, |st| st.auth = Arc::new(keystone)).await;
    let token = [("x-auth-token", "anything")];
    for (method, path, headers) in [
        ("GET", "/v3", &[][..]),
        ("POST", "/v3/auth/tokens", &[][..]),
        ("GET", "/v3/auth/tokens", &token[..]),
        ("GET", "/v3/users", &token[..]),
        ("POST", "/v3/projects", &token[..]),
        ("POST", "/v3/users/u1/password", &[][..]),
        ("GET", "/v3/auth/catalog", &token[..]),
    ] {
        let body = (method == "POST").then(|| "{}".to_string());
        let r = h.raw(method, path, headers, body).await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path}: {}", r.text);
        assert_eq!(r.body["error"]["code"], 404, "{method} {path}: {}", r.text);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("https://keystone.example.net/v3"),
            "{}",
            r.text
        );
    }
    assert!(h.store.snapshot().projects.is_empty());
}

#[tokio::test]
async fn unknown_identity_routes_methods_and_bodies_answer_in_keystones_shape() {
    let k = ks().await;
    let (token, _) = k.token(admin_project_scope()).await;
    let keystone = |r: &Resp, code: u16| {
        assert_eq!(r.status.as_u16(), code, "{}", r.text);
        assert_eq!(r.body["error"]["code"], code, "{}", r.text);
        assert!(r.body["error"]["title"].is_string(), "{}", r.text);
        assert!(r.body.get("faultcode").is_none(), "{}", r.text);
    };
    let r = k.with_token("GET", "/v3/nothing-here", &token, None).await;
    keystone(&r, 404);
    let r = k.with_token("PATCH", "/v3/auth/tokens", &token, None).await;
    keystone(&r, 405);
    // (A body over the limit: 413 in the same shape, answered by the
    // server before routing; `api_server`'s tests.)
}
