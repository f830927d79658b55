use super::*;
use statera_config::{
    HealthMonitorConfig, InsertHeaders, L7PolicyConfig, L7RuleConfig, LbConfig, ListenerConfig,
    MemberConfig, PoolConfig, SessionPersistenceConfig, Timeouts, Vip,
};
use statera_model::HttpMethod;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const LB: u128 = 0x10;
const L1: u128 = 0x20;
const L2: u128 = 0x21;
const P1: u128 = 0x30;
const P2: u128 = 0x31;
const M1: u128 = 0x40;
const M2: u128 = 0x41;

fn options() -> RenderOptions {
    RenderOptions {
        stats_socket: PathBuf::from("/run/statera/lb/stats.sock"),
        maxconn_cap: MAX_GLOBAL_MAXCONN,
        dir: PathBuf::from("/run/statera/lb"),
    }
}

fn listener(n: u128, protocol: ListenerProtocol, port: u16) -> ListenerConfig {
    ListenerConfig {
        id: id(n),
        protocol,
        protocol_port: port,
        admin_state_up: true,
        connection_limit: None,
        default_pool_id: Some(id(P1)),
        timeouts: Timeouts {
            client_data_ms: 50_000,
            member_connect_ms: 5_000,
            member_data_ms: 50_000,
            tcp_inspect_ms: 0,
        },
        insert_headers: InsertHeaders::default(),
        allowed_cidrs: Vec::new(),
        l7policies: Vec::new(),
        tls: None,
    }
}

fn member(n: u128, port: u16) -> MemberConfig {
    MemberConfig {
        id: id(n),
        address: "10.0.0.5".parse().unwrap(),
        protocol_port: port,
        weight: 1,
        backup: false,
        admin_state_up: true,
        monitor_address: None,
        monitor_port: None,
    }
}

fn pool(n: u128, protocol: PoolProtocol) -> PoolConfig {
    PoolConfig {
        id: id(n),
        protocol,
        lb_algorithm: LbAlgorithm::RoundRobin,
        admin_state_up: true,
        session_persistence: None,
        members: vec![member(M1, 80), member(M2, 81)],
        health_monitor: None,
        tls: None,
    }
}

fn monitor(kind: HealthMonitorType) -> HealthMonitorConfig {
    HealthMonitorConfig {
        id: id(0x50),
        kind,
        admin_state_up: true,
        delay_s: 5,
        timeout_s: 3,
        rise: 2,
        fall: 4,
        http_method: None,
        url_path: None,
        expected_codes: None,
        http_version: None,
        domain_name: None,
    }
}

fn config(listeners: Vec<ListenerConfig>, pools: Vec<PoolConfig>) -> LbConfig {
    LbConfig {
        lb_id: id(LB),
        version: 1,
        admin_state_up: true,
        vip: Vip {
            address: "192.0.2.10".parse().unwrap(),
            port_id: id(1),
            subnet_id: id(2),
            network_id: id(3),
            mac_address: "fa:16:3e:00:00:01".into(),
            subnet_cidr: "192.0.2.0/24".parse().unwrap(),
            gateway: None,
            namespace: None,
            plumbing: None,
        },
        listeners,
        pools,
    }
}

fn http_lb() -> LbConfig {
    config(
        vec![listener(L1, ListenerProtocol::Http, 80)],
        vec![pool(P1, PoolProtocol::Http)],
    )
}

fn rendered(config: &LbConfig) -> String {
    render(config, &options()).expect("renders")
}

/// The lines of one section (`frontend X` / `backend Y`), trimmed.
fn section(text: &str, head: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| *l != head);
    assert!(lines.next().is_some(), "no section {head:?} in:\n{text}");
    lines
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .collect()
}

fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

fn frontend(text: &str, n: u128) -> Vec<String> {
    section(text, &format!("frontend {}", id(n)))
}

fn backend(text: &str, pool: u128, listener: u128) -> Vec<String> {
    section(text, &format!("backend {}:{}", id(pool), id(listener)))
}

#[test]
fn global_and_defaults() {
    let text = rendered(&http_lb());
    let global = section(&text, "global");
    assert!(has(&global, "master-worker"));
    // No listening socket is ever shared with another load balancer's HAProxy.
    assert!(has(&global, "noreuseport"));
    assert!(has(&global, "maxconn 50000"));
    assert!(has(
        &global,
        "stats socket /run/statera/lb/stats.sock mode 600 level admin expose-fd listeners"
    ));
    let defaults = section(&text, "defaults");
    for line in ["retries 3", "option redispatch", "timeout connect 5s"] {
        assert!(has(&defaults, line), "{line} in {defaults:?}");
    }
}

