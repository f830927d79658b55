//! Tenant isolation (issue #12, items 1-4): project B, with the `member`
//! role, against project A, the administrator, and what is shared.
//!
//! The suite proper (`every_reference_is_checked_for_the_caller`) is one
//! table: for every route that takes a reference to another object, B names
//! A's object, a shared one and an administrator's; the answer must be what
//! the table says and, where the object is hidden from B, exactly the answer
//! for an object that does not exist (status and message, the id aside), so
//! that B learns nothing of it. docs/API.md carries the same table.

#[path = "octavia/support.rs"]
mod support;

use serde_json::{Value, json};
use support::*;
use uuid::Uuid;

const A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

#[derive(Clone, Copy, PartialEq)]
enum Who {
    Admin,
    Member(&'static str),
}

async fn send(h: &Harness, who: Who, method: &str, path: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string());
    match who {
        Who::Admin => h.raw(method, path, &[], body).await,
        Who::Member(p) => {
            h.raw(
                method,
                path,
                &[("x-project-id", p), ("x-roles", "member,reader")],
                body,
            )
            .await
        }
    }
}

/// A request of B's (role member) with a body.
async fn as_b(h: &Harness, method: &str, path: &str, body: Value) -> Resp {
    send(h, Who::Member(B), method, path, Some(body)).await
}

/// POST as `who`, expecting 201; the new object's id (envelope `key`).
async fn create(h: &Harness, who: Who, path: &str, key: &str, body: Value) -> String {
    let r = send(h, who, "POST", path, Some(json!({ key: body })))
        .await
        .expect(201);
    h.settle().await;
    id(&r.body[key])
}

