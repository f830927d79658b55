//! The Neutron subset over the whole router: networks, subnets, ports, their
//! listing semantics and Neutron's error shape.

mod neutron_support;

use axum::http::{Method, StatusCode};
use neutron_support::{Api, api};
use serde_json::{Value, json};

/// The helpers only these tests use.
impl Api {
    async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        auth: Option<(&str, &str)>,
    ) -> (StatusCode, Value) {
        self.send(method, path, body.map(str::to_string), auth)
            .await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.send(Method::DELETE, path, None, None).await.0
    }

    async fn network(&self, name: &str) -> String {
        let (st, v) = self
            .post("/v2.0/networks", json!({"network": {"name": name}}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["network"]["id"].as_str().unwrap().to_string()
    }

    async fn subnet(&self, network_id: &str, cidr: &str, extra: Value) -> Value {
        let mut body = json!({"network_id": network_id, "cidr": cidr, "ip_version": 4});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, v) = self.post("/v2.0/subnets", json!({"subnet": body})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["subnet"].clone()
    }

    async fn port(&self, body: Value) -> (StatusCode, Value) {
        self.post("/v2.0/ports", json!({"port": body})).await
    }
}

/// The Neutron error body with exception `kind`.
fn assert_neutron_error(v: &Value, kind: &str) {
    let e = &v["NeutronError"];
    assert!(e.is_object(), "not a NeutronError: {v}");
    assert_eq!(e["type"], kind, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(e["detail"], "", "{v}");
}

fn ids(v: &Value, plural: &str) -> Vec<String> {
    v[plural]
        .as_array()
        .unwrap_or_else(|| panic!("no {plural}: {v}"))
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn network_subnet_port_lifecycle_and_defaults() {
    let api = api().await;
    let (st, v) = api
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "net1", "description": "d", "tags": ["t1"]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let n = &v["network"];
    let net = n["id"].as_str().unwrap().to_string();
    assert_eq!(n["name"], "net1");
    assert_eq!(n["status"], "ACTIVE");
    assert_eq!(n["admin_state_up"], true);
    assert_eq!(n["shared"], false);
    assert_eq!(n["router:external"], false);
    assert_eq!(n["mtu"], 1500);
    assert_eq!(n["subnets"], json!([]));
    assert_eq!(n["project_id"], "p1");
    assert_eq!(n["tenant_id"], "p1");
    assert_eq!(n["tags"], json!(["t1"]));
    assert_eq!(n["port_security_enabled"], true);
    assert_eq!(n["ipv4_address_scope"], Value::Null);
    assert_eq!(n["availability_zones"], json!([]));
    let created = n["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == 20,
        "timestamp {created}"
    );
    assert_eq!(n["updated_at"], n["created_at"]);

    // Subnet defaults: gateway = first host, pools = the rest.
    let sub = api
        .subnet(&net, "10.1.0.0/24", json!({"name": "sub1"}))
        .await;
    let sid = sub["id"].as_str().unwrap().to_string();
    assert_eq!(sub["gateway_ip"], "10.1.0.1");
    assert_eq!(
        sub["allocation_pools"],
        json!([{"start": "10.1.0.2", "end": "10.1.0.254"}])
    );
    assert_eq!(sub["ip_version"], 4);
    assert_eq!(sub["enable_dhcp"], true);
    assert_eq!(sub["network_id"], net.as_str());
    assert_eq!(sub["dns_nameservers"], json!([]));
    assert_eq!(sub["host_routes"], json!([]));
    assert_eq!(sub["subnetpool_id"], Value::Null);
    assert_eq!(sub["ipv6_ra_mode"], Value::Null);
    assert_eq!(sub["service_types"], json!([]));
    let (_, v) = api.get(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(v["network"]["subnets"], json!([sid]));

    // A port with no fixed_ips gets one address of the network's (first) IPv4 subnet.
    let (st, v) = api
        .port(json!({"network_id": net, "name": "p1", "device_id": "vm-1"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let p = &v["port"];
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.1.0.2"}])
    );
    assert_eq!(p["status"], "ACTIVE");
    assert_eq!(p["binding:vnic_type"], "normal");
    assert_eq!(p["allowed_address_pairs"], json!([]));
    assert_eq!(p["security_groups"], json!([]));
    let mac = p["mac_address"].as_str().unwrap();
    assert!(mac.starts_with("fa:16:3e:") && mac.len() == 17, "{mac}");
    let port1 = p["id"].as_str().unwrap().to_string();

    // No gateway.
    let nogw = api
        .subnet(&net, "10.2.0.0/29", json!({"gateway_ip": null}))
        .await;
    assert_eq!(nogw["gateway_ip"], Value::Null);
    assert_eq!(
        nogw["allocation_pools"],
        json!([{"start": "10.2.0.1", "end": "10.2.0.6"}])
    );

    // Subnet-only entry: allocated; explicit address: kept; no device: DOWN.
    let (st, v) = api
        .port(
            json!({"network_id": net, "mac_address": "FA:16:3E:AA:BB:CC", "fixed_ips": [
            {"subnet_id": sid}, {"ip_address": "10.2.0.5"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["port"]["fixed_ips"],
        json!([{"subnet_id": nogw["id"], "ip_address": "10.2.0.5"},
               {"subnet_id": sid, "ip_address": "10.1.0.3"}])
    );
    assert_eq!(v["port"]["status"], "DOWN");
    assert_eq!(v["port"]["mac_address"], "fa:16:3e:aa:bb:cc");
    let port2 = v["port"]["id"].as_str().unwrap().to_string();

    // Same MAC again on the network: 409.
    let (st, v) = api
        .port(json!({"network_id": net, "mac_address": "fa:16:3e:aa:bb:cc"}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_neutron_error(&v, "MacAddressInUse");

    // Update a port: name and fixed IPs re-validated.
    let (st, v) = api
        .put(
            &format!("/v2.0/ports/{port2}"),
            json!({"port": {"name": "renamed", "fixed_ips": [{"subnet_id": sid}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["port"]["name"], "renamed");
    // The port keeps its own address on the subnet.
    assert_eq!(
        v["port"]["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.1.0.3"}])
    );
    let (st, v) = api
        .put(
            &format!("/v2.0/ports/{port2}"),
            json!({"port": {"fixed_ips": [{"ip_address": "10.1.0.2"}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "IpAddressAlreadyAllocated");

    // Subnet update: name, pools, gateway; cidr immutable.
    let (st, v) = api
        .put(
            &format!("/v2.0/subnets/{sid}"),
            json!({"subnet": {"name": "renamed", "dns_nameservers": ["8.8.8.8"],
                   "allocation_pools": [{"start": "10.1.0.2", "end": "10.1.0.100"}],
                   "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.1.0.254"}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["subnet"]["name"], "renamed");
    assert_eq!(v["subnet"]["dns_nameservers"], json!(["8.8.8.8"]));
    assert_eq!(
        v["subnet"]["host_routes"],
        json!([{"destination": "192.168.0.0/16", "nexthop": "10.1.0.254"}])
    );
    let (st, v) = api
        .put(
            &format!("/v2.0/subnets/{sid}"),
            json!({"subnet": {"cidr": "10.9.0.0/24"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron_error(&v, "HTTPBadRequest");
    let (st, v) = api
        .put(
            &format!("/v2.0/subnets/{sid}"),
            json!({"subnet": {"gateway_ip": "10.1.0.2"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "GatewayIpInUse");

    // Network update.
    let (st, v) = api
        .put(
            &format!("/v2.0/networks/{net}"),
            json!({"network": {"name": "net1b", "mtu": 1400}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["network"]["name"], "net1b");
    assert_eq!(v["network"]["mtu"], 1400);

    // In use: network and subnet refuse deletion while ports hold addresses.
    let st = api.delete(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (_, v) = api
        .call(Method::DELETE, &format!("/v2.0/networks/{net}"), None)
        .await;
    assert_neutron_error(&v, "NetworkInUse");
    let (st, v) = api
        .call(Method::DELETE, &format!("/v2.0/subnets/{sid}"), None)
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_neutron_error(&v, "SubnetInUse");

    // Free everything; the network takes its subnets with it.
    assert_eq!(
        api.delete(&format!("/v2.0/ports/{port1}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/v2.0/ports/{port2}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/v2.0/networks/{net}")).await,
        StatusCode::NO_CONTENT
    );
    let (st, v) = api.get(&format!("/v2.0/subnets/{sid}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "SubnetNotFound");
    let (_, v) = api.get("/v2.0/subnets").await;
    assert_eq!(v["subnets"], json!([]));
}

#[tokio::test]
async fn subnet_validation() {
    let api = api().await;
    let net = api.network("n").await;
    api.subnet(&net, "10.0.0.0/16", json!({})).await;
    let bad = |body: Value| {
        let mut b = json!({"network_id": net, "ip_version": 4});
        for (k, v) in body.as_object().unwrap() {
            b[k] = v.clone();
        }
        json!({"subnet": b})
    };
    let cases = [
        // Overlaps the /16 on the same network.
        (
            json!({"cidr": "10.0.5.0/24"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
        ),
        // Host bits set.
        (
            json!({"cidr": "10.1.0.5/24"}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        (
            json!({"cidr": "not-a-cidr"}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        // ip_version does not match.
        (
            json!({"cidr": "2001:db8::/64"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
        ),
        (
            json!({"cidr": "10.1.0.0/24", "gateway_ip": "10.2.0.1"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
        ),
        (
            json!({"cidr": "10.1.0.0/24", "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.1.5"}]}),
            StatusCode::BAD_REQUEST,
            "OutOfBoundsAllocationPool",
        ),
        (
            json!({"cidr": "10.1.0.0/24", "allocation_pools": [{"start": "10.1.0.1", "end": "10.1.0.5"}]}),
            StatusCode::CONFLICT,
            "GatewayConflictWithAllocationPools",
        ),
        (
            json!({"cidr": "10.1.0.0/24", "allocation_pools": [
                {"start": "10.1.0.10", "end": "10.1.0.20"}, {"start": "10.1.0.15", "end": "10.1.0.30"}]}),
            StatusCode::CONFLICT,
            "OverlappingAllocationPools",
        ),
        (
            json!({"cidr": "10.1.0.0/24", "bogus": 1}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        (
            json!({"cidr": "10.1.0.0/24", "ipv6_ra_mode": "slaac"}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
    ];
    for (body, status, kind) in cases {
        let (st, v) = api.post("/v2.0/subnets", bad(body.clone())).await;
        assert_eq!(st, status, "{body} -> {v}");
        assert_neutron_error(&v, kind);
    }
    // Missing cidr, unknown network.
    let (st, v) = api
        .post("/v2.0/subnets", json!({"subnet": {"network_id": net}}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_neutron_error(&v, "HTTPBadRequest");
    let (st, v) = api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01", "cidr": "10.7.0.0/24"}}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "NetworkNotFound");
    // The same CIDR is fine on another network; IPv6 works with explicit pools.
    let other = api.network("other").await;
    api.subnet(&other, "10.0.0.0/16", json!({})).await;
    let v6 = api
        .subnet(
            &other,
            "2001:db8::/64",
            json!({"ip_version": 6, "allocation_pools": [{"start": "2001:db8::10", "end": "2001:db8::20"}]}),
        )
        .await;
    assert_eq!(v6["ip_version"], 6);
    assert_eq!(v6["gateway_ip"], "2001:db8::1");
}

#[tokio::test]
async fn port_addresses() {
    let api = api().await;
    let net = api.network("n").await;
    let sub = api
        .subnet(
            &net,
            "10.3.0.0/29",
            json!({"allocation_pools": [{"start": "10.3.0.2", "end": "10.3.0.3"}]}),
        )
        .await;
    let sid = sub["id"].as_str().unwrap();
    let (st, v) = api
        .port(
            json!({"network_id": net, "fixed_ips": [{"subnet_id": sid, "ip_address": "10.3.0.6"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // Taken: 409.
    let (st, v) = api
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "10.3.0.6"}]}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "IpAddressAlreadyAllocated");
    // The gateway is not for ports.
    let (st, v) = api
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "10.3.0.1"}]}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "IpAddressAlreadyAllocated");
    // Outside the subnet / the broadcast address: 400.
    let (st, v) = api
        .port(
            json!({"network_id": net, "fixed_ips": [{"subnet_id": sid, "ip_address": "10.9.9.9"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron_error(&v, "InvalidIpForSubnet");
    let (st, v) = api
        .port(
            json!({"network_id": net, "fixed_ips": [{"subnet_id": sid, "ip_address": "10.3.0.7"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron_error(&v, "InvalidIpForSubnet");
    let (st, v) = api
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": "10.9.9.9"}]}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron_error(&v, "InvalidIpForNetwork");
    // A subnet of another network.
    let other = api.network("other").await;
    let osub = api.subnet(&other, "10.4.0.0/24", json!({})).await;
    let (st, v) = api
        .port(json!({"network_id": net, "fixed_ips": [{"subnet_id": osub["id"]}]}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron_error(&v, "InvalidInput");
    // The pool has two addresses: two allocations, then exhaustion.
    for want in ["10.3.0.2", "10.3.0.3"] {
        let (st, v) = api.port(json!({"network_id": net})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["port"]["fixed_ips"][0]["ip_address"], want);
    }
    let (st, v) = api.port(json!({"network_id": net})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "IpAddressGenerationFailure");
    // Explicitly no addresses.
    let (st, v) = api.port(json!({"network_id": net, "fixed_ips": []})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["port"]["fixed_ips"], json!([]));
    // Bad MAC; unsupported extras.
    let (st, v) = api
        .port(json!({"network_id": net, "mac_address": "01:00:5e:00:00:01"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron_error(&v, "HTTPBadRequest");
    let (st, v) = api
        .port(json!({"network_id": net, "binding:vnic_type": "direct"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = api
        .port(
            json!({"network_id": net, "fixed_ips": [], "binding:vnic_type": "normal",
                     "port_security_enabled": true, "allowed_address_pairs": []}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // Port filter by fixed IP, as `openstack port list --fixed-ip` asks.
    let (_, v) = api
        .get(&format!(
            "/v2.0/ports?fixed_ips=ip_address%3D10.3.0.6&fixed_ips=subnet_id%3D{sid}"
        ))
        .await;
    assert_eq!(v["ports"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["ports"][0]["fixed_ips"][0]["ip_address"], "10.3.0.6");
}

#[tokio::test]
async fn listing_filters_fields_and_paging() {
    let api = api().await;
    let a = api.network("alpha").await;
    let b = api.network("beta").await;
    let c = api.network("gamma").await;
    let (st, v) = api.get("/v2.0/networks?name=beta").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&v, "networks"), [b.as_str()]);
    assert!(
        v.get("networks_links").is_none(),
        "no links without paging: {v}"
    );
    // Repeated keys are alternatives (Neutron), distinct keys combine.
    let (_, v) = api
        .get(&format!("/v2.0/networks?id={a}&id={c}&sort_key=name"))
        .await;
    assert_eq!(ids(&v, "networks"), [a.clone(), c.clone()]);
    let (_, v) = api
        .get(&format!("/v2.0/networks?id={a}&id={c}&name=gamma"))
        .await;
    assert_eq!(ids(&v, "networks"), [c.as_str()]);
    // Unknown filters are ignored; booleans and `router:external` filter.
    let (_, v) = api.get("/v2.0/networks?whatever=1").await;
    assert_eq!(ids(&v, "networks").len(), 3);
    let (_, v) = api.get("/v2.0/networks?router%3Aexternal=False").await;
    assert_eq!(ids(&v, "networks").len(), 3);
    let (_, v) = api.get("/v2.0/networks?shared=true").await;
    assert_eq!(ids(&v, "networks").len(), 0);
    // fields=.
    let (_, v) = api
        .get("/v2.0/networks?fields=id&fields=name&name=alpha")
        .await;
    let o = v["networks"][0].as_object().unwrap();
    assert_eq!(o.len(), 2, "{v}");
    assert_eq!(o["name"], "alpha");
    let (_, v) = api.get(&format!("/v2/networks/{a}?fields=mtu")).await;
    assert_eq!(v, json!({"network": {"mtu": 1500}}));
    // Sorting and paging with links.
    let (_, v) = api
        .get("/v2.0/networks?sort_key=name&sort_dir=desc&limit=2")
        .await;
    assert_eq!(ids(&v, "networks"), [c.clone(), b.clone()]);
    let links = v["networks_links"].as_array().unwrap();
    assert_eq!(links[0]["rel"], "next");
    let href = links[0]["href"].as_str().unwrap();
    assert!(
        href.starts_with("http://api.test/v2.0/networks?") && href.contains(&format!("marker={b}")),
        "{href}"
    );
    let (_, v) = api
        .get(&format!(
            "/v2.0/networks?sort_key=name&sort_dir=desc&limit=2&marker={b}"
        ))
        .await;
    assert_eq!(ids(&v, "networks"), [a.as_str()]);
    // Bad sort key: 400 in Neutron's shape.
    let (st, v) = api.get("/v2.0/networks?sort_key=bogus").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_neutron_error(&v, "HTTPBadRequest");
    // Subnets resolve by id or name, as the CLI does for --vip-subnet-id.
    let sub = api
        .subnet(&a, "10.5.0.0/24", json!({"name": "host-subnet"}))
        .await;
    let sid = sub["id"].as_str().unwrap();
    let (_, v) = api.get("/v2.0/subnets?id=host-subnet").await;
    assert_eq!(v["subnets"], json!([]));
    let (_, v) = api.get("/v2.0/subnets?name=host-subnet").await;
    assert_eq!(ids(&v, "subnets"), [sid.to_string()]);
    let (_, v) = api.get(&format!("/v2.0/subnets?id={sid}")).await;
    assert_eq!(ids(&v, "subnets"), [sid.to_string()]);
    let (_, v) = api
        .get(&format!("/v2.0/subnets?network_id={a}&ip_version=4"))
        .await;
    assert_eq!(ids(&v, "subnets"), [sid.to_string()]);
    let (_, v) = api.get(&format!("/v2.0/networks?subnets={sid}")).await;
    assert_eq!(ids(&v, "networks"), [a.as_str()]);
}

#[tokio::test]
async fn errors_are_neutron_shaped() {
    let api = api().await;
    for (path, kind) in [
        (
            "/v2.0/networks/8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01",
            "NetworkNotFound",
        ),
        ("/v2.0/networks/host-net", "NetworkNotFound"),
        ("/v2.0/subnets/host-subnet", "SubnetNotFound"),
        (
            "/v2/ports/8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01",
            "PortNotFound",
        ),
    ] {
        let (st, v) = api.get(path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert_neutron_error(&v, kind);
    }
    let (st, v) = api.get("/v2.0/networks/x/nothing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "HTTPNotFound");
    // Malformed JSON, missing envelope, wrong types.
    let (st, v) = api
        .call_as(Method::POST, "/v2.0/networks", Some("{not json"), None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_neutron_error(&v, "BadRequest");
    let (st, v) = api.post("/v2.0/networks", json!({"name": "x"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_neutron_error(&v, "HTTPBadRequest");
    let (st, v) = api
        .post("/v2.0/networks", json!({"network": {"mtu": "big"}}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_neutron_error(&v, "HTTPBadRequest");
    let (st, v) = api
        .post("/v2.0/networks", json!({"network": {"bogus": true}}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_neutron_error(&v, "HTTPBadRequest");
    let (st, v) = api
        .put(
            "/v2.0/ports/8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01",
            json!({"port": {"name": "x"}}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "PortNotFound");
    let st = api
        .delete("/v2.0/subnets/8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn load_balancer_vip_port_is_protected() {
    let api = api().await;
    let net = api.network("host-net").await;
    let sub = api
        .subnet(&net, "127.100.0.0/16", json!({"name": "host-subnet"}))
        .await;
    let (st, v) = api
        .post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"name": "lb1", "vip_subnet_id": sub["id"]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let port = v["loadbalancer"]["vip_port_id"]
        .as_str()
        .unwrap()
        .to_string();
    let vip = v["loadbalancer"]["vip_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(vip, "127.100.0.2");
    // The VIP port is a Neutron port like any other.
    let (st, v) = api.get(&format!("/v2.0/ports/{port}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["port"]["device_owner"], "Octavia");
    assert_eq!(v["port"]["status"], "ACTIVE");
    assert_eq!(v["port"]["fixed_ips"][0]["ip_address"], vip.as_str());
    // … but it cannot be deleted or re-addressed, only renamed.
    let (st, v) = api
        .call(Method::DELETE, &format!("/v2.0/ports/{port}"), None)
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_neutron_error(&v, "PortInUse");
    assert!(
        v["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .contains("load balancer"),
        "{v}"
    );
    let (st, v) = api
        .put(
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"fixed_ips": [{"ip_address": "127.100.0.9"}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "PortInUse");
    let (st, v) = api
        .put(
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"name": "vip"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Its address is taken for other ports; its network and subnet are in use.
    let (st, _) = api
        .port(json!({"network_id": net, "fixed_ips": [{"ip_address": vip}]}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        api.delete(&format!("/v2.0/subnets/{}", sub["id"].as_str().unwrap()))
            .await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.delete(&format!("/v2.0/networks/{net}")).await,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn project_scoping() {
    let api = api().await;
    let member = |p: &'static str| Some((p, "member,reader"));
    let post = |path: &'static str, body: Value, who: Option<(&'static str, &'static str)>| {
        let api = &api;
        async move {
            let body = body.to_string();
            api.call_as(Method::POST, path, Some(&body), who).await
        }
    };
    // Admin creates a shared network; project p2 makes its own.
    let (st, v) = post(
        "/v2.0/networks",
        json!({"network": {"name": "public", "shared": true}}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let shared = v["network"]["id"].as_str().unwrap().to_string();
    let (st, v) = post(
        "/v2.0/networks",
        json!({"network": {"name": "mine"}}),
        member("p2"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["network"]["project_id"], "p2");
    let mine = v["network"]["id"].as_str().unwrap().to_string();
    // Members may not share networks.
    let (st, v) = post(
        "/v2.0/networks",
        json!({"network": {"name": "x", "shared": true}}),
        member("p2"),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_neutron_error(&v, "PolicyNotAuthorized");
    // p3 sees the shared network only; p2's is 404 to it.
    let (_, v) = api
        .call_as(Method::GET, "/v2.0/networks", None, member("p3"))
        .await;
    assert_eq!(ids(&v, "networks"), [shared.as_str()]);
    let (st, v) = api
        .call_as(
            Method::GET,
            &format!("/v2.0/networks/{mine}"),
            None,
            member("p3"),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "NetworkNotFound");
    // Admin sees both.
    let (_, v) = api.get("/v2.0/networks").await;
    assert_eq!(ids(&v, "networks").len(), 2);
    // p3 may put a port on the shared network, not change the network.
    api.subnet(&shared, "10.8.0.0/24", json!({})).await;
    let (st, v) = post(
        "/v2.0/ports",
        json!({"port": {"network_id": shared}}),
        member("p3"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["port"]["project_id"], "p3");
    let body = json!({"network": {"name": "hijacked"}}).to_string();
    let (st, _) = api
        .call_as(
            Method::PUT,
            &format!("/v2.0/networks/{shared}"),
            Some(&body),
            member("p3"),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // p2 does not see p3's port.
    let (_, v) = api
        .call_as(Method::GET, "/v2.0/ports", None, member("p2"))
        .await;
    assert_eq!(v["ports"], json!([]));
    // Unsharing while p3 uses it: 409.
    let (st, v) = api
        .put(
            &format!("/v2.0/networks/{shared}"),
            json!({"network": {"shared": false}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "InvalidSharedSetting");
}

#[tokio::test]
async fn tag_subresource() {
    let api = api().await;
    let net = api.network("n").await;
    let base = format!("/v2.0/networks/{net}/tags");
    let (st, v) = api
        .put(&base, json!({"tags": ["red", "blue", "red"]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"tags": ["red", "blue"]}));
    let (st, _) = api.call(Method::PUT, &format!("{base}/green"), None).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = api.get(&format!("{base}/green")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = api.get(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(v["network"]["tags"], json!(["red", "blue", "green"]));
    let (_, v) = api.get("/v2.0/networks?tags=red,green").await;
    assert_eq!(ids(&v, "networks"), [net.as_str()]);
    let (_, v) = api.get("/v2.0/networks?not-tags-any=blue").await;
    assert_eq!(v["networks"], json!([]));
    assert_eq!(
        api.delete(&format!("{base}/red")).await,
        StatusCode::NO_CONTENT
    );
    let (st, v) = api.call(Method::DELETE, &format!("{base}/red"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "TagNotFound");
    assert_eq!(api.delete(&base).await, StatusCode::NO_CONTENT);
    let (_, v) = api.get(&base).await;
    assert_eq!(v, json!({"tags": []}));
    // Subnets and ports too; unknown objects are 404 in their own words.
    let sub = api.subnet(&net, "10.6.0.0/24", json!({})).await;
    let (st, _) = api
        .call(
            Method::PUT,
            &format!("/v2.0/subnets/{}/tags/x", sub["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = api.get("/v2.0/ports/nope/tags").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "PortNotFound");
}

#[tokio::test]
async fn extensions_and_stale_vip_ports() {
    let api = api().await;
    let (st, v) = api.get("/v2.0/extensions").await;
    assert_eq!(st, StatusCode::OK);
    let aliases: Vec<&str> = v["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    assert!(aliases.contains(&"standard-attr-tag"), "{v}");
    let (st, v) = api.get("/v2.0/extensions/external-net").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["extension"]["alias"], "external-net");
    let (st, v) = api.get("/v2.0/extensions/l3").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "HTTPNotFound");
    // An `Octavia` port whose load balancer does not exist can be deleted.
    let net = api.network("n").await;
    let (st, v) = api
        .port(json!({"network_id": net, "device_owner": "Octavia",
                     "device_id": "lb-8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let port = v["port"]["id"].as_str().unwrap();
    assert_eq!(
        api.delete(&format!("/v2.0/ports/{port}")).await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn member_subnets_are_in_use() {
    let api = api().await;
    let vip_net = api.network("vip").await;
    let vip_sub = api.subnet(&vip_net, "10.10.0.0/24", json!({})).await;
    let mem_net = api.network("members").await;
    let mem_sub = api.subnet(&mem_net, "10.11.0.0/24", json!({})).await;
    let (st, v) = api
        .post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": vip_sub["id"], "pools": [{
                "name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": "10.11.0.5", "protocol_port": 80,
                             "subnet_id": mem_sub["id"]}]}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = api
        .call(
            Method::DELETE,
            &format!("/v2.0/subnets/{}", mem_sub["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "SubnetInUse");
    assert!(
        v["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .contains("member"),
        "{v}"
    );
    let (st, v) = api
        .call(Method::DELETE, &format!("/v2.0/networks/{mem_net}"), None)
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron_error(&v, "NetworkInUse");
}

/// An update's checks come in Neutron's order: the object must be visible
/// (404, whatever else the body says), then restated immutable attributes
/// must keep their value (400 `Cannot update read-only attribute`), then
/// unknown attributes are refused (400). Subnets, routers and ports read
/// their bodies through the generic wire layer's update hooks.
#[tokio::test]
async fn updates_check_visibility_then_read_only_then_unknown_attributes() {
    let api = api().await;
    let other = Some(("p2", "member"));
    let net = api.network("order").await;
    let sub = api.subnet(&net, "10.9.0.0/24", json!({})).await;
    let sub_path = format!("/v2.0/subnets/{}", sub["id"].as_str().unwrap());
    let message = |v: &Value| {
        v["NeutronError"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // Restating an immutable attribute with its value (a string, or an
    // integer for ip_version) is accepted.
    let (st, v) = api
        .put(
            &sub_path,
            json!({"subnet": {"cidr": "10.9.0.0/24", "ip_version": 4, "name": "kept"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["subnet"]["name"], "kept");
    for (key, value) in [("cidr", json!("10.9.1.0/24")), ("ip_version", json!(6))] {
        let (st, v) = api
            .put(&sub_path, json!({"subnet": {key: value, "bogus": 1}}))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert_neutron_error(&v, "HTTPBadRequest");
        assert_eq!(
            message(&v),
            format!("Cannot update read-only attribute {key}")
        );
    }
    let (st, v) = api.put(&sub_path, json!({"subnet": {"bogus": 1}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron_error(&v, "HTTPBadRequest");
    assert!(message(&v).contains("bogus"), "{v}");
    // Another project's subnet is a 404 before anything in the body counts.
    let body = json!({"subnet": {"cidr": "10.9.1.0/24", "bogus": 1}}).to_string();
    let (st, v) = api
        .call_as(Method::PUT, &sub_path, Some(&body), other)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_neutron_error(&v, "SubnetNotFound");

    // Routers: the project is immutable.
    let (st, v) = api
        .post("/v2.0/routers", json!({"router": {"name": "r"}}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let router_path = format!("/v2.0/routers/{}", v["router"]["id"].as_str().unwrap());
    let (st, v) = api
        .put(
            &router_path,
            json!({"router": {"project_id": "p1", "name": "r2"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = api
        .put(
            &router_path,
            json!({"router": {"project_id": "p9", "bogus": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(message(&v), "Cannot update read-only attribute project_id");
    let body = json!({"router": {"project_id": "p9", "bogus": 1}}).to_string();
    let (st, v) = api
        .call_as(Method::PUT, &router_path, Some(&body), other)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_neutron_error(&v, "RouterNotFound");

    // Ports: the network is immutable.
    let (st, v) = api.port(json!({"network_id": net})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let port_path = format!("/v2.0/ports/{}", v["port"]["id"].as_str().unwrap());
    let (st, v) = api
        .put(
            &port_path,
            json!({"port": {"network_id": net, "name": "p"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let elsewhere = api.network("elsewhere").await;
    let (st, v) = api
        .put(
            &port_path,
            json!({"port": {"network_id": elsewhere, "bogus": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(message(&v), "Cannot update read-only attribute network_id");
    let body = json!({"port": {"network_id": elsewhere, "bogus": 1}}).to_string();
    let (st, v) = api
        .call_as(Method::PUT, &port_path, Some(&body), other)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_neutron_error(&v, "PortNotFound");
}
