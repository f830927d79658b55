//! Building a load balancer's whole `LbConfig` from the store.

use statera_config::*;
use statera_model::*;
use statera_store::State;

fn live(status: ProvisioningStatus) -> bool {
    // Objects whose creation failed (ERROR) are not served, so that one refused
    // object cannot block every later change of its load balancer.
    !matches!(
        status,
        ProvisioningStatus::PendingDelete | ProvisioningStatus::Deleted | ProvisioningStatus::Error
    )
}

/// The configuration the data plane must serve for `lb`, as version `version`.
/// Objects being deleted are left out.
pub fn build(s: &State, lb: &LoadBalancer, version: u64) -> LbConfig {
    let port = s.ports.get(&lb.vip_port_id);
    let subnet = s.subnets.get(&lb.vip_subnet_id);
    let vip = Vip {
        address: lb.vip_address,
        port_id: lb.vip_port_id,
        subnet_id: lb.vip_subnet_id,
        network_id: lb.vip_network_id,
        mac_address: port.map(|p| p.mac_address.clone()).unwrap_or_default(),
        subnet_cidr: subnet
            .map(|x| x.cidr)
            .unwrap_or_else(|| ipnet::IpNet::from(lb.vip_address)),
        gateway: subnet.and_then(|x| x.gateway_ip),
        namespace: None,
        plumbing: None,
    };
    let listeners = s
        .listeners
        .children(lb.id)
        .filter(|l| live(l.provisioning_status))
        .map(|l| {
            let mut policies: Vec<_> = s
                .l7policies
                .children(l.id)
                .filter(|p| live(p.provisioning_status) && p.admin_state_up)
                .collect();
            policies.sort_by_key(|p| p.position);
            let l7policies = policies
                .into_iter()
                .filter_map(|p| {
                    let rules: Vec<L7RuleConfig> = s
                        .l7rules
                        .children(p.id)
                        .filter(|r| live(r.provisioning_status) && r.admin_state_up)
                        .map(|r| L7RuleConfig {
                            id: r.id,
                            kind: r.kind,
                            compare_type: r.compare_type,
                            key: r.key.clone(),
                            value: r.value.clone(),
                            invert: r.invert,
                        })
                        .collect();
                    // A policy without enabled rules never matches (as Octavia renders it).
                    (!rules.is_empty()).then(|| L7PolicyConfig {
                        id: p.id,
                        action: p.action,
                        redirect_pool_id: p.redirect_pool_id,
                        redirect_url: p.redirect_url.clone(),
                        redirect_prefix: p.redirect_prefix.clone(),
                        redirect_http_code: p.redirect_http_code,
                        rules,
                    })
                })
                .collect();
            ListenerConfig {
                id: l.id,
                protocol: l.protocol,
                protocol_port: l.protocol_port,
                admin_state_up: l.admin_state_up,
                connection_limit: u32::try_from(l.connection_limit).ok(),
                default_pool_id: l
                    .default_pool_id
                    .filter(|p| s.pools.get(p).is_some_and(|p| live(p.provisioning_status))),
                timeouts: Timeouts {
                    client_data_ms: l.timeout_client_data as u64,
                    member_connect_ms: l.timeout_member_connect as u64,
                    member_data_ms: l.timeout_member_data as u64,
                    tcp_inspect_ms: l.timeout_tcp_inspect as u64,
                },
                insert_headers: InsertHeaders {
                    x_forwarded_for: l.inserts_header("X-Forwarded-For"),
                    x_forwarded_port: l.inserts_header("X-Forwarded-Port"),
                    x_forwarded_proto: l.inserts_header("X-Forwarded-Proto"),
                    client_cert: ClientCertHeaders {
                        verify: l.inserts_header("X-SSL-Client-Verify"),
                        has_cert: l.inserts_header("X-SSL-Client-Has-Cert"),
                        dn: l.inserts_header("X-SSL-Client-DN"),
                        cn: l.inserts_header("X-SSL-Client-CN"),
                        issuer: l.inserts_header("X-SSL-Issuer"),
                        sha1: l.inserts_header("X-SSL-Client-SHA1"),
                        not_before: l.inserts_header("X-SSL-Client-Not-Before"),
                        not_after: l.inserts_header("X-SSL-Client-Not-After"),
                    },
                },
                allowed_cidrs: l.allowed_cidrs.clone(),
                l7policies,
                // Filled by the controller, which holds the key manager.
                tls: None,
            }
        })
        .collect();
    let pools = s
        .pools
        .children(lb.id)
        .filter(|p| live(p.provisioning_status))
        .map(|p| PoolConfig {
            id: p.id,
            protocol: p.protocol,
            lb_algorithm: p.lb_algorithm,
            admin_state_up: p.admin_state_up,
            session_persistence: p.session_persistence.as_ref().map(|sp| {
                SessionPersistenceConfig {
                    kind: sp.kind,
                    cookie_name: sp.cookie_name.clone(),
                    persistence_timeout: sp.persistence_timeout.map(|t| t as u64),
                    persistence_granularity: sp.persistence_granularity.clone(),
                }
            }),
            members: s
                .members
                .children(p.id)
                .filter(|m| live(m.provisioning_status))
                .map(|m| MemberConfig {
                    id: m.id,
                    address: m.address,
                    protocol_port: m.protocol_port,
                    weight: m.weight,
                    backup: m.backup,
                    admin_state_up: m.admin_state_up,
                    monitor_address: m.monitor_address,
                    monitor_port: m.monitor_port,
                })
                .collect(),
            health_monitor: s
                .healthmonitors
                .children(p.id)
                .find(|h| live(h.provisioning_status))
                .map(|h| HealthMonitorConfig {
                    id: h.id,
                    kind: h.kind,
                    admin_state_up: h.admin_state_up,
                    delay_s: h.delay as u64,
                    timeout_s: h.timeout as u64,
                    rise: h.max_retries as u32,
                    fall: h.max_retries_down as u32,
                    http_method: h.http_method,
                    url_path: h.url_path.clone(),
                    expected_codes: h.expected_codes.clone(),
                    http_version: h.http_version,
                    domain_name: h.domain_name.clone(),
                }),
            // Filled by the controller, which holds the key manager.
            tls: None,
        })
        .collect();
    LbConfig {
        lb_id: lb.id,
        version,
        admin_state_up: lb.admin_state_up,
        vip,
        listeners,
        pools,
    }
}
