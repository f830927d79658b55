//! Octavia compatibility (issue 12, items 10, 18-23): error shapes of what
//! axum answers before a handler, Octavia's provider names, subnet pools,
//! addresses as sent, availability-zone metadata, the topologies Statera can
//! build, and the operating status of pools no listener serves.

use crate::support::*;
use serde_json::{Value, json};
use statera_config::{ListenerReport, ListenerState, MemberHealth, MemberReport, PoolReport};
use statera_config::{Stats, StatusReport};

/// An error body in the Neutron shape, with `kind`.
#[track_caller]
fn neutron_error(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    let e = &r.body["NeutronError"];
    assert_eq!(keys(&r.body), vec!["NeutronError"], "{}", r.text);
    assert_eq!(e["type"], kind, "{}", r.text);
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn undecodable_path_ids_answer_in_the_route_shape() {
    let h = Harness::new().await;
    for path in [
        "/v2/lbaas/loadbalancers/%ff%fe",
        "/v2.0/lbaas/pools/%ff%fe/members",
        "/v2/lbaas/availabilityzones/%ff%fe",
    ] {
        let r = h.get(path).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.text);
        let status = r.status.as_u16();
        r.error(status, "");
    }
    for path in ["/v2.0/networks/%ff%fe", "/v2.0/ports/%c3%28"] {
        let r = h.get(path).await;
        let status = r.status.as_u16();
        assert!((400..500).contains(&status), "{path}: {}", r.text);
        neutron_error(
            &r,
            status,
            if status == 404 {
                "HTTPNotFound"
            } else {
                "HTTPBadRequest"
            },
        );
    }
}

#[tokio::test]
async fn long_uris_and_large_headers_answer_in_the_route_shape() {
    let h = Harness::new().await;
    let long = format!("/v2/lbaas/loadbalancers?name={}", "a".repeat(9000));
    h.get(&long).await.error(414, "URI");
    let long = format!("/v2.0/networks?name={}", "a".repeat(9000));
    neutron_error(&h.get(&long).await, 414, "HTTPRequestURITooLong");
    let big = "b".repeat(8000);
    let headers: Vec<(String, String)> = (0..9)
        .map(|i| (format!("x-big-{i}"), big.clone()))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.raw("GET", "/v2/lbaas/loadbalancers", &headers, None)
        .await
        .error(431, "headers");
    let r = h.raw("GET", "/v2.0/subnets", &headers, None).await;
    neutron_error(&r, 431, "HTTPRequestHeaderFieldsTooLarge");
    // Below the limits nothing changes.
    h.get(&format!(
        "/v2/lbaas/loadbalancers?name={}",
        "a".repeat(1000)
    ))
    .await
    .expect(200);
}

#[tokio::test]
async fn oversized_bodies_answer_in_the_route_shape() {
    let h = Harness::new().await;
    let body = format!(
        "{{\"loadbalancer\": {{\"name\": \"{}\"}}}}",
        "x".repeat(3 << 20)
    );
    h.raw("POST", "/v2/lbaas/loadbalancers", &[], Some(body.clone()))
        .await
        .error(413, "");
    let body = format!("{{\"network\": {{\"name\": \"{}\"}}}}", "x".repeat(3 << 20));
    let r = h.raw("POST", "/v2.0/networks", &[], Some(body)).await;
    neutron_error(&r, 413, "HTTPRequestEntityTooLarge");
    assert_eq!(h.store.snapshot().loadbalancers.iter().count(), 0);
}

#[tokio::test]
async fn an_availability_zone_named_empty_is_refused() {
    let h = Harness::new().await;
    let r = h
        .post(
            "/v2/lbaas/availabilityzoneprofiles",
            json!({"availability_zone_profile": {"name": "p", "provider_name": "native",
                   "availability_zone_data": "{}"}}),
        )
        .await
        .expect(201);
    let profile = id(&r.body["availability_zone_profile"]);
    h.post(
        "/v2/lbaas/availabilityzones",
        json!({"availability_zone": {"name": "", "availability_zone_profile_id": profile}}),
    )
    .await
    .error(400, "minimum character requirement of 1");
    assert_eq!(h.store.snapshot().availability_zones.iter().count(), 0);
}

