//! `LbConfig` → haproxy.cfg, as a pure function.
//!
//! The shape follows Octavia's amphora driver (one `frontend <listener_id>`
//! per served listener, one `backend <pool_id>:<listener_id>` per pool a
//! listener uses), written from the field mapping rather than from its
//! templates. Everything this provider cannot serve faithfully is refused
//! with [`DataPlaneError::Unsupported`] before any text is produced.

use statera_config::{
    DataPlaneError, HealthMonitorConfig, L7PolicyConfig, L7RuleConfig, LbConfig, ListenerConfig,
    MemberConfig, PoolConfig,
};
use statera_model::{
    HealthMonitorType, L7PolicyAction, L7RuleCompareType, L7RuleType, LbAlgorithm,
    ListenerProtocol, PoolProtocol, SessionPersistenceType,
};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use uuid::Uuid;

/// A listener without a `connection_limit` gets this many connections, as
/// in Octavia (`default_connection_limit`).
pub const DEFAULT_CONNECTION_LIMIT: u32 = 50_000;
/// The global `maxconn` never goes above this, as in Octavia.
pub const MAX_GLOBAL_MAXCONN: u32 = 1_000_000;
/// Stick-table entries expire after this long without use when the pool
/// does not say (the native data plane's default too).
const DEFAULT_PERSISTENCE_TIMEOUT_S: u64 = 30 * 60;

/// What the rendered text needs to know besides the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// The stats socket (admin level: the provider reads `show stat` and
    /// HAProxy hands listening sockets over through it on reload).
    pub stats_socket: PathBuf,
    /// Upper bound for the global `maxconn` besides [`MAX_GLOBAL_MAXCONN`],
    /// and for every frontend's: the load balancer's connection ceiling
    /// (the native engine's rule, from Statera's descriptor budget), and at
    /// most what fits under the hard `RLIMIT_NOFILE` (HAProxy refuses to
    /// start when `2 × maxconn` descriptors do not).
    pub maxconn_cap: u32,
    /// The load balancer's directory (absolute): TERMINATED_HTTPS
    /// listeners' files go under it (`tls::tls_dir`).
    pub dir: PathBuf,
}

/// Renders `config` as a complete haproxy.cfg, or refuses it.
pub fn render(config: &LbConfig, options: &RenderOptions) -> Result<String, DataPlaneError> {
    let served = served_listeners(config)?;
    let mut out = String::new();
    render_global(&mut out, &served, options);
    if served.iter().any(|l| normalizes_paths(l)) {
        // `http-request normalize-uri` is experimental in HAProxy 2.6 (its
        // syntax may change in later releases; the steps rendered are the
        // ones 2.4 to 3.x share).
        out.truncate(out.trim_end().len());
        out.push_str("\n    expose-experimental-directives\n\n");
    }
    render_defaults(&mut out);
    for listener in &served {
        render_frontend(&mut out, config, listener, options)?;
    }
    for listener in &served {
        for pool in pools_of(config, listener) {
            render_backend(&mut out, config, listener, pool, options)?;
        }
    }
    Ok(out)
}

