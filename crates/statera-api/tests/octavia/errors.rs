//! Error shapes and transport conventions.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn error_body_shape() {
    let h = Harness::new().await;
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{}", uuid::Uuid::new_v4()))
        .await
        .error(404, "Load Balancer");
    assert_eq!(keys(&r.body), vec!["debuginfo", "faultcode", "faultstring"]);
    assert!(r.fault().ends_with("not found."), "{}", r.text);
    assert!(
        r.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn malformed_and_mistyped_bodies() {
    let h = Harness::new().await;
    for body in ["{", "not json", "", "{\"loadbalancer\": }"] {
        h.raw(
            "POST",
            "/v2/lbaas/loadbalancers",
            &[],
            Some(body.to_string()),
        )
        .await
        .error(400, "Request is not in valid JSON format");
    }
    let lb = h.lb().await;
    for body in [
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": true}}),
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": [80]}}),
        json!({"listener": {"loadbalancer_id": lb, "protocol": 5, "protocol_port": 80}}),
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80, "name": 5}}),
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80, "tags": "a"}}),
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80, "tags": [1]}}),
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80.5}}),
        json!({"listener": "HTTP"}),
        json!({"listener": null}),
        json!({"pool": {}}),
        json!([]),
        json!("listener"),
        json!({}),
    ] {
        let r = h.post("/v2/lbaas/listeners", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.body["faultcode"], "Client", "{body}: {}", r.text);
    }
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    assert_eq!(h.store.snapshot().listeners.iter().count(), 0);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let h = Harness::new().await;
    for path in [
        "/v2/lbaas/nothing",
        "/v2/lbaas/loadbalancers/x/y/z",
        "/v2/lbaas/loadbalancers/0b7e4c6d-9c1e-4f2b-8a3d-5e6f7a8b9c0d/nothing",
    ] {
        h.get(path).await.error(404, "");
    }
    // Under /v3 the identity service answers, in Keystone's shape.
    let r = h.get("/v3/lbaas/loadbalancers").await.expect(404);
    assert_eq!(r.body["error"]["code"], 404, "{}", r.text);
    let r = h.delete("/v2/lbaas/loadbalancers").await.error(405, "");
    assert_eq!(r.body["faultcode"], "Client");
    h.call("PATCH", "/v2/lbaas/listeners", None)
        .await
        .expect(405);
    h.call("POST", "/v2/lbaas/loadbalancers/x/stats", Some(json!({})))
        .await
        .expect(405);
}

#[tokio::test]
async fn non_uuid_ids_are_not_found() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let p = h.default_pool(&l, "HTTP").await;
    let pol = h.policy(&l).await;
    // The CLI tries names as ids first: never a 500, never a 400.
    for path in [
        "/v2/lbaas/loadbalancers/lb1".to_string(),
        "/v2/lbaas/loadbalancers/lb1/status".to_string(),
        "/v2/lbaas/loadbalancers/lb1/stats".to_string(),
        "/v2/lbaas/listeners/web".to_string(),
        "/v2/lbaas/listeners/web/stats".to_string(),
        "/v2/lbaas/pools/pool1".to_string(),
        "/v2/lbaas/pools/pool1/members".to_string(),
        format!("/v2/lbaas/pools/{p}/members/m1"),
        "/v2/lbaas/healthmonitors/hm1".to_string(),
        "/v2/lbaas/l7policies/pol1".to_string(),
        "/v2/lbaas/l7policies/pol1/rules".to_string(),
        format!("/v2/lbaas/l7policies/{pol}/rules/r1"),
        "/v2/lbaas/loadbalancers/%20".to_string(),
        "/v2/lbaas/loadbalancers/00000000-0000-0000-0000-000000000000".to_string(),
    ] {
        h.get(&path).await.error(404, "");
    }
    for (method, path) in [
        ("PUT", "/v2/lbaas/loadbalancers/lb1"),
        ("DELETE", "/v2/lbaas/loadbalancers/lb1"),
        ("PUT", "/v2/lbaas/loadbalancers/lb1/failover"),
        ("DELETE", "/v2/lbaas/listeners/web"),
        ("DELETE", "/v2/lbaas/pools/p"),
        ("DELETE", "/v2/lbaas/healthmonitors/h"),
        ("DELETE", "/v2/lbaas/l7policies/p"),
    ] {
        let body = if method == "PUT" {
            Some(json!({"loadbalancer": {"name": "x"}}))
        } else {
            None
        };
        h.call(method, path, body).await.error(404, "");
    }
}