#[test]
fn global_maxconn_sums_listener_limits_with_caps() {
    let mut a = listener(L1, ListenerProtocol::Http, 80);
    a.connection_limit = Some(1000);
    let b = listener(L2, ListenerProtocol::Tcp, 81);
    let cfg = config(vec![a.clone(), b], vec![pool(P1, PoolProtocol::Http)]);
    assert!(has(&section(&rendered(&cfg), "global"), "maxconn 51000"));

    let mut big = Vec::new();
    for i in 0..30 {
        let mut l = listener(0x100 + i, ListenerProtocol::Tcp, 1000 + i as u16);
        l.connection_limit = Some(50_000);
        big.push(l);
    }
    let cfg = config(big, vec![pool(P1, PoolProtocol::Tcp)]);
    assert!(has(&section(&rendered(&cfg), "global"), "maxconn 1000000"));

    let limited = RenderOptions {
        maxconn_cap: 9_000,
        ..options()
    };
    let text = render(
        &config(vec![a], vec![pool(P1, PoolProtocol::Http)]),
        &limited,
    )
    .unwrap();
    assert!(has(&section(&text, "global"), "maxconn 1000"));
    let text = render(&http_lb(), &limited).unwrap();
    assert!(has(&section(&text, "global"), "maxconn 9000"));
}

/// The load balancer's ceiling caps every listener's `maxconn` too, a
/// listener without a limit (Octavia's -1) and an explicit one above it
/// alike; limits under it stay.
#[test]
fn the_lb_ceiling_caps_each_listener() {
    let mut small = listener(L1, ListenerProtocol::Http, 80);
    small.connection_limit = Some(100);
    let mut big = listener(L2, ListenerProtocol::Tcp, 81);
    big.connection_limit = Some(1_000_000);
    let unlimited = listener(0x22, ListenerProtocol::Tcp, 82);
    let cfg = config(
        vec![small, big, unlimited],
        vec![pool(P1, PoolProtocol::Http)],
    );
    let ceiling = RenderOptions {
        maxconn_cap: 3_991,
        ..options()
    };
    let text = render(&cfg, &ceiling).unwrap();
    assert!(has(&frontend(&text, L1), "maxconn 100"));
    assert!(has(&frontend(&text, L2), "maxconn 3991"));
    assert!(has(&frontend(&text, 0x22), "maxconn 3991"));
    assert!(has(&section(&text, "global"), "maxconn 3991"));
}

#[test]
fn http_frontend() {
    let mut cfg = http_lb();
    let l = &mut cfg.listeners[0];
    l.connection_limit = Some(200);
    l.timeouts.client_data_ms = 12_000;
    l.timeouts.tcp_inspect_ms = 300;
    l.insert_headers = InsertHeaders {
        x_forwarded_for: true,
        x_forwarded_port: true,
        x_forwarded_proto: true,
        ..Default::default()
    };
    l.allowed_cidrs = vec![
        "10.0.0.0/8".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ];
    let text = rendered(&cfg);
    let fe = frontend(&text, L1);
    for line in [
        "mode http",
        "bind 192.0.2.10:80",
        "maxconn 200",
        "timeout client 12000ms",
        "tcp-request inspect-delay 300ms",
        "tcp-request connection reject if !{ src 10.0.0.0/8 192.168.1.0/24 }",
        "option forwardfor",
        "http-request set-header X-Forwarded-Port %[dst_port]",
        "http-request set-header X-Forwarded-Proto http",
        &format!("default_backend {}:{}", id(P1), id(L1)),
    ] {
        assert!(has(&fe, line), "{line:?} in {fe:?}");
    }
}

#[test]
fn tcp_and_https_frontends_are_tcp_mode_without_headers() {
    for protocol in [ListenerProtocol::Tcp, ListenerProtocol::Https] {
        let mut l = listener(L1, protocol, 443);
        l.insert_headers.x_forwarded_for = true;
        let cfg = config(vec![l], vec![pool(P1, PoolProtocol::Tcp)]);
        let text = rendered(&cfg);
        let fe = frontend(&text, L1);
        assert!(has(&fe, "mode tcp"));
        assert!(has(&fe, "maxconn 50000"));
        assert!(
            !fe.iter()
                .any(|l| l.contains("forwardfor") || l.contains("inspect-delay"))
        );
        assert!(has(&backend(&text, P1, L1), "mode tcp"));
    }
}

#[test]
fn ipv6_vip_and_members_are_bracketed() {
    let mut cfg = http_lb();
    cfg.vip.address = "2001:db8::10".parse().unwrap();
    cfg.pools[0].members[0].address = "2001:db8::5".parse().unwrap();
    let text = rendered(&cfg);
    assert!(has(&frontend(&text, L1), "bind [2001:db8::10]:80"));
    assert!(
        backend(&text, P1, L1)
            .iter()
            .any(|l| l.starts_with(&format!("server {} [2001:db8::5]:80 ", id(M1))))
    );
}

#[test]
fn disabled_things_are_left_out() {
    let mut cfg = http_lb();
    cfg.admin_state_up = false;
    let text = rendered(&cfg);
    assert!(!text.contains("frontend"));
    assert!(!text.contains("backend "));

    let mut cfg = config(
        vec![
            listener(L1, ListenerProtocol::Http, 80),
            listener(L2, ListenerProtocol::Http, 81),
        ],
        vec![pool(P1, PoolProtocol::Http)],
    );
    cfg.listeners[1].admin_state_up = false;
    let text = rendered(&cfg);
    assert!(text.contains(&format!("frontend {}", id(L1))));
    assert!(!text.contains(&id(L2).to_string()));

    // A disabled default pool: no backend, no default_backend.
    cfg.pools[0].admin_state_up = false;
    let text = rendered(&cfg);
    assert!(!text.contains("backend "));
    assert!(
        !frontend(&text, L1)
            .iter()
            .any(|l| l.starts_with("default_backend"))
    );
}

