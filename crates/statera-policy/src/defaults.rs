//! The default rules, by the names Octavia and Neutron give them.
//!
//! Octavia's current defaults accept both the Keystone default roles
//! (`reader`/`member`/`admin`, owner checks on the project) and Octavia's own
//! `load-balancer_*` roles: Octavia declares the latter as the deprecated
//! alternative of each base rule, and oslo.policy accepts either while new
//! defaults are not enforced. Each base rule below is that union written out.
//!
//! One process serves both APIs, so both rule sets live in one namespace;
//! their names do not collide except `context_is_admin`, which both read (an
//! `admin` or `load-balancer_admin` is the cloud admin for both, as before).
//! Rules named `statera:*` are Statera's own (no Octavia/Neutron name exists).

/// Which API a default rule belongs to (for `statera policy list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Common,
    Octavia,
    Neutron,
    Keystone,
    Barbican,
    Statera,
}

const LB: &str = "os_load-balancer_api";

/// Octavia's base rules (what every API rule refers to).
const OCTAVIA_BASE: &[(&str, &str)] = &[
    (
        "project-member",
        "role:member and project_id:%(project_id)s",
    ),
    (
        "project-reader",
        "role:reader and project_id:%(project_id)s",
    ),
    ("service", "role:service"),
    ("load-balancer:owner", "project_id:%(project_id)s"),
    (
        "load-balancer:admin",
        "is_admin:True or role:admin or role:load-balancer_admin",
    ),
    (
        "load-balancer:global_observer",
        "role:admin or role:load-balancer_global_observer",
    ),
    (
        "load-balancer:member_and_owner",
        "rule:project-member or (role:load-balancer_member and rule:load-balancer:owner)",
    ),
    (
        "load-balancer:observer_and_owner",
        "rule:project-reader or (role:load-balancer_observer and rule:load-balancer:owner)",
    ),
    (
        "load-balancer:quota-admin",
        "role:admin or role:load-balancer_quota_admin",
    ),
    (
        "load-balancer:read",
        "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer \
         or rule:load-balancer:member_and_owner or rule:load-balancer:admin",
    ),
    (
        "load-balancer:read-global",
        "rule:load-balancer:global_observer or rule:load-balancer:admin",
    ),
    (
        "load-balancer:write",
        "rule:load-balancer:member_and_owner or rule:load-balancer:admin",
    ),
    (
        "load-balancer:read-quota",
        "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer \
         or rule:load-balancer:member_and_owner or rule:load-balancer:quota-admin \
         or rule:load-balancer:admin",
    ),
    (
        "load-balancer:read-quota-global",
        "rule:load-balancer:global_observer or rule:load-balancer:quota-admin \
         or rule:load-balancer:admin",
    ),
    (
        "load-balancer:write-quota",
        "rule:load-balancer:quota-admin or rule:load-balancer:admin",
    ),
];

const READ: &str = "rule:load-balancer:read";
const READ_GLOBAL: &str = "rule:load-balancer:read-global";
const WRITE: &str = "rule:load-balancer:write";
const ADMIN: &str = "rule:load-balancer:admin";
const READ_QUOTA: &str = "rule:load-balancer:read-quota";
const READ_QUOTA_GLOBAL: &str = "rule:load-balancer:read-quota-global";
const WRITE_QUOTA: &str = "rule:load-balancer:write-quota";