#[tokio::test]
async fn accept_header() {
    let h = Harness::new().await;
    let r = h
        .raw(
            "GET",
            "/v2/lbaas/loadbalancers",
            &[("accept", "text/html")],
            None,
        )
        .await
        .expect(406);
    let e = &r.body["errors"][0];
    assert_eq!(e["status"], 406);
    assert_eq!(e["title"], "Not Acceptable");
    assert_eq!(
        e["detail"],
        "Only content type application/json is accepted."
    );
    assert!(e["request_id"].as_str().unwrap().starts_with("req-"));
    for accept in [
        "",
        "application/json",
        "*/*",
        "application/json; charset=utf-8",
        "text/html, application/json;q=0.9",
    ] {
        h.raw(
            "GET",
            "/v2/lbaas/loadbalancers",
            &[("accept", accept)],
            None,
        )
        .await
        .expect(200);
    }
    // openstacksdk sends Accept: "" on DELETE.
    let lb = h.lb().await;
    h.raw(
        "DELETE",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        &[("accept", "")],
        None,
    )
    .await
    .expect(204);
}

#[tokio::test]
async fn paths_and_request_ids() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    for path in [
        "/v2/lbaas/loadbalancers".to_string(),
        "/v2.0/lbaas/loadbalancers".to_string(),
        "/v2/loadbalancers".to_string(),
        "/v2.0/loadbalancers".to_string(),
        "/v2/lbaas/loadbalancers.json".to_string(),
        "/v2/lbaas/loadbalancers/".to_string(),
        format!("/v2/lbaas/loadbalancers/{lb}.json"),
        format!("/v2.0/lbaas/loadbalancers/{lb}/statuses"),
    ] {
        let r = h.get(&path).await.expect(200);
        let rid = r.headers["x-openstack-request-id"].to_str().unwrap();
        assert!(rid.starts_with("req-"), "{rid}");
        uuid::Uuid::parse_str(&rid[4..]).unwrap();
    }
    // Errors carry one as well, and ids differ per request.
    let a = h.get("/v2/lbaas/nothing").await;
    let b = h.get("/v2/lbaas/nothing").await;
    assert_ne!(
        a.headers["x-openstack-request-id"],
        b.headers["x-openstack-request-id"]
    );
    let r = h
        .raw(
            "GET",
            "/v2/lbaas/loadbalancers",
            &[("accept", "text/html")],
            None,
        )
        .await;
    assert!(r.headers.contains_key("x-openstack-request-id"));
    // A create through /v2.0 and the .json suffix.
    let r = h
        .post(
            "/v2.0/lbaas/listeners.json",
            json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 22}}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["listener"]["protocol_port"], 22);
}