/// The listeners that become frontends (enabled, on an enabled load
/// balancer), refusing what HAProxy cannot serve here.
pub fn served_listeners(config: &LbConfig) -> Result<Vec<&ListenerConfig>, DataPlaneError> {
    if !config.admin_state_up {
        return Ok(Vec::new());
    }
    let mut served: Vec<&ListenerConfig> = Vec::new();
    for listener in config.listeners.iter().filter(|l| l.admin_state_up) {
        match listener.protocol {
            ListenerProtocol::Http | ListenerProtocol::Tcp | ListenerProtocol::Https => {}
            ListenerProtocol::Udp => {
                return Err(DataPlaneError::Unsupported(
                    "UDP listeners are not supported by the haproxy provider".into(),
                ));
            }
            ListenerProtocol::Sctp => {
                return Err(DataPlaneError::Unsupported(
                    "SCTP listeners are not supported by the haproxy provider".into(),
                ));
            }
            ListenerProtocol::TerminatedHttps => {
                if listener.tls.is_none() {
                    // This listener only: the controller serves the load
                    // balancer without it (ERROR) and tries it again later.
                    return Err(unservable(
                        config,
                        listener,
                        "its certificates could not be read from the key manager (a reference \
                         deleted, expired or no longer the project's; the controller's log says \
                         which)"
                            .into(),
                    ));
                }
            }
            ListenerProtocol::Prometheus => {
                return Err(DataPlaneError::Unsupported(format!(
                    "PROMETHEUS listeners are not supported by the haproxy provider (listener {})",
                    listener.id
                )));
            }
        }
        if !listener.l7policies.is_empty() && !is_http(listener) {
            return Err(DataPlaneError::Unsupported(format!(
                "L7 policies on a {} listener: only HTTP listeners evaluate them (listener {})",
                listener.protocol, listener.id
            )));
        }
        if let Some(other) = served
            .iter()
            .find(|l| l.protocol_port == listener.protocol_port)
        {
            return Err(DataPlaneError::Other(format!(
                "listeners {} and {} both use TCP port {}",
                other.id, listener.id, listener.protocol_port
            )));
        }
        served.push(listener);
    }
    Ok(served)
}

/// `listener` cannot be served as configured though the rest can: the same
/// answer as a socket that cannot be bound, so the controller leaves out
/// this listener (operating status ERROR) where the change is not about it,
/// and tries it again later.
fn unservable(config: &LbConfig, listener: &ListenerConfig, reason: String) -> DataPlaneError {
    DataPlaneError::Bind {
        address: socket_addr(SocketAddr::new(config.vip.address, listener.protocol_port)),
        reason,
        listener: Some(listener.id),
    }
}

/// The enabled pools `listener` sends traffic to: its default pool, then
/// every REDIRECT_TO_POOL target, each once.
pub fn pools_of<'a>(config: &'a LbConfig, listener: &ListenerConfig) -> Vec<&'a PoolConfig> {
    let mut ids: Vec<Uuid> = Vec::new();
    ids.extend(listener.default_pool_id);
    for policy in &listener.l7policies {
        if policy.action == L7PolicyAction::RedirectToPool {
            ids.extend(policy.redirect_pool_id);
        }
    }
    let mut pools: Vec<&PoolConfig> = Vec::new();
    for id in ids {
        if let Some(pool) = config.pool(id).filter(|p| p.admin_state_up)
            && !pools.iter().any(|p| p.id == id)
        {
            pools.push(pool);
        }
    }
    pools
}

/// The name of the backend serving `pool` for `listener`.
pub fn backend_name(pool: Uuid, listener: Uuid) -> String {
    format!("{pool}:{listener}")
}

/// A listener's `maxconn`: its `connection_limit` (the default for none),
/// never above the load balancer's ceiling.
fn connection_limit(listener: &ListenerConfig, options: &RenderOptions) -> u32 {
    listener
        .connection_limit
        .unwrap_or(DEFAULT_CONNECTION_LIMIT)
        .min(options.maxconn_cap.max(1))
}

/// `noreuseport`: a listening socket is never shared with another process.
/// HAProxy otherwise binds with `SO_REUSEPORT`, and a second load balancer
/// (another project's) on the same address and port would silently take
/// half of the connections. Reloads stay seamless without it: the new worker
/// takes the old one's sockets themselves (the stats socket's `expose-fd
/// listeners`, which the master uses on reload) instead of binding again.
fn render_global(out: &mut String, served: &[&ListenerConfig], options: &RenderOptions) {
    let sum: u64 = if served.is_empty() {
        u64::from(DEFAULT_CONNECTION_LIMIT)
    } else {
        served
            .iter()
            .map(|l| u64::from(connection_limit(l, options)))
            .sum()
    };
    let cap = MAX_GLOBAL_MAXCONN.min(options.maxconn_cap.max(1));
    let maxconn = sum.min(u64::from(cap));
    let _ = write!(
        out,
        "# Rendered by statera-haproxy; rewritten on every apply.\n\
         global\n    \
         master-worker\n    \
         noreuseport\n    \
         maxconn {maxconn}\n    \
         stats socket {} mode 600 level admin expose-fd listeners\n    \
         stats timeout 30s\n\n",
        options.stats_socket.display()
    );
}

