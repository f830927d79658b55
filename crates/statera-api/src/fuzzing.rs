//! Entry points for the API's fuzz target (`fuzz/`) and its bounded run in
//! the test suite: whole requests through the router, in process, over a
//! real store, with the invariants every answer must keep checked:
//!
//! - never a 5xx (but 501, Octavia's answer for what a provider does not
//!   implement), never a panic;
//! - every error (4xx, 501) is JSON in the route's shape: Octavia's
//!   `faultcode/faultstring/debuginfo`, or `{"NeutronError": {type,
//!   message, detail}}` on Neutron routes (406 keeps Octavia's own
//!   `{"errors": […]}`);
//! - an answered error changed nothing: the store's state is the very same
//!   snapshot before and after;
//! - every success body is JSON (or empty for 204).
//!
//! Requests come from a corpus of valid ones (one per route that reads a
//! body or a path id, against objects made at the start) mutated with their
//! structure in mind: fields dropped, duplicated, retyped, huge or negative
//! numbers, unicode and control characters, deep nesting, wrong envelopes,
//! broken JSON, mangled ids and queries, other methods. Not an API.

use crate::{ApiSettings, AppState, ProviderInfo, QuotaDefaults};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Map, Value, json};
use statera_model::*;
use statera_store::Store;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// One request of the corpus.
#[derive(Debug, Clone)]
pub struct Seed {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

/// A request as sent (after mutation).
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub path: String,
    pub body: Option<Vec<u8>>,
}

/// What a bounded run did.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub requests: usize,
    /// Answers by class: 2xx, 4xx.
    pub ok: usize,
    pub refused: usize,
}

/// The API over a store, with objects of every kind to aim at.
pub struct Fuzzer {
    app: axum::Router,
    store: Arc<Store>,
    settle: Mutex<Settle>,
    seeds: Vec<Seed>,
    /// Dropped last: the store's pool closes on it.
    rt: tokio::runtime::Runtime,
}

/// The providers as `statera serve` offers them (HAProxy not installed).
fn providers() -> Vec<ProviderInfo> {
    vec![
        ProviderInfo {
            name: "native".into(),
            description: "Statera's own data plane, in process.".into(),
            available: true,
            flavor_capabilities: vec![(
                "loadbalancer_topology".into(),
                "The load balancer topology.".into(),
            )],
            availability_zone_capabilities:
                crate::octavia::providers::octavia_availability_zone_capabilities(),
            unsupported_listener_protocols: vec![
                ListenerProtocol::TerminatedHttps,
                ListenerProtocol::Sctp,
            ],
            unsupported_monitor_types: vec![HealthMonitorType::Sctp],
            pool_tls: false,
            pool_h2: true,
        },
        ProviderInfo {
            name: "haproxy".into(),
            description: "One HAProxy process per load balancer.".into(),
            available: false,
            flavor_capabilities: vec![],
            availability_zone_capabilities: vec![],
            unsupported_listener_protocols: vec![ListenerProtocol::Udp],
            unsupported_monitor_types: vec![HealthMonitorType::Ping],
            pool_tls: true,
            pool_h2: true,
        },
    ]
}

/// What settles pending work between requests (the real controller against
/// a data plane that accepts everything, built by the caller: the API never
/// links the controller, and only the controller moves objects out of
/// PENDING_*). Called with the fuzzer's runtime.
pub type Settle = Box<dyn FnMut(&tokio::runtime::Runtime) + Send>;

impl Fuzzer {
    /// A fuzzer over `store` (opened on `rt`), settling with `settle`.
    pub fn new(
        rt: tokio::runtime::Runtime,
        store: Arc<Store>,
        settle: Settle,
    ) -> Result<Fuzzer, String> {
        let settings = ApiSettings {
            default_project_id: "fuzzproject".into(),
            pagination_max_limit: 100,
            default_provider: "native".into(),
            providers: providers(),
            quota_defaults: QuotaDefaults::default(),
            reserved_ips: vec!["169.254.169.254".parse().expect("address")],
            host_address_space: Default::default(),
            own_sockets: vec!["127.0.0.1:9876".parse().expect("socket address")],
            neutron: Default::default(),
            trust_proxy_headers: false,
        };
        let app = crate::app(AppState::lab(store.clone(), settings));
        let mut f = Fuzzer {
            app,
            store,
            settle: Mutex::new(settle),
            seeds: Vec::new(),
            rt,
        };
        f.seeds = f.make_fixtures()?;
        Ok(f)
    }