#[test]
fn datagram_and_unsupported_listeners_are_refused() {
    let cfg = config(
        vec![listener(L1, ListenerProtocol::Udp, 53)],
        vec![pool(P1, PoolProtocol::Udp)],
    );
    match render(&cfg, &options()) {
        Err(DataPlaneError::Unsupported(m)) => {
            assert_eq!(m, "UDP listeners are not supported by the haproxy provider")
        }
        other => panic!("{other:?}"),
    }
    // (TERMINATED_HTTPS is served: terminated_https_* below.)
    for protocol in [ListenerProtocol::Sctp, ListenerProtocol::Prometheus] {
        let cfg = config(vec![listener(L1, protocol, 53)], vec![]);
        assert!(matches!(
            render(&cfg, &options()),
            Err(DataPlaneError::Unsupported(_))
        ));
    }
    // A disabled UDP listener is simply not served.
    let mut cfg = config(
        vec![listener(L1, ListenerProtocol::Udp, 53)],
        vec![pool(P1, PoolProtocol::Udp)],
    );
    cfg.listeners[0].admin_state_up = false;
    assert!(render(&cfg, &options()).is_ok());
}

#[test]
fn two_listeners_on_one_port_are_refused() {
    let cfg = config(
        vec![
            listener(L1, ListenerProtocol::Http, 80),
            listener(L2, ListenerProtocol::Tcp, 80),
        ],
        vec![pool(P1, PoolProtocol::Http)],
    );
    assert!(matches!(
        render(&cfg, &options()),
        Err(DataPlaneError::Other(_))
    ));
}

#[test]
fn backend_basics_and_members() {
    let mut cfg = http_lb();
    cfg.listeners[0].connection_limit = Some(300);
    cfg.listeners[0].timeouts.member_connect_ms = 1500;
    cfg.listeners[0].timeouts.member_data_ms = 9000;
    let p = &mut cfg.pools[0];
    p.members[0].weight = 7;
    p.members[1].backup = true;
    p.members[1].admin_state_up = false;
    let text = rendered(&cfg);
    let be = backend(&text, P1, L1);
    for line in [
        "mode http",
        "http-reuse safe",
        "balance roundrobin",
        "fullconn 300",
        "timeout connect 1500ms",
        "timeout server 9000ms",
        "option allbackups",
        &format!("server {} 10.0.0.5:80 weight 7 source 192.0.2.10", id(M1)),
        &format!(
            "server {} 10.0.0.5:81 weight 1 backup disabled source 192.0.2.10",
            id(M2)
        ),
    ] {
        assert!(has(&be, line), "{line:?} in {be:?}");
    }
}

#[test]
fn algorithms() {
    for (algorithm, lines) in [
        (LbAlgorithm::RoundRobin, vec!["balance roundrobin"]),
        (LbAlgorithm::LeastConnections, vec!["balance leastconn"]),
        (LbAlgorithm::SourceIp, vec!["balance source"]),
        (
            LbAlgorithm::SourceIpPort,
            vec![
                "tcp-request content set-var(txn.src_port) src_port",
                "balance hash src,concat(:,txn.src_port)",
            ],
        ),
    ] {
        let mut cfg = http_lb();
        cfg.pools[0].lb_algorithm = algorithm;
        let be = backend(&rendered(&cfg), P1, L1);
        for line in lines {
            assert!(has(&be, line), "{algorithm}: {line:?} in {be:?}");
        }
    }
}

fn persistence(kind: SessionPersistenceType) -> SessionPersistenceConfig {
    SessionPersistenceConfig {
        kind,
        cookie_name: Some("JSESSIONID".into()),
        persistence_timeout: None,
        persistence_granularity: None,
    }
}

#[test]
fn session_persistence() {
    let mut cfg = http_lb();
    cfg.pools[0].session_persistence = Some(persistence(SessionPersistenceType::SourceIp));
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(has(&be, "stick-table type ipv6 size 10k expire 1800s"));
    assert!(has(&be, "stick on src"));

    cfg.pools[0].session_persistence = Some(persistence(SessionPersistenceType::HttpCookie));
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(has(&be, "cookie SRV insert indirect nocache"));
    assert!(has(
        &be,
        &format!(
            "server {} 10.0.0.5:80 weight 1 cookie {} source 192.0.2.10",
            id(M1),
            id(M1)
        )
    ));

    let mut sp = persistence(SessionPersistenceType::AppCookie);
    sp.persistence_timeout = Some(60);
    cfg.pools[0].session_persistence = Some(sp);
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(has(
        &be,
        "stick-table type string len 64 size 10k expire 60s"
    ));
    assert!(has(&be, "stick store-response res.cook(JSESSIONID)"));
    assert!(has(&be, "stick match req.cook(JSESSIONID)"));

    // Cookies mean nothing to a TCP listener.
    let mut cfg = config(
        vec![listener(L1, ListenerProtocol::Tcp, 80)],
        vec![pool(P1, PoolProtocol::Http)],
    );
    cfg.pools[0].session_persistence = Some(persistence(SessionPersistenceType::HttpCookie));
    let text = rendered(&cfg);
    assert!(!text.contains("cookie"));

    let mut cfg = http_lb();
    let mut sp = persistence(SessionPersistenceType::AppCookie);
    sp.cookie_name = Some("bad name".into());
    cfg.pools[0].session_persistence = Some(sp);
    assert!(render(&cfg, &options()).is_err());
}

