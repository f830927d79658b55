//! The authorization matrix (issue #13): every Octavia and Neutron route ×
//! the callers that matter, under Octavia's and Neutron's default policy,
//! measured by sending the requests (noauth headers give the project and
//! roles; a caller without `X-Roles` has none, as `statera serve` is
//! configured by default).
//!
//! Project A owns every object named in a path. Each route has a kind that
//! says what the default rules give each caller (allowed, 403, or 404 where
//! the object is hidden, as Neutron hides another project's objects); the
//! measured statuses must fall in those classes, and docs/API.md carries the
//! measured table ("Authorization matrix"). The route list (`routes`) is
//! reused by the token test: every route answers 401 in Keystone's shape to
//! no token, a malformed, an expired and a revoked built-in token.

#[path = "octavia/support.rs"]
mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use support::*;

const A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
/// The global observer's and the admins' own project.
const C: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";

/// A caller: (column title, project, X-Roles header or none).
pub const CALLERS: [(&str, &str, Option<&str>); 7] = [
    ("owner member", A, Some("member")),
    ("owner reader", A, Some("reader")),
    ("other project's member", B, Some("member")),
    ("global observer", C, Some("load-balancer_global_observer")),
    ("load-balancer admin", C, Some("load-balancer_admin")),
    ("cloud admin", C, Some("admin")),
    ("no roles", A, None),
];

/// What the default rules give each caller of [`CALLERS`], in order:
/// `y` allowed (2xx, or 409 when the object's state refuses after the
/// policy allowed), `f` 403, `m` 404 (hidden or missing).
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Octavia list of the caller's own project (`…:get_all`).
    OList,
    /// Octavia read of A's object (`load-balancer:read`).
    ORead,
    /// Octavia change of A's object or create in A (`load-balancer:write`).
    OWrite,
    /// Octavia admin-only (`load-balancer:admin`, `…:write-quota`).
    OAdmin,
    /// Octavia read against the caller's own project (flavors, AZs,
    /// providers, default quotas).
    OSelf,
    /// Neutron list (filtered to what the caller sees).
    NList,
    /// Neutron read of A's object.
    NRead,
    /// Neutron change of A's object.
    NWrite,
    /// Neutron create in A's project (`project_id` A in the body).
    NCreate,
    /// Neutron create under A's object (a subnet or port on A's network,
    /// a rule in A's group).
    NChild,
    /// Nothing there for anyone.
    Missing,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::OList => "yyyyyyf",
            Kind::ORead => "yyfyyyf",
            Kind::OWrite => "yfffyyf",
            Kind::OAdmin => "ffffyyf",
            Kind::OSelf => "yyyyyyf",
            Kind::NList => "yyyyyyy",
            Kind::NRead => "yymmyym",
            Kind::NWrite => "yfmmyym",
            Kind::NCreate => "yfffyyf",
            Kind::NChild => "yfmfyyf",
            Kind::Missing => "mmmmmmm",
        }
    }
}

/// A's objects (and the admin's ones A's refer to).
struct World {
    lb: String,
    listener: String,
    pool: String,
    /// A pool without a monitor (for creating one).
    pool2: String,
    member: String,
    hm: String,
    l7policy: String,
    l7rule: String,
    flavor_profile: String,
    flavor: String,
    az_profile: String,
    az: String,
    amphora: String,
    network: String,
    subnet: String,
    /// A subnet attached to `router` (for removing the interface).
    subnet2: String,
    port: String,
    router: String,
    external: String,
    fip: String,
    sg: String,
    sg_rule: String,
}

impl World {
    /// The id a tags route is about.
    fn tagged(&self, collection: &str) -> &str {
        match collection {
            "networks" => &self.network,
            "subnets" => &self.subnet,
            "ports" => &self.port,
            "routers" => &self.router,
            "floatingips" => &self.fip,
            _ => &self.sg,
        }
    }
}

type Body = fn(&World, u32) -> Option<Value>;
type PathOf = Arc<dyn Fn(&World) -> String + Send + Sync>;

/// One route: method, path template (as documented), the concrete path,
/// a body, and what the default policy gives.
pub struct Route {
    method: &'static str,
    template: String,
    path: PathOf,
    body: Body,
    kind: Kind,
}

