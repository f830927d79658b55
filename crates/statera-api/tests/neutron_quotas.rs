//! Limits on what one project may take from Neutron: quotas per project,
//! `max_fixed_ips_per_port`, and (under the host driver) no tenant subnet
//! over the host's own interface addresses.

mod neutron_support;

use axum::http::{Method, StatusCode};
use neutron_support::{Api, api, api_with};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;

const B: (&str, &str) = ("project-b", "member");

impl Api {
    async fn as_b(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(method, path, Some(body.to_string()), Some(B))
            .await
    }

    /// B creates `allowed` objects with `body` at `path` (201), then one more
    /// is 409 `OverQuota` for `resource`; the first created object.
    async fn fill(&self, path: &str, body: Value, allowed: usize, resource: &str) -> Value {
        let mut first = Value::Null;
        for i in 0..allowed {
            let (st, v) = self.as_b(Method::POST, path, body.clone()).await;
            assert_eq!(st, StatusCode::CREATED, "{path} #{i}: {v}");
            if i == 0 {
                first = v;
            }
        }
        let (st, v) = self.as_b(Method::POST, path, body).await;
        assert_eq!(st, StatusCode::CONFLICT, "{path}: {v}");
        over(&v, resource);
        first
    }

    async fn b_network(&self) -> String {
        let (st, v) = self
            .as_b(
                Method::POST,
                "/v2.0/networks",
                json!({"network": {"name": "b"}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["network"]["id"].as_str().unwrap().to_string()
    }

    /// An admin's network (with `attrs`) and an IPv4 subnet `cidr` on it.
    async fn admin_subnet(&self, attrs: Value, cidr: &str) -> (String, String) {
        let (st, v) = self.post("/v2.0/networks", json!({"network": attrs})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        let net = v["network"]["id"].as_str().unwrap().to_string();
        let (st, v) = self
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        (net, v["subnet"]["id"].as_str().unwrap().to_string())
    }

    async fn b_subnet(&self, network: &str, cidr: &str) -> (StatusCode, Value) {
        let version = if cidr.contains(':') { 6 } else { 4 };
        self.as_b(
            Method::POST,
            "/v2.0/subnets",
            json!({"subnet": {"network_id": network, "cidr": cidr, "ip_version": version}}),
        )
        .await
    }
}

/// `v` is Neutron's `OverQuota` for resource `r`.
fn over(v: &Value, r: &str) {
    assert_neutron(
        v,
        "OverQuota",
        &format!("Quota exceeded for resources: ['{r}']."),
    )
}

fn assert_neutron(v: &Value, kind: &str, message: &str) {
    assert_eq!(v["NeutronError"]["type"], kind, "{v}");
    assert_eq!(v["NeutronError"]["message"], message, "{v}");
}

/// The host's interfaces as the harness fakes them: an IPv4 and an IPv6
/// address outside every host-reserved range.
fn fake_host() -> Arc<dyn Fn() -> std::io::Result<Vec<IpAddr>> + Send + Sync> {
    Arc::new(|| {
        Ok(vec![
            "192.0.2.2".parse().unwrap(),
            "fd00::2".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ])
    })
}

#[tokio::test]
async fn tenant_subnets_over_host_interface_addresses_are_refused() {
    let api = api_with(|s| s.neutron.host_interface_addresses = fake_host()).await;
    let net = api.b_network().await;
    for cidr in ["192.0.2.0/24", "192.0.0.0/16", "192.0.2.2/32", "fd00::/64"] {
        let (st, v) = api.b_subnet(&net, cidr).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{cidr}: {v}");
        assert_eq!(v["NeutronError"]["type"], "InvalidInput", "{v}");
        let m = v["NeutronError"]["message"].as_str().unwrap();
        assert!(m.contains("host's own interfaces"), "{m}");
        assert!(
            !m.contains("192.0.2.2") || cidr == "192.0.2.2/32",
            "names the address: {m}"
        );
    }
    // Elsewhere is fine.
    let (st, v) = api.b_subnet(&net, "198.51.100.0/24").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // The admin may (the operator knows what the host serves).
    let (st, v) = api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "192.0.2.0/24", "ip_version": 4}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn host_interface_rule_is_the_host_drivers_only() {
    let api = api_with(|s| {
        s.neutron.host_interface_addresses = fake_host();
        s.host_address_space = statera_model::addressing::HostAddressSpace::LoopbackSubnets;
    })
    .await;
    let net = api.b_network().await;
    let (st, v) = api.b_subnet(&net, "192.0.2.0/24").await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "netns: tenant subnets are not the host's: {v}"
    );
}

#[tokio::test]
async fn unreadable_host_addresses_refuse_rather_than_allow() {
    let api = api_with(|s| {
        s.neutron.host_interface_addresses =
            Arc::new(|| Err(std::io::Error::other("no getifaddrs")));
    })
    .await;
    let net = api.b_network().await;
    let (st, v) = api.b_subnet(&net, "198.51.100.0/24").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["NeutronError"]["type"], "HTTPServiceUnavailable", "{v}");
}

#[tokio::test]
async fn more_than_max_fixed_ips_per_port_is_refused() {
    let api = api().await;
    let net = api.b_network().await;
    let (st, v) = api.b_subnet(&net, "10.9.0.0/24").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let subnet = v["subnet"]["id"].as_str().unwrap().to_string();
    let ips = |n: usize| -> Vec<Value> { (0..n).map(|_| json!({"subnet_id": subnet})).collect() };
    let (st, v) = api
        .as_b(
            Method::POST,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": ips(6)}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron(
        &v,
        "InvalidInput",
        "Invalid input for operation: Exceeded maximum amount of fixed ips per port.",
    );
    let (st, v) = api
        .as_b(
            Method::POST,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": ips(5)}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["port"]["fixed_ips"].as_array().unwrap().len(), 5);
    let port = v["port"]["id"].as_str().unwrap().to_string();
    // Update too: six are refused and the port keeps its five.
    let (st, v) = api
        .as_b(
            Method::PUT,
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"fixed_ips": ips(6)}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_neutron(
        &v,
        "InvalidInput",
        "Invalid input for operation: Exceeded maximum amount of fixed ips per port.",
    );
    let (_, v) = api
        .send(Method::GET, &format!("/v2.0/ports/{port}"), None, Some(B))
        .await;
    assert_eq!(v["port"]["fixed_ips"].as_array().unwrap().len(), 5, "{v}");
}

#[tokio::test]
async fn neutron_quotas_refuse_the_object_past_the_limit() {
    let api = api_with(|s| {
        let q = &mut s.neutron.quotas;
        q.network = 2;
        q.subnet = 1;
        q.port = 2;
        q.router = 1;
        q.security_group = 1;
        q.security_group_rule = 3;
    })
    .await;
    // networks (another project is not affected by B's usage)
    let net = api
        .fill("/v2.0/networks", json!({"network": {}}), 2, "network")
        .await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let (st, v) = api
        .send(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {}}).to_string()),
            Some(("project-a", "member")),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // subnets
    let (st, v) = api.b_subnet(&net, "10.8.0.0/24").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = api.b_subnet(&net, "10.8.1.0/24").await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    over(&v, "subnet");
    // ports
    api.fill(
        "/v2.0/ports",
        json!({"port": {"network_id": net}}),
        2,
        "port",
    )
    .await;
    let (_, v) = api.send(Method::GET, "/v2.0/ports", None, Some(B)).await;
    assert_eq!(
        v["ports"].as_array().unwrap().len(),
        2,
        "nothing half-written: {v}"
    );
    // routers
    api.fill("/v2.0/routers", json!({"router": {}}), 1, "router")
        .await;
    // security groups and their rules (a group comes with its default rules)
    let group = api
        .fill(
            "/v2.0/security-groups",
            json!({"security_group": {"name": "g"}}),
            1,
            "security_group",
        )
        .await;
    let group = group["security_group"]["id"].as_str().unwrap().to_string();
    let (_, v) = api
        .send(Method::GET, "/v2.0/security-group-rules", None, Some(B))
        .await;
    let have = v["security_group_rules"].as_array().unwrap().len();
    let mut last = (StatusCode::CREATED, Value::Null);
    for port in 1000..1000 + (4 - have.min(4)) as u16 {
        last = api
            .as_b(
                Method::POST,
                "/v2.0/security-group-rules",
                json!({"security_group_rule": {
                    "security_group_id": group, "direction": "ingress", "protocol": "tcp",
                    "port_range_min": port, "port_range_max": port}}),
            )
            .await;
    }
    assert_eq!(last.0, StatusCode::CONFLICT, "{}", last.1);
    over(&last.1, "security_group_rule");
}

#[tokio::test]
async fn a_load_balancers_vip_port_counts_against_the_port_quota() {
    let api = api_with(|s| s.neutron.quotas.port = 1).await;
    let net = api.b_network().await;
    let (st, v) = api.b_subnet(&net, "10.7.0.0/24").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let subnet = v["subnet"]["id"].as_str().unwrap().to_string();
    let lb = || json!({"loadbalancer": {"vip_subnet_id": subnet}});
    let (st, v) = api
        .as_b(Method::POST, "/v2/lbaas/loadbalancers", lb())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = api
        .as_b(Method::POST, "/v2/lbaas/loadbalancers", lb())
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["faultstring"], "Quota exceeded for resources: ['port'].",
        "{v}"
    );
    let (st, v) = api
        .as_b(
            Method::POST,
            "/v2.0/ports",
            json!({"port": {"network_id": net}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["NeutronError"]["type"], "OverQuota", "{v}");
}

#[tokio::test]
async fn tenants_cannot_ask_for_a_host_address_on_a_shared_subnet() {
    let api = api_with(|s| s.neutron.host_interface_addresses = fake_host()).await;
    let (net, subnet) = api
        .admin_subnet(json!({"name": "shared", "shared": true}), "192.0.2.0/24")
        .await;
    let port = |ip: &str| json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}]}});
    let (st, v) = api
        .as_b(Method::POST, "/v2.0/ports", port("192.0.2.2"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["NeutronError"]["type"], "InvalidInput", "{v}");
    // An address of the caller's choosing on a network it does not own is
    // Neutron's policy's to refuse as well (403, whichever check comes
    // first): the host's address is never handed out that way.
    let (st, v) = api
        .as_b(
            Method::POST,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": subnet}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // Allocation never hands out the host's own address (the first free one
    // here): a tenant's port or VIP given it would bind the host's address.
    assert_eq!(v["port"]["fixed_ips"][0]["ip_address"], "192.0.2.3", "{v}");
    let mine = v["port"]["id"].as_str().unwrap().to_string();
    let (st, v) = api
        .as_b(
            Method::PUT,
            &format!("/v2.0/ports/{mine}"),
            json!({"port": {"fixed_ips": [{"subnet_id": subnet, "ip_address": "192.0.2.2"}]}}),
        )
        .await;
    assert!(
        st == StatusCode::BAD_REQUEST || st == StatusCode::FORBIDDEN,
        "{st} {v}"
    );
    let (st, v) = api
        .as_b(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": subnet, "vip_address": "192.0.2.2"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["faultstring"]
            .as_str()
            .unwrap()
            .contains("address of this host"),
        "{v}"
    );
    // The admin may.
    let (st, v) = api.post("/v2.0/ports", port("192.0.2.2")).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn floating_ip_quota() {
    let api = api_with(|s| s.neutron.quotas.floatingip = 1).await;
    let (ext, _) = api
        .admin_subnet(
            json!({"name": "ext", "router:external": true}),
            "203.0.113.0/24",
        )
        .await;
    let fip = || json!({"floatingip": {"floating_network_id": ext}});
    let (st, v) = api.as_b(Method::POST, "/v2.0/floatingips", fip()).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = api.as_b(Method::POST, "/v2.0/floatingips", fip()).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_neutron(
        &v,
        "OverQuota",
        "Quota exceeded for resources: ['floatingip'].",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_cannot_overshoot_the_quota() {
    let api = Arc::new(api_with(|s| s.neutron.quotas.port = 3).await);
    let net = api.b_network().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let api = api.clone();
        let net = net.clone();
        tasks.spawn(async move {
            api.as_b(
                Method::POST,
                "/v2.0/ports",
                json!({"port": {"network_id": net}}),
            )
            .await
        });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        let (st, v) = r.unwrap();
        match st {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => over(&v, "port"),
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(created, 3);
    let (_, v) = api.send(Method::GET, "/v2.0/ports", None, Some(B)).await;
    assert_eq!(v["ports"].as_array().unwrap().len(), 3, "{v}");
}
