//! The administrative corners of the Octavia API, through the whole router:
//! quotas, providers and their capabilities, flavors and flavor profiles,
//! availability zones and their profiles, and the admin amphora view.

#[path = "../../statera-store/tests/support/pg.rs"]
mod pg;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use statera_api::{ApiSettings, AppState, ProviderInfo, QuotaDefaults};
use statera_model::*;
use statera_store::{ListenerStats, Store};
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

const ADMIN_PROJECT: &str = "0123456789abcdef0123456789abcdef";
const P1: &str = "11111111111111111111111111111111";
const P2: &str = "22222222222222222222222222222222";

/// A member of project `P2`, no admin rights.
const MEMBER_P2: &[(&str, &str)] = &[("x-roles", "member,reader"), ("x-project-id", P2)];

struct Api {
    app: Router,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

fn providers() -> Vec<ProviderInfo> {
    vec![
        ProviderInfo {
            name: "native".into(),
            description: "Statera's own data plane, in process.".into(),
            available: true,
            flavor_capabilities: vec![(
                "loadbalancer_topology".into(),
                "The load balancer topology. One of: SINGLE.".into(),
            )],
            availability_zone_capabilities: vec![(
                "compute_zone".into(),
                "The host or zone that serves the load balancer.".into(),
            )],
            unsupported_listener_protocols: vec![ListenerProtocol::Udp],
            unsupported_monitor_types: Vec::new(),
            pool_tls: false,
            pool_h2: true,
        },
        ProviderInfo {
            name: "haproxy".into(),
            description: "One HAProxy process per load balancer.".into(),
            available: false,
            flavor_capabilities: vec![
                (
                    "loadbalancer_topology".into(),
                    "The load balancer topology.".into(),
                ),
                ("compute_flavor".into(), "The compute flavor.".into()),
            ],
            availability_zone_capabilities: vec![
                ("compute_zone".into(), "The compute zone.".into()),
                ("management_network".into(), "The network.".into()),
            ],
            unsupported_listener_protocols: vec![],
            unsupported_monitor_types: Vec::new(),
            pool_tls: true,
            pool_h2: true,
        },
    ]
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(pg::test_store(dir.path()).await);
    let settings = ApiSettings {
        default_project_id: ADMIN_PROJECT.into(),
        pagination_max_limit: 1000,
        default_provider: "native".into(),
        providers: providers(),
        quota_defaults: QuotaDefaults {
            loadbalancer: 10,
            ..QuotaDefaults::default()
        },
        reserved_ips: vec![],
        host_address_space: Default::default(),
        own_sockets: vec![],
        neutron: Default::default(),
        trust_proxy_headers: false,
    };
    let app = statera_api::app(AppState::lab(store.clone(), settings));
    Api {
        app,
        store,
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, &[], None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, &[], Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("PUT", path, &[], Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call("DELETE", path, &[], None).await
    }

    /// A load balancer row, as the API would have left it once ACTIVE.
    async fn put_lb(&self, project: &str, flavor_id: Option<Uuid>, az: Option<&str>) -> Uuid {
        let lb = LoadBalancer {
            id: Uuid::new_v4(),
            project_id: project.into(),
            name: Some("lb".into()),
            description: None,
            admin_state_up: true,
            provisioning_status: ProvisioningStatus::Active,
            operating_status: OperatingStatus::Online,
            vip_address: "10.0.0.10".parse().unwrap(),
            vip_port_id: Uuid::new_v4(),
            vip_subnet_id: Uuid::new_v4(),
            vip_network_id: Uuid::new_v4(),
            vip_qos_policy_id: None,
            vip_sg_ids: vec![],
            additional_vips: vec![],
            provider: "native".into(),
            flavor_id,
            availability_zone: az.map(str::to_string),
            tags: vec![],
            created_at: now(),
            updated_at: None,
            config_version: 0,
        };
        let id = lb.id;
        self.store
            .write(|txn| txn.put(lb))
            .await
            .expect("store write");
        id
    }

    async fn delete_lb(&self, id: Uuid) {
        self.store
            .write(|txn| {
                txn.delete::<LoadBalancer>(&id);
                Ok::<_, statera_store::StoreError>(())
            })
            .await
            .unwrap();
    }
}

fn error(v: &Value) -> &str {
    v["faultstring"].as_str().unwrap_or_default()
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------ quotas

#[tokio::test]
async fn quotas_show_update_list_delete() {
    let api = api().await;
    let (st, v) = api.get("/v2/lbaas/quotas").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v, json!({"quotas": [], "quotas_links": []}));

    // A project without a row: the deployment defaults, both spellings.
    let (st, v) = api.get(&format!("/v2.0/lbaas/quotas/{P1}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["quota"],
        json!({"loadbalancer": 10, "load_balancer": 10, "listener": -1, "member": -1, "pool": -1,
               "healthmonitor": -1, "health_monitor": -1, "l7policy": -1, "l7rule": -1,
               "project_id": P1, "tenant_id": P1})
    );

    // PUT with the deprecated spellings, a numeric string and a null.
    let (st, v) = api
        .put(
            &format!("/v2/lbaas/quotas/{P1}"),
            json!({"quota": {"load_balancer": 5, "health_monitor": 7, "member": "3", "listener": null}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let q = &v["quota"];
    assert_eq!(q["loadbalancer"], 5);
    assert_eq!(q["load_balancer"], 5);
    assert_eq!(q["healthmonitor"], 7);
    assert_eq!(q["health_monitor"], 7);
    assert_eq!(q["member"], 3);
    assert_eq!(q["listener"], -1);
    assert_eq!(q["project_id"], P1);

    // The current spellings; when both are given the current one wins.
    let (st, v) = api
        .put(
            &format!("/v2/quotas/{P1}"),
            json!({"quota": {"loadbalancer": 4, "load_balancer": 9, "healthmonitor": -1,
                             "l7policy": 2, "l7rule": 0, "pool": 2000000000}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["quota"]["loadbalancer"], 4);
    assert_eq!(v["quota"]["load_balancer"], 4);
    assert_eq!(v["quota"]["health_monitor"], -1);
    assert_eq!(v["quota"]["member"], 3, "absent keys are kept");
    assert_eq!(v["quota"]["l7rule"], 0);

    // Out of range, wrong type, unknown attribute, no envelope.
    for bad in [
        json!({"quota": {"loadbalancer": -2}}),
        json!({"quota": {"member": 2000000001}}),
        json!({"quota": {"pool": "many"}}),
        json!({"quota": {"amphora": 1}}),
        json!({"loadbalancer": 1}),
    ] {
        let (st, v) = api.put(&format!("/v2/lbaas/quotas/{P1}"), bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["faultcode"], "Client");
    }

    // A quota echoed back with its project is accepted (the path decides).
    let (st, v) = api
        .put(
            &format!("/v2/lbaas/quotas/{P1}"),
            json!({"quota": {"project_id": P1, "tenant_id": P1, "l7rule": 0}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");

    // The list shows raw values: unset limits stay null.
    api.put(
        &format!("/v2/lbaas/quotas/{P2}"),
        json!({"quota": {"listener": 1}}),
    )
    .await;
    let (st, v) = api.get("/v2/lbaas/quotas").await;
    assert_eq!(st, StatusCode::OK);
    let quotas = v["quotas"].as_array().unwrap();
    assert_eq!(quotas.len(), 2);
    let p1 = quotas.iter().find(|q| q["project_id"] == P1).unwrap();
    assert_eq!(p1["listener"], Value::Null);
    assert_eq!(p1["loadbalancer"], 4);
    assert_eq!(p1["load_balancer"], 4);
    assert_eq!(p1["tenant_id"], P1);
    let p2 = quotas.iter().find(|q| q["project_id"] == P2).unwrap();
    assert_eq!(p2["loadbalancer"], Value::Null);
    assert_eq!(p2["load_balancer"], Value::Null);
    assert_eq!(p2["listener"], 1);
    assert_eq!(v["quotas_links"], json!([]));

    // Filters and field selection.
    let (_, v) = api
        .get(&format!(
            "/v2/lbaas/quotas?project_id={P2}&fields=project_id&fields=listener"
        ))
        .await;
    assert_eq!(v["quotas"], json!([{"project_id": P2, "listener": 1}]));
    let (_, v) = api
        .get(&format!("/v2/lbaas/quotas/{P1}?fields=load_balancer"))
        .await;
    assert_eq!(v, json!({"quota": {"load_balancer": 4}}));

    // Paging: the project is the marker; the next link leads on, and ends.
    let (_, v) = api.get("/v2/lbaas/quotas?limit=1").await;
    assert_eq!(v["quotas"].as_array().unwrap().len(), 1);
    assert_eq!(v["quotas"][0]["project_id"], P1);
    assert!(v["quotas"][0].get("id").is_none());
    let next = v["quotas_links"][0]["href"].as_str().unwrap();
    assert!(next.contains(&format!("marker={P1}")), "{next}");
    let (st, v) = api
        .get(&format!("/v2/lbaas/quotas?limit=1&marker={P1}"))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["quotas"][0]["project_id"], P2);
    let (_, v) = api
        .get(&format!("/v2/lbaas/quotas?limit=1&marker={P2}"))
        .await;
    assert_eq!(v["quotas"], json!([]));

    // DELETE resets to the defaults (202, no body) and drops the row.
    let (st, v) = api.delete(&format!("/v2/lbaas/quotas/{P1}")).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(v, Value::Null);
    let (_, v) = api.get(&format!("/v2/lbaas/quotas/{P1}")).await;
    assert_eq!(v["quota"]["loadbalancer"], 10);
    assert_eq!(v["quota"]["member"], -1);
    let (_, v) = api.get("/v2/lbaas/quotas").await;
    assert_eq!(v["quotas"].as_array().unwrap().len(), 1);
    // Deleting again is harmless.
    let (st, _) = api.delete(&format!("/v2/lbaas/quotas/{P1}")).await;
    assert_eq!(st, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn quota_defaults_routes() {
    let api = api().await;
    let expected = json!({"loadbalancer": 10, "load_balancer": 10, "listener": -1, "member": -1,
        "pool": -1, "healthmonitor": -1, "health_monitor": -1, "l7policy": -1, "l7rule": -1});
    // `/quotas/defaults` is the defaults document, not project "defaults".
    for path in [
        "/v2/lbaas/quotas/defaults".to_string(),
        "/v2.0/quotas/defaults".to_string(),
        format!("/v2/lbaas/quotas/{P1}/default"),
    ] {
        let (st, v) = api.get(&path).await;
        assert_eq!(st, StatusCode::OK, "{path}");
        assert_eq!(v, json!({ "quota": expected }), "{path}");
    }
    // Defaults do not follow a project's own quota.
    api.put(
        &format!("/v2/lbaas/quotas/{P1}"),
        json!({"quota": {"loadbalancer": 1}}),
    )
    .await;
    let (_, v) = api.get(&format!("/v2/lbaas/quotas/{P1}/default")).await;
    assert_eq!(v["quota"]["loadbalancer"], 10);
    // A member reads the defaults and its own project's, not another's.
    let (st, _) = api
        .call("GET", "/v2/lbaas/quotas/defaults", MEMBER_P2, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api
        .call(
            "GET",
            &format!("/v2/lbaas/quotas/{P2}/default"),
            MEMBER_P2,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api
        .call(
            "GET",
            &format!("/v2/lbaas/quotas/{P1}/default"),
            MEMBER_P2,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn quota_policy() {
    let api = api().await;
    api.put(
        &format!("/v2/lbaas/quotas/{P1}"),
        json!({"quota": {"pool": 3}}),
    )
    .await;
    let p1 = format!("/v2/lbaas/quotas/{P1}");
    let p2 = format!("/v2/lbaas/quotas/{P2}");
    // Reading another project's quota, or changing any, is refused.
    let (st, v) = api.call("GET", &p1, MEMBER_P2, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(
        error(&v),
        "Policy does not allow this request to be performed."
    );
    let body = json!({"quota": {"pool": 100}});
    for path in [&p1, &p2] {
        let (st, _) = api.call("PUT", path, MEMBER_P2, Some(body.clone())).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _) = api.call("DELETE", path, MEMBER_P2, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    // Its own quota is readable; the list is limited to its own project.
    let (st, v) = api.call("GET", &p2, MEMBER_P2, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["quota"]["project_id"], P2);
    let (st, v) = api.call("GET", "/v2/lbaas/quotas", MEMBER_P2, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["quotas"], json!([]));
    let (st, _) = api
        .call(
            "GET",
            &format!("/v2/lbaas/quotas?project_id={P1}"),
            MEMBER_P2,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // A quota admin manages every project's quota.
    let quota_admin = &[
        ("x-roles", "load-balancer_quota_admin"),
        ("x-project-id", P2),
    ];
    let (st, v) = api.call("PUT", &p1, quota_admin, Some(body)).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["quota"]["pool"], 100);
    let (st, v) = api.call("GET", "/v2/lbaas/quotas", quota_admin, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["quotas"].as_array().unwrap().len(), 1);
    let (st, _) = api.call("DELETE", &p1, quota_admin, None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
}

// --------------------------------------------------------------- providers

#[tokio::test]
async fn providers_and_capabilities() {
    let api = api().await;
    let (st, v) = api.get("/v2/lbaas/providers").await;
    assert_eq!(st, StatusCode::OK);
    // Octavia's names of its default provider name the default provider here.
    assert_eq!(
        names(&v, "providers"),
        ["native", "haproxy", "amphora", "octavia"]
    );
    assert_eq!(v.as_object().unwrap().len(), 1, "no links key: {v}");
    assert_eq!(
        v["providers"][0],
        json!({"name": "native", "description": "Statera's own data plane, in process."})
    );
    let (_, v) = api.get("/v2.0/lbaas/providers?fields=name").await;
    assert_eq!(
        v["providers"],
        json!([{"name": "native"}, {"name": "haproxy"}, {"name": "amphora"}, {"name": "octavia"}])
    );
    // Any reader may list providers.
    let (st, _) = api
        .call("GET", "/v2/lbaas/providers", MEMBER_P2, None)
        .await;
    assert_eq!(st, StatusCode::OK);

    let (st, v) = api
        .get("/v2/lbaas/providers/haproxy/flavor_capabilities")
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        names(&v, "flavor_capabilities"),
        ["loadbalancer_topology", "compute_flavor"]
    );
    assert_eq!(v.as_object().unwrap().len(), 1, "no links key: {v}");
    let (_, v) = api
        .get("/v2/lbaas/providers/haproxy/flavor_capabilities?name=compute_flavor")
        .await;
    assert_eq!(
        v["flavor_capabilities"],
        json!([{"name": "compute_flavor", "description": "The compute flavor."}])
    );
    let (_, v) = api
        .get("/v2/lbaas/providers/haproxy/flavor_capabilities?description=The%20compute%20flavor.&fields=name")
        .await;
    assert_eq!(
        v["flavor_capabilities"],
        json!([{"name": "compute_flavor"}])
    );
    let (_, v) = api
        .get("/v2/lbaas/providers/native/flavor_capabilities?name=nothing")
        .await;
    assert_eq!(v["flavor_capabilities"], json!([]));

    let (st, v) = api
        .get("/v2/lbaas/providers/haproxy/availability_zone_capabilities?fields=name")
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v,
        json!({"availability_zone_capabilities": [{"name": "compute_zone"}, {"name": "management_network"}]})
    );
    let (_, v) = api
        .get("/v2/providers/native/availability_zone_capabilities?name=compute_zone")
        .await;
    assert_eq!(
        names(&v, "availability_zone_capabilities"),
        ["compute_zone"]
    );

    for path in [
        "/v2/lbaas/providers/vmware/flavor_capabilities",
        "/v2/lbaas/providers/vmware/availability_zone_capabilities",
    ] {
        let (st, v) = api.get(path).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(error(&v), "Provider 'vmware' is not enabled.");
        // Admin only, checked before the provider.
        let (st, _) = api.call("GET", path, MEMBER_P2, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    let (st, _) = api
        .call(
            "GET",
            "/v2/lbaas/providers/native/flavor_capabilities",
            MEMBER_P2,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

// ----------------------------------------------------------------- flavors

async fn flavor_profile(api: &Api, name: &str, data: &str) -> String {
    let (st, v) = api
        .post(
            "/v2/lbaas/flavorprofiles",
            json!({"flavorprofile": {"name": name, "provider_name": "native", "flavor_data": data}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["flavorprofile"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn flavor_profiles_validate_provider_and_data() {
    let api = api().await;
    let (st, v) = api
        .post(
            "/v2/lbaas/flavorprofiles",
            json!({"flavorprofile": {"name": "fp", "provider_name": "native",
                                     "flavor_data": "{\"loadbalancer_topology\": \"SINGLE\"}"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let fp = &v["flavorprofile"];
    assert_eq!(fp["name"], "fp");
    assert_eq!(fp["provider_name"], "native");
    assert_eq!(fp["flavor_data"], "{\"loadbalancer_topology\": \"SINGLE\"}");
    let id = fp["id"].as_str().unwrap().to_string();
    assert_eq!(fp.as_object().unwrap().len(), 4);

    let cases = [
        (
            json!({"name": "x", "provider_name": "vmware", "flavor_data": "{}"}),
            "Provider 'vmware' is not enabled.",
        ),
        (
            json!({"name": "x", "provider_name": "native", "flavor_data": "{not json"}),
            "{not json is not a valid option for flavor_data",
        ),
        // The JSON is checked before the provider, as Octavia does.
        (
            json!({"name": "x", "provider_name": "vmware", "flavor_data": "{not json"}),
            "{not json is not a valid option for flavor_data",
        ),
        (
            json!({"name": "x", "provider_name": "native", "flavor_data": "[1]"}),
            "Provider 'native' does not support a requested option: [1] is not of type 'object'",
        ),
        (
            json!({"name": "x", "provider_name": "native", "flavor_data": "{\"compute_flavor\": \"m1\"}"}),
            "Provider 'native' does not support a requested option: Additional properties are not allowed ('compute_flavor' was unexpected)",
        ),
        (
            json!({"name": "x", "provider_name": "native"}),
            "Invalid input for field/attribute flavor_data. Value: 'None'. Mandatory field missing.",
        ),
        (
            json!({"provider_name": "native", "flavor_data": "{}"}),
            "Invalid input for field/attribute name. Value: 'None'. Mandatory field missing.",
        ),
        (
            json!({"name": "x", "provider_name": "native", "flavor_data": format!("{{\"a\": \"{}\"}}", "x".repeat(4100))}),
            "",
        ),
        (
            json!({"name": "x", "provider_name": "native", "flavor_data": {"loadbalancer_topology": "SINGLE"}}),
            "",
        ),
        (
            json!({"name": "x", "provider_name": "native", "flavor_data": "{}", "id": "abc"}),
            "",
        ),
    ];
    for (body, message) in cases {
        let (st, v) = api
            .post("/v2/lbaas/flavorprofiles", json!({ "flavorprofile": body }))
            .await;
        // What the provider refuses is Octavia's ProviderUnsupportedOptionError (501).
        let expected = if message.contains("does not support a requested option") {
            StatusCode::NOT_IMPLEMENTED
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(st, expected, "{body} -> {v}");
        if !message.is_empty() {
            assert_eq!(error(&v), message);
        }
    }
    // The second provider accepts its own keys.
    let (st, _) = api
        .post(
            "/v2/lbaas/flavorprofiles",
            json!({"flavorprofile": {"name": "hp", "provider_name": "haproxy",
                                     "flavor_data": "{\"compute_flavor\": \"m1\"}"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Listing: singular links key, filters, fields.
    let (st, v) = api.get("/v2/lbaas/flavorprofiles").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["flavorprofiles"].as_array().unwrap().len(), 2);
    assert_eq!(v["flavorprofile_links"], json!([]));
    assert!(v.get("flavorprofiles_links").is_none());
    let (_, v) = api
        .get("/v2/lbaas/flavorprofiles?provider_name=haproxy&fields=name")
        .await;
    assert_eq!(v["flavorprofiles"], json!([{"name": "hp"}]));
    let (_, v) = api.get(&format!("/v2/lbaas/flavorprofiles?id={id}")).await;
    assert_eq!(names(&v, "flavorprofiles"), ["fp"]);
    let (st, _) = api.get("/v2/lbaas/flavorprofiles?bogus=1").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = api
        .get(&format!(
            "/v2/lbaas/flavorprofiles/{id}?fields=provider_name"
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v, json!({"flavorprofile": {"provider_name": "native"}}));

    // Update: data is validated against the (possibly new) provider.
    let path = format!("/v2/lbaas/flavorprofiles/{id}");
    let (st, v) = api
        .put(
            &path,
            json!({"flavorprofile": {"flavor_data": "{\"compute_flavor\": \"m1\"}"}}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_IMPLEMENTED, "{v}");
    let (st, v) = api
        .put(
            &path,
            json!({"flavorprofile": {"provider_name": "haproxy",
                                     "flavor_data": "{\"compute_flavor\": \"m1\"}", "name": "fp2"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["flavorprofile"]["provider_name"], "haproxy");
    assert_eq!(v["flavorprofile"]["name"], "fp2");
    let (st, _) = api
        .put(&path, json!({"flavorprofile": {"provider_name": "native"}}))
        .await;
    assert_eq!(st, StatusCode::NOT_IMPLEMENTED, "old data, new provider");
    let (st, v) = api
        .put(&path, json!({"flavorprofile": {"name": null}}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(error(&v), "None is not a valid option for name");

    // Admin only, reads included.
    for (method, p) in [
        ("GET", "/v2/lbaas/flavorprofiles".to_string()),
        ("GET", path.clone()),
        ("DELETE", path.clone()),
    ] {
        let (st, _) = api.call(method, &p, MEMBER_P2, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {p}");
    }
    let (st, _) = api
        .call(
            "POST",
            "/v2/lbaas/flavorprofiles",
            MEMBER_P2,
            Some(json!({"flavorprofile": {"name": "x", "provider_name": "native", "flavor_data": "{}"}})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Not found.
    for p in [
        format!("/v2/lbaas/flavorprofiles/{}", Uuid::new_v4()),
        "/v2/lbaas/flavorprofiles/not-a-uuid".to_string(),
        format!("/v2/lbaas/flavorprofiles/{}", Uuid::nil()),
    ] {
        let (st, _) = api.get(&p).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{p}");
        let (st, _) = api.delete(&p).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{p}");
    }
    let (st, _) = api.delete(&path).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = api.get(&path).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn flavors_lifecycle_and_in_use_rules() {
    let api = api().await;
    let fp = flavor_profile(&api, "fp", "{\"loadbalancer_topology\": \"SINGLE\"}").await;
    let (st, v) = api
        .post(
            "/v2/lbaas/flavors",
            json!({"flavor": {"name": "gold", "flavor_profile_id": fp}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let f = &v["flavor"];
    assert_eq!(f["name"], "gold");
    assert_eq!(f["description"], "");
    assert_eq!(f["enabled"], true);
    assert_eq!(f["flavor_profile_id"], fp.as_str());
    let id = f["id"].as_str().unwrap().to_string();
    let path = format!("/v2/lbaas/flavors/{id}");

    // Name unique; profile required and existing; name required.
    let (st, v) = api
        .post(
            "/v2/lbaas/flavors",
            json!({"flavor": {"name": "gold", "flavor_profile_id": fp}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error(&v), "A flavor of gold already exists.");
    let ghost = Uuid::new_v4();
    let (st, v) = api
        .post(
            "/v2/lbaas/flavors",
            json!({"flavor": {"name": "silver", "flavor_profile_id": ghost}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        error(&v),
        format!("{ghost} is not a valid option for flavor_profile_id")
    );
    for body in [
        json!({"name": "silver"}),
        json!({"flavor_profile_id": fp}),
        json!({"name": "silver", "flavor_profile_id": "nope"}),
        json!({"name": "silver", "flavor_profile_id": fp, "enabled": "maybe"}),
    ] {
        let (st, v) = api
            .post("/v2/lbaas/flavors", json!({ "flavor": body }))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} -> {v}");
    }
    let (st, v) = api
        .post(
            "/v2.0/flavors",
            json!({"flavor": {"name": "silver", "description": "d", "enabled": "false",
                              "flavor_profile_id": fp}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["flavor"]["enabled"], false);
    let silver = v["flavor"]["id"].as_str().unwrap().to_string();

    // Reads: any reader; list filters and fields.
    let (st, v) = api
        .call("GET", "/v2/lbaas/flavors?name=gold", MEMBER_P2, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["flavors"].as_array().unwrap().len(), 1);
    assert_eq!(v["flavors"][0]["id"], id.as_str());
    assert_eq!(v["flavors_links"], json!([]));
    let (_, v) = api
        .get("/v2/lbaas/flavors?enabled=false&fields=id&fields=name")
        .await;
    assert_eq!(v["flavors"], json!([{"id": silver, "name": "silver"}]));
    let (_, v) = api.get("/v2/lbaas/flavors?sort=name:asc").await;
    assert_eq!(names(&v, "flavors"), ["gold", "silver"]);
    let (st, v) = api.call("GET", &path, MEMBER_P2, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["flavor"]["name"], "gold");
    let (_, v) = api.get(&format!("{path}?fields=enabled")).await;
    assert_eq!(v, json!({"flavor": {"enabled": true}}));

    // Writes: admin only.
    let (st, _) = api
        .call(
            "POST",
            "/v2/lbaas/flavors",
            MEMBER_P2,
            Some(json!({"flavor": {"name": "x", "flavor_profile_id": fp}})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = api
        .call(
            "PUT",
            &path,
            MEMBER_P2,
            Some(json!({"flavor": {"name": "x"}})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = api.call("DELETE", &path, MEMBER_P2, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Update: name/description/enabled; the profile is immutable.
    let (st, v) = api
        .put(
            &path,
            json!({"flavor": {"name": "platinum", "description": "best", "enabled": false}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["flavor"],
        json!({"id": id, "name": "platinum", "description": "best", "enabled": false,
               "flavor_profile_id": fp})
    );
    let (st, v) = api
        .put(
            &path,
            json!({"flavor": {"flavor_profile_id": Uuid::new_v4()}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error(&v).contains("Unknown attribute"), "{v}");
    let (st, v) = api.put(&path, json!({"flavor": {"name": "silver"}})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error(&v), "A flavor of silver already exists.");
    let (st, _) = api
        .put(&path, json!({"flavor": {"name": "platinum"}}))
        .await;
    assert_eq!(st, StatusCode::OK, "renaming to its own name is fine");

    // The profile is in use by flavors: its provider and data are frozen.
    let fp_path = format!("/v2/lbaas/flavorprofiles/{fp}");
    let (st, v) = api
        .put(&fp_path, json!({"flavorprofile": {"flavor_data": "{}"}}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        error(&v),
        format!("Flavor profile {fp} is in use and cannot be modified.")
    );
    let (st, _) = api
        .put(
            &fp_path,
            json!({"flavorprofile": {"provider_name": "haproxy"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, v) = api
        .put(&fp_path, json!({"flavorprofile": {"name": "renamed"}}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = api.delete(&fp_path).await;
    assert_eq!(st, StatusCode::CONFLICT);

    // A load balancer uses the flavor: it cannot go.
    let lb = api.put_lb(P1, Some(id.parse().unwrap()), None).await;
    let (st, v) = api.delete(&path).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        error(&v),
        format!("Flavor {id} is in use and cannot be modified.")
    );
    api.delete_lb(lb).await;
    let (st, v) = api.delete(&path).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, v) = api.get(&path).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error(&v), format!("Flavor {id} not found."));
    let (st, _) = api.delete(&format!("/v2/lbaas/flavors/{silver}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = api.delete(&fp_path).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    for p in [
        "/v2/lbaas/flavors/not-a-uuid".to_string(),
        format!("/v2/lbaas/flavors/{}", Uuid::nil()),
    ] {
        let (st, _) = api.get(&p).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, _) = api.put(&p, json!({"flavor": {"name": "n"}})).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
}

// ------------------------------------------------------ availability zones

#[tokio::test]
async fn availability_zones_by_name() {
    let api = api().await;
    // Profiles: validated against the provider's AZ capabilities.
    let (st, v) = api
        .post(
            "/v2/lbaas/availabilityzoneprofiles",
            json!({"availability_zone_profile": {"name": "azp", "provider_name": "native",
                   "availability_zone_data": "{\"compute_zone\": \"rack1\"}"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let azp = v["availability_zone_profile"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        v["availability_zone_profile"]["availability_zone_data"],
        "{\"compute_zone\": \"rack1\"}"
    );
    for (data, provider, expected) in [
        ("{\"volume\": \"n\"}", "native", StatusCode::NOT_IMPLEMENTED),
        ("not json", "native", StatusCode::BAD_REQUEST),
        ("\"a string\"", "native", StatusCode::NOT_IMPLEMENTED),
        ("{}", "vmware", StatusCode::BAD_REQUEST),
    ] {
        let (st, v) = api
            .post(
                "/v2/lbaas/availabilityzoneprofiles",
                json!({"availability_zone_profile": {"name": "bad", "provider_name": provider,
                       "availability_zone_data": data}}),
            )
            .await;
        assert_eq!(st, expected, "{data} -> {v}");
    }
    let (st, v) = api.get("/v2/lbaas/availabilityzoneprofiles").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(names(&v, "availability_zone_profiles"), ["azp"]);
    assert_eq!(v["availability_zone_profile_links"], json!([]));
    assert!(v.get("availability_zone_profiles_links").is_none());
    let (_, v) = api
        .get("/v2/lbaas/availabilityzoneprofiles?name=azp&fields=id")
        .await;
    assert_eq!(v["availability_zone_profiles"], json!([{"id": azp}]));
    let (st, v) = api
        .get(&format!("/v2/lbaas/availabilityzoneprofiles/{azp}"))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["availability_zone_profile"]["provider_name"], "native");
    let (st, _) = api
        .call("GET", "/v2/lbaas/availabilityzoneprofiles", MEMBER_P2, None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Zones.
    let (st, v) = api
        .post(
            "/v2/lbaas/availabilityzones",
            json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": azp}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v,
        json!({"availability_zone": {"name": "az1", "description": "", "enabled": true,
               "availability_zone_profile_id": azp}})
    );
    let (st, v) = api
        .post(
            "/v2/lbaas/availabilityzones",
            json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": azp}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error(&v), "A availability zone of az1 already exists.");
    let (st, _) = api
        .post(
            "/v2/lbaas/availabilityzones",
            json!({"availability_zone": {"name": "az2", "availability_zone_profile_id": Uuid::new_v4()}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = api
        .post(
            "/v2/lbaas/availabilityzones",
            json!({"availability_zone": {"name": "az2"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = api
        .post(
            "/v2/lbaas/availabilityzones",
            json!({"availability_zone": {"name": "az 2", "description": "second",
                   "enabled": false, "availability_zone_profile_id": azp}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Read by name, by any reader.
    let (st, v) = api
        .call("GET", "/v2/lbaas/availabilityzones/az1", MEMBER_P2, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["availability_zone"]["name"], "az1");
    let (st, v) = api.get("/v2/lbaas/availabilityzones/az%202").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["availability_zone"]["description"], "second");
    let (st, v) = api.get("/v2/lbaas/availabilityzones/nowhere").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error(&v), "Availability Zone nowhere not found.");
    let (_, v) = api.get("/v2/lbaas/availabilityzones").await;
    assert_eq!(names(&v, "availability_zones"), ["az 2", "az1"]);
    assert_eq!(v["availability_zones_links"], json!([]));
    let (_, v) = api
        .get("/v2/lbaas/availabilityzones?name=az1&fields=name&fields=enabled")
        .await;
    assert_eq!(
        v["availability_zones"],
        json!([{"name": "az1", "enabled": true}])
    );
    let (_, v) = api.get("/v2/lbaas/availabilityzones?enabled=False").await;
    assert_eq!(names(&v, "availability_zones"), ["az 2"]);
    // Paging uses the name as marker.
    let (_, v) = api.get("/v2/lbaas/availabilityzones?limit=1").await;
    assert_eq!(names(&v, "availability_zones"), ["az 2"]);
    let next = v["availability_zones_links"][0]["href"].as_str().unwrap();
    assert!(next.contains("marker=az+2"), "{next}");
    let (_, v) = api
        .get("/v2/lbaas/availabilityzones?limit=1&marker=az+2")
        .await;
    assert_eq!(names(&v, "availability_zones"), ["az1"]);

    // Update: description and enabled only.
    let (st, v) = api
        .put(
            "/v2/lbaas/availabilityzones/az1",
            json!({"availability_zone": {"description": "first", "enabled": false}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["availability_zone"]["description"], "first");
    assert_eq!(v["availability_zone"]["enabled"], false);
    for body in [
        json!({"name": "az9"}),
        json!({"availability_zone_profile_id": azp}),
    ] {
        let (st, _) = api
            .put(
                "/v2/lbaas/availabilityzones/az1",
                json!({ "availability_zone": body }),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    }
    let (st, _) = api
        .call(
            "PUT",
            "/v2/lbaas/availabilityzones/az1",
            MEMBER_P2,
            Some(json!({"availability_zone": {"description": "x"}})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = api
        .put(
            "/v2/lbaas/availabilityzones/nowhere",
            json!({"availability_zone": {"description": "x"}}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The profile is in use by zones.
    let azp_path = format!("/v2/lbaas/availabilityzoneprofiles/{azp}");
    let (st, v) = api
        .put(
            &azp_path,
            json!({"availability_zone_profile": {"availability_zone_data": "{}"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        error(&v),
        format!("Availability Zone Profile {azp} is in use and cannot be modified.")
    );
    let (st, _) = api
        .put(
            &azp_path,
            json!({"availability_zone_profile": {"name": "renamed"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api.delete(&azp_path).await;
    assert_eq!(st, StatusCode::CONFLICT);

    // A load balancer in the zone keeps it.
    let lb = api.put_lb(P1, None, Some("az1")).await;
    let (st, v) = api.delete("/v2/lbaas/availabilityzones/az1").await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        error(&v),
        "Availability Zone az1 is in use and cannot be modified."
    );
    let (st, _) = api
        .call("DELETE", "/v2/lbaas/availabilityzones/az1", MEMBER_P2, None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    api.delete_lb(lb).await;
    for name in ["az1", "az%202"] {
        let (st, _) = api
            .delete(&format!("/v2/lbaas/availabilityzones/{name}"))
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    let (st, _) = api.delete("/v2/lbaas/availabilityzones/az1").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = api
        .put(
            &azp_path,
            json!({"availability_zone_profile": {"availability_zone_data": "{}"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = api.delete(&azp_path).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = api.get(&azp_path).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- amphorae

async fn put_amphora(api: &Api, lb: Uuid, status: AmphoraStatus) -> Uuid {
    let a = Amphora {
        id: Uuid::new_v4(),
        loadbalancer_id: lb,
        role: AmphoraRole::Standalone,
        status,
        compute_id: Some("host-a".into()),
        lb_network_ip: Some("192.0.2.5".parse().unwrap()),
        ha_ip: Some("10.0.0.10".parse().unwrap()),
        ha_port_id: None,
        cached_zone: Some("az1".into()),
        image_id: Some("1.2.3".into()),
        created_at: now(),
        updated_at: None,
    };
    let id = a.id;
    api.store.write(|txn| txn.put(a)).await.unwrap();
    id
}

async fn put_listener(api: &Api, lb: Uuid, port: u16, stats: Option<ListenerStats>) -> Uuid {
    let l = Listener {
        id: Uuid::new_v4(),
        project_id: P1.into(),
        loadbalancer_id: lb,
        name: None,
        description: None,
        admin_state_up: true,
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        protocol: ListenerProtocol::Http,
        protocol_port: port,
        connection_limit: -1,
        default_pool_id: None,
        insert_headers: Default::default(),
        timeout_client_data: 50000,
        timeout_member_connect: 5000,
        timeout_member_data: 50000,
        timeout_tcp_inspect: 0,
        default_tls_container_ref: None,
        sni_container_refs: vec![],
        client_ca_tls_container_ref: None,
        client_authentication: ClientAuthentication::None,
        client_crl_container_ref: None,
        allowed_cidrs: vec![],
        tls_ciphers: None,
        tls_versions: None,
        alpn_protocols: None,
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
        tags: vec![],
        created_at: now(),
        updated_at: None,
    };
    let id = l.id;
    api.store
        .write(|txn| {
            txn.put(l)?;
            if let Some(mut s) = stats {
                s.listener_id = id;
                s.loadbalancer_id = lb;
                txn.put(s)?;
            }
            Ok::<_, statera_store::StoreError>(())
        })
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn amphorae_admin_view() {
    let api = api().await;
    let (st, v) = api.get("/v2/octavia/amphorae").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v, json!({"amphorae": [], "amphorae_links": []}));

    let lb1 = api.put_lb(P1, None, None).await;
    let lb2 = api.put_lb(P2, None, None).await;
    let a1 = put_amphora(&api, lb1, AmphoraStatus::Allocated).await;
    let a2 = put_amphora(&api, lb2, AmphoraStatus::Error).await;
    let l1 = put_listener(
        &api,
        lb1,
        80,
        Some(ListenerStats {
            bytes_in: 100,
            bytes_out: 200,
            active_connections: 1,
            total_connections: 7,
            request_errors: 2,
            ..Default::default()
        }),
    )
    .await;
    let l2 = put_listener(&api, lb1, 81, None).await;

    let (st, v) = api.get(&format!("/v2.0/octavia/amphorae/{a1}")).await;
    assert_eq!(st, StatusCode::OK);
    let a = v["amphora"].as_object().unwrap();
    assert_eq!(a["id"], a1.to_string());
    assert_eq!(a["loadbalancer_id"], lb1.to_string());
    assert_eq!(a["compute_id"], "host-a");
    assert_eq!(a["lb_network_ip"], "192.0.2.5");
    assert_eq!(a["ha_ip"], "10.0.0.10");
    assert_eq!(a["role"], "STANDALONE");
    assert_eq!(a["status"], "ALLOCATED");
    assert_eq!(a["cert_busy"], false);
    assert_eq!(a["cached_zone"], "az1");
    assert_eq!(a["updated_at"], Value::Null);
    assert_eq!(a["image_id"], "1.2.3");
    for null in [
        "vrrp_ip",
        "vrrp_port_id",
        "ha_port_id",
        "cert_expiration",
        "vrrp_interface",
        "vrrp_id",
        "vrrp_priority",
        "compute_flavor",
    ] {
        assert_eq!(a[null], Value::Null, "{null}");
    }
    assert!(a["created_at"].as_str().unwrap().len() == 19);
    assert_eq!(a.len(), 20);
    let (_, v) = api
        .get(&format!(
            "/v2/octavia/amphorae/{a1}?fields=status&fields=role"
        ))
        .await;
    assert_eq!(
        v,
        json!({"amphora": {"status": "ALLOCATED", "role": "STANDALONE"}})
    );

    // Listing and its filters (`project_id` is the owning LB's project).
    let (_, v) = api.get("/v2/octavia/amphorae").await;
    assert_eq!(v["amphorae"].as_array().unwrap().len(), 2);
    assert!(v["amphorae"][0].get("project_id").is_none());
    let (_, v) = api
        .get(&format!(
            "/v2/octavia/amphorae?loadbalancer_id={lb2}&fields=id"
        ))
        .await;
    assert_eq!(v["amphorae"], json!([{"id": a2}]));
    let (_, v) = api
        .get(&format!("/v2/octavia/amphorae?project_id={P1}"))
        .await;
    let items = v["amphorae"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], a1.to_string());
    assert!(items[0].get("project_id").is_none());
    let (_, v) = api.get("/v2/octavia/amphorae?project_id=nobody").await;
    assert_eq!(v["amphorae"], json!([]));
    let (_, v) = api.get("/v2/octavia/amphorae?status=ERROR").await;
    assert_eq!(v["amphorae"].as_array().unwrap().len(), 1);
    let (st, _) = api.get("/v2/octavia/amphorae?bogus=1").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Stats: one entry per listener of the load balancer.
    let (st, v) = api.get(&format!("/v2/octavia/amphorae/{a1}/stats")).await;
    assert_eq!(st, StatusCode::OK);
    let stats = v["amphora_stats"].as_array().unwrap();
    assert_eq!(stats.len(), 2);
    let s1 = stats
        .iter()
        .find(|s| s["listener_id"] == l1.to_string())
        .unwrap();
    assert_eq!(
        s1,
        &json!({"id": a1, "loadbalancer_id": lb1, "listener_id": l1, "active_connections": 1,
                "bytes_in": 100, "bytes_out": 200, "request_errors": 2, "total_connections": 7})
    );
    let s2 = stats
        .iter()
        .find(|s| s["listener_id"] == l2.to_string())
        .unwrap();
    assert_eq!(s2["bytes_in"], 0);
    let (_, v) = api.get(&format!("/v2/octavia/amphorae/{a2}/stats")).await;
    assert_eq!(v, json!({"amphora_stats": []}));

    // Config: 202, no body; only for amphorae that exist.
    let (st, v) = api
        .call(
            "PUT",
            &format!("/v2/octavia/amphorae/{a1}/config"),
            &[],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(v, Value::Null);

    // Delete: only in ERROR.
    let (st, v) = api.delete(&format!("/v2/octavia/amphorae/{a1}")).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        error(&v),
        format!("Amphora {a1} is immutable and cannot be updated.")
    );

    // Failover: the LB goes PENDING_UPDATE and work is queued; a second
    // failover while it is pending is refused.
    let (st, v) = api
        .call(
            "PUT",
            &format!("/v2/octavia/amphorae/{a1}/failover"),
            &[],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let s = api.store.snapshot();
    assert_eq!(
        s.loadbalancers.get(&lb1).unwrap().provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    assert!(s.pending_lbs().contains(&lb1));
    let (st, v) = api
        .call(
            "PUT",
            &format!("/v2/octavia/amphorae/{a1}/failover"),
            &[],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        error(&v),
        format!("Load Balancer {lb1} is immutable and cannot be updated.")
    );

    // Admin only.
    for (method, path) in [
        ("GET", "/v2/octavia/amphorae".to_string()),
        ("GET", format!("/v2/octavia/amphorae/{a2}")),
        ("DELETE", format!("/v2/octavia/amphorae/{a2}")),
        ("PUT", format!("/v2/octavia/amphorae/{a2}/failover")),
        ("PUT", format!("/v2/octavia/amphorae/{a2}/config")),
        ("GET", format!("/v2/octavia/amphorae/{a2}/stats")),
    ] {
        let (st, _) = api.call(method, &path, MEMBER_P2, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}");
    }

    // Unknown or malformed ids are 404 on every route.
    let ghost = Uuid::new_v4();
    for id in [ghost.to_string(), "not-a-uuid".to_string()] {
        for (method, path) in [
            ("GET", format!("/v2/octavia/amphorae/{id}")),
            ("DELETE", format!("/v2/octavia/amphorae/{id}")),
            ("PUT", format!("/v2/octavia/amphorae/{id}/failover")),
            ("PUT", format!("/v2/octavia/amphorae/{id}/config")),
            ("GET", format!("/v2/octavia/amphorae/{id}/stats")),
        ] {
            let (st, _) = api.call(method, &path, &[], None).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    let (_, v) = api.get(&format!("/v2/octavia/amphorae/{ghost}")).await;
    assert_eq!(error(&v), format!("Amphora {ghost} not found."));

    // A DELETED amphora is gone from the API.
    let lb3 = api.put_lb(P1, None, None).await;
    let a3 = put_amphora(&api, lb3, AmphoraStatus::Deleted).await;
    let (st, _) = api.get(&format!("/v2/octavia/amphorae/{a3}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = api
        .get(&format!("/v2/octavia/amphorae?loadbalancer_id={lb3}"))
        .await;
    assert_eq!(v["amphorae"], json!([]));

    // An amphora in ERROR can be deleted.
    let (st, _) = api.delete(&format!("/v2/octavia/amphorae/{a2}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = api.get(&format!("/v2/octavia/amphorae/{a2}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
