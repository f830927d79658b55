//! L7 policies: which requests an HTTP listener rejects, redirects, or sends
//! to a pool other than its default one.
//!
//! Policies are compiled once, when a config is applied ([`Policies::compile`]
//! fails on an invalid regex or a missing pool, and the whole apply with it),
//! and evaluated per request by [`Policies::decide`], which only reads the
//! request head.
//!
//! Semantics follow Octavia's HAProxy provider, the reference:
//!
//! - a policy matches when all of its rules match; a rule's `invert` negates
//!   it. A policy without rules never matches (Octavia does not render such a
//!   policy at all);
//! - `HOST_NAME` compares the request's host (the absolute URI's authority,
//!   else the `Host` header) without its port and without one trailing dot
//!   (`Admin.Example.:80` is `admin.example`; `[::1]:80` is `[::1]`),
//!   case-insensitively; `PATH` the path without the query; `FILE_TYPE` the extension of the path's last
//!   segment (without the dot); `HEADER` every value of the header named by
//!   `key`; `COOKIE` the value of the cookie named by `key`. A missing header,
//!   cookie or extension matches nothing (so an inverted rule on it matches).
//!   Only the host is case-insensitive, as in HAProxy's rules;
//! - `SSL_*` rules test the client's TLS certificate: on plain HTTP there is
//!   none, so the rule's own test is false (and an inverted one is true);
//! - `REGEX` is an unanchored search, like HAProxy's `-m reg`;
//! - when a listener has a `PATH` or `FILE_TYPE` rule, the request target is
//!   normalised first ([`normalize_target`]) and rules see, and the member
//!   gets, the normalised target, so `//admin`, `/%61dmin`, `/./admin` and
//!   `/x/../admin` are all `/admin`. The haproxy provider renders the same
//!   steps as `http-request normalize-uri` lines.

use crate::tls::PeerCert;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{StatusCode, Uri};
use regex::{Regex, RegexBuilder};
use statera_config::{L7PolicyConfig, L7RuleConfig, LbConfig, ListenerConfig};
use statera_model::{L7PolicyAction, L7RuleCompareType, L7RuleType};
use uuid::Uuid;

/// Upper bound on a compiled regex's size: a rule is user input, and one huge
/// pattern must not eat the data plane's memory. Far above any sane rule.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a request gets, once the policies have looked at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// 403 from the proxy.
    Reject,
    /// A redirect from the proxy, with this status and `Location`.
    Redirect {
        status: StatusCode,
        location: HeaderValue,
    },
    /// Forward to this pool instead of the listener's default pool.
    Pool(Uuid),
    /// No policy matched: the default pool.
    Default,
}

/// One listener's enabled policies, compiled, in position order.
#[derive(Debug, Default)]
pub struct Policies {
    policies: Vec<Policy>,
    /// Some rule reads the path: requests are normalised first.
    normalizes_paths: bool,
}

#[derive(Debug)]
struct Policy {
    action: Action,
    rules: Vec<Rule>,
}

#[derive(Debug)]
enum Action {
    Reject,
    RedirectToUrl(StatusCode, HeaderValue),
    RedirectPrefix(StatusCode, String),
    Pool(Uuid),
}

/// How strongly an action binds, HAProxy's way: see [`Policies::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rank {
    Reject,
    Redirect,
    Pool,
}

impl Action {
    fn rank(&self) -> Rank {
        match self {
            Action::Reject => Rank::Reject,
            Action::RedirectToUrl(..) | Action::RedirectPrefix(..) => Rank::Redirect,
            Action::Pool(_) => Rank::Pool,
        }
    }
}

#[derive(Debug)]
struct Rule {
    subject: Subject,
    test: Test,
    invert: bool,
}

#[derive(Debug)]
enum Subject {
    Host,
    Path,
    FileType,
    Header(HeaderName),
    Cookie(String),
    /// Whether the client showed a certificate (`SSL_CONN_HAS_CERT`: the
    /// rule's value is not read, as HAProxy's `ssl_c_used`).
    HasCert,
    /// Whether the connection's verify result is this code
    /// (`SSL_VERIFY_RESULT`, as HAProxy's `ssl_c_verify eq N` whatever the
    /// compare type). Only verified certificates complete a handshake, so
    /// every TLS connection's result is 0, with a certificate or without
    /// (OpenSSL's X509_V_OK); plain HTTP has none.
    VerifyResult(u32),
    /// A field of the certificate's subject (`SSL_DN_FIELD`, keyed by its
    /// short name: `CN`, `O`, …).
    DnField(String),
}

#[derive(Debug)]
enum Test {
    Regex(Regex),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    EqualTo(String),
}

