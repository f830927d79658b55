//! The built-in Keystone's admin API (issue #13): domains, projects, users,
//! groups, roles and implied roles, grants and role assignments, application
//! credentials, services, endpoints and regions, with Keystone's shapes,
//! status codes and error bodies, and the refusals of non-admin callers.
//!
//! The router runs against a real store in a temp dir. The authenticator is
//! a test double that reports the `builtin` mode and reads the caller from
//! headers (`x-user-id`, `x-project-id`, `x-roles`, `x-system`), so that the
//! admin API is what answers `/v3/projects`; a second router in `noauth`
//! shows the lab's project lookups are kept.

#[path = "../../statera-store/tests/support/pg.rs"]
mod pg;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use statera_api::{ApiSettings, AppState};
use statera_identity::{AuthFuture, AuthMode, Authenticator, Caller, split_roles};
use statera_model::identity::{DEFAULT_DOMAIN_ID, Domain};
use statera_store::Store;
use std::sync::Arc;
use tower::ServiceExt;

/// `builtin` as far as the router can tell; the caller comes from headers,
/// and a request without `x-roles` is a system admin. The built-in Keystone
/// over the same store is there for what the admin API asks of it (password
/// hashes and checks through its bounded gate), not for authentication.
struct HeaderAuth(statera_identity::builtin::Builtin);

