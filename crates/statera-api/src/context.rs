//! Who is asking: the request context every handler receives.
//!
//! The deployment's [`Authenticator`](statera_identity::Authenticator) turns
//! the request's headers into a [`Caller`] (a built-in or external Keystone
//! token, or `noauth`'s headers); a request it refuses is answered 401 in
//! Keystone's shape before any handler runs. The policy checks below are the
//! seam for RBAC.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use statera_identity::{AuthError, Caller};

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
}

impl RequestContext {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    pub fn is_admin(&self) -> bool {
        self.has_role("admin") || self.has_role("load-balancer_admin")
    }

    /// `load-balancer:read` on an object of `project_id`.
    pub fn can_read(&self, project_id: &str) -> bool {
        self.is_admin()
            || self.has_role("load-balancer_global_observer")
            || (project_id == self.project_id
                && [
                    "reader",
                    "member",
                    "load-balancer_observer",
                    "load-balancer_member",
                ]
                .iter()
                .any(|r| self.has_role(r)))
    }

    /// Neutron's read rule on an object of `project_id`: an admin, or a
    /// reading role in that very project. Octavia's global observer role
    /// means nothing to Neutron (it would otherwise let a project see, and
    /// then name, every project's networks, subnets and ports).
    pub fn can_read_neutron(&self, project_id: &str) -> bool {
        self.is_admin() || (project_id == self.project_id && self.can_read(project_id))
    }

    /// `load-balancer:write` on an object of `project_id`.
    pub fn can_write(&self, project_id: &str) -> bool {
        self.is_admin()
            || (project_id == self.project_id
                && (self.has_role("member") || self.has_role("load-balancer_member")))
    }

    /// Whether a list may span every project.
    pub fn can_read_global(&self) -> bool {
        self.is_admin() || self.has_role("load-balancer_global_observer")
    }

    pub fn check_read(&self, project_id: &str) -> Result<(), ApiError> {
        if self.can_read(project_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn check_write(&self, project_id: &str) -> Result<(), ApiError> {
        if self.can_write(project_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn check_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Quota administration (`load-balancer:quota-admin`).
    pub fn check_quota_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() || self.has_role("load-balancer_quota_admin") {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The scheme and authority the client addressed, honouring proxy headers.
pub fn base_url(headers: &HeaderMap) -> String {
    let proto = header(headers, "x-forwarded-proto").unwrap_or("http");
    let host = header(headers, "x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .unwrap_or("127.0.0.1:9876");
    format!("{proto}://{host}")
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let base_url = base_url(&parts.headers);
        let style = crate::style_of_path(parts.uri.path());
        let caller = match state.auth.authenticate(&parts.headers).await {
            Ok(caller) => caller,
            Err(e @ AuthError::Unavailable(_)) => {
                tracing::warn!(error = %e, "identity service unavailable");
                return Err(crate::styled(
                    ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                    style,
                ));
            }
            Err(e) => {
                if let AuthError::Invalid(reason) = &e {
                    tracing::info!(%reason, "token refused");
                }
                return Err(ApiError::unauthorized(state.auth.identity_uri(&base_url)));
            }
        };
        Ok(RequestContext {
            project_id: caller.project().to_string(),
            roles: caller.roles.clone(),
            caller,
            base_url,
        })
    }
}