impl Test {
    fn matches(&self, value: &str) -> bool {
        match self {
            Test::Regex(re) => re.is_match(value),
            Test::StartsWith(s) => value.starts_with(s.as_str()),
            Test::EndsWith(s) => value.ends_with(s.as_str()),
            Test::Contains(s) => value.contains(s.as_str()),
            Test::EqualTo(s) => value == s,
        }
    }
}

impl Policies {
    /// Compiles `listener`'s policies; `config` is the load balancer they
    /// belong to (redirect pools must be in it).
    pub fn compile(listener: &ListenerConfig, config: &LbConfig) -> Result<Policies, String> {
        let policies = listener
            .l7policies
            .iter()
            .map(|policy| {
                compile_policy(policy, config).map_err(|e| format!("L7 policy {}: {e}", policy.id))
            })
            .collect::<Result<Vec<Policy>, _>>()?;
        let normalizes_paths = policies
            .iter()
            .flat_map(|p| &p.rules)
            .any(|r| matches!(r.subject, Subject::Path | Subject::FileType));
        Ok(Policies {
            policies,
            normalizes_paths,
        })
    }

    /// Whether there is no policy (every request goes to the default pool).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether requests must have their target normalised
    /// ([`normalize_target`]) before [`Policies::decide`] and forwarding: a
    /// rule reads the path.
    pub fn normalizes_paths(&self) -> bool {
        self.normalizes_paths
    }

    /// What the request with this URI and these headers gets. `normalized`:
    /// the target's origin form after [`normalize_target`] when that changed
    /// it (rules and redirects then use it instead of `uri`'s path).
    ///
    /// Like HAProxy, the action type outranks the position: the first
    /// matching REJECT wins over any redirect, and the first matching
    /// redirect (to a URL or a prefix) wins over any REDIRECT_TO_POOL, even
    /// when those come earlier in position order. Octavia's reference
    /// provider renders REJECT policies as `http-request reject`, redirects
    /// as `redirect`, and pool routing as `use_backend`, and HAProxy always
    /// evaluates them in that order whatever their order in the file; clients
    /// of the API rely on the reference's behaviour, so this engine does the
    /// same. Position only orders policies of the same rank.
    pub fn decide(
        &self,
        uri: &Uri,
        normalized: Option<&str>,
        headers: &HeaderMap,
        cert: Option<&PeerCert>,
    ) -> Decision {
        if self.policies.is_empty() {
            return Decision::Default;
        }
        let mut request = RequestView::new(uri, normalized, headers);
        request.cert = cert;
        for rank in [Rank::Reject, Rank::Redirect, Rank::Pool] {
            let matched = self
                .policies
                .iter()
                .filter(|p| p.action.rank() == rank)
                .find(|p| !p.rules.is_empty() && p.rules.iter().all(|r| r.matches(&request)));
            let Some(policy) = matched else {
                continue;
            };
            return match &policy.action {
                Action::Reject => Decision::Reject,
                Action::RedirectToUrl(status, location) => Decision::Redirect {
                    status: *status,
                    location: location.clone(),
                },
                Action::RedirectPrefix(status, prefix) => {
                    let path = normalized
                        .unwrap_or_else(|| uri.path_and_query().map_or("/", |p| p.as_str()));
                    match HeaderValue::try_from(format!("{prefix}{path}")) {
                        Ok(location) => Decision::Redirect {
                            status: *status,
                            location,
                        },
                        // A parsed request path is always a valid header
                        // value; should it not be, reject rather than
                        // forward a request the user meant to redirect.
                        Err(_) => Decision::Reject,
                    }
                }
                Action::Pool(id) => Decision::Pool(*id),
            };
        }
        Decision::Default
    }
}