#[tokio::test]
async fn foreign_project_is_forbidden() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let p = h.default_pool(&l, "HTTP").await;
    let m = h.member(&p, "10.0.0.1", 80).await;
    let hm = h.monitor(&p, "TCP").await;
    let pol = h.policy(&l).await;
    let rule = h.rule(&pol, "/a").await;
    let other = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let h = &h;
        async move {
            h.as_member(OTHER_PROJECT, method, &path, body)
                .await
                .error(403, "Policy does not allow this request to be performed.");
        }
    };
    for path in [
        format!("/v2/lbaas/loadbalancers/{lb}"),
        format!("/v2/lbaas/loadbalancers/{lb}/status"),
        format!("/v2/lbaas/loadbalancers/{lb}/stats"),
        format!("/v2/lbaas/listeners/{l}"),
        format!("/v2/lbaas/listeners/{l}/stats"),
        format!("/v2/lbaas/pools/{p}"),
        format!("/v2/lbaas/pools/{p}/members"),
        format!("/v2/lbaas/pools/{p}/members/{m}"),
        format!("/v2/lbaas/healthmonitors/{hm}"),
        format!("/v2/lbaas/l7policies/{pol}"),
        format!("/v2/lbaas/l7policies/{pol}/rules"),
        format!("/v2/lbaas/l7policies/{pol}/rules/{rule}"),
    ] {
        other("GET", path, None).await;
    }
    other(
        "PUT",
        format!("/v2/lbaas/loadbalancers/{lb}"),
        Some(json!({"loadbalancer": {"name": "x"}})),
    )
    .await;
    other(
        "DELETE",
        format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"),
        None,
    )
    .await;
    other(
        "PUT",
        format!("/v2/lbaas/listeners/{l}"),
        Some(json!({"listener": {"name": "x"}})),
    )
    .await;
    other("DELETE", format!("/v2/lbaas/listeners/{l}"), None).await;
    other(
        "POST",
        "/v2/lbaas/listeners".to_string(),
        Some(json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 81}})),
    )
    .await;
    other(
        "POST",
        "/v2/lbaas/pools".to_string(),
        Some(json!({"pool": {"loadbalancer_id": lb, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}})),
    )
    .await;
    other(
        "POST",
        format!("/v2/lbaas/pools/{p}/members"),
        Some(json!({"member": {"address": "10.0.0.2", "protocol_port": 80}})),
    )
    .await;
    other(
        "PUT",
        format!("/v2/lbaas/pools/{p}/members"),
        Some(json!({"members": []})),
    )
    .await;
    other("DELETE", format!("/v2/lbaas/pools/{p}/members/{m}"), None).await;
    other(
        "PUT",
        format!("/v2/lbaas/healthmonitors/{hm}"),
        Some(json!({"healthmonitor": {"delay": 9}})),
    )
    .await;
    other(
        "POST",
        "/v2/lbaas/l7policies".to_string(),
        Some(json!({"l7policy": {"listener_id": l, "action": "REJECT"}})),
    )
    .await;
    other(
        "POST",
        format!("/v2/lbaas/l7policies/{pol}/rules"),
        Some(json!({"rule": {"type": "PATH", "compare_type": "EQUAL_TO", "value": "/x"}})),
    )
    .await;
    other(
        "DELETE",
        format!("/v2/lbaas/l7policies/{pol}/rules/{rule}"),
        None,
    )
    .await;
    // Creating a load balancer for another project needs admin.
    h.as_member(
        OTHER_PROJECT,
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": h.subnet_id, "project_id": PROJECT}})),
    )
    .await
    .error(403, "Policy does not allow");
    // Nothing changed.
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // The owner, as a plain member, may do all of it.
    h.as_member(
        PROJECT,
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        Some(json!({"loadbalancer": {"name": "mine"}})),
    )
    .await
    .expect(200);
    // A reader may read but not write.
    h.settle().await;
    h.raw(
        "GET",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        &[("x-project-id", PROJECT), ("x-roles", "reader")],
        None,
    )
    .await
    .expect(200);
    h.raw(
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        &[("x-project-id", PROJECT), ("x-roles", "reader")],
        Some(json!({"loadbalancer": {"name": "x"}}).to_string()),
    )
    .await
    .expect(403);
}

#[tokio::test]
async fn unknown_top_level_attributes_and_size_limit() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    // WSME checks the root object's attributes too.
    h.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}, "extra": 1}),
    )
    .await
    .error(400, "extra");
    h.put(
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        json!({"loadbalancer": {"name": "x"}, "listener": {}}),
    )
    .await
    .error(400, "listener");
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // Bodies above oslo's 114688-byte limit.
    let big =
        json!({"loadbalancer": {"vip_subnet_id": h.subnet_id, "description": "x".repeat(120_000)}});
    h.post("/v2/lbaas/loadbalancers", big).await.expect(413);
}
