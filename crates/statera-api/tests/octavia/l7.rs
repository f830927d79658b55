//! `/l7policies` and `/l7policies/{id}/rules`.

use crate::support::*;
use serde_json::{Value, json};

const POLICY_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "provisioning_status",
    "operating_status",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "action",
    "listener_id",
    "redirect_pool_id",
    "redirect_url",
    "redirect_prefix",
    "position",
    "rules",
    "created_at",
    "updated_at",
    "tags",
    "redirect_http_code",
];

const RULE_FIELDS: &[&str] = &[
    "id",
    "type",
    "compare_type",
    "key",
    "value",
    "invert",
    "provisioning_status",
    "operating_status",
    "created_at",
    "updated_at",
    "project_id",
    "tenant_id",
    "admin_state_up",
    "tags",
];

async fn post_policy(h: &Harness, listener: &str, extra: Value) -> Resp {
    let mut p = json!({"listener_id": listener, "action": "REJECT"});
    merge(&mut p, extra);
    h.post("/v2/lbaas/l7policies", json!({ "l7policy": p }))
        .await
}

async fn post_rule(h: &Harness, policy: &str, rule: Value) -> Resp {
    h.post(
        &format!("/v2/lbaas/l7policies/{policy}/rules"),
        json!({ "rule": rule }),
    )
    .await
}

async fn positions(h: &Harness, listener: &str) -> Vec<(String, i64)> {
    let r = h
        .get(&format!("/v2/lbaas/l7policies?listener_id={listener}"))
        .await
        .expect(200);
    let mut v: Vec<(String, i64)> = r.body["l7policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["position"].as_i64().unwrap(),
            )
        })
        .collect();
    v.sort_by_key(|x| x.1);
    v
}

#[tokio::test]
async fn policy_create_show_list_update_delete() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let r = post_policy(
        &h,
        &l,
        json!({"action": "REDIRECT_TO_URL", "redirect_url": "https://example.com/new"}),
    )
    .await
    .expect(201);
    let p = &r.body["l7policy"];
    assert_fields(p, POLICY_FIELDS);
    assert_fresh(p);
    assert_eq!(p["operating_status"], "OFFLINE");
    assert_eq!(p["redirect_http_code"], 302);
    assert_eq!(p["position"], 1);
    assert_eq!(p["rules"], json!([]));
    assert_eq!(p["listener_id"], json!(l));
    assert_eq!(p["redirect_pool_id"], Value::Null);
    let pid = id(p);
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/listeners/{l}"), "listener")
            .await,
        "PENDING_UPDATE"
    );
    h.settle().await;
    let path = format!("/v2/lbaas/l7policies/{pid}");
    let r = h.get(&path).await.expect(200);
    assert_fields(&r.body["l7policy"], POLICY_FIELDS);
    assert_eq!(r.body["l7policy"]["provisioning_status"], "ACTIVE");
    assert_eq!(r.body["l7policy"]["operating_status"], "ONLINE");
    let r = h.get(&format!("/v2/lbaas/listeners/{l}")).await.expect(200);
    assert_eq!(r.body["listener"]["l7policies"], json!([{"id": pid}]));
    let r = h.get("/v2/lbaas/l7policies").await.expect(200);
    assert_eq!(ids(&r.body, "l7policies"), vec![pid.clone()]);

    let r = h
        .put(
            &path,
            json!({"l7policy": {"redirect_http_code": "301", "name": "n"}}),
        )
        .await
        .expect(200);
    assert_fields(&r.body["l7policy"], POLICY_FIELDS);
    assert_eq!(r.body["l7policy"]["redirect_http_code"], 301);
    assert_eq!(r.body["l7policy"]["provisioning_status"], "PENDING_UPDATE");
    h.settle().await;
    // An empty PUT is refused (Octavia's quirk for L7 policies only).
    h.put(&path, json!({"l7policy": {}}))
        .await
        .error(400, "Invalid L7 Policy arguments: Invalid update options");
    for (k, v) in [("listener_id", json!(l)), ("project_id", json!(PROJECT))] {
        h.put(&path, json!({"l7policy": {k: v}}))
            .await
            .error(400, k);
    }
    h.delete(&path).await.expect(204);
    assert_eq!(h.status_of(&path, "l7policy").await, "PENDING_DELETE");
    h.settle().await;
    h.get(&path).await.error(404, "not found");
}