fn compile_policy(policy: &L7PolicyConfig, config: &LbConfig) -> Result<Policy, String> {
    let status = || -> Result<StatusCode, String> {
        let code = policy.redirect_http_code.unwrap_or(302);
        match StatusCode::from_u16(code) {
            Ok(status) if status.is_redirection() => Ok(status),
            _ => Err(format!("{code} is not a redirect status")),
        }
    };
    let action = match policy.action {
        L7PolicyAction::Reject => Action::Reject,
        L7PolicyAction::RedirectToUrl => {
            let url = policy
                .redirect_url
                .as_deref()
                .ok_or("REDIRECT_TO_URL without redirect_url")?;
            let location = HeaderValue::from_str(url)
                .map_err(|_| format!("redirect_url {url:?} is not a valid Location"))?;
            Action::RedirectToUrl(status()?, location)
        }
        L7PolicyAction::RedirectPrefix => {
            let prefix = policy
                .redirect_prefix
                .as_deref()
                .ok_or("REDIRECT_PREFIX without redirect_prefix")?;
            HeaderValue::from_str(prefix)
                .map_err(|_| format!("redirect_prefix {prefix:?} is not a valid Location"))?;
            // The request path starts with '/': a prefix ending in '/' would
            // double it.
            let prefix = prefix.strip_suffix('/').unwrap_or(prefix).to_string();
            Action::RedirectPrefix(status()?, prefix)
        }
        L7PolicyAction::RedirectToPool => {
            let pool = policy
                .redirect_pool_id
                .ok_or("REDIRECT_TO_POOL without redirect_pool_id")?;
            if config.pool(pool).is_none() {
                return Err(format!("redirect pool {pool} is not in the load balancer"));
            }
            Action::Pool(pool)
        }
    };
    let rules = policy
        .rules
        .iter()
        .map(|rule| compile_rule(rule).map_err(|e| format!("L7 rule {}: {e}", rule.id)))
        .collect::<Result<_, _>>()?;
    Ok(Policy { action, rules })
}

fn compile_rule(rule: &L7RuleConfig) -> Result<Rule, String> {
    let key = || {
        rule.key
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| format!("{} rule without a key", rule.kind))
    };
    let subject = match rule.kind {
        L7RuleType::HostName => Subject::Host,
        L7RuleType::Path => Subject::Path,
        L7RuleType::FileType => Subject::FileType,
        L7RuleType::Header => Subject::Header(
            HeaderName::from_bytes(key()?.as_bytes())
                .map_err(|_| format!("{:?} is not a header name", rule.key))?,
        ),
        L7RuleType::Cookie => Subject::Cookie(key()?.to_string()),
        L7RuleType::SslConnHasCert => Subject::HasCert,
        L7RuleType::SslVerifyResult => Subject::VerifyResult(
            rule.value
                .trim()
                .parse()
                .map_err(|_| format!("SSL_VERIFY_RESULT value {:?} is not a number", rule.value))?,
        ),
        L7RuleType::SslDnField => Subject::DnField(key()?.to_string()),
    };
    let host = matches!(subject, Subject::Host);
    let mut value = rule.value.clone();
    if host {
        value = value.to_ascii_lowercase();
    }
    if matches!(subject, Subject::FileType) && rule.compare_type != L7RuleCompareType::Regex {
        // "jpg" and ".jpg" both mean the extension jpg.
        value = value.strip_prefix('.').unwrap_or(&value).to_string();
    }
    let test = match rule.compare_type {
        L7RuleCompareType::Regex => Test::Regex(
            RegexBuilder::new(&rule.value)
                .case_insensitive(host)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("invalid regex {:?}: {e}", rule.value))?,
        ),
        L7RuleCompareType::StartsWith => Test::StartsWith(value),
        L7RuleCompareType::EndsWith => Test::EndsWith(value),
        L7RuleCompareType::Contains => Test::Contains(value),
        L7RuleCompareType::EqualTo => Test::EqualTo(value),
    };
    Ok(Rule {
        subject,
        test,
        invert: rule.invert,
    })
}

impl Rule {
    fn matches(&self, request: &RequestView<'_>) -> bool {
        let test = |value: Option<&str>| value.is_some_and(|v| self.test.matches(v));
        let raw = match &self.subject {
            Subject::Host => test(request.host.as_deref()),
            Subject::Path => test(Some(request.path)),
            Subject::FileType => test(extension(request.path)),
            Subject::Header(name) => request
                .headers
                .get_all(name)
                .iter()
                .any(|v| test(v.to_str().ok())),
            Subject::Cookie(name) => test(cookie(request.headers, name)),
            Subject::HasCert => request.cert.is_some_and(|c| c.has_cert),
            Subject::VerifyResult(code) => request.cert.is_some() && *code == 0,
            Subject::DnField(field) => test(request.cert.and_then(|c| c.field(field))),
        };
        raw != self.invert
    }
}

/// The parts of a request head that rules look at.
struct RequestView<'a> {
    /// Lowercase, without port.
    host: Option<String>,
    path: &'a str,
    headers: &'a HeaderMap,
    /// TERMINATED_HTTPS: the client's certificate (`None` on plain HTTP).
    cert: Option<&'a PeerCert>,
}

