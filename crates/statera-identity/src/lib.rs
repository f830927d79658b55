//! Who is calling.
//!
//! Every request the API serves is authenticated by one [`Authenticator`],
//! picked by the deployment's auth mode ([`AuthMode`]):
//! - `builtin`: Statera is its own Keystone (tokens it issued, users in its store);
//! - `keystone`: tokens are validated against an external Keystone, as
//!   keystonemiddleware does;
//! - `noauth`: labs only — the project and roles come from request headers
//!   ([`NoAuth`]).
//!
//! Each produces a [`Caller`]; policy reads nothing else.

pub mod builtin;
pub mod keystone;
pub mod password;

use http::HeaderMap;
pub use statera_model::identity::Caller;
use std::future::Future;
use std::pin::Pin;

/// How a deployment authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Builtin,
    Keystone,
    NoAuth,
}

impl AuthMode {
    pub const ALL: &[AuthMode] = &[AuthMode::Builtin, AuthMode::Keystone, AuthMode::NoAuth];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Builtin => "builtin",
            AuthMode::Keystone => "keystone",
            AuthMode::NoAuth => "noauth",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMode> {
        AuthMode::ALL.iter().copied().find(|m| m.as_str() == s)
    }
}

/// Why a request is not authenticated. Rendered by the API as Keystone's
/// error shape (`{"error": {"code", "title", "message"}}`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No token where one is needed: 401.
    #[error("The request you have made requires authentication.")]
    Missing,
    /// A malformed, expired, revoked or foreign token: 401. The reason is for
    /// the log only; clients get Keystone's one message.
    #[error("The request you have made requires authentication.")]
    Invalid(String),
    /// The identity service could not be asked (an external Keystone down):
    /// 503; the same request may be retried.
    #[error("The identity service is unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => 401,
            AuthError::Unavailable(_) => 503,
        }
    }

    /// Whether the same request may be sent again as it is.
    pub fn retry_safe(&self) -> bool {
        matches!(self, AuthError::Unavailable(_))
    }
}

pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Caller, AuthError>> + Send + 'a>>;

/// Turns a request's headers into a [`Caller`].
pub trait Authenticator: Send + Sync + 'static {
    fn mode(&self) -> AuthMode;
    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> AuthFuture<'a>;
    /// Where a client gets a token (`WWW-Authenticate: Keystone uri=…` on a
    /// 401), given the scheme and authority the client used for this request.
    fn identity_uri(&self, _base_url: &str) -> Option<String> {
        None
    }
    /// The built-in Keystone, when this is it (its `/v3/auth` routes answer
    /// only then).
    fn builtin(&self) -> Option<&builtin::Builtin> {
        None
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `noauth`: any token (or none) is accepted; the project comes from
/// `X-Project-Id` (or `X-Tenant-Id`, else `default_project_id`) and the roles
/// from `X-Roles`. A request without `X-Roles` gets `default_roles`, which is
/// empty unless the configuration says otherwise: a caller without headers is
/// not an admin.
#[derive(Debug, Clone)]
pub struct NoAuth {
    pub default_project_id: String,
    pub default_roles: Vec<String>,
}

impl NoAuth {
    pub fn caller(&self, headers: &HeaderMap) -> Caller {
        let project_id = header(headers, "x-project-id")
            .or_else(|| header(headers, "x-tenant-id"))
            .map(str::to_string)
            .unwrap_or_else(|| self.default_project_id.clone());
        // A present but empty `X-Roles` means no roles at all.
        let roles = match headers.get("x-roles") {
            Some(r) => split_roles(&String::from_utf8_lossy(r.as_bytes())),
            None => self.default_roles.clone(),
        };
        Caller {
            user_id: header(headers, "x-user-id").map(str::to_string),
            project_id: Some(project_id),
            roles,
            ..Caller::default()
        }
    }
}

/// A comma-separated role list, trimmed and lowercased, empties dropped.
pub fn split_roles(s: &str) -> Vec<String> {
    s.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Authenticator for NoAuth {
    fn mode(&self) -> AuthMode {
        AuthMode::NoAuth
    }

    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> AuthFuture<'a> {
        let caller = self.caller(headers);
        Box::pin(async move { Ok(caller) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noauth(default_roles: &[&str]) -> NoAuth {
        NoAuth {
            default_project_id: "p0".into(),
            default_roles: default_roles.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_caller_without_headers_is_not_an_admin_unless_configured() {
        let h = HeaderMap::new();
        let c = noauth(&[]).caller(&h);
        assert!(c.roles.is_empty());
        assert_eq!(c.project(), "p0");
        let c = noauth(&["admin"]).caller(&h);
        assert!(c.has_role("admin"));
    }

    #[test]
    fn headers_name_project_and_roles_and_an_empty_list_is_no_roles() {
        let mut h = HeaderMap::new();
        h.insert("x-project-id", "p1".parse().unwrap());
        h.insert("x-roles", " Member, reader ,".parse().unwrap());
        let c = noauth(&["admin"]).caller(&h);
        assert_eq!(c.project(), "p1");
        assert_eq!(c.roles, vec!["member", "reader"]);
        h.insert("x-roles", "".parse().unwrap());
        assert!(noauth(&["admin"]).caller(&h).roles.is_empty());
    }
}