impl HeaderAuth {
    fn over(store: &Arc<Store>, keys: &std::path::Path) -> Arc<dyn Authenticator> {
        let b = statera_identity::builtin::Builtin::new(
            store.clone(),
            statera_identity::builtin::key_repository(keys),
            Default::default(),
        )
        .unwrap();
        Arc::new(HeaderAuth(b))
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Authenticator for HeaderAuth {
    fn mode(&self) -> AuthMode {
        AuthMode::Builtin
    }
    fn builtin(&self) -> Option<&statera_identity::builtin::Builtin> {
        Some(&self.0)
    }
    fn authenticate<'a>(&'a self, h: &'a HeaderMap) -> AuthFuture<'a> {
        let caller = match header(h, "x-roles") {
            None => Caller {
                user_id: Some("admin-user".into()),
                system_scope: Some("all".into()),
                roles: vec!["admin".into(), "member".into(), "reader".into()],
                ..Caller::default()
            },
            Some(roles) => Caller {
                user_id: header(h, "x-user-id"),
                project_id: header(h, "x-project-id"),
                system_scope: header(h, "x-system"),
                roles: split_roles(&roles),
                ..Caller::default()
            },
        };
        Box::pin(async move { Ok(caller) })
    }
}

struct Resp {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Resp {
    #[track_caller]
    fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        self
    }

    /// A Keystone-shaped error with `status` whose message contains `needle`.
    #[track_caller]
    fn error(self, status: u16, needle: &str) -> Resp {
        let r = self.expect(status);
        let e = &r.body["error"];
        assert_eq!(e["code"], status, "{}", r.text);
        assert!(e["title"].is_string(), "{}", r.text);
        assert_eq!(r.body.as_object().unwrap().len(), 1, "{}", r.text);
        let m = e["message"].as_str().unwrap_or_default();
        assert!(
            m.contains(needle),
            "message {m:?} does not contain {needle:?}"
        );
        r
    }
}

struct H {
    store: Arc<Store>,
    router: Router,
    _dir: tempfile::TempDir,
}

fn settings() -> ApiSettings {
    ApiSettings {
        default_project_id: "lab".into(),
        pagination_max_limit: 1000,
        default_provider: "native".into(),
        providers: Vec::new(),
        quota_defaults: Default::default(),
        reserved_ips: Vec::new(),
        host_address_space: Default::default(),
        own_sockets: Vec::new(),
        neutron: Default::default(),
        trust_proxy_headers: false,
    }
}

impl H {
    /// Builtin mode, with the `default` domain (bootstrap's) in the store.
    async fn new() -> H {
        H::with_auth(true).await
    }

    /// `AppState::lab`: noauth.
    async fn noauth() -> H {
        H::with_auth(false).await
    }

    async fn with_auth(header_auth: bool) -> H {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(pg::test_store(dir.path()).await);
        store
            .write(|txn| {
                txn.put(Domain {
                    id: DEFAULT_DOMAIN_ID.into(),
                    name: "Default".into(),
                    description: String::new(),
                    enabled: true,
                    tags: vec![],
                    options: Default::default(),
                    created_at: statera_model::now(),
                })
            })
            .await
            .unwrap();
        let mut state = AppState::lab(store.clone(), settings());
        if header_auth {
            state.auth = HeaderAuth::over(&store, &dir.path().join("token-keys"));
        }
        H {
            store,
            router: statera_api::app(state),
            _dir: dir,
        }
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("host", "keystone.test:9876");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(s) => b
                .header("content-type", "application/json")
                .body(Body::from(s))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let svc = tower::Layer::layer(
            &tower::util::MapRequestLayer::new(statera_api::normalize_path),
            self.router.clone(),
        );
        let resp = svc.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, body, text }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.raw(method, path, &[], body.map(|b| b.to_string()))
            .await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }

    /// POST `{key: body}` expecting 201; the new object.
    async fn create(&self, path: &str, key: &str, body: Value) -> Value {
        let r = self
            .call("POST", path, Some(json!({ key: body })))
            .await
            .expect(201);
        r.body[key].clone()
    }

    async fn id_of(&self, path: &str, key: &str, body: Value) -> String {
        self.create(path, key, body).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn revocations(&self) -> Vec<statera_model::identity::Revocation> {
        self.store
            .snapshot()
            .revocations
            .iter()
            .map(|r| (**r).clone())
            .collect()
    }
}

fn names(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn domains_are_created_listed_updated_and_deleted_only_when_disabled() {
    let h = H::new().await;
    let d = h
        .create(
            "/v3/domains",
            "domain",
            json!({"name": "dev", "description": "d"}),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(d["enabled"], true);
    assert_eq!(
        d["links"]["self"],
        format!("http://keystone.test:9876/v3/domains/{id}")
    );
    h.call(
        "POST",
        "/v3/domains",
        Some(json!({"domain": {"name": "DEV"}})),
    )
    .await
    .error(409, "Duplicate entry");

    let all = h.get("/v3/domains").await.expect(200);
    assert_eq!(names(&all.body, "domains"), ["Default", "dev"]);
    assert!(all.body["links"]["self"].is_string());
    assert!(all.body["links"]["next"].is_null());
    let by_name = h.get("/v3/domains?name=dev").await.expect(200);
    assert_eq!(names(&by_name.body, "domains"), ["dev"]);
    h.call(
        "PATCH",
        &format!("/v3/domains/{id}"),
        Some(json!({"domain": {"enabled": false}})),
    )
    .await
    .expect(200);
    let enabled = h.get("/v3/domains?enabled=true").await.expect(200);
    assert_eq!(names(&enabled.body, "domains"), ["Default"]);

    // Enabled domains cannot be deleted.
    h.call("DELETE", "/v3/domains/default", None)
        .await
        .error(403, "disable it first");
    // A project and user in the domain go with it.
    let p = h
        .id_of(
            "/v3/projects",
            "project",
            json!({"name": "p", "domain_id": id}),
        )
        .await;
    h.call("DELETE", &format!("/v3/domains/{id}"), None)
        .await
        .expect(204);
    h.get(&format!("/v3/domains/{id}"))
        .await
        .error(404, &format!("Could not find domain: {id}."));
    h.get(&format!("/v3/projects/{p}")).await.expect(404);
    assert!(
        h.revocations()
            .iter()
            .any(|r| r.domain_id.as_deref() == Some(id.as_str()))
    );
    assert!(
        h.revocations()
            .iter()
            .any(|r| r.project_id.as_deref() == Some(p.as_str()))
    );
}

#[tokio::test]
async fn projects_have_keystones_shape_filters_hierarchy_and_cascade() {
    let h = H::new().await;
    let p = h
        .create(
            "/v3/projects",
            "project",
            json!({"name": "web", "description": "w", "tags": ["a", "b"]}),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["domain_id"], "default");
    assert_eq!(p["parent_id"], "default");
    assert_eq!(p["is_domain"], false);
    assert_eq!(p["tags"], json!(["a", "b"]));
    let child = h
        .create(
            "/v3/projects",
            "project",
            json!({"name": "child", "parent_id": pid}),
        )
        .await;
    assert_eq!(child["parent_id"], pid.as_str());
    assert_eq!(child["domain_id"], "default");
    h.call(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": "WEB"}})),
    )
    .await
    .error(
        409,
        "Conflict occurred attempting to store project - Duplicate entry found with name WEB \
         at domain ID default.",
    );
    h.call(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": "x", "domain_id": "nope"}})),
    )
    .await
    .error(404, "Could not find domain: nope.");
    h.call(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": "x", "enabled": "yes"}})),
    )
    .await
    .error(400, "'enabled'");
    h.call(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": "x".repeat(65)}})),
    )
    .await
    .error(400, "too long");
    // Keystone would keep an unknown attribute as an extra; here it is refused, not dropped.
    h.call(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": "x", "colour": "red"}})),
    )
    .await
    .error(400, "'colour' was unexpected");
    let tagged = h.get("/v3/projects?tags=a,b").await.expect(200);
    assert_eq!(names(&tagged.body, "projects"), ["web"]);
    let tagged = h.get("/v3/projects?tags=a,c").await.expect(200);
    assert_eq!(names(&tagged.body, "projects"), Vec::<String>::new());
    let disabled = h.get("/v3/projects?enabled=false").await.expect(200);
    assert_eq!(names(&disabled.body, "projects"), Vec::<String>::new());

    let by_parent = h
        .get(&format!("/v3/projects?parent_id={pid}"))
        .await
        .expect(200);
    assert_eq!(names(&by_parent.body, "projects"), ["child"]);
    let by_name = h
        .get("/v3/projects?name=web&domain_id=default")
        .await
        .expect(200);
    assert_eq!(names(&by_name.body, "projects"), ["web"]);
    h.call(
        "PATCH",
        &format!("/v3/projects/{pid}"),
        Some(json!({"project": {"domain_id": "x"}})),
    )
    .await
    .error(400, "domain_id");
    // The hierarchy is disabled from below and enabled from above (Keystone).
    let cid0 = child["id"].as_str().unwrap().to_string();
    h.call(
        "PATCH",
        &format!("/v3/projects/{pid}"),
        Some(json!({"project": {"enabled": false}})),
    )
    .await
    .error(403, "since its subtree contains enabled projects");
    h.call(
        "PATCH",
        &format!("/v3/projects/{cid0}"),
        Some(json!({"project": {"enabled": false}})),
    )
    .await
    .expect(200);
    let upd = h
        .call(
            "PATCH",
            &format!("/v3/projects/{pid}"),
            Some(json!({"project": {"name": "web2", "enabled": false}})),
        )
        .await
        .expect(200);
    h.call(
        "PATCH",
        &format!("/v3/projects/{cid0}"),
        Some(json!({"project": {"enabled": true}})),
    )
    .await
    .error(403, "since it has disabled parents");
    h.call(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": "late", "parent_id": pid}})),
    )
    .await
    .error(400, "branch containing a disabled project");
    // At most five levels below the domain.
    let mut parent = h
        .id_of("/v3/projects", "project", json!({"name": "l1"}))
        .await;
    for level in 2..=5 {
        parent = h
            .id_of(
                "/v3/projects",
                "project",
                json!({"name": format!("l{level}"), "parent_id": parent}),
            )
            .await;
    }
    h.call(
        "POST",
        "/v3/projects",
        Some(json!({"project": {"name": "l6", "parent_id": parent}})),
    )
    .await
    .error(403, "Max hierarchy depth reached");
    assert_eq!(upd.body["project"]["name"], "web2");
    assert!(
        h.revocations()
            .iter()
            .any(|r| r.project_id.as_deref() == Some(pid.as_str()))
    );

    // Only a leaf is deleted; its assignments go with it.
    h.call("DELETE", &format!("/v3/projects/{pid}"), None)
        .await
        .error(403, "not a leaf");
    let cid = child["id"].as_str().unwrap();
    let u = h.id_of("/v3/users", "user", json!({"name": "u"})).await;
    let r = h
        .id_of("/v3/roles", "role", json!({"name": "member"}))
        .await;
    h.call(
        "PUT",
        &format!("/v3/projects/{cid}/users/{u}/roles/{r}"),
        None,
    )
    .await
    .expect(204);
    assert_eq!(h.store.snapshot().role_assignments.len(), 1);
    h.call("DELETE", &format!("/v3/projects/{cid}"), None)
        .await
        .expect(204);
    assert_eq!(h.store.snapshot().role_assignments.len(), 0);
    assert!(
        h.revocations()
            .iter()
            .any(|r| r.project_id.as_deref() == Some(cid))
    );
    h.get(&format!("/v3/projects/{cid}"))
        .await
        .error(404, &format!("Could not find project: {cid}."));
}

#[tokio::test]
async fn without_the_builtin_keystone_passwords_are_501_not_500() {
    // Under noauth (or keystone) there is no built-in Keystone to keep a
    // password: a clear 501 in Keystone's shape, and nothing written.
    let h = H::noauth().await;
    h.call(
        "POST",
        "/v3/users",
        Some(json!({"user": {"name": "erin", "password": "pw"}})),
    )
    .await
    .error(501, "built-in identity service only");
    assert!(h.store.snapshot().users.is_empty());
    h.call(
        "POST",
        "/v3/users/nobody/password",
        Some(json!({"user": {"password": "a", "original_password": "b"}})),
    )
    .await
    .error(501, "auth mode is noauth");
}

#[tokio::test]
async fn under_noauth_project_lookups_answer_any_project_and_writes_still_work() {
    let h = H::noauth().await;
    let r = h.get("/v3/projects/whatever").await.expect(200);
    assert_eq!(r.body["project"]["id"], "whatever");
    assert_eq!(r.body["project"]["name"], "whatever");
    let r = h.get("/v3/projects?name=abc").await.expect(200);
    assert_eq!(names(&r.body, "projects"), ["abc"]);
    // The unprefixed lookups are kept too.
    h.get("/projects/xyz").await.expect(200);
    // Builtin answers 404 for a project that does not exist.
    let b = H::new().await;
    b.get("/v3/projects/whatever")
        .await
        .error(404, "Could not find project: whatever.");
    assert_eq!(
        b.get("/v3/projects?name=abc").await.expect(200).body["projects"],
        json!([])
    );
    // The unprefixed lab lookups do not exist outside noauth (they made up a
    // project for any name, and `quota set` took it for a real one).
    b.get("/projects/xyz")
        .await
        .error(404, "could not be found");
    b.get("/projects?name=abc")
        .await
        .error(404, "could not be found");
}

#[tokio::test]
async fn users_passwords_are_hashed_never_rendered_and_revoke_tokens() {
    let h = H::new().await;
    let u = h
        .create(
            "/v3/users",
            "user",
            json!({"name": "alice", "password": "s3cret", "email": "a@example.org",
                   "description": "A", "favourite_colour": "blue"}),
        )
        .await;
    let uid = u["id"].as_str().unwrap().to_string();
    assert!(!u.to_string().contains("s3cret"), "{u}");
    assert!(u.get("password").is_none());
    assert_eq!(u["email"], "a@example.org");
    assert_eq!(u["favourite_colour"], "blue");
    assert_eq!(u["domain_id"], "default");
    assert!(u["password_expires_at"].is_null());
    let stored = h.store.snapshot().users.get(&uid).unwrap().clone();
    let phc = stored.password_hash.clone().unwrap();
    assert!(phc.starts_with("$argon2id$"));
    assert!(statera_identity::password::verify("s3cret", &phc));
    h.call(
        "POST",
        "/v3/users",
        Some(json!({"user": {"name": "ALICE"}})),
    )
    .await
    .error(409, "Duplicate entry");
    let shown = h.get(&format!("/v3/users/{uid}")).await.expect(200);
    assert!(!shown.text.contains("argon2"), "{}", shown.text);
    assert_eq!(
        names(&h.get("/v3/users?name=alice").await.body, "users"),
        ["alice"]
    );

    // A wrong original password is 401, exactly as an unknown user.
    let wrong = h
        .call(
            "POST",
            &format!("/v3/users/{uid}/password"),
            Some(json!({"user": {"password": "n3w", "original_password": "nope"}})),
        )
        .await
        .error(401, "requires authentication");
    let unknown = h
        .call(
            "POST",
            "/v3/users/nobody/password",
            Some(json!({"user": {"password": "n3w", "original_password": "nope"}})),
        )
        .await
        .error(401, "requires authentication");
    assert_eq!(wrong.text, unknown.text);
    assert!(h.revocations().is_empty());
    h.call(
        "POST",
        &format!("/v3/users/{uid}/password"),
        Some(json!({"user": {"password": "n3w", "original_password": "s3cret"}})),
    )
    .await
    .expect(204);
    let phc = h
        .store
        .snapshot()
        .users
        .get(&uid)
        .unwrap()
        .password_hash
        .clone()
        .unwrap();
    assert!(statera_identity::password::verify("n3w", &phc));
    assert_eq!(
        h.revocations()
            .iter()
            .filter(|r| r.user_id.as_deref() == Some(uid.as_str()))
            .count(),
        1
    );

    // Disabling revokes; an extra attribute set to null goes.
    let r = h
        .call(
            "PATCH",
            &format!("/v3/users/{uid}"),
            Some(json!({"user": {"enabled": false, "favourite_colour": null}})),
        )
        .await
        .expect(200);
    assert_eq!(r.body["user"]["enabled"], false);
    assert!(r.body["user"].get("favourite_colour").is_none());
    assert_eq!(
        h.revocations()
            .iter()
            .filter(|r| r.user_id.as_deref() == Some(uid.as_str()))
            .count(),
        2
    );

    // Deleting removes memberships and assignments, and revokes.
    let g = h.id_of("/v3/groups", "group", json!({"name": "g"})).await;
    h.call("PUT", &format!("/v3/groups/{g}/users/{uid}"), None)
        .await
        .expect(204);
    h.call("DELETE", &format!("/v3/users/{uid}"), None)
        .await
        .expect(204);
    assert!(
        h.store
            .snapshot()
            .groups
            .get(&g)
            .unwrap()
            .members
            .is_empty()
    );
    assert_eq!(
        h.revocations()
            .iter()
            .filter(|r| r.user_id.as_deref() == Some(uid.as_str()))
            .count(),
        3
    );
    h.get(&format!("/v3/users/{uid}"))
        .await
        .error(404, &format!("Could not find user: {uid}."));
}

#[tokio::test]
async fn groups_hold_members() {
    let h = H::new().await;
    let g = h
        .id_of(
            "/v3/groups",
            "group",
            json!({"name": "ops", "description": "o"}),
        )
        .await;
    let u = h.id_of("/v3/users", "user", json!({"name": "bob"})).await;
    h.call("HEAD", &format!("/v3/groups/{g}/users/{u}"), None)
        .await
        .expect(404);
    h.call("PUT", &format!("/v3/groups/{g}/users/{u}"), None)
        .await
        .expect(204);
    h.call("HEAD", &format!("/v3/groups/{g}/users/{u}"), None)
        .await
        .expect(204);
    assert_eq!(
        names(&h.get(&format!("/v3/groups/{g}/users")).await.body, "users"),
        ["bob"]
    );
    assert_eq!(
        names(
            &h.get(&format!("/v3/users/{u}/groups")).await.body,
            "groups"
        ),
        ["ops"]
    );
    h.call("PUT", &format!("/v3/groups/{g}/users/nobody"), None)
        .await
        .error(404, "Could not find user: nobody.");
    h.call("DELETE", &format!("/v3/groups/{g}/users/{u}"), None)
        .await
        .expect(204);
    h.call("DELETE", &format!("/v3/groups/{g}/users/{u}"), None)
        .await
        .expect(404);
    h.call(
        "POST",
        "/v3/groups",
        Some(json!({"group": {"name": "ops"}})),
    )
    .await
    .error(409, "Duplicate entry");
    h.call(
        "POST",
        "/v3/groups",
        Some(json!({"group": {"name": "x", "colour": "red"}})),
    )
    .await
    .error(400, "'colour' was unexpected");
    h.call("DELETE", &format!("/v3/groups/{g}"), None)
        .await
        .expect(204);
    h.get(&format!("/v3/groups/{g}"))
        .await
        .error(404, "Could not find group");
}

#[tokio::test]
async fn roles_imply_roles_without_cycles() {
    let h = H::new().await;
    let admin = h.id_of("/v3/roles", "role", json!({"name": "admin"})).await;
    let member = h
        .id_of("/v3/roles", "role", json!({"name": "member"}))
        .await;
    let reader = h
        .id_of("/v3/roles", "role", json!({"name": "reader"}))
        .await;
    h.call(
        "POST",
        "/v3/roles",
        Some(json!({"role": {"name": "Reader"}})),
    )
    .await
    .error(409, "Duplicate entry");
    // A domain role of the same name is another role.
    let dr = h
        .create(
            "/v3/roles",
            "role",
            json!({"name": "reader", "domain_id": "default"}),
        )
        .await;
    assert_eq!(dr["domain_id"], "default");
    assert_eq!(
        names(&h.get("/v3/roles").await.body, "roles"),
        ["admin", "member", "reader"]
    );
    assert_eq!(
        names(&h.get("/v3/roles?domain_id=default").await.body, "roles"),
        ["reader"]
    );

    let r = h
        .call("PUT", &format!("/v3/roles/{admin}/implies/{member}"), None)
        .await
        .expect(201);
    assert_eq!(r.body["role_inference"]["prior_role"]["id"], admin.as_str());
    assert_eq!(r.body["role_inference"]["implies"]["name"], "member");
    h.call("PUT", &format!("/v3/roles/{member}/implies/{reader}"), None)
        .await
        .expect(201);
    h.call("PUT", &format!("/v3/roles/{reader}/implies/{member}"), None)
        .await
        .error(400, "cycle");
    h.call("PUT", &format!("/v3/roles/{member}/implies/{admin}"), None)
        .await
        .error(403, "cannot be an implied roles");
    h.call("HEAD", &format!("/v3/roles/{admin}/implies/{member}"), None)
        .await
        .expect(204);
    h.get(&format!("/v3/roles/{admin}/implies/{member}"))
        .await
        .expect(200);
    h.get(&format!("/v3/roles/{admin}/implies/{reader}"))
        .await
        .expect(404);
    let all = h.get("/v3/role_inferences").await.expect(200);
    assert_eq!(all.body["role_inferences"].as_array().unwrap().len(), 2);
    let one = h
        .get(&format!("/v3/roles/{member}/implies"))
        .await
        .expect(200);
    assert_eq!(
        one.body["role_inference"]["implies"][0]["id"],
        reader.as_str()
    );
    h.call(
        "DELETE",
        &format!("/v3/roles/{member}/implies/{reader}"),
        None,
    )
    .await
    .expect(204);
    // Deleting a role removes it from what implies it.
    h.call("DELETE", &format!("/v3/roles/{member}"), None)
        .await
        .expect(204);
    assert!(
        h.store
            .snapshot()
            .roles
            .get(&admin)
            .unwrap()
            .implies
            .is_empty()
    );
}

#[tokio::test]
async fn grants_and_effective_role_assignments_expand_groups_inheritance_and_implied_roles() {
    let h = H::new().await;
    let p = h
        .id_of("/v3/projects", "project", json!({"name": "p"}))
        .await;
    let sub = h
        .id_of(
            "/v3/projects",
            "project",
            json!({"name": "sub", "parent_id": p}),
        )
        .await;
    let alice = h.id_of("/v3/users", "user", json!({"name": "alice"})).await;
    let bob = h.id_of("/v3/users", "user", json!({"name": "bob"})).await;
    let g = h
        .id_of("/v3/groups", "group", json!({"name": "team"}))
        .await;
    h.call("PUT", &format!("/v3/groups/{g}/users/{bob}"), None)
        .await
        .expect(204);
    let member = h
        .id_of("/v3/roles", "role", json!({"name": "member"}))
        .await;
    let reader = h
        .id_of("/v3/roles", "role", json!({"name": "reader"}))
        .await;
    h.call("PUT", &format!("/v3/roles/{member}/implies/{reader}"), None)
        .await
        .expect(201);

    // alice: member on p directly; the team: reader on p; alice: member on
    // every project of the default domain, inherited; alice: reader on the system.
    h.call(
        "PUT",
        &format!("/v3/projects/{p}/users/{alice}/roles/{member}"),
        None,
    )
    .await
    .expect(204);
    h.call(
        "PUT",
        &format!("/v3/projects/{p}/groups/{g}/roles/{reader}"),
        None,
    )
    .await
    .expect(204);
    h.call(
        "PUT",
        &format!(
            "/v3/OS-INHERIT/domains/default/users/{alice}/roles/{member}/inherited_to_projects"
        ),
        None,
    )
    .await
    .expect(204);
    h.call(
        "PUT",
        &format!("/v3/system/users/{alice}/roles/{reader}"),
        None,
    )
    .await
    .expect(204);
    h.call(
        "HEAD",
        &format!("/v3/projects/{p}/users/{alice}/roles/{member}"),
        None,
    )
    .await
    .expect(204);
    h.call(
        "HEAD",
        &format!("/v3/projects/{p}/users/{alice}/roles/{reader}"),
        None,
    )
    .await
    .expect(404);
    h.call(
        "GET",
        &format!("/v3/projects/{p}/users/{alice}/roles/{member}"),
        None,
    )
    .await
    .expect(204);
    h.call(
        "PUT",
        &format!("/v3/projects/{p}/users/{alice}/roles/nope"),
        None,
    )
    .await
    .error(404, "Could not find role: nope.");
    h.call(
        "PUT",
        &format!("/v3/projects/nope/users/{alice}/roles/{member}"),
        None,
    )
    .await
    .error(404, "Could not find project: nope.");
    assert_eq!(
        names(
            &h.get(&format!("/v3/projects/{p}/users/{alice}/roles"))
                .await
                .body,
            "roles"
        ),
        ["member"]
    );
    assert_eq!(
        names(
            &h.get(&format!(
                "/v3/OS-INHERIT/domains/default/users/{alice}/roles/inherited_to_projects"
            ))
            .await
            .body,
            "roles"
        ),
        ["member"]
    );

    let direct = h.get("/v3/role_assignments").await.expect(200);
    assert_eq!(direct.body["role_assignments"].as_array().unwrap().len(), 4);
    let inherited = h
        .get("/v3/role_assignments?scope.OS-INHERIT:inherited_to=projects")
        .await
        .expect(200);
    let rows = inherited.body["role_assignments"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["scope"]["domain"]["id"], "default");
    assert_eq!(rows[0]["scope"]["OS-INHERIT:inherited_to"], "projects");
    let system = h
        .get("/v3/role_assignments?scope.system=all")
        .await
        .expect(200);
    assert_eq!(
        system.body["role_assignments"][0]["scope"]["system"]["all"],
        true
    );

    // Effective, for sub: alice member (inherited) + reader (implied); not bob.
    let eff = h
        .get(&format!(
            "/v3/role_assignments?effective&include_names&scope.project.id={sub}"
        ))
        .await
        .expect(200);
    let mut got: Vec<(String, String)> = eff.body["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["user"]["name"].as_str().unwrap().to_string(),
                a["role"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("alice".to_string(), "member".to_string()),
            ("alice".into(), "reader".into())
        ]
    );
    let row = &eff.body["role_assignments"][0];
    assert_eq!(row["scope"]["project"]["name"], "sub");
    assert_eq!(row["scope"]["project"]["domain"]["name"], "Default");
    assert_eq!(row["user"]["domain"]["id"], "default");
    assert!(
        row["links"]["assignment"]
            .as_str()
            .unwrap()
            .contains("OS-INHERIT")
    );

    // A grant inherited from a project lands on the projects below it, not on it.
    let carol = h.id_of("/v3/users", "user", json!({"name": "carol"})).await;
    h.call(
        "PUT",
        &format!("/v3/OS-INHERIT/projects/{p}/users/{carol}/roles/{reader}/inherited_to_projects"),
        None,
    )
    .await
    .expect(204);
    let eff = h
        .get(&format!("/v3/role_assignments?effective&user.id={carol}"))
        .await
        .expect(200);
    let rows = eff.body["role_assignments"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", eff.text);
    assert_eq!(rows[0]["scope"]["project"]["id"], sub.as_str());
    assert!(rows[0]["scope"].get("OS-INHERIT:inherited_to").is_none());
    assert_eq!(
        names(
            &h.get(&format!("/v3/users/{carol}/projects")).await.body,
            "projects"
        ),
        ["sub"]
    );
    h.call(
        "DELETE",
        &format!("/v3/OS-INHERIT/projects/{p}/users/{carol}/roles/{reader}/inherited_to_projects"),
        None,
    )
    .await
    .expect(204);

    // Effective, for bob on p: reader through the group, with the membership link.
    let eff = h
        .get(&format!(
            "/v3/role_assignments?effective=true&user.id={bob}"
        ))
        .await
        .expect(200);
    let rows = eff.body["role_assignments"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", eff.text);
    assert_eq!(rows[0]["role"]["id"], reader.as_str());
    assert!(
        rows[0]["links"]["membership"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v3/groups/{g}/users/{bob}"))
    );
    assert!(rows[0].get("group").is_none());
    h.get(&format!("/v3/role_assignments?effective&group.id={g}"))
        .await
        .error(400, "Combining effective and group filter");
    // The user's projects (Horizon's project list).
    let mine = h
        .get(&format!("/v3/users/{alice}/projects"))
        .await
        .expect(200);
    assert_eq!(names(&mine.body, "projects"), ["p", "sub"]);
    let bobs = h
        .get(&format!("/v3/users/{bob}/projects"))
        .await
        .expect(200);
    assert_eq!(names(&bobs.body, "projects"), ["p"]);

    // Revoking a grant removes it and revokes the user's tokens.
    h.call(
        "DELETE",
        &format!("/v3/projects/{p}/users/{alice}/roles/{member}"),
        None,
    )
    .await
    .expect(204);
    h.call(
        "DELETE",
        &format!("/v3/projects/{p}/users/{alice}/roles/{member}"),
        None,
    )
    .await
    .error(
        404,
        &format!(
            "Could not find role assignment with role: {member}, user or group: {alice}, \
             project, domain, or system: {p}."
        ),
    );
    assert!(
        h.revocations()
            .iter()
            .any(|r| r.user_id.as_deref() == Some(alice.as_str()))
    );
}

#[tokio::test]
async fn application_credentials_belong_to_their_user_and_show_the_secret_once() {
    let h = H::new().await;
    let p = h
        .id_of("/v3/projects", "project", json!({"name": "p"}))
        .await;
    let alice = h.id_of("/v3/users", "user", json!({"name": "alice"})).await;
    let bob = h.id_of("/v3/users", "user", json!({"name": "bob"})).await;
    let member = h
        .id_of("/v3/roles", "role", json!({"name": "member"}))
        .await;
    h.id_of("/v3/roles", "role", json!({"name": "admin"})).await;
    let as_alice = [
        ("x-user-id", alice.as_str()),
        ("x-project-id", p.as_str()),
        ("x-roles", "member"),
    ];
    let path = format!("/v3/users/{alice}/application_credentials");
    let body = |v: Value| Some(json!({ "application_credential": v }).to_string());

    let r = h
        .raw(
            "POST",
            &path,
            &as_alice,
            body(json!({"name": "ci", "expires_at": "2999-01-01T00:00:00Z"})),
        )
        .await
        .expect(201);
    let c = &r.body["application_credential"];
    let cid = c["id"].as_str().unwrap().to_string();
    let secret = c["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 86);
    assert_eq!(c["project_id"], p.as_str());
    assert_eq!(c["roles"][0]["id"], member.as_str());
    assert_eq!(c["unrestricted"], false);
    assert!(
        c["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2999-01-01T00:00:00")
    );
    let stored = h
        .store
        .snapshot()
        .application_credentials
        .get(&cid)
        .unwrap()
        .clone();
    assert!(statera_identity::password::verify(
        secret,
        &stored.secret_hash
    ));

    // A chosen secret; a role the token does not carry is refused.
    let r = h
        .raw(
            "POST",
            &path,
            &as_alice,
            body(json!({"name": "mine", "secret": "chosen"})),
        )
        .await
        .expect(201);
    assert_eq!(r.body["application_credential"]["secret"], "chosen");
    h.raw(
        "POST",
        &path,
        &as_alice,
        body(json!({"name": "x", "roles": [{"name": "admin"}]})),
    )
    .await
    .error(
        400,
        "Cannot create an application credential with unassigned role",
    );
    h.raw(
        "POST",
        &path,
        &as_alice,
        body(json!({"name": "x", "roles": [{"id": "nope"}]})),
    )
    .await
    .error(404, "Could not find role: nope.");
    h.raw("POST", &path, &as_alice, body(json!({"name": "ci"})))
        .await
        .error(409, "Duplicate entry");
    h.raw(
        "POST",
        &path,
        &as_alice,
        body(json!({"name": "old", "expires_at": "2000-01-01T00:00:00"})),
    )
    .await
    .error(400, "expires_at");
    // Nobody creates for another user, even an admin.
    let as_bob = [
        ("x-user-id", bob.as_str()),
        ("x-project-id", p.as_str()),
        ("x-roles", "member"),
    ];
    h.raw("POST", &path, &as_bob, body(json!({"name": "steal"})))
        .await
        .error(
            403,
            "Cannot create an application credential for another user.",
        );
    h.call(
        "POST",
        &path,
        Some(json!({"application_credential": {"name": "adm"}})),
    )
    .await
    .expect(403);
    h.raw("GET", &path, &as_bob, None).await.expect(403);

    let list = h.raw("GET", &path, &as_alice, None).await.expect(200);
    assert_eq!(names(&list.body, "application_credentials"), ["ci", "mine"]);
    assert!(!list.text.contains("secret\""), "{}", list.text);
    let one = h
        .raw("GET", &format!("{path}/{cid}"), &as_alice, None)
        .await
        .expect(200);
    assert!(one.body["application_credential"].get("secret").is_none());
    h.raw("DELETE", &format!("{path}/{cid}"), &as_alice, None)
        .await
        .expect(204);
    assert!(
        h.revocations()
            .iter()
            .any(|r| r.application_credential_id.as_deref() == Some(cid.as_str()))
    );
    h.raw("GET", &format!("{path}/{cid}"), &as_alice, None)
        .await
        .error(404, "Could not find application credential");
}

#[tokio::test]
async fn services_endpoints_and_regions_form_the_catalog() {
    let h = H::new().await;
    let region = h
        .create("/v3/regions", "region", json!({"id": "RegionOne"}))
        .await;
    assert_eq!(region["id"], "RegionOne");
    h.call(
        "POST",
        "/v3/regions",
        Some(json!({"region": {"id": "RegionOne"}})),
    )
    .await
    .error(409, "Duplicate ID");
    h.call(
        "PUT",
        "/v3/regions/RegionTwo",
        Some(json!({"region": {"parent_region_id": "RegionOne"}})),
    )
    .await
    .expect(201);
    h.call(
        "PATCH",
        "/v3/regions/RegionOne",
        Some(json!({"region": {"parent_region_id": "RegionTwo"}})),
    )
    .await
    .error(400, "circular");
    let lb = h
        .id_of(
            "/v3/services",
            "service",
            json!({"type": "load-balancer", "name": "octavia"}),
        )
        .await;
    h.id_of(
        "/v3/services",
        "service",
        json!({"type": "network", "name": "neutron"}),
    )
    .await;
    let services = h.get("/v3/services?type=load-balancer").await.expect(200);
    assert_eq!(names(&services.body, "services"), ["octavia"]);
    assert_eq!(services.body["services"][0]["type"], "load-balancer");
    for interface in ["public", "internal", "admin"] {
        let e = h
            .create(
                "/v3/endpoints",
                "endpoint",
                json!({"service_id": lb, "interface": interface, "url": "http://127.0.0.1:9876",
                       "region_id": "RegionTwo"}),
            )
            .await;
        assert_eq!(e["region"], "RegionTwo");
    }
    h.call(
        "POST",
        "/v3/endpoints",
        Some(json!({"endpoint": {"service_id": lb, "interface": "private", "url": "http://x"}})),
    )
    .await
    .error(400, "'private' is not one of");
    h.call(
        "POST",
        "/v3/endpoints",
        Some(json!({"endpoint": {"service_id": "nope", "interface": "public", "url": "http://x"}})),
    )
    .await
    .error(404, "Could not find service: nope.");
    let public = h.get("/v3/endpoints?interface=public").await.expect(200);
    assert_eq!(public.body["endpoints"].as_array().unwrap().len(), 1);
    // A region with endpoints below it stays.
    h.call("DELETE", "/v3/regions/RegionOne", None)
        .await
        .error(403, "associated endpoints");
    // Deleting the service deletes its endpoints; then the regions go.
    h.call("DELETE", &format!("/v3/services/{lb}"), None)
        .await
        .expect(204);
    assert!(h.store.snapshot().catalog_endpoints.is_empty());
    h.call("DELETE", "/v3/regions/RegionOne", None)
        .await
        .expect(204);
    assert!(h.store.snapshot().regions.is_empty());
}

#[tokio::test]
async fn non_admins_are_refused_writes_and_read_only_themselves() {
    let h = H::new().await;
    let p = h
        .id_of("/v3/projects", "project", json!({"name": "p"}))
        .await;
    let other = h
        .id_of("/v3/projects", "project", json!({"name": "other"}))
        .await;
    let alice = h.id_of("/v3/users", "user", json!({"name": "alice"})).await;
    let bob = h.id_of("/v3/users", "user", json!({"name": "bob"})).await;
    let member = [
        ("x-user-id", alice.as_str()),
        ("x-project-id", p.as_str()),
        ("x-roles", "member,reader"),
    ];
    for (method, path, body) in [
        (
            "POST",
            "/v3/projects".to_string(),
            json!({"project": {"name": "x"}}),
        ),
        (
            "POST",
            "/v3/users".to_string(),
            json!({"user": {"name": "x"}}),
        ),
        (
            "POST",
            "/v3/domains".to_string(),
            json!({"domain": {"name": "x"}}),
        ),
        (
            "POST",
            "/v3/roles".to_string(),
            json!({"role": {"name": "x"}}),
        ),
        (
            "PATCH",
            format!("/v3/users/{alice}"),
            json!({"user": {"enabled": true}}),
        ),
        (
            "PUT",
            format!("/v3/projects/{p}/users/{alice}/roles/x"),
            Value::Null,
        ),
        ("DELETE", format!("/v3/users/{bob}"), Value::Null),
    ] {
        let body = (!body.is_null()).then(|| body.to_string());
        h.raw(method, &path, &member, body).await.error(
            403,
            "You are not authorized to perform the requested action: identity:",
        );
    }
    // Reads: itself, its own project; not others, not the lists.
    h.raw("GET", &format!("/v3/users/{alice}"), &member, None)
        .await
        .expect(200);
    h.raw("GET", &format!("/v3/users/{alice}/projects"), &member, None)
        .await
        .expect(200);
    h.raw("GET", &format!("/v3/users/{alice}/groups"), &member, None)
        .await
        .expect(200);
    h.raw("GET", &format!("/v3/projects/{p}"), &member, None)
        .await
        .expect(200);
    h.raw("GET", &format!("/v3/users/{bob}"), &member, None)
        .await
        .expect(403);
    h.raw("GET", &format!("/v3/projects/{other}"), &member, None)
        .await
        .expect(403);
    h.raw("GET", "/v3/users", &member, None).await.expect(403);
    h.raw("GET", "/v3/role_assignments", &member, None)
        .await
        .expect(403);
    // A system reader lists everything and writes nothing.
    let sys = [
        ("x-user-id", bob.as_str()),
        ("x-system", "all"),
        ("x-roles", "reader"),
    ];
    assert_eq!(
        names(
            &h.raw("GET", "/v3/users", &sys, None).await.expect(200).body,
            "users"
        ),
        ["alice", "bob"]
    );
    h.raw("GET", "/v3/role_assignments", &sys, None)
        .await
        .expect(200);
    h.raw(
        "POST",
        "/v3/projects",
        &sys,
        Some(json!({"project": {"name": "x"}}).to_string()),
    )
    .await
    .expect(403);
    // Nothing was written by the refusals.
    assert_eq!(h.store.snapshot().projects.len(), 2);
    assert_eq!(h.store.snapshot().users.len(), 2);
}

#[tokio::test]
async fn bad_bodies_get_keystones_400_never_a_500() {
    let h = H::new().await;
    for (path, body) in [
        ("/v3/projects", "not json"),
        ("/v3/projects", "[]"),
        ("/v3/projects", r#"{"projekt": {}}"#),
        ("/v3/projects", r#"{"project": "x"}"#),
        ("/v3/projects", r#"{"project": {}}"#),
        ("/v3/projects", r#"{"project": {"name": "   "}}"#),
        (
            "/v3/projects",
            r#"{"project": {"name": "x", "tags": ["a/b"]}}"#,
        ),
        ("/v3/domains", r#"{"domain": {"name": "x", "colour": 1}}"#),
        ("/v3/users", r#"{"user": {"name": 7}}"#),
        ("/v3/roles", r#"{"role": {"name": "x", "description": 3}}"#),
        ("/v3/services", r#"{"service": {"name": "x"}}"#),
        (
            "/v3/endpoints",
            r#"{"endpoint": {"interface": "public", "url": "http://x"}}"#,
        ),
        ("/v3/regions", r#"{"region": {"id": "a/b"}}"#),
    ] {
        let r = h.raw("POST", path, &[], Some(body.to_string())).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
        r.error(400, "");
    }
    assert_eq!(h.store.snapshot().projects.len(), 0);
    assert_eq!(h.store.snapshot().domains.len(), 1);
}

/// Every create and update route, every attribute, every wrong-typed or
/// oversized value: never a 5xx, every error in Keystone's shape, and an
/// answered error leaves the store as it was. Bounded: a fixed corpus.
#[tokio::test]
async fn no_body_gets_a_500_and_a_refused_one_changes_nothing() {
    let h = H::new().await;
    let p = h
        .id_of("/v3/projects", "project", json!({"name": "p"}))
        .await;
    let u = h.id_of("/v3/users", "user", json!({"name": "u"})).await;
    let g = h.id_of("/v3/groups", "group", json!({"name": "g"})).await;
    let r = h.id_of("/v3/roles", "role", json!({"name": "r"})).await;
    let s = h
        .id_of("/v3/services", "service", json!({"type": "t"}))
        .await;
    h.create("/v3/regions", "region", json!({"id": "R"})).await;
    let e = h
        .id_of(
            "/v3/endpoints",
            "endpoint",
            json!({"service_id": s, "interface": "public", "url": "http://x"}),
        )
        .await;
    let long = "x".repeat(70_000);
    let bad_values = [
        json!(null),
        json!(1),
        json!(-1.5),
        json!(true),
        json!([]),
        json!(["a", 1]),
        json!({}),
        json!(""),
        json!(" "),
        json!(long),
        json!("a/b,c"),
    ];
    let routes: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "POST",
            "/v3/domains".into(),
            "domain",
            vec![
                "name",
                "description",
                "enabled",
                "tags",
                "options",
                "explicit_domain_id",
            ],
        ),
        (
            "PATCH",
            "/v3/domains/default".into(),
            "domain",
            vec!["name", "description", "enabled", "tags", "options", "id"],
        ),
        (
            "POST",
            "/v3/projects".into(),
            "project",
            vec![
                "name",
                "domain_id",
                "parent_id",
                "description",
                "enabled",
                "tags",
                "is_domain",
                "options",
            ],
        ),
        (
            "PATCH",
            format!("/v3/projects/{p}"),
            "project",
            vec!["name", "description", "enabled", "tags", "options"],
        ),
        (
            "POST",
            "/v3/users".into(),
            "user",
            vec![
                "name",
                "domain_id",
                "password",
                "enabled",
                "default_project_id",
                "email",
                "description",
                "options",
            ],
        ),
        (
            "PATCH",
            format!("/v3/users/{u}"),
            "user",
            vec![
                "name",
                "password",
                "enabled",
                "default_project_id",
                "email",
                "description",
                "id",
            ],
        ),
        (
            "POST",
            format!("/v3/users/{u}/password"),
            "user",
            vec!["password", "original_password"],
        ),
        (
            "POST",
            "/v3/groups".into(),
            "group",
            vec!["name", "domain_id", "description"],
        ),
        (
            "PATCH",
            format!("/v3/groups/{g}"),
            "group",
            vec!["name", "description"],
        ),
        (
            "POST",
            "/v3/roles".into(),
            "role",
            vec!["name", "domain_id", "description", "options"],
        ),
        (
            "PATCH",
            format!("/v3/roles/{r}"),
            "role",
            vec!["name", "description", "options"],
        ),
        (
            "POST",
            "/v3/services".into(),
            "service",
            vec!["type", "name", "description", "enabled"],
        ),
        (
            "PATCH",
            format!("/v3/services/{s}"),
            "service",
            vec!["type", "name", "description", "enabled"],
        ),
        (
            "POST",
            "/v3/endpoints".into(),
            "endpoint",
            vec![
                "service_id",
                "interface",
                "url",
                "region_id",
                "region",
                "enabled",
            ],
        ),
        (
            "PATCH",
            format!("/v3/endpoints/{e}"),
            "endpoint",
            vec!["service_id", "interface", "url", "region_id", "enabled"],
        ),
        (
            "POST",
            "/v3/regions".into(),
            "region",
            vec!["id", "description", "parent_region_id"],
        ),
        (
            "PATCH",
            "/v3/regions/R".into(),
            "region",
            vec!["description", "parent_region_id"],
        ),
        (
            "POST",
            format!("/v3/users/{u}/application_credentials"),
            "application_credential",
            vec![
                "name",
                "secret",
                "expires_at",
                "roles",
                "unrestricted",
                "access_rules",
            ],
        ),
    ];
    let rows = |h: &H| {
        let s = h.store.snapshot();
        (
            s.domains.len(),
            s.projects.len(),
            s.users.len(),
            s.groups.len(),
            s.roles.len(),
            s.catalog_services.len(),
            s.catalog_endpoints.len(),
            s.regions.len(),
        )
    };
    let mut sent = 0;
    for (method, path, key, fields) in &routes {
        for field in fields {
            for bad in &bad_values {
                let before = rows(&h);
                let revocations = h.store.snapshot().revocations.len();
                let body = json!({ *key: { *field: bad } }).to_string();
                let resp = h
                    .raw(
                        method,
                        path,
                        &[
                            ("x-user-id", &u),
                            ("x-project-id", &p),
                            ("x-roles", "admin"),
                        ],
                        Some(body.clone()),
                    )
                    .await;
                sent += 1;
                assert!(
                    resp.status.as_u16() < 500,
                    "{method} {path} {body:.200}: {}",
                    resp.text
                );
                if resp.status.as_u16() >= 400 {
                    let code = resp.status.as_u16();
                    resp.error(code, "");
                    assert_eq!(
                        rows(&h),
                        before,
                        "{method} {path} {body:.200} changed the store"
                    );
                    assert_eq!(h.store.snapshot().revocations.len(), revocations);
                }
            }
        }
    }
    assert!(sent > 900, "{sent}");
}

/// Names are unique per domain however requests interleave: the check runs
/// inside the write that stores the record.
#[tokio::test]
async fn concurrent_creates_of_one_name_store_one_record() {
    let h = H::new().await;
    let post = |name: &'static str| {
        h.call(
            "POST",
            "/v3/users",
            Some(json!({"user": {"name": name, "password": "pw"}})),
        )
    };
    let (a, b, c, d) = tokio::join!(post("same"), post("same"), post("SAME"), post("same"));
    let mut codes: Vec<u16> = [a, b, c, d].iter().map(|r| r.status.as_u16()).collect();
    codes.sort();
    assert_eq!(codes, [201, 409, 409, 409]);
    assert_eq!(h.store.snapshot().users.len(), 1);
}

/// The identity rules are statera-policy's: an operator's policy file
/// governs them like Octavia's and Neutron's (here a member may list users,
/// and nobody may read a user, not even itself).
#[tokio::test]
async fn an_operator_policy_file_governs_the_identity_rules() {
    let mut h = H::new().await;
    let mut policy = statera_policy::Enforcer::defaults();
    policy
        .override_with(vec![
            ("identity:list_users".into(), "role:member".into()),
            ("identity:get_user".into(), "!".into()),
        ])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(pg::test_store(dir.path()).await);
    let mut state = AppState::lab(store.clone(), settings());
    state.auth = HeaderAuth::over(&store, &dir.path().join("token-keys"));
    state.policy = Arc::new(policy);
    h.router = statera_api::app(state);
    h.store = store;
    let member = [
        ("x-roles", "member"),
        ("x-user-id", "u1"),
        ("x-project-id", "p1"),
    ];
    h.raw("GET", "/v3/users", &member, None).await.expect(200);
    h.raw("GET", "/v3/users/u1", &member, None)
        .await
        .error(403, "identity:get_user");
    // Without the file a member may not list users but may read itself.
    let d = H::new().await;
    d.raw("GET", "/v3/users", &member, None)
        .await
        .error(403, "identity:list_users");
    let _ = dir;
}