fn render_defaults(out: &mut String) {
    // No `mode` here: every proxy states its own, so HTTP-only options below
    // are simply ignored by TCP proxies.
    out.push_str(
        "defaults\n    \
         no log\n    \
         retries 3\n    \
         option redispatch\n    \
         timeout connect 5s\n    \
         timeout client 50s\n    \
         timeout server 50s\n    \
         timeout check 5s\n\n",
    );
}

/// Whether HAProxy sees HTTP on `listener` (after TLS, for TERMINATED_HTTPS).
fn is_http(listener: &ListenerConfig) -> bool {
    matches!(
        listener.protocol,
        ListenerProtocol::Http | ListenerProtocol::TerminatedHttps
    )
}

fn mode(listener: &ListenerConfig) -> &'static str {
    if is_http(listener) { "http" } else { "tcp" }
}

fn socket_addr(addr: SocketAddr) -> String {
    // HAProxy reads `[v6]:port` and `v4:port`; `SocketAddr`'s Display is
    // exactly that.
    addr.to_string()
}

fn render_frontend(
    out: &mut String,
    config: &LbConfig,
    listener: &ListenerConfig,
    options: &RenderOptions,
) -> Result<(), DataPlaneError> {
    let mode = mode(listener);
    let t = &listener.timeouts;
    let _ = writeln!(out, "frontend {}", listener.id);
    let _ = writeln!(out, "    mode {mode}");
    if mode == "http" {
        out.push_str("    option http-keep-alive\n");
        // On a reload the old worker answers the next request of each idle
        // keep-alive connection (with `Connection: close`) instead of closing
        // it under the client, which would lose that request.
        out.push_str("    option idle-close-on-response\n");
    }
    let bind_tls = match &listener.tls {
        Some(t) => tls::bind_options(listener, t, &tls::tls_dir(config, &options.dir))?,
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "    bind {}{bind_tls}",
        socket_addr(SocketAddr::new(config.vip.address, listener.protocol_port))
    );
    let _ = writeln!(out, "    maxconn {}", connection_limit(listener, options));
    let _ = writeln!(out, "    timeout client {}ms", t.client_data_ms);
    if t.tcp_inspect_ms > 0 {
        let _ = writeln!(out, "    tcp-request inspect-delay {}ms", t.tcp_inspect_ms);
    }
    if !listener.allowed_cidrs.is_empty() {
        // Octavia enforces allowed_cidrs with security-group rules on the VIP
        // port; a process on the host has no such port, so HAProxy closes
        // other sources as soon as they connect.
        let cidrs: Vec<String> = listener
            .allowed_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect();
        let _ = writeln!(
            out,
            "    tcp-request connection reject if !{{ src {} }}",
            cidrs.join(" ")
        );
    }
    if mode == "http" {
        let h = &listener.insert_headers;
        if h.x_forwarded_for {
            out.push_str("    option forwardfor\n");
        }
        if h.x_forwarded_port {
            out.push_str("    http-request set-header X-Forwarded-Port %[dst_port]\n");
        }
        if h.x_forwarded_proto {
            let proto = if listener.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let _ = writeln!(out, "    http-request set-header X-Forwarded-Proto {proto}");
        }
        if let Some(t) = &listener.tls {
            tls::http_lines(out, t, &h.client_cert)?;
        }
    }
    if normalizes_paths(listener) {
        render_normalize(out);
    }
    render_policies(out, config, listener)?;
    if let Some(pool) = listener
        .default_pool_id
        .and_then(|id| config.pool(id))
        .filter(|p| p.admin_state_up)
    {
        let _ = writeln!(
            out,
            "    default_backend {}",
            backend_name(pool.id, listener.id)
        );
    }
    out.push('\n');
    Ok(())
}

