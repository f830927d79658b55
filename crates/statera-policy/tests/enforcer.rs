//! The enforcer with Octavia's and Neutron's defaults, and with operator
//! policy files (the legacy "owner or admin" fixture, JSON, bad files).

use statera_model::identity::Caller;
use statera_policy::{Enforcer, PolicyError, Target};
use std::path::{Path, PathBuf};

fn caller(project: &str, roles: &[&str]) -> Caller {
    Caller {
        user_id: Some("u1".into()),
        project_id: Some(project.into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Caller::default()
    }
}

fn target(project: &str) -> Target {
    [("project_id".to_string(), project.to_string())].into()
}

const GET_LB: &str = "os_load-balancer_api:loadbalancer:get_one";
const POST_LB: &str = "os_load-balancer_api:loadbalancer:post";
const ALL_GLOBAL: &str = "os_load-balancer_api:loadbalancer:get_all-global";
const PUT_QUOTA: &str = "os_load-balancer_api:quota:put";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// A file in a directory of this test's own (tests run in parallel).
fn temp_file(test: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("statera-policy-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn octavia_defaults_accept_keystone_and_load_balancer_roles() {
    let e = Enforcer::defaults();
    let allow = |rule: &str, roles: &[&str], project: &str| {
        e.enforce_caller(rule, &target("p1"), &caller(project, roles))
    };
    // Keystone default roles (member implies reader).
    assert!(allow(GET_LB, &["reader"], "p1"));
    assert!(allow(GET_LB, &["member"], "p1"));
    assert!(allow(POST_LB, &["member"], "p1"));
    assert!(!allow(POST_LB, &["reader"], "p1"));
    assert!(!allow(GET_LB, &["member"], "p2"));
    assert!(allow(GET_LB, &["admin"], "p2"));
    // Octavia's own roles.
    assert!(allow(GET_LB, &["load-balancer_observer"], "p1"));
    assert!(!allow(POST_LB, &["load-balancer_observer"], "p1"));
    assert!(allow(POST_LB, &["load-balancer_member"], "p1"));
    assert!(!allow(POST_LB, &["load-balancer_member"], "p2"));
    assert!(allow(GET_LB, &["load-balancer_global_observer"], "p2"));
    assert!(allow(ALL_GLOBAL, &["load-balancer_global_observer"], "p2"));
    assert!(!allow(POST_LB, &["load-balancer_global_observer"], "p2"));
    assert!(allow(POST_LB, &["load-balancer_admin"], "p2"));
    assert!(allow(PUT_QUOTA, &["load-balancer_quota_admin"], "p2"));
    assert!(!allow(PUT_QUOTA, &["member"], "p1"));
    // No roles: nothing.
    assert!(!allow(GET_LB, &[], "p1"));
    // Roles compare case-insensitively, as oslo does.
    assert!(allow(POST_LB, &["Member"], "p1"));
}

#[test]
fn neutron_defaults_by_name() {
    let e = Enforcer::defaults();
    let mut t = target("p1");
    t.insert("shared".into(), "False".into());
    t.insert("router:external".into(), "False".into());
    assert!(e.enforce_caller("get_network", &t, &caller("p1", &["reader"])));
    assert!(!e.enforce_caller("get_network", &t, &caller("p2", &["member"])));
    t.insert("shared".into(), "True".into());
    assert!(e.enforce_caller("get_network", &t, &caller("p2", &["member"])));
    assert!(!e.enforce_caller("create_network:shared", &t, &caller("p1", &["member"])));
    assert!(e.enforce_caller("create_network:shared", &t, &caller("p1", &["admin"])));
    // A port on someone else's shared network: a network: device owner or a
    // chosen address needs the network's owner.
    let mut port: Target = target("p2");
    port.insert("network:project_id".into(), "p1".into());
    port.insert("shared".into(), "True".into());
    port.insert("device_owner".into(), "network:router_interface".into());
    let b = caller("p2", &["member"]);
    assert!(e.enforce_caller("create_port", &port, &b));
    assert!(!e.enforce_caller("create_port:device_owner", &port, &b));
    assert!(!e.enforce_caller("create_port:fixed_ips:ip_address", &port, &b));
    assert!(e.enforce_caller("create_port:fixed_ips:subnet_id", &port, &b));
    port.insert("device_owner".into(), "compute:nova".into());
    assert!(e.enforce_caller("create_port:device_owner", &port, &b));
    let a = caller("p1", &["member"]);
    port.insert("device_owner".into(), "network:router_interface".into());
    assert!(e.enforce_caller("create_port:device_owner", &port, &a));
    // Security group rules follow the group's owner.
    let sg: Target = [("security_group:project_id".to_string(), "p1".to_string())].into();
    assert!(e.enforce_caller("create_security_group_rule", &sg, &a));
    assert!(!e.enforce_caller("create_security_group_rule", &sg, &b));
}

#[test]
fn legacy_owner_or_admin_file_is_expressible() {
    let e = Enforcer::load(Some(&fixture("legacy-owner-or-admin.yaml"))).unwrap();
    // Any role (even none) in the owning project reads and writes.
    assert!(e.enforce_caller(POST_LB, &target("p1"), &caller("p1", &[])));
    assert!(e.enforce_caller(GET_LB, &target("p1"), &caller("p1", &["whatever"])));
    assert!(!e.enforce_caller(GET_LB, &target("p1"), &caller("p2", &["member"])));
    assert!(!e.enforce_caller(
        ALL_GLOBAL,
        &target("p1"),
        &caller("p2", &["load-balancer_global_observer"])
    ));
    assert!(e.enforce_caller(ALL_GLOBAL, &target("p1"), &caller("p2", &["admin"])));
    // context_is_admin is overridden: load-balancer_admin is no longer admin.
    assert!(!e.enforce_caller(
        PUT_QUOTA,
        &target("p1"),
        &caller("p2", &["load-balancer_admin"])
    ));
    let overridden: Vec<&str> = e
        .rules()
        .filter(|r| r.overridden)
        .map(|r| r.name.as_str())
        .collect();
    assert!(overridden.contains(&"load-balancer:read") && overridden.contains(&"admin_or_owner"));
    assert_eq!(overridden.len(), 8);
}

#[test]
fn json_files_and_plain_yaml_scalars_are_read() {
    let p = temp_file(
        "json",
        "p.json",
        r#"{"os_load-balancer_api:loadbalancer:get_one": "!"}"#,
    );
    let e = Enforcer::load(Some(&p)).unwrap();
    assert!(!e.enforce_caller(GET_LB, &target("p1"), &caller("p1", &["admin"])));
    let p = temp_file(
        "json",
        "p.yaml",
        "# comment\nos_load-balancer_api:loadbalancer:get_one: role:auditor or not role:x  # trailing\n'load-balancer:write': '@'\n",
    );
    let e = Enforcer::load(Some(&p)).unwrap();
    assert!(e.enforce_caller(GET_LB, &target("p1"), &caller("p9", &["auditor"])));
    assert!(e.enforce_caller(POST_LB, &target("p1"), &caller("p9", &[])));
    std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let cases = [
        (
            "unknown.yaml",
            "\"load-balancer:read\": \"rule:no-such-rule\"\n",
            "unknown rule \"no-such-rule\"",
        ),
        (
            "syntax.yaml",
            "\"load-balancer:read\": \"role:a or\"\n",
            "load-balancer:read",
        ),
        (
            "paren.yaml",
            "\"load-balancer:read\": \"(role:a\"\n",
            "unbalanced",
        ),
        (
            "cycle.yaml",
            "\"a\": \"rule:b\"\n\"b\": \"rule:a\"\n",
            "cycle",
        ),
        ("nested.yaml", "rules:\n  a: '@'\n", "flat mapping"),
        ("twice.yaml", "a: '@'\na: '!'\n", "twice"),
        ("notjson.json", "{\"a\": 1}", "must be a string"),
    ];
    for (name, text, needle) in cases {
        let p = temp_file("bad", name, text);
        let err = Enforcer::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains(needle), "{name}: {err}");
        std::fs::remove_file(&p).unwrap();
        let _ = std::fs::remove_dir(p.parent().unwrap());
    }
    let missing = Enforcer::load(Some(Path::new("no/such/policy.yaml"))).unwrap_err();
    assert!(matches!(missing, PolicyError::Read { .. }));
}

#[test]
fn every_octavia_api_rule_is_defined() {
    let e = Enforcer::defaults();
    let resources = [
        "loadbalancer",
        "listener",
        "pool",
        "member",
        "healthmonitor",
        "l7policy",
        "l7rule",
        "quota",
        "provider",
        "flavor",
        "flavor-profile",
        "availability-zone",
        "availability-zone-profile",
        "amphora",
    ];
    for r in resources {
        assert!(e.knows(&format!("os_load-balancer_api:{r}:get_all")), "{r}");
    }
    for base in [
        "context_is_admin",
        "load-balancer:read",
        "load-balancer:write",
        "load-balancer:read-global",
        "load-balancer:read-quota",
        "load-balancer:write-quota",
        "load-balancer:admin",
    ] {
        assert!(e.knows(base), "{base}");
    }
}

#[test]
fn the_listing_is_a_policy_file_of_the_effective_rules() {
    let e = Enforcer::load(Some(&fixture("legacy-owner-or-admin.yaml"))).unwrap();
    let listing = e.listing();
    assert!(listing.contains("\"load-balancer:read\": \"rule:admin_or_owner\"  # overridden\n"));
    assert!(
        listing.contains(
            "\"os_load-balancer_api:loadbalancer:get_one\": \"rule:load-balancer:read\"\n"
        )
    );
    let parsed = statera_policy::parse_file(&listing).unwrap();
    assert_eq!(parsed.len(), e.rules().count());
    for ((name, check), rule) in parsed.iter().zip(e.rules()) {
        assert_eq!((name, check), (&rule.name, &rule.check_str));
    }
}

/// What one decision costs (run: `cargo test --release -p statera-policy
/// --test enforcer -- --ignored --nocapture`): the credentials once per
/// request, then the rule of the route.
#[test]
#[ignore = "a measurement, not a check"]
fn cost_of_a_decision() {
    let e = Enforcer::defaults();
    let c = caller("p1", &["member"]);
    let t = target("p1");
    let n = 200_000u32;
    let start = std::time::Instant::now();
    let mut allowed = 0u32;
    for _ in 0..n {
        let creds = e.credentials(&c);
        allowed += u32::from(e.enforce(GET_LB, &t, &creds));
    }
    let per = start.elapsed() / n;
    assert_eq!(allowed, n);
    println!("credentials + {GET_LB}: {per:?} per request");
    let creds = e.credentials(&c);
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(e.enforce("create_port:fixed_ips:ip_address", &t, &creds));
    }
    println!(
        "create_port:fixed_ips:ip_address alone: {:?}",
        start.elapsed() / n
    );
}