#[tokio::test]
async fn policy_actions_and_targets() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let pool = h.pool(&lb, "HTTP").await;
    post_policy(&h, &l, json!({"action": "REDIRECT_TO_POOL"}))
        .await
        .error(
            400,
            "Invalid L7 Policy arguments: redirect_pool_id must not be None",
        );
    post_policy(&h, &l, json!({"action": "REDIRECT_TO_URL"}))
        .await
        .error(400, "redirect_url must not be None");
    post_policy(&h, &l, json!({"action": "REDIRECT_PREFIX"}))
        .await
        .error(400, "redirect_prefix must not be None");
    post_policy(&h, &l, json!({"action": "FORWARD"}))
        .await
        .error(400, "action");
    h.post(
        "/v2/lbaas/l7policies",
        json!({"l7policy": {"listener_id": l}}),
    )
    .await
    .error(400, "action");
    for url in [
        "example.com",
        "ftp://example.com/",
        "http:///path",
        "http://exa mple.com/",
    ] {
        post_policy(
            &h,
            &l,
            json!({"action": "REDIRECT_TO_URL", "redirect_url": url}),
        )
        .await
        .error(400, "redirect_url");
    }
    post_policy(
        &h,
        &l,
        json!({"action": "REDIRECT_TO_URL", "redirect_url": "http://a/", "redirect_http_code": 304}),
    )
    .await
    .error(400, "redirect_http_code");
    post_policy(
        &h,
        &l,
        json!({"action": "REDIRECT_TO_POOL", "redirect_pool_id": pool, "redirect_url": "http://a/"}),
    )
    .await
    .expect(400);
    post_policy(
        &h,
        &l,
        json!({"action": "REDIRECT_TO_POOL", "redirect_pool_id": uuid::Uuid::new_v4()}),
    )
    .await
    .expect(404);
    post_policy(&h, &l, json!({"position": 0}))
        .await
        .error(400, "position");
    post_policy(&h, &l, json!({"position": 2_147_483_648_i64}))
        .await
        .error(400, "position");
    // Incompatible redirect pool (§5.3).
    let tcp_pool = h.pool(&lb, "TCP").await;
    post_policy(
        &h,
        &l,
        json!({"action": "REDIRECT_TO_POOL", "redirect_pool_id": tcp_pool}),
    )
    .await
    .error(
        400,
        "The pool protocol 'TCP' is invalid while the listener protocol is 'HTTP'.",
    );
    // A pool of another load balancer: not found.
    let lb2 = h.lb().await;
    let foreign = h.pool(&lb2, "HTTP").await;
    post_policy(
        &h,
        &l,
        json!({"action": "REDIRECT_TO_POOL", "redirect_pool_id": foreign}),
    )
    .await
    .expect(404);
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");

    // REJECT and REDIRECT_TO_POOL carry no redirect code.
    let r = post_policy(&h, &l, json!({})).await.expect(201);
    assert_eq!(r.body["l7policy"]["redirect_http_code"], Value::Null);
    let pid = id(&r.body["l7policy"]);
    h.settle().await;
    let r = post_policy(
        &h,
        &l,
        json!({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://example.com", "redirect_http_code": 308}),
    )
    .await
    .expect(201);
    assert_eq!(r.body["l7policy"]["redirect_http_code"], 308);
    h.settle().await;
    // Supplying a target switches the action and nulls the others.
    let path = format!("/v2/lbaas/l7policies/{pid}");
    let r = h
        .put(
            &path,
            json!({"l7policy": {"redirect_url": "http://example.com/x"}}),
        )
        .await
        .expect(200);
    let p = &r.body["l7policy"];
    assert_eq!(p["action"], "REDIRECT_TO_URL");
    assert_eq!(p["redirect_http_code"], 302);
    h.settle().await;
    let r = h
        .put(&path, json!({"l7policy": {"redirect_pool_id": pool}}))
        .await
        .expect(200);
    let p = &r.body["l7policy"];
    assert_eq!(p["action"], "REDIRECT_TO_POOL");
    assert_eq!(p["redirect_url"], Value::Null);
    assert_eq!(p["redirect_http_code"], Value::Null);
    assert_eq!(p["redirect_pool_id"], json!(pool));
    h.settle().await;
    // The status tree shows a pool reached through a policy.
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}/status"))
        .await
        .expect(200);
    let lpools = &r.body["statuses"]["loadbalancer"]["listeners"][0]["pools"];
    assert_eq!(lpools[0]["id"], json!(pool), "{}", r.text);
    let r = h
        .put(&path, json!({"l7policy": {"action": "REJECT"}}))
        .await
        .expect(200);
    assert_eq!(r.body["l7policy"]["redirect_pool_id"], Value::Null);
}