/// Whether an L7 rule of `listener` (of a policy that is rendered: one with
/// rules) reads the path: then requests are normalised before the rules.
fn normalizes_paths(listener: &ListenerConfig) -> bool {
    is_http(listener)
        && listener
            .l7policies
            .iter()
            .flat_map(|p| &p.rules)
            .any(|r| matches!(r.kind, L7RuleType::Path | L7RuleType::FileType))
}

/// The request target normalised before the rules read it, so `//admin`,
/// `/%61dmin`, `/./admin` and `/x/../admin` are all `/admin` (the member
/// gets the normalised target too). The same steps, in the same order, as
/// the native data plane's `l7::normalize_target`: unreserved characters
/// decoded and other escapes uppercased (whole target; `strict`: a `%` that
/// is not an escape is 400), then, in the path,
/// slashes merged, `.` segments removed, `..` segments removed with the one
/// before them (`full`: also above the root).
fn render_normalize(out: &mut String) {
    for step in [
        "percent-decode-unreserved strict",
        "percent-to-uppercase strict",
        "path-merge-slashes",
        "path-strip-dot",
        "path-strip-dotdot full",
    ] {
        let _ = writeln!(out, "    http-request normalize-uri {step}");
    }
}

/// L7 policies: one ACL per rule (named by the rule's id), then the actions
/// grouped the way HAProxy evaluates them whatever the line order
/// (`http-request deny`, then `redirect`, then `use_backend`), each group in
/// position order. A policy without rules, or redirecting to a pool that is
/// not served, is left out, as in Octavia.
fn render_policies(
    out: &mut String,
    config: &LbConfig,
    listener: &ListenerConfig,
) -> Result<(), DataPlaneError> {
    let mut denies = Vec::new();
    let mut redirects = Vec::new();
    let mut pools = Vec::new();
    for policy in &listener.l7policies {
        if policy.rules.is_empty() {
            continue;
        }
        let condition = condition(policy);
        match policy.action {
            L7PolicyAction::Reject => denies.push(format!("http-request deny if {condition}")),
            L7PolicyAction::RedirectToUrl => {
                let Some(url) = &policy.redirect_url else {
                    continue;
                };
                redirects.push(format!(
                    "redirect code {} location {} if {condition}",
                    redirect_code(policy),
                    quote(url)?
                ));
            }
            L7PolicyAction::RedirectPrefix => {
                let Some(prefix) = &policy.redirect_prefix else {
                    continue;
                };
                redirects.push(format!(
                    "redirect code {} prefix {} if {condition}",
                    redirect_code(policy),
                    quote(prefix)?
                ));
            }
            L7PolicyAction::RedirectToPool => {
                let Some(pool) = policy
                    .redirect_pool_id
                    .and_then(|id| config.pool(id))
                    .filter(|p| p.admin_state_up)
                else {
                    continue;
                };
                pools.push(format!(
                    "use_backend {} if {condition}",
                    backend_name(pool.id, listener.id)
                ));
            }
        }
        for rule in &policy.rules {
            let _ = writeln!(out, "    acl {} {}", rule.id, acl_expression(rule)?);
        }
    }
    for line in denies.iter().chain(&redirects).chain(&pools) {
        let _ = writeln!(out, "    {line}");
    }
    Ok(())
}

fn condition(policy: &L7PolicyConfig) -> String {
    let terms: Vec<String> = policy
        .rules
        .iter()
        .map(|r| {
            if r.invert {
                format!("!{}", r.id)
            } else {
                r.id.to_string()
            }
        })
        .collect();
    terms.join(" ")
}

fn redirect_code(policy: &L7PolicyConfig) -> u16 {
    policy.redirect_http_code.unwrap_or(302)
}