/// The error message of an Octavia or a Neutron error body.
fn message(r: &Resp) -> String {
    r.body["NeutronError"]["message"]
        .as_str()
        .or_else(|| r.body["faultstring"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// One project's objects.
struct Objects {
    network: String,
    subnet: String,
    port: String,
    sg: String,
    lb: String,
    listener: String,
    pool: String,
    router: String,
}

async fn objects(h: &Harness, who: Who, cidr: &str, lb_port: u16) -> Objects {
    let network = create(h, who, "/v2.0/networks", "network", json!({"name": "n"})).await;
    let subnet = create(
        h,
        who,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": network, "cidr": cidr, "ip_version": 4}),
    )
    .await;
    let port = create(
        h,
        who,
        "/v2.0/ports",
        "port",
        json!({"network_id": network}),
    )
    .await;
    let sg = create(
        h,
        who,
        "/v2.0/security-groups",
        "security_group",
        json!({"name": "g"}),
    )
    .await;
    let lb = create(
        h,
        who,
        "/v2/lbaas/loadbalancers",
        "loadbalancer",
        json!({"vip_subnet_id": h.subnet_id}),
    )
    .await;
    let listener = create(
        h,
        who,
        "/v2/lbaas/listeners",
        "listener",
        json!({"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": lb_port}),
    )
    .await;
    let pool = create(
        h,
        who,
        "/v2/lbaas/pools",
        "pool",
        json!({"listener_id": listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
    )
    .await;
    let router = create(h, who, "/v2.0/routers", "router", json!({"name": "r"})).await;
    Objects {
        network,
        subnet,
        port,
        sg,
        lb,
        listener,
        pool,
        router,
    }
}

/// What B names in one column of a row: the id, the status expected, and
/// whether the object must look missing (the same answer as a random id).
struct Case {
    id: String,
    status: u16,
    hidden: bool,
}

fn hidden(id: &str, status: u16) -> Option<Case> {
    Some(Case {
        id: id.to_string(),
        status,
        hidden: true,
    })
}

fn visible(id: &str, status: u16) -> Option<Case> {
    Some(Case {
        id: id.to_string(),
        status,
        hidden: false,
    })
}

type Body = Box<dyn Fn(&str, u32) -> Value>;

struct Row {
    /// `<METHOD> <path template>`, as the table shows it.
    route: &'static str,
    /// The path B sends to (`{ref}` stands for the id B names).
    path: String,
    field: &'static str,
    /// A's object, a shared one, the administrator's (None: no such thing).
    cases: [Option<Case>; 3],
    /// The status for an id that names nothing.
    missing: u16,
    /// The body naming `id`; `n` makes every request unique.
    body: Body,
}

fn row(
    route: &'static str,
    path: impl Into<String>,
    field: &'static str,
    cases: [Option<Case>; 3],
    missing: u16,
    body: impl Fn(&str, u32) -> Value + 'static,
) -> Row {
    Row {
        route,
        path: path.into(),
        field,
        cases,
        missing,
        body: Box::new(body),
    }
}

impl Row {
    /// B's request naming `id`.
    async fn send(&self, h: &Harness, id: &str, n: u32) -> Resp {
        let method = self.route.split(' ').next().unwrap_or("GET");
        let path = self.path.replace("{ref}", id);
        send(h, Who::Member(B), method, &path, Some((self.body)(id, n))).await
    }
}

#[tokio::test]
async fn every_reference_is_checked_for_the_caller() {
    let h = Harness::new().await;
    let admin = objects(&h, Who::Admin, "10.2.0.0/24", 80).await;
    let a = objects(&h, Who::Member(A), "10.1.0.0/24", 80).await;
    let b = objects(&h, Who::Member(B), "10.4.0.0/24", 80).await;
    // What everyone may use: a shared network (with a subnet and an
    // administrator's port on it) and an external network.
    let shared_net = create(
        &h,
        Who::Admin,
        "/v2.0/networks",
        "network",
        json!({"name": "shared", "shared": true}),
    )
    .await;
    let shared_subnet = create(
        &h,
        Who::Admin,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": shared_net, "cidr": "10.3.0.0/24", "ip_version": 4}),
    )
    .await;
    let shared_port = create(
        &h,
        Who::Admin,
        "/v2.0/ports",
        "port",
        json!({"network_id": shared_net}),
    )
    .await;
    let external = create(
        &h,
        Who::Admin,
        "/v2.0/networks",
        "network",
        json!({"name": "public", "router:external": true}),
    )
    .await;
    create(
        &h,
        Who::Admin,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": external, "cidr": "203.0.113.0/24", "ip_version": 4}),
    )
    .await;
    let flavorprofile = create(
        &h,
        Who::Admin,
        "/v2/lbaas/flavorprofiles",
        "flavorprofile",
        json!({"name": "fp", "provider_name": "native", "flavor_data": "{}"}),
    )
    .await;
    let disabled_flavor = create(
        &h,
        Who::Admin,
        "/v2/lbaas/flavors",
        "flavor",
        json!({"name": "off", "flavor_profile_id": flavorprofile, "enabled": false}),
    )
    .await;

    let az_profile = create(
        &h,
        Who::Admin,
        "/v2/lbaas/availabilityzoneprofiles",
        "availability_zone_profile",
        json!({"name": "azp", "provider_name": "native", "availability_zone_data": "{}"}),
    )
    .await;
    send(
        &h,
        Who::Admin,
        "POST",
        "/v2/lbaas/availabilityzones",
        Some(json!({"availability_zone": {"name": "az-off",
            "availability_zone_profile_id": az_profile, "enabled": false}})),
    )
    .await
    .expect(201);

    // Leaked: the request builders below borrow them for the whole test.
    let leak = |x: String| -> &'static str { Box::leak(x.into_boxed_str()) };
    let host_subnet = leak(h.subnet_id.to_string());
    let b: &'static Objects = Box::leak(Box::new(b));
    let (shared_net, external) = (leak(shared_net), leak(external));
    let member_address = |n: u32| format!("10.9.{}.{}", n / 200, n % 200 + 10);
    let (lbs, pools, l7, hms) = (
        "/v2/lbaas/loadbalancers",
        "/v2/lbaas/pools",
        "/v2/lbaas/l7policies",
        "/v2/lbaas/healthmonitors",
    );
    let b_members = format!("/v2/lbaas/pools/{}/members", b.pool);
    // A member B has, which the batch update below names by address and port.
    let b_member = create(
        &h,
        Who::Member(B),
        &b_members,
        "member",
        json!({"address": "10.8.0.1", "protocol_port": 82}),
    )
    .await;
    // B's own port on the shared network (the port is B's, the network not).
    let b_shared_port = create(
        &h,
        Who::Member(B),
        "/v2.0/ports",
        "port",
        json!({"network_id": shared_net}),
    )
    .await;
    let shared_ip = |n: u32| format!("10.3.0.{}", 100 + n % 100);

    #[rustfmt::skip]
    let rows = vec![
        // ---- Octavia: the Neutron objects a load balancer or member names ----
        row("POST /v2/lbaas/loadbalancers", lbs, "vip_subnet_id",
            [hidden(&a.subnet, 400), visible(&shared_subnet, 201), hidden(&admin.subnet, 400)], 400,
            |id, _| json!({"loadbalancer": {"vip_subnet_id": id}})),
        row("POST /v2/lbaas/loadbalancers", lbs, "vip_network_id",
            [hidden(&a.network, 400), visible(shared_net, 201), hidden(&admin.network, 400)], 400,
            |id, _| json!({"loadbalancer": {"vip_network_id": id}})),
        row("POST /v2/lbaas/loadbalancers", lbs, "vip_port_id",
            [hidden(&a.port, 400), hidden(&shared_port, 400), hidden(&admin.port, 400)], 400,
            |id, _| json!({"loadbalancer": {"vip_port_id": id}})),
        row("POST /v2/lbaas/loadbalancers", lbs, "vip_sg_ids",
            [hidden(&a.sg, 400), None, hidden(&admin.sg, 400)], 400,
            move |id, _| json!({"loadbalancer": {"vip_subnet_id": host_subnet, "vip_sg_ids": [id]}})),
        row("PUT /v2/lbaas/loadbalancers/{id}", format!("{lbs}/{}", b.lb), "vip_sg_ids",
            [hidden(&a.sg, 400), None, hidden(&admin.sg, 400)], 400,
            |id, _| json!({"loadbalancer": {"vip_sg_ids": [id]}})),
        row("POST /v2/lbaas/pools/{id}/members", b_members.clone(), "subnet_id",
            [hidden(&a.subnet, 400), visible(&shared_subnet, 201), hidden(&admin.subnet, 400)], 400,
            move |id, n| json!({"member": {"address": member_address(n), "protocol_port": 80, "subnet_id": id}})),
        row("PUT /v2/lbaas/pools/{id}/members", format!("{b_members}?additive_only=true"), "subnet_id",
            [hidden(&a.subnet, 400), visible(&shared_subnet, 202), hidden(&admin.subnet, 400)], 400,
            move |id, n| json!({"members": [{"address": member_address(n), "protocol_port": 81, "subnet_id": id}]})),
        row("PUT /v2/lbaas/pools/{id}/members", format!("{b_members}?additive_only=true"), "subnet_id (an existing member)",
            [hidden(&a.subnet, 400), visible(&shared_subnet, 202), hidden(&admin.subnet, 400)], 400,
            |id, _| json!({"members": [{"address": "10.8.0.1", "protocol_port": 82, "subnet_id": id}]})),
        // ---- Octavia: parents and siblings (another project's parent is
        // 403 and a missing one 404, as in Octavia; a sibling that must be
        // on the same load balancer is 404 like a missing one) ----
        row("POST /v2/lbaas/listeners", "/v2/lbaas/listeners", "loadbalancer_id",
            [visible(&a.lb, 403), None, visible(&admin.lb, 403)], 404,
            |id, n| json!({"listener": {"loadbalancer_id": id, "protocol": "HTTP", "protocol_port": 1000 + n}})),
        row("POST /v2/lbaas/listeners", "/v2/lbaas/listeners", "default_pool_id",
            [hidden(&a.pool, 404), None, hidden(&admin.pool, 404)], 404,
            |id, n| json!({"listener": {"loadbalancer_id": b.lb, "protocol": "HTTP", "protocol_port": 2000 + n, "default_pool_id": id}})),
        row("PUT /v2/lbaas/listeners/{id}", format!("/v2/lbaas/listeners/{}", b.listener), "default_pool_id",
            [hidden(&a.pool, 404), None, hidden(&admin.pool, 404)], 404,
            |id, _| json!({"listener": {"default_pool_id": id}})),
        row("POST /v2/lbaas/pools", pools, "loadbalancer_id",
            [visible(&a.lb, 403), None, visible(&admin.lb, 403)], 404,
            |id, _| json!({"pool": {"loadbalancer_id": id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})),
        row("POST /v2/lbaas/pools", pools, "listener_id",
            [visible(&a.listener, 403), None, visible(&admin.listener, 403)], 404,
            |id, _| json!({"pool": {"loadbalancer_id": b.lb, "listener_id": id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})),
        row("POST /v2/lbaas/pools/{pool_id}/members", "/v2/lbaas/pools/{ref}/members", "pool_id (path)",
            [visible(&a.pool, 403), None, visible(&admin.pool, 403)], 404,
            move |_, n| json!({"member": {"address": member_address(n), "protocol_port": 80}})),
        row("POST /v2/lbaas/healthmonitors", hms, "pool_id",
            [visible(&a.pool, 403), None, visible(&admin.pool, 403)], 404,
            |id, _| json!({"healthmonitor": {"pool_id": id, "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 2}})),
        row("POST /v2/lbaas/l7policies", l7, "listener_id",
            [visible(&a.listener, 403), None, visible(&admin.listener, 403)], 404,
            |id, _| json!({"l7policy": {"listener_id": id, "action": "REJECT"}})),
        row("POST /v2/lbaas/l7policies", l7, "redirect_pool_id",
            [hidden(&a.pool, 404), None, hidden(&admin.pool, 404)], 404,
            |id, _| json!({"l7policy": {"listener_id": b.listener, "action": "REDIRECT_TO_POOL", "redirect_pool_id": id}})),
        row("POST /v2/lbaas/loadbalancers", lbs, "flavor_id (disabled; flavors are global)",
            [None, None, visible(&disabled_flavor, 400)], 400,
            move |id, _| json!({"loadbalancer": {"vip_subnet_id": host_subnet, "flavor_id": id}})),
        row("POST /v2/lbaas/loadbalancers", lbs, "availability_zone (disabled; zones are global)",
            [None, None, visible("az-off", 400)], 400,
            move |id, _| json!({"loadbalancer": {"vip_subnet_id": host_subnet, "availability_zone": id}})),
        // ---- Neutron ----
        row("POST /v2.0/subnets", "/v2.0/subnets", "network_id",
            [hidden(&a.network, 404), visible(shared_net, 403), hidden(&admin.network, 404)], 404,
            |id, n| json!({"subnet": {"network_id": id, "cidr": format!("10.77.{n}.0/24"), "ip_version": 4}})),
        row("POST /v2.0/ports", "/v2.0/ports", "network_id",
            [hidden(&a.network, 404), visible(shared_net, 201), hidden(&admin.network, 404)], 404,
            |id, _| json!({"port": {"network_id": id}})),
        row("POST /v2.0/ports", "/v2.0/ports", "fixed_ips[].subnet_id",
            [hidden(&a.subnet, 404), visible(&shared_subnet, 201), hidden(&admin.subnet, 404)], 404,
            move |id, _| json!({"port": {"network_id": shared_net, "fixed_ips": [{"subnet_id": id}]}})),
        // Neutron's admin_or_network_owner attributes: on a network the
        // caller does not own (a shared one), 403 PolicyNotAuthorized.
        row("POST /v2.0/ports", "/v2.0/ports", "network_id, with fixed_ips[].ip_address",
            [hidden(&a.network, 404), visible(shared_net, 403), hidden(&admin.network, 404)], 404,
            move |id, n| json!({"port": {"network_id": id, "fixed_ips": [{"ip_address": shared_ip(n)}]}})),
        row("POST /v2.0/ports", "/v2.0/ports", "network_id, with device_owner network:router_interface",
            [hidden(&a.network, 404), visible(shared_net, 403), hidden(&admin.network, 404)], 404,
            |id, _| json!({"port": {"network_id": id, "device_owner": "network:router_interface"}})),
        row("POST /v2.0/ports", "/v2.0/ports", "network_id, with mac_address",
            [hidden(&a.network, 404), visible(shared_net, 403), hidden(&admin.network, 404)], 404,
            |id, n| json!({"port": {"network_id": id, "mac_address": format!("fa:16:3e:00:01:{:02x}", n % 256)}})),
        row("POST /v2.0/ports", "/v2.0/ports", "network_id, with port_security_enabled",
            [hidden(&a.network, 404), visible(shared_net, 403), hidden(&admin.network, 404)], 404,
            |id, _| json!({"port": {"network_id": id, "port_security_enabled": false}})),
        row("PUT /v2.0/ports/{id}", "/v2.0/ports/{ref}", "fixed_ips[].ip_address (shared: B's port on the shared network)",
            [hidden(&a.port, 404), visible(&b_shared_port, 403), hidden(&admin.port, 404)], 404,
            move |_, n| json!({"port": {"fixed_ips": [{"ip_address": shared_ip(n)}]}})),
        row("PUT /v2.0/ports/{id}", "/v2.0/ports/{ref}", "device_owner network:router_interface (shared: B's port on the shared network)",
            [hidden(&a.port, 404), visible(&b_shared_port, 403), hidden(&admin.port, 404)], 404,
            |_, _| json!({"port": {"device_owner": "network:router_interface"}})),
        row("POST /v2.0/ports", "/v2.0/ports", "security_groups",
            [hidden(&a.sg, 404), None, hidden(&admin.sg, 404)], 404,
            |id, _| json!({"port": {"network_id": b.network, "security_groups": [id]}})),
        row("PUT /v2.0/routers/{id}/add_router_interface", format!("/v2.0/routers/{}/add_router_interface", b.router), "subnet_id",
            [hidden(&a.subnet, 404), visible(&shared_subnet, 400), hidden(&admin.subnet, 404)], 404,
            |id, _| json!({"subnet_id": id})),
        row("PUT /v2.0/routers/{id}/add_router_interface", format!("/v2.0/routers/{}/add_router_interface", b.router), "port_id",
            [hidden(&a.port, 404), hidden(&shared_port, 404), hidden(&admin.port, 404)], 404,
            |id, _| json!({"port_id": id})),
        row("PUT /v2.0/routers/{id}", format!("/v2.0/routers/{}", b.router), "external_gateway_info.network_id (admin's: external)",
            [hidden(&a.network, 404), visible(shared_net, 400), visible(external, 200)], 404,
            |id, _| json!({"router": {"external_gateway_info": {"network_id": id}}})),
        row("POST /v2.0/floatingips", "/v2.0/floatingips", "floating_network_id (admin's: external)",
            [hidden(&a.network, 404), visible(shared_net, 400), visible(external, 201)], 404,
            |id, _| json!({"floatingip": {"floating_network_id": id}})),
        row("POST /v2.0/floatingips", "/v2.0/floatingips", "port_id",
            [hidden(&a.port, 404), hidden(&shared_port, 404), hidden(&admin.port, 404)], 404,
            move |id, _| json!({"floatingip": {"floating_network_id": external, "port_id": id}})),
        row("POST /v2.0/security-group-rules", "/v2.0/security-group-rules", "security_group_id",
            [hidden(&a.sg, 404), None, hidden(&admin.sg, 404)], 404,
            |id, _| json!({"security_group_rule": {"security_group_id": id, "direction": "ingress"}})),
        row("POST /v2.0/security-group-rules", "/v2.0/security-group-rules", "remote_group_id",
            [hidden(&a.sg, 404), None, hidden(&admin.sg, 404)], 404,
            |id, n| json!({"security_group_rule": {"security_group_id": b.sg, "direction": "ingress",
                "protocol": "tcp", "port_range_min": 100 + n, "port_range_max": 100 + n, "remote_group_id": id}})),
    ];

    let mut table = String::from(
        "| route | field | A's object | shared | admin's object | missing |\n|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    let mut n = 0u32;
    for r in &rows {
        n += 1;
        let missing_id = Uuid::new_v4().to_string();
        let missing = r.send(&h, &missing_id, n).await;
        h.settle().await;
        if missing.status.as_u16() != r.missing {
            failures.push(format!(
                "{} {} missing: {} {}",
                r.route, r.field, missing.status, missing.text
            ));
        }
        let missing_message = message(&missing).replace(&missing_id, "<id>");
        let mut cells = Vec::new();
        for case in &r.cases {
            let Some(case) = case else {
                cells.push("—".to_string());
                continue;
            };
            n += 1;
            let got = r.send(&h, &case.id, n).await;
            h.settle().await;
            if got.status.as_u16() != case.status {
                failures.push(format!(
                    "{} {} {}: expected {}, got {} {}",
                    r.route, r.field, case.id, case.status, got.status, got.text
                ));
            }
            if case.hidden && message(&got).replace(&case.id, "<id>") != missing_message {
                failures.push(format!(
                    "{} {} {}: answered unlike a missing object: {:?} vs {:?}",
                    r.route,
                    r.field,
                    case.id,
                    message(&got),
                    message(&missing)
                ));
            }
            cells.push(if case.hidden {
                format!("{} (as missing)", got.status.as_u16())
            } else {
                got.status.as_u16().to_string()
            });
        }
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.route,
            r.field,
            cells.join(" | "),
            missing.status.as_u16()
        ));
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // docs/API.md shows this very table.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md"))
        .expect("docs/API.md");
    assert!(
        doc.contains(&table),
        "docs/API.md does not carry the isolation table as the suite measured it:\n{table}"
    );

    // The batch update gave B's existing member the subnet named (as
    // Octavia), and only the usable one.
    let m = send(
        &h,
        Who::Member(B),
        "GET",
        &format!("{b_members}/{b_member}"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        m.body["member"]["subnet_id"].as_str(),
        Some(shared_subnet.as_str()),
        "{}",
        m.text
    );

    // A's port still belongs to nobody (B never made it a VIP).
    let port = send(
        &h,
        Who::Admin,
        "GET",
        &format!("/v2.0/ports/{}", a.port),
        None,
    )
    .await
    .expect(200);
    assert_eq!(port.body["port"]["device_id"], "", "{}", port.text);
}

// ---- item 1: one kernel address space ----------------------------------------

/// B may no longer build a subnet on the host's own ranges (the first step
/// of the VIP hijack); an administrator still may.
#[tokio::test]
async fn only_an_admin_creates_subnets_on_host_reserved_ranges() {
    let h = Harness::new().await;
    let net = create(
        &h,
        Who::Member(B),
        "/v2.0/networks",
        "network",
        json!({"name": "n"}),
    )
    .await;
    for (cidr, version) in [
        ("127.170.0.0/24", 4),
        ("127.0.0.0/8", 4),
        ("0.0.0.0/8", 4),
        ("0.0.0.0/0", 4),
        ("169.254.169.0/24", 4),
        ("224.0.0.0/24", 4),
        ("240.0.0.0/24", 4),
        ("::1/128", 6),
        ("::ffff:127.0.0.0/104", 6),
        ("fe80::/64", 6),
        ("ff02::/16", 6),
    ] {
        let r = as_b(
            &h,
            "POST",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": version}}),
        )
        .await
        .expect(400);
        assert_eq!(r.body["NeutronError"]["type"], "InvalidInput", "{}", r.text);
        assert!(
            message(&r).contains("host-reserved range"),
            "{cidr}: {}",
            r.text
        );
    }
    as_b(
        &h,
        "POST",
        "/v2.0/subnets",
        json!({"subnet": {"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4}}),
    )
    .await
    .expect(201);
    let admin_net = create(&h, Who::Admin, "/v2.0/networks", "network", json!({})).await;
    send(
        &h,
        Who::Admin,
        "POST",
        "/v2.0/subnets",
        Some(
            json!({"subnet": {"network_id": admin_net, "cidr": "127.171.0.0/24", "ip_version": 4}}),
        ),
    )
    .await
    .expect(201);
}

/// An address held on one subnet of the host's address space is refused on
/// every other such subnet, whatever project or network it belongs to: B
/// can neither take A's VIP address nor squat the addresses A's next load
/// balancer would be given.
#[tokio::test]
async fn host_addresses_are_unique_across_projects_and_networks() {
    let h = Harness::new().await;
    // A's load balancer on host-subnet (127.170.0.0/24).
    let a_lb = send(
        &h,
        Who::Member(A),
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": h.subnet_id}})),
    )
    .await
    .expect(201);
    h.settle().await;
    let a_vip = a_lb.body["loadbalancer"]["vip_address"]
        .as_str()
        .unwrap()
        .to_string();
    // An overlapping loopback subnet of B's (an administrator made it: B
    // may not), on B's own network.
    let b_net = create(
        &h,
        Who::Admin,
        "/v2.0/networks",
        "network",
        json!({"project_id": B}),
    )
    .await;
    let b_subnet = create(
        &h,
        Who::Admin,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": b_net, "cidr": "127.170.0.0/24", "ip_version": 4, "project_id": B}),
    )
    .await;
    // B asks for A's VIP address: 409 naming only B's own subnet.
    let r = as_b(
        &h,
        "POST",
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": b_subnet, "vip_address": a_vip}}),
    )
    .await
    .error(409, "already allocated");
    assert!(!r.text.contains(&h.subnet_id.to_string()), "{}", r.text);
    // Through a Neutron port: the same.
    let r = as_b(
        &h,
        "POST",
        "/v2.0/ports",
        json!({"port": {"network_id": b_net, "fixed_ips": [{"ip_address": a_vip}]}}),
    )
    .await
    .expect(409);
    assert_eq!(r.body["NeutronError"]["type"], "IpAddressAlreadyAllocated");
    // B squats the next addresses on its subnet ...
    let mut squatted = Vec::new();
    for _ in 0..4 {
        let r = as_b(
            &h,
            "POST",
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": b_subnet}}),
        )
        .await
        .expect(201);
        h.settle().await;
        let vip = r.body["loadbalancer"]["vip_address"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(vip, a_vip);
        squatted.push(vip);
    }
    // ... and A's next load balancer is given none of them.
    let next = send(
        &h,
        Who::Member(A),
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": h.subnet_id}})),
    )
    .await
    .expect(201);
    let next_vip = next.body["loadbalancer"]["vip_address"].as_str().unwrap();
    assert!(
        !squatted.iter().any(|v| v == next_vip) && next_vip != a_vip,
        "{next_vip} given twice ({squatted:?}, {a_vip})"
    );
}

/// With the netns driver only loopback subnets are the host's own: two
/// projects' private subnets may overlap and hold the same address, as in
/// Neutron.
#[tokio::test]
async fn namespaced_subnets_may_overlap_under_the_netns_driver() {
    let netns = Harness::with_settings(|s| {
        s.host_address_space = statera_model::addressing::HostAddressSpace::LoopbackSubnets
    })
    .await;
    assert_eq!(same_address_in_two_projects(&netns).await, [201, 201]);
    // Under the host driver the second one is refused.
    let host = Harness::new().await;
    assert_eq!(same_address_in_two_projects(&host).await, [201, 409]);
}

/// A and B each make a network with 10.20.0.0/24 and ask for a port at
/// 10.20.0.7 on it: the two answers.
async fn same_address_in_two_projects(h: &Harness) -> Vec<u16> {
    let mut statuses = Vec::new();
    for who in [Who::Member(A), Who::Member(B)] {
        let net = create(h, who, "/v2.0/networks", "network", json!({})).await;
        create(
            h,
            who,
            "/v2.0/subnets",
            "subnet",
            json!({"network_id": net, "cidr": "10.20.0.0/24", "ip_version": 4}),
        )
        .await;
        let r = send(
            h,
            who,
            "POST",
            "/v2.0/ports",
            Some(json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": "10.20.0.7"}]}})),
        )
        .await;
        statuses.push(r.status.as_u16());
    }
    statuses
}

// ---- item 3: members aimed at the host ------------------------------------------

async fn member_pool(h: &Harness, who: Who) -> String {
    let lb = create(
        h,
        who,
        "/v2/lbaas/loadbalancers",
        "loadbalancer",
        json!({"vip_subnet_id": h.subnet_id}),
    )
    .await;
    create(
        h,
        who,
        "/v2/lbaas/pools",
        "pool",
        json!({"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
    )
    .await
}

#[tokio::test]
async fn members_and_monitors_never_point_at_the_host() {
    let h = Harness::new().await;
    let pool = member_pool(&h, Who::Member(B)).await;
    let path = format!("/v2/lbaas/pools/{pool}/members");
    let refused: &[(Value, &str)] = &[
        (
            json!({"address": "169.254.169.254", "protocol_port": 80}),
            "169.254.169.254 is not a valid option for member address",
        ),
        (
            json!({"address": "::ffff:169.254.169.254", "protocol_port": 80}),
            "is not a valid option for member address",
        ),
        (
            json!({"address": "10.0.0.5", "protocol_port": 80, "monitor_address": "169.254.169.254"}),
            "169.254.169.254 is not a valid option for member monitor_address",
        ),
        (
            json!({"address": "0.0.0.0", "protocol_port": 80}),
            "0.0.0.0 is not a valid option for member address",
        ),
        (
            json!({"address": "::", "protocol_port": 80}),
            ":: is not a valid option for member address",
        ),
        (
            json!({"address": "::ffff:0.0.0.0", "protocol_port": 80}),
            "is not a valid option for member address",
        ),
        // The API's own socket (the harness says 127.0.0.1:9876).
        (
            json!({"address": "127.0.0.1", "protocol_port": 9876}),
            "127.0.0.1:9876 is not a valid option for member address",
        ),
        (
            json!({"address": "::ffff:127.0.0.1", "protocol_port": 9876}),
            "is not a valid option for member address",
        ),
        (
            json!({"address": "10.0.0.5", "protocol_port": 80, "monitor_address": "127.0.0.1", "monitor_port": 9876}),
            "127.0.0.1:9876 is not a valid option for member monitor_address",
        ),
        (
            json!({"address": "127.0.0.1", "protocol_port": 80, "monitor_port": 9876}),
            "127.0.0.1:9876 is not a valid option for member monitor_address",
        ),
    ];
    for (body, needle) in refused {
        as_b(&h, "POST", &path, json!({ "member": body }))
            .await
            .error(400, needle);
        // The batch update applies the same rules.
        as_b(&h, "PUT", &path, json!({ "members": [body] }))
            .await
            .error(400, "is not a valid option for member");
    }
    // Other ports of the API's address, and other loopback addresses on its
    // port, are ordinary members.
    for body in [
        json!({"address": "127.0.0.1", "protocol_port": 9877}),
        json!({"address": "127.0.0.2", "protocol_port": 9876}),
    ] {
        as_b(&h, "POST", &path, json!({ "member": body }))
            .await
            .expect(201);
        h.settle().await;
    }
    // An update cannot point an accepted member's checks at the host either.
    let r = as_b(
        &h,
        "POST",
        &path,
        json!({"member": {"address": "10.0.0.9", "protocol_port": 80}}),
    )
    .await
    .expect(201);
    h.settle().await;
    let m = id(&r.body["member"]);
    for body in [
        json!({"monitor_address": "169.254.169.254"}),
        json!({"monitor_address": "0.0.0.0"}),
        json!({"monitor_address": "127.0.0.1", "monitor_port": 9876}),
    ] {
        as_b(&h, "PUT", &format!("{path}/{m}"), json!({ "member": body }))
            .await
            .error(400, "is not a valid option for member monitor_address");
    }
    // The fully populated create applies them too.
    as_b(
        &h,
        "POST",
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": h.subnet_id, "pools": [
            {"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
             "members": [{"address": "::ffff:127.0.0.1", "protocol_port": 9876}]}]}}),
    )
    .await
    .error(400, "is not a valid option for member address");
}

/// When the API listens on every address, every address of this host on its
/// port is the API; other hosts on that port are ordinary members.
#[tokio::test]
async fn an_api_on_every_address_is_guarded_on_every_local_address() {
    let h = Harness::with_settings(|s| s.own_sockets = vec!["0.0.0.0:9876".parse().unwrap()]).await;
    let pool = member_pool(&h, Who::Member(B)).await;
    let path = format!("/v2/lbaas/pools/{pool}/members");
    for address in ["127.0.0.1", "127.44.0.9", "::1", "::ffff:127.0.0.1"] {
        as_b(
            &h,
            "POST",
            &path,
            json!({"member": {"address": address, "protocol_port": 9876}}),
        )
        .await
        .error(400, "is not a valid option for member address");
    }
    // 192.0.2.0/24 is documentation space: no address of this host.
    as_b(
        &h,
        "POST",
        &path,
        json!({"member": {"address": "192.0.2.10", "protocol_port": 9876}}),
    )
    .await
    .expect(201);
}

/// `reserved_ips` is the deployment's list (Octavia's setting).
#[tokio::test]
async fn reserved_ips_come_from_the_settings() {
    let h = Harness::with_settings(|s| s.reserved_ips = vec!["10.66.0.1".parse().unwrap()]).await;
    let pool = member_pool(&h, Who::Member(B)).await;
    let path = format!("/v2/lbaas/pools/{pool}/members");
    as_b(
        &h,
        "POST",
        &path,
        json!({"member": {"address": "10.66.0.1", "protocol_port": 80}}),
    )
    .await
    .error(400, "10.66.0.1 is not a valid option for member address");
    as_b(
        &h,
        "POST",
        &path,
        json!({"member": {"address": "169.254.169.254", "protocol_port": 80}}),
    )
    .await
    .expect(201);
}

// ---- item 4: header and message leaks ---------------------------------------

#[tokio::test]
async fn an_empty_roles_header_gives_no_rights() {
    let h = Harness::new().await;
    let a_lb = h.lb().await;
    for roles in ["", ","] {
        let hdrs = [("x-project-id", B), ("x-roles", roles)];
        h.raw(
            "GET",
            &format!("/v2/lbaas/loadbalancers/{a_lb}"),
            &hdrs,
            None,
        )
        .await
        .expect(403);
        h.raw("GET", "/v2/lbaas/loadbalancers", &hdrs, None)
            .await
            .expect(403);
        h.raw(
            "POST",
            "/v2/lbaas/flavorprofiles",
            &hdrs,
            Some(
                json!({"flavorprofile": {"name": "x", "provider_name": "native", "flavor_data": "{}"}})
                    .to_string(),
            ),
        )
        .await
        .expect(403);
    }
    // Without the header, noauth's default (admin) still applies.
    h.raw("GET", &format!("/v2/lbaas/loadbalancers/{a_lb}"), &[], None)
        .await
        .expect(200);
}

/// A conflict about another project's object does not name it; about the
/// caller's own object it does, as Octavia does.
#[tokio::test]
async fn conflicts_do_not_name_another_projects_objects() {
    let h = Harness::new().await;
    // B's shared network; A puts a load balancer on it.
    let b_net = create(
        &h,
        Who::Admin,
        "/v2.0/networks",
        "network",
        json!({"project_id": B, "shared": true}),
    )
    .await;
    let b_subnet = create(
        &h,
        Who::Member(B),
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": b_net, "cidr": "10.30.0.0/24", "ip_version": 4}),
    )
    .await;
    let a_lb = send(
        &h,
        Who::Member(A),
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_subnet_id": b_subnet}})),
    )
    .await
    .expect(201);
    h.settle().await;
    let a_lb_id = id(&a_lb.body["loadbalancer"]);
    let vip_port = a_lb.body["loadbalancer"]["vip_port_id"]
        .as_str()
        .unwrap()
        .to_string();

    // B may see the VIP port (its network), but not whose load balancer it is.
    let r = as_b(
        &h,
        "POST",
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_port_id": vip_port}}),
    )
    .await
    .error(409, "already in use");
    assert!(!r.text.contains(&a_lb_id), "{}", r.text);
    let r = send(
        &h,
        Who::Member(B),
        "DELETE",
        &format!("/v2.0/subnets/{b_subnet}"),
        None,
    )
    .await
    .expect(409);
    assert!(!r.text.contains(&a_lb_id), "{}", r.text);
    let r = send(
        &h,
        Who::Member(B),
        "DELETE",
        &format!("/v2.0/ports/{vip_port}"),
        None,
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(!r.text.contains(&a_lb_id), "{}", r.text);

    // A itself is told which load balancer.
    let r = send(
        &h,
        Who::Member(A),
        "POST",
        "/v2/lbaas/loadbalancers",
        Some(json!({"loadbalancer": {"vip_port_id": vip_port}})),
    )
    .await;
    // A does not own B's network and the port is A's: usable, and in use.
    let r = r.error(409, "already in use");
    assert!(r.text.contains(&a_lb_id), "{}", r.text);
}

/// Octavia's global observer role reads every project's load balancers, and
/// gives nothing on the Neutron side: B with it still cannot see, or name,
/// A's network objects.
#[tokio::test]
async fn the_octavia_observer_role_gives_nothing_in_neutron() {
    let h = Harness::new().await;
    let a = objects(&h, Who::Member(A), "10.1.0.0/24", 80).await;
    let b_router = create(&h, Who::Member(B), "/v2.0/routers", "router", json!({})).await;
    let hdrs = [
        ("x-project-id", B),
        ("x-roles", "member,load-balancer_global_observer"),
    ];
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let h = &h;
        async move {
            h.raw(method, &path, &hdrs, body.map(|b| b.to_string()))
                .await
        }
    };
    call("GET", format!("/v2/lbaas/loadbalancers/{}", a.lb), None)
        .await
        .expect(200);
    for path in [
        format!("/v2.0/networks/{}", a.network),
        format!("/v2.0/subnets/{}", a.subnet),
        format!("/v2.0/ports/{}", a.port),
        format!("/v2.0/security-groups/{}", a.sg),
        format!("/v2.0/routers/{}", a.router),
    ] {
        call("GET", path, None).await.expect(404);
    }
    let listed = call("GET", "/v2.0/networks".to_string(), None)
        .await
        .expect(200);
    assert!(!listed.text.contains(&a.network), "{}", listed.text);
    call(
        "PUT",
        format!("/v2.0/routers/{b_router}/add_router_interface"),
        Some(json!({"subnet_id": a.subnet})),
    )
    .await
    .expect(404);
    call(
        "POST",
        "/v2/lbaas/loadbalancers".to_string(),
        Some(json!({"loadbalancer": {"vip_subnet_id": a.subnet}})),
    )
    .await
    .error(400, "not found");
}

// ---- Neutron's port attribute policies; special addresses ------------------------

/// The 403 Neutron gives for attribute `rule`.
fn policy_refusal(r: Resp, rule: &str) {
    let r = r.expect(403);
    assert_eq!(
        r.body["NeutronError"]["type"], "PolicyNotAuthorized",
        "{}",
        r.text
    );
    assert_eq!(
        message(&r),
        format!("(rule:{rule}) is disallowed by policy"),
        "{}",
        r.text
    );
}

/// B (role member) cannot take the gateway of the administrator's shared
/// host subnet: not by a router-interface port, not by naming the address,
/// not by updating its own port, not through its router. On its own network
/// the same requests are its own business.
#[tokio::test]
async fn a_tenant_takes_no_gateway_or_network_attribute_on_a_shared_network() {
    let h = Harness::new().await;
    let (host_net, host_subnet) = (h.network_id.to_string(), h.subnet_id.to_string());
    let gateway = "127.170.0.1";
    let router_port = json!({"port": {"network_id": host_net,
        "device_owner": "network:router_interface",
        "fixed_ips": [{"subnet_id": host_subnet, "ip_address": gateway}]}});
    policy_refusal(
        as_b(&h, "POST", "/v2.0/ports", router_port.clone()).await,
        "create_port:device_owner",
    );
    policy_refusal(
        as_b(
            &h,
            "POST",
            "/v2.0/ports",
            json!({"port": {"network_id": host_net, "fixed_ips": [{"ip_address": "127.170.0.77"}]}}),
        )
        .await,
        "create_port:fixed_ips:ip_address",
    );
    // Naming only the subnet stays allowed (rule:shared).
    let port = create(
        &h,
        Who::Member(B),
        "/v2.0/ports",
        "port",
        json!({"network_id": host_net, "fixed_ips": [{"subnet_id": host_subnet}]}),
    )
    .await;
    let port_path = format!("/v2.0/ports/{port}");
    policy_refusal(
        as_b(
            &h,
            "PUT",
            &port_path,
            json!({"port": {"device_owner": "network:router_interface",
                "fixed_ips": [{"subnet_id": host_subnet, "ip_address": gateway}]}}),
        )
        .await,
        "update_port:device_owner",
    );
    policy_refusal(
        as_b(
            &h,
            "PUT",
            &port_path,
            json!({"port": {"fixed_ips": [{"ip_address": gateway}]}}),
        )
        .await,
        "update_port:fixed_ips:ip_address",
    );
    policy_refusal(
        as_b(
            &h,
            "PUT",
            &port_path,
            json!({"port": {"port_security_enabled": false}}),
        )
        .await,
        "update_port:port_security_enabled",
    );
    // A device owner outside network:* is anyone's to set.
    as_b(
        &h,
        "PUT",
        &port_path,
        json!({"port": {"device_owner": "compute:nova"}}),
    )
    .await
    .expect(200);
    // B's router cannot take the shared subnet through B's own port either
    // (as by subnet), nor through the administrator's port.
    let b_router = create(&h, Who::Member(B), "/v2.0/routers", "router", json!({})).await;
    let add = format!("/v2.0/routers/{b_router}/add_router_interface");
    // The same answer as naming the subnet.
    let by_port = as_b(&h, "PUT", &add, json!({"port_id": port}))
        .await
        .expect(400);
    let by_subnet = as_b(&h, "PUT", &add, json!({"subnet_id": host_subnet}))
        .await
        .expect(400);
    assert_eq!(by_port.body, by_subnet.body);
    assert!(
        message(&by_port).contains(&format!(
            "Cannot add interface to router because subnet {host_subnet} is not owned by \
             project making the request"
        )),
        "{}",
        by_port.text
    );
    // Nothing of B's holds the gateway: the administrator's router takes it.
    let admin_router = create(&h, Who::Admin, "/v2.0/routers", "router", json!({})).await;
    send(
        &h,
        Who::Admin,
        "PUT",
        &format!("/v2.0/routers/{admin_router}/add_router_interface"),
        Some(json!({"subnet_id": host_subnet})),
    )
    .await
    .expect(200);
    // The administrator may set these attributes on its network.
    send(
        &h,
        Who::Admin,
        "POST",
        "/v2.0/ports",
        Some(
            json!({"port": {"network_id": host_net, "mac_address": "fa:16:3e:00:02:01",
            "port_security_enabled": false, "fixed_ips": [{"ip_address": "127.170.0.78"}]}}),
        ),
    )
    .await
    .expect(201);

    // On B's own network, B is the network owner: all of it is allowed.
    let net = create(&h, Who::Member(B), "/v2.0/networks", "network", json!({})).await;
    let sub = create(
        &h,
        Who::Member(B),
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": net, "cidr": "10.50.0.0/24", "ip_version": 4}),
    )
    .await;
    let gateway_port = create(
        &h,
        Who::Member(B),
        "/v2.0/ports",
        "port",
        json!({"network_id": net, "device_owner": "network:router_interface",
            "fixed_ips": [{"subnet_id": sub, "ip_address": "10.50.0.1"}]}),
    )
    .await;
    // A port B sees on its network but does not own (the administrator's)
    // is no port B may make a router interface: answered as a missing one.
    let admins = create(
        &h,
        Who::Admin,
        "/v2.0/ports",
        "port",
        json!({"network_id": net}),
    )
    .await;
    send(
        &h,
        Who::Member(B),
        "GET",
        &format!("/v2.0/ports/{admins}"),
        None,
    )
    .await
    .expect(200);
    let foreign = as_b(&h, "PUT", &add, json!({"port_id": admins}))
        .await
        .expect(404);
    let missing_id = Uuid::new_v4().to_string();
    let missing = as_b(&h, "PUT", &add, json!({"port_id": missing_id}))
        .await
        .expect(404);
    assert_eq!(
        message(&foreign).replace(&admins, "<id>"),
        message(&missing).replace(&missing_id, "<id>")
    );
    // Only a router interface holds a gateway: the port cannot stop being
    // one while it keeps the address, nor become a VIP.
    let r = as_b(
        &h,
        "PUT",
        &format!("/v2.0/ports/{gateway_port}"),
        json!({"port": {"device_owner": ""}}),
    )
    .await
    .expect(409);
    assert_eq!(
        r.body["NeutronError"]["type"], "IpAddressAlreadyAllocated",
        "{}",
        r.text
    );
    as_b(
        &h,
        "POST",
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_port_id": gateway_port}}),
    )
    .await
    .error(409, "10.50.0.1 already allocated");
    as_b(
        &h,
        "PUT",
        &format!("/v2.0/ports/{gateway_port}"),
        json!({"port": {"device_owner": "", "fixed_ips": [{"ip_address": "10.50.0.20"}]}}),
    )
    .await
    .expect(200);
    let own = create(
        &h,
        Who::Member(B),
        "/v2.0/ports",
        "port",
        json!({"network_id": net, "mac_address": "fa:16:3e:00:02:02",
            "port_security_enabled": false, "fixed_ips": [{"ip_address": "10.50.0.9"}]}),
    )
    .await;
    as_b(
        &h,
        "PUT",
        &format!("/v2.0/ports/{own}"),
        json!({"port": {"fixed_ips": [{"ip_address": "10.50.0.10"}], "port_security_enabled": true}}),
    )
    .await
    .expect(200);
}

/// A VIP is a host address of its subnet: the network and broadcast
/// addresses are refused as the port API refuses them, through the subnet
/// and through the network.
#[tokio::test]
async fn a_vip_is_never_a_subnets_network_or_broadcast_address() {
    let h = Harness::new().await;
    let lbs = "/v2/lbaas/loadbalancers";
    for address in ["127.170.0.255", "127.170.0.0"] {
        as_b(
            &h,
            "POST",
            lbs,
            json!({"loadbalancer": {"vip_subnet_id": h.subnet_id, "vip_address": address}}),
        )
        .await
        .error(
            400,
            &format!("vip_address {address} is not a usable host address of subnet"),
        );
        as_b(
            &h,
            "POST",
            lbs,
            json!({"loadbalancer": {"vip_network_id": h.network_id, "vip_address": address}}),
        )
        .await
        .expect(400);
        // The port API agrees.
        let r = send(
            &h,
            Who::Admin,
            "POST",
            "/v2.0/ports",
            Some(json!({"port": {"network_id": h.network_id,
                "fixed_ips": [{"subnet_id": h.subnet_id, "ip_address": address}]}})),
        )
        .await
        .expect(400);
        assert_eq!(
            r.body["NeutronError"]["type"], "InvalidIpForSubnet",
            "{}",
            r.text
        );
    }
    // The last host address is an ordinary VIP.
    let r = as_b(
        &h,
        "POST",
        lbs,
        json!({"loadbalancer": {"vip_subnet_id": h.subnet_id, "vip_address": "127.170.0.254"}}),
    )
    .await
    .expect(201);
    assert_eq!(r.body["loadbalancer"]["vip_address"], "127.170.0.254");
}