impl<'a> RequestView<'a> {
    fn new(uri: &'a Uri, normalized: Option<&'a str>, headers: &'a HeaderMap) -> Self {
        let host = match uri.host() {
            Some(host) => Some(host),
            None => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(strip_port),
        };
        let path = match normalized {
            Some(target) => target.split_once('?').map_or(target, |(path, _)| path),
            None => uri.path(),
        };
        RequestView {
            host: host.map(|h| {
                // A fully qualified name's root dot names the same host.
                let h = h.strip_suffix('.').unwrap_or(h);
                h.to_ascii_lowercase()
            }),
            path,
            headers,
            cert: None,
        }
    }
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]` (as HAProxy's
/// `host_only`).
fn strip_port(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The request target `target` (origin form: a path, maybe a query)
/// normalised the way RFC 3986 §6.2.2 allows, in the order the haproxy
/// provider renders as `http-request normalize-uri` steps:
///
/// 1. percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
///    decoded and the hex digits of every other `%XX` are uppercased, in the
///    whole target (path and query), as HAProxy's `percent-decode-unreserved
///    strict` and `percent-to-uppercase strict` do. A `%` not followed by
///    two hex digits makes the target invalid ([`InvalidEscape`]: the
///    request is refused with 400): left as it is, `/%%36%31dmin` would
///    become `/%61dmin`, which a member decodes to `/admin`;
/// 2. in the path only: runs of `/` become one (`path-merge-slashes`),
///    then dot segments are removed (RFC 3986 §5.2.4: `path-strip-dot` then
///    `path-strip-dotdot full`, so `..` above the root is dropped).
///
/// Case is kept (`/ADMIN` is not `/admin`), and so are encoded reserved
/// characters (`%2F` stays: decoding it would change the path's segments).
/// `Ok(None)` when the target is already normal (or not origin form): the
/// common case costs one pass over the bytes and no allocation.
pub fn normalize_target(target: &[u8]) -> Result<Option<Vec<u8>>, InvalidEscape> {
    if !target.starts_with(b"/") || is_normal(target) {
        return Ok(None);
    }
    let mut decoded = Vec::with_capacity(target.len());
    let mut i = 0;
    while i < target.len() {
        let b = target[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                target.get(i + 1).copied().and_then(hex_value),
                target.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(InvalidEscape);
            };
            let byte = hi << 4 | lo;
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                decoded.push(byte);
            } else {
                decoded.extend_from_slice(&[b'%', target[i + 1].to_ascii_uppercase()]);
                decoded.push(target[i + 2].to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        decoded.push(b);
        i += 1;
    }
    let path_end = decoded
        .iter()
        .position(|b| *b == b'?')
        .unwrap_or(decoded.len());
    let (path, query) = decoded.split_at(path_end);
    // Segments after the leading '/': empty ones (runs of '/') merged away,
    // '.' dropped, '..' dropping the one before it.
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split(|b| *b == b'/') {
        trailing_slash = matches!(segment, b"" | b"." | b"..");
        match segment {
            b"" | b"." => {}
            b".." => {
                kept.pop();
            }
            _ => kept.push(segment),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for segment in &kept {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(query);
    Ok((out != target).then_some(out))
}

/// A request target with a `%` not followed by two hex digits: not a URI
/// (RFC 3986 §2.1), refused where targets are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidEscape;

/// Whether `target` (starting with '/') has nothing [`normalize_target`]
/// would change: no `%` at all, and no empty, `.` or `..` segment in its
/// path.
fn is_normal(target: &[u8]) -> bool {
    if target.contains(&b'%') {
        return false;
    }
    let path_end = target
        .iter()
        .position(|b| *b == b'?')
        .unwrap_or(target.len());
    let path = &target[..path_end];
    // Each segment starts after a '/': look at what follows it.
    let mut at = 0;
    while let Some(slash) = path[at..].iter().position(|b| *b == b'/') {
        let rest = &path[at + slash + 1..];
        let segment = rest.split(|b| *b == b'/').next().unwrap_or(b"");
        let last = segment.len() == rest.len();
        // An empty last segment is a trailing slash: normal.
        if (segment.is_empty() && !last) || segment == b"." || segment == b".." {
            return false;
        }
        at += slash + 1;
    }
    true
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The extension of the path's last segment: `/a/b.tar.gz` → `gz`;
/// `/a.b/c` and `/file.` have none.
fn extension(path: &str) -> Option<&str> {
    let segment = path.rsplit('/').next()?;
    let (_, ext) = segment.rsplit_once('.')?;
    (!ext.is_empty()).then_some(ext)
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use statera_config::{InsertHeaders, PoolConfig, Timeouts, Vip};
    use statera_model::{L7RuleCompareType as C, L7RuleType as T, LbAlgorithm, ListenerProtocol};

    fn rule(kind: T, compare: C, key: Option<&str>, value: &str, invert: bool) -> L7RuleConfig {
        L7RuleConfig {
            id: Uuid::new_v4(),
            kind,
            compare_type: compare,
            key: key.map(str::to_string),
            value: value.to_string(),
            invert,
        }
    }

    fn policy(action: L7PolicyAction, rules: Vec<L7RuleConfig>) -> L7PolicyConfig {
        L7PolicyConfig {
            id: Uuid::new_v4(),
            action,
            redirect_pool_id: None,
            redirect_url: Some("https://example.com/moved".into()),
            redirect_prefix: Some("https://example.com".into()),
            redirect_http_code: None,
            rules,
        }
    }

    fn config_with(policies: Vec<L7PolicyConfig>, pools: &[Uuid]) -> (ListenerConfig, LbConfig) {
        let listener = ListenerConfig {
            id: Uuid::new_v4(),
            protocol: ListenerProtocol::Http,
            protocol_port: 80,
            admin_state_up: true,
            connection_limit: None,
            default_pool_id: None,
            timeouts: Timeouts {
                client_data_ms: 1,
                member_connect_ms: 1,
                member_data_ms: 1,
                tcp_inspect_ms: 0,
            },
            insert_headers: InsertHeaders::default(),
            allowed_cidrs: Vec::new(),
            l7policies: policies,
            tls: None,
        };
        let pools = pools
            .iter()
            .map(|id| PoolConfig {
                id: *id,
                protocol: statera_model::PoolProtocol::Http,
                lb_algorithm: LbAlgorithm::RoundRobin,
                admin_state_up: true,
                session_persistence: None,
                members: Vec::new(),
                health_monitor: None,
                tls: None,
            })
            .collect();
        let config = LbConfig {
            lb_id: Uuid::new_v4(),
            version: 1,
            admin_state_up: true,
            vip: Vip {
                address: "127.0.0.1".parse().unwrap(),
                port_id: Uuid::new_v4(),
                subnet_id: Uuid::new_v4(),
                network_id: Uuid::new_v4(),
                mac_address: String::new(),
                subnet_cidr: "127.0.0.0/8".parse().unwrap(),
                gateway: None,
                namespace: None,
                plumbing: None,
            },
            listeners: vec![listener.clone()],
            pools,
        };
        (listener, config)
    }

    fn compile(policies: Vec<L7PolicyConfig>) -> Result<Policies, String> {
        let pools: Vec<Uuid> = policies.iter().filter_map(|p| p.redirect_pool_id).collect();
        let (listener, config) = config_with(policies, &pools);
        Policies::compile(&listener, &config)
    }

    /// A request: target (origin or absolute form) and header lines.
    fn request(target: &str, headers: &[(&str, &str)]) -> (Uri, HeaderMap) {
        let uri: Uri = target.parse().unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        (uri, map)
    }

    /// Request header lines, as (name, value).
    type Headers<'a> = &'a [(&'a str, &'a str)];

    /// A rule written `[not] TYPE[:key] COMPARE value`, e.g.
    /// `not HEADER:x-env EQUAL_TO canary` (an empty value may be left out).
    fn parse_rule(spec: &str) -> L7RuleConfig {
        let (invert, spec) = match spec.strip_prefix("not ") {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let mut words = spec.splitn(3, ' ');
        let subject = words.next().unwrap();
        let compare = words.next().unwrap().parse().unwrap();
        let value = words.next().unwrap_or("");
        let (kind, key) = match subject.split_once(':') {
            Some((kind, key)) => (kind, Some(key)),
            None => (subject, None),
        };
        rule(kind.parse().unwrap(), compare, key, value, invert)
    }

    /// Does one rule match one request? (rule, request target, request
    /// headers, expected).
    #[test]
    fn rule_table() {
        let host: Headers = &[("host", "API.Example.com:8080")];
        let env: Headers = &[("x-env", "canary")];
        let curl: Headers = &[("user-agent", "curl/8.5")];
        let cookies: Headers = &[("cookie", "a=1; tier=gold; b=2")];
        let table: &[(&str, &str, Headers, bool)] = &[
            // HOST_NAME: case-insensitive, port stripped.
            ("HOST_NAME EQUAL_TO api.example.com", "/", host, true),
            ("HOST_NAME EQUAL_TO API.EXAMPLE.COM", "/", host, true),
            ("HOST_NAME EQUAL_TO api.example.com:8080", "/", host, false),
            ("HOST_NAME STARTS_WITH api.", "/", host, true),
            ("HOST_NAME ENDS_WITH .com", "/", host, true),
            ("HOST_NAME CONTAINS example", "/", host, true),
            ("HOST_NAME REGEX ^api\\.EXAMPLE\\.com$", "/", host, true),
            ("HOST_NAME EQUAL_TO other.com", "/", host, false),
            ("not HOST_NAME EQUAL_TO other.com", "/", host, true),
            ("HOST_NAME EQUAL_TO a.test", "/", &[], false),
            ("not HOST_NAME EQUAL_TO a.test", "/", &[], true),
            // An absolute target's authority wins over the Host header.
            (
                "HOST_NAME EQUAL_TO abs.test",
                "http://abs.test:81/x",
                host,
                true,
            ),
            (
                "HOST_NAME EQUAL_TO [::1]",
                "/",
                &[("host", "[::1]:80")],
                true,
            ),
            // A fully qualified name's root dot is the same host; one only.
            (
                "HOST_NAME EQUAL_TO admin.example",
                "/",
                &[("host", "Admin.Example.:80")],
                true,
            ),
            (
                "HOST_NAME EQUAL_TO admin.example",
                "/",
                &[("host", "admin.example..")],
                false,
            ),
            // PATH: case-sensitive, without the query.
            ("PATH EQUAL_TO /api/v1", "/api/v1?x=1", &[], true),
            ("PATH EQUAL_TO /API/v1", "/api/v1", &[], false),
            ("PATH STARTS_WITH /api/", "/api/v1", &[], true),
            ("PATH STARTS_WITH /api/", "/apix", &[], false),
            ("PATH ENDS_WITH /v1", "/api/v1", &[], true),
            ("PATH CONTAINS pi/v", "/api/v1", &[], true),
            ("PATH REGEX ^/api/v[0-9]+$", "/api/v12", &[], true),
            ("PATH REGEX v[0-9]", "/api/v12", &[], true),
            ("PATH REGEX ^/v[0-9]", "/api/v12", &[], false),
            ("not PATH STARTS_WITH /api", "/static/a", &[], true),
            // FILE_TYPE: the extension of the last path segment.
            ("FILE_TYPE EQUAL_TO jpg", "/img/cat.jpg", &[], true),
            ("FILE_TYPE EQUAL_TO .jpg", "/img/cat.jpg?s=1", &[], true),
            ("FILE_TYPE EQUAL_TO jpg", "/img/cat.jpeg", &[], false),
            ("FILE_TYPE EQUAL_TO gz", "/a/b.tar.gz", &[], true),
            ("FILE_TYPE EQUAL_TO b", "/a.b/c", &[], false),
            ("FILE_TYPE REGEX ^(png|jpe?g)$", "/x.jpeg", &[], true),
            ("FILE_TYPE REGEX ^(png|jpe?g)$", "/x.gif", &[], false),
            ("not FILE_TYPE EQUAL_TO css", "/noext", &[], true),
            // HEADER: every value of the named header, case-sensitive.
            ("HEADER:X-Env EQUAL_TO canary", "/", env, true),
            ("HEADER:x-env EQUAL_TO Canary", "/", env, false),
            (
                "HEADER:x-env EQUAL_TO b",
                "/",
                &[("x-env", "a"), ("x-env", "b")],
                true,
            ),
            ("HEADER:user-agent STARTS_WITH curl/", "/", curl, true),
            ("not HEADER:user-agent CONTAINS bot", "/", curl, true),
            ("HEADER:x-id REGEX ^[0-9]+$", "/", &[("x-id", "123")], true),
            ("HEADER:x-missing EQUAL_TO", "/", &[], false),
            ("not HEADER:x-missing EQUAL_TO", "/", &[], true),
            // COOKIE: the named cookie's value.
            ("COOKIE:tier EQUAL_TO gold", "/", cookies, true),
            (
                "COOKIE:tier EQUAL_TO gold",
                "/",
                &[("cookie", "a=1"), ("cookie", "tier=gold")],
                true,
            ),
            (
                "COOKIE:tier EQUAL_TO gold",
                "/",
                &[("cookie", "mytier=gold")],
                false,
            ),
            (
                "COOKIE:sess STARTS_WITH ab",
                "/",
                &[("cookie", "sess=abc")],
                true,
            ),
            ("not COOKIE:tier EQUAL_TO gold", "/", &[], true),
            // SSL_*: plain HTTP has no client certificate.
            ("SSL_CONN_HAS_CERT EQUAL_TO", "/", &[], false),
            ("not SSL_CONN_HAS_CERT EQUAL_TO", "/", &[], true),
            ("SSL_DN_FIELD:CN EQUAL_TO x", "/", &[], false),
            ("SSL_VERIFY_RESULT EQUAL_TO 0", "/", &[], false),
        ];
        for (spec, target, headers, expected) in table {
            let r = compile_rule(&parse_rule(spec)).unwrap();
            let (uri, headers) = request(target, headers);
            let view = RequestView::new(&uri, None, &headers);
            assert_eq!(r.matches(&view), *expected, "{spec} on {target}");
        }
    }

    fn path_rule(prefix: &str) -> L7RuleConfig {
        rule(T::Path, C::StartsWith, None, prefix, false)
    }

    #[test]
    fn all_rules_of_a_policy_must_match_and_a_policy_without_rules_never_does() {
        let policies = compile(vec![
            policy(L7PolicyAction::Reject, vec![]),
            policy(
                L7PolicyAction::Reject,
                vec![
                    path_rule("/admin"),
                    rule(T::Header, C::EqualTo, Some("x-admin"), "1", true),
                ],
            ),
        ])
        .unwrap();
        let decide = |target: &str, headers: &[(&str, &str)]| {
            let (uri, headers) = request(target, headers);
            policies.decide(&uri, None, &headers, None)
        };
        assert_eq!(decide("/admin/x", &[]), Decision::Reject);
        assert_eq!(decide("/admin/x", &[("x-admin", "1")]), Decision::Default);
        assert_eq!(decide("/public", &[]), Decision::Default);
    }

    #[test]
    fn reject_outranks_redirects_which_outrank_pools_then_position_decides() {
        let (pool_a, pool_b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut to_a = policy(L7PolicyAction::RedirectToPool, vec![path_rule("/")]);
        to_a.redirect_pool_id = Some(pool_a);
        let mut to_b = policy(L7PolicyAction::RedirectToPool, vec![path_rule("/")]);
        to_b.redirect_pool_id = Some(pool_b);
        let mut to_url = policy(L7PolicyAction::RedirectToUrl, vec![path_rule("/old")]);
        to_url.redirect_http_code = Some(301);
        let prefix = policy(L7PolicyAction::RedirectPrefix, vec![path_rule("/old")]);
        let reject = policy(L7PolicyAction::Reject, vec![path_rule("/old/secret")]);
        let policies = compile(vec![to_a, to_b, to_url, prefix, reject]).unwrap();
        let decide = |target: &str| {
            let (uri, headers) = request(target, &[]);
            policies.decide(&uri, None, &headers, None)
        };
        assert_eq!(decide("/x"), Decision::Pool(pool_a));
        assert_eq!(
            decide("/old/page?q=1"),
            Decision::Redirect {
                status: StatusCode::MOVED_PERMANENTLY,
                location: HeaderValue::from_static("https://example.com/moved"),
            }
        );
        assert_eq!(decide("/old/secret"), Decision::Reject);
    }

    #[test]
    fn redirect_prefix_keeps_path_and_query() {
        let mut prefix = policy(L7PolicyAction::RedirectPrefix, vec![path_rule("/")]);
        prefix.redirect_prefix = Some("https://new.example.com/".into());
        prefix.redirect_http_code = Some(308);
        let policies = compile(vec![prefix]).unwrap();
        let (uri, headers) = request("/a/b?c=d&e", &[]);
        assert_eq!(
            policies.decide(&uri, None, &headers, None),
            Decision::Redirect {
                status: StatusCode::PERMANENT_REDIRECT,
                location: HeaderValue::from_static("https://new.example.com/a/b?c=d&e"),
            }
        );
    }

    #[test]
    fn invalid_configs_fail_to_compile() {
        let bad_regex = policy(
            L7PolicyAction::Reject,
            vec![rule(T::Path, C::Regex, None, "([a-z]", false)],
        );
        let err = compile(vec![bad_regex]).unwrap_err();
        assert!(err.contains("invalid regex"), "{err}");

        let missing_pool = {
            let mut p = policy(L7PolicyAction::RedirectToPool, vec![path_rule("/")]);
            p.redirect_pool_id = Some(Uuid::new_v4());
            p
        };
        let (listener, config) = config_with(vec![missing_pool], &[]);
        let err = Policies::compile(&listener, &config).unwrap_err();
        assert!(err.contains("not in the load balancer"), "{err}");

        let mut bad_code = policy(L7PolicyAction::RedirectToUrl, vec![path_rule("/")]);
        bad_code.redirect_http_code = Some(200);
        assert!(compile(vec![bad_code]).is_err());

        let no_key = policy(
            L7PolicyAction::Reject,
            vec![rule(T::Header, C::EqualTo, None, "x", false)],
        );
        assert!(compile(vec![no_key]).is_err());
    }

    /// What the haproxy provider's `normalize-uri` steps make of each
    /// target (checked against HAProxy 2.6 with the same steps).
    #[test]
    fn targets_are_normalised_as_haproxy_does() {
        let table = [
            ("//admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/./admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/ADMIN", "/ADMIN"),
            ("/../admin", "/admin"),
            ("/x/../../admin", "/admin"),
            ("/x/..%2fadmin", "/x/..%2Fadmin"),
            ("/%2e%2e/admin", "/admin"),
            ("/x/%2E%2e/admin", "/admin"),
            ("/a?x=%61dmin//..///", "/a?x=admin//..///"),
            ("/adm%69n/", "/admin/"),
            ("/%2561dmin", "/%2561dmin"),
            ("/%7euser", "/~user"),
            ("/b/./c/../d//e/%2f%7e", "/b/d/e/%2F~"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/b/../", "/a/"),
            ("/..", "/"),
            ("/.", "/"),
            ("/a/..", "/"),
            ("/a/./../b", "/b"),
            ("/a//../b", "/b"),
            ("/a/b/../../../c", "/c"),
            ("/%41%5a%7E%2d%5f%2e%30%39", "/AZ~-_.09"),
            ("/%c3%a9", "/%C3%A9"),
            ("/a/b/..?q=/../", "/a/?q=/../"),
            ("/a//b?x=%2f%61", "/a/b?x=%2Fa"),
            ("//", "/"),
            ("/./", "/"),
            ("/a/...//b", "/a/.../b"),
            ("/a/b/.%2e", "/a/"),
        ];
        for (target, expected) in table {
            let got = normalize_target(target.as_bytes())
                .unwrap()
                .map(|n| String::from_utf8(n).unwrap())
                .unwrap_or_else(|| target.to_string());
            assert_eq!(got, expected, "{target}");
        }
        // Already normal: nothing to do, nothing allocated.
        for target in [
            "/",
            "/admin",
            "/a/b/",
            "/a.b/.c/..d?x=//../",
            "/x?q=%2F",
            "*",
        ] {
            if !target.contains('%') {
                assert!(is_normal(target.as_bytes()) || target == "*", "{target}");
            }
            assert_eq!(normalize_target(target.as_bytes()), Ok(None), "{target}");
        }
        // An escape that is not one is refused (as HAProxy's `strict`):
        // `/%%36%31dmin` left half-decoded would be `/%61dmin`.
        for target in ["/%zz", "/a%", "/a%2", "/%%36%31dmin", "/q?x=%4g"] {
            assert_eq!(
                normalize_target(target.as_bytes()),
                Err(InvalidEscape),
                "{target}"
            );
        }
    }

    #[test]
    fn path_rules_match_the_normalised_target() {
        let policies = compile(vec![policy(
            L7PolicyAction::Reject,
            vec![path_rule("/admin")],
        )])
        .unwrap();
        assert!(policies.normalizes_paths());
        for target in ["//admin", "/%61dmin", "/./admin", "/x/../admin"] {
            let normalized = normalize_target(target.as_bytes()).unwrap().unwrap();
            let normalized = std::str::from_utf8(&normalized).unwrap();
            let (uri, headers) = request(target, &[]);
            assert_eq!(
                policies.decide(&uri, Some(normalized), &headers, None),
                Decision::Reject,
                "{target}"
            );
        }
        let (uri, headers) = request("/ADMIN", &[]);
        assert_eq!(
            policies.decide(&uri, None, &headers, None),
            Decision::Default
        );
        // Every compare type reads the same normalised path.
        for (compare, value) in [
            (C::EqualTo, "/admin/users"),
            (C::EndsWith, "admin/users"),
            (C::Contains, "/admin/"),
            (C::Regex, "^/admin/users$"),
        ] {
            let policies = compile(vec![policy(
                L7PolicyAction::Reject,
                vec![rule(T::Path, compare, None, value, false)],
            )])
            .unwrap();
            for target in [
                "//admin//users",
                "/%61dmin/us%65rs",
                "/x/.././admin/./users",
            ] {
                let normalized = normalize_target(target.as_bytes()).unwrap().unwrap();
                let normalized = std::str::from_utf8(&normalized).unwrap();
                let (uri, headers) = request(target, &[]);
                assert_eq!(
                    policies.decide(&uri, Some(normalized), &headers, None),
                    Decision::Reject,
                    "{compare:?} {value} on {target}"
                );
            }
        }
        let hosts_only = compile(vec![policy(
            L7PolicyAction::Reject,
            vec![rule(T::HostName, C::EqualTo, None, "a.test", false)],
        )])
        .unwrap();
        assert!(!hosts_only.normalizes_paths());
    }

    #[test]
    fn host_port_is_stripped() {
        for (host, expected) in [
            ("example.com", "example.com"),
            ("example.com:8080", "example.com"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
        ] {
            assert_eq!(strip_port(host), expected);
        }
    }
}