fn matcher(compare: L7RuleCompareType) -> &'static str {
    match compare {
        L7RuleCompareType::Regex => "-m reg",
        L7RuleCompareType::StartsWith => "-m beg",
        L7RuleCompareType::EndsWith => "-m end",
        L7RuleCompareType::Contains => "-m sub",
        L7RuleCompareType::EqualTo => "-m str",
    }
}

/// The ACL expression of one rule (without the `acl <name>` head).
pub fn acl_expression(rule: &L7RuleConfig) -> Result<String, DataPlaneError> {
    let m = matcher(rule.compare_type);
    let value = quote(&rule.value)?;
    let key = || -> Result<&str, DataPlaneError> {
        let key = rule.key.as_deref().unwrap_or_default();
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(key)
        } else {
            Err(DataPlaneError::Other(format!(
                "L7 rule {}: key {key:?} is not a name this provider can render",
                rule.id
            )))
        }
    };
    Ok(match rule.kind {
        // The host without its port (`host_only`, which knows `[v6]:port`)
        // and without one trailing dot (`admin.example.` is the same host),
        // as the native data plane compares it.
        L7RuleType::HostName => {
            format!("req.hdr(host),host_only,regsub(\"\\.\\$\",\"\") -i {m} {value}")
        }
        L7RuleType::Path => format!("path {m} {value}"),
        L7RuleType::FileType => match rule.compare_type {
            // "ends with the extension", as Octavia renders it.
            L7RuleCompareType::EqualTo => format!("path_end {value}"),
            _ => format!("path_end {m} {value}"),
        },
        L7RuleType::Header => format!("req.hdr({}) {m} {value}", key()?),
        L7RuleType::Cookie => format!("req.cook({}) {m} {value}", key()?),
        L7RuleType::SslConnHasCert => "ssl_c_used".to_string(),
        L7RuleType::SslVerifyResult => {
            let code: u32 = rule.value.trim().parse().map_err(|_| {
                DataPlaneError::Other(format!(
                    "L7 rule {}: SSL_VERIFY_RESULT value {:?} is not a number",
                    rule.id, rule.value
                ))
            })?;
            format!("ssl_c_verify eq {code}")
        }
        L7RuleType::SslDnField => format!("ssl_c_s_dn({}) {m} {value}", key()?),
    })
}

