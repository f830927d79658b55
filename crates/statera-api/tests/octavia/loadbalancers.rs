//! `/loadbalancers`: CRUD, VIP rules, locking, cascade delete, failover,
//! fully populated create.

use crate::support::*;
use serde_json::{Value, json};

const LB_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "admin_state_up",
    "project_id",
    "tenant_id",
    "provisioning_status",
    "operating_status",
    "vip_address",
    "vip_port_id",
    "vip_subnet_id",
    "vip_network_id",
    "vip_qos_policy_id",
    "vip_sg_ids",
    "vip_vnic_type",
    "additional_vips",
    "listeners",
    "pools",
    "provider",
    "flavor_id",
    "availability_zone",
    "tags",
    "created_at",
    "updated_at",
];

#[tokio::test]
async fn create_show_list_update_delete() {
    let h = Harness::new().await;
    let r = h.post_lb(json!({})).await.expect(201);
    let lb = &r.body["loadbalancer"];
    assert_fields(lb, LB_FIELDS);
    assert_fresh(lb);
    assert_eq!(lb["operating_status"], "OFFLINE");
    assert_eq!(lb["name"], "");
    assert_eq!(lb["description"], "");
    assert_eq!(lb["admin_state_up"], true);
    assert_eq!(lb["listeners"], json!([]));
    assert_eq!(lb["pools"], json!([]));
    assert_eq!(lb["tags"], json!([]));
    assert_eq!(lb["additional_vips"], json!([]));
    assert_eq!(lb["vip_sg_ids"], json!([]));
    assert_eq!(lb["vip_vnic_type"], "normal");
    // Statera's default provider is "native" (Octavia's is "amphora").
    assert_eq!(lb["provider"], "native");
    assert_eq!(lb["vip_subnet_id"], h.subnet_id.to_string());
    assert_eq!(lb["vip_network_id"], h.network_id.to_string());
    assert!(
        lb["vip_address"]
            .as_str()
            .unwrap()
            .starts_with("127.170.0."),
        "{lb}"
    );
    let lb_id = id(lb);
    let port_id: uuid::Uuid = lb["vip_port_id"].as_str().unwrap().parse().unwrap();
    assert!(h.store.snapshot().ports.get(&port_id).is_some());

    h.settle().await;
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb_id}"))
        .await
        .expect(200);
    let shown = &r.body["loadbalancer"];
    assert_fields(shown, LB_FIELDS);
    assert_eq!(shown["provisioning_status"], "ACTIVE");
    assert_timestamp(&shown["updated_at"]);

    let r = h.get("/v2/lbaas/loadbalancers").await.expect(200);
    assert_eq!(ids(&r.body, "loadbalancers"), vec![lb_id.clone()]);
    assert_eq!(r.body["loadbalancers_links"], json!([]));
    assert_fields(&r.body["loadbalancers"][0], LB_FIELDS);

    let r = h
        .put(
            &format!("/v2/lbaas/loadbalancers/{lb_id}"),
            json!({"loadbalancer": {"name": "renamed", "description": "d", "tags": ["a"]}}),
        )
        .await
        .expect(200);
    let lb = &r.body["loadbalancer"];
    assert_fields(lb, LB_FIELDS);
    assert_eq!(lb["name"], "renamed");
    assert_eq!(lb["description"], "d");
    assert_eq!(lb["tags"], json!(["a"]));
    assert_eq!(lb["provisioning_status"], "PENDING_UPDATE");
    h.settle().await;
    assert_eq!(h.lb_status(&lb_id).await, "ACTIVE");

    h.delete(&format!("/v2/lbaas/loadbalancers/{lb_id}"))
        .await
        .expect(204);
    assert_eq!(h.lb_status(&lb_id).await, "PENDING_DELETE");
    h.settle().await;
    h.get(&format!("/v2/lbaas/loadbalancers/{lb_id}"))
        .await
        .error(404, "not found");
    // The VIP port Statera made is gone too.
    assert!(h.store.snapshot().ports.get(&port_id).is_none());
    let r = h.get("/v2/lbaas/loadbalancers").await.expect(200);
    assert_eq!(r.body["loadbalancers"], json!([]));
}

