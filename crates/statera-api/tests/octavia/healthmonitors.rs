//! `/healthmonitors`: CRUD, defaults per type, validation, pool compatibility.

use crate::support::*;
use serde_json::{Value, json};

const HM_FIELDS: &[&str] = &[
    "id",
    "name",
    "type",
    "delay",
    "timeout",
    "max_retries",
    "max_retries_down",
    "http_method",
    "url_path",
    "expected_codes",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "pools",
    "provisioning_status",
    "operating_status",
    "created_at",
    "updated_at",
    "tags",
    "http_version",
    "domain_name",
];

async fn post(h: &Harness, pool: &str, extra: Value) -> Resp {
    let mut m =
        json!({"pool_id": pool, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2});
    merge(&mut m, extra);
    h.post("/v2/lbaas/healthmonitors", json!({ "healthmonitor": m }))
        .await
}

#[tokio::test]
async fn create_show_list_update_delete() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let p = h.pool(&lb, "HTTP").await;
    let r = post(&h, &p, json!({})).await.expect(201);
    let m = &r.body["healthmonitor"];
    assert_fields(m, HM_FIELDS);
    assert_fresh(m);
    assert_eq!(m["operating_status"], "OFFLINE");
    assert_eq!(m["pools"], json!([{"id": p}]));
    assert_eq!(m["max_retries_down"], 3);
    assert_eq!(m["http_method"], "GET");
    assert_eq!(m["url_path"], "/");
    assert_eq!(m["expected_codes"], "200");
    assert_eq!(m["http_version"], Value::Null);
    assert_eq!(m["domain_name"], Value::Null);
    assert_eq!(m["delay"], 5);
    assert_eq!(m["timeout"], 3);
    assert_eq!(m["max_retries"], 2);
    let hid = id(m);
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/pools/{p}"), "pool").await,
        "PENDING_UPDATE"
    );
    h.settle().await;
    let path = format!("/v2/lbaas/healthmonitors/{hid}");
    let r = h.get(&path).await.expect(200);
    assert_fields(&r.body["healthmonitor"], HM_FIELDS);
    assert_eq!(r.body["healthmonitor"]["provisioning_status"], "ACTIVE");
    // Operating status of a monitor follows admin_state_up.
    assert_eq!(r.body["healthmonitor"]["operating_status"], "ONLINE");
    let r = h.get(&format!("/v2/lbaas/pools/{p}")).await.expect(200);
    assert_eq!(r.body["pool"]["healthmonitor_id"], json!(hid));
    let r = h.get("/v2/lbaas/healthmonitors").await.expect(200);
    assert_eq!(ids(&r.body, "healthmonitors"), vec![hid.clone()]);

    let r = h
        .put(
            &path,
            json!({"healthmonitor": {"delay": "10", "max_retries_down": 5, "http_method": "HEAD",
                "url_path": "/health", "expected_codes": "200-204", "http_version": 1.1,
                "domain_name": "example.com", "admin_state_up": false}}),
        )
        .await
        .expect(200);
    let m = &r.body["healthmonitor"];
    assert_fields(m, HM_FIELDS);
    assert_eq!(m["delay"], 10);
    assert_eq!(m["http_method"], "HEAD");
    assert_eq!(m["expected_codes"], "200-204");
    assert_eq!(m["http_version"], 1.1);
    assert!(m["http_version"].is_number());
    assert_eq!(m["domain_name"], "example.com");
    assert_eq!(m["provisioning_status"], "PENDING_UPDATE");
    h.settle().await;
    let r = h.get(&path).await.expect(200);
    assert_eq!(r.body["healthmonitor"]["operating_status"], "OFFLINE");
    // null resets to the defaults.
    let r = h
        .put(
            &path,
            json!({"healthmonitor": {"max_retries_down": null, "http_method": null,
                "url_path": null, "expected_codes": null}}),
        )
        .await
        .expect(200);
    let m = &r.body["healthmonitor"];
    assert_eq!(m["max_retries_down"], 3);
    assert_eq!(m["http_method"], "GET");
    assert_eq!(m["url_path"], "/");
    assert_eq!(m["expected_codes"], "200");
    h.settle().await;
    for k in ["delay", "timeout", "max_retries"] {
        h.put(&path, json!({"healthmonitor": {k: null}}))
            .await
            .error(400, k);
    }
    for (k, v) in [
        ("type", json!("TCP")),
        ("pool_id", json!(p)),
        ("project_id", json!(PROJECT)),
    ] {
        h.put(&path, json!({"healthmonitor": {k: v}}))
            .await
            .error(400, k);
    }
    h.delete(&path).await.expect(204);
    assert_eq!(h.status_of(&path, "healthmonitor").await, "PENDING_DELETE");
    h.settle().await;
    h.get(&path).await.error(404, "not found");
    let r = h.get(&format!("/v2/lbaas/pools/{p}")).await.expect(200);
    assert_eq!(r.body["pool"]["healthmonitor_id"], Value::Null);
}