fn route(
    method: &'static str,
    template: &str,
    path: impl Fn(&World) -> String + Send + Sync + 'static,
    body: Body,
    kind: Kind,
) -> Route {
    Route {
        method,
        template: template.to_string(),
        path: Arc::new(path),
        body,
        kind,
    }
}

fn none(_: &World, _: u32) -> Option<Value> {
    None
}

/// The five routes of a collection (`GET` list, `POST`, and `GET`/`PUT`/
/// `DELETE` of one object), in that order; `kinds` in the same order, `put`
/// `None` where the collection has no update.
#[allow(clippy::too_many_arguments)]
fn crud(
    out: &mut Vec<Route>,
    collection: &str,
    coll: impl Fn(&World) -> String + Send + Sync + Clone + 'static,
    item: impl Fn(&World) -> String + Send + Sync + Clone + 'static,
    post: Body,
    put: Option<Body>,
    kinds: [Kind; 5],
) {
    // Availability zones are named by their name.
    let key = if collection.ends_with("/availabilityzones") {
        "name"
    } else {
        "id"
    };
    let one = format!("{collection}/{{{key}}}");
    out.push(route("GET", collection, coll.clone(), none, kinds[0]));
    out.push(route("POST", collection, coll, post, kinds[1]));
    out.push(route("GET", &one, item.clone(), none, kinds[2]));
    if let Some(put) = put {
        out.push(route("PUT", &one, item.clone(), put, kinds[3]));
    }
    out.push(route("DELETE", &one, item, none, kinds[4]));
}

