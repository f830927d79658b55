//! The status model: the status tree, timestamps, quotas, refusals.

use crate::support::*;
use serde_json::{Value, json};

#[tokio::test]
async fn status_tree_shape() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let p = h.default_pool(&l, "HTTP").await;
    let m = h.member(&p, "10.0.0.1", 8080).await;
    let hm = h.monitor(&p, "HTTP").await;
    let _bare = h.listener(&lb, "TCP", 81).await;
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}/status"))
        .await
        .expect(200);
    assert_eq!(keys(&r.body), vec!["statuses"]);
    assert_eq!(keys(&r.body["statuses"]), vec!["loadbalancer"]);
    let tree = &r.body["statuses"]["loadbalancer"];
    assert_fields(
        tree,
        &[
            "id",
            "name",
            "operating_status",
            "provisioning_status",
            "listeners",
        ],
    );
    assert_eq!(tree["id"], json!(lb));
    assert_eq!(tree["provisioning_status"], "ACTIVE");
    let listeners = tree["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 2);
    let web = listeners.iter().find(|x| x["id"] == json!(l)).unwrap();
    assert_fields(
        web,
        &[
            "id",
            "name",
            "operating_status",
            "provisioning_status",
            "pools",
        ],
    );
    // Unset names are "" in the tree too.
    assert_eq!(web["name"], "");
    let pools = web["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 1);
    let pool = &pools[0];
    assert_eq!(pool["id"], json!(p));
    assert!(pool.get("health_monitor").is_some(), "{pool}");
    for k in [
        "id",
        "name",
        "provisioning_status",
        "operating_status",
        "members",
    ] {
        assert!(pool.get(k).is_some(), "{k} missing in {pool}");
    }
    assert_fields(
        &pool["health_monitor"],
        &[
            "id",
            "name",
            "type",
            "provisioning_status",
            "operating_status",
        ],
    );
    assert_eq!(pool["health_monitor"]["id"], json!(hm));
    assert_eq!(pool["health_monitor"]["type"], "HTTP");
    let member = &pool["members"][0];
    assert_fields(
        member,
        &[
            "id",
            "name",
            "operating_status",
            "provisioning_status",
            "address",
            "protocol_port",
        ],
    );
    assert_eq!(member["id"], json!(m));
    assert_eq!(member["address"], "10.0.0.1");
    assert_eq!(member["protocol_port"], 8080);
    // A listener without pools has an empty list; a pool without a monitor no key.
    let tcp = listeners.iter().find(|x| x["id"] != json!(l)).unwrap();
    assert_eq!(tcp["pools"], json!([]));
    h.delete(&format!("/v2/lbaas/healthmonitors/{hm}"))
        .await
        .expect(204);
    h.settle().await;
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}/statuses"))
        .await
        .expect(200);
    let pool = &r.body["statuses"]["loadbalancer"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == json!(l))
        .unwrap()["pools"][0];
    assert!(pool.get("health_monitor").is_none(), "{pool}");
}

#[tokio::test]
async fn updated_at_moves_with_changes() {
    let h = Harness::new().await;
    let r = h.post_lb(json!({})).await.expect(201);
    assert_eq!(r.body["loadbalancer"]["updated_at"], Value::Null);
    let lb = id(&r.body["loadbalancer"]);
    h.settle().await;
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(200);
    // Status transitions bump updated_at.
    assert_timestamp(&r.body["loadbalancer"]["updated_at"]);
    assert_timestamp(&r.body["loadbalancer"]["created_at"]);
}

#[tokio::test]
async fn quotas_are_enforced_with_403() {
    let h = Harness::new().await;
    h.put(
        &format!("/v2/lbaas/quotas/{PROJECT}"),
        json!({"quota": {"loadbalancer": 1, "listener": 1, "pool": 1, "healthmonitor": 0,
                         "l7policy": 1, "l7rule": 1}}),
    )
    .await
    .expect(202);
    let lb = h.lb().await;
    h.post_lb(json!({}))
        .await
        .error(403, "Quota has been met for resources: Load Balancer");
    let l = h.listener(&lb, "HTTP", 80).await;
    h.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 81}}),
    )
    .await
    .error(403, "Quota has been met for resources: Listener");
    let p = h.pool(&lb, "HTTP").await;
    h.post(
        "/v2/lbaas/pools",
        json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
    )
    .await
    .expect(403);
    h.post(
        "/v2/lbaas/healthmonitors",
        json!({"healthmonitor": {"pool_id": p, "type": "TCP", "delay": 1, "timeout": 1, "max_retries": 1}}),
    )
    .await
    .expect(403);
    let pol = h.policy(&l).await;
    h.post(
        "/v2/lbaas/l7policies",
        json!({"l7policy": {"listener_id": l, "action": "REJECT"}}),
    )
    .await
    .expect(403);
    h.rule(&pol, "/a").await;
    h.post(
        &format!("/v2/lbaas/l7policies/{pol}/rules"),
        json!({"rule": {"type": "PATH", "compare_type": "EQUAL_TO", "value": "/b"}}),
    )
    .await
    .expect(403);
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // Unlimited again: the second LB is accepted.
    h.put(
        &format!("/v2/lbaas/quotas/{PROJECT}"),
        json!({"quota": {"loadbalancer": -1}}),
    )
    .await
    .expect(202);
    h.post_lb(json!({})).await.expect(201);
}