    /// Let the caller's controller settle what is pending.
    fn settle(&self) {
        let mut guard = self.settle.lock().unwrap_or_else(|e| e.into_inner());
        let settle: &mut Settle = &mut guard;
        settle(&self.rt);
    }

    pub fn seeds(&self) -> &[Seed] {
        &self.seeds
    }

    /// Create one object of every kind (settled ACTIVE) and the corpus that
    /// aims at them.
    fn make_fixtures(&self) -> Result<Vec<Seed>, String> {
        let mut ids = Map::new();
        let corpus = corpus();
        for seed in corpus.iter().filter(|s| s.method == "POST") {
            let Some(key) = fixture_key(&seed.path) else {
                continue;
            };
            if ids.contains_key(key) {
                continue;
            }
            let body = substitute(seed.body.as_ref().unwrap_or(&Value::Null), &ids);
            let path = substitute_path(&seed.path, &ids);
            let (status, v) = self.send_json("POST", &path, &body)?;
            if !status.is_success() {
                return Err(format!("fixture {path}: {status} {v}"));
            }
            let id = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|o| o.get("id").or_else(|| o.get("name")))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("fixture {path}: no id in {v}"))?
                .to_string();
            self.settle();
            ids.insert(key.to_string(), Value::String(id));
        }
        Ok(corpus
            .into_iter()
            .map(|s| Seed {
                method: s.method,
                path: substitute_path(&s.path, &ids),
                body: s.body.map(|b| substitute(&b, &ids)),
            })
            .collect())
    }

    fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value), String> {
        let (status, bytes) = self.send(method, path, Some(body.to_string().into_bytes()))?;
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, v))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "fuzz.test");
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .map_err(|e| format!("not a request: {e}"))?;
        let svc = tower::Layer::layer(
            &tower::util::MapRequestLayer::new(crate::normalize_path),
            self.app.clone(),
        );
        self.rt.block_on(async move {
            let resp = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, bytes.to_vec()))
        })
    }

    /// Send `req` and check every invariant; the status, or what broke.
    pub fn check(&self, req: &Sent) -> Result<u16, String> {
        // Requests the HTTP layer would never deliver are not the router's.
        if Method::from_bytes(req.method.as_bytes()).is_err()
            || req.path.parse::<axum::http::Uri>().is_err()
        {
            return Ok(0);
        }
        let before = self.store.snapshot();
        let (status, bytes) = self.send(&req.method, &req.path, req.body.clone())?;
        let after = self.store.snapshot();
        let text = String::from_utf8_lossy(&bytes);
        let what = || {
            format!(
                "{} {} {} -> {status}: {text}",
                req.method,
                req.path,
                req.body
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(400)]).into_owned())
                    .unwrap_or_default()
            )
        };
        // 501 is Octavia's answer for what a provider does not implement.
        let refused = status.is_client_error() || status == StatusCode::NOT_IMPLEMENTED;
        if status.is_server_error() && !refused {
            return Err(format!("server error: {}", what()));
        }
        if refused && !Arc::ptr_eq(&before, &after) {
            return Err(format!("an error changed the store: {}", what()));
        }
        // HEAD answers carry no body; a success may be empty (204, 202).
        if req.method == "HEAD" || (status.is_success() && bytes.is_empty()) {
            return Ok(status.as_u16());
        }
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|_| format!("body not JSON: {}", what()))?;
        if refused {
            check_error_shape(&normalized(&req.path), status, &body)
                .map_err(|e| format!("{e}: {}", what()))?;
        }
        Ok(status.as_u16())
    }

    /// One mutated request from the corpus.
    pub fn mutate(&self, rng: &mut StdRng) -> Sent {
        let seed = &self.seeds[rng.gen_range(0..self.seeds.len())];
        mutate(seed, rng)
    }

    /// The fuzz target's entry: the bytes seed the choice and the mutations
    /// (their first 8 bytes), and, when longer, are also sent raw as the
    /// body of a corpus route (their 9th byte picks it). Panics on a broken
    /// invariant.
    pub fn check_bytes(&self, data: &[u8]) {
        let mut seed = [0u8; 8];
        for (i, b) in data.iter().take(8).enumerate() {
            seed[i] = *b;
        }
        let mut rng = StdRng::seed_from_u64(u64::from_le_bytes(seed));
        let req = self.mutate(&mut rng);
        if let Err(e) = self.check(&req) {
            panic!("{e}");
        }
        if data.len() > 9 {
            let s = &self.seeds[data[8] as usize % self.seeds.len()];
            let raw = Sent {
                method: s.method.to_string(),
                path: s.path.clone(),
                body: Some(data[9..].to_vec()),
            };
            if let Err(e) = self.check(&raw) {
                panic!("{e}");
            }
        }
    }

    /// At most `iterations` mutated requests from RNG seed `seed`, stopping
    /// early after `budget`; the first broken invariant is the error.
    pub fn run(&self, seed: u64, iterations: usize, budget: Duration) -> Result<RunStats, String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Instant::now();
        let mut stats = RunStats::default();
        for i in 0..iterations {
            if start.elapsed() > budget {
                break;
            }
            let req = self.mutate(&mut rng);
            let status = self.check(&req)?;
            stats.requests += 1;
            match status {
                200..=299 => stats.ok += 1,
                400..=499 | 501 => stats.refused += 1,
                _ => {}
            }
            // Keep objects ACTIVE now and then so child changes get past the
            // load balancer's lock.
            if i % 16 == 15 {
                self.settle();
            }
        }
        Ok(stats)
    }
}

