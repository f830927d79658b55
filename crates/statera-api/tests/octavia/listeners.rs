//! `/listeners`: CRUD, defaults, validation, protocol compatibility, port clash.

use crate::support::*;
use serde_json::{Value, json};

const LISTENER_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "provisioning_status",
    "operating_status",
    "protocol",
    "protocol_port",
    "connection_limit",
    "default_pool_id",
    "loadbalancers",
    "l7policies",
    "insert_headers",
    "timeout_client_data",
    "timeout_member_connect",
    "timeout_member_data",
    "timeout_tcp_inspect",
    "default_tls_container_ref",
    "sni_container_refs",
    "client_ca_tls_container_ref",
    "client_authentication",
    "client_crl_container_ref",
    "allowed_cidrs",
    "tls_ciphers",
    "tls_versions",
    "alpn_protocols",
    "hsts_max_age",
    "hsts_include_subdomains",
    "hsts_preload",
    "tags",
    "created_at",
    "updated_at",
];

async fn post(h: &Harness, lb: &str, extra: Value) -> Resp {
    let mut l = json!({"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80});
    merge(&mut l, extra);
    h.post("/v2/lbaas/listeners", json!({ "listener": l }))
        .await
}

#[tokio::test]
async fn create_show_list_update_delete() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let r = post(&h, &lb, json!({})).await.expect(201);
    let l = &r.body["listener"];
    assert_fields(l, LISTENER_FIELDS);
    assert_fresh(l);
    assert_eq!(l["operating_status"], "OFFLINE");
    assert_eq!(l["loadbalancers"], json!([{"id": lb}]));
    assert_eq!(l["l7policies"], json!([]));
    assert_eq!(l["connection_limit"], -1);
    assert_eq!(l["timeout_client_data"], 50000);
    assert_eq!(l["timeout_member_connect"], 5000);
    assert_eq!(l["timeout_member_data"], 50000);
    assert_eq!(l["timeout_tcp_inspect"], 0);
    assert_eq!(l["insert_headers"], json!({}));
    assert_eq!(l["sni_container_refs"], json!([]));
    assert_eq!(l["allowed_cidrs"], Value::Null);
    assert_eq!(l["client_authentication"], "NONE");
    assert_eq!(l["default_pool_id"], Value::Null);
    assert_eq!(l["admin_state_up"], true);
    assert_eq!(l["hsts_include_subdomains"], false);
    assert_eq!(l["hsts_preload"], false);
    // TLS defaults only for TERMINATED_HTTPS.
    for k in [
        "tls_ciphers",
        "tls_versions",
        "alpn_protocols",
        "hsts_max_age",
    ] {
        assert_eq!(l[k], Value::Null, "{k}");
    }
    let lid = id(l);
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    h.settle().await;
    let path = format!("/v2/lbaas/listeners/{lid}");
    let r = h.get(&path).await.expect(200);
    assert_fields(&r.body["listener"], LISTENER_FIELDS);
    assert_eq!(r.body["listener"]["provisioning_status"], "ACTIVE");
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // The data plane was handed a whole configuration with the listener.
    {
        let applied = h.plane.applied.lock().unwrap();
        let cfg = applied.last().expect("a configuration was applied");
        assert_eq!(cfg.lb_id.to_string(), lb);
        assert!(cfg.listeners.iter().any(|x| x.id.to_string() == lid));
    }
    // The LB lists it by reference.
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(200);
    assert_eq!(r.body["loadbalancer"]["listeners"], json!([{"id": lid}]));

    let r = h.get("/v2/lbaas/listeners").await.expect(200);
    assert_eq!(ids(&r.body, "listeners"), vec![lid.clone()]);
    assert!(r.body["listeners_links"].is_array());

    let r = h
        .put(
            &path,
            json!({"listener": {"name": "web", "connection_limit": "5000",
                "timeout_client_data": 1000, "insert_headers": {"X-Forwarded-For": "true"}}}),
        )
        .await
        .expect(200);
    let l = &r.body["listener"];
    assert_fields(l, LISTENER_FIELDS);
    assert_eq!(l["name"], "web");
    assert_eq!(l["connection_limit"], 5000);
    assert_eq!(l["timeout_client_data"], 1000);
    assert_eq!(l["insert_headers"], json!({"X-Forwarded-For": "true"}));
    assert_eq!(l["provisioning_status"], "PENDING_UPDATE");
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    h.settle().await;
    // null resets to the defaults.
    let r = h
        .put(
            &path,
            json!({"listener": {"connection_limit": null, "timeout_client_data": null,
                "timeout_member_connect": null, "timeout_member_data": null,
                "timeout_tcp_inspect": null, "insert_headers": null}}),
        )
        .await
        .expect(200);
    let l = &r.body["listener"];
    assert_eq!(l["connection_limit"], -1);
    assert_eq!(l["timeout_client_data"], 50000);
    assert_eq!(l["timeout_member_connect"], 5000);
    assert_eq!(l["timeout_member_data"], 50000);
    assert_eq!(l["timeout_tcp_inspect"], 0);
    assert_eq!(l["insert_headers"], json!({}));
    h.settle().await;

    h.delete(&path).await.expect(204);
    assert_eq!(h.status_of(&path, "listener").await, "PENDING_DELETE");
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    h.settle().await;
    h.get(&path).await.error(404, "not found");
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}

#[tokio::test]
async fn field_validation() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    for (extra, field) in [
        (json!({"protocol_port": 0}), "protocol_port"),
        (json!({"protocol_port": 65536}), "protocol_port"),
        (json!({"protocol_port": "eighty"}), "protocol_port"),
        (json!({"protocol": "FTP"}), "protocol"),
        (json!({"connection_limit": -2}), "connection_limit"),
        (
            json!({"timeout_client_data": 2_073_600_001_i64}),
            "timeout_client_data",
        ),
        (
            json!({"timeout_member_connect": -1}),
            "timeout_member_connect",
        ),
        (
            json!({"timeout_member_data": 2_073_600_001_i64}),
            "timeout_member_data",
        ),
        (json!({"timeout_tcp_inspect": -1}), "timeout_tcp_inspect"),
        (
            json!({"client_authentication": "SOMETIMES"}),
            "client_authentication",
        ),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"admin_state_up": "perhaps"}), "admin_state_up"),
        (json!({"default_pool_id": "pool"}), "default_pool_id"),
        (json!({"allowed_cidrs": ["10.0.0.0/33"]}), "allowed_cidrs"),
        (json!({"bogus": true}), "bogus"),
    ] {
        post(&h, &lb, extra.clone()).await.error(400, field);
    }
    h.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP"}}),
    )
    .await
    .error(
        400,
        "Invalid input for field/attribute protocol_port. Value: 'None'. Mandatory field missing.",
    );
    h.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"protocol": "HTTP", "protocol_port": 80}}),
    )
    .await
    .error(400, "loadbalancer_id");
    h.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": uuid::Uuid::new_v4(), "protocol": "HTTP", "protocol_port": 80}}),
    )
    .await
    .error(404, "not found");
    // Numbers as strings, the maximum timeout.
    let r = post(
        &h,
        &lb,
        json!({"protocol_port": "8080", "timeout_client_data": "2073600000",
               "connection_limit": "0", "admin_state_up": "false"}),
    )
    .await
    .expect(201);
    let l = &r.body["listener"];
    assert_eq!(l["protocol_port"], 8080);
    assert_eq!(l["timeout_client_data"], 2_073_600_000_i64);
    assert_eq!(l["connection_limit"], 0);
    assert_eq!(l["admin_state_up"], false);
    let lid = id(l);
    h.settle().await;
    // Immutable on PUT.
    for (k, v) in [
        ("protocol", json!("TCP")),
        ("protocol_port", json!(81)),
        ("loadbalancer_id", json!(lb)),
        ("project_id", json!(PROJECT)),
        ("id", json!(lid)),
    ] {
        h.put(
            &format!("/v2/lbaas/listeners/{lid}"),
            json!({"listener": {k: v}}),
        )
        .await
        .error(400, k);
    }
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}