/// Octavia's API rules: (resource, action, base rule).
const OCTAVIA_API: &[(&str, &str, &str)] = &[
    ("loadbalancer", "get_all", READ),
    ("loadbalancer", "get_all-global", READ_GLOBAL),
    ("loadbalancer", "post", WRITE),
    ("loadbalancer", "post:vip_sg_ids", WRITE),
    ("loadbalancer", "get_one", READ),
    ("loadbalancer", "put", WRITE),
    ("loadbalancer", "put:vip_sg_ids", WRITE),
    ("loadbalancer", "delete", WRITE),
    ("loadbalancer", "get_stats", READ),
    ("loadbalancer", "get_status", READ),
    ("loadbalancer", "put_failover", ADMIN),
    ("listener", "get_all", READ),
    ("listener", "get_all-global", READ_GLOBAL),
    ("listener", "post", WRITE),
    ("listener", "get_one", READ),
    ("listener", "put", WRITE),
    ("listener", "delete", WRITE),
    ("listener", "get_stats", READ),
    ("pool", "get_all", READ),
    ("pool", "get_all-global", READ_GLOBAL),
    ("pool", "post", WRITE),
    ("pool", "get_one", READ),
    ("pool", "put", WRITE),
    ("pool", "delete", WRITE),
    (
        "member",
        "get_all",
        "rule:load-balancer:read or rule:service",
    ),
    ("member", "post", WRITE),
    ("member", "get_one", READ),
    ("member", "put", WRITE),
    ("member", "delete", WRITE),
    ("healthmonitor", "get_all", READ),
    ("healthmonitor", "get_all-global", READ_GLOBAL),
    ("healthmonitor", "post", WRITE),
    ("healthmonitor", "get_one", READ),
    ("healthmonitor", "put", WRITE),
    ("healthmonitor", "delete", WRITE),
    ("l7policy", "get_all", READ),
    ("l7policy", "get_all-global", READ_GLOBAL),
    ("l7policy", "post", WRITE),
    ("l7policy", "get_one", READ),
    ("l7policy", "put", WRITE),
    ("l7policy", "delete", WRITE),
    ("l7rule", "get_all", READ),
    ("l7rule", "post", WRITE),
    ("l7rule", "get_one", READ),
    ("l7rule", "put", WRITE),
    ("l7rule", "delete", WRITE),
    ("quota", "get_all", READ_QUOTA),
    ("quota", "get_all-global", READ_QUOTA_GLOBAL),
    ("quota", "get_one", READ_QUOTA),
    ("quota", "put", WRITE_QUOTA),
    ("quota", "delete", WRITE_QUOTA),
    ("quota", "get_defaults", READ_QUOTA),
    ("provider", "get_all", READ),
    ("provider-flavor", "get_all", ADMIN),
    ("provider-availability-zone", "get_all", ADMIN),
    ("flavor", "get_all", READ),
    ("flavor", "post", ADMIN),
    ("flavor", "put", ADMIN),
    ("flavor", "get_one", READ),
    ("flavor", "delete", ADMIN),
    ("flavor-profile", "get_all", ADMIN),
    ("flavor-profile", "post", ADMIN),
    ("flavor-profile", "put", ADMIN),
    ("flavor-profile", "get_one", ADMIN),
    ("flavor-profile", "delete", ADMIN),
    ("availability-zone", "get_all", READ),
    ("availability-zone", "post", ADMIN),
    ("availability-zone", "put", ADMIN),
    ("availability-zone", "get_one", READ),
    ("availability-zone", "delete", ADMIN),
    ("availability-zone-profile", "get_all", ADMIN),
    ("availability-zone-profile", "post", ADMIN),
    ("availability-zone-profile", "put", ADMIN),
    ("availability-zone-profile", "get_one", ADMIN),
    ("availability-zone-profile", "delete", ADMIN),
    ("amphora", "get_all", ADMIN),
    ("amphora", "get_one", ADMIN),
    ("amphora", "delete", ADMIN),
    ("amphora", "put_config", ADMIN),
    ("amphora", "put_failover", ADMIN),
    ("amphora", "get_stats", ADMIN),
];

// Neutron's building blocks (neutron-lib writes them inline into each rule).
const N_ADMIN: &str = "rule:context_is_admin";
const N_ADMIN_OR_SERVICE: &str = "rule:context_is_admin or rule:service_api";
const N_PROJECT_MEMBER: &str = "role:member and project_id:%(project_id)s";
const N_PROJECT_READER: &str = "role:reader and project_id:%(project_id)s";
const N_ADMIN_OR_PROJECT_MEMBER: &str =
    "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
const N_ADMIN_OR_PROJECT_READER: &str =
    "rule:context_is_admin or (role:reader and project_id:%(project_id)s)";
const N_ADMIN_OR_PROJECT_MANAGER: &str =
    "rule:context_is_admin or (role:manager and project_id:%(project_id)s)";
const N_NET_OWNER_MEMBER: &str = "role:member and rule:network_owner";
const N_NET_OWNER_READER: &str = "role:reader and rule:network_owner";
const N_SG_OWNER_MEMBER: &str = "rule:context_is_admin or (role:member and rule:sg_owner)";
const N_SG_OWNER_READER: &str = "rule:context_is_admin or (role:reader and rule:sg_owner)";