#[test]
fn proxy_protocol_pools() {
    for (protocol, option) in [
        (PoolProtocol::Proxy, "send-proxy"),
        (PoolProtocol::ProxyV2, "send-proxy-v2"),
    ] {
        let cfg = config(
            vec![listener(L1, ListenerProtocol::Http, 80)],
            vec![pool(P1, protocol)],
        );
        let be = backend(&rendered(&cfg), P1, L1);
        assert!(has(&be, "mode http"), "mode follows the listener");
        assert!(!has(&be, "http-reuse safe"));
        assert!(has(
            &be,
            &format!(
                "server {} 10.0.0.5:80 weight 1 {option} source 192.0.2.10",
                id(M1)
            )
        ));
    }
}

#[test]
fn tcp_health_monitor_with_monitor_address() {
    let mut cfg = http_lb();
    cfg.pools[0].health_monitor = Some(monitor(HealthMonitorType::Tcp));
    cfg.pools[0].members[0].monitor_address = Some("10.0.0.9".parse().unwrap());
    cfg.pools[0].members[0].monitor_port = Some(9000);
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(has(&be, "timeout check 3s"));
    assert!(!be.iter().any(|l| l.contains("httpchk")));
    assert!(has(
        &be,
        &format!(
            "server {} 10.0.0.5:80 weight 1 check inter 5s fall 4 rise 2 addr 10.0.0.9 port 9000 source 192.0.2.10",
            id(M1)
        )
    ));
}

#[test]
fn http_health_monitors() {
    let mut hm = monitor(HealthMonitorType::Http);
    let mut cfg = http_lb();
    cfg.pools[0].health_monitor = Some(hm.clone());
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(has(&be, "option httpchk GET \"/\""));
    assert!(has(&be, "http-check expect rstatus ^(200)$"));

    hm.kind = HealthMonitorType::Https;
    hm.http_method = Some(HttpMethod::Head);
    hm.url_path = Some("/health check".into());
    assert!(
        render(
            &{
                let mut c = http_lb();
                c.pools[0].health_monitor = Some(hm.clone());
                c
            },
            &options()
        )
        .is_err(),
        "a path with a space cannot be sent"
    );
    hm.url_path = Some("/healthz".into());
    hm.http_version = Some(1.1);
    hm.domain_name = Some("app.example.com".into());
    hm.expected_codes = Some("200-202,204".into());
    cfg.pools[0].health_monitor = Some(hm.clone());
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(has(&be, "option httpchk HEAD \"/healthz\" HTTP/1.1"));
    assert!(has(&be, "http-check send hdr Host \"app.example.com\""));
    assert!(has(&be, "http-check expect rstatus ^(200|201|202|204)$"));
    assert!(
        be.iter()
            .any(|l| l.contains("check inter 5s fall 4 rise 2 check-ssl verify none"))
    );

    // HTTP/1.0: no Host header.
    hm.http_version = Some(1.0);
    cfg.pools[0].health_monitor = Some(hm);
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(has(&be, "option httpchk HEAD \"/healthz\" HTTP/1.0"));
    assert!(!be.iter().any(|l| l.contains("http-check send")));
}

#[test]
fn tls_hello_ping_and_disabled_monitors() {
    let mut cfg = http_lb();
    cfg.pools[0].health_monitor = Some(monitor(HealthMonitorType::TlsHello));
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(be.iter().any(|l| {
        l.ends_with("check inter 5s fall 4 rise 2 check-ssl verify none source 192.0.2.10")
    }));

    cfg.pools[0].health_monitor = Some(monitor(HealthMonitorType::Ping));
    match render(&cfg, &options()) {
        Err(DataPlaneError::Unsupported(m)) => assert!(m.contains("external-check"), "{m}"),
        other => panic!("{other:?}"),
    }
    for kind in [HealthMonitorType::UdpConnect, HealthMonitorType::Sctp] {
        cfg.pools[0].health_monitor = Some(monitor(kind));
        assert!(matches!(
            render(&cfg, &options()),
            Err(DataPlaneError::Unsupported(_))
        ));
    }

    let mut hm = monitor(HealthMonitorType::Ping);
    hm.admin_state_up = false;
    cfg.pools[0].health_monitor = Some(hm);
    let be = backend(&rendered(&cfg), P1, L1);
    assert!(!be.iter().any(|l| l.contains("check")), "{be:?}");
}