#[tokio::test]
async fn allowed_cidrs() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let r = post(
        &h,
        &lb,
        json!({"allowed_cidrs": ["10.0.0.5/24", "192.168.1.0/24"]}),
    )
    .await
    .expect(201);
    assert_eq!(
        r.body["listener"]["allowed_cidrs"],
        json!(["10.0.0.0/24", "192.168.1.0/24"])
    );
    let lid = id(&r.body["listener"]);
    h.settle().await;
    // The VIP is IPv4: an IPv6 CIDR matches no VIP.
    post(
        &h,
        &lb,
        json!({"protocol_port": 81, "allowed_cidrs": ["2001:db8::/64"]}),
    )
    .await
    .expect(400);
    let r = h
        .put(
            &format!("/v2/lbaas/listeners/{lid}"),
            json!({"listener": {"allowed_cidrs": []}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["listener"]["allowed_cidrs"], Value::Null);
}

#[tokio::test]
async fn insert_headers_rules() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let r = post(
        &h,
        &lb,
        json!({"insert_headers": {"X-Forwarded-For": "true", "X-Forwarded-Port": "True",
               "X-Forwarded-Proto": "false"}}),
    )
    .await
    .expect(201);
    let hdrs = &r.body["listener"]["insert_headers"];
    for (k, _) in hdrs.as_object().unwrap() {
        assert!(hdrs[k].is_string(), "values are strings: {hdrs}");
    }
    assert_eq!(hdrs["X-Forwarded-For"], "true");
    h.settle().await;
    // TLS-only headers on an HTTP listener, unknown keys.
    post(
        &h,
        &lb,
        json!({"protocol_port": 81, "insert_headers": {"X-SSL-Client-CN": "true"}}),
    )
    .await
    .error(
        400,
        "X-SSL-Client-CN is not a valid option for insert_headers",
    );
    post(
        &h,
        &lb,
        json!({"protocol_port": 81, "insert_headers": {"X-Bogus": "true"}}),
    )
    .await
    .error(400, "X-Bogus is not a valid option for insert_headers");
    // Header insertion on a TCP listener.
    post(
        &h,
        &lb,
        json!({"protocol": "TCP", "protocol_port": 81, "insert_headers": {"X-Forwarded-For": "true"}}),
    )
    .await
    .error(400, "insert-headers is not a valid option for a TCP protocol listener.");
    post(
        &h,
        &lb,
        json!({"protocol": "HTTPS", "protocol_port": 81, "insert_headers": {"X-Forwarded-For": "true"}}),
    )
    .await
    .error(400, "insert-headers is not a valid option for a HTTPS protocol listener.");
    post(
        &h,
        &lb,
        json!({"protocol_port": 81, "insert_headers": "yes"}),
    )
    .await
    .error(400, "insert_headers");
}