#[tokio::test]
async fn subnet_pools_list_empty_and_show_not_found() {
    let h = Harness::new().await;
    for path in [
        "/v2.0/subnetpools",
        "/v2.0/subnetpools?name=pool1",
        "/v2.0/subnetpools?name=pool1&fields=id&sort_key=name",
        "/v2/subnetpools?ip_version=4",
    ] {
        let r = h.get(path).await.expect(200);
        assert_eq!(r.body, json!({"subnetpools": []}), "{path}");
    }
    let missing = uuid::Uuid::new_v4();
    let r = h.get(&format!("/v2.0/subnetpools/{missing}")).await;
    neutron_error(&r, 404, "SubnetPoolNotFound");
    assert!(
        r.body["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .contains(&missing.to_string())
    );
    let r = h.call("DELETE", "/v2.0/subnetpools", None).await;
    neutron_error(&r, 405, "HTTPMethodNotAllowed");
}

#[tokio::test]
async fn member_addresses_come_back_as_sent() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let listener = h.listener(&lb, "TCP", 80).await;
    let pool = h.default_pool(&listener, "TCP").await;
    let r = h
        .post(
            &format!("/v2/lbaas/pools/{pool}/members"),
            json!({"member": {"address": "2001:db8:0:0:0:0:0:1", "protocol_port": 80,
                              "monitor_address": "2001:DB8::0:2", "monitor_port": 81}}),
        )
        .await
        .expect(201);
    let m = id(&r.body["member"]);
    assert_eq!(r.body["member"]["address"], "2001:db8:0:0:0:0:0:1");
    assert_eq!(r.body["member"]["monitor_address"], "2001:DB8::0:2");
    h.settle().await;
    let r = h
        .get(&format!("/v2/lbaas/pools/{pool}/members/{m}"))
        .await
        .expect(200);
    assert_eq!(r.body["member"]["address"], "2001:db8:0:0:0:0:0:1");
    assert_eq!(r.body["member"]["monitor_address"], "2001:DB8::0:2");
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}/status"))
        .await
        .expect(200);
    assert!(r.text.contains("2001:db8:0:0:0:0:0:1"), "{}", r.text);
    // Uniqueness compares addresses, not their spelling.
    h.post(
        &format!("/v2/lbaas/pools/{pool}/members"),
        json!({"member": {"address": "2001:db8::1", "protocol_port": 80}}),
    )
    .await
    .error(409, "already using ip");
    // A canonical address is stored as it always was.
    let plain = h.member(&pool, "2001:db8::5", 80).await;
    let r = h
        .get(&format!("/v2/lbaas/pools/{pool}/members/{plain}"))
        .await
        .expect(200);
    assert_eq!(r.body["member"]["address"], "2001:db8::5");
    assert!(r.body["member"]["monitor_address"].is_null());
    // The data plane gets the parsed address.
    let applied = h.plane.applied.lock().unwrap().last().cloned().unwrap();
    let text = serde_json::to_string(&*applied).unwrap();
    assert!(text.contains("\"2001:db8::1\""), "{text}");
}

#[tokio::test]
async fn octavia_provider_names_are_the_default_provider() {
    let h = Harness::new().await;
    let r = h.get("/v2/lbaas/providers").await.expect(200);
    let names: Vec<&str> = r.body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["native", "haproxy", "amphora", "octavia"]);
    for alias in ["amphora", "octavia"] {
        let r = h
            .get(&format!("/v2/lbaas/providers/{alias}/flavor_capabilities"))
            .await
            .expect(200);
        assert_eq!(
            r.body["flavor_capabilities"][0]["name"],
            "loadbalancer_topology"
        );
        let r = h
            .get(&format!(
                "/v2/lbaas/providers/{alias}/availability_zone_capabilities"
            ))
            .await
            .expect(200);
        let names: Vec<&str> = r.body["availability_zone_capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "compute_zone",
                "management_network",
                "valid_vip_networks",
                "agents"
            ]
        );
    }
    for alias in ["amphora", "octavia"] {
        let r = h.post_lb(json!({"provider": alias})).await.expect(201);
        assert_eq!(r.body["loadbalancer"]["provider"], alias);
        let lb = id(&r.body["loadbalancer"]);
        h.settle().await;
        assert_eq!(h.lb_status(&lb).await, "ACTIVE");
        // Children follow the default provider's rules (501 for SCTP on native).
        h.post(
            "/v2/lbaas/listeners",
            json!({"listener": {"loadbalancer_id": lb, "protocol": "SCTP", "protocol_port": 80}}),
        )
        .await
        .expect(501);
    }
    // A flavor profile written for Octavia.
    h.post(
        "/v2/lbaas/flavorprofiles",
        json!({"flavorprofile": {"name": "fp", "provider_name": "amphora",
               "flavor_data": "{\"loadbalancer_topology\": \"SINGLE\"}"}}),
    )
    .await
    .expect(201);
    h.post_lb(json!({"provider": "nothing"}))
        .await
        .error(400, "Provider 'nothing' is not enabled.");
}