#[tokio::test]
async fn policies_need_an_http_listener() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let tcp = h.listener(&lb, "TCP", 80).await;
    // Octavia's amphora provider answers 501 for L7 on TCP listeners; so does Statera.
    post_policy(&h, &tcp, json!({})).await.expect(501);
    post_policy(&h, &uuid::Uuid::new_v4().to_string(), json!({}))
        .await
        .expect(404);
}

#[tokio::test]
async fn positions_are_dense() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let mut ids_by_name = std::collections::HashMap::new();
    for (name, pos) in [("a", None), ("b", None), ("c", Some(1)), ("d", Some(99))] {
        let mut extra = json!({"name": name});
        if let Some(p) = pos {
            extra["position"] = json!(p);
        }
        let r = post_policy(&h, &l, extra).await.expect(201);
        ids_by_name.insert(name, id(&r.body["l7policy"]));
        h.settle().await;
    }
    let expect = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(n, p)| (n.to_string(), *p))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        positions(&h, &l).await,
        expect(&[("c", 1), ("a", 2), ("b", 3), ("d", 4)])
    );
    // Listener references are in position order.
    let r = h.get(&format!("/v2/lbaas/listeners/{l}")).await.expect(200);
    let order: Vec<String> = r.body["listener"]["l7policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(
        order,
        ["c", "a", "b", "d"]
            .map(|n| ids_by_name[n].clone())
            .to_vec()
    );
    // Move d to 2.
    h.put(
        &format!("/v2/lbaas/l7policies/{}", ids_by_name["d"]),
        json!({"l7policy": {"position": 2}}),
    )
    .await
    .expect(200);
    h.settle().await;
    assert_eq!(
        positions(&h, &l).await,
        expect(&[("c", 1), ("d", 2), ("a", 3), ("b", 4)])
    );
    // Deleting compacts.
    h.delete(&format!("/v2/lbaas/l7policies/{}", ids_by_name["c"]))
        .await
        .expect(204);
    h.settle().await;
    assert_eq!(
        positions(&h, &l).await,
        expect(&[("d", 1), ("a", 2), ("b", 3)])
    );
}