/// Every Octavia and Neutron route.
#[rustfmt::skip]
fn routes() -> Vec<Route> {
    use Kind::*;
    const OBJ: [Kind; 5] = [OList, OWrite, ORead, OWrite, OWrite];
    const CHILD: [Kind; 5] = [ORead, OWrite, ORead, OWrite, OWrite];
    const GLOBAL: [Kind; 5] = [OSelf, OAdmin, OSelf, OAdmin, OAdmin];
    const ADMIN: [Kind; 5] = [OAdmin; 5];
    const NOWN: [Kind; 5] = [NList, NCreate, NRead, NWrite, NWrite];
    const NCHILD: [Kind; 5] = [NList, NChild, NRead, NWrite, NWrite];
    let lb = |p: &str| format!("/v2/lbaas{p}");
    let mut r = Vec::new();
    // ---- Octavia ----
    let r_ = &mut r;
    r_.push(route("GET", "/v2/lbaas/loadbalancers", move |_| lb("/loadbalancers"), none, OList));
    r_.push(route("POST", "/v2/lbaas/loadbalancers", move |_| lb("/loadbalancers"),
        |_, _| Some(json!({"loadbalancer": {"vip_subnet_id": HOST_SUBNET.get().unwrap(), "project_id": A}})), OWrite));
    for (m, tail, body, kind) in [
        ("GET", "", none as Body, ORead),
        ("PUT", "", (|_, _| Some(json!({"loadbalancer": {"description": "x"}}))) as Body, OWrite),
        ("DELETE", "?cascade=true", none, OWrite),
        ("GET", "/stats", none, ORead),
        ("GET", "/status", none, ORead),
        ("GET", "/statuses", none, ORead),
        ("PUT", "/failover", none, OAdmin),
    ] {
        r_.push(route(m, &format!("/v2/lbaas/loadbalancers/{{id}}{tail}"),
            move |w| lb(&format!("/loadbalancers/{}{tail}", w.lb)), body, kind));
    }
    crud(r_, "/v2/lbaas/listeners", move |_| lb("/listeners"), move |w| lb(&format!("/listeners/{}", w.listener)),
        |w, n| Some(json!({"listener": {"loadbalancer_id": w.lb, "protocol": "HTTP", "protocol_port": 20000 + n}})),
        Some(|_, _| Some(json!({"listener": {"description": "x"}}))), OBJ);
    r_.push(route("GET", "/v2/lbaas/listeners/{id}/stats", move |w| lb(&format!("/listeners/{}/stats", w.listener)), none, ORead));
    crud(r_, "/v2/lbaas/pools", move |_| lb("/pools"), move |w| lb(&format!("/pools/{}", w.pool)),
        |w, _| Some(json!({"pool": {"loadbalancer_id": w.lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})),
        Some(|_, _| Some(json!({"pool": {"description": "x"}}))), OBJ);
    crud(r_, "/v2/lbaas/pools/{pool_id}/members", move |w| lb(&format!("/pools/{}/members", w.pool)),
        move |w| lb(&format!("/pools/{}/members/{}", w.pool, w.member)),
        |_, n| Some(json!({"member": {"address": "192.0.2.10", "protocol_port": 10000 + n}})),
        Some(|_, _| Some(json!({"member": {"weight": 2}}))), CHILD);
    r_.push(route("PUT", "/v2/lbaas/pools/{pool_id}/members", move |w| lb(&format!("/pools/{}/members", w.pool)),
        |_, _| Some(json!({"members": []})), OWrite));
    crud(r_, "/v2/lbaas/healthmonitors", move |_| lb("/healthmonitors"), move |w| lb(&format!("/healthmonitors/{}", w.hm)),
        |w, _| Some(json!({"healthmonitor": {"pool_id": w.pool2, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3}})),
        Some(|_, _| Some(json!({"healthmonitor": {"delay": 6}}))), OBJ);
    crud(r_, "/v2/lbaas/l7policies", move |_| lb("/l7policies"), move |w| lb(&format!("/l7policies/{}", w.l7policy)),
        |w, _| Some(json!({"l7policy": {"listener_id": w.listener, "action": "REJECT"}})),
        Some(|_, _| Some(json!({"l7policy": {"description": "x"}}))), OBJ);
    crud(r_, "/v2/lbaas/l7policies/{policy_id}/rules", move |w| lb(&format!("/l7policies/{}/rules", w.l7policy)),
        move |w| lb(&format!("/l7policies/{}/rules/{}", w.l7policy, w.l7rule)),
        |_, _| Some(json!({"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/y"}})),
        Some(|_, _| Some(json!({"rule": {"value": "/z"}}))), CHILD);
    r_.push(route("GET", "/v2/lbaas/quotas", move |_| lb("/quotas"), none, OList));
    r_.push(route("GET", "/v2/lbaas/quotas/defaults", move |_| lb("/quotas/defaults"), none, OSelf));
    r_.push(route("GET", "/v2/lbaas/quotas/{project_id}", move |_| lb(&format!("/quotas/{A}")), none, ORead));
    r_.push(route("PUT", "/v2/lbaas/quotas/{project_id}", move |_| lb(&format!("/quotas/{A}")),
        |_, _| Some(json!({"quota": {"load_balancer": -1}})), OAdmin));
    r_.push(route("DELETE", "/v2/lbaas/quotas/{project_id}", move |_| lb(&format!("/quotas/{A}")), none, OAdmin));
    r_.push(route("GET", "/v2/lbaas/quotas/{project_id}/default", move |_| lb(&format!("/quotas/{A}/default")), none, ORead));
    r_.push(route("GET", "/v2/lbaas/providers", move |_| lb("/providers"), none, OSelf));
    for caps in ["flavor_capabilities", "availability_zone_capabilities"] {
        r_.push(route("GET", &format!("/v2/lbaas/providers/{{provider}}/{caps}"),
            move |_| lb(&format!("/providers/native/{caps}")), none, OAdmin));
    }
    crud(r_, "/v2/lbaas/flavors", move |_| lb("/flavors"), move |w| lb(&format!("/flavors/{}", w.flavor)),
        |w, n| Some(json!({"flavor": {"name": format!("f{n}"), "flavor_profile_id": w.flavor_profile}})),
        Some(|_, _| Some(json!({"flavor": {"description": "x"}}))), GLOBAL);
    crud(r_, "/v2/lbaas/flavorprofiles", move |_| lb("/flavorprofiles"), move |w| lb(&format!("/flavorprofiles/{}", w.flavor_profile)),
        |_, n| Some(json!({"flavorprofile": {"name": format!("fp{n}"), "provider_name": "native", "flavor_data": "{}"}})),
        Some(|_, n| Some(json!({"flavorprofile": {"name": format!("fq{n}")}}))), ADMIN);
    crud(r_, "/v2/lbaas/availabilityzones", move |_| lb("/availabilityzones"), move |w| lb(&format!("/availabilityzones/{}", w.az)),
        |w, n| Some(json!({"availability_zone": {"name": format!("az{n}"), "availability_zone_profile_id": w.az_profile}})),
        Some(|_, _| Some(json!({"availability_zone": {"description": "x"}}))), GLOBAL);
    crud(r_, "/v2/lbaas/availabilityzoneprofiles", move |_| lb("/availabilityzoneprofiles"),
        move |w| lb(&format!("/availabilityzoneprofiles/{}", w.az_profile)),
        |_, n| Some(json!({"availability_zone_profile": {"name": format!("azp{n}"), "provider_name": "native", "availability_zone_data": "{}"}})),
        Some(|_, n| Some(json!({"availability_zone_profile": {"name": format!("azq{n}")}}))), ADMIN);
    r_.push(route("GET", "/v2/octavia/amphorae", |_| "/v2/octavia/amphorae".into(), none, OAdmin));
    for (m, tail) in [("GET", ""), ("DELETE", ""), ("PUT", "/failover"), ("PUT", "/config"), ("GET", "/stats")] {
        r_.push(route(m, &format!("/v2/octavia/amphorae/{{id}}{tail}"),
            move |w| format!("/v2/octavia/amphorae/{}{tail}", w.amphora), none, OAdmin));
    }
    // ---- Neutron ----
    crud(r_, "/v2.0/networks", |_| "/v2.0/networks".into(), |w| format!("/v2.0/networks/{}", w.network),
        |_, _| Some(json!({"network": {"name": "n", "project_id": A}})),
        Some(|_, _| Some(json!({"network": {"name": "m"}}))), NOWN);
    crud(r_, "/v2.0/subnets", |_| "/v2.0/subnets".into(), |w| format!("/v2.0/subnets/{}", w.subnet),
        |w, n| Some(json!({"subnet": {"network_id": w.network, "ip_version": 4,
            "cidr": format!("10.{}.{}.0/24", 100 + n / 256, n % 256)}})),
        Some(|_, _| Some(json!({"subnet": {"name": "m"}}))), NCHILD);
    r_.push(route("GET", "/v2.0/subnetpools", |_| "/v2.0/subnetpools".into(), none, NList));
    r_.push(route("GET", "/v2.0/subnetpools/{id}", |_| format!("/v2.0/subnetpools/{}", uuid::Uuid::nil()), none, Missing));
    crud(r_, "/v2.0/ports", |_| "/v2.0/ports".into(), |w| format!("/v2.0/ports/{}", w.port),
        |w, _| Some(json!({"port": {"network_id": w.network}})),
        Some(|_, _| Some(json!({"port": {"name": "m"}}))), NCHILD);
    crud(r_, "/v2.0/routers", |_| "/v2.0/routers".into(), |w| format!("/v2.0/routers/{}", w.router),
        |_, _| Some(json!({"router": {"name": "r", "project_id": A}})),
        Some(|_, _| Some(json!({"router": {"name": "m"}}))), NOWN);
    r_.push(route("PUT", "/v2.0/routers/{id}/add_router_interface", |w| format!("/v2.0/routers/{}/add_router_interface", w.router),
        |w, _| Some(json!({"subnet_id": w.subnet})), NWrite));
    r_.push(route("PUT", "/v2.0/routers/{id}/remove_router_interface", |w| format!("/v2.0/routers/{}/remove_router_interface", w.router),
        |w, _| Some(json!({"subnet_id": w.subnet2})), NWrite));
    crud(r_, "/v2.0/floatingips", |_| "/v2.0/floatingips".into(), |w| format!("/v2.0/floatingips/{}", w.fip),
        |w, _| Some(json!({"floatingip": {"floating_network_id": w.external, "project_id": A}})),
        Some(|_, _| Some(json!({"floatingip": {"description": "x"}}))), NOWN);
    crud(r_, "/v2.0/security-groups", |_| "/v2.0/security-groups".into(), |w| format!("/v2.0/security-groups/{}", w.sg),
        |_, _| Some(json!({"security_group": {"name": "g", "project_id": A}})),
        Some(|_, _| Some(json!({"security_group": {"description": "x"}}))), NOWN);
    crud(r_, "/v2.0/security-group-rules", |_| "/v2.0/security-group-rules".into(), |w| format!("/v2.0/security-group-rules/{}", w.sg_rule),
        |w, n| Some(json!({"security_group_rule": {"security_group_id": w.sg, "direction": "ingress",
            "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 1000 + n, "port_range_max": 1000 + n}})),
        None, NCHILD);
    r_.push(route("GET", "/v2.0/extensions", |_| "/v2.0/extensions".into(), none, NList));
    for c in ["networks", "subnets", "ports", "routers", "floatingips", "security-groups"] {
        let base = move |w: &World| format!("/v2.0/{c}/{}/tags", w.tagged(c));
        let one = move |w: &World| format!("/v2.0/{c}/{}/tags/t", w.tagged(c));
        let other = move |w: &World| format!("/v2.0/{c}/{}/tags/u", w.tagged(c));
        let t = format!("/v2.0/{c}/{{id}}/tags");
        r_.push(route("GET", &t, base, none, NRead));
        r_.push(route("PUT", &t, base, |_, _| Some(json!({"tags": ["a"]})), NWrite));
        r_.push(route("DELETE", &t, base, none, NWrite));
        r_.push(route("GET", &format!("{t}/{{tag}}"), one, none, NRead));
        r_.push(route("PUT", &format!("{t}/{{tag}}"), other, none, NWrite));
        r_.push(route("DELETE", &format!("{t}/{{tag}}"), one, none, NWrite));
    }
    r
}

static HOST_SUBNET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn send(
    h: &Harness,
    project: &str,
    roles: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Resp {
    // The marker sends world-building and caller requests to the headers'
    // authenticator in the token test (`TokensOrHeaders`); noauth ignores it.
    let mut headers = vec![("x-project-id", project), ("x-matrix-caller", "1")];
    if let Some(r) = roles {
        headers.push(("x-roles", r));
    }
    h.raw(method, path, &headers, body.map(|b| b.to_string()))
        .await
}

/// POST as A's member (or the cloud admin), expecting 201; the new id.
async fn make(h: &Harness, admin: bool, path: &str, key: &str, body: Value) -> String {
    let (project, roles) = if admin { (C, "admin") } else { (A, "member") };
    let r = send(
        h,
        project,
        Some(roles),
        "POST",
        path,
        Some(json!({ key: body })),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "creating {path}: {}", r.text);
    h.settle().await;
    id(&r.body[key])
}

async fn as_a(h: &Harness, method: &str, path: &str, body: Option<Value>) -> Resp {
    let r = send(h, A, Some("member"), method, path, body).await;
    h.settle().await;
    r
}

/// A fresh set of A's objects; `n` keeps names, ports and ranges unique.
async fn world(h: &Harness, n: u32) -> World {
    const LB: &str = "/v2/lbaas";
    let lb = make(
        h,
        false,
        &format!("{LB}/loadbalancers"),
        "loadbalancer",
        json!({"vip_subnet_id": h.subnet_id}),
    )
    .await;
    let listener = make(
        h,
        false,
        &format!("{LB}/listeners"),
        "listener",
        json!({"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 8000}),
    )
    .await;
    let pool = make(
        h,
        false,
        &format!("{LB}/pools"),
        "pool",
        json!({"listener_id": listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
    )
    .await;
    let pool2 = make(
        h,
        false,
        &format!("{LB}/pools"),
        "pool",
        json!({"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
    )
    .await;
    let member = make(
        h,
        false,
        &format!("{LB}/pools/{pool}/members"),
        "member",
        json!({"address": "192.0.2.20", "protocol_port": 80}),
    )
    .await;
    let hm = make(
        h,
        false,
        &format!("{LB}/healthmonitors"),
        "healthmonitor",
        json!({"pool_id": pool, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3}),
    )
    .await;
    let l7policy = make(
        h,
        false,
        &format!("{LB}/l7policies"),
        "l7policy",
        json!({"listener_id": listener, "action": "REJECT"}),
    )
    .await;
    let l7rule = make(
        h,
        false,
        &format!("{LB}/l7policies/{l7policy}/rules"),
        "rule",
        json!({"type": "PATH", "compare_type": "STARTS_WITH", "value": "/x"}),
    )
    .await;
    let flavor_profile = make(
        h,
        true,
        &format!("{LB}/flavorprofiles"),
        "flavorprofile",
        json!({"name": format!("wfp{n}"), "provider_name": "native", "flavor_data": "{}"}),
    )
    .await;
    let flavor = make(
        h,
        true,
        &format!("{LB}/flavors"),
        "flavor",
        json!({"name": format!("wf{n}"), "flavor_profile_id": flavor_profile}),
    )
    .await;
    let az_profile = make(h, true, &format!("{LB}/availabilityzoneprofiles"), "availability_zone_profile",
        json!({"name": format!("wazp{n}"), "provider_name": "native", "availability_zone_data": "{}"})).await;
    let az = format!("waz{n}");
    let r = send(
        h,
        C,
        Some("admin"),
        "POST",
        &format!("{LB}/availabilityzones"),
        Some(
            json!({"availability_zone": {"name": az, "availability_zone_profile_id": az_profile}}),
        ),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "creating the AZ: {}", r.text);
    let amphorae = send(
        h,
        C,
        Some("admin"),
        "GET",
        &format!("/v2/octavia/amphorae?loadbalancer_id={lb}"),
        None,
    )
    .await;
    let amphora = amphorae.body["amphorae"]
        .as_array()
        .and_then(|a| a.first())
        .map(id)
        .unwrap_or_else(|| uuid::Uuid::nil().to_string());
    let network = make(h, false, "/v2.0/networks", "network", json!({"name": "n"})).await;
    let subnet = make(
        h,
        false,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": network,
        "cidr": format!("10.{}.{}.0/24", n / 256, n % 256), "ip_version": 4}),
    )
    .await;
    let subnet2 = make(
        h,
        false,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": network,
        "cidr": format!("10.{}.{}.0/24", 50 + n / 256, n % 256), "ip_version": 4}),
    )
    .await;
    let port = make(
        h,
        false,
        "/v2.0/ports",
        "port",
        // On `subnet` (which it keeps in use), not on `subnet2`.
        json!({"network_id": network, "fixed_ips": [{"subnet_id": subnet}]}),
    )
    .await;
    let router = make(h, false, "/v2.0/routers", "router", json!({"name": "r"})).await;
    as_a(
        h,
        "PUT",
        &format!("/v2.0/routers/{router}/add_router_interface"),
        Some(json!({"subnet_id": subnet2})),
    )
    .await
    .expect(200);
    let external = make(
        h,
        true,
        "/v2.0/networks",
        "network",
        json!({"name": "public", "router:external": true}),
    )
    .await;
    make(
        h,
        true,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": external,
        "cidr": format!("198.{}.{}.0/24", 18 + (n / 256) % 2, n % 256), "ip_version": 4}),
    )
    .await;
    let fip = make(
        h,
        false,
        "/v2.0/floatingips",
        "floatingip",
        json!({"floating_network_id": external}),
    )
    .await;
    let sg = make(
        h,
        false,
        "/v2.0/security-groups",
        "security_group",
        json!({"name": "g"}),
    )
    .await;
    let sg_rule = make(h, false, "/v2.0/security-group-rules", "security_group_rule",
        json!({"security_group_id": sg, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22})).await;
    let w = World {
        lb,
        listener,
        pool,
        pool2,
        member,
        hm,
        l7policy,
        l7rule,
        flavor_profile,
        flavor,
        az_profile,
        az,
        amphora,
        network,
        subnet,
        subnet2,
        port,
        router,
        external,
        fip,
        sg,
        sg_rule,
    };
    for c in [
        "networks",
        "subnets",
        "ports",
        "routers",
        "floatingips",
        "security-groups",
    ] {
        let r = as_a(h, "PUT", &format!("/v2.0/{c}/{}/tags/t", w.tagged(c)), None).await;
        assert!(r.status.is_success(), "tagging {c}: {}", r.text);
    }
    w
}

/// The class of a status: `y` allowed, `f` 403, `m` 404, else the code.
fn class(status: u16) -> String {
    match status {
        200..=299 | 409 => "y".into(),
        403 => "f".into(),
        404 => "m".into(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_caller_as_the_default_policy_says() {
    let h = Harness::with_state(
        |s| {
            // The matrix makes many worlds: no quota gets in its way.
            let q = &mut s.neutron.quotas;
            for v in [
                &mut q.network,
                &mut q.subnet,
                &mut q.port,
                &mut q.router,
                &mut q.floatingip,
                &mut q.security_group,
                &mut q.security_group_rule,
            ] {
                *v = -1;
            }
        },
        |state| {
            // As `statera serve` runs noauth: no roles without X-Roles.
            state.auth = Arc::new(statera_identity::NoAuth {
                default_project_id: PROJECT.to_string(),
                default_roles: Vec::new(),
            });
        },
    )
    .await;
    HOST_SUBNET.get_or_init(|| h.subnet_id.to_string());
    let mut n = 1;
    let mut w = world(&h, n).await;
    let mut counter = 0u32;
    let mut table = String::from(
        "| method | route | owner member | owner reader | other project's member | global observer | load-balancer admin | cloud admin | no roles |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    let routes = routes();
    let started = std::time::Instant::now();
    for r in &routes {
        let expected: Vec<char> = r.kind.expected().chars().collect();
        let mut cells = Vec::new();
        for (i, (_, project, roles)) in CALLERS.iter().enumerate() {
            counter += 1;
            let path = (r.path)(&w);
            let resp = send(&h, project, *roles, r.method, &path, (r.body)(&w, counter)).await;
            let status = resp.status.as_u16();
            let got = class(status);
            if got != expected[i].to_string() {
                failures.push(format!(
                    "  {} {} as {}: {status} (expected {}): {}",
                    r.method, r.template, CALLERS[i].0, expected[i], resp.text
                ));
            }
            cells.push(status.to_string());
            // A change that went through: settle it, and start from fresh
            // objects so the next caller meets the same world.
            if r.method != "GET" && resp.status.is_success() {
                h.settle().await;
                n += 1;
                w = world(&h, n).await;
            }
        }
        table.push_str(&format!(
            "| {} | `{}` | {} |\n",
            r.method,
            r.template,
            cells.join(" | ")
        ));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(600),
            "the matrix took too long"
        );
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "{} cells differ from the default policy:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md"))
        .expect("docs/API.md");
    assert!(
        doc.contains(&table),
        "docs/API.md does not carry the authorization matrix as the suite measured it:\n{table}"
    );
}

/// The operator's policy file governs the API: Octavia's legacy "owner or
/// admin" file lets a project's caller without any role act on its own load
/// balancers, and takes the global view from the global observer; a Neutron
/// rule closed with `!` closes its route even to the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_policy_file_governs_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    let legacy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../statera-policy/tests/legacy-owner-or-admin.yaml"
    ))
    .unwrap();
    std::fs::write(&file, format!("{legacy}\"create_network\": \"!\"\n")).unwrap();
    let policy = Arc::new(statera_policy::Enforcer::load(Some(&file)).unwrap());
    let h = Harness::with_state(
        |_| {},
        |state| {
            state.auth = Arc::new(statera_identity::NoAuth {
                default_project_id: PROJECT.to_string(),
                default_roles: Vec::new(),
            });
            state.policy = policy;
        },
    )
    .await;
    // A caller of A with no role at all creates and reads its load balancer.
    let r = send(
        &h,
        A,
        None,
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": h.subnet_id}})),
    )
    .await
    .expect(201);
    let lb = id(&r.body["loadbalancer"]);
    h.settle().await;
    send(
        &h,
        A,
        None,
        "GET",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        None,
    )
    .await
    .expect(200);
    // B's caller (any role) may not; the global observer no longer sees all.
    send(
        &h,
        B,
        Some("member"),
        "GET",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        None,
    )
    .await
    .expect(403);
    let all = send(
        &h,
        C,
        Some("load-balancer_global_observer"),
        "GET",
        "/v2/lbaas/loadbalancers",
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        all.body["loadbalancers"].as_array().unwrap().len(),
        0,
        "{}",
        all.text
    );
    // load-balancer_admin is no admin under this file; admin is.
    send(
        &h,
        C,
        Some("load-balancer_admin"),
        "GET",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        None,
    )
    .await
    .expect(403);
    send(
        &h,
        C,
        Some("admin"),
        "GET",
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        None,
    )
    .await
    .expect(200);
    // Neutron: `create_network` closed, even to the owner's member.
    send(
        &h,
        A,
        Some("member"),
        "POST",
        "/v2.0/networks",
        Some(json!({"network": {"name": "n"}})),
    )
    .await
    .expect(403);
}

/// The token side of the matrix: the built-in Keystone authenticates every
/// request that carries no `x-matrix-caller` marker; the marked ones (the
/// world's objects) authenticate by noauth headers.
struct TokensOrHeaders {
    builtin: statera_identity::builtin::Builtin,
    headers: statera_identity::NoAuth,
}

impl statera_identity::Authenticator for TokensOrHeaders {
    fn mode(&self) -> statera_identity::AuthMode {
        statera_identity::AuthMode::Builtin
    }
    fn authenticate<'a>(
        &'a self,
        h: &'a axum::http::HeaderMap,
    ) -> statera_identity::AuthFuture<'a> {
        if h.contains_key("x-matrix-caller") {
            self.headers.authenticate(h)
        } else {
            self.builtin.authenticate(h)
        }
    }
    fn identity_uri(&self, base: &str) -> Option<String> {
        self.builtin.identity_uri(base)
    }
    fn builtin(&self) -> Option<&statera_identity::builtin::Builtin> {
        Some(&self.builtin)
    }
}

/// Every route of the matrix × {no token, a malformed token, an expired
/// token, a revoked token}: 401 in Keystone's shape with `WWW-Authenticate`,
/// before any handler looks at the request (and a valid admin token is let
/// through, so the 401s are the tokens' doing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_missing_malformed_expired_and_revoked_tokens() {
    use statera_identity::builtin::bootstrap::{BootstrapOptions, bootstrap};
    use statera_identity::builtin::{Builtin, BuiltinSettings, key_repository};
    let keys = tempfile::tempdir().unwrap();
    let keys_path = keys.path().to_path_buf();
    let h = Harness::with_state(
        |_| {},
        move |state| {
            let builtin = Builtin::new(
                state.store.clone(),
                key_repository(&keys_path),
                BuiltinSettings {
                    token_expiration_s: 2,
                    ..BuiltinSettings::default()
                },
            )
            .unwrap();
            state.auth = Arc::new(TokensOrHeaders {
                builtin,
                headers: statera_identity::NoAuth {
                    default_project_id: PROJECT.to_string(),
                    default_roles: Vec::new(),
                },
            });
        },
    )
    .await;
    HOST_SUBNET.get_or_init(|| h.subnet_id.to_string());
    bootstrap(
        &h.store,
        &BootstrapOptions {
            admin_password: Some("matrix-admin-pw".into()),
            public_url: "http://statera.test:9876".into(),
        },
    )
    .await
    .unwrap();
    let issue = || async {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": "matrix-admin-pw"}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
        let r = h
            .raw("POST", "/v3/auth/tokens", &[], Some(body.to_string()))
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.text);
        r.headers["x-subject-token"].to_str().unwrap().to_string()
    };
    let valid = issue().await;
    let revoked = issue().await;
    let r = h
        .raw(
            "DELETE",
            "/v3/auth/tokens",
            &[("x-auth-token", &valid), ("x-subject-token", &revoked)],
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let expired = issue().await;
    let w = world(&h, 1).await;
    // The valid token gets past authentication on a read of every kind.
    for path in ["/v2/lbaas/loadbalancers", "/v2.0/networks"] {
        let r = h.raw("GET", path, &[("x-auth-token", &valid)], None).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut failures = Vec::new();
    let mut counter = 0;
    for r in &routes() {
        let path = (r.path)(&w);
        for (what, token) in [
            ("no token", None),
            ("a malformed token", Some("gAAAAAB-not-a-token")),
            ("an expired token", Some(expired.as_str())),
            ("a revoked token", Some(revoked.as_str())),
        ] {
            counter += 1;
            let headers: Vec<(&str, &str)> =
                token.map(|t| ("x-auth-token", t)).into_iter().collect();
            let body = (r.body)(&w, counter).map(|b| b.to_string());
            let resp = h.raw(r.method, &path, &headers, body).await;
            let ok = resp.status.as_u16() == 401
                && resp.body["error"]["code"] == 401
                && resp.body["error"]["message"]
                    == "The request you have made requires authentication."
                && resp
                    .headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Keystone uri="));
            if !ok {
                failures.push(format!(
                    "  {} {} with {what}: {} {}",
                    r.method, r.template, resp.status, resp.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} requests were not refused with Keystone's 401:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