#[test]
fn expected_codes() {
    assert_eq!(expected_codes_regex("200").unwrap(), "^(200)$");
    assert_eq!(expected_codes_regex("200, 302").unwrap(), "^(200|302)$");
    assert_eq!(
        expected_codes_regex("200-203").unwrap(),
        "^(200|201|202|203)$"
    );
    assert!(expected_codes_regex("abc").is_err());
    assert!(expected_codes_regex("300-200").is_err());
    assert!(expected_codes_regex("99").is_err());
}

fn rule(n: u128, kind: L7RuleType, compare: L7RuleCompareType, value: &str) -> L7RuleConfig {
    L7RuleConfig {
        id: id(n),
        kind,
        compare_type: compare,
        key: None,
        value: value.into(),
        invert: false,
    }
}

fn policy(n: u128, action: L7PolicyAction, rules: Vec<L7RuleConfig>) -> L7PolicyConfig {
    L7PolicyConfig {
        id: id(n),
        action,
        redirect_pool_id: None,
        redirect_url: None,
        redirect_prefix: None,
        redirect_http_code: None,
        rules,
    }
}

#[test]
fn acl_expressions() {
    use L7RuleCompareType as C;
    use L7RuleType as T;
    let cases = [
        (
            T::HostName,
            C::EqualTo,
            None,
            "a.example",
            "req.hdr(host),host_only,regsub(\"\\.\\$\",\"\") -i -m str \"a.example\"",
        ),
        (T::Path, C::StartsWith, None, "/api", "path -m beg \"/api\""),
        (
            T::Path,
            C::Regex,
            None,
            "^/v[0-9]+\\.x$",
            "path -m reg \"^/v[0-9]+\\\\.x\\$\"",
        ),
        (T::FileType, C::EqualTo, None, "jpg", "path_end \"jpg\""),
        (
            T::FileType,
            C::Regex,
            None,
            "jpe?g",
            "path_end -m reg \"jpe?g\"",
        ),
        (
            T::Header,
            C::Contains,
            Some("X-Env"),
            "a b",
            "req.hdr(X-Env) -m sub \"a b\"",
        ),
        (
            T::Cookie,
            C::EndsWith,
            Some("sess"),
            "x\"y",
            "req.cook(sess) -m end \"x\\\"y\"",
        ),
        (T::SslConnHasCert, C::EqualTo, None, "True", "ssl_c_used"),
        (
            T::SslVerifyResult,
            C::EqualTo,
            None,
            "0",
            "ssl_c_verify eq 0",
        ),
        (
            T::SslDnField,
            C::EqualTo,
            Some("CN"),
            "alice",
            "ssl_c_s_dn(CN) -m str \"alice\"",
        ),
    ];
    for (kind, compare, key, value, expected) in cases {
        let mut r = rule(1, kind, compare, value);
        r.key = key.map(str::to_string);
        assert_eq!(acl_expression(&r).unwrap(), expected);
    }
    let mut r = rule(1, T::Header, C::EqualTo, "v");
    r.key = Some("X Bad".into());
    assert!(acl_expression(&r).is_err());
    assert!(acl_expression(&rule(1, T::SslVerifyResult, C::EqualTo, "x")).is_err());
    assert!(acl_expression(&rule(1, T::Path, C::EqualTo, "a\nb")).is_err());
}

#[test]
fn quoting() {
    assert_eq!(quote("plain").unwrap(), "\"plain\"");
    assert_eq!(quote("a b#c").unwrap(), "\"a b#c\"");
    assert_eq!(quote("\\\"$HOME").unwrap(), "\"\\\\\\\"\\$HOME\"");
    assert!(quote("tab\there").is_err());
}