#[tokio::test]
async fn rule_create_show_list_update_delete() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let pol = h.policy(&l).await;
    let r = post_rule(
        &h,
        &pol,
        json!({"type": "HEADER", "compare_type": "EQUAL_TO", "key": "X-Env", "value": "prod"}),
    )
    .await
    .expect(201);
    let rule = &r.body["rule"];
    assert_fields(rule, RULE_FIELDS);
    assert_eq!(rule["tenant_id"], PROJECT);
    assert_eq!(rule["invert"], false);
    assert_eq!(rule["admin_state_up"], true);
    assert_eq!(rule["updated_at"], Value::Null);
    assert_eq!(rule["provisioning_status"], "PENDING_CREATE");
    let rid = id(rule);
    // LB, listener and policy are locked.
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/l7policies/{pol}"), "l7policy")
            .await,
        "PENDING_UPDATE"
    );
    // A second rule while the policy is pending.
    post_rule(
        &h,
        &pol,
        json!({"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a"}),
    )
    .await
    .error(409, "is immutable and cannot be updated.");
    h.settle().await;
    let path = format!("/v2/lbaas/l7policies/{pol}/rules/{rid}");
    let r = h.get(&path).await.expect(200);
    assert_fields(&r.body["rule"], RULE_FIELDS);
    assert_eq!(r.body["rule"]["provisioning_status"], "ACTIVE");
    let r = h
        .get(&format!("/v2/lbaas/l7policies/{pol}/rules"))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "rules"), vec![rid.clone()]);
    assert!(r.body["rules_links"].is_array());
    let r = h
        .get(&format!("/v2/lbaas/l7policies/{pol}"))
        .await
        .expect(200);
    assert_eq!(r.body["l7policy"]["rules"], json!([{"id": rid}]));

    let r = h
        .put(
            &path,
            json!({"rule": {"invert": "true", "value": "staging"}}),
        )
        .await
        .expect(200);
    assert_fields(&r.body["rule"], RULE_FIELDS);
    assert_eq!(r.body["rule"]["invert"], true);
    assert_eq!(r.body["rule"]["value"], "staging");
    h.settle().await;
    // PUT validates the merged rule: dropping the key of a HEADER rule.
    h.put(&path, json!({"rule": {"key": null}}))
        .await
        .error(400, "Error parsing L7Rule: Invalid L7 Rule");
    // Changing the type to one that forbids a key.
    h.put(
        &path,
        json!({"rule": {"type": "SSL_CONN_HAS_CERT", "value": "true"}}),
    )
    .await
    .expect(400);
    let r = h
        .put(&path, json!({"rule": {"invert": null}}))
        .await
        .expect(200);
    assert_eq!(r.body["rule"]["invert"], false);
    h.settle().await;
    h.put(&path, json!({"rule": {"l7policy_id": pol}}))
        .await
        .expect(400);
    h.delete(&path).await.expect(204);
    assert_eq!(h.status_of(&path, "rule").await, "PENDING_DELETE");
    h.settle().await;
    h.get(&path).await.error(404, "not found");
}

