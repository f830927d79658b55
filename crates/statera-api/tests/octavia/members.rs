//! `/pools/{pool_id}/members`: CRUD, validation, locking, batch update.

use crate::support::*;
use serde_json::{Value, json};

const MEMBER_FIELDS: &[&str] = &[
    "id",
    "name",
    "operating_status",
    "provisioning_status",
    "admin_state_up",
    "address",
    "protocol_port",
    "weight",
    "backup",
    "subnet_id",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "monitor_address",
    "monitor_port",
    "tags",
    "vnic_type",
];

async fn post(h: &Harness, pool: &str, extra: Value) -> Resp {
    let mut m = json!({"address": "10.0.0.1", "protocol_port": 80});
    merge(&mut m, extra);
    h.post(
        &format!("/v2/lbaas/pools/{pool}/members"),
        json!({ "member": m }),
    )
    .await
}

async fn setup(h: &Harness) -> (String, String, String) {
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let p = h.default_pool(&l, "HTTP").await;
    (lb, l, p)
}

#[tokio::test]
async fn create_show_list_update_delete() {
    let h = Harness::new().await;
    let (lb, l, p) = setup(&h).await;
    let r = post(&h, &p, json!({})).await.expect(201);
    let m = &r.body["member"];
    assert_fields(m, MEMBER_FIELDS);
    assert_eq!(m["tenant_id"], PROJECT);
    assert_eq!(m["name"], "");
    assert_eq!(m["weight"], 1);
    assert_eq!(m["backup"], false);
    assert_eq!(m["admin_state_up"], true);
    assert_eq!(m["subnet_id"], Value::Null);
    assert_eq!(m["monitor_address"], Value::Null);
    assert_eq!(m["monitor_port"], Value::Null);
    assert_eq!(m["vnic_type"], "normal");
    assert_eq!(m["updated_at"], Value::Null);
    assert_eq!(m["provisioning_status"], "PENDING_CREATE");
    // No health monitor: NO_MONITOR.
    assert_eq!(m["operating_status"], "NO_MONITOR");
    let mid = id(m);
    // LB, pool and the pool's listener are locked.
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/pools/{p}"), "pool").await,
        "PENDING_UPDATE"
    );
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/listeners/{l}"), "listener")
            .await,
        "PENDING_UPDATE"
    );
    h.settle().await;
    let path = format!("/v2/lbaas/pools/{p}/members/{mid}");
    let r = h.get(&path).await.expect(200);
    assert_fields(&r.body["member"], MEMBER_FIELDS);
    assert_eq!(r.body["member"]["provisioning_status"], "ACTIVE");
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    let r = h
        .get(&format!("/v2/lbaas/pools/{p}/members"))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "members"), vec![mid.clone()]);
    assert!(r.body["members_links"].is_array());
    assert_fields(&r.body["members"][0], MEMBER_FIELDS);
    let r = h.get(&format!("/v2/lbaas/pools/{p}")).await.expect(200);
    assert_eq!(r.body["pool"]["members"], json!([{"id": mid}]));

    let r = h
        .put(
            &path,
            json!({"member": {"weight": "10", "backup": "True", "name": "m",
                "monitor_address": "10.0.0.9", "monitor_port": 8080}}),
        )
        .await
        .expect(200);
    let m = &r.body["member"];
    assert_fields(m, MEMBER_FIELDS);
    assert_eq!(m["weight"], 10);
    assert_eq!(m["backup"], true);
    assert_eq!(m["monitor_address"], "10.0.0.9");
    assert_eq!(m["provisioning_status"], "PENDING_UPDATE");
    h.settle().await;
    let r = h
        .put(
            &path,
            json!({"member": {"weight": null, "backup": null, "monitor_address": null}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["member"]["weight"], 1);
    assert_eq!(r.body["member"]["backup"], false);
    assert_eq!(r.body["member"]["monitor_address"], Value::Null);
    h.settle().await;
    for (k, v) in [
        ("address", json!("10.0.0.2")),
        ("protocol_port", json!(81)),
        ("subnet_id", json!(h.subnet_id)),
        ("project_id", json!(PROJECT)),
        ("pool_id", json!(p)),
        ("request_sriov", json!(false)),
    ] {
        h.put(&path, json!({"member": {k: v}})).await.error(400, k);
    }
    h.delete(&path).await.expect(204);
    assert_eq!(h.status_of(&path, "member").await, "PENDING_DELETE");
    h.settle().await;
    h.get(&path).await.error(404, "not found");
    // A member id under the wrong pool.
    let p2 = h
        .default_pool(&h.listener(&lb, "HTTP", 81).await, "HTTP")
        .await;
    let m2 = h.member(&p2, "10.0.0.3", 80).await;
    h.get(&format!("/v2/lbaas/pools/{p}/members/{m2}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn validation() {
    let h = Harness::new().await;
    let (lb, _l, p) = setup(&h).await;
    for (extra, field) in [
        (json!({"weight": 257}), "weight"),
        (json!({"weight": -1}), "weight"),
        (json!({"protocol_port": 0}), "protocol_port"),
        (json!({"protocol_port": 65536}), "protocol_port"),
        (json!({"address": "10.0.0.256"}), "address"),
        (json!({"address": "host.example.com"}), "address"),
        (json!({"monitor_port": 0}), "monitor_port"),
        (json!({"monitor_address": "x"}), "monitor_address"),
        (json!({"backup": "sometimes"}), "backup"),
        (json!({"subnet_id": "subnet"}), "subnet_id"),
        (json!({"description": "members have none"}), "description"),
    ] {
        post(&h, &p, extra).await.error(400, field);
    }
    h.post(
        &format!("/v2/lbaas/pools/{p}/members"),
        json!({"member": {"protocol_port": 80}}),
    )
    .await
    .error(400, "address");
    // SR-IOV members need a flavor that allows them.
    post(&h, &p, json!({"request_sriov": true}))
        .await
        .expect(400);
    post(&h, &p, json!({"address": "169.254.169.254"}))
        .await
        .error(400, "169.254.169.254");
    let ghost = uuid::Uuid::new_v4();
    post(&h, &p, json!({"subnet_id": ghost}))
        .await
        .error(400, &format!("Subnet {ghost} not found."));
    post(&h, &uuid::Uuid::new_v4().to_string(), json!({}))
        .await
        .expect(404);
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // Bounds are inclusive; IPv6 and subnet_id accepted.
    let r = post(&h, &p, json!({"weight": 0, "protocol_port": 65535}))
        .await
        .expect(201);
    assert_eq!(r.body["member"]["weight"], 0);
    h.settle().await;
    post(&h, &p, json!({"weight": 256, "address": "2001:db8::1"}))
        .await
        .expect(201);
    h.settle().await;
    let r = post(
        &h,
        &p,
        json!({"address": "127.170.0.9", "subnet_id": h.subnet_id}),
    )
    .await
    .expect(201);
    assert_eq!(r.body["member"]["subnet_id"], json!(h.subnet_id));
    h.settle().await;
    // Duplicate (address, port).
    post(&h, &p, json!({"address": "127.170.0.9"}))
        .await
        .error(409, "127.170.0.9");
}

#[tokio::test]
async fn member_changes_need_an_active_pool() {
    let h = Harness::new().await;
    let (lb, _l, p) = setup(&h).await;
    post(&h, &p, json!({})).await.expect(201);
    // LB and pool are PENDING_UPDATE.
    post(&h, &p, json!({"address": "10.0.0.2"})).await.error(
        409,
        &format!("Load Balancer {lb} is immutable and cannot be updated."),
    );
    h.put(
        &format!("/v2/lbaas/pools/{p}/members"),
        json!({"members": []}),
    )
    .await
    .expect(409);
    h.settle().await;
    // A pool in ERROR (its creation was refused) takes no members.
    h.refuse(true);
    let bad = h
        .post(
            "/v2/lbaas/pools",
            json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}),
        )
        .await
        .expect(201);
    let bad = id(&bad.body["pool"]);
    h.settle().await;
    h.refuse(false);
    assert_eq!(
        h.status_of(&format!("/v2/lbaas/pools/{bad}"), "pool").await,
        "ERROR"
    );
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    post(&h, &bad, json!({})).await.error(
        409,
        &format!("Pool {bad} is immutable and cannot be updated."),
    );
    // An ERROR child can still be deleted.
    h.delete(&format!("/v2/lbaas/pools/{bad}"))
        .await
        .expect(204);
    h.settle().await;
    h.get(&format!("/v2/lbaas/pools/{bad}")).await.expect(404);
}

#[tokio::test]
async fn operating_status_with_a_monitor() {
    let h = Harness::new().await;
    let (_lb, _l, p) = setup(&h).await;
    let hm = h.monitor(&p, "HTTP").await;
    let r = post(&h, &p, json!({})).await.expect(201);
    assert_eq!(r.body["member"]["operating_status"], "OFFLINE");
    let mid = id(&r.body["member"]);
    h.settle().await;
    // Deleting the monitor resets the members to NO_MONITOR.
    h.delete(&format!("/v2/lbaas/healthmonitors/{hm}"))
        .await
        .expect(204);
    h.settle().await;
    let r = h
        .get(&format!("/v2/lbaas/pools/{p}/members/{mid}"))
        .await
        .expect(200);
    assert_eq!(r.body["member"]["operating_status"], "NO_MONITOR");
}

#[tokio::test]
async fn batch_update() {
    let h = Harness::new().await;
    let (lb, _l, p) = setup(&h).await;
    let keep = h.member(&p, "10.0.0.1", 80).await;
    let gone = h.member(&p, "10.0.0.2", 80).await;
    let path = format!("/v2/lbaas/pools/{p}/members");
    let r = h
        .put(
            &path,
            json!({"members": [
                {"address": "10.0.0.1", "protocol_port": 80, "weight": 7},
                {"address": "10.0.0.3", "protocol_port": "80", "name": "new"}]}),
        )
        .await
        .expect(202);
    assert!(r.text.is_empty(), "batch update has no body: {}", r.text);
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    let s = h.store.snapshot();
    let status = |mid: &str| {
        s.members
            .get(&mid.parse().unwrap())
            .map(|m| m.provisioning_status.to_string())
    };
    assert_eq!(status(&keep).as_deref(), Some("PENDING_UPDATE"));
    assert_eq!(status(&gone).as_deref(), Some("PENDING_DELETE"));
    h.settle().await;
    let r = h.get(&path).await.expect(200);
    let members = r.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let kept = members.iter().find(|m| m["id"] == json!(keep)).unwrap();
    assert_eq!(kept["weight"], 7);
    let new = members.iter().find(|m| m["address"] == "10.0.0.3").unwrap();
    assert_eq!(new["name"], "new");
    assert_eq!(new["provisioning_status"], "ACTIVE");

    // additive_only keeps members not listed.
    h.put(
        &format!("{path}?additive_only=true"),
        json!({"members": [{"address": "10.0.0.4", "protocol_port": 80}]}),
    )
    .await
    .expect(202);
    h.settle().await;
    let r = h.get(&path).await.expect(200);
    assert_eq!(r.body["members"].as_array().unwrap().len(), 3);

    // The same member twice.
    h.put(
        &path,
        json!({"members": [{"address": "10.0.0.9", "protocol_port": 80},
                           {"address": "10.0.0.9", "protocol_port": 80}]}),
    )
    .await
    .expect(400);
    h.put(&path, json!({"members": [{"address": "10.0.0.9"}]}))
        .await
        .error(400, "protocol_port");
    h.put(
        &path,
        json!({"members": [{"address": "10.0.0.9", "protocol_port": 80, "bogus": 1}]}),
    )
    .await
    .error(400, "bogus");
    h.put(&path, json!({"member": []})).await.expect(400);
    h.put(&path, json!({"members": [], "extra": 1}))
        .await
        .error(400, "extra");
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");

    // Empty list: everything is deleted.
    h.put(&path, json!({"members": []})).await.expect(202);
    h.settle().await;
    let r = h.get(&path).await.expect(200);
    assert_eq!(r.body["members"], json!([]));
    // Empty list on an empty pool: 202 without locking anything.
    h.put(&path, json!({"members": []})).await.expect(202);
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
}

#[tokio::test]
async fn member_quota() {
    let h = Harness::new().await;
    let (_lb, _l, p) = setup(&h).await;
    h.put(
        &format!("/v2/lbaas/quotas/{PROJECT}"),
        json!({"quota": {"member": 1}}),
    )
    .await
    .expect(202);
    h.member(&p, "10.0.0.1", 80).await;
    post(&h, &p, json!({"address": "10.0.0.2"}))
        .await
        .error(403, "Quota has been met for resources: Member");
    // The batch update counts the net increase: swapping one for one is fine.
    h.put(
        &format!("/v2/lbaas/pools/{p}/members"),
        json!({"members": [{"address": "10.0.0.5", "protocol_port": 80}]}),
    )
    .await
    .expect(202);
    h.settle().await;
    h.put(
        &format!("/v2/lbaas/pools/{p}/members"),
        json!({"members": [{"address": "10.0.0.5", "protocol_port": 80},
                           {"address": "10.0.0.6", "protocol_port": 80}]}),
    )
    .await
    .expect(403);
}