#[test]
fn l7_policies_render_in_haproxy_order() {
    let mut cfg = config(
        vec![listener(L1, ListenerProtocol::Http, 80)],
        vec![pool(P1, PoolProtocol::Http), pool(P2, PoolProtocol::Http)],
    );
    let mut to_pool = policy(
        0x61,
        L7PolicyAction::RedirectToPool,
        vec![rule(
            0x71,
            L7RuleType::Path,
            L7RuleCompareType::StartsWith,
            "/api",
        )],
    );
    to_pool.redirect_pool_id = Some(id(P2));
    let mut to_url = policy(
        0x62,
        L7PolicyAction::RedirectToUrl,
        vec![rule(
            0x72,
            L7RuleType::Path,
            L7RuleCompareType::EqualTo,
            "/old",
        )],
    );
    to_url.redirect_url = Some("https://new.example/x?a=1".into());
    to_url.redirect_http_code = Some(301);
    let mut prefix = policy(
        0x63,
        L7PolicyAction::RedirectPrefix,
        vec![rule(
            0x73,
            L7RuleType::HostName,
            L7RuleCompareType::EqualTo,
            "legacy",
        )],
    );
    prefix.redirect_prefix = Some("https://www.example".into());
    let mut inverted = rule(
        0x75,
        L7RuleType::Path,
        L7RuleCompareType::StartsWith,
        "/public",
    );
    inverted.invert = true;
    let reject = policy(
        0x64,
        L7PolicyAction::Reject,
        vec![
            rule(
                0x74,
                L7RuleType::HostName,
                L7RuleCompareType::EndsWith,
                ".internal",
            ),
            inverted,
        ],
    );
    let empty = policy(0x65, L7PolicyAction::Reject, vec![]);
    cfg.listeners[0].l7policies = vec![to_pool, to_url, prefix, reject, empty];
    let text = rendered(&cfg);
    let fe = frontend(&text, L1);
    let actions: Vec<&String> = fe
        .iter()
        .filter(|l| {
            l.starts_with("http-request deny")
                || l.starts_with("redirect")
                || l.starts_with("use_backend")
                || l.starts_with("default_backend")
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            &format!("http-request deny if {} !{}", id(0x74), id(0x75)),
            &format!(
                "redirect code 301 location \"https://new.example/x?a=1\" if {}",
                id(0x72)
            ),
            &format!(
                "redirect code 302 prefix \"https://www.example\" if {}",
                id(0x73)
            ),
            &format!("use_backend {}:{} if {}", id(P2), id(L1), id(0x71)),
            &format!("default_backend {}:{}", id(P1), id(L1)),
        ]
    );
    assert!(has(&fe, &format!("acl {} path -m beg \"/api\"", id(0x71))));
    assert!(has(
        &fe,
        &format!(
            "acl {} req.hdr(host),host_only,regsub(\"\\.\\$\",\"\") -i -m end \".internal\"",
            id(0x74)
        )
    ));
    // Both pools get a backend for this listener.
    assert!(has(&backend(&text, P2, L1), "balance roundrobin"));
    assert!(has(&backend(&text, P1, L1), "balance roundrobin"));
}

#[test]
fn redirect_to_a_disabled_pool_is_left_out() {
    let mut cfg = config(
        vec![listener(L1, ListenerProtocol::Http, 80)],
        vec![pool(P1, PoolProtocol::Http), pool(P2, PoolProtocol::Http)],
    );
    cfg.pools[1].admin_state_up = false;
    let mut to_pool = policy(
        0x61,
        L7PolicyAction::RedirectToPool,
        vec![rule(
            0x71,
            L7RuleType::Path,
            L7RuleCompareType::StartsWith,
            "/api",
        )],
    );
    to_pool.redirect_pool_id = Some(id(P2));
    cfg.listeners[0].l7policies = vec![to_pool];
    let text = rendered(&cfg);
    assert!(!text.contains("use_backend"));
    assert!(!text.contains(&format!("backend {}", id(P2))));
}

#[test]
fn l7_policies_on_tcp_listeners_are_refused() {
    let mut cfg = config(
        vec![listener(L1, ListenerProtocol::Tcp, 80)],
        vec![pool(P1, PoolProtocol::Tcp)],
    );
    cfg.listeners[0].l7policies = vec![policy(
        0x61,
        L7PolicyAction::Reject,
        vec![rule(
            0x71,
            L7RuleType::Path,
            L7RuleCompareType::StartsWith,
            "/",
        )],
    )];
    assert!(matches!(
        render(&cfg, &options()),
        Err(DataPlaneError::Unsupported(_))
    ));
}

#[test]
fn a_pool_shared_by_two_listeners_gets_two_backends() {
    let cfg = config(
        vec![
            listener(L1, ListenerProtocol::Http, 80),
            listener(L2, ListenerProtocol::Tcp, 8080),
        ],
        vec![pool(P1, PoolProtocol::Http)],
    );
    let text = rendered(&cfg);
    assert!(has(&backend(&text, P1, L1), "mode http"));
    assert!(has(&backend(&text, P1, L2), "mode tcp"));
}

#[test]
fn path_rules_normalise_requests_first_and_host_rules_do_not() {
    let mut cfg = http_lb();
    cfg.listeners[0].l7policies = vec![policy(
        0x61,
        L7PolicyAction::Reject,
        vec![rule(
            0x71,
            L7RuleType::HostName,
            L7RuleCompareType::EqualTo,
            "admin.example",
        )],
    )];
    let text = rendered(&cfg);
    assert!(!text.contains("normalize-uri"));
    assert!(!text.contains("expose-experimental-directives"));

    cfg.listeners[0].l7policies[0].rules.push(rule(
        0x72,
        L7RuleType::Path,
        L7RuleCompareType::StartsWith,
        "/admin",
    ));
    let text = rendered(&cfg);
    assert!(has(
        &section(&text, "global"),
        "expose-experimental-directives"
    ));
    let fe = frontend(&text, L1);
    let steps: Vec<&String> = fe.iter().filter(|l| l.contains("normalize-uri")).collect();
    assert_eq!(
        steps,
        [
            "http-request normalize-uri percent-decode-unreserved strict",
            "http-request normalize-uri percent-to-uppercase strict",
            "http-request normalize-uri path-merge-slashes",
            "http-request normalize-uri path-strip-dot",
            "http-request normalize-uri path-strip-dotdot full",
        ]
    );
    // Before the rules that read the path.
    let first_step = fe.iter().position(|l| l.contains("normalize-uri")).unwrap();
    let deny = fe
        .iter()
        .position(|l| l.starts_with("http-request deny"))
        .unwrap();
    assert!(first_step < deny);
}