#[tokio::test]
async fn tls_rules() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    for (proto, extra) in [
        (
            "HTTP",
            json!({"default_tls_container_ref": "http://barbican/c1"}),
        ),
        ("TCP", json!({"sni_container_refs": ["http://barbican/c1"]})),
        (
            "HTTPS",
            json!({"default_tls_container_ref": "http://barbican/c1"}),
        ),
    ] {
        let mut e = json!({"protocol": proto});
        merge(&mut e, extra);
        post(&h, &lb, e).await.error(
            400,
            &format!(
                "Certificate container references are not allowed on {proto} protocol listeners."
            ),
        );
    }
    post(
        &h,
        &lb,
        json!({"client_ca_tls_container_ref": "http://barbican/ca"}),
    )
    .await
    .expect(400);
    post(&h, &lb, json!({"tls_versions": ["TLSv1.2"]}))
        .await
        .expect(400);
    post(&h, &lb, json!({"hsts_max_age": 10})).await.expect(400);
    // TERMINATED_HTTPS needs a certificate (400) …
    post(
        &h,
        &lb,
        json!({"protocol": "TERMINATED_HTTPS", "protocol_port": 443}),
    )
    .await
    .expect(400);
    post(
        &h,
        &lb,
        json!({"protocol": "TERMINATED_HTTPS", "protocol_port": 443,
               "default_tls_container_ref": "http://barbican/c1", "tls_versions": []}),
    )
    .await
    .expect(400);
    // … that the caller can read from the key manager (the readable case is
    // in tests/key_manager.rs).
    post(
        &h,
        &lb,
        json!({"protocol": "TERMINATED_HTTPS", "protocol_port": 443,
               "default_tls_container_ref": "http://barbican/c1"}),
    )
    .await
    .error(
        400,
        "Could not retrieve certificate: ['http://barbican/c1']",
    );
    // Statera deliberately differs: SCTP is 501 with the native provider.
    post(&h, &lb, json!({"protocol": "SCTP", "protocol_port": 9100}))
        .await
        .expect(501);
    // UDP and PROMETHEUS listeners are served by the native provider.
    for (proto, port) in [("UDP", 9101), ("PROMETHEUS", 9102)] {
        post(&h, &lb, json!({"protocol": proto, "protocol_port": port}))
            .await
            .expect(201);
        h.settle().await;
    }
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}