#[tokio::test]
async fn rule_type_table() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let pol = h.policy(&l).await;
    let bad = [
        json!({"type": "HEADER", "compare_type": "EQUAL_TO", "value": "v"}),
        json!({"type": "HEADER", "compare_type": "EQUAL_TO", "key": "bad key", "value": "v"}),
        json!({"type": "COOKIE", "compare_type": "EQUAL_TO", "value": "v"}),
        json!({"type": "FILE_TYPE", "compare_type": "STARTS_WITH", "value": "jpg"}),
        json!({"type": "FILE_TYPE", "compare_type": "CONTAINS", "value": "jpg"}),
        json!({"type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "false"}),
        json!({"type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "key": "k", "value": "true"}),
        json!({"type": "SSL_CONN_HAS_CERT", "compare_type": "REGEX", "value": "true"}),
        json!({"type": "SSL_VERIFY_RESULT", "compare_type": "EQUAL_TO", "value": "abc"}),
        json!({"type": "SSL_VERIFY_RESULT", "compare_type": "EQUAL_TO", "value": "-1"}),
        json!({"type": "SSL_VERIFY_RESULT", "compare_type": "STARTS_WITH", "value": "0"}),
        json!({"type": "SSL_DN_FIELD", "compare_type": "EQUAL_TO", "value": "x"}),
        json!({"type": "SSL_DN_FIELD", "compare_type": "EQUAL_TO", "key": "1CN", "value": "x"}),
        json!({"type": "PATH", "compare_type": "REGEX", "value": "("}),
        json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "/a b"}),
        json!({"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "a\nb"}),
    ];
    for rule in bad {
        let r = post_rule(&h, &pol, rule.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{rule}: {}", r.text);
        assert!(
            r.fault()
                .starts_with("Error parsing L7Rule: Invalid L7 Rule"),
            "{rule}: {}",
            r.text
        );
    }
    for (rule, field) in [
        (
            json!({"type": "URL", "compare_type": "EQUAL_TO", "value": "v"}),
            "type",
        ),
        (
            json!({"type": "PATH", "compare_type": "LIKE", "value": "v"}),
            "compare_type",
        ),
        (json!({"type": "PATH", "compare_type": "EQUAL_TO"}), "value"),
        (json!({"compare_type": "EQUAL_TO", "value": "v"}), "type"),
        (json!({"type": "PATH", "value": "v"}), "compare_type"),
        (
            json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "v", "bogus": 1}),
            "bogus",
        ),
        (
            json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "x".repeat(256)}),
            "value",
        ),
    ] {
        post_rule(&h, &pol, rule).await.error(400, field);
    }
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    let good = [
        json!({"type": "HOST_NAME", "compare_type": "ENDS_WITH", "value": ".example.com"}),
        json!({"type": "PATH", "compare_type": "REGEX", "value": "^/api/v[0-9]+"}),
        json!({"type": "FILE_TYPE", "compare_type": "EQUAL_TO", "value": "jpg"}),
        json!({"type": "HEADER", "compare_type": "CONTAINS", "key": "User-Agent", "value": "curl"}),
        json!({"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "session", "value": "abc"}),
        json!({"type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "TRUE"}),
        json!({"type": "SSL_VERIFY_RESULT", "compare_type": "EQUAL_TO", "value": "0"}),
        json!({"type": "SSL_DN_FIELD", "compare_type": "STARTS_WITH", "key": "CN", "value": "web"}),
        json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "\"/a b\"", "invert": 1}),
    ];
    for rule in good {
        let r = post_rule(&h, &pol, rule.clone()).await;
        assert_eq!(r.status.as_u16(), 201, "{rule}: {}", r.text);
        h.settle().await;
    }
}

#[tokio::test]
async fn at_most_fifty_rules() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let rules: Vec<Value> = (0..50)
        .map(|i| json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": format!("/p{i}")}))
        .collect();
    // 50 rules given with the policy are fine; 51 are too many.
    let mut too_many = rules.clone();
    too_many.push(json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "/x"}));
    post_policy(&h, &l, json!({"rules": too_many}))
        .await
        .error(409, "Too many rules on L7 policy");
    let r = post_policy(&h, &l, json!({"rules": rules}))
        .await
        .expect(201);
    assert_eq!(r.body["l7policy"]["rules"].as_array().unwrap().len(), 50);
    let pol = id(&r.body["l7policy"]);
    h.settle().await;
    post_rule(
        &h,
        &pol,
        json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "/x"}),
    )
    .await
    .error(409, &format!("Too many rules on L7 policy {pol}"));
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}

#[tokio::test]
async fn rule_changes_need_an_active_policy() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    // A policy whose creation the data plane refused is ERROR …
    h.refuse(true);
    let r = post_policy(&h, &l, json!({})).await.expect(201);
    let pol = id(&r.body["l7policy"]);
    h.settle().await;
    h.refuse(false);
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/l7policies/{pol}"), "l7policy")
            .await,
        "ERROR"
    );
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // … and takes no rule changes.
    post_rule(
        &h,
        &pol,
        json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "/x"}),
    )
    .await
    .error(
        409,
        &format!("L7Policy {pol} is immutable and cannot be updated."),
    );
    // It can still be deleted.
    h.delete(&format!("/v2/lbaas/l7policies/{pol}"))
        .await
        .expect(204);
    h.settle().await;
    h.get(&format!("/v2/lbaas/l7policies/{pol}"))
        .await
        .expect(404);
}

/// §4.3: when the data plane refuses an update, the changed object goes to
/// ERROR and only its parents go back to ACTIVE. The controller cannot tell
/// the changed object from a parent that was only locked (both are
/// PENDING_UPDATE) and puts both back to ACTIVE.
#[tokio::test]

async fn refused_update_marks_the_changed_object_error() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let pol = h.policy(&l).await;
    h.refuse(true);
    h.put(
        &format!("/v2/lbaas/l7policies/{pol}"),
        json!({"l7policy": {"name": "x"}}),
    )
    .await
    .expect(200);
    h.settle().await;
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/l7policies/{pol}"), "l7policy")
            .await,
        "ERROR"
    );
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/listeners/{l}"), "listener")
            .await,
        "ACTIVE"
    );
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}