#[test]
fn members_are_reached_from_the_vip_when_it_can_be_their_source() {
    // (VIP, member, source rendered)
    let cases = [
        ("192.0.2.10", "10.0.0.5", Some("192.0.2.10")),
        ("127.0.0.5", "127.0.0.1", Some("127.0.0.5")),
        // A loopback source cannot leave the host.
        ("127.0.0.5", "10.0.0.5", None),
        ("192.0.2.10", "2001:db8::5", None),
        ("2001:db8::10", "2001:db8::5", Some("[2001:db8::10]")),
    ];
    for (vip, member, source) in cases {
        let mut cfg = http_lb();
        cfg.vip.address = vip.parse().unwrap();
        cfg.pools[0].members[0].address = member.parse().unwrap();
        let be = backend(&rendered(&cfg), P1, L1);
        let line = be.iter().find(|l| l.starts_with("server ")).unwrap();
        match source {
            Some(source) => assert!(line.ends_with(&format!(" source {source}")), "{line}"),
            None => assert!(!line.contains(" source "), "{line}"),
        }
    }
}

fn tls_listener(tls: statera_config::ListenerTls) -> ListenerConfig {
    let mut l = listener(L1, ListenerProtocol::TerminatedHttps, 443);
    l.tls = Some(tls);
    l
}

fn tls(auth: statera_model::ClientAuthentication) -> statera_config::ListenerTls {
    use statera_config::{Hsts, PrivateKeyPem, TlsCertificate};
    let cert = |n: &str| TlsCertificate {
        reference: format!("http://km/v1/secrets/{n}"),
        chain_pem: format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n"),
        key_pem: PrivateKeyPem(format!(
            "-----BEGIN PRIVATE KEY-----\n{n}-key\n-----END PRIVATE KEY-----\n"
        )),
        names: vec![n.to_string()],
    };
    statera_config::ListenerTls {
        certificates: vec![cert("default"), cert("sni")],
        client_authentication: auth,
        client_ca_pem: Some("CA".into()),
        client_crl_pem: Some("CRL".into()),
        versions: vec![
            statera_model::TlsVersion::TlsV1_3,
            statera_model::TlsVersion::TlsV1,
        ],
        ciphers: Some("ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL".into()),
        alpn_protocols: vec![
            statera_model::AlpnProtocol::H2,
            statera_model::AlpnProtocol::Http11,
        ],
        hsts: Some(Hsts {
            max_age: 600,
            include_subdomains: true,
            preload: true,
        }),
    }
}

#[test]
fn terminated_https_binds_with_its_certificates_and_settings() {
    use statera_model::ClientAuthentication;
    let mut l = tls_listener(tls(ClientAuthentication::Mandatory));
    l.insert_headers.x_forwarded_proto = true;
    l.insert_headers.client_cert.verify = true;
    l.insert_headers.client_cert.cn = true;
    let cfg = config(vec![l], vec![pool(P1, PoolProtocol::Http)]);
    let text = rendered(&cfg);
    let dir = tls::tls_dir(&cfg, &options().dir);
    assert!(dir.starts_with("/run/statera/lb/tls/"), "{}", dir.display());
    let ldir = dir.join(id(L1).to_string());
    let front = section(&text, &format!("frontend {}", id(L1)));
    assert!(front.contains(&"mode http".to_string()), "{front:?}");
    let bind = format!(
        "bind 192.0.2.10:443 ssl crt-list {} ca-file {} verify required crl-file {} \
         ssl-min-ver TLSv1.0 ssl-max-ver TLSv1.3 \
         ciphers ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL alpn h2,http/1.1",
        ldir.join("crt-list").display(),
        ldir.join("client-ca.pem").display(),
        ldir.join("client-crl.pem").display(),
    );
    assert!(front.contains(&bind), "{bind}\nnot in {front:?}");
    for line in [
        "http-request set-header X-Forwarded-Proto https",
        "http-request set-header X-SSL-Client-Verify %[ssl_c_verify]",
        "http-request set-header X-SSL-Client-CN %{+Q}[ssl_c_s_dn(cn)]",
        // Not asked for: taken off, so a client cannot send its own.
        "http-request del-header X-SSL-Client-DN",
        "http-response set-header Strict-Transport-Security \"max-age=600; includeSubDomains; preload\"",
    ] {
        assert!(
            front.contains(&line.to_string()),
            "{line}\nnot in {front:?}"
        );
    }

    // The files: each certificate with its key, the list (default first), CA, CRL.
    let files = tls::tls_files(&cfg, &dir);
    let by_name = |n: &str| {
        files
            .iter()
            .find(|f| f.path == ldir.join(n))
            .unwrap_or_else(|| panic!("no {n} in {files:?}"))
            .contents
            .clone()
    };
    assert_eq!(
        by_name("crt-list"),
        format!(
            "{}\n{}\n",
            ldir.join("0.pem").display(),
            ldir.join("1.pem").display()
        )
    );
    assert!(
        by_name("0.pem").contains("default\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY")
    );
    assert!(by_name("1.pem").contains("sni-key"));
    assert_eq!(by_name("client-ca.pem"), "CA");
    assert_eq!(by_name("client-crl.pem"), "CRL");
    assert_eq!(files.len(), 5);
    // A key never shows in a configuration's Debug.
    assert!(!format!("{cfg:?}").contains("default-key"));
}