/// `path` as the router sees it (after [`crate::normalize_path`]).
fn normalized(path: &str) -> String {
    match Request::builder().uri(path).body(Body::empty()) {
        Ok(req) => crate::normalize_path(req).uri().path().to_string(),
        Err(_) => path.to_string(),
    }
}

/// Whether `body` is the error shape of the route at `path`.
pub fn check_error_shape(path: &str, status: StatusCode, body: &Value) -> Result<(), String> {
    let path = path.split('?').next().unwrap_or("");
    if status == StatusCode::NOT_ACCEPTABLE {
        return body["errors"][0]["status"]
            .as_u64()
            .filter(|s| *s == 406)
            .map(drop)
            .ok_or_else(|| "406 without Octavia's errors list".to_string());
    }
    let o = body.as_object().ok_or("error body is not an object")?;
    match crate::style_of_path(path) {
        crate::error::Style::Octavia => {
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort();
            if keys != ["debuginfo", "faultcode", "faultstring"] {
                return Err(format!("Octavia error keys {keys:?}"));
            }
            let code = if status.is_server_error() {
                "Server"
            } else {
                "Client"
            };
            if o["faultcode"] != code || !o["faultstring"].is_string() {
                return Err("Octavia error fields".into());
            }
        }
        crate::error::Style::Barbican => {
            let mut keys: Vec<&str> = o.keys().map(|k| k.as_str()).collect();
            keys.sort_unstable();
            if keys != ["code", "description", "title"]
                || o["code"] != status.as_u16()
                || !o["title"].is_string()
            {
                return Err("Barbican error fields".into());
            }
        }
        crate::error::Style::Keystone => {
            let e = o
                .get("error")
                .filter(|_| o.len() == 1)
                .ok_or("not a Keystone error")?;
            if e["code"] != status.as_u16() || !e["title"].is_string() || !e["message"].is_string()
            {
                return Err("Keystone error fields".into());
            }
        }
        crate::error::Style::Neutron => {
            let e = o
                .get("NeutronError")
                .filter(|_| o.len() == 1)
                .ok_or("not a NeutronError")?;
            if !e["type"].is_string() || !e["message"].is_string() || e.get("detail").is_none() {
                return Err("NeutronError fields".into());
            }
        }
    }
    Ok(())
}