/// One configuration word in double quotes: `\`, `"` and `$` (environment
/// expansion) are escaped, so spaces and `#` are taken literally. Control
/// characters have no faithful spelling and are refused.
pub fn quote(value: &str) -> Result<String, DataPlaneError> {
    if value.chars().any(char::is_control) {
        return Err(DataPlaneError::Other(format!(
            "value {value:?} contains control characters"
        )));
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Ok(quoted)
}

fn render_backend(
    out: &mut String,
    config: &LbConfig,
    listener: &ListenerConfig,
    pool: &PoolConfig,
    options: &RenderOptions,
) -> Result<(), DataPlaneError> {
    let vip = config.vip.address;
    let server_tls = match &pool.tls {
        Some(t) => match &t.unreadable {
            Some(why) => {
                let why = format!("its pool {} (tls_enabled): {why}", pool.id);
                return Err(unservable(config, listener, why));
            }
            None => Some(tls::server_options(
                pool,
                t,
                &tls::tls_dir(config, &options.dir),
            )?),
        },
        None => None,
    };
    let mode = mode(listener);
    let t = &listener.timeouts;
    let _ = writeln!(out, "backend {}", backend_name(pool.id, listener.id));
    let _ = writeln!(out, "    mode {mode}");
    let proxy = match pool.protocol {
        PoolProtocol::Proxy => Some("send-proxy"),
        PoolProtocol::ProxyV2 => Some("send-proxy-v2"),
        _ => None,
    };
    if mode == "http" && proxy.is_none() {
        out.push_str("    http-reuse safe\n");
    }
    match pool.lb_algorithm {
        LbAlgorithm::RoundRobin => out.push_str("    balance roundrobin\n"),
        LbAlgorithm::LeastConnections => out.push_str("    balance leastconn\n"),
        LbAlgorithm::SourceIp => out.push_str("    balance source\n"),
        LbAlgorithm::SourceIpPort => {
            // HAProxy ≥ 2.6 hashes any sample expression: the client's
            // address and port, joined.
            out.push_str("    tcp-request content set-var(txn.src_port) src_port\n");
            out.push_str("    balance hash src,concat(:,txn.src_port)\n");
        }
    }
    if let Some(sp) = &pool.session_persistence {
        let expire = sp
            .persistence_timeout
            .unwrap_or(DEFAULT_PERSISTENCE_TIMEOUT_S);
        match sp.kind {
            SessionPersistenceType::SourceIp => {
                let _ = writeln!(
                    out,
                    "    stick-table type ipv6 size 10k expire {expire}s\n    stick on src"
                );
            }
            // Cookies exist in HTTP mode only; a TCP listener has none to
            // read (HAProxy would ignore them with a warning).
            SessionPersistenceType::HttpCookie if mode == "http" => {
                out.push_str("    cookie SRV insert indirect nocache\n");
            }
            SessionPersistenceType::AppCookie if mode == "http" => {
                if let Some(name) = &sp.cookie_name {
                    let name = cookie_name(name)?;
                    let _ = writeln!(
                        out,
                        "    stick-table type string len 64 size 10k expire {expire}s\n    \
                         stick store-response res.cook({name})\n    \
                         stick match req.cook({name})"
                    );
                }
            }
            _ => {}
        }
    }
    let _ = writeln!(out, "    fullconn {}", connection_limit(listener, options));
    let _ = writeln!(out, "    timeout connect {}ms", t.member_connect_ms);
    let _ = writeln!(out, "    timeout server {}ms", t.member_data_ms);
    let monitor = pool.health_monitor.as_ref().filter(|hm| hm.admin_state_up);
    if let Some(hm) = monitor {
        render_monitor(out, hm)?;
    }
    if pool.members.iter().any(|m| m.backup) {
        out.push_str("    option allbackups\n");
    }
    let cookies = mode == "http"
        && pool
            .session_persistence
            .as_ref()
            .is_some_and(|sp| sp.kind == SessionPersistenceType::HttpCookie);
    for member in &pool.members {
        let mut line = server_line(member, monitor, cookies, proxy, server_tls.as_deref());
        // Members see the VIP as the source (`statera_config::member_source`),
        // health checks included.
        if let Some(source) = statera_config::member_source(vip, member.address) {
            // An IPv6 source needs its brackets (`source ::1` is refused).
            match source {
                IpAddr::V4(v4) => {
                    let _ = write!(line, " source {v4}");
                }
                IpAddr::V6(v6) => {
                    let _ = write!(line, " source [{v6}]");
                }
            }
        }
        let _ = writeln!(out, "    {line}");
    }
    out.push('\n');
    Ok(())
}

fn cookie_name(name: &str) -> Result<&str, DataPlaneError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name)
    } else {
        Err(DataPlaneError::Other(format!(
            "cookie name {name:?} is not a name this provider can render"
        )))
    }
}