fn neutron() -> Vec<(String, String)> {
    let or = |parts: &[&str]| {
        parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let admin_or_net_owner_member = or(&[N_ADMIN, N_NET_OWNER_MEMBER]);
    let admin_or_net_owner_reader = or(&[N_ADMIN, N_NET_OWNER_READER]);
    let port_attr = or(&[N_ADMIN_OR_SERVICE, N_NET_OWNER_MEMBER]);
    let rules: Vec<(&str, String)> = vec![
        ("service_api", "role:service".into()),
        ("owner", "project_id:%(project_id)s".into()),
        (
            "admin_or_owner",
            "rule:context_is_admin or rule:owner".into(),
        ),
        ("network_owner", "project_id:%(network:project_id)s".into()),
        (
            "sg_owner",
            "project_id:%(security_group:project_id)s".into(),
        ),
        ("admin_only", "rule:context_is_admin".into()),
        ("shared", "field:networks:shared=True".into()),
        ("external", "field:networks:router:external=True".into()),
        (
            "network_device",
            "field:port:device_owner=~^network:".into(),
        ),
        ("shared_subnetpools", "field:subnetpools:shared=True".into()),
        ("default", "rule:admin_or_owner".into()),
        // networks
        ("create_network", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("create_network:shared", N_ADMIN.into()),
        ("create_network:router:external", N_ADMIN.into()),
        (
            "get_network",
            or(&[
                N_ADMIN_OR_PROJECT_READER,
                "rule:service_api",
                "rule:shared",
                "rule:external",
            ]),
        ),
        ("update_network", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("update_network:shared", N_ADMIN.into()),
        ("update_network:router:external", N_ADMIN.into()),
        ("delete_network", N_ADMIN_OR_PROJECT_MEMBER.into()),
        // subnets
        ("create_subnet", admin_or_net_owner_member.clone()),
        (
            "get_subnet",
            or(&[
                N_PROJECT_READER,
                "rule:shared",
                "rule:external",
                &admin_or_net_owner_reader,
                "rule:service_api",
            ]),
        ),
        (
            "update_subnet",
            or(&[N_PROJECT_MEMBER, &admin_or_net_owner_member]),
        ),
        (
            "delete_subnet",
            or(&[N_PROJECT_MEMBER, &admin_or_net_owner_member]),
        ),
        // subnet pools
        ("create_subnetpool", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("create_subnetpool:shared", N_ADMIN.into()),
        (
            "get_subnetpool",
            or(&[N_ADMIN_OR_PROJECT_READER, "rule:shared_subnetpools"]),
        ),
        ("update_subnetpool", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("delete_subnetpool", N_ADMIN_OR_PROJECT_MEMBER.into()),
        // ports
        (
            "create_port",
            or(&[N_ADMIN_OR_SERVICE, N_NET_OWNER_MEMBER, "rule:shared"]),
        ),
        (
            "create_port:device_owner",
            or(&[
                "not rule:network_device",
                N_ADMIN_OR_SERVICE,
                N_NET_OWNER_MEMBER,
            ]),
        ),
        ("create_port:mac_address", port_attr.clone()),
        (
            "create_port:fixed_ips",
            or(&[N_ADMIN_OR_SERVICE, N_NET_OWNER_MEMBER, "rule:shared"]),
        ),
        ("create_port:fixed_ips:ip_address", port_attr.clone()),
        (
            "create_port:fixed_ips:subnet_id",
            or(&[N_ADMIN_OR_SERVICE, N_NET_OWNER_MEMBER, "rule:shared"]),
        ),
        ("create_port:port_security_enabled", port_attr.clone()),
        (
            "get_port",
            or(&[N_ADMIN_OR_SERVICE, N_NET_OWNER_READER, N_PROJECT_READER]),
        ),
        ("update_port", or(&[N_ADMIN_OR_SERVICE, N_PROJECT_MEMBER])),
        (
            "update_port:device_owner",
            or(&[
                "not rule:network_device",
                N_ADMIN_OR_SERVICE,
                N_NET_OWNER_MEMBER,
            ]),
        ),
        (
            "update_port:mac_address",
            or(&[N_ADMIN_OR_SERVICE, "role:manager and rule:network_owner"]),
        ),
        ("update_port:fixed_ips", port_attr.clone()),
        ("update_port:fixed_ips:ip_address", port_attr.clone()),
        (
            "update_port:fixed_ips:subnet_id",
            or(&[N_ADMIN_OR_SERVICE, N_NET_OWNER_MEMBER, "rule:shared"]),
        ),
        ("update_port:port_security_enabled", port_attr),
        (
            "delete_port",
            or(&[N_ADMIN_OR_SERVICE, N_NET_OWNER_MEMBER, N_PROJECT_MEMBER]),
        ),
        // routers
        ("create_router", N_ADMIN_OR_PROJECT_MEMBER.into()),
        (
            "create_router:external_gateway_info",
            N_ADMIN_OR_PROJECT_MEMBER.into(),
        ),
        (
            "create_router:external_gateway_info:network_id",
            N_ADMIN_OR_PROJECT_MEMBER.into(),
        ),
        (
            "create_router:external_gateway_info:enable_snat",
            N_ADMIN.into(),
        ),
        (
            "create_router:external_gateway_info:external_fixed_ips",
            N_ADMIN.into(),
        ),
        ("get_router", N_ADMIN_OR_PROJECT_READER.into()),
        ("update_router", N_ADMIN_OR_PROJECT_MEMBER.into()),
        (
            "update_router:external_gateway_info",
            N_ADMIN_OR_PROJECT_MEMBER.into(),
        ),
        (
            "update_router:external_gateway_info:network_id",
            N_ADMIN_OR_PROJECT_MEMBER.into(),
        ),
        (
            "update_router:external_gateway_info:enable_snat",
            N_ADMIN.into(),
        ),
        (
            "update_router:external_gateway_info:external_fixed_ips",
            N_ADMIN.into(),
        ),
        ("delete_router", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("add_router_interface", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("remove_router_interface", N_ADMIN_OR_PROJECT_MEMBER.into()),
        // floating IPs
        ("create_floatingip", N_ADMIN_OR_PROJECT_MEMBER.into()),
        (
            "create_floatingip:floating_ip_address",
            N_ADMIN_OR_PROJECT_MANAGER.into(),
        ),
        ("get_floatingip", N_ADMIN_OR_PROJECT_READER.into()),
        ("update_floatingip", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("delete_floatingip", N_ADMIN_OR_PROJECT_MEMBER.into()),
        // security groups and rules
        ("create_security_group", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("get_security_group", N_ADMIN_OR_PROJECT_READER.into()),
        ("update_security_group", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("delete_security_group", N_ADMIN_OR_PROJECT_MEMBER.into()),
        ("create_security_group_rule", N_SG_OWNER_MEMBER.into()),
        ("get_security_group_rule", N_SG_OWNER_READER.into()),
        ("delete_security_group_rule", N_SG_OWNER_MEMBER.into()),
        // quotas
        ("get_quota", N_ADMIN_OR_PROJECT_MANAGER.into()),
        ("update_quota", N_ADMIN.into()),
        ("delete_quota", N_ADMIN.into()),
    ];
    rules.into_iter().map(|(n, c)| (n.to_string(), c)).collect()
}

/// The built-in Keystone's identity rules, by Keystone's names. Their base
/// rules follow Keystone's defaults in spirit: writes need `admin`; lists and
/// other users' objects an admin or a `reader` on the system scope; a user
/// reads itself, a project-scoped caller its project, and application
/// credentials are their owner's. `identity:admin` is `role:admin` only
/// (`load-balancer_admin` administers load balancers, not identity).
const KEYSTONE_BASE: &[(&str, &str)] = &[
    ("identity:admin", "role:admin"),
    (
        "identity:system_reader",
        "role:admin or (role:reader and system_scope:all)",
    ),
    ("identity:owner", "user_id:%(user_id)s"),
];

const KEYSTONE: &[(&str, &str)] = &[
    ("identity:get_domain", "rule:identity:system_reader"),
    ("identity:list_domains", "rule:identity:system_reader"),
    ("identity:create_domain", "rule:identity:admin"),
    ("identity:update_domain", "rule:identity:admin"),
    ("identity:delete_domain", "rule:identity:admin"),
    (
        "identity:get_project",
        "rule:identity:system_reader or project_id:%(project_id)s",
    ),
    ("identity:list_projects", "rule:identity:system_reader"),
    (
        "identity:list_user_projects",
        "rule:identity:system_reader or rule:identity:owner",
    ),
    ("identity:create_project", "rule:identity:admin"),
    ("identity:update_project", "rule:identity:admin"),
    ("identity:delete_project", "rule:identity:admin"),
    (
        "identity:get_user",
        "rule:identity:system_reader or rule:identity:owner",
    ),
    ("identity:list_users", "rule:identity:system_reader"),
    ("identity:create_user", "rule:identity:admin"),
    ("identity:update_user", "rule:identity:admin"),
    ("identity:delete_user", "rule:identity:admin"),
    ("identity:change_password", "rule:identity:owner"),
    (
        "identity:list_groups_for_user",
        "rule:identity:system_reader or rule:identity:owner",
    ),
    ("identity:get_group", "rule:identity:system_reader"),
    ("identity:list_groups", "rule:identity:system_reader"),
    (
        "identity:list_users_in_group",
        "rule:identity:system_reader",
    ),
    (
        "identity:check_user_in_group",
        "rule:identity:system_reader",
    ),
    ("identity:create_group", "rule:identity:admin"),
    ("identity:update_group", "rule:identity:admin"),
    ("identity:delete_group", "rule:identity:admin"),
    ("identity:add_user_to_group", "rule:identity:admin"),
    ("identity:remove_user_from_group", "rule:identity:admin"),
    ("identity:get_role", "rule:identity:system_reader"),
    ("identity:list_roles", "rule:identity:system_reader"),
    ("identity:create_role", "rule:identity:admin"),
    ("identity:update_role", "rule:identity:admin"),
    ("identity:delete_role", "rule:identity:admin"),
    ("identity:get_implied_role", "rule:identity:system_reader"),
    ("identity:list_implied_roles", "rule:identity:system_reader"),
    (
        "identity:list_role_inference_rules",
        "rule:identity:system_reader",
    ),
    ("identity:create_implied_role", "rule:identity:admin"),
    ("identity:delete_implied_role", "rule:identity:admin"),
    ("identity:check_grant", "rule:identity:system_reader"),
    ("identity:list_grants", "rule:identity:system_reader"),
    ("identity:create_grant", "rule:identity:admin"),
    ("identity:revoke_grant", "rule:identity:admin"),
    (
        "identity:list_role_assignments",
        "rule:identity:system_reader",
    ),
    (
        "identity:get_application_credential",
        "rule:identity:admin or rule:identity:owner",
    ),
    (
        "identity:list_application_credentials",
        "rule:identity:admin or rule:identity:owner",
    ),
    (
        "identity:create_application_credential",
        "rule:identity:owner",
    ),
    (
        "identity:delete_application_credential",
        "rule:identity:admin or rule:identity:owner",
    ),
    ("identity:get_service", "rule:identity:system_reader"),
    ("identity:list_services", "rule:identity:system_reader"),
    ("identity:create_service", "rule:identity:admin"),
    ("identity:update_service", "rule:identity:admin"),
    ("identity:delete_service", "rule:identity:admin"),
    ("identity:get_endpoint", "rule:identity:system_reader"),
    ("identity:list_endpoints", "rule:identity:system_reader"),
    ("identity:create_endpoint", "rule:identity:admin"),
    ("identity:update_endpoint", "rule:identity:admin"),
    ("identity:delete_endpoint", "rule:identity:admin"),
    ("identity:get_region", "rule:identity:system_reader"),
    ("identity:list_regions", "rule:identity:system_reader"),
    ("identity:create_region", "rule:identity:admin"),
    ("identity:update_region", "rule:identity:admin"),
    ("identity:delete_region", "rule:identity:admin"),
];

/// Barbican's rules (the key manager), by Barbican's names. Barbican's
/// effective defaults are its legacy rules (roles `admin`, `creator`,
/// `observer`, `audit`), under which a plain `member` may do nothing; its new
/// defaults are written for Keystone's `admin`/`member`/`reader`. This
/// deployment's Keystone hands out the latter, so each rule here is the union
/// of both: a `member` of the project works with its secrets as Barbican's
/// new defaults say, and a deployment using Barbican's legacy roles keeps
/// them. Users on an object's read ACL may read it and its payload, whatever
/// their project or roles (as in Barbican).
fn barbican() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        ("admin", "role:admin"),
        ("observer", "role:observer"),
        ("creator", "role:creator"),
        ("audit", "role:audit"),
        ("service_admin", "role:key-manager:service-admin"),
        (
            "all_users",
            "rule:admin or rule:observer or rule:creator or rule:audit or rule:service_admin",
        ),
        (
            "all_but_audit",
            "rule:admin or rule:observer or rule:creator",
        ),
        ("admin_or_creator", "rule:admin or rule:creator"),
        // Statera's: who writes key-manager objects in a project (Barbican's
        // new `member`, its legacy `admin`/`creator`).
        ("key-manager:writer", "role:member or rule:admin_or_creator"),
        // Who reads them (new `member`, legacy everyone but `audit`).
        ("key-manager:reader", "role:member or rule:all_but_audit"),
        ("secrets:post", "rule:key-manager:writer"),
        ("secrets:get", "rule:key-manager:reader"),
        ("containers:post", "rule:key-manager:writer"),
        ("containers:get", "rule:key-manager:reader"),
    ]
    .iter()
    .map(|(n, c)| (n.to_string(), c.to_string()))
    .collect();
    for k in ["secret", "container"] {
        let base = [
            (
                format!("{k}_project_match"),
                format!("project_id:%(target.{k}.project_id)s"),
            ),
            (
                format!("{k}_acl_read"),
                format!("'read':%(target.{k}.read)s"),
            ),
            (
                format!("{k}_private_read"),
                format!("'False':%(target.{k}.read_project_access)s"),
            ),
            (
                format!("{k}_creator_user"),
                format!("user_id:%(target.{k}.creator_id)s"),
            ),
            (
                format!("{k}_project_admin"),
                format!("rule:admin and rule:{k}_project_match"),
            ),
            (
                format!("{k}_non_private_read"),
                format!(
                    "(role:member or rule:all_users) and rule:{k}_project_match and not rule:{k}_private_read"
                ),
            ),
            (
                format!("{k}_decrypt_non_private_read"),
                format!(
                    "rule:key-manager:reader and rule:{k}_project_match and not rule:{k}_private_read"
                ),
            ),
            (
                format!("{k}_project_creator"),
                format!(
                    "rule:key-manager:writer and rule:{k}_project_match and rule:{k}_creator_user"
                ),
            ),
            (
                format!("{k}_owner_write"),
                format!(
                    "rule:key-manager:writer and rule:{k}_project_match and (rule:{k}_creator_user or not rule:{k}_private_read)"
                ),
            ),
        ];
        out.extend(base);
        let read = format!(
            "rule:{k}_non_private_read or rule:{k}_project_creator or rule:{k}_project_admin or rule:{k}_acl_read"
        );
        let write = format!("rule:{k}_project_admin or rule:{k}_owner_write");
        let acl_read = format!(
            "rule:{k}_project_admin or (rule:key-manager:reader and rule:{k}_project_match and (rule:{k}_creator_user or not rule:{k}_private_read))"
        );
        out.push((format!("{k}:get"), read.clone()));
        out.push((format!("{k}:delete"), write.clone()));
        out.push((format!("{k}_acls:get"), acl_read));
        out.push((format!("{k}_acls:put_patch"), write.clone()));
        out.push((format!("{k}_acls:delete"), write.clone()));
        for a in ["get", "post", "delete"] {
            out.push((format!("{k}_consumers:{a}"), read.clone()));
        }
    }
    out.push((
        "secret:decrypt".into(),
        "rule:secret_decrypt_non_private_read or rule:secret_project_creator or rule:secret_project_admin or rule:secret_acl_read".into(),
    ));
    out.push((
        "secret:put".into(),
        "rule:secret_project_admin or rule:secret_owner_write".into(),
    ));
    out
}

/// Statera's own rules, for decisions neither API names.
const STATERA: &[(&str, &str)] = &[
    // A port with Octavia's VIP device owner is made by the load-balancer
    // API; a tenant may not forge one.
    ("statera:port:vip_device_owner", "rule:context_is_admin"),
];

/// Every default rule: (service, name, check string).
pub fn all() -> Vec<(Service, String, String)> {
    let mut out = vec![(
        Service::Common,
        "context_is_admin".to_string(),
        "role:admin or role:load-balancer_admin".to_string(),
    )];
    out.extend(
        OCTAVIA_BASE
            .iter()
            .map(|(n, c)| (Service::Octavia, n.to_string(), c.to_string())),
    );
    out.extend(
        OCTAVIA_API
            .iter()
            .map(|(res, act, c)| (Service::Octavia, format!("{LB}:{res}:{act}"), c.to_string())),
    );
    out.extend(neutron().into_iter().map(|(n, c)| (Service::Neutron, n, c)));
    out.extend(
        KEYSTONE_BASE
            .iter()
            .chain(KEYSTONE)
            .map(|(n, c)| (Service::Keystone, n.to_string(), c.to_string())),
    );
    out.extend(
        barbican()
            .into_iter()
            .map(|(n, c)| (Service::Barbican, n, c)),
    );
    out.extend(
        STATERA
            .iter()
            .map(|(n, c)| (Service::Statera, n.to_string(), c.to_string())),
    );
    out
}