/// The key a corpus POST's object is known by in later paths and bodies.
fn fixture_key(path: &str) -> Option<&'static str> {
    Some(match path {
        "/v2.0/networks" => "network",
        "/v2.0/subnets" => "subnet",
        "/v2.0/ports" => "port",
        "/v2.0/security-groups" => "sg",
        "/v2.0/routers" => "router",
        "/v2/lbaas/flavorprofiles" => "fp",
        "/v2/lbaas/flavors" => "flavor",
        "/v2/lbaas/availabilityzoneprofiles" => "azp",
        "/v2/lbaas/availabilityzones" => "az",
        "/v2/lbaas/loadbalancers" => "lb",
        "/v2/lbaas/listeners" => "listener",
        "/v2/lbaas/pools" => "pool",
        "/v2/lbaas/pools/{pool}/members" => "member",
        "/v2/lbaas/healthmonitors" => "hm",
        "/v2/lbaas/l7policies" => "policy",
        "/v2/lbaas/l7policies/{policy}/rules" => "rule",
        _ => return None,
    })
}

/// Valid requests, in an order where each POST's parents come first;
/// `{key}` names a fixture's id.
fn corpus() -> Vec<Seed> {
    let s = |method, path: &str, body: Option<Value>| Seed {
        method,
        path: path.to_string(),
        body,
    };
    vec![
        s(
            "POST",
            "/v2.0/networks",
            Some(json!({"network": {"name": "net", "admin_state_up": true, "mtu": 1500}})),
        ),
        s(
            "POST",
            "/v2.0/subnets",
            Some(
                json!({"subnet": {"network_id": "{network}", "cidr": "10.61.0.0/24", "ip_version": 4, "name": "sub", "gateway_ip": "10.61.0.1", "allocation_pools": [{"start": "10.61.0.10", "end": "10.61.0.200"}], "dns_nameservers": ["10.61.0.2"], "host_routes": [{"destination": "10.62.0.0/24", "nexthop": "10.61.0.3"}]}}),
            ),
        ),
        s(
            "POST",
            "/v2.0/ports",
            Some(
                json!({"port": {"network_id": "{network}", "name": "p", "fixed_ips": [{"subnet_id": "{subnet}", "ip_address": "10.61.0.50"}], "port_security_enabled": true}}),
            ),
        ),
        s(
            "POST",
            "/v2.0/security-groups",
            Some(json!({"security_group": {"name": "sg", "description": "d"}})),
        ),
        s(
            "POST",
            "/v2.0/security-group-rules",
            Some(
                json!({"security_group_rule": {"security_group_id": "{sg}", "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 81, "remote_ip_prefix": "10.0.0.0/8", "ethertype": "IPv4"}}),
            ),
        ),
        s(
            "POST",
            "/v2.0/routers",
            Some(json!({"router": {"name": "r", "admin_state_up": true}})),
        ),
        s(
            "PUT",
            "/v2.0/routers/{router}/add_router_interface",
            Some(json!({"subnet_id": "{subnet}"})),
        ),
        s(
            "POST",
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": "{network}", "port_id": "{port}"}})),
        ),
        s(
            "POST",
            "/v2/lbaas/flavorprofiles",
            Some(
                json!({"flavorprofile": {"name": "fp", "provider_name": "native", "flavor_data": "{\"loadbalancer_topology\": \"SINGLE\"}"}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/flavors",
            Some(
                json!({"flavor": {"name": "f", "flavor_profile_id": "{fp}", "description": "d", "enabled": true}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/availabilityzoneprofiles",
            Some(
                json!({"availability_zone_profile": {"name": "azp", "provider_name": "native", "availability_zone_data": "{\"compute_zone\": \"z\", \"valid_vip_networks\": [\"{network}\"]}"}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/availabilityzones",
            Some(
                json!({"availability_zone": {"name": "az", "availability_zone_profile_id": "{azp}", "enabled": true}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/loadbalancers",
            Some(
                json!({"loadbalancer": {"name": "lb", "vip_subnet_id": "{subnet}", "admin_state_up": true, "tags": ["a"], "description": "d", "flavor_id": "{flavor}", "availability_zone": "az"}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/listeners",
            Some(
                json!({"listener": {"loadbalancer_id": "{lb}", "protocol": "HTTP", "protocol_port": 80, "name": "l", "connection_limit": -1, "insert_headers": {"X-Forwarded-For": "true"}, "allowed_cidrs": ["10.0.0.0/8"], "timeout_client_data": 50000}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/pools",
            Some(
                json!({"pool": {"listener_id": "{listener}", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "APP_COOKIE", "cookie_name": "c"}}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/pools/{pool}/members",
            Some(
                json!({"member": {"address": "10.61.0.7", "protocol_port": 8080, "weight": 3, "subnet_id": "{subnet}", "monitor_port": 8081, "backup": false}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/healthmonitors",
            Some(
                json!({"healthmonitor": {"pool_id": "{pool}", "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2, "url_path": "/health", "expected_codes": "200-204", "http_method": "GET"}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/l7policies",
            Some(
                json!({"l7policy": {"listener_id": "{listener}", "action": "REDIRECT_TO_URL", "redirect_url": "http://example.com/", "position": 1}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/l7policies/{policy}/rules",
            Some(
                json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api", "invert": false}}),
            ),
        ),
        s(
            "POST",
            "/v2/lbaas/loadbalancers",
            Some(
                json!({"loadbalancer": {"vip_network_id": "{network}", "listeners": [{"protocol": "HTTP", "protocol_port": 81, "default_pool": {"protocol": "HTTP", "lb_algorithm": "LEAST_CONNECTIONS", "members": [{"address": "10.61.0.8", "protocol_port": 80}], "healthmonitor": {"type": "TCP", "delay": 3, "timeout": 2, "max_retries": 3}}, "l7policies": [{"action": "REJECT", "rules": [{"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "a.example"}]}]}]}}),
            ),
        ),
        s(
            "PUT",
            "/v2/lbaas/loadbalancers/{lb}",
            Some(
                json!({"loadbalancer": {"name": "lb2", "admin_state_up": true, "vip_qos_policy_id": null}}),
            ),
        ),
        s(
            "PUT",
            "/v2/lbaas/listeners/{listener}",
            Some(
                json!({"listener": {"connection_limit": 100, "default_pool_id": "{pool}", "timeout_member_connect": 3000}}),
            ),
        ),
        s(
            "PUT",
            "/v2/lbaas/pools/{pool}",
            Some(json!({"pool": {"lb_algorithm": "SOURCE_IP", "session_persistence": null}})),
        ),
        s(
            "PUT",
            "/v2/lbaas/pools/{pool}/members/{member}",
            Some(
                json!({"member": {"weight": 0, "admin_state_up": false, "monitor_address": "10.61.0.9"}}),
            ),
        ),
        s(
            "PUT",
            "/v2/lbaas/pools/{pool}/members",
            Some(
                json!({"members": [{"address": "10.61.0.7", "protocol_port": 8080}, {"address": "2001:db8::1", "protocol_port": 80}]}),
            ),
        ),
        s(
            "PUT",
            "/v2/lbaas/healthmonitors/{hm}",
            Some(json!({"healthmonitor": {"delay": 10, "max_retries_down": 3}})),
        ),
        s(
            "PUT",
            "/v2/lbaas/l7policies/{policy}",
            Some(json!({"l7policy": {"position": 2, "action": "REJECT"}})),
        ),
        s(
            "PUT",
            "/v2/lbaas/l7policies/{policy}/rules/{rule}",
            Some(json!({"rule": {"value": "/b", "key": null}})),
        ),
        s(
            "PUT",
            "/v2/lbaas/quotas/fuzzproject",
            Some(json!({"quota": {"loadbalancer": 100, "listener": -1}})),
        ),
        s(
            "PUT",
            "/v2/lbaas/flavors/{flavor}",
            Some(json!({"flavor": {"name": "f2", "enabled": true}})),
        ),
        s(
            "PUT",
            "/v2/lbaas/availabilityzones/az",
            Some(json!({"availability_zone": {"description": "x"}})),
        ),
        s(
            "PUT",
            "/v2.0/networks/{network}",
            Some(json!({"network": {"name": "n2", "shared": false}})),
        ),
        s(
            "PUT",
            "/v2.0/subnets/{subnet}",
            Some(json!({"subnet": {"name": "s2", "dns_nameservers": []}})),
        ),
        s(
            "PUT",
            "/v2.0/ports/{port}",
            Some(json!({"port": {"name": "p2", "security_groups": ["{sg}"]}})),
        ),
        s(
            "PUT",
            "/v2.0/routers/{router}",
            Some(
                json!({"router": {"routes": [{"destination": "10.70.0.0/16", "nexthop": "10.61.0.4"}]}}),
            ),
        ),
        s("PUT", "/v2/lbaas/loadbalancers/{lb}/failover", None),
        s(
            "GET",
            "/v2/lbaas/loadbalancers?name=lb&sort=name:asc&limit=2&fields=id",
            None,
        ),
        s("GET", "/v2/lbaas/loadbalancers/{lb}/status", None),
        s("GET", "/v2/lbaas/loadbalancers/{lb}/stats", None),
        s("GET", "/v2/lbaas/listeners/{listener}", None),
        s(
            "GET",
            "/v2/lbaas/pools/{pool}/members?address=10.61.0.7&page_reverse=true",
            None,
        ),
        s(
            "GET",
            "/v2/lbaas/healthmonitors?type=HTTP&marker={hm}",
            None,
        ),
        s("GET", "/v2/lbaas/l7policies/{policy}/rules", None),
        s(
            "GET",
            "/v2/lbaas/providers/native/flavor_capabilities?name=loadbalancer_topology",
            None,
        ),
        s("GET", "/v2/lbaas/availabilityzones/az", None),
        s("GET", "/v2/lbaas/quotas/fuzzproject", None),
        s(
            "GET",
            "/v2.0/networks?name=net&fields=id&shared=false",
            None,
        ),
        s("GET", "/v2.0/subnets/{subnet}", None),
        s("GET", "/v2.0/ports?fixed_ips=ip_address%3D10.61.0.50", None),
        s("GET", "/v2.0/subnetpools?name=x", None),
        s("GET", "/v2.0/security-groups/{sg}", None),
        s("DELETE", "/v2/lbaas/l7policies/{policy}/rules/{rule}", None),
        s("DELETE", "/v2/lbaas/pools/{pool}/members/{member}", None),
        s("DELETE", "/v2.0/ports/{port}", None),
    ]
}

/// `{key}` in `path` replaced by the fixture's id.
fn substitute_path(path: &str, ids: &Map<String, Value>) -> String {
    let mut out = path.to_string();
    for (k, v) in ids {
        if let Some(id) = v.as_str() {
            out = out.replace(&format!("{{{k}}}"), id);
        }
    }
    out
}

/// `{key}` in every string of `v` replaced by the fixture's id.
fn substitute(v: &Value, ids: &Map<String, Value>) -> Value {
    match v {
        Value::String(s) => Value::String(substitute_path(s, ids)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, ids)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), substitute(x, ids)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Strange values a field could be given.
fn odd_value(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..22) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(i64::MAX),
        4 => json!(u64::MAX),
        5 => json!(1e308),
        6 => json!(-0.5),
        7 => json!(""),
        8 => json!(" "),
        9 => json!("\u{0}\u{1}\u{7f}"),
        10 => json!("é\u{202e}🙂\u{fffd}"),
        11 => json!("x".repeat(rng.gen_range(250..5000))),
        12 => json!([]),
        13 => json!({}),
        14 => json!(["a", 1, null]),
        15 => json!("00000000-0000-0000-0000-000000000000"),
        16 => json!(uuid::Uuid::new_v4().to_string()),
        17 => json!("::ffff:127.0.0.1"),
        18 => json!("999.1.1.1/33"),
        19 => json!("65536"),
        20 => json!("TRUE"),
        _ => {
            // Deep nesting.
            let mut v = json!(1);
            for _ in 0..rng.gen_range(10..200) {
                v = json!([v]);
            }
            v
        }
    }
}

/// Mutate one value in place (walking into objects and arrays).
fn mutate_value(v: &mut Value, rng: &mut StdRng, depth: u32) {
    match v {
        Value::Object(o) if !o.is_empty() && depth < 6 => {
            let keys: Vec<String> = o.keys().cloned().collect();
            let k = &keys[rng.gen_range(0..keys.len())];
            match rng.gen_range(0..6) {
                0 => {
                    o.remove(k);
                }
                1 => {
                    let x = o[k].clone();
                    o.insert(format!("{k}_{}", rng.gen_range(0..3)), x);
                }
                2 => {
                    o.insert(k.clone(), odd_value(rng));
                }
                3 => {
                    let x = o.remove(k).unwrap_or(Value::Null);
                    o.insert(k.to_uppercase(), x);
                }
                _ => mutate_value(o.get_mut(k).expect("key"), rng, depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 6 => match rng.gen_range(0..4) {
            0 => {
                let i = rng.gen_range(0..a.len());
                a.remove(i);
            }
            1 => {
                let x = a[0].clone();
                for _ in 0..rng.gen_range(1..50) {
                    a.push(x.clone());
                }
            }
            _ => {
                let i = rng.gen_range(0..a.len());
                mutate_value(&mut a[i], rng, depth + 1);
            }
        },
        other => *other = odd_value(rng),
    }
}

/// A mutated copy of `seed`.
pub fn mutate(seed: &Seed, rng: &mut StdRng) -> Sent {
    let mut method = seed.method.to_string();
    let mut path = seed.path.clone();
    let mut body = seed.body.clone();
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..20) {
            0..=9 => {
                if let Some(b) = body.as_mut() {
                    mutate_value(b, rng, 0);
                }
            }
            10 => {
                // The wrong envelope.
                body = body.map(|b| match b {
                    Value::Object(o) => {
                        let inner = o.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null);
                        if rng.gen_bool(0.5) {
                            inner
                        } else {
                            json!({"thing": inner})
                        }
                    }
                    other => json!([other]),
                });
            }
            11 => {
                // A body where none is expected, or none where one is.
                body = match body {
                    Some(_) => None,
                    None => Some(odd_value(rng)),
                };
            }
            12 => {
                // Another method.
                method = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
                    [rng.gen_range(0..7)]
                .to_string();
            }
            13 => {
                // A mangled path id.
                let parts: Vec<&str> = path.split('/').collect();
                let i = rng.gen_range(1..parts.len().max(2));
                let odd = [
                    "%ff%fe",
                    "%00",
                    "..",
                    "%2F",
                    "00000000-0000-0000-0000-000000000000",
                    "x",
                    "%F0%9F%99%82",
                ][rng.gen_range(0..7)];
                path = parts
                    .iter()
                    .enumerate()
                    .map(|(j, p)| if j == i { odd } else { *p })
                    .collect::<Vec<_>>()
                    .join("/");
            }
            14 => {
                // Odd query parameters.
                let q = [
                    "limit=-1",
                    "limit=abc",
                    "marker=nothing",
                    "sort=name:sideways",
                    "sort_key=bogus&sort_dir=up",
                    "fields=",
                    "page_reverse=maybe",
                    "project_id=other",
                    "name=%ff",
                    "id=1&id=2&id=3",
                    "tags=a,b&not-tags-any=c",
                    "limit=99999999999999999999",
                ][rng.gen_range(0..12)];
                path = if path.contains('?') {
                    format!("{path}&{q}")
                } else {
                    format!("{path}?{q}")
                };
            }
            15 => path.push_str(["/", ".json", "/x", "/%ff", "//"][rng.gen_range(0..5)]),
            _ => {
                if let Some(b) = body.as_mut() {
                    mutate_value(b, rng, 0);
                }
            }
        }
    }
    let mut bytes = body.map(|b| b.to_string().into_bytes());
    if let Some(b) = bytes.as_mut()
        && rng.gen_range(0..12) == 0
    {
        // Broken JSON: cut short, or a stray byte.
        if rng.gen_bool(0.5) && !b.is_empty() {
            let cut = rng.gen_range(0..b.len());
            b.truncate(cut);
        } else {
            let at = rng.gen_range(0..=b.len());
            b.insert(at, (rng.next_u32() & 0xff) as u8);
        }
    }
    Sent {
        method,
        path,
        body: bytes,
    }
}