#[tokio::test]
async fn create_with_every_attribute_and_lenient_types() {
    let h = Harness::new().await;
    let r = h
        .post_lb(json!({
            "name": "web", "description": "front", "admin_state_up": "False",
            "vip_address": "127.170.0.77", "tags": ["x", "y"], "provider": "native",
            "project_id": PROJECT,
        }))
        .await
        .expect(201);
    let lb = &r.body["loadbalancer"];
    assert_eq!(lb["vip_address"], "127.170.0.77");
    assert_eq!(lb["admin_state_up"], false);
    assert_eq!(lb["tags"], json!(["x", "y"]));
    // tenant_id is accepted instead of project_id.
    h.post_lb(json!({"tenant_id": PROJECT})).await.expect(201);
    // Booleans: "true", "True", 1.
    for v in [json!("true"), json!("True"), json!(1), json!(true)] {
        let r = h.post_lb(json!({"admin_state_up": v})).await.expect(201);
        assert_eq!(r.body["loadbalancer"]["admin_state_up"], true);
    }
    h.post_lb(json!({"admin_state_up": "maybe"}))
        .await
        .error(400, "admin_state_up");
    h.post_lb(json!({"admin_state_up": 2}))
        .await
        .error(400, "admin_state_up");
}

#[tokio::test]
async fn vip_validation() {
    let h = Harness::new().await;
    h.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"name": "x"}}),
    )
    .await
    .error(
        400,
        "Validation failure: VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.",
    );
    let missing = uuid::Uuid::new_v4();
    h.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": missing}}),
    )
    .await
    .expect(400);
    h.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_network_id": missing}}),
    )
    .await
    .expect(400);
    h.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_port_id": missing}}),
    )
    .await
    .expect(400);
    h.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": "not-a-uuid"}}),
    )
    .await
    .error(400, "vip_subnet_id");
    h.post_lb(json!({"vip_address": "10.9.9.9"}))
        .await
        .expect(400);
    h.post_lb(json!({"vip_address": "not-an-ip"}))
        .await
        .error(400, "vip_address");
    // The network alone picks its subnet.
    let r = h
        .post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_network_id": h.network_id}}),
        )
        .await
        .expect(201);
    assert_eq!(
        r.body["loadbalancer"]["vip_subnet_id"],
        h.subnet_id.to_string()
    );
    // The same address twice: conflict.
    h.post_lb(json!({"vip_address": "127.170.0.50"}))
        .await
        .expect(201);
    let r = h.post_lb(json!({"vip_address": "127.170.0.50"})).await;
    assert!(
        r.status.as_u16() == 409 || r.status.as_u16() == 400,
        "{}",
        r.text
    );
}

#[tokio::test]
async fn provider_rules() {
    let h = Harness::new().await;
    h.post_lb(json!({"provider": "nope"}))
        .await
        .error(400, "Provider 'nope' is not enabled.");
    // Statera-specific: a configured but unavailable provider is 501.
    h.post_lb(json!({"provider": "haproxy"})).await.expect(501);
    h.post_lb(json!({"flavor_id": uuid::Uuid::new_v4()}))
        .await
        .expect(400);
    h.post_lb(json!({"availability_zone": "nowhere"}))
        .await
        .expect(400);
    // Statera-specific: additional VIPs are not implemented yet (501).
    h.post_lb(json!({"additional_vips": [{"subnet_id": h.subnet_id}]}))
        .await
        .expect(501);
}

#[tokio::test]
async fn unknown_and_immutable_attributes() {
    let h = Harness::new().await;
    h.post_lb(json!({"bogus": 1}))
        .await
        .error(400, "Unknown attribute");
    let lb = h.lb().await;
    let path = format!("/v2/lbaas/loadbalancers/{lb}");
    for (k, v) in [
        ("vip_subnet_id", json!(h.subnet_id)),
        ("vip_address", json!("127.170.0.9")),
        ("vip_port_id", json!(uuid::Uuid::new_v4())),
        ("vip_network_id", json!(h.network_id)),
        ("provider", json!("native")),
        ("project_id", json!(PROJECT)),
        ("flavor_id", json!(uuid::Uuid::new_v4())),
        ("availability_zone", json!("az")),
        ("id", json!(lb)),
        ("listeners", json!([])),
        ("provisioning_status", json!("ACTIVE")),
    ] {
        h.put(&path, json!({"loadbalancer": {k: v}}))
            .await
            .error(400, k);
    }
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    // admin_state_up: null is false.
    let r = h
        .put(&path, json!({"loadbalancer": {"admin_state_up": null}}))
        .await
        .expect(200);
    assert_eq!(r.body["loadbalancer"]["admin_state_up"], false);
    h.settle().await;
    // Nulls clear name/description; they render as "".
    let r = h
        .put(
            &path,
            json!({"loadbalancer": {"name": null, "description": null}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["loadbalancer"]["name"], "");
    assert_eq!(r.body["loadbalancer"]["description"], "");
    // Not wrapped in the envelope.
    h.settle().await;
    h.put(&path, json!({"name": "x"})).await.expect(400);
}

#[tokio::test]
async fn lb_changes_while_pending_are_conflicts() {
    let h = Harness::new().await;
    let r = h.post_lb(json!({})).await.expect(201);
    let lb = id(&r.body["loadbalancer"]);
    let path = format!("/v2/lbaas/loadbalancers/{lb}");
    h.put(&path, json!({"loadbalancer": {"name": "x"}}))
        .await
        .error(
            409,
            &format!("Invalid state PENDING_CREATE of loadbalancer resource {lb}"),
        );
    h.delete(&path)
        .await
        .error(409, "Invalid state PENDING_CREATE");
    h.put(&format!("{path}/failover"), json!({}))
        .await
        .error(409, "Invalid state");
    h.settle().await;
    h.put(&path, json!({"loadbalancer": {"name": "x"}}))
        .await
        .expect(200);
    h.put(&path, json!({"loadbalancer": {"name": "y"}}))
        .await
        .error(409, "Invalid state PENDING_UPDATE");
    // A child change while the LB is PENDING_UPDATE.
    h.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80}}),
    )
    .await
    .error(
        409,
        &format!("Load Balancer {lb} is immutable and cannot be updated."),
    );
    h.settle().await;
    h.listener(&lb, "HTTP", 80).await;
}

