//! `/pools`: CRUD, listener binding, session persistence, TLS defaults, delete rules.

use crate::support::*;
use serde_json::{Value, json};

const POOL_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "provisioning_status",
    "operating_status",
    "protocol",
    "lb_algorithm",
    "session_persistence",
    "loadbalancers",
    "listeners",
    "members",
    "healthmonitor_id",
    "tls_enabled",
    "tls_container_ref",
    "ca_tls_container_ref",
    "crl_container_ref",
    "tls_ciphers",
    "tls_versions",
    "alpn_protocols",
    "tags",
    "created_at",
    "updated_at",
];

async fn post(h: &Harness, lb: &str, extra: Value) -> Resp {
    let mut p = json!({"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"});
    merge(&mut p, extra);
    h.post("/v2/lbaas/pools", json!({ "pool": p })).await
}

#[tokio::test]
async fn create_show_list_update_delete() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let r = post(&h, &lb, json!({})).await.expect(201);
    let p = &r.body["pool"];
    assert_fields(p, POOL_FIELDS);
    assert_fresh(p);
    assert_eq!(p["operating_status"], "OFFLINE");
    assert_eq!(p["loadbalancers"], json!([{"id": lb}]));
    assert_eq!(p["listeners"], json!([]));
    assert_eq!(p["members"], json!([]));
    assert_eq!(p["healthmonitor_id"], Value::Null);
    assert_eq!(p["session_persistence"], Value::Null);
    assert_eq!(p["tls_enabled"], false);
    for k in ["tls_ciphers", "tls_versions", "alpn_protocols"] {
        assert_eq!(p[k], Value::Null, "{k}");
    }
    let pid = id(p);
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    h.settle().await;
    let path = format!("/v2/lbaas/pools/{pid}");
    let r = h.get(&path).await.expect(200);
    assert_fields(&r.body["pool"], POOL_FIELDS);
    assert_eq!(r.body["pool"]["provisioning_status"], "ACTIVE");
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(200);
    assert_eq!(r.body["loadbalancer"]["pools"], json!([{"id": pid}]));
    let r = h.get("/v2/lbaas/pools").await.expect(200);
    assert_eq!(ids(&r.body, "pools"), vec![pid.clone()]);

    let r = h
        .put(
            &path,
            json!({"pool": {"name": "p", "lb_algorithm": "LEAST_CONNECTIONS", "admin_state_up": "0"}}),
        )
        .await
        .expect(200);
    let p = &r.body["pool"];
    assert_fields(p, POOL_FIELDS);
    assert_eq!(p["lb_algorithm"], "LEAST_CONNECTIONS");
    assert_eq!(p["admin_state_up"], false);
    assert_eq!(p["provisioning_status"], "PENDING_UPDATE");
    h.settle().await;
    for (k, v) in [
        ("protocol", json!("TCP")),
        ("loadbalancer_id", json!(lb)),
        ("listener_id", json!(uuid::Uuid::new_v4())),
        ("project_id", json!(PROJECT)),
        ("healthmonitor_id", json!(uuid::Uuid::new_v4())),
    ] {
        h.put(&path, json!({"pool": {k: v}})).await.error(400, k);
    }
    h.put(&path, json!({"pool": {"lb_algorithm": null}}))
        .await
        .expect(400);
    h.put(&path, json!({"pool": {"lb_algorithm": "FASTEST"}}))
        .await
        .error(400, "lb_algorithm");
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");

    h.delete(&path).await.expect(204);
    assert_eq!(h.status_of(&path, "pool").await, "PENDING_DELETE");
    h.settle().await;
    h.get(&path).await.error(404, "not found");
}