#[tokio::test]
async fn refused_child_goes_to_error_parents_to_active() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    h.refuse(true);
    let r = h
        .post(
            "/v2/lbaas/listeners",
            json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}),
        )
        .await
        .expect(201);
    let l = id(&r.body["listener"]);
    h.settle().await;
    h.refuse(false);
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/listeners/{l}"), "listener")
            .await,
        "ERROR"
    );
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // The LB keeps accepting changes; the ERROR listener can be deleted.
    h.delete(&format!("/v2/lbaas/listeners/{l}"))
        .await
        .expect(204);
    h.settle().await;
    h.get(&format!("/v2/lbaas/listeners/{l}")).await.expect(404);
}

#[tokio::test]
async fn every_child_change_locks_the_load_balancer() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let p = h.default_pool(&l, "HTTP").await;
    let m = h.member(&p, "10.0.0.1", 80).await;
    let hm = h.monitor(&p, "HTTP").await;
    let pol = h.policy(&l).await;
    let rule = h.rule(&pol, "/a").await;
    let changes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "PUT",
            format!("/v2/lbaas/listeners/{l}"),
            Some(json!({"listener": {"name": "x"}})),
        ),
        (
            "PUT",
            format!("/v2/lbaas/pools/{p}"),
            Some(json!({"pool": {"name": "x"}})),
        ),
        (
            "PUT",
            format!("/v2/lbaas/pools/{p}/members/{m}"),
            Some(json!({"member": {"name": "x"}})),
        ),
        (
            "PUT",
            format!("/v2/lbaas/healthmonitors/{hm}"),
            Some(json!({"healthmonitor": {"name": "x"}})),
        ),
        (
            "PUT",
            format!("/v2/lbaas/l7policies/{pol}"),
            Some(json!({"l7policy": {"name": "x"}})),
        ),
        (
            "PUT",
            format!("/v2/lbaas/l7policies/{pol}/rules/{rule}"),
            Some(json!({"rule": {"value": "/b"}})),
        ),
        (
            "DELETE",
            format!("/v2/lbaas/l7policies/{pol}/rules/{rule}"),
            None,
        ),
        ("DELETE", format!("/v2/lbaas/l7policies/{pol}"), None),
        ("DELETE", format!("/v2/lbaas/healthmonitors/{hm}"), None),
        ("DELETE", format!("/v2/lbaas/pools/{p}/members/{m}"), None),
        ("DELETE", format!("/v2/lbaas/pools/{p}"), None),
        ("DELETE", format!("/v2/lbaas/listeners/{l}"), None),
    ];
    for (method, path, body) in changes {
        // Lock the LB with an unrelated change first.
        h.put(
            &format!("/v2/lbaas/loadbalancers/{lb}"),
            json!({"loadbalancer": {"description": path.clone()}}),
        )
        .await
        .expect(200);
        let r = h.call(method, &path, body.clone()).await;
        assert_eq!(r.status.as_u16(), 409, "{method} {path}: {}", r.text);
        assert!(
            r.fault().contains("is immutable and cannot be updated."),
            "{}",
            r.text
        );
        h.settle().await;
        // Once settled, the same change goes through.
        let r = h.call(method, &path, body).await;
        assert!(
            r.status.is_success(),
            "{method} {path} after settling: {}",
            r.text
        );
        assert_eq!(
            r.status.as_u16(),
            if method == "PUT" { 200 } else { 204 },
            "{}",
            r.text
        );
        h.settle().await;
    }
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}

#[tokio::test]
async fn disabled_objects_are_offline_once_settled() {
    let h = Harness::new().await;
    let r = h
        .post_lb(json!({"admin_state_up": false}))
        .await
        .expect(201);
    let lb = id(&r.body["loadbalancer"]);
    h.settle().await;
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(200);
    assert_eq!(r.body["loadbalancer"]["operating_status"], "OFFLINE");
    let r = h
        .post(
            "/v2/lbaas/listeners",
            json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80, "admin_state_up": false}}),
        )
        .await
        .expect(201);
    let l = id(&r.body["listener"]);
    h.settle().await;
    let r = h.get(&format!("/v2/lbaas/listeners/{l}")).await.expect(200);
    assert_eq!(r.body["listener"]["operating_status"], "OFFLINE");
    // Cascade delete of a pending load balancer is refused.
    h.put(
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        json!({"loadbalancer": {}}),
    )
    .await
    .expect(200);
    h.delete(&format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"))
        .await
        .error(409, "Invalid state PENDING_UPDATE");
}