#[tokio::test]
async fn active_standby_is_refused_until_it_exists() {
    let h = Harness::new().await;
    for provider in ["native", "amphora"] {
        h.post(
            "/v2/lbaas/flavorprofiles",
            json!({"flavorprofile": {"name": "ha", "provider_name": provider,
                   "flavor_data": "{\"loadbalancer_topology\": \"ACTIVE_STANDBY\"}"}}),
        )
        .await
        .error(
            501,
            &format!("Provider '{provider}' does not support a requested option: loadbalancer_topology 'ACTIVE_STANDBY'"),
        );
    }
    h.post(
        "/v2/lbaas/flavorprofiles",
        json!({"flavorprofile": {"name": "ha", "provider_name": "native",
               "flavor_data": "{\"loadbalancer_topology\": \"MESH\"}"}}),
    )
    .await
    .error(501, "is not one of");
    assert_eq!(h.store.snapshot().flavor_profiles.iter().count(), 0);
    // A profile stored before this check (or by a later provider change)
    // still cannot build an ACTIVE_STANDBY load balancer.
    let r = h
        .post(
            "/v2/lbaas/flavorprofiles",
            json!({"flavorprofile": {"name": "single", "provider_name": "native",
                   "flavor_data": "{\"loadbalancer_topology\": \"SINGLE\"}"}}),
        )
        .await
        .expect(201);
    let profile: uuid::Uuid = id(&r.body["flavorprofile"]).parse().unwrap();
    let r = h
        .post(
            "/v2/lbaas/flavors",
            json!({"flavor": {"name": "ha", "flavor_profile_id": profile}}),
        )
        .await
        .expect(201);
    let flavor = id(&r.body["flavor"]);
    h.store
        .write(|txn| {
            let mut p = (**txn.state().flavor_profiles.get(&profile).unwrap()).clone();
            p.flavor_data = "{\"loadbalancer_topology\": \"ACTIVE_STANDBY\"}".to_string();
            txn.put(p)?;
            Ok::<_, statera_store::StoreError>(())
        })
        .await
        .unwrap();
    let ports_before = h.store.snapshot().ports.iter().count();
    h.post_lb(json!({"flavor_id": flavor}))
        .await
        .error(501, "ACTIVE_STANDBY");
    let s = h.store.snapshot();
    assert_eq!(s.loadbalancers.iter().count(), 0);
    assert_eq!(s.ports.iter().count(), ports_before);
}

#[tokio::test]
async fn availability_zone_metadata_has_octavia_keys() {
    let h = Harness::new().await;
    let r = h
        .post("/v2.0/networks", json!({"network": {"name": "other"}}))
        .await
        .expect(201);
    let other = id(&r.body["network"]);
    let r = h
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": other, "cidr": "10.97.3.0/24", "ip_version": 4}}),
        )
        .await
        .expect(201);
    let other_subnet = id(&r.body["subnet"]);
    let data = json!({"compute_zone": "rack-1", "management_network": other,
                      "valid_vip_networks": [h.network_id]})
    .to_string();
    let r = h
        .post(
            "/v2/lbaas/availabilityzoneprofiles",
            json!({"availability_zone_profile": {"name": "p", "provider_name": "native",
                   "availability_zone_data": data}}),
        )
        .await
        .expect(201);
    let profile = id(&r.body["availability_zone_profile"]);
    for (bad, needle) in [
        (
            json!({"valid_vip_networks": [uuid::Uuid::new_v4()]}).to_string(),
            "not found",
        ),
        (
            json!({"management_network": "net0"}).to_string(),
            "not found",
        ),
        (
            json!({"valid_vip_networks": "x"}).to_string(),
            "valid_vip_networks",
        ),
        (json!({"compute_zone": 5}).to_string(), "compute_zone"),
    ] {
        let r = h
            .post(
                "/v2/lbaas/availabilityzoneprofiles",
                json!({"availability_zone_profile": {"name": "bad", "provider_name": "native",
                       "availability_zone_data": bad}}),
            )
            .await;
        let status = r.status.as_u16();
        assert!(matches!(status, 400 | 501), "{}", r.text);
        r.error(status, needle);
    }
    h.post(
        "/v2/lbaas/availabilityzones",
        json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": profile}}),
    )
    .await
    .expect(201);
    // The VIP must be on one of the zone's valid_vip_networks.
    h.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": other_subnet, "availability_zone": "az1"}}),
    )
    .await
    .error(400, "Supplied VIP network_id is not allowed");
    assert_eq!(h.store.snapshot().loadbalancers.iter().count(), 0);
    let ports = h.store.snapshot().ports.iter().count();
    let r = h
        .post_lb(json!({"availability_zone": "az1"}))
        .await
        .expect(201);
    assert_eq!(r.body["loadbalancer"]["availability_zone"], "az1");
    assert_eq!(h.store.snapshot().ports.iter().count(), ports + 1);
    // Without an availability zone the other network is fine.
    h.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": other_subnet}}),
    )
    .await
    .expect(201);
}