#[tokio::test]
async fn create_validation() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    h.post(
        "/v2/lbaas/pools",
        json!({"pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    )
    .await
    .expect(400);
    h.post(
        "/v2/lbaas/pools",
        json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP"}}),
    )
    .await
    .error(400, "lb_algorithm");
    h.post(
        "/v2/lbaas/pools",
        json!({"pool": {"loadbalancer_id": lb, "lb_algorithm": "ROUND_ROBIN"}}),
    )
    .await
    .error(400, "protocol");
    post(&h, &lb, json!({"protocol": "QUIC"}))
        .await
        .error(400, "protocol");
    post(&h, &lb, json!({"bogus": 1})).await.error(400, "bogus");
    post(&h, &lb, json!({"loadbalancer_id": uuid::Uuid::new_v4()}))
        .await
        .expect(404);
    post(&h, &lb, json!({"listener_id": uuid::Uuid::new_v4()}))
        .await
        .expect(404);
    // Every protocol and algorithm the API knows (UDP/SCTP pools exist
    // without a listener).
    for proto in ["HTTP", "HTTPS", "TCP", "UDP", "SCTP", "PROXY", "PROXYV2"] {
        post(&h, &lb, json!({"protocol": proto})).await.expect(201);
        h.settle().await;
    }
    for alg in [
        "ROUND_ROBIN",
        "LEAST_CONNECTIONS",
        "SOURCE_IP",
        "SOURCE_IP_PORT",
    ] {
        post(&h, &lb, json!({"lb_algorithm": alg}))
            .await
            .expect(201);
        h.settle().await;
    }
}

#[tokio::test]
async fn pool_on_listener_becomes_its_default() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let r = h
        .post(
            "/v2/lbaas/pools",
            json!({"pool": {"listener_id": l, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
        )
        .await
        .expect(201);
    let pid = id(&r.body["pool"]);
    assert_eq!(r.body["pool"]["listeners"], json!([{"id": l}]));
    assert_eq!(r.body["pool"]["loadbalancers"], json!([{"id": lb}]));
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/listeners/{l}"), "listener")
            .await,
        "PENDING_UPDATE"
    );
    h.settle().await;
    let r = h.get(&format!("/v2/lbaas/listeners/{l}")).await.expect(200);
    assert_eq!(r.body["listener"]["default_pool_id"], json!(pid));
    assert_eq!(r.body["listener"]["provisioning_status"], "ACTIVE");
    // A second default pool: 409.
    h.post(
        "/v2/lbaas/pools",
        json!({"pool": {"listener_id": l, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    )
    .await
    .expect(409);
    // Incompatible protocol.
    let l2 = h.listener(&lb, "HTTP", 81).await;
    h.post(
        "/v2/lbaas/pools",
        json!({"pool": {"listener_id": l2, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}}),
    )
    .await
    .error(
        400,
        "The pool protocol 'TCP' is invalid while the listener protocol is 'HTTP'.",
    );
    // A listener of another load balancer.
    let lb2 = h.lb().await;
    h.post(
        "/v2/lbaas/pools",
        json!({"pool": {"loadbalancer_id": lb2, "listener_id": l2, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    )
    .await
    .expect(400);
    // Deleting a listener's default pool is allowed; the listener forgets it.
    h.delete(&format!("/v2/lbaas/pools/{pid}"))
        .await
        .expect(204);
    h.settle().await;
    let r = h.get(&format!("/v2/lbaas/listeners/{l}")).await.expect(200);
    assert_eq!(r.body["listener"]["default_pool_id"], Value::Null);
    assert_eq!(r.body["listener"]["provisioning_status"], "ACTIVE");
}

#[tokio::test]
async fn session_persistence_rules() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let r = post(
        &h,
        &lb,
        json!({"session_persistence": {"type": "APP_COOKIE", "cookie_name": "sess"}}),
    )
    .await
    .expect(201);
    assert_eq!(
        r.body["pool"]["session_persistence"],
        json!({"type": "APP_COOKIE", "cookie_name": "sess",
               "persistence_timeout": null, "persistence_granularity": null})
    );
    let pid = id(&r.body["pool"]);
    h.settle().await;
    for sp in [
        json!({"type": "APP_COOKIE"}),
        json!({"type": "HTTP_COOKIE", "cookie_name": "x"}),
        json!({"type": "SOURCE_IP", "cookie_name": "x"}),
        json!({"type": "STICKY"}),
        json!({"cookie_name": "x"}),
        json!({"type": "APP_COOKIE", "cookie_name": "bad name"}),
        json!({"type": "APP_COOKIE", "cookie_name": "a;b"}),
        json!({"type": "SOURCE_IP", "persistence_timeout": 60}),
        json!({"type": "SOURCE_IP", "persistence_granularity": "255.255.255.0"}),
        json!({"type": "SOURCE_IP", "bogus": 1}),
        json!("SOURCE_IP"),
    ] {
        let r = post(&h, &lb, json!({"session_persistence": sp.clone()})).await;
        assert_eq!(r.status.as_u16(), 400, "{sp}: {}", r.text);
    }
    // HTTP_COOKIE and SOURCE_IP need nothing else; values as strings.
    post(
        &h,
        &lb,
        json!({"session_persistence": {"type": "HTTP_COOKIE"}}),
    )
    .await
    .expect(201);
    h.settle().await;
    // UDP pools: only SOURCE_IP, with timeout/granularity.
    let r = post(
        &h,
        &lb,
        json!({"protocol": "UDP", "session_persistence":
            {"type": "SOURCE_IP", "persistence_timeout": "120", "persistence_granularity": "255.255.255.0"}}),
    )
    .await
    .expect(201);
    assert_eq!(
        r.body["pool"]["session_persistence"]["persistence_timeout"],
        120
    );
    h.settle().await;
    post(
        &h,
        &lb,
        json!({"protocol": "UDP", "session_persistence": {"type": "HTTP_COOKIE"}}),
    )
    .await
    .expect(400);
    // PUT without a type keeps the existing type.
    let path = format!("/v2/lbaas/pools/{pid}");
    let r = h
        .put(
            &path,
            json!({"pool": {"session_persistence": {"cookie_name": "other"}}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["pool"]["session_persistence"]["type"], "APP_COOKIE");
    assert_eq!(
        r.body["pool"]["session_persistence"]["cookie_name"],
        "other"
    );
    h.settle().await;
    // null removes it.
    let r = h
        .put(&path, json!({"pool": {"session_persistence": null}}))
        .await
        .expect(200);
    assert_eq!(r.body["pool"]["session_persistence"], Value::Null);
}

#[tokio::test]
async fn tls_defaults_follow_tls_enabled() {
    let h = re_encrypting_harness().await;
    let lb = h.lb().await;
    let r = post(&h, &lb, json!({"tls_enabled": true}))
        .await
        .expect(201);
    let p = &r.body["pool"];
    assert_eq!(p["tls_enabled"], true);
    assert!(
        p["tls_ciphers"]
            .as_str()
            .unwrap()
            .starts_with("TLS_AES_128_GCM_SHA256:")
    );
    assert_eq!(p["tls_versions"], json!(["TLSv1.2", "TLSv1.3"]));
    assert_eq!(p["alpn_protocols"], json!(["h2", "http/1.1", "http/1.0"]));
    h.settle().await;
    post(&h, &lb, json!({"tls_enabled": true, "tls_versions": []}))
        .await
        .error(400, "tls_versions");
    post(&h, &lb, json!({"crl_container_ref": "http://barbican/crl"}))
        .await
        .expect(400);
}

#[tokio::test]
async fn pool_used_by_l7_policy_cannot_be_deleted() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let p = h.pool(&lb, "HTTP").await;
    let r = h
        .post(
            "/v2/lbaas/l7policies",
            json!({"l7policy": {"listener_id": l, "action": "REDIRECT_TO_POOL", "redirect_pool_id": p}}),
        )
        .await
        .expect(201);
    let pol = id(&r.body["l7policy"]);
    h.settle().await;
    h.delete(&format!("/v2/lbaas/pools/{p}"))
        .await
        .error(409, &format!("Pool {p} is in use by L7 policy {pol}"));
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}

#[tokio::test]
async fn pool_delete_takes_members_and_monitor() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let p = h.pool(&lb, "HTTP").await;
    let m = h.member(&p, "10.0.0.1", 80).await;
    let hm = h.monitor(&p, "TCP").await;
    let r = h.get(&format!("/v2/lbaas/pools/{p}")).await.expect(200);
    assert_eq!(r.body["pool"]["healthmonitor_id"], json!(hm));
    assert_eq!(r.body["pool"]["members"], json!([{"id": m}]));
    h.delete(&format!("/v2/lbaas/pools/{p}")).await.expect(204);
    h.settle().await;
    h.get(&format!("/v2/lbaas/healthmonitors/{hm}"))
        .await
        .expect(404);
    assert_eq!(h.store.snapshot().members.iter().count(), 0);
}

#[tokio::test]
async fn tls_can_be_turned_off_again() {
    let h = re_encrypting_harness().await;
    let lb = h.lb().await;
    let r = post(&h, &lb, json!({"tls_enabled": true}))
        .await
        .expect(201);
    let pid = id(&r.body["pool"]);
    h.settle().await;
    // Octavia keeps the TLS options of a pool that stops re-encrypting.
    let r = h
        .put(
            &format!("/v2/lbaas/pools/{pid}"),
            json!({"pool": {"tls_enabled": false}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["pool"]["tls_enabled"], false);
    h.settle().await;
    // Octavia accepts TLS options without tls_enabled (they apply once it is on).
    post(
        &h,
        &lb,
        json!({"tls_versions": ["TLSv1.3"], "alpn_protocols": ["h2"]}),
    )
    .await
    .expect(201);
}

/// This harness's fake data plane, stood in for a provider that re-encrypts
/// to members (as both of Statera's providers do).
async fn re_encrypting_harness() -> Harness {
    Harness::with_settings(|s| s.providers.iter_mut().for_each(|p| p.pool_tls = true)).await
}

#[tokio::test]
async fn pools_over_tls_are_501_where_the_provider_cannot_re_encrypt() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let r = post(&h, &lb, json!({"tls_enabled": true})).await;
    assert_eq!(r.status, 501, "{}", r.text);
    assert_eq!(
        r.fault(),
        "Provider 'native' does not support a requested option: pools over TLS (tls_enabled)"
    );
    // Nor turned on later.
    let r = post(&h, &lb, json!({})).await.expect(201);
    let pid = id(&r.body["pool"]);
    h.settle().await;
    let r = h
        .put(
            &format!("/v2/lbaas/pools/{pid}"),
            json!({"pool": {"tls_enabled": true}}),
        )
        .await;
    assert_eq!(r.status, 501, "{}", r.text);
}

#[tokio::test]
async fn pools_asking_http2_only_to_members_are_501_where_the_provider_speaks_http11_to_them() {
    let h = Harness::with_settings(|s| {
        s.providers.iter_mut().for_each(|p| {
            p.pool_tls = true;
            p.pool_h2 = false;
        })
    })
    .await;
    let lb = h.lb().await;
    let r = post(
        &h,
        &lb,
        json!({"tls_enabled": true, "alpn_protocols": ["h2"]}),
    )
    .await;
    assert_eq!(r.status, 501, "{}", r.text);
    assert_eq!(
        r.fault(),
        "Provider 'native' does not support a requested option: HTTP/2 to members \
         (alpn_protocols naming only h2)"
    );
    // h2 among others is fine (HTTP/1.1 is offered), as is the default list.
    post(
        &h,
        &lb,
        json!({"tls_enabled": true, "alpn_protocols": ["h2", "http/1.1"]}),
    )
    .await
    .expect(201);
    h.settle().await;
    let r = post(&h, &lb, json!({"tls_enabled": true}))
        .await
        .expect(201);
    let pid = id(&r.body["pool"]);
    h.settle().await;
    // Nor asked for later.
    let r = h
        .put(
            &format!("/v2/lbaas/pools/{pid}"),
            json!({"pool": {"alpn_protocols": ["h2"]}}),
        )
        .await;
    assert_eq!(r.status, 501, "{}", r.text);
}