fn render_monitor(out: &mut String, hm: &HealthMonitorConfig) -> Result<(), DataPlaneError> {
    match hm.kind {
        HealthMonitorType::Http | HealthMonitorType::Https => {
            let method = hm.http_method.map(|m| m.as_str()).unwrap_or("GET");
            let path = hm.url_path.as_deref().unwrap_or("/");
            if path.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(DataPlaneError::Other(format!(
                    "health monitor {}: url_path {path:?} cannot be sent",
                    hm.id
                )));
            }
            let path = quote(path)?;
            match hm.http_version {
                Some(v) => {
                    let _ = writeln!(out, "    option httpchk {method} {path} HTTP/{v:.1}");
                }
                None => {
                    let _ = writeln!(out, "    option httpchk {method} {path}");
                }
            }
            if let Some(domain) = &hm.domain_name
                && hm.http_version.is_some_and(|v| v >= 1.1)
            {
                let _ = writeln!(out, "    http-check send hdr Host {}", quote(domain)?);
            }
            let codes = hm.expected_codes.as_deref().unwrap_or("200");
            let _ = writeln!(
                out,
                "    http-check expect rstatus {}",
                expected_codes_regex(codes)
                    .map_err(|e| DataPlaneError::Other(format!("health monitor {}: {e}", hm.id)))?
            );
        }
        HealthMonitorType::Tcp | HealthMonitorType::TlsHello => {}
        HealthMonitorType::Ping => {
            return Err(DataPlaneError::Unsupported(format!(
                "PING health monitors are not supported by the haproxy provider: HAProxy \
                 pings only through external-check with a helper script, which this \
                 provider does not install (health monitor {})",
                hm.id
            )));
        }
        HealthMonitorType::UdpConnect | HealthMonitorType::Sctp => {
            return Err(DataPlaneError::Unsupported(format!(
                "{} health monitors are not supported by the haproxy provider (health monitor {})",
                hm.kind, hm.id
            )));
        }
    }
    if hm.timeout_s > 0 {
        let _ = writeln!(out, "    timeout check {}s", hm.timeout_s);
    }
    Ok(())
}

/// Octavia's `expected_codes` (`200`, `200,202`, `200-204`) as an anchored
/// regex alternation for `http-check expect rstatus`.
pub fn expected_codes_regex(codes: &str) -> Result<String, String> {
    let mut list: Vec<u16> = Vec::new();
    for part in codes.split(',').map(str::trim) {
        let parse = |s: &str| -> Result<u16, String> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| format!("expected_codes {codes:?} is not a list of HTTP codes"))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (parse(low)?, parse(high)?);
                if low > high {
                    return Err(format!("expected_codes {codes:?}: empty range {part}"));
                }
                list.extend(low..=high);
            }
            None => list.push(parse(part)?),
        }
    }
    let list: Vec<String> = list.iter().map(u16::to_string).collect();
    Ok(format!("^({})$", list.join("|")))
}

fn server_line(
    member: &MemberConfig,
    monitor: Option<&HealthMonitorConfig>,
    cookies: bool,
    proxy: Option<&str>,
    tls: Option<&str>,
) -> String {
    let mut line = format!(
        "server {} {} weight {}",
        member.id,
        socket_addr(SocketAddr::new(member.address, member.protocol_port)),
        member.weight
    );
    if let Some(hm) = monitor {
        let _ = write!(
            line,
            " check inter {}s fall {} rise {}",
            hm.delay_s.max(1),
            hm.fall.max(1),
            hm.rise.max(1)
        );
        if let Some(addr) = member.monitor_address {
            let _ = write!(line, " addr {}", plain_addr(addr));
        }
        if let Some(port) = member.monitor_port {
            let _ = write!(line, " port {port}");
        }
        let tls_check = matches!(
            hm.kind,
            HealthMonitorType::Https | HealthMonitorType::TlsHello
        );
        match tls {
            // A pool over TLS: checks go over the server's own TLS settings
            // (`check-ssl` when they go to another address or port, where
            // HAProxy would check in clear).
            Some(_)
                if tls_check
                    && (member.monitor_port.is_some() || member.monitor_address.is_some()) =>
            {
                line.push_str(" check-ssl")
            }
            Some(_) => {}
            None if tls_check => line.push_str(" check-ssl verify none"),
            None => {}
        }
    }
    if let Some(tls) = tls {
        line.push_str(tls);
    }
    if cookies {
        let _ = write!(line, " cookie {}", member.id);
    }
    if let Some(proxy) = proxy {
        let _ = write!(line, " {proxy}");
    }
    if member.backup {
        line.push_str(" backup");
    }
    if !member.admin_state_up {
        line.push_str(" disabled");
    }
    line
}

fn plain_addr(addr: IpAddr) -> String {
    addr.to_string()
}

pub mod tls;

#[cfg(test)]
mod tests;