#[tokio::test]
async fn port_clash_is_a_conflict() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    h.listener(&lb, "HTTP", 80).await;
    // TCP/80 and HTTP/80 are both TCP-family; UDP/80 is another family.
    post(&h, &lb, json!({"protocol": "TCP"})).await.error(
        409,
        "Another Listener on this Load Balancer is already using protocol HTTP and protocol_port 80",
    );
    post(&h, &lb, json!({})).await.expect(409);
    post(&h, &lb, json!({"protocol": "HTTPS"}))
        .await
        .expect(409);
    post(&h, &lb, json!({"protocol": "UDP"})).await.expect(201);
    h.settle().await;
    // Another port, or the same port on another LB, is fine.
    post(&h, &lb, json!({"protocol": "TCP", "protocol_port": 81}))
        .await
        .expect(201);
    h.settle().await;
    let lb2 = h.lb().await;
    post(&h, &lb2, json!({})).await.expect(201);
}

#[tokio::test]
async fn default_pool_compatibility() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let mut pools = std::collections::HashMap::new();
    for proto in ["HTTP", "HTTPS", "TCP", "PROXY", "PROXYV2"] {
        pools.insert(proto, h.pool(&lb, proto).await);
    }
    // §5.3, the TCP-family rows the native provider serves.
    let table: &[(&str, &[&str])] = &[
        ("HTTP", &["HTTP", "PROXY", "PROXYV2"]),
        ("HTTPS", &["HTTPS", "PROXY", "PROXYV2", "TCP"]),
        ("TCP", &["HTTP", "HTTPS", "PROXY", "PROXYV2", "TCP"]),
    ];
    let mut port = 1000;
    for (listener, ok) in table {
        for (pool_proto, pool_id) in &pools {
            port += 1;
            let r = post(
                &h,
                &lb,
                json!({"protocol": listener, "protocol_port": port, "default_pool_id": pool_id}),
            )
            .await;
            if ok.contains(pool_proto) {
                let r = r.expect(201);
                assert_eq!(r.body["listener"]["default_pool_id"], json!(pool_id));
                h.settle().await;
            } else {
                r.error(
                    400,
                    &format!(
                        "The pool protocol '{pool_proto}' is invalid while the listener protocol is '{listener}'."
                    ),
                );
            }
        }
    }
    // A pool that does not exist, or is on another load balancer.
    post(
        &h,
        &lb,
        json!({"protocol_port": 2000, "default_pool_id": uuid::Uuid::new_v4()}),
    )
    .await
    .expect(404);
    let lb2 = h.lb().await;
    let foreign = h.pool(&lb2, "HTTP").await;
    post(
        &h,
        &lb,
        json!({"protocol_port": 2000, "default_pool_id": foreign}),
    )
    .await
    .expect(404);
    // PUT: set, then clear with null.
    let l = h.listener(&lb, "HTTP", 2001).await;
    let path = format!("/v2/lbaas/listeners/{l}");
    h.put(
        &path,
        json!({"listener": {"default_pool_id": pools["TCP"]}}),
    )
    .await
    .expect(400);
    let r = h
        .put(
            &path,
            json!({"listener": {"default_pool_id": pools["HTTP"]}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["listener"]["default_pool_id"], json!(pools["HTTP"]));
    h.settle().await;
    // The pool shows the listener (pools may be shared).
    let r = h
        .get(&format!("/v2/lbaas/pools/{}", pools["HTTP"]))
        .await
        .expect(200);
    assert!(
        r.body["pool"]["listeners"]
            .as_array()
            .unwrap()
            .contains(&json!({"id": l})),
        "{}",
        r.text
    );
    let r = h
        .put(&path, json!({"listener": {"default_pool_id": null}}))
        .await
        .expect(200);
    assert_eq!(r.body["listener"]["default_pool_id"], Value::Null);
}

#[tokio::test]
async fn stats_shape() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    for path in [
        format!("/v2/lbaas/listeners/{l}/stats"),
        format!("/v2/lbaas/loadbalancers/{lb}/stats"),
    ] {
        let r = h.get(&path).await.expect(200);
        assert_fields(
            &r.body["stats"],
            &[
                "bytes_in",
                "bytes_out",
                "active_connections",
                "total_connections",
                "request_errors",
            ],
        );
        for (_, v) in r.body["stats"].as_object().unwrap() {
            assert!(v.is_u64(), "{}", r.text);
        }
    }
}