#[test]
fn terminated_https_directories_follow_the_certificates_only() {
    use statera_model::ClientAuthentication;
    let a = config(
        vec![tls_listener(tls(ClientAuthentication::None))],
        vec![pool(P1, PoolProtocol::Http)],
    );
    let text = rendered(&a);
    let bind = section(&text, &format!("frontend {}", id(L1)))
        .into_iter()
        .find(|l| l.starts_with("bind "))
        .unwrap();
    assert!(
        !bind.contains("verify") && !bind.contains("ca-file"),
        "{bind}"
    );
    // Another version, same certificates: the same directory (nothing to reload for them).
    let mut b = a.clone();
    b.version = 2;
    b.listeners[0].timeouts.client_data_ms += 1;
    assert_eq!(
        tls::tls_dir(&a, &options().dir),
        tls::tls_dir(&b, &options().dir)
    );
    // A rotated certificate: another directory.
    let mut c = a.clone();
    c.listeners[0].tls.as_mut().unwrap().certificates[0].chain_pem += "x";
    assert_ne!(
        tls::tls_dir(&a, &options().dir),
        tls::tls_dir(&c, &options().dir)
    );
    // Unreadable certificates (none in the configuration): refused, saying so.
    let mut d = a.clone();
    d.listeners[0].tls = None;
    // This listener only is refused, as one that cannot bind (the controller serves the rest).
    match render(&d, &options()) {
        Err(DataPlaneError::Bind {
            listener, reason, ..
        }) => {
            assert_eq!(listener, Some(id(L1)));
            assert!(
                reason.contains("could not be read from the key manager"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Cipher strings cannot break out of the bind line.
    let mut e = a.clone();
    e.listeners[0].tls.as_mut().unwrap().ciphers = Some("AES128 crt /etc/x".into());
    assert!(render(&e, &options()).is_err());
}

#[test]
fn pools_over_tls_verify_their_members_and_check_over_the_same_tls() {
    use statera_config::{PoolTls, PrivateKeyPem, TlsCertificate};
    let mut p = pool(P1, PoolProtocol::Http);
    p.tls = Some(PoolTls {
        unreadable: None,
        client_certificate: Some(TlsCertificate {
            reference: "r".into(),
            chain_pem: "CHAIN\n".into(),
            key_pem: PrivateKeyPem("KEY\n".into()),
            names: vec!["lb".into()],
        }),
        ca_pem: Some("CA".into()),
        crl_pem: Some("CRL".into()),
        versions: vec![statera_model::TlsVersion::TlsV1_2],
        ciphers: None,
        alpn_protocols: vec![statera_model::AlpnProtocol::Http11],
    });
    p.health_monitor = Some(monitor(HealthMonitorType::Https));
    let cfg = config(vec![listener(L1, ListenerProtocol::Http, 80)], vec![p]);
    let text = rendered(&cfg);
    let pdir = tls::tls_dir(&cfg, &options().dir).join(format!("pool-{}", id(P1)));
    let back = section(&text, &format!("backend {}", backend_name(id(P1), id(L1))));
    let server = back.iter().find(|l| l.starts_with("server ")).unwrap();
    let want = format!(
        " ssl verify required ca-file {} crl-file {} crt {} ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2 alpn http/1.1",
        pdir.join("ca.pem").display(),
        pdir.join("crl.pem").display(),
        pdir.join("client.pem").display()
    );
    assert!(server.contains(&want), "{server}\nshould hold {want}");
    // The HTTPS check uses the server's TLS, not an unverified one of its own.
    assert!(!server.contains("verify none"), "{server}");
    let files = tls::tls_files(&cfg, &tls::tls_dir(&cfg, &options().dir));
    let client = files
        .iter()
        .find(|f| f.path == pdir.join("client.pem"))
        .unwrap();
    assert_eq!(client.contents, "CHAIN\nKEY\n");
    assert_eq!(files.len(), 3);

    // Without a CA members are not verified (Octavia's behaviour).
    let mut plain = cfg.clone();
    let t = plain.pools[0].tls.as_mut().unwrap();
    t.ca_pem = None;
    t.crl_pem = None;
    let server = section(
        &rendered(&plain),
        &format!("backend {}", backend_name(id(P1), id(L1))),
    )
    .into_iter()
    .find(|l| l.starts_with("server "))
    .unwrap();
    assert!(server.contains(" ssl verify none crt "), "{server}");

    // References that did not read: refused, never served in plain text.
    let mut bad = cfg.clone();
    bad.pools[0].tls = Some(PoolTls::unreadable("certificate r: gone".into()));
    let err = render(&bad, &options()).unwrap_err().to_string();
    assert!(err.contains("tls_enabled") && err.contains("gone"), "{err}");
}
