//! Who is asking: the request context every handler receives.
//!
//! The deployment's [`Authenticator`](statera_identity::Authenticator) turns
//! the request's headers into a [`Caller`] (a built-in or external Keystone
//! token, or `noauth`'s headers); a request it refuses is answered 401 in
//! Keystone's shape before any handler runs. Handlers then authorize by
//! rule name (`os_load-balancer_api:loadbalancer:get_one`, `create_port`, …)
//! through [`RequestContext::authorize`] / [`RequestContext::allowed`],
//! thin forwarders to the service layer's [`Context`], which asks the
//! deployment's [`Enforcer`] (Octavia's and Neutron's defaults, overridden by
//! the operator's policy file).

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use statera_identity::{AuthError, Caller};
use statera_policy::{Enforcer, Target};
use statera_service::Context;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The caller's project (`caller.project_id`, or "" when the call is not
    /// project-scoped).
    pub project_id: String,
    /// The caller's roles (`caller.roles`).
    pub roles: Vec<String>,
    pub caller: Caller,
    /// Scheme and authority the client used, for links (`http://host:9876`).
    pub base_url: String,
    /// The caller under the deployment's policy, as the service layer takes it.
    pub service: Context,
}

pub use statera_service::project_target;

impl RequestContext {
    /// A context for `caller` under `policy` (the extractor below builds it
    /// from the request; tools and tests may build one directly).
    pub fn new(caller: Caller, policy: Arc<Enforcer>, base_url: String) -> RequestContext {
        RequestContext {
            project_id: caller.project().to_string(),
            roles: caller.roles.clone(),
            service: Context::new(caller.clone(), policy),
            caller,
            base_url,
        }
    }

    /// Whether the policy rule `rule` allows the caller on an object of
    /// `project_id` ([`Context::allowed`]).
    pub fn allowed(&self, rule: &str, project_id: &str) -> bool {
        self.service.allowed(rule, project_id)
    }

    /// Whether `rule` allows the caller on `target` ([`Context::allowed_on`]).
    pub fn allowed_on(&self, rule: &str, target: &Target) -> bool {
        self.service.allowed_on(rule, target)
    }

    /// [`RequestContext::allowed`], or 403 in the API's shape
    /// ([`Context::authorize`]).
    pub fn authorize(&self, rule: &str, project_id: &str) -> Result<(), ApiError> {
        Ok(self.service.authorize(rule, project_id)?)
    }

    /// The cloud admin (`context_is_admin`, what oslo calls `is_admin`).
    pub fn is_admin(&self) -> bool {
        self.service.is_admin()
    }

    /// Whether the caller holds `role` (roles compare case-insensitively).
    /// Not for handlers: they authorize by rule name (architecture test
    /// `i_handlers_authorize_by_rule_name` refuses `.has_role(` anywhere in
    /// the API but here).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The scheme and authority the client addressed, for links. The proxy
/// headers (`X-Forwarded-Proto`, `X-Forwarded-Host`) count only when the
/// operator says a proxy in front sets them (`[api] trust_proxy_headers`, as
/// oslo.middleware's `enable_proxy_headers_parsing`): otherwise any client
/// could make the answers name another host — the version document a shared
/// cache keeps, say, would send everyone's passwords there.
pub fn base_url(headers: &HeaderMap, trust_proxy_headers: bool) -> String {
    let forwarded = |name| header(headers, name).filter(|_| trust_proxy_headers);
    let proto = forwarded("x-forwarded-proto").unwrap_or("http");
    let host = forwarded("x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .unwrap_or("127.0.0.1:9876");
    format!("{proto}://{host}")
}

/// The address of the connection a request came on, put in the request's
/// extensions by the server (`statera`'s `api_server`); absent when the API
/// is called in process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Which client a request is from, for per-client bounds (the password gate's
/// share): the connection's peer, or, when the operator trusts a proxy in
/// front (`[api] trust_proxy_headers`), the last address in
/// `X-Forwarded-For` — the one that proxy appended; the earlier ones are the
/// client's own words. An address with a port counts without it; a header
/// that names no address counts as the unspecified address, one client of
/// its own (not the proxy, whose share the proxy's other clients need).
/// `None` for an in-process call.
pub fn client_ip(parts: &Parts, trust_proxy_headers: bool) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    if trust_proxy_headers
        && let Some(last) = parts.headers.get_all("x-forwarded-for").iter().next_back()
    {
        let named = last
            .to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .and_then(|a| {
                a.parse::<IpAddr>()
                    .ok()
                    .or_else(|| a.parse::<SocketAddr>().ok().map(|s| s.ip()))
            });
        return Some(named.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    }
    parts.extensions.get::<PeerAddr>().map(|p| p.0.ip())
}

/// The client a request is from ([`client_ip`]), as a handler's argument.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Client(client_ip(parts, state.settings.trust_proxy_headers)))
    }
}

/// Who is calling, by the deployment's authenticator: a refused request is
/// 401 in Keystone's shape (with `WWW-Authenticate`), an identity service
/// that cannot be asked 503 in the route's shape.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
) -> Result<Caller, ApiError> {
    match state.auth.authenticate(headers).await {
        Ok(caller) => Ok(caller),
        Err(e @ AuthError::Unavailable(_)) => {
            tracing::warn!(error = %e, "identity service unavailable");
            Err(crate::styled(
                ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                crate::style_of_path(path),
            ))
        }
        Err(e) => {
            if let AuthError::Invalid(reason) = &e {
                tracing::info!(%reason, "token refused");
            }
            Err(ApiError::unauthorized(state.auth.identity_uri(&base_url(
                headers,
                state.settings.trust_proxy_headers,
            ))))
        }
    }
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let base_url = base_url(&parts.headers, state.settings.trust_proxy_headers);
        // `lib.rs`'s authentication layer has already asked, for every route
        // but discovery and token issue.
        let caller = match parts.extensions.get::<Caller>() {
            Some(caller) => caller.clone(),
            None => authenticate(state, &parts.headers, parts.uri.path()).await?,
        };
        Ok(RequestContext::new(caller, state.policy.clone(), base_url))
    }
}

#[cfg(test)]
mod client_tests {
    use super::{PeerAddr, client_ip};

    fn parts(xff: &[&str]) -> axum::http::request::Parts {
        let mut b = axum::http::Request::builder();
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(PeerAddr("192.0.2.1:5000".parse().unwrap()));
        parts
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_names_it_last() {
        let ip = |xff: &[&str], trust| client_ip(&parts(xff), trust).map(|i| i.to_string());
        let peer = Some("192.0.2.1".to_string());
        // Not trusted: the header is the client's own words.
        assert_eq!(ip(&["203.0.113.9"], false), peer);
        assert_eq!(ip(&[], true), peer);
        // Trusted: the last address of the last header, with or without a port.
        let last = Some("203.0.113.6".to_string());
        assert_eq!(ip(&["10.0.0.1, 203.0.113.6"], true), last);
        assert_eq!(ip(&["10.0.0.1", "203.0.113.6"], true), last);
        assert_eq!(ip(&["10.0.0.1, 203.0.113.6:4711"], true), last);
        assert_eq!(
            ip(&["[2001:db8::7]:4711"], true),
            Some("2001:db8::7".to_string())
        );
        // Garbage is one client of its own, not the proxy.
        assert_eq!(
            ip(&["10.0.0.1, unknown"], true),
            Some("0.0.0.0".to_string())
        );
    }
}