/// A report of the last configuration applied for `lb`: every listener
/// open, every member up.
fn all_up(h: &Harness, lb: &str) -> StatusReport {
    let lb: uuid::Uuid = lb.parse().unwrap();
    let applied = h.plane.applied.lock().unwrap();
    let c = applied.iter().rev().find(|c| c.lb_id == lb).unwrap();
    StatusReport {
        lb_id: lb,
        version: c.version,
        listeners: c
            .listeners
            .iter()
            .map(|l| ListenerReport {
                id: l.id,
                state: ListenerState::Open,
                stats: Stats::default(),
                epoch: 1,
            })
            .collect(),
        pools: c
            .pools
            .iter()
            .map(|p| PoolReport {
                id: p.id,
                members: p
                    .members
                    .iter()
                    .map(|m| MemberReport {
                        id: m.id,
                        health: MemberHealth::Up,
                    })
                    .collect(),
            })
            .collect(),
        unserved: false,
    }
}

#[tokio::test]
async fn pools_no_listener_serves_are_offline() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let web = h.listener(&lb, "HTTP", 80).await;
    let served = h.default_pool(&web, "HTTP").await;
    h.member(&served, "10.0.0.1", 80).await;
    let empty = h
        .default_pool(&h.listener(&lb, "HTTP", 81).await, "HTTP")
        .await;
    let detached = h.pool(&lb, "HTTP").await;
    h.member(&detached, "10.0.0.2", 80).await;
    let off = h.listener(&lb, "HTTP", 82).await;
    let behind_disabled = h.default_pool(&off, "HTTP").await;
    h.member(&behind_disabled, "10.0.0.3", 80).await;
    h.put(
        &format!("/v2/lbaas/listeners/{off}"),
        json!({"listener": {"admin_state_up": false}}),
    )
    .await
    .expect(200);
    h.settle().await;
    let report = all_up(&h, &lb);
    h.controller.lock().await.ingest(vec![report]).await;
    let pool_status = |p: String| {
        let h = &h;
        async move {
            h.get(&format!("/v2/lbaas/pools/{p}"))
                .await
                .expect(200)
                .body["pool"]["operating_status"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(pool_status(served.clone()).await, "ONLINE");
    // HAProxy reports a backend without servers UP, which Octavia shows ONLINE.
    assert_eq!(pool_status(empty.clone()).await, "ONLINE");
    assert_eq!(pool_status(detached.clone()).await, "OFFLINE");
    assert_eq!(pool_status(behind_disabled.clone()).await, "OFFLINE");
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(200);
    assert_eq!(r.body["loadbalancer"]["operating_status"], "ONLINE");
    // A member down in a pool nobody serves does not degrade the load balancer.
    let mut report = all_up(&h, &lb);
    let detached_id: uuid::Uuid = detached.parse().unwrap();
    for p in &mut report.pools {
        if p.id == detached_id {
            for m in &mut p.members {
                m.health = MemberHealth::Down;
            }
        }
    }
    h.controller.lock().await.ingest(vec![report]).await;
    assert_eq!(pool_status(detached.clone()).await, "OFFLINE");
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}/status"))
        .await
        .expect(200);
    assert_eq!(
        r.body["statuses"]["loadbalancer"]["operating_status"],
        "ONLINE"
    );
    // Attached, it is served and counts.
    h.put(
        &format!("/v2/lbaas/listeners/{web}"),
        json!({"listener": {"default_pool_id": detached}}),
    )
    .await
    .expect(200);
    h.settle().await;
    let mut report = all_up(&h, &lb);
    for p in &mut report.pools {
        if p.id == detached_id {
            for m in &mut p.members {
                m.health = MemberHealth::Down;
            }
        }
    }
    h.controller.lock().await.ingest(vec![report]).await;
    assert_eq!(pool_status(detached).await, "ERROR");
    assert_eq!(pool_status(served).await, "OFFLINE");
    let r: Value = h
        .get(&format!("/v2/lbaas/loadbalancers/{lb}"))
        .await
        .expect(200)
        .body;
    assert_eq!(r["loadbalancer"]["operating_status"], "ERROR");
}