#[tokio::test]
async fn delete_with_children_needs_cascade() {
    for cascade in ["True", "true", "1", "yes"] {
        let h = Harness::new().await;
        let lb = h.lb().await;
        let l = h.listener(&lb, "HTTP", 80).await;
        let p = h.default_pool(&l, "HTTP").await;
        let m = h.member(&p, "10.0.0.1", 80).await;
        let hm = h.monitor(&p, "HTTP").await;
        let pol = h.policy(&l).await;
        let rule = h.rule(&pol, "/x").await;
        let path = format!("/v2/lbaas/loadbalancers/{lb}");
        h.delete(&path).await.error(
            400,
            &format!("Validation failure: Cannot delete Load Balancer {lb} - it has children"),
        );
        h.delete(&format!("{path}?cascade=false")).await.expect(400);
        h.delete(&format!("{path}?cascade={cascade}"))
            .await
            .expect(204);
        for (path, key) in [
            (format!("/v2/lbaas/loadbalancers/{lb}"), "loadbalancer"),
            (format!("/v2/lbaas/listeners/{l}"), "listener"),
            (format!("/v2/lbaas/pools/{p}"), "pool"),
            (format!("/v2/lbaas/pools/{p}/members/{m}"), "member"),
            (format!("/v2/lbaas/healthmonitors/{hm}"), "healthmonitor"),
            (format!("/v2/lbaas/l7policies/{pol}"), "l7policy"),
            (format!("/v2/lbaas/l7policies/{pol}/rules/{rule}"), "rule"),
        ] {
            assert_eq!(h.status_of(&path, key).await, "PENDING_DELETE", "{path}");
        }
        h.settle().await;
        for path in [
            format!("/v2/lbaas/loadbalancers/{lb}"),
            format!("/v2/lbaas/listeners/{l}"),
            format!("/v2/lbaas/pools/{p}"),
            format!("/v2/lbaas/healthmonitors/{hm}"),
            format!("/v2/lbaas/l7policies/{pol}"),
        ] {
            h.get(&path).await.error(404, "not found");
        }
        assert!(
            h.plane
                .removed
                .lock()
                .unwrap()
                .iter()
                .any(|x| x.to_string() == lb),
            "the data plane was told to remove the load balancer"
        );
        let s = h.store.snapshot();
        assert_eq!(s.members.iter().count(), 0);
        assert_eq!(s.l7rules.iter().count(), 0);
        assert_eq!(s.ports.iter().count(), 0, "VIP port freed");
    }
}

#[tokio::test]
async fn failover_is_admin_and_202() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let path = format!("/v2/lbaas/loadbalancers/{lb}/failover");
    h.as_member(PROJECT, "PUT", &path, None)
        .await
        .error(403, "Policy does not allow");
    let r = h.call("PUT", &path, None).await.expect(202);
    assert!(r.text.is_empty(), "{}", r.text);
    assert_eq!(h.lb_status(&lb).await, "PENDING_UPDATE");
    h.settle().await;
    assert_eq!(h.lb_status(&lb).await, "ACTIVE");
    h.call(
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{}/failover", uuid::Uuid::new_v4()),
        None,
    )
    .await
    .error(404, "not found");
}