#[tokio::test]
async fn non_http_monitors_have_no_http_fields() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    for kind in ["TCP", "PING", "TLS-HELLO"] {
        let p = h.pool(&lb, "TCP").await;
        let r = post(&h, &p, json!({"type": kind})).await.expect(201);
        let m = &r.body["healthmonitor"];
        for k in ["http_method", "url_path", "expected_codes"] {
            assert_eq!(m[k], Value::Null, "{kind} {k}");
        }
        assert_eq!(m["max_retries_down"], 3);
        h.settle().await;
        for (k, v) in [
            ("http_method", json!("GET")),
            ("url_path", json!("/")),
            ("expected_codes", json!("200")),
        ] {
            let p2 = h.pool(&lb, "TCP").await;
            post(&h, &p2, json!({"type": kind, k: v})).await.error(
                400,
                &format!("{k} is not a valid option for health monitors of type {kind}"),
            );
            let hid = id(&r.body["healthmonitor"]);
            h.put(
                &format!("/v2/lbaas/healthmonitors/{hid}"),
                json!({"healthmonitor": {k: v}}),
            )
            .await
            .expect(400);
        }
    }
    // HTTPS monitors get the HTTP defaults too.
    let p = h.pool(&lb, "HTTPS").await;
    let r = post(&h, &p, json!({"type": "HTTPS"})).await.expect(201);
    assert_eq!(r.body["healthmonitor"]["url_path"], "/");
}

#[tokio::test]
async fn validation() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let p = h.pool(&lb, "HTTP").await;
    for (extra, field) in [
        (json!({"max_retries": 0}), "max_retries"),
        (json!({"max_retries": 11}), "max_retries"),
        (json!({"max_retries_down": 0}), "max_retries_down"),
        (json!({"max_retries_down": 11}), "max_retries_down"),
        (json!({"delay": -1}), "delay"),
        (json!({"timeout": -1}), "timeout"),
        (json!({"delay": null}), "delay"),
        (json!({"type": "ICMP"}), "type"),
        (json!({"http_method": "FETCH"}), "http_method"),
        (json!({"expected_codes": "abc"}), "expected_codes"),
        (json!({"expected_codes": "2000"}), "expected_codes"),
        (json!({"expected_codes": "200-"}), "expected_codes"),
        (json!({"url_path": "health"}), "url_path"),
        (json!({"url_path": "/a b"}), "url_path"),
        (json!({"url_path": "http://example.com/"}), "url_path"),
        (json!({"http_version": 2.0}), "http_version"),
        (json!({"domain_name": "bad_domain!"}), "domain_name"),
        (json!({"pool_id": "pool"}), "pool_id"),
        (json!({"bogus": 1}), "bogus"),
    ] {
        post(&h, &p, extra).await.error(400, field);
    }
    // domain_name needs http_version, and it must be 1.1.
    post(&h, &p, json!({"domain_name": "example.com"}))
        .await
        .expect(400);
    post(
        &h,
        &p,
        json!({"domain_name": "example.com", "http_version": 1.0}),
    )
    .await
    .expect(400);
    post(&h, &p, json!({"pool_id": uuid::Uuid::new_v4()}))
        .await
        .expect(404);
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // Accepted forms.
    let r = post(
        &h,
        &p,
        json!({"delay": "3", "timeout": "2", "max_retries": "10", "max_retries_down": "1",
               "expected_codes": "200, 202", "http_version": "1.1", "domain_name": "a.example.com",
               "url_path": "/status?full=1"}),
    )
    .await
    .expect(201);
    assert_eq!(r.body["healthmonitor"]["max_retries"], 10);
    h.settle().await;
    // One monitor per pool.
    post(&h, &p, json!({}))
        .await
        .error(409, "This pool already has a health monitor");
}

#[tokio::test]
async fn pool_compatibility() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    // §5.4
    let table: &[(&str, &[&str])] = &[
        ("HTTP", &["HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO"]),
        ("TCP", &["HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO"]),
        ("PROXY", &["HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO"]),
        ("UDP", &["HTTP", "TCP", "UDP-CONNECT", "SCTP"]),
        ("SCTP", &["HTTP", "TCP", "UDP-CONNECT", "SCTP"]),
    ];
    let all = [
        "HTTP",
        "HTTPS",
        "PING",
        "TCP",
        "TLS-HELLO",
        "UDP-CONNECT",
        "SCTP",
    ];
    for (pool_proto, ok) in table {
        let p = h.pool(&lb, pool_proto).await;
        for kind in all {
            let r = post(&h, &p, json!({"type": kind})).await;
            if ok.contains(&kind) && kind == "SCTP" {
                // Compatible (§5.4), but the native provider does not run SCTP
                // monitors: Octavia's provider answer, 501.
                assert_eq!(r.status.as_u16(), 501, "{pool_proto}/{kind}: {}", r.text);
                assert!(r.text.contains("does not support"), "{}", r.text);
            } else if ok.contains(&kind) {
                let r = r.expect(201);
                h.settle().await;
                let hid = id(&r.body["healthmonitor"]);
                h.delete(&format!("/v2/lbaas/healthmonitors/{hid}"))
                    .await
                    .expect(204);
                h.settle().await;
            } else {
                assert_eq!(r.status.as_u16(), 400, "{pool_proto}/{kind}: {}", r.text);
            }
        }
    }
    // UDP-CONNECT probes no more often than every 3 seconds.
    let p = h.pool(&lb, "UDP").await;
    post(&h, &p, json!({"type": "UDP-CONNECT", "delay": 2}))
        .await
        .expect(400);
}

#[tokio::test]
async fn monitor_changes_need_an_active_pool() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let p = h.pool(&lb, "HTTP").await;
    h.member(&p, "10.0.0.1", 80).await;
    h.post(
        &format!("/v2/lbaas/pools/{p}/members"),
        json!({"member": {"address": "10.0.0.2", "protocol_port": 80}}),
    )
    .await
    .expect(201);
    post(&h, &p, json!({}))
        .await
        .error(409, "is immutable and cannot be updated.");
    h.settle().await;
    post(&h, &p, json!({})).await.expect(201);
}
