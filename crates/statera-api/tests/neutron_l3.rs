//! The Neutron subset around a load balancer, over the whole router:
//! routers (gateway, interfaces, extra routes), floating IPs, security
//! groups and rules, port security. Every refusal is checked for its status,
//! its Neutron exception name, and for leaving the store as it was.

mod neutron_support;

use axum::http::{Method, StatusCode};
use neutron_support::{Api, api};
use serde_json::{Value, json};

type Who = Option<(&'static str, &'static str)>;

fn member(project: &'static str) -> Who {
    Some((project, "member,reader"))
}

/// The helpers only these tests use.
impl Api {
    /// A request as `auth` = (project, roles) (None: the noauth admin default).
    async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: Who,
    ) -> (StatusCode, Value) {
        self.send(method, path, body.map(|b| b.to_string()), auth)
            .await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call_as(Method::DELETE, path, None, None).await
    }

    async fn created(&self, path: &str, envelope: &str, body: Value) -> Value {
        let (st, v) = self.post(path, json!({ envelope: body })).await;
        assert_eq!(st, StatusCode::CREATED, "POST {path}: {v}");
        v[envelope].clone()
    }

    async fn network(&self, name: &str, external: bool) -> String {
        let n = self
            .created(
                "/v2.0/networks",
                "network",
                json!({"name": name, "router:external": external}),
            )
            .await;
        n["id"].as_str().unwrap().to_string()
    }

    async fn subnet(&self, network_id: &str, cidr: &str, extra: Value) -> String {
        let mut body = json!({"network_id": network_id, "cidr": cidr, "ip_version": 4});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let s = self.created("/v2.0/subnets", "subnet", body).await;
        s["id"].as_str().unwrap().to_string()
    }

    async fn port(&self, body: Value) -> Value {
        self.created("/v2.0/ports", "port", body).await
    }

    async fn router(&self, name: &str) -> String {
        let r = self
            .created("/v2.0/routers", "router", json!({"name": name}))
            .await;
        r["id"].as_str().unwrap().to_string()
    }

    async fn set_gateway(&self, router: &str, info: Value) -> (StatusCode, Value) {
        self.put(
            &format!("/v2.0/routers/{router}"),
            json!({"router": {"external_gateway_info": info}}),
        )
        .await
    }

    async fn add_interface(&self, router: &str, body: Value) -> (StatusCode, Value) {
        self.put(
            &format!("/v2.0/routers/{router}/add_router_interface"),
            body,
        )
        .await
    }

    async fn remove_interface(&self, router: &str, body: Value) -> (StatusCode, Value) {
        self.put(
            &format!("/v2.0/routers/{router}/remove_router_interface"),
            body,
        )
        .await
    }

    /// Everything the Neutron side holds, to show a refused request changed nothing.
    async fn everything(&self) -> Value {
        let mut all = json!({});
        for c in [
            "networks",
            "subnets",
            "ports",
            "routers",
            "floatingips",
            "security-groups",
            "security-group-rules",
        ] {
            let (st, v) = self.get(&format!("/v2.0/{c}")).await;
            assert_eq!(st, StatusCode::OK, "{c}: {v}");
            all[c] = v;
        }
        all
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

/// `(status, body)` is the refusal `status` with exception `kind`.
fn refused(r: (StatusCode, Value), status: StatusCode, kind: &str) -> Value {
    assert_eq!(r.0, status, "{}", r.1);
    assert_neutron_error(&r.1, kind);
    r.1
}

fn message(v: &Value) -> &str {
    v["NeutronError"]["message"].as_str().unwrap()
}

fn ids(v: &Value, plural: &str) -> Vec<String> {
    v[plural]
        .as_array()
        .unwrap_or_else(|| panic!("no {plural}: {v}"))
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

/// An external network 172.24.4.0/24, a tenant network 10.0.0.0/24, their ids.
struct Topology {
    ext: String,
    ext_sub: String,
    net: String,
    sub: String,
}

async fn topology(api: &Api) -> Topology {
    let ext = api.network("ext", true).await;
    let ext_sub = api.subnet(&ext, "172.24.4.0/24", json!({})).await;
    let net = api.network("tenant", false).await;
    let sub = api.subnet(&net, "10.0.0.0/24", json!({})).await;
    Topology {
        ext,
        ext_sub,
        net,
        sub,
    }
}

// ---- routers --------------------------------------------------------------------------------

#[tokio::test]
async fn router_gateway_interfaces_and_routes() {
    let api = api().await;
    let t = topology(&api).await;
    let (st, v) = api
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "r1", "description": "d", "tags": ["x"]}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let r = &v["router"];
    let rid = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["name"], "r1");
    assert_eq!(r["status"], "ACTIVE");
    assert_eq!(r["admin_state_up"], true);
    assert_eq!(r["external_gateway_info"], Value::Null);
    assert_eq!(r["routes"], json!([]));
    assert_eq!(r["project_id"], "p1");
    assert_eq!(r["tenant_id"], "p1");
    assert_eq!(r["tags"], json!(["x"]));
    assert_eq!(r["availability_zone_hints"], json!([]));

    // The gateway: a port on the external network holds its address.
    let (st, v) = api.set_gateway(&rid, json!({"network_id": t.ext})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["router"]["external_gateway_info"],
        json!({"network_id": t.ext, "enable_snat": true,
               "external_fixed_ips": [{"subnet_id": t.ext_sub, "ip_address": "172.24.4.2"}]})
    );
    let (_, v) = api.get(&format!("/v2.0/ports?device_id={rid}")).await;
    let ports = v["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{v}");
    assert_eq!(ports[0]["device_owner"], "network:router_gateway");
    assert_eq!(ports[0]["network_id"], t.ext.as_str());
    assert_eq!(ports[0]["project_id"], "");
    let gw_port = ports[0]["id"].as_str().unwrap().to_string();

    // Restating the network with other addresses moves the same port.
    let (st, v) = api
        .set_gateway(
            &rid,
            json!({"network_id": t.ext, "enable_snat": false,
                   "external_fixed_ips": [{"subnet_id": t.ext_sub, "ip_address": "172.24.4.100"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let g = &v["router"]["external_gateway_info"];
    assert_eq!(g["enable_snat"], false);
    assert_eq!(g["external_fixed_ips"][0]["ip_address"], "172.24.4.100");
    let (st, _) = api.get(&format!("/v2.0/ports/{gw_port}")).await;
    assert_eq!(st, StatusCode::OK);

    // An interface by subnet: a port holding the subnet's gateway address.
    let (st, v) = api.add_interface(&rid, json!({"subnet_id": t.sub})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let if_port = v["port_id"].as_str().unwrap().to_string();
    assert_eq!(
        v,
        json!({"id": rid, "tenant_id": "p1", "project_id": "p1", "port_id": if_port,
               "subnet_id": t.sub, "subnet_ids": [t.sub], "network_id": t.net})
    );
    let (_, v) = api.get(&format!("/v2.0/ports/{if_port}")).await;
    assert_eq!(v["port"]["device_owner"], "network:router_interface");
    assert_eq!(v["port"]["device_id"], rid.as_str());
    assert_eq!(v["port"]["fixed_ips"][0]["ip_address"], "10.0.0.1");
    assert_eq!(v["port"]["status"], "ACTIVE");

    // Extra routes through a next hop on that subnet.
    let (st, v) = api
        .put(
            &format!("/v2.0/routers/{rid}"),
            json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.50"}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["router"]["routes"],
        json!([{"destination": "192.168.0.0/16", "nexthop": "10.0.0.50"}])
    );
    // … which keep the interface in place.
    let v = refused(
        api.remove_interface(&rid, json!({"subnet_id": t.sub}))
            .await,
        StatusCode::CONFLICT,
        "RouterInterfaceInUseByRoute",
    );
    assert!(message(&v).contains(&t.sub), "{v}");
    let (st, _) = api
        .put(
            &format!("/v2.0/routers/{rid}"),
            json!({"router": {"routes": []}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    // Removing by subnet deletes the interface port.
    let (st, v) = api
        .remove_interface(&rid, json!({"subnet_id": t.sub}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["port_id"], if_port.as_str());
    assert_eq!(v["subnet_ids"], json!([t.sub]));
    let (st, _) = api.get(&format!("/v2.0/ports/{if_port}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // An interface by port: the user's port becomes the leg, with its address.
    let p = api
        .port(json!({"network_id": t.net, "name": "leg",
                     "fixed_ips": [{"ip_address": "10.0.0.254"}]}))
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let (st, v) = api.add_interface(&rid, json!({"port_id": pid})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["port_id"], pid.as_str());
    assert_eq!(v["subnet_id"], t.sub.as_str());
    let (_, v) = api.get(&format!("/v2.0/ports/{pid}")).await;
    assert_eq!(v["port"]["device_owner"], "network:router_interface");
    assert_eq!(v["port"]["device_id"], rid.as_str());
    let (st, v) = api.remove_interface(&rid, json!({"port_id": pid})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = api.get(&format!("/v2.0/ports/{pid}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "Neutron deletes the port");

    // Clearing the gateway (`{}` as the CLI sends, or null) deletes its port.
    let (st, v) = api.set_gateway(&rid, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["router"]["external_gateway_info"], Value::Null);
    let (st, _) = api.get(&format!("/v2.0/ports/{gw_port}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = api.set_gateway(&rid, Value::Null).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // A gateway at creation; deleting the router deletes its gateway port.
    let (st, v) = api
        .post(
            "/v2.0/routers",
            json!({"router": {"name": "r2", "external_gateway_info": {"network_id": t.ext}}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let r2 = v["router"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        v["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"],
        "172.24.4.2"
    );
    let (_, v) = api.get("/v2.0/routers?name=r2").await;
    assert_eq!(ids(&v, "routers"), [r2.as_str()]);
    let (_, v) = api.get("/v2.0/routers?fields=id&fields=name").await;
    assert_eq!(v["routers"][0].as_object().unwrap().len(), 2, "{v}");
    assert_eq!(
        api.delete(&format!("/v2.0/routers/{r2}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = api.get(&format!("/v2.0/ports?device_id={r2}")).await;
    assert_eq!(v["ports"], json!([]));
    assert_eq!(
        api.delete(&format!("/v2.0/routers/{rid}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = api.get("/v2.0/ports").await;
    assert_eq!(v["ports"], json!([]), "no port left behind");
}

#[tokio::test]
async fn router_refusals_change_nothing() {
    let api = api().await;
    let t = topology(&api).await;
    let rid = api.router("r").await;
    let before = api.everything().await;

    // Gateways: only on external networks that exist.
    let v = refused(
        api.set_gateway(&rid, json!({"network_id": t.net})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert_eq!(
        message(&v),
        format!(
            "Bad router request: Network {} is not an external network.",
            t.net
        )
    );
    refused(
        api.set_gateway(
            &rid,
            json!({"network_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "NetworkNotFound",
    );
    refused(
        api.set_gateway(&rid, json!({"enable_snat": true})).await,
        StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
    );
    refused(
        api.set_gateway(&rid, json!({"network_id": t.ext, "bogus": 1}))
            .await,
        StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
    );
    // The gateway address must be free and on the external network.
    let taken = api
        .port(json!({"network_id": t.ext, "fixed_ips": [{"ip_address": "172.24.4.9"}]}))
        .await;
    let mid = api.everything().await;
    refused(
        api.set_gateway(
            &rid,
            json!({"network_id": t.ext, "external_fixed_ips": [{"ip_address": "172.24.4.9"}]}),
        )
        .await,
        StatusCode::CONFLICT,
        "IpAddressAlreadyAllocated",
    );
    refused(
        api.set_gateway(
            &rid,
            json!({"network_id": t.ext, "external_fixed_ips": [{"subnet_id": t.sub}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    );
    assert_eq!(api.everything().await, mid);
    api.delete(&format!("/v2.0/ports/{}", taken["id"].as_str().unwrap()))
        .await;
    assert_eq!(api.everything().await, before);

    // Routes need an interface on the next hop's subnet; POST takes none.
    refused(
        api.put(
            &format!("/v2.0/routers/{rid}"),
            json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.50"}]}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "InvalidRoutes",
    );
    refused(
        api.post(
            "/v2.0/routers",
            json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.50"}]}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
    );

    // Interfaces.
    for (body, kind) in [
        (json!({}), "BadRequest"),
        (json!({"subnet_id": t.sub, "port_id": t.sub}), "BadRequest"),
        (
            json!({"subnet_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"}),
            "SubnetNotFound",
        ),
        (
            json!({"port_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"}),
            "PortNotFound",
        ),
    ] {
        let (st, v) = api.add_interface(&rid, body.clone()).await;
        assert!(st.is_client_error(), "{body}: {st} {v}");
        assert_neutron_error(&v, kind);
    }
    refused(
        api.add_interface(
            "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01",
            json!({"subnet_id": t.sub}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "RouterNotFound",
    );
    refused(
        api.add_interface("nope", json!({"subnet_id": t.sub})).await,
        StatusCode::NOT_FOUND,
        "RouterNotFound",
    );
    let nogw_net = api.network("nogw", false).await;
    let nogw = api
        .subnet(&nogw_net, "10.9.0.0/24", json!({"gateway_ip": null}))
        .await;
    let before = api.everything().await;
    let v = refused(
        api.add_interface(&rid, json!({"subnet_id": nogw})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert!(message(&v).contains("must have a gateway IP"), "{v}");
    assert_eq!(api.everything().await, before);
    // Once attached, the same subnet again and an overlapping one are refused.
    let (st, v) = api.add_interface(&rid, json!({"subnet_id": t.sub})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let leg = v["port_id"].as_str().unwrap().to_string();
    let attached = api.everything().await;
    let v = refused(
        api.add_interface(&rid, json!({"subnet_id": t.sub})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert!(message(&v).contains("already has a port on subnet"), "{v}");
    assert_eq!(api.everything().await, attached);
    let other = api.network("overlapping", false).await;
    let overlapping = api.subnet(&other, "10.0.0.0/25", json!({})).await;
    let attached2 = api.everything().await;
    let v = refused(
        api.add_interface(&rid, json!({"subnet_id": overlapping}))
            .await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert!(message(&v).contains("overlaps with cidr"), "{v}");
    // The subnet's gateway address held by another router's interface: 409.
    let r2 = api.router("r2").await;
    refused(
        api.add_interface(&r2, json!({"subnet_id": t.sub})).await,
        StatusCode::CONFLICT,
        "IpAddressAlreadyAllocated",
    );
    // A port that already has a device.
    let used = api
        .port(json!({"network_id": other, "device_id": "vm-1"}))
        .await;
    let with_used = api.everything().await;
    refused(
        api.add_interface(&r2, json!({"port_id": used["id"]})).await,
        StatusCode::CONFLICT,
        "PortInUse",
    );
    // A port without addresses.
    let bare = api
        .port(json!({"network_id": other, "fixed_ips": []}))
        .await;
    let with_bare = api.everything().await;
    let v = refused(
        api.add_interface(&r2, json!({"port_id": bare["id"]})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert!(message(&v).contains("at least one fixed IP"), "{v}");
    assert_eq!(api.everything().await, with_bare);
    api.delete(&format!("/v2.0/ports/{}", bare["id"].as_str().unwrap()))
        .await;
    assert_eq!(api.everything().await, with_used);
    api.delete(&format!("/v2.0/ports/{}", used["id"].as_str().unwrap()))
        .await;
    api.delete(&format!("/v2.0/routers/{r2}")).await;
    assert_eq!(api.everything().await, attached2);

    // Removing what is not there.
    refused(
        api.remove_interface(&rid, json!({"subnet_id": overlapping}))
            .await,
        StatusCode::NOT_FOUND,
        "RouterInterfaceNotFoundForSubnet",
    );
    refused(
        api.remove_interface(&rid, json!({"port_id": used["id"]}))
            .await,
        StatusCode::NOT_FOUND,
        "RouterInterfaceNotFound",
    );
    refused(
        api.remove_interface(&rid, json!({})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    // The legs are not the port API's to delete or move; the router is in use.
    refused(
        api.delete(&format!("/v2.0/ports/{leg}")).await,
        StatusCode::CONFLICT,
        "L3PortInUse",
    );
    refused(
        api.put(
            &format!("/v2.0/ports/{leg}"),
            json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.7"}]}}),
        )
        .await,
        StatusCode::CONFLICT,
        "PortInUse",
    );
    let v = refused(
        api.delete(&format!("/v2.0/routers/{rid}")).await,
        StatusCode::CONFLICT,
        "RouterInUse",
    );
    assert_eq!(message(&v), format!("Router {rid} still has ports"));
    // Nor may the port API make a port a leg of an existing router.
    refused(
        api.post(
            "/v2.0/ports",
            json!({"port": {"network_id": other, "device_owner": "network:router_interface",
                            "device_id": rid}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    // The interface's subnet and network are in use.
    refused(
        api.delete(&format!("/v2.0/subnets/{}", t.sub)).await,
        StatusCode::CONFLICT,
        "SubnetInUse",
    );
    refused(
        api.delete(&format!("/v2.0/networks/{}", t.net)).await,
        StatusCode::CONFLICT,
        "NetworkInUse",
    );
    assert_eq!(api.everything().await, attached2);

    // With a gateway, the external network cannot go or stop being external.
    let (st, _) = api.set_gateway(&rid, json!({"network_id": t.ext})).await;
    assert_eq!(st, StatusCode::OK);
    let gw = api.everything().await;
    refused(
        api.delete(&format!("/v2.0/networks/{}", t.ext)).await,
        StatusCode::CONFLICT,
        "NetworkInUse",
    );
    refused(
        api.put(
            &format!("/v2.0/networks/{}", t.ext),
            json!({"network": {"router:external": false}}),
        )
        .await,
        StatusCode::CONFLICT,
        "ExternalNetworkInUse",
    );
    assert!(gw["routers"]["routers"][0]["external_gateway_info"].is_object());
    let (_, v) = api
        .get("/v2.0/ports?device_owner=network:router_gateway")
        .await;
    let gp = v["ports"][0]["id"].as_str().unwrap().to_string();
    refused(
        api.delete(&format!("/v2.0/ports/{gp}")).await,
        StatusCode::CONFLICT,
        "L3PortInUse",
    );
    assert_eq!(api.everything().await, gw);
}

// ---- floating IPs ---------------------------------------------------------------------------

/// The topology with router `r1` joining the tenant subnet to `ext`.
async fn routed(api: &Api) -> (Topology, String) {
    let t = topology(api).await;
    let rid = api.router("r1").await;
    let (st, v) = api.set_gateway(&rid, json!({"network_id": t.ext})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = api.add_interface(&rid, json!({"subnet_id": t.sub})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    (t, rid)
}

#[tokio::test]
async fn floating_ip_lifecycle() {
    let api = api().await;
    let (t, rid) = routed(&api).await;
    let p1 = api
        .port(
            json!({"network_id": t.net, "name": "p1", "device_id": "vm-1",
                     "device_owner": "compute:nova"}),
        )
        .await;
    let p1_id = p1["id"].as_str().unwrap().to_string();
    let p1_ip = p1["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();

    // Created associated: the router that reaches the external network carries it.
    let (st, v) = api
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": t.ext, "port_id": p1_id,
                                  "description": "web"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let f = &v["floatingip"];
    let fid = f["id"].as_str().unwrap().to_string();
    let address = f["floating_ip_address"].as_str().unwrap().to_string();
    assert_eq!(address, "172.24.4.3", "the gateway holds .2");
    assert_eq!(f["floating_network_id"], t.ext.as_str());
    assert_eq!(f["router_id"], rid.as_str());
    assert_eq!(f["port_id"], p1_id.as_str());
    assert_eq!(f["fixed_ip_address"], p1_ip.as_str());
    assert_eq!(f["status"], "ACTIVE");
    assert_eq!(f["description"], "web");
    assert_eq!(f["project_id"], "p1");
    assert_eq!(f["tenant_id"], "p1");
    assert_eq!(f["tags"], json!([]));
    assert_eq!(f["revision_number"], 0);
    assert_eq!(f["qos_policy_id"], Value::Null);
    assert_eq!(f["dns_domain"], "");
    assert_eq!(f["dns_name"], "");
    assert_eq!(f["port_forwardings"], json!([]));
    assert_eq!(
        f["port_details"],
        json!({"name": "p1", "network_id": t.net, "mac_address": p1["mac_address"],
               "admin_state_up": true, "status": "ACTIVE", "device_id": "vm-1",
               "device_owner": "compute:nova"})
    );
    assert!(f["created_at"].as_str().unwrap().ends_with('Z'));
    // Its address is held by a network:floatingip port of no project.
    let (_, v) = api.get(&format!("/v2.0/ports?device_id={fid}")).await;
    let holder = &v["ports"][0];
    assert_eq!(holder["device_owner"], "network:floatingip");
    assert_eq!(holder["fixed_ips"][0]["ip_address"], address.as_str());
    assert_eq!(holder["fixed_ips"][0]["subnet_id"], t.ext_sub.as_str());
    assert_eq!(holder["project_id"], "");
    let holder_id = holder["id"].as_str().unwrap().to_string();

    // A second one at a chosen address, unassociated.
    let (st, v) = api
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": t.ext,
                                  "floating_ip_address": "172.24.4.50"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let f2 = v["floatingip"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["floatingip"]["status"], "DOWN");
    assert_eq!(v["floatingip"]["port_details"], Value::Null);
    assert_eq!(v["floatingip"]["router_id"], Value::Null);
    assert_eq!(v["floatingip"]["fixed_ip_address"], Value::Null);

    // One floating IP per fixed IP.
    let before = api.everything().await;
    let v = refused(
        api.put(
            &format!("/v2.0/floatingips/{f2}"),
            json!({"floatingip": {"port_id": p1_id}}),
        )
        .await,
        StatusCode::CONFLICT,
        "FloatingIPPortAlreadyAssociated",
    );
    assert!(message(&v).contains(&p1_ip), "{v}");
    assert_eq!(api.everything().await, before);

    // Listing and filters (what `openstack floating ip list/show` use).
    let (_, v) = api.get(&format!("/v2.0/floatingips?port_id={p1_id}")).await;
    assert_eq!(ids(&v, "floatingips"), [fid.as_str()]);
    let (_, v) = api
        .get("/v2.0/floatingips?floating_ip_address=172.24.4.50")
        .await;
    assert_eq!(ids(&v, "floatingips"), [f2.as_str()]);
    let (_, v) = api
        .get(&format!("/v2.0/floatingips?router_id={rid}&status=ACTIVE"))
        .await;
    assert_eq!(ids(&v, "floatingips"), [fid.as_str()]);
    let (_, v) = api
        .get("/v2.0/floatingips?sort_key=floating_ip_address&sort_dir=desc")
        .await;
    assert_eq!(ids(&v, "floatingips"), [f2.as_str(), fid.as_str()]);
    let (st, v) = api
        .get(&format!("/v2.0/floatingips/{fid}?fields=id&fields=status"))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v, json!({"floatingip": {"id": fid, "status": "ACTIVE"}}));

    // While associated, the router's interface and gateway stay.
    refused(
        api.remove_interface(&rid, json!({"subnet_id": t.sub}))
            .await,
        StatusCode::CONFLICT,
        "RouterInterfaceInUseByFloatingIP",
    );
    refused(
        api.set_gateway(&rid, json!({})).await,
        StatusCode::CONFLICT,
        "RouterExternalGatewayInUseByFloatingIp",
    );
    // The holder port is the floating IP's, and the fixed IP cannot go.
    refused(
        api.delete(&format!("/v2.0/ports/{holder_id}")).await,
        StatusCode::CONFLICT,
        "L3PortInUse",
    );
    refused(
        api.put(
            &format!("/v2.0/ports/{p1_id}"),
            json!({"port": {"fixed_ips": [{"subnet_id": t.sub, "ip_address": "10.0.0.77"}]}}),
        )
        .await,
        StatusCode::CONFLICT,
        "PortInUse",
    );
    // Immutable attributes.
    refused(
        api.put(
            &format!("/v2.0/floatingips/{fid}"),
            json!({"floatingip": {"floating_ip_address": "172.24.4.99"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
    );
    assert_eq!(api.everything().await, before);

    // Disassociate (`floating ip unset --port`), move it to the other one.
    let (st, v) = api
        .put(
            &format!("/v2.0/floatingips/{fid}"),
            json!({"floatingip": {"port_id": null}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let f = &v["floatingip"];
    assert_eq!(f["status"], "DOWN");
    assert_eq!(f["port_id"], Value::Null);
    assert_eq!(f["router_id"], Value::Null);
    assert_eq!(f["fixed_ip_address"], Value::Null);
    assert_eq!(f["port_details"], Value::Null);
    let (st, v) = api
        .put(
            &format!("/v2.0/floatingips/{f2}"),
            json!({"floatingip": {"port_id": p1_id, "fixed_ip_address": p1_ip,
                                  "description": "moved"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["floatingip"]["router_id"], rid.as_str());
    assert_eq!(v["floatingip"]["description"], "moved");
    // A description-only update keeps the association.
    let (_, v) = api
        .put(
            &format!("/v2.0/floatingips/{f2}"),
            json!({"floatingip": {"description": "kept"}}),
        )
        .await;
    assert_eq!(v["floatingip"]["port_id"], p1_id.as_str());

    // Deleting the port lets go of its floating IP (Neutron does).
    assert_eq!(
        api.delete(&format!("/v2.0/ports/{p1_id}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = api.get(&format!("/v2.0/floatingips/{f2}")).await;
    assert_eq!(v["floatingip"]["status"], "DOWN");
    assert_eq!(v["floatingip"]["port_id"], Value::Null);

    // Deleting a floating IP deletes its holder port.
    assert_eq!(
        api.delete(&format!("/v2.0/floatingips/{fid}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (st, _) = api.get(&format!("/v2.0/ports/{holder_id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    refused(
        api.get(&format!("/v2.0/floatingips/{fid}")).await,
        StatusCode::NOT_FOUND,
        "FloatingIPNotFound",
    );
    assert_eq!(
        api.delete(&format!("/v2.0/floatingips/{f2}")).await.0,
        StatusCode::NO_CONTENT
    );
    // The router can now be taken apart.
    let (st, v) = api
        .remove_interface(&rid, json!({"subnet_id": t.sub}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = api.set_gateway(&rid, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn floating_ip_refusals_change_nothing() {
    let api = api().await;
    let (t, _rid) = routed(&api).await;
    // A port on a network no router reaches.
    let lonely_net = api.network("lonely", false).await;
    let lonely_sub = api.subnet(&lonely_net, "10.5.0.0/24", json!({})).await;
    let lonely = api.port(json!({"network_id": lonely_net})).await;
    // A port with two IPv4 addresses on the routed subnet.
    let two = api
        .port(json!({"network_id": t.net, "fixed_ips": [
            {"ip_address": "10.0.0.10"}, {"ip_address": "10.0.0.11"}]}))
        .await;
    let taken = api
        .created(
            "/v2.0/floatingips",
            "floatingip",
            json!({"floating_network_id": t.ext}),
        )
        .await;
    let before = api.everything().await;
    let create = |body: Value| {
        let api = &api;
        async move {
            api.post("/v2.0/floatingips", json!({ "floatingip": body }))
                .await
        }
    };

    let v = refused(
        create(json!({"floating_network_id": t.ext, "port_id": lonely["id"]})).await,
        StatusCode::NOT_FOUND,
        "ExternalGatewayForFloatingIPNotFound",
    );
    assert_eq!(
        message(&v),
        format!(
            "External network {} is not reachable from subnet {lonely_sub}.  Therefore, cannot \
             associate Port {} with a Floating IP.",
            t.ext,
            lonely["id"].as_str().unwrap()
        )
    );
    refused(
        create(json!({})).await,
        StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
    );
    let v = refused(
        create(json!({"floating_network_id": t.net})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert_eq!(
        message(&v),
        format!(
            "Bad floatingip request: Network {} is not a valid external network.",
            t.net
        )
    );
    refused(
        create(json!({"floating_network_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"})).await,
        StatusCode::NOT_FOUND,
        "NetworkNotFound",
    );
    refused(
        create(json!({"floating_network_id": t.ext,
                      "floating_ip_address": taken["floating_ip_address"]}))
        .await,
        StatusCode::CONFLICT,
        "IpAddressAlreadyAllocated",
    );
    refused(
        create(json!({"floating_network_id": t.ext, "floating_ip_address": "172.24.4.2"})).await,
        StatusCode::CONFLICT,
        "IpAddressAlreadyAllocated",
    );
    refused(
        create(json!({"floating_network_id": t.ext, "floating_ip_address": "192.0.2.1"})).await,
        StatusCode::BAD_REQUEST,
        "InvalidIpForNetwork",
    );
    refused(
        create(json!({"floating_network_id": t.ext, "subnet_id": t.sub})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    refused(
        create(json!({"floating_network_id": t.ext, "fixed_ip_address": "10.0.0.10"})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    let v = refused(
        create(json!({"floating_network_id": t.ext, "port_id": two["id"]})).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert!(message(&v).contains("multiple fixed IPv4 addresses"), "{v}");
    refused(
        create(json!({"floating_network_id": t.ext, "port_id": two["id"],
                      "fixed_ip_address": "10.0.0.12"}))
        .await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    refused(
        create(json!({"floating_network_id": t.ext,
                      "port_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"}))
        .await,
        StatusCode::NOT_FOUND,
        "PortNotFound",
    );
    refused(
        create(json!({"floating_network_id": t.ext, "router_id": _rid})).await,
        StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
    );
    // Updates: the same checks; unknown floating IPs.
    let fid = taken["id"].as_str().unwrap();
    refused(
        api.put(
            &format!("/v2.0/floatingips/{fid}"),
            json!({"floatingip": {"port_id": lonely["id"]}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "ExternalGatewayForFloatingIPNotFound",
    );
    refused(
        api.put(
            &format!("/v2.0/floatingips/{fid}"),
            json!({"floatingip": {"fixed_ip_address": "10.0.0.10"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    refused(
        api.put(
            "/v2.0/floatingips/8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01",
            json!({"floatingip": {"port_id": null}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "FloatingIPNotFound",
    );
    refused(
        api.delete("/v2.0/floatingips/172.24.4.3").await,
        StatusCode::NOT_FOUND,
        "FloatingIPNotFound",
    );
    assert_eq!(api.everything().await, before);

    // With two addresses, naming one works.
    let (st, v) = create(json!({"floating_network_id": t.ext, "port_id": two["id"],
                               "fixed_ip_address": "10.0.0.11"}))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["floatingip"]["fixed_ip_address"], "10.0.0.11");

    // An external network with no address left.
    let small = api.network("small", true).await;
    api.subnet(
        &small,
        "172.25.0.0/29",
        json!({"allocation_pools": [{"start": "172.25.0.2", "end": "172.25.0.2"}]}),
    )
    .await;
    api.created(
        "/v2.0/floatingips",
        "floatingip",
        json!({"floating_network_id": small}),
    )
    .await;
    let full = api.everything().await;
    refused(
        create(json!({"floating_network_id": small})).await,
        StatusCode::BAD_REQUEST,
        "ExternalIpAddressExhausted",
    );
    let empty = api.network("empty", true).await;
    refused(
        create(json!({"floating_network_id": empty})).await,
        StatusCode::BAD_REQUEST,
        "ExternalIpAddressExhausted",
    );
    let (st, _) = api.delete(&format!("/v2.0/networks/{empty}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(api.everything().await, full);
    // A network holding floating IPs is in use.
    refused(
        api.delete(&format!("/v2.0/networks/{small}")).await,
        StatusCode::CONFLICT,
        "NetworkInUse",
    );
}

#[tokio::test]
async fn floating_ip_on_a_load_balancer_vip() {
    let api = api().await;
    let (t, rid) = routed(&api).await;
    let (st, v) = api
        .post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"name": "lb", "vip_subnet_id": t.sub}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let vip_port = v["loadbalancer"]["vip_port_id"].as_str().unwrap();
    let vip = v["loadbalancer"]["vip_address"].as_str().unwrap();
    let f = api
        .created(
            "/v2.0/floatingips",
            "floatingip",
            json!({"floating_network_id": t.ext, "port_id": vip_port}),
        )
        .await;
    assert_eq!(f["fixed_ip_address"], vip);
    assert_eq!(f["router_id"], rid.as_str());
    assert_eq!(f["port_details"]["device_owner"], "Octavia");
}

// ---- security groups ------------------------------------------------------------------------

#[tokio::test]
async fn security_groups_and_rules() {
    let api = api().await;
    let (st, v) = api
        .post(
            "/v2.0/security-groups",
            json!({"security_group": {"name": "sg1", "description": "web"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let g = &v["security_group"];
    let sg = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["name"], "sg1");
    assert_eq!(g["description"], "web");
    assert_eq!(g["stateful"], true);
    assert_eq!(g["shared"], false);
    assert_eq!(g["project_id"], "p1");
    assert_eq!(g["tags"], json!([]));
    assert_eq!(g["revision_number"], 0);
    // Neutron's two default rules: all egress, IPv4 and IPv6.
    let rules = g["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{g}");
    let mut ethertypes: Vec<&str> = rules
        .iter()
        .map(|r| r["ethertype"].as_str().unwrap())
        .collect();
    ethertypes.sort();
    assert_eq!(ethertypes, ["IPv4", "IPv6"]);
    for r in rules {
        assert_eq!(r["direction"], "egress");
        assert_eq!(r["protocol"], Value::Null);
        assert_eq!(r["remote_ip_prefix"], Value::Null);
        assert_eq!(r["port_range_min"], Value::Null);
        assert_eq!(r["security_group_id"], sg.as_str());
    }

    // A rule as `security group rule create --protocol tcp --dst-port 80
    // --remote-ip 0.0.0.0/0` sends it.
    let (st, v) = api
        .post(
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress",
                   "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 80,
                   "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let r = &v["security_group_rule"];
    let rule = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["protocol"], "tcp");
    assert_eq!(r["port_range_min"], 80);
    assert_eq!(r["port_range_max"], 80);
    assert_eq!(r["remote_ip_prefix"], "0.0.0.0/0");
    assert_eq!(r["normalized_cidr"], "0.0.0.0/0");
    assert_eq!(r["remote_group_id"], Value::Null);
    assert_eq!(r["remote_address_group_id"], Value::Null);
    assert_eq!(r["direction"], "ingress");
    assert_eq!(r["project_id"], "p1");
    assert_eq!(r["description"], "");
    let (_, v) = api.get(&format!("/v2.0/security-groups/{sg}")).await;
    assert_eq!(
        v["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (_, v) = api
        .get(&format!(
            "/v2.0/security-group-rules?security_group_id={sg}&direction=ingress"
        ))
        .await;
    assert_eq!(ids(&v, "security_group_rules"), [rule.as_str()]);
    // ICMP type/code, a protocol by number, a remote group, host bits kept.
    for body in [
        json!({"protocol": "icmp", "port_range_min": 8, "port_range_max": 0}),
        json!({"protocol": "17", "port_range_min": 53, "port_range_max": 53}),
        json!({"protocol": null, "remote_group_id": sg}),
        json!({"ethertype": "IPv6", "protocol": "ipv6-icmp", "remote_ip_prefix": "2001:db8::1/64"}),
        json!({"protocol": 132, "remote_ip_prefix": "10.1.2.3"}),
    ] {
        let mut b = body.clone();
        b["security_group_id"] = json!(sg);
        b["direction"] = json!("ingress");
        let (st, v) = api
            .post(
                "/v2.0/security-group-rules",
                json!({ "security_group_rule": b }),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}: {v}");
        if body["remote_ip_prefix"] == "2001:db8::1/64" {
            assert_eq!(
                v["security_group_rule"]["remote_ip_prefix"],
                "2001:db8::1/64"
            );
            assert_eq!(v["security_group_rule"]["normalized_cidr"], "2001:db8::/64");
        }
        if body["remote_ip_prefix"] == "10.1.2.3" {
            assert_eq!(v["security_group_rule"]["remote_ip_prefix"], "10.1.2.3/32");
            assert_eq!(v["security_group_rule"]["protocol"], "132");
        }
    }

    let before = api.everything().await;
    let rule_post = |extra: Value| {
        let api = &api;
        let sg = sg.clone();
        async move {
            let mut b = json!({"security_group_id": sg, "direction": "ingress"});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            api.post(
                "/v2.0/security-group-rules",
                json!({ "security_group_rule": b }),
            )
            .await
        }
    };
    // The same rule again, however spelled.
    for same in [
        json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
               "remote_ip_prefix": "0.0.0.0/0"}),
        json!({"protocol": "6", "port_range_min": "80", "port_range_max": 80,
               "ethertype": "ipv4"}),
    ] {
        let v = refused(
            rule_post(same).await,
            StatusCode::CONFLICT,
            "SecurityGroupRuleExists",
        );
        assert_eq!(
            message(&v),
            format!("Security group rule already exists. Rule id is {rule}.")
        );
    }
    refused(
        api.post(
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": sg, "direction": "egress",
                                           "ethertype": "IPv6"}}),
        )
        .await,
        StatusCode::CONFLICT,
        "SecurityGroupRuleExists",
    );
    for (extra, status, kind) in [
        (
            json!({"protocol": "tcpx"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"protocol": 256}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidPortRange",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 1, "port_range_max": 70000}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"protocol": "udp", "port_range_min": 0, "port_range_max": 10}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"protocol": "icmp", "port_range_min": 300}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            json!({"protocol": "icmp", "port_range_max": 3}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupMissingIcmpType",
        ),
        (
            json!({"port_range_min": 80, "port_range_max": 80}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        (
            json!({"protocol": "gre", "port_range_min": 80, "port_range_max": 80}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidProtocolForPortRange",
        ),
        (
            json!({"ethertype": "IPv4", "remote_ip_prefix": "2001:db8::/64"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleParameterConflict",
        ),
        (
            json!({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleParameterConflict",
        ),
        (
            json!({"protocol": "ipv6-icmp"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": sg}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
        ),
        (
            json!({"remote_ip_prefix": "10.0.0.0/33"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
        ),
        (
            json!({"remote_group_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"}),
            StatusCode::NOT_FOUND,
            "SecurityGroupNotFound",
        ),
        (
            json!({"security_group_id": "8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"}),
            StatusCode::NOT_FOUND,
            "SecurityGroupNotFound",
        ),
        (
            json!({"ethertype": "IPv5"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleInvalidEtherType",
        ),
        (
            json!({"direction": "sideways"}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        (
            json!({"direction": null}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        (
            json!({"bogus": 1}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
    ] {
        let (st, v) = rule_post(extra.clone()).await;
        assert_eq!(st, status, "{extra}: {v}");
        assert_neutron_error(&v, kind);
    }
    let v = refused(
        rule_post(json!({"ethertype": "IPv4", "remote_ip_prefix": "2001:db8::/64"})).await,
        StatusCode::BAD_REQUEST,
        "SecurityGroupRuleParameterConflict",
    );
    assert_eq!(
        message(&v),
        "Conflicting value ethertype IPv4 for CIDR 2001:db8::/64"
    );
    refused(
        api.get("/v2.0/security-groups/nope").await,
        StatusCode::NOT_FOUND,
        "SecurityGroupNotFound",
    );
    refused(
        api.get("/v2.0/security-group-rules/8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01")
            .await,
        StatusCode::NOT_FOUND,
        "SecurityGroupRuleNotFound",
    );
    refused(
        api.put(
            &format!("/v2.0/security-group-rules/{rule}"),
            json!({"security_group_rule": {"description": "x"}}),
        )
        .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTPMethodNotAllowed",
    );
    assert_eq!(api.everything().await, before);

    // Rename; delete a rule.
    let (st, v) = api
        .put(
            &format!("/v2.0/security-groups/{sg}"),
            json!({"security_group": {"name": "sg-web", "description": "d2"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["security_group"]["name"], "sg-web");
    assert_eq!(v["security_group"]["description"], "d2");
    assert_eq!(
        api.delete(&format!("/v2.0/security-group-rules/{rule}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    refused(
        api.get(&format!("/v2.0/security-group-rules/{rule}")).await,
        StatusCode::NOT_FOUND,
        "SecurityGroupRuleNotFound",
    );

    // A group naming another as remote: deleting that one takes the rule along.
    let other = api
        .created(
            "/v2.0/security-groups",
            "security_group",
            json!({"name": "other"}),
        )
        .await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let (st, v) = rule_post(json!({"remote_group_id": other_id})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let via_remote = v["security_group_rule"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.delete(&format!("/v2.0/security-groups/{other_id}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (st, _) = api
        .get(&format!("/v2.0/security-group-rules/{via_remote}"))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = api
        .get(&format!(
            "/v2.0/security-group-rules?security_group_id={other_id}"
        ))
        .await;
    assert_eq!(v["security_group_rules"], json!([]));
}

#[tokio::test]
async fn ports_security_groups_and_port_security() {
    let api = api().await;
    let net = api.network("n", false).await;
    api.subnet(&net, "10.0.0.0/24", json!({})).await;
    let sg = api
        .created(
            "/v2.0/security-groups",
            "security_group",
            json!({"name": "sg1"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sg2 = api
        .created(
            "/v2.0/security-groups",
            "security_group",
            json!({"name": "sg2"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = api.everything().await;
    // Unknown groups: 404, no port.
    refused(
        api.post(
            "/v2.0/ports",
            json!({"port": {"network_id": net,
                            "security_groups": ["8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"]}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "SecurityGroupNotFound",
    );
    // Groups need port security and an address.
    refused(
        api.post(
            "/v2.0/ports",
            json!({"port": {"network_id": net, "security_groups": [sg],
                            "port_security_enabled": false}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "PortSecurityAndIPRequiredForSecurityGroups",
    );
    refused(
        api.post(
            "/v2.0/ports",
            json!({"port": {"network_id": net, "security_groups": [sg], "fixed_ips": []}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "PortSecurityAndIPRequiredForSecurityGroups",
    );
    // Another project's group is not found.
    let (st, v) = api
        .call_as(
            Method::POST,
            "/v2.0/security-groups",
            Some(json!({"security_group": {"name": "theirs"}})),
            member("p2"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let theirs = v["security_group"]["id"].as_str().unwrap().to_string();
    let before = {
        let mut b = before;
        b["security-groups"] = api.get("/v2.0/security-groups").await.1;
        b["security-group-rules"] = api.get("/v2.0/security-group-rules").await.1;
        b
    };
    let (st, v) = api
        .call_as(
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"network_id": net, "security_groups": [theirs]}})),
            member("p1"),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_neutron_error(&v, "SecurityGroupNotFound");
    assert_eq!(api.everything().await, before);

    // A port in sg1 (`port create --security-group sg1`).
    let p = api
        .port(json!({"network_id": net, "name": "p1", "security_groups": [sg, sg]}))
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["security_groups"], json!([sg]));
    assert_eq!(p["port_security_enabled"], true);
    let v = refused(
        api.delete(&format!("/v2.0/security-groups/{sg}")).await,
        StatusCode::CONFLICT,
        "SecurityGroupInUse",
    );
    assert!(message(&v).contains(&sg), "{v}");
    // `port set --security-group sg2` sends both.
    let (st, v) = api
        .put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"security_groups": [sg, sg2]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["port"]["security_groups"], json!([sg, sg2]));
    let with_groups = api.everything().await;
    // Port security cannot go while groups remain…
    refused(
        api.put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"port_security_enabled": false}}),
        )
        .await,
        StatusCode::CONFLICT,
        "PortSecurityPortHasSecurityGroup",
    );
    refused(
        api.put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"security_groups": ["8d3a3bd5-0c4f-4a4f-9d1c-0e8f3b4b6a01"]}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "SecurityGroupNotFound",
    );
    assert_eq!(api.everything().await, with_groups);
    // … and goes with them (`port set --no-security-group --disable-port-security`).
    let (st, v) = api
        .put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"security_groups": [], "port_security_enabled": false}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["port"]["security_groups"], json!([]));
    assert_eq!(v["port"]["port_security_enabled"], false);
    refused(
        api.put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"security_groups": [sg]}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "PortSecurityAndIPRequiredForSecurityGroups",
    );
    let (st, v) = api
        .put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"security_groups": [sg], "port_security_enabled": true}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Free again: the group can go.
    let (st, _) = api
        .put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"security_groups": []}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        api.delete(&format!("/v2.0/security-groups/{sg}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = api
        .get(&format!(
            "/v2.0/security-group-rules?security_group_id={sg}"
        ))
        .await;
    assert_eq!(v["security_group_rules"], json!([]));
}

// ---- scoping, tags, extensions ---------------------------------------------------------------

#[tokio::test]
async fn l3_scoping_policy_and_tags() {
    let api = api().await;
    let (t, rid) = routed(&api).await;
    // p2 sees neither p1's router nor its floating IPs or groups.
    let fip = api
        .created(
            "/v2.0/floatingips",
            "floatingip",
            json!({"floating_network_id": t.ext}),
        )
        .await;
    let (_, v) = api
        .call_as(Method::GET, "/v2.0/routers", None, member("p2"))
        .await;
    assert_eq!(v["routers"], json!([]));
    let (st, v) = api
        .call_as(
            Method::GET,
            &format!("/v2.0/routers/{rid}"),
            None,
            member("p2"),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "RouterNotFound");
    let (st, v) = api
        .call_as(
            Method::GET,
            &format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap()),
            None,
            member("p2"),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_neutron_error(&v, "FloatingIPNotFound");
    // p2 may make its own router with a gateway (external networks are for
    // everyone), not choose its addresses, SNAT or a floating address.
    let (st, v) = api
        .call_as(
            Method::POST,
            "/v2.0/routers",
            Some(json!({"router": {"name": "theirs",
                                   "external_gateway_info": {"network_id": t.ext}}})),
            member("p2"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["router"]["project_id"], "p2");
    let theirs = v["router"]["id"].as_str().unwrap().to_string();
    for info in [
        json!({"network_id": t.ext, "enable_snat": false}),
        json!({"network_id": t.ext, "external_fixed_ips": [{"ip_address": "172.24.4.200"}]}),
    ] {
        let (st, v) = api
            .call_as(
                Method::PUT,
                &format!("/v2.0/routers/{theirs}"),
                Some(json!({"router": {"external_gateway_info": info}})),
                member("p2"),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert_neutron_error(&v, "PolicyNotAuthorized");
    }
    let (st, v) = api
        .call_as(
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": t.ext,
                                       "floating_ip_address": "172.24.4.201"}})),
            member("p2"),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = api
        .call_as(
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": t.ext}})),
            member("p2"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // … nor attach p1's subnet to its router.
    let (st, v) = api
        .call_as(
            Method::PUT,
            &format!("/v2.0/routers/{theirs}/add_router_interface"),
            Some(json!({"subnet_id": t.sub})),
            member("p2"),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_neutron_error(&v, "SubnetNotFound");

    // Tags on routers, floating IPs and security groups.
    let sg = api
        .created("/v2.0/security-groups", "security_group", json!({}))
        .await;
    for base in [
        format!("/v2.0/routers/{rid}/tags"),
        format!("/v2.0/floatingips/{}/tags", fip["id"].as_str().unwrap()),
        format!("/v2.0/security-groups/{}/tags", sg["id"].as_str().unwrap()),
    ] {
        let (st, v) = api.put(&base, json!({"tags": ["a", "b"]})).await;
        assert_eq!(st, StatusCode::OK, "{base}: {v}");
        let (st, _) = api
            .call_as(Method::PUT, &format!("{base}/c"), None, None)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{base}");
        let (_, v) = api.get(&base).await;
        assert_eq!(v, json!({"tags": ["a", "b", "c"]}), "{base}");
    }
    let (_, v) = api.get("/v2.0/routers?tags=a,c").await;
    assert_eq!(ids(&v, "routers"), [rid.as_str()]);
    let (_, v) = api.get("/v2.0/security-groups?tags-any=c").await;
    assert_eq!(ids(&v, "security_groups").len(), 1);
    refused(
        api.get("/v2.0/routers/nope/tags").await,
        StatusCode::NOT_FOUND,
        "RouterNotFound",
    );

    // The extensions clients look for.
    let (_, v) = api.get("/v2.0/extensions").await;
    let aliases: Vec<&str> = v["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    for a in [
        "router",
        "ext-gw-mode",
        "extraroute",
        "security-group",
        "port-security",
        "fip-port-details",
    ] {
        assert!(aliases.contains(&a), "{a}: {v}");
    }
    // openstackclient asks for this one and must not find it.
    let (st, _) = api
        .get("/v2.0/extensions/external-gateway-multihoming")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Unknown routes under the new collections answer in Neutron's shape.
    refused(
        api.get(&format!("/v2.0/routers/{rid}/nothing")).await,
        StatusCode::NOT_FOUND,
        "HTTPNotFound",
    );
}