#[tokio::test]
async fn refused_create_goes_to_error_and_can_be_deleted() {
    let h = Harness::new().await;
    h.refuse(true);
    let r = h.post_lb(json!({})).await.expect(201);
    let lb = id(&r.body["loadbalancer"]);
    h.settle().await;
    assert_eq!(h.lb_status(&lb).await, "ERROR");
    // A LB in ERROR accepts only DELETE or failover.
    h.put(
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        json!({"loadbalancer": {"name": "x"}}),
    )
    .await
    .error(409, "Invalid state ERROR");
    h.refuse(false);
    h.delete(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(204);
    h.settle().await;
    h.get(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(404);
}

fn graph_body(subnet: uuid::Uuid) -> Value {
    json!({"loadbalancer": {
        "name": "full", "vip_subnet_id": subnet,
        "listeners": [
            {"name": "http", "protocol": "HTTP", "protocol_port": 80,
             "default_pool": {"name": "web"},
             "l7policies": [
                {"name": "api", "action": "REDIRECT_TO_POOL", "redirect_pool": {"name": "api"},
                 "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}]},
                {"name": "old", "action": "REDIRECT_TO_URL", "redirect_url": "http://example.com/",
                 "rules": [{"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "old.example.com"}]}
             ]},
            {"protocol": "TCP", "protocol_port": 8443,
             "default_pool": {"name": "tls", "protocol": "TCP", "lb_algorithm": "SOURCE_IP"}}
        ],
        "pools": [
            {"name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
             "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2},
             "members": [{"address": "10.0.0.1", "protocol_port": 8080},
                         {"address": "10.0.0.2", "protocol_port": 8080, "weight": 5}]},
            {"name": "api", "protocol": "HTTP", "lb_algorithm": "LEAST_CONNECTIONS",
             "members": [{"address": "10.0.1.1", "protocol_port": 9000}]}
        ]
    }})
}

#[tokio::test]
async fn fully_populated_create() {
    let h = Harness::new().await;
    let r = h
        .post("/v2/lbaas/loadbalancers", graph_body(h.subnet_id))
        .await
        .expect(201);
    let lb = &r.body["loadbalancer"];
    assert_eq!(lb["provisioning_status"], "PENDING_CREATE");
    let listeners = lb["listeners"].as_array().unwrap();
    let pools = lb["pools"].as_array().unwrap();
    assert_eq!(listeners.len(), 2);
    assert_eq!(pools.len(), 3);
    // Nested full objects, without back-references.
    for l in listeners {
        assert!(l.get("protocol").is_some(), "full listener: {l}");
        assert!(l.get("loadbalancers").is_none(), "{l}");
        assert_eq!(l["provisioning_status"], "PENDING_CREATE");
        assert_eq!(l["tenant_id"], PROJECT);
        for p in l["l7policies"].as_array().unwrap() {
            assert!(p.get("action").is_some(), "full policy: {p}");
            assert_eq!(p["provisioning_status"], "PENDING_CREATE");
            for r in p["rules"].as_array().unwrap() {
                assert!(r.get("compare_type").is_some(), "full rule: {r}");
                assert_eq!(r["provisioning_status"], "PENDING_CREATE");
            }
        }
    }
    let http = listeners.iter().find(|l| l["protocol"] == "HTTP").unwrap();
    let pols = http["l7policies"].as_array().unwrap();
    assert_eq!(pols.len(), 2);
    assert_eq!(pols[0]["position"], 1);
    assert_eq!(pols[1]["position"], 2);
    assert_eq!(pols[1]["redirect_http_code"], 302);
    let web = pools.iter().find(|p| p["name"] == "web").unwrap();
    assert_eq!(http["default_pool_id"], web["id"]);
    assert_eq!(
        pols[0]["redirect_pool_id"],
        pools.iter().find(|p| p["name"] == "api").unwrap()["id"]
    );
    for p in pools {
        assert!(p.get("lb_algorithm").is_some(), "full pool: {p}");
        assert!(p.get("loadbalancers").is_none(), "{p}");
        assert!(p.get("healthmonitor_id").is_none(), "{p}");
        assert_eq!(p["provisioning_status"], "PENDING_CREATE");
        for m in p["members"].as_array().unwrap() {
            assert!(m.get("address").is_some(), "full member: {m}");
            assert_eq!(m["provisioning_status"], "PENDING_CREATE");
        }
    }
    let hm = &web["healthmonitor"];
    assert_eq!(hm["type"], "HTTP");
    assert!(hm.get("pools").is_none(), "{hm}");
    assert_eq!(hm["provisioning_status"], "PENDING_CREATE");
    assert_eq!(web["members"].as_array().unwrap().len(), 2);
    assert_eq!(web["members"][0]["operating_status"], "OFFLINE");
    let api = pools.iter().find(|p| p["name"] == "api").unwrap();
    assert_eq!(api["members"][0]["operating_status"], "NO_MONITOR");

    let lb_id = id(lb);
    h.settle().await;
    assert_eq!(h.lb_status(&lb_id).await, "ACTIVE");
    let s = h.store.snapshot();
    let all_active = s
        .listeners
        .iter()
        .all(|x| x.provisioning_status.to_string() == "ACTIVE")
        && s.pools
            .iter()
            .all(|x| x.provisioning_status.to_string() == "ACTIVE")
        && s.members
            .iter()
            .all(|x| x.provisioning_status.to_string() == "ACTIVE")
        && s.healthmonitors
            .iter()
            .all(|x| x.provisioning_status.to_string() == "ACTIVE")
        && s.l7policies
            .iter()
            .all(|x| x.provisioning_status.to_string() == "ACTIVE")
        && s.l7rules
            .iter()
            .all(|x| x.provisioning_status.to_string() == "ACTIVE");
    assert!(all_active, "every object ACTIVE after the controller ran");
    assert_eq!(s.members.iter().count(), 3);
    assert_eq!(s.l7rules.iter().count(), 2);
    // The plain GET shows references again.
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb_id}"))
        .await
        .expect(200);
    for l in r.body["loadbalancer"]["listeners"].as_array().unwrap() {
        assert_eq!(keys(l), vec!["id"]);
    }
    assert_eq!(r.body["loadbalancer"]["pools"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn fully_populated_pool_naming_errors() {
    let h = Harness::new().await;
    let post = |body: Value| {
        let mut b = json!({"vip_subnet_id": h.subnet_id});
        merge(&mut b, body);
        h.post("/v2/lbaas/loadbalancers", json!({"loadbalancer": b}))
    };
    post(json!({"pools": [{"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}]}))
        .await
        .error(400, "Pools must be named");
    post(json!({"pools": [
        {"name": "a", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"},
        {"name": "a", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}]}))
    .await
    .error(400, "Pool names must be unique");
    post(json!({"listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "ghost"}}]}))
        .await
        .error(400, "Pool 'ghost' was referenced but no full definition was found.");
    post(json!({"pools": [{"name": "a", "lb_algorithm": "ROUND_ROBIN"}]}))
        .await
        .error(
            400,
            "Pool definition for 'a' missing required attribute: protocol",
        );
    post(json!({"pools": [{"name": "a", "protocol": "HTTP"}]}))
        .await
        .error(
            400,
            "Pool definition for 'a' missing required attribute: lb_algorithm",
        );
    // A pool defined inline and again at top level.
    post(json!({
        "listeners": [{"protocol": "HTTP", "protocol_port": 80,
                       "default_pool": {"name": "a", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}],
        "pools": [{"name": "a", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}]}))
    .await
    .error(400, "Pool names must be unique");
    // Nested validation: an incompatible default pool, a port clash.
    post(json!({
        "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "t"}}],
        "pools": [{"name": "t", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}]}))
    .await
    .error(
        400,
        "The pool protocol 'TCP' is invalid while the listener protocol is 'HTTP'.",
    );
    post(json!({"listeners": [
        {"protocol": "HTTP", "protocol_port": 80}, {"protocol": "TCP", "protocol_port": 80}]}))
    .await
    .expect(409);
    post(json!({"listeners": [{"protocol": "HTTP", "protocol_port": 80, "bogus": 1}]}))
        .await
        .error(400, "bogus");
    // Nothing was created by any of the failures.
    let s = h.store.snapshot();
    assert_eq!(s.loadbalancers.iter().count(), 0);
    assert_eq!(s.ports.iter().count(), 0);
}

#[tokio::test]
async fn fully_populated_counts_against_quotas() {
    let h = Harness::new().await;
    h.put(
        &format!("/v2/lbaas/quotas/{PROJECT}"),
        json!({"quota": {"member": 2}}),
    )
    .await
    .expect(202);
    h.post("/v2/lbaas/loadbalancers", graph_body(h.subnet_id))
        .await
        .error(403, "Quota has been met for resources: Member");
    assert_eq!(h.store.snapshot().loadbalancers.iter().count(), 0);
}
